/* cmd_branch.c: the commands on branches and histories: fork, branches,
 * switch, drop-branch, goto, events, replay, checkpoints, and mem (what
 * the session holds).  The work is the session's (branch.c); these check
 * the words, call it, and report in text and JSON.
 */
#include "cmd_impl.h"
#include "args.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void cb_mb(double bytes, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.2f MB", bytes / 1e6);
}

static int cb_find_branch(cmd_call *c, const char *name)
{
    int i = sess_branch_find(c->s, name);
    if (i >= 0) return i;
    char list[300] = "";
    size_t len = 0;
    for (int k = 0; k < c->s->n_branches && len < sizeof list - 8; k++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? ", " : "", c->s->branches[k].name);
    if (len >= sizeof list - 8) snprintf(list + sizeof list - 8, 8, ", ...");
    return cmd_fail(c, "no branch '%s' (branches: %s)", cmd_q(name), list);
}

int cmd_fork(cmd_call *c)
{
    char from[SESS_NAME_MAX];
    snprintf(from, sizeof from, "%s", c->s->branch);
    if (sess_fork(c->s, c->argv[0], c->err) != 0) return -1;
    out_text(c->o, "forked %s from %s at position %" PRId64 "; now on %s ('switch %s' goes back)", c->argv[0], from,
             c->s->cur.position, c->argv[0], from);
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "name", c->argv[0]);
    cJSON_AddStringToObject(o, "from", from);
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    return 0;
}

static void cb_tree(cmd_call *c, const sess_branch_info *bi, int n, int node, int depth, cJSON *arr)
{
    const sess_branch_info *b = &bi[node];
    char fork[64] = "";
    if (b->parent >= 0) snprintf(fork, sizeof fork, "from %s at %" PRId64 ", ", bi[b->parent].name, b->fork_position);
    out_text(c->o, "%c %*s%-*s %sposition %" PRId64 " of %" PRId64 ", %ld event%s of its own%s", b->current ? '*' : ' ',
             2 * depth, "", 16 - 2 * depth > 1 ? 16 - 2 * depth : 1, b->name, fork, b->position, b->tip_position,
             b->own_events, b->own_events == 1 ? "" : "s", b->edited ? " (edited)" : "");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", b->name);
    if (b->parent >= 0) cJSON_AddStringToObject(o, "parent", bi[b->parent].name);
    else cJSON_AddNullToObject(o, "parent");
    cJSON_AddNumberToObject(o, "fork_position", (double)b->fork_position);
    cJSON_AddNumberToObject(o, "position", (double)b->position);
    cJSON_AddNumberToObject(o, "tip_position", (double)b->tip_position);
    cJSON_AddNumberToObject(o, "cursor", (double)b->cursor);
    cJSON_AddNumberToObject(o, "events", (double)b->tip);
    cJSON_AddNumberToObject(o, "own_events", (double)b->own_events);
    cJSON_AddBoolToObject(o, "edited", b->edited);
    cJSON_AddBoolToObject(o, "current", b->current);
    cJSON_AddItemToArray(arr, o);
    for (int k = 0; k < n; k++)
        if (bi[k].parent == node) cb_tree(c, bi, n, k, depth + 1, arr);
}

int cmd_branches(cmd_call *c)
{
    int n = c->s->n_branches;
    sess_branch_info *bi = malloc(sizeof *bi * (size_t)n);
    if (!bi) return cmd_fail(c, "out of memory");
    for (int i = 0; i < n; i++) sess_branch_get(c->s, i, &bi[i]);
    cJSON *arr = cJSON_AddArrayToObject(out_obj(c->o), "branches");
    for (int i = 0; i < n; i++)
        if (bi[i].parent < 0) cb_tree(c, bi, n, i, 0, arr);
    free(bi);
    return 0;
}

