"""metastate_ref.py: the executable reference of MODEL.md sections 2-4.

RWKV-7 TimeMix (section 2) followed, in every layer, by the Meta-State layer
with its Self-State Encoder (section 3; Hs = 0 is RWKV-7's ChannelMix), as a
torch nn.Module whose parameter names and shapes are the official RWKV-7
checkpoint names plus ffn.sse_key / ffn.sse_ln.  It runs in float64 (the
oracle for the C code's golden files) or float32, one token at a time (`step`)
or over a (B, T) batch (`forward_seq`, a Python loop over time that autograd
can see through).  `forward_seq(..., fast=True)` is the same model for
training: every dense part runs over all B*T positions at once and only the
WKV recurrence runs in time, in C (scripts/wkv_ext, CPU) or as a loop of
small tensor ops (`wkv7_loop`, any device).  The state is a list per layer of (att_x (B,C), S (B,H,N,N)
indexed [h][value i][key j], ffn_x (B,C)); `state_to_flat` / `flat_to_state`
give the flat MODEL.md 4 layout.  It is written for clarity, not speed.
"""
import json
import math
import os
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

DECAY_SCALE = 0.606531   # exp(-0.5), the constant MODEL.md 2 fixes
LN_EPS = 1e-5
HEAD_NORM_EPS = 64e-5


