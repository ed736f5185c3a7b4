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
 * Sandbox: the session runs in a private temporary directory holding only
 * model.safetensors (a copy of fuzz/corpus/safetensors/bytes-f32-L1.safetensors,
 * read at start-up from the repository root), emptied before every input.
 * Lines that name anything outside it are skipped: any line with a '/'.
 * Lines that would run long are skipped too: gen, step, task, grow, sweep
 * and checkpoints with a number > 64, `score @FILE` of a file over 8 KB.
 * Stops after `quit`.
 */
#include "fuzz.h"
#include "args.h"
#include "commands.h"
#include "out.h"
#include "session.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#define CMD_MODEL_SRC "fuzz/corpus/safetensors/bytes-f32-L1.safetensors"

static unsigned char *cf_model;
static size_t cf_model_len;
static char cf_dir[64];
static int cf_out = -1;        /* memfd that takes stdout during a command */

static void cf_empty_dir(void)
{
    DIR *d = opendir(cf_dir);
    if (!d) return;
    char p[512];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", cf_dir, e->d_name);
        if (unlink(p)) rmdir(p);
    }
    closedir(d);
}

static void cf_cleanup(void)
{
    cf_empty_dir();
    rmdir(cf_dir);
}

static void cf_init(void)
{
    if (cf_model) return;
    FILE *f = fopen(CMD_MODEL_SRC, "rb");
    FUZZ_CHECK(f != NULL, "cannot open %s (run from the repository root)", CMD_MODEL_SRC);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    cf_model = malloc((size_t)n);
    FUZZ_CHECK(cf_model && fread(cf_model, 1, (size_t)n, f) == (size_t)n, "cannot read %s", CMD_MODEL_SRC);
    cf_model_len = (size_t)n;
    fclose(f);
    snprintf(cf_dir, sizeof cf_dir, "/dev/shm/metastate-cmd-XXXXXX");
    if (!mkdtemp(cf_dir)) {
        snprintf(cf_dir, sizeof cf_dir, "/tmp/metastate-cmd-XXXXXX");
        FUZZ_CHECK(mkdtemp(cf_dir) != NULL, "cannot make a temporary directory");
    }
    atexit(cf_cleanup);
    cf_out = memfd_create("metastate-cmd-out", MFD_CLOEXEC);
    FUZZ_CHECK(cf_out >= 0, "memfd_create");
}

/* 1 if the line may run: stays in the sandbox and ends soon */
static int cf_line_ok(const char *line)
{
    if (strchr(line, '/')) return 0;
    char **argv = NULL, err[128];
    int argc = 0;
    const char *p = line;
    while (*p == ' ' || *p == '\t' || *p == '\r') p++;
    if (arg_split(p, &argv, &argc, err, sizeof err) || argc == 0) { free(argv); return 1; }
    int ok = 1;
    static const char *const counted[] = {"gen", "step", "task", "grow", "sweep", "checkpoints"};
    int is_counted = 0;
    for (size_t i = 0; i < sizeof counted / sizeof counted[0]; i++) is_counted |= !strcmp(argv[0], counted[i]);
    if (is_counted) {   /* every number in the arguments (also in key=value) at most 64 */
        for (int i = 1; i < argc; i++)
            for (const char *q = argv[i]; *q; q++) {
                if (!(*q >= '0' && *q <= '9') && *q != '.') continue;
                char *end;
                double v = strtod(q, &end);
                if (!(v <= 64)) ok = 0;
                q = end > q ? end - 1 : q;
            }
    } else if (!strcmp(argv[0], "score")) {   /* score @FILE: FILE is the rest of the line */
        const char *at = strchr(p, '@');
        char name[256];
        struct stat st;
        if (at) {
            snprintf(name, sizeof name, "%s", at + 1);
            name[strcspn(name, "\r")] = 0;
            if (!stat(name, &st) && st.st_size > 8192) ok = 0;
        }
    }
    free(argv);
    return ok;
}

/* stdout of one command, captured: the bytes written to cf_out since the
 * last rewind, NUL-terminated in a malloc'd buffer */
