/* safetensors.c: a checked reader (a private copy, cJSON header) and an atomic writer
 * for .safetensors files.  See safetensors.h for the contract.
 *
 * The reader trusts nothing in the file: every length, offset and shape is
 * checked against the file size before a pointer into the data is formed,
 * and all arithmetic on sizes is overflow-checked.
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (256u << 20)

size_t ms_st_dtype_size(ms_st_dtype d)
{
    switch (d) {
    case ST_F32: case ST_I32: return 4;
    case ST_F16: case ST_BF16: return 2;
    case ST_I64: case ST_F64: return 8;
    case ST_U8: return 1;
    default: return 0;
    }
}

static ms_st_dtype parse_dtype(const char *s)
{
    static const struct { const char *n; ms_st_dtype d; } tab[] = {
        {"F32", ST_F32}, {"F16", ST_F16}, {"BF16", ST_BF16}, {"I32", ST_I32},
        {"I64", ST_I64}, {"F64", ST_F64}, {"U8", ST_U8},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(s, tab[i].n)) return tab[i].d;
    return ST_OTHER;
}

static void free_tensors(ms_st_file *f)
{
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    for (int i = 0; i < f->n_meta; i++) { free(f->meta_k[i]); free(f->meta_v[i]); }
    free(f->meta_k);
    free(f->meta_v);
    free(f->meta_json);
    free(f->path);
}

void ms_st_close(ms_st_file *f)
{
    if (!f) return;
    free_tensors(f);
    if (f->map && f->map != MAP_FAILED) munmap(f->map, f->map_len);
    memset(f, 0, sizeof *f);
}

static int cmp_begin(const void *a, const void *b)
{
    const ms_st_tensor *x = *(ms_st_tensor *const *)a, *y = *(ms_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Parse the header JSON into f; f->data/data_len already set. */
static int parse_header(ms_st_file *f, const char *hdr, size_t hlen, ms_err *err)
{
    const char *path = f->path;
    cJSON *root = cJSON_ParseWithLength(hdr, hlen);
    if (!root || !cJSON_IsObject(root)) {
        ms_seterr(err, "%s: header is not valid JSON (safetensors header of %zu bytes)", path, hlen);
        cJSON_Delete(root);
        return -1;
    }
    int cnt = cJSON_GetArraySize(root);
    f->t = calloc((size_t)cnt + 1, sizeof *f->t);
    if (!f->t) { cJSON_Delete(root); ms_seterr(err, "%s: out of memory", path); return -1; }
    int rc = -1;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(it)) { ms_seterr(err, "%s: __metadata__ is not an object", path); goto out; }
            /* cJSON keeps duplicate keys: a second one would be written past the first's arrays */
            if (f->meta_k) { ms_seterr(err, "%s: __metadata__ appears twice in the header", path); goto out; }
            int nm = cJSON_GetArraySize(it);
            f->meta_k = calloc((size_t)nm + 1, sizeof(char *));
            f->meta_v = calloc((size_t)nm + 1, sizeof(char *));
            if (!f->meta_k || !f->meta_v) { ms_seterr(err, "%s: out of memory", path); goto out; }
            for (cJSON *m = it->child; m; m = m->next) {
                if (!cJSON_IsString(m)) {
                    ms_seterr(err, "%s: __metadata__ value of '%s' is not a string", path, m->string);
                    goto out;
                }
                f->meta_k[f->n_meta] = strdup(m->string);
                f->meta_v[f->n_meta] = strdup(m->valuestring);
                f->n_meta++;
                if (!f->meta_k[f->n_meta - 1] || !f->meta_v[f->n_meta - 1]) {
                    ms_seterr(err, "%s: out of memory", path);
                    goto out;
                }
            }
            f->meta_json = cJSON_PrintUnformatted(it);
            continue;
        }
        ms_st_tensor *t = &f->t[f->n];
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) ||
            cJSON_GetArraySize(of) != 2) {
            ms_seterr(err, "%s: tensor '%s': entry needs dtype, shape and data_offsets [begin, end]", path, name);
            goto out;
        }
        t->name = strdup(name);
        if (!t->name) { ms_seterr(err, "%s: out of memory", path); goto out; }
        f->n++;
        snprintf(t->dtype_str, sizeof t->dtype_str, "%s", dt->valuestring);
        t->dtype = parse_dtype(dt->valuestring);
        if (t->dtype == ST_OTHER) {
            ms_seterr(err, "%s: tensor '%s': unknown dtype '%.15s' (valid: F32, F16, BF16, I32, I64, F64, U8)",
                      path, name, dt->valuestring);
            goto out;
        }
        t->ndim = cJSON_GetArraySize(sh);
        if (t->ndim > MS_ST_MAXDIM) {
            ms_seterr(err, "%s: tensor '%s': %d dimensions (at most %d)", path, name, t->ndim, MS_ST_MAXDIM);
            goto out;
        }
        int64_t numel = 1;
        int d = 0;
        for (cJSON *s = sh->child; s; s = s->next, d++) {
            if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > (double)(1LL << 40) ||
                s->valuedouble != (double)(int64_t)s->valuedouble) {
                ms_seterr(err, "%s: tensor '%s': shape entry %d is not a non-negative integer", path, name, d);
                goto out;
            }
            t->shape[d] = (int64_t)s->valuedouble;
            if (t->shape[d] && numel > INT64_MAX / t->shape[d]) {
                ms_seterr(err, "%s: tensor '%s': shape too large", path, name);
                goto out;
            }
            numel *= t->shape[d];
        }
        t->numel = numel;
        double b = cJSON_GetArrayItem(of, 0)->valuedouble, e = cJSON_GetArrayItem(of, 1)->valuedouble;
        if (!cJSON_IsNumber(cJSON_GetArrayItem(of, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(of, 1)) ||
            b < 0 || e < b || e > (double)f->data_len || b != (double)(size_t)b || e != (double)(size_t)e) {
            ms_seterr(err, "%s: tensor '%s': data_offsets [%.0f, %.0f] outside the data section (%zu bytes)",
                      path, name, b, e, f->data_len);
            goto out;
        }
        t->begin = (size_t)b;
        t->end = (size_t)e;
        if ((uint64_t)numel > SIZE_MAX / 8 || t->end - t->begin != (size_t)numel * ms_st_dtype_size(t->dtype)) {
            ms_seterr(err, "%s: tensor '%s': %zu bytes for %lld elements of %s (expected %lld)", path, name,
                      t->end - t->begin, (long long)numel, t->dtype_str,
                      (long long)numel * (long long)ms_st_dtype_size(t->dtype));
            goto out;
        }
        t->data = f->data + t->begin;
    }
    if (!f->meta_json) f->meta_json = strdup("{}");
    /* no two tensors may share bytes */
    ms_st_tensor **ord = malloc(sizeof *ord * ((size_t)f->n + 1));
    if (!ord || !f->meta_json) { free(ord); ms_seterr(err, "%s: out of memory", path); goto out; }
    for (int i = 0; i < f->n; i++) ord[i] = &f->t[i];
    qsort(ord, (size_t)f->n, sizeof *ord, cmp_begin);
    for (int i = 1; i < f->n; i++)
        if (ord[i]->begin < ord[i - 1]->end) {
            ms_seterr(err, "%s: tensors '%s' and '%s' overlap in the data section", path, ord[i - 1]->name,
                      ord[i]->name);
            free(ord);
            goto out;
        }
    free(ord);
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

