/* cmd_edit.c: the commands that edit a state target (set, zero,
 * scale-state, noise, patch), that print targets after every step
 * (display, undisplay), and that write a target to a file (export to .csv
 * and .npy; .png is the view's, see commands.c).
 *
 * Every argument is checked before the session is asked to change
 * anything; the edit itself, its refusal when a result would not be
 * finite, and its recording in the branch's history are sess_edit_do's.
 */
#include "cmd_impl.h"
#include "args.h"
#include "compare.h"
#include "safetensors.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CE_FLT_MAX 3.4028234663852886e38   /* the largest float32 */

static int ce_number(cmd_call *c, const char *what, const char *s, double lo, double *v)
{
    if (arg_double(s, lo, CE_FLT_MAX, v) == 0) return 0;
    if (lo >= 0)
        return cmd_fail(c, "%s must be a finite number from 0 to 3.4e38 (float32), got '%s'", what, cmd_q(s));
    return cmd_fail(c, "%s must be a finite number within ±3.4e38 (float32), got '%s'", what, cmd_q(s));
}

/* record the edit and report it */
static int ce_do(cmd_call *c, sess_edit *ed, const char *verb)
{
    sess *s = c->s;
    if (sess_edit_do(s, ed, c->err) != 0) return -1;
    char nm[64];
    size_t n = tgt_size(&ed->t);
    long ev = sess_hist_len(sess_cur_hist(s));
    out_text(c->o, "%s %s (%zu value%s) at position %" PRId64 ", event %ld (edited)", verb,
             tgt_name(&ed->t, nm, sizeof nm), n, n == 1 ? "" : "s", s->cur.position, ev);
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "target", nm);
    cJSON_AddNumberToObject(o, "values", (double)n);
    cJSON_AddNumberToObject(o, "position", (double)s->cur.position);
    cJSON_AddNumberToObject(o, "event", (double)ev);
    cJSON_AddTrueToObject(o, "edited");
    return 0;
}

static int ce_edit(cmd_call *c, sess_op op, sess_edit *ed)
{
    memset(ed, 0, sizeof *ed);
    ed->op = op;
    return cmd_target(c, c->argv[0], &ed->t);
}

int cmd_set(cmd_call *c)
{
    sess_edit ed;
    if (ce_edit(c, SESS_OP_SET, &ed) != 0 || ce_number(c, "VALUE", c->argv[1], -CE_FLT_MAX, &ed.value) != 0)
        return -1;
    char verb[64];
    snprintf(verb, sizeof verb, "set to %.9g:", (double)(float)ed.value);
    return ce_do(c, &ed, verb);
}

int cmd_zero(cmd_call *c)
{
    sess_edit ed;
    if (ce_edit(c, SESS_OP_ZERO, &ed) != 0) return -1;
    return ce_do(c, &ed, "zeroed");
}

int cmd_scale_state(cmd_call *c)
{
    sess_edit ed;
    if (ce_edit(c, SESS_OP_SCALE, &ed) != 0 || ce_number(c, "F", c->argv[1], -CE_FLT_MAX, &ed.value) != 0)
        return -1;
    char verb[64];
    snprintf(verb, sizeof verb, "scaled by %.9g:", (double)(float)ed.value);
    return ce_do(c, &ed, verb);
}

int cmd_noise(cmd_call *c)
{
    sess_edit ed;
    if (ce_edit(c, SESS_OP_NOISE, &ed) != 0 || ce_number(c, "SIGMA", c->argv[1], 0, &ed.value) != 0) return -1;
    if (c->argc > 2) {
        if (arg_u64(c->argv[2], &ed.seed) != 0)
            return cmd_fail(c, "SEED must be an integer from 0 to %" PRIu64 ", got '%s'", UINT64_MAX,
                            cmd_q(c->argv[2]));
    } else {
        /* from the sampler's seed and the event's index: the same commands give the same noise */
        uint64_t g = (uint64_t)sess_hist_len(sess_cur_hist(c->s)) + 1;
        ed.seed = c->s->cur.sampler.seed ^ (g * 0x9E3779B97F4A7C15ULL);
    }
    char verb[96];
    snprintf(verb, sizeof verb, "added noise sigma=%.9g seed=%" PRIu64 " to", ed.value, ed.seed);
    if (ce_do(c, &ed, verb) != 0) return -1;
    char sd[24];
    snprintf(sd, sizeof sd, "%" PRIu64, ed.seed);
    cJSON_AddStringToObject(out_obj(c->o), "seed", sd);
    return 0;
}

