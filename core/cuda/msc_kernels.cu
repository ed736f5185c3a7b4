/* msc_kernels.cu: the CUDA kernels of one token step other than the
 * matrix-vector products (msc_gemv.cu), with their launchers, the context
 * and the device-memory helpers.
 *
 * Each kernel mirrors one stretch of core/step.c, the oracle; the comment on
 * each says which.  Reductions that step.c does in double (LayerNorm and
 * GroupNorm statistics, the kk and q norms, the expert router) are done in
 * double here too; dot products are fp32 with a different order of sums, so
 * results agree with the CPU to rounding, not bit for bit.  No atomics: every
 * result is the same on every run, which snapshot/restore relies on.
 *
 * Every kernel starts with griddep_wait() before it touches memory that an
 * earlier kernel writes (see msc_launch: programmatic dependent launch).
 */
#include "msc_impl.cuh"

#include <stdio.h>
#include <stdlib.h>

#define MSC_THREADS 256   /* every kernel here: 8 warps; the WKV and SSE row loops assume it */

/* ---- embedding + ln0 (step.c: ms_mat_row, layer_norm(ln0)) --------------- */
__global__ void __launch_bounds__(MSC_THREADS) embed_kernel(msc_embed_args a)
{
    griddep_wait();
    const int b = blockIdx.x;
    float *x = a.x + (size_t)b * a.ldx;
    const size_t base = (size_t)a.tokens[b] * a.emb.in;
    for (int i = threadIdx.x; i < a.C; i += blockDim.x) x[i] = ldw(a.emb.w, a.emb.dt, base + i);
    __syncthreads();
    float mf, inv;
    ln_stats(x, a.C, 1e-5, &mf, &inv);
    for (int i = threadIdx.x; i < a.C; i += blockDim.x) x[i] = (x[i] - mf) * inv * a.ln_w[i] + a.ln_b[i];
}

/* ---- LayerNorm (ln_out before the head) ---------------------------------- */
__global__ void __launch_bounds__(MSC_THREADS) ln_kernel(msc_ln_args a)
{
    griddep_wait();
    const int b = blockIdx.x;
    const float *x = a.x + (size_t)b * a.ldx;
    float *y = a.y + (size_t)b * a.ldy;
    float mf, inv;
    ln_stats(x, a.C, 1e-5, &mf, &inv);
    for (int i = threadIdx.x; i < a.C; i += blockDim.x) y[i] = (x[i] - mf) * inv * a.w[i] + a.b[i];
}

/* ---- ln1 and the time shift (step.c: layer_norm(ln1), time_mix's first loop)
 * Block (cx, b) owns channels [cx*MSC_THREADS, +MSC_THREADS) of batch element
 * b, one per thread; every block computes the row's LayerNorm statistics
 * itself (the row is a few kB, read from L2).  One block per batch element
 * was measured at 30 us for C = 2048 on an H200: its loop of dependent
 * loads and stores ran one channel group after another. */
__global__ void __launch_bounds__(MSC_THREADS) tmix_kernel(msc_tmix_args a)
{
    griddep_wait();
    const int b = blockIdx.y, i = blockIdx.x * blockDim.x + threadIdx.x;
    const float *x = a.x + (size_t)b * a.ldx;
    float mf, inv;
    ln_stats(x, a.C, 1e-5, &mf, &inv);
    if (i >= a.C) return;
    float *att = a.states[b] + a.att_off;
    const size_t o = (size_t)b * a.ldo;
    float xa = (x[i] - mf) * inv * a.ln_w[i] + a.ln_b[i];
    float d = att[i] - xa;
    float mix[6];
#pragma unroll
    for (int m = 0; m < 6; m++) mix[m] = a.mix[m][i];
    att[i] = xa;
#pragma unroll
    for (int m = 0; m < 6; m++) a.out[m][o + i] = xa + d * mix[m];
}

/* ---- WKV-7 (step.c: time_mix from the LoRA up-projections to yo) -------- */

/* One row of a small (out, in) matrix times x (shared memory), by one
 * thread: the head's LoRA up-projections are N rows of d <= a few hundred. */
