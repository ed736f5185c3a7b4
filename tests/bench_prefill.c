/* bench_prefill.c: prefill and batched-step speed (ms_step_seq, ms_step_batch)
 * against ms_step token by token, and against the compute roofline of this
 * machine.  Not a test: prints a table and exits 0.
 *
 * Prefill: TOKENS tokens (default 512) of one sequence, logits after the last
 * only, on random models of the official RWKV-7 0.1B shape.  Roofline: the
 * GFLOP/s of OpenBLAS's sgemm on a 2048^3 product with the same threads,
 * measured in this run (when libopenblas.so.0 can be opened), against
 * 2 x the matrix parameters a token multiplies (the head once per prefill).
 * Batch: B states by one token each, logits for all, against B = 1.
 * Medians of RUNS runs (default 3).
 *
 *   bench_prefill [--threads N] [--runs R] [--tokens T] [--quick]
 */
#include "bench.h"
#include "kernels.h"
#include "ms.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenBLAS sgemm GFLOP/s on an n^3 product, or 0 where it cannot be opened */
static double sgemm_gflops(int n, int threads, int runs)
{
    void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) return 0;
    typedef void (*gemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float, float *,
                            int);
    gemm_fn gemm = (gemm_fn)dlsym(h, "cblas_sgemm");
    void (*set)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
    if (!gemm) return 0;
    if (set) set(threads);
    float *A = malloc(sizeof(float) * (size_t)n * n), *B = malloc(sizeof(float) * (size_t)n * n),
          *C = malloc(sizeof(float) * (size_t)n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) A[i] = B[i] = (float)((i % 7) - 3) * 0.01f;
    gemm(101, 111, 111, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);   /* warm-up; RowMajor, NoTrans */
    double *g = malloc(sizeof(double) * (size_t)runs);
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        gemm(101, 111, 111, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        g[r] = 2.0 * n * (double)n * n / (now() - t0) / 1e9;
    }
    double med = median(g, runs);
    free(A); free(B); free(C); free(g);
    return med;
}

static void prefill(const char *label, const ms_model *m, int runs, int T, double roof_gflops)
{
    ms_err e;
    const ms_config *c = &m->cfg;
    size_t SL = ms_state_len(c);
    float *st = calloc(SL, sizeof(float)), *lg = malloc(sizeof(float) * (size_t)c->vocab);
    int *tok = malloc(sizeof(int) * (size_t)T);
    for (int i = 0, x = 1; i < T; i++, x = (x * 31 + 7) % c->vocab) tok[i] = x;
    ms_ws *ws = ms_ws_new(m);
    double *a = malloc(sizeof(double) * (size_t)runs), *b = malloc(sizeof(double) * (size_t)runs * 3);
    for (int r = 0; r < runs; r++) {   /* token by token, logits after the last only */
        memset(st, 0, SL * sizeof(float));
        double t0 = now();
        for (int i = 0; i < T; i++) ms_step(m, ws, st, st, tok[i], i == T - 1 ? lg : NULL, NULL, &e);
        a[r] = T / (now() - t0);
    }
    double step_tps = median(a, runs);
    /* the matrix products of one token (2 flops a weight), the head once per prefill */
    size_t esz = ms_dtype_size(c->wtype);
    double head = 2.0 * c->vocab * c->n_embd;
    double per_tok = 2.0 * (double)ms_model_bytes_per_token(m) / (double)esz - head;
    printf("%-30s %-5s %8.1f", label, ms_dtype_name(c->wtype), step_tps);
    const int chunks[3] = { 16, 32, 64 };
    double best = 0;
    for (int k = 0; k < 3; k++) {
        ms_seq_ws *w = ms_seq_ws_new(m, chunks[k]);
        for (int r = 0; r < runs; r++) {
            memset(st, 0, SL * sizeof(float));
            double t0 = now();
            ms_step_seq(m, w, st, tok, T, lg, MS_SEQ_LAST, &e);
            b[r] = T / (now() - t0);
        }
        double tps = median(b, runs);
        if (tps > best) best = tps;
        printf(" %8.1f", tps);
        ms_seq_ws_free(w);
    }
    double gf = best * (per_tok + head / T) / 1e9;
    printf(" %7.2fx %7.1f", best / step_tps, gf);
    if (roof_gflops > 0) printf(" %7.0f%%", 100.0 * gf / roof_gflops);
    printf("\n");
    fflush(stdout);
    free(a); free(b); free(st); free(lg); free(tok);
    ms_ws_free(ws);
}

