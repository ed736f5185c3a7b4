#!/bin/sh
# test_debugger_bad.sh: each bad input of DEBUGGER.md 4 on its own, through
# `metastate`.  For every one: under --batch it exits non-zero with exactly
# one line on stderr that says what is valid (matched against a pattern);
# and in a session that goes on after it (no --batch, stdin empty) the
# state file saved before it equals the one saved after it (cmp) and the
# branch tree and the snapshot list are the same objects in --json.
# (The 10x5 terminal is the full-screen view's test.)
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
M=tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-bad.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
fails=0
n=0
[ -x "$MS" ] || { echo "test_debugger_bad: $MS is not built"; exit 1; }

# a session with history, an edit, a snapshot and two branches
SETUP="-c 'feed Hello' -c 'set L1.H0[0,0] 2' -c 'snap keep' -c 'fork side' -c 'feed-tokens 1 2 3' -c 'goto 6'"

# bad NAME PATTERN CMD [ENV] [MORE_SETUP]: one test
bad() {
    name=$1 pat=$2 cmd=$3 env=${4:-} more=${5:-}
    n=$((n + 1))
    eval "env $env \"\$MS\" \"\$M\" $SETUP $more -c \"\$cmd\" --batch" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err")
    eval "env $env \"\$MS\" \"\$M\" --json $SETUP $more -c \"save \$T/b.st\" -c branches -c snaps -c \"\$cmd\" \
        -c \"save \$T/a.st\" -c branches -c snaps" </dev/null >"$T/j" 2>/dev/null
    same=$($PY - "$T/j" <<'EOF'
import sys, json
o = [json.loads(l) for l in open(sys.argv[1])]
k = [x for x in o if x["cmd"] in ("branches", "snaps")]
print("yes" if len(k) == 4 and k[0] == k[2] and k[1] == k[3] else "no")
EOF
)
    if [ $rc != 0 ] && [ "$lines" = 1 ] && grep -q -- "$pat" "$T/err" && cmp -s "$T/b.st" "$T/a.st" && [ "$same" = yes ]; then
        echo "  ok   $name: exit $rc, one line, state/branches/snaps unchanged: $(cut -c1-150 "$T/err")"
    else
        echo "  FAIL $name: exit $rc, $lines stderr lines (want /$pat/), unchanged tree/snaps: $same, state cmp: \
$(cmp -s "$T/b.st" "$T/a.st" && echo same || echo differs): $(head -c 300 "$T/err")"
        fails=$((fails + 1))
    fi
}

# unknown commands
bad "unknown command" "unknown command 'frok'; did you mean 'fork'?" 'frok x'
# bad targets
bad "layer out of range" "layer 12 does not exist: this model has layers 0..11" 'set L12.H0 1'
bad "head out of range" "head 1 does not exist: each layer has heads H0..H0" 'zero L0.H1'
bad "index out of range" "row index 64 is out of range in 'L0.H0\[64,0\]': valid row index are 0..63" 'set L0.H0[64,0] 1'
bad "unknown part" "unknown part 'attx' of layer 0; did you mean 'att_x'?" 'zero L0.attx'
bad "target grammar" "bad target 'L0.H0\[1'; targets: \*, L<layer>" 'export L0.H0[1 x.npy'
# huge numbers
bad "huge position" "POS must be a position from 0 to 8, @EVENT (0 to 9) or end" 'goto 99999999999999999999'
bad "huge value" "VALUE must be a finite number within ±3.4e38 (float32), got '1e39'" 'set L0.H0 1e39'
bad "overflowing scale" "scale L0.\* would make L0.* infinite (beyond float32's ±3.4e38); nothing was changed" \
    'scale-state L0.* 3e38'
bad "huge sigma" "SIGMA must be a finite number from 0 to 3.4e38 (float32), got '1e300'" 'noise L0.H0 1e300'
bad "huge checkpoint interval" "every must be an integer from 1 to 1000000000" 'checkpoints every=99999999999'
# NaN and infinities
bad "NaN value" "VALUE must be a finite number within ±3.4e38 (float32), got 'nan'" 'set L0.H0 nan'
bad "infinite factor" "F must be a finite number within ±3.4e38 (float32), got 'inf'" 'scale-state L0.H0 inf'
bad "NaN sigma" "SIGMA must be a finite number from 0 to 3.4e38 (float32), got 'NaN'" 'noise L0.H0 NaN'
# binary junk
J=$(printf 'set \377\376\001 1')
bad "binary junk target" "bad target '\\\\xff\\\\xfe\\\\x01'" "$J"
J=$(printf '\377\033[2J\001')
bad "binary junk command" "unknown command '\\\\xff\\\\x1b\[2J\\\\x01'" "$J"
# model files
head -c 100000 "$M" >"$T/trunc.bin"
bad "truncated model" "trunc.bin" "load $T/trunc.bin"
$PY - "$M" "$T/corrupt.bin" <<'EOF'
import sys
b = open(sys.argv[1], 'rb').read(); i = b.index(b'blocks.3.att.key.weight')   # a tensor renamed
open(sys.argv[2], 'wb').write(b[:i] + b'blocks.3.att.kez' + b[i + 16:])
EOF
bad "corrupt model" "corrupt.bin" "load $T/corrupt.bin"
bad "missing model" "cannot open" "load $T/none.bin"
# state files
"$MS" "$M" -c 'feed abc' -c 'set L0.H0 1' -c "save $T/good.st" --batch >/dev/null 2>&1
head -c 150000 "$T/good.st" >"$T/trunc.st"
bad "truncated state file" "trunc.st" "open $T/trunc.st"
$PY - "$T/good.st" "$T/flip.st" "$T/shape.st" "$T/edits.st" <<'EOF'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
f = bytearray(b); f[-100] ^= 1; open(sys.argv[2], 'wb').write(f)
def meta(dst, fn):
    h = json.loads(b[8:8 + n]); fn(h["__metadata__"])
    j = json.dumps(h).encode(); j += b' ' * (-len(j) % 8)
    open(dst, 'wb').write(struct.pack('<Q', len(j)) + j + b[8 + n:])
