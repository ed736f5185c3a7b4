/* step_seq.c: many tokens in one pass: a sequence (ms_step_seq: T tokens of
 * one state, in order) and a batch (ms_step_batch: one token each for B
 * independent states).
 *
 * What it is: the forward step of step.c reorganised by layer over R rows
 * (R tokens), so that every matrix product is ms_matmat over all rows and
 * each weight is read from memory once per chunk instead of once per token;
 * the WKV-7 recurrence, the norms and the Self-State Encoder reads run per
 * row in token order.  Every row goes through exactly the arithmetic of
 * ms_step (the same helpers in step_impl.h, the same expressions, and
 * ms_matmat is bit for bit ms_matvec), so the states and logits are bit for
 * bit those of calling ms_step token by token: tests/test_model.c `seq`
 * checks this on every golden model.
 *
 * The Meta-State layer of a row reads the state S just after that row's
 * TimeMix, but in a sequence the next rows' TimeMix has moved S on by then:
 * the SSE heads of S are kept for each row (Hs·N·N floats a row).
 *
 * What it is not: no observer (a caller that watches the intermediates
 * steps with ms_step, which gives the same numbers), no parameter-token
 * experts (a model with top_k < n_experts is stepped with ms_step here).
 */
#include "ms.h"
#include "kernels.h"
#include "step_impl.h"

#include <stdlib.h>
#include <string.h>

struct ms_seq_ws {
    int max_rows;
    size_t C, A, D, E, n, SS;      /* strides of the row arrays (padded) */
    float *x, *xa, *xr, *xw, *xk, *xv, *xx, *xg, *out, *hx;   /* (R, C) */
    float *r, *k, *v, *w, *a, *g, *kk, *vf, *y, *yo, *tA;    /* (R, A) */
    float *lo;                     /* (R, D) LoRA bottleneck */
    float *q, *e_raw, *e;          /* (R, E) E = Hs*N */
    float *s, *s2, *tn;            /* (R, n) */
    float *snap;                   /* (R, Hs*N*N) SSE heads of S after each row's TimeMix */
    ms_ws *one;                    /* for the token-by-token cases */
    void *block;
};

#define PAD(x) (((x) + 15) & ~(size_t)15)

ms_seq_ws *ms_seq_ws_new(const ms_model *m, int max_rows)
{
    const ms_config *c = &m->cfg;
    if (max_rows < 1) max_rows = 1;
    ms_seq_ws *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->max_rows = max_rows;
    size_t D = (size_t)c->d_w;
    if ((size_t)c->d_a > D) D = (size_t)c->d_a;
    if ((size_t)c->d_v > D) D = (size_t)c->d_v;
    if ((size_t)c->d_g > D) D = (size_t)c->d_g;
    size_t E = (size_t)c->sse_heads * c->head_size;
    w->C = PAD((size_t)c->n_embd);
    w->A = PAD((size_t)c->dim_att);
    w->D = PAD(D ? D : 1);
    w->E = PAD(E ? E : 1);
    w->n = PAD((size_t)c->n_ptok ? (size_t)c->n_ptok : 1);
    w->SS = PAD(E ? E * c->head_size : 1);
    size_t R = (size_t)max_rows;
    size_t total = R * (10 * w->C + 11 * w->A + w->D + 3 * w->E + 3 * w->n + w->SS);
    w->one = ms_ws_new(m);
    if (!w->one || posix_memalign(&w->block, 64, total * sizeof(float))) {
        ms_ws_free(w->one);
        free(w);
        return NULL;
    }
    memset(w->block, 0, total * sizeof(float));
    float *p = w->block;
#define TAKE(f, len) do { w->f = p; p += R * (len); } while (0)
    TAKE(x, w->C); TAKE(xa, w->C); TAKE(xr, w->C); TAKE(xw, w->C); TAKE(xk, w->C); TAKE(xv, w->C);
    TAKE(xx, w->C); TAKE(xg, w->C); TAKE(out, w->C); TAKE(hx, w->C);
    TAKE(r, w->A); TAKE(k, w->A); TAKE(v, w->A); TAKE(w, w->A); TAKE(a, w->A); TAKE(g, w->A); TAKE(kk, w->A);
    TAKE(vf, w->A); TAKE(y, w->A); TAKE(yo, w->A); TAKE(tA, w->A);
    TAKE(lo, w->D);
    TAKE(q, w->E); TAKE(e_raw, w->E); TAKE(e, w->E);
    TAKE(s, w->n); TAKE(s2, w->n); TAKE(tn, w->n);
    TAKE(snap, w->SS);
#undef TAKE
    return w;
}

