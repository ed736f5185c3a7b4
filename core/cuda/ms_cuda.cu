/* ms_cuda.cu: the CUDA backend's public functions (ms_cuda.h): the device
 * model, the workspace, device states, and the step that strings the kernels
 * of msc_kernels.cu and msc_gemv.cu together in the order of core/step.c.
 *
 * One step, per layer l (x_in = layer l-1's output, or the embedding):
 *   tmix_in   LN(x_in; ln1), time shift (att_x), the six mixed inputs
 *   gemv      r k v and the LoRA down-projections w1 a1 g1 (v1), one launch
 *   wkv       LoRA up-projections, decay, kk, state update and read, ln_x,
 *             bonus, gate: yo (a block per head)
 *   gemv      x_mid = x_in + Wo yo
 *   sse       LN(x_mid; ln2), channel shift (ffn_x), z, the SSE reads q, e
 *   gemv      s = Kz z + Ks e   (+ the router for parameter-token experts)
 *   gemv      x_out = x_mid + V relu(s)^2
 * then LN(ln_out) and the head.  The intermediates are kept per layer and per
 * batch element in the workspace (the observer's trace, and no buffer is
 * reused within a step), so a whole step can be captured once as a graph and
 * replayed: the only per-step inputs (tokens, state pointers) are read from a
 * small device table that a kernel fills from its arguments before the graph
 * runs.
 */
#include "msc_impl.cuh"

#include <stdio.h>
#include <stdlib.h>

#include "ms_cuda.h"

extern "C" int msc_kernel_image_ok(ms_err *err);

/* ---- the device model ------------------------------------------------------ */

struct dlayer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *mix[6];   /* x_r x_w x_k x_v x_a x_g */
    const float *w0, *a0, *v0, *k_k, *k_a, *r_k, *lnx_w, *lnx_b, *ffn_xk, *sse_w, *sse_b, *router;
    msc_mat w1, w2, a1, a2, v1, v2, g1, g2, Wr, Wk, Wv, Wo, Kz, V, Ks;
};

struct ms_cuda_model {
    ms_config cfg;
    const float *ln0_w, *ln0_b, *lnout_w, *lnout_b;
    msc_mat emb, head;
    dlayer *L;
    void **allocs;
    int n_allocs, cap_allocs;
    size_t bytes;
    int sparse;    /* experts: top_k < n_experts */
    int has_f16;   /* some matrix is F16 (auto never sends those to cuBLAS) */
};

static void *dm_alloc(ms_cuda_model *dm, size_t bytes, ms_err *err)
{
    if (dm->n_allocs == dm->cap_allocs) {
        int nc = dm->cap_allocs ? 2 * dm->cap_allocs : 256;
        void **a = (void **)realloc(dm->allocs, sizeof(void *) * (size_t)nc);
        if (!a) {
            ms_seterr(err, "out of memory");
            return NULL;
        }
        dm->allocs = a;
        dm->cap_allocs = nc;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        ms_seterr(err, "cuda: allocating %zu bytes of weights on the device: %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    dm->allocs[dm->n_allocs++] = p;
    dm->bytes += bytes;
    return p;
}

static int up_vec(ms_cuda_model *dm, const float *h, size_t n, const float **out, const char *what, int layer,
                  ms_err *err)
{
    *out = NULL;
    if (!h) {
        ms_seterr(err, "cuda upload: layer %d: tensor %s missing", layer, what);
        return -1;
    }
    void *d = dm_alloc(dm, n * sizeof(float), err);
    if (!d) return -1;
    MSC_CK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    *out = (const float *)d;
    return 0;
}

/* A matrix in (out, in) row-major, its dtype kept; trans-stored LoRA
 * matrices are transposed here, once.  A matrix with no data stays empty. */
static int up_mat(ms_cuda_model *dm, const ms_mat *W, msc_mat *out, ms_err *err)
{
    memset(out, 0, sizeof *out);
    if (!W->data) return 0;
    const size_t esz = ms_dtype_size(W->dt), n = (size_t)W->out * W->in, bytes = n * esz;
    void *d = dm_alloc(dm, bytes, err);
    if (!d) return -1;
    if (!W->trans) {
        MSC_CK(cudaMemcpy(d, W->data, bytes, cudaMemcpyHostToDevice));
    } else {
        unsigned char *t = (unsigned char *)malloc(bytes ? bytes : 1);
        if (!t) {
            ms_seterr(err, "out of memory transposing a %d x %d matrix", W->out, W->in);
            return -1;
        }
        const unsigned char *s = (const unsigned char *)W->data;
        for (int r = 0; r < W->out; r++)
            for (int c = 0; c < W->in; c++)
                memcpy(t + ((size_t)r * W->in + c) * esz, s + ((size_t)c * W->out + r) * esz, esz);
        cudaError_t e = cudaMemcpy(d, t, bytes, cudaMemcpyHostToDevice);
        free(t);
        MSC_CK(e);
    }
    out->w = d;
    out->dt = (int)W->dt;
    out->out = W->out;
    out->in = W->in;
    if (W->dt == MS_F16) dm->has_f16 = 1;
    return 0;
}

extern "C" int ms_cuda_available(ms_err *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        ms_seterr(err, "no CUDA device: %s", cudaGetErrorString(e));
        cudaGetLastError();
        return 0;
    }
    if (n < 1) {
        ms_seterr(err, "no CUDA device: the driver sees none");
        return 0;
    }
    cudaDeviceProp p;
    if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess) {
        ms_seterr(err, "no CUDA device: %s", cudaGetErrorString(e));
        return 0;
    }
    ms_err why;
    if (!msc_kernel_image_ok(&why)) {
        ms_seterr(err, "%s is sm_%d%d; this build has no code for it (%s)", p.name, p.major, p.minor, why.msg);
        return 0;
    }
    return 1;
}