meta(sys.argv[3], lambda m: m.__setitem__("model", "L2 C64 H1 N64 A64 V256 n256 Hs0"))
def edits(m):
    e = json.loads(m["edits"]); e[0]["target"] = "L0.H7"; m["edits"] = json.dumps(e)
meta(sys.argv[4], edits)
EOF
bad "corrupt state file" "checksum mismatch: file says" "open $T/flip.st"
bad "state file of another shape" "state file is for model 'L2 C64 H1 N64 A64 V256 n256 Hs0'; the loaded model is 'L12 C64" \
    "open $T/shape.st"
bad "state file with a bad edit" "edits\[0\].target: head 7 does not exist" "open $T/edits.st"
# a vocabulary with bad lines (a random World-tokenizer model)
if $PY scripts/make_random.py --layers 1 --embd 16 --heads 1 --head-size 16 --ptok 8 --sse-heads 0 --lora 4,4,4,4 \
        --vocab 65536 --tokenizer rwkv-world --seed 1 "$T/world.safetensors" >/dev/null 2>&1; then
    sed '77s/.*/77 junk-without-quotes 3/' models/vocab/rwkv_vocab_v20230424.txt >"$T/badvocab.txt"
    bad "vocabulary with a bad line" "badvocab.txt:77" "load $T/world.safetensors" "METASTATE_VOCAB=$T/badvocab.txt"
else
    echo "  FAIL vocabulary with a bad line: could not make a World-tokenizer model"; fails=$((fails + 1))
fi
# a full disk during save: the file size limit makes the write fail; the old file stays
"$MS" "$M" -c 'feed old' -c "save $T/full.st" --batch >/dev/null 2>&1
cp "$T/full.st" "$T/full-copy.st"
n=$((n + 1))
(trap '' XFSZ; ulimit -f 64; exec "$MS" "$M" -c 'feed new text' -c 'snap k' -c "save $T/full.st" --batch) >/dev/null 2>"$T/err"
rc=$?
(trap '' XFSZ; ulimit -f 64; exec "$MS" "$M" -c 'feed new text' -c 'snap k' -c "save $T/full.st" -c snaps \
    -c "save-logits $T/ok.bin") </dev/null >"$T/out" 2>/dev/null
if [ $rc != 0 ] && [ "$(wc -l <"$T/err")" = 1 ] && grep -q "full.st" "$T/err" && cmp -s "$T/full.st" "$T/full-copy.st" \
        && grep -q "^  k " "$T/out" && [ -s "$T/ok.bin" ] && [ -z "$(ls "$T" | grep 'full.st.tmp')" ]; then
    echo "  ok   full disk during save: exit $rc, one line, the old file intact, no temporary left, snapshot kept, the session goes on: $(cat "$T/err")"
else
    echo "  FAIL full disk during save: exit $rc: $(cat "$T/err")"; fails=$((fails + 1))
fi
# branches, goto, replay, patch, sweep, export, display
bad "goto before the origin" "position -1 is not on branch side: its positions are 0..8" 'goto -1'
bad "goto past the end" "position 9 is not on branch side: its positions are 0..8" 'goto 9'
bad "goto event past the end" "event 10 is not on branch side: its events are 0..9" 'goto @10'
bad "unknown branch" "no branch 'nope' (branches: main, side)" 'switch nope'
bad "fork onto a snapshot name" "snapshot 'keep' already exists" 'fork keep'
bad "drop the current branch" "'side' is the current branch; switch to another first" 'drop-branch side'
bad "replay from elsewhere" "snapshot x (position 6, taken on main) is not on the history of the current point" \
    'replay x' '' "-c 'switch main' -c 'feed Z' -c 'snap x' -c 'switch side'"
bad "patch without from" "expected 'from', got 'keep' (usage: patch TARGET from SRC)" 'patch L0.H0 keep now'
bad "patch from nothing" "no snapshot or branch 'ghost' (valid: now, keep, main, side)" 'patch L0.H0 from ghost'
bad "sweep of a head" "sweep patch takes a layer's heads as L.\* (L from 0 to 11), got 'L0.H0'" \
    'sweep patch L0.H0 from keep'
bad "export format" "'x.txt': the format comes from the extension: .csv, .npy or .png" 'export L0.H0 x.txt'
mkdir -p "$T/dir.npy"
bad "export onto a directory" "exists and is a directory; files are written only as regular files" "export L0.H0 $T/dir.npy"
bad "undisplay unknown" "no display '3' (there are none)" 'undisplay 3'

echo "test_debugger_bad: $n bad inputs, $fails failed"
[ $fails = 0 ]