__device__ __noinline__ float row_dot(const msc_mat M, int row, const float *x)
{
    const int d = M.in;
    float acc = 0;
    if (M.dt == MS_F32) {
        const float *p = (const float *)M.w + (size_t)row * d;
        if ((d & 3) == 0 && ((uintptr_t)M.w & 15) == 0) {
            const float4 *p4 = (const float4 *)p;
#pragma unroll 4
            for (int j = 0; j < d / 4; j++) {
                float4 w = ld16(p4 + j);
                acc = fmaf(w.x, x[4 * j], acc);
                acc = fmaf(w.y, x[4 * j + 1], acc);
                acc = fmaf(w.z, x[4 * j + 2], acc);
                acc = fmaf(w.w, x[4 * j + 3], acc);
            }
        } else {
            for (int j = 0; j < d; j++) acc = fmaf(p[j], x[j], acc);
        }
    } else {
        const size_t o = (size_t)row * d;
        if ((d & 7) == 0 && ((uintptr_t)M.w & 15) == 0) {
            const uint4 *p4 = (const uint4 *)((const uint16_t *)M.w + o);
#pragma unroll 4
            for (int j = 0; j < d / 8; j++) {
                uint4 u = ld16(p4 + j);
                uint32_t q[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int t = 0; t < 4; t++) {
                    float lo = M.dt == MS_BF16 ? bf16_f32((uint16_t)(q[t] & 0xffff)) : f16_f32((uint16_t)(q[t] & 0xffff));
                    float hi = M.dt == MS_BF16 ? bf16_f32((uint16_t)(q[t] >> 16)) : f16_f32((uint16_t)(q[t] >> 16));
                    acc = fmaf(lo, x[8 * j + 2 * t], acc);
                    acc = fmaf(hi, x[8 * j + 2 * t + 1], acc);
                }
            }
        } else {
            for (int j = 0; j < d; j++) acc = fmaf(ldw(M.w, M.dt, o + j), x[j], acc);
        }
    }
    return acc;
}

/* up[i] = M[c0 + i, :] . lo for the N rows of one head (whole block; it
 * contains barriers).  The head's rows are one contiguous slice, so the block
 * reads it with coalesced 16-byte loads, 8 per thread in flight, keeps one
 * partial sum per 16-byte chunk in `part` (shared), then sums each row's
 * chunks in order: no atomics, the same result on every run.  Rows whose
 * length is not a multiple of 16 bytes take row_dot. */
__device__ __noinline__ void lora_up(const msc_mat M, int c0, int N, const float *lo, float *up, float *part)
{
    const int d = M.in, esz = M.dt == MS_F32 ? 4 : 2, epv = 16 / esz;
    if ((d * esz) % 16 != 0 || ((uintptr_t)M.w & 15) != 0) {
        for (int i = threadIdx.x; i < N; i += blockDim.x) up[i] = row_dot(M, c0 + i, lo);
        return;
    }
    const int cpr = d / epv, nch = N * cpr, bd = blockDim.x;
    const uint4 *base = (const uint4 *)((const char *)M.w + (size_t)c0 * d * esz);
    for (int c = threadIdx.x; c < nch; c += 8 * bd) {
        uint4 w[8];
#pragma unroll
        for (int u = 0; u < 8; u++) w[u] = c + u * bd < nch ? ld16(base + c + u * bd) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const int idx = c + u * bd;
            if (idx >= nch) continue;
            const float *x = lo + (idx % cpr) * epv;
            const uint32_t q[4] = {w[u].x, w[u].y, w[u].z, w[u].w};
            float s = 0;
            if (M.dt == MS_F32) {
#pragma unroll
                for (int t = 0; t < 4; t++) s = fmaf(__uint_as_float(q[t]), x[t], s);
            } else {
#pragma unroll
                for (int t = 0; t < 4; t++) {
                    const uint16_t l = (uint16_t)(q[t] & 0xffff), h = (uint16_t)(q[t] >> 16);
                    s = fmaf(M.dt == MS_BF16 ? bf16_f32(l) : f16_f32(l), x[2 * t], s);
                    s = fmaf(M.dt == MS_BF16 ? bf16_f32(h) : f16_f32(h), x[2 * t + 1], s);
                }
            }
            part[idx] = s;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < N; i += bd) {
        float s = 0;
        for (int k = 0; k < cpr; k++) s += part[i * cpr + k];
        up[i] = s;
    }
    __syncthreads();   /* part is reused by the next matrix */
}

