/* session.h: one debugging session: the model, its tokenizer, the current
 * point of the run, the branches with their recorded histories, the named
 * snapshots, and state files.
 *
 * What it is: the owner of everything a command changes.  A *point* is
 * everything that decides what comes next: the flat state (MODEL.md 4), the
 * logits it predicts (none before the first token), the position and the
 * sampler with its RNG.  Everything the debugger does is four moves on
 * points (ARCHITECTURE.md): copy (snap, restore, fork), overwrite a slice
 * (edits), step (feed, replay) and compare (diff, verify).
 *
 * History.  Every change of the current point is an *event* recorded in the
 * current branch: a token (fed, or drawn by the sampler), an edit of a state
 * target, a change of sampler settings, a growth of the model.  After each
 * event a checksum of the state and of the logits is kept, so a replay can
 * say at which step it departs from the recording.  Events live in append-
 * only *logs*: a log has a base point and continues a parent log after its
 * first parent_n events (or starts at an origin: the zero state, or a state
 * read from a file), so the history of any point is a chain of logs back to
 * its origin, shared by every branch and snapshot that grew from it.  A
 * *history* (sess_hist) names a point of such a chain: the first n events of
 * a log, after everything before that log.
 *
 * Branches.  A branch is a log (its own events; its ancestors' through the
 * parent links) and a cursor: the global event index of its current point,
 * anywhere from its origin to its tip.  goto moves the cursor; when an
 * event is recorded while the cursor is behind the tip, the branch
 * continues from the cursor on a new log and its old continuation is kept
 * as the branch NAME.k (reported in sess.note): nothing is ever dropped
 * unless the user drops it.  restore of a snapshot on the branch's history
 * is a cursor move; restore of any other snapshot, open and reset also
 * continue the branch from the new point, keeping its old history as NAME.k
 * when that held events the new one does not.
 *
 * Checkpoints.  Every log keeps its base point and a copy of the point
 * every K events (K = ck_every, default 256); goto and switch restore the
 * nearest one at or before the target and replay from there, so they cost
 * at most the gap between two checkpoints.  Periodic checkpoints are
 * bounded: past ck_max in the whole session (default 64), the log with the
 * most loses every other one, doubling its gap.  Memory: snapshots one
 * point each, forks one point each (their base), checkpoints at most
 * ck_max points, events 16 bytes each (+ the values of a patch).
 *
 * Determinism: a replay re-applies the same events with the same code
 * (sess_apply in branch.c is the only place an event changes a point), so
 * the same model, seed and commands give bit-identical points.
 *
 * What it is not: it parses no commands and prints nothing; functions that
 * can fail return -1 with one line in an ms_err.  Every function checks its
 * inputs before it changes anything.
 */
#ifndef MS_SESSION_H
#define MS_SESSION_H

#include <signal.h>
#include <stdint.h>

#include "ms.h"
#include "target.h"
#include "tokenizer.h"

#define SESS_NAME_MAX 64
#define SESS_CK_EVERY 256     /* default checkpoint interval K (events) */
#define SESS_CK_MAX 64        /* default bound on periodic checkpoints */

typedef struct {
    float *state;          /* (ms_state_len) */
    float *logits;         /* (V); meaningful when has_logits */
    int has_logits;
    int64_t position;      /* tokens fed since the origin (its position included) */
    ms_sampler sampler;
    /* s->cur only (NULL/0 in every other point): the token ids of its
     * history, oldest first, kept in step by the session for the view's
     * token stream; the history itself is the reference (sess_hist_tail) */
    int *tokens;
    int n_tokens, cap_tokens;
} sess_point;

/* A point's buffers for config c (zeroed; -1 for no memory), its release,
 * and a copy between two points of the same config (exact bytes). */
int sess_pt_alloc(const ms_config *c, sess_point *p);
void sess_pt_free(sess_point *p);
void sess_pt_copy(sess_point *dst, const sess_point *src, const ms_config *c);

/* ---- events ---- */

typedef enum { SESS_EV_TOKEN = 0, SESS_EV_EDIT = 1, SESS_EV_SAMPLER = 2, SESS_EV_GROW = 3 } sess_ev_kind;
#define SESS_EVF_SAMPLED 1     /* TOKEN: the sampler drew it (replay draws again) */
#define SESS_EVF_NOCHECK 2     /* no recorded checksums (read from an old file) */