void ms_seq_ws_free(ms_seq_ws *w)
{
    if (!w) return;
    ms_ws_free(w->one);
    free(w->block);
    free(w);
}

int ms_seq_ws_rows(const ms_seq_ws *w) { return w->max_rows; }

/* The rows' states: in a sequence (st NULL) every row uses the one state
 * `one` and row r's previous token is row r-1; in a batch row r has state
 * st[r]. */
typedef struct {
    float *one;
    float *const *st;
} rows_of_state;

static inline float *row_state(const rows_of_state *rs, int r) { return rs->st ? rs->st[r] : rs->one; }

/* head h of the WKV-7 recurrence of layer li for all R rows, in order */
typedef struct {
    const ms_config *c;
    ms_seq_ws *w;
    const rows_of_state *rs;
    int li, R;
} wkv_job;

static void wkv_head(void *arg, int h)
{
    const wkv_job *j = arg;
    const ms_config *c = j->c;
    ms_seq_ws *w = j->w;
    const int N = c->head_size;
    const size_t sA = w->A, sS = w->SS, o = (size_t)h * N, hs = (size_t)N * N;
    for (int r = 0; r < j->R; r++) {
        float *S = ms_state_S(c, row_state(j->rs, r), j->li) + o * N;
        wkv_update(S, w->w + r * sA + o, w->k + r * sA + o, w->v + r * sA + o, w->r + r * sA + o, w->kk + r * sA + o,
                   w->a + r * sA + o, w->tA + r * sA + o, w->y + r * sA + o, 1, N);
        if (h < c->sse_heads) memcpy(w->snap + r * sS + h * hs, S, sizeof(float) * hs);
    }
}

/* Which rows' logits step_rows computes: none, the last row's (into
 * logits), or every row's (row r into logits + r * vocab). */
typedef enum { ROWS_NONE, ROWS_LAST, ROWS_ALL } rows_logits;

