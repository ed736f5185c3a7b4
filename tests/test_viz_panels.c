/* test_viz_panels.c: the full-screen view's panels, headless.
 *
 * What it checks, on two fixed models with a fixed input and sampler seed
 * (B: the random Meta-State model of tests/run.sh, 2 layers, 2 SSE heads of
 * N = 64, made here with scripts/make_random.py; and the rwkv.cpp tiny
 * model, a plain RWKV-7):
 * - the numbers the panels show, against independent computations in
 *   double: per-head ‖S‖, ‖ΔS‖ and drift, the top-k next tokens and their
 *   probabilities, the recorded q/e/s against a second observer, and the
 *   parameter-token ranking (|Ks_j·e| per head and over the SSE heads, and
 *   relu(s_j)²) against Ks rows read one by one;
 * - golden screen dumps (text and colour of every cell, vz_grid_dump) of
 *   each panel, and of whole frames at 100×40 in the four colour depths and
 *   at 40×12, in tests/golden/viz/view-*.txt (VZ_GOLDEN_UPDATE=1 rewrites
 *   them);
 * - that no panel writes outside its rectangle and every frame size from
 *   1×1 to 200×70 lays out without overlap or writes off the grid;
 * - the keys: focus cycling, moves clamped to the model, the help box, the
 *   scale and metric cycles, typing from a panel going to the command line.
 *
 * Usage: test_viz_panels [B.safetensors] (without it the model is made in
 * build/tmp/ with $PYTHON or /usr/bin/python3, again whenever
 * scripts/make_random.py is newer).  Run from the repository root
 * (tests/run.sh does).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cells.h"
#include "check.h"
#include "kernels.h"
#include "ms.h"
#include "tokenizer.h"
#include "view.h"
#include "viewdata.h"

#define GOLDEN_DIR "tests/golden/viz"
#define INPUT "In the beginning God created the heaven and the earth.\n"

/* ---- a run of the model with the record ---- */

typedef struct {
    ms_model *m;
    ms_tokenizer *tok;
    ms_ws *ws;
    float *state, *logits, *snap;
    int *tokens, n_tokens;
    vz_rec *rec;
    /* a second observer: the raw q, e, s of the last step, for comparison */
    float *q2, *e2, *s2;
} run;

static void obs2(void *ctx, const ms_trace *t)
{
    run *r = ctx;
    const ms_config *c = &r->m->cfg;
    size_t hn = (size_t)c->sse_heads * c->head_size;
    vz_rec_observe(r->rec, t);
    if (hn) {
        memcpy(r->q2 + t->layer * hn, t->q, hn * sizeof(float));
        memcpy(r->e2 + t->layer * hn, t->e, hn * sizeof(float));
    }
    memcpy(r->s2 + (size_t)t->layer * c->n_ptok, t->s, (size_t)c->n_ptok * sizeof(float));
}

static int run_open(run *r, const char *path)
{
    memset(r, 0, sizeof *r);
    ms_err err;
    r->m = ms_model_load(path, &err);
    if (!r->m) { printf("cannot load %s: %s\n", path, err.msg); return -1; }
    const ms_config *c = &r->m->cfg;
    r->tok = ms_tok_bytes_new();
    r->ws = ms_ws_new(r->m);
    r->state = calloc(ms_state_len(c), sizeof(float));
    r->snap = calloc(ms_state_len(c), sizeof(float));
    r->logits = calloc((size_t)c->vocab, sizeof(float));
    r->tokens = calloc(4096, sizeof(int));
    r->rec = vz_rec_new(c);
    size_t hn = (size_t)c->sse_heads * c->head_size * c->n_layer;
    r->q2 = calloc(hn + 1, sizeof(float));
    r->e2 = calloc(hn + 1, sizeof(float));
    r->s2 = calloc((size_t)c->n_ptok * c->n_layer + 1, sizeof(float));
    return r->tok && r->ws && r->state && r->logits && r->rec ? 0 : -1;
}

static void run_close(run *r)
{
    if (r->m) ms_model_free(r->m);
    if (r->tok) ms_tok_free(r->tok);
    if (r->ws) ms_ws_free(r->ws);
    free(r->state); free(r->snap); free(r->logits); free(r->tokens);
    free(r->q2); free(r->e2); free(r->s2);
    vz_rec_free(r->rec);
}

