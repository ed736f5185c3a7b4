#!/bin/sh
# test_train.sh: train.py --time-budget.  A run that picks its own --steps
# from its speed equals, tensor for tensor, the run with the --steps it
# recorded (the command stored in the file's notes); the combination with
# --resume is refused in one line.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d "${TMPDIR:-/tmp}/ms-train.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
fails=0
check() { if [ "$1" = 0 ]; then echo "  ok   $2"; else echo "  FAIL $2"; fails=$((fails + 1)); fi; }
args="task parity --layers 1 --embd 32 --head-size 16 --lora 4,4,4,4 --batch 8 --ctx 8 --warmup 30 --threads 1
      --eval-every 100000 --log-every 1000 --sse-heads 1 --ptok 32 --seed 3"
# shellcheck disable=SC2086
set -- $args
t=$1 name=$2; shift 2
$PY scripts/train.py "$t" "$name" "$T/a.safetensors" "$@" --time-budget 0.1 --ckpt "$T/a.ckpt" >"$T/a.out" 2>&1
check $? "train.py --time-budget 0.1: $(grep -o 'time-budget: .*' "$T/a.out")"
n=$(sed -n 's/.*so --steps \([0-9]*\).*/\1/p' "$T/a.out")
$PY - "$T/a.safetensors" "$n" <<'PY' >"$T/cmd.out" 2>&1
import sys
sys.path.insert(0, "scripts")
import safetensors_io
_, meta = safetensors_io.load(sys.argv[1])
cmd = meta["notes"].split("Trained with: ")[1]
assert cmd.endswith(f"--steps {sys.argv[2]}") and "--time-budget" not in cmd, cmd
print(cmd)
PY
check $? "the file records the command with --steps ${n:-?} and no --time-budget: $(cut -c1-80 "$T/cmd.out")..."
$PY scripts/train.py "$t" "$name" "$T/b.safetensors" "$@" --steps "${n:-1}" --ckpt "$T/b.ckpt" >"$T/b.out" 2>&1
$PY - "$T/a.safetensors" "$T/b.safetensors" <<'PY' >"$T/cmp.out" 2>&1
import sys
sys.path.insert(0, "scripts")
import safetensors_io
a, _ = safetensors_io.load(sys.argv[1])
b, _ = safetensors_io.load(sys.argv[2])
assert a.keys() == b.keys()
worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
print(f"{len(a)} tensors, worst |d| {worst:g}")
sys.exit(worst != 0)
PY
check $? "the same command with --steps $n gives the same tensors: $(cat "$T/cmp.out")"
$PY scripts/train.py "$t" "$name" "$T/c.safetensors" "$@" --time-budget 0.1 --resume --ckpt "$T/a.ckpt" >"$T/c.out" 2>&1
[ $? != 0 ] && [ "$(wc -l <"$T/c.out")" = 1 ] && grep -q "time-budget starts a fresh run" "$T/c.out"
check $? "--time-budget with --resume is refused: $(cat "$T/c.out")"
echo "test_train.sh: $fails failed"
[ $fails = 0 ]
