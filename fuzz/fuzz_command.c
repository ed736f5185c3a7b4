/* fuzz_command.c: any bytes as a script of REPL commands (cmd_run_line),
 * one line each, on a fresh session with the tiny bytes model loaded.
 *
 * Mode: JSON (--json) unless the input starts with "#text".  In JSON mode
 * stdout is captured for each line and checked against out.h's contract:
 * nothing for a blank line or a comment; otherwise one line per command
 * that parses as a JSON object whose "ok" says what cmd_run_line returned
 * (`source` prints its file's lines before its own).  Text mode checks
 * only that nothing crashes (its errors go to stderr: run libFuzzer with
 * -close_fd_mask=3, as fuzz/run.sh does).
 *
 * Sandbox (cmd_sandbox.h): the session runs in a private temporary directory
 * holding three models of different shapes and a FIFO, a directory and
 * links, laid out again before every input.  Lines that name anything
 * outside it are skipped: any line with a '/'.
 * Lines that would run long are skipped too: gen, step, task, grow, sweep
 * and checkpoints with a number > 64, `score @FILE` of a file over 8 KB.
 * Stops after `quit`.
 */
#include "cmd_sandbox.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    int json = !(size >= 5 && !memcmp(data, "#text", 5));
    cmd_env e;
    out o;
    int cwd;
    sess *s = cf_session(&e, &o, json, &cwd);
    char *text = malloc(size + 1);
    FUZZ_CHECK(text != NULL, "out of memory");
    memcpy(text, data, size);
    text[size] = 0;
    fflush(stdout);
    int saved = dup(1);
    FUZZ_CHECK(saved >= 0 && dup2(cf_out, 1) == 1, "redirect stdout");
    for (char *line = text; line && !e.quit;) {
        char *nl = memchr(line, '\n', size - (size_t)(line - text));
        if (nl) *nl = 0;
        /* a NUL inside the input ends the line early, as it would for getline + C strings */
        cf_run(&e, line);
        line = nl ? nl + 1 : NULL;
    }
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    free(text);
    cf_end(&e, &o, s, cwd);
    return 0;
}
