/* panels.c: the panels of the full-screen view, each a draw function and a
 * key function (see view.h for the keys and the pattern).
 *
 * What it is: renderers from a vz_data (numbers already computed) and a
 * vz_view (selection, scales, focus) into a rectangle of the cell grid, with
 * heatmap.c for the matrices; every write is clipped to the rectangle.  The
 * panels choose the fitted scales (the zoom's is kept in the view so that
 * `scale lock` can hold it); they never compute model quantities.
 * What it is not: the layout or the routing of keys (view.c).
 */
#include "view.h"

#include "heatmap.h"
#include "panels.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* UI colours (as 0xRRGGBB; vz_ui_color quantizes them per depth) */
#define C_TITLE_BG   0x3a3a3a
#define C_TITLE_FG   0xeeeeee
#define C_FOCUS_BG   0x005f87
#define C_FOCUS_FG   0xffffff
#define C_DIM        0x8a8a8a
#define C_ERR        0xd75f5f
#define C_CMD        0x87afd7
#define C_NOTE       0xd7af5f
#define C_TOK_ALT    0x5fafd7
#define C_CURSOR     0xffaf00
#define C_BANNER_BG  0x5f5f00
#define C_STATUS_BG  0x262626
#define C_STATUS_FG  0xd0d0d0

/* ---- small helpers ---- */

static int min_i(int a, int b) { return a < b ? a : b; }
static int max_i(int a, int b) { return a > b ? a : b; }

uint32_t vz_ui_color(vz_depth d, uint32_t rgb)
{
    switch (d) {
    case VZ_DEPTH_MONO: return VZ_DEFAULT;
    case VZ_DEPTH_16: return vz_xterm_rgb(vz_nearest_16(rgb));
    case VZ_DEPTH_256: return vz_xterm_rgb(vz_nearest_256(rgb));
    case VZ_DEPTH_TRUE: return rgb;
    }
    return VZ_DEFAULT;
}

static vz_style st_fg(const vz_view *v, uint32_t fg, int bold)
{
    vz_style s = VZ_STYLE_PLAIN;
    s.fg = vz_ui_color(v->depth, fg);
    s.bold = bold;
    return s;
}

static vz_style st_fgbg(const vz_view *v, uint32_t fg, uint32_t bg, int bold)
{
    vz_style s = VZ_STYLE_PLAIN;
    s.fg = vz_ui_color(v->depth, fg);
    s.bg = vz_ui_color(v->depth, bg);
    s.bold = bold;
    return s;
}

int vz_text_width(const char *s, size_t n)
{
    int w = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        i += (size_t)vz_utf8_next(s + i, n - i, &cp);
        w += vz_cp_width(cp);
    }
    return w;
}

/* glyphs that have an ASCII stand-in */
static const char *G(const vz_view *v, const char *utf8, const char *ascii)
{
    return v->ascii ? ascii : utf8;
}

/* Text clipped to r's row y, from x; returns the cells used. */
static int put_row(vz_grid *g, vz_rect r, int x, int y, const char *s, vz_style st)
{
    if (y < r.y || y >= r.y + r.h || x >= r.x + r.w || x < r.x) return 0;
    return vz_put(g, x, y, r.x + r.w - x, s, (size_t)-1, st);
}

