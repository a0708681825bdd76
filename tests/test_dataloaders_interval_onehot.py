"""Tests of dataloaders/interval_onehot (BED + FASTA -> one-hot DNA)."""
import gzip
import importlib.util
import os
import sys
import textwrap
import warnings

import numpy as np
import pytest
from cli_helpers import one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DL_DIR = os.path.join(ROOT, "dataloaders", "interval_onehot")


def _load_module():
    spec = importlib.util.spec_from_file_location("_interval_onehot_under_test",
                                                  os.path.join(DL_DIR, "dataloader.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


mod = _load_module()
IntervalOneHot = mod.IntervalOneHot

CHR1 = "ACGTACGTTTGGCCAANNGGACGTRYKMacgtacgtAC"   # 38 bp, IUPAC + lowercase inside
CHR2 = "GGGGCCCCAATTGGCA"                          # 16 bp


def hand_onehot(seq):
    """(4, L) by the definition: one row per A, C, G, T; anything else zero."""
    out = np.zeros((4, len(seq)), dtype=np.float32)
    for j, ch in enumerate(seq.upper()):
        if ch in "ACGT":
            out["ACGT".index(ch), j] = 1
    return out


def revcomp(seq):
    comp = {"A": "T", "C": "G", "G": "C", "T": "A"}
    return "".join(comp.get(c.upper(), "N") for c in reversed(seq))


def write_fasta(path, seqs, width=10, newline="\n"):
    with open(path, "w", newline="") as f:
        for name, seq in seqs.items():
            f.write(">" + name + " some description" + newline)
            for i in range(0, len(seq), width):
                f.write(seq[i:i + width] + newline)
    return str(path)


def write_bed(path, lines):
    with open(path, "w") as f:
        f.write("\n".join("\t".join(map(str, ln)) if not isinstance(ln, str) else ln
                          for ln in lines) + "\n")
    return str(path)


@pytest.fixture
def genome(tmp_path):
    fa = write_fasta(tmp_path / "genome.fa", {"chr1": CHR1, "chr2": CHR2})
    import pyfaidx
    pyfaidx.Faidx(fa).close()
    return fa


def window(seq, start, end):
    """Sequence of [start, end) with N beyond the ends."""
    return "".join(seq[p] if 0 <= p < len(seq) else "N" for p in range(start, end))


# ----------------------------------------------------------------------------
# Encoding

def test_onehot_matches_hand_computation(tmp_path, genome):
    bed = write_bed(tmp_path / "a.bed", [("chr1", 0, 12), ("chr1", 20, 32), ("chr2", 3, 15)])
    ds = IntervalOneHot(bed, genome)
    assert len(ds) == 3 and ds.seq_len == 12
    for i, (seq, s, e) in enumerate([(CHR1, 0, 12), (CHR1, 20, 32), (CHR2, 3, 15)]):
        x = ds[i]["inputs"]
        assert x.shape == (4, 12) and x.dtype == np.float32
        np.testing.assert_array_equal(x, hand_onehot(seq[s:e]))


def test_lowercase_equals_uppercase(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", {"up": "ACGTTGCA" * 3, "low": ("ACGTTGCA" * 3).lower()})
    bed = write_bed(tmp_path / "a.bed", [("up", 2, 20), ("low", 2, 20)])
    ds = IntervalOneHot(bed, fa)
    np.testing.assert_array_equal(ds[0]["inputs"], ds[1]["inputs"])
    assert ds[1]["inputs"].sum() == 18


def test_n_and_every_iupac_code_give_zero_columns(tmp_path):
    codes = "NRYSWKMBDHVU-."
    seq = "A" + codes + codes.lower() + "T"
    fa = write_fasta(tmp_path / "g.fa", {"c": seq})
    ds = IntervalOneHot(write_bed(tmp_path / "a.bed", [("c", 0, len(seq))]), fa)
    x = ds[0]["inputs"]
    np.testing.assert_array_equal(x[:, 0], [1, 0, 0, 0])
    np.testing.assert_array_equal(x[:, -1], [0, 0, 0, 1])
    assert not x[:, 1:-1].any()


def test_invalid_fasta_byte_is_an_error_naming_position(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", {"c": "ACGT*CGTAC"})
    bed = write_bed(tmp_path / "a.bed", [("c", 0, 10)])
    ds = IntervalOneHot(bed, fa)
    with pytest.raises(ValueError) as e:
        ds[0]
    one_line_error(e, fa, "'*'", "c:4", "line 1", bed)


def test_matches_tangermeme_extract_loci(tmp_path):
    tio = pytest.importorskip("tangermeme.io")
    import pandas as pd
    rng = np.random.default_rng(0)
    seqs = {"c1": "".join(rng.choice(list("ACGTN"), 300)), "c2": "".join(rng.choice(list("ACGT"), 200))}
    fa = write_fasta(tmp_path / "g.fa", seqs, width=7)
    loci = [("c1", 50, 61), ("c1", 100, 180), ("c2", 20, 21), ("c2", 90, 95), ("c1", 200, 233)]
    bed = write_bed(tmp_path / "a.bed", loci)
    for L in (10, 11):
        X = tio.extract_loci(pd.DataFrame(loci, columns=["chrom", "start", "end"]), fa,
                             in_window=L, n_jobs=1).numpy()
        ours = np.concatenate([b["inputs"] for b in
                               IntervalOneHot(bed, fa, seq_len=L, dtype="int8").batch_iter(batch_size=2)])
        np.testing.assert_array_equal(ours, X)


# ----------------------------------------------------------------------------
# Resizing, strand, layouts, dtypes

@pytest.mark.parametrize("start,end,L,expected", [
    (10, 20, 4, (13, 17)),   # even width, even L
    (10, 21, 4, (13, 17)),   # odd width, even L
    (10, 20, 5, (13, 18)),   # even width, odd L
    (10, 21, 5, (13, 18)),   # odd width, odd L
    (12, 12, 3, (11, 14)),   # zero width
    (0, 38, 38, (0, 38)),    # already the right width
])
def test_resize_around_centre(tmp_path, genome, start, end, L, expected):
    ds = IntervalOneHot(write_bed(tmp_path / "a.bed", [("chr1", start, end)]), genome, seq_len=L)
    item = ds[0]
    r = item["metadata"]["ranges"]
    assert (r["start"], r["end"]) == expected
    np.testing.assert_array_equal(item["inputs"], hand_onehot(CHR1[expected[0]:expected[1]]))


def test_minus_strand_is_reverse_complement(tmp_path, genome):
    bed = write_bed(tmp_path / "a.bed", [("chr1", 3, 17, "p", 0, "+"), ("chr1", 3, 17, "m", 0, "-"),
                                         ("chr1", 3, 17, "u", 0, ".")])
    ds = IntervalOneHot(bed, genome, seq_len=9)
    plus, minus, unstranded = (ds[i]["inputs"] for i in range(3))
    s, e = ds[1]["metadata"]["ranges"]["start"], ds[1]["metadata"]["ranges"]["end"]
    np.testing.assert_array_equal(minus, hand_onehot(revcomp(CHR1[s:e])))
    np.testing.assert_array_equal(minus, plus[::-1, ::-1])
    np.testing.assert_array_equal(unstranded, plus)
    # use_strand=False ignores column 6 for the sequence but keeps it in the metadata
    ds2 = IntervalOneHot(bed, genome, seq_len=9, use_strand="false")
    np.testing.assert_array_equal(ds2[1]["inputs"], plus)
    assert ds2[1]["metadata"]["ranges"]["strand"] == "-"


@pytest.mark.parametrize("layout,shape,perm", [
    ("(A, L)", (4, 9), None), ("(L, A)", (9, 4), (1, 0)), ("(A, L, 1)", (4, 9, 1), None),
    ("(1, A, L)", (1, 4, 9), None), ("L,1,A", (9, 1, 4), (1, 0)), ("(a, l)", (4, 9), None),
    ("(1, L, A, 1)", (1, 9, 4, 1), (1, 0)), ("A L 1", (4, 9, 1), None), ("LA", (9, 4), (1, 0)),
    (["L", "A"], (9, 4), (1, 0)),
])
def test_every_layout(tmp_path, genome, layout, shape, perm):
    bed = write_bed(tmp_path / "a.bed", [("chr1", 3, 17, "m", 0, "-"), ("chr2", 0, 9)])
    ref = IntervalOneHot(bed, genome, seq_len=9)
    ds = IntervalOneHot(bed, genome, seq_len=9, layout=layout)
    batch = next(ds.batch_iter(batch_size=2))["inputs"]
    assert batch.shape == (2,) + shape and batch.flags.c_contiguous
    for i in range(2):
        canon = ref[i]["inputs"] if perm is None else ref[i]["inputs"].transpose(perm)
        np.testing.assert_array_equal(ds[i]["inputs"], canon.reshape(shape))
        np.testing.assert_array_equal(batch[i], canon.reshape(shape))


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64", "int8", "uint8", "int64", "bool"])
def test_every_dtype(tmp_path, genome, dtype):
    bed = write_bed(tmp_path / "a.bed", [("chr1", 10, 30, "x", 0, "-")])
    for layout in ("(A, L)", "(L, A)"):
        ref = IntervalOneHot(bed, genome, layout=layout)[0]["inputs"]
        x = IntervalOneHot(bed, genome, layout=layout, dtype=dtype)[0]["inputs"]
        assert x.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(x.astype(np.float32), ref)


# ----------------------------------------------------------------------------
# Chromosome ends

def test_off_chromosome_windows_are_padded_with_n(tmp_path, genome):
    bed = write_bed(tmp_path / "a.bed", [("chr2", 0, 4, "left"), ("chr2", 12, 16, "right", 0, "-"),
                                         ("chr2", 6, 10, "huge")])
    ds = IntervalOneHot(bed, genome, seq_len=10)
    starts = [ds[i]["metadata"]["ranges"]["start"] for i in range(3)]
    assert starts == [-3, 9, 3]
    np.testing.assert_array_equal(ds[0]["inputs"], hand_onehot(window(CHR2, -3, 7)))
    np.testing.assert_array_equal(ds[1]["inputs"], hand_onehot(revcomp(window(CHR2, 9, 19))))
    assert not ds[0]["inputs"][:, :3].any() and not ds[1]["inputs"][:, :3].any()
    wide = IntervalOneHot(bed, genome, seq_len=30)  # longer than the chromosome
    np.testing.assert_array_equal(wide[2]["inputs"], hand_onehot(window(CHR2, -7, 23)))


def test_off_chromosome_windows_dropped_with_one_warning(tmp_path, genome):
    bed = write_bed(tmp_path / "a.bed", ["# header", ("chr2", 0, 4, "left"), ("chr2", 6, 10, "mid"),
                                         ("chr2", 12, 16, "right")])
    with pytest.warns(UserWarning) as rec:
        ds = IntervalOneHot(bed, genome, seq_len=10, out_of_bounds="drop")
    assert len(rec) == 1
    msg = str(rec[0].message)
    assert bed in msg and "dropped 2" in msg and "lines 2, 4" in msg
    assert len(ds) == 1 and ds[0]["metadata"]["ranges"]["id"] == "mid"
    assert ds.dropped_lines == [2, 4]
    with pytest.raises(ValueError) as e, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        IntervalOneHot(bed, genome, seq_len=100, out_of_bounds="drop")
    one_line_error(e, bed, "no intervals left")


# ----------------------------------------------------------------------------
# Metadata

def test_metadata_ranges_of_resized_interval(tmp_path, genome):
    bed = write_bed(tmp_path / "a.bed", ["track name=x", "browser position chr1", "",
                                         ("chr1", 4, 10), ("chr1", 4, 10, "named", 5, "-"),
                                         ("chr2", 2, 8, ".", 0, "+")])
    ds = IntervalOneHot(bed, genome, seq_len=4)
    r = [dict(ds[i]["metadata"]["ranges"]) for i in range(3)]
    assert r[0] == dict(chr="chr1", start=5, end=9, id="0", strand="*")
    assert r[1] == dict(chr="chr1", start=5, end=9, id="named", strand="-")
    assert r[2] == dict(chr="chr2", start=3, end=7, id="2", strand="+")
    from kipoi.metadata import GenomicRanges
    assert isinstance(ds[0]["metadata"]["ranges"], GenomicRanges)
    b = next(ds.batch_iter(batch_size=3))["metadata"]["ranges"]
    assert b["chr"].tolist() == ["chr1", "chr1", "chr2"] and b["id"].tolist() == ["0", "named", "2"]
    assert b["start"].dtype == np.int64 and b["strand"].tolist() == ["*", "-", "+"]


# ----------------------------------------------------------------------------
# Input files

def test_missing_fai_is_built(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", {"chr1": CHR1})
    assert not os.path.exists(fa + ".fai")
    ds = IntervalOneHot(write_bed(tmp_path / "a.bed", [("chr1", 0, 8)]), fa)
    assert os.path.exists(fa + ".fai")
    np.testing.assert_array_equal(ds[0]["inputs"], hand_onehot(CHR1[:8]))


def test_crlf_fasta_and_gzipped_bed(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", {"chr1": CHR1}, width=7, newline="\r\n")
    bed = str(tmp_path / "a.bed.gz")
    with gzip.open(bed, "wt") as f:
        f.write("chr1\t5\t30\n")
    ds = IntervalOneHot(bed, fa)
    np.testing.assert_array_equal(ds[0]["inputs"], hand_onehot(CHR1[5:30]))


def test_unindexed_fasta_in_read_only_directory(tmp_path, monkeypatch):
    fa = write_fasta(tmp_path / "g.fa", {"chr1": CHR1})
    bed = write_bed(tmp_path / "a.bed", [("chr1", 0, 8)])
    real = os.access
    monkeypatch.setattr(mod.os, "access", lambda p, m: False if m == os.W_OK else real(p, m))
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, fa)
    one_line_error(e, fa, fa + ".fai", "not writable")
    assert not os.path.exists(fa + ".fai")


def test_unindexed_fasta_index_write_fails(tmp_path, monkeypatch):
    # root ignores directory permissions, so make the write itself fail
    import pyfaidx
    fa = write_fasta(tmp_path / "g.fa", {"chr1": CHR1})

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(pyfaidx, "Faidx", refuse)
    with pytest.raises(ValueError) as e:
        IntervalOneHot(write_bed(tmp_path / "a.bed", [("chr1", 0, 8)]), fa)
    one_line_error(e, fa, "cannot be created", "Permission denied")


def test_fasta_that_cannot_be_indexed(tmp_path):
    fa = tmp_path / "g.fa"
    fa.write_text(">chr1\nACGTACGT\nACG\nACGTACGT\n")  # short line in the middle
    with pytest.raises(ValueError) as e:
        IntervalOneHot(write_bed(tmp_path / "a.bed", [("chr1", 0, 8)]), str(fa))
    one_line_error(e, str(fa), "cannot build the index")
    assert not os.path.exists(str(fa) + ".fai")


def test_corrupt_and_stale_index(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", {"chr1": CHR1, "chr2": CHR2})
    bed = write_bed(tmp_path / "a.bed", [("chr2", 0, 16)])
    with open(fa + ".fai", "w") as f:
        f.write("chr1\t38\t5\t10\t11\nchr2\tx\t60\t10\t11\n")
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, fa)
    one_line_error(e, fa + ".fai", "line 2", "delete")
    # an index for another file: offsets land on a header line
    with open(fa + ".fai", "w") as f:
        f.write("chr1\t38\t22\t10\t11\nchr2\t16\t40\t10\t11\n")
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, fa)[0]
    one_line_error(e, fa, "does not match", "delete")


def test_index_of_a_replaced_fasta_is_refused(tmp_path):
    """An index left from an earlier FASTA: chr1 grew by exactly two lines, so the old chr2 offset
    reads whole lines of chr1's tail (no stray newline or '>' for the per-fetch check to see), and a
    re-wrapped FASTA keeps every offset but not the line length. Both are one error at construction."""
    fa = write_fasta(tmp_path / "g.fa", {"chr1": CHR1, "chr2": CHR2})
    bed = write_bed(tmp_path / "a.bed", [("chr2", 0, 16)])
    np.testing.assert_array_equal(IntervalOneHot(bed, fa)[0]["inputs"], hand_onehot(CHR2))
    write_fasta(tmp_path / "g.fa", {"chr1": CHR1 + "ACGTACGTAC" * 2, "chr2": CHR2})   # the .fai stays
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, fa)
    one_line_error(e, fa + ".fai", fa, "does not match", "'chr2'", "does not start after its >chr2 line", "delete")
    os.remove(fa + ".fai")
    np.testing.assert_array_equal(IntervalOneHot(bed, fa)[0]["inputs"], hand_onehot(CHR2))
    write_fasta(tmp_path / "g.fa", {"chr1": CHR1 + "ACGTACGTAC" * 2, "chr2": CHR2}, width=12)
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, fa)
    one_line_error(e, fa + ".fai", "does not match", "first line is not 10 bases long")
    # a header without a description and CRLF line ends match their own index
    fa2 = str(tmp_path / "h.fa")
    with open(fa2, "w", newline="") as f:
        f.write(">chr2\r\n" + CHR2[:10] + "\r\n" + CHR2[10:] + "\r\n")
    np.testing.assert_array_equal(IntervalOneHot(bed, fa2)[0]["inputs"], hand_onehot(CHR2))


@pytest.mark.parametrize("lines,line_no,parts", [
    ([("chr1", 0, 8), ("chrX", 0, 8)], 2, ["chromosome 'chrX'", "chr1, chr2"]),
    ([("chr1", 0, 8), "chr1\t5"], 2, ["at least 3", "got 2"]),
    (["# c", ("chr1", "1e3", 8)], 2, ["start '1e3'"]),
    ([("chr1", -1, 8)], 1, ["start '-1'"]),
    ([("chr1", 0, "ten")], 1, ["end 'ten'"]),
    ([("chr1", 9, 8)], 1, ["end (8) is smaller than start (9)"]),
    ([("chr1", 0, 8, "x", 0, "+"), ("chr1", 0, 8, "y", 0, "forward")], 2, ["strand 'forward'"]),
])
def test_bad_bed_lines(tmp_path, genome, lines, line_no, parts):
    bed = write_bed(tmp_path / "a.bed", lines)
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, genome, seq_len=8)
    one_line_error(e, bed, "line {}:".format(line_no), *parts)


def test_unequal_widths_without_seq_len(tmp_path, genome):
    bed = write_bed(tmp_path / "a.bed", [("chr1", 0, 8), ("chr1", 0, 8), ("chr1", 0, 9)])
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, genome)
    one_line_error(e, bed, "line 3", "width 9", "width 8 (line 1)", "seq_len")


