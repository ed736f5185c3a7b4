/* msc_emu.cpp: the CPU stand-in for CUDA described in msc_emu.h.
 *
 * Fibers: one ucontext per thread of the running block, scheduled round-robin
 * in a random order per pass (MSC_EMU_SEED, default 1; MSC_EMU_ORDER=0 runs
 * in index order).  A fiber runs until it reaches a barrier or ends.  It is
 * entered the first time with setcontext and afterwards with _longjmp, which,
 * unlike swapcontext, makes no system call.  Block
 * barriers and warp exchanges count arrivals per generation; the last one to
 * arrive releases the others.  If a pass finds no fiber that can run while
 * some have not ended, the kernel has a barrier that not every thread
 * reaches: that is reported and the program aborts (on a GPU it hangs or is
 * undefined).
 */
#undef _FORTIFY_SOURCE   /* its longjmp check refuses jumps between fiber stacks */
#include "msc_emu.h"

#include <algorithm>
#include <csetjmp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <csignal>
#include <random>
#include <sys/mman.h>
#include <unistd.h>
#include <ucontext.h>
#include <vector>

extern "C" {
float ms_bf16_to_f32(uint16_t h);
float ms_f16_to_f32(uint16_t h);
}

namespace msc_emu {

dim3 g_tid, g_bid, g_bdim, g_gdim;

enum { F_RUN, F_WAIT, F_DONE };
enum { K_BLOCK = -1 };   /* wait kinds: -1 block barrier, w >= 0 warp w */

struct Fiber {
    ucontext_t ctx;
    jmp_buf jb;
    char *stack = nullptr;
    bool started = false;
    int state = F_DONE;
    int wait_kind = 0;
    unsigned wait_gen = 0;
};

static const size_t STACK = 256 << 10;
static const int MAXV = 16;   /* values per lane in one warp exchange */
static std::vector<Fiber> fib;
static jmp_buf sched;
static int cur, nthr;
static std::function<void()> *body;
static int bar_count;
static unsigned bar_gen;
struct Warp {
    int count = 0, nval = 0;
    unsigned gen = 0;
    double buf[2][32][MAXV];
    double res[2][MAXV];   /* the sums, computed once by the last lane to arrive */
};
static std::vector<Warp> warps;
static std::vector<unsigned char> smem;
static std::mt19937_64 rng;
static int order_random = -1;
static std::map<const void *, int> smem_attr;

static void die(const char *msg)
{
    fprintf(stderr, "msc_emu: %s (block %u,%u thread %d)\n", msg, g_bid.x, g_bid.y, cur);
    abort();
}

static void set_tid(int t)
{
    g_tid = dim3(t % g_bdim.x, (t / g_bdim.x) % g_bdim.y, t / (g_bdim.x * g_bdim.y));
}

static void entry()
{
    (*body)();
    fib[cur].state = F_DONE;
    _longjmp(sched, 1);   /* never returns: the stack is reused by the next block */
}

static void wait_on(int kind, unsigned gen)
{
    Fiber &f = fib[cur];
    f.state = F_WAIT;
    f.wait_kind = kind;
    f.wait_gen = gen;
    int me = cur;
    if (!_setjmp(fib[me].jb)) _longjmp(sched, 1);
    cur = me;
    set_tid(me);
}

static void release(int kind, unsigned gen)
{
    for (int t = 0; t < nthr; t++)
        if (fib[t].state == F_WAIT && fib[t].wait_kind == kind && fib[t].wait_gen == gen) fib[t].state = F_RUN;
}

void sync_block()
{
    unsigned gen = bar_gen;
    if (++bar_count == nthr) {
        bar_count = 0;
        bar_gen++;
        release(K_BLOCK, gen);
        return;
    }
    wait_on(K_BLOCK, gen);
}

template <class T> static void warp_allsum(T *v, int n)
{
    if (n > MAXV) die("warp exchange of too many values");
    int lane = cur & 31, w = cur >> 5;
    int lanes = std::min(32, nthr - 32 * w);
    if (lanes != 32) die("warp reduction in a partial warp");
    Warp &W = warps[w];
    unsigned gen = W.gen;
    if (W.count == 0) W.nval = n;
    else if (W.nval != n) die("lanes of a warp reduce different numbers of values");
    for (int i = 0; i < n; i++) W.buf[gen & 1][lane][i] = (double)v[i];
    if (++W.count == lanes) {
        /* the butterfly of __shfl_xor_sync(16, 8, 4, 2, 1), in T arithmetic;
         * every lane ends with the same value (a + b == b + a) */
        for (int i = 0; i < n; i++) {
            T a[32], b[32];
            for (int l = 0; l < 32; l++) a[l] = (T)W.buf[gen & 1][l][i];
            for (int off = 16; off >= 1; off >>= 1) {
                for (int l = 0; l < 32; l++) b[l] = a[l] + a[l ^ off];
                std::copy(b, b + 32, a);
            }
            W.res[gen & 1][i] = (double)a[0];
        }
        W.count = 0;
        W.gen++;
        release(w, gen);
    } else {
        wait_on(w, gen);
    }
    for (int i = 0; i < n; i++) v[i] = (T)W.res[gen & 1][i];
}

void warp_allsum_f(float *v, int n) { warp_allsum<float>(v, n); }
void warp_allsum_d(double *v, int n) { warp_allsum<double>(v, n); }

void *dyn_smem() { return smem.data(); }

void check_align(const void *p, size_t a, const char *what)
{
    if ((uintptr_t)p % a) {
        char m[128];
        snprintf(m, sizeof m, "%s: misaligned %zu-byte access at %p", what, a, p);
        die(m);
    }
}

/* Run fiber t until it waits or ends.  A fiber is entered the first time on
 * its own stack (x86-64: two instructions; elsewhere setcontext), later by
 * _longjmp.  Kept out of run_block so that no local of the scheduler lives
 * across the _setjmp. */
static __attribute__((noinline)) void resume(int t)
{
    if (_setjmp(sched)) return;
    if (fib[t].started) _longjmp(fib[t].jb, 1);
    fib[t].started = true;
#if defined(__x86_64__)
    char *top = fib[t].stack + STACK - 64;
    asm volatile("mov %0, %%rsp\n\tcall *%1\n\t" ::"r"(top), "r"(entry) : "memory");
    __builtin_unreachable();
#else
    setcontext(&fib[t].ctx);
#endif
}

static void run_block(unsigned nt)
{
    nthr = (int)nt;
    if (fib.size() < nt) fib.resize(nt);
    warps.assign((nt + 31) / 32, Warp());
    bar_count = 0;
    bar_gen = 0;
    for (unsigned t = 0; t < nt; t++) {
        Fiber &f = fib[t];
        if (!f.stack) {   /* mmap: a guard page below catches a stack overflow; not a "leak" at exit */
            void *m = mmap(nullptr, STACK + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) die("out of memory for fiber stacks");
            mprotect(m, 4096, PROT_NONE);
            f.stack = (char *)m + 4096;
        }
#if !defined(__x86_64__)
        static ucontext_t tmpl;
        static bool have_tmpl;
        if (!have_tmpl) {
            getcontext(&tmpl);
            have_tmpl = true;
        }
#endif
#if !defined(__x86_64__)
        f.ctx = tmpl;
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = STACK;
        f.ctx.uc_link = nullptr;
        makecontext(&f.ctx, entry, 0);
#endif
        f.started = false;
        f.state = F_RUN;
    }
    std::vector<int> order(nt);
    for (unsigned t = 0; t < nt; t++) order[t] = (int)t;
    unsigned done = 0;
    while (done < nt) {
        if (order_random) std::shuffle(order.begin(), order.end(), rng);
        bool any = false;
        for (int t : order) {
            if (fib[t].state != F_RUN) continue;
            any = true;
            cur = t;
            set_tid(t);
            resume(t);
            if (fib[t].state == F_DONE) done++;
        }
        if (!any) {
            int waiting = 0;
            for (unsigned t = 0; t < nt; t++) waiting += fib[t].state == F_WAIT;
            char m[160];
            snprintf(m, sizeof m, "deadlock: %d of %u threads wait at a barrier that the others (ended) never reach",
                     waiting, nt);
            die(m);
        }
    }
}

/* ---- graphs, capture ----------------------------------------------------- */
}  // namespace msc_emu