extern "C" int ms_cuda_device_info(char *buf, size_t n, ms_err *err) { return msc_device_info(buf, n, err); }

extern "C" void ms_cuda_model_free(ms_cuda_model *dm)
{
    if (!dm) return;
    cudaDeviceSynchronize();
    for (int i = 0; i < dm->n_allocs; i++) cudaFree(dm->allocs[i]);
    free(dm->allocs);
    free(dm->L);
    free(dm);
}

extern "C" ms_cuda_model *ms_cuda_model_upload(const ms_model *m, ms_err *err)
{
    const ms_config *c = &m->cfg;
    if (!ms_cuda_available(err)) return NULL;
    const int C = c->n_embd, A = c->dim_att, Hs = c->sse_heads, N = c->head_size;
    if (A != c->n_head * N || (size_t)Hs * N > (size_t)C || c->n_layer < 1) {
        ms_seterr(err, "cuda upload: inconsistent shape (L %d, C %d, H %d, N %d, A %d, Hs %d)", c->n_layer, C,
                  c->n_head, N, A, Hs);
        return NULL;
    }
    ms_cuda_model *dm = (ms_cuda_model *)calloc(1, sizeof *dm);
    if (!dm || !(dm->L = (dlayer *)calloc((size_t)c->n_layer, sizeof(dlayer)))) {
        free(dm);
        ms_seterr(err, "out of memory");
        return NULL;
    }
    dm->cfg = *c;
    dm->sparse = c->n_experts > 1 && c->top_k < c->n_experts;
#define V_(dst, src, n, what, li) \
    if (up_vec(dm, (src), (n), &(dst), (what), (li), err)) goto fail
#define M_(dst, src) \
    if (up_mat(dm, &(src), &(dst), err)) goto fail
    V_(dm->ln0_w, m->ln0_w, C, "blocks.0.ln0.weight", 0);
    V_(dm->ln0_b, m->ln0_b, C, "blocks.0.ln0.bias", 0);
    V_(dm->lnout_w, m->lnout_w, C, "ln_out.weight", -1);
    V_(dm->lnout_b, m->lnout_b, C, "ln_out.bias", -1);
    M_(dm->emb, m->emb);
    M_(dm->head, m->head);
    for (int i = 0; i < c->n_layer; i++) {
        const ms_layer *y = &m->layers[i];
        dlayer *d = &dm->L[i];
        V_(d->ln1_w, y->ln1_w, C, "ln1.weight", i);
        V_(d->ln1_b, y->ln1_b, C, "ln1.bias", i);
        V_(d->ln2_w, y->ln2_w, C, "ln2.weight", i);
        V_(d->ln2_b, y->ln2_b, C, "ln2.bias", i);
        V_(d->mix[0], y->x_r, C, "att.x_r", i);
        V_(d->mix[1], y->x_w, C, "att.x_w", i);
        V_(d->mix[2], y->x_k, C, "att.x_k", i);
        V_(d->mix[3], y->x_v, C, "att.x_v", i);
        V_(d->mix[4], y->x_a, C, "att.x_a", i);
        V_(d->mix[5], y->x_g, C, "att.x_g", i);
        V_(d->w0, y->w0, A, "att.w0", i);
        V_(d->a0, y->a0, A, "att.a0", i);
        if (i > 0) V_(d->v0, y->v0, A, "att.v0", i);
        V_(d->k_k, y->k_k, A, "att.k_k", i);
        V_(d->k_a, y->k_a, A, "att.k_a", i);
        V_(d->r_k, y->r_k, A, "att.r_k", i);
        V_(d->lnx_w, y->lnx_w, A, "att.ln_x.weight", i);
        V_(d->lnx_b, y->lnx_b, A, "att.ln_x.bias", i);
        V_(d->ffn_xk, y->ffn_xk, C, "ffn.x_k", i);
        M_(d->w1, y->w1);
        M_(d->w2, y->w2);
        M_(d->a1, y->a1);
        M_(d->a2, y->a2);
        M_(d->g1, y->g1);
        M_(d->g2, y->g2);
        if (i > 0) {
            M_(d->v1, y->v1);
            M_(d->v2, y->v2);
        }
        M_(d->Wr, y->Wr);
        M_(d->Wk, y->Wk);
        M_(d->Wv, y->Wv);
        M_(d->Wo, y->Wo);
        M_(d->Kz, y->Kz);
        M_(d->V, y->V);
        if (!d->w1.w || !d->w2.w || !d->a1.w || !d->a2.w || !d->g1.w || !d->g2.w || !d->Wr.w || !d->Wk.w ||
            !d->Wv.w || !d->Wo.w || !d->Kz.w || !d->V.w || (i > 0 && (!d->v1.w || !d->v2.w))) {
            ms_seterr(err, "cuda upload: layer %d: a weight matrix has no data", i);
            goto fail;
        }
        if (d->w2.in != c->d_w || d->a2.in != c->d_a || d->g2.in != c->d_g || (i > 0 && d->v2.in != c->d_v) ||
            d->Wr.in != C || d->Wo.in != A || d->Kz.out != c->n_ptok || d->V.in != c->n_ptok) {
            ms_seterr(err, "cuda upload: layer %d: matrix shapes disagree with the config", i);
            goto fail;
        }
        if (Hs > 0) {
            M_(d->Ks, y->Ks);
            V_(d->sse_w, y->sse_ln_w, (size_t)Hs * N, "ffn.sse_ln.weight", i);
            V_(d->sse_b, y->sse_ln_b, (size_t)Hs * N, "ffn.sse_ln.bias", i);
            if (!d->Ks.w || d->Ks.in != Hs * N) {
                ms_seterr(err, "cuda upload: layer %d: ffn.sse_key.weight missing or not (n, %d)", i, Hs * N);
                goto fail;
            }
        }
        if (dm->sparse) {
            if (!y->router) {
                ms_seterr(err, "cuda upload: layer %d: expert router keys not built (ms_layer_build_experts)", i);
                goto fail;
            }
            V_(d->router, y->router, (size_t)c->n_experts * (C + Hs * N), "expert router", i);
        }
    }
#undef V_
#undef M_
    {   /* the copies ran on the legacy stream; steps run on non-blocking streams */
        cudaError_t e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            ms_seterr(err, "cuda upload: %s", cudaGetErrorString(e));
            goto fail;
        }
    }
    return dm;
