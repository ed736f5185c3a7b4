/* statefile.c: reading and writing state files (see statefile.h for the
 * layout), and importing RWKV-Runner / RWKV-PEFT time_state files.
 *
 * Loading is check-everything-first: the whole file is validated (format,
 * version, model layout, tensor names/dtypes/shapes, checksum, metadata
 * values, model identity) into temporary memory, and only then copied into
 * the caller's state.  Nothing here prints.
 */
#include "statefile.h"
#include "safetensors.h"
#include "kernels.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "state files are little-endian fp32 and are written straight from memory"
#endif

void ms_statefile_model_summary(const ms_model *m, char *buf, size_t cap)
{
    const ms_config *c = &m->cfg;
    snprintf(buf, cap, "L%d C%d H%d N%d A%d V%d n%d Hs%d", c->n_layer, c->n_embd,
             c->n_head, c->head_size, c->dim_att, c->vocab, c->n_ptok, c->sse_heads);
}

void ms_statefile_info_free(ms_statefile_info *info)
{
    if (!info) return;
    free(info->tokens);
    free(info->branch);
    free(info->edits_json);
    free(info->logits);
    free(info->origin);
    free(info->origin_logits);
    free(info->sampled);
    free(info->checks);
    for (int j = 0; j < info->n_blobs; j++) free(info->blobs[j]);
    free(info->blobs);
    free(info->blob_len);
    memset(info, 0, sizeof *info);
}

/* ---- saving ---------------------------------------------------------------- */

char *ms_statefile_sampler_json(const ms_sampler *s)
{
    cJSON *o = cJSON_CreateObject();
    char buf[32];
    cJSON_AddNumberToObject(o, "temp", s->temp);
    cJSON_AddNumberToObject(o, "top_p", s->top_p);
    cJSON_AddNumberToObject(o, "top_k", s->top_k);
    snprintf(buf, sizeof buf, "%" PRIu64, s->seed);
    cJSON_AddStringToObject(o, "seed", buf);
    cJSON *rng = cJSON_AddArrayToObject(o, "rng");
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%016" PRIx64, s->rng[i]);
        cJSON_AddItemToArray(rng, cJSON_CreateString(buf));
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return txt;
}

static char *sf_tokens_json(const int *tokens, int n)
{
    /* ids are small integers: print them directly (cJSON would go through
     * doubles, which is exact but slower for long histories) */
    size_t cap = 3 + (size_t)n * 12, len = 0;   /* "[", n ids with commas, "]", NUL */
    char *s = malloc(cap);
    if (!s) return NULL;
    s[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, i ? ",%d" : "%d", tokens[i]);
    s[len++] = ']';
    s[len] = 0;
    return s;
}

/* [from, to) ranges of the tokens whose flag is set, as JSON */
static char *sf_sampled_json(const unsigned char *f, int n)
{
    size_t cap = 3, len = 0;
    for (int i = 0; i < n; i++)
        if (f && f[i] && (i == 0 || !f[i - 1])) cap += 26;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[len++] = '[';
    for (int i = 0; f && i < n; i++) {
        if (!f[i] || (i > 0 && f[i - 1])) continue;
        int j = i;
        while (j < n && f[j]) j++;
        len += (size_t)snprintf(s + len, cap - len, "%s[%d,%d]", len > 1 ? "," : "", i, j);
    }
    s[len++] = ']';
    s[len] = 0;
    return s;
}

static char *sf_checks_hex(const uint64_t *c, long n)
{
    char *s = malloc((size_t)n * 16 + 1);
    if (!s) return NULL;
    for (long i = 0; i < n; i++) snprintf(s + 16 * i, 17, "%016" PRIx64, c[i]);
    s[16 * n] = 0;
    return s;
}

