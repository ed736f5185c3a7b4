"""train.py: train a Meta-State model (or plain RWKV-7 with --sse-heads 0) and
write a .safetensors file that ./metastate loads.

Two kinds of data:
  kjv        the King James Bible from Debian's bible-kjv (`bible -f
             Ge1:1-Re22:21`), bytes tokenizer.  Verse references ("Ge1:1 ")
             are stripped: the text is the verses, one per line, "\\n"
             after each, as a user would type them.  Held out: every 50th
             chapter of the 1,189 in canonical order (chapters 50, 100, ...,
             1150: 23 chapters, 86,123 bytes), which no training step sees;
             --heldout-out writes it (models/kjv-heldout.txt).  Training
             reads the rest, concatenated, in windows of --ctx+1 bytes:
             with --streams 1 (default) batch row i reads in order from
             i/B of the way in and carries its state (detached) to the
             next window, zeroed with chance --reset-prob per window and at
             the end of the text; with --streams 0 windows start at uniform
             random offsets, from the zero state.
  task NAME  parity | s3 | s5 | modcount-K (scripts/tasks.py), words
             tokenizer, fresh sequences of --ctx tokens every step from the
             seeded generator, loss on every position; accuracy is reported
             by position bucket at 1x, 2x and 4x the training length.

The model is metastate_ref.MetaState (the one model definition), trained in
float32 with forward_seq(fast=True): dense parts over all B*T positions at
once, the WKV recurrence in C (scripts/wkv_ext) on the CPU or as a loop of
tensor ops on CUDA.  --slow uses the per-token reference loop (to measure).

AdamW (betas 0.9/0.99, weight decay on the big matrices only), linear warmup
then cosine decay to --lr-min, gradient clipping at 1.  A checkpoint (model,
optimizer, step, data and torch RNG states, log) is written atomically every
--ckpt-every seconds and at the end to build/train/NAME.ckpt; --resume
continues from it and gives the same run as without the interruption (and
re-exports a finished run).  A fixed --seed gives the same run for the same
thread count and machine.
Progress: one line per --log-every seconds (tokens/s, loss, held-out).

Output: the .safetensors with MODEL.md 5.1's metadata, big matrices in
--store f16 (default) | bf16 | f32, and the held-out figure of the stored
file (re-read from disk) beside the float32 one.

usage: train.py kjv OUT.safetensors [--layers 4 --embd 128 --head-size 32
         --sse-heads 1 --ptok 512 --lora 16,16,16,16] [--batch 16 --ctx 256
         --tokens 6e6 --lr 3e-3 --lr-min 3e-4 --warmup 200] [--seed 0]
         [--threads 2] [--device cpu|cuda] [--resume] [--max-minutes M]
         [--heldout-out models/kjv-heldout.txt]
       train.py task s5 OUT.safetensors [same options]
       train.py kjv OUT.safetensors --init-from GROWN.safetensors [...]
                                              (continue from a model, e.g. one grown by `grow`)
       train.py kjv-heldout OUT.txt           (write the held-out text only)
"""
import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time

# Idle OpenMP threads sleep instead of spinning: on a shared machine a spinning
# thread steals the core that its descheduled partner needs (measured: 2
# spinning threads ran 5x slower than 1 under a load of 4 on 2 cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metastate_ref as ref   # noqa: E402
import safetensors_io         # noqa: E402
from tasks import Task        # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KJV_CMD = ["bible", "-f", "Ge1:1-Re22:21"]
HELDOUT_EVERY = 50          # every 50th chapter is held out
STORE = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}


