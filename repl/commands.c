/* commands.c: the command table, the interpreter, and the handlers of the
 * model, run, snapshot and session commands (see commands.h).  The
 * handlers of branches and replay are in cmd_branch.c, of edits, display
 * and export in cmd_edit.c, of diff and sweep in cmd_compare.c, of the
 * view in cmd_view.c and of grow/task/trace in cmd_model.c.
 *
 * A handler receives its words already counted against the table, checks
 * every value before it touches the session, and describes its result twice:
 * text lines (out_text) for people and fields (out_obj) for --json.  On a
 * bad value it returns -1 with one line in c->err saying what was wrong and
 * what is valid; cmd_run_line() reports it.  After a command that moved the
 * current point, cmd_run_line prints what the session noted (s->note) and
 * the displays; every top-level line is kept for `history` and appended to
 * the `record` file.
 */
#define _GNU_SOURCE   /* strcasestr */
#include "cmd_impl.h"
#include "args.h"
#include "safetensors.h"
#include "statefile.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD_MAX_N 1000000        /* most tokens one gen/step may produce */
#define CMD_MAX_FILE (256L << 20) /* largest file score @FILE reads */
#define CMD_MAX_DEPTH 16         /* source nesting */
#define CMD_SHOW_MAX 4096        /* bytes of fed text shown in text mode */

/* ---- small helpers ---- */

/* Fail with a message; every %s taken from user input must go through
 * cmd_q() so that junk bytes cannot reach the terminal. */
int cmd_fail(cmd_call *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ms_vseterr(c->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* quoted user input for messages; up to 4 live at once */
const char *cmd_q(const char *s)
{
    static char buf[4][200];
    static int k;
    k = (k + 1) % 4;
    return arg_quote(s, buf[k], sizeof buf[k]);
}

typedef struct { char *b; size_t len, cap; int oom; } cmd_sbuf;

static void cmd_sb_add(cmd_sbuf *sb, const char *s, size_t n)
{
    if (sb->oom) return;
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1) cap *= 2;
        char *b = realloc(sb->b, cap);
        if (!b) { sb->oom = 1; return; }
        sb->b = b;
        sb->cap = cap;
    }
    memcpy(sb->b + sb->len, s, n);
    sb->len += n;
    sb->b[sb->len] = 0;
}

/* Every writer checks its target under the one policy of fileio.h (no
 * symbolic links, only regular files) before it does any work, so that a
 * refused target costs nothing; the write itself checks again. */
int cmd_check_target(cmd_call *c, const char *path)
{
    return ms_check_write_target(path, c->err);
}

static const ms_config *cmd_cfg(cmd_call *c) { return &c->s->model->cfg; }

