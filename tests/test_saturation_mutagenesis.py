"""saturation_mutagenesis: parity with tangermeme 1.6.0 (fast=False as the oracle)
on dilated, pooled, strided, residual and 2-d (Basset-layout) CNNs, the fast
path against full forwards, the models where it must fall back, the
attribution contract, state restoration and bad input."""
import importlib.util
import logging
import os

import pytest
import torch
import torch.nn.functional as F
from tangermeme.saturation_mutagenesis import saturation_mutagenesis as tm_ism
from torch import nn

from architectures import BPNetLike, SmallCNN
from kipoi_tanger import _fast_ism, _fast_ism_ops
from kipoi_tanger._fast_ism import explain
from kipoi_tanger.saturation_mutagenesis import SaturationMutagenesisRawResult, saturation_mutagenesis
from kipoi_tanger.utils import random_one_hot

HERE = os.path.dirname(os.path.abspath(__file__))
LOGGER = 'kipoi_tanger.saturation_mutagenesis'


def _randomise_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model


class Mixed(nn.Module):
    """'same' padding, eval BatchNorm, GELU, strided convs, channel concat,
    padded average pooling added back (residual), an unpadded dilated conv,
    overlapping padded max pooling, functional ops, flatten + dense."""

    def __init__(self, length=41):
        super().__init__()
        self.c1 = nn.Conv1d(4, 6, 5, padding='same')
        self.bn = nn.BatchNorm1d(6)
        self.c2a = nn.Conv1d(6, 4, 3, padding=1, stride=2)
        self.c2b = nn.Conv1d(6, 4, 1, stride=2)
        self.pool = nn.AvgPool1d(3, stride=1, padding=1)
        self.c3 = nn.Conv1d(8, 5, 3, dilation=2)
        self.mp = nn.MaxPool1d(3, stride=2, padding=1)
        with torch.no_grad():
            n = self._features(torch.zeros(1, 4, length)).shape[1]
        self.lin = nn.Linear(n, 3)

    def _features(self, x):
        h = F.gelu(self.bn(self.c1(x)))
        h = torch.cat([torch.relu(self.c2a(h)), torch.sigmoid(self.c2b(h))], dim=1)
        h = self.pool(h) * 0.5 + h
        h = self.mp(F.elu(self.c3(h)))
        return h.flatten(1)

    def forward(self, x):
        return self.lin(self._features(x))


class Residual(nn.Module):
    """Residual blocks with in-place ReLUs, a channel-wise sum kept as a
    Local, a cropped profile and a softmax over the crop, plus a max over
    the length (dense after a global op)."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv1d(4, 8, 7, padding=3)
        self.blocks = nn.ModuleList([nn.Conv1d(8, 8, 3, padding=d, dilation=d) for d in (1, 2, 4)])
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Conv1d(8, 2, 5, padding=2)
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        h = self.act(self.c0(x))
        for conv in self.blocks:
            h = h + self.act(conv(h))
        s = h.sum(dim=1, keepdim=True)
        profile = torch.softmax(self.head(h)[:, :, 5:-5] + s[:, :, 5:-5], dim=-1)
        return profile, self.lin(h.amax(dim=2))


class ShapeArith(nn.Module):
    """Flatten written with shape arithmetic, then a dense layer over positions."""

    def __init__(self, length=40):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 7, padding=3)
        self.lin = nn.Linear(6 * length, 2)

    def forward(self, x):
        h = torch.tanh(self.conv(x))
        return self.lin(h.reshape(h.shape[0], h.shape[1] * h.shape[2]))


def _basset_like():
    spec = importlib.util.spec_from_file_location(
        "_basset_like_model", os.path.join(HERE, '..', 'example_models', 'basset_like', 'model.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.BassetLike


class Basset2d(nn.Module):
    """The zoo's (N, 4, L, 1) Basset layout, fed canonical (N, 4, L) input."""

    def __init__(self, length=60):
        super().__init__()
        self.model = _basset_like()(seq_len=length, n_tasks=3, n_filters=(8, 6))

    def forward(self, x):
        return self.model(x.unsqueeze(-1))


def _close(ours, theirs, rel=1e-5):
    ours = ours if isinstance(ours, list) else [ours]
    theirs = theirs if isinstance(theirs, list) else [theirs]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape, (a.shape, b.shape)
        scale = float(b.abs().max())
        assert float((a - b).abs().max()) <= rel * scale + 1e-12, float((a - b).abs().max()) / scale


