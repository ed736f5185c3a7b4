#!/bin/sh
# test_faults.sh: faults from outside the program (DEBUGGER.md 4: never
# crash, never lose a saved state), each through `metastate` itself:
# 1. `save` onto a full file system (a 512 KiB tmpfs, root only, else
#    skipped) and into a read-only place: the old file stays byte for byte
#    and loads, one error line;
# 2. SIGKILL of a saver of a 1 MiB state that never stops (random moments)
#    and of one stopped at a chosen point of the write: the file under the
#    final name is always a whole one that loads, every kill landed during a
#    save, and no temporary is left (one killed between link and rename is
#    removed by the next save);
# 3. a state file with one byte flipped in the data and in the header JSON:
#    refused with one line, the session unchanged;
# 4. the model file truncated, rewritten in place and replaced by rename
#    while it is loaded: no crash, and the logits are those of the original;
# 5. the terminal (tmux): 10x5, 20 resizes in a second, LANG=C, a pipe: it
#    answers a command afterwards, quits with 0, echo and icanon restored;
# 6. a short soak (scripts/soak.sh 5000 500 2500: gen, snapshots, forks and
#    replay --verify of each fork).
# Prints one line per check; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
MS=$(cd "$(dirname "$MS")" && pwd)/$(basename "$MS")
M=tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-faults.XXXXXX") || exit 1
MNT=""
export TMUX_TMPDIR="$T"
unset TMUX
TM="tmux -L ms-faults-$$ -f /dev/null"
cleanup() {
    $TM kill-server >/dev/null 2>&1
    [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
    chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT
. tests/lib.sh
skip() { echo "  skip $*"; }
[ -x "$MS" ] || { echo "test_faults: $MS is not built"; exit 1; }
chmod 755 "$T"   # the read-only check runs as nobody
cp "$M" "$T/tiny.bin"; chmod 644 "$T/tiny.bin"; M=$T/tiny.bin
lines() { wc -l <"$1" | tr -d ' '; }
# loads FILE [MODEL]: open checks the checksum of every tensor
loads() { "$MS" "${2:-$M}" --batch -c "open $1" >/dev/null 2>&1; }

echo "== 1. save onto a full file system, into a read-only place"
"$MS" "$M" --batch -c 'feed old' -c "save $T/old.st" >/dev/null 2>&1
if [ "$(id -u)" = 0 ] && mkdir "$T/mnt" && mount -t tmpfs -o size=512k,mode=755 tmpfs "$T/mnt" 2>"$T/merr"; then
    MNT=$T/mnt
    cp "$T/old.st" "$MNT/s.st"
    dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null   # until the disk is full
    free=$(df -k "$MNT" | awk 'NR == 2 {print $4}')
    "$MS" "$M" --batch -c 'feed new text' -c "save $MNT/s.st" >/dev/null 2>"$T/err"; rc=$?
    tmps=$(ls "$MNT" | grep -c '\.tmp\.')
    [ $rc != 0 ] && [ "$(lines "$T/err")" = 1 ] && grep -q "s.st" "$T/err" && cmp -s "$T/old.st" "$MNT/s.st" &&
        loads "$MNT/s.st" && [ "$tmps" = 0 ]
    check $? "full tmpfs ($free KiB free): save exits $rc, one line, old file cmp-equal and loads, $tmps temporaries: $(cat "$T/err")"
    # the session goes on after it: the snapshot and a later command
    "$MS" "$M" -c 'feed new' -c 'snap k' -c "save $MNT/s.st" -c snaps -c 'top 1' </dev/null >"$T/out" 2>/dev/null; rc=$?
    [ $rc = 0 ] && grep -q '^  k ' "$T/out" && grep -q 'top 1 of' "$T/out"
    check $? "full tmpfs, interactive: the session goes on (snapshot listed, top answers, exit $rc)"
    rm -f "$MNT/fill"
    mount -o remount,ro "$MNT" 2>/dev/null
    "$MS" "$M" --batch -c 'feed new text' -c "save $MNT/s.st" >/dev/null 2>"$T/err"; rc=$?
    [ $rc != 0 ] && [ "$(lines "$T/err")" = 1 ] && grep -q "s.st" "$T/err" && cmp -s "$T/old.st" "$MNT/s.st" && loads "$MNT/s.st"
    check $? "read-only file system: save exits $rc, one line, old file cmp-equal and loads: $(cat "$T/err")"
    umount "$MNT"; MNT=""
else
    skip "full and read-only tmpfs: cannot mount a tmpfs (uid $(id -u): $(cat "$T/merr" 2>/dev/null))"
fi
# a directory without write permission (as nobody when root: root ignores permissions)
mkdir "$T/ro"; cp "$T/old.st" "$T/ro/s.st"; chmod 644 "$T/ro/s.st"; chmod 555 "$T/ro"
AS=""
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && AS="setpriv --reuid=65534 --regid=65534 --clear-groups"
if $AS sh -c "touch $T/ro/x" 2>/dev/null; then
    skip "read-only directory: writes to a mode 555 directory succeed here (root without setpriv)"
else
    $AS "$MS" "$M" --batch -c 'feed new text' -c "save $T/ro/s.st" >/dev/null 2>"$T/err"; rc=$?
    [ $rc != 0 ] && [ "$(lines "$T/err")" = 1 ] && grep -q "s.st" "$T/err" && cmp -s "$T/old.st" "$T/ro/s.st" &&
        loads "$T/ro/s.st" && [ "$(ls "$T/ro" | wc -l)" = 1 ]
    check $? "read-only directory${AS:+ (as nobody)}: save exits $rc, one line, old file cmp-equal and loads: $(cat "$T/err")"
fi
chmod 755 "$T/ro"

echo "== 2. SIGKILL during save"
# a 1 MiB state: 8 layers of 8 heads of 64x64.  Two kinds of kill, neither
# of which depends on the machine's speed: (a) a saver that never stops (an
# endless stream of `save` on its stdin) killed at random moments, so every
# kill lands while it is saving; (b) a saver that stops itself at a chosen
# point of the write (METASTATE_TEST_STOP_IN_WRITE, fileio.c), killed there:
# with every byte written but nothing linked, and with the new file linked
# under its temporary name but not yet renamed (the only moment a temporary
# has a name; the next save of the same file removes it).
if $PY scripts/make_random.py --layers 8 --embd 512 --heads 8 --head-size 64 --ptok 64 --sse-heads 2 --lora 8,8,8,8 \
        --vocab 256 --tokenizer bytes --seed 1 "$T/big.safetensors" >/dev/null 2>"$T/err"; then
    BIG=$T/big.safetensors
    mkdir "$T/k"
    "$MS" "$BIG" --batch -c 'feed aaa' -c "save $T/A.st" -c 'feed bbb' -c "save $T/B.st" >/dev/null 2>&1
    # the tensor bytes of a state file (the header holds a save time)
    data() { $PY -c 'import sys,struct,hashlib; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; print(hashlib.sha1(b[8+n:]).hexdigest())' "$1" 2>/dev/null; }
    dA=$(data "$T/A.st"); dB=$(data "$T/B.st")
    cp "$T/A.st" "$T/k/s.st"
    # (a) 8 endless savers, alternating B and A content, killed 0.05-1.25 s into their saves
    r=0 whole=0 kills="" landed=0 saved=0
    while [ $r -lt 8 ]; do
        r=$((r + 1))
        [ $((r % 2)) = 1 ] && pre='feed aaa
feed bbb' || pre='feed aaa'
        rm -f "$T/saver.out"
        { printf '%s\n' "$pre"; yes "save $T/k/s.st"; } | "$MS" "$BIG" >"$T/saver.out" 2>&1 &
        pid=$!   # the pipeline's last process: metastate
        # wait for its first block of "saved" lines (it is in its loop of saves), then a random moment
        n=0; while [ ! -s "$T/saver.out" ] && [ $n -lt 600 ] && kill -0 $pid 2>/dev/null; do sleep 0.1; n=$((n + 1)); done
        d=$(awk -v s=$$$r 'BEGIN {srand(s); printf "%.2f", 0.05 + rand() * 1.2}')
        sleep "$d"
        # it never ends by itself: a live process here means the kill lands mid-run
        kill -0 $pid 2>/dev/null && kill -9 $pid 2>/dev/null && landed=$((landed + 1))
        wait $pid 2>/dev/null
        kills="$kills ${d}s"
        saved=$((saved + $(grep -c '^saved ' "$T/saver.out")))
        dk=$(data "$T/k/s.st")
        if { [ "$dk" = "$dA" ] || [ "$dk" = "$dB" ]; } && loads "$T/k/s.st" "$BIG"; then whole=$((whole + 1)); fi
    done
    left=$(ls -a "$T/k" | grep -c '\.tmp\.')
    others=$(ls "$T/k" | grep -vc '^s\.st$')
    [ $whole = 8 ] && [ $landed = 8 ] && [ "$left" = 0 ] && [ "$others" = 0 ]
    check $? "8 endless savers of a $(wc -c <"$T/A.st" | tr -d ' ')-byte state, kill -9 after their first saves +$kills: $landed of 8 landed \
while saving ($saved saves done in all), the file whole (tensor bytes = A or B) and loading $whole/8 times, $left temporaries left"
    # (b) a kill at a chosen point of one save
    for at in data linked; do
        cp "$T/A.st" "$T/k/s.st"
        METASTATE_TEST_STOP_IN_WRITE=$at "$MS" "$BIG" --batch -c 'feed bbb' -c "save $T/k/s.st" >/dev/null 2>&1 &
        pid=$!
        n=0 st=""
        while [ $n -lt 600 ]; do   # until it has stopped itself (state T), at most 60 s
            st=$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)
            [ "$st" = T ] && break
            [ -z "$st" ] && break
            sleep 0.1; n=$((n + 1))
        done
        kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
        dk=$(data "$T/k/s.st")
        after=$(ls -a "$T/k" | grep -c '\.tmp\.')
        # the next save (another process) leaves no temporary of the dead one
        "$MS" "$BIG" --batch -c 'feed aaa' -c "save $T/k/s.st" >/dev/null 2>&1
        left=$(ls -a "$T/k" | grep -c '\.tmp\.')
        if [ $at = data ]; then want=0; else want=1; fi
        [ "$st" = T ] && [ "$dk" = "$dA" ] && [ "$after" = $want ] && [ "$left" = 0 ] && [ "$(data "$T/k/s.st")" = "$dA" ] &&
            loads "$T/k/s.st" "$BIG"
        check $? "kill -9 of a save stopped at '$at' (state $st): the old file kept, $after temporar$([ "$after" = 1 ] && echo y || echo ies) \
after the kill ($want expected: $([ $at = data ] && echo 'the data has no name yet' || echo 'linked, not yet renamed')), $left after the next save"
    done
else
    bad "SIGKILL during save: cannot make a bigger model: $(tail -1 "$T/err")"
fi

echo "== 3. a state file edited by hand"
"$MS" "$M" --batch -c 'feed Hello' -c "save $T/good.st" >/dev/null 2>&1
$PY - "$T/good.st" "$T" <<'EOF' >"$T/flips"
import sys, struct, json
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; d = sys.argv[2]
def put(name, i, bit=1):
    f = bytearray(b); f[i] ^= bit; open(d + '/' + name + '.st', 'wb').write(f)
    print(name, i)
put('data', 8 + n + (len(b) - 8 - n) // 2)           # a byte in the middle of the tensors
h = b[8:8 + n]
put('hjson', 8 + h.index(b'"__metadata__"'), 0x20)   # the header's JSON: '"' -> '\x02'
put('hshape', 8 + h.index(b'"shape"') + 3, 0x20)     # a key: "shape" -> "sHape"
put('htok', 8 + h.index(b'"tokens"') + 12, 1)        # a token id in the history: 72 -> 73
EOF
for name in data hjson hshape; do
    at=$(awk -v n=$name '$1 == n {print $2}' "$T/flips")
    "$MS" "$M" --batch -c 'feed x' -c "open $T/$name.st" >/dev/null 2>"$T/err"; rc=$?
    "$MS" "$M" --json -c 'feed x' -c 'snap k' -c "save $T/b.st" -c snaps -c "open $T/$name.st" -c snaps -c "save $T/a.st" \
        </dev/null 2>/dev/null | grep '"cmd":"snaps"' >"$T/snaps"
    [ $rc != 0 ] && [ "$(lines "$T/err")" = 1 ] && cmp -s "$T/b.st" "$T/a.st" && [ "$(sort -u "$T/snaps" | wc -l)" = 1 ]
    check $? "byte $at flipped ($name): open exits $rc, one line, state and snapshots unchanged: $(cut -c1-160 "$T/err")"
done

# a token of the history: open takes the history as written (the state's bytes are checked);
# replay --verify is the check of a history (DEBUGGER.md: open it, then replay --verify)
at=$(awk '$1 == "htok" {print $2}' "$T/flips")
"$MS" "$M" --batch -c "open $T/htok.st" -c 'replay --verify' >/dev/null 2>"$T/err"; rc=$?
"$MS" "$M" -c "open $T/htok.st" -c "save $T/b.st" -c 'replay --verify' -c "save $T/a.st" </dev/null >/dev/null 2>&1
[ $rc != 0 ] && [ "$(lines "$T/err")" = 1 ] && grep -q '^replay: step 1 (token' "$T/err" && cmp -s "$T/b.st" "$T/a.st"
check $? "byte $at flipped (htok, a token id in the header): open takes it, replay --verify exits $rc, one line, \
nothing changed: $(cut -c1-160 "$T/err")"

echo "== 4. the model file changed while it is loaded"
"$MS" "$M" --batch -c 'feed Hello' -c 'feed more' -c 'top 3' 2>&1 | tail -4 >"$T/ref"
for how in truncate overwrite rename; do
    cp "$M" "$T/m.bin"; rm -f "$T/fifo"; mkfifo "$T/fifo"
    "$MS" "$T/m.bin" <"$T/fifo" >"$T/out" 2>&1 &
    pid=$!
    exec 3>"$T/fifo"
    echo 'feed Hello' >&3
    sleep 0.3
    case $how in
    truncate) : >"$T/m.bin" ;;
    overwrite) head -c "$(wc -c <"$M")" /dev/urandom | dd of="$T/m.bin" conv=notrunc 2>/dev/null ;;
    rename) head -c 5000 /dev/urandom >"$T/m2.bin"; mv "$T/m2.bin" "$T/m.bin" ;;
    esac
    printf 'feed more\ntop 3\nquit\n' >&3
    exec 3>&-
    wait $pid; rc=$?
    tail -4 "$T/out" >"$T/got"
    [ $rc = 0 ] && cmp -s "$T/ref" "$T/got"
    check $? "model file ${how} while loaded: exit $rc, then feed and top 3 give the original's answer: $(tail -1 "$T/got")"
