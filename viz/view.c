/* view.c: the view's state, layout, key routing and frame (see view.h).
 *
 * What it is: the one place that decides where each panel goes for a given
 * terminal size and which panel a key belongs to; the panels themselves are
 * in panels.c.  Layout, top to bottom: tokens (title and 1-3 rows), then the
 * middle with the overview and the next tokens on the left and the zoom with
 * its colour bar on the right (one column only below 50 columns: the panel
 * with the keyboard, else the zoom), then the output, the status line, and
 * the command line on the last row.  Whatever does not fit is left out, so
 * any size, 1×1 included, draws without writing outside the grid.
 * What it is not: a terminal driver or a reader of key bytes (repl/tui.c).
 */
#include "view.h"

#include "heatmap.h"
#include "panels.h"

#include <stdlib.h>
#include <string.h>

static int min_i(int a, int b) { return a < b ? a : b; }
static int max_i(int a, int b) { return a > b ? a : b; }

void vz_view_init(vz_view *v, vz_depth depth, int ascii)
{
    memset(v, 0, sizeof *v);
    v->depth = depth;
    v->ascii = ascii;
    v->topk = 8;
    v->focus = VZ_P_CMD;
    vz_scale_init(&v->zs, VZ_MAP_DIVERGING, VZ_SCALE_AUTO);
    vz_scale_init(&v->os, VZ_MAP_SEQUENTIAL, VZ_SCALE_AUTO);
}

void vz_view_free(vz_view *v)
{
    free(v->sse_marks);
    v->sse_marks = NULL;
    v->sse_marks_n = 0;
}

vz_select vz_view_select(const vz_view *v)
{
    vz_select s = { v->sel_l, v->sel_h, v->zoom, v->metric, v->topk };
    return s;
}

void vz_view_clamp(vz_view *v, int L, int H)
{
    if (v->sel_l >= L) v->sel_l = L - 1;
    if (v->sel_h >= H) v->sel_h = H - 1;
    if (v->sel_l < 0) v->sel_l = 0;
    if (v->sel_h < 0) v->sel_h = 0;
}

void vz_view_set_scale(vz_view *v, vz_scale_mode m)
{
    vz_scale_set_mode(&v->zs, m);
    vz_scale_set_mode(&v->os, m);
}

/* ---- layout ---- */

static int digits(int x)
{
    int n = 1;
    while (x >= 10) { x /= 10; n++; }
    return n;
}

static int shown(const vz_view *v, int id)
{
    return v->rect[id].w > 0 && v->rect[id].h > 0;
}

