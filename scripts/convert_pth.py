"""convert_pth.py: convert an official RWKV-7 .pth checkpoint to .safetensors.

The .pth is loaded with torch.load(weights_only=True), since a .pth is a
pickle and an untrusted pickle can run code.  Names and shapes are kept as
they are; every tensor is checked against MODEL.md (sizes inferred from the
shapes), and an unknown, missing or misshapen tensor is refused with one line
and exit status 2.  --dtype keep (default) keeps each tensor's stored dtype;
f32 stores everything F32; f16/bf16 store the big matrices in that dtype and
every vector in F32.  Writes MODEL.md 5.1 metadata (sse_heads 0: an RWKV-7
checkpoint is a Meta-State model with no SSE heads).

usage: convert_pth.py MODEL.pth OUT.safetensors [--dtype keep|f32|f16|bf16]
       [--tokenizer bytes|rwkv-world|words --words a,b,c] [--trained-on TEXT]
"""
import argparse
import os
import sys

import torch

import metastate_ref as ref
import safetensors_io

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pth")
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=["keep", *DTYPES], default="keep")
    ap.add_argument("--tokenizer", choices=["bytes", "rwkv-world", "words"])
    ap.add_argument("--words", help="comma-separated vocabulary for --tokenizer words")
    ap.add_argument("--trained-on", default="unknown (official RWKV-7 checkpoint)")
    a = ap.parse_args()

    def fail(msg):
        print(f"convert_pth: {a.pth}: {msg}", file=sys.stderr)
        sys.exit(2)

    try:
        sd = torch.load(a.pth, map_location="cpu", weights_only=True)
    except Exception as e:       # a bad zip, a pickle with code: one line either way
        fail(f"cannot load: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if not isinstance(sd, dict):
        fail(f"expected a dict of tensors, found {type(sd).__name__}")
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            fail(f"entry {k!r} is a {type(v).__name__}, not a tensor")
        if v.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            fail(f"tensor {k}: unsupported dtype {v.dtype}")
    try:
        cfg = ref.config_from_state_dict(sd)
    except ValueError as e:
        fail(str(e))
    if cfg.sse_heads:
        fail("has ffn.sse_* tensors: not an official RWKV-7 checkpoint")

    tok = a.tokenizer or ("rwkv-world" if cfg.vocab_size == 65536 else "bytes")
    words = None
    if tok == "words":
        words = (a.words or "").split(",")
        if len(words) != cfg.vocab_size:
            fail(f"--tokenizer words needs --words with {cfg.vocab_size} entries, got {len(words)}")
    if a.dtype == "keep":
        out = {k: v.contiguous() for k, v in sd.items()}
    else:
        out = {k: v.to(DTYPES[a.dtype] if ref.is_matrix(k) else torch.float32).contiguous()
               for k, v in sd.items()}
    meta = ref.metadata_for(cfg, tok, a.trained_on, f"converted from {os.path.basename(a.pth)}",
                            vocab=words)
    safetensors_io.save(a.out, out, meta)
    print(f"convert_pth: wrote {a.out}: {len(out)} tensors, L={cfg.n_layer} C={cfg.n_embd} "
          f"H={cfg.n_head} N={cfg.head_size} vocab={cfg.vocab_size} tokenizer={tok}")


if __name__ == "__main__":
    main()