static void cb_report_at(cmd_call *c, const char *what, long replayed)
{
    sess_branch_info bi;
    sess_branch_get(c->s, c->s->cur_branch, &bi);
    out_text(c->o, "%s %s at position %" PRId64 " (event %ld of %ld; %ld replayed)%s", what, bi.name, bi.position,
             bi.cursor, bi.tip, replayed, bi.edited ? " (edited)" : "");
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "branch", bi.name);
    cJSON_AddNumberToObject(o, "position", (double)bi.position);
    cJSON_AddNumberToObject(o, "event", (double)bi.cursor);
    cJSON_AddNumberToObject(o, "events", (double)bi.tip);
    cJSON_AddNumberToObject(o, "replayed", (double)replayed);
    cJSON_AddBoolToObject(o, "edited", bi.edited);
}

int cmd_switch(cmd_call *c)
{
    int i = cb_find_branch(c, c->argv[0]);
    if (i < 0) return -1;
    if (sess_switch(c->s, i, c->err) != 0) return -1;
    cb_report_at(c, "on", -0L);
    return 0;
}

int cmd_drop_branch(cmd_call *c)
{
    int i = cb_find_branch(c, c->argv[0]);
    if (i < 0 || sess_branch_drop(c->s, i, c->err) != 0) return -1;
    out_text(c->o, "dropped branch %s", c->argv[0]);
    cJSON_AddStringToObject(out_obj(c->o), "name", c->argv[0]);
    return 0;
}

int cmd_goto(cmd_call *c)
{
    const char *a = c->argv[0];
    long replayed = 0, v;
    sess_branch_info bi;
    sess_branch_get(c->s, c->s->cur_branch, &bi);
    int rc;
    if (!strcmp(a, "end")) {
        rc = sess_goto(c->s, bi.tip, &replayed, c->err);
    } else if (a[0] == '@') {
        if (arg_long(a + 1, -1000000000000L, 1000000000000L, &v) != 0)
            return cmd_fail(c, "@EVENT must be an event number from 0 to %ld, got '%s'", bi.tip, cmd_q(a));
        rc = sess_goto(c->s, v, &replayed, c->err);
    } else if (arg_long(a, -1000000000000L, 1000000000000L, &v) == 0) {
        rc = sess_goto_pos(c->s, v, &replayed, c->err);
    } else {
        return cmd_fail(c, "POS must be a position from %" PRId64 " to %" PRId64 ", @EVENT (0 to %ld) or end; got '%s'",
                        bi.origin_position, bi.tip_position, bi.tip, cmd_q(a));
    }
    if (rc != 0) return -1;
    cb_report_at(c, "on", replayed);
    return 0;
}

