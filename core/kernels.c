/* kernels.c: the CPU matrix-vector products of the forward step, the
 * fp32 <-> half conversions, and a memory read-bandwidth probe.
 *
 * What it is: y = W·x over an ms_mat in F32, F16 or BF16, for both storage
 * layouts.  Decode at batch 1 reads every weight byte once per token and does
 * two flops per weight, so the products are bound by memory bandwidth, not by
 * arithmetic: the half-precision kernels convert 8 weights at a time to fp32
 * in registers (F16C for F16, a zero-extend and shift for BF16), keep several
 * independent FMA accumulators so the loads never wait on an addition, read
 * each thread's rows as one sequential stream, and split the rows over a small
 * thread pool (below) so all cores pull from memory.  Reading half the bytes
 * of F32 is what makes BF16/F16 decode about 2x faster.  F32 uses the same
 * AVX2 kernel, or OpenBLAS's sgemv where AVX2 is missing (see g_f32_blas;
 * the library is opened at run time, see blas_open).
 *
 * The AVX2/FMA/F16C code is compiled with a target attribute and chosen at
 * run time (checked once); a portable scalar version with the same semantics
 * (only the order of the float additions differs) runs the half types
 * everywhere else.
 *
 * What it is not: no allocation, no printing, no errors on the hot path; the
 * caller guarantees that W->data holds out*in elements and that x and y do not
 * overlap.  Shapes of any size are handled (remainders, 1x1).
 */
#define _GNU_SOURCE
#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>   /* the types and constants only: the library is opened at run time */
#include <dlfcn.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#define MS_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define MS_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define MS_X86 0
#endif

/* OpenBLAS is opened when a product first needs it (F32 without AVX2, or
 * the bench hook), not linked: its library constructor starts worker threads
 * and reserves their buffers at program start, and under an address-space
 * limit (ulimit -v) that constructor kills the process (SIGINT, before main)
 * or leaves a thread that never finishes, so a program that never calls it
 * would still die or hang.  Without the library the portable kernel runs. */
typedef void (*blas_sgemv_fn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const blasint, const blasint,
                              const float, const float *, const blasint, const float *, const blasint, const float,
                              float *, const blasint);
static blas_sgemv_fn blas_sgemv;
static void (*blas_set_threads)(int);
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_open(void)
{
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    blas_sgemv = (blas_sgemv_fn)dlsym(h, "cblas_sgemv");
    *(void **)&blas_set_threads = dlsym(h, "openblas_set_num_threads");
    if (!blas_sgemv) return;
    if (blas_set_threads) blas_set_threads(ms_kernels_get_threads());
}

/* OpenBLAS's sgemv, or NULL where the library cannot be opened */
static blas_sgemv_fn blas_get(void)
{
    pthread_once(&blas_once, blas_open);
    return blas_sgemv;
}

/* Below this many weights a matrix is done on the calling thread: handing it
 * to the pool costs about as much as the product itself. */
#define MS_PAR_MIN 65536

/* ---- settings (process-wide, as the thread count of OpenBLAS is) ---------- */

static int g_threads;       /* 0 = not chosen yet: number of online CPUs */
static int g_isa = -1;      /* -1 unknown, 0 scalar, 1 AVX2+FMA+F16C */
static int g_force_scalar;  /* test hook: use the fallback even with AVX2 */
/* F32 through OpenBLAS (1) or our AVX2 kernel (0, where AVX2 exists).  Ours
 * is the default: on the 2-core machines sgemv read the 65536x768 head at
 * 8-11 GB/s where ours read 14-15 GB/s (its four streams, see rows_avx2), a
 * pass over all matrices of the 0.1B shape took 63-69 ms against 39-44 ms,
 * OpenBLAS's threads behave badly on a shared machine, ours share the pool
 * with the BF16/F16 kernels, and our results do not depend on the thread
 * count. */
static int g_f32_blas = 0;
static int g_use_omp;       /* bench hook: OpenMP parallel loop instead of the pool */

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* The pool's size, OpenMP's default team (for other modules) and OpenBLAS's
 * threads, all at once. */
void ms_kernels_set_threads(int n)
{
    if (n < 1) n = online_cpus();
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    if (blas_set_threads) blas_set_threads(n);   /* only once it is open */
}

int ms_kernels_get_threads(void)
{
    if (g_threads == 0) ms_kernels_set_threads(0);
    return g_threads;
}

static int use_avx2(void)
{
    if (g_isa < 0) {
#if MS_X86
        /* F16C from CPUID.1:ECX bit 29: clang's __builtin_cpu_supports does
         * not know "f16c" (the OS saving YMM state is covered by "avx2"). */
        unsigned a, b, c, d;
        int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
        __builtin_cpu_init();
        g_isa = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
        g_isa = 0;
#endif
    }
    return g_isa && !g_force_scalar;
}

/* Hooks for tests and benchmarks; their callers declare them (they are not
 * part of kernels.h's contract).
 * ms_kernels_force_scalar(1): run the portable fallback even where AVX2 exists.
 * ms_kernels_f32_blas(0/1): F32 products through our AVX2 kernel or OpenBLAS.
 * ms_kernels_use_omp(1): split products with an OpenMP loop, not the pool.
 * Each returns the previous setting. */
int ms_kernels_force_scalar(int on)
{
    int old = g_force_scalar;
    g_force_scalar = on;
    return old;
}

