/* bench_cuda.c: the CUDA backend's speed (BENCH.md, GPU section).  Not a
 * test: prints tables and exits 0; without a device it says why and exits 0.
 *
 * - The device and its copy bandwidth, measured in this run: a 1 GiB
 *   device-to-device copy, bytes read + written, median of 10 (the limit the
 *   decode figures are a fraction of).
 * - GEMV alone, BF16 (and F32) matrices of the 1.5B shape's products, our
 *   kernel against cuBLAS GemmEx at batch 1, over enough copies of the matrix
 *   to miss L2: GB/s of weights and the fraction of the copy bandwidth.
 * - Decode at batch 1, random models of the official 0.1B (F32, BF16) and
 *   1.5B (BF16) shapes: graph replay, with and without programmatic
 *   dependent launch; 8 warm-up tokens, RUNS runs of TOKENS tokens timed with
 *   CUDA events (logits computed every token, not copied), median/min/max
 *   tok/s, bytes read per token (ms_model_bytes_per_token), achieved GB/s and
 *   its fraction of the copy bandwidth (goal for 1.5B: >= 70%).
 * - Sweep throughput: B = 1, 8 and 64 states stepped together (auto path:
 *   cuBLAS from B = 9 for BF16), state-tokens/s and the ratio to B = 1
 *   (goal at 64: >= 20x).
 *
 *   bench_cuda [--quick] [--runs R] [--tokens T] [--no-1.5b]
 */
#include "ms.h"
#include "cuda/ms_cuda.h"
#include "cuda/msc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MS_NO_CUDA
int main(void)
{
    printf("bench_cuda: skipped: no CUDA device (built without CUDA: nvcc was not found at build time)\n");
    return 0;
}
#else

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double g_copy_gbs;

static ms_config shape(int L, int C, int H, int dw, int da, int dv, int dg)
{
    ms_config c;
    memset(&c, 0, sizeof c);
    c.n_layer = L;
    c.n_embd = C;
    c.n_head = H;
    c.head_size = 64;
    c.vocab = 65536;
    c.n_ptok = 4 * C;
    c.sse_heads = 0;
    c.d_w = dw;
    c.d_a = da;
    c.d_v = dv;
    c.d_g = dg;
    c.n_experts = 1;
    c.top_k = 1;
    return c;
}

/* tok/s of B states at once: median/min/max over runs of `tokens` steps */
static int time_decode(ms_cuda_ws *ws, float *states, size_t SL, int B, int vocab, int runs, int tokens, double *med,
                       double *lo, double *hi, ms_err *e)
{
    float **sp = malloc(sizeof(float *) * (size_t)B);
    int *tk = malloc(sizeof(int) * (size_t)B * tokens);
    double *tps = malloc(sizeof(double) * (size_t)runs);
    int rc = 0;
    for (int b = 0; b < B; b++) sp[b] = states + (size_t)b * SL;
    for (size_t i = 0; i < (size_t)B * tokens; i++) tk[i] = (int)((i * 2654435761u + 17) % (unsigned)vocab);
    if (ms_cuda_time_steps(ws, sp, B, tk, 8, MS_CUDA_LOGITS, e) < 0) rc = -1;   /* warm-up, graph capture */
    for (int r = 0; r < runs && !rc; r++) {
        double ms = ms_cuda_time_steps(ws, sp, B, tk, tokens, MS_CUDA_LOGITS, e);
        if (ms <= 0) rc = -1;
        else tps[r] = tokens * 1000.0 / ms;
    }
    if (!rc) {
        qsort(tps, (size_t)runs, sizeof(double), cmpd);
        *med = tps[runs / 2];
        *lo = tps[0];
        *hi = tps[runs - 1];
    }
    free(sp);
    free(tk);
    free(tps);
    return rc;
}