static int putf_row(vz_grid *g, vz_rect r, int x, int y, vz_style st, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int putf_row(vz_grid *g, vz_rect r, int x, int y, vz_style st, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return put_row(g, r, x, y, buf, st);
}

/* The title row of a panel: " NAME  info ───"; the panel with the keyboard
 * is highlighted (monochrome: bold with a '>' mark). */
static void title(vz_grid *g, vz_rect r, const vz_view *v, vz_panel_id id, const char *name,
                  const char *info)
{
    if (r.w < 1 || r.h < 1) return;
    int focused = v->focus == (int)id;
    vz_style ts = focused ? st_fgbg(v, C_FOCUS_FG, C_FOCUS_BG, 1) : st_fgbg(v, C_TITLE_FG, C_TITLE_BG, 1);
    vz_style is = focused ? st_fgbg(v, C_FOCUS_FG, C_FOCUS_BG, 0) : st_fgbg(v, C_TITLE_FG, C_TITLE_BG, 0);
    vz_rect row = {r.x, r.y, r.w, 1};
    if (v->depth == VZ_DEPTH_MONO) {
        vz_fill(g, row, "-", VZ_STYLE_PLAIN);
        ts = is = VZ_STYLE_PLAIN;
        ts.bold = 1;
        is.bold = focused;
    } else {
        vz_fill(g, row, " ", is);
    }
    int x = r.x;
    x += put_row(g, row, x, r.y, focused && v->depth == VZ_DEPTH_MONO ? ">" : " ", ts);
    x += put_row(g, row, x, r.y, name, ts);
    if (info && *info) {
        x += put_row(g, row, x, r.y, " ", is);
        x += put_row(g, row, x, r.y, info, is);
    }
    if (x < r.x + r.w) put_row(g, row, x, r.y, " ", is);
}

static const float *head_S(const vz_data *d, int l, int h)
{
    const ms_config *c = &d->model->cfg;
    return ms_state_S(c, (float *)d->state, l) + (size_t)h * (size_t)d->N * (size_t)d->N;
}

static double fro(const float *m, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)m[i] * (double)m[i];
    return sqrt(s);
}

/* a one-line note, dim */
static void note(vz_grid *g, vz_rect r, const vz_view *v, int y, const char *s)
{
    put_row(g, r, r.x + 1, y, s, st_fg(v, C_DIM, 0));
}

/* ---- tokens ---- */

/* Walk the text as wrapped into width w: calls fn for each shown cell
 * (line index, column, glyph, token parity).  Returns the number of lines. */
typedef void (*wrap_fn)(void *ctx, int line, int col, const char *glyph, int parity);

static int wrap_text(const vz_view *v, const vz_data *d, int w, wrap_fn fn, void *ctx)
{
    int line = 0, col = 0, tok = 0;
    const char *s = d->text ? d->text : "";
    size_t n = d->text_len, i = 0;
    while (i < n) {
        while (tok + 1 < d->n_tok_off && (size_t)d->tok_off[tok + 1] <= i) tok++;
        uint32_t cp;
        size_t k = (size_t)vz_utf8_next(s + i, n - i, &cp);
        char gl[8];
        const char *glyph = gl;
        int cw;
        if (cp == '\n') { glyph = G(v, "\xe2\x8f\x8e", "$"); cw = 1; }
        else if (cp == '\t') { glyph = G(v, "\xe2\x86\x92", ">"); cw = 1; }
        else if (cp < 0x20 || cp == 0x7F) { glyph = G(v, "\xc2\xb7", "."); cw = 1; }
        else {
            cw = vz_cp_width(cp);
            if (v->ascii && cp >= 0x80) { cp = '?'; cw = 1; }
            vz_utf8_put(cp, gl);
        }
        if (cw > 0) {
            if (col + cw > w) { line++; col = 0; }
            if (fn) fn(ctx, line, col, glyph, tok & 1);
            col += cw;
        }
        if (cp == '\n') { line++; col = 0; }
        i += k;
    }
    /* the position cursor after the last token */
    if (col + 1 > w) { line++; col = 0; }
    if (fn) fn(ctx, line, col, NULL, 0);
    return line + 1;
}

typedef struct {
    vz_grid *g;
    vz_rect r;
    const vz_view *v;
    int first;           /* first line shown */
} tok_ctx;

