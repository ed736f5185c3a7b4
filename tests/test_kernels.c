/* test_kernels.c: checks core/kernels.c against references computed another
 * way.
 *
 * - Conversions: every one of the 65536 f16 and bf16 values against a decode
 *   by ldexp in double, and the round trip half -> f32 -> half (exact; NaN
 *   stays NaN); f32 -> half rounding of hand-picked values and of a million
 *   random bit patterns against a binary search over the ordered half values
 *   in double arithmetic (nearest, ties to the even pattern, overflow at
 *   max + half an ulp).
 * - ms_matvec: every dtype x layout x a set of odd sizes, with 1 and 2
 *   threads, on the AVX2 path, the scalar fallback (F16, BF16) and OpenBLAS
 *   (F32), against a double-precision loop over the same rounded weights:
 *   |y - ref| <= 1e-5 * sum_j |W_ij x_j| + 1e-6 for every output.  Also: no
 *   write past y, x unchanged, and our kernels give bit-identical results
 *   with 1 and 2 threads.
 * - The thread pool: back-to-back jobs and two concurrent callers give the
 *   single-threaded result bit for bit.
 * - ms_mat_row for both layouts; ms_read_bandwidth returns a positive figure.
 *
 * Prints each case with its worst relative difference; exits 1 on failure.
 */
#include "kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int n_fail, n_pass;

static void check(int ok, const char *what)
{
    if (ok) n_pass++;
    else { n_fail++; printf("FAIL: %s\n", what); }
}

static uint64_t rng_s = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd64(void)
{
    rng_s ^= rng_s << 13; rng_s ^= rng_s >> 7; rng_s ^= rng_s << 17;
    return rng_s;
}
static float rndu(void) { return (float)((rnd64() >> 40) * 0x1p-24 * 2.0 - 1.0); }

static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* ---- references for the conversions ---------------------------------------- */

/* Value of a non-negative, non-NaN half pattern, decoded from the fields by
 * ldexp; the infinity pattern stands for 2^(emax+1), the first value that
 * rounding must not reach. */
static double ref_f16_val(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) return ldexp(m, -24);
    if (e == 31) return 65536.0;
    return ldexp(1024 + m, e - 25);
}

static double ref_bf16_val(uint16_t h)
{
    int e = (h >> 7) & 0xff, m = h & 0x7f;
    if (e == 0) return ldexp(m, -133);
    if (e == 255) return ldexp(1.0, 128);
    return ldexp(128 + m, e - 134);
}

/* Round |v| to the nearest pattern in [0, inf_pat] (ordered by value), ties
 * to the even pattern; sign added after. */
static uint16_t ref_round(float f, double (*val)(uint16_t), uint16_t inf_pat)
{
    double v = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isinf(f)) return sign | inf_pat;
    unsigned lo = 0, hi = inf_pat;           /* largest pattern with val <= v */
    if (v >= val(inf_pat)) return sign | inf_pat;
    while (lo < hi) {
        unsigned mid = (lo + hi + 1) / 2;
        if (val((uint16_t)mid) <= v) lo = mid; else hi = mid - 1;
    }
    unsigned r = lo;
    if (v > val((uint16_t)lo)) {
        double dl = v - val((uint16_t)lo), du = val((uint16_t)(lo + 1)) - v;
        if (du < dl || (du == dl && (lo & 1))) r = lo + 1;
    }
    return sign | (uint16_t)r;
}

static int f16_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
static int bf16_is_nan(uint16_t h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f); }

