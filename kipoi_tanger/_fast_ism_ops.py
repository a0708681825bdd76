"""Op rules of the fast ISM engine (``_fast_ism``): what each traced op does
to a batch of single-base edits, without recomputing whole sequences.

Every edit belongs to a *site* (sequence, position); the ``K`` alternative
bases of a site are consecutive rows (edit ``b`` is alternative ``b % K`` of
site ``b // K``). A value flowing through the traced graph is one of:

* :class:`Static` — independent of the sequence input (parameters,
  constants, shape tuples, in which the batch size is the :data:`BATCH`
  marker and must not be computed with).
* :class:`Batched` — depends only on the extra inputs: the reference pass's
  row of the edit's sequence.
* :class:`Local` — a ``(B, C, L)`` tensor (or ``(B, C, L, 1, ...)``) equal to
  the reference except on a window: ``delta`` ``(B, C, W)`` is the change on
  positions ``[start[site], start[site] + W)``; it is zero on window
  positions outside ``[0, L)``, which do not exist.
* :class:`FlatLocal` — a ``Local`` flattened to ``(B, C * L)``, kept lazy so
  that a dense layer multiplies only the columns of the window.
* :class:`SwappedLocal` — a 3-D ``Local`` with its channel and length axes
  swapped, ``(B, L, C)``: a channels-last model's input between the layout
  adapter's permute and the model's own one back (which gives the ``Local``
  again); anything else expands it.
* :class:`Dense` — the full value for every edit, ``(B, ...)``.

A rule handles its inputs or raises :class:`Unsupported`: nothing is
guessed. Linear ops (convolution, eval BatchNorm, average pooling, addition,
cropping, sums) act on ``delta`` alone, so the first convolution sees only
the one-base change; elementwise non-linearities and max pooling read the
reference window once per site, shared by its ``K`` alternatives; other ops
known to act on each example separately (dense layers, softmax, ...) run on
``Dense`` values; an op that could mix examples or is not in these tables
is refused.
"""
import math
import operator

import torch
import torch.nn.functional as F

from ._fast_ism_values import (BATCH, Batched, Dense, FlatLocal, Local, Static, SwappedLocal,
                               Unsupported, _trail, add_local, conv_local, pool_local, to_dense, union,
                               unary_local, zero_outside)

nn = torch.nn


# ---------------------------------------------------------------------------
# tables

UNARY_MODULES = {
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish,
    nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold, nn.PReLU,
}
IDENTITY_MODULES = {nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout}
UNARY_FUNCS = {
    torch.relu, F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish,
    torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.softplus, F.softsign, F.hardtanh,
    F.hardsigmoid, F.hardswish, F.logsigmoid, F.tanhshrink, torch.exp, torch.log, torch.abs,
    torch.square, torch.sqrt, torch.log1p, torch.expm1, torch.neg,
}
UNARY_METHODS = {'relu', 'sigmoid', 'tanh', 'exp', 'log', 'abs', 'square', 'sqrt', 'log1p', 'expm1',
                 'neg'}
ARITH = {operator.add: operator.add, operator.iadd: operator.add, torch.add: operator.add,
         operator.sub: operator.sub, operator.isub: operator.sub, torch.sub: operator.sub,
         operator.mul: operator.mul, operator.imul: operator.mul, torch.mul: operator.mul,
         operator.truediv: operator.truediv, operator.itruediv: operator.truediv,
         torch.div: operator.truediv}
ARITH_METHODS = {'add': operator.add, 'sub': operator.sub, 'mul': operator.mul,
                 'div': operator.truediv}
# ops that act on each example separately, with the argument naming their axes
# (position, keyword) — an axis argument must never be the batch axis
DIM_FUNCS = {
    torch.softmax: (1, 'dim'), F.softmax: (1, 'dim'), torch.log_softmax: (1, 'dim'),
    F.log_softmax: (1, 'dim'), torch.amax: (1, 'dim'), torch.amin: (1, 'dim'),
    torch.logsumexp: (1, 'dim'), F.normalize: (2, 'dim'), torch.transpose: (1, None),
    torch.unsqueeze: (1, 'dim'), torch.squeeze: (1, 'dim'), torch.permute: (1, 'dims'),
}
NODIM_FUNCS = {torch.matmul, operator.matmul, torch.maximum, torch.minimum, torch.pow, operator.pow,
               torch.clamp, torch.where, operator.neg}
