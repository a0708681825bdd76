"""deep_lift_shap: parity with tangermeme 1.6.0 on fixed references (conv+ReLU+MaxPool incl.
overlapping pools, residual dilated convs, every smooth activation, Softmax, multi-input args),
completeness, batch-size independence, seeding, warnings, refused modules, rule overrides,
the output contract, state restoration, captum cross-check, hypothetical_attributions."""
import sys
import warnings

import numpy as np
import pytest
import torch
from tangermeme._deep_lift_utils import _nonlinear as tm_nonlinear
from tangermeme.deep_lift_shap import deep_lift_shap as tm_deep_lift_shap
from tangermeme.deep_lift_shap import hypothetical_attributions as tm_hypothetical
from tangermeme.ersatz import dinucleotide_shuffle as tm_shuffle
from tangermeme.utils import random_one_hot

from architectures import BPNetLike, CountsOnly, FlattenDense, SmallCNN
from kipoi_tanger.deep_lift_shap import (AttributionReferencesResult, captum_deep_lift_shap,
                                         deep_lift_shap, hypothetical_attributions, maxpool_rule,
                                         rescale_rule)

# CPU kernels round differently for different batch compositions (tangermeme against itself at
# two batch sizes differs by up to ~5e-6 of the scale on overlapping pools), so parity is checked
# relative to the attribution scale.
TOL = 2e-6
POOL_TOL = 2e-5
# The softmax rule divides by differences down to 1e-6, so rounding noise from the batch
# composition moves its multipliers by up to ~3e-5 of the scale (one batch matches to 3e-7).
SOFTMAX_TOL = 1e-4


pytestmark = pytest.mark.usefixtures('one_thread')     # tests/conftest.py


def close(ours, theirs, tol=TOL):
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    scale = theirs.abs().max().clamp_min(1e-12)
    err = ((ours.float() - theirs.float()).abs().max() / scale).item()
    assert err <= tol, f"max |diff| = {err:.3g} of the scale"


def data(N, L, K, seed=0):
    X = random_one_hot((N, 4, L), random_state=seed).float()
    refs = tm_shuffle(X, n=K, random_state=seed + 1).float()
    return X, refs


