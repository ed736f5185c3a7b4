#!/bin/sh
# test_debugger.sh: the state debugger end to end through `metastate
# --batch` (DEBUGGER.md 3 and 4), checked against invariants and
# independent computations, never against metastate's own earlier output:
#   (a) snap -> edits, forks, goto -> restore, and save -> open -> save, give
#       back identical bytes;
#   (b) replay --verify passes at every step of edited, forked, sampled,
#       rewound branches, from the origin and from a snapshot;
#   (c) it fails, naming the step, when one recorded token (or edit value)
#       of a saved history is altered;
#   (d) the same commands give bit-identical files; goto P equals a run that
#       fed only the first P tokens, at every P, replaying at most the
#       checkpoint gap, with checkpoints bounded;
#   (e) diff of a point with itself is 0 with KL 0; KL >= 0 and equal to
#       numpy's from the saved logits;
#   (f) patching a head from a snapshot equals setting its 4096 values by hand;
#   (g) export .npy / .csv load in numpy with the target's shape and the state
#       file's values; (h) sweep patch against patch + feed + save-logits;
#   (i) record -> -x reproduces a session; --json gives one object per command.
# Prints each comparison and its worst difference; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
M=tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
PY=${PYTHON:-/usr/bin/python3}
B=${B:-build}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-dbg.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
. tests/lib.sh
[ -x "$MS" ] || { echo "test_debugger: $MS is not built"; exit 1; }

# ms ARGS...: batch run; stdout $T/out, stderr $T/err, status $rc
need() { [ $rc = 0 ] || bad "$1 exited $rc: $(head -c 300 "$T/err")"; }

# an independent reader of state files (safetensors): tensors and metadata
cat >"$T/st.py" <<'EOF'
import json, struct, numpy as np
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n]); d = b[8 + n:]
    meta = h.pop('__metadata__', {})
    ts = {k: np.frombuffer(d[v['data_offsets'][0]:v['data_offsets'][1]], '<f4').reshape(v['shape'])
          for k, v in h.items()}
    return ts, meta
def state(p, prefix=''):
    """the flat state in MODEL.md 4 order"""
    ts, _ = load(p); L = 0
    while prefix + 'blocks.%d.att.x_prev' % L in ts: L += 1
    return np.concatenate([np.concatenate([ts[prefix + 'blocks.%d.att.x_prev' % i].ravel(),
                                           ts[prefix + 'blocks.%d.att.time_state' % i].ravel(),
                                           ts[prefix + 'blocks.%d.ffn.x_prev' % i].ravel()]) for i in range(L)])
def put_meta(src, dst, f):
    b = open(src, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n])
    f(h['__metadata__'])
    j = json.dumps(h).encode(); j += b' ' * (-len(j) % 8)
    open(dst, 'wb').write(struct.pack('<Q', len(j)) + j + b[8 + n:])
def kl(la, lb):
    la = la.astype(np.float64); lb = lb.astype(np.float64)
    pa = la - (la.max() + np.log(np.exp(la - la.max()).sum()))
    pb = lb - (lb.max() + np.log(np.exp(lb - lb.max()).sum()))
    return float((np.exp(pa) * (pa - pb)).sum())
EOF
export PYTHONPATH="$T"

# --- (a) snap/restore and save/open/save give back identical bytes
ms "$M" -c 'feed The cat' -c "save $T/a0.st" -c 'snap base' -c 'set L3.H0[1,2] 7.5' -c 'noise L5.* 0.2' \
    -c 'fork side' -c 'set-sampler temp=0.7 seed=3' -c 'gen 6' -c 'goto 4' -c 'feed Z' -c 'switch main' -c 'gen 3' \
    -c 'restore base' -c "save $T/a1.st"
need "(a) snap/edit/fork/goto/restore"
cmp -s "$T/a0.st" "$T/a1.st"
check $? "(a) state file before 'snap base' = after edits, a fork, gen, goto, switch, restore ($(wc -c <"$T/a0.st") bytes, cmp)"
ms "$M" -c 'feed Hello' -c snap -c 'set-sampler temp=0.9 seed=11' -c 'gen 7' -c 'patch L2.* from s1' \
    -c 'zero L4.H0[:,3]' -c 'scale-state L6.att_x 0.5' -c 'noise L7.H0[2,:] 0.3 99' -c 'feed !' -c "save $T/a2.st" \
    -c reset -c 'feed other' -c "open $T/a2.st" -c "save $T/a3.st"