@pytest.mark.parametrize("which", ["bed", "fasta", "gz_fasta", "empty_bed"])
def test_missing_and_unusable_files(tmp_path, genome, which):
    bed = write_bed(tmp_path / "a.bed", [("chr1", 0, 8)])
    fa = genome
    if which == "bed":
        bed = str(tmp_path / "missing.bed")
        parts = ["intervals_file", bed, "not found"]
    elif which == "fasta":
        fa = str(tmp_path / "missing.fa")
        parts = ["fasta_file", fa, "not found"]
    elif which == "gz_fasta":
        fa = str(tmp_path / "g.fa.gz")
        with gzip.open(fa, "wt") as f:
            f.write(">chr1\n" + CHR1 + "\n")
        parts = ["fasta_file", fa, "compressed"]
    else:
        bed = write_bed(tmp_path / "empty.bed", ["# nothing here"])
        parts = ["intervals_file", bed, "no intervals"]
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, fa)
    one_line_error(e, *parts)


@pytest.mark.parametrize("kwargs,parts", [
    (dict(layout="4,L,L"), ["layout", "'4,L,L'", '"(A, L)"']), (dict(layout="NAL"), ["layout"]),
    (dict(layout="(L)"), ["layout", "one A"]), (dict(layout="(A, A, L)"), ["layout"]),
    (dict(layout=""), ["layout"]), (dict(layout=4), ["layout"]),
    (dict(layout="4,L"), ["layout '4,L' is the old spelling", 'write "(A, L)"']),
    (dict(layout="L,4"), ["old spelling", 'write "(L, A)"']),
    (dict(layout="(4, L, 1)"), ["old spelling", 'write "(A, L, 1)"']),
    (dict(dtype="str"), ["dtype", "'str'"]), (dict(dtype="complex64"), ["dtype"]),
    (dict(seq_len=0), ["seq_len", "0"]), (dict(seq_len="abc"), ["seq_len"]),
    (dict(seq_len=2.5), ["seq_len"]), (dict(out_of_bounds="clip"), ["out_of_bounds", "'clip'", "'error'"]),
    (dict(use_strand="maybe"), ["use_strand"]),
])
def test_bad_arguments(tmp_path, genome, kwargs, parts):
    bed = write_bed(tmp_path / "a.bed", [("chr1", 0, 8)])
    with pytest.raises((ValueError, TypeError)) as e:
        IntervalOneHot(bed, genome, **kwargs)
    one_line_error(e, *parts)


