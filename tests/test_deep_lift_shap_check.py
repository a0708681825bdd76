"""deep_lift_shap's first-batch check: affine custom code is accepted (and tangermeme, which treats
it as linear, agrees), nonlinearities without a rule are refused by module name before any work,
models that mix the batch axis get separate forward passes (tangermeme mis-pairs them), models that
cannot be paired are refused; explain_check; tangermeme parity of exceptions, only_warn, the
signature."""
import inspect
import typing
import warnings

import pytest
import torch
import torch.nn.functional as F
from tangermeme.deep_lift_shap import deep_lift_shap as tm_deep_lift_shap
from tangermeme.ersatz import dinucleotide_shuffle as tm_shuffle
from tangermeme.utils import random_one_hot

from architectures import SmallCNN
from kipoi_tanger import deep_lift_shap as dls_module
from kipoi_tanger.deep_lift_shap import ExplainCheck, PairingError, deep_lift_shap, explain_check


pytestmark = pytest.mark.usefixtures('one_thread')     # tests/conftest.py


def data(N, L, K, seed=0):
    X = random_one_hot((N, 4, L), random_state=seed).float()
    return X, tm_shuffle(X, n=K, random_state=seed + 1).float()


def outputs(model, X, refs, target=0):
    N, K = refs.shape[:2]
    was = model.training
    model.eval()
    with torch.no_grad():
        fx = model(X)[:, target]
        fr = model(refs.flatten(0, 1)).reshape(N, K, -1)[..., target]
    model.train(was)
    return fx, fr


def assert_complete(model, X, refs, attr, target=0, tol=1e-5):
    """Completeness within ``tol`` of the output scale."""
    fx, fr = outputs(model, X, refs, target)
    d = fx - fr.mean(1)
    scale = max(fx.abs().max().item(), fr.abs().max().item(), d.abs().max().item())
    assert d.abs().max() > 1e-4, "output differences too small to test"
    g = (attr.sum(dim=(1, 2)) - d).abs().max().item()
    assert g <= tol * scale, f"completeness missed by {g:.3g} (outputs up to {scale:.3g})"


def close(ours, theirs, tol=2e-6):
    scale = theirs.abs().max().clamp_min(1e-12)
    err = ((ours - theirs).abs().max() / scale).item()
    assert err <= tol, f"max |diff| = {err:.3g} of the scale"


