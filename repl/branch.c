/* branch.c: the session's histories (see session.h for the model): logs of
 * events, the one function that applies an event to a point, recording on
 * the current branch, checkpoints and their bound, branches, goto, switch,
 * replay with verification, and the re-rooting after a model growth.
 *
 * Invariants kept here:
 * - A log only ever grows (events are appended, never changed or removed),
 *   so a history (log, n) means the same events for as long as it lives.
 * - Every log has a checkpoint at index 0 (its base point), so the point at
 *   any event index is its log's nearest checkpoint plus at most one gap of
 *   events; the gap is ck_every, doubled each time the log is thinned.
 * - The current point s->cur is the current branch's point at its cursor.
 */
#include "session_impl.h"
#include "args.h"
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- logs ---- */

static long branch_log_ids;

static sess_log *log_new(sess *s, sess_frozen *base)
{
    sess_log *l = calloc(1, sizeof *l);
    sess_ckpt *ck = malloc(4 * sizeof *ck);
    if (!l || !ck) {
        free(l);
        free(ck);
        return NULL;
    }
    l->refs = 1;
    l->id = ++branch_log_ids;
    l->first_edit = -1;
    l->gap = s->ck_every;
    l->ck = ck;
    l->cap_ck = 4;
    l->n_ck = 1;
    l->ck[0] = (sess_ckpt){ 0, base, 0 };
    l->pos0 = l->pos_end = base->pt.position;
    l->next = s->logs;
    if (s->logs) s->logs->prev = l;
    s->logs = l;
    return l;
}

sess_log *sess_log_root(sess *s, sess_frozen *base, sess_origin origin)
{
    sess_log *l = log_new(s, base);
    if (l) l->origin = origin;
    return l;
}

sess_log *sess_log_child(sess *s, sess_hist at, sess_frozen *base)
{
    sess_log *l = log_new(s, base);
    if (!l) return NULL;
    l->parent = at.log;
    at.log->refs++;
    l->parent_n = at.n;
    l->base_g = at.log->base_g + at.n;
    l->origin = at.log->origin;
    return l;
}

void sess_log_unref(sess *s, sess_log *l)
{
    while (l && --l->refs == 0) {
        for (long i = 0; i < l->n_ed; i++) {
            free(l->ed[i].data);
            free(l->ed[i].text);
        }
        for (int k = 0; k < l->n_ck; k++) {
            if (l->ck[k].periodic) s->ck_count--;
            sess_fz_unref(l->ck[k].fz);
        }
        free(l->ev);
        free(l->ed);
        free(l->ck);
        if (l->prev) l->prev->next = l->next;
        else s->logs = l->next;
        if (l->next) l->next->prev = l->prev;
        sess_log *p = l->parent;
        free(l);
        l = p;
    }
}

void sess_log_drop_all(sess *s)
{
    for (int i = 0; i < s->n_branches; i++) sess_log_unref(s, s->branches[i].log);
    s->n_branches = 0;
}

