"""Review regressions: DeepLIFT/SHAP must refuse what its first-batch check cannot see into, and
Keras conversions that the check vouches for must add up against Keras itself.

* TorchScript modules (``torch.jit.script`` / ``torch.jit.trace``): a scripted submodule made the op
  fail with torch's ``RuntimeError: register_forward_pre_hook is not supported on ScriptModules``, and
  a traced model ran with attributions missing completeness by ~75% (only a warning).
* An output that depends on X only through code the check cannot follow (a numpy round trip) ran
  with all-zero attributions and a warning instead of being refused.
* ``h.data.clamp_(min=0)`` (an in-place ReLU through the ``.data`` alias) was not seen: the change of
  the activation went unnoticed and the attributions missed completeness by ~75%.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.ersatz import dinucleotide_shuffle
from kipoi_tanger.utils import random_one_hot

L = 40


def _data(n=3, k=4):
    X = random_one_hot((n, 4, L), random_state=1).float()
    return X, dinucleotide_shuffle(X, n=k, random_state=0).float()


def _completeness(model, X, refs, attr, target=0):
    with torch.no_grad():
        yx = model(X)[:, target]
        yr = model(refs.reshape(-1, *X.shape[1:]))[:, target].reshape(X.shape[0], -1).mean(1)
    return (attr.sum(dim=(1, 2)) - (yx - yr)).abs().max().item()


class _Conv(nn.Module):
    """Conv -> ``f`` -> Linear; ``f`` is whatever the case puts between them."""

    def __init__(self, f):
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.Conv1d(4, 8, 5)
        self.f = f
        self.l = nn.Linear(8 * (L - 4), 2)

    def forward(self, x):
        return self.l(self.f(self.c(x)).flatten(1))


class _ScriptedReLU(nn.Module):
    def forward(self, x):
        return torch.relu(x)


class _Plain(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c = nn.Conv1d(4, 8, 5)
        self.r = nn.ReLU()
        self.l = nn.Linear(8 * (L - 4), 2)

    def forward(self, x):
        return self.l(self.r(self.c(x)).flatten(1))


def _numpy_relu(h):
    return torch.from_numpy(np.maximum(h.detach().cpu().numpy(), 0))


def _data_alias_relu(h):
    h.data.clamp_(min=0)
    return h


@pytest.mark.parametrize("case", ["script_submodule", "script_model", "traced_model"])
def test_torchscript_is_refused_by_name(case):
    X, refs = _data()
    if case == "script_submodule":
        model = _Conv(torch.jit.script(_ScriptedReLU()))
        where = "'f'"
    elif case == "script_model":
        model = torch.jit.script(_Plain())
        where = "'<model>'"
    else:
        model = torch.jit.trace(_Plain(), X)
        where = "'<model>'"
    model.train()
    with pytest.raises(ValueError, match="TorchScript") as e:
        deep_lift_shap(model, X, references=refs)
    assert where in str(e.value) and "\n" not in str(e.value)
    assert model.training                                          # state restored on the refusal


@pytest.mark.parametrize("f, match", [
    (_numpy_relu, "cannot follow"),
    (_data_alias_relu, "Tensor.data"),
])
def test_invisible_nonlinearities_are_refused(f, match):
    X, refs = _data()
    model = _Conv(f)
    with pytest.raises(ValueError, match=match):
        deep_lift_shap(model, X, references=refs)


def test_what_the_check_can_vouch_for_still_runs():
    """Reading ``.data`` without changing it, and an output that does not depend on X, are not refused."""
    X, refs = _data()

    def peek(h):
        _ = h.data.abs().mean()                                    # e.g. logging: no effect on the output
        return F.pad(h, (0, 0)) * 1.0

    model = nn.Sequential(_Conv(peek), nn.ReLU())
    attr = deep_lift_shap(model, X, references=refs)
    assert _completeness(model, X, refs, attr) < 1e-5

    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.b = nn.Parameter(torch.tensor([0.3, -0.2]))

        def forward(self, x):
            return self.b.expand(x.shape[0], 2)

    attr = deep_lift_shap(Constant(), X, references=refs)
    assert attr.abs().max().item() == 0


# -- Keras layers not covered elsewhere: channels_first, axis=1, layers called with training=True --

@pytest.fixture(scope="module")
def keras():
    from zoo_fixtures import keras_or_skip
    return keras_or_skip()


def _seed(model, seed=0):
    rs = np.random.RandomState(seed)
    model.set_weights([rs.normal(0, 0.4, w.shape).astype("f") for w in model.get_weights()])
    for layer in model.layers:                         # BatchNormalization: positive variances
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rs.uniform(0.5, 1.5, w.shape).astype("f") for w in layer.get_weights()])


class _ChannelsLast(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.transpose(1, 2))


def test_keras_channels_first_and_axis1_layers_add_up_against_keras(keras):
    from kipoi_tanger.frameworks.keras_to_torch import keras_to_torch
    La = keras.layers
    model = keras.Sequential([
        keras.Input((L, 4)),
        La.Conv1D(6, 4, strides=3, padding="same", activation="elu"),
        La.BatchNormalization(axis=1), La.Softmax(axis=1),
        La.Permute((2, 1)),
        La.Conv1D(5, 3, data_format="channels_first", padding="causal", dilation_rate=2, activation="relu"),
        La.MaxPooling1D(2, data_format="channels_first"),
        La.Flatten(data_format="channels_first"), La.Dropout(0.5), La.Dense(3)])
    _seed(model)
    X, refs = _data(n=4, k=3)
    net = keras_to_torch(model, X.transpose(1, 2).numpy())
    assert net.conversion_check.ok
    attr = deep_lift_shap(_ChannelsLast(net), X, references=refs, target=1)
    yx = model.predict_on_batch(X.transpose(1, 2).numpy())[:, 1]
    yr = model.predict_on_batch(refs.reshape(-1, 4, L).transpose(1, 2).numpy())[:, 1].reshape(4, 3).mean(1)
    gap = np.abs(attr.sum(dim=(1, 2)).numpy() - (yx - yr)).max()
    assert gap < 1e-5 * max(1.0, np.abs(yx - yr).max())


@pytest.mark.parametrize("layer", ["Dropout", "BatchNormalization", "GaussianNoise"])
def test_keras_layers_called_with_training_true_are_refused(keras, layer):
    """Keras applies them at inference (MC dropout, batch statistics): the conversion, which drops
    them or uses moving statistics, must not be vouched for."""
    from kipoi_tanger.frameworks.keras_to_torch import ConversionMismatchError, keras_to_torch
    La = keras.layers
    inp = keras.Input((L, 4))
    h = La.Conv1D(4, 3, activation="relu")(inp)
    h = {"Dropout": La.Dropout(0.2), "BatchNormalization": La.BatchNormalization(),
         "GaussianNoise": La.GaussianNoise(0.05)}[layer](h, training=True)
    model = keras.Model(inp, La.Dense(1)(La.Flatten()(h)))
    _seed(model)
    X, _ = _data(n=6)
    with pytest.raises(ConversionMismatchError, match="refusing the conversion"):
        keras_to_torch(model, X.transpose(1, 2).numpy())
