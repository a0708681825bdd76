"""Write the flatten_dense weights and example files (deterministic; no training).

    .venv/bin/python example_models/flatten_dense/make_weights.py

* ``weights.pth``: ``FlattenDense()`` initialised right after
  ``torch.manual_seed(0)``, as in the seed tutorials (their
  ``random_one_hot(..., random_state=0)`` draws from numpy, so it does not
  move torch's RNG before the model is built).
* ``example_files/genome.fa`` (+ ``.fai``) and ``intervals.bed``: the
  tutorials' ``X = random_one_hot((5, 4, 10), random_state=0)`` written as
  one 50-bp chromosome cut into five 10-bp intervals, so ``kipoi test`` on
  the example reproduces the tutorials' printed predictions
  (``[[-0.3154, -0.1625, -0.3183], ...]``) with alpha = 0, beta = 1.
"""
import argparse
import hashlib
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import FlattenDense  # noqa: E402

from kipoi_tanger.utils import random_one_hot  # noqa: E402

# The tutorials' printed y = model(X) (seed 000 cell 3, seed 001 cell 3).
SEED_PRINTED = [[-0.3154, -0.1625, -0.3183],
                [-0.0866, 0.5461, -0.0244],
                [0.3089, -0.2828, -0.1485],
                [0.1671, -0.1341, -0.3094],
                [-0.0627, 0.0088, 0.3471]]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=HERE, help="model dir to write into (default: this dir)")
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    X = random_one_hot((5, 4, 10), random_state=0).float()
    model = FlattenDense()
    path = os.path.join(a.out, "weights.pth")
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, path)

    seqs = ["".join("ACGT"[i] for i in x.argmax(0).tolist()) for x in X]
    chrom = "".join(seqs)
    ex = os.path.join(a.out, "example_files")
    os.makedirs(ex, exist_ok=True)
    with open(os.path.join(ex, "genome.fa"), "w", newline="\n") as fh:
        fh.write(">chr1\n{}\n".format(chrom))
    # name, length, byte offset of the sequence, bases per line, bytes per line
    with open(os.path.join(ex, "genome.fa.fai"), "w", newline="\n") as fh:
        fh.write("chr1\t{0}\t6\t{0}\t{1}\n".format(len(chrom), len(chrom) + 1))
    with open(os.path.join(ex, "intervals.bed"), "w", newline="\n") as fh:
        for i in range(len(seqs)):
            fh.write("chr1\t{}\t{}\tx{}\t0\t+\n".format(10 * i, 10 * i + 10, i))

    with torch.no_grad():
        y = model(X)
    err = (y - torch.tensor(SEED_PRINTED)).abs().max().item()
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    print("y = model(X):\n{}\nmax |y - tutorial printout| = {:.1e}\nweights.pth sha256 {}".format(
        y, err, digest))
    if err > 5e-5:
        raise SystemExit("weights do not reproduce the tutorial printout")


if __name__ == "__main__":
    main()
