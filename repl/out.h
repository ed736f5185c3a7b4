/* out.h: where a command's result goes: human-readable lines, or with
 * --json exactly one JSON object per command on one line of stdout.
 *
 * A command runs between out_begin() and out_end(); in between its handler
 * prints text lines with out_text() (shown only in text mode) and adds
 * result fields to out_obj() (shown only in JSON mode), so each handler
 * describes its result once for each audience and never decides the mode.
 * Errors are one line: on stderr in text mode, {"cmd":..,"ok":false,
 * "error":..} on stdout in JSON mode.
 *
 * What it is not: it knows no commands or sessions.
 */
#ifndef MS_OUT_H
#define MS_OUT_H

#include <stddef.h>
#include <cjson/cJSON.h>

typedef struct {
    int json;        /* 1: one JSON object per command on stdout */
    int color;       /* 1: colour error lines (stderr is a terminal, colour allowed) */
    cJSON *obj;      /* the result being built; NULL outside a command */
    char cmd[48];    /* its command name */
    int col;         /* text mode: 1 if the last raw output did not end a line */
} out;

void out_begin(out *o, const char *cmd);
/* The JSON result object of the current command (never NULL inside one). */
cJSON *out_obj(out *o);
/* A text-mode line (a newline is added); nothing in JSON mode. */
void out_text(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Raw text-mode output as it comes (gen); nothing in JSON mode. */
void out_raw(out *o, const char *s, size_t len);
/* End the current command: ok, or failed with a one-line message. */
void out_end(out *o);
void out_end_err(out *o, const char *msg);
/* The same; print_text 0: in text mode the line is not printed (it was
 * already, by an inner command), JSON mode still ends with the object. */
void out_end_err2(out *o, const char *msg, int print_text);

/* Add bytes as a JSON string, invalid UTF-8 and NULs replaced by U+FFFD,
 * so that the output always parses. */
void out_add_str(cJSON *obj, const char *key, const char *bytes, size_t len);

#endif
