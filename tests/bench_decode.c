/* bench_decode.c: decode speed against the machine's measured read
 * bandwidth (BENCH.md).  Not a test: prints a table and exits 0.
 *
 * For each model: batch 1, state carried, logits every token, load and an
 * 8-token warm-up excluded; RUNS runs of TOKENS tokens, median/min/max.
 * Bytes per token = every weight byte a step reads (ms_model_bytes_per_token).
 * Roofline = bandwidth / bytes per token, with the bandwidth measured in this
 * run with the same thread count over a 1 GiB buffer.
 *
 *   bench_decode [--threads N] [--runs R] [--tokens T] [--quick] [MODEL.bin|.safetensors ...]
 */
#include "bench.h"
#include "kernels.h"
#include "ms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double bw_gbs;

static void bench(const char *label, const ms_model *m, int runs, int tokens)
{
    ms_err e;
    ms_ws *ws = ms_ws_new(m);
    float *st = calloc(ms_state_len(&m->cfg), sizeof(float));
    float *lg = malloc(sizeof(float) * (size_t)m->cfg.vocab);
    int tok = 1;
    for (int i = 0; i < 8; i++) {   /* warm-up */
        ms_step(m, ws, st, st, tok, lg, NULL, &e);
        tok = (tok * 31 + 7) % m->cfg.vocab;
    }
    double *tps = malloc(sizeof(double) * (size_t)runs);
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        for (int i = 0; i < tokens; i++) {
            ms_step(m, ws, st, st, tok, lg, NULL, &e);
            tok = (tok * 31 + 7) % m->cfg.vocab;
        }
        tps[r] = tokens / (now() - t0);
    }
    qsort(tps, (size_t)runs, sizeof *tps, cmpd);
    double med = tps[runs / 2];
    size_t bpt = ms_model_bytes_per_token(m);
    double roof = bw_gbs * 1e9 / (double)bpt;
    printf("%-34s %-5s %9.1f %8.1f %8.1f %10.2f %8.1f %9.1f %6.0f%%\n", label, ms_dtype_name(m->cfg.wtype), med,
           tps[0], tps[runs - 1], bpt / 1e6, med * bpt / 1e9, roof, 100.0 * med / roof);
    fflush(stdout);
    free(tps);
    free(st);
    free(lg);
    ms_ws_free(ws);
}

int main(int argc, char **argv)
{
    int threads = 0, runs = 5, tokens = 32, quick = 0;
    const char *files[16];
    int nf = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (nf < 16) files[nf++] = argv[i];
    }
    if (runs < 3) runs = 3;
    if (tokens < 32) tokens = 32;
    if (threads > 0) ms_set_threads(threads);
    threads = ms_get_threads();
    double bw = ms_read_bandwidth(threads, (size_t)1 << 30, 5);
    bw_gbs = bw / 1e9;
    printf("decode benchmark: %d threads, read bandwidth %.1f GB/s (1 GiB buffer, median of 5), "
           "%d runs x %d tokens\n",
           threads, bw_gbs, runs, tokens);
    printf("%-34s %-5s %9s %8s %8s %10s %8s %9s %7s\n", "model", "dtype", "tok/s", "min", "max", "MB/token",
           "GB/s", "roof t/s", "of roof");
    for (int i = 0; i < nf; i++) {
        ms_err e;
        ms_model *m = ms_model_load(files[i], &e);
        if (!m) { printf("%s: %s\n", files[i], e.msg); continue; }
        const char *base = strrchr(files[i], '/');
        bench(base ? base + 1 : files[i], m, runs, tokens);
        ms_model_free(m);
    }
    /* the official RWKV-7 0.1B shape (L12 C768 H12 N64 vocab 65536, LoRA 64/64/32/128) */
    ms_config c = {.n_layer = 12, .n_embd = 768, .n_head = 12, .head_size = 64, .vocab = 65536,
                   .n_ptok = 4 * 768, .sse_heads = 0, .d_w = 64, .d_a = 64, .d_v = 32, .d_g = 128};
    ms_dtype dts[3] = {MS_F32, MS_BF16, MS_F16};
    for (int k = 0; k < 3; k++) {
        if (quick && k == 2) break;
        ms_err e;
        ms_model *m = ms_model_random(&c, dts[k], 42, &e);
        if (!m) { printf("random 0.1B: %s\n", e.msg); continue; }
        bench("random 0.1B shape (Hs 0)", m, runs, tokens);
        ms_model_free(m);
    }
    if (!quick) {
        c.sse_heads = 4;   /* the same shape as a Meta-State model with 4 SSE heads per layer */
        for (int k = 0; k < 2; k++) {
            ms_err e;
            ms_model *m = ms_model_random(&c, dts[k], 43, &e);
            if (!m) { printf("random 0.1B Hs4: %s\n", e.msg); continue; }
            bench("random 0.1B shape, 4 SSE heads", m, runs, tokens);
            ms_model_free(m);
        }
    }
    printf("All products use our AVX2 kernels (BF16/F16 converted on the fly; F32 measured faster than OpenBLAS sgemv here).\n");
    return 0;
}
