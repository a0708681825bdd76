"""kipoi_tanger.KerasModel and the zoo's other non-torch formats through plain Kipoi.

Fixtures in the zoo's own formats (tests/zoo_fixtures.py): DeepBind-shaped (arch JSON in the Keras
2.0 layout + weights HDF5 + custom_objects, ``type: keras``), pwm_HOCOMOCO-shaped (whole-model HDF5,
any length), sklearn on k-mers (``type: sklearn``) and a custom ``model.MyModel``. Each is loaded by
``kipoi.get_model(..., source='dir')`` and must predict what the framework itself predicts for the
same sequences (encoded here independently of the dataloaders).
"""
import json
import os
import shutil
import sys

import numpy as np
import pytest
import yaml

import zoo_fixtures as zf
from kipoi_model_dirs import run_cli

import kipoi_tanger
from kipoi_tanger.frameworks import FrameworkNotInstalled
from kipoi_tanger.frameworks import keras as kl


@pytest.fixture(scope="module")
def keras():
    return zf.keras_or_skip()


@pytest.fixture(scope="module")
def dirs(keras, tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return {"deepbind": zf.make_deepbind_dir(root, keras),
            "deepbind_rc": zf.make_deepbind_dir(root, keras, name="deepbind_rc", lambda_layer=True),
            "pwm": zf.make_pwm_dir(root, keras),
            "sklearn": zf.make_sklearn_dir(root),
            "custom": zf.make_custom_dir(root)}


read_regions, one_hot = zf.read_regions, zf.one_hot   # oracle inputs, independent of the dataloaders


def kipoi_predict_all(d):
    import kipoi
    m = kipoi.get_model(d, source="dir")
    batch = m.default_dataloader(**zf.example_dl_args(d)).load_all()
    return m, batch, m.predict_on_batch(batch["inputs"])


# -- Keras --------------------------------------------------------------------------------------

def test_type_keras_deepbind_predicts_like_keras(keras, dirs):
    """type: keras + arch JSON (Keras 2.0 layout) + weights + custom_objects, through kipoi.get_model."""
    import kipoi
    assert kipoi.model.AVAILABLE_MODELS["keras"] is kipoi_tanger.KerasModel   # the start-up hook
    m, batch, y = kipoi_predict_all(dirs["deepbind"])
    assert isinstance(m, kipoi_tanger.KerasModel) and m.type == "keras"
    assert set(m.custom_objects) == {"tf"}
    X = one_hot(read_regions(dirs["deepbind"], resize=101))
    np.testing.assert_array_equal(batch["inputs"], X)
    ref = zf.deepbind_keras(keras).predict(X, verbose=0)          # the in-memory original
    assert y.shape == (24, 1)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-7)


def test_whole_model_hdf5_any_length(keras, dirs):
    m, batch, y = kipoi_predict_all(dirs["pwm"])
    original = zf.pwm_keras(keras)
    np.testing.assert_allclose(y, original.predict(batch["inputs"], verbose=0), rtol=1e-6, atol=1e-6)
    # schema (None, 4): any length; the score is the best log-odds match, computed here in numpy
    fwd, rev = zf.log_odds()
    for L in (20, 60, 333):
        rs = np.random.RandomState(L)
        seqs = ["".join(rs.choice(list("ACGT"), L)) for _ in range(3)]
        X = one_hot(seqs + [seqs[0][:5] + "GATAAGAT" + seqs[0][13:]])
        w = np.lib.stride_tricks.sliding_window_view(X.astype(np.float64), (8, 4), axis=(1, 2))[:, :, 0]
        best = np.maximum(np.einsum("nlka,ka->nl", w, fwd).max(1), np.einsum("nlka,ka->nl", w, rev).max(1))
        np.testing.assert_allclose(m.predict_on_batch(X)[:, 0], best, rtol=1e-5, atol=1e-5)


