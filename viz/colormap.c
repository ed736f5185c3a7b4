/* colormap.c: colour maps, colour depths and scale modes (see colormap.h).
 *
 * What it is: pure functions of numbers (no state, no allocation except the
 * P99 fit's scratch copy).  What it is not: a renderer; heatmap.c puts these
 * colours into cells and png.c into pixels.
 */
#include "colormap.h"

#include "cells.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- depth ---- */

vz_depth vz_depth_choose(const char *colorterm, const char *term, const char *no_color,
                         int no_color_flag)
{
    /* NO_COLOR is honoured even when empty: the user asked for it by setting
     * it at all (stricter than no-color.org, which ignores an empty one). */
    if (no_color_flag || no_color || (term && strcmp(term, "dumb") == 0)) return VZ_DEPTH_MONO;
    if (colorterm && (strcmp(colorterm, "truecolor") == 0 || strcmp(colorterm, "24bit") == 0))
        return VZ_DEPTH_TRUE;
    if (term) {
        size_t n = strlen(term);
        if (n >= 7 && strcmp(term + n - 7, "-direct") == 0) return VZ_DEPTH_TRUE;
        if (strstr(term, "256color")) return VZ_DEPTH_256;
    }
    return VZ_DEPTH_16;
}

vz_depth vz_depth_from_env(int no_color_flag)
{
    return vz_depth_choose(getenv("COLORTERM"), getenv("TERM"), getenv("NO_COLOR"), no_color_flag);
}

const char *vz_depth_name(vz_depth d)
{
    switch (d) {
    case VZ_DEPTH_MONO: return "mono";
    case VZ_DEPTH_16: return "16";
    case VZ_DEPTH_256: return "256";
    case VZ_DEPTH_TRUE: return "truecolor";
    }
    return "?";
}

/* ---- maps ---- */

/* ColorBrewer RdBu (11 classes), from t = -1 (blue) to +1 (red). */
static const uint32_t rdbu[11] = {
    0x053061, 0x2166ac, 0x4393c3, 0x92c5de, 0xd1e5f0, 0xf7f7f7,
    0xfddbc7, 0xf4a582, 0xd6604d, 0xb2182b, 0x67001f,
};
/* viridis sampled at 9 equal steps. */
static const uint32_t viridis[9] = {
    0x440154, 0x472d7b, 0x3b528b, 0x2c728e, 0x21908c, 0x27ad81, 0x5dc863, 0xaadc32, 0xfde725,
};

static uint32_t lerp_table(const uint32_t *tab, int n, double p)
{
    /* p in [0, 1] → position along n-1 segments; exact at the table entries */
    double x = p * (n - 1);
    int i = (int)floor(x);
    if (i < 0) i = 0;
    if (i > n - 2) i = n - 2;
    double f = x - i;
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    uint32_t a = tab[i], b = tab[i + 1], out = 0;
    for (int sh = 16; sh >= 0; sh -= 8) {
        double ca = (a >> sh) & 0xFF, cb = (b >> sh) & 0xFF;
        long c = lround(ca + (cb - ca) * f);
        if (c < 0) c = 0;
        if (c > 255) c = 255;
        out |= (uint32_t)c << sh;
    }
    return out;
}

static double clampd(double t, double lo, double hi)
{
    return t < lo ? lo : t > hi ? hi : t;
}

uint32_t vz_map_rgb(vz_map_kind k, double t)
{
    if (isnan(t)) return VZ_NONFINITE_RGB;
    if (k == VZ_MAP_DIVERGING) return lerp_table(rdbu, 11, (clampd(t, -1, 1) + 1) / 2);
    return lerp_table(viridis, 9, clampd(t, 0, 1));
}

/* the discrete 16-colour steps (palette indices) */
static const int div16[3] = {15, 12, 4};   /* by |t| level; negative side */
static const int div16p[3] = {15, 9, 1};   /* positive side */
static const int seq16[5] = {4, 6, 2, 10, 11};

static int level16_div(double t)
{
    double a = fabs(t);
    int l = a < 0.2 ? 0 : a < 0.6 ? 1 : 2;
    return t < 0 ? div16[l] : div16p[l];
}

