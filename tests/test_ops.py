"""kipoi_tanger.ops: op objects, their declared parameters, the registry, nesting; a new op as one file
plus one registry line (tests/ops_toy.py) through run(), the CLI, the tanger section and kipoi-tanger test;
journals written before the op objects resume (or are refused in one line)."""
import json
import os

import numpy as np
import pytest
import torch

from h5compare import file_bytes_equal
from kipoi_model_dirs import dl_args, load_inputs, load_module, make_model_dir
from kipoi_tanger import cli, ops
from kipoi_tanger.ops.base import Op, OpError, Param
from kipoi_tanger.run import Journal, RunError, h5io, run

N, L = 40, 50


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ops_models")
    return {"la": make_model_dir(root, "op_la", arch="TinyCNN", layout="LA"),
            "fd": make_model_dir(root, "op_fd", arch="FlattenDense", layout="AL",
                                 tanger={"extra_inputs": ["alpha", "beta"]})}


# -- declarations ------------------------------------------------------------------------------

def test_registry_order_names_and_unknown_op():
    # the first four in this order; later issues append their ops (ablate, space, ism, variant-effect)
    assert ops.names()[:4] == ("predict", "deeplift-shap", "marginalize", "product")
    assert {"ablate", "space"} <= set(ops.names())
    assert [c.name for c in ops.classes()] == list(ops.names())
    with pytest.raises(OpError, match="unknown op 'predcit' \\(did you mean 'predict'\\?\\); expected one of predict"):
        ops.get("predcit")


@pytest.mark.parametrize("op,name,value,match", [
    ("deeplift-shap", "n_shuffles", 0, "--n_shuffles: expected a positive integer, got 0"),
    ("deeplift-shap", "n_shuffles", True, "--n_shuffles: expected a positive integer, got True"),
    ("deeplift-shap", "random_state", -1, "--random_state: expected a non-negative integer, got -1"),
    ("deeplift-shap", "warning_threshold", float("nan"), "--warning_threshold: expected a non-negative number"),
    ("deeplift-shap", "pair_batch_size", 0, "--pair_batch_size: expected a positive integer, got 0"),
    ("marginalize", "start", -2, "--start: expected a non-negative integer position, got -2"),
    ("product", "args", "a.npy", "--args: expected a list, got 'a.npy'"),
])
def test_params_validate_with_one_line(op, name, value, match):
    p = {q.name: q for q in ops.get(op).params}[name]
    with pytest.raises(OpError, match=match.replace("(", "\\(").replace(")", "\\)")):
        p.validate(value)
    assert isinstance(OpError("x"), RunError) and isinstance(OpError("x"), ValueError)


def test_cli_params_of_nesting_ops():
    """An op's options are its own, then its inner ops' (never required when nested)."""
    marg = {p.name: p for p in ops.get("marginalize").cli_params()}
    assert marg["motif"].required and marg["inner_op"].option == "--op"
    assert marg["inner_op"].choices == ("predict", "deeplift-shap")
    assert "return_references" not in marg                       # deeplift-shap's top-only parameter
    prod = {p.name: p for p in ops.get("product").cli_params()}
    assert prod["args"].required and not prod["motif"].required
    assert prod["marginalize_op"].option == "--marginalize_op" and prod["marginalize_op"].default == "predict"
    assert list(prod)[:3] == ["args", "pairwise", "inner_op"]


def test_from_params_builds_the_nested_tree():
    op = ops.build("product", {"inner_op": "marginalize", "marginalize_op": "deeplift-shap", "motif": "GATA",
                               "n_shuffles": 3, "args": ["a.npy"], "pairwise": True, "start": None})
    assert [type(o).__name__ for o in op.walk()] == ["Product", "Marginalize", "DeepLiftShap"]
    assert [o.top for o in op.walk()] == [True, False, False]
    assert op.values == {"args": ["a.npy"], "pairwise": True}
    assert op.inner.inner.values["n_shuffles"] == 3 and op.inner.values["motif"] == "GATA"
    assert op.view == "explain" and not op.writes_tables and not op.groupable
    plain = ops.build("marginalize", {"motif": "GATA", "n_shuffles": 7})      # n_shuffles: not used, ignored
    assert type(plain.inner).__name__ == "Predict" and plain.view == "canonical"
    assert plain.writes_tables and plain.groupable and plain.forward_passes == 2 and not plain.uses_random_state
    assert ops.build("predict", {}).view == "raw"
    with pytest.raises(OpError, match="--op: marginalize runs predict or deeplift-shap, got 'nope'"):
        ops.build("marginalize", {"motif": "GATA", "inner_op": "nope"})
    with pytest.raises(OpError, match="--op: product runs predict, deeplift-shap or marginalize, got 'x'"):
        ops.build("product", {"inner_op": "x"})
    with pytest.raises(OpError, match="--marginalize_op: marginalize runs predict or deeplift-shap, got 'dls'"):
        ops.build("product", {"inner_op": "marginalize", "marginalize_op": "dls"})
    with pytest.raises(OpError, match="unknown parameter 'n_shufles' \\(did you mean 'n_shuffles'\\?\\)"):
        ops.get("deeplift-shap")(n_shufles=2)