/* EPL: state columns per lane (N <= 32*EPL), rows per warp 4*EPL (8 warps
 * cover 32*EPL rows); the rows of a warp are loaded together so their loads
 * overlap.  EPL = 0: any N, a row at a time. */
template <int EPL>
__global__ void __launch_bounds__(MSC_THREADS, 1) wkv_kernel(msc_wkv_args a)
{
    const int h = blockIdx.x, b = blockIdx.y, N = a.N;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
    const int c0 = h * N;
    float *lo = dyn_smem();                                   /* d_w | d_a | d_g | d_v */
    float *sr = lo + (a.d_w + a.d_a + a.d_g + a.d_v);
    float *sk = sr + N, *sv = sk + N, *sw = sv + N, *sa = sw + N, *sg = sa + N, *skk = sg + N, *sb = skk + N;
    float *sy = sb + N, *up = sy + N;                         /* up: 4N raw LoRA outputs w, a, g, v */
    float *part = up + 4 * N;                                 /* lora_up's chunk sums */
    griddep_wait();
    const size_t oA = (size_t)b * a.ldA;
    for (int j = tid; j < a.d_w; j += blockDim.x) lo[j] = tanhf(a.lw[(size_t)b * a.ld_w + j]);
    for (int j = tid; j < a.d_a; j += blockDim.x) lo[a.d_w + j] = a.la[(size_t)b * a.ld_a + j];
    for (int j = tid; j < a.d_g; j += blockDim.x) lo[a.d_w + a.d_a + j] = sigmoidf_(a.lg[(size_t)b * a.ld_g + j]);
    if (!a.first)
        for (int j = tid; j < a.d_v; j += blockDim.x) lo[a.d_w + a.d_a + a.d_g + j] = a.lv[(size_t)b * a.ld_v + j];
    for (int i = tid; i < N; i += blockDim.x) {
        sr[i] = a.r[oA + c0 + i];
        sk[i] = a.k[oA + c0 + i];
        sv[i] = a.v[oA + c0 + i];
    }
    __syncthreads();
    /* w2 . tanh(xw@w1), a2 . (xa@a1), g2 . sigmoid(xg@g1), v2 . (xv@v1): this head's rows */
    lora_up(a.w2, c0, N, lo, up, part);
    lora_up(a.a2, c0, N, lo + a.d_w, up + N, part);
    lora_up(a.g2, c0, N, lo + a.d_w + a.d_a, up + 2 * N, part);
    if (!a.first) lora_up(a.v2, c0, N, lo + a.d_w + a.d_a + a.d_g, up + 3 * N, part);
    __syncthreads();
    for (int i = tid; i < N; i += blockDim.x) {
        const int c = c0 + i;
        float av = sigmoidf_(a.a0[c] + up[N + i]);
        float vv = sv[i];
        if (!a.first) vv += (a.v_first[oA + c] - vv) * sigmoidf_(a.v0[c] + up[3 * N + i]);
        float kr = sk[i];
        skk[i] = kr * a.k_k[c];                          /* kk from k before the k_a change */
        sk[i] = kr * (1.0f + (av - 1.0f) * a.k_a[c]);
        sw[i] = expf(-0.606531f * sigmoidf_(a.w0[c] + up[i]));
        sa[i] = av;
        sg[i] = up[2 * N + i];                           /* nothing after g2 */
        sv[i] = vv;
    }
    __syncthreads();
    double ss = 0;
    float bon = 0;
    for (int i = tid; i < N; i += blockDim.x) {
        ss += (double)skk[i] * skk[i];
        bon += sr[i] * sk[i] * a.r_k[c0 + i];            /* bonus: modified k */
    }
    ss = block_sum_d(ss);
    bon = block_sum_f(bon);
    float nrm = (float)sqrt(ss);
    if (nrm < 1e-12f) nrm = 1e-12f;
    for (int i = tid; i < N; i += blockDim.x) {
        const int c = c0 + i;
        float kk = skk[i] / nrm;
        skk[i] = kk;
        sb[i] = kk * sa[i];
        a.w[oA + c] = sw[i];
        a.a[oA + c] = sa[i];
        a.g[oA + c] = sg[i];
        a.kk[oA + c] = kk;
        a.k[oA + c] = sk[i];
        a.v[oA + c] = sv[i];
    }
    __syncthreads();
    /* rows i = value index, columns j = key index; sa from the old row, y from the new */
    float *S = a.states[b] + a.S_off + (size_t)h * N * N;
    if (EPL > 0) {
        constexpr int E = EPL > 0 ? EPL : 1, R = 4 * E;
        float kkr[E], wr[E], kr[E], br[E], rr[E], s[R][E];
#pragma unroll
        for (int e = 0; e < E; e++) {
            const int j = lane + 32 * e;
            const bool ok = j < N;
            kkr[e] = ok ? skk[j] : 0.0f;
            wr[e] = ok ? sw[j] : 0.0f;
            kr[e] = ok ? sk[j] : 0.0f;
            br[e] = ok ? sb[j] : 0.0f;
            rr[e] = ok ? sr[j] : 0.0f;
        }
#pragma unroll
        for (int q = 0; q < R; q++) {
            const int i = warp + q * nw;
#pragma unroll
            for (int e = 0; e < E; e++) {
                const int j = lane + 32 * e;
                s[q][e] = (i < N && j < N) ? S[(size_t)i * N + j] : 0.0f;
            }
        }
        float t[R];
#pragma unroll
        for (int q = 0; q < R; q++) {
            float u = 0;
#pragma unroll
            for (int e = 0; e < E; e++) u += kkr[e] * s[q][e];
            t[q] = u;
        }
        warp_sum_n(t);                                    /* t[q] = sum_j kk_j S_ij */
#pragma unroll
        for (int q = 0; q < R; q++) {
            const int i = warp + q * nw;
            const float sav = -t[q], vi = i < N ? sv[i] : 0.0f;
            float u = 0;
#pragma unroll
            for (int e = 0; e < E; e++) {
                float nv = s[q][e] * wr[e] + vi * kr[e] + sav * br[e];
                s[q][e] = nv;
                u += nv * rr[e];
            }
            t[q] = u;
        }
        warp_sum_n(t);                                    /* t[q] = y_i */
#pragma unroll
        for (int q = 0; q < R; q++) {
            const int i = warp + q * nw;
            if (i < N) {
#pragma unroll
                for (int e = 0; e < E; e++) {
                    const int j = lane + 32 * e;
                    if (j < N) S[(size_t)i * N + j] = s[q][e];
                }
                if (lane == 0) sy[i] = t[q];
            }
        }
    } else {
        for (int i = warp; i < N; i += nw) {
            float *row = S + (size_t)i * N;
            float u = 0;
            for (int j = lane; j < N; j += 32) u += skk[j] * row[j];
            const float sav = -warp_sum(u), vi = sv[i];
            float yv = 0;
            for (int j = lane; j < N; j += 32) {
                float nv = row[j] * sw[j] + vi * sk[j] + sav * sb[j];
                row[j] = nv;
                yv += nv * sr[j];
            }
            yv = warp_sum(yv);
            if (lane == 0) sy[i] = yv;
        }
    }
    __syncthreads();
    float mf, inv;
    ln_stats(sy, N, 64e-5, &mf, &inv);                    /* ln_x: GroupNorm of this head */
    for (int i = tid; i < N; i += blockDim.x) {
        const int c = c0 + i;
        float yo = (sy[i] - mf) * inv * a.lnx_w[c] + a.lnx_b[c];
        yo += bon * sv[i];                               /* bonus times the mixed v, as step.c */
        yo *= sg[i];
        a.y[oA + c] = sy[i];
        a.yo[oA + c] = yo;
    }
}