cJSON *cmd_int_array(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* the printable rendering of one token between quotes (a quote in it as
 * \"), into buf */
const char *cmd_tok(cmd_call *c, int id, char *buf, size_t cap)
{
    char r[256];
    ms_tok_render(c->s->tok, id, r, sizeof r);
    size_t k = 0;
    buf[k++] = '"';
    for (const char *p = r; *p && k + 4 < cap; p++) {
        if (*p == '"') buf[k++] = '\\';
        buf[k++] = *p;
    }
    buf[k++] = '"';
    buf[k] = 0;
    return buf;
}

static void cmd_add_tok(cmd_call *c, cJSON *obj, int id)
{
    char r[256];
    ms_tok_render(c->s->tok, id, r, sizeof r);
    out_add_str(obj, "token", r, strlen(r));
}

/* Snapshot lookup with a message that names the known ones. */
int cmd_find_snap(cmd_call *c, const char *name)
{
    int i = sess_snap_find(c->s, name);
    if (i >= 0) return i;
    sess *s = c->s;
    if (s->n_snaps == 0) {
        cmd_fail(c, "no snapshot '%s' (there are none; 'snap' makes one)", cmd_q(name));
        return -1;
    }
    char list[300] = "";
    size_t len = 0;
    for (int k = 0; k < s->n_snaps && len < sizeof list - 8; k++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", k ? ", " : "", s->snaps[k].name);
    if (len >= sizeof list - 8) snprintf(list + sizeof list - 8, 8, ", ...");
    cmd_fail(c, "no snapshot '%s' (snapshots: %s)", cmd_q(name), list);
    return -1;
}


int cmd_target(cmd_call *c, const char *text, tgt *t)
{
    return tgt_parse(cmd_cfg(c), text, t, c->err->msg, sizeof c->err->msg);
}

void cmd_note(cmd_call *c)
{
    if (!c->s->note[0]) return;
    out_text(c->o, "(%s)", c->s->note);
    cJSON_AddStringToObject(out_obj(c->o), "note", c->s->note);
    c->s->note[0] = 0;
}

int cmd_point_get(cmd_call *c, const char *word, cmd_point *pt)
{
    sess *s = c->s;
    memset(pt, 0, sizeof *pt);
    snprintf(pt->name, sizeof pt->name, "%.*s", SESS_NAME_MAX - 1, word);
    if (!strcmp(word, "now")) {
        pt->p = &s->cur;
        pt->kind = "now";
        return 0;
    }
    int i = sess_snap_find(s, word);
    if (i >= 0) {
        pt->p = &s->snaps[i].pt;
        pt->kind = "snapshot";
        return 0;
    }
    int b = sess_branch_find(s, word);
    if (b < 0) {
        char list[300] = "";
        size_t len = 0;
        for (int k = 0; k < s->n_snaps && len < sizeof list - 8; k++)
            len += (size_t)snprintf(list + len, sizeof list - len, ", %s", s->snaps[k].name);
        for (int k = 0; k < s->n_branches && len < sizeof list - 8; k++)
            len += (size_t)snprintf(list + len, sizeof list - len, ", %s", s->branches[k].name);
        if (len >= sizeof list - 8) snprintf(list + sizeof list - 8, 8, ", ...");
        return cmd_fail(c, "no snapshot or branch '%s' (valid: now%s)", cmd_q(word), list);
    }
    pt->kind = "branch";
    if (b == s->cur_branch) {
        pt->p = &s->cur;
        return 0;
    }
    if (sess_pt_alloc(cmd_cfg(c), &pt->own) != 0) return cmd_fail(c, "out of memory");
    if (sess_branch_point(s, b, &pt->own, c->err) != 0) {
        sess_pt_free(&pt->own);
        return -1;
    }
    pt->owned = 1;
    pt->p = &pt->own;
    return 0;
}

void cmd_point_put(cmd_point *pt)
{
    if (pt->owned) sess_pt_free(&pt->own);
    pt->owned = 0;
}

/* ---- decoding fed tokens into text ---- */

typedef struct {
    cmd_call *c;
    cmd_sbuf text;
    ms_utf8buf u;
    int stream;          /* 1: also print each piece as it comes (gen) */
    int *ids;            /* the ids fed, for JSON (gen) */
    int n_ids, cap_ids;
} cmd_decoder;

static void cmd_dec_piece(cmd_decoder *d, const char *piece, size_t n)
{
    cmd_sb_add(&d->text, piece, n);
    if (d->stream) out_raw(d->c->o, piece, n);
}

static void cmd_dec_token(void *ctx, int id)
{
    cmd_decoder *d = ctx;
    char piece[4096];
    size_t n = ms_tok_decode_stream(d->c->s->tok, &d->u, id, piece, sizeof piece);
    cmd_dec_piece(d, piece, n);
    if (d->n_ids == d->cap_ids) {
        int cap = d->cap_ids ? 2 * d->cap_ids : 64;
        int *v = realloc(d->ids, (size_t)cap * sizeof(int));
        if (!v) { d->text.oom = 1; return; }
        d->ids = v;
        d->cap_ids = cap;
    }
    d->ids[d->n_ids++] = id;
}

static void cmd_dec_flush(cmd_decoder *d)
{
    char piece[64];
    size_t n = ms_tok_decode_flush(&d->u, piece, sizeof piece);
    cmd_dec_piece(d, piece, n);
}

static void cmd_dec_free(cmd_decoder *d)
{
    free(d->text.b);
    free(d->ids);
}

/* Feed ids (already checked) and report: text line and JSON fields. */
static int cmd_feed_report(cmd_call *c, const int *ids, int n)
{
    cmd_decoder d;
    memset(&d, 0, sizeof d);
    d.c = c;
    int done;
    int rc = sess_feed(c->s, ids, n, cmd_dec_token, &d, &done, c->err);
    cmd_dec_flush(&d);
    if (rc == 0) {
        const char *txt = d.text.b ? d.text.b : "";
        size_t show = d.text.len < CMD_SHOW_MAX ? d.text.len : CMD_SHOW_MAX;
        char *q = malloc(show * 4 + 8);
        if (q) arg_quote_n(txt, show, q, show * 4 + 8);
        out_text(c->o, "+%d token%s, position %" PRId64 ": \"%s\"%s%s%s", done, done == 1 ? "" : "s",
                 c->s->cur.position, q ? q : "", show < d.text.len ? " (shown in part)" : "",
                 done < n ? " (interrupted)" : "", d.text.oom ? " (text incomplete: out of memory)" : "");
        free(q);
        cJSON *o = out_obj(c->o);
        cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
        cJSON_AddItemToObject(o, "tokens", cmd_int_array(ids, done));
        out_add_str(o, "text", txt, d.text.len);
        if (done < n) cJSON_AddTrueToObject(o, "interrupted");
        if (d.text.oom) cJSON_AddTrueToObject(o, "text_incomplete");
    }
    cmd_dec_free(&d);
    return rc;
}

/* ---- model ---- */

static int cmd_load(cmd_call *c)
{
    int dropped = 0;
    if (sess_load(c->s, c->argv[0], &dropped, c->err) != 0) return -1;
    char sum[96];
    ms_statefile_model_summary(c->s->model, sum, sizeof sum);
    char q[1200], note[80] = "";
    if (dropped)
        snprintf(note, sizeof note, " (%d snapshot%s of the previous model dropped)", dropped, dropped == 1 ? "" : "s");
    out_text(c->o, "loaded %s: %s, tokenizer %s%s", arg_quote_n(c->argv[0], strlen(c->argv[0]), q, sizeof q),
             sum, c->s->tok_desc, note);
    cJSON *o = out_obj(c->o);
    out_add_str(o, "path", c->argv[0], strlen(c->argv[0]));
    cJSON_AddStringToObject(o, "model", sum);
    cJSON_AddNumberToObject(o, "dropped_snapshots", dropped);
    cmd_display_refit(c);   /* a display of a target this model lacks goes, with a line */
    return 0;
}

static void cmd_human_bytes(double b, char *buf, size_t cap)
{
    if (b >= 1e9) snprintf(buf, cap, "%.2f GB", b / 1e9);
    else if (b >= 1e6) snprintf(buf, cap, "%.2f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, cap, "%.1f kB", b / 1e3);
    else snprintf(buf, cap, "%.0f B", b);
}

/* Metadata text for `info`: as written (quotes and backslashes kept, since
 * it is JSON or prose, not something to type back), with control bytes and
 * invalid UTF-8 escaped as arg_quote does, cut to the buffer. */
static const char *meta_text(const char *v, char *buf, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p && o + 8 < cap;) {
        int n = arg_utf8_len(p, strlen((const char *)p));
        if (n > 1 || (n == 1 && *p >= 0x20 && *p != 0x7f)) {
            memcpy(buf + o, p, (size_t)n);
            o += (size_t)n;
            p += n;
        } else {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", *p);
            p++;
        }
    }
    if (v[0] && o + 8 >= cap) o += (size_t)snprintf(buf + o, cap - o, "...");
    buf[o < cap ? o : cap - 1] = 0;
    return buf;
}

static int cmd_info(cmd_call *c)
{
    const ms_model *m = c->s->model;
    const ms_config *g = &m->cfg;
    char sum[96], hash[24], bpt[32], sb[32];
    ms_statefile_model_summary(m, sum, sizeof sum);
    snprintf(hash, sizeof hash, "%016" PRIx64, m->weights_hash);
    size_t state_bytes = ms_state_len(g) * sizeof(float);
    size_t bytes_tok = ms_model_bytes_per_token(m);
    size_t params = ms_model_n_params(m);
    cmd_human_bytes((double)bytes_tok, bpt, sizeof bpt);
    cmd_human_bytes((double)state_bytes, sb, sizeof sb);
    cJSON *meta = cJSON_Parse(m->meta_json ? m->meta_json : "{}");
    const char *growth = NULL, *notes = NULL, *trained = NULL;
    if (meta) {
        cJSON *x;
        if ((x = cJSON_GetObjectItemCaseSensitive(meta, "growth")) && cJSON_IsString(x)) growth = x->valuestring;
        if ((x = cJSON_GetObjectItemCaseSensitive(meta, "notes")) && cJSON_IsString(x)) notes = x->valuestring;
        if ((x = cJSON_GetObjectItemCaseSensitive(meta, "trained_on")) && cJSON_IsString(x)) trained = x->valuestring;
    }
    char sse[64];
    if (g->sse_heads) snprintf(sse, sizeof sse, "%d (heads 0..%d of each layer)", g->sse_heads, g->sse_heads - 1);
    else snprintf(sse, sizeof sse, "0 (plain RWKV-7 ChannelMix)");
    char q1[160], q2[700], q3[160];
    char qp[1200];
    out_text(c->o, "model       %s", m->path ? arg_quote_n(m->path, strlen(m->path), qp, sizeof qp) : "?");
    out_text(c->o, "shape       %s", sum);
    out_text(c->o, "            layers %d, n_embd %d, heads %d x %d, dim_att %d, vocab %d",
             g->n_layer, g->n_embd, g->n_head, g->head_size, g->dim_att, g->vocab);
    out_text(c->o, "param tokens %d", g->n_ptok);
    out_text(c->o, "SSE heads   %s", sse);
    out_text(c->o, "LoRA dims   w %d, a %d, v %d, g %d", g->d_w, g->d_a, g->d_v, g->d_g);
    if (g->n_experts > 1) out_text(c->o, "experts     %d, top %d per token", g->n_experts, g->top_k);
    out_text(c->o, "weights     %s, %zu parameters, %zu bytes read per token (%s), hash %s",
             ms_dtype_name(g->wtype), params, bytes_tok, bpt, hash);
    out_text(c->o, "state       %zu floats, %zu bytes (%s)", ms_state_len(g), state_bytes, sb);
    char bk[1400];
    sess_backend_desc(c->s, bk, sizeof bk);
    out_text(c->o, "backend     %s, %d CPU threads", bk, ms_get_threads());
    out_text(c->o, "tokenizer   %s", c->s->tok_desc);
    out_text(c->o, "growth      %s", growth ? meta_text(growth, q2, sizeof q2) : "none");
    if (trained) out_text(c->o, "trained on  %s", meta_text(trained, q1, sizeof q1));
    if (notes) out_text(c->o, "notes       %s", meta_text(notes, q3, sizeof q3));

    cJSON *o = out_obj(c->o);
    out_add_str(o, "path", m->path ? m->path : "", m->path ? strlen(m->path) : 0);
    cJSON_AddStringToObject(o, "model", sum);
    cJSON_AddNumberToObject(o, "n_layer", g->n_layer);
    cJSON_AddNumberToObject(o, "n_embd", g->n_embd);
    cJSON_AddNumberToObject(o, "n_head", g->n_head);
    cJSON_AddNumberToObject(o, "head_size", g->head_size);
    cJSON_AddNumberToObject(o, "dim_att", g->dim_att);
    cJSON_AddNumberToObject(o, "vocab", g->vocab);
    cJSON_AddNumberToObject(o, "n_ptok", g->n_ptok);
    cJSON_AddNumberToObject(o, "sse_heads", g->sse_heads);
    cJSON *lora = cJSON_AddObjectToObject(o, "lora");
    cJSON_AddNumberToObject(lora, "w", g->d_w);
    cJSON_AddNumberToObject(lora, "a", g->d_a);
    cJSON_AddNumberToObject(lora, "v", g->d_v);
    cJSON_AddNumberToObject(lora, "g", g->d_g);
    cJSON_AddNumberToObject(o, "n_experts", g->n_experts);
    cJSON_AddNumberToObject(o, "top_k", g->top_k);
    cJSON_AddStringToObject(o, "dtype", ms_dtype_name(g->wtype));
    cJSON_AddNumberToObject(o, "params", (double)params);
    cJSON_AddNumberToObject(o, "bytes_per_token", (double)bytes_tok);
    cJSON_AddNumberToObject(o, "state_bytes", (double)state_bytes);
    cJSON_AddStringToObject(o, "weights_hash", hash);
    cJSON_AddStringToObject(o, "backend", c->s->gpu ? "cuda" : "cpu");
    if (c->s->gpu) out_add_str(o, "device", bk + 6, strlen(bk + 6));
    cJSON_AddNumberToObject(o, "threads", ms_get_threads());
    out_add_str(o, "tokenizer", c->s->tok_desc, strlen(c->s->tok_desc));
    if (growth) out_add_str(o, "growth", growth, strlen(growth));
    else cJSON_AddNullToObject(o, "growth");
    if (trained) out_add_str(o, "trained_on", trained, strlen(trained));
    if (notes) out_add_str(o, "notes", notes, strlen(notes));
    cJSON_Delete(meta);
    return 0;
}

static int cmd_reset(cmd_call *c)
{
    if (sess_reset(c->s, c->err) != 0) return -1;
    out_text(c->o, "zero state, position 0 (RNG reseeded with seed %" PRIu64 ")", c->s->cur.sampler.seed);
    cJSON_AddNumberToObject(out_obj(c->o), "position", 0);
    return 0;
}

/* ---- run ---- */

static int cmd_feed(cmd_call *c)
{
    char *bytes;
    size_t len;
    int *ids = NULL, n = 0;
    if (!*c->rest)
        return cmd_fail(c, "needs text: the rest of the line, with escapes \\n \\t \\r \\\\ \\xNN");
    if (arg_unescape(c->rest, &bytes, &len, c->err->msg, sizeof c->err->msg) != 0) return -1;
    int rc = sess_encode(c->s, bytes, len, &ids, &n, c->err);
    free(bytes);
    if (rc != 0) return -1;
    if (n == 0) {
        free(ids);
        return cmd_fail(c, "the text gives no tokens");
    }
    rc = cmd_feed_report(c, ids, n);
    free(ids);
    return rc;
}

static int cmd_feed_tokens(cmd_call *c)
{
    int V = cmd_cfg(c)->vocab;
    int *ids = malloc((size_t)c->argc * sizeof(int));
    if (!ids) return cmd_fail(c, "out of memory");
    for (int i = 0; i < c->argc; i++) {
        long v;
        if (arg_long(c->argv[i], 0, V - 1, &v) != 0) {
            free(ids);
            return cmd_fail(c, "token id must be an integer from 0 to %d, got '%s'", V - 1, cmd_q(c->argv[i]));
        }
        ids[i] = (int)v;
    }
    int rc = cmd_feed_report(c, ids, c->argc);
    free(ids);
    return rc;
}

static int cmd_count_arg(cmd_call *c, int i, long dflt, long *n)
{
    *n = dflt;
    if (c->argc > i && arg_long(c->argv[i], 1, CMD_MAX_N, n) != 0)
        return cmd_fail(c, "N must be an integer from 1 to %d, got '%s'", CMD_MAX_N, cmd_q(c->argv[i]));
    return 0;
}

static int cmd_need_logits(cmd_call *c, const char *why)
{
    if (c->s->cur.has_logits) return 0;
    return cmd_fail(c, "no logits yet at position %" PRId64 ": feed a token first (%s)",
                    c->s->cur.position, why);
}

static int cmd_gen(cmd_call *c)
{
    long n;
    if (cmd_count_arg(c, 0, 0, &n) != 0 || cmd_need_logits(c, "gen samples from them") != 0) return -1;
    cmd_decoder d;
    memset(&d, 0, sizeof d);
    d.c = c;
    d.stream = 1;
    int rc = 0;
    long i;
    for (i = 0; i < n && !sess_interrupted(c->s); i++) {
        int id = sess_sample(c->s, c->err), done;
        if (id < 0 || sess_feed(c->s, &id, 1, cmd_dec_token, &d, &done, c->err) != 0) {
            rc = -1;
            break;
        }
    }
    cmd_dec_flush(&d);
    if (c->o->col) out_raw(c->o, "\n", 1);
    if (rc == 0) {
        if (i < n) out_text(c->o, "(interrupted after %ld of %ld tokens)", i, n);
        cJSON *o = out_obj(c->o);
        cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
        cJSON_AddItemToObject(o, "tokens", cmd_int_array(d.ids, d.n_ids));
        out_add_str(o, "text", d.text.b ? d.text.b : "", d.text.len);
        if (i < n) cJSON_AddTrueToObject(o, "interrupted");
    }
    cmd_dec_free(&d);
    return rc;
}

static int cmd_step(cmd_call *c)
{
    long n;
    if (cmd_count_arg(c, 0, 1, &n) != 0 || cmd_need_logits(c, "step samples from them") != 0) return -1;
    cJSON *steps = cJSON_AddArrayToObject(out_obj(c->o), "steps");
    long i;
    for (i = 0; i < n && !sess_interrupted(c->s); i++) {
        sess_probs(c->s);
        int id = sess_sample(c->s, c->err), done;
        if (id < 0) return -1;
        float p = c->s->probs[id];   /* the model's probability, temperature 1 */
        if (sess_feed(c->s, &id, 1, NULL, NULL, &done, c->err) != 0) return -1;
        char t[300];
        out_text(c->o, "%8" PRId64 "  %6d  %-14s p=%.6f", c->s->cur.position, id, cmd_tok(c, id, t, sizeof t), p);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "position", (double)c->s->cur.position);
        cJSON_AddNumberToObject(e, "id", id);
        cmd_add_tok(c, e, id);
        cJSON_AddNumberToObject(e, "p", p);
        cJSON_AddItemToArray(steps, e);
        cmd_display_show(c);
    }
    if (i < n) {
        out_text(c->o, "(interrupted after %ld of %ld tokens)", i, n);
        cJSON_AddTrueToObject(out_obj(c->o), "interrupted");
    }
    cJSON_AddNumberToObject(out_obj(c->o), "position", (double)c->s->cur.position);
    return 0;
}

static int cmd_top(cmd_call *c)
{
    int V = cmd_cfg(c)->vocab;
    long k = V < 10 ? V : 10;
    if (c->argc && arg_long(c->argv[0], 1, V, &k) != 0)
        return cmd_fail(c, "K must be an integer from 1 to %d, got '%s'", V, cmd_q(c->argv[0]));
    if (cmd_need_logits(c, "top shows the next-token distribution") != 0) return -1;
    int *ids = malloc((size_t)k * sizeof(int));
    float *p = malloc((size_t)k * sizeof(float));
    if (!ids || !p || sess_top(c->s, (int)k, ids, p, c->err) != 0) {
        if (!ids || !p) cmd_fail(c, "out of memory");
        free(ids);
        free(p);
        return -1;
    }
    out_text(c->o, "position %" PRId64 ", next token, top %ld of %d:", c->s->cur.position, k, V);
    cJSON *o = out_obj(c->o);
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    cJSON *arr = cJSON_AddArrayToObject(o, "top");
    for (long i = 0; i < k; i++) {
        char t[300];
        out_text(c->o, "  %.6f  %6d  %s", p[i], ids[i], cmd_tok(c, ids[i], t, sizeof t));
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "id", ids[i]);
        cmd_add_tok(c, e, ids[i]);
        cJSON_AddNumberToObject(e, "p", p[i]);
        cJSON_AddItemToArray(arr, e);
    }
    free(ids);
    free(p);
    return 0;
}

/* whole file into memory (up to CMD_MAX_FILE bytes) */
static int cmd_read_file(cmd_call *c, const char *path, char **buf, size_t *len)
{
    struct stat st;
    int fd = ms_open_read(path, "text file", &st, c->err);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return cmd_fail(c, "cannot open '%s': %s", cmd_q(path), strerror(errno));
    }
    if (st.st_size > CMD_MAX_FILE) {
        fclose(f);
        return cmd_fail(c, "'%s' is %lld bytes; score reads at most %ld", cmd_q(path),
                        (long long)st.st_size, CMD_MAX_FILE);
    }
    char *b = malloc((size_t)st.st_size + 1);
    size_t n = b ? fread(b, 1, (size_t)st.st_size, f) : 0;
    int bad = !b || ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return cmd_fail(c, "cannot read '%s'%s", cmd_q(path), b ? "" : ": out of memory");
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

static int cmd_score(cmd_call *c)
{
    char *bytes;
    size_t len;
    if (!*c->rest) return cmd_fail(c, "needs TEXT (with escapes) or @FILE");
    if (c->rest[0] == '@') {
        if (!c->rest[1]) return cmd_fail(c, "@ needs a file name: score @FILE");
        if (cmd_read_file(c, c->rest + 1, &bytes, &len) != 0) return -1;
    } else if (arg_unescape(c->rest, &bytes, &len, c->err->msg, sizeof c->err->msg) != 0) {
        return -1;
    }
    int *ids = NULL, n = 0;
    int rc = sess_encode(c->s, bytes, len, &ids, &n, c->err);
    free(bytes);
    if (rc != 0) return -1;
    sess_score_result r;
    rc = sess_score(c->s, ids, n, &r, c->err);
    free(ids);
    if (rc != 0) return -1;
    double bpt = r.bits / (double)r.scored;
    double bpb = r.bytes ? r.bits / (double)r.bytes : NAN;
    char bb[48];
    if (r.bytes) snprintf(bb, sizeof bb, "%.6f bits/byte", bpb);
    else snprintf(bb, sizeof bb, "bits/byte undefined (0 bytes)");
    out_text(c->o, "%ld token%s, %ld bytes: %.6f bits/token, %s%s", r.scored, r.scored == 1 ? "" : "s",
             r.bytes, bpt, bb,
             r.skipped_first ? " (from the 2nd token on: there are no logits before the first)" : "");
    cJSON *o = out_obj(c->o);
    cJSON_AddNumberToObject(o, "bits_per_token", bpt);
    if (r.bytes) cJSON_AddNumberToObject(o, "bits_per_byte", bpb);
    else cJSON_AddNullToObject(o, "bits_per_byte");
    cJSON_AddNumberToObject(o, "tokens", (double)r.scored);
    cJSON_AddNumberToObject(o, "bytes", (double)r.bytes);
    cJSON_AddNumberToObject(o, "bits", r.bits);
    cJSON_AddBoolToObject(o, "skipped_first", r.skipped_first);
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    return 0;
}

static int cmd_save_logits(cmd_call *c)
{
    if (cmd_need_logits(c, "there is nothing to save") != 0 || cmd_check_target(c, c->argv[0]) != 0) return -1;
    int V = cmd_cfg(c)->vocab;
    /* float32 little-endian: the host order on every supported machine */
    if (ms_write_atomic(c->argv[0], c->s->cur.logits, (size_t)V * sizeof(float), c->err) != 0) return -1;
    out_text(c->o, "wrote %d logits (position %" PRId64 ", float32 LE) to %s", V, c->s->cur.position,
             cmd_q(c->argv[0]));
    cJSON *o = out_obj(c->o);
    out_add_str(o, "path", c->argv[0], strlen(c->argv[0]));
    cJSON_AddNumberToObject(o, "count", V);
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    return 0;
}

static void cmd_report_sampler(cmd_call *c, const ms_sampler *sm)
{
    out_text(c->o, "sampler: temp=%g top_p=%g top_k=%d seed=%" PRIu64, sm->temp, sm->top_p, sm->top_k, sm->seed);
    cJSON *o = cJSON_AddObjectToObject(out_obj(c->o), "sampler");
    char seed[24];
    snprintf(seed, sizeof seed, "%" PRIu64, sm->seed);
    cJSON_AddNumberToObject(o, "temp", sm->temp);
    cJSON_AddNumberToObject(o, "top_p", sm->top_p);
    cJSON_AddNumberToObject(o, "top_k", sm->top_k);
    cJSON_AddStringToObject(o, "seed", seed);
}

static const char *const cmd_sampler_keys[] = { "temp", "top_p", "top_k", "seed" };

static int cmd_set_sampler(cmd_call *c)
{
    ms_sampler sm = c->s->cur.sampler;
    int V = cmd_cfg(c)->vocab, reseed = 0;
    uint64_t seed = 0;
    for (int i = 0; i < c->argc; i++) {
        const char *a = c->argv[i], *eq = strchr(a, '=');
        char key[16];
        size_t kl = eq ? (size_t)(eq - a) : strlen(a);
        snprintf(key, sizeof key, "%.*s", kl < sizeof key ? (int)kl : 15, a);
        const char *v = eq ? eq + 1 : "";
        double d;
        long l;
        if (!eq || kl >= sizeof key) {
            return cmd_fail(c, "'%s' is not KEY=VALUE (keys: temp top_p top_k seed)", cmd_q(a));
        } else if (!strcmp(key, "temp")) {
            if (arg_double(v, 0, 100, &d) != 0)
                return cmd_fail(c, "temp must be a number from 0 (greedy) to 100, got '%s'", cmd_q(v));
            sm.temp = (float)d;
        } else if (!strcmp(key, "top_p")) {
            if (arg_double(v, 0, 1, &d) != 0 || d <= 0)
                return cmd_fail(c, "top_p must be a number in (0, 1] (1 = off), got '%s'", cmd_q(v));
            sm.top_p = (float)d;
        } else if (!strcmp(key, "top_k")) {
            if (arg_long(v, 0, V, &l) != 0)
                return cmd_fail(c, "top_k must be an integer from 0 (off) to %d, got '%s'", V, cmd_q(v));
            sm.top_k = (int)l;
        } else if (!strcmp(key, "seed")) {
            if (arg_u64(v, &seed) != 0)
                return cmd_fail(c, "seed must be an integer from 0 to %" PRIu64 ", got '%s'", UINT64_MAX, cmd_q(v));
            reseed = 1;
        } else {
            int k = arg_nearest(key, cmd_sampler_keys, 4);
            if (k >= 0) return cmd_fail(c, "unknown key '%s'; did you mean '%s'?", cmd_q(key), cmd_sampler_keys[k]);
            return cmd_fail(c, "unknown key '%s' (keys: temp top_p top_k seed)", cmd_q(key));
        }
    }
    if (reseed) ms_sampler_reseed(&sm, seed);
    if (c->argc && sess_set_sampler(c->s, &sm, c->err) != 0) return -1;
    cmd_report_sampler(c, &sm);
    return 0;
}

/* ---- snapshots ---- */

static int cmd_snap(cmd_call *c)
{
    char name[SESS_NAME_MAX];
    if (c->argc) {
        if (sess_name_check(c->argv[0], c->err) != 0) return -1;
        snprintf(name, sizeof name, "%s", c->argv[0]);
    } else {
        sess_snap_autoname(c->s, name, sizeof name);
    }
    if (sess_snap_add(c->s, name, c->err) != 0) return -1;
    out_text(c->o, "snapshot %s at position %" PRId64, name, c->s->cur.position);
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    return 0;
}

/* the last few tokens of a history as text, for listings */
static void cmd_tail(cmd_call *c, sess_hist h, char *buf, size_t cap)
{
    ms_utf8buf u;
    memset(&u, 0, sizeof u);
    char raw[256];
    int ids[16];
    int n = sess_hist_tail(h, ids, 16);
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += ms_tok_decode_stream(c->s->tok, &u, ids[i], raw + len, sizeof raw - len);
    len += ms_tok_decode_flush(&u, raw + len, sizeof raw - len);
    const char *r = raw;
    if (len > 40) { r = raw + len - 40; len = 40; while (len && ((unsigned char)*r & 0xC0) == 0x80) { r++; len--; } }
    arg_quote_n(r, len, buf, cap);
}

static int cmd_snaps(cmd_call *c)
{
    sess *s = c->s;
    cJSON *arr = cJSON_AddArrayToObject(out_obj(c->o), "snaps");
    if (!s->n_snaps) out_text(c->o, "no snapshots ('snap [NAME]' makes one)");
    for (int i = 0; i < s->n_snaps; i++) {
        const sess_point *p = &s->snaps[i].pt;
        char tail[200];
        cmd_tail(c, s->snaps[i].hist, tail, sizeof tail);
        out_text(c->o, "  %-12s position %-8" PRId64 " %-10s %s\"%s\"", s->snaps[i].name, p->position,
                 s->snaps[i].branch, p->has_logits ? "" : "(no logits) ", tail);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", s->snaps[i].name);
        cJSON_AddNumberToObject(e, "position", (double)p->position);
        cJSON_AddNumberToObject(e, "events", (double)sess_hist_len(s->snaps[i].hist));
        cJSON_AddStringToObject(e, "branch", s->snaps[i].branch);
        cJSON_AddBoolToObject(e, "has_logits", p->has_logits);
        cJSON_AddItemToArray(arr, e);
    }
    return 0;
}

static int cmd_restore(cmd_call *c)
{
    int i = cmd_find_snap(c, c->argv[0]);
    if (i < 0 || sess_restore(c->s, i, c->err) != 0) return -1;
    const ms_sampler *sm = &c->s->cur.sampler;
    out_text(c->o, "restored %s: position %" PRId64 ", sampler temp=%g top_p=%g top_k=%d seed=%" PRIu64,
             c->argv[0], c->s->cur.position, sm->temp, sm->top_p, sm->top_k, sm->seed);
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "name", c->argv[0]);
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    return 0;
}