need "(a) save/open/save"
cmp -s "$T/a2.st" "$T/a3.st"
check $? "(a) save -> open -> save of an edited, sampled history with a patch payload: identical files (cmp)"

# --- (b) replay --verify passes on edited branches
ms "$M" --json -c 'feed Once upon' -c 'snap s0' -c 'set L1.H0 0.01' -c 'fork b1' -c 'set-sampler temp=1 seed=5' \
    -c 'gen 12' -c 'noise L2.H0 0.5' -c 'step 3' -c 'goto 12' -c 'patch L0.* from s0' -c 'gen 4' -c 'replay --verify' \
    -c 'switch main' -c 'gen 5' -c 'replay --verify' -c 'switch b1' -c 'replay s0 --verify' -c 'switch b1.1' \
    -c 'replay --verify' -c branches
need "(b) replay --verify on edited branches"
r=$($PY - "$T/out" <<'EOF'
import sys, json
objs = [json.loads(l) for l in open(sys.argv[1])]
rep = [o for o in objs if o["cmd"] == "replay"]
bad = [o for o in rep if not (o["ok"] and o["verified"] and o["identical"])]
br = [o for o in objs if o["cmd"] == "branches"][0]["branches"]
names = sorted(b["name"] for b in br)
ok = not bad and len(rep) == 4 and names == ["b1", "b1.1", "main"] and all(b["edited"] for b in br)
print(0 if ok else 1, "%d replays (origin on b1, origin on main, from s0, origin on b1.1): steps %s, all verified "
      "and bit-identical: %s; branches %s" % (len(rep), [o.get("steps") for o in rep], not bad, names))
EOF
)
check ${r%% *} "(b) ${r#* }"

# --- (c) replay --verify fails, naming the step, when one recorded token is altered
ms "$M" -c 'feed abcdefgh' -c 'set L2.H0[0,0] 3' -c 'feed ijkl' -c "save $T/c.st"
need "(c) setup"
$PY - "$T/c.st" "$T/c-tok.st" "$T/c-val.st" <<'EOF'
import sys, json, st
def tok(m):
    t = json.loads(m['tokens']); t[9] = (t[9] + 1) % 256; m['tokens'] = json.dumps(t)
def val(m):
    e = json.loads(m['edits']); e[0]['value'] = 3.5; m['edits'] = json.dumps(e)
st.put_meta(sys.argv[1], sys.argv[2], tok)
st.put_meta(sys.argv[1], sys.argv[3], val)
EOF
ms "$M" -c "open $T/c.st" -c 'replay --verify'
check $rc "(c) the untouched file: open + replay --verify passes: $(tail -1 "$T/out" | cut -c1-110)"
# token 9 (0-based) follows 8 tokens and the edit: it is event 11
ms "$M" -c "open $T/c-tok.st" -c "save $T/c-before.st" -c 'replay --verify'
n=$(wc -l <"$T/err")
[ $rc != 0 ] && [ "$n" = 1 ] && grep -q "^replay: step 11 (token " "$T/err" && grep -q "nothing changed" "$T/err"
check $? "(c) token 9 altered in the file: exit $rc, $n line: $(cat "$T/err")"
"$MS" "$M" -c "open $T/c-tok.st" -c "save $T/c-b.st" -c 'replay --verify' -c "save $T/c-a.st" </dev/null >/dev/null 2>&1
cmp -s "$T/c-b.st" "$T/c-a.st"
check $? "(c) the failed verify changed nothing (state file before = after, cmp)"
ms "$M" -c "open $T/c-val.st" -c 'replay --verify'
[ $rc != 0 ] && grep -q "^replay: step 9 (set L2.H0\[0,0\] 3.5" "$T/err"
check $? "(c) the edit's value altered (3 -> 3.5): $(cat "$T/err")"

# --- (d) determinism; goto P = a run of the first P tokens; checkpoints bounded
TXT='In the beginning was the state, and the state was with the model.'
for k in 1 2; do
    ms "$M" -c 'set-sampler temp=0.8 top_p=0.9 seed=42' -c 'feed Hi' -c 'noise L1.H0 0.1' -c 'gen 20' \
        -c 'fork f' -c 'scale-state L2.* 1.5' -c 'gen 5' -c "save $T/d$k.st"
    need "(d) run $k"
