/* msc_gemv.cu: the matrix-vector products of a step: our own GEMV kernel
 * (batch 1 and small batches) and the cuBLAS path (large batches).
 *
 * Decode at batch 1 reads every weight byte once and does two flops per
 * weight: it is bound by memory bandwidth.  The kernel gives each warp one
 * output row; each lane reads 16 bytes (8 halves or 4 floats) per load and
 * issues GEMV_U of them before using any, so many loads are in flight per
 * SM; the input vector comes from L1/L2 (it is small and every warp reads
 * it).  Accumulation is fp32 (fmaf) per lane, then a warp sum.  Several
 * products with different matrices, inputs and outputs run in ONE launch
 * (msc_job: r, k, v and the LoRA down-projections of a layer together), which
 * cuts the launches per token.  A job may have two segments that add into the
 * same rows (s = Kz.z + Ks.e) and a base vector added to the result (the
 * residual stream), and relu^2 applied to its input as it is read (V).
 * Rows whose length in bytes is not a multiple of 16 (odd test shapes) take
 * a scalar path with the same semantics.
 *
 * Batches: a warp carries up to MSC_GEMV_BT batch elements, so a weight read
 * from memory serves all of them; beyond that, blockIdx.y walks the batch
 * tiles.  For large batches cuBLAS's GemmEx (tensor cores) is faster: the
 * inputs of BF16/F16 matrices are then rounded to the matrix dtype (fp32
 * accumulation), which is why the batched path is checked against the CPU
 * with the half-precision tolerance.
 */
#include "msc_impl.cuh"

#include <stdio.h>
#include <stdlib.h>

#ifdef MSC_EMU
extern "C" {
uint16_t ms_f32_to_bf16(float f);
uint16_t ms_f32_to_f16(float f);
}
#endif

#define GEMV_WARPS 8
#define GEMV_U 8   /* 16-byte loads in flight per lane */

struct gemv_params {
    const msc_job *jobs;   /* device copy */
    int njobs, total, B;
    int row0[MSC_MAX_JOBS];
};

template <int DT> __device__ __forceinline__ void unpack(uint4 u, float *f)
{
    if (DT == MS_F32) {
        f[0] = __uint_as_float(u.x);
        f[1] = __uint_as_float(u.y);
        f[2] = __uint_as_float(u.z);
        f[3] = __uint_as_float(u.w);
    } else {
        const uint32_t q[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int t = 0; t < 4; t++) {
            if (DT == MS_BF16) {   /* element 2t is the low half (little-endian) */
                f[2 * t] = __uint_as_float(q[t] << 16);
                f[2 * t + 1] = __uint_as_float(q[t] & 0xffff0000u);
            } else {
                f[2 * t] = f16_f32((uint16_t)(q[t] & 0xffff));
                f[2 * t + 1] = f16_f32((uint16_t)(q[t] >> 16));
            }
        }
    }
}

__device__ __forceinline__ float act_in(float v, int act)
{
    if (act == MSC_ACT_RELU2) {
        float t = v > 0 ? v : 0.0f;
        return t * t;
    }
    return v;
}

/* acc[bb] += W[col .. col+EPV) . act(x_bb[col .. col+EPV)) */
template <int DT, int BT>
__device__ __forceinline__ void fma_chunk(uint4 w, const float *x, int ldx, int col, int act, int nb, float (&acc)[BT])
{
    constexpr int EPV = DT == MS_F32 ? 4 : 8;
    float wf[EPV];
    unpack<DT>(w, wf);
#pragma unroll
    for (int bb = 0; bb < BT; bb++) {
        if (bb < nb) {
            const float4 *xp = (const float4 *)(x + (size_t)bb * ldx + col);
            float xf[EPV];
#pragma unroll
            for (int q = 0; q < EPV / 4; q++) {
                float4 t = ld16(xp + q);
                xf[4 * q] = t.x;
                xf[4 * q + 1] = t.y;
                xf[4 * q + 2] = t.z;
                xf[4 * q + 3] = t.w;
            }
#pragma unroll
            for (int e = 0; e < EPV; e++) acc[bb] = fmaf(wf[e], act_in(xf[e], act), acc[bb]);
        }
    }
}