typedef struct {
    uint8_t kind;          /* sess_ev_kind */
    uint8_t flags;         /* SESS_EVF_* */
    uint16_t pad;
    int32_t arg;           /* TOKEN: the id; else the index of its sess_edit in the log */
    uint32_t state_check;  /* cmp_hash of the state after the event */
    uint32_t logits_check; /* cmp_hash of the logits after it (0 without logits) */
} sess_event;

typedef enum { SESS_OP_SET, SESS_OP_ZERO, SESS_OP_SCALE, SESS_OP_NOISE, SESS_OP_PATCH } sess_op;

/* What an EDIT, SAMPLER or GROW event did. */
typedef struct {
    sess_op op;                /* EDIT */
    tgt t;                     /* EDIT: where */
    double value;              /* SET: the value; SCALE: the factor; NOISE: sigma */
    uint64_t seed;             /* NOISE: the RNG seed */
    float *data;               /* PATCH: the tgt_size() values written (owned by the log) */
    char src[SESS_NAME_MAX];   /* PATCH: where they came from, for listings */
    ms_sampler sampler;        /* SAMPLER: the new settings and RNG */
    char *text;                /* GROW: what grew (owned by the log) */
} sess_edit;

typedef struct sess_log sess_log;     /* see session_impl.h */
typedef struct sess_frozen sess_frozen;

/* The first n events of log (and everything before it).  Holders take a
 * reference (sess_hist_ref). */
typedef struct {
    sess_log *log;
    long n;
} sess_hist;

typedef struct {
    char name[SESS_NAME_MAX];
    sess_point pt;             /* read-only: its buffers are fz's, shared with
                                  checkpoints (no tokens: see sess_hist_tail) */
    sess_frozen *fz;           /* the shared copy pt describes */
    sess_hist hist;            /* the events that produced it */
    char branch[SESS_NAME_MAX];   /* the branch it was taken on */
} sess_snap;

typedef struct {
    char name[SESS_NAME_MAX];
    sess_log *log;             /* its own events; the parent chain before them */
    long cursor;               /* global index of its current point (0 = origin) */
} sess_branch;

/* The view's hook into stepping (repl/cmd_view.c installs it).  Whatever
 * advances the *current point* with ms_step passes `&watch.obs` as the
 * observer when watch.obs.fn is set (NULL otherwise), calls watch.before
 * just before the step and watch.after just after it, once the point's
 * position, tokens and logits are updated (and after the command's own
 * per-token callback), so the view can record the layers it shows and
 * redraw, throttled, while feed, gen, step and replay run.  Steps of scratch
 * states (score) are not watched.  No hook, no cost.  goto, switch and
 * replay step a scratch point that becomes the current one: they call the
 * hook too (sess_last_trace then describes their last step). */
typedef struct {
    ms_observer obs;
    void (*before)(void *ctx);
    void (*after)(void *ctx);
    void *ctx;
} sess_watch;

/* One layer's intermediates at the last step of the current point (copies
 * of ms_trace's arrays), kept only for the layers asked for with
 * sess_keep_layer. */
typedef struct {
    int valid;                 /* 0 until a step of the current point after the request,
                                  and again after restore, goto to a checkpoint, reset... */
    int64_t position;          /* position after that step */
    float *r, *k, *v, *w, *a, *kk, *g, *y;   /* (A) */
    float *S;                  /* (H, N, N) after the step */
    float *z, *x_out;          /* (C) */
    float *q, *e_raw, *e;      /* (Hs*N); NULL when Hs = 0 */
    float *s;                  /* (n) */
} sess_trace;

