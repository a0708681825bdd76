"""kipoi_tanger.frameworks.keras_to_torch: Keras 2 models -> equivalent torch modules.

Oracles: the Keras model itself (tf-keras, float32) on the same batch, and the same network
written by hand in torch from the Keras weights (outputs and DeepLIFT/SHAP attributions).
"""
import numpy as np
import pytest
import torch
from torch import nn

from zoo_fixtures import HandDeepBind, HandPWM, _t, deepbind_keras, keras_or_skip, pwm_keras

from kipoi_tanger.frameworks import keras_to_torch as k2t
from kipoi_tanger.frameworks.keras_to_torch import (ConversionMismatchError, UnsupportedLayerError,
                                                    check_conversion, keras_to_torch)


@pytest.fixture(scope="module")
def keras():
    return keras_or_skip()


def one_hot(n, L, seed=0):
    rs = np.random.RandomState(seed)
    return np.eye(4, dtype=np.float32)[rs.randint(0, 4, (n, L))]


def seed_weights(model, seed=0, scale=0.3):
    rs = np.random.RandomState(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rs.normal(0, scale, w.shape).astype(np.float32) for w in ws])


def cpgenie_keras(keras, L=200):
    """A CpGenie-like stack (Conv/ReLU/MaxPool x2 with BatchNorm, Flatten, Dense, Dropout, softmax)."""
    La = keras.layers
    model = keras.Sequential([
        keras.Input((L, 4)),
        La.Conv1D(8, 9, activation="relu", name="conv1"),
        La.MaxPooling1D(3, name="pool1"),
        La.Conv1D(8, 5, name="conv2"),
        La.BatchNormalization(name="bn2"),
        La.Activation("relu", name="relu2"),
        La.MaxPooling1D(3, name="pool2"),
        La.Flatten(name="flatten"),
        La.Dense(16, activation="relu", name="fc1"),
        La.Dropout(0.5, name="drop"),
        La.Dense(2, activation="softmax", name="out")], name="cpgenie_like")
    seed_weights(model)
    rs = np.random.RandomState(1)
    bn = model.get_layer("bn2")           # non-trivial inference statistics
    bn.set_weights([rs.uniform(0.5, 1.5, 8).astype("f"), rs.normal(0, 0.2, 8).astype("f"),
                    rs.normal(0, 0.5, 8).astype("f"), rs.uniform(0.2, 2, 8).astype("f")])
    return model


