"""kipoi_tanger.run.run through the Python API: every op against direct computation,
streaming/journal behaviour, kill -9 + resume, shards + merge."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from kipoi.readers import HDF5Reader

from floatcmp import assert_close
from kipoi_model_dirs import REPO, dl_args, load_inputs, load_module, make_model_dir, subprocess_env
from h5compare import file_bytes_equal, same_content
from kipoi_tanger.run import h5io
from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.marginalize import marginalize
from kipoi_tanger.predict import predict
from kipoi_tanger.product import apply_pairwise, apply_product
from kipoi_tanger.adapter.dataloading import batches as _batches
from kipoi_tanger.run import Journal, RunError, merge, run

N, L = 40, 50


class Canon(torch.nn.Module):
    """The direct-computation model: canonical (N, A, L) -> the module's own layout."""

    def __init__(self, net, to_model):
        super().__init__()
        self.net, self.to_model = net, to_model

    def forward(self, X, *args):
        return self.net(self.to_model(X), *args)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner_models")
    return {
        "la": make_model_dir(root, "rn_la", arch="TinyCNN", layout="LA"),
        "al1": make_model_dir(root, "rn_al1", arch="BassetLike", layout="AL1"),
        "fd": make_model_dir(root, "rn_fd", arch="FlattenDense", layout="AL",
                             tanger={"extra_inputs": ["alpha", "beta"]}),
        "prof": make_model_dir(root, "rn_prof", arch="ProfileNet", layout="AL",
                               targets=[{"name": "profile", "shape": "(1, 50)", "doc": "p"},
                                        {"name": "counts", "shape": "(1,)", "doc": "c"}]),
    }


def _X(d):
    return torch.as_tensor(load_inputs(d)["inputs"])


def test_predict_matches_direct_and_kipoi_layout(dirs, tmp_path):
    d = dirs["la"]
    out = str(tmp_path / "p.h5")
    res = run("predict", d, [out, str(tmp_path / "p.tsv")], dataloader_args=dl_args(d), batch_size=16,
              keep_metadata=True, keep_inputs=True, verbose=False)
    assert res.n_regions == N and res.n_batches == 1        # grouped: one op call and commit
    res = run("predict", d, str(tmp_path / "g.h5"), dataloader_args=dl_args(d), batch_size=16,
              keep_metadata=True, keep_inputs=True, verbose=False, group_regions=16)
    assert res.n_batches == 3 and file_bytes_equal(out, str(tmp_path / "g.h5"))
    net = load_module(d, "TinyCNN", seq_len=L)
    x = _X(d)
    direct = predict(net, x, batch_size=16, device="cpu")
    with HDF5Reader(out) as r:
        got = r.load_all()
    # the same batches through the run's wrapper (which may hand the module other memory layouts)
    assert_close(got["preds"], direct, rtol=1e-6, atol_rel=1e-6)
    assert np.array_equal(got["inputs"], x.numpy())
    meta = load_inputs(d)["metadata"]["ranges"]
    for k in ("chr", "start", "end", "id", "strand"):
        assert list(got["metadata"]["ranges"][k]) == list(meta[k])
    attrs = h5io.read_attrs(out)
    assert attrs["op"] == "predict" and attrs["layout"] == "(L, A)" and attrs["n_regions"] == N
    assert attrs["parameters"]["batch_size"] == 16 and attrs["kipoi_tanger_version"]
    assert not os.path.exists(out + ".partial")
    header = open(tmp_path / "p.tsv").readline().rstrip("\n").split("\t")
    assert "preds/task1" in header and "metadata/ranges/chr" in header     # the schema's column_labels


def test_predict_tuple_output_names(dirs, tmp_path):
    d = dirs["prof"]
    out = str(tmp_path / "p.h5")
    run("predict", d, out, dataloader_args=dl_args(d), verbose=False)
    net = load_module(d, "ProfileNet", seq_len=L)
    prof, counts = predict(net, _X(d), device="cpu")
    got = HDF5Reader.load(out, unflatten=False)
    assert_close(got["/preds/0"], prof, rtol=1e-6, atol_rel=1e-6)
    assert_close(got["/preds/1"], counts, rtol=1e-6, atol_rel=1e-6)