/* the three tensors of every layer of state st, named prefix + blocks.i.… */
static uint64_t sf_add_state(const ms_config *c, const float *state, const char *prefix, ms_st_out *t,
                             char (*names)[64], uint64_t sum)
{
    const int L = c->n_layer, C = c->n_embd, H = c->n_head, N = c->head_size;
    for (int i = 0; i < L; i++) {
        float *st = (float *)state;   /* accessors take non-const; nothing is written */
        const float *p[3] = { ms_state_att_x(c, st, i), ms_state_S(c, st, i), ms_state_ffn_x(c, st, i) };
        const char *nm[3] = { "att.x_prev", "att.time_state", "ffn.x_prev" };
        for (int k = 0; k < 3; k++) {
            ms_st_out *o = &t[3 * i + k];
            snprintf(names[3 * i + k], sizeof names[0], "%sblocks.%d.%s", prefix, i, nm[k]);
            o->name = names[3 * i + k];
            o->dtype = "F32";
            o->data = p[k];
            if (k == 1) {
                o->ndim = 3; o->shape[0] = H; o->shape[1] = N; o->shape[2] = N;
            } else {
                o->ndim = 1; o->shape[0] = C;
            }
            o->nbytes = (k == 1 ? (size_t)H * N * N : (size_t)C) * sizeof(float);
            sum = ms_fnv1a(o->data, o->nbytes, sum);
        }
    }
    return sum;
}

static uint64_t sf_add_vec(ms_st_out *o, const char *name, const float *v, size_t n, uint64_t sum)
{
    o->name = name; o->dtype = "F32"; o->ndim = 1; o->shape[0] = (int64_t)n;
    o->data = v; o->nbytes = n * sizeof(float);
    return ms_fnv1a(o->data, o->nbytes, sum);
}

int ms_statefile_save(const char *path, const ms_model *m, const float *state,
                      const ms_statefile_info *info, ms_err *err)
{
    const ms_config *c = &m->cfg;
    const int L = c->n_layer;
    ms_statefile_info dflt;
    if (!info) {
        memset(&dflt, 0, sizeof dflt);
        ms_sampler_init(&dflt.sampler, 1.0f, 1.0f, 0, 0);
        info = &dflt;
    }
    int orig = info->origin_state && info->origin;
    int n_t = 3 * L + (info->logits ? 1 : 0) + (orig ? 3 * L + (info->origin_logits ? 1 : 0) : 0) + info->n_blobs;
    ms_st_out *t = calloc((size_t)n_t, sizeof *t);
    char (*names)[64] = calloc((size_t)n_t, sizeof *names);
    char *tok = sf_tokens_json(info->tokens, info->n_tokens);
    char *smp = ms_statefile_sampler_json(&info->sampler);
    ms_sampler os;
    if (info->has_origin_sampler) os = info->origin_sampler;
    else ms_sampler_init(&os, info->sampler.temp, info->sampler.top_p, info->sampler.top_k, info->sampler.seed);
    char *osmp = ms_statefile_sampler_json(&os);
    char *sampled = sf_sampled_json(info->sampled, info->n_tokens);
    char *checks = sf_checks_hex(info->checks, info->n_checks);
    int rc = -1;
    if (!t || !names || !tok || !smp || !osmp || !sampled || !checks) {
        ms_seterr(err, "%s: out of memory", path);
        goto done;
    }
    /* one layer's three tensors are contiguous in the flat state, so the
     * tensors in this order are the whole state buffer, then the logits */
    uint64_t sum = sf_add_state(c, state, "", t, names, MS_FNV_INIT);
    int k = 3 * L;
    if (info->logits) sum = sf_add_vec(&t[k++], "logits", info->logits, (size_t)c->vocab, sum);
    if (orig) {
        sum = sf_add_state(c, info->origin, "origin.", t + k, names + k, sum);
        k += 3 * L;
        if (info->origin_logits)
            sum = sf_add_vec(&t[k++], "origin.logits", info->origin_logits, (size_t)c->vocab, sum);
    }
    for (int j = 0; j < info->n_blobs; j++, k++) {
        snprintf(names[k], sizeof names[0], "edits.%d", j);
        sum = sf_add_vec(&t[k], names[k], info->blobs[j], info->blob_len[j], sum);
    }
    char model[96], hash[24], pos[24], cks[24], opos[24];
    ms_statefile_model_summary(m, model, sizeof model);
    snprintf(hash, sizeof hash, "%016" PRIx64, m->weights_hash);
    snprintf(pos, sizeof pos, "%" PRId64, info->position);
    snprintf(opos, sizeof opos, "%" PRId64, info->origin_position);
    snprintf(cks, sizeof cks, "%016" PRIx64, sum);
    const char *kv[] = {
        "format", MS_STATEFILE_FORMAT,
        "format_version", MS_STATEFILE_VERSION,
        "model", model,
        "weights_hash", hash,
        "tokens", tok,
        "position", pos,
        "branch", info->branch ? info->branch : "main",
        "edits", info->edits_json ? info->edits_json : "[]",
        "sampler", smp,
        "origin", orig ? "state" : "zero",
        "origin_position", opos,
        "origin_sampler", osmp,
        "sampled", sampled,
        "checks", checks,
        "checksum", cks,
    };
    rc = ms_st_write(path, t, n_t, kv, (int)(sizeof kv / sizeof kv[0]) / 2, err);
done:
    free(t);
    free(names);
    free(tok);
    cJSON_free(smp);
    cJSON_free(osmp);
    free(sampled);
    free(checks);
    return rc;
}