def fail(msg):
    print(f"train: {msg}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------
# data

def kjv_chapters():
    """The KJV as a list of chapters, each a list of verse strings (no
    references).  Runs Debian's `bible`; continuation lines (if the program
    ever wraps) are joined to their verse with a space."""
    if not shutil.which("bible"):
        fail("the `bible` program is missing: apt-get install bible-kjv")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run(KJV_CMD, capture_output=True, text=True, env=env, check=True).stdout
    ref_re = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
    chapters, cur = [], None
    for line in out.splitlines():
        m = ref_re.match(line)
        if not m:
            if chapters and line.strip():
                chapters[-1][-1] += " " + line.strip()
            continue
        key = (m.group(1), m.group(2))
        if key != cur:
            chapters.append([])
            cur = key
        chapters[-1].append(m.group(4))
    if len(chapters) != 1189:
        fail(f"`{' '.join(KJV_CMD)}` gave {len(chapters)} chapters, expected 1189")
    return chapters


def kjv_split():
    """(train bytes, held-out bytes): every HELDOUT_EVERY-th chapter (1-based
    index) is held out; each verse is its text plus "\\n"."""
    tr, ho = [], []
    for i, ch in enumerate(kjv_chapters()):
        (ho if (i + 1) % HELDOUT_EVERY == 0 else tr).append("".join(v + "\n" for v in ch))
    return "".join(tr).encode("ascii"), "".join(ho).encode("ascii")


def as_ids(b):
    return torch.frombuffer(bytearray(b), dtype=torch.uint8).long()


# ---------------------------------------------------------------------------
# evaluation

@torch.no_grad()
def heldout_bpb(model, ids, fast=True, chunk=4096, limit=None):
    """Bits per byte of ids read as one sequence from the zero state, every
    token from the 2nd on predicted (what `./metastate MODEL --batch -c
    'score @FILE'` computes).  limit: only the first `limit` tokens."""
    if limit:
        ids = ids[:limit]
    x, y = ids[:-1], ids[1:]
    st, bits = None, 0.0
    dev = model.emb.weight.device
    for p in range(0, len(x), chunk):
        lg, st = model.forward_seq(x[p:p + chunk].to(dev)[None], st, fast=fast)
        bits += F.cross_entropy(lg[0].double(), y[p:p + chunk].to(dev), reduction="sum").item() / math.log(2)
    return bits / len(y)


TASK_EVAL_SEED = 1000   # `./metastate M --batch -c 'task NAME 4T N 1000'` reads the same sequences


@torch.no_grad()
def task_accuracy(model, task, T, n=256, fast=True):
    """Per-position accuracy on n sequences of 4T from the zero state,
    drawn by tasks.sample_splitmix(seed TASK_EVAL_SEED) like the C `task`
    command, by bucket: positions [1, T], (T, 2T], (2T, 4T]."""
    x, y = task.sample_splitmix(n, 4 * T, TASK_EVAL_SEED)
    dev = model.emb.weight.device
    lg, _ = model.forward_seq(x.to(dev), None, fast=fast)
    ok = (lg.argmax(-1).cpu() == y).double()
    return {f"1-{T}": ok[:, :T].mean().item(), f"{T + 1}-{2 * T}": ok[:, T:2 * T].mean().item(),
            f"{2 * T + 1}-{4 * T}": ok[:, 2 * T:].mean().item()}


# ---------------------------------------------------------------------------
# files

def hardware(device, threads):
    if device == "cuda":
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {threads} thread{'s' if threads > 1 else ''} (of {os.cpu_count()} cores), torch {torch.__version__}"


def export(model, path, store, tokenizer, vocab, trained_on, notes, growth="[]"):
    """Write the .safetensors: big matrices in `store`, vectors F32."""
    low = STORE[store]
    tensors = {n: p.detach().cpu().to(low if ref.is_matrix(n) else torch.float32)
               for n, p in model.named_parameters()}
    meta = ref.metadata_for(model.cfg, tokenizer, json.dumps(trained_on), notes, vocab=vocab, growth=growth)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    safetensors_io.save(path, tensors, meta)


def save_ckpt(path, obj):
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# training

def n_params(model):
    return sum(p.numel() for p in model.parameters())


def lr_at(step, a):
    if step < a.warmup:
        return a.lr * (step + 1) / a.warmup
    p = min(1.0, (step - a.warmup) / max(1, a.steps - a.warmup))
    return a.lr_min + 0.5 * (a.lr - a.lr_min) * (1 + math.cos(math.pi * p))


BUDGET_FROM, BUDGET_AT = 5, 25   # --time-budget: steps timed, and the step at which --steps is set

SHAPE_ARGS = ("data", "task", "layers", "embd", "heads", "head_size", "sse_heads", "ptok", "lora", "batch", "ctx",
              "steps", "lr", "lr_min", "warmup", "wd", "seed", "streams", "reset_prob", "experts", "top_k",
              "init_from")


ARGS_ADDED_LATER = {"heads": None, "experts": 1, "top_k": 1, "init_from": None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("data", choices=["kjv", "task", "kjv-heldout"])
    ap.add_argument("rest", nargs="+", help="[TASK] OUT")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=128)
    ap.add_argument("--head-size", type=int, default=32)
    ap.add_argument("--heads", type=int, help="heads H (default embd / head-size; more gives dim_att > embd)")
    ap.add_argument("--sse-heads", type=int, default=1)
    ap.add_argument("--ptok", type=int, help="parameter tokens n (default 4*embd)")
    ap.add_argument("--lora", default="16,16,16,16", help="Dw,Da,Dv,Dg")
    ap.add_argument("--experts", type=int, default=1, help="parameter-token experts E (MODEL.md 3.4; 1 = dense)")
    ap.add_argument("--top-k", type=int, default=1, help="experts evaluated per token")
    ap.add_argument("--init-from", metavar="FILE",
                    help="start from the weights of FILE (a .safetensors, e.g. a grown model); its shape "
                         "replaces --layers/--embd/--head-size/--sse-heads/--ptok/--lora/--experts/--top-k")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--tokens", type=float, help="training tokens (sets --steps)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-min", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.1, help="weight decay on the big matrices")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--streams", type=int, default=1, choices=[0, 1],
                    help="kjv: 1 = each batch row reads the text in order and carries its state "
                         "across windows; 0 = independent random windows from the zero state")
    ap.add_argument("--reset-prob", type=float, default=0.1, help="--streams: chance a row's state is zeroed")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--store", choices=STORE, default="f16")
    ap.add_argument("--ckpt", help="checkpoint path (default build/train/NAME.ckpt)")
    ap.add_argument("--ckpt-every", type=float, default=120, help="seconds")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much wall time")
    ap.add_argument("--time-budget", type=float, metavar="MIN",
                    help="choose --steps to fill MIN minutes of training, from the speed of steps "
                         f"{BUDGET_FROM}-{BUDGET_AT} (needs --warmup >= {BUDGET_AT}; the file records the "
                         "steps chosen, so the run is reproduced with --steps N)")
    ap.add_argument("--stop-at-step", type=int, help="stop (with a checkpoint) after this step (tests resume)")
    ap.add_argument("--log-every", type=float, default=20, help="seconds between progress lines")
    ap.add_argument("--eval-every", type=int, default=500, help="steps between held-out evaluations")
    ap.add_argument("--eval-bytes", type=int, default=16384, help="held-out bytes for the periodic evaluation")
    ap.add_argument("--heldout-out", help="also write the held-out text here")
    ap.add_argument("--slow", action="store_true", help="per-token reference loop (to measure it)")
    ap.add_argument("--notes", default="")
    a = ap.parse_args()

    if a.data == "kjv-heldout":
        _, ho = kjv_split()
        with open(a.rest[0], "wb") as f:
            f.write(ho)
        print(f"train: wrote {a.rest[0]}: {len(ho)} bytes, every {HELDOUT_EVERY}th chapter of the KJV")
        return
    if a.data == "task":
        if len(a.rest) != 2:
            fail("usage: train.py task NAME OUT.safetensors")
        a.task, out = a.rest
        try:
            task = Task(a.task)
        except ValueError as e:
            fail(str(e))
    else:
        if len(a.rest) != 1:
            fail("usage: train.py kjv OUT.safetensors")
        a.task, out, task = None, a.rest[0], None
    if a.tokens:
        a.steps = max(1, round(a.tokens / (a.batch * a.ctx)))
    if a.time_budget is not None:
        # Until step BUDGET_AT the schedule is warmup alone, which does not
        # depend on --steps: the run equals the one with the steps chosen.
        if a.resume or a.stop_at_step:
            fail("--time-budget starts a fresh run; resume it with the --steps it chose")
        if a.warmup < BUDGET_AT or a.time_budget <= 0:
            fail(f"--time-budget needs a positive number of minutes and --warmup >= {BUDGET_AT}")
        a.steps = max(a.steps, 10 ** 9)
    lora = [int(x) for x in a.lora.split(",")]
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    name = os.path.splitext(os.path.basename(out))[0]
    ckpt_path = a.ckpt or os.path.join(ROOT, "build", "train", name + ".ckpt")
    os.makedirs(os.path.dirname(ckpt_path), exist_ok=True)
    log_path = os.path.splitext(ckpt_path)[0] + ".log.jsonl"

    # data
    if task is None:
        tr_b, ho_b = kjv_split()
        if a.heldout_out:
            with open(a.heldout_out, "wb") as f:
                f.write(ho_b)
        train_ids, ho_ids = as_ids(tr_b), as_ids(ho_b)
        vocab, tokenizer, V = None, "bytes", 256
        data_desc = (f"King James Bible (Debian bible-kjv, `{' '.join(KJV_CMD)}`, verse references "
                     f"stripped, one verse per line); held out every {HELDOUT_EVERY}th chapter "
                     f"({len(ho_b)} bytes), trained on the other {len(tr_b)} bytes")
    else:
        vocab, tokenizer, V = task.vocab, "words", len(task.vocab)
        data_desc = f"task {task.name} (scripts/tasks.py, seed {a.seed}), sequences of {a.ctx}"

    growth = "[]"
    if a.init_from:
        # The starting point's shape is the run's shape; its growth history
        # goes on into the new file.
        try:
            sd0, meta0 = safetensors_io.load(a.init_from)
            model = ref.MetaState.from_state_dict(sd0, meta0, dtype=torch.float32).to(dev)
        except (OSError, ValueError) as e:
            fail(f"--init-from {a.init_from}: {e}")
        cfg = model.cfg
        if cfg.vocab_size != V or meta0.get("tokenizer", "bytes") != tokenizer:
            fail(f"--init-from {a.init_from}: tokenizer {meta0.get('tokenizer')} with vocab {cfg.vocab_size}, "
                 f"but this data needs {tokenizer} with vocab {V}")
        if tokenizer == "words" and json.loads(meta0.get("vocab") or "[]") != list(vocab):
            fail(f"--init-from {a.init_from}: its vocabulary differs from task {task.name}'s")
        growth = meta0.get("growth") or "[]"
        a.layers, a.embd, a.heads, a.head_size, a.sse_heads, a.ptok = (
            cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.head_size, cfg.sse_heads, cfg.n_ptok)
        a.lora = f"{cfg.d_w},{cfg.d_a},{cfg.d_v},{cfg.d_g}"
        a.experts, a.top_k = cfg.n_experts, cfg.top_k
        a.init_from = os.path.abspath(a.init_from)
    else:
        cfg = ref.Config(a.layers, a.embd, a.heads or a.embd // a.head_size, a.head_size, V, a.ptok or 4 * a.embd,
                         a.sse_heads, *lora, n_experts=a.experts, top_k=a.top_k)
        try:
            cfg.check()
        except ValueError as e:
            fail(str(e))
        model = ref.MetaState(cfg, torch.float32, init="rwkv7", seed=a.seed).to(dev)
    decay = [p for n, p in model.named_parameters() if ref.is_matrix(n) and n.endswith(".weight")]
    other = [p for n, p in model.named_parameters() if not (ref.is_matrix(n) and n.endswith(".weight"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": other, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.99), eps=1e-8)
    gen = torch.Generator().manual_seed(a.seed)
    step, wall, log = 0, 0.0, []
    # --streams: batch row i reads the training text in order from offset
    # i*len/B, carrying its state (detached) from window to window
    streams = task is None and a.streams
    pos = torch.tensor([i * len(train_ids) // a.batch for i in range(a.batch)]) if streams else None
    carried = [tuple(t.to(dev) for t in ls) for ls in model.zero_state(a.batch)] if streams else None
    if a.resume and os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        want, have = {k: getattr(a, k) for k in SHAPE_ARGS}, json.loads(ck["args"])
        # checkpoints written before --heads/--experts/--top-k/--init-from existed
        # were made with their defaults
        have = {**ARGS_ADDED_LATER, **have}
        if have != want:
            diff = {k: (have.get(k), want[k]) for k in want if have.get(k) != want[k]}
            fail(f"{ckpt_path} was made with other settings (checkpoint, now): {diff}")
        model.load_state_dict(ck["model"])
        opt.load_state_dict({"state": ck["opt_state"], "param_groups": json.loads(ck["opt_groups"])})
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        step, wall, log = ck["step"], float(ck["wall"]), json.loads(ck["log"])
        if streams:
            pos = ck["pos"]
            carried = [tuple(ck[f"carried.{i}.{j}"].to(dev) for j in range(3)) for i in range(cfg.n_layer)]
        print(f"train: resumed {ckpt_path} at step {step} ({wall:.0f} s of training so far)")
    elif a.resume:
        print(f"train: no checkpoint at {ckpt_path}; starting afresh")

    P = n_params(model)
    tok_per_step = a.batch * a.ctx
    print(f"train: {name}: L={cfg.n_layer} C={cfg.n_embd} H={cfg.n_head} N={cfg.head_size} n={cfg.n_ptok} "
          f"Hs={cfg.sse_heads} E={cfg.n_experts}/top{cfg.top_k} lora={a.lora} vocab={V}: {P} parameters; batch {a.batch} x ctx {a.ctx}, "
          + (f"steps to fill {a.time_budget:g} min, " if a.time_budget is not None else
             f"{a.steps} steps = {a.steps * tok_per_step / 1e6:.2f}M tokens, ") + f"lr {a.lr:g} -> {a.lr_min:g} "
          f"(warmup {a.warmup}), wd {a.wd:g}, seed {a.seed}, {a.threads} threads, {dev}", flush=True)

    def evaluate(full=False):
        model.eval()
        if task is None:
            r = {"heldout_bpb": heldout_bpb(model, ho_ids, limit=None if full else a.eval_bytes)}
        else:
            r = {"acc": task_accuracy(model, task, a.ctx, n=512 if full else 128)}
        model.train()
        return r

    def checkpoint():
        # floats travel as JSON: torch 1.13's weights_only loader has no pickle float opcode
        o = opt.state_dict()
        extra = {}
        if streams:
            extra["pos"] = pos
            extra.update({f"carried.{i}.{j}": t.cpu() for i, ls in enumerate(carried) for j, t in enumerate(ls)})
        save_ckpt(ckpt_path, {**extra, "model": model.state_dict(), "opt_state": o["state"],
                              "opt_groups": json.dumps(o["param_groups"]), "gen": gen.get_state(),
                              "torch_rng": torch.get_rng_state(), "step": step, "wall": str(wall),
                              "log": json.dumps(log), "args": json.dumps({k: getattr(a, k) for k in SHAPE_ARGS})})

    t_start = time.time() - wall
    t_log = t_ck = time.time()
    tok_log, loss_sum, loss_n, t_eval = step * tok_per_step, 0.0, 0, 0.0
    stop_at = time.time() + 60 * a.max_minutes if a.max_minutes else None
    model.train()
    t_budget = None
    while step < a.steps:
        if a.time_budget is not None and step == BUDGET_FROM:
            t_budget = time.time()
        if a.time_budget is not None and step == BUDGET_AT:
            per_step = (time.time() - t_budget) / (BUDGET_AT - BUDGET_FROM)
            left = 60 * a.time_budget - (time.time() - t_start)
            a.steps = max(BUDGET_AT + 1, BUDGET_AT + int(left / per_step))
            a.time_budget = None
            print(f"train: --time-budget: {per_step * 1e3:.1f} ms a step, so --steps {a.steps}", flush=True)
        init = None
        if streams:
            # a stream restarts at the text's start (state zeroed) when it reaches
            # the end; its state is also zeroed with probability --reset-prob per
            # window, so zero-state starts stay in the training mix
            wrap = pos + a.ctx + 1 > len(train_ids)
            pos = torch.where(wrap, torch.zeros_like(pos), pos)
            keep = (~(wrap | (torch.rand(a.batch, generator=gen) < a.reset_prob))).float().to(dev)
            init = [tuple(t * keep.view(-1, *[1] * (t.dim() - 1)) for t in ls) for ls in carried]
            win = train_ids[pos[:, None] + torch.arange(a.ctx + 1)]
            pos = pos + a.ctx
            x, y = win[:, :-1], win[:, 1:]
        elif task is None:
            off = torch.randint(0, len(train_ids) - a.ctx - 1, (a.batch,), generator=gen)
            win = train_ids[off[:, None] + torch.arange(a.ctx + 1)]
            x, y = win[:, :-1], win[:, 1:]
        else:
            x, y = task.sample(a.batch, a.ctx, gen)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a)
        logits, new = model.forward_seq(x.to(dev), init, fast=not a.slow)
        if streams:
            carried = [tuple(t.detach() for t in ls) for ls in new]
        loss = F.cross_entropy(logits.reshape(-1, V), y.to(dev).reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        opt.step()
        step += 1
        loss_sum += loss.item()
        loss_n += 1
        now = time.time()
        wall = now - t_start
        last = step == a.steps
        do_eval = step % a.eval_every == 0 or last
        if now - t_log >= a.log_every or do_eval or last:
            tps = (step * tok_per_step - tok_log) / max(now - t_log - t_eval, 1e-9)   # training only
            rec = {"step": step, "tokens": step * tok_per_step, "wall_s": round(wall, 1),
                   "loss": loss_sum / loss_n, "grad_norm": gnorm, "lr": lr_at(step - 1, a), "tok_s": round(tps)}
            if do_eval:
                t_ev = time.time()
                rec.update(evaluate(full=False))
                rec["eval_s"] = round(time.time() - t_ev, 1)
            log.append(rec)
            eta = (a.steps - step) * tok_per_step / max(tps, 1e-9)
            unit = f" = {rec['loss'] / math.log(2):.3f} bits/byte" if task is None else ""
            ev = ""
            if "heldout_bpb" in rec:
                ev = f" | held-out {rec['heldout_bpb']:.3f} bits/byte (first {a.eval_bytes} bytes)"
            elif "acc" in rec:
                ev = " | acc " + " ".join(f"{k}:{v:.4f}" for k, v in rec["acc"].items())
            print(f"[{step * 100 // a.steps:3d}%] step {step}/{a.steps} {step * tok_per_step / 1e6:.2f}M tok "
                  f"{tps:.0f} tok/s loss {rec['loss']:.4f}{unit} lr {rec['lr']:.2e} |g| {gnorm:.2f} "
                  f"{wall / 60:.1f} min, eta {eta / 60:.1f} min{ev}", flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            t_eval = time.time() - now if do_eval else 0.0   # counted in the next interval's time
            t_log, tok_log, loss_sum, loss_n = now, step * tok_per_step, 0.0, 0
        if time.time() - t_ck >= a.ckpt_every or last:
            checkpoint()
            t_ck = time.time()
        if ((stop_at and time.time() >= stop_at) or step == a.stop_at_step) and not last:
            checkpoint()
            print(f"train: stopped at step {step}; --resume continues", flush=True)
            return

    # The final file.  Evaluate in float32 and with the matrices rounded to
    # --store (what the file holds), put both in the metadata, write, and
    # check that the file read back gives the stored figure.  A --resume of a
    # finished checkpoint lands here directly: that re-exports.
    stored = ref.MetaState(cfg, torch.float32, init=None).to(dev)
    with torch.no_grad():
        for (n_, p), q in zip(model.named_parameters(), stored.parameters()):
            q.copy_(p.to(STORE[a.store]) if ref.is_matrix(n_) else p)
    res = evaluate(full=True)
    model = stored
    res_s = evaluate(full=True)
    tokens = a.steps * tok_per_step
    trained_on = {"data": data_desc, "tokens": tokens, "steps": a.steps, "batch": a.batch, "ctx": a.ctx,
                  "hardware": hardware(a.device, a.threads), "wall_time_s": round(wall, 1),
                  "lr": f"{a.lr:g} -> {a.lr_min:g} cosine, warmup {a.warmup}", "seed": a.seed}
    if a.init_from:
        trained_on["init_from"] = os.path.basename(a.init_from)
    if task is None:
        trained_on["heldout"] = (f"every {HELDOUT_EVERY}th chapter, {len(ho_ids)} bytes, read as one sequence "
                                 f"from the zero state (= `score @models/kjv-heldout.txt`)")
        trained_on["heldout_bpb_f32"] = round(res["heldout_bpb"], 6)
        trained_on["heldout_bpb_stored"] = round(res_s["heldout_bpb"], 6)
    else:
        trained_on["task"] = task.name
        trained_on["accuracy_eval"] = (f"512 sequences of {4 * a.ctx} from the zero state, "
                                       f"`task {task.name} {4 * a.ctx} 512 {TASK_EVAL_SEED}`")
        trained_on["accuracy_f32"] = res["acc"]
        trained_on["accuracy_stored"] = res_s["acc"]
    argv, i = [], 1
    while i < len(sys.argv):   # the command that reproduces the run: --steps for --time-budget
        x = sys.argv[i]
        if x in ("--time-budget", "--steps"):
            i += 2
            continue
        if x.startswith(("--time-budget=", "--steps=")) or x == "--resume":
            i += 1
            continue
        argv.append(x)
        i += 1
    cmd = "scripts/train.py " + " ".join(argv + ["--steps", str(a.steps)])
    notes = (f"{a.notes} " if a.notes else "") + f"L={cfg.n_layer} C={cfg.n_embd} H={cfg.n_head} " \
        f"N={cfg.head_size} n={cfg.n_ptok} Hs={cfg.sse_heads} lora={a.lora}, {P} parameters, matrices " \
        f"{a.store}. Trained with: {cmd}"
    export(stored, out, a.store, tokenizer, vocab, trained_on, notes, growth)
    sd, meta = safetensors_io.load(out)
    model = ref.MetaState.from_state_dict(sd, meta, dtype=torch.float32).to(dev)
    res_f = evaluate(full=True)
    if res_f != res_s:
        fail(f"{out} read back gives {res_f}, not {res_s}")
    if task is None:
        f32, st_ = res["heldout_bpb"], res_s["heldout_bpb"]
        print(f"train: wrote {out} ({os.path.getsize(out)} bytes, matrices {a.store}); held-out "
              f"{len(ho_ids)} bytes: {f32:.6f} bits/byte in float32, {st_:.6f} as stored "
              f"(diff {st_ - f32:+.6f}); {tokens} tokens, {wall / 60:.1f} min", flush=True)
    else:
        print(f"train: wrote {out} ({os.path.getsize(out)} bytes, matrices {a.store}); accuracy float32 "
              f"{res['acc']}, as stored {res_s['acc']}; {tokens} tokens, {wall / 60:.1f} min", flush=True)
    with open(log_path, "a") as f:
        f.write(json.dumps({"final": True, "f32": res, "stored": res_s}) + "\n")

if __name__ == "__main__":
    main()