uint32_t vz_map_color(vz_map_kind k, vz_depth d, double t)
{
    if (d == VZ_DEPTH_MONO) return VZ_DEFAULT;
    if (isnan(t)) {
        if (d == VZ_DEPTH_16) return vz_xterm_rgb(13);
        if (d == VZ_DEPTH_256) return vz_xterm_rgb(vz_nearest_256(VZ_NONFINITE_RGB));
        return VZ_NONFINITE_RGB;
    }
    if (d == VZ_DEPTH_16) {
        if (k == VZ_MAP_DIVERGING) return vz_xterm_rgb(level16_div(clampd(t, -1, 1)));
        int i = (int)floor(clampd(t, 0, 1) * 5);
        if (i > 4) i = 4;
        return vz_xterm_rgb(seq16[i]);
    }
    uint32_t rgb = vz_map_rgb(k, t);
    if (d == VZ_DEPTH_256) return vz_xterm_rgb(vz_nearest_256(rgb));
    return rgb;
}

static const char *const seq_glyphs[10] = {" ", ".", ":", "-", "=", "+", "*", "#", "%", "@"};
static const char *const pos_glyphs[6] = {" ", ".", ":", "+", "#", "@"};
static const char *const neg_glyphs[6] = {" ", ",", ";", "-", "=", "%"};

const char *vz_map_glyph(vz_map_kind k, double t)
{
    if (isnan(t)) return "?";
    if (k == VZ_MAP_DIVERGING) {
        int l = (int)floor(fabs(clampd(t, -1, 1)) * 5 + 0.5);
        if (l > 5) l = 5;
        return t < 0 ? neg_glyphs[l] : pos_glyphs[l];
    }
    int i = (int)floor(clampd(t, 0, 1) * 9 + 0.5);
    if (i > 9) i = 9;
    return seq_glyphs[i];
}

/* ---- xterm palette ---- */

static const uint32_t ansi16[16] = {
    0x000000, 0xcd0000, 0x00cd00, 0xcdcd00, 0x0000ee, 0xcd00cd, 0x00cdcd, 0xe5e5e5,
    0x7f7f7f, 0xff0000, 0x00ff00, 0xffff00, 0x5c5cff, 0xff00ff, 0x00ffff, 0xffffff,
};
static const int cube[6] = {0, 95, 135, 175, 215, 255};

uint32_t vz_xterm_rgb(int idx)
{
    if (idx < 0 || idx > 255) return 0;
    if (idx < 16) return ansi16[idx];
    if (idx < 232) {
        int i = idx - 16;
        return (uint32_t)cube[i / 36] << 16 | (uint32_t)cube[(i / 6) % 6] << 8 |
               (uint32_t)cube[i % 6];
    }
    uint32_t g = (uint32_t)(8 + 10 * (idx - 232));
    return g << 16 | g << 8 | g;
}

/* "redmean" weighted RGB distance: cheap, and much closer to what the eye
 * sees than plain Euclidean RGB. */
static long dist(uint32_t a, uint32_t b)
{
    long r1 = (a >> 16) & 0xFF, g1 = (a >> 8) & 0xFF, b1 = a & 0xFF;
    long r2 = (b >> 16) & 0xFF, g2 = (b >> 8) & 0xFF, b2 = b & 0xFF;
    long rm = (r1 + r2) / 2, dr = r1 - r2, dg = g1 - g2, db = b1 - b2;
    return (((512 + rm) * dr * dr) >> 8) + 4 * dg * dg + (((767 - rm) * db * db) >> 8);
}

static int nearest(uint32_t rgb, int from, int to)
{
    int best = from;
    long bd = -1;
    rgb &= 0xFFFFFF;
    for (int i = from; i <= to; i++) {
        long d = dist(rgb, vz_xterm_rgb(i));
        if (bd < 0 || d < bd) { bd = d; best = i; }
    }
    return best;
}

/* The searches above cost 240 distances a colour, and a frame colours
 * thousands of cells with a few hundred distinct colours: a direct-mapped
 * memo of (palette, rgb) → index makes the lookup O(1).  Each slot is one
 * 64-bit word (valid bit, palette, rgb, index) read and written whole, so
 * it is safe from any thread; a collision only costs a search. */
#define MEMO_N 4096
static _Atomic uint64_t memo[MEMO_N];

static int nearest_memo(uint32_t rgb, int from, int to)
{
    rgb &= 0xFFFFFF;
    uint64_t key = (uint64_t)1 << 63 | (uint64_t)(from == 16) << 62 | (uint64_t)rgb << 8;
    unsigned h = ((rgb ^ (unsigned)from * 0x9E3779B9u) * 2654435761u) >> 20;   /* 12 bits */
    uint64_t m = memo[h];
    if ((m & ~(uint64_t)0xFF) == key) return (int)(m & 0xFF);
    int idx = nearest(rgb, from, to);
    memo[h] = key | (uint64_t)idx;
    return idx;
}

