/* ms_cuda.h: the CUDA backend of core/: the same token step as ms_step()
 * (core/step.c, the oracle) over weights and states that live on a GPU, for
 * one state or B states at once.
 *
 * What it is: a device copy of a loaded ms_model (big matrices in their own
 * dtype, F32/F16/BF16; 1-D tensors fp32), device states with exactly the
 * flat layout of MODEL.md 4 (so upload and download are plain copies, and
 * snapshot, restore and fork are device-to-device copies), a workspace that
 * holds every intermediate of the last step (per layer, per batch element:
 * the observer's view is a copy of the slices the screen shows), and
 * ms_cuda_step().  Batch 1 runs as a captured CUDA graph of about 7 kernels
 * per layer; larger batches use the same kernels (a warp carries up to 8
 * batch elements) or cuBLAS GemmEx for the matrix products.
 *
 * What it is not: bit-identical to the CPU (sums run in another order; the
 * tolerances are MODEL.md 8's), thread-safe (one workspace per thread), or
 * a loader: models are loaded by ms_model_load() and uploaded from there.
 * Without a GPU (or in a build without nvcc, which links ms_cuda_stub.c)
 * every function fails cleanly and ms_cuda_available() says why in one line.
 *
 * Errors: functions returning int give 0 or -1, pointers NULL; *err then
 * holds one line naming the call and CUDA's reason.  Nothing is printed.
 */
#ifndef MS_CUDA_H
#define MS_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "ms.h"

typedef struct ms_cuda_model ms_cuda_model;
typedef struct ms_cuda_ws ms_cuda_ws;

/* 1 if a usable CUDA device is present (and this build has code for it);
 * 0 with the reason in *err ("built without CUDA", "no CUDA device: ...",
 * "NVIDIA A100 is sm_80; this build has sm_90 code only"). */
int ms_cuda_available(ms_err *err);

/* One line about the device (name, sm, SMs, memory, driver).  0 / -1. */
int ms_cuda_device_info(char *buf, size_t n, ms_err *err);

/* Copy a model to the device.  The ms_model is only read, and may be freed
 * afterwards.  Parameter-token experts (n_experts > 1 with top_k <
 * n_experts) need the router keys core built (ms_layer_build_experts); the
 * device evaluates every block and zeroes the scores of the blocks not
 * picked (same result, no saving).  NULL and *err on failure. */
ms_cuda_model *ms_cuda_model_upload(const ms_model *m, ms_err *err);
void ms_cuda_model_free(ms_cuda_model *dm);
const ms_config *ms_cuda_model_config(const ms_cuda_model *dm);
/* Bytes of weights on the device. */
size_t ms_cuda_model_bytes(const ms_cuda_model *dm);

/* A workspace for steps of up to max_batch states; owns the stream, the
 * captured graphs and the intermediates of the last step.  Free it before
 * its model. */
ms_cuda_ws *ms_cuda_ws_new(const ms_cuda_model *dm, int max_batch, ms_err *err);
void ms_cuda_ws_free(ms_cuda_ws *ws);

/* Options (ms_cuda_ws_set returns the previous value, or -1 for an unknown
 * option): */
enum {
    MS_CUDA_OPT_GRAPH = 1,     /* 1 (default): replay a captured graph when the own kernels do the products */
    MS_CUDA_OPT_PDL = 2,       /* 1: programmatic dependent launch between kernels (default 0) */
    MS_CUDA_OPT_GEMM = 3,      /* 0 (default) auto, 1 own kernels always, 2 cuBLAS always */
    MS_CUDA_OPT_CUBLAS_MIN_B = 4, /* auto: batches of at least this many use cuBLAS (default 9); never for F16 */
};
int ms_cuda_ws_set(ms_cuda_ws *ws, int opt, int value);
/* Which path a step of B states takes: 1 own kernels (graph if enabled), 2 cuBLAS. */
int ms_cuda_ws_path(const ms_cuda_ws *ws, int B);

/* ---- states ----------------------------------------------------------------
 * A device state is ms_state_len(cfg) floats with the layout of MODEL.md 4.
 * ms_cuda_state_alloc gives `count` of them back to back, zeroed; state i of
 * the block starts at p + i*ms_state_len(cfg). */
