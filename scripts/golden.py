"""golden.py: write a golden file for the C forward pass from the reference.

Loads a model (.safetensors, or an rwkv.cpp .bin, told apart by content),
converts its weights exactly to float64, starts from the zero state, feeds
--tokens pseudo-random ids (numpy default_rng(--seed), uniform over the
vocabulary) or the --ids given, and writes a safetensors file with
  tokens (T) I32, logits (T, vocab) F32, state (T, state_len) F32
where state[t] is the whole state after token t in MODEL.md 4 layout.
--trace adds trace.{layer}.{r,k,v,w,a,kk,g,y,z,q,e_raw,e,s,x_out} (T, size)
F32, the intermediates that ms_trace exposes, for locating a mismatch.

usage: golden.py MODEL OUT.golden.safetensors [--tokens 64] [--seed 0]
       [--ids 34,105,110] [--dtype float64|float32] [--trace]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

import metastate_ref as ref
import safetensors_io
from bin_to_pth import MAGIC, read_bin


def load_model(path, dtype=torch.float64):
    """Model from a .safetensors or an rwkv.cpp .bin; returns (model, metadata)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if int.from_bytes(head, "little") == MAGIC:
        sd, meta = read_bin(path)[0], {}
    else:
        sd, meta = safetensors_io.load(path)
    return ref.MetaState.from_state_dict(sd, meta, dtype), meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ids", help="comma-separated token ids (overrides --tokens/--seed)")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--trace", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    try:
        model, _ = load_model(a.model, getattr(torch, a.dtype))
    except (OSError, ValueError) as e:
        print(f"golden: {a.model}: {e}", file=sys.stderr)
        sys.exit(2)
    cfg = model.cfg
    if a.ids:
        toks = [int(x) for x in a.ids.split(",")]
        if not all(0 <= t < cfg.vocab_size for t in toks):
            print(f"golden: --ids must be in [0, {cfg.vocab_size})", file=sys.stderr)
            sys.exit(2)
    else:
        toks = np.random.default_rng(a.seed).integers(0, cfg.vocab_size, a.tokens).tolist()
    logits, states, traces = [], [], {}
    state = None
    with torch.no_grad():
        for t, tok in enumerate(toks):
            trace = [] if a.trace else None
            lg, state = model.step(tok, state, trace)
            logits.append(lg)
            states.append(ref.state_to_flat(state))
            for i, tr in enumerate(trace or []):
                for k, v in tr.items():
                    if k != "S":        # S is in `state` already
                        traces.setdefault(f"trace.{i}.{k}", []).append(v.reshape(-1))
    out = {"tokens": torch.tensor(toks, dtype=torch.int32),
           "logits": torch.stack(logits).float(),
           "state": torch.stack(states).float()}
    out.update({k: torch.stack(v).float() for k, v in traces.items()})
    meta = {"format": "metastate-golden", "model": os.path.basename(a.model), "dtype": a.dtype,
            "seed": str(a.seed), "n_tokens": str(len(toks)),
            "state_len": str(ref.state_len(cfg))}
    safetensors_io.save(a.out, out, meta)
    print(f"golden: wrote {a.out}: {len(toks)} tokens, vocab {cfg.vocab_size}, "
          f"state_len {ref.state_len(cfg)}, logits std {out['logits'].std():.3f}, "
          f"{time.time() - t0:.2f}s")


if __name__ == "__main__":
    main()
