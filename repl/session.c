/* session.c: the session (see session.h): model and tokenizer loading,
 * points, feeding, sampling, scoring, edits, snapshots, the last step's
 * copies for the view, and state files with their histories.  Branches,
 * logs, checkpoints, goto and replay are in branch.c.
 *
 * Every operation that can fail prepares what it needs first (memory, files,
 * checks) and changes the session only when nothing can fail any more.
 */
#define _GNU_SOURCE   /* qsort_r */
#include "session_impl.h"
#include "statefile.h"
#include "args.h"
#include "compare.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SESS_VOCAB_FILE "rwkv_vocab_v20230424.txt"

/* ---- points ---- */

void sess_pt_free(sess_point *p)
{
    free(p->state);
    free(p->logits);
    free(p->tokens);
    memset(p, 0, sizeof *p);
}

void sess_cur_tokens(sess *s, int id)
{
    sess_point *p = &s->cur;
    long need = id >= 0 ? p->n_tokens + 1L : p->position + 1;
    if (need > p->cap_tokens) {
        long cap = p->cap_tokens ? p->cap_tokens : 256;
        while (cap < need) cap *= 2;
        int *t = cap < (1L << 30) ? realloc(p->tokens, (size_t)cap * sizeof(int)) : NULL;
        if (!t) {   /* the view's stream goes empty; nothing else depends on it */
            p->n_tokens = 0;
            return;
        }
        p->tokens = t;
        p->cap_tokens = (int)cap;
    }
    if (id >= 0) p->tokens[p->n_tokens++] = id;
    else p->n_tokens = sess_hist_tail(sess_cur_hist(s), p->tokens, (int)need);
}

int sess_pt_alloc(const ms_config *c, sess_point *p)
{
    memset(p, 0, sizeof *p);
    p->state = calloc(ms_state_len(c), sizeof(float));
    p->logits = calloc((size_t)c->vocab, sizeof(float));
    if (!p->state || !p->logits) {
        sess_pt_free(p);
        return -1;
    }
    return 0;
}

size_t sess_pt_bytes(const ms_config *c)
{
    return (ms_state_len(c) + (size_t)c->vocab) * sizeof(float);
}

void sess_pt_copy(sess_point *dst, const sess_point *src, const ms_config *c)
{
    memcpy(dst->state, src->state, ms_state_len(c) * sizeof(float));
    if (src->has_logits) memcpy(dst->logits, src->logits, (size_t)c->vocab * sizeof(float));
    dst->has_logits = src->has_logits;
    dst->position = src->position;
    dst->sampler = src->sampler;
}

/* swap the values of two points; their token lists stay where they are */
void sess_pt_swap(sess_point *a, sess_point *b)
{
    sess_point t = *a;
    a->state = b->state; a->logits = b->logits; a->has_logits = b->has_logits;
    a->position = b->position; a->sampler = b->sampler;
    b->state = t.state; b->logits = t.logits; b->has_logits = t.has_logits;
    b->position = t.position; b->sampler = t.sampler;
}

sess_frozen *sess_fz_new(const ms_config *c, const sess_point *src)
{
    sess_frozen *f = malloc(sizeof *f);
    if (!f) return NULL;
    if (sess_pt_alloc(c, &f->pt) != 0) {
        free(f);
        return NULL;
    }
    f->refs = 1;
    sess_pt_copy(&f->pt, src, c);
    return f;
}

sess_frozen *sess_fz_copy(sess *s, const sess_point *src)
{
    sess_frozen *f = s->spare;
    if (!f) return sess_fz_new(&s->model->cfg, src);
    s->spare = NULL;
    sess_pt_copy(&f->pt, src, &s->model->cfg);
    return f;
}

/* touch every page of n bytes so that they are faulted in now */
static void sess_touch(void *p, size_t n)
{
    volatile unsigned char *b = p;
    for (size_t i = 0; i < n; i += 4096) b[i] = 0;
    if (n) b[n - 1] = 0;
}

void sess_idle(sess *s)
{
    if (s->spare || !s->model) return;
    const ms_config *c = &s->model->cfg;
    sess_frozen *f = malloc(sizeof *f);
    float *st = malloc(ms_state_len(c) * sizeof(float)), *lg = malloc((size_t)c->vocab * sizeof(float));
    if (!f || !st || !lg) {
        free(f);
        free(st);
        free(lg);
        return;
    }
    sess_touch(st, ms_state_len(c) * sizeof(float));
    sess_touch(lg, (size_t)c->vocab * sizeof(float));
    memset(f, 0, sizeof *f);
    f->refs = 1;
    f->pt.state = st;
    f->pt.logits = lg;
    s->spare = f;
}

void sess_fz_unref(sess_frozen *f)
{
    if (f && --f->refs == 0) {
        sess_pt_free(&f->pt);
        free(f);
    }
}

void sess_pt_checks(const sess *s, const sess_point *p, uint32_t *sc, uint32_t *lc)
{
    const ms_config *c = &s->model->cfg;
    *sc = cmp_hash(p->state, ms_state_len(c));
    *lc = p->has_logits ? cmp_hash(p->logits, (size_t)c->vocab) : 0;
}

/* ---- the last step's copies (sess_keep_layer) ---- */

static void sess_trace_free(sess_trace *t)
{
    float **f[] = { &t->r, &t->k, &t->v, &t->w, &t->a, &t->kk, &t->g, &t->y, &t->S, &t->z, &t->x_out,
                    &t->q, &t->e_raw, &t->e, &t->s };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        free(*f[i]);
        *f[i] = NULL;
    }
    t->valid = 0;
}

static void sess_traces_free(sess *s)
{
    if (s->traces && s->model)
        for (int l = 0; l < s->model->cfg.n_layer; l++) sess_trace_free(&s->traces[l]);
    free(s->traces);
    s->traces = NULL;
    s->n_kept = 0;
}