def test_lambda_layer_and_custom_objects(keras, dirs):
    """A Lambda using `tf` from custom_objects loads (tf-keras' safe mode would refuse it) and predicts;
    the converter refuses it by name and class."""
    m, batch, y = kipoi_predict_all(dirs["deepbind_rc"])
    ref = zf.deepbind_keras(keras, lambda_layer=True).predict(batch["inputs"], verbose=0)
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-7)
    from kipoi_tanger.frameworks.keras_to_torch import UnsupportedLayerError
    with pytest.raises(UnsupportedLayerError, match=r"'revcomp' \(Lambda\)"):
        m.to_torch(batch["inputs"][:4])


def test_to_torch_from_a_loaded_zoo_model(dirs):
    import torch
    _, batch, y = kipoi_predict_all(dirs["deepbind"])
    import kipoi
    net = kipoi.get_model(dirs["deepbind"], source="dir", with_dataloader=False).to_torch(batch["inputs"][:8])
    assert net.conversion_check.ok
    with torch.no_grad():
        y_t = net(torch.from_numpy(batch["inputs"].astype(np.float32))).numpy()     # SeqIntervalDl: float64
    np.testing.assert_allclose(y_t, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("defined_as", ["kipoi_tanger.KerasModel", "kipoi.model.KerasModel"])
def test_defined_as_spellings(dirs, tmp_path, defined_as):
    import kipoi
    d = str(tmp_path / "m")
    shutil.copytree(dirs["deepbind"], d)
    with open(os.path.join(d, "model.yaml")) as fh:
        spec = yaml.safe_load(fh)
    del spec["type"]
    spec["defined_as"] = defined_as
    with open(os.path.join(d, "model.yaml"), "w") as fh:
        yaml.safe_dump(spec, fh)
    m = kipoi.get_model(d, source="dir")
    assert isinstance(m, kipoi_tanger.KerasModel)
    X = one_hot(read_regions(d, resize=101))
    np.testing.assert_array_equal(m.predict_on_batch(X), kipoi.get_model(dirs["deepbind"], source="dir")
                                  .predict_on_batch(X))


def _edit(d, **args):
    with open(os.path.join(d, "model.yaml")) as fh:
        spec = yaml.safe_load(fh)
    spec["args"].update(args)
    spec["args"] = {k: v for k, v in spec["args"].items() if v is not None}
    with open(os.path.join(d, "model.yaml"), "w") as fh:
        yaml.safe_dump(spec, fh)


@pytest.mark.parametrize("case,args,match", [
    ("missing_weights", {"weights": "nope.h5"}, r"args\.weights: nope\.h5 does not exist"),
    ("missing_custom", {"custom_objects": "nope.py"}, r"args\.custom_objects: nope\.py does not exist"),
    ("no_objects", {"custom_objects": "empty.py"}, r"args\.custom_objects: empty\.py must define a dict OBJECTS"),
    ("theano", {"backend": "theano"}, r"args\.backend: 'theano' is not available"),
    ("th_ordering", {"image_dim_ordering": "th"}, r"args\.image_dim_ordering: 'th' is not supported"),
    ("unknown_class", {"arch": "custom_layer.json"}, r"args\.arch: custom_layer\.json uses Keras class 'MotifLayer'"),
    ("wrong_weights", {"weights": "other.h5"}, r"args\.weights: other\.h5 does not fit the architecture"),
    ("not_json", {"arch": "weights.h5"}, r"args\.arch: could not load weights\.h5 with the Keras 2 API"),
])
def test_bad_model_dirs_one_line(keras, dirs, tmp_path, case, args, match):
    import kipoi
    d = str(tmp_path / case)
    shutil.copytree(dirs["deepbind"], d)
    (tmp_path / case / "empty.py").write_text("X = 1\n")
    arch = json.loads((tmp_path / case / "model.json").read_text())
    arch["config"][0]["class_name"] = "MotifLayer"
    (tmp_path / case / "custom_layer.json").write_text(json.dumps(arch))
    zf.pwm_keras(keras).save_weights(str(tmp_path / case / "other.h5"))
    _edit(d, **args)
    with pytest.raises((ValueError, FileNotFoundError), match=match) as e:
        kipoi.get_model(d, source="dir", with_dataloader=False)
    assert "\n" not in str(e.value)


def test_missing_framework_names_the_package(monkeypatch):
    """Neither tf-keras nor a Keras 2 `keras`: one line saying `pip install tf-keras`."""
    import types
    monkeypatch.setattr(kl, "_KERAS", None)
    monkeypatch.setitem(sys.modules, "tf_keras", None)                  # import raises ImportError
    monkeypatch.setitem(sys.modules, "keras", types.SimpleNamespace(__version__="3.15.1"))
    with pytest.raises(FrameworkNotInstalled) as e:
        kl.import_keras()
    assert e.value.package == "tf-keras" and "pip install tf-keras" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(FrameworkNotInstalled, match="pip install tf-keras"):
        kipoi_tanger.KerasModel(weights="any.h5")


def test_kipoi_predict_cli_on_type_keras(keras, dirs, tmp_path):
    """The real `kipoi predict` on a `type: keras` zoo-format dir works again (start-up hook), quietly."""
    import h5py
    d = dirs["deepbind"]
    out = tmp_path / "preds.h5"
    p = run_cli(["predict", d, "--source", "dir", "--dataloader_args", json.dumps(zf.example_dl_args(d)),
                 "-o", str(out)], tmp_path, tmp_path / "home", exe="kipoi")
    assert p.returncode == 0, p.stderr[-3000:]
    log = p.stdout + p.stderr
    assert "Could not locate class" not in log and "oneDNN" not in log and "Traceback" not in log
    with h5py.File(out, "r") as f:
        preds = f["preds"][:]
    X = one_hot(read_regions(d, resize=101))
    np.testing.assert_allclose(preds, zf.deepbind_keras(keras).predict(X, verbose=0), rtol=1e-6, atol=1e-7)


# -- sklearn and custom -------------------------------------------------------------------------

def test_type_sklearn_predicts_like_sklearn(dirs):
    """type: sklearn loads through kipoi_tanger.SklearnModel (the start-up hook; it refuses pickles of
    other scikit-learn versions, tests/test_frameworks_ops.py) and predicts what the estimator does."""
    import joblib
    import kipoi
    m, batch, y = kipoi_predict_all(dirs["sklearn"])
    assert type(m) is kipoi.model.SklearnModel is kipoi_tanger.SklearnModel
    est = joblib.load(os.path.join(dirs["sklearn"], "model.pkl"))
    features = np.stack([zf.kmer_features(s) for s in read_regions(dirs["sklearn"])])
    np.testing.assert_allclose(batch["inputs"], features, rtol=0, atol=0)
    np.testing.assert_array_equal(y, est.predict_proba(features))
    assert y.shape == (24, 2)
    # a real fitted model: better than chance at telling planted GATAAG from none on new data (~0.7)
    Xs, ys = zf.simulated_kmer_data(n=200, seed=11)
    assert (est.predict(Xs) == ys).mean() > 0.6


def test_custom_model_class(dirs):
    import kipoi
    m, batch, y = kipoi_predict_all(dirs["custom"])
    assert m.type == "custom" and type(m).__name__ == "MyModel"
    X = one_hot(read_regions(dirs["custom"], resize=50))
    np.testing.assert_array_equal(batch["inputs"], X)
    fwd, rev = zf.log_odds()
    w = np.lib.stride_tricks.sliding_window_view(X.astype(np.float64), (8, 4), axis=(1, 2))[:, :, 0]
    best = np.maximum(np.einsum("nlka,ka->nl", w, fwd).max(1), np.einsum("nlka,ka->nl", w, rev).max(1))
    np.testing.assert_allclose(y[:, 0], best, rtol=1e-5, atol=1e-5)


def test_framework_error_names_the_pip_package(dirs, monkeypatch):
    """A `type: sklearn` model without scikit-learn: the ImportError becomes one line naming the package."""
    import kipoi
    from kipoi_tanger.frameworks import framework_error
    for mod in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError) as e:
        kipoi.get_model(dirs["sklearn"], source="dir", with_dataloader=False)
    err = framework_error(e.value, "sklearn model")
    assert str(err) == "sklearn model: Python module 'sklearn' is not installed; pip install scikit-learn"
    assert err.package == "scikit-learn"
    assert framework_error(ImportError("no name")) is None
    same = FrameworkNotInstalled("x", "tf-keras")
    assert framework_error(same) is same