@pytest.mark.parametrize("key,arch,to_model", [
    ("la", "TinyCNN", lambda X: X.permute(0, 2, 1)),
    ("al1", "BassetLike", lambda X: X.unsqueeze(-1)),
])
def test_deeplift_shap_matches_direct(dirs, tmp_path, key, arch, to_model):
    d = dirs[key]
    out = str(tmp_path / "a.h5")
    run("deeplift-shap", d, out, dataloader_args=dl_args(d), batch_size=16, n_shuffles=3, random_state=7,
        target="1", return_references=True, verbose=False)
    raw = _X(d)
    X = raw.permute(0, 2, 1) if key == "la" else raw.squeeze(-1)
    model = Canon(load_module(d, arch, seq_len=L), to_model)
    attr, refs = deep_lift_shap(model, X, target=1, n_shuffles=3, random_state=7, batch_size=16,
                                return_references=True, device="cpu")
    got = h5io.load(out)
    assert np.allclose(got["attributions"], attr.numpy(), atol=1e-6)
    assert np.array_equal(got["references"], refs.numpy().astype(np.int8))
    assert got["convergence_deltas"].shape == (N,)
    assert np.abs(got["convergence_deltas"]).max() < 1e-4
    # the non-observed letters are zero (not hypothetical)
    assert np.all(got["attributions"][X.numpy() == 0] == 0)
    attrs = h5io.read_attrs(out)
    assert attrs["target"] == 1 and attrs["target_label"] == "task1" and attrs["parameters"]["random_state"] == 7


def test_deeplift_shap_profile_reduction(tmp_path):
    d = make_model_dir(tmp_path, "rn_red", arch="ProfileNet", layout="AL",
                       targets={"profile": {"shape": "(1, 50)", "doc": "p"}, "counts": {"shape": "(1,)", "doc": "c"}},
                       tanger={"output": "profile", "reduce": {"op": "sum", "axis": -1}})
    out = str(tmp_path / "a.h5")
    run("deeplift-shap", d, out, dataloader_args=dl_args(d), n_shuffles=2, random_state=0, hypothetical=True,
        verbose=False)
    net = load_module(d, "ProfileNet", seq_len=L)
    model = Canon(net, lambda X: X)

    class Summed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, X):
            return self.m(X)[0].sum(-1)

    X = _X(d)
    attr = deep_lift_shap(Summed(), X, n_shuffles=2, random_state=0, hypothetical=True, device="cpu")
    got = h5io.load(out)
    assert np.allclose(got["attributions"], attr.numpy(), atol=1e-6)
    assert np.abs(got["convergence_deltas"]).max() < 1e-3


def test_marginalize_matches_direct(dirs, tmp_path):
    d = dirs["la"]
    out = str(tmp_path / "m.h5")
    run("marginalize", d, out, dataloader_args=dl_args(d), motif="GATAAG", start=5, verbose=False)
    net = load_module(d, "TinyCNN", seq_len=L)
    X = _X(d).permute(0, 2, 1)
    before, after = marginalize(Canon(net, lambda X: X.permute(0, 2, 1)), X, "GATAAG", start=5, device="cpu")
    got = h5io.load(out)
    assert_close(got["y_before"], before, rtol=1e-6, atol_rel=1e-6)
    assert_close(got["y_after"], after, rtol=1e-6, atol_rel=1e-6)
    assert not np.allclose(got["y_before"], got["y_after"], rtol=1e-3, atol=1e-3)