static void tok_cell(void *ctx, int line, int col, const char *glyph, int parity)
{
    tok_ctx *t = ctx;
    if (line < t->first) return;
    int y = t->r.y + line - t->first;
    if (!glyph) {
        put_row(t->g, t->r, t->r.x + col, y, G(t->v, "\xe2\x96\x8c", "_"), st_fg(t->v, C_CURSOR, 1));
        return;
    }
    vz_style st = parity && t->v->depth != VZ_DEPTH_MONO ? st_fg(t->v, C_TOK_ALT, 0) : VZ_STYLE_PLAIN;
    if (t->r.x + col < t->r.x + t->r.w) vz_put_glyph(t->g, t->r.x + col, y, glyph, st);
}

static void draw_tokens(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    (void)ch;
    char info[160];
    snprintf(info, sizeof info, "%s @ %lld%s", d->branch, (long long)d->position, d->edited ? " (edited)" : "");
    vz_rect body = r;
    if (r.h >= 2) {
        title(g, r, v, VZ_P_TOKENS, "tokens", info);
        body.y++;
        body.h--;
    } else {
        /* one row: the branch and position first */
        char pre[96];
        snprintf(pre, sizeof pre, "%s@%lld%s ", d->branch, (long long)d->position, d->edited ? "*" : "");
        int k = put_row(g, r, r.x, r.y, pre, st_fg(v, C_DIM, 1));
        body.x += k;
        body.w -= k;
    }
    if (body.w < 1 || body.h < 1) return;
    if (d->n_tokens == 0) {
        put_row(g, body, body.x, body.y, G(v, "\xe2\x96\x8c", "_"), st_fg(v, C_CURSOR, 1));
        put_row(g, body, body.x + 2, body.y, "(no tokens yet: feed TEXT)", st_fg(v, C_DIM, 0));
        return;
    }
    int lines = wrap_text(v, d, body.w, NULL, NULL);
    tok_ctx t = { g, body, v, max_i(0, lines - body.h) };
    wrap_text(v, d, body.w, tok_cell, &t);
}

/* ---- overview ---- */

static void draw_overview(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    (void)ch;
    int L = d->L, H = d->H;
    if (!d->ov || L < 1 || H < 1) return;
    if (v->sse_marks_n < L) {
        int *m = realloc(v->sse_marks, (size_t)L * sizeof(int));
        if (!m) return;
        v->sse_marks = m;
        v->sse_marks_n = L;
    }
    for (int l = 0; l < L; l++) v->sse_marks[l] = d->Hs;
    vz_scale_fit(&v->os, d->ov, (size_t)L * (size_t)H);
    char info[160];
    snprintf(info, sizeof info, "%s", d->ov_label);
    title(g, r, v, VZ_P_OVERVIEW, "overview", info);
    vz_rect body = {r.x, r.y + 1, r.w, r.h - 1};
    if (body.h < 1) return;
    /* the grid, then (rows permitting) its colour bar and a legend */
    int extra = body.h - (L + 1);
    vz_rect grid = body;
    if (extra >= 1) grid.h = L + 1;
    vz_size z = vz_overview(g, grid, d->ov, L, H, v->sse_marks, &v->os, v->depth, d->sel.layer, d->sel.head);
    int y = body.y + z.h;
    if (y < body.y + body.h) {
        vz_colorbar(g, (vz_rect){body.x, y, min_i(body.w, max_i(z.w, 24)), 1}, &v->os, v->depth);
        y++;
    }
    if (y < body.y + body.h && (d->ov_note[0] || d->Hs)) {
        char leg[160];
        if (d->ov_note[0]) snprintf(leg, sizeof leg, "%s", d->ov_note);
        else snprintf(leg, sizeof leg, "%s SSE heads 0..%d", v->depth == VZ_DEPTH_MONO || v->ascii ? "*" : "\xe2\x80\xa2",
                      d->Hs - 1);
        note(g, body, v, y, leg);
    }
}

