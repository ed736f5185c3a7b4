/* msc.h: the CUDA backend's internal C interface: one launcher per kernel,
 * the argument block each kernel reads, and a few device-memory helpers.
 *
 * What it is: the seam between ms_cuda.cu (which strings the kernels into a
 * token step) and tests/test_cuda.c (which runs every kernel on its own
 * against a CPU reference on random inputs, as ggml's test-backend-ops does).
 * Every pointer in an argument block is a DEVICE pointer; every stride (ld*)
 * counts floats between consecutive batch elements; batch element b of a
 * strided buffer p starts at p + b*ld.  A matrix on the device is always
 * row-major (out, in) (the loader's trans=1 LoRA layout is transposed at
 * upload), in its own dtype.
 *
 * What it is not: a stable API.  Only ms_cuda.h is for the rest of the
 * program.  Launchers enqueue on the context's stream and return without
 * waiting; 0 or -1 with *err set (a launch error, never a kernel's result).
 */
#ifndef MSC_H
#define MSC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "ms.h"

/* A weight matrix on the device: row-major (out, in), dtype dt (ms_dtype). */
typedef struct {
    const void *w;
    int dt, out, in;
} msc_mat;

/* ---- context: a stream, a cuBLAS handle, scratch, options ---------------- */
typedef struct msc_ctx msc_ctx;

/* scratch_bytes: device scratch for the cuBLAS path's converted inputs. */
msc_ctx *msc_ctx_new(size_t scratch_bytes, ms_err *err);
void msc_ctx_free(msc_ctx *c);
int msc_ctx_sync(msc_ctx *c, ms_err *err);
/* Programmatic dependent launch (Hopper): each kernel may start while the
 * previous one drains and waits for it before touching its data.  Returns
 * the previous setting. */
int msc_ctx_set_pdl(msc_ctx *c, int on);
/* Raw stream handle (cudaStream_t) for the host code in ms_cuda.cu. */
void *msc_ctx_stream(msc_ctx *c);

/* ---- device memory ----------------------------------------------------- */
/* cudaMalloc, then every byte set to 0xFF (a float NaN): a value read before
 * anything wrote it shows up in every comparison.  NULL and *err on failure. */
void *msc_alloc(size_t bytes, ms_err *err);
void msc_free(void *d);
int msc_upload(void *dst, const void *src, size_t bytes, ms_err *err);     /* synchronous */
int msc_download(void *dst, const void *src, size_t bytes, ms_err *err);   /* synchronous */

/* ---- matrix-vector products (the GEMV kernels and the cuBLAS path) ------- */
enum { MSC_ACT_NONE = 0, MSC_ACT_RELU2 = 1 };   /* applied to x as it is read */
enum { MSC_PATH_OWN = 1, MSC_PATH_CUBLAS = 2 };
#define MSC_MAX_JOBS 8
#define MSC_GEMV_BT 8        /* batch elements one warp carries at once (B > 1) */

/* One product of a launch: for every batch element b < B and row r < out,
 *   y[b*ldy + r] = (base ? base[b*ldbase + r] : 0) + sum_s W_s[r,:] . act_s(x_s[b*ldx_s + :])
 * over nseg (1 or 2) segments that share the output rows.  row0 is filled by
 * msc_gemv (first warp of this job among the launch's rows). */
typedef struct {
    const void *W[2];
    const float *x[2];
    int dt[2], in[2], ldx[2], act[2];
    int nseg, out;
    float *y;
    int ldy;
    const float *base;
    int ldbase;
    int row0;
} msc_job;

/* Runs njobs (<= MSC_MAX_JOBS) products in one launch (MSC_PATH_OWN) or one
 * cuBLAS call per segment (MSC_PATH_CUBLAS; inputs of half matrices are
 * rounded to the matrix dtype first).  jobs: host array; row0 is written.
 * djobs: the same jobs already on the device (row0 filled), or NULL to copy
 * them now (synchronously: not inside a graph capture). */
int msc_gemv(msc_ctx *c, msc_job *jobs, const msc_job *djobs, int njobs, int B, int path, ms_err *err);

/* ---- the other kernels, one block per batch element (or per head) -------- */

/* x[b] = LayerNorm(emb[tokens[b]]; w, b) (ln0). */
typedef struct {
    msc_mat emb;
    const int *tokens;
    const float *ln_w, *ln_b;
    float *x;
    int ldx, C;
} msc_embed_args;
int msc_embed(msc_ctx *c, const msc_embed_args *a, int B, ms_err *err);

