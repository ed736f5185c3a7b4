/* heatmap.c: matrix, vector, colour bar and overview renderers (see
 * heatmap.h for the layout and the pooling rule).
 *
 * What it is: loops from data to cells through colormap.c; every write goes
 * through put_in(), which refuses cells outside the target rectangle, so the
 * "never outside the rectangle" promise holds by construction.
 * What it is not: a panel (no state, no keys, no titles).
 */
#include "heatmap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Write one glyph if (x, y) lies in the clipped rectangle c. */
static void put_in(vz_grid *g, vz_rect c, int x, int y, const char *glyph, vz_style st)
{
    if (x < c.x || y < c.y || x >= c.x + c.w || y >= c.y + c.h) return;
    vz_put_glyph(g, x, y, glyph, st);
}

/* Text clipped to c, from (x, y). */
static int text_in(vz_grid *g, vz_rect c, int x, int y, const char *s, vz_style st)
{
    if (y < c.y || y >= c.y + c.h || x >= c.x + c.w) return 0;
    int skip = x < c.x ? c.x - x : 0;
    int n = (int)strlen(s);
    if (skip >= n) return 0;
    return vz_put(g, x + skip, y, c.x + c.w - (x + skip), s + skip, (size_t)-1, st);
}

/* Block k of n_out over n source items: [*a, *b). */
static void block(int k, int n_out, int n, int *a, int *b)
{
    *a = (int)((long)k * n / n_out);
    *b = (int)((long)(k + 1) * n / n_out);
    if (*b <= *a) *b = *a + 1;
}

/* Max-|x| over rows [r0,r1) × cols [c0,c1); a non-finite entry wins. */
static float pool(const float *m, size_t stride, int r0, int r1, int c0, int c1)
{
    float best = 0;
    int have = 0;
    for (int i = r0; i < r1; i++)
        for (int j = c0; j < c1; j++) {
            float v = m[(size_t)i * stride + (size_t)j];
            if (!isfinite(v)) return v;
            if (!have || fabsf(v) > fabsf(best)) { best = v; have = 1; }
        }
    return best;
}

static int min_i(int a, int b) { return a < b ? a : b; }

vz_size vz_heatmap_size(int rows, int cols, int w, int h, vz_depth d)
{
    vz_size z = {0, 0};
    if (rows < 1 || cols < 1 || w < 1 || h < 1) return z;
    z.w = min_i(cols, w);
    if (d == VZ_DEPTH_MONO) z.h = min_i(rows, h);
    else z.h = (min_i(rows, 2 * h) + 1) / 2;
    return z;
}

vz_size vz_heatmap(vz_grid *g, vz_rect r, const float *m, int rows, int cols, size_t stride,
                   const vz_scale *s, vz_depth d)
{
    vz_size z = {0, 0};
    if (!g || !m || !s || rows < 1 || cols < 1) return z;
    if (stride == 0) stride = (size_t)cols;
    vz_rect c = vz_rect_clip(g, r);
    z = vz_heatmap_size(rows, cols, r.w, r.h, d);
    if (z.w == 0) return z;
    int pc = z.w;
    int pr = d == VZ_DEPTH_MONO ? z.h : min_i(rows, 2 * r.h);
    for (int k = 0; k < pc; k++) {
        int c0, c1;
        block(k, pc, cols, &c0, &c1);
        if (r.x + k < c.x || r.x + k >= c.x + c.w) continue;
        if (d == VZ_DEPTH_MONO) {
            for (int i = 0; i < pr; i++) {
                int r0, r1;
                block(i, pr, rows, &r0, &r1);
                float v = pool(m, stride, r0, r1, c0, c1);
                put_in(g, c, r.x + k, r.y + i, vz_scale_glyph(s, v), VZ_STYLE_PLAIN);
            }
            continue;
        }
        for (int y = 0; y < z.h; y++) {
            int r0, r1;
            block(2 * y, pr, rows, &r0, &r1);
            vz_style st = VZ_STYLE_PLAIN;
            st.fg = vz_scale_color(s, d, pool(m, stride, r0, r1, c0, c1));
            if (2 * y + 1 < pr) {
                block(2 * y + 1, pr, rows, &r0, &r1);
                st.bg = vz_scale_color(s, d, pool(m, stride, r0, r1, c0, c1));
            }
            put_in(g, c, r.x + k, r.y + y, VZ_HALF_BLOCK, st);
        }
    }
    return z;
}

