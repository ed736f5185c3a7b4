/* test_cuda.c: the CUDA backend (core/cuda/) against the CPU, its oracle.
 *
 * Without a usable device it prints "skipped: no CUDA device (<reason>)" and
 * exits 0, so `make test` compiles and runs it everywhere.  With one:
 *
 * 1. Every kernel on its own, on random inputs (never zeros), outputs
 *    poisoned with NaN first, against a double-precision reference written
 *    from MODEL.md: the GEMV kernel (each dtype, vector and scalar paths,
 *    batch 1..13, two segments, relu^2 input, residual base, several jobs in
 *    one launch, no write past a row) and the cuBLAS path (inputs rounded to
 *    the matrix dtype in the reference); embedding+ln0; LayerNorm; ln1 + time
 *    shift; WKV-7 (head sizes 16..160, every code path, layer 0 and later);
 *    ln2 + channel shift + SSE reads (Hs = 0..4); the expert router.
 *    Each prints max|got-ref| / max|ref| (<= 2e-5 passes).
 * 2. Whole models against ms_step() on the CPU, every step, logits and the
 *    whole state: random models of odd shapes (A > C, N = 16/32/64/128/160,
 *    Hs = 0..4, experts) and the rwkv.cpp tiny model, F32 with MODEL.md 8's
 *    tolerance |gpu-cpu| <= 1e-5 + 1e-4|cpu| on every element (states carried
 *    separately, and one step from the CPU's state), BF16/F16 with
 *    ||gpu-cpu|| / ||cpu|| <= 1e-2; over --tokens tokens (256; 24 on the CPU
 *    emulator).
 * 3. Snapshot/restore/fork on the device are bit-exact; the captured graph,
 *    direct launches and PDL give the same bits.
 * 4. B states at once (own kernels at B = 5 and 13, cuBLAS and own at B = 64)
 *    against one at a time; the observer's trace against the CPU observer;
 *    errors for a bad token, a batch too large, a state twice in a batch.
 *
 *   test_cuda [--tokens N] [--quick] [--kernels]
 *   --kernels: section 1 only (for compute-sanitizer runs)
 */
#include "check.h"
#include "kernels.h"
#include "ms.h"
#include "cuda/ms_cuda.h"
#include "cuda/msc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MS_NO_CUDA
int main(void)
{
    printf("test_cuda: skipped: no CUDA device (built without CUDA: nvcc was not found at build time)\n");
    return 0;
}
#else

static int g_tokens = 256, g_emu;

/* ---- random numbers, device buffers ----------------------------------------- */

static uint64_t rs = 0x2545F4914F6CDD1DULL;
static double rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1p-53;
}
static float ur(float lo, float hi) { return lo + (hi - lo) * (float)rnd(); }

static void fatal(const char *what, const ms_err *e)
{
    printf("  FAIL %s: %s\n", what, e->msg);
    printf("test_cuda: stopped\n");
    exit(1);
}

static void *dput(const void *h, size_t bytes)
{
    ms_err e;
    void *d = msc_alloc(bytes, &e);
    if (!d || (h && msc_upload(d, h, bytes, &e))) fatal("device buffer", &e);
    return d;
}

static void dget(void *h, const void *d, size_t bytes)
{
    ms_err e;
    if (msc_download(h, d, bytes, &e)) fatal("download", &e);
}

static float *hrand(size_t n, float lo, float hi)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = ur(lo, hi);
    return p;
}

/* a random matrix (out, in) of dtype dt: host bytes, and its values as double */
typedef struct {
    int dt, out, in;
    void *h;
    double *v;
    void *d;
} tmat;

static tmat mk_mat(int dt, int out, int in, float scale)
{
    tmat m = {dt, out, in, NULL, NULL, NULL};
    size_t n = (size_t)out * in, esz = ms_dtype_size((ms_dtype)dt);
    m.h = malloc(n * esz + 1);
    m.v = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        float x = ur(-scale, scale);
        if (dt == MS_F32) {
            ((float *)m.h)[i] = x;
            m.v[i] = x;
        } else if (dt == MS_BF16) {
            uint16_t b = ms_f32_to_bf16(x);
            ((uint16_t *)m.h)[i] = b;
            m.v[i] = ms_bf16_to_f32(b);
        } else {
            uint16_t b = ms_f32_to_f16(x);
            ((uint16_t *)m.h)[i] = b;
            m.v[i] = ms_f16_to_f32(b);
        }
    }
    m.d = dput(m.h, n * esz);
    return m;
}

static void free_mat(tmat *m)
{
    free(m->h);
    free(m->v);
    msc_free(m->d);
}

static msc_mat dmat(const tmat *m) { return (msc_mat){m->d, m->dt, m->out, m->in}; }

/* max|got - ref| / max|ref| (NaN anywhere: infinite) */
static double relmax(const float *got, const double *ref, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d != d || got[i] != got[i]) return INFINITY;
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

/* the same for a strided device buffer of B rows of n (ld floats apart) */
static double relmax_dev(const float *d, int ld, int B, int n, const double *ref)
{
    float *h = malloc(sizeof(float) * (size_t)ld * B);
    dget(h, d, sizeof(float) * (size_t)ld * B);
    float *g = malloc(sizeof(float) * (size_t)n * B + 4);
    for (int b = 0; b < B; b++) memcpy(g + (size_t)b * n, h + (size_t)b * ld, sizeof(float) * (size_t)n);
    double r = relmax(g, ref, (size_t)n * B);
    free(h);
    free(g);
    return r;
}

static double rdt(int dt, double x)   /* x rounded to dtype dt */
{
    if (dt == MS_BF16) return ms_bf16_to_f32(ms_f32_to_bf16((float)x));
    if (dt == MS_F16) return ms_f16_to_f32(ms_f32_to_f16((float)x));
    return (float)x;
}

#define KTOL 2e-5

/* ---- 1a. GEMV ---------------------------------------------------------------- */

typedef struct {
    int dt[2], out, in[2], nseg, act[2], base;
} gcase;

