"""kipoi-tanger demo on the shipped motif_cnn: the planted GATA and E-box motifs come out as
seqlets named by the shipped motifs.meme (BED read back against planted.bed), the report lists
them, the bigWig holds the attributions at their genomic positions; `kipoi-tanger seqlets` on the
demo's attributions (BED/TSV, one-hot queries) and its one-line refusals."""
import os
import re

import h5py
import numpy as np
import pandas as pd
import pyBigWig
import pytest

from kipoi_tanger import cli
from kipoi_tanger.tools.demo import demo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(REPO, "example_models", "motif_cnn")
MEME = os.path.join(MODEL, "motifs.meme")
NAMES = {"gata": "GATA_GATAAG", "ebox": "Ebox_CAGCTG"}
BED = ["chrom", "start", "end", "name", "score", "strand"]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    return demo(str(d / "demo"), n_shuffles=10)


def _bed(path):
    return pd.read_csv(path, sep="\t", header=None, usecols=range(6), names=BED, comment="#")


def _planted():
    p = _bed(os.path.join(MODEL, "example_files", "planted.bed"))
    return p[p.name != "control"]


def assert_planted_motifs_named(bed):
    """Each planted GATA/E-box is inside exactly one seqlet named after it, on its strand
    (the E-box CAGCTG is its own reverse complement: '.'), and there is no other seqlet."""
    planted = _planted()
    assert len(planted) == 36
    for p in planted.itertuples():
        hits = bed[(bed.chrom == p.chrom) & (bed.start < p.end) & (bed.end > p.start)]
        assert len(hits) == 1, (p, hits)
        h = hits.iloc[0]
        assert h.start <= p.start and h.end >= p.end and h["name"] == NAMES[p.name]
        assert h.strand == (p.strand if p.name == "gata" else ".")
    assert len(bed) == 36


def test_demo_names_the_planted_motifs_and_reports_them(out):
    bed = _bed(out["seqlets_bed"])
    assert_planted_motifs_named(bed)
    tsv = pd.read_csv(out["seqlets_tsv"], sep="\t")
    assert list(tsv.columns[:6]) == ["chrom", "chrom_start", "chrom_end", "name", "score", "strand"]
    assert tsv.named.all() and (tsv.motif_qvalue <= 0.05).all()
    assert sorted(tsv.motif.value_counts().items()) == [("Ebox CAGCTG", 12), ("GATA GATAAG", 24)]
    html = open(out["report"], encoding="utf-8").read()
    assert "Seqlets named by motif" in html
    assert "GATA GATAAG <b>24</b>, Ebox CAGCTG <b>12</b>; unnamed: 0" in html
    # the per-motif summary and the top seqlets, each with its genomic location
    assert re.search(r"<td>GATA GATAAG</td><td class=\"num\">24</td><td class=\"num\">\d+</td>", html)
    assert re.search(r"<td>Ebox CAGCTG</td><td class=\"num\">12</td><td class=\"num\">12</td>", html)
    top = tsv.sort_values("attribution", ascending=False).iloc[0]
    assert f"<td>{top.region_id}</td><td>{top.chrom}:{top.chrom_start}-{top.chrom_end}</td>" in html
    # logos in genomic coordinates, minus-strand windows said to be reverse-complemented
    captions = re.findall(r"<figcaption>(#\d: [^<]*)</figcaption>", html)
    assert len(captions) == 5 and all(re.match(r"#\d: chr\d:\d+-\d+ [+-], r\d\d_", c) for c in captions)
    assert all(c.endswith(", shown reverse-complemented") == (" -, " in c) for c in captions)
    # what the user set, not internal keys
    run_table = html.split("<h2>Run</h2>", 1)[1].split("<details>", 1)[0]
    for text in ("explained output</td><td>counts", "references per region (dinucleotide shuffles)</td><td>10",
                 "seed</td><td>0", "hypothetical attributions</td><td>yes"):
        assert text in run_table, text
    for internal in ("explained_output", "sequence_dataset", "reduce", "batch_size", "keep_inputs"):
        assert internal not in run_table, internal