def tm(model, X, refs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return tm_deep_lift_shap(model, X, references=refs, device='cpu', **kw)


class Net(torch.nn.Module):
    """Conv + ReLU, then ``body`` (the module under test), then a dense layer."""

    def __init__(self, body, L=30):
        super().__init__()
        self.conv = torch.nn.Conv1d(4, 6, 5, padding=2)
        self.relu = torch.nn.ReLU()
        self.body = body
        with torch.no_grad():
            n = self.body(torch.zeros(1, 6, L)).flatten(1).shape[1]
        self.fc = torch.nn.Linear(n, 2)

    def forward(self, X):
        return self.fc(self.body(self.relu(self.conv(X))).flatten(1))


class Affine(torch.nn.Module):
    """Everything a converted or hand-written model does that is affine."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(6, 6) / 3)
        self.register_buffer('mask', torch.rand(1, 6, 30) > 0.3)
        self.bn = torch.nn.BatchNorm1d(6).eval()
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2)

    def forward(self, x):
        h = (x * 2 + 1).flip(-1)[:, [2, 0, 1, 3, 4, 5]]
        h = torch.cat([h, h.flip(-1)], 1)
        h = (h[:, :6] + h[:, 6:]) / 2
        h = F.avg_pool1d(F.pad(h, (1, 1)), 3, 1)
        h = torch.einsum('bcl,dc->bdl', h, self.w)
        h = torch.where(self.mask, h, 0.0)
        g = h.clone()
        g[:, 0] += 1
        g += h
        return self.bn(torch.cumulative_trapezoid(g, dim=-1))  # an op the check probes


def test_affine_custom_code_is_accepted_and_agrees_with_tangermeme():
    torch.manual_seed(0)
    model = Net(Affine())
    X, refs = data(3, 30, 4)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        ours = deep_lift_shap(model, X, references=refs, batch_size=5, device='cpu')
    assert_complete(model, X, refs, ours)
    close(ours, tm(model, X, refs, batch_size=5))
    report = explain_check(model, X, references=refs, batch_size=5, device='cpu')
    assert report.ok and report.mode == 'shared'
    assert "torch.cumulative_trapezoid in 'body' (test_deep_lift_shap_check.Affine)" in report.suspects


def _body(fn, name='Body'):
    return type(name, (torch.nn.Module,), {'forward': lambda self, x: fn(x), '__module__': __name__})()


NONLINEAR = [
    (lambda x: torch.relu(x), r"computes torch\.relu, which is nonlinear"),
    (lambda x: x * x.flip(-1), r"computes Tensor\.mul, which multiplies two activations"),
    (lambda x: x / (x.sum(-1, keepdim=True) + 1), r"computes Tensor\.div, which divides by an activation"),
    (lambda x: x.exp(), r"computes Tensor\.exp, which is nonlinear"),
    (lambda x: F.softmax(x, dim=1), r"computes torch\.nn\.functional\.softmax, which is nonlinear"),
    (lambda x: x + torch.randn_like(x), r"computes torch\.randn_like, which draws random numbers"),
    (lambda x: x.detach() + 0 * x, r"computes Tensor\.detach, which detaches an activation"),
    (lambda x: torch.special.expit(x), r"computes torch\.special\.expit, which is not known to be affine and "
                                       r"failed the affinity probe"),
    (lambda x: x.long().float(), r"computes Tensor\.long, which is nonlinear"),
    (lambda x: x.clamp(max=0.2) + x.relu_(), r"(?=.*also: Tensor\.relu_ in 'body')computes Tensor\.clamp, which is "
                                              r"nonlinear"),
]


@pytest.mark.parametrize('fn,msg', NONLINEAR, ids=[m.split(',')[0][12:] for _, m in NONLINEAR])
def test_functional_nonlinearity_is_refused_naming_the_module(fn, msg):
    torch.manual_seed(1)
    model = Net(_body(fn))
    X, refs = data(2, 30, 3)
    calls = []
    model.fc.register_forward_hook(lambda *a: calls.append(torch.is_grad_enabled()))
    with pytest.raises(ValueError, match=r"^deep_lift_shap: module 'body' \(test_deep_lift_shap_check\.Body\) "
                                         + msg + r".*no DeepLIFT rule covers it.*"
                                         r"additional_nonlinear_ops=\{test_deep_lift_shap_check\.Body: rule\}"):
        deep_lift_shap(model, X, references=refs, device='cpu')
    assert not any(calls)  # refused before any attribution pass
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules() if m is not model.fc)


@pytest.mark.parametrize('body,msg', [
    (lambda: torch.nn.LayerNorm(30), r"module 'body' \(torch\.nn\.LayerNorm\) computes torch\.nn\.functional\."
                                     r"layer_norm, which is nonlinear.*register a rule: additional_nonlinear_ops="
                                     r"\{torch\.nn\.LayerNorm: rule\}"),
    (lambda: torch.nn.BatchNorm1d(6, track_running_stats=False),
     r"module 'body' \(torch\.nn\.BatchNorm1d\) computes torch\.nn\.functional\.batch_norm, which normalizes "
     r"with batch statistics"),
    (lambda: torch.nn.GroupNorm(2, 6), r"module 'body' \(torch\.nn\.GroupNorm\) computes torch\.nn\.functional"
                                       r"\.group_norm"),
])
def test_torch_nn_modules_without_rule_are_refused(body, msg):
    model = Net(body())
    X, refs = data(2, 30, 3)
    with pytest.raises(ValueError, match=msg):
        deep_lift_shap(model, X, references=refs, device='cpu')


def test_nonlinearities_off_the_path_are_accepted():
    class Model(torch.nn.Module):
        """exp of an arg, a dead profile head with softplus, a check that only raises, an .item()."""

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 6, 5, padding=2)
            self.relu = torch.nn.ReLU()
            self.head = torch.nn.Conv1d(6, 1, 3, padding=1)
            self.fc = torch.nn.Linear(6, 2)

        def forward(self, X, beta):
            if bool((X > 1).any()):
                raise ValueError('not one-hot')
            h = self.relu(self.conv(X))
            profile = F.softplus(self.head(h))
            _ = h.sum().item()
            return profile, self.fc(h.mean(-1)) * torch.exp(beta)

    class Counts(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, X, beta):
            return self.m(X, beta)[1]

    torch.manual_seed(2)
    model = Counts(Model())
    X, refs = data(3, 30, 4)
    beta = torch.randn(3, 1)
    ours = deep_lift_shap(model, X, args=(beta,), references=refs, device='cpu')
    close(ours, tm(model, X, refs, args=(beta,)))
    report = explain_check(model, X, args=(beta,), references=refs, device='cpu')
    assert report.ok and "Model) reads activation values into Python (Tensor.item)" in report.suspects


class RCStack(torch.nn.Module):
    """DeepSEA/predict's trick: stack the reverse complement on the batch axis, average the halves."""

    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, X):
        y = self.body(torch.cat([X, X.flip(1, 2)], 0))
        return y[:X.shape[0]] / 2 + y[X.shape[0]:] / 2


