/* model_save.c: a loaded model as the table of tensors its .safetensors file
 * holds (model_table.h), the metadata of MODEL.md 5.1, and ms_model_save()
 * (grow.h), which writes both.
 *
 * The table borrows every tensor the model already holds in the file's
 * layout (all of them for a model loaded from .safetensors) and owns only
 * transposed copies (an rwkv.cpp model's LoRA matrices).  Vectors are fp32
 * in memory and written F32.  Nothing here prints.
 */
#include "model_table.h"
#include "grow.h"
#include "kernels.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the table ------------------------------------------------------------ */

size_t mt_numel(const mt_tensor *x)
{
    size_t n = 1;
    for (int i = 0; i < x->ndim; i++) n *= (size_t)x->shape[i];
    return n;
}

void mt_free(mt_table *t)
{
    for (int i = 0; i < t->n; i++) free(t->t[i].own);
    free(t->t);
    memset(t, 0, sizeof *t);
}

mt_tensor *mt_find(mt_table *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->t[i].name, name)) return &t->t[i];
    return NULL;
}

static mt_tensor *mt_add(mt_table *t, const char *name, ms_dtype dt, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 256;
        mt_tensor *v = realloc(t->t, sizeof *v * (size_t)cap);
        if (!v) return NULL;
        t->t = v;
        t->cap = cap;
    }
    mt_tensor *x = &t->t[t->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->dt = dt;
    x->ndim = ndim;
    x->shape[0] = d0;
    x->shape[1] = d1;
    x->shape[2] = d2;
    return x;
}

mt_tensor *mt_insert(mt_table *t, int after, const char *name, ms_dtype dt, int ndim, const int64_t *shape)
{
    mt_tensor *x = mt_add(t, name, dt, ndim, shape[0], ndim > 1 ? shape[1] : 0, ndim > 2 ? shape[2] : 0);
    if (!x) return NULL;
    void *buf = calloc(mt_numel(x), ms_dtype_size(dt));
    if (!buf) { t->n--; return NULL; }
    x->data = x->own = buf;
    if (after >= 0 && after + 1 < t->n - 1) {   /* move it from the end to after `after` */
        mt_tensor tmp = *x;
        memmove(&t->t[after + 2], &t->t[after + 1], sizeof *x * (size_t)(t->n - 2 - after));
        t->t[after + 1] = tmp;
        return &t->t[after + 1];
    }
    return x;
}

int mt_reshape(mt_tensor *x, int ndim, const int64_t *shape, const void **old_data, void **old_own)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    void *buf = calloc(n ? n : 1, ms_dtype_size(x->dt));
    if (!buf) return -1;
    *old_data = x->data;
    *old_own = x->own;
    x->ndim = ndim;
    for (int i = 0; i < 3; i++) x->shape[i] = i < ndim ? shape[i] : 0;
    x->data = x->own = buf;
    return 0;
}

float mt_get(const void *data, ms_dtype dt, size_t i)
{
    if (dt == MS_F32) return ((const float *)data)[i];
    uint16_t h = ((const uint16_t *)data)[i];
    return dt == MS_BF16 ? ms_bf16_to_f32(h) : ms_f16_to_f32(h);
}

void mt_put(void *data, ms_dtype dt, size_t i, float v)
{
    if (dt == MS_F32) ((float *)data)[i] = v;
    else ((uint16_t *)data)[i] = dt == MS_BF16 ? ms_f32_to_bf16(v) : ms_f32_to_f16(v);
}

/* a vector of the model (fp32) under its official shape */
static int add_vec(mt_table *t, const char *name, const float *v, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    mt_tensor *x = mt_add(t, name, MS_F32, ndim, d0, d1, d2);
    if (!x) return -1;
    x->data = v;
    return 0;
}

/* a matrix; in_out: the file holds it as (in, out) (official LoRA layout),
 * else (out, in) (Linear layout).  Borrowed when W already is in that
 * layout, else a transposed copy. */
