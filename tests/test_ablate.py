"""ablate / ablate_annotations: parity with tangermeme 1.6.0, the before/after
contract, random_state forwarding, annotation batching, bad input."""
import numpy
import pytest
import torch
import tangermeme.ablate as tm_ablate_module
from tangermeme.ablate import ablate as tm_ablate
from tangermeme.ablate import ablate_annotations as tm_ablate_annotations
from tangermeme.ersatz import shuffle as tm_shuffle

from architectures import BPNetLike, FlattenDense, SmallCNN
from kipoi_tanger import ablate as ablate_module
from kipoi_tanger.ablate import ablate, ablate_annotations
from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.ersatz import dinucleotide_shuffle, shuffle
from kipoi_tanger.predict import predict
from kipoi_tanger.results import PerturbationAnnotationsResult, PerturbationResult
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
    assert_same_api(tm_ablate_module, ablate_module)


@pytest.mark.parametrize('start,end,n,batch_size', [(10, 30, 3, 32), (0, 60, 2, 5), (25, -1, 4, 1)])
def test_matches_tangermeme(cnn, start, end, n, batch_size):
    X = random_one_hot((5, 4, 60), random_state=0).float()
    X[1, :, 12] = 0  # N moves with the shuffle
    ours = ablate(cnn, X, start, end, n=n, random_state=1, batch_size=batch_size, device='cpu')
    theirs = tm_ablate(cnn, X, start, end, n=n, random_state=1, batch_size=batch_size,
                       device='cpu')
    assert isinstance(ours, PerturbationResult)
    assert ours.y_before.shape == (5, 2) and ours.y_after.shape == (5, n, 2)
    close(tuple(ours), tuple(theirs))
    # the contract: before = predict(X), after = predict(shuffles), exactly
    S = shuffle(X, start=start, end=end, n=n, random_state=1)
    assert torch.equal(ours.y_before, predict(cnn, X, batch_size=batch_size, device='cpu'))
    assert torch.equal(ours.y_after, predict(cnn, S.reshape(-1, 4, 60), batch_size=batch_size,
                                             device='cpu').reshape(5, n, 2))


def test_shuffle_fn_args_and_multi_output():
    model = BPNetLike(n_filters=4, n_layers=2, in_len=100, out_len=20)
    X = random_one_hot((3, 4, 100), random_state=1).float()
    alpha, beta = torch.randn(3, 1), torch.randn(3, 1)
    # the same shuffle function for both: ours is uniform, tangermeme's is not
    ours = ablate(model, X, 30, 70, n=4, shuffle_fn=tm_shuffle, args=(alpha, beta),
                  random_state=2, batch_size=5, device='cpu')
    theirs = tm_ablate(model, X, 30, 70, n=4, shuffle_fn=tm_shuffle, args=(alpha, beta),
                       random_state=2, batch_size=5, device='cpu')
    assert isinstance(ours.y_before, list) and ours.y_after[0].shape == (3, 4, 1, 20)
    close(tuple(ours), tuple(theirs))
    # with the uniform dinucleotide shuffle: the shuffles come from shuffle_fn and every
    # example's args go with each of its shuffles
    dn = ablate(model, X, 30, 70, n=4, shuffle_fn=dinucleotide_shuffle, args=(alpha, beta),
                random_state=2, device='cpu')
    S = dinucleotide_shuffle(X, start=30, end=70, n=4, random_state=2).reshape(12, 4, 100)
    rep = [a.repeat_interleave(4, dim=0) for a in (alpha, beta)]
    y = predict(model, S, args=rep, device='cpu')
    assert torch.equal(dn.y_after[1], y[1].reshape(3, 4, 1))


def test_random_state_reaches_funcs_that_take_it():
    X = random_one_hot((3, 4, 60), random_state=2).float()
    for impl in (ablate, tm_ablate):
        seen = []

        def takes(model, X, args=None, random_state=None, batch_size=32):
            seen.append(('takes', random_state))
            return predict(model, X, args=args)

        def swallows(model, X, args=None, **kwargs):
            seen.append(('swallows', kwargs.get('random_state')))
            return predict(model, X, args=args)

        impl(FlattenDense(length=60), X, 5, 20, n=2, random_state=7, func=takes)
        impl(FlattenDense(length=60), X, 5, 20, n=2, random_state=7, func=swallows)
        impl(FlattenDense(length=60), X, 5, 20, n=2, random_state=7, func=takes,
             additional_func_kwargs={'random_state': 3})
        assert seen == [('takes', 7)] * 2 + [('swallows', None)] * 2 + [('takes', 3)] * 2, impl


def test_func_deep_lift_shap(cnn):
    X = random_one_hot((2, 4, 60), random_state=3).float()
    r = ablate(cnn, X, 20, 40, n=2, func=deep_lift_shap, n_shuffles=3, random_state=0,
               target=1, device='cpu')
    assert r.y_before.shape == (2, 4, 60) and r.y_after.shape == (2, 2, 4, 60)
    # random_state went to deep_lift_shap's references too
    assert torch.equal(r.y_before, deep_lift_shap(cnn, X, n_shuffles=3, random_state=0,
                                                  target=1, device='cpu'))


def test_restores_model_state(cnn):
    cnn.train()
    ablate(cnn, random_one_hot((2, 4, 60), random_state=0).float(), 3, 9, n=2, device='cpu')
    assert cnn.training