class RCOnly(torch.nn.Module):
    def __init__(self, body):
        super().__init__()
        self.body = body

    def forward(self, X):
        return self.body(X.flip(1, 2))


def test_batch_stacking_model_gets_separate_passes_and_tangermeme_does_not():
    torch.manual_seed(3)
    body = SmallCNN(length=60, pool_stride=2)
    model = RCStack(body)
    X, refs = data(3, 60, 5)
    ours = deep_lift_shap(model, X, references=refs, batch_size=7, device='cpu')
    assert_complete(model, X, refs, ours)
    assert explain_check(model, X, references=refs, batch_size=7, device='cpu').mode == 'separate'
    # DeepLIFT is linear in the output: the average's attributions are the average of the halves',
    # each an ordinary model on which tangermeme is right.
    halves = (tm(body, X, refs, batch_size=7) + tm(RCOnly(body), X, refs, batch_size=7)) / 2
    close(ours, halves, 2e-5)
    theirs = tm(model, X, refs, batch_size=7)
    fx, fr = outputs(model, X, refs)
    assert (theirs.sum(dim=(1, 2)) - (fx - fr.mean(1))).abs().max() > 1e-2 * (fx - fr.mean(1)).abs().max()
    # batch_size, raw outputs and hypothetical attributions in separate mode
    close(deep_lift_shap(model, X, references=refs, batch_size=2, device='cpu'), ours, 2e-5)
    raw = deep_lift_shap(model, X, references=refs, batch_size=4, raw_outputs=True, device='cpu')
    raw_halves = (tm(body, X, refs, raw_outputs=True) + tm(RCOnly(body), X, refs, raw_outputs=True)) / 2
    close(raw, raw_halves, 2e-5)
    hyp = deep_lift_shap(model, X, references=refs, hypothetical=True, device='cpu')
    close(hyp * X, ours, 1e-6)


def test_batch_stacking_model_with_args():
    class RCArgs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cnn = SmallCNN(length=40)

        def forward(self, X, alpha, beta):
            both = torch.cat([X, X.flip(1, 2)], 0)
            y = self.cnn(both) * torch.cat([beta, beta]) + torch.cat([alpha, alpha])
            return (y[:X.shape[0]] + y[X.shape[0]:]) / 2

    torch.manual_seed(9)
    model = RCArgs()
    X, refs = data(3, 40, 4)
    alpha, beta = torch.randn(3, 1), torch.rand(3, 1) + 0.5
    ours = deep_lift_shap(model, X, args=(alpha, beta), references=refs, batch_size=5, device='cpu')
    N, K = refs.shape[:2]
    with torch.no_grad():
        fx = model(X, alpha, beta)[:, 0]
        fr = model(refs.flatten(0, 1), alpha.repeat_interleave(K, 0), beta.repeat_interleave(K, 0))
    d = fx - fr[:, 0].reshape(N, K).mean(1)
    assert (ours.sum(dim=(1, 2)) - d).abs().max() <= 1e-5 * max(fx.abs().max(), fr.abs().max())


def test_reordered_batch_rows_get_separate_passes():
    class Flip(torch.nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, X):
            return self.body(X.flip(0)).flip(0)

    torch.manual_seed(4)
    body = SmallCNN(length=40)
    model = Flip(body)
    X, refs = data(3, 40, 4)
    assert explain_check(model, X, references=refs, device='cpu').mode == 'separate'
    ours = deep_lift_shap(model, X, references=refs, device='cpu')
    assert_complete(model, X, refs, ours)
    close(ours, deep_lift_shap(body, X, references=refs, device='cpu'), 1e-5)