static void batch(const char *label, const ms_model *m, int runs)
{
    ms_err e;
    const ms_config *c = &m->cfg;
    size_t SL = ms_state_len(c), V = (size_t)c->vocab;
    int Bs[3] = { 1, 16, 64 };
    printf("%-30s %-5s", label, ms_dtype_name(c->wtype));
    double one = 0;
    for (int k = 0; k < 3; k++) {
        int B = Bs[k];
        ms_seq_ws *w = ms_seq_ws_new(m, B);
        float *sts = calloc(SL * (size_t)B, sizeof(float)), **sp = malloc(sizeof(float *) * (size_t)B);
        float *lg = malloc(sizeof(float) * V * (size_t)B);
        int *tok = malloc(sizeof(int) * (size_t)B);
        for (int b = 0; b < B; b++) { sp[b] = sts + (size_t)b * SL; tok[b] = (b * 37 + 1) % c->vocab; }
        ms_step_batch(m, w, sp, tok, B, lg, &e);   /* warm-up */
        double *t = malloc(sizeof(double) * (size_t)runs);
        int steps = B == 1 ? 8 : 2;
        for (int r = 0; r < runs; r++) {
            double t0 = now();
            for (int s = 0; s < steps; s++) ms_step_batch(m, w, sp, tok, B, lg, &e);
            t[r] = (double)B * steps / (now() - t0);
        }
        double tps = median(t, runs);
        if (B == 1) one = tps;
        printf(" B=%-2d %8.1f tok/s (%5.2fx)", B, tps, tps / one);
        free(t); free(sts); free(sp); free(lg); free(tok);
        ms_seq_ws_free(w);
    }
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    int threads = 0, runs = 3, tokens = 512, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
    }
    if (runs < 1) runs = 1;
    if (threads > 0) ms_set_threads(threads);
    threads = ms_get_threads();
    double roof = sgemm_gflops(2048, threads, 3);
    printf("prefill benchmark: %d threads, %d tokens, medians of %d; OpenBLAS sgemm 2048^3: %.1f GFLOP/s%s\n", threads,
           tokens, runs, roof, roof > 0 ? "" : " (not available)");
    printf("%-30s %-5s %8s %8s %8s %8s %8s %7s %8s\n", "model", "dtype", "step t/s", "seq16", "seq32", "seq64",
           "speedup", "GFLOP/s", "of sgemm");
    ms_config c = {.n_layer = 12, .n_embd = 768, .n_head = 12, .head_size = 64, .vocab = 65536,
                   .n_ptok = 4 * 768, .sse_heads = 0, .d_w = 64, .d_a = 64, .d_v = 32, .d_g = 128};
    ms_dtype dts[3] = { MS_F32, MS_BF16, MS_F16 };
    for (int k = 0; k < (quick ? 1 : 3); k++) {
        ms_err e;
        ms_model *m = ms_model_random(&c, dts[k], 42, &e);
        if (!m) { printf("random 0.1B: %s\n", e.msg); continue; }
        prefill("random 0.1B shape (Hs 0)", m, runs, tokens, roof);
        if (k == 0) batch("  batched one-token step", m, runs);
        ms_model_free(m);
    }
    if (!quick) {
        c.sse_heads = 4;
        ms_err e;
        ms_model *m = ms_model_random(&c, MS_F32, 43, &e);
        if (m) {
            prefill("random 0.1B shape, 4 SSE heads", m, runs, tokens, roof);
            ms_model_free(m);
        }
    }
    return 0;
}
