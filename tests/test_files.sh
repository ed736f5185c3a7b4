#!/bin/sh
# test_files.sh: every reader and every writer of metastate against what is
# not a regular file and against resource limits (docs/files.md), through
# the program itself.  Each case must end (a timeout catches a hang), say
# one line naming what was wrong, and change nothing:
# 1. readers (the model argument, load, open, source, score @, -x) given a
#    FIFO with no writer, a directory, a character device and a socket;
#    /proc/self/mem (a read error) and a file of 2 MiB with no newline;
# 2. writers (save, save-model, export .npy/.csv/.png, save-logits, record,
#    task --dump) given a symbolic link (to a file, to /dev/null, to a
#    directory, dangling), a directory, a FIFO and /dev/null: refused, the
#    link and what it points to unchanged, no temporary left;
# 3. ulimit -f 0 (every writer: exit 1, not SIGXFSZ, the old file kept),
#    ulimit -n (readers and writers), ulimit -v from 4 to 40 MB (--version and
#    a session that loads, feeds, saves and exports);
# 4. stdin from /dev/zero (memory stays bounded), a NUL byte in a -x line,
#    a failing `source` and a self-sourcing file in --batch (one line each),
#    an error about a 900-byte path (its reason is kept);
# 5. `display` targets after `load` of a smaller model and after `grow`:
#    dropped with a line, or read at their new place (checked against
#    `export` of the same head).
# Prints one line per check; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
MS=$(cd "$(dirname "$MS")" && pwd)/$(basename "$MS")
ROOT=$(pwd)
M=$ROOT/tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
W=$ROOT/models/parity.safetensors          # a words model, for task --dump
BIG=$ROOT/models/kjv.safetensors           # 4 layers, for the display check
SMALL=$ROOT/models/parity-rwkv7.safetensors   # 2 layers
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-files.XXXXXX") || exit 1
SOCKPID=""
cleanup() { [ -n "$SOCKPID" ] && kill "$SOCKPID" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
. tests/lib.sh
[ -x "$MS" ] || { echo "test_files: $MS is not built"; exit 1; }
# ASan reserves terabytes of address space: the ulimit -v checks need the plain build
asan=0; nm "$MS" 2>/dev/null | grep -q __asan_init && asan=1
cd "$T"
lines() { wc -l <"$1" | tr -d ' '; }
# runs SHELL-CMD: the command line (which may set limits first: they stay in
# its subshell) with stdout and stderr through pipes, as a file-size limit
# applies to a regular-file stdout too; the status in $rc
runs() {
    { sh -c "( $1 ) 3>&-; echo \$? >$T/rc" 2>&1 1>&3 | cat >"$T/err"; } 3>&1 | cat >"$T/out"
    rc=$(cat "$T/rc")
    rm -f "$T/rc"
}
one_line() { [ "$(lines "$T/err")" = 1 ]; }
first() { head -c 200 "$T/err" | tr '\n' ' '; }
debris() { ls -a "$1" | grep -c '\.tmp\.' ; }

mkfifo fifo
mkdir dir
$PY -c 'import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); time.sleep(600)' "$T/sock" &
SOCKPID=$!
n=0; while [ ! -S sock ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
printf 'feed hello\n' >ok.ms

echo "== 1. readers given what is not a regular file"
for f in fifo dir /dev/null sock; do
    case $f in fifo) kind="a FIFO" ;; dir) kind="a directory" ;; /dev/null) kind="a character device" ;; sock) kind="a socket" ;; esac
    runs "timeout 20 '$MS' '$f' --batch"
    [ "$rc" = 1 ] && one_line && grep -q "is $kind" "$T/err"
    check $? "model argument $f: exit $rc, one line: $(first)"
    runs "timeout 20 '$MS' '$M' --batch -x '$f'"
    [ "$rc" = 1 ] && one_line && grep -q "is $kind" "$T/err"
    check $? "-x $f: exit $rc, one line: $(first)"
    for c in load open source "score @"; do
        sp=" "; [ "$c" = "score @" ] && sp=""
        # the session goes on unchanged: the state saved before and after is the same
        runs "timeout 20 '$MS' '$M' -c 'feed abc' -c 'save b.st' -c '$c$sp$f' -c 'save a.st' -c 'top 1' </dev/null"
        [ "$rc" = 0 ] && one_line && grep -q "is $kind" "$T/err" && cmp -s b.st a.st && grep -q 'top 1 of' "$T/out"
        check $? "$c$sp$f: one line, the session unchanged and answering: $(first)"
    done
done
runs "timeout 20 '$MS' '$M' --batch -c 'source /proc/self/mem'"
[ "$rc" = 1 ] && one_line && grep -q 'cannot read' "$T/err"
check $? "source /proc/self/mem (a read error): exit $rc, one line: $(first)"
head -c 2200000 /dev/zero | tr '\0' 'a' >long.ms
runs "timeout 20 '$MS' '$M' --batch -x long.ms"
[ "$rc" = 1 ] && one_line && grep -q 'longer than 1048576 bytes' "$T/err"
check $? "-x of a 2.2 MB line: exit $rc, one line: $(first)"

