/* cmd_view.c: `view`, `scale`, `export … .png`, and the session-to-view glue
 * (see cmd_view.h).
 *
 * Every handler checks all of its words before it changes anything; a bad
 * word gets one line that says what is valid.  Images are written by
 * viz/png_export.c (truecolor whatever the terminal, atomically).
 */
#include "cmd_view.h"

#include "args.h"
#include "heatmap.h"
#include "png_export.h"
#include "target.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cmdv {
    cmd_env *e;
    vz_view view;
    vz_rec *rec;
    vz_data data;
    int have_data;
    unsigned long steps;         /* watched steps */
    unsigned long data_steps;    /* steps when the data was computed */
    vz_select data_sel;
    int live;
    void (*step_fn)(void *ctx);
    void *step_ctx;
    /* the point a watched step advances: the current one, or the scratch
     * point that goto, switch and replay step and then make current */
    const sess_point *stepping, *last_stepped;
    int *tail;                   /* (VZ_TAIL) token ids for the stream panel */
};

#define VZ_TAIL 600

/* ---- the watch hook ---- */

static const ms_config *cmdv_cfg(cmdv *v) { return &v->e->s->model->cfg; }

/* the record, made again when the model's shape changed (load) */
static vz_rec *cmdv_rec(cmdv *v)
{
    if (!v->e->s->model) return NULL;
    const ms_config *c = cmdv_cfg(v);
    if (v->rec && vz_rec_fits(v->rec, c)) return v->rec;
    vz_rec_free(v->rec);
    v->rec = vz_rec_new(c);
    return v->rec;
}

/* which point holds the state the observer's S points into */
static const sess_point *cmdv_point_of(const sess *s, const float *S)
{
    size_t n = ms_state_len(&s->model->cfg);
    if (s->cur.state && S >= s->cur.state && S < s->cur.state + n) return &s->cur;
    if (s->tmp.state && S >= s->tmp.state && S < s->tmp.state + n) return &s->tmp;
    return NULL;
}

static void cmdv_observe(void *ctx, const ms_trace *t)
{
    cmdv *v = ctx;
    if (t->layer == 0) v->stepping = cmdv_point_of(v->e->s, t->S);
    if (v->rec) vz_rec_observe(v->rec, t);
}

static void cmdv_before(void *ctx)
{
    cmdv *v = ctx;
    sess *s = v->e->s;
    vz_rec *r = cmdv_rec(v);
    if (!r) return;
    r->track_delta = v->view.metric == VZ_OV_DELTA;
    /* the point is known only once the step reaches the observer: guess the
     * one stepped last (vz_rec_after refuses a wrong guess) */
    const sess_point *p = v->last_stepped == &s->tmp && s->tmp.state ? &s->tmp : &s->cur;
    vz_rec_before(r, p->state);
}

static void cmdv_after(void *ctx)
{
    cmdv *v = ctx;
    sess *s = v->e->s;
    const sess_point *p = v->stepping ? v->stepping : &s->cur;
    if (v->rec) vz_rec_after(v->rec, &s->model->cfg, p->state, p->position);
    v->steps++;
    v->last_stepped = p;
    if (v->step_fn) v->step_fn(v->step_ctx);   /* cmdv_data shows p meanwhile */
    v->stepping = NULL;
}

cmdv *cmdv_get(cmd_env *e)
{
    if (e->view) return e->view;
    cmdv *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->e = e;
    vz_view_init(&v->view, VZ_DEPTH_MONO, 0);
    vz_data_init(&v->data);
    e->view = v;
    sess_watch w = { { cmdv_observe, v }, cmdv_before, cmdv_after, v };
    e->s->watch = w;
    return v;
}

void cmdv_free(cmd_env *e)
{
    cmdv *v = e->view;
    if (!v) return;
    memset(&e->s->watch, 0, sizeof e->s->watch);
    vz_rec_free(v->rec);
    free(v->tail);
    vz_data_free(&v->data);
    vz_view_free(&v->view);
    free(v);
    e->view = NULL;
}