# -- parity with Keras ------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["deepbind", "pwm", "cpgenie"])
def test_zoo_architectures_match_keras(keras, arch):
    model = {"deepbind": lambda: deepbind_keras(keras), "pwm": lambda: pwm_keras(keras),
             "cpgenie": lambda: cpgenie_keras(keras)}[arch]()
    L = {"deepbind": 101, "pwm": 60, "cpgenie": 200}[arch]
    X = one_hot(16, L)
    net = keras_to_torch(model, X)
    check = net.conversion_check
    assert check.ok and check.n_examples == 16
    assert check.max_rel_diff < 1e-5, check
    # the returned module is what was checked
    with torch.no_grad():
        y = net(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(y, model.predict_on_batch(X), rtol=1e-5, atol=1e-6 * np.abs(y).max())
    assert not net.training and all(p.dtype == torch.float32 for p in net.parameters())


def test_any_length_model_converts_once_for_every_length(keras):
    """pwm_HOCOMOCO's schema is (None, 4): one conversion serves every length."""
    model = pwm_keras(keras)
    net = keras_to_torch(model)
    for L in (8, 23, 60, 257):
        check = check_conversion(model, net, one_hot(5, L, seed=L))
        assert check.ok and check.max_abs_diff <= 1e-5, (L, check)


def layer_zoo_model(keras, L=40):
    """A functional model with two inputs and two outputs exercising every converted layer."""
    La = keras.layers
    seq = keras.Input((L, 4), name="seq")
    cell = keras.Input((3,), name="cell")
    a = La.Conv1D(6, 5, padding="same", activation="tanh", name="same_odd")(seq)
    b = La.Conv1D(6, 4, padding="same", dilation_rate=2, activation="gelu", name="same_even_dilated")(seq)
    c = La.Conv1D(6, 3, padding="causal", activation="softplus", name="causal")(seq)
    x = La.Add(name="add")([a, b])
    x = La.Subtract(name="sub")([x, c])
    x = La.Average(name="avg")([x, a])
    x = La.BatchNormalization(center=False, name="bn")(x)
    x = La.LeakyReLU(0.2, name="leaky")(x)
    x = La.Conv1D(8, 3, strides=2, padding="same", groups=2, activation="swish", name="strided_groups")(x)
    x = La.AveragePooling1D(3, strides=2, padding="same", name="avgpool_same")(x)
    x = La.ZeroPadding1D((1, 2), name="zpad")(x)
    x = La.Cropping1D((2, 1), name="crop")(x)
    x = La.UpSampling1D(2, name="up")(x)
    x = La.MaxPooling1D(3, strides=2, padding="same", name="maxpool_same")(x)
    x = La.ReLU(max_value=6.0, name="relu6")(x)
    x = La.Permute((2, 1), name="permute")(x)
    x = La.Reshape((-1, 8), name="reshape")(x)
    sub = keras.Sequential([keras.Input((None, 8)), La.Dense(5, activation="selu", name="sub_dense"),
                            La.ELU(0.5, name="sub_elu")], name="nested")
    shared = La.Dense(5, activation="sigmoid", name="shared")
    y1 = sub(x)                                              # the nested model, called twice,
    y2, y3 = shared(sub(x)), shared(y1)                      # and a layer shared by two calls
    g = La.GlobalAveragePooling1D(name="gap")(y3)
    gm = La.Flatten(name="flat")(La.GlobalMaxPooling1D(keepdims=True, name="gmp")(y2))
    h = La.Concatenate(name="concat")([g, gm, La.Dense(4, name="cell_dense")(cell)])
    out1 = La.Dense(3, activation="softmax", name="probs")(h)
    out2 = La.Softmax(axis=-1, name="softmax_layer")(La.Dense(2, activation="softsign", name="softsign")(h))
    model = keras.Model([seq, cell], [out1, out2], name="layer_zoo")
    seed_weights(model, seed=3)
    bn = model.get_layer("bn")
    rs = np.random.RandomState(2)
    bn.set_weights([rs.uniform(0.5, 1.5, 6).astype("f"), rs.normal(0, 0.3, 6).astype("f"),
                    rs.uniform(0.2, 2, 6).astype("f")])
    return model


def test_every_converted_layer_matches_keras(keras):
    model = layer_zoo_model(keras)
    X = {"seq": one_hot(12, 40, seed=5), "cell": np.random.RandomState(6).normal(size=(12, 3)).astype("f")}
    net = keras_to_torch(model, X)
    assert net.conversion_check.ok, net.conversion_check
    assert net.input_names == ["seq", "cell"] and net.output_names == ["probs", "softmax_layer"]
    with torch.no_grad():
        ys = net(torch.from_numpy(X["seq"]), torch.from_numpy(X["cell"]))     # positional inputs too
    assert isinstance(ys, tuple) and len(ys) == 2
    for y, ref in zip(ys, model.predict_on_batch(X)):
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-5, atol=1e-6)
    # nonlinearities are modules DeepLIFT can hook; one module per call of the shared layer / nested model
    kinds = {type(m) for m in net.modules()}
    assert {nn.Tanh, nn.GELU, nn.Softplus, nn.LeakyReLU, nn.SiLU, nn.MaxPool1d, nn.ReLU6, nn.SELU, nn.ELU,
            nn.Sigmoid, nn.Softmax, nn.Softsign} <= kinds
    assert {"shared", "shared_call1", "nested", "nested_call1"} <= set(net.layers)


def test_same_pooling_on_any_length(keras):
    """'same' pooling and strided 'same' convolutions depend on the length: one module, many lengths."""
    La = keras.layers
    model = keras.Sequential([keras.Input((None, 4)),
                              La.Conv1D(4, 4, strides=2, padding="same", activation="relu"),
                              La.MaxPooling1D(3, strides=2, padding="same"),
                              La.AveragePooling1D(2, padding="same"),
                              La.GlobalMaxPooling1D(), La.Dense(1)])
    seed_weights(model, seed=4)
    net = keras_to_torch(model)
    for L in (9, 37, 40, 41, 64):
        check = check_conversion(model, net, one_hot(4, L, seed=L))
        assert check.ok, (L, check)


# -- refusals ------------------------------------------------------------------------------------

