"""dataloaders/interval_onehot: exclusion lists (pybedtools + bedtools) and resizing around the centre.

The exclusion tests need the bedtools program (`make test` installs it where missing); without it
they fail with the loader's one-line message saying what to install.
"""
import gzip
import importlib.util
import os
import warnings

import numpy as np
import pytest
from cli_helpers import one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DL_DIR = os.path.join(ROOT, "dataloaders", "interval_onehot")

_spec = importlib.util.spec_from_file_location("_interval_onehot_exclude_under_test",
                                               os.path.join(DL_DIR, "dataloader.py"))
mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mod)
IntervalOneHot = mod.IntervalOneHot

LENGTHS = {"chr1": 500, "chr2": 300}


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "genome.fa"
    with open(path, "w") as f:
        for name, n in LENGTHS.items():
            seq = "".join(rng.choice(list("ACGT"), n))
            f.write(">{}\n".format(name) + "\n".join(seq[i:i + 60] for i in range(0, n, 60)) + "\n")
    return str(path)


def write(path, lines, gz=False):
    text = "\n".join("\t".join(map(str, ln)) if not isinstance(ln, str) else ln for ln in lines) + "\n"
    with (gzip.open(path, "wt") if gz else open(path, "w")) as f:
        f.write(text)
    return str(path)


def brute_force_overlap(chrom, start, end, regions):
    """Whether the window (clipped to its chromosome) shares a base with a region (half-open)."""
    s, e = max(start, 0), min(end, LENGTHS[chrom])
    return any(c == chrom and max(s, rs) < min(e, re) for c, rs, re in regions)


def load(*args, **kwargs):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = IntervalOneHot(*args, **kwargs)
    return ds, [str(w.message) for w in rec]


# ----------------------------------------------------------------------------
# exclusion

def test_exclusion_matches_brute_force_and_keeps_ids(tmp_path, genome):
    rng = np.random.default_rng(1)
    bed = []
    for k in range(80):
        chrom = "chr1" if k % 3 else "chr2"
        s = int(rng.integers(0, LENGTHS[chrom]))
        bed.append((chrom, s, s + int(rng.integers(0, 30)), "r%d" % k, 0, "+-."[k % 3]))
    regions = []
    for k in range(12):
        chrom = "chr1" if k % 2 else "chr2"
        s = int(rng.integers(0, LENGTHS[chrom] - 20))
        regions.append((chrom, s, s + int(rng.integers(1, 20))))
    lines = ["track name=blacklist", "# comment"] + [r if i % 2 else r + ("x", 0, "+") for i, r in enumerate(regions)]
    lines += [("chr2", 5, 5), ("chrUn_x", 0, 10 ** 6)]  # zero length; a contig the FASTA lacks
    excl = write(tmp_path / "exclude.bed.gz", lines, gz=True)
    intervals = write(tmp_path / "a.bed", bed)
    ds, msgs = load(intervals, genome, seq_len=40, exclude=excl)
    full = IntervalOneHot(intervals, genome, seq_len=40)
    hit = [brute_force_overlap(c, int(s), int(e), regions)
           for c, s, e in zip(full.load_batch(np.arange(len(full)))["metadata"]["ranges"]["chr"],
                              full._start, full._end)]
    assert 5 < sum(hit) < len(bed) - 5  # the draw exercises both outcomes
    ids = ds.load_batch(np.arange(len(ds)))["metadata"]["ranges"]["id"].tolist()
    assert ids == ["r%d" % k for k in range(80) if not hit[k]]
    assert ds.excluded_lines == [k + 1 for k in range(80) if hit[k]]
    assert len(msgs) == 1 and "skipped {} interval(s)".format(sum(hit)) in msgs[0] and excl in msgs[0]
    # the kept windows are the same arrays as without the exclusion list
    keep = np.flatnonzero(~np.array(hit))
    np.testing.assert_array_equal(np.concatenate([b["inputs"] for b in ds.batch_iter(batch_size=7)]),
                                  full.load_batch(keep)["inputs"])


