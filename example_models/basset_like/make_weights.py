"""Write the basset_like weights and example files (deterministic; the model is NOT trained).

    .venv/bin/python example_models/basset_like/make_weights.py

* ``weights.pth``: ``BassetLike()`` with torch's default initialisation right
  after ``torch.manual_seed(0)`` (BatchNorm running statistics at their
  defaults, mean 0 and variance 1). Its predictions mean nothing; the model
  exists to show that kipoi_tanger infers the layout of real zoo models
  ((4, L, 1), ``special_type: DNASeq``) from the schema alone.
* ``example_files/genome.fa`` (+ ``.fai``): two random chromosomes
  (numpy ``RandomState(0)``), 60 bases per line.
* ``example_files/intervals.bed``: 10 intervals of mixed widths (the
  dataloader resizes them to 200 bp around their centre), both strands, all
  inside the chromosomes (DeepLIFT/SHAP refuses N columns, and every op
  should run on the example).
"""
import argparse
import hashlib
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import BassetLike  # noqa: E402

CHROMS = (("chr1", 3000), ("chr2", 2000))
WIDTH = 60
INTERVALS = [  # chrom, start, end, name, strand
    ("chr1", 100, 300, "r0", "+"), ("chr1", 400, 650, "r1", "-"), ("chr1", 900, 1000, "r2", "+"),
    ("chr1", 1500, 1700, "r3", "-"), ("chr1", 2200, 2500, "r4", "+"), ("chr1", 2700, 2840, "r5", "+"),
    ("chr2", 0, 200, "r6", "+"), ("chr2", 500, 700, "r7", "-"), ("chr2", 1200, 1450, "r8", "+"),
    ("chr2", 1800, 2000, "r9", "-")]


def write_genome(folder, random_state=0):
    rs = np.random.RandomState(random_state)
    fa = os.path.join(folder, "genome.fa")
    fai_lines, offset = [], 0
    with open(fa, "w", newline="\n") as fh:
        for name, length in CHROMS:
            seq = "".join(np.array(list("ACGT"))[rs.randint(0, 4, size=length)])
            header = ">{}\n".format(name)
            fh.write(header)
            offset += len(header)
            # name, length, byte offset of the sequence, bases per line, bytes per line
            fai_lines.append("{}\t{}\t{}\t{}\t{}\n".format(name, length, offset, WIDTH, WIDTH + 1))
            for i in range(0, length, WIDTH):
                line = seq[i:i + WIDTH] + "\n"
                fh.write(line)
                offset += len(line)
    with open(fa + ".fai", "w", newline="\n") as fh:
        fh.writelines(fai_lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=HERE, help="model dir to write into (default: this dir)")
    a = p.parse_args(argv)
    ex = os.path.join(a.out, "example_files")
    os.makedirs(ex, exist_ok=True)
    torch.manual_seed(0)
    model = BassetLike()
    path = os.path.join(a.out, "weights.pth")
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, path)
    write_genome(ex)
    with open(os.path.join(ex, "intervals.bed"), "w", newline="\n") as fh:
        for c, s, e, n, st in INTERVALS:
            fh.write("{}\t{}\t{}\t{}\t0\t{}\n".format(c, s, e, n, st))
    with open(path, "rb") as fh:
        print("weights.pth sha256 {}".format(hashlib.sha256(fh.read()).hexdigest()))


if __name__ == "__main__":
    main()