static void run_step(run *r, int id)
{
    ms_err err;
    ms_observer o = { obs2, r };
    vz_rec_before(r->rec, r->state);
    ms_step(r->m, r->ws, r->state, r->state, id, r->logits, &o, &err);
    r->tokens[r->n_tokens++] = id;
    vz_rec_after(r->rec, &r->m->cfg, r->state, r->n_tokens);
}

/* feed INPUT, snapshot, then sample n tokens (seed 7, temperature 1) */
static void run_feed(run *r, int n_sample)
{
    for (const char *p = INPUT; *p; p++) run_step(r, (unsigned char)*p);
    memcpy(r->snap, r->state, ms_state_len(&r->m->cfg) * sizeof(float));
    ms_sampler sm;
    ms_sampler_init(&sm, 1.0f, 1.0f, 0, 7);
    r->rec->track_delta = 1;
    for (int i = 0; i < n_sample; i++) run_step(r, ms_sample(&sm, r->logits, r->m->cfg.vocab));
}

static vz_source run_source(run *r)
{
    vz_source s;
    memset(&s, 0, sizeof s);
    s.model = r->m;
    s.tok = r->tok;
    s.state = r->state;
    s.logits = r->logits;
    s.has_logits = r->n_tokens > 0;
    s.tokens = r->tokens;
    s.n_tokens = r->n_tokens;
    s.position = r->n_tokens;
    s.branch = "main";
    s.drift_state = r->snap;
    s.drift_name = "s1";
    s.rec = r->rec;
    s.model_name = "B.safetensors";
    return s;
}

/* ---- golden dumps ---- */

static int golden(const char *name, const vz_grid *g)
{
    char path[600];
    snprintf(path, sizeof path, "%s/view-%s.txt", GOLDEN_DIR, name);
    char *dump = vz_grid_dump(g);
    if (!dump) { CHECK(0, "golden %s: dump failed", name); return -1; }
    if (getenv("VZ_GOLDEN_UPDATE")) {
        FILE *f = fopen(path, "w");
        int ok = f && fputs(dump, f) >= 0;
        if (f && fclose(f) != 0) ok = 0;
        CHECK(ok, "golden %s: rewritten", path);
        free(dump);
        return 0;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        CHECK(0, "golden %s: cannot read it; VZ_GOLDEN_UPDATE=1 writes it", path);
        free(dump);
        return -1;
    }
    size_t cap = strlen(dump) + 2;
    char *want = malloc(cap + 1);
    size_t n = fread(want, 1, cap, f);
    want[n] = 0;
    fclose(f);
    /* the first differing line, and how many cells differ in text or colour */
    int line = 1, at = -1;
    for (size_t i = 0; dump[i] || want[i]; i++) {
        if (dump[i] != want[i]) { at = line; break; }
        if (dump[i] == '\n') line++;
    }
    CHECK(at < 0, "golden %s (%dx%d cells, text and colours): %s", path, g->w, g->h,
          at < 0 ? "identical" : "differs");
    if (at >= 0) {
        const char *a = dump, *b = want;
        for (int k = 1; k < at; k++) { a = strchr(a, '\n') + 1; b = strchr(b, '\n') + 1; }
        printf("        first difference on line %d:\n        got:  %.160s\n        want: %.160s\n", at, a, b);
    }
    free(want);
    free(dump);
    return at < 0 ? 0 : -1;
}

/* ---- independent numbers ---- */

