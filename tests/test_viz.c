/* test_viz.c: the viz/ renderers, headless.
 *
 * What it checks: the colour maps' designed points and sign, the scale
 * modes on data with a known answer, heatmap cells against colours computed
 * here independently (including max-|x| pooling), that no renderer writes
 * outside its rectangle, that monochrome has no colour, the PNG export read
 * back with libpng, NaN/inf handling, the cell grid's clipping and UTF-8,
 * and golden screen dumps in tests/golden/viz/ (VZ_GOLDEN_UPDATE=1 rewrites
 * them; VZ_GOLDEN_DIR moves them).
 *
 * What it is not: a test of termdraw.c (it needs a terminal) or of panels.
 * Build: linked with the viz objects except termdraw.o, -lpng -lz, libmscore.a.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cells.h"
#include "check.h"
#include "colormap.h"
#include "heatmap.h"
#include "png_export.h"

/* ---- helpers ---- */

static int chan_diff(uint32_t a, uint32_t b)
{
    if ((a & VZ_DEFAULT) || (b & VZ_DEFAULT)) return a == b ? 0 : 999;
    int w = 0;
    for (int sh = 0; sh <= 16; sh += 8) {
        int d = abs((int)((a >> sh) & 0xFF) - (int)((b >> sh) & 0xFF));
        if (d > w) w = d;
    }
    return w;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static float frand(void)   /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0) * 2 - 1);
}

/* Independent max-|x| pooling: block k of n_out over n is
 * [floor(k n / n_out), floor((k+1) n / n_out)). */
static float ref_pool(const float *m, int cols, int R, int C, int pr, int pc, int i, int j)
{
    int r0 = i * R / pr, r1 = (i + 1) * R / pr, c0 = j * C / pc, c1 = (j + 1) * C / pc;
    float best = 0;
    int have = 0;
    for (int a = r0; a < r1; a++)
        for (int b = c0; b < c1; b++) {
            float v = m[a * cols + b];
            if (!isfinite(v)) return v;
            if (!have || fabsf(v) > fabsf(best)) { best = v; have = 1; }
        }
    return best;
}

/* Independent normalisation for the linear modes (no log). */
static double ref_norm_div(double x, double lo, double hi)
{
    double dn = lo < 0 ? -lo : 0, dp = hi > 0 ? hi : 0;
    if (dn <= 0) dn = dp;
    if (dp <= 0) dp = dn;
    if (dn <= 0) return 0;
    double t = x < 0 ? x / dn : x / dp;
    return t < -1 ? -1 : t > 1 ? 1 : t;
}

static const vz_style GUARD = {0x123456, 0x654321, 1};

/* Fill the grid with guard cells. */
static void guard_fill(vz_grid *g)
{
    vz_fill(g, (vz_rect){0, 0, g->w, g->h}, "G", GUARD);
}

/* Cells outside r (clipped to g) that are no longer guard cells. */
static int guard_broken(const vz_grid *g, vz_rect r)
{
    int bad = 0;
    for (int y = 0; y < g->h; y++)
        for (int x = 0; x < g->w; x++) {
            if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h) continue;
            const vz_cell *c = vz_grid_cat(g, x, y);
            if (strcmp(c->ch, "G") || c->fg != GUARD.fg || c->bg != GUARD.bg || !c->bold) bad++;
        }
    return bad;
}

static int is_ascii_glyph(const char *s)
{
    return s[0] && !s[1] && (unsigned char)s[0] >= 0x20 && (unsigned char)s[0] < 0x7F;
}

/* ---- colour maps ---- */