echo "== 2. writers given a link or what is not a regular file"
echo precious >victim.txt
# each kind of target, also under the names the exporters need (.npy, .csv, .png)
for ext in "" .npy .csv .png; do
    ln -s victim.txt l-file$ext; ln -s /dev/null l-null$ext; ln -s dir l-dir$ext; ln -s nowhere l-dangling$ext
    [ -n "$ext" ] && mkdir dir$ext && mkfifo fifo$ext
done
# each writer, with what it needs before it
writer_cmds() { # NAME TARGET: prints the -c arguments
    case $1 in
    save) echo "-c 'feed ab' -c 'save $2'" ;;
    save-model) echo "-c 'save-model $2'" ;;
    npy) echo "-c 'feed ab' -c 'export L0.H0 $2'" ;;
    csv) echo "-c 'feed ab' -c 'export L0.H0 $2'" ;;
    png) echo "-c 'feed ab' -c 'export L0.H0 $2'" ;;
    save-logits) echo "-c 'feed ab' -c 'save-logits $2'" ;;
    record) echo "-c 'record $2' -c 'feed ab'" ;;
    task) echo "-c 'task parity 4 2 --dump $2'" ;;
    esac
}
for wr in save save-model npy csv png save-logits record task; do
    model=$M; [ $wr = task ] && model=$W
    ext=; case $wr in npy) ext=.npy ;; csv) ext=.csv ;; png) ext=.png ;; esac
    for tg in l-file l-null l-dir l-dangling dir fifo /dev/null; do
        [ "$tg" = /dev/null ] && [ -n "$ext" ] && continue   # an exporter needs its extension
        t=$tg$ext
        runs "timeout 20 '$MS' '$model' --batch $(writer_cmds $wr "$t")"
        unchanged=0
        [ "$(cat victim.txt)" = precious ] && [ ! -e nowhere ] && [ -L l-file ] && [ -L l-null ] && [ -d dir ] && [ -p fifo ] && \
            [ "$(find dir dir.npy dir.csv dir.png -mindepth 1 | wc -l)" = 0 ] && [ -c /dev/null ] && unchanged=1
        [ "$rc" = 1 ] && one_line && [ $unchanged = 1 ] && [ "$(debris .)" = 0 ] && [ ! -e "$T/nowhere" ]
        check $? "$wr to $t: exit $rc, one line, nothing changed, no temporary: $(first)"
    done
done

echo "== 3. resource limits"
# ulimit -f 0: no byte may be written to a file; every writer fails cleanly
echo old >old.txt
for wr in save save-model npy csv png save-logits record task; do
    model=$M; [ $wr = task ] && model=$W
    ext=; case $wr in npy) ext=.npy ;; csv) ext=.csv ;; png) ext=.png ;; esac
    cp old.txt "o$ext"
    runs "ulimit -f 0; timeout 20 '$MS' '$model' --batch $(writer_cmds $wr "o$ext")"
    [ "$rc" = 1 ] && one_line && grep -q 'ulimit -f' "$T/err" && [ "$(cat "o$ext")" = old ] && [ "$(debris .)" = 0 ]
    check $? "ulimit -f 0, $wr: exit $rc (not 153), one line, the old file kept, no temporary: $(first)"
    rm -f "o$ext"
done
# ulimit -n 4: stdin, stdout and stderr leave one descriptor (the dynamic loader
# needs it too); the model loads and closes it, so `open` works, but a save needs
# two (its directory and the new file) and an `open` inside `source` a second one
runs "ulimit -n 4; '$MS' '$M' --batch -c 'feed ab' -c 'save n.st'"
[ "$rc" = 1 ] && one_line && grep -q 'ulimit -n' "$T/err" && [ ! -e n.st ] && [ "$(debris .)" = 0 ]
check $? "ulimit -n 4, save: exit $rc, one line, nothing written: $(first)"
printf 'open b.st\n' >open.ms
runs "ulimit -n 4; '$MS' '$M' --batch -c 'open b.st one' -c 'source open.ms'"
[ "$rc" = 1 ] && one_line && grep -q 'open.ms:1: open: b.st: cannot open .*ulimit -n' "$T/err"
check $? "ulimit -n 4, open (works), then open inside source (no descriptor left): exit $rc, one line: $(first)"
# ulimit -v: every limit ends in an exit: 0, or 1 with one line (127 with the
# dynamic loader's own line below about 6 MB)
if [ $asan = 1 ]; then
    echo "  skip ulimit -v: this is an ASan build (it reserves terabytes of address space)"
