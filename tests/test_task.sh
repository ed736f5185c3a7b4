#!/bin/sh
# test_task.sh: the `task` and `trace` commands.
#   task: on random `words` models whose vocabulary holds the tasks' tokens,
#   ./metastate's sequences (--dump) equal scripts/tasks.py's
#   sample_splitmix() for the same name, length, count and seed; its
#   per-position, per-bucket and overall accuracy equal an independent
#   computation with the float64 reference on those sequences (argmax
#   disagreements are allowed only at near-ties and are counted); bad
#   arguments and models without the task's tokens get one line.
#   trace: a dry run (the state file before and after is identical) whose
#   top-1 token and probability at each position equal `top 1` after
#   feeding the same tokens one by one.
# Prints every comparison; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.."
MS=${METASTATE:-./metastate}
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-task.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
. tests/lib.sh
[ -x "$MS" ] || { echo "test_task: $MS is not built"; exit 1; }

# W: parity, modcount-5 and s3 tokens (and one more word), in an order unlike the tasks'
W=$T/w.safetensors
$PY scripts/make_random.py --layers 2 --embd 64 --heads 2 --head-size 32 --ptok 128 --sse-heads 1 --lora 8,6,4,10 \
    --seed 21 --tokenizer words --words 321,4,x,0,123,1,132,2,213,3,231,312 "$W" >/dev/null || bad "make_random W"
# S5: the 120 permutations of s5 (and experts, for another code path)
S5W=$($PY -c "import sys; sys.path.insert(0, 'scripts'); import tasks; print(','.join(tasks.Task('s5').vocab))")
S5=$T/s5.safetensors
$PY scripts/make_random.py --layers 2 --embd 64 --heads 2 --head-size 32 --ptok 128 --sse-heads 2 --lora 8,6,4,10 \
    --seed 22 --experts 4 --top-k 2 --tokenizer words --words "$S5W" "$S5" >/dev/null || bad "make_random S5"

: >"$T/runs"
run_task() {   # model name len n seed
    d=$T/dump.$2.$5.json
    ms "$1" --json -c "task $2 $3 $4 $5 --dump $d"
    if [ $rc = 0 ]; then
        cp "$T/out" "$d.out"
        echo "$1 $2 $3 $4 $5 $d" >>"$T/runs"
    else
        bad "task $2 $3 $4 $5 exited $rc: $(cat "$T/err")"
    fi
}
run_task "$W" parity 40 30 1
run_task "$W" modcount-5 40 30 2
run_task "$W" s3 70 20 3
run_task "$S5" s5 20 12 4
ms "$W" -c 'task s3 20 4 9'
[ $rc = 0 ] && ok "text output:" && sed 's/^/        /' "$T/out" || bad "task in text mode: $(cat "$T/err")"

$PY - "$T/runs" <<'EOF' >"$T/py.out" 2>&1
import json, sys
import numpy as np, torch
sys.path.insert(0, "scripts")
import metastate_ref as ref, safetensors_io, tasks
def say(ok, msg):
    print(("  ok   " if ok else "  FAIL ") + msg)
for line in open(sys.argv[1]):
    path, name, L, N, seed, dump = line.split()
    L, N, seed = int(L), int(N), int(seed)
    d = json.load(open(dump))
    res = json.loads(open(dump + ".out").read())
    task = tasks.Task(name)
    x, y = tasks.sample_splitmix(task, N, L, seed)
    same_seq = d["vocab"] == task.vocab and d["inputs"] == x.tolist() and d["targets"] == y.tolist()
    say(same_seq, f"{name} {L} {N} {seed}: ./metastate's {N} sequences of {L} equal tasks.sample_splitmix's "
        f"(inputs and targets, vocabulary {len(task.vocab)} words in tasks.py's order)")
    sd, meta = safetensors_io.load(path)
    words = json.loads(meta["vocab"])
    ids = torch.tensor([words.index(w) for w in task.vocab])
    say(ids.tolist() == d["model_ids"], f"{name}: task token -> model id map {ids.tolist()[:8]}... agrees")
    model = ref.MetaState.from_state_dict(sd, meta, dtype=torch.float64)
    with torch.no_grad():
        lg, _ = model.forward_seq(ids[x])                       # (N, L, V) from the zero state
    am = lg.argmax(-1)
    ok = (am == ids[y]).double()
    per_pos = ok.mean(0).numpy()
    cpred = torch.tensor(d["argmax"])
    dis = (cpred != am)
    top2 = lg.topk(2, -1).values
    margin = (top2[..., 0] - top2[..., 1])
    worst_margin = margin[dis].max().item() if dis.any() else 0.0
    say(not dis.any() or worst_margin < 1e-4,
        f"{name}: argmax of ./metastate vs the float64 reference at {N * L} positions: {int(dis.sum())} differ"
        + (f" (all near-ties: reference top-2 margin <= {worst_margin:.2g})" if dis.any() else ""))
    # accuracy: C's report vs the reference's (from its own argmax)
    cpp = np.array(res["per_position"])
    dpp = np.abs(cpp - per_pos).max()
    buckets, lo, hi = [], 1, 8
    while lo <= L:
        h = min(hi, L)
        buckets.append((lo, h, ok[:, lo - 1:h].sum().item(), ok[:, lo - 1:h].numel()))
        lo, hi = hi + 1, hi * 2
    cb = [(b["from"], b["to"], b["correct"], b["total"]) for b in res["buckets"]]
    n_dis = int(dis.sum())
    # each disagreement can move one count by one
    bdiff = max(abs(a[2] - b[2]) for a, b in zip(buckets, cb)) if len(cb) == len(buckets) else 1e9
    say([b[:2] + b[3:] for b in buckets] == [b[:2] + b[3:] for b in cb] and bdiff <= n_dis and dpp <= n_dis / N
        and abs(res["accuracy"] - ok.mean().item()) <= n_dis / (N * L) + 1e-12,
        f"{name}: accuracy ./metastate {res['accuracy']:.4f} vs reference {ok.mean().item():.4f}; buckets "
        + " ".join(f"{b[0]}-{b[1]}:{b[2]}/{b[3]}" for b in cb) + f" (reference "
        + " ".join(f"{b[2]:.0f}" for b in buckets) + f"); per-position max |d| {dpp:.3g}")
