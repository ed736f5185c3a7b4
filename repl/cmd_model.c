/* cmd_model.c: the handlers of the scaling and experiment commands --
 * grow, save-model, task -- and of trace (declared in cmd_impl.h).  Each
 * checks every argument before it changes anything.
 *
 * grow: the grown model is built next to the old one (core/grow.c); both
 * are stepped with one fixed token from the current state and from every
 * snapshot, and only if the logits agree within MODEL.md 3.3's 1e-5 does the
 * session adopt the grown model (sess_adopt_grown converts every stored
 * state -- branches at their cursors, snapshots, checkpoints -- and records
 * a GROW event with the growth history's entry as its text).  A larger
 * change is a bug in the growth code: it is reported loudly and nothing
 * changes.
 *
 * task: sequences from core/task.c's generator (the same as scripts/
 * tasks.py's sample_splitmix), each run from the zero state on scratch
 * buffers; the current point is never touched.
 *
 * trace is a dry run like score: it steps a copy of the current state and
 * leaves the session exactly as it was (a debugger should not move the
 * state as a side effect of looking); `feed` is the command that moves it.
 */
#include "cmd_impl.h"
#include "args.h"
#include "grow.h"
#include "safetensors.h"
#include "statefile.h"
#include "task.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GROW_TOL 1e-5          /* MODEL.md 3.3 */
#define GROW_PROBE_TOKEN 0     /* the fixed token stepped from every state to measure a growth */
#define TASK_MAX_LEN 100000
#define TASK_MAX_N 100000
#define TASK_MAX_TOKENS 20000000L   /* N * LEN */

static void cm_add_u64(cJSON *o, const char *key, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRIu64, v);
    cJSON_AddStringToObject(o, key, b);   /* a string: a JSON number would round it past 2^53 */
}

/* the model's growth history (metadata `growth`), malloc'd; "[]" if none */
static char *cm_growth_meta(const ms_model *m)
{
    cJSON *meta = cJSON_Parse(m->meta_json ? m->meta_json : "{}");
    cJSON *g = cJSON_GetObjectItemCaseSensitive(meta, "growth");
    char *r = strdup(cJSON_IsString(g) ? g->valuestring : "[]");
    cJSON_Delete(meta);
    return r;
}

/* ---- grow ------------------------------------------------------------------ */

typedef struct { ms_config from, to; } cm_map_ctx;

static void cm_map_state(void *ctx, const float *old_state, float *new_state)
{
    const cm_map_ctx *m = ctx;
    ms_grow_state(&m->from, &m->to, old_state, new_state);
}

/* |a - b| with NaN/inf in the same place counting as equal, elsewhere as inf */
static double cm_absdiff(float a, float b)
{
    if (isfinite(a) && isfinite(b)) return fabs((double)a - (double)b);
    return memcmp(&a, &b, sizeof a) == 0 ? 0 : INFINITY;
}

/* worst difference between an old-layout state and the old part of a grown one */
static double cm_state_diff(const ms_config *from, const ms_config *to, const float *so, const float *sn)
{
    const size_t C = (size_t)from->n_embd, NN = (size_t)from->head_size * from->head_size;
    const size_t S0 = (size_t)from->n_head * NN, S1 = (size_t)to->n_head * NN;
    double worst = 0;
    for (int l = 0; l < from->n_layer; l++) {
        const float *a = so + (size_t)l * (2 * C + S0), *b = sn + (size_t)l * (2 * C + S1);
        for (size_t i = 0; i < C + S0; i++) {
            double d = cm_absdiff(a[i], b[i]);
            if (d > worst) worst = d;
        }
        for (size_t i = 0; i < C; i++) {
            double d = cm_absdiff(a[C + S0 + i], b[C + S1 + i]);
            if (d > worst) worst = d;
        }
    }
    return worst;
}

typedef struct {
    double logit, state;   /* largest changes */
    char where[SESS_NAME_MAX + 16];
    int states;            /* states measured */
} cm_measure;

