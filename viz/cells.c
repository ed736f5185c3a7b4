/* cells.c: the off-screen cell grid (see cells.h).
 *
 * What it is: plain memory operations on an array of cells, a small UTF-8
 * decoder and a fixed width table, and the text dump used by golden tests.
 * What it is not: a terminal layer; nothing here knows ncurses or escapes.
 */
#include "cells.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VZ_MAX_CELLS 10000000L

static void blank(vz_cell *c)
{
    c->ch[0] = ' ';
    c->ch[1] = 0;
    c->bold = 0;
    c->fg = c->bg = VZ_DEFAULT;
}

vz_grid *vz_grid_new(int w, int h)
{
    vz_grid *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    if (vz_grid_resize(g, w, h) != 0) {
        free(g);
        return NULL;
    }
    return g;
}

void vz_grid_free(vz_grid *g)
{
    if (!g) return;
    free(g->cells);
    free(g);
}

int vz_grid_resize(vz_grid *g, int w, int h)
{
    if (!g || w < 0 || h < 0 || (long)w * (long)h > VZ_MAX_CELLS) return -1;
    size_t n = (size_t)w * (size_t)h;
    vz_cell *c = malloc((n ? n : 1) * sizeof *c);
    if (!c) return -1;
    free(g->cells);
    g->cells = c;
    g->w = w;
    g->h = h;
    vz_grid_clear(g);
    return 0;
}

void vz_grid_clear(vz_grid *g)
{
    if (!g) return;
    size_t n = (size_t)g->w * (size_t)g->h;
    for (size_t i = 0; i < n; i++) blank(&g->cells[i]);
}

vz_cell *vz_grid_at(vz_grid *g, int x, int y)
{
    if (!g || x < 0 || y < 0 || x >= g->w || y >= g->h) return NULL;
    return &g->cells[(size_t)y * (size_t)g->w + (size_t)x];
}

const vz_cell *vz_grid_cat(const vz_grid *g, int x, int y)
{
    return vz_grid_at((vz_grid *)g, x, y);
}

vz_rect vz_rect_clip(const vz_grid *g, vz_rect r)
{
    vz_rect o = {0, 0, 0, 0};
    if (!g || r.w <= 0 || r.h <= 0) return o;
    long x0 = r.x, y0 = r.y, x1 = (long)r.x + r.w, y1 = (long)r.y + r.h;
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > g->w) x1 = g->w;
    if (y1 > g->h) y1 = g->h;
    if (x1 <= x0 || y1 <= y0) return o;
    o.x = (int)x0; o.y = (int)y0; o.w = (int)(x1 - x0); o.h = (int)(y1 - y0);
    return o;
}

/* ---- UTF-8 ---- */

