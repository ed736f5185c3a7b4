#!/bin/sh
# bench_view.sh: the full-screen view's costs (called by scripts/bench.sh).
#
# 1. tokens/s of `gen 2000` with the live view against --batch, for the
#    default model and a random Meta-State model with SSE heads (the view
#    records q, e and s of every layer at every step).  The view runs in a
#    100x40 tmux window (TERM=xterm-256color); its time is the command's own,
#    written by the view to METASTATE_TUI_STATS.  The batch time is the
#    process's wall time with `gen 2000` minus the same with `gen 1` (start-up
#    and the feed cancel).  Medians of RUNS runs.  Goal: live >= 90% of batch.
# 2. one full redraw of a 0.1B-shape model's overview and zoom
#    (build/tests/bench_view).  Goal: <= 5 ms.
# Never fails on a slow machine; prints a table.
cd "$(dirname "$0")/.."
B=${B:-build}
MS=${METASTATE:-./metastate}
RUNS=${RUNS:-5}
N=${N:-2000}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-bview.XXXXXX") || exit 0
export TMUX_TMPDIR="$T"      # the server's socket goes with the temporary directory
unset TMUX
TM="tmux -L ms-bview-$$ -f /dev/null"
trap '$TM kill-server >/dev/null 2>&1; rm -rf "$T"' EXIT
FEED='feed In the beginning God created the heaven and the earth.'

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }

# batch seconds of gen N: wall(gen N) - wall(gen 1)
batch_once() {
    t0=$(now); "$MS" "$1" --batch -c "$FEED" -c "gen $N" >/dev/null 2>&1; t1=$(now)
    "$MS" "$1" --batch -c "$FEED" -c "gen 1" >/dev/null 2>&1; t2=$(now)
    echo "$t0 $t1 $t2" | awk '{print ($2-$1)-($3-$2)}'
}

# live seconds of gen N, as the view measured it
live_once() {
    rm -f "$T/stats" "$T/done"
    cat >"$T/run.sh" <<EOF
export LANG=C.UTF-8 LC_ALL=C.UTF-8 HOME=$T TERM=xterm-256color METASTATE_TUI_STATS=$T/stats
$MS $1 -c '$FEED' -c 'gen $N' -c quit
touch $T/done
sleep 30
EOF
    $TM kill-server >/dev/null 2>&1
    $TM new-session -d -s b -x 100 -y 40 "sh $T/run.sh"
    n=0
    while [ ! -f "$T/done" ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n + 1)); done
    $TM kill-server >/dev/null 2>&1
    awk '$1 == "command" && $2 == "gen" {print $3}' "$T/stats" 2>/dev/null | tail -1
}

frames() { awk '$1 == "frames" {print $2, $4, $6}' "$T/stats" 2>/dev/null; }

row() {   # row LABEL MODEL
    : >"$T/b"; : >"$T/l"
    i=0
    while [ $i -lt "$RUNS" ]; do
        batch_once "$2" >>"$T/b"
        live_once "$2" >>"$T/l"
        i=$((i + 1))
    done
    b=$(median <"$T/b"); l=$(median <"$T/l")
    echo "$b $l $(frames)" | awk -v n="$N" -v label="$1" '{
        tb = ($1 > 0) ? n / $1 : 0; tl = ($2 > 0) ? n / $2 : 0; r = (tb > 0) ? 100 * tl / tb : 0;
        printf "%-34s %10.0f %10.0f %7.1f%% %8d %9.2f %8.2f\n", label, tb, tl, r, $3, $4, $5 }'
}

echo "the full-screen view: gen $N with the live view (100x40, xterm-256color, in tmux) against --batch; medians of $RUNS"
if ! command -v tmux >/dev/null || [ ! -x "$MS" ]; then
    echo "  (skipped: needs tmux and $MS)"
else
    printf "%-34s %10s %10s %8s %8s %9s %8s\n" "model" "batch t/s" "live t/s" "live/b" "frames" "frame ms" "max ms"
    row "tiny rwkv.cpp 834K (default)" tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
    M=$B/golden/B.safetensors
    [ -f "$M" ] || { M=$T/B.safetensors; $PY scripts/make_random.py --layers 2 --embd 128 --heads 2 --head-size 64 \
        --ptok 300 --sse-heads 2 --lora 16,12,8,20 --vocab 256 --tokenizer bytes --seed 2 "$M" >/dev/null 2>&1; }
    [ -f "$M" ] && row "random Meta-State L2 C128 Hs2" "$M"
    echo "goal: live >= 90% of batch (frames: drawn during the last live run, their mean and max time)"
fi
echo
if [ -x "$B/tests/bench_view" ]; then
    "$B/tests/bench_view" --reps "${REPS:-30}"
else
    echo "(bench_view is not built: make)"
fi
exit 0