vz_size vz_strip_h(vz_grid *g, vz_rect r, const float *v, int n, const vz_scale *s, vz_depth d)
{
    vz_size z = {0, 0};
    if (!g || !v || !s || n < 1 || r.w < 1 || r.h < 1) return z;
    vz_rect c = vz_rect_clip(g, r);
    z.w = min_i(n, r.w);
    z.h = r.h;
    for (int k = 0; k < z.w; k++) {
        int a, b;
        block(k, z.w, n, &a, &b);
        float x = pool(v, 1, 0, 1, a, b);
        for (int y = 0; y < r.h; y++) {
            if (d == VZ_DEPTH_MONO) {
                put_in(g, c, r.x + k, r.y + y, vz_scale_glyph(s, x), VZ_STYLE_PLAIN);
            } else {
                uint32_t col = vz_scale_color(s, d, x);
                put_in(g, c, r.x + k, r.y + y, VZ_HALF_BLOCK, (vz_style){col, col, 0});
            }
        }
    }
    return z;
}

vz_size vz_strip_v(vz_grid *g, vz_rect r, const float *v, int n, const vz_scale *s, vz_depth d)
{
    /* a column vector is an n×1 matrix; each row then fills the width */
    vz_size z = {0, 0};
    if (!g || !v || !s || n < 1 || r.w < 1 || r.h < 1) return z;
    for (int x = 0; x < r.w; x++) {
        vz_rect col = {r.x + x, r.y, 1, r.h};   /* inside r; vz_heatmap clips to the grid */
        z = vz_heatmap(g, col, v, n, 1, 1, s, d);
    }
    z.w = r.w;
    return z;
}

vz_size vz_colorbar(vz_grid *g, vz_rect r, const vz_scale *s, vz_depth d)
{
    vz_size z = {0, 0};
    if (!g || !s || r.w < 1 || r.h < 1) return z;
    vz_rect c = vz_rect_clip(g, r);
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, "%.3g", s->lo);
    snprintf(hi, sizeof hi, "%.3g", s->hi);
    const char *mode = vz_scale_name(s->mode);
    int nl = (int)strlen(lo), nh = (int)strlen(hi), nm = (int)strlen(mode);
    int show_nums = 1, show_mode = 1;
    int bar = r.w - (nl + 1 + 1 + nh + 1 + nm);
    if (bar < 4) { show_mode = 0; bar = r.w - (nl + 1 + 1 + nh); }
    if (bar < 4) { show_nums = 0; bar = r.w; }
    int x = r.x;
    if (show_nums) {
        x += text_in(g, c, x, r.y, lo, VZ_STYLE_PLAIN);
        x += 1;
    }
    double t0 = s->map == VZ_MAP_DIVERGING ? -1 : 0;
    for (int k = 0; k < bar; k++) {
        double t = bar > 1 ? t0 + (1 - t0) * k / (bar - 1) : (t0 + 1) / 2;
        if (d == VZ_DEPTH_MONO) {
            put_in(g, c, x + k, r.y, vz_map_glyph(s->map, t), VZ_STYLE_PLAIN);
        } else {
            uint32_t col = vz_map_color(s->map, d, t);
            put_in(g, c, x + k, r.y, VZ_HALF_BLOCK, (vz_style){col, col, 0});
        }
    }
    x += bar;
    if (show_nums) {
        x += 1;
        x += text_in(g, c, x, r.y, hi, VZ_STYLE_PLAIN);
    }
    if (show_mode) {
        x += 1;
        x += text_in(g, c, x, r.y, mode, VZ_STYLE_PLAIN);
    }
    z.w = x - r.x;
    z.h = 1;
    return z;
}

/* ---- overview ---- */

typedef struct {
    int labw;    /* "L" + digits of the last layer */
    int tw;      /* value cells per tile (a marker cell precedes them) */
    int header;  /* 1 when a row of head numbers is drawn */
    int x0;      /* x of head 0's marker cell */
} ov_layout;

static int digits(int v)
{
    int n = 1;
    while (v >= 10) { v /= 10; n++; }
    return n;
}