done

echo "== 5. the terminal"
if command -v tmux >/dev/null; then
    # tstart NAME W H ENV: metastate in a W x H tmux window; status and stty -a into $T/NAME.*
    tstart() {
        cat >"$T/$1.sh" <<EOF
export HOME=$T TERM=xterm-256color $4
trap : INT
stty -a >$T/$1.stty0 2>&1
"$MS" "$M"
echo \$? >$T/$1.rc
stty -a >$T/$1.stty 2>&1
sleep 60
EOF
        $TM kill-server >/dev/null 2>&1
        TM="tmux -L ms-faults-$$-$1 -f /dev/null"   # a server of its own for each start
        $TM new-session -d -s t -x "$2" -y "$3" "sh $T/$1.sh"
        sleep 1
    }
    keys() { $TM send-keys -t t "$@"; }
    # tend NAME WHAT: a command answers (a file saved), quit gives 0, the modes are back
    tend() {
        keys "save $T/$1.st" Enter; sleep 0.5
        keys 'quit' Enter
        n=0; while [ $n -lt 50 ] && [ ! -s "$T/$1.rc" ]; do sleep 0.1; n=$((n + 1)); done
        rc=$(cat "$T/$1.rc" 2>/dev/null || echo none)
        modes=$(grep -oE '(^| )-?(echo|icanon)( |;|$)' "$T/$1.stty" 2>/dev/null | tr -d ' ;' | tr '\n' ' ')
        [ -s "$T/$1.st" ] && [ "$rc" = 0 ] && grep -qE '(^| )icanon' "$T/$1.stty" && grep -qE '(^| )echo( |$)' "$T/$1.stty"
        check $? "$2: answers 'save' afterwards, quit exits $rc, modes after: $modes"
    }
    tstart small 10 5 "LANG=C.UTF-8 LC_ALL=C.UTF-8"
    keys 'feed Hi' Enter; sleep 0.3
    tend small "a 10x5 window"
    tstart burst 80 24 "LANG=C.UTF-8 LC_ALL=C.UTF-8"
    i=0; while [ $i -lt 20 ]; do
        $TM resize-window -t t -x $((10 + i * 7 % 90)) -y $((5 + i * 5 % 40)) 2>/dev/null; sleep 0.05; i=$((i + 1))
    done
    keys 'feed Hi' Enter; sleep 0.3
    tend burst "20 resizes in a second (10x5 .. 100x45)"
    tstart clocale 80 24 "LANG=C LC_ALL=C"
    keys 'feed caf' Enter; keys "feed $(printf '\303\251')" Enter; sleep 0.3
    tend clocale "LANG=C LC_ALL=C, a non-ASCII byte typed"
    $TM kill-server >/dev/null 2>&1
else
    skip "the tmux checks: tmux is not installed"
fi
{ printf 'top 2\nview L0.H0\nquit\n' | "$MS" "$M" -c 'feed Hi'; echo $? >"$T/pipe.rc"; } 2>&1 | cat >"$T/pipe.out"
rc=$(cat "$T/pipe.rc")
[ "$rc" = 0 ] && grep -q 'top 2 of' "$T/pipe.out" && ! grep -q "$(printf '\033')" "$T/pipe.out"
check $? "output to a pipe: exit $rc, top 2 answered, $(wc -l <"$T/pipe.out" | tr -d ' ') lines, no escape codes"

echo "== 6. a short soak"
sh scripts/soak.sh 5000 500 2500 "$M" >"$T/soak" 2>&1; rc=$?
check $rc "soak of 5000 tokens: $(sed -n '1p;3p' "$T/soak" | sed 's/^soak: //' | tr '\n' ';')"
sed -n 2p "$T/soak" | sed 's/^/        /'

echo "test_faults: $fails failed"
[ $fails = 0 ]