static void test_maps(void)
{
    struct { vz_map_kind k; double t; uint32_t want; const char *what; } pts[] = {
        {VZ_MAP_DIVERGING, -1, 0x053061, "diverging -1"},
        {VZ_MAP_DIVERGING, 0, 0xf7f7f7, "diverging 0"},
        {VZ_MAP_DIVERGING, 1, 0x67001f, "diverging +1"},
        {VZ_MAP_DIVERGING, -7, 0x053061, "diverging -7 (clamped)"},
        {VZ_MAP_DIVERGING, 7, 0x67001f, "diverging +7 (clamped)"},
        {VZ_MAP_SEQUENTIAL, 0, 0x440154, "sequential 0"},
        {VZ_MAP_SEQUENTIAL, 1, 0xfde725, "sequential 1"},
        {VZ_MAP_SEQUENTIAL, 0.5, 0x21908c, "sequential 0.5"},
    };
    for (size_t i = 0; i < sizeof pts / sizeof *pts; i++) {
        uint32_t got = vz_map_rgb(pts[i].k, pts[i].t);
        CHECK(got == pts[i].want, "map %s: #%06x, want #%06x (max channel diff %d)", pts[i].what,
              (unsigned)got, (unsigned)pts[i].want, chan_diff(got, pts[i].want));
    }
    CHECK(vz_map_rgb(VZ_MAP_DIVERGING, NAN) == VZ_NONFINITE_RGB &&
          vz_map_rgb(VZ_MAP_SEQUENTIAL, NAN) == VZ_NONFINITE_RGB,
          "map NaN → the non-finite marker #%06x", VZ_NONFINITE_RGB);

    /* sign: red dominates above 0, blue below.  8-bit channels cannot tint
     * |t| below ~0.005 (the first RdBu step changes blue by 48/255 over 0.2),
     * so there the colour may round to neutral, but never to the other side. */
    int bad = 0;
    double worst = 0;
    for (int i = 1; i <= 10000; i++) {
        double t = i / 10000.0;
        uint32_t p = vz_map_rgb(VZ_MAP_DIVERGING, t), n = vz_map_rgb(VZ_MAP_DIVERGING, -t);
        int pr = (p >> 16) & 0xFF, pb = p & 0xFF, nr = (n >> 16) & 0xFF, nb = n & 0xFF;
        int strict = t >= 0.01;
        if (pr < pb || nb < nr || (strict && (!(pr > pb) || !(nb > nr)))) {
            bad++;
            if (t > worst) worst = t;
        }
    }
    CHECK(bad == 0, "diverging sign: red > blue for t in [0.01,1], blue > red for t in [-1,-0.01], "
          "never reversed below: %d of 20000 points wrong (largest bad |t| %.4f)", bad, worst);

    /* monotone lightness away from 0 on each side (sum of channels drops) */
    int nonmono = 0;
    for (int s = -1; s <= 1; s += 2) {
        int prev = 3 * 255 + 1;
        for (int i = 0; i <= 100; i++) {
            uint32_t c = vz_map_rgb(VZ_MAP_DIVERGING, s * i / 100.0);
            int sum = (int)((c >> 16) & 0xFF) + (int)((c >> 8) & 0xFF) + (int)(c & 0xFF);
            if (sum > prev) nonmono++;
            prev = sum;
        }
    }
    CHECK(nonmono == 0, "diverging lightness falls monotonically from 0 to ±1: %d reversals",
          nonmono);

    /* depths */
    int off = 0, worst256 = 0;
    for (int i = -100; i <= 100; i++) {
        double t = i / 100.0;
        uint32_t c = vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_256, t);
        int idx = vz_nearest_256(c);
        if (vz_xterm_rgb(idx) != c) off++;
        int d = chan_diff(c, vz_map_rgb(VZ_MAP_DIVERGING, t));
        if (d > worst256) worst256 = d;
    }
    CHECK(off == 0 && worst256 <= 48,
          "256 colours: every colour is a palette entry 16..255 (%d not), worst channel "
          "error against truecolor %d (≤ 48)", off, worst256);
    uint32_t n16 = vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_16, 0);
    uint32_t lo16 = vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_16, -1);
    uint32_t hi16 = vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_16, 1);
    CHECK(n16 == vz_xterm_rgb(15) && lo16 == vz_xterm_rgb(4) && hi16 == vz_xterm_rgb(1) &&
          vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_16, 0.3) ==
              vz_xterm_rgb(9) &&
          vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_16, -0.3) == vz_xterm_rgb(12),
          "16 colours diverging: -1 → 4, -0.3 → 12, 0 → 15, 0.3 → 9, 1 → 1");
    int asym = 0;
    for (int i = 0; i <= 1000; i++) {
        double t = i / 1000.0;
        int p = vz_nearest_16(vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_16, t));
        int n = vz_nearest_16(vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_16, -t));
        int lp = p == 15 ? 0 : p == 9 ? 1 : 2, ln = n == 15 ? 0 : n == 12 ? 1 : 2;
        if (lp != ln) asym++;
        const char *gp = vz_map_glyph(VZ_MAP_DIVERGING, t), *gn = vz_map_glyph(VZ_MAP_DIVERGING, -t);
        if (t > 0 && strchr(".:+#@ ", gp[0]) == NULL) asym++;
        if (t > 0 && strchr(",;-=% ", gn[0]) == NULL) asym++;
        if ((gp[0] == ' ') != (gn[0] == ' ')) asym++;
    }
    CHECK(asym == 0, "16-colour steps and mono glyphs symmetric in sign, glyph sets disjoint: "
          "%d mismatches over 1001 |t|", asym);
    CHECK(vz_map_color(VZ_MAP_DIVERGING, VZ_DEPTH_MONO, 0.5) == VZ_DEFAULT,
          "mono colour is the default colour");
    CHECK(!strcmp(vz_map_glyph(VZ_MAP_DIVERGING, -1), "%") &&
          !strcmp(vz_map_glyph(VZ_MAP_DIVERGING, 0), " ") &&
          !strcmp(vz_map_glyph(VZ_MAP_DIVERGING, 1), "@") &&
          !strcmp(vz_map_glyph(VZ_MAP_SEQUENTIAL, 0), " ") &&
          !strcmp(vz_map_glyph(VZ_MAP_SEQUENTIAL, 1), "@") &&
          !strcmp(vz_map_glyph(VZ_MAP_SEQUENTIAL, NAN), "?"),
          "mono glyph ends: diverging -1 '%%', 0 ' ', +1 '@'; sequential 0 ' ', 1 '@'; NaN '?'");

    /* palette round trips */
    int rt = 0;
    for (int i = 16; i < 256; i++)
        if (vz_nearest_256(vz_xterm_rgb(i)) != i) rt++;
    for (int i = 0; i < 16; i++)
        if (vz_nearest_16(vz_xterm_rgb(i)) != i) rt++;
    CHECK(rt == 0, "palette: nearest(rgb(i)) == i for 0..15 and 16..255: %d wrong", rt);

    struct { const char *ct, *term, *nc; int flag; vz_depth want; } env[] = {
        {"truecolor", "xterm-256color", NULL, 0, VZ_DEPTH_TRUE},
        {"24bit", "xterm", NULL, 0, VZ_DEPTH_TRUE},
        {NULL, "xterm-256color", NULL, 0, VZ_DEPTH_256},
        {NULL, "screen-256color", NULL, 0, VZ_DEPTH_256},
        {NULL, "xterm-direct", NULL, 0, VZ_DEPTH_TRUE},
        {NULL, "xterm", NULL, 0, VZ_DEPTH_16},
        {NULL, NULL, NULL, 0, VZ_DEPTH_16},
        {"truecolor", "dumb", NULL, 0, VZ_DEPTH_MONO},
        {"truecolor", "xterm-256color", "", 0, VZ_DEPTH_MONO},
        {"truecolor", "xterm-256color", "1", 0, VZ_DEPTH_MONO},
        {"truecolor", "xterm-256color", NULL, 1, VZ_DEPTH_MONO},
    };
    int envbad = 0;
    for (size_t i = 0; i < sizeof env / sizeof *env; i++) {
        vz_depth d = vz_depth_choose(env[i].ct, env[i].term, env[i].nc, env[i].flag);
        if (d != env[i].want) {
            envbad++;
            printf("        COLORTERM=%s TERM=%s NO_COLOR=%s flag=%d: %s, want %s\n",
                   env[i].ct ? env[i].ct : "(unset)", env[i].term ? env[i].term : "(unset)",
                   env[i].nc ? env[i].nc : "(unset)", env[i].flag, vz_depth_name(d),
                   vz_depth_name(env[i].want));
        }
    }
    CHECK(envbad == 0, "depth from the environment: %d of %zu cases wrong", envbad,
          sizeof env / sizeof *env);
}

