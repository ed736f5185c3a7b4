/* png_export.h: a matrix exported as a heatmap PNG (`export L3.H1 out.png`).
 *
 * What it is: one function that colours a float matrix through a vz_scale
 * in truecolor (whatever the terminal's depth) and writes an 8-bit RGB PNG
 * with libpng, through the atomic writer of fileio.h (the policy every
 * writer follows: whole or untouched, no temporary left, never through a
 * symbolic link; a failure names the file and the cause).
 *
 * Layout: each value is a factor×factor block of pixels, row i of the matrix
 * (the value index for a WKV head) at the top, column j (the key index) at
 * the left: width W = cols·factor, height rows·factor.  With a colour bar, a
 * white gap of max(2, factor) rows follows, then a bar of max(8, 2·factor)
 * rows whose pixel column x has the map's colour at t = t0 + (1 - t0)·x/(W-1)
 * (t0 = -1 diverging, 0 sequential; the middle of the map when W = 1).
 * Non-finite values are #ff00ff.  The scale and its range are recorded in a
 * tEXt "Comment" chunk ("scale=MODE map=diverging lo=… hi=… log_t=…"),
 * since the image carries no text; "Software" is "metastate".  No time
 * chunk, so the same input gives the same bytes.
 *
 * What it is not: a screenshot of the terminal (cell grids are not exported).
 * (Named png_export, not png: with -Iviz a viz/png.h would hide libpng's.)
 */
#ifndef VZ_PNG_EXPORT_H
#define VZ_PNG_EXPORT_H

#include <stddef.h>

#include "colormap.h"
#include "ms.h"

#define VZ_PNG_MAX_SIDE 16384

/* Write the rows×cols matrix m (row i at m + i*stride; stride 0 = cols),
 * coloured through s (its range as fitted; the caller fits it), scaled up by
 * factor (1..64), with a colour bar strip if colorbar is non-zero, to path.
 * Returns 0, or -1 with err naming the path and the cause (bad size, a side
 * over VZ_PNG_MAX_SIDE pixels, cannot create, libpng error, write/fsync/
 * rename failure); on failure path is left as it was. */
int vz_png_write(const char *path, const float *m, int rows, int cols, size_t stride,
                 const vz_scale *s, int factor, int colorbar, ms_err *err);

/* ---- composite images (`export view`: a panel's matrices, strips and
 * colour bar in one picture) ----
 * An RGB canvas; every drawing call is clipped to it.  vz_img_write writes
 * it like vz_png_write (atomically, tEXt Software and Comment, no time). */
typedef struct {
    int w, h;
    unsigned char *rgb;   /* (h, w, 3) */
} vz_img;

/* A w×h canvas (1..VZ_PNG_MAX_SIDE each) filled with bg; NULL (err set) on
 * a bad size or allocation failure. */
vz_img *vz_img_new(int w, int h, uint32_t bg, ms_err *err);
void vz_img_free(vz_img *im);
void vz_img_fill(vz_img *im, int x, int y, int w, int h, uint32_t rgb);
/* The matrix coloured through s in truecolor, factor×factor pixels a value,
 * its top-left at (x, y). */
void vz_img_matrix(vz_img *im, int x, int y, const float *m, int rows, int cols, size_t stride,
                   const vz_scale *s, int factor);
/* The whole map of kind k left to right over w×h pixels (as in vz_png_write). */
void vz_img_colorbar(vz_img *im, int x, int y, int w, int h, vz_map_kind k);
/* Write it to path; comment (may be NULL) goes into the tEXt Comment chunk.
 * Returns 0 or -1 with err, path left as it was on failure. */
int vz_img_write(const vz_img *im, const char *path, const char *comment, ms_err *err);

#endif
