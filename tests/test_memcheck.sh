#!/bin/sh
# test_memcheck.sh: valgrind memcheck over a scripted session of ./metastate
# (--batch): the classroom tour (feed, step, snap, fork, edits, gen, diff,
# replay --verify, export), then save/open of a state file, goto, patch,
# sweep, grow of all three kinds, save-model and load of the grown model,
# task, trace, score, and a bad command at the end (-x stops there, exit 1).  Passes when valgrind
# reports no invalid access, no use of uninitialised memory and no definitely
# or indirectly lost block (memory still reachable at exit, from readline,
# ncurses or OpenBLAS, is not counted).  Prints the error and leak summary.
# Skips, saying why, when valgrind is not installed.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-memcheck.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
. tests/lib.sh
command -v valgrind >/dev/null || { echo "  SKIP valgrind is not installed (apt-get install valgrind)"; exit 0; }
[ -x "$MS" ] || { echo "test_memcheck: $MS is not built"; exit 1; }
case "$MS" in *build-debug*) echo "  SKIP the ASan build cannot run under valgrind"; exit 0 ;; esac

cat > "$T/session.ms" <<EOS
source scripts/tour.ms
save $T/a.st
open $T/a.st back
goto 5
goto end
fork b2
feed and the earth was
patch L0.H1 from main
sweep patch L1.* from main
diff main b2
switch main
snaps
branches
events 5
mem
grow tokens 8
grow sse 1
grow heads 1
replay --verify
save-model $T/g.safetensors
load $T/g.safetensors
feed abc
trace Let there be light
score And God saw the light
load models/parity.safetensors
task parity 16 4 1
feed 0 1 1
top 2
zero L9.H9
EOS
# the tour's view exports write into the working directory
cd "$T" && ln -s "$OLDPWD/scripts" scripts && ln -s "$OLDPWD/models" models
MSABS=$(cd "$OLDPWD" && readlink -f "$MS")
valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=20 \
    "$MSABS" "$OLDPWD/models/kjv.safetensors" --batch --threads 2 -x session.ms >out 2>err
rc=$?
cd "$OLDPWD"
sum=$(grep -E "ERROR SUMMARY|definitely lost|indirectly lost|in use at exit" "$T/err" | sed 's/^==[0-9]*== *//' | tr '\n' ';')
echo "  valgrind: $sum"
lines=$(wc -l < "$T/out")
[ "$lines" -gt 50 ] && ok "the session ran ($lines lines of output)" || bad "the session printed only $lines lines"
last=$(wc -l < "$T/session.ms")
grep -q "^session.ms:$last: zero: layer 9" "$T/err" && ok "the session reached its last line (the bad command, refused: exit $rc)" ||
    bad "the session stopped early: $(grep -v '^==' "$T/err" | tail -1)"
[ $rc -eq 1 ] && grep -q "ERROR SUMMARY: 0 errors" "$T/err" && ok "memcheck: no errors, no leaks (exit $rc)" || {
    bad "memcheck: exit $rc"; grep -B2 -A20 -m3 "Invalid\|uninitialised\|definitely lost in\|indirectly lost in" "$T/err" | head -60; }
echo "test_memcheck: $fails failed"
[ $fails -eq 0 ]
