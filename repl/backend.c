/* backend.c: where the session's token steps run, the CPU (ms_step, the
 * oracle) or the CUDA backend (core/cuda, opened at run time by
 * core/cuda_load.c).  Every step of the session goes through
 * sess_model_step(), sess_model_steps() or sess_run_sequences(), so the
 * two backends are switched in one place.
 *
 * On the GPU the host state stays the truth: a step uploads the state,
 * runs the token on the device and downloads the new state and the logits
 * (for a 1.5B model ~13 MB each way, well under a millisecond).  So every
 * edit, snapshot, fork, diff and view works unchanged, and a step costs
 * the same whatever happened to the state before it.  An observer (the
 * view, kept layers) gets each layer's intermediates from the device after
 * the step, in the layout of the CPU's ms_trace.  `task` keeps its states
 * on the device, runs up to SESS_GPU_BATCH sequences at once and copies
 * back only logits; `sweep patch` steps its points as one batch.
 */
#include "session.h"
#include "cuda_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sess_gpu {
    const ms_cuda_api *api;
    char desc[300];            /* the device, one line */
    const ms_model *for_model; /* what dm holds (NULL: nothing uploaded) */
    ms_cuda_model *dm;
    ms_cuda_ws *ws;
    float *dst;                /* SESS_GPU_BATCH device states back to back */
    float *tr;                 /* host copies of one layer's intermediates */
    float *logits;             /* SESS_GPU_BATCH * vocab */
};

static void gpu_drop(sess_gpu *g)
{
    if (g->dst) g->api->state_free(g->dst);
    if (g->ws) g->api->ws_free(g->ws);
    if (g->dm) g->api->model_free(g->dm);
    free(g->tr);
    free(g->logits);
    g->dst = NULL;
    g->ws = NULL;
    g->dm = NULL;
    g->tr = NULL;
    g->logits = NULL;
    g->for_model = NULL;
}

static int gpu_upload(sess *s, ms_err *err)
{
    sess_gpu *g = s->gpu;
    const ms_config *c = &s->model->cfg;
    gpu_drop(g);
    size_t A = (size_t)c->dim_att, C = (size_t)c->n_embd, E = (size_t)c->sse_heads * c->head_size;
    size_t ntr = 8 * A + 2 * C + 3 * E + (size_t)c->n_ptok;
    if (!(g->dm = g->api->model_upload(s->model, err)) || !(g->ws = g->api->ws_new(g->dm, SESS_GPU_BATCH, err)) ||
        !(g->dst = g->api->state_alloc(g->dm, SESS_GPU_BATCH, err))) {
        gpu_drop(g);
        return -1;
    }
    if (!(g->tr = malloc(ntr * sizeof(float))) ||
        !(g->logits = malloc((size_t)SESS_GPU_BATCH * c->vocab * sizeof(float)))) {
        gpu_drop(g);
        ms_seterr(err, "out of memory for the CUDA backend's buffers");
        return -1;
    }
    g->for_model = s->model;
    return 0;
}

int sess_backend_cuda(sess *s, ms_err *err)
{
    if (s->gpu) return 0;
    const ms_cuda_api *api = ms_cuda_load(s->exe_dir, err);
    if (!api || !api->available(err)) return -1;
    sess_gpu *g = calloc(1, sizeof *g);
    if (!g) {
        ms_seterr(err, "out of memory");
        return -1;
    }
    g->api = api;
    if (api->device_info(g->desc, sizeof g->desc, err) != 0) snprintf(g->desc, sizeof g->desc, "CUDA device");
    s->gpu = g;
    if (s->model && gpu_upload(s, err) != 0) {
        free(g);
        s->gpu = NULL;
        return -1;
    }
    return 0;
}

void sess_backend_off(sess *s)
{
    if (!s->gpu) return;
    gpu_drop(s->gpu);
    free(s->gpu);
    s->gpu = NULL;
}

void sess_backend_model_gone(sess *s)
{
    if (s->gpu) gpu_drop(s->gpu);
}

const char *sess_backend_desc(const sess *s, char *buf, size_t n)
{
    if (!s->gpu) snprintf(buf, n, "cpu");
    else snprintf(buf, n, "cuda: %s (%s)", s->gpu->desc, s->gpu->api->path);
    return buf;
}