/* ---- scales ---- */

static void test_scales(void)
{
    vz_scale s;
    float d1[] = {-3, 1, 2, NAN, INFINITY};
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_SYM);
    vz_scale_fit(&s, d1, 5);
    CHECK(s.lo == -3 && s.hi == 3, "sym on {-3,1,2,NaN,inf}: [%g, %g], want [-3, 3] (non-finite "
          "ignored)", s.lo, s.hi);
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_AUTO);
    vz_scale_fit(&s, d1, 5);
    CHECK(s.lo == -3 && s.hi == 2, "auto: [%g, %g], want [-3, 2]", s.lo, s.hi);
    double t1 = vz_scale_norm(&s, -3), t2 = vz_scale_norm(&s, 2), t0 = vz_scale_norm(&s, 0),
           th = vz_scale_norm(&s, 1);
    CHECK(t1 == -1 && t2 == 1 && t0 == 0 && fabs(th - 0.5) < 1e-15,
          "auto two slopes: norm(-3)=%g norm(0)=%g norm(1)=%g norm(2)=%g (want -1 0 0.5 1)", t1,
          t0, th, t2);

    /* p99 with an outlier: 1000 values |x| = 0.001..1.000 plus 1e6 */
    int n = 1001;
    float *x = malloc(n * sizeof *x), *sorted = malloc(n * sizeof *x);
    for (int i = 0; i < 1000; i++) x[i] = (i % 2 ? -1.f : 1.f) * (float)(i + 1) / 1000.f;
    x[1000] = 1e6f;
    for (int i = 0; i < n; i++) sorted[i] = fabsf(x[i]);
    for (int i = 1; i < n; i++)   /* insertion sort: independent of the code under test */
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            float t = sorted[j]; sorted[j] = sorted[j - 1]; sorted[j - 1] = t;
        }
    int rank = (int)ceil(0.99 * n);           /* 991 */
    float want = sorted[rank - 1];            /* 0.991 */
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_P99);
    vz_scale_fit(&s, x, (size_t)n);
    CHECK(s.hi == want && s.lo == -want,
          "p99 of 1000 values in ±[0.001,1] plus 1e6: [%g, %g], want ±%g (rank %d of %d), "
          "diff %g", s.lo, s.hi, want, rank, n, fabs(s.hi - want));
    CHECK(vz_scale_norm(&s, 1e6) == 1 && vz_scale_norm(&s, -2) == -1,
          "p99 saturates: norm(1e6)=%g norm(-2)=%g", vz_scale_norm(&s, 1e6),
          vz_scale_norm(&s, -2));
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_SYM);
    vz_scale_fit(&s, x, (size_t)n);
    CHECK(s.hi == 1e6, "sym on the same data: hi %g (the outlier), p99 avoids it", s.hi);
    free(x);
    free(sorted);

    /* lock keeps the range from when it was set */
    float a[] = {-1, 0.5f}, b[] = {-10, 20};
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_AUTO);
    vz_scale_fit(&s, a, 2);
    vz_scale_set_mode(&s, VZ_SCALE_LOCK);
    vz_scale_fit(&s, b, 2);
    CHECK(s.lo == -1 && s.hi == 0.5, "lock: after fitting {-1,0.5}, locking, fitting {-10,20}: "
          "[%g, %g], want [-1, 0.5]", s.lo, s.hi);
    vz_scale_set_mode(&s, VZ_SCALE_AUTO);
    vz_scale_fit(&s, b, 2);
    CHECK(s.lo == -10 && s.hi == 20, "unlock (auto) refits: [%g, %g]", s.lo, s.hi);
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_LOCK);
    vz_scale_fit(&s, b, 2);
    vz_scale_fit(&s, a, 2);
    CHECK(s.lo == -10 && s.hi == 20, "lock with no range takes the first fit and keeps it: "
          "[%g, %g]", s.lo, s.hi);

    /* log */
    float lg[] = {-1000, 1, 0.001f, 0};
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_LOG);
    vz_scale_fit(&s, lg, 4);
    double want_t = log1p(1.0) / log1p(1000.0);
    double got_t = vz_scale_norm(&s, 1);
    CHECK(s.log_t == 1 && vz_scale_norm(&s, -1000) == -1 && fabs(got_t - want_t) < 1e-12 &&
          vz_scale_norm(&s, 0) == 0,
          "log: t = M/1000 = %g; norm(-1000) = %g, norm(1) = %.6f want %.6f (diff %.2g)",
          s.log_t, vz_scale_norm(&s, -1000), got_t, want_t, fabs(got_t - want_t));

    /* the sign is preserved by every mode, whatever the range */
    vz_scale_mode modes[] = {VZ_SCALE_AUTO, VZ_SCALE_SYM, VZ_SCALE_LOG, VZ_SCALE_P99, VZ_SCALE_LOCK};
    int signbad = 0, cases = 0;
    for (int mi = 0; mi < 5; mi++)
        for (int set = 0; set < 3; set++) {
            float pos[] = {1, 2, 3}, neg[] = {-5, -1, -2}, mix[] = {-0.1f, 2, 0.5f};
            float *dset = set == 0 ? pos : set == 1 ? neg : mix;
            vz_scale_init(&s, VZ_MAP_DIVERGING, modes[mi]);
            vz_scale_fit(&s, dset, 3);
            for (int k = -50; k <= 50; k++) {
                double v = k * 0.37;
                double t = vz_scale_norm(&s, v);
                cases++;
                if ((v > 0 && !(t > 0)) || (v < 0 && !(t < 0)) || (v == 0 && t != 0)) signbad++;
            }
        }
    CHECK(signbad == 0, "sign preserved (norm(x) has the sign of x) in 5 modes × 3 data sets: "
          "%d of %d wrong", signbad, cases);

    float z[] = {0, 0};
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_AUTO);
    vz_scale_fit(&s, z, 2);
    CHECK(vz_scale_norm(&s, 0) == 0 && vz_scale_norm(&s, 5) == 0,
          "all-zero data: degenerate range maps everything to the centre");
    vz_scale_mode m;
    CHECK(vz_scale_parse("p99", &m) == 0 && m == VZ_SCALE_P99 && vz_scale_parse("bogus", &m) == -1 &&
          !strcmp(vz_scale_name(VZ_SCALE_LOG), "log"), "scale names parse and print");
}

