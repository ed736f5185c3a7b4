/* cmd_view.h: the view's side of the REPL: the commands `view`, `scale` and
 * `export TARGET PATH.png`, and the glue between the session and viz/.
 *
 * What it is: the owner of the view's state for one cmd_env (e->view): the
 * vz_view (selection, scales, focus), the observer record of the last step
 * (vz_rec) and the frame data (vz_data).  On first use it installs the
 * session's watch hook (session.h), so every step of the current point is
 * recorded for the panels from then on; before that, nothing is observed and
 * stepping costs nothing extra.  It turns the session into a vz_source for
 * vz_data_update, so viz/ never sees the session.
 *
 * In line mode (--plain, --batch, not a terminal) `view` prints the panel it
 * selects as text (monochrome glyphs, plus the numbers for the overview);
 * in the full-screen view (repl/tui.c) it only changes what is shown.
 *
 * What it is not: the terminal (tui.c) or a renderer (viz/).
 */
#ifndef MS_CMD_VIEW_H
#define MS_CMD_VIEW_H

#include "commands.h"
#include "view.h"

typedef struct cmdv cmdv;

/* The commands, for cmd_env.view_ops. */
extern const cmd_view_ops cmdv_ops;

/* The view state of e, created (and the session's watch hook installed) on
 * first use.  NULL on allocation failure. */
cmdv *cmdv_get(cmd_env *e);
/* Uninstall the hook and free (e->view may be NULL). */
void cmdv_free(cmd_env *e);

vz_view *cmdv_view(cmdv *v);
/* 1 while the full-screen view shows the panels (then `view` prints nothing). */
void cmdv_set_live(cmdv *v, int live);
/* fn(ctx) is called after every watched step (the TUI's throttled redraw). */
void cmdv_set_step_hook(cmdv *v, void (*fn)(void *ctx), void *ctx);
/* Steps watched since the start (for "has anything changed"). */
unsigned long cmdv_steps(const cmdv *v);

/* The frame data, recomputed from the session when a step happened or the
 * selection changed since the last call, or when force is set (after any
 * command: restore, edits and load change the point without a step).
 * Never NULL once a model is loaded. */
const vz_data *cmdv_data(cmdv *v, int force);

#endif
