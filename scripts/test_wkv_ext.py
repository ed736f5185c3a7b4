"""test_wkv_ext.py: check the C WKV-7 extension (scripts/wkv_ext) against
autograd of the reference's Python loops.

Checks, each printing what it compared and the worst difference:
  gradcheck  torch.autograd.gradcheck of wkv_ext.WKV7 in float64 (finite
             differences vs the C backward), T=37 crosses the 16-step
             checkpoints and ends mid-interval, non-zero initial state
  vs-loop    forward and all seven input gradients of WKV7 vs autograd
             through metastate_ref.wkv7_loop, float64, |d| <= 1e-10
  model      MetaState.forward_seq(fast="ext") vs the per-token reference
             (fast=False): logits, final state, and the gradient of every
             parameter and of the initial state, float64, |d| <= 1e-10;
             Meta-State (Hs=2, N=16, experts) and plain RWKV-7 (Hs=0)
  float32    the float32 kernels vs the float64 ones, relative |d| <= 1e-4
Exits 1 if any check fails.  usage: test_wkv_ext.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metastate_ref as ref   # noqa: E402
import wkv_ext                # noqa: E402

F64 = torch.float64
results = []


def report(name, ok, what):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name:9s} {what}")


def rand_inputs(B, T, H, N, g, dtype=F64):
    """Inputs in the ranges the model produces: w in (0.55, 1), kk unit
    vectors per head, a in (0, 1)."""
    def R(*s):
        return torch.randn(*s, generator=g, dtype=F64)
    r, k, v = R(B, T, H, N), R(B, T, H, N) * 0.5, R(B, T, H, N)
    w = torch.exp(-0.606531 * torch.sigmoid(R(B, T, H, N) * 2))
    kk = R(B, T, H, N)
    kk = kk / kk.norm(dim=-1, keepdim=True)
    a = torch.sigmoid(R(B, T, H, N))
    S0 = R(B, H, N, N) * 0.3
    return [t.to(dtype).requires_grad_() for t in (r, w, k, v, kk, a, S0)]


def grads(fn, ins, dy, dS):
    for t in ins:
        t.grad = None
    y, S = fn(*ins)
    (y * dy).sum().backward(retain_graph=False) if dS is None else ((y * dy).sum() + (S * dS).sum()).backward()
    return y.detach(), S.detach(), [t.grad.clone() for t in ins]


def check_gradcheck():
    g = torch.Generator().manual_seed(1)
    ins = rand_inputs(2, 37, 2, 5, g)
    ok = torch.autograd.gradcheck(wkv_ext.WKV7.apply, ins, eps=1e-6, atol=1e-7, rtol=1e-5,
                                  raise_exception=False)
    # the worst entry of |analytic - numerical| Jacobian, for the record
    ins = rand_inputs(1, 19, 1, 4, g)
    flat = torch.cat([t.detach().reshape(-1) for t in ins])
    shapes = [t.shape for t in ins]

    def f(x):
        parts, o = [], 0
        for s in shapes:
            parts.append(x[o:o + s.numel()].view(s))
            o += s.numel()
        y, S = wkv_ext.wkv7(*parts)
        return torch.cat([y.reshape(-1), S.reshape(-1)])

    ana = torch.autograd.functional.jacobian(f, flat)
    eps, num = 1e-6, torch.empty_like(ana)
    for c in range(flat.numel()):
        d = torch.zeros_like(flat)
        d[c] = eps
        num[:, c] = (f(flat + d) - f(flat - d)) / (2 * eps)
    dj = (ana - num).abs().max().item()
    ok = ok and dj <= 1e-7
    report("gradcheck", ok, f"WKV7 float64, B=2 T=37 H=2 N=5, eps 1e-6, atol 1e-7, rtol 1e-5: passed; "
           f"full Jacobian B=1 T=19 N=4 ({ana.shape[0]}x{ana.shape[1]}) analytic vs central "
           f"differences max|d| {dj:.1e} (scale {ana.abs().max().item():.1f})")


def check_vs_loop():
    g = torch.Generator().manual_seed(2)
    for (B, T, H, N) in ((2, 37, 2, 5), (3, 64, 2, 16), (1, 5, 1, 32)):
        ins = rand_inputs(B, T, H, N, g)
        dy = torch.randn(B, T, H, N, generator=g, dtype=F64)
        dS = torch.randn(B, H, N, N, generator=g, dtype=F64)
        y0, S0, g0 = grads(ref.wkv7_loop, ins, dy, dS)
        y1, S1, g1 = grads(wkv_ext.wkv7, ins, dy, dS)
        dfw = max((y0 - y1).abs().max().item(), (S0 - S1).abs().max().item())
        names = ("r", "w", "k", "v", "kk", "a", "S0")
        dg = {n: (a - b).abs().max().item() for n, a, b in zip(names, g0, g1)}
        worst = max(dg, key=dg.get)
        report("vs-loop", dfw <= 1e-10 and dg[worst] <= 1e-10,
               f"B={B} T={T} H={H} N={N}: forward max|d| {dfw:.2e}, gradients max|d| {dg[worst]:.2e} "
               f"(d{worst}; scale {g0[names.index(worst)].abs().max().item():.1f})")


def check_model():
    for label, cfg in (("Hs=2 E=2", ref.Config(2, 64, 4, 16, 256, 200, 2, 8, 6, 5, 7, n_experts=2, top_k=2)),
                       ("Hs=1", ref.Config(2, 64, 2, 32, 97, 130, 1, 8, 6, 5, 7)),
                       ("Hs=0", ref.Config(3, 48, 3, 16, 64, 100, 0, 8, 6, 5, 7))):
        m = ref.MetaState(cfg, F64, init="random", seed=3)
        g = torch.Generator().manual_seed(4)
        B, T = 2, 21
        toks = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
        st = [tuple((t.normal_(generator=g) * 0.3).requires_grad_() for t in ls) for ls in m.zero_state(B)]
        w_out = torch.randn(B, T, cfg.vocab_size, generator=g, dtype=F64)
        res = []
        for fast in (False, "ext"):
            m.zero_grad()
            for ls in st:
                for t in ls:
                    t.grad = None
            lg, new = m.forward_seq(toks, st, fast=fast)
            loss = (lg * w_out).sum() + sum((S * S).sum() for _, S, _ in new)
            loss.backward()
            gp = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
            gs = [t.grad.clone() for ls in st for t in ls]
            res.append((lg.detach(), ref.state_to_flat([tuple(t.detach() for t in ls) for ls in new]), gp, gs))
        (l0, s0, p0, q0), (l1, s1, p1, q1) = res
        dl, ds = (l0 - l1).abs().max().item(), (s0 - s1).abs().max().item()
        dp = {n: (p0[n] - p1[n]).abs().max().item() for n in p0}
        same = p0.keys() == p1.keys()
        worst = max(dp, key=dp.get)
        dq = max((a - b).abs().max().item() for a, b in zip(q0, q1))
        report("model", same and max(dl, ds, dp[worst], dq) <= 1e-10,
               f"{label}: logits {dl:.2e}, state {ds:.2e}, {len(p0)} parameter gradients max|d| "
               f"{dp[worst]:.2e} ({worst}), initial-state gradients {dq:.2e}")


def check_float32():
    g = torch.Generator().manual_seed(5)
    B, T, H, N = 2, 100, 2, 32
    ins = rand_inputs(B, T, H, N, g)
    dy = torch.randn(B, T, H, N, generator=g, dtype=F64)
    dS = torch.randn(B, H, N, N, generator=g, dtype=F64)
    y0, S0, g0 = grads(wkv_ext.wkv7, ins, dy, dS)
    ins32 = [t.detach().float().requires_grad_() for t in ins]
    y1, S1, g1 = grads(wkv_ext.wkv7, ins32, dy.float(), dS.float())
    rel = max([((a - b.double()).abs().max() / a.abs().max()).item() for a, b in
               zip([y0, S0] + g0, [y1, S1] + g1)])
    report("float32", rel <= 1e-4, f"B={B} T={T} H={H} N={N}: outputs and gradients, "
           f"max |d|/max|ref| {rel:.2e}")


def main():
    check_gradcheck()
    check_vs_loop()
    check_model()
    check_float32()
    print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
