/* model.c: loading a model into ms_model from a .safetensors file or an
 * rwkv.cpp .bin file (format 101), and the state layout helpers.
 *
 * Both formats are first turned into one table of named tensors in PyTorch
 * (official RWKV-7) order and shape; the model is then built from that table
 * by one function, so every check (name, dtype, shape, byte range, NaN) is
 * written once.  F32 tensors are used in place inside the model's private
 * copy of the file (not a file mapping, which a truncation of the file would
 * turn into SIGBUS: see ms_st_read_file); 1-D tensors stored as F16/BF16 are
 * converted to owned F32 buffers (MODEL.md 5.1: they stay fp32).  The loader
 * never prints; a failure leaves one line in ms_err naming the file and the
 * tensor.
 */
#include "ms.h"
#include "kernels.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- state layout ------------------------------------------------------- */

size_t ms_state_layer_len(const ms_config *c)
{
    return 2 * (size_t)c->n_embd + (size_t)c->n_head * c->head_size * c->head_size;
}
size_t ms_state_len(const ms_config *c) { return (size_t)c->n_layer * ms_state_layer_len(c); }
float *ms_state_att_x(const ms_config *c, float *st, int l) { return st + (size_t)l * ms_state_layer_len(c); }
float *ms_state_S(const ms_config *c, float *st, int l) { return ms_state_att_x(c, st, l) + c->n_embd; }
float *ms_state_ffn_x(const ms_config *c, float *st, int l)
{
    return ms_state_S(c, st, l) + (size_t)c->n_head * c->head_size * c->head_size;
}

/* ---- the tensor table shared by both formats ----------------------------- */

typedef struct {
    char name[96];
    ms_st_dtype dt;
    int ndim;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
    int used;
} src_t;

typedef struct {
    const char *path;
    src_t *t;
    int n, cap;
    int lora_out_in;   /* 1: LoRA matrices stored (out, in) (rwkv.cpp), 0: (in, out) official */
    ms_model *m;
    ms_err *err;
} loader;

static src_t *src_add(loader *ld, const char *name)
{
    if (ld->n == ld->cap) {
        int nc = ld->cap ? 2 * ld->cap : 256;
        src_t *t = realloc(ld->t, sizeof *t * (size_t)nc);
        if (!t) return NULL;
        ld->t = t;
        ld->cap = nc;
    }
    src_t *s = &ld->t[ld->n++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static src_t *src_find(loader *ld, const char *name)
{
    for (int i = 0; i < ld->n; i++)
        if (!strcmp(ld->t[i].name, name)) return &ld->t[i];
    return NULL;
}

void *ms_model_own(ms_model *m, size_t bytes)
{
    if (m->n_owned == m->cap_owned) {
        int nc = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, sizeof *o * (size_t)nc);
        if (!o) return NULL;
        m->owned = o;
        m->cap_owned = nc;
    }
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64)) return NULL;
    memset(p, 0, bytes ? bytes : 64);
    m->owned[m->n_owned++] = p;
    return p;
}