def test_string_arguments_from_cli(tmp_path, genome):
    # `--dataloader_args k=v` may hand over strings
    bed = write_bed(tmp_path / "a.bed", [("chr1", 0, 8)])
    ds = IntervalOneHot(bed, genome, seq_len="5", use_strand="true")
    assert ds.seq_len == 5 and ds[0]["inputs"].shape == (4, 5)


# ----------------------------------------------------------------------------
# Batching

def test_fast_batches_equal_kipoi_collate(tmp_path, genome):
    rng = np.random.default_rng(1)
    lines = [("chr1" if k % 3 else "chr2", int(rng.integers(0, 14)), int(rng.integers(14, 16)),
              "r%d" % k, 0, "+-."[k % 3]) for k in range(23)]
    ds = IntervalOneHot(write_bed(tmp_path / "a.bed", lines), genome, seq_len=12, layout="(L, A, 1)")
    fast = list(ds.batch_iter(batch_size=5))
    slow = list(ds.batch_iter(batch_size=5, pin_memory=False))  # kipoi's per-sample path
    assert [len(b["inputs"]) for b in fast] == [5, 5, 5, 5, 3]
    for f, s in zip(fast, slow):
        np.testing.assert_array_equal(f["inputs"], s["inputs"])
        assert f["inputs"].dtype == s["inputs"].dtype
        for k in ("chr", "start", "end", "id", "strand"):
            np.testing.assert_array_equal(f["metadata"]["ranges"][k], s["metadata"]["ranges"][k])
    assert len(list(ds.batch_iter(batch_size=5, drop_last=True))) == 4
    np.random.seed(0)
    shuffled = list(ds.batch_iter(batch_size=7, shuffle=True))
    ids = np.concatenate([b["metadata"]["ranges"]["id"] for b in shuffled])
    assert sorted(ids) == sorted("r%d" % k for k in range(23)) and list(ids) != sorted(ids)
    allx = ds.load_all()
    for b in shuffled:  # every shuffled sample still matches its own metadata
        for x, i in zip(b["inputs"], b["metadata"]["ranges"]["id"]):
            np.testing.assert_array_equal(x, allx["inputs"][int(i[1:])])