int ms_kernels_f32_blas(int on)
{
    int old = g_f32_blas;
    g_f32_blas = on;
    return old;
}

int ms_kernels_use_omp(int on)
{
    int old = g_use_omp;
    g_use_omp = on;
    return old;
}

/* ---- conversions ---------------------------------------------------------- */

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float ms_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

float ms_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)                          /* inf, NaN (payload kept) */
        return u2f(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {                           /* zero, subnormal: man * 2^-24 */
        float v = (float)man * 0x1p-24f;     /* exact: man < 2^10 */
        return sign ? -v : v;
    }
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ms_f32_to_bf16(float f)
{
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)      /* NaN: keep it NaN, quiet it */
        return (uint16_t)((u >> 16) | 0x0040);
    u += 0x7fffu + ((u >> 16) & 1);           /* round to nearest even; overflow -> inf */
    return (uint16_t)(u >> 16);
}

uint16_t ms_f32_to_f16(float f)
{
    uint32_t u = f2u(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    u &= 0x7fffffffu;
    if (u >= 0x7f800000u)                     /* inf, NaN (quiet, top payload bits) */
        return sign | (u > 0x7f800000u ? (uint16_t)(0x7e00 | ((u >> 13) & 0x3ff)) : 0x7c00);
    if (u >= 0x477ff000u)                     /* >= 65520 rounds past 65504 */
        return sign | 0x7c00;
    if (u < 0x38800000u) {                    /* below 2^-14: subnormal or zero */
        /* Adding 0.5 puts the 2^-24 unit at the last mantissa bit, so the FPU
         * does the round-to-nearest-even of the subnormal for us. */
        float r = u2f(u) + 0.5f;
        return sign | (uint16_t)(f2u(r) - f2u(0.5f));
    }
    u += 0xfffu + ((u >> 13) & 1);            /* round to nearest even at bit 13 */
    return sign | (uint16_t)((u - 0x38000000u) >> 13);  /* rebias 127 -> 15 */
}

static inline size_t dt_size(ms_dtype dt) { return dt == MS_F32 ? 4 : 2; }

static inline float cvt1(const void *p, size_t i, ms_dtype dt)
{
    switch (dt) {
    case MS_F16:  return ms_f16_to_f32(((const uint16_t *)p)[i]);
    case MS_BF16: return ms_bf16_to_f32(((const uint16_t *)p)[i]);
    default:      return ((const float *)p)[i];
    }
}

void ms_mat_row(const ms_mat *W, int row, float *dst)
{
    size_t n = (size_t)W->in;
    if (!W->trans) {
        if (W->dt == MS_F32) {
            memcpy(dst, (const float *)W->data + (size_t)row * n, n * sizeof(float));
            return;
        }
        for (size_t j = 0; j < n; j++) dst[j] = cvt1(W->data, (size_t)row * n + j, W->dt);
    } else {                                  /* row of the (out,in) view: a strided column */
        for (size_t j = 0; j < n; j++) dst[j] = cvt1(W->data, j * (size_t)W->out + row, W->dt);
    }
}

/* ---- kernels: portable scalar --------------------------------------------- */

/* y[r] for r in [r0, r1) of an (out, in) matrix.  Both scalar routines are
 * inlined with a constant dt at each call (see do_part), so the conversion's
 * switch leaves the inner loops. */
static inline __attribute__((always_inline)) void
rows_scalar(const void *W, ms_dtype dt, int in, const float *x, float *y, int r0, int r1)
{
    for (int r = r0; r < r1; r++) {
        size_t base = (size_t)r * in;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        int j = 0;
        for (; j + 4 <= in; j += 4) {
            s0 += cvt1(W, base + j, dt) * x[j];
            s1 += cvt1(W, base + j + 1, dt) * x[j + 1];
            s2 += cvt1(W, base + j + 2, dt) * x[j + 2];
            s3 += cvt1(W, base + j + 3, dt) * x[j + 3];
        }
        for (; j < in; j++) s0 += cvt1(W, base + j, dt) * x[j];
        y[r] = (s0 + s1) + (s2 + s3);
    }
}

/* y[c] for c in [c0, c1) of an (in, out) matrix used as x @ M. */
static inline __attribute__((always_inline)) void
cols_scalar(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c0, int c1)
{
    for (int c = c0; c < c1; c++) y[c] = 0;
    for (int i = 0; i < in; i++) {
        float xi = x[i];
        size_t base = (size_t)i * out;
        for (int c = c0; c < c1; c++) y[c] += xi * cvt1(M, base + c, dt);
    }
}

/* ---- kernels: AVX2 + FMA + F16C ------------------------------------------- */
#if MS_X86

/* 8 consecutive weights from element i, as fp32.  dt is a constant at every
 * call site, so each kernel below is compiled once per dtype with no branch. */
static inline __attribute__((always_inline)) MS_AVX2 __m256
load8(const void *p, size_t i, ms_dtype dt)
{
    if (dt == MS_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
    if (dt == MS_BF16) {
        __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    }
    return _mm256_loadu_ps((const float *)p + i);
}

/* The four horizontal sums of a, b, c, d in one vector. */
static inline __attribute__((always_inline)) MS_AVX2 __m128
hsum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 ab = _mm256_hadd_ps(a, b);
    __m256 cd = _mm256_hadd_ps(c, d);
    __m256 s = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

static inline __attribute__((always_inline)) MS_AVX2 float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One row of an (out, in) matrix, with exactly the arithmetic of one lane of
 * rows_avx2 below (so a row's result never depends on which routine, thread
 * or chunk computed it): even and odd 8-blocks of each 16 into two
 * accumulators, their sum reduced as hsum4 does, then the scalar tail. */
static inline __attribute__((always_inline)) MS_AVX2 float
row1_avx2(const void *W, ms_dtype dt, int in, const float *x, size_t b)
{
    __m256 a = _mm256_setzero_ps(), c = a;
    int j = 0;
    for (; j + 16 <= in; j += 16) {
        a = _mm256_fmadd_ps(load8(W, b + j, dt), _mm256_loadu_ps(x + j), a);
        c = _mm256_fmadd_ps(load8(W, b + j + 8, dt), _mm256_loadu_ps(x + j + 8), c);
    }
    if (j + 8 <= in) {
        a = _mm256_fmadd_ps(load8(W, b + j, dt), _mm256_loadu_ps(x + j), a);
        j += 8;
    }
    __m256 z = _mm256_setzero_ps();
    float s = _mm_cvtss_f32(hsum4(_mm256_add_ps(a, c), z, z, z));
    for (; j < in; j++) s += cvt1(W, b + j, dt) * x[j];
    return s;
}

/* Rows [r0, r1) of an (out, in) matrix as four streams: the range is cut in
 * four quarters and row i of each quarter is done together, sharing the loads
 * of x (eight FMA chains in flight).  Why four streams far apart: one core
 * keeps only so many cache misses in flight, and the hardware prefetcher
 * runs ahead on each sequential stream it tracks, so four long sequential
 * streams pull much more than one.  On the 2-core machines this took a
 * 65536x768 product from 10 to 17-19 GB/s (F32) with 2 threads, and a plain
 * read from 8.5 to 14.5 GB/s on one core.  (Four *adjacent* rows, by
 * contrast, are four streams that stop after one short row each; that was
 * the slowest layout of all.)
 * F16/BF16 also prefetch 512 bytes ahead on each stream: converting takes
 * about three times the instructions per cache line that F32 does, so fewer
 * loads fit in the out-of-order window; the prefetches retire at once and
 * keep lines in flight (+10-15% for BF16; for F32 they cost 25%). */
static inline __attribute__((always_inline)) MS_AVX2 void
rows_avx2(const void *W, ms_dtype dt, int in, const float *x, float *y, int r0, int r1)
{
    int q = (r1 - r0) / 4;
    for (int i = 0; i < q; i++) {
        size_t b0 = (size_t)(r0 + i) * in, step = (size_t)q * in;
        size_t b1 = b0 + step, b2 = b1 + step, b3 = b2 + step;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m256 c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        int j = 0;
        for (; j + 16 <= in; j += 16) {
            if (dt != MS_F32 && (j & 31) == 0) {   /* one line per stream per 32 halves */
                const char *w = (const char *)W + 512;
                _mm_prefetch(w + (b0 + j) * 2, _MM_HINT_T0);
                _mm_prefetch(w + (b1 + j) * 2, _MM_HINT_T0);
                _mm_prefetch(w + (b2 + j) * 2, _MM_HINT_T0);
                _mm_prefetch(w + (b3 + j) * 2, _MM_HINT_T0);
            }
            __m256 xa = _mm256_loadu_ps(x + j), xb = _mm256_loadu_ps(x + j + 8);
            a0 = _mm256_fmadd_ps(load8(W, b0 + j, dt), xa, a0);
            a1 = _mm256_fmadd_ps(load8(W, b1 + j, dt), xa, a1);
            a2 = _mm256_fmadd_ps(load8(W, b2 + j, dt), xa, a2);
            a3 = _mm256_fmadd_ps(load8(W, b3 + j, dt), xa, a3);
            c0 = _mm256_fmadd_ps(load8(W, b0 + j + 8, dt), xb, c0);
            c1 = _mm256_fmadd_ps(load8(W, b1 + j + 8, dt), xb, c1);
            c2 = _mm256_fmadd_ps(load8(W, b2 + j + 8, dt), xb, c2);
            c3 = _mm256_fmadd_ps(load8(W, b3 + j + 8, dt), xb, c3);
        }
        if (j + 8 <= in) {
            __m256 xa = _mm256_loadu_ps(x + j);
            a0 = _mm256_fmadd_ps(load8(W, b0 + j, dt), xa, a0);
            a1 = _mm256_fmadd_ps(load8(W, b1 + j, dt), xa, a1);
            a2 = _mm256_fmadd_ps(load8(W, b2 + j, dt), xa, a2);
            a3 = _mm256_fmadd_ps(load8(W, b3 + j, dt), xa, a3);
            j += 8;
        }
        float t[4];
        _mm_storeu_ps(t, hsum4(_mm256_add_ps(a0, c0), _mm256_add_ps(a1, c1),
                               _mm256_add_ps(a2, c2), _mm256_add_ps(a3, c3)));
        for (; j < in; j++) {
            float xj = x[j];
            t[0] += cvt1(W, b0 + j, dt) * xj;
            t[1] += cvt1(W, b1 + j, dt) * xj;
            t[2] += cvt1(W, b2 + j, dt) * xj;
            t[3] += cvt1(W, b3 + j, dt) * xj;
        }
        y[r0 + i] = t[0];
        y[r0 + q + i] = t[1];
        y[r0 + 2 * q + i] = t[2];
        y[r0 + 3 * q + i] = t[3];
    }
    for (int r = r0 + 4 * q; r < r1; r++) y[r] = row1_avx2(W, dt, in, x, (size_t)r * in);
}

/* Columns of an (in, out) matrix used as x @ M, y = sum_i x_i * M[i,:],
 * vectorised over the outputs.  The rows are read as four streams, like
 * rows_avx2: the quarters [s*q, (s+1)*q) with q = in/4, the 0-3 rows left
 * over going last.  Threads split the columns only, in blocks of 64, and
 * each column is computed the same way whichever block it is in, so the
 * result does not depend on the thread count. */

/* Columns [c, c+8) (two = 0) or [c, c+16) (two = 1) of a narrow matrix
 * (out <= 64, a LoRA down-projection): one partial sum per quarter in
 * registers, y = (P0 + P1) + (P2 + P3). */
static inline __attribute__((always_inline)) MS_AVX2 void
cols_narrow(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c, int two)
{
    int q = in / 4;
    size_t sq = (size_t)q * out;
    __m256 a[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (int i = 0; i < q; i++) {
        size_t b = (size_t)i * out + c;
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            __m256 xs = _mm256_broadcast_ss(x + k * q + i);
            a[2 * k] = _mm256_fmadd_ps(load8(M, b + k * sq, dt), xs, a[2 * k]);
            if (two) a[2 * k + 1] = _mm256_fmadd_ps(load8(M, b + k * sq + 8, dt), xs, a[2 * k + 1]);
        }
    }
    for (int i = 4 * q; i < in; i++) {
        __m256 xs = _mm256_broadcast_ss(x + i);
        size_t b = (size_t)i * out + c;
        a[6] = _mm256_fmadd_ps(load8(M, b, dt), xs, a[6]);
        if (two) a[7] = _mm256_fmadd_ps(load8(M, b + 8, dt), xs, a[7]);
    }
    _mm256_storeu_ps(y + c, _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[4], a[6])));
    if (two)
        _mm256_storeu_ps(y + c + 8, _mm256_add_ps(_mm256_add_ps(a[1], a[3]), _mm256_add_ps(a[5], a[7])));
}