fail:
    ms_cuda_model_free(dm);
    return NULL;
}

extern "C" const ms_config *ms_cuda_model_config(const ms_cuda_model *dm) { return &dm->cfg; }
extern "C" size_t ms_cuda_model_bytes(const ms_cuda_model *dm) { return dm->bytes; }

/* ---- the workspace ------------------------------------------------------------ */

/* A per-layer, per-batch buffer: element (l, b, i) at p[(l*Bmax + b)*ld + i]. */
struct slot {
    float *p;
    int ld;
};

enum { ST_IN = 0, ST_WO = 1, ST_S = 2, ST_V = 3, N_ST = 4 };
#define MAX_GRAPHS 8

struct graph_ent {
    int B, head, pdl;
    cudaGraphExec_t exec;
};

struct ms_cuda_ws {
    const ms_cuda_model *dm;
    int Bmax;
    msc_ctx *ctx;
    slot xr, xw, xk, xv, xx, xg, xmid, z, xout;   /* ld C */
    slot r, k, v, w, a, g, kk, y, yo;             /* ld A */
    slot lw, la, lg, lv, q, e_raw, e, s;
    float *x0, *xo, *logits;                      /* (Bmax, C), (Bmax, C), (Bmax, vocab) */
    int ldC, ldV;
    int *dtok;
    float **dst;
    msc_job *hjobs, *djobs;
    int st0[N_ST], stn[N_ST];   /* per layer: first job (relative) and count of each stage */
    int per_layer, head_job;
    graph_ent graphs[MAX_GRAPHS];
    int n_graphs, next_graph;
    float *pinned;
    int last_head_B;            /* batch of the last step that computed logits, 0 = none */
    int opt_graph, opt_pdl, opt_gemm, opt_min_b;
    void **allocs;
    int n_allocs;
    /* ms_cuda_profile_step: an event after each launch of a direct step */
    cudaEvent_t *prof_ev;
    int *prof_kind;
    int prof_n, prof_cap;
};

/* record an event after the launch just issued (profiling only) */
static void prof_mark(ms_cuda_ws *ws, int kind)
{
    if (!ws->prof_ev || ws->prof_n >= ws->prof_cap) return;
    cudaEventRecord(ws->prof_ev[ws->prof_n], ws->ctx->stream);
    ws->prof_kind[ws->prof_n++] = kind;
}

static int pad64(int n) { return (n + 63) & ~63; }

static float *at(const slot &s, const ms_cuda_ws *ws, int l) { return s.p + (size_t)l * ws->Bmax * s.ld; }

static float *ws_alloc(ms_cuda_ws *ws, size_t floats, ms_err *err)
{
    void *p = msc_alloc(floats * sizeof(float), err);
    if (p) ws->allocs[ws->n_allocs++] = p;
    return (float *)p;
}

static msc_job job1(const msc_mat &M, const float *x, int ldx, float *y, int ldy)
{
    msc_job J;
    memset(&J, 0, sizeof J);
    J.W[0] = M.w;
    J.dt[0] = M.dt;
    J.in[0] = M.in;
    J.x[0] = x;
    J.ldx[0] = ldx;
    J.act[0] = MSC_ACT_NONE;
    J.nseg = 1;
    J.out = M.out;
    J.y = y;
    J.ldy = ldy;
    return J;
}

extern "C" void ms_cuda_ws_free(ms_cuda_ws *ws)
{
    if (!ws) return;
    if (ws->ctx) cudaStreamSynchronize(ws->ctx->stream);
    for (int i = 0; i < ws->n_graphs; i++) cudaGraphExecDestroy(ws->graphs[i].exec);
    for (int i = 0; i < ws->n_allocs; i++) msc_free(ws->allocs[i]);
    if (ws->pinned) cudaFreeHost(ws->pinned);
    msc_ctx_free(ws->ctx);
    free(ws->hjobs);
    free(ws->allocs);
    free(ws);
}