def test_worker_processes_give_the_same_batches(tmp_path, genome):
    lines = [("chr1", k, k + 10, "r%d" % k, 0, "+-"[k % 2]) for k in range(20)]
    ds = IntervalOneHot(write_bed(tmp_path / "a.bed", lines), genome)
    ds[0]  # open the FASTA in the parent first: workers must not reuse its descriptor
    serial = list(ds.batch_iter(batch_size=6))
    parallel = list(ds.batch_iter(batch_size=6, num_workers=2))
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a["inputs"], b["inputs"])
        np.testing.assert_array_equal(a["metadata"]["ranges"]["id"], b["metadata"]["ranges"]["id"])


# ----------------------------------------------------------------------------
# Through Kipoi

def test_kipoi_dataloader_factory_and_example():
    import kipoi
    Dl = kipoi.get_dataloader_factory(DL_DIR, source="dir")
    assert Dl.__name__ == "IntervalOneHot"
    dl = Dl.init_example()
    batches = list(dl.batch_iter(batch_size=4))
    assert [b["inputs"].shape for b in batches] == [(4, 4, 100), (3, 4, 100)]
    assert Dl.get_output_schema().compatible_with_batch(batches[0])
    meta = batches[1]["metadata"]["ranges"]
    assert meta["id"].tolist() == ["chr2_start", "chr2_mid", "chr2_odd"]
    assert meta["start"].tolist() == [-30, 150, 300]  # chr2_start is padded on the left
    assert not batches[1]["inputs"][0][:, :30].any()
    assert batches[0]["inputs"][:, :, :].sum(axis=1).max() == 1


