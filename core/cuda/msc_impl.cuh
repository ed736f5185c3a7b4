/* msc_impl.cuh: what the backend's .cu files share and nothing outside them
 * sees: the context, the launch helper, error checks, and the device-side
 * helpers (warp and block sums, dtype loads, the PDL wait).
 *
 * Compiled two ways: by nvcc for the GPU, and by g++ with MSC_EMU defined
 * for the CPU emulator (emu/msc_emu.h), where the same kernel source runs as
 * fibers.  Code here therefore uses only what msc_emu.h provides: 16-byte
 * loads through ld16(), reductions through warp_sum*() and block_sum*(),
 * dynamic shared memory through dyn_smem().
 */
#ifndef MSC_IMPL_CUH
#define MSC_IMPL_CUH

#ifdef MSC_EMU
#include "emu/msc_emu.h"
#else
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "msc.h"

struct msc_ctx {
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;          /* cuBLAS workspace (graph capture needs one set) */
    void *scratch;          /* converted inputs of the cuBLAS path */
    size_t scratch_bytes;
    int pdl;
};

#define MSC_CK(call)                                                                              \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            ms_seterr(err, "cuda: %s at %s:%d: %s", #call, __FILE__, __LINE__, cudaGetErrorString(e_)); \
            return -1;                                                                            \
        }                                                                                         \
    } while (0)

/* Launch k on the context's stream; with c->pdl, as a programmatic dependent
 * launch (the kernel must call griddep_wait() before it reads or writes
 * anything an earlier kernel touches). */
template <typename... KArgs, typename... Args>
static inline cudaError_t msc_launch(msc_ctx *c, void (*k)(KArgs...), dim3 g, dim3 b, size_t smem, Args... args)
{
#ifdef MSC_EMU
    return (cudaError_t)msc_emu::launch((const void *)k, g, b, smem, [=]() { k(args...); });
#else
    cudaLaunchConfig_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.gridDim = g;
    cfg.blockDim = b;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = c->stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = c->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, k, args...);
#endif
}

/* ---- device helpers ------------------------------------------------------ */

/* PDL: wait until the previous kernel in the stream has finished and its
 * writes are visible; then let the next one start its own prologue. */
__device__ __forceinline__ void griddep_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Pull [p, p+bytes) toward L2 (a hint; no effect on results). */
__device__ __forceinline__ void prefetch_l2(const void *p)
{
#if defined(__CUDA_ARCH__)
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

template <class T> __device__ __forceinline__ T ld16(const T *p)
{
#ifdef MSC_EMU
    msc_emu::check_align(p, 16, "ld16");
    return *p;
#else
    return __ldg(p);
#endif
}

__device__ __forceinline__ float bf16_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

__device__ __forceinline__ float f16_f32(uint16_t h)
{
#ifdef MSC_EMU
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0x1f) return __uint_as_float(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-08f;   /* 2^-24 */
        return sign ? -v : v;
    }
    return __uint_as_float(sign | ((e + 112) << 23) | (m << 13));
#else
    return __half2float(__ushort_as_half(h));
#endif
}

/* element i of a matrix of dtype dt, as fp32 (exact) */
__device__ __forceinline__ float ldw(const void *W, int dt, size_t i)
{
    if (dt == MS_F32) return ((const float *)W)[i];
    uint16_t h = ((const uint16_t *)W)[i];
    return dt == MS_BF16 ? bf16_f32(h) : f16_f32(h);
}

__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

/* Sum over the 32 lanes of a warp; every lane gets the same value (the xor
 * butterfly adds the same pairs in every lane). */
__device__ __forceinline__ float warp_sum(float v)
{
#ifdef MSC_EMU
    msc_emu::warp_allsum_f(&v, 1);
#else
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
#endif
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v)
{
#ifdef MSC_EMU
    msc_emu::warp_allsum_d(&v, 1);
#else
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
#endif
    return v;
}

/* n independent warp sums at once (their shuffles interleave) */
template <int NV> __device__ __forceinline__ void warp_sum_n(float (&v)[NV])
{
#ifdef MSC_EMU
    msc_emu::warp_allsum_f(v, NV);
#else
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
#pragma unroll
        for (int i = 0; i < NV; i++) v[i] += __shfl_xor_sync(0xffffffffu, v[i], o);
#endif
}

/* Block-wide sums.  Every thread of the block must call them (they contain
 * __syncthreads); every thread gets the total.  The order of the additions is
 * fixed, so a result is the same on every run. */
__device__ __forceinline__ double block_sum_d(double v)
{
    __shared__ double red_d[33];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum_d(v);
    if (lane == 0) red_d[w] = v;
    __syncthreads();
    if (w == 0) {
        double t = lane < nw ? red_d[lane] : 0.0;
        t = warp_sum_d(t);
        if (lane == 0) red_d[32] = t;
    }
    __syncthreads();
    double r = red_d[32];
    __syncthreads();   /* red_d is reused by the next call */
    return r;
}

__device__ __forceinline__ float block_sum_f(float v)
{
    __shared__ float red_f[33];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    if (lane == 0) red_f[w] = v;
    __syncthreads();
    if (w == 0) {
        float t = lane < nw ? red_f[lane] : 0.0f;
        t = warp_sum(t);
        if (lane == 0) red_f[32] = t;
    }
    __syncthreads();
    float r = red_f[32];
    __syncthreads();
    return r;
}

/* Mean and 1/sqrt(var + eps) of x[0..n) as core/step.c's layer_norm computes
 * them: double sums, biased variance from the deviations, then rounded to
 * float.  Whole block. */
__device__ __forceinline__ void ln_stats(const float *x, int n, double eps, float *mf, float *inv)
{
    double s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    double mean = block_sum_d(s) / n;
    double v = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        double d = x[i] - mean;
        v += d * d;
    }
    double var = block_sum_d(v) / n;
    *inv = (float)(1.0 / sqrt(var + eps));
    *mf = (float)mean;
}

__device__ __forceinline__ float *dyn_smem()
{
#ifdef MSC_EMU
    return (float *)msc_emu::dyn_smem();
#else
    extern __shared__ float4 msc_dsmem[];
    return (float *)msc_dsmem;
#endif
}

#endif
