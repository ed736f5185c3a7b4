/* target.c: parsing state targets and the loops over them (see target.h).
 *
 * The parser is a hand-written scanner over the small grammar of target.h:
 * it accepts digits only for numbers (at most 9, so nothing overflows),
 * and every rejection names what is valid for the loaded model.
 */
#include "target.h"
#include "args.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static size_t tgt_layer_off(const ms_config *c, int l) { return (size_t)l * ms_state_layer_len(c); }

static size_t tgt_S_off(const ms_config *c, int l, int h)
{
    return tgt_layer_off(c, l) + (size_t)c->n_embd + (size_t)h * c->head_size * c->head_size;
}

tgt tgt_make(const ms_config *c, tgt_kind kind, int layer, int head)
{
    tgt t;
    memset(&t, 0, sizeof t);
    t.kind = kind;
    t.layer = kind == TGT_ALL ? -1 : layer;
    t.head = kind == TGT_HEAD ? head : -1;
    t.row = t.col = -1;
    t.count = 1;
    t.stride = 0;
    t.ndim = 1;
    size_t N = (size_t)c->head_size, C = (size_t)c->n_embd;
    switch (kind) {
    case TGT_ALL: t.off = 0; t.len = ms_state_len(c); break;
    case TGT_LAYER: t.off = tgt_layer_off(c, layer); t.len = ms_state_layer_len(c); break;
    case TGT_HEAD: t.off = tgt_S_off(c, layer, head); t.len = N * N; t.ndim = 2; t.shape[1] = N; break;
    case TGT_ATT_X: t.off = tgt_layer_off(c, layer); t.len = C; break;
    case TGT_FFN_X: t.off = tgt_S_off(c, layer, c->n_head); t.len = C; break;
    }
    t.shape[0] = kind == TGT_HEAD ? N : t.len;
    return t;
}

/* narrow a head to [row, col] (-1 = ':') */
static void tgt_head_index(tgt *t, size_t N, int row, int col)
{
    t->row = row;
    t->col = col;
    if (row >= 0 && col >= 0) {
        t->off += (size_t)row * N + (size_t)col;
        t->len = 1;
        t->ndim = 0;
    } else if (row >= 0) {
        t->off += (size_t)row * N;
        t->len = N;
        t->ndim = 1;
        t->shape[0] = N;
    } else if (col >= 0) {
        t->off += (size_t)col;
        t->len = 1;
        t->count = N;
        t->stride = N;
        t->ndim = 1;
        t->shape[0] = N;
    }
}

/* digits at *p (at most 9); -1 if none or too many */
static long tgt_num(const char **p)
{
    const char *q = *p;
    long v = 0;
    int n = 0;
    while (*q >= '0' && *q <= '9') {
        if (++n > 9) return -1;
        v = v * 10 + (*q++ - '0');
    }
    if (!n) return -1;
    *p = q;
    return v;
}

/* an index at *p: digits or ':' (-1); -2 if neither */
static long tgt_index(const char **p)
{
    if (**p == ':') { (*p)++; return -1; }
    long v = tgt_num(p);
    return v < 0 ? -2 : v;
}

static int tgt_bad(char *err, size_t cap, const char *text)
{
    char q[200];
    snprintf(err, cap, "bad target '%s'; " TGT_GRAMMAR " ('help targets')", arg_quote(text, q, sizeof q));
    return -1;
}

static int tgt_range(char *err, size_t cap, const char *what, long v, long hi, const char *text)
{
    char q[200];
    snprintf(err, cap, "%s %ld is out of range in '%s': valid %s are 0..%ld", what, v,
             arg_quote(text, q, sizeof q), what, hi);
    return -1;
}