/* the device holds the session's model (uploaded again after a load or a
 * growth); if that fails the session goes on on the CPU, and says so */
static int gpu_ready(sess *s)
{
    sess_gpu *g = s->gpu;
    if (!g) return 0;
    if (g->for_model == s->model && g->dm) return 1;
    ms_err e;
    if (gpu_upload(s, &e) == 0) return 1;
    snprintf(s->note, sizeof s->note, "the CUDA backend could not take this model (%.200s); running on the CPU",
             e.msg);
    sess_backend_off(s);
    return 0;
}

/* the observer's view of layer l after a device step: the intermediates
 * copied from the device, S from the downloaded state */
static int gpu_observe(sess *s, const float *state, const ms_observer *obs, ms_err *err)
{
    sess_gpu *g = s->gpu;
    const ms_config *c = &s->model->cfg;
    size_t A = (size_t)c->dim_att, C = (size_t)c->n_embd, E = (size_t)c->sse_heads * c->head_size;
    float *p = g->tr;
    ms_cuda_trace d = { 0 };
    d.r = p; d.k = p + A; d.v = p + 2 * A; d.w = p + 3 * A; d.a = p + 4 * A; d.kk = p + 5 * A;
    d.g = p + 6 * A; d.y = p + 7 * A; d.z = p + 8 * A; d.x_out = d.z + C;
    d.q = E ? d.x_out + C : NULL; d.e_raw = E ? d.q + E : NULL; d.e = E ? d.e_raw + E : NULL;
    d.s = d.x_out + C + 3 * E;
    for (int l = 0; l < c->n_layer; l++) {
        if (g->api->trace_fetch(g->ws, l, 0, &d, err) != 0) return -1;
        ms_trace t = { .layer = l, .r = d.r, .k = d.k, .v = d.v, .w = d.w, .a = d.a, .kk = d.kk, .g = d.g,
                       .y = d.y, .S = ms_state_S(c, (float *)state, l), .z = d.z, .q = d.q, .e_raw = d.e_raw,
                       .e = d.e, .s = d.s, .x_out = d.x_out };
        obs->fn(obs->ctx, &t);
    }
    return 0;
}

int sess_model_step(sess *s, float *state, int token, float *logits, const ms_observer *obs, ms_err *err)
{
    if (!gpu_ready(s)) return ms_step(s->model, s->ws, state, state, token, logits, obs, err);
    sess_gpu *g = s->gpu;
    size_t SL = ms_state_len(&s->model->cfg);
    if (g->api->state_upload(g->ws, g->dst, state, SL, err) != 0 ||
        g->api->step(g->ws, &g->dst, 1, &token, logits ? MS_CUDA_LOGITS : 0, logits, err) != 0 ||
        g->api->state_download(g->ws, state, g->dst, SL, err) != 0)
        return -1;
    return obs ? gpu_observe(s, state, obs, err) : 0;
}

int sess_batch_hint(const sess *s, size_t state_len)
{
    if (!s->gpu) return 1;
    size_t per = ((size_t)64 << 20) / (state_len * sizeof(float));   /* host copies: at most ~64 MB */
    return per < 1 ? 1 : per > SESS_GPU_BATCH ? SESS_GPU_BATCH : (int)per;
}