/* ---- heatmaps ---- */

static int check_heatmap_cells(const vz_grid *g, vz_rect r, const float *m, int R, int C,
                               const vz_scale *s, vz_depth d, int *worst)
{
    vz_size z = vz_heatmap_size(R, C, r.w, r.h, d);
    int pc = z.w, pr = d == VZ_DEPTH_MONO ? z.h : (R < 2 * r.h ? R : 2 * r.h);
    int bad = 0;
    *worst = 0;
    for (int y = 0; y < z.h; y++)
        for (int x = 0; x < pc; x++) {
            const vz_cell *c = vz_grid_cat(g, r.x + x, r.y + y);
            if (d == VZ_DEPTH_MONO) {
                float v = ref_pool(m, C, R, C, pr, pc, y, x);
                const char *want = isinf(v) ? "!" : vz_map_glyph(s->map, isnan(v) ? NAN :
                                                                 ref_norm_div(v, s->lo, s->hi));
                if (strcmp(c->ch, want)) bad++;
                continue;
            }
            float up = ref_pool(m, C, R, C, pr, pc, 2 * y, x);
            double tu = isfinite(up) ? ref_norm_div(up, s->lo, s->hi) : NAN;
            uint32_t wf = vz_map_color(s->map, d, tu), wb = VZ_DEFAULT;
            if (2 * y + 1 < pr) {
                float lo = ref_pool(m, C, R, C, pr, pc, 2 * y + 1, x);
                wb = vz_map_color(s->map, d, isfinite(lo) ? ref_norm_div(lo, s->lo, s->hi) : NAN);
            }
            int df = chan_diff(c->fg, wf), db = chan_diff(c->bg, wb);
            if (df > *worst) *worst = df;
            if (db > *worst) *worst = db;
            if (df || db || strcmp(c->ch, VZ_HALF_BLOCK)) bad++;
        }
    return bad;
}

