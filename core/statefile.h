/* statefile.h: state files (MODEL.md 5.3), and imports of RWKV-Runner /
 * RWKV-PEFT `time_state` files.
 *
 * What it is: the on-disk form of one point of a run: the flat state of
 * MODEL.md 4 as per-layer fp32 tensors, the logits that go with it (when
 * there are any), and the metadata that says how it was produced (tokens,
 * position, branch, edits, sampler and RNG) and for which model (a shape
 * summary and the weights hash).  Files are safetensors written atomically
 * (ms_st_write); a checksum (FNV-1a 64 over the tensor data in file order)
 * guards the data.
 *
 * File layout, in this order:
 *   blocks.i.att.x_prev      (C)      fp32   for i = 0..L-1, each layer's
 *   blocks.i.att.time_state  (H,N,N)  fp32   three tensors together
 *   blocks.i.ffn.x_prev      (C)      fp32
 *   logits                   (V)      fp32   only when the point has logits
 *                                            (an extension of 5.3: without it
 *                                            a reopened state could not
 *                                            sample its next token)
 *   origin.blocks.i.…        the same three per layer, and origin.logits,
 *                                      only when the history starts from a
 *                                      state other than zero (an import, or
 *                                      a file opened without its history)
 *   edits.J                  (n)      fp32   the values edit J of `edits`
 *                                            wrote (patch), J = 0, 1, ...
 * __metadata__ (all strings): format "metastate-state", format_version "1",
 * model (shape summary), weights_hash (16 hex digits), tokens (JSON list of
 * ids), position, branch, edits (JSON list), sampler (JSON object: temp,
 * top_p, top_k, seed as a decimal string, rng as 4 hex strings), checksum
 * (16 hex digits), and the history that makes the file replayable:
 *   origin           "zero" or "state" (then the origin.* tensors exist)
 *   origin_position  the position of the origin (decimal)
 *   origin_sampler   the sampler at the origin (the form of `sampler`)
 *   sampled          JSON list of [from, to) ranges of indices into tokens:
 *                    the tokens the sampler chose (replay re-draws them so
 *                    the RNG comes out the same)
 *   checks           16 hex digits per event of the history (tokens and
 *                    edits in replay order): what replay --verify compares
 * The checksum covers the tensor data, not the metadata: editing `tokens`
 * gives a file that opens, and `replay --verify` names the step where it no
 * longer reproduces its recorded checks.  What `edits` holds is the
 * session's business (repl/session.h); here it is only a JSON list.
 *
 * What it is not: it knows nothing of sessions or snapshots; it never prints.
 */
#ifndef MS_STATEFILE_H
#define MS_STATEFILE_H

#include "ms.h"

#define MS_STATEFILE_FORMAT "metastate-state"
#define MS_STATEFILE_VERSION "1"

/* Everything in a state file besides the state itself.  On save the caller
 * fills it (pointers are borrowed); on load ms_statefile_load fills it with
 * malloc'd memory that ms_statefile_info_free releases. */
typedef struct {
    int *tokens;            /* ids that produced the state, n_tokens of them */
    int n_tokens;
    int64_t position;       /* tokens fed since the zero state (or the import) */
    char *branch;           /* branch name; NULL on save means "main" */
    char *edits_json;       /* JSON list as text; NULL on save means "[]" */
    ms_sampler sampler;     /* settings and RNG words */
    int has_sampler;        /* load: 0 for imports (sampler left zeroed) */
    float *logits;          /* (V) or NULL when the point has none */
    /* filled by load only: */
    int imported;           /* 1: RWKV-Runner/PEFT time_state file; att_x and
                               ffn_x were set to zero, no metadata was read */
    int forced;             /* 1: model identity differed and MS_SF_FORCE
                               let it through (logits were then dropped) */
    char model[96];         /* shape summary stored in the file ("" for imports) */
    uint64_t weights_hash;  /* stored in the file (0 for imports) */
    /* the history (see the top): on save all optional (NULL/0 = none, a
     * zero origin); on load filled when has_history */
    int has_history;        /* load: 1 if the file has the history keys;
                               0 for files written without them and imports */
    int origin_state;       /* 0: the history starts from the zero state;
                               1: from origin / origin_logits below */
    float *origin;          /* (ms_state_len) when origin_state */
    float *origin_logits;   /* (V) or NULL */
    int64_t origin_position;
    ms_sampler origin_sampler;   /* on save: used only if has_origin_sampler */
    int has_origin_sampler;
    unsigned char *sampled; /* (n_tokens) 1 where the sampler chose the token; NULL = none */
    uint64_t *checks;       /* (n_checks) one per event, in replay order */
    long n_checks;
    float **blobs;          /* (n_blobs) payloads edits.J of blob_len[J] floats */
    size_t *blob_len;
    int n_blobs;
} ms_statefile_info;

/* Load flags. */
#define MS_SF_FORCE 1   /* accept a file from a model with another weights
                           hash or shape summary, as long as the state layout
                           (L, C, H, N) is the same; its logits are dropped */

/* The model's shape summary, e.g. "L12 C768 H12 N64 A768 V65536 n3072 Hs0",
 * into buf (cap ≥ 96 is always enough). */
void ms_statefile_model_summary(const ms_model *m, char *buf, size_t cap);

/* Write the state (ms_state_len floats) and info to path, atomically.
 * info may be NULL (no tokens, position 0, branch main, no logits, a
 * default sampler).  Returns 0, or -1 with err naming the file and the
 * failing call. */
int ms_statefile_save(const char *path, const ms_model *m, const float *state,
                      const ms_statefile_info *info, ms_err *err);

/* Read a state file for model m into state_out (ms_state_len floats, written
 * only on success) and info_out (always initialised; free it with
 * ms_statefile_info_free, also after a failure).  Native files are checked
 * for format and version, every tensor's name, dtype and shape, the
 * checksum, token ids in the vocabulary, and the model identity (refused
 * unless MS_SF_FORCE; a different state layout is always refused).  A file
 * without metastate-state metadata that holds blocks.i.att.time_state
 * (H,N,N) for every layer (F32, F16 or BF16) is imported: S from the file,
 * att_x and ffn_x zero, position 0, no tokens, no logits, info->imported = 1.
 * Returns 0, or -1 with one line in err that says what did not match. */
int ms_statefile_load(const char *path, const ms_model *m, float *state_out,
                      ms_statefile_info *info_out, int flags, ms_err *err);

void ms_statefile_info_free(ms_statefile_info *info);

/* A sampler as the JSON object of the `sampler` key (malloc'd text; NULL
 * for no memory), and back: 0, or -1 with err naming where (a file) and key
 * and what is wrong.  Shared with the session, which writes samplers into
 * `edits`. */
char *ms_statefile_sampler_json(const ms_sampler *s);
int ms_statefile_sampler_parse(const char *where, const char *key, const char *txt, ms_sampler *s, ms_err *err);

#endif
