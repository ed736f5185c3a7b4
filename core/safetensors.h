/* safetensors.h: reading and writing .safetensors files.
 *
 * Reading maps the file (no copy) and checks the header before anything is
 * used: the length prefix, the JSON, every tensor's dtype, shape and byte
 * range (inside the data section, matching shape × dtype size, no overlap).
 * Writing is atomic: a temporary file in the same directory, fsync, rename,
 * fsync of the directory; on any failure the temporary file is removed and
 * an existing file under the final name is untouched.
 */
#ifndef MS_SAFETENSORS_H
#define MS_SAFETENSORS_H

#include "fileio.h"
#include "ms.h"

#define MS_ST_MAXDIM 8

typedef enum { ST_F32, ST_F16, ST_BF16, ST_I32, ST_I64, ST_F64, ST_U8, ST_OTHER } ms_st_dtype;

typedef struct {
    char *name;
    ms_st_dtype dtype;
    char dtype_str[16];
    int ndim;
    int64_t shape[MS_ST_MAXDIM];
    int64_t numel;
    size_t begin, end;        /* offsets in the data section */
    const void *data;         /* points into the mapping */
} ms_st_tensor;

typedef struct {
    char *path;
    void *map; size_t map_len;
    const unsigned char *data; size_t data_len;
    ms_st_tensor *t; int n;
    char **meta_k, **meta_v; int n_meta;   /* __metadata__ (strings) */
    char *meta_json;                       /* __metadata__ re-serialised, "{}" if none */
} ms_st_file;

/* A private, read-only copy of the whole file open on fd (len bytes) in
 * anonymous memory, to be released with munmap(map, len).  A copy and not a
 * mapping of the file: a file mapping SIGBUSes the program when the file is
 * truncated in place while it is loaded (MAP_PRIVATE does not protect pages
 * not yet copied), and silently changes weights when it is rewritten in place.
 * Returns MAP_FAILED with err naming path when the read fails or the file is
 * shorter than len (changed while read). */
void *ms_st_read_file(int fd, size_t len, const char *path, ms_err *err);

/* Map and validate.  Returns 0, or -1 with err naming the file and what is
 * wrong (and the tensor, when one is).  On failure f holds nothing to free. */
int ms_st_open(const char *path, ms_st_file *f, ms_err *err);
void ms_st_close(ms_st_file *f);
const ms_st_tensor *ms_st_find(const ms_st_file *f, const char *name);
const char *ms_st_meta(const ms_st_file *f, const char *key);   /* NULL if absent */
size_t ms_st_dtype_size(ms_st_dtype d);

/* One tensor to write.  dtype is a safetensors dtype string ("F32", "I32"…). */
typedef struct {
    const char *name;
    const char *dtype;
    int ndim;
    int64_t shape[MS_ST_MAXDIM];
    const void *data;
    size_t nbytes;
} ms_st_out;

/* Write tensors and string metadata (meta_kv: n_meta key/value pairs, keys
 * at even indices) atomically to path (fileio.h: the writers' policy).  Returns 0, or -1 with err (the file,
 * and the failing call with strerror). */
int ms_st_write(const char *path, const ms_st_out *t, int n,
                const char *const *meta_kv, int n_meta, ms_err *err);


#endif