vz_view *cmdv_view(cmdv *v) { return &v->view; }
void cmdv_set_live(cmdv *v, int live) { v->live = live; }
unsigned long cmdv_steps(const cmdv *v) { return v->steps; }

void cmdv_set_step_hook(cmdv *v, void (*fn)(void *ctx), void *ctx)
{
    v->step_fn = fn;
    v->step_ctx = ctx;
}

static const char *cmdv_basename(const char *p)
{
    const char *b = p ? strrchr(p, '/') : NULL;
    return b ? b + 1 : p ? p : "";
}

const vz_data *cmdv_data(cmdv *v, int force)
{
    sess *s = v->e->s;
    if (!s->model) return v->have_data ? &v->data : NULL;
    const ms_config *c = cmdv_cfg(v);
    vz_view_clamp(&v->view, c->n_layer, c->n_head);
    vz_select sel = vz_view_select(&v->view);
    if (v->have_data && !force && v->data_steps == v->steps && !memcmp(&sel, &v->data_sel, sizeof sel))
        return &v->data;
    /* during a watched step, the point being stepped (replay's scratch point) */
    const sess_point *p = v->stepping ? v->stepping : &s->cur;
    if (!v->tail && !(v->tail = malloc(VZ_TAIL * sizeof(int)))) return v->have_data ? &v->data : NULL;
    vz_source src;
    memset(&src, 0, sizeof src);
    src.model = s->model;
    src.tok = s->tok;
    src.state = p->state;
    src.logits = p->logits;
    src.has_logits = p->has_logits;
    src.tokens = v->tail;
    src.n_tokens = sess_hist_tail(sess_cur_hist(s), v->tail, VZ_TAIL);
    src.position = p->position;
    src.branch = s->branch;
    src.edited = sess_edited(s);
    if (v->view.drift_snap[0]) {
        int i = sess_snap_find(s, v->view.drift_snap);
        src.drift_state = i >= 0 ? s->snaps[i].pt.state : NULL;
        src.drift_name = v->view.drift_snap;
    }
    src.rec = cmdv_rec(v);
    src.model_name = cmdv_basename(s->model->path);
    vz_data_update(&v->data, &src, &sel);
    v->have_data = 1;
    v->data_steps = v->steps;
    v->data_sel = sel;
    return &v->data;
}

/* ---- line mode: a panel as text ---- */

static void cmdv_print_grid(cmd_env *e, const vz_grid *g)
{
    char *line = malloc((size_t)g->w * 4 + 1);
    if (!line) return;
    for (int y = 0; y < g->h; y++) {
        size_t n = 0, keep = 0;
        for (int x = 0; x < g->w; x++) {
            const vz_cell *c = vz_grid_cat(g, x, y);
            size_t k = strlen(c->ch);
            memcpy(line + n, c->ch, k);
            n += k;
            if (k && !(k == 1 && c->ch[0] == ' ')) keep = n;
        }
        line[keep] = 0;
        out_text(e->o, "%s", line);
    }
    free(line);
}

/* Draw panel id into a w×h grid in monochrome and print it. */
static void cmdv_print_panel(cmdv *v, vz_panel_id id, int w, int h)
{
    const vz_data *d = cmdv_data(v, 1);
    vz_grid *g = vz_grid_new(w, h);
    if (!d || !g) { vz_grid_free(g); return; }
    vz_depth dep = v->view.depth;
    int focus = v->view.focus;
    v->view.depth = VZ_DEPTH_MONO;
    v->view.focus = VZ_P_CMD;
    vz_panel_draw(id, g, (vz_rect){0, 0, w, h}, &v->view, d, NULL);
    v->view.depth = dep;
    v->view.focus = focus;
    cmdv_print_grid(v->e, g);
    vz_grid_free(g);
}

/* ---- view ---- */

