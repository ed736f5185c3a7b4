/* check.h: the few helpers every C test shares: report one comparison with
 * its worst difference, count failures, exit status. */
#ifndef MS_CHECK_H
#define MS_CHECK_H

#include <math.h>
#include <stdio.h>

static int check_failures, check_count;

/* Record one named check.  ok: passed; detail: what was compared and the
 * worst difference, printed either way. */
#define CHECK(ok, ...) do { \
        check_count++; \
        int ok_ = (ok); \
        if (!ok_) check_failures++; \
        printf("%s ", ok_ ? "  ok  " : "  FAIL"); \
        printf(__VA_ARGS__); \
        printf("\n"); \
        fflush(stdout); \
    } while (0)

static inline int check_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

/* worst |a-b| and worst |a-b| / (atol + rtol*|b|) over n values; NaN counts as infinite */
typedef struct { double max_abs, max_ratio, max_rel_std; } diffstat;

static inline diffstat diff_arrays(const float *a, const float *b, size_t n, double atol, double rtol)
{
    diffstat d = {0, 0, 0};
    double mean = 0, var = 0;
    for (size_t i = 0; i < n; i++) mean += b[i];
    mean /= n ? (double)n : 1;
    for (size_t i = 0; i < n; i++) var += (b[i] - mean) * (b[i] - mean);
    double sd = n ? sqrt(var / n) : 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (e != e) e = INFINITY;
        if (e > d.max_abs) d.max_abs = e;
        double r = e / (atol + rtol * fabs((double)b[i]));
        if (r > d.max_ratio) d.max_ratio = r;
    }
    d.max_rel_std = sd > 0 ? d.max_abs / sd : d.max_abs;
    return d;
}

#endif