void *ms_st_read_file(int fd, size_t len, const char *path, ms_err *err)
{
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        char why[200];
        ms_seterr(err, "%s: cannot allocate %zu bytes for it: %s", path, len, ms_errno_reason(errno, why, sizeof why));
        return MAP_FAILED;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)map + got, len - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r < 0) ms_seterr(err, "%s: cannot read: %s", path, strerror(errno));
            else ms_seterr(err, "%s: the file shrank to %zu bytes while it was read (it had %zu)", path, got, len);
            munmap(map, len);
            return MAP_FAILED;
        }
        got += (size_t)r;
    }
    mprotect(map, len, PROT_READ);   /* the weights are read-only, as a file mapping was */
    return map;
}

int ms_st_open(const char *path, ms_st_file *f, ms_err *err)
{
    memset(f, 0, sizeof *f);
    struct stat st;
    int fd = ms_open_read(path, "file", &st, err);
    if (fd < 0) return -1;
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        ms_seterr(err, "%s: file of %zu bytes is too short for a safetensors header", path, len);
        close(fd);
        return -1;
    }
    void *map = ms_st_read_file(fd, len, path, err);
    close(fd);
    if (map == MAP_FAILED) return -1;
    f->map = map;
    f->map_len = len;
    f->path = strdup(path);
    uint64_t hlen;
    memcpy(&hlen, map, 8);
    if (hlen > len - 8 || hlen > MAX_HEADER) {
        ms_seterr(err, "%s: header length %llu exceeds the file (%zu bytes): truncated or not safetensors",
                  path, (unsigned long long)hlen, len);
        ms_st_close(f);
        return -1;
    }
    f->data = (const unsigned char *)map + 8 + hlen;
    f->data_len = len - 8 - (size_t)hlen;
    if (!f->path || parse_header(f, (const char *)map + 8, (size_t)hlen, err)) {
        if (!f->path) ms_seterr(err, "%s: out of memory", path);
        ms_st_close(f);
        return -1;
    }
    return 0;
}

const ms_st_tensor *ms_st_find(const ms_st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name)) return &f->t[i];
    return NULL;
}

const char *ms_st_meta(const ms_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_k[i], key)) return f->meta_v[i];
    return NULL;
}

/* ---- writing ---------------------------------------------------------------- */

int ms_st_write(const char *path, const ms_st_out *t, int n, const char *const *meta_kv, int n_meta,
                ms_err *err)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) { ms_seterr(err, "%s: out of memory", path); return -1; }
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < n_meta; i++) cJSON_AddStringToObject(m, meta_kv[2 * i], meta_kv[2 * i + 1]);
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        if (!e) continue;
        cJSON_AddStringToObject(e, "dtype", t[i].dtype);
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[d]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t[i].nbytes)));
        off += t[i].nbytes;
    }
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!js) { ms_seterr(err, "%s: out of memory", path); return -1; }
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;
    char *hdr = malloc(8 + padded);
    if (!hdr) { free(js); ms_seterr(err, "%s: out of memory", path); return -1; }
    uint64_t h64 = padded;
    memcpy(hdr, &h64, 8);
    memcpy(hdr + 8, js, jl);
    memset(hdr + 8 + jl, ' ', padded - jl);
    free(js);
    const void **bufs = malloc(sizeof *bufs * ((size_t)n + 1));
    size_t *lens = malloc(sizeof *lens * ((size_t)n + 1));
    int rc = -1;
    if (bufs && lens) {
        bufs[0] = hdr;
        lens[0] = 8 + padded;
        for (int i = 0; i < n; i++) { bufs[i + 1] = t[i].data; lens[i + 1] = t[i].nbytes; }
        rc = ms_write_parts(path, bufs, lens, n + 1, err);
    } else {
        ms_seterr(err, "%s: out of memory", path);
    }
    free(bufs);
    free(lens);
    free(hdr);
    return rc;
}