/* "3", "L3" or "l3" as a layer number; -1 if it is not one */
static long cmdv_layer_word(const char *w, long L)
{
    long x;
    if (*w == 'L' || *w == 'l') w++;
    return arg_long(w, 0, L - 1, &x) == 0 ? x : -1;
}

/* "L3.H1", "3.1" (any case) into layer and head; -1 on a bad form */
static int cmdv_head_word(const char *w, long *l, long *h)
{
    char a[32], b[32];
    const char *dot = strchr(w, '.');
    if (!dot || (size_t)(dot - w) >= sizeof a || strlen(dot + 1) >= sizeof b) return -1;
    snprintf(a, sizeof a, "%.*s", (int)(dot - w), w);
    snprintf(b, sizeof b, "%s", dot + 1);
    const char *pa = a, *pb = b;
    if (*pa == 'L' || *pa == 'l') pa++;
    if (*pb == 'H' || *pb == 'h') pb++;
    if (arg_long(pa, 0, 1L << 30, l) != 0 || arg_long(pb, 0, 1L << 30, h) != 0) return -1;
    return 0;
}

static const char *cmdv_metric_name(vz_ov_metric m)
{
    return m == VZ_OV_DELTA ? "delta" : m == VZ_OV_DRIFT ? "drift" : "norm";
}

static void cmdv_snap_list(const sess *s, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int k = 0; k < s->n_snaps && len + 8 < cap; k++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", k ? ", " : "", s->snaps[k].name);
    if (!s->n_snaps) snprintf(buf, cap, "none; 'snap' makes one");
}

