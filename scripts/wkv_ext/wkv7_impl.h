/* wkv7_impl.h: the body of the WKV-7 kernels for one element type.
 *
 * Included twice by wkv7.c, with REAL = float / double and SUF = f32 / f64.
 * Not a header to include anywhere else.  See wkv7.c for the math and the
 * buffer layouts.
 */
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)

/* one time step of one head: S := S·diag(w) + v kᵀ + (S·(-kk)) (kk·a)ᵀ, then
 * y = S·r.  sa (N) receives S_old·(-kk) (the backward needs it). */
static void CAT(step, SUF)(REAL *restrict S, const REAL *restrict r, const REAL *restrict w,
                           const REAL *restrict k, const REAL *restrict v, const REAL *restrict kk,
                           const REAL *restrict a, REAL *restrict y, REAL *restrict sa, int N)
{
    REAL c[WKV_NMAX];
    for (int j = 0; j < N; j++) c[j] = kk[j] * a[j];
    for (int i = 0; i < N; i++) {
        REAL *Si = S + (size_t)i * N;
        REAL s = 0;
#pragma omp simd reduction(- : s)
        for (int j = 0; j < N; j++) s -= Si[j] * kk[j];
        REAL vi = v[i], yi = 0;
#pragma omp simd reduction(+ : yi)
        for (int j = 0; j < N; j++) {
            REAL x = Si[j] * w[j] + vi * k[j] + s * c[j];
            Si[j] = x;
            yi += x * r[j];
        }
        if (y) y[i] = yi;
        if (sa) sa[i] = s;
    }
}

/* Forward.  r w k v kk a: (B,T,H,N); S: (B,H,N,N) initial state in, final
 * state out; y: (B,T,H,N); ck: (B,H,nck,N,N) the state before steps
 * 0, CK, 2CK, ... (nck = ceil(T/CK)).  Returns 0, or -1 if N > WKV_NMAX. */
int CAT(wkv7_forward, SUF)(int B, int T, int H, int N, const REAL *r, const REAL *w,
                           const REAL *k, const REAL *v, const REAL *kk, const REAL *a,
                           REAL *S, REAL *y, REAL *ck, int nthreads)
{
    if (N > WKV_NMAX || N < 1) return -1;
    const int nck = (T + WKV_CK - 1) / WKV_CK;
    const size_t NN = (size_t)N * N;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int bh = 0; bh < B * H; bh++) {
        const int b = bh / H, h = bh % H;
        REAL *Sh = S + (size_t)bh * NN;
        for (int t = 0; t < T; t++) {
            if (t % WKV_CK == 0) memcpy(ck + ((size_t)bh * nck + t / WKV_CK) * NN, Sh, NN * sizeof(REAL));
            const size_t o = (((size_t)b * T + t) * H + h) * N;
            CAT(step, SUF)(Sh, r + o, w + o, k + o, v + o, kk + o, a + o, y + o, NULL, N);
        }
    }
    return 0;
}

/* Backward.  Inputs as in the forward plus ck from it, dy (B,T,H,N) and
 * dS (B,H,N,N) = dL/d(final state), overwritten with dL/d(initial state).
 * Writes dr dw dk dv dkk da (B,T,H,N) (every element).  Within each
 * checkpoint interval the states are recomputed from ck into a per-thread
 * buffer of CK+1 states.  Returns 0, -1 if N > WKV_NMAX, -2 out of memory. */
