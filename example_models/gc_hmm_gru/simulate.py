"""Simulate the two-state GC HMM (hmm.PARAMS) and write the gc_hmm_gru data files.

    .venv/bin/python example_models/gc_hmm_gru/simulate.py

writes, next to this script (byte-identical on every run):

* ``data/train.tsv.gz`` -- 2000 x 500 bp training sequences (seed 1)
* ``data/test.tsv.gz``  -- 200 x 500 bp held-out sequences (seed 2)
* ``example_files/sequences.tsv`` -- the first 8 held-out sequences, the
  example that ``kipoi test`` runs on

TSV columns: ``id``, ``dna`` (A/C/G/T), ``hidden_state`` (H/L per base), the
format of seed 002's ``rnn_toy_training.tsv`` (plus an id) and of
dataloaders/sequence_table.
"""
import argparse
import gzip
import io
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hmm  # noqa: E402

TRAIN = dict(n=2000, length=500, random_state=1)
TEST = dict(n=200, length=500, random_state=2)
N_EXAMPLE = 8


def to_tsv(tokens, states, prefix):
    """Token/state arrays -> TSV text with a header row."""
    out = io.StringIO()
    out.write("id\tdna\thidden_state\n")
    for i, (x, s) in enumerate(zip(tokens, states)):
        out.write("{}{}\t{}\t{}\n".format(prefix, i, hmm.decode(x, hmm.NUCLEOTIDES),
                                          hmm.decode(s, hmm.STATES)))
    return out.getvalue()


def write_gz(path, text):
    # mtime=0 and no file name in the header keep the .gz byte-identical across runs.
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                 mtime=0) as fh:
        fh.write(text.encode("ascii"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=HERE, help="model dir to write into (default: this dir)")
    a = p.parse_args(argv)
    os.makedirs(os.path.join(a.out, "data"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "example_files"), exist_ok=True)
    x, s = hmm.sample(**TRAIN)
    write_gz(os.path.join(a.out, "data", "train.tsv.gz"), to_tsv(x, s, "train"))
    x, s = hmm.sample(**TEST)
    write_gz(os.path.join(a.out, "data", "test.tsv.gz"), to_tsv(x, s, "test"))
    with open(os.path.join(a.out, "example_files", "sequences.tsv"), "w", newline="\n") as fh:
        fh.write(to_tsv(x[:N_EXAMPLE], s[:N_EXAMPLE], "test"))
    print("wrote data/train.tsv.gz ({} x {} bp), data/test.tsv.gz ({} x {} bp), "
          "example_files/sequences.tsv ({} records) under {}".format(
              TRAIN["n"], TRAIN["length"], TEST["n"], TEST["length"], N_EXAMPLE, a.out))


if __name__ == "__main__":
    main()
