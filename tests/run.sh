#!/bin/sh
# run.sh: the whole test suite (make test).  Writes golden files with the
# PyTorch reference, runs every C test and shell test, and ends with one
# line "N passed, N failed".  Each test prints what it compared and the
# worst difference it saw.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
B=${B:-build}
G=$B/golden
T=$B/tests
mkdir -p "$G" "$B/tmp"
export MS_FIXTURES=tests/fixtures
pass=0; fail=0; failed=""

run() {
    name=$1; shift
    echo "== $name"
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
}

# Golden files: random Meta-State models of odd shapes and the float64
# reference's logits and state after each of 64 tokens.
golden() {   # name, make_random arguments...
    name=$1; shift
    [ -f "$G/$name.golden.safetensors" ] && [ "$G/$name.golden.safetensors" -nt scripts/metastate_ref.py ] &&
        [ "$G/$name.golden.safetensors" -nt scripts/make_random.py ] && return 0
    $PY scripts/make_random.py "$@" "$G/$name.safetensors" >/dev/null &&
        $PY scripts/golden.py "$G/$name.safetensors" "$G/$name.golden.safetensors" --tokens 64 --seed 1 >/dev/null
}
make_goldens() {
    # A: N=32, D_att=96 > C=80, n=200, 2 SSE heads, LoRA dims all different, words tokenizer
    golden A --layers 2 --embd 80 --heads 3 --head-size 32 --ptok 200 --sse-heads 2 --lora 12,10,8,14 \
        --vocab 97 --tokenizer words --seed 1 &&
    # B: N=64, n=300, 2 SSE heads
    golden B --layers 2 --embd 128 --heads 2 --head-size 64 --ptok 300 --sse-heads 2 --lora 16,12,8,20 \
        --vocab 256 --tokenizer bytes --seed 2 &&
    # B16: B's shape with BF16 matrices (the reference uses the stored bf16 values exactly)
    golden B16 --layers 2 --embd 128 --heads 2 --head-size 64 --ptok 300 --sse-heads 2 --lora 16,12,8,20 \
        --vocab 256 --tokenizer bytes --seed 4 --dtype bf16 &&
    # C: plain RWKV-7 (Hs=0), 3 layers
    golden C --layers 3 --embd 128 --heads 2 --head-size 64 --ptok 300 --sse-heads 0 --lora 16,12,8,20 \
        --vocab 256 --tokenizer bytes --seed 3 &&
    # D: 4 SSE heads of N=16, n=4C+1, 3 layers
    golden D --layers 3 --embd 64 --heads 4 --head-size 16 --ptok 257 --sse-heads 4 --lora 6,5,4,7 \
        --vocab 256 --tokenizer bytes --seed 5 &&
    # E: parameter-token experts, 4 blocks, top 1 (MODEL.md 3.4)
    golden E --layers 2 --embd 64 --heads 2 --head-size 32 --ptok 256 --sse-heads 2 --lora 8,6,4,10 \
        --vocab 256 --tokenizer bytes --experts 4 --top-k 1 --seed 6 &&
    # E2: 5 blocks, top 2, one SSE head
    golden E2 --layers 2 --embd 64 --heads 2 --head-size 32 --ptok 300 --sse-heads 1 --lora 8,6,4,10 \
        --vocab 256 --tokenizer bytes --experts 5 --top-k 2 --seed 7
}
run reference-self-check $PY scripts/test_reference.py
run wkv-ext-gradients $PY scripts/test_wkv_ext.py
run golden-files make_goldens
for m in A B B16 C D E E2; do
    run "golden-$m" $T/test_model golden "$G/$m.safetensors" "$G/$m.golden.safetensors"
done
# the sequence and batch steps against ms_step, bit for bit, on every golden model and the rwkv.cpp files
for m in A B B16 C D E E2; do
    run "seq-batch-$m" $T/test_model seq "$G/$m.safetensors"
done
run seq-batch-tiny-f16 $T/test_model seq tests/fixtures/tiny-rwkv-7v0-834K-FP16.bin
run rwkv.cpp-tiny $T/test_model tiny tests/fixtures
convert_tiny() {
    $PY scripts/bin_to_pth.py tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin "$B/tmp/tiny.pth" >/dev/null &&
    $PY scripts/convert_pth.py "$B/tmp/tiny.pth" "$B/tmp/tiny.safetensors" --tokenizer bytes >/dev/null &&
    $T/test_model same tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin "$B/tmp/tiny.safetensors" 1e-6
}
run pth-convert-same-logits convert_tiny
run hs0-equals-rwkv7 $T/test_model hs0 "$G/B.safetensors"
run experts-all-active-equal-dense $T/test_model experts "$G/B.safetensors"
run broken-safetensors $T/test_model broken "$G/A.safetensors" "$B/tmp"
run broken-safetensors-bf16 $T/test_model broken "$G/B16.safetensors" "$B/tmp"
run broken-bin $T/test_model broken-bin tests/fixtures/tiny-rwkv-7v0-834K-FP32.bin "$B/tmp"
for t in $T/test_*; do
    case "$t" in */test_model) continue ;; esac
    [ -x "$t" ] || continue
    run "$(basename "$t")" "$t"
done
for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    run "$(basename "$t" .sh)" sh "$t"
done
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