static void check_numbers(run *r, const vz_data *d, const char *what)
{
    const ms_config *c = &r->m->cfg;
    int L = c->n_layer, H = c->n_head, N = c->head_size, Hs = c->sse_heads, n = c->n_ptok;
    /* overview: drift from the snapshot */
    double worst = 0;
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            const float *a = ms_state_S(c, r->state, l) + (size_t)h * N * N;
            const float *b = ms_state_S(c, r->snap, l) + (size_t)h * N * N;
            double s = 0;
            for (int i = 0; i < N * N; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            double rel = fabs(sqrt(s) - d->ov[l * H + h]) / (sqrt(s) + 1e-30);
            if (rel > worst) worst = rel;
        }
    CHECK(d->metric == VZ_OV_DRIFT && worst < 1e-6, "%s: drift from s1 per head vs double: worst relative diff %.2g",
          what, worst);
    /* top-k: probabilities and order against a full softmax in double */
    int V = c->vocab;
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < V; i++) if (r->logits[i] > mx) mx = r->logits[i];
    for (int i = 0; i < V; i++) sum += exp((double)r->logits[i] - mx);
    int ok = d->k == d->sel.topk;
    double wp = 0;
    for (int i = 0; i < d->k; i++) {
        int id = d->top_id[i];
        double p = exp((double)r->logits[id] - mx) / sum;
        if (fabs(p - d->top_p[i]) > wp) wp = fabs(p - d->top_p[i]);
        int better = 0;   /* tokens ranked above id that are not in the list before it */
        for (int j = 0; j < V; j++)
            if (r->logits[j] > r->logits[id] || (r->logits[j] == r->logits[id] && j < id)) better++;
        if (better != i) ok = 0;
    }
    CHECK(ok && wp < 1e-6, "%s: top-%d ranks against a full count, probability diff %.2g", what, d->k, wp);
    if (!Hs) return;
    /* the record: q, e and s of the last step as a second observer saw them */
    size_t hn = (size_t)Hs * N * L;
    int same = d->rec_ok && !memcmp(r->rec->q, r->q2, hn * sizeof(float)) &&
               !memcmp(r->rec->e, r->e2, hn * sizeof(float)) &&
               !memcmp(r->rec->s, r->s2, (size_t)n * L * sizeof(float));
    CHECK(same, "%s: the record's q, e, s equal the observer's (%zu + %zu + %d floats, memcmp)", what, hn, hn, n * L);
    /* parameter tokens: Ks rows one by one */
    int l = d->sel.layer, h = d->sel.head;
    const ms_layer *Ly = &r->m->layers[l];
    float *row = malloc((size_t)Hs * N * sizeof(float));
    double *ks = malloc((size_t)n * sizeof(double));
    const float *e = r->rec->e + (size_t)l * Hs * N;
    for (int j = 0; j < n; j++) {
        ms_mat_row(&Ly->Ks, j, row);
        double a = 0;
        for (int i = 0; i < Hs * N; i++)
            if (d->sel.zoom == VZ_ZOOM_SSE || i / N == h) a += (double)row[i] * e[i];
        ks[j] = a;
    }
    int rank_ok = d->n_ptok > 0;
    double wv = 0;
    for (int i = 0; i < d->n_ptok; i++) {
        int id = d->by_ks[i].id, above = 0;
        for (int j = 0; j < n; j++)
            if (fabs(ks[j]) > fabs(ks[id]) * (1 + 1e-5)) above++;
        if (above > i) rank_ok = 0;
        double rel = fabs(ks[id] - d->by_ks[i].val) / (fabs(ks[id]) + 1e-6);
        if (rel > wv) wv = rel;
        const float *s = r->rec->s + (size_t)l * n;
        int sid = d->by_s2[i].id, sabove = 0;
        double sv = s[sid] > 0 ? (double)s[sid] * s[sid] : 0;
        for (int j = 0; j < n; j++) {
            double x = s[j] > 0 ? (double)s[j] * s[j] : 0;
            if (x > sv) sabove++;
        }
        if (sabove != i) rank_ok = 0;
    }
    CHECK(rank_ok && wv < 1e-4, "%s: %d parameter tokens by |Ks.e| (%s) and relu(s)^2 ranked as computed in "
          "double, worst relative value diff %.2g", what, d->n_ptok,
          d->sel.zoom == VZ_ZOOM_SSE ? "all SSE heads" : "this head", wv);
    free(row);
    free(ks);
}

/* ---- rectangles ---- */

static const vz_style GUARD = {0x123456, 0x654321, 1};

static int outside_changed(const vz_grid *g, vz_rect r)
{
    for (int y = 0; y < g->h; y++)
        for (int x = 0; x < g->w; x++) {
            if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h) continue;
            const vz_cell *c = vz_grid_cat(g, x, y);
            if (strcmp(c->ch, "#") || c->fg != GUARD.fg || c->bg != GUARD.bg || !c->bold) return 1;
        }
    return 0;
}