/* y[b] = LayerNorm(x[b]; w, b), eps 1e-5 (ln_out). */
typedef struct {
    const float *x;
    int ldx;
    const float *w, *b;
    float *y;
    int ldy, C;
} msc_ln_args;
int msc_ln(msc_ctx *c, const msc_ln_args *a, int B, ms_err *err);

/* TimeMix input (MODEL.md 2): xa = LN(x; ln1); d = att_x - xa; att_x := xa;
 * out[m] = xa + d*mix[m] for m = r, w, k, v, a, g.  att_x is at
 * states[b] + att_off. */
typedef struct {
    const float *x;
    int ldx;
    const float *ln_w, *ln_b;
    float *const *states;
    size_t att_off;
    const float *mix[6];
    float *out[6];
    int ldo, C;
} msc_tmix_args;
int msc_tmix_in(msc_ctx *c, const msc_tmix_args *a, int B, ms_err *err);

/* The WKV-7 block of one head (grid H x B): the LoRA up-projections of the
 * head's N channels (w from tanh(lw), a from la, g from sigmoid(lg), the v
 * residual from lv unless first), the decay, the in-context rate, kk, the
 * k_a change, the state update and read (a warp per state row: sa from the
 * old row, y from the new one), GroupNorm(ln_x), the bonus, the gate.
 * In: r, k, v (raw products), lw, la, lg, lv; out: k (modified), v (mixed),
 * w, a, g, kk, y (read before ln_x), yo (what Wo multiplies); S at
 * states[b] + S_off, (H, N, N).  v_first: layer 0's v (unused if first). */
typedef struct {
    int H, N, first;
    int d_w, d_a, d_g, d_v;
    float *const *states;
    size_t S_off;
    const float *r, *v_first;
    float *k, *v, *w, *a, *g, *kk, *y, *yo;
    int ldA;
    const float *lw, *la, *lg, *lv;
    int ld_w, ld_a, ld_g, ld_v;
    msc_mat w2, a2, g2, v2;   /* (A, d) each */
    const float *w0, *a0, *v0, *k_k, *k_a, *r_k, *lnx_w, *lnx_b;
} msc_wkv_args;
int msc_wkv(msc_ctx *c, const msc_wkv_args *a, int B, ms_err *err);

/* The Meta-State layer's input and the SSE reads (MODEL.md 3.1), grid
 * max(Hs,1) x B: xf = LN(x; ln2); d = ffn_x - xf; ffn_x := xf;
 * z = xf + d*ffn_xk; for h < Hs: q_h = z_h/max(|z_h|,1e-12), e_raw_h = S[h] q_h,
 * e_h = GroupNorm(e_raw_h; sse_ln).  ffn_x at states[b] + ffn_off, S at
 * states[b] + S_off. */
typedef struct {
    const float *x;
    int ldx;
    const float *ln_w, *ln_b, *ffn_xk;
    float *const *states;
    size_t ffn_off, S_off;
    float *z;
    int ldz, C, N, Hs;
    const float *sse_w, *sse_b;
    float *q, *e_raw, *e;
    int lde;
} msc_sse_args;
int msc_sse(msc_ctx *c, const msc_sse_args *a, int B, ms_err *err);

/* Parameter-token experts (MODEL.md 3.4) after the dense scores: u = [z; e] .
 * router rows (double sums), the top_k blocks picked as core/step.c does
 * (ties to the lower index), s of every other block set to 0. */
typedef struct {
    const float *z;
    int ldz;
    const float *e;
    int lde;
    const float *router;   /* (E, C + De) */
    int C, De, E, top_k, n;
    float *s;
    int lds;
} msc_router_args;
int msc_router(msc_ctx *c, const msc_router_args *a, int B, ms_err *err);

/* tokens[b] -> dtok[b], states[b] -> dstates[b] for b < B (kernel arguments,
 * so the host arrays can be reused at once). */
int msc_set_inputs(msc_ctx *c, int *dtok, float **dstates, const int *tokens, float *const *states, int B,
                   ms_err *err);

/* ---- measurements for the benchmark ------------------------------------ */
/* Device-to-device copy of `bytes`, median of reps, counting bytes read plus
 * written: bytes/s, or < 0 with *err. */
double msc_copy_bandwidth(size_t bytes, int reps, ms_err *err);
/* Median milliseconds of one y = W x over a rotation of `copies` matrices of
 * (out, in) random weights of dtype dt, B batch elements, by path (own kernel
 * or cuBLAS).  < 0 with *err. */
double msc_time_gemv(int dt, int out, int in, int B, int path, int copies, int reps, ms_err *err);

/* Device description: name, SMs, L2, memory; 0, or -1 with *err. */
int msc_device_info(char *buf, size_t n, ms_err *err);

#ifdef __cplusplus
}
#endif
#endif