done
cmp -s "$T/d1.st" "$T/d2.st"
check $? "(d) the same commands twice (sampling, default-seed noise, fork, scale): identical state files (cmp)"
printf 'checkpoints every=8 max=3\nfeed %s\n' "$TXT" >"$T/d.ms"
ps="0 1 7 8 9 23 40 64"
for p in $ps; do printf 'goto %s\nsave %s/g%s.st\n' "$p" "$T" "$p" >>"$T/d.ms"; done
printf 'goto end\nsave %s/gend.st\ncheckpoints\n' "$T" >>"$T/d.ms"
ms "$M" --json -x "$T/d.ms"
need "(d) gotos"
cp "$T/out" "$T/d.json"
okc=0; okn=0
for p in $ps; do
    printf '%s' "$TXT" | head -c "$p" >"$T/pre.txt"
    ids=$(od -An -tu1 -v "$T/pre.txt" | tr -s ' \n' ' ')
    if [ "$p" = 0 ]; then ms "$M" -c "save $T/r$p.st"; else ms "$M" -c "feed-tokens $ids" -c "save $T/r$p.st"; fi
    okn=$((okn + 1))
    cmp -s "$T/g$p.st" "$T/r$p.st" && okc=$((okc + 1))
done
ms "$M" -c "feed $TXT" -c "save $T/rend.st"
cmp -s "$T/gend.st" "$T/rend.st" && okc=$((okc + 1)); okn=$((okn + 1))
[ $okc = $okn ]
check $? "(d) goto P then save = a fresh run of the first P tokens, for P in $ps end: $okc of $okn identical (cmp)"
r=$($PY - "$T/d.json" <<'EOF'
import sys, json
o = [json.loads(l) for l in open(sys.argv[1])]
g = [x["replayed"] for x in o if x["cmd"] == "goto"]
ck = [x for x in o if x["cmd"] == "checkpoints"][-1]
ok = ck["count"] <= 3 and max(g) <= ck["max_gap"] and ck["max_gap"] <= 32
print(0 if ok else 1, "checkpoints kept %d (max 3), longest gap %d events; events replayed per goto %s (max %d)"
      % (ck["count"], ck["max_gap"], g, max(g)))
EOF
)
check ${r%% *} "(d) ${r#* }"

# --- (e) diff: a point with itself is 0, KL 0; KL >= 0 and equals numpy's
ms "$M" --json -c 'feed The quick' -c 'snap x' -c "save-logits $T/ex.bin" -c 'feed brown' -c "save-logits $T/ey.bin" \
    -c 'diff x x' -c 'diff now now L3.*' -c 'diff x now' -c 'fork br' -c 'diff main br'
need "(e) diff"
r=$($PY - "$T/out" "$T/ex.bin" "$T/ey.bin" <<'EOF'
import sys, json, numpy as np, st
d = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["cmd"] == "diff"]
worst0 = max(max(r["norm_diff"] for r in x["rows"]) for x in (d[0], d[1], d[3]))
kl0 = max(abs(x["kl"]) for x in (d[0], d[1], d[3]))
cos = min(r["cos"] for x in (d[0], d[1]) for r in x["rows"] if r["cos"] is not None)
ref = st.kl(np.fromfile(sys.argv[2], '<f4'), np.fromfile(sys.argv[3], '<f4'))
dk = abs(d[2]["kl"] - ref)
ok = worst0 == 0 and kl0 == 0 and cos > 1 - 1e-12 and d[2]["kl"] >= 0 and dk <= 1e-9 * max(1, ref)
print(0 if ok else 1, "self-diffs: worst |B-A| = %g, |KL| = %g, min cosine %.15f; x vs now: KL = %.12g, numpy %.12g "
      "(|d| %.2g, limit 1e-9 rel), rows %d" % (worst0, kl0, cos, d[2]["kl"], ref, dk, len(d[2]["rows"])))
EOF
)
check ${r%% *} "(e) ${r#* }"

# --- (f) patching a head from a snapshot equals setting it by hand
ms "$M" -c 'feed Source text' -c 'snap src' -c "export L4.H0 $T/f-src.npy" -c 'feed , and more' \
    -c 'patch L4.H0 from src' -c "save $T/f-patch.st"