/* One launch of njobs jobs, B batch elements, by path; reference in double. */
static void gemv_launch_check(const char *label, const gcase *gc, int njobs, int B, int path)
{
    ms_err e;
    msc_ctx *c = msc_ctx_new((size_t)4096 * B * 4 + (1 << 20), &e);
    if (!c) fatal("context", &e);
    msc_job jobs[MSC_MAX_JOBS];
    tmat W[MSC_MAX_JOBS][2];
    float *xh[MSC_MAX_JOBS][2], *bh[MSC_MAX_JOBS];
    void *xd[MSC_MAX_JOBS][2], *bd[MSC_MAX_JOBS], *yd[MSC_MAX_JOBS];
    memset(jobs, 0, sizeof jobs);
    for (int j = 0; j < njobs; j++) {
        const gcase *g = &gc[j];
        msc_job *J = &jobs[j];
        J->nseg = g->nseg;
        J->out = g->out;
        for (int s = 0; s < g->nseg; s++) {
            W[j][s] = mk_mat(g->dt[s], g->out, g->in[s], 1.0f / sqrtf((float)g->in[s]));
            int ldx = g->in[s] + (s ? 3 : 0) + (j & 1) * 4;   /* padded rows: ld != in */
            xh[j][s] = hrand((size_t)ldx * B, -2, 2);
            xd[j][s] = dput(xh[j][s], sizeof(float) * (size_t)ldx * B);
            J->W[s] = W[j][s].d;
            J->dt[s] = g->dt[s];
            J->in[s] = g->in[s];
            J->x[s] = xd[j][s];
            J->ldx[s] = ldx;
            J->act[s] = g->act[s];
        }
        J->ldy = g->out + 5;
        yd[j] = dput(NULL, sizeof(float) * (size_t)J->ldy * B);   /* NaN-poisoned */
        J->y = yd[j];
        bh[j] = NULL;
        bd[j] = NULL;
        if (g->base) {
            J->ldbase = g->out + 1;
            bh[j] = hrand((size_t)J->ldbase * B, -1, 1);
            bd[j] = dput(bh[j], sizeof(float) * (size_t)J->ldbase * B);
            J->base = bd[j];
        }
    }
    int rc = msc_gemv(c, jobs, NULL, njobs, B, path, &e);
    if (!rc) rc = msc_ctx_sync(c, &e);
    if (rc) {
        CHECK(0, "gemv %s: %s", label, e.msg);
    } else {
        for (int j = 0; j < njobs; j++) {
            const gcase *g = &gc[j];
            const msc_job *J = &jobs[j];
            float *y = malloc(sizeof(float) * (size_t)J->ldy * B);
            dget(y, yd[j], sizeof(float) * (size_t)J->ldy * B);
            double worst = 0;
            int pad_ok = 1;
            for (int b = 0; b < B; b++) {
                for (int r = 0; r < g->out; r++) {
                    double sum = bh[j] ? bh[j][(size_t)b * J->ldbase + r] : 0, mag = fabs(sum);
                    for (int s = 0; s < g->nseg; s++) {
                        for (int i = 0; i < g->in[s]; i++) {
                            double xv = xh[j][s][(size_t)b * J->ldx[s] + i];
                            if (g->act[s] == MSC_ACT_RELU2) {
                                float t = xv > 0 ? (float)xv : 0.0f;
                                xv = (double)(t * t);
                            }
                            if (path == MSC_PATH_CUBLAS && g->dt[s] != MS_F32) xv = rdt(g->dt[s], xv);
                            double p = W[j][s].v[(size_t)r * g->in[s] + i] * xv;
                            sum += p;
                            mag += fabs(p);
                        }
                    }
                    double got = y[(size_t)b * J->ldy + r];
                    double d = fabs(got - sum) / (1e-5 * mag + 1e-6);
                    if (d != d || got != got) d = INFINITY;
                    if (d > worst) worst = d;
                }
                for (int r = g->out; r < J->ldy; r++) {
                    uint32_t u;
                    memcpy(&u, &y[(size_t)b * J->ldy + r], 4);
                    if (u != 0xFFFFFFFFu) pad_ok = 0;
                }
            }
            CHECK(worst <= 1 && pad_ok,
                  "gemv %-28s job %d: %3d x %4d%s %-4s B=%-2d %s worst |y-ref|/(1e-5 sum|Wx|+1e-6) = %.3g%s", label, j,
                  g->out, g->in[0], g->nseg == 2 ? "+seg" : "    ", ms_dtype_name((ms_dtype)g->dt[0]), B,
                  path == MSC_PATH_CUBLAS ? "cublas" : "own   ", worst, pad_ok ? "" : " (wrote past a row)");
            free(y);
        }
    }
    for (int j = 0; j < njobs; j++) {
        for (int s = 0; s < gc[j].nseg; s++) {
            free_mat(&W[j][s]);
            free(xh[j][s]);
            msc_free(xd[j][s]);
        }
        free(bh[j]);
        msc_free(bd[j]);
        msc_free(yd[j]);
    }
    msc_ctx_free(c);
}

static void test_gemv(void)
{
    static const int dts[3] = {MS_F32, MS_F16, MS_BF16};
    static const int shapes[][2] = {{37, 53}, {64, 80}, {50, 12}, {300, 768}, {130, 2048}};
    static const int Bs[4] = {1, 3, 8, 13};
    int nshape = g_emu ? 4 : 5;
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < nshape; s++)
            for (int bi = 0; bi < 4; bi++) {
                if (g_emu && shapes[s][1] >= 768 && bi > 1) continue;
                gcase g = {{dts[d], 0}, shapes[s][0], {shapes[s][1], 0}, 1, {0, 0}, 0};
                gemv_launch_check("single", &g, 1, Bs[bi], MSC_PATH_OWN);
            }
    /* several jobs in one launch: mixed dtypes, two segments, relu^2, base */
    gcase multi[4] = {
        {{MS_F32, 0}, 37, {53, 0}, 1, {0, 0}, 0},
        {{MS_BF16, MS_F16}, 64, {80, 24}, 2, {0, 0}, 0},
        {{MS_F16, 0}, 130, {256, 0}, 1, {MSC_ACT_RELU2, 0}, 1},
        {{MS_BF16, MS_BF16}, 41, {96, 13}, 2, {MSC_ACT_RELU2, 0}, 1},
    };
    for (int bi = 0; bi < 4; bi++) gemv_launch_check("4 jobs, one launch", multi, 4, Bs[bi], MSC_PATH_OWN);
    /* the cuBLAS path */
    static const int cb[3] = {1, 13, 64};
    for (int d = 0; d < 3; d++)
        for (int bi = 0; bi < 3; bi++) {
            if (g_emu && bi == 2) continue;
            gcase g[2] = {{{dts[d], 0}, 300, {768, 0}, 1, {0, 0}, 0},
                          {{dts[d], dts[d]}, 64, {80, 24}, 2, {MSC_ACT_RELU2, 0}, 1}};
            gemv_launch_check("cublas", g, 2, cb[bi], MSC_PATH_CUBLAS);
        }
}

/* ---- 1b. embedding, LayerNorm, ln1 + shift --------------------------------------- */

static void ln_ref(const double *x, int n, const float *w, const float *b, double eps, double *y)
{
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    v /= n;
    for (int i = 0; i < n; i++) y[i] = (x[i] - m) / sqrt(v + eps) * w[i] + b[i];
}

static float **dev_ptr_table(float **ptrs, int n)
{
    return dput(ptrs, sizeof(float *) * (size_t)n);
}

static void test_norms(void)
{
    ms_err e;
    msc_ctx *c = msc_ctx_new(0, &e);
    if (!c) fatal("context", &e);
    static const int Cs[3] = {80, 200, 768};
    static const int dts[3] = {MS_F32, MS_F16, MS_BF16};
    for (int ci = 0; ci < 3; ci++) {
        const int C = Cs[ci], B = 3, ld = C + 8, vocab = 50;
        float *w = hrand(C, 0.8f, 1.2f), *bb = hrand(C, -0.1f, 0.1f);
        float *dw = dput(w, sizeof(float) * C), *db = dput(bb, sizeof(float) * C);
        double *ref = malloc(sizeof(double) * (size_t)C * B), *row = malloc(sizeof(double) * C);
        /* embedding + ln0 */
        for (int d = 0; d < 3; d++) {
            tmat emb = mk_mat(dts[d], vocab, C, 1.0f);
            int tok[3] = {7, 0, vocab - 1};
            int *dtok = dput(tok, sizeof tok);
            float *x = dput(NULL, sizeof(float) * (size_t)ld * B);
            msc_embed_args a = {dmat(&emb), dtok, dw, db, x, ld, C};
            for (int b = 0; b < B; b++) {
                for (int i = 0; i < C; i++) row[i] = emb.v[(size_t)tok[b] * C + i];
                ln_ref(row, C, w, bb, 1e-5, ref + (size_t)b * C);
            }
            double r = msc_embed(c, &a, B, &e) || msc_ctx_sync(c, &e) ? INFINITY : relmax_dev(x, ld, B, C, ref);
            CHECK(r <= KTOL, "embed+ln0  C=%-4d %-4s B=3  max|d|/max|ref| = %.3g", C, ms_dtype_name((ms_dtype)dts[d]), r);
            free_mat(&emb);
            msc_free(dtok);
            msc_free(x);
        }
        /* LayerNorm */
        float *xh = hrand((size_t)ld * B, -3, 5);
        float *xd = dput(xh, sizeof(float) * (size_t)ld * B), *yd = dput(NULL, sizeof(float) * (size_t)ld * B);
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < C; i++) row[i] = xh[(size_t)b * ld + i];
            ln_ref(row, C, w, bb, 1e-5, ref + (size_t)b * C);
        }
        msc_ln_args la = {xd, ld, dw, db, yd, ld, C};
        double r = msc_ln(c, &la, B, &e) || msc_ctx_sync(c, &e) ? INFINITY : relmax_dev(yd, ld, B, C, ref);
        CHECK(r <= KTOL, "layernorm  C=%-4d      B=3  max|d|/max|ref| = %.3g", C, r);
        /* ln1 + time shift: att_x at offset 5 of each state */
        float *st[3], *sth[3], *mix[6], *mixd[6], *outd[6];
        for (int b = 0; b < B; b++) {
            sth[b] = hrand((size_t)C + 9, -1, 1);
            st[b] = dput(sth[b], sizeof(float) * ((size_t)C + 9));
        }
        float **dst = dev_ptr_table(st, B);
        msc_tmix_args ta;
        memset(&ta, 0, sizeof ta);
        ta.x = xd;
        ta.ldx = ld;
        ta.ln_w = dw;
        ta.ln_b = db;
        ta.states = dst;
        ta.att_off = 5;
        for (int m = 0; m < 6; m++) {
            mix[m] = hrand(C, 0, 1);
            mixd[m] = dput(mix[m], sizeof(float) * C);
            outd[m] = dput(NULL, sizeof(float) * (size_t)ld * B);
            ta.mix[m] = mixd[m];
            ta.out[m] = outd[m];
        }
        ta.ldo = ld;
        ta.C = C;
        int rc = msc_tmix_in(c, &ta, B, &e) || msc_ctx_sync(c, &e);
        double worst = rc ? INFINITY : 0;
        double *xa = malloc(sizeof(double) * (size_t)C * B), *refo = malloc(sizeof(double) * (size_t)C * B);
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < C; i++) row[i] = xh[(size_t)b * ld + i];
            ln_ref(row, C, w, bb, 1e-5, xa + (size_t)b * C);
        }
        for (int m = 0; m < 6 && !rc; m++) {
            for (int b = 0; b < B; b++)
                for (int i = 0; i < C; i++) {
                    double xv = xa[(size_t)b * C + i], d = sth[b][5 + i] - xv;
                    refo[(size_t)b * C + i] = xv + d * mix[m][i];
                }
            double r2 = relmax_dev(outd[m], ld, B, C, refo);
            if (r2 > worst) worst = r2;
        }
        for (int b = 0; b < B && !rc; b++) {   /* att_x := xa, the rest untouched */
            float *got = malloc(sizeof(float) * ((size_t)C + 9));
            dget(got, st[b], sizeof(float) * ((size_t)C + 9));
            double r2 = relmax(got + 5, xa + (size_t)b * C, C);
            if (r2 > worst) worst = r2;
            for (int i = 0; i < 5; i++) if (got[i] != sth[b][i]) worst = INFINITY;
            for (int i = C + 5; i < C + 9; i++) if (got[i] != sth[b][i]) worst = INFINITY;
            free(got);
        }
        CHECK(worst <= KTOL, "ln1+shift  C=%-4d      B=3  6 outputs and att_x: max|d|/max|ref| = %.3g", C, worst);
        for (int m = 0; m < 6; m++) {
            free(mix[m]);
            msc_free(mixd[m]);
            msc_free(outd[m]);
        }
        for (int b = 0; b < B; b++) {
            free(sth[b]);
            msc_free(st[b]);
        }
        msc_free(dst);
        free(xa);
        free(refo);
        free(xh);
        msc_free(xd);
        msc_free(yd);
        free(w);
        free(bb);
        msc_free(dw);
        msc_free(db);
        free(ref);
        free(row);
    }
    msc_ctx_free(c);
}

