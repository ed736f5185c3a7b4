/* args.c: strict parsing of command arguments (see args.h).
 *
 * Numbers are parsed by hand-checked strtol/strtod calls: the C library
 * alone would accept " 12", "12abc" (with an end pointer nobody checks),
 * "nan", "inf" and "0x1p4", all of which are typos here.
 */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int arg_split(const char *line, char ***argv, int *argc, char *err, size_t errcap)
{
    size_t len = strlen(line);
    /* at most len/2+1 words; each word fits in the copy of the line */
    size_t maxw = len / 2 + 2;
    char **v = malloc(maxw * sizeof(char *) + len + 1);
    if (!v) { snprintf(err, errcap, "out of memory"); return -1; }
    char *buf = (char *)(v + maxw);
    int n = 0;
    const char *p = line;
    for (;;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        v[n++] = buf;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) p++;
                *buf++ = *p++;
            }
            if (*p != '"') {
                free(v);
                snprintf(err, errcap, "unterminated quote (a closing \" is missing)");
                return -1;
            }
            p++;
            if (*p && !isspace((unsigned char)*p)) {
                free(v);
                snprintf(err, errcap, "a closing quote must end its word");
                return -1;
            }
        } else {
            while (*p && !isspace((unsigned char)*p)) *buf++ = *p++;
        }
        *buf++ = 0;
    }
    v[n] = NULL;
    *argv = v;
    *argc = n;
    return 0;
}

int arg_long(const char *s, long lo, long hi, long *out)
{
    const char *q = s;
    if (*q == '-' || *q == '+') q++;
    if (!*q) return -1;
    for (; *q; q++) if (!isdigit((unsigned char)*q)) return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int arg_u64(const char *s, uint64_t *out)
{
    if (!*s) return -1;
    for (const char *q = s; *q; q++) if (!isdigit((unsigned char)*q)) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int arg_double(const char *s, double lo, double hi, double *out)
{
    if (!*s) return -1;
    for (const char *q = s; *q; q++)
        if (!isdigit((unsigned char)*q) && !strchr("+-.eE", *q)) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno == ERANGE || *end || end == s || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int args_hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int arg_unescape(const char *s, char **out, size_t *len, char *err, size_t errcap)
{
    size_t n = strlen(s), k = 0;
    char *b = malloc(n + 1);
    if (!b) { snprintf(err, errcap, "out of memory"); return -1; }
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') { b[k++] = s[i]; continue; }
        char c = s[i + 1];
        if (c == 'n') b[k++] = '\n';
        else if (c == 't') b[k++] = '\t';
        else if (c == 'r') b[k++] = '\r';
        else if (c == '\\') b[k++] = '\\';
        else if (c == 'x' && args_hexval(s[i + 2]) >= 0 && args_hexval(s[i + 3]) >= 0) {
            b[k++] = (char)(args_hexval(s[i + 2]) * 16 + args_hexval(s[i + 3]));
            i += 2;
        } else {
            if (c == 'x')
                snprintf(err, errcap, "bad escape at column %zu: \\x needs two hex digits (\\x00 to \\xFF)", i + 1);
            else if (c > 0x20 && c < 0x7F)
                snprintf(err, errcap, "bad escape '\\%c' at column %zu (valid: \\n \\t \\r \\\\ \\xNN)", c, i + 1);
            else
                snprintf(err, errcap, "a lone '\\' at column %zu (escapes: \\n \\t \\r \\\\ \\xNN)", i + 1);
            free(b);
            return -1;
        }
        i++;
    }
    b[k] = 0;
    *out = b;
    *len = k;
    return 0;
}

int arg_utf8_len(const unsigned char *p, size_t left)
{
    int n;
    unsigned cp;
    if (!left) return 0;
    if (p[0] < 0x80) return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) { n = 2; cp = p[0] & 0x1F; }
    else if (p[0] >= 0xE0 && p[0] <= 0xEF) { n = 3; cp = p[0] & 0x0F; }
    else if (p[0] >= 0xF0 && p[0] <= 0xF4) { n = 4; cp = p[0] & 0x07; }
    else return 0;
    if ((size_t)n > left) return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static const char *args_quote(const char *s, size_t len, size_t maxvis, char *buf, size_t cap)
{
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len; ) {
        char tmp[8];
        size_t tl;
        int u = p[i] >= 0x80 ? arg_utf8_len(p + i, len - i) : 0;
        if (u == 2 && p[i] == 0xC2 && p[i + 1] < 0xA0) u = 0;   /* C1 controls (U+0080..9F) as bytes */
        if (u) { memcpy(tmp, p + i, (size_t)u); tl = (size_t)u; }
        else if (p[i] == '\n') { memcpy(tmp, "\\n", 2); tl = 2; }
        else if (p[i] == '\t') { memcpy(tmp, "\\t", 2); tl = 2; }
        else if (p[i] == '\r') { memcpy(tmp, "\\r", 2); tl = 2; }
        else if (p[i] == '\\') { memcpy(tmp, "\\\\", 2); tl = 2; }
        else if (p[i] == '"') { memcpy(tmp, "\\\"", 2); tl = 2; }
        else if (p[i] < 0x20 || p[i] >= 0x7F) { tl = (size_t)snprintf(tmp, sizeof tmp, "\\x%02x", p[i]); }
        else { tmp[0] = (char)p[i]; tl = 1; }
        if (k + tl + 4 > cap || (maxvis && k >= maxvis)) {
            if (k + 4 <= cap) { memcpy(buf + k, "...", 3); k += 3; }
            break;
        }
        memcpy(buf + k, tmp, tl);
        k += tl;
        i += u ? (size_t)u : 1;
    }
    if (cap) buf[k < cap ? k : cap - 1] = 0;
    return buf;
}

const char *arg_quote(const char *s, char *buf, size_t cap)
{
    return args_quote(s, strlen(s), 48, buf, cap);
}

const char *arg_quote_n(const char *s, size_t len, char *buf, size_t cap)
{
    return args_quote(s, len, 0, buf, cap);
}

/* optimal string alignment distance (a swap of neighbours counts 1) */
static int args_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v) v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

int arg_nearest(const char *word, const char *const *names, int n)
{
    int len = (int)strlen(word);
    int limit = len <= 3 ? 1 : len <= 6 ? 2 : 3;
    int best = -1, bd = limit + 1;
    for (int i = 0; i < n; i++) {
        int d = args_distance(word, names[i]);
        /* a prefix of a name is a near miss however short it is */
        if (len >= 2 && strncasecmp(word, names[i], (size_t)len) == 0) d = 1;
        if (d < bd) { bd = d; best = i; }
    }
    return best;
}
