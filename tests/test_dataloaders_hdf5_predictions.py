"""Tests of dataloaders/hdf5_predictions (stored predictions as named inputs)."""
import importlib.util
import json
import os
import textwrap

import h5py
import numpy as np
import pytest
from cli_helpers import one_line_error

# numpy 2 removed the aliases kipoi's HDF5BatchWriter still uses.
if not hasattr(np, "string_"):
    np.string_ = np.bytes_
if not hasattr(np, "unicode_"):
    np.unicode_ = np.str_

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DL_DIR = os.path.join(ROOT, "dataloaders", "hdf5_predictions")
IO_DIR = os.path.join(ROOT, "dataloaders", "interval_onehot")

_spec = importlib.util.spec_from_file_location("_hdf5_predictions_under_test",
                                               os.path.join(DL_DIR, "dataloader.py"))
mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mod)
HDF5Predictions = mod.HDF5Predictions


def ranges(n, ids=None):
    return {"chr": np.array(["chr%d" % (1 + i % 2) for i in range(n)]),
            "start": np.arange(n, dtype=np.int64) * 10, "end": np.arange(n, dtype=np.int64) * 10 + 7,
            "id": np.array(ids if ids is not None else ["r%d" % i for i in range(n)]),
            "strand": np.array(["+-"[i % 2] for i in range(n)])}


def write_h5(path, preds, meta, batch=4, chunk_size=5):
    """Write like `kipoi predict -o x.h5 --keep_metadata` does (the real writer)."""
    from kipoi.writers import HDF5BatchWriter

    def cut(tree, sl):
        if isinstance(tree, dict):
            return {k: cut(v, sl) for k, v in tree.items()}
        if isinstance(tree, list):
            return [cut(v, sl) for v in tree]
        return tree[sl]
    n = len(next(iter(meta["ranges"].values())) if "ranges" in meta else meta["id"])
    w = HDF5BatchWriter(str(path), chunk_size=chunk_size)
    for a in range(0, n, batch):
        sl = slice(a, min(a + batch, n))
        out = {"preds": cut(preds, sl)}
        if meta is not None:
            out["metadata"] = cut(meta, sl)
        w.batch_write(out)
    w.close()
    return str(path)