/* Columns [c0, c0 + 8k) of a wide matrix: y (in L1) gathers one row of each
 * quarter per pass, one FMA chain per column in the order i, q+i, 2q+i,
 * 3q+i, ..., then the leftover rows. */
static inline __attribute__((always_inline)) MS_AVX2 void
cols_wide(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c0, int c1)
{
    int cv = c0 + ((c1 - c0) & ~7), q = in / 4;
    size_t sq = (size_t)q * out;
    for (int c = c0; c < cv; c++) y[c] = 0;
    for (int i = 0; i < q; i++) {
        __m256 x0 = _mm256_broadcast_ss(x + i), x1 = _mm256_broadcast_ss(x + q + i);
        __m256 x2 = _mm256_broadcast_ss(x + 2 * q + i), x3 = _mm256_broadcast_ss(x + 3 * q + i);
        size_t b = (size_t)i * out;
        for (int c = c0; c < cv; c += 8) {
            __m256 v = _mm256_loadu_ps(y + c);
            v = _mm256_fmadd_ps(load8(M, b + c, dt), x0, v);
            v = _mm256_fmadd_ps(load8(M, b + sq + c, dt), x1, v);
            v = _mm256_fmadd_ps(load8(M, b + 2 * sq + c, dt), x2, v);
            v = _mm256_fmadd_ps(load8(M, b + 3 * sq + c, dt), x3, v);
            _mm256_storeu_ps(y + c, v);
        }
    }
    for (int i = 4 * q; i < in; i++) {
        __m256 xi = _mm256_broadcast_ss(x + i);
        size_t b = (size_t)i * out;
        for (int c = c0; c < cv; c += 8)
            _mm256_storeu_ps(y + c, _mm256_fmadd_ps(load8(M, b + c, dt), xi, _mm256_loadu_ps(y + c)));
    }
}

