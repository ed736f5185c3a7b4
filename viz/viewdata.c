/* viewdata.c: the observer record and one frame's derived numbers (see
 * viewdata.h).
 *
 * What it is: copies out of the workspace during a step (vz_rec_observe,
 * a few kB per layer), and per frame the norms, the top-k selection and the
 * parameter-token ranking.  Frame work is bounded by the model's size (one
 * pass over the state, one over the logits, one Ks·e product), never by the
 * length of the run.  What it is not: a renderer, and it never steps a state.
 */
#include "viewdata.h"

#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tokens decoded for the stream panel: enough to fill a large screen */
#define VZ_TEXT_TOKENS 600

/* ---- the record ---- */

vz_rec *vz_rec_new(const ms_config *c)
{
    vz_rec *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->L = c->n_layer; r->H = c->n_head; r->N = c->head_size; r->Hs = c->sse_heads; r->n = c->n_ptok;
    r->state_len = ms_state_len(c);
    size_t sn = (size_t)r->Hs * (size_t)r->N * (size_t)r->L;
    int ok = 1;
    if (sn) {
        r->q = calloc(sn, sizeof(float));
        r->e_raw = calloc(sn, sizeof(float));
        r->e = calloc(sn, sizeof(float));
        ok = r->q && r->e_raw && r->e;
    }
    r->s = calloc((size_t)r->L * (size_t)(r->n > 0 ? r->n : 1), sizeof(float));
    r->dS = calloc((size_t)r->L * (size_t)r->H, sizeof(float));
    if (!ok || !r->s || !r->dS) {
        vz_rec_free(r);
        return NULL;
    }
    r->pos = -1;
    return r;
}

void vz_rec_free(vz_rec *r)
{
    if (!r) return;
    free(r->q);
    free(r->e_raw);
    free(r->e);
    free(r->s);
    free(r->dS);
    free(r->prev);
    free(r);
}

int vz_rec_fits(const vz_rec *r, const ms_config *c)
{
    return r && r->L == c->n_layer && r->H == c->n_head && r->N == c->head_size &&
           r->Hs == c->sse_heads && r->n == c->n_ptok && r->state_len == ms_state_len(c);
}

void vz_rec_observe(void *ctx, const ms_trace *t)
{
    vz_rec *r = ctx;
    if (!r || t->layer < 0 || t->layer >= r->L) return;
    if (t->layer == 0) { r->pos = -1; r->layers_seen = 0; }
    size_t hn = (size_t)r->Hs * (size_t)r->N, off = (size_t)t->layer * hn;
    if (hn && t->q && t->e_raw && t->e) {
        memcpy(r->q + off, t->q, hn * sizeof(float));
        memcpy(r->e_raw + off, t->e_raw, hn * sizeof(float));
        memcpy(r->e + off, t->e, hn * sizeof(float));
    }
    if (t->s && r->n > 0) memcpy(r->s + (size_t)t->layer * (size_t)r->n, t->s, (size_t)r->n * sizeof(float));
    r->layers_seen++;
}

void vz_rec_before(vz_rec *r, const float *state)
{
    if (!r) return;
    r->delta_ok = 0;
    r->prev_src = NULL;
    if (!r->track_delta || !state) return;
    if (!r->prev) r->prev = malloc(r->state_len * sizeof(float));
    if (!r->prev) return;
    memcpy(r->prev, state, r->state_len * sizeof(float));
    r->prev_src = state;
}

void vz_rec_after(vz_rec *r, const ms_config *c, const float *state, int64_t position)
{
    if (!r) return;
    r->steps++;
    /* a step that did not reach every layer (it failed) leaves no record */
    r->pos = r->layers_seen == r->L ? position : -1;
    r->layers_seen = 0;
    if (r->track_delta && r->prev && r->prev_src == state && r->pos >= 0) {
        vz_head_norms(c, state, r->prev, r->dS);
        r->delta_ok = 1;
    }
}

/* ---- norms ---- */

void vz_head_norms(const ms_config *c, const float *st, const float *ref, float *out)
{
    int L = c->n_layer, H = c->n_head, N = c->head_size;
    size_t nn = (size_t)N * (size_t)N;
    for (int l = 0; l < L; l++) {
        const float *S = ms_state_S(c, (float *)st, l);
        const float *R = ref ? ms_state_S(c, (float *)ref, l) : NULL;
        for (int h = 0; h < H; h++) {
            const float *a = S + (size_t)h * nn;
            double sum = 0;
            if (R) {
                const float *b = R + (size_t)h * nn;
                for (size_t i = 0; i < nn; i++) {
                    double x = (double)a[i] - (double)b[i];
                    sum += x * x;
                }
            } else {
                for (size_t i = 0; i < nn; i++) sum += (double)a[i] * (double)a[i];
            }
            out[(size_t)l * (size_t)H + (size_t)h] = (float)sqrt(sum);
        }
    }
}

/* ---- data ---- */

