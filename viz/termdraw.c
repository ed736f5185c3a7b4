/* termdraw.c: vz_grid → ncursesw (see termdraw.h).
 *
 * What it is: the only file in viz/ that includes curses.h.  The state it
 * needs beyond ncurses' own globals (the depth, the default colours and a
 * small cache of nearest-colour look-ups) lives in the vz_term the caller
 * owns.  What it is not: a window manager or an input loop.
 */
#include "termdraw.h"

#include <langinfo.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#if !defined(NCURSES_EXT_FUNCS) || NCURSES_EXT_FUNCS < 20170401
#error "viz/termdraw.c needs ncursesw 6.1 or later (alloc_pair, extended colours)"
#endif

#define CACHE_N 512
#define PAIRS_N 4096

struct vz_term {
    vz_depth depth;
    int colors;            /* COLORS at start-up */
    int def_fg, def_bg;    /* -1 with use_default_colors, else white on black */
    struct { uint32_t rgb; int idx; } cache[CACHE_N];  /* nearest-colour memo; rgb ~0 = empty */
    struct { int fg, bg, pair; } pairs[PAIRS_N];       /* alloc_pair memo; pair 0 = empty */
};

static int utf8_locale(void)
{
    const char *cs = nl_langinfo(CODESET);
    return cs && (strcmp(cs, "UTF-8") == 0 || strcmp(cs, "utf8") == 0);
}

vz_term *vz_term_new(vz_depth want)
{
    vz_term *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    for (int i = 0; i < CACHE_N; i++) t->cache[i].rgb = ~0u;
    t->def_fg = -1;
    t->def_bg = -1;
    if (!utf8_locale()) want = VZ_DEPTH_MONO;
    if (want != VZ_DEPTH_MONO && has_colors() && start_color() == OK) {
        if (use_default_colors() != OK) {
            t->def_fg = COLOR_WHITE;
            t->def_bg = COLOR_BLACK;
        }
        t->colors = COLORS;
        if (want == VZ_DEPTH_TRUE && COLORS < 0x1000000) want = VZ_DEPTH_256;
        if (want == VZ_DEPTH_256 && COLORS < 256) want = VZ_DEPTH_16;
        if (want == VZ_DEPTH_16 && COLORS < 8) want = VZ_DEPTH_MONO;
    } else {
        want = VZ_DEPTH_MONO;
    }
    t->depth = want;
    return t;
}

vz_depth vz_term_depth(const vz_term *t)
{
    return t ? t->depth : VZ_DEPTH_MONO;
}

void vz_term_free(vz_term *t)
{
    free(t);
}

/* Exact palette index of a colour the colormap produced for 256 colours,
 * or -1 when it is not a palette colour. */
static int exact_256(uint32_t rgb)
{
    static const int lv[6] = {0, 95, 135, 175, 215, 255};
    int ch[3] = {(int)(rgb >> 16) & 0xFF, (int)(rgb >> 8) & 0xFF, (int)rgb & 0xFF}, k[3];
    for (int c = 0; c < 3; c++) {
        k[c] = -1;
        for (int i = 0; i < 6; i++)
            if (ch[c] == lv[i]) k[c] = i;
    }
    if (k[0] >= 0 && k[1] >= 0 && k[2] >= 0) return 16 + 36 * k[0] + 6 * k[1] + k[2];
    if (ch[0] == ch[1] && ch[1] == ch[2] && ch[0] >= 8 && ch[0] <= 238 && (ch[0] - 8) % 10 == 0)
        return 232 + (ch[0] - 8) / 10;
    return -1;
}

