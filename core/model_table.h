/* model_table.h: a model as the table of named tensors its .safetensors file
 * holds -- internal to core/model_save.c and core/grow.c, not part of the
 * public interface (that is grow.h).
 *
 * Each entry has the official name, the file's dtype and shape, and the data
 * row-major in that shape: either borrowed from the model (when the model
 * already holds it in that layout) or owned by the table (transposed copies,
 * grown tensors).  The order is scripts/metastate_ref.py's expected_shapes.
 */
#ifndef MS_MODEL_TABLE_H
#define MS_MODEL_TABLE_H

#include "ms.h"

typedef struct {
    char name[96];
    ms_dtype dt;
    int ndim;
    int64_t shape[3];
    const void *data;   /* row-major in `shape` */
    void *own;          /* == data when the table owns it, else NULL */
} mt_tensor;

typedef struct {
    mt_tensor *t;
    int n, cap;
} mt_table;

/* Export m into *t (empty on entry).  0, or -1 with err (memory). */
int mt_from_model(const ms_model *m, mt_table *t, ms_err *err);
void mt_free(mt_table *t);
mt_tensor *mt_find(mt_table *t, const char *name);
size_t mt_numel(const mt_tensor *x);
/* Insert a zero tensor after entry `after` (-1: at the end); returns it or NULL (memory). */
mt_tensor *mt_insert(mt_table *t, int after, const char *name, ms_dtype dt, int ndim, const int64_t *shape);
/* Give x a new zeroed owned buffer of the shape (the old data is returned
 * through *old_data, still valid, and *old_own must be freed by the caller). */
int mt_reshape(mt_tensor *x, int ndim, const int64_t *shape, const void **old_data, void **old_own);

/* Write the table with the metadata (a JSON object of strings) atomically. */
int mt_write(const mt_table *t, const char *meta_json, const char *path, ms_err *err);

/* The metadata for writing m's table: m's string keys, with format,
 * format_version, tokenizer, vocab, sse_heads, n_experts, top_k, growth,
 * trained_on and notes set from c (the config being written) and m;
 * growth_add, if not NULL, is one JSON object text appended to the growth
 * list.  malloc'd JSON text, or NULL with err. */
char *mt_meta(const ms_model *m, const ms_config *c, const char *growth_add, ms_err *err);

/* element access in a tensor's dtype */
float mt_get(const void *data, ms_dtype dt, size_t i);
void mt_put(void *data, ms_dtype dt, size_t i, float v);   /* rounds to dt (nearest even) */

#endif
