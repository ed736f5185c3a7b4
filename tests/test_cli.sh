#!/bin/sh
# test_cli.sh: the metastate command line end to end on the rwkv.cpp tiny
# model: logits against rwkv.cpp's, snapshot/restore and save/open giving
# back the exact bytes, score against an independent computation from the
# logits, one-line errors with a non-zero --batch exit for bad input, and
# --json giving one JSON object per line.  Prints every comparison and its
# worst difference; exits non-zero on any failure.  Run from anywhere; it
# works in the repository root with ./metastate built.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}   # METASTATE=path tests another build (e.g. ASan)
M=tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
M16=tests/fixtures/tiny-rwkv-7v0-834K-FP16.bin
EXP=tests/fixtures/expected-logits-7v0-834K.bin
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
. tests/lib.sh

[ -x "$MS" ] || { echo "test_cli: $MS is not built"; exit 1; }

# ms ARGS...: run metastate in batch mode; stdout in $T/out, stderr in $T/err, status in $rc

# --- (a) tokens 34 105 110 from the zero state against rwkv.cpp's logits
ms "$M" -c 'feed-tokens 34 105 110' -c "save-logits $T/a.bin"
[ $rc = 0 ] || bad "(a) feed-tokens/save-logits exited $rc: $(cat "$T/err")"
r=$($PY - "$T/a.bin" "$EXP" <<'EOF'
import sys, numpy as np
a = np.fromfile(sys.argv[1], '<f4'); b = np.fromfile(sys.argv[2], '<f4')
if a.shape != b.shape: print("1 shapes %s vs %s" % (a.shape, b.shape)); sys.exit()
d = float(np.abs(a.astype(np.float64) - b).max())
print(0 if d <= 1e-5 else 1, "max |dlogit| = %.3g over %d logits (limit 1e-5)" % (d, a.size))
EOF
)
check ${r%% *} "(a) logits after 34 105 110 vs rwkv.cpp: ${r#* }"

# --- (b) snap -> feed -> restore gives back the exact state (and the same future)
ms "$M" --json -c 'feed Hello' -c "save $T/b1.st" -c snap -c 'feed , world' -c 'gen 5' \
    -c 'restore s1' -c "save $T/b2.st" -c 'gen 8' -c 'restore s1' -c 'gen 8'
[ $rc = 0 ] || bad "(b) exited $rc: $(cat "$T/err")"
cmp -s "$T/b1.st" "$T/b2.st"
check $? "(b) snap/feed/gen/restore: state file equals the one saved before ($(wc -c <"$T/b1.st") bytes, cmp)"
r=$($PY - "$T/out" <<'EOF'
import sys, json
g = [json.loads(l)["tokens"] for l in open(sys.argv[1]) if json.loads(l)["cmd"] == "gen"]
print(0 if g[1] == g[2] else 1, "gen 8 after each restore: %s vs %s" % (g[1], g[2]))
EOF
)
check ${r%% *} "(b) ${r#* }"

# --- (c) save -> open -> save round trip, logits included
ms "$M" -c 'feed The state' -c "save $T/c1.st" -c "save-logits $T/c1.bin" -c reset -c 'feed other' \
    -c "open $T/c1.st" -c "save $T/c2.st" -c "save-logits $T/c2.bin"
[ $rc = 0 ] || bad "(c) exited $rc: $(cat "$T/err")"
cmp -s "$T/c1.st" "$T/c2.st" && cmp -s "$T/c1.bin" "$T/c2.bin"
check $? "(c) save/open/save: state files and logits identical (cmp)"

# --- (d) score leaves the state alone and equals mean -log2 p from the logits
TEXT=' there, friend'
ms "$M" --json -c 'feed Hi' -c "save $T/d1.st" -c "score $TEXT" -c "save $T/d2.st"
[ $rc = 0 ] || bad "(d) exited $rc: $(cat "$T/err")"
cmp -s "$T/d1.st" "$T/d2.st"
check $? "(d) state file before and after score identical (cmp)"
sed -n 3p "$T/out" >"$T/d.score"
printf 'feed Hi\n' >"$T/d.ms"
printf '%s' "$TEXT" >"$T/d.txt"
i=0
for id in $(od -An -tu1 -v "$T/d.txt"); do
    printf 'save-logits %s/dl%d.bin\nfeed-tokens %d\n' "$T" "$i" "$id" >>"$T/d.ms"
    i=$((i + 1))