static void shape_str(const int64_t *sh, int nd, char *out, size_t cap)
{
    size_t o = 0;
    o += (size_t)snprintf(out + o, cap - o, "(");
    for (int i = 0; i < nd && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%lld", i ? ", " : "", (long long)sh[i]);
    if (o < cap) snprintf(out + o, cap - o, ")");
}

static float half_to_f32(ms_st_dtype dt, uint16_t h)
{
    return dt == ST_BF16 ? ms_bf16_to_f32(h) : ms_f16_to_f32(h);
}

/* Non-finite check on a tensor's values; also folds its bytes into the
 * weights hash (FNV-1a over 64-bit words, then the tail). */
static int check_finite(loader *ld, src_t *s)
{
    const unsigned char *p = s->data;
    size_t n = s->nbytes, i = 0;
    uint64_t h = ld->m->weights_hash;
    h = ms_fnv1a(s->name, strlen(s->name), h);
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    h = ms_fnv1a(p + i, n - i, h);
    ld->m->weights_hash = h;
    size_t bad = (size_t)-1;
    if (s->dt == ST_F32) {
        for (size_t j = 0; j < n / 4; j++) {
            uint32_t u;
            memcpy(&u, p + 4 * j, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) { bad = j; break; }
        }
    } else {
        uint16_t mask = s->dt == ST_BF16 ? 0x7f80 : 0x7c00;
        for (size_t j = 0; j < n / 2; j++) {
            uint16_t u;
            memcpy(&u, p + 2 * j, 2);
            if ((u & mask) == mask) { bad = j; break; }
        }
    }
    if (bad != (size_t)-1) {
        ms_seterr(ld->err, "%s: tensor '%s': element %zu is NaN or infinite", ld->path, s->name, bad);
        return -1;
    }
    return 0;
}

static src_t *need(loader *ld, const char *name)
{
    src_t *s = src_find(ld, name);
    if (!s) {
        ms_seterr(ld->err, "%s: missing tensor '%s'", ld->path, name);
        return NULL;
    }
    if (s->dt != ST_F32 && s->dt != ST_F16 && s->dt != ST_BF16) {
        ms_seterr(ld->err, "%s: tensor '%s': dtype %d not usable for weights (valid: F32, F16, BF16)", ld->path,
                  name, (int)s->dt);
        return NULL;
    }
    return s;
}

/* A vector of `len` floats: any shape whose dimensions are all 1 but one
 * (e.g. (C), (1,1,C)).  Converted to owned fp32 unless already aligned F32. */
static const float *get_vec2(loader *ld, const char *name, int len, int any_shape);
static const float *get_vec(loader *ld, const char *name, int len) { return get_vec2(ld, name, len, 0); }

/* any_shape: accept every shape with `len` elements (r_k is (H, N)) */
static const float *get_vec2(loader *ld, const char *name, int len, int any_shape)
{
    src_t *s = need(ld, name);
    if (!s) return NULL;
    int64_t numel = 1;
    int big = 0;
    for (int i = 0; i < s->ndim; i++) {
        numel *= s->shape[i];
        if (s->shape[i] != 1) big++;
    }
    if (numel != len || (big > 1 && !any_shape)) {
        char f[64];
        shape_str(s->shape, s->ndim, f, sizeof f);
        ms_seterr(ld->err, "%s: tensor '%s': expected shape (%d) or (1, 1, %d), found %s", ld->path, name, len,
                  len, f);
        return NULL;
    }
    if (check_finite(ld, s)) return NULL;
    s->used = 1;
    if (s->dt == ST_F32 && ((uintptr_t)s->data & 3) == 0) return s->data;
    float *o = ms_model_own(ld->m, sizeof(float) * (size_t)len);
    if (!o) { ms_seterr(ld->err, "%s: out of memory", ld->path); return NULL; }
    const unsigned char *p = s->data;
    for (int i = 0; i < len; i++) {
        if (s->dt == ST_F32) {
            memcpy(&o[i], p + 4 * (size_t)i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * (size_t)i, 2);
            o[i] = half_to_f32(s->dt, h);
        }
    }
    return o;
}

/* A matrix for y = W·x with y of `out` and x of `in` elements.  stored_in_out
 * says the file holds it as (in, out) (official LoRA layout). */
static int get_mat(loader *ld, const char *name, int out, int in, int stored_in_out, ms_mat *W)
{
    src_t *s = need(ld, name);
    if (!s) return -1;
    int64_t r = stored_in_out ? in : out, c = stored_in_out ? out : in;
    if (s->ndim != 2 || s->shape[0] != r || s->shape[1] != c) {
        char f[64];
        shape_str(s->shape, s->ndim, f, sizeof f);
        ms_seterr(ld->err, "%s: tensor '%s': expected shape (%lld, %lld), found %s", ld->path, name,
                  (long long)r, (long long)c, f);
        return -1;
    }
    if (check_finite(ld, s)) return -1;
    s->used = 1;
    W->dt = s->dt == ST_F32 ? MS_F32 : s->dt == ST_F16 ? MS_F16 : MS_BF16;
    W->out = out;
    W->in = in;
    W->trans = stored_in_out;
    size_t align = s->dt == ST_F32 ? 4 : 2;
    if ((uintptr_t)s->data % align == 0) {
        W->data = s->data;
    } else {
        void *o = ms_model_own(ld->m, s->nbytes);
        if (!o) { ms_seterr(ld->err, "%s: out of memory", ld->path); return -1; }
        memcpy(o, s->data, s->nbytes);
        W->data = o;
    }
    return 0;
}

static int lora(loader *ld, int i, const char *nm, int out, int in, ms_mat *W)
{
    char name[96];
    snprintf(name, sizeof name, "blocks.%d.att.%s", i, nm);
    /* official: (in, out) used as x @ M; rwkv.cpp stores the transpose */
    return get_mat(ld, name, out, in, !ld->lora_out_in, W);
}

static int shape2(loader *ld, const char *name, int64_t *a, int64_t *b)
{
    src_t *s = src_find(ld, name);
    if (!s) { ms_seterr(ld->err, "%s: missing tensor '%s'", ld->path, name); return -1; }
    if (s->ndim != 2 || s->shape[0] <= 0 || s->shape[1] <= 0 || s->shape[0] > (1 << 24) ||
        s->shape[1] > (1 << 24)) {
        char f[64];
        shape_str(s->shape, s->ndim, f, sizeof f);
        ms_seterr(ld->err, "%s: tensor '%s': expected a 2-D shape, found %s", ld->path, name, f);
        return -1;
    }
    *a = s->shape[0];
    *b = s->shape[1];
    return 0;
}

static int meta_int(const char *meta_json, const char *key, int def, int *out)
{
    *out = def;
    cJSON *m = cJSON_Parse(meta_json);
    if (!m) return 0;
    cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    int rc = 0;
    if (cJSON_IsString(v)) {
        char *end;
        long x = strtol(v->valuestring, &end, 10);
        if (*end || end == v->valuestring || x < 0 || x > (1 << 24)) rc = -1;
        else *out = (int)x;
    }
    cJSON_Delete(m);
    return rc;
}

/* Build the model from the table; sizes come from shapes, metadata must agree. */
static int build(loader *ld)
{
    ms_model *m = ld->m;
    ms_config *c = &m->cfg;
    int64_t a, b;
    char nm[128];

    if (shape2(ld, "emb.weight", &a, &b)) return -1;
    c->vocab = (int)a;
    c->n_embd = (int)b;
    int L = 0;
    for (int i = 0; i < ld->n; i++) {
        int li;
        if (sscanf(ld->t[i].name, "blocks.%d.", &li) == 1 && li >= 0 && li < 4096 && li + 1 > L) L = li + 1;
    }
    if (L == 0) { ms_seterr(ld->err, "%s: no tensors named blocks.N.* (no layers)", ld->path); return -1; }
    c->n_layer = L;
    if (shape2(ld, "blocks.0.att.r_k", &a, &b)) return -1;
    if (a * b > (1 << 24)) {   /* each side is at most 2^24: their product would overflow int */
        ms_seterr(ld->err, "%s: tensor 'blocks.0.att.r_k': %lld heads of %lld (at most 2^24 in all)", ld->path,
                  (long long)a, (long long)b);
        return -1;
    }
    c->n_head = (int)a;
    c->head_size = (int)b;
    c->dim_att = c->n_head * c->head_size;
    if (c->head_size < 4) {
        ms_seterr(ld->err, "%s: tensor 'blocks.0.att.r_k': head size %d (must be >= 4)", ld->path, c->head_size);
        return -1;
    }
    if (shape2(ld, "blocks.0.ffn.key.weight", &a, &b)) return -1;
    if (b != c->n_embd) {
        ms_seterr(ld->err, "%s: tensor 'blocks.0.ffn.key.weight': expected shape (n, %d), found (%lld, %lld)",
                  ld->path, c->n_embd, (long long)a, (long long)b);
        return -1;
    }
    c->n_ptok = (int)a;
    const int C = c->n_embd, A = c->dim_att, H = c->n_head, N = c->head_size, n = c->n_ptok;
    /* LoRA dims from shapes */
    int lo[4];
    const char *ln[4] = {"w1", "a1", "v1", "g1"};
    for (int j = 0; j < 4; j++) {
        int li = j == 2 ? (L > 1 ? 1 : -1) : 0;
        if (li < 0) { lo[j] = 0; continue; }
        snprintf(nm, sizeof nm, "blocks.%d.att.%s", li, ln[j]);
        if (shape2(ld, nm, &a, &b)) return -1;
        lo[j] = (int)(ld->lora_out_in ? a : b);
    }
    c->d_w = lo[0]; c->d_a = lo[1]; c->d_v = lo[2]; c->d_g = lo[3];
    /* SSE heads from the shape of sse_key, checked against the metadata */
    src_t *sk = src_find(ld, "blocks.0.ffn.sse_key.weight");
    int hs = 0;
    if (sk) {
        if (sk->ndim != 2 || sk->shape[0] != n || sk->shape[1] % N || sk->shape[1] <= 0) {
            char f[64];
            shape_str(sk->shape, sk->ndim, f, sizeof f);
            ms_seterr(ld->err, "%s: tensor 'blocks.0.ffn.sse_key.weight': expected shape (%d, Hs*%d), found %s",
                      ld->path, n, N, f);
            return -1;
        }
        hs = (int)(sk->shape[1] / N);
    }
    int mhs;
    if (meta_int(m->meta_json, "sse_heads", hs, &mhs) || mhs != hs) {
        ms_seterr(ld->err, "%s: metadata sse_heads=%d disagrees with tensor 'blocks.0.ffn.sse_key.weight' (%d heads)",
                  ld->path, mhs, hs);
        return -1;
    }
    int maxhs = H < C / N ? H : C / N;
    if (hs > maxhs) {
        ms_seterr(ld->err, "%s: %d SSE heads but at most min(H=%d, C/N=%d) = %d are possible", ld->path, hs, H,
                  C / N, maxhs);
        return -1;
    }
    c->sse_heads = hs;
    if (meta_int(m->meta_json, "n_experts", 1, &c->n_experts) || meta_int(m->meta_json, "top_k", 1, &c->top_k) ||
        c->n_experts < 1 || c->top_k < 1 || c->top_k > c->n_experts || n % c->n_experts) {
        ms_seterr(ld->err, "%s: metadata n_experts/top_k invalid (need 1 <= top_k <= n_experts dividing n=%d)",
                  ld->path, n);
        return -1;
    }

    if (!(m->layers = calloc((size_t)L, sizeof *m->layers))) {
        ms_seterr(ld->err, "%s: out of memory", ld->path);
        return -1;
    }
#define VEC(dst, name, len) do { if (!((dst) = get_vec(ld, (name), (len)))) return -1; } while (0)
#define LVEC(dst, sub, len) do { snprintf(nm, sizeof nm, "blocks.%d.%s", i, sub); VEC(dst, nm, len); } while (0)
#define LMAT(dst, sub, o, in) do { snprintf(nm, sizeof nm, "blocks.%d.%s", i, sub); \
        if (get_mat(ld, nm, (o), (in), 0, &(dst))) return -1; } while (0)
    if (get_mat(ld, "emb.weight", c->vocab, C, 0, &m->emb)) return -1;
    if (get_mat(ld, "head.weight", c->vocab, C, 0, &m->head)) return -1;
    VEC(m->ln0_w, "blocks.0.ln0.weight", C);
    VEC(m->ln0_b, "blocks.0.ln0.bias", C);
    VEC(m->lnout_w, "ln_out.weight", C);
    VEC(m->lnout_b, "ln_out.bias", C);
    for (int i = 0; i < L; i++) {
        ms_layer *y = &m->layers[i];
        LVEC(y->ln1_w, "ln1.weight", C); LVEC(y->ln1_b, "ln1.bias", C);
        LVEC(y->ln2_w, "ln2.weight", C); LVEC(y->ln2_b, "ln2.bias", C);
        LVEC(y->x_r, "att.x_r", C); LVEC(y->x_w, "att.x_w", C); LVEC(y->x_k, "att.x_k", C);
        LVEC(y->x_v, "att.x_v", C); LVEC(y->x_a, "att.x_a", C); LVEC(y->x_g, "att.x_g", C);
        LVEC(y->w0, "att.w0", A); LVEC(y->a0, "att.a0", A);
        LVEC(y->k_k, "att.k_k", A); LVEC(y->k_a, "att.k_a", A);
        snprintf(nm, sizeof nm, "blocks.%d.att.r_k", i);
        if (!(y->r_k = get_vec2(ld, nm, A, 1))) return -1;
        LVEC(y->lnx_w, "att.ln_x.weight", A); LVEC(y->lnx_b, "att.ln_x.bias", A);
        if (lora(ld, i, "w1", c->d_w, C, &y->w1) || lora(ld, i, "w2", A, c->d_w, &y->w2) ||
            lora(ld, i, "a1", c->d_a, C, &y->a1) || lora(ld, i, "a2", A, c->d_a, &y->a2) ||
            lora(ld, i, "g1", c->d_g, C, &y->g1) || lora(ld, i, "g2", A, c->d_g, &y->g2))
            return -1;
        if (i > 0) {
            LVEC(y->v0, "att.v0", A);
            if (lora(ld, i, "v1", c->d_v, C, &y->v1) || lora(ld, i, "v2", A, c->d_v, &y->v2)) return -1;
        } else {   /* layer 0's v0/v1/v2 are unused; accept and ignore them */
            const char *unused[3] = {"blocks.0.att.v0", "blocks.0.att.v1", "blocks.0.att.v2"};
            for (int j = 0; j < 3; j++) {
                src_t *s = src_find(ld, unused[j]);
                if (s) s->used = 1;
            }
        }
        LMAT(y->Wr, "att.receptance.weight", A, C);
        LMAT(y->Wk, "att.key.weight", A, C);
        LMAT(y->Wv, "att.value.weight", A, C);
        LMAT(y->Wo, "att.output.weight", C, A);
        LVEC(y->ffn_xk, "ffn.x_k", C);
        LMAT(y->Kz, "ffn.key.weight", n, C);
        LMAT(y->V, "ffn.value.weight", C, n);
        if (hs > 0) {
            LMAT(y->Ks, "ffn.sse_key.weight", n, hs * N);
            LVEC(y->sse_ln_w, "ffn.sse_ln.weight", hs * N);
            LVEC(y->sse_ln_b, "ffn.sse_ln.bias", hs * N);
        } else {
            snprintf(nm, sizeof nm, "blocks.%d.ffn.sse_key.weight", i);
            if (src_find(ld, nm)) {
                ms_seterr(ld->err, "%s: tensor '%s' present but layer 0 has no SSE heads", ld->path, nm);
                return -1;
            }
        }
    }
#undef VEC
#undef LVEC
#undef LMAT
    if (c->n_experts > 1)
        for (int i = 0; i < L; i++)
            if (ms_layer_build_experts(m, i)) {
                ms_seterr(ld->err, "%s: out of memory", ld->path);
                return -1;
            }
    for (int i = 0; i < ld->n; i++)
        if (!ld->t[i].used) {
            ms_seterr(ld->err, "%s: unexpected tensor '%s' (not part of a %d-layer model)", ld->path,
                      ld->t[i].name, L);
            return -1;
        }
    /* tokenizer */
    cJSON *meta = cJSON_Parse(m->meta_json);
    cJSON *tk = cJSON_GetObjectItemCaseSensitive(meta, "tokenizer");
    const char *tks = cJSON_IsString(tk) ? tk->valuestring : (c->vocab == 65536 ? "rwkv-world" : "bytes");
    int rc = 0;
    if (!strcmp(tks, "bytes")) {
        c->tokenizer = MS_TOK_BYTES;
        if (c->vocab < 256) {
            ms_seterr(ld->err, "%s: tokenizer 'bytes' needs a vocab of at least 256, emb.weight has %d rows",
                      ld->path, c->vocab);
            rc = -1;
        }
    } else if (!strcmp(tks, "rwkv-world")) {
        c->tokenizer = MS_TOK_WORLD;
        if (c->vocab != 65536) {
            ms_seterr(ld->err, "%s: tokenizer 'rwkv-world' needs vocab 65536, emb.weight has %d rows", ld->path,
                      c->vocab);
            rc = -1;
        }
    } else if (!strcmp(tks, "words")) {
        c->tokenizer = MS_TOK_WORDS;
        cJSON *vs = cJSON_GetObjectItemCaseSensitive(meta, "vocab");
        cJSON *list = cJSON_IsString(vs) ? cJSON_Parse(vs->valuestring) : NULL;
        if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != c->vocab) {
            ms_seterr(ld->err, "%s: metadata 'vocab' must be a JSON list of %d strings for tokenizer 'words'",
                      ld->path, c->vocab);
            rc = -1;
        } else if (!(m->words = calloc((size_t)c->vocab + 1, sizeof(char *)))) {
            ms_seterr(ld->err, "%s: out of memory", ld->path);
            rc = -1;
        } else {
            int j = 0;
            for (cJSON *w = list->child; w; w = w->next, j++) {
                if (!cJSON_IsString(w) || !(m->words[j] = strdup(w->valuestring))) {
                    ms_seterr(ld->err, "%s: metadata 'vocab' entry %d is not a string", ld->path, j);
                    rc = -1;
                    break;
                }
            }
        }
        cJSON_Delete(list);
    } else {
        ms_seterr(ld->err, "%s: unknown tokenizer '%s' (valid: bytes, rwkv-world, words)", ld->path, tks);
        rc = -1;
    }
    cJSON_Delete(meta);
    c->wtype = m->layers[0].Wr.dt;
    return rc;
}