@pytest.fixture
def two_files(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((13, 3)).astype(np.float32)
    b = {"profile": rng.standard_normal((13, 6, 2)), "counts": [rng.standard_normal(13),
                                                                 rng.standard_normal(13)]}
    fa = write_h5(tmp_path / "a.h5", a, {"ranges": ranges(13)})
    fb = write_h5(tmp_path / "b.h5", b, {"ranges": ranges(13)})
    return fa, fb, a, b


def test_aligned_files_give_named_inputs(two_files):
    fa, fb, a, b = two_files
    ds = HDF5Predictions(",".join([fa, fb]), names="m1, m2")
    assert len(ds) == 13
    batches = list(ds.batch_iter(batch_size=5))
    assert [len(x["inputs"]["m1"]) for x in batches] == [5, 5, 3]
    x = ds.load_all()
    np.testing.assert_array_equal(x["inputs"]["m1"], a)
    np.testing.assert_array_equal(x["inputs"]["m2"]["profile"], b["profile"])
    np.testing.assert_array_equal(x["inputs"]["m2"]["counts"]["0"], b["counts"][0])
    np.testing.assert_array_equal(x["inputs"]["m2"]["counts"]["1"], b["counts"][1])
    r = ranges(13)
    for k in r:
        np.testing.assert_array_equal(x["metadata"]["ranges"][k], r[k])
    assert x["metadata"]["ranges"]["id"].dtype.kind == "U"
    assert "targets" not in x


def test_names_from_dict_list_and_file_names(two_files):
    fa, fb, a, _ = two_files
    by_dict = HDF5Predictions({"up": fa, "down": fb})
    assert by_dict.names == ["up", "down"]
    by_list = HDF5Predictions([fa, fb], names=["x", "y"])
    assert by_list.names == ["x", "y"]
    assert HDF5Predictions([fa, fb]).names == ["a", "b"]
    np.testing.assert_array_equal(by_dict[3]["inputs"]["up"], a[3])


def test_per_sample_and_fast_batches_equal_kipoi_collate(two_files):
    fa, fb, a, b = two_files
    ds = HDF5Predictions([fa, fb])
    item = ds[7]
    np.testing.assert_array_equal(item["inputs"]["a"], a[7])
    assert item["metadata"]["ranges"]["id"] == "r7"
    fast = list(ds.batch_iter(batch_size=4))
    slow = list(ds.batch_iter(batch_size=4, pin_memory=False))  # kipoi's per-sample path

    def check(x, y):
        if isinstance(x, dict):
            assert set(x) == set(y)
            for k in x:
                check(x[k], y[k])
        else:
            np.testing.assert_array_equal(x, y)
            assert x.dtype == y.dtype or x.dtype.kind == y.dtype.kind == "U"
    for f, s in zip(fast, slow):
        check(f, s)


@pytest.mark.parametrize("block_bytes", [1, 2000, 1 << 24])
def test_block_reads_give_the_same_batches(two_files, monkeypatch, block_bytes):
    # in-order iteration reads blocks of rows and slices batches out of them
    fa, fb, a, b = two_files
    monkeypatch.setattr(mod, "_BLOCK_BYTES", block_bytes)
    ds = HDF5Predictions([fa, fb])
    for drop_last in (False, True):
        got = list(ds.batch_iter(batch_size=3, drop_last=drop_last))
        assert [len(x["inputs"]["a"]) for x in got] == [3, 3, 3, 3] + ([] if drop_last else [1])
        rows = 12 if drop_last else 13
        np.testing.assert_array_equal(np.concatenate([x["inputs"]["a"] for x in got]), a[:rows])
        np.testing.assert_array_equal(
            np.concatenate([x["inputs"]["b"]["counts"]["1"] for x in got]), b["counts"][1][:rows])
        ids = np.concatenate([x["metadata"]["ranges"]["id"] for x in got])
        assert ids.tolist() == ["r%d" % i for i in range(rows)]


def test_shuffled_batches_stay_aligned(two_files):
    fa, fb, a, b = two_files
    ds = HDF5Predictions([fa, fb])
    np.random.seed(1)
    seen = []
    for batch in ds.batch_iter(batch_size=4, shuffle=True):
        rows = [int(i[1:]) for i in batch["metadata"]["ranges"]["id"]]
        seen += rows
        np.testing.assert_array_equal(batch["inputs"]["a"], a[rows])
        np.testing.assert_array_equal(batch["inputs"]["b"]["profile"], b["profile"][rows])
    assert sorted(seen) == list(range(13)) and seen != sorted(seen)


def test_worker_processes(two_files):
    fa, fb, a, _ = two_files
    ds = HDF5Predictions([fa, fb])
    ds[0]  # files opened in the parent first: workers must reopen them
    got = np.concatenate([x["inputs"]["a"] for x in ds.batch_iter(batch_size=3, num_workers=2)])
    np.testing.assert_array_equal(got, a)


def test_targets_file_and_sequence_table_metadata(tmp_path):
    # metadata/id (a sequence-table model's output) works as the id too
    meta = {"id": np.array(["s%d" % i for i in range(6)])}
    p = write_h5(tmp_path / "p.h5", np.arange(12.).reshape(6, 2), meta)
    t = write_h5(tmp_path / "t.h5", np.arange(6) % 2, meta)
    ds = HDF5Predictions(p, names="gru", targets_file=t)
    x = ds.load_all()
    np.testing.assert_array_equal(x["targets"], np.arange(6) % 2)
    np.testing.assert_array_equal(x["inputs"]["gru"], np.arange(12.).reshape(6, 2))
    assert x["metadata"]["id"].tolist() == ["s%d" % i for i in range(6)]


def test_mismatching_ids_name_file_and_first_row(tmp_path):
    fa = write_h5(tmp_path / "a.h5", np.zeros((9, 2)), {"ranges": ranges(9)})
    ids = ["r%d" % i for i in range(9)]
    ids[6], ids[7] = ids[7], ids[6]
    fb = write_h5(tmp_path / "b.h5", np.zeros((9, 2)), {"ranges": ranges(9, ids)})
    with pytest.raises(ValueError) as e:
        HDF5Predictions([fa, fb])
    one_line_error(e, fb, "row 6", "'r7'", "'r6'", fa)
    with pytest.raises(ValueError) as e:
        HDF5Predictions(fa, targets_file=fb)
    one_line_error(e, "targets_file", fb, "row 6")


def test_mismatching_lengths_name_file_and_first_row(tmp_path):
    fa = write_h5(tmp_path / "a.h5", np.zeros((9, 2)), {"ranges": ranges(9)})
    fb = write_h5(tmp_path / "b.h5", np.zeros((7, 2)), {"ranges": ranges(7)})
    with pytest.raises(ValueError) as e:
        HDF5Predictions([fa, fb])
    one_line_error(e, fb, "7 rows", fa, "has 9", "row 7", "'r7'")


def test_id_comparison_is_chunked(tmp_path, monkeypatch):
    monkeypatch.setattr(mod, "_ALIGN_CHUNK", 4)
    fa = write_h5(tmp_path / "a.h5", np.zeros((11, 1)), {"ranges": ranges(11)})
    ids = ["r%d" % i for i in range(11)]
    ids[9] = "other"
    fb = write_h5(tmp_path / "b.h5", np.zeros((11, 1)), {"ranges": ranges(11, ids)})
    with pytest.raises(ValueError) as e:
        HDF5Predictions([fa, fb])
    one_line_error(e, "row 9", "'other'")


def test_bad_files(tmp_path):
    good = write_h5(tmp_path / "good.h5", np.zeros((4, 2)), {"ranges": ranges(4)})
    missing = str(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    no_meta = str(tmp_path / "no_meta.h5")
    with h5py.File(no_meta, "w") as f:
        f["preds"] = np.zeros((4, 2))
    no_preds = str(tmp_path / "no_preds.h5")
    with h5py.File(no_preds, "w") as f:
        f["inputs"] = np.zeros((4, 2))
        f["metadata/ranges/id"] = np.array([b"a", b"b", b"c", b"d"])
    short = str(tmp_path / "short.h5")
    with h5py.File(short, "w") as f:
        f["preds/x"] = np.zeros((3, 2))
        f["metadata/ranges/id"] = np.array([b"a", b"b", b"c", b"d"])
    cases = [(missing, ["files", missing, "not found"]), (str(text), ["files", str(text), "not an HDF5"]),
             (no_meta, [no_meta, "metadata/ranges/id", "--keep_metadata"]),
             (no_preds, [no_preds, "'preds'", "['inputs', 'metadata']"]),
             (short, [short, "preds/x has 3 rows", "has 4"])]
    for path, parts in cases:
        with pytest.raises(ValueError) as e:
            HDF5Predictions([good, path])
        one_line_error(e, *parts)
    with pytest.raises(ValueError) as e:
        HDF5Predictions(good, targets_file=missing)
    one_line_error(e, "targets_file", missing)


@pytest.mark.parametrize("kwargs,parts", [
    (dict(names="x,y,z"), ["names", "3 names for 2 files"]),
    (dict(names="x,x"), ["names", "'x'", "more than one"]),
    (dict(names="x,a/b"), ["names", "'a/b'"]),
    (dict(names="x,"), ["names", "non-empty"]),
])
def test_bad_names(tmp_path, kwargs, parts):
    fa = write_h5(tmp_path / "a.h5", np.zeros((3, 1)), {"ranges": ranges(3)})
    with pytest.raises(ValueError) as e:
        HDF5Predictions([fa, fa], **kwargs)
    one_line_error(e, *parts)


def test_same_file_names_need_names_and_dict_excludes_names(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    fa = write_h5(tmp_path / "x" / "m.h5", np.zeros((3, 1)), {"ranges": ranges(3)})
    fb = write_h5(tmp_path / "y" / "m.h5", np.zeros((3, 1)), {"ranges": ranges(3)})
    with pytest.raises(ValueError) as e:
        HDF5Predictions([fa, fb])
    one_line_error(e, "names", "'m'")
    with pytest.raises(ValueError) as e:
        HDF5Predictions({"a": fa}, names="b")
    one_line_error(e, "names", "not both")
    with pytest.raises(TypeError):
        HDF5Predictions(3)


def test_kipoi_dataloader_factory_and_example():
    import kipoi
    Dl = kipoi.get_dataloader_factory(DL_DIR, source="dir")
    dl = Dl.init_example()
    b = next(dl.batch_iter(batch_size=4))
    assert b["inputs"]["model1"].shape == (4, 2) and b["inputs"]["model2"].shape == (4, 3)
    assert b["metadata"]["ranges"]["id"].tolist() == ["r0", "r1", "r2", "r3"]
    assert Dl.get_output_schema().compatible_with_batch(b)
    # what `kipoi predict --dataloader_args '{"files": {...}}'` hands over
    from kipoi_utils import parse_json_file_str_or_arglist
    ex = os.path.join(DL_DIR, "example_files")
    kw = parse_json_file_str_or_arglist([json.dumps({"files": {
        "up": os.path.join(ex, "model1.h5"), "down": os.path.join(ex, "model2.h5")}})])
    assert sorted(Dl(**kw)[0]["inputs"]) == ["down", "up"]
    kw = parse_json_file_str_or_arglist(["files=%s,%s" % (os.path.join(ex, "model1.h5"),
                                                          os.path.join(ex, "model2.h5")), "names=u,d"])
    assert sorted(Dl(**kw)[0]["inputs"]) == ["d", "u"]


def test_plain_import_works_as_kipoi_dataloader(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dl = HDF5Predictions.init_example()
    assert dl.names == ["model1", "model2"] and len(dl) == 10
    assert set(HDF5Predictions.get_output_schema().inputs) == {"model1", "model2"}


COMPOSITE_PY = """
import torch


class Upstream(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 3, 5)

    def forward(self, x):
        return self.conv(x).mean(dim=-1)


class Combine(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(6, 1)

    def forward(self, up1, up2):
        return self.lin(torch.cat([up1, up2], dim=1))
"""


def _model_dir(path, cls, dl, inputs, targets):
    import torch
    path.mkdir()
    (path / "model.py").write_text(COMPOSITE_PY)
    ns = {}
    exec(COMPOSITE_PY, ns)
    torch.manual_seed(len(cls))
    net = ns[cls]()
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, str(path / "weights.pth"))
    (path / "model.yaml").write_text(textwrap.dedent("""\
        defined_as: kipoi.model.PyTorchModel
        args: {{module_file: model.py, module_class: {cls}, weights: weights.pth, auto_use_cuda: false}}
        default_dataloader: {dl}
        info: {{authors: [{{name: test}}], doc: composite test}}
        dependencies: {{pip: [pytorch]}}
        schema:
          inputs: {inputs}
          targets: {targets}
        """).format(cls=cls, dl=dl, inputs=inputs, targets=targets))
    return net


def test_composite_model_from_stored_predictions(tmp_path):
    """Two runs of an upstream model write HDF5 (as `kipoi predict -o --keep_metadata`
    would); a downstream model consumes them through this loader by relative path."""
    import kipoi
    import torch
    up = _model_dir(tmp_path / "up", "Upstream", os.path.relpath(IO_DIR, str(tmp_path / "up")),
                    '{shape: "(4, None)", doc: one-hot}', '{shape: "(3,)", doc: three}')
    m_up = kipoi.get_model(str(tmp_path / "up"), source="dir")
    ex = os.path.join(IO_DIR, "example_files")
    outs = []
    for k, seq_len in enumerate((50, 80)):
        out = str(tmp_path / ("up%d.h5" % k))
        m_up.pipeline.predict_to_file(out, {"intervals_file": os.path.join(ex, "intervals.bed"),
                                            "fasta_file": os.path.join(ex, "genome.fa"),
                                            "seq_len": seq_len}, batch_size=3, keep_metadata=True)
        outs.append(out)
    down = _model_dir(tmp_path / "down", "Combine", os.path.relpath(DL_DIR, str(tmp_path / "down")),
                      '{up1: {shape: "(3,)", doc: a}, up2: {shape: "(3,)", doc: b}}',
                      '{shape: "(1,)", doc: one}')
    m_down = kipoi.get_model(str(tmp_path / "down"), source="dir")
    preds = m_down.pipeline.predict({"files": {"up1": outs[0], "up2": outs[1]}}, batch_size=4)
    dl_cls = kipoi.get_dataloader_factory(IO_DIR, source="dir")
    with torch.no_grad():
        x = [torch.from_numpy(dl_cls(os.path.join(ex, "intervals.bed"), os.path.join(ex, "genome.fa"),
                                     seq_len=L).load_all()["inputs"]) for L in (50, 80)]
        ref = down(up(x[0]), up(x[1])).numpy()
    assert preds.shape == (7, 1)
    np.testing.assert_allclose(preds, ref, rtol=1e-5, atol=1e-6)


def test_non_ascii_and_fixed_length_ids(tmp_path):
    ids = ["pé%d" % i for i in range(5)]
    fa = write_h5(tmp_path / "a.h5", np.arange(5.), {"id": np.array(ids)})
    fb = str(tmp_path / "b.h5")  # fixed-length bytes ids, as other writers store them
    with h5py.File(fb, "w") as f:
        f["preds"] = np.arange(5.) * 2
        f["metadata/id"] = np.array([i.encode() for i in ids])
    x = HDF5Predictions([fa, fb]).load_all()
    assert x["metadata"]["id"].tolist() == ids
    np.testing.assert_array_equal(x["inputs"]["b"], np.arange(5.) * 2)