/* The last (c1 - c0) % 8 columns (only ever the matrix's last columns), one
 * FMA chain each in cols_wide's order. */
static inline __attribute__((always_inline)) MS_AVX2 void
cols_tail(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c0, int c1)
{
    int q = in / 4;
    for (int c = c0 + ((c1 - c0) & ~7); c < c1; c++) {
        float s = 0;
        for (int i = 0; i < q; i++)
            for (int k = 0; k < 4; k++)
                s = fmaf(cvt1(M, (size_t)(k * q + i) * out + c, dt), x[k * q + i], s);
        for (int i = 4 * q; i < in; i++) s = fmaf(cvt1(M, (size_t)i * out + c, dt), x[i], s);
        y[c] = s;
    }
}

static inline __attribute__((always_inline)) MS_AVX2 void
cols_avx2(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c0, int c1)
{
    if (out > 64) {
        cols_wide(M, dt, in, out, x, y, c0, c1);
    } else {
        int c = c0;
        for (; c + 16 <= c1; c += 16) cols_narrow(M, dt, in, out, x, y, c, 1);
        if (c + 8 <= c1) cols_narrow(M, dt, in, out, x, y, c, 0);
    }
    cols_tail(M, dt, in, out, x, y, c0, c1);
}

/* Rows [r0, r1) of an (out, in) matrix for four vectors at once: each
 * weight is loaded (and converted) once for the four, and each (row, vector)
 * gets exactly row1_avx2's arithmetic (the even/odd accumulators, the hsum4
 * lane, the scalar tail), so the results are bit for bit those of
 * rows_avx2 / row1_avx2 on each vector alone. */