int cmd_patch(cmd_call *c)
{
    sess_edit ed;
    if (ce_edit(c, SESS_OP_PATCH, &ed) != 0) return -1;
    if (strcmp(c->argv[1], "from") != 0)
        return cmd_fail(c, "expected 'from', got '%s' (usage: patch TARGET from SRC)", cmd_q(c->argv[1]));
    cmd_point src;
    if (cmd_point_get(c, c->argv[2], &src) != 0) return -1;
    ed.data = malloc(tgt_size(&ed.t) * sizeof(float) + 1);
    if (!ed.data) {
        cmd_point_put(&src);
        return cmd_fail(c, "out of memory");
    }
    tgt_get(&ed.t, src.p->state, ed.data);
    snprintf(ed.src, sizeof ed.src, "%s", src.name);
    cmd_point_put(&src);
    char verb[120];
    snprintf(verb, sizeof verb, "patched from %s:", ed.src);
    int rc = ce_do(c, &ed, verb);
    free(ed.data);
    if (rc == 0) cJSON_AddStringToObject(out_obj(c->o), "from", ed.src);
    return rc;
}

/* ---- display ---- */

/* index of element k of t as "[i,j]" (or "[k]"); "" for a single value */
static void ce_index(const tgt *t, size_t k, char *buf, size_t cap)
{
    if (t->ndim == 2) snprintf(buf, cap, "[%zu,%zu]", k / t->shape[1], k % t->shape[1]);
    else if (t->ndim == 1) snprintf(buf, cap, "[%zu]", k);
    else buf[0] = 0;
}

int cmd_held_set(cmd_call *c, cmd_held *h, const char *text)
{
    if (cmd_target(c, text, &h->t) != 0) return -1;
    tgt_name(&h->t, h->name, sizeof h->name);
    h->cfg = c->s->model->cfg;
    return 0;
}

int cmd_held_check(cmd_call *c, cmd_held *h)
{
    const ms_config *now = &c->s->model->cfg;
    if (!memcmp(&h->cfg, now, sizeof *now)) return 0;
    char why[sizeof c->err->msg];
    tgt t;
    if (tgt_parse(now, h->name, &t, why, sizeof why) != 0) {
        cmd_fail(c, "%s", why);
        return -1;
    }
    h->t = t;
    h->cfg = *now;
    return 0;
}

void cmd_display_refit(cmd_call *c)
{
    struct cmd_dbg *g = c->e->dbg;
    if (!g || !c->s->model) return;
    ms_err keep = *c->err;
    for (int i = 0; i < g->n_disp;) {
        if (cmd_held_check(c, &g->disp[i].h) == 0) {
            i++;
            continue;
        }
        out_text(c->o, "display %d (%s) removed: this model has no such target (%s)", g->disp[i].id,
                 g->disp[i].h.name, c->err->msg);
        memmove(&g->disp[i], &g->disp[i + 1], (size_t)(g->n_disp - i - 1) * sizeof *g->disp);
        g->n_disp--;
    }
    *c->err = keep;
}

