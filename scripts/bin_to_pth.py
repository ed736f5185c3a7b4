"""bin_to_pth.py: convert an rwkv.cpp RWKV-7 .bin (ggmf, version 101) to an
official-layout .pth (a torch.save'd dict of tensors with official names).

The .bin: int32 LE magic 0x67676d66, version 101, n_vocab, n_embed, n_layer,
data_type; then tensors to EOF, each int32 n_dims, name_len, dtype (0 F32,
1 F16), the dims in reversed (ggml) order, the name, the raw data.  rwkv.cpp
stacks the six lerps as att.x_rwkvag (6,1,C) and stores the LoRA matrices
transposed; both are undone here.  `read_bin` is also used by the tests to
load the rwkv.cpp fixture straight into the reference.

usage: bin_to_pth.py MODEL.bin OUT.pth [--dtype f32|bf16]
"""
import argparse
import re
import struct
import sys

import numpy as np
import torch

MAGIC, VERSION = 0x67676D66, 101


def read_bin(path):
    """Returns (dict official name -> float32/float16 torch tensor in official
    shape, header dict).  Raises ValueError naming the file, the offset and
    the tensor for anything malformed."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 24:
        raise ValueError(f"{path}: too short for an rwkv.cpp file")
    magic, version, n_vocab, n_embed, n_layer, data_type = struct.unpack_from("<6i", buf, 0)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"{path}: magic {magic:#x} version {version}, want {MAGIC:#x} version {VERSION}")
    hdr = dict(n_vocab=n_vocab, n_embed=n_embed, n_layer=n_layer, data_type=data_type)
    raw, o = {}, 24
    while o < len(buf):
        if o + 12 > len(buf):
            raise ValueError(f"{path}: truncated tensor header at offset {o}")
        nd, nl, dt = struct.unpack_from("<3i", buf, o)
        if not 1 <= nd <= 4 or dt not in (0, 1) or not 0 < nl < 256:
            raise ValueError(f"{path}: bad tensor header at offset {o} (n_dims {nd}, dtype {dt})")
        dims = struct.unpack_from(f"<{nd}i", buf, o + 12)
        o += 12 + 4 * nd
        name = buf[o:o + nl].decode()
        o += nl
        count = int(np.prod(dims))
        size = count * (4 if dt == 0 else 2)
        if o + size > len(buf):
            raise ValueError(f"{path}: tensor {name} at offset {o} runs past the end")
        arr = np.frombuffer(buf, dtype="<f4" if dt == 0 else "<f2", count=count, offset=o)
        raw[name] = torch.from_numpy(arr.reshape(dims[::-1]).copy())
        o += size
    return _official(raw, path), hdr


def _official(raw, path):
    out = {}
    for name, t in raw.items():
        m = re.fullmatch(r"(blocks\.\d+\.att\.)(\w+)", name)
        if m and m.group(2) == "x_rwkvag":
            if t.shape[0] != 6:
                raise ValueError(f"{path}: {name}: expected (6,1,C), found {tuple(t.shape)}")
            for j, c in enumerate("rwkvag"):
                out[m.group(1) + "x_" + c] = t[j].reshape(1, 1, -1).clone()
        elif m and re.fullmatch(r"[wavg][12]", m.group(2)):
            out[name] = t.t().contiguous()
        else:
            out[name] = t
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bin")
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    a = ap.parse_args()
    try:
        sd, _ = read_bin(a.bin)
    except (OSError, ValueError) as e:
        print(f"bin_to_pth: {e}", file=sys.stderr)
        sys.exit(2)
    dt = torch.float32 if a.dtype == "f32" else torch.bfloat16
    torch.save({k: v.to(dt) for k, v in sd.items()}, a.out)
    print(f"bin_to_pth: wrote {len(sd)} tensors to {a.out}")


if __name__ == "__main__":
    main()
