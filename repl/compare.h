/* compare.h: the numbers behind `diff`, `sweep patch` and `replay --verify`:
 * norms, cosine and largest difference of two states over a target, the KL
 * divergence of two next-token distributions, and the checksum recorded
 * after every event of a branch.
 *
 * What it is: pure functions of their inputs, every sum in double.  What it
 * is not: it knows no session and prints nothing.
 */
#ifndef MS_COMPARE_H
#define MS_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "target.h"

typedef struct {
    double sq_a, sq_b, sq_d;   /* Σa², Σb², Σ(b-a)² */
    double dot;                /* Σab */
    double max_d;              /* max |b-a| (0 if all equal) */
    size_t max_at;             /* its element index in the target's order */
    size_t n;                  /* elements compared */
} cmp_stats;

/* Compare states A and B over target t (the same layout). */
void cmp_target(const tgt *t, const float *A, const float *B, cmp_stats *st);

/* cosine similarity Σab / (‖a‖‖b‖); NAN when either norm is 0 */
double cmp_cos(const cmp_stats *st);

/* KL(P_a ‖ P_b) in nats of the distributions softmax(la), softmax(lb) over
 * n logits.  In double, as Σ p_a (e^d − 1 − d) with d = log p_b − log p_a,
 * a sum of terms that are each ≥ 0 (it equals Σ p_a log(p_a/p_b) because
 * both distributions sum to 1), so the result is ≥ 0 and exactly 0 for
 * equal logits. */
double cmp_kl(const float *la, const float *lb, int n);

/* The element of t at target index k as "L3.H1[4,7]" (or "L3.att_x[5]"). */
const char *cmp_where(const ms_config *c, const tgt *t, size_t k, char *buf, size_t cap);

/* A 32-bit checksum of n floats' bits: four 64-bit multiply-xorshift lanes
 * over 8-byte words, folded.  Not cryptographic; any changed bit changes it
 * with probability 1 − 2^-32, and a diverged run keeps differing, so a
 * replay that departs from its recording is caught at the step it departs
 * (or, with odds 2^-32 per step, one step later).  ~10× faster than FNV-1a,
 * which matters because it runs after every token. */
uint32_t cmp_hash(const float *p, size_t n);

#endif