def test_exclusion_uses_the_resized_window_and_half_open_ends(tmp_path, genome):
    # windows (seq_len 40): [100, 140), [200, 240), [300, 340), [400, 440)
    intervals = write(tmp_path / "a.bed", [("chr1", 115, 125, "touch_left"), ("chr1", 215, 225, "last_base"),
                                           ("chr1", 319, 321, "grown_into"), ("chr1", 415, 425, "zero_len")])
    excl = write(tmp_path / "x.bed", [("chr1", 90, 100), ("chr1", 140, 150),  # book-ended: no overlap
                                      ("chr1", 239, 240),                     # the window's last base
                                      ("chr1", 335, 360),                     # only the resized window
                                      ("chr1", 420, 420)])                    # covers no base
    ds, msgs = load(intervals, genome, seq_len=40, exclude=excl)
    assert ds._id.tolist() == ["touch_left", "zero_len"]
    assert ds.excluded_lines == [2, 3] and "lines 2, 3" in msgs[0]


def test_padded_windows_and_drop_combine_with_exclusion(tmp_path, genome):
    intervals = write(tmp_path / "a.bed", [("chr2", 0, 10, "left"), ("chr2", 290, 300, "right"),
                                           ("chr2", 150, 160, "mid")])
    excl = write(tmp_path / "x.bed", [("chr2", 0, 3)])
    ds, _ = load(intervals, genome, seq_len=40, exclude=excl)  # left's window [-15, 25) holds 0..3
    assert ds._id.tolist() == ["right", "mid"] and ds.excluded_lines == [1]
    ds, msgs = load(intervals, genome, seq_len=40, exclude=excl, out_of_bounds="drop")
    assert ds._id.tolist() == ["mid"] and ds.dropped_lines == [1, 2] and ds.excluded_lines == []
    assert len(msgs) == 1 and "dropped 2" in msgs[0]
    with pytest.raises(ValueError) as e:
        load(write(tmp_path / "b.bed", [("chr2", 0, 2)]), genome, seq_len=4, exclude=excl)
    one_line_error(e, "no intervals left after dropping those overlapping exclude")


def test_exclusion_through_kipoi(tmp_path):
    import kipoi
    Dl = kipoi.get_dataloader_factory(DL_DIR, source="dir")
    assert "exclude" in Dl.args and Dl.args["exclude"].optional
    kw = {k: os.path.join(DL_DIR, v) if k.endswith("_file") else v for k, v in Dl.example_kwargs.items()}
    excl = write(tmp_path / "x.bed", [("chr1", 120, 130)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = Dl(**dict(kw, exclude=excl))
    ids = np.concatenate([b["metadata"]["ranges"]["id"] for b in ds.batch_iter(batch_size=4)])
    assert ids.tolist() == ["peak2", "masked_gap", "near_end", "chr2_start", "chr2_mid", "chr2_odd"]


@pytest.mark.parametrize("lines,line_no,parts", [
    ([("chr1", 0, 8), "chr1\t5"], 2, ["at least 3"]),
    (["# c", ("chr1", "1e3", 8)], 2, ["start '1e3'"]),
    ([("chr1", 0, "x")], 1, ["end 'x'"]),
    ([("chr1", 9, 8)], 1, ["end (8) is smaller than start (9)"]),
])
def test_bad_exclusion_file_is_one_line(tmp_path, genome, lines, line_no, parts):
    excl = write(tmp_path / "x.bed", lines)
    with pytest.raises(ValueError) as e:
        IntervalOneHot(write(tmp_path / "a.bed", [("chr1", 0, 8)]), genome, exclude=excl)
    one_line_error(e, "exclude " + excl, "line {}:".format(line_no), *parts)


def test_missing_or_empty_exclusion_file(tmp_path, genome):
    bed = write(tmp_path / "a.bed", [("chr1", 0, 8)])
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, genome, exclude=str(tmp_path / "nope.bed"))
    one_line_error(e, "exclude", str(tmp_path / "nope.bed"), "not found")
    empty = write(tmp_path / "empty.bed", ["# nothing"])
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, genome, exclude=empty)
    one_line_error(e, "exclude", empty, "no regions")