/* One row, 16-byte loads: lane l reads chunks l, l+32, ...; GEMV_U chunks
 * are loaded before the first is used. */
template <int DT, int BT>
__device__ __forceinline__ void seg_vec(const void *wrow, const float *x, int ldx, int in, int act, int nb, int lane,
                                        float (&acc)[BT])
{
    constexpr int EPV = DT == MS_F32 ? 4 : 8;
    const uint4 *w4 = (const uint4 *)wrow;
    const int nv = in / EPV;
    for (int v = lane; v < nv; v += 32 * GEMV_U) {
        uint4 wv[GEMV_U];
#pragma unroll
        for (int u = 0; u < GEMV_U; u++) wv[u] = v + 32 * u < nv ? ld16(w4 + v + 32 * u) : make_uint4(0, 0, 0, 0);
#pragma unroll
        for (int u = 0; u < GEMV_U; u++)
            if (v + 32 * u < nv) fma_chunk<DT, BT>(wv[u], x, ldx, (v + 32 * u) * EPV, act, nb, acc);
    }
}

template <int BT>
__device__ __forceinline__ void seg_scalar(const void *W, int dt, size_t off, const float *x, int ldx, int in, int act,
                                           int nb, int lane, float (&acc)[BT])
{
    for (int c = lane; c < in; c += 32) {
        const float w = ldw(W, dt, off + c);
#pragma unroll
        for (int bb = 0; bb < BT; bb++)
            if (bb < nb) acc[bb] = fmaf(w, act_in(x[(size_t)bb * ldx + c], act), acc[bb]);
    }
}

template <int BT>
__global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_kernel(gemv_params p)
{
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (row >= p.total) return;   /* whole warps only: no barrier in this kernel */
    int j = 0;
#pragma unroll
    for (int q = 1; q < MSC_MAX_JOBS; q++)
        if (q < p.njobs && row >= p.row0[q]) j = q;
    const msc_job *J = p.jobs + j;   /* descriptors and weights never change: safe before the wait */
    const int r = row - J->row0, nseg = J->nseg;
    for (int s = 0; s < nseg; s++) {
        const size_t bytes = (size_t)J->in[s] * (J->dt[s] == MS_F32 ? 4 : 2);
        const char *wr = (const char *)J->W[s] + (size_t)r * bytes;
        for (size_t o = (size_t)lane * 128; o < bytes; o += 32 * 128) prefetch_l2(wr + o);
    }
    griddep_wait();
    const int b0 = blockIdx.y * BT, nb = p.B - b0 < BT ? p.B - b0 : BT;
    float acc[BT];
#pragma unroll
    for (int bb = 0; bb < BT; bb++) acc[bb] = 0.0f;
    for (int s = 0; s < nseg; s++) {
        const void *W = J->W[s];
        const int dt = J->dt[s], in = J->in[s], ldx = J->ldx[s], act = J->act[s];
        const float *x = J->x[s] + (size_t)b0 * ldx;
        const size_t esz = dt == MS_F32 ? 4 : 2;
        const bool vec = ((size_t)in * esz) % 16 == 0 && ((uintptr_t)W & 15) == 0 && (ldx & 3) == 0 &&
                         ((uintptr_t)J->x[s] & 15) == 0;
        if (vec) {
            const void *wrow = (const char *)W + (size_t)r * in * esz;
            if (dt == MS_F32) seg_vec<MS_F32, BT>(wrow, x, ldx, in, act, nb, lane, acc);
            else if (dt == MS_BF16) seg_vec<MS_BF16, BT>(wrow, x, ldx, in, act, nb, lane, acc);
            else seg_vec<MS_F16, BT>(wrow, x, ldx, in, act, nb, lane, acc);
        } else {
            seg_scalar<BT>(W, dt, (size_t)r * in, x, ldx, in, act, nb, lane, acc);
        }
    }
    warp_sum_n(acc);
#pragma unroll
    for (int bb = 0; bb < BT; bb++) {
        if (bb < nb && lane == bb) {
            const int b = b0 + bb;
            float v = acc[bb];
            if (J->base) v = J->base[(size_t)b * J->ldbase + r] + v;
            J->y[(size_t)b * J->ldy + r] = v;
        }
    }
}

