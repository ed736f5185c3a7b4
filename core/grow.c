/* grow.c: progressive scaling (MODEL.md 3.3): the three growth steps on the
 * table of a model's tensors (model_table.h), the state conversion, and
 * splitmix64.  See grow.h for the contract and the init values.
 *
 * Why the grown model keeps its function: every new parameter token has a
 * zero value column (its relu^2 activation is multiplied by 0); every new
 * SSE head has zero key columns (its read is multiplied by 0); every new
 * WKV head has zero output columns in Wo (its read never reaches the
 * residual stream) and its state starts at zero.  The random parts are
 * there so the new parameters receive gradient once training goes on (a
 * zero key would never be trained through relu^2, a zero g2 with a zero Wo
 * would keep each other at zero).
 *
 * Random values: element j (the flat index in the grown tensor, row-major
 * in the file's shape) of tensor NAME grown with SEED is
 *     u = (mix(key + (j+1) * GAMMA) >> 11) * 2^-53,  key = mix(SEED ^ fnv1a64(NAME))
 *     value = (2u - 1) * bound            (double, then float, then the dtype)
 * so the same element gets the same value whatever order it is drawn in,
 * and two growth steps with one seed draw different values (their new
 * elements sit at different indices).  scripts/grow.py computes the same.
 */
#include "grow.h"
#include "model_table.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- splitmix64 ------------------------------------------------------------ */

uint64_t ms_splitmix64_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t ms_splitmix64_next(uint64_t *state)
{
    *state += MS_SPLITMIX_GAMMA;
    return ms_splitmix64_mix(*state);
}

double ms_splitmix64_unit(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

/* A double kept as computed: no fused multiply-add may merge it with the
 * next operation (scripts/grow.py rounds after every operation). */
static double keep(double x)
{
    volatile double v = x;
    return v;
}

static uint64_t stream_key(uint64_t seed, const char *name)
{
    return ms_splitmix64_mix(seed ^ ms_fnv1a(name, strlen(name), MS_FNV_INIT));
}

static double draw(uint64_t key, size_t j, double bound)
{
    double u = ms_splitmix64_unit(ms_splitmix64_mix(key + (uint64_t)(j + 1) * MS_SPLITMIX_GAMMA));
    return keep(keep(2.0 * u - 1.0) * bound);
}

/* ---- checks ---------------------------------------------------------------- */

const char *ms_grow_op_name(ms_grow_op op)
{
    return op == MS_GROW_TOKENS ? "tokens" : op == MS_GROW_SSE ? "sse" : "heads";
}

int ms_grow_op_parse(const char *s, ms_grow_op *op)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, ms_grow_op_name((ms_grow_op)i))) {
            *op = (ms_grow_op)i;
            return 0;
        }
    return -1;
}

int ms_grow_check(const ms_config *c, ms_grow_op op, long k, ms_err *err)
{
    const int C = c->n_embd, H = c->n_head, N = c->head_size, E = c->n_experts;
    switch (op) {
    case MS_GROW_TOKENS:
        if (k < 1 || k > MS_GROW_MAX_TOKENS || (long)c->n_ptok + k > (1L << 24)) {
            ms_seterr(err, "grow tokens: M must be an integer from 1 to %d (and n + M at most 2^24; n is %d), got %ld",
                      MS_GROW_MAX_TOKENS, c->n_ptok, k);
            return -1;
        }
        if (E > 1 && k % (2L * E)) {
            ms_seterr(err, "grow tokens: with %d experts M must be a multiple of 2E = %d (each block gets M/E "
                      "tokens, drawn in +/- pairs so that its router key keeps its direction), got %ld", E, 2 * E, k);
            return -1;
        }
        return 0;
    case MS_GROW_SSE: {
        int maxhs = H < C / N ? H : C / N;
        if (c->sse_heads >= maxhs) {
            ms_seterr(err, "grow sse: no SSE head can be added: Hs = %d = min(H=%d, C/N=%d)%s", c->sse_heads, H,
                      C / N, H < C / N ? "; 'grow heads' raises H" : "");
            return -1;
        }
        if (k < 1 || c->sse_heads + k > maxhs) {
            ms_seterr(err, "grow sse: K must be an integer from 1 to %d (Hs = %d, at most min(H=%d, C/N=%d) = %d), "
                      "got %ld", maxhs - c->sse_heads, c->sse_heads, H, C / N, maxhs, k);
            return -1;
        }
        return 0;
    }
    case MS_GROW_HEADS:
        if (k < 1 || k > MS_GROW_MAX_HEADS || ((long)H + k) * N > (1L << 24)) {
            ms_seterr(err, "grow heads: K must be an integer from 1 to %d, got %ld", MS_GROW_MAX_HEADS, k);
            return -1;
        }
        return 0;
    }
    ms_seterr(err, "grow: unknown step %d (valid: tokens, sse, heads)", (int)op);
    return -1;
}

