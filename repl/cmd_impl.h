/* cmd_impl.h: what the command handlers share, for the files that hold
 * them (commands.c: the table, the interpreter and the model/run/snapshot/
 * session handlers; cmd_branch.c: branches, goto, replay, checkpoints;
 * cmd_edit.c: edits, display, export; cmd_compare.c: diff and sweep).
 *
 * What it is: the call a handler receives, the helpers every handler uses
 * to fail with one line and to quote user input, and the handlers'
 * declarations for the table.  Not for main.c or the view: they use
 * commands.h.
 */
#ifndef MS_CMD_IMPL_H
#define MS_CMD_IMPL_H

#include "commands.h"
#include "target.h"

#include <cjson/cJSON.h>
#include <stdio.h>

struct cmd_call {
    cmd_env *e;
    sess *s;
    out *o;
    int argc;
    char **argv;
    const char *rest;     /* raw text after the command name and one space */
    ms_err *err;
};

/* Fail with one line (what was wrong and what is valid); returns -1.
 * Every %s taken from user input must go through cmd_q(). */
int cmd_fail(cmd_call *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* What a command returns when it failed and its message has already been
 * printed (a `source` whose inner command failed): the interpreter prints
 * nothing more in text mode, and still ends the JSON object with ok false. */
#define CMD_FAIL_REPORTED (-2)
/* quoted user input for messages; up to 4 live at once */
const char *cmd_q(const char *s);
/* refuse a PATH that exists and is not a regular file (files are written
 * by a temporary file and a rename) */
int cmd_check_target(cmd_call *c, const char *path);
/* a JSON array of ints */
cJSON *cmd_int_array(const int *v, int n);
/* one token rendered between quotes, into buf */
const char *cmd_tok(cmd_call *c, int id, char *buf, size_t cap);
/* snapshot index by name, or -1 after a message naming the known ones */
int cmd_find_snap(cmd_call *c, const char *name);
/* parse a state target for the loaded model, or -1 with the message */
int cmd_target(cmd_call *c, const char *text, tgt *t);
/* print s->note (what an operation did besides its job) and clear it */
void cmd_note(cmd_call *c);

/* A target that outlives the command that named it (a display; watches and
 * steering to come): its text and the model shape it was read for.  Every
 * use goes through cmd_held_check, which reads the text again when the
 * model changed (load, grow), so its offsets always fit the state in use. */
typedef struct {
    tgt t;
    char name[64];             /* the canonical text */
    ms_config cfg;             /* the shape t's offsets are for */
} cmd_held;
/* Parse text for the loaded model into h.  0, or -1 with the message. */
int cmd_held_set(cmd_call *c, cmd_held *h, const char *text);
/* 0 when h fits the loaded model (read again if the model changed), or -1
 * with the reason in c->err when the new model has no such target. */
int cmd_held_check(cmd_call *c, cmd_held *h);

/* What the commands keep in a cmd_env besides the session. */
#define CMD_MAX_DISPLAY 32
typedef struct {
    int id;                    /* the number undisplay takes */
    cmd_held h;
} cmd_disp;
struct cmd_dbg {
    cmd_disp disp[CMD_MAX_DISPLAY];
    int n_disp, next_id;
    char **lines;              /* the commands run at the top level, for `history` */
    int n_lines, cap_lines;
    int rec_fd;                /* `record FILE`: each command appended as it runs (-1: off) */
    long long rec_len;         /* the file's length after the last whole line */
    char *rec_path;
};
/* e->dbg, made on first use (NULL only for no memory) */
struct cmd_dbg *cmd_dbg(cmd_env *e);

/* A point named by a word: "now", a snapshot, or a branch (at its cursor).
 * p is the point (borrowed: s->cur, a snapshot's, or own when branch >= 0
 * and not the current one: then *owned is set and it must be released with
 * sess_pt_free). */
typedef struct {
    const sess_point *p;
    sess_point own;
    int owned;
    char name[SESS_NAME_MAX];
    const char *kind;          /* "now", "snapshot", "branch" */
} cmd_point;
int cmd_point_get(cmd_call *c, const char *word, cmd_point *pt);
void cmd_point_put(cmd_point *pt);

/* displays (cmd_edit.c): print every display of the session for the
 * current point; called after a command changed it */
void cmd_display_show(cmd_call *c);
/* Drop the displays the loaded model has no target for, one line each (after
 * load and grow; cmd_display_show does it too). */
void cmd_display_refit(cmd_call *c);
void cmd_display_free(cmd_env *e);

/* handlers */
int cmd_fork(cmd_call *c);
int cmd_branches(cmd_call *c);
int cmd_switch(cmd_call *c);
int cmd_drop_branch(cmd_call *c);
int cmd_goto(cmd_call *c);
int cmd_replay(cmd_call *c);
int cmd_events(cmd_call *c);
int cmd_checkpoints(cmd_call *c);
int cmd_mem(cmd_call *c);
int cmd_set(cmd_call *c);
int cmd_zero(cmd_call *c);
int cmd_scale_state(cmd_call *c);
int cmd_noise(cmd_call *c);
int cmd_patch(cmd_call *c);
int cmd_display(cmd_call *c);
int cmd_undisplay(cmd_call *c);
int cmd_export_data(cmd_call *c, const char *target, const char *path);
int cmd_diff(cmd_call *c);
int cmd_sweep(cmd_call *c);
/* cmd_model.c: scaling, experiments, trace */
int cmd_grow(cmd_call *c);
int cmd_save_model(cmd_call *c);
int cmd_task(cmd_call *c);
int cmd_trace(cmd_call *c);

#endif