void sess_traces_stale(sess *s)
{
    if (!s->n_kept) return;
    for (int l = 0; l < s->model->cfg.n_layer; l++) s->traces[l].valid = 0;
}

static void sess_cp(float *dst, const float *src, size_t n)
{
    if (dst && src) memcpy(dst, src, n * sizeof(float));
}

/* the observer passed to ms_step for the current point: the kept layers'
 * copies, then the view's observer */
static void sess_observe(void *ctx, const ms_trace *t)
{
    sess *s = ctx;
    const ms_config *c = &s->model->cfg;
    sess_trace *k = s->traces ? &s->traces[t->layer] : NULL;
    if (k && k->r) {
        size_t A = (size_t)c->dim_att, C = (size_t)c->n_embd, E = (size_t)c->sse_heads * c->head_size;
        sess_cp(k->r, t->r, A); sess_cp(k->k, t->k, A); sess_cp(k->v, t->v, A); sess_cp(k->w, t->w, A);
        sess_cp(k->a, t->a, A); sess_cp(k->kk, t->kk, A); sess_cp(k->g, t->g, A); sess_cp(k->y, t->y, A);
        sess_cp(k->S, t->S, (size_t)c->n_head * c->head_size * c->head_size);
        sess_cp(k->z, t->z, C); sess_cp(k->x_out, t->x_out, C);
        if (E) { sess_cp(k->q, t->q, E); sess_cp(k->e_raw, t->e_raw, E); sess_cp(k->e, t->e, E); }
        sess_cp(k->s, t->s, (size_t)c->n_ptok);
        k->valid = 1;
        k->position = -1;   /* set after the step by sess_traces_done */
    }
    if (s->watch.obs.fn) s->watch.obs.fn(s->watch.obs.ctx, t);
}

const ms_observer *sess_observer(sess *s)
{
    static ms_observer o;
    if (!s->n_kept && !s->watch.obs.fn) return NULL;
    o.fn = sess_observe;
    o.ctx = s;
    return &o;
}

void sess_traces_done(sess *s, int64_t position)
{
    for (int l = 0; s->n_kept && l < s->model->cfg.n_layer; l++)
        if (s->traces[l].valid && s->traces[l].position < 0) s->traces[l].position = position;
}

int sess_keep_layer(sess *s, int layer, int on, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    if (layer < 0 || layer >= c->n_layer) {
        ms_seterr(err, "layer %d does not exist: this model has layers 0..%d", layer, c->n_layer - 1);
        return -1;
    }
    if (!s->traces && !(s->traces = calloc((size_t)c->n_layer, sizeof *s->traces))) {
        ms_seterr(err, "out of memory");
        return -1;
    }
    sess_trace *t = &s->traces[layer];
    if (!on) {
        if (t->r) s->n_kept--;
        sess_trace_free(t);
        return 0;
    }
    if (t->r) return 0;
    size_t A = (size_t)c->dim_att, C = (size_t)c->n_embd, E = (size_t)c->sse_heads * c->head_size;
    float **fa[] = { &t->r, &t->k, &t->v, &t->w, &t->a, &t->kk, &t->g, &t->y };
    int bad = 0;
    for (size_t i = 0; i < sizeof fa / sizeof fa[0]; i++) bad |= !(*fa[i] = malloc(A * sizeof(float)));
    bad |= !(t->S = malloc((size_t)c->n_head * c->head_size * c->head_size * sizeof(float)));
    bad |= !(t->z = malloc(C * sizeof(float))) || !(t->x_out = malloc(C * sizeof(float)));
    if (E) bad |= !(t->q = malloc(E * sizeof(float))) || !(t->e_raw = malloc(E * sizeof(float))) ||
                  !(t->e = malloc(E * sizeof(float)));
    bad |= !(t->s = malloc((size_t)c->n_ptok * sizeof(float)));
    if (bad) {
        sess_trace_free(t);
        ms_seterr(err, "out of memory for layer %d's copies", layer);
        return -1;
    }
    t->valid = 0;
    s->n_kept++;
    return 0;
}

const sess_trace *sess_last_trace(const sess *s, int layer)
{
    if (!s->traces || !s->model || layer < 0 || layer >= s->model->cfg.n_layer) return NULL;
    const sess_trace *t = &s->traces[layer];
    return t->r && t->valid ? t : NULL;
}

/* ---- session ---- */

sess *sess_new(const char *exe_dir, volatile sig_atomic_t *stop)
{
    sess *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (exe_dir && !(s->exe_dir = strdup(exe_dir))) {
        free(s);
        return NULL;
    }
    s->stop = stop;
    s->ck_every = SESS_CK_EVERY;
    s->ck_max = SESS_CK_MAX;
    s->sampled_id = -1;
    snprintf(s->branch, sizeof s->branch, "main");
    ms_sampler_init(&s->cur.sampler, 1.0f, 1.0f, 0, 0);
    return s;
}

static void sess_snap_release(sess *s, sess_snap *sn)
{
    sess_hist_unref(s, sn->hist);
    sess_fz_unref(sn->fz);
    memset(sn, 0, sizeof *sn);
}

/* free the model and everything sized by it; the snapshots too unless
 * keep_snaps (their buffers fit any model with the same shape) */
static void sess_unload(sess *s, int keep_snaps)
{
    if (!keep_snaps) {
        for (int i = 0; i < s->n_snaps; i++) sess_snap_release(s, &s->snaps[i]);
        s->n_snaps = 0;
    }
    sess_log_drop_all(s);
    sess_traces_free(s);
    sess_fz_unref(s->spare);
    s->spare = NULL;
    sess_pt_free(&s->cur);
    sess_pt_free(&s->tmp);
    free(s->probs);
    free(s->scratch_state);
    free(s->scratch_logits);
    s->probs = s->scratch_state = s->scratch_logits = NULL;
    if (s->ws) ms_ws_free(s->ws);
    if (s->tok) ms_tok_free(s->tok);
    sess_backend_model_gone(s);
    if (s->model) ms_model_free(s->model);
    s->ws = NULL;
    s->tok = NULL;
    s->model = NULL;
}

