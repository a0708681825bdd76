"""apply_pairwise / apply_product: the seed tutorial (001), tangermeme parity,
laziness, nested funcs and bad input."""
import pytest
import torch
from tangermeme.predict import predict as tm_predict
from tangermeme.product import apply_pairwise as tm_pairwise
from tangermeme.product import apply_product as tm_product

from architectures import BPNetLike, FlattenDense
from kipoi_tanger.predict import predict
from kipoi_tanger.product import apply_pairwise, apply_product
from kipoi_tanger.utils import random_one_hot
from seedparse import printed

SEED = 'seed_001_product.txt'


def close(a, b, atol=5.1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a.float(), b.float(), atol=atol), (a - b).abs().max()


def test_seed_001_tutorial_replays():
    """Every cell of the cartesian-product tutorial, in order, with
    tangermeme → kipoi_tanger. The attribution/marginalize cells in the middle
    must not consume torch's RNG, or the later printed tensors would differ."""
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    from kipoi_tanger.marginalize import marginalize

    torch.manual_seed(0)
    X = random_one_hot((5, 4, 10), random_state=0).float()
    model = FlattenDense()
    y = model(X)
    close(y.detach(), printed(SEED, 3)[0])

    torch.manual_seed(0)
    alpha, beta = torch.zeros(1, 1), torch.ones(1, 1)
    close(apply_pairwise(predict, model, X, args=(alpha, beta))[:, 0], printed(SEED, 4)[0])

    alpha, beta = torch.zeros(2, 1), torch.ones(2, 1)
    close(apply_pairwise(predict, model, X, args=(alpha, beta)), printed(SEED, 5)[0])

    alpha, beta = torch.randn(2, 1), torch.randn(2, 1)
    close(apply_pairwise(predict, model, X, args=(alpha, beta)), printed(SEED, 6)[0])

    alpha, beta = torch.zeros(1, 3), torch.ones(1, 3)
    assert tuple(apply_pairwise(predict, model, X, args=(alpha, beta)).shape) == \
        printed(SEED, 7)[0]

    y_attr = apply_pairwise(deep_lift_shap, model, X, args=(alpha, beta))
    assert tuple(y_attr.shape) == printed(SEED, 8)[0]

    y_before, y_after = apply_pairwise(marginalize, model, X, motif="TGA", args=(alpha, beta))
    before, after = printed(SEED, 9)
    close(y_before[:, 0], before)
    close(y_after[:, 0], after)

    y_before, y_after = apply_pairwise(marginalize, model, X, motif="TGA", start=0,
                                       args=(alpha, beta))
    before, after = printed(SEED, 10)
    close(y_before[:, 0], before)
    close(y_after[:, 0], after)

    y_before, y_after = apply_pairwise(marginalize, model, X, motif="TGA",
                                       alphabet=['A', 'C', 'G', 'T'],
                                       additional_func_kwargs={'func': deep_lift_shap},
                                       args=(alpha, beta))
    assert [tuple(y_before.shape), tuple(y_after.shape)] == printed(SEED, 11)

    alpha, beta = torch.zeros(1, 1), torch.ones(1, 1)
    close(apply_product(predict, model, X, args=(alpha, beta))[:, 0, 0], printed(SEED, 12)[0])

    alpha = torch.randn(3, 1)
    close(apply_product(predict, model, X, args=(alpha,)), printed(SEED, 13)[0])
    close((y.unsqueeze(1) + alpha.unsqueeze(0)).detach(), printed(SEED, 14)[0])

    torch.manual_seed(0)
    alpha = torch.randn(3, 1)
    beta = torch.randn(1, 1)
    close(apply_product(predict, model, X, args=(alpha, beta))[:, :, 0], printed(SEED, 15)[0])
    close((y.unsqueeze(1) * beta.unsqueeze(0) + alpha.unsqueeze(0)).detach(),
          printed(SEED, 16)[0])


