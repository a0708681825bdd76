"""Write ``motifs.meme``: the demo's motif file for naming seqlets.

    python make_motifs.py          # rewrites motifs.meme (byte-identical)

The planted motifs come from ``simulate.MOTIFS`` (GATA ``GATAAG``, E-box
``CAGCTG``, control ``ACGTTC``). The others are decoys, so that TOMTOM's
background has enough columns (memelite warns below 25 targets) and the
planted motifs must beat similar ones (the E-box CACGTG and CAGGTG, a GATA-like
AGATAA). They are written from textbook IUPAC consensus sequences, **not** taken
from JASPAR or any database, and are only approximations of those factors'
motifs: use a real database (JASPAR, HOCOMOCO) for real data.

Each position of a consensus becomes a letter-probability column: the allowed
bases share 0.96 equally and the others share 0.04 (``N``: 0.25 each).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from simulate import MOTIFS  # noqa: E402

IUPAC = {"A": "A", "C": "C", "G": "G", "T": "T", "R": "AG", "Y": "CT", "S": "CG", "W": "AT",
         "K": "GT", "M": "AC", "B": "CGT", "D": "AGT", "H": "ACT", "V": "ACG", "N": "ACGT"}
# name -> consensus. Planted first, then decoys (approximate consensus motifs).
PLANTED = [("GATA", MOTIFS["gata"]), ("Ebox", MOTIFS["ebox"]), ("control", MOTIFS["control"])]
DECOYS = [
    ("GATA-like", "AGATAA"), ("MYC_MAX", "CACGTG"), ("ZEB_SNAI", "CAGGTG"), ("AP-1", "TGASTCA"),
    ("CREB", "TGACGTCA"), ("CTCF", "CCGCGNGGNGGCAG"), ("SP1", "GGGGCGGGG"),
    ("NRF1", "GCGCATGCGC"), ("ETS", "CCGGAAGT"), ("NFKB", "GGGRNTTTCC"), ("CEBP", "TTGCGCAAT"),
    ("FOX", "TGTTTAC"), ("SOX", "AACAAAG"), ("RUNX", "TGTGGTT"), ("TEAD", "ACATTCCT"),
    ("MEF2", "CTAWWWWTAG"), ("SRF", "CCWWWWWWGG"), ("STAT", "TTCNNNGAA"), ("IRF", "GAAANNGAAA"),
    ("HOX", "TAATTA"), ("OCT", "ATGCAAAT"), ("NFY", "RRCCAATSR"), ("TATA", "TATAWAWR"),
    ("KLF", "GCCACACCC"), ("GRE", "AGAACANNNTGTTCT"), ("HNF1", "GTTAATNATTAAC"),
    ("E2F", "TTTCGCGC"), ("YY1", "AAGATGGCGGC"), ("ERE", "AGGTCANNNTGACCT"),
    ("HNF4", "RGGTCAAAGGTCA"),
]
INSIDE = 0.96


def column(code):
    bases = IUPAC[code]
    inside = INSIDE if len(bases) < 4 else 1.0
    return [inside / len(bases) if b in bases else (1 - inside) / (4 - len(bases)) for b in "ACGT"]


def meme_text(motifs):
    out = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", "",
           "Background letter frequencies", "A 0.25 C 0.25 G 0.25 T 0.25", ""]
    for name, consensus in motifs:
        out.append(f"MOTIF {name} {consensus}")
        out.append(f"letter-probability matrix: alength= 4 w= {len(consensus)} nsites= 20 E= 0")
        out.extend(" ".join(f"{p:.6f}" for p in column(c)) for c in consensus)
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    with open(os.path.join(HERE, "motifs.meme"), "w") as fh:
        fh.write(meme_text(PLANTED + DECOYS))
