"""Convert Keras 2 models built from standard layers into equivalent torch modules.

Many Kipoi zoo Keras models (pwm_HOCOMOCO, CpGenie, DeepBind without Lambda
layers) are stacks of standard layers. Converted to torch they get every
kipoi_tanger op, DeepLIFT/SHAP included. :func:`keras_to_torch` walks the
Keras graph (Sequential and functional models, nested models, layers shared
between several calls) and builds a :class:`KerasGraph` module that:

* takes the Keras model's inputs in the **same layout** (e.g. ``(N, L, 4)``),
  as positional tensors in ``model.inputs`` order (or one dict by input name),
  and returns one tensor, or a tuple for several outputs;
* has every nonlinearity as its own module (``nn.ReLU``, ``nn.Sigmoid``,
  ``nn.Softmax``, ``nn.MaxPool1d`` fed in ``(N, C, L)``...), so DeepLIFT's
  rules reach them; reshapes, transposes, padding, sums and concatenations
  are linear and stay functional;
* is in eval mode, float32, on the CPU, and computes Keras' inference
  function whatever its train/eval flag (Dropout is dropped, BatchNormalization
  uses the moving statistics): it is for predictions and attributions, not
  for training.

Converted layers: InputLayer, Conv1D (valid/same/causal padding, strides,
dilation, groups), MaxPooling1D, AveragePooling1D, GlobalMaxPooling1D,
GlobalAveragePooling1D, Dense, Activation, ReLU, LeakyReLU, ELU, Softmax,
BatchNormalization (inference), Dropout and the other inference-time
identities, Flatten, Reshape, Permute, Cropping1D, ZeroPadding1D,
UpSampling1D, Concatenate, Add, Subtract, Average and nested models. Any
other layer (Lambda, Multiply, Maximum, recurrent layers, custom layers...)
and any custom activation is refused by name and class, in one line: a
conversion that cannot vouch for its numbers must not happen. Given a batch,
the converted module is also checked against the Keras model and refused
above float tolerance (:func:`check_conversion`).

Only the Keras model object is touched; TensorFlow is never imported here.
"""
import math
import re
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ._torch_layers import (KerasGraph, WholeLengthMaxPool1d, _Affine, _Conv1d, _Crop1d, _Dense, _Flatten,
                            _GlobalPool1d, _Merge, _Permute, _Pool1d, _Reshape, _UpSample1d, _ZeroPad1d,
                            _pool_geometry)

__all__ = ["keras_to_torch", "check_conversion", "ConversionCheck", "KerasGraph",
           "UnsupportedLayerError", "ConversionMismatchError", "SUPPORTED_LAYERS"]


class UnsupportedLayerError(ValueError):
    """A layer (or activation) with no faithful torch equivalent; names them all."""


class ConversionMismatchError(ValueError):
    """The converted module does not reproduce the Keras model on the check batch."""


class ConversionCheck(NamedTuple):
    """How closely the converted module reproduces the Keras model on one batch.

    ``max_abs_diff``: the largest ``|torch - keras|`` over all outputs;
    ``max_rel_diff``: the largest ``max|torch - keras| / max|keras|`` over outputs;
    ``scale``: the largest ``max|keras|`` over outputs; ``tolerance``: the
    allowed ``max|torch - keras|`` of the worst output (``atol + rtol * its scale``);
    ``ok``: every output within its tolerance; ``n_examples``: batch size.
    Non-finite outputs must sit where Keras' are and be the same values
    (``max_abs_diff`` inf otherwise); an output with no finite value at all
    vouches for nothing (``max_abs_diff`` nan, ``ok`` False).
    """
    max_abs_diff: float
    max_rel_diff: float
    scale: float
    tolerance: float
    ok: bool
    n_examples: int


# -- activations ---------------------------------------------------------------------------

_ACTIVATIONS = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "elu": nn.ELU, "selu": nn.SELU,
    "softplus": nn.Softplus, "softsign": nn.Softsign, "swish": nn.SiLU, "silu": nn.SiLU,
    "gelu": nn.GELU, "softmax": lambda: nn.Softmax(dim=-1),
}


