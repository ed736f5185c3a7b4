"""grow.py: progressive scaling (MODEL.md 3.3) of a .safetensors model file.

    grow.py IN OUT tokens|sse|heads K [--seed S] [--no-check] [--tokens T]

The same three steps as `./metastate IN -c 'grow ...' -c 'save-model OUT'`
(core/grow.c), with the same values: zeros and ones where MODEL.md 3.3 puts
them, RWKV-7's init formulas for the new heads' vectors, and the random parts
(new parameter-token keys, new rows of Wr/Wk/Wv, new columns of w2/a2/v2/g2)
drawn from splitmix64 keyed by the seed and the tensor's name and indexed by
the element's flat position in the grown tensor -- so a C-grown and a
Python-grown file are equal tensor for tensor, bit for bit (tests/test_grow.sh
checks it).  Every tensor keeps its stored dtype (new values rounded to it
through float32, to nearest even); the growth history in the metadata gets
{"op", "k", "seed"} appended.

  tokens M   M new parameter tokens per layer: rows of ffn.key/ffn.sse_key
             uniform +/-0.5/sqrt(C), columns of ffn.value zero; with E > 1
             experts M must be a multiple of 2E: each block gets M/E tokens at
             its end, in +/- pairs, so its router key (the mean of its rows)
             only scales and the routing is unchanged
  sse K      K more SSE heads: ffn.sse_key columns zero, sse_ln weight 1 bias 0
  heads K    K more WKV heads (A grows by K*N): see core/grow.h for the values

Unless --no-check, the reference (float64) runs T tokens (64) from the zero
state before and after and the largest logit change is printed; more than
1e-5 is an error (exit 1), as it would be a bug.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metastate_ref as ref   # noqa: E402
import safetensors_io         # noqa: E402

GAMMA = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1
TOL = 1e-5


# ---------------------------------------------------------------------------
# splitmix64 (the same as core/grow.c), vectorised over flat indices

def mix64(z):
    """The splitmix64 finaliser of a Python int."""
    z &= M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _mix64_np(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def fnv1a64(b):
    h = 0xCBF29CE484222325
    for x in b:
        h = ((h ^ x) * 0x100000001B3) & M64
    return h


def stream_key(seed, name):
    return mix64((seed & M64) ^ fnv1a64(name.encode()))


def draw(key, flat, bound):
    """Values (float64) of the elements at flat indices `flat` (int array) of
    a stream: u = (mix(key + (j+1)*GAMMA) >> 11) * 2^-53, (2u - 1) * bound."""
    j = np.asarray(flat, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = np.uint64(key) + (j + np.uint64(1)) * np.uint64(GAMMA)
    u = (_mix64_np(x) >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    return (2.0 * u - 1.0) * bound


def as_dtype(values64, like):
    """float64 values (numpy or torch) -> a tensor of like's dtype, through float32."""
    t = torch.as_tensor(np.asarray(values64, dtype=np.float64)).to(torch.float32)
    return t.to(like.dtype)


# ---------------------------------------------------------------------------
# the steps, on a dict name -> tensor (file dtypes and shapes)

def _grow_key_rows(t, name, E, add, seed, bound):
    W = t[name]
    rows, cols = W.shape
    per, per2 = rows // E, rows // E + add
    new = torch.zeros(rows + E * add, cols, dtype=W.dtype)
    key = stream_key(seed, name)
    col = np.arange(cols, dtype=np.int64)
    for b in range(E):
        new[b * per2:b * per2 + per] = W[b * per:(b + 1) * per]
        vals = np.empty((add, cols))
        for s in range(add):
            row = b * per2 + per + s
            if E > 1 and s % 2 == 1:        # the negative of the row above
                vals[s] = -draw(key, (row - 1) * cols + col, bound)
            else:
                vals[s] = draw(key, row * cols + col, bound)
        new[b * per2 + per:(b + 1) * per2] = as_dtype(vals, W)
    t[name] = new


def grow_tokens(t, cfg, k, seed):
    E, add = cfg.n_experts, k // cfg.n_experts
    bound = 0.5 / math.sqrt(cfg.n_embd)
    for i in range(cfg.n_layer):
        p = f"blocks.{i}.ffn."
        _grow_key_rows(t, p + "key.weight", E, add, seed, bound)
        if p + "sse_key.weight" in t:
            _grow_key_rows(t, p + "sse_key.weight", E, add, seed, bound)
        V = t[p + "value.weight"]
        C, n = V.shape
        per, per2 = n // E, n // E + add
        new = torch.zeros(C, n + E * add, dtype=V.dtype)
        for b in range(E):
            new[:, b * per2:b * per2 + per] = V[:, b * per:(b + 1) * per]
        t[p + "value.weight"] = new