done
ms "$M" -x "$T/d.ms"
[ $rc = 0 ] || bad "(d) stepping exited $rc: $(cat "$T/err")"
# from position 0 there are no logits: score @FILE starts at the 2nd token
ms "$M" --json -c "score @$T/d.txt"
cp "$T/out" "$T/d0.score"
printf 'feed-tokens 32\n' >"$T/d0.ms"
i=0
for id in $(od -An -tu1 -v "$T/d.txt" | cut -c5-); do
    printf 'save-logits %s/d0l%d.bin\nfeed-tokens %d\n' "$T" "$i" "$id" >>"$T/d0.ms"
    i=$((i + 1))
done
ms "$M" -x "$T/d0.ms"
[ $rc = 0 ] || bad "(d) stepping from 0 exited $rc: $(cat "$T/err")"
r=$($PY - "$T" "$TEXT" <<'EOF'
import sys, json, numpy as np
T, text = sys.argv[1], sys.argv[2].encode()
def mean_bits(prefix, ids):
    nll = []
    for i, t in enumerate(ids):
        l = np.fromfile("%s/%s%d.bin" % (T, prefix, i), '<f4').astype(np.float64)
        m = l.max(); lse = m + np.log(np.exp(l - m).sum())
        nll.append((lse - l[t]) / np.log(2))
    return float(np.mean(nll))
out = []
s = json.loads(open(T + "/d.score").read())
ref = mean_bits("dl", list(text))
d1 = abs(s["bits_per_token"] - ref)
ok = d1 <= 1e-6 and s["tokens"] == len(text) and s["bytes"] == len(text) and not s["skipped_first"] \
     and abs(s["bits_per_byte"] - s["bits_per_token"]) <= 1e-12
s0 = json.loads(open(T + "/d0.score").read())
ref0 = mean_bits("d0l", list(text[1:]))
d0 = abs(s0["bits_per_token"] - ref0)
ok = ok and d0 <= 1e-6 and s0["tokens"] == len(text) - 1 and s0["skipped_first"]
print(0 if ok else 1, "after 'Hi': %.9f bits/token vs %.9f (|d| %.2g); from position 0: %.9f vs %.9f "
      "(|d| %.2g, %d tokens scored, first skipped: %s) (limit 1e-6)"
      % (s["bits_per_token"], ref, d1, s0["bits_per_token"], ref0, d0, s0["tokens"], s0["skipped_first"]))
EOF
)
check ${r%% *} "(d) score vs mean -log2 p from save-logits: ${r#* }"

# --- (e) bad input: one line on stderr, non-zero exit, nothing changed before it
cp "$T/c1.st" "$T/flip.st"
$PY - "$T/flip.st" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[-5] ^= 0x40; open(sys.argv[1], 'wb').write(b)
EOF
# the same file claiming another model shape (data and checksum untouched)
$PY - "$T/c1.st" "$T/shape.st" <<'EOF'
import sys, json, struct
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n]); h["__metadata__"]["model"] = "L2 C64 H1 N64 A64 V256 n256 Hs0"
j = json.dumps(h).encode(); j += b' ' * (-len(j) % 8)
open(sys.argv[2], 'wb').write(struct.pack('<Q', len(j)) + j + b[8 + n:])
EOF
# expect_fail PATTERN ARGS...: exit non-zero, exactly one stderr line, matching PATTERN
expect_fail() {
    pat=$1; shift
    ms "$@"
    n=$(wc -l <"$T/err")
    if [ $rc != 0 ] && [ "$n" = 1 ] && grep -q -- "$pat" "$T/err"; then
        ok "(e) exit $rc, one line: $(cat "$T/err")"
    else
        bad "(e) $* : exit $rc, $n stderr lines, want /$pat/: $(cat "$T/err")"
    fi
}
expect_fail "unknown command 'fed'; did you mean 'feed'?" "$M" -c 'fed x'
expect_fail "K must be an integer from 1 to 256, got '0'" "$M" -c 'feed a' -c 'top 0'
expect_fail "K must be an integer from 1 to 256, got '99999999999999999999'" "$M" -c 'feed a' -c 'top 99999999999999999999'
expect_fail "got 'nan'" "$M" -c 'gen nan'
expect_fail "got '3x'" "$M" -c 'step 3x'
expect_fail "temp must be a number" "$M" -c 'set-sampler temp=inf'
expect_fail "no snapshot 'nope'" "$M" -c snap -c 'restore nope'
expect_fail "cannot open" "$M" -c "open $T/missing.st"
expect_fail "checksum mismatch: file says" "$M" -c "open $T/flip.st"
expect_fail "is for model 'L2 C64" "$M" -c "open $T/shape.st"
expect_fail "written with weights" "$M16" -c "open $T/c1.st"
expect_fail "token id must be an integer from 0 to 255, got '999'" "$M" -c 'feed-tokens 1 999'
expect_fail "no logits yet" "$M" -c 'top'
expect_fail "test.ms:2: top:" "$M" -x "$(printf 'feed a\ntop 0\n' >"$T/test.ms"; echo "$T/test.ms")"
expect_fail "unknown option '--bogus'" "$M" --bogus
expect_fail "threads must be an integer" "$M" --threads 0
expect_fail "cannot open" "$T/no-such-model.bin"
# open --force loads a state from other weights of the same shape, without its logits
ms "$M16" --json -c "open $T/c1.st --force" -c "save $T/force.st"
[ $rc = 0 ] && grep -q '"forced":true' "$T/out" && grep -q '"has_logits":false' "$T/out"
check $? "(e) open --force of a state from other weights: loaded, logits dropped"
# a failing command changes nothing: the state after it is the state before
# (without --batch the session goes on after the error; stdin is empty)
"$MS" "$M" -c 'feed Hi' -c "save $T/e1.st" -c 'feed-tokens 5 6 300' -c "save $T/e2.st" </dev/null >/dev/null 2>&1
cmp -s "$T/e1.st" "$T/e2.st"
check $? "(e) a rejected feed-tokens (one id out of range) feeds none of them (cmp)"