def _keras_package(obj):
    return type(obj).__module__.split(".")[0]


def _activation(layer, errors):
    """The torch module for ``layer.activation`` (None for linear)."""
    fn = getattr(layer, "activation", None)
    name = getattr(fn, "__name__", None)
    module = getattr(fn, "__module__", "") or ""
    builtin = module.split(".")[0] in ("tf_keras", "keras") and ".activations" in module
    if fn is None or (builtin and name == "linear"):
        return None
    if not builtin or name not in _ACTIVATIONS:
        errors.append(f"layer {layer.name!r} ({type(layer).__name__}) has activation {name or fn!r}, "
                      "which has no faithful torch module here")
        return None
    return _ACTIVATIONS[name]()


# -- layer converters ------------------------------------------------------------------------

_IDENTITY = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
             "GaussianDropout", "AlphaDropout", "ActivityRegularization"}


def _f32(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32).copy())


def _channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _conv1d(layer, in_shapes, errors):
    act = _activation(layer, errors)
    kernel = layer.get_weights()[0]                              # (k, in / groups, out)
    groups = int(getattr(layer, "groups", 1) or 1)
    k, cin_g, cout = kernel.shape
    conv = nn.Conv1d(cin_g * groups, cout, k, stride=layer.strides[0], dilation=layer.dilation_rate[0],
                     groups=groups, bias=layer.use_bias)
    with torch.no_grad():
        conv.weight.copy_(_f32(kernel.transpose(2, 1, 0)))
        if layer.use_bias:
            conv.bias.copy_(_f32(layer.get_weights()[1]))
    return _Conv1d(conv, layer.padding, _channels_last(layer), act)


def _pool1d(layer, in_shapes, errors, kind):
    k, s = int(layer.pool_size[0]), int(layer.strides[0])
    same = layer.padding == "same"
    pool = (nn.MaxPool1d(k, s) if kind == "max" else nn.AvgPool1d(k, s, count_include_pad=False))
    cl = _channels_last(layer)
    length = in_shapes[0][1 if cl else 2]
    if same and length is not None:                              # fixed length: fixed geometry
        pool.padding, pool.ceil_mode = _pool_geometry(int(length), k, s)
        same = False
    return _Pool1d(pool, same, cl)


def _global_pool1d(layer, in_shapes, errors, kind):
    cl = _channels_last(layer)
    keepdims = bool(getattr(layer, "keepdims", False))
    if kind == "avg":
        return _GlobalPool1d(None, cl, keepdims)
    length = in_shapes[0][1 if cl else 2]
    pool = WholeLengthMaxPool1d() if length is None else nn.MaxPool1d(int(length), int(length))
    return _GlobalPool1d(pool, cl, keepdims)


def _dense(layer, in_shapes, errors):
    act = _activation(layer, errors)
    w = layer.get_weights()
    linear = nn.Linear(w[0].shape[0], w[0].shape[1], bias=layer.use_bias)
    with torch.no_grad():
        linear.weight.copy_(_f32(w[0].T))
        if layer.use_bias:
            linear.bias.copy_(_f32(w[1]))
    return _Dense(linear, act)


def _batchnorm(layer, in_shapes, errors):
    ndim = len(in_shapes[0])
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    axes = sorted(a % ndim for a in axes)
    shape = [1] * ndim
    for a in axes:
        shape[a] = int(in_shapes[0][a])
    param_shape = [shape[a] for a in axes]

    def get(var, default):
        return np.asarray(var.numpy(), np.float32).reshape(param_shape) if var is not None \
            else np.full(param_shape, default, np.float32)

    gamma = get(getattr(layer, "gamma", None), 1.0)
    beta = get(getattr(layer, "beta", None), 0.0)
    mean = get(layer.moving_mean, 0.0)
    var = get(layer.moving_variance, 1.0)
    # TensorFlow's inference form, in float32: x * inv + (beta - mean * inv).
    with np.errstate(invalid="ignore"):                 # a negative variance gives NaN, as in Keras
        inv = (gamma / np.sqrt(var + np.float32(layer.epsilon))).astype(np.float32)
    shift = (beta - mean * inv).astype(np.float32)
    return _Affine(_f32(inv).reshape(shape), _f32(shift).reshape(shape))


