/* bench_kernels.c: speed of ms_matvec against the machine's read bandwidth.
 *
 * For the matrix shapes of the 0.1B model (768x768, 3072x768, 768x3072 and
 * the 65536x768 head), each dtype (F32 through our AVX2 kernel, the default,
 * and through OpenBLAS; F16; BF16) and 1 and 2 threads, prints the median
 * time of >= 20 calls, the GB/s of weight bytes read, and that as a fraction
 * of ms_read_bandwidth (1 GiB buffer, same thread count) measured in this run
 * (the better of two probes, in case a neighbour slowed one).
 *
 * "cold" rotates through copies of the matrix spread over a 640 MiB arena, so
 * every call reads from DRAM as decode does (the whole model is far larger
 * than the 32 MiB L3); "hot" repeats one matrix, which for the small shapes
 * stays in cache and can exceed the DRAM figure.  Last, a decode-like pass:
 * every matrix of the 12-layer 0.1B shape (LoRA included, 562 MB in F32) in
 * order, its median time and the matvec-only token rate it allows; "BF16 omp"
 * splits the products with an OpenMP loop instead of kernels.c's pool.
 *
 * A benchmark, not a test: it always exits 0.
 */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ARENA_BYTES ((size_t)640 << 20)
#define CALLS 40

static unsigned char *arena;
static size_t rot;   /* rotating copy index, carried across measurements */

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

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct { const char *name; ms_dtype dt; int blas, omp; } impl;
static const impl impls[] = {
    {"F32", MS_F32, 0, 0}, {"F32 blas", MS_F32, 1, 0}, {"F16", MS_F16, 0, 0},
    {"BF16", MS_BF16, 0, 0}, {"BF16 omp", MS_BF16, 0, 1},
};
#define N_IMPL 4      /* per-matrix table; the decode pass adds the OpenMP variant */
#define N_PASS 5

static size_t dsize(ms_dtype dt) { return dt == MS_F32 ? 4 : 2; }

/* OpenBLAS's and libgomp's idle threads poll for a while after each call; on
 * two cores they would steal time from the next measurement, so let them go
 * to sleep first. */
static void settle(void) { usleep(300000); }

/* Median seconds of one call; cold = a different copy of W each call. */
static double time_matvec(ms_dtype dt, int out, int in, int trans, int cold, const float *x, float *y)
{
    size_t mb = (size_t)out * in * dsize(dt);
    size_t copies = ARENA_BYTES / mb;
    double t[CALLS];
    for (int c = -5; c < CALLS; c++) {
        size_t k = cold ? rot++ % copies : 0;
        ms_mat W = {arena + k * mb, dt, out, in, trans};
        double t0 = now_s();
        ms_matvec(&W, x, y);
        double dt_s = now_s() - t0;
        if (c >= 0) t[c] = dt_s;
    }
    return median(t, CALLS);
}

/* The 0.1B shape: per layer Wr, Wk, Wv, Wo (768x768), key (3072x768), value
 * (768x3072) and the LoRA pairs (d = 64, 64, 32, 128; stored (in, out)). */
typedef struct { int out, in, trans; } shape;
static int model_shapes(shape *s)
{
    int n = 0;
    const int lora[4] = {64, 64, 32, 128};
    for (int l = 0; l < 12; l++) {
        for (int k = 0; k < 4; k++) s[n++] = (shape){768, 768, 0};
        for (int k = 0; k < 4; k++) {
            s[n++] = (shape){lora[k], 768, 1};
            s[n++] = (shape){768, lora[k], 1};
        }
        s[n++] = (shape){3072, 768, 0};
        s[n++] = (shape){768, 3072, 0};
    }
    s[n++] = (shape){65536, 768, 0};
    return n;
}