def test_exclusion_on_other_chromosome_names_warns(tmp_path, genome):
    # "1" vs "chr1": nothing can be excluded, which is most likely a mistake
    bed = write(tmp_path / "a.bed", [("chr1", 0, 8)])
    ds, msgs = load(bed, genome, exclude=write(tmp_path / "x.bed", [("1", 0, 100), ("2", 0, 5)]))
    assert len(ds) == 1 and len(msgs) == 1
    assert "none of its 2 region(s)" in msgs[0] and "1, 2" in msgs[0] and "chr1, chr2" in msgs[0]


def test_missing_bedtools_is_one_line(tmp_path, genome, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    bed = write(tmp_path / "a.bed", [("chr1", 0, 8)])
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, genome, exclude=write(tmp_path / "x.bed", [("chr1", 0, 4)]))
    one_line_error(e, "exclude", "bedtools", "apt-get install bedtools")
    assert capsys.readouterr().out == ""  # no help text printed by pybedtools


def test_no_exclusion_needs_no_pybedtools(tmp_path, genome, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "pybedtools", None)  # import would fail
    ds = IntervalOneHot(write(tmp_path / "a.bed", [("chr1", 0, 8)]), genome, exclude="")
    assert len(ds) == 1 and ds.excluded_lines == []


# ----------------------------------------------------------------------------
# resizing: kipoiseq's auto_resize_len (resize_interval, anchor "center") and tangermeme agree

def test_resizing_equals_kipoiseq_for_both_parities(tmp_path, genome):
    from kipoiseq.transforms.functional import resize_interval
    from pybedtools import Interval
    cases = [(s, s + w) for s in (100, 101) for w in range(0, 9)]
    bed = write(tmp_path / "a.bed", [("chr1", s, e) for s, e in cases])
    for L in (1, 2, 5, 6, 7, 10):
        ds = IntervalOneHot(bed, genome, seq_len=L)
        for k, (s, e) in enumerate(cases):
            theirs = resize_interval(Interval("chr1", s, e), L, anchor="center")
            assert (int(ds._start[k]), int(ds._end[k])) == (theirs.start, theirs.end), (s, e, L)
            assert ds._end[k] - ds._start[k] == L
            # centred: the window's centre is within half a base of the interval's
            assert abs((ds._start[k] + ds._end[k]) / 2 - (s + e) / 2) <= 0.5


def test_window_off_the_chromosome_end_can_be_an_error(tmp_path, genome):
    bed = write(tmp_path / "a.bed", [("chr2", 100, 110), ("chr2", 280, 290, "near_end")])
    with pytest.raises(ValueError) as e:
        IntervalOneHot(bed, genome, seq_len=40, out_of_bounds="error")
    one_line_error(e, "intervals_file " + bed, "line 2:", "chr2:265-305", "length 300", "'pad'", "'drop'")
    assert len(IntervalOneHot(bed, genome, seq_len=20, out_of_bounds="error")) == 2  # 275..295 fits


def test_exclusion_is_within_tangermeme_extract_loci(tmp_path, genome):
    # tangermeme drops a locus whose window touches any 100-bp chunk holding a region: every
    # window we exclude (a shared base) it excludes too, and it excludes some more
    import pandas as pd
    from tangermeme.io import extract_loci
    rng = np.random.default_rng(5)
    loci = [("chr1", int(s), int(s) + 10) for s in rng.integers(30, 450, 60)]
    regions = [("chr1", 120, 160), ("chr1", 305, 306), ("chr1", 430, 470)]
    bed = write(tmp_path / "a.bed", [(c, s, e, "r%d" % k) for k, (c, s, e) in enumerate(loci)])
    ds, _ = load(bed, genome, seq_len=20, exclude=write(tmp_path / "x.bed", regions))
    ours = np.isin(["r%d" % k for k in range(len(loci))], ds._id, invert=True)
    _, kept = extract_loci(pd.DataFrame(loci), genome, in_window=20, n_jobs=1, return_mask=True,
                           exclusion_lists=pd.DataFrame(regions))
    theirs = ~kept.numpy()
    assert ours.sum() > 3 and not (ours & ~theirs).any() and (theirs & ~ours).any()
