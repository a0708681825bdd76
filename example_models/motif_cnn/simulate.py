"""Synthetic BPNet-style data: random DNA with planted GATA / E-box / control motifs.

The ground truth is a function of the sequence alone (plus Poisson read noise):

* Occurrences are found by scanning the whole sequence on both strands for
  GATA ``GATAAG`` (reverse complement ``CTTATC``), E-box ``CAGCTG``
  (palindromic) and the control ``ACGTTC`` (``GAACGT``). Background sequence is
  cleaned so that no motif occurs by chance; every occurrence is a planted one.
  Only occurrences whose centre lies in the output window (the central
  ``OUT_LEN`` bp) count.
* Expected total reads in the output window:
  ``T = BASE_READS * exp(sum_occ EFFECTS[type] + INTERACTION * n_pairs)`` where
  ``n_pairs`` counts GATA-E-box pairs whose centres are at most
  ``PAIR_DISTANCE`` bp apart (cooperative binding). The control motif's effect
  is 0, so it is planted but changes nothing.
* Profile: ``BASE_READS`` reads spread uniformly, plus the extra ``T -
  BASE_READS`` reads as Gaussian bumps (sd ``BUMP_SD``) at the occurrences,
  each weighted by ``exp(EFFECTS[type] + INTERACTION * paired) - 1``.
  Reads per position ~ Poisson(rate); counts target = ``log(1 + total reads)``.

So the marginal effect of planting a motif on the (noise-free) log count is
exactly ``EFFECTS[type]``, and of planting a close GATA-E-box pair
``EFFECTS['gata'] + EFFECTS['ebox'] + INTERACTION``.

Run ``python simulate.py`` to regenerate ``example_files/`` (a small synthetic
genome with planted regions, its ``.fai``, a BED of 32 regions and the planted
motif coordinates); ``train.py`` and ``evaluate.py`` import the functions.
"""
import argparse
import os
import re

import numpy as np

ALPHABET = "ACGT"
MOTIFS = {"gata": "GATAAG", "ebox": "CAGCTG", "control": "ACGTTC"}
EFFECTS = {"gata": 0.9, "ebox": 0.6, "control": 0.0}   # log-count effect of one occurrence
INTERACTION = 0.5      # extra log-count per close GATA-E-box pair
PAIR_DISTANCE = 40     # max centre-to-centre distance (bp) of a cooperative pair
BASE_READS = 30.0      # expected reads of a sequence without motifs
BUMP_SD = 6.0
IN_LEN, OUT_LEN = 500, 400
TRIM = (IN_LEN - OUT_LEN) // 2
MOTIF_LEN = 6
# Planted motif starts keep the whole motif and most of its bump inside the output window.
PLANT_LO, PLANT_HI = TRIM + 8, IN_LEN - TRIM - 8 - MOTIF_LEN

_COMP = str.maketrans("ACGT", "TGCA")


def reverse_complement(seq):
    return seq.translate(_COMP)[::-1]


_PATTERNS = {}
for _name, _motif in MOTIFS.items():
    for _strand, _s in (("+", _motif), ("-", reverse_complement(_motif))):
        _PATTERNS.setdefault(_s, (_name, _strand))  # palindromes count once
_SCAN = re.compile("(?=({}))".format("|".join(_PATTERNS)))


def scan(seq):
    """All motif occurrences in ``seq`` as ``(name, start, strand)``, sorted by start."""
    return [(_PATTERNS[m.group(1)][0], m.start(), _PATTERNS[m.group(1)][1])
            for m in _SCAN.finditer(seq)]


def clean_background(rng, length):
    """Uniform random DNA of ``length`` bp that contains none of the motifs."""
    codes = rng.integers(0, 4, size=length)
    while True:
        seq = "".join(ALPHABET[c] for c in codes)
        hits = scan(seq)
        if not hits:
            return seq
        for _, start, _ in hits:
            codes[start:start + MOTIF_LEN] = rng.integers(0, 4, size=MOTIF_LEN)


def plant(seq, motifs):
    """Write ``(name, start, strand)`` motifs into ``seq``; returns the new string."""
    seq = list(seq)
    for name, start, strand in motifs:
        m = MOTIFS[name] if strand == "+" else reverse_complement(MOTIFS[name])
        seq[start:start + MOTIF_LEN] = m
    return "".join(seq)