# -- through run() ------------------------------------------------------------------------------

def test_op_object_equals_flat_parameters(dirs, tmp_path):
    d = dirs["la"]
    kw = dict(dataloader_args=dl_args(d), batch_size=16, verbose=False)
    Marginalize, DeepLift = ops.get("marginalize"), ops.get("deeplift-shap")
    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    run(Marginalize(inner=DeepLift(n_shuffles=2, random_state=1), motif="GATA"), d, a, **kw)
    run("marginalize", d, b, inner_op="deeplift-shap", n_shuffles=2, random_state=1, motif="GATA", **kw)
    assert file_bytes_equal(a, b)
    p = h5io.read_attrs(a)["parameters"]
    assert p["inner_op"] == "deeplift-shap" and p["n_shuffles"] == 2 and p["return_references"] is False
    with pytest.raises(RunError, match="not both"):
        run(Marginalize(motif="GATA"), d, str(tmp_path / "c.h5"), motif="TTT", **kw)
    with pytest.raises(RunError, match="unknown parameter 'motif'.*predict takes none"):
        run("predict", d, str(tmp_path / "c.h5"), motif="GATA", **kw)
    with pytest.raises(RunError, match="'motif' is given twice"):
        run("marginalize", d, str(tmp_path / "c.h5"), params={"motif": "GATA"}, motif="TTT", **kw)
    assert sorted(os.listdir(tmp_path)) == ["a.h5", "b.h5"]


def test_parameters_attribute_keeps_the_keys_it_always_had(dirs, tmp_path):
    """The `parameters` attribute (and the journal fingerprint built from it) holds exactly the keys the
    runner recorded before the op objects: files and older journals stay comparable."""
    d, fd = dirs["la"], dirs["fd"]
    base = {"batch_size", "dtype", "keep_metadata", "keep_inputs", "output", "target"}
    explain = {"n_shuffles", "random_state", "hypothetical", "return_references", "warning_threshold"}
    np.save(tmp_path / "alpha.npy", np.ones((2, 1), dtype=np.float32))
    np.save(tmp_path / "beta.npy", np.ones((3, 1), dtype=np.float32))
    cases = [
        ("predict", d, {}, base),
        ("deeplift-shap", d, {"n_shuffles": 2}, base | explain),
        ("marginalize", d, {"motif": "GATA"}, base | {"inner_op", "motif", "start"}),
        ("marginalize", d, {"motif": "GATA", "inner_op": "deeplift-shap", "n_shuffles": 2},
         base | explain | {"inner_op", "motif", "start"}),
        ("product", fd, {"args": [str(tmp_path / "alpha.npy"), str(tmp_path / "beta.npy")]},
         base | {"inner_op", "pairwise", "args", "args_shapes", "args_sha256"}),
        ("product", fd, {"args": [str(tmp_path / "alpha.npy"), str(tmp_path / "beta.npy")], "inner_op": "marginalize",
                         "motif": "TTT"},
         base | {"inner_op", "marginalize_op", "motif", "start", "pairwise", "args", "args_shapes", "args_sha256"}),
    ]
    for i, (op, m, params, keys) in enumerate(cases):
        out = str(tmp_path / f"o{i}.h5")
        run(op, m, out, dataloader_args=dl_args(m), verbose=False, params=params)
        assert set(h5io.read_attrs(out)["parameters"]) == keys, (op, params)


def test_pair_batch_size_sets_the_deeplift_chunk_not_the_results(dirs, tmp_path, monkeypatch):
    import kipoi_tanger.deep_lift_shap as dls_mod
    seen = []
    original = dls_mod.deep_lift_shap

    def spy(*a, **k):
        seen.append(k["batch_size"])
        return original(*a, **k)

    monkeypatch.setattr(dls_mod, "deep_lift_shap", spy)
    d = dirs["la"]
    kw = dict(dataloader_args=dl_args(d), batch_size=8, n_shuffles=3, random_state=0, verbose=False)
    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    run("deeplift-shap", d, a, **kw)
    assert set(seen) == {8}                                  # default: the regions per batch, as before
    seen.clear()
    run("deeplift-shap", d, b, pair_batch_size=5, **kw)
    assert set(seen) == {5}
    pa, pb = h5io.read_attrs(a)["parameters"], h5io.read_attrs(b)["parameters"]
    assert "pair_batch_size" not in pa and pb["pair_batch_size"] == 5 and pa["batch_size"] == pb["batch_size"] == 8
    x, y = h5io.load(a), h5io.load(b)
    scale = float(np.abs(x["attributions"]).max())
    assert np.allclose(x["attributions"], y["attributions"], rtol=1e-5, atol=1e-6 * scale)
    assert np.allclose(x["convergence_deltas"], y["convergence_deltas"], rtol=1e-4, atol=1e-6 * scale)


# -- a new op: one file (tests/ops_toy.py) and one registry line ---------------------------------

