"""predict / predict_cross: the seed tutorial (000), tangermeme parity,
state restoration, dtype/device handling and bad input."""
import pytest
import torch
from tangermeme.predict import predict as tm_predict

from architectures import BPNetLike, FlattenDense, SmallCNN
from kipoi_tanger.predict import predict, predict_cross
from kipoi_tanger.product import apply_pairwise
from kipoi_tanger.utils import random_one_hot
from seedparse import printed

SEED = 'seed_000_predict.txt'
PRINT_ATOL = 5.1e-5  # tensors are printed with 4 decimals


def close(a, b, atol=PRINT_ATOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a.float(), b.float(), atol=atol), (a - b).abs().max()


def test_seed_000_tutorial_replays():
    """Every cell of the predict tutorial, in order, with tangermeme → kipoi_tanger."""
    torch.manual_seed(0)
    X = random_one_hot((5, 4, 10), random_state=0).float()
    model = FlattenDense()
    y = model(X)
    close(y.detach(), printed(SEED, 3)[0])
    close(predict(model, X, batch_size=2), printed(SEED, 4)[0])
    close(predict(model, X, batch_size=100), printed(SEED, 5)[0])
    close(predict(model, X, device='cpu'), printed(SEED, 6)[0])

    torch.manual_seed(0)
    alpha = torch.randn(5, 1)
    close((y + alpha).detach(), printed(SEED, 7)[0])
    close(predict(model, X, args=(alpha,)), printed(SEED, 8)[0])

    torch.manual_seed(1)
    beta = torch.randn(5, 1)
    close((y * beta + alpha).detach(), printed(SEED, 9)[0])
    close(predict(model, X, args=(alpha, beta)), printed(SEED, 10)[0])

    torch.manual_seed(0)
    alpha = torch.randn(5, 3)
    close((y + alpha).detach(), printed(SEED, 11)[0])
    close(predict(model, X, args=(alpha,)), printed(SEED, 12)[0])

    torch.manual_seed(0)
    alpha = torch.randn(3, 1)
    y_cross = predict_cross(model, X, args=(alpha,))
    assert tuple(y_cross.shape) == printed(SEED, 13)[0]
    close(y_cross, printed(SEED, 14)[0])
    close((y.unsqueeze(1) + alpha.unsqueeze(0)).detach(), printed(SEED, 15)[0])

    torch.manual_seed(0)
    alpha = torch.randn(3, 1)
    beta = torch.randn(3, 1)
    close(predict_cross(model, X, args=(alpha, beta)), printed(SEED, 16)[0])
    close((y.unsqueeze(1) * beta.unsqueeze(0) + alpha.unsqueeze(0)).detach(),
          printed(SEED, 17)[0])


def test_predict_outputs_carry_no_graph():
    model = FlattenDense()
    X = random_one_hot((4, 4, 10), random_state=1).float()
    y = predict(model, X)
    assert y.grad_fn is None and not y.requires_grad


@pytest.mark.parametrize("batch_size", [1, 3, 7, 32, 100])
@pytest.mark.parametrize("seed", [0, 1])
def test_predict_matches_tangermeme_smallcnn(batch_size, seed):
    torch.manual_seed(seed)
    model = SmallCNN(length=200)
    X = random_one_hot((23, 4, 200), random_state=seed).float()
    ours = predict(model, X, batch_size=batch_size, device='cpu')
    theirs = tm_predict(model, X, batch_size=batch_size, device='cpu')
    assert torch.equal(ours, theirs)
    with torch.no_grad():
        assert torch.allclose(ours, model(X), atol=1e-6)


@pytest.mark.parametrize("batch_size", [2, 5, 64])
def test_predict_multi_output_and_args_match_tangermeme(batch_size):
    torch.manual_seed(3)
    model = BPNetLike(n_filters=8, n_layers=3, in_len=300, out_len=100)
    X = random_one_hot((11, 4, 300), random_state=3)  # int8, cast per batch
    alpha, beta = torch.randn(11, 1), torch.randn(11, 1)
    ours = predict(model, X, args=(alpha, beta), batch_size=batch_size, device='cpu')
    theirs = tm_predict(model, X, args=(alpha, beta), batch_size=batch_size, device='cpu')
    assert isinstance(ours, list) and len(ours) == 2
    assert ours[0].shape == (11, 1, 100) and ours[1].shape == (11, 1)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_predict_func_applied_per_batch():
    model = BPNetLike(n_filters=4, n_layers=2, in_len=200, out_len=50)
    X = random_one_hot((9, 4, 200), random_state=0).float()
    counts = predict(model, X, func=lambda y: y[1], batch_size=4, device='cpu')
    assert torch.equal(counts, predict(model, X, batch_size=4, device='cpu')[1])


def test_predict_bfloat16_autocast_close_to_fp32():
    torch.manual_seed(0)
    model = SmallCNN(length=200)
    X = random_one_hot((8, 4, 200), random_state=0)
    y32 = predict(model, X, device='cpu')
    y16 = predict(model, X, device='cpu', dtype='bfloat16')
    assert y16.dtype == torch.bfloat16
    assert torch.allclose(y16.float(), y32, atol=5e-2, rtol=5e-2)
    assert next(model.parameters()).dtype == torch.float32