static inline __attribute__((always_inline)) MS_AVX2 void
rows4v_avx2(const void *W, ms_dtype dt, int in, const float *x0, const float *x1, const float *x2, const float *x3,
            float *y0, float *y1, float *y2, float *y3, int r0, int r1)
{
    for (int r = r0; r < r1; r++) {
        size_t b = (size_t)r * in;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m256 c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        int j = 0;
        for (; j + 16 <= in; j += 16) {
            __m256 w0 = load8(W, b + j, dt), w1 = load8(W, b + j + 8, dt);
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + j), a0);
            a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + j), a1);
            a2 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x2 + j), a2);
            a3 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x3 + j), a3);
            c0 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x0 + j + 8), c0);
            c1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x1 + j + 8), c1);
            c2 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x2 + j + 8), c2);
            c3 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x3 + j + 8), c3);
        }
        if (j + 8 <= in) {
            __m256 w0 = load8(W, b + j, dt);
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x0 + j), a0);
            a1 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x1 + j), a1);
            a2 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x2 + j), a2);
            a3 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x3 + j), a3);
            j += 8;
        }
        float t[4];
        _mm_storeu_ps(t, hsum4(_mm256_add_ps(a0, c0), _mm256_add_ps(a1, c1), _mm256_add_ps(a2, c2),
                               _mm256_add_ps(a3, c3)));
        for (; j < in; j++) {
            float wj = cvt1(W, b + j, dt);
            t[0] += wj * x0[j];
            t[1] += wj * x1[j];
            t[2] += wj * x2[j];
            t[3] += wj * x3[j];
        }
        y0[r] = t[0];
        y1[r] = t[1];
        y2[r] = t[2];
        y3[r] = t[3];
    }
}

static MS_AVX2 void rows4v_f32(const void *W, int in, const float *const *x, float *const *y, int r0, int r1)
{ rows4v_avx2(W, MS_F32, in, x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3], r0, r1); }
static MS_AVX2 void rows4v_f16(const void *W, int in, const float *const *x, float *const *y, int r0, int r1)
{ rows4v_avx2(W, MS_F16, in, x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3], r0, r1); }
static MS_AVX2 void rows4v_bf16(const void *W, int in, const float *const *x, float *const *y, int r0, int r1)
{ rows4v_avx2(W, MS_BF16, in, x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3], r0, r1); }

static MS_AVX2 void rows_avx2_f32(const void *W, int in, const float *x, float *y, int r0, int r1)
{ rows_avx2(W, MS_F32, in, x, y, r0, r1); }
static MS_AVX2 void rows_avx2_f16(const void *W, int in, const float *x, float *y, int r0, int r1)
{ rows_avx2(W, MS_F16, in, x, y, r0, r1); }
static MS_AVX2 void rows_avx2_bf16(const void *W, int in, const float *x, float *y, int r0, int r1)
{ rows_avx2(W, MS_BF16, in, x, y, r0, r1); }

static MS_AVX2 void cols_avx2_f32(const void *M, int in, int out, const float *x, float *y, int c0, int c1)
{ cols_avx2(M, MS_F32, in, out, x, y, c0, c1); }
static MS_AVX2 void cols_avx2_f16(const void *M, int in, int out, const float *x, float *y, int c0, int c1)
{ cols_avx2(M, MS_F16, in, out, x, y, c0, c1); }
static MS_AVX2 void cols_avx2_bf16(const void *M, int in, int out, const float *x, float *y, int c0, int c1)
{ cols_avx2(M, MS_BF16, in, out, x, y, c0, c1); }

#endif /* MS_X86 */

/* ---- dispatch ------------------------------------------------------------- */

/* One thread's share of the work: rows (trans 0) or columns (trans 1). */
static void do_part(const ms_mat *W, const float *x, float *y, int p0, int p1)
{
#if MS_X86
    if (use_avx2()) {
        switch (W->dt) {
        case MS_F16:
            if (W->trans) cols_avx2_f16(W->data, W->in, W->out, x, y, p0, p1);
            else rows_avx2_f16(W->data, W->in, x, y, p0, p1);
            return;
        case MS_BF16:
            if (W->trans) cols_avx2_bf16(W->data, W->in, W->out, x, y, p0, p1);
            else rows_avx2_bf16(W->data, W->in, x, y, p0, p1);
            return;
        default:
            if (W->trans) cols_avx2_f32(W->data, W->in, W->out, x, y, p0, p1);
            else rows_avx2_f32(W->data, W->in, x, y, p0, p1);
            return;
        }
    }
#endif
    switch (W->dt) {
    case MS_F16:
        if (W->trans) cols_scalar(W->data, MS_F16, W->in, W->out, x, y, p0, p1);
        else rows_scalar(W->data, MS_F16, W->in, x, y, p0, p1);
        return;
    case MS_BF16:
        if (W->trans) cols_scalar(W->data, MS_BF16, W->in, W->out, x, y, p0, p1);
        else rows_scalar(W->data, MS_BF16, W->in, x, y, p0, p1);
        return;
    default:
        if (W->trans) cols_scalar(W->data, MS_F32, W->in, W->out, x, y, p0, p1);
        else rows_scalar(W->data, MS_F32, W->in, x, y, p0, p1);
        return;
    }
}

