"""kipoi_tanger ops on Kipoi models of every framework (kipoi_tanger/adapter/backends.py).

Fixtures in the zoo's own formats (tests/zoo_fixtures.py): DeepBind-shaped ``type: keras`` (arch
JSON + weights + custom_objects, SeqIntervalDl ``auto_resize_len: 101``), pwm_HOCOMOCO-shaped
(whole-model HDF5, schema ``(None, 4)``), a reverse-complement Lambda variant, a two-input Keras
model with a dict schema, ``type: sklearn`` on k-mer features, a custom ``model.MyModel`` and a
``kipoi.model.TensorFlow2Model`` SavedModel that only takes float64. Oracles: each framework's own
predict on windows encoded here from the FASTA (not through the dataloaders), Kipoi's own
``predict_on_batch`` on the dataloader's batch, and the same networks written by hand in torch
for DeepLIFT/SHAP on the converted Keras models.
"""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import zoo_fixtures as zf
from h5compare import file_bytes_equal
from kipoi_model_dirs import subprocess_env

from kipoi_tanger.adapter import AdapterError, load
from kipoi_tanger.cli import main
from kipoi_tanger.run import merge, run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def keras():
    return zf.keras_or_skip()


@pytest.fixture(scope="module")
def dirs(keras, tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_ops")
    return {"deepbind": zf.make_deepbind_dir(root, keras),
            "deepbind_rc": zf.make_deepbind_dir(root, keras, name="deepbind_rc", lambda_layer=True),
            "pwm": zf.make_pwm_dir(root, keras),
            "seq_cell": zf.make_seq_cell_dir(root, keras),
            "sklearn": zf.make_sklearn_dir(root),
            "custom": zf.make_custom_dir(root),
            "tf2": zf.make_tf2_dir(root)}


@pytest.fixture(scope="module")
def targets(dirs):
    """Each dir loaded once (a Keras load costs a TensorFlow graph)."""
    cache = {}

    def get(kind):
        if kind not in cache:
            cache[kind] = load(dirs[kind])
        return cache[kind]
    return get


read_regions, one_hot = zf.read_regions, zf.one_hot   # oracle inputs, independent of the dataloaders


def pwm_score(X):
    """The custom model's and pwm_like's function, in numpy: best GATA log-odds on either strand."""
    fwd, rev = zf.log_odds()
    w = np.lib.stride_tricks.sliding_window_view(X.astype(np.float64), (8, 4), axis=(1, 2))[:, :, 0]
    return np.maximum(np.einsum("nlka,ka->nl", w, fwd).max(1), np.einsum("nlka,ka->nl", w, rev).max(1))[:, None]


def own_predict(kind, d, keras, X=None, cells=None):
    """The framework's own prediction for the example regions (or for one-hot ``X``)."""
    if kind == "sklearn":
        import joblib
        est = joblib.load(os.path.join(d, "model.pkl"))
        return est.predict_proba(np.stack([zf.kmer_features(s) for s in read_regions(d)]))
    resize = {"deepbind": 101, "deepbind_rc": 101, "custom": 50, "tf2": 50}.get(kind)
    X = one_hot(read_regions(d, resize)) if X is None else X
    if kind == "deepbind":
        return zf.deepbind_keras(keras).predict(X, verbose=0)
    if kind == "deepbind_rc":
        return zf.deepbind_keras(keras, lambda_layer=True).predict(X, verbose=0)
    if kind == "pwm":
        return zf.pwm_keras(keras).predict(X, verbose=0)
    if kind == "custom":
        return pwm_score(X)
    if kind == "tf2":
        import tensorflow as tf
        return tf.saved_model.load(os.path.join(d, "sdm"))(X.astype(np.float64)).numpy()
    if kind == "seq_cell":
        cells = zf.cell_features(read_regions(d)) if cells is None else cells
        return zf.seq_cell_keras(keras).predict({"seq": X, "cell": cells}, verbose=0)
    raise ValueError(kind)


def _cli(args, capsys):
    capsys.readouterr()
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


# -- forward-only ops --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["deepbind", "pwm", "deepbind_rc", "seq_cell", "sklearn", "custom", "tf2"])
def test_predict_is_the_frameworks_own(kind, dirs, targets, keras, tmp_path):
    """run('predict') on every framework writes exactly what Kipoi's predict_on_batch gives for the
    dataloader's batches, and what the framework predicts for windows encoded independently."""
    d = dirs[kind]
    out = str(tmp_path / "p.h5")
    run("predict", targets(kind), out, dataloader_args=zf.example_dl_args(d), batch_size=5, verbose=False)
    with h5py.File(out, "r") as f:
        preds = f["preds"][:]
    m = targets(kind).kmodel                                 # what kipoi.get_model returned
    x = m.default_dataloader(**zf.example_dl_args(d)).load_all()["inputs"]
    rows = lambda i: {k: v[i:i + 5] for k, v in x.items()} if isinstance(x, dict) else x[i:i + 5]  # noqa: E731
    kipoi_y = np.concatenate([m.predict_on_batch(rows(i)) for i in range(0, len(preds), 5)])
    assert preds.dtype == kipoi_y.dtype and preds.shape == kipoi_y.shape
    np.testing.assert_array_equal(preds, kipoi_y)           # what Kipoi gives for the same batches, bit for bit
    ref = own_predict(kind, d, keras)
    np.testing.assert_allclose(preds, ref, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(ref).max())))


