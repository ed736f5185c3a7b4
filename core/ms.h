/* ms.h: the public interface of core/, the Meta-State (RWKV-7 + Self-State
 * Encoder) model library.
 *
 * What it is: a model loaded read-only from a file (safetensors or an rwkv.cpp
 * .bin), a state that is one flat float buffer owned by the caller, a
 * workspace of scratch memory, and one function, ms_step(), that advances a
 * state by one token and writes the logits.  MODEL.md is the contract for the
 * math; this file is the contract for the C interface.
 *
 * What it is not: it knows nothing of terminals, readline or the debugger's
 * sessions.  It never prints and never exits; every function that can fail
 * returns non-zero and leaves a one-line message in an ms_err buffer that
 * names the file, the tensor, the offset or the argument.
 */
#ifndef MS_H
#define MS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define MS_VERSION "0.1.0"

/* A message buffer for errors: filled with one line, no trailing newline. */
typedef struct { char msg[1024]; } ms_err;
void ms_seterr(ms_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with a va_list (for other printf-like error functions). */
void ms_vseterr(ms_err *e, const char *fmt, va_list ap);
/* src into dst (cap bytes); a line too long keeps its start and its end
 * (where the reason is) with " [...] " between them. */
void ms_fit_line(char *dst, size_t cap, const char *src);

typedef enum { MS_F32 = 0, MS_F16 = 1, MS_BF16 = 2 } ms_dtype;
const char *ms_dtype_name(ms_dtype t);
size_t ms_dtype_size(ms_dtype t);

/* A weight matrix used as y = W·x with y of length `out` and x of length `in`.
 * Storage is row-major, either (out, in) (trans = 0, PyTorch Linear layout) or
 * (in, out) (trans = 1, the layout of LoRA matrices used as x @ M).  The data
 * is either inside the model's copy of the file or in memory the model owns. */
typedef struct {
    const void *data;
    ms_dtype dt;
    int out, in;
    int trans;
} ms_mat;

typedef enum { MS_TOK_BYTES = 0, MS_TOK_WORLD = 1, MS_TOK_WORDS = 2 } ms_tok_kind;

typedef struct {
    int n_layer;      /* L */
    int n_embd;       /* C */
    int n_head;       /* H */
    int head_size;    /* N */
    int dim_att;      /* A = H*N */
    int vocab;        /* rows of emb and head */
    int n_ptok;       /* n: parameter tokens of the Meta-State layer */
    int sse_heads;    /* Hs: 0 = plain RWKV-7 ChannelMix */
    int d_w, d_a, d_v, d_g;   /* LoRA dims read from shapes */
    int n_experts, top_k;     /* MODEL.md 3.4; 1, 1 = dense */
    ms_tok_kind tokenizer;
    ms_dtype wtype;   /* dtype of the big matrices (for reports) */
} ms_config;

typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;      /* (C) */
    const float *x_r, *x_w, *x_k, *x_v, *x_a, *x_g;  /* (C) time-shift lerps */
    const float *w0, *a0, *v0;                       /* (A); v0 NULL in layer 0 */
    ms_mat w1, w2, a1, a2, v1, v2, g1, g2;           /* LoRA; v1/v2 data NULL in layer 0 */
    const float *k_k, *k_a;                          /* (A) */
    const float *r_k;                                /* (H, N) */
    ms_mat Wr, Wk, Wv;                               /* (A, C) */
    ms_mat Wo;                                       /* (C, A) */
    const float *lnx_w, *lnx_b;                      /* (A) */
    const float *ffn_xk;                             /* (C) */
    ms_mat Kz;                                       /* (n, C) ffn.key.weight */
    ms_mat V;                                        /* (C, n) ffn.value.weight */
    ms_mat Ks;                                       /* (n, Hs*N) ffn.sse_key.weight; data NULL if Hs = 0 */
    const float *sse_ln_w, *sse_ln_b;                /* (Hs*N) */
    /* parameter-token experts (MODEL.md 3.4), only when n_experts > 1: */
    const float *router;                             /* (E, C + Hs*N) mean rows of [Kz | Ks] per block */
    ms_mat Vt;                                       /* V transposed, (n, C) stored as trans: blocks are rows */
} ms_layer;

