/* cmd_sandbox.h: what the two command targets share (fuzz_command.c: any
 * bytes as lines; fuzz_grammar.c: well-formed commands from a grammar): a
 * private directory that holds three models of different shapes (so `load`
 * switches the shape mid-session) and one of each kind of file a reader or
 * writer must refuse (a FIFO, a directory, links), a filter for lines that
 * would leave it or run long, stdout captured per command, and the check of
 * the JSON contract of out.h.  Static functions, included once per target.
 *
 * Sandbox: emptied and laid out again before every input:
 *   model.safetensors  (fuzz/corpus/safetensors/bytes-f32-L1: bytes, L1)
 *   small.safetensors  (words-f16-L2-hs0: the words tokenizer, L2, Hs 0)
 *   experts.safetensors (experts-L1)
 *   fifo (no writer), dir/, link -> model.safetensors, dangling -> nowhere
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

static const char *const cf_model_src[][2] = {
    { "model.safetensors", "fuzz/corpus/safetensors/bytes-f32-L1.safetensors" },
    { "small.safetensors", "fuzz/corpus/safetensors/words-f16-L2-hs0.safetensors" },
    { "experts.safetensors", "fuzz/corpus/safetensors/experts-L1.safetensors" },
};
#define CF_N_MODELS 3
static unsigned char *cf_model[CF_N_MODELS];
static size_t cf_model_len[CF_N_MODELS];
static char cf_dir[64];
static int cf_out = -1;        /* memfd that takes stdout during a command */

/* remove everything under path (the sandbox is flat but dir/ may fill) */
static void cf_rm_tree(const char *path, int keep_top)
{
    DIR *d = opendir(path);
    if (d) {
        char p[512];
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat st;
            if (!lstat(p, &st) && S_ISDIR(st.st_mode)) cf_rm_tree(p, 0);
            else unlink(p);
        }
        closedir(d);
    }
    if (!keep_top) rmdir(path);
}

static void cf_empty_dir(void) { cf_rm_tree(cf_dir, 1); }

static void cf_cleanup(void)
{
    cf_empty_dir();
    rmdir(cf_dir);
}

static void cf_init(void)
{
    if (cf_model[0]) return;
    for (int i = 0; i < CF_N_MODELS; i++) {
        const char *src = cf_model_src[i][1];
        FILE *f = fopen(src, "rb");
        FUZZ_CHECK(f != NULL, "cannot open %s (run from the repository root)", src);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        cf_model[i] = malloc((size_t)n);
        FUZZ_CHECK(cf_model[i] && fread(cf_model[i], 1, (size_t)n, f) == (size_t)n, "cannot read %s", src);
        cf_model_len[i] = (size_t)n;
        fclose(f);
    }
    snprintf(cf_dir, sizeof cf_dir, "/dev/shm/metastate-cmd-XXXXXX");
    if (!mkdtemp(cf_dir)) {
        snprintf(cf_dir, sizeof cf_dir, "/tmp/metastate-cmd-XXXXXX");
        FUZZ_CHECK(mkdtemp(cf_dir) != NULL, "cannot make a temporary directory");
    }
    atexit(cf_cleanup);
    cf_out = memfd_create("metastate-cmd-out", MFD_CLOEXEC);
    FUZZ_CHECK(cf_out >= 0, "memfd_create");
}

/* empty the sandbox and lay it out again (see the top) */
static void cf_lay_out(void)
{
    cf_empty_dir();
    char p[160];
    for (int i = 0; i < CF_N_MODELS; i++) {
        snprintf(p, sizeof p, "%s/%s", cf_dir, cf_model_src[i][0]);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        FUZZ_CHECK(fd >= 0 && write(fd, cf_model[i], cf_model_len[i]) == (ssize_t)cf_model_len[i], "write %s", p);
        close(fd);
    }
    snprintf(p, sizeof p, "%s/fifo", cf_dir);
    FUZZ_CHECK(!mkfifo(p, 0644), "mkfifo %s", p);
    snprintf(p, sizeof p, "%s/dir", cf_dir);
    FUZZ_CHECK(!mkdir(p, 0755), "mkdir %s", p);
    snprintf(p, sizeof p, "%s/link", cf_dir);
    FUZZ_CHECK(!symlink("model.safetensors", p), "symlink %s", p);
    snprintf(p, sizeof p, "%s/dangling", cf_dir);
    FUZZ_CHECK(!symlink("nowhere", p), "symlink %s", p);
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
    /* source's own result comes last and names it (commands.c: cmd_source) */
    if (d)
        FUZZ_CHECK(!strcmp(cJSON_GetObjectItem(j, "cmd")->valuestring, d->name), "result names '%s', not '%s'",
                   cJSON_GetObjectItem(j, "cmd")->valuestring, d->name);
    cJSON_Delete(j);
}

/* a fresh session on model.safetensors in the sandbox (cwd), out o */
static sess *cf_session(cmd_env *e, out *o, int json, int *cwd)
{
    static volatile sig_atomic_t stop;
    cf_init();
    cf_lay_out();
    *cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    FUZZ_CHECK(*cwd >= 0 && !chdir(cf_dir), "chdir %s", cf_dir);
    sess *s = sess_new(NULL, &stop);
    ms_err err;
    int dropped;
    FUZZ_CHECK(s && !sess_load(s, "model.safetensors", &dropped, &err), "load the model: %s", err.msg);
    memset(o, 0, sizeof *o);
    o->json = json;
    memset(e, 0, sizeof *e);
    e->s = s;
    e->o = o;
    return s;
}

/* run one line (if cf_line_ok) with stdout captured, and check the contract */
static void cf_run(cmd_env *e, const char *line)
{
    if (!cf_line_ok(line)) return;
    char msg[1024];
    int rc = cmd_run_line(e, line, NULL, msg, sizeof msg);
    size_t len;
    char *got = cf_take_output(&len);
    if (e->o->json) cf_check_json(line, got, len, rc);
    free(got);
}

static void cf_end(cmd_env *e, out *o, sess *s, int cwd)
{
    cmd_env_free(e);
    cJSON_Delete(o->obj);
    sess_free(s);
    FUZZ_CHECK(!fchdir(cwd), "back to the starting directory");
    close(cwd);
}