ms_config ms_grow_config(const ms_config *c, ms_grow_op op, int k)
{
    ms_config g = *c;
    if (op == MS_GROW_TOKENS) g.n_ptok += k;
    else if (op == MS_GROW_SSE) g.sse_heads += k;
    else {
        g.n_head += k;
        g.dim_att = g.n_head * g.head_size;
    }
    return g;
}

void ms_grow_state(const ms_config *from, const ms_config *to, const float *src, float *dst)
{
    const size_t C = (size_t)from->n_embd, NN = (size_t)from->head_size * from->head_size;
    const size_t S0 = (size_t)from->n_head * NN, S1 = (size_t)to->n_head * NN;
    for (int l = 0; l < from->n_layer; l++) {
        const float *s = src + (size_t)l * (2 * C + S0);
        float *d = dst + (size_t)l * (2 * C + S1);
        memcpy(d, s, (C + S0) * sizeof(float));                       /* att_x, old heads */
        memset(d + C + S0, 0, (S1 - S0) * sizeof(float));             /* new heads */
        memcpy(d + C + S1, s + C + S0, C * sizeof(float));            /* ffn_x */
    }
}

/* ---- the steps on the table ------------------------------------------------- */

typedef struct {
    mt_table *t;
    const ms_config *c;
    uint64_t seed;
    char nm[96];
} grow_ctx;

static mt_tensor *layer_tensor(grow_ctx *g, int i, const char *sub)
{
    snprintf(g->nm, sizeof g->nm, "blocks.%d.%s", i, sub);
    return mt_find(g->t, g->nm);
}

static void copy_el(void *dst, size_t di, const void *src, size_t si, size_t esz)
{
    memcpy((unsigned char *)dst + di * esz, (const unsigned char *)src + si * esz, esz);
}

/* Parameter tokens: rows of a (n, cols) key matrix, block b's rows
 * [b*per, (b+1)*per) followed by `add` new rows in the grown (n', cols). */
static int grow_key_rows(mt_tensor *x, int E, int add, uint64_t seed, double bound)
{
    const int64_t rows = x->shape[0], cols = x->shape[1], per = rows / E, per2 = per + add;
    const int64_t sh[2] = {rows + (int64_t)E * add, cols};
    const void *od;
    void *oo;
    if (mt_reshape(x, 2, sh, &od, &oo)) return -1;
    size_t esz = ms_dtype_size(x->dt);
    uint64_t key = stream_key(seed, x->name);
    void *nd = x->own;
    for (int64_t b = 0; b < E; b++) {
        for (int64_t r = 0; r < per; r++)
            memcpy((unsigned char *)nd + (size_t)((b * per2 + r) * cols) * esz,
                   (const unsigned char *)od + (size_t)((b * per + r) * cols) * esz, (size_t)cols * esz);
        for (int64_t t = 0; t < add; t++) {
            int64_t row = b * per2 + per + t;
            int paired = E > 1 && (t & 1);   /* the negative of the row above */
            for (int64_t col = 0; col < cols; col++) {
                double v = paired ? -draw(key, (size_t)((row - 1) * cols + col), bound)
                                  : draw(key, (size_t)(row * cols + col), bound);
                mt_put(nd, x->dt, (size_t)(row * cols + col), (float)v);
            }
        }
    }
    free(oo);
    return 0;
}