void sess_free(sess *s)
{
    if (!s) return;
    sess_unload(s, 0);
    sess_backend_off(s);
    free(s->snaps);
    free(s->branches);
    free(s->exe_dir);
    free(s);
}

static int sess_is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int sess_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Find the World vocabulary for a model at model_path; see sess_load. */
static int sess_find_vocab(const sess *s, const char *model_path, char *out, size_t cap, ms_err *err)
{
    char cand[3][512];
    int n = 0;
    const char *env = getenv("METASTATE_VOCAB");
    if (env && *env) {
        /* set explicitly: that file (or that directory's file) or nothing */
        if (sess_is_dir(env)) snprintf(cand[0], sizeof cand[0], "%s/%s", env, SESS_VOCAB_FILE);
        else snprintf(cand[0], sizeof cand[0], "%s", env);
        size_t l = strlen(cand[0]);
        if (l < cap && sess_is_file(cand[0])) {
            memcpy(out, cand[0], l + 1);
            return 0;
        }
        ms_seterr(err, "METASTATE_VOCAB: %s is not a file (it should be %s or its directory)", cand[0],
                  SESS_VOCAB_FILE);
        return -1;
    }
    const char *slash = strrchr(model_path, '/');
    if (slash)
        snprintf(cand[n++], sizeof cand[0], "%.*s/%s", (int)(slash - model_path), model_path, SESS_VOCAB_FILE);
    else
        snprintf(cand[n++], sizeof cand[0], "%s", SESS_VOCAB_FILE);
    snprintf(cand[n++], sizeof cand[0], "models/vocab/%s", SESS_VOCAB_FILE);
    if (s->exe_dir) snprintf(cand[n++], sizeof cand[0], "%s/models/vocab/%s", s->exe_dir, SESS_VOCAB_FILE);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(cand[i]);
        if (l < cap && sess_is_file(cand[i])) {
            memcpy(out, cand[i], l + 1);
            return 0;
        }
    }
    char list[1200] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", cand[i]);
    ms_seterr(err, "the model needs the rwkv-world vocabulary %s; not found at %s "
              "(set METASTATE_VOCAB to the file)", SESS_VOCAB_FILE, list);
    return -1;
}

static ms_tokenizer *sess_make_tok(const sess *s, const ms_model *m, char *desc, size_t cap, ms_err *err)
{
    ms_tokenizer *t = NULL;
    switch (m->cfg.tokenizer) {
    case MS_TOK_BYTES:
        t = ms_tok_bytes_new();
        if (!t) ms_seterr(err, "out of memory");
        snprintf(desc, cap, "bytes");
        break;
    case MS_TOK_WORLD: {
        char path[512];
        if (sess_find_vocab(s, m->path ? m->path : "", path, sizeof path, err) != 0) return NULL;
        t = ms_tok_world_load(path, err);
        snprintf(desc, cap, "rwkv-world (%s)", path);
        break;
    }
    case MS_TOK_WORDS:
        if (!m->words) {
            ms_seterr(err, "%s: the model's tokenizer is 'words' but it has no vocab list", m->path);
            return NULL;
        }
        t = ms_tok_words_new((const char *const *)m->words, m->cfg.vocab, err);
        snprintf(desc, cap, "words (%d)", m->cfg.vocab);
        break;
    default:
        ms_seterr(err, "%s: unknown tokenizer kind %d", m->path, (int)m->cfg.tokenizer);
    }
    return t;
}

/* same model identity: shape and weights */
static int sess_same_model(const ms_model *a, const ms_model *b)
{
    char sa[96], sb[96];
    ms_statefile_model_summary(a, sa, sizeof sa);
    ms_statefile_model_summary(b, sb, sizeof sb);
    return strcmp(sa, sb) == 0 && a->weights_hash == b->weights_hash;
}

/* the zero point of config c with sampler sm (RNG reseeded) */
static sess_frozen *sess_zero_fz(const ms_config *c, const ms_sampler *sm)
{
    sess_point z;
    if (sess_pt_alloc(c, &z) != 0) return NULL;
    z.sampler = *sm;
    ms_sampler_reseed(&z.sampler, sm->seed);
    sess_frozen *f = sess_fz_new(c, &z);
    sess_pt_free(&z);
    return f;
}

int sess_use_model(sess *s, ms_model *m, int *dropped, ms_err *err)
{
    char desc[sizeof s->tok_desc];
    ms_tokenizer *tok = sess_make_tok(s, m, desc, sizeof desc, err);
    if (!tok) return -1;
    const ms_config *c = &m->cfg;
    ms_ws *ws = ms_ws_new(m);
    sess_point cur, tmp;
    memset(&cur, 0, sizeof cur);
    memset(&tmp, 0, sizeof tmp);
    float *probs = malloc((size_t)c->vocab * sizeof(float));
    float *sl = malloc((size_t)c->vocab * sizeof(float));
    float *ss = malloc(ms_state_len(c) * sizeof(float));
    sess_frozen *zero = sess_zero_fz(c, &s->cur.sampler);
    sess_log *root = zero ? sess_log_root(s, zero, SESS_ORIGIN_ZERO) : NULL;
    if (!s->cap_branches && (s->branches = malloc(8 * sizeof *s->branches))) s->cap_branches = 8;
    if (!ws || !probs || !sl || !ss || !root || !s->cap_branches || sess_pt_alloc(c, &cur) != 0 ||
        sess_pt_alloc(c, &tmp) != 0) {
        ms_seterr(err, "%s: out of memory for the session", m->path ? m->path : "model");
        free(probs);
        free(sl);
        free(ss);
        if (root) sess_log_unref(s, root);
        else sess_fz_unref(zero);
        sess_pt_free(&cur);
        sess_pt_free(&tmp);
        if (ws) ms_ws_free(ws);
        ms_tok_free(tok);
        return -1;
    }
    int keep = s->model && sess_same_model(s->model, m);
    *dropped = keep ? 0 : s->n_snaps;
    sess_unload(s, keep);
    s->model = m;
    s->tok = tok;
    s->ws = ws;
    s->cur = cur;
    s->tmp = tmp;
    s->probs = probs;
    s->scratch_logits = sl;
    s->scratch_state = ss;
    snprintf(s->tok_desc, sizeof s->tok_desc, "%s", desc);
    sess_branches_start(s, root);
    return 0;
}

