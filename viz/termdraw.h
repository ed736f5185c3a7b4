/* termdraw.h: the one bridge from the cell grid to ncursesw.
 *
 * What it is: colour set-up for the depth the terminal can really show, and
 * one function that copies a vz_grid into an ncurses window (wide
 * characters, colour pairs, bold).  The caller owns the ncurses session: it
 * calls setlocale(LC_ALL, "") and initscr() before vz_term_new, and
 * refreshes (wnoutrefresh/doupdate) after vz_term_draw, once per frame.
 *
 * Colour: ncurses keeps its own picture of the screen, so colours go through
 * ncurses only, never through escape sequences written behind its back.
 * Truecolor is used only where the terminfo entry itself is direct-colour
 * (COLORS ≥ 2^24, e.g. TERM=xterm-direct); otherwise a truecolor request
 * falls back to the 256-colour palette (COLORTERM=truecolor with
 * TERM=xterm-256color gives 256 here; PNG export is always truecolor).
 * Pairs come from ncurses' alloc_pair (6.1+), which reuses the least
 * recently used pair when the table is full.  With only 8 colours (e.g.
 * TERM=xterm), the bright 16-colour entries fall back to their base colours.
 * A locale that is not UTF-8 forces monochrome, whose glyphs are all ASCII.
 *
 * What it is not: a layout or an event loop; everything else in viz/
 * renders without ncurses.  (Named termdraw, not term: with -Iviz a
 * viz/term.h would hide ncurses' <term.h>.)
 */
#ifndef VZ_TERMDRAW_H
#define VZ_TERMDRAW_H

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>

#include "cells.h"
#include "colormap.h"

typedef struct vz_term vz_term;

/* Start colours (after initscr) for at most depth `want` and return the
 * renderer; vz_term_depth() then says the depth actually available, which
 * the panels must render with.  NULL only on allocation failure. */
vz_term *vz_term_new(vz_depth want);
vz_depth vz_term_depth(const vz_term *t);
void vz_term_free(vz_term *t);

/* Copy the grid into w from its top-left corner, clipped to the window.  A
 * wide glyph that would be cut by the right edge is drawn as a space.
 * Returns 0, or -1 when some cell could not be written (the rest are). */
int vz_term_draw(vz_term *t, WINDOW *w, const vz_grid *g);

/* The same, writing only the cells that differ from prev (the grid drawn
 * last time, same size; NULL or another size: every cell).  For the live
 * view, where most of a frame stays as it was. */
int vz_term_draw_changed(vz_term *t, WINDOW *w, const vz_grid *g, const vz_grid *prev);

#endif
