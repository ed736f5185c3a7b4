/* util.c: small shared pieces of core/: error messages, dtype names, the
 * FNV-1a checksum, softmax, and the sampler with its value-type RNG.
 *
 * The sampler's RNG is xoshiro256** kept entirely in ms_sampler.rng, so a
 * snapshot that copies the struct restores the exact random stream.
 */
#define _GNU_SOURCE
#include "ms.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ms_vseterr(ms_err *e, const char *fmt, va_list ap)
{
    if (!e) return;
    va_list ap2;
    va_copy(ap2, ap);
    char *full = NULL;
    int n = vasprintf(&full, fmt, ap);
    if (n < 0) {   /* no memory for the long form: the plain cut */
        vsnprintf(e->msg, sizeof e->msg, fmt, ap2);
    } else {
        ms_fit_line(e->msg, sizeof e->msg, full);
        free(full);
    }
    va_end(ap2);
}

void ms_seterr(ms_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ms_vseterr(e, fmt, ap);
    va_end(ap);
}

void ms_fit_line(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (cap == 0) return;
    if (n < cap) {
        memmove(dst, src, n + 1);
        return;
    }
    /* too long (a long path): keep the start and the end, where the reason
     * is, and say that the middle was left out */
    static const char mid[] = " [...] ";
    size_t keep = cap - 1 - (sizeof mid - 1);
    size_t head = keep * 2 / 5, tail = keep - head;
    /* never cut a UTF-8 sequence: back off continuation bytes */
    while (head > 0 && ((unsigned char)src[head] & 0xc0) == 0x80) head--;
    const char *t = src + n - tail;
    while (*t && ((unsigned char)*t & 0xc0) == 0x80) t++, tail--;
    char *tmp = malloc(cap);
    if (!tmp) {
        memmove(dst, src, cap - 1);
        dst[cap - 1] = 0;
        return;
    }
    memcpy(tmp, src, head);
    memcpy(tmp + head, mid, sizeof mid - 1);
    memcpy(tmp + head + sizeof mid - 1, t, tail);
    tmp[head + sizeof mid - 1 + tail] = 0;
    memcpy(dst, tmp, head + sizeof mid + tail);
    free(tmp);
}

const char *ms_dtype_name(ms_dtype t)
{
    switch (t) {
    case MS_F32: return "F32";
    case MS_F16: return "F16";
    case MS_BF16: return "BF16";
    }
    return "?";
}

size_t ms_dtype_size(ms_dtype t) { return t == MS_F32 ? 4 : 2; }

uint64_t ms_fnv1a(const void *data, size_t n, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int ms_argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

double ms_softmax(const float *logits, float *probs, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    if (probs)
        for (int i = 0; i < n; i++) probs[i] = (float)(exp((double)logits[i] - mx) / sum);
    return mx + log(sum);
}

/* ---- RNG: xoshiro256** seeded by splitmix64 ---- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t; s[3] = rotl(s[3], 45);
    return r;
}

double ms_rng_uniform(uint64_t rng[4]) { return (rng_next(rng) >> 11) * 0x1.0p-53; }

void ms_sampler_reseed(ms_sampler *s, uint64_t seed)
{
    s->seed = seed;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

void ms_sampler_init(ms_sampler *s, float temp, float top_p, int top_k, uint64_t seed)
{
    s->temp = temp;
    s->top_p = top_p;
    s->top_k = top_k;
    ms_sampler_reseed(s, seed);
}

typedef struct { float p; int id; } cand;

static int cand_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id - y->id;   /* ties by id: deterministic */
}

int ms_sample(ms_sampler *s, const float *logits, int n)
{
    if (s->temp <= 0) {   /* greedy: first maximum */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    cand *c = malloc(sizeof *c * (size_t)n);
    if (!c) return -1;
    float mx = -INFINITY;
    for (int i = 0; i < n; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        double e = exp(((double)logits[i] - mx) / s->temp);
        c[i].p = (float)e;
        c[i].id = i;
        sum += e;
    }
    int m = n;
    int filter = (s->top_k > 0 && s->top_k < n) || (s->top_p > 0 && s->top_p < 1);
    if (filter) {
        qsort(c, (size_t)n, sizeof *c, cand_desc);
        if (s->top_k > 0 && s->top_k < m) m = s->top_k;
        if (s->top_p > 0 && s->top_p < 1) {
            double acc = 0;
            int j = 0;
            while (j < m) {
                acc += c[j].p / sum;
                j++;
                if (acc >= s->top_p) break;
            }
            m = j;
        }
        sum = 0;
        for (int i = 0; i < m; i++) sum += c[i].p;
    }
    double u = ms_rng_uniform(s->rng) * sum, acc = 0;
    int pick = c[m - 1].id;
    for (int i = 0; i < m; i++) {
        acc += c[i].p;
        if (u < acc) { pick = c[i].id; break; }
    }
    free(c);
    return pick;
}