float *ms_cuda_state_alloc(const ms_cuda_model *dm, int count, ms_err *err);
void ms_cuda_state_free(float *dev);
/* Copies of n floats, ordered after the steps already issued on ws: upload
 * and download wait until done; copy (device to device: snapshot, restore,
 * fork) and zero are queued.  Any slice works (one head, one layer). */
int ms_cuda_state_upload(ms_cuda_ws *ws, float *dev, const float *host, size_t n, ms_err *err);
int ms_cuda_state_download(ms_cuda_ws *ws, float *host, const float *dev, size_t n, ms_err *err);
int ms_cuda_state_copy(ms_cuda_ws *ws, float *dst, const float *src, size_t n, ms_err *err);
int ms_cuda_state_zero(ms_cuda_ws *ws, float *dev, size_t n, ms_err *err);

/* ---- the step ----------------------------------------------------------------
 * Advance B states (device pointers states[0..B), each a whole state; they
 * must be distinct) by one token each (tokens[b], host array), in place.
 * flags & MS_CUDA_LOGITS: compute the head (the logits stay on the device;
 * ms_cuda_logits() copies them).  logits (host, B*vocab floats) non-NULL:
 * compute, copy back and wait.  Otherwise the call returns once the work is
 * queued; an error in the queued work shows at the next call that waits.
 * Returns 0, or -1 (token out of range, B > max_batch, a CUDA error). */
#define MS_CUDA_LOGITS 1
int ms_cuda_step(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int flags, float *logits,
                 ms_err *err);
/* Logits of batch elements [b0, b0+nb) of the last step that computed them,
 * into host (nb*vocab floats); waits. */
int ms_cuda_logits(ms_cuda_ws *ws, int b0, int nb, float *host, ms_err *err);
/* Wait for everything issued on ws; reports an error of queued work. */
int ms_cuda_sync(ms_cuda_ws *ws, ms_err *err);

/* The intermediates of the last step for one layer and batch element, as the
 * CPU observer sees them (ms_trace); each non-NULL destination gets its
 * vector (r k v w a kk g y: A floats; z x_out: C; q e_raw e: Hs*N; s: n).
 * S is the state itself: download its slice.  Waits. */
typedef struct {
    float *r, *k, *v, *w, *a, *kk, *g, *y, *z, *q, *e_raw, *e, *s, *x_out;
} ms_cuda_trace;
int ms_cuda_trace_fetch(ms_cuda_ws *ws, int layer, int b, const ms_cuda_trace *dst, ms_err *err);

/* ---- measurements ------------------------------------------------------------ */
/* Milliseconds (CUDA events) for n_steps steps of B states with the tokens
 * tokens[step*B + b], flags as ms_cuda_step, nothing copied back. */
double ms_cuda_time_steps(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int n_steps, int flags,
                          ms_err *err);
/* Where a step's time goes: the step of B states run as direct launches
 * (no graph) with an event after each, reps times; per kind, the mean
 * milliseconds between the event before and after its launches (launch
 * gaps included) and the launches of one step.  Returns the mean total, or
 * -1 with err.  The state advances reps times. */
enum {
    MS_CUDA_PROF_EMBED, MS_CUDA_PROF_LN1, MS_CUDA_PROF_GEMV_IN, MS_CUDA_PROF_WKV, MS_CUDA_PROF_GEMV_WO,
    MS_CUDA_PROF_SSE, MS_CUDA_PROF_GEMV_S, MS_CUDA_PROF_ROUTER, MS_CUDA_PROF_GEMV_V, MS_CUDA_PROF_LNOUT,
    MS_CUDA_PROF_HEAD, MS_CUDA_PROF_N
};
double ms_cuda_profile_step(ms_cuda_ws *ws, float *const *states, int B, const int *tokens, int flags, int reps,
                            double *ms_by_kind, int *launches_by_kind, ms_err *err);
const char *ms_cuda_prof_name(int kind);
/* The device's copy bandwidth (bytes read + written per second) over a
 * buffer of `bytes`, median of reps. */
double ms_cuda_copy_bandwidth(size_t bytes, int reps, ms_err *err);

#ifdef __cplusplus
}
#endif
#endif
