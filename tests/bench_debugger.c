/* bench_debugger.c: what the state debugger costs (make bench, through
 * scripts/bench_debugger.sh).  Not a test: prints tables and exits 0.
 *
 *  1. snap, restore and fork of a point of the official 0.1B shape (L12
 *     C768 H12 N64, V 65536: a 2.43 MB state and 256 kB of logits), on a
 *     random BF16 model built in memory; median, min and max of R runs
 *     (goal: 1 ms each).
 *  2. goto cost against the checkpoint interval K on the rwkv.cpp tiny
 *     model: 4096 tokens fed, then 200 gotos to seeded random positions;
 *     events replayed (mean, max) and time per goto, with the 0.1B-shape
 *     step time to scale it (a goto replays at most K events).
 *  3. resident memory over a long gen with a snapshot every 1000 tokens
 *     (default checkpoints), sampled every 10% of the run: the growth
 *     beside what the snapshots, checkpoints and events account for
 *     (goal: flat apart from the snapshots).
 *
 *   bench_debugger [--part copies|goto|rss|all] [--runs R] [--tokens N] [--quick] TINY_MODEL
 */
#include "bench.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double rss_mb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE) / 1e6;
}

static void die(const char *what, const ms_err *e)
{
    fprintf(stderr, "bench_debugger: %s: %s\n", what, e->msg);
    exit(1);
}

/* median, min, max of t[0..n) in ms, printed as a row */
static void row(const char *label, double *t, int n, const char *note)
{
    qsort(t, (size_t)n, sizeof *t, cmpd);
    printf("  %-34s %9.3f %9.3f %9.3f   %s\n", label, 1e3 * t[n / 2], 1e3 * t[0], 1e3 * t[n - 1], note);
}

static void bench_copies(int runs)
{
    ms_config c;
    memset(&c, 0, sizeof c);
    c.n_layer = 12; c.n_embd = 768; c.n_head = 12; c.head_size = 64; c.vocab = 65536;
    c.n_ptok = 3072; c.sse_heads = 2; c.d_w = 64; c.d_a = 64; c.d_v = 32; c.d_g = 128;
    c.n_experts = 1; c.top_k = 1; c.tokenizer = MS_TOK_BYTES;
    ms_err e;
    double t0 = now();
    ms_model *m = ms_model_random(&c, MS_BF16, 1, &e);
    if (!m) die("0.1B random model", &e);
    sess *s = sess_new(NULL, NULL);
    int dropped;
    if (!s || sess_use_model(s, m, &dropped, &e) != 0) die("session", &e);
    double t_model = now() - t0;
    int ids[4] = { 72, 105, 33, 10 }, done;
    double *ts = malloc(sizeof(double) * (size_t)runs * 2);
    double step[4];
    for (int i = 0; i < 4; i++) {
        double a = now();
        if (sess_feed(s, &ids[i], 1, NULL, NULL, &done, &e) != 0) die("feed", &e);
        step[i] = now() - a;
    }
    qsort(step, 4, sizeof *step, cmpd);
    size_t sb = ms_state_len(&s->model->cfg) * sizeof(float), lb = (size_t)c.vocab * sizeof(float);
    printf("1. copies of a 0.1B-shape point (state %.2f MB + logits %.2f MB; model built in %.1f s, "
           "one step %.1f ms), %d runs, ms:\n", sb / 1e6, lb / 1e6, t_model, 1e3 * step[1], runs);
    printf("  %-34s %9s %9s %9s\n", "", "median", "min", "max");
    char name[32];
    for (int r = 0; r < runs; r++) {
        snprintf(name, sizeof name, "a%d", r);
        double a = now();
        if (sess_snap_add(s, name, &e) != 0) die("snap", &e);
        ts[r] = now() - a;
    }
    row("snap into fresh memory", ts, runs, "(one copy + the page faults of new memory)");
    for (int r = 0; r < runs; r++) {
        snprintf(name, sizeof name, "b%d", r);
        sess_idle(s);   /* what the REPL does between commands (not timed) */
        double a = now();
        if (sess_snap_add(s, name, &e) != 0) die("snap", &e);
        ts[r] = now() - a;
    }
    row("snap, as the REPL runs it", ts, runs, "(one copy into memory sess_idle faulted in before)");
    for (int r = 0; r < runs; r++) {
        double a = now();
        if (sess_restore(s, r % s->n_snaps, &e) != 0) die("restore", &e);
        ts[r] = now() - a;
    }
    row("restore (on the branch's history)", ts, runs, "(one copy into the current point)");
    for (int r = 0; r < runs; r++) {
        snprintf(name, sizeof name, "f%d", r);
        sess_idle(s);
        double a = now();
        if (sess_fork(s, name, &e) != 0) die("fork", &e);
        ts[r] = now() - a;
    }
    row("fork, as the REPL runs it", ts, runs, "(one copy: the new branch's base)");
    int f0 = sess_branch_find(s, "f0"), f1 = runs > 1 ? sess_branch_find(s, "f1") : f0;
    for (int r = 0; r < runs; r++) {
        double a = now();
        if (sess_switch(s, r % 2 ? f0 : f1, &e) != 0) die("switch", &e);
        ts[r] = now() - a;
    }
    row("switch between two forks", ts, runs, "(restore a base checkpoint: 0 events to replay)");
    /* what recording costs per token: the step alone against sess_feed */
    sess_point p;
    if (sess_pt_alloc(&s->model->cfg, &p) != 0) die("memory", &e);
    double ta[5], tb[5];
    for (int r = 0; r < 5; r++) {
        int id = 65 + r, done;
        double a = now();
        if (ms_step(s->model, s->ws, p.state, p.state, id, p.logits, NULL, &e) != 0) die("step", &e);
        ta[r] = now() - a;
        a = now();
        if (sess_feed(s, &id, 1, NULL, NULL, &done, &e) != 0) die("feed", &e);
        tb[r] = now() - a;
    }
    sess_pt_free(&p);
    row("ms_step alone", ta, 5, "");
    row("sess_feed (step + checks + record)", tb, 5, "");
    free(ts);
    sess_free(s);
}