int sess_load(sess *s, const char *path, int *dropped, ms_err *err)
{
    ms_model *m = ms_model_load(path, err);
    if (!m) return -1;
    if (sess_use_model(s, m, dropped, err) != 0) {
        ms_model_free(m);
        return -1;
    }
    return 0;
}

int sess_reset(sess *s, ms_err *err)
{
    sess_frozen *z = sess_zero_fz(&s->model->cfg, &s->cur.sampler);
    if (!z) {
        ms_seterr(err, "out of memory");
        return -1;
    }
    sess_hist none = { NULL, 0 };
    return sess_rehome(s, none, z, SESS_ORIGIN_ZERO, err);
}

int sess_check_ids(const sess *s, const int *ids, int n, ms_err *err)
{
    int V = s->model->cfg.vocab;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) {
            ms_seterr(err, "token %d (at %d) is outside the vocabulary 0..%d", ids[i], i, V - 1);
            return -1;
        }
    }
    return 0;
}

int sess_encode(const sess *s, const char *text, size_t len, int **ids, int *n, ms_err *err)
{
    if (ms_tok_encode(s->tok, text, len, ids, n, err) != 0) return -1;
    if (sess_check_ids(s, *ids, *n, err) != 0) {
        free(*ids);
        *ids = NULL;
        return -1;
    }
    return 0;
}

int sess_feed(sess *s, const int *ids, int n, sess_token_cb cb, void *ctx, int *n_done, ms_err *err)
{
    *n_done = 0;
    for (int i = 0; i < n; i++) {
        if (sess_interrupted(s)) break;
        sess_event e = { .kind = SESS_EV_TOKEN, .arg = ids[i] };
        if (s->watch.before) s->watch.before(s->watch.ctx);
        if (sess_record(s, &e, NULL, err) != 0) return -1;
        (*n_done)++;
        if (cb) cb(ctx, ids[i]);
        if (s->watch.after) s->watch.after(s->watch.ctx);
    }
    return 0;
}

static int sess_need_logits(const sess *s, ms_err *err)
{
    if (s->cur.has_logits) return 0;
    ms_seterr(err, "no logits yet at position %lld: feed a token first", (long long)s->cur.position);
    return -1;
}

int sess_sample(sess *s, ms_err *err)
{
    if (sess_need_logits(s, err) != 0) return -1;
    if (s->sampled_id < 0) {
        s->sampled_pre = s->cur.sampler;
        s->sampled_n = 0;
    }
    int id = ms_sample(&s->cur.sampler, s->cur.logits, s->model->cfg.vocab);
    s->sampled_n++;
    if (id < 0) ms_seterr(err, "out of memory in the sampler");
    s->sampled_id = id;
    return id;
}

int sess_set_sampler(sess *s, const ms_sampler *sm, ms_err *err)
{
    sess_event e = { .kind = SESS_EV_SAMPLER };
    sess_edit ed;
    memset(&ed, 0, sizeof ed);
    ed.sampler = *sm;
    return sess_record(s, &e, &ed, err);
}

int sess_probs(sess *s)
{
    if (!s->cur.has_logits) return -1;
    ms_softmax(s->cur.logits, s->probs, s->model->cfg.vocab);
    return 0;
}