static int cmdv_view_cmd(cmd_env *e, int argc, char **argv, ms_err *err)
{
    cmdv *v = cmdv_get(e);
    if (!v) { ms_seterr(err, "out of memory"); return -1; }
    const ms_config *c = &e->s->model->cfg;
    char q[200];
    const char *what = argv[0];
    cJSON *o = out_obj(e->o);
    if (!strcmp(what, "overview")) {
        vz_ov_metric m = v->view.metric;
        const char *snap = NULL;
        if (argc >= 2) {
            if (!strcmp(argv[1], "norm")) m = VZ_OV_NORM;
            else if (!strcmp(argv[1], "delta")) m = VZ_OV_DELTA;
            else if (!strcmp(argv[1], "drift")) m = VZ_OV_DRIFT;
            else {
                ms_seterr(err, "'%s' is not a metric: norm (|S| per head), delta (|S - S before the last token|) "
                          "or drift SNAP (|S - S of snapshot SNAP|)", arg_quote(argv[1], q, sizeof q));
                return -1;
            }
            if (m == VZ_OV_DRIFT) {
                if (argc < 3) { ms_seterr(err, "drift needs a snapshot: view overview drift SNAP"); return -1; }
                if (sess_snap_find(e->s, argv[2]) < 0) {
                    char list[300];
                    cmdv_snap_list(e->s, list, sizeof list);
                    ms_seterr(err, "no snapshot '%s' (snapshots: %s)", arg_quote(argv[2], q, sizeof q), list);
                    return -1;
                }
                snap = argv[2];
            } else if (argc > 2) {
                ms_seterr(err, "'%s' takes no snapshot (only drift does)", argv[1]);
                return -1;
            }
        }
        v->view.metric = m;
        if (snap) snprintf(v->view.drift_snap, sizeof v->view.drift_snap, "%s", snap);
        v->view.hidden[VZ_P_OVERVIEW] = 0;
        const vz_data *d = cmdv_data(v, 1);
        cJSON_AddStringToObject(o, "view", "overview");
        cJSON_AddStringToObject(o, "metric", cmdv_metric_name(d->metric));
        cJSON *rows = cJSON_AddArrayToObject(o, "values");
        for (int l = 0; l < d->L; l++) {
            cJSON *r = cJSON_CreateArray();
            for (int h = 0; h < d->H; h++)
                cJSON_AddItemToArray(r, cJSON_CreateNumber(d->ov[(size_t)l * (size_t)d->H + (size_t)h]));
            cJSON_AddItemToArray(rows, r);
        }
        if (d->ov_note[0]) cJSON_AddStringToObject(o, "note", d->ov_note);
        if (v->live) {
            out_text(e->o, "overview: %s%s%s", d->ov_label, d->ov_note[0] ? "; " : "", d->ov_note);
            return 0;
        }
        cmdv_print_panel(v, VZ_P_OVERVIEW, 78, d->L + 4);
        /* the numbers, which glyphs only hint at */
        char line[4096];
        int k = snprintf(line, sizeof line, "%4s", "");
        for (int h = 0; h < d->H && k < (int)sizeof line - 16; h++) k += snprintf(line + k, sizeof line - (size_t)k, " %9s%d", "H", h);
        out_text(e->o, "%s", line);
        for (int l = 0; l < d->L; l++) {
            k = snprintf(line, sizeof line, "L%-3d", l);
            for (int h = 0; h < d->H && k < (int)sizeof line - 16; h++)
                k += snprintf(line + k, sizeof line - (size_t)k, " %10.4g", d->ov[(size_t)l * (size_t)d->H + (size_t)h]);
            out_text(e->o, "%s", line);
        }
        return 0;
    }
    if (!strcmp(what, "sse")) {
        if (argc != 2) { ms_seterr(err, "usage: view sse L (a layer 0..%d)", c->n_layer - 1); return -1; }
        long l = cmdv_layer_word(argv[1], c->n_layer);
        if (l < 0) {
            ms_seterr(err, "'%s' is not a layer: 0..%d (or L0..L%d)", arg_quote(argv[1], q, sizeof q),
                      c->n_layer - 1, c->n_layer - 1);
            return -1;
        }
        if (c->sse_heads < 1) {
            ms_seterr(err, "this model has no SSE heads (a plain RWKV-7 model): 'view L.H' shows a head");
            return -1;
        }
        v->view.sel_l = (int)l;
        if (v->view.sel_h >= c->sse_heads) v->view.sel_h = 0;
        v->view.zoom = VZ_ZOOM_SSE;
        v->view.hidden[VZ_P_ZOOM] = 0;
        const vz_data *d = cmdv_data(v, 1);
        cJSON_AddStringToObject(o, "view", "sse");
        cJSON_AddNumberToObject(o, "layer", (double)l);
        cJSON_AddNumberToObject(o, "sse_heads", c->sse_heads);
        cJSON_AddBoolToObject(o, "recorded", d->rec_ok);
        if (d->n_ptok) {
            cJSON *a = cJSON_AddArrayToObject(o, "top_ks_e"), *b = cJSON_AddArrayToObject(o, "top_relu_s2");
            for (int i = 0; i < d->n_ptok; i++) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddNumberToObject(x, "j", d->by_ks[i].id);
                cJSON_AddNumberToObject(x, "value", d->by_ks[i].val);
                cJSON_AddItemToArray(a, x);
                x = cJSON_CreateObject();
                cJSON_AddNumberToObject(x, "j", d->by_s2[i].id);
                cJSON_AddNumberToObject(x, "value", d->by_s2[i].val);
                cJSON_AddItemToArray(b, x);
            }
        }
        if (v->live) {
            out_text(e->o, "view: the %d SSE heads of layer %ld%s", c->sse_heads, l,
                     d->rec_ok ? "" : " (q, e: feed a token to record them)");
            return 0;
        }
        int rows = (c->head_size + 1) + 6;
        cmdv_print_panel(v, VZ_P_ZOOM, 2 + c->sse_heads * (c->head_size + 8), rows);
        return 0;
    }
    long l, h;
    if (argc != 1 || cmdv_head_word(what, &l, &h) != 0) {
        ms_seterr(err, "'%s' is not a view: overview [norm|delta|drift SNAP], L.H (a head, e.g. L0.H1 or 0.1) "
                  "or sse L", arg_quote(what, q, sizeof q));
        return -1;
    }
    if (l >= c->n_layer || h >= c->n_head) {
        ms_seterr(err, "no head %s: layers 0..%d, heads 0..%d", arg_quote(what, q, sizeof q), c->n_layer - 1,
                  c->n_head - 1);
        return -1;
    }
    v->view.sel_l = (int)l;
    v->view.sel_h = (int)h;
    v->view.zoom = VZ_ZOOM_HEAD;
    v->view.hidden[VZ_P_ZOOM] = 0;
    const vz_data *d = cmdv_data(v, 1);
    const float *S = ms_state_S(c, e->s->cur.state, (int)l) + (size_t)h * (size_t)c->head_size * c->head_size;
    size_t nn = (size_t)c->head_size * (size_t)c->head_size;
    double sum = 0, mx = 0;
    for (size_t i = 0; i < nn; i++) {
        sum += (double)S[i] * S[i];
        if (fabs(S[i]) > mx) mx = fabs(S[i]);
    }
    char name[32];
    snprintf(name, sizeof name, "L%ld.H%ld", l, h);
    cJSON_AddStringToObject(o, "view", name);
    cJSON_AddBoolToObject(o, "sse_head", h < c->sse_heads);
    cJSON_AddNumberToObject(o, "norm", sqrt(sum));
    cJSON_AddNumberToObject(o, "max_abs", mx);
    cJSON_AddBoolToObject(o, "recorded", d->rec_ok);
    if (v->live) {
        out_text(e->o, "view: %s%s, |S| %.4g, max |S| %.4g", name, h < c->sse_heads ? " (SSE head)" : "", sqrt(sum), mx);
        return 0;
    }
    cmdv_print_panel(v, VZ_P_ZOOM, c->head_size + 10 < 80 ? 80 : c->head_size + 10, c->head_size + 6);
    return 0;
}