def test_cli_marginalize_keras(dirs, keras, tmp_path, capsys):
    """kipoi-tanger marginalize on the DeepBind-shaped model: before = Keras on the windows, after =
    Keras on the windows with GATAAG written at L // 2 - 3 (tangermeme's centring)."""
    d = dirs["deepbind"]
    out = str(tmp_path / "m.h5")
    rc, _, err = _cli(["marginalize", d, "--dataloader_args", json.dumps(zf.example_dl_args(d)), "--motif", "GATAAG",
                       "-o", out, "-q", "--batch_size", "7"], capsys)
    assert rc == 0, err
    X = one_hot(read_regions(d, 101))
    Xm = X.copy()
    Xm[:, 101 // 2 - 3:101 // 2 + 3] = one_hot(["GATAAG"])[0]
    with h5py.File(out, "r") as f:
        before, after = f["y_before"][:], f["y_after"][:]
        assert f.attrs["op"] == "marginalize"
    np.testing.assert_allclose(before, own_predict("deepbind", d, keras, X), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(after, own_predict("deepbind", d, keras, Xm), rtol=1e-5, atol=1e-7)
    assert np.abs(after - before).max() > 1e-3


@pytest.mark.parametrize("kind", ["pwm", "tf2", "custom"])
def test_marginalize_any_length_float64_and_custom(kind, dirs, targets, keras, tmp_path):
    """run('marginalize'): pwm_like (schema (None, 4)); the TF2 SavedModel, whose only signature takes
    float64 (what SeqIntervalDl gives), so its inputs must reach it in the dataloader's dtype; custom."""
    d = dirs[kind]
    out = str(tmp_path / "m.h5")
    run("marginalize", targets(kind), out, dataloader_args=zf.example_dl_args(d), motif="GATAAG", verbose=False)
    L = {"pwm": 60, "tf2": 50, "custom": 50}[kind]
    X = one_hot(read_regions(d, None if kind == "pwm" else L))
    Xm = X.copy()
    Xm[:, L // 2 - 3:L // 2 + 3] = one_hot(["GATAAG"])[0]
    with h5py.File(out, "r") as f:
        before, after = f["y_before"][:], f["y_after"][:]
    for got, x in ((before, X), (after, Xm)):
        ref = own_predict(kind, d, keras, x)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(ref).max())))
    if kind != "tf2":
        assert np.allclose(after[:, 0], pwm_score(Xm)[:, 0], atol=1e-4)   # the inserted site is the best match


def test_cli_product_dict_inputs(dirs, keras, tmp_path, capsys):
    """kipoi-tanger product on a two-input Keras model (dict schema): every window with every row of
    cells.npy, passed to Keras as {'seq': ..., 'cell': ...}; --pairwise too."""
    d = dirs["seq_cell"]
    cells = np.array([[0.3, 0, 1], [0.6, 1, 1], [0.5, 0, 0]], np.float32)
    np.save(tmp_path / "cells.npy", cells)
    out = str(tmp_path / "prod.h5")
    rc, _, err = _cli(["product", d, "--example", "--args", str(tmp_path / "cells.npy"), "-o", out, "-q"], capsys)
    assert rc == 0, err
    with h5py.File(out, "r") as f:
        got = f["preds"][:]
    X = one_hot(read_regions(d))
    assert got.shape == (len(X), 3, 2)
    for j in range(3):
        ref = own_predict("seq_cell", d, keras, X, np.repeat(cells[j:j + 1], len(X), 0))
        np.testing.assert_allclose(got[:, j], ref, rtol=1e-5, atol=1e-7)