static void ce_show_one(cmd_call *c, const cmd_disp *dd, cJSON *arr)
{
    const float *st = c->s->cur.state;
    const cmd_held *d = &dd->h;
    size_t n = tgt_size(&d->t);
    char nm[64];
    tgt_name(&d->t, nm, sizeof nm);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", dd->id);
    cJSON_AddStringToObject(o, "target", nm);
    float small[8];
    if (n <= 8) {
        tgt_get(&d->t, st, small);
        char line[400];
        size_t len = (size_t)snprintf(line, sizeof line, "%d: %s =", dd->id, nm);
        cJSON *v = cJSON_AddArrayToObject(o, "values");
        for (size_t k = 0; k < n; k++) {
            len += (size_t)snprintf(line + len, sizeof line - len, " %.9g", (double)small[k]);
            cJSON_AddItemToArray(v, cJSON_CreateNumber(small[k]));
        }
        out_text(c->o, "%s", line);
    } else {
        double sq = 0, sum = 0, lo = INFINITY, hi = -INFINITY;
        size_t lo_at = 0, hi_at = 0, k = 0, bad = 0;
        for (size_t r = 0; r < d->t.count; r++) {
            const float *p = st + d->t.off + r * d->t.stride;
            for (size_t j = 0; j < d->t.len; j++, k++) {
                double x = p[j];
                if (!isfinite(x)) { bad++; continue; }
                sq += x * x;
                sum += x;
                if (x < lo) { lo = x; lo_at = k; }
                if (x > hi) { hi = x; hi_at = k; }
            }
        }
        char li[40], hi_s[40], shape[40];
        ce_index(&d->t, lo_at, li, sizeof li);
        ce_index(&d->t, hi_at, hi_s, sizeof hi_s);
        if (d->t.ndim == 2) snprintf(shape, sizeof shape, "%zux%zu", d->t.shape[0], d->t.shape[1]);
        else snprintf(shape, sizeof shape, "%zu", d->t.shape[0]);
        out_text(c->o, "%d: %s (%s): norm %.6g, mean %.6g, min %.6g at %s, max %.6g at %s%s", dd->id, nm, shape,
                 sqrt(sq), sum / (double)n, lo, li, hi, hi_s, bad ? " (non-finite values!)" : "");
        cJSON_AddNumberToObject(o, "norm", sqrt(sq));
        cJSON_AddNumberToObject(o, "mean", sum / (double)n);
        cJSON_AddNumberToObject(o, "min", lo);
        cJSON_AddNumberToObject(o, "max", hi);
        if (bad) cJSON_AddNumberToObject(o, "nonfinite", (double)bad);
    }
    cJSON_AddItemToArray(arr, o);
}

void cmd_display_show(cmd_call *c)
{
    struct cmd_dbg *g = c->e->dbg;
    if (!g || !g->n_disp) return;
    cmd_display_refit(c);
    if (!g->n_disp) return;
    cJSON *obj = out_obj(c->o);
    cJSON_DeleteItemFromObjectCaseSensitive(obj, "display");
    cJSON *arr = cJSON_AddArrayToObject(obj, "display");
    for (int i = 0; i < g->n_disp; i++) ce_show_one(c, &g->disp[i], arr);
}

void cmd_display_free(cmd_env *e)
{
    if (e->dbg) e->dbg->n_disp = 0;
}

int cmd_display(cmd_call *c)
{
    struct cmd_dbg *g = cmd_dbg(c->e);
    if (!g) return cmd_fail(c, "out of memory");
    if (!c->argc) {
        cmd_display_refit(c);
        if (!g->n_disp) out_text(c->o, "no displays ('display TARGET' adds one)");
        cJSON *arr = cJSON_AddArrayToObject(out_obj(c->o), "displays");
        for (int i = 0; i < g->n_disp; i++) {
            char nm[64];
            out_text(c->o, "%d: %s", g->disp[i].id, tgt_name(&g->disp[i].h.t, nm, sizeof nm));
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "id", g->disp[i].id);
            cJSON_AddStringToObject(o, "target", nm);
            cJSON_AddItemToArray(arr, o);
        }
        return 0;
    }
    cmd_held h;
    if (cmd_held_set(c, &h, c->argv[0]) != 0) return -1;
    if (g->n_disp == CMD_MAX_DISPLAY)
        return cmd_fail(c, "%d displays already; 'undisplay N' removes one", CMD_MAX_DISPLAY);
    cmd_display_refit(c);
    cmd_disp *d = &g->disp[g->n_disp++];
    d->id = ++g->next_id;
    d->h = h;
    cJSON *arr = cJSON_AddArrayToObject(out_obj(c->o), "display");
    ce_show_one(c, d, arr);
    return 0;
}