void vz_data_init(vz_data *d)
{
    memset(d, 0, sizeof *d);
}

void vz_data_free(vz_data *d)
{
    free(d->text);
    free(d->tok_off);
    free(d->ov);
    free(d->scratch);
    memset(d, 0, sizeof *d);
}

static int text_add(vz_data *d, const char *s, size_t n)
{
    if (d->text_len + n + 1 > d->text_cap) {
        size_t cap = d->text_cap ? d->text_cap : 1024;
        while (cap < d->text_len + n + 1) cap *= 2;
        char *t = realloc(d->text, cap);
        if (!t) return -1;
        d->text = t;
        d->text_cap = cap;
    }
    memcpy(d->text + d->text_len, s, n);
    d->text_len += n;
    d->text[d->text_len] = 0;
    return 0;
}

static int fill_text(vz_data *d, const vz_source *src)
{
    d->text_len = 0;
    d->text_cut = 0;
    d->n_tok_off = 0;
    if (text_add(d, "", 0) != 0) return -1;
    int n = src->n_tokens, from = n > VZ_TEXT_TOKENS ? n - VZ_TEXT_TOKENS : 0;
    d->text_cut = from > 0;
    if (d->cap_tok_off < n - from) {
        int *o = realloc(d->tok_off, (size_t)(n - from) * sizeof(int));
        if (!o) return -1;
        d->tok_off = o;
        d->cap_tok_off = n - from;
    }
    if (!src->tokens || !src->tok) {
        /* no tokenizer: the ids */
        for (int i = from; i < n; i++) {
            d->tok_off[d->n_tok_off++] = (int)d->text_len;
            char b[16];
            int k = snprintf(b, sizeof b, "%d ", src->tokens ? src->tokens[i] : 0);
            if (text_add(d, b, (size_t)k) != 0) return -1;
        }
        return 0;
    }
    ms_utf8buf u;
    memset(&u, 0, sizeof u);
    char piece[1024];
    for (int i = from; i < n; i++) {
        d->tok_off[d->n_tok_off++] = (int)d->text_len;
        size_t k = ms_tok_decode_stream(src->tok, &u, src->tokens[i], piece, sizeof piece);
        if (text_add(d, piece, k) != 0) return -1;
    }
    size_t k = ms_tok_decode_flush(&u, piece, sizeof piece);
    return text_add(d, piece, k);
}

/* insert (id, key) into the sorted top list a[0..*n) of capacity cap,
 * ordered by key descending, ties by lower id; val is what is stored */
static void top_insert(vz_ptok *a, int *n, int cap, int id, double key, float val, double *keys)
{
    int pos = *n;
    while (pos > 0 && (keys[pos - 1] < key || (keys[pos - 1] == key && a[pos - 1].id > id))) pos--;
    if (pos >= cap) return;
    int last = *n < cap ? *n : cap - 1;
    for (int i = last; i > pos; i--) { a[i] = a[i - 1]; keys[i] = keys[i - 1]; }
    a[pos].id = id;
    a[pos].val = val;
    keys[pos] = key;
    if (*n < cap) (*n)++;
}

static void fill_topk(vz_data *d, const vz_source *src, int k)
{
    d->k = 0;
    if (!src->has_logits || !src->logits || d->V < 1) return;
    if (k > VZ_TOPK_MAX) k = VZ_TOPK_MAX;
    if (k > d->V) k = d->V;
    vz_ptok top[VZ_TOPK_MAX];
    double keys[VZ_TOPK_MAX];
    int n = 0;
    for (int i = 0; i < d->V; i++) {
        float x = src->logits[i];
        if (!isfinite(x) || (n == k && !(x > keys[n - 1]))) continue;
        top_insert(top, &n, k, i, x, x, keys);
    }
    double lse = ms_softmax(src->logits, NULL, d->V);
    for (int i = 0; i < n; i++) {
        d->top_id[i] = top[i].id;
        d->top_p[i] = (float)exp((double)top[i].val - lse);
        if (src->tok) ms_tok_render(src->tok, top[i].id, d->top_str[i], VZ_TOKSTR);
        else snprintf(d->top_str[i], VZ_TOKSTR, "%d", top[i].id);
    }
    d->k = n;
}