/* V (C, n): the same block layout along the columns, new columns zero */
static int grow_value_cols(mt_tensor *x, int E, int add)
{
    const int64_t rows = x->shape[0], cols = x->shape[1], per = cols / E, per2 = per + add;
    const int64_t sh[2] = {rows, cols + (int64_t)E * add};
    const void *od;
    void *oo;
    if (mt_reshape(x, 2, sh, &od, &oo)) return -1;
    size_t esz = ms_dtype_size(x->dt);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < E; b++)
            memcpy((unsigned char *)x->own + (size_t)(r * sh[1] + b * per2) * esz,
                   (const unsigned char *)od + (size_t)(r * cols + b * per) * esz, (size_t)per * esz);
    free(oo);
    return 0;
}

static int grow_tokens(grow_ctx *g, int k)
{
    const int E = g->c->n_experts, add = k / E;
    const double bound = keep(0.5 / sqrt((double)g->c->n_embd));
    for (int i = 0; i < g->c->n_layer; i++) {
        mt_tensor *Kz = layer_tensor(g, i, "ffn.key.weight");
        if (!Kz || grow_key_rows(Kz, E, add, g->seed, bound)) return -1;
        mt_tensor *Ks = layer_tensor(g, i, "ffn.sse_key.weight");
        if (Ks && grow_key_rows(Ks, E, add, g->seed, bound)) return -1;
        mt_tensor *V = layer_tensor(g, i, "ffn.value.weight");
        if (!V || grow_value_cols(V, E, add)) return -1;
    }
    return 0;
}

/* a (cols) or (1,1,cols) vector or the columns of a (rows, cols) matrix
 * grown to cols2: old values kept, new ones from fill(ctx, row, col) */
typedef double (*fill_fn)(const void *ctx, int64_t row, int64_t col, size_t flat);
static int grow_last_dim(mt_tensor *x, int64_t cols2, fill_fn fill, const void *ctx)
{
    int last = x->ndim - 1;
    const int64_t cols = x->shape[last], rows = (int64_t)(mt_numel(x) / (size_t)cols);
    int64_t sh[3] = {x->shape[0], x->shape[1], x->shape[2]};
    sh[last] = cols2;
    const void *od;
    void *oo;
    if (mt_reshape(x, x->ndim, sh, &od, &oo)) return -1;
    size_t esz = ms_dtype_size(x->dt);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) copy_el(x->own, (size_t)(r * cols2 + c), od, (size_t)(r * cols + c), esz);
        if (fill)
            for (int64_t c = cols; c < cols2; c++) {
                size_t j = (size_t)(r * cols2 + c);
                mt_put(x->own, x->dt, j, (float)fill(ctx, r, c, j));
            }
    }
    free(oo);
    return 0;
}

/* the rows of a (rows, cols) matrix grown to rows2, new ones from fill (or zero) */
static int grow_rows(mt_tensor *x, int64_t rows2, fill_fn fill, const void *ctx)
{
    const int64_t rows = x->shape[0], cols = x->shape[1];
    const int64_t sh[2] = {rows2, cols};
    const void *od;
    void *oo;
    if (mt_reshape(x, 2, sh, &od, &oo)) return -1;
    size_t esz = ms_dtype_size(x->dt);
    memcpy(x->own, od, (size_t)(rows * cols) * esz);
    if (fill)
        for (int64_t r = rows; r < rows2; r++)
            for (int64_t c = 0; c < cols; c++) {
                size_t j = (size_t)(r * cols + c);
                mt_put(x->own, x->dt, j, (float)fill(ctx, r, c, j));
            }
    free(oo);
    return 0;
}

typedef struct { uint64_t key; double bound; } rand_fill;
static double fill_rand(const void *ctx, int64_t r, int64_t c, size_t j)
{
    const rand_fill *f = ctx;
    return draw(f->key, j, f->bound);
}
static double fill_const(const void *ctx, int64_t r, int64_t c, size_t j) { return *(const double *)ctx; }

typedef struct { int layer, L; int64_t A2; } w0_fill;
static double fill_w0(const void *ctx, int64_t r, int64_t c, size_t j)
{
    const w0_fill *f = ctx;
    double r01 = (double)f->layer / (f->L - 1 > 1 ? f->L - 1 : 1);
    double x = (double)c / (double)(f->A2 - 1 > 1 ? f->A2 - 1 : 1);
    double p = pow(x, keep(0.85 + pow(r01, 0.5)));
    return keep(keep(-7.0 + keep(5.0 * p)) + 0.5);
}