void vz_view_layout(vz_view *v, const vz_data *d, int W, int H)
{
    memset(v->rect, 0, sizeof v->rect);
    v->W = W;
    v->H = H;
    if (W < 1 || H < 1) return;
    int L = d && d->L > 0 ? d->L : 1, NH = d && d->H > 0 ? d->H : 1;
    int top = 0, bottom = H - 1;
    v->rect[VZ_P_CMD] = (vz_rect){0, H - 1, W, 1};
    if (H >= 3) {
        v->rect[VZ_P_STATUS] = (vz_rect){0, H - 2, W, 1};
        bottom = H - 2;
    }
    if (!v->hidden[VZ_P_TOKENS] && bottom - top >= 1) {
        int rows = v->tok_rows ? v->tok_rows : H >= 30 ? 3 : H >= 14 ? 2 : 1;
        int th = rows + (H >= 10 ? 1 : 0);
        th = min_i(th, max_i(1, (bottom - top) / 2));
        v->rect[VZ_P_TOKENS] = (vz_rect){0, top, W, th};
        top += th;
    }
    if (!v->hidden[VZ_P_LOG]) {
        int rows = v->log_rows ? v->log_rows : H >= 40 ? 8 : H >= 28 ? 5 : H >= 18 ? 3 : 0;
        int lh = rows + 1;
        if (rows > 0 && bottom - top - lh >= 5) {
            v->rect[VZ_P_LOG] = (vz_rect){0, bottom - lh, W, lh};
            bottom -= lh;
        }
    }
    int mh = bottom - top;
    if (mh >= 2) {
        int show_left = !v->hidden[VZ_P_OVERVIEW] || !v->hidden[VZ_P_TOPK];
        int show_right = !v->hidden[VZ_P_ZOOM];
        if (W < 50 && show_left && show_right) {
            if (v->focus == VZ_P_OVERVIEW || v->focus == VZ_P_TOPK) show_right = 0;
            else show_left = 0;
        }
        int labw = 1 + digits(L - 1);
        int natural = max_i(labw + 1 + NH * 3, 26);
        int lw = v->left_w ? v->left_w : natural;
        lw = max_i(12, min_i(lw, W * 6 / 10));
        if (!show_right) lw = W;
        if (!show_left) lw = 0;
        if (show_left) {
            int ov_nat = 1 + 1 + L + 2;   /* title, head numbers, layers, colour bar, legend */
            int want_topk = !v->hidden[VZ_P_TOPK] ? 1 + v->topk : 0;
            int ovh = v->hidden[VZ_P_OVERVIEW] ? 0 : min_i(ov_nat, mh);
            int tkh = 0;
            if (want_topk) {
                tkh = min_i(want_topk, mh - ovh);
                if (tkh < min_i(want_topk, 4) && ovh > 0) {   /* keep a few next tokens */
                    tkh = min_i(min_i(want_topk, 4), mh / 2);
                    ovh = mh - tkh;
                }
                if (tkh < 2) tkh = 0;
            }
            if (ovh > 0) v->rect[VZ_P_OVERVIEW] = (vz_rect){0, top, lw, ovh};
            if (tkh > 0) v->rect[VZ_P_TOPK] = (vz_rect){0, top + ovh, lw, tkh};
        }
        if (show_right) {
            int rx = show_left ? lw + 1 : 0, rw = W - rx;
            if (rw >= 1) {
                int zh = mh >= 3 ? mh - 1 : mh;
                v->rect[VZ_P_ZOOM] = (vz_rect){rx, top, rw, zh};
                if (mh >= 3) v->rect[VZ_P_BAR] = (vz_rect){rx, top + zh, rw, 1};
            }
        }
    }
    if (v->focus != VZ_P_CMD && !shown(v, v->focus)) v->focus = VZ_P_CMD;
}

/* ---- keys ---- */

static const int focus_order[] = {VZ_P_OVERVIEW, VZ_P_ZOOM, VZ_P_TOPK, VZ_P_TOKENS, VZ_P_LOG, VZ_P_CMD};
#define N_FOCUS ((int)(sizeof focus_order / sizeof focus_order[0]))

static void cycle_focus(vz_view *v, int dir)
{
    int at = N_FOCUS - 1;
    for (int i = 0; i < N_FOCUS; i++)
        if (focus_order[i] == v->focus) at = i;
    for (int k = 1; k <= N_FOCUS; k++) {
        int id = focus_order[((at + dir * k) % N_FOCUS + N_FOCUS) % N_FOCUS];
        if (id == VZ_P_CMD || shown(v, id)) { v->focus = id; return; }
    }
    v->focus = VZ_P_CMD;
}

int vz_view_wants(const vz_view *v, int key, int line_empty)
{
    if (v->help) return 1;
    if (key == VZ_K_CTRL_L || key == VZ_K_F1 || key == VZ_K_PGUP || key == VZ_K_PGDN) return 1;
    if (v->focus == VZ_P_CMD)
        return line_empty && (key == VZ_K_TAB || key == VZ_K_BTAB || key == '?');
    return 1;
}

static int resize_focused(vz_view *v, int dir)
{
    switch (v->focus) {
    case VZ_P_TOKENS:
        v->tok_rows = max_i(1, min_i(20, (v->tok_rows ? v->tok_rows : max_i(1, v->rect[VZ_P_TOKENS].h - 1)) + dir));
        break;
    case VZ_P_LOG:
        v->log_rows = max_i(1, min_i(60, (v->log_rows ? v->log_rows : max_i(1, v->rect[VZ_P_LOG].h - 1)) + dir));
        break;
    case VZ_P_OVERVIEW:
    case VZ_P_TOPK:
        v->left_w = max_i(12, (v->left_w ? v->left_w : v->rect[VZ_P_OVERVIEW].w) + 2 * dir);
        break;
    case VZ_P_ZOOM:
        v->left_w = max_i(12, (v->left_w ? v->left_w : v->rect[VZ_P_OVERVIEW].w) - 2 * dir);
        break;
    default:
        return 0;
    }
    return VZ_KF_USED | VZ_KF_DRAW;
}