int sess_model_steps(sess *s, float *states, int B, const int *tokens, float *logits, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    const size_t SL = ms_state_len(c), V = (size_t)c->vocab;
    if (!gpu_ready(s)) {
        for (int b = 0; b < B; b++) {
            if (sess_interrupted(s)) {
                ms_seterr(err, "interrupted after %d of %d states", b, B);
                return -1;
            }
            if (ms_step(s->model, s->ws, states + b * SL, states + b * SL, tokens[b], logits + b * V, NULL, err) != 0)
                return -1;
        }
        return 0;
    }
    sess_gpu *g = s->gpu;
    float *ptr[SESS_GPU_BATCH];
    for (int b0 = 0; b0 < B; b0 += SESS_GPU_BATCH) {
        int nb = B - b0 < SESS_GPU_BATCH ? B - b0 : SESS_GPU_BATCH;
        if (sess_interrupted(s)) {
            ms_seterr(err, "interrupted after %d of %d states", b0, B);
            return -1;
        }
        for (int b = 0; b < nb; b++) ptr[b] = g->dst + (size_t)b * SL;
        if (g->api->state_upload(g->ws, g->dst, states + b0 * SL, (size_t)nb * SL, err) != 0 ||
            g->api->step(g->ws, ptr, nb, tokens + b0, MS_CUDA_LOGITS, logits + b0 * V, err) != 0 ||
            g->api->state_download(g->ws, states + b0 * SL, g->dst, (size_t)nb * SL, err) != 0)
            return -1;
    }
    return 0;
}

int sess_run_sequences(sess *s, long n, long len, const int *tok, int *pred, ms_err *err)
{
    const ms_config *c = &s->model->cfg;
    const size_t SL = ms_state_len(c);
    const int V = c->vocab;
    if (!gpu_ready(s)) {
        /* up to SESS_CPU_BATCH sequences at once through ms_step_batch (each
         * weight read once per position for all of them; bit for bit the
         * numbers of ms_step one sequence at a time) */
        int B = n < SESS_CPU_BATCH ? (int)n : SESS_CPU_BATCH;
        ms_seq_ws *w = ms_seq_ws_new(s->model, B);
        float *st = malloc(sizeof(float) * SL * (size_t)B), *lg = malloc(sizeof(float) * (size_t)V * (size_t)B);
        float **ptr = malloc(sizeof(float *) * (size_t)B);
        int *tb = malloc(sizeof(int) * (size_t)B);
        int rc = 0;
        if (!w || !st || !lg || !ptr || !tb) {
            ms_seterr(err, "out of memory for %d sequences at once", B);
            rc = -1;
        }
        for (long q0 = 0; rc == 0 && q0 < n; q0 += B) {
            int nb = (int)(n - q0 < B ? n - q0 : B);
            memset(st, 0, SL * sizeof(float) * (size_t)nb);
            for (int b = 0; b < nb; b++) ptr[b] = st + (size_t)b * SL;
            for (long i = 0; i < len; i++) {
                if (sess_interrupted(s)) {
                    ms_seterr(err, "interrupted after %ld of %ld sequences", q0, n);
                    rc = -1;
                    break;
                }
                for (int b = 0; b < nb; b++) tb[b] = tok[(size_t)(q0 + b) * len + i];
                if (ms_step_batch(s->model, w, ptr, tb, nb, lg, err) != 0) {
                    rc = -1;
                    break;
                }
                for (int b = 0; b < nb; b++) pred[(size_t)(q0 + b) * len + i] = ms_argmax(lg + (size_t)b * V, V);
            }
        }
        ms_seq_ws_free(w);
        free(st);
        free(lg);
        free(ptr);
        free(tb);
        return rc;
    }
    sess_gpu *g = s->gpu;
    float *ptr[SESS_GPU_BATCH];
    int tb[SESS_GPU_BATCH];
    for (long q0 = 0; q0 < n; q0 += SESS_GPU_BATCH) {
        int nb = (int)(n - q0 < SESS_GPU_BATCH ? n - q0 : SESS_GPU_BATCH);
        for (int b = 0; b < nb; b++) ptr[b] = g->dst + (size_t)b * SL;
        if (g->api->state_zero(g->ws, g->dst, (size_t)nb * SL, err) != 0) return -1;
        for (long i = 0; i < len; i++) {
            if (sess_interrupted(s)) {
                ms_seterr(err, "interrupted after %ld of %ld sequences", q0, n);
                return -1;
            }
            for (int b = 0; b < nb; b++) tb[b] = tok[(size_t)(q0 + b) * len + i];
            if (g->api->step(g->ws, ptr, nb, tb, MS_CUDA_LOGITS, g->logits, err) != 0) return -1;
            for (int b = 0; b < nb; b++)
                pred[(size_t)(q0 + b) * len + i] = ms_argmax(g->logits + (size_t)b * V, V);
        }
    }
    return 0;
}