@dataclass
class Config:
    n_layer: int          # L
    n_embd: int           # C
    n_head: int           # H
    head_size: int        # N
    vocab_size: int
    n_ptok: int           # n, parameter tokens of the Meta-State layer
    sse_heads: int = 0    # Hs
    d_w: int = 32
    d_a: int = 32
    d_v: int = 32
    d_g: int = 32
    n_experts: int = 1    # MODEL.md 3.4; 1 = dense
    top_k: int = 1

    @property
    def dim_att(self):
        return self.n_head * self.head_size

    def check(self):
        c = self
        if min(c.n_layer, c.n_embd, c.n_head, c.vocab_size, c.n_ptok) < 1 or c.head_size < 4:
            raise ValueError(f"bad sizes in {c}")
        if not 0 <= c.sse_heads <= min(c.n_head, c.n_embd // c.head_size):
            raise ValueError(f"sse_heads {c.sse_heads} not in [0, min(H={c.n_head}, "
                             f"C/N={c.n_embd // c.head_size})]")
        if c.n_experts < 1 or c.n_ptok % c.n_experts or not 1 <= c.top_k <= c.n_experts:
            raise ValueError(f"n_experts {c.n_experts} must divide n={c.n_ptok}, "
                             f"top_k {c.top_k} must be in [1, n_experts]")
        return self


# --------------------------------------------------------------------------
# names and shapes (the one place that lists them)

def expected_shapes(cfg):
    """Ordered dict of every tensor name -> official shape for cfg.
    Layer 0 has no v0/v1/v2; Hs = 0 has no sse tensors."""
    C, A, H, N, n = cfg.n_embd, cfg.dim_att, cfg.n_head, cfg.head_size, cfg.n_ptok
    HsN = cfg.sse_heads * N
    s = {"emb.weight": (cfg.vocab_size, C)}
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        for ln in (["ln0"] if i == 0 else []) + ["ln1", "ln2"]:
            s[p + ln + ".weight"] = (C,)
            s[p + ln + ".bias"] = (C,)
        for x in "rwkvag":
            s[p + "att.x_" + x] = (1, 1, C)
        for v, D in (("w", cfg.d_w), ("a", cfg.d_a), ("v", cfg.d_v), ("g", cfg.d_g)):
            if v == "v" and i == 0:
                continue
            if v != "g":
                s[p + f"att.{v}0"] = (1, 1, A)
            s[p + f"att.{v}1"] = (C, D)
            s[p + f"att.{v}2"] = (D, A)
        s[p + "att.k_k"] = (1, 1, A)
        s[p + "att.k_a"] = (1, 1, A)
        s[p + "att.r_k"] = (H, N)
        for m in ("receptance", "key", "value"):
            s[p + f"att.{m}.weight"] = (A, C)
        s[p + "att.output.weight"] = (C, A)
        s[p + "att.ln_x.weight"] = (A,)
        s[p + "att.ln_x.bias"] = (A,)
        s[p + "ffn.x_k"] = (1, 1, C)
        s[p + "ffn.key.weight"] = (n, C)
        s[p + "ffn.value.weight"] = (C, n)
        if HsN:
            s[p + "ffn.sse_key.weight"] = (n, HsN)
            s[p + "ffn.sse_ln.weight"] = (HsN,)
            s[p + "ffn.sse_ln.bias"] = (HsN,)
    s["ln_out.weight"] = (C,)
    s["ln_out.bias"] = (C,)
    s["head.weight"] = (cfg.vocab_size, C)
    return s


def is_matrix(name):
    """True for the big matrices (stored F16/BF16 in low-precision files);
    lerps, biases, decays, r_k and norms stay F32."""
    return name.endswith(("emb.weight", "head.weight", "receptance.weight", "key.weight",
                          "value.weight", "output.weight", "sse_key.weight")) or \
        re.search(r"\.att\.[wavg][12]$", name) is not None


def _shape_ok(found, want):
    found = tuple(found)
    return found == tuple(want) or (len(want) == 3 and want[:2] == (1, 1) and found == want[2:])


def config_from_state_dict(sd, metadata=None):
    """Infer the Config from tensor shapes (and n_experts/top_k/sse_heads from
    metadata) and check every tensor.  Layer 0's v0/v1/v2 are accepted and
    ignored.  Raises ValueError naming the tensor, the expected and the found
    shape, or the missing / unknown tensor."""
    meta = metadata or {}

    def get(name):
        if name not in sd:
            raise ValueError(f"missing tensor {name}")
        return tuple(sd[name].shape)

    V, C = get("emb.weight")
    layers = {int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))}
    L = max(layers) + 1 if layers else 0
    if L == 0:
        raise ValueError("no blocks.* tensors")
    rk = get("blocks.0.att.r_k")
    if len(rk) != 2:
        raise ValueError(f"blocks.0.att.r_k: expected (H, N), found {rk}")
    H, N = rk
    n = get("blocks.0.ffn.key.weight")[0]
    Hs = 0
    if "blocks.0.ffn.sse_key.weight" in sd:
        hsn = get("blocks.0.ffn.sse_key.weight")[1]
        if hsn % N:
            raise ValueError(f"blocks.0.ffn.sse_key.weight: width {hsn} is not a multiple of N={N}")
        Hs = hsn // N
    if "sse_heads" in meta and int(meta["sse_heads"]) != Hs:
        raise ValueError(f"metadata sse_heads={meta['sse_heads']} but the tensors give {Hs}")
    dv_src = "blocks.1.att.v1" if L > 1 else "blocks.0.att.v1"
    cfg = Config(L, C, H, N, V, n, Hs,
                 d_w=get("blocks.0.att.w1")[1], d_a=get("blocks.0.att.a1")[1],
                 d_v=get(dv_src)[1] if dv_src in sd else 0, d_g=get("blocks.0.att.g1")[1],
                 n_experts=int(meta.get("n_experts", 1)), top_k=int(meta.get("top_k", 1)))
    cfg.check()
    want = expected_shapes(cfg)
    for name, shape in want.items():
        if not _shape_ok(get(name), shape):
            raise ValueError(f"{name}: expected shape {shape}, found {tuple(sd[name].shape)}")
    extra = [k for k in sd if k not in want and not re.fullmatch(r"blocks\.0\.att\.v[012]", k)]
    if extra:
        raise ValueError(f"unknown tensor {extra[0]} (shape {tuple(sd[extra[0]].shape)})"
                         + (f" and {len(extra) - 1} more" if len(extra) > 1 else ""))
    return cfg


# --------------------------------------------------------------------------
# the model

def layer_norm(x, ln):
    return F.layer_norm(x, x.shape[-1:], ln.weight, ln.bias, LN_EPS)