int vz_nearest_256(uint32_t rgb) { return nearest_memo(rgb, 16, 255); }
int vz_nearest_16(uint32_t rgb) { return nearest_memo(rgb, 0, 15); }

/* ---- scale ---- */

void vz_scale_init(vz_scale *s, vz_map_kind map, vz_scale_mode mode)
{
    memset(s, 0, sizeof *s);
    s->map = map;
    s->mode = mode;
}

void vz_scale_set_mode(vz_scale *s, vz_scale_mode mode)
{
    s->mode = mode;
}

static const char *const mode_names[] = {"auto", "lock", "sym", "log", "p99"};

int vz_scale_parse(const char *name, vz_scale_mode *mode)
{
    if (!name) return -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(name, mode_names[i]) == 0) {
            *mode = (vz_scale_mode)i;
            return 0;
        }
    return -1;
}

const char *vz_scale_name(vz_scale_mode mode)
{
    return (unsigned)mode < 5 ? mode_names[mode] : "?";
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int vz_scale_fit_strided(vz_scale *s, const float *x, size_t n, size_t stride)
{
    if (s->mode == VZ_SCALE_LOCK && s->has_range) return 0;
    if (stride == 0) stride = 1;
    double mn = INFINITY, mx = -INFINITY, ma = 0;
    size_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x[i * stride];
        if (!isfinite(v)) continue;
        nf++;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        if (fabs(v) > ma) ma = fabs(v);
    }
    int rc = 0;
    int seq = s->map == VZ_MAP_SEQUENTIAL;
    s->has_range = 1;
    s->log_t = 0;
    if (nf == 0) {
        s->lo = s->hi = 0;
        return 0;
    }
    switch (s->mode) {
    case VZ_SCALE_AUTO:
    case VZ_SCALE_LOCK:          /* LOCK without a range yet: take AUTO's once */
        s->lo = mn;
        s->hi = mx;
        break;
    case VZ_SCALE_SYM:
    case VZ_SCALE_LOG:
        s->lo = seq ? 0 : -ma;
        s->hi = ma;
        if (s->mode == VZ_SCALE_LOG)
            s->log_t = s->log_t_set > 0 ? s->log_t_set : ma > 0 ? ma / 1000 : 1;
        break;
    case VZ_SCALE_P99: {
        double p = ma;
        float *a = malloc(nf * sizeof *a);
        if (a) {
            size_t k = 0;
            for (size_t i = 0; i < n; i++) {
                float v = x[i * stride];
                if (isfinite(v)) a[k++] = fabsf(v);
            }
            qsort(a, nf, sizeof *a, cmp_float);
            size_t r = (size_t)ceil(0.99 * (double)nf);   /* nearest rank, 1-based */
            if (r < 1) r = 1;
            if (r > nf) r = nf;
            p = a[r - 1];
            free(a);
        } else {
            rc = -1;
        }
        s->lo = seq ? (mn < p ? mn : p) : -p;
        s->hi = p;
        break;
    }
    }
    return rc;
}

int vz_scale_fit(vz_scale *s, const float *x, size_t n)
{
    return vz_scale_fit_strided(s, x, n, 1);
}

static double fwd(const vz_scale *s, double v)
{
    if (s->log_t > 0) return v < 0 ? -log1p(-v / s->log_t) : log1p(v / s->log_t);
    return v;
}

double vz_scale_norm(const vz_scale *s, double x)
{
    if (!isfinite(x)) return NAN;
    if (!s->has_range) return 0;
    double y = fwd(s, x);
    if (s->map == VZ_MAP_DIVERGING) {
        double dn = -fwd(s, s->lo < 0 ? s->lo : 0);   /* slope of each side; */
        double dp = fwd(s, s->hi > 0 ? s->hi : 0);    /* an empty side borrows the other's */
        if (dn <= 0) dn = dp;
        if (dp <= 0) dp = dn;
        if (dn <= 0) return 0;
        double t = y < 0 ? y / dn : y / dp;
        return clampd(t, -1, 1);
    }
    double a = fwd(s, s->lo), b = fwd(s, s->hi);
    if (!(b > a)) return 0;
    return clampd((y - a) / (b - a), 0, 1);
}

uint32_t vz_scale_color(const vz_scale *s, vz_depth d, double x)
{
    return vz_map_color(s->map, d, vz_scale_norm(s, x));
}

const char *vz_scale_glyph(const vz_scale *s, double x)
{
    if (isinf(x)) return "!";
    return vz_map_glyph(s->map, vz_scale_norm(s, x));
}
