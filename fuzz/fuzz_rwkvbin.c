/* fuzz_rwkvbin.c: any bytes after the rwkv.cpp magic as a .bin model
 * (ggmf, version 101) through ms_model_load, and a step of every model it
 * accepts (fuzz_model.h).
 *
 * Inputs that do not start with "fmgg" are skipped: the loader picks the
 * format by that magic, and the safetensors target covers everything else.
 * Seeds: fuzz/corpus/rwkvbin (fuzz/make_seeds.py: small .bin files written
 * from random models, and the first 62 KB of the rwkv.cpp tiny fixture).
 */
#include "fuzz.h"
#include "fuzz_model.h"

#include <string.h>

int FUZZ_ENTRY(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) { ms_set_threads(1); once = 1; }
    if (size < 4 || memcmp(data, "fmgg", 4)) return 0;
    const char *path = fuzz_memfile(data, size);
    if (path) fuzz_check_model(path);
    return 0;
}