def both(model, X, refs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ours = deep_lift_shap(model, X, references=refs, device='cpu', **kw)
        theirs = tm_deep_lift_shap(model, X, references=refs, device='cpu', **kw)
    return ours, theirs


OUTPUTS = [{}, {'hypothetical': True}, {'raw_outputs': True}]


@pytest.mark.parametrize('pool_stride', [None, 2])
@pytest.mark.parametrize('kw', OUTPUTS)
def test_parity_small_cnn_maxpool(pool_stride, kw):
    torch.manual_seed(1)
    model = SmallCNN(length=120, pool_stride=pool_stride)
    X, refs = data(4, 120, 6)
    for bs in (24, 5):  # one batch, and batches that split examples' references
        ours, theirs = both(model, X, refs, batch_size=bs, target=2, **kw)
        close(ours, theirs, POOL_TOL if pool_stride else TOL)


@pytest.mark.parametrize('kw', OUTPUTS)
def test_parity_residual_dilated_bpnet_with_args(kw):
    torch.manual_seed(2)
    model = CountsOnly(BPNetLike(n_filters=8, n_layers=3, in_len=160, out_len=40))
    X, refs = data(3, 160, 5)
    alpha, beta = torch.randn(3, 1), torch.rand(3, 1) + 0.5
    ours, theirs = both(model, X, refs, args=(alpha, beta), batch_size=7, **kw)
    close(ours, theirs)


ACTIVATIONS = [torch.nn.ReLU6, torch.nn.RReLU, torch.nn.LeakyReLU, torch.nn.PReLU, torch.nn.ELU,
               torch.nn.SELU, torch.nn.CELU, torch.nn.GELU, torch.nn.SiLU, torch.nn.Mish,
               torch.nn.Sigmoid, torch.nn.Tanh, torch.nn.Softplus, torch.nn.Softshrink,
               torch.nn.LogSigmoid, lambda: torch.nn.Softmax(dim=1)]


class ActNet(torch.nn.Module):
    def __init__(self, act, L=40):
        super().__init__()
        self.c1 = torch.nn.Conv1d(4, 8, 5, padding=2)
        self.a1 = act()
        self.c2 = torch.nn.Conv1d(8, 8, 3, padding=1)
        self.a2 = act()
        self.fc = torch.nn.Linear(8 * L, 2)

    def forward(self, X):
        h = self.a2(self.c2(self.a1(self.c1(X))))
        return self.fc(h.flatten(1))


@pytest.mark.parametrize('act', ACTIVATIONS,
                         ids=[getattr(a, '__name__', 'Softmax') for a in ACTIVATIONS])
def test_parity_smooth_activations(act):
    torch.manual_seed(3)
    model = ActNet(act)
    X, refs = data(3, 40, 4)
    for kw in ({}, {'raw_outputs': True}):
        ours, theirs = both(model, X, refs, batch_size=5, target=1, **kw)
        close(ours, theirs, SOFTMAX_TOL if isinstance(model.a1, torch.nn.Softmax) else TOL)
    attr = deep_lift_shap(model, X, references=refs, target=1, device='cpu')
    assert_complete(model, X, refs, attr, target=1)


def test_parity_flatten_dense_multi_input():
    torch.manual_seed(4)
    model = FlattenDense(length=12)
    X, refs = data(5, 12, 3)
    alpha, beta = torch.randn(5, 1), torch.randn(5, 1)
    for kw in OUTPUTS:
        ours, theirs = both(model, X, refs, args=(alpha, beta), target=1, batch_size=4, **kw)
        close(ours, theirs)
    # Linear model: the multipliers are beta times the weights, whatever the reference.
    raw = deep_lift_shap(model, X, args=(alpha, beta), references=refs, target=1, raw_outputs=True,
                         device='cpu')
    expect = beta[:, None, :, None] * model.dense.weight[1].reshape(1, 1, 4, 12).detach()
    assert torch.allclose(raw, expect.expand_as(raw), atol=1e-6)


def test_reused_relu_instance_matches_tangermeme():
    class Reused(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = torch.nn.Conv1d(4, 8, 5, padding=2), torch.nn.Conv1d(8, 8, 5, padding=2)
            self.relu = torch.nn.ReLU()
            self.fc = torch.nn.Linear(8, 1)

        def forward(self, X):
            return self.fc(self.relu(self.c2(self.relu(self.c1(X)))).mean(-1))

    torch.manual_seed(5)
    X, refs = data(3, 30, 4)
    ours, theirs = both(Reused(), X, refs, batch_size=6)
    close(ours, theirs)


def predict_pairs(model, X, refs, target=0, args=()):
    N, K = refs.shape[:2]
    was = model.training
    model.eval()
    with torch.no_grad():
        fx = model(X, *args).reshape(N, -1)[:, target]
        fr = model(refs.flatten(0, 1), *[a.repeat_interleave(K, 0) for a in args])
    model.train(was)
    return fx, fr.reshape(N, K, -1)[..., target]


def assert_complete(model, X, refs, attr, target=0, args=(), tol=1e-5):
    fx, fr = predict_pairs(model, X, refs, target, args)
    gap = (attr.sum(dim=(1, 2)) - (fx - fr.mean(1))).abs().max()
    assert gap <= tol * max(1.0, (fx - fr.mean(1)).abs().max().item()), gap


@pytest.mark.parametrize('name', ['overlapping_pools', 'bpnet'])
def test_completeness(name):
    torch.manual_seed(6)
    if name == 'bpnet':
        model, L = CountsOnly(BPNetLike(n_filters=8, n_layers=3, in_len=160, out_len=40)), 160
    else:
        model, L = SmallCNN(length=120, pool_stride=2), 120
    X, refs = data(4, L, 6)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # no convergence warning on sound models
        attr = deep_lift_shap(model, X, references=refs, batch_size=9, device='cpu')
    assert_complete(model, X, refs, attr)
    # Hypothetical attributions masked by X are the attributions.
    hyp = deep_lift_shap(model, X, references=refs, batch_size=9, hypothetical=True, device='cpu')
    close(hyp * X, attr, 1e-6)


def test_batch_size_independence():
    torch.manual_seed(7)
    model = SmallCNN(length=120, pool_stride=2)
    X, refs = data(4, 120, 6)
    base = deep_lift_shap(model, X, references=refs, batch_size=24, raw_outputs=True, device='cpu')
    for bs in (1, 4, 5, 7, 13, 23, 64):  # smaller than n_shuffles, dividing N*K or not
        raw = deep_lift_shap(model, X, references=refs, batch_size=bs, raw_outputs=True,
                             device='cpu')
        close(raw, base, POOL_TOL)
    attr = deep_lift_shap(model, X, references=refs, batch_size=24, device='cpu')
    close(deep_lift_shap(model, X, references=refs, batch_size=5, device='cpu'), attr, POOL_TOL)


def test_batch_memory_is_bounded_by_batch_size():
    torch.manual_seed(8)
    model = SmallCNN(length=120)
    rows = []
    handle = model.c1.register_forward_pre_hook(
        lambda m, inp: rows.append((inp[0].shape[0], torch.is_grad_enabled())))
    X, refs = data(10, 120, 6)
    try:
        deep_lift_shap(model, X, references=refs, batch_size=8, device='cpu')
    finally:
        handle.remove()
    # 8 reference rows plus the distinct examples they belong to (at most 2 here); one pass per
    # batch with gradients (the first-batch check adds four small passes without).
    assert max(r for r, _ in rows) <= 8 + 2 and sum(g for _, g in rows) == 60 // 8 + 1
    assert sum(1 for _, g in rows if not g) == 4 and all(r <= 4 for r, g in rows if not g)


def test_random_state_references():
    from kipoi_tanger.ersatz import dinucleotide_shuffle
    torch.manual_seed(9)
    model = SmallCNN(length=60)
    X = random_one_hot((3, 4, 60), random_state=1).float()
    torch_state = torch.get_rng_state()
    a = deep_lift_shap(model, X, n_shuffles=5, random_state=11, batch_size=32, return_references=True,
                       device='cpu')
    assert torch.equal(torch.get_rng_state(), torch_state)  # torch's RNG is never consumed
    b = deep_lift_shap(model, X, n_shuffles=5, random_state=11, batch_size=3, return_references=True,
                       device='cpu')
    assert isinstance(a, AttributionReferencesResult)
    assert torch.equal(a.references, b.references)
    close(b.attributions, a.attributions, POOL_TOL)
    for k in range(5):
        expect = dinucleotide_shuffle(X, n=1, random_state=[11 + k] * 3)[:, 0]
        assert torch.equal(a.references[:, k], expect.float())
    fixed = deep_lift_shap(model, X, references=a.references, batch_size=32, device='cpu')
    assert torch.equal(fixed, a.attributions)

    np.random.seed(0)
    c = deep_lift_shap(model, X, n_shuffles=5, return_references=True, device='cpu')
    d = deep_lift_shap(model, X, n_shuffles=5, return_references=True, device='cpu')
    assert not torch.equal(c.references, d.references)
    np.random.seed(0)
    e = deep_lift_shap(model, X, n_shuffles=5, return_references=True, device='cpu')
    assert torch.equal(c.references, e.references)  # drawn from numpy's global RNG


def test_generic_callable_references_use_seed_plus_k():
    torch.manual_seed(10)
    model = SmallCNN(length=60)
    X = random_one_hot((3, 4, 60), random_state=2).float()
    calls = []

    def refs_fn(X_, n=1, random_state=None):
        calls.append(random_state)
        return tm_shuffle(X_, n=n, random_state=random_state)

    res = deep_lift_shap(model, X, references=refs_fn, n_shuffles=4, random_state=5, batch_size=5,
                         return_references=True, device='cpu')
    assert sorted(set(calls)) == [5, 6, 7, 8]
    for i in range(3):
        for k in range(4):
            assert torch.equal(res.references[i, k], tm_shuffle(X[i:i + 1], n=1, random_state=5 + k)[0, 0])


class FunctionalReLU(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv1d(4, 16, 5, padding=2)
        self.fc = torch.nn.Linear(16, 1)

    def forward(self, X):
        return self.fc(torch.relu(self.c1(X)).mean(-1))


def test_functional_relu_is_refused_and_warns_when_declared_linear(capsys):
    torch.manual_seed(11)
    X, refs = data(3, 50, 4)
    # tangermeme treats torch.relu in forward as linear and warns afterwards; it is refused by name.
    with pytest.raises(ValueError, match=r"module '<model>' \(test_deep_lift_shap\.FunctionalReLU\) computes "
                                         r"torch\.relu, which is nonlinear.*no DeepLIFT rule"):
        deep_lift_shap(FunctionalReLU(), X, references=refs, device='cpu')
    # Declared linear on purpose (tangermeme's treatment): it runs, and the warning names the module.
    with pytest.warns(RuntimeWarning) as record:
        deep_lift_shap(FunctionalReLU(), X, references=refs, device='cpu',
                       additional_nonlinear_ops={FunctionalReLU: 'linear'})
    messages = [str(w.message) for w in record]
    assert any('% of the output differences' in m and 'no DeepLIFT rule' in m for m in messages)
    assert all("'<model>' (test_deep_lift_shap.FunctionalReLU, declared linear)" in m for m in messages)
    with pytest.warns(RuntimeWarning, match='convergence deltas too high'):
        deep_lift_shap(SmallCNN(length=50), X, references=refs, warning_threshold=-1.0,
                       print_convergence_deltas=True, device='cpu')
    assert 'tensor(' in capsys.readouterr().out


class GRUNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(4, 8, batch_first=True)
        self.fc = torch.nn.Linear(8, 1)

    def forward(self, X):
        return self.fc(self.gru(X.transpose(1, 2))[0][:, -1])


class LSTMNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3, padding=1))
        self.encoder = torch.nn.ModuleDict({'lstm': torch.nn.LSTM(4, 8, batch_first=True)})
        self.fc = torch.nn.Linear(8, 1)

    def forward(self, X):
        return self.fc(self.encoder['lstm'](self.body(X).transpose(1, 2))[0][:, -1])


class AttnNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(4, 1, batch_first=True)
        self.fc = torch.nn.Linear(4, 1)

    def forward(self, X):
        h = X.transpose(1, 2)
        return self.fc(self.attn(h, h, h)[0].mean(1))


@pytest.mark.parametrize('cls,name,kind', [(GRUNet, 'gru', 'GRU'), (LSTMNet, 'encoder.lstm', 'LSTM'),
                                           (AttnNet, 'attn', 'MultiheadAttention')])
def test_modules_without_rule_are_refused(cls, name, kind):
    model = cls()
    X, refs = data(2, 20, 2)
    with pytest.raises(ValueError, match=rf"module '{name}' \({kind}\) has no DeepLIFT rule.*"
                                         rf"additional_nonlinear_ops=\{{torch\.nn\.{kind}: rule\}}"):
        deep_lift_shap(model, X, references=refs, device='cpu')
    assert not any(m._forward_hooks for m in model.modules())


def test_registered_rule_on_wrapper_runs_generic_path():
    class GRULast(torch.nn.Module):  # one tensor out, as rules require
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(4, 8, batch_first=True)

        def forward(self, h):
            return self.gru(h)[0]

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = GRULast()
            self.fc = torch.nn.Linear(8, 1)

        def forward(self, X):
            return self.fc(self.rnn(X.transpose(1, 2))[:, -1])

    seen = []

    def plain_gradient(module, grad_input, grad_output):
        seen.append((module.input.shape, module.output.shape, grad_output[0].shape))
        return grad_input

    torch.manual_seed(12)
    X, refs = data(3, 20, 4)
    with pytest.raises(ValueError, match="'rnn.gru' \\(GRU\\)"):
        deep_lift_shap(Net(), X, references=refs, device='cpu')
    with pytest.raises(ValueError, match='returns a tuple'):
        deep_lift_shap(Net(), X, references=refs, device='cpu',
                       additional_nonlinear_ops={torch.nn.GRU: plain_gradient})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        attr = deep_lift_shap(Net(), X, references=refs, batch_size=5, device='cpu',
                              additional_nonlinear_ops={GRULast: plain_gradient})
    assert attr.shape == X.shape and torch.isfinite(attr).all()
    # The rule sees the doubled batch: one example row per pair, then the reference rows.
    assert seen and all(i[0] == o[0] == g[0] == 2 * n for (i, o, g), n in zip(seen, [5, 5, 2]))


def test_additional_nonlinear_ops_override_and_generic_path():
    torch.manual_seed(13)
    model = SmallCNN(length=80, pool_stride=2)
    X, refs = data(3, 80, 4)
    fast = deep_lift_shap(model, X, references=refs, batch_size=5, raw_outputs=True, device='cpu')
    # The same rules run through the tangermeme-signature path give the same multipliers.
    generic = deep_lift_shap(model, X, references=refs, batch_size=5, raw_outputs=True, device='cpu',
                             additional_nonlinear_ops={
                                 torch.nn.ReLU: lambda m, gi, go: rescale_rule(m, gi, go),
                                 torch.nn.MaxPool1d: lambda m, gi, go: maxpool_rule(m, gi, go)})
    close(generic, fast, POOL_TOL)
    tm_rule = deep_lift_shap(model, X, references=refs, batch_size=5, raw_outputs=True, device='cpu',
                             additional_nonlinear_ops={torch.nn.ReLU: tm_nonlinear})
    close(tm_rule, fast, POOL_TOL)
    # Overriding ReLU with the plain gradient changes the result and breaks completeness.
    with pytest.warns(RuntimeWarning):
        plain = deep_lift_shap(model, X, references=refs, device='cpu',
                               additional_nonlinear_ops={torch.nn.ReLU: lambda m, gi, go: gi})
    assert not torch.allclose(plain, deep_lift_shap(model, X, references=refs, device='cpu'))


def test_custom_activation_class_with_rescale_rule():
    class Swish(torch.nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    torch.manual_seed(14)
    model = ActNet(Swish, L=30)
    X, refs = data(3, 30, 4)
    ours = deep_lift_shap(model, X, references=refs, device='cpu',
                          additional_nonlinear_ops={Swish: rescale_rule})
    theirs = tm_deep_lift_shap(model, X, references=refs, device='cpu',
                               additional_nonlinear_ops={Swish: tm_nonlinear})
    close(ours, theirs)
    assert_complete(model, X, refs, ours)


def test_inplace_relu_and_state_restoration():
    class InplaceNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv1d(4, 8, 5, padding=2)
            self.r1 = torch.nn.ReLU(inplace=True)
            self.drop = torch.nn.Dropout(0.5)
            self.fc = torch.nn.Linear(8, 1)

        def forward(self, X):
            return self.fc(self.drop(self.r1(self.c1(X))).mean(-1))

    torch.manual_seed(15)
    model = InplaceNet().train()
    X, refs = data(3, 30, 4)
    ours = deep_lift_shap(model, X, references=refs, device='cpu')
    assert model.training and model.drop.training and model.r1.inplace
    model.r1.inplace = False
    theirs = tm_deep_lift_shap(model.eval(), X, references=refs, device='cpu')
    close(ours, theirs)
    assert_complete(model, X, refs, ours)


class Profile(torch.nn.Module):
    """A (B, 1, out_len) profile output: not an attribution target."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, X):
        return self.inner(X)[0]


class Boom(torch.nn.Module):
    def forward(self, X):
        raise RuntimeError('boom')


def test_state_restored_after_exception():
    bp = BPNetLike(n_filters=4, n_layers=2, in_len=60, out_len=20).train()
    bp.rconvs[0].eval()
    X, refs = data(2, 60, 2)
    for bad, err in [(bp, ValueError), (Profile(bp), ValueError),
                     (torch.nn.Sequential(torch.nn.ReLU(inplace=True), Boom()).train(), RuntimeError)]:
        flags = {m: m.training for m in bad.modules()}
        with pytest.raises(err):
            deep_lift_shap(bad, X, references=refs, device='cpu')
        assert {m: m.training for m in bad.modules()} == flags
        assert not any(m._forward_hooks or m._backward_hooks for m in bad.modules())
    assert bp.training and not bp.rconvs[0].training
    assert bad[0].inplace


def test_output_contract():
    torch.manual_seed(16)
    X, refs = data(2, 60, 2)
    bp = BPNetLike(n_filters=4, n_layers=2, in_len=60, out_len=20)
    with pytest.raises(ValueError, match='tuple of 2 outputs.*counts'):
        deep_lift_shap(bp, X, references=refs, device='cpu')
    with pytest.raises(ValueError, match=r'\(1, 20\) per example.*sum'):
        deep_lift_shap(Profile(bp), X, references=refs, device='cpu')

    class Trailing(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, X):
            return self.inner(X)[:, :, None, None]

    cnn = SmallCNN(length=60)
    close(deep_lift_shap(Trailing(cnn), X, references=refs, target=2, device='cpu'),
          deep_lift_shap(cnn, X, references=refs, target=2, device='cpu'), 0)
    with pytest.raises(ValueError, match='target'):
        deep_lift_shap(cnn, X, references=refs, target=3, device='cpu')

    class Flat(torch.nn.Module):
        def forward(self, X):
            return X.sum(dim=(1, 2))

    with pytest.raises(ValueError, match=r'unsqueeze'):
        deep_lift_shap(Flat(), X, references=refs, device='cpu')


def test_bad_input():
    model = SmallCNN(length=20)
    X, refs = data(2, 20, 3)
    with pytest.raises(ValueError, match='X: must be one-hot'):
        deep_lift_shap(model, X * 0.5, references=refs, device='cpu')
    Xn = X.clone()
    Xn[0, :, 3] = 0
    with pytest.raises(ValueError, match='X: every position'):
        deep_lift_shap(model, Xn, references=refs, device='cpu')
    with pytest.raises(ValueError, match=r'references: expected shape \(2, n_shuffles, 4, 20\)'):
        deep_lift_shap(model, X, references=refs[:1], device='cpu')
    with pytest.raises(ValueError, match='random_state'):
        deep_lift_shap(model, X, random_state=1.5, device='cpu')
    with pytest.raises(ValueError, match='n_shuffles'):
        deep_lift_shap(model, X, n_shuffles=0, device='cpu')
    with pytest.raises(ValueError, match='batch_size'):
        deep_lift_shap(model, X, references=refs, batch_size=0, device='cpu')
    with pytest.raises(ValueError, match=r'args\[0\]'):  # fewer rows than X (more: first N used)
        deep_lift_shap(model, X, args=(torch.zeros(1, 1),), references=refs, device='cpu')
    with pytest.raises(TypeError, match='additional_nonlinear_ops'):
        deep_lift_shap(model, X, references=refs, device='cpu', additional_nonlinear_ops={'ReLU': 1})
    # N columns are allowed in references (only X must be fully one-hot).
    refs_n = refs.clone()
    refs_n[:, :, :, 0] = 0
    assert deep_lift_shap(model, X, references=refs_n, device='cpu').shape == X.shape


def test_int8_input_and_bfloat16_autocast():
    torch.manual_seed(17)
    model = SmallCNN(length=60)
    X, refs = data(3, 60, 4)
    base = deep_lift_shap(model, X, references=refs, device='cpu', verbose=True)
    assert torch.equal(deep_lift_shap(model, X.to(torch.int8), references=refs.to(torch.int8),
                                      device='cpu'), base)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        bf = deep_lift_shap(model, X, references=refs, device='cpu', dtype=torch.bfloat16)
    assert bf.dtype == torch.bfloat16
    close(bf, base, 0.1)


def test_captum_path_agrees_on_relu_net():
    torch.manual_seed(18)
    model = CountsOnly(BPNetLike(n_filters=8, n_layers=2, in_len=80, out_len=20))
    X, refs = data(3, 80, 4)
    ours = deep_lift_shap(model, X, references=refs, device='cpu')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        cap = captum_deep_lift_shap(model, X, references=refs, device='cpu', return_references=True)
        hyp = captum_deep_lift_shap(model, X, references=refs, device='cpu', hypothetical=True)
    close(cap.attributions, ours, 1e-5)
    assert torch.equal(cap.references, refs)
    close(hyp * X, cap.attributions, 1e-6)


def test_captum_missing_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'captum', None)
    monkeypatch.setitem(sys.modules, 'captum.attr', None)
    X, refs = data(1, 20, 2)
    with pytest.raises(ImportError, match='requires captum.*pip install captum'):
        captum_deep_lift_shap(SmallCNN(length=20), X, references=refs, device='cpu')


def test_hypothetical_attributions_matches_tangermeme():
    torch.manual_seed(19)
    mult = torch.randn(6, 4, 15)
    X, refs = data(6, 15, 1)
    refs = refs[:, 0]
    refs[0, :, 2] = 0  # an N column in a reference
    ours = hypothetical_attributions((mult,), (X,), (refs,))
    theirs = tm_hypothetical((mult,), (X,), (refs,))
    assert isinstance(ours, tuple) and len(ours) == 1
    assert torch.equal(ours[0], theirs[0])
    with pytest.raises(ValueError, match='one-element tuple'):
        hypothetical_attributions(mult, (X,), (refs,))
    with pytest.raises(ValueError, match='shape'):
        hypothetical_attributions((mult,), (X[:, :, :3],), (refs,))


def test_dead_branches_are_pruned_only_when_equivalent():
    from kipoi_tanger._deeplift_prune import prune_dead_branches
    torch.manual_seed(20)
    bp = BPNetLike(n_filters=8, n_layers=2, in_len=100, out_len=20)
    model = CountsOnly(bp).eval()
    X, refs = data(3, 100, 3)
    alpha, beta = torch.randn(3, 1), torch.randn(3, 1)
    for args in ((), (alpha, beta)):
        gm = prune_dead_branches(model, len(args), [])
        assert gm is not None and 'fconv' not in gm.code and 'rconvs' in gm.code
        assert torch.equal(gm(X, *args), model(X, *args))
    assert prune_dead_branches(SmallCNN(length=40), 0, []) is None  # nothing to drop
    # prune=False: the dead head runs on every forward row (its hook fires), with the same result.
    rows = []
    handle = bp.fconv.register_forward_pre_hook(lambda m, inp: rows.append(inp[0].shape[0]))
    try:
        unpruned = deep_lift_shap(model, X, references=refs, device='cpu', prune=False)
    finally:
        handle.remove()
    assert sum(rows) >= 3 * 3  # every pair row went through the profile head
    close(unpruned, deep_lift_shap(model, X, references=refs, device='cpu'), TOL)
    assert prune_dead_branches(GRUNet(), 0, []) is None

    # A hook on the dead head keeps it: it still fires during deep_lift_shap.
    calls = []
    handle = bp.fconv.register_forward_hook(lambda *a: calls.append(1))
    try:
        assert prune_dead_branches(model, 0, []) is None
        hooked = deep_lift_shap(model, X, references=refs, device='cpu')
    finally:
        handle.remove()
    assert calls
    close(deep_lift_shap(model, X, references=refs, device='cpu'), hooked, 0)


def test_pruning_falls_back_when_tracing_changes_the_function():
    class Aliased(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.nn.Conv1d(4, 4, 3, padding=1)
            self.relu = torch.nn.ReLU()
            self.head = torch.nn.Conv1d(4, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, X):
            h = self.c(X)
            a = h
            h += self.head(X)  # mutates a in eager; fx records an out-of-place add
            return self.fc(self.relu(a).mean(-1))

    from kipoi_tanger._deeplift_prune import prune_dead_branches
    torch.manual_seed(21)
    model = Aliased().eval()
    X, refs = data(3, 30, 4)
    gm = prune_dead_branches(model, 0, [])
    assert gm is not None and not torch.equal(gm(X), model(X))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        attr = deep_lift_shap(model, X, references=refs, device='cpu')
    fx_, fr = predict_pairs(model, X, refs)
    ok = (attr.sum(dim=(1, 2)) - (fx_ - fr.mean(1))).abs().max()
    wrong = (attr.sum(dim=(1, 2)) - (gm(X).squeeze(1) - fr.mean(1))).abs().max()
    assert ok < 1e-5 < wrong  # explained the eager model, not the traced one