static int cmd_drop(cmd_call *c)
{
    int i = cmd_find_snap(c, c->argv[0]);
    if (i < 0) return -1;
    sess_snap_drop(c->s, i);
    out_text(c->o, "dropped %s", c->argv[0]);
    cJSON_AddStringToObject(out_obj(c->o), "name", c->argv[0]);
    return 0;
}

static int cmd_save(cmd_call *c)
{
    const char *what = "now", *path = c->argv[c->argc - 1];
    const sess_point *pt = &c->s->cur;
    int i = -1;
    if (c->argc == 2 && strcmp(c->argv[0], "now") != 0) {
        if ((i = cmd_find_snap(c, c->argv[0])) < 0) return -1;
        what = c->s->snaps[i].name;
        pt = &c->s->snaps[i].pt;
    }
    if (cmd_check_target(c, path) != 0 || sess_save(c->s, i, path, c->err) != 0) return -1;
    out_text(c->o, "saved %s (position %" PRId64 "%s) to %s", what, pt->position,
             pt->has_logits ? "" : ", no logits", cmd_q(path));
    cJSON *o = out_obj(c->o);
    cJSON_AddStringToObject(o, "name", what);
    out_add_str(o, "path", path, strlen(path));
    cJSON_AddNumberToObject(o, "position", (double)pt->position);
    return 0;
}