int vz_utf8_next(const char *s, size_t n, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    *cp = 0xFFFD;
    if (n == 0) return 0;
    unsigned c = u[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 1;
    for (int i = 1; i < len; i++) {
        /* a truncated or broken sequence: consume only the valid prefix, so
         * the next byte gets its own chance */
        if ((size_t)i >= n || (u[i] & 0xC0) != 0x80) return i;
        v = (v << 6) | (u[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return len;
    *cp = v;
    return len;
}

int vz_utf8_put(uint32_t cp, char out[5])
{
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    int n;
    if (cp < 0x80) { out[0] = (char)cp; n = 1; }
    else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    out[n] = 0;
    return n;
}

typedef struct { uint32_t lo, hi; } range;

/* Combining marks and other zero-width code points (the common blocks). */
static const range zero_width[] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A},
    {0x064B, 0x065F}, {0x0E31, 0x0E31}, {0x0E34, 0x0E3A}, {0x0E47, 0x0E4E},
    {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x202A, 0x202E},
    {0x2060, 0x2064}, {0x20D0, 0x20FF}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F},
    {0xFEFF, 0xFEFF}, {0xE0100, 0xE01EF},
};

/* East Asian Wide/Fullwidth and emoji presentation (the common blocks). */
static const range wide[] = {
    {0x1100, 0x115F}, {0x231A, 0x231B}, {0x2329, 0x232A}, {0x23E9, 0x23EC},
    {0x23F0, 0x23F0}, {0x23F3, 0x23F3}, {0x25FD, 0x25FE}, {0x2614, 0x2615},
    {0x2648, 0x2653}, {0x267F, 0x267F}, {0x2693, 0x2693}, {0x26A1, 0x26A1},
    {0x26AA, 0x26AB}, {0x26BD, 0x26BE}, {0x26C4, 0x26C5}, {0x26CE, 0x26CE},
    {0x26D4, 0x26D4}, {0x26EA, 0x26EA}, {0x26F2, 0x26F3}, {0x26F5, 0x26F5},
    {0x26FA, 0x26FA}, {0x26FD, 0x26FD}, {0x2705, 0x2705}, {0x270A, 0x270B},
    {0x2728, 0x2728}, {0x274C, 0x274C}, {0x274E, 0x274E}, {0x2753, 0x2755},
    {0x2757, 0x2757}, {0x2795, 0x2797}, {0x27B0, 0x27B0}, {0x27BF, 0x27BF},
    {0x2B1B, 0x2B1C}, {0x2B50, 0x2B50}, {0x2B55, 0x2B55}, {0x2E80, 0x303E},
    {0x3041, 0x33FF}, {0x3400, 0x4DBF}, {0x4E00, 0x9FFF}, {0xA000, 0xA4CF},
    {0xA960, 0xA97F}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF}, {0xFE10, 0xFE19},
    {0xFE30, 0xFE6F}, {0xFF00, 0xFF60}, {0xFFE0, 0xFFE6}, {0x16FE0, 0x16FE4},
    {0x17000, 0x18CFF}, {0x1B000, 0x1B2FF}, {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF},
    {0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F200, 0x1F251}, {0x1F300, 0x1F64F},
    {0x1F680, 0x1F6FF}, {0x1F7E0, 0x1F7EB}, {0x1F90C, 0x1F9FF}, {0x1FA70, 0x1FAFF},
    {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
};

static int in_ranges(uint32_t cp, const range *r, size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

int vz_cp_width(uint32_t cp)
{
    if (cp < 0x300) return 1;
    if (in_ranges(cp, zero_width, sizeof zero_width / sizeof *zero_width)) return 0;
    if (in_ranges(cp, wide, sizeof wide / sizeof *wide)) return 2;
    return 1;
}

/* ---- writing ---- */

/* Blank the other half of a wide glyph that cell (x, y) belongs to, so that
 * overwriting half of it never leaves half a glyph behind. */
static void break_wide(vz_grid *g, int x, int y)
{
    vz_cell *c = vz_grid_at(g, x, y);
    if (!c) return;
    if (c->ch[0] == 0) {                     /* right half: blank the left */
        vz_cell *l = vz_grid_at(g, x - 1, y);
        if (l) { uint32_t bg = l->bg; blank(l); l->bg = bg; }
    } else {
        vz_cell *r = vz_grid_at(g, x + 1, y);
        if (r && r->ch[0] == 0) { uint32_t bg = r->bg; blank(r); r->bg = bg; }
    }
}

static int put_cp(vz_grid *g, int x, int y, uint32_t cp, vz_style st, int maxw)
{
    if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) cp = 0xFFFD;
    int w = vz_cp_width(cp);
    if (w == 0) return 0;
    if (w > maxw || !vz_grid_at(g, x, y) || (w == 2 && !vz_grid_at(g, x + 1, y))) return -1;
    for (int i = 0; i < w; i++) break_wide(g, x + i, y);
    vz_cell *c = vz_grid_at(g, x, y);
    vz_utf8_put(cp, c->ch);
    c->fg = st.fg; c->bg = st.bg; c->bold = st.bold ? 1 : 0;
    if (w == 2) {
        vz_cell *r = vz_grid_at(g, x + 1, y);
        r->ch[0] = 0;
        r->fg = st.fg; r->bg = st.bg; r->bold = c->bold;
    }
    return w;
}

int vz_put_glyph(vz_grid *g, int x, int y, const char *glyph, vz_style st)
{
    if (!g || !glyph) return 0;
    uint32_t cp = ' ';
    if (glyph[0]) vz_utf8_next(glyph, strnlen(glyph, 4), &cp);
    int n = put_cp(g, x, y, cp, st, 2);
    return n < 0 ? 0 : n;
}

int vz_put(vz_grid *g, int x, int y, int maxw, const char *s, size_t len, vz_style st)
{
    if (!g || !s || maxw <= 0 || y < 0 || y >= g->h) return 0;
    if (len == (size_t)-1) len = strlen(s);
    int used = 0;
    /* cells left of the grid are skipped but still counted, so that text
     * starting at a negative x is clipped, not shifted */
    size_t i = 0;
    while (i < len && used < maxw) {
        uint32_t cp;
        i += (size_t)vz_utf8_next(s + i, len - i, &cp);
        int cx = x + used;
        if (cx >= g->w) break;
        if (cx < 0) {
            int w = vz_cp_width(cp);
            used += w;
            continue;
        }
        int n = put_cp(g, cx, y, cp, st, maxw - used);
        if (n < 0) break;
        used += n;
    }
    return used;
}

int vz_putf(vz_grid *g, int x, int y, int maxw, vz_style st, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return 0;
    return vz_put(g, x, y, maxw, buf, (size_t)-1, st);
}

void vz_fill(vz_grid *g, vz_rect r, const char *glyph, vz_style st)
{
    r = vz_rect_clip(g, r);
    uint32_t cp = ' ';
    if (glyph && glyph[0]) vz_utf8_next(glyph, strnlen(glyph, 4), &cp);
    if (vz_cp_width(cp) != 1) cp = '?';
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++) put_cp(g, x, y, cp, st, 1);
}

