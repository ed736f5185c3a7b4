#!/bin/sh
# soak.sh: a long run under --batch (DEBUGGER.md 4: determinism and flat
# memory over a long gen).  Generates TOKENS tokens on MODEL, a snapshot
# every SNAP tokens, a fork every FORK tokens (the run goes on on the new
# branch) and `replay --verify` of each fork from the origin.  Prints the
# runtime, the peak RSS (VmHWM from /proc), the RSS after the first and the
# last tenth of the run, how many replays matched at every step, and exits
# non-zero if a command failed or a replay did not match.
#
#   sh scripts/soak.sh [TOKENS [SNAP [FORK [MODEL]]]]   # defaults: 100000 1000 10000 the tiny model
#
# Not part of `make test` (minutes); tests/test_faults.sh runs a short one.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
N=${1:-100000}
SNAP=${2:-1000}
FORK=${3:-10000}
M=${4:-tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin}
[ -x "$MS" ] || { echo "soak: $MS is not built (make)"; exit 1; }
[ $((FORK % SNAP)) = 0 ] || { echo "soak: FORK ($FORK) must be a multiple of SNAP ($SNAP)"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-soak.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# the script: a prompt, then gen SNAP / snap, and at every FORK a fork and its replay
{
    echo "feed In the beginning"
    i=0 forks=0
    while [ $i -lt "$N" ]; do
        i=$((i + SNAP))
        echo "gen $SNAP"
        echo "snap s$i"
        if [ $((i % FORK)) = 0 ]; then echo "fork f$i"; echo "replay --verify"; fi
    done
    echo "snaps"
} >"$T/soak.ms"
nforks=$((N / FORK))
"$MS" "$M" --batch -x "$T/soak.ms" >"$T/out" 2>"$T/err" &
pid=$!
t0=$(date +%s.%N)
rss_first="" rss_last="" hwm=0
# poll /proc while it runs: VmHWM is the kernel's own peak, the samples show whether memory stays flat
while kill -0 $pid 2>/dev/null; do
    if [ -r /proc/$pid/status ]; then
        h=$(awk '/^VmHWM:/ {print $2}' /proc/$pid/status 2>/dev/null)
        r=$(awk '/^VmRSS:/ {print $2}' /proc/$pid/status 2>/dev/null)
        [ -n "$h" ] && hwm=$h
        if [ -n "$r" ]; then
            done_snaps=$(grep -a -c '^snapshot s' "$T/out" 2>/dev/null)
            [ -z "$rss_first" ] && [ "$done_snaps" -ge $((N / SNAP / 10)) ] && rss_first="$r kB after $done_snaps snapshots"
            rss_last="$r kB after $done_snaps snapshots"
        fi
    fi
    sleep 0.2
done
wait $pid
rc=$?
t1=$(date +%s.%N)
secs=$(awk "BEGIN {printf \"%.1f\", $t1 - $t0}")
ok=$(grep -a -c 'every step matches its recorded checksums' "$T/out")
snaps=$(grep -a -c '^snapshot s' "$T/out")
echo "soak: $N tokens on $(basename "$M"), a snapshot every $SNAP ($snaps taken), a fork every $FORK: exit $rc in ${secs}s"
echo "soak: peak RSS (VmHWM) $hwm kB; RSS $rss_first, $rss_last"
echo "soak: replay --verify of $nforks forks: $ok matched at every step"
grep -a 'replayed' "$T/out" | sed 's/^/soak:   /' | cut -c1-160
[ -s "$T/err" ] && sed 's/^/soak: stderr: /' "$T/err" | head -5
[ $rc = 0 ] && [ "$ok" = "$nforks" ] && [ "$snaps" = $((N / SNAP)) ]
