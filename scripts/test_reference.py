"""test_reference.py: self-check of the PyTorch reference (run by `make test`).

Checks, each printing what it compared and the worst difference:
  fixture    rwkv.cpp tiny model (FP32 via bin_to_pth -> .pth -> reference, and
             FP16), tokens 34 105 110 from the zero state, float64: the last
             logits equal expected-logits-7v0-834K.bin to max |d| <= 1e-5
  hs0        a Hs=0 model equals RWKV-7 with ChannelMix written out
             (V·relu(Kz·z)^2), bit for bit; so does Hs=2 with Ks=0
  experts    n_experts=E with top_k=E equals the dense layer, bit for bit
  f32-f64    float32 and float64 reference agree, |d| <= 1e-5 + 1e-4|r|
             (MODEL.md 8's tolerance for the C code), logits and state
  batched    forward_seq on (B,T) from a non-zero state equals step by step
  layout     names/shapes = expected_shapes, flat state round trip,
             safetensors round trip for every dtype
Exits 1 if any check fails.
"""
import copy
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metastate_ref as ref          # noqa: E402
import safetensors_io                # noqa: E402
from bin_to_pth import read_bin      # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.environ.get("MS_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures", "rwkv7-tiny"))
F64 = torch.float64
results = []


def report(name, ok, what):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name:9s} {what}")


def run_tokens(model, toks, state=None):
    logits, states = [], []
    with torch.no_grad():
        for t in toks:
            lg, state = model.step(t, state)
            logits.append(lg)
            states.append(ref.state_to_flat(state))
    return torch.stack(logits), torch.stack(states)


def cfg_b(hs=2, **kw):
    return ref.Config(2, 128, 2, 64, 256, 300, hs, 16, 12, 8, 20, **kw)


def check_fixture():
    exp = torch.from_numpy(np.fromfile(os.path.join(FIX, "expected-logits-7v0-834K.bin"), "<f4"))
    with tempfile.TemporaryDirectory() as d:
        pth = os.path.join(d, "tiny.pth")
        sd, _ = read_bin(os.path.join(FIX, "tiny-rwkv-7v0-834K-FP32.bin"))
        torch.save(sd, pth)
        sd32 = torch.load(pth, map_location="cpu", weights_only=True)
    sd16, _ = read_bin(os.path.join(FIX, "tiny-rwkv-7v0-834K-FP16.bin"))
    for name, sd in (("FP32", sd32), ("FP16", sd16)):
        lg, _ = run_tokens(ref.MetaState.from_state_dict(sd, dtype=F64), [34, 105, 110])
        dmax = (lg[-1] - exp.double()).abs().max().item()
        report("fixture", dmax <= 1e-5, f"tiny {name} tokens 34 105 110: max|d| {dmax:.3g} (<= 1e-5)")


class PlainChannelMix(torch.nn.Module):
    """RWKV-7 ChannelMix written out, sharing the parameters of a MetaLayer."""

    def __init__(self, ffn):
        super().__init__()
        self.ffn = ffn

    def forward(self, xf, ffn_x, S, tr):
        z = xf + (ffn_x - xf) * self.ffn.x_k.view(-1)
        k = torch.relu(torch.nn.functional.linear(z, self.ffn.key.weight)) ** 2
        return torch.nn.functional.linear(k, self.ffn.value.weight), xf


def check_hs0():
    toks = list(np.random.default_rng(3).integers(0, 256, 24))
    m = ref.MetaState(cfg_b(0), F64, seed=5)
    plain = copy.deepcopy(m)
    for blk in plain.blocks:
        blk.ffn = PlainChannelMix(blk.ffn)
    (l1, s1), (l2, s2) = run_tokens(m, toks), run_tokens(plain, toks)
    same = torch.equal(l1, l2) and torch.equal(s1, s2)
    report("hs0", same, f"Hs=0 vs plain ChannelMix, 24 tokens: max|d| logits "
           f"{(l1 - l2).abs().max():.3g} state {(s1 - s2).abs().max():.3g} (bit for bit)")
    m2 = ref.MetaState(cfg_b(2), F64, seed=5)
    sd = {k: v for k, v in m2.state_dict().items()}
    for i in range(2):
        sd[f"blocks.{i}.ffn.sse_key.weight"].zero_()
    l3, s3 = run_tokens(ref.MetaState.from_state_dict(sd), toks)
    l4, s4 = run_tokens(ref.MetaState.from_state_dict(
        {k: v for k, v in sd.items() if ".sse_" not in k}), toks)
    same = torch.equal(l3, l4) and torch.equal(s3, s4)
    report("hs0", same, f"Hs=2 with Ks=0 vs the same model with Hs=0: max|d| "
           f"{(l3 - l4).abs().max():.3g} (bit for bit)")