static int key_move(vz_view *v, int key, const vz_data *d)
{
    int L = d ? d->L : 1, H = d ? d->H : 1;
    int l = v->sel_l, h = v->sel_h;
    switch (key) {
    case VZ_K_UP: l--; break;
    case VZ_K_DOWN: l++; break;
    case VZ_K_LEFT: h--; break;
    case VZ_K_RIGHT: h++; break;
    case VZ_K_HOME: l = 0; break;
    case VZ_K_END: l = L - 1; break;
    default: return 0;
    }
    if (l < 0) l = 0;
    if (l >= L) l = L - 1;
    if (h < 0) h = 0;
    if (h >= H) h = H - 1;
    v->sel_l = l;
    v->sel_h = h;
    return VZ_KF_USED | VZ_KF_DRAW | VZ_KF_REFILL;
}

static int key_overview(vz_view *v, int key, const vz_data *d)
{
    if (key == VZ_K_ENTER) {
        v->zoom = VZ_ZOOM_HEAD;
        v->focus = VZ_P_ZOOM;
        return VZ_KF_USED | VZ_KF_DRAW | VZ_KF_REFILL;
    }
    return key_move(v, key, d);
}

/* ---- zoom ---- */

/* one head's matrix with (for an SSE head) q under it and e_raw, e beside
 * it, in r; returns the heatmap's size */
static vz_size head_block(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, int l, int h, int strips)
{
    int N = d->N, Hs = d->Hs;
    vz_size none = {0, 0};
    int hw = r.w - (strips ? 6 : 0), hh = r.h - (strips ? 1 : 0);
    if (hw < 1 || hh < 1) return none;
    vz_size z = vz_heatmap(g, (vz_rect){r.x, r.y, hw, hh}, head_S(d, l, h), N, N, 0, &v->zs, v->depth);
    if (!strips || z.w == 0) return z;
    vz_rect qr = {r.x, r.y + z.h, z.w, 1};
    vz_rect er = {r.x + z.w + 1, r.y, 2, z.h}, ee = {r.x + z.w + 4, r.y, 2, z.h};
    if (d->rec_ok) {
        size_t off = ((size_t)l * (size_t)Hs + (size_t)h) * (size_t)N;
        vz_scale s;
        vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_SYM);
        vz_scale_fit(&s, d->rec->q + off, (size_t)N);
        vz_strip_h(g, qr, d->rec->q + off, N, &s, v->depth);
        vz_scale_fit(&s, d->rec->e_raw + off, (size_t)N);
        vz_strip_v(g, er, d->rec->e_raw + off, N, &s, v->depth);
        vz_scale_fit(&s, d->rec->e + off, (size_t)N);
        vz_strip_v(g, ee, d->rec->e + off, N, &s, v->depth);
    } else {
        vz_style dim = st_fg(v, C_DIM, 0);
        vz_fill(g, qr, G(v, "\xc2\xb7", "."), dim);
        vz_fill(g, er, G(v, "\xc2\xb7", "."), dim);
        vz_fill(g, ee, G(v, "\xc2\xb7", "."), dim);
    }
    return z;
}

/* the parameter-token rows: "Ks·e  #12 +3.21 ..." and "relu(s)²  #12 9.8 ..." */
static void ptok_rows(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, int y, int rows, const char *what)
{
    if (rows < 1) return;
    if (!d->rec_ok) {
        note(g, r, v, y, "q, e and the parameter tokens: no step recorded at this position (feed a token)");
        return;
    }
    if (d->n_ptok == 0) return;
    char buf[1024];
    int k = snprintf(buf, sizeof buf, "%s %s", v->ascii ? "|Ks.e|" : "|Ks\xc2\xb7" "e|", what);
    for (int i = 0; i < d->n_ptok && k < (int)sizeof buf - 32; i++)
        k += snprintf(buf + k, sizeof buf - (size_t)k, "  #%d %+.3g", d->by_ks[i].id, d->by_ks[i].val);
    put_row(g, r, r.x + 1, y, buf, VZ_STYLE_PLAIN);
    if (rows < 2) return;
    k = snprintf(buf, sizeof buf, "%s", v->ascii ? "relu(s)^2" : "relu(s)\xc2\xb2");
    for (int i = 0; i < d->n_ptok && k < (int)sizeof buf - 32; i++)
        k += snprintf(buf + k, sizeof buf - (size_t)k, "  #%d %.3g", d->by_s2[i].id, d->by_s2[i].val);
    put_row(g, r, r.x + 1, y + 1, buf, VZ_STYLE_PLAIN);
}

