"""tools.results: outputs by their schema names and column labels, the minus-strand rule
(recorded use_strand, known dataloaders, --strand), input positions on the genome, and the
before/after pairs of marginalize, ablate and space files."""
import json

import h5py
import numpy as np
import pytest

from kipoi_tanger.tools.results import Placement, Results, ResultsError
from results_files import write_dls


def _attrs(path, **attrs):
    with h5py.File(path, "a") as f:
        for k, v in attrs.items():
            f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
    return Results(path)


@pytest.fixture
def dls(tmp_path):
    path = str(tmp_path / "dls.h5")
    write_dls(path, n=4, length=40)      # rows 1 and 3 are on the minus strand
    return path


@pytest.mark.parametrize("dataloader,args,defaults,expected", [
    ("../../dataloaders/interval_onehot/dataloader.py::IntervalOneHot", {}, None, True),
    ("interval_onehot.py::IntervalOneHot", {"use_strand": False}, None, False),
    ("interval_onehot.py::IntervalOneHot", {}, {"use_strand": False}, False),      # a yaml default
    ("interval_onehot.py::IntervalOneHot", {"use_strand": "true"}, {"use_strand": False}, True),
    ("kipoiseq.dataloaders.SeqIntervalDl", {}, {"use_strand": False}, False),
    ("kipoiseq.dataloaders.SeqIntervalDl", {"use_strand": True}, None, True),
    ("kipoiseq.dataloaders.SeqIntervalDl", {}, None, None),      # the model's yaml may change the default
    ("my_loader.MyDl", {"use_strand": True}, None, None),         # unknown semantics
])
def test_minus_strand_rule_from_the_recorded_dataloader(dls, dataloader, args, defaults, expected):
    extra = {"dataloader_defaults": defaults} if defaults is not None else {}
    res = _attrs(dls, dataloader=dataloader, dataloader_args=args, **extra)
    rule, why = res.minus_strand_rule()
    assert rule is expected, why
    if expected is None:
        with pytest.raises(ResultsError, match=r"minus-strand regions .*pass --strand rc if .* --strand forward"):
            res.reverse_minus()
        assert res.reverse_minus("rc") is True and res.reverse_minus("forward") is False
    else:
        assert res.reverse_minus() is expected
        # --strand agreeing with the file is fine, contradicting it is one line
        assert res.reverse_minus("rc" if expected else "forward") is expected
        with pytest.raises(ResultsError, match="drop --strand"):
            res.reverse_minus("forward" if expected else "rc")


def test_a_subclass_of_a_known_loader_reads_as_it_does(dls):
    """basset_like's dataloader.BassetLikeDl subclasses the shipped IntervalOneHot (the run records
    the class names in dataloader_classes)."""
    res = _attrs(dls, dataloader="dataloader.BassetLikeDl",
                 dataloader_classes=["BassetLikeDl", "IntervalOneHot", "Dataset", "BaseDataLoader"],
                 dataloader_defaults={"use_strand": True, "seq_len": 200})
    assert res.minus_strand_rule()[0] is True and res.reverse_minus() is True
    assert _attrs(dls, dataloader_classes=["BassetLikeDl"]).minus_strand_rule()[0] is None


def test_no_minus_strand_region_needs_no_rule(tmp_path):
    path = str(tmp_path / "plus.h5")
    write_dls(path, n=4, length=40)
    with h5py.File(path, "a") as f:
        del f["metadata/ranges/strand"]
        f["metadata/ranges/strand"] = np.array(["+", "*", ".", "+"], dtype=object)
    assert Results(path).reverse_minus() is True
    with pytest.raises(ResultsError, match="--strand: expected rc or forward"):
        Results(path).reverse_minus("minus")


def test_placement_of_input_positions(dls):
    res = _attrs(dls, dataloader="interval_onehot.py::IntervalOneHot")
    # row 0: chr1:0-40 +, row 1: chr1:100-140 - (reverse-complemented)
    p0, p1 = res.placement(0, 40), res.placement(1, 40)
    assert p0 == Placement("chr1", 0, 40, False) and p1 == Placement("chr1", 100, 40, True)
    assert p0.base(5) == 5 and p1.base(0) == 139 and p1.base(39) == 100
    assert p0.span(10, 20) == (10, 20) and p1.span(10, 20) == (120, 130)
    np.testing.assert_array_equal(p1.base(np.arange(3)), [139, 138, 137])
    # a shorter input sits on the central bases; a longer one cannot be placed
    assert res.placement(0, 20) == Placement("chr1", 10, 20, False)
    assert res.placement(1, 20) == Placement("chr1", 110, 20, True)
    assert res.placement(0, 41) is None
    # unknown strand handling: plus-strand rows are placed, minus-strand ones only with --strand
    unknown = _attrs(dls, dataloader="mine.Dl")
    assert unknown.placement(0, 40) == p0 and unknown.placement(1, 40) is None
    assert unknown.placement(1, 40, "forward") == Placement("chr1", 100, 40, False)