def check_experts():
    toks = list(np.random.default_rng(4).integers(0, 256, 12))
    dense = ref.MetaState(cfg_b(2), F64, seed=6)
    sd = dense.state_dict()
    all_on = ref.MetaState.from_state_dict(sd, {"n_experts": "4", "top_k": "4"})
    top1 = ref.MetaState.from_state_dict(sd, {"n_experts": "4", "top_k": "1"})
    (l1, s1), (l2, s2) = run_tokens(dense, toks), run_tokens(all_on, toks)
    l3, _ = run_tokens(top1, toks)
    ok = torch.equal(l1, l2) and torch.equal(s1, s2) and not torch.equal(l1, l3)
    report("experts", ok, f"E=4 top_k=4 vs dense: max|d| {(l1 - l2).abs().max():.3g} (bit for bit); "
           f"top_k=1 differs by {(l1 - l3).abs().max():.3g}")


def check_f32_f64():
    toks = list(np.random.default_rng(7).integers(0, 97, 64))
    cfg = ref.Config(2, 80, 3, 32, 97, 200, 2, 12, 10, 8, 14)
    m64 = ref.MetaState(cfg, F64, seed=8)
    m32 = ref.MetaState.from_state_dict(m64.state_dict(), dtype=torch.float32)
    (l64, s64), (l32, s32) = run_tokens(m64, toks), run_tokens(m32, toks)
    for name, r, c in (("logits", l64, l32), ("state", s64, s32)):
        d = (c.double() - r).abs()
        ok = bool((d <= 1e-5 + 1e-4 * r.abs()).all())
        report("f32-f64", ok, f"{name}, 64 tokens: max|d| {d.max():.3g}, max|d|/std(r) "
               f"{d.max() / r.std():.3g}, worst |d|/(1e-5+1e-4|r|) {(d / (1e-5 + 1e-4 * r.abs())).max():.3g}")


def check_batched():
    m = ref.MetaState(cfg_b(2), F64, seed=9)
    B, T = 3, 10
    toks = torch.from_numpy(np.random.default_rng(10).integers(0, 256, (B, T)))
    with torch.no_grad():
        _, st0 = m.forward_seq(torch.randint(0, 256, (B, 5), generator=torch.Generator().manual_seed(1)))
        lb, stb, flats = m.forward_seq(toks, st0, return_states=True)
        worst = 0.0
        for b in range(B):
            st = [tuple(t[b] for t in ls) for ls in st0]
            ls, ss = run_tokens(m, toks[b].tolist(), st)
            worst = max(worst, (ls - lb[b]).abs().max().item(), (ss - flats[b]).abs().max().item())
        worst = max(worst, (ref.state_to_flat(stb) - flats[:, -1]).abs().max().item())
    report("batched", worst <= 1e-12, f"forward_seq (B={B},T={T}) from a non-zero state vs step: "
           f"max|d| {worst:.3g} (<= 1e-12)")


def check_layout():
    cfg = ref.Config(2, 80, 3, 32, 97, 200, 2, 12, 10, 8, 14)
    m = ref.MetaState(cfg, F64, seed=11)
    names = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    report("layout", names == ref.expected_shapes(cfg), f"{len(names)} parameter names and shapes")
    flat = torch.randn(2, ref.state_len(cfg), dtype=F64)
    report("layout", torch.equal(ref.state_to_flat(ref.flat_to_state(flat, cfg)), flat),
           f"flat state round trip, state_len {ref.state_len(cfg)}")
    src = {"f32": torch.randn(3, 5), "f16": torch.randn(7).half(), "bf16": torch.randn(2, 3).bfloat16(),
           "f64": torch.randn(4, dtype=F64), "i32": torch.arange(5, dtype=torch.int32), "empty": torch.zeros(0)}
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.safetensors")
        safetensors_io.save(p, src, {"k": "v"})
        got, meta = safetensors_io.load(p)
        hlen = int.from_bytes(open(p, "rb").read(8), "little")
    ok = meta == {"k": "v"} and hlen % 8 == 0 and all(
        got[k].dtype == v.dtype and torch.equal(got[k], v) for k, v in src.items())
    report("layout", ok, "safetensors round trip F32 F16 BF16 F64 I32 + metadata")


def main():
    t0 = time.time()
    torch.set_num_threads(min(4, torch.get_num_threads()))
    for check in (check_fixture, check_hs0, check_experts, check_f32_f64, check_batched, check_layout):
        try:
            check()
        except Exception as e:          # a crash is a failed check, not a traceback storm
            report(check.__name__[6:], False, f"raised {type(e).__name__}: {e}")
    failed = results.count(False)
    print(f"test_reference: {len(results) - failed} of {len(results)} checks ok, "
          f"{time.time() - t0:.1f}s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
