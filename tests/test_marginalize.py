"""marginalize: parity with tangermeme 1.6.0, the before/after contract, nesting
inside apply_pairwise/apply_product (seed 001), func=deep_lift_shap, bad input."""
import pytest
import torch
from tangermeme.deep_lift_shap import deep_lift_shap as tm_deep_lift_shap
from tangermeme.marginalize import marginalize as tm_marginalize
from tangermeme.marginalize import marginalize_annotations as tm_marginalize_annotations

from architectures import BPNetLike, FlattenDense, SmallCNN
from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.ersatz import dinucleotide_shuffle, substitute
from kipoi_tanger.marginalize import PerturbationResult, marginalize
from kipoi_tanger.predict import predict
from kipoi_tanger.product import apply_pairwise, apply_product
from kipoi_tanger.utils import one_hot_encode, random_one_hot
from seedparse import printed

SEED = 'seed_001_product.txt'
PRINT_ATOL = 5.1e-5  # the seed prints 4 decimals


def close(a, b, atol=PRINT_ATOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a.float(), b.float(), atol=atol), (a - b).abs().max()


@pytest.mark.parametrize('motif,start', [('TGA', None), ('TGA', 0), ('TNA', 7), ('GANTC', None)])
def test_matches_tangermeme_flatten_dense(motif, start):
    torch.manual_seed(0)
    model = FlattenDense()
    X = random_one_hot((9, 4, 10), random_state=0).float()
    ours = marginalize(model, X, motif, start=start, batch_size=4, device='cpu')
    theirs = tm_marginalize(model, X, motif, start=start, batch_size=4, device='cpu')
    assert isinstance(ours, PerturbationResult)
    assert torch.equal(ours.y_before, theirs.y_before)
    assert torch.equal(ours.y_after, theirs.y_after)
    assert not torch.equal(ours.y_before, ours.y_after)


@pytest.mark.parametrize('motif,start', [('GATAAG', None), ('CACGTG', 0), ('GGNNNNCC', 150)])
def test_matches_tangermeme_small_cnn_int8_input(motif, start):
    torch.manual_seed(1)
    model = SmallCNN()
    X = random_one_hot((20, 4, 200), random_state=1)  # int8: cast per batch by predict
    X[3, :, 10:12] = 0  # N columns are allowed in the background
    ours = marginalize(model, X, motif, start=start, batch_size=7, device='cpu')
    theirs = tm_marginalize(model, X, motif, start=start, batch_size=7, device='cpu')
    assert torch.allclose(ours.y_before, theirs.y_before, atol=1e-6)
    assert torch.allclose(ours.y_after, theirs.y_after, atol=1e-6)


def test_after_is_predict_of_substituted_sequences_exactly():
    torch.manual_seed(2)
    model = SmallCNN()
    X = random_one_hot((10, 4, 200), random_state=2).float()
    y_before, y_after = marginalize(model, X, 'GATAAG', batch_size=3)
    assert torch.equal(y_before, predict(model, X, batch_size=3))
    assert torch.equal(y_after, predict(model, substitute(X, 'GATAAG'), batch_size=3))
    # start=None centres the motif at L // 2 - m // 2
    assert torch.equal(y_after, predict(model, substitute(X, 'GATAAG', start=97), batch_size=3))


def test_tensor_motifs_one_for_all_and_one_per_sequence():
    torch.manual_seed(3)
    model = FlattenDense(length=30)
    X = random_one_hot((6, 4, 30), random_state=3).float()
    one = one_hot_encode('GANNTC').float()[None]
    per = random_one_hot((6, 4, 5), random_state=4).float()
    for motif in (one, per):
        ours = marginalize(model, X, motif, start=11)
        theirs = tm_marginalize(model, X, motif, start=11)
        assert torch.equal(ours.y_after, theirs.y_after)
    assert torch.equal(marginalize(model, X, one).y_after, marginalize(model, X, 'GANNTC').y_after)