def test_predict_restores_device_and_training_state_on_error():
    class Boom(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(40, 2)
            self.drop = torch.nn.Dropout(0.5)

        def forward(self, X):
            assert not self.training, "ops must run the model in eval mode"
            raise RuntimeError("boom")

    model = Boom()
    model.train()
    model.drop.eval()  # mixed flags must come back exactly
    with pytest.raises(RuntimeError, match="boom"):
        predict(model, torch.zeros(3, 4, 10), device='cpu')
    assert model.training and model.lin.training and not model.drop.training


def test_predict_restores_train_mode_after_success():
    model = FlattenDense()
    model.train()
    predict(model, torch.zeros(3, 4, 10), device='cpu')
    assert model.training


def test_predict_verbose_shows_progress(capsys):
    predict(FlattenDense(), torch.zeros(6, 4, 10), batch_size=2, device='cpu', verbose=True)
    assert "predict" in capsys.readouterr().err


@pytest.mark.parametrize("X, args, match", [
    (torch.zeros(0, 4, 10), None, "at least one example"),
    (torch.zeros(5, 4, 10), (torch.zeros(4, 1),), r"args\[0\]: has 4 rows but X has 5"),
    (torch.zeros(5, 4, 10), (torch.zeros(5, 1), torch.zeros(3, 1)), r"args\[1\]"),
    ([[0.0]], None, "X: expected a torch.Tensor"),
    (torch.zeros(5, 4, 10), ([1, 2],), r"args\[0\]: expected a torch.Tensor"),
])
def test_predict_bad_input(X, args, match):
    with pytest.raises(ValueError, match=match):
        predict(FlattenDense(), X, args=args, device='cpu')


def test_predict_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        predict(FlattenDense(), torch.zeros(2, 4, 10), batch_size=0, device='cpu')


def test_predict_uninterpretable_output():
    class Dict(torch.nn.Module):
        def forward(self, X):
            return {'a': X}

    with pytest.raises(ValueError, match="Cannot interpret output from model"):
        predict(Dict(), torch.zeros(2, 4, 10), device='cpu')


def test_predict_cross_equals_apply_pairwise_and_direct():
    torch.manual_seed(0)
    model = FlattenDense()
    X = random_one_hot((7, 4, 10), random_state=2).float()
    alpha, beta = torch.randn(4, 3), torch.randn(4, 1)
    for bs in (1, 3, 5, 64):
        cross = predict_cross(model, X, args=(alpha, beta), batch_size=bs, device='cpu')
        pair = apply_pairwise(predict, model, X, args=(alpha, beta), batch_size=bs,
                              device='cpu')
        assert torch.equal(cross, pair)
    with torch.no_grad():
        direct = model(X).unsqueeze(1) * beta.unsqueeze(0) + alpha.unsqueeze(0)
    assert torch.allclose(cross, direct, atol=1e-6)


def test_predict_cross_multi_output():
    model = BPNetLike(n_filters=4, n_layers=2, in_len=200, out_len=50)
    X = random_one_hot((3, 4, 200), random_state=0).float()
    alpha, beta = torch.randn(5, 1), torch.randn(5, 1)
    profile, counts = predict_cross(model, X, args=(alpha, beta), batch_size=4, device='cpu')
    assert profile.shape == (3, 5, 1, 50) and counts.shape == (3, 5, 1)
    for j in range(5):
        ref = predict(model, X, args=(alpha[j].expand(3, 1), beta[j].expand(3, 1)),
                      device='cpu')
        assert torch.allclose(counts[:, j], ref[1], atol=1e-6)


def test_predict_cross_unequal_args():
    with pytest.raises(ValueError, match=r"args\[1\]: has 2 rows but args\[0\] has 3"):
        predict_cross(FlattenDense(), torch.zeros(2, 4, 10),
                      args=(torch.zeros(3, 1), torch.zeros(2, 1)), device='cpu')


# --------------------------------------------------------------------------- tangermeme 1.6.0 API

import tangermeme.predict as tm_predict_module  # noqa: E402

from kipoi_tanger import predict as predict_module  # noqa: E402
from tm_parity import assert_raises_like, assert_same_api  # noqa: E402


def test_public_api_matches_tangermeme():
    # predict_cross is an addition (removed upstream, kept from the seed tutorial).
    assert_same_api(tm_predict_module, predict_module)


@pytest.mark.parametrize("args,tm_type", [(5, TypeError), ((torch.zeros(4, 1),), ValueError)])
def test_errors_are_tangermemes_types(args, tm_type):
    X = torch.zeros(5, 4, 10)
    assert_raises_like(lambda: tm_predict(FlattenDense(), X, args=args),
                       lambda: predict(FlattenDense(), X, args=args, device='cpu'), match='args')
    with pytest.raises(tm_type):
        predict(FlattenDense(), X, args=args, device='cpu')
    assert_raises_like(lambda: tm_predict(FlattenDense(), X[:0]),
                       lambda: predict(FlattenDense(), X[:0], device='cpu'),
                       match='at least one example')
