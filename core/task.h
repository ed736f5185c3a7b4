/* task.h: the state-tracking tasks of MODEL.md 7 as seeded generators.
 *
 * What it is: each task's vocabulary (the same words, in the same order, as
 * scripts/tasks.py's Task.vocab), its composition rule, and a generator of
 * input sequences with their targets that is bit-for-bit the one in
 * scripts/tasks.py's sample_splitmix(): one splitmix64 stream from the
 * seed, drawn sequence by sequence, position by position, each input
 * `(draw >> 32) * K >> 32` -- uniform over the K tokens, the distribution
 * the trainer's torch generator uses too.
 *
 *   parity       tokens 0 1; target after x_t: the running parity
 *   s3, s5       permutations of 1..k in one-line notation, in lexicographic
 *                order ("123", "132", ...); target P_t = P_{t-1} o x_t, i.e.
 *                P_t(i) = P_{t-1}(x_t(i)), P_0 the identity
 *   modcount-K   tokens 0..K-1 (2 <= K <= 65536); target: running sum mod K
 *
 * What it is not: it runs no model (the `task` command in repl/cmd_model.c
 * does), and never prints.
 */
#ifndef MS_TASK_H
#define MS_TASK_H

#include "ms.h"

#define MS_TASK_MAX_K 65536

typedef struct {
    char name[32];
    int K;            /* tokens in the task's vocabulary */
    char **words;     /* (K) their strings, tasks.py's order */
    int *table;       /* (K, K) table[p*K + x] = p o x, permutation tasks only; NULL: sum mod K */
    int start;        /* P_0's index */
} ms_task;

/* Set up task `name` (parity, s3, s5, modcount-K).  0, or -1 with err
 * naming the valid tasks.  Free with ms_task_free. */
int ms_task_init(ms_task *t, const char *name, ms_err *err);
void ms_task_free(ms_task *t);

/* n sequences of len inputs into x[n*len] and their targets into y[n*len]
 * (task indices 0..K-1, sequence-major). */
void ms_task_sample(const ms_task *t, int n, int len, uint64_t seed, int *x, int *y);

#endif
