/* cells.h: an off-screen grid of character cells, the frame every panel draws
 * into.
 *
 * What it is: a w×h array of cells, each one glyph (UTF-8, one code point,
 * at most 4 bytes), a foreground and a background colour (24-bit RGB, or
 * "the terminal's default") and a bold flag.  Panels build the whole frame
 * here and it is written to the terminal once (termdraw.c), or dumped as text
 * (vz_grid_dump) for golden test files, so every panel renders headlessly.
 * All writes are clipped to the grid: no function here ever touches memory
 * outside it, whatever the coordinates.
 *
 * What it is not: it knows nothing of ncurses, colour depths or terminals;
 * a colour here is already the final colour (colormap.c quantizes for
 * 256/16-colour terminals before it is stored).
 */
#ifndef VZ_CELLS_H
#define VZ_CELLS_H

#include <stddef.h>
#include <stdint.h>

/* A colour: 0xRRGGBB, or VZ_DEFAULT for the terminal's own fg/bg colour. */
#define VZ_DEFAULT 0x01000000u

typedef struct {
    char ch[5];      /* one glyph, UTF-8, NUL-terminated; "" = right half of a wide glyph */
    uint8_t bold;
    uint32_t fg, bg; /* 0xRRGGBB or VZ_DEFAULT */
} vz_cell;

typedef struct { uint32_t fg, bg; int bold; } vz_style;
#define VZ_STYLE_PLAIN ((vz_style){VZ_DEFAULT, VZ_DEFAULT, 0})

typedef struct { int x, y, w, h; } vz_rect;

typedef struct {
    int w, h;
    vz_cell *cells;  /* (h, w) row-major */
} vz_grid;

/* A grid of w×h blank cells (space, default colours).  w, h ≥ 0 (0 gives an
 * empty grid that every write ignores).  Returns NULL on a negative size, a
 * size over 10^7 cells, or allocation failure.  Free with vz_grid_free. */
vz_grid *vz_grid_new(int w, int h);
void vz_grid_free(vz_grid *g);

/* Change the size; the content becomes blank.  Returns 0, or -1 (grid
 * unchanged) on a bad size or allocation failure. */
int vz_grid_resize(vz_grid *g, int w, int h);

/* Every cell blank: a space in default colours, not bold. */
void vz_grid_clear(vz_grid *g);

/* The cell at (x, y), or NULL outside the grid. */
vz_cell *vz_grid_at(vz_grid *g, int x, int y);
const vz_cell *vz_grid_cat(const vz_grid *g, int x, int y);

/* The rectangle r clipped to the grid (w or h 0 when nothing is left). */
vz_rect vz_rect_clip(const vz_grid *g, vz_rect r);

/* Put one glyph (the first code point of `glyph`, UTF-8) at (x, y) in style
 * st.  A wide glyph (CJK, emoji) takes two cells and is dropped when the
 * second cell would be outside the grid; writing over half of a wide glyph
 * blanks its other half.  Returns the cells used (0, 1 or 2). */
int vz_put_glyph(vz_grid *g, int x, int y, const char *glyph, vz_style st);

/* Put the UTF-8 text s (len bytes, or up to its NUL when len is (size_t)-1)
 * from (x, y) rightwards, using at most maxw cells, clipped to the grid.
 * Invalid UTF-8 and control characters show as U+FFFD; zero-width code
 * points (combining marks) are dropped.  Nothing wraps.  Returns the cells
 * used. */
int vz_put(vz_grid *g, int x, int y, int maxw, const char *s, size_t len, vz_style st);

/* printf into the grid like vz_put (the text is truncated at 1023 bytes). */
int vz_putf(vz_grid *g, int x, int y, int maxw, vz_style st, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Fill r (clipped) with a glyph (a narrow one; a wide glyph fills with "?"). */
void vz_fill(vz_grid *g, vz_rect r, const char *glyph, vz_style st);

/* Set only the colours and bold of the cells in r (clipped), keeping the glyphs. */
void vz_restyle(vz_grid *g, vz_rect r, vz_style st);

/* The grid as text, for golden files: a header line "vz-grid WxH", then one
 * line per row, the glyphs between '|' marks (a wide glyph once, its right
 * half nothing), then "colours:" and one line per row "Y: runs", each run
 * "N fg/bg" with hex RRGGBB or '-' for the default colour and "+b" when bold.
 * Deterministic.  Returns a malloc'd NUL-terminated string (caller frees),
 * or NULL on allocation failure. */
char *vz_grid_dump(const vz_grid *g);

/* ---- UTF-8 helpers (shared with termdraw.c and the panels) ---- */

/* Decode the code point at s (n bytes available, n ≥ 1).  Sets *cp (U+FFFD
 * for an invalid, overlong, surrogate or truncated sequence) and returns the
 * bytes consumed (≥ 1, ≤ n). */
int vz_utf8_next(const char *s, size_t n, uint32_t *cp);
/* Encode cp (≤ U+10FFFF, else U+FFFD) into out (5 bytes); returns the length. */
int vz_utf8_put(uint32_t cp, char out[5]);
/* Terminal columns of cp: 0 (combining, zero-width), 2 (East Asian wide,
 * emoji) or 1.  A fixed table, not the locale's wcwidth, so that dumps are
 * the same everywhere. */
int vz_cp_width(uint32_t cp);

#endif