static void test_heatmaps(void)
{
    /* 4×4 known matrix, 1:1 */
    float m4[16] = {-4, -2, 0, 2, 4, 1, -1, 0.5f, 3, -3, 0, 0, 1, 2, 3, 4};
    vz_scale s;
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_SYM);
    vz_scale_fit(&s, m4, 16);
    vz_grid *g = vz_grid_new(10, 6);
    int worst;
    vz_size z = vz_heatmap(g, (vz_rect){1, 1, 8, 4}, m4, 4, 4, 0, &s, VZ_DEPTH_TRUE);
    int bad = check_heatmap_cells(g, (vz_rect){1, 1, 8, 4}, m4, 4, 4, &s, VZ_DEPTH_TRUE, &worst);
    CHECK(z.w == 4 && z.h == 2 && bad == 0,
          "4×4 truecolor: used %d×%d (want 4×2); %d cells differ, worst channel diff %d", z.w,
          z.h, bad, worst);
    const vz_cell *c00 = vz_grid_cat(g, 1, 1);
    CHECK(c00->fg == 0x053061 && c00->bg == vz_map_rgb(VZ_MAP_DIVERGING, 1),
          "4×4: cell (0,0) fg = colour(-4) = #%06x (want #053061), bg = colour(+4) = #%06x",
          (unsigned)c00->fg, (unsigned)c00->bg);
    const vz_cell *c20 = vz_grid_cat(g, 3, 1);
    CHECK(c20->fg == 0xf7f7f7, "4×4: value 0 is the neutral #f7f7f7: got #%06x",
          (unsigned)c20->fg);

    /* 64×64 random, 1:1 in 64×32, and pooled into smaller rectangles */
    int R = 64, C = 64;
    float *m = malloc((size_t)R * C * sizeof *m);
    for (int i = 0; i < R * C; i++) m[i] = frand() * (i % 7 == 0 ? 3.f : 1.f);
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_AUTO);
    vz_scale_fit(&s, m, (size_t)R * C);
    vz_grid_resize(g, 80, 40);
    vz_depth depths[] = {VZ_DEPTH_TRUE, VZ_DEPTH_256, VZ_DEPTH_16, VZ_DEPTH_MONO};
    for (int di = 0; di < 4; di++) {
        vz_grid_clear(g);
        vz_rect r = {3, 2, 64, 32};
        z = vz_heatmap(g, r, m, R, C, 0, &s, depths[di]);
        bad = check_heatmap_cells(g, r, m, R, C, &s, depths[di], &worst);
        CHECK(bad == 0 && z.w == 64 && z.h == 32,
              "64×64 at depth %s in 64×32: used %d×%d, %d cells differ from the colours computed "
              "here, worst channel diff %d", vz_depth_name(depths[di]), z.w, z.h, bad, worst);
    }
    int sizes[][2] = {{20, 7}, {33, 13}, {63, 31}, {1, 1}, {64, 17}, {7, 32}};
    for (int si = 0; si < 6; si++)
        for (int di = 0; di < 4; di += 3) {
            vz_grid_clear(g);
            vz_rect r = {2, 1, sizes[si][0], sizes[si][1]};
            z = vz_heatmap(g, r, m, R, C, 0, &s, depths[di]);
            bad = check_heatmap_cells(g, r, m, R, C, &s, depths[di], &worst);
            CHECK(bad == 0, "64×64 pooled (max |x|) into %d×%d at %s: used %d×%d, %d cells differ, "
                  "worst channel diff %d", r.w, r.h, vz_depth_name(depths[di]), z.w, z.h, bad,
                  worst);
        }

    /* strided submatrix: rows of 64, a 5×3 window */
    vz_grid_clear(g);
    z = vz_heatmap(g, (vz_rect){0, 0, 10, 10}, m + 64 * 2 + 5, 5, 3, 64, &s, VZ_DEPTH_TRUE);
    int sbad = 0;
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++) {
            const vz_cell *c = vz_grid_cat(g, x, y);
            uint32_t wf = vz_scale_color(&s, VZ_DEPTH_TRUE, m[64 * (2 + 2 * y) + 5 + x]);
            uint32_t wb = 2 * y + 1 < 5 ? vz_scale_color(&s, VZ_DEPTH_TRUE, m[64 * (3 + 2 * y) + 5 + x])
                                        : VZ_DEFAULT;
            if (c->fg != wf || c->bg != wb) sbad++;
        }
    CHECK(sbad == 0 && z.w == 3 && z.h == 3, "strided 5×3 window: %d cells differ, odd last row "
          "has the default bg", sbad);

    /* guard cells: no renderer writes outside its rectangle, at any size */
    int broken = 0, tried = 0;
    float q[64], ssev[12 * 12];
    int sse[12];
    for (int i = 0; i < 64; i++) q[i] = frand();
    for (int i = 0; i < 144; i++) ssev[i] = fabsf(frand());
    for (int i = 0; i < 12; i++) sse[i] = i % 3;
    vz_scale seq;
    vz_scale_init(&seq, VZ_MAP_SEQUENTIAL, VZ_SCALE_AUTO);
    vz_scale_fit(&seq, ssev, 144);
    vz_grid_resize(g, 90, 45);
    for (int w = 0; w <= 70; w += (w < 8 ? 1 : 7))
        for (int h = 0; h <= 36; h += (h < 6 ? 1 : 5))
            for (int di = 0; di < 4; di++)
                for (int what = 0; what < 5; what++) {
                    vz_rect r = {5 + (w % 3), 4 + (h % 2), w, h};
                    guard_fill(g);
                    switch (what) {
                    case 0: vz_heatmap(g, r, m, R, C, 0, &s, depths[di]); break;
                    case 1: vz_strip_h(g, r, q, 64, &s, depths[di]); break;
                    case 2: vz_strip_v(g, r, q, 64, &s, depths[di]); break;
                    case 3: vz_colorbar(g, r, &s, depths[di]); break;
                    case 4: vz_overview(g, r, ssev, 12, 12, sse, &seq, depths[di], 3, 4); break;
                    }
                    broken += guard_broken(g, r);
                    tried++;
                }
    /* rectangles hanging off the grid's edges */
    vz_rect edges[] = {{-10, -3, 40, 20}, {70, 30, 64, 32}, {-100, 5, 50, 5}, {85, 40, 64, 32}};
    for (int e = 0; e < 4; e++)
        for (int di = 0; di < 4; di++) {
            guard_fill(g);
            vz_heatmap(g, edges[e], m, R, C, 0, &s, depths[di]);
            vz_strip_h(g, edges[e], q, 64, &s, depths[di]);
            vz_strip_v(g, edges[e], q, 64, &s, depths[di]);
            vz_colorbar(g, edges[e], &s, depths[di]);
            vz_overview(g, edges[e], ssev, 12, 12, sse, &seq, depths[di], 0, 0);
            broken += guard_broken(g, edges[e]);
            tried++;
        }
    CHECK(broken == 0, "guard cells: %d renderings (heatmap, strips, colour bar, overview; "
          "rectangles 0..70 × 0..36 and off the grid edges, 4 depths): %d cells outside the "
          "rectangle changed", tried, broken);

    /* strips line up with the heatmap: the vertical strip equals column 0 of
     * a matrix whose every column is the vector */
    float *col = malloc(64 * 64 * sizeof *col);
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) col[i * 64 + j] = q[i];
    int sdiff = 0;
    for (int h = 1; h <= 40; h += 3)
        for (int di = 0; di < 4; di++) {
            vz_grid_clear(g);
            vz_heatmap(g, (vz_rect){0, 0, 1, h}, col, 64, 64, 0, &s, depths[di]);
            vz_strip_v(g, (vz_rect){2, 0, 2, h}, q, 64, &s, depths[di]);
            for (int y = 0; y < h && y < g->h; y++) {
                const vz_cell *a = vz_grid_cat(g, 0, y), *b = vz_grid_cat(g, 2, y),
                              *b2 = vz_grid_cat(g, 3, y);
                if (strcmp(a->ch, b->ch) || a->fg != b->fg || a->bg != b->bg || b2->fg != b->fg ||
                    b2->bg != b->bg)
                    sdiff++;
            }
            vz_grid_clear(g);
            vz_strip_h(g, (vz_rect){0, 0, h, 1}, q, 64, &s, depths[di]);
            for (int x = 0; x < h && x < 64; x++) {
                int pc = h < 64 ? h : 64;
                float v = ref_pool(q, 64, 1, 64, 1, pc, 0, x);
                const vz_cell *c = vz_grid_cat(g, x, 0);
                if (depths[di] == VZ_DEPTH_MONO ? strcmp(c->ch, vz_scale_glyph(&s, v))
                                                : c->fg != vz_scale_color(&s, depths[di], v))
                    sdiff++;
            }
        }
    CHECK(sdiff == 0, "vector strips: vertical = heatmap column pooling, horizontal = pooled "
          "colours: %d cells differ", sdiff);
    free(col);

    /* monochrome: no colour anywhere, ASCII glyphs only */
    int coloured = 0, nonascii = 0;
    vz_grid_clear(g);
    vz_heatmap(g, (vz_rect){0, 0, 64, 40}, m, R, C, 0, &s, VZ_DEPTH_MONO);
    vz_strip_h(g, (vz_rect){0, 41, 64, 1}, q, 64, &s, VZ_DEPTH_MONO);
    vz_strip_v(g, (vz_rect){66, 0, 1, 40}, q, 64, &s, VZ_DEPTH_MONO);
    vz_colorbar(g, (vz_rect){0, 42, 60, 1}, &s, VZ_DEPTH_MONO);
    vz_overview(g, (vz_rect){68, 0, 22, 14}, ssev, 12, 12, sse, &seq, VZ_DEPTH_MONO, 1, 1);
    for (int i = 0; i < g->w * g->h; i++) {
        if (g->cells[i].fg != VZ_DEFAULT || g->cells[i].bg != VZ_DEFAULT) coloured++;
        if (!is_ascii_glyph(g->cells[i].ch)) nonascii++;
    }
    CHECK(coloured == 0 && nonascii == 0, "monochrome frame (heatmap, strips, bar, overview): "
          "%d cells with a colour, %d non-ASCII glyphs", coloured, nonascii);

    /* overview markers */
    vz_grid_clear(g);
    vz_rect orr = {0, 0, 50, 14};
    vz_overview(g, orr, ssev, 12, 12, sse, &seq, VZ_DEPTH_TRUE, 2, 5);
    int obad = 0;
    for (int l = 0; l < 12; l++)
        for (int h = 0; h < 12; h++) {
            vz_rect t = vz_overview_tile(orr, 12, 12, l, h);
            if (t.w < 1) { obad++; continue; }
            const vz_cell *mk = vz_grid_cat(g, t.x - 1, t.y), *v = vz_grid_cat(g, t.x, t.y);
            int want_sse = h < sse[l];
            if (want_sse != (strcmp(mk->ch, "\xe2\x80\xa2") == 0)) obad++;
            uint32_t col = vz_scale_color(&seq, VZ_DEPTH_TRUE, ssev[l * 12 + h]);
            if (v->bg != col) obad++;
            int sel = l == 2 && h == 5;
            if (sel != (strcmp(v->ch, "\xe2\x97\x86") == 0)) obad++;
        }
    CHECK(obad == 0, "overview 12×12: SSE heads marked '•', tile colours = colour(value), "
          "selected tile '◆': %d wrong", obad);
    free(m);
    vz_grid_free(g);
}

