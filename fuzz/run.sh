#!/bin/sh
# run.sh: run one libFuzzer target for a while and summarise (make fuzz).
#
# usage: fuzz/run.sh TARGET SECONDS
# Runs build/fuzz/fuzz_TARGET on build/fuzz/corpus/TARGET (written) plus the
# committed seeds fuzz/corpus/TARGET and fuzz/regress/TARGET (read only),
# with the target's -max_len and dictionary, then prints one line: runs,
# exec/s, coverage, corpus size and the crash files found (exit 1 if any).
# The full log is build/fuzz/TARGET.log.  Extra libFuzzer flags: FUZZ_FLAGS.
set -u
cd "$(dirname "$0")/.."
t=$1
secs=${2:-60}
B=build/fuzz
bin=$B/fuzz_$t
[ -x "$bin" ] || { echo "fuzz/run.sh: $bin not built (make fuzz-build)" >&2; exit 2; }

# the largest input worth trying, per format
case $t in
    safetensors|rwkvbin) maxlen=65536 ;;
    statefile) maxlen=16384 ;;
    vocab) maxlen=8192 ;;
    *) maxlen=4096 ;;
esac
dict=
[ -f "fuzz/$t.dict" ] && dict="-dict=fuzz/$t.dict"
# the command target's text mode prints errors on stderr: keep them out of
# the log (libFuzzer still prints its own and the sanitizers' reports)
quiet=
[ "$t" = command ] && quiet=-close_fd_mask=3
work=$B/corpus/$t
crashes=$B/crashes/$t
mkdir -p "$work" "$crashes"
seeds=fuzz/corpus/$t
regress=
[ -d "fuzz/regress/$t" ] && regress=fuzz/regress/$t
log=$B/$t.log
before=$(ls "$crashes" | wc -l)

echo "== fuzz $t: ${secs}s, -max_len=$maxlen ${dict:+$dict }(log: $log)"
# -timeout: one input may take 10 s (a large model step under ASan);
# -rss_limit_mb: a file that claims huge sizes must not be allowed to allocate them
"$bin" -max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$crashes/" $dict $quiet ${FUZZ_FLAGS:-} \
    "$work" "$seeds" $regress >"$log" 2>&1
rc=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9a-zA-Z]*' "$log" | tail -1)
after=$(ls "$crashes" | wc -l)
echo "   $t: ${runs:-?} runs, ${eps:-?} exec/s, ${cov:-no coverage line}, exit $rc"
if [ "$after" -gt "$before" ] || [ "$rc" -ne 0 ]; then
    echo "   FINDINGS in $crashes/ (reproduce: $bin FILE; keep the fixed input in fuzz/regress/$t/):"
    ls -t "$crashes" | head -n $((after - before > 0 ? after - before : 5)) | sed "s|^|     $crashes/|"
    grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer|UndefinedBehaviorSanitizer)|runtime error|FUZZ_CHECK failed' "$log" | sed 's/^/     /'
    # where the files do not survive (CI), the newest input itself, in hex (its first 4 KiB)
    new=$(ls -t "$crashes" | head -1)
    [ -n "$new" ] && { echo "     $new, $(wc -c < "$crashes/$new") bytes:"; head -c 4096 "$crashes/$new" | od -An -tx1 | sed 's/^/     /'; }
    exit 1
fi
exit 0
