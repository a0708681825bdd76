"""Synthetic data for keras_motif: random DNA with planted GATA and E-box motifs.

* GATA ``GATAAG`` (either strand: ``CTTATC`` on the minus strand) and E-box
  ``CAGCTG`` (a palindrome) are planted at random positions of 200-bp windows.
* ``clean=True`` backgrounds contain no exact occurrence of either motif by
  chance, so a window holds a motif exactly when one was planted; ``clean=False``
  leaves chance occurrences in (uniform random DNA, as in a real genome scan).

``python simulate.py`` rewrites ``example_files/``: a synthetic genome of two
chromosomes and ``regions.bed``, 32 windows of 200 bp (BED6; column 4 says what
was planted: ``none``, ``gata``, ``gata_minus``, ``ebox``, ``gata_ebox``; every
third window is on the minus strand). ``evaluate.py`` imports the functions.
"""
import argparse
import os
import re

import numpy as np

ALPHABET = "ACGT"
SEQ_LEN = 200
MOTIFS = {"gata": "GATAAG", "ebox": "CAGCTG"}
KINDS = ("none", "gata", "gata_minus", "ebox", "gata_ebox")
_COMP = str.maketrans("ACGT", "TGCA")
_SCAN = re.compile("(?=(GATAAG|CTTATC|CAGCTG))")
HERE = os.path.dirname(os.path.abspath(__file__))


def reverse_complement(seq):
    return seq.translate(_COMP)[::-1]


def occurrences(seq):
    """Exact motif occurrences in ``seq`` as (name, start), either strand."""
    return [("ebox" if m.group(1) == "CAGCTG" else "gata", m.start()) for m in _SCAN.finditer(seq)]


def background(rng, length, clean=True):
    codes = rng.integers(0, 4, size=length)
    while True:
        seq = "".join(ALPHABET[c] for c in codes)
        hits = occurrences(seq) if clean else []
        if not hits:
            return seq
        for _, start in hits:
            codes[start:start + 6] = rng.integers(0, 4, size=6)


def plant(seq, rng, kind):
    """Plant the motifs of ``kind`` at random non-overlapping positions; returns (seq, [(name, start)])."""
    names = {"none": [], "gata": ["gata"], "gata_minus": ["gata-"], "ebox": ["ebox"],
             "gata_ebox": ["gata", "ebox"]}[kind]
    seq, planted, taken = list(seq), [], []
    for name in names:
        while True:
            start = int(rng.integers(10, len(seq) - 16))
            if all(abs(start - t) >= 8 for t in taken):
                break
        taken.append(start)
        motif = reverse_complement(MOTIFS["gata"]) if name == "gata-" else MOTIFS[name]
        seq[start:start + 6] = motif
        planted.append((name.rstrip("-"), start))
    return "".join(seq), planted


def one_hot(seqs):
    """(N, L, 4) float32 one-hot in ACGT order (kipoiseq's SeqIntervalDl layout)."""
    lut = np.zeros((256, 4), np.float32)
    for i, c in enumerate(ALPHABET):
        lut[ord(c), i] = 1
    return np.stack([lut[np.frombuffer(s.encode(), np.uint8)] for s in seqs])


def dataset(n, seed, clean=True):
    """``n`` windows, kinds cycling through KINDS.

    Returns
    -------
    seqs : list of str
    labels : numpy.ndarray
        (n, 2) booleans: the window holds a GATA / an E-box occurrence (planted,
        or by chance when ``clean=False``).
    planted : list of list of (name, start)
    """
    rng = np.random.default_rng(seed)
    seqs, planted = [], []
    for i in range(n):
        s, p = plant(background(rng, SEQ_LEN, clean), rng, KINDS[i % len(KINDS)])
        seqs.append(s)
        planted.append(p)
    labels = np.array([[any(o[0] == m for o in occurrences(s)) for m in ("gata", "ebox")] for s in seqs])
    return seqs, labels, planted


def write_example_files(out=os.path.join(HERE, "example_files"), n=32, seed=1):
    """Two chromosomes holding ``n`` planted 200-bp windows (100-bp clean spacers) + regions.bed."""
    rng = np.random.default_rng(seed)
    os.makedirs(out, exist_ok=True)
    chroms, rows = {}, []
    for c in ("chr1", "chr2"):
        parts, pos = [background(rng, 100)], 100
        for i in range(n // 2):
            k = len(rows)
            kind = KINDS[k % len(KINDS)]
            s, _ = plant(background(rng, SEQ_LEN), rng, kind)
            strand = "-" if k % 3 == 2 else "+"
            # a minus-strand window holds the reverse complement, so the window
            # the dataloader returns (reverse-complemented) reads as planted.
            parts.append(reverse_complement(s) if strand == "-" else s)
            rows.append((c, pos, pos + SEQ_LEN, f"{kind}_{k}", 0, strand))
            pos += SEQ_LEN
            parts.append(background(rng, 100))
            pos += 100
        chroms[c] = "".join(parts)
    with open(os.path.join(out, "genome.fa"), "w") as fh:
        for c, s in chroms.items():
            fh.write(f">{c}\n")
            for i in range(0, len(s), 60):
                fh.write(s[i:i + 60] + "\n")
    with open(os.path.join(out, "regions.bed"), "w") as fh:
        for r in rows:
            fh.write("\t".join(map(str, r)) + "\n")
    fai = os.path.join(out, "genome.fa.fai")
    if os.path.exists(fai):
        os.remove(fai)
    import pyfaidx
    pyfaidx.Faidx(os.path.join(out, "genome.fa")).close()    # ship the index (read-only installs)
    return out


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=os.path.join(HERE, "example_files"))
    print("wrote", write_example_files(p.parse_args().out))