def test_marginalize_deeplift(dirs, tmp_path):
    d = dirs["al1"]
    out = str(tmp_path / "m.h5")
    run("marginalize", d, out, dataloader_args=dl_args(d), motif="CAGCTG", inner_op="deeplift-shap",
        n_shuffles=2, random_state=3, verbose=False)
    model = Canon(load_module(d, "BassetLike", seq_len=L), lambda X: X.unsqueeze(-1))
    X = _X(d).squeeze(-1)
    before, after = marginalize(model, X, "CAGCTG", func=deep_lift_shap, n_shuffles=2, random_state=3, device="cpu")
    got = h5io.load(out)
    assert np.allclose(got["y_before"], before.numpy(), atol=1e-6)
    assert np.allclose(got["y_after"], after.numpy(), atol=1e-6)


def test_product_matches_direct(dirs, tmp_path):
    d = dirs["fd"]
    alpha = np.arange(3, dtype=np.float32)[:, None]
    beta = np.array([[1.0], [-2.0]], dtype=np.float32)
    np.save(tmp_path / "alpha.npy", alpha)
    np.save(tmp_path / "beta.npy", beta)
    net = load_module(d, "FlattenDense", seq_len=L)
    X = _X(d)
    args = [str(tmp_path / "alpha.npy"), str(tmp_path / "beta.npy")]
    out = str(tmp_path / "p.h5")
    run("product", d, out, dataloader_args=dl_args(d), args=args, batch_size=16, verbose=False)
    direct = apply_product(predict, net, X, [torch.as_tensor(alpha), torch.as_tensor(beta)], device="cpu")
    assert h5io.load(out)["preds"].shape == (N, 3, 2, 3)
    assert np.allclose(h5io.load(out)["preds"], direct.numpy(), atol=1e-6)
    # pairwise, and a named input
    out2 = str(tmp_path / "pw.h5")
    run("product", d, out2, dataloader_args=dl_args(d), args=[args[0], args[0]], pairwise=True, verbose=False)
    direct = apply_pairwise(predict, net, X, [torch.as_tensor(alpha)] * 2, device="cpu")
    assert np.allclose(h5io.load(out2)["preds"], direct.numpy(), atol=1e-6)
    out3 = str(tmp_path / "nb.h5")
    run("product", d, out3, dataloader_args=dl_args(d), args=[f"beta={args[1]}"], verbose=False)
    with torch.no_grad():
        direct = torch.stack([net(X, beta=float(b)) for b in beta[:, 0]], dim=1)
    assert np.allclose(h5io.load(out3)["preds"], direct.numpy(), atol=1e-6)
    # deeplift-shap on the product: (N, M1, M2, A, L)
    out4 = str(tmp_path / "pd.h5")
    run("product", d, out4, dataloader_args=dl_args(d), args=args, inner_op="deeplift-shap", n_shuffles=2,
        random_state=1, verbose=False)
    direct = apply_product(deep_lift_shap, net, X, [torch.as_tensor(alpha), torch.as_tensor(beta)], device="cpu",
                           additional_func_kwargs={"n_shuffles": 2, "random_state": 1})
    assert np.allclose(h5io.load(out4)["attributions"], direct.numpy(), atol=1e-6)


def test_product_replaces_dataloader_inputs(tmp_path):
    """A schema input the dataloader provides (dict inputs) can be crossed from --args instead."""
    d = make_model_dir(tmp_path, "rn_two", arch="TwoInput", layout="LA", extra="cell",
                       tanger={"extra_inputs": ["cell"]})
    cells = np.array([[1, 0, 0.5], [0, 1, 0.5]], dtype=np.float32)
    np.save(tmp_path / "cell.npy", cells)
    out = str(tmp_path / "p.h5")
    run("product", d, out, dataloader_args=dl_args(d), args=[str(tmp_path / "cell.npy")], verbose=False)
    net = load_module(d, "TwoInput", seq_len=L)
    seq = torch.as_tensor(load_inputs(d)["inputs"]["seq"])
    direct = apply_product(predict, net, seq, [torch.as_tensor(cells)], device="cpu")
    assert np.allclose(h5io.load(out)["preds"], direct.numpy(), atol=1e-6)
    # without --args for it, the dataloader's own cell input is used by predict
    run("predict", d, str(tmp_path / "q.h5"), dataloader_args=dl_args(d), verbose=False)
    cell = torch.as_tensor(load_inputs(d)["inputs"]["cell"])
    with torch.no_grad():
        assert np.allclose(h5io.load(str(tmp_path / "q.h5"))["preds"], net(seq, cell).numpy(), atol=1e-6)