typedef struct ms_model {
    ms_config cfg;
    const float *ln0_w, *ln0_b;   /* (C) */
    ms_mat emb;                   /* (vocab, C) used row by row, never as a product */
    const float *lnout_w, *lnout_b; /* (C) */
    ms_mat head;                  /* (vocab, C) */
    ms_layer *layers;             /* (L) */
    char *path;                   /* file it came from */
    char *meta_json;              /* __metadata__ as JSON text ("{}" for .bin) */
    char **words;                 /* vocab strings for MS_TOK_WORDS, else NULL */
    uint64_t weights_hash;        /* identity of the weights (FNV-1a 64 over tensor bytes) */
    /* ownership: the mapping and every buffer the loader allocated */
    void *map; size_t map_len;
    void **owned; int n_owned, cap_owned;
} ms_model;

/* Load a model: `.safetensors` (F32/F16/BF16) or an rwkv.cpp `.bin` (format
 * 101, F32/F16), chosen by content, not by name.  Every tensor is checked by
 * name, dtype, shape and byte range, and every weight for NaN/Inf, before the
 * model is returned.  Returns NULL and fills *err on failure. */
ms_model *ms_model_load(const char *path, ms_err *err);
void ms_model_free(ms_model *m);

/* A model of the shape in cfg (n_layer, n_embd, n_head, head_size, vocab,
 * n_ptok, sse_heads, d_w/d_a/d_v/d_g) with random weights of dtype dt, built
 * in memory (benchmarks, shape tests).  NULL and *err on failure. */
ms_model *ms_model_random(const ms_config *cfg, ms_dtype dt, uint64_t seed, ms_err *err);

/* A zeroed, 64-byte aligned buffer that the model owns and frees with
 * ms_model_free (for tensors built or converted at load, growth, random
 * models).  NULL when out of memory. */
void *ms_model_own(ms_model *m, size_t bytes);

/* Derive layer li's expert router keys and transposed V (MODEL.md 3.4) from
 * its Kz, Ks and V; needed again after any change to those.  0 or -1 (OOM). */
int ms_layer_build_experts(ms_model *m, int li);

/* Bytes of weights one step reads (all layer matrices, LoRA, the head; not
 * the embedding, not 1-D tensors). */
size_t ms_model_bytes_per_token(const ms_model *m);
size_t ms_model_n_params(const ms_model *m);

/* ---- state (MODEL.md 4) ---------------------------------------------------
 * Per layer, contiguous: att_x (C), S (H,N,N) [h][value i][key j], ffn_x (C).
 * The state is a plain float array of ms_state_len() floats; zero = all 0. */
size_t ms_state_len(const ms_config *c);
size_t ms_state_layer_len(const ms_config *c);
float *ms_state_att_x(const ms_config *c, float *st, int layer);
float *ms_state_S(const ms_config *c, float *st, int layer);      /* (H, N, N) */
float *ms_state_ffn_x(const ms_config *c, float *st, int layer);

/* ---- observer ---------------------------------------------------------------
 * Called once per layer per step, after the Meta-State layer, with pointers
 * into the workspace: valid only during the call.  Nothing is copied for it. */
typedef struct {
    int layer;
    const float *r, *k, *v, *w, *a, *kk, *g;   /* (A) k: after the k_a change; v: mixed */
    const float *y;                            /* (A) WKV read before ln_x */
    const float *S;                            /* (H, N, N) state after this token */
    const float *z;                            /* (C) shifted input of the Meta-State layer */
    const float *q;                            /* (Hs*N) unit queries */
    const float *e_raw, *e;                    /* (Hs*N) read before / after sse_ln */
    const float *s;                            /* (n) scores against the parameter tokens */
    const float *x_out;                        /* (C) residual stream after the layer */
} ms_trace;