/* ---- loading ----------------------------------------------------------------- */

/* strict unsigned parse of a whole string in base 10 or 16 */
static int sf_parse_u64(const char *s, int base, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static const char *sf_meta_req(const ms_st_file *f, const char *key, ms_err *err)
{
    const char *v = ms_st_meta(f, key);
    if (!v) ms_seterr(err, "%s: state file metadata has no '%s'", f->path, key);
    return v;
}

static int sf_parse_tokens(const ms_st_file *f, const char *txt, int vocab,
                           ms_statefile_info *info, ms_err *err)
{
    cJSON *a = cJSON_Parse(txt);
    int rc = -1;
    if (!a || !cJSON_IsArray(a)) {
        ms_seterr(err, "%s: metadata 'tokens' is not a JSON list", f->path);
        goto done;
    }
    int n = cJSON_GetArraySize(a);
    info->tokens = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!info->tokens) { ms_seterr(err, "%s: out of memory", f->path); goto done; }
    int i = 0;
    for (cJSON *e = a->child; e; e = e->next, i++) {
        double v = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(v >= 0 && v < vocab && v == (int)v)) {
            char *s = cJSON_PrintUnformatted(e);
            ms_seterr(err, "%s: metadata 'tokens'[%d] = %s is not a token id of this model (0..%d)",
                      f->path, i, s ? s : "?", vocab - 1);
            cJSON_free(s);
            goto done;
        }
        info->tokens[i] = (int)v;
    }
    info->n_tokens = n;
    rc = 0;
done:
    cJSON_Delete(a);
    return rc;
}

int ms_statefile_sampler_parse(const char *where, const char *key, const char *txt, ms_sampler *s, ms_err *err)
{
    cJSON *o = cJSON_Parse(txt);
    int rc = -1;
    if (!o || !cJSON_IsObject(o)) {
        ms_seterr(err, "%s: metadata '%s' is not a JSON object", where, key);
        goto done;
    }
    cJSON *temp = cJSON_GetObjectItemCaseSensitive(o, "temp");
    cJSON *top_p = cJSON_GetObjectItemCaseSensitive(o, "top_p");
    cJSON *top_k = cJSON_GetObjectItemCaseSensitive(o, "top_k");
    cJSON *seed = cJSON_GetObjectItemCaseSensitive(o, "seed");
    cJSON *rng = cJSON_GetObjectItemCaseSensitive(o, "rng");
    if (!cJSON_IsNumber(temp) || !(temp->valuedouble >= 0 && temp->valuedouble <= 1e6)) {
        ms_seterr(err, "%s: %s 'temp' must be a number ≥ 0", where, key);
        goto done;
    }
    if (!cJSON_IsNumber(top_p) || !(top_p->valuedouble > 0 && top_p->valuedouble <= 1)) {
        ms_seterr(err, "%s: %s 'top_p' must be a number in (0, 1]", where, key);
        goto done;
    }
    if (!cJSON_IsNumber(top_k) || !(top_k->valuedouble >= 0 && top_k->valuedouble <= 1e9) ||
        top_k->valuedouble != (int)top_k->valuedouble) {
        ms_seterr(err, "%s: %s 'top_k' must be an integer ≥ 0", where, key);
        goto done;
    }
    uint64_t sd;
    if (!(cJSON_IsString(seed) && sf_parse_u64(seed->valuestring, 10, &sd) == 0)) {
        ms_seterr(err, "%s: %s 'seed' must be a decimal string", where, key);
        goto done;
    }
    if (!cJSON_IsArray(rng) || cJSON_GetArraySize(rng) != 4) {
        ms_seterr(err, "%s: %s 'rng' must be a list of 4 hex strings", where, key);
        goto done;
    }
    int i = 0;
    for (cJSON *e = rng->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e) || sf_parse_u64(e->valuestring, 16, &s->rng[i]) != 0) {
            ms_seterr(err, "%s: %s 'rng'[%d] is not a hex string", where, key, i);
            goto done;
        }
    }
    s->temp = (float)temp->valuedouble;
    s->top_p = (float)top_p->valuedouble;
    s->top_k = (int)top_k->valuedouble;
    s->seed = sd;
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