DIM_METHODS = {'softmax': (0, 'dim'), 'log_softmax': (0, 'dim'), 'amax': (0, 'dim'),
               'amin': (0, 'dim'), 'logsumexp': (0, 'dim'), 'transpose': (0, None),
               'permute': (0, 'dims')}
NODIM_METHODS = {'pow', 'clamp', 'matmul', 'maximum', 'minimum', 'float', 'double', 'type_as'}
DENSE_MODULES = {nn.Linear, nn.Bilinear, nn.LayerNorm, nn.GroupNorm, nn.Conv1d, nn.Conv2d,
                 nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
                 nn.AdaptiveMaxPool1d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Softmax, nn.LogSoftmax,
                 nn.Unflatten}


_REDUCE_DEFAULTS = {'dim': None, 'keepdim': False, 'dtype': None}


def _bind(args, kwargs, names, defaults):
    if len(args) > len(names):
        raise Unsupported("too many positional arguments")
    out = dict(defaults)
    out.update(zip(names, args))
    for k, a in kwargs.items():
        if k not in names:
            raise Unsupported(f"keyword {k!r}")
        out[k] = a
    return out


def _static(v, what):
    """The plain value of an argument that must not depend on the input."""
    if isinstance(v, Static):
        return v.value
    if isinstance(v, (Batched, Local, FlatLocal, SwappedLocal, Dense)):
        raise Unsupported(f"{what} depends on the input")
    if isinstance(v, (tuple, list)):
        return type(v)(_static(a, what) for a in v)
    if isinstance(v, slice):
        return slice(_static(v.start, what), _static(v.stop, what), _static(v.step, what))
    return v


def _int1(v, what):
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    if not isinstance(v, int):
        raise Unsupported(f"{what}={v!r}")
    return v


def _k1(v, what, second):
    """The length part of a 2-d op's (length, 1) argument."""
    v = (v, v) if isinstance(v, int) else tuple(v)
    if len(v) != 2 or v[1] != second:
        return None
    return v[0]


def _has_batch(x):
    if x is BATCH:
        return True
    if isinstance(x, (tuple, list)):
        return any(_has_batch(a) for a in x)
    return False


def _dims(value):
    if value is None:
        return [None]
    return list(value) if isinstance(value, (tuple, list)) else [value]