/* ---- NaN and inf ---- */

static void test_nonfinite(void)
{
    float m[16];
    for (int i = 0; i < 16; i++) m[i] = (float)i - 8;
    m[5] = NAN;
    m[10] = INFINITY;
    m[15] = -INFINITY;
    vz_scale s;
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_P99);
    vz_scale_fit(&s, m, 16);
    CHECK(isfinite(s.lo) && isfinite(s.hi), "fit ignores NaN/inf: range [%g, %g]", s.lo, s.hi);
    vz_grid *g = vz_grid_new(8, 8);
    vz_heatmap(g, (vz_rect){0, 0, 4, 2}, m, 4, 4, 0, &s, VZ_DEPTH_TRUE);
    /* m[5] is row 1 col 1: cell (1,0) bg; m[10] row 2 col 2: cell (2,1) fg */
    const vz_cell *a = vz_grid_cat(g, 1, 0), *b = vz_grid_cat(g, 2, 1), *o = vz_grid_cat(g, 0, 0);
    CHECK(a->bg == VZ_NONFINITE_RGB && b->fg == VZ_NONFINITE_RGB && o->fg != VZ_NONFINITE_RGB,
          "NaN/inf cells show the marker #%06x (NaN cell bg #%06x, inf cell fg #%06x)",
          VZ_NONFINITE_RGB, (unsigned)a->bg, (unsigned)b->fg);
    vz_grid_clear(g);
    vz_heatmap(g, (vz_rect){0, 0, 2, 1}, m, 4, 4, 0, &s, VZ_DEPTH_TRUE);   /* pooled 2×2 blocks */
    a = vz_grid_cat(g, 0, 0);
    b = vz_grid_cat(g, 1, 0);
    CHECK(a->fg == VZ_NONFINITE_RGB && b->bg == VZ_NONFINITE_RGB,
          "pooling never hides a non-finite value: block with NaN fg #%06x, with inf bg #%06x",
          (unsigned)a->fg, (unsigned)b->bg);
    vz_grid_clear(g);
    vz_heatmap(g, (vz_rect){0, 0, 4, 4}, m, 4, 4, 0, &s, VZ_DEPTH_MONO);
    CHECK(!strcmp(vz_grid_cat(g, 1, 1)->ch, "?") && !strcmp(vz_grid_cat(g, 2, 2)->ch, "!") &&
          !strcmp(vz_grid_cat(g, 3, 3)->ch, "!"),
          "mono: NaN shows '?', ±inf '!' (got '%s' '%s' '%s')", vz_grid_cat(g, 1, 1)->ch,
          vz_grid_cat(g, 2, 2)->ch, vz_grid_cat(g, 3, 3)->ch);
    for (int d = 0; d < 4; d++) {
        vz_grid_clear(g);
        vz_heatmap(g, (vz_rect){0, 0, 8, 8}, m, 4, 4, 0, &s, (vz_depth)d);
        vz_colorbar(g, (vz_rect){0, 7, 8, 1}, &s, (vz_depth)d);
    }
    float allnan[4] = {NAN, NAN, NAN, NAN};
    vz_scale_init(&s, VZ_MAP_SEQUENTIAL, VZ_SCALE_LOG);
    vz_scale_fit(&s, allnan, 4);
    vz_overview(g, (vz_rect){0, 0, 8, 8}, allnan, 2, 2, NULL, &s, VZ_DEPTH_256, 0, 0);
    CHECK(s.lo == 0 && s.hi == 0, "all-NaN data at every depth and in the overview: no crash, "
          "range [%g, %g]", s.lo, s.hi);
    vz_grid_free(g);
}

/* ---- cell grid ---- */