int CAT(wkv7_backward, SUF)(int B, int T, int H, int N, const REAL *r, const REAL *w,
                            const REAL *k, const REAL *v, const REAL *kk, const REAL *a,
                            const REAL *ck, const REAL *dy, REAL *dS, REAL *dr, REAL *dw,
                            REAL *dk, REAL *dv, REAL *dkk, REAL *da, int nthreads)
{
    if (N > WKV_NMAX || N < 1) return -1;
    const int nck = (T + WKV_CK - 1) / WKV_CK;
    const size_t NN = (size_t)N * N;
    int oom = 0;
#pragma omp parallel num_threads(nthreads)
    {
        REAL *buf = malloc(((WKV_CK + 1) * NN + (size_t)WKV_CK * N) * sizeof(REAL));
        if (!buf) {
#pragma omp atomic write
            oom = 1;
        }
#pragma omp barrier
        if (!oom) {
            REAL *sab = buf + (WKV_CK + 1) * NN;   /* (CK, N) S_old·(-kk) per step */
#pragma omp for schedule(static)
            for (int bh = 0; bh < B * H; bh++) {
                const int b = bh / H, h = bh % H;
                REAL *G = dS + (size_t)bh * NN;     /* dL/dS_t, updated in place to dL/dS_{t-1} */
                for (int c = nck - 1; c >= 0; c--) {
                    const int t0 = c * WKV_CK, t1 = t0 + WKV_CK < T ? t0 + WKV_CK : T;
                    memcpy(buf, ck + ((size_t)bh * nck + c) * NN, NN * sizeof(REAL));
                    for (int t = t0; t < t1; t++) {
                        const size_t o = (((size_t)b * T + t) * H + h) * N;
                        REAL *Sn = buf + (size_t)(t - t0 + 1) * NN;
                        memcpy(Sn, Sn - NN, NN * sizeof(REAL));
                        CAT(step, SUF)(Sn, r + o, w + o, k + o, v + o, kk + o, a + o, NULL,
                                       sab + (size_t)(t - t0) * N, N);
                    }
                    for (int t = t1 - 1; t >= t0; t--) {
                        const size_t o = (((size_t)b * T + t) * H + h) * N;
                        const REAL *So = buf + (size_t)(t - t0) * NN, *Sn = So + NN;
                        const REAL *rt = r + o, *wt = w + o, *kt = k + o, *vt = v + o, *kkt = kk + o,
                                   *at = a + o, *dyt = dy + o, *sa = sab + (size_t)(t - t0) * N;
                        REAL c_[WKV_NMAX], dr_[WKV_NMAX], dw_[WKV_NMAX], dk_[WKV_NMAX],
                            dc_[WKV_NMAX], db_[WKV_NMAX];
                        for (int j = 0; j < N; j++) {
                            c_[j] = kkt[j] * at[j];
                            dr_[j] = dw_[j] = dk_[j] = dc_[j] = db_[j] = 0;
                        }
                        for (int i = 0; i < N; i++) {
                            REAL *restrict Gi = G + (size_t)i * N;
                            const REAL *restrict Soi = So + (size_t)i * N, *restrict Sni = Sn + (size_t)i * N;
                            const REAL dyi = dyt[i], vi = vt[i], sai = sa[i];
                            REAL dsa = 0, dvi = 0;
#pragma omp simd reduction(+ : dsa, dvi)
                            for (int j = 0; j < N; j++) {
                                REAL g = Gi[j] + dyi * rt[j];     /* y_t = S_t r_t */
                                Gi[j] = g;
                                dsa += g * c_[j];
                                dvi += g * kt[j];
                            }
#pragma omp simd
                            for (int j = 0; j < N; j++) {
                                REAL g = Gi[j];
                                dr_[j] += Sni[j] * dyi;
                                dw_[j] += g * Soi[j];
                                dk_[j] += g * vi;
                                dc_[j] += g * sai;
                                db_[j] += dsa * Soi[j];
                                Gi[j] = g * wt[j] - dsa * kkt[j];   /* b = -kk */
                            }
                            dv[o + i] = dvi;
                        }
                        for (int j = 0; j < N; j++) {
                            dr[o + j] = dr_[j];
                            dw[o + j] = dw_[j];
                            dk[o + j] = dk_[j];
                            dkk[o + j] = -db_[j] + at[j] * dc_[j];   /* b = -kk, c = kk·a */
                            da[o + j] = kkt[j] * dc_[j];
                        }
                    }
                }
            }
        }
        free(buf);
    }
    return oom ? -2 : 0;
}

#undef CAT
#undef CAT_
