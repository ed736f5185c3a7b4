/* wkv7.c: the WKV-7 recurrence (MODEL.md 2) over a whole sequence, forward
 * and backward, for training from PyTorch through ctypes.
 *
 * Per batch row b and head h, with S (N,N) indexed [value i][key j]:
 *     sa_i   = Σ_j (-kk_j) S[i][j]                      (old row)
 *     S[i][j] = S[i][j]·w_j + v_i·k_j + sa_i·(kk_j·a_j)
 *     y_i    = Σ_j S[i][j]·r_j                           (new row)
 * The Self-State Encoder read e = S_t·q (MODEL.md 3.1) is the same read with
 * q in place of r, so scripts/wkv_ext/__init__.py runs this kernel a second
 * time on the SSE heads with r := q (q_t depends on y_t through the layer, so
 * it cannot be an input of the same call).
 *
 * The backward runs backwards in time from dL/dS_T.  It needs S_{t-1} and
 * S_t: the forward stores the state every WKV_CK steps and the backward
 * recomputes each interval.  Work is split over (b, h) with OpenMP; every
 * (b, h) is computed by one thread in a fixed order, so results do not depend
 * on the thread count.  Buffers are contiguous, row-major, owned by the
 * caller.  It is not an inference kernel (core/ has that) and knows nothing of
 * the layers around it.  Built by scripts/wkv_ext/__init__.py into
 * build/wkv_ext.so (gcc -O2 -fopenmp -shared -fPIC).
 */
#include <stdlib.h>
#include <string.h>

#define WKV_CK 16      /* checkpoint interval, steps */
#define WKV_NMAX 256   /* largest head size (stack arrays) */

int wkv7_ck_interval(void) { return WKV_CK; }

#define REAL float
#define SUF f32
#include "wkv7_impl.h"
#undef REAL
#undef SUF

#define REAL double
#define SUF f64
#include "wkv7_impl.h"
#undef REAL
#undef SUF
