/* fuzz_model.h: the part of the model targets (safetensors, rwkv.cpp .bin)
 * that runs after the bytes are a file: load, and if the loader accepts the
 * file, check the configuration and step it, so that whatever the loader
 * lets through the step must survive too.
 */
#ifndef MS_FUZZ_MODEL_H
#define MS_FUZZ_MODEL_H

#include "fuzz.h"
#include "ms.h"

static void fuzz_check_model(const char *path)
{
    ms_err err = {{0}};
    ms_model *m = ms_model_load(path, &err);
    if (!m) {
        FUZZ_CHECK(err.msg[0], "ms_model_load failed without a message");
        return;
    }
    const ms_config *c = &m->cfg;
    FUZZ_CHECK(c->n_layer > 0 && c->n_embd > 0 && c->n_head > 0 && c->head_size > 0 && c->vocab > 0 &&
               c->n_ptok > 0, "loaded a model with an empty dimension");
    (void)ms_model_bytes_per_token(m);
    (void)ms_model_n_params(m);
    /* one step from the zero state, for the first and the last token; the
     * state and logits are heap buffers of exactly the documented size */
    size_t sl = ms_state_len(c);
    float *st = calloc(sl ? sl : 1, sizeof *st), *lg = malloc(sizeof *lg * (size_t)c->vocab);
    ms_ws *ws = ms_ws_new(m);
    if (st && lg && ws) {
        FUZZ_CHECK(ms_step(m, ws, st, st, 0, lg, NULL, &err) == 0, "step token 0: %s", err.msg);
        FUZZ_CHECK(ms_step(m, ws, st, st, c->vocab - 1, NULL, NULL, &err) == 0, "step last token: %s", err.msg);
        FUZZ_CHECK(ms_step(m, ws, st, st, c->vocab, lg, NULL, &err) != 0, "token vocab accepted");
    }
    ms_ws_free(ws);
    free(st);
    free(lg);
    ms_model_free(m);
}

#endif