EOF
cat "$T/py.out"
fails=$((fails + $(grep -c "^  FAIL" "$T/py.out")))
grep -q "^  ok" "$T/py.out" || bad "the Python comparison did not run: $(tail -3 "$T/py.out")"

# --- refusals: one line, non-zero exit
expect_fail() {
    pat=$1; shift
    ms "$@"
    n=$(wc -l <"$T/err")
    if [ $rc != 0 ] && [ "$n" = 1 ] && grep -q -- "$pat" "$T/err"; then ok "refused: $(cat "$T/err")"
    else bad "$*: exit $rc, $n stderr lines, want /$pat/: $(cat "$T/err")"; fi
}
TINY=tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin
expect_fail "'words' tokenizer" "$TINY" -c 'task parity'
expect_fail "missing: '12345'" "$W" -c 'task s5'
expect_fail "unknown task 'bogus'" "$W" -c 'task bogus'
expect_fail "modcount-K needs an integer K from 2" "$W" -c 'task modcount-1'
expect_fail "LEN must be an integer from 1" "$W" -c 'task parity 0'
expect_fail "needs a PATH" "$W" -c 'task parity 8 2 0 --dump'

# --- trace: a dry run, and its numbers equal top 1 after feeding
ms "$TINY" --json -c 'feed Hi' -c "save $T/t1.st" -c 'trace , there' -c "save $T/t2.st"
[ $rc = 0 ] || bad "trace exited $rc: $(cat "$T/err")"
cp "$T/out" "$T/trace.json"
cmp -s "$T/t1.st" "$T/t2.st"
check $? "trace leaves the state as it was (state file before and after, cmp)"
printf 'feed Hi\n' >"$T/top.ms"
for id in $(printf ', there' | od -An -tu1 -v); do printf 'feed-tokens %d\ntop 1\n' "$id" >>"$T/top.ms"; done
ms "$TINY" --json -x "$T/top.ms"
[ $rc = 0 ] || bad "feed/top exited $rc: $(cat "$T/err")"
r=$($PY - "$T/trace.json" "$T/out" <<'EOF'
import json, sys
tr = next(json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["cmd"] == "trace")
tops = [json.loads(l)["top"][0] for l in open(sys.argv[2]) if json.loads(l)["cmd"] == "top"]
st = tr["steps"]
same = len(st) == len(tops) == 7 and all(s["top_id"] == t["id"] and s["p"] == t["p"] for s, t in zip(st, tops))
pos = [s["position"] for s in st] == list(range(3, 10)) and tr["position"] == 2
print(0 if same and pos else 1, "%d positions: top-1 id and p equal top 1 after feeding, exactly; e.g. %s -> %s p=%.6f"
      % (len(st), st[0]["token"], st[0]["top_token"], st[0]["p"]))
EOF
)
check ${r%% *} "trace vs feed + top 1: ${r#* }"
ms "$TINY" -c 'feed Hi' -c 'trace , there'
[ $rc = 0 ] && ok "trace text output:" && sed 's/^/        /' "$T/out" | tail -8 || bad "trace text: $(cat "$T/err")"

echo "test_task.sh: $fails failed"
[ $fails = 0 ]