def test_models_that_cannot_be_paired_are_refused():
    class BatchMean(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cnn = SmallCNN(length=40)

        def forward(self, X):
            return self.cnn(X - X.mean(0, keepdim=True))

    X, refs = data(3, 40, 4)
    with pytest.raises(ValueError, match="output for an example depends on the other examples in the batch"):
        deep_lift_shap(BatchMean(), X, references=refs, device='cpu')

    class Moody(torch.nn.Module):
        """Stacks the batch (separate passes) and runs its ReLU again when ``cond(X)``."""

        def __init__(self, cond):
            super().__init__()
            self.cond = cond
            self.conv = torch.nn.Conv1d(4, 4, 3, padding=1)
            self.relu = torch.nn.ReLU()
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, X):
            h = self.relu(self.conv(torch.cat([X, X.flip(1, 2)], 0)))
            if self.cond(X):
                h = self.relu(h - 0.1)
            h = h[:X.shape[0]] + h[X.shape[0]:]
            return self.fc(h.mean(-1))

    X, refs = data(2, 20, 2)
    X[0, :, 0], X[1, :, 0] = torch.tensor([1., 0, 0, 0]), torch.tensor([0., 0, 1, 0])
    # When the first row starts with A: the check's reordered rows see it.
    with pytest.raises(ValueError, match=r"module 'relu' \(ReLU\) runs a different number of times or on "
                                         r"different shapes when the same examples come in another order"):
        deep_lift_shap(Moody(lambda X: bool(X[0, 0, 0] == 1)), X, references=refs, device='cpu')
    # When some row has an A at position 1: true for the check's rows in any order and for the
    # examples, not for the references; the pairing of the separate passes fails loudly.
    X[:, :, 1] = torch.tensor([1., 0, 0, 0])
    refs[:, :, :, 1] = torch.tensor([0., 1, 0, 0])
    with pytest.raises(PairingError, match=r"module 'relu' \(ReLU\) ran 2 time\(s\) on the examples but 1 on "
                                           r"the references"):
        deep_lift_shap(Moody(lambda X: bool(X[:, 0, 1].sum() > 0)), X, references=refs, device='cpu')


def test_explain_check_reports_deltas_and_suspects():
    torch.manual_seed(5)
    X, refs = data(4, 40, 5)
    cnn = SmallCNN(length=40)
    report = explain_check(cnn, X, references=refs, batch_size=7, device='cpu')
    assert isinstance(report, ExplainCheck) and report.ok and report.mode == 'shared'
    assert report.deltas.shape == (7,) and report.output_diffs.shape == (7,)  # the first batch only
    assert report.max_delta <= 1e-6 and 'adds up' in report.message
    full = deep_lift_shap(cnn, X, references=refs, batch_size=7, raw_outputs=True, device='cpu')
    first = deep_lift_shap(cnn, X[:2], references=refs[:2], batch_size=7, raw_outputs=True, device='cpu')
    close(first, full[:2], 1e-6)

    relu = _body(lambda x: torch.relu(x - 0.2), 'FunctionalReLU')
    model = Net(relu, L=40)
    with pytest.raises(ValueError, match="computes torch.relu"):
        explain_check(model, X, references=refs, device='cpu')
    bad = explain_check(model, X, references=refs, device='cpu',
                        additional_nonlinear_ops={type(relu): 'linear'})
    assert not bad.ok and bad.max_delta > 1e-3 and bad.relative > 0.01
    assert "'body' (test_deep_lift_shap_check.FunctionalReLU, declared linear)" in bad.suspects
    assert bad.message.startswith('deep_lift_shap: the attributions do not add up on the first batch')
    with pytest.warns(RuntimeWarning, match=r"suspects: modules treated as linear or given a user rule: 'body'"):
        deep_lift_shap(model, X, references=refs, device='cpu', additional_nonlinear_ops={type(relu): 'linear'})


def test_shared_instance_reached_twice_is_hooked_once():
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.act = torch.nn.ReLU()
            self.block = torch.nn.Sequential(torch.nn.Conv1d(4, 6, 5, padding=2), self.act)
            self.conv = torch.nn.Conv1d(6, 6, 3, padding=1)
            self.fc = torch.nn.Linear(6, 2)

        def forward(self, X):
            return self.fc(self.act(self.conv(self.block(X))).mean(-1))

    torch.manual_seed(6)
    model = Twice()
    X, refs = data(3, 30, 4)
    ours = deep_lift_shap(model, X, references=refs, device='cpu')
    assert_complete(model, X, refs, ours)
    close(ours, tm(model, X, refs))


def test_ruled_module_run_outside_its_ruled_parent_is_refused():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.act = torch.nn.Tanh()

        def forward(self, x):
            return self.act(x) * 2

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 3, 3)
            self.block = Block()
            self.fc = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.fc(self.block.act(self.block(self.conv(x))).mean(-1))

    X, refs = data(2, 20, 2)
    with pytest.raises(ValueError, match=r"module 'block\.act' \(torch\.nn\.Tanh\) has a rule but sits inside "
                                         r"another ruled module and runs outside it"):
        deep_lift_shap(Model(), X, references=refs, device='cpu', additional_nonlinear_ops={Block: 'rescale'})
    deep_lift_shap(Model(), X, references=refs, device='cpu')  # Block not ruled: Tanh hooked everywhere