static int grow_sse(grow_ctx *g, int k)
{
    const int N = g->c->head_size, HsN = g->c->sse_heads * N, Hs2N = HsN + k * N;
    const double one = 1.0;
    for (int i = 0; i < g->c->n_layer; i++) {
        mt_tensor *Ks = layer_tensor(g, i, "ffn.sse_key.weight");
        if (Ks) {
            mt_tensor *w = layer_tensor(g, i, "ffn.sse_ln.weight"), *b = layer_tensor(g, i, "ffn.sse_ln.bias");
            if (!w || !b || grow_last_dim(Ks, Hs2N, NULL, NULL) || grow_last_dim(w, Hs2N, fill_const, &one) ||
                grow_last_dim(b, Hs2N, NULL, NULL))
                return -1;
            continue;
        }
        /* Hs was 0: the SSE tensors are new, after ffn.value.weight, Ks in Kz's dtype */
        mt_tensor *V = layer_tensor(g, i, "ffn.value.weight"), *Kz = layer_tensor(g, i, "ffn.key.weight");
        if (!V || !Kz) return -1;
        int at = (int)(V - g->t->t);
        ms_dtype kdt = Kz->dt;
        int64_t shk[2] = {g->c->n_ptok, Hs2N}, shv[1] = {Hs2N};
        snprintf(g->nm, sizeof g->nm, "blocks.%d.ffn.sse_key.weight", i);
        if (!mt_insert(g->t, at, g->nm, kdt, 2, shk)) return -1;
        snprintf(g->nm, sizeof g->nm, "blocks.%d.ffn.sse_ln.weight", i);
        mt_tensor *w = mt_insert(g->t, at + 1, g->nm, MS_F32, 1, shv);
        if (!w) return -1;
        for (int j = 0; j < Hs2N; j++) mt_put(w->own, MS_F32, (size_t)j, 1.0f);
        snprintf(g->nm, sizeof g->nm, "blocks.%d.ffn.sse_ln.bias", i);
        if (!mt_insert(g->t, at + 2, g->nm, MS_F32, 1, shv)) return -1;
    }
    return 0;
}

static int grow_heads(grow_ctx *g, int k)
{
    const ms_config *c = g->c;
    const int C = c->n_embd, L = c->n_layer, N = c->head_size;
    const int64_t H2 = (int64_t)c->n_head + k, A2 = H2 * N;
    const double rb = keep(0.5 / sqrt((double)C)), kb = keep(0.05 / sqrt((double)C));
    const double zero = 0.0, one = 1.0, kk = 0.85;
    for (int i = 0; i < L; i++) {
        /* Wr Wk Wv: new rows (new outputs) random, RWKV-7's bounds */
        static const char *const rw[3] = {"att.receptance.weight", "att.key.weight", "att.value.weight"};
        for (int m = 0; m < 3; m++) {
            mt_tensor *x = layer_tensor(g, i, rw[m]);
            if (!x) return -1;
            rand_fill f = {stream_key(g->seed, x->name), m == 1 ? kb : rb};
            if (grow_rows(x, A2, fill_rand, &f)) return -1;
        }
        /* Wo: new columns zero -- the new heads never reach the residual stream */
        mt_tensor *Wo = layer_tensor(g, i, "att.output.weight");
        if (!Wo || grow_last_dim(Wo, A2, NULL, NULL)) return -1;
        /* LoRA outputs: new columns random with the orthogonal init's std */
        static const char *const lo[4] = {"att.w2", "att.a2", "att.v2", "att.g2"};
        for (int m = 0; m < 4; m++) {
            mt_tensor *x = layer_tensor(g, i, lo[m]);
            if (!x) {
                if (m == 2 && i == 0) continue;   /* layer 0 has no v LoRA */
                return -1;
            }
            double D = (double)x->shape[0], mx = D > (double)A2 ? D : (double)A2;
            rand_fill f = {stream_key(g->seed, x->name), keep(0.1 * sqrt(keep(3.0 / mx)))};
            if (grow_last_dim(x, A2, fill_rand, &f)) return -1;
        }
        w0_fill wf = {i, L, A2};
        mt_tensor *x;
        if (!(x = layer_tensor(g, i, "att.w0")) || grow_last_dim(x, A2, fill_w0, &wf)) return -1;
        if (!(x = layer_tensor(g, i, "att.a0")) || grow_last_dim(x, A2, fill_const, &zero)) return -1;
        if ((x = layer_tensor(g, i, "att.v0")) && grow_last_dim(x, A2, fill_const, &one)) return -1;
        if (!x && i > 0) return -1;
        if (!(x = layer_tensor(g, i, "att.k_k")) || grow_last_dim(x, A2, fill_const, &kk)) return -1;
        if (!(x = layer_tensor(g, i, "att.k_a")) || grow_last_dim(x, A2, fill_const, &one)) return -1;
        if (!(x = layer_tensor(g, i, "att.r_k")) || grow_rows(x, H2, NULL, NULL)) return -1;
        double lnw = pow((1.0 + i) / L, 0.7);
        if (!(x = layer_tensor(g, i, "att.ln_x.weight")) || grow_last_dim(x, A2, fill_const, &lnw)) return -1;
        if (!(x = layer_tensor(g, i, "att.ln_x.bias")) || grow_last_dim(x, A2, NULL, NULL)) return -1;
    }
    return 0;
}