def test_product_bad_args(dirs, tmp_path):
    d = dirs["fd"]
    np.save(tmp_path / "a.npy", np.zeros((3, 1), np.float32))
    np.save(tmp_path / "b.npy", np.zeros((2, 1), np.float32))
    a, b = str(tmp_path / "a.npy"), str(tmp_path / "b.npy")
    kw = dict(dataloader_args=dl_args(d), verbose=False)
    with pytest.raises(RunError, match="lengths differ"):
        run("product", d, str(tmp_path / "x.h5"), args=[a, b], pairwise=True, **kw)
    with pytest.raises(RunError, match="3 files but the model has 2 extra input"):
        run("product", d, str(tmp_path / "x.h5"), args=[a, b, a], **kw)
    with pytest.raises(RunError, match="no such file"):
        run("product", d, str(tmp_path / "x.h5"), args=[str(tmp_path / "c.npy")], **kw)
    with pytest.raises(RunError, match="'gamma' is not an extra input"):
        run("product", d, str(tmp_path / "x.h5"), args=[f"gamma={a}"], **kw)
    assert not os.listdir(tmp_path) == [] and not any(f.startswith("x.h5") for f in os.listdir(tmp_path))


def test_existing_outputs_and_journal(dirs, tmp_path):
    d = dirs["la"]
    out = str(tmp_path / "p.h5")
    kw = dict(dataloader_args=dl_args(d), verbose=False)
    run("predict", d, out, **kw)
    before = open(out, "rb").read()
    with pytest.raises(RunError, match="exists; pass --overwrite"):
        run("predict", d, out, **kw)
    assert open(out, "rb").read() == before
    run("predict", d, out, overwrite=True, batch_size=7, **kw)
    assert h5io.read_attrs(out)["parameters"]["batch_size"] == 7
    # a stale journal blocks a fresh run until --resume or --overwrite
    os.makedirs(str(tmp_path / "q.h5.partial"))
    with pytest.raises(RunError, match="interrupted run: pass --resume"):
        run("predict", d, str(tmp_path / "q.h5"), **kw)
    with pytest.raises(RunError, match="not a kipoi-tanger run journal"):
        run("predict", d, str(tmp_path / "q.h5"), resume=True, **kw)


def test_failure_before_first_batch_leaves_nothing(dirs, tmp_path):
    d = dirs["la"]
    out = str(tmp_path / "m.h5")
    with pytest.raises(ValueError):
        run("marginalize", d, out, dataloader_args=dl_args(d), motif="GATAAG", start=48, verbose=False)
    assert os.listdir(tmp_path) == []


def test_missing_output_dirs_are_created(dirs, tmp_path):
    """-o new/sub/p.h5: parent dirs are made (outputs still appear only complete); an existing
    output is still refused; a run that fails leaves no dirs behind; a file in the way is an error."""
    d = dirs["la"]
    kw = dict(dataloader_args=dl_args(d), verbose=False)
    out, tsv = str(tmp_path / "new" / "sub" / "p.h5"), str(tmp_path / "other" / "p.tsv")
    run("predict", d, [out, tsv], **kw)
    run("predict", d, str(tmp_path / "flat.h5"), **kw)
    assert file_bytes_equal(out, str(tmp_path / "flat.h5")) and os.path.getsize(tsv) > 0
    assert sorted(os.listdir(tmp_path / "new" / "sub")) == ["p.h5"] and os.listdir(tmp_path / "other") == ["p.tsv"]
    with pytest.raises(RunError, match="exists; pass --overwrite"):
        run("predict", d, out, **kw)
    # fails in the first batch (target out of range), after the dirs were made: they go again
    with pytest.raises(ValueError, match="target"):
        run("deeplift-shap", d, str(tmp_path / "fail" / "x" / "a.h5"), target=7, n_shuffles=2, **kw)
    assert not (tmp_path / "fail").exists()
    with pytest.raises(RunError, match=r"flat.h5 is not a directory"):
        run("predict", d, str(tmp_path / "flat.h5" / "q.h5"), **kw)
    merged = str(tmp_path / "m" / "n" / "merged.h5")
    s1, s2 = str(tmp_path / "s" / "1.h5"), str(tmp_path / "s" / "2.h5")
    run("predict", d, s1, shard="1/2", **kw)
    run("predict", d, s2, shard="2/2", **kw)
    merge([s1, s2], merged)
    assert file_bytes_equal(merged, str(tmp_path / "flat.h5"))