@pytest.mark.parametrize('kwargs', [dict(start=15, end=5), dict(start=5, end=5), dict(n=0),
                                    dict(n=-1), dict(n=2.0), dict(start=-1, end=5),
                                    dict(start=0, end=61), dict(args=5), dict(start=5.5),
                                    dict(random_state='a'),
                                    dict(args=(torch.ones(3, 1),))])
def test_errors_are_tangermemes_types(kwargs):
    X = random_one_hot((5, 4, 60), random_state=0).float()
    call = dict(start=5, end=15, n=2, random_state=0)
    call.update(kwargs)
    model = FlattenDense(length=60)
    assert_raises_like(lambda: tm_ablate(model, X, **call), lambda: ablate(model, X, **call))


def test_bad_input():
    X = random_one_hot((2, 4, 60), random_state=0).float()
    with pytest.raises(ValueError, match='non-empty'):
        ablate(FlattenDense(length=60), X[:0], 5, 15)
    with pytest.raises(ValueError, match='shuffle_fn'):
        ablate(FlattenDense(length=60), X, 5, 15, shuffle_fn=lambda X, **kw: X)
    Xs = X.clone()
    Xs[0, 0, 0] = 0.5
    with pytest.raises(ValueError, match='one-hot'):
        ablate(FlattenDense(length=60), Xs, 5, 15)


# --------------------------------------------------------------------------- annotations

ANN = torch.tensor([[0, 2, 6], [3, 10, 30], [4, 20, 25], [0, 40, 59], [3, 0, 60]])


@pytest.mark.parametrize('batch_size', [1, 7, 64])
def test_ablate_annotations_matches_tangermeme(cnn, batch_size):
    X = random_one_hot((5, 4, 60), random_state=0).float()
    ours = ablate_annotations(cnn, X, ANN, n=4, random_state=2, batch_size=batch_size,
                              device='cpu')
    theirs = tm_ablate_annotations(cnn, X, ANN, n=4, random_state=2, batch_size=batch_size,
                                   device='cpu')
    assert isinstance(ours, PerturbationAnnotationsResult)
    assert ours.y_befores.shape == (5, 1, 2) and ours.y_afters.shape == (5, 1, 4, 2)
    close(tuple(ours), tuple(theirs))
    for k, (i, s, e) in enumerate(ANN.tolist()):
        one = ablate(cnn, X[i:i + 1], s, e, n=4, random_state=2, device='cpu')
        close(ours.y_befores[k], one.y_before)
        close(ours.y_afters[k], one.y_after)


def test_ablate_annotations_shared_random_state_args_multi_output_and_funcs():
    model = BPNetLike(n_filters=4, n_layers=2, in_len=60, out_len=10)
    X = random_one_hot((5, 4, 60), random_state=4).float()
    alpha, beta = torch.randn(5, 1), torch.randn(5, 1)
    # one RandomState advances annotation by annotation, in order, in both
    ours = ablate_annotations(model, X, ANN, n=3, random_state=numpy.random.RandomState(5),
                              batch_size=4, device='cpu')
    theirs = tm_ablate_annotations(model, X, ANN, n=3, random_state=numpy.random.RandomState(5),
                                   batch_size=4, device='cpu')
    assert isinstance(ours.y_afters, list) and ours.y_afters[1].shape == (5, 1, 3, 1)
    close(ours.y_befores, theirs.y_befores)
    close(ours.y_afters, theirs.y_afters)
    # args with one row per example of X: annotation i gets its example's row (tangermeme
    # passes all rows with the one example and fails)
    ours = ablate_annotations(model, X, ANN, n=3, random_state=numpy.random.RandomState(5),
                              args=(alpha, beta), batch_size=4, device='cpu')
    rs = numpy.random.RandomState(5)
    for k, (i, s, e) in enumerate(ANN.tolist()):
        one = ablate(model, X[i:i + 1], s, e, n=3, random_state=rs,
                     args=(alpha[i:i + 1], beta[i:i + 1]), device='cpu')
        close(ours.y_afters[1][k], one.y_after[1])
        close(ours.y_befores[0][k], one.y_before[0])
    calls = []

    def counting(model, X, args=None, **kwargs):
        calls.append(len(X))
        return predict(model, X, args=args, **kwargs)

    slow = ablate_annotations(model, X, ANN, n=3, random_state=numpy.random.RandomState(5),
                              args=(alpha, beta), func=counting, device='cpu')
    assert calls == [1, 3] * 5  # any other func: twice per annotation, as in tangermeme
    close(slow.y_afters, ours.y_afters)


@pytest.mark.parametrize('ann,match', [
    (torch.zeros(0, 3, dtype=torch.long), 'at least one annotation'),
    (torch.tensor([[5, 2, 6]]), 'row 0'), (torch.tensor([[0, 50, 61]]), 'row 0'),
    (torch.tensor([[0, 6, 6]]), 'row 0'), (torch.tensor([[0, 2]]), 'shape'),
])
def test_ablate_annotations_bad_input(ann, match):
    X = random_one_hot((5, 4, 60), random_state=0).float()
    with pytest.raises(ValueError, match=match):
        ablate_annotations(FlattenDense(length=60), X, ann)