/* R rows (tokens) through every layer, and the logits `want` asks for. */
static void step_rows(const ms_model *m, ms_seq_ws *w, const rows_of_state *rs, const int *tokens, int R,
                      float *logits, rows_logits want)
{
    const ms_config *c = &m->cfg;
    const int C = c->n_embd, A = c->dim_att, H = c->n_head, N = c->head_size, Hs = c->sse_heads, n = c->n_ptok;
    const size_t sC = w->C, sA = w->A, sD = w->D, sE = w->E, sn = w->n, sS = w->SS;
    for (int r = 0; r < R; r++) {
        ms_mat_row(&m->emb, tokens[r], w->out + r * sC);
        layer_norm(w->out + r * sC, w->x + r * sC, m->ln0_w, m->ln0_b, C, 1e-5);
    }
    for (int li = 0; li < c->n_layer; li++) {
        const ms_layer *L = &m->layers[li];
        /* ---- TimeMix: shifted inputs, then the products over all rows ---- */
        for (int r = 0; r < R; r++) layer_norm(w->x + r * sC, w->xa + r * sC, L->ln1_w, L->ln1_b, C, 1e-5);
        for (int r = 0; r < R; r++) {
            const float *xa = w->xa + r * sC;
            const float *prev = !rs->st && r > 0 ? w->xa + (r - 1) * sC : ms_state_att_x(c, row_state(rs, r), li);
            float *xr = w->xr + r * sC, *xw = w->xw + r * sC, *xk = w->xk + r * sC, *xv = w->xv + r * sC;
            float *xx = w->xx + r * sC, *xg = w->xg + r * sC;
            for (int i = 0; i < C; i++) {
                float d = prev[i] - xa[i];
                xr[i] = xa[i] + d * L->x_r[i];
                xw[i] = xa[i] + d * L->x_w[i];
                xk[i] = xa[i] + d * L->x_k[i];
                xv[i] = xa[i] + d * L->x_v[i];
                xx[i] = xa[i] + d * L->x_a[i];
                xg[i] = xa[i] + d * L->x_g[i];
            }
        }
        /* att_x after the chunk: the last row's normed input (each row's own in a batch) */
        for (int r = 0; r < R; r++)
            if (rs->st || r == R - 1) memcpy(ms_state_att_x(c, row_state(rs, r), li), w->xa + r * sC, sizeof(float) * (size_t)C);
        ms_matmat(&L->Wr, w->xr, sC, w->r, sA, R);
        ms_matmat(&L->Wk, w->xk, sC, w->k, sA, R);
        ms_matmat(&L->Wv, w->xv, sC, w->v, sA, R);
        /* decay */
        ms_matmat(&L->w1, w->xw, sC, w->lo, sD, R);
        for (int r = 0; r < R; r++)
            for (int j = 0; j < c->d_w; j++) w->lo[r * sD + j] = tanhf(w->lo[r * sD + j]);
        ms_matmat(&L->w2, w->lo, sD, w->w, sA, R);
        for (int r = 0; r < R; r++) {
            float *wr = w->w + r * sA;
            for (int i = 0; i < A; i++) wr[i] = expf(-0.606531f * sigmoidf(L->w0[i] + wr[i]));
        }
        /* in-context learning rate */
        ms_matmat(&L->a1, w->xx, sC, w->lo, sD, R);
        ms_matmat(&L->a2, w->lo, sD, w->a, sA, R);
        for (int r = 0; r < R; r++) {
            float *ar = w->a + r * sA;
            for (int i = 0; i < A; i++) ar[i] = sigmoidf(L->a0[i] + ar[i]);
        }
        /* output gate */
        ms_matmat(&L->g1, w->xg, sC, w->lo, sD, R);
        for (int r = 0; r < R; r++)
            for (int j = 0; j < c->d_g; j++) w->lo[r * sD + j] = sigmoidf(w->lo[r * sD + j]);
        ms_matmat(&L->g2, w->lo, sD, w->g, sA, R);
        /* value residual */
        if (li == 0) {
            for (int r = 0; r < R; r++) memcpy(w->vf + r * sA, w->v + r * sA, sizeof(float) * (size_t)A);
        } else {
            ms_matmat(&L->v1, w->xv, sC, w->lo, sD, R);
            ms_matmat(&L->v2, w->lo, sD, w->tA, sA, R);
            for (int r = 0; r < R; r++) {
                float *vr = w->v + r * sA;
                const float *vf = w->vf + r * sA, *t = w->tA + r * sA;
                for (int i = 0; i < A; i++) vr[i] += (vf[i] - vr[i]) * sigmoidf(L->v0[i] + t[i]);
            }
        }
        /* kk from k before the k_a change, normalised per head */
        for (int r = 0; r < R; r++) {
            float *kr = w->k + r * sA, *t = w->tA + r * sA;
            const float *ar = w->a + r * sA;
            for (int i = 0; i < A; i++) t[i] = kr[i] * L->k_k[i];
            unit_per_head(t, w->kk + r * sA, H, N);
            for (int i = 0; i < A; i++) kr[i] = kr[i] * (1.0f + (ar[i] - 1.0f) * L->k_a[i]);
        }
        /* ---- the WKV-7 recurrence: row by row in token order, the heads
         * (independent) spread over the threads ---- */
        wkv_job wj = { c, w, rs, li, R };
        if (R * H * N * N >= 16384) ms_par_for(wkv_head, &wj, H);
        else
            for (int h = 0; h < H; h++) wkv_head(&wj, h);
        for (int r = 0; r < R; r++) {
            float *yo = w->yo + r * sA;
            const float *rr = w->r + r * sA, *kr = w->k + r * sA, *vr = w->v + r * sA, *gr = w->g + r * sA;
            group_norm(w->y + r * sA, yo, L->lnx_w, L->lnx_b, H, N, 64e-5);
            for (int h = 0; h < H; h++) {
                float bonus = 0;
                for (int j = 0; j < N; j++) bonus += rr[h * N + j] * kr[h * N + j] * L->r_k[h * N + j];
                for (int j = 0; j < N; j++) yo[h * N + j] += bonus * vr[h * N + j];
            }
            for (int i = 0; i < A; i++) yo[i] *= gr[i];
        }
        ms_matmat(&L->Wo, w->yo, sA, w->out, sC, R);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < C; i++) w->x[r * sC + i] += w->out[r * sC + i];
        /* ---- the Meta-State layer ---- */
        for (int r = 0; r < R; r++) layer_norm(w->x + r * sC, w->xa + r * sC, L->ln2_w, L->ln2_b, C, 1e-5);
        for (int r = 0; r < R; r++) {
            const float *xa = w->xa + r * sC;
            const float *prev = !rs->st && r > 0 ? w->xa + (r - 1) * sC : ms_state_ffn_x(c, row_state(rs, r), li);
            float *z = w->xr + r * sC;
            for (int i = 0; i < C; i++) {
                float d = prev[i] - xa[i];
                z[i] = xa[i] + d * L->ffn_xk[i];
            }
        }
        for (int r = 0; r < R; r++)
            if (rs->st || r == R - 1) memcpy(ms_state_ffn_x(c, row_state(rs, r), li), w->xa + r * sC, sizeof(float) * (size_t)C);
        ms_matmat(&L->Kz, w->xr, sC, w->s, sn, R);
        if (Hs > 0) {
            for (int r = 0; r < R; r++)
                sse_read_rows(w->xr + r * sC, w->snap + r * sS, w->q + r * sE, w->e_raw + r * sE, w->e + r * sE,
                              L->sse_ln_w, L->sse_ln_b, Hs, N);
            ms_matmat(&L->Ks, w->e, sE, w->tn, sn, R);
            for (int r = 0; r < R; r++)
                for (int j = 0; j < n; j++) w->s[r * sn + j] += w->tn[r * sn + j];
        }
        for (int r = 0; r < R; r++)
            for (int j = 0; j < n; j++) {
                float t = w->s[r * sn + j] > 0 ? w->s[r * sn + j] : 0;
                w->s2[r * sn + j] = t * t;
            }
        ms_matmat(&L->V, w->s2, sn, w->out, sC, R);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < C; i++) w->x[r * sC + i] += w->out[r * sC + i];
    }
    if (want == ROWS_NONE || !logits) return;
    int r0 = want == ROWS_ALL ? 0 : R - 1;
    for (int r = r0; r < R; r++)
        layer_norm(w->x + r * sC, w->hx + (size_t)(r - r0) * sC, m->lnout_w, m->lnout_b, C, 1e-5);
    ms_matmat(&m->head, w->hx, sC, logits, (size_t)c->vocab, R - r0);
}