# -- DeepLIFT/SHAP on converted Keras models -------------------------------------------------------

@pytest.mark.parametrize("kind", ["deepbind", "pwm"])
def test_deeplift_on_converted_keras_equals_hand_torch(kind, dirs, targets, keras, tmp_path):
    """deeplift-shap on a type: keras model runs on its torch conversion (checked against Keras on the
    first batch): attributions equal those of the same network written in torch by hand, for the same
    references, and add up to Keras' own f(x) - mean f(references)."""
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    d, t = dirs[kind], targets(kind)
    out = str(tmp_path / "a.h5")
    run("deeplift-shap", t, out, dataloader_args=zf.example_dl_args(d), n_shuffles=3, random_state=0,
        return_references=True, batch_size=8, verbose=False)
    with h5py.File(out, "r") as f:
        attr, refs, deltas = f["attributions"][:], f["references"][:].astype(np.float32), f["convergence_deltas"][:]
    check = t.backend.conversion_check
    assert check["ok"] and check["max_abs_diff"] <= check["tolerance"] and check["n_examples"] >= 8
    L = {"deepbind": 101, "pwm": 60}[kind]
    model = zf.deepbind_keras(keras) if kind == "deepbind" else zf.pwm_keras(keras)
    hand = (zf.HandDeepBind(model) if kind == "deepbind" else zf.HandPWM(model, L)).eval()
    X = one_hot(read_regions(d, 101 if kind == "deepbind" else None))
    Xt = torch.from_numpy(X).transpose(1, 2).contiguous()
    expect = deep_lift_shap(hand, Xt, references=torch.from_numpy(refs), device="cpu").numpy()
    scale = float(np.abs(expect).max())
    assert scale > 0
    np.testing.assert_allclose(attr, expect, rtol=1e-4, atol=1e-5 * scale)
    # completeness against Keras itself
    f_x = own_predict(kind, d, keras, X)[:, 0]
    f_r = own_predict(kind, d, keras, refs.transpose(0, 1, 3, 2).reshape(-1, L, 4))[:, 0].reshape(len(X), -1)
    total = attr.astype(np.float64).sum((1, 2))
    np.testing.assert_allclose(total, f_x - f_r.mean(1), rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(f_x).max())))
    assert np.abs(deltas).max() < 1e-4


def test_conversion_check_refuses_a_wrong_conversion(dirs, targets, tmp_path):
    """A conversion that drifts from Keras is refused on the first batch, in one line."""
    t = targets("deepbind")
    bias = t.backend.graph.layers["hidden"].linear.bias
    with torch.no_grad():
        bias += 1e-2
    try:
        with pytest.raises(ValueError, match="torch conversion differs from the Keras model") as e:
            run("deeplift-shap", t, str(tmp_path / "a.h5"), dataloader_args=zf.example_dl_args(dirs["deepbind"]),
                n_shuffles=2, random_state=0, verbose=False)
        assert "\n" not in str(e.value) and "forward-only ops still work" in str(e.value)
    finally:
        with torch.no_grad():
            bias -= 1e-2
    assert not os.path.exists(tmp_path / "a.h5")


def test_gradients_through_predict_on_batch_are_refused(targets):
    """Python API: a shim around predict_on_batch never gives silent zero gradients."""
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    w = targets("custom").wrap(canonical=True, select=True)
    X = torch.from_numpy(one_hot(["GATAAG" + "ACGT" * 11])).transpose(1, 2).contiguous()
    with pytest.raises(AdapterError, match="gives no gradients"):
        deep_lift_shap(w, X, n_shuffles=2, random_state=0, device="cpu")


