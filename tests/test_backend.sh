#!/bin/sh
# test_backend.sh: `metastate --backend cuda` against `--backend cpu`
# (scripts/check_backend.py: the state, logits, the SSE view's numbers,
# score, trace, batched task, determinism with replay --verify, and a
# growth, each with its worst difference).
#   - with $B/libmscuda_emu.so: the CUDA source run by the CPU emulator, so
#     the whole path (dlopen, upload, device steps, traces for the view,
#     batched task) is checked on every machine with a C++ compiler;
#   - with $B/libmscuda.so (built where nvcc is): on a GPU machine the same
#     checks on the device; without a GPU, that the program says so in one
#     line and runs on the CPU.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
PY=${PYTHON:-/usr/bin/python3}
B=${B:-build}
rc=0
# An ASan build (make test-debug) runs the emulator ~7x slower: a few tokens per check there
# (the host side, which ASan watches, takes the same paths).
q=""
[ "$B" = build ] || q=--quick
if [ -f "$B/libmscuda_emu.so" ]; then
    echo "-- the CUDA backend on the CPU emulator ($B/libmscuda_emu.so)${q:+, a few tokens per check}"
    "$PY" scripts/check_backend.py --metastate "$MS" --lib "$B/libmscuda_emu.so" $q || rc=1
else
    echo "-- skipped the emulator: no $B/libmscuda_emu.so (needs a C++ compiler)"
fi
if [ -f "$B/libmscuda.so" ]; then
    echo "-- the CUDA backend ($B/libmscuda.so)"
    "$PY" scripts/check_backend.py --metastate "$MS" --lib "$B/libmscuda.so"
    r=$?
    if [ "$r" = 77 ]; then
        # no GPU: one line on stderr, then the CPU (info says cpu)
        t=$(mktemp -d "${TMPDIR:-/tmp}/ms-backend.XXXXXX") || exit 1
        METASTATE_CUDA_LIB="$B/libmscuda.so" "$MS" models/kjv.safetensors --batch --backend cuda -c info \
            >"$t/out" 2>"$t/err"
        err=$(cat "$t/err") be=$(grep '^backend' "$t/out")
        rm -rf "$t"
        n=$(printf '%s\n' "$err" | grep -c .)
        case "$be" in
            "backend     cpu,"*) [ "$n" = 1 ] && echo "  ok   no GPU: one line ($err), then: $be" ||
                { echo "  FAIL no GPU: expected one line on stderr, got $n: $err"; rc=1; } ;;
            *) echo "  FAIL no GPU but info says: $be"; rc=1 ;;
        esac
    elif [ "$r" != 0 ]; then
        rc=1
    fi
else
    echo "-- no $B/libmscuda.so (built only where nvcc is installed)"
fi
# a library that is not there: one line, the CPU
err=$(METASTATE_CUDA_LIB=/nonexistent/libmscuda.so "$MS" models/kjv.safetensors --batch --backend cuda -c 'feed a' 2>&1 >/dev/null)
case "$err" in
    "metastate: --backend cuda: METASTATE_CUDA_LIB=/nonexistent/libmscuda.so: no such file; running on the CPU")
        echo "  ok   missing library: $err" ;;
    *) echo "  FAIL missing library: got '$err'"; rc=1 ;;
esac
exit $rc