int main(void)
{
    arena = aligned_alloc(64, ARENA_BYTES);
    float *x = aligned_alloc(64, 65536 * sizeof(float));
    float *y = aligned_alloc(64, 65536 * sizeof(float));
    if (!arena || !x || !y) { printf("bench_kernels: out of memory\n"); return 0; }
    /* 16-bit words 0x3Cxx with random sign: finite normal numbers whether read
     * as F16 (~1), BF16 (~0.008) or pairs as F32 (~0.03), never zeros. */
    uint64_t s = 0x2545f4914f6cdd1dULL;
    uint16_t *w = (uint16_t *)arena;
    for (size_t i = 0; i < ARENA_BYTES / 2; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        w[i] = (uint16_t)(0x3c00 | (s & 0x80ff));
    }
    for (int i = 0; i < 65536; i++) x[i] = (float)((i * 37) % 101) / 101.0f - 0.5f;

    FILE *la = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (la) { if (!fgets(load, sizeof load, la)) load[0] = 0; fclose(la); }
    printf("bench_kernels: ms_matvec vs read bandwidth (loadavg at start: %.*s)\n",
           (int)strcspn(load, "\n"), load);

    static const int sizes[][2] = {{768, 768}, {3072, 768}, {768, 3072}, {65536, 768}};
    double bw[3] = {0}, pass_s[3][N_PASS];
    for (int thr = 1; thr <= 2; thr++) {
        ms_kernels_set_threads(thr);
        /* The machine may be shared: take the best of two probes, so that
         * a probe slowed by a neighbour does not flatter the fractions. */
        double b1 = ms_read_bandwidth(thr, (size_t)1 << 30, 5);
        double b2 = ms_read_bandwidth(thr, (size_t)1 << 30, 5);
        bw[thr] = b1 > b2 ? b1 : b2;
        printf("\n== %d thread%s: read bandwidth (1 GiB, best of 2 probes of median-of-5: %.1f, %.1f) "
               "%.1f GB/s\n", thr, thr > 1 ? "s" : "", b1 / 1e9, b2 / 1e9, bw[thr] / 1e9);
        printf("%-11s %-9s %10s %8s %7s %10s %8s %7s\n", "shape", "dtype", "cold us", "GB/s",
               "of bw", "hot us", "GB/s", "of bw");
        for (int si = 0; si < 4; si++)
            for (int ii = 0; ii < N_IMPL; ii++) {
                const impl *im = &impls[ii];
                ms_kernels_f32_blas(im->blas);
                int out = sizes[si][0], in = sizes[si][1];
                double bytes = (double)out * in * dsize(im->dt);
                double tc = time_matvec(im->dt, out, in, 0, 1, x, y);
                double th = time_matvec(im->dt, out, in, 0, 0, x, y);
                char sh[24];
                snprintf(sh, sizeof sh, "%dx%d", out, in);
                printf("%-11s %-9s %10.1f %8.1f %6.0f%% %10.1f %8.1f %6.0f%%\n", sh, im->name,
                       tc * 1e6, bytes / tc / 1e9, 100 * bytes / tc / bw[thr], th * 1e6,
                       bytes / th / 1e9, 100 * bytes / th / bw[thr]);
                if (im->blas) settle();
            }

        /* decode-like pass over the whole 0.1B shape */
        shape sh[12 * 14 + 1];
        int ns = model_shapes(sh);
        printf("-- %d thread%s: one pass over all matrices of the 0.1B shape (12 layers + head)\n",
               thr, thr > 1 ? "s" : "");
        printf("%-9s %10s %8s %8s %7s %12s %9s\n", "dtype", "MB", "ms", "GB/s", "of bw",
               "matvec tok/s", "vs F32");   /* the default F32, the first row */
        for (int ii = 0; ii < N_PASS; ii++) {
            const impl *im = &impls[ii];
            ms_kernels_f32_blas(im->blas);
            ms_kernels_use_omp(im->omp);
            size_t total = 0;
            for (int k = 0; k < ns; k++) total += (size_t)sh[k].out * sh[k].in * dsize(im->dt);
            double t[9];
            for (int p = -2; p < 9; p++) {
                size_t off = 0;
                double t0 = now_s();
                for (int k = 0; k < ns; k++) {
                    ms_mat W = {arena + off, im->dt, sh[k].out, sh[k].in, sh[k].trans};
                    ms_matvec(&W, x, y);
                    off += (size_t)sh[k].out * sh[k].in * dsize(im->dt);
                }
                if (p >= 0) t[p] = now_s() - t0;
            }
            double m = median(t, 9);
            pass_s[thr][ii] = m;
            printf("%-9s %10.1f %8.2f %8.1f %6.0f%% %12.1f %8.2fx\n", im->name, total / 1e6,
                   m * 1e3, total / m / 1e9, 100 * total / m / bw[thr], 1 / m,
                   pass_s[thr][0] / m);
            if (im->blas || im->omp) settle();
        }
        ms_kernels_use_omp(0);
    }
    ms_kernels_f32_blas(0);
    free(arena); free(x); free(y);
    return 0;
}