typedef struct {
    void (*fn)(void *ctx, const ms_trace *t);
    void *ctx;
} ms_observer;

/* ---- workspace and the step ------------------------------------------------ */
typedef struct ms_ws ms_ws;
ms_ws *ms_ws_new(const ms_model *m);
void ms_ws_free(ms_ws *ws);

/* Advance one token.  state_in and state_out may be the same buffer (in
 * place); if they differ, state_in is not modified.  logits (vocab floats)
 * may be NULL to skip the head.  obs may be NULL.  Returns 0, or -1 for a
 * token out of range (err says the range). */
int ms_step(const ms_model *m, ms_ws *ws, const float *state_in, float *state_out,
            int token, float *logits, const ms_observer *obs, ms_err *err);

/* Many tokens at once (step_seq.c): every matrix product over all of them,
 * so each weight is read once per chunk of max_rows tokens; the results are
 * bit for bit those of ms_step token by token.  No observer (step with
 * ms_step to watch the intermediates: the same numbers). */
typedef struct ms_seq_ws ms_seq_ws;
ms_seq_ws *ms_seq_ws_new(const ms_model *m, int max_rows);   /* NULL: out of memory */
void ms_seq_ws_free(ms_seq_ws *w);
int ms_seq_ws_rows(const ms_seq_ws *w);

typedef enum { MS_SEQ_NONE, MS_SEQ_LAST, MS_SEQ_ALL } ms_seq_logits;
/* Advance state (in place) by tokens[0..T-1] in order.  logits: NONE (may
 * be NULL), LAST (vocab floats: after the last token) or ALL ((T, vocab):
 * after each token).  0, or -1 for a token out of range (nothing stepped). */
int ms_step_seq(const ms_model *m, ms_seq_ws *w, float *state, const int *tokens, int T, float *logits,
                ms_seq_logits mode, ms_err *err);
/* One token each for B independent states (in place): states[b] by
 * tokens[b], logits (B, vocab) or NULL.  0, or -1 for a token out of range
 * (nothing stepped).  The states must be distinct buffers. */
int ms_step_batch(const ms_model *m, ms_seq_ws *w, float *const *states, const int *tokens, int B, float *logits,
                  ms_err *err);

/* Number of threads used by the kernels (OpenBLAS and our own). */
void ms_set_threads(int n);
int ms_get_threads(void);

/* ---- sampler ---------------------------------------------------------------
 * The RNG is a plain value (xoshiro256**-like 64-bit state words) so that it
 * can be saved with a snapshot and restored bit-exactly. */
typedef struct {
    float temp;     /* 0 = greedy */
    float top_p;    /* 1 = off */
    int top_k;      /* 0 = off */
    uint64_t seed;
    uint64_t rng[4];
} ms_sampler;

void ms_sampler_init(ms_sampler *s, float temp, float top_p, int top_k, uint64_t seed);
void ms_sampler_reseed(ms_sampler *s, uint64_t seed);
/* Picks a token id from logits (n values).  scratch: n floats + n ints, or
 * NULL to allocate.  Returns the id (or -1 on allocation failure). */
int ms_sample(ms_sampler *s, const float *logits, int n);
double ms_rng_uniform(uint64_t rng[4]);

/* softmax into probs (double accumulation); returns log-sum-exp */
double ms_softmax(const float *logits, float *probs, int n);
/* Index of the largest of n values; the lowest index on a tie (like torch.argmax). */
int ms_argmax(const float *x, int n);

/* ---- checksums ---- */
uint64_t ms_fnv1a(const void *data, size_t n, uint64_t h);
#define MS_FNV_INIT 0xcbf29ce484222325ULL

#endif