typedef struct {
    ms_model *model;
    ms_tokenizer *tok;
    char tok_desc[600];       /* "bytes", "rwkv-world (PATH)", "words (N)" */
    ms_ws *ws;
    sess_point cur;           /* the current point: the current branch at its cursor */
    char branch[SESS_NAME_MAX];   /* the current branch's name */
    int cur_branch;           /* its index in branches */
    sess_branch *branches;    /* (n_branches), in the order they were made */
    int n_branches, cap_branches;
    sess_snap *snaps;
    int n_snaps, cap_snaps;
    int auto_snap;            /* last k used for an automatic name s<k> */
    int ck_every;             /* checkpoint interval K, in events */
    int ck_max;               /* bound on periodic checkpoints in the session */
    int ck_count;             /* periodic checkpoints now */
    sess_log *logs;           /* every live log (a list through sess_log.next) */
    uint64_t version;         /* +1 whenever the current point or branch changes */
    char note[320];           /* what the last operation did besides its job
                                 ("main's later history is kept as main.1"); "" if
                                 nothing; commands print it and clear it */
    float *probs;             /* (V) scratch for softmax */
    float *scratch_state;     /* (ms_state_len) scratch for score */
    float *scratch_logits;    /* (V) */
    sess_point tmp;           /* scratch point for goto, switch and replay */
    sess_frozen *spare;       /* one point's memory faulted in ahead of the next
                                 snap, fork or checkpoint (sess_idle); NULL: none */
    sess_trace *traces;       /* (n_layer) last step's copies, see sess_keep_layer */
    int n_kept;               /* layers kept */
    int sampled_id;           /* the last id sess_sample drew, until it is fed (-1: none) */
    ms_sampler sampled_pre;   /* the sampler before the first undelivered draw */
    int sampled_n;            /* draws since the last event (more than one: not a plain draw) */
    char *exe_dir;            /* directory of the executable, for vocab search; may be NULL */
    volatile sig_atomic_t *stop;   /* set by Ctrl-C: long commands stop between tokens */
    sess_watch watch;         /* the view's hook (all NULL: none); see sess_watch */
    struct sess_gpu *gpu;     /* the CUDA backend when it is on (backend.c), else NULL */
} sess;

/* ---- the backend (backend.c) ----
 * Every token step of the session runs through sess_model_step() (one
 * state, as ms_step with state_in == state_out), sess_model_steps() (B
 * states) or sess_run_sequences():
 * on the CPU, or on the CUDA backend once sess_backend_cuda() succeeded.
 * The host state stays the truth (each device step uploads it and
 * downloads the result), so nothing else in the session knows which
 * backend runs.  Steps on one backend are deterministic; the two backends
 * agree to MODEL.md 8's tolerance, not bit for bit. */
typedef struct sess_gpu sess_gpu;
#define SESS_GPU_BATCH 64
#define SESS_CPU_BATCH 64   /* sequences sess_run_sequences steps at once on the CPU (ms_step_batch) */
/* Switch to the GPU: open libmscuda.so, check the device, upload the model.
 * -1 with one line in err (no library, no device, out of device memory);
 * the session then stays on the CPU. */
int sess_backend_cuda(sess *s, ms_err *err);
void sess_backend_off(sess *s);
/* The model is about to be freed: drop its device copy (the next step
 * uploads the new one, or returns to the CPU with a note if it cannot). */
void sess_backend_model_gone(sess *s);
/* "cpu" or "cuda: DEVICE (LIBRARY)". */
const char *sess_backend_desc(const sess *s, char *buf, size_t n);
int sess_model_step(sess *s, float *state, int token, float *logits, const ms_observer *obs, ms_err *err);
/* B states (host, back to back, ms_state_len floats each) each advanced by
 * tokens[b], logits into logits[b*vocab..]: on the GPU up to SESS_GPU_BATCH
 * at once, on the CPU one after another (exactly ms_step).  -1 with err,
 * also when interrupted. */
int sess_model_steps(sess *s, float *states, int B, const int *tokens, float *logits, ms_err *err);
/* How many states a caller should hand sess_model_steps at once: 1 on the
 * CPU, else up to SESS_GPU_BATCH with at most ~64 MB of host copies. */
int sess_batch_hint(const sess *s, size_t state_len);
/* n sequences of len tokens (tok[q*len + i]), each from the zero state; the
 * argmax of the logits after every token into pred (same layout).  On the
 * CPU up to SESS_CPU_BATCH sequences go through ms_step_batch together (bit
 * for bit ms_step's numbers).  -1 with err, also when interrupted. */
int sess_run_sequences(sess *s, long n, long len, const int *tok, int *pred, ms_err *err);

/* 1 once Ctrl-C asked long commands to stop (checked between tokens). */
static inline int sess_interrupted(const sess *s) { return s->stop && *s->stop; }

