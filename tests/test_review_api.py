"""Review of the Python API as a demanding tangermeme user meets it: outputs without one row per
example are refused (they were concatenated into wrong shapes, or left uninitialised rows in
apply_pairwise/apply_product), numpy integers work where tangermeme takes them, and a bad
``device``, meta tensors and meta models get a one-line ValueError naming the argument, with the
model's device and train/eval state restored."""
from collections import Counter

import numpy
import pytest
import torch

from kipoi_tanger.ersatz import dinucleotide_shuffle, substitute
from kipoi_tanger.marginalize import marginalize
from kipoi_tanger.predict import predict
from kipoi_tanger.product import apply_pairwise, apply_product
from kipoi_tanger.saturation_mutagenesis import saturation_mutagenesis
from kipoi_tanger.space import space
from kipoi_tanger.utils import random_one_hot

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(torch.nn.Module):
    """A small CNN; ``out`` picks a tensor, a tuple, or an output without one row per example."""

    def __init__(self, out='tensor'):
        super().__init__()
        self.c = torch.nn.Conv1d(4, 6, 3, padding=1)
        self.d = torch.nn.Dropout(0.5)
        self.l = torch.nn.Linear(6, 3)
        self.out = out

    def forward(self, x, *args):
        h = torch.relu(self.c(x)).mean(-1)
        y = self.l(self.d(h))
        for a in args:
            y = y + a.reshape(len(a), -1)[:, :1]
        if self.out == 'tuple':
            return y, h
        if self.out == 'batch_mean':        # one row whatever the batch
            return y.mean(0, keepdim=True)
        if self.out == 'tuple_batch_mean':
            return y, h.mean(0, keepdim=True)
        return y


def _model(out='tensor'):
    torch.manual_seed(0)
    m = Net(out)
    m.train()
    return m


def _X(n=5, length=12, seed=0):
    return random_one_hot((n, 4, length), random_state=seed).float()


def _assert_restored(m):
    assert m.training and all(x.training for x in m.modules())
    assert next(m.parameters()).device.type == 'cpu'


# ---------------------------------------------------------------------------
# Outputs must have one row per example

@pytest.mark.parametrize("out", ['batch_mean', 'tuple_batch_mean'])
def test_predict_refuses_outputs_without_one_row_per_example(out):
    # Before: (5, 3) inputs gave a (3, 3) tensor with batch_size=2, silently.
    m = _model(out)
    with pytest.raises(ValueError, match=r"Cannot interpret output from model: .*shape \(1, "
                                         r".*batch of 2 examples; expected 2 rows"):
        predict(m, _X(), batch_size=2, device='cpu')
    _assert_restored(m)


def test_predict_refuses_a_func_that_drops_the_batch_axis():
    # Before: a 0-d result came back as is with one batch, and failed inside torch.cat with two.
    m = _model()
    for bs in (2, 32):
        with pytest.raises(ValueError, match=r"has shape \(\) for a batch of"):
            predict(m, _X(), func=lambda y: y.sum(), batch_size=bs, device='cpu')
    _assert_restored(m)


@pytest.mark.parametrize("apply", [apply_pairwise, apply_product])
def test_apply_refuses_a_func_without_one_row_per_example(apply):
    # Before: the rows func did not return stayed torch.empty garbage in a (5, 3, 3) result.
    m = _model()

    def first_row_only(model, X, args, **kwargs):
        return predict(model, X, args=args, **kwargs)[:1]

    with pytest.raises(ValueError, match=r"func returned shape \(1, 3\) for a batch of 4 examples; "
                                         "expected 4 rows"):
        apply(first_row_only, m, _X(), (torch.randn(3, 1),), batch_size=4, device='cpu')
    _assert_restored(m)


def test_apply_still_matches_predict_per_pair():
    m = _model().eval()
    X, a = _X(), torch.randn(3, 1)
    y = apply_pairwise(predict, m, X, (a,), batch_size=4, device='cpu')
    expect = torch.stack([predict(m, X, args=(a[j].expand(5, 1),), device='cpu')
                          for j in range(3)], dim=1)
    assert torch.allclose(y, expect, atol=1e-6)


# ---------------------------------------------------------------------------
# numpy integers where tangermeme takes them

