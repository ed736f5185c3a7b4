/* fuzz_grammar.c: the input's bytes choose well-formed commands from a
 * grammar, so that the fuzzer spends its time inside the commands rather
 * than in their argument checks: a command from the real table (cmd_table),
 * and for each argument a word of the kind the table says it completes to
 * (a state target of the grammar of target.h with layer, head and indices
 * near the models' ranges, a snapshot or branch name, one of the sandbox's
 * files, a sampler key, a number near a boundary), with `load` of one of
 * the sandbox's three models of different shapes chosen often, so that
 * whatever a command keeps (displays, the view, snapshots, records) meets a
 * model of another shape.  Runs in the sandbox of cmd_sandbox.h, in JSON
 * mode, with its contract checked after every command; at most 48 commands
 * an input.
 */
#include "cmd_sandbox.h"

typedef struct { const uint8_t *p; size_t n, at; } gr_in;

/* the next byte; 0 once the input is used up (gr_done says so) */
static unsigned gr_byte(gr_in *g) { return g->at < g->n ? g->p[g->at++] : 0; }
static int gr_done(const gr_in *g) { return g->at >= g->n; }
static unsigned gr_pick(gr_in *g, unsigned k) { return k ? gr_byte(g) % k : 0; }

static const char *const gr_files[] = {
    "model.safetensors", "small.safetensors", "experts.safetensors", "fifo", "dir", "link", "dangling",
    "a.st", "b.st", "c.npy", "d.csv", "e.png", "f.txt", "rec.ms", "nowhere", "a.st.tmp.1.abcdef",
};
static const char *const gr_models[] = { "model.safetensors", "small.safetensors", "experts.safetensors" };
static const char *const gr_names[] = { "a", "b", "c", "now", "main", "k1", "x" };
static const char *const gr_keys[] = { "temp=", "top_p=", "top_k=", "seed=" };
static const char *const gr_words[] = {
    "hello", "0", "1", "1 0 1", "--force", "--dump", "--verify", "off", "auto", "lock", "sym", "log", "p99",
    "overview", "sse", "heads", "tokens", "from", "add", "all", "*", "\\n", "\"a b\"", "@f.txt", "@fifo",
};

/* a number near a boundary: 0, 1, small, 63/64/65, negative, huge, fractional */
static void gr_number(gr_in *g, char *b, size_t cap)
{
    static const char *const odd[] = { "-1", "1e9", "4294967296", "0.5", "-0", "nan", "inf", "1e-30", "99999999999" };
    unsigned k = gr_pick(g, 4);
    if (k == 0) snprintf(b, cap, "%s", odd[gr_pick(g, sizeof odd / sizeof odd[0])]);
    else if (k == 1) snprintf(b, cap, "%u", 60 + gr_pick(g, 8));
    else snprintf(b, cap, "%u", gr_pick(g, 8));
}

/* a state target: layers and heads 0..5 (the models have 1-2 layers, 2-4
 * heads), indices 0..70 (their heads are 16-32 wide) */
static void gr_target(gr_in *g, char *b, size_t cap)
{
    unsigned L = gr_pick(g, 6), H = gr_pick(g, 6), i = gr_pick(g, 71), j = gr_pick(g, 71);
    switch (gr_pick(g, 10)) {
    case 0: snprintf(b, cap, "*"); break;
    case 1: snprintf(b, cap, "L%u.*", L); break;
    case 2: snprintf(b, cap, "L%u.H%u", L, H); break;
    case 3: snprintf(b, cap, "L%u.H%u[%u,%u]", L, H, i, j); break;
    case 4: snprintf(b, cap, "L%u.H%u[%u,:]", L, H, i); break;
    case 5: snprintf(b, cap, "l%u.h%u[:,%u]", L, H, j); break;
    case 6: snprintf(b, cap, "L%u.att_x", L); break;
    case 7: snprintf(b, cap, "L%u.ffn_x[%u]", L, i); break;
    case 8: snprintf(b, cap, "L%u.att_x[%u]", L, i); break;
    default: snprintf(b, cap, "L%u.H%u[%u", L, H, i); break;   /* malformed */
    }
}

/* one argument of completion kind k */
static void gr_arg(gr_in *g, char k, char *b, size_t cap)
{
    if (gr_pick(g, 16) == 0) k = "tsfbnk-"[gr_pick(g, 7)];   /* now and then the wrong kind */
    switch (k) {
    case 't': gr_target(g, b, cap); break;
    case 'f': snprintf(b, cap, "%s", gr_files[gr_pick(g, sizeof gr_files / sizeof gr_files[0])]); break;
    case 'S':
        if (gr_pick(g, 2)) { snprintf(b, cap, "%s", gr_files[gr_pick(g, sizeof gr_files / sizeof gr_files[0])]); break; }
        /* fall through */
    case 's':
    case 'b':
    case 'n': snprintf(b, cap, "%s", gr_names[gr_pick(g, sizeof gr_names / sizeof gr_names[0])]); break;
    case 'k': {
        char num[32];
        gr_number(g, num, sizeof num);
        snprintf(b, cap, "%s%s", gr_keys[gr_pick(g, 4)], num);
        break;
    }
    case 'c': {
        int n;
        const cmd_def *t = cmd_table(&n);
        snprintf(b, cap, "%s", t[gr_pick(g, (unsigned)n)].name);
        break;
    }
    default:
        if (gr_pick(g, 2)) gr_number(g, b, cap);
        else snprintf(b, cap, "%s", gr_words[gr_pick(g, sizeof gr_words / sizeof gr_words[0])]);
    }
}

/* one command line into b */
static void gr_line(gr_in *g, char *b, size_t cap)
{
    int n;
    const cmd_def *t = cmd_table(&n);
    unsigned pick = gr_byte(g);
    if (pick % 8 == 0) {   /* switch the model's shape */
        snprintf(b, cap, "load %s", gr_models[(pick / 8) % 3]);
        return;
    }
    const cmd_def *d = &t[(pick / 8) % (unsigned)n];
    size_t len = (size_t)snprintf(b, cap, "%s", d->name);
    int max = d->max_args < 0 ? 6 : d->max_args;
    int argc = d->min_args + (int)gr_pick(g, (unsigned)(max - d->min_args + 2));   /* sometimes one too many */
    size_t cl = strlen(d->complete);
    for (int i = 0; i < argc && len + 80 < cap; i++) {
        char k = cl ? d->complete[(size_t)i < cl ? (size_t)i : cl - 1] : '-';
        char a[96];
        gr_arg(g, k, a, sizeof a);
        len += (size_t)snprintf(b + len, cap - len, " %s", a);
    }
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    cmd_env e;
    out o;
    int cwd;
    sess *s = cf_session(&e, &o, 1, &cwd);
    gr_in g = { data, size, 0 };
    fflush(stdout);
    int saved = dup(1);
    FUZZ_CHECK(saved >= 0 && dup2(cf_out, 1) == 1, "redirect stdout");
    for (int k = 0; k < 48 && !gr_done(&g) && !e.quit; k++) {
        char line[1024];
        gr_line(&g, line, sizeof line);
        cf_run(&e, line);
    }
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    cf_end(&e, &o, s, cwd);
    return 0;
}