static int check_tokens(const ms_config *c, const int *tokens, int n, ms_err *err)
{
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab) {
            ms_seterr(err, "token %d (at %d) out of range (valid: 0..%d)", tokens[i], i, c->vocab - 1);
            return -1;
        }
    return 0;
}

static int uses_experts(const ms_config *c) { return c->top_k < c->n_experts; }

int ms_step_seq(const ms_model *m, ms_seq_ws *w, float *state, const int *tokens, int T, float *logits,
                ms_seq_logits mode, ms_err *err)
{
    const ms_config *c = &m->cfg;
    if (T <= 0) return 0;
    if (check_tokens(c, tokens, T, err)) return -1;
    size_t V = (size_t)c->vocab;
    if (!logits) mode = MS_SEQ_NONE;
    if (uses_experts(c)) {   /* token by token: the same numbers */
        for (int t = 0; t < T; t++) {
            float *lg = mode == MS_SEQ_ALL ? logits + (size_t)t * V : mode == MS_SEQ_LAST && t == T - 1 ? logits : NULL;
            if (ms_step(m, w->one, state, state, tokens[t], lg, NULL, err)) return -1;
        }
        return 0;
    }
    rows_of_state rs = { state, NULL };
    for (int t0 = 0; t0 < T; t0 += w->max_rows) {
        int R = T - t0 < w->max_rows ? T - t0 : w->max_rows;
        if (mode == MS_SEQ_ALL) step_rows(m, w, &rs, tokens + t0, R, logits + (size_t)t0 * V, ROWS_ALL);
        else if (mode == MS_SEQ_LAST && t0 + R == T) step_rows(m, w, &rs, tokens + t0, R, logits, ROWS_LAST);
        else step_rows(m, w, &rs, tokens + t0, R, NULL, ROWS_NONE);
    }
    return 0;
}

int ms_step_batch(const ms_model *m, ms_seq_ws *w, float *const *states, const int *tokens, int B, float *logits,
                  ms_err *err)
{
    const ms_config *c = &m->cfg;
    if (B <= 0) return 0;
    if (check_tokens(c, tokens, B, err)) return -1;
    size_t V = (size_t)c->vocab;
    if (uses_experts(c)) {
        for (int b = 0; b < B; b++)
            if (ms_step(m, w->one, states[b], states[b], tokens[b], logits ? logits + (size_t)b * V : NULL, NULL, err))
                return -1;
        return 0;
    }
    for (int b0 = 0; b0 < B; b0 += w->max_rows) {
        int R = B - b0 < w->max_rows ? B - b0 : w->max_rows;
        rows_of_state rs = { NULL, states + b0 };
        step_rows(m, w, &rs, tokens + b0, R, logits ? logits + (size_t)b0 * V : NULL, logits ? ROWS_ALL : ROWS_NONE);
    }
    return 0;
}
