"""CUDA checks, run by ``make gpu-check`` on a machine with a GPU (skipped elsewhere).

CPU and CUDA kernels round differently, and cuDNN convolutions use TF32 by
default (10-bit mantissa), so the parity checks switch TF32 off and compare
with tolerances scaled to the values; a TF32 run is compared at TF32's own
precision.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from architectures import BPNetLike, CountsOnly, SmallCNN
from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.ersatz import dinucleotide_shuffle
from kipoi_tanger.predict import predict
from kipoi_tanger.utils import random_one_hot

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def no_tf32():
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _close(a, b, rtol):
    scale = float(b.abs().max())
    assert float((a - b).abs().max()) <= rtol * scale + 1e-7, (float((a - b).abs().max()), scale)


def test_predict_cuda_matches_cpu_and_restores_device(no_tf32):
    torch.manual_seed(0)
    model = SmallCNN()
    X = random_one_hot((70, 4, 200), random_state=0).float()
    y_cpu = predict(model, X, batch_size=16, device="cpu")
    y_gpu = predict(model, X, batch_size=16, device="cuda")
    assert y_gpu.device.type == "cpu"
    assert next(model.parameters()).device.type == "cpu"
    _close(y_gpu, y_cpu, 1e-5)


def test_predict_tf32_is_within_tf32_precision():
    torch.manual_seed(0)
    model = SmallCNN()
    X = random_one_hot((32, 4, 200), random_state=1).float()
    y_cpu = predict(model, X, device="cpu")
    y_gpu = predict(model, X, device="cuda")
    _close(y_gpu, y_cpu, 5e-3)


def test_deep_lift_shap_cuda_matches_cpu_and_is_complete(no_tf32):
    torch.manual_seed(0)
    model = CountsOnly(BPNetLike(n_filters=16, n_layers=4, in_len=500, out_len=200))
    X = random_one_hot((6, 4, 500), random_state=0).float()
    refs = dinucleotide_shuffle(X, n=8, random_state=0)
    a_cpu = deep_lift_shap(model, X, references=refs, batch_size=13, device="cpu")
    a_gpu = deep_lift_shap(model, X, references=refs, batch_size=13, device="cuda")
    _close(a_gpu, a_cpu, 1e-5)
    with torch.no_grad():
        fx = model(X)[:, 0]
        fr = model(refs.reshape(-1, 4, 500))[:, 0].reshape(6, 8).mean(dim=1)
    gap = (a_gpu.sum(dim=(1, 2)) - (fx - fr)).abs().max()
    assert float(gap) <= 1e-5 * float((fx - fr).abs().max()) + 1e-6


def test_dinucleotide_shuffle_on_cuda_keeps_counts():
    X = random_one_hot((4, 4, 300), random_state=0).float().cuda()
    S = dinucleotide_shuffle(X, n=5, random_state=0)
    assert S.device.type == "cuda"
    x = X.argmax(1).cpu().numpy()
    s = S.argmax(2).cpu().numpy()
    for i in range(4):
        want = np.bincount(x[i, :-1] * 4 + x[i, 1:], minlength=16)
        for j in range(5):
            assert (np.bincount(s[i, j, :-1] * 4 + s[i, j, 1:], minlength=16) == want).all()


def test_cli_predict_on_cuda_matches_cpu(tmp_path):
    import h5py
    env = dict(os.environ, NVIDIA_TF32_OVERRIDE="0")
    outs = {}
    for dev in ("cpu", "cuda"):
        out = tmp_path / f"{dev}.h5"
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "kipoi-tanger"), "predict",
                        "example_models/motif_cnn",
                        "--example", "--device", dev, "-q", "-o", str(out)], cwd=ROOT, env=env, check=True)
        with h5py.File(out) as f:
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and n.startswith("preds") else None)
            outs[dev] = torch.cat([torch.from_numpy(f[n][:]).reshape(len(f[n]), -1) for n in sorted(names)], 1)
    _close(outs["cuda"], outs["cpu"], 1e-5)