def test_refuses_unconvertible_layers_by_name_and_class(keras):
    La = keras.layers
    inp = keras.Input((30, 4))
    rc = La.Lambda(lambda x: x[:, ::-1, ::-1], name="revcomp")(inp)
    x = La.Multiply(name="gate")([rc, inp])
    x = La.LSTM(3, name="rnn")(x)
    model = keras.Model(inp, La.Dense(1)(x))
    with pytest.raises(UnsupportedLayerError) as e:
        keras_to_torch(model)
    msg = str(e.value)
    assert "\n" not in msg
    for part in ("'revcomp' (Lambda)", "'gate' (Multiply)", "'rnn' (LSTM)"):
        assert part in msg


@pytest.mark.parametrize("case", ["custom_activation", "hard_sigmoid", "relu_threshold", "conv2d", "subclassed"])
def test_refuses_what_it_cannot_vouch_for(keras, case):
    La = keras.layers

    def my_act(x):
        return x * 2

    if case == "subclassed":
        class Net(keras.Model):
            def __init__(self):
                super().__init__()
                self.d = La.Dense(1)

            def call(self, x):
                return self.d(x)
        model = Net()
        model(np.zeros((1, 4), "f"))
        expect = "not a built Sequential/functional model"
    else:
        layer, shape, expect = {
            "custom_activation": (La.Dense(2, activation=my_act, name="d"), (4,), "activation 'my_act'"),
            "hard_sigmoid": (La.Dense(2, activation="hard_sigmoid", name="d"), (4,), "'hard_sigmoid'"),
            "relu_threshold": (La.ReLU(threshold=0.5, name="r"), (4,), "'r' (ReLU)"),
            "conv2d": (La.Conv2D(2, 3, name="c2"), (8, 8, 4), "'c2' (Conv2D)"),
        }[case]
        model = keras.Sequential([keras.Input(shape), layer])
    with pytest.raises(UnsupportedLayerError, match=r"cannot convert") as e:
        keras_to_torch(model)
    assert expect in str(e.value)


# -- the numerical check ------------------------------------------------------------------------

def test_check_detects_a_wrong_conversion(keras):
    model = deepbind_keras(keras)
    X = one_hot(8, 101)
    net = keras_to_torch(model, X)
    assert net.conversion_check.max_abs_diff <= net.conversion_check.tolerance
    with torch.no_grad():
        net.layers["hidden"].linear.bias += 1e-3
    bad = check_conversion(model, net, X)
    assert not bad.ok and bad.max_abs_diff > bad.tolerance > 0
    with torch.no_grad():
        net.layers["hidden"].linear.bias -= 1e-3
    assert check_conversion(model, net, X).ok


def test_conversion_refused_above_tolerance(keras, monkeypatch):
    model = cpgenie_keras(keras)
    real = k2t._f32
    monkeypatch.setattr(k2t, "_f32", lambda a: real(a) * (1 + 1e-3))       # a subtly wrong weight copy
    with pytest.raises(ConversionMismatchError, match="refusing the conversion"):
        keras_to_torch(model, one_hot(4, 200))
    keras_to_torch(model)                                  # without a batch nothing is checked


def test_check_conversion_shape_and_nonfinite(keras):
    model = pwm_keras(keras)
    net = keras_to_torch(model)

    class Wrong(nn.Module):
        def forward(self, x):
            return net(x)[:, None]
    with pytest.raises(ConversionMismatchError, match="shape"):
        check_conversion(model, Wrong(), one_hot(2, 20))

    class NaN(nn.Module):
        def forward(self, x):
            return net(x) * float("nan")
    assert np.isinf(check_conversion(model, NaN(), one_hot(2, 20)).max_abs_diff)

    # a Keras model that returns NaN everywhere: matching NaNs vouch for nothing
    La = keras.layers
    broken = keras.Sequential([keras.Input((10, 4)), La.BatchNormalization(name="bn"), La.Dense(2)])
    w = broken.get_layer("bn").get_weights()
    w[3][:] = -1.0                                            # negative moving variance
    broken.get_layer("bn").set_weights(w)
    check = check_conversion(broken, keras_to_torch(broken), one_hot(2, 10))
    assert not check.ok and np.isnan(check.max_abs_diff)
    with pytest.raises(ConversionMismatchError, match="no finite output"):
        keras_to_torch(broken, one_hot(2, 10))


# -- the same network by hand in torch ----------------------------------------------------------