class Rules:
    """Evaluate one traced node on the values of its inputs (``ctx`` is the
    engine's batch context: reference values, sites, counters)."""

    def __init__(self, ctx):
        self.ctx = ctx

    def run(self, node, args, kwargs):
        if node.op == 'call_module':
            return self.module(node, self.ctx.modules[node.target], args, kwargs)
        if node.op == 'call_method':
            return self.method(node, node.target, args, kwargs)
        if node.op == 'call_function':
            return self.function(node, node.target, args, kwargs)
        raise Unsupported(f"node kind {node.op}")

    def ndim(self, v):
        return self.ctx.meta(v).ndim

    # -- modules ----------------------------------------------------------------
    def module(self, node, mod, args, kwargs):
        t = type(mod)
        if len(args) != 1 or kwargs:
            if t in DENSE_MODULES:
                return self.dense(node, mod, args, kwargs)
            raise Unsupported(f"module {t.__name__} with {len(args)} inputs")
        x = args[0]
        if t in IDENTITY_MODULES:
            if mod.training:
                raise Unsupported(f"{t.__name__} in training mode")
            return x
        if t in UNARY_MODULES:
            return self.unary(node, x, mod, torch.relu_ if t is nn.ReLU else None)
        if t in (nn.Conv1d, nn.Conv2d):
            return self.conv(node, x, mod, t is nn.Conv2d)
        if t in (nn.BatchNorm1d, nn.BatchNorm2d):
            if mod.training or not mod.track_running_stats or mod.running_var is None:
                raise Unsupported(f"{t.__name__} normalising with batch statistics")
            if isinstance(x, Local) and x.trail == (1 if t is nn.BatchNorm2d else 0):
                scale = torch.rsqrt(mod.running_var + mod.eps)
                if mod.weight is not None:
                    scale = scale * mod.weight
                return Local(x.delta * scale.to(x.delta.dtype)[:, None], x.start, x.length, x.trail,
                             node)
            return self.dense(node, mod, args, kwargs)
        if t in (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d):
            return self.pool(node, x, mod, t)
        if t is nn.Flatten:
            return self.flatten(node, x, mod.start_dim, mod.end_dim)
        if t is nn.Linear:
            return self.linear(node, x, mod.weight, mod.bias)
        if t in (nn.Softmax, nn.LogSoftmax):
            if mod.dim is None or mod.dim % self.ndim(x) == 0:
                raise Unsupported(f"{t.__name__}(dim={mod.dim}) over the batch axis")
        if t is nn.LayerNorm and len(mod.normalized_shape) >= self.ndim(x):
            raise Unsupported("LayerNorm over the batch axis")
        if t is nn.Unflatten and mod.dim % self.ndim(x) == 0:
            raise Unsupported("Unflatten of the batch axis")
        if t in (nn.Linear, nn.Bilinear) and self.ndim(x) < 2:
            raise Unsupported("dense layer over the batch axis")
        if t in DENSE_MODULES:
            return self.dense(node, mod, args, kwargs)
        raise Unsupported(f"module {t.__module__}.{t.__qualname__} ({node.target})")

    def conv(self, node, x, mod, two_d):
        if mod.padding_mode != 'zeros':
            raise Unsupported(f"convolution with padding_mode={mod.padding_mode!r}")
        w = mod.weight
        if not isinstance(x, Local) or x.trail != (1 if two_d else 0):
            return self.dense(node, mod, [x], {})
        if two_d:
            stride, dil = _k1(mod.stride, 's', 1), _k1(mod.dilation, 'd', 1)
            pad = mod.padding if isinstance(mod.padding, str) else _k1(mod.padding, 'p', 0)
            if w.shape[3] != 1 or None in (stride, dil, pad):
                return self.dense(node, mod, [x], {})
            w = w[..., 0]
        else:
            stride, dil = mod.stride[0], mod.dilation[0]
            pad = mod.padding if isinstance(mod.padding, str) else mod.padding[0]
        pad = 0 if pad == 'valid' else dil * (w.shape[-1] - 1) // 2 if pad == 'same' else pad
        return conv_local(self.ctx, x, w, stride, pad, dil, mod.groups, node)

    def pool(self, node, x, mod, t):
        two_d = t in (nn.MaxPool2d, nn.AvgPool2d)
        is_max = t in (nn.MaxPool1d, nn.MaxPool2d)
        if is_max and mod.return_indices:
            raise Unsupported("max pooling that returns indices")
        if not isinstance(x, Local) or x.trail != (1 if two_d else 0) or mod.ceil_mode or \
                (not is_max and two_d and mod.divisor_override is not None):
            return self.dense(node, mod, [x], {})
        stride = mod.stride if mod.stride not in (None, (), []) else mod.kernel_size
        dil = mod.dilation if is_max else 1
        if two_d:
            k, stride = _k1(mod.kernel_size, 'k', 1), _k1(stride, 's', 1)
            pad, dil = _k1(mod.padding, 'p', 0), _k1(dil, 'd', 1)
            if None in (k, stride, pad, dil):
                return self.dense(node, mod, [x], {})
        else:
            k, stride, pad, dil = (_int1(v, n) for v, n in ((mod.kernel_size, 'kernel_size'),
                                                            (stride, 'stride'), (mod.padding, 'padding'),
                                                            (dil, 'dilation')))
        return pool_local(self.ctx, x, is_max, k, stride, pad, dil, node,
                          count_include_pad=True if is_max else mod.count_include_pad)

    # -- methods ----------------------------------------------------------------
    def method(self, node, name, args, kwargs):
        x = args[0]
        if isinstance(x, Static):
            raise Unsupported(f"method .{name}() of a constant in an input-dependent node")
        if name in ('size', 'dim', 'ndimension'):
            shape = self.shape_of(x)
            if name != 'size':
                return Static(len(shape))
            dim = _static(args[1], 'dim') if len(args) > 1 else _static(kwargs.get('dim'), 'dim')
            return Static(shape if dim is None else shape[dim])
        if name in ('contiguous', 'clone', 'detach') and len(args) == 1 and not kwargs:
            return x
        if name in UNARY_METHODS and len(args) == 1 and not kwargs:
            return self.unary(node, x, lambda t: getattr(t, name)(), torch.relu_ if name == 'relu' else None)
        if name in ARITH_METHODS and len(args) == 2 and not kwargs:
            return self.binary(node, ARITH_METHODS[name], args[0], args[1])
        if name in ('mean', 'sum'):
            b = _bind(args[1:], kwargs, ('dim', 'keepdim', 'dtype'), _REDUCE_DEFAULTS)
            return self.reduce(node, name, x, _static(b['dim'], 'dim'), _static(b['keepdim'], 'keepdim'),
                               _static(b['dtype'], 'dtype'))
        if name in ('view', 'reshape'):
            shape = args[1] if len(args) == 2 and isinstance(args[1], (tuple, list)) else args[1:]
            return self.reshape(node, x, shape)
        if name == 'flatten':
            b = _bind(args[1:], kwargs, ('start_dim', 'end_dim'), {'start_dim': 0, 'end_dim': -1})
            return self.flatten(node, x, _static(b['start_dim'], 's'), _static(b['end_dim'], 'e'))
        if name in ('unsqueeze', 'squeeze'):
            if len(args) != 2 or kwargs:
                raise Unsupported(f".{name}() without one dim may touch the batch axis")
            return self.unsqueeze(node, name, x, _static(args[1], 'dim'))
        if name == 'permute' and self.identity_permutation(x, args[1:], kwargs):
            return x   # layout adapters permute (0, 1, 2, 3) for (A, L, 1) models
        if name in ('permute', 'transpose'):
            swapped = self.swap(node, x, name, args[1:], kwargs)
            if swapped is not None:
                return swapped
        if name in DIM_METHODS:
            pos, kw = DIM_METHODS[name]
            self.check_dims(x, args[1:], kwargs, pos, kw, name)
            return self.dense(node, lambda t, *a, **k: getattr(t, name)(*a, **k), args, kwargs)
        if name in NODIM_METHODS:
            return self.dense(node, lambda t, *a, **k: getattr(t, name)(*a, **k), args, kwargs)
        raise Unsupported(f"method .{name}()")

    # -- functions ----------------------------------------------------------------
    def function(self, node, fn, args, kwargs):
        if fn is getattr:
            return self.attr(args[0], _static(args[1], 'name'))
        if fn is operator.getitem:
            return self.getitem(node, args[0], _static(args[1], 'index'))
        if fn in UNARY_FUNCS:
            extra = [_static(a, 'argument') for a in args[1:]]
            kw = {k: _static(a, k) for k, a in kwargs.items()}
            kw.pop('inplace', None)
            relu = fn in (torch.relu, F.relu) and not extra and not kw
            return self.unary(node, args[0], lambda t: fn(t, *extra, **kw), torch.relu_ if relu else None)
        if fn in ARITH:
            if len(args) != 2 or kwargs:
                raise Unsupported(f"{fn.__name__} with extra arguments")
            return self.binary(node, ARITH[fn], args[0], args[1])
        if fn in (torch.mean, torch.sum):
            b = _bind(args[1:], kwargs, ('dim', 'keepdim', 'dtype'), _REDUCE_DEFAULTS)
            return self.reduce(node, fn.__name__, args[0], _static(b['dim'], 'dim'),
                               _static(b['keepdim'], 'keepdim'), _static(b['dtype'], 'dtype'))
        if fn is torch.flatten:
            b = _bind(args[1:], kwargs, ('start_dim', 'end_dim'), {'start_dim': 0, 'end_dim': -1})
            return self.flatten(node, args[0], _static(b['start_dim'], 's'), _static(b['end_dim'], 'e'))
        if fn is torch.reshape:
            return self.reshape(node, args[0], args[1])
        if fn is F.linear:
            b = _bind(args[1:], kwargs, ('weight', 'bias'), {'bias': None})
            return self.linear(node, args[0], _static(b['weight'], 'weight'), _static(b['bias'], 'bias'))
        if fn in (torch.cat, torch.concat):
            b = _bind(args, kwargs, ('tensors', 'dim'), {'dim': 0})
            return self.cat(node, b['tensors'], _static(b['dim'], 'dim'))
        if fn in (F.conv1d, torch.conv1d):
            return self.conv_fn(node, args, kwargs)
        if fn in (F.max_pool1d, F.avg_pool1d, torch.max_pool1d, torch.avg_pool1d):
            return self.pool_fn(node, fn in (F.max_pool1d, torch.max_pool1d), args, kwargs)
        if fn in (F.dropout, F.dropout1d, F.dropout2d):
            b = _bind(args[1:], kwargs, ('p', 'training', 'inplace'), {'training': True})
            if _static(b['training'], 'training') is not False:
                raise Unsupported("dropout in training mode")
            return args[0]
        if fn is torch.permute and self.identity_permutation(args[0], args[1:], kwargs):
            return args[0]
        if fn in (torch.permute, torch.transpose):
            swapped = self.swap(node, args[0], fn.__name__, args[1:], kwargs)
            if swapped is not None:
                return swapped
        if fn in DIM_FUNCS:
            pos, kw = DIM_FUNCS[fn]
            self.check_dims(args[0], args[1:], kwargs, pos - 1, kw, fn.__name__)
            return self.dense(node, fn, args, kwargs)
        if fn in NODIM_FUNCS:
            return self.dense(node, fn, args, kwargs)
        name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__name__', repr(fn))}"
        raise Unsupported(f"function {name}")

    # -- shapes --------------------------------------------------------------------
    def shape_of(self, x):
        return (BATCH,) + tuple(self.ctx.meta(x).shape[1:])

    def attr(self, x, name):
        if name == 'shape':
            return Static(self.shape_of(x))
        if name in ('ndim', 'dtype', 'device', 'is_cuda'):
            return Static(getattr(self.ctx.meta(x), name))
        raise Unsupported(f"attribute .{name} of an input-dependent tensor")

    def getitem(self, node, x, idx):
        if isinstance(x, Static):
            return Static(x.value[idx])
        if isinstance(x, (tuple, list)):
            return x[idx]
        nd = self.ndim(x)
        idx = idx if isinstance(idx, tuple) else (idx,)
        if any(i is Ellipsis for i in idx):
            k = idx.index(Ellipsis)
            idx = idx[:k] + (slice(None),) * (nd - len(idx) + 1) + idx[k + 1:]
        idx = idx + (slice(None),) * (nd - len(idx))
        if isinstance(x, Local) and len(idx) == nd and idx[0] == slice(None) and isinstance(idx[1], list) and \
                all(isinstance(i, int) and not isinstance(i, bool) for i in idx[1]) and \
                all(i == slice(None) for i in idx[2:]):
            # channels in another order (the layout adapter's AGCT models): a local change stays local
            return Local(x.delta[:, idx[1]], x.start, x.length, x.trail, node)
        if len(idx) != nd or idx[0] != slice(None) or \
                any(not isinstance(i, (slice, int)) for i in idx):
            raise Unsupported("indexing that touches the batch axis, adds axes or uses tensors")
        if isinstance(x, Local) and all(isinstance(i, slice) for i in idx) and \
                all(i == slice(None) for i in idx[3:]) and idx[2].step in (None, 1):
            a, b, _ = idx[2].indices(x.length)
            start = x.start - a
            return Local(zero_outside(self.ctx, x.delta[:, idx[1]], start, max(a, b) - a), start,
                         max(a, b) - a, x.trail, node)
        return Dense(to_dense(self.ctx, x)[idx], node)

    def reshape(self, node, x, shape):
        shape = tuple(_static(s, 'shape') for s in shape)
        per = tuple(self.ctx.meta(x).shape[1:])
        rest = shape[1:]
        if not shape or any(not isinstance(s, int) for s in rest) or not (
                shape[0] is BATCH or (shape[0] == -1 and -1 not in rest and
                                      math.prod(rest) == math.prod(per))):
            raise Unsupported(f"reshape to {shape!r} may move the batch axis")
        if -1 in rest:
            known = math.prod(s for s in rest if s != -1)
            rest = tuple(math.prod(per) // known if s == -1 else s for s in rest)
        if isinstance(x, Local):
            if rest[:2] == per[:2] and all(s == 1 for s in rest[2:]):
                return Local(x.delta, x.start, x.length, len(rest) - 2, node)
            if rest == (math.prod(per),):
                return FlatLocal(x, node)
        v = to_dense(self.ctx, x)
        return Dense(v.reshape((v.shape[0],) + rest), node)

    def flatten(self, node, x, start_dim, end_dim):
        nd = self.ndim(x)
        s, e = start_dim % nd, end_dim % nd
        if s == 0:
            raise Unsupported("flatten over the batch axis")
        if isinstance(x, Local) and s == 1 and e == nd - 1:
            return FlatLocal(x, node)
        return Dense(torch.flatten(to_dense(self.ctx, x), s, e), node)

    def unsqueeze(self, node, name, x, dim):
        nd = self.ndim(x) + (name == 'unsqueeze')
        if not isinstance(dim, int) or dim % nd == 0:
            raise Unsupported(f".{name}({dim!r}) touches the batch axis")
        if isinstance(x, Local) and dim % nd >= 3:
            if name == 'unsqueeze':
                return Local(x.delta, x.start, x.length, x.trail + 1, node)
            if x.trail:
                return Local(x.delta, x.start, x.length, x.trail - 1, node)
        return Dense(getattr(to_dense(self.ctx, x), name)(dim), node)

    def swap(self, node, x, name, rest, kwargs):
        """``permute(0, 2, 1)``/``transpose(1, 2)`` of a 3-D local value (channels-last and back):
        a :class:`SwappedLocal`, or the ``Local`` again; None for any other permutation."""
        if not isinstance(x, (Local, SwappedLocal)) or (isinstance(x, Local) and x.trail) or self.ndim(x) != 3:
            return None
        try:
            if name == 'transpose':
                b = _bind(rest, kwargs, ('dim0', 'dim1'), {})
                d = [_static(b.get(k), 'dim') for k in ('dim0', 'dim1')]
                ok = all(isinstance(i, int) and not isinstance(i, bool) for i in d) and \
                    sorted(i % 3 for i in d) == [1, 2]
            else:
                dims = _static(kwargs['dims'] if 'dims' in kwargs else rest[0] if len(rest) == 1 else rest, 'dims')
                dims = list(dims) if isinstance(dims, (tuple, list)) else [dims]
                ok = len(dims) == 3 and all(isinstance(i, int) and not isinstance(i, bool) for i in dims) and \
                    [i % 3 for i in dims] == [0, 2, 1]
        except Unsupported:
            return None
        if not ok:
            return None
        return SwappedLocal(x, node) if isinstance(x, Local) else x.local

    def identity_permutation(self, x, rest, kwargs):
        dims = kwargs.get('dims', rest[0] if len(rest) == 1 else rest)
        dims = _static(dims, 'dims')
        dims = list(dims) if isinstance(dims, (tuple, list)) else [dims]
        nd = self.ndim(x)
        return len(dims) == nd and all(isinstance(d, int) and d % nd == i for i, d in enumerate(dims))

    def check_dims(self, x, rest, kwargs, pos, kw, what):
        """Refuse an axis argument that is (or may be) the batch axis."""
        nd = self.ndim(x) if not isinstance(x, (list, tuple)) else self.ndim(x[0]) + 1
        if kw is None:      # transpose(d0, d1)
            dims = [_static(a, 'dim') for a in rest[:2]]
        elif kw == 'dims':  # permute(*dims) or permute(dims): the batch axis must stay first
            vals = _static(kwargs['dims'], 'dims') if 'dims' in kwargs else \
                rest if len(rest) != 1 else _static(rest[0], 'dims')
            vals = [_static(a, 'dim') for a in (vals if isinstance(vals, (tuple, list)) else [vals])]
            if not vals or not isinstance(vals[0], int) or vals[0] % nd != 0:
                raise Unsupported(f"{what} moves the batch axis")
            return
        else:
            dims = _dims(_static(rest[pos], kw) if len(rest) > pos else
                         _static(kwargs[kw], kw) if kw in kwargs else None)
        for d in dims:
            if not isinstance(d, int) or d % nd == 0:
                raise Unsupported(f"{what}(dim={d!r}) may act over the batch axis")

    # -- arithmetic ------------------------------------------------------------------
    def unary(self, node, x, fn, inplace_fn=None):
        if isinstance(x, Local):
            return unary_local(self.ctx, x, fn, node, inplace_fn)
        return Dense(fn(to_dense(self.ctx, x)), node)

    def binary(self, node, fn, a, b):
        ctx = self.ctx
        if all(isinstance(v, (Static, int, float, bool)) for v in (a, b)):   # shape arithmetic
            va, vb = (v.value if isinstance(v, Static) else v for v in (a, b))
            if _has_batch(va) or _has_batch(vb):
                raise Unsupported("arithmetic with the batch size")
            return Static(fn(va, vb))
        if isinstance(a, Local) and isinstance(b, Local) and fn in (operator.add, operator.sub) and \
                (a.length, a.trail) == (b.length, b.trail) and \
                ctx.meta(node).shape == ctx.meta(a).shape == ctx.meta(b).shape:
            return add_local(ctx, a, b, 1 if fn is operator.add else -1, node)
        loc, other = (a, b) if isinstance(a, Local) else (b, a)
        if isinstance(loc, Local) and isinstance(other, (Static, Batched, int, float)) and \
                ctx.meta(node).shape == ctx.meta(loc).shape:
            c = other.value if isinstance(other, Static) else other if not isinstance(other, Batched) \
                else ctx.ref_of_node(other.node)
            if self.flat_along_length(c, loc, isinstance(other, Batched)):
                if fn is operator.add:
                    return Local(loc.delta, loc.start, loc.length, loc.trail, node)
                if fn is operator.sub:
                    return Local(loc.delta if loc is a else -loc.delta, loc.start, loc.length,
                                 loc.trail, node)
                if fn is operator.mul or (fn is operator.truediv and loc is a):
                    if isinstance(other, Batched):
                        c = ctx.ref_rows(other.node)
                    if isinstance(c, torch.Tensor):  # drop the length and trailing unit axes' excess
                        full = (1,) * (3 + loc.trail - c.ndim) + tuple(c.shape)
                        c = c.reshape(full[:3])
                    return Local(fn(loc.delta, c), loc.start, loc.length, loc.trail, node)
        vals = [a.value if isinstance(a, Static) else a if isinstance(a, (int, float))
                else to_dense(ctx, a) for a in (a, b)]
        return Dense(fn(*vals), node)

    def flat_along_length(self, c, loc, batched):
        """A constant that broadcasts against a Local without varying along
        its length (and, when batched, has the Local's number of axes)."""
        if isinstance(c, (int, float)):
            return not batched
        if not isinstance(c, torch.Tensor):
            return False
        nd = 3 + loc.trail
        if c.ndim > nd or (batched and c.ndim != nd):
            return False
        shape = (1,) * (nd - c.ndim) + tuple(c.shape)
        return all(s == 1 for s in shape[2:]) and (batched or shape[0] == 1)

    def reduce(self, node, name, x, dim, keepdim, dtype):
        if dtype is not None:
            raise Unsupported(f"{name} with a dtype")
        nd = self.ndim(x)
        dims = [d for d in _dims(dim)]
        if any(d is None or not isinstance(d, int) or d % nd == 0 for d in dims):
            raise Unsupported(f"{name} over the batch axis")
        dims = tuple(sorted({d % nd for d in dims}))
        if isinstance(x, Local) and 2 in dims:
            ref = self.ctx.meta(x)
            s = _trail(x.delta, x.trail).sum(dims, keepdim=keepdim)
            if name == 'mean':
                s = s / math.prod(ref.shape[d] for d in dims)
            return Dense(self.ctx.ref_rows(node) + s, node)
        if isinstance(x, Local) and keepdim:
            ref = self.ctx.meta(x)
            s = _trail(x.delta, x.trail).sum(dims, keepdim=True)
            if name == 'mean':
                s = s / math.prod(ref.shape[d] for d in dims)
            return Local(s.reshape(s.shape[:3]), x.start, x.length, x.trail, node)
        return Dense(getattr(to_dense(self.ctx, x), name)(dims, keepdim=keepdim), node)

    def linear(self, node, x, weight, bias):
        ctx = self.ctx
        if isinstance(x, FlatLocal):
            ref = ctx.meta(x.local)
            if ref.ndim == 3 + x.local.trail and weight.shape[1] == ref.shape[1] * ref.shape[2]:
                return Dense(ctx.ref_rows(node) + ctx.linear_window(x.local, weight), node)
        if self.ndim(x) < 2:
            raise Unsupported("dense layer over the batch axis")
        v = to_dense(ctx, x)
        ctx.count(v.numel() // v.shape[-1] * weight.numel())
        return Dense(F.linear(v, weight, bias), node)

    def cat(self, node, tensors, dim):
        if not isinstance(tensors, (list, tuple)) or not isinstance(dim, int):
            raise Unsupported("cat arguments")
        nd = self.ctx.meta(node).ndim
        if dim % nd == 0:
            raise Unsupported("cat along the batch axis")
        if any(isinstance(t, Static) or isinstance(t, (int, float)) for t in tensors):
            raise Unsupported("cat of a constant with input-dependent tensors")
        if all(isinstance(t, Local) for t in tensors) and dim % nd == 1 and \
                len({(t.length, t.trail) for t in tensors}) == 1:
            start, _, ds = union(self.ctx, list(tensors))
            return Local(torch.cat(ds, 1), start, tensors[0].length, tensors[0].trail, node)
        return Dense(torch.cat([to_dense(self.ctx, t) for t in tensors], dim), node)

    def conv_fn(self, node, args, kwargs):
        b = _bind(args[1:], kwargs, ('weight', 'bias', 'stride', 'padding', 'dilation', 'groups'),
                  {'bias': None, 'stride': 1, 'padding': 0, 'dilation': 1, 'groups': 1})
        v = {k: _static(a, k) for k, a in b.items()}
        x = args[0]
        if isinstance(x, Local) and x.trail == 0:
            k = v['weight'].shape[-1]
            dil, pad = _int1(v['dilation'], 'dilation'), v['padding']
            pad = 0 if pad == 'valid' else dil * (k - 1) // 2 if pad == 'same' else _int1(pad, 'padding')
            return conv_local(self.ctx, x, v['weight'], _int1(v['stride'], 'stride'), pad, dil,
                              v['groups'], node)
        return Dense(F.conv1d(to_dense(self.ctx, x), **v), node)

    def pool_fn(self, node, is_max, args, kwargs):
        names = ('kernel_size', 'stride', 'padding', 'dilation', 'ceil_mode', 'return_indices') \
            if is_max else ('kernel_size', 'stride', 'padding', 'ceil_mode', 'count_include_pad')
        b = _bind(args[1:], kwargs, names, {'stride': None, 'padding': 0, 'dilation': 1,
                                            'ceil_mode': False, 'return_indices': False,
                                            'count_include_pad': True})
        b = {k: _static(v, k) for k, v in b.items()}
        if b['return_indices']:
            raise Unsupported("max pooling that returns indices")
        x = args[0]
        fn = F.max_pool1d if is_max else F.avg_pool1d
        if not isinstance(x, Local) or x.trail != 0 or b['ceil_mode']:
            return self.dense(node, fn, args, kwargs)
        k = _int1(b['kernel_size'], 'kernel_size')
        stride = _int1(b['stride'] if b['stride'] not in (None, (), []) else k, 'stride')
        return pool_local(self.ctx, x, is_max, k, stride, _int1(b['padding'], 'padding'),
                          _int1(b['dilation'], 'dilation'), node,
                          count_include_pad=b['count_include_pad'])

    # -- ops applied example by example on full tensors ---------------------------
    def dense(self, node, fn, args, kwargs):
        ctx = self.ctx

        def val(a):
            if isinstance(a, Static):
                if _has_batch(a.value):
                    raise Unsupported("the batch size used in a computation")
                return a.value
            if isinstance(a, (list, tuple)):
                return type(a)(val(x) for x in a)
            if isinstance(a, (Local, FlatLocal, SwappedLocal, Dense, Batched)):
                return to_dense(ctx, a)
            return a
        vals = [val(a) for a in args]
        if isinstance(fn, (nn.Conv1d, nn.Conv2d)):
            ctx.count(vals[0].shape[0] * fn.weight.numel() * math.prod(ctx.meta(node).shape[2:]))
        out = fn(*vals, **{k: val(a) for k, a in kwargs.items()})
        ref = ctx.meta(node)
        if not isinstance(out, torch.Tensor) or out.shape[1:] != ref.shape[1:] or \
                out.shape[0] != ctx.n_edits:
            raise Unsupported(f"{getattr(fn, '__name__', type(fn).__name__)} does not keep one row "
                              "per example")
        return Dense(out, node)