int tgt_parse(const ms_config *c, const char *text, tgt *t, char *err, size_t cap)
{
    const char *p = text;
    if (!strcmp(text, "*")) {
        *t = tgt_make(c, TGT_ALL, -1, -1);
        return 0;
    }
    if (*p != 'L' && *p != 'l') return tgt_bad(err, cap, text);
    p++;
    long layer = tgt_num(&p);
    if (layer < 0 || *p != '.') return tgt_bad(err, cap, text);
    if (layer >= c->n_layer) {
        snprintf(err, cap, "layer %ld does not exist: this model has layers 0..%d", layer, c->n_layer - 1);
        return -1;
    }
    p++;
    if (!strcmp(p, "*")) {
        *t = tgt_make(c, TGT_LAYER, (int)layer, -1);
        return 0;
    }
    if ((*p == 'H' || *p == 'h') && p[1] >= '0' && p[1] <= '9') {
        p++;
        long head = tgt_num(&p);
        if (head < 0) return tgt_bad(err, cap, text);
        if (head >= c->n_head) {
            snprintf(err, cap, "head %ld does not exist: each layer has heads H0..H%d", head, c->n_head - 1);
            return -1;
        }
        *t = tgt_make(c, TGT_HEAD, (int)layer, (int)head);
        if (!*p) return 0;
        if (*p++ != '[') return tgt_bad(err, cap, text);
        long i = tgt_index(&p);
        if (i == -2 || *p++ != ',') return tgt_bad(err, cap, text);
        long j = tgt_index(&p);
        if (j == -2 || *p++ != ']' || *p) return tgt_bad(err, cap, text);
        if (i >= c->head_size) return tgt_range(err, cap, "row index", i, c->head_size - 1, text);
        if (j >= c->head_size) return tgt_range(err, cap, "column index", j, c->head_size - 1, text);
        tgt_head_index(t, (size_t)c->head_size, (int)i, (int)j);
        return 0;
    }
    /* a named vector, maybe with [k] */
    size_t nl = strcspn(p, "[");
    tgt_kind kind;
    if (nl == 0) return tgt_bad(err, cap, text);
    if (nl == 5 && !strncmp(p, "att_x", 5)) kind = TGT_ATT_X;
    else if (nl == 5 && !strncmp(p, "ffn_x", 5)) kind = TGT_FFN_X;
    else {
        char part[32], q[200], hi[16];
        snprintf(part, sizeof part, "%.*s", nl < sizeof part ? (int)nl : 31, p);
        snprintf(hi, sizeof hi, "H%d", c->n_head - 1);
        const char *names[] = { "att_x", "ffn_x", "H0", hi, "*" };
        int k = arg_nearest(part, names, 2);
        snprintf(err, cap, "unknown part '%s' of layer %ld%s%s%s (parts: H0..H%d, att_x, ffn_x, *)",
                 arg_quote(part, q, sizeof q), layer, k >= 0 ? "; did you mean '" : "", k >= 0 ? names[k] : "",
                 k >= 0 ? "'?" : "", c->n_head - 1);
        return -1;
    }
    *t = tgt_make(c, kind, (int)layer, -1);
    p += nl;
    if (!*p) return 0;
    p++;
    long k = tgt_index(&p);
    if (k == -2 || *p++ != ']' || *p) return tgt_bad(err, cap, text);
    if (k >= c->n_embd) return tgt_range(err, cap, "index", k, c->n_embd - 1, text);
    if (k >= 0) {
        t->off += (size_t)k;
        t->len = 1;
        t->ndim = 0;
        t->row = (int)k;
    }
    return 0;
}

const char *tgt_name(const tgt *t, char *buf, size_t cap)
{
    char ix[48] = "";
    switch (t->kind) {
    case TGT_ALL: snprintf(buf, cap, "*"); break;
    case TGT_LAYER: snprintf(buf, cap, "L%d.*", t->layer); break;
    case TGT_HEAD:
        if (t->row >= 0 || t->col >= 0) {
            char r[16] = ":", cc[16] = ":";
            if (t->row >= 0) snprintf(r, sizeof r, "%d", t->row);
            if (t->col >= 0) snprintf(cc, sizeof cc, "%d", t->col);
            snprintf(ix, sizeof ix, "[%s,%s]", r, cc);
        }
        snprintf(buf, cap, "L%d.H%d%s", t->layer, t->head, ix);
        break;
    case TGT_ATT_X:
    case TGT_FFN_X:
        if (t->row >= 0) snprintf(ix, sizeof ix, "[%d]", t->row);
        snprintf(buf, cap, "L%d.%s%s", t->layer, t->kind == TGT_ATT_X ? "att_x" : "ffn_x", ix);
        break;
    }
    return buf;
}

