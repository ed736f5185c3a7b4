/* cuda_load.c: dlopen of libmscuda.so; see cuda_load.h. */
#include "cuda_load.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ms_cuda_api g_api;
static int g_loaded;

static int cl_sym(void *h, const char *name, void *slot, ms_err *err)
{
    void *p = dlsym(h, name);
    if (!p) {
        ms_seterr(err, "%s has no %s: not a metastate CUDA backend, or one of another version", g_api.path, name);
        return -1;
    }
    memcpy(slot, &p, sizeof p);   /* object pointer to function pointer, as POSIX allows */
    return 0;
}

const ms_cuda_api *ms_cuda_load(const char *exe_dir, ms_err *err)
{
    if (g_loaded) return &g_api;
    char cand[2][1024];
    int nc = 0;
    const char *env = getenv("METASTATE_CUDA_LIB");
    if (env && *env) snprintf(cand[nc++], sizeof cand[0], "%s", env);
    else if (exe_dir) {
        snprintf(cand[nc++], sizeof cand[0], "%s/libmscuda.so", exe_dir);
        snprintf(cand[nc++], sizeof cand[0], "%s/build/libmscuda.so", exe_dir);
    }
    int pick = -1;
    for (int i = 0; i < nc && pick < 0; i++)
        if (access(cand[i], R_OK) == 0) pick = i;
    if (pick < 0) {
        if (env && *env) ms_seterr(err, "METASTATE_CUDA_LIB=%s: no such file", env);
        else ms_seterr(err, "no libmscuda.so in %s or %s/build (make builds it where nvcc is installed)",
                       exe_dir ? exe_dir : "?", exe_dir ? exe_dir : "?");
        return NULL;
    }
    snprintf(g_api.path, sizeof g_api.path, "%.1000s", cand[pick]);
    void *h = dlopen(g_api.path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        ms_seterr(err, "cannot open %s: %s", g_api.path, why ? why : "dlopen failed");
        return NULL;
    }
    if (cl_sym(h, "ms_cuda_available", &g_api.available, err) ||
        cl_sym(h, "ms_cuda_device_info", &g_api.device_info, err) ||
        cl_sym(h, "ms_cuda_model_upload", &g_api.model_upload, err) ||
        cl_sym(h, "ms_cuda_model_free", &g_api.model_free, err) ||
        cl_sym(h, "ms_cuda_ws_new", &g_api.ws_new, err) ||
        cl_sym(h, "ms_cuda_ws_free", &g_api.ws_free, err) ||
        cl_sym(h, "ms_cuda_state_alloc", &g_api.state_alloc, err) ||
        cl_sym(h, "ms_cuda_state_free", &g_api.state_free, err) ||
        cl_sym(h, "ms_cuda_state_upload", &g_api.state_upload, err) ||
        cl_sym(h, "ms_cuda_state_download", &g_api.state_download, err) ||
        cl_sym(h, "ms_cuda_state_zero", &g_api.state_zero, err) ||
        cl_sym(h, "ms_cuda_step", &g_api.step, err) ||
        cl_sym(h, "ms_cuda_trace_fetch", &g_api.trace_fetch, err)) {
        dlclose(h);
        return NULL;
    }
    g_loaded = 1;
    return &g_api;
}
