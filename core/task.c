/* task.c: the state-tracking tasks (see task.h). */
#include "task.h"
#include "grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ms_task_free(ms_task *t)
{
    if (t->words)
        for (int i = 0; i < t->K; i++) free(t->words[i]);
    free(t->words);
    free(t->table);
    memset(t, 0, sizeof *t);
}

/* the next permutation in lexicographic order; 0 after the last */
static int next_perm(int *p, int k)
{
    int i = k - 2;
    while (i >= 0 && p[i] > p[i + 1]) i--;
    if (i < 0) return 0;
    int j = k - 1;
    while (p[j] < p[i]) j--;
    int tmp = p[i]; p[i] = p[j]; p[j] = tmp;
    for (int a = i + 1, b = k - 1; a < b; a++, b--) { tmp = p[a]; p[a] = p[b]; p[b] = tmp; }
    return 1;
}

static int perm_task(ms_task *t, int k)
{
    int K = 1;
    for (int i = 2; i <= k; i++) K *= i;
    int *perms = malloc(sizeof(int) * (size_t)K * k);
    t->words = calloc((size_t)K, sizeof(char *));
    t->table = malloc(sizeof(int) * (size_t)K * K);
    t->K = K;
    if (!perms || !t->words || !t->table) { free(perms); return -1; }
    int p[8];
    for (int i = 0; i < k; i++) p[i] = i;
    for (int n = 0; n < K; n++) {
        memcpy(perms + n * k, p, sizeof(int) * (size_t)k);
        char w[9];
        for (int i = 0; i < k; i++) w[i] = (char)('1' + p[i]);
        w[k] = 0;
        if (!(t->words[n] = strdup(w))) { free(perms); return -1; }
        next_perm(p, k);
    }
    /* index of a permutation: its rank among the lexicographic list */
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) {
            int q[8];   /* (a o b)(i) = a(b(i)) */
            for (int i = 0; i < k; i++) q[i] = perms[a * k + perms[b * k + i]];
            int idx = 0;
            for (int n = 0; n < K; n++)
                if (!memcmp(perms + n * k, q, sizeof(int) * (size_t)k)) { idx = n; break; }
            t->table[a * K + b] = idx;
        }
    t->start = 0;   /* the identity is first */
    free(perms);
    return 0;
}

int ms_task_init(ms_task *t, const char *name, ms_err *err)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    int rc;
    if (!strcmp(name, "parity")) {
        t->K = 2;
        rc = (t->words = calloc(2, sizeof(char *))) && (t->words[0] = strdup("0")) && (t->words[1] = strdup("1"))
                 ? 0 : -1;
    } else if (!strcmp(name, "s3") || !strcmp(name, "s5")) {
        rc = perm_task(t, name[1] - '0');
    } else if (!strncmp(name, "modcount-", 9)) {
        char *end;
        long K = strtol(name + 9, &end, 10);
        if (name[9] < '0' || name[9] > '9' || *end || K < 2 || K > MS_TASK_MAX_K) {
            ms_seterr(err, "task '%.20s': modcount-K needs an integer K from 2 to %d (e.g. modcount-5)", name,
                      MS_TASK_MAX_K);
            return -1;
        }
        t->K = (int)K;
        rc = (t->words = calloc((size_t)K, sizeof(char *))) ? 0 : -1;
        for (int i = 0; !rc && i < K; i++) {
            char w[16];
            snprintf(w, sizeof w, "%d", i);
            if (!(t->words[i] = strdup(w))) rc = -1;
        }
    } else {
        ms_seterr(err, "unknown task '%.20s' (valid: parity, s3, s5, modcount-K with K >= 2, e.g. modcount-5)", name);
        return -1;
    }
    if (rc) {
        ms_task_free(t);
        ms_seterr(err, "task %s: out of memory", name);
        return -1;
    }
    return 0;
}

void ms_task_sample(const ms_task *t, int n, int len, uint64_t seed, int *x, int *y)
{
    uint64_t st = seed;
    const uint64_t K = (uint64_t)t->K;
    for (int s = 0; s < n; s++) {
        int p = t->start;
        for (int i = 0; i < len; i++) {
            int v = (int)(((ms_splitmix64_next(&st) >> 32) * K) >> 32);
            p = t->table ? t->table[p * t->K + v] : (int)(((uint64_t)p + (uint64_t)v) % K);
            x[(size_t)s * len + i] = v;
            y[(size_t)s * len + i] = p;
        }
    }
}
