"""bench_train.py: training tokens/s of the per-token reference loop
(forward_seq fast=False) against the C recurrence (fast="ext"), same model,
same batch, back to back, float32 on the CPU.  One training step = forward,
cross-entropy, backward, AdamW.  Prints the median over --steps steps after
one warm-up step, for each mode and thread count.

usage: bench_train.py [--layers 2 --embd 128 --head-size 64 --sse-heads 1
       --ptok 512] [--batch 16 --ctx 128] [--steps 5] [--threads 1,2]
       [--modes slow,ext]
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # as train.py

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metastate_ref as ref  # noqa: E402


def bench(cfg, B, T, fast, steps):
    m = ref.MetaState(cfg, torch.float32, init="rwkv7", seed=0)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    y = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    ts = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        lg, _ = m.forward_seq(x, None, fast=fast)
        loss = F.cross_entropy(lg.reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            ts.append(time.perf_counter() - t0)
    ts.sort()
    return B * T / ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--head-size", type=int, default=64)
    ap.add_argument("--heads", type=int, help="default embd / head-size")
    ap.add_argument("--experts", type=int, default=1)
    ap.add_argument("--top-k", type=int, default=1)
    ap.add_argument("--sse-heads", type=int, default=1)
    ap.add_argument("--ptok", type=int)
    ap.add_argument("--lora", default="16,16,16,16")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--modes", default="slow,ext")
    a = ap.parse_args()
    cfg = ref.Config(a.layers, a.embd, a.heads or a.embd // a.head_size, a.head_size, 256, a.ptok or 4 * a.embd,
                     a.sse_heads, *[int(v) for v in a.lora.split(",")], n_experts=a.experts, top_k=a.top_k)
    P = sum(p.numel() for p in ref.MetaState(cfg, torch.float32, init=None).parameters())
    print(f"bench_train: L={cfg.n_layer} C={cfg.n_embd} H={cfg.n_head} N={cfg.head_size} n={cfg.n_ptok} "
          f"Hs={cfg.sse_heads} E={cfg.n_experts}/top{cfg.top_k}, {P} parameters, batch {a.batch} x {a.ctx}, median of {a.steps} steps; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    for th in (int(t) for t in a.threads.split(",")):
        torch.set_num_threads(th)
        for mode in a.modes.split(","):
            tps = bench(cfg, a.batch, a.ctx, {"slow": False, "ext": "ext", "loop": "loop"}[mode], a.steps)
            print(f"  {mode:5s} {th} thread{'s' if th > 1 else ' '}: {tps:8.0f} tokens/s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