/* default snapshot name for a file: its stem, other characters as '_' */
static void cmd_stem(const char *path, char *name, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = b[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '_' || ch == '-' || ch == '.';
        name[i] = ok ? ch : '_';
    }
    name[n] = 0;
    if (name[0] == '-' || name[0] == '.') name[0] = '_';
    if (!n || !strcmp(name, "now")) snprintf(name, cap, "state");
}

static int cmd_open(cmd_call *c)
{
    const char *pos[2];
    int npos = 0, force = 0;
    for (int i = 0; i < c->argc; i++) {
        if (!strcmp(c->argv[i], "--force")) force = 1;
        else if (npos < 2) pos[npos++] = c->argv[i];
        else return cmd_fail(c, "too many arguments (usage: open PATH [NAME] [--force])");
    }
    if (!npos) return cmd_fail(c, "needs PATH (usage: open PATH [NAME] [--force])");
    char name[SESS_NAME_MAX];
    if (npos == 2) {
        if (sess_name_check(pos[1], c->err) != 0) return -1;
        snprintf(name, sizeof name, "%s", pos[1]);
    } else {
        cmd_stem(pos[0], name, sizeof name);
        if (sess_snap_find(c->s, name) >= 0)
            return cmd_fail(c, "snapshot '%s' already exists; name this one: open PATH NAME", name);
    }
    int imported = 0, forced = 0;
    if (sess_open(c->s, pos[0], name, force, &imported, &forced, c->err) != 0) return -1;
    out_text(c->o, "opened %s as snapshot %s and restored it: position %" PRId64 "%s%s%s", cmd_q(pos[0]), name,
             c->s->cur.position, c->s->cur.has_logits ? "" : ", no logits (feed a token)",
             imported ? "; imported a time_state file: att_x and ffn_x are zero" : "",
             forced ? "; written by another model (--force)" : "");
    cJSON *o = out_obj(c->o);
    out_add_str(o, "path", pos[0], strlen(pos[0]));
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "position", (double)c->s->cur.position);
    cJSON_AddBoolToObject(o, "has_logits", c->s->cur.has_logits);
    cJSON_AddBoolToObject(o, "imported", imported);
    cJSON_AddBoolToObject(o, "forced", forced);
    return 0;
}