def test_multi_output_model_returns_lists_and_passes_args():
    torch.manual_seed(4)
    model = BPNetLike(n_filters=8, n_layers=2, in_len=120, out_len=50)
    X = random_one_hot((5, 4, 120), random_state=5).float()
    alpha, beta = torch.randn(5, 1), torch.randn(5, 1)
    ours = marginalize(model, X, 'GATAAG', start=30, args=(alpha, beta), batch_size=2)
    theirs = tm_marginalize(model, X, 'GATAAG', start=30, args=(alpha, beta), batch_size=2,
                            device='cpu')
    for a, b in zip(ours, theirs):
        assert isinstance(a, list) and len(a) == 2
        for u, v in zip(a, b):
            assert torch.allclose(u, v, atol=1e-6)
    direct = predict(model, substitute(X, 'GATAAG', start=30), args=(alpha, beta))[1]   # other batches
    assert torch.allclose(ours.y_after[1], direct, rtol=1e-5, atol=1e-5 * float(direct.abs().max()))


def test_seed_001_nested_in_apply_pairwise():
    """Cells [9], [10] and [11] of the product tutorial."""
    torch.manual_seed(0)
    X = random_one_hot((5, 4, 10), random_state=0).float()
    model = FlattenDense()
    alpha, beta = torch.zeros(1, 3), torch.ones(1, 3)  # cell [7]
    for cell, kwargs in [(9, {}), (10, {'start': 0})]:
        y_before, y_after = apply_pairwise(marginalize, model, X, motif="TGA",
                                           args=(alpha, beta), **kwargs)
        expected_before, expected_after = printed(SEED, cell)
        close(y_before[:, 0], expected_before)
        close(y_after[:, 0], expected_after)
        direct = marginalize(model, X, 'TGA', args=(alpha.expand(5, 3), beta.expand(5, 3)),
                             **kwargs)
        assert torch.allclose(y_after[:, 0], direct.y_after, atol=1e-6)

    y_before, y_after = apply_pairwise(marginalize, model, X, motif="TGA",
                                       alphabet=['A', 'C', 'G', 'T'],
                                       additional_func_kwargs={'func': deep_lift_shap},
                                       args=(alpha, beta))
    assert tuple(y_before.shape) == printed(SEED, 11)[0]
    assert tuple(y_after.shape) == printed(SEED, 11)[1]


def test_nested_in_apply_product():
    torch.manual_seed(5)
    X = random_one_hot((4, 4, 10), random_state=6).float()
    model = FlattenDense()
    alpha, beta = torch.randn(3, 1), torch.randn(2, 1)
    y_before, y_after = apply_product(marginalize, model, X, motif='CAT', start=2,
                                      args=(alpha, beta), batch_size=5)
    assert y_before.shape == y_after.shape == (4, 3, 2, 3)
    Xs = substitute(X, 'CAT', start=2)
    for j in range(3):
        for k in range(2):
            a, b = alpha[j].expand(4, 1), beta[k].expand(4, 1)
            assert torch.allclose(y_after[:, j, k], predict(model, Xs, args=(a, b)), atol=1e-6)
            assert torch.allclose(y_before[:, j, k], predict(model, X, args=(a, b)), atol=1e-6)


def test_func_deep_lift_shap_matches_tangermeme_with_fixed_references():
    torch.manual_seed(6)
    model = SmallCNN(length=100, n_outputs=2)
    X = random_one_hot((3, 4, 100), random_state=7).float()
    refs = dinucleotide_shuffle(X, n=4, random_state=0).float()
    ours = marginalize(model, X, 'GATAAG', func=deep_lift_shap, references=refs, target=1,
                       batch_size=5, device='cpu')
    theirs = tm_marginalize(model, X, 'GATAAG', func=tm_deep_lift_shap, references=refs,
                            target=1, batch_size=5, device='cpu')
    assert ours.y_before.shape == (3, 4, 100)
    assert torch.equal(ours.y_before, deep_lift_shap(model, X, references=refs, target=1,
                                                     batch_size=5, device='cpu'))
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6)


def test_additional_func_kwargs_is_not_modified_and_collisions_raise():
    model = FlattenDense()
    X = random_one_hot((2, 4, 10), random_state=0).float()
    extra = {'batch_size': 1}
    marginalize(model, X, 'TGA', additional_func_kwargs=extra)
    assert extra == {'batch_size': 1}
    with pytest.raises(TypeError, match='multiple values'):
        marginalize(model, X, 'TGA', additional_func_kwargs=extra, batch_size=2)


