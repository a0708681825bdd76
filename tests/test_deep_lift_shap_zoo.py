"""deep_lift_shap on nets shaped like the real Kipoi zoo's PyTorch models (tests/zoo_architectures.py):
completeness within 1e-5 of the output scale with no declaration at all, parity with tangermeme
where tangermeme is right (given a rule for nn.Threshold), and DeepSEA/predict's reverse-complement
batch stacking, which tangermeme mis-pairs and kipoi_tanger does not."""
import warnings

import pytest
import torch
from tangermeme._deep_lift_utils import _nonlinear as tm_nonlinear
from tangermeme.deep_lift_shap import deep_lift_shap as tm_deep_lift_shap
from tangermeme.ersatz import dinucleotide_shuffle as tm_shuffle
from tangermeme.utils import random_one_hot

from kipoi_tanger.deep_lift_shap import deep_lift_shap, explain_check
from zoo_architectures import Canonical, canonical, deepsea_predict_like

THRESHOLD_RULE = {torch.nn.Threshold: tm_nonlinear}
LENGTHS = {'deepsea_like': 200, 'beluga_like': 400, 'basset_like': 200, 'deepsea_predict_like': 200}


pytestmark = pytest.mark.usefixtures('one_thread')     # tests/conftest.py


def data(L, N=3, K=5, seed=0):
    X = random_one_hot((N, 4, L), random_state=seed).float()
    return X, tm_shuffle(X, n=K, random_state=seed + 1).float()


def completeness(model, X, refs, attr, target):
    """(max |sum(attr) - (f(x) - mean f(refs))|, output scale max |f|, max |f(x) - mean f(refs)|)."""
    N, K = refs.shape[:2]
    with torch.no_grad():
        fx = model(X)[:, target]
        fr = model(refs.flatten(0, 1)).reshape(N, K, -1)[..., target]
    d = fx - fr.mean(1)
    scale = max(fx.abs().max().item(), fr.abs().max().item())
    return (attr.sum(dim=(1, 2)) - d).abs().max().item(), scale, d.abs().max().item()


def tm(model, X, refs, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return tm_deep_lift_shap(model, X, references=refs, device='cpu', **kw)


def close(ours, theirs, tol):
    err = ((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-12)).item()
    assert err <= tol, f"max |diff| = {err:.3g} of the scale"


@pytest.mark.parametrize('name', ['deepsea_like', 'beluga_like', 'basset_like'])
def test_zoo_nets_are_complete_and_match_tangermeme(name):
    model = canonical(name, length=LENGTHS[name])
    X, refs = data(LENGTHS[name])
    target = 1
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # no convergence warning, no declaration needed
        ours = deep_lift_shap(model, X, references=refs, target=target, batch_size=8, device='cpu')
    gap, scale, diff = completeness(model, X, refs, ours, target)
    assert diff > 1e-3 and gap <= 1e-5 * scale, (gap, scale, diff)
    close(ours, tm(model, X, refs, target=target, batch_size=8, additional_nonlinear_ops=THRESHOLD_RULE), 1e-5)
    assert explain_check(model, X, references=refs, target=target, batch_size=8, device='cpu').mode == 'shared'


def test_deepsea_threshold_relu_is_not_treated_as_linear():
    """tangermeme 1.6.0 has no rule for nn.Threshold (DeepSEA's ReLU) and treats it as linear."""
    model = canonical('deepsea_like', length=200)
    X, refs = data(200)
    ours = deep_lift_shap(model, X, references=refs, device='cpu')
    gap, scale, diff = completeness(model, X, refs, ours, 0)
    assert gap <= 1e-5 * scale
    theirs = tm(model, X, refs)
    their_gap, _, _ = completeness(model, X, refs, theirs, 0)
    assert their_gap > 1e-2 * diff, (their_gap, diff)


class RCHalf(torch.nn.Module):
    """The second half of ConcatenateRC only: the reverse complement, not stacked."""

    def forward(self, x):
        return x.flip(1, 3)


def test_deepsea_predict_reverse_complement_stacking():
    L = LENGTHS['deepsea_predict_like']
    net = deepsea_predict_like(length=L)
    model = Canonical(net, '(4, 1, L)').eval()
    recode, _, body, _ = net
    forward_half = Canonical(torch.nn.Sequential(recode, body), '(4, 1, L)').eval()
    reverse_half = Canonical(torch.nn.Sequential(recode, RCHalf(), body), '(4, 1, L)').eval()
    X, refs = data(L)
    target = 2
    report = explain_check(model, X, references=refs, target=target, batch_size=7, device='cpu')
    assert report.ok and report.mode == 'separate'
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)
        ours = deep_lift_shap(model, X, references=refs, target=target, batch_size=7, device='cpu')
    gap, scale, diff = completeness(model, X, refs, ours, target)
    assert diff > 1e-3 and gap <= 1e-5 * scale, (gap, scale, diff)
    # The average of two ordinary models, on which tangermeme is right: the attributions average too.
    halves = [tm(m, X, refs, target=target, batch_size=7, additional_nonlinear_ops=THRESHOLD_RULE)
              for m in (forward_half, reverse_half)]
    close(ours, (halves[0] + halves[1]) / 2, 2e-5)
    # tangermeme pairs the stacked rows wrongly, even given the Threshold rule.
    theirs = tm(model, X, refs, target=target, batch_size=7, additional_nonlinear_ops=THRESHOLD_RULE)
    their_gap, _, _ = completeness(model, X, refs, theirs, target)
    assert their_gap > 100 * max(gap, 1e-7) and their_gap > 1e-2 * diff, (their_gap, gap, diff)