int vz_view_key(vz_view *v, int key, const vz_data *d)
{
    const int redraw = VZ_KF_USED | VZ_KF_DRAW;
    if (v->help) {
        v->help = 0;
        return redraw;
    }
    if (key == VZ_K_CTRL_L) return redraw | VZ_KF_FULL;
    if (key == VZ_K_F1 || (key == '?' && v->focus == VZ_P_CMD)) {
        v->help = 1;
        return redraw;
    }
    if ((key == VZ_K_PGUP || key == VZ_K_PGDN) && v->focus != VZ_P_LOG) {
        int f = vz_panel_key(VZ_P_OVERVIEW, v, key == VZ_K_PGUP ? VZ_K_UP : VZ_K_DOWN, d);
        return f ? f : redraw;
    }
    if (key == VZ_K_TAB || key == VZ_K_BTAB) {
        cycle_focus(v, key == VZ_K_TAB ? 1 : -1);
        return redraw;
    }
    if (v->focus == VZ_P_CMD) return 0;
    int f = vz_panel_key((vz_panel_id)v->focus, v, key, d);
    if (f) return f;
    switch (key) {
    case VZ_K_ESC:
    case VZ_K_ENTER:
        v->focus = VZ_P_CMD;
        return redraw;
    case '?':
        v->help = 1;
        return redraw;
    case 'c':
        vz_view_set_scale(v, (vz_scale_mode)((v->zs.mode + 1) % 5));
        return redraw;
    case 'm':
        v->metric = v->metric == VZ_OV_NORM ? VZ_OV_DELTA
                  : v->metric == VZ_OV_DELTA && v->drift_snap[0] ? VZ_OV_DRIFT : VZ_OV_NORM;
        return redraw | VZ_KF_REFILL;
    case 's':
        v->zoom = v->zoom == VZ_ZOOM_SSE ? VZ_ZOOM_HEAD : VZ_ZOOM_SSE;
        return redraw | VZ_KF_REFILL;
    case 'h':
        if (v->focus != VZ_P_CMD) {
            v->hidden[v->focus] = 1;
            v->focus = VZ_P_CMD;
        }
        return redraw;
    case 'a':
        memset(v->hidden, 0, sizeof v->hidden);
        return redraw;
    case '+':
    case '=':
        return resize_focused(v, 1) | redraw;
    case '-':
        return resize_focused(v, -1) | redraw;
    }
    if (key >= 0x20 && key < 0x110000 && key != 0x7F) {
        v->focus = VZ_P_CMD;          /* typing goes to the command line */
        return VZ_KF_TOCMD | VZ_KF_DRAW;
    }
    return VZ_KF_USED;                /* other keys mean nothing here */
}

/* ---- frame ---- */

static const char *const help_lines[] = {
    "Keys",
    "  Tab, Shift-Tab  next / previous panel (from an empty command line)",
    "  Esc             back to the command line",
    "  arrows          overview, zoom: Up/Down layer, Left/Right head",
    "                  output: scroll; next: Up/Down fewer/more tokens",
    "  PgUp, PgDn      previous / next layer (output: a page)",
    "  Home, End       first / last layer (output: top / bottom)",
    "  Enter           overview: zoom into the selected head",
    "  s               zoom: one head / the layer's SSE heads",
    "  m               overview: |S| / |dS| since the last token / drift",
    "  c               scale: auto, lock, sym, log, p99",
    "  + -             grow / shrink the panel; h hide it, a show all",
    "  ? or F1         this help; Ctrl-L redraw",
    "  Ctrl-C          stop a running command (twice at the prompt: quit)",
    "  Ctrl-D          quit (on an empty command line)",
    "Commands: view overview|L.H|sse L, scale MODE, export view F.png,",
    "  feed, gen, step, snap, ... ('help' lists them all)",
    "Any key closes this help.",
    NULL,
};

const char *const *vz_view_help_lines(void)
{
    return help_lines;
}

