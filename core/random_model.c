/* random_model.c: a model of any shape with random weights, built in memory.
 *
 * For benchmarks (the official 0.1B and 1.5B shapes without a download) and
 * for tests that need a shape no file has.  Weights are uniform with scales
 * that keep the dynamics non-trivial (decays spread over (0,1), unit-scale
 * logits); never zeros, so timings are honest.  Not a substitute for the
 * PyTorch reference's random models, which the golden tests use.
 */
#include "ms.h"
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


static float urand(uint64_t rng[4], float lo, float hi) { return lo + (hi - lo) * (float)ms_rng_uniform(rng); }

static const float *rvec(ms_model *m, uint64_t rng[4], int n, float lo, float hi)
{
    float *v = ms_model_own(m, sizeof(float) * (size_t)n);
    if (v)
        for (int i = 0; i < n; i++) v[i] = urand(rng, lo, hi);
    return v;
}

static int rmat(ms_model *m, uint64_t rng[4], ms_mat *W, int out, int in, int trans, ms_dtype dt, float scale)
{
    size_t cnt = (size_t)out * in;
    void *d = ms_model_own(m, cnt * ms_dtype_size(dt));
    if (!d) return -1;
    /* a cheap generator per matrix: an LCG seeded from the main RNG */
    uint32_t s = (uint32_t)(ms_rng_uniform(rng) * 4294967296.0);
    for (size_t i = 0; i < cnt; i++) {
        s = s * 1664525u + 1013904223u;
        float x = ((float)(s >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
        if (dt == MS_F32) ((float *)d)[i] = x;
        else if (dt == MS_BF16) ((uint16_t *)d)[i] = ms_f32_to_bf16(x);
        else ((uint16_t *)d)[i] = ms_f32_to_f16(x);
    }
    W->data = d;
    W->dt = dt;
    W->out = out;
    W->in = in;
    W->trans = trans;
    return 0;
}

ms_model *ms_model_random(const ms_config *cfg, ms_dtype dt, uint64_t seed, ms_err *err)
{
    ms_model *m = calloc(1, sizeof *m);
    if (!m) { ms_seterr(err, "out of memory"); return NULL; }
    m->cfg = *cfg;
    ms_config *c = &m->cfg;
    c->dim_att = c->n_head * c->head_size;
    c->wtype = dt;
    if (c->n_experts < 1) c->n_experts = 1;
    if (c->top_k < 1) c->top_k = 1;
    const int C = c->n_embd, A = c->dim_att, N = c->head_size, n = c->n_ptok, Hs = c->sse_heads;
    uint64_t rng[4];
    ms_sampler tmp;
    ms_sampler_init(&tmp, 1, 1, 0, seed);
    memcpy(rng, tmp.rng, sizeof rng);
    m->path = strdup("(random)");
    m->meta_json = strdup("{\"trained_on\":\"random\"}");
    m->weights_hash = seed;
    m->layers = calloc((size_t)c->n_layer, sizeof *m->layers);
    if (!m->path || !m->meta_json || !m->layers) goto oom;
    float sC = 1.0f / sqrtf((float)C), sA = 1.0f / sqrtf((float)A), sn = 1.0f / sqrtf((float)n);
    if (rmat(m, rng, &m->emb, c->vocab, C, 0, dt, 1.0f) || rmat(m, rng, &m->head, c->vocab, C, 0, dt, sC))
        goto oom;
    m->ln0_w = rvec(m, rng, C, 0.8f, 1.2f);
    m->ln0_b = rvec(m, rng, C, -0.1f, 0.1f);
    m->lnout_w = rvec(m, rng, C, 0.8f, 1.2f);
    m->lnout_b = rvec(m, rng, C, -0.1f, 0.1f);
    for (int i = 0; i < c->n_layer; i++) {
        ms_layer *y = &m->layers[i];
        y->ln1_w = rvec(m, rng, C, 0.8f, 1.2f); y->ln1_b = rvec(m, rng, C, -0.1f, 0.1f);
        y->ln2_w = rvec(m, rng, C, 0.8f, 1.2f); y->ln2_b = rvec(m, rng, C, -0.1f, 0.1f);
        y->x_r = rvec(m, rng, C, 0, 1); y->x_w = rvec(m, rng, C, 0, 1); y->x_k = rvec(m, rng, C, 0, 1);
        y->x_v = rvec(m, rng, C, 0, 1); y->x_a = rvec(m, rng, C, 0, 1); y->x_g = rvec(m, rng, C, 0, 1);
        y->w0 = rvec(m, rng, A, -3, 1); y->a0 = rvec(m, rng, A, -1, 1);
        y->v0 = i ? rvec(m, rng, A, -1, 1) : NULL;
        y->k_k = rvec(m, rng, A, 0.5f, 1.0f); y->k_a = rvec(m, rng, A, 0.5f, 1.0f);
        y->r_k = rvec(m, rng, A, -0.5f, 0.5f);
        y->lnx_w = rvec(m, rng, A, 0.8f, 1.2f); y->lnx_b = rvec(m, rng, A, -0.1f, 0.1f);
        y->ffn_xk = rvec(m, rng, C, 0, 1);
        if (rmat(m, rng, &y->w1, c->d_w, C, 1, dt, sC) || rmat(m, rng, &y->w2, A, c->d_w, 1, dt, 0.1f) ||
            rmat(m, rng, &y->a1, c->d_a, C, 1, dt, sC) || rmat(m, rng, &y->a2, A, c->d_a, 1, dt, 0.1f) ||
            rmat(m, rng, &y->g1, c->d_g, C, 1, dt, sC) || rmat(m, rng, &y->g2, A, c->d_g, 1, dt, 0.1f) ||
            (i && (rmat(m, rng, &y->v1, c->d_v, C, 1, dt, sC) || rmat(m, rng, &y->v2, A, c->d_v, 1, dt, 0.1f))) ||
            rmat(m, rng, &y->Wr, A, C, 0, dt, sC) || rmat(m, rng, &y->Wk, A, C, 0, dt, sC) ||
            rmat(m, rng, &y->Wv, A, C, 0, dt, sC) || rmat(m, rng, &y->Wo, C, A, 0, dt, sA) ||
            rmat(m, rng, &y->Kz, n, C, 0, dt, sC) || rmat(m, rng, &y->V, C, n, 0, dt, sn) ||
            (Hs && rmat(m, rng, &y->Ks, n, Hs * N, 0, dt, 1.0f / sqrtf((float)Hs * N))))
            goto oom;
        if (Hs) {
            y->sse_ln_w = rvec(m, rng, Hs * N, 0.8f, 1.2f);
            y->sse_ln_b = rvec(m, rng, Hs * N, -0.1f, 0.1f);
        }
        if (!y->ln1_w || !y->ln1_b || !y->ln2_w || !y->ln2_b || !y->x_r || !y->x_w || !y->x_k || !y->x_v ||
            !y->x_a || !y->x_g || !y->w0 || !y->a0 || (i && !y->v0) || !y->k_k || !y->k_a || !y->r_k ||
            !y->lnx_w || !y->lnx_b || !y->ffn_xk || (Hs && (!y->sse_ln_w || !y->sse_ln_b)))
            goto oom;
    }
    if (!m->ln0_w || !m->ln0_b || !m->lnout_w || !m->lnout_b) goto oom;
    return m;
oom:
    ms_seterr(err, "out of memory building a random model");
    ms_model_free(m);
    return NULL;
}
