/* commands.h: the command table and the line interpreter.
 *
 * What it is: one table with every command (name, argument syntax, argument
 * count, what each argument completes to, handler, one-line help), so help,
 * apropos, tab completion and argument-count checks all come from one
 * place; and cmd_run_line(), which runs one line of input: splits it, finds
 * the command (or the nearest name for a typo), checks the argument count,
 * calls the handler and reports the result through out.h.  Handlers check
 * every argument before they change anything.
 *
 * What it is not: no readline, no terminal handling, no argv parsing (that
 * is main.c); no model math (that is core/ through session.h).
 */
#ifndef MS_COMMANDS_H
#define MS_COMMANDS_H

#include <stddef.h>

#include "out.h"
#include "session.h"

typedef struct cmd_view_ops cmd_view_ops;

typedef struct {
    sess *s;
    out *o;
    int quit;              /* set by `quit` */
    int depth;             /* nesting of `source` */
    const cmd_view_ops *view_ops;  /* the view's commands (NULL: not in this build) */
    void *view;            /* the view's state, owned by repl/cmd_view.c */
    struct cmd_dbg *dbg;   /* displays, the lines run, the record file
                              (commands.c, cmd_edit.c); made when needed */
} cmd_env;

/* The view's commands (repl/cmd_view.c: view, scale, export to .png),
 * plugged in by main.c, so that the command layer links without viz/ and
 * the UI libraries (fuzzing, tests).  Each takes the checked word count and
 * words of its command, reports through e->o like any handler, and returns
 * 0, or -1 with one line in err. */
struct cmd_view_ops {
    int (*view)(cmd_env *e, int argc, char **argv, ms_err *err);
    int (*scale)(cmd_env *e, int argc, char **argv, ms_err *err);
    int (*export_png)(cmd_env *e, const char *target, const char *path, ms_err *err);
};

typedef struct cmd_call cmd_call;

/* complete: one letter per argument position, the last one repeating:
 * 's' snapshot name, 'S' snapshot name or file, 'f' file, 'c' command name,
 * 'k' set-sampler key, 'b' branch name, 'n' snapshot, branch or now,
 * 't' state target, '-' nothing. */
typedef struct {
    const char *name;
    const char *args;       /* syntax shown by help, e.g. "[NAME] PATH" */
    int min_args, max_args; /* max -1: any number */
    int rest;               /* 1: takes the rest of the line as raw text */
    const char *complete;
    int (*fn)(cmd_call *c); /* NULL: planned, not in this version */
    const char *help;
    const char *more;       /* NULL, or more lines for `help CMD` (the decisions
                               a user needs to know) */
} cmd_def;

/* The table (*n entries), in the order help lists them. */
const cmd_def *cmd_table(int *n);
const cmd_def *cmd_lookup(const char *name);

/* Run one line of input.  Blank lines and lines starting with '#' do
 * nothing.  where (may be NULL) prefixes messages, e.g. "cmds.txt:3".
 * Returns 1 if a command ran and succeeded, 0 for a blank line or comment,
 * -1 if it failed; then msg holds the one-line message that was reported. */
int cmd_run_line(cmd_env *e, const char *line, const char *where, char *msg, size_t cap);

/* The longest line a command file, -x or a pipe on stdin may hold. */
#define CMD_MAX_LINE (1 << 20)

/* Run the lines of a file in order; stops at the first failing command or
 * at Ctrl-C.  Only a regular file is read; a line longer than CMD_MAX_LINE,
 * a NUL byte in a line or a read error stop it.  Returns 0; -1 if the file
 * cannot be read (or that stopped it) or was interrupted
 * (msg says which; nothing was reported); -2 if a command failed (msg
 * holds the message that cmd_run_line already reported). */
int cmd_run_file(cmd_env *e, const char *path, char *msg, size_t cap);

/* Release what the commands keep in e (displays, the lines run, an open
 * record file); e itself is the caller's. */
void cmd_env_free(cmd_env *e);

/* Tab completion of an argument: the k-th (0-based) candidate starting with
 * text, for the completion kind of cmd_def.complete ('s' snapshot, 'b'
 * branch, 'n' snapshot, branch or now, 't' state target), into buf; NULL
 * past the last or for other kinds. */
const char *cmd_complete_word(cmd_env *e, char kind, const char *text, int k, char *buf, size_t cap);

#endif
