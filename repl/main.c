/* main.c: the metastate program: argument parsing (DEBUGGER.md 1), the
 * default model, -c/-x commands, --batch, the interactive line mode
 * (readline with history and tab completion), and the start of the
 * full-screen view (tui.c) when stdin and stdout are a terminal that can
 * show it and neither --plain, --batch nor --json was given.
 *
 * What it is: the thin outer layer that turns argv and a terminal into
 * calls of cmd_run_line().  What it is not: the full-screen view itself
 * (tui.c), or anything that knows what a command does (commands.c).
 *
 * Exit status: 0; 1 for a model that cannot be loaded or the first failing
 * command under --batch; 2 for a bad command-line argument.  Each failure
 * prints exactly one line on stderr.
 */
#include "cmd_view.h"
#include "commands.h"
#include "out.h"
#include "tui.h"
#include "args.h"
#include "session.h"
#include "statefile.h"
#include "fileio.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#define MAIN_HISTORY_FILE ".metastate_history"
#define MAIN_HISTORY_MAX 2000

static const char *main_default_models[] = {
    "models/kjv.safetensors",
    "tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin",
};

typedef struct {
    char kind;          /* 'c' command, 'x' file */
    const char *text;
} main_action;

typedef struct {
    const char *model;
    main_action *acts;
    int n_acts;
    int batch, plain, json, no_color;
    const char *backend;
    int threads;
} main_opts;

static volatile sig_atomic_t main_stop;
static volatile sig_atomic_t main_in_readline;
static cmd_env *main_env;   /* for the readline completion callbacks */

static void main_usage(FILE *f)
{
    fprintf(f,
        "usage: metastate [MODEL] [-c CMD]... [-x FILE]... [--batch] [--plain] [--json]\n"
        "                 [--backend cpu|cuda] [--threads N] [--no-color] [--version] [--help]\n"
        "\n"
        "Runs a Meta-State (RWKV-7 + Self-State Encoder) model token by token and lets you\n"
        "snapshot, save and reopen its state.  MODEL is a .safetensors file or an rwkv.cpp .bin;\n"
        "without it: models/kjv.safetensors, else tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin\n"
        "(looked up in the current directory, then beside the executable).\n"
        "\n"
        "  -c CMD          run a command (repeatable; in order with -x)\n"
        "  -x FILE         run the commands in FILE, one per line ('#' starts a comment)\n"
        "  --batch         exit after the commands; the first failing one exits with status 1\n"
        "  --plain         line mode instead of the full-screen view\n"
        "  --json          every command's result as one JSON object per line on stdout\n"
        "  --backend B     cpu (default) or cuda: token steps on an NVIDIA GPU (libmscuda.so,\n"
        "                  built where nvcc is installed); without one: a line, then the CPU\n"
        "  --threads N     threads for the kernels\n"
        "  --no-color      no colour (also when NO_COLOR is set)\n"
        "  --version, --help\n"
        "\n"
        "Inside, 'help' lists the commands and 'help CMD' shows one.\n");
}

/* Every exit of the program.  Under an address-space limit (ulimit -v)
 * OpenBLAS's worker threads can be stuck retrying the allocation of their
 * buffers, and its library destructor waits for them forever; there the
 * program flushes its output and leaves without running destructors.
 * Otherwise exit() as usual (LeakSanitizer and the emulator's leak check
 * run at exit). */
static void main_exit(int code) __attribute__((noreturn));
static void main_exit(int code)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        fflush(NULL);
        _exit(code);
    }
    exit(code);
}

/* One line on stderr, then exit with status code. */
static void main_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void main_die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("metastate: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    main_exit(code);
}

/* value of an option given as "--opt VAL" or "--opt=VAL" */
static const char *main_optval(int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    if (!strncmp(argv[*i], opt, n) && argv[*i][n] == '=') return argv[*i] + n + 1;
    if (strcmp(argv[*i], opt) != 0) return NULL;
    if (*i + 1 >= argc) main_die(2, "%s needs a value (try --help)", opt);
    return argv[++*i];
}