def test_direct_import_as_a_package():
    sys.path.insert(0, ROOT)
    try:
        from dataloaders.interval_onehot.dataloader import IntervalOneHot as Direct
    finally:
        sys.path.remove(ROOT)
    ex = os.path.join(DL_DIR, "example_files")
    ds = Direct(os.path.join(ex, "intervals.bed"), os.path.join(ex, "genome.fa"), seq_len=50)
    assert len(ds) == 7 and next(ds.batch_iter(batch_size=7))["inputs"].shape == (7, 4, 50)


def test_importable_class_carries_its_description(monkeypatch):
    # `kipoi predict --dataloader dataloaders.interval_onehot.dataloader.IntervalOneHot`
    # loads the class through kipoi's "py" source, which appends the working
    # directory to sys.path and imports it: the class must bring its yaml along.
    import kipoi
    from kipoi.pipeline import validate_kwargs
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    Dl = kipoi.get_dataloader_factory("dataloaders.interval_onehot.dataloader.IntervalOneHot", "py")
    assert set(Dl.args) == {"intervals_file", "fasta_file", "seq_len", "layout", "dtype",
                            "out_of_bounds", "use_strand", "exclude"}
    assert Dl.get_output_schema().metadata["ranges"].type.value == "GenomicRanges"
    ex = os.path.join(DL_DIR, "example_files")
    kw = validate_kwargs(Dl, {"intervals_file": os.path.join(ex, "intervals.bed"),
                              "fasta_file": os.path.join(ex, "genome.fa"), "seq_len": 32})
    assert next(Dl(**kw).batch_iter(batch_size=7))["inputs"].shape == (7, 4, 32)
    monkeypatch.chdir(os.path.dirname(ROOT))
    assert len(Dl.init_example()) == 7  # example paths resolve against the component dir


