/* png_export.c: heatmap PNG export with libpng, written atomically (see
 * png_export.h).
 *
 * What it is: pixels from colormap.c, libpng for the encoding, and the
 * bytes handed to the atomic writer of fileio.h.  What it is not: a PNG reader or a
 * general image writer.
 */
#include "png_export.h"
#include "fileio.h"

#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpng reports errors through a callback that must not return: keep the
 * message and jump back to vz_png_write. */
static void on_png_error(png_structp png, png_const_charp msg)
{
    ms_err *err = png_get_error_ptr(png);
    if (err) ms_seterr(err, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void put_rgb(unsigned char *p, uint32_t c)
{
    p[0] = (unsigned char)(c >> 16);
    p[1] = (unsigned char)(c >> 8);
    p[2] = (unsigned char)c;
}

/* Rows of an image come from a callback: row y (W pixels, RGB) into `row`. */
typedef void (*row_fn)(void *ctx, int y, unsigned char *row);

/* libpng's output goes to the atomic writer of fileio.h; the first failure
 * (its one line names the file and the cause) is kept and libpng stopped. */
typedef struct { ms_wfile *w; ms_err *err; int failed; } png_out;

static void on_png_write(png_structp png, png_bytep data, png_size_t len)
{
    png_out *po = png_get_io_ptr(png);
    if (!po->failed && ms_wfile_write(po->w, data, len, po->err) != 0) po->failed = 1;
    if (po->failed) png_longjmp(png, 1);
}

static void on_png_flush(png_structp png) { (void)png; }

/* The libpng part: write a W×H image.  Returns 0 or -1 (err set). */
static int encode(png_out *po, int W, int H, const char *comment, row_fn rows, void *ctx, unsigned char *row)
{
    ms_err *err = po->err;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_png_error,
                                              on_png_warning);
    if (!png) { ms_seterr(err, "%s: libpng: cannot create the writer", ms_wfile_path(po->w)); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        ms_seterr(err, "%s: libpng: cannot create the info struct", ms_wfile_path(po->w));
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, po, on_png_write, on_png_flush);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text text[2];
    memset(text, 0, sizeof text);
    text[0].compression = PNG_TEXT_COMPRESSION_NONE;
    text[0].key = "Software";
    text[0].text = "metastate";
    text[1].compression = PNG_TEXT_COMPRESSION_NONE;
    text[1].key = "Comment";
    text[1].text = (char *)(comment ? comment : "");
    png_set_text(png, info, text, comment ? 2 : 1);
    png_write_info(png, info);
    for (int y = 0; y < H; y++) {
        rows(ctx, y, row);
        png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* Write a W×H image to path under the writers' policy (fileio.h).  Returns
 * 0 or -1 with err; path is left as it was on failure. */
static int write_atomic(const char *path, int W, int H, const char *comment, row_fn rows, void *ctx,
                        ms_err *err)
{
    unsigned char *row = malloc((size_t)W * 3);
    if (!row) {
        ms_seterr(err, "%s: out of memory", path);
        return -1;
    }
    int rc = -1;
    ms_wfile *w = ms_wfile_open(path, err);
    if (w) {
        png_out po = { w, err, 0 };
        if (encode(&po, W, H, comment, rows, ctx, row) == 0) {
            rc = ms_wfile_commit(w, err);
        } else {
            if (!po.failed) {   /* libpng's own error: name the file */
                char m[sizeof err->msg];
                snprintf(m, sizeof m, "%s", err->msg);
                ms_seterr(err, "%s: %s; nothing was written", path, m);
            }
            ms_wfile_abort(w);
        }
    }
    free(row);
    return rc;
}

/* ---- one matrix ---- */

typedef struct {
    const float *m;
    int rows, cols, factor, gap, barh;
    size_t stride;
    const vz_scale *s;
    uint32_t *rowc;      /* (cols) colours of the matrix row last computed */
    int have_row;        /* matrix row held in rowc, or -1 */
} mat_ctx;

static void mat_row(void *ctx, int y, unsigned char *row)
{
    mat_ctx *c = ctx;
    int W = c->cols * c->factor;
    if (y < c->rows * c->factor) {
        int i = y / c->factor;
        if (c->have_row != i) {
            const float *mr = c->m + (size_t)i * c->stride;
            for (int j = 0; j < c->cols; j++) c->rowc[j] = vz_scale_color(c->s, VZ_DEPTH_TRUE, mr[j]);
            c->have_row = i;
        }
        for (int x = 0; x < W; x++) put_rgb(row + 3 * (size_t)x, c->rowc[x / c->factor]);
    } else if (y < c->rows * c->factor + c->gap) {
        for (int x = 0; x < W; x++) put_rgb(row + 3 * (size_t)x, 0xffffff);
    } else {
        double t0 = c->s->map == VZ_MAP_DIVERGING ? -1 : 0;
        for (int x = 0; x < W; x++) {
            double t = W > 1 ? t0 + (1 - t0) * x / (W - 1) : (t0 + 1) / 2;
            put_rgb(row + 3 * (size_t)x, vz_map_rgb(c->s->map, t));
        }
    }
}

int vz_png_write(const char *path, const float *m, int rows, int cols, size_t stride,
                 const vz_scale *s, int factor, int colorbar, ms_err *err)
{
    if (!path || !*path || !m || !s) {
        ms_seterr(err, "png export: missing path, matrix or scale");
        return -1;
    }
    if (rows < 1 || cols < 1 || factor < 1 || factor > 64) {
        ms_seterr(err, "%s: bad image size: %d×%d values, factor %d (1..64)", path, rows, cols,
                  factor);
        return -1;
    }
    /* the bar adds at most max(2, f) + max(8, 2f) ≤ 3f + 10 rows */
    if ((long)cols * factor > VZ_PNG_MAX_SIDE ||
        (long)rows * factor + 3L * factor + 10 > VZ_PNG_MAX_SIDE) {
        ms_seterr(err, "%s: image of %ld×%ld pixels is over the limit of %d per side", path,
                  (long)cols * factor, (long)rows * factor, VZ_PNG_MAX_SIDE);
        return -1;
    }
    if (stride == 0) stride = (size_t)cols;
    mat_ctx c = { m, rows, cols, factor, 0, 0, stride, s, NULL, -1 };
    if (colorbar) {
        c.gap = factor > 2 ? factor : 2;
        c.barh = 2 * factor > 8 ? 2 * factor : 8;
    }
    c.rowc = malloc((size_t)cols * sizeof *c.rowc);
    if (!c.rowc) {
        ms_seterr(err, "%s: out of memory", path);
        return -1;
    }
    char comment[256];
    snprintf(comment, sizeof comment,
             "metastate heatmap rows=%d cols=%d scale=%s map=%s lo=%.9g hi=%.9g log_t=%.9g "
             "nonfinite=#ff00ff", rows, cols, vz_scale_name(s->mode),
             s->map == VZ_MAP_DIVERGING ? "diverging" : "sequential", s->lo, s->hi, s->log_t);
    int rc = write_atomic(path, cols * factor, rows * factor + c.gap + c.barh, comment, mat_row, &c, err);
    free(c.rowc);
    return rc;
}

/* ---- composite images ---- */

vz_img *vz_img_new(int w, int h, uint32_t bg, ms_err *err)
{
    if (w < 1 || h < 1 || w > VZ_PNG_MAX_SIDE || h > VZ_PNG_MAX_SIDE) {
        ms_seterr(err, "image of %d×%d pixels: each side must be 1..%d", w, h, VZ_PNG_MAX_SIDE);
        return NULL;
    }
    vz_img *im = malloc(sizeof *im);
    unsigned char *px = malloc((size_t)w * (size_t)h * 3);
    if (!im || !px) {
        free(im);
        free(px);
        ms_seterr(err, "out of memory for a %d×%d image", w, h);
        return NULL;
    }
    im->w = w;
    im->h = h;
    im->rgb = px;
    vz_img_fill(im, 0, 0, w, h, bg);
    return im;
}

void vz_img_free(vz_img *im)
{
    if (!im) return;
    free(im->rgb);
    free(im);
}

static void img_put(vz_img *im, int x, int y, uint32_t c)
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    put_rgb(im->rgb + 3 * ((size_t)y * (size_t)im->w + (size_t)x), c);
}

void vz_img_fill(vz_img *im, int x, int y, int w, int h, uint32_t rgb)
{
    if (!im) return;
    for (int j = y < 0 ? 0 : y; j < y + h && j < im->h; j++)
        for (int i = x < 0 ? 0 : x; i < x + w && i < im->w; i++) img_put(im, i, j, rgb);
}

void vz_img_matrix(vz_img *im, int x, int y, const float *m, int rows, int cols, size_t stride,
                   const vz_scale *s, int factor)
{
    if (!im || !m || !s || rows < 1 || cols < 1 || factor < 1) return;
    if (stride == 0) stride = (size_t)cols;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            uint32_t c = vz_scale_color(s, VZ_DEPTH_TRUE, m[(size_t)i * stride + (size_t)j]);
            vz_img_fill(im, x + j * factor, y + i * factor, factor, factor, c);
        }
}

void vz_img_colorbar(vz_img *im, int x, int y, int w, int h, vz_map_kind k)
{
    if (!im || w < 1) return;
    double t0 = k == VZ_MAP_DIVERGING ? -1 : 0;
    for (int i = 0; i < w; i++) {
        double t = w > 1 ? t0 + (1 - t0) * i / (w - 1) : (t0 + 1) / 2;
        vz_img_fill(im, x + i, y, 1, h, vz_map_rgb(k, t));
    }
}

static void img_row(void *ctx, int y, unsigned char *row)
{
    const vz_img *im = ctx;
    memcpy(row, im->rgb + 3 * (size_t)y * (size_t)im->w, 3 * (size_t)im->w);
}

int vz_img_write(const vz_img *im, const char *path, const char *comment, ms_err *err)
{
    if (!im || !path || !*path) {
        ms_seterr(err, "png export: missing path or image");
        return -1;
    }
    return write_atomic(path, im->w, im->h, comment, img_row, (void *)im, err);
}