class HeadNorm(nn.Module):
    """GroupNorm with one group per head of size N, per-channel affine,
    biased variance, eps 64e-5 (ln_x and sse_ln)."""

    def __init__(self, heads, size, dtype):
        super().__init__()
        self.heads, self.size = heads, size
        self.weight = nn.Parameter(torch.ones(heads * size, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(heads * size, dtype=dtype))

    def forward(self, x):                                  # (..., heads*size)
        xs = x.view(*x.shape[:-1], self.heads, self.size)
        mu = xs.mean(-1, keepdim=True)
        var = ((xs - mu) ** 2).mean(-1, keepdim=True)
        y = (xs - mu) / torch.sqrt(var + HEAD_NORM_EPS)
        return y.reshape(x.shape) * self.weight + self.bias


def _lin(i, o, dtype):
    return nn.utils.skip_init(nn.Linear, i, o, bias=False, dtype=dtype)


def _vec(*shape, dtype):
    return nn.Parameter(torch.zeros(*shape, dtype=dtype))


class TimeMix(nn.Module):
    """RWKV-7 TimeMix, MODEL.md 2."""

    def __init__(self, cfg, layer_id, dtype):
        super().__init__()
        C, A, H, N = cfg.n_embd, cfg.dim_att, cfg.n_head, cfg.head_size
        self.layer_id, self.H, self.N = layer_id, H, N
        for x in "rwkvag":
            setattr(self, "x_" + x, _vec(1, 1, C, dtype=dtype))
        for v, D in (("w", cfg.d_w), ("a", cfg.d_a), ("v", cfg.d_v), ("g", cfg.d_g)):
            if v == "v" and layer_id == 0:
                continue
            if v != "g":
                setattr(self, v + "0", _vec(1, 1, A, dtype=dtype))
            setattr(self, v + "1", _vec(C, D, dtype=dtype))
            setattr(self, v + "2", _vec(D, A, dtype=dtype))
        self.k_k = _vec(1, 1, A, dtype=dtype)
        self.k_a = _vec(1, 1, A, dtype=dtype)
        self.r_k = _vec(H, N, dtype=dtype)
        self.receptance = _lin(C, A, dtype)
        self.key = _lin(C, A, dtype)
        self.value = _lin(C, A, dtype)
        self.output = _lin(A, C, dtype)
        self.ln_x = HeadNorm(H, N, dtype)

    def _inputs(self, xa, d, v_first):
        """The recurrence inputs of MODEL.md 2 from the normed input xa and the
        shift difference d = previous - xa, over any leading dims (...,C):
        r, w, k (after the k_a change), v (mixed), a, g, kk (per head unit,
        (..., H, N), from k before the k_a change) and v_first."""
        xr, xw, xk, xv, xa_, xg = (xa + d * getattr(self, "x_" + c).view(-1) for c in "rwkvag")
        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)
        w = torch.exp(-DECAY_SCALE * torch.sigmoid(self.w0.view(-1) + torch.tanh(xw @ self.w1) @ self.w2))
        a = torch.sigmoid(self.a0.view(-1) + (xa_ @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        if self.layer_id == 0:
            v_first = v
        else:
            v = v + (v_first - v) * torch.sigmoid(self.v0.view(-1) + (xv @ self.v1) @ self.v2)
        kk = (k * self.k_k.view(-1)).view(*k.shape[:-1], self.H, self.N)
        kk = kk / kk.norm(dim=-1, keepdim=True).clamp_min(1e-12)   # from k before k_a
        k = k * (1 + (a - 1) * self.k_a.view(-1))
        return r, w, k, v, a, g, kk, v_first

    def forward(self, xa, att_x, S, v_first, tr):
        """xa (B,C) normed input; att_x (B,C); S (B,H,N,N); v_first (B,A) or
        None in layer 0.  Returns (out (B,C), att_x', S', v_first)."""
        B, H, N = xa.shape[0], self.H, self.N
        r, w, k, v, a, g, kk, v_first = self._inputs(xa, att_x - xa, v_first)
        rh, kh, vh, wh, ah = (t.view(B, H, N) for t in (r, k, v, w, a))
        sa = S @ (-kk).unsqueeze(-1)                                 # (B,H,N,1) from old rows
        S = S * wh.unsqueeze(-2) + vh.unsqueeze(-1) * kh.unsqueeze(-2) + sa * (kk * ah).unsqueeze(-2)
        y = (S @ rh.unsqueeze(-1)).squeeze(-1)                       # (B,H,N) from new rows
        yn = self.ln_x(y.reshape(B, H * N))
        bonus = (rh * kh * self.r_k).sum(-1, keepdim=True) * vh       # modified k, mixed v
        out = self.output((yn + bonus.reshape(B, H * N)) * g)
        if tr is not None:
            tr.update(r=r, k=k, v=v, w=w, a=a, kk=kk.reshape(B, -1), g=g, y=y.reshape(B, -1), S=S)
        return out, xa, S, v_first

    def forward_seq(self, xa, att_x, S, v_first, wkv):
        """The same over a sequence: xa (B,T,C), att_x (B,C), S (B,H,N,N),
        v_first (B,T,A) or None in layer 0; wkv a function like wkv7_loop.
        Returns (out (B,T,C), att_x', S_T, v_first, rec) where rec =
        (w, k, v, kk, a, S) in (B,T,H,N) / (B,H,N,N), the recurrence inputs
        that the Self-State Encoder's read replays."""
        B, T, _ = xa.shape
        H, N = self.H, self.N
        d = torch.cat([att_x.unsqueeze(1), xa[:, :-1]], 1) - xa
        r, w, k, v, a, g, kk, v_first = self._inputs(xa, d, v_first)
        rh, kh, vh, wh, ah = (t.view(B, T, H, N) for t in (r, k, v, w, a))
        y, S_T = wkv(rh, wh, kh, vh, kk, ah, S)
        yn = self.ln_x(y.reshape(B, T, H * N))
        bonus = (rh * kh * self.r_k).sum(-1, keepdim=True) * vh
        out = self.output((yn + bonus.reshape(B, T, H * N)) * g)
        return out, xa[:, -1], S_T, v_first, (wh, kh, vh, kk, ah, S)


class MetaLayer(nn.Module):
    """The Meta-State layer, MODEL.md 3: RWKV-7 ChannelMix read as n parameter
    tokens, plus the Self-State Encoder over heads 0..Hs-1 of this layer's S."""

    def __init__(self, cfg, dtype):
        super().__init__()
        C, N, n = cfg.n_embd, cfg.head_size, cfg.n_ptok
        self.Hs, self.N, self.E, self.top_k = cfg.sse_heads, N, cfg.n_experts, cfg.top_k
        self.x_k = _vec(1, 1, C, dtype=dtype)
        self.key = _lin(C, n, dtype)
        self.value = _lin(n, C, dtype)
        if self.Hs:
            self.sse_key = _lin(self.Hs * N, n, dtype)
            self.sse_ln = HeadNorm(self.Hs, N, dtype)

    def forward(self, xf, ffn_x, S, tr):
        """xf (B,C) normed input; ffn_x (B,C); S (B,H,N,N) after this token's
        TimeMix.  Returns (out (B,C), ffn_x')."""
        B, Hs, N = xf.shape[0], self.Hs, self.N
        z = xf + (ffn_x - xf) * self.x_k.view(-1)
        s = self.key(z)
        if Hs:
            zq = z[:, :Hs * N].reshape(B, Hs, N)
            q = zq / zq.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            e_raw = (S[:, :Hs] @ q.unsqueeze(-1)).reshape(B, Hs * N)
            e = self.sse_ln(e_raw)
            s = s + self.sse_key(e)
        act = torch.relu(s) ** 2
        if self.E > 1:
            act = act * self._expert_mask(z, e if Hs else None)
        if tr is not None:
            tr.update(z=z, s=s)
            if Hs:
                tr.update(q=q.reshape(B, -1), e_raw=e_raw, e=e)
        return self.value(act), xf

    def forward_seq(self, xf, ffn_x, rec, wkv):
        """The same over a sequence: xf (B,T,C), ffn_x (B,C), rec the
        recurrence inputs from TimeMix.forward_seq; the SSE read e_t = S_t q_t
        is the recurrence replayed on heads 0..Hs-1 with q in place of r.
        Returns (out (B,T,C), ffn_x')."""
        B, T, _ = xf.shape
        Hs, N = self.Hs, self.N
        z = xf + (torch.cat([ffn_x.unsqueeze(1), xf[:, :-1]], 1) - xf) * self.x_k.view(-1)
        s = self.key(z)
        if Hs:
            zq = z[..., :Hs * N].reshape(B, T, Hs, N)
            q = zq / zq.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            w, k, v, kk, a, S0 = rec
            e_raw, _ = wkv(q, *(t[:, :, :Hs] for t in (w, k, v, kk, a)), S0[:, :Hs])
            e = self.sse_ln(e_raw.reshape(B, T, Hs * N))
            s = s + self.sse_key(e)
        act = torch.relu(s) ** 2
        if self.E > 1:
            act = act * self._expert_mask(z, e if Hs else None)
        return self.value(act), xf[:, -1]

    def _expert_mask(self, z, e):
        """MODEL.md 3.4: router key of a block = mean of its rows of [Kz | Ks];
        keep the top_k blocks by [z; e]·key.  Returns (..., n) of 0/1."""
        keys = self.key.weight if e is None else torch.cat([self.key.weight, self.sse_key.weight], 1)
        keys = keys.view(self.E, -1, keys.shape[1]).mean(1)            # (E, C + Hs*N)
        u = (z if e is None else torch.cat([z, e], -1)) @ keys.t()     # (..., E)
        top = u.topk(self.top_k, dim=-1).indices
        m = torch.zeros_like(u).scatter(-1, top, 1.0)
        return m.repeat_interleave(self.key.weight.shape[0] // self.E, dim=-1)


class Block(nn.Module):
    def __init__(self, cfg, i, dtype):
        super().__init__()
        C = cfg.n_embd
        if i == 0:
            self.ln0 = nn.LayerNorm(C, eps=LN_EPS, dtype=dtype)
        self.ln1 = nn.LayerNorm(C, eps=LN_EPS, dtype=dtype)
        self.ln2 = nn.LayerNorm(C, eps=LN_EPS, dtype=dtype)
        self.att = TimeMix(cfg, i, dtype)
        self.ffn = MetaLayer(cfg, dtype)


class MetaState(nn.Module):
    """The whole model.  MetaState(cfg, dtype, init, seed): init is "random"
    (test models: every tensor random at a scale with live dynamics),
    "rwkv7" (RWKV-7 training init) or None (zeros, to be loaded)."""

    def __init__(self, cfg, dtype=torch.float64, init="random", seed=0):
        super().__init__()
        self.cfg, self.dtype = cfg.check(), dtype
        self.emb = nn.utils.skip_init(nn.Embedding, cfg.vocab_size, cfg.n_embd, dtype=dtype)
        self.blocks = nn.ModuleList(Block(cfg, i, dtype) for i in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(cfg.n_embd, eps=LN_EPS, dtype=dtype)
        self.head = _lin(cfg.n_embd, cfg.vocab_size, dtype)
        if init is None:
            with torch.no_grad():
                for p in self.parameters():
                    p.zero_()
        else:
            init_weights(self, init, seed)

    @classmethod
    def from_state_dict(cls, sd, metadata=None, dtype=torch.float64):
        """Build a model from official-named tensors of any stored dtype
        (F16/BF16 are converted exactly).  Sizes come from the shapes; see
        config_from_state_dict for the errors."""
        cfg = config_from_state_dict(sd, metadata)
        m = cls(cfg, dtype, init=None)
        with torch.no_grad():
            for name, p in m.named_parameters():
                p.copy_(sd[name].to(torch.float64).reshape(p.shape))
        return m

    # ---- state --------------------------------------------------------------
    def zero_state(self, batch=1):
        c, z = self.cfg, dict(dtype=self.dtype, device=self.emb.weight.device)
        return [(torch.zeros(batch, c.n_embd, **z),
                 torch.zeros(batch, c.n_head, c.head_size, c.head_size, **z),
                 torch.zeros(batch, c.n_embd, **z)) for _ in range(c.n_layer)]

    def state_to_flat(self, state):
        return state_to_flat(state)

    def flat_to_state(self, flat):
        return flat_to_state(flat, self.cfg)

    # ---- forward ------------------------------------------------------------
    def _step(self, tok, state, trace=None):
        """tok (B,) long; state: list of (att_x, S, ffn_x) with batch B.
        Returns (logits (B,V), new state).  trace: None, or a list that gets
        one dict of intermediates per layer (names as in ms_trace)."""
        x = layer_norm(self.emb(tok), self.blocks[0].ln0)
        v_first, new = None, []
        for blk, (att_x, S, ffn_x) in zip(self.blocks, state):
            tr = {} if trace is not None else None
            dx, att_x, S, v_first = blk.att(layer_norm(x, blk.ln1), att_x, S, v_first, tr)
            x = x + dx
            dx, ffn_x = blk.ffn(layer_norm(x, blk.ln2), ffn_x, S, tr)
            x = x + dx
            new.append((att_x, S, ffn_x))
            if tr is not None:
                tr["x_out"] = x
                trace.append(tr)
        return self.head(layer_norm(x, self.ln_out)), new

    def step(self, token, state=None, trace=None):
        """One token.  token: an int (state unbatched: att_x (C), S (H,N,N),
        ffn_x (C)) or a (B,) tensor (state batched).  state None = zero state.
        Returns (logits, new state) with the same batching."""
        tok = torch.as_tensor(token, dtype=torch.long)
        if tok.dim() == 0:
            st = self.zero_state(1) if state is None else [tuple(t.unsqueeze(0) for t in ls) for ls in state]
            logits, st = self._step(tok.view(1), st, trace)
            if trace is not None:
                for tr in trace:
                    for kk in tr:
                        tr[kk] = tr[kk][0]
            return logits[0], [tuple(t[0] for t in ls) for ls in st]
        st = self.zero_state(tok.shape[0]) if state is None else state
        return self._step(tok, st, trace)

    def forward_seq(self, tokens, state=None, return_states=False, fast=False):
        """tokens (B,T) or (T,).  Returns (logits (B,T,V), final state) and,
        with return_states, the flat state after every token (B,T,state_len);
        unbatched input gives unbatched outputs.  fast: False = one `step`
        per token (the oracle); True = dense parts over all B*T at once and
        the recurrence in C on the CPU (wkv_ext) or `wkv7_loop` elsewhere;
        "ext" / "loop" force one.  fast does not give return_states."""
        tokens = torch.as_tensor(tokens, dtype=torch.long, device=self.emb.weight.device)
        single = tokens.dim() == 1
        if single:
            tokens = tokens.unsqueeze(0)
            if state is not None:
                state = [tuple(t.unsqueeze(0) for t in ls) for ls in state]
        st = self.zero_state(tokens.shape[0]) if state is None else state
        if fast:
            if return_states:
                raise ValueError("forward_seq: return_states needs fast=False")
            logits, st = self._forward_fast(tokens, st, fast)
            if single:
                logits, st = logits[0], [tuple(t[0] for t in ls) for ls in st]
            return logits, st
        logits, flats = [], []
        for t in range(tokens.shape[1]):
            lg, st = self._step(tokens[:, t], st)
            logits.append(lg)
            if return_states:
                flats.append(state_to_flat(st))
        logits = torch.stack(logits, 1)
        flats = torch.stack(flats, 1) if return_states else None
        if single:
            logits, st = logits[0], [tuple(t[0] for t in ls) for ls in st]
            flats = flats[0] if return_states else None
        return (logits, st, flats) if return_states else (logits, st)

    forward = forward_seq

    def _forward_fast(self, tokens, state, how):
        """forward_seq's fast path: (logits (B,T,V), new state)."""
        if how == "loop" or (how is True and tokens.device.type != "cpu"):
            wkv = wkv7_loop
        else:
            wkv = _wkv_ext().wkv7
        x = layer_norm(self.emb(tokens), self.blocks[0].ln0)
        v_first, new = None, []
        for blk, (att_x, S, ffn_x) in zip(self.blocks, state):
            dx, att_x, S, v_first, rec = blk.att.forward_seq(layer_norm(x, blk.ln1), att_x, S, v_first, wkv)
            x = x + dx
            dx, ffn_x = blk.ffn.forward_seq(layer_norm(x, blk.ln2), ffn_x, rec, wkv)
            x = x + dx
            new.append((att_x, S, ffn_x))
        return self.head(layer_norm(x, self.ln_out)), new


def _wkv_ext():
    """scripts/wkv_ext, imported by path (it builds its C library on first use)."""
    import importlib
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    return importlib.import_module("wkv_ext")


def wkv7_loop(r, w, k, v, kk, a, S):
    """The WKV-7 recurrence over a sequence as a loop of tensor ops (any
    device, any dtype; the autograd oracle for wkv_ext).  r w k v kk a
    (B,T,H,N), S (B,H,N,N).  Returns (y (B,T,H,N), final S)."""
    ys = []
    for t in range(r.shape[1]):
        sa = S @ (-kk[:, t]).unsqueeze(-1)
        S = S * w[:, t].unsqueeze(-2) + v[:, t].unsqueeze(-1) * k[:, t].unsqueeze(-2) + \
            sa * (kk[:, t] * a[:, t]).unsqueeze(-2)
        ys.append((S @ r[:, t].unsqueeze(-1)).squeeze(-1))
    return torch.stack(ys, 1), S


def state_len(cfg):
    return cfg.n_layer * (2 * cfg.n_embd + cfg.n_head * cfg.head_size ** 2)


def state_to_flat(state):
    """List of (att_x (...,C), S (...,H,N,N), ffn_x (...,C)) -> (..., state_len),
    per layer att_x, S, ffn_x (MODEL.md 4)."""
    parts = []
    for att_x, S, ffn_x in state:
        parts += [att_x, S.reshape(*S.shape[:-3], -1), ffn_x]
    return torch.cat(parts, -1)


def flat_to_state(flat, cfg):
    """Inverse of state_to_flat; views into flat."""
    C, H, N = cfg.n_embd, cfg.n_head, cfg.head_size
    if flat.shape[-1] != state_len(cfg):
        raise ValueError(f"state has {flat.shape[-1]} values, the model needs {state_len(cfg)}")
    out, o, pre = [], 0, flat.shape[:-1]
    for _ in range(cfg.n_layer):
        att_x = flat[..., o:o + C]; o += C
        S = flat[..., o:o + H * N * N].reshape(*pre, H, N, N); o += H * N * N
        ffn_x = flat[..., o:o + C]; o += C
        out.append((att_x, S, ffn_x))
    return out


# --------------------------------------------------------------------------
# initialisation

def _ortho(rows, cols, gain, g):
    a = torch.randn(max(rows, cols), min(rows, cols), generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))
    return (q if rows >= cols else q.t()) * gain


def init_weights(model, kind, seed):
    """Fill every parameter deterministically from seed (float64 draws, in
    parameter order, then cast).  kind "random": all tensors random, with
    decays spread over (0.55, 1), live LoRAs, a state that grows over tens of
    tokens and logits of std ~1.  kind "rwkv7": the RWKV-7 training init
    (zero LoRA inputs, zero output and value, layer-dependent lerps/decays)."""
    cfg, g = model.cfg, torch.Generator().manual_seed(seed)
    C, A, L = cfg.n_embd, cfg.dim_att, cfg.n_layer

    def U(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)

    def Nrm(shape, std):
        return torch.randn(shape, generator=g, dtype=torch.float64) * std

    vals = {}
    for name, p in model.named_parameters():
        sh, last = tuple(p.shape), name.split(".")[-1]
        part = name.rsplit(".", 2)
        layer = int(name.split(".")[1]) if name.startswith("blocks.") else 0
        if kind == "random":
            if re.search(r"(ln\d|ln_out|ln_x|sse_ln)\.weight$", name):
                v = 1 + U(sh, -0.2, 0.2)
            elif name.endswith(".bias"):
                v = Nrm(sh, 0.1)
            elif last.startswith("x_"):
                v = U(sh, 0, 1)
            elif last == "w0":
                v = U(sh, -5.0, 1.5)
            elif last in ("a0", "v0"):
                v = U(sh, -2.0, 2.0)
            elif last in ("w1", "a1", "v1", "g1"):
                v = Nrm(sh, C ** -0.5)
            elif last in ("w2", "a2", "v2"):
                v = Nrm(sh, 0.5 * sh[0] ** -0.5)
            elif last == "g2":
                v = Nrm(sh, 1.5 * sh[0] ** -0.5)
            elif last == "k_k":
                v = U(sh, 0.5, 1.2)
            elif last == "k_a":
                v = U(sh, 0.3, 1.2)
            elif last == "r_k":
                v = Nrm(sh, 0.5)
            elif name == "emb.weight":
                v = Nrm(sh, 1.0)
            elif part[-2] == "output" or name.endswith("ffn.value.weight"):
                v = Nrm(sh, 0.7 * sh[1] ** -0.5)
            else:                                     # r/k/v, ffn key, sse_key, head
                v = Nrm(sh, sh[1] ** -0.5)
        elif kind == "rwkv7":
            r01 = layer / max(L - 1, 1)
            r10 = 1.0 - layer / L
            ddd = torch.arange(C, dtype=torch.float64) / C
            if re.search(r"(ln\d|ln_out|sse_ln)\.weight$", name):
                v = torch.ones(sh)
            elif name.endswith("ln_x.weight"):
                v = torch.full(sh, ((1 + layer) / L) ** 0.7)
            elif name.endswith(".bias"):
                v = torch.zeros(sh)
            elif last.startswith("x_"):
                if name.endswith("ffn.x_k"):
                    e = r10 ** 4
                else:
                    e = {"r": 0.2, "w": 0.9, "k": 0.7, "v": 0.7, "a": 0.9, "g": 0.2}[last[2]] * r10
                v = (1 - ddd ** e).view(sh)
            elif last == "w0":
                nn_ = torch.arange(A, dtype=torch.float64) / max(A - 1, 1)
                v = (-7 + 5 * nn_ ** (0.85 + r01 ** 0.5) + 0.5).view(sh)
            elif last in ("w1", "a1", "v1", "g1"):
                v = torch.zeros(sh)
            elif last in ("w2", "a2", "v2", "g2"):
                v = _ortho(sh[0], sh[1], 0.1, g)
            elif last == "a0":
                v = torch.zeros(sh)
            elif last == "v0":
                v = torch.ones(sh)
            elif last == "k_k":
                v = torch.full(sh, 0.85)
            elif last == "k_a":
                v = torch.ones(sh)
            elif last == "r_k":
                v = torch.zeros(sh)
            elif name == "emb.weight":
                v = U(sh, -1e-4, 1e-4)
            elif name == "head.weight":
                v = _ortho(sh[0], sh[1], 0.5 * math.sqrt(max(sh[0] / sh[1], 1)), g)
            elif part[-2] in ("output",) or name.endswith("ffn.value.weight"):
                v = torch.zeros(sh)
            elif part[-2] == "key" and ".att." in name:
                v = U(sh, -0.05 * C ** -0.5, 0.05 * C ** -0.5)
            else:                                     # receptance, value, ffn key, sse_key
                v = U(sh, -0.5 * sh[1] ** -0.5, 0.5 * sh[1] ** -0.5)
        else:
            raise ValueError(f"unknown init {kind!r}")
        vals[name] = v
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(vals[name].to(torch.float64))


def metadata_for(cfg, tokenizer, trained_on, notes, vocab=None, growth="[]"):
    """The __metadata__ dict of MODEL.md 5.1 (all values strings)."""
    m = {"format": "metastate", "format_version": "1", "tokenizer": tokenizer,
         "sse_heads": str(cfg.sse_heads), "n_experts": str(cfg.n_experts),
         "top_k": str(cfg.top_k), "growth": growth, "trained_on": trained_on, "notes": notes}
    if vocab is not None:
        m["vocab"] = json.dumps(vocab, ensure_ascii=False)
    return m