static void main_parse(int argc, char **argv, main_opts *o)
{
    char q[200];
    memset(o, 0, sizeof *o);
    o->backend = "cpu";
    o->acts = calloc((size_t)argc, sizeof *o->acts);
    if (!o->acts) main_die(1, "out of memory");
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (only_pos || a[0] != '-' || !a[1]) {
            if (o->model) main_die(2, "unexpected argument '%s': one MODEL at most (try --help)", arg_quote(a, q, sizeof q));
            o->model = a;
        } else if (!strcmp(a, "--")) {
            only_pos = 1;
        } else if ((v = main_optval(argc, argv, &i, "-c"))) {
            o->acts[o->n_acts++] = (main_action){ 'c', v };
        } else if ((v = main_optval(argc, argv, &i, "-x"))) {
            o->acts[o->n_acts++] = (main_action){ 'x', v };
        } else if (!strcmp(a, "--batch")) {
            o->batch = 1;
        } else if (!strcmp(a, "--plain")) {
            o->plain = 1;
        } else if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "--no-color") || !strcmp(a, "--no-colour")) {
            o->no_color = 1;
        } else if ((v = main_optval(argc, argv, &i, "--backend"))) {
            if (strcmp(v, "cpu") && strcmp(v, "cuda"))
                main_die(2, "--backend must be cpu or cuda, got '%s'", arg_quote(v, q, sizeof q));
            o->backend = v;
        } else if ((v = main_optval(argc, argv, &i, "--threads"))) {
            long t;
            if (arg_long(v, 1, 1024, &t) != 0)
                main_die(2, "--threads must be an integer from 1 to 1024, got '%s'", arg_quote(v, q, sizeof q));
            o->threads = (int)t;
        } else if (!strcmp(a, "--version")) {
            printf("metastate %s\n", MS_VERSION);
            main_exit(0);
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            main_usage(stdout);
            main_exit(0);
        } else {
            main_die(2, "unknown option '%s' (try --help)", arg_quote(a, q, sizeof q));
        }
    }
}

/* directory of the running executable, or NULL */
static char *main_exe_dir(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return NULL;
    buf[n] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash) return NULL;
    *slash = 0;
    return strdup(buf[0] ? buf : "/");
}

static int main_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* the default model: each candidate in the current dir, then beside the exe */
static char *main_default_model(const char *exe_dir)
{
    int n = (int)(sizeof main_default_models / sizeof main_default_models[0]);
    for (int i = 0; i < n; i++) {
        if (main_exists(main_default_models[i])) return strdup(main_default_models[i]);
        if (exe_dir) {
            char p[PATH_MAX];
            if (snprintf(p, sizeof p, "%s/%s", exe_dir, main_default_models[i]) < (int)sizeof p && main_exists(p))
                return strdup(p);
        }
    }
    main_die(1, "no MODEL given and no default model found (looked for %s and %s in . and %s)",
             main_default_models[0], main_default_models[1], exe_dir ? exe_dir : "(unknown exe dir)");
}

/* ---- interactive line mode ---- */

static void main_sigint(int sig)
{
    (void)sig;
    main_stop = 1;
    if (main_in_readline) {
        /* at the prompt Ctrl-C drops the line being typed */
        write(STDOUT_FILENO, "\n", 1);
        rl_on_new_line();
        rl_replace_line("", 0);
        rl_redisplay();
    }
}

/* readline generators: state 0 starts a new completion */
static char *main_gen_list(const char *text, int state, const char *const *names, int n, int *idx)
{
    if (!state) *idx = 0;
    size_t len = strlen(text);
    while (*idx < n) {
        const char *s = names[(*idx)++];
        if (s && !strncmp(s, text, len)) return strdup(s);
    }
    return NULL;
}

static char *main_gen_cmd(const char *text, int state)
{
    static int idx;
    int n;
    const cmd_def *t = cmd_table(&n);
    const char *names[128];
    int k = 0;
    for (int i = 0; i < n && k < 128; i++)
        if (t[i].fn) names[k++] = t[i].name;
    return main_gen_list(text, state, names, k, &idx);
}

static char *main_gen_snap(const char *text, int state)
{
    static int idx;
    sess *s = main_env->s;
    if (!state) idx = 0;
    size_t len = strlen(text);
    while (idx < s->n_snaps) {
        const char *nm = sess_snap_name(s, idx++);
        if (!strncmp(nm, text, len)) return strdup(nm);
    }
    return NULL;
}

/* snapshots first, then files */
static char *main_gen_snap_file(const char *text, int state)
{
    static int files;
    if (!state) files = 0;
    if (!files) {
        char *r = main_gen_snap(text, state);
        if (r) return r;
        files = 1;
        state = 0;
    }
    return rl_filename_completion_function(text, state);
}