static void test_conversions(void)
{
    int bad_dec16 = 0, bad_rt16 = 0, bad_decb = 0, bad_rtb = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t p = (uint16_t)h;
        double s = (h & 0x8000) ? -1 : 1;
        /* f16 */
        float f = ms_f16_to_f32(p);
        if (f16_is_nan(p)) {
            if (!isnan(f) || !f16_is_nan(ms_f32_to_f16(f))) bad_rt16++;
        } else {
            double want = ((p & 0x7fff) == 0x7c00) ? s * INFINITY : s * ref_f16_val(p & 0x7fff);
            if ((double)f != want || !!signbit(f) != !!signbit(want)) bad_dec16++;
            if (ms_f32_to_f16(f) != p) bad_rt16++;
        }
        /* bf16 */
        float g = ms_bf16_to_f32(p);
        if (bf16_is_nan(p)) {
            if (!isnan(g) || !bf16_is_nan(ms_f32_to_bf16(g))) bad_rtb++;
        } else {
            double want = ((p & 0x7fff) == 0x7f80) ? s * INFINITY : s * ref_bf16_val(p & 0x7fff);
            if ((double)g != want || !!signbit(g) != !!signbit(want)) bad_decb++;
            if (ms_f32_to_bf16(g) != p) bad_rtb++;
        }
    }
    printf("conv: f16 -> f32 all 65536: %d wrong; f16 -> f32 -> f16: %d not exact\n", bad_dec16, bad_rt16);
    printf("conv: bf16 -> f32 all 65536: %d wrong; bf16 -> f32 -> bf16: %d not exact\n", bad_decb, bad_rtb);
    check(bad_dec16 == 0 && bad_rt16 == 0, "f16 decode / round trip");
    check(bad_decb == 0 && bad_rtb == 0, "bf16 decode / round trip");

    /* hand-picked: ties, the overflow edge, subnormals, signed zero */
    const float picks[] = {
        0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 1.0f / 3, 3.14159265f, -2.5e-3f,
        1 + 0x1p-11f, 1 + 3 * 0x1p-11f, 1 + 0x1p-11f + 0x1p-20f,      /* f16 ties / near tie */
        1 + 0x1p-8f, 1 + 3 * 0x1p-8f, 1 + 0x1p-8f + 0x1p-20f,         /* bf16 ties */
        65504.0f, 65519.99f, 65520.0f, -65520.0f, 65536.0f, 1e10f,    /* f16 max, overflow */
        0x1p-14f, 0x1p-24f, 0x1p-25f, 3 * 0x1p-25f, 0x1p-26f, 1e-8f,   /* f16 subnormals */
        0x1.ffcp-15f, 0x1.ffep-15f,                                    /* subnormal -> normal */
        3.4028235e38f, 0x1.fefffep127f, 0x1.ff0000p127f, 1e-40f, 1e-45f,
        INFINITY, -INFINITY,
    };
    int np = (int)(sizeof picks / sizeof picks[0]), bad16 = 0, badb = 0;
    for (int i = 0; i < np; i++) {
        uint16_t a = ms_f32_to_f16(picks[i]), ra = ref_round(picks[i], ref_f16_val, 0x7c00);
        uint16_t b = ms_f32_to_bf16(picks[i]), rb = ref_round(picks[i], ref_bf16_val, 0x7f80);
        if (a != ra) { bad16++; printf("  f16  %a: got %04x want %04x\n", picks[i], a, ra); }
        if (b != rb) { badb++; printf("  bf16 %a: got %04x want %04x\n", picks[i], b, rb); }
    }
    /* a million random finite bit patterns, and random values near 1 and in
     * the f16 range (where ties and subnormals are common) */
    int nr = 1000000;
    for (int i = 0; i < nr; i++) {
        uint32_t u = (uint32_t)rnd64();
        if (i % 3 == 1) u = (u & 0x807fffffu) | ((uint32_t)(100 + (rnd64() % 45)) << 23);
        if (i % 3 == 2) u &= 0xffffe000u | (uint32_t)(rnd64() & 0x1000);   /* many exact ties */
        float f = u2f(u);
        if (isnan(f)) continue;
        if (ms_f32_to_f16(f) != ref_round(f, ref_f16_val, 0x7c00)) bad16++;
        if (ms_f32_to_bf16(f) != ref_round(f, ref_bf16_val, 0x7f80)) badb++;
    }
    int nan_bad = 0;
    const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fbfffffu, 0xff800001u, 0x7f802000u};
    for (int i = 0; i < 6; i++) {
        float f = u2f(nans[i]);
        if (!f16_is_nan(ms_f32_to_f16(f)) || !bf16_is_nan(ms_f32_to_bf16(f))) nan_bad++;
        if (((ms_f32_to_f16(f) >> 15) != (nans[i] >> 31)) ||
            ((ms_f32_to_bf16(f) >> 15) != (nans[i] >> 31))) nan_bad++;
    }
    printf("conv: f32 -> f16 rounding (%d picks + %d random): %d wrong\n", np, nr, bad16);
    printf("conv: f32 -> bf16 rounding (%d picks + %d random): %d wrong\n", np, nr, badb);
    printf("conv: f32 NaN -> half NaN with sign: %d wrong\n", nan_bad);
    check(bad16 == 0, "f32 -> f16 rounding");
    check(badb == 0, "f32 -> bf16 rounding");
    check(nan_bad == 0, "NaN -> NaN");
    (void)f2u;
}

/* ---- matvec ----------------------------------------------------------------- */

typedef struct {
    ms_dtype dt;
    int out, in, trans;
    void *data;      /* stored weights */
    double *wd;      /* the same weights as doubles, (out, in) */
} tmat;

