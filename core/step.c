/* step.c: the forward step on the CPU: one token through RWKV-7 TimeMix and
 * the Meta-State layer (MODEL.md 2 and 3), and the workspace it uses.
 *
 * ms_step() is the only function that advances a state.  It reads the model
 * (never writes it), reads and writes the caller's flat state buffer, and
 * uses the workspace for every intermediate, so the observer can be handed
 * pointers instead of copies.  All arithmetic is fp32 except the reductions
 * of the norms, which accumulate in double.  No -ffast-math here: this path
 * is the oracle the CUDA backend is checked against.
 */
#include "ms.h"
#include "kernels.h"
#include "step_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ms_ws {
    float *x;                      /* (C) residual stream */
    float *xa;                     /* (C) normed input of a sub-layer */
    float *xr, *xw, *xk, *xv, *xx, *xg;   /* (C) shifted inputs (xx: for a) */
    float *r, *k, *v, *w, *a, *g, *kk;    /* (A) */
    float *v_first;                /* (A) layer 0's v, used by later layers */
    float *y;                      /* (A) WKV read */
    float *yo;                     /* (A) after ln_x and the bonus, times g */
    float *lo, *lo2;               /* (max LoRA dim) */
    float *tmpA;                   /* (A) */
    float *out;                    /* (C) */
    float *part;                   /* (C) one expert block's output */
    float *q, *e_raw, *e;          /* (Hs*N) */
    float *s;                      /* (n) */
    float *s2;                     /* (n) */
    float *tmpn;                   /* (n) */
    void *block;
};

ms_ws *ms_ws_new(const ms_model *m)
{
    const ms_config *c = &m->cfg;
    size_t C = (size_t)c->n_embd, A = (size_t)c->dim_att, n = (size_t)c->n_ptok;
    size_t E = (size_t)c->sse_heads * c->head_size;
    size_t D = (size_t)c->d_w;
    if ((size_t)c->d_a > D) D = (size_t)c->d_a;
    if ((size_t)c->d_v > D) D = (size_t)c->d_v;
    if ((size_t)c->d_g > D) D = (size_t)c->d_g;
    /* every buffer padded to a multiple of 16 floats (64 bytes) */
#define PAD(x) (((x) + 15) & ~(size_t)15)
    size_t total = 10 * PAD(C) + 11 * PAD(A) + 2 * PAD(D) + 3 * PAD(E ? E : 1) + 3 * PAD(n);
    ms_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    float *p = NULL;
    if (posix_memalign(&ws->block, 64, total * sizeof(float))) {
        free(ws);
        return NULL;
    }
    memset(ws->block, 0, total * sizeof(float));
    p = ws->block;
#define TAKE(f, len) do { ws->f = p; p += PAD(len); } while (0)
    TAKE(x, C); TAKE(xa, C); TAKE(xr, C); TAKE(xw, C); TAKE(xk, C); TAKE(xv, C); TAKE(xx, C); TAKE(xg, C);
    TAKE(out, C); TAKE(part, C);
    TAKE(r, A); TAKE(k, A); TAKE(v, A); TAKE(w, A); TAKE(a, A); TAKE(g, A); TAKE(kk, A); TAKE(v_first, A);
    TAKE(y, A); TAKE(yo, A); TAKE(tmpA, A);
    TAKE(lo, D); TAKE(lo2, D);
    TAKE(q, E ? E : 1); TAKE(e_raw, E ? E : 1); TAKE(e, E ? E : 1);
    TAKE(s, n); TAKE(s2, n); TAKE(tmpn, n);
#undef TAKE
#undef PAD
    return ws;
}

void ms_ws_free(ms_ws *ws)
{
    if (!ws) return;
    free(ws->block);
    free(ws);
}

/* RWKV-7 TimeMix of layer i: reads ws->xa (normed input), updates att_x and
 * S in the state, leaves the output projection in ws->out. */