def test_sequence_dataset_attribute(dirs, tmp_path):
    """The dataset key of the sequence input is recorded and used by load_sequences: inputs/0 for list
    inputs (example_models/flatten_dense: [seq, alpha, beta]), inputs/seq for dict, inputs for an array."""
    fd = os.path.join(REPO, "example_models", "flatten_dense")
    out = str(tmp_path / "fd.h5")
    run("predict", fd, out, example=True, keep_inputs=True, verbose=False)
    attrs = h5io.read_attrs(out)
    assert attrs["sequence_input"] == "seq" and attrs["sequence_dataset"] == "inputs/0"
    raw = h5io.load(out)
    X = h5io.load_sequences(out)
    assert X.shape == (5, 4, 10) and np.array_equal(X.numpy(), raw["inputs/0"])     # layout (A, L)
    two = make_model_dir(tmp_path, "rn_two_seq", arch="TwoInput", layout="LA", extra="cell")
    out2 = str(tmp_path / "two.h5")
    run("predict", two, out2, dataloader_args=dl_args(two), keep_inputs=True, verbose=False)
    assert h5io.read_attrs(out2)["sequence_dataset"] == "inputs/seq"
    seq = load_inputs(two)["inputs"]["seq"]
    assert np.array_equal(h5io.load_sequences(out2).numpy(), seq.transpose(0, 2, 1))
    d = dirs["la"]
    out3, out4 = str(tmp_path / "la.h5"), str(tmp_path / "la_noinputs.h5")
    run("predict", d, out3, dataloader_args=dl_args(d), keep_inputs=True, verbose=False)
    run("predict", d, out4, dataloader_args=dl_args(d), verbose=False)
    assert h5io.read_attrs(out3)["sequence_dataset"] == "inputs"
    assert np.array_equal(h5io.load_sequences(out3).numpy(), _X(d).numpy().transpose(0, 2, 1))
    assert h5io.read_attrs(out4)["sequence_dataset"] == ""
    with pytest.raises(ValueError, match="run with --keep_inputs"):
        h5io.load_sequences(out4)
    # an empty shard (3 shards of 2 batches) names no dataset; merge still gives the single-run file
    kw = dict(dataloader_args=dl_args(d), keep_inputs=True, batch_size=32, verbose=False)
    shards = [str(tmp_path / f"s{i}.h5") for i in (1, 2, 3)]
    for i, s in enumerate(shards, 1):
        run("predict", d, s, shard=f"{i}/3", **kw)
    assert h5io.read_attrs(shards[0])["n_regions"] == 0
    merge(shards, str(tmp_path / "merged.h5"))
    run("predict", d, str(tmp_path / "single.h5"), **kw)
    assert file_bytes_equal(str(tmp_path / "merged.h5"), str(tmp_path / "single.h5"))


