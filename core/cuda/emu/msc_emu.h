/* msc_emu.h: a CPU stand-in for the part of CUDA that core/cuda/ uses, so
 * the backend's own kernels and host code run, unchanged, on a machine with
 * no GPU (make test-cuda-emu).
 *
 * What it is: every CUDA thread of a block is a fiber (ucontext) on one OS
 * thread; __syncthreads and the warp reductions are barriers among the
 * fibers; blocks run one after another in a random order and the fibers of a
 * block in a random order between barriers, so a kernel that depends on the
 * order of blocks, or reads shared memory before the barrier that publishes
 * it, gives wrong numbers here.  Device memory is host memory (malloc),
 * filled with 0xFF (NaN) when allocated; 16-byte loads check their
 * alignment; a barrier that not every thread reaches aborts with a message.
 * Streams are synchronous; a stream capture records the launches and copies
 * and a graph launch replays them; cuBLAS's GemmEx is a double loop.
 *
 * What it is not: a timing model, a memory-model checker (fibers do not run
 * concurrently, so a data race between warps that a barrier would order is
 * found only when the random order exposes it), or a substitute for running
 * on a GPU.  Only the calls core/cuda/ makes are provided.
 */
#ifndef MSC_EMU_H
#define MSC_EMU_H

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __shared__ static
#define __restrict__ __restrict

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

namespace msc_emu {
extern dim3 g_tid, g_bid, g_bdim, g_gdim;
void sync_block();
/* all 32 lanes of the calling warp deposit n values; each gets back the
 * butterfly (xor 16, 8, 4, 2, 1) sums, as the shuffle reduction computes them */
void warp_allsum_f(float *v, int n);
void warp_allsum_d(double *v, int n);
void *dyn_smem();
void check_align(const void *p, size_t a, const char *what);
int launch(const void *fn, dim3 grid, dim3 block, size_t smem, std::function<void()> body);
}

#define threadIdx (msc_emu::g_tid)
#define blockIdx (msc_emu::g_bid)
#define blockDim (msc_emu::g_bdim)
#define gridDim (msc_emu::g_gdim)
static inline void __syncthreads() { msc_emu::sync_block(); }
template <class T> static inline T __ldg(const T *p)
{
    if (sizeof(T) >= 8) msc_emu::check_align(p, sizeof(T), "__ldg");
    return *p;
}
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }

/* ---- the runtime API subset ---------------------------------------------- */
typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorStreamCaptureInvalidated = 901,
} cudaError_t;
typedef enum { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3,
               cudaMemcpyDefault = 4 } cudaMemcpyKind;
typedef enum { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1,
               cudaStreamCaptureModeRelaxed = 2 } cudaStreamCaptureMode;
typedef enum { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 } cudaFuncAttribute;
#define cudaStreamNonBlocking 1
struct msc_emu_stream;
struct msc_emu_event;
struct msc_emu_graph;
typedef msc_emu_stream *cudaStream_t;
typedef msc_emu_event *cudaEvent_t;
typedef msc_emu_graph *cudaGraph_t;
typedef msc_emu_graph *cudaGraphExec_t;
struct cudaDeviceProp {
    char name[256];
    int major, minor, multiProcessorCount;
    int l2CacheSize;
    size_t totalGlobalMem, sharedMemPerBlockOptin;
    int memoryClockRate, memoryBusWidth;
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaDriverGetVersion(int *v);
cudaError_t cudaRuntimeGetVersion(int *v);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t n);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k);
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st);
cudaError_t cudaMemcpy2DAsync(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, cudaMemcpyKind k,
                              cudaStream_t st);
cudaError_t cudaMemset(void *d, int v, size_t n);
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaEventCreate(cudaEvent_t *e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode m);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaFuncSetAttribute(const void *fn, cudaFuncAttribute a, int v);
struct cudaFuncAttributes { int maxThreadsPerBlock, numRegs; size_t sharedSizeBytes; };
template <class F> static inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *a, F *fn)
{
    a->maxThreadsPerBlock = 1024;
    a->numRegs = 0;
    a->sharedSizeBytes = 0;
    return cudaSuccess;
}
template <class F> static inline cudaError_t cudaFuncSetAttribute(F *fn, cudaFuncAttribute a, int v)
{
    return cudaFuncSetAttribute((const void *)fn, a, v);
}

/* ---- cuBLAS subset -------------------------------------------------------- */
typedef enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_NOT_SUPPORTED = 15 } cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 } cudaDataType;
typedef enum { CUBLAS_COMPUTE_32F = 68 } cublasComputeType_t;
typedef enum { CUBLAS_GEMM_DEFAULT = -1 } cublasGemmAlgo_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0 } cublasMath_t;
struct msc_emu_cublas;
typedef msc_emu_cublas *cublasHandle_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *w, size_t n);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
                            cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
                            cublasComputeType_t comp, cublasGemmAlgo_t algo);

#endif