/* ---- 1c. WKV-7 ----------------------------------------------------------------------- */

static double sigd(double x) { return 1.0 / (1.0 + exp(-x)); }

static void test_wkv_case(int H, int N, int first, int dt, const int d4[4], int B)
{
    ms_err e;
    msc_ctx *c = msc_ctx_new(0, &e);
    if (!c) fatal("context", &e);
    const int A = H * N, ldA = A + 4, dw = d4[0], da = d4[1], dg = d4[2], dv = d4[3];
    const size_t SO = 3, SL = SO + (size_t)H * N * N + 2;   /* S at offset 3 of each state */
    float *r = hrand((size_t)ldA * B, -1, 1), *k = hrand((size_t)ldA * B, -1, 1), *v = hrand((size_t)ldA * B, -1, 1);
    float *vf = hrand((size_t)ldA * B, -1, 1);
    float *lw = hrand((size_t)dw * B, -1, 1), *la = hrand((size_t)da * B, -1, 1), *lg = hrand((size_t)dg * B, -1, 1);
    float *lv = hrand((size_t)(dv ? dv : 1) * B, -1, 1);
    tmat w2 = mk_mat(dt, A, dw, 0.3f), a2 = mk_mat(dt, A, da, 0.3f), g2 = mk_mat(dt, A, dg, 0.3f);
    tmat v2 = mk_mat(dt, A, dv, 0.3f);
    float *w0 = hrand(A, -3, 1), *a0 = hrand(A, -1, 1), *v0 = hrand(A, -1, 1), *k_k = hrand(A, 0.5f, 1);
    float *k_a = hrand(A, 0.5f, 1), *r_k = hrand(A, -0.5f, 0.5f), *lnw = hrand(A, 0.8f, 1.2f);
    float *lnb = hrand(A, -0.1f, 0.1f);
    float *sth[8], *st[8];
    for (int b = 0; b < B; b++) {
        sth[b] = hrand(SL, -1, 1);
        st[b] = dput(sth[b], sizeof(float) * SL);
    }
    float **dst = dev_ptr_table(st, B);
    msc_wkv_args a;
    memset(&a, 0, sizeof a);
    a.H = H;
    a.N = N;
    a.first = first;
    a.d_w = dw;
    a.d_a = da;
    a.d_g = dg;
    a.d_v = dv;
    a.states = dst;
    a.S_off = SO;
    a.r = dput(r, sizeof(float) * (size_t)ldA * B);
    a.v_first = dput(vf, sizeof(float) * (size_t)ldA * B);
    a.k = dput(k, sizeof(float) * (size_t)ldA * B);
    a.v = dput(v, sizeof(float) * (size_t)ldA * B);
    float **outs[6] = {&a.w, &a.a, &a.g, &a.kk, &a.y, &a.yo};
    for (int i = 0; i < 6; i++) *outs[i] = dput(NULL, sizeof(float) * (size_t)ldA * B);
    a.ldA = ldA;
    a.lw = dput(lw, sizeof(float) * (size_t)dw * B);
    a.la = dput(la, sizeof(float) * (size_t)da * B);
    a.lg = dput(lg, sizeof(float) * (size_t)dg * B);
    a.lv = dput(lv, sizeof(float) * (size_t)(dv ? dv : 1) * B);
    a.ld_w = dw;
    a.ld_a = da;
    a.ld_g = dg;
    a.ld_v = dv;
    a.w2 = dmat(&w2);
    a.a2 = dmat(&a2);
    a.g2 = dmat(&g2);
    a.v2 = dmat(&v2);
    const float *hv[8] = {w0, a0, v0, k_k, k_a, r_k, lnw, lnb};
    const float **dv8[8] = {&a.w0, &a.a0, &a.v0, &a.k_k, &a.k_a, &a.r_k, &a.lnx_w, &a.lnx_b};
    for (int i = 0; i < 8; i++) *dv8[i] = dput(hv[i], sizeof(float) * A);

    int rc = msc_wkv(c, &a, B, &e) || msc_ctx_sync(c, &e);
    /* reference */
    size_t nA = (size_t)A * B;
    double *R[8];   /* k', v', w, a, g, kk, y, yo */
    for (int i = 0; i < 8; i++) R[i] = calloc(nA, sizeof(double));
    double *Sref = malloc(sizeof(double) * (size_t)H * N * N * B);
    for (int b = 0; b < B; b++) {
        const float *rb = r + (size_t)b * ldA, *kb = k + (size_t)b * ldA, *vb = v + (size_t)b * ldA;
        double *kp = R[0] + (size_t)b * A, *vp = R[1] + (size_t)b * A, *wv = R[2] + (size_t)b * A;
        double *av = R[3] + (size_t)b * A, *gv = R[4] + (size_t)b * A, *kk = R[5] + (size_t)b * A;
        double *y = R[6] + (size_t)b * A, *yo = R[7] + (size_t)b * A;
        for (int ch = 0; ch < A; ch++) {
            double wr = 0, ar = 0, gr = 0, vr = 0;
            for (int j = 0; j < dw; j++) wr += w2.v[(size_t)ch * dw + j] * tanh((double)lw[(size_t)b * dw + j]);
            for (int j = 0; j < da; j++) ar += a2.v[(size_t)ch * da + j] * la[(size_t)b * da + j];
            for (int j = 0; j < dg; j++) gr += g2.v[(size_t)ch * dg + j] * sigd(lg[(size_t)b * dg + j]);
            for (int j = 0; j < dv; j++) vr += v2.v[(size_t)ch * dv + j] * lv[(size_t)b * dv + j];
            wv[ch] = exp(-0.606531 * sigd(w0[ch] + wr));
            av[ch] = sigd(a0[ch] + ar);
            gv[ch] = gr;
            vp[ch] = first ? vb[ch] : vb[ch] + (vf[(size_t)b * ldA + ch] - vb[ch]) * sigd(v0[ch] + vr);
            kk[ch] = (double)kb[ch] * k_k[ch];
            kp[ch] = kb[ch] * (1 + (av[ch] - 1) * k_a[ch]);
        }
        for (int h = 0; h < H; h++) {
            double ss = 0, bonus = 0;
            for (int j = 0; j < N; j++) ss += kk[h * N + j] * kk[h * N + j];
            double nrm = sqrt(ss) < 1e-12 ? 1e-12 : sqrt(ss);
            for (int j = 0; j < N; j++) kk[h * N + j] /= nrm;
            for (int j = 0; j < N; j++) bonus += rb[h * N + j] * kp[h * N + j] * r_k[h * N + j];
            double *S = Sref + ((size_t)b * H + h) * N * N;
            const float *S0 = sth[b] + SO + (size_t)h * N * N;
            for (int i = 0; i < N; i++) {
                double sa = 0, yi = 0;
                for (int j = 0; j < N; j++) sa -= kk[h * N + j] * S0[(size_t)i * N + j];
                for (int j = 0; j < N; j++) {
                    double s = S0[(size_t)i * N + j] * wv[h * N + j] + vp[h * N + i] * kp[h * N + j] +
                               sa * kk[h * N + j] * av[h * N + j];
                    S[(size_t)i * N + j] = s;
                    yi += s * rb[h * N + j];
                }
                y[h * N + i] = yi;
            }
            double m = 0, var = 0;
            for (int i = 0; i < N; i++) m += y[h * N + i];
            m /= N;
            for (int i = 0; i < N; i++) var += (y[h * N + i] - m) * (y[h * N + i] - m);
            var /= N;
            for (int i = 0; i < N; i++) {
                int ch = h * N + i;
                yo[ch] = ((y[ch] - m) / sqrt(var + 64e-5) * lnw[ch] + lnb[ch] + bonus * vp[ch]) * gv[ch];
            }
        }
    }
    double worst = rc ? INFINITY : 0;
    const char *names[8] = {"k", "v", "w", "a", "g", "kk", "y", "yo"};
    const float *devs[8] = {a.k, a.v, a.w, a.a, a.g, a.kk, a.y, a.yo};
    const char *wname = rc ? e.msg : "";
    for (int i = 0; i < 8 && !rc; i++) {
        double x = relmax_dev(devs[i], ldA, B, A, R[i]);
        if (x > worst) { worst = x; wname = names[i]; }
    }
    for (int b = 0; b < B && !rc; b++) {
        float *got = malloc(sizeof(float) * SL);
        dget(got, st[b], sizeof(float) * SL);
        double x = relmax(got + SO, Sref + (size_t)b * H * N * N, (size_t)H * N * N);
        if (x > worst) { worst = x; wname = "S"; }
        for (size_t i = 0; i < SO; i++) if (got[i] != sth[b][i]) { worst = INFINITY; wname = "outside S"; }
        for (size_t i = SO + (size_t)H * N * N; i < SL; i++) if (got[i] != sth[b][i]) { worst = INFINITY; wname = "outside S"; }
        free(got);
    }
    CHECK(worst <= KTOL, "wkv   H=%d N=%-3d %s LoRA %-4s d=%d,%d,%d,%d B=%d  worst max|d|/max|ref| = %.3g (%s)", H, N,
          first ? "layer 0" : "layer>0", ms_dtype_name((ms_dtype)dt), dw, da, dg, dv, B, worst, wname);
    for (int i = 0; i < 8; i++) free(R[i]);
    free(Sref);
    for (int b = 0; b < B; b++) {
        free(sth[b]);
        msc_free(st[b]);
    }
    msc_free(dst);
    float *hs[] = {r, k, v, vf, lw, la, lg, lv, w0, a0, v0, k_k, k_a, r_k, lnw, lnb};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) free(hs[i]);
    const void *ds[] = {a.r, a.v_first, a.k, a.v, a.w, a.a, a.g, a.kk, a.y, a.yo, a.lw, a.la, a.lg, a.lv,
                        a.w0, a.a0, a.v0, a.k_k, a.k_a, a.r_k, a.lnx_w, a.lnx_b};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) msc_free((void *)ds[i]);
    free_mat(&w2);
    free_mat(&a2);
    free_mat(&g2);
    free_mat(&v2);
    msc_ctx_free(c);
}