def test_check_runs_once_per_model_and_again_when_it_changes():
    torch.manual_seed(7)
    model = SmallCNN(length=30)
    X, refs = data(2, 30, 2)
    passes = []
    model.c1.register_forward_pre_hook(lambda m, i: passes.append(torch.is_grad_enabled()))
    deep_lift_shap(model, X, references=refs, device='cpu')
    assert passes.count(False) == 4  # the check's four passes
    passes.clear()
    deep_lift_shap(model, X, references=refs, device='cpu')
    assert passes.count(False) == 0
    deep_lift_shap(model, X, references=refs, device='cpu', additional_nonlinear_ops={torch.nn.ReLU: 'rescale'})
    assert passes.count(False) == 0  # the same rules as the built-in ones
    deep_lift_shap(model, X, references=refs, device='cpu', additional_nonlinear_ops={torch.nn.Identity: 'linear'})
    assert passes.count(False) == 4
    passes.clear()
    model.r3 = _body(torch.relu)  # a new module: checked again, and refused
    with pytest.raises(ValueError, match="module 'r3'"):
        deep_lift_shap(model, X, references=refs, device='cpu')


# ---------------------------------------------------------------------------
# tangermeme parity: exceptions, only_warn, signature
# ---------------------------------------------------------------------------

def _tm_error(**kw):
    try:
        tm_deep_lift_shap(SmallCNN(length=20), device='cpu', **kw)
    except Exception as e:  # noqa: BLE001 - we want its type
        return type(e)
    raise AssertionError('tangermeme did not raise')


def test_exception_types_match_tangermeme():
    X, refs = data(2, 20, 3)
    model = SmallCNN(length=20)
    cases = [(dict(X=X, target=999, references=refs), 'target: 999 is out of range'),
             (dict(X=X, target=1.5, references=refs), 'target: expected an int'),
             (dict(X=X, n_shuffles=0, random_state=0), r'n_shuffles: expected a positive int \(at least one'),
             (dict(X=X, references=refs[:, :0]), 'references: must be non-empty: at least one reference'),
             (dict(X=X[:0], references=refs[:0]), 'X: must contain at least one example')]
    for kw, msg in cases:
        expected = _tm_error(**kw)
        with pytest.raises(expected, match=msg):
            deep_lift_shap(model, device='cpu', **kw)
        with pytest.raises(ValueError, match=msg):  # and still a ValueError for callers checking bad input
            deep_lift_shap(model, device='cpu', **kw)
    assert _tm_error(X=X, target=999, references=refs) is IndexError
    assert _tm_error(X=X, n_shuffles=0, random_state=0) is RuntimeError


def test_only_warn_downgrades_one_hot_checks_like_tangermeme():
    torch.manual_seed(8)
    model = SmallCNN(length=20)
    X, refs = data(2, 20, 3)
    for kw, msg in [(dict(X=X * 0.5, references=refs), 'X: must be one-hot'),
                    (dict(X=torch.cat([X[:, :, :3] * 0, X[:, :, 3:]], -1), references=refs), 'X: every position'),
                    (dict(X=X, references=refs * 0.5), 'references: must be one-hot')]:
        with pytest.raises(ValueError, match=msg):
            deep_lift_shap(model, device='cpu', **kw)
        with pytest.warns(UserWarning, match=msg):
            ours = deep_lift_shap(model, device='cpu', only_warn=True, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            close(ours, tm_deep_lift_shap(model, device='cpu', only_warn=True, **kw), 2e-5)
    with pytest.raises(ValueError, match=r'references: expected shape'):  # shapes still raise
        deep_lift_shap(model, X, references=refs[:1], only_warn=True, device='cpu')


def test_signature_mirrors_tangermeme_with_type_hints():
    ours = inspect.signature(deep_lift_shap).parameters
    theirs = inspect.signature(tm_deep_lift_shap).parameters
    assert list(ours)[:len(theirs)] == list(theirs) and list(ours)[len(theirs):] == ['prune']
    for name, p in theirs.items():
        if name != 'references':
            assert ours[name].default == p.default, name
    hints = typing.get_type_hints(deep_lift_shap)
    assert set(ours) | {'return'} == set(hints)
    assert hints['prune'] is bool and hints['only_warn'] is bool
    assert not hasattr(dls_module, 'PRUNE_DEAD_BRANCHES')
