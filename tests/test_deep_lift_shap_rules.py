"""DeepLIFT rules: every elementwise nonlinear module of torch.nn has the rescale rule (enumerated
from torch.nn, so a new one fails here), each checked against completeness and against tangermeme
given that rule; softmax family, log-softmax and adaptive max-pool rules; rules given by name
(additional_nonlinear_ops values and rules_from_names, the model.yaml grammar)."""
import os
import textwrap
import warnings

import pytest
import torch
from tangermeme._deep_lift_utils import _nonlinear as tm_nonlinear
from tangermeme.deep_lift_shap import deep_lift_shap as tm_deep_lift_shap
from tangermeme.ersatz import dinucleotide_shuffle as tm_shuffle
from tangermeme.utils import random_one_hot

from kipoi_tanger._deeplift_rules import (BUILTIN_RULES, ELEMENTWISE, RULE_NAMES, build_rules, linear_rule,
                                          logsoftmax_rule, maxpool_rule, rescale_rule, softmax_rule)
from kipoi_tanger.deep_lift_shap import deep_lift_shap, rules_from_names

# Needed constructor arguments of torch.nn modules that have no defaults.
CTOR_ARGS = {torch.nn.Threshold: (0.1, -0.5)}


pytestmark = pytest.mark.usefixtures('one_thread')     # tests/conftest.py


def data(N, L, K, seed=0):
    X = random_one_hot((N, 4, L), random_state=seed).float()
    return X, tm_shuffle(X, n=K, random_state=seed + 1).float()


def gap(model, X, refs, attr, target=0):
    """max |sum(attr) - (f(x) - mean_k f(ref_k))|, max |f(x) - mean_k f(ref_k)| and the output
    scale max |f| (what float32 rounding is relative to)."""
    N, K = refs.shape[:2]
    was = model.training
    model.eval()  # as deep_lift_shap runs it (RReLU, Dropout)
    with torch.no_grad():
        fx = model(X)[:, target]
        fr = model(refs.flatten(0, 1)).reshape(N, K, -1)[..., target].mean(1)
    model.train(was)
    d = fx - fr
    scale = max(fx.abs().max().item(), fr.abs().max().item())
    return (attr.sum(dim=(1, 2)) - d).abs().max().item(), d.abs().max().item(), scale


def assert_complete(model, X, refs, attr, target=0, tol=1e-5):
    """Completeness within ``tol`` of the output scale, on output differences worth testing."""
    g, diff, scale = gap(model, X, refs, attr, target)
    assert diff > 1e-4 and diff > 1e-3 * scale, f"output differences too small to test ({diff:.2g})"
    assert g <= tol * max(scale, diff), \
        f"completeness missed by {g:.3g} (output differences up to {diff:.3g}, outputs up to {scale:.3g})"


def close(ours, theirs, tol):
    scale = theirs.abs().max().clamp_min(1e-12)
    err = ((ours - theirs).abs().max() / scale).item()
    assert err <= tol, f"max |diff| = {err:.3g} of the scale"


def _instances():
    """Every torch.nn.Module class that builds without arguments (or with CTOR_ARGS)."""
    for name in sorted(dir(torch.nn)):
        cls = getattr(torch.nn, name)
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                yield cls, cls(*CTOR_ARGS.get(cls, ())).eval()
            except Exception:
                continue