def _relu_layer(layer, in_shapes, errors):
    max_value = getattr(layer, "max_value", None)
    max_value = None if max_value is None else float(np.asarray(max_value))
    slope = float(np.asarray(getattr(layer, "negative_slope", 0.0) or 0.0))
    threshold = float(np.asarray(getattr(layer, "threshold", 0.0) or 0.0))
    if threshold == 0 and slope == 0 and max_value is None:
        return nn.ReLU()
    if threshold == 0 and slope == 0 and max_value == 6:
        return nn.ReLU6()
    if threshold == 0 and max_value is None:
        return nn.LeakyReLU(slope)
    errors.append(f"layer {layer.name!r} (ReLU) with max_value={max_value}, negative_slope={slope}, "
                  f"threshold={threshold} has no faithful torch module here")
    return None


def _activation_layer(layer, in_shapes, errors):
    return _activation(layer, errors)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


_CONVERTERS = {
    "Conv1D": _conv1d,
    "Convolution1D": _conv1d,
    "MaxPooling1D": lambda l, s, e: _pool1d(l, s, e, "max"),
    "MaxPool1D": lambda l, s, e: _pool1d(l, s, e, "max"),
    "AveragePooling1D": lambda l, s, e: _pool1d(l, s, e, "avg"),
    "AvgPool1D": lambda l, s, e: _pool1d(l, s, e, "avg"),
    "GlobalMaxPooling1D": lambda l, s, e: _global_pool1d(l, s, e, "max"),
    "GlobalMaxPool1D": lambda l, s, e: _global_pool1d(l, s, e, "max"),
    "GlobalAveragePooling1D": lambda l, s, e: _global_pool1d(l, s, e, "avg"),
    "GlobalAvgPool1D": lambda l, s, e: _global_pool1d(l, s, e, "avg"),
    "Dense": _dense,
    "Activation": _activation_layer,
    "ReLU": _relu_layer,
    "LeakyReLU": lambda l, s, e: nn.LeakyReLU(float(l.alpha)),
    "ELU": lambda l, s, e: nn.ELU(float(l.alpha)),
    "Softmax": lambda l, s, e: nn.Softmax(dim=int(l.axis if not isinstance(l.axis, (list, tuple))
                                                  else l.axis[0])),
    "BatchNormalization": _batchnorm,
    "Flatten": lambda l, s, e: _Flatten(not _channels_last(l)),
    "Reshape": lambda l, s, e: _Reshape(l.target_shape),
    "Permute": lambda l, s, e: _Permute(l.dims),
    "Cropping1D": lambda l, s, e: _Crop1d(*_pair(l.cropping)),
    "ZeroPadding1D": lambda l, s, e: _ZeroPad1d(*_pair(l.padding)),
    "UpSampling1D": lambda l, s, e: _UpSample1d(l.size),
    "Concatenate": lambda l, s, e: _Merge("concatenate", int(l.axis)),
    "Add": lambda l, s, e: _Merge("add"),
    "Subtract": lambda l, s, e: _Merge("subtract"),
    "Average": lambda l, s, e: _Merge("average"),
}

SUPPORTED_LAYERS = tuple(sorted(set(_CONVERTERS) | _IDENTITY | {"InputLayer", "Sequential", "Functional",
                                                                  "Model"}))


def _is_model(layer):
    return hasattr(layer, "_nodes_by_depth") and hasattr(layer, "inputs") and \
        type(layer).__name__ in ("Sequential", "Functional", "Model")


def _shape(t):
    return tuple(None if d is None else int(d) for d in t.shape)