static float mat_get(const ms_mat *W, int r, int c)
{
    size_t i = W->trans ? (size_t)c * W->out + r : (size_t)r * W->in + c;
    if (W->dt == MS_F32) return ((const float *)W->data)[i];
    uint16_t h = ((const uint16_t *)W->data)[i];
    return W->dt == MS_BF16 ? ms_bf16_to_f32(h) : ms_f16_to_f32(h);
}

int ms_layer_build_experts(ms_model *m, int li)
{
    const ms_config *c = &m->cfg;
    ms_layer *y = &m->layers[li];
    const int C = c->n_embd, D = C + c->sse_heads * c->head_size, n = c->n_ptok, E = c->n_experts, per = n / E;
    float *router = ms_model_own(m, sizeof(float) * (size_t)E * D);
    size_t esz = ms_dtype_size(y->V.dt);
    unsigned char *vt = ms_model_own(m, (size_t)n * C * esz);
    if (!router || !vt) return -1;
    for (int b = 0; b < E; b++)
        for (int d = 0; d < D; d++) {
            double acc = 0;
            for (int j = b * per; j < (b + 1) * per; j++)
                acc += d < C ? mat_get(&y->Kz, j, d) : mat_get(&y->Ks, j, d - C);
            router[(size_t)b * D + d] = (float)(acc / per);
        }
    /* V is (C, n) as (out, in); Vt holds the same matrix as (in, out) rows */
    const unsigned char *v = y->V.data;
    for (int r = 0; r < C; r++)
        for (int j = 0; j < n; j++)
            memcpy(vt + ((size_t)j * C + r) * esz, v + ((size_t)r * n + j) * esz, esz);
    y->router = router;
    y->Vt = (ms_mat){.data = vt, .dt = y->V.dt, .out = C, .in = n, .trans = 1};
    return 0;
}