/* ---- scale ---- */

static int cmdv_scale_cmd(cmd_env *e, int argc, char **argv, ms_err *err)
{
    cmdv *v = cmdv_get(e);
    if (!v) { ms_seterr(err, "out of memory"); return -1; }
    char q[200];
    if (argc == 1) {
        vz_scale_mode m;
        if (vz_scale_parse(argv[0], &m) != 0) {
            ms_seterr(err, "'%s' is not a scale: auto (min..max), lock (keep the current range), sym (-M..M), "
                      "log (sign-log over -M..M), p99 (the 99th percentile of |x|)", arg_quote(argv[0], q, sizeof q));
            return -1;
        }
        if (m == VZ_SCALE_LOCK) cmdv_data(v, 0);   /* lock the range now on screen */
        vz_view_set_scale(&v->view, m);
    }
    vz_scale *z = &v->view.zs;
    if (z->has_range)
        out_text(e->o, "scale %s: heatmaps span %.4g .. %.4g%s", vz_scale_name(z->mode), z->lo, z->hi,
                 z->mode == VZ_SCALE_LOCK ? " (locked)" : " (refitted every frame)");
    else
        out_text(e->o, "scale %s", vz_scale_name(z->mode));
    cJSON *o = out_obj(e->o);
    cJSON_AddStringToObject(o, "scale", vz_scale_name(z->mode));
    if (z->has_range) {
        cJSON_AddNumberToObject(o, "lo", z->lo);
        cJSON_AddNumberToObject(o, "hi", z->hi);
    }
    return 0;
}

/* ---- export .png ---- */

/* the exported data's scale: the view's mode, fitted over what is exported
 * (a locked range stays as it is) */
static void cmdv_fit(const cmdv *v, vz_scale *s, vz_map_kind map, const float *x, size_t n)
{
    vz_scale_mode m = v->view.zs.mode;
    if (m == VZ_SCALE_LOCK && v->view.zs.has_range && map == VZ_MAP_DIVERGING) {
        *s = v->view.zs;
        return;
    }
    vz_scale_init(s, map, m == VZ_SCALE_LOCK ? VZ_SCALE_AUTO : m);
    vz_scale_fit(s, x, n);
}

