/* step_impl.h: the element-wise pieces of the forward step that ms_step
 * (step.c) and the sequence and batch steps (step_seq.c) share, so that both
 * do exactly the same arithmetic on each token.  Internal to core/.
 */
#ifndef MS_STEP_IMPL_H
#define MS_STEP_IMPL_H

#include <math.h>
#include <stddef.h>

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline void layer_norm(const float *x, float *y, const float *w, const float *b, int n, double eps)
{
    double mean = 0, var = 0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    var /= n;
    /* normalise in double: (x - mean) cancels badly in fp32 when |mean| >> std */
    double inv = 1.0 / sqrt(var + eps);
    for (int i = 0; i < n; i++) y[i] = (float)(((double)x[i] - mean) * inv * w[i] + b[i]);
}

/* per-head GroupNorm of x (G groups of N) with per-channel affine */
static inline void group_norm(const float *x, float *y, const float *w, const float *b, int G, int N, double eps)
{
    for (int h = 0; h < G; h++)
        layer_norm(x + (size_t)h * N, y + (size_t)h * N, w + (size_t)h * N, b + (size_t)h * N, N, eps);
}

static inline void unit_per_head(const float *x, float *y, int G, int N)
{
    for (int h = 0; h < G; h++) {
        const float *xi = x + (size_t)h * N;
        double ss = 0;
        for (int j = 0; j < N; j++) ss += (double)xi[j] * xi[j];
        float nrm = (float)sqrt(ss);
        if (nrm < 1e-12f) nrm = 1e-12f;
        for (int j = 0; j < N; j++) y[(size_t)h * N + j] = xi[j] / nrm;
    }
}

/* The WKV-7 update of S (H heads of N x N, rows i = value index) by one
 * token and its read y = S·r, per head; bj (A floats) is scratch. */
static inline void wkv_update(float *S, const float *w_, const float *k_, const float *v_, const float *r_,
                              const float *kk_, const float *a_, float *bj_, float *y, int H, int N)
{
    for (int h = 0; h < H; h++) {
        float *Sh = S + (size_t)h * N * N;
        const float *w = w_ + h * N, *k = k_ + h * N, *v = v_ + h * N, *r = r_ + h * N;
        const float *kk = kk_ + h * N, *a = a_ + h * N;
        float *bj = bj_ + h * N;   /* kk_j * a_j */
        for (int j = 0; j < N; j++) bj[j] = kk[j] * a[j];
        for (int i = 0; i < N; i++) {
            float *row = Sh + (size_t)i * N;
            float sa = 0;
            for (int j = 0; j < N; j++) sa -= kk[j] * row[j];
            float vi = v[i], yi = 0;
            for (int j = 0; j < N; j++) {
                row[j] = row[j] * w[j] + vi * k[j] + sa * bj[j];
                yi += row[j] * r[j];
            }
            y[h * N + i] = yi;
        }
    }
}

/* The SSE reads of heads 0..Hs-1 of S (only those are read): q = the unit
 * query from z, e_raw = S[h]·q, e = GroupNorm(e_raw). */
static inline void sse_read_rows(const float *z, const float *S, float *q, float *e_raw, float *e, const float *ln_w,
                                 const float *ln_b, int Hs, int N)
{
    unit_per_head(z, q, Hs, N);
    for (int h = 0; h < Hs; h++) {
        const float *Sh = S + (size_t)h * N * N, *qh = q + (size_t)h * N;
        for (int i = 0; i < N; i++) {
            const float *row = Sh + (size_t)i * N;
            float acc = 0;
            for (int j = 0; j < N; j++) acc += row[j] * qh[j];
            e_raw[h * N + i] = acc;
        }
    }
    group_norm(e_raw, e, ln_w, ln_b, Hs, N, 64e-5);
}

#endif