int cmd_undisplay(cmd_call *c)
{
    struct cmd_dbg *g = cmd_dbg(c->e);
    if (!g) return cmd_fail(c, "out of memory");
    if (!c->argc) {
        out_text(c->o, "removed %d display%s", g->n_disp, g->n_disp == 1 ? "" : "s");
        cJSON_AddNumberToObject(out_obj(c->o), "removed", g->n_disp);
        g->n_disp = 0;
        return 0;
    }
    long id;
    int k = -1;
    if (arg_long(c->argv[0], 1, 1000000000L, &id) == 0)
        for (int i = 0; i < g->n_disp; i++)
            if (g->disp[i].id == id) k = i;
    if (k < 0) {
        char list[200] = "";
        size_t len = 0;
        for (int i = 0; i < g->n_disp && len < sizeof list - 16; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%d", i ? ", " : "", g->disp[i].id);
        return cmd_fail(c, "no display '%s' (%s%s)", cmd_q(c->argv[0]), g->n_disp ? "displays: " : "there are none",
                        list);
    }
    memmove(&g->disp[k], &g->disp[k + 1], (size_t)(g->n_disp - k - 1) * sizeof *g->disp);
    g->n_disp--;
    out_text(c->o, "removed display %ld", id);
    cJSON_AddNumberToObject(out_obj(c->o), "removed", 1);
    return 0;
}

/* ---- export to .csv and .npy ---- */

typedef struct { char *b; size_t len, cap; } ce_buf;

static int ce_add(ce_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ce_add(ce_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->b ? b->b + b->len : NULL, b->b ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return -1;
        if (b->b && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return 0;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *v = realloc(b->b, cap);
        if (!v) return -1;
        b->b = v;
        b->cap = cap;
    }
}

/* The .npy (format 1.0) bytes of n floats of the given shape: magic, a
 * header dict padded with spaces to end at a multiple of 64 with '\n',
 * then the little-endian data. */
static int ce_npy(ce_buf *b, const tgt *t, const float *v, size_t n)
{
    char shape[64];
    if (t->ndim == 0) snprintf(shape, sizeof shape, "()");
    else if (t->ndim == 1) snprintf(shape, sizeof shape, "(%zu,)", t->shape[0]);
    else snprintf(shape, sizeof shape, "(%zu, %zu)", t->shape[0], t->shape[1]);
    char dict[160];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t hlen = (size_t)dl + 1, total = 10 + hlen;
    total = (total + 63) / 64 * 64;
    hlen = total - 10;
    b->cap = total + n * sizeof(float) + 1;
    if (!(b->b = malloc(b->cap))) return -1;
    memcpy(b->b, "\x93NUMPY\x01\x00", 8);
    b->b[8] = (char)(hlen & 0xff);
    b->b[9] = (char)(hlen >> 8);
    memcpy(b->b + 10, dict, (size_t)dl);
    memset(b->b + 10 + dl, ' ', hlen - (size_t)dl - 1);
    b->b[total - 1] = '\n';
    memcpy(b->b + total, v, n * sizeof(float));   /* little-endian host (statefile.c checks) */
    b->len = total + n * sizeof(float);
    return 0;
}

int cmd_export_data(cmd_call *c, const char *target, const char *path)
{
    tgt t;
    if (cmd_target(c, target, &t) != 0 || cmd_check_target(c, path) != 0) return -1;
    const char *dot = strrchr(path, '.');
    int npy = !strcasecmp(dot, ".npy");
    size_t n = tgt_size(&t);
    float *v = malloc(n * sizeof(float) + 1);
    if (!v) return cmd_fail(c, "out of memory");
    tgt_get(&t, c->s->cur.state, v);
    ce_buf b = { 0 };
    int bad = 0;
    if (npy) {
        bad = ce_npy(&b, &t, v, n);
    } else {
        size_t cols = t.ndim == 2 ? t.shape[1] : n ? n : 1;
        for (size_t k = 0; k < n && !bad; k++)
            bad = ce_add(&b, "%.9g%s", (double)v[k], (k + 1) % cols ? "," : "\n");
        if (!n) bad = ce_add(&b, "\n");
    }
    free(v);
    if (bad) {
        free(b.b);
        return cmd_fail(c, "out of memory");
    }
    int rc = ms_write_atomic(path, b.b, b.len, c->err);
    free(b.b);
    if (rc != 0) return -1;
    char nm[64], shape[64];
    tgt_name(&t, nm, sizeof nm);
    if (t.ndim == 0) snprintf(shape, sizeof shape, "()");
    else if (t.ndim == 1) snprintf(shape, sizeof shape, "(%zu)", t.shape[0]);
    else snprintf(shape, sizeof shape, "(%zu, %zu)", t.shape[0], t.shape[1]);
    out_text(c->o, "wrote %s %s at position %" PRId64 " to %s (%s, float32)", nm, shape, c->s->cur.position,
             cmd_q(path), npy ? ".npy" : ".csv");
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "target", nm);
    out_add_str(o, "path", path, strlen(path));
    cJSON *sh = cJSON_AddArrayToObject(o, "shape");
    for (int d = 0; d < t.ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t.shape[d]));
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    return 0;
}