def test_model_state_is_restored():
    model = SmallCNN()
    model.train()
    X = random_one_hot((2, 4, 200), random_state=0).float()
    marginalize(model, X, 'GATAAG', device='cpu')
    assert model.training


@pytest.mark.parametrize('X,motif,kwargs,match', [
    (torch.full((2, 4, 10), 0.25), 'TGA', {}, 'one-hot'),
    (None, 'TGA', dict(alphabet=['A', 'C', 'G']), 'alphabet'),
    (None, 'TGX', {}, 'X'),
    (None, 'TGATGATGATG', {}, 'longer'),
    (None, 'TGA', dict(start=8), 'start'),
    (None, torch.zeros(3, 4, 2), {}, 'motif'),
    (None, 'TGA', dict(func='predict'), 'func'),
    (None, 'TGA', dict(additional_func_kwargs=[('a', 1)]), 'additional_func_kwargs'),
    ([[0, 1]], 'TGA', {}, 'X'),
])
def test_bad_input(X, motif, kwargs, match):
    X = random_one_hot((2, 4, 10), random_state=0).float() if X is None else X
    with pytest.raises(ValueError, match=match):
        marginalize(FlattenDense(), X, motif, **kwargs)


# --------------------------------------------------------------------------- tangermeme 1.6.0 API

import tangermeme.marginalize as tm_marginalize_module  # noqa: E402

from kipoi_tanger import marginalize as marginalize_module  # noqa: E402
from kipoi_tanger.marginalize import marginalize_annotations  # noqa: E402
from kipoi_tanger.results import PerturbationAnnotationsResult  # noqa: E402
from tm_parity import assert_raises_like, assert_same_api  # noqa: E402


def test_public_api_matches_tangermeme():
    assert_same_api(tm_marginalize_module, marginalize_module)
    assert PerturbationResult is __import__('kipoi_tanger.results').results.PerturbationResult


def test_errors_are_tangermemes_types():
    model, X = FlattenDense(), random_one_hot((3, 4, 10), random_state=0).float()
    assert_raises_like(lambda: tm_marginalize(model, X, 'TGA', args=5),
                       lambda: marginalize(model, X, 'TGA', args=5), match='args')
    assert_raises_like(lambda: tm_marginalize(model, X[:0], 'TGA'),
                       lambda: marginalize(model, X[:0], 'TGA'), match='non-empty')
    motifs = random_one_hot((2, 4, 3), random_state=1).float()  # 2 motifs for 3 sequences
    assert_raises_like(lambda: tm_marginalize(model, X, motifs),
                       lambda: marginalize(model, X, motifs), match='batch')


@pytest.mark.parametrize('kwargs', [dict(batch_size=5), dict(batch_size=2, start=3),
                                    dict(batch_size=64)])
def test_marginalize_annotations_matches_tangermeme(kwargs):
    torch.manual_seed(3)
    model = SmallCNN(length=60, n_outputs=2)
    X = random_one_hot((5, 4, 60), random_state=0).float()
    X0 = random_one_hot((3, 4, 60), random_state=1).float()
    X[2, :, 12] = 0  # an N inside an annotation keeps the background's base
    ann = torch.tensor([[0, 2, 6], [3, 10, 30], [2, 10, 15], [4, 40, 41], [0, 2, 6]])
    ours = marginalize_annotations(model, X, X0, ann, device='cpu', **kwargs)
    theirs = tm_marginalize_annotations(model, X, X0, ann, device='cpu', **kwargs)
    assert isinstance(ours, PerturbationAnnotationsResult)
    assert ours.y_befores.shape == ours.y_afters.shape == (5, 3, 2)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    # each annotation is marginalize() of its stretch into X0
    for k, (i, s, e) in enumerate(ann.tolist()):
        one = marginalize(model, X0, X[i:i + 1, :, s:e], start=kwargs.get('start'), device='cpu')
        assert torch.allclose(ours.y_afters[k], one.y_after, rtol=1e-5, atol=1e-6)
        assert torch.allclose(ours.y_befores[k], one.y_before, rtol=1e-5, atol=1e-6)


