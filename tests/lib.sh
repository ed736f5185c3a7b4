# lib.sh: the helpers the shell tests share; sourced after the test has
# cd'd to the repository root and set MS (the binary) and T (a temp dir).
# ok/bad print one check ("  ok   ..." / "  FAIL ..."); bad counts failures
# in $fails; check STATUS MSG... picks one by the status; ms runs the binary
# in batch mode with stdout in $T/out, stderr in $T/err and the status in $rc.
fails=0
ok() { echo "  ok   $*"; }
bad() { echo "  FAIL $*"; fails=$((fails + 1)); }
check() { if [ "$1" = 0 ]; then shift; ok "$@"; else shift; bad "$@"; fi; }
ms() { "$MS" "$@" --batch >"$T/out" 2>"$T/err"; rc=$?; }