def test_parameters_record_what_affects_results(dirs, tmp_path):
    """warning_threshold reaches deep_lift_shap and the file; product records its arrays' contents."""
    d = dirs["la"]
    kw = dict(dataloader_args=dl_args(d), n_shuffles=2, random_state=1, verbose=False)
    out = str(tmp_path / "a.h5")
    with pytest.warns(RuntimeWarning, match="warning_threshold=0 "):    # the run refuses unless accepted
        run("deeplift-shap", d, out, warning_threshold=0.0, accept_large_deltas=True, **kw)
    p = h5io.read_attrs(out)["parameters"]
    assert p["warning_threshold"] == 0.0 and p["n_shuffles"] == 2 and p["random_state"] == 1
    assert h5io.read_attrs(out)["reduce"] is None
    run("marginalize", d, str(tmp_path / "m.h5"), motif="GATA", inner_op="deeplift-shap", warning_threshold=0.25,
        **kw)
    assert h5io.read_attrs(str(tmp_path / "m.h5"))["parameters"]["warning_threshold"] == 0.25
    for bad in (-1, float("nan"), "x"):
        with pytest.raises(RunError, match="--warning_threshold"):
            run("deeplift-shap", d, str(tmp_path / "b.h5"), warning_threshold=bad, **kw)
    fd = dirs["fd"]
    hashes = []
    for i, alpha in enumerate(([[0.0], [1.0]], [[0.0], [2.0]])):
        np.save(tmp_path / "alpha.npy", np.array(alpha, dtype=np.float32))
        o = str(tmp_path / f"p{i}.h5")
        run("product", fd, o, dataloader_args=dl_args(fd), args=[str(tmp_path / "alpha.npy")], verbose=False)
        hashes.append(h5io.read_attrs(o)["parameters"]["args_sha256"])
    assert len(hashes[0]) == 1 and hashes[0] != hashes[1]


def test_progress_bar_per_batch_and_honest_rate(dirs, tmp_path, monkeypatch):
    """The bar advances per forward batch inside a predict group, appears after the first commit, and
    its clock starts with the loop (the first group's time counts in the rate)."""
    import time

    import tqdm.auto
    from kipoi_tanger.ops import base as runner_mod
    seen = {}

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen["bar"], seen["updates"] = self, []

        def update(self, n=1):
            seen["updates"].append(n)
            return super().update(n)

        def close(self):
            seen["elapsed"] = self._time() - self.start_t
            seen["n"] = self.n
            return super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    call = runner_mod.Op.__call__
    first = []

    def slow_first(self, items):
        if not first:
            first.append(1)
            time.sleep(0.3)
        return call(self, items)

    monkeypatch.setattr(runner_mod.Op, "__call__", slow_first)
    d = dirs["la"]
    run("predict", d, str(tmp_path / "p.h5"), dataloader_args=dl_args(d), batch_size=4, group_regions=16)
    # group 1 (16 rows) is added at once when the bar appears; then every forward batch of 4
    assert seen["updates"] == [16, 4, 4, 4, 4, 4, 4] and seen["n"] == N
    assert seen["elapsed"] >= 0.3          # the rate N / elapsed covers the slow first group
    first.clear()
    run("marginalize", d, str(tmp_path / "m.h5"), dataloader_args=dl_args(d), batch_size=8, group_regions=16,
        motif="GATA")
    assert seen["updates"] == [16, 4, 4, 4, 4, 4, 4] and seen["n"] == N     # before + after = one region


def _kill_run(out, d, k, op="deeplift-shap", extra=", n_shuffles=2"):
    code = (f"from kipoi_tanger.run import run\n"
            f"run({op!r}, {d!r}, {out!r}, dataloader_args={dl_args(d)!r}, batch_size=8,"
            f" keep_metadata=True, verbose=False{extra})\n")
    env = subprocess_env(os.environ["HOME"])
    env["KIPOI_TANGER_KILL_AFTER_BATCHES"] = str(k)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_kill9_resume_predict_groups(dirs, tmp_path):
    """predict commits groups of batches; a kill loses at most the group in flight."""
    d = dirs["al1"]
    out = str(tmp_path / "p.h5")
    p = _kill_run(out, d, 1, op="predict", extra=", keep_inputs=True, group_regions=16")
    assert p.returncode == -9, p.stderr
    j = Journal(out + ".partial")
    j.load()
    assert [(u, r) for _, u, r in j.batches] == [(16, 16)]
    kw = dict(dataloader_args=dl_args(d), batch_size=8, keep_metadata=True, keep_inputs=True, verbose=False)
    res = run("predict", d, out, resume=True, group_regions=16, **kw)
    assert res.resumed_units == 16 and res.n_batches == 3
    full = str(tmp_path / "full.h5")
    run("predict", d, full, **kw)
    assert file_bytes_equal(full, out)