extern "C" ms_cuda_ws *ms_cuda_ws_new(const ms_cuda_model *dm, int max_batch, ms_err *err)
{
    const ms_config *c = &dm->cfg;
    if (max_batch < 1 || max_batch > 65535) {
        ms_seterr(err, "cuda: workspace batch %d out of range (1..65535)", max_batch);
        return NULL;
    }
    const int L = c->n_layer, C = c->n_embd, A = c->dim_att, Hs = c->sse_heads, N = c->head_size;
    ms_cuda_ws *ws = (ms_cuda_ws *)calloc(1, sizeof *ws);
    if (!ws || !(ws->allocs = (void **)calloc(64, sizeof(void *)))) {
        free(ws);
        ms_seterr(err, "out of memory");
        return NULL;
    }
    ws->dm = dm;
    ws->Bmax = max_batch;
    ws->opt_graph = 1;
    ws->opt_pdl = 0;
    ws->opt_gemm = 0;
    ws->opt_min_b = 9;
    const size_t LB = (size_t)L * max_batch;
    int maxin = C > A ? C : A;
    if (c->n_ptok > maxin) maxin = c->n_ptok;
    if (Hs * N > maxin) maxin = Hs * N;
    ws->ctx = msc_ctx_new((size_t)((maxin + 7) & ~7) * max_batch * sizeof(float), err);
    if (!ws->ctx) goto fail;
    ws->ldC = pad64(C);
    ws->ldV = pad64(c->vocab);
    {
        slot *cs[] = {&ws->xr, &ws->xw, &ws->xk, &ws->xv, &ws->xx, &ws->xg, &ws->xmid, &ws->z, &ws->xout};
        for (slot *s : cs) {
            s->ld = ws->ldC;
            if (!(s->p = ws_alloc(ws, LB * s->ld, err))) goto fail;
        }
        slot *as[] = {&ws->r, &ws->k, &ws->v, &ws->w, &ws->a, &ws->g, &ws->kk, &ws->y, &ws->yo};
        for (slot *s : as) {
            s->ld = pad64(A);
            if (!(s->p = ws_alloc(ws, LB * s->ld, err))) goto fail;
        }
        struct { slot *s; int n; } os[] = {{&ws->lw, c->d_w}, {&ws->la, c->d_a}, {&ws->lg, c->d_g},
                                          {&ws->lv, c->d_v},  {&ws->q, Hs * N},  {&ws->e_raw, Hs * N},
                                          {&ws->e, Hs * N},   {&ws->s, c->n_ptok}};
        for (auto &o : os) {
            o.s->ld = pad64(o.n > 0 ? o.n : 1);
            if (!(o.s->p = ws_alloc(ws, LB * o.s->ld, err))) goto fail;
        }
    }
    if (!(ws->x0 = ws_alloc(ws, (size_t)max_batch * ws->ldC, err)) ||
        !(ws->xo = ws_alloc(ws, (size_t)max_batch * ws->ldC, err)) ||
        !(ws->logits = ws_alloc(ws, (size_t)max_batch * ws->ldV, err)) ||
        !(ws->dtok = (int *)ws_alloc(ws, (size_t)max_batch, err)) ||
        !(ws->dst = (float **)ws_alloc(ws, 2 * (size_t)max_batch, err)))
        goto fail;

    /* the job tables of every layer's four products, and the head */
    ws->st0[ST_IN] = 0;
    ws->stn[ST_IN] = 7;
    ws->st0[ST_WO] = 7;
    ws->st0[ST_S] = 8;
    ws->st0[ST_V] = 9;
    ws->stn[ST_WO] = ws->stn[ST_S] = ws->stn[ST_V] = 1;
    ws->per_layer = 10;
    ws->head_job = L * ws->per_layer;
    if (!(ws->hjobs = (msc_job *)calloc((size_t)ws->head_job + 1, sizeof(msc_job)))) {
        ms_seterr(err, "out of memory");
        goto fail;
    }
    for (int l = 0; l < L; l++) {
        const dlayer *d = &dm->L[l];
        msc_job *J = ws->hjobs + (size_t)l * ws->per_layer;
        const int lC = ws->ldC, lA = ws->r.ld;
        const float *x_in = l ? at(ws->xout, ws, l - 1) : ws->x0;
        int n = 0;
        J[n++] = job1(d->Wr, at(ws->xr, ws, l), lC, at(ws->r, ws, l), lA);
        J[n++] = job1(d->Wk, at(ws->xk, ws, l), lC, at(ws->k, ws, l), lA);
        J[n++] = job1(d->Wv, at(ws->xv, ws, l), lC, at(ws->v, ws, l), lA);
        J[n++] = job1(d->w1, at(ws->xw, ws, l), lC, at(ws->lw, ws, l), ws->lw.ld);
        J[n++] = job1(d->a1, at(ws->xx, ws, l), lC, at(ws->la, ws, l), ws->la.ld);
        J[n++] = job1(d->g1, at(ws->xg, ws, l), lC, at(ws->lg, ws, l), ws->lg.ld);
        if (l > 0) J[n++] = job1(d->v1, at(ws->xv, ws, l), lC, at(ws->lv, ws, l), ws->lv.ld);
        else memset(&J[n], 0, sizeof J[n]);   /* layer 0 has no v residual: 6 jobs */
        J[7] = job1(d->Wo, at(ws->yo, ws, l), lA, at(ws->xmid, ws, l), lC);
        J[7].base = x_in;
        J[7].ldbase = lC;
        J[8] = job1(d->Kz, at(ws->z, ws, l), lC, at(ws->s, ws, l), ws->s.ld);
        if (Hs > 0) {
            J[8].nseg = 2;
            J[8].W[1] = d->Ks.w;
            J[8].dt[1] = d->Ks.dt;
            J[8].in[1] = d->Ks.in;
            J[8].x[1] = at(ws->e, ws, l);
            J[8].ldx[1] = ws->e.ld;
            J[8].act[1] = MSC_ACT_NONE;
        }
        J[9] = job1(d->V, at(ws->s, ws, l), ws->s.ld, at(ws->xout, ws, l), lC);
        J[9].act[0] = MSC_ACT_RELU2;
        J[9].base = at(ws->xmid, ws, l);
        J[9].ldbase = lC;
        /* row offsets within each launch */
        int tot = 0;
        for (int i = 0; i < (l > 0 ? 7 : 6); i++) {
            J[i].row0 = tot;
            tot += J[i].out;
        }
        J[7].row0 = J[8].row0 = J[9].row0 = 0;
    }
    ws->hjobs[ws->head_job] = job1(dm->head, ws->xo, ws->ldC, ws->logits, ws->ldV);
    {
        size_t bytes = sizeof(msc_job) * ((size_t)ws->head_job + 1);
        if (!(ws->djobs = (msc_job *)msc_alloc(bytes, err))) goto fail;
        ws->allocs[ws->n_allocs++] = ws->djobs;
        if (msc_upload(ws->djobs, ws->hjobs, bytes, err)) goto fail;
    }
    return ws;
fail:
    ms_cuda_ws_free(ws);
    return NULL;
}