/* A session without a model.  exe_dir may be NULL; it is copied. */
sess *sess_new(const char *exe_dir, volatile sig_atomic_t *stop);
void sess_free(sess *s);

/* Load a model and its tokenizer (MODEL.md 6).  rwkv-world reads
 * rwkv_vocab_v20230424.txt from $METASTATE_VOCAB (a file or a directory)
 * when that is set, else the first found beside the model, in models/vocab/
 * under the current directory, in models/vocab/ beside the executable.  On
 * success the old model is freed, the session restarts with one branch
 * "main" at the zero state (sampler settings kept, RNG reseeded), and
 * snapshots are kept only if they belong to a model with the same shape
 * summary and weights hash; *dropped says how many were not.  On failure
 * nothing changes. */
int sess_load(sess *s, const char *path, int *dropped, ms_err *err);

/* The same with a model already in memory (a random one for benchmarks);
 * the session takes it on success (the caller keeps it on failure). */
int sess_use_model(sess *s, ms_model *m, int *dropped, ms_err *err);

/* Get memory ready for the next snap, fork or checkpoint: one point's
 * buffers, allocated and faulted in now, so that those cost one copy
 * (fresh memory costs page faults: on the 2-core development VM ~2 µs a
 * page, 1.5 ms for a 0.1B-shape point).  The REPL calls it between
 * commands; optional (without it a copy allocates). */
void sess_idle(sess *s);

/* Zero state, position 0, no logits, RNG reseeded from the seed: the
 * current branch continues from a new origin (its old history kept as
 * NAME.k if it had events; sess.note says so).  -1 only for memory. */
int sess_reset(sess *s, ms_err *err);

/* 0 if every id is a token of the model (and the tokenizer), else -1 with
 * the first bad one, its index and the valid range. */
int sess_check_ids(const sess *s, const int *ids, int n, ms_err *err);

/* Encode text with the session's tokenizer (ids malloc'd). */
int sess_encode(const sess *s, const char *text, size_t len, int **ids, int *n, ms_err *err);

/* Feed ids one by one into the current point (ids must be checked), each a
 * TOKEN event of the current branch.  A token equal to the one sess_sample
 * just drew is recorded as drawn by the sampler.  After each token cb (if
 * not NULL) is called with the id.  Stops early when *s->stop is set;
 * *n_done says how many were fed.  Returns 0, or -1 if a step failed (the
 * point is then as after the last good token). */
typedef void (*sess_token_cb)(void *ctx, int id);
int sess_feed(sess *s, const int *ids, int n, sess_token_cb cb, void *ctx, int *n_done, ms_err *err);

/* Sample the next token from the current logits with the session's sampler
 * (advances its RNG).  Returns the id, or -1 with err (no logits yet).
 * Feed the id next (sess_feed) so that the history knows the sampler drew
 * it; otherwise a replay's RNG will not match. */
int sess_sample(sess *s, ms_err *err);

/* Change the sampler (settings and RNG), recorded as a SAMPLER event. */
int sess_set_sampler(sess *s, const ms_sampler *sm, ms_err *err);

/* Probabilities (softmax at temperature 1, double accumulation) of the
 * current logits into s->probs.  Returns -1 if there are no logits. */
int sess_probs(sess *s);

/* The k most probable next tokens (ties: lower id first) into ids[k] and
 * p[k].  Requires logits; 1 ≤ k ≤ V. */
int sess_top(sess *s, int k, int *ids, float *p, ms_err *err);

/* Mean negative log-likelihood of ids[0..n) from the current point, which
 * is left exactly as it was.  The first token is predicted by the current
 * logits; with none, scoring starts at the second token (*skipped_first =
 * 1).  Sums in double.  bits = Σ -log2 p, bytes = Σ bytes of the scored
 * tokens.  Returns 0, or -1 (nothing to score, interrupted, step failure). */
typedef struct {
    double bits;
    long scored;          /* tokens scored */
    long bytes;           /* their bytes */
    int skipped_first;
} sess_score_result;
int sess_score(sess *s, const int *ids, int n, sess_score_result *r, ms_err *err);

/* ---- edits ---- */