static void time_mix(const ms_model *m, const ms_layer *L, int li, ms_ws *ws, float *att_x, float *S)
{
    const ms_config *c = &m->cfg;
    const int C = c->n_embd, A = c->dim_att, H = c->n_head, N = c->head_size;
    const float *xa = ws->xa;
    for (int i = 0; i < C; i++) {
        float d = att_x[i] - xa[i];
        att_x[i] = xa[i];
        ws->xr[i] = xa[i] + d * L->x_r[i];
        ws->xw[i] = xa[i] + d * L->x_w[i];
        ws->xk[i] = xa[i] + d * L->x_k[i];
        ws->xv[i] = xa[i] + d * L->x_v[i];
        ws->xx[i] = xa[i] + d * L->x_a[i];
        ws->xg[i] = xa[i] + d * L->x_g[i];
    }
    ms_matvec(&L->Wr, ws->xr, ws->r);
    ms_matvec(&L->Wk, ws->xk, ws->k);
    ms_matvec(&L->Wv, ws->xv, ws->v);

    /* decay */
    ms_matvec(&L->w1, ws->xw, ws->lo);
    for (int j = 0; j < c->d_w; j++) ws->lo[j] = tanhf(ws->lo[j]);
    ms_matvec(&L->w2, ws->lo, ws->w);
    for (int i = 0; i < A; i++) ws->w[i] = expf(-0.606531f * sigmoidf(L->w0[i] + ws->w[i]));
    /* in-context learning rate */
    ms_matvec(&L->a1, ws->xx, ws->lo);
    ms_matvec(&L->a2, ws->lo, ws->a);
    for (int i = 0; i < A; i++) ws->a[i] = sigmoidf(L->a0[i] + ws->a[i]);
    /* output gate: sigmoid inside, nothing after g2 */
    ms_matvec(&L->g1, ws->xg, ws->lo);
    for (int j = 0; j < c->d_g; j++) ws->lo[j] = sigmoidf(ws->lo[j]);
    ms_matvec(&L->g2, ws->lo, ws->g);
    /* value residual */
    if (li == 0) {
        memcpy(ws->v_first, ws->v, sizeof(float) * (size_t)A);
    } else {
        ms_matvec(&L->v1, ws->xv, ws->lo);
        ms_matvec(&L->v2, ws->lo, ws->tmpA);
        for (int i = 0; i < A; i++)
            ws->v[i] += (ws->v_first[i] - ws->v[i]) * sigmoidf(L->v0[i] + ws->tmpA[i]);
    }
    /* kk from k before the k_a change, normalised per head */
    for (int i = 0; i < A; i++) ws->tmpA[i] = ws->k[i] * L->k_k[i];
    unit_per_head(ws->tmpA, ws->kk, H, N);
    for (int i = 0; i < A; i++) ws->k[i] = ws->k[i] * (1.0f + (ws->a[i] - 1.0f) * L->k_a[i]);

    wkv_update(S, ws->w, ws->k, ws->v, ws->r, ws->kk, ws->a, ws->tmpA, ws->y, H, N);
    group_norm(ws->y, ws->yo, L->lnx_w, L->lnx_b, H, N, 64e-5);
    for (int h = 0; h < H; h++) {
        float bonus = 0;
        for (int j = 0; j < N; j++) bonus += ws->r[h * N + j] * ws->k[h * N + j] * L->r_k[h * N + j];
        for (int j = 0; j < N; j++) ws->yo[h * N + j] += bonus * ws->v[h * N + j];
    }
    for (int i = 0; i < A; i++) ws->yo[i] *= ws->g[i];
    ms_matvec(&L->Wo, ws->yo, ws->out);
}

/* The SSE reads of heads 0..Hs-1: q (unit query from z), e_raw = S[h]·q,
 * e = GroupNorm(e_raw). */
static void sse_read(const ms_model *m, const ms_layer *L, ms_ws *ws, const float *z, const float *S)
{
    sse_read_rows(z, S, ws->q, ws->e_raw, ws->e, L->sse_ln_w, L->sse_ln_b, m->cfg.sse_heads, m->cfg.head_size);
}

/* Rows [r0, r0+rows) of W as a matrix of its own (W stored (out, in)), or,
 * for a trans-stored W, its inputs [r0, r0+rows). */
static ms_mat rows_of(const ms_mat *W, int r0, int rows)
{
    ms_mat v = *W;
    size_t esz = ms_dtype_size(W->dt);
    if (W->trans) {
        v.data = (const unsigned char *)W->data + (size_t)r0 * W->out * esz;
        v.in = rows;
    } else {
        v.data = (const unsigned char *)W->data + (size_t)r0 * W->in * esz;
        v.out = rows;
    }
    return v;
}

/* Parameter-token experts (MODEL.md 3.4): only the top_k blocks by
 * [z; e]·router_b are evaluated; the scores s of the other blocks are
 * reported as 0.  Ties go to the lower block index. */
static void experts(const ms_model *m, const ms_layer *L, ms_ws *ws, const float *z, const float *S)
{
    const ms_config *c = &m->cfg;
    const int C = c->n_embd, Hs = c->sse_heads, N = c->head_size, n = c->n_ptok, E = c->n_experts;
    const int per = n / E, D = C + Hs * N;
    if (Hs > 0) sse_read(m, L, ws, z, S);
    float *u = ws->tmpn;   /* (E) router scores; E <= n */
    for (int b = 0; b < E; b++) {
        const float *key = L->router + (size_t)b * D;
        double acc = 0;
        for (int d = 0; d < C; d++) acc += (double)z[d] * key[d];
        for (int d = 0; d < Hs * N; d++) acc += (double)ws->e[d] * key[C + d];
        u[b] = (float)acc;
    }
    memset(ws->s, 0, sizeof(float) * (size_t)n);
    memset(ws->s2, 0, sizeof(float) * (size_t)n);
    memset(ws->out, 0, sizeof(float) * (size_t)C);
    float *part = ws->part;
    for (int pick = 0; pick < c->top_k; pick++) {
        int best = -1;
        for (int b = 0; b < E; b++)
            if (u[b] != -INFINITY && (best < 0 || u[b] > u[best])) best = b;
        if (best < 0) break;
        u[best] = -INFINITY;
        int r0 = best * per;
        ms_mat kz = rows_of(&L->Kz, r0, per);
        ms_matvec(&kz, z, ws->s + r0);
        if (Hs > 0) {
            ms_mat ks = rows_of(&L->Ks, r0, per);
            ms_matvec(&ks, ws->e, ws->s2 + r0);
            for (int j = r0; j < r0 + per; j++) ws->s[j] += ws->s2[j];
        }
        for (int j = r0; j < r0 + per; j++) {
            float t = ws->s[j] > 0 ? ws->s[j] : 0;
            ws->s2[j] = t * t;
        }
        ms_mat vt = rows_of(&L->Vt, r0, per);
        ms_matvec(&vt, ws->s2 + r0, part);
        for (int i = 0; i < C; i++) ws->out[i] += part[i];
    }
}