else
    bad_v=""; seen=""
    for v in 4000 6000 8000 10000 12000 14000 16000 20000 30000 40000 153600; do
        runs "ulimit -v $v; timeout 20 '$MS' --version"
        { [ "$rc" = 0 ] && grep -q '^metastate ' "$T/out"; } || { [ "$rc" = 127 ] && one_line; } || bad_v="$bad_v --version@$v:rc=$rc"
        rm -f v.st v.png
        runs "ulimit -v $v; timeout 20 '$MS' '$M' --batch -c 'feed hello' -c 'save v.st' -c 'export L0.H0 v.png'"
        case $rc in
        0) [ "$(lines "$T/err")" = 0 ] && [ -s v.st ] && [ -s v.png ] || bad_v="$bad_v session@$v:rc=0-but-$(lines "$T/err")-lines" ;;
        1|127) one_line || bad_v="$bad_v session@$v:rc=$rc-$(lines "$T/err")-lines" ;;
        *) bad_v="$bad_v session@$v:rc=$rc" ;;
        esac
        seen="$seen $((v / 1000))M:$rc"
    done
    [ -z "$bad_v" ] && [ "$(debris .)" = 0 ]
    check $? "ulimit -v from 4 to 153 MB: --version and a session (load, feed, save, export) each end, 0 or one line (status by limit:$seen)${bad_v:+; bad:$bad_v}"
fi

echo "== 4. input that never ends a line, NUL bytes, nested failures, long paths"
$PY - "$MS" "$M" <<'EOF' >"$T/zero"
import resource, subprocess, sys
p = subprocess.run([sys.argv[1], sys.argv[2]], stdin=open('/dev/zero', 'rb'), stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)
print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, p.stderr.decode().count('\n'),
      p.stderr.decode().strip()[:160])
EOF
set -- $(cat "$T/zero")
[ "${1:-}" = 1 ] && [ "${2:-9999}" -lt 600 ] && [ "${3:-}" = 1 ]
check $? "stdin from /dev/zero: exit ${1:-?}, peak RSS ${2:-?} MB (< 600), ${3:-?} line: $(cut -d' ' -f4- "$T/zero")"
printf 'feed a\000b\n' >nul.ms
runs "timeout 20 '$MS' '$M' --batch -x nul.ms"
[ "$rc" = 1 ] && one_line && grep -q 'NUL byte' "$T/err"
check $? "a NUL byte in a -x line: exit $rc, one line: $(first)"
printf 'feed a\nfrobnicate\n' >bad.ms
runs "timeout 20 '$MS' '$M' --batch -c 'source bad.ms'"
[ "$rc" = 1 ] && one_line && grep -q "bad.ms:2: unknown command 'frobnicate'" "$T/err"
check $? "a failing command inside source, --batch: exit $rc, one line: $(first)"
echo 'source self.ms' >self.ms
runs "timeout 20 '$MS' '$M' --batch -x self.ms"
[ "$rc" = 1 ] && one_line && grep -q 'nested more than 16 deep' "$T/err"
check $? "a self-sourcing file, --batch: exit $rc, one line: $(first)"
runs "timeout 20 '$MS' '$M' --json --batch -c 'source bad.ms'"
[ "$rc" = 1 ] && [ "$(grep -c '"ok":false' "$T/out")" = 2 ] && grep -q '"cmd":"source"' "$T/out"
check $? "the same with --json: exit $rc, the inner and the source's result objects both say ok false"
long=$(printf '%0100d' 0 | tr 0 d); long=$long/$long/$long/$long/$long/$long/$long/$long/$long
runs "timeout 20 '$MS' '$M' --batch -c 'feed a' -c 'save $long/s.st'"
[ "$rc" = 1 ] && one_line && grep -q 'does not exist' "$T/err" && grep -q 's\.st' "$T/err"
check $? "save into a missing directory, a path of 910 bytes: exit $rc, one line of $(wc -c <"$T/err" | tr -d ' ') bytes that still gives the reason: $(tail -c 90 "$T/err" | tr '\n' ' ')"

echo "== 5. displays after the model changes"
runs "timeout 20 '$MS' '$BIG' --batch -c 'display L3.H3[31,31]' -c 'display L0.H0[1,2]' -c 'load $SMALL' -c 'feed 1 0 1' -c 'display' -c 'export L0.H0 h.csv'"
v=$(grep '^2: L0.H0\[1,2\] = ' "$T/out" | tail -1 | awk '{print $4}')
ref=$(sed -n 2p h.csv 2>/dev/null | cut -d, -f3)
[ "$rc" = 0 ] && grep -q 'display 1 (L3.H3\[31,31\]) removed' "$T/out" && ! sed '1,/removed/d' "$T/out" | grep -q '^1: ' &&
    [ -n "$v" ] && [ "$v" = "$ref" ]
check $? "load of a 2-layer model: display 1 removed with a line, display 2 reads the new state ($v, export says $ref)"
runs "timeout 20 '$MS' '$W' --batch -c 'display L1.H1[5,5]' -c 'grow heads 2' -c 'feed 1 0' -c 'export L1.H1 g.csv'"
v=$(grep '^1: L1.H1\[5,5\] = ' "$T/out" | tail -1 | awk '{print $4}')
ref=$(sed -n 6p g.csv 2>/dev/null | cut -d, -f6)
[ "$rc" = 0 ] && [ -n "$v" ] && [ "$v" = "$ref" ]
check $? "grow heads 2 (the state's layout changes): display L1.H1[5,5] reads $v, export of the grown head says $ref"

echo "test_files: $fails failed"
[ $fails = 0 ]
