/* clang_compat.h: force-included (-include) when the fuzz build compiles
 * core/ with clang 14, whose __builtin_cpu_supports() does not know "f16c"
 * (core/kernels.c asks for it; gcc knows it).  The three features kernels.c
 * asks about are answered here, f16c from CPUID.  Nothing else changes.
 */
#ifndef MS_FUZZ_CLANG_COMPAT_H
#define MS_FUZZ_CLANG_COMPAT_H
#if defined(__clang__) && defined(__x86_64__)
#include <cpuid.h>   /* a compiler header: no libc header may come before the
                        file's own _GNU_SOURCE */

static inline int fuzz_cpu_avx2(void) { return __builtin_cpu_supports("avx2"); }
static inline int fuzz_cpu_fma(void) { return __builtin_cpu_supports("fma"); }
static inline int fuzz_cpu_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
static inline int fuzz_cpu_has(const char *f)
{
    if (f[0] == 'a') return fuzz_cpu_avx2();   /* "avx2" */
    if (f[0] == 'f' && f[1] == 'm') return fuzz_cpu_fma();
    if (f[0] == 'f' && f[1] == '1') return fuzz_cpu_f16c();
    return 0;
}
#define __builtin_cpu_supports(f) fuzz_cpu_has(f)
#endif
#endif
