"""wkv_ext: the WKV-7 recurrence over a sequence as one autograd function
whose forward and backward are C loops (wkv7.c, OpenMP over batch x head).

    y, S_T = wkv7(r, w, k, v, kk, a, S0)

r w k v kk a: (B, T, H, N) on the CPU, float32 or float64 (all the same);
S0: (B, H, N, N) [value i][key j].  y: (B, T, H, N), y_t = S_t r_t with S_t
the state after step t; S_T the final state.  The Self-State Encoder read
e_t = S_t q_t is wkv7(q, w, k, v, kk, a, S0) on the SSE heads (MODEL.md 3.1).
Gradients flow to all seven inputs.

The shared library is compiled on first use (gcc -O2 -fopenmp -shared -fPIC)
into build/wkv_ext.so next to the repository's other build outputs, and
rebuilt when wkv7.c or wkv7_impl.h is newer.  This module is for training and
checks; the C program's inference path is core/.
"""
import ctypes
import os
import subprocess
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SO = os.path.join(ROOT, "build", "wkv_ext.so")
SRC = [os.path.join(HERE, "wkv7.c"), os.path.join(HERE, "wkv7_impl.h")]
CFLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=gnu11", "-Wall", "-Wextra"]
_lib = None


def build(force=False):
    """Compile build/wkv_ext.so if missing or older than its sources.
    Written under a temporary name and renamed, so concurrent first uses never
    load a half-written file.  Raises RuntimeError with gcc's message."""
    if not force and os.path.exists(SO) and \
            os.path.getmtime(SO) >= max(os.path.getmtime(s) for s in SRC):
        return SO
    os.makedirs(os.path.dirname(SO), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="wkv_ext.", suffix=".so", dir=os.path.dirname(SO))
    os.close(fd)
    cmd = [os.environ.get("CC", "gcc"), *CFLAGS, "-o", tmp, SRC[0]]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        os.unlink(tmp)
        raise RuntimeError(f"wkv_ext: building {SO} failed:\n{' '.join(cmd)}\n{p.stderr}")
    os.replace(tmp, SO)
    return SO


def lib():
    """The loaded library (built on first use)."""
    global _lib
    if _lib is None:
        L = ctypes.CDLL(build())
        I, P = ctypes.c_int, ctypes.c_void_p
        for suf in ("f32", "f64"):
            getattr(L, "wkv7_forward_" + suf).argtypes = [I, I, I, I] + [P] * 9 + [I]
            getattr(L, "wkv7_backward_" + suf).argtypes = [I, I, I, I] + [P] * 15 + [I]
        L.wkv7_ck_interval.restype = I
        _lib = L
    return _lib


def _ptr(t):
    return ctypes.c_void_p(t.data_ptr())


class WKV7(torch.autograd.Function):
    """See the module docstring.  The forward keeps the inputs and the state
    every 16 steps; the backward recomputes the states in between."""

    @staticmethod
    def forward(ctx, r, w, k, v, kk, a, S0):
        dt = r.dtype
        if dt not in (torch.float32, torch.float64):
            raise TypeError(f"wkv7: dtype {dt}, want float32 or float64")
        ins = [t.detach().contiguous() for t in (r, w, k, v, kk, a)]
        B, T, H, N = r.shape
        for name, t in zip(("r", "w", "k", "v", "kk", "a"), ins):
            if t.shape != r.shape or t.dtype != dt or t.device.type != "cpu":
                raise ValueError(f"wkv7: {name} is {tuple(t.shape)} {t.dtype} on {t.device}, "
                                 f"want {tuple(r.shape)} {dt} on the CPU")
        if tuple(S0.shape) != (B, H, N, N) or S0.dtype != dt:
            raise ValueError(f"wkv7: S0 is {tuple(S0.shape)} {S0.dtype}, want {(B, H, N, N)} {dt}")
        L, suf = lib(), "f32" if dt == torch.float32 else "f64"
        ck_n = (T + L.wkv7_ck_interval() - 1) // L.wkv7_ck_interval()
        S = S0.detach().to(memory_format=torch.contiguous_format).clone()
        y = torch.empty_like(ins[0])
        ck = torch.empty(B, H, max(ck_n, 1), N, N, dtype=dt)
        rc = getattr(L, "wkv7_forward_" + suf)(B, T, H, N, *map(_ptr, ins), _ptr(S), _ptr(y), _ptr(ck),
                                                torch.get_num_threads())
        if rc:
            raise ValueError(f"wkv7: head size {N} not supported (rc {rc})")
        ctx.save_for_backward(*ins, ck)
        return y, S

    @staticmethod
    def backward(ctx, dy, dS):
        *ins, ck = ctx.saved_tensors
        B, T, H, N = ins[0].shape
        dt = ins[0].dtype
        dy = torch.zeros_like(ins[0]) if dy is None else dy.to(dt).contiguous()
        dS = torch.zeros(B, H, N, N, dtype=dt) if dS is None else dS.to(dt).contiguous().clone()
        outs = [torch.empty_like(ins[0]) for _ in range(6)]
        L, suf = lib(), "f32" if dt == torch.float32 else "f64"
        rc = getattr(L, "wkv7_backward_" + suf)(B, T, H, N, *map(_ptr, ins), _ptr(ck), _ptr(dy), _ptr(dS),
                                                 *map(_ptr, outs), torch.get_num_threads())
        if rc:
            raise RuntimeError(f"wkv7 backward failed (rc {rc})")
        return (*outs, dS)


def wkv7(r, w, k, v, kk, a, S0):
    """y (B,T,H,N), S_T (B,H,N,N); see the module docstring."""
    return WKV7.apply(r, w, k, v, kk, a, S0)