static int sf_cmp_begin(const void *a, const void *b)
{
    const ms_st_tensor *x = *(const ms_st_tensor *const *)a, *y = *(const ms_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* FNV-1a 64 over every tensor's bytes, tensors taken in file order */
static int sf_checksum(const ms_st_file *f, uint64_t *out)
{
    const ms_st_tensor **v = malloc(sizeof *v * (size_t)(f->n > 0 ? f->n : 1));
    if (!v) return -1;
    for (int i = 0; i < f->n; i++) v[i] = &f->t[i];
    qsort(v, (size_t)f->n, sizeof *v, sf_cmp_begin);
    uint64_t h = MS_FNV_INIT;
    for (int i = 0; i < f->n; i++) h = ms_fnv1a(v[i]->data, v[i]->end - v[i]->begin, h);
    free(v);
    *out = h;
    return 0;
}

static void sf_shape_str(const ms_st_tensor *t, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < t->ndim && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
    if (len < cap) snprintf(buf + len, cap - len, ")");
}

/* the tensor `name` must exist as F32 with exactly the given shape */
static const ms_st_tensor *sf_need(const ms_st_file *f, const char *name, int ndim,
                                   const int64_t *shape, ms_err *err)
{
    const ms_st_tensor *t = ms_st_find(f, name);
    if (!t) {
        ms_seterr(err, "%s: tensor '%s' is missing", f->path, name);
        return NULL;
    }
    int ok = t->dtype == ST_F32 && t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = t->shape[d] == shape[d];
    if (!ok) {
        char got[96], want[96] = "(";
        sf_shape_str(t, got, sizeof got);
        size_t len = 1;
        for (int d = 0; d < ndim; d++)
            len += (size_t)snprintf(want + len, sizeof want - len, d ? ", %" PRId64 : "%" PRId64, shape[d]);
        snprintf(want + len, sizeof want - len, ")");
        ms_seterr(err, "%s: tensor '%s' is %s %s, expected F32 %s", f->path, name,
                  t->dtype_str, got, want);
        return NULL;
    }
    return t;
}

/* copy the per-layer tensors prefix + blocks.i.… (checked) into st */
static void sf_copy_state(const ms_st_file *f, const ms_config *c, const char *prefix, float *st)
{
    const int C = c->n_embd, H = c->n_head, N = c->head_size;
    for (int i = 0; i < c->n_layer; i++) {
        char name[80];
        snprintf(name, sizeof name, "%sblocks.%d.att.x_prev", prefix, i);
        memcpy(ms_state_att_x(c, st, i), ms_st_find(f, name)->data, (size_t)C * sizeof(float));
        snprintf(name, sizeof name, "%sblocks.%d.att.time_state", prefix, i);
        memcpy(ms_state_S(c, st, i), ms_st_find(f, name)->data, (size_t)H * N * N * sizeof(float));
        snprintf(name, sizeof name, "%sblocks.%d.ffn.x_prev", prefix, i);
        memcpy(ms_state_ffn_x(c, st, i), ms_st_find(f, name)->data, (size_t)C * sizeof(float));
    }
}

/* `sampled`: sorted, disjoint, non-empty [from, to) ranges inside tokens */
static int sf_parse_sampled(const ms_st_file *f, const char *txt, ms_statefile_info *info, ms_err *err)
{
    cJSON *a = cJSON_Parse(txt);
    int rc = -1, i = 0;
    long prev = 0;
    if (!a || !cJSON_IsArray(a)) {
        ms_seterr(err, "%s: metadata 'sampled' is not a JSON list", f->path);
        goto done;
    }
    if (!(info->sampled = calloc((size_t)info->n_tokens + 1, 1))) {
        ms_seterr(err, "%s: out of memory", f->path);
        goto done;
    }
    for (cJSON *e = a->child; e; e = e->next, i++) {
        cJSON *x = cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 ? e->child : NULL;
        double lo = x && cJSON_IsNumber(x) ? x->valuedouble : -1;
        double hi = x && cJSON_IsNumber(x->next) ? x->next->valuedouble : -1;
        if (!(lo >= prev && hi > lo && hi <= info->n_tokens && lo == (long)lo && hi == (long)hi)) {
            ms_seterr(err, "%s: metadata 'sampled'[%d] is not a range [from, to) of token indices after the "
                      "previous one, within 0..%d", f->path, i, info->n_tokens);
            goto done;
        }
        for (long k = (long)lo; k < (long)hi; k++) info->sampled[k] = 1;
        prev = (long)hi;
    }
    rc = 0;
done:
    cJSON_Delete(a);
    return rc;
}

/* origin, origin_position, origin_sampler, sampled, checks (origin given) */
static int sf_parse_history(const ms_st_file *f, const char *origin, ms_statefile_info *info, ms_err *err)
{
    if (strcmp(origin, "zero") != 0 && strcmp(origin, "state") != 0) {
        ms_seterr(err, "%s: metadata 'origin' = '%.40s'; expected \"zero\" or \"state\"", f->path, origin);
        return -1;
    }
    info->origin_state = !strcmp(origin, "state");
    const char *s;
    uint64_t v;
    if (!(s = sf_meta_req(f, "origin_position", err))) return -1;
    if (sf_parse_u64(s, 10, &v) != 0 || v > (uint64_t)INT64_MAX / 2) {
        ms_seterr(err, "%s: metadata 'origin_position' = '%.40s' is not a non-negative integer", f->path, s);
        return -1;
    }
    info->origin_position = (int64_t)v;
    if (!(s = sf_meta_req(f, "origin_sampler", err)) ||
        ms_statefile_sampler_parse(f->path, "origin_sampler", s, &info->origin_sampler, err))
        return -1;
    info->has_origin_sampler = 1;
    if (!(s = sf_meta_req(f, "sampled", err)) || sf_parse_sampled(f, s, info, err)) return -1;
    if (!(s = sf_meta_req(f, "checks", err))) return -1;
    size_t n = strlen(s);
    if (n % 16) {
        ms_seterr(err, "%s: metadata 'checks' is %zu characters; it holds 16 hex digits per event", f->path, n);
        return -1;
    }
    if (!(info->checks = malloc(n / 16 * sizeof(uint64_t) + 1))) {
        ms_seterr(err, "%s: out of memory", f->path);
        return -1;
    }
    for (size_t i = 0; i < n / 16; i++) {
        char h[17];
        memcpy(h, s + 16 * i, 16);
        h[16] = 0;
        if (sf_parse_u64(h, 16, &info->checks[i]) != 0 || strspn(h, "0123456789abcdefABCDEF") != 16) {
            ms_seterr(err, "%s: metadata 'checks': event %zu's check '%s' is not 16 hex digits", f->path, i, h);
            return -1;
        }
    }
    info->n_checks = (long)(n / 16);
    info->has_history = 1;
    return 0;
}

static int sf_load_native(const ms_st_file *f, const ms_model *m, float *st,
                          ms_statefile_info *info, int flags, ms_err *err)
{
    const ms_config *c = &m->cfg;
    const int L = c->n_layer, C = c->n_embd, H = c->n_head, N = c->head_size;
    const char *ver = sf_meta_req(f, "format_version", err);
    if (!ver) return -1;
    if (strcmp(ver, MS_STATEFILE_VERSION) != 0) {
        ms_seterr(err, "%s: state file format_version '%s'; this program reads version %s",
                  f->path, ver, MS_STATEFILE_VERSION);
        return -1;
    }
    const char *model = sf_meta_req(f, "model", err);
    const char *hash = model ? sf_meta_req(f, "weights_hash", err) : NULL;
    if (!hash) return -1;
    char mine[96];
    ms_statefile_model_summary(m, mine, sizeof mine);
    int fl, fc, fh, fn;
    if (sscanf(model, "L%d C%d H%d N%d", &fl, &fc, &fh, &fn) != 4) {
        ms_seterr(err, "%s: metadata 'model' = '%.80s' is not a shape summary like '%s'",
                  f->path, model, mine);
        return -1;
    }
    if (fl != L || fc != C || fh != H || fn != N) {
        ms_seterr(err, "%s: state file is for model '%.80s'; the loaded model is '%s'",
                  f->path, model, mine);
        return -1;
    }
    snprintf(info->model, sizeof info->model, "%s", model);
    if (sf_parse_u64(hash, 16, &info->weights_hash) != 0 || strlen(hash) != 16) {
        ms_seterr(err, "%s: metadata 'weights_hash' = '%.40s' is not 16 hex digits", f->path, hash);
        return -1;
    }

    /* tensors: exactly the expected set */
    int n_expect = 3 * L;
    for (int i = 0; i < L; i++) {
        char name[64];
        int64_t vec[1] = { C }, mat[3] = { H, N, N };
        snprintf(name, sizeof name, "blocks.%d.att.x_prev", i);
        if (!sf_need(f, name, 1, vec, err)) return -1;
        snprintf(name, sizeof name, "blocks.%d.att.time_state", i);
        if (!sf_need(f, name, 3, mat, err)) return -1;
        snprintf(name, sizeof name, "blocks.%d.ffn.x_prev", i);
        if (!sf_need(f, name, 1, vec, err)) return -1;
    }
    const ms_st_tensor *lg = ms_st_find(f, "logits");
    if (lg) {
        int64_t v[1] = { c->vocab };
        if (!sf_need(f, "logits", 1, v, err)) return -1;
        n_expect++;
    }
    /* the history's origin state, when it is not zero */
    const char *origin = ms_st_meta(f, "origin");
    int orig = origin && !strcmp(origin, "state");
    const ms_st_tensor *olg = orig ? ms_st_find(f, "origin.logits") : NULL;
    if (orig) {
        for (int i = 0; i < L; i++) {
            char name[64];
            int64_t vec[1] = { C }, mat[3] = { H, N, N };
            snprintf(name, sizeof name, "origin.blocks.%d.att.x_prev", i);
            if (!sf_need(f, name, 1, vec, err)) return -1;
            snprintf(name, sizeof name, "origin.blocks.%d.att.time_state", i);
            if (!sf_need(f, name, 3, mat, err)) return -1;
            snprintf(name, sizeof name, "origin.blocks.%d.ffn.x_prev", i);
            if (!sf_need(f, name, 1, vec, err)) return -1;
        }
        n_expect += 3 * L;
        if (olg) {
            int64_t v[1] = { c->vocab };
            if (!sf_need(f, "origin.logits", 1, v, err)) return -1;
            n_expect++;
        }
    }
    /* edit payloads edits.0, edits.1, ... (1-D F32, numbered without gaps) */
    int n_blobs = 0;
    for (;; n_blobs++) {
        char name[32];
        snprintf(name, sizeof name, "edits.%d", n_blobs);
        const ms_st_tensor *b = ms_st_find(f, name);
        if (!b) break;
        if (b->dtype != ST_F32 || b->ndim != 1) {
            ms_seterr(err, "%s: tensor '%s' must be 1-D F32, it is %s with %d dimensions", f->path, name,
                      b->dtype_str, b->ndim);
            return -1;
        }
    }
    n_expect += n_blobs;
    if (f->n != n_expect) {
        /* name the first tensor that is not ours */
        for (int i = 0; i < f->n; i++) {
            int li, bj; char rest[32];
            const char *nm = f->t[i].name;
            const char *st_nm = orig && !strncmp(nm, "origin.", 7) ? nm + 7 : nm;
            int ours = strcmp(nm, "logits") == 0 || (orig && olg && !strcmp(nm, "origin.logits")) ||
                       (sscanf(nm, "edits.%d", &bj) == 1 && bj >= 0 && bj < n_blobs) ||
                       (sscanf(st_nm, "blocks.%d.%31s", &li, rest) == 2 && li >= 0 && li < L &&
                        (!strcmp(rest, "att.x_prev") || !strcmp(rest, "att.time_state") ||
                         !strcmp(rest, "ffn.x_prev")));
            if (!ours) {
                ms_seterr(err, "%s: unexpected tensor '%.100s' in a state file", f->path, nm);
                return -1;
            }
        }
        ms_seterr(err, "%s: %d tensors, expected %d", f->path, f->n, n_expect);
        return -1;
    }

    /* checksum before trusting any number */
    const char *cks = sf_meta_req(f, "checksum", err);
    if (!cks) return -1;
    uint64_t want, got;
    if (sf_parse_u64(cks, 16, &want) != 0) {
        ms_seterr(err, "%s: metadata 'checksum' = '%.40s' is not hex", f->path, cks);
        return -1;
    }
    if (sf_checksum(f, &got) != 0) { ms_seterr(err, "%s: out of memory", f->path); return -1; }
    if (got != want) {
        ms_seterr(err, "%s: checksum mismatch: file says %016" PRIx64 ", data gives %016" PRIx64,
                  f->path, want, got);
        return -1;
    }

    /* metadata values */
    const char *s;
    if (!(s = sf_meta_req(f, "tokens", err)) || sf_parse_tokens(f, s, c->vocab, info, err)) return -1;
    if (!(s = sf_meta_req(f, "position", err))) return -1;
    uint64_t pos;
    if (sf_parse_u64(s, 10, &pos) != 0 || pos > (uint64_t)INT64_MAX / 2) {
        ms_seterr(err, "%s: metadata 'position' = '%.40s' is not a non-negative integer", f->path, s);
        return -1;
    }
    info->position = (int64_t)pos;
    if (!(s = sf_meta_req(f, "branch", err))) return -1;
    if (!(info->branch = strdup(s))) { ms_seterr(err, "%s: out of memory", f->path); return -1; }
    if (!(s = sf_meta_req(f, "edits", err))) return -1;
    cJSON *ed = cJSON_Parse(s);
    int ed_ok = ed && cJSON_IsArray(ed);
    cJSON_Delete(ed);
    if (!ed_ok) { ms_seterr(err, "%s: metadata 'edits' is not a JSON list", f->path); return -1; }
    if (!(info->edits_json = strdup(s))) { ms_seterr(err, "%s: out of memory", f->path); return -1; }
    if (!(s = sf_meta_req(f, "sampler", err)) || ms_statefile_sampler_parse(f->path, "sampler", s, &info->sampler, err)) return -1;
    info->has_sampler = 1;
    if (origin && sf_parse_history(f, origin, info, err) != 0) return -1;

    /* identity: same layout was checked above; weights and the rest here */
    char mhash[24];
    snprintf(mhash, sizeof mhash, "%016" PRIx64, m->weights_hash);
    int same_shape = strcmp(model, mine) == 0, same_w = info->weights_hash == m->weights_hash;
    if (!same_shape || !same_w) {
        if (!(flags & MS_SF_FORCE)) {
            if (!same_shape)
                ms_seterr(err, "%s: state file is for model '%.80s'; the loaded model is '%s' "
                          "(same state layout: 'open --force' loads it anyway)", f->path, model, mine);
            else
                ms_seterr(err, "%s: state file was written with weights %s; the loaded model's are %s "
                          "('open --force' loads it anyway)", f->path, hash, mhash);
            return -1;
        }
        info->forced = 1;
        lg = NULL;   /* another model's logits would be wrong for this one */
    }

    if (lg) {
        if (!(info->logits = malloc((size_t)c->vocab * sizeof(float)))) {
            ms_seterr(err, "%s: out of memory", f->path);
            return -1;
        }
        memcpy(info->logits, lg->data, (size_t)c->vocab * sizeof(float));
    }
    if (orig) {
        if (!(info->origin = malloc(ms_state_len(c) * sizeof(float))) ||
            (olg && !(info->origin_logits = malloc((size_t)c->vocab * sizeof(float))))) {
            ms_seterr(err, "%s: out of memory", f->path);
            return -1;
        }
        sf_copy_state(f, c, "origin.", info->origin);
        /* forced: another model's logits would be wrong for this one */
        if (olg && !info->forced) memcpy(info->origin_logits, olg->data, (size_t)c->vocab * sizeof(float));
        else { free(info->origin_logits); info->origin_logits = NULL; }
    }
    if (n_blobs) {
        info->blobs = calloc((size_t)n_blobs, sizeof *info->blobs);
        info->blob_len = calloc((size_t)n_blobs, sizeof *info->blob_len);
        if (!info->blobs || !info->blob_len) { ms_seterr(err, "%s: out of memory", f->path); return -1; }
        info->n_blobs = n_blobs;
        for (int j = 0; j < n_blobs; j++) {
            char name[32];
            snprintf(name, sizeof name, "edits.%d", j);
            const ms_st_tensor *b = ms_st_find(f, name);
            info->blob_len[j] = (size_t)b->numel;
            if (!(info->blobs[j] = malloc(b->numel > 0 ? (size_t)b->numel * sizeof(float) : 1))) {
                ms_seterr(err, "%s: out of memory", f->path);
                return -1;
            }
            memcpy(info->blobs[j], b->data, (size_t)b->numel * sizeof(float));
        }
    }
    sf_copy_state(f, c, "", st);
    return 0;
}

/* RWKV-Runner / RWKV-PEFT: blocks.i.att.time_state (H,N,N), leading 1s allowed */
static int sf_load_import(const ms_st_file *f, const ms_model *m, float *st,
                          ms_statefile_info *info, ms_err *err)
{
    const ms_config *c = &m->cfg;
    const int L = c->n_layer, H = c->n_head, N = c->head_size;
    for (int i = 0; i < f->n; i++) {
        int li; char rest[32];
        if (sscanf(f->t[i].name, "blocks.%d.%31s", &li, rest) == 2 &&
            !strcmp(rest, "att.time_state") && (li < 0 || li >= L)) {
            ms_seterr(err, "%s: tensor '%s' is for layer %d; the loaded model has %d layers",
                      f->path, f->t[i].name, li, L);
            return -1;
        }
    }
    for (int i = 0; i < L; i++) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%d.att.time_state", i);
        const ms_st_tensor *t = ms_st_find(f, name);
        if (!t) {
            ms_seterr(err, "%s: time_state import: tensor '%s' is missing", f->path, name);
            return -1;
        }
        int ok = t->ndim >= 3 && t->shape[t->ndim - 3] == H && t->shape[t->ndim - 2] == N &&
                 t->shape[t->ndim - 1] == N;
        for (int d = 0; ok && d < t->ndim - 3; d++) ok = t->shape[d] == 1;
        if (!ok) {
            char got[96];
            sf_shape_str(t, got, sizeof got);
            ms_seterr(err, "%s: tensor '%s' is %s, expected (%d, %d, %d) for this model",
                      f->path, name, got, H, N, N);
            return -1;
        }
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
            ms_seterr(err, "%s: tensor '%s' has dtype %s; F32, F16 or BF16 expected",
                      f->path, name, t->dtype_str);
            return -1;
        }
    }
    memset(st, 0, ms_state_len(c) * sizeof(float));
    for (int i = 0; i < L; i++) {
        char name[64];
        snprintf(name, sizeof name, "blocks.%d.att.time_state", i);
        const ms_st_tensor *t = ms_st_find(f, name);
        float *S = ms_state_S(c, st, i);
        size_t n = (size_t)H * N * N;
        if (t->dtype == ST_F32) {
            memcpy(S, t->data, n * sizeof(float));
        } else {
            const unsigned char *p = t->data;   /* may be unaligned in the mapping */
            for (size_t j = 0; j < n; j++) {
                uint16_t h;
                memcpy(&h, p + 2 * j, 2);
                S[j] = t->dtype == ST_F16 ? ms_f16_to_f32(h) : ms_bf16_to_f32(h);
            }
        }
        for (size_t j = 0; j < n; j++) {
            if (S[j] != S[j] || S[j] - S[j] != 0) {
                ms_seterr(err, "%s: tensor '%s' holds a NaN or infinity at element %zu",
                          f->path, name, j);
                return -1;
            }
        }
    }
    info->imported = 1;
    return 0;
}