need "(f) patch"
$PY - "$T/f-src.npy" >"$T/f-set.ms" <<'EOF'
import sys, numpy as np
a = np.load(sys.argv[1])
print('feed Source text\nfeed , and more')
for i in range(a.shape[0]):
    for j in range(a.shape[1]):
        print('set L4.H0[%d,%d] %.9g' % (i, j, a[i, j]))
EOF
ms "$M" -x "$T/f-set.ms" -c "save $T/f-set.st"
need "(f) set by hand"
r=$($PY - "$T/f-patch.st" "$T/f-set.st" "$T/f-src.npy" <<'EOF'
import sys, numpy as np, st
a, b = st.state(sys.argv[1]), st.state(sys.argv[2])
ts, _ = st.load(sys.argv[1]); src = np.load(sys.argv[3])
dh = float(np.abs(ts['blocks.4.att.time_state'][0].astype(np.float64) - src).max())
d = float(np.abs(a.astype(np.float64) - b).max())
ok = d == 0 and np.array_equal(a.view('<u4'), b.view('<u4')) and dh == 0
print(0 if ok else 1, "whole state, patch vs 4096 sets: max |d| = %g (bitwise equal: %s); patched head vs the "
      "snapshot's exported head: max |d| = %g" % (d, np.array_equal(a.view('<u4'), b.view('<u4')), dh))
EOF
)
check ${r%% *} "(f) ${r#* }"

# --- (g) export: .npy and .csv in numpy, the target's shape, the state file's values
ms "$M" -c 'feed Export me' -c "save $T/g.st" -c "export L2.H0 $T/g1.npy" -c "export L2.H0[3,:] $T/g2.npy" \
    -c "export L2.H0[:,5] $T/g3.npy" -c "export L2.H0[3,5] $T/g4.npy" -c "export L2.att_x $T/g5.npy" \
    -c "export L2.ffn_x[7] $T/g6.npy" -c "export L2.* $T/g7.npy" -c "export * $T/g8.npy" -c "export L2.H0 $T/g1.csv" \
    -c "export L2.H0[:,5] $T/g3.csv"
need "(g) export"
r=$($PY - "$T" <<'EOF'
import sys, numpy as np, st
T = sys.argv[1]; ts, _ = st.load(T + '/g.st'); S = ts['blocks.2.att.time_state'][0]
flat = st.state(T + '/g.st'); C = ts['blocks.0.att.x_prev'].size; ll = flat.size // 12
want = {'g1': S, 'g2': S[3, :], 'g3': S[:, 5], 'g4': S[3, 5], 'g5': ts['blocks.2.att.x_prev'],
        'g6': ts['blocks.2.ffn.x_prev'][7], 'g7': flat[2 * ll:3 * ll], 'g8': flat}
out = []; ok = True
for k, w in want.items():
    a = np.load('%s/%s.npy' % (T, k)); w = np.asarray(w)
    same = a.dtype == np.dtype('<f4') and a.shape == w.shape and np.array_equal(a, w)
    ok &= same; out.append('%s %s%s' % (k, a.shape, '' if same else ' DIFFERS'))
for k, w in (('g1', S), ('g3', S[:, 5])):
    a = np.loadtxt('%s/%s.csv' % (T, k), delimiter=',', dtype=np.float32)
    same = a.shape == w.shape and np.array_equal(a, w)
    ok &= same; out.append('%s.csv %s%s' % (k, a.shape, '' if same else ' DIFFERS'))
print(0 if ok else 1, "numpy.load/loadtxt equal to the state file's tensors (exact): " + ", ".join(out))
EOF
)
check ${r%% *} "(g) ${r#* }"

# --- (h) sweep patch on a 4-head model against patch + feed-tokens + save-logits
D=$B/golden/D.safetensors
if [ ! -f "$D" ]; then
    $PY scripts/make_random.py --layers 3 --embd 64 --heads 4 --head-size 16 --ptok 257 --sse-heads 4 \
        --lora 6,5,4,7 --vocab 256 --tokenizer bytes --seed 5 "$T/D.safetensors" >/dev/null && D=$T/D.safetensors
fi
ms "$D" --json -c 'feed Patch source' -c 'snap src' -c reset -c 'feed Other prefix!' -c 'sweep patch L1.* from src 65' \
    -c 'sweep patch L2.* from now 65'