/* pixels per value: about 512 pixels for the largest side, 1..16 */
static int cmdv_factor(int side)
{
    int f = side > 0 ? 512 / side : 1;
    return f < 1 ? 1 : f > 16 ? 16 : f;
}

/* One head (rows×cols) at (x, y) with, when q/e are given, q under it and
 * e_raw, e right of it (each vector on its own symmetric scale). */
static void cmdv_img_head(vz_img *im, int x, int y, const float *S, int N, const vz_scale *s, int f,
                          const float *q, const float *er, const float *e)
{
    vz_img_matrix(im, x, y, S, N, N, 0, s, f);
    if (!q) return;
    vz_scale vs;
    vz_scale_init(&vs, VZ_MAP_DIVERGING, VZ_SCALE_SYM);
    vz_scale_fit(&vs, q, (size_t)N);
    vz_img_matrix(im, x, y + N * f + f, q, 1, N, 0, &vs, f);
    vz_scale_fit(&vs, er, (size_t)N);             /* e_raw and e: strips 2f wide */
    for (int i = 0; i < N; i++)
        vz_img_fill(im, x + N * f + f, y + i * f, 2 * f, f, vz_scale_color(&vs, VZ_DEPTH_TRUE, er[i]));
    vz_scale_fit(&vs, e, (size_t)N);
    for (int i = 0; i < N; i++)
        vz_img_fill(im, x + N * f + 4 * f, y + i * f, 2 * f, f, vz_scale_color(&vs, VZ_DEPTH_TRUE, e[i]));
}