/* ---- safetensors ---------------------------------------------------------- */

static int load_st(loader *ld, ms_st_file *f)
{
    if (ms_st_open(ld->path, f, ld->err)) return -1;
    ms_model *m = ld->m;
    const char *fmt = ms_st_meta(f, "format");
    if (fmt && strcmp(fmt, "metastate")) {
        ms_seterr(ld->err, "%s: metadata format is '%s', not 'metastate' (a state file? use 'open')", ld->path,
                  fmt);
        return -1;
    }
    m->meta_json = strdup(f->meta_json);
    for (int i = 0; i < f->n; i++) {
        const ms_st_tensor *t = &f->t[i];
        if (t->ndim > 4) {
            ms_seterr(ld->err, "%s: tensor '%s': %d dimensions (at most 4)", ld->path, t->name, t->ndim);
            return -1;
        }
        src_t *s = src_add(ld, t->name);
        if (!s) { ms_seterr(ld->err, "%s: out of memory", ld->path); return -1; }
        s->dt = t->dtype;
        s->ndim = t->ndim;
        memcpy(s->shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        s->data = t->data;
        s->nbytes = t->end - t->begin;
    }
    ld->lora_out_in = 0;
    return 0;
}

/* ---- rwkv.cpp .bin ---------------------------------------------------------- */

static int rd32(const unsigned char *p, size_t len, size_t *off, int32_t *v)
{
    if (*off + 4 > len) return -1;
    memcpy(v, p + *off, 4);
    *off += 4;
    return 0;
}

static int load_bin(loader *ld, const unsigned char *p, size_t len)
{
    int32_t hdr[6];
    size_t off = 0;
    for (int i = 0; i < 6; i++)
        if (rd32(p, len, &off, &hdr[i])) {
            ms_seterr(ld->err, "%s: truncated rwkv.cpp header", ld->path);
            return -1;
        }
    if (hdr[1] != 101) {
        ms_seterr(ld->err, "%s: rwkv.cpp file format version %d (only 101 is supported)", ld->path, hdr[1]);
        return -1;
    }
    if (hdr[5] != 0 && hdr[5] != 1) {
        ms_seterr(ld->err, "%s: rwkv.cpp data type %d (supported: 0 = F32, 1 = F16)", ld->path, hdr[5]);
        return -1;
    }
    ld->m->meta_json = strdup("{}");
    char prev[96] = "(none)";
    while (off < len) {
        int32_t nd, kl, dt;
        size_t at = off;
        if (rd32(p, len, &off, &nd) || rd32(p, len, &off, &kl) || rd32(p, len, &off, &dt)) {
            ms_seterr(ld->err, "%s: truncated tensor header at offset %zu", ld->path, at);
            return -1;
        }
        if (nd < 1 || nd > 3 || kl < 1 || kl > 90 || (dt != 0 && dt != 1)) {
            ms_seterr(ld->err, "%s: bad tensor header at offset %zu after tensor '%s' (dims %d, name length %d, "
                      "type %d): corrupt, or the previous tensor's shape is wrong", ld->path, at, prev, nd, kl, dt);
            return -1;
        }
        int32_t dims[3];
        int64_t numel = 1;
        for (int i = 0; i < nd; i++) {
            if (rd32(p, len, &off, &dims[i]) || dims[i] <= 0 || dims[i] > (1 << 24)) {
                ms_seterr(ld->err, "%s: bad or truncated dimension in tensor header at offset %zu", ld->path, at);
                return -1;
            }
            /* three dims of 2^24 overflow int64; no tensor has more elements than the file has bytes */
            if (numel > (int64_t)len / dims[i]) {
                ms_seterr(ld->err, "%s: tensor header at offset %zu: shape larger than the file", ld->path, at);
                return -1;
            }
            numel *= dims[i];
        }
        if (off + (size_t)kl > len) {
            ms_seterr(ld->err, "%s: truncated tensor name at offset %zu", ld->path, off);
            return -1;
        }
        char name[96];
        memcpy(name, p + off, (size_t)kl);
        name[kl] = 0;
        off += (size_t)kl;
        size_t nbytes = (size_t)numel * (dt ? 2 : 4);
        if (nbytes > len - off) {
            ms_seterr(ld->err, "%s: tensor '%s': %zu bytes of data run past the end of the file (%zu bytes left)",
                      ld->path, name, nbytes, len - off);
            return -1;
        }
        const unsigned char *data = p + off;
        off += nbytes;
        snprintf(prev, sizeof prev, "%s", name);
        ms_st_dtype sdt = dt ? ST_F16 : ST_F32;
        const char *suffix = strstr(name, "att.x_rwkvag");
        if (suffix) {   /* six lerps stacked: torch shape (6, 1, C) */
            if (numel % 6) {
                ms_seterr(ld->err, "%s: tensor '%s': %lld elements, not 6 stacked vectors", ld->path, name,
                          (long long)numel);
                return -1;
            }
            static const char *lerp[6] = {"x_r", "x_w", "x_k", "x_v", "x_a", "x_g"};
            size_t part = nbytes / 6;
            for (int j = 0; j < 6; j++) {
                char nn[96];
                snprintf(nn, sizeof nn, "%.*satt.%s", (int)(suffix - name), name, lerp[j]);
                src_t *s = src_add(ld, nn);
                if (!s) { ms_seterr(ld->err, "%s: out of memory", ld->path); return -1; }
                s->dt = sdt;
                s->ndim = 1;
                s->shape[0] = numel / 6;
                s->data = data + part * (size_t)j;
                s->nbytes = part;
            }
            continue;
        }
        if (src_find(ld, name)) {
            ms_seterr(ld->err, "%s: tensor '%s' appears twice", ld->path, name);
            return -1;
        }
        src_t *s = src_add(ld, name);
        if (!s) { ms_seterr(ld->err, "%s: out of memory", ld->path); return -1; }
        s->dt = sdt;
        s->ndim = nd;
        for (int i = 0; i < nd; i++) s->shape[i] = dims[nd - 1 - i];   /* ggml order is reversed */
        s->data = data;
        s->nbytes = nbytes;
    }
    ld->lora_out_in = 1;
    if (!src_find(ld, "emb.weight") || src_find(ld, "emb.weight")->shape[0] != hdr[2]) {
        ms_seterr(ld->err, "%s: header says vocab %d but tensor 'emb.weight' disagrees or is missing", ld->path,
                  hdr[2]);
        return -1;
    }
    return 0;
}

/* ---- public ------------------------------------------------------------------ */

void ms_model_free(ms_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    if (m->words)
        for (int i = 0; i < m->cfg.vocab; i++) free(m->words[i]);
    free(m->words);
    free(m->layers);
    free(m->path);
    free(m->meta_json);
    if (m->map) munmap(m->map, m->map_len);
    free(m);
}

ms_model *ms_model_load(const char *path, ms_err *err)
{
    ms_model *m = calloc(1, sizeof *m);
    if (!m) { ms_seterr(err, "%s: out of memory", path); return NULL; }
    m->weights_hash = MS_FNV_INIT;
    m->path = strdup(path);
    loader ld = {.path = path, .m = m, .err = err};
    ms_st_file st;
    memset(&st, 0, sizeof st);
    int rc = -1;

    struct stat sb;
    int fd = ms_open_read(path, "model", &sb, err);
    if (fd < 0) goto done;
    if (sb.st_size < 8) {
        ms_seterr(err, "%s: not a model file (%lld bytes; too short for any model format)", path, (long long)sb.st_size);
        close(fd);
        goto done;
    }
    unsigned char magic[4];
    if (pread(fd, magic, 4, 0) != 4) {
        ms_seterr(err, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        goto done;
    }
    if (!memcmp(magic, "fmgg", 4)) {   /* 0x67676d66 little-endian: rwkv.cpp */
        void *map = ms_st_read_file(fd, (size_t)sb.st_size, path, err);
        close(fd);
        if (map == MAP_FAILED) goto done;
        m->map = map;
        m->map_len = (size_t)sb.st_size;
        if (load_bin(&ld, map, m->map_len)) goto done;
    } else {
        close(fd);
        if (load_st(&ld, &st)) goto done;
        /* the model keeps the mapping; the table of names is dropped */
        m->map = st.map;
        m->map_len = st.map_len;
        st.map = NULL;
    }
    if (!m->meta_json || !m->path) {
        ms_seterr(err, "%s: out of memory", path);
        goto done;
    }
    rc = build(&ld);
done:
    ms_st_close(&st);
    free(ld.t);
    if (rc) {
        ms_model_free(m);
        return NULL;
    }
    return m;
}

static size_t mat_bytes(const ms_mat *W) { return W->data ? (size_t)W->out * W->in * ms_dtype_size(W->dt) : 0; }

size_t ms_model_bytes_per_token(const ms_model *m)
{
    size_t b = mat_bytes(&m->head);
    for (int i = 0; i < m->cfg.n_layer; i++) {
        const ms_layer *y = &m->layers[i];
        const ms_mat *ms[] = {&y->w1, &y->w2, &y->a1, &y->a2, &y->v1, &y->v2, &y->g1, &y->g2,
                              &y->Wr, &y->Wk, &y->Wv, &y->Wo, &y->Kz, &y->V, &y->Ks};
        for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++) b += mat_bytes(ms[j]);
    }
    return b;
}

size_t ms_model_n_params(const ms_model *m)
{
    const ms_config *c = &m->cfg;
    size_t p = 0;
    p += (size_t)c->vocab * c->n_embd * 2 + 4 * (size_t)c->n_embd;
    for (int i = 0; i < c->n_layer; i++) {
        const ms_layer *y = &m->layers[i];
        const ms_mat *ms[] = {&y->w1, &y->w2, &y->a1, &y->a2, &y->v1, &y->v2, &y->g1, &y->g2,
                              &y->Wr, &y->Wk, &y->Wv, &y->Wo, &y->Kz, &y->V, &y->Ks};
        for (size_t j = 0; j < sizeof ms / sizeof ms[0]; j++)
            if (ms[j]->data) p += (size_t)ms[j]->out * ms[j]->in;
        p += 4 * (size_t)c->n_embd + 6 * (size_t)c->n_embd + (i ? 3 : 2) * (size_t)c->dim_att + 5 * (size_t)c->dim_att
             + (size_t)c->n_embd + 2 * (size_t)c->sse_heads * c->head_size;
    }
    return p;
}