static void test_cells(void)
{
    vz_grid *g = vz_grid_new(10, 3);
    vz_style st = {0xff0000, VZ_DEFAULT, 1};
    int n = vz_put(g, 7, 0, 100, "abcdef", (size_t)-1, st);
    CHECK(n == 3 && !strcmp(vz_grid_cat(g, 9, 0)->ch, "c"),
          "text clipped at the right edge: %d cells written (want 3)", n);
    n = vz_put(g, -2, 1, 100, "abcd", (size_t)-1, st);
    CHECK(n == 4 && !strcmp(vz_grid_cat(g, 0, 1)->ch, "c") && !strcmp(vz_grid_cat(g, 1, 1)->ch, "d"),
          "text clipped at the left edge keeps its position: cell 0 = '%s'",
          vz_grid_cat(g, 0, 1)->ch);
    n = vz_put(g, 0, 2, 5, "\xe4\xbd\xa0\xe5\xa5\xbd!\xff" "x", (size_t)-1, st);   /* 你好!<bad>x */
    CHECK(n == 5 && vz_grid_cat(g, 1, 2)->ch[0] == 0 && !strcmp(vz_grid_cat(g, 4, 2)->ch, "!"),
          "wide glyphs take two cells, maxw respected: %d cells", n);
    vz_put(g, 1, 2, 1, "x", (size_t)-1, VZ_STYLE_PLAIN);
    CHECK(!strcmp(vz_grid_cat(g, 0, 2)->ch, " ") && !strcmp(vz_grid_cat(g, 1, 2)->ch, "x"),
          "overwriting half of a wide glyph blanks the other half");
    vz_grid_clear(g);
    vz_put(g, 0, 0, 10, "a\xff\x01" "b", (size_t)-1, VZ_STYLE_PLAIN);
    CHECK(!strcmp(vz_grid_cat(g, 1, 0)->ch, "\xef\xbf\xbd") &&
          !strcmp(vz_grid_cat(g, 2, 0)->ch, "\xef\xbf\xbd") && !strcmp(vz_grid_cat(g, 3, 0)->ch, "b"),
          "invalid UTF-8 and control characters show U+FFFD");
    vz_put(g, 0, 5, 10, "x", (size_t)-1, st);
    vz_put(g, 0, -1, 10, "x", (size_t)-1, st);
    vz_fill(g, (vz_rect){-5, -5, 100, 100}, "#", st);
    CHECK(vz_grid_at(g, 10, 0) == NULL && vz_grid_at(g, -1, 0) == NULL &&
          !strcmp(vz_grid_cat(g, 9, 2)->ch, "#"),
          "writes outside the grid are ignored, fill is clipped");
    vz_grid_resize(g, 4, 2);
    vz_put(g, 0, 0, 4, "ab", (size_t)-1, st);
    char *dump = vz_grid_dump(g);
    const char *want = "vz-grid 4x2\n|ab  |\n|    |\ncolours:\n0: 2 ff0000/-+b 2 -/-\n1: 4 -/-\n";
    CHECK(dump && !strcmp(dump, want), "dump format:\n%s", dump ? dump : "(null)");
    free(dump);
    vz_grid_free(g);
    CHECK(vz_grid_new(-1, 5) == NULL, "negative grid size refused");
}

/* ---- PNG ---- */

static int read_png(const char *path, int *w, int *h, unsigned char **px)
{
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&im, path)) return -1;
    im.format = PNG_FORMAT_RGB;
    *px = malloc(PNG_IMAGE_SIZE(im));
    if (!*px || !png_image_finish_read(&im, NULL, *px, 0, NULL)) {
        png_image_free(&im);
        free(*px);
        return -1;
    }
    *w = (int)im.width;
    *h = (int)im.height;
    return 0;
}

static int leftover_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

static void test_png(void)
{
    char dir[] = "/tmp/test_viz.XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp: %s", strerror(errno)); return; }
    char path[256];
    snprintf(path, sizeof path, "%s/h.png", dir);
    int R = 5, C = 7, F = 3;
    float m[35];
    for (int i = 0; i < 35; i++) m[i] = (float)(i - 17) / 4;
    m[12] = NAN;
    vz_scale s;
    vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_SYM);
    vz_scale_fit(&s, m, 35);
    ms_err err = {{0}};
    int rc = vz_png_write(path, m, R, C, 0, &s, F, 1, &err);
    CHECK(rc == 0, "png write %s: rc %d %s", path, rc, err.msg);
    int w = 0, h = 0;
    unsigned char *px = NULL;
    rc = read_png(path, &w, &h, &px);
    int gap = F > 2 ? F : 2, barh = 2 * F > 8 ? 2 * F : 8;
    CHECK(rc == 0 && w == C * F && h == R * F + gap + barh,
          "png read back: %d×%d, want %d×%d", w, h, C * F, R * F + gap + barh);
    if (rc == 0 && w == C * F && h == R * F + gap + barh) {
        int bad = 0, worst = 0;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const unsigned char *p = px + 3 * ((size_t)y * w + x);
                uint32_t got = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2], want;
                if (y < R * F) {
                    float v = m[(y / F) * C + x / F];
                    want = vz_map_rgb(VZ_MAP_DIVERGING,
                                      isfinite(v) ? ref_norm_div(v, s.lo, s.hi) : NAN);
                } else if (y < R * F + gap) {
                    want = 0xffffff;
                } else {
                    want = vz_map_rgb(VZ_MAP_DIVERGING, -1 + 2.0 * x / (w - 1));
                }
                int d = chan_diff(got, want);
                if (d) bad++;
                if (d > worst) worst = d;
            }
        CHECK(bad == 0, "png pixels (%d×%d, factor %d, NaN → #ff00ff, colour bar): %d differ "
              "from the map, worst channel diff %d", w, h, F, bad, worst);
    }
    free(px);
    CHECK(leftover_tmp(dir) == 0, "no temporary file left after a successful write");

    /* sequential, factor 1, no bar */
    vz_scale_init(&s, VZ_MAP_SEQUENTIAL, VZ_SCALE_AUTO);
    float v3[3] = {0, 1, 2};
    vz_scale_fit(&s, v3, 3);
    rc = vz_png_write(path, v3, 1, 3, 0, &s, 1, 0, &err);
    px = NULL;
    int rr = rc == 0 ? read_png(path, &w, &h, &px) : -1;
    CHECK(rr == 0 && w == 3 && h == 1 && px[0] == 0x44 && px[1] == 0x01 && px[2] == 0x54 &&
          px[6] == 0xfd && px[7] == 0xe7 && px[8] == 0x25,
          "png sequential 1×3, factor 1, overwritten in place: ends #440154 and #fde725");
    free(px);

    snprintf(path, sizeof path, "%s/no/such/dir/h.png", dir);
    rc = vz_png_write(path, m, R, C, 0, &s, 2, 1, &err);
    CHECK(rc == -1 && strstr(err.msg, path), "png into a missing directory fails: \"%s\"", err.msg);
    rc = vz_png_write(path, m, R, C, 0, &s, 1000, 1, &err);
    CHECK(rc == -1, "png with factor 1000 refused: \"%s\"", err.msg);
    CHECK(leftover_tmp(dir) == 0, "no temporary file left after failures");

    snprintf(path, sizeof path, "%s/h.png", dir);
    unlink(path);
    rmdir(dir);
}