# -- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,args,match", [
    ("sklearn", ["deeplift-shap"], r"deeplift-shap needs a torch graph, and this is a sklearn \(scikit-learn .*"
                                   r"sklearn models have no torch graph; forward-only ops"),
    ("tf2", ["deeplift-shap"], r"tensorflow2 \(TensorFlow .*\) model: tensorflow2 models have no torch graph"),
    ("custom", ["deeplift-shap"], r"custom \(model\.MyModel\) model"),
    ("deepbind_rc", ["deeplift-shap"], r"this Keras model cannot be converted: layer 'revcomp' \(Lambda\) has no "
                                       r"faithful torch equivalent; forward-only ops \(predict"),
    ("pwm", ["predict", "--dtype", "bfloat16"], r"dtype bfloat16: model .* \(keras\) runs through its own "
                                                r"predict_on_batch .*leave --dtype unset"),
])
def test_refusals_are_one_line(kind, args, match, dirs, tmp_path, capsys):
    d = dirs[kind]
    out = str(tmp_path / "x.h5")
    rc, _, err = _cli([args[0], d, "--dataloader_args", json.dumps(zf.example_dl_args(d)), "-o", out, "-q"]
                      + args[1:], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    import re
    assert re.search(match, err), err
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")


def test_predict_on_batch_runs_on_the_cpu_only(targets):
    """The shim refuses to move off the CPU (a CUDA or MPS host's --device cuda reaches it; the CLI
    refuses devices this torch lacks before) and runs at the dataloader's precision."""
    w = targets("pwm").wrap(canonical=False)
    for device in ("meta", torch.device("meta")):
        with pytest.raises(AdapterError, match=r"^device meta: model .* \(keras\) runs through its own "
                                               r"predict_on_batch on the CPU; pass --device cpu"):
            w.to(device)
    with pytest.raises(AdapterError, match="dtype float16"):
        w.half()
    w.to("cpu")


def test_sklearn_pickle_of_another_version_is_refused(dirs, tmp_path, capsys):
    """type: sklearn with a pickle written by another scikit-learn: kipoi-tanger and plain Kipoi refuse it
    in one line naming the file and both versions (scikit-learn itself only warns)."""
    import joblib
    import kipoi
    import sklearn
    d = str(tmp_path / "old_sklearn")
    shutil.copytree(dirs["sklearn"], d)
    zf.dump_pickle_as_version(joblib.load(os.path.join(d, "model.pkl")), os.path.join(d, "model.pkl"), "0.22.1")
    rc, _, err = _cli(["predict", d, "--dataloader_args", json.dumps(zf.example_dl_args(d)), "-o",
                       str(tmp_path / "p.h5"), "-q"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "args.pkl_file: model.pkl holds a LogisticRegression pickled by scikit-learn 0.22.1" in err
    assert f"this is scikit-learn {sklearn.__version__}" in err
    with pytest.raises(ValueError, match="pickled by scikit-learn 0.22.1"):
        kipoi.get_model(d, source="dir", with_dataloader=False)
    assert isinstance(kipoi.get_model(dirs["sklearn"], source="dir", with_dataloader=False),
                      __import__("kipoi_tanger").SklearnModel)
    # bad predict_method: one line naming the field (Kipoi asserts)
    import yaml
    spec = yaml.safe_load(open(os.path.join(d, "model.yaml")))
    spec["args"] = {"pkl_file": "model.pkl", "predict_method": "predict_probability"}
    yaml.safe_dump(spec, open(os.path.join(d, "model.yaml"), "w"))
    with pytest.raises(ValueError, match=r"args\.predict_method: expected one of predict, predict_proba"):
        kipoi.get_model(d, source="dir", with_dataloader=False)


def test_missing_framework_is_one_line_naming_the_package(dirs, tmp_path, capsys, monkeypatch):
    for mod in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    d = dirs["sklearn"]
    rc, _, err = _cli(["predict", d, "--dataloader_args", json.dumps(zf.example_dl_args(d)), "-o",
                       str(tmp_path / "p.h5"), "-q"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert "Python module 'sklearn' is not installed; pip install scikit-learn" in err


# -- info ---------------------------------------------------------------------------------------

def test_info_says_framework_and_op_availability(dirs, capsys):
    rc, out, err = _cli(["info", dirs["deepbind_rc"]], capsys)
    assert rc == 0, err
    import tensorflow as tf
    assert f"framework       keras (tf-keras {tf.__version__}" in out and "loader kipoi_tanger.KerasModel)" in out
    assert "deeplift-shap: unavailable: layer 'revcomp' (Lambda) has no faithful torch equivalent" in out
    assert "predict, marginalize, product" in out and "forward passes through the model's own predict_on_batch" in out
    rc, out, _ = _cli(["info", dirs["deepbind"]], capsys)
    assert "deeplift-shap: available (converted to torch, checked on the first batch)" in out
    rc, out, _ = _cli(["info", dirs["sklearn"], "--json"], capsys)
    d = json.loads(out)
    assert d["framework"] == "sklearn" and "LogisticRegression.predict_proba" in d["framework_detail"]
    assert d["ops_available"]["deeplift-shap"] == "unavailable: sklearn models have no torch graph"
    rc, out, _ = _cli(["info", os.path.join(REPO, "example_models", "motif_cnn")], capsys)
    assert "framework       pytorch (torch " in out and "op availability" not in out


# -- resume, shards, merge, kipoi tanger ----------------------------------------------------------

def test_shards_merge_and_kill9_resume_through_kipoi_tanger(dirs, targets, tmp_path):
    """On the DeepBind-shaped Keras model: predict shards 1/2 + 2/2 merged equal the single run byte for
    byte; `kipoi tanger deeplift-shap` (DeepLIFT on the checked torch conversion) killed with -9 after
    one batch, then resumed, equals the single run byte for byte."""
    d = dirs["deepbind"]
    kw = dict(dataloader_args=zf.example_dl_args(d), batch_size=8, keep_metadata=True, verbose=False)
    single = str(tmp_path / "single.h5")
    run("predict", targets("deepbind"), single, keep_inputs=True, **kw)
    shards = [str(tmp_path / f"s{i}.h5") for i in (1, 2)]
    for i, s in enumerate(shards, 1):
        run("predict", targets("deepbind"), s, shard=f"{i}/2", keep_inputs=True, **kw)
    merge(shards[::-1], str(tmp_path / "merged.h5"))
    assert file_bytes_equal(single, str(tmp_path / "merged.h5"))

    single = str(tmp_path / "attr.h5")
    run("deeplift-shap", targets("deepbind"), single, n_shuffles=2, random_state=3, **kw)
    out = str(tmp_path / "resumed.h5")
    cmd = [os.path.join(os.path.dirname(sys.executable), "kipoi"), "tanger", "deeplift-shap", d,
           "--dataloader_args", json.dumps(zf.example_dl_args(d)), "--batch_size", "8", "--n_shuffles", "2",
           "--random_state", "3", "--keep_metadata", "-q", "-o", out]
    env = subprocess_env(os.environ["HOME"])
    p = subprocess.run(cmd, env=dict(env, KIPOI_TANGER_KILL_AFTER_BATCHES="1"), cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == -9, p.stderr[-2000:]
    assert os.path.isdir(out + ".partial") and not os.path.exists(out)
    assert "Traceback" not in p.stderr and "oneDNN" not in p.stderr
    res = run("deeplift-shap", d, out, n_shuffles=2, random_state=3, resume=True, **kw)
    assert res.resumed_units == 8 and res.n_regions == 24
    assert file_bytes_equal(single, out)
    # the conversion check measured on the first batch is the file's, also after a resume or a merge
    from kipoi_tanger.run.h5io import read_attrs
    check = read_attrs(single)["conversion_check"]
    assert check["ok"] and check["max_abs_diff"] <= check["tolerance"]
    shards = [str(tmp_path / f"a{i}.h5") for i in (1, 2)]
    for i, s in enumerate(shards, 1):
        run("deeplift-shap", targets("deepbind"), s, shard=f"{i}/2", n_shuffles=2, random_state=3, **kw)
    merge(shards, str(tmp_path / "attr_merged.h5"))
    assert file_bytes_equal(single, str(tmp_path / "attr_merged.h5"))


# -- the example zoo's Keras model ---------------------------------------------------------------------

def test_keras_motif_passes_kipoi_tanger_test(keras):
    """example_models/keras_motif through kipoi-tanger test's own checks (kipoi test itself runs in
    tests/test_example_models_keras_motif.py): predict equals test.expect.h5, DeepLIFT on the checked
    conversion adds up, marginalize's 'before' equals predict."""
    from kipoi_tanger.tools.zoo.checks import test as zoo_test
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        report = zoo_test("example_models/keras_motif", kipoi_test=False)
    finally:
        os.chdir(cwd)
    status = {c.name: c.status for c in report.checks}
    assert report.passed, report.format()
    assert {k: status[k] for k in ("tanger section", "predict", "deeplift-shap", "marginalize")} == \
        dict.fromkeys(("tanger section", "predict", "deeplift-shap", "marginalize"), "PASS")


def test_kipoi_tanger_test_skips_graph_ops_a_model_cannot_run(dirs):
    """An sklearn model declaring no ops: kipoi-tanger test runs the forward-only checks and reports
    deeplift-shap as SKIP (no torch graph), not as a failure."""
    from kipoi_tanger.tools import zoo
    rep = zoo.test(dirs["sklearn"], kipoi_test=False, n_shuffles=2)
    st = {c.name: c.status for c in rep.checks}
    assert st["predict"] == "PASS", rep.format()
    assert st["deeplift-shap"] == "SKIP"
    assert "needs a torch graph" in next(c.detail for c in rep.checks if c.name == "deeplift-shap")
