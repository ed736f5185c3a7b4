/* compare.c: state comparison, KL divergence and checksums (see compare.h). */
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void cmp_target(const tgt *t, const float *A, const float *B, cmp_stats *st)
{
    memset(st, 0, sizeof *st);
    size_t k = 0;
    for (size_t r = 0; r < t->count; r++) {
        const float *a = A + t->off + r * t->stride, *b = B + t->off + r * t->stride;
        for (size_t j = 0; j < t->len; j++, k++) {
            double x = a[j], y = b[j], d = y - x;
            st->sq_a += x * x;
            st->sq_b += y * y;
            st->sq_d += d * d;
            st->dot += x * y;
            /* != catches NaN too: a NaN difference is the largest */
            if (fabs(d) > st->max_d || (d != d && st->max_d == st->max_d)) {
                st->max_d = d != d ? NAN : fabs(d);
                st->max_at = k;
            }
        }
    }
    st->n = k;
}

double cmp_cos(const cmp_stats *st)
{
    if (st->sq_a == 0 || st->sq_b == 0) return NAN;
    double c = st->dot / (sqrt(st->sq_a) * sqrt(st->sq_b));
    return c > 1 ? 1 : c < -1 ? -1 : c;
}

static double cmp_lse(const float *l, int n)
{
    double m = -INFINITY;
    for (int i = 0; i < n; i++)
        if (l[i] > m) m = l[i];
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)l[i] - m);
    return m + log(s);
}

double cmp_kl(const float *la, const float *lb, int n)
{
    double za = cmp_lse(la, n), zb = cmp_lse(lb, n), kl = 0;
    for (int i = 0; i < n; i++) {
        double lpa = (double)la[i] - za, lpb = (double)lb[i] - zb, pa = exp(lpa), d = lpb - lpa;
        /* p_a (e^d - 1 - d) >= 0; for d > 1 as p_b - p_a (1 + d), where e^d
         * would overflow and p_b > e/2 · p_a (1 + d) leaves no cancellation */
        kl += d > 1 ? exp(lpb) - pa * (1 + d) : pa * (expm1(d) - d);
    }
    return kl;
}

const char *cmp_where(const ms_config *c, const tgt *t, size_t k, char *buf, size_t cap)
{
    size_t off = t->off + (k / t->len) * t->stride + k % t->len;   /* offset in the flat state */
    size_t ll = ms_state_layer_len(c), C = (size_t)c->n_embd, N = (size_t)c->head_size;
    size_t l = off / ll, o = off % ll;
    if (o < C) snprintf(buf, cap, "L%zu.att_x[%zu]", l, o);
    else if (o - C < (size_t)c->n_head * N * N) {
        size_t s = o - C;
        snprintf(buf, cap, "L%zu.H%zu[%zu,%zu]", l, s / (N * N), s % (N * N) / N, s % N);
    } else snprintf(buf, cap, "L%zu.ffn_x[%zu]", l, o - C - (size_t)c->n_head * N * N);
    return buf;
}

static inline uint64_t cmp_mix(uint64_t h, uint64_t w)
{
    h ^= w * 0x9E3779B97F4A7C15ULL;
    h = (h << 27 | h >> 37) * 0xC2B2AE3D27D4EB4FULL;
    return h;
}

uint32_t cmp_hash(const float *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    size_t bytes = n * sizeof(float), i = 0;
    uint64_t h[4] = { 0x243F6A8885A308D3ULL, 0x13198A2E03707344ULL, 0xA4093822299F31D0ULL, 0x082EFA98EC4E6C89ULL };
    for (; i + 32 <= bytes; i += 32) {
        uint64_t w[4];
        memcpy(w, b + i, 32);
        h[0] = cmp_mix(h[0], w[0]);
        h[1] = cmp_mix(h[1], w[1]);
        h[2] = cmp_mix(h[2], w[2]);
        h[3] = cmp_mix(h[3], w[3]);
    }
    uint64_t tail = 0;
    memcpy(&tail, b + i, bytes - i < 8 ? bytes - i : 8);
    uint64_t r = cmp_mix(h[0], h[1]);
    r = cmp_mix(r, h[2]);
    r = cmp_mix(r, h[3]);
    r = cmp_mix(r, tail);
    for (i += 8; i < bytes; i += 8) {   /* the rest of a tail longer than 8 bytes */
        uint64_t w = 0;
        memcpy(&w, b + i, bytes - i < 8 ? bytes - i : 8);
        r = cmp_mix(r, w);
    }
    r = cmp_mix(r, (uint64_t)bytes);
    r ^= r >> 29;
    return (uint32_t)(r ^ (r >> 32));
}