static void check_rects(vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    int bad = 0, tried = 0;
    vz_grid *g = vz_grid_new(90, 60);
    static const int sz[][2] = {{1, 1}, {3, 2}, {10, 5}, {17, 9}, {40, 12}, {64, 33}, {80, 50}};
    for (int id = 0; id < VZ_P_N; id++)
        for (size_t k = 0; k < sizeof sz / sizeof sz[0]; k++) {
            vz_fill(g, (vz_rect){0, 0, g->w, g->h}, "#", GUARD);
            vz_rect r = {5, 4, sz[k][0], sz[k][1]};
            vz_panel_draw((vz_panel_id)id, g, r, v, d, ch);
            tried++;
            if (outside_changed(g, r)) {
                bad++;
                printf("        panel %s wrote outside %dx%d\n", vz_panel_name((vz_panel_id)id), r.w, r.h);
            }
        }
    CHECK(bad == 0, "%d panel draws in rectangles from 1x1 to 80x50 wrote nothing outside them (%d did)", tried, bad);
    vz_grid_free(g);
    /* whole frames: every size lays out without overlapping panels */
    int overlaps = 0, frames = 0;
    for (int W = 1; W <= 200; W += 13)
        for (int H = 1; H <= 70; H += 7) {
            vz_grid *f = vz_grid_new(W, H);
            int cx, cy;
            vz_view_draw(f, v, d, ch, &cx, &cy);
            frames++;
            for (int a = 0; a < VZ_P_N; a++)
                for (int b = a + 1; b < VZ_P_N; b++) {
                    vz_rect p = v->rect[a], q = v->rect[b];
                    if (p.w < 1 || q.w < 1 || p.h < 1 || q.h < 1) continue;
                    if (p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h) overlaps++;
                }
            for (int a = 0; a < VZ_P_N; a++) {
                vz_rect p = v->rect[a];
                if (p.w > 0 && (p.x < 0 || p.y < 0 || p.x + p.w > W || p.y + p.h > H)) overlaps++;
            }
            if (cx < 0 || cx >= W || cy < 0 || cy >= H) overlaps++;
            vz_grid_free(f);
        }
    CHECK(overlaps == 0, "%d frame sizes from 1x1 to 196x64: panels inside the screen, none overlapping, cursor on "
          "screen (%d problems)", frames, overlaps);
}

/* ---- keys ---- */