class HandCpGenie(nn.Module):
    def __init__(self, model):
        super().__init__()
        def conv(name):
            k, b = model.get_layer(name).get_weights()
            c = nn.Conv1d(k.shape[1], k.shape[2], k.shape[0])
            c.weight.data, c.bias.data = _t(k.transpose(2, 1, 0)), _t(b)
            return c

        def dense(name):
            w, b = model.get_layer(name).get_weights()
            d = nn.Linear(*w.shape)
            d.weight.data, d.bias.data = _t(w.T), _t(b)
            return d
        self.conv1, self.relu1, self.pool1 = conv("conv1"), nn.ReLU(), nn.MaxPool1d(3)
        self.conv2, self.relu2, self.pool2 = conv("conv2"), nn.ReLU(), nn.MaxPool1d(3)
        bn = model.get_layer("bn2")
        gamma, beta, mean, var = bn.get_weights()
        self.bn = nn.BatchNorm1d(8, eps=bn.epsilon).eval()
        self.bn.weight.data, self.bn.bias.data = _t(gamma), _t(beta)
        self.bn.running_mean.data, self.bn.running_var.data = _t(mean), _t(var)
        self.fc1, self.relu3, self.fc2 = dense("fc1"), nn.ReLU(), dense("out")
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x):
        h = self.pool1(self.relu1(self.conv1(x)))
        h = self.pool2(self.relu2(self.bn(self.conv2(h))))
        h = h.transpose(1, 2).flatten(1)                     # Keras flattens (L, C)
        return self.softmax(self.fc2(self.relu3(self.fc1(h))))


class KerasLayout(nn.Module):
    """tangermeme's (N, A, L) -> the converted model's (N, L, A)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.transpose(1, 2))


@pytest.mark.parametrize("arch", ["deepbind", "pwm", "cpgenie"])
def test_conversion_equals_hand_written_torch_and_deeplift(keras, arch):
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    from kipoi_tanger.ersatz import dinucleotide_shuffle
    L = {"deepbind": 101, "pwm": 60, "cpgenie": 200}[arch]
    model, hand, target = {"deepbind": lambda: (m := deepbind_keras(keras), HandDeepBind(m), 0),
                           "pwm": lambda: (m := pwm_keras(keras), HandPWM(m, L), 0),
                           "cpgenie": lambda: (m := cpgenie_keras(keras), HandCpGenie(m), 1)}[arch]()
    X = torch.from_numpy(one_hot(6, L, seed=7)).transpose(1, 2).contiguous()     # (N, 4, L)
    converted = KerasLayout(keras_to_torch(model, X.transpose(1, 2).numpy())).eval()
    hand.eval()
    with torch.no_grad():
        y_conv, y_hand = converted(X), hand(X)
    torch.testing.assert_close(y_conv, y_hand, rtol=1e-5, atol=1e-6 * float(y_hand.abs().max()))

    refs = dinucleotide_shuffle(X, n=5, random_state=0)
    a_conv = deep_lift_shap(converted, X, target=target, references=refs, device="cpu", warning_threshold=1e-3)
    a_hand = deep_lift_shap(hand, X, target=target, references=refs, device="cpu", warning_threshold=1e-3)
    scale = float(a_hand.abs().max())
    assert scale > 0
    torch.testing.assert_close(a_conv, a_hand, rtol=1e-4, atol=1e-5 * scale)
    # completeness: attributions add up to f(x) - mean f(reference)
    with torch.no_grad():
        f_ref = torch.stack([converted(refs[:, k]) for k in range(refs.shape[1])], 1)[..., target].mean(1)
    total = a_conv.sum((1, 2))
    torch.testing.assert_close(total, y_conv[:, target] - f_ref, rtol=1e-4,
                               atol=1e-5 * float(y_conv[:, target].abs().max()))


def test_deeplift_on_any_length_model(keras):
    """The whole-length max pool of a (None, 4) model is a MaxPool1d: DeepLIFT's max rule applies."""
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    from kipoi_tanger.ersatz import dinucleotide_shuffle
    model = pwm_keras(keras)
    converted = KerasLayout(keras_to_torch(model))
    assert any(isinstance(m, k2t.WholeLengthMaxPool1d) for m in converted.modules())
    for L in (30, 75):
        X = torch.from_numpy(one_hot(4, L, seed=L)).transpose(1, 2).contiguous()
        refs = dinucleotide_shuffle(X, n=3, random_state=1)
        a = deep_lift_shap(converted, X, references=refs, device="cpu")
        b = deep_lift_shap(HandPWM(model, L), X, references=refs, device="cpu")
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))