/* ---- the thread pool ------------------------------------------------------
 * Why not an OpenMP parallel loop: on the 2-core development machines, shared
 * with other processes, libgomp's waiting threads spin without yielding and
 * the join waits for every thread of the team; under load that made a decode
 * pass 10-20x slower (768x768 products at 0.2 GB/s), while OpenBLAS, whose
 * idle threads call sched_yield(), stayed near its normal speed.  This pool
 * waits the same way OpenBLAS does, and the caller never waits for a helper
 * to arrive: chunks are claimed from one counter, so if the helpers are late
 * the caller does all the work and returns as soon as every claimed chunk is
 * finished.
 *
 * One job at a time: a caller that finds the pool busy (another thread of
 * the process in ms_matvec) does its product alone. */

#define POOL_MAX 64
#define SPIN_NS 200000      /* helpers poll this long after a job, then sleep */

typedef void (*pool_fn)(void *arg, int chunk);

/* The ticket packs the job's generation, its chunk count and the next chunk
 * to hand out, so that a helper can never claim a chunk of a job that has
 * ended or of one it has not seen published. */
#define TK_GEN(t) ((uint32_t)((t) >> 40))
#define TK_N(t) ((uint32_t)((t) >> 20) & 0xfffff)
#define TK_NEXT(t) ((uint32_t)(t) & 0xfffff)
#define TK_MAKE(g, n) (((uint64_t)((g) & 0xffffff) << 40) | ((uint64_t)(n) << 20))
#define POOL_MAX_CHUNKS 0xfffff

static struct {
    _Atomic uint64_t ticket;
    _Atomic int done;          /* chunks of the current job finished */
    pool_fn fn;                /* the job: set before its ticket is published */
    void *arg;
    _Atomic int sleepers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int nworkers;
    pthread_t th[POOL_MAX];
    _Atomic int quit[POOL_MAX];
    atomic_flag busy;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .busy = ATOMIC_FLAG_INIT};

static inline void cpu_relax(void)
{
#if MS_X86
    __builtin_ia32_pause();
#endif
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs chunks of job `gen` until none are left to claim. */
static void pool_work(uint32_t gen)
{
    uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    for (;;) {
        if (TK_GEN(t) != gen || TK_NEXT(t) >= TK_N(t)) return;
        if (!atomic_compare_exchange_weak_explicit(&pool.ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        pool.fn(pool.arg, (int)TK_NEXT(t));
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    }
}

static void *pool_worker(void *p)
{
    int id = (int)(intptr_t)p;
    uint32_t seen = TK_GEN(atomic_load(&pool.ticket));
    for (;;) {
        uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
        uint64_t t0 = now_ns();
        for (int i = 1; TK_GEN(t) == seen; i++) {      /* poll, yielding the core */
            if (atomic_load_explicit(&pool.quit[id], memory_order_relaxed)) return NULL;
            cpu_relax();
            if (i % 16 == 0) {
                sched_yield();
                if (now_ns() - t0 > SPIN_NS) {         /* idle: sleep until the next job */
                    pthread_mutex_lock(&pool.mu);
                    atomic_fetch_add(&pool.sleepers, 1);
                    while (TK_GEN(atomic_load(&pool.ticket)) == seen && !atomic_load(&pool.quit[id]))
                        pthread_cond_wait(&pool.cv, &pool.mu);
                    atomic_fetch_sub(&pool.sleepers, 1);
                    pthread_mutex_unlock(&pool.mu);
                    t0 = now_ns();
                }
            }
            t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
        }
        seen = TK_GEN(t);
        pool_work(seen);
    }
}

/* Starts or stops helpers so that n run (the caller is the n+1th thread). */
static void pool_resize(int n)
{
    if (n > POOL_MAX) n = POOL_MAX;
    while (pool.nworkers > n) {
        int id = --pool.nworkers;
        atomic_store(&pool.quit[id], 1);
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
        pthread_join(pool.th[id], NULL);
    }
    while (pool.nworkers < n) {
        int id = pool.nworkers;
        atomic_store(&pool.quit[id], 0);
        if (pthread_create(&pool.th[id], NULL, pool_worker, (void *)(intptr_t)id) != 0)
            break;                               /* fewer helpers; the caller copes */
        pool.nworkers++;
    }
}

/* fn(arg, k) for k in [0, n), spread over `threads` threads (the caller
 * included); returns when all are done. */
static void pool_run(pool_fn fn, void *arg, int n, int threads)
{
    if (threads <= 1 || n <= 1 || n > POOL_MAX_CHUNKS || atomic_flag_test_and_set(&pool.busy)) {
        for (int k = 0; k < n; k++) fn(arg, k);
        return;
    }
    if (pool.nworkers != threads - 1) pool_resize(threads - 1);
    pool.fn = fn;
    pool.arg = arg;
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    uint32_t gen = TK_GEN(atomic_load(&pool.ticket)) + 1;
    atomic_store(&pool.ticket, TK_MAKE(gen, n));     /* publish (seq_cst) */
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.cv);
        pthread_mutex_unlock(&pool.mu);
    }
    pool_work(gen & 0xffffff);
    for (int i = 1; atomic_load_explicit(&pool.done, memory_order_acquire) < n; i++) {
        cpu_relax();                             /* a helper is finishing its chunk */
        if (i % 16 == 0) sched_yield();
    }
    atomic_flag_clear(&pool.busy);
}

/* ---- ms_matvec ------------------------------------------------------------ */

typedef struct {
    const ms_mat *W;
    const float *x;
    float *y;
    int chunk;
} mv_job;

static void mv_chunk(void *arg, int k)
{
    const mv_job *j = arg;
    int p0 = k * j->chunk, p1 = p0 + j->chunk;
    if (p1 > j->W->out) p1 = j->W->out;
    do_part(j->W, j->x, j->y, p0, p1);
}

void ms_matvec(const ms_mat *W, const float *x, float *y)
{
    int out = W->out, in = W->in;
    if (out <= 0) return;
    if (in <= 0) { memset(y, 0, (size_t)out * sizeof(float)); return; }
    int nt = ms_kernels_get_threads();

    blas_sgemv_fn sgemv = W->dt == MS_F32 && (g_f32_blas || !use_avx2()) ? blas_get() : NULL;
    if (sgemv) {
        if (W->trans)
            sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, (const float *)W->data, out,
                        x, 1, 0.0f, y, 1);
        else
            sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, (const float *)W->data, in,
                        x, 1, 0.0f, y, 1);
        return;
    }

    /* Work is handed out in chunks from a shared counter (see the pool)
     * rather than split in equal halves.  Trans 0: chunks of about 256 KiB
     * (long streams for rows_avx2), a multiple of 16 rows (whole cache lines
     * of y, so threads never share one), their number a multiple of the
     * thread count so the last ones come out even.  Trans 1: blocks of 64
     * columns, the kernel's block. */
    if ((size_t)out * (size_t)in < MS_PAR_MIN || nt <= 1) {
        do_part(W, x, y, 0, out);
        return;
    }
    int chunk = 64;
    if (!W->trans) {
        size_t bytes = (size_t)out * (size_t)in * dt_size(W->dt);
        size_t n = (bytes + (256u << 10) - 1) >> 18;
        n = (n + (size_t)nt - 1) / (size_t)nt * (size_t)nt;
        size_t rows = ((size_t)out + n - 1) / n;
        chunk = (int)((rows + 15) & ~(size_t)15);
    }
    int nchunks = (out + chunk - 1) / chunk;
    if (nchunks < 2) {
        do_part(W, x, y, 0, out);
        return;
    }
    (void)use_avx2();   /* decide the ISA before the threads read g_isa */
    mv_job job = {W, x, y, chunk};