# --- RWKV-Runner time_state import: S from the file, att_x and ffn_x zero
$PY - "$T/runner.st" <<'EOF'
import sys, json, struct, numpy as np
rng = np.random.default_rng(1); parts = []; hdr = {}; off = 0
for i in range(12):
    a = rng.standard_normal((1, 64, 64)).astype(np.float32)
    hdr["blocks.%d.att.time_state" % i] = {"dtype": "F32", "shape": [1, 64, 64], "data_offsets": [off, off + a.nbytes]}
    off += a.nbytes; parts.append(a.tobytes())
j = json.dumps(hdr).encode(); j += b' ' * (-len(j) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(j)) + j + b''.join(parts))
EOF
ms "$M" -c "open $T/runner.st" -c "save $T/runner-out.st"
[ $rc = 0 ] || bad "import exited $rc: $(cat "$T/err")"
r=$($PY - "$T/runner.st" "$T/runner-out.st" <<'EOF'
import sys, json, struct, numpy as np
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], '<f4').reshape(v["shape"])
            for k, v in h.items() if k != "__metadata__"}
a, b = load(sys.argv[1]), load(sys.argv[2])
dS = max(float(np.abs(a["blocks.%d.att.time_state" % i].reshape(64, 64) - b["blocks.%d.att.time_state" % i]).max()) for i in range(12))
dx = max(float(np.abs(b["blocks.%d.%s.x_prev" % (i, w)]).max()) for i in range(12) for w in ("att", "ffn"))
print(0 if dS == 0 and dx == 0 else 1, "max |dS| = %g over 12 layers, max |x_prev| = %g" % (dS, dx))
EOF
)
check ${r%% *} "RWKV-Runner time_state import then save: ${r#* }"

# --- (f) --json: one JSON object per line, one per command, errors included
"$MS" "$M" --json -c info -c 'feed Hi\n' -c 'feed-tokens 1 2' -c 'top 3' -c 'step 2' -c 'gen 4' \
    -c 'score abc' -c 'set-sampler temp=0.5 seed=7' -c snap -c snaps -c "save $T/f.st" -c "open $T/f.st" \
    -c 'restore s1' -c 'drop s1' -c 'help' -c 'help top' -c 'apropos state' -c 'fed' -c 'top 0' -c reset \
    -c 'feed \xff\xfe' -c 'snaps' </dev/null >"$T/f.out" 2>"$T/f.err"
rc=$?
r=$($PY - "$T/f.out" <<'EOF'
import sys, json
lines = open(sys.argv[1], 'rb').read().split(b'\n')[:-1]
bad = []; cmds = []
for i, l in enumerate(lines):
    try:
        o = json.loads(l.decode('utf-8'))
        assert isinstance(o, dict) and "cmd" in o and isinstance(o["ok"], bool)
        cmds.append(o["cmd"] + ("" if o["ok"] else "!"))
    except Exception as e:
        bad.append("line %d: %s" % (i + 1, e))
n_ok = 22
print(0 if not bad and len(lines) == n_ok else 1, "%d lines, %d objects parse, want %d: %s %s"
      % (len(lines), len(lines) - len(bad), n_ok, " ".join(cmds), "; ".join(bad)))
EOF
)
[ $rc = 0 ] || r="1 exit status $rc"
check ${r%% *} "(f) --json: ${r#* }"

echo "test_cli: $fails failed"
[ $fails = 0 ]