@pytest.fixture
def no_job_gate(monkeypatch):
    """Consider the fast path for tiny test jobs too."""
    monkeypatch.setattr(_fast_ism, 'MIN_FAST_JOB_MACS', 0)


@pytest.fixture
def force_fast(monkeypatch):
    """Tiny test models are almost all receptive field: let the fast path run
    on them anyway (the cost model would send them to full forwards)."""
    monkeypatch.setattr(_fast_ism, 'MAX_COST_RATIO', float('inf'))
    monkeypatch.setattr(_fast_ism, 'MIN_FAST_JOB_MACS', 0)


pytestmark = pytest.mark.usefixtures('one_thread')     # tests/conftest.py


def _fast_used(caplog):
    return any('fast path (' in r.getMessage() for r in caplog.records)


MODELS = {
    'dilated_bpnet': (lambda: BPNetLike(n_filters=8, n_layers=3, in_len=60, out_len=30), 60),
    'pooled_smallcnn': (lambda: SmallCNN(length=48, pool=3), 48),
    'overlapping_pools': (lambda: SmallCNN(length=50, pool=4, pool_stride=2), 50),
    'mixed': (lambda: _randomise_bn(Mixed(41)), 41),
    'residual_inplace': (Residual, 40),
    'basset_2d_layout': (lambda: _randomise_bn(Basset2d(60)), 60),
    'shape_arithmetic': (ShapeArith, 40),
}


@pytest.mark.parametrize('name', sorted(MODELS))
@pytest.mark.parametrize('batch_size', [9, 24])
def test_raw_outputs_match_tangermeme_and_use_fast_path(name, batch_size, caplog, force_fast):
    make, L = MODELS[name]
    torch.manual_seed(sorted(MODELS).index(name))
    model = make().eval()
    X = random_one_hot((3, 4, L), random_state=1)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ours = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=batch_size, device='cpu')
    assert _fast_used(caplog), [r.getMessage() for r in caplog.records]
    theirs = tm_ism(model, X, raw_outputs=True, batch_size=batch_size, device='cpu', fast=False)
    assert isinstance(ours, SaturationMutagenesisRawResult)
    _close(ours.y0, theirs.y0, rel=1e-6)
    _close(ours.y_hat, theirs.y_hat)


def test_window_args_func_and_n_columns_match_tangermeme(force_fast):
    torch.manual_seed(3)
    model = BPNetLike(n_filters=8, n_layers=2, in_len=50, out_len=20).eval()
    X = random_one_hot((4, 4, 50), random_state=3)
    X[1, :, 12:14] = 0    # N columns: every base is predicted there
    X[2, :, 0] = 0
    alpha, beta = torch.randn(4, 1), torch.rand(4, 1) + 0.5
    for start, end in [(0, -1), (10, 30), (45, 50), (0, -6)]:
        ours = saturation_mutagenesis(model, X, args=(alpha, beta), start=start, end=end,
                                      raw_outputs=True, batch_size=10)
        theirs = tm_ism(model, X, args=(alpha, beta), start=start, end=end, raw_outputs=True,
                        batch_size=10, fast=False)
        _close(ours.y_hat, theirs.y_hat)

    def pick(y):   # traced with the model
        return y[1] * 2.0
    ours = saturation_mutagenesis(model, X, args=(alpha, beta), func=pick, start=5, end=40)
    theirs = tm_ism(model, X, args=(alpha, beta), func=pick, start=5, end=40, fast=False)
    _close(ours, theirs)


@pytest.mark.parametrize('target', [None, 0, 2, slice(1, 3)])
@pytest.mark.parametrize('hypothetical', [False, True])
def test_attributions_match_tangermeme(target, hypothetical, force_fast):
    torch.manual_seed(4)
    model = SmallCNN(length=48, pool=3).eval()
    X = random_one_hot((3, 4, 48), random_state=4)
    kw = dict(target=target, hypothetical=hypothetical, start=3, end=40, batch_size=16)
    ours = saturation_mutagenesis(model, X, **kw)
    theirs = tm_ism(model, X, fast=False, **kw)
    _close(ours, theirs)
    if hypothetical:   # centred over the alphabet at every position
        assert torch.allclose(ours.sum(dim=1), torch.zeros(()), atol=1e-6)
    else:              # only the observed bases are non-zero
        assert torch.equal(ours != 0, (ours != 0) & (X[:, :, 3:40] == 1))