/* ---- session ---- */

static int cmd_quit(cmd_call *c)
{
    c->e->quit = 1;
    return 0;
}

static int cmd_source(cmd_call *c)
{
    if (c->e->depth >= CMD_MAX_DEPTH)
        return cmd_fail(c, "'source' nested more than %d deep", CMD_MAX_DEPTH);
    char msg[sizeof c->err->msg];
    c->e->depth++;
    int rc = cmd_run_file(c->e, c->argv[0], msg, sizeof msg);
    c->e->depth--;
    out_begin(c->o, "source");   /* the file's commands have printed theirs: the result is source's own */
    if (rc == -1) return cmd_fail(c, "%s", msg);
    if (rc == -2) {
        /* the failing command has printed its line: this one stays quiet
         * (in text mode) and passes the message on as its own */
        snprintf(c->err->msg, sizeof c->err->msg, "%s", msg);
        return CMD_FAIL_REPORTED;
    }
    out_obj(c->o);
    return 0;
}

struct cmd_dbg *cmd_dbg(cmd_env *e)
{
    if (!e->dbg && (e->dbg = calloc(1, sizeof *e->dbg))) e->dbg->rec_fd = -1;
    return e->dbg;
}

static void cmd_record_stop(struct cmd_dbg *g)
{
    if (g->rec_fd >= 0) close(g->rec_fd);
    free(g->rec_path);
    g->rec_fd = -1;
    g->rec_path = NULL;
}

static int cmd_record(cmd_call *c)
{
    struct cmd_dbg *g = cmd_dbg(c->e);
    if (!g) return cmd_fail(c, "out of memory");
    const char *path = c->argv[0];
    if (!strcmp(path, "off")) {
        if (g->rec_fd < 0) return cmd_fail(c, "not recording ('record FILE' starts)");
        out_text(c->o, "stopped recording to %s", cmd_q(g->rec_path));
        out_add_str(out_obj(c->o), "path", g->rec_path, strlen(g->rec_path));
        cmd_record_stop(g);
        return 0;
    }
    /* the file starts whole (the header, written as every file is: see
     * fileio.h), then each command is appended in one write() of a whole
     * line; a write that fails part-way is cut back, so the file never
     * holds half a line */
    if (cmd_check_target(c, path) != 0) return -1;
    char hdr[128];
    int hl = snprintf(hdr, sizeof hdr, "# metastate %s: commands recorded; run them again with -x FILE\n", MS_VERSION);
    char *dup = strdup(path);
    if (!dup) return cmd_fail(c, "out of memory");
    if (ms_write_atomic(path, hdr, (size_t)hl, c->err) != 0) {
        free(dup);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int en = errno;
        if (fd >= 0) close(fd);
        free(dup);
        return cmd_fail(c, "cannot append to '%s': %s", cmd_q(path), fd >= 0 ? "not a regular file" : strerror(en));
    }
    cmd_record_stop(g);
    g->rec_fd = fd;
    g->rec_len = st.st_size;
    g->rec_path = dup;
    out_text(c->o, "recording the following commands to %s ('record off' stops)", cmd_q(path));
    out_add_str(out_obj(c->o), "path", path, strlen(path));
    return 0;
}

static int cmd_history(cmd_call *c)
{
    struct cmd_dbg *g = cmd_dbg(c->e);
    long n = g ? g->n_lines : 0, from = 0, k;
    if (c->argc) {
        if (arg_long(c->argv[0], 1, 1000000000L, &k) != 0)
            return cmd_fail(c, "N must be an integer from 1 to 1000000000, got '%s'", cmd_q(c->argv[0]));
        if (k < n) from = n - k;
    }
    cJSON *arr = cJSON_AddArrayToObject(out_obj(c->o), "history");
    for (long i = from; i < n; i++) {
        char q[1200];
        out_text(c->o, "%5ld  %s", i + 1, arg_quote_n(g->lines[i], strlen(g->lines[i]), q, sizeof q));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "n", (double)(i + 1));
        out_add_str(o, "line", g->lines[i], strlen(g->lines[i]));
        cJSON_AddItemToArray(arr, o);
    }
    if (!n) out_text(c->o, "no commands yet");
    return 0;
}

void cmd_env_free(cmd_env *e)
{
    struct cmd_dbg *g = e->dbg;
    if (!g) return;
    cmd_record_stop(g);
    for (int i = 0; i < g->n_lines; i++) free(g->lines[i]);
    free(g->lines);
    cmd_display_free(e);
    free(g);
    e->dbg = NULL;
}

