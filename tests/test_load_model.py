"""kipoi_tanger.load_model: a Kipoi model as a torch module on (N, A, L) one-hot, plus its dataloader."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import kipoi_tanger
from kipoi_tanger.adapter import AdapterError
from kipoi_tanger.predict import predict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(REPO, "example_models")


def _kipoi_predictions(model_dir, batch_size):
    import kipoi
    km = kipoi.get_model(model_dir, source="dir")
    kw = km.default_dataloader.download_example(os.path.join(model_dir, "downloaded"), absolute_path=True)
    kw = {k: os.path.join(model_dir, v) if isinstance(v, str) and not os.path.isabs(v) else v for k, v in kw.items()}
    batch = next(iter(km.default_dataloader(**kw).batch_iter(batch_size=batch_size)))
    return batch, km.predict_on_batch(batch["inputs"])


def test_model_in_a_non_canonical_layout_gives_kipois_predictions():
    """basset_like takes (4, 200, 1): the module takes (N, 4, 200) and returns what Kipoi predicts."""
    m = kipoi_tanger.load_model(os.path.join(ZOO, "basset_like"))
    X, args = m.inputs(n=5)
    assert X.shape == (5, 4, 200) and X.dtype == torch.float32 and args == ()
    batch, want = _kipoi_predictions(os.path.join(ZOO, "basset_like"), 5)
    np.testing.assert_array_equal(X.numpy(), batch["inputs"][..., 0])
    got = predict(m.model, X, batch_size=5, device="cpu")
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert m.dataloader is m.target.Dl
    assert m.explained()(X).shape == (5, want.shape[1])


def test_extra_inputs_fill_args_in_schema_order():
    m = kipoi_tanger.load_model(os.path.join(ZOO, "flatten_dense"))
    X, args = m.inputs()
    assert X.shape == (5, 4, 10) and [a.shape for a in args] == [(5, 1), (5, 1)]
    batch, want = _kipoi_predictions(os.path.join(ZOO, "flatten_dense"), 5)
    np.testing.assert_allclose(predict(m.model, X, args=args, device="cpu").numpy(), want, rtol=1e-5, atol=1e-6)
    # batches from explicit dataloader arguments, and the first n regions only
    kw = m.target.dataloader_args(example=True)
    (X2, args2), = list(m.batches(kw, batch_size=8))
    assert torch.equal(X2, X) and all(torch.equal(a, b) for a, b in zip(args2, args))
    assert m.inputs(n=2)[0].shape == (2, 4, 10)


def test_bad_models_are_one_line_errors(tmp_path):
    with pytest.raises(AdapterError, match="no such directory"):
        kipoi_tanger.load_model(str(tmp_path / "missing"))
    with pytest.raises(AdapterError, match="has no model.yaml"):
        kipoi_tanger.load_model(str(tmp_path))
    m = kipoi_tanger.load_model(os.path.join(ZOO, "flatten_dense"))
    with pytest.raises(AdapterError, match="unknown argument 'intervals'"):
        next(m.batches({"intervals": "x.bed"}))


def test_import_stays_light():
    code = "import sys, kipoi_tanger; print(sorted(m for m in ('torch', 'kipoi', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