static void bench_model(const char *label, const ms_config *c, ms_dtype dt, int runs, int tokens, int sweep)
{
    ms_err e;
    printf("%s, %s: building the random model on the CPU...\n", label, ms_dtype_name(dt));
    fflush(stdout);
    ms_model *m = ms_model_random(c, dt, 42, &e);
    if (!m) {
        printf("  %s: %s\n", label, e.msg);
        return;
    }
    const size_t bpt = ms_model_bytes_per_token(m), SL = ms_state_len(c);
    const int Bmax = sweep ? 64 : 1;
    ms_cuda_model *dm = ms_cuda_model_upload(m, &e);
    ms_cuda_ws *ws = dm ? ms_cuda_ws_new(dm, Bmax, &e) : NULL;
    float *st = ws ? ms_cuda_state_alloc(dm, Bmax, &e) : NULL;
    ms_model_free(m);
    if (!st) {
        printf("  %s: %s\n", label, e.msg);
        goto out;
    }
    {
        /* never time on zeros: start from a non-zero state */
        float *h = malloc(sizeof(float) * SL);
        for (size_t i = 0; i < SL; i++) h[i] = (float)((i * 7919 % 2001) - 1000) * 1e-4f;
        for (int b = 0; b < Bmax; b++) ms_cuda_state_upload(ws, st + (size_t)b * SL, h, SL, &e);
        free(h);
        for (int pdl = 0; pdl < 2; pdl++) {
            double med, lo, hi;
            ms_cuda_ws_set(ws, MS_CUDA_OPT_PDL, pdl);
            if (time_decode(ws, st, SL, 1, c->vocab, runs, tokens, &med, &lo, &hi, &e)) {
                printf("  decode B=1 pdl=%d: %s\n", pdl, e.msg);
                continue;
            }
            double gbs = med * bpt / 1e9;
            printf("%-26s %-4s B=1 graph%s %9.1f %9.1f %9.1f %9.1f %9.1f %7.1f%%\n", label, ms_dtype_name(dt),
                   pdl ? "+pdl" : "    ", med, lo, hi, bpt / 1e6, gbs, 100.0 * gbs / g_copy_gbs);
            fflush(stdout);
        }
        ms_cuda_ws_set(ws, MS_CUDA_OPT_PDL, 0);
        {   /* where the time of one B=1 token goes (direct launches, an event after each) */
            double kms[MS_CUDA_PROF_N];
            int kn[MS_CUDA_PROF_N], tok = 1;
            float *one[1] = {st};
            double tot = ms_cuda_profile_step(ws, one, 1, &tok, MS_CUDA_LOGITS, 10, kms, kn, &e);
            if (tot < 0) printf("  profile: %s\n", e.msg);
            else {
                printf("%-26s %-4s B=1 direct launches, profile of one token: %.3f ms\n", label, ms_dtype_name(dt), tot);
                for (int k = 0; k < MS_CUDA_PROF_N; k++)
                    if (kn[k]) printf("    %-30s %3d launches %8.3f ms %5.1f%%  %6.2f us each\n", ms_cuda_prof_name(k), kn[k],
                                      kms[k], 100 * kms[k] / tot, 1e3 * kms[k] / kn[k]);
            }
            fflush(stdout);
        }
        if (sweep) {
            static const int Bs[3] = {1, 8, 64};
            double base = 0;
            for (int i = 0; i < 3; i++) {
                double med, lo, hi;
                int sruns = runs < 3 ? runs : 3, stoks = tokens < 16 ? tokens : 16;
                if (time_decode(ws, st, SL, Bs[i], c->vocab, sruns, stoks, &med, &lo, &hi, &e)) {
                    printf("  sweep B=%d: %s\n", Bs[i], e.msg);
                    continue;
                }
                double thr = med * Bs[i];
                if (Bs[i] == 1) base = thr;
                printf("%-26s %-4s sweep B=%-3d (%s) %10.1f state-tokens/s  x%.1f of B=1\n", label, ms_dtype_name(dt),
                       Bs[i], ms_cuda_ws_path(ws, Bs[i]) == 2 ? "cublas" : "own", thr, base > 0 ? thr / base : 0);
                fflush(stdout);
            }
        }
    }
out:
    ms_cuda_state_free(st);
    ms_cuda_ws_free(ws);
    ms_cuda_model_free(dm);
}