/* after a top-level command: keep it for `history`, append it to the record */
static void cmd_log_line(cmd_env *e, const char *line, const cmd_def *d, int ok)
{
    struct cmd_dbg *g = cmd_dbg(e);
    if (!g) return;
    if (g->n_lines == g->cap_lines) {
        int cap = g->cap_lines ? 2 * g->cap_lines : 64;
        char **v = realloc(g->lines, (size_t)cap * sizeof *v);
        if (!v) return;
        g->lines = v;
        g->cap_lines = cap;
    }
    char *dup = strdup(line);
    if (dup) g->lines[g->n_lines++] = dup;
    if (g->rec_fd < 0 || (d && (d->fn == cmd_record || d->fn == cmd_history || d->fn == cmd_quit))) return;
    char *one = NULL;
    int n = asprintf(&one, "%s%s\n", ok ? "" : "# failed: ", line);
    ssize_t w = n >= 0 ? write(g->rec_fd, one, (size_t)n) : -1;
    int en = n < 0 ? ENOMEM : w < 0 ? errno : EIO;
    free(one);
    if (w == n) {
        g->rec_len += n;
        return;
    }
    if (w > 0 && ftruncate(g->rec_fd, (off_t)g->rec_len) != 0) en = errno;
    char q[200], why[200];
    fprintf(stderr, "record: cannot append to %s: %s; recording stopped (the file holds every command before this one)\n",
            arg_quote(g->rec_path, q, sizeof q), ms_errno_reason(en, why, sizeof why));
    cmd_record_stop(g);
}

const char *cmd_complete_word(cmd_env *e, char kind, const char *text, int k, char *buf, size_t cap)
{
    sess *s = e->s;
    size_t tl = strlen(text);
    if (!s->model) return NULL;
    if (kind == 't') return tgt_complete(&s->model->cfg, text, k, buf, cap);
    int seen = 0;
    if (kind == 'n' && !strncmp("now", text, tl) && seen++ == k) return snprintf(buf, cap, "now"), buf;
    for (int i = 0; (kind == 's' || kind == 'n') && i < s->n_snaps; i++)
        if (!strncmp(s->snaps[i].name, text, tl) && seen++ == k) return snprintf(buf, cap, "%s", s->snaps[i].name), buf;
    for (int i = 0; (kind == 'b' || kind == 'n') && i < s->n_branches; i++)
        if (!strncmp(s->branches[i].name, text, tl) && seen++ == k)
            return snprintf(buf, cap, "%s", s->branches[i].name), buf;
    return NULL;
}

static void cmd_describe(cmd_call *c, const cmd_def *d, cJSON *arr, int more)
{
    char usage[80];
    snprintf(usage, sizeof usage, "%s%s%s", d->name, d->args[0] ? " " : "", d->args);
    if (strlen(usage) > 28) out_text(c->o, "  %s\n  %-28s %s%s", usage, "", d->help, d->fn ? "" : " (not in this version)");
    else out_text(c->o, "  %-28s %s%s", usage, d->help, d->fn ? "" : " (not in this version)");
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", d->name);
    cJSON_AddStringToObject(e, "args", d->args);
    cJSON_AddStringToObject(e, "help", d->help);
    cJSON_AddBoolToObject(e, "available", d->fn != NULL);
    if (more && d->more) {
        out_text(c->o, "%s", "");
        for (const char *p = d->more; *p;) {
            size_t n = strcspn(p, "\n");
            out_text(c->o, "  %.*s", (int)n, p);
            p += n + (p[n] == '\n');
        }
        cJSON_AddStringToObject(e, "more", d->more);
    }
    cJSON_AddItemToArray(arr, e);
}

/* ---- look: the view's commands, plugged in through e->view_ops ---- */

static int cmd_no_view(cmd_call *c)
{
    return cmd_fail(c, "the view is not part of this build");
}

static int cmd_view(cmd_call *c)
{
    if (!c->e->view_ops) return cmd_no_view(c);
    return c->e->view_ops->view(c->e, c->argc, c->argv, c->err);
}

static int cmd_scale(cmd_call *c)
{
    if (!c->e->view_ops) return cmd_no_view(c);
    return c->e->view_ops->scale(c->e, c->argc, c->argv, c->err);
}

/* export TARGET PATH: the format by PATH's extension */
static int cmd_export(cmd_call *c)
{
    const char *path = c->argv[1], *dot = strrchr(path, '.');
    if (dot && !strcasecmp(dot, ".png")) {
        if (!c->e->view_ops) return cmd_no_view(c);
        if (cmd_check_target(c, path) != 0) return -1;
        return c->e->view_ops->export_png(c->e, c->argv[0], path, c->err);
    }
    if (dot && (!strcasecmp(dot, ".csv") || !strcasecmp(dot, ".npy"))) return cmd_export_data(c, c->argv[0], path);
    return cmd_fail(c, "'%s': the format comes from the extension: .csv, .npy or .png", cmd_q(path));
}

static int cmd_help(cmd_call *c);
static int cmd_apropos(cmd_call *c);
static int cmd_record(cmd_call *c);
static int cmd_history(cmd_call *c);

/* ---- the table ---- */