/* Step a copy of every stored state (the current point, each snapshot) with
 * the probe token through the old and the grown model and compare. */
static int cm_measure_growth(cmd_call *c, const ms_model *nm, cm_measure *r)
{
    sess *s = c->s;
    const ms_model *om = s->model;
    const int V = om->cfg.vocab;
    memset(r, 0, sizeof *r);
    snprintf(r->where, sizeof r->where, "now");
    ms_ws *nws = ms_ws_new(nm);
    float *so = malloc(ms_state_len(&om->cfg) * sizeof(float));
    float *sn = malloc(ms_state_len(&nm->cfg) * sizeof(float));
    float *lo = malloc((size_t)V * sizeof(float)), *ln = malloc((size_t)V * sizeof(float));
    int rc = 0;
    if (!nws || !so || !sn || !lo || !ln) {
        rc = cmd_fail(c, "out of memory measuring the growth");
        goto done;
    }
    for (int p = -1; p < s->n_snaps && rc == 0; p++) {
        const float *st = p < 0 ? s->cur.state : s->snaps[p].pt.state;
        memcpy(so, st, ms_state_len(&om->cfg) * sizeof(float));
        ms_grow_state(&om->cfg, &nm->cfg, st, sn);
        if (ms_step(om, s->ws, so, so, GROW_PROBE_TOKEN, lo, NULL, c->err) ||
            ms_step(nm, nws, sn, sn, GROW_PROBE_TOKEN, ln, NULL, c->err)) {
            rc = -1;
            break;
        }
        double dl = 0;
        for (int i = 0; i < V; i++) {
            double d = cm_absdiff(lo[i], ln[i]);
            if (d > dl) dl = d;
        }
        double ds = cm_state_diff(&om->cfg, &nm->cfg, so, sn);
        if (dl > r->logit) {
            r->logit = dl;
            snprintf(r->where, sizeof r->where, "%s%s", p < 0 ? "now" : "snapshot ", p < 0 ? "" : s->snaps[p].name);
        }
        if (ds > r->state) r->state = ds;
        r->states++;
    }
done:
    ms_ws_free(nws);
    free(so);
    free(sn);
    free(lo);
    free(ln);
    return rc;
}