static void draw_zoom_head(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d)
{
    int l = d->sel.layer, h = d->sel.head, N = d->N;
    int sse = h < d->Hs;
    const float *S = head_S(d, l, h);
    vz_scale_fit(&v->zs, S, (size_t)N * (size_t)N);
    char info[200];
    snprintf(info, sizeof info, "L%d.H%d%s  %s %.4g", l, h, sse ? " SSE head" : "",
             v->ascii ? "|S|" : "\xe2\x80\x96S\xe2\x80\x96", fro(S, (size_t)N * (size_t)N));
    title(g, r, v, VZ_P_ZOOM, "zoom", info);
    int pt = sse ? min_i(2, max_i(0, r.h - 8)) : 0;
    vz_rect body = {r.x + 1, r.y + 1, r.w - 1, r.h - 2 - pt};
    vz_size z = head_block(g, body, v, d, l, h, sse);
    if (z.w == 0) { note(g, r, v, r.y + 1, "(too small)"); return; }
    int y = r.y + 1 + z.h + (sse ? 1 : 0);
    char leg[200];
    if (sse)
        snprintf(leg, sizeof leg, "%s", v->ascii ? "rows: value i, cols: key j; q under (key axis); e_raw, e right"
                                                 : "value i \xe2\x86\x93 key j \xe2\x86\x92 \xc2\xb7 q \xe2\x86\x91 key axis \xc2\xb7 e_raw, e \xe2\x86\x90 value axis");
    else if (d->Hs)
        snprintf(leg, sizeof leg, "%s  (not an SSE head: the SSE reads heads 0..%d)",
                 v->ascii ? "rows: value i, cols: key j" : "value i \xe2\x86\x93 key j \xe2\x86\x92", d->Hs - 1);
    else
        snprintf(leg, sizeof leg, "%s", v->ascii ? "rows: value i, cols: key j" : "value i \xe2\x86\x93 key j \xe2\x86\x92");
    note(g, r, v, y, leg);
    if (sse) ptok_rows(g, r, v, d, y + 1, r.y + r.h - (y + 1), "(this head)");
}

static void draw_zoom_sse(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d)
{
    int l = d->sel.layer, N = d->N, Hs = d->Hs;
    char info[120];
    snprintf(info, sizeof info, "SSE of layer %d", l);
    title(g, r, v, VZ_P_ZOOM, "zoom", info);
    if (Hs < 1) {
        note(g, r, v, r.y + 1, "this model has no SSE heads (plain RWKV-7): 'view L.H' shows a head");
        return;
    }
    /* one scale over the layer's SSE heads, so that they compare */
    vz_scale_fit(&v->zs, head_S(d, l, 0), (size_t)Hs * (size_t)N * (size_t)N);
    int pt = min_i(2, max_i(0, r.h - 8));
    int bw = (r.w - 1) / Hs;
    int y0 = r.y + 2, bh = r.h - 3 - pt;
    vz_size z = {0, 0};
    for (int h = 0; h < Hs; h++) {
        vz_rect b = {r.x + 1 + h * bw, y0, bw - 1, bh};
        putf_row(g, r, b.x, r.y + 1, VZ_STYLE_PLAIN, "H%d", h);
        vz_size zh = head_block(g, b, v, d, l, h, 1);
        if (zh.h > z.h) z = zh;
    }
    if (z.w == 0) { note(g, r, v, r.y + 1, "(too small)"); return; }
    int y = y0 + z.h + 1;
    note(g, r, v, y, v->ascii ? "each: value i x key j, q under, e_raw and e right"
                              : "each: value i \xe2\x86\x93 key j \xe2\x86\x92, q under, e_raw and e right");
    ptok_rows(g, r, v, d, y + 1, r.y + r.h - (y + 1), "(all SSE heads)");
}

