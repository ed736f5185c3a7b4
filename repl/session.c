/* session.c: the session (see session.h): model and tokenizer loading, the
 * current point, feeding, sampling, scoring, snapshots and state files.
 *
 * Every operation that can fail prepares what it needs first (memory, files,
 * checks) and changes the session only when nothing can fail any more.
 */
#define _GNU_SOURCE   /* qsort_r */
#include "session.h"
#include "statefile.h"
#include "args.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SESS_VOCAB_FILE "rwkv_vocab_v20230424.txt"

/* ---- points ---- */

static void sess_pt_free(sess_point *p)
{
    free(p->state);
    free(p->logits);
    free(p->tokens);
    memset(p, 0, sizeof *p);
}

/* allocate p for config c; on failure p holds nothing */
static int sess_pt_init(sess_point *p, const ms_config *c)
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

static int sess_pt_reserve(sess_point *p, long n)
{
    if (n <= p->cap_tokens) return 0;
    long cap = p->cap_tokens ? p->cap_tokens : 64;
    while (cap < n) cap *= 2;
    if (cap > 1L << 30) return -1;
    int *t = realloc(p->tokens, (size_t)cap * sizeof(int));
    if (!t) return -1;
    p->tokens = t;
    p->cap_tokens = (int)cap;
    return 0;
}

/* dst := src; both allocated for config c.  Fails only for memory. */
static int sess_pt_copy(sess_point *dst, const sess_point *src, const ms_config *c)
{
    if (sess_pt_reserve(dst, src->n_tokens) != 0) return -1;
    memcpy(dst->state, src->state, ms_state_len(c) * sizeof(float));
    memcpy(dst->logits, src->logits, (size_t)c->vocab * sizeof(float));
    dst->has_logits = src->has_logits;
    dst->position = src->position;
    if (src->n_tokens) memcpy(dst->tokens, src->tokens, (size_t)src->n_tokens * sizeof(int));
    dst->n_tokens = src->n_tokens;
    dst->sampler = src->sampler;
    return 0;
}

static void sess_pt_zero(sess_point *p, const ms_config *c)
{
    memset(p->state, 0, ms_state_len(c) * sizeof(float));
    p->has_logits = 0;
    p->position = 0;
    p->n_tokens = 0;
    ms_sampler_reseed(&p->sampler, p->sampler.seed);
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
    snprintf(s->branch, sizeof s->branch, "main");
    ms_sampler_init(&s->cur.sampler, 1.0f, 1.0f, 0, 0);
    return s;
}

/* free the model and everything sized by it; the snapshots too unless
 * keep_snaps (their buffers fit any model with the same shape) */
static void sess_unload(sess *s, int keep_snaps)
{
    if (!keep_snaps) {
        for (int i = 0; i < s->n_snaps; i++) sess_pt_free(&s->snaps[i].pt);
        s->n_snaps = 0;
    }
    sess_pt_free(&s->cur);
    free(s->probs);
    free(s->scratch_state);
    free(s->scratch_logits);
    s->probs = s->scratch_state = s->scratch_logits = NULL;
    if (s->ws) ms_ws_free(s->ws);
    if (s->tok) ms_tok_free(s->tok);
    if (s->model) ms_model_free(s->model);
    s->ws = NULL;
    s->tok = NULL;
    s->model = NULL;
}