int cmd_grow(cmd_call *c)
{
    sess *s = c->s;
    const ms_config *g = &s->model->cfg;
    ms_grow_op op;
    if (ms_grow_op_parse(c->argv[0], &op))
        return cmd_fail(c, "unknown growth '%s' (valid: tokens M [SEED], sse K, heads K [SEED])", cmd_q(c->argv[0]));
    long k;
    if (arg_long(c->argv[1], 1, 1L << 24, &k))
        return cmd_fail(c, "grow %s: %s must be a positive integer, got '%s'", ms_grow_op_name(op),
                       op == MS_GROW_TOKENS ? "M" : "K", cmd_q(c->argv[1]));
    uint64_t seed = 0;
    if (c->argc > 2) {
        if (op == MS_GROW_SSE)
            return cmd_fail(c, "grow sse takes no SEED: new SSE key columns are zero, nothing is random");
        if (arg_u64(c->argv[2], &seed))
            return cmd_fail(c, "SEED must be an integer from 0 to %" PRIu64 ", got '%s'", UINT64_MAX, cmd_q(c->argv[2]));
    }
    if (ms_grow_check(g, op, k, c->err)) return -1;
    if (GROW_PROBE_TOKEN >= g->vocab) return cmd_fail(c, "the model's vocabulary is empty");

    ms_model *nm = ms_grow(s->model, op, (int)k, seed, c->err);
    if (!nm) return -1;
    cm_measure r;
    if (cm_measure_growth(c, nm, &r)) {
        ms_model_free(nm);
        return -1;
    }
    const char *what = ms_grow_op_name(op);
    if (!(r.logit <= GROW_TOL)) {
        ms_model_free(nm);
        return cmd_fail(c, "BUG: grow %s %ld would change the logits by %.3g at %s (growing may change them by at most "
                       "%g); nothing was changed -- please report this with the model and the command", what, k,
                       r.logit, r.where, GROW_TOL);
    }
    ms_config before = *g, after = nm->cfg;
    /* the event text is the growth history's entry, so a replay or a listing
     * says exactly what grew */
    char text[128];
    snprintf(text, sizeof text, "{\"op\":\"%s\",\"k\":%ld,\"seed\":%" PRIu64 "}", what, k, seed);
    cm_map_ctx mc = {before, after};
    if (sess_adopt_grown(s, nm, cm_map_state, &mc, text, c->err)) {
        ms_model_free(nm);
        return -1;
    }
    /* from here on s->model is the grown model */
    char desc[160], sd[32] = "";
    if (op != MS_GROW_SSE) snprintf(sd, sizeof sd, " (seed %" PRIu64 ")", seed);
    if (op == MS_GROW_TOKENS)
        snprintf(desc, sizeof desc, "parameter tokens %d -> %d per layer", before.n_ptok, after.n_ptok);
    else if (op == MS_GROW_SSE)
        snprintf(desc, sizeof desc, "SSE heads %d -> %d", before.sse_heads, after.sse_heads);
    else
        snprintf(desc, sizeof desc, "heads %d -> %d, dim_att %d -> %d; new state heads zero", before.n_head,
                 after.n_head, before.dim_att, after.dim_att);
    out_text(c->o, "grew %s by %ld%s: %s; %d stored state%s converted", what, k, sd, desc, r.states,
             r.states == 1 ? "" : "s");
    out_text(c->o, "largest logit change %.3g (limit %g, worst at %s), largest change of the old state part %.3g: "
             "token %d stepped from each state through the old and the grown model", r.logit, GROW_TOL, r.where,
             r.state, GROW_PROBE_TOKEN);
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "op", what);
    cJSON_AddNumberToObject(o, "k", (double)k);
    cm_add_u64(o, "seed", seed);
    cJSON *b = cJSON_AddObjectToObject(o, "before"), *a = cJSON_AddObjectToObject(o, "after");
    const ms_config *cf[2] = {&before, &after};
    cJSON *js[2] = {b, a};
    for (int i = 0; i < 2; i++) {
        cJSON_AddNumberToObject(js[i], "n_ptok", cf[i]->n_ptok);
        cJSON_AddNumberToObject(js[i], "sse_heads", cf[i]->sse_heads);
        cJSON_AddNumberToObject(js[i], "n_head", cf[i]->n_head);
        cJSON_AddNumberToObject(js[i], "dim_att", cf[i]->dim_att);
    }
    cJSON_AddNumberToObject(o, "states", r.states);
    cJSON_AddNumberToObject(o, "max_logit_change", r.logit);
    cJSON_AddNumberToObject(o, "max_state_change", r.state);
    cJSON_AddStringToObject(o, "worst_at", r.where);
    cJSON_AddNumberToObject(o, "tolerance", GROW_TOL);
    cJSON_AddNumberToObject(o, "probe_token", GROW_PROBE_TOKEN);
    char *gb = cm_growth_meta(s->model);
    if (gb) out_add_str(o, "growth", gb, strlen(gb));
    free(gb);
    return 0;
}

/* ---- save-model ----------------------------------------------------------------- */

int cmd_save_model(cmd_call *c)
{
    const char *path = c->argv[0];
    struct stat st;
    if (cmd_check_target(c, path)) return -1;
    ms_model *m = c->s->model;
    if (ms_model_save(m, path, c->err)) return -1;
    /* the model in memory is now the one in that file */
    char *p = strdup(path);
    if (p) {
        free(m->path);
        m->path = p;
    }
    char sum[96];
    ms_statefile_model_summary(m, sum, sizeof sum);
    long long size = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    char *gb = cm_growth_meta(m);
    char q[1200];
    out_text(c->o, "wrote %s: %s, %s weights, %lld bytes; growth %s", arg_quote_n(path, strlen(path), q, sizeof q),
             sum, ms_dtype_name(m->cfg.wtype), size, gb ? gb : "?");
    cJSON *o = out_obj(c->o);
    out_add_str(o, "path", path, strlen(path));
    cJSON_AddStringToObject(o, "model", sum);
    cJSON_AddNumberToObject(o, "bytes", (double)size);
    if (gb) out_add_str(o, "growth", gb, strlen(gb));
    free(gb);
    return 0;
}