static void draw_zoom(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    (void)ch;
    if (d->L < 1 || d->H < 1 || !d->state) return;
    if (d->sel.zoom == VZ_ZOOM_SSE) draw_zoom_sse(g, r, v, d);
    else draw_zoom_head(g, r, v, d);
}

static int key_zoom(vz_view *v, int key, const vz_data *d)
{
    return key_move(v, key, d);
}

/* ---- next tokens ---- */

static void draw_topk(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    (void)ch;
    char info[32];
    snprintf(info, sizeof info, "top %d", d->k ? d->k : v->topk);
    title(g, r, v, VZ_P_TOPK, "next", info);
    if (!d->has_logits) {
        note(g, r, v, r.y + 1, "(no logits yet: feed a token)");
        return;
    }
    int bw = min_i(10, max_i(3, r.w / 4));
    static const char *const eighths[9] = {
        "", "\xe2\x96\x8f", "\xe2\x96\x8e", "\xe2\x96\x8d", "\xe2\x96\x8c",
        "\xe2\x96\x8b", "\xe2\x96\x8a", "\xe2\x96\x89", "\xe2\x96\x88",
    };
    vz_style bar = st_fg(v, C_TOK_ALT, 0);
    for (int i = 0; i < d->k && i < r.h - 1; i++) {
        int y = r.y + 1 + i, x = r.x;
        x += putf_row(g, r, x, y, VZ_STYLE_PLAIN, "%5.1f%% ", 100.0 * d->top_p[i]);
        int e8 = (int)lround(d->top_p[i] * bw * 8);
        for (int c = 0; c < bw; c++) {
            int k = min_i(8, max_i(0, e8 - 8 * c));
            const char *gl = v->ascii ? (k >= 4 ? "#" : " ") : (k ? eighths[k] : " ");
            put_row(g, r, x + c, y, gl, bar);
        }
        x += bw + 1;
        char q[VZ_TOKSTR + 4];
        snprintf(q, sizeof q, "\"%s\"", d->top_str[i]);
        put_row(g, r, x, y, q, VZ_STYLE_PLAIN);
    }
}

static int key_topk(vz_view *v, int key, const vz_data *d)
{
    (void)d;
    if (key == VZ_K_UP && v->topk > 1) v->topk--;
    else if (key == VZ_K_DOWN && v->topk < VZ_TOPK_MAX) v->topk++;
    else return 0;
    return VZ_KF_USED | VZ_KF_DRAW | VZ_KF_REFILL;
}

/* ---- colour bar ---- */

static void draw_bar(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    (void)d; (void)ch;
    int x = r.x + put_row(g, r, r.x, r.y, " S ", st_fg(v, C_DIM, 0));
    vz_colorbar(g, (vz_rect){x, r.y, r.x + r.w - x, 1}, &v->zs, v->depth);
}

/* ---- output ---- */

/* rows line i of the log takes at width w */
static int log_rows_of(const char *s, int w)
{
    int cw = vz_text_width(s, strlen(s));
    return cw <= 0 ? 1 : (cw + w - 1) / w;
}

static vz_style log_style(const vz_view *v, vz_log_kind k)
{
    switch (k) {
    case VZ_LOG_ERR: return st_fg(v, C_ERR, 1);
    case VZ_LOG_CMD: return st_fg(v, C_CMD, 1);
    case VZ_LOG_NOTE: return st_fg(v, C_NOTE, 0);
    default: return VZ_STYLE_PLAIN;
    }
}

/* draw the wrapped line s so that its last row is at y_last (rows above
 * body.y are skipped); returns the rows it takes */
