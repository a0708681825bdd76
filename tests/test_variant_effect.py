"""variant_effect: substitution/deletion/insertion effects equal tangermeme 1.6.0's
(read back through an identity model and on a CNN, with args, both trim
sides, uneven numbers of edits per example), PerturbationResult, func
nesting, and the inputs tangermeme gets silently wrong."""
import numpy
import pytest
import torch
from tangermeme.variant_effect import deletion_effect as tm_deletion_effect
from tangermeme.variant_effect import insertion_effect as tm_insertion_effect
from tangermeme.variant_effect import substitution_effect as tm_substitution_effect

from architectures import FlattenDense, SmallCNN
from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.predict import predict
from kipoi_tanger.results import PerturbationResult
from kipoi_tanger.utils import characters, random_one_hot
from kipoi_tanger.variant_effect import deletion_effect, insertion_effect, substitution_effect


class Identity(torch.nn.Module):
    """Returns its input flattened: predictions are the sequences themselves."""

    def forward(self, X):
        return X.flatten(1).float()


def seqs(y, A=4):
    return [characters(r.reshape(A, -1), allow_N=True) for r in y]


def test_substitutions_match_tangermeme_and_are_readable():
    X = random_one_hot((3, 4, 12), random_state=1)
    subs = torch.tensor([[0, 2, 0], [0, 3, 1], [2, 11, 3], [2, 0, 2]])
    ours = substitution_effect(Identity(), X, subs)
    theirs = tm_substitution_effect(Identity(), X, subs)
    assert isinstance(ours, PerturbationResult)
    assert torch.equal(ours.y_before, theirs.y_before) and torch.equal(ours.y_after, theirs.y_after)
    before, after = seqs(ours.y_before), seqs(ours.y_after)
    assert after[1] == before[1]
    assert after[0] == before[0][:2] + 'AC' + before[0][4:]
    assert after[2] == 'G' + before[2][1:11] + 'T'
    # numpy input, a CNN, args and kwargs through to predict
    model = FlattenDense(length=12)
    alpha, beta = torch.randn(3, 1), torch.randn(3, 1)
    ours = substitution_effect(model, X.float(), subs.numpy(), args=(alpha, beta), batch_size=2)
    theirs = tm_substitution_effect(model, X.float(), subs.numpy(), args=(alpha, beta), batch_size=2)
    assert torch.allclose(ours.y_after, theirs.y_after, atol=1e-6)


@pytest.mark.parametrize('left', [False, True])
def test_deletions_match_tangermeme(left):
    X = random_one_hot((4, 4, 15), random_state=2)
    dels = torch.tensor([[0, 2], [0, 3], [0, 9], [1, 14], [3, 0], [3, 7]])   # 3, 1, 0, 2 per example
    ours = deletion_effect(Identity(), X, dels, left=left)
    theirs = tm_deletion_effect(Identity(), X, dels, left=left)
    assert ours.y_before.shape == (4, 4 * 12)
    assert torch.equal(ours.y_before, theirs.y_before) and torch.equal(ours.y_after, theirs.y_after)
    s = seqs(X.flatten(1))
    expect0 = s[0][:2] + s[0][4:9] + s[0][10:]   # three deletions: exactly 12 left
    assert seqs(ours.y_after)[0] == expect0
    expect2 = s[2][3:] if left else s[2][:12]    # no deletion: trimmed like y_before
    assert seqs(ours.y_after)[2] == expect2


@pytest.mark.parametrize('left', [False, True])
def test_insertions_match_tangermeme(left):
    X = random_one_hot((3, 4, 12), random_state=3)
    # two rows at one position (inserted in reverse order), one elsewhere, unsorted
    ins = torch.tensor([[0, 7, 3], [0, 2, 0], [0, 2, 1], [2, 11, 2]])
    ours = insertion_effect(Identity(), X, ins, left=left)
    theirs = tm_insertion_effect(Identity(), X, ins, left=left)
    assert torch.equal(ours.y_before, theirs.y_before) and torch.equal(ours.y_after, theirs.y_after)
    s = seqs(X.flatten(1))
    grown = s[0][:2] + 'CA' + s[0][2:7] + 'T' + s[0][7:]
    assert seqs(ours.y_after)[0] == (grown[-12:] if left else grown[:12])
    assert seqs(ours.y_after)[1] == s[1]


def test_cnn_random_edits_match_tangermeme():
    torch.manual_seed(4)
    model = SmallCNN(length=40, pool=2)
    rs = numpy.random.RandomState(4)
    X = random_one_hot((6, 4, 43), random_state=4).float()
    dels = torch.tensor([[i, p] for i in range(6) for p in rs.choice(43, size=i % 4, replace=False)])
    for left in (False, True):
        ours = deletion_effect(model, X, dels, left=left, batch_size=4)
        theirs = tm_deletion_effect(model, X, dels, left=left, batch_size=4)
        assert torch.allclose(ours.y_after, theirs.y_after, atol=1e-6)
    ins = torch.tensor([[i, int(rs.randint(40)), int(rs.randint(4))] for i in range(6) for _ in range(2)])
    ours = insertion_effect(model, X[:, :, :40], ins, batch_size=4)
    theirs = tm_insertion_effect(model, X[:, :, :40], ins, batch_size=4)
    assert torch.allclose(ours.y_after, theirs.y_after, atol=1e-6)


def test_func_and_additional_func_kwargs():
    torch.manual_seed(5)
    model = SmallCNN(length=40, pool=2)
    X = random_one_hot((2, 4, 40), random_state=5).float()
    subs = torch.tensor([[0, 20, 0], [1, 21, 3]])
    refs = torch.stack([X.roll(k, dims=-1) for k in range(1, 4)], dim=1)
    ours = substitution_effect(model, X, subs, func=deep_lift_shap, references=refs, target=1)
    assert ours.y_after.shape == X.shape
    same = substitution_effect(model, X, subs, additional_func_kwargs={'func': None}, batch_size=1)
    assert torch.equal(same.y_before, predict(model, X, batch_size=1))


@pytest.mark.parametrize('fn,edits,match', [
    (substitution_effect, [[0, 2, 0], [0, 2, 1]], 'more than one row'),
    (substitution_effect, [[5, 2, 0]], 'example index 5'),
    (substitution_effect, [[0, -1, 0]], 'position -1'),
    (substitution_effect, [[0, 2, 4]], 'alphabet index 4'),
    (substitution_effect, [[0, 2]], r'shape \(M, 3\)'),
    (deletion_effect, [[0, 2], [0, 2]], 'more than one row'),
    (deletion_effect, [[0, 12]], 'position 12'),
    (insertion_effect, [[0, 12, 0]], 'position 12'),
    (insertion_effect, [[0.0, 1.0, 0.0]], 'integer indices'),
])
def test_bad_edits_are_one_clear_error(fn, edits, match):
    X = random_one_hot((3, 4, 12), random_state=0)
    with pytest.raises(ValueError, match=match):
        fn(Identity(), X, torch.tensor(edits))


def test_bad_sequences():
    with pytest.raises(ValueError, match='one-hot'):
        substitution_effect(Identity(), torch.full((1, 4, 5), 0.25), torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match='nothing'):
        deletion_effect(Identity(), random_one_hot((1, 4, 2)), torch.tensor([[0, 0], [0, 1]]))