extern "C" int ms_cuda_ws_set(ms_cuda_ws *ws, int opt, int value)
{
    int old;
    switch (opt) {
    case MS_CUDA_OPT_GRAPH: old = ws->opt_graph; ws->opt_graph = value != 0; return old;
    case MS_CUDA_OPT_PDL: old = ws->opt_pdl; ws->opt_pdl = value != 0; return old;
    case MS_CUDA_OPT_GEMM: old = ws->opt_gemm; ws->opt_gemm = value < 0 || value > 2 ? 0 : value; return old;
    case MS_CUDA_OPT_CUBLAS_MIN_B: old = ws->opt_min_b; ws->opt_min_b = value < 1 ? 1 : value; return old;
    }
    return -1;
}

extern "C" int ms_cuda_ws_path(const ms_cuda_ws *ws, int B)
{
    if (ws->opt_gemm == 1) return MSC_PATH_OWN;
    if (ws->opt_gemm == 2) return MSC_PATH_CUBLAS;
    return B >= ws->opt_min_b && !ws->dm->has_f16 ? MSC_PATH_CUBLAS : MSC_PATH_OWN;
}

/* ---- the step ------------------------------------------------------------------ */

static int stage(ms_cuda_ws *ws, int l, int st, int B, int path, ms_err *err)
{
    int j0 = l * ws->per_layer + ws->st0[st];
    int n = ws->stn[st];
    if (st == ST_IN && l == 0) n = 6;
    return msc_gemv(ws->ctx, ws->hjobs + j0, ws->djobs + j0, n, B, path, err);
}