static void check_keys(const vz_data *d)
{
    vz_view v;
    vz_view_init(&v, VZ_DEPTH_256, 0);
    vz_grid *g = vz_grid_new(100, 40);
    vz_chrome ch = {"main:0> ", "", 0, NULL, "", NULL, 0};
    int cx, cy;
    vz_view_draw(g, &v, d, &ch, &cx, &cy);
    CHECK(v.focus == VZ_P_CMD && !vz_view_wants(&v, VZ_K_UP, 1) && !vz_view_wants(&v, 'x', 1) &&
          vz_view_wants(&v, VZ_K_TAB, 1) && !vz_view_wants(&v, VZ_K_TAB, 0) && vz_view_wants(&v, VZ_K_PGDN, 0),
          "command line first: arrows and letters are readline's, Tab only on an empty line, PgDn the view's");
    int order[8], n = 0;
    for (int i = 0; i < 6; i++) {
        vz_view_key(&v, VZ_K_TAB, d);
        vz_view_draw(g, &v, d, &ch, &cx, &cy);
        order[n++] = v.focus;
    }
    CHECK(order[0] == VZ_P_OVERVIEW && order[1] == VZ_P_ZOOM && order[2] == VZ_P_TOPK && order[3] == VZ_P_TOKENS &&
          order[4] == VZ_P_LOG && order[5] == VZ_P_CMD,
          "Tab cycles overview, zoom, next, tokens, output, command line (%d %d %d %d %d %d)",
          order[0], order[1], order[2], order[3], order[4], order[5]);
    vz_view_key(&v, VZ_K_TAB, d);   /* overview */
    for (int i = 0; i < 10; i++) vz_view_key(&v, VZ_K_DOWN, d);
    for (int i = 0; i < 10; i++) vz_view_key(&v, VZ_K_RIGHT, d);
    int l1 = v.sel_l, h1 = v.sel_h;
    vz_view_key(&v, VZ_K_HOME, d);
    vz_view_key(&v, VZ_K_PGDN, d);
    CHECK(l1 == d->L - 1 && h1 == d->H - 1 && v.sel_l == (d->L > 1 ? 1 : 0),
          "moves clamp to L%d.H%d; Home then PgDn gives layer %d", l1, h1, v.sel_l);
    int f = vz_view_key(&v, VZ_K_ENTER, d);
    CHECK(v.focus == VZ_P_ZOOM && v.zoom == VZ_ZOOM_HEAD && (f & VZ_KF_REFILL), "Enter in the overview zooms in");
    vz_view_key(&v, 's', d);
    vz_view_key(&v, 'c', d);
    vz_view_key(&v, 'm', d);
    CHECK(v.zoom == VZ_ZOOM_SSE && v.zs.mode == VZ_SCALE_LOCK && v.metric == VZ_OV_DELTA,
          "s: SSE view; c: auto to lock; m: norm to delta");
    vz_view_key(&v, '?', d);
    vz_view_draw(g, &v, d, &ch, &cx, &cy);
    int help_shown = 0;
    for (int y = 0; y < g->h && !help_shown; y++) {
        char row[512] = "";
        for (int x = 0; x < g->w && strlen(row) < 400; x++) strcat(row, vz_grid_cat(g, x, y)->ch);
        if (strstr(row, "Tab, Shift-Tab")) help_shown = 1;
    }
    f = vz_view_key(&v, 'x', d);
    CHECK(help_shown && !v.help && f == (VZ_KF_USED | VZ_KF_DRAW), "? shows the help box; any key closes it");
    f = vz_view_key(&v, 'x', d);
    CHECK(v.focus == VZ_P_CMD && (f & VZ_KF_TOCMD), "a letter typed in a panel goes to the command line");
    vz_view_key(&v, VZ_K_TAB, d);
    vz_view_key(&v, 'h', d);
    vz_view_draw(g, &v, d, &ch, &cx, &cy);
    int hidden = v.rect[VZ_P_OVERVIEW].w == 0;
    vz_view_key(&v, VZ_K_TAB, d);
    vz_view_key(&v, 'a', d);
    vz_view_draw(g, &v, d, &ch, &cx, &cy);
    CHECK(hidden && v.rect[VZ_P_OVERVIEW].w > 0, "h hides the overview, a shows it again");
    vz_grid_free(g);
    vz_view_free(&v);
}

/* ---- the panels of one model ---- */

typedef struct { const char *name; vz_depth d; } depth_case;
static const depth_case depths[] = {
    {"truecolor", VZ_DEPTH_TRUE}, {"256", VZ_DEPTH_256}, {"16", VZ_DEPTH_16}, {"mono", VZ_DEPTH_MONO},
};

static void panel(const char *name, vz_panel_id id, int w, int h, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    vz_grid *g = vz_grid_new(w, h);
    vz_panel_draw(id, g, (vz_rect){0, 0, w, h}, v, d, ch);
    golden(name, g);
    vz_grid_free(g);
}

static void frame(const char *name, int w, int h, vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    vz_grid *g = vz_grid_new(w, h);
    int cx, cy;
    vz_view_draw(g, v, d, ch, &cx, &cy);
    golden(name, g);
    vz_grid_free(g);
}

/* one panel in every depth: the overview (small) */
static void depths_overview(vz_view *v, const vz_data *d, const vz_chrome *ch)
{
    vz_depth keep = v->depth;
    for (size_t k = 0; k < 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "B-overview-%s", depths[k].name);
        v->depth = depths[k].d;
        panel(name, VZ_P_OVERVIEW, 30, 7, v, d, ch);
    }
    v->depth = keep;
}

