"""Regenerate the small example_files/ of every dataloader component.

Run from anywhere: ``.venv/bin/python dataloaders/make_example_files.py``.
Deterministic (seeded); the outputs are checked in.
"""
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def interval_onehot(rng):
    d = os.path.join(HERE, "interval_onehot", "example_files")
    os.makedirs(d, exist_ok=True)
    seqs = {"chr1": "".join(rng.choice(list("ACGT"), 600)),
            "chr2": "".join(rng.choice(list("ACGT"), 400))}
    # Soft-masked (lowercase) stretch and an N gap, as in real assemblies.
    s = seqs["chr1"]
    seqs["chr1"] = s[:200] + s[200:260].lower() + "N" * 20 + s[280:]
    with open(os.path.join(d, "genome.fa"), "w") as f:
        for name, seq in seqs.items():
            f.write(">{} example contig\n".format(name))
            for i in range(0, len(seq), 60):
                f.write(seq[i:i + 60] + "\n")
    fai = os.path.join(d, "genome.fa.fai")
    if os.path.exists(fai):
        os.remove(fai)
    import pyfaidx
    pyfaidx.Faidx(os.path.join(d, "genome.fa")).close()
    rows = [("chr1", 100, 200, "peak1", 0, "+"), ("chr1", 150, 300, "peak2", 0, "-"),
            ("chr1", 230, 290, "masked_gap", 0, "+"), ("chr1", 500, 560, "near_end", 0, "-"),
            ("chr2", 0, 40, "chr2_start", 0, "."), ("chr2", 180, 220, "chr2_mid", 0, "+"),
            ("chr2", 300, 401, "chr2_odd", 0, "-")]
    with open(os.path.join(d, "intervals.bed"), "w") as f:
        f.write("# chrom\tstart\tend\tname\tscore\tstrand\n")
        for r in rows:
            f.write("\t".join(map(str, r)) + "\n")


def hmm_sequences(rng, n, length):
    """Two-state (H = GC-rich, L = AT-rich) Markov chain emissions."""
    emit = {"H": [0.15, 0.35, 0.35, 0.15], "L": [0.35, 0.15, 0.15, 0.35]}
    out = []
    for _ in range(n):
        state = "H" if rng.random() < 0.5 else "L"
        dna, hid = [], []
        for _ in range(length):
            if rng.random() < 0.1:
                state = "L" if state == "H" else "H"
            hid.append(state)
            dna.append("ACGT"[rng.choice(4, p=emit[state])])
        out.append(("".join(dna), "".join(hid)))
    return out


def sequence_table(rng):
    d = os.path.join(HERE, "sequence_table", "example_files")
    os.makedirs(d, exist_ok=True)
    recs = hmm_sequences(rng, 10, 60)
    with open(os.path.join(d, "sequences.tsv"), "w") as f:
        f.write("id\tdna\thidden_state\n")
        for i, (dna, hid) in enumerate(recs):
            f.write("seq{}\t{}\t{}\n".format(i, dna, hid))
    with open(os.path.join(d, "sequences.fa"), "w") as f:
        for i, (dna, _) in enumerate(recs):
            f.write(">seq{}\n{}\n{}\n".format(i, dna[:40], dna[40:]))


def hdf5_predictions(rng):
    d = os.path.join(HERE, "hdf5_predictions", "example_files")
    os.makedirs(d, exist_ok=True)
    os.environ.setdefault("HOME", tempfile.mkdtemp())
    # numpy 2 removed the aliases kipoi's HDF5BatchWriter still uses.
    if not hasattr(np, "string_"):
        np.string_ = np.bytes_
    if not hasattr(np, "unicode_"):
        np.unicode_ = np.str_
    from kipoi.writers import HDF5BatchWriter
    n = 10
    ranges = {"chr": np.array(["chr1"] * n), "start": np.arange(n) * 100,
              "end": np.arange(n) * 100 + 50, "id": np.array(["r{}".format(i) for i in range(n)]),
              "strand": np.array(["+"] * n)}
    for name, width in (("model1", 2), ("model2", 3)):
        path = os.path.join(d, name + ".h5")
        if os.path.exists(path):
            os.remove(path)
        w = HDF5BatchWriter(path)
        for a in range(0, n, 4):
            sl = slice(a, min(a + 4, n))
            w.batch_write({"preds": rng.standard_normal((sl.stop - a, width)).astype(np.float32),
                           "metadata": {"ranges": {k: v[sl] for k, v in ranges.items()}}})
        w.close()


if __name__ == "__main__":
    rng = np.random.default_rng(20240601)
    interval_onehot(rng)
    sequence_table(rng)
    hdf5_predictions(rng)
    sys.stdout.write("example files written under {}\n".format(HERE))