static char *cf_take_output(size_t *len)
{
    fflush(stdout);
    off_t n = lseek(cf_out, 0, SEEK_CUR);
    char *b = malloc((size_t)n + 1);
    FUZZ_CHECK(b != NULL, "out of memory");
    *len = (size_t)pread(cf_out, b, (size_t)n, 0);
    b[*len] = 0;
    FUZZ_CHECK(!ftruncate(cf_out, 0) && lseek(cf_out, 0, SEEK_SET) == 0, "rewind capture");
    return b;
}

static void cf_check_json(const char *line, const char *o, size_t len, int rc)
{
    if (rc == 0) { FUZZ_CHECK(len == 0, "blank line or comment printed %zu bytes", len); return; }
    FUZZ_CHECK(len > 0 && o[len - 1] == '\n', "command printed no complete line");
    const char *last = o;
    int lines = 0;
    for (const char *p = o; p < o + len;) {   /* every line is one JSON object */
        const char *nl = memchr(p, '\n', (size_t)(o + len - p));
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        FUZZ_CHECK(j && cJSON_IsObject(j) && cJSON_IsString(cJSON_GetObjectItem(j, "cmd")) &&
                   cJSON_IsBool(cJSON_GetObjectItem(j, "ok")), "output line %d is not a result object: %.*s", lines,
                   (int)(nl - p), p);
        cJSON_Delete(j);
        last = p;
        lines++;
        p = nl + 1;
    }
    /* the command's own line is the last, and names it */
    const char *q = line;
    while (*q == ' ' || *q == '\t' || *q == '\r') q++;
    char name[64];
    size_t nl = strcspn(q, " \t\r\n");
    snprintf(name, sizeof name, "%.*s", nl < sizeof name ? (int)nl : 63, q);
    const cmd_def *d = nl < sizeof name ? cmd_lookup(name) : NULL;
    int is_source = d && !strcmp(d->name, "source");
    FUZZ_CHECK(lines == 1 || is_source, "%d output lines for one command", lines);
    cJSON *j = cJSON_ParseWithLength(last, len - (size_t)(last - o) - 1);
    FUZZ_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")) == (rc == 1), "\"ok\" disagrees with the return %d", rc);
    /* not checked for `source` yet: its result is reported as "cmd":"?" (or the name of
     * the file's failing command), because the nested commands reuse the one out (repl/commands.c) */
    if (d && !is_source)
        FUZZ_CHECK(!strcmp(cJSON_GetObjectItem(j, "cmd")->valuestring, d->name), "result names '%s', not '%s'",
                   cJSON_GetObjectItem(j, "cmd")->valuestring, d->name);
    cJSON_Delete(j);
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    cf_init();
    cf_empty_dir();
    char model[128];
    snprintf(model, sizeof model, "%s/model.safetensors", cf_dir);
    int fd = open(model, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FUZZ_CHECK(fd >= 0 && write(fd, cf_model, cf_model_len) == (ssize_t)cf_model_len, "write %s", model);
    close(fd);

    int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FUZZ_CHECK(cwd >= 0 && !chdir(cf_dir), "chdir %s", cf_dir);
    static volatile sig_atomic_t stop;
    sess *s = sess_new(NULL, &stop);
    ms_err err;
    int dropped;
    FUZZ_CHECK(s && !sess_load(s, "model.safetensors", &dropped, &err), "load the model: %s", err.msg);
    int json = !(size >= 5 && !memcmp(data, "#text", 5));
    out o = { .json = json };
    cmd_env e = { .s = s, .o = &o };

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
        if (cf_line_ok(line)) {
            char msg[1024];
            int rc = cmd_run_line(&e, line, NULL, msg, sizeof msg);
            size_t len;
            char *got = cf_take_output(&len);
            if (json) cf_check_json(line, got, len, rc);
            free(got);
        }
        line = nl ? nl + 1 : NULL;
    }
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    free(text);
    cmd_env_free(&e);
    cJSON_Delete(o.obj);
    sess_free(s);
    FUZZ_CHECK(!fchdir(cwd), "back to the starting directory");
    close(cwd);
    return 0;
}