/* ---- ln2, the channel shift and the SSE reads (step.c: meta_state's first
 * loop, sse_read) --------------------------------------------------------- */
template <int EPL>
__global__ void __launch_bounds__(MSC_THREADS, 1) sse_kernel(msc_sse_args a)
{
    const int hb = blockIdx.x, b = blockIdx.y, N = a.N, C = a.C, G = gridDim.x;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
    float *zq = dyn_smem(), *sq = zq + N, *ser = sq + N;
    griddep_wait();
    const float *x = a.x + (size_t)b * a.ldx;
    float mf, inv;
    ln_stats(x, C, 1e-5, &mf, &inv);
    /* Block hb owns channels [hb*N, hb*N+N) (the last block: up to C; there
     * are ceil(C/N) >= Hs blocks): it alone reads and writes ffn_x there, so
     * blocks never race on the state. */
    float *ffn = a.states[b] + a.ffn_off;
    const int c0 = hb * N, c1 = hb == G - 1 ? C : c0 + N;
    const bool sse = hb < a.Hs;
    for (int c = c0 + tid; c < c1; c += blockDim.x) {
        float xf = (x[c] - mf) * inv * a.ln_w[c] + a.ln_b[c];
        float d = ffn[c] - xf;
        ffn[c] = xf;
        float z = xf + d * a.ffn_xk[c];
        a.z[(size_t)b * a.ldz + c] = z;
        if (sse && c < c0 + N) zq[c - c0] = z;
    }
    if (!sse) return;   /* the whole block: no barrier follows for it */
    __syncthreads();
    double ss = 0;
    for (int i = tid; i < N; i += blockDim.x) ss += (double)zq[i] * zq[i];
    ss = block_sum_d(ss);
    float nrm = (float)sqrt(ss);
    if (nrm < 1e-12f) nrm = 1e-12f;
    const size_t oe = (size_t)b * a.lde + c0;
    for (int i = tid; i < N; i += blockDim.x) {
        float q = zq[i] / nrm;
        sq[i] = q;
        a.q[oe + i] = q;
    }
    __syncthreads();
    const float *S = a.states[b] + a.S_off + (size_t)hb * N * N;   /* after this token's TimeMix */
    if (EPL > 0) {
        constexpr int E = EPL > 0 ? EPL : 1, R = 4 * E;
        float qr[E], t[R];
#pragma unroll
        for (int e = 0; e < E; e++) qr[e] = lane + 32 * e < N ? sq[lane + 32 * e] : 0.0f;
#pragma unroll
        for (int q = 0; q < R; q++) {
            const int i = warp + q * nw;
            float u = 0;
#pragma unroll
            for (int e = 0; e < E; e++) {
                const int j = lane + 32 * e;
                if (i < N && j < N) u += S[(size_t)i * N + j] * qr[e];
            }
            t[q] = u;
        }
        warp_sum_n(t);
#pragma unroll
        for (int q = 0; q < R; q++) {
            const int i = warp + q * nw;
            if (i < N && lane == 0) ser[i] = t[q];
        }
    } else {
        for (int i = warp; i < N; i += nw) {
            float u = 0;
            for (int j = lane; j < N; j += 32) u += S[(size_t)i * N + j] * sq[j];
            u = warp_sum(u);
            if (lane == 0) ser[i] = u;
        }
    }
    __syncthreads();
    float mf2, inv2;
    ln_stats(ser, N, 64e-5, &mf2, &inv2);
    for (int i = tid; i < N; i += blockDim.x) {
        a.e_raw[oe + i] = ser[i];
        a.e[oe + i] = (ser[i] - mf2) * inv2 * a.sse_w[c0 + i] + a.sse_b[c0 + i];
    }
}

