/* textlog.c: a bounded ring of output lines (see textlog.h). */
#include "textlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *s;
    size_t len, cap;
    vz_log_kind kind;
    int cut;             /* reached VZ_LOG_LINE_MAX */
} vz_line;

struct vz_log {
    vz_line *lines;      /* ring of cap */
    int cap, n, head;    /* head: index of the oldest */
    int open;            /* the newest line has not ended */
    int esc;             /* inside an escape sequence: 0 no, 1 after ESC, 2 CSI, 3 OSC, 4 OSC after ESC */
    unsigned long serial;
};

vz_log *vz_log_new(int cap)
{
    if (cap < 1) cap = 1;
    vz_log *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->lines = calloc((size_t)cap, sizeof *g->lines);
    if (!g->lines) { free(g); return NULL; }
    g->cap = cap;
    return g;
}

void vz_log_free(vz_log *g)
{
    if (!g) return;
    for (int i = 0; i < g->cap; i++) free(g->lines[i].s);
    free(g->lines);
    free(g);
}

static vz_line *newest(vz_log *g)
{
    return g->n ? &g->lines[(g->head + g->n - 1) % g->cap] : NULL;
}

static vz_line *new_line(vz_log *g, vz_log_kind k)
{
    vz_line *l;
    if (g->n < g->cap) {
        l = &g->lines[(g->head + g->n) % g->cap];
        g->n++;
    } else {
        l = &g->lines[g->head];          /* reuse the oldest */
        g->head = (g->head + 1) % g->cap;
    }
    l->len = 0;
    if (l->s) l->s[0] = 0;
    l->kind = k;
    l->cut = 0;
    g->open = 1;
    return l;
}

static void line_put(vz_line *l, const char *s, size_t n)
{
    if (l->cut) return;
    if (l->len + n > VZ_LOG_LINE_MAX) {
        n = VZ_LOG_LINE_MAX - l->len;
        l->cut = 1;
    }
    size_t need = l->len + n + 4;        /* room for "…" and the NUL */
    if (need > l->cap) {
        size_t cap = l->cap ? l->cap : 64;
        while (cap < need) cap *= 2;
        char *p = realloc(l->s, cap);
        if (!p) { l->cut = 1; return; }
        l->s = p;
        l->cap = cap;
    }
    memcpy(l->s + l->len, s, n);
    l->len += n;
    if (l->cut) { memcpy(l->s + l->len, "\xe2\x80\xa6", 3); l->len += 3; }
    l->s[l->len] = 0;
}

void vz_log_add(vz_log *g, const char *bytes, size_t len, vz_log_kind k)
{
    if (!g || !bytes || !len) return;
    g->serial++;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)bytes[i];
        /* escape sequences, possibly split across calls */
        if (g->esc) {
            if (g->esc == 1) g->esc = c == '[' ? 2 : c == ']' ? 3 : 0;
            else if (g->esc == 2) { if (c >= 0x40 && c <= 0x7E) g->esc = 0; }
            else if (g->esc == 3) { if (c == 7) g->esc = 0; else if (c == 0x1B) g->esc = 4; }
            else g->esc = 0;                      /* ESC \ ends an OSC */
            i++;
            continue;
        }
        if (c == 0x1B) { g->esc = 1; i++; continue; }
        if (c == '\r') { i++; continue; }
        vz_line *l = newest(g);
        if (!l || !g->open || l->kind != k) l = new_line(g, k);
        if (c == '\n') { g->open = 0; i++; continue; }
        size_t j = i;
        while (j < len && bytes[j] != '\n' && bytes[j] != '\r' && bytes[j] != 0x1B) j++;
        line_put(l, bytes + i, j - i);
        i = j;
    }
}

void vz_log_addf(vz_log *g, vz_log_kind k, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    vz_log_break(g);
    vz_log_add(g, buf, (size_t)n, k);
    vz_log_break(g);
}

void vz_log_break(vz_log *g)
{
    if (g) g->open = 0;
}

int vz_log_count(const vz_log *g)
{
    return g ? g->n : 0;
}

const char *vz_log_line(const vz_log *g, int i, vz_log_kind *k)
{
    if (!g || i < 0 || i >= g->n) return NULL;
    const vz_line *l = &g->lines[(g->head + i) % g->cap];
    if (k) *k = l->kind;
    return l->s ? l->s : "";
}

unsigned long vz_log_serial(const vz_log *g)
{
    return g ? g->serial : 0;
}
