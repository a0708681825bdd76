"""Regression tests from a review of `variant-effect` / `ism` and kipoi_tanger.variants.

Each test pins a defect that was found with the CLI on the example models: malformed VCF lines that
crashed the process (a segfault inside cyvcf2) or printed htslib's own messages as extra stderr lines,
undeclared INFO/FORMAT tags that made the VCF output fail after all the work (a traceback and a left
``.partial``), an input VCF already holding the INFO fields the output adds (failed after the work),
alleles longer than the window scored on wrongly sliced windows, a misleading POS 0 detail, a doubled
``--output:`` prefix and pyfaidx's advice in the read-only FASTA error.
"""
import gzip
import os
import subprocess
import sys

import numpy as np
import pytest

from kipoi_model_dirs import REPO
from kipoi_tanger import cli
from kipoi_tanger.variants import REASONS, Skipped, VariantError, Window, read_vcf, variant_windows

pytestmark = pytest.mark.usefixtures("one_thread")

BASSET = os.path.join(REPO, "example_models", "basset_like")     # (4, 200, 1), output probs (3,)
HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=3000>\n"
          "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")


def _genome(seed=3):
    rs = np.random.RandomState(seed)
    return {"chr1": "".join(rs.choice(list("ACGT"), 3000))}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("review_variants")
    G = _genome()
    fa = d / "g.fa"
    fa.write_text("".join(f">{c}\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n"
                          for c, s in G.items()))
    return {"dir": d, "G": G, "fa": str(fa)}


def _rec(G, pos, alt=None, info=".", extra=""):
    ref = G["chr1"][pos - 1]
    alt = alt or "ACGT"[("ACGT".index(ref) + 1) % 4]
    return f"chr1\t{pos}\t.\t{ref}\t{alt}\t.\t.\t{info}{extra}\n"


def _cli(argv, capfd):
    rc = cli.main(argv)
    out = capfd.readouterr()
    return rc, out.err


def _one_line_error(rc, err, *parts):
    assert rc == 2, err
    assert err.count("\n") == 1 and err.startswith("kipoi-tanger: error: ") and "Traceback" not in err, err
    for p in parts:
        assert p in err, err


# -- malformed VCF lines ---------------------------------------------------------------------------------