/* ---- expert routing (step.c: experts(), the choice of blocks) ------------ */
__global__ void __launch_bounds__(MSC_THREADS) router_kernel(msc_router_args a)
{
    float *u = dyn_smem();
    int *sel = (int *)(u + a.E);
    const int b = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
    const int D = a.C + a.De;
    griddep_wait();
    const float *z = a.z + (size_t)b * a.ldz;
    const float *e = a.De ? a.e + (size_t)b * a.lde : nullptr;
    for (int blk = warp; blk < a.E; blk += nw) {
        const float *key = a.router + (size_t)blk * D;
        double acc = 0;
        for (int d = lane; d < a.C; d += 32) acc += (double)z[d] * key[d];
        for (int d = lane; d < a.De; d += 32) acc += (double)e[d] * key[a.C + d];
        acc = warp_sum_d(acc);
        if (lane == 0) u[blk] = (float)acc;
    }
    __syncthreads();
    if (tid == 0) {
        for (int blk = 0; blk < a.E; blk++) sel[blk] = 0;
        for (int pick = 0; pick < a.top_k; pick++) {
            int best = -1;
            for (int blk = 0; blk < a.E; blk++)
                if (u[blk] != -INFINITY && (best < 0 || u[blk] > u[best])) best = blk;
            if (best < 0) break;
            u[best] = -INFINITY;
            sel[best] = 1;
        }
    }
    __syncthreads();
    const int per = a.n / a.E;
    float *s = a.s + (size_t)b * a.lds;
    for (int j = tid; j < a.n; j += blockDim.x)
        if (!sel[j / per]) s[j] = 0.0f;
}

