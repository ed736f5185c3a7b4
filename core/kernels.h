/* kernels.h: the CPU compute kernels of the forward step.
 *
 * Matrix-vector products over ms_mat in F32 (OpenBLAS), F16 and BF16 (our own
 * AVX2/FMA code that converts on the fly, with a portable scalar fallback),
 * threaded over output rows, and a memory-bandwidth probe for benchmarks.
 * No allocation on the hot path; nothing printed.
 */
#ifndef MS_KERNELS_H
#define MS_KERNELS_H

#include "ms.h"

/* y[W->out] = W · x[W->in] for either storage layout (W->trans).  x and y
 * must not overlap. */
void ms_matvec(const ms_mat *W, const float *x, float *y);

/* fn(arg, k) for k in [0, n) on the kernels' thread pool (the caller
 * included); returns when all are done.  Calls may run in any order and at
 * once, so each k must touch its own data. */
void ms_par_for(void (*fn)(void *arg, int k), void *arg, int n);

/* Y[t] = W · X[t] for t in [0, T): X[t] at X + t*ldx (W->in floats), Y[t]
 * at Y + t*ldy (W->out floats).  Reads each block of W once for all T
 * vectors, and every Y[t] is bit for bit what ms_matvec(W, X[t]) gives. */
void ms_matmat(const ms_mat *W, const float *X, size_t ldx, float *Y, size_t ldy, int T);

/* Row `row` of a (rows, cols) matrix stored (out,in)=(rows,cols), converted to
 * fp32 into dst[cols] (used for the embedding lookup). */
void ms_mat_row(const ms_mat *W, int row, float *dst);

/* fp32 <-> half conversions (exact for f16/bf16 -> f32; round-to-nearest-even
 * for f32 -> half). */
float ms_bf16_to_f32(uint16_t h);
float ms_f16_to_f32(uint16_t h);
uint16_t ms_f32_to_bf16(float f);
uint16_t ms_f32_to_f16(float f);

/* Read bandwidth in bytes/s, measured with `threads` threads over a buffer
 * of `bytes` bytes (≥ 1 GiB for a real figure) with vector loads into several
 * independent accumulators; median of `reps` passes.  Returns < 0 if the
 * buffer cannot be allocated. */
double ms_read_bandwidth(int threads, size_t bytes, int reps);

/* Implementation switches for tests and benchmarks (process-wide; each
 * returns the previous setting): the portable fallback even where AVX2
 * exists; F32 through OpenBLAS instead of our kernel; OpenMP loops instead
 * of the thread pool. */
int ms_kernels_force_scalar(int on);
int ms_kernels_f32_blas(int on);
int ms_kernels_use_omp(int on);

/* Threads used by the kernels. */
void ms_kernels_set_threads(int n);
int ms_kernels_get_threads(void);

#endif
