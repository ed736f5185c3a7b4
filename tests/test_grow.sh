#!/bin/sh
# test_grow.sh: progressive scaling end to end, C against Python.  On random
# models (F32 with one SSE head; BF16 plain RWKV-7; F16 with parameter-token
# experts)
# and models/kjv.safetensors when it exists, for each growth step:
#   - ./metastate grows the loaded model with a snapshot stored, reports the
#     largest logit change (<= 1e-5), saves it; the saved file loads and gives
#     the original's logits within 1e-5 after 64 tokens, and so does the run
#     grown half-way (from the snapshot taken after 32 tokens);
#   - scripts/grow.py grows the same file (it checks the float64 reference
#     before/after itself), and the C-grown and Python-grown files are equal
#     tensor for tensor, bit for bit (the random parts come from the shared
#     splitmix64 streams), with the same growth history; the C program gives
#     bit-identical logits on both;
#   - the reference (float64) gives the same logits on the C-grown file as on
#     the original (64 tokens, <= 1e-5), and trains it: 3 AdamW steps, every
#     loss finite, and the new parameters receive gradient;
# plus the command's refusals (one line, non-zero exit, nothing changed).
# Prints every comparison and its worst difference; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-grow.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
. tests/lib.sh
[ -x "$MS" ] || { echo "test_grow: $MS is not built"; exit 1; }

mk() { $PY scripts/make_random.py "$@" >/dev/null || bad "make_random $*"; }
mk --layers 2 --embd 64 --heads 2 --head-size 32 --ptok 128 --sse-heads 1 --lora 8,6,4,10 --seed 11 "$T/f32.safetensors"
mk --layers 2 --embd 64 --heads 2 --head-size 32 --ptok 128 --sse-heads 0 --lora 8,6,4,10 --seed 12 --dtype bf16 \
    "$T/bf16.safetensors"
mk --layers 2 --embd 64 --heads 2 --head-size 32 --ptok 128 --sse-heads 1 --lora 8,6,4,10 --seed 13 --experts 4 \
    --top-k 2 --dtype f16 "$T/experts.safetensors"
MODELS="$T/f32.safetensors $T/bf16.safetensors $T/experts.safetensors"
[ -f models/kjv.safetensors ] && MODELS="$MODELS models/kjv.safetensors"

# 64 token ids below 256 (every model here has the bytes tokenizer), fixed
ALL=$(awk 'BEGIN { x = 7; for (i = 0; i < 64; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%d ", x % 251 } }')
FIRST=$(echo $ALL | cut -d' ' -f1-32)
LAST=$(echo $ALL | cut -d' ' -f33-64)

: >"$T/manifest"
for M in $MODELS; do
    b=$(basename "$M" .safetensors)
    ms "$M" -c "feed-tokens $ALL" -c "save-logits $T/$b.orig.bin"
    [ $rc = 0 ] || { bad "$b: original run exited $rc: $(cat "$T/err")"; continue; }
    ms "$M" --json -c info
    E=$(sed -n 's/.*"n_experts":\([0-9]*\).*/\1/p' "$T/out")
    for step in "tokens $((E > 1 ? 2 * E : 8)) 5" "sse 1" "heads 1 6"; do
        set -- $step
        op=$1 k=$2 seed=${3:-0}
        g=$b.$op$k
        seedarg=${3:+ $3}
        ms "$M" --json -c "feed-tokens $FIRST" -c snap -c "feed-tokens $LAST" -c "grow $op $k$seedarg" \
            -c "save-model $T/$g.c.safetensors" -c "info" -c "restore s1" -c "feed-tokens $LAST" \
            -c "save-logits $T/$g.mid.bin"
        if [ $rc != 0 ]; then
            if grep -q "no SSE head can be added" "$T/err"; then
                echo "  (skip) $b: grow $op $k: $(cat "$T/err")"
                continue
            fi
            bad "$b: grow $op $k exited $rc: $(cat "$T/err")"
            continue
        fi
        cp "$T/out" "$T/$g.json"
        ms "$T/$g.c.safetensors" -c "feed-tokens $ALL" -c "save-logits $T/$g.cfile.bin"
        [ $rc = 0 ] || bad "$b: the C-grown file does not run: $(cat "$T/err")"
        echo "$M $T/$g $op $k $seed" >>"$T/manifest"
    done
done

# scripts/grow.py as a command, once per kind of step (it checks the float64
# reference before/after itself); the other steps use its grow() in-process below
for step in "tokens 8 5" "sse 1 0" "heads 1 6"; do
    set -- $step
    if $PY scripts/grow.py "$T/f32.safetensors" "$T/cli.$1.safetensors" $1 $2 --seed $3 >"$T/grow.out" 2>&1 &&
        cmp -s "$T/cli.$1.safetensors" "$T/f32.$1$2.c.safetensors"; then
        ok "scripts/grow.py f32 $1 $2: file identical to ./metastate's save-model (cmp); $(tail -1 "$T/grow.out" | sed 's/^grow: //')"
    else
        bad "scripts/grow.py f32 $1 $2: $(cat "$T/grow.out"); cmp with the C-grown file: $?"
    fi