static int add_mat(mt_table *t, const char *name, const ms_mat *W, int in_out)
{
    int64_t r = in_out ? W->in : W->out, c = in_out ? W->out : W->in;
    mt_tensor *x = mt_add(t, name, W->dt, 2, r, c, 0);
    if (!x) return -1;
    if (W->trans == in_out) {
        x->data = W->data;
        return 0;
    }
    size_t esz = ms_dtype_size(W->dt);
    unsigned char *o = malloc((size_t)r * (size_t)c * esz);
    if (!o) return -1;
    const unsigned char *s = W->data;   /* (c, r) row-major */
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++)
            memcpy(o + ((size_t)i * (size_t)c + (size_t)j) * esz, s + ((size_t)j * (size_t)r + (size_t)i) * esz, esz);
    x->data = x->own = o;
    return 0;
}

int mt_from_model(const ms_model *m, mt_table *t, ms_err *err)
{
    const ms_config *c = &m->cfg;
    const int C = c->n_embd, A = c->dim_att, H = c->n_head, N = c->head_size, HsN = c->sse_heads * N;
    char nm[96];
    int rc = 0;
    memset(t, 0, sizeof *t);
    /* one statement per tensor: the name buffer is shared */
#define V1(sub, v, len) do { snprintf(nm, sizeof nm, "blocks.%d.%s", i, sub); rc |= add_vec(t, nm, (v), 1, (len), 0, 0); } while (0)
#define V3(sub, v, len) do { snprintf(nm, sizeof nm, "blocks.%d.%s", i, sub); rc |= add_vec(t, nm, (v), 3, 1, 1, (len)); } while (0)
#define MAT(sub, W, io) do { snprintf(nm, sizeof nm, "blocks.%d.%s", i, sub); rc |= add_mat(t, nm, &(W), (io)); } while (0)
    rc |= add_mat(t, "emb.weight", &m->emb, 0);
    for (int i = 0; i < c->n_layer && !rc; i++) {
        const ms_layer *y = &m->layers[i];
        if (i == 0) { V1("ln0.weight", m->ln0_w, C); V1("ln0.bias", m->ln0_b, C); }
        V1("ln1.weight", y->ln1_w, C); V1("ln1.bias", y->ln1_b, C);
        V1("ln2.weight", y->ln2_w, C); V1("ln2.bias", y->ln2_b, C);
        V3("att.x_r", y->x_r, C); V3("att.x_w", y->x_w, C); V3("att.x_k", y->x_k, C);
        V3("att.x_v", y->x_v, C); V3("att.x_a", y->x_a, C); V3("att.x_g", y->x_g, C);
        V3("att.w0", y->w0, A); MAT("att.w1", y->w1, 1); MAT("att.w2", y->w2, 1);
        V3("att.a0", y->a0, A); MAT("att.a1", y->a1, 1); MAT("att.a2", y->a2, 1);
        if (i > 0) { V3("att.v0", y->v0, A); MAT("att.v1", y->v1, 1); MAT("att.v2", y->v2, 1); }
        MAT("att.g1", y->g1, 1); MAT("att.g2", y->g2, 1);
        V3("att.k_k", y->k_k, A); V3("att.k_a", y->k_a, A);
        snprintf(nm, sizeof nm, "blocks.%d.att.r_k", i);
        rc |= add_vec(t, nm, y->r_k, 2, H, N, 0);
        MAT("att.receptance.weight", y->Wr, 0); MAT("att.key.weight", y->Wk, 0);
        MAT("att.value.weight", y->Wv, 0); MAT("att.output.weight", y->Wo, 0);
        V1("att.ln_x.weight", y->lnx_w, A); V1("att.ln_x.bias", y->lnx_b, A);
        V3("ffn.x_k", y->ffn_xk, C);
        MAT("ffn.key.weight", y->Kz, 0); MAT("ffn.value.weight", y->V, 0);
        if (HsN) {
            MAT("ffn.sse_key.weight", y->Ks, 0);
            V1("ffn.sse_ln.weight", y->sse_ln_w, HsN); V1("ffn.sse_ln.bias", y->sse_ln_b, HsN);
        }
    }
#undef V1
#undef V3
#undef MAT
    if (!rc) rc |= add_vec(t, "ln_out.weight", m->lnout_w, 1, C, 0, 0) | add_vec(t, "ln_out.bias", m->lnout_b, 1, C, 0, 0);
    if (!rc) rc |= add_mat(t, "head.weight", &m->head, 0);
    if (rc) {
        mt_free(t);
        ms_seterr(err, "%s: out of memory exporting the model's tensors", m->path ? m->path : "model");
        return -1;
    }
    return 0;
}