static void draw_help(vz_grid *g, vz_view *v)
{
    int n = 0, w = 0;
    for (; help_lines[n]; n++) w = max_i(w, vz_text_width(help_lines[n], strlen(help_lines[n])));
    int bw = min_i(w + 4, g->w), bh = min_i(n + 2, g->h);
    vz_rect b = {(g->w - bw) / 2, (g->h - bh) / 2, bw, bh};
    vz_style st = VZ_STYLE_PLAIN;
    if (v->depth != VZ_DEPTH_MONO) {
        st.fg = vz_ui_color(v->depth, 0xffffff);
        st.bg = vz_ui_color(v->depth, 0x303030);
    }
    vz_fill(g, b, " ", st);
    const char *h = v->depth == VZ_DEPTH_MONO || v->ascii ? "-" : "\xe2\x94\x80";
    vz_fill(g, (vz_rect){b.x, b.y, b.w, 1}, h, st);
    vz_fill(g, (vz_rect){b.x, b.y + b.h - 1, b.w, 1}, h, st);
    for (int i = 0; i < n && i + 1 < bh - 1; i++) {
        vz_style s = st;
        s.bold = help_lines[i][0] != ' ';
        vz_put(g, b.x + 2, b.y + 1 + i, b.w - 3, help_lines[i], (size_t)-1, s);
    }
}

/* ASCII stand-ins for the glyphs the panels use; other non-ASCII text
 * (token text, file names) becomes '?' */
static const char *const ascii_map[][2] = {
    {"\xe2\x80\x96", "|"}, {"\xce\x94", "d"}, {"\xe2\x94\x80", "-"}, {"\xe2\x94\x82", "|"},
    {"\xe2\x80\xa2", "*"}, {"\xe2\x97\x86", "#"}, {"\xe2\x96\x8c", "_"}, {"\xe2\x8f\x8e", "$"},
    {"\xe2\x86\x92", ">"}, {"\xe2\x86\x93", "v"}, {"\xe2\x86\x91", "^"}, {"\xe2\x86\x90", "<"},
    {"\xc2\xb7", "."}, {"\xc2\xb2", "2"}, {"\xe2\x80\xa6", "~"}, {"\xc3\x97", "x"},
};

/* Make every glyph of g ASCII (a terminal whose locale is not UTF-8). */
static void asciify(vz_grid *g)
{
    for (int i = 0; i < g->w * g->h; i++) {
        vz_cell *c = &g->cells[i];
        if (c->ch[0] == 0) {                 /* right half of a wide glyph */
            c->ch[0] = '?';
            c->ch[1] = 0;
            continue;
        }
        if (!((unsigned char)c->ch[0] & 0x80)) continue;
        const char *rep = "?";
        for (size_t k = 0; k < sizeof ascii_map / sizeof ascii_map[0]; k++)
            if (!strcmp(c->ch, ascii_map[k][0])) rep = ascii_map[k][1];
        c->ch[0] = rep[0];
        c->ch[1] = 0;
    }
}

void vz_view_draw(vz_grid *g, vz_view *v, const vz_data *d, const vz_chrome *ch, int *cx, int *cy)
{
    if (!g) return;
    vz_grid_clear(g);
    vz_view_layout(v, d, g->w, g->h);
    if (d && d->model) {
        for (int id = 0; id < VZ_P_N; id++)
            if (shown(v, id)) vz_panel_draw((vz_panel_id)id, g, v->rect[id], v, d, ch);
        /* the line between the two columns of the middle */
        vz_rect z = v->rect[VZ_P_ZOOM];
        if (shown(v, VZ_P_ZOOM) && z.x > 0) {
            const char *bar = v->ascii ? "|" : "\xe2\x94\x82";
            int y1 = z.y + z.h + (shown(v, VZ_P_BAR) ? 1 : 0);
            for (int y = z.y; y < y1; y++) vz_put_glyph(g, z.x - 1, y, bar, VZ_STYLE_PLAIN);
        }
    }
    if (v->help) draw_help(g, v);
    if (v->ascii) asciify(g);
    vz_rect c = v->rect[VZ_P_CMD];
    if (cx) *cx = ch && c.w > 0 ? vz_cmd_cursor(c, ch) : 0;
    if (cy) *cy = c.y;
}