static int fill_overview(vz_data *d, const vz_source *src, const vz_select *sel)
{
    const ms_config *c = &src->model->cfg;
    size_t LH = (size_t)d->L * (size_t)d->H;
    float *ov = realloc(d->ov, LH * sizeof(float));
    if (!ov) return -1;
    d->ov = ov;
    d->ov_note[0] = 0;
    d->metric = sel->metric;
    if (sel->metric == VZ_OV_DELTA) {
        if (d->rec_ok && d->rec->delta_ok) {
            memcpy(d->ov, d->rec->dS, LH * sizeof(float));
            snprintf(d->ov_label, sizeof d->ov_label, "\xe2\x80\x96\xce\x94S\xe2\x80\x96 last token");
            return 0;
        }
        snprintf(d->ov_note, sizeof d->ov_note, "\xe2\x80\x96\xce\x94S\xe2\x80\x96 comes with the next token");
        d->metric = VZ_OV_NORM;
    } else if (sel->metric == VZ_OV_DRIFT) {
        if (src->drift_state) {
            vz_head_norms(c, src->state, src->drift_state, d->ov);
            snprintf(d->ov_label, sizeof d->ov_label, "drift from %.40s", src->drift_name ? src->drift_name : "?");
            return 0;
        }
        snprintf(d->ov_note, sizeof d->ov_note, "no snapshot %.40s for drift",
                 src->drift_name ? src->drift_name : "");
        d->metric = VZ_OV_NORM;
    }
    vz_head_norms(c, src->state, NULL, d->ov);
    snprintf(d->ov_label, sizeof d->ov_label, "\xe2\x80\x96S\xe2\x80\x96");
    return 0;
}

static int fill_ptok(vz_data *d, const vz_source *src, const vz_select *sel)
{
    d->n_ptok = 0;
    int Hs = d->Hs, N = d->N, n = d->n, l = sel->layer;
    if (!d->rec_ok || Hs < 1 || n < 1 || l < 0 || l >= d->L) return 0;
    if (sel->zoom == VZ_ZOOM_HEAD && sel->head >= Hs) return 0;   /* not an SSE head */
    const ms_layer *Ly = &src->model->layers[l];
    if (!Ly->Ks.data) return 0;
    size_t hn = (size_t)Hs * (size_t)N;
    float *sc = realloc(d->scratch, ((size_t)n + hn) * sizeof(float));
    if (!sc) return -1;
    d->scratch = sc;
    float *ks_e = sc, *e = sc + n;
    memcpy(e, d->rec->e + (size_t)l * hn, hn * sizeof(float));   /* one head: only its slice of Ks·e */
    /* row by row on this thread: a frame must not wake the step's thread
     * pool (on a small machine its spinning workers would slow both) */
    float *row = malloc(hn * sizeof(float));
    if (!row) return -1;
    size_t lo = 0, hi = hn;
    if (sel->zoom == VZ_ZOOM_HEAD) { lo = (size_t)sel->head * (size_t)N; hi = lo + (size_t)N; }
    for (int j = 0; j < n; j++) {
        ms_mat_row(&Ly->Ks, j, row);
        double a = 0;
        for (size_t i = lo; i < hi; i++) a += (double)row[i] * (double)e[i];
        ks_e[j] = (float)a;
    }
    free(row);
    const float *s = d->rec->s + (size_t)l * (size_t)n;
    double k1[VZ_PTOK_MAX], k2[VZ_PTOK_MAX];
    int n1 = 0, n2 = 0;
    for (int j = 0; j < n; j++) {
        float a = ks_e[j];
        if (isfinite(a)) top_insert(d->by_ks, &n1, VZ_PTOK_MAX, j, fabs((double)a), a, k1);
        float r = s[j] > 0 ? s[j] : 0;
        if (isfinite(r)) top_insert(d->by_s2, &n2, VZ_PTOK_MAX, j, (double)r * r, r * r, k2);
    }
    d->n_ptok = n1 < n2 ? n1 : n2;
    return 0;
}

int vz_data_update(vz_data *d, const vz_source *src, const vz_select *sel_in)
{
    const ms_config *c = &src->model->cfg;
    d->model = src->model;
    d->L = c->n_layer; d->H = c->n_head; d->N = c->head_size; d->Hs = c->sse_heads;
    d->n = c->n_ptok; d->V = c->vocab;
    d->state = src->state;
    d->position = src->position;
    snprintf(d->branch, sizeof d->branch, "%s", src->branch ? src->branch : "main");
    snprintf(d->model_name, sizeof d->model_name, "%s", src->model_name ? src->model_name : "");
    d->edited = src->edited;
    d->has_logits = src->has_logits;
    d->n_tokens = src->n_tokens;
    vz_select sel = *sel_in;
    if (sel.layer < 0) sel.layer = 0;
    if (sel.layer >= d->L) sel.layer = d->L - 1;
    if (sel.head < 0) sel.head = 0;
    if (sel.head >= d->H) sel.head = d->H - 1;
    if (sel.topk < 1) sel.topk = 1;
    if (sel.topk > VZ_TOPK_MAX) sel.topk = VZ_TOPK_MAX;
    d->sel = sel;
    d->rec = src->rec;
    d->rec_ok = src->rec && vz_rec_fits(src->rec, c) && src->rec->pos >= 0 &&
                src->rec->pos == src->position;
    int rc = 0;
    if (fill_text(d, src) != 0) rc = -1;
    fill_topk(d, src, sel.topk);
    if (fill_overview(d, src, &sel) != 0) rc = -1;
    if (fill_ptok(d, src, &sel) != 0) rc = -1;
    return rc;
}