def _convert_graph(model, errors):
    """A KerasGraph for a built Keras 2 graph model (errors collected, not raised)."""
    if not getattr(model, "_is_graph_network", False) or not getattr(model, "inputs", None):
        errors.append(f"model {model.name!r} ({type(model).__name__}) is not a built Sequential/functional "
                      "model (subclassed models and unbuilt Sequentials cannot be converted)")
        return None
    ids = {}

    def tid(t):
        return ids.setdefault(id(t), len(ids))

    input_ids = [tid(t) for t in model.inputs]
    output_ids = [tid(t) for t in model.outputs]
    modules, steps, used = {}, [], {}
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.layer
            if node.is_input:
                continue
            cls = type(layer).__name__
            ins = [tid(t) for t in node.keras_inputs]
            outs = [tid(t) for t in (node.outputs if isinstance(node.outputs, (list, tuple)) else [node.outputs])]
            if any(hasattr(v, "_keras_history") for v in _flat(node.call_kwargs)):
                errors.append(f"layer {layer.name!r} ({cls}) is called with tensor keyword arguments "
                              "(e.g. a mask), which the converter does not support")
                continue
            if cls in _IDENTITY:
                steps.append((None, ins[:1], outs, []))
                continue
            if _is_model(layer):
                module = _convert_graph(layer, errors)
            elif cls in _CONVERTERS and _keras_package(layer) in ("tf_keras", "keras"):
                if len(outs) != 1:
                    errors.append(f"layer {layer.name!r} ({cls}) returns {len(outs)} tensors")
                    continue
                module = _CONVERTERS[cls](layer, [_shape(t) for t in node.keras_inputs], errors)
            else:
                errors.append(f"layer {layer.name!r} ({cls})")
                continue
            if module is None and cls != "Activation":
                continue
            if module is None:                                      # Activation('linear')
                steps.append((None, ins[:1], outs, []))
                continue
            n = used.get(layer.name, 0)
            used[layer.name] = n + 1
            key = re.sub(r"\W", "_", layer.name) + (f"_call{n}" if n else "")
            while key in modules:
                key += "_"
            modules[key] = module
            steps.append((key, ins, outs, []))
    if errors:
        return None
    # Free intermediates after their last use (keep model outputs).
    last = {}
    for i, (_, ins, _, _) in enumerate(steps):
        for t in ins:
            last[t] = i
    keep = set(output_ids)
    steps = [(key, ins, outs, sorted({t for t in ins if last.get(t) == i and t not in keep}))
             for i, (key, ins, outs, _) in enumerate(steps)]
    input_names = [t._keras_history[0].name for t in model.inputs]
    output_names = [t._keras_history[0].name for t in model.outputs]
    return KerasGraph(model.name, modules, steps, input_ids, output_ids, input_names, output_names)


