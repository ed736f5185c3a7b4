/* target.h: state targets, the names of the parts of a state that commands
 * read, edit, compare and export (DEBUGGER.md 3), and the arithmetic done on
 * them.
 *
 *   *               the whole state: every layer's att_x, S and ffn_x
 *   L3.*            all of layer 3: att_x, every head's S, ffn_x
 *   L3.H1           head 1 of layer 3: the N×N matrix S[value i][key j]
 *   L3.H1[i,j]      one entry;  L3.H1[i,:] row i;  L3.H1[:,j] column j
 *   L3.att_x        the TimeMix token-shift vector (C); L3.att_x[k] one entry
 *   L3.ffn_x        the Meta-State layer's token-shift vector (C); [k] too
 * Indices are 0-based; 'L' and 'H' may be lower case.
 *
 * What it is: every target is one strided block of the flat state of
 * MODEL.md 4: `count` runs of `len` consecutive floats, the runs `stride`
 * floats apart, starting at `off`.  So reading, writing, editing and
 * comparing are one loop for every kind of target.  A target also carries
 * the shape it has as an array (what export writes): (N, N) for a head,
 * (N) for a row or a column, () for one entry, (C) for a vector, and the
 * flat length in state order for L.* and * (att_x, S of head 0, 1, ...,
 * ffn_x per layer).
 *
 * What it is not: it keeps no state and knows no session; it never prints.
 */
#ifndef MS_TARGET_H
#define MS_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "ms.h"

typedef enum { TGT_ALL, TGT_LAYER, TGT_HEAD, TGT_ATT_X, TGT_FFN_X } tgt_kind;

typedef struct {
    tgt_kind kind;
    int layer, head;       /* -1 where the name has none */
    int row, col;          /* HEAD: index or -1 for ':' (both -1: the matrix);
                              ATT_X/FFN_X: row = the index or -1 (the vector) */
    size_t off, len, count, stride;   /* the block in the flat state */
    int ndim;              /* 0, 1 or 2 */
    size_t shape[2];
} tgt;

/* Parse text for model config c.  Returns 0, or -1 with one line in err that
 * says what is valid (the grammar, the layer or head range, the index range,
 * the known part names and the nearest one to a typo). */
int tgt_parse(const ms_config *c, const char *text, tgt *t, char *err, size_t cap);

/* The canonical text of t ("L3.H1[:,5]"). */
const char *tgt_name(const tgt *t, char *buf, size_t cap);

/* The target for one part: a head, a layer's att_x or ffn_x, a layer, all. */
tgt tgt_make(const ms_config *c, tgt_kind kind, int layer, int head);

/* Number of floats in the target (len × count). */
static inline size_t tgt_size(const tgt *t) { return t->len * t->count; }

/* The parts a comparison shows one row for: * gives every layer's att_x,
 * heads and ffn_x; L.* gives that layer's; any other target gives itself.
 * Writes up to max parts to out and returns how many there are. */
int tgt_parts(const ms_config *c, const tgt *t, tgt *out, int max);

/* Copy the target's floats out of a state (in row-major order of its
 * shape), or into one. */
void tgt_get(const tgt *t, const float *state, float *out);
void tgt_put(const tgt *t, const float *in, float *state);

/* In-place edits of a state's target.  The noise is Gaussian (Box-Muller
 * on the xoshiro RNG of ms.h, seeded by seed, computed in double, added in
 * float), so the same seed gives the same bits. */
void tgt_fill(const tgt *t, float *state, float v);
void tgt_scale(const tgt *t, float *state, float f);
void tgt_noise(const tgt *t, float *state, double sigma, uint64_t seed);

/* Largest |x| in the target (0 for none), for overflow checks. */
double tgt_max_abs(const tgt *t, const float *state);

/* Tab completion: the k-th (0-based) target name starting with text, for
 * model c, or NULL past the last.  Offers "*", "L0." ..., and inside a
 * layer "L3.*", "L3.H0" ..., "L3.att_x", "L3.ffn_x". */
const char *tgt_complete(const ms_config *c, const char *text, int k, char *buf, size_t cap);

/* The grammar in one line, for messages and help. */
#define TGT_GRAMMAR "targets: *, L<layer>.*, L<layer>.H<head>, L<layer>.H<head>[i,j] (i or j may be ':'), " \
                    "L<layer>.att_x, L<layer>.ffn_x (with [k] for one entry)"

#endif