def _extend_last(x, n2, fill64=None):
    """x with its last dimension grown to n2; new entries from fill64 (a
    float64 array of shape (rows, n2 - n)) or zero."""
    n = x.shape[-1]
    new = torch.zeros(*x.shape[:-1], n2, dtype=x.dtype)
    new[..., :n] = x
    if fill64 is not None:
        new[..., n:] = as_dtype(np.asarray(fill64).reshape(*x.shape[:-1], n2 - n), x)
    return new


def _insert_after(t, after, items):
    out = {}
    for k, v in t.items():
        out[k] = v
        if k == after:
            out.update(items)
    t.clear()
    t.update(out)


def grow_sse(t, cfg, k):
    N, HsN = cfg.head_size, cfg.sse_heads * cfg.head_size
    H2N = HsN + k * N
    for i in range(cfg.n_layer):
        p = f"blocks.{i}.ffn."
        if p + "sse_key.weight" in t:
            t[p + "sse_key.weight"] = _extend_last(t[p + "sse_key.weight"], H2N)
            w = t[p + "sse_ln.weight"]
            t[p + "sse_ln.weight"] = _extend_last(w, H2N, np.ones(H2N - HsN))
            t[p + "sse_ln.bias"] = _extend_last(t[p + "sse_ln.bias"], H2N)
        else:   # Hs was 0: new tensors after ffn.value.weight, the key in ffn.key's dtype
            Kz = t[p + "key.weight"]
            _insert_after(t, p + "value.weight", {
                p + "sse_key.weight": torch.zeros(Kz.shape[0], H2N, dtype=Kz.dtype),
                p + "sse_ln.weight": torch.ones(H2N, dtype=torch.float32),
                p + "sse_ln.bias": torch.zeros(H2N, dtype=torch.float32)})


def grow_heads(t, cfg, k, seed):
    C, L, N = cfg.n_embd, cfg.n_layer, cfg.head_size
    H2 = cfg.n_head + k
    A, A2 = cfg.dim_att, H2 * N
    rb, kb = 0.5 / math.sqrt(C), 0.05 / math.sqrt(C)
    for i in range(L):
        p = f"blocks.{i}.att."
        for m, bound in (("receptance", rb), ("key", kb), ("value", rb)):
            name = p + m + ".weight"
            W = t[name]
            new = torch.zeros(A2, C, dtype=W.dtype)
            new[:A] = W
            flat = (np.arange(A, A2, dtype=np.int64)[:, None] * C + np.arange(C)[None, :])
            new[A:] = as_dtype(draw(stream_key(seed, name), flat, bound), W)
            t[name] = new
        t[p + "output.weight"] = _extend_last(t[p + "output.weight"], A2)
        for m in ("w2", "a2", "v2", "g2"):
            name = p + m
            if name not in t:       # layer 0 may have no v LoRA
                continue
            W = t[name]
            D = W.shape[0]
            bound = 0.1 * math.sqrt(3.0 / max(D, A2))
            flat = np.arange(D, dtype=np.int64)[:, None] * A2 + np.arange(A, A2)[None, :]
            t[name] = _extend_last(W, A2, draw(stream_key(seed, name), flat, bound))
        r01 = i / max(L - 1, 1)
        e = 0.85 + r01 ** 0.5
        w0 = [(-7.0 + 5.0 * ((j / max(A2 - 1, 1)) ** e)) + 0.5 for j in range(A, A2)]
        t[p + "w0"] = _extend_last(t[p + "w0"], A2, np.array(w0))
        t[p + "a0"] = _extend_last(t[p + "a0"], A2)
        if p + "v0" in t:
            t[p + "v0"] = _extend_last(t[p + "v0"], A2, np.ones(A2 - A))
        t[p + "k_k"] = _extend_last(t[p + "k_k"], A2, np.full(A2 - A, 0.85))
        t[p + "k_a"] = _extend_last(t[p + "k_a"], A2, np.ones(A2 - A))
        rk = t[p + "r_k"]
        new = torch.zeros(H2, N, dtype=rk.dtype)
        new[:cfg.n_head] = rk
        t[p + "r_k"] = new
        t[p + "ln_x.weight"] = _extend_last(t[p + "ln_x.weight"], A2, np.full(A2 - A, ((1 + i) / L) ** 0.7))
        t[p + "ln_x.bias"] = _extend_last(t[p + "ln_x.bias"], A2)


