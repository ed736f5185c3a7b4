/* fuzz_safetensors.c: any bytes as a .safetensors file, through the checked
 * reader (ms_st_open) and the model loader (ms_model_load); a model that
 * loads is stepped once, so whatever the loader accepts the step must
 * survive.
 *
 * Invariants checked on a file the reader accepts: every tensor's bytes lie
 * inside the data section and match shape × dtype size, ms_st_find finds
 * each name, and every byte of every tensor can be read.  The input goes
 * through a memfd (fuzz.h), so the loaders see a real file.
 *
 * Seeds: fuzz/corpus/safetensors (fuzz/make_seeds.py), dictionary
 * fuzz/safetensors.dict.
 */
#include "fuzz.h"
#include "ms.h"
#include "safetensors.h"
#include "fuzz_model.h"

#include <string.h>

static void check_st(const char *path)
{
    ms_st_file f;
    ms_err err = {{0}};
    if (ms_st_open(path, &f, &err)) {
        FUZZ_CHECK(err.msg[0], "ms_st_open failed without a message");
        return;
    }
    FUZZ_CHECK(f.meta_json != NULL, "no meta_json");
    FUZZ_CHECK(f.data_len <= f.map_len, "data section %zu > map %zu", f.data_len, f.map_len);
    unsigned sum = 0;
    for (int i = 0; i < f.n; i++) {
        const ms_st_tensor *t = &f.t[i];
        FUZZ_CHECK(t->begin <= t->end && t->end <= f.data_len, "tensor %d [%zu, %zu) outside %zu", i,
                   t->begin, t->end, f.data_len);
        FUZZ_CHECK(t->end - t->begin == (size_t)t->numel * ms_st_dtype_size(t->dtype), "tensor %d size", i);
        FUZZ_CHECK((const unsigned char *)t->data == f.data + t->begin, "tensor %d data pointer", i);
        FUZZ_CHECK(t->ndim >= 0 && t->ndim <= MS_ST_MAXDIM, "tensor %d ndim %d", i, t->ndim);
        const ms_st_tensor *g = ms_st_find(&f, t->name);
        FUZZ_CHECK(g && !strcmp(g->name, t->name), "ms_st_find misses '%s'", t->name);
        const unsigned char *p = t->data;
        for (size_t j = 0; j < t->end - t->begin; j++) sum += p[j];
    }
    for (int i = 0; i < f.n_meta; i++) FUZZ_CHECK(ms_st_meta(&f, f.meta_k[i]) != NULL, "meta key %d", i);
    ms_st_close(&f);
    (void)sum;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) { ms_set_threads(1); once = 1; }
    const char *path = fuzz_memfile(data, size);
    if (!path) return 0;
    check_st(path);
    fuzz_check_model(path);
    return 0;
}