need "(h) sweep"
cp "$T/out" "$T/h.json"
ms "$D" -c 'feed Other prefix!' -c 'feed-tokens 65' -c "save-logits $T/h-base.bin"
for h in 0 1 2 3; do
    ms "$D" -c 'feed Patch source' -c 'snap src' -c reset -c 'feed Other prefix!' -c "patch L1.H$h from src" \
        -c 'feed-tokens 65' -c "save-logits $T/h$h.bin"
done
r=$($PY - "$T" <<'EOF'
import sys, json, numpy as np, st
T = sys.argv[1]
sw = [json.loads(l) for l in open(T + '/h.json') if json.loads(l)["cmd"] == "sweep"]
base = np.fromfile(T + '/h-base.bin', '<f4'); worst = 0
for r in sw[0]["rows"]:
    ref = st.kl(base, np.fromfile('%s/h%d.bin' % (T, r["head"]), '<f4'))
    worst = max(worst, abs(r["kl_cur"] - ref) / max(1e-12, ref))
self0 = max(abs(r["kl_cur"]) for r in sw[1]["rows"])
ok = len(sw[0]["rows"]) == 4 and worst <= 1e-9 and self0 == 0 and all(r["kl_cur"] >= 0 for r in sw[0]["rows"])
print(0 if ok else 1, "4 rows; kl_cur vs numpy KL of (feed) and (patch head, feed) logits: worst relative |d| = %.2g "
      "(limit 1e-9); kl_cur values %s; patching from 'now': max kl_cur = %g"
      % (worst, ["%.4g" % r["kl_cur"] for r in sw[0]["rows"]], self0))
EOF
)
check ${r%% *} "(h) ${r#* }"

# --- (i) record -> -x reproduces the session; history; --json one object per command
# (without --batch the session goes on after the failing 'top 0'; stdin is empty)
"$MS" "$M" -c "record $T/rec.ms" -c 'feed Recorded' -c 'set L0.H0[0,0] 1' -c 'fork x' -c 'gen 4' -c 'top 0' \
    -c 'goto 3' -c 'feed !' -c 'record off' -c "save $T/i1.st" </dev/null >/dev/null 2>&1
grep -q '^# failed: top 0$' "$T/rec.ms" && ! grep -q '^record' "$T/rec.ms"
check $? "(i) record: the failed 'top 0' written as a comment, the record command itself not written"
ms "$M" -x "$T/rec.ms" -c "save $T/i2.st"
need "(i) -x of the record"
cmp -s "$T/i1.st" "$T/i2.st"
check $? "(i) -x of the recorded file reproduces the state file (cmp)"
"$MS" "$M" --json -c 'feed a' -c 'display L0.H0[0,0]' -c 'display L1.H0' -c 'feed b' -c 'undisplay 2' -c display \
    -c 'fork f' -c branches -c 'switch main' -c 'goto 0' -c 'goto end' -c events -c 'set L0.att_x 0' -c 'zero L1.*' \
    -c 'scale-state L2.H0 2' -c 'noise L3.H0 0.1 1' -c 'snap s' -c 'patch L4.H0 from s' -c 'diff s now' \
    -c 'sweep patch L5.* from s' -c 'replay --verify' -c 'replay s' -c checkpoints -c mem -c history \
    -c "export L0.H0 $T/j.npy" -c 'drop-branch f' -c 'help goto' -c 'help targets' -c 'goto 99' \
    -c 'set L0.H9 1' </dev/null >"$T/j.out" 2>"$T/j.err"
r=$($PY - "$T/j.out" <<'EOF'
import sys, json
lines = open(sys.argv[1], 'rb').read().split(b'\n')[:-1]
cmds = []; badl = []
for i, l in enumerate(lines):
    try:
        o = json.loads(l.decode()); cmds.append(o["cmd"] + ("" if o["ok"] else "!"))
    except Exception as e:
        badl.append("%d: %s" % (i + 1, e))
want = 31
disp = [json.loads(l) for l in lines][3].get("display", [])
ok = not badl and len(lines) == want and cmds[-2:] == ["goto!", "set!"] and len(disp) == 2
print(0 if ok else 1, "%d lines (want %d), all parse: %s; displays after 'feed b': %d; %s"
      % (len(lines), want, not badl, len(disp), " ".join(cmds)))
EOF
)
check ${r%% *} "(i) --json: ${r#* }"

