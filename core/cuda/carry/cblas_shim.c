/* cblas_shim.c: the two OpenBLAS entry points core/kernels.c uses, in plain
 * C, for the self-contained CUDA test and benchmark binaries that travel to a
 * GPU machine without OpenBLAS (make cuda-carry).  Only the row-major,
 * unit-stride sgemv that ms_matvec calls; fp32 sums in order.  Never linked
 * into metastate or the normal tests.
 */
#include <cblas.h>
#include <stdlib.h>

void openblas_set_num_threads(int n) { (void)n; }

void cblas_sgemv(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE trans, const blasint M, const blasint N,
                 const float alpha, const float *A, const blasint lda, const float *X, const blasint incX,
                 const float beta, float *Y, const blasint incY)
{
    if (order != CblasRowMajor || incX != 1 || incY != 1) abort();
    if (trans == CblasNoTrans) {   /* Y[M] = alpha A X[N] + beta Y */
        for (blasint r = 0; r < M; r++) {
            float s = 0;
            for (blasint c = 0; c < N; c++) s += A[(size_t)r * lda + c] * X[c];
            Y[r] = alpha * s + (beta != 0 ? beta * Y[r] : 0.0f);
        }
    } else {                       /* Y[N] = alpha A^T X[M] + beta Y */
        for (blasint c = 0; c < N; c++) Y[c] = beta != 0 ? beta * Y[c] : 0.0f;
        for (blasint r = 0; r < M; r++) {
            const float xr = alpha * X[r];
            for (blasint c = 0; c < N; c++) Y[c] += xr * A[(size_t)r * lda + c];
        }
    }
}