@pytest.mark.parametrize("batch_size", [1, 4, 7, 32])
@pytest.mark.parametrize("n_args", [1, 2, 5])
def test_apply_pairwise_matches_tangermeme(batch_size, n_args):
    torch.manual_seed(n_args)
    model = FlattenDense()
    X = random_one_hot((6, 4, 10), random_state=batch_size).float()
    args = (torch.randn(n_args, 3), torch.randn(n_args, 1))
    ours = apply_pairwise(predict, model, X, args=args, batch_size=batch_size, device='cpu')
    theirs = tm_pairwise(tm_predict, model, X, args=args, batch_size=batch_size, device='cpu')
    assert ours.shape == (6, n_args, 3)
    assert torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 5, 64])
@pytest.mark.parametrize("sizes", [(1, 1), (3, 1), (2, 4), (3,)])
def test_apply_product_matches_tangermeme_multi_output(batch_size, sizes):
    torch.manual_seed(sum(sizes))
    model = BPNetLike(n_filters=4, n_layers=2, in_len=120, out_len=40)
    X = random_one_hot((4, 4, 120), random_state=1).float()
    args = tuple(torch.randn(s, 1) for s in sizes)
    ours = apply_product(predict, model, X, args=args, batch_size=batch_size, device='cpu')
    theirs = tm_product(tm_predict, model, X, args=args, batch_size=batch_size, device='cpu')
    assert isinstance(ours, list) and len(ours) == 2
    assert ours[0].shape == (4, *sizes, 1, 40) and ours[1].shape == (4, *sizes, 1)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6)


def test_apply_product_order_last_arg_fastest():
    model = FlattenDense()
    X = random_one_hot((2, 4, 10), random_state=0).float()
    a, b, c = torch.randn(3, 1), torch.randn(2, 1), torch.randn(4, 1)

    class Sum(torch.nn.Module):
        def forward(self, X, a, b, c):
            return torch.cat([X.sum(dim=(1, 2)).unsqueeze(1), a, b, c], dim=1)

    out = apply_product(predict, Sum(), X, args=(a, b, c), batch_size=5, device='cpu')
    assert out.shape == (2, 3, 2, 4, 4)
    for i in range(2):
        for j in range(3):
            for k in range(2):
                for m in range(4):
                    assert torch.equal(out[i, j, k, m, 1:], torch.cat([a[j], b[k], c[m]]))
    del model


def test_func_receives_batches_lazily_never_the_product():
    seen = []

    def spy(model, X, args=None, batch_size=32, device=None, verbose=False):
        seen.append(len(X))
        assert verbose is False and batch_size == 8
        return predict(model, X, args=args, batch_size=batch_size, device=device)

    model = FlattenDense()
    X = random_one_hot((10, 4, 10), random_state=0).float()
    out = apply_product(spy, model, X, args=(torch.randn(7, 1), torch.randn(3, 1)),
                        batch_size=8, device='cpu')
    assert out.shape == (10, 7, 3, 3)
    assert max(seen) == 8 and sum(seen) == 210


def test_kwargs_and_additional_func_kwargs_reach_func():
    calls = []

    def f(model, X, args=None, batch_size=32, device=None, verbose=False, func=None, scale=1):
        calls.append((func, scale))
        return X.sum(dim=(1, 2)).unsqueeze(1) * scale

    X = random_one_hot((3, 4, 10), random_state=0).float()
    out = apply_pairwise(f, FlattenDense(), X, args=(torch.zeros(2, 1),), scale=2,
                         additional_func_kwargs={'func': 'inner'}, device='cpu')
    assert torch.equal(out[:, 0], X.sum(dim=(1, 2)).unsqueeze(1) * 2)
    assert calls[0] == ('inner', 2)
    with pytest.raises(TypeError, match="multiple values"):
        apply_pairwise(f, FlattenDense(), X, args=(torch.zeros(2, 1),), scale=2,
                       additional_func_kwargs={'scale': 3}, device='cpu')