def test_a_new_op_is_one_file_and_one_registry_line(dirs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(ops.REGISTRY, "rc-predict", "ops_toy:RcPredict")
    d = dirs["la"]
    net = load_module(d, "TinyCNN", seq_len=L)
    x = torch.as_tensor(load_inputs(d)["inputs"])          # (N, L, 4): ACGT on the last axis
    with torch.no_grad():
        rc, fwd = net(x.flip(1).flip(2)).numpy(), net(x).numpy()
    out, tsv = str(tmp_path / "rc.h5"), str(tmp_path / "rc.tsv")
    argv = ["rc-predict", d, "--dataloader_args", json.dumps(dl_args(d)), "-o", out, tsv, "-q"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    got = h5io.load(out)["preds"]
    assert np.allclose(got, rc, rtol=1e-5, atol=1e-6) and not np.allclose(got, fwd, rtol=1e-3, atol=1e-3)
    assert h5io.read_attrs(out)["op"] == "rc-predict" and h5io.read_attrs(out)["parameters"]["average"] is False
    assert os.path.getsize(tsv) > 0
    run("rc-predict", d, str(tmp_path / "avg.h5"), dataloader_args=dl_args(d), average=True, verbose=False)
    assert np.allclose(h5io.load(str(tmp_path / "avg.h5"))["preds"], (rc + fwd) / 2, rtol=1e-5, atol=1e-6)
    assert cli.main(["rc-predict", d, "--example", "--average", "--nope", "-o", str(tmp_path / "x.h5")]) == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err
    # the tanger section's ops default to every registered op, and kipoi-tanger test checks it
    from kipoi_tanger.adapter import load
    from kipoi_tanger.tools import zoo
    assert "rc-predict" in load(d).spec.ops
    rep = zoo.test(d, kipoi_test=False, n_shuffles=2)
    row = next(c for c in rep.checks if c.name == "rc-predict")
    assert row.status == "PASS" and f"{N} regions, finite; wrote preds" in row.detail, rep.format()


# -- journals written before the op objects ------------------------------------------------------

def _interrupted(d, out, monkeypatch, after=2, **kw):
    """A run that dies after `after` committed batches (in process): its journal stays."""
    calls = []
    original = Op.__call__

    def dying(self, items):
        if len(calls) == after:
            raise KeyboardInterrupt
        calls.append(1)
        return original(self, items)

    monkeypatch.setattr(Op, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        run("deeplift-shap", d, out, **kw)
    monkeypatch.setattr(Op, "__call__", original)


def _as_older_journal(path, **changes):
    """Rewrite run.json the way kipoi-tanger wrote it before journal formats: no 'format' key."""
    with open(os.path.join(path, "run.json")) as fh:
        meta = json.load(fh)
    meta.pop("format", None)
    meta.update(changes)
    with open(os.path.join(path, "run.json"), "w") as fh:
        json.dump(meta, fh, sort_keys=True, indent=1)


def test_older_journal_resumes_or_is_refused_in_one_line(dirs, tmp_path, monkeypatch):
    d = dirs["la"]
    kw = dict(dataloader_args=dl_args(d), batch_size=8, n_shuffles=2, keep_metadata=True, verbose=False)
    out = str(tmp_path / "r.h5")
    _interrupted(d, out, monkeypatch, **kw)
    j = Journal(out + ".partial")
    assert j.load()["format"] == 2 and len(j.batches) == 2
    _as_older_journal(j.path)
    assert Journal(j.path).format == 1
    # same settings: an older journal resumes and ends byte-identical to an uninterrupted run
    res = run("deeplift-shap", d, out, resume=True, **kw)
    assert res.resumed_units == 16
    seed = h5io.read_attrs(out)["parameters"]["random_state"]
    full = str(tmp_path / "full.h5")
    run("deeplift-shap", d, full, random_state=seed, **kw)
    assert file_bytes_equal(full, out)
    # an older journal whose settings this version cannot match: one line, then --overwrite works
    out2 = str(tmp_path / "s.h5")
    _interrupted(d, out2, monkeypatch, **kw)
    _as_older_journal(out2 + ".partial", fingerprint="0" * 64)
    with pytest.raises(RunError, match=r"journaled by an older kipoi-tanger \(journal format 1\).*rerun with "
                                       r"--overwrite"):
        run("deeplift-shap", d, out2, resume=True, **kw)
    _as_older_journal(out2 + ".partial", format=99)
    with pytest.raises(RunError, match=r"journaled by a newer kipoi-tanger \(journal format 99"):
        run("deeplift-shap", d, out2, resume=True, **kw)
    run("deeplift-shap", d, out2, overwrite=True, random_state=seed, **kw)
    assert file_bytes_equal(full, out2)


def test_param_is_frozen_and_op_repr():
    p = Param("x", 1, kind="int", minimum=1)
    with pytest.raises(Exception):
        p.name = "y"
    op = ops.build("marginalize", {"motif": "GATA"})
    assert repr(op) == "Marginalize(inner=Predict(), motif='GATA', start=None)"