# --- (j) seeded random scripts of every kind of command (edits, forks, gotos,
# switches, opens, sampling, bad arguments): afterwards replay --verify passes
# on the current branch at its end, at event 1 and at the end again, and the
# same script run twice saves the same file
r=$($PY - "$MS" "$M" "$T" 30 <<'EOF'
import random, subprocess, sys, json, os
MS, M, T, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
names = ['s1', 's2', 'b1', 'b2', 'main', 'main.1', 'now']
tg = ['*', 'L0.*', 'L3.H0', 'L0.H0[1,2]', 'L1.H0[:,3]', 'L2.H0[5,:]', 'L11.att_x', 'L4.ffn_x[3]', 'L12.H0', 'Lx']
num = ['0', '1', '-1', '0.5', '1e39', 'nan', '3', '20']
def line(r):
    c = r.choice(['feed', 'gen', 'step', 'snap', 'restore', 'fork', 'switch', 'goto', 'replay', 'set', 'zero',
                  'scale-state', 'noise', 'patch', 'save', 'open', 'reset', 'set-sampler', 'drop-branch', 'checkpoints'])
    pick = {'feed': lambda: 'feed ' + r.choice(['abc', 'Hello', 'z']), 'gen': lambda: 'gen %d' % r.randrange(1, 6),
            'step': lambda: 'step %d' % r.randrange(1, 4),
            'goto': lambda: 'goto ' + r.choice(['end', '@1', '2', '5', '-1', '9']),
            'replay': lambda: 'replay ' + r.choice(['', '--verify', 's1', 's1 --verify']),
            'set': lambda: 'set %s %s' % (r.choice(tg), r.choice(num)), 'zero': lambda: 'zero ' + r.choice(tg),
            'scale-state': lambda: 'scale-state %s %s' % (r.choice(tg), r.choice(num)),
            'noise': lambda: 'noise %s %s %s' % (r.choice(tg), r.choice(num), r.choice(['', '7'])),
            'patch': lambda: 'patch %s from %s' % (r.choice(tg), r.choice(names)),
            'save': lambda: 'save %s %s/%s' % (r.choice(['', 's1']), T, r.choice(['j1.st', 'j2.st'])),
            'open': lambda: 'open %s/%s %s' % (T, r.choice(['j1.st', 'j2.st']), r.choice(['', 'o1', 's2'])),
            'set-sampler': lambda: 'set-sampler temp=%s seed=%d' % (r.choice(['0', '0.7', '1']), r.randrange(3)),
            'checkpoints': lambda: 'checkpoints ' + r.choice(['every=2 max=3', 'every=4', 'max=2'])}
    return pick[c]() if c in pick else c + ('' if c == 'reset' else ' ' + r.choice(names))
bad = []; steps = 0
for k in range(n):
    r = random.Random(k)
    lines = [line(r) for _ in range(r.randrange(10, 40))]
    saves = []
    for rep in (0, 1):
        for f in ('j1.st', 'j2.st'):   # each run starts without the files the last saved
            if os.path.exists('%s/%s' % (T, f)): os.remove('%s/%s' % (T, f))
        script = lines + ['goto end', 'replay --verify', 'goto @1', 'replay --verify', 'goto end', 'replay --verify',
                          'save %s/final%d.st' % (T, rep)]
        args = [MS, M, '--json']
        for l in script: args += ['-c', l]
        p = subprocess.run(args, capture_output=True, text=True, errors='replace', stdin=subprocess.DEVNULL)
        o = [json.loads(x) for x in p.stdout.splitlines()]
        ver = [x for x in o if x["cmd"] == "replay"][-3:]
        steps += sum(x.get("steps", 0) for x in ver)
        if p.returncode != 0 or len(o) != len(script) or not all(x["ok"] for x in ver):
            bad.append("script %d: status %d, %d results, %s" % (k, p.returncode, len(o), [x.get("error") for x in ver]))
            break
        saves.append(open('%s/final%d.st' % (T, rep), 'rb').read())
    if len(saves) == 2 and saves[0] != saves[1]:
        bad.append("script %d: two runs saved different files" % k)
print(0 if not bad else 1, "%d scripts run twice, %d verified replay steps, all passed and both runs' files "
      "identical: %s" % (n, steps, "; ".join(bad[:3]) if bad else "yes"))
EOF
)
check ${r%% *} "(j) ${r#* }"

echo "test_debugger: $fails failed"
[ $fails = 0 ]