static void test_wkv(void)
{
    static const int odd[4] = {12, 10, 8, 14}, vec[4] = {64, 64, 32, 128};
    test_wkv_case(3, 32, 1, MS_F32, odd, 2);
    test_wkv_case(3, 32, 0, MS_F32, odd, 2);
    test_wkv_case(2, 64, 0, MS_BF16, vec, 2);
    test_wkv_case(2, 64, 1, MS_F16, vec, 1);
    test_wkv_case(4, 16, 0, MS_F16, odd, 3);
    test_wkv_case(2, 100, 0, MS_BF16, odd, 2);
    test_wkv_case(2, 128, 0, MS_F32, vec, 1);
    test_wkv_case(2, 160, 0, MS_BF16, vec, 2);
    test_wkv_case(1, 4, 0, MS_F32, odd, 2);
}

/* ---- 1d. ln2 + shift + SSE reads ------------------------------------------------------ */

static void test_sse_case(int C, int N, int Hs, int H, int B)
{
    ms_err e;
    msc_ctx *c = msc_ctx_new(0, &e);
    if (!c) fatal("context", &e);
    const int ldx = C + 4, E = Hs * N, lde = (E ? E : 1) + 2;
    const size_t FO = 7, SO = 7 + (size_t)C, SL = SO + (size_t)H * N * N + 3;   /* ffn_x before S here */
    float *x = hrand((size_t)ldx * B, -2, 3), *w = hrand(C, 0.8f, 1.2f), *bb = hrand(C, -0.1f, 0.1f);
    float *xk = hrand(C, 0, 1), *sw = hrand(E ? E : 1, 0.8f, 1.2f), *sb = hrand(E ? E : 1, -0.1f, 0.1f);
    float *sth[8], *st[8];
    for (int b = 0; b < B; b++) {
        sth[b] = hrand(SL, -1, 1);
        st[b] = dput(sth[b], sizeof(float) * SL);
    }
    float **dst = dev_ptr_table(st, B);
    msc_sse_args a;
    memset(&a, 0, sizeof a);
    a.x = dput(x, sizeof(float) * (size_t)ldx * B);
    a.ldx = ldx;
    a.ln_w = dput(w, sizeof(float) * C);
    a.ln_b = dput(bb, sizeof(float) * C);
    a.ffn_xk = dput(xk, sizeof(float) * C);
    a.states = dst;
    a.ffn_off = FO;
    a.S_off = SO;
    a.z = dput(NULL, sizeof(float) * (size_t)ldx * B);
    a.ldz = ldx;
    a.C = C;
    a.N = N;
    a.Hs = Hs;
    a.sse_w = dput(sw, sizeof(float) * (E ? E : 1));
    a.sse_b = dput(sb, sizeof(float) * (E ? E : 1));
    a.q = dput(NULL, sizeof(float) * (size_t)lde * B);
    a.e_raw = dput(NULL, sizeof(float) * (size_t)lde * B);
    a.e = dput(NULL, sizeof(float) * (size_t)lde * B);
    a.lde = lde;
    int rc = msc_sse(c, &a, B, &e) || msc_ctx_sync(c, &e);
    double *z = malloc(sizeof(double) * (size_t)C * B), *xf = malloc(sizeof(double) * (size_t)C * B);
    double *q = calloc((size_t)(E ? E : 1) * B, sizeof(double)), *er = calloc((size_t)(E ? E : 1) * B, sizeof(double));
    double *ee = calloc((size_t)(E ? E : 1) * B, sizeof(double)), *row = malloc(sizeof(double) * C);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < C; i++) row[i] = x[(size_t)b * ldx + i];
        ln_ref(row, C, w, bb, 1e-5, xf + (size_t)b * C);
        for (int i = 0; i < C; i++) {
            double f = xf[(size_t)b * C + i];
            z[(size_t)b * C + i] = f + (sth[b][FO + i] - f) * xk[i];
        }
        for (int h = 0; h < Hs; h++) {
            double ss = 0;
            for (int j = 0; j < N; j++) ss += z[(size_t)b * C + h * N + j] * z[(size_t)b * C + h * N + j];
            double nrm = sqrt(ss) < 1e-12 ? 1e-12 : sqrt(ss);
            for (int j = 0; j < N; j++) q[(size_t)b * E + h * N + j] = z[(size_t)b * C + h * N + j] / nrm;
            for (int i = 0; i < N; i++) {
                double acc = 0;
                for (int j = 0; j < N; j++)
                    acc += sth[b][SO + ((size_t)h * N + i) * N + j] * q[(size_t)b * E + h * N + j];
                er[(size_t)b * E + h * N + i] = acc;
            }
            ln_ref(er + (size_t)b * E + h * N, N, sw + h * N, sb + h * N, 64e-5, ee + (size_t)b * E + h * N);
        }
    }
    double worst = rc ? INFINITY : relmax_dev(a.z, ldx, B, C, z);
    if (!rc && E) {
        double t[3] = {relmax_dev(a.q, lde, B, E, q), relmax_dev(a.e_raw, lde, B, E, er), relmax_dev(a.e, lde, B, E, ee)};
        for (int i = 0; i < 3; i++) if (t[i] > worst) worst = t[i];
    }
    for (int b = 0; b < B && !rc; b++) {
        float *got = malloc(sizeof(float) * SL);
        dget(got, st[b], sizeof(float) * SL);
        double t = relmax(got + FO, xf + (size_t)b * C, C);
        if (t > worst) worst = t;
        for (size_t i = 0; i < SL; i++)
            if ((i < FO || i >= FO + (size_t)C) && got[i] != sth[b][i]) worst = INFINITY;   /* S is only read */
        free(got);
    }
    CHECK(worst <= KTOL, "sse   C=%-3d N=%-3d Hs=%d B=%d  z, ffn_x, q, e_raw, e: max|d|/max|ref| = %.3g%s%s", C, N,
          Hs, B, worst, rc ? " " : "", rc ? e.msg : "");
    for (int b = 0; b < B; b++) {
        free(sth[b]);
        msc_free(st[b]);
    }
    msc_free(dst);
    float *hs[] = {x, w, bb, xk, sw, sb};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) free(hs[i]);
    const void *ds[] = {a.x, a.ln_w, a.ln_b, a.ffn_xk, a.z, a.sse_w, a.sse_b, a.q, a.e_raw, a.e};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) msc_free((void *)ds[i]);
    free(z);
    free(xf);
    free(q);
    free(er);
    free(ee);
    free(row);
    msc_ctx_free(c);
}