def test_outputs_by_schema_name_and_column_labels(tmp_path):
    path = str(tmp_path / "p.h5")
    with h5py.File(path, "w") as f:
        f["preds/0"] = np.zeros((3, 1, 50), np.float32)
        f["preds/1"] = np.zeros((3, 2), np.float32)
        f.attrs["output_names"] = json.dumps(["profile", "counts"])
        f.attrs["column_labels"] = json.dumps({"counts": ["CTCF", "GATA1"]})
        f.attrs["explained_output"] = "1"
        f.attrs["target"] = 1
    res = Results(path)
    assert [res.output_name(d) for d in ("preds/0", "preds/1", "y_after/counts", "preds/7")] == \
        ["profile", "counts", "counts", "7"]
    assert res.column_labels("preds/1") == ["CTCF", "GATA1"] and res.column_labels("preds/0") is None
    assert res.column_names("preds/1", 2) == ["CTCF", "GATA1"] and res.column_names("preds/0", 1) == ["0"]
    assert res.explained == "counts: GATA1"
    assert res.output_datasets("preds") == ["preds/0", "preds/1"]


def _effects(path, op, after_name, after_shape, params):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["y_before/0"] = rng.normal(size=(6, 1, 40))
        f["y_before/1"] = rng.normal(size=(6, 1))
        extra = after_shape[1]
        f[f"{after_name}/0"] = f["y_before/0"][:][:, None] + np.arange(extra)[None, :, None, None]
        f[f"{after_name}/1"] = f["y_before/1"][:][:, None] + np.arange(extra)[None, :, None] * 2.0
        f.attrs["op"] = op
        f.attrs["output_names"] = json.dumps(["profile", "counts"])
        f.attrs["parameters"] = json.dumps(params)
    return Results(path)


def test_ablate_and_space_pairs(tmp_path):
    ab = _effects(str(tmp_path / "a.h5"), "ablate", "y_after", (6, 5), {"inner_op": "predict", "n": 5})
    assert ab.marginalize_pairs() == [("profile", "y_before/0", "y_after/0"), ("counts", "y_before/1", "y_after/1")]
    assert ab.effect_kind("y_before/1", "y_after/1") == "ablate"
    b, a, quantity = ab.marginalize_values("y_before/1", "y_after/1")
    np.testing.assert_allclose(a - b, 2.0 * np.mean(np.arange(5)))          # the mean over the shuffles
    assert b.shape == (6, 1) and quantity == "prediction, after: mean over 5 shuffles"
    b, a, quantity = ab.marginalize_values("y_before/0", "y_after/0")
    assert b.shape == a.shape == (6, 1) and quantity.startswith("prediction (mean over 40 positions)")

    sp = _effects(str(tmp_path / "s.h5"), "space", "y_afters", (6, 3),
                  {"inner_op": "predict", "spacing": [[0], [10], [20]]})
    assert [p[2] for p in sp.marginalize_pairs()] == ["y_afters/0", "y_afters/1"]
    assert sp.effect_kind("y_before/1", "y_afters/1") == "space"
    b, a, _ = sp.marginalize_values("y_before/1", "y_afters/1")
    assert b.shape == (6, 1) and a.shape == (6, 3, 1)
    np.testing.assert_allclose(a - b[:, None], np.broadcast_to(np.array([0.0, 2.0, 4.0])[None, :, None], a.shape))
    assert sp.spacing_labels(3) == ["0", "10", "20"] and sp.spacing_labels(2) == ["0", "1"]


def test_column_labels_file_names_tsv_columns_attributes_and_report(tmp_path, monkeypatch):
    """A model whose schema names its output columns in a labels file (Kipoi's
    targets.column_labels: labels.txt): the TSV has preds/<label> columns in the model's order,
    the HDF5 file records the labels and the dataloader's defaults, the report shows them."""
    import pandas as pd
    from kipoi_model_dirs import dl_args, make_model_dir
    from kipoi_tanger.run import run
    from kipoi_tanger.tools.report import build_report
    d = make_model_dir(tmp_path, name="lab", n_regions=12,
                       targets={"name": "probs", "shape": "(2,)", "doc": "two tasks", "column_labels": "labels.txt"})
    with open(f"{d}/labels.txt", "w") as fh:
        fh.write("CTCF\nGATA1\n")
    monkeypatch.chdir(tmp_path)                  # Kipoi reads the labels file relative to the model dir
    h5, tsv = str(tmp_path / "p.h5"), str(tmp_path / "p.tsv")
    run("predict", d, [h5, tsv], dataloader_args=dl_args(d), keep_metadata=True, verbose=False)
    table = pd.read_csv(tsv, sep="\t")
    assert list(table.columns) == [f"metadata/ranges/{k}" for k in ("chr", "start", "end", "id", "strand")] + \
        ["preds/CTCF", "preds/GATA1"]
    with h5py.File(h5, "r") as f:
        np.testing.assert_allclose(table[["preds/CTCF", "preds/GATA1"]].to_numpy(), f["preds"][:], rtol=1e-6)
    res = Results(h5)
    assert res.column_labels("preds") == ["CTCF", "GATA1"] and res.output_name("preds") == "probs"
    assert isinstance(res.attrs["dataloader_defaults"], dict)
    html = build_report(h5)
    assert "<td>probs</td><td>CTCF</td>" in html and "<td>probs</td><td>GATA1</td>" in html