static int sess_cmp_prob(const void *a, const void *b, void *ctx)
{
    const float *p = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (p[i] != p[j]) return p[i] > p[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

int sess_top(sess *s, int k, int *ids, float *p, ms_err *err)
{
    int V = s->model->cfg.vocab;
    if (sess_need_logits(s, err) != 0) return -1;
    if (k < 1 || k > V) {
        ms_seterr(err, "k must be from 1 to %d", V);
        return -1;
    }
    int *idx = malloc((size_t)V * sizeof(int));
    if (!idx) { ms_seterr(err, "out of memory"); return -1; }
    sess_probs(s);
    for (int i = 0; i < V; i++) idx[i] = i;
    qsort_r(idx, (size_t)V, sizeof(int), sess_cmp_prob, s->probs);
    for (int i = 0; i < k; i++) {
        ids[i] = idx[i];
        p[i] = s->probs[idx[i]];
    }
    free(idx);
    return 0;
}

int sess_score(sess *s, const int *ids, int n, sess_score_result *r, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    memset(r, 0, sizeof *r);
    int start = s->cur.has_logits ? 0 : 1;
    if (n - start < 1) {
        ms_seterr(err, n == 0 ? "nothing to score: the text gives no tokens"
                              : "nothing to score: one token and no logits yet at position %lld "
                                "(the first token has nothing to predict it)",
                  (long long)s->cur.position);
        return -1;
    }
    if (sess_check_ids(s, ids, n, err) != 0) return -1;
    /* work on copies: the current point is never touched */
    memcpy(s->scratch_state, s->cur.state, ms_state_len(c) * sizeof(float));
    memcpy(s->scratch_logits, s->cur.logits, (size_t)c->vocab * sizeof(float));
    double bits = 0;
    long bytes = 0;
    for (int i = 0; i < n; i++) {
        if (sess_interrupted(s)) {
            ms_seterr(err, "interrupted after %d of %d tokens", i, n);
            return -1;
        }
        if (i >= start) {
            double lse = ms_softmax(s->scratch_logits, s->probs, c->vocab);
            bits += (lse - (double)s->scratch_logits[ids[i]]) / M_LN2;
            const char *b;
            size_t len = 0;
            if (ms_tok_token_bytes(s->tok, ids[i], &b, &len) == 0) bytes += (long)len;
        }
        if (i + 1 < n && sess_model_step(s, s->scratch_state, ids[i], s->scratch_logits, NULL, err) != 0)
            return -1;
    }
    r->bits = bits;
    r->scored = n - start;
    r->bytes = bytes;
    r->skipped_first = start;
    return 0;
}

/* ---- edits ---- */

static const char *sess_op_name(sess_op op)
{
    static const char *const n[] = { "set", "zero", "scale", "noise", "patch" };
    return op <= SESS_OP_PATCH ? n[op] : "?";
}

int sess_edit_do(sess *s, const sess_edit *ed, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    sess_event e = { .kind = SESS_EV_EDIT };
    /* try it on a copy: a result that is not finite is refused */
    memcpy(s->scratch_state, s->cur.state, ms_state_len(c) * sizeof(float));
    sess_point p = s->cur;
    p.state = s->scratch_state;
    if (sess_apply(s, &p, &e, ed, 0, NULL, err) != 0) return -1;
    const tgt *t = &ed->t;
    for (size_t r = 0; r < t->count; r++) {
        const float *q = s->scratch_state + t->off + r * t->stride;
        for (size_t j = 0; j < t->len; j++) {
            if (isfinite(q[j])) continue;
            char nm[64], where[64];
            ms_seterr(err, "%s %s would make %s %s; nothing was changed", sess_op_name(ed->op),
                      tgt_name(t, nm, sizeof nm), cmp_where(c, t, r * t->len + j, where, sizeof where),
                      isnan(q[j]) ? "NaN" : "infinite (beyond float32's ±3.4e38)");
            return -1;
        }
    }
    return sess_record(s, &e, ed, err);
}

/* ---- snapshots ---- */

int sess_name_check(const char *name, ms_err *err)
{
    size_t n = strlen(name);
    int ok = n >= 1 && n < SESS_NAME_MAX && name[0] != '-' && name[0] != '.';
    for (size_t i = 0; ok && i < n; i++) {
        char ch = name[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '_' || ch == '-' || ch == '.';
    }
    if (!ok) {
        char q[80];
        ms_seterr(err, "bad name '%s': a name is 1 to %d of A-Z a-z 0-9 _ - . not starting with - or .",
                  arg_quote(name, q, sizeof q), SESS_NAME_MAX - 1);
        return -1;
    }
    if (strcmp(name, "now") == 0) {
        ms_seterr(err, "'now' is reserved: it names the current state");
        return -1;
    }
    return 0;
}

int sess_name_free(const sess *s, const char *name, ms_err *err)
{
    if (sess_name_check(name, err) != 0) return -1;
    if (sess_snap_find(s, name) >= 0) {
        ms_seterr(err, "snapshot '%s' already exists (drop it first, or choose another name)", name);
        return -1;
    }
    if (sess_branch_find(s, name) >= 0) {
        ms_seterr(err, "'%s' is a branch; snapshots and branches share one set of names", name);
        return -1;
    }
    return 0;
}

int sess_snap_find(const sess *s, const char *name)
{
    for (int i = 0; i < s->n_snaps; i++)
        if (strcmp(s->snaps[i].name, name) == 0) return i;
    return -1;
}

const char *sess_snap_name(const sess *s, int i)
{
    return i >= 0 && i < s->n_snaps ? s->snaps[i].name : NULL;
}

void sess_snap_autoname(sess *s, char *buf, size_t cap)
{
    do snprintf(buf, cap, "s%d", ++s->auto_snap);
    while (sess_snap_find(s, buf) >= 0 || sess_branch_find(s, buf) >= 0);
}

static int sess_snap_room(sess *s, ms_err *err)
{
    if (s->n_snaps < s->cap_snaps) return 0;
    int cap = s->cap_snaps ? 2 * s->cap_snaps : 8;
    sess_snap *v = realloc(s->snaps, (size_t)cap * sizeof *v);
    if (!v) { ms_seterr(err, "out of memory"); return -1; }
    s->snaps = v;
    s->cap_snaps = cap;
    return 0;
}

/* a new snapshot (room made) from fz (its ref taken) and h (ref taken) */
static void sess_snap_put(sess *s, const char *name, sess_frozen *fz, sess_hist h, const char *branch)
{
    sess_snap *sn = &s->snaps[s->n_snaps++];
    memset(sn, 0, sizeof *sn);
    snprintf(sn->name, sizeof sn->name, "%s", name);
    snprintf(sn->branch, sizeof sn->branch, "%s", branch);
    sn->fz = fz;
    sn->pt = fz->pt;
    sn->hist = h;
    sess_hist_ref(h);
}

int sess_snap_add(sess *s, const char *name, ms_err *err)
{
    if (sess_name_free(s, name, err) != 0 || sess_snap_room(s, err) != 0) return -1;
    sess_frozen *fz = sess_fz_copy(s, &s->cur);
    if (!fz) {
        ms_seterr(err, "out of memory for a snapshot");
        return -1;
    }
    sess_snap_put(s, name, fz, sess_cur_hist(s), s->branch);
    return 0;
}

int sess_restore(sess *s, int i, ms_err *err)
{
    sess_snap *sn = &s->snaps[i];
    sess_hist tip = sess_branch_tip(s, s->cur_branch);
    if (sess_hist_prefix(sn->hist, tip)) {
        /* on the branch's history: a cursor move, the snapshot's exact bytes */
        sess_pt_copy(&s->cur, &sn->pt, &s->model->cfg);
        s->branches[s->cur_branch].cursor = sess_hist_len(sn->hist);
        sess_cur_tokens(s, -1);
        s->sampled_id = -1;
        s->version++;
        sess_traces_stale(s);
        return 0;
    }
    sn->fz->refs++;
    return sess_rehome(s, sn->hist, sn->fz, SESS_ORIGIN_STATE, err);
}

void sess_snap_drop(sess *s, int i)
{
    sess_snap_release(s, &s->snaps[i]);
    memmove(&s->snaps[i], &s->snaps[i + 1], (size_t)(s->n_snaps - i - 1) * sizeof *s->snaps);
    s->n_snaps--;
}

/* ---- state files: the history as metadata ---- */

typedef struct {
    int *tokens; int n_tokens;
    unsigned char *sampled;
    uint64_t *checks; long n_checks;
    cJSON *edits;
    float **blobs; size_t *blob_len; int n_blobs;
} sess_fhist;

static void sess_fhist_free(sess_fhist *f)
{
    free(f->tokens);
    free(f->sampled);
    free(f->checks);
    cJSON_Delete(f->edits);
    free(f->blobs);
    free(f->blob_len);
}

static cJSON *sess_edit_json(const sess_event *e, const sess_edit *ed, int at, int blob)
{
    cJSON *o = cJSON_CreateObject();
    char nm[64];
    cJSON_AddNumberToObject(o, "at", at);
    if (e->kind == SESS_EV_SAMPLER) {
        cJSON_AddStringToObject(o, "op", "sampler");
        char *txt = ms_statefile_sampler_json(&ed->sampler);
        cJSON *sm = txt ? cJSON_Parse(txt) : NULL;
        free(txt);
        if (sm) cJSON_AddItemToObject(o, "sampler", sm);
        return o;
    }
    if (e->kind == SESS_EV_GROW) {
        cJSON_AddStringToObject(o, "op", "grow");
        cJSON_AddStringToObject(o, "text", ed->text ? ed->text : "");
        return o;
    }
    cJSON_AddStringToObject(o, "op", sess_op_name(ed->op));
    cJSON_AddStringToObject(o, "target", tgt_name(&ed->t, nm, sizeof nm));
    switch (ed->op) {
    case SESS_OP_SET: cJSON_AddNumberToObject(o, "value", ed->value); break;
    case SESS_OP_SCALE: cJSON_AddNumberToObject(o, "factor", ed->value); break;
    case SESS_OP_NOISE: {
        char sd[24];
        snprintf(sd, sizeof sd, "%llu", (unsigned long long)ed->seed);
        cJSON_AddNumberToObject(o, "sigma", ed->value);
        cJSON_AddStringToObject(o, "seed", sd);
        break;
    }
    case SESS_OP_PATCH:
        cJSON_AddStringToObject(o, "from", ed->src);
        cJSON_AddNumberToObject(o, "data", blob);
        break;
    default: break;
    }
    return o;
}

/* the history h as the file's lists; blobs borrow the log's patch values */
static int sess_fhist_make(sess_hist h, sess_fhist *f, ms_err *err)
{
    memset(f, 0, sizeof *f);
    long n = sess_hist_len(h);
    f->tokens = malloc(sizeof(int) * (size_t)(n + 1));
    f->sampled = calloc((size_t)n + 1, 1);
    f->checks = malloc(sizeof(uint64_t) * (size_t)(n + 1));
    f->blobs = malloc(sizeof(float *) * (size_t)(n + 1));
    f->blob_len = malloc(sizeof(size_t) * (size_t)(n + 1));
    f->edits = cJSON_CreateArray();
    if (!f->tokens || !f->sampled || !f->checks || !f->blobs || !f->blob_len || !f->edits) {
        sess_fhist_free(f);
        ms_seterr(err, "out of memory");
        return -1;
    }
    int any_unchecked = 0;
    for (long g = 0; g < n; g++) {
        const sess_event *e;
        const sess_edit *ed;
        int64_t pos;
        sess_hist_event(h, g, &e, &ed, &pos);
        any_unchecked |= e->flags & SESS_EVF_NOCHECK;
        f->checks[f->n_checks++] = (uint64_t)e->state_check << 32 | e->logits_check;
        if (e->kind == SESS_EV_TOKEN) {
            f->sampled[f->n_tokens] = (e->flags & SESS_EVF_SAMPLED) != 0;
            f->tokens[f->n_tokens++] = e->arg;
            continue;
        }
        int blob = -1;
        if (e->kind == SESS_EV_EDIT && ed->op == SESS_OP_PATCH) {
            blob = f->n_blobs;
            f->blobs[f->n_blobs] = ed->data;
            f->blob_len[f->n_blobs++] = tgt_size(&ed->t);
        }
        cJSON_AddItemToArray(f->edits, sess_edit_json(e, ed, f->n_tokens, blob));
    }
    if (any_unchecked) f->n_checks = 0;   /* all or none */
    return 0;
}

int sess_save(sess *s, int snap, const char *path, ms_err *err)
{
    const sess_point *pt = snap < 0 ? &s->cur : &s->snaps[snap].pt;
    sess_hist h = snap < 0 ? sess_cur_hist(s) : s->snaps[snap].hist;
    sess_fhist f;
    if (sess_fhist_make(h, &f, err) != 0) return -1;
    char *edits = cJSON_PrintUnformatted(f.edits);
    if (!edits) {
        sess_fhist_free(&f);
        ms_seterr(err, "out of memory");
        return -1;
    }
    sess_hist root = h;
    while (root.log->parent) root = (sess_hist){ root.log->parent, 0 };
    const sess_point *o = &root.log->ck[0].fz->pt;   /* the origin */
    ms_statefile_info info;
    memset(&info, 0, sizeof info);
    info.tokens = f.tokens;
    info.n_tokens = f.n_tokens;
    info.position = pt->position;
    info.branch = (char *)(snap < 0 ? s->branch : s->snaps[snap].branch);
    info.edits_json = edits;
    info.sampler = pt->sampler;
    info.logits = pt->has_logits ? pt->logits : NULL;
    info.origin_state = root.log->origin == SESS_ORIGIN_STATE;
    info.origin = info.origin_state ? o->state : NULL;
    info.origin_logits = info.origin_state && o->has_logits ? o->logits : NULL;
    info.origin_position = o->position;
    info.origin_sampler = o->sampler;
    info.has_origin_sampler = 1;
    info.sampled = f.sampled;
    info.checks = f.checks;
    info.n_checks = f.n_checks;
    info.blobs = f.blobs;
    info.blob_len = f.blob_len;
    info.n_blobs = f.n_blobs;
    int rc = ms_statefile_save(path, s->model, pt->state, &info, err);
    free(edits);
    sess_fhist_free(&f);
    return rc;
}

/* one element of a file's `edits` as an event and its edit (checked) */
static int sess_edit_from_json(const sess *s, const char *path, int i, const cJSON *o,
                               const ms_statefile_info *info, int *at, sess_event *e, sess_edit *ed, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    memset(ed, 0, sizeof *ed);
    memset(e, 0, sizeof *e);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "at");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(a) || !cJSON_IsString(op)) {
        ms_seterr(err, "%s: edits[%d] is not an object with \"at\" and \"op\"", path, i);
        return -1;
    }
    *at = a->valuedouble >= 0 && a->valuedouble <= info->n_tokens && a->valuedouble == (int)a->valuedouble
              ? (int)a->valuedouble : -1;
    if (*at < 0) {
        ms_seterr(err, "%s: edits[%d].at must be a token count from 0 to %d", path, i, info->n_tokens);
        return -1;
    }
    const char *ops = op->valuestring;
    if (!strcmp(ops, "sampler")) {
        char *txt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "sampler"));
        char key[32];
        snprintf(key, sizeof key, "edits[%d].sampler", i);
        int rc = ms_statefile_sampler_parse(path, key, txt ? txt : "", &ed->sampler, err);
        free(txt);
        e->kind = SESS_EV_SAMPLER;
        return rc;
    }
    if (!strcmp(ops, "grow")) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "text");
        e->kind = SESS_EV_GROW;
        ed->text = (char *)(cJSON_IsString(t) ? t->valuestring : "");
        return 0;
    }
    e->kind = SESS_EV_EDIT;
    int k;
    for (k = 0; k <= SESS_OP_PATCH && strcmp(ops, sess_op_name((sess_op)k)); k++) {}
    if (k > SESS_OP_PATCH) {
        ms_seterr(err, "%s: edits[%d].op '%.40s' is none of set, zero, scale, noise, patch, sampler, grow",
                  path, i, ops);
        return -1;
    }
    ed->op = (sess_op)k;
    const cJSON *tg = cJSON_GetObjectItemCaseSensitive(o, "target");
    char msg[400];
    if (!cJSON_IsString(tg) || tgt_parse(c, tg->valuestring, &ed->t, msg, sizeof msg) != 0) {
        ms_seterr(err, "%s: edits[%d].target: %s", path, i, cJSON_IsString(tg) ? msg : "missing");
        return -1;
    }
    const char *vk = ed->op == SESS_OP_SET ? "value" : ed->op == SESS_OP_SCALE ? "factor" :
                     ed->op == SESS_OP_NOISE ? "sigma" : NULL;
    if (vk) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, vk);
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > 3.4e38 ||
            (ed->op == SESS_OP_NOISE && v->valuedouble < 0)) {
            ms_seterr(err, "%s: edits[%d].%s must be a finite number", path, i, vk);
            return -1;
        }
        ed->value = v->valuedouble;
    }
    if (ed->op == SESS_OP_NOISE) {
        const cJSON *sd = cJSON_GetObjectItemCaseSensitive(o, "seed");
        uint64_t v;
        if (!cJSON_IsString(sd) || arg_u64(sd->valuestring, &v) != 0) {
            ms_seterr(err, "%s: edits[%d].seed must be a decimal string", path, i);
            return -1;
        }
        ed->seed = v;
    }
    if (ed->op == SESS_OP_PATCH) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "data");
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(o, "from");
        int j = cJSON_IsNumber(d) && d->valuedouble >= 0 && d->valuedouble < info->n_blobs &&
                d->valuedouble == (int)d->valuedouble ? (int)d->valuedouble : -1;
        if (j < 0 || info->blob_len[j] != tgt_size(&ed->t)) {
            ms_seterr(err, "%s: edits[%d].data must name a tensor edits.J of %zu values (the target's size)",
                      path, i, tgt_size(&ed->t));
            return -1;
        }
        ed->data = info->blobs[j];
        if (cJSON_IsString(from)) snprintf(ed->src, sizeof ed->src, "%s", from->valuestring);
    }
    return 0;
}

