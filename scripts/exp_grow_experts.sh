#!/bin/sh
# exp_grow_experts.sh: the two trained comparisons of models/README.md
# (issue #3): progressive scaling (grow kjv and continue, against the grown
# shape from scratch and against kjv continued without growing) and
# parameter-token experts (E = 4, top-1 against dense at equal active
# compute).  Every run: KJV, batch 8 x 256 bytes, 1.5M tokens, seed 0, one
# thread, nice 19; two runs at a time.  Outputs in build/exp/, logs beside.
#   sh scripts/exp_grow_experts.sh [RUN ...]   (default: all five)
set -e
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
D=build/exp
mkdir -p $D
T=1.5e6
COMMON="--batch 8 --ctx 256 --tokens $T --eval-every 100 --log-every 120 --threads 1 --seed 0"
SCRATCH="--lr 3e-3 --lr-min 1e-4 --warmup 100"       # kjv's own schedule
CONT="--lr 1e-3 --lr-min 1e-4 --warmup 50"           # continuing a trained model
SMALL="--layers 4 --embd 128 --head-size 32 --lora 16,16,16,16"

[ -f $D/kjv-grown0.safetensors ] || ./metastate models/kjv.safetensors --batch \
    -c 'grow tokens 256' -c 'grow sse 1' -c 'grow heads 2' -c "save-model $D/kjv-grown0.safetensors"

run() {   # name, args...
    n=$1; shift
    [ -f $D/$n.safetensors ] && { echo "$n: done already ($D/$n.safetensors)"; return 0; }
    echo "$n: $*"
    nice -n 19 env OMP_NUM_THREADS=1 $PY scripts/train.py kjv $D/$n.safetensors $COMMON "$@" \
        --ckpt $D/$n.ckpt --resume > $D/$n.out 2>&1
    tail -1 $D/$n.out
}
job() {
    case $1 in
    grown-cont)   run grown-cont --init-from $D/kjv-grown0.safetensors $CONT ;;
    grown-scratch) run grown-scratch $SMALL --heads 6 --sse-heads 3 --ptok 768 $SCRATCH ;;
    kjv-cont)     run kjv-cont --init-from models/kjv.safetensors $CONT ;;
    dense)        run dense $SMALL --sse-heads 2 --ptok 512 $SCRATCH ;;
    experts4)     run experts4 $SMALL --sse-heads 2 --ptok 2048 --experts 4 --top-k 1 $SCRATCH ;;
    *) echo "unknown run $1 (grown-cont grown-scratch kjv-cont dense experts4)"; return 2 ;;
    esac
}
if [ $# -gt 0 ]; then
    for r in "$@"; do job $r; done
else   # two lanes of about equal length
    (job grown-cont; job kjv-cont; job experts4) &
    (job grown-scratch; job dense) &
    wait
fi
