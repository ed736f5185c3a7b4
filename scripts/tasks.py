"""tasks.py: the state-tracking tasks of MODEL.md 7 as seeded generators.

  parity        tokens 0 1; target after x_t: the running parity
  s3, s5        tokens: the permutations of 1..k in one-line notation ("213",
                "21345"); target after x_t: P_t = P_{t-1} ∘ x_t, i.e.
                P_t(i) = P_{t-1}(x_t(i)), P_0 = identity, written the same way
  modcount-K    tokens 0..K-1; target: the running sum mod K

Inputs are uniform over the vocabulary.  Inputs and targets share one `words`
vocabulary (the list `Task.vocab`, stored in a model's metadata), so a model
reads x_t and its logits put the target first.  Two seeded generators:
`sample` draws from a torch.Generator (training), `sample_splitmix` is bit for
bit core/task.c's ms_task_sample (one splitmix64 stream from the seed,
sequence by sequence, input = ((draw >> 32) * K) >> 32), so the C `task`
command and this script evaluate the same sequences.

usage (prints a few examples): tasks.py TASK [--len 8] [--seed 0]
"""
import argparse
import itertools

import numpy as np
import torch

GAMMA = 0x9E3779B97F4A7C15


class Task:
    """name, vocab (list of words), sample(B, T, gen) -> (x, y) long (B, T)."""

    def __init__(self, name):
        self.name = name
        if name == "parity":
            self.vocab, self.table = ["0", "1"], torch.tensor([[0, 1], [1, 0]])
        elif name in ("s3", "s5"):
            k = int(name[1])
            perms = list(itertools.permutations(range(k)))
            self.vocab = ["".join(str(i + 1) for i in p) for p in perms]
            index = {p: n for n, p in enumerate(perms)}
            # table[p][x] = id of p∘x: (p∘x)(i) = p(x(i))
            self.table = torch.tensor([[index[tuple(p[x[i]] for i in range(k))] for x in perms] for p in perms])
            self.start = index[tuple(range(k))]
        elif name.startswith("modcount-") and name[9:].isdigit() and 2 <= int(name[9:]) <= 65536:
            self.vocab, self.table = [str(i) for i in range(int(name[9:]))], None   # sum mod K
        else:
            raise ValueError(f"unknown task {name!r}: parity, s3, s5 or modcount-K (2 <= K <= 65536)")
        if not hasattr(self, "start"):
            self.start = 0

    def targets(self, x):
        """Running composition of x (B, T) from the identity: (B, T)."""
        if self.table is None:
            return (x.cumsum(1) + self.start) % len(self.vocab)
        y, p = torch.empty_like(x), torch.full((x.shape[0],), self.start, dtype=torch.long)
        for t in range(x.shape[1]):
            p = self.table[p, x[:, t]]
            y[:, t] = p
        return y

    def sample(self, B, T, gen):
        x = torch.randint(0, len(self.vocab), (B, T), generator=gen)
        return x, self.targets(x)

    def sample_splitmix(self, n, T, seed):
        """n sequences of T as core/task.c's ms_task_sample(n, T, seed)."""
        with np.errstate(over="ignore"):
            z = np.uint64(seed % 2**64) + np.arange(1, n * T + 1, dtype=np.uint64) * np.uint64(GAMMA)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            v = ((z >> np.uint64(32)) * np.uint64(len(self.vocab))) >> np.uint64(32)
        x = torch.from_numpy(v.astype(np.int64)).view(n, T)
        return x, self.targets(x)


# ---------------------------------------------------------------------------
# The generator shared with the C program (added for `metastate -c 'task
# ...'`, core/task.c): torch's generator cannot be reproduced in C, so the
# `task` command and this function draw from splitmix64 instead -- the same
# token format and the same (uniform) distribution as Task.sample, another
# stream.  One stream from `seed`, sequence by sequence, position by
# position; each input is (draw >> 32) * K >> 32 for K = len(task.vocab).

_M64 = (1 << 64) - 1


def splitmix64(seed):
    """The splitmix64 stream of seed: state += 0x9E3779B97F4A7C15, then the
    finaliser (core/grow.c's ms_splitmix64_next)."""
    z = seed & _M64
    while True:
        z = (z + 0x9E3779B97F4A7C15) & _M64
        x = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
        yield x ^ (x >> 31)


def sample_splitmix(task, B, T, seed):
    """(x, y) long (B, T): the sequences `metastate -c 'task NAME T B SEED'`
    runs, as task-vocabulary indices."""
    K, g = len(task.vocab), splitmix64(seed)
    x = torch.tensor([[((next(g) >> 32) * K) >> 32 for _ in range(T)] for _ in range(B)], dtype=torch.long)
    return x, task.targets(x)

def sample_splitmix(task, n, T, seed):
    """Module-level form of Task.sample_splitmix (used by tests/test_task.sh):
    (x, y) long (n, T), bit for bit core/task.c's ms_task_sample."""
    return task.sample_splitmix(n, T, seed)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task")
    ap.add_argument("--len", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--splitmix", action="store_true", help="the C program's generator (task command)")
    a = ap.parse_args()
    t = Task(a.task)
    x, y = t.sample_splitmix(3, a.len, a.seed) if a.splitmix else \
        t.sample(3, a.len, torch.Generator().manual_seed(a.seed))
    print(f"{t.name}: vocab of {len(t.vocab)}: {' '.join(t.vocab[:12])}{' ...' if len(t.vocab) > 12 else ''}")
    for i in range(3):
        print("in  ", " ".join(t.vocab[j] for j in x[i]))
        print("out ", " ".join(t.vocab[j] for j in y[i]))


if __name__ == "__main__":
    main()