def test_demo_bigwig_is_the_attributions_on_the_genome(out):
    with h5py.File(out["attributions"], "r") as f:
        per_base = (f["attributions"][:] * f["inputs"][:]).sum(axis=1)   # hypothetical, projected
        r = {k: f[f"metadata/ranges/{k}"][:] for k in ("chr", "start", "end", "strand")}
    bw = pyBigWig.open(out["attributions_bigwig"])
    try:
        assert bw.chroms() == {"chr1": 8000, "chr2": 8000, "chr3": 7300}
        strands = [s.decode() for s in r["strand"]]
        for i in (strands.index("+"), strands.index("-")):
            got = np.array(bw.values(r["chr"][i].decode(), int(r["start"][i]), int(r["end"][i])))
            want = per_base[i] if strands[i] == "+" else per_base[i][::-1]
            np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-6, atol=1e-9)
    finally:
        bw.close()


def test_cli_seqlets_bed_tsv_and_onehot_queries(out, tmp_path, capsys):
    bed, tsv = str(tmp_path / "s.bed"), str(tmp_path / "s.tsv")
    assert cli.main(["seqlets", out["attributions"], "--motifs", MEME, "-o", bed, tsv]) == 0
    o, err = capsys.readouterr()
    assert o.split() == [bed, tsv]
    assert err.strip() == ("kipoi-tanger: 36 seqlets in 24 of 32 regions; named: GATA GATAAG 24, "
                           "Ebox CAGCTG 12, unnamed 0")
    assert open(bed).read() == open(out["seqlets_bed"]).read()
    assert open(tsv).read() == open(out["seqlets_tsv"]).read()
    # the one-hot sequence as the TOMTOM query (tangermeme's annotate_seqlets) names them too
    assert cli.main(["seqlets", out["attributions"], "--motifs", MEME, "--query", "onehot", "-o", bed,
                     "--bed_extra", "-q"]) == 0
    capsys.readouterr()
    assert open(bed).readline().startswith("#chrom\tchrom_start\tchrom_end\tname\tscore\tstrand\tregion_id")
    assert_planted_motifs_named(_bed(bed))
    # no motifs: unnamed seqlets at the same places
    assert cli.main(["seqlets", out["attributions"], "-o", bed, "-q"]) == 0
    plain = _bed(bed)
    assert (plain.name == ".").all() and (plain.strand == ".").all()
    assert plain[["chrom", "start", "end"]].values.tolist() == _bed(out["seqlets_bed"])[["chrom", "start",
                                                                                          "end"]].values.tolist()


def test_cli_seqlets_refusals_one_line_nothing_written(out, tmp_path, capsys):
    no_ranges = str(tmp_path / "no_ranges.h5")
    with h5py.File(out["attributions"], "r") as src, h5py.File(no_ranges, "w") as dst:
        for k in ("attributions", "inputs"):
            dst[k] = src[k][:]
        for k, v in src.attrs.items():
            dst.attrs[k] = v
    bad_meme = tmp_path / "bad.meme"
    bad_meme.write_text("MEME version 4\n\nALPHABET= ACGT\n")
    o = str(tmp_path / "o")
    cases = [
        (["seqlets", no_ranges, "-o", o + ".bed"], "has no metadata/ranges"),
        (["seqlets", out["attributions"], "-o", o + ".txt"], "expected a .bed or .tsv file"),
        (["seqlets", out["attributions"], "-o", o + ".bed", o + ".bed"], "the same file twice"),
        (["seqlets", out["attributions"], "--motifs", str(bad_meme), "-o", o + ".bed"], "no motifs"),
        (["seqlets", out["attributions"], "--motifs", str(tmp_path / "nope.meme"), "-o", o + ".bed"],
         "file not found"),
        (["seqlets", out["predictions"], "-o", o + ".tsv"], "no 'attributions' dataset"),
        (["seqlets", out["attributions"], "--min_len", "0", "-o", o + ".tsv"], "--min_len: must be at least 1"),
        (["seqlets", out["attributions"], "--strand", "forward", "-o", o + ".tsv"], "drop --strand"),
    ]
    for argv, msg in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("kipoi-tanger: error: ") and msg in err[0], (argv, err)
    assert sorted(os.listdir(tmp_path)) == ["bad.meme", "no_ranges.h5"]
    # without region metadata a TSV is written, with rows as region ids
    assert cli.main(["seqlets", no_ranges, "-o", o + ".tsv", "-q"]) == 0
    capsys.readouterr()
    tsv = pd.read_csv(o + ".tsv", sep="\t")
    assert "chrom" not in tsv and (tsv.region_id == tsv.example_idx).all() and len(tsv) == 36