static int log_line(vz_grid *g, vz_rect body, const char *s, int y_last, vz_style st)
{
    int w = body.w, rows = log_rows_of(s, w);
    int y = y_last - rows + 1, x = 0;
    size_t n = strlen(s), i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k = (size_t)vz_utf8_next(s + i, n - i, &cp);
        int cw = vz_cp_width(cp);
        if (cw > 0 && x + cw > w) { y++; x = 0; }
        if (y >= body.y && y < body.y + body.h) {
            char gl[5];
            vz_utf8_put(cp, gl);
            vz_put(g, body.x + x, y, w - x, gl, (size_t)-1, st);
        }
        x += cw;
        i += k;
    }
    return rows;
}

static void draw_log(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    (void)d;
    const vz_log *lg = ch ? ch->log : NULL;
    int n = vz_log_count(lg);
    if (v->log_scroll > n - 1) v->log_scroll = n > 0 ? n - 1 : 0;
    char info[64] = "";
    if (v->log_scroll) snprintf(info, sizeof info, "%d line%s up", v->log_scroll, v->log_scroll == 1 ? "" : "s");
    title(g, r, v, VZ_P_LOG, "output", info);
    vz_rect body = {r.x, r.y + 1, r.w, r.h - 1};
    if (body.w < 1 || body.h < 1) return;
    int y = body.y + body.h - 1;
    for (int i = n - 1 - v->log_scroll; i >= 0 && y >= body.y; i--) {
        vz_log_kind k;
        const char *s = vz_log_line(lg, i, &k);
        y -= log_line(g, body, s, y, log_style(v, k));
    }
}

static int key_log(vz_view *v, int key, const vz_data *d)
{
    (void)d;
    int page = v->rect[VZ_P_LOG].h > 2 ? v->rect[VZ_P_LOG].h - 2 : 1;
    switch (key) {
    case VZ_K_UP: v->log_scroll++; break;
    case VZ_K_DOWN: if (v->log_scroll > 0) v->log_scroll--; break;
    case VZ_K_PGUP: v->log_scroll += page; break;
    case VZ_K_PGDN: v->log_scroll = v->log_scroll > page ? v->log_scroll - page : 0; break;
    case VZ_K_HOME: v->log_scroll = 1 << 30; break;
    case VZ_K_END: v->log_scroll = 0; break;
    default: return 0;
    }
    return VZ_KF_USED | VZ_KF_DRAW;
}

/* ---- status line ---- */

static void draw_status(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    vz_rect row = {r.x, r.y, r.w, 1};
    if (ch && ch->banner) {
        vz_style bs = st_fgbg(v, 0xffffff, C_BANNER_BG, 1);
        if (v->depth == VZ_DEPTH_MONO) bs = (vz_style){VZ_DEFAULT, VZ_DEFAULT, 1};
        vz_fill(g, row, " ", bs);
        put_row(g, row, r.x, r.y, ch->banner, bs);
        return;
    }
    vz_style ss = st_fgbg(v, C_STATUS_FG, C_STATUS_BG, 0);
    vz_fill(g, row, " ", ss);
    char left[300];
    char sel[48];
    if (d->sel.zoom == VZ_ZOOM_SSE) snprintf(sel, sizeof sel, "sse %d", d->sel.layer);
    else snprintf(sel, sizeof sel, "L%d.H%d", d->sel.layer, d->sel.head);
    snprintf(left, sizeof left, " %s%sL%d H%d N%d Hs%d | view %s | scale %s | %s | ? help",
             d->model_name, d->model_name[0] ? " | " : "", d->L, d->H, d->N, d->Hs, sel,
             vz_scale_name(v->zs.mode), v->depth == VZ_DEPTH_MONO ? "mono" : vz_depth_name(v->depth));
    /* the right side (what runs, how to stop it, how long it took) first:
     * the left side gets what is left */
    int room = r.w;
    if (ch && ch->status && *ch->status) {
        int sw = min_i(vz_text_width(ch->status, strlen(ch->status)), r.w - 1);
        int sx = r.x + r.w - sw - 1;
        vz_style rs = ch->running ? st_fgbg(v, 0xffd75f, C_STATUS_BG, 1) : ss;
        if (v->depth == VZ_DEPTH_MONO) rs.bold = ch->running;
        put_row(g, row, max_i(sx, r.x), r.y, ch->status, rs);
        room = sx - r.x - 1;
    }
    if (room > 0) vz_put(g, r.x, r.y, room, left, (size_t)-1, ss);
}

