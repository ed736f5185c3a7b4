/* colormap.h: from numbers to colours (or glyphs), and the scale that decides
 * which range of numbers the colours span.
 *
 * What it is:
 * - two maps: DIVERGING for signed values, centred at 0 (ColorBrewer RdBu:
 *   -1 dark blue #053061, 0 neutral #f7f7f7, +1 dark red #67001f, linear in
 *   sRGB between its 11 designed steps), and SEQUENTIAL for magnitudes
 *   (viridis: 0 #440154 dark purple, 1 #fde725 yellow, 9 steps);
 * - four colour depths: truecolor (the map itself), 256 (the nearest entry
 *   of the xterm 6×6×6 cube and grey ramp, indices 16..255, never the
 *   themable 0..15), 16 (a few discrete steps from the ANSI 16, see below)
 *   and monochrome (ASCII glyphs, no colour at all);
 * - five scale modes (vz_scale): auto, lock, sym, log, p99, described at
 *   vz_scale_mode.
 * Non-finite values (NaN, ±inf) never crash anything: in colour they are
 * VZ_NONFINITE_RGB (magenta #ff00ff, which neither map uses; 256: index
 * 201, 16: bright magenta 13), in monochrome '?' (NaN) and '!' (±inf).
 *
 * Monochrome glyphs (ASCII, so they work on any terminal):
 *   sequential: " .:-=+*#%@" (10 levels, blank = the bottom of the range);
 *   diverging:  5 levels each side of a blank centre, positive ".:+#@" and
 *               negative ",;-=%" (each negative glyph has about the ink of
 *               its positive partner, so the magnitude reads the same and the
 *               sign shows in the shape): -1 '%' ... ',' ' ' '.' ... '@' +1.
 * 16 colours (the xterm default RGB is stored in the cells, so termdraw.c
 * maps them back to the index exactly):
 *   diverging:  blue 4, bright blue 12, bright white 15, bright red 9, red 1
 *               (5 equal steps over [-1, 1]: |t| < 0.2 is the neutral 15);
 *   sequential: blue 4, cyan 6, green 2, bright green 10, bright yellow 11.
 *
 * What it is not: it draws nothing (heatmap.c) and knows no terminal; the
 * depth is chosen once from the environment (vz_depth_from_env) and then
 * passed around as a plain value.
 */
#ifndef VZ_COLORMAP_H
#define VZ_COLORMAP_H

#include <stddef.h>
#include <stdint.h>

typedef enum { VZ_DEPTH_MONO = 0, VZ_DEPTH_16 = 1, VZ_DEPTH_256 = 2, VZ_DEPTH_TRUE = 3 } vz_depth;
typedef enum { VZ_MAP_DIVERGING = 0, VZ_MAP_SEQUENTIAL = 1 } vz_map_kind;

#define VZ_NONFINITE_RGB 0xff00ffu

/* The depth for these environment values (any may be NULL = unset):
 * no_color_flag (--no-color), NO_COLOR set to anything (even empty) or
 * TERM=dumb → MONO; else COLORTERM truecolor/24bit or a TERM ending in
 * "-direct" → TRUE; else a TERM containing "256color" → 256; else 16. */
vz_depth vz_depth_choose(const char *colorterm, const char *term, const char *no_color,
                         int no_color_flag);
/* The same with getenv("COLORTERM"), getenv("TERM"), getenv("NO_COLOR"). */
vz_depth vz_depth_from_env(int no_color_flag);
const char *vz_depth_name(vz_depth d);   /* "mono", "16", "256", "truecolor" */

/* ---- maps: normalised position → colour ----
 * t: diverging in [-1, 1] (0 = neutral), sequential in [0, 1]; values
 * outside are clamped.  NaN → VZ_NONFINITE_RGB (or '?'). */

/* The map's truecolor RGB at t (exact at the designed steps: diverging −1, 0,
 * +1 are #053061, #f7f7f7, #67001f; sequential 0, 1 are #440154, #fde725). */
uint32_t vz_map_rgb(vz_map_kind k, double t);
/* The colour at t for depth d, as stored in a cell: TRUE the map itself, 256
 * the RGB of the nearest palette entry 16..255, 16 the RGB of the discrete
 * 16-colour step, MONO VZ_DEFAULT (monochrome has no colour). */