/* ---- metadata ------------------------------------------------------------- */

static const char *tok_name(ms_tok_kind k)
{
    return k == MS_TOK_WORLD ? "rwkv-world" : k == MS_TOK_WORDS ? "words" : "bytes";
}

/* the growth list text with one entry appended (exact integers: seeds are
 * 64-bit and a JSON number through a double would round them) */
static char *growth_text(const char *old, const char *add, ms_err *err, const char *who)
{
    const char *base = old && *old ? old : "[]";
    if (!add) {   /* nothing to append: kept as it is */
        char *out = strdup(base);
        if (!out) ms_seterr(err, "%s: out of memory", who);
        return out;
    }
    cJSON *chk = cJSON_Parse(base);
    int ok = cJSON_IsArray(chk);
    cJSON_Delete(chk);
    if (!ok) {
        ms_seterr(err, "%s: metadata 'growth' is not a JSON list: cannot append to it", who);
        return NULL;
    }
    size_t bl = strlen(base), al = strlen(add);
    char *out = malloc(bl + al + 4);
    if (!out) { ms_seterr(err, "%s: out of memory", who); return NULL; }
    /* strip the closing bracket (and whitespace), see whether the list is empty */
    size_t k = bl;
    while (k > 0 && base[k - 1] != ']') k--;   /* a valid list ends with ']' */
    k--;                                        /* the text before it */
    while (k > 0 && (base[k - 1] == ' ' || base[k - 1] == '\n' || base[k - 1] == '\t' || base[k - 1] == '\r')) k--;
    int empty = k > 0 && base[k - 1] == '[';
    memcpy(out, base, k);
    size_t o = k;
    if (!empty) out[o++] = ',';
    memcpy(out + o, add, al);
    o += al;
    out[o++] = ']';
    out[o] = 0;
    return out;
}