/* ---- command line ---- */

static void draw_cmd(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    (void)d;
    if (!ch) return;
    const char *p = ch->prompt ? ch->prompt : "", *s = ch->line ? ch->line : "";
    size_t n = strlen(s);
    size_t point = ch->point < 0 ? 0 : (size_t)ch->point > n ? n : (size_t)ch->point;
    int pw = vz_text_width(p, strlen(p));
    if (pw > r.w / 2) pw = r.w / 2;
    put_row(g, r, r.x, r.y, p, st_fg(v, C_CMD, 1));
    /* scroll the text so that the cursor stays visible */
    int avail = r.w - pw - 1;
    if (avail < 1) return;
    int cur = vz_text_width(s, point);
    size_t start = 0;
    while (cur > avail && start < point) {
        uint32_t cp;
        int k = vz_utf8_next(s + start, n - start, &cp);
        cur -= vz_cp_width(cp);
        start += (size_t)k;
    }
    vz_put(g, r.x + pw, r.y, avail, s + start, n - start, VZ_STYLE_PLAIN);
}

/* the command line's cursor cell for the same inputs as draw_cmd */
static int cmd_cursor_x(vz_rect r, const vz_chrome *ch)
{
    const char *p = ch->prompt ? ch->prompt : "", *s = ch->line ? ch->line : "";
    size_t n = strlen(s);
    size_t point = ch->point < 0 ? 0 : (size_t)ch->point > n ? n : (size_t)ch->point;
    int pw = vz_text_width(p, strlen(p));
    if (pw > r.w / 2) pw = r.w / 2;
    int avail = r.w - pw - 1;
    int cur = vz_text_width(s, point);
    if (avail < 1) return r.x + min_i(pw, r.w - 1);
    if (cur > avail) cur = avail;
    return r.x + pw + cur;
}

/* ---- the table ---- */

typedef struct {
    const char *name;
    void (*draw)(vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch);
    int (*key)(vz_view *v, int key, const vz_data *d);   /* NULL: no keys of its own */
} vz_panel;

static const vz_panel panels[VZ_P_N] = {
    [VZ_P_TOKENS] = {"tokens", draw_tokens, NULL},
    [VZ_P_OVERVIEW] = {"overview", draw_overview, key_overview},
    [VZ_P_ZOOM] = {"zoom", draw_zoom, key_zoom},
    [VZ_P_TOPK] = {"next", draw_topk, key_topk},
    [VZ_P_BAR] = {"colour bar", draw_bar, NULL},
    [VZ_P_LOG] = {"output", draw_log, key_log},
    [VZ_P_STATUS] = {"status", draw_status, NULL},
    [VZ_P_CMD] = {"command line", draw_cmd, NULL},
};

const char *vz_panel_name(vz_panel_id id)
{
    return (unsigned)id < VZ_P_N ? panels[id].name : "?";
}

void vz_panel_draw(vz_panel_id id, vz_grid *g, vz_rect r, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    if ((unsigned)id >= VZ_P_N || !g || !v || !d || !d->model) return;
    r = vz_rect_clip(g, r);
    if (r.w < 1 || r.h < 1) return;
    panels[id].draw(g, r, v, d, ch);
}

int vz_panel_key(vz_panel_id id, vz_view *v, int key, const vz_data *d)
{
    if ((unsigned)id >= VZ_P_N || !panels[id].key) return 0;
    return panels[id].key(v, key, d);
}

int vz_cmd_cursor(vz_rect r, const vz_chrome *ch)
{
    return cmd_cursor_x(r, ch);
}