def test_profile_attributions_and_identity_edits(force_fast):
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv1d(4, 3, 5, padding=2), nn.ELU(), nn.Conv1d(3, 2, 3, padding=1)).eval()
    X = random_one_hot((2, 4, 30), random_state=5)
    _close(saturation_mutagenesis(model, X, target=1), tm_ism(model, X, target=1, fast=False))
    raw = saturation_mutagenesis(model, X, raw_outputs=True)
    n, p = torch.nonzero(torch.ones(2, 30), as_tuple=True)
    ref = X.argmax(dim=1)
    assert torch.equal(raw.y_hat[n, ref[n, p], p], raw.y0[n])   # identity edits are y0, exactly


def test_fast_path_equals_full_forwards_float64(caplog, force_fast):
    torch.manual_seed(6)
    model = Mixed(41).double().eval()
    X = random_one_hot((2, 4, 41), random_state=6)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        fast = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=12)
    assert _fast_used(caplog)
    full = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=12, fast=False)
    assert fast.y_hat.dtype == torch.float64
    _close(fast.y_hat, full.y_hat, rel=1e-10)


class GRUModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.gru = nn.GRU(6, 5, batch_first=True)
        self.lin = nn.Linear(5, 2)

    def forward(self, x):
        h, _ = self.gru(self.conv(x).permute(0, 2, 1))
        return self.lin(h[:, -1])


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        h = self.conv(x).transpose(1, 2)
        return self.lin(self.att(h, h, h)[0].mean(dim=1))


class PositionDense(nn.Module):
    """A dense layer over positions before the convolutions."""

    def __init__(self, length=30):
        super().__init__()
        self.mix = nn.Linear(length, length)
        self.conv = nn.Conv1d(4, 8, 5, padding=2)
        self.conv2 = nn.Conv1d(8, 8, 5, padding=2)
        self.lin = nn.Linear(8, 1)

    def forward(self, x):
        return self.lin(self.conv2(torch.relu(self.conv(self.mix(x)))).mean(dim=2))


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 2, 3, padding=1)

    def forward(self, x):
        h = self.conv(x)
        if h.sum() > 0:   # control flow on values: not traceable
            h = h * 2
        return h.mean(dim=2)


class BatchStats(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 3, 3, padding=1)
        self.bn = nn.BatchNorm1d(3, track_running_stats=False)

    def forward(self, x):
        return self.bn(self.conv(x)).mean(dim=2)


def _hooked():
    m = nn.Sequential(nn.Conv1d(4, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(60, 1))
    m[1].register_forward_hook(lambda mod, i, o: o * 2)
    return m


@pytest.mark.parametrize('make,reason', [
    (GRUModel, 'GRU'), (Attention, 'MultiheadAttention'), (PositionDense, 'multiply-adds'),
    (DataDependent, 'torch.fx cannot trace'), (BatchStats, 'batch statistics'),
    (_hooked, 'forward hooks')])
def test_models_the_fast_path_must_refuse(make, reason, caplog, no_job_gate):
    torch.manual_seed(7)
    model = make().eval()
    X = random_one_hot((2, 4, 30), random_state=7)
    info = explain(model, X)
    assert not info['fast'] and reason in info['reason'], info
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ours = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=7)
    assert not _fast_used(caplog)
    assert any('full forwards' in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    if make is not BatchStats:   # batch statistics depend on how edits are batched
        theirs = tm_ism(model, X, raw_outputs=True, batch_size=7, fast=False)
        _close(ours.y_hat, theirs.y_hat)


def test_disagreement_on_the_check_batch_falls_back_loudly(monkeypatch, caplog, force_fast):
    torch.manual_seed(8)
    model = SmallCNN(length=48, pool=3).eval()
    X = random_one_hot((2, 4, 48), random_state=8)
    real = _fast_ism_ops.unary_local

    def wrong(*a):   # a broken rule: the engine must not be trusted
        out = real(*a)
        out.delta = out.delta * 1.01
        return out
    monkeypatch.setattr(_fast_ism_ops, 'unary_local', wrong)
    with caplog.at_level(logging.INFO, logger=LOGGER), pytest.warns(RuntimeWarning, match='disagrees'):
        ours = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=12)
    assert not _fast_used(caplog)
    full = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=12, fast=False)
    assert torch.equal(ours.y_hat, full.y_hat)