/* A row may leave out `more` (NULL: no more text for `help CMD`). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const cmd_def cmd_defs[] = {
    /* model */
    { "load", "PATH", 1, 1, 0, "f", cmd_load, "load a model (.safetensors or rwkv.cpp .bin); the session restarts" },
    { "info", "", 0, 0, 0, "-", cmd_info, "sizes, SSE heads, parameter tokens, dtype, bytes per token, state size, growth" },
    { "reset", "", 0, 0, 0, "-", cmd_reset, "zero state, position 0, no logits; RNG reseeded" },
    /* run */
    { "feed", "TEXT", 1, -1, 1, "-", cmd_feed, "feed the rest of the line (escapes \\n \\t \\r \\\\ \\xNN)" },
    { "feed-tokens", "ID...", 1, -1, 0, "-", cmd_feed_tokens, "feed token ids" },
    { "step", "[N]", 0, 1, 0, "-", cmd_step, "sample and feed N tokens (1), one line each; an empty line repeats it" },
    { "gen", "N", 1, 1, 0, "-", cmd_gen, "sample and feed N tokens, printing the text as it comes" },
    { "top", "[K]", 0, 1, 0, "-", cmd_top, "the K most probable next tokens (10)" },
    { "trace", "TEXT", 1, -1, 1, "-", cmd_trace,
      "per position: token, top-1 next token, its probability (a dry run: the state is kept)" },
    { "score", "TEXT|@FILE", 1, -1, 1, "f", cmd_score, "bits per token and per byte of the text from here; the state is kept" },
    { "save-logits", "PATH", 1, 1, 0, "f", cmd_save_logits, "write the current logits as float32 LE" },
    { "set-sampler", "[temp=T] [top_p=P] [top_k=K] [seed=S]", 0, 4, 0, "k", cmd_set_sampler,
      "show or change the sampler; seed= reseeds its RNG" },
    /* look */
    { "view", "overview [norm|delta|drift SNAP] | L.H | sse L", 1, 3, 0, "-", cmd_view,
      "what the full-screen view shows: the layer x head grid, one head, or a layer's SSE heads" },
    { "display", "[TARGET]", 0, 1, 0, "t", cmd_display,
      "print TARGET after every command that moves the state (no argument: list them)",
      "In line mode (--plain, --batch): after each token of `step` and after any other command that\n"
      "changes the current point.  A target of at most 8 values is printed whole; a larger one as its\n"
      "shape, norm, mean and extremes.  With --json the values go into the command's object." },
    { "undisplay", "[N]", 0, 1, 0, "-", cmd_undisplay, "stop display N (no argument: all of them)" },
    { "scale", "[auto|lock|sym|log|p99]", 0, 1, 0, "-", cmd_scale,
      "colour scale of the heatmaps (no argument: show it)" },
    { "export", "TARGET PATH", 2, 2, 0, "tf", cmd_export,
      "write a state part as .csv, .npy or .png (TARGET view: what the view shows)",
      ".npy: format 1.0, '<f4', C order, the target's shape: (N, N) for a head, (N,) for a row or a\n"
      "column, () for one entry, (C,) for att_x/ffn_x, and the flat state order for L.* and *\n"
      "(per layer: att_x, S of H0, H1, ..., ffn_x).  .csv: plain numbers (%.9g, exact for float32),\n"
      "one matrix row per line; a vector is one line.  Written atomically (temporary file, rename)." },
    /* snapshots */
    { "snap", "[NAME]", 0, 1, 0, "-", cmd_snap, "copy the current state, logits, tokens and sampler under NAME (s1, s2...)" },
    { "snaps", "", 0, 0, 0, "-", cmd_snaps, "list the snapshots" },
    { "restore", "NAME", 1, 1, 0, "s", cmd_restore, "make snapshot NAME the current state (exact bytes, sampler too)" },
    { "drop", "NAME", 1, 1, 0, "s", cmd_drop, "forget snapshot NAME" },
    { "save", "[NAME] PATH", 1, 2, 0, "Sf", cmd_save, "write the current state (or snapshot NAME) as a state file" },
    { "open", "PATH [NAME] [--force]", 1, 3, 0, "f-", cmd_open,
      "read a state file (or a RWKV-Runner time_state file) as snapshot NAME (the file stem) and restore it" },
    /* edit, branches, replay, compare, scaling, experiments */
    { "set", "TARGET VALUE", 2, 2, 0, "t-", cmd_set, "set every value of TARGET to VALUE (an edit)",
      "Edits (set, zero, scale-state, noise, patch) are events of the branch's history: replay and\n"
      "goto redo them exactly, state files keep them, and the point is marked (edited).  A value is\n"
      "a finite number stored as float32; an edit whose result would not be finite is refused and\n"
      "nothing changes.  An edit changes the state, not the logits already computed: the next token\n"
      "shows its effect.  'help targets' lists the targets." },
    { "zero", "TARGET", 1, 1, 0, "t", cmd_zero, "set TARGET to 0 (an edit)" },
    { "scale-state", "TARGET F", 2, 2, 0, "t-", cmd_scale_state, "multiply TARGET by F (an edit)" },
    { "noise", "TARGET SIGMA [SEED]", 2, 3, 0, "t-", cmd_noise, "add Gaussian noise of std SIGMA to TARGET (an edit)",
      "Without SEED the seed is drawn from the sampler's seed and the event's index (so the same\n"
      "commands give the same noise) and printed; the history records it." },
    { "patch", "TARGET from SRC", 3, 3, 0, "t-n", cmd_patch,
      "copy TARGET from snapshot or branch SRC into the current state (activation patching; an edit)",
      "The copied values are stored with the event, so replay does not need SRC any more." },
    { "fork", "NAME", 1, 1, 0, "-", cmd_fork, "a new branch NAME at the current point, and switch to it",
      "The old branch keeps its position.  Branches and snapshots share one set of names.  A fork\n"
      "costs one copy of the state (its base point)." },
    { "branches", "", 0, 0, 0, "-", cmd_branches, "the branch tree, with positions; * marks the current branch" },
    { "switch", "NAME", 1, 1, 0, "b", cmd_switch, "make branch NAME current, at its position" },
    { "drop-branch", "NAME", 1, 1, 0, "b", cmd_drop_branch, "forget branch NAME (not the current one)" },
    { "goto", "POS|@EVENT|end", 1, 1, 0, "-", cmd_goto, "move along the current branch (restores a checkpoint, replays)",
      "POS: the point after the last event at that position (edits made there included); @N: the\n"
      "point after the branch's first N events (see `events`); end: its last event.  It costs at\n"
      "most one checkpoint gap of steps ('checkpoints').  Going back keeps what follows: goto forward\n"
      "returns to it; a new token or edit there continues the branch from here and keeps its old\n"
      "continuation as the branch NAME.k (nothing is dropped unless you drop it)." },
    { "events", "[N|FROM TO]", 0, 2, 0, "-", cmd_events, "the current branch's history: the last N events (20), or FROM..TO",
      "Each line: event number, position after it, what it was, and its recorded checksums\n"
      "(state, logits).  `goto @N` goes to the point after event N; '>' marks the current one." },
    { "checkpoints", "[every=K] [max=M]", 0, 2, 0, "-", cmd_checkpoints,
      "show or set the automatic checkpoints (every K events, at most M kept)",
      "Each history keeps its base point and a copy every K events (256), so goto and switch cost\n"
      "at most K steps.  Memory is bounded: past M checkpoints in the session (64) the history\n"
      "with the most loses every other one, doubling its gap (the listing gives the longest gap)." },
    { "mem", "", 0, 0, 0, "-", cmd_mem, "resident memory and what the session holds (snapshots, checkpoints, events)" },
    { "replay", "[FROM] [--verify]", 0, 2, 0, "s-", cmd_replay,
      "re-run the current point's history from its origin (or snapshot FROM) and compare",
      "Re-applies every recorded token and edit from the origin (the zero state, or the state a\n"
      "history started from) or from snapshot FROM (on this history) up to the current point.\n"
      "--verify compares, after every event, the checksums recorded then (state and logits, 32-bit\n"
      "each), a token the sampler drew with the one recorded, and every stored checkpoint bit for\n"
      "bit; it stops at the first difference, names the step (event number, what it was, the\n"
      "position) and changes nothing.  Otherwise the replayed point becomes the current one, and\n"
      "replay says whether it equals the one before bit for bit (if not, the branch goes on from\n"
      "the replayed point).  To check a state file's history:\n"
      "open it, then replay --verify." },
    { "diff", "A B [TARGET]", 2, 3, 0, "nnt", cmd_diff, "compare two points (snapshots, branches or now): per part, and KL",
      "One row per part (each layer's att_x, heads and ffn_x; or the parts of TARGET): |A|, |B|,\n"
      "|B-A| (Frobenius), cosine of the flattened parts; then the largest |B-A| and where, and\n"
      "KL(P_A||P_B) in nats of the next-token distributions they predict now (their logits; n/a\n"
      "when either has none), summed in double term by term, each term >= 0.  A branch means its\n"
      "current point." },
    { "grow", "tokens M [SEED] | sse K | heads K [SEED]", 2, 3, 0, "-", cmd_grow,
      "grow the model and every stored state, keeping the logits (within 1e-5)" },
    { "save-model", "PATH", 1, 1, 0, "f", cmd_save_model, "write the (grown) model as .safetensors" },
    { "task", "NAME [LEN] [N] [SEED] [--dump PATH]", 1, 6, 0, "-", cmd_task,
      "accuracy by position bucket on N generated sequences (parity, s3, s5, modcount-K; 64 100 0)" },
    { "sweep", "patch L.* from SRC [TOKEN]", 4, 5, 0, "-t-n-", cmd_sweep,
      "activation patching over heads: one row per head of layer L, patched from SRC",
      "For each head h of layer L: a copy of the current point with L.Hh taken from SRC (a\n"
      "snapshot or branch) is stepped with TOKEN (an id; default: the current most probable next\n"
      "token), and compared with the unpatched point and SRC stepped with the same token:\n"
      "kl_cur = KL(P_now||P_patched) (what the head changes), kl_src = KL(P_src||P_patched) (what\n"
      "is left to explain), recovered = 1 - kl_src/KL(P_src||P_now), and the probability of SRC's\n"
      "top token.  The current point is not changed." },
    /* session */
    { "source", "FILE", 1, 1, 0, "f", cmd_source, "run the commands in FILE (stops at the first failure)" },
    { "record", "FILE|off", 1, 1, 0, "f", cmd_record, "append every following command to FILE (replay it with -x FILE)",
      "The file is started anew; each command is written (and flushed) when it has run; a command\n"
      "that failed is written as a comment, so that -x does not stop at it.  'record off' stops." },
    { "history", "[N]", 0, 1, 0, "-", cmd_history, "the commands run in this session (the last N)" },
    { "help", "[CMD|targets]", 0, 1, 0, "c", cmd_help, "list the commands, or show one; 'help targets' for targets" },
    { "apropos", "WORD", 1, 1, 0, "-", cmd_apropos, "commands whose name or help mentions WORD" },
    { "quit", "", 0, 0, 0, "-", cmd_quit, "leave (also Ctrl-D)" },
};
#pragma GCC diagnostic pop
#define CMD_N ((int)(sizeof cmd_defs / sizeof cmd_defs[0]))

const cmd_def *cmd_table(int *n)
{
    *n = CMD_N;
    return cmd_defs;
}

const cmd_def *cmd_lookup(const char *name)
{
    for (int i = 0; i < CMD_N; i++)
        if (!strcmp(cmd_defs[i].name, name)) return &cmd_defs[i];
    return NULL;
}

/* nearest command name to a typo, or NULL */
static const char *cmd_nearest(const char *word)
{
    const char *names[CMD_N];
    for (int i = 0; i < CMD_N; i++) names[i] = cmd_defs[i].name;
    int k = arg_nearest(word, names, CMD_N);
    return k >= 0 ? names[k] : NULL;
}