uint32_t vz_map_color(vz_map_kind k, vz_depth d, double t);
/* The monochrome glyph at t (a static one-character string). */
const char *vz_map_glyph(vz_map_kind k, double t);

/* ---- the xterm palette ---- */
uint32_t vz_xterm_rgb(int idx);        /* RGB of palette entry 0..255 (xterm defaults) */
int vz_nearest_256(uint32_t rgb);      /* the closest of 16..255 (ties: lowest index) */
int vz_nearest_16(uint32_t rgb);       /* the closest of 0..15 */

/* ---- scale: data value → normalised position ---- */

/* Scale modes (what vz_scale_fit does with the data; non-finite values are
 * ignored by every fit):
 *   AUTO  lo = min, hi = max of the data.  Diverging keeps 0 at the neutral
 *         colour with one slope per side: x < 0 maps by x/|min(lo,0)|,
 *         x > 0 by x/max(hi,0), so the sign is always preserved.
 *   LOCK  keeps lo, hi (and the log threshold) from the moment the mode was
 *         set to LOCK; a fit changes nothing (a scale that never had a range
 *         takes the AUTO range once).  For watching a state change without
 *         the colours renormalising every token.
 *   SYM   lo = -M, hi = +M with M = max|x| (sequential: lo = 0, hi = M).
 *   LOG   like SYM, through f(x) = sign(x)·log1p(|x|/t): position = f(x)/f(M)
 *         (sequential f(x)/f(M) clamped at 0).  t = log_t if set > 0, else
 *         M/1000, so about three decades below the maximum stay apart and
 *         |x| ≤ t is nearly linear.  For states whose entries span orders of
 *         magnitude.
 *   P99   lo = -P, hi = +P with P = the 99th percentile of |x| (nearest rank:
 *         the ceil(0.99·n)-th smallest); the rest saturates (sequential:
 *         lo = min(min x, P), hi = P).  One outlier no longer washes out the
 *         rest. */
typedef enum {
    VZ_SCALE_AUTO = 0, VZ_SCALE_LOCK, VZ_SCALE_SYM, VZ_SCALE_LOG, VZ_SCALE_P99
} vz_scale_mode;

typedef struct {
    vz_scale_mode mode;
    vz_map_kind map;
    double lo, hi;     /* the data range the map spans (set by a fit) */
    double log_t;      /* in use: > 0 when the range is logarithmic with threshold log_t */
    double log_t_set;  /* LOG mode: the threshold to use; 0 = auto (M/1000) */
    int has_range;     /* 0 until the first fit */
} vz_scale;

/* A scale with no range yet (everything maps to the centre until a fit). */
void vz_scale_init(vz_scale *s, vz_map_kind map, vz_scale_mode mode);
/* Switch mode.  Switching to LOCK keeps the current range; other modes take
 * effect at the next fit. */
void vz_scale_set_mode(vz_scale *s, vz_scale_mode mode);
/* Parse "auto|lock|sym|log|p99".  Returns 0, or -1 for an unknown name. */
int vz_scale_parse(const char *name, vz_scale_mode *mode);
const char *vz_scale_name(vz_scale_mode mode);

/* Set the range from n values x per the mode (see vz_scale_mode).  n = 0 or
 * all non-finite leaves a range of [0, 0], where every value maps to the
 * centre (diverging) or bottom (sequential).  Returns 0, or -1 when P99
 * could not allocate its scratch (it then uses the maximum, like SYM). */
int vz_scale_fit(vz_scale *s, const float *x, size_t n);
/* The same over a strided set: x[i*stride] for i < n (e.g. one column). */
int vz_scale_fit_strided(vz_scale *s, const float *x, size_t n, size_t stride);

/* The normalised position of x: diverging [-1, 1], sequential [0, 1], NaN
 * for a non-finite x.  0 for everything while the range is degenerate. */
double vz_scale_norm(const vz_scale *s, double x);
/* vz_map_color(s->map, d, vz_scale_norm(s, x)) */
uint32_t vz_scale_color(const vz_scale *s, vz_depth d, double x);
/* The monochrome glyph of x ('?' for NaN, '!' for ±inf). */
const char *vz_scale_glyph(const vz_scale *s, double x);

#endif
