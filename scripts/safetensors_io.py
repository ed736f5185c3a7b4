"""safetensors_io.py: read and write .safetensors files with torch and numpy only.

The format: an 8-byte little-endian header length, a JSON header mapping each
tensor name to {dtype, shape, data_offsets: [begin, end]} (offsets relative to
the data section) plus an optional "__metadata__" of string -> string, padded
with spaces to a multiple of 8, then the raw little-endian tensor data.
Dtypes: F32, F16, BF16 (through torch.bfloat16), F64, I32, I64, U8.
This is not a memory-mapping loader: it reads the whole file, which is fine
for the reference scripts and the test models.
"""
import json
import os
import struct

import numpy as np
import torch

# safetensors dtype -> (numpy storage dtype, torch dtype).  BF16 is stored as
# raw 16-bit words and reinterpreted, since numpy has no bfloat16.
_DT = {
    "F32": ("<f4", torch.float32),
    "F16": ("<f2", torch.float16),
    "BF16": ("<i2", torch.bfloat16),
    "F64": ("<f8", torch.float64),
    "I32": ("<i4", torch.int32),
    "I64": ("<i8", torch.int64),
    "U8": ("u1", torch.uint8),
}
_TORCH2ST = {v[1]: k for k, v in _DT.items()}


def _raw_bytes(t):
    """Little-endian bytes of a tensor, row-major."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    np_dt = _DT[_TORCH2ST[t.dtype]][0]
    return t.numpy().astype(np_dt, copy=False).tobytes()


def save(path, tensors, metadata=None):
    """Write tensors (dict name -> torch tensor, in dict order) and metadata
    (dict str -> str) to path.  The file is written to a temporary name and
    renamed, so a failure never leaves a half-written file under path.
    Raises TypeError for an unsupported dtype or a non-string metadata value."""
    header, blobs, off = {}, [], 0
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"metadata {k!r}: keys and values must be str")
        header["__metadata__"] = dict(metadata)
    for name, t in tensors.items():
        if t.dtype not in _TORCH2ST:
            raise TypeError(f"tensor {name}: unsupported dtype {t.dtype}")
        b = _raw_bytes(t)
        header[name] = {"dtype": _TORCH2ST[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path):
    """Read path.  Returns (dict name -> torch tensor in the stored dtype,
    metadata dict).  Raises ValueError naming the file and the tensor for a
    malformed header, an unknown dtype or a byte range that does not fit."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", buf[:8])
    if hlen > len(buf) - 8:
        raise ValueError(f"{path}: header length {hlen} exceeds the file size {len(buf)}")
    try:
        header = json.loads(buf[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: bad JSON header: {e}") from None
    data = memoryview(buf)[8 + hlen:]
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        dt = info.get("dtype")
        if dt not in _DT:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        np_dt, t_dt = _DT[dt]
        shape = [int(s) for s in info["shape"]]
        b, e = info["data_offsets"]
        numel = int(np.prod(shape)) if shape else 1
        if not 0 <= b <= e <= len(data) or e - b != numel * np.dtype(np_dt).itemsize:
            raise ValueError(f"{path}: tensor {name}: byte range [{b},{e}) does not fit "
                             f"shape {shape} {dt} in a data section of {len(data)} bytes")
        arr = np.frombuffer(data[b:e], dtype=np_dt).reshape(shape).copy()
        t = torch.from_numpy(arr)
        out[name] = t.view(torch.bfloat16) if t_dt == torch.bfloat16 else t
    return out, meta