def truth(seq):
    """Noise-free targets of one ``IN_LEN`` sequence.

    Returns
    -------
    log_rate : float
        ``log(T)``, the expected log total reads in the output window.
    rate : numpy.ndarray
        Expected reads per position of the output window, shape ``(OUT_LEN,)``.
    occurrences : list of (name, start, strand)
        The occurrences that count (centre inside the output window).
    """
    length = len(seq)
    trim = (length - OUT_LEN) // 2
    occ = [o for o in scan(seq) if trim <= o[1] + MOTIF_LEN / 2 < trim + OUT_LEN]
    centres = np.array([o[1] + (MOTIF_LEN - 1) / 2 - trim for o in occ])
    kinds = [o[0] for o in occ]
    paired = np.zeros(len(occ), dtype=bool)
    n_pairs = 0
    for i, ki in enumerate(kinds):
        for j, kj in enumerate(kinds):
            if ki == "gata" and kj == "ebox" and abs(centres[i] - centres[j]) <= PAIR_DISTANCE:
                n_pairs += 1
                paired[i] = paired[j] = True
    log_rate = np.log(BASE_READS) + sum(EFFECTS[k] for k in kinds) + INTERACTION * n_pairs
    rate = np.full(OUT_LEN, BASE_READS / OUT_LEN)
    weights = np.array([np.exp(EFFECTS[k] + INTERACTION * p) - 1 for k, p in zip(kinds, paired)])
    if len(occ) and weights.sum() > 0:
        x = np.arange(OUT_LEN)
        bumps = np.exp(-0.5 * ((x[None, :] - centres[:, None]) / BUMP_SD) ** 2)
        bumps /= bumps.sum(axis=1, keepdims=True)
        extra = np.exp(log_rate) - BASE_READS
        rate = rate + extra * (weights[:, None] * bumps).sum(0) / weights.sum()
    return float(log_rate), rate, occ


def random_design(rng, pair_prob=0.35):
    """Draw the motifs to plant in one training-like sequence (non-overlapping)."""
    wanted = []
    for name, probs in (("gata", (0.45, 0.4, 0.15)), ("ebox", (0.45, 0.4, 0.15)),
                        ("control", (0.45, 0.4, 0.15))):
        wanted += [name] * int(rng.choice(3, p=probs))
    placed = []

    def free(start):
        return all(abs(start - s) >= MOTIF_LEN + 2 for _, s, _ in placed)

    if rng.random() < pair_prob:
        for _ in range(100):
            a = int(rng.integers(PLANT_LO, PLANT_HI + 1))
            gap = int(rng.integers(MOTIF_LEN + 2, PAIR_DISTANCE + 1)) * (1 if rng.random() < 0.5 else -1)
            b = a + gap
            if PLANT_LO <= b <= PLANT_HI:
                placed += [("gata", a, "+-"[int(rng.integers(2))]), ("ebox", b, "+")]
                break
    for name in wanted:
        for _ in range(100):
            start = int(rng.integers(PLANT_LO, PLANT_HI + 1))
            if free(start):
                strand = "+-"[int(rng.integers(2))] if name != "ebox" else "+"
                placed.append((name, start, strand))
                break
    return placed


def one_hot(seqs, dtype=np.float32):
    """``(N, 4, L)`` one-hot of equal-length A/C/G/T strings."""
    lut = np.full(256, 255, dtype=np.uint8)
    for i, b in enumerate(ALPHABET):
        lut[ord(b)] = i
    codes = lut[np.frombuffer("".join(seqs).encode(), dtype=np.uint8)].reshape(len(seqs), -1)
    return (codes[:, None, :] == np.arange(4)[None, :, None]).astype(dtype)