#ifdef _OPENMP
    if (g_use_omp) {
        if (nt > nchunks) nt = nchunks;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (int k = 0; k < nchunks; k++) mv_chunk(&job, k);
        return;
    }
#endif
    pool_run(mv_chunk, &job, nchunks, nt);
}

void ms_par_for(void (*fn)(void *arg, int k), void *arg, int n)
{
    pool_run(fn, arg, n, ms_kernels_get_threads());
}

/* ---- several vectors: Y[t] = W · X[t] ---------------------------------------
 * Each weight block is read from memory once for all T vectors: the rows (or
 * columns) are cut in blocks that stay in the L2 cache (about 128 KiB), and
 * every vector's product is done on a block before the next block is
 * touched.  Within a block each vector goes through do_part, the routine
 * ms_matvec uses, and a row's (a column's) arithmetic does not depend on
 * the block it is in (see row1_avx2, cols_wide), so Y[t] is bit for bit
 * ms_matvec(W, X[t]).  With OpenBLAS's sgemv (F32 without AVX2, or the bench
 * hook) it simply calls ms_matvec T times, for the same reason. */

typedef struct {
    const ms_mat *W;
    const float *X;
    float *Y;
    size_t ldx, ldy;
    int T, chunk;
} mm_job;

static void mm_chunk(void *arg, int k)
{
    const mm_job *j = arg;
    const ms_mat *W = j->W;
    int p0 = k * j->chunk, p1 = p0 + j->chunk;
    if (p1 > W->out) p1 = W->out;
    int t = 0;
#if MS_X86
    /* four vectors at a time where the kernel exists (row-stored, AVX2) */
    if (!W->trans && use_avx2())
        for (; t + 4 <= j->T; t += 4) {
            const float *x[4];
            float *y[4];
            for (int i = 0; i < 4; i++) {
                x[i] = j->X + (size_t)(t + i) * j->ldx;
                y[i] = j->Y + (size_t)(t + i) * j->ldy;
            }
            if (W->dt == MS_F16) rows4v_f16(W->data, W->in, x, y, p0, p1);
            else if (W->dt == MS_BF16) rows4v_bf16(W->data, W->in, x, y, p0, p1);
            else rows4v_f32(W->data, W->in, x, y, p0, p1);
        }
#endif
    for (; t < j->T; t++) do_part(W, j->X + (size_t)t * j->ldx, j->Y + (size_t)t * j->ldy, p0, p1);
}

