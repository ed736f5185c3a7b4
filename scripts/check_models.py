"""check_models.py: check shipped models against the C program.

For each model (default: models/*.safetensors), from its metadata:
  text models (tokenizer bytes, trained_on.heldout_bpb_stored):
      ./metastate MODEL --batch --json -c 'score @HELDOUT' must give the
      stored held-out bits per byte within --tol (default 1e-3 bits);
      HELDOUT = models/kjv-heldout.txt
  task models (tokenizer words, trained_on.task and accuracy_stored):
      ./metastate MODEL --batch --json -c 'task NAME 4T 512 1000' (the
      sequences train.py evaluated on) must give the stored accuracy of each
      position bucket within 2e-3 (argmax near-ties may flip).
Prints each comparison; exits 1 on a failure, 2 if the program is missing.

usage: check_models.py [--metastate ./metastate] [--heldout models/kjv-heldout.txt] [MODEL ...]
"""
import argparse
import glob
import json
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def header_meta(path):
    """The __metadata__ of a safetensors file (header only)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)).get("__metadata__", {})


def run_ms(ms, model, cmd):
    p = subprocess.run([ms, model, "--batch", "--json", "-c", cmd], capture_output=True, text=True)
    lines = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    res = [o for o in lines if o.get("cmd") == cmd.split()[0]]
    if p.returncode != 0 or not res or not res[-1].get("ok", False):
        raise RuntimeError(f"{ms} {model} -c '{cmd}' failed (rc {p.returncode}): {p.stdout[-400:]} {p.stderr[-400:]}")
    return res[-1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--metastate", default=os.path.join(ROOT, "metastate"))
    ap.add_argument("--heldout", default=os.path.join(ROOT, "models", "kjv-heldout.txt"))
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    if not os.access(a.metastate, os.X_OK):
        print(f"check_models: {a.metastate} is not built")
        sys.exit(2)
    models = a.models or sorted(glob.glob(os.path.join(ROOT, "models", "*.safetensors")))
    fails = 0
    for m in models:
        meta = header_meta(m)
        try:
            tr = json.loads(meta.get("trained_on", "{}"))
        except json.JSONDecodeError:
            tr = {}
        name = os.path.relpath(m, ROOT)
        if meta.get("tokenizer") == "bytes" and "heldout_bpb_stored" in tr:
            r = run_ms(a.metastate, m, f"score @{a.heldout}")
            d = abs(r["bits_per_byte"] - tr["heldout_bpb_stored"])
            ok = d <= a.tol
            print(f"  {'ok  ' if ok else 'FAIL'} {name}: held-out {r['bytes']} bytes, ./metastate "
                  f"{r['bits_per_byte']:.6f} bits/byte, train.py (PyTorch) {tr['heldout_bpb_stored']:.6f}, "
                  f"|d| {d:.2e} (<= {a.tol:g})")
        elif meta.get("tokenizer") == "words" and "task" in tr and "accuracy_stored" in tr:
            buckets = tr["accuracy_stored"]
            T4 = max(int(k.split("-")[1]) for k in buckets)
            r = run_ms(a.metastate, m, f"task {tr['task']} {T4} 512 1000")
            pp = r["per_position"]
            worst = 0.0
            for k, v in buckets.items():
                lo, hi = (int(x) for x in k.split("-"))
                c = sum(pp[lo - 1:hi]) / (hi - lo + 1)
                worst = max(worst, abs(c - v))
                print(f"       {name}: positions {k}: ./metastate {c:.4f}, train.py {v:.4f}")
            ok = worst <= 2e-3
            print(f"  {'ok  ' if ok else 'FAIL'} {name}: task {tr['task']} accuracy by bucket, max |d| {worst:.4f}")
        else:
            print(f"  skip {name}: no held-out or task figure in its metadata")
            continue
        fails += not ok
    print(f"check_models: {len(models)} models, {fails} failed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