/* ---- inputs of a step ---------------------------------------------------- */
#define MSC_IN_CHUNK 128
struct msc_inputs {
    int n;
    int tok[MSC_IN_CHUNK];
    float *st[MSC_IN_CHUNK];
    int *dtok;
    float **dst;
};

__global__ void inputs_kernel(msc_inputs p)
{
    griddep_wait();
    const int i = threadIdx.x;
    if (i < p.n) {
        p.dtok[i] = p.tok[i];
        p.dst[i] = p.st[i];
    }
}

/* ---- launchers ----------------------------------------------------------- */

#define LAUNCH(...)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = msc_launch(__VA_ARGS__);                                                  \
        if (e_ != cudaSuccess) {                                                                   \
            ms_seterr(err, "cuda: launch of %s failed: %s", kname, cudaGetErrorString(e_));        \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static int check_b(int B, const char *kname, ms_err *err)
{
    if (B < 1 || B > 65535) {
        ms_seterr(err, "cuda: %s: batch %d out of range (1..65535)", kname, B);
        return -1;
    }
    return 0;
}

/* dynamic shared memory above the default 48 KB needs an opt-in per kernel */
template <typename K> static int smem_optin(K *k, size_t bytes, const char *kname, ms_err *err)
{
    if (bytes <= (48 << 10)) return 0;
    if (bytes > (227 << 10)) {
        ms_seterr(err, "cuda: %s needs %zu bytes of shared memory (at most 227 KB)", kname, bytes);
        return -1;
    }
    MSC_CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return 0;
}

extern "C" int msc_embed(msc_ctx *c, const msc_embed_args *a, int B, ms_err *err)
{
    const char *kname = "embed";
    if (check_b(B, kname, err)) return -1;
    LAUNCH(c, embed_kernel, dim3(B), dim3(MSC_THREADS), 0, *a);
    return 0;
}

extern "C" int msc_ln(msc_ctx *c, const msc_ln_args *a, int B, ms_err *err)
{
    const char *kname = "ln";
    if (check_b(B, kname, err)) return -1;
    LAUNCH(c, ln_kernel, dim3(B), dim3(MSC_THREADS), 0, *a);
    return 0;
}

extern "C" int msc_tmix_in(msc_ctx *c, const msc_tmix_args *a, int B, ms_err *err)
{
    const char *kname = "tmix_in";
    if (check_b(B, kname, err)) return -1;
    LAUNCH(c, tmix_kernel, dim3((a->C + MSC_THREADS - 1) / MSC_THREADS, B), dim3(MSC_THREADS), 0, *a);
    return 0;
}

extern "C" int msc_wkv(msc_ctx *c, const msc_wkv_args *a, int B, ms_err *err)
{
    const char *kname = "wkv";
    if (check_b(B, kname, err)) return -1;
    int dmax = a->d_w > a->d_a ? a->d_w : a->d_a;
    if (a->d_g > dmax) dmax = a->d_g;
    if (a->d_v > dmax) dmax = a->d_v;
    /* lo (the four LoRA inputs), 13 vectors of N, lora_up's chunk sums (F32: d/4 per row) */
    size_t sm = sizeof(float) * ((size_t)a->d_w + a->d_a + a->d_g + a->d_v + 13 * (size_t)a->N +
                                 (size_t)a->N * ((dmax + 3) / 4));
    dim3 g(a->H, B);
    if (a->N <= 64) {
        if (smem_optin(wkv_kernel<2>, sm, kname, err)) return -1;
        LAUNCH(c, wkv_kernel<2>, g, dim3(MSC_THREADS), sm, *a);
    } else if (a->N <= 128) {
        if (smem_optin(wkv_kernel<4>, sm, kname, err)) return -1;
        LAUNCH(c, wkv_kernel<4>, g, dim3(MSC_THREADS), sm, *a);
    } else {
        if (smem_optin(wkv_kernel<0>, sm, kname, err)) return -1;
        LAUNCH(c, wkv_kernel<0>, g, dim3(MSC_THREADS), sm, *a);
    }
    return 0;
}

extern "C" int msc_sse(msc_ctx *c, const msc_sse_args *a, int B, ms_err *err)
{
    const char *kname = "sse";
    if (check_b(B, kname, err)) return -1;
    if (a->Hs < 0 || (size_t)a->Hs * a->N > (size_t)a->C) {
        ms_seterr(err, "cuda: sse: %d heads of %d exceed C = %d", a->Hs, a->N, a->C);
        return -1;
    }
    size_t sm = sizeof(float) * 3 * (size_t)a->N;
    /* a block per N channels (the first Hs also read their SSE head): one
     * block for all channels past the SSE heads took 14 us at C = 2048 */
    dim3 g((a->C + a->N - 1) / a->N, B);
    if (a->N <= 64) {
        if (smem_optin(sse_kernel<2>, sm, kname, err)) return -1;
        LAUNCH(c, sse_kernel<2>, g, dim3(MSC_THREADS), sm, *a);
    } else if (a->N <= 128) {
        if (smem_optin(sse_kernel<4>, sm, kname, err)) return -1;
        LAUNCH(c, sse_kernel<4>, g, dim3(MSC_THREADS), sm, *a);
    } else {
        if (smem_optin(sse_kernel<0>, sm, kname, err)) return -1;
        LAUNCH(c, sse_kernel<0>, g, dim3(MSC_THREADS), sm, *a);
    }
    return 0;
}

extern "C" int msc_router(msc_ctx *c, const msc_router_args *a, int B, ms_err *err)
{
    const char *kname = "router";
    if (check_b(B, kname, err)) return -1;
    if (a->E < 1 || a->n % a->E) {
        ms_seterr(err, "cuda: router: %d experts do not divide %d parameter tokens", a->E, a->n);
        return -1;
    }
    size_t sm = (sizeof(float) + sizeof(int)) * (size_t)a->E;
    if (smem_optin(router_kernel, sm, kname, err)) return -1;
    LAUNCH(c, router_kernel, dim3(B), dim3(MSC_THREADS), sm, *a);
    return 0;
}

extern "C" int msc_set_inputs(msc_ctx *c, int *dtok, float **dstates, const int *tokens, float *const *states, int B,
                              ms_err *err)
{
    const char *kname = "inputs";
    for (int b0 = 0; b0 < B; b0 += MSC_IN_CHUNK) {
        msc_inputs p;
        memset(&p, 0, sizeof p);
        p.n = B - b0 < MSC_IN_CHUNK ? B - b0 : MSC_IN_CHUNK;
        for (int i = 0; i < p.n; i++) {
            p.tok[i] = tokens[b0 + i];
            p.st[i] = states[b0 + i];
        }
        p.dtok = dtok + b0;
        p.dst = dstates + b0;
        LAUNCH(c, inputs_kernel, dim3(1), dim3(MSC_IN_CHUNK), 0, p);
    }
    return 0;
}

/* 1 if the device can run this build's kernels (a compatible SASS or PTX
 * image); 0 with CUDA's reason otherwise. */
extern "C" int msc_kernel_image_ok(ms_err *err)
{
    cudaFuncAttributes fa;
    cudaError_t e = cudaFuncGetAttributes(&fa, inputs_kernel);
    if (e != cudaSuccess) {
        ms_seterr(err, "%s", cudaGetErrorString(e));
        cudaGetLastError();
        return 0;
    }
    return 1;
}

/* ---- context and memory --------------------------------------------------- */

extern "C" msc_ctx *msc_ctx_new(size_t scratch_bytes, ms_err *err)
{
    msc_ctx *c = (msc_ctx *)calloc(1, sizeof *c);
    if (!c) {
        ms_seterr(err, "out of memory");
        return NULL;
    }
    cudaError_t e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess && scratch_bytes) e = cudaMalloc(&c->scratch, scratch_bytes);
    if (e != cudaSuccess) {
        ms_seterr(err, "cuda: creating a stream and %zu bytes of scratch: %s", scratch_bytes, cudaGetErrorString(e));
        msc_ctx_free(c);
        return NULL;
    }
    c->scratch_bytes = scratch_bytes;
    return c;
}

