"""make_random.py: write a random Meta-State model to a .safetensors file.

For tests and goldens: every tensor is random (metastate_ref.init_weights,
"random" kind: live decays, LoRAs, SSE reads; logits of std ~1), drawn in
float64 from --seed and stored as F32, or with --dtype f16/bf16 the big
matrices in that dtype and every vector (lerps, decays, norms, r_k) in F32,
like rwkv.cpp's FP16 files.  --init rwkv7 gives the RWKV-7 training init
instead.  The metadata is MODEL.md 5.1's.

usage: make_random.py --layers 2 --embd 128 --heads 2 --head-size 64 --vocab 256
       --ptok 300 --sse-heads 2 --lora 16,12,8,20 --seed 1 [--dtype f32]
       [--tokenizer bytes|words|rwkv-world] [--experts E --top-k K] OUT.safetensors
"""
import argparse
import sys

import torch

import metastate_ref as ref
import safetensors_io

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--embd", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--head-size", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--ptok", type=int, help="parameter tokens n (default 4*embd)")
    ap.add_argument("--sse-heads", type=int, default=0)
    ap.add_argument("--lora", default="32,32,32,32", help="Dw,Da,Dv,Dg")
    ap.add_argument("--experts", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=DTYPES, default="f32")
    ap.add_argument("--init", choices=["random", "rwkv7"], default="random")
    ap.add_argument("--tokenizer", choices=["bytes", "words", "rwkv-world"], default="bytes")
    ap.add_argument("--words", help="comma-separated vocabulary for --tokenizer words "
                    "(default w0 w1 ...; sets --vocab)")
    a = ap.parse_args()

    def fail(msg):
        print(f"make_random: {msg}", file=sys.stderr)
        sys.exit(2)

    words = None
    if a.tokenizer == "words":
        words = a.words.split(",") if a.words else [f"w{i}" for i in range(a.vocab)]
        if len(set(words)) != len(words) or any(not w or w.split() != [w] for w in words):
            fail("--words must be distinct words without whitespace")
        a.vocab = len(words)
    elif a.tokenizer == "bytes" and a.vocab != 256:
        fail(f"--tokenizer bytes needs --vocab 256, not {a.vocab} (use --tokenizer words)")
    elif a.tokenizer == "rwkv-world" and a.vocab != 65536:
        fail(f"--tokenizer rwkv-world needs --vocab 65536, not {a.vocab}")
    try:
        lora = [int(x) for x in a.lora.split(",")]
        assert len(lora) == 4 and min(lora) > 0
    except (ValueError, AssertionError):
        fail(f"--lora wants four positive integers Dw,Da,Dv,Dg, not {a.lora!r}")
    try:
        cfg = ref.Config(a.layers, a.embd, a.heads, a.head_size, a.vocab,
                         a.ptok or 4 * a.embd, a.sse_heads, *lora,
                         n_experts=a.experts, top_k=a.top_k).check()
    except ValueError as e:
        fail(str(e))

    model = ref.MetaState(cfg, torch.float64, init=a.init, seed=a.seed)
    low = DTYPES[a.dtype]
    tensors = {name: p.detach().to(low if ref.is_matrix(name) else torch.float32)
               for name, p in model.named_parameters()}
    meta = ref.metadata_for(cfg, a.tokenizer, f"random (seed {a.seed})",
                            f"make_random.py --init {a.init}: L={cfg.n_layer} C={cfg.n_embd} "
                            f"H={cfg.n_head} N={cfg.head_size} n={cfg.n_ptok} Hs={cfg.sse_heads} "
                            f"lora={a.lora} vocab={cfg.vocab_size} dtype={a.dtype}", vocab=words)
    safetensors_io.save(a.out, tensors, meta)
    n = sum(t.numel() for t in tensors.values())
    print(f"make_random: wrote {a.out}: {len(tensors)} tensors, {n} parameters")


if __name__ == "__main__":
    main()