struct msc_emu_graph { std::vector<std::function<void()>> ops; };
struct msc_emu_stream { int dummy; };
struct msc_emu_event { double t; };
struct msc_emu_cublas { int dummy; };

namespace msc_emu {
static msc_emu_graph *capturing;
static cudaError_t last_err;

static cudaError_t run_or_record(std::function<void()> op)
{
    if (capturing) capturing->ops.push_back(op);
    else op();
    return cudaSuccess;
}

static void on_segv(int sig)
{
    char m[160];
    int n = snprintf(m, sizeof m, "msc_emu: %s in block %u,%u thread %d: an access outside a device buffer?\n",
                     sig == SIGSEGV ? "segmentation fault" : "bus error", g_bid.x, g_bid.y, cur);
    if (write(2, m, (size_t)n) < 0) _exit(139);
    _exit(139);
}

int launch(const void *fn, dim3 grid, dim3 block, size_t sm, std::function<void()> kbody)
{
    if (order_random < 0) {
        signal(SIGSEGV, on_segv);
        signal(SIGBUS, on_segv);
        const char *o = getenv("MSC_EMU_ORDER");
        const char *s = getenv("MSC_EMU_SEED");
        order_random = !(o && !strcmp(o, "0"));
        rng.seed(s ? strtoull(s, nullptr, 10) : 1);
    }
    unsigned nt = block.x * block.y * block.z;
    int limit = 48 << 10;
    auto it = smem_attr.find(fn);
    if (it != smem_attr.end()) limit = it->second;
    if (nt == 0 || nt > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
        sm > (size_t)limit) {
        fprintf(stderr, "msc_emu: invalid launch: grid %u,%u,%u block %u,%u,%u smem %zu (limit %d)\n", grid.x,
                grid.y, grid.z, block.x, block.y, block.z, sm, limit);
        last_err = cudaErrorInvalidConfiguration;
        return cudaErrorInvalidConfiguration;
    }
    return run_or_record([=]() {
        std::function<void()> b = kbody;
        body = &b;
        smem.assign(sm ? sm : 16, 0xFF);
        g_bdim = block;
        g_gdim = grid;
        size_t nb = (size_t)grid.x * grid.y * grid.z;
        std::vector<size_t> ord(nb);
        for (size_t i = 0; i < nb; i++) ord[i] = i;
        if (order_random) std::shuffle(ord.begin(), ord.end(), rng);
        for (size_t i : ord) {
            g_bid = dim3((unsigned)(i % grid.x), (unsigned)((i / grid.x) % grid.y), (unsigned)(i / ((size_t)grid.x * grid.y)));
            run_block(nt);
        }
        body = nullptr;
    });
}
}  // namespace msc_emu