/* ---- task ---------------------------------------------------------------------- */

/* buckets 1-8, 9-16, 17-32, 33-64, ...: index of (1-based) position p */
static int cm_bucket(long p) { int b = 0; long hi = 8; while (p > hi) { hi *= 2; b++; } return b; }
static long cm_bucket_lo(int b) { return b == 0 ? 1 : (8L << (b - 1)) + 1; }
static long cm_bucket_hi(int b) { return 8L << b; }

static int cm_write_dump(cmd_call *c, const char *path, const ms_task *t, const int *ids, int n, int len,
                         uint64_t seed, const int *x, const int *y, const int *pred)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", t->name);
    cJSON_AddNumberToObject(o, "len", len);
    cJSON_AddNumberToObject(o, "n", n);
    cm_add_u64(o, "seed", seed);
    cJSON *v = cJSON_AddArrayToObject(o, "vocab"), *mi = cJSON_AddArrayToObject(o, "model_ids");
    for (int i = 0; i < t->K; i++) {
        cJSON_AddItemToArray(v, cJSON_CreateString(t->words[i]));
        cJSON_AddItemToArray(mi, cJSON_CreateNumber(ids[i]));
    }
    const char *names[3] = {"inputs", "targets", "argmax"};
    const int *arr[3] = {x, y, pred};
    for (int k = 0; k < 3; k++) {
        cJSON *a = cJSON_AddArrayToObject(o, names[k]);
        for (int s = 0; s < n; s++) {
            cJSON *row = cJSON_CreateArray();
            for (int i = 0; i < len; i++) cJSON_AddItemToArray(row, cJSON_CreateNumber(arr[k][(size_t)s * len + i]));
            cJSON_AddItemToArray(a, row);
        }
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt) return cmd_fail(c, "out of memory writing %s", cmd_q(path));
    int rc = ms_write_atomic(path, txt, strlen(txt), c->err);
    cJSON_free(txt);
    return rc;
}