def test_bfloat16_runs_full_forwards(caplog):
    torch.manual_seed(9)
    model = SmallCNN(length=48, pool=3).eval()
    X = random_one_hot((2, 4, 48), random_state=9)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ours = saturation_mutagenesis(model, X, raw_outputs=True, dtype=torch.bfloat16)
    assert any('float32/float64' in r.getMessage() for r in caplog.records)
    ref = saturation_mutagenesis(model, X, raw_outputs=True)
    assert ours.y_hat.dtype == torch.bfloat16
    assert torch.allclose(ours.y_hat.float(), ref.y_hat, atol=5e-2 * float(ref.y_hat.abs().max()))


def test_restores_model_state_also_on_error():
    model = SmallCNN(length=48, pool=3)
    model.train()
    X = random_one_hot((2, 4, 48), random_state=0)
    saturation_mutagenesis(model, X, batch_size=8)
    assert model.training and all(m.training for m in model.modules())
    model.p1.register_forward_hook(lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match='boom'):
        saturation_mutagenesis(model, X)
    assert model.training


def test_bad_input():
    model = SmallCNN(length=48, pool=3)
    X = random_one_hot((2, 4, 48), random_state=0)
    with pytest.raises(ValueError, match='one-hot'):
        saturation_mutagenesis(model, X.float() * 0.5)
    X2 = X.clone()
    X2[0, :, 3] = 1
    with pytest.raises(ValueError, match='several ones'):
        saturation_mutagenesis(model, X2)
    with pytest.raises(ValueError, match='0 <= start < end <= length'):
        saturation_mutagenesis(model, X, start=10, end=5)
    with pytest.raises(ValueError, match='0 <= start < end <= length'):
        saturation_mutagenesis(model, X, start=0, end=49)
    with pytest.raises(ValueError, match='args'):
        saturation_mutagenesis(model, X, args=(torch.ones(3, 1),))
    two = BPNetLike(n_filters=4, n_layers=1, in_len=48, out_len=20)
    with pytest.raises(ValueError, match='raw_outputs=True'):
        saturation_mutagenesis(two, X)


def test_fast_path_engages_by_itself_on_a_long_job(caplog):
    """No forcing: 600 bp, full ISM of a two-block pooled CNN is worth tracing."""
    torch.manual_seed(10)
    model = nn.Sequential(nn.Conv1d(4, 16, 19, padding=9), nn.ReLU(), nn.MaxPool1d(3),
                          nn.Conv1d(16, 16, 11, padding=5), nn.ReLU(), nn.MaxPool1d(4),
                          nn.Flatten(), nn.Linear(16 * 50, 4), nn.Sigmoid()).eval()
    X = random_one_hot((1, 4, 600), random_state=10)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        fast = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=64)
    assert _fast_used(caplog), [r.getMessage() for r in caplog.records]
    full = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=64, fast=False)
    _close(fast.y_hat, full.y_hat)


def test_an_engine_error_on_the_check_batch_falls_back_loudly(monkeypatch, force_fast):
    torch.manual_seed(11)
    model = SmallCNN(length=48, pool=3).eval()
    X = random_one_hot((2, 4, 48), random_state=11)

    def broken(*a, **k):
        raise IndexError("an engine bug")
    monkeypatch.setattr(_fast_ism_ops, 'pool_local', broken)
    with pytest.warns(RuntimeWarning, match='fast path failed.*IndexError'):
        ours = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=12)
    full = saturation_mutagenesis(model, X, raw_outputs=True, batch_size=12, fast=False)
    assert torch.equal(ours.y_hat, full.y_hat)


def test_a_zoo_model_loaded_through_kipoi_takes_the_fast_path(caplog, no_job_gate):
    """example_models/basset_like ((4, L, 1) layout, Conv2d/BatchNorm2d/MaxPool2d):
    the layout adapter's unsqueeze + identity permute keep edits local."""
    import kipoi_tanger
    m = kipoi_tanger.load_model(os.path.join(HERE, '..', 'example_models', 'basset_like'))
    X, _ = m.inputs(n=2)
    info = explain(m.model, X)
    assert info['fast'] and info['kinds']['permute'].startswith('Local'), info
    with caplog.at_level(logging.INFO, logger=LOGGER):
        fast = saturation_mutagenesis(m.model, X, raw_outputs=True, start=50, end=150)
    assert _fast_used(caplog)
    full = saturation_mutagenesis(m.model, X, raw_outputs=True, start=50, end=150, fast=False)
    _close(fast.y_hat, full.y_hat)