/* The ncurses colour number for a cell colour. */
static int colour_number(vz_term *t, uint32_t c, int is_fg)
{
    if (c & VZ_DEFAULT) return is_fg ? t->def_fg : t->def_bg;
    c &= 0xFFFFFF;
    /* direct colour: numbers below 8 still mean the ANSI colours in the
     * xterm-direct terminfo, so the darkest blues are nudged up to #000008 */
    if (t->depth == VZ_DEPTH_TRUE) return c < 8 ? 8 : (int)c;
    unsigned h = (c * 2654435761u) >> 23;   /* 9 bits */
    int idx;
    if (t->cache[h].rgb == c) {
        idx = t->cache[h].idx;
    } else {
        if (t->depth == VZ_DEPTH_256) {
            idx = exact_256(c);
            if (idx < 0) idx = vz_nearest_256(c);
        } else {
            idx = vz_nearest_16(c);
        }
        t->cache[h].rgb = c;
        t->cache[h].idx = idx;
    }
    /* 8 colours: a bright entry falls back to its base colour.  (Bold for
     * brightness would light only the upper half of a half-block cell.) */
    if (t->depth == VZ_DEPTH_16 && t->colors < 16 && idx >= 8) idx -= 8;
    return idx;
}

static int same_cell(const vz_cell *a, const vz_cell *b)
{
    return a->fg == b->fg && a->bg == b->bg && a->bold == b->bold && !strcmp(a->ch, b->ch);
}

/* alloc_pair(fg, bg) through a memo: alloc_pair searches a tree, and a
 * frame asks for thousands of pairs.  A remembered pair is checked against
 * ncurses' table, since alloc_pair recycles the least recently used pair
 * when the table is full. */
static int colour_pair(vz_term *t, int fg, int bg)
{
    unsigned h = ((unsigned)(fg + 2) * 2654435761u ^ (unsigned)(bg + 2) * 40503u) % PAIRS_N;
    if (t->pairs[h].pair > 0 && t->pairs[h].fg == fg && t->pairs[h].bg == bg) {
        int f, b;
        if (extended_pair_content(t->pairs[h].pair, &f, &b) == OK && f == fg && b == bg) return t->pairs[h].pair;
    }
    int p = alloc_pair(fg, bg);
    if (p < 0) return 0;
    t->pairs[h].fg = fg;
    t->pairs[h].bg = bg;
    t->pairs[h].pair = p;
    return p;
}

int vz_term_draw(vz_term *t, WINDOW *w, const vz_grid *g)
{
    return vz_term_draw_changed(t, w, g, NULL);
}

int vz_term_draw_changed(vz_term *t, WINDOW *w, const vz_grid *g, const vz_grid *prev)
{
    if (!t || !w || !g) return -1;
    if (prev && (prev->w != g->w || prev->h != g->h)) prev = NULL;
    int mh = getmaxy(w), mw = getmaxx(w), rc = 0;
    int h = g->h < mh ? g->h : mh, wd = g->w < mw ? g->w : mw;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < wd; x++) {
            const vz_cell *c = vz_grid_cat(g, x, y);
            if (c->ch[0] == 0) continue;         /* right half of a wide glyph */
            /* a wide glyph is redrawn when either of its halves changed */
            if (prev && same_cell(c, vz_grid_cat(prev, x, y)) &&
                (x + 1 >= wd || vz_grid_cat(g, x + 1, y)->ch[0] != 0 ||
                 same_cell(vz_grid_cat(g, x + 1, y), vz_grid_cat(prev, x + 1, y))))
                continue;
            uint32_t cp = ' ';
            vz_utf8_next(c->ch, strlen(c->ch), &cp);
            if (vz_cp_width(cp) == 2 && x + 1 >= wd) cp = ' ';
            wchar_t wc[2] = {(wchar_t)cp, 0};
            int bold = c->bold, pair = 0;
            attr_t attr = A_NORMAL;
            if (t->depth != VZ_DEPTH_MONO) {
                int fg = colour_number(t, c->fg, 1);
                int bg = colour_number(t, c->bg, 0);
                pair = colour_pair(t, fg, bg);
            }
            if (bold) attr |= A_BOLD;
            cchar_t cc;
            if (setcchar(&cc, wc, attr, 0, &pair) != OK) { rc = -1; continue; }
            /* the bottom-right cell reports ERR (the cursor cannot advance)
             * although the glyph is written */
            if (mvwadd_wch(w, y, x, &cc) != OK && !(y == mh - 1 && x == mw - 1)) rc = -1;
        }
    return rc;
}