int cmd_task(cmd_call *c)
{
    sess *s = c->s;
    const ms_model *m = s->model;
    const char *pos[4], *dump = NULL;
    int npos = 0;
    for (int i = 0; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--dump")) {
            if (i + 1 >= c->argc) return cmd_fail(c, "--dump needs a PATH (usage: task NAME [LEN] [N] [SEED] [--dump PATH])");
            dump = c->argv[++i];
        } else if (npos < 4) {
            pos[npos++] = c->argv[i];
        } else {
            return cmd_fail(c, "too many arguments (usage: task NAME [LEN] [N] [SEED] [--dump PATH])");
        }
    }
    if (!npos) return cmd_fail(c, "needs NAME: parity, s3, s5 or modcount-K (usage: task NAME [LEN] [N] [SEED])");
    long len = 64, n = 100;
    uint64_t seed = 0;
    if (npos > 1 && arg_long(pos[1], 1, TASK_MAX_LEN, &len))
        return cmd_fail(c, "LEN must be an integer from 1 to %d, got '%s'", TASK_MAX_LEN, cmd_q(pos[1]));
    if (npos > 2 && arg_long(pos[2], 1, TASK_MAX_N, &n))
        return cmd_fail(c, "N must be an integer from 1 to %d, got '%s'", TASK_MAX_N, cmd_q(pos[2]));
    if (npos > 3 && arg_u64(pos[3], &seed))
        return cmd_fail(c, "SEED must be an integer from 0 to %" PRIu64 ", got '%s'", UINT64_MAX, cmd_q(pos[3]));
    if (len * n > TASK_MAX_TOKENS)
        return cmd_fail(c, "N x LEN = %ld tokens; at most %ld per command", len * n, TASK_MAX_TOKENS);
    if (dump && cmd_check_target(c, dump)) return -1;
    ms_task t;
    if (ms_task_init(&t, pos[0], c->err)) return -1;
    int rc = -1;
    int *ids = NULL, *x = NULL, *y = NULL, *pred = NULL;
    long *ok_pos = NULL;
    if (m->cfg.tokenizer != MS_TOK_WORDS || !m->words) {
        cmd_fail(c, "task %s needs a model with the 'words' tokenizer whose vocabulary holds %s's tokens; this "
                "model's tokenizer is %s", t.name, t.name, s->tok_desc);
        goto done;
    }
    /* the model id of every task token */
    ids = malloc(sizeof(int) * (size_t)t.K);
    if (!ids) { cmd_fail(c, "out of memory"); goto done; }
    int missing = 0;
    char miss[200] = "";
    size_t ml = 0;
    for (int i = 0; i < t.K; i++) {
        int *one = NULL, n1 = 0;
        ms_err ignored;
        ids[i] = -1;   /* the words tokenizer finds a word by binary search */
        if (ms_tok_encode(s->tok, t.words[i], strlen(t.words[i]), &one, &n1, &ignored) == 0 && n1 == 1)
            ids[i] = one[0];
        free(one);
        if (ids[i] < 0) {
            if (missing++ < 6 && ml < sizeof miss - 20)
                ml += (size_t)snprintf(miss + ml, sizeof miss - ml, "%s'%s'", ml ? ", " : "", t.words[i]);
        }
    }
    if (missing) {
        cmd_fail(c, "task %s needs its %d tokens in the model's vocabulary; %d are missing: %s%s", t.name, t.K,
                missing, miss, missing > 6 ? ", ..." : "");
        goto done;
    }
    size_t tot = (size_t)n * (size_t)len;
    x = malloc(sizeof(int) * tot);
    y = malloc(sizeof(int) * tot);
    pred = malloc(sizeof(int) * tot);
    ok_pos = calloc((size_t)len, sizeof(long));
    if (!x || !y || !pred || !ok_pos) { cmd_fail(c, "out of memory for %zu tokens", tot); goto done; }
    ms_task_sample(&t, (int)n, (int)len, seed, x, y);
    /* the inputs as model ids, then every sequence
     * from the zero state, batched on the GPU */
    int *tk = malloc(sizeof(int) * tot);
    if (!tk) { cmd_fail(c, "out of memory for %zu tokens", tot); goto done; }
    for (size_t at = 0; at < tot; at++) tk[at] = ids[x[at]];
    int run = sess_run_sequences(s, n, len, tk, pred, c->err);
    free(tk);
    if (run) goto done;
    for (size_t at = 0; at < tot; at++)
        if (pred[at] == ids[y[at]]) ok_pos[at % (size_t)len]++;
    if (dump && cm_write_dump(c, dump, &t, ids, (int)n, (int)len, seed, x, y, pred)) goto done;
    /* report */
    long ok_all = 0;
    for (long i = 0; i < len; i++) ok_all += ok_pos[i];
    int nb = cm_bucket(len) + 1;
    out_text(c->o, "task %s: %ld sequences of %ld from the zero state, seed %" PRIu64 "; accuracy of the argmax "
             "after each input against the target:", t.name, n, len, seed);
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "task", t.name);
    cJSON_AddNumberToObject(o, "len", (double)len);
    cJSON_AddNumberToObject(o, "n", (double)n);
    cm_add_u64(o, "seed", seed);
    cJSON *ba = cJSON_AddArrayToObject(o, "buckets");
    for (int b = 0; b < nb; b++) {
        long lo = cm_bucket_lo(b), hi = cm_bucket_hi(b) < len ? cm_bucket_hi(b) : len, ok = 0;
        for (long p = lo; p <= hi; p++) ok += ok_pos[p - 1];
        long total = (hi - lo + 1) * n;
        out_text(c->o, "  positions %5ld-%-5ld  %.4f  (%ld of %ld)", lo, hi, (double)ok / (double)total, ok, total);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "from", (double)lo);
        cJSON_AddNumberToObject(e, "to", (double)hi);
        cJSON_AddNumberToObject(e, "correct", (double)ok);
        cJSON_AddNumberToObject(e, "total", (double)total);
        cJSON_AddNumberToObject(e, "accuracy", (double)ok / (double)total);
        cJSON_AddItemToArray(ba, e);
    }
    out_text(c->o, "  overall              %.4f  (%ld of %zu)", (double)ok_all / (double)tot, ok_all, tot);
    cJSON_AddNumberToObject(o, "correct", (double)ok_all);
    cJSON_AddNumberToObject(o, "total", (double)tot);
    cJSON_AddNumberToObject(o, "accuracy", (double)ok_all / (double)tot);
    cJSON *pp = cJSON_AddArrayToObject(o, "per_position");
    for (long i = 0; i < len; i++) cJSON_AddItemToArray(pp, cJSON_CreateNumber((double)ok_pos[i] / (double)n));
    if (dump) out_add_str(o, "dump", dump, strlen(dump));
    rc = 0;
