/* view.h: the full-screen view (DEBUGGER.md §2) as panels drawn into a cell
 * grid: what is selected, which panel has the keyboard, the layout, and the
 * key handlers.
 *
 * What it is: the ncdu/htop/tig pattern.  Each panel (tokens, overview, zoom,
 * next tokens, colour bar, output, status, command line) is a module with a
 * draw function and a key function in one table (panels.c); a key handler
 * only changes the vz_view and returns flags (what must be recomputed or
 * redrawn); one loop (repl/tui.c) reads keys, calls vz_view_key, and draws
 * the whole frame with vz_view_draw into one vz_grid, which termdraw.c then
 * writes to the terminal at once.  Everything here is headless: the golden
 * tests draw each panel into a grid and dump it.
 *
 * Keys (vz_view_key; the command line gets every key that is not the
 * view's, see vz_view_wants):
 *   Tab / Shift-Tab   next / previous panel (from the command line only when
 *                     it is empty); Esc back to the command line
 *   arrows            overview and zoom: Up/Down layer, Left/Right head;
 *                     output: scroll; next tokens: Up/Down change k
 *   PgUp / PgDn       previous / next layer (anywhere; in the output: a page)
 *   Home / End        first / last layer (output: top / bottom)
 *   Enter             overview: zoom into the selected head
 *   s                 zoom: one head ⇄ the layer's SSE heads
 *   m                 overview metric: ‖S‖ → ‖ΔS‖ → drift → ‖S‖
 *   c                 scale mode: auto → lock → sym → log → p99
 *   + / -             grow / shrink the panel with the keyboard
 *   h / a             hide that panel / show all panels
 *   ? or F1           help (any key closes it); on the command line `?`
 *                     opens it only when the line is empty
 *   Ctrl-L            redraw everything
 * Any other printable key in a panel returns to the command line and is
 * typed there.
 *
 * What it is not: a terminal driver (no ncurses here), a reader of keys
 * from bytes (tui.c), or an owner of the data it shows (vz_data).
 */
#ifndef VZ_VIEW_H
#define VZ_VIEW_H

#include "cells.h"
#include "colormap.h"
#include "textlog.h"
#include "viewdata.h"

typedef enum {
    VZ_P_TOKENS = 0, VZ_P_OVERVIEW, VZ_P_ZOOM, VZ_P_TOPK, VZ_P_BAR, VZ_P_LOG, VZ_P_STATUS,
    VZ_P_CMD, VZ_P_N
} vz_panel_id;

/* Keys other than Unicode characters (which are their code points). */
enum {
    VZ_K_UP = 0x110000, VZ_K_DOWN, VZ_K_LEFT, VZ_K_RIGHT, VZ_K_PGUP, VZ_K_PGDN, VZ_K_HOME,
    VZ_K_END, VZ_K_TAB, VZ_K_BTAB, VZ_K_ESC, VZ_K_ENTER, VZ_K_F1, VZ_K_CTRL_L
};

/* What a key handler asks of the loop (bits). */
enum {
    VZ_KF_USED = 1,      /* the key was the view's */
    VZ_KF_DRAW = 2,      /* redraw the frame */
    VZ_KF_REFILL = 4,    /* the selection changed: recompute the data */
    VZ_KF_FULL = 8,      /* repaint the whole terminal (Ctrl-L) */
    VZ_KF_TOCMD = 16     /* focus went to the command line: give it the key */
};

typedef struct {
    int sel_l, sel_h;            /* the selected head (the zoom's, and the SSE view's layer) */
    vz_zoom_mode zoom;
    vz_ov_metric metric;
    char drift_snap[64];         /* the snapshot that VZ_OV_DRIFT compares with */
    int topk;                    /* next tokens shown (1..VZ_TOPK_MAX) */
    vz_scale zs;                 /* the zoom's scale (diverging; keeps its range for lock) */
    vz_scale os;                 /* the overview's (sequential) */
    vz_depth depth;
    int ascii;                   /* only ASCII glyphs (the locale is not UTF-8) */
    int focus;                   /* vz_panel_id with the keyboard */
    int hidden[VZ_P_N];          /* hidden by the user */
    int tok_rows, log_rows, left_w;   /* sizes set with +/-; 0 = automatic */
    int help;                    /* the help box is shown */
    int log_scroll;              /* output lines scrolled back from the end */
    int W, H;                    /* the size the layout is for */
    vz_rect rect[VZ_P_N];        /* the layout (w = 0: not shown) */
    int *sse_marks;              /* (L) scratch for the overview */
    int sse_marks_n;
} vz_view;

/* The frame around the panels, owned by the caller. */
typedef struct {
    const char *prompt;          /* the command line: prompt, text, cursor (byte offset) */
    const char *line;
    int point;
    const vz_log *log;           /* the output panel's lines (may be NULL) */
    const char *status;          /* the right side of the status line, e.g. "gen… Ctrl-C stops" */
    const char *banner;          /* a tour step's explanation (replaces the status line), or NULL */
    int running;                 /* a command is running */
} vz_chrome;

void vz_view_init(vz_view *v, vz_depth depth, int ascii);
void vz_view_free(vz_view *v);

/* The selection as vz_data_update wants it. */
vz_select vz_view_select(const vz_view *v);
/* Clamp the selection to a model of L layers and H heads. */
void vz_view_clamp(vz_view *v, int L, int H);
/* Set the scale mode of both scales (lock keeps their current ranges). */
void vz_view_set_scale(vz_view *v, vz_scale_mode m);

/* Compute the panels' rectangles for a W×H terminal (also done by
 * vz_view_draw when the size changed).  Panels that do not fit get w = 0. */
void vz_view_layout(vz_view *v, const vz_data *d, int W, int H);

/* 1 if, with the command line empty (line_empty) or not, the key belongs to
 * the view rather than to the command line. */
int vz_view_wants(const vz_view *v, int key, int line_empty);
/* Handle one key; returns VZ_KF_* bits (0: not the view's). */
int vz_view_key(vz_view *v, int key, const vz_data *d);

/* Draw the whole frame into g (resized by the caller to the terminal):
 * every shown panel, then the help box.  *cx, *cy get the command line's
 * cursor cell. */
void vz_view_draw(vz_grid *g, vz_view *v, const vz_data *d, const vz_chrome *ch, int *cx, int *cy);

/* Draw one panel into r (golden tests, the line mode's `view`). */
void vz_panel_draw(vz_panel_id id, vz_grid *g, vz_rect r, vz_view *v, const vz_data *d,
                   const vz_chrome *ch);
const char *vz_panel_name(vz_panel_id id);

/* The help text's lines (NULL-terminated), for the help box and `help keys`. */
const char *const *vz_view_help_lines(void);

/* ---- shared by the panels ---- */

/* A UI colour (0xRRGGBB) as stored for depth d: the nearest palette colour
 * for 256 and 16, VZ_DEFAULT in monochrome. */
uint32_t vz_ui_color(vz_depth d, uint32_t rgb);
/* Cells that the UTF-8 text s (n bytes) takes. */
int vz_text_width(const char *s, size_t n);

#endif