static void bench_goto(const char *tiny, int n_tokens)
{
    static const int Ks[] = { 16, 64, 256, 1024 };
    printf("\n2. goto against the checkpoint interval K (tiny model, %d tokens, 200 gotos to random positions):\n",
           n_tokens);
    printf("  %6s %12s %14s %12s %12s\n", "K", "checkpoints", "replayed mean", "max", "ms/goto");
    ms_err e;
    for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++) {
        sess *s = sess_new(NULL, NULL);
        int dropped;
        if (!s || sess_load(s, tiny, &dropped, &e) != 0) die(tiny, &e);
        sess_checkpoints_set(s, Ks[k], 1000000);
        uint64_t x = 1;
        for (int i = 0; i < n_tokens; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int id = (int)(x >> 56), done;
            if (sess_feed(s, &id, 1, NULL, NULL, &done, &e) != 0) die("feed", &e);
        }
        double a = now();
        long rep, total = 0, most = 0;
        double t = 0;
        for (int g = 0; g < 200; g++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int64_t pos = (int64_t)((x >> 33) % (uint64_t)(n_tokens + 1));
            double b = now();
            if (sess_goto_pos(s, pos, &rep, &e) != 0) die("goto", &e);
            t += now() - b;
            total += rep;
            if (rep > most) most = rep;
        }
        (void)a;
        sess_ck_stats st;
        sess_checkpoints_stats(s, &st);
        printf("  %6d %12ld %14.1f %12ld %12.3f\n", Ks[k], st.count, total / 200.0, most, 1e3 * t / 200);
        sess_free(s);
    }
    printf("  (a goto replays at most K events, about K/2 on average; on the 0.1B shape multiply the events\n"
           "   by the step time of part 1)\n");
}

static void bench_rss(const char *tiny, int n_tokens)
{
    ms_err e;
    sess *s = sess_new(NULL, NULL);
    int dropped;
    if (!s || sess_load(s, tiny, &dropped, &e) != 0) die(tiny, &e);
    ms_sampler sm;
    ms_sampler_init(&sm, 1.0f, 1.0f, 0, 7);
    if (sess_set_sampler(s, &sm, &e) != 0) die("sampler", &e);
    int id = 10, done;
    if (sess_feed(s, &id, 1, NULL, NULL, &done, &e) != 0) die("feed", &e);
    size_t pb = (ms_state_len(&s->model->cfg) + (size_t)s->model->cfg.vocab) * sizeof(float);
    printf("\n3. resident memory over a %d-token gen, a snapshot every 1000 tokens (tiny model, point %.3f MB,\n"
           "   checkpoints every %d events, at most %d):\n", n_tokens, pb / 1e6, s->ck_every, s->ck_max);
    printf("  %8s %10s %10s %12s %12s %12s %14s\n", "tokens", "RSS MB", "growth", "snapshots", "checkpoints",
           "events", "unexplained");
    double r0 = rss_mb(), t0 = now();
    int step = n_tokens / 10;
    for (int i = 1; i <= n_tokens; i++) {
        id = sess_sample(s, &e);
        if (id < 0 || sess_feed(s, &id, 1, NULL, NULL, &done, &e) != 0) die("gen", &e);
        if (i % 1000 == 0) {
            char name[32];
            snprintf(name, sizeof name, "s%d", i / 1000);
            if (sess_snap_add(s, name, &e) != 0) die("snap", &e);
        }
        if (i % step == 0) {
            sess_ck_stats st;
            sess_checkpoints_stats(s, &st);
            double r = rss_mb(), g = r - r0, sn = s->n_snaps * pb / 1e6, ck = st.count * pb / 1e6,
                   ev = st.event_bytes / 1e6;
            printf("  %8d %10.1f %10.1f %12.1f %12.1f %12.1f %14.1f\n", i, r, g, sn, ck, ev, g - sn - ck - ev);
        }
    }
    printf("  (%.0f tokens/s with history, checksums and snapshots; 'unexplained' = growth - snapshots -\n"
           "   checkpoints - events: the allocator's slack, which should stay flat)\n",
           n_tokens / (now() - t0));
    sess_free(s);
}

int main(int argc, char **argv)
{
    int runs = 21, tokens = 100000, quick = 0;
    const char *tiny = NULL, *part = "all";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--part") && i + 1 < argc) part = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else tiny = argv[i];
    }
    if (!tiny || runs < 1 || tokens < 10) {
        fprintf(stderr, "usage: bench_debugger [--part copies|goto|rss|all] [--runs R] [--tokens N] [--quick] TINY\n");
        return 2;
    }
    if (quick) {
        runs = 5;
        tokens = 10000;
    }
    /* each part is best run in a process of its own (scripts/bench_debugger.sh
     * does): memory freed by one part would hide the next one's growth */
    int all = !strcmp(part, "all");
    ms_set_threads(2);
    if (all || !strcmp(part, "copies")) bench_copies(runs);
    ms_set_threads(1);
    if (all || !strcmp(part, "goto")) bench_goto(tiny, quick ? 1024 : 4096);
    if (all || !strcmp(part, "rss")) bench_rss(tiny, tokens);
    return 0;
}