/* ---- golden dumps ---- */

/* tests/golden/viz from the repository root, or from the binary's place
 * (build/tests/test_viz), or VZ_GOLDEN_DIR. */
static char golden_dir[512] = "tests/golden/viz";

static void find_golden_dir(const char *argv0)
{
    const char *env = getenv("VZ_GOLDEN_DIR");
    struct stat st;
    if (env) { snprintf(golden_dir, sizeof golden_dir, "%s", env); return; }
    if (stat(golden_dir, &st) == 0) return;
    const char *slash = strrchr(argv0, '/');
    if (!slash) return;
    char cand[512];
    snprintf(cand, sizeof cand, "%.*s/../../tests/golden/viz", (int)(slash - argv0), argv0);
    if (stat(cand, &st) == 0) snprintf(golden_dir, sizeof golden_dir, "%s", cand);
}

static void golden(const char *name, const vz_grid *g)
{
    const char *dir = golden_dir;
    char path[600];
    snprintf(path, sizeof path, "%s/%s.txt", dir, name);
    char *dump = vz_grid_dump(g);
    if (!dump) { CHECK(0, "golden %s: dump failed", name); return; }
    if (getenv("VZ_GOLDEN_UPDATE")) {
        FILE *f = fopen(path, "w");
        int ok = f && fputs(dump, f) >= 0;
        if (f && fclose(f) != 0) ok = 0;
        CHECK(ok, "golden %s: rewritten", path);
        free(dump);
        return;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        CHECK(0, "golden %s: cannot read (%s); VZ_GOLDEN_UPDATE=1 writes it", path, strerror(errno));
        free(dump);
        return;
    }
    size_t cap = strlen(dump) + 2, n = 0;
    char *want = malloc(cap + 1);
    n = fread(want, 1, cap, f);
    want[n] = 0;
    fclose(f);
    int line = 1, at = -1;
    for (size_t i = 0; dump[i] || want[i]; i++) {
        if (dump[i] != want[i]) { at = line; break; }
        if (dump[i] == '\n') line++;
    }
    CHECK(at < 0, "golden %s: %s", path, at < 0 ? "identical" : "differs");
    if (at >= 0) printf("        first difference on line %d\n", at);
    free(want);
    free(dump);
}

static void test_golden(void)
{
    float m[8 * 8];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++) m[i * 8 + j] = (float)((i - j) * (i + j - 7)) / 16.f;
    m[9] = NAN;
    float q[8] = {-1, -0.5f, 0, 0.25f, 0.5f, 0.75f, 1, 0.1f};
    float ov[3 * 4] = {0.1f, 0.2f, 0.4f, 0.8f, 1.6f, 0.05f, 0, 2, 1, 1, 1, 1};
    int sse[3] = {2, 2, 0};
    const char *names[4] = {"mono", "16", "256", "truecolor"};
    for (int d = 0; d < 4; d++) {
        vz_grid *g = vz_grid_new(36, 12);
        vz_scale s, seq;
        vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_SYM);
        vz_scale_fit(&s, m, 64);
        vz_scale_init(&seq, VZ_MAP_SEQUENTIAL, VZ_SCALE_AUTO);
        vz_scale_fit(&seq, ov, 12);
        vz_put(g, 0, 0, 36, "L0.H1 S (value i × key j)", (size_t)-1, VZ_STYLE_PLAIN);
        vz_size z = vz_heatmap(g, (vz_rect){0, 1, 8, 8}, m, 8, 8, 0, &s, (vz_depth)d);
        vz_strip_v(g, (vz_rect){9, 1, 1, z.h}, q, 8, &s, (vz_depth)d);
        vz_strip_h(g, (vz_rect){0, 1 + z.h, 8, 1}, q, 8, &s, (vz_depth)d);
        vz_colorbar(g, (vz_rect){0, 10, 24, 1}, &s, (vz_depth)d);
        vz_overview(g, (vz_rect){12, 1, 24, 5}, ov, 3, 4, sse, &seq, (vz_depth)d, 1, 2);
        vz_heatmap(g, (vz_rect){12, 7, 3, 2}, m, 8, 8, 0, &s, (vz_depth)d);   /* pooled */
        char name[32];
        snprintf(name, sizeof name, "panel-%s", names[d]);
        golden(name, g);
        vz_grid_free(g);
    }
}

int main(int argc, char **argv)
{
    find_golden_dir(argc > 0 ? argv[0] : "");
    test_maps();
    test_scales();
    test_heatmaps();
    test_nonfinite();
    test_cells();
    test_png();
    test_golden();
    return check_done("test_viz");
}