int ms_statefile_load(const char *path, const ms_model *m, float *state_out,
                      ms_statefile_info *info_out, int flags, ms_err *err)
{
    memset(info_out, 0, sizeof *info_out);
    ms_st_file f;
    if (ms_st_open(path, &f, err) != 0) return -1;
    size_t len = ms_state_len(&m->cfg);
    float *tmp = malloc(len * sizeof(float));
    int rc = -1;
    if (!tmp) {
        ms_seterr(err, "%s: out of memory", path);
        goto done;
    }
    const char *fmt = ms_st_meta(&f, "format");
    if (fmt && strcmp(fmt, MS_STATEFILE_FORMAT) == 0) {
        rc = sf_load_native(&f, m, tmp, info_out, flags, err);
    } else if (ms_st_find(&f, "blocks.0.att.time_state")) {
        rc = sf_load_import(&f, m, tmp, info_out, err);
    } else {
        ms_seterr(err, "%s: not a state file (no format '%s' metadata and no blocks.0.att.time_state)",
                  path, MS_STATEFILE_FORMAT);
    }
    if (rc == 0) memcpy(state_out, tmp, len * sizeof(float));
    else {
        ms_err keep = *err;
        ms_statefile_info_free(info_out);   /* no half-filled info escapes */
        *err = keep;
    }
done:
    free(tmp);
    ms_st_close(&f);
    return rc;
}