def test_kill9_resume_equals_uninterrupted(dirs, tmp_path):
    """kill -9 after 2 committed batches, then --resume: the file equals an
    uninterrupted run's byte for byte; the seed drawn by the killed run is reused."""
    d = dirs["la"]
    out = str(tmp_path / "r.h5")
    p = _kill_run(out, d, 2)
    assert p.returncode == -9, p.stderr
    assert not os.path.exists(out)
    j = Journal(out + ".partial")
    meta = j.load()
    assert len(j.batches) == 2 and j.units == 16 and isinstance(meta["random_state"], int)
    kw = dict(dataloader_args=dl_args(d), batch_size=8, keep_metadata=True, verbose=False)
    with pytest.raises(RunError, match="used different settings .*n_shuffles"):
        run("deeplift-shap", d, out, n_shuffles=3, resume=True, **kw)
    res = run("deeplift-shap", d, out, n_shuffles=2, resume=True, **kw)
    assert res.resumed_units == 16 and res.n_regions == N
    assert not os.path.exists(out + ".partial")
    seed = h5io.read_attrs(out)["parameters"]["random_state"]
    assert seed == meta["random_state"]
    full = str(tmp_path / "full.h5")
    run("deeplift-shap", d, full, n_shuffles=2, random_state=seed, **kw)
    assert file_bytes_equal(full, out)


@pytest.mark.parametrize("op,kw", [("predict", {}),
                                   ("deeplift-shap", {"n_shuffles": 2, "random_state": 5})])
def test_shards_merge_to_single_run(dirs, tmp_path, op, kw):
    d = dirs["al1"]
    common = dict(dataloader_args=dl_args(d), batch_size=6, keep_metadata=True, keep_inputs=True, verbose=False, **kw)
    single = str(tmp_path / "single.h5")
    run(op, d, single, **common)
    shards = []
    for i in (3, 1, 2):
        s = str(tmp_path / f"s{i}.h5")
        run(op, d, s, shard=f"{i}/3", **common)
        shards.append(s)
    rng = [h5io.read_attrs(s)["shard_range"] for s in sorted(shards)]
    assert rng[0][0] == 0 and rng[-1][1] == N and all(a[1] == b[0] for a, b in zip(rng, rng[1:]))
    assert all(r[0] % 6 == 0 for r in rng)             # block edges on batch edges
    merged = str(tmp_path / "merged.h5")
    merge(shards, merged)
    assert same_content(single, merged)
    assert file_bytes_equal(single, merged)
    ids = h5io.load(merged)["metadata/ranges/id"]
    assert list(ids) == [f"r{i}" for i in range(N)]
    with pytest.raises(RunError, match="missing 2/3"):
        merge([str(tmp_path / "s1.h5"), str(tmp_path / "s3.h5")], str(tmp_path / "m2.h5"))
    with pytest.raises(RunError, match="exists"):
        merge(shards, merged)
    with pytest.raises(RunError, match="not a shard"):
        merge([single], str(tmp_path / "m3.h5"))


def test_merge_refuses_mixed_settings(dirs, tmp_path):
    d = dirs["la"]
    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    run("predict", d, a, dataloader_args=dl_args(d), shard="1/2", verbose=False)
    run("predict", d, b, dataloader_args=dl_args(d), shard="2/2", batch_size=8, verbose=False)
    with pytest.raises(RunError, match="other settings .*batch_size"):
        merge([a, b], str(tmp_path / "m.h5"))