MALFORMED = {
    # name: (body after the header, expected parts of the message)
    "blank_line": (lambda G: _rec(G, 500) + "\n" + _rec(G, 600), ["line 5: an empty line"]),
    "trailing_blank_line": (lambda G: _rec(G, 500) + "\n", ["line 5: an empty line"]),
    "spaces": (lambda G: _rec(G, 500).replace("\t", " "), ["line 4: 1 tab-separated column(s); a record has at "
                                                           "least 8 (CHROM POS ID REF ALT QUAL FILTER INFO)"]),
    "five_columns": (lambda G: "\t".join(_rec(G, 500).split("\t")[:5]) + "\n", ["line 4: 5 tab-separated"]),
    "pos_not_integer": (lambda G: _rec(G, 500) + "chr1\tabc\t.\tA\tC\t.\t.\t.\n",
                        ["line 5: POS 'abc' is not a position"]),
    "pos_negative": (lambda G: "chr1\t-5\t.\tA\tC\t.\t.\t.\n", ["line 4: POS '-5' is not a position"]),
    "header_among_records": (lambda G: _rec(G, 500) + "#x\n" + _rec(G, 600), ["line 5: a header line (#...)"]),
    # cyvcf2 reads POS 2**32 + 500 as 500: the record was scored at the wrong position (its REF matched)
    "pos_wraps_around": (lambda G: _rec(G, 500).replace("\t500\t", f"\t{2 ** 32 + 500}\t"),
                         [f"line 4: POS {2 ** 32 + 500} is beyond the largest position"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_vcf_lines_are_one_line_errors(inputs, tmp_path, capfd, case):
    """Lines htslib misreads (a blank line or one without tabs became a record that crashed the process
    with a segfault; others gave htslib's own [E::...] line plus 'error-code: 0 and ret: -2') are one
    line naming the VCF line and what is expected; nothing is written."""
    body, parts = MALFORMED[case]
    vcf = tmp_path / "in.vcf"
    vcf.write_text(HEADER + body(inputs["G"]))
    out = tmp_path / "out"
    rc, err = _cli(["variant-effect", BASSET, "--vcf", str(vcf), "--fasta", inputs["fa"], "-q",
                    "-o", str(out / "a.h5"), str(out / "a.vcf")], capfd)
    _one_line_error(rc, err, f"--vcf: {vcf}: ", *parts)
    assert not out.exists() or os.listdir(out) == []


def test_vcf_header_problems_are_one_line_errors(inputs, tmp_path, capfd):
    """No #CHROM line (htslib printed '[E::vcf_hdr_read] No sample line' as a second line), an empty file,
    a truncated .gz (htslib's '[E::bgzf_read_block] ...' line)."""
    G = inputs["G"]
    cases = {
        "nochrom.vcf": ("##fileformat=VCFv4.2\n" + _rec(G, 500), "line 2: a record before the #CHROM header line"),
        "empty.vcf": ("", "an empty file; expected a VCF"),
    }
    for name, (text, part) in cases.items():
        p = tmp_path / name
        p.write_text(text)
        rc, err = _cli(["variant-effect", BASSET, "--vcf", str(p), "--fasta", inputs["fa"], "-q",
                        "-o", str(tmp_path / "o" / "a.h5")], capfd)
        _one_line_error(rc, err, part)
    gz = tmp_path / "t.vcf.gz"
    data = gzip.compress((HEADER + "".join(_rec(G, p) for p in range(400, 2000, 10))).encode())
    gz.write_bytes(data[:-30])
    rc, err = _cli(["variant-effect", BASSET, "--vcf", str(gz), "--fasta", inputs["fa"], "-q",
                    "-o", str(tmp_path / "o" / "a.h5")], capfd)
    _one_line_error(rc, err, f"--vcf: {gz}: not a readable gzipped VCF")
    assert not (tmp_path / "o").exists()


def test_read_vcf_refuses_a_blank_line_instead_of_crashing(tmp_path):
    """The Python API: read_vcf on a VCF with a trailing blank line raised nothing and then segfaulted
    on the phantom record's REF; now it is one VariantError (run in a subprocess: a crash must not take
    the test session down)."""
    vcf = tmp_path / "blank.vcf"
    vcf.write_text(HEADER + "chr1\t10\t.\tA\tC\t.\t.\t.\n\n")
    code = ("import sys\nfrom kipoi_tanger.variants import read_vcf, VariantError\n"
            "try:\n    list(read_vcf(sys.argv[1]))\nexcept VariantError as e:\n    print(e)\n    sys.exit(3)\n")
    p = subprocess.run([sys.executable, "-c", code, str(vcf)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, (p.returncode, p.stderr[-2000:])
    assert p.stdout.strip() == f"{vcf}: line 5: an empty line; expected a record of at least 8 tab-separated " \
                               "columns (CHROM POS ID REF ALT QUAL FILTER INFO)"


# -- VCF output --------------------------------------------------------------------------------------------

def test_undeclared_info_and_format_tags_are_copied(inputs, tmp_path, capfd):
    """INFO and FORMAT tags used without a ##INFO/##FORMAT line (common in real VCFs) made the VCF writer
    fail after all the work ('variant to be written has errorcode: 2', a traceback, OUT.h5.partial left);
    now they are declared as htslib declares them and every record is copied."""
    G = inputs["G"]
    header = HEADER.replace("\tINFO\n", "\tINFO\tFORMAT\tS1\n")
    bad_ref = G["chr1"][699 - 1]
    bad_ref = "ACGT"[("ACGT".index(bad_ref) + 2) % 4]
    body = (_rec(G, 500, info="X=1;Y", extra="\tGT\t0/1")
            + f"chr1\t699\t.\t{bad_ref}\tA\t.\t.\tZ=abc\tGT\t1/1\n"      # skipped (REF mismatch), undeclared Z
            + _rec(G, 900, extra="\tGT:DP\t0/0:3"))
    vcf = tmp_path / "in.vcf"
    vcf.write_text(header + body)
    out = tmp_path / "out"
    rc, err = _cli(["variant-effect", BASSET, "--vcf", str(vcf), "--fasta", inputs["fa"], "-q",
                    "-o", str(out / "a.h5"), str(out / "a.vcf"), str(out / "a.vcf.gz")], capfd)
    assert rc == 0, err
    assert sorted(os.listdir(out)) == ["a.h5", "a.skipped.tsv", "a.vcf", "a.vcf.gz"]
    text = (out / "a.vcf").read_text()
    with gzip.open(out / "a.vcf.gz", "rt") as fh:
        assert fh.read() == text
    for tag in ("##INFO=<ID=X,", "##INFO=<ID=Y,", "##INFO=<ID=Z,", "##FORMAT=<ID=GT,", "##FORMAT=<ID=DP,"):
        assert tag in text, text
    rows = [r.split("\t") for r in text.splitlines() if not r.startswith("#")]
    assert [r[1] for r in rows] == ["500", "699", "900"]
    assert rows[0][7].startswith("X=1;Y;KT_diff_probs_task0=") and rows[0][8:] == ["GT", "0/1"]
    assert rows[1][7] == "Z=abc" and rows[1][8:] == ["GT", "1/1"]
    assert rows[2][7].startswith("KT_diff_probs_task0=") and rows[2][8:] == ["GT:DP", "0/0:3"]
    import h5py
    with h5py.File(out / "a.h5", "r") as f:
        diff = f["diff"][:]
    assert rows[2][7].split(";")[0] == f"KT_diff_probs_task0={diff[1, 0]:.6g}"


def test_input_vcf_with_the_output_info_fields_is_refused_before_any_work(inputs, tmp_path, capfd):
    """Scoring a VCF written by an earlier run into a VCF again failed only when the VCF was assembled,
    after all the work ('INFO field ... already exists; choose another prefix', for which there is no
    option), leaving OUT.h5.partial; now one line before anything is created."""
    G = inputs["G"]
    vcf = tmp_path / "in.vcf"
    vcf.write_text(HEADER + _rec(G, 500) + _rec(G, 900))
    first = tmp_path / "first"
    rc, err = _cli(["variant-effect", BASSET, "--vcf", str(vcf), "--fasta", inputs["fa"], "-q",
                    "-o", str(first / "a.vcf")], capfd)
    assert rc == 0, err
    out = tmp_path / "out"
    rc, err = _cli(["variant-effect", BASSET, "--vcf", str(first / "a.vcf"), "--fasta", inputs["fa"], "-q",
                    "-o", str(out / "b.h5"), str(out / "b.vcf")], capfd)
    _one_line_error(rc, err, f"--vcf: {first / 'a.vcf'} already declares INFO field KT_diff_probs_task0, "
                             "which the VCF output adds")
    assert not out.exists() or os.listdir(out) == []
    # other scores do not clash
    rc, err = _cli(["variant-effect", BASSET, "--vcf", str(first / "a.vcf"), "--fasta", inputs["fa"], "-q",
                    "--scores", "ref", "-o", str(out / "c.vcf")], capfd)
    assert rc == 0, err


# -- windows ----------------------------------------------------------------------------------------------

def test_alleles_longer_than_the_window_are_skipped(inputs, tmp_path):
    """A deletion or insertion longer than the window put the allele start at c < 0, and the windows were
    cut with negative slices (garbage scored silently: a 700-bp deletion in motif_cnn's 500-bp window gave
    diff 0 exactly). Now skipped as 'allele_too_long'; the longest allele that still fits (c = 0) is
    scored on the documented windows."""
    G = inputs["G"]["chr1"]
    L = 10
    rows = [
        ("del11", 1000, G[999:1011], G[999]),              # deletes 11 bases: c = 5 - 5 = 0, fits
        ("del13", 1100, G[1099:1113], G[1099]),            # deletes 13 bases: c = 5 - 6 < 0
        ("ins13", 1200, G[1199], G[1199] + "ACGTACGTACGTA"),
        ("ins11", 1300, G[1299], G[1299] + "ACGTACGTACG"),
    ]
    vcf = tmp_path / "long.vcf"
    vcf.write_text(HEADER + "".join(f"chr1\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\n" for i, p, r, a in rows))
    items = {it.variant.id: it for it in variant_windows(read_vcf(str(vcf)), inputs["fa"], L)}
    for vid in ("del13", "ins13"):
        assert isinstance(items[vid], Skipped) and items[vid].reason == "allele_too_long", items[vid]
        assert "does not fit a window of 10" in items[vid].detail
    assert "allele_too_long" in REASONS

    def s(codes):
        return "".join("ACGTN"[int(c)] for c in codes)
    w = items["del11"]
    assert isinstance(w, Window) and w.allele == 0
    p = 1000          # 0-based start of the trimmed deletion (the padding base at 999 is shared)
    assert s(w.ref) == G[p:p + L] and s(w.alt) == G[p + 11:p + 11 + L]
    w = items["ins11"]
    assert isinstance(w, Window) and w.allele == 0
    assert s(w.ref) == G[1300:1310] and s(w.alt) == "ACGTACGTAC"
    with pytest.raises(VariantError, match=r"line 5 .*allele longer than the window"):
        list(variant_windows(read_vcf(str(vcf)), inputs["fa"], L, strict=True))
    # minus strand: the same records are skipped
    minus = {it.variant.id: it for it in variant_windows(read_vcf(str(vcf)), inputs["fa"], L, strand="-")}
    assert isinstance(minus["del13"], Skipped) and isinstance(minus["ins13"], Skipped)
    assert isinstance(minus["del11"], Window) and isinstance(minus["ins11"], Window)


def test_pos_zero_detail_says_before_the_start(inputs, tmp_path):
    vcf = tmp_path / "p0.vcf"
    vcf.write_text(HEADER + "chr1\t0\t.\tA\tC\t.\t.\t.\n")
    (sk,) = list(variant_windows(read_vcf(str(vcf)), inputs["fa"], 10))
    assert sk.reason == "ref_mismatch" and sk.detail == "POS 0 is before the first base of chr1 (POS 1)"


# -- options -----------------------------------------------------------------------------------------------

def test_unknown_output_is_named_once(inputs, tmp_path, capfd):
    """'--output: --output: output ... is not in the schema' had the option twice."""
    vcf = tmp_path / "in.vcf"
    vcf.write_text(HEADER + _rec(inputs["G"], 500))
    rc, err = _cli(["variant-effect", BASSET, "--vcf", str(vcf), "--fasta", inputs["fa"], "--output", "nope",
                    "-o", str(tmp_path / "o" / "a.h5")], capfd)
    _one_line_error(rc, err, "kipoi-tanger: error: --output: ")
    assert err.count("--output") == 1, err


def test_fasta_that_cannot_be_indexed_says_why(inputs, tmp_path, monkeypatch):
    """A FASTA without .fai in a read-only directory quoted pyfaidx's advice ('Please use
    Fasta(rebuild=False)...', which the CLI already passes); now it says what to do."""
    import pyfaidx
    from kipoi_tanger.variants.windows import _Fasta
    fa = tmp_path / "ro.fa"
    fa.write_text(">chr1\nACGT\n")

    def refuse(path, **kw):
        raise OSError(f"{path}.fai may not be writable. Please use Fasta(rebuild=False), Faidx(rebuild=False) "
                      "or faidx --no-rebuild.")
    monkeypatch.setattr(pyfaidx, "Fasta", refuse)
    with pytest.raises(VariantError) as e:
        _Fasta(str(fa))
    assert str(e.value) == (f"{fa}: no index {fa}.fai, and it cannot be written there; copy the FASTA to a "
                            "writable directory (indexed there)")


def test_an_index_older_than_the_fasta_is_rebuilt(inputs, tmp_path):
    """pyfaidx was opened with rebuild=False: a FASTA replaced after its .fai was built was read at the
    old offsets (a RuntimeWarning only), so windows came from the wrong bases and the SNVs whose REF
    matched by chance (about 1 in 4) were scored on them."""
    G = inputs["G"]["chr1"]
    fa = tmp_path / "g.fa"
    fa.write_text(">chr0\nACGTACGTAC\n>chr1\n" + "\n".join(G[i:i + 60] for i in range(0, len(G), 60)) + "\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text(HEADER + "".join(_rec(inputs["G"], p) for p in range(100, 2900, 97)))
    assert all(isinstance(w, Window) for w in variant_windows(read_vcf(str(vcf)), str(fa), 10))  # builds .fai
    # chr0 grows from 10 to 600 bases: chr1's stale offset points into chr0
    fa.write_text(">chr0\n" + "\n".join(("ACGTACGTAC" * 60)[i:i + 60] for i in range(0, 600, 60)) + "\n>chr1\n"
                  + "\n".join(G[i:i + 60] for i in range(0, len(G), 60)) + "\n")
    os.utime(str(fa) + ".fai", (1e9, 1e9))
    items = list(variant_windows(read_vcf(str(vcf)), str(fa), 10))
    assert all(isinstance(w, Window) for w in items), [i for i in items if isinstance(i, Skipped)][:2]
    for w in items:
        s0 = w.span[0]
        assert "".join("ACGTN"[int(c)] for c in w.ref) == G[s0:s0 + 10]


def test_upper_case_vcf_gz_output_is_bgzipped(inputs, tmp_path, capfd):
    """-o OUT.VCF.GZ was accepted as a .vcf.gz output (suffixes are matched case-insensitively) but
    written as plain text: the writer tested the name for '.gz' case-sensitively."""
    vcf = tmp_path / "in.vcf"
    vcf.write_text(HEADER + _rec(inputs["G"], 500) + _rec(inputs["G"], 900))
    rc, err = _cli(["variant-effect", BASSET, "--vcf", str(vcf), "--fasta", inputs["fa"], "-q",
                    "-o", str(tmp_path / "A.VCF.GZ"), str(tmp_path / "a.vcf")], capfd)
    assert rc == 0, err
    assert (tmp_path / "A.VCF.GZ").read_bytes()[:2] == b"\x1f\x8b"
    with gzip.open(tmp_path / "A.VCF.GZ", "rt") as fh:
        assert fh.read() == (tmp_path / "a.vcf").read_text()