static ov_layout ov_lay(vz_rect r, int L, int H)
{
    ov_layout o;
    o.labw = 1 + digits(L > 0 ? L - 1 : 0);
    int avail = r.w - o.labw - 1;
    o.tw = H > 0 ? avail / H - 1 : 1;
    if (o.tw < 1) o.tw = 1;
    if (o.tw > 4) o.tw = 4;
    o.header = r.h >= L + 1 && digits(H > 0 ? H - 1 : 0) <= o.tw;
    o.x0 = r.x + o.labw + 1;
    return o;
}

vz_rect vz_overview_tile(vz_rect r, int L, int H, int l, int h)
{
    vz_rect none = {-1, -1, 0, 0};
    if (L < 1 || H < 1 || l < 0 || l >= L || h < 0 || h >= H) return none;
    ov_layout o = ov_lay(r, L, H);
    vz_rect t = {o.x0 + h * (o.tw + 1) + 1, r.y + o.header + l, o.tw, 1};
    if (t.y >= r.y + r.h || t.x >= r.x + r.w) return none;
    if (t.x + t.w > r.x + r.w) t.w = r.x + r.w - t.x;
    return t;
}

/* black or white, whichever reads better on bg */
static uint32_t contrast(uint32_t bg)
{
    if (bg & VZ_DEFAULT) return VZ_DEFAULT;
    double y = 0.2126 * ((bg >> 16) & 0xFF) + 0.7152 * ((bg >> 8) & 0xFF) + 0.0722 * (bg & 0xFF);
    return y > 140 ? 0x000000 : 0xffffff;
}

vz_size vz_overview(vz_grid *g, vz_rect r, const float *vals, int L, int H, const int *sse,
                    const vz_scale *s, vz_depth d, int sel_l, int sel_h)
{
    vz_size z = {0, 0};
    if (!g || !vals || !s || L < 1 || H < 1 || r.w < 1 || r.h < 1) return z;
    vz_rect c = vz_rect_clip(g, r);
    ov_layout o = ov_lay(r, L, H);
    int mono = d == VZ_DEPTH_MONO;
    if (o.header)
        for (int h = 0; h < H; h++) {
            char num[16];
            snprintf(num, sizeof num, "%d", h);
            text_in(g, c, o.x0 + h * (o.tw + 1) + 1, r.y, num, VZ_STYLE_PLAIN);
        }
    for (int l = 0; l < L; l++) {
        int y = r.y + o.header + l;
        if (y >= r.y + r.h) break;
        char lab[16];
        snprintf(lab, sizeof lab, "L%d", l);
        text_in(g, c, r.x, y, lab, VZ_STYLE_PLAIN);
        int nsse = sse ? sse[l] : 0;
        for (int h = 0; h < H; h++) {
            int x = o.x0 + h * (o.tw + 1);
            if (x >= r.x + r.w) break;
            int is_sel = l == sel_l && h == sel_h;
            int is_sse = h < nsse;
            float v = vals[(size_t)l * (size_t)H + (size_t)h];
            const char *mark = " ";
            vz_style ms = VZ_STYLE_PLAIN;
            if (mono && is_sel) { mark = ">"; ms.bold = 1; }
            else if (is_sse) { mark = mono ? "*" : "\xe2\x80\xa2"; ms.bold = 1; }
            put_in(g, c, x, y, mark, ms);
            for (int k = 0; k < o.tw; k++) {
                if (mono) {
                    vz_style st = VZ_STYLE_PLAIN;
                    st.bold = is_sel;
                    put_in(g, c, x + 1 + k, y, vz_scale_glyph(s, v), st);
                } else {
                    uint32_t col = vz_scale_color(s, d, v);
                    vz_style st = {col, col, 0};
                    const char *glyph = " ";
                    if (is_sel) { glyph = "\xe2\x97\x86"; st.fg = contrast(col); st.bold = 1; }
                    else glyph = VZ_HALF_BLOCK;
                    put_in(g, c, x + 1 + k, y, glyph, st);
                }
            }
        }
    }
    int w = o.labw + 1 + H * (o.tw + 1);
    int h = o.header + L;
    z.w = min_i(w, r.w);
    z.h = min_i(h, r.h);
    return z;
}