MODEL_PY = """
import torch


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 2, 5)

    def forward(self, x):
        return self.conv(x).mean(dim=-1)


class TinyL4(Tiny):
    # the same network, fed (N, L, 4)
    def forward(self, x):
        return super().forward(x.transpose(1, 2))
"""


def _write_model(tmp_path, dataloader, shape, module_class="Tiny"):
    import torch
    d = tmp_path / "tiny_model"
    d.mkdir()
    (d / "model.py").write_text(MODEL_PY)
    ns = {}
    exec(MODEL_PY, ns)
    torch.manual_seed(0)
    net = ns["Tiny"]()
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, str(d / "weights.pth"))
    (d / "model.yaml").write_text(textwrap.dedent("""\
        defined_as: kipoi.model.PyTorchModel
        args:
          module_file: model.py
          module_class: {cls}
          weights: weights.pth
          auto_use_cuda: false
        default_dataloader: {dl}
        info:
          authors: [{{name: test}}]
          doc: tiny conv model
        dependencies: {{pip: [pytorch]}}
        schema:
          inputs: {{name: seq, shape: "{shape}", doc: one-hot, special_type: DNASeq}}
          targets: {{shape: "(2,)", doc: two outputs}}
        """).format(dl=dataloader, shape=shape, cls=module_class))
    return d, net