/* Issue every kernel of one step for B states (inputs already set). */
static int record_step(ms_cuda_ws *ws, int B, int head, int path, ms_err *err)
{
    const ms_cuda_model *dm = ws->dm;
    const ms_config *c = &dm->cfg;
    const int L = c->n_layer, C = c->n_embd, H = c->n_head, N = c->head_size, Hs = c->sse_heads;
    const size_t LL = ms_state_layer_len(c);
    msc_ctx *x = ws->ctx;
    msc_embed_args ea = {dm->emb, ws->dtok, dm->ln0_w, dm->ln0_b, ws->x0, ws->ldC, C};
    if (msc_embed(x, &ea, B, err)) return -1;
    prof_mark(ws, MS_CUDA_PROF_EMBED);
    for (int l = 0; l < L; l++) {
        const dlayer *d = &dm->L[l];
        const float *x_in = l ? at(ws->xout, ws, l - 1) : ws->x0;
        msc_tmix_args ta;
        memset(&ta, 0, sizeof ta);
        ta.x = x_in;
        ta.ldx = ws->ldC;
        ta.ln_w = d->ln1_w;
        ta.ln_b = d->ln1_b;
        ta.states = ws->dst;
        ta.att_off = (size_t)l * LL;
        for (int m = 0; m < 6; m++) ta.mix[m] = d->mix[m];
        const slot *outs[6] = {&ws->xr, &ws->xw, &ws->xk, &ws->xv, &ws->xx, &ws->xg};
        for (int m = 0; m < 6; m++) ta.out[m] = at(*outs[m], ws, l);
        ta.ldo = ws->ldC;
        ta.C = C;
        if (msc_tmix_in(x, &ta, B, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_LN1);
        if (stage(ws, l, ST_IN, B, path, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_GEMV_IN);

        msc_wkv_args wa;
        memset(&wa, 0, sizeof wa);
        wa.H = H;
        wa.N = N;
        wa.first = l == 0;
        wa.d_w = c->d_w;
        wa.d_a = c->d_a;
        wa.d_g = c->d_g;
        wa.d_v = c->d_v;
        wa.states = ws->dst;
        wa.S_off = (size_t)l * LL + C;
        wa.r = at(ws->r, ws, l);
        wa.v_first = at(ws->v, ws, 0);
        wa.k = at(ws->k, ws, l);
        wa.v = at(ws->v, ws, l);
        wa.w = at(ws->w, ws, l);
        wa.a = at(ws->a, ws, l);
        wa.g = at(ws->g, ws, l);
        wa.kk = at(ws->kk, ws, l);
        wa.y = at(ws->y, ws, l);
        wa.yo = at(ws->yo, ws, l);
        wa.ldA = ws->r.ld;
        wa.lw = at(ws->lw, ws, l);
        wa.la = at(ws->la, ws, l);
        wa.lg = at(ws->lg, ws, l);
        wa.lv = at(ws->lv, ws, l);
        wa.ld_w = ws->lw.ld;
        wa.ld_a = ws->la.ld;
        wa.ld_g = ws->lg.ld;
        wa.ld_v = ws->lv.ld;
        wa.w2 = d->w2;
        wa.a2 = d->a2;
        wa.g2 = d->g2;
        wa.v2 = d->v2;
        wa.w0 = d->w0;
        wa.a0 = d->a0;
        wa.v0 = d->v0;
        wa.k_k = d->k_k;
        wa.k_a = d->k_a;
        wa.r_k = d->r_k;
        wa.lnx_w = d->lnx_w;
        wa.lnx_b = d->lnx_b;
        if (msc_wkv(x, &wa, B, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_WKV);
        if (stage(ws, l, ST_WO, B, path, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_GEMV_WO);

        msc_sse_args sa;
        memset(&sa, 0, sizeof sa);
        sa.x = at(ws->xmid, ws, l);
        sa.ldx = ws->ldC;
        sa.ln_w = d->ln2_w;
        sa.ln_b = d->ln2_b;
        sa.ffn_xk = d->ffn_xk;
        sa.states = ws->dst;
        sa.ffn_off = (size_t)l * LL + C + (size_t)H * N * N;
        sa.S_off = (size_t)l * LL + C;
        sa.z = at(ws->z, ws, l);
        sa.ldz = ws->ldC;
        sa.C = C;
        sa.N = N;
        sa.Hs = Hs;
        sa.sse_w = d->sse_w;
        sa.sse_b = d->sse_b;
        sa.q = at(ws->q, ws, l);
        sa.e_raw = at(ws->e_raw, ws, l);
        sa.e = at(ws->e, ws, l);
        sa.lde = ws->e.ld;
        if (msc_sse(x, &sa, B, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_SSE);
        if (stage(ws, l, ST_S, B, path, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_GEMV_S);
        if (dm->sparse) {
            msc_router_args ra = {at(ws->z, ws, l), ws->ldC, Hs ? at(ws->e, ws, l) : NULL, ws->e.ld, d->router,
                                  C, Hs * N, c->n_experts, c->top_k, c->n_ptok, at(ws->s, ws, l), ws->s.ld};
            if (msc_router(x, &ra, B, err)) return -1;
            prof_mark(ws, MS_CUDA_PROF_ROUTER);
        }
        if (stage(ws, l, ST_V, B, path, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_GEMV_V);
    }
    if (head) {
        msc_ln_args la = {at(ws->xout, ws, L - 1), ws->ldC, dm->lnout_w, dm->lnout_b, ws->xo, ws->ldC, C};
        if (msc_ln(x, &la, B, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_LNOUT);
        if (msc_gemv(x, ws->hjobs + ws->head_job, ws->djobs + ws->head_job, 1, B, path, err)) return -1;
        prof_mark(ws, MS_CUDA_PROF_HEAD);
    }
    return 0;
}

static cudaGraphExec_t get_graph(ms_cuda_ws *ws, int B, int head, ms_err *err)
{
    for (int i = 0; i < ws->n_graphs; i++) {
        graph_ent *g = &ws->graphs[i];
        if (g->B == B && g->head == head && g->pdl == ws->opt_pdl) return g->exec;
    }
    cudaStream_t st = ws->ctx->stream;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaError_t e = cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        ms_seterr(err, "cuda: begin graph capture: %s", cudaGetErrorString(e));
        return NULL;
    }
    int rc = record_step(ws, B, head, MSC_PATH_OWN, err);
    e = cudaStreamEndCapture(st, &graph);
    if (rc == 0 && e != cudaSuccess) {
        ms_seterr(err, "cuda: end graph capture: %s", cudaGetErrorString(e));
        rc = -1;
    }
    if (rc == 0 && (e = cudaGraphInstantiate(&exec, graph, 0)) != cudaSuccess) {
        ms_seterr(err, "cuda: graph instantiate (batch %d, pdl %d): %s", B, ws->opt_pdl, cudaGetErrorString(e));
        rc = -1;
    }
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    if (rc) return NULL;
    graph_ent *g;
    if (ws->n_graphs < MAX_GRAPHS) {
        g = &ws->graphs[ws->n_graphs++];
    } else {   /* replace in turn */
        g = &ws->graphs[ws->next_graph];
        ws->next_graph = (ws->next_graph + 1) % MAX_GRAPHS;
        cudaGraphExecDestroy(g->exec);
    }
    g->B = B;
    g->head = head;
    g->pdl = ws->opt_pdl;
    g->exec = exec;
    return exec;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (float *const *)a, y = (uintptr_t) * (float *const *)b;
    return (x > y) - (x < y);
}

/* Check the arguments, set the inputs, issue the step (graph or direct). */
static int issue(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int head, ms_err *err)
{
    const ms_config *c = &ws->dm->cfg;
    if (B < 1 || B > ws->Bmax) {
        ms_seterr(err, "cuda: batch %d out of range (1..%d, the workspace's)", B, ws->Bmax);
        return -1;
    }
    for (int b = 0; b < B; b++) {
        if (tokens[b] < 0 || tokens[b] >= c->vocab) {
            ms_seterr(err, "token %d out of range (valid: 0..%d)", tokens[b], c->vocab - 1);
            return -1;
        }
        if (!states[b]) {
            ms_seterr(err, "cuda: state %d of the batch is NULL", b);
            return -1;
        }
    }
    if (B > 1) {   /* two blocks writing one state would race */
        float **sorted = (float **)malloc(sizeof(float *) * (size_t)B);
        if (!sorted) {
            ms_seterr(err, "out of memory");
            return -1;
        }
        memcpy(sorted, states, sizeof(float *) * (size_t)B);
        qsort(sorted, (size_t)B, sizeof(float *), cmp_ptr);
        int dup = 0;
        for (int b = 1; b < B; b++) dup |= sorted[b] == sorted[b - 1];
        free(sorted);
        if (dup) {
            ms_seterr(err, "cuda: the same state appears twice in a batch of %d", B);
            return -1;
        }
    }
    msc_ctx_set_pdl(ws->ctx, ws->opt_pdl);
    if (msc_set_inputs(ws->ctx, ws->dtok, ws->dst, tokens, states, B, err)) return -1;
    const int path = ms_cuda_ws_path(ws, B);
    if (path == MSC_PATH_OWN && ws->opt_graph) {
        cudaGraphExec_t g = get_graph(ws, B, head, err);
        if (!g) return -1;
        MSC_CK(cudaGraphLaunch(g, ws->ctx->stream));
    } else {
        if (record_step(ws, B, head, path, err)) return -1;
    }
    if (head) ws->last_head_B = B;
    return 0;
}

extern "C" int ms_cuda_logits(ms_cuda_ws *ws, int b0, int nb, float *host, ms_err *err)
{
    const int V = ws->dm->cfg.vocab;
    if (b0 < 0 || nb < 1 || b0 + nb > ws->last_head_B) {
        ms_seterr(err, "cuda: logits of batch elements %d..%d asked, the last step computed %d", b0, b0 + nb - 1,
                  ws->last_head_B);
        return -1;
    }
    if (!ws->pinned) MSC_CK(cudaMallocHost((void **)&ws->pinned, sizeof(float) * (size_t)ws->Bmax * V));
    MSC_CK(cudaMemcpy2DAsync(ws->pinned, sizeof(float) * (size_t)V, ws->logits + (size_t)b0 * ws->ldV,
                             sizeof(float) * (size_t)ws->ldV, sizeof(float) * (size_t)V, (size_t)nb,
                             cudaMemcpyDeviceToHost, ws->ctx->stream));
    if (msc_ctx_sync(ws->ctx, err)) return -1;
    memcpy(host, ws->pinned, sizeof(float) * (size_t)nb * V);
    return 0;
}

extern "C" int ms_cuda_step(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int flags, float *logits,
                            ms_err *err)
{
    const int head = (flags & MS_CUDA_LOGITS) || logits;
    if (issue(ws, states, B, tokens, head, err)) return -1;
    if (logits) return ms_cuda_logits(ws, 0, B, logits, err);
    return 0;
}

extern "C" int ms_cuda_sync(ms_cuda_ws *ws, ms_err *err) { return msc_ctx_sync(ws->ctx, err); }

extern "C" int ms_cuda_trace_fetch(ms_cuda_ws *ws, int layer, int b, const ms_cuda_trace *dst, ms_err *err)
{
    const ms_config *c = &ws->dm->cfg;
    if (layer < 0 || layer >= c->n_layer || b < 0 || b >= ws->Bmax) {
        ms_seterr(err, "cuda: trace of layer %d, batch element %d (valid: 0..%d, 0..%d)", layer, b, c->n_layer - 1,
                  ws->Bmax - 1);
        return -1;
    }
    const int A = c->dim_att, C = c->n_embd, E = c->sse_heads * c->head_size;
    struct { float *h; const slot *s; int n; } f[] = {
        {dst->r, &ws->r, A},  {dst->k, &ws->k, A},   {dst->v, &ws->v, A},         {dst->w, &ws->w, A},
        {dst->a, &ws->a, A},  {dst->kk, &ws->kk, A}, {dst->g, &ws->g, A},         {dst->y, &ws->y, A},
        {dst->z, &ws->z, C},  {dst->q, &ws->q, E},   {dst->e_raw, &ws->e_raw, E}, {dst->e, &ws->e, E},
        {dst->s, &ws->s, c->n_ptok}, {dst->x_out, &ws->xout, C},
    };
    for (auto &x : f) {
        if (!x.h || x.n == 0) continue;
        MSC_CK(cudaMemcpyAsync(x.h, at(*x.s, ws, layer) + (size_t)b * x.s->ld, sizeof(float) * (size_t)x.n,
                               cudaMemcpyDeviceToHost, ws->ctx->stream));
    }
    return msc_ctx_sync(ws->ctx, err);
}

/* ---- states -------------------------------------------------------------------- */

extern "C" float *ms_cuda_state_alloc(const ms_cuda_model *dm, int count, ms_err *err)
{
    if (count < 1) {
        ms_seterr(err, "cuda: %d states asked", count);
        return NULL;
    }
    size_t bytes = sizeof(float) * ms_state_len(&dm->cfg) * (size_t)count;
    float *p = NULL;
    cudaError_t e = cudaMalloc((void **)&p, bytes);
    if (e == cudaSuccess) e = cudaMemset(p, 0, bytes);
    if (e == cudaSuccess) e = cudaDeviceSynchronize();   /* legacy stream: not ordered with ours */
    if (e != cudaSuccess) {
        if (p) cudaFree(p);
        ms_seterr(err, "cuda: allocating %d states (%zu bytes): %s", count, bytes, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

extern "C" void ms_cuda_state_free(float *dev)
{
    if (dev) cudaFree(dev);
}

extern "C" int ms_cuda_state_upload(ms_cuda_ws *ws, float *dev, const float *host, size_t n, ms_err *err)
{
    MSC_CK(cudaMemcpyAsync(dev, host, n * sizeof(float), cudaMemcpyHostToDevice, ws->ctx->stream));
    return msc_ctx_sync(ws->ctx, err);
}

extern "C" int ms_cuda_state_download(ms_cuda_ws *ws, float *host, const float *dev, size_t n, ms_err *err)
{
    MSC_CK(cudaMemcpyAsync(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost, ws->ctx->stream));
    return msc_ctx_sync(ws->ctx, err);
}

extern "C" int ms_cuda_state_copy(ms_cuda_ws *ws, float *dst, const float *src, size_t n, ms_err *err)
{
    MSC_CK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, ws->ctx->stream));
    return 0;
}

extern "C" int ms_cuda_state_zero(ms_cuda_ws *ws, float *dev, size_t n, ms_err *err)
{
    MSC_CK(cudaMemsetAsync(dev, 0, n * sizeof(float), ws->ctx->stream));
    return 0;
}

/* ---- measurements ---------------------------------------------------------------- */

extern "C" double ms_cuda_time_steps(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int n_steps,
                                     int flags, ms_err *err)
{
    cudaEvent_t e0 = NULL, e1 = NULL;
    float ms = -1;
    int head = (flags & MS_CUDA_LOGITS) != 0;
    cudaError_t e = cudaEventCreate(&e0);
    if (e == cudaSuccess) e = cudaEventCreate(&e1);
    if (e == cudaSuccess) e = cudaEventRecord(e0, ws->ctx->stream);
    for (int s = 0; s < n_steps && e == cudaSuccess; s++)
        if (issue(ws, states, B, tokens + (size_t)s * B, head, err)) goto out;
    if (e == cudaSuccess) e = cudaEventRecord(e1, ws->ctx->stream);
    if (e == cudaSuccess) e = cudaEventSynchronize(e1);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, e0, e1);
    if (e != cudaSuccess) {
        ms_seterr(err, "cuda: timing steps: %s", cudaGetErrorString(e));
        ms = -1;
    }
out:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return ms;
}

extern "C" const char *ms_cuda_prof_name(int kind)
{
    static const char *const n[MS_CUDA_PROF_N] = {"embed+ln0", "ln1+shift", "gemv r k v w1 a1 g1 (v1)",
                                                   "wkv (+lora ups, ln_x, gate)", "gemv Wo", "ln2+shift+sse",
                                                   "gemv Kz (Ks)", "router", "gemv V", "ln_out", "gemv head"};
    return kind >= 0 && kind < MS_CUDA_PROF_N ? n[kind] : "?";
}

extern "C" double ms_cuda_profile_step(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int flags,
                                       int reps, double *ms_by_kind, int *launches_by_kind, ms_err *err)
{
    const int L = ws->dm->cfg.n_layer, cap = 2 + 9 * L + 4;
    int head = (flags & MS_CUDA_LOGITS) != 0, graph = ws->opt_graph;
    double total = -1;
    cudaEvent_t e0 = NULL;
    cudaError_t e = cudaEventCreate(&e0);
    ws->prof_ev = (cudaEvent_t *)calloc((size_t)cap, sizeof(cudaEvent_t));
    ws->prof_kind = (int *)calloc((size_t)cap, sizeof(int));
    int made = 0;
    if (!ws->prof_ev || !ws->prof_kind) {
        ms_seterr(err, "out of memory");
        goto out;
    }
    for (; made < cap && e == cudaSuccess; made++) e = cudaEventCreate(&ws->prof_ev[made]);
    for (int k = 0; k < MS_CUDA_PROF_N; k++) ms_by_kind[k] = 0, launches_by_kind[k] = 0;
    ws->prof_cap = cap;
    ws->opt_graph = 0;   /* the profile needs the launches one by one */
    total = 0;
    for (int r = 0; r < reps && e == cudaSuccess; r++) {
        ws->prof_n = 0;
        e = cudaEventRecord(e0, ws->ctx->stream);
        if (e == cudaSuccess && issue(ws, states, B, tokens, head, err)) {
            total = -1;
            break;
        }
        if (e == cudaSuccess && ws->prof_n) e = cudaEventSynchronize(ws->prof_ev[ws->prof_n - 1]);
        for (int i = 0; i < ws->prof_n && e == cudaSuccess; i++) {
            float t = 0;
            e = cudaEventElapsedTime(&t, i ? ws->prof_ev[i - 1] : e0, ws->prof_ev[i]);
            ms_by_kind[ws->prof_kind[i]] += t / reps;
            if (r == 0) launches_by_kind[ws->prof_kind[i]]++;
            total += t / reps;
        }
    }
    if (e != cudaSuccess) {
        ms_seterr(err, "cuda: profiling a step: %s", cudaGetErrorString(e));
        total = -1;
    }
out:
    ws->opt_graph = graph;
    for (int i = 0; i < made; i++) cudaEventDestroy(ws->prof_ev[i]);
    free(ws->prof_ev);
    free(ws->prof_kind);
    ws->prof_ev = NULL;
    ws->prof_kind = NULL;
    ws->prof_n = ws->prof_cap = 0;
    if (e0) cudaEventDestroy(e0);
    return total;
}

extern "C" double ms_cuda_copy_bandwidth(size_t bytes, int reps, ms_err *err)
{
    return msc_copy_bandwidth(bytes, reps, err);
}