static void test_sse(void)
{
    test_sse_case(200, 32, 0, 2, 2);
    test_sse_case(200, 32, 1, 2, 2);
    test_sse_case(200, 32, 3, 3, 2);
    test_sse_case(256, 64, 4, 4, 2);
    test_sse_case(64, 16, 4, 4, 3);
    test_sse_case(320, 160, 2, 2, 1);
    test_sse_case(384, 128, 3, 3, 1);
}

/* ---- 1e. the expert router ---------------------------------------------------------------- */

static void test_router(void)
{
    ms_err e;
    msc_ctx *c = msc_ctx_new(0, &e);
    if (!c) fatal("context", &e);
    const int C = 48, De = 16, E = 5, n = 40, B = 3, top = 2, D = C + De, per = n / E;
    float *z = hrand((size_t)C * B, -1, 1), *ev = hrand((size_t)De * B, -1, 1), *key = hrand((size_t)E * D, -1, 1);
    float *s = hrand((size_t)n * B, -2, 2);
    msc_router_args a = {dput(z, sizeof(float) * C * B), C, dput(ev, sizeof(float) * De * B), De,
                         dput(key, sizeof(float) * E * D), C, De, E, top, n,
                         dput(s, sizeof(float) * n * B), n};
    int rc = msc_router(c, &a, B, &e) || msc_ctx_sync(c, &e);
    float *got = malloc(sizeof(float) * n * B);
    if (!rc) dget(got, a.s, sizeof(float) * n * B);
    int bad = rc;
    for (int b = 0; b < B && !rc; b++) {
        float u[5];
        int sel[5] = {0};
        for (int k = 0; k < E; k++) {
            double acc = 0;
            for (int d = 0; d < C; d++) acc += (double)z[b * C + d] * key[k * D + d];
            for (int d = 0; d < De; d++) acc += (double)ev[b * De + d] * key[k * D + C + d];
            u[k] = (float)acc;
        }
        for (int p = 0; p < top; p++) {
            int best = -1;
            for (int k = 0; k < E; k++)
                if (!sel[k] && (best < 0 || u[k] > u[best])) best = k;
            sel[best] = 1;
        }
        for (int j = 0; j < n; j++) {
            float want = sel[j / per] ? s[b * n + j] : 0.0f;
            if (memcmp(&want, &got[b * n + j], 4)) bad = 1;
        }
    }
    CHECK(!bad, "router E=%d top %d B=%d: kept blocks unchanged, the others zero%s%s", E, top, B, rc ? ": " : "",
          rc ? e.msg : "");
    free(z);
    free(ev);
    free(key);
    free(s);
    free(got);
    msc_free((void *)a.z);
    msc_free((void *)a.e);
    msc_free((void *)a.router);
    msc_free(a.s);
    msc_ctx_free(c);
}

/* ---- 2. whole models against ms_step ---------------------------------------------------------- */

typedef struct {
    const char *name;
    ms_config c;
    ms_dtype dt;
    const char *file;   /* load this instead of a random model */
    int big;            /* skipped on the emulator */
} mcase;

static ms_model *make_model(const mcase *mc, ms_err *e)
{
    if (mc->file) {
        const char *dir = getenv("MS_FIXTURES");
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/fixtures", mc->file);
        return ms_model_load(path, e);
    }
    ms_model *m = ms_model_random(&mc->c, mc->dt, 1000 + (uint64_t)mc->c.n_embd, e);
    if (m && m->cfg.n_experts > 1)
        for (int i = 0; i < m->cfg.n_layer; i++)
            if (ms_layer_build_experts(m, i)) {
                ms_seterr(e, "out of memory building experts");
                ms_model_free(m);
                return NULL;
            }
    return m;
}

static double norm_rel(const float *a, const float *r, size_t n)
{
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double x = (double)a[i] - r[i];
        if (x != x) return INFINITY;
        d += x * x;
        s += (double)r[i] * r[i];
    }
    return s > 0 ? sqrt(d / s) : sqrt(d);
}

/* worst over steps: F32 -> MODEL.md ratio (<= 1), half -> norm relative (<= 1e-2) */
typedef struct { double lg, st, lg_abs, st_abs; int step_lg, step_st; } worst_t;

static void acc_worst(worst_t *w, int half, const float *gl, const float *cl, size_t nl, const float *gs,
                      const float *cs, size_t ns, int step)
{
    double a, b;
    diffstat dl = diff_arrays(gl, cl, nl, 1e-5, 1e-4), ds = diff_arrays(gs, cs, ns, 1e-5, 1e-4);
    if (half) {
        a = norm_rel(gl, cl, nl);
        b = norm_rel(gs, cs, ns);
    } else {
        a = dl.max_ratio;
        b = ds.max_ratio;
    }
    if (a > w->lg || a != a) { w->lg = a; w->step_lg = step; }
    if (b > w->st || b != b) { w->st = b; w->step_st = step; }
    if (dl.max_abs > w->lg_abs) w->lg_abs = dl.max_abs;
    if (ds.max_abs > w->st_abs) w->st_abs = ds.max_abs;
}