/* room for one more event (and one more edit) */
static int log_room(sess_log *l, int edit)
{
    if (l->n == l->cap) {
        long cap = l->cap ? 2 * l->cap : 256;
        sess_event *v = realloc(l->ev, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->ev = v;
        l->cap = cap;
    }
    if (edit && l->n_ed == l->cap_ed) {
        long cap = l->cap_ed ? 2 * l->cap_ed : 16;
        sess_edit *v = realloc(l->ed, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->ed = v;
        l->cap_ed = cap;
    }
    return 0;
}

/* a deep copy of ed (patch values, growth text) */
static int edit_copy(sess_edit *dst, const sess_edit *ed)
{
    *dst = *ed;
    dst->data = NULL;
    dst->text = NULL;
    if (ed->data) {
        size_t n = tgt_size(&ed->t);
        if (!(dst->data = malloc(n * sizeof(float) + 1))) return -1;
        memcpy(dst->data, ed->data, n * sizeof(float));
    }
    if (ed->text && !(dst->text = strdup(ed->text))) {
        free(dst->data);
        return -1;
    }
    return 0;
}

/* append e (with a prepared edit copy, owned from now on) */
static void log_push(sess_log *l, sess_event e, const sess_edit *owned)
{
    if (owned) {
        e.arg = (int32_t)l->n_ed;
        l->ed[l->n_ed++] = *owned;
    }
    if (e.kind == SESS_EV_EDIT && l->first_edit < 0) l->first_edit = l->n;
    if (e.kind == SESS_EV_TOKEN) l->pos_end++;
    l->ev[l->n++] = e;
}

int sess_log_append_raw(sess_log *l, const sess_event *ev, const sess_edit *ed, ms_err *err)
{
    sess_edit copy;
    if (log_room(l, ed != NULL) != 0 || (ed && edit_copy(&copy, ed) != 0)) {
        ms_seterr(err, "out of memory for the history");
        return -1;
    }
    log_push(l, *ev, ed ? &copy : NULL);
    return 0;
}

/* ---- checkpoints ---- */

/* index of the last checkpoint at or before local index idx */
static int ck_find(const sess_log *l, long idx)
{
    int lo = 0, hi = l->n_ck - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (l->ck[mid].idx <= idx) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static int ck_insert(sess_log *l, long idx, sess_frozen *fz, int periodic)
{
    if (l->n_ck == l->cap_ck) {
        int cap = 2 * l->cap_ck;
        sess_ckpt *v = realloc(l->ck, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->ck = v;
        l->cap_ck = cap;
    }
    int k = ck_find(l, idx) + 1;
    memmove(&l->ck[k + 1], &l->ck[k], (size_t)(l->n_ck - k) * sizeof *l->ck);
    l->ck[k] = (sess_ckpt){ idx, fz, periodic };
    l->n_ck++;
    return 0;
}

int sess_log_pin(sess *s, sess_log *l, long idx, sess_frozen *fz)
{
    (void)s;
    return ck_insert(l, idx, fz, 0);
}

/* remove every other periodic checkpoint of the log holding the most, until
 * the session is within its bound; each pass doubles that log's gap */
static void ck_thin(sess *s)
{
    while (s->ck_count > s->ck_max) {
        sess_log *worst = NULL;
        int most = 0;
        for (sess_log *l = s->logs; l; l = l->next) {
            int n = 0;
            for (int k = 0; k < l->n_ck; k++) n += l->ck[k].periodic;
            if (n > most || (n == most && worst && l->id < worst->id)) {
                most = n;
                worst = l;
            }
        }
        if (!worst) return;
        int w = 0, seen = 0;
        for (int k = 0; k < worst->n_ck; k++) {
            sess_ckpt c = worst->ck[k];
            if (c.periodic && seen++ % 2 == 0) {   /* the 1st, 3rd, ...: keeps multiples of 2 gaps */
                sess_fz_unref(c.fz);
                s->ck_count--;
                continue;
            }
            worst->ck[w++] = c;
        }
        worst->n_ck = w;
        worst->gap *= 2;
    }
}

/* a periodic checkpoint of p at local index idx, if there is none there
 * (no memory: no checkpoint, only a longer goto later) */
static void ck_periodic(sess *s, sess_log *l, long idx, const sess_point *p)
{
    if (l->ck[ck_find(l, idx)].idx == idx) return;
    sess_frozen *fz = sess_fz_copy(s, p);
    if (!fz) return;
    if (ck_insert(l, idx, fz, 1) != 0) {
        sess_fz_unref(fz);
        return;
    }
    s->ck_count++;
    ck_thin(s);
}

void sess_checkpoints_set(sess *s, int every, int max)
{
    s->ck_every = every;
    s->ck_max = max;
    for (sess_log *l = s->logs; l; l = l->next) l->gap = every;
    ck_thin(s);
}

void sess_checkpoints_stats(const sess *s, sess_ck_stats *st)
{
    memset(st, 0, sizeof *st);
    size_t pb = sess_pt_bytes(&s->model->cfg);
    for (sess_log *l = s->logs; l; l = l->next) {
        st->logs++;
        for (int k = 0; k < l->n_ck; k++) {
            if (l->ck[k].periodic) st->count++;
            else st->bases++;
            long next = k + 1 < l->n_ck ? l->ck[k + 1].idx : l->n;
            if (next - l->ck[k].idx > st->max_gap) st->max_gap = next - l->ck[k].idx;
        }
        st->events += l->n;
        st->event_bytes += (size_t)l->cap * sizeof(sess_event) + (size_t)l->cap_ed * sizeof(sess_edit);
        for (long i = 0; i < l->n_ed; i++)
            if (l->ed[i].data) st->event_bytes += tgt_size(&l->ed[i].t) * sizeof(float);
    }
    /* bases shared by several logs (an opened file's point) count once: an estimate */
    st->bytes = (size_t)(st->count + st->bases) * pb;
}

/* ---- histories ---- */

void sess_hist_ref(sess_hist h)
{
    if (h.log) h.log->refs++;
}

void sess_hist_unref(sess *s, sess_hist h)
{
    if (h.log) sess_log_unref(s, h.log);
}

long sess_hist_len(sess_hist h)
{
    return h.log ? h.log->base_g + h.n : 0;
}

sess_hist sess_hist_at(sess_hist tip, long g)
{
    sess_log *l = tip.log;
    while (l->parent && g < l->base_g) l = l->parent;
    long i = g - l->base_g;
    while (i == 0 && l->parent) {
        i = l->parent_n;
        l = l->parent;
    }
    return (sess_hist){ l, i };
}

static const sess_log *event_seg(sess_hist tip, long g, long *i);

/* field by field: the struct has padding that memcmp would compare */
static int sampler_eq(const ms_sampler *a, const ms_sampler *b)
{
    return a->temp == b->temp && a->top_p == b->top_p && a->top_k == b->top_k && a->seed == b->seed &&
           !memcmp(a->rng, b->rng, sizeof a->rng);
}

/* the root log of a history */
static const sess_log *hist_root(sess_hist h)
{
    const sess_log *l = h.log;
    while (l->parent) l = l->parent;
    return l;
}

int sess_hist_prefix(sess_hist a, sess_hist b)
{
    long ga = sess_hist_len(a);
    if (ga > sess_hist_len(b)) return 0;
    sess_hist x = sess_hist_at(a, ga), y = sess_hist_at(b, ga);
    if (x.log == y.log && x.n == y.n) return 1;
    /* the same events recorded twice (a history saved and opened again):
     * equal origins and, event by event, the same kind, token and checks */
    const sess_log *ra = hist_root(a), *rb = hist_root(b);
    const sess_point *oa = &ra->ck[0].fz->pt, *ob = &rb->ck[0].fz->pt;
    if (ra->origin != rb->origin || oa->position != ob->position || oa->has_logits != ob->has_logits) return 0;
    if (ra->origin == SESS_ORIGIN_STATE) return 0;   /* opaque origins: only the same one */
    if (!sampler_eq(&oa->sampler, &ob->sampler)) return 0;
    for (long g = 0; g < ga; g++) {
        long i, j;
        const sess_log *la = event_seg(a, g, &i), *lb = event_seg(b, g, &j);
        const sess_event *p = &la->ev[i], *q = &lb->ev[j];
        if ((p->flags | q->flags) & SESS_EVF_NOCHECK) return 0;
        if (p->kind != q->kind || p->state_check != q->state_check || p->logits_check != q->logits_check ||
            (p->kind == SESS_EV_TOKEN && (p->arg != q->arg || p->flags != q->flags)))
            return 0;
    }
    return 1;
}

sess_hist sess_branch_tip(const sess *s, int i)
{
    sess_log *l = s->branches[i].log;
    return (sess_hist){ l, l->n };
}

sess_hist sess_cur_hist(const sess *s)
{
    return sess_hist_at(sess_branch_tip(s, s->cur_branch), s->branches[s->cur_branch].cursor);
}

/* the log and local index of event g (0-based) of the chain of tip */
static const sess_log *event_seg(sess_hist tip, long g, long *i)
{
    const sess_log *l = tip.log;
    while (l->parent && g < l->base_g) l = l->parent;
    *i = g - l->base_g;
    return l;
}

int sess_hist_tail(sess_hist h, int *out, int max)
{
    int n = 0;
    const sess_log *l = h.log;
    long i = h.n;
    while (l && n < max) {
        if (i == 0) {
            i = l->parent_n;
            l = l->parent;
            continue;
        }
        i--;
        if (l->ev[i].kind == SESS_EV_TOKEN) out[n++] = l->ev[i].arg;
    }
    for (int a = 0, b = n - 1; a < b; a++, b--) {
        int t = out[a];
        out[a] = out[b];
        out[b] = t;
    }
    return n;
}

/* position after the first idx events of log l (from its nearest checkpoint) */
static int64_t log_pos_at(const sess_log *l, long idx)
{
    const sess_ckpt *c = &l->ck[ck_find(l, idx)];
    int64_t p = c->fz->pt.position;
    for (long j = c->idx; j < idx; j++) p += l->ev[j].kind == SESS_EV_TOKEN;
    return p;
}

int sess_hist_event(sess_hist h, long g, const sess_event **ev, const sess_edit **ed, int64_t *pos)
{
    if (g < 0 || g >= sess_hist_len(h)) return -1;
    long i;
    const sess_log *l = event_seg(h, g, &i);
    *ev = &l->ev[i];
    *ed = l->ev[i].kind == SESS_EV_TOKEN ? NULL : &l->ed[l->ev[i].arg];
    if (pos) *pos = log_pos_at(l, i + 1);
    return 0;
}

/* an EDIT among the events of h */
static int hist_edited(sess_hist h)
{
    long cut = h.n;
    for (const sess_log *l = h.log; l; cut = l->parent_n, l = l->parent)
        if (l->first_edit >= 0 && l->first_edit < cut) return 1;
    return 0;
}

int sess_edited(const sess *s)
{
    return hist_edited(sess_cur_hist(s));
}

/* ---- applying and recording events ---- */

int sess_apply(sess *s, sess_point *p, const sess_event *e, const sess_edit *ed, int watched,
               int *drawn, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    switch ((sess_ev_kind)e->kind) {
    case SESS_EV_TOKEN:
        if (drawn) *drawn = -1;
        if (drawn && (e->flags & SESS_EVF_SAMPLED)) {
            if (!p->has_logits) {
                ms_seterr(err, "the history says the sampler drew token %d at position %lld, where there are "
                          "no logits", e->arg, (long long)p->position);
                return -1;
            }
            *drawn = ms_sample(&p->sampler, p->logits, c->vocab);
        }
        if (sess_model_step(s, p->state, e->arg, p->logits, watched ? sess_observer(s) : NULL, err) != 0)
            return -1;
        p->has_logits = 1;
        p->position++;
        if (watched) sess_traces_done(s, p->position);
        return 0;
    case SESS_EV_EDIT:
        switch (ed->op) {
        case SESS_OP_SET: tgt_fill(&ed->t, p->state, (float)ed->value); break;
        case SESS_OP_ZERO: tgt_fill(&ed->t, p->state, 0.0f); break;
        case SESS_OP_SCALE: tgt_scale(&ed->t, p->state, (float)ed->value); break;
        case SESS_OP_NOISE: tgt_noise(&ed->t, p->state, ed->value, ed->seed); break;
        case SESS_OP_PATCH: tgt_put(&ed->t, ed->data, p->state); break;
        }
        return 0;
    case SESS_EV_SAMPLER:
        p->sampler = ed->sampler;
        return 0;
    case SESS_EV_GROW:
        return 0;   /* the growth happened to the base point of the log it starts */
    }
    ms_seterr(err, "unknown event kind %d", e->kind);
    return -1;
}

static int branch_room(sess *s, ms_err *err)
{
    if (s->n_branches < s->cap_branches) return 0;
    int cap = s->cap_branches ? 2 * s->cap_branches : 8;
    sess_branch *v = realloc(s->branches, (size_t)cap * sizeof *v);
    if (!v) {
        ms_seterr(err, "out of memory");
        return -1;
    }
    s->branches = v;
    s->cap_branches = cap;
    return 0;
}

/* the first free name base.k */
static void branch_keep_name(const sess *s, const char *base, char *out, size_t cap)
{
    for (int k = 1;; k++) {
        int n = snprintf(out, cap, "%.*s.%d", SESS_NAME_MAX - 12, base, k);
        if (n > 0 && sess_snap_find(s, out) < 0 && sess_branch_find(s, out) < 0) return;
    }
}

/* keep the current branch's present log as a new branch NAME.k at its tip
 * (room made); the current branch then needs a new log */
static void branch_keep_old(sess *s, const char *why)
{
    sess_branch *b = &s->branches[s->cur_branch];
    char name[SESS_NAME_MAX];
    branch_keep_name(s, b->name, name, sizeof name);
    sess_branch *k = &s->branches[s->n_branches++];
    memcpy(k->name, name, sizeof name);
    k->log = b->log;
    k->cursor = b->log->base_g + b->log->n;
    size_t l = strlen(s->note);
    snprintf(s->note + l, sizeof s->note - l, "%s%s; its previous history (to position %lld) is kept as branch %s",
             l ? "; " : "", why, (long long)b->log->pos_end, k->name);
}

/* the current branch continues from its cursor on a new log (the point
 * fz, a copy of s->cur, taken) */
static int branch_split(sess *s, sess_frozen *fz, ms_err *err)
{
    if (branch_room(s, err) != 0) return -1;
    sess_branch *b = &s->branches[s->cur_branch];
    sess_log *l = sess_log_child(s, sess_hist_at(sess_branch_tip(s, s->cur_branch), b->cursor), fz);
    if (!l) {
        ms_seterr(err, "out of memory for a new log");
        return -1;
    }
    char why[160];
    snprintf(why, sizeof why, "branch %s goes on from position %lld", b->name, (long long)s->cur.position);
    branch_keep_old(s, why);
    b = &s->branches[s->cur_branch];
    b->log = l;
    b->cursor = l->base_g;
    return 0;
}

int sess_record(sess *s, const sess_event *e0, const sess_edit *ed, ms_err *err)
{
    sess_event e = *e0;
    int draw = s->sampled_id >= 0;
    int match = draw && s->sampled_n == 1 && e.kind == SESS_EV_TOKEN && e.arg == s->sampled_id;
    sess_branch *b = &s->branches[s->cur_branch];
    if (b->cursor < b->log->base_g + b->log->n) {
        /* behind the tip: go on from here on a new log, whose base is the
         * point before this event (and before a pending draw moved the RNG) */
        sess_frozen *fz = sess_fz_copy(s, &s->cur);
        if (!fz) {
            ms_seterr(err, "out of memory");
            return -1;
        }
        if (draw) fz->pt.sampler = s->sampled_pre;
        if (branch_split(s, fz, err) != 0) {
            sess_fz_unref(fz);
            return -1;
        }
        b = &s->branches[s->cur_branch];
    }
    s->sampled_id = -1;
    if (match) {
        e.flags |= SESS_EVF_SAMPLED;   /* replay draws it again, moving the RNG the same way */
    } else if (draw) {
        /* the RNG moved for a draw that is not this token: record where it is */
        sess_event se = { .kind = SESS_EV_SAMPLER };
        sess_edit sd;
        memset(&sd, 0, sizeof sd);
        sd.sampler = s->cur.sampler;
        if (sess_record(s, &se, &sd, err) != 0) return -1;
        b = &s->branches[s->cur_branch];
    }
    sess_log *l = b->log;
    sess_edit copy;
    if (log_room(l, ed != NULL) != 0 || (ed && edit_copy(&copy, ed) != 0)) {
        ms_seterr(err, "out of memory for the history");
        return -1;
    }
    if (sess_apply(s, &s->cur, &e, ed ? &copy : NULL, e.kind == SESS_EV_TOKEN, NULL, err) != 0) {
        if (ed) {
            free(copy.data);
            free(copy.text);
        }
        return -1;
    }
    sess_pt_checks(s, &s->cur, &e.state_check, &e.logits_check);
    log_push(l, e, ed ? &copy : NULL);
    if (e.kind == SESS_EV_TOKEN) sess_cur_tokens(s, e.arg);
    b->cursor = l->base_g + l->n;
    s->version++;
    if (l->n % l->gap == 0) ck_periodic(s, l, l->n, &s->cur);
    return 0;
}

int sess_rehome(sess *s, sess_hist at, sess_frozen *fz, sess_origin origin, ms_err *err)
{
    if (branch_room(s, err) != 0) {
        sess_fz_unref(fz);
        return -1;
    }
    sess_log *l = at.log ? sess_log_child(s, at, fz) : sess_log_root(s, fz, origin);
    if (!l) {
        sess_fz_unref(fz);
        ms_seterr(err, "out of memory for a new log");
        return -1;
    }
    sess_branch *b = &s->branches[s->cur_branch];
    sess_hist old = sess_branch_tip(s, s->cur_branch);
    int lose = sess_hist_len(old) > 0 && !(at.log && sess_hist_prefix(old, at));
    if (lose) {
        char why[160];
        snprintf(why, sizeof why, "branch %s goes on from the new point", b->name);
        branch_keep_old(s, why);
    } else {
        sess_log_unref(s, b->log);
    }
    b = &s->branches[s->cur_branch];
    b->log = l;
    b->cursor = l->base_g;
    sess_pt_copy(&s->cur, &fz->pt, &s->model->cfg);
    sess_cur_tokens(s, -1);
    s->sampled_id = -1;
    s->version++;
    sess_traces_stale(s);
    return 0;
}

void sess_branches_start(sess *s, sess_log *root)
{
    sess_log_drop_all(s);
    sess_branch *b = &s->branches[s->n_branches++];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "main");
    b->log = root;
    s->cur_branch = 0;
    snprintf(s->branch, sizeof s->branch, "main");
    sess_pt_copy(&s->cur, &root->ck[0].fz->pt, &s->model->cfg);
    sess_cur_tokens(s, -1);
    s->sampled_id = -1;
    s->version++;
}

/* ---- moving along a history ---- */

/* Bring p, the point at global index from (or, from < 0, nothing), to
 * global index g of the chain of tip: restart at the nearest checkpoint
 * when that is closer, then apply the events.  watched: p is the current
 * point (observer, view hooks).  Adds the periodic checkpoints it passes.
 * Returns 0, or -1 (interrupted, step failure) with p in between. */
static int seek(sess *s, sess_hist tip, long g, sess_point *p, long from, int watched, long *steps, ms_err *err)
{
    sess_log *l = tip.log;
    while (l->parent && g < l->base_g) l = l->parent;
    long i = g - l->base_g;
    const sess_ckpt *c = &l->ck[ck_find(l, i)];
    long j = c->idx;
    if (from >= l->base_g + c->idx && from <= g) {
        j = from - l->base_g;
    } else {
        sess_pt_copy(p, &c->fz->pt, &s->model->cfg);
        if (watched) sess_traces_stale(s);
    }
    *steps = 0;
    for (; j < i; j++) {
        const sess_event *e = &l->ev[j];
        if (e->kind == SESS_EV_TOKEN && sess_interrupted(s)) {
            ms_seterr(err, "interrupted after %ld of %ld events; nothing changed", *steps, i - (j - *steps));
            return -1;
        }
        int drawn;
        if (watched && e->kind == SESS_EV_TOKEN && s->watch.before) s->watch.before(s->watch.ctx);
        if (sess_apply(s, p, e, e->kind == SESS_EV_TOKEN ? NULL : &l->ed[e->arg], watched, &drawn, err) != 0)
            return -1;
        if (watched && e->kind == SESS_EV_TOKEN && s->watch.after) s->watch.after(s->watch.ctx);
        (*steps)++;
        if ((j + 1) % l->gap == 0) ck_periodic(s, l, j + 1, p);
    }
    return 0;
}

/* the current point moves to global index g of the current branch */
static int goto_g(sess *s, long g, long *replayed, ms_err *err)
{
    sess_branch *b = &s->branches[s->cur_branch];
    long steps = 0;
    sess_pt_copy(&s->tmp, &s->cur, &s->model->cfg);   /* to put back on failure */
    if (seek(s, sess_branch_tip(s, s->cur_branch), g, &s->cur, b->cursor, 1, &steps, err) != 0) {
        sess_pt_swap(&s->cur, &s->tmp);
        sess_traces_stale(s);
        return -1;
    }
    b->cursor = g;
    sess_cur_tokens(s, -1);
    s->sampled_id = -1;
    s->version++;
    if (replayed) *replayed = steps;
    return 0;
}

int sess_goto(sess *s, long g, long *replayed, ms_err *err)
{
    long tip = sess_hist_len(sess_branch_tip(s, s->cur_branch));
    if (g < 0 || g > tip) {
        ms_seterr(err, "event %ld is not on branch %s: its events are 0..%ld", g, s->branch, tip);
        return -1;
    }
    return goto_g(s, g, replayed, err);
}

int sess_goto_pos(sess *s, int64_t pos, long *replayed, ms_err *err)
{
    sess_hist tip = sess_branch_tip(s, s->cur_branch);
    const sess_log *root = tip.log;
    while (root->parent) root = root->parent;
    if (pos < root->pos0 || pos > tip.log->pos_end) {
        ms_seterr(err, "position %lld is not on branch %s: its positions are %lld..%lld", (long long)pos,
                  s->branch, (long long)root->pos0, (long long)tip.log->pos_end);
        return -1;
    }
    /* the deepest log of the chain whose positions hold pos */
    const sess_log *l = tip.log;
    long cut = tip.n;
    while (l->parent && pos < l->pos0) {
        cut = l->parent_n;
        l = l->parent;
    }
    /* the last event at pos: just before the token that leaves it */
    int k = 0;
    for (int a = 0; a < l->n_ck && l->ck[a].idx <= cut; a++)
        if (l->ck[a].fz->pt.position <= pos) k = a;
    long j = l->ck[k].idx;
    int64_t p = l->ck[k].fz->pt.position;
    for (; j < cut; j++) {
        if (l->ev[j].kind != SESS_EV_TOKEN) continue;
        if (p == pos) break;
        p++;
    }
    return goto_g(s, l->base_g + j, replayed, err);
}

int sess_branch_find(const sess *s, const char *name)
{
    for (int i = 0; i < s->n_branches; i++)
        if (!strcmp(s->branches[i].name, name)) return i;
    return -1;
}

const char *sess_branch_name(const sess *s, int i)
{
    return i >= 0 && i < s->n_branches ? s->branches[i].name : NULL;
}

/* position at global index g of the chain of tip */
static int64_t pos_at(sess_hist tip, long g)
{
    const sess_log *l = tip.log;
    while (l->parent && g < l->base_g) l = l->parent;
    return log_pos_at(l, g - l->base_g);
}

void sess_branch_get(const sess *s, int i, sess_branch_info *bi)
{
    const sess_branch *b = &s->branches[i];
    sess_hist tip = sess_branch_tip(s, i);
    memset(bi, 0, sizeof *bi);
    bi->name = b->name;
    bi->parent = -1;
    bi->current = i == s->cur_branch;
    bi->cursor = b->cursor;
    bi->tip = sess_hist_len(tip);
    bi->own_events = b->log->n;
    bi->tip_position = b->log->pos_end;
    bi->position = bi->current ? s->cur.position : pos_at(tip, b->cursor);
    bi->fork_position = b->log->pos0;
    const sess_log *root = b->log;
    while (root->parent) root = root->parent;
    bi->origin_position = root->pos0;
    /* the parent: the nearest ancestor log that is some branch's log */
    for (const sess_log *a = b->log->parent; a && bi->parent < 0; a = a->parent)
        for (int k = 0; k < s->n_branches; k++)
            if (k != i && s->branches[k].log == a) {
                bi->parent = k;
                break;
            }
    bi->edited = hist_edited(sess_hist_at(tip, b->cursor));
}

int sess_fork(sess *s, const char *name, ms_err *err)
{
    if (sess_name_free(s, name, err) != 0 || branch_room(s, err) != 0) return -1;
    sess_frozen *fz = sess_fz_copy(s, &s->cur);
    sess_log *l = fz ? sess_log_child(s, sess_cur_hist(s), fz) : NULL;
    if (!l) {
        sess_fz_unref(fz);
        ms_seterr(err, "out of memory for a branch");
        return -1;
    }
    sess_branch *b = &s->branches[s->n_branches];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->log = l;
    b->cursor = l->base_g;
    s->cur_branch = s->n_branches++;
    snprintf(s->branch, sizeof s->branch, "%s", name);
    s->version++;
    return 0;
}

int sess_switch(sess *s, int i, ms_err *err)
{
    if (i == s->cur_branch) return 0;
    long steps;
    sess_pt_copy(&s->tmp, &s->cur, &s->model->cfg);
    if (seek(s, sess_branch_tip(s, i), s->branches[i].cursor, &s->cur, -1, 1, &steps, err) != 0) {
        sess_pt_swap(&s->cur, &s->tmp);
        sess_traces_stale(s);
        return -1;
    }
    s->cur_branch = i;
    snprintf(s->branch, sizeof s->branch, "%s", s->branches[i].name);
    sess_cur_tokens(s, -1);
    s->sampled_id = -1;
    s->version++;
    return 0;
}

int sess_branch_drop(sess *s, int i, ms_err *err)
{
    if (i == s->cur_branch) {
        ms_seterr(err, "'%s' is the current branch; switch to another first", s->branches[i].name);
        return -1;
    }
    sess_log_unref(s, s->branches[i].log);
    memmove(&s->branches[i], &s->branches[i + 1], (size_t)(s->n_branches - i - 1) * sizeof *s->branches);
    s->n_branches--;
    if (s->cur_branch > i) s->cur_branch--;
    return 0;
}

int sess_branch_point(sess *s, int i, sess_point *out, ms_err *err)
{
    if (i == s->cur_branch) {
        sess_pt_copy(out, &s->cur, &s->model->cfg);
        return 0;
    }
    long steps;
    return seek(s, sess_branch_tip(s, i), s->branches[i].cursor, out, -1, 0, &steps, err);
}

/* ---- replay ---- */

/* the first difference of two points, as "max |Δ| = … at …" into r */
static void replay_compare(const sess *s, const sess_point *a, const sess_point *b, sess_replay_result *r)
{
    const ms_config *c = &s->model->cfg;
    tgt all = tgt_make(c, TGT_ALL, -1, -1);
    cmp_stats st;
    cmp_target(&all, a->state, b->state, &st);
    r->max_diff = st.max_d;
    if (st.max_d != 0 || st.max_d != st.max_d) cmp_where(c, &all, st.max_at, r->max_at, sizeof r->max_at);
    int same = !memcmp(a->state, b->state, ms_state_len(c) * sizeof(float));   /* bits: NaN == NaN here */
    if (a->has_logits != b->has_logits) {
        same = 0;
        snprintf(r->max_at, sizeof r->max_at, "the logits (one point has none)");
    } else if (a->has_logits && memcmp(a->logits, b->logits, (size_t)c->vocab * sizeof(float))) {
        same = 0;
        for (int v = 0; v < c->vocab; v++) {
            double d = fabs((double)a->logits[v] - b->logits[v]);
            if (d > r->max_diff || d != d) {
                r->max_diff = d;
                snprintf(r->max_at, sizeof r->max_at, "logit %d", v);
            }
        }
    }
    if (a->position != b->position || !sampler_eq(&a->sampler, &b->sampler)) {
        if (same) snprintf(r->max_at, sizeof r->max_at, a->position != b->position ? "the position" : "the sampler");
        same = 0;
    }
    r->same_as_current = same;
}

void sess_event_text(const sess *s, const sess_event *e, const sess_edit *ed, char *buf, size_t cap)
{
    char nm[64], t[64];
    switch ((sess_ev_kind)e->kind) {
    case SESS_EV_TOKEN:
        ms_tok_render(s->tok, e->arg, t, sizeof t);
        snprintf(buf, cap, "token %d \"%s\"%s", e->arg, t, e->flags & SESS_EVF_SAMPLED ? " (sampled)" : "");
        return;
    case SESS_EV_SAMPLER:
        snprintf(buf, cap, "set-sampler temp=%g top_p=%g top_k=%d seed=%llu", ed->sampler.temp, ed->sampler.top_p,
                 ed->sampler.top_k, (unsigned long long)ed->sampler.seed);
        return;
    case SESS_EV_GROW:
        snprintf(buf, cap, "grow %s", ed->text ? ed->text : "");
        return;
    case SESS_EV_EDIT:
        tgt_name(&ed->t, nm, sizeof nm);
        switch (ed->op) {
        case SESS_OP_SET: snprintf(buf, cap, "set %s %.9g", nm, ed->value); return;
        case SESS_OP_ZERO: snprintf(buf, cap, "zero %s", nm); return;
        case SESS_OP_SCALE: snprintf(buf, cap, "scale-state %s %.9g", nm, ed->value); return;
        case SESS_OP_NOISE: snprintf(buf, cap, "noise %s %.9g %llu", nm, ed->value, (unsigned long long)ed->seed); return;
        case SESS_OP_PATCH: snprintf(buf, cap, "patch %s from %s", nm, ed->src); return;
        }
    }
    snprintf(buf, cap, "?");
}

int sess_replay(sess *s, int from_snap, int verify, sess_replay_result *r, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    memset(r, 0, sizeof *r);
    sess_hist h = sess_cur_hist(s);
    long G = sess_hist_len(h), g0 = 0;
    const sess_point *start;
    if (from_snap >= 0) {
        const sess_snap *sn = &s->snaps[from_snap];
        if (!sess_hist_prefix(sn->hist, h)) {
            ms_seterr(err, "snapshot %s (position %lld, taken on %s) is not on the history of the current point; "
                      "replay starts from the origin or from a snapshot taken before here on this history",
                      sn->name, (long long)sn->pt.position, sn->branch);
            return -1;
        }
        start = &sn->pt;
        g0 = sess_hist_len(sn->hist);
    } else {
        const sess_log *root = h.log;
        while (root->parent) root = root->parent;
        start = &root->ck[0].fz->pt;
    }
    /* the segments from g0 to G, oldest last */
    int ns = 0;
    for (sess_log *l = h.log; l; l = l->parent) {
        ns++;
        if (l->base_g <= g0) break;
    }
    sess_log **segs = malloc(sizeof *segs * (size_t)ns);
    long *cuts = malloc(sizeof *cuts * (size_t)ns);
    if (!segs || !cuts) {
        free(segs);
        free(cuts);
        ms_seterr(err, "out of memory");
        return -1;
    }
    ns = 0;
    long cut = h.n;
    for (sess_log *l = h.log; l; cut = l->parent_n, l = l->parent) {
        segs[ns] = l;
        cuts[ns++] = cut;
        if (l->base_g <= g0) break;
    }
    /* replay in s->cur so the view follows; the original waits in s->tmp */
    sess_pt_copy(&s->tmp, &s->cur, c);
    sess_pt_copy(&s->cur, start, c);
    sess_traces_stale(s);
    r->from = g0;
    r->to = G;
    int rc = 0;
    for (int k = ns - 1; k >= 0 && rc == 0 && !r->bad; k--) {
        sess_log *l = segs[k];
        long j = g0 > l->base_g ? g0 - l->base_g : 0;
        if (verify && j == 0 && l->base_g > g0) {
            /* entering a log: its base point was stored when it was made */
            sess_replay_result t;
            memset(&t, 0, sizeof t);
            replay_compare(s, &s->cur, &l->ck[0].fz->pt, &t);
            if (!t.same_as_current) {
                r->bad = l->base_g;
                snprintf(r->what, sizeof r->what, "after event %ld (position %lld) the point differs from the one "
                         "stored where branch history continues (max |Δ| = %.3g at %s)", l->base_g,
                         (long long)s->cur.position, t.max_diff, t.max_at);
                break;
            }
        }
        for (; j < cuts[k]; j++) {
            const sess_event *e = &l->ev[j];
            const sess_edit *ed = e->kind == SESS_EV_TOKEN ? NULL : &l->ed[e->arg];
            long g = l->base_g + j + 1;   /* 1-based step number = the event's global index + 1 */
            if (e->kind == SESS_EV_TOKEN && sess_interrupted(s)) {
                ms_seterr(err, "interrupted after %ld of %ld events; nothing changed", r->steps, G - g0);
                rc = -1;
                break;
            }
            int drawn = -1;
            if (e->kind == SESS_EV_TOKEN && s->watch.before) s->watch.before(s->watch.ctx);
            if (sess_apply(s, &s->cur, e, ed, e->kind == SESS_EV_TOKEN, &drawn, err) != 0) {
                rc = -1;
                break;
            }
            if (e->kind == SESS_EV_TOKEN && s->watch.after) s->watch.after(s->watch.ctx);
            r->steps++;
            if (!verify) continue;
            char d[200];
            sess_event_text(s, e, ed, d, sizeof d);
            if (drawn >= 0 && drawn != e->arg) {
                char t[64];
                ms_tok_render(s->tok, drawn, t, sizeof t);
                r->bad = g;
                snprintf(r->what, sizeof r->what, "step %ld (%s, to position %lld): the sampler draws token %d "
                         "\"%s\" there", g, d, (long long)s->cur.position, drawn, t);
                break;
            }
            if (e->flags & SESS_EVF_NOCHECK) {
                r->unchecked++;
            } else {
                uint32_t sc, lc;
                sess_pt_checks(s, &s->cur, &sc, &lc);
                if (sc != e->state_check || lc != e->logits_check) {
                    r->bad = g;
                    snprintf(r->what, sizeof r->what, "step %ld (%s, at position %lld): the %s after it differ%s from "
                             "the recording (checksum %08x, recorded %08x)", g, d, (long long)s->cur.position,
                             sc != e->state_check ? "state" : "logits", sc != e->state_check ? "s" : "",
                             sc != e->state_check ? sc : lc, sc != e->state_check ? e->state_check : e->logits_check);
                    break;
                }
            }
            /* a stored checkpoint here: the bytes must be equal */
            const sess_ckpt *ck = &l->ck[ck_find(l, j + 1)];
            if (ck->idx == j + 1) {
                sess_replay_result t;
                memset(&t, 0, sizeof t);
                replay_compare(s, &s->cur, &ck->fz->pt, &t);
                if (!t.same_as_current) {
                    r->bad = g;
                    snprintf(r->what, sizeof r->what, "step %ld (%s, at position %lld): the point differs from the "
                             "one stored there (max |Δ| = %.3g at %s)", g, d, (long long)s->cur.position,
                             t.max_diff, t.max_at);
                    break;
                }
            }
        }
    }
    free(segs);
    free(cuts);
    if (rc != 0 || r->bad) {
        sess_pt_swap(&s->cur, &s->tmp);   /* nothing changed */
        sess_traces_stale(s);
        if (rc == 0) {
            r->verified = 0;
            r->same_as_current = 0;
        }
        return rc;
    }
    r->verified = verify && !r->unchecked;
    replay_compare(s, &s->cur, &s->tmp, r);
    if (!r->same_as_current) {
        /* the replayed point is the current one from now on, and the branch
         * goes on from it (a later --verify names where it departs) */
        sess_frozen *fz = sess_fz_copy(s, &s->cur);
        if (!fz || sess_rehome(s, h, fz, SESS_ORIGIN_STATE, err) != 0) {
            if (!fz) ms_seterr(err, "out of memory");
            sess_pt_swap(&s->cur, &s->tmp);
            return -1;
        }
    }
    sess_cur_tokens(s, -1);
    if (r->same_as_current) r->max_diff = 0;
    s->version++;
    return 0;
}

/* ---- growth ---- */

int sess_adopt_grown(sess *s, ms_model *grown, sess_state_map map, void *ctx, const char *text, ms_err *err)
{
    const ms_config *c0 = &s->model->cfg, *c1 = &grown->cfg;
    if (c1->vocab != c0->vocab || c1->tokenizer != c0->tokenizer) {
        ms_seterr(err, "the grown model has another vocabulary (%d tokens) or tokenizer than the session's "
                  "(%d): growth keeps them", c1->vocab, c0->vocab);
        return -1;
    }
    int nb = s->n_branches, nsn = s->n_snaps, fail = 0;
    sess_frozen **bf = calloc((size_t)nb + 1, sizeof *bf), **sf = calloc((size_t)nsn + 1, sizeof *sf);
    sess_log **bl = calloc((size_t)nb + 1, sizeof *bl), **sl = calloc((size_t)nsn + 1, sizeof *sl);
    sess_point old, cur1, tmp1;
    memset(&cur1, 0, sizeof cur1);
    memset(&tmp1, 0, sizeof tmp1);
    ms_ws *ws = ms_ws_new(grown);
    float *ss = malloc(ms_state_len(c1) * sizeof(float));
    fail = !bf || !sf || !bl || !sl || !ws || !ss || sess_pt_alloc(c0, &old) != 0 ||
           sess_pt_alloc(c1, &cur1) != 0 || sess_pt_alloc(c1, &tmp1) != 0;
    /* every branch at its cursor and every snapshot, mapped */
    for (int i = 0; !fail && i < nb + nsn; i++) {
        const sess_point *p;
        if (i < nb) {
            if (sess_branch_point(s, i, &old, err) != 0) {
                fail = 2;
                break;
            }
            p = &old;
        } else {
            p = &s->snaps[i - nb].pt;
        }
        sess_point q = { .state = ss, .logits = p->logits, .has_logits = p->has_logits, .position = p->position,
                         .sampler = p->sampler };
        map(ctx, p->state, ss);
        sess_frozen *f = sess_fz_new(c1, &q);
        if (!f) {
            fail = 1;
            break;
        }
        if (i < nb) bf[i] = f;
        else sf[i - nb] = f;
    }
    /* their new histories: a root at the mapped point and one GROW event */
    sess_edit ge;
    memset(&ge, 0, sizeof ge);
    ge.text = (char *)(text ? text : "grow");
    for (int i = 0; !fail && i < nb + nsn; i++) {
        sess_frozen *f = i < nb ? bf[i] : sf[i - nb];
        sess_log *l = sess_log_root(s, f, SESS_ORIGIN_STATE);
        if (!l) {
            fail = 1;
            break;
        }
        f->refs++;   /* the log holds one, the snapshot (or cur) the other */
        if (i < nb) bl[i] = l;
        else sl[i - nb] = l;
        sess_event e = { .kind = SESS_EV_GROW };
        uint32_t sc = cmp_hash(f->pt.state, ms_state_len(c1));
        uint32_t lc = f->pt.has_logits ? cmp_hash(f->pt.logits, (size_t)c1->vocab) : 0;
        e.state_check = sc;
        e.logits_check = lc;
        if (sess_log_append_raw(l, &e, &ge, err) != 0) {
            fail = 1;
            break;
        }
    }
    if (fail) {
        if (fail == 1) ms_seterr(err, "out of memory while growing the session's states");
        for (int i = 0; i < nb; i++) {
            if (bl && bl[i]) sess_log_unref(s, bl[i]);
            if (bf && bf[i]) sess_fz_unref(bf[i]);
        }
        for (int i = 0; i < nsn; i++) {
            if (sl && sl[i]) sess_log_unref(s, sl[i]);
            if (sf && sf[i]) sess_fz_unref(sf[i]);
        }
        free(bf); free(sf); free(bl); free(sl);
        sess_pt_free(&old);
        sess_pt_free(&cur1);
        sess_pt_free(&tmp1);
        free(ss);
        if (ws) ms_ws_free(ws);
        return -1;
    }
    /* commit: nothing below can fail */
    int kept[4096], nk = 0;
    for (int l = 0; s->traces && l < c0->n_layer && nk < 4096; l++)
        if (s->traces[l].r) kept[nk++] = l;
    for (int i = 0; i < nb; i++) {
        sess_log_unref(s, s->branches[i].log);
        s->branches[i].log = bl[i];
        s->branches[i].cursor = 1;
    }
    for (int i = 0; i < nsn; i++) {
        sess_snap *sn = &s->snaps[i];
        sess_hist_unref(s, sn->hist);
        sess_fz_unref(sn->fz);
        sn->fz = sf[i];
        sn->pt = sf[i]->pt;
        sn->hist = (sess_hist){ sl[i], 1 };
    }
    sess_pt_copy(&cur1, &bf[s->cur_branch]->pt, c1);
    for (int i = 0; i < nb; i++) sess_fz_unref(bf[i]);
    sess_fz_unref(s->spare);   /* sized for the old model */
    s->spare = NULL;
    for (int l = 0; s->traces && l < c0->n_layer; l++) sess_keep_layer(s, l, 0, err);
    free(s->traces);
    s->traces = NULL;
    s->n_kept = 0;
    sess_pt_free(&s->cur);
    sess_pt_free(&s->tmp);
    s->cur = cur1;
    s->tmp = tmp1;
    free(s->scratch_state);
    s->scratch_state = ss;
    ms_ws_free(s->ws);
    s->ws = ws;
    sess_backend_model_gone(s);
    ms_model_free(s->model);
    s->model = grown;
    for (int i = 0; i < nk; i++) sess_keep_layer(s, kept[i], 1, err);
    sess_cur_tokens(s, -1);
    s->sampled_id = -1;
    s->version++;
    free(bf); free(sf); free(bl); free(sl);
    sess_pt_free(&old);
    return 0;
}
