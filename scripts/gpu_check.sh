#!/bin/sh
# gpu_check.sh: the one device run for the CUDA backend (issue #6).  On a
# machine with an NVIDIA GPU (H100/H200, sm_90) it builds, checks and times
# everything in about a minute (an H200, 2026-11-28: test_cuda 8 s, the
# sanitizers 23 s, test_backend 6 s, the benchmark 14 s):
#   1. the environment: nvidia-smi, nvcc, compilers, where libcublas is;
#   2. the build: `make cuda` into build/gpu/ when nvcc, a C compiler,
#      OpenBLAS and cJSON headers are all there, else the binaries carried in
#      build/gpu-carry/ (made beforehand on the dev machine by `make cuda-carry`);
#   3. test_cuda: every kernel against a double-precision reference, whole
#      models against the CPU over 256 tokens (F32: MODEL.md 8 tolerance;
#      BF16/F16: relative 1e-2), snapshot/restore/fork bit-exact, graph vs
#      direct vs PDL, batched vs one at a time, the trace; each line prints
#      its worst difference;
#   3b. tests/test_backend.sh: metastate --backend cuda against the CPU
#      (the metastate build/gpu-carry/ms holds, with its libraries);
#   4. bench_cuda: copy bandwidth, GEMV own vs cuBLAS, decode tok/s for the
#      0.1B and 1.5B shapes in BF16 (and 0.1B F32) against the copy bandwidth,
#      sweep throughput at B = 64 against B = 1;
#   5. compute-sanitizer memcheck, racecheck and synccheck over the kernel
#      tests (test_cuda --kernels), where the tool works (Firecracker machines).
# Logs: $OUT (the device tool's output folder) or build/gpu-check/: env.txt,
# build.log, test_cuda.log, bench_cuda.log, sanitizer.log, summary.txt.  The
# summary is printed last, so the tool's output tail holds it.
#
# How to call it (a session whose task is lent a GPU):
#   here:   make cuda-carry           # the fallback binaries and metastate, build/gpu-carry (~15 MB)
#   device: run(command="sh scripts/gpu_check.sh", carry=["build/gpu-carry"], timeout_s=540)
#   then:   record the card and the bench table in core/cuda/NOTES.md.
# Environment: QUICK=1 (24 tokens per model, 0.1B bench only), SKIP_TEST=1,
# SKIP_BENCH=1, SKIP_SANITIZER=1, SKIP_BUILD=1 (use build/gpu-carry), JOBS
# (make -j, default 16), TEST_TIMEOUT (s, default 300), BENCH_TIMEOUT (300),
# BENCH_ARGS (extra bench_cuda options), SAN_TOOLS (default "memcheck
# racecheck synccheck"), SAN_TIMEOUT (s per tool, default 120).
# It changes nothing on the card (no clocks, no resets): it only reads nvidia-smi.
set -u
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-build/gpu-check}
mkdir -p "$OUT"
JOBS=${JOBS:-16}
QUICK=${QUICK:-0}
t_start=$(date +%s)
note() { echo "$*" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"

# ---- 1. environment --------------------------------------------------------
{
    echo "date: $(date -u)"
    echo "host: $(uname -a)"
    echo "cpus: $(nproc)"
    nvidia-smi 2>&1 || echo "nvidia-smi: not available"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw \
        --format=csv 2>&1
    echo "nvcc: $(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || echo none)"
    (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>&1 | tail -2
    echo "cc: $(cc --version 2>&1 | head -1)"
    echo "make: $(make --version 2>&1 | head -1)"
    for h in cblas.h cjson/cJSON.h; do
        printf '#include <%s>\n' "$h" | cc -E - >/dev/null 2>&1 && echo "header $h: yes" || echo "header $h: no"
    done
    echo "libcublas.so.13:"
    ls /usr/local/cuda*/lib64/libcublas.so.13 /usr/local/cuda/targets/*/lib/libcublas.so.13 2>/dev/null
    find /usr/local /usr/lib /opt -name 'libcublas.so.13' 2>/dev/null | head -5
    echo "compute-sanitizer: $(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || echo none)"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
note "gpu_check: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"

# cuBLAS at run time: the toolkit's, or the one PyTorch's wheels bring
if ! ls /usr/local/cuda/lib64/libcublas.so.13 >/dev/null 2>&1; then
    lib=$(find /usr/local /usr/lib /opt -name 'libcublas.so.13' 2>/dev/null | head -1)
    if [ -n "$lib" ]; then
        LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
        export LD_LIBRARY_PATH
    fi
fi
export PATH="/usr/local/cuda/bin:$PATH"

# ---- 2. build ----------------------------------------------------------------
T=""
if [ "${SKIP_BUILD:-0}" != 1 ] && command -v nvcc >/dev/null 2>&1 && grep -q "cblas.h: yes" "$OUT/env.txt" && grep -q "cJSON.h: yes" "$OUT/env.txt"; then
    t0=$(date +%s)
    if make -j"$JOBS" B=build/gpu build/gpu/tests/test_cuda build/gpu/tests/bench_cuda >"$OUT/build.log" 2>&1; then
        T=build/gpu/tests
        note "build: make cuda on this machine, $(($(date +%s) - t0)) s"
    else
        note "build: make on this machine FAILED (tail of build.log below); trying the carried binaries"
        tail -15 "$OUT/build.log"
    fi
else
    echo "build: SKIP_BUILD=1, or nvcc or the OpenBLAS/cJSON headers missing here" >"$OUT/build.log"
fi
if [ -z "$T" ]; then
    if [ -x build/gpu-carry/test_cuda ] && [ -x build/gpu-carry/bench_cuda ]; then
        T=build/gpu-carry
        note "build: using the carried binaries in build/gpu-carry (built by make cuda-carry)"
    else
        note "build: nothing to run: no build here and no build/gpu-carry (run make cuda-carry and carry it)"
        exit 1
    fi
fi

# ---- 3. tests ---------------------------------------------------------------------
if [ "${SKIP_TEST:-0}" != 1 ]; then
    t0=$(date +%s)
    targs=""
    [ "$QUICK" = 1 ] && targs="--quick"
    MS_FIXTURES=tests/fixtures timeout "${TEST_TIMEOUT:-300}" "$T/test_cuda" $targs >"$OUT/test_cuda.log" 2>&1
    rc=$?
    cat "$OUT/test_cuda.log"
    note "test_cuda: exit $rc, $(tail -1 "$OUT/test_cuda.log"), $(($(date +%s) - t0)) s"
    grep "FAIL" "$OUT/test_cuda.log" | head -20 | tee -a "$OUT/summary.txt"
fi

# ---- 3b. metastate --backend cuda against the CPU (tests/test_backend.sh) --------------
if [ "${SKIP_TEST:-0}" != 1 ]; then
    t0=$(date +%s)
    if [ "$T" = build/gpu/tests ] && [ -x metastate ] && make -j"$JOBS" metastate build/libmscuda.so >>"$OUT/build.log" 2>&1; then
        msb=build ms=./metastate
    elif [ -x build/gpu-carry/ms/ms ]; then
        mkdir -p /tmp/mslib && tar xJf build/gpu-carry/ms/libs.tar.xz -C /tmp/mslib --strip-components=1
        msb=build/gpu-carry/ms ms=build/gpu-carry/ms/ms
    else
        msb=""
    fi
    if [ -n "$msb" ]; then
        B=$msb METASTATE=$ms PYTHON=${PYTHON:-python3} timeout "${TEST_TIMEOUT:-300}" sh tests/test_backend.sh \
            >"$OUT/test_backend.log" 2>&1
        rc=$?
        cat "$OUT/test_backend.log"
        note "test_backend: exit $rc, $(grep -c '^  ok' "$OUT/test_backend.log") ok, $(($(date +%s) - t0)) s"
        grep "FAIL" "$OUT/test_backend.log" | head -10 | tee -a "$OUT/summary.txt"
    else
        note "test_backend: skipped: no metastate here and none carried (make cuda-carry)"
    fi
fi

# ---- 4. benchmark -------------------------------------------------------------------
if [ "${SKIP_BENCH:-0}" != 1 ]; then
    t0=$(date +%s)
    bargs=""
    [ "$QUICK" = 1 ] && bargs="--quick --no-1.5b"
    # shellcheck disable=SC2086
    timeout "${BENCH_TIMEOUT:-300}" "$T/bench_cuda" $bargs ${BENCH_ARGS:-} >"$OUT/bench_cuda.log" 2>&1
    rc=$?
    cat "$OUT/bench_cuda.log"
    note "bench_cuda: exit $rc, $(($(date +%s) - t0)) s"
    grep -E "^(copy|gemv|C x|4C|vocab|0.1B|random|decode)" "$OUT/bench_cuda.log" >>"$OUT/summary.txt"
fi

# ---- 5. compute-sanitizer over the kernel tests ------------------------------------------
if [ "${SKIP_SANITIZER:-0}" != 1 ] && command -v compute-sanitizer >/dev/null 2>&1; then
    : >"$OUT/sanitizer.log"
    for tool in ${SAN_TOOLS:-memcheck racecheck synccheck}; do
        t0=$(date +%s)
        MS_FIXTURES=tests/fixtures timeout "${SAN_TIMEOUT:-120}" compute-sanitizer --tool "$tool" --error-exitcode 9 \
            "$T/test_cuda" --kernels >>"$OUT/sanitizer.log" 2>&1
        rc=$?
        case $rc in 0) what=clean ;; 124) what="timed out" ;; *) what="ERRORS: see sanitizer.log" ;; esac
        note "compute-sanitizer $tool: exit $rc ($what), $(($(date +%s) - t0)) s"
    done
    grep -E "ERROR SUMMARY|Invalid|Race|Barrier" "$OUT/sanitizer.log" | sort | uniq -c | head -10 | tee -a "$OUT/summary.txt"
fi

nvidia-smi --query-gpu=clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv,noheader >>"$OUT/env.txt" 2>&1
note "gpu_check: done in $(($(date +%s) - t_start)) s"
echo
echo "==== summary ($OUT/summary.txt) ===="
cat "$OUT/summary.txt"