static void test_model_case(const mcase *mc)
{
    ms_err e;
    ms_model *m = make_model(mc, &e);
    if (!m) {
        CHECK(0, "model %s: %s", mc->name, e.msg);
        return;
    }
    const ms_config *c = &m->cfg;
    const int half = c->wtype != MS_F32;
    const size_t SL = ms_state_len(c), V = (size_t)c->vocab;
    ms_cuda_model *dm = ms_cuda_model_upload(m, &e);
    ms_cuda_ws *ws = dm ? ms_cuda_ws_new(dm, 2, &e) : NULL;
    float *dst = ws ? ms_cuda_state_alloc(dm, 2, &e) : NULL;
    if (!dst) {
        CHECK(0, "model %s: %s", mc->name, e.msg);
        goto out0;
    }
    {
        ms_ws *cw = ms_ws_new(m);
        float *cs = calloc(SL, sizeof(float)), *cs2 = malloc(sizeof(float) * SL), *gs = malloc(sizeof(float) * SL);
        float *cl = malloc(sizeof(float) * V), *gl = malloc(sizeof(float) * V), *gl1 = malloc(sizeof(float) * V);
        float *ds1 = dst + SL;
        worst_t carried = {0}, one = {0};
        int T = mc->big ? (g_tokens < 64 ? g_tokens : 64) : g_tokens, rc = 0;
        uint64_t tr = 77;
        for (int t = 0; t < T && !rc; t++) {
            tr = tr * 6364136223846793005ULL + 1442695040888963407ULL;
            int tok = (int)((tr >> 33) % (uint64_t)c->vocab);
            /* one step from the CPU's state */
            rc |= ms_cuda_state_upload(ws, ds1, cs, SL, &e);
            rc |= ms_cuda_step(ws, &ds1, 1, &tok, 0, gl1, &e);
            rc |= ms_step(m, cw, cs, cs, tok, cl, NULL, &e);
            rc |= ms_cuda_step(ws, &dst, 1, &tok, 0, gl, &e);
            if (rc) break;
            rc |= ms_cuda_state_download(ws, gs, dst, SL, &e);
            acc_worst(&carried, half, gl, cl, V, gs, cs, SL, t);
            rc |= ms_cuda_state_download(ws, cs2, ds1, SL, &e);
            acc_worst(&one, half, gl1, cl, V, cs2, cs, SL, t);
        }
        const double lim = half ? 1e-2 : 1.0;
        const char *crit = half ? "||d||/||cpu||" : "max |d|/(1e-5+1e-4|cpu|)";
        if (rc) {
            CHECK(0, "model %-26s %s", mc->name, e.msg);
        } else {
            CHECK(carried.lg <= lim && carried.st <= lim,
                  "model %-26s %-4s %3d tokens carried: logits %s = %.3g (step %d, max|d| %.2g), state %.3g (step %d, "
                  "max|d| %.2g)",
                  mc->name, ms_dtype_name(c->wtype), T, crit, carried.lg, carried.step_lg, carried.lg_abs, carried.st,
                  carried.step_st, carried.st_abs);
            CHECK(one.lg <= lim && one.st <= lim,
                  "model %-26s %-4s %3d tokens, each one step from the CPU state: logits %.3g, state %.3g",
                  mc->name, ms_dtype_name(c->wtype), T, one.lg, one.st);
        }
        free(cs);
        free(cs2);
        free(gs);
        free(cl);
        free(gl);
        free(gl1);
        ms_ws_free(cw);
    }
out0:
    ms_cuda_state_free(dst);
    ms_cuda_ws_free(ws);
    ms_cuda_model_free(dm);
    ms_model_free(m);
}

static ms_config cfg(int L, int C, int H, int N, int n, int Hs, int dw, int da, int dv, int dg, int vocab, int E,
                     int top)
{
    ms_config c;
    memset(&c, 0, sizeof c);
    c.n_layer = L;
    c.n_embd = C;
    c.n_head = H;
    c.head_size = N;
    c.n_ptok = n;
    c.sse_heads = Hs;
    c.d_w = dw;
    c.d_a = da;
    c.d_v = dv;
    c.d_g = dg;
    c.vocab = vocab;
    c.n_experts = E;
    c.top_k = top;
    return c;
}

/* ---- 3. graph / direct / PDL, snapshot / restore / fork --------------------------------------- */

static int run_tokens(ms_cuda_ws *ws, float *st, int T, uint64_t seed, const ms_config *c, float *logits, ms_err *e)
{
    for (int t = 0; t < T; t++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        int tok = (int)((seed >> 33) % (uint64_t)c->vocab);
        if (ms_cuda_step(ws, &st, 1, &tok, 0, logits, e)) return -1;
    }
    return 0;
}

static void test_exact(void)
{
    ms_err e;
    mcase mc = {"B-like", cfg(2, 128, 2, 64, 300, 2, 16, 12, 8, 20, 256, 1, 1), MS_BF16, NULL, 0};
    ms_model *m = make_model(&mc, &e);
    ms_cuda_model *dm = m ? ms_cuda_model_upload(m, &e) : NULL;
    ms_cuda_ws *ws = dm ? ms_cuda_ws_new(dm, 2, &e) : NULL;
    float *d = ws ? ms_cuda_state_alloc(dm, 5, &e) : NULL;
    if (!d) {
        CHECK(0, "exactness setup: %s", e.msg);
        goto out;
    }
    {
        const ms_config *c = &m->cfg;
        const size_t SL = ms_state_len(c), V = (size_t)c->vocab;
        float *s0 = d, *s1 = d + SL, *s2 = d + 2 * SL, *s3 = d + 3 * SL, *s4 = d + 4 * SL;
        float *l[5], *h[5];
        for (int i = 0; i < 5; i++) {
            l[i] = malloc(sizeof(float) * V);
            h[i] = malloc(sizeof(float) * SL);
        }
        int rc = 0;
        /* graph / direct, with and without PDL, from the same state */
        rc |= run_tokens(ws, s0, 5, 1, c, l[0], &e);
        for (int i = 1; i < 4; i++) rc |= ms_cuda_state_copy(ws, d + i * SL, s0, SL, &e);
        static const int gr[4] = {1, 0, 1, 0}, pd[4] = {0, 0, 1, 1};
        for (int i = 0; i < 4; i++) {
            ms_cuda_ws_set(ws, MS_CUDA_OPT_GRAPH, gr[i]);
            ms_cuda_ws_set(ws, MS_CUDA_OPT_PDL, pd[i]);
            int r1 = run_tokens(ws, d + i * SL, 12, 2, c, l[i], &e);
            if (r1) printf("  (graph %d, pdl %d: %s)\n", gr[i], pd[i], e.msg);
            rc |= r1;
        }
        ms_cuda_ws_set(ws, MS_CUDA_OPT_GRAPH, 1);
        ms_cuda_ws_set(ws, MS_CUDA_OPT_PDL, 0);
        for (int i = 0; i < 4 && !rc; i++) rc |= ms_cuda_state_download(ws, h[i], d + i * SL, SL, &e);
        CHECK(!rc && !memcmp(l[0], l[1], V * 4) && !memcmp(h[0], h[1], SL * 4),
              "graph replay and direct launches give the same bits (12 tokens)%s%s", rc ? ": " : "", rc ? e.msg : "");
        CHECK(!rc && !memcmp(l[0], l[2], V * 4) && !memcmp(h[0], h[2], SL * 4) && !memcmp(l[0], l[3], V * 4) &&
                  !memcmp(h[0], h[3], SL * 4),
              "programmatic dependent launch (graph and direct) gives the same bits (12 tokens)%s%s", rc ? ": " : "",
              rc ? e.msg : "");
        /* a step without the head, then one with it: the logits are this step's (graphs differ by head) */
        rc = ms_cuda_state_copy(ws, s4, s0, SL, &e);
        int t1 = 11, t2 = 42;
        rc |= ms_cuda_step(ws, &s0, 1, &t1, 0, NULL, &e) | ms_cuda_step(ws, &s0, 1, &t2, 0, l[0], &e);
        rc |= ms_cuda_step(ws, &s4, 1, &t1, 0, l[4], &e) | ms_cuda_step(ws, &s4, 1, &t2, 0, l[1], &e);
        CHECK(!rc && !memcmp(l[0], l[1], V * 4), "logits after a step without the head are the new step's");
        /* the profile runs the same step (direct launches): the same bits, and one launch of each kind per layer */
        {
            double kms[MS_CUDA_PROF_N], tot;
            int kn[MS_CUDA_PROF_N], t3 = 7, nl = 0;
            rc = ms_cuda_state_copy(ws, s4, s0, SL, &e);
            rc |= ms_cuda_step(ws, &s0, 1, &t3, 0, l[0], &e) | ms_cuda_state_download(ws, h[0], s0, SL, &e);
            tot = ms_cuda_profile_step(ws, &s4, 1, &t3, MS_CUDA_LOGITS, 1, kms, kn, &e);
            rc |= tot < 0 || ms_cuda_logits(ws, 0, 1, l[1], &e) || ms_cuda_state_download(ws, h[1], s4, SL, &e);
            for (int k = 0; k < MS_CUDA_PROF_N; k++) nl += kn[k];
            CHECK(!rc && !memcmp(l[0], l[1], V * 4) && !memcmp(h[0], h[1], SL * 4) && kn[MS_CUDA_PROF_WKV] == c->n_layer &&
                      kn[MS_CUDA_PROF_HEAD] == 1 && nl == 2 + 7 * c->n_layer + 1,
                  "profile of a step: the same bits as a step, %d launches (%d wkv), %.3f ms%s%s", nl,
                  kn[MS_CUDA_PROF_WKV], tot, rc ? ": " : "", rc ? e.msg : "");
        }
        /* snapshot, run, restore, run again */
        rc = ms_cuda_state_copy(ws, s3, s0, SL, &e);
        rc |= run_tokens(ws, s0, 9, 3, c, l[0], &e);
        rc |= ms_cuda_state_download(ws, h[0], s0, SL, &e);
        rc |= ms_cuda_state_copy(ws, s0, s3, SL, &e);
        rc |= run_tokens(ws, s0, 9, 3, c, l[1], &e);
        rc |= ms_cuda_state_download(ws, h[1], s0, SL, &e);
        CHECK(!rc && !memcmp(l[0], l[1], V * 4) && !memcmp(h[0], h[1], SL * 4),
              "snapshot, 9 tokens, restore, the same 9 tokens: logits and state bit-exact%s%s", rc ? ": " : "",
              rc ? e.msg : "");
        /* fork: two copies fed the same tokens stay identical; the snapshot is untouched */
        rc = ms_cuda_state_copy(ws, s1, s3, SL, &e);
        rc |= run_tokens(ws, s1, 4, 4, c, l[0], &e);
        rc |= ms_cuda_state_copy(ws, s2, s3, SL, &e);
        rc |= run_tokens(ws, s2, 4, 4, c, l[1], &e);
        rc |= ms_cuda_state_download(ws, h[0], s1, SL, &e) | ms_cuda_state_download(ws, h[1], s2, SL, &e);
        CHECK(!rc && !memcmp(h[0], h[1], SL * 4) && !memcmp(l[0], l[1], V * 4), "fork: two device copies stay bit-identical");
        /* upload/download round trip and zero */
        float *r = malloc(sizeof(float) * SL);
        for (size_t i = 0; i < SL; i++) h[2][i] = ur(-1, 1);
        rc = ms_cuda_state_upload(ws, s3, h[2], SL, &e) | ms_cuda_state_download(ws, r, s3, SL, &e);
        int same = !rc && !memcmp(r, h[2], SL * 4);
        rc = ms_cuda_state_zero(ws, s3, SL, &e) | ms_cuda_state_download(ws, r, s3, SL, &e);
        int zero = !rc;
        for (size_t i = 0; i < SL && zero; i++) zero = r[i] == 0.0f;
        CHECK(same && zero, "state upload/download round trip bit-exact; zero clears");
        free(r);
        /* errors */
        int tok = c->vocab, toks[3] = {1, 2, 3};
        float *dup[3] = {s0, s1, s0};
        int e1 = ms_cuda_step(ws, &s0, 1, &tok, 0, NULL, &e);
        int ok1 = e1 == -1 && strstr(e.msg, "out of range");
        int e2 = ms_cuda_step(ws, dup, 3, toks, 0, NULL, &e);
        int ok2 = e2 == -1 && strstr(e.msg, "batch");
        float *dup2[2] = {s0, s0};
        int e3 = ms_cuda_step(ws, dup2, 2, toks, 0, NULL, &e);
        int ok3 = e3 == -1 && strstr(e.msg, "twice");
        CHECK(ok1 && ok2 && ok3, "errors: token %d out of range, batch 3 > 2, a state twice in a batch", tok);
        for (int i = 0; i < 5; i++) {
            free(l[i]);
            free(h[i]);
        }
    }
out:
    ms_cuda_state_free(d);
    ms_cuda_ws_free(ws);
    ms_cuda_model_free(dm);
    ms_model_free(m);
}