def test_apply_restores_model_state():
    model = FlattenDense()
    model.train()
    apply_product(predict, model, torch.zeros(2, 4, 10), args=(torch.zeros(2, 1),),
                  device='cpu')
    assert model.training


@pytest.mark.parametrize("fn", [apply_pairwise, apply_product])
def test_bad_input(fn):
    model = FlattenDense()
    X = torch.zeros(2, 4, 10)
    with pytest.raises(ValueError, match="at least one example"):
        fn(predict, model, torch.zeros(0, 4, 10), args=(torch.zeros(2, 1),))
    with pytest.raises(ValueError, match="args: required"):
        fn(predict, model, X, args=None)
    with pytest.raises(ValueError, match=r"args\[0\]"):
        fn(predict, model, X, args=(torch.zeros(0, 1),))
    with pytest.raises(ValueError, match="Cannot interpret output"):
        fn(lambda *a, **k: "nope", model, X, args=(torch.zeros(1, 1),))


def test_apply_pairwise_unequal_args():
    with pytest.raises(ValueError, match=r"args\[1\]: has 3 rows but args\[0\] has 2"):
        apply_pairwise(predict, FlattenDense(), torch.zeros(2, 4, 10),
                       args=(torch.zeros(2, 1), torch.zeros(3, 1)))


# --------------------------------------------------------------------------- tangermeme 1.6.0 API

import tangermeme.product as tm_product_module  # noqa: E402

from kipoi_tanger import product as product_module  # noqa: E402
from tm_parity import assert_raises_like, assert_same_api  # noqa: E402


def test_public_api_matches_tangermeme():
    assert_same_api(tm_product_module, product_module)


def _describe(y):
    """Container types and shapes, e.g. list[(3, 2, 2), (3, 2, 2)]."""
    if isinstance(y, torch.Tensor):
        return tuple(y.shape)
    return (type(y).__name__, [_describe(v) for v in y])


@pytest.mark.parametrize("fn,tm_fn", [(apply_pairwise, tm_pairwise), (apply_product, tm_product)])
def test_tuple_returning_funcs_give_tangermemes_containers(fn, tm_fn):
    from kipoi_tanger.marginalize import marginalize
    from tangermeme.marginalize import marginalize as tm_marginalize

    model = BPNetLike(n_filters=4, n_layers=2, in_len=100, out_len=20)
    X = random_one_hot((3, 4, 100), random_state=0).float()
    alpha, beta = torch.randn(2, 1), torch.randn(2, 1)

    def as_tuple(model, X, args=None, **kwargs):
        y = predict(model, X, args=args, **kwargs)
        return (y[1], 2 * y[1])

    def as_tm_tuple(model, X, args=None, **kwargs):
        y = tm_predict(model, X, args=args, **kwargs)
        return (y[1], 2 * y[1])

    for ours_f, tm_f, kw in [(as_tuple, as_tm_tuple, {}), (predict, tm_predict, {}),
                             (marginalize, tm_marginalize, {'motif': 'GATA'})]:
        ours = fn(ours_f, model, X, args=(alpha, beta), batch_size=4, device='cpu', **kw)
        theirs = tm_fn(tm_f, model, X, args=(alpha, beta), batch_size=4, device='cpu', **kw)
        assert _describe(ours) == _describe(theirs)  # lists all the way down, even for
        assert type(ours) is list                    # marginalize's PerturbationResult


@pytest.mark.parametrize("fn,tm_fn", [(apply_pairwise, tm_pairwise), (apply_product, tm_product)])
@pytest.mark.parametrize("args", [5, None])
def test_errors_are_tangermemes_types(fn, tm_fn, args):
    X = torch.zeros(2, 4, 10)
    assert_raises_like(lambda: tm_fn(tm_predict, FlattenDense(), X, args=args),
                       lambda: fn(predict, FlattenDense(), X, args=args), match='args')
