#!/bin/sh
# bench.sh: every benchmark (make bench).  Prints tables; never fails on a
# slow machine.  Figures are medians of several runs, with the machine's
# measured bandwidth where it matters (BENCH.md).
cd "$(dirname "$0")/.."
B=${B:-build}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d)"
echo
$B/tests/bench_decode tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin tests/fixtures/tiny-rwkv-7v0-834K-FP16.bin
echo
$B/tests/bench_prefill
for f in scripts/bench_*.sh; do
    [ -f "$f" ] || continue
    echo
    sh "$f"
done
exit 0