static void test_model_B(const char *path)
{
    run r;
    if (run_open(&r, path) != 0) { CHECK(0, "open %s", path); run_close(&r); return; }
    run_feed(&r, 12);
    vz_source src = run_source(&r);
    vz_log *lg = vz_log_new(100);
    vz_log_addf(lg, VZ_LOG_CMD, "main:0> feed In the beginning");
    const char *esc = "+56 tokens, position 56\n\x1b[31mred\x1b[0m is stripped\r\n";
    vz_log_add(lg, esc, strlen(esc), VZ_LOG_OUT);
    vz_log_addf(lg, VZ_LOG_ERR, "view: no head L9.H0: layers 0..1, heads 0..1");
    vz_log_addf(lg, VZ_LOG_NOTE, "[tour 1/9] a long explanation that wraps around the panel's width, once or twice");
    vz_chrome ch = {"main:68> ", "view sse 0", 4, lg, "feed 0.012 s", NULL, 0};

    vz_view v;
    vz_view_init(&v, VZ_DEPTH_TRUE, 0);
    v.sel_l = 1;
    v.sel_h = 0;
    v.metric = VZ_OV_DRIFT;
    snprintf(v.drift_snap, sizeof v.drift_snap, "s1");
    vz_data d;
    vz_data_init(&d);
    vz_select sel = vz_view_select(&v);
    CHECK(vz_data_update(&d, &src, &sel) == 0 && d.rec_ok, "B: data for L1.H0 at position %lld, record of that step",
          (long long)d.position);
    check_numbers(&r, &d, "B L1.H0");

    panel("B-tokens", VZ_P_TOKENS, 60, 4, &v, &d, &ch);
    depths_overview(&v, &d, &ch);
    panel("B-zoom-L1.H0", VZ_P_ZOOM, 80, 38, &v, &d, &ch);    /* 64x64 in 64 columns x 32 rows */
    panel("B-next", VZ_P_TOPK, 30, 9, &v, &d, &ch);
    panel("B-colorbar", VZ_P_BAR, 60, 1, &v, &d, &ch);
    panel("B-output", VZ_P_LOG, 40, 7, &v, &d, &ch);
    panel("B-status", VZ_P_STATUS, 100, 1, &v, &d, &ch);
    panel("B-cmdline", VZ_P_CMD, 30, 1, &v, &d, &ch);

    /* the SSE view of layer 0, with the ranking over both SSE heads */
    v.zoom = VZ_ZOOM_SSE;
    v.sel_l = 0;
    sel = vz_view_select(&v);
    vz_data_update(&d, &src, &sel);
    check_numbers(&r, &d, "B sse 0");
    v.depth = VZ_DEPTH_256;                 /* (one panel per depth keeps the files small) */
    panel("B-zoom-sse0-256", VZ_P_ZOOM, 100, 30, &v, &d, &ch);
    v.depth = VZ_DEPTH_TRUE;

    /* ‖ΔS‖ of the last step */
    v.metric = VZ_OV_DELTA;
    sel = vz_view_select(&v);
    vz_data_update(&d, &src, &sel);
    double worst = 0;
    /* recompute the last step from the state before it */
    {
        const ms_config *c = &r.m->cfg;
        float *st = malloc(ms_state_len(c) * sizeof(float));
        float *lg2 = malloc((size_t)c->vocab * sizeof(float));
        memcpy(st, r.rec->prev, ms_state_len(c) * sizeof(float));
        ms_err err;
        ms_step(r.m, r.ws, st, st, r.tokens[r.n_tokens - 1], lg2, NULL, &err);
        int same = !memcmp(st, r.state, ms_state_len(c) * sizeof(float));
        for (int l = 0; l < c->n_layer; l++)
            for (int h = 0; h < c->n_head; h++) {
                const float *a = ms_state_S(c, r.state, l) + (size_t)h * 4096, *b = ms_state_S(c, r.rec->prev, l) + (size_t)h * 4096;
                double s = 0;
                for (int i = 0; i < 4096; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
                double rel = fabs(sqrt(s) - d.ov[l * c->n_head + h]) / (sqrt(s) + 1e-30);
                if (rel > worst) worst = rel;
            }
        CHECK(same && d.metric == VZ_OV_DELTA && worst < 1e-6,
              "B: |dS| of the last token: the kept state before it steps to the state after it (memcmp), "
              "norms vs double: worst relative diff %.2g", worst);
        free(st);
        free(lg2);
    }
    panel("B-overview-delta", VZ_P_OVERVIEW, 30, 7, &v, &d, &ch);

    /* whole frames in every depth, then the small terminal of the tmux test */
    v.zoom = VZ_ZOOM_HEAD;
    v.sel_l = 1;
    v.sel_h = 0;
    v.metric = VZ_OV_NORM;
    sel = vz_view_select(&v);
    vz_data_update(&d, &src, &sel);
    for (size_t k = 0; k < sizeof depths / sizeof depths[0]; k++) {
        vz_view fv;
        vz_view_init(&fv, depths[k].d, 0);
        fv.sel_l = 1;
        char name[64];
        snprintf(name, sizeof name, "B-frame-100x40-%s", depths[k].name);
        frame(name, 100, 40, &fv, &d, &ch);
        vz_view_free(&fv);
    }
    vz_view fv;
    vz_view_init(&fv, VZ_DEPTH_256, 0);
    fv.sel_l = 1;
    frame("B-frame-40x12-256", 40, 12, &fv, &d, &ch);
    vz_view_init(&fv, VZ_DEPTH_MONO, 1);   /* a non-UTF-8 locale: ASCII only */
    fv.sel_l = 1;
    frame("B-frame-80x24-ascii", 80, 24, &fv, &d, &ch);
    {
        vz_grid *g = vz_grid_new(80, 24);
        int cx, cy, ascii = 1;
        vz_view_draw(g, &fv, &d, &ch, &cx, &cy);
        for (int i = 0; i < g->w * g->h; i++)
            for (const unsigned char *p = (const unsigned char *)g->cells[i].ch; *p; p++)
                if (*p >= 0x80) ascii = 0;
        CHECK(ascii, "ASCII mode (non-UTF-8 locale): every glyph of an 80x24 frame is ASCII");
        vz_grid_free(g);
    }
    vz_view_free(&fv);

    check_rects(&v, &d, &ch);
    check_keys(&d);

    vz_view_free(&v);
    vz_data_free(&d);
    vz_log_free(lg);
    run_close(&r);
}

static void test_model_tiny(void)
{
    const char *fx = getenv("MS_FIXTURES");
    char path[512];
    snprintf(path, sizeof path, "%s/tiny-rwkv-7v0-834K-FP32.bin", fx ? fx : "tests/fixtures");
    run r;
    if (run_open(&r, path) != 0) { CHECK(0, "open %s", path); run_close(&r); return; }
    run_feed(&r, 8);
    vz_source src = run_source(&r);
    src.model_name = "tiny-rwkv-7v0-834K-FP32.bin";
    vz_view v;
    vz_view_init(&v, VZ_DEPTH_256, 0);
    v.sel_l = 0;
    v.sel_h = 1;
    v.metric = VZ_OV_DRIFT;
    vz_data d;
    vz_data_init(&d);
    vz_select sel = vz_view_select(&v);
    vz_data_update(&d, &src, &sel);
    check_numbers(&r, &d, "tiny L0.H1");
    vz_chrome ch = {"main:64> ", "", 0, NULL, "", NULL, 0};
    v.depth = VZ_DEPTH_16;
    panel("tiny-zoom-L0.H1-16", VZ_P_ZOOM, 72, 36, &v, &d, &ch);
    v.zoom = VZ_ZOOM_SSE;
    sel = vz_view_select(&v);
    vz_data_update(&d, &src, &sel);
    panel("tiny-zoom-sse", VZ_P_ZOOM, 72, 4, &v, &d, &ch);
    CHECK(d.n_ptok == 0, "tiny (no SSE heads): no parameter tokens");
    vz_data_free(&d);
    vz_view_free(&v);
    run_close(&r);
}

int main(int argc, char **argv)
{
    char path[512];
    if (argc > 1) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        const char *py = getenv("PYTHON");
        mkdir("build", 0755);
        mkdir("build/tmp", 0755);
        snprintf(path, sizeof path, "build/tmp/viz-panels-B.safetensors");
        struct stat sm, sp;
        int fresh = stat(path, &sm) == 0 && stat("scripts/make_random.py", &sp) == 0 && sm.st_mtime >= sp.st_mtime;
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "%s scripts/make_random.py --layers 2 --embd 128 --heads 2 --head-size 64 --ptok 300 "
                 "--sse-heads 2 --lora 16,12,8,20 --vocab 256 --tokenizer bytes --seed 2 %s >/dev/null",
                 py && *py ? py : "/usr/bin/python3", path);
        if (!fresh && system(cmd) != 0) {
            CHECK(0, "make the model: %s", cmd);
            return check_done("test_viz_panels");
        }
    }
    test_model_B(path);
    test_model_tiny();
    return check_done("test_viz_panels");
}