using namespace msc_emu;

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorStreamCaptureInvalidated: return "operation not permitted when stream is capturing";
    }
    return "unknown error";
}

cudaError_t cudaGetLastError(void) { cudaError_t e = last_err; last_err = cudaSuccess; return e; }
cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "msc_emu (CUDA emulated on the CPU)");
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->l2CacheSize = 1 << 20;
    p->totalGlobalMem = (size_t)8 << 30;
    p->sharedMemPerBlockOptin = 227 << 10;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaRuntimeGetVersion(int *v) { *v = 13000; return cudaSuccess; }

/* Device memory ends (to within the 256 bytes of cudaMalloc's alignment) at
 * an inaccessible page, so a kernel that reads or writes past the end of a
 * buffer crashes here instead of reading a neighbour on the GPU. */
static std::map<void *, std::pair<void *, size_t>> *maps;
static void leak_check()
{
    if (maps->empty()) return;
    size_t bytes = 0;
    for (auto &m : *maps) bytes += m.second.second;
    fprintf(stderr, "msc_emu: %zu device buffers (%zu bytes with guard pages) were never freed\n", maps->size(), bytes);
    _exit(3);
}
cudaError_t cudaMalloc(void **p, size_t n)
{
    if (!maps) {
        maps = new std::map<void *, std::pair<void *, size_t>>();
        atexit(leak_check);
    }
    const size_t pg = 4096, n256 = (n + 255) & ~(size_t)255, len = (n256 + pg - 1) / pg * pg + pg;
    void *base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return cudaErrorMemoryAllocation;
    char *guard = (char *)base + len - pg;
    mprotect(guard, pg, PROT_NONE);
    *p = guard - n256;
    (*maps)[*p] = std::make_pair(base, len);
    memset(*p, 0xA5, n256);   /* garbage, as device memory is */
    return cudaSuccess;
}
cudaError_t cudaFree(void *p)
{
    if (!p) return cudaSuccess;
    auto it = maps ? maps->find(p) : decltype(maps->end())();
    if (!maps || it == maps->end()) return cudaErrorInvalidValue;
    munmap(it->second.first, it->second.second);
    maps->erase(it);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t n) { return cudaMalloc(p, n); }
cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, cudaMemcpyKind k)
{
    if (capturing) return cudaErrorStreamCaptureInvalidated;
    memmove(d, s, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t st)
{
    return run_or_record([=]() { memmove(d, s, n); });
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, cudaMemcpyKind k,
                              cudaStream_t st)
{
    if (w > dp || w > sp) return cudaErrorInvalidValue;
    return run_or_record([=]() {
        for (size_t r = 0; r < h; r++) memmove((char *)d + r * dp, (const char *)s + r * sp, w);
    });
}
cudaError_t cudaMemset(void *d, int v, size_t n)
{
    if (capturing) return cudaErrorStreamCaptureInvalidated;
    memset(d, v, n);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *d, int v, size_t n, cudaStream_t st)
{
    return run_or_record([=]() { memset(d, v, n); });
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) { *s = new msc_emu_stream(); return cudaSuccess; }
cudaError_t cudaStreamDestroy(cudaStream_t s) { delete s; return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t s) { return capturing ? cudaErrorStreamCaptureInvalidated : cudaSuccess; }
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
static double now_ms()
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { *e = new msc_emu_event(); return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) { e->t = now_ms(); return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) { *ms = (float)(b->t - a->t); return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode m)
{
    if (capturing) return cudaErrorInvalidValue;
    capturing = new msc_emu_graph();
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *g)
{
    if (!capturing) return cudaErrorInvalidValue;
    *g = capturing;
    capturing = nullptr;
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *x, cudaGraph_t g, unsigned long long flags)
{
    *x = new msc_emu_graph(*g);
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t x, cudaStream_t s)
{
    if (capturing) return cudaErrorStreamCaptureInvalidated;
    for (auto &op : x->ops) op();
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t x) { delete x; return cudaSuccess; }
cudaError_t cudaGraphDestroy(cudaGraph_t g) { delete g; return cudaSuccess; }
cudaError_t cudaFuncSetAttribute(const void *fn, cudaFuncAttribute a, int v)
{
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize || v > (227 << 10)) return cudaErrorInvalidValue;
    smem_attr[fn] = v;
    return cudaSuccess;
}

cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = new msc_emu_cublas(); return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasDestroy(cublasHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *w, size_t n) { return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m) { return CUBLAS_STATUS_SUCCESS; }
const char *cublasGetStatusString(cublasStatus_t s) { return s == CUBLAS_STATUS_SUCCESS ? "success" : "not supported"; }

static double elem(const void *p, cudaDataType t, size_t i)
{
    if (t == CUDA_R_32F) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return t == CUDA_R_16BF ? ms_bf16_to_f32(h) : ms_f16_to_f32(h);
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A, cudaDataType at, int lda, const void *B,
                            cudaDataType bt, int ldb, const void *beta, void *C, cudaDataType ct, int ldc,
                            cublasComputeType_t comp, cublasGemmAlgo_t algo)
{
    if (ta != CUBLAS_OP_T || tb != CUBLAS_OP_N || ct != CUDA_R_32F || at != bt || lda < k || ldb < k || ldc < m)
        return CUBLAS_STATUS_NOT_SUPPORTED;
    float al = *(const float *)alpha, be = *(const float *)beta;
    run_or_record([=]() {
        float *Cf = (float *)C;
        for (int c = 0; c < n; c++)
            for (int r = 0; r < m; r++) {
                double s = 0;
                for (int q = 0; q < k; q++) s += elem(A, at, (size_t)r * lda + q) * elem(B, bt, (size_t)c * ldb + q);
                float v = al * (float)s;
                Cf[(size_t)c * ldc + r] = be == 0 ? v : v + be * Cf[(size_t)c * ldc + r];
            }
    });
    return CUBLAS_STATUS_SUCCESS;
}