def test_marginalize_annotations_other_funcs_args_and_multi_output():
    model = BPNetLike(n_filters=4, n_layers=2, in_len=100, out_len=20)
    X = random_one_hot((4, 4, 100), random_state=2).float()
    X0 = random_one_hot((2, 4, 100), random_state=3).float()
    alpha, beta = torch.randn(2, 1), torch.randn(2, 1)
    ann = torch.tensor([[1, 5, 25], [3, 60, 70]])
    ours = marginalize_annotations(model, X, X0, ann, args=(alpha, beta), batch_size=3,
                                   device='cpu')
    theirs = tm_marginalize_annotations(model, X, X0, ann, args=(alpha, beta), batch_size=3,
                                        device='cpu')
    assert isinstance(ours.y_befores, list) and len(ours.y_afters) == 2
    assert ours.y_afters[0].shape == (2, 2, 1, 20) and ours.y_afters[1].shape == (2, 2, 1)
    for a, b in zip(ours.y_afters + ours.y_befores, theirs.y_afters + theirs.y_befores):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    # any func: called per annotation, as in tangermeme
    calls = []

    def counting(model, X, **kw):
        calls.append(len(X))
        return predict(model, X, **kw)

    slow = marginalize_annotations(model, X, X0, ann, func=counting, args=(alpha, beta),
                                   device='cpu')
    assert calls == [2, 2, 2, 2]
    for a, b in zip(slow.y_afters, ours.y_afters):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('ann,match', [
    (torch.zeros(0, 3, dtype=torch.long), 'at least one annotation'),
    (torch.tensor([[7, 2, 6]]), 'row 0'), (torch.tensor([[0, 2, 36]]), 'row 0'),
    (torch.tensor([[0, 6, 2]]), 'row 0'), (torch.tensor([0, 2, 6]), 'shape'),
    (torch.tensor([[0.0, 2, 6]]), 'integer'),
])
def test_marginalize_annotations_bad_input(ann, match):
    # tangermeme clips [0, 2, 36] to the sequence and turns [0, 6, 2] into a no-op
    X = random_one_hot((2, 4, 30), random_state=0).float()
    with pytest.raises(ValueError, match=match):
        marginalize_annotations(FlattenDense(length=30), X, X, ann)
    with pytest.raises(ValueError, match='does not fit'):
        marginalize_annotations(FlattenDense(length=30), X, X[:, :, :8], torch.tensor([[0, 0, 9]]))


def test_marginalize_annotations_restores_model_state():
    model = SmallCNN(length=60)
    model.train()
    X = random_one_hot((2, 4, 60), random_state=0).float()
    marginalize_annotations(model, X, X, torch.tensor([[0, 1, 5]]), device='cpu')
    assert model.training


def test_func_deep_lift_shap_with_more_arg_rows_than_examples():
    """tangermeme's deep_lift_shap pairs arg row i with example i and never reads the
    rows past len(X); marginalize passes args through, so 64 rows for 8 examples give
    the attributions of rows 0..7. kipoi_tanger does the same and says so."""
    from kipoi_tanger.utils import TangermemeWarning

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv1d(4, 3, 3)
            self.relu = torch.nn.ReLU()
            self.dense = torch.nn.Linear(3 * 28, 2)

        def forward(self, X, alpha):
            return self.dense(self.relu(self.conv(X)).flatten(1)) * alpha

    model = Scaled()
    X = random_one_hot((8, 4, 30), random_state=0).float()
    alpha = torch.arange(1, 65, dtype=torch.float32)[:, None]
    refs = dinucleotide_shuffle(X, n=3, random_state=0).float()
    theirs = tm_marginalize(model, X, 'TGA', func=tm_deep_lift_shap, args=(alpha,),
                            references=refs, device='cpu')
    with pytest.warns(TangermemeWarning, match='rows 8..63'):
        ours = marginalize(model, X, 'TGA', func=deep_lift_shap, args=(alpha,), references=refs,
                           device='cpu')
    first8 = marginalize(model, X, 'TGA', func=deep_lift_shap, args=(alpha[:8],),
                         references=refs, device='cpu')
    for a, b, c in zip(ours, theirs, first8):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        assert torch.equal(a, c)
    with pytest.raises(ValueError, match='rows'):
        marginalize(model, X, 'TGA', args=(alpha,), device='cpu')  # predict: as tangermeme