int cmd_events(cmd_call *c)
{
    sess *s = c->s;
    sess_branch_info bi;
    sess_branch_get(s, s->cur_branch, &bi);
    long from, to = bi.tip, a, b;
    if (c->argc == 2) {
        if (arg_long(c->argv[0], 1, bi.tip > 0 ? bi.tip : 1, &a) != 0 || arg_long(c->argv[1], a, bi.tip > 0 ? bi.tip : 1, &b) != 0)
            return cmd_fail(c, "FROM and TO must be event numbers with 1 <= FROM <= TO <= %ld, got '%s' '%s'", bi.tip,
                            cmd_q(c->argv[0]), cmd_q(c->argv[1]));
        from = a - 1;
        to = b;
    } else {
        long n = 20;
        if (c->argc && arg_long(c->argv[0], 1, 1000000000L, &n) != 0)
            return cmd_fail(c, "N must be an integer from 1 to 1000000000, got '%s'", cmd_q(c->argv[0]));
        from = to > n ? to - n : 0;
    }
    sess_hist tip = sess_branch_tip(s, s->cur_branch);
    out_text(c->o, "branch %s: events %ld..%ld of %ld; '>' marks the current point (event %ld)", bi.name,
             from + 1, to, bi.tip, bi.cursor);
    cJSON *arr = cJSON_AddArrayToObject(out_obj(c->o), "events");
    if (from == 0 && bi.cursor == 0) out_text(c->o, ">     0  pos %-6" PRId64 " (origin)", bi.origin_position);
    int64_t pos = 0;
    for (long g = from; g < to; g++) {
        const sess_event *e;
        const sess_edit *ed;
        if (sess_hist_event(tip, g, &e, &ed, g == from ? &pos : NULL) != 0) break;
        if (g != from && e->kind == SESS_EV_TOKEN) pos++;
        char txt[400], chk[40];
        sess_event_text(s, e, ed, txt, sizeof txt);
        if (e->flags & SESS_EVF_NOCHECK) snprintf(chk, sizeof chk, "(no checksums)");
        else snprintf(chk, sizeof chk, "%08x %08x", e->state_check, e->logits_check);
        out_text(c->o, "%c %5ld  pos %-6" PRId64 " %-40s %s", g + 1 == bi.cursor ? '>' : ' ', g + 1, pos, txt, chk);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "event", (double)(g + 1));
        cJSON_AddNumberToObject(o, "position", (double)pos);
        static const char *const kinds[] = { "token", "edit", "sampler", "grow" };
        cJSON_AddStringToObject(o, "kind", kinds[e->kind & 3]);
        out_add_str(o, "what", txt, strlen(txt));
        if (e->kind == SESS_EV_TOKEN) cJSON_AddNumberToObject(o, "id", e->arg);
        if (!(e->flags & SESS_EVF_NOCHECK)) cJSON_AddStringToObject(o, "checks", chk);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddNumberToObject(out_obj(c->o), "cursor", (double)bi.cursor);
    return 0;
}

int cmd_replay(cmd_call *c)
{
    int verify = 0, from = -1;
    for (int i = 0; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--verify")) verify = 1;
        else if (from >= 0 || c->argv[i][0] == '-')
            return cmd_fail(c, "unexpected '%s' (usage: replay [FROM] [--verify])", cmd_q(c->argv[i]));
        else if ((from = cmd_find_snap(c, c->argv[i])) < 0) return -1;
    }
    sess_replay_result r;
    if (sess_replay(c->s, from, verify, &r, c->err) != 0) return -1;
    if (r.bad) return cmd_fail(c, "%s; nothing changed", r.what);
    char start[80];
    if (from >= 0) snprintf(start, sizeof start, "snapshot %s", c->s->snaps[from].name);
    else snprintf(start, sizeof start, "the origin");
    char checked[120] = "";
    if (verify)
        snprintf(checked, sizeof checked, r.unchecked ? "; %ld event%s had no recorded checksums" :
                 "; every step matches its recorded checksums", r.unchecked, r.unchecked == 1 ? "" : "s");
    if (r.same_as_current)
        out_text(c->o, "replayed %ld events (%ld..%ld) from %s%s; the result equals the current point bit for bit",
                 r.steps, r.from + 1, r.to, start, checked);
    else
        out_text(c->o, "replayed %ld events (%ld..%ld) from %s%s; the result differs from the point before "
                 "(max |d| = %.3g at %s) and is now the current point", r.steps, r.from + 1, r.to, start, checked,
                 r.max_diff, r.max_at);
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "from", from >= 0 ? c->s->snaps[from].name : "origin");
    cJSON_AddNumberToObject(o, "steps", (double)r.steps);
    cJSON_AddBoolToObject(o, "verified", r.verified);
    cJSON_AddNumberToObject(o, "unchecked", (double)r.unchecked);
    cJSON_AddBoolToObject(o, "identical", r.same_as_current);
    if (!r.same_as_current) {
        cJSON_AddNumberToObject(o, "max_diff", r.max_diff);
        cJSON_AddStringToObject(o, "max_at", r.max_at);
    }
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    return 0;
}