def check_step(cfg, op, k):
    """None if the step is possible, else the message (as ms_grow_check)."""
    C, H, N, E = cfg.n_embd, cfg.n_head, cfg.head_size, cfg.n_experts
    if op == "tokens":
        if not 1 <= k <= (1 << 20) or cfg.n_ptok + k > (1 << 24):
            return f"grow tokens: M must be an integer from 1 to {1 << 20}, got {k}"
        if E > 1 and k % (2 * E):
            return f"grow tokens: with {E} experts M must be a multiple of 2E = {2 * E}, got {k}"
    elif op == "sse":
        mx = min(H, C // N)
        if not 1 <= k or cfg.sse_heads + k > mx:
            return f"grow sse: Hs = {cfg.sse_heads}, at most min(H={H}, C/N={C // N}) = {mx}: K must be from 1 " \
                   f"to {mx - cfg.sse_heads}, got {k}"
    elif op == "heads":
        if not 1 <= k <= 1024:
            return f"grow heads: K must be an integer from 1 to 1024, got {k}"
    else:
        return f"unknown step {op!r} (tokens, sse, heads)"
    return None


def grow(tensors, meta, op, k, seed=0):
    """Grow (tensors, meta) as loaded by safetensors_io.load; returns new
    (tensors, meta).  Raises ValueError for an impossible step."""
    cfg = ref.config_from_state_dict(tensors, meta)
    msg = check_step(cfg, op, k)
    if msg:
        raise ValueError(msg)
    t = dict(tensors)
    if op == "tokens":
        grow_tokens(t, cfg, k, seed)
    elif op == "sse":
        grow_sse(t, cfg, k)
    else:
        grow_heads(t, cfg, k, seed)
    m = dict(meta)
    hist = json.loads(m.get("growth") or "[]")
    hist.append({"op": op, "k": k, "seed": seed})
    m["growth"] = json.dumps(hist, separators=(",", ":"))
    m["format"], m["format_version"] = "metastate", "1"
    m.setdefault("tokenizer", "rwkv-world" if cfg.vocab_size == 65536 else "bytes")
    m["sse_heads"] = str(cfg.sse_heads + (k if op == "sse" else 0))
    m["n_experts"], m["top_k"] = str(cfg.n_experts), str(cfg.top_k)
    m.setdefault("trained_on", "")
    m.setdefault("notes", "")
    return t, m


def logits_over(tensors, meta, tokens):
    model = ref.MetaState.from_state_dict(tensors, meta, dtype=torch.float64)
    with torch.no_grad():
        lg, _ = model.forward_seq(torch.tensor(tokens))
    return lg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inp", metavar="IN")
    ap.add_argument("out", metavar="OUT")
    ap.add_argument("op", choices=["tokens", "sse", "heads"])
    ap.add_argument("k", type=int, metavar="K")
    ap.add_argument("--seed", type=int, default=0, help="0 to 2^64-1 (default 0; unused by sse)")
    ap.add_argument("--tokens", type=int, default=64, help="tokens for the check (default 64)")
    ap.add_argument("--no-check", action="store_true", help="skip the before/after logits check")
    a = ap.parse_args()
    if not 0 <= a.seed <= M64:
        sys.exit(f"grow: --seed must be from 0 to {M64}")
    sd, meta = safetensors_io.load(a.inp)
    try:
        t, m = grow(sd, meta, a.op, a.k, a.seed)
    except ValueError as e:
        sys.exit(f"grow: {e}")
    safetensors_io.save(a.out, t, m)
    cfg = ref.config_from_state_dict(t, m)
    print(f"grow: wrote {a.out}: {a.op} {a.k} (seed {a.seed}): L={cfg.n_layer} C={cfg.n_embd} H={cfg.n_head} "
          f"N={cfg.head_size} n={cfg.n_ptok} Hs={cfg.sse_heads}; growth {m['growth']}")
    if not a.no_check:
        g = np.random.default_rng(12345)
        toks = g.integers(0, cfg.vocab_size, a.tokens).tolist()
        d = (logits_over(sd, meta, toks) - logits_over(t, m, toks)).abs().max().item()
        print(f"grow: reference (float64) logits over {a.tokens} tokens from the zero state, before vs after: "
              f"max |d| = {d:.3g} (limit {TOL:g})")
        if not d <= TOL:
            sys.exit(f"grow: BUG: the growth changed the logits by {d:.3g} > {TOL:g}")


if __name__ == "__main__":
    main()