static void tmat_make(tmat *t, ms_dtype dt, int out, int in, int trans)
{
    size_t n = (size_t)out * in;
    t->dt = dt; t->out = out; t->in = in; t->trans = trans;
    t->data = malloc(n * (dt == MS_F32 ? 4 : 2) + 64);   /* no ms_dtype_size: links alone */
    t->wd = malloc(n * sizeof(double));
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            size_t at = trans ? (size_t)i * out + o : (size_t)o * in + i;
            float v = rndu();
            double d;
            if (dt == MS_F16) { uint16_t h = ms_f32_to_f16(v); ((uint16_t *)t->data)[at] = h; d = ms_f16_to_f32(h); }
            else if (dt == MS_BF16) { uint16_t h = ms_f32_to_bf16(v); ((uint16_t *)t->data)[at] = h; d = ms_bf16_to_f32(h); }
            else { ((float *)t->data)[at] = v; d = v; }
            t->wd[(size_t)o * in + i] = d;
        }
}

static void tmat_free(tmat *t) { free(t->data); free(t->wd); }


enum { IMPL_AVX2, IMPL_SCALAR, IMPL_BLAS };
static const char *impl_name[] = {"avx2", "scalar", "blas"};
static const char *dt_name[] = {"F32", "F16", "BF16"};

/* Runs one case; returns the worst |y-ref| / (sum|W x| + 1e-6 / 1e-5) ratio
 * scaled so that <= 1 passes, and writes y into yout. */
static double run_case(const tmat *t, const float *x, int impl, float *yout, double *worst_rel)
{
    ms_kernels_force_scalar(impl == IMPL_SCALAR);
    ms_kernels_f32_blas(impl == IMPL_BLAS);
    ms_mat W = {t->data, t->dt, t->out, t->in, t->trans};
    float *y = malloc(((size_t)t->out + 16) * sizeof(float));
    for (int i = 0; i < t->out + 16; i++) y[i] = 12345.0f;   /* canary */
    float *xc = malloc((size_t)t->in * sizeof(float));
    memcpy(xc, x, (size_t)t->in * sizeof(float));
    ms_matvec(&W, xc, y);
    double worst = 0, wrel = 0;
    for (int o = 0; o < t->out; o++) {
        double ref = 0, mag = 0;
        for (int i = 0; i < t->in; i++) {
            double p = t->wd[(size_t)o * t->in + i] * x[i];
            ref += p; mag += fabs(p);
        }
        double err = fabs((double)y[o] - ref);
        double r = err / (1e-5 * mag + 1e-6);
        if (!(r <= worst)) worst = r;          /* NaN counts as worst */
        double rel = mag > 0 ? err / mag : err;
        if (!(rel <= wrel)) wrel = rel;
    }
    for (int i = t->out; i < t->out + 16; i++)
        if (y[i] != 12345.0f) worst = INFINITY;
    if (memcmp(xc, x, (size_t)t->in * sizeof(float))) worst = INFINITY;
    memcpy(yout, y, (size_t)t->out * sizeof(float));
    free(y); free(xc);
    *worst_rel = wrel;
    return worst;
}

static void test_matvec(void)
{
    static const int sizes[][2] = {
        {1, 1}, {4, 4}, {5, 13}, {17, 33}, {64, 768}, {768, 64}, {96, 80},
        {300, 128}, {1000, 777}, {257, 301}, {130, 1000}, {4099, 20},
    };
    int ns = (int)(sizeof sizes / sizeof sizes[0]);
    double overall = 0;
    for (int s = 0; s < ns; s++)
        for (int trans = 0; trans <= 1; trans++)
            for (int dt = MS_F32; dt <= MS_BF16; dt++) {
                tmat t;
                tmat_make(&t, (ms_dtype)dt, sizes[s][0], sizes[s][1], trans);
                float *x = malloc((size_t)t.in * sizeof(float));
                for (int i = 0; i < t.in; i++) x[i] = rndu();
                float *y1 = malloc((size_t)t.out * sizeof(float));
                float *y2 = malloc((size_t)t.out * sizeof(float));
                for (int impl = IMPL_AVX2; impl <= (dt == MS_F32 ? IMPL_BLAS : IMPL_SCALAR); impl++) {
                    if (dt == MS_F32 && impl == IMPL_SCALAR) continue;   /* F32 without AVX2 is BLAS */
                    double rel1, rel2;
                    ms_kernels_set_threads(1);
                    double w1 = run_case(&t, x, impl, y1, &rel1);
                    ms_kernels_set_threads(2);
                    double w2 = run_case(&t, x, impl, y2, &rel2);
                    int same = memcmp(y1, y2, (size_t)t.out * sizeof(float)) == 0;
                    int ok = w1 <= 1 && w2 <= 1 && (same || impl == IMPL_BLAS);
                    char what[160];
                    snprintf(what, sizeof what, "matvec %-4s %4dx%-4d trans=%d %-6s", dt_name[dt],
                             t.out, t.in, trans, impl_name[impl]);
                    printf("%s  1 thr: worst rel %.2e (%.3f of tol)  2 thr: %.2e (%.3f)%s%s\n", what,
                           rel1, w1, rel2, w2, same ? "  1thr==2thr" : "  1thr!=2thr",
                           ok ? "" : "  FAIL");
                    check(ok, what);
                    if (w1 > overall) overall = w1;
                    if (w2 > overall) overall = w2;
                }
                free(x); free(y1); free(y2);
                tmat_free(&t);
            }
    ms_kernels_force_scalar(0);
    ms_kernels_f32_blas(0);
    printf("matvec: worst error over all cases: %.3f of the tolerance 1e-5*sum|Wx|+1e-6\n", overall);
}

