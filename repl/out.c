/* out.c: text or JSON results of commands (see out.h). */
#include "out.h"
#include "args.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void out_begin(out *o, const char *cmd)
{
    cJSON_Delete(o->obj);
    o->obj = cJSON_CreateObject();
    snprintf(o->cmd, sizeof o->cmd, "%s", cmd);
    out_add_str(o->obj, "cmd", o->cmd, strlen(o->cmd));
    cJSON_AddTrueToObject(o->obj, "ok");   /* replaced if the command fails */
}

cJSON *out_obj(out *o)
{
    if (!o->obj) out_begin(o, "?");
    return o->obj;
}

static void out_endline(out *o)
{
    if (o->col) { fputc('\n', stdout); o->col = 0; }
}

void out_text(out *o, const char *fmt, ...)
{
    if (o->json) return;
    out_endline(o);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

void out_raw(out *o, const char *s, size_t len)
{
    if (o->json || !len) return;
    fwrite(s, 1, len, stdout);
    o->col = s[len - 1] != '\n';
    fflush(stdout);
}

static void out_json_line(out *o)
{
    char *txt = cJSON_PrintUnformatted(o->obj);
    if (txt) {
        fputs(txt, stdout);
        fputc('\n', stdout);
        cJSON_free(txt);
    } else {
        /* cJSON failed to allocate: still one parseable line */
        printf("{\"cmd\":\"%s\",\"ok\":false,\"error\":\"out of memory\"}\n", o->cmd);
    }
    fflush(stdout);
}

void out_end(out *o)
{
    if (o->json) {
        out_obj(o);
        out_json_line(o);
    } else {
        out_endline(o);
        fflush(stdout);
    }
    cJSON_Delete(o->obj);
    o->obj = NULL;
}

void out_end_err(out *o, const char *msg) { out_end_err2(o, msg, 1); }

void out_end_err2(out *o, const char *msg, int print_text)
{
    if (o->json) {
        cJSON_Delete(o->obj);
        o->obj = cJSON_CreateObject();
        out_add_str(o->obj, "cmd", o->cmd, strlen(o->cmd));
        cJSON_AddFalseToObject(o->obj, "ok");
        out_add_str(o->obj, "error", msg, strlen(msg));
        out_json_line(o);
    } else {
        out_endline(o);
        fflush(stdout);
        if (!print_text) {
        } else if (o->color) fprintf(stderr, "\033[31m%s\033[0m\n", msg);
        else fprintf(stderr, "%s\n", msg);
        fflush(stderr);
    }
    cJSON_Delete(o->obj);
    o->obj = NULL;
}

static cJSON *out_str_item(const char *bytes, size_t len)
{
    char *b = malloc(len * 3 + 1);   /* each bad byte becomes 3 bytes of U+FFFD */
    if (!b) return cJSON_CreateNull();
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)bytes;
    for (size_t i = 0; i < len; ) {
        int n = p[i] ? arg_utf8_len(p + i, len - i) : 0;
        /* a NUL (it cannot live in a C string) and bad bytes become U+FFFD */
        if (n) { memcpy(b + k, p + i, (size_t)n); k += (size_t)n; i += (size_t)n; }
        else { memcpy(b + k, "\xEF\xBF\xBD", 3); k += 3; i++; }
    }
    b[k] = 0;
    cJSON *s = cJSON_CreateString(b);
    free(b);
    return s;
}

void out_add_str(cJSON *obj, const char *key, const char *bytes, size_t len)
{
    cJSON_AddItemToObject(obj, key, out_str_item(bytes, len));
}