def _flat(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _flat(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _flat(v)
    else:
        yield obj


def _as_list(x):
    if isinstance(x, dict):
        return list(x.values()), list(x.keys())
    if isinstance(x, (list, tuple)):
        return list(x), None
    return [x], None


def _to_numpy(y):
    if isinstance(y, torch.Tensor):
        return y.detach().cpu().numpy()
    return np.asarray(y)


def check_conversion(keras_model, module: nn.Module, X, rtol: float = 1e-5,
                     atol: float = 1e-6) -> ConversionCheck:
    """Compare a converted module with its Keras model on one batch.

    Parameters
    ----------
    keras_model : tf_keras.Model
        The original model.
    module : torch.nn.Module
        Its conversion (e.g. from :func:`keras_to_torch`), in the Keras layout.
    X : numpy.ndarray or torch.Tensor, or a list or dict of them
        One batch of inputs in the Keras model's layout (a dict is keyed by
        input name).
    rtol, atol : float
        Each output passes when ``max|torch - keras| <= atol + rtol * max|keras|``.

    Returns
    -------
    ConversionCheck
        Differences, the tolerance and whether every output passed.
    """
    xs, names = _as_list(X)
    arrays = [np.asarray(_to_numpy(x), dtype=np.float32) for x in xs]
    keras_in = dict(zip(names, arrays)) if names is not None else (arrays if len(arrays) > 1 else arrays[0])
    y_keras = keras_model.predict_on_batch(keras_in)
    y_keras = [np.asarray(y) for y in (y_keras if isinstance(y_keras, (list, tuple)) else [y_keras])]
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    tensors = [torch.from_numpy(a).to(device) for a in arrays]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            y_torch = module(dict(zip(names, tensors))) if names is not None else module(*tensors)
    finally:
        module.train(was_training)
    y_torch = [_to_numpy(y) for y in (y_torch if isinstance(y_torch, (list, tuple)) else [y_torch])]
    if len(y_torch) != len(y_keras):
        raise ConversionMismatchError(f"converted model returns {len(y_torch)} outputs, the Keras model "
                                      f"{len(y_keras)}")
    n = len(arrays[0])
    rows = []                                                   # (diff, tol, scale) per output
    for i, (a, b) in enumerate(zip(y_torch, y_keras)):
        if a.shape != b.shape:
            raise ConversionMismatchError(f"output {i}: converted shape {a.shape}, Keras shape {b.shape}")
        a, b = a.astype(np.float64), b.astype(np.float64)
        finite = np.isfinite(b)
        if not np.array_equal(np.isfinite(a), finite) or not np.array_equal(a[~finite], b[~finite],
                                                                                 equal_nan=True):
            return ConversionCheck(float("inf"), float("inf"), float("nan"), atol, False, n)
        if b.size and not finite.any():
            return ConversionCheck(float("nan"), float("nan"), float("nan"), atol, False, n)
        a, b = a[finite], b[finite]
        diff = float(np.abs(a - b).max()) if a.size else 0.0
        scale = float(np.abs(b).max()) if b.size else 0.0
        rows.append((diff, atol + rtol * scale, scale))
    ok = all(d <= t for d, t, _ in rows)
    worst = max(rows, key=lambda r: r[0] - r[1])
    max_rel = max((d / s if s > 0 else (0.0 if d == 0 else float("inf"))) for d, _, s in rows)
    return ConversionCheck(max(r[0] for r in rows), max_rel, max(r[2] for r in rows), worst[1], ok, n)


def keras_to_torch(keras_model, X=None, *, rtol: float = 1e-5, atol: float = 1e-6) -> KerasGraph:
    """Convert a Keras 2 model built from standard layers into a torch module.

    Parameters
    ----------
    keras_model : tf_keras.Model
        A built Sequential or functional model (e.g. ``KerasModel(...).model``).
    X : numpy.ndarray or torch.Tensor, or a list or dict of them, optional
        A batch of inputs (Keras layout). When given, the conversion is checked
        on it with :func:`check_conversion` and refused above tolerance.
    rtol, atol : float
        Tolerance of that check: ``max|torch - keras| <= atol + rtol * max|keras|``
        per output (float32 arithmetic in another order stays orders of magnitude below).

    Returns
    -------
    KerasGraph
        In eval mode, float32, CPU; same input layout as the Keras model.
        ``conversion_check`` holds the check's :class:`ConversionCheck`.

    Raises
    ------
    UnsupportedLayerError
        Naming every layer (name and class) or activation that cannot be converted.
    ConversionMismatchError
        When the check fails.
    """
    errors = []
    module = _convert_graph(keras_model, errors)
    if errors or module is None:
        raise UnsupportedLayerError(
            f"cannot convert Keras model {keras_model.name!r} to torch: " + "; ".join(errors)
            + " (no faithful torch equivalent; convertible layers are listed in "
            "kipoi_tanger.frameworks.keras_to_torch.SUPPORTED_LAYERS)")
    module.eval()
    if X is not None:
        check = check_conversion(keras_model, module, X, rtol=rtol, atol=atol)
        module.conversion_check = check
        if not check.ok:
            what = (f"max |diff| {check.max_abs_diff:.3g} > tolerance {check.tolerance:.3g} "
                    f"(max |y| {check.scale:.3g})")
            if math.isnan(check.max_abs_diff):
                what = "the Keras model returns no finite output to compare with"
            elif math.isinf(check.max_abs_diff):
                what = "their non-finite outputs (NaN/inf) differ"
            raise ConversionMismatchError(
                f"converted Keras model {keras_model.name!r} differs from the Keras model on {check.n_examples} "
                f"examples: {what}; refusing the conversion")
    return module
