/* kernels.c: the CPU matrix-vector products of the forward step, the
 * fp32 <-> half conversions, and a memory read-bandwidth probe.
 *
 * What it is: y = W·x over an ms_mat in F32, F16 or BF16, for both storage
 * layouts.  Decode at batch 1 reads every weight byte once per token and does
 * two flops per weight, so the products are bound by memory bandwidth, not by
 * arithmetic: the half-precision kernels convert 8 weights at a time to fp32
 * in registers (F16C for F16, a zero-extend and shift for BF16), keep several
 * independent FMA accumulators so the loads never wait on an addition, and
 * split the output rows over OpenMP threads so all cores pull from memory.
 * Reading half the bytes of F32 is what makes BF16/F16 decode about 2x faster.
 *
 * The AVX2/FMA/F16C code is compiled with a target attribute and chosen at
 * run time (checked once); a portable scalar version with the same semantics
 * (only the order of the float additions differs) runs everywhere else.
 *
 * What it is not: no allocation, no printing, no errors on the hot path; the
 * caller guarantees that W->data holds out*in elements and that x and y do not
 * overlap.  Shapes of any size are handled (remainders, 1x1).
 */
#define _GNU_SOURCE
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#define MS_X86 1
#include <immintrin.h>
#define MS_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define MS_X86 0
#endif

/* Declared by OpenBLAS's cblas.h on Debian; repeated so that other cblas
 * headers (which lack it) still compile.  A redundant declaration is legal. */
void openblas_set_num_threads(int);

/* Below this many weights a matrix is done on the calling thread: waking the
 * team costs a few microseconds, more than the product itself. */
#define MS_PAR_MIN 65536

/* ---- settings (process-wide, as the thread count of OpenBLAS is) ---------- */