static int cmdv_export_png(cmd_env *e, const char *target, const char *path, ms_err *err)
{
    cmdv *v = cmdv_get(e);
    if (!v) { ms_seterr(err, "out of memory"); return -1; }
    sess *ss = e->s;
    const ms_config *c = &ss->model->cfg;
    const vz_data *d = cmdv_data(v, 1);
    int N = c->head_size, L = c->n_layer, H = c->n_head, Hs = c->sse_heads;
    size_t nn = (size_t)N * (size_t)N;
    vz_scale s;
    vz_img *im = NULL;
    char what[64], comment[400];
    float *buf = NULL;
    if (!strcmp(target, "view") && d->sel.zoom == VZ_ZOOM_SSE && Hs > 0) {
        /* the layer's SSE heads side by side, each with q under and e_raw, e right */
        int l = d->sel.layer, f = cmdv_factor(N * Hs + 8 * Hs);
        const float *S0 = ms_state_S(c, ss->cur.state, l);
        cmdv_fit(v, &s, VZ_MAP_DIVERGING, S0, (size_t)Hs * nn);
        int bw = N * f + 7 * f, W = Hs * bw + (Hs - 1) * 2 * f, Hh = N * f + 3 * f + 3 * f;
        if (!(im = vz_img_new(W, Hh, 0xffffff, err))) return -1;
        for (int h = 0; h < Hs; h++) {
            size_t off = ((size_t)l * (size_t)Hs + (size_t)h) * (size_t)N;
            cmdv_img_head(im, h * (bw + 2 * f), 0, S0 + (size_t)h * nn, N, &s, f,
                          d->rec_ok ? d->rec->q + off : NULL, d->rec_ok ? d->rec->e_raw + off : NULL,
                          d->rec_ok ? d->rec->e + off : NULL);
        }
        vz_img_colorbar(im, 0, Hh - 2 * f, W, 2 * f, VZ_MAP_DIVERGING);
        snprintf(what, sizeof what, "sse %d", l);
    } else if (!strcmp(target, "view") || !strcmp(target, "overview")) {
        if (!strcmp(target, "overview")) {
            /* the layer × head grid of the overview's metric, SSE tiles marked */
            int f = cmdv_factor(L > H ? L : H);
            if (f < 8) f = 8;
            cmdv_fit(v, &s, VZ_MAP_SEQUENTIAL, d->ov, (size_t)L * (size_t)H);
            if (!(im = vz_img_new(H * f, L * f + 3 * f, 0xffffff, err))) return -1;
            vz_img_matrix(im, 0, 0, d->ov, L, H, 0, &s, f);
            for (int l = 0; l < L; l++)
                for (int h = 0; h < Hs && h < H; h++)   /* a white corner marks an SSE head */
                    vz_img_fill(im, h * f, l * f, f / 4 > 1 ? f / 4 : 1, f / 4 > 1 ? f / 4 : 1, 0xffffff);
            vz_img_colorbar(im, 0, L * f + f, H * f, 2 * f, VZ_MAP_SEQUENTIAL);
            snprintf(what, sizeof what, "overview %s", cmdv_metric_name(d->metric));
        } else {
            /* the zoomed head, with q and e for an SSE head */
            int l = d->sel.layer, h = d->sel.head, sse = h < Hs, f = cmdv_factor(N + (sse ? 7 : 0));
            const float *S = ms_state_S(c, ss->cur.state, l) + (size_t)h * nn;
            cmdv_fit(v, &s, VZ_MAP_DIVERGING, S, nn);
            int W = N * f + (sse ? 7 * f : 0), Hh = N * f + (sse ? 3 * f : 0) + 3 * f;
            if (!(im = vz_img_new(W, Hh, 0xffffff, err))) return -1;
            size_t off = ((size_t)l * (size_t)Hs + (size_t)h) * (size_t)N;
            int rec = sse && d->rec_ok;
            cmdv_img_head(im, 0, 0, S, N, &s, f, rec ? d->rec->q + off : NULL, rec ? d->rec->e_raw + off : NULL,
                          rec ? d->rec->e + off : NULL);
            vz_img_colorbar(im, 0, Hh - 2 * f, N * f, 2 * f, VZ_MAP_DIVERGING);
            snprintf(what, sizeof what, "L%d.H%d", l, h);
        }
    } else {
        tgt t;
        char msg[sizeof err->msg];
        if (tgt_parse(c, target, &t, msg, sizeof msg) != 0) {
            ms_seterr(err, "%s (or: view, overview)", msg);
            return -1;
        }
        tgt_name(&t, what, sizeof what);
        if (t.kind == TGT_HEAD && t.ndim == 2) {
            int f = cmdv_factor(N);
            const float *S = ms_state_S(c, ss->cur.state, t.layer) + (size_t)t.head * nn;
            cmdv_fit(v, &s, VZ_MAP_DIVERGING, S, nn);
            if (!(im = vz_img_new(N * f, N * f + 3 * f, 0xffffff, err))) return -1;
            vz_img_matrix(im, 0, 0, S, N, N, 0, &s, f);
            vz_img_colorbar(im, 0, N * f + f, N * f, 2 * f, VZ_MAP_DIVERGING);
        } else if (t.kind == TGT_LAYER || t.kind == TGT_ALL) {
            /* heads tiled, a layer's heads side by side; k layers a row, k
             * chosen so that the picture is about square (L12 H1: 3 a row) */
            int l0 = t.kind == TGT_LAYER ? t.layer : 0, nl = t.kind == TGT_LAYER ? 1 : L;
            int k = (int)lround(sqrt((double)nl / H));
            if (k < 1) k = 1;
            if (k > nl) k = nl;
            int rows_l = (nl + k - 1) / k;
            int f = cmdv_factor(N * H * k > N * rows_l ? N * H * k : N * rows_l), gap = f > 2 ? f : 2;
            vz_scale_init(&s, VZ_MAP_DIVERGING, VZ_SCALE_AUTO);
            if (v->view.zs.mode == VZ_SCALE_LOCK && v->view.zs.has_range) s = v->view.zs;
            else {
                /* fit over all the heads shown: S is contiguous within a layer only */
                size_t tot = (size_t)nl * (size_t)H * nn;
                buf = malloc(tot * sizeof(float));
                if (!buf) { ms_seterr(err, "out of memory"); return -1; }
                for (int l = 0; l < nl; l++)
                    memcpy(buf + (size_t)l * H * nn, ms_state_S(c, ss->cur.state, l0 + l), (size_t)H * nn * sizeof(float));
                cmdv_fit(v, &s, VZ_MAP_DIVERGING, buf, tot);
            }
            int cols = k * H, bgap = 3 * gap;   /* a wider gap between layers than between heads */
            int W = cols * N * f + (cols - 1) * gap + (k - 1) * (bgap - gap);
            int Hh = rows_l * N * f + (rows_l - 1) * bgap + 3 * f;
            if (!(im = vz_img_new(W, Hh, 0xffffff, err))) { free(buf); return -1; }
            for (int l = 0; l < nl; l++)
                for (int h = 0; h < H; h++) {
                    int col = (l % k) * H + h;
                    int x = col * (N * f + gap) + (l % k) * (bgap - gap), y = (l / k) * (N * f + bgap);
                    vz_img_matrix(im, x, y, ms_state_S(c, ss->cur.state, l0 + l) + (size_t)h * nn, N, N, 0, &s, f);
                }
            vz_img_colorbar(im, 0, Hh - 2 * f, W, 2 * f, VZ_MAP_DIVERGING);
        } else {
            /* a vector (a row, a column, att_x, ffn_x) or one entry: one row of values */
            size_t n = tgt_size(&t);
            buf = malloc((n ? n : 1) * sizeof(float));
            if (!buf) { ms_seterr(err, "out of memory"); return -1; }
            tgt_get(&t, ss->cur.state, buf);
            int f = cmdv_factor((int)n);
            if (f < 4) f = 4;
            cmdv_fit(v, &s, VZ_MAP_DIVERGING, buf, n);
            if (!(im = vz_img_new((int)n * f, 4 * f, 0xffffff, err))) { free(buf); return -1; }
            vz_img_matrix(im, 0, 0, buf, 1, (int)n, 0, &s, f);
            vz_img_colorbar(im, 0, 2 * f, (int)n * f, 2 * f, VZ_MAP_DIVERGING);
        }
    }
    free(buf);
    snprintf(comment, sizeof comment,
             "metastate export %s at position %" PRId64 " of %s: scale=%s map=%s lo=%.9g hi=%.9g log_t=%.9g; "
             "q and e strips on their own symmetric scales; nonfinite=#ff00ff", what, ss->cur.position,
             cmdv_basename(ss->model->path), vz_scale_name(s.mode),
             s.map == VZ_MAP_DIVERGING ? "diverging" : "sequential", s.lo, s.hi, s.log_t);
    int rc = vz_img_write(im, path, comment, err);
    int w = im->w, hh = im->h;
    vz_img_free(im);
    if (rc != 0) return -1;
    char qp[600];
    out_text(e->o, "wrote %s: %s, %d x %d pixels, scale %s %.4g .. %.4g", arg_quote(path, qp, sizeof qp), what,
             w, hh, vz_scale_name(s.mode), s.lo, s.hi);
    cJSON *o = out_obj(e->o);
    out_add_str(o, "path", path, strlen(path));
    cJSON_AddStringToObject(o, "target", what);
    cJSON_AddNumberToObject(o, "width", w);
    cJSON_AddNumberToObject(o, "height", hh);
    cJSON_AddStringToObject(o, "scale", vz_scale_name(s.mode));
    cJSON_AddNumberToObject(o, "lo", s.lo);
    cJSON_AddNumberToObject(o, "hi", s.hi);
    return 0;
}

const cmd_view_ops cmdv_ops = { cmdv_view_cmd, cmdv_scale_cmd, cmdv_export_png };
