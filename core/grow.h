/* grow.h: progressive scaling (MODEL.md 3.3), writing a model back to a
 * .safetensors file, and the seeded generator these share with scripts/.
 *
 * What it is: three growth steps that keep a model's function (its logits
 * on any state) while making it bigger -- more parameter tokens, more SSE
 * heads, more WKV heads -- and the conversion of a state to the grown
 * layout; `ms_model_save`, which writes any loaded (or grown) model as a
 * .safetensors file with the official names and MODEL.md 5.1's metadata.
 *
 * How growth works: the model is exported as a table of named tensors in
 * the file's layout (the same table `ms_model_save` writes), the growth is
 * applied to that table, and the result is written to a temporary file and
 * loaded back with ms_model_load.  So a grown model is, by construction,
 * exactly what `save-model` writes and what loading that file gives: same
 * bytes, same weights hash, every loader check applied.
 *
 * The random parts (new keys and query rows) come from splitmix64 (below),
 * keyed by the seed and the tensor's name and indexed by the element's flat
 * position in the grown tensor, so scripts/grow.py draws the very same
 * values and a C-grown file equals a Python-grown one bit for bit.
 *
 * What it is not: no session, no printing; nothing here touches a state
 * buffer except ms_grow_state.  Files are written atomically (ms_st_write).
 */
#ifndef MS_GROW_H
#define MS_GROW_H

#include "ms.h"

typedef enum { MS_GROW_TOKENS = 0, MS_GROW_SSE = 1, MS_GROW_HEADS = 2 } ms_grow_op;

/* "tokens", "sse", "heads" */
const char *ms_grow_op_name(ms_grow_op op);
/* 0 and *op for one of those names, else -1. */
int ms_grow_op_parse(const char *s, ms_grow_op *op);

/* Largest k accepted for one step of `tokens` / `heads` (the loader's
 * limits on tensor sides are far above these). */
#define MS_GROW_MAX_TOKENS (1 << 20)
#define MS_GROW_MAX_HEADS 1024

/* Check that growing a model of config c by k with op is possible:
 *   tokens: 1 <= k <= MS_GROW_MAX_TOKENS; with experts (E > 1) k must be a
 *           multiple of 2E (each block gets k/E new tokens, drawn in +/- pairs
 *           so that the block's router key -- the mean of its rows -- only
 *           scales and the routing stays the same);
 *   sse:    1 <= k and Hs + k <= min(H, C/N);
 *   heads:  1 <= k <= MS_GROW_MAX_HEADS.
 * Returns 0, or -1 with one line in err that names what is valid. */
int ms_grow_check(const ms_config *c, ms_grow_op op, long k, ms_err *err);

/* The config after the step (c and k must pass ms_grow_check). */
ms_config ms_grow_config(const ms_config *c, ms_grow_op op, int k);

/* Grow m by k (op, MODEL.md 3.3) into a new, independent model; m is not
 * changed.  New values:
 *   tokens: k rows of Kz and Ks uniform +/-0.5/sqrt(C), k columns of V zero;
 *           with E > 1 blocks each gets k/E tokens at its end, in +/- pairs;
 *   sse:    k*N columns of Ks zero (Ks created, in Kz's dtype, if Hs was 0),
 *           sse_ln weight 1, bias 0;
 *   heads:  k*N rows of Wr, Wv uniform +/-0.5/sqrt(C) and of Wk +/-0.05/sqrt(C)
 *           (RWKV-7's init), columns of w2 a2 v2 g2 uniform with the standard
 *           deviation of RWKV-7's orthogonal init, 0.1/sqrt(max(D, A')), entries
 *           of w0 (RWKV-7's -7 + 5 (j/(A'-1))^(0.85 + (l/(L-1))^0.5) + 0.5 at
 *           channel j of the grown A'), a0 0, v0 1, k_k 0.85, k_a 1, ln_x weight ((1+l)/L)^0.7, bias 0, rows of r_k 0,
 *           columns of Wo 0.
 * Every matrix keeps its dtype (new values rounded to it, to nearest even;
 * zeros stay exact); vectors are fp32.  The metadata gets sse_heads and a
 * growth history with {"op","k","seed"} appended; `seed` is recorded even
 * for `sse`, which draws nothing.  The new model's path is m's.  Works
 * through a temporary file in $TMPDIR (default /tmp), removed before this
 * returns.  Returns NULL with err (invalid k, out of memory, the temporary
 * file) on failure. */
ms_model *ms_grow(const ms_model *m, ms_grow_op op, int k, uint64_t seed, ms_err *err);

/* Convert a state (MODEL.md 4) of config `from` to config `to`, where `to`
 * is `from` grown (ms_grow_config): att_x and ffn_x copied, the heads of S
 * copied, new heads zero.  src and dst must not overlap. */
void ms_grow_state(const ms_config *from, const ms_config *to, const float *src, float *dst);

/* Write m to path (atomically: ms_st_write) as a .safetensors file that
 * ms_model_load and scripts/metastate_ref.py read: official tensor names in
 * expected_shapes order, LoRA matrices in the official (in, out) layout
 * (an rwkv.cpp model's are transposed), matrices in their dtype, vectors
 * F32 with the official shapes ((1,1,C) lerps, (H,N) r_k); metadata format,
 * format_version, tokenizer, vocab (words), sse_heads, n_experts, top_k,
 * growth, trained_on, notes (and any other string key m's metadata had).
 * Loading the file gives the same logits bit for bit.  Returns 0, or -1
 * with err (the file, the failing call). */
int ms_model_save(const ms_model *m, const char *path, ms_err *err);

/* ---- splitmix64 (Steele, Lea, Flood 2014), shared with scripts/ --------
 * mix: the finaliser.  next: *state += 0x9E3779B97F4A7C15, return
 * mix(*state).  Counter form: value j of a stream with key K is
 * mix(K + (j+1)*0x9E3779B97F4A7C15), so any element can be drawn alone. */
#define MS_SPLITMIX_GAMMA 0x9E3779B97F4A7C15ULL
uint64_t ms_splitmix64_mix(uint64_t z);
uint64_t ms_splitmix64_next(uint64_t *state);
/* uniform in [0, 1) with 53 bits: (x >> 11) * 2^-53 */
double ms_splitmix64_unit(uint64_t x);

#endif