static int g_threads;       /* 0 = not chosen yet: number of online CPUs */
static int g_isa = -1;      /* -1 unknown, 0 scalar, 1 AVX2+FMA+F16C */
static int g_force_scalar;  /* test hook: use the fallback even with AVX2 */
static int g_f32_blas = 1;  /* F32 through OpenBLAS (1) or our AVX2 kernel (0) */

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void ms_kernels_set_threads(int n)
{
    if (n < 1) n = online_cpus();
    g_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
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
        __builtin_cpu_init();
        g_isa = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                __builtin_cpu_supports("f16c");
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
 * Both return the previous setting. */
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

static inline size_t ms_dsize(ms_dtype dt) { return dt == MS_F32 ? 4 : 2; }

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

/* y[r] for r in [r0, r1) of an (out, in) matrix. */
static void rows_scalar(const void *W, ms_dtype dt, int in, const float *x, float *y, int r0, int r1)
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
static void cols_scalar(const void *M, ms_dtype dt, int in, int out, const float *x, float *y,
                        int c0, int c1)
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

static inline __attribute__((always_inline)) MS_AVX2 float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Rows [r0, r1) of an (out, in) matrix, one row after the other, so that
 * each thread reads its part as one sequential stream.  (Interleaving four
 * rows to share the loads of x measured up to 40% slower from DRAM for rows
 * of 768 halves: four short streams at a time defeat the hardware
 * prefetcher, and x is in L1 anyway.)  Four accumulators of 8 lanes keep
 * four FMA chains in flight. */
static inline __attribute__((always_inline)) MS_AVX2 void
rows_avx2(const void *W, ms_dtype dt, int in, const float *x, float *y, int r0, int r1)
{
    for (int r = r0; r < r1; r++) {
        size_t b = (size_t)r * in;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int j = 0;
        for (; j + 32 <= in; j += 32) {
            a0 = _mm256_fmadd_ps(load8(W, b + j, dt), _mm256_loadu_ps(x + j), a0);
            a1 = _mm256_fmadd_ps(load8(W, b + j + 8, dt), _mm256_loadu_ps(x + j + 8), a1);
            a2 = _mm256_fmadd_ps(load8(W, b + j + 16, dt), _mm256_loadu_ps(x + j + 16), a2);
            a3 = _mm256_fmadd_ps(load8(W, b + j + 24, dt), _mm256_loadu_ps(x + j + 24), a3);
        }
        for (; j + 8 <= in; j += 8)
            a0 = _mm256_fmadd_ps(load8(W, b + j, dt), _mm256_loadu_ps(x + j), a0);
        float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (; j < in; j++) s += cvt1(W, b + j, dt) * x[j];
        y[r] = s;
    }
}

/* Columns of an (in, out) matrix used as x @ M, y = sum_i x_i * M[i,:],
 * vectorised over the outputs.  Every output is one chain of FMAs in the
 * order of i, whichever of the routines below computes it, so the result does
 * not depend on how the columns are split between threads. */

/* y[c0, c0 + 8*nb) for a narrow matrix (out <= 64, a LoRA down-projection):
 * the columns stay in registers over one sequential pass down the rows. */
static inline __attribute__((always_inline)) MS_AVX2 void
cols_regs(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c0, int nb)
{
    __m256 a[8];
#pragma GCC unroll 8
    for (int k = 0; k < nb; k++) a[k] = _mm256_setzero_ps();
    for (int i = 0; i < in; i++) {
        __m256 xi = _mm256_broadcast_ss(x + i);
        size_t b = (size_t)i * out + c0;
#pragma GCC unroll 8
        for (int k = 0; k < nb; k++) a[k] = _mm256_fmadd_ps(load8(M, b + 8 * k, dt), xi, a[k]);
    }
#pragma GCC unroll 8
    for (int k = 0; k < nb; k++) _mm256_storeu_ps(y + c0 + 8 * k, a[k]);
}

/* y[c0, c1) for a wide matrix: y (in L1) gathers two rows per pass, so the
 * matrix is read in storage order, one sequential stream. */
static inline __attribute__((always_inline)) MS_AVX2 void
cols_stream(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c0, int c1)
{
    int cv = c0 + ((c1 - c0) & ~7);
    for (int c = c0; c < cv; c++) y[c] = 0;
    int i = 0;
    for (; i + 2 <= in; i += 2) {
        __m256 xa = _mm256_broadcast_ss(x + i), xb = _mm256_broadcast_ss(x + i + 1);
        size_t b0 = (size_t)i * out, b1 = b0 + out;
        for (int c = c0; c < cv; c += 8) {
            __m256 v = _mm256_loadu_ps(y + c);
            v = _mm256_fmadd_ps(load8(M, b0 + c, dt), xa, v);
            v = _mm256_fmadd_ps(load8(M, b1 + c, dt), xb, v);
            _mm256_storeu_ps(y + c, v);
        }
    }
    if (i < in) {
        __m256 xa = _mm256_broadcast_ss(x + i);
        size_t b0 = (size_t)i * out;
        for (int c = c0; c < cv; c += 8)
            _mm256_storeu_ps(y + c, _mm256_fmadd_ps(load8(M, b0 + c, dt), xa, _mm256_loadu_ps(y + c)));
    }
}

/* The last (c1 - c0) % 8 columns, one FMA chain each like the vector lanes. */
static inline __attribute__((always_inline)) MS_AVX2 void
cols_tail(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c0, int c1)
{
    for (int c = c0 + ((c1 - c0) & ~7); c < c1; c++) {
        float s = 0;
        for (int i = 0; i < in; i++) s = fmaf(cvt1(M, (size_t)i * out + c, dt), x[i], s);
        y[c] = s;
    }
}

static inline __attribute__((always_inline)) MS_AVX2 void
cols_avx2(const void *M, ms_dtype dt, int in, int out, const float *x, float *y, int c0, int c1)
{
    if (out > 64) {
        cols_stream(M, dt, in, out, x, y, c0, c1);
    } else {
        switch ((c1 - c0) / 8) {   /* constant block counts: accumulators in registers */
        case 8: cols_regs(M, dt, in, out, x, y, c0, 8); break;
        case 7: cols_regs(M, dt, in, out, x, y, c0, 7); break;
        case 6: cols_regs(M, dt, in, out, x, y, c0, 6); break;
        case 5: cols_regs(M, dt, in, out, x, y, c0, 5); break;
        case 4: cols_regs(M, dt, in, out, x, y, c0, 4); break;
        case 3: cols_regs(M, dt, in, out, x, y, c0, 3); break;
        case 2: cols_regs(M, dt, in, out, x, y, c0, 2); break;
        case 1: cols_regs(M, dt, in, out, x, y, c0, 1); break;
        default: break;
        }
    }
    cols_tail(M, dt, in, out, x, y, c0, c1);
}

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
    if (W->trans) cols_scalar(W->data, W->dt, W->in, W->out, x, y, p0, p1);
    else rows_scalar(W->data, W->dt, W->in, x, y, p0, p1);
}