/* Apply an edit (op, t, value, seed, data) to the current point and record
 * it.  Checked first: a result that would not be finite (set of a huge
 * value is fine, a scale or noise that overflows float is not) is refused
 * and nothing changes.  data (PATCH) is copied.  Returns 0 or -1. */
int sess_edit_do(sess *s, const sess_edit *ed, ms_err *err);

/* 1 if the current point's history holds an edit: the state differs from
 * what its tokens alone would give (the view's "(edited)" mark). */
int sess_edited(const sess *s);

/* ---- snapshots ---- */

/* 0 if name can name a snapshot or a branch: 1..63 of [A-Za-z0-9_.-], not
 * starting with '-' or '.', not "now" (reserved for the current point). */
int sess_name_check(const char *name, ms_err *err);
/* 0 if name is valid and neither a snapshot nor a branch (one namespace, so
 * that diff and patch can take either). */
int sess_name_free(const sess *s, const char *name, ms_err *err);
int sess_snap_find(const sess *s, const char *name);     /* index or -1 */
/* The next automatic name s<k> that is free. */
void sess_snap_autoname(sess *s, char *buf, size_t cap);
/* Copy the current point, with its history, under a new name. */
int sess_snap_add(sess *s, const char *name, ms_err *err);
/* Make the current point a copy of snapshot i (exact bytes, sampler too);
 * see the top for what happens to the current branch. */
int sess_restore(sess *s, int i, ms_err *err);
void sess_snap_drop(sess *s, int i);
/* Name of snapshot i, or NULL past the end (for completion). */
const char *sess_snap_name(const sess *s, int i);

/* ---- histories ---- */

void sess_hist_ref(sess_hist h);
void sess_hist_unref(sess *s, sess_hist h);
/* The history of the current point. */
sess_hist sess_cur_hist(const sess *s);
/* Its global length (events from the origin). */
long sess_hist_len(sess_hist h);
/* Up to max of the last token ids of a history, oldest first; returns how
 * many. */
int sess_hist_tail(sess_hist h, int *out, int max);

/* One event of a history, for listings: fills *ev, *ed (NULL unless EDIT,
 * SAMPLER or GROW) and the position after it.  g: global index in
 * 0..len-1.  Returns 0 or -1 (out of range). */
int sess_hist_event(sess_hist h, long g, const sess_event **ev, const sess_edit **ed, int64_t *pos);

/* An event as the command that made it ("token 72 \"H\" (sampled)",
 * "set L3.H0[1,2] 0.5", "patch L2.* from s1", ...), for listings and
 * messages. */
void sess_event_text(const sess *s, const sess_event *e, const sess_edit *ed, char *buf, size_t cap);

/* ---- branches ---- */

int sess_branch_find(const sess *s, const char *name);   /* index or -1 */
/* The history of branch i up to its tip (not referenced). */
sess_hist sess_branch_tip(const sess *s, int i);
const char *sess_branch_name(const sess *s, int i);      /* NULL past the end */

typedef struct {
    const char *name;
    int parent;                /* index of the branch it forked from, or -1 */
    int64_t fork_position;     /* position where it left the parent */
    long cursor, tip;          /* global event indices */
    int64_t position, tip_position, origin_position;
    long own_events;           /* events in its own log */
    int edited;                /* an edit before its cursor */
    int current;
} sess_branch_info;
void sess_branch_get(const sess *s, int i, sess_branch_info *bi);

/* A new branch NAME (a free name) at the current point; it becomes the
 * current branch (the old one keeps its cursor).  One state copy. */
int sess_fork(sess *s, const char *name, ms_err *err);

/* Make branch i current at its cursor (restores the nearest checkpoint and
 * replays at most K events).  Interrupted or failed: nothing changes. */
int sess_switch(sess *s, int i, ms_err *err);

/* Forget branch i (not the current one). */
int sess_branch_drop(sess *s, int i, ms_err *err);

/* Move the current branch's cursor to the global event index g (0..tip),
 * or with sess_goto_pos to the point after the last event at position pos
 * (origin_position..tip_position); messages give the valid range.  Costs at
 * most one checkpoint gap of steps.  Interrupted: nothing changes.
 * *replayed (may be NULL) says how many events were re-applied. */
int sess_goto(sess *s, long g, long *replayed, ms_err *err);
int sess_goto_pos(sess *s, int64_t pos, long *replayed, ms_err *err);