static int cmd_help(cmd_call *c)
{
    cJSON *arr = cJSON_AddArrayToObject(out_obj(c->o), "commands");
    if (c->argc && !strcmp(c->argv[0], "targets")) {
        static const char *const lines[] = {
            "State targets (0-based; L and H may be lower case):",
            "  *              the whole state: every layer's att_x, S and ffn_x",
            "  L3.*           all of layer 3",
            "  L3.H1          head 1's N x N matrix S[value i][key j]",
            "  L3.H1[i,j]     one entry; L3.H1[i,:] row i; L3.H1[:,j] column j",
            "  L3.att_x       TimeMix's token-shift vector (C); L3.att_x[k] one entry",
            "  L3.ffn_x       the Meta-State layer's token-shift vector (C); [k] too",
        };
        for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) out_text(c->o, "%s", lines[i]);
        if (c->s->model) {
            const ms_config *g = cmd_cfg(c);
            out_text(c->o, "This model: layers 0..%d, heads H0..H%d, N = %d, C = %d.", g->n_layer - 1,
                     g->n_head - 1, g->head_size, g->n_embd);
        }
        cJSON_AddStringToObject(out_obj(c->o), "targets", TGT_GRAMMAR);
        return 0;
    }
    if (c->argc) {
        const cmd_def *d = cmd_lookup(c->argv[0]);
        if (!d) {
            const char *near = cmd_nearest(c->argv[0]);
            if (near) return cmd_fail(c, "no command '%s'; did you mean '%s'?", cmd_q(c->argv[0]), near);
            return cmd_fail(c, "no command '%s' ('help' lists them)", cmd_q(c->argv[0]));
        }
        cmd_describe(c, d, arr, 1);
        return 0;
    }
    for (int i = 0; i < CMD_N; i++)
        if (cmd_defs[i].fn) cmd_describe(c, &cmd_defs[i], arr, 0);
    char later[600] = "";
    size_t len = 0;
    for (int i = 0; i < CMD_N; i++)
        if (!cmd_defs[i].fn && len < sizeof later)
            len += (size_t)snprintf(later + len, sizeof later - len, "%s%s", len ? ", " : "", cmd_defs[i].name);
    if (later[0]) out_text(c->o, "not in this version yet: %s", later);
    out_text(c->o, "'help CMD' shows one command; 'help targets' the state targets.");
    return 0;
}

static int cmd_apropos(cmd_call *c)
{
    cJSON *arr = cJSON_AddArrayToObject(out_obj(c->o), "commands");
    int found = 0;
    for (int i = 0; i < CMD_N; i++) {
        const cmd_def *d = &cmd_defs[i];
        if (strcasestr(d->name, c->argv[0]) || strcasestr(d->help, c->argv[0]) || strcasestr(d->args, c->argv[0])) {
            cmd_describe(c, d, arr, 0);
            found++;
        }
    }
    if (!found) out_text(c->o, "nothing mentions '%s'", cmd_q(c->argv[0]));
    return 0;
}

/* ---- the interpreter ---- */

static int cmd_run_line1(cmd_env *e, const char *line, const char *where, char *msg, size_t cap,
                         const cmd_def **ran);

int cmd_run_line(cmd_env *e, const char *line, const char *where, char *msg, size_t cap)
{
    const cmd_def *d = NULL;
    int depth = e->depth;
    int rc = cmd_run_line1(e, line, where, msg, cap, &d);
    sess_idle(e->s);   /* memory for the next snap or fork, after this command's output */
    if (rc != 0 && depth == 0) {
        const char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, "\r\n");
        char *one = strndup(p, n);
        if (one) cmd_log_line(e, one, d, rc > 0);
        free(one);
    }
    return rc;
}

static int cmd_run_line1(cmd_env *e, const char *line, const char *where, char *msg, size_t cap,
                         const cmd_def **ran)
{
    const char *p = line;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (!*p || *p == '#') return 0;
    size_t nl = strcspn(p, " \t\r\n");
    char name[64];
    snprintf(name, sizeof name, "%.*s", nl < sizeof name ? (int)nl : 63, p);
    char pre[300] = "";
    if (where) snprintf(pre, sizeof pre, "%s: ", where);
    ms_err err;
    err.msg[0] = 0;
    const cmd_def *d = nl < sizeof name ? cmd_lookup(name) : NULL;
    *ran = d;
    out_begin(e->o, d ? d->name : cmd_q(name));
    if (e->s->stop) *e->s->stop = 0;

    if (!d) {
        const char *near = cmd_nearest(name);
        if (near) snprintf(msg, cap, "%sunknown command '%s'; did you mean '%s'?", pre, cmd_q(name), near);
        else snprintf(msg, cap, "%sunknown command '%s' ('help' lists the commands)", pre, cmd_q(name));
        out_end_err(e->o, msg);
        return -1;
    }
    char usage[120];
    snprintf(usage, sizeof usage, "usage: %s%s%s", d->name, d->args[0] ? " " : "", d->args);
    if (!d->fn) {
        snprintf(msg, cap, "%s%s: not in this version yet (%s)", pre, d->name, usage);
        out_end_err(e->o, msg);
        return -1;
    }
    /* the raw rest: after the name and one separating space or tab */
    const char *rest = p + nl;
    if (*rest == ' ' || *rest == '\t') rest++;
    cmd_call c = { .e = e, .s = e->s, .o = e->o, .argc = 0, .argv = NULL, .rest = rest, .err = &err };
    char **argv = NULL;
    int argc = 0, rc;
    if (!d->rest && arg_split(p + nl, &argv, &argc, err.msg, sizeof err.msg) != 0) {
        rc = -1;   /* raw-text commands (d->rest) check their text themselves */
    } else if (!d->rest && argc < d->min_args) {
        snprintf(err.msg, sizeof err.msg, "missing argument (%s)", usage);
        rc = -1;
    } else if (!d->rest && d->max_args >= 0 && argc > d->max_args) {
        if (d->max_args == 0)
            snprintf(err.msg, sizeof err.msg, "takes no arguments, got %d (%s)", argc, usage);
        else
            snprintf(err.msg, sizeof err.msg, "takes at most %d argument%s, got %d (%s)", d->max_args,
                     d->max_args == 1 ? "" : "s", argc, usage);
        rc = -1;
    } else if (!e->s->model && d->fn != cmd_load && d->fn != cmd_help && d->fn != cmd_apropos &&
               d->fn != cmd_quit && d->fn != cmd_source) {
        snprintf(err.msg, sizeof err.msg, "no model loaded ('load PATH')");
        rc = -1;
    } else {
        c.argc = argc;
        c.argv = argv;
        uint64_t v0 = e->s->version;
        rc = d->fn(&c);
        if (rc == 0 && e->s->model) {
            cmd_note(&c);
            if (e->s->version != v0 && d->fn != cmd_step) cmd_display_show(&c);
        }
    }
    free(argv);
    if (rc == CMD_FAIL_REPORTED) {   /* printed already; msg is that line */
        e->s->note[0] = 0;
        ms_fit_line(msg, cap, err.msg);
        out_end_err2(e->o, msg, 0);
        return -1;
    }
    if (rc != 0) {
        e->s->note[0] = 0;
        if (!err.msg[0]) snprintf(err.msg, sizeof err.msg, "failed");
        char *full = NULL;
        if (asprintf(&full, "%s%s%s%s", pre, e->o->json ? "" : d->name, e->o->json ? "" : ": ", err.msg) >= 0) {
            ms_fit_line(msg, cap, full);
            free(full);
        } else {
            snprintf(msg, cap, "%s", err.msg);
        }
        out_end_err(e->o, msg);
        if (e->o->json && asprintf(&full, "%s%s: %s", pre, d->name, err.msg) >= 0) {
            ms_fit_line(msg, cap, full);
            free(full);
        }
        return -1;
    }
    out_end(e->o);
    return 1;
}

int cmd_run_file(cmd_env *e, const char *path, char *msg, size_t cap)
{
    ms_err err;
    FILE *f = ms_fopen_read(path, "command file", &err);
    if (!f) {
        ms_fit_line(msg, cap, err.msg);
        return -1;
    }
    char *line = NULL;
    size_t lcap = 0, n;
    long lineno = 0;
    int rc = 0, got;
    while (!e->quit && (got = ms_read_line(f, cmd_q(path), &lineno, CMD_MAX_LINE, &line, &lcap, &n, &err)) != 0) {
        if (got < 0) {
            ms_fit_line(msg, cap, err.msg);
            rc = -1;
            break;
        }
        char where[300];
        snprintf(where, sizeof where, "%s:%ld", cmd_q(path), lineno);
        if (cmd_run_line(e, line, where, msg, cap) < 0) {
            rc = -2;
            break;
        }
        if (sess_interrupted(e->s)) {   /* Ctrl-C stops the file, not just one command */
            snprintf(msg, cap, "%s: interrupted; the rest of the file was not run", where);
            rc = -1;
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}