done

# The comparisons that need the reference, in one Python process.
$PY - "$T/manifest" <<'EOF' >"$T/py.out" 2>&1
import json, math, sys
import numpy as np, torch, torch.nn.functional as F
sys.path.insert(0, "scripts")
import metastate_ref as ref, safetensors_io, grow
torch.manual_seed(0)
ALL = None
def bits(t):
    return t.reshape(-1).contiguous().view(torch.int32 if t.dtype == torch.float32 else torch.int16)
def say(ok, msg):
    print(("  ok   " if ok else "  FAIL ") + msg)
for line in open(sys.argv[1]):
    src, g, op, k, seed = line.split()
    k, name = int(k), g.rsplit("/", 1)[1]
    so, mo = safetensors_io.load(src)
    sc, mc = safetensors_io.load(g + ".c.safetensors")
    sp, mp = grow.grow(so, mo, op, k, int(seed))
    safetensors_io.save(g + ".py.safetensors", sp, mp)   # ./metastate runs it below
    # C-grown vs Python-grown, tensor for tensor
    diff = [n for n in sc if n not in sp or sc[n].dtype != sp[n].dtype or sc[n].shape != sp[n].shape
            or not torch.equal(bits(sc[n]), bits(sp[n]))]
    diff += [n for n in sp if n not in sc]
    say(not diff and mc["growth"] == mp["growth"] and mc["sse_heads"] == mp["sse_heads"],
        f"{name}: C-grown vs Python-grown: {len(sc)} tensors, {len(diff)} differ{' (' + diff[0] + ')' if diff else ''}"
        f" (bit for bit); growth {mc['growth']}")
    # the grow command's own report
    res = [json.loads(l) for l in open(g + ".json")]
    gr = next(r for r in res if r["cmd"] == "grow")
    info = next(r for r in res if r["cmd"] == "info")
    say(gr["max_logit_change"] <= 1e-5 and gr["states"] == 2 and info["growth"] == mc["growth"] == gr["growth"],
        f"{name}: grow {op} {k} in ./metastate: largest logit change {gr['max_logit_change']:.3g} over "
        f"{gr['states']} stored states (limit 1e-5); grow and info report the file's growth history")
    # C logits: original vs C-grown file vs grown half-way (from the snapshot)
    lo = np.fromfile(g.rsplit(".", 1)[0] + ".orig.bin", "<f4").astype(np.float64)
    lf = np.fromfile(g + ".cfile.bin", "<f4").astype(np.float64)
    lm = np.fromfile(g + ".mid.bin", "<f4").astype(np.float64)
    d1, d2 = np.abs(lo - lf).max(), np.abs(lo - lm).max()
    say(d1 <= 1e-5 and d2 <= 1e-5, f"{name}: ./metastate logits after 64 tokens, original vs grown file: max |d| "
        f"{d1:.3g}; vs grown after token 32 (snapshot restored, 32 more): {d2:.3g} (limit 1e-5)")
    # the reference on the original and on the C-grown file
    a = ref.MetaState.from_state_dict(so, mo, dtype=torch.float64)
    b = ref.MetaState.from_state_dict(sc, mc, dtype=torch.float64)
    toks = torch.tensor(np.random.default_rng(1).integers(0, a.cfg.vocab_size, 64))
    with torch.no_grad():
        la, _ = a.forward_seq(toks)
        lb, _ = b.forward_seq(toks)
        st = a.forward_seq(toks[:32])[1]
        conv = [(ax, torch.cat([S, torch.zeros(b.cfg.n_head - a.cfg.n_head, *S.shape[1:], dtype=S.dtype)]), fx)
                for ax, S, fx in st]
        lc, _ = b.forward_seq(toks[32:], conv)
    d, dm = (la - lb).abs().max().item(), (la[32:] - lc).abs().max().item()
    say(d <= 1e-5 and dm <= 1e-5, f"{name}: reference (float64) logits over 64 tokens, original vs C-grown: max "
        f"|d| {d:.3g}; grown after token 32 (state: new heads zero): {dm:.3g} (limit 1e-5)")
    # training: a few AdamW steps of the reference (float32) on the C-grown file
    m = ref.MetaState.from_state_dict(sc, mc, dtype=torch.float32)
    V, cfg, cfg0 = m.cfg.vocab_size, m.cfg, a.cfg
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    losses, newgrad = [], 0.0
    for it in range(3):
        x = torch.randint(0, V, (2, 17), generator=gen)
        lg, _ = m.forward_seq(x[:, :-1], fast="loop")
        loss = F.cross_entropy(lg.reshape(-1, V), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        f = m.blocks[0].ffn
        if op == "tokens":
            newcols = (sc["blocks.0.ffn.value.weight"] == 0).all(0)
            gpart = f.value.weight.grad[:, newcols]
        elif op == "sse":
            gpart = f.sse_key.weight.grad[:, cfg0.sse_heads * cfg0.head_size:]
        else:
            gpart = m.blocks[0].att.output.weight.grad[:, cfg0.dim_att:]
        newgrad = max(newgrad, gpart.abs().max().item())
        opt.step()
        losses.append(loss.item())
    say(all(math.isfinite(l) for l in losses) and newgrad > 0,
        f"{name}: 3 AdamW steps of the reference on the C-grown file: losses {', '.join(f'{l:.4f}' for l in losses)}"
        f" (finite); largest gradient on the new parameters {newgrad:.3g} (> 0)")
EOF
cat "$T/py.out"
n=$(grep -c "^  FAIL" "$T/py.out")
fails=$((fails + n))
grep -q "^  ok" "$T/py.out" || bad "the Python comparisons did not run: $(tail -3 "$T/py.out")"
while read -r M g op k seed; do
    b=$(basename "$g")
    ms "$g.py.safetensors" -c "feed-tokens $ALL" -c "save-logits $g.pyfile.bin"
    [ $rc = 0 ] || bad "$b: the Python-grown file does not run in C: $(cat "$T/err")"
    cmp -s "$g.cfile.bin" "$g.pyfile.bin"
    check $? "$b: ./metastate on the C-grown and the Python-grown file: logits after 64 tokens bit-identical (cmp)"
done <"$T/manifest"

# refusals: one line on stderr, non-zero exit
expect_fail() {
    pat=$1; shift
    ms "$@"
    n=$(wc -l <"$T/err")
    if [ $rc != 0 ] && [ "$n" = 1 ] && grep -q -- "$pat" "$T/err"; then ok "refused: $(cat "$T/err")"
    else bad "$*: exit $rc, $n stderr lines, want /$pat/: $(cat "$T/err")"; fi
}
F=$T/f32.safetensors
expect_fail "takes no SEED" "$F" -c 'grow sse 1 5'
expect_fail "multiple of 2E = 8" "$T/experts.safetensors" -c 'grow tokens 4'
expect_fail "unknown growth" "$F" -c 'grow neurons 1'
expect_fail "K must be" "$F" -c 'grow heads 0'
expect_fail "no SSE head can be added" "$F" -c 'grow sse 1' -c 'grow sse 1'
expect_fail "is a character device; files are written only as regular files" "$F" -c 'save-model /dev/null'
expect_fail "at most 3 arguments" "$F" -c 'grow heads 1 2 3'
# a refused step changes nothing: the state file before and after is the same
# (without --batch the commands after a failing one still run)
"$MS" "$F" --plain -c "feed-tokens $FIRST" -c "save $T/s1.st" -c 'grow tokens 0' -c 'grow sse 2' \
    -c "save $T/s2.st" </dev/null >"$T/out" 2>"$T/err"
cmp -s "$T/s1.st" "$T/s2.st"
check $? "refused grow tokens 0 and grow sse 2 leave the session as it was (state file cmp; $(wc -l <"$T/err") error lines)"

# train.py --init-from: the shipped parity model grown in C by all three kinds
# trains on (3 steps), keeps the grown shape and the growth history, and the
# result loads in ./metastate with the same task accuracy that train.py stored
if [ -f models/parity.safetensors ]; then
    ms models/parity.safetensors -c 'grow tokens 16' -c 'grow sse 1' -c 'grow heads 1' \
        -c "save-model $T/pg.safetensors"
    $PY scripts/train.py task parity "$T/pt.safetensors" --init-from "$T/pg.safetensors" --batch 8 --ctx 16 \
        --steps 3 --warmup 1 --lr 1e-4 --threads 1 --eval-every 100 --ckpt "$T/pt.ckpt" >"$T/tr.out" 2>&1
    check $? "train.py --init-from a C-grown parity model: 3 steps ($(tail -1 "$T/tr.out" | cut -c1-90))"
    ms "$T/pt.safetensors" -c info
    grep -q 'shape .*H5 .*n272 Hs3' "$T/out" && grep -q '"op":"heads"' "$T/out"
    check $? "the trained file keeps the grown shape and its growth history: $(grep -E '^(shape|growth)' "$T/out" | tr -s ' ' | tr '\n' ' ')"
    $PY scripts/check_models.py --metastate "$MS" "$T/pt.safetensors" >"$T/cm.out" 2>&1
    check $? "./metastate gives the accuracy train.py stored: $(grep -o 'max |d| [0-9.e-]*' "$T/cm.out")"
    $PY scripts/train.py task s3 "$T/bad.safetensors" --init-from "$T/pg.safetensors" --steps 1 >"$T/tr.out" 2>&1
    [ $? != 0 ] && grep -q -- "--init-from .*vocab" "$T/tr.out"
    check $? "--init-from a parity model for s3 is refused: $(tail -1 "$T/tr.out")"
fi

echo "test_grow.sh: $fails failed"
[ $fails = 0 ]