int tgt_parts(const ms_config *c, const tgt *t, tgt *out, int max)
{
    int n = 0;
    int l0 = t->kind == TGT_ALL ? 0 : t->layer, l1 = t->kind == TGT_ALL ? c->n_layer : t->layer + 1;
    if (t->kind != TGT_ALL && t->kind != TGT_LAYER) {
        if (max > 0) out[0] = *t;
        return 1;
    }
    for (int l = l0; l < l1; l++) {
        if (n < max) out[n] = tgt_make(c, TGT_ATT_X, l, -1);
        n++;
        for (int h = 0; h < c->n_head; h++) {
            if (n < max) out[n] = tgt_make(c, TGT_HEAD, l, h);
            n++;
        }
        if (n < max) out[n] = tgt_make(c, TGT_FFN_X, l, -1);
        n++;
    }
    return n;
}

void tgt_get(const tgt *t, const float *state, float *out)
{
    for (size_t r = 0; r < t->count; r++)
        memcpy(out + r * t->len, state + t->off + r * t->stride, t->len * sizeof(float));
}

void tgt_put(const tgt *t, const float *in, float *state)
{
    for (size_t r = 0; r < t->count; r++)
        memcpy(state + t->off + r * t->stride, in + r * t->len, t->len * sizeof(float));
}

void tgt_fill(const tgt *t, float *state, float v)
{
    for (size_t r = 0; r < t->count; r++) {
        float *p = state + t->off + r * t->stride;
        for (size_t j = 0; j < t->len; j++) p[j] = v;
    }
}

void tgt_scale(const tgt *t, float *state, float f)
{
    for (size_t r = 0; r < t->count; r++) {
        float *p = state + t->off + r * t->stride;
        for (size_t j = 0; j < t->len; j++) p[j] *= f;
    }
}

void tgt_noise(const tgt *t, float *state, double sigma, uint64_t seed)
{
    ms_sampler rs;   /* only for its seeded RNG words */
    ms_sampler_init(&rs, 1.0f, 1.0f, 0, seed);
    for (size_t r = 0; r < t->count; r++) {
        float *p = state + t->off + r * t->stride;
        for (size_t j = 0; j < t->len; j++) {
            double u1 = 1.0 - ms_rng_uniform(rs.rng);   /* (0, 1]: log is finite */
            double u2 = ms_rng_uniform(rs.rng);
            double g = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
            p[j] = (float)((double)p[j] + sigma * g);
        }
    }
}

double tgt_max_abs(const tgt *t, const float *state)
{
    double m = 0;
    for (size_t r = 0; r < t->count; r++) {
        const float *p = state + t->off + r * t->stride;
        for (size_t j = 0; j < t->len; j++)
            if (fabs((double)p[j]) > m) m = fabs((double)p[j]);
    }
    return m;
}

const char *tgt_complete(const ms_config *c, const char *text, int k, char *buf, size_t cap)
{
    size_t tl = strlen(text);
    const char *dot = strchr(text, '.');
    int seen = 0;
    if (!dot) {
        /* "*" and every layer prefix "L<l>." */
        for (int i = -1; i < c->n_layer; i++) {
            if (i < 0) snprintf(buf, cap, "*");
            else snprintf(buf, cap, "L%d.", i);
            if (!strncmp(buf, text, tl) && seen++ == k) return buf;
        }
        return NULL;
    }
    const char *p = text + 1;
    long layer = (text[0] == 'L' || text[0] == 'l') ? tgt_num(&p) : -1;
    if (layer < 0 || p != dot || layer >= c->n_layer) return NULL;
    for (int i = -3; i < c->n_head; i++) {
        if (i == -3) snprintf(buf, cap, "L%ld.*", layer);
        else if (i == -2) snprintf(buf, cap, "L%ld.att_x", layer);
        else if (i == -1) snprintf(buf, cap, "L%ld.ffn_x", layer);
        else snprintf(buf, cap, "L%ld.H%d", layer, i);
        if (!strncmp(buf, text, tl) && seen++ == k) return buf;
    }
    return NULL;
}