def test_numpy_integer_batch_size_is_accepted():
    m = _model().eval()
    X, a = _X(), torch.randn(3, 1)
    assert torch.equal(predict(m, X, batch_size=numpy.int64(2), device='cpu'),
                       predict(m, X, batch_size=2, device='cpu'))
    assert torch.equal(apply_product(predict, m, X, (a,), batch_size=numpy.int32(3), device='cpu'),
                       apply_product(predict, m, X, (a,), batch_size=3, device='cpu'))
    r = space(m, X, ['ACG', 'T'], [[0], [2]], batch_size=numpy.int64(3), device='cpu')
    assert r.y_afters.shape == (5, 2, 3)


def test_saturation_mutagenesis_takes_numpy_integer_start_end():
    from tangermeme.saturation_mutagenesis import saturation_mutagenesis as tm_ism
    m = _model().eval()
    X = _X(n=2, length=10)
    ours = saturation_mutagenesis(m, X, start=numpy.int64(2), end=numpy.int64(7), device='cpu')
    theirs = tm_ism(m, X, start=numpy.int64(2), end=numpy.int64(7), device='cpu')
    assert ours.shape == (2, 4, 5)
    assert torch.allclose(ours, theirs, atol=1e-6)


# ---------------------------------------------------------------------------
# device, meta tensors and meta models: one ValueError naming the argument

def test_unusable_device_is_a_value_error_naming_it():
    m = _model()
    # an index past the last CUDA device (every CUDA device on a CPU-only machine)
    bad = f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}"
    for device in (bad, 'gpu'):
        with pytest.raises(ValueError, match=r"^device: ") as e:
            predict(m, _X(), device=device)
        assert "\n" not in str(e.value)
        _assert_restored(m)
    with pytest.raises(ValueError, match=r"^device: "):
        marginalize(m, _X(), "ACG", device='gpu')
    _assert_restored(m)


def test_meta_tensors_and_meta_models_are_refused_by_name():
    m = _model()
    X = _X()
    with pytest.raises(ValueError, match=r"^X: is a meta tensor"):
        predict(m, X.to('meta'), device='cpu')
    with pytest.raises(ValueError, match=r"^X: is a meta tensor"):
        dinucleotide_shuffle(X.to('meta'), n=2)
    with pytest.raises(ValueError, match=r"^X: is a meta tensor"):
        substitute(X.to('meta'), "ACG")
    _assert_restored(m)
    meta = _model().to('meta')
    with pytest.raises(ValueError, match=r"^model: its parameters are on the meta device"):
        predict(meta, X, device='cpu')
    assert next(meta.parameters()).device.type == 'meta' and meta.training


# ---------------------------------------------------------------------------
# The uniform dinucleotide shuffle keeps every dinucleotide, N included

def _codes(x):
    c = x.float().argmax(0)
    c[x.sum(0) == 0] = -1
    return c.tolist()


@pytest.mark.parametrize("dtype", [torch.float32, torch.int8, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("A", [2, 4, 5])
def test_dinucleotide_counts_are_kept_with_N_windows_and_alphabets(dtype, A):
    rng = numpy.random.RandomState(A)
    X = torch.tensor(numpy.eye(A)[rng.randint(0, A, (4, 25))].transpose(0, 2, 1)).float()
    X[:, :, 3:5] = 0
    X[:, :, -1] = 0
    X = X.to(dtype)
    for start, end in [(0, -1), (2, 20)]:
        stop = X.shape[-1] if end == -1 else end
        Y = dinucleotide_shuffle(X, start=start, end=end, n=4, random_state=3, allow_N=True)
        assert Y.dtype == dtype and Y.shape == (4, 4, A, 25)
        assert torch.equal(Y, dinucleotide_shuffle(X, start=start, end=end, n=4, random_state=3,
                                                   allow_N=True))   # the same seed again
        for i in range(4):
            c0 = _codes(X[i])
            for k in range(4):
                c = _codes(Y[i, k])
                assert c[:start] == c0[:start] and c[stop:] == c0[stop:]
                assert c[start] == c0[start] and c[stop - 1] == c0[stop - 1]
                w, w0 = c[start:stop], c0[start:stop]
                assert Counter(zip(w, w[1:])) == Counter(zip(w0, w0[1:]))