extern "C" void msc_ctx_free(msc_ctx *c)
{
    if (!c) return;
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->blas) cublasDestroy(c->blas);
    if (c->blas_ws) cudaFree(c->blas_ws);
    if (c->scratch) cudaFree(c->scratch);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" int msc_ctx_sync(msc_ctx *c, ms_err *err)
{
    MSC_CK(cudaStreamSynchronize(c->stream));
    MSC_CK(cudaGetLastError());
    return 0;
}

extern "C" int msc_ctx_set_pdl(msc_ctx *c, int on)
{
    int old = c->pdl;
    c->pdl = on;
    return old;
}

extern "C" void *msc_ctx_stream(msc_ctx *c) { return (void *)c->stream; }

extern "C" void *msc_alloc(size_t bytes, ms_err *err)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 16);
    if (e == cudaSuccess) e = cudaMemset(p, 0xFF, bytes);
    /* the memset runs on the legacy stream, which the backend's non-blocking
     * streams do not wait for */
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        if (p) cudaFree(p);
        ms_seterr(err, "cuda: allocating %zu bytes on the device: %s", bytes, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

extern "C" void msc_free(void *d)
{
    if (d) cudaFree(d);
}

/* Both wait for the whole device first and after: cudaMemcpy runs on the
 * legacy stream, which is not ordered with the non-blocking streams the
 * kernels run on, and a copy from pageable memory may return before its DMA
 * has landed. */
extern "C" int msc_upload(void *dst, const void *src, size_t bytes, ms_err *err)
{
    MSC_CK(cudaDeviceSynchronize());
    MSC_CK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    MSC_CK(cudaDeviceSynchronize());
    return 0;
}

extern "C" int msc_download(void *dst, const void *src, size_t bytes, ms_err *err)
{
    MSC_CK(cudaDeviceSynchronize());
    MSC_CK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int msc_device_info(char *buf, size_t n, ms_err *err)
{
    int dev = 0, drv = 0, rt = 0;
    cudaDeviceProp p;
    MSC_CK(cudaGetDevice(&dev));
    MSC_CK(cudaGetDeviceProperties(&p, dev));
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    snprintf(buf, n, "%s, sm_%d%d, %d SMs, %.0f MB L2, %.1f GiB, driver %d.%d, runtime %d.%d", p.name, p.major,
             p.minor, p.multiProcessorCount, p.l2CacheSize / 1e6, p.totalGlobalMem / (double)(1 << 30),
             drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10);
    return 0;
}

static int cmp_float(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

extern "C" double msc_copy_bandwidth(size_t bytes, int reps, ms_err *err)
{
    void *src = NULL, *dst = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float *ms = (float *)malloc(sizeof(float) * (size_t)(reps > 0 ? reps : 1));
    double bw = -1;
    if (reps < 1) reps = 1;
    cudaError_t e = ms ? cudaSuccess : cudaErrorMemoryAllocation;
    if (e == cudaSuccess) e = cudaMalloc(&src, bytes);
    if (e == cudaSuccess) e = cudaMalloc(&dst, bytes);
    if (e == cudaSuccess) e = cudaMemset(src, 0x3C, bytes);   /* not zeros */
    if (e == cudaSuccess) e = cudaEventCreate(&e0);
    if (e == cudaSuccess) e = cudaEventCreate(&e1);
    if (e == cudaSuccess) e = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice);   /* warm-up */
    for (int r = 0; r < reps && e == cudaSuccess; r++) {
        e = cudaEventRecord(e0, 0);
        if (e == cudaSuccess) e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0);
        if (e == cudaSuccess) e = cudaEventRecord(e1, 0);
        if (e == cudaSuccess) e = cudaEventSynchronize(e1);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&ms[r], e0, e1);
    }
    if (e == cudaSuccess) {
        qsort(ms, (size_t)reps, sizeof(float), cmp_float);
        double med = ms[reps / 2];
        bw = med > 0 ? 2.0 * (double)bytes / (med * 1e-3) : -1;
    } else {
        ms_seterr(err, "cuda: copy bandwidth over %zu bytes: %s", bytes, cudaGetErrorString(e));
    }
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(src);
    cudaFree(dst);
    free(ms);
    return bw;
}