/* Build the root log of a file's history (checked completely first).
 * Returns the log (its tip point pinned to fz), or NULL with err; *note
 * gets a remark when the history could not be kept. */
static sess_log *sess_file_log(sess *s, const char *path, ms_statefile_info *info, sess_frozen *fz,
                               char *note, size_t ncap, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    cJSON *edits = NULL;
    sess_event *ev = NULL;
    sess_edit *eds = NULL;
    sess_log *log = NULL;
    sess_frozen *ofz = NULL;
    long n_ev = 0;
    int legacy = !info->has_history && !info->imported && !info->forced;
    if (legacy && (info->position != info->n_tokens || (info->edits_json && strcmp(info->edits_json, "[]")))) {
        legacy = 0;
        snprintf(note, ncap, "the file records no replayable history (it starts from its own state)");
    }
    if ((!info->has_history && !legacy) || info->imported || info->forced) {
        if (info->forced) snprintf(note, ncap, "its history was recorded with other weights and is not kept");
        fz->refs++;
        return sess_log_root(s, fz, SESS_ORIGIN_STATE);
    }
    if (info->position != info->origin_position + info->n_tokens) {
        ms_seterr(err, "%s: metadata 'position' %lld is not origin_position %lld + %d tokens", path,
                  (long long)info->position, (long long)info->origin_position, info->n_tokens);
        return NULL;
    }
    edits = cJSON_Parse(info->edits_json ? info->edits_json : "[]");
    int n_ed = edits ? cJSON_GetArraySize(edits) : 0;
    ev = calloc((size_t)(info->n_tokens + n_ed + 1), sizeof *ev);
    eds = calloc((size_t)(n_ed + 1), sizeof *eds);
    if (!edits || !ev || !eds) {
        ms_seterr(err, "%s: out of memory", path);
        goto fail;
    }
    /* the edits in order, then merged: the edits at k come before token k */
    sess_event *eev = calloc((size_t)(n_ed + 1), sizeof *eev);
    int *at = calloc((size_t)(n_ed + 1), sizeof *at);
    if (!eev || !at) {
        free(eev);
        free(at);
        ms_seterr(err, "%s: out of memory", path);
        goto fail;
    }
    int j = 0;
    for (const cJSON *eo = edits->child; eo; eo = eo->next, j++) {
        if (sess_edit_from_json(s, path, j, eo, info, &at[j], &eev[j], &eds[j], err) != 0 ||
            (j > 0 && at[j] < at[j - 1] &&
             (ms_seterr(err, "%s: edits[%d].at %d comes before the previous edit's %d", path, j, at[j],
                        at[j - 1]), 1))) {
            free(eev);
            free(at);
            goto fail;
        }
        eev[j].arg = j;
    }
    j = 0;
    for (int k = 0; k <= info->n_tokens; k++) {
        while (j < n_ed && at[j] == k) ev[n_ev++] = eev[j++];
        if (k == info->n_tokens) break;
        sess_event t = { .kind = SESS_EV_TOKEN, .arg = info->tokens[k] };
        if (info->sampled && info->sampled[k]) t.flags |= SESS_EVF_SAMPLED;
        ev[n_ev++] = t;
    }
    free(eev);
    free(at);
    if (info->n_checks && info->n_checks != n_ev) {
        ms_seterr(err, "%s: metadata 'checks' has %ld events' checks; the history has %ld events", path,
                  info->n_checks, n_ev);
        goto fail;
    }
    for (long i = 0; i < n_ev; i++) {
        if (info->n_checks) {
            ev[i].state_check = (uint32_t)(info->checks[i] >> 32);
            ev[i].logits_check = (uint32_t)info->checks[i];
        } else {
            ev[i].flags |= SESS_EVF_NOCHECK;
        }
    }
    /* the origin */
    if (info->origin_state) {
        sess_point o = { .state = info->origin, .logits = info->origin_logits,
                         .has_logits = info->origin_logits != NULL, .position = info->origin_position,
                         .sampler = info->origin_sampler };
        ofz = sess_fz_new(c, &o);
    } else {
        ms_sampler sm;
        if (info->has_origin_sampler) sm = info->origin_sampler;
        else ms_sampler_init(&sm, info->sampler.temp, info->sampler.top_p, info->sampler.top_k, info->sampler.seed);
        ofz = sess_zero_fz(c, &sm);
        if (ofz) {
            ofz->pt.sampler = sm;   /* exactly as recorded, RNG included */
            ofz->pt.position = info->origin_position;
        }
    }
    if (!ofz || !(log = sess_log_root(s, ofz, info->origin_state ? SESS_ORIGIN_STATE : SESS_ORIGIN_ZERO))) {
        if (!log) sess_fz_unref(ofz);
        ms_seterr(err, "%s: out of memory", path);
        goto fail;
    }
    for (long i = 0; i < n_ev; i++) {
        const sess_edit *ed = ev[i].kind == SESS_EV_TOKEN ? NULL : &eds[ev[i].arg];
        if (sess_log_append_raw(log, &ev[i], ed, err) != 0) goto fail;
    }
    fz->refs++;
    if (n_ev && sess_log_pin(s, log, n_ev, fz) != 0) {
        sess_fz_unref(fz);
        ms_seterr(err, "%s: out of memory", path);
        goto fail;
    }
    if (!n_ev) sess_fz_unref(fz);
    cJSON_Delete(edits);
    free(ev);
    free(eds);
    return log;
fail:
    if (log) sess_log_unref(s, log);
    cJSON_Delete(edits);
    free(ev);
    free(eds);
    return NULL;
}

