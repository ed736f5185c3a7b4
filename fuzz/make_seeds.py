"""make_seeds.py: write the committed seed corpora of the fuzz targets,
fuzz/corpus/<target>/, reproducibly (run from the repository root:
/usr/bin/python3 fuzz/make_seeds.py).

Every seed is a small valid input (under 64 KB) or a near miss, so that the
fuzzer starts deep inside each parser instead of at its first check:

  safetensors  random Meta-State models (scripts/make_random.py): bytes/F32
               with one layer, words/BF16 and words/F16 (Hs = 0) with two,
               parameter-token experts, every tensor F16 (1-D ones too);
               a hand-made file with every dtype, a 0-d and an empty tensor;
               a state-file-like header (format metastate-state)
  rwkvbin      the same kind of random plain RWKV-7 model written in the
               rwkv.cpp layout (F32 and F16), and the first 62403 bytes of
               tests/fixtures/tiny-rwkv-7v0-834K-FP16.bin (its header and
               the first tensors; rwkv.cpp, MIT licence, see
               tests/fixtures/LICENSE.rwkv.cpp)
  vocab        lines of models/vocab/rwkv_vocab_v20230424.txt (the single
               bytes, a sample with every escape kind and CJK, CRLF without a
               final newline) and a hand-written one
  words        a text line then one word per line
  statefile    written by the real writer: fuzz/fuzz_statefile.c built with
               -DFUZZ_STATEFILE_SEEDS against build/libmscore.a (run `make`
               first): native files with and without logits, one for other
               weights, time_state imports (BF16 with a leading 1, F32)
  command      command scripts for the tiny bytes model (JSON mode; one in
               text mode; one that records a file and sources it)

Needs torch (through make_random.py), numpy, and cc for the state files.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
PY = sys.executable


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if len(data) >= 65536:
        sys.exit(f"make_seeds: {target}/{name} is {len(data)} bytes (seeds stay under 64 KB)")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    print(f"make_seeds: {target}/{name}: {len(data)} bytes")


def make_random(args):
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, "m.safetensors")
        subprocess.run([PY, os.path.join(ROOT, "scripts", "make_random.py")] + args + [p],
                       check=True, stdout=subprocess.DEVNULL)
        with open(p, "rb") as f:
            return f.read()


def read_st(buf):
    """name -> numpy array (float32/float16, BF16 widened to float32), metadata"""
    n = struct.unpack_from("<Q", buf, 0)[0]
    hdr = json.loads(buf[8:8 + n])
    meta = hdr.pop("__metadata__", {})
    data = buf[8 + n:]
    out_ = {}
    for name, e in hdr.items():
        b, en = e["data_offsets"]
        raw = data[b:en]
        if e["dtype"] == "F32":
            a = np.frombuffer(raw, "<f4")
        elif e["dtype"] == "F16":
            a = np.frombuffer(raw, "<f2")
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view("<f4")
        else:
            raise ValueError(f"{name}: {e['dtype']}")
        out_[name] = a.reshape(e["shape"])
    return out_, meta


def st_bytes(tensors, meta=None):
    """A safetensors file from (name, dtype string, shape, raw bytes)."""
    hdr, blobs, off = {}, [], 0
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def to_bin(sd, n_layer, f16):
    """rwkv.cpp format 101: header, then tensors with dims reversed, the six
    lerps stacked as att.x_rwkvag, LoRA matrices transposed, 1-D in F32."""
    vocab, C = sd["emb.weight"].shape
    parts = [struct.pack("<6i", 0x67676D66, 101, vocab, C, n_layer, 1 if f16 else 0)]

    def put(name, a, matrix):
        a = np.ascontiguousarray(a, dtype=np.float16 if (f16 and matrix) else np.float32)
        dims = list(a.shape)[::-1]
        nm = name.encode()
        parts.append(struct.pack("<3i", len(dims), len(nm), 1 if a.dtype == np.float16 else 0))
        parts.append(struct.pack(f"<{len(dims)}i", *dims) + nm + a.tobytes())

    done = set()
    for name, a in sd.items():
        if name in done:
            continue
        parts_ = name.split(".")
        if len(parts_) == 4 and parts_[2] == "att" and parts_[3] in ("x_r", "x_w", "x_k", "x_v", "x_a", "x_g"):
            pre = ".".join(parts_[:3])
            stack = np.stack([sd[f"{pre}.x_{c}"].reshape(-1) for c in "rwkvag"]).reshape(6, 1, C)
            put(f"{pre}.x_rwkvag", stack, False)
            done.update(f"{pre}.x_{c}" for c in "rwkvag")
            continue
        if len(parts_) == 4 and parts_[2] == "att" and parts_[3] in ("w1", "w2", "a1", "a2", "v1", "v2", "g1", "g2"):
            put(name, a.T, True)
            continue
        put(name, a, a.ndim == 2 and not name.endswith("r_k"))
    return b"".join(parts)


def safetensors_seeds():
    tiny = ["--embd", "16", "--heads", "2", "--head-size", "8", "--ptok", "20"]
    out("safetensors", "bytes-f32-L1.safetensors",
        make_random(["--layers", "1"] + tiny + ["--sse-heads", "1", "--lora", "4,4,4,4", "--vocab", "256",
                                                "--tokenizer", "bytes", "--seed", "1"]))
    out("safetensors", "words-bf16-L2.safetensors",
        make_random(["--layers", "2"] + tiny + ["--sse-heads", "2", "--lora", "4,3,2,5", "--tokenizer", "words",
                                                "--words", "the,cat,sat,on,a,mat,.,\u00e9t\u00e9", "--dtype", "bf16",
                                                "--seed", "2"]))
    out("safetensors", "words-f16-L2-hs0.safetensors",
        make_random(["--layers", "2", "--embd", "8", "--heads", "1", "--head-size", "8", "--ptok", "9",
                     "--sse-heads", "0", "--lora", "2,2,2,2", "--tokenizer", "words", "--vocab", "5",
                     "--dtype", "f16", "--seed", "3"]))
    # parameter-token experts (MODEL.md 3.4): 4 experts of 5 tokens, top 2
    out("safetensors", "experts-L1.safetensors",
        make_random(["--layers", "1", "--embd", "8", "--heads", "1", "--head-size", "8", "--ptok", "20",
                     "--sse-heads", "1", "--lora", "2,2,2,2", "--tokenizer", "words", "--vocab", "4",
                     "--experts", "4", "--top-k", "2", "--seed", "5"]))
    # every tensor F16, the 1-D ones too (the loader converts those to F32)
    sd, meta = read_st(make_random(["--layers", "2", "--embd", "8", "--heads", "1", "--head-size", "8",
                                    "--ptok", "9", "--sse-heads", "1", "--lora", "2,2,2,2", "--tokenizer", "words",
                                    "--vocab", "3", "--seed", "6"]))
    out("safetensors", "all-f16.safetensors",
        st_bytes([(k, "F16", v.shape, v.astype("<f2").tobytes()) for k, v in sd.items()], meta))
    # every dtype the reader knows, a 0-d tensor and an empty one
    f = np.arange(6, dtype="<f4")
    out("safetensors", "dtypes.safetensors", st_bytes([
        ("f32", "F32", (2, 3), f.tobytes()),
        ("f16", "F16", (3, 2), f.astype("<f2").tobytes()),
        ("bf16", "BF16", (6,), (f.view("<u4") >> 16).astype("<u2").tobytes()),
        ("i32", "I32", (1, 2), np.array([1, -1], "<i4").tobytes()),
        ("i64", "I64", (2,), np.array([1, -1], "<i8").tobytes()),
        ("f64", "F64", (1,), np.array([0.5], "<f8").tobytes()),
        ("u8", "U8", (1, 1, 3), b"abc"),
        ("scalar", "F32", (), f[:1].tobytes()),
        ("empty", "F32", (0, 4), b""),
    ], {"format": "metastate", "notes": "dtypes"}))
    # a state file's shape of header: the model loader must refuse it cleanly
    z = np.zeros(16, "<f4").tobytes()
    out("safetensors", "statefile-like.safetensors", st_bytes([
        ("blocks.0.att.x_prev", "F32", (16,), z),
        ("blocks.0.att.time_state", "F32", (2, 8, 8), np.zeros(128, "<f4").tobytes()),
        ("blocks.0.ffn.x_prev", "F32", (16,), z),
    ], {"format": "metastate-state", "format_version": "1"}))


def rwkvbin_seeds():
    for f16 in (False, True):
        buf = make_random(["--layers", "2", "--embd", "16", "--heads", "2", "--head-size", "8", "--ptok", "32",
                           "--sse-heads", "0", "--lora", "4,4,4,4", "--vocab", "256", "--tokenizer", "bytes",
                           "--dtype", "f16" if f16 else "f32", "--seed", "4"])
        sd, _ = read_st(buf)
        out("rwkvbin", f"plain-L2-{'f16' if f16 else 'f32'}.bin", to_bin(sd, 2, f16))
    with open(os.path.join(ROOT, "tests", "fixtures", "tiny-rwkv-7v0-834K-FP16.bin"), "rb") as f:
        out("rwkvbin", "tiny-rwkv-7v0-834K-FP16.first62403.bin", f.read(62403))


def vocab_seeds():
    with open(os.path.join(ROOT, "models", "vocab", "rwkv_vocab_v20230424.txt"), "rb") as f:
        lines = f.read().split(b"\n")
    out("vocab", "bytes.txt", b"\n".join(lines[:256]) + b"\n")
    pick = [9, 10, 12, 34, 39, 40, 93, 127, 128, 129, 200, 256, 257, 260, 273, 326, 363, 372, 1000, 5000,
            9803, 9804, 10000, 20000, 30000, 40000, 50000, 60000, 65000, 65528]
    sample = [lines[i] for i in pick]
    out("vocab", "sample.txt", b"\n".join(sample) + b"\n")
    out("vocab", "sample-crlf.txt", b"\r\n".join(sample))
    out("vocab", "hand.txt",
        b"1 'a' 1\n2 'b' 1\n3 'ab' 2\n4 b'\\xff' 1\n5 '\\u4f60' 3\n6 \"'\\\"\" 2\n7 '\\t\\n\\r\\\\' 4\n"
        b"8 '\\x80' 2\n9 '\xe4\xbd\xa0\xe5\xa5\xbd' 6\n65535 ' ' 1\n")


def words_seeds():
    out("words", "sentence.txt", b"the cat sat on the mat\nthe\ncat\nsat\non\nmat\n.")
    out("words", "spaces.txt", b"  a\tb \r\n c\x0bd\x0c \na\nb\nc\nd")
    out("words", "unknown.txt", b"food fo0d\nfo\nfood\nbar\nzebra\n0\n1\n213\n21345")
    out("words", "utf8.txt", "\u00e9t\u00e9 \u4f60\u597d \xff\n\u00e9t\u00e9\n\u4f60\u597d".encode() + b"\n\xff")


def statefile_seeds():
    d = os.path.join(CORPUS, "statefile")
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "seeds")
        subprocess.run(["cc", "-std=gnu11", "-fopenmp", "-DFUZZ_STATEFILE_SEEDS", "-Icore", "-Ifuzz",
                        "fuzz/fuzz_statefile.c", "build/libmscore.a", "-o", exe,
                        "-lopenblas", "-lcjson", "-lm", "-lpthread"], check=True, cwd=ROOT)
        subprocess.run([exe, d], check=True, cwd=ROOT)
    for n in sorted(os.listdir(d)):
        print(f"make_seeds: statefile/{n}: {os.path.getsize(os.path.join(d, n))} bytes")


def command_seeds():
    out("command", "basics.txt", b"info\nfeed Hello\\n world\ntop 5\nsnap a\nstep 3\nsnaps\nrestore a\n"
        b"set-sampler temp=0.5 top_p=0.9 top_k=3 seed=7\ngen 4\nscore abc\nreset\nhelp feed\napropos snap\n")
    out("command", "files.txt", b"feed-tokens 1 2 255\nsave st\nsnap b\nopen st c\nopen st d --force\n"
        b"save-logits lg\nscore @lg\ndrop b\nload model.safetensors\nsource st\nquit\ninfo\n")
    out("command", "json.txt", b"#json\nfeed \"quoted\" \\xff\\x00 text\ntop\nsnap\nsnap\nsnaps\n"
        b"feed-tokens 256\nstep x\nrestore nope\nfed\nset-sampler top_p=2\n")
    out("command", "record-source.txt", b"record r\ninfo\nfeed ab\nsnap x\nrecord off\nsource r\nhistory 3\n"
        b"fork b1\nbranches\nevents\ngoto 1\nreplay --verify\ndiff x now\nzero L0.att_x\nmem\n")
    out("command", "text-mode.txt", b"#text\nfeed hi\ntop 3\nstep 2\nsnaps\nhelp feed\n")
    out("command", "errors.txt", b"restore\nsnap now\nsnap -x\nsave\nopen\nload\ngen -1\ngen 99999999999999\n"
        b"top 0\ntop 257\nfeed\nfeed \\q\nstep 1 2\n\"unterminated\n\x01\xff\n")


def main():
    statefile_seeds()
    command_seeds()
    safetensors_seeds()
    rwkvbin_seeds()
    vocab_seeds()
    words_seeds()


if __name__ == "__main__":
    main()