/* x (B rows of ldx) -> act(x) in dtype dt, rows of ldd (the cuBLAS inputs) */
__global__ void __launch_bounds__(256) convert_kernel(const float *x, int ldx, int in, int act, void *dst, int dt, int ldd)
{
    griddep_wait();
    const int b = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < in; i += gridDim.x * blockDim.x) {
        const float v = act_in(x[(size_t)b * ldx + i], act);
        const size_t o = (size_t)b * ldd + i;
        if (dt == MS_F32) {
            ((float *)dst)[o] = v;
        } else {
#ifdef MSC_EMU
            ((uint16_t *)dst)[o] = dt == MS_BF16 ? ms_f32_to_bf16(v) : ms_f32_to_f16(v);
#else
            if (dt == MS_BF16) ((__nv_bfloat16 *)dst)[o] = __float2bfloat16_rn(v);
            else ((__half *)dst)[o] = __float2half_rn(v);
#endif
        }
    }
}

/* ---- launchers ------------------------------------------------------------ */

static cudaDataType cu_type(int dt) { return dt == MS_F32 ? CUDA_R_32F : dt == MS_BF16 ? CUDA_R_16BF : CUDA_R_16F; }

static int blas_ready(msc_ctx *c, ms_err *err)
{
    if (c->blas) return 0;
    const size_t wsb = (size_t)32 << 20;
    cublasHandle_t h;
    cublasStatus_t s = cublasCreate(&h);
    if (s != CUBLAS_STATUS_SUCCESS) {
        ms_seterr(err, "cublas: cublasCreate: %s", cublasGetStatusString(s));
        return -1;
    }
    c->blas = h;
    MSC_CK(cudaMalloc(&c->blas_ws, wsb));
    if ((s = cublasSetStream(h, c->stream)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetWorkspace(h, c->blas_ws, wsb)) != CUBLAS_STATUS_SUCCESS ||
        (s = cublasSetMathMode(h, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS) {   /* fp32 stays fp32: no TF32 */
        ms_seterr(err, "cublas: setting up the handle: %s", cublasGetStatusString(s));
        return -1;
    }
    return 0;
}

static int gemv_cublas(msc_ctx *c, const msc_job *jobs, int njobs, int B, ms_err *err)
{
    if (blas_ready(c, err)) return -1;
    const float one = 1.0f, zero = 0.0f;
    for (int i = 0; i < njobs; i++) {
        const msc_job *J = &jobs[i];
        if (J->base)
            MSC_CK(cudaMemcpy2DAsync(J->y, sizeof(float) * (size_t)J->ldy, J->base, sizeof(float) * (size_t)J->ldbase,
                                     sizeof(float) * (size_t)J->out, (size_t)B, cudaMemcpyDeviceToDevice, c->stream));
        for (int s = 0; s < J->nseg; s++) {
            const int dt = J->dt[s], in = J->in[s];
            const void *X = J->x[s];
            int ldX = J->ldx[s];
            if (dt != MS_F32 || J->act[s] != MSC_ACT_NONE) {
                ldX = (in + 7) & ~7;
                size_t need = (size_t)ldX * B * (dt == MS_F32 ? 4 : 2);
                if (need > c->scratch_bytes) {
                    ms_seterr(err, "cuda: cuBLAS path needs %zu bytes of scratch, the context has %zu", need,
                              c->scratch_bytes);
                    return -1;
                }
                int gx = (in + 255) / 256;
                if (gx > 64) gx = 64;
                cudaError_t e = msc_launch(c, convert_kernel, dim3(gx, B), dim3(256), 0, J->x[s], J->ldx[s], in,
                                           J->act[s], c->scratch, dt, ldX);
                if (e != cudaSuccess) {
                    ms_seterr(err, "cuda: launch of convert failed: %s", cudaGetErrorString(e));
                    return -1;
                }
                X = c->scratch;
            }
            const float *beta = (s > 0 || J->base) ? &one : &zero;
            cublasStatus_t st = cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, J->out, B, in, &one, J->W[s],
                                             cu_type(dt), in, X, cu_type(dt), ldX, beta, J->y, CUDA_R_32F, J->ldy,
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
            if (st != CUBLAS_STATUS_SUCCESS) {
                ms_seterr(err, "cublas: GemmEx (%d x %d, batch %d, %s): %s", J->out, in, B, ms_dtype_name((ms_dtype)dt),
                          cublasGetStatusString(st));
                return -1;
            }
        }
    }
    return 0;
}

extern "C" int msc_gemv(msc_ctx *c, msc_job *jobs, const msc_job *djobs, int njobs, int B, int path, ms_err *err)
{
    if (njobs < 1 || njobs > MSC_MAX_JOBS || B < 1) {
        ms_seterr(err, "cuda: gemv: %d jobs (1..%d), batch %d", njobs, MSC_MAX_JOBS, B);
        return -1;
    }
    int total = 0;
    for (int i = 0; i < njobs; i++) {
        if (jobs[i].nseg < 1 || jobs[i].nseg > 2 || jobs[i].out < 0) {
            ms_seterr(err, "cuda: gemv: job %d has %d segments and %d rows", i, jobs[i].nseg, jobs[i].out);
            return -1;
        }
        jobs[i].row0 = total;
        total += jobs[i].out;
    }
    if (total == 0) return 0;
    if (path == MSC_PATH_CUBLAS) return gemv_cublas(c, jobs, njobs, B, err);

    msc_job *tmp = NULL;
    if (!djobs) {   /* tests: copy the descriptors now; not allowed inside a capture */
        MSC_CK(cudaMalloc((void **)&tmp, sizeof(msc_job) * (size_t)njobs));
        cudaError_t e = cudaMemcpy(tmp, jobs, sizeof(msc_job) * (size_t)njobs, cudaMemcpyHostToDevice);
        if (e == cudaSuccess) e = cudaDeviceSynchronize();   /* legacy-stream copy vs our stream */
        if (e != cudaSuccess) {
            cudaFree(tmp);
            ms_seterr(err, "cuda: gemv: copying the job table: %s", cudaGetErrorString(e));
            return -1;
        }
        djobs = tmp;
    }
    gemv_params p;
    memset(&p, 0, sizeof p);
    p.jobs = djobs;
    p.njobs = njobs;
    p.total = total;
    p.B = B;
    for (int i = 0; i < njobs; i++) p.row0[i] = jobs[i].row0;
    const int bt = B == 1 ? 1 : MSC_GEMV_BT;
    const int tiles = (B + bt - 1) / bt;
    dim3 g((total + GEMV_WARPS - 1) / GEMV_WARPS, tiles);
    cudaError_t e = tiles > 65535 ? cudaErrorInvalidConfiguration
                    : bt == 1     ? msc_launch(c, gemv_kernel<1>, g, dim3(GEMV_WARPS * 32), 0, p)
                                  : msc_launch(c, gemv_kernel<MSC_GEMV_BT>, g, dim3(GEMV_WARPS * 32), 0, p);
    if (tmp) {
        cudaError_t e2 = cudaStreamSynchronize(c->stream);
        cudaFree(tmp);
        if (e == cudaSuccess) e = e2;
    }
    if (e != cudaSuccess) {
        ms_seterr(err, "cuda: launch of gemv (%d rows, batch %d) failed: %s", total, B, cudaGetErrorString(e));
        return -1;
    }
    return 0;
}

/* ---- timing for the benchmark --------------------------------------------- */

__global__ void fill_kernel(void *p, int dt, size_t n, uint32_t seed, float scale)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15;
        h *= 2246822519u;
        h ^= h >> 13;
        float v = ((float)(h >> 8) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * scale;
        if (dt == MS_F32) {
            ((float *)p)[i] = v;
        } else {
#ifdef MSC_EMU
            ((uint16_t *)p)[i] = dt == MS_BF16 ? ms_f32_to_bf16(v) : ms_f32_to_f16(v);
#else
            if (dt == MS_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
            else ((__half *)p)[i] = __float2half_rn(v);
#endif
        }
    }
}

static int cmpf(const void *x, const void *y)
{
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

extern "C" double msc_time_gemv(int dt, int out, int in, int B, int path, int copies, int reps, ms_err *err)
{
    if (copies < 1) copies = 1;
    if (reps < 1) reps = 1;
    const size_t esz = dt == MS_F32 ? 4 : 2, wbytes = (size_t)out * in * esz;
    double res = -1;
    msc_ctx *c = msc_ctx_new((size_t)((in + 7) & ~7) * B * 4, err);
    if (!c) return -1;
    void **W = (void **)calloc((size_t)copies, sizeof(void *));
    float *x = NULL, *y = NULL, *ms = (float *)calloc((size_t)reps, sizeof(float));
    msc_job *dj = NULL;
    msc_job *jobs = (msc_job *)calloc((size_t)copies, sizeof(msc_job));
    cudaEvent_t e0 = NULL, e1 = NULL;
    cudaError_t e = W && ms && jobs ? cudaSuccess : cudaErrorMemoryAllocation;
    for (int i = 0; i < copies && e == cudaSuccess; i++) {
        e = cudaMalloc(&W[i], wbytes);
        if (e == cudaSuccess) {
            e = msc_launch(c, fill_kernel, dim3(1024), dim3(256), 0, W[i], dt, (size_t)out * in, 1234u + (uint32_t)i,
                           1.0f / sqrtf((float)in));
        }
    }
    if (e == cudaSuccess) e = cudaMalloc((void **)&x, sizeof(float) * (size_t)in * B);
    if (e == cudaSuccess) e = cudaMalloc((void **)&y, sizeof(float) * (size_t)out * B);
    if (e == cudaSuccess)
        e = msc_launch(c, fill_kernel, dim3(256), dim3(256), 0, (void *)x, (int)MS_F32, (size_t)in * B, 99u, 1.0f);
    if (e == cudaSuccess) e = cudaMalloc((void **)&dj, sizeof(msc_job) * (size_t)copies);
    if (e == cudaSuccess) {
        for (int i = 0; i < copies; i++) {
            msc_job *J = &jobs[i];
            J->W[0] = W[i];
            J->x[0] = x;
            J->dt[0] = dt;
            J->in[0] = in;
            J->ldx[0] = in;
            J->nseg = 1;
            J->out = out;
            J->y = y;
            J->ldy = out;
            J->row0 = 0;
        }
        e = cudaMemcpy(dj, jobs, sizeof(msc_job) * (size_t)copies, cudaMemcpyHostToDevice);
        if (e == cudaSuccess) e = cudaDeviceSynchronize();
    }
    if (e == cudaSuccess) e = cudaEventCreate(&e0);
    if (e == cudaSuccess) e = cudaEventCreate(&e1);
    if (e != cudaSuccess) {
        ms_seterr(err, "cuda: gemv timing setup (%d x %d %s, %d copies): %s", out, in, ms_dtype_name((ms_dtype)dt),
                  copies, cudaGetErrorString(e));
        goto done;
    }
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up */
        if (cudaEventRecord(e0, c->stream) != cudaSuccess) goto fail;
        for (int i = 0; i < copies; i++)
            if (msc_gemv(c, &jobs[i], dj + i, 1, B, path, err)) goto done;
        if (cudaEventRecord(e1, c->stream) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess) goto fail;
        float t;
        if (cudaEventElapsedTime(&t, e0, e1) != cudaSuccess) goto fail;
        if (r >= 0) ms[r] = t / copies;
    }
    qsort(ms, (size_t)reps, sizeof(float), cmpf);
    res = ms[reps / 2];
    goto done;
fail:
    ms_seterr(err, "cuda: gemv timing: %s", cudaGetErrorString(cudaGetLastError()));
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    for (int i = 0; W && i < copies; i++) cudaFree(W[i]);
    cudaFree(x);
    cudaFree(y);
    cudaFree(dj);
    free(W);
    free(ms);
    free(jobs);
    msc_ctx_free(c);
    return res;
}