int main(int argc, char **argv)
{
    ms_err e;
    int quick = 0, runs = 5, tokens = 32, big = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-1.5b")) big = 0;
    }
    if (runs < 3) runs = 3;
    if (tokens < 32) tokens = 32;
    if (!ms_cuda_available(&e)) {
        printf("bench_cuda: skipped: no CUDA device (%s)\n", e.msg);
        return 0;
    }
    char info[512];
    if (ms_cuda_device_info(info, sizeof info, &e)) snprintf(info, sizeof info, "? (%.400s)", e.msg);
    printf("bench_cuda: %s\n", info);
    double bw = ms_cuda_copy_bandwidth((size_t)1 << 30, quick ? 3 : 10, &e);
    if (bw <= 0) {
        printf("copy bandwidth: %s\n", e.msg);
        return 0;
    }
    g_copy_gbs = bw / 1e9;
    printf("copy bandwidth: %.1f GB/s (1 GiB device-to-device, read + written, median)\n\n", g_copy_gbs);

    /* GEMV alone: the 1.5B shape's matrices (C = 2048) and its head */
    printf("GEMV alone, batch 1, weights rotated through > 256 MB (out of L2); cuBLAS = GemmEx n=1, its\n"
           "input converted to the weight dtype first (the batched path); GB/s of weights read\n");
    printf("%-24s %-4s %5s %10s %10s %8s\n", "gemv (out x in)", "type", "B", "own GB/s", "cublas GB/s", "own/copy");
    struct { const char *n; int out, in; } gm[] = {
        {"C x C (Wr, Wo)", 2048, 2048}, {"4C x C (Kz)", 8192, 2048}, {"C x 4C (V)", 2048, 8192},
        {"vocab x C (head)", 65536, 2048}, {"0.1B: C x C", 768, 768}, {"0.1B: 4C x C", 3072, 768},
    };
    static const int gdt[2] = {MS_BF16, MS_F32};
    for (int d = 0; d < (quick ? 1 : 2); d++)
        for (size_t i = 0; i < sizeof gm / sizeof gm[0]; i++) {
            size_t bytes = (size_t)gm[i].out * gm[i].in * (gdt[d] == MS_F32 ? 4 : 2);
            int copies = (int)(((size_t)256 << 20) / bytes) + 1;   /* > 256 MB in rotation: out of L2 */
            if (copies > 64) copies = 64;
            double t1 = msc_time_gemv(gdt[d], gm[i].out, gm[i].in, 1, MSC_PATH_OWN, copies, 20, &e);
            double t2 = msc_time_gemv(gdt[d], gm[i].out, gm[i].in, 1, MSC_PATH_CUBLAS, copies, 20, &e);
            double g1 = t1 > 0 ? bytes / (t1 * 1e6) : 0, g2 = t2 > 0 ? bytes / (t2 * 1e6) : 0;
            printf("%-24s %-4s %5d %10.1f %10.1f %7.1f%%\n", gm[i].n, ms_dtype_name((ms_dtype)gdt[d]), 1, g1, g2,
                   100 * g1 / g_copy_gbs);
            fflush(stdout);
        }
    printf("\ndecode on %s: median/min/max tok/s of %d runs x %d tokens, logits every token; GB/s = tok/s x\n"
           "MB/token; \"of copy\" = that over the copy bandwidth above (goal for 1.5B: >= 70%%)\n", info, runs, tokens);
    printf("%-26s %-4s %-10s %9s %9s %9s %9s %9s %8s\n", "decode", "type", "", "tok/s", "min", "max", "MB/token",
           "GB/s", "of copy");
    ms_config c01 = shape(12, 768, 12, 64, 64, 32, 128);
    ms_config c15 = shape(24, 2048, 32, 96, 96, 64, 256);
    bench_model("random 0.1B shape (Hs 0)", &c01, MS_BF16, runs, tokens, 1);
    if (!quick) bench_model("random 0.1B shape (Hs 0)", &c01, MS_F32, runs, tokens, 0);
    if (big) bench_model("random 1.5B shape (Hs 0)", &c15, MS_BF16, runs, tokens, 1);
    if (!quick) {
        c01.sse_heads = 4;
        bench_model("random 0.1B shape, Hs 4", &c01, MS_BF16, runs, tokens, 0);
    }
    printf("\nbench_cuda: figures on %s\n", info);
    return 0;
}
#endif