def simulate_dataset(n, seed, pair_prob=0.35, motifs=True):
    """``n`` sequences with planted motifs (``motifs=False``: clean background only).

    Returns a dict: ``seqs`` (list of str), ``X`` (N, 4, IN_LEN) float32 one-hot,
    ``reads`` (N, OUT_LEN) float32 sampled reads, ``counts`` (N,) float32
    ``log(1 + total reads)``, ``log_rate`` (N,) noise-free log expected total,
    ``occurrences`` (list of lists of (name, start, strand)).
    """
    rng = np.random.default_rng(seed)
    seqs, reads, log_rates, occs = [], [], [], []
    for _ in range(n):
        seq = clean_background(rng, IN_LEN)
        if motifs:
            seq = plant(seq, random_design(rng, pair_prob))
        log_rate, rate, occ = truth(seq)
        seqs.append(seq)
        reads.append(rng.poisson(rate))
        log_rates.append(log_rate)
        occs.append(occ)
    reads = np.asarray(reads, dtype=np.float32)
    return {"seqs": seqs, "X": one_hot(seqs), "reads": reads,
            "counts": np.log1p(reads.sum(1)).astype(np.float32),
            "log_rate": np.asarray(log_rates, dtype=np.float32), "occurrences": occs}


# ----------------------------------------------------------------------------
# Example files for Kipoi: a small genome with planted regions and a BED.
EXAMPLE_DESIGNS = [
    # (label, motifs as (name, offset from region start, strand)); regions are IN_LEN bp.
    ("none", []),
    ("gata", [("gata", 247, "+")]),
    ("gata_minus", [("gata", 247, "-")]),
    ("ebox", [("ebox", 247, "+")]),
    ("control", [("control", 247, "+")]),
    ("gata_ebox_pair", [("gata", 230, "+"), ("ebox", 256, "+")]),
    ("gata_ebox_far", [("gata", 120, "+"), ("ebox", 360, "+")]),
    ("two_gata", [("gata", 150, "+"), ("gata", 320, "-")]),
]


def write_example_files(out_dir, seed=7, n_chroms=3, regions_per_chrom=(11, 11, 10), spacing=700):
    """Write ``genome.fa`` (+ ``.fai``), ``regions.bed`` and ``planted.bed`` to ``out_dir``.

    Each chromosome is clean background with ``IN_LEN``-bp regions every
    ``spacing`` bp, each region planted with one of ``EXAMPLE_DESIGNS`` (cycled;
    every third region is listed on the minus strand in the BED).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    chroms, regions, planted = [], [], []
    k = 0
    for c in range(n_chroms):
        name = "chr{}".format(c + 1)
        n_reg = regions_per_chrom[c]
        length = spacing * n_reg + 300
        seq = clean_background(rng, length)
        for r in range(n_reg):
            start = 150 + r * spacing
            label, design = EXAMPLE_DESIGNS[k % len(EXAMPLE_DESIGNS)]
            motifs = [(m, start + off, s) for m, off, s in design]
            seq = plant(seq, motifs)
            strand = "-" if k % 3 == 2 else "+"
            regions.append((name, start, start + IN_LEN, "r{:02d}_{}".format(k, label), 0, strand))
            planted += [(name, s0, s0 + MOTIF_LEN, m, 0, st) for m, s0, st in motifs]
            k += 1
        # Planting must not have created motifs anywhere else.
        found = {(o[0], o[1]) for o in scan(seq)}
        assert found == {(p[3], p[1]) for p in planted if p[0] == name}, name
        chroms.append((name, seq))
    fasta = os.path.join(out_dir, "genome.fa")
    width = 60
    with open(fasta, "w") as fh, open(fasta + ".fai", "w") as fai:
        offset = 0
        for name, seq in chroms:
            header = ">{}\n".format(name)
            offset += len(header)
            fai.write("{}\t{}\t{}\t{}\t{}\n".format(name, len(seq), offset, width, width + 1))
            body = "".join(seq[i:i + width] + "\n" for i in range(0, len(seq), width))
            fh.write(header + body)
            offset += len(body)
    for fname, rows in (("regions.bed", regions), ("planted.bed", planted)):
        with open(os.path.join(out_dir, fname), "w") as fh:
            for row in rows:
                fh.write("\t".join(str(v) for v in row) + "\n")
    return fasta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "example_files"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    fasta = write_example_files(args.out, seed=args.seed)
    print("wrote", fasta, "and regions.bed / planted.bed in", args.out)


if __name__ == "__main__":
    main()
