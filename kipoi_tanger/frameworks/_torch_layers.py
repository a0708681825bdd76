"""Torch modules that reproduce Keras 2 layers, for :mod:`kipoi_tanger.frameworks.keras_to_torch`.

Tensors keep the Keras layout (channels last); each module that needs
``(N, C, L)`` transposes around a plain torch module (``nn.Conv1d``,
``nn.MaxPool1d``...), so DeepLIFT's rules see the torch module they know with
its usual input. Nonlinearities are separate modules (``act`` children).
"""
import torch
import torch.nn.functional as F
from torch import nn


def _same_pads(length, kernel, stride, dilation=1):
    """TensorFlow's 'same' padding: (before, after) for one axis."""
    eff = (kernel - 1) * dilation + 1
    out = -(-length // stride)
    total = max((out - 1) * stride + eff - length, 0)
    return total // 2, total - total // 2


class _Conv1d(nn.Module):
    """Keras Conv1D: optional transpose to (N, C, L), padding, conv, activation module."""

    def __init__(self, conv, padding, channels_last, act):
        super().__init__()
        self.conv = conv
        self.padding = padding          # 'valid', 'same' or 'causal'
        self.channels_last = channels_last
        self.act = act

    def _pads(self, length):
        k, s, d = self.conv.kernel_size[0], self.conv.stride[0], self.conv.dilation[0]
        if self.padding == "causal":
            return (k - 1) * d, 0
        if self.padding == "same":
            return _same_pads(length, k, s, d)
        return 0, 0

    def forward(self, x):
        if self.channels_last:
            x = x.transpose(1, 2)
        left, right = self._pads(x.shape[-1])
        if left or right:
            x = F.pad(x, (left, right))
        x = self.conv(x)
        if self.channels_last:
            x = x.transpose(1, 2)
        return x if self.act is None else self.act(x)


def _pool_geometry(length, kernel, stride):
    """(padding, ceil_mode) that make torch's pooling windows TensorFlow's 'same' windows."""
    left, _ = _same_pads(length, kernel, stride)
    want = -(-length // stride)
    for ceil_mode in (False, True):
        span = length + 2 * left - kernel
        out = (-(-span // stride) if ceil_mode else span // stride) + 1
        if ceil_mode and (out - 1) * stride >= length + left:
            out -= 1
        if out == want:
            return left, ceil_mode
    raise ValueError(f"no torch pooling geometry reproduces TensorFlow's 'same' pooling "
                     f"(length {length}, pool {kernel}, stride {stride})")


class _Pool1d(nn.Module):
    """Keras Max/AveragePooling1D: an ``nn.MaxPool1d``/``nn.AvgPool1d`` fed in (N, C, L)."""

    def __init__(self, pool, same, channels_last):
        super().__init__()
        self.pool = pool
        self.same = same
        self.channels_last = channels_last

    def forward(self, x):
        if self.channels_last:
            x = x.transpose(1, 2)
        if self.same:
            # The windows depend on the length; set before the call so a DeepLIFT
            # hook on self.pool reads the geometry that was used.
            p, c = _pool_geometry(x.shape[-1], self.pool.kernel_size if isinstance(self.pool.kernel_size, int)
                                  else self.pool.kernel_size[0],
                                  self.pool.stride if isinstance(self.pool.stride, int) else self.pool.stride[0])
            self.pool.padding, self.pool.ceil_mode = p, c
        x = self.pool(x)
        return x.transpose(1, 2) if self.channels_last else x


class WholeLengthMaxPool1d(nn.MaxPool1d):
    """``nn.MaxPool1d`` whose window is the whole input length, for inputs of
    any length (``(None, 4)`` models); a MaxPool1d, so DeepLIFT's max-pool rule applies."""

    def __init__(self):
        super().__init__(kernel_size=1)

    def forward(self, x):
        self.kernel_size = self.stride = x.shape[-1]
        return F.max_pool1d(x, self.kernel_size, self.stride)


class _GlobalPool1d(nn.Module):
    """Keras GlobalMax/AveragePooling1D (``pool`` None = average)."""

    def __init__(self, pool, channels_last, keepdims):
        super().__init__()
        self.pool = pool
        self.channels_last = channels_last
        self.keepdims = keepdims

    def forward(self, x):
        if self.channels_last:
            x = x.transpose(1, 2)                       # (N, C, L)
        y = x.mean(-1, keepdim=True) if self.pool is None else self.pool(x)
        if not self.keepdims:
            return y.squeeze(-1)
        return y.transpose(1, 2) if self.channels_last else y


class _Dense(nn.Module):
    """Keras Dense (on the last axis, any rank) + activation module."""

    def __init__(self, linear, act):
        super().__init__()
        self.linear = linear
        self.act = act

    def forward(self, x):
        x = self.linear(x)
        return x if self.act is None else self.act(x)


class _Affine(nn.Module):
    """Inference-time BatchNormalization: ``x * scale + shift`` along the normalised axes."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x):
        return x * self.scale + self.shift


class _Flatten(nn.Module):
    def __init__(self, channels_first):
        super().__init__()
        self.channels_first = channels_first

    def forward(self, x):
        if self.channels_first and x.ndim >= 3:
            x = x.permute(0, *range(2, x.ndim), 1)      # Keras flattens channels-last order
        return x.reshape(x.shape[0], -1)


class _Reshape(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = tuple(int(t) for t in target)

    def forward(self, x):
        return x.reshape((x.shape[0],) + self.target)


class _Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = (0,) + tuple(int(d) for d in dims)

    def forward(self, x):
        return x.permute(*self.dims)


class _Crop1d(nn.Module):
    def __init__(self, left, right):
        super().__init__()
        self.left, self.right = int(left), int(right)

    def forward(self, x):
        return x[:, self.left:x.shape[1] - self.right]


class _ZeroPad1d(nn.Module):
    def __init__(self, left, right):
        super().__init__()
        self.left, self.right = int(left), int(right)

    def forward(self, x):
        return F.pad(x, (0, 0, self.left, self.right))


class _UpSample1d(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.size = int(size)

    def forward(self, x):
        return x.repeat_interleave(self.size, dim=1)


class _Merge(nn.Module):
    """Keras Add, Subtract, Average, Concatenate (linear in their inputs)."""

    def __init__(self, op, axis=-1):
        super().__init__()
        self.op = op
        self.axis = axis

    def forward(self, *xs):
        if self.op == "concatenate":
            return torch.cat(xs, dim=self.axis)
        if self.op == "subtract":
            return xs[0] - xs[1]
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total / len(xs) if self.op == "average" else total


class KerasGraph(nn.Module):
    """A converted Keras model: the Keras graph's calls, run in Keras' order.

    Attributes
    ----------
    layers : nn.ModuleDict
        One module per converted Keras layer call (a layer shared by several
        calls gets one copy per call), keyed by the Keras layer name.
    input_names, output_names : list of str
        The Keras model's input and output layer names.
    conversion_check : ConversionCheck or None
        Set by :func:`keras_to_torch` when it checked the conversion on a batch.
    """

    def __init__(self, name, modules, steps, input_ids, output_ids, input_names, output_names):
        super().__init__()
        self.keras_name = name
        self.layers = nn.ModuleDict(modules)
        self._steps = steps                  # (module key or None, input ids, output ids, ids freed after)
        self._input_ids = list(input_ids)
        self._output_ids = list(output_ids)
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.conversion_check = None

    def forward(self, *inputs):
        if len(inputs) == 1 and isinstance(inputs[0], dict):
            missing = [n for n in self.input_names if n not in inputs[0]]
            if missing:
                raise ValueError(f"{self.keras_name}: missing inputs {missing}; expected {self.input_names}")
            inputs = tuple(inputs[0][n] for n in self.input_names)
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)) and len(self._input_ids) > 1:
            inputs = tuple(inputs[0])
        if len(inputs) != len(self._input_ids):
            raise ValueError(f"{self.keras_name}: expected {len(self._input_ids)} inputs "
                             f"({', '.join(self.input_names)}), got {len(inputs)}")
        env = dict(zip(self._input_ids, inputs))
        for key, ins, outs, free in self._steps:
            args = [env[i] for i in ins]
            y = args[0] if key is None else self.layers[key](*args)
            if len(outs) == 1:
                env[outs[0]] = y
            else:
                env.update(zip(outs, y))
            for i in free:
                del env[i]
        ys = [env[i] for i in self._output_ids]
        return ys[0] if len(ys) == 1 else tuple(ys)