void ms_matvec(const ms_mat *W, const float *x, float *y)
{
    int out = W->out, in = W->in;
    if (out <= 0) return;
    if (in <= 0) { memset(y, 0, (size_t)out * sizeof(float)); return; }
    int nt = ms_kernels_get_threads();

    if (W->dt == MS_F32 && g_f32_blas) {
        if (W->trans)
            cblas_sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, (const float *)W->data, out,
                        x, 1, 0.0f, y, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, (const float *)W->data, in,
                        x, 1, 0.0f, y, 1);
        return;
    }

    /* Work is handed out in chunks from a shared counter rather than split
     * in equal halves: when another process holds a core, the thread that
     * still runs takes the remaining chunks instead of waiting a scheduler
     * slice for its partner.  A chunk is whole blocks of 64 columns (trans 1:
     * the kernel's block) or a multiple of 16 rows (trans 0: whole cache
     * lines of y, so threads never share one) reading about 64 KiB. */
    if ((size_t)out * (size_t)in < MS_PAR_MIN || nt <= 1) {
        do_part(W, x, y, 0, out);
        return;
    }
    int chunk = 64;
    if (!W->trans) {
        size_t rows = ((size_t)64 << 10) / ((size_t)in * ms_dsize(W->dt));
        chunk = rows < 16 ? 16 : (int)(rows & ~(size_t)15);
    }
    int nchunks = (out + chunk - 1) / chunk;
    if (nchunks < 2) {
        do_part(W, x, y, 0, out);
        return;
    }
    if (nt > nchunks) nt = nchunks;
    (void)use_avx2();   /* decide the ISA before the threads read g_isa */
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int k = 0; k < nchunks; k++) {
        int p1 = (k + 1) * chunk < out ? (k + 1) * chunk : out;
        do_part(W, x, y, k * chunk, p1);
    }
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
/* 8 loads of 32 bytes per iteration into 8 independent accumulators: the
 * additions never limit the load rate, so memory does. */
static MS_AVX2 float sum_avx2(const float *p, size_t n)
{
    __m256 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm256_setzero_ps();
    for (size_t i = 0; i + 64 <= n; i += 64)
        for (int k = 0; k < 8; k++) a[k] = _mm256_add_ps(a[k], _mm256_load_ps(p + i + 8 * k));
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

double ms_read_bandwidth(int threads, size_t bytes, int reps)
{
    if (threads < 1) threads = ms_kernels_get_threads();
    if (reps < 1) reps = 1;
    /* each thread reads a whole number of 256-byte blocks, 64-byte aligned */
    size_t blocks = bytes / 256 / (size_t)threads;
    if (blocks == 0) blocks = 1;
    size_t per = blocks * 64;                  /* floats per thread */
    size_t total = per * (size_t)threads;
    float *buf = aligned_alloc(64, total * sizeof(float));
    double *times = malloc((size_t)reps * sizeof(double));
    if (!buf || !times) { free(buf); free(times); return -1; }
    int avx = use_avx2();

    /* Touch every page from the thread that will read it, so that the timed
     * passes measure reads, not page faults. */
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
        int t = omp_get_thread_num();
#else
        int t = 0;
#endif
        for (size_t i = (size_t)t * per; i < (size_t)(t + 1) * per; i++) buf[i] = 1.0f;
    }

    float keep = 0;
    for (int r = -1; r < reps; r++) {         /* pass -1 warms up, untimed */
        double t0 = now_s();
#pragma omp parallel num_threads(threads) reduction(+ : keep)
        {
#ifdef _OPENMP
            int t = omp_get_thread_num();
#else
            int t = 0;
#endif
            const float *p = buf + (size_t)t * per;
#if MS_X86
            keep += avx ? sum_avx2(p, per) : sum_scalar(p, per);
#else
            (void)avx;
            keep += sum_scalar(p, per);
#endif
        }
        double dt = now_s() - t0;
        if (r >= 0) times[r] = dt;
    }
    g_bw_sink = keep;
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    double med = reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
    free(buf);
    free(times);
    return (double)(total * sizeof(float)) / med;
}
