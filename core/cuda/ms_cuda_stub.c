/* ms_cuda_stub.c: ms_cuda.h for a build without nvcc.  Every function
 * fails with one line saying so, and ms_cuda_available() returns 0, so a
 * program asked for `--backend cuda` can report it and fall back to the CPU.
 * mk/cuda.mk links this instead of libmscuda.a when nvcc is absent.
 */
#include "ms_cuda.h"

static const char *why = "built without CUDA (nvcc was not found when this program was built)";

int ms_cuda_available(ms_err *err) { ms_seterr(err, "%s", why); return 0; }
int ms_cuda_device_info(char *buf, size_t n, ms_err *err) { ms_seterr(err, "%s", why); return -1; }
ms_cuda_model *ms_cuda_model_upload(const ms_model *m, ms_err *err) { ms_seterr(err, "%s", why); return 0; }
void ms_cuda_model_free(ms_cuda_model *dm) { (void)dm; }
const ms_config *ms_cuda_model_config(const ms_cuda_model *dm) { (void)dm; return 0; }
size_t ms_cuda_model_bytes(const ms_cuda_model *dm) { (void)dm; return 0; }
ms_cuda_ws *ms_cuda_ws_new(const ms_cuda_model *dm, int max_batch, ms_err *err) { ms_seterr(err, "%s", why); return 0; }
void ms_cuda_ws_free(ms_cuda_ws *ws) { (void)ws; }
int ms_cuda_ws_set(ms_cuda_ws *ws, int opt, int value) { return -1; }
int ms_cuda_ws_path(const ms_cuda_ws *ws, int B) { return 0; }
float *ms_cuda_state_alloc(const ms_cuda_model *dm, int count, ms_err *err) { ms_seterr(err, "%s", why); return 0; }
void ms_cuda_state_free(float *dev) { (void)dev; }
int ms_cuda_state_upload(ms_cuda_ws *ws, float *dev, const float *host, size_t n, ms_err *err)
{ ms_seterr(err, "%s", why); return -1; }
int ms_cuda_state_download(ms_cuda_ws *ws, float *host, const float *dev, size_t n, ms_err *err)
{ ms_seterr(err, "%s", why); return -1; }
int ms_cuda_state_copy(ms_cuda_ws *ws, float *dst, const float *src, size_t n, ms_err *err)
{ ms_seterr(err, "%s", why); return -1; }
int ms_cuda_state_zero(ms_cuda_ws *ws, float *dev, size_t n, ms_err *err) { ms_seterr(err, "%s", why); return -1; }
int ms_cuda_step(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int flags, float *logits, ms_err *err)
{ ms_seterr(err, "%s", why); return -1; }
int ms_cuda_logits(ms_cuda_ws *ws, int b0, int nb, float *host, ms_err *err) { ms_seterr(err, "%s", why); return -1; }
int ms_cuda_sync(ms_cuda_ws *ws, ms_err *err) { ms_seterr(err, "%s", why); return -1; }
int ms_cuda_trace_fetch(ms_cuda_ws *ws, int layer, int b, const ms_cuda_trace *dst, ms_err *err)
{ ms_seterr(err, "%s", why); return -1; }
double ms_cuda_time_steps(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int n_steps, int flags,
                          ms_err *err)
{ ms_seterr(err, "%s", why); return -1; }
double ms_cuda_copy_bandwidth(size_t bytes, int reps, ms_err *err) { ms_seterr(err, "%s", why); return -1; }
double ms_cuda_profile_step(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int flags, int reps,
                            double *ms_by_kind, int *launches_by_kind, ms_err *err)
{ ms_seterr(err, "%s", why); return -1; }
const char *ms_cuda_prof_name(int kind) { return "?"; }