void ms_matmat(const ms_mat *W, const float *X, size_t ldx, float *Y, size_t ldy, int T)
{
    int out = W->out, in = W->in;
    if (T <= 0 || out <= 0) return;
    if (in <= 0) {
        for (int t = 0; t < T; t++) memset(Y + (size_t)t * ldy, 0, (size_t)out * sizeof(float));
        return;
    }
    if (T == 1 || (W->dt == MS_F32 && (g_f32_blas || !use_avx2()) && blas_get())) {
        for (int t = 0; t < T; t++) ms_matvec(W, X + (size_t)t * ldx, Y + (size_t)t * ldy);
        return;
    }
    /* blocks: rows, a multiple of 16, about 128 KiB of weights; columns
     * (trans), multiples of 64 with 64 x in weights about 128 KiB */
    size_t per = (size_t)in * dt_size(W->dt);   /* bytes of one row (or one column) */
    int chunk;
    if (!W->trans) {
        size_t rows = ((size_t)128 << 10) / (per ? per : 1);
        chunk = (int)((rows + 15) & ~(size_t)15);
        if (chunk < 16) chunk = 16;
    } else {
        size_t cols = ((size_t)128 << 10) / (per ? per : 1);
        chunk = (int)((cols + 63) & ~(size_t)63);
        if (chunk < 64) chunk = 64;
    }
    int nchunks = (out + chunk - 1) / chunk;
    (void)use_avx2();   /* decide the ISA before the threads read g_isa */
    mm_job job = { W, X, Y, ldx, ldy, T, chunk };
    int nt = ms_kernels_get_threads();
    if (nchunks < 2 || nt <= 1) {
        for (int k = 0; k < nchunks; k++) mm_chunk(&job, k);
        return;
    }
    pool_run(mm_chunk, &job, nchunks, nt);
}

/* ---- read bandwidth ------------------------------------------------------- */

static volatile float g_bw_sink;   /* keeps the reductions' results alive */

static float sum_scalar(const float *p, size_t n)
{
    float s[8] = {0};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += p[i + k];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

#if MS_X86
/* Four sequential streams (the quarters of p), two 32-byte loads from each
 * per iteration into 8 independent accumulators: the additions never limit
 * the load rate, and four streams keep as many cache misses in flight as
 * rows_avx2 does (one stream measured about 40% less), so memory does. */
static MS_AVX2 float sum_avx2(const float *p, size_t n)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    size_t q = n / 64 * 16;
    for (size_t i = 0; i < q; i += 16)
        for (int s = 0; s < 4; s++) {
            a[2 * s] = _mm256_add_ps(a[2 * s], _mm256_loadu_ps(p + s * q + i));
            a[2 * s + 1] = _mm256_add_ps(a[2 * s + 1], _mm256_loadu_ps(p + s * q + i + 8));
        }
    for (size_t i = 4 * q; i + 8 <= n; i += 8) a[0] = _mm256_add_ps(a[0], _mm256_loadu_ps(p + i));
    for (int k = 1; k < 8; k++) a[0] = _mm256_add_ps(a[0], a[k]);
    return hsum(a[0]);
}
#endif

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The probe reads through the same pool and chunking as ms_matvec: chunks
 * of up to 16 MiB claimed from one counter, each summed with vector loads. */
typedef struct {
    float *buf;
    size_t total, chunk;     /* floats; both multiples of 64 */
    float *sums;             /* one per chunk */
    int fill, avx;
} bw_job;

static void bw_chunk(void *arg, int k)
{
    const bw_job *j = arg;
    size_t i0 = (size_t)k * j->chunk, n = j->total - i0 < j->chunk ? j->total - i0 : j->chunk;
    float *p = j->buf + i0;
    if (j->fill) {           /* touch every page, so the timed passes measure reads */
        for (size_t i = 0; i < n; i++) p[i] = 1.0f;
        return;
    }
#if MS_X86
    j->sums[k] = j->avx ? sum_avx2(p, n) : sum_scalar(p, n);
#else
    j->sums[k] = sum_scalar(p, n);
#endif
}

double ms_read_bandwidth(int threads, size_t bytes, int reps)
{
    if (threads < 1) threads = ms_kernels_get_threads();
    if (reps < 1) reps = 1;
    bw_job j = {0};
    j.total = bytes / sizeof(float) / 64 * 64;
    if (j.total < (size_t)64 * threads) j.total = (size_t)64 * threads;
    j.chunk = (size_t)4 << 20;                       /* 16 MiB */
    if (j.chunk * 4 * threads > j.total) j.chunk = j.total / (4 * (size_t)threads) / 64 * 64;
    if (j.chunk == 0) j.chunk = 64;
    int n = (int)((j.total + j.chunk - 1) / j.chunk);
    j.buf = aligned_alloc(64, j.total * sizeof(float));
    j.sums = malloc((size_t)n * sizeof(float));
    double *times = malloc((size_t)reps * sizeof(double));
    if (!j.buf || !j.sums || !times) {
        free(j.buf); free(j.sums); free(times);
        return -1;
    }
    j.avx = use_avx2();
    j.fill = 1;
    pool_run(bw_chunk, &j, n, threads);
    j.fill = 0;
    float keep = 0;
    for (int r = -1; r < reps; r++) {         /* pass -1 warms up, untimed */
        double t0 = now_s();
        pool_run(bw_chunk, &j, n, threads);
        double dt = now_s() - t0;
        for (int k = 0; k < n; k++) keep += j.sums[k];
        if (r >= 0) times[r] = dt;
    }
    g_bw_sink = keep;
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    free(j.buf);
    free(j.sums);
    free(times);
    return (double)(j.total * sizeof(float)) / med;
}