/* ---- the whole step ------------------------------------------------------------ */

ms_model *ms_grow(const ms_model *m, ms_grow_op op, int k, uint64_t seed, ms_err *err)
{
    const ms_config *c = &m->cfg;
    if (ms_grow_check(c, op, k, err)) return NULL;
    const char *who = m->path ? m->path : "model";
    mt_table t;
    if (mt_from_model(m, &t, err)) return NULL;
    ms_config c2 = ms_grow_config(c, op, k);
    grow_ctx g = {.t = &t, .c = c, .seed = seed};
    int rc = op == MS_GROW_TOKENS ? grow_tokens(&g, k) : op == MS_GROW_SSE ? grow_sse(&g, k) : grow_heads(&g, k);
    ms_model *out = NULL;
    char *meta = NULL;
    char dir[4096] = "", path[4200] = "";
    if (rc) {
        ms_seterr(err, "%s: grow %s %d: out of memory (or a tensor missing: %s)", who, ms_grow_op_name(op), k, g.nm);
        goto done;
    }
    char entry[128];
    snprintf(entry, sizeof entry, "{\"op\":\"%s\",\"k\":%d,\"seed\":%llu}", ms_grow_op_name(op), k,
             (unsigned long long)seed);
    if (!(meta = mt_meta(m, &c2, entry, err))) goto done;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ms-grow.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        ms_seterr(err, "grow: cannot create a temporary directory %s: %s", dir, strerror(errno));
        dir[0] = 0;
        goto done;
    }
    snprintf(path, sizeof path, "%s/grown.safetensors", dir);
    if (mt_write(&t, meta, path, err)) goto done;
    ms_err le;
    out = ms_model_load(path, &le);
    if (!out) {
        ms_seterr(err, "grow %s %d: the grown model does not load (a bug): %s", ms_grow_op_name(op), k, le.msg);
        goto done;
    }
    if (out->cfg.n_ptok != c2.n_ptok || out->cfg.sse_heads != c2.sse_heads || out->cfg.n_head != c2.n_head) {
        ms_seterr(err, "grow %s %d: the grown model has n %d Hs %d H %d, expected %d %d %d (a bug)",
                  ms_grow_op_name(op), k, out->cfg.n_ptok, out->cfg.sse_heads, out->cfg.n_head, c2.n_ptok,
                  c2.sse_heads, c2.n_head);
        ms_model_free(out);
        out = NULL;
        goto done;
    }
    char *p = strdup(who);
    if (!p) {
        ms_seterr(err, "%s: out of memory", who);
        ms_model_free(out);
        out = NULL;
        goto done;
    }
    free(out->path);
    out->path = p;
done:
    if (path[0]) unlink(path);
    if (dir[0]) rmdir(dir);
    free(meta);
    mt_free(&t);
    return out;
}