def _reference(net, dl, to_4L):
    import torch
    x = np.concatenate([b["inputs"] for b in dl.batch_iter(batch_size=3)])
    with torch.no_grad():
        return net(torch.from_numpy(to_4L(x))).numpy()


def test_model_with_relative_default_dataloader_predicts_example(tmp_path):
    import kipoi
    rel = os.path.relpath(DL_DIR, str(tmp_path / "tiny_model"))
    d, net = _write_model(tmp_path, rel, "(4, None)")
    m = kipoi.get_model(str(d), source="dir")
    preds = m.pipeline.predict_example(batch_size=4)
    assert preds.shape == (7, 2)
    np.testing.assert_allclose(preds, _reference(net, m.default_dataloader.init_example(),
                                                 lambda x: x), rtol=1e-5, atol=1e-6)


def test_model_specific_dataloader_yaml_reuses_the_component(tmp_path):
    # A model needing other defaults ships a thin dataloader.yaml whose
    # defined_as points at this component's file (kipoi's `file.py::Class`).
    # Integer defaults must be quoted: kipoi 0.8.6 calls os.path.exists(default),
    # which treats an int as a file descriptor (60 -> TypeError in abspath).
    import kipoi
    d, net = _write_model(tmp_path, ".", "(60, 4)", module_class="TinyL4")
    rel = os.path.relpath(os.path.join(DL_DIR, "dataloader.py"), str(d))
    ex = os.path.relpath(os.path.join(DL_DIR, "example_files"), str(d))
    (d / "dataloader.yaml").write_text(textwrap.dedent("""\
        defined_as: {rel}::IntervalOneHot
        args:
          intervals_file: {{doc: BED, example: {ex}/intervals.bed}}
          fasta_file: {{doc: FASTA, example: {ex}/genome.fa}}
          seq_len: {{doc: length, default: "60", optional: true}}
          layout: {{doc: layout, default: "(L, A)", optional: true}}
          dtype: {{doc: dtype, optional: true}}
          out_of_bounds: {{doc: pad or drop, optional: true}}
          use_strand: {{doc: strand, optional: true}}
          exclude: {{doc: exclusion list, optional: true}}
        info: {{authors: [{{name: test}}], doc: reuse}}
        output_schema:
          inputs: {{name: seq, shape: "(4, None)", doc: one-hot, special_type: DNASeq}}
          metadata: {{ranges: {{type: GenomicRanges, doc: ranges}}}}
        """).format(rel=rel, ex=ex))
    m = kipoi.get_model(str(d), source="dir")
    assert m.default_dataloader.get_output_schema().inputs.shape == (60, 4)
    preds = m.pipeline.predict_example(batch_size=4)
    assert preds.shape == (7, 2)
    ref = _reference(net, m.default_dataloader.init_example(), lambda x: x.transpose(0, 2, 1).copy())
    np.testing.assert_allclose(preds, ref, rtol=1e-5, atol=1e-6)


def test_window_entirely_off_the_chromosome_is_not_padded_to_all_n(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", {"chr1": CHR1, "chr2": CHR2})
    bed = write_bed(tmp_path / "a.bed", [("chr2", 0, 8), ("chr2", 40, 48)])   # chr2 has 16 bp
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, fa)
    one_line_error(e, bed, "line 2", "chr2:40-48 lies entirely outside the chromosome (length 16)", "'drop'")
    with pytest.warns(UserWarning, match="dropped 1 interval"):
        ds = IntervalOneHot(bed, fa, out_of_bounds="drop")
    assert len(ds) == 1
    # a window that keeps one base of the chromosome is padded as documented
    ds = IntervalOneHot(write_bed(tmp_path / "b.bed", [("chr2", 15, 23)]), fa)
    np.testing.assert_array_equal(ds[0]["inputs"][:, 0], hand_onehot(CHR2[15])[:, 0])
    assert ds[0]["inputs"][:, 1:].sum() == 0
