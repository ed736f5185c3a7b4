/* session_impl.h: the parts of the session shared by session.c (model,
 * points, snapshots, files) and branch.c (logs, events, checkpoints,
 * branches, goto, replay).  Not for commands or the view: they use
 * session.h.
 */
#ifndef MS_SESSION_IMPL_H
#define MS_SESSION_IMPL_H

#include "session.h"

/* An immutable point shared by snapshots, checkpoints and log bases. */
struct sess_frozen {
    int refs;
    sess_point pt;
};

typedef struct {
    long idx;                 /* local event index: the point after idx events of the log */
    sess_frozen *fz;
    int periodic;             /* 1: counted in ck_count and may be thinned */
} sess_ckpt;

typedef enum { SESS_ORIGIN_ZERO = 0, SESS_ORIGIN_STATE = 1 } sess_origin;

struct sess_log {
    int refs;
    long id;                  /* 1, 2, ... in the order logs were made */
    sess_log *parent;         /* NULL for a root log */
    long parent_n;            /* events of parent before this log's first */
    long base_g;              /* global index of the base point (events before it) */
    int64_t pos0;             /* position of the base point */
    int64_t pos_end;          /* position after the last event */
    sess_origin origin;       /* root logs: what the base point is */
    sess_event *ev;           /* (n) */
    long n, cap;
    sess_edit *ed;            /* (n_ed) */
    long n_ed, cap_ed;
    long first_edit;          /* local index of the first EDIT, or -1 */
    sess_ckpt *ck;            /* (n_ck) sorted by idx; ck[0] is the base (idx 0) */
    int n_ck, cap_ck;
    long gap;                 /* periodic checkpoints every gap events (ck_every << thinning) */
    sess_log *next, *prev;    /* the session's list of live logs */
};

/* points (and sess_pt_alloc, _free, _copy of session.h) */
void sess_pt_swap(sess_point *a, sess_point *b);
/* keep s->cur.tokens in step: append id, or (id < 0) rebuild from the history */
void sess_cur_tokens(sess *s, int id);
sess_frozen *sess_fz_new(const ms_config *c, const sess_point *src);   /* NULL: no memory */
void sess_fz_unref(sess_frozen *f);
/* a frozen copy of src for the session's model, in the spare memory
 * sess_idle prepared when there is one (then no page faults) */
sess_frozen *sess_fz_copy(sess *s, const sess_point *src);
size_t sess_pt_bytes(const ms_config *c);

/* logs (branch.c) */
sess_log *sess_log_root(sess *s, sess_frozen *base, sess_origin origin);   /* takes base's ref */
sess_log *sess_log_child(sess *s, sess_hist at, sess_frozen *base);       /* takes base's ref */
void sess_log_unref(sess *s, sess_log *l);
void sess_log_drop_all(sess *s);
/* Append n events (edits ed[0..n_ed) copied in) to a fresh root log, for
 * files; the log's checks and positions come from the caller. */
int sess_log_append_raw(sess_log *l, const sess_event *ev, const sess_edit *ed, ms_err *err);
/* Add a checkpoint at local idx (not periodic: pinned), e.g. the tip of a file. */
int sess_log_pin(sess *s, sess_log *l, long idx, sess_frozen *fz);

/* the segment of the chain of tip holding global index g, normalized: a
 * point at the start of a non-root log is named in its parent */
sess_hist sess_hist_at(sess_hist tip, long g);
/* 1 if a is a point of b's chain (a's history is a prefix of b's) */
int sess_hist_prefix(sess_hist a, sess_hist b);

/* Apply one event to point p (the only place where events change points).
 * *drawn gets the id the sampler drew for a SAMPLED token (else -1).  obs
 * may be NULL.  Returns 0, or -1 with err. */
int sess_apply(sess *s, sess_point *p, const sess_event *e, const sess_edit *ed, int watched,
               int *drawn, ms_err *err);

/* Record one event on the current branch after applying it to s->cur.
 * Prepares everything that can fail first; returns 0 or -1 (nothing
 * changed). */
int sess_record(sess *s, const sess_event *e, const sess_edit *ed, ms_err *err);

/* Continue the current branch from point fz at history at (at.log NULL:
 * a new root of kind origin); its old history is kept as NAME.k when at is
 * not a continuation of it.  cur becomes a copy of fz.  Takes fz's ref. */
int sess_rehome(sess *s, sess_hist at, sess_frozen *fz, sess_origin origin, ms_err *err);

/* The session starts over: every branch is dropped and "main" begins at
 * root's base (a root log made for it).  Needs room for one branch (the
 * array is never shrunk); cannot fail. */
void sess_branches_start(sess *s, sess_log *root);

/* checksums of a point: state, logits (0 without) */
void sess_pt_checks(const sess *s, const sess_point *p, uint32_t *sc, uint32_t *lc);

/* the last step's copies: mark them stale (the current point changed
 * without a step); the observer for a step of the current point (NULL when
 * nobody watches: no cost); after such a step, the position they describe */
void sess_traces_stale(sess *s);
const ms_observer *sess_observer(sess *s);
void sess_traces_done(sess *s, int64_t position);

#endif
