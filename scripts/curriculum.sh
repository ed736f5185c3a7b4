#!/bin/sh
# curriculum.sh: train a task model through a length curriculum, each stage
# starting from the last one's file (train.py --init-from).
#
#   sh scripts/curriculum.sh TASK OUTDIR NAME INIT STAGES [train.py options...]
#
# STAGES is a list of LEN:MINUTES:LR (or LEN:steps=N:LR): train on sequences
# of LEN with peak learning rate LR (cosine to --lr-min) for MINUTES of
# training time (train.py --time-budget, which records the steps it chose) or
# for N steps.  INIT is the file the first stage starts from (a model of the
# task's vocabulary).  Stage k writes OUTDIR/NAME-cLEN.safetensors, its log
# (.out) and checkpoint; the last stage's file is the result.  The options
# after STAGES go to every stage (batch, seed, device, threads...).
#
# Example (the s5 runs of models/README.md, on a GPU):
#   sh scripts/curriculum.sh s5 build/s5 ms-gpu build/s5/ms-c4b.safetensors \
#       "8:1.6:2e-3 16:3.2:1e-3" --batch 1024 --lr-min 1e-4 --warmup 50 --seed 0 --device cuda
set -eu
[ $# -ge 5 ] || { echo "usage: curriculum.sh TASK OUTDIR NAME INIT \"LEN:MINUTES:LR ...\" [train.py options]" >&2; exit 2; }
task=$1 out=$2 name=$3 prev=$4 stages=$5
shift 5
PY=${PY:-python3}
here=$(dirname "$0")
mkdir -p "$out"
[ -f "$prev" ] || { echo "curriculum.sh: no such model: $prev" >&2; exit 2; }
for st in $stages; do
    len=${st%%:*} rest=${st#*:}
    how=${rest%%:*} lr=${rest#*:}
    case $how in
        steps=*) budget="--steps ${how#steps=}" ;;
        *) budget="--time-budget $how" ;;
    esac
    f=$out/$name-c$len
    echo "curriculum: $name: length $len from $(basename "$prev"), $budget, lr $lr"
    # shellcheck disable=SC2086
    "$PY" "$here/train.py" task "$task" "$f.safetensors" --init-from "$prev" --ctx "$len" $budget \
        --lr "$lr" --ckpt "$f.ckpt" "$@" >"$f.out" 2>&1 || { tail -5 "$f.out" >&2; exit 1; }
    tail -1 "$f.out"
    prev=$f.safetensors
done
echo "curriculum: $name: done: $prev"