/* ---- 4. batches, trace ------------------------------------------------------------------------ */

static void test_batch(const mcase *mc, int B, int gemm, int steps)
{
    ms_err e;
    ms_model *m = make_model(mc, &e);
    ms_cuda_model *dm = m ? ms_cuda_model_upload(m, &e) : NULL;
    ms_cuda_ws *ws = dm ? ms_cuda_ws_new(dm, B, &e) : NULL;
    float *d = ws ? ms_cuda_state_alloc(dm, 2 * B, &e) : NULL;
    if (!d) {
        CHECK(0, "batch %s B=%d: %s", mc->name, B, e.msg);
        goto out;
    }
    {
        const ms_config *c = &m->cfg;
        const size_t SL = ms_state_len(c), V = (size_t)c->vocab;
        const int half = c->wtype != MS_F32;
        ms_cuda_ws_set(ws, MS_CUDA_OPT_GEMM, gemm);
        int path = ms_cuda_ws_path(ws, B);
        float **bs = malloc(sizeof(float *) * B), **os = malloc(sizeof(float *) * B);
        int *toks = malloc(sizeof(int) * B);
        float *h = malloc(sizeof(float) * SL), *lb = malloc(sizeof(float) * V * B), *l1 = malloc(sizeof(float) * V);
        float *g1 = malloc(sizeof(float) * SL), *gb = malloc(sizeof(float) * SL);
        int rc = 0;
        for (int b = 0; b < B; b++) {   /* different random states, the same in both sets */
            for (size_t i = 0; i < SL; i++) h[i] = ur(-0.5f, 0.5f);
            bs[b] = d + (size_t)b * SL;
            os[b] = d + (size_t)(B + b) * SL;
            rc |= ms_cuda_state_upload(ws, bs[b], h, SL, &e) | ms_cuda_state_upload(ws, os[b], h, SL, &e);
        }
        worst_t w = {0};
        int bitexact = 1;
        for (int s = 0; s < steps && !rc; s++) {
            for (int b = 0; b < B; b++) toks[b] = (int)((s * 131 + b * 17 + 3) % c->vocab);
            rc |= ms_cuda_step(ws, bs, B, toks, 0, lb, &e);
            for (int b = 0; b < B && !rc; b++) {
                ms_cuda_ws_set(ws, MS_CUDA_OPT_GEMM, 1);   /* the reference: one at a time, own kernels */
                rc |= ms_cuda_step(ws, &os[b], 1, &toks[b], 0, l1, &e);
                ms_cuda_ws_set(ws, MS_CUDA_OPT_GEMM, gemm);
                rc |= ms_cuda_state_download(ws, g1, os[b], SL, &e) | ms_cuda_state_download(ws, gb, bs[b], SL, &e);
                if (rc) break;
                acc_worst(&w, half && path == 2, lb + (size_t)b * V, l1, V, gb, g1, SL, s);
                bitexact &= !memcmp(lb + (size_t)b * V, l1, V * 4) && !memcmp(gb, g1, SL * 4);
            }
        }
        const double lim = half && path == 2 ? 1e-2 : 1.0;
        if (rc) CHECK(0, "batch %-22s B=%-2d: %s", mc->name, B, e.msg);
        else
            CHECK(w.lg <= lim && w.st <= lim,
                  "batch %-22s %-4s B=%-2d %s, %d steps vs one at a time: logits %.3g, state %.3g (%s)%s", mc->name,
                  ms_dtype_name(c->wtype), B, path == 2 ? "cublas" : "own   ", steps, w.lg, w.st,
                  half && path == 2 ? "||d||/||ref||" : "MODEL.md ratio", bitexact ? ", bit-identical" : "");
        free(bs);
        free(os);
        free(toks);
        free(h);
        free(lb);
        free(l1);
        free(g1);
        free(gb);
    }
out:
    ms_cuda_state_free(d);
    ms_cuda_ws_free(ws);
    ms_cuda_model_free(dm);
    ms_model_free(m);
}

/* the CPU observer's vectors for one layer */
typedef struct {
    int layer, A, C, E, n;
    float *v[14];
} tr_cap;

static void tr_fn(void *ctx, const ms_trace *t)
{
    tr_cap *k = ctx;
    if (t->layer != k->layer) return;
    const float *src[14] = {t->r, t->k, t->v, t->w, t->a, t->kk, t->g, t->y, t->z, t->q, t->e_raw, t->e, t->s, t->x_out};
    int len[14] = {k->A, k->A, k->A, k->A, k->A, k->A, k->A, k->A, k->C, k->E, k->E, k->E, k->n, k->C};
    for (int i = 0; i < 14; i++)
        if (src[i] && len[i]) memcpy(k->v[i], src[i], sizeof(float) * (size_t)len[i]);
}