void vz_restyle(vz_grid *g, vz_rect r, vz_style st)
{
    r = vz_rect_clip(g, r);
    for (int y = r.y; y < r.y + r.h; y++)
        for (int x = r.x; x < r.x + r.w; x++) {
            vz_cell *c = vz_grid_at(g, x, y);
            c->fg = st.fg; c->bg = st.bg; c->bold = st.bold ? 1 : 0;
        }
}

/* ---- dump ---- */

typedef struct { char *p; size_t n, cap; int oom; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->oom = 1; return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void colour_hex(char out[8], uint32_t c)
{
    if (c & VZ_DEFAULT) strcpy(out, "-");
    else snprintf(out, 8, "%06x", (unsigned)(c & 0xFFFFFF));
}

char *vz_grid_dump(const vz_grid *g)
{
    if (!g) return NULL;
    sbuf b = {0};
    sb_printf(&b, "vz-grid %dx%d\n", g->w, g->h);
    for (int y = 0; y < g->h; y++) {
        sb_add(&b, "|", 1);
        for (int x = 0; x < g->w; x++) {
            const vz_cell *c = vz_grid_cat(g, x, y);
            sb_add(&b, c->ch, strlen(c->ch));
        }
        sb_add(&b, "|\n", 2);
    }
    sb_add(&b, "colours:\n", 9);
    for (int y = 0; y < g->h; y++) {
        sb_printf(&b, "%d:", y);
        int x = 0;
        while (x < g->w) {
            const vz_cell *c = vz_grid_cat(g, x, y);
            int n = 1;
            while (x + n < g->w) {
                const vz_cell *d = vz_grid_cat(g, x + n, y);
                if (d->fg != c->fg || d->bg != c->bg || d->bold != c->bold) break;
                n++;
            }
            char f[8], k[8];
            colour_hex(f, c->fg);
            colour_hex(k, c->bg);
            sb_printf(&b, " %d %s/%s%s", n, f, k, c->bold ? "+b" : "");
            x += n;
        }
        sb_add(&b, "\n", 1);
    }
    if (b.oom) { free(b.p); return NULL; }
    return b.p;
}
