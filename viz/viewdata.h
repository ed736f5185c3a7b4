/* viewdata.h: what the full-screen view shows, computed from plain inputs.
 *
 * What it is: two things the panels read.
 * - vz_rec, the observer record: an ms_observer (vz_rec_observe) that copies
 *   the Self-State Encoder's intermediates of each step (q, e before and
 *   after sse_ln, and the scores s, per layer) out of the workspace, and,
 *   when asked, ‖ΔS‖ per head since the state before the step.  The caller
 *   calls vz_rec_before() before a step and vz_rec_after() after it (the
 *   session's watch hook does both), so the record always says which
 *   position it belongs to; a record whose position is not the current one
 *   is stale (the point was restored, edited or reset since) and is not
 *   shown.
 * - vz_data, one frame's worth of derived numbers: the decoded tail of the
 *   token stream, the top-k next tokens, the overview metric per layer and
 *   head (‖S‖, ‖ΔS‖ or ‖S − S_snap‖), and the parameter tokens the shown
 *   SSE read drives most (MODEL.md 3.2: top j by |Ks_j·e| and by relu(s_j)²).
 *   vz_data_update() recomputes it from a vz_source, which the REPL fills
 *   from its session (and the tests and benchmarks from a bare model), so
 *   nothing in viz/ knows the session.
 *
 * What it is not: a renderer (panels.c) or an owner of the model, the state
 * or the logits; vz_data points at them for one frame and copies only what
 * it derives.
 */
#ifndef VZ_VIEWDATA_H
#define VZ_VIEWDATA_H

#include <stddef.h>
#include <stdint.h>

#include "ms.h"
#include "tokenizer.h"

/* ---- the observer record ---- */

typedef struct {
    int L, H, N, Hs, n;     /* the shape it was made for */
    size_t state_len;
    float *q, *e_raw, *e;   /* (L, Hs*N) of the last step; NULL when Hs = 0 */
    float *s;               /* (L, n) scores against the parameter tokens */
    float *dS;              /* (L, H) ‖S_t − S_{t−1}‖_F per head (track_delta) */
    float *prev;            /* (state_len) the state before the step (track_delta) */
    const float *prev_src;  /* the buffer prev was copied from */
    int track_delta;        /* 1: vz_rec_before copies the state (one copy per step) */
    int delta_ok;           /* dS belongs to the step at pos */
    int64_t pos;            /* position the record belongs to; -1 none */
    int layers_seen;        /* layers observed in the current step */
    uint64_t steps;         /* steps recorded */
} vz_rec;

/* A record for models of config c (all zero; pos -1).  NULL on allocation
 * failure. */
vz_rec *vz_rec_new(const ms_config *c);
void vz_rec_free(vz_rec *r);
/* 1 if r was made for a model of this shape. */
int vz_rec_fits(const vz_rec *r, const ms_config *c);
/* The ms_observer function; ctx is the vz_rec.  Copies q, e_raw, e and s of
 * t->layer (a few kB per layer; S is read from the state, never copied). */
void vz_rec_observe(void *ctx, const ms_trace *t);
/* Around one step of `state` (in place): before copies the state when
 * track_delta is set; after computes dS from that copy (only when it was
 * taken from the same buffer, so a guess of the wrong point before the step
 * gives no ‖ΔS‖ rather than a wrong one) and sets pos. */
void vz_rec_before(vz_rec *r, const float *state);
void vz_rec_after(vz_rec *r, const ms_config *c, const float *state, int64_t position);

/* ---- one frame's data ---- */

#define VZ_TOPK_MAX 16
#define VZ_PTOK_MAX 12
#define VZ_TOKSTR 40

typedef enum { VZ_OV_NORM = 0, VZ_OV_DELTA = 1, VZ_OV_DRIFT = 2 } vz_ov_metric;
typedef enum { VZ_ZOOM_HEAD = 0, VZ_ZOOM_SSE = 1 } vz_zoom_mode;

/* Everything vz_data_update reads; the caller owns all of it. */
typedef struct {
    const ms_model *model;
    const ms_tokenizer *tok;      /* may be NULL: no text, ids shown as numbers */
    const float *state;           /* (ms_state_len) the current point */
    const float *logits;          /* (vocab) valid when has_logits */
    int has_logits;
    const int *tokens;            /* the point's token history (n_tokens) */
    int n_tokens;
    int64_t position;
    const char *branch;           /* may be NULL */
    int edited;                   /* the state differs from what the tokens alone give */
    const float *drift_state;     /* the snapshot for VZ_OV_DRIFT (NULL: none) */
    const char *drift_name;
    const vz_rec *rec;            /* may be NULL */
    const char *model_name;       /* for the status line; may be NULL */
} vz_source;

/* Which part the data is computed for (the view's selection). */
typedef struct {
    int layer, head;              /* the zoomed head (layer also for the SSE view) */
    vz_zoom_mode zoom;
    vz_ov_metric metric;
    int topk;                     /* 1..VZ_TOPK_MAX */
} vz_select;

typedef struct {
    int id;
    float val;                    /* the ranking value (signed for Ks·e) */
} vz_ptok;

typedef struct {
    /* the model and the point, as in the source */
    const ms_model *model;
    int L, H, N, Hs, n, V;
    const float *state;
    int64_t position;
    char branch[64];
    char model_name[96];
    int edited, has_logits, n_tokens;
    /* token stream: the decoded tail of the history, UTF-8 */
    char *text;
    size_t text_len, text_cap;
    int text_cut;                 /* 1: older tokens were left out */
    int *tok_off;                 /* (n_tok_off) byte offset in text where each shown token starts */
    int n_tok_off, cap_tok_off;
    /* next tokens */
    int k;
    int top_id[VZ_TOPK_MAX];
    float top_p[VZ_TOPK_MAX];
    char top_str[VZ_TOPK_MAX][VZ_TOKSTR];
    /* overview: (L, H) values of the metric */
    float *ov;
    vz_ov_metric metric;          /* the metric actually shown (drift/delta fall back to norm) */
    char ov_label[80];            /* "‖S‖", "‖ΔS‖ since the last token", "drift from s1" */
    char ov_note[120];            /* why a requested metric is not shown, or "" */
    /* the record of the last step, when it belongs to this position */
    const vz_rec *rec;
    int rec_ok;
    /* parameter tokens for the selection (SSE only; n_ptok 0 otherwise) */
    int n_ptok;
    vz_ptok by_ks[VZ_PTOK_MAX];   /* by |Ks_j·e| (the head's slice, or all SSE heads) */
    vz_ptok by_s2[VZ_PTOK_MAX];   /* by relu(s_j)² */
    float *scratch;               /* (n + Hs*N) */
    vz_select sel;                /* what it was computed for */
} vz_data;

void vz_data_init(vz_data *d);
void vz_data_free(vz_data *d);

/* Recompute everything from src for the selection sel (clamped to the
 * model).  Returns 0, or -1 on allocation failure (d then holds what could
 * be computed; the panels show what is missing). */
int vz_data_update(vz_data *d, const vz_source *src, const vz_select *sel);

/* Per-head Frobenius norms of the L×H state matrices of st into out (L*H);
 * with ref non-NULL, of st − ref. */
void vz_head_norms(const ms_config *c, const float *st, const float *ref, float *out);

#endif
