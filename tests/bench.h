/* bench.h: what the benchmarks share: a monotonic clock and the median of
 * several runs.  (Benchmarks print figures; they never pass or fail.) */
#ifndef MS_BENCH_H
#define MS_BENCH_H

#include <stdlib.h>
#include <time.h>

/* seconds on the monotonic clock */
static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the median of v[0..n) (sorts v) */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return v[n / 2];
}

#endif