def _elementwise_nonlinear(module):
    """Same-shape output, diagonal Jacobian, and not linear."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 6, generator=g) * 2
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter('ignore')
            y = module(x)
            if not isinstance(y, torch.Tensor) or y.shape != x.shape:
                return False
            for i in range(0, x.numel(), 5):
                xp = x.clone().view(-1)
                xp[i] += 0.7
                changed = (module(xp.view(x.shape)) != y).view(-1)
                changed[i] = False
                if bool(changed.any()):
                    return False
            z = torch.randn(2, 3, 6, generator=g) * 2
            return not torch.allclose(module(x + z), y + module(z), atol=1e-5)
    except Exception:
        return False


def test_every_elementwise_torch_nn_module_has_the_rescale_rule():
    found = {cls for cls, m in _instances() if _elementwise_nonlinear(m)}
    assert torch.nn.Threshold in found and torch.nn.ReLU in found and len(found) >= 20
    missing = sorted(c.__name__ for c in found if BUILTIN_RULES.get(c) is not rescale_rule)
    assert not missing, f"elementwise nonlinear torch.nn modules without the rescale rule: {missing}"
    assert set(ELEMENTWISE) == found  # and nothing that is not elementwise got it


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


def _factory(cls):
    return lambda: cls(*CTOR_ARGS.get(cls, ()))


@pytest.mark.parametrize('cls', ELEMENTWISE, ids=[c.__name__ for c in ELEMENTWISE])
def test_elementwise_rule_completeness_and_tangermeme_parity(cls):
    torch.manual_seed(3)
    model = ActNet(_factory(cls))
    with torch.no_grad():  # activations past the shrink/threshold kinks, outputs large enough to test
        for layer, gain in ((model.c1, 2.5), (model.c2, 2.5), (model.fc, 4)):
            layer.weight.mul_(gain)
    X, refs = data(3, 40, 4)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # a sound rule: no convergence warning
        ours = deep_lift_shap(model, X, references=refs, target=1, batch_size=5, device='cpu')
    assert_complete(model, X, refs, ours, target=1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        theirs = tm_deep_lift_shap(model, X, references=refs, target=1, batch_size=5, device='cpu',
                                   additional_nonlinear_ops={cls: tm_nonlinear})
    close(ours, theirs, 2e-6)


class PoolNet(torch.nn.Module):
    def __init__(self, pool, act=None):
        super().__init__()
        self.c1 = torch.nn.Conv1d(4, 6, 5, padding=2)
        self.r1 = torch.nn.ReLU()
        self.pool = pool
        self.act = act if act is not None else torch.nn.Identity()
        self.fc = torch.nn.LazyLinear(3)

    def forward(self, X):
        return self.fc(self.act(self.pool(self.r1(self.c1(X)))).flatten(1))


def test_adaptive_max_pool_is_the_max_pool_rule():
    torch.manual_seed(4)
    X, refs = data(3, 30, 4)
    adaptive = PoolNet(torch.nn.AdaptiveMaxPool1d(3))
    adaptive(X)  # materialise the lazy layer
    plain = PoolNet(torch.nn.MaxPool1d(10))
    plain(X)
    plain.load_state_dict(adaptive.state_dict())
    ours = deep_lift_shap(adaptive, X, references=refs, device='cpu')
    assert_complete(adaptive, X, refs, ours)
    close(ours, deep_lift_shap(plain, X, references=refs, device='cpu'), 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        close(ours, tm_deep_lift_shap(plain, X, references=refs, device='cpu'), 2e-6)


class Image(torch.nn.Module):
    """(N, C, L) → (N, C, 1, L), where Softmax2d works over channels."""

    def __init__(self, act):
        super().__init__()
        self.act = act

    def forward(self, x):
        return self.act(x.unsqueeze(2)).squeeze(2)


@pytest.mark.parametrize('act', [lambda: torch.nn.Softmin(dim=1), lambda: Image(torch.nn.Softmax2d()),
                                 lambda: torch.nn.LogSoftmax(dim=1), lambda: torch.nn.Softmax(dim=-1)],
                         ids=['Softmin', 'Softmax2d', 'LogSoftmax', 'Softmax-last'])
def test_softmax_family_completeness(act):
    torch.manual_seed(5)
    model = ActNet(act, L=30)
    X, refs = data(3, 30, 4)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        ours = deep_lift_shap(model, X, references=refs, batch_size=5, device='cpu')
    assert_complete(model, X, refs, ours)


def test_softmin_equals_softmax_of_negated_input():
    class Neg(torch.nn.Module):
        def forward(self, x):
            return -x

    torch.manual_seed(6)
    X, refs = data(3, 30, 4)
    a = ActNet(lambda: torch.nn.Softmin(dim=1), L=30)
    b = ActNet(lambda: torch.nn.Sequential(Neg(), torch.nn.Softmax(dim=1)), L=30)
    b.load_state_dict(a.state_dict())
    close(deep_lift_shap(a, X, references=refs, device='cpu'),
          deep_lift_shap(b, X, references=refs, device='cpu'), 1e-5)


def test_rule_names_as_additional_nonlinear_ops_values():
    rules = build_rules({torch.nn.Identity: 'LINEAR', torch.nn.ReLU: ' rescale '})
    assert rules[torch.nn.Identity] is linear_rule and rules[torch.nn.ReLU] is rescale_rule
    assert RULE_NAMES == {'rescale': rescale_rule, 'maxpool': maxpool_rule, 'softmax': softmax_rule,
                          'logsoftmax': logsoftmax_rule, 'linear': linear_rule}
    with pytest.raises(ValueError, match="rule 'relu' for Identity is not one of rescale, maxpool"):
        build_rules({torch.nn.Identity: 'relu'})
    with pytest.raises(TypeError, match='not callable'):
        build_rules({torch.nn.Identity: 3})


MODEL_PY = '''
import torch


class MyAct(torch.nn.Module):
    """A Swish with a slope: elementwise, nonlinear, unknown to kipoi_tanger."""
    def forward(self, x):
        return x * torch.sigmoid(1.5 * x)


class Scale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer('s', torch.tensor([0.5, -1.0, 2.0, 1.5]))

    def forward(self, x):
        return x * self.s[None, :, None]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = Scale()
        self.conv = torch.nn.Conv1d(4, 6, 5, padding=2)
        self.act = MyAct()
        self.fc = torch.nn.Linear(6, 2)

    def forward(self, x):
        return self.fc(self.act(self.conv(self.scale(x))).mean(-1))
'''


@pytest.fixture
def kipoi_module(tmp_path):
    """The model file loaded the way Kipoi loads a module_file (a module named after the file)."""
    from kipoi_utils.utils import load_module
    path = tmp_path / 'model.py'
    path.write_text(textwrap.dedent(MODEL_PY))
    return load_module(str(path)), str(path)


def test_rules_from_names_declares_a_custom_activation(kipoi_module):
    mod, path = kipoi_module
    torch.manual_seed(7)
    model = mod.Net()
    with torch.no_grad():
        model.fc.weight.mul_(4)
    X, refs = data(3, 30, 4)
    with pytest.raises(ValueError, match=r"module 'act' \(model\.MyAct\) computes torch\.sigmoid, which is "
                                         r"nonlinear.*additional_nonlinear_ops=\{model\.MyAct: rule\}"):
        deep_lift_shap(model, X, references=refs, device='cpu')
    for key in ('model.MyAct', 'MyAct'):
        ops = rules_from_names({key: 'rescale'}, model=model, module_file=path)
        assert ops == {mod.MyAct: rescale_rule}
    ours = deep_lift_shap(model, X, references=refs, device='cpu', additional_nonlinear_ops=ops)
    assert_complete(model, X, refs, ours)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        theirs = tm_deep_lift_shap(model, X, references=refs, device='cpu',
                                   additional_nonlinear_ops={mod.MyAct: tm_nonlinear})
    close(ours, theirs, 2e-6)
    # A rule given as an import path runs the tangermeme-signature path, with the same result.
    via_path = rules_from_names({'model.MyAct': 'tangermeme._deep_lift_utils:_nonlinear'}, model=model)
    assert via_path == {mod.MyAct: tm_nonlinear}
    close(deep_lift_shap(model, X, references=refs, device='cpu', additional_nonlinear_ops=via_path), ours, 2e-6)


def test_rules_from_names_grammar_and_errors(kipoi_module):
    mod, path = kipoi_module
    model = mod.Net()
    assert rules_from_names({'torch.nn.Threshold': 'rescale', 'torch.nn:Softmin': 'softmax'}) == \
        {torch.nn.Threshold: rescale_rule, torch.nn.Softmin: softmax_rule}
    assert rules_from_names({'model.Scale': 'Linear'}, model=model) == {mod.Scale: linear_rule}
    # The file stem given by module_file is accepted whatever name the module was loaded under.
    stem = os.path.splitext(os.path.basename(path))[0]
    assert rules_from_names({f'{stem}.Scale': 'linear'}, model=model, module_file=path) == {mod.Scale: linear_rule}
    where = 'model.yaml postprocessing.tanger.rules'
    bad = [({'model.Nope': 'rescale'}, r"'model\.Nope' is neither a class of the model \(e\.g\. .*model\.MyAct"),
           ({'model.MyAct': 'relu'}, r"rule 'relu' for 'model\.MyAct' is not one of rescale, maxpool, softmax"),
           ({'model.MyAct': 'nope.mod:func'}, r"rule 'nope\.mod:func' for 'model\.MyAct' cannot be imported"),
           ({'model.MyAct': 3}, r"rule for 'model\.MyAct' must be one of"),
           ({'os.path': 'linear'}, r"'os\.path' is not a torch\.nn\.Module subclass"),
           ({'': 'linear'}, r"key '' must be a class name"),
           (['model.MyAct'], r"expected a mapping")]
    for decl, msg in bad:
        with pytest.raises(ValueError, match=rf"^{where}: {msg}"):
            rules_from_names(decl, model=model, where=where)


def test_declared_linear_module_is_trusted_and_not_hooked(kipoi_module):
    mod, _ = kipoi_module
    torch.manual_seed(8)
    model = mod.Net()
    X, refs = data(2, 30, 3)
    ops = {mod.MyAct: rescale_rule}
    base = deep_lift_shap(model, X, references=refs, device='cpu', additional_nonlinear_ops=ops)
    # Scale is verified affine automatically; declaring it linear changes nothing.
    ops2 = dict(ops, **{}) | rules_from_names({'model.Scale': 'linear'}, model=model)
    close(deep_lift_shap(model, X, references=refs, device='cpu', additional_nonlinear_ops=ops2), base, 1e-6)
    assert not any(m._forward_hooks for m in model.modules())
