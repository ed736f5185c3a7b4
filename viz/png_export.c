/* png_export.c: heatmap PNG export with libpng, written atomically (see
 * png_export.h).
 *
 * What it is: pixels from colormap.c, libpng for the encoding, and the
 * temporary-file / fsync / rename dance.  What it is not: a PNG reader or a
 * general image writer.
 */
#include "png_export.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* fsync the directory holding path, so the rename itself is durable; a
 * failure here is not reported (the file is complete either way). */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) strcpy(dir, ".");
    else if (slash == path) strcpy(dir, "/");
    else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return;
        memcpy(dir, path, n);
        dir[n] = 0;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

/* The libpng part: write the image to f.  Returns 0 or -1 (err set). */
static int encode(FILE *f, const float *m, int rows, int cols, size_t stride, const vz_scale *s,
                  int factor, int colorbar, unsigned char *row, uint32_t *rowc, ms_err *err)
{
    int W = cols * factor;
    int gap = colorbar ? (factor > 2 ? factor : 2) : 0;
    int barh = colorbar ? (2 * factor > 8 ? 2 * factor : 8) : 0;
    int Hh = rows * factor + gap + barh;

    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, err, on_png_error,
                                              on_png_warning);
    if (!png) { ms_seterr(err, "libpng: cannot create the writer"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        ms_seterr(err, "libpng: cannot create the info struct");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)Hh, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    char comment[256];
    snprintf(comment, sizeof comment,
             "metastate heatmap rows=%d cols=%d scale=%s map=%s lo=%.9g hi=%.9g log_t=%.9g "
             "nonfinite=#ff00ff", rows, cols, vz_scale_name(s->mode),
             s->map == VZ_MAP_DIVERGING ? "diverging" : "sequential", s->lo, s->hi, s->log_t);
    png_text text[2];
    memset(text, 0, sizeof text);
    text[0].compression = PNG_TEXT_COMPRESSION_NONE;
    text[0].key = "Software";
    text[0].text = "metastate";
    text[1].compression = PNG_TEXT_COMPRESSION_NONE;
    text[1].key = "Comment";
    text[1].text = comment;
    png_set_text(png, info, text, 2);
    png_write_info(png, info);

    for (int i = 0; i < rows; i++) {
        const float *mr = m + (size_t)i * stride;
        for (int j = 0; j < cols; j++) rowc[j] = vz_scale_color(s, VZ_DEPTH_TRUE, mr[j]);
        for (int x = 0; x < W; x++) put_rgb(row + 3 * (size_t)x, rowc[x / factor]);
        for (int k = 0; k < factor; k++) png_write_row(png, row);
    }
    if (colorbar) {
        for (int x = 0; x < W; x++) put_rgb(row + 3 * (size_t)x, 0xffffff);
        for (int k = 0; k < gap; k++) png_write_row(png, row);
        double t0 = s->map == VZ_MAP_DIVERGING ? -1 : 0;
        for (int x = 0; x < W; x++) {
            double t = W > 1 ? t0 + (1 - t0) * x / (W - 1) : (t0 + 1) / 2;
            put_rgb(row + 3 * (size_t)x, vz_map_rgb(s->map, t));
        }
        for (int k = 0; k < barh; k++) png_write_row(png, row);
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
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

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    unsigned char *row = malloc((size_t)cols * (size_t)factor * 3);
    uint32_t *rowc = malloc((size_t)cols * sizeof *rowc);
    if (!tmp || !row || !rowc) {
        free(tmp); free(row); free(rowc);
        ms_seterr(err, "%s: out of memory", path);
        return -1;
    }
    memcpy(tmp, path, plen);
    strcpy(tmp + plen, ".tmp.XXXXXX");
    int rc = -1;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        ms_seterr(err, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        goto out;
    }
    fchmod(fd, 0644);   /* mkstemp makes 0600; an image is for sharing */
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        ms_seterr(err, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (encode(f, m, rows, cols, stride, s, factor, colorbar, row, rowc, err) != 0) {
        fclose(f);
        unlink(tmp);
        goto out;
    }
    if (fflush(f) != 0 || ferror(f)) {
        ms_seterr(err, "%s: write failed: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        goto out;
    }
    if (fsync(fileno(f)) != 0) {
        ms_seterr(err, "%s: fsync failed: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        goto out;
    }
    if (fclose(f) != 0) {
        ms_seterr(err, "%s: close failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        ms_seterr(err, "%s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    sync_dir(path);
    rc = 0;
out:
    free(tmp);
    free(row);
    free(rowc);
    return rc;
}
