"""space: parity with tangermeme 1.6.0, the contract (y_afters[:, k] is func on
multisubstitute at spacing row k), batching, funcs, bad input."""
import numpy
import pytest
import torch
import tangermeme.space as tm_space_module
from tangermeme.deep_lift_shap import deep_lift_shap as tm_deep_lift_shap
from tangermeme.space import space as tm_space

from architectures import BPNetLike, FlattenDense, SmallCNN
from kipoi_tanger import space as space_module
from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.ersatz import dinucleotide_shuffle, multisubstitute
from kipoi_tanger.predict import predict
from kipoi_tanger.results import SpaceResult
from kipoi_tanger.space import space
from kipoi_tanger.utils import random_one_hot
from tm_parity import assert_raises_like, assert_same_api


def close(a, b):
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape, (a.shape, b.shape)
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), (a - b).abs().max()
    else:
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            close(x, y)


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return SmallCNN(length=60, n_outputs=2)


def test_public_api_matches_tangermeme():
    assert_same_api(tm_space_module, space_module)
    assert space_module.SpaceResult is SpaceResult


@pytest.mark.parametrize('motifs,spacing,start,batch_size', [
    (['GATA', 'CAGG'], [[0], [2], [5], [20]], None, 32),
    (['GATA', 'CAGG'], [[0], [2], [5]], 7, 1),
    (['GATA', 'CAGG', 'TT'], [[0, 1], [3, 2], [10, 0]], None, 5),
    (['GANTA'], numpy.zeros((2, 0), dtype=int), 3, 32),
])
def test_matches_tangermeme(cnn, motifs, spacing, start, batch_size):
    X = random_one_hot((5, 4, 60), random_state=0).float()
    X[2, :, 30] = 0
    ours = space(cnn, X, motifs, spacing, start=start, batch_size=batch_size, device='cpu')
    theirs = tm_space(cnn, X, motifs, torch.as_tensor(numpy.asarray(spacing)), start=start,
                      batch_size=batch_size, device='cpu')
    assert isinstance(ours, SpaceResult)
    S = len(spacing)
    assert ours.y_before.shape == (5, 2) and ours.y_afters.shape == (5, S, 2)
    close(tuple(ours), tuple(theirs))
    for k, row in enumerate(numpy.asarray(spacing).tolist()):
        expect = predict(cnn, multisubstitute(X, motifs, row, start=start), device='cpu')
        close(ours.y_afters[:, k], expect)


def test_args_multi_output_and_batch_size_independence():
    model = BPNetLike(n_filters=4, n_layers=2, in_len=100, out_len=20)
    X = random_one_hot((3, 4, 100), random_state=1).float()
    alpha, beta = torch.randn(3, 1), torch.randn(3, 1)
    spacing = torch.tensor([[0], [4], [9]])
    runs = [space(model, X, ['GATA', 'CAGG'], spacing, args=(alpha, beta), batch_size=bs,
                  device='cpu') for bs in (1, 4, 64)]
    theirs = tm_space(model, X, ['GATA', 'CAGG'], spacing, args=(alpha, beta), batch_size=4,
                      device='cpu')
    assert isinstance(runs[0].y_afters, list) and runs[0].y_afters[0].shape == (3, 3, 1, 20)
    for r in runs:
        close(r.y_before, theirs.y_before)
        close(r.y_afters, theirs.y_afters)


def test_other_funcs_are_called_per_spacing(cnn):
    X = random_one_hot((3, 4, 60), random_state=2).float()
    refs = dinucleotide_shuffle(X, n=3, random_state=0).float()
    spacing = [[1], [6]]
    ours = space(cnn, X, ['GATA', 'CAGG'], spacing, func=deep_lift_shap, references=refs,
                 target=1, device='cpu')
    theirs = tm_space(cnn, X, ['GATA', 'CAGG'], torch.tensor(spacing), func=tm_deep_lift_shap,
                      references=refs, target=1, device='cpu')
    assert ours.y_afters.shape == (3, 2, 4, 60)
    close(tuple(ours), tuple(theirs))
    calls = []

    def counting(model, X, **kwargs):
        calls.append(sorted(kwargs))
        return predict(model, X, **kwargs)

    space(cnn, X, ['GATA', 'CAGG'], spacing, func=counting, batch_size=2, verbose=True,
          device='cpu')
    assert calls == [['batch_size', 'device']] * 3  # verbose is not forwarded


def test_spacing_forms(cnn):
    X = random_one_hot((2, 4, 60), random_state=3).float()
    ref = space(cnn, X, ['GATA', 'CAGG'], torch.tensor([[0], [2]]), device='cpu')
    for form in ([[0], [2]], numpy.array([[0], [2]]), torch.tensor([[0.0], [2.0]])):
        close(tuple(space(cnn, X, ['GATA', 'CAGG'], form, device='cpu')), tuple(ref))


@pytest.mark.parametrize('spacing,match', [
    (torch.tensor([0, 2]), 'shape'), (2, 'shape'), (torch.tensor([[0, 1]]), 'shape'),
    (torch.tensor([[-1]]), 'negative'), (torch.tensor([[53]]), 'fit'),
])
def test_bad_spacing_errors_like_tangermeme(spacing, match):
    X = random_one_hot((2, 4, 60), random_state=0).float()
    model = FlattenDense(length=60)
    assert_raises_like(lambda: tm_space(model, X, ['GATA', 'CAGG'], spacing),
                       lambda: space(model, X, ['GATA', 'CAGG'], spacing), match=match)


def test_bad_input_is_refused_before_any_forward_pass():
    X = random_one_hot((2, 4, 60), random_state=0).float()
    calls = []

    def counting(model, X, **kwargs):
        calls.append(len(X))
        return predict(model, X, **kwargs)

    model = FlattenDense(length=60)
    for spacing, match in [([[0], [60]], 'fit'), ([[1.5]], 'integer'),
                           (numpy.zeros((0, 1), dtype=int), 'at least one row')]:
        # tangermeme: predicts up to the spacing that does not fit; truncates 1.5;
        # an IndexError for no rows
        with pytest.raises(ValueError, match=match):
            space(model, X, ['GATA', 'CAGG'], spacing, func=counting)
    with pytest.raises(ValueError, match='non-empty list'):
        space(model, X, [], [[0]], func=counting)
    with pytest.raises(ValueError, match='alphabet'):
        space(model, X, ['GATA', 'CAGG'], [[0]], alphabet=['A', 'C', 'G'], func=counting)
    assert calls == []
    assert_raises_like(lambda: tm_space(model, X, ['GATA', 'CAGG'], [[0]], args=5),
                       lambda: space(model, X, ['GATA', 'CAGG'], [[0]], args=5))


def test_restores_model_state(cnn):
    cnn.train()
    space(cnn, random_one_hot((2, 4, 60), random_state=0).float(), ['GA', 'TT'], [[1]],
          device='cpu')
    assert cnn.training
