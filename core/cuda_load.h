/* cuda_load.h: the CUDA backend (core/cuda/, built as libmscuda.so when nvcc
 * exists) opened at run time, so that a program that never asks for it
 * never loads the CUDA runtime or cuBLAS (a few hundred MB of libraries,
 * ~0.2 s at every start) and runs where they are missing.
 *
 * ms_cuda_load() finds the library ($METASTATE_CUDA_LIB, else
 * libmscuda.so beside the executable or in its build/ folder), opens it
 * and returns the table of its functions, or NULL with one line in *err
 * ("no libmscuda.so beside ... (built with nvcc only)", dlopen's reason).
 * The functions are those of core/cuda/ms_cuda.h, with the same contracts.
 * The library stays open for the life of the process.
 */
#ifndef MS_CUDA_LOAD_H
#define MS_CUDA_LOAD_H

#include "ms.h"
#include "cuda/ms_cuda.h"

typedef struct {
    int (*available)(ms_err *err);
    int (*device_info)(char *buf, size_t n, ms_err *err);
    ms_cuda_model *(*model_upload)(const ms_model *m, ms_err *err);
    void (*model_free)(ms_cuda_model *dm);
    ms_cuda_ws *(*ws_new)(const ms_cuda_model *dm, int max_batch, ms_err *err);
    void (*ws_free)(ms_cuda_ws *ws);
    float *(*state_alloc)(const ms_cuda_model *dm, int count, ms_err *err);
    void (*state_free)(float *dev);
    int (*state_upload)(ms_cuda_ws *ws, float *dev, const float *host, size_t n, ms_err *err);
    int (*state_download)(ms_cuda_ws *ws, float *host, const float *dev, size_t n, ms_err *err);
    int (*state_zero)(ms_cuda_ws *ws, float *dev, size_t n, ms_err *err);
    int (*step)(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int flags, float *logits,
                ms_err *err);
    int (*trace_fetch)(ms_cuda_ws *ws, int layer, int b, const ms_cuda_trace *dst, ms_err *err);
    char path[1024];   /* the library that was opened */
} ms_cuda_api;

/* exe_dir: the folder of the running program (NULL: only the variable). */
const ms_cuda_api *ms_cuda_load(const char *exe_dir, ms_err *err);

#endif