static void test_trace(const mcase *mc)
{
    ms_err e;
    ms_model *m = make_model(mc, &e);
    ms_cuda_model *dm = m ? ms_cuda_model_upload(m, &e) : NULL;
    ms_cuda_ws *ws = dm ? ms_cuda_ws_new(dm, 1, &e) : NULL;
    float *d = ws ? ms_cuda_state_alloc(dm, 1, &e) : NULL;
    if (!d) {
        CHECK(0, "trace %s: %s", mc->name, e.msg);
        goto out;
    }
    {
        const ms_config *c = &m->cfg;
        const int L = c->n_layer;
        tr_cap cap = {L - 1, c->dim_att, c->n_embd, c->sse_heads * c->head_size, c->n_ptok, {0}};
        float *gv[14];
        for (int i = 0; i < 14; i++) {
            cap.v[i] = calloc((size_t)c->n_ptok + c->dim_att + c->n_embd + 1, sizeof(float));
            gv[i] = calloc((size_t)c->n_ptok + c->dim_att + c->n_embd + 1, sizeof(float));
        }
        float *cs = calloc(ms_state_len(c), sizeof(float));
        ms_ws *cw = ms_ws_new(m);
        ms_observer ob = {tr_fn, &cap};
        int tok = 5 % c->vocab, rc = ms_step(m, cw, cs, cs, tok, NULL, &ob, &e);
        rc |= ms_cuda_step(ws, &d, 1, &tok, 0, NULL, &e);
        ms_cuda_trace dstv = {gv[0], gv[1], gv[2], gv[3], gv[4], gv[5], gv[6], gv[7],
                              gv[8], gv[9], gv[10], gv[11], gv[12], gv[13]};
        rc |= ms_cuda_trace_fetch(ws, L - 1, 0, &dstv, &e);
        const char *nm[14] = {"r", "k", "v", "w", "a", "kk", "g", "y", "z", "q", "e_raw", "e", "s", "x_out"};
        int len[14] = {cap.A, cap.A, cap.A, cap.A, cap.A, cap.A, cap.A, cap.A, cap.C, cap.E, cap.E, cap.E, cap.n, cap.C};
        double worst = rc ? INFINITY : 0;
        const char *wn = rc ? e.msg : "";
        for (int i = 0; i < 14 && !rc; i++) {
            if (!len[i]) continue;
            diffstat ds = diff_arrays(gv[i], cap.v[i], (size_t)len[i], 1e-5, 1e-4);
            if (ds.max_ratio > worst) { worst = ds.max_ratio; wn = nm[i]; }
        }
        CHECK(worst <= 1, "trace %-22s layer %d: 14 intermediates vs the CPU observer, worst ratio %.3g (%s)",
              mc->name, L - 1, worst, wn);
        for (int i = 0; i < 14; i++) {
            free(cap.v[i]);
            free(gv[i]);
        }
        free(cs);
        ms_ws_free(cw);
    }
out:
    ms_cuda_state_free(d);
    ms_cuda_ws_free(ws);
    ms_cuda_model_free(dm);
    ms_model_free(m);
}

int main(int argc, char **argv)
{
    ms_err e;
    int quick = 0, kernels_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc) g_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--kernels")) kernels_only = 1;
    }
    if (!ms_cuda_available(&e)) {
        printf("test_cuda: skipped: no CUDA device (%s)\n", e.msg);
        return 0;
    }
    char info[512];
    if (ms_cuda_device_info(info, sizeof info, &e)) snprintf(info, sizeof info, "? (%.400s)", e.msg);
    g_emu = strstr(info, "msc_emu") != NULL;
    if ((g_emu || quick) && g_tokens == 256) g_tokens = g_emu ? 12 : 24;
    printf("test_cuda: device %s; %d tokens per model\n", info, g_tokens);

    printf("-- kernels against double-precision references on random inputs\n");
    test_gemv();
    test_norms();
    test_wkv();
    test_sse();
    test_router();
    if (kernels_only) return check_done("test_cuda");

    printf("-- whole models against ms_step() on the CPU\n");
    const mcase models[] = {
        {"A: N32 A>C Hs2 odd LoRA", cfg(2, 80, 3, 32, 200, 2, 12, 10, 8, 14, 97, 1, 1), MS_F32, NULL, 0},
        {"B: N64 Hs2", cfg(2, 128, 2, 64, 300, 2, 16, 12, 8, 20, 256, 1, 1), MS_F32, NULL, 0},
        {"C: RWKV-7 (Hs0) 3 layers", cfg(3, 128, 2, 64, 300, 0, 16, 12, 8, 20, 256, 1, 1), MS_F32, NULL, 0},
        {"D: N16 Hs4 n=4C+1", cfg(3, 64, 4, 16, 257, 4, 6, 5, 4, 7, 256, 1, 1), MS_F32, NULL, 0},
        {"E: experts 4, top 1", cfg(2, 64, 2, 32, 256, 2, 8, 6, 4, 10, 256, 4, 1), MS_F32, NULL, 0},
        {"E2: experts 5, top 2, Hs1", cfg(2, 64, 2, 32, 300, 1, 8, 6, 4, 10, 256, 5, 2), MS_F32, NULL, 0},
        {"N128 Hs2", cfg(2, 256, 2, 128, 512, 2, 16, 16, 16, 32, 256, 1, 1), MS_F32, NULL, 0},
        {"N160 Hs1 (generic rows)", cfg(1, 320, 2, 160, 400, 1, 16, 16, 16, 32, 256, 1, 1), MS_F32, NULL, 0},
        {"rwkv.cpp tiny FP32", {0}, MS_F32, "tiny-rwkv-7v0-834K-FP32.bin", 0},
        {"rwkv.cpp tiny FP16", {0}, MS_F16, "tiny-rwkv-7v0-834K-FP16.bin", 0},
        {"B16: N64 Hs2", cfg(2, 128, 2, 64, 300, 2, 16, 12, 8, 20, 256, 1, 1), MS_BF16, NULL, 0},
        {"F16: N64 Hs2", cfg(2, 128, 2, 64, 300, 2, 16, 12, 8, 20, 256, 1, 1), MS_F16, NULL, 0},
        {"0.1B shape, 2 layers, Hs4", cfg(2, 768, 12, 64, 3072, 4, 64, 64, 32, 128, 65536, 1, 1), MS_BF16, NULL, 1},
        {"0.1B shape, 2 layers, Hs4", cfg(2, 768, 12, 64, 3072, 4, 64, 64, 32, 128, 65536, 1, 1), MS_F32, NULL, 1},
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        if (g_emu && models[i].big) continue;
        test_model_case(&models[i]);
    }

    printf("-- device copies, graphs, batches, trace\n");
    test_exact();
    const mcase bB = {"B: N64 Hs2", cfg(2, 128, 2, 64, 300, 2, 16, 12, 8, 20, 256, 1, 1), MS_F32, NULL, 0};
    const mcase bB16 = {"B16: N64 Hs2", cfg(2, 128, 2, 64, 300, 2, 16, 12, 8, 20, 256, 1, 1), MS_BF16, NULL, 0};
    const mcase bE = {"E: experts 4, top 1", cfg(2, 64, 2, 32, 256, 2, 8, 6, 4, 10, 256, 4, 1), MS_F32, NULL, 0};
    const int steps = g_emu ? 3 : 8;
    test_batch(&bB, 5, 0, steps);
    test_batch(&bB16, 13, 1, steps);
    test_batch(&bE, 3, 0, steps);
    if (!g_emu) {
        test_batch(&bB, 64, 0, steps);
        test_batch(&bB16, 64, 0, steps);
        test_batch(&bB16, 64, 1, steps);
    } else {
        test_batch(&bB16, 12, 2, steps);
    }
    test_trace(&bB);
    test_trace(&bE);
    const mcase tD = {"D: N16 Hs4 n=4C+1", cfg(3, 64, 4, 16, 257, 4, 6, 5, 4, 7, 256, 1, 1), MS_F32, NULL, 0};
    test_trace(&tD);
    return check_done("test_cuda");
}
#endif