static char *main_gen_key(const char *text, int state)
{
    static int idx;
    static const char *const keys[] = { "temp=", "top_p=", "top_k=", "seed=" };
    return main_gen_list(text, state, keys, 4, &idx);
}

/* snapshot, branch, "now" and target names (cmd_complete_word) */
static char main_word_kind;
static char *main_gen_word(const char *text, int state)
{
    static int idx;
    if (!state) idx = 0;
    char buf[128];
    const char *r = cmd_complete_word(main_env, main_word_kind, text, idx++, buf, sizeof buf);
    return r ? strdup(r) : NULL;
}

static char **main_complete(const char *text, int start, int end)
{
    (void)end;
    rl_attempted_completion_over = 1;   /* no filename fallback unless chosen */
    /* which word is being completed, and the command's name */
    int word = 0;
    const char *p = rl_line_buffer;
    char name[64] = "";
    int i = 0;
    while (i < start) {
        while (i < start && (p[i] == ' ' || p[i] == '\t')) i++;
        if (i >= start) break;
        int b = i;
        while (i < start && p[i] != ' ' && p[i] != '\t') i++;
        if (word == 0) snprintf(name, sizeof name, "%.*s", i - b < 63 ? i - b : 63, p + b);
        word++;
    }
    if (word == 0) return rl_completion_matches(text, main_gen_cmd);
    const cmd_def *d = cmd_lookup(name);
    if (!d || !d->complete[0]) return NULL;
    size_t cl = strlen(d->complete);
    char kind = d->complete[(size_t)(word - 1) < cl ? (size_t)(word - 1) : cl - 1];
    switch (kind) {
    case 's': return rl_completion_matches(text, main_gen_snap);
    case 'S': return rl_completion_matches(text, main_gen_snap_file);
    case 'f': return rl_completion_matches(text, rl_filename_completion_function);
    case 'c': return rl_completion_matches(text, main_gen_cmd);
    case 'b':
    case 'n':
    case 't':
        main_word_kind = kind;
        if (kind == 't') rl_completion_append_character = '\0';   /* "L3." goes on */
        return rl_completion_matches(text, main_gen_word);
    case 'k':
        rl_completion_append_character = '\0';
        return rl_completion_matches(text, main_gen_key);
    default: return NULL;
    }
}

static char *main_history_path(void)
{
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    char *p = malloc(strlen(home) + sizeof MAIN_HISTORY_FILE + 2);
    if (p) sprintf(p, "%s/%s", home, MAIN_HISTORY_FILE);
    return p;
}

/* readline's set-up, shared by the line mode and the full-screen view:
 * completion from the command table, history from ~/.metastate_history.
 * Returns the history path for main_rl_end (NULL: no history file). */
static char *main_rl_begin(cmd_env *e)
{
    main_env = e;
    rl_readline_name = "metastate";
    rl_attempted_completion_function = main_complete;
    rl_catch_signals = 0;
    using_history();
    char *hist = main_history_path();
    if (hist) read_history(hist);
    return hist;
}

static void main_rl_end(char *hist)
{
    if (!hist) return;
    write_history(hist);
    history_truncate_file(hist, MAIN_HISTORY_MAX);
    free(hist);
}

/* the line-mode loop; returns when the user quits or input ends: 0, or 1
 * when stdin could not be read as lines (one line says why) */
static int main_interactive(cmd_env *e)
{
    int status = 0;
    long lineno = 0;
    int tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    char msg[1024];
    char *last_step = NULL;   /* an empty line repeats the last `step` */
    char *hist = NULL;
    if (tty) {
        hist = main_rl_begin(e);
        if (!e->o->json)
            printf("metastate %s: %s. 'help' lists the commands; Ctrl-D quits.\n", MS_VERSION,
                   e->s->model->path ? e->s->model->path : "?");
    }
    char *buf = NULL;
    size_t cap = 0;
    while (!e->quit) {
        char *line;
        if (tty) {
            char prompt[96];
            snprintf(prompt, sizeof prompt, "%s:%lld> ", e->s->branch, (long long)e->s->cur.position);
            main_stop = 0;
            main_in_readline = 1;
            line = readline(prompt);
            main_in_readline = 0;
            if (!line) { putchar('\n'); break; }
        } else {
            size_t n;
            ms_err err;
            int got = ms_read_line(stdin, "stdin", &lineno, CMD_MAX_LINE, &buf, &cap, &n, &err);
            if (got == 0) break;
            if (got < 0) {
                fprintf(stderr, "metastate: %s\n", err.msg);
                status = 1;
                break;
            }
            line = buf;
        }
        const char *run = line;
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (tty && !*p && last_step) run = last_step;
        if (tty && *p) {
            HIST_ENTRY *h = history_length ? history_get(history_base + history_length - 1) : NULL;
            if (!h || strcmp(h->line, line) != 0) add_history(line);
        }
        int rc = cmd_run_line(e, run, NULL, msg, sizeof msg);
        if (rc != 0 && run == line) {
            /* a typed command: remember it if it was a good `step` */
            int is_step = !strncmp(p, "step", 4) && (p[4] == 0 || p[4] == ' ' || p[4] == '\t');
            free(last_step);
            last_step = is_step && rc > 0 ? strdup(p) : NULL;
        }
        if (tty) free(line);
    }
    free(buf);
    free(last_step);
    main_rl_end(hist);
    return status;
}