static void test_mat_row(void)
{
    int bad = 0;
    for (int dt = MS_F32; dt <= MS_BF16; dt++)
        for (int trans = 0; trans <= 1; trans++) {
            tmat t;
            tmat_make(&t, (ms_dtype)dt, 37, 29, trans);
            ms_mat W = {t.data, t.dt, t.out, t.in, t.trans};
            float row[29];
            for (int r = 0; r < t.out; r++) {
                ms_mat_row(&W, r, row);
                for (int j = 0; j < t.in; j++)
                    if ((double)row[j] != t.wd[(size_t)r * t.in + j]) bad++;
            }
            tmat_free(&t);
        }
    printf("mat_row: 3 dtypes x 2 layouts, 37x29: %d wrong\n", bad);
    check(bad == 0, "ms_mat_row");
}

/* The thread pool: thousands of back-to-back jobs, and two threads of the
 * process calling ms_matvec at once (one of them finds the pool busy and
 * works alone); every result must equal the single-threaded one bit for bit. */
typedef struct { const ms_mat *W; const float *x; const float *want; int reps, bad; } pool_arg;

static void *pool_caller(void *p)
{
    pool_arg *a = p;
    float *y = malloc((size_t)a->W->out * sizeof(float));
    for (int r = 0; r < a->reps; r++) {
        memset(y, 0xff, (size_t)a->W->out * sizeof(float));
        ms_matvec(a->W, a->x, y);
        if (memcmp(y, a->want, (size_t)a->W->out * sizeof(float))) a->bad++;
    }
    free(y);
    return NULL;
}

static void test_pool(void)
{
    tmat t;
    tmat_make(&t, MS_BF16, 1000, 777, 0);
    tmat u;
    tmat_make(&u, MS_F16, 777, 1000, 1);
    ms_mat W = {t.data, t.dt, t.out, t.in, 0}, U = {u.data, u.dt, u.out, u.in, 1};
    float *x = malloc(1000 * sizeof(float));
    for (int i = 0; i < 1000; i++) x[i] = rndu();
    float *w1 = malloc(1000 * sizeof(float)), *u1 = malloc(777 * sizeof(float));
    ms_kernels_set_threads(1);
    ms_matvec(&W, x, w1);
    ms_matvec(&U, x, u1);
    ms_kernels_set_threads(2);
    pool_arg a = {&W, x, w1, 3000, 0}, b = {&U, x, u1, 1000, 0};
    pool_caller(&a);
    int bad_serial = a.bad;
    a.bad = 0;
    pthread_t th;
    pthread_create(&th, NULL, pool_caller, &b);
    pool_caller(&a);
    pthread_join(th, NULL);
    printf("pool: 3000 back-to-back products: %d differ; two callers at once (3000 + 1000): %d + %d differ\n",
           bad_serial, a.bad, b.bad);
    check(bad_serial == 0 && a.bad == 0 && b.bad == 0, "pool results equal single-threaded");
    free(x); free(w1); free(u1);
    tmat_free(&t); tmat_free(&u);
}

static void test_misc(void)
{
    ms_kernels_set_threads(2);
    check(ms_kernels_get_threads() == 2, "set/get threads");
    double bw = ms_read_bandwidth(2, 16u << 20, 3);
    printf("read bandwidth probe (16 MiB, 2 threads, cache-resident): %.1f GB/s\n", bw / 1e9);
    check(bw > 0, "ms_read_bandwidth > 0");
    /* empty and degenerate shapes */
    float x[4] = {1, 2, 3, 4}, y[4] = {9, 9, 9, 9};
    uint16_t w[16] = {0};
    ms_mat Z = {w, MS_BF16, 4, 0, 0};
    ms_matvec(&Z, x, y);
    check(y[0] == 0 && y[3] == 0, "in = 0 gives zeros");
}

int main(void)
{
    test_conversions();
    test_mat_row();
    test_matvec();
    test_pool();
    test_misc();
    printf("test_kernels: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
