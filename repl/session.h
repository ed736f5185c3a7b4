/* session.h: one debugging session: the model, its tokenizer, the current
 * point of the run, and the named snapshots.
 *
 * What it is: the owner of everything a command changes.  A *point* is
 * everything that decides what comes next: the flat state (MODEL.md 4), the
 * logits it predicts (none before the first token), the position, the token
 * history that produced it, and the sampler with its RNG.  The current point
 * and every snapshot are points; snap, restore and fork are point copies, so
 * `snap`, anything, `restore` gives back the exact bytes.  The current point
 * belongs to a branch (only "main" for now); the next step makes a branch a
 * base point plus a list of events (token, edit, growth), and the token
 * history below becomes that list.
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
#include "tokenizer.h"

#define SESS_NAME_MAX 64

typedef struct {
    float *state;          /* (ms_state_len) */
    float *logits;         /* (V); meaningful when has_logits */
    int has_logits;
    int64_t position;      /* tokens fed since the zero state or the imported state */
    int *tokens;           /* (n_tokens) the ids that produced this point */
    int n_tokens, cap_tokens;
    ms_sampler sampler;
} sess_point;

typedef struct {
    char name[SESS_NAME_MAX];
    sess_point pt;
} sess_snap;

typedef struct {
    ms_model *model;
    ms_tokenizer *tok;
    char tok_desc[600];       /* "bytes", "rwkv-world (PATH)", "words (N)" */
    ms_ws *ws;
    sess_point cur;
    char branch[SESS_NAME_MAX];
    sess_snap *snaps;
    int n_snaps, cap_snaps;
    int auto_snap;            /* last k used for an automatic name s<k> */
    float *probs;             /* (V) scratch for softmax */
    float *scratch_state;     /* (ms_state_len) scratch for score */
    float *scratch_logits;    /* (V) */
    char *exe_dir;            /* directory of the executable, for vocab search; may be NULL */
    volatile sig_atomic_t *stop;   /* set by Ctrl-C: long commands stop between tokens */
} sess;

/* 1 once Ctrl-C asked long commands to stop (checked between tokens). */
static inline int sess_interrupted(const sess *s) { return s->stop && *s->stop; }

/* A session without a model.  exe_dir may be NULL; it is copied. */
sess *sess_new(const char *exe_dir, volatile sig_atomic_t *stop);
void sess_free(sess *s);

/* Load a model and its tokenizer (MODEL.md 6).  rwkv-world reads
 * rwkv_vocab_v20230424.txt from $METASTATE_VOCAB (a file or a directory)
 * when that is set, else the first found beside the model, in models/vocab/
 * under the current directory, in models/vocab/ beside the executable.  On success the old model is freed,
 * the current point is reset (sampler settings kept, RNG reseeded), and
 * snapshots are kept only if they belong to a model with the same shape
 * summary and weights hash; *dropped says how many were not.  On failure
 * nothing changes. */
int sess_load(sess *s, const char *path, int *dropped, ms_err *err);

/* Zero state, position 0, no logits, no tokens, RNG reseeded from the seed. */
void sess_reset(sess *s);

/* 0 if every id is a token of the model (and the tokenizer), else -1 with
 * the first bad one, its index and the valid range. */
int sess_check_ids(const sess *s, const int *ids, int n, ms_err *err);

/* Encode text with the session's tokenizer (ids malloc'd). */
int sess_encode(const sess *s, const char *text, size_t len, int **ids, int *n, ms_err *err);

/* Feed ids one by one into the current point (ids must be checked).  After
 * each token cb (if not NULL) is called with the id.  Stops early when
 * *s->stop is set; *n_done says how many were fed.  Returns 0, or -1 if a
 * step failed (the point is then as after the last good token). */
typedef void (*sess_token_cb)(void *ctx, int id);
int sess_feed(sess *s, const int *ids, int n, sess_token_cb cb, void *ctx, int *n_done, ms_err *err);

/* Sample the next token from the current logits with the session's sampler
 * (advances its RNG).  Returns the id, or -1 with err (no logits yet). */
int sess_sample(sess *s, ms_err *err);

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

/* ---- snapshots ---- */

/* 0 if name can name a snapshot: 1..63 of [A-Za-z0-9_.-], not starting
 * with '-' or '.', not "now" (reserved for the current point). */
int sess_name_check(const char *name, ms_err *err);
int sess_snap_find(const sess *s, const char *name);     /* index or -1 */
/* The next automatic name s<k> that is free. */
void sess_snap_autoname(sess *s, char *buf, size_t cap);
/* Copy the current point under a new name (must be valid and unused). */
int sess_snap_add(sess *s, const char *name, ms_err *err);
/* Make the current point a copy of snapshot i (exact bytes, sampler too). */
int sess_restore(sess *s, int i, ms_err *err);
void sess_snap_drop(sess *s, int i);
/* Name of snapshot i, or NULL past the end (for completion). */
const char *sess_snap_name(const sess *s, int i);

/* ---- state files ---- */

/* Save a point (the current one when pt is NULL) as a state file. */
int sess_save(sess *s, const sess_point *pt, const char *path, ms_err *err);

/* Read a state file into a new snapshot `name` (valid and unused) and make
 * it the current point.  force: MS_SF_FORCE semantics.  *imported and
 * *forced tell what happened (statefile.h).  On failure nothing changes. */
int sess_open(sess *s, const char *path, const char *name, int force,
              int *imported, int *forced, ms_err *err);

#endif