int sess_open(sess *s, const char *path, const char *name, int force,
              int *imported, int *forced, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    if (sess_name_free(s, name, err) != 0 || sess_snap_room(s, err) != 0) return -1;
    sess_point p;
    if (sess_pt_alloc(c, &p) != 0) {
        ms_seterr(err, "out of memory");
        return -1;
    }
    ms_statefile_info info;
    if (ms_statefile_load(path, s->model, p.state, &info, force ? MS_SF_FORCE : 0, err) != 0) {
        sess_pt_free(&p);
        return -1;
    }
    p.has_logits = info.logits != NULL;
    if (info.logits) memcpy(p.logits, info.logits, (size_t)c->vocab * sizeof(float));
    p.position = info.position;
    p.sampler = info.has_sampler ? info.sampler : s->cur.sampler;
    sess_frozen *fz = sess_fz_new(c, &p);
    sess_pt_free(&p);
    char note[200] = "";
    sess_log *log = fz ? sess_file_log(s, path, &info, fz, note, sizeof note, err) : NULL;
    if (!fz) ms_seterr(err, "out of memory");
    if (!log) {
        sess_fz_unref(fz);
        ms_statefile_info_free(&info);
        return -1;
    }
    *imported = info.imported;
    *forced = info.forced;
    sess_hist h = { log, log->n };
    sess_snap_put(s, name, fz, h, info.branch && sess_name_check(info.branch, err) == 0 ? info.branch : "main");
    sess_log_unref(s, log);   /* the snapshot holds it now */
    ms_statefile_info_free(&info);
    if (sess_restore(s, s->n_snaps - 1, err) != 0) {
        sess_snap_drop(s, s->n_snaps - 1);
        return -1;
    }
    if (note[0]) {
        size_t l = strlen(s->note);
        snprintf(s->note + l, sizeof s->note - l, "%s%s", l ? "; " : "", note);
    }
    return 0;
}