int cmd_checkpoints(cmd_call *c)
{
    sess *s = c->s;
    long every = s->ck_every, max = s->ck_max, v;
    for (int i = 0; i < c->argc; i++) {
        const char *a = c->argv[i];
        if (!strncmp(a, "every=", 6)) {
            if (arg_long(a + 6, 1, 1000000000L, &v) != 0)
                return cmd_fail(c, "every must be an integer from 1 to 1000000000, got '%s'", cmd_q(a + 6));
            every = v;
        } else if (!strncmp(a, "max=", 4)) {
            if (arg_long(a + 4, 1, 1000000L, &v) != 0)
                return cmd_fail(c, "max must be an integer from 1 to 1000000, got '%s'", cmd_q(a + 4));
            max = v;
        } else {
            return cmd_fail(c, "'%s' is not every=K or max=M", cmd_q(a));
        }
    }
    if (c->argc) sess_checkpoints_set(s, (int)every, (int)max);
    sess_ck_stats st;
    sess_checkpoints_stats(s, &st);
    char mb[32], eb[32];
    cb_mb((double)st.bytes, mb, sizeof mb);
    cb_mb((double)st.event_bytes, eb, sizeof eb);
    out_text(c->o, "checkpoints every %d events, at most %d: %ld now, plus %ld base points (%s); the longest gap is "
             "%ld events (goto replays at most that many); %ld events recorded (%s) in %ld histories",
             s->ck_every, s->ck_max, st.count, st.bases, mb, st.max_gap, st.events, eb, st.logs);
    cJSON *o = out_obj(c->o);
    cJSON_AddNumberToObject(o, "every", s->ck_every);
    cJSON_AddNumberToObject(o, "max", s->ck_max);
    cJSON_AddNumberToObject(o, "count", (double)st.count);
    cJSON_AddNumberToObject(o, "bases", (double)st.bases);
    cJSON_AddNumberToObject(o, "bytes", (double)st.bytes);
    cJSON_AddNumberToObject(o, "max_gap", (double)st.max_gap);
    cJSON_AddNumberToObject(o, "events", (double)st.events);
    cJSON_AddNumberToObject(o, "event_bytes", (double)st.event_bytes);
    return 0;
}

int cmd_mem(cmd_call *c)
{
    sess *s = c->s;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
        fclose(f);
    }
    double rss_b = (double)rss * (double)sysconf(_SC_PAGESIZE);
    size_t pb = (ms_state_len(&s->model->cfg) + (size_t)s->model->cfg.vocab) * sizeof(float);
    sess_ck_stats st;
    sess_checkpoints_stats(s, &st);
    char r[32], sn[32], ck[32], ev[32];
    cb_mb(rss_b, r, sizeof r);
    cb_mb((double)s->n_snaps * (double)pb, sn, sizeof sn);
    cb_mb((double)st.bytes, ck, sizeof ck);
    cb_mb((double)st.event_bytes, ev, sizeof ev);
    out_text(c->o, "resident %s; snapshots %d (%s), checkpoints %ld + %ld bases (%s), events %ld (%s), branches %d",
             rss_b > 0 ? r : "unknown", s->n_snaps, sn, st.count, st.bases, ck, st.events, ev, s->n_branches);
    cJSON *o = out_obj(c->o);
    cJSON_AddNumberToObject(o, "rss_bytes", rss_b);
    cJSON_AddNumberToObject(o, "snapshots", s->n_snaps);
    cJSON_AddNumberToObject(o, "snapshot_bytes", (double)s->n_snaps * (double)pb);
    cJSON_AddNumberToObject(o, "checkpoints", (double)st.count);
    cJSON_AddNumberToObject(o, "checkpoint_bytes", (double)st.bytes);
    cJSON_AddNumberToObject(o, "events", (double)st.events);
    cJSON_AddNumberToObject(o, "event_bytes", (double)st.event_bytes);
    cJSON_AddNumberToObject(o, "branches", s->n_branches);
    return 0;
}