done:
    free(ids);
    free(x);
    free(y);
    free(pred);
    free(ok_pos);
    ms_task_free(&t);
    return rc;
}

/* ---- trace --------------------------------------------------------------------- */

int cmd_trace(cmd_call *c)
{
    sess *s = c->s;
    const ms_model *m = s->model;
    char *bytes;
    size_t blen;
    if (!*c->rest) return cmd_fail(c, "needs text: the rest of the line, with escapes \\n \\t \\r \\\\ \\xNN");
    if (arg_unescape(c->rest, &bytes, &blen, c->err->msg, sizeof c->err->msg)) return -1;
    int *ids = NULL, n = 0;
    int rc = sess_encode(s, bytes, blen, &ids, &n, c->err);
    free(bytes);
    if (rc) return -1;
    if (n == 0) {
        free(ids);
        return cmd_fail(c, "the text gives no tokens");
    }
    const int V = m->cfg.vocab;
    memcpy(s->scratch_state, s->cur.state, ms_state_len(&m->cfg) * sizeof(float));
    out_text(c->o, "dry run from position %" PRId64 " (the state is kept): position, token, top-1 next token, "
             "its probability", s->cur.position);
    cJSON *o = out_obj(c->o);
    cJSON_AddNumberToObject(o, "from_position", (double)s->cur.position);
    cJSON *arr = cJSON_AddArrayToObject(o, "steps");
    for (int i = 0; i < n; i++) {
        if (sess_interrupted(s)) {
            out_text(c->o, "(interrupted after %d of %d tokens)", i, n);
            cJSON_AddTrueToObject(o, "interrupted");
            break;
        }
        if (sess_model_step(s, s->scratch_state, ids[i], s->scratch_logits, NULL, c->err)) {
            free(ids);
            return -1;
        }
        ms_softmax(s->scratch_logits, s->probs, V);
        int top = ms_argmax(s->probs, V);
        int64_t pos = s->cur.position + i + 1;
        char t1[300], t2[300];
        out_text(c->o, "%8" PRId64 "  %6d %-14s -> %6d %-14s p=%.6f", pos, ids[i], cmd_tok(c, ids[i], t1, sizeof t1),
                 top, cmd_tok(c, top, t2, sizeof t2), s->probs[top]);
        cJSON *e = cJSON_CreateObject();
        char r[256];
        cJSON_AddNumberToObject(e, "position", (double)pos);
        cJSON_AddNumberToObject(e, "id", ids[i]);
        ms_tok_render(s->tok, ids[i], r, sizeof r);
        out_add_str(e, "token", r, strlen(r));
        cJSON_AddNumberToObject(e, "top_id", top);
        ms_tok_render(s->tok, top, r, sizeof r);
        out_add_str(e, "top_token", r, strlen(r));
        cJSON_AddNumberToObject(e, "p", s->probs[top]);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddNumberToObject(o, "position", (double)s->cur.position);
    free(ids);
    return 0;
}