/* The point of branch i at its cursor into *out (the caller's, from
 * sess_pt_alloc; not s->tmp).  The current branch gives a copy of s->cur;
 * another costs at most one checkpoint gap of steps. */
int sess_branch_point(sess *s, int i, sess_point *out, ms_err *err);

/* Checkpoint settings: every (K ≥ 1), max (≥ 1); existing checkpoints stay
 * and are thinned if more than max. */
void sess_checkpoints_set(sess *s, int every, int max);
typedef struct {
    long count;                /* periodic checkpoints */
    long bases;                /* base points of logs (origins, forks) */
    size_t bytes;              /* memory of both */
    long max_gap;              /* longest run of events between checkpoints on any branch */
    long events;               /* events in all logs */
    size_t event_bytes;        /* their memory, patch values included */
    long logs;
} sess_ck_stats;
void sess_checkpoints_stats(const sess *s, sess_ck_stats *st);

/* ---- replay ---- */

typedef struct {
    long from, to;             /* global indices replayed: (from, to] */
    long steps;                /* events applied */
    int verified;              /* 1 if every recorded check was compared */
    long unchecked;            /* events without a recorded check */
    long bad;                  /* 0, or the global index (1-based) of the first
                                  event whose result differs */
    char what[400];            /* for bad: what differs, one line */
    int same_as_current;       /* the replayed point equals the current one bit for bit */
    double max_diff;           /* else the largest |Δ| of state or logits */
    char max_at[64];           /* and where */
} sess_replay_result;

/* Re-run the current point's history from its origin (from_snap < 0) or
 * from snapshot from_snap (which must lie on that history) to the cursor.
 * verify: compare the state and logits checksums after every event with
 * the recorded ones, a sampler-drawn token with the one recorded, and the
 * point at every stored checkpoint bit for bit; stop at the first
 * difference (r->bad) and change nothing.  Without verify, or when all
 * matched, the current point becomes the replayed one.  Returns 0 (also for
 * a found difference: see r->bad), -1 for an error or an interrupt (nothing
 * changed). */
int sess_replay(sess *s, int from_snap, int verify, sess_replay_result *r, ms_err *err);

/* ---- growth (for grow, repl/cmd_model.c) ---- */

/* Replace the model with `grown` (the same tokenizer and vocabulary), after
 * a growth step that keeps the function (MODEL.md 3.3).  map(ctx, old, new)
 * writes the grown form of one old state (ms_state_len(old) floats) into new
 * (ms_state_len(new) floats).  Every branch (at its cursor) and every
 * snapshot is mapped and continues from its mapped point with one GROW
 * event (text: what grew); their histories before the growth cannot be
 * replayed with the grown model and are dropped.  Logits are kept (the
 * function is the same).  On success s owns grown and the old model is
 * freed; on failure nothing changed and the caller still owns grown. */
typedef void (*sess_state_map)(void *ctx, const float *old_state, float *new_state);
int sess_adopt_grown(sess *s, ms_model *grown, sess_state_map map, void *ctx, const char *text, ms_err *err);

/* ---- the last step's intermediates (for the view) ---- */

/* Keep (on = 1) or stop keeping (on = 0) copies of layer's intermediates at
 * each step of the current point.  Costs a copy of that layer's arrays per
 * step; no layer kept, no cost. */
int sess_keep_layer(sess *s, int layer, int on, ms_err *err);
/* The copies for layer, or NULL if it is not kept or no step has filled
 * them since the current point last changed otherwise. */
const sess_trace *sess_last_trace(const sess *s, int layer);

/* ---- state files ---- */

/* Save a point with its history (the current one when snap < 0, else
 * snapshot snap) as a state file (MODEL.md 5.3, statefile.h). */
int sess_save(sess *s, int snap, const char *path, ms_err *err);

/* Read a state file into a new snapshot `name` (valid and free) with the
 * history it records, and make it the current point (sess_restore).
 * force: MS_SF_FORCE semantics (the history of another model's file is not
 * kept).  *imported and *forced tell what happened (statefile.h); s->note
 * says when a history could not be kept.  On failure nothing changes. */
int sess_open(sess *s, const char *path, const char *name, int force,
              int *imported, int *forced, ms_err *err);

#endif