/* The Meta-State layer (MODEL.md 3.1): reads ws->xa (normed input) and the
 * state S after this token's TimeMix; leaves its output in ws->out. */
static void meta_state(const ms_model *m, const ms_layer *L, ms_ws *ws, float *ffn_x, const float *S)
{
    const ms_config *c = &m->cfg;
    const int C = c->n_embd, Hs = c->sse_heads, n = c->n_ptok;
    float *z = ws->xr;   /* TimeMix's shifted inputs are dead by now */
    for (int i = 0; i < C; i++) {
        float d = ffn_x[i] - ws->xa[i];
        ffn_x[i] = ws->xa[i];
        z[i] = ws->xa[i] + d * L->ffn_xk[i];
    }
    if (c->top_k < c->n_experts) {   /* all blocks active = the dense layer itself */
        experts(m, L, ws, z, S);
        return;
    }
    ms_matvec(&L->Kz, z, ws->s);
    if (Hs > 0) {
        /* the Self-State Encoder: head h of S, used as an N×N weight matrix */
        sse_read(m, L, ws, z, S);
        ms_matvec(&L->Ks, ws->e, ws->tmpn);
        for (int j = 0; j < n; j++) ws->s[j] += ws->tmpn[j];
    }
    for (int j = 0; j < n; j++) {
        float t = ws->s[j] > 0 ? ws->s[j] : 0;
        ws->s2[j] = t * t;
    }
    ms_matvec(&L->V, ws->s2, ws->out);
}

int ms_step(const ms_model *m, ms_ws *ws, const float *state_in, float *state_out, int token, float *logits,
            const ms_observer *obs, ms_err *err)
{
    const ms_config *c = &m->cfg;
    if (token < 0 || token >= c->vocab) {
        ms_seterr(err, "token %d out of range (valid: 0..%d)", token, c->vocab - 1);
        return -1;
    }
    if (state_out != state_in) memcpy(state_out, state_in, sizeof(float) * ms_state_len(c));
    const int C = c->n_embd;
    ms_mat_row(&m->emb, token, ws->out);
    layer_norm(ws->out, ws->x, m->ln0_w, m->ln0_b, C, 1e-5);
    for (int li = 0; li < c->n_layer; li++) {
        const ms_layer *L = &m->layers[li];
        float *att_x = ms_state_att_x(c, state_out, li);
        float *S = ms_state_S(c, state_out, li);
        float *ffn_x = ms_state_ffn_x(c, state_out, li);
        layer_norm(ws->x, ws->xa, L->ln1_w, L->ln1_b, C, 1e-5);
        time_mix(m, L, li, ws, att_x, S);
        for (int i = 0; i < C; i++) ws->x[i] += ws->out[i];
        layer_norm(ws->x, ws->xa, L->ln2_w, L->ln2_b, C, 1e-5);
        meta_state(m, L, ws, ffn_x, S);
        for (int i = 0; i < C; i++) ws->x[i] += ws->out[i];
        if (obs && obs->fn) {
            ms_trace t = {
                .layer = li, .r = ws->r, .k = ws->k, .v = ws->v, .w = ws->w, .a = ws->a, .kk = ws->kk,
                .g = ws->g, .y = ws->y, .S = S, .z = ws->xr, .q = c->sse_heads ? ws->q : NULL,
                .e_raw = c->sse_heads ? ws->e_raw : NULL, .e = c->sse_heads ? ws->e : NULL, .s = ws->s,
                .x_out = ws->x,
            };
            obs->fn(obs->ctx, &t);
        }
    }
    if (logits) {
        layer_norm(ws->x, ws->xa, m->lnout_w, m->lnout_b, C, 1e-5);
        ms_matvec(&m->head, ws->xa, logits);
    }
    return 0;
}

void ms_set_threads(int n) { ms_kernels_set_threads(n); }
int ms_get_threads(void) { return ms_kernels_get_threads(); }
