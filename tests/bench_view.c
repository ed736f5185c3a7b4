/* bench_view.c: the time of one full redraw of the full-screen view for a
 * model of the official RWKV-7 0.1B shape (L12 C768 H12 N64, vocab 65536,
 * 3072 parameter tokens, 2 SSE heads per layer; random BF16 weights), after
 * a few tokens with the view's record.  Not a test: prints a table, exits 0.
 *
 * One redraw = what the view does when a frame is due: recompute the data
 * (per-head norms of the whole state for the overview, the top-k of 65536
 * logits, the token text, the parameter-token ranking: one Ks·e product),
 * lay out and render every panel into the cell grid, and write it through
 * ncurses (TERM=xterm-256color, output to /dev/null) with nothing cached
 * from the frame before (vz_term_draw with no previous grid, then doupdate
 * after clearok).  Medians of REPS redraws for a 100×40 terminal (the zoom's
 * 64×64 head pooled into what is left) and a 200×60 one (unpooled), for the
 * zoom on one head and on a layer's SSE heads, plus the parts.
 *
 *   bench_view [--reps R] [--cpu]   (--cpu: the parts' columns in thread CPU time)
 */
#include "bench.h"
#include "kernels.h"
#include "ms.h"
#include "termdraw.h"
#include "tokenizer.h"
#include "view.h"
#include "viewdata.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this thread: on a shared machine the wall time also counts
 * the time others held the CPU */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int reps = 50, cpu = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        if (!strcmp(argv[i], "--cpu")) cpu = 1;   /* the parts in CPU time, not wall time */
    }
    if (reps < 3) reps = 3;
    ms_config c = {.n_layer = 12, .n_embd = 768, .n_head = 12, .head_size = 64, .vocab = 65536,
                   .n_ptok = 4 * 768, .sse_heads = 2, .d_w = 64, .d_a = 64, .d_v = 32, .d_g = 128};
    ms_err err;
    ms_model *m = ms_model_random(&c, MS_BF16, 42, &err);
    if (!m) { printf("bench_view: %s\n", err.msg); return 0; }
    ms_ws *ws = ms_ws_new(m);
    float *st = calloc(ms_state_len(&m->cfg), sizeof(float));
    float *lg = malloc(sizeof(float) * (size_t)m->cfg.vocab);
    vz_rec *rec = vz_rec_new(&m->cfg);
    ms_observer obs = { vz_rec_observe, rec };
    int toks[64], nt = 0, tok = 1;
    double t_obs[16], t_plain[16];
    for (int i = 0; i < 32; i++) {
        double t0 = now();
        vz_rec_before(rec, st);
        ms_step(m, ws, st, st, tok, lg, &obs, &err);
        vz_rec_after(rec, &m->cfg, st, nt + 1);
        double t1 = now();
        toks[nt++] = tok;
        tok = (tok * 31 + 7) % 256;
        if (i >= 16) t_obs[i - 16] = t1 - t0;
    }
    float *st2 = malloc(ms_state_len(&m->cfg) * sizeof(float));
    memcpy(st2, st, ms_state_len(&m->cfg) * sizeof(float));
    for (int i = 0; i < 16; i++) {
        double t0 = now();
        ms_step(m, ws, st2, st2, tok, lg, NULL, &err);
        t_plain[i] = now() - t0;
    }
    /* the last step again with the record, so that it matches the state */
    memcpy(st2, st, ms_state_len(&m->cfg) * sizeof(float));
    ms_tokenizer *tk = ms_tok_bytes_new();
    vz_source src = {0};
    src.model = m;
    src.tok = tk;
    src.state = st;
    src.logits = lg;
    src.has_logits = 1;
    src.tokens = toks;
    src.n_tokens = nt;
    src.position = nt;
    src.branch = "main";
    src.rec = rec;
    src.model_name = "random 0.1B shape";
    /* the step was recorded at position nt only if the last ms_step above was
     * the recorded one: redo it so that the record belongs to this state */
    vz_rec_before(rec, st);
    ms_step(m, ws, st, st, toks[nt - 1], lg, &obs, &err);
    vz_rec_after(rec, &m->cfg, st, nt);

    setlocale(LC_CTYPE, "C.UTF-8");
    FILE *null_out = fopen("/dev/null", "w"), *null_in = fopen("/dev/null", "r");
    SCREEN *scr = newterm("xterm-256color", null_out, null_in);
    if (!scr) { printf("bench_view: ncurses cannot start xterm-256color\n"); return 0; }
    set_term(scr);
    vz_term *term = vz_term_new(VZ_DEPTH_256);

    printf("full redraw of the view, random 0.1B shape (L12 H12 N64, V 65536, n 3072, Hs 2), %d reps, median ms\n", reps);
    printf("%-22s %8s %8s %8s %8s %8s %9s\n", "terminal, zoom", "data", "render", "ncurses", "total", "max",
           "total cpu");
    static const int sizes[2][2] = {{100, 40}, {200, 60}};
    double *td = malloc(sizeof(double) * (size_t)reps), *tr = malloc(sizeof(double) * (size_t)reps);
    double *tw = malloc(sizeof(double) * (size_t)reps), *tt = malloc(sizeof(double) * (size_t)reps);
    double *tc = malloc(sizeof(double) * (size_t)reps);
    for (int sz = 0; sz < 2; sz++)
        for (int mode = 0; mode < 2; mode++) {
            int W = sizes[sz][0], H = sizes[sz][1];
            resize_term(H, W);
            vz_grid *g = vz_grid_new(W, H);
            vz_view v;
            vz_view_init(&v, vz_term_depth(term), 0);
            v.sel_l = 5;
            v.sel_h = mode ? 0 : 1;
            v.zoom = mode ? VZ_ZOOM_SSE : VZ_ZOOM_HEAD;
            vz_data d;
            vz_data_init(&d);
            vz_chrome ch = {"main:33> ", "gen 2000", 8, NULL, "running gen 1.2 s", NULL, 1};
            double mx = 0;
            for (int r = 0; r < reps; r++) {
                double c0 = cpu_now();
                double t0 = now();
                vz_select sel = vz_view_select(&v);
                vz_data_update(&d, &src, &sel);
                double c1 = cpu_now(), t1 = now();
                int cx, cy;
                vz_view_draw(g, &v, &d, &ch, &cx, &cy);
                double c2 = cpu_now(), t2 = now();
                clearok(curscr, TRUE);
                vz_term_draw(term, stdscr, g);
                wmove(stdscr, cy, cx);
                wnoutrefresh(stdscr);
                doupdate();
                double t3 = now();
                double c3 = cpu_now();
                tc[r] = (c3 - c0) * 1e3;
                td[r] = (cpu ? c1 - c0 : t1 - t0) * 1e3;
                tr[r] = (cpu ? c2 - c1 : t2 - t1) * 1e3;
                tw[r] = (cpu ? c3 - c2 : t3 - t2) * 1e3;
                tt[r] = (t3 - t0) * 1e3;
                if (tt[r] > mx) mx = tt[r];
            }
            char label[64];
            snprintf(label, sizeof label, "%dx%d, %s", W, H, mode ? "sse 5" : "L5.H1");
            printf("%-22s %8.3f %8.3f %8.3f %8.3f %8.3f %9.3f\n", label, median(td, reps), median(tr, reps),
                   median(tw, reps), median(tt, reps), mx, median(tc, reps));
            vz_data_free(&d);
            vz_view_free(&v);
            vz_grid_free(g);
        }
    endwin();
    delscreen(scr);
    printf("goal: total <= 5 ms (wall; the cpu column is this thread's CPU time, what a quiet machine would show).  One step of this model: %.2f ms with the view's record, %.2f ms without "
           "(median of 16; the record copies q, e and s of every layer)\n",
           median(t_obs, 16) * 1e3, median(t_plain, 16) * 1e3);
    vz_term_free(term);
    ms_tok_free(tk);
    vz_rec_free(rec);
    free(td); free(tr); free(tw); free(tt); free(tc);
    free(st); free(st2); free(lg);
    ms_ws_free(ws);
    ms_model_free(m);
    return 0;
}
