/* tui.h: the full-screen view (DEBUGGER.md §2): ncursesw panels above a
 * readline command line, live while commands run.
 *
 * What it is: the terminal side of the view.  One loop waits for input (and
 * for SIGINT and SIGWINCH through a self-pipe), splits the bytes into keys,
 * gives the view's keys to viz/view.c and every other byte to readline's
 * callback interface (so typing, history, Ctrl-R and tab completion work
 * while the panels stay on screen), and runs each finished line with
 * cmd_run_line.  While a command runs, the session's watch hook calls back
 * after every token; the frame is redrawn at most 30 times a second (a
 * time-based throttle, so drawing never holds generation back), view keys
 * typed meanwhile are handled at those moments, other typing waits for the
 * prompt, and the last frame is always drawn when the command ends.
 * Commands print as usual: stdout and stderr are pointed at in-memory files
 * for the duration and read into the output panel.
 *
 * The terminal is restored on every way out: quit, Ctrl-D, end of input,
 * exit() (atexit), SIGTERM/SIGHUP/SIGQUIT, and a crash (SIGSEGV, SIGBUS,
 * SIGFPE, SIGILL, SIGABRT: the handler writes the terminfo reset strings and
 * the saved terminal modes with async-signal-safe calls, then re-raises).
 * Ctrl-C stops a running command between tokens (the session's stop flag);
 * at an idle prompt it clears the line, and a second one asks before
 * quitting.
 *
 * A file given with -x runs inside the view; a line starting with "#>" is a
 * tour step: its text is shown as a banner and the file pauses until Enter
 * on an empty command line (commands typed meanwhile run as usual, Ctrl-C
 * ends the tour).  In a tour a failing command is shown and the tour goes on;
 * in a plain -x file it stops the file, as in line mode.
 *
 * What it is not: it draws nothing itself (viz/), knows no command (the
 * table in commands.c) and owns no model data (cmd_view.c holds the view's).
 */
#ifndef MS_TUI_H
#define MS_TUI_H

#include <stddef.h>

#include "commands.h"

typedef struct {
    char kind;           /* 'c': a command, 'x': a file of commands */
    const char *text;
} tui_action;

typedef struct {
    int no_color;        /* --no-color (NO_COLOR is read from the environment) */
    const tui_action *acts;
    int n_acts;
} tui_opts;

/* 1 if the full-screen view can run here: stdin and stdout are terminals
 * and TERM names a terminal with cursor addressing (not "dumb").  Else 0
 * with the reason in why. */
int tui_possible(char *why, size_t cap);

/* Run the view until `quit`, Ctrl-D or the end of input.  Returns 0, or -1
 * if the terminal could not be set up (nothing was changed; why says what,
 * and the caller goes on in line mode). */
int tui_run(cmd_env *e, const tui_opts *o, char *why, size_t cap);

#endif