def test_stream_batches_skip_rows():
    """Iterator dataloaders (no random access): resume skips rows, even inside a batch."""

    class Stream:
        def batch_iter(self, batch_size=32, **kw):
            for s in range(0, 10, batch_size):
                e = min(10, s + batch_size)
                yield {"inputs": np.arange(s, e), "metadata": {"id": np.arange(s, e).astype(str)}}

    got = list(_batches(Stream(), "stream", 4, 0, 6, None))
    assert [u for _, u in got] == [2, 2] and np.array_equal(np.concatenate([b["inputs"] for b, _ in got]),
                                                            np.arange(6, 10))
    assert list(got[0][0]["metadata"]["id"]) == ["6", "7"]


def test_h5_writer_blocks_and_strings(tmp_path, monkeypatch):
    """write_h5 accepts any cut of the rows and gives identical bytes for identical rows."""
    n = 1003
    rows = np.random.RandomState(0).rand(n, 300).astype(np.float32)
    ids = np.array([f"id{i}" for i in range(n)])
    specs = {"x": h5io.row_spec(rows), "meta/id": h5io.row_spec(ids)}
    monkeypatch.setattr(h5io, "BLOCK_BYTES", 64 << 10)    # several blocks and chunks for a small file
    assert h5io.block_rows(specs) == 32

    def blocks(sizes):
        s = 0
        for k in sizes:
            yield {"x": rows[s:s + k], "meta/id": ids[s:s + k]}
            s += k

    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    h5io.write_h5(a, specs, n, {"op": "x", "parameters": {"k": 1}}, blocks([n]))
    h5io.write_h5(b, specs, n, {"op": "x", "parameters": {"k": 1}}, blocks([1, 500, 2, 7, 493]))
    assert file_bytes_equal(a, b)
    got = h5io.load(a)
    assert np.array_equal(got["x"], rows) and list(got["meta/id"]) == list(ids)
    assert h5io.read_attrs(a)["parameters"] == {"k": 1}
    c = str(tmp_path / "c.h5")
    h5io.write_h5(c, specs, n, {"op": "x", "parameters": {"k": 1}}, h5io.iter_blocks(a, step=77))
    assert file_bytes_equal(a, c)
    with pytest.raises(ValueError, match="got 100 rows, expected 1003"):
        h5io.write_h5(str(tmp_path / "d.h5"), specs, n, {}, blocks([100]))


@pytest.mark.parametrize("op,kw", [("predict", {}), ("deeplift-shap", {"n_shuffles": 2, "random_state": 0})])
def test_batch_size_changes_results_only_at_float_precision(tmp_path, op, kw):
    """README's guarantee, on the shipped motif_cnn: --batch_size 1 and 64 give the same results to
    float precision (CPU kernels round by batch shape), never other references or other regions."""
    m = os.path.join(REPO, "example_models", "motif_cnn")
    ex = os.path.join(m, "example_files")
    bed = tmp_path / "r.bed"
    with open(os.path.join(ex, "regions.bed")) as fh:
        bed.write_text("".join(fh.readlines()[:6]))
    got = {}
    for bs in (1, 64):
        out = str(tmp_path / f"{bs}.h5")
        run(op, m, out, dataloader_args={"intervals_file": str(bed), "fasta_file": os.path.join(ex, "genome.fa")},
            batch_size=bs, device="cpu", verbose=False, **kw)
        got[bs] = h5io.load(out)
    assert sorted(got[1]) == sorted(got[64]) and len(got[1]["attributions" if kw else "preds/1"]) == 6
    for k, a in got[1].items():
        if k == "convergence_deltas":
            # rounding residuals themselves: compared at the scale of what they complete
            scale = float(np.abs(got[64]["attributions"].sum(axis=(1, 2))).max())
            assert np.abs(a - got[64][k]).max() <= 1e-5 * scale
        else:
            assert_close(a, got[64][k], rtol=1e-5, atol_rel=1e-5, err_msg=k)