char *mt_meta(const ms_model *m, const ms_config *c, const char *growth_add, ms_err *err)
{
    const char *who = m->path ? m->path : "model";
    cJSON *old = cJSON_Parse(m->meta_json ? m->meta_json : "{}");
    if (!cJSON_IsObject(old)) {
        cJSON_Delete(old);
        old = cJSON_CreateObject();
    }
    const char *spec[] = {"format", "format_version", "tokenizer", "vocab", "sse_heads", "n_experts",
                          "top_k", "growth", "trained_on", "notes"};
    cJSON *o = cJSON_CreateObject();
    char *gr = NULL, *vocab_txt = NULL, *txt = NULL;
    char num[3][24];
    snprintf(num[0], sizeof num[0], "%d", c->sse_heads);
    snprintf(num[1], sizeof num[1], "%d", c->n_experts);
    snprintf(num[2], sizeof num[2], "%d", c->top_k);
    cJSON *x;
#define OLDSTR(key) ((x = cJSON_GetObjectItemCaseSensitive(old, key)) && cJSON_IsString(x) ? x->valuestring : NULL)
    if (!(gr = growth_text(OLDSTR("growth"), growth_add, err, who))) goto fail;
    const char *vocab = NULL;
    if (c->tokenizer == MS_TOK_WORDS) {
        vocab = OLDSTR("vocab");
        if (!vocab) {   /* build it from the word list */
            cJSON *a = cJSON_CreateArray();
            for (int i = 0; a && m->words && i < c->vocab; i++) cJSON_AddItemToArray(a, cJSON_CreateString(m->words[i]));
            vocab = vocab_txt = a ? cJSON_PrintUnformatted(a) : NULL;
            cJSON_Delete(a);
            if (!vocab) goto oom;
        }
    }
    const char *tr = OLDSTR("trained_on"), *notes = OLDSTR("notes");
    if (!o || !cJSON_AddStringToObject(o, "format", "metastate") ||
        !cJSON_AddStringToObject(o, "format_version", "1") ||
        !cJSON_AddStringToObject(o, "tokenizer", tok_name(c->tokenizer)) ||
        (vocab && !cJSON_AddStringToObject(o, "vocab", vocab)) ||
        !cJSON_AddStringToObject(o, "sse_heads", num[0]) || !cJSON_AddStringToObject(o, "n_experts", num[1]) ||
        !cJSON_AddStringToObject(o, "top_k", num[2]) || !cJSON_AddStringToObject(o, "growth", gr) ||
        !cJSON_AddStringToObject(o, "trained_on", tr ? tr : "") ||
        !cJSON_AddStringToObject(o, "notes", notes ? notes : ""))
        goto oom;
#undef OLDSTR
    for (cJSON *it = old->child; it; it = it->next) {
        int known = 0;
        for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++) known |= !strcmp(it->string, spec[k]);
        if (!known && cJSON_IsString(it) && !cJSON_AddStringToObject(o, it->string, it->valuestring)) goto oom;
    }
    if (!(txt = cJSON_PrintUnformatted(o))) goto oom;
    goto done;
oom:
    ms_seterr(err, "%s: out of memory building the metadata", who);
fail:
    txt = NULL;
done:
    cJSON_Delete(o);
    cJSON_Delete(old);
    free(gr);
    free(vocab_txt);
    return txt;
}

/* ---- writing ------------------------------------------------------------- */

int mt_write(const mt_table *t, const char *meta_json, const char *path, ms_err *err)
{
    cJSON *meta = cJSON_Parse(meta_json);
    int nm = cJSON_GetArraySize(meta);
    ms_st_out *outs = calloc((size_t)t->n + 1, sizeof *outs);
    const char **kv = calloc(2 * (size_t)nm + 2, sizeof *kv);
    int rc = -1;
    if (!meta || !outs || !kv) {
        ms_seterr(err, "%s: out of memory", path);
        goto done;
    }
    int k = 0;
    for (cJSON *it = meta->child; it; it = it->next)
        if (cJSON_IsString(it)) {
            kv[2 * k] = it->string;
            kv[2 * k + 1] = it->valuestring;
            k++;
        }
    for (int i = 0; i < t->n; i++) {
        const mt_tensor *x = &t->t[i];
        outs[i].name = x->name;
        outs[i].dtype = x->dt == MS_F32 ? "F32" : x->dt == MS_F16 ? "F16" : "BF16";
        outs[i].ndim = x->ndim;
        for (int d = 0; d < x->ndim; d++) outs[i].shape[d] = x->shape[d];
        outs[i].data = x->data;
        outs[i].nbytes = mt_numel(x) * ms_dtype_size(x->dt);
    }
    rc = ms_st_write(path, outs, t->n, kv, k, err);
done:
    free(outs);
    free(kv);
    cJSON_Delete(meta);
    return rc;
}

int ms_model_save(const ms_model *m, const char *path, ms_err *err)
{
    mt_table t;
    if (mt_from_model(m, &t, err)) return -1;
    char *meta = mt_meta(m, &m->cfg, NULL, err);
    int rc = meta ? mt_write(&t, meta, path, err) : -1;
    free(meta);
    mt_free(&t);
    return rc;
}
