#!/bin/sh
# bench_debugger.sh: the state debugger's costs (called by scripts/bench.sh):
# snap, restore and fork of a 0.1B-shape point, goto against the checkpoint
# interval K, resident memory over a 100,000-token gen with a snapshot every
# 1,000 tokens; each part in a process of its own.  BENCH_DEBUGGER_ARGS=--quick
# for a short run.  Never fails.
cd "$(dirname "$0")/.."
B=${B:-build}
TINY=tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
echo "== state debugger (tests/bench_debugger.c), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for part in copies goto rss; do
    $B/tests/bench_debugger --part $part ${BENCH_DEBUGGER_ARGS:-} "$TINY" || true
done
exit 0