/* The full-screen view with the -c/-x actions run inside it.  Returns 0,
 * or -1 when it could not start (the reason is printed; nothing ran). */
static int main_tui(cmd_env *e, const main_opts *o)
{
    char why[300];
    tui_action *acts = calloc((size_t)o->n_acts + 1, sizeof *acts);
    if (!acts) return -1;
    for (int i = 0; i < o->n_acts; i++) acts[i] = (tui_action){ o->acts[i].kind, o->acts[i].text };
    tui_opts to = { .no_color = o->no_color, .acts = acts, .n_acts = o->n_acts };
    char *hist = main_rl_begin(e);
    int rc = tui_run(e, &to, why, sizeof why);
    main_rl_end(hist);
    free(acts);
    if (rc != 0) fprintf(stderr, "metastate: no full-screen view (%s); line mode\n", why);
    return rc;
}

int main(int argc, char **argv)
{
    /* a write past the file-size limit (ulimit -f) fails with EFBIG and one
     * line instead of killing the program */
    signal(SIGXFSZ, SIG_IGN);
    main_opts o;
    main_parse(argc, argv, &o);
    if (o.threads) ms_set_threads(o.threads);
    char *exe_dir = main_exe_dir();
    char *model = o.model ? strdup(o.model) : main_default_model(exe_dir);
    sess *s = sess_new(exe_dir, &main_stop);
    if (!s || !model) main_die(1, "out of memory");
    ms_err err;
    int dropped;
    if (sess_load(s, model, &dropped, &err) != 0) main_die(1, "%s", err.msg);
    if (!strcmp(o.backend, "cuda") && sess_backend_cuda(s, &err) != 0)
        fprintf(stderr, "metastate: --backend cuda: %s; running on the CPU\n", err.msg);

    const char *nc = getenv("NO_COLOR");
    out ot = { .json = o.json, .color = !o.no_color && !(nc && *nc) && isatty(STDERR_FILENO) };
    cmd_env e = { .s = s, .o = &ot, .view_ops = &cmdv_ops };
    if (!o.batch) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = main_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }

    int status = 0;
    char msg[1024], why[200];
    /* a person is watching: record every step for the view from the start
     * (--batch records only from its first view command on) */
    if (!o.batch) cmdv_get(&e);
    int full = !o.batch && !o.plain && !o.json && tui_possible(why, sizeof why);
    if (full && main_tui(&e, &o) == 0) o.n_acts = 0, e.quit = 1;   /* it ran everything */
    for (int i = 0; i < o.n_acts && !e.quit; i++) {
        int rc;
        if (o.acts[i].kind == 'c') {
            rc = cmd_run_line(&e, o.acts[i].text, NULL, msg, sizeof msg) < 0 ? -2 : 0;
        } else {
            rc = cmd_run_file(&e, o.acts[i].text, msg, sizeof msg);
            if (rc == -1) fprintf(stderr, "metastate: -x %s\n", msg);   /* not reported yet */
        }
        if (rc != 0 && o.batch) {
            /* in JSON mode the error went to stdout; the exit reason goes to stderr */
            if (rc == -2 && o.json) fprintf(stderr, "%s\n", msg);
            status = 1;
            break;
        }
    }
    if (!o.batch && !e.quit && status == 0) status = main_interactive(&e);

    cJSON_Delete(ot.obj);
    cmdv_free(&e);
    cmd_env_free(&e);
    sess_free(s);
    free(model);
    free(exe_dir);
    free(o.acts);
    main_exit(status);
}
