/* heatmap.h: matrices, vectors, the colour bar and the layer × head overview
 * drawn into a rectangle of the cell grid.
 *
 * What it is: renderers that take plain data (a float matrix, a vector, an
 * array of per-head values) plus a fitted vz_scale and a depth, and write
 * cells.  None of them ever writes outside the rectangle it is given (nor
 * outside the grid), whatever the sizes; each returns the size it used,
 * counted from the rectangle's top-left corner, so a caller can centre or
 * place labels.
 *
 * Layout, for a WKV head: rows are the value index i, columns the key index
 * j (MODEL.md 4, S[h][i][j]); row 0 is at the top.
 * - Colour depths: half-block cells.  Each cell is U+2580 '▀' with fg = the
 *   upper matrix row and bg = the lower, so an R×C matrix takes C columns and
 *   ceil(R/2) rows (64×64 → 64×32).  An odd last row has the default bg.
 * - Monochrome: one matrix row per text row, the glyph of vz_scale_glyph.
 * - Too small a rectangle: the matrix is pooled to fit, never cropped.  Out
 *   of R rows into r < R, output row k covers source rows
 *   [floor(k·R/r), floor((k+1)·R/r)) (the same for columns), and its value is
 *   the entry of largest |x| in that block, sign kept (the first one on a
 *   tie, in row-major order).  Max-|x| pooling, not the mean, so a single
 *   large entry, the thing one looks for in a state, never averages away.
 *   A block holding a NaN or ±inf pools to it, so a non-finite value is
 *   never hidden by pooling.
 * - A larger rectangle is not filled: the matrix is drawn 1:1 at its
 *   top-left and the rest is left untouched.
 *
 * What it is not: a panel.  It does not choose the scale (the caller fits
 * it, perhaps over a whole layer so that heads compare) and keeps no state.
 */
#ifndef VZ_HEATMAP_H
#define VZ_HEATMAP_H

#include <stddef.h>

#include "cells.h"
#include "colormap.h"

typedef struct { int w, h; } vz_size;

#define VZ_HALF_BLOCK "\xe2\x96\x80"   /* U+2580 UPPER HALF BLOCK */

/* The cells a rows×cols matrix takes in a w×h rectangle at depth d (what
 * vz_heatmap would return).  {0, 0} for empty input or rectangle. */
vz_size vz_heatmap_size(int rows, int cols, int w, int h, vz_depth d);

/* Draw the rows×cols matrix m (row i at m + i*stride; stride 0 = cols) into
 * r.  Values are coloured through s at depth d (see above).  Returns the
 * size used; nothing is drawn for rows or cols < 1 or m NULL. */
vz_size vz_heatmap(vz_grid *g, vz_rect r, const float *m, int rows, int cols, size_t stride,
                   const vz_scale *s, vz_depth d);

/* A vector of n values along the horizontal axis (e.g. q along the key axis,
 * under a heatmap of the same width): one cell per value, pooled like the
 * heatmap's columns to min(n, r.w) cells, repeated on each of the r.h rows.
 * Colour: '▀' with fg = bg = the colour; mono: the glyph. */
vz_size vz_strip_h(vz_grid *g, vz_rect r, const float *v, int n, const vz_scale *s, vz_depth d);

/* A vector of n values along the vertical axis (e.g. e along the value axis,
 * beside a heatmap of the same height): colour packs two values per row with
 * half blocks exactly like the heatmap's rows (pooled to min(n, 2·r.h)),
 * mono one value per row; each row fills r.w cells. */
vz_size vz_strip_v(vz_grid *g, vz_rect r, const float *v, int n, const vz_scale *s, vz_depth d);

/* The colour bar on the first row of r: "LO <bar> HI MODE", LO and HI the
 * ends of the scale's range (%.3g) and MODE its name.  The bar spans the
 * whole map (diverging -1..1, sequential 0..1, ends exact).  When r is too
 * narrow the mode goes first, then the numbers.  Returns the size used. */
vz_size vz_colorbar(vz_grid *g, vz_rect r, const vz_scale *s, vz_depth d);

/* The layer × head overview: vals[l*H + h] for L layers and H heads, one
 * row per layer ("L<l>" label), one tile per head (a marker cell and up to 4
 * value cells, as wide as r allows).  sse[l] is layer l's SSE head count
 * (heads 0..sse[l]-1 are SSE heads; NULL = none): their marker cell shows
 * '•' (mono '*').  The head (sel_l, sel_h) is marked selected (colour: '◆'
 * in its value cells in a contrasting fg; mono: '>' in the marker cell,
 * bold); -1 selects nothing.  A header row of head numbers is added when r
 * has a row to spare and the numbers fit the tiles.  Layers and heads that
 * do not fit are clipped. */
vz_size vz_overview(vz_grid *g, vz_rect r, const float *vals, int L, int H, const int *sse,
                    const vz_scale *s, vz_depth d, int sel_l, int sel_h);

/* The cell of head (l, h) as vz_overview(…, r, L, H, …) would lay it out
 * (its first value cell), for a caller that maps mouse clicks or draws a
 * cursor; {-1,-1,0,0} when that head is clipped away. */
vz_rect vz_overview_tile(vz_rect r, int L, int H, int l, int h);

#endif