void sess_free(sess *s)
{
    if (!s) return;
    sess_unload(s, 0);
    free(s->snaps);
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

int sess_load(sess *s, const char *path, int *dropped, ms_err *err)
{
    ms_model *m = ms_model_load(path, err);
    if (!m) return -1;
    char desc[sizeof s->tok_desc];
    ms_tokenizer *tok = sess_make_tok(s, m, desc, sizeof desc, err);
    if (!tok) {
        ms_model_free(m);
        return -1;
    }
    ms_ws *ws = ms_ws_new(m);
    sess_point cur;
    memset(&cur, 0, sizeof cur);
    float *probs = malloc((size_t)m->cfg.vocab * sizeof(float));
    float *sl = malloc((size_t)m->cfg.vocab * sizeof(float));
    float *ss = malloc(ms_state_len(&m->cfg) * sizeof(float));
    if (!ws || !probs || !sl || !ss || sess_pt_init(&cur, &m->cfg) != 0) {
        ms_seterr(err, "%s: out of memory for the session", path);
        free(probs);
        free(sl);
        free(ss);
        if (ws) ms_ws_free(ws);
        ms_tok_free(tok);
        ms_model_free(m);
        return -1;
    }
    int keep = s->model && sess_same_model(s->model, m);
    *dropped = keep ? 0 : s->n_snaps;
    cur.sampler = s->cur.sampler;
    ms_sampler_reseed(&cur.sampler, cur.sampler.seed);
    sess_unload(s, keep);
    s->model = m;
    s->tok = tok;
    s->ws = ws;
    s->cur = cur;
    s->probs = probs;
    s->scratch_logits = sl;
    s->scratch_state = ss;
    snprintf(s->tok_desc, sizeof s->tok_desc, "%s", desc);
    return 0;
}

void sess_reset(sess *s)
{
    sess_pt_zero(&s->cur, &s->model->cfg);
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
    sess_point *p = &s->cur;
    *n_done = 0;
    if (sess_pt_reserve(p, (long)p->n_tokens + n) != 0) {
        ms_seterr(err, "out of memory for the token history");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (sess_interrupted(s)) break;
        if (ms_step(s->model, s->ws, p->state, p->state, ids[i], p->logits, NULL, err) != 0)
            return -1;
        p->has_logits = 1;
        p->position++;
        p->tokens[p->n_tokens++] = ids[i];
        (*n_done)++;
        if (cb) cb(ctx, ids[i]);
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
    int id = ms_sample(&s->cur.sampler, s->cur.logits, s->model->cfg.vocab);
    if (id < 0) ms_seterr(err, "out of memory in the sampler");
    return id;
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
        if (i + 1 < n &&
            ms_step(s->model, s->ws, s->scratch_state, s->scratch_state, ids[i], s->scratch_logits, NULL, err) != 0)
            return -1;
    }
    r->bits = bits;
    r->scored = n - start;
    r->bytes = bytes;
    r->skipped_first = start;
    return 0;
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
    while (sess_snap_find(s, buf) >= 0);
}

/* a new, allocated, unnamed snapshot slot at the end (not yet counted) */
static sess_snap *sess_snap_slot(sess *s, ms_err *err)
{
    if (s->n_snaps == s->cap_snaps) {
        int cap = s->cap_snaps ? 2 * s->cap_snaps : 8;
        sess_snap *v = realloc(s->snaps, (size_t)cap * sizeof *v);
        if (!v) { ms_seterr(err, "out of memory"); return NULL; }
        s->snaps = v;
        s->cap_snaps = cap;
    }
    sess_snap *sn = &s->snaps[s->n_snaps];
    if (sess_pt_init(&sn->pt, &s->model->cfg) != 0) {
        ms_seterr(err, "out of memory for a snapshot");
        return NULL;
    }
    return sn;
}

static int sess_name_free(const sess *s, const char *name, ms_err *err)
{
    if (sess_name_check(name, err) != 0) return -1;
    if (sess_snap_find(s, name) >= 0) {
        ms_seterr(err, "snapshot '%s' already exists (drop it first, or choose another name)", name);
        return -1;
    }
    return 0;
}

int sess_snap_add(sess *s, const char *name, ms_err *err)
{
    if (sess_name_free(s, name, err) != 0) return -1;
    sess_snap *sn = sess_snap_slot(s, err);
    if (!sn) return -1;
    if (sess_pt_copy(&sn->pt, &s->cur, &s->model->cfg) != 0) {
        sess_pt_free(&sn->pt);
        ms_seterr(err, "out of memory for a snapshot");
        return -1;
    }
    snprintf(sn->name, sizeof sn->name, "%s", name);
    s->n_snaps++;
    return 0;
}

int sess_restore(sess *s, int i, ms_err *err)
{
    if (sess_pt_copy(&s->cur, &s->snaps[i].pt, &s->model->cfg) != 0) {
        ms_seterr(err, "out of memory for the token history");
        return -1;
    }
    return 0;
}

void sess_snap_drop(sess *s, int i)
{
    sess_pt_free(&s->snaps[i].pt);
    memmove(&s->snaps[i], &s->snaps[i + 1], (size_t)(s->n_snaps - i - 1) * sizeof *s->snaps);
    s->n_snaps--;
}

/* ---- state files ---- */

int sess_save(sess *s, const sess_point *pt, const char *path, ms_err *err)
{
    if (!pt) pt = &s->cur;
    ms_statefile_info info;
    memset(&info, 0, sizeof info);
    info.tokens = pt->tokens;
    info.n_tokens = pt->n_tokens;
    info.position = pt->position;
    info.branch = s->branch;
    info.edits_json = NULL;
    info.sampler = pt->sampler;
    info.logits = pt->has_logits ? pt->logits : NULL;
    return ms_statefile_save(path, s->model, pt->state, &info, err);
}

int sess_open(sess *s, const char *path, const char *name, int force,
              int *imported, int *forced, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    if (sess_name_free(s, name, err) != 0) return -1;
    sess_snap *sn = sess_snap_slot(s, err);
    if (!sn) return -1;
    ms_statefile_info info;
    if (ms_statefile_load(path, s->model, sn->pt.state, &info, force ? MS_SF_FORCE : 0, err) != 0) {
        sess_pt_free(&sn->pt);
        return -1;
    }
    if (sess_pt_reserve(&sn->pt, info.n_tokens) != 0 || sess_pt_reserve(&s->cur, info.n_tokens) != 0) {
        ms_seterr(err, "out of memory for the token history");
        ms_statefile_info_free(&info);
        sess_pt_free(&sn->pt);
        return -1;
    }
    sess_point *p = &sn->pt;
    p->has_logits = info.logits != NULL;
    if (info.logits) memcpy(p->logits, info.logits, (size_t)c->vocab * sizeof(float));
    p->position = info.position;
    if (info.n_tokens) memcpy(p->tokens, info.tokens, (size_t)info.n_tokens * sizeof(int));
    p->n_tokens = info.n_tokens;
    p->sampler = info.has_sampler ? info.sampler : s->cur.sampler;
    *imported = info.imported;
    *forced = info.forced;
    ms_statefile_info_free(&info);
    snprintf(sn->name, sizeof sn->name, "%s", name);
    s->n_snaps++;
    /* cannot fail: the current point's history was reserved above */
    sess_pt_copy(&s->cur, p, c);
    return 0;
}
