"""example_models/keras_motif: a Keras 2 zoo-format model that passes `kipoi test` from the
repository root in the current environment (TensorFlow 2.21 / Keras 3 + tf-keras), whose files
make_model.py rebuilds bit for bit, which predicts exactly the planted sites, and whose torch
conversion puts DeepLIFT/SHAP attributions on them."""
import importlib.util
import json
import os

import numpy as np
import pytest

from kipoi_model_dirs import run_cli
from zoo_fixtures import keras_or_skip

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(REPO, "example_models", "keras_motif")


def _script(name):
    """Import a script of the model dir under a private name (other model dirs ship the same names)."""
    spec = importlib.util.spec_from_file_location(f"_keras_motif_{name}", os.path.join(MODEL_DIR, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def keras():
    return keras_or_skip()


@pytest.fixture(scope="module")
def model(keras):
    import kipoi
    return kipoi.get_model(MODEL_DIR, source="dir")


@pytest.fixture(scope="module")
def example(model):
    cwd = os.getcwd()
    try:
        os.chdir(MODEL_DIR)
        batch = model.default_dataloader.init_example().load_all()
    finally:
        os.chdir(cwd)
    return batch


def test_kipoi_test_passes_from_the_repository_root(keras, tmp_path):
    p = run_cli(["test", "example_models/keras_motif", "--source", "dir"], REPO, tmp_path / "home", exe="kipoi")
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr
    assert "All predictions match" in out
    assert "Traceback" not in out and "oneDNN" not in out


def test_make_model_rebuilds_the_files_bit_for_bit(keras, tmp_path):
    import h5py
    _script("make_model").write_model(str(tmp_path))
    with open(tmp_path / "model.json", "rb") as a, open(os.path.join(MODEL_DIR, "model.json"), "rb") as b:
        assert a.read() == b.read()
    arrays = {}
    for label, path in (("new", tmp_path / "weights.h5"), ("shipped", os.path.join(MODEL_DIR, "weights.h5"))):
        with h5py.File(path, "r") as f:
            found = {}
            f.visititems(lambda k, v: found.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
            arrays[label] = found
    assert set(arrays["new"]) == set(arrays["shipped"]) and len(arrays["new"]) == 4
    for k, v in arrays["new"].items():
        np.testing.assert_array_equal(v, arrays["shipped"][k])


def test_predicts_exactly_the_planted_sites(model, example):
    """Example regions are named after what was planted; minus-strand ones read as planted after
    the dataloader's reverse complement."""
    names = [line.split()[3] for line in open(os.path.join(MODEL_DIR, "example_files", "regions.bed"))]
    y = model.predict_on_batch(example["inputs"])
    assert example["inputs"].shape == (32, 200, 4) and y.shape == (32, 2)
    gata = np.array([n.startswith("gata") for n in names])
    ebox = np.array(["ebox" in n for n in names])
    assert (y[gata, 0] > 0.98).all() and (y[~gata, 0] < 0.05).all()
    assert (y[ebox, 1] > 0.98).all() and (y[~ebox, 1] < 0.05).all()


def test_conversion_and_deeplift_find_the_sites(model, example):
    """The torch conversion equals Keras on the example files, and DeepLIFT/SHAP on it puts the top
    attributions of P(GATA) on the planted GATA site of every GATA region."""
    import torch
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    X = example["inputs"].astype(np.float32)
    net = model.to_torch(X)
    assert net.conversion_check.ok and net.conversion_check.max_abs_diff < 1e-6
    seqs = ["".join("ACGT"[i] for i in x.argmax(1)) for x in X]
    rows = [i for i, s in enumerate(seqs) if "GATAAG" in s or "CTTATC" in s]
    assert len(rows) >= 10

    class KerasLayout(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x.transpose(1, 2))

    Xt = torch.from_numpy(X[rows]).transpose(1, 2).contiguous()
    attr = deep_lift_shap(KerasLayout(), Xt, target=0, n_shuffles=8, random_state=0, device="cpu").sum(1)
    for a, i in zip(attr.numpy(), rows):
        start = max(seqs[i].find("GATAAG"), seqs[i].find("CTTATC"))
        assert set(np.argsort(-a)[:6]) == set(range(start, start + 6)), seqs[i]


def test_report_matches_a_fresh_evaluation(keras):
    """README's figures come from report.json; a smaller fresh run gives the same picture."""
    with open(os.path.join(MODEL_DIR, "report.json")) as fh:
        report = json.load(fh)
    fresh = _script("evaluate").evaluate(n_eval=200, n_attr=6, timing=False)
    for name in ("gata", "ebox"):
        assert report[name]["auroc"] == fresh[name]["auroc"] == 1.0
        assert report["deeplift_shap"][name]["top6_exactly_the_site"] == report["deeplift_shap"][name]["windows"]
        assert fresh["deeplift_shap"][name]["top6_exactly_the_site"] == 6
    assert report["conversion"]["ok"] and fresh["conversion"]["max_abs_diff"] < 1e-6


def test_weights_are_the_documented_constants(keras):
    """weights.h5 holds what make_model.py documents (log-odds PWMs, threshold, gain, offset)."""
    import h5py
    mk = _script("make_model")
    kernel, bias = mk.conv_weights()
    with h5py.File(os.path.join(MODEL_DIR, "weights.h5"), "r") as f:
        found = {}
        f.visititems(lambda k, v: found.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
    k = next(v for n, v in found.items() if "motif_scan" in n and "kernel" in n)
    np.testing.assert_array_equal(k, kernel)
    np.testing.assert_allclose(k.max(1).sum(0), 6 * np.log(0.85 / 0.25), rtol=1e-6)   # best score per filter


def test_simulate_rewrites_the_example_files_byte_for_byte(tmp_path):
    _script("simulate").write_example_files(str(tmp_path))
    for name in ("genome.fa", "genome.fa.fai", "regions.bed"):
        with open(tmp_path / name, "rb") as a, open(os.path.join(MODEL_DIR, "example_files", name), "rb") as b:
            assert a.read() == b.read(), name
