"""DeepLIFT rules behind :func:`kipoi_tanger.deep_lift_shap`: their mathematics,
the table of built-in rules, and rules declared by name.

A rule has tangermeme's signature ``rule(module, grad_input, grad_output) ->
tuple``, where ``module.input``/``module.output`` hold the example rows
stacked on the reference rows. The built-in rules below are recognised by
identity and run on a fast path (``_deeplift_session``) that never builds the
doubled batch; any other callable runs on a compatible, slower path.

* ``rescale_rule``: every elementwise nonlinear module of ``torch.nn``
  (``ELEMENTWISE``): multiplier Δout/Δin, the derivative where |Δin| < 1e-6.
* ``maxpool_rule``: MaxPool1d/2d/3d and AdaptiveMaxPool1d/2d/3d (overlapping
  and dilated windows too).
* ``softmax_rule``: Softmax, Softmin and Softmax2d over a non-batch axis.
* ``logsoftmax_rule``: LogSoftmax over a non-batch axis.
* ``linear_rule``: declares a module affine (plain gradient, nothing hooked,
  nothing inside it checked), for custom modules such as DeepSEA's ``Lambda``.

``REFUSED`` lists modules with no sound linear treatment (recurrent cells,
attention, Bilinear): they are refused by name before any work unless a rule
is registered. Every other module is decided by ``_deeplift_check``.
"""
import importlib
from typing import Callable, Dict, Mapping, Optional

import torch
import torch.nn.functional as F

# Below this change in a rescaled input, the secant is numerically unstable
# and the ordinary derivative is used instead (as in tangermeme/captum).
RESCALE_EPS = 1e-6


def _wide(t):
    """Half precision cannot resolve the small differences divided below."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


# --------------------------------------------------------------------------
# Rule mathematics. ``x*`` may have one row (broadcast over the pair rows) or
# as many rows as ``r*``.
# --------------------------------------------------------------------------

def _rescale_ratio(xi, xo, dfx, ri, ro, out, dx, small):
    """Write the rescale multiplier Δout/Δin (derivative where |Δin| < eps) into ``out``.

    ``dx`` and ``small`` are scratch buffers shaped like ``out`` (float, bool).
    """
    torch.sub(xi, ri, out=dx)
    torch.sub(xo, ro, out=out)
    out.div_(dx)
    torch.lt(dx.abs_(), RESCALE_EPS, out=small)
    torch.where(small, dfx, out, out=out)
    return out


_MAXPOOLS = {torch.nn.MaxPool1d: F.max_pool1d, torch.nn.MaxPool2d: F.max_pool2d,
             torch.nn.MaxPool3d: F.max_pool3d}
_ADAPTIVE_MAXPOOLS = {torch.nn.AdaptiveMaxPool1d: F.adaptive_max_pool1d,
                      torch.nn.AdaptiveMaxPool2d: F.adaptive_max_pool2d,
                      torch.nn.AdaptiveMaxPool3d: F.adaptive_max_pool3d}


def _pool_indices(module, inp):
    """Argmax indices (flattened over the spatial axes) of a max-pool module."""
    for cls, fn in _MAXPOOLS.items():
        if isinstance(module, cls):
            return fn(inp, module.kernel_size, module.stride, module.padding, module.dilation,
                      module.ceil_mode, True)[1]
    for cls, fn in _ADAPTIVE_MAXPOOLS.items():
        if isinstance(module, cls):
            return fn(inp, module.output_size, True)[1]
    raise ValueError(f"maxpool_rule: module {type(module).__name__} is not a MaxPool1d/2d/3d or "
                     "AdaptiveMaxPool1d/2d/3d")


class _MaxPoolState:
    """Per-pair quantities of the max-pool rule.

    The positive part of Δout is routed to the example's argmax, the negative
    part to the reference's argmax; the routed change over Δin is the
    multiplier. Scatter-add keeps every share when windows overlap. Where Δin
    is exactly 0 the ordinary gradient (routed through the example's argmax) is
    used.
    """

    def __init__(self, idx_x, idx_r, dx, dout, in_shape):
        self.idx_x = idx_x.flatten(2)
        self.idx_r = idx_r.flatten(2)
        self.pos = dout.clamp(min=0).flatten(2)
        self.neg = dout.clamp(max=0).flatten(2)
        self.zero = dx == 0
        self.den = dx.masked_fill(self.zero, 1)
        self.in_shape = in_shape

    def backward(self, g):
        n, c = self.in_shape[0], self.in_shape[1]
        g32 = _wide(g).flatten(2)
        buf = torch.zeros(3, n, c, self.den[0, 0].numel(), dtype=g32.dtype, device=g32.device)
        buf[0].scatter_add_(-1, self.idx_x, g32 * self.pos)
        buf[1].scatter_add_(-1, self.idx_r, g32 * self.neg)
        buf[2].scatter_add_(-1, self.idx_x, g32)
        routed = (buf[0] + buf[1]).view(self.in_shape)
        grad = torch.where(self.zero, buf[2].view(self.in_shape), routed / self.den)
        return grad.to(g.dtype)


def _softmax_dim(module, ndim):
    """(axis, sign) of a softmax-family module: Softmin is softmax of -x."""
    if isinstance(module, torch.nn.Softmax2d):
        dim = -3
    else:
        dim = module.dim
        if dim is None:  # torch's legacy implicit choice
            dim = 0 if ndim in (0, 1, 3) else 1
    if dim < 0:
        dim += ndim
    if dim == 0:
        raise ValueError(f"{type(module).__name__} over the batch axis (dim=0) has no DeepLIFT rule; "
                         "examples and references are stacked along that axis")
    return dim, (-1.0 if isinstance(module, torch.nn.Softmin) else 1.0)


def _softmax_terms(xi, ri, dim):
    """Multipliers of y = a·v with a = exp(x - c), v = 1/Σa, chained in log space.

    log y = (x - c) + log v, so Δy = (Δy/Δlog y)(Δx + Δlog v) and
    Δlog v = (Δlog v/Δv)·Δv with Δv = -v·v_ref·ΣΔa and Δa = (Δa/Δx)·Δx.
    Returns (dy, ma, mv, rec): Δy/Δlog y, Δa/Δx, dy·Δlog v/Δv and -v·v_ref, each
    ratio replaced by the derivative at the reference where its denominator
    is below 1e-6; then grad_in = g·dy + ma·Σ(g·mv·rec) over ``dim``.
    """
    xi, ri = _wide(xi), _wide(ri)
    # The same shift for both keeps exp(·) ≤ 1 and cancels out of y.
    c = torch.maximum(xi.amax(dim, keepdim=True), ri.amax(dim, keepdim=True))
    a, ar = torch.exp(xi - c), torch.exp(ri - c)
    tiny = torch.finfo(a.dtype).tiny
    v = a.sum(dim, keepdim=True).clamp_min(tiny).reciprocal()
    vr = ar.sum(dim, keepdim=True).clamp_min(tiny).reciprocal()
    dx = xi - ri
    ma = torch.where(dx.abs() > RESCALE_EPS, (a - ar) / dx, ar)
    dlog_v = torch.log(v) - torch.log(vr)
    dv = v - vr
    dlogv_dv = torch.where(dv.abs() > RESCALE_EPS, dlog_v / dv, vr.reciprocal())
    dlog_y = dx + dlog_v
    yr = ar * vr
    dy = torch.where(dlog_y.abs() > RESCALE_EPS, (a * v - yr) / dlog_y, yr)
    return dy, ma, dy * dlogv_dv, -v * vr


def _softmax_grad(g, dy, ma, mv, rec, dim, sign=1.0):
    g = _wide(g)
    out = g * dy + ma * (g * mv * rec).sum(dim, keepdim=True)
    return (out if sign == 1.0 else out * sign).to(g.dtype)


def _logsoftmax_terms(xi, ri, dim):
    """Multipliers of y = (x - c) - log s with s = Σa, a = exp(x - c).

    Δy_i = Δx_i - (Δlog s/Δs)·Σ_j (Δa_j/Δx_j)·Δx_j, so grad_in = g - ma·mlog·Σg.
    Returns (ma, mlog), ratios replaced by derivatives at the reference where
    their denominators are below 1e-6.
    """
    xi, ri = _wide(xi), _wide(ri)
    c = torch.maximum(xi.amax(dim, keepdim=True), ri.amax(dim, keepdim=True))
    a, ar = torch.exp(xi - c), torch.exp(ri - c)
    tiny = torch.finfo(a.dtype).tiny
    s = a.sum(dim, keepdim=True).clamp_min(tiny)
    sr = ar.sum(dim, keepdim=True).clamp_min(tiny)
    dx = xi - ri
    ma = torch.where(dx.abs() > RESCALE_EPS, (a - ar) / dx, ar)
    ds = s - sr
    mlog = torch.where(ds.abs() > RESCALE_EPS, (torch.log(s) - torch.log(sr)) / ds, sr.reciprocal())
    return ma, mlog


def _logsoftmax_grad(g, ma, mlog, dim):
    gw = _wide(g)
    return (gw - ma * mlog * gw.sum(dim, keepdim=True)).to(g.dtype)


# --------------------------------------------------------------------------
# Public rules with tangermeme's signature. module.input / module.output hold
# the example half stacked on the reference half.
# --------------------------------------------------------------------------

def rescale_rule(module, grad_input, grad_output):
    """DeepLIFT rescale rule for an elementwise nonlinearity.

    Multiplier Δout/Δin, or the ordinary gradient where ``|Δin| < 1e-6``;
    both halves get the same multiplier.
    """
    x, r = module.input.chunk(2)
    xo, ro = module.output.chunk(2)
    dx = x - r
    ratio = (xo - ro) / dx
    g = grad_output[0]
    shape = (2,) + tuple(dx.shape)
    grad = torch.where(dx.abs() < RESCALE_EPS, grad_input[0].reshape(shape),
                       g.reshape(shape) * ratio)
    return (grad.reshape(grad_input[0].shape),)


def maxpool_rule(module, grad_input, grad_output):
    """DeepLIFT rule for MaxPool1d/2d/3d and AdaptiveMaxPool1d/2d/3d (overlapping
    and dilated windows included)."""
    x, r = module.input.chunk(2)
    xo, ro = module.output.chunk(2)
    st = _MaxPoolState(_pool_indices(module, x), _pool_indices(module, r), _wide(x - r),
                       _wide(xo - ro), x.shape)
    g = grad_output[0].chunk(2)[0]
    half = st.backward(g)
    return (torch.cat([half, half]).to(grad_input[0].dtype),)


def softmax_rule(module, grad_input, grad_output):
    """DeepLIFT rule for Softmax, Softmin and Softmax2d over any non-batch axis."""
    x, r = module.input.chunk(2)
    dim, sign = _softmax_dim(module, x.ndim)
    terms = _softmax_terms(sign * x, sign * r, dim)
    gx, gr = grad_output[0].chunk(2)
    return (torch.cat([_softmax_grad(gx, *terms, dim, sign), _softmax_grad(gr, *terms, dim, sign)]),)


def logsoftmax_rule(module, grad_input, grad_output):
    """DeepLIFT rule for LogSoftmax over any non-batch axis."""
    x, r = module.input.chunk(2)
    dim, _ = _softmax_dim(module, x.ndim)
    terms = _logsoftmax_terms(x, r, dim)
    gx, gr = grad_output[0].chunk(2)
    return (torch.cat([_logsoftmax_grad(gx, *terms, dim), _logsoftmax_grad(gr, *terms, dim)]),)


def linear_rule(module, grad_input, grad_output):
    """Declare a module affine: its plain gradient is its DeepLIFT multiplier.

    A module registered with this rule is not hooked and nothing inside it is
    checked: use it for custom modules whose forward is affine but cannot be
    verified automatically. Declaring a nonlinear module linear gives wrong
    attributions (visible in the convergence deltas).
    """
    return grad_input


# Every elementwise nonlinear module of torch.nn (tests enumerate torch.nn to
# keep this complete).
ELEMENTWISE = (torch.nn.Threshold, torch.nn.ReLU, torch.nn.ReLU6, torch.nn.Hardtanh, torch.nn.LeakyReLU,
               torch.nn.PReLU, torch.nn.RReLU, torch.nn.ELU, torch.nn.SELU, torch.nn.CELU, torch.nn.GELU,
               torch.nn.SiLU, torch.nn.Mish, torch.nn.Softplus, torch.nn.Sigmoid, torch.nn.Tanh,
               torch.nn.Hardsigmoid, torch.nn.Hardswish, torch.nn.LogSigmoid, torch.nn.Softsign,
               torch.nn.Tanhshrink, torch.nn.Hardshrink, torch.nn.Softshrink)

BUILTIN_RULES = {cls: rescale_rule for cls in ELEMENTWISE}
BUILTIN_RULES.update({cls: maxpool_rule for cls in (*_MAXPOOLS, *_ADAPTIVE_MAXPOOLS)})
BUILTIN_RULES.update({torch.nn.Softmax: softmax_rule, torch.nn.Softmin: softmax_rule,
                      torch.nn.Softmax2d: softmax_rule, torch.nn.LogSoftmax: logsoftmax_rule})

# Rules that take the fast path (recognised by identity).
FAST_RULES = (rescale_rule, maxpool_rule, softmax_rule, logsoftmax_rule)

# Rule names accepted by declarations (model.yaml) and as additional_nonlinear_ops values.
RULE_NAMES = {'rescale': rescale_rule, 'maxpool': maxpool_rule, 'softmax': softmax_rule,
              'logsoftmax': logsoftmax_rule, 'linear': linear_rule}

# Modules that mix positions or inputs multiplicatively, for which treating
# them as linear would give silently wrong attributions.
REFUSED = (torch.nn.RNNBase, torch.nn.RNNCellBase, torch.nn.MultiheadAttention,
           torch.nn.Transformer, torch.nn.TransformerEncoder, torch.nn.TransformerDecoder,
           torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer, torch.nn.Bilinear)


def _rule_value(rule, cls_name):
    if isinstance(rule, str):
        key = rule.strip().lower()
        if key not in RULE_NAMES:
            raise ValueError(f"additional_nonlinear_ops: rule {rule!r} for {cls_name} is not one of "
                             f"{', '.join(RULE_NAMES)}")
        return RULE_NAMES[key]
    if not callable(rule):
        raise TypeError(f"additional_nonlinear_ops: rule for {cls_name} is not callable "
                        f"(got {type(rule).__name__})")
    return rule


def build_rules(additional_nonlinear_ops=None):
    """The rule table: built-ins updated with ``additional_nonlinear_ops``.

    Values are rule callables or rule names (``'rescale'``, ``'maxpool'``,
    ``'softmax'``, ``'logsoftmax'``, ``'linear'``).
    """
    rules = dict(BUILTIN_RULES)
    if additional_nonlinear_ops is None:
        return rules
    if not isinstance(additional_nonlinear_ops, dict):
        raise TypeError("additional_nonlinear_ops: expected a dict {module class: "
                        f"rule(module, grad_input, grad_output)}}, got {type(additional_nonlinear_ops).__name__}")
    for cls, rule in additional_nonlinear_ops.items():
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise TypeError(f"additional_nonlinear_ops: key {cls!r} is not a torch.nn.Module subclass")
        rules[cls] = _rule_value(rule, cls.__name__)
    return rules


def lookup_rule(rules, cls):
    """The rule of ``cls`` or of its nearest base class in ``rules``, else None."""
    for base in cls.__mro__:
        if base in rules:
            return rules[base]
    return None


def class_path(cls):
    """``torch.nn.ReLU`` for torch.nn classes, ``module.QualName`` otherwise."""
    if getattr(torch.nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


_class_path = class_path  # older name


def ruled_modules(model, rules, caller):
    """(name, module, rule) for every module with a rule, outermost first.

    Descendants of a ruled module are skipped (its rule replaces their
    gradients); a module reached under two names is listed once. A module of a
    ``REFUSED`` class raises ValueError.
    """
    found, seen = [], set()

    def walk(module, name):
        if id(module) in seen:  # one instance reached under two names is hooked once
            return
        seen.add(id(module))
        if isinstance(module, torch.jit.ScriptModule):
            # Compiled code: no hooks for the rules, no operations for the check to see.
            raise ValueError(
                f"{caller}: module '{name or '<model>'}' ({type(module).__name__}) is a TorchScript module "
                "(torch.jit.script/trace); DeepLIFT rules cannot be hooked inside it and the check cannot see "
                "its operations, so the attributions could be wrong; pass the original Python nn.Module")
        rule = lookup_rule(rules, type(module))
        if rule is not None:
            found.append((name, module, rule))
            return
        if isinstance(module, REFUSED):
            cls = type(module)
            raise ValueError(
                f"{caller}: module '{name or '<model>'}' ({cls.__name__}) has no DeepLIFT rule; "
                f"register one with additional_nonlinear_ops={{{class_path(cls)}: rule}} "
                "(rule(module, grad_input, grad_output) -> tuple) or use another attribution method")
        for child_name, child in module.named_children():
            walk(child, f"{name}.{child_name}" if name else child_name)

    walk(model, '')
    return found


# --------------------------------------------------------------------------
# Rules declared by name (model.yaml).
# --------------------------------------------------------------------------

def _import_attr(path, where):
    """``pkg.mod:attr`` or ``pkg.mod.attr`` → the object, else None."""
    if ':' in path:
        mod, _, attr = path.partition(':')
        candidates = [(mod, attr)]
    else:
        parts = path.split('.')
        candidates = [('.'.join(parts[:i]), '.'.join(parts[i:])) for i in range(len(parts) - 1, 0, -1)]
    for mod, attr in candidates:
        try:
            obj = importlib.import_module(mod)
        except Exception:  # not importable under that split
            continue
        try:
            for part in attr.split('.'):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        return obj
    return None


def _model_classes(model, module_file):
    """{name: class} for every class in the model's modules' MROs, under its
    bare qualname, ``<module>.<qualname>`` and ``<file stem>.<qualname>``."""
    import os
    stem = os.path.splitext(os.path.basename(module_file))[0] if module_file else None
    names = {}
    if model is None:
        return names
    for m in model.modules():
        for cls in type(m).__mro__:
            if cls in (torch.nn.Module, object):
                continue
            keys = [cls.__qualname__, f"{cls.__module__}.{cls.__qualname__}"]
            if stem:
                keys.append(f"{stem}.{cls.__qualname__}")
            for k in keys:
                names.setdefault(k, set()).add(cls)
    return names


def rules_from_names(declarations: Mapping[str, str], model: Optional[torch.nn.Module] = None,
                     module_file: Optional[str] = None,
                     where: str = 'rules') -> Dict[type, Callable]:
    """Turn ``{class name: rule name}`` into an ``additional_nonlinear_ops`` dict.

    This lets a model.yaml (or a command line) declare DeepLIFT rules without
    Python, e.g. ``{"model.MyAct": "rescale", "model.Lambda": "linear"}``.

    Grammar
    -------
    * A **key** names a ``torch.nn.Module`` subclass, either

      - relative to the model: ``Lambda`` (the bare class name, if only one
        class in the model is called that), ``model.Lambda`` or
        ``model_architecture.Lambda`` (``<module file stem>.<class>``; Kipoi
        loads a ``module_file`` as a module named after the file, so
        ``cls.__module__`` is that stem), looked up among the classes of
        ``model``'s modules and their bases; or
      - an import path: ``torch.nn.Threshold``, ``mypkg.layers.MyAct`` or
        ``mypkg.layers:MyAct``.

    * A **value** is a rule name (case-insensitive):

      - ``rescale``: elementwise nonlinearity (Δout/Δin, as ReLU);
      - ``maxpool``: a MaxPool/AdaptiveMaxPool subclass;
      - ``softmax`` / ``logsoftmax``: over the module's ``dim`` (not the batch axis);
      - ``linear``: the module is affine (e.g. DeepSEA's reshape ``Lambda``,
        a channel re-order): not refused, not hooked, nothing inside checked;

      or an import path of a rule function ``pkg.mod:func`` with tangermeme's
      signature ``rule(module, grad_input, grad_output) -> tuple``.

    Parameters
    ----------
    declarations : mapping of str to str
        The declarations, e.g. the mapping read from model.yaml.
    model : torch.nn.Module, optional
        The loaded model: names are resolved against the classes it uses
        (identity matters: a rule applies to the class object the model was
        built from, not to a re-import of its file).
    module_file : str, optional
        The model's Python file; its stem is accepted as a class prefix.
    where : str, default 'rules'
        How to name the declarations in error messages (e.g.
        ``'model.yaml postprocessing.tanger.rules'``).

    Returns
    -------
    dict
        ``{class: rule}``, ready for ``deep_lift_shap(additional_nonlinear_ops=...)``.

    Raises
    ------
    ValueError
        One line naming ``where``, the key or value, and what is expected.
    """
    if not isinstance(declarations, Mapping):
        raise ValueError(f"{where}: expected a mapping {{class name: rule name}}, got "
                         f"{type(declarations).__name__}")
    known = _model_classes(model, module_file)
    out = {}
    for key, value in declarations.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"{where}: key {key!r} must be a class name such as 'model.MyAct'")
        name = key.strip()
        found = known.get(name, set())
        if len(found) > 1:
            raise ValueError(f"{where}: {name!r} names {len(found)} different classes of the model; use "
                             "<module>.<class> (e.g. 'model.MyAct')")
        cls = next(iter(found)) if found else _import_attr(name, where)
        if cls is None:
            sample = sorted(k for k in known if '.' in k and not k.startswith('torch.'))[:6]
            raise ValueError(f"{where}: {name!r} is neither a class of the model"
                             + (f" (e.g. {', '.join(sample)})" if sample else "")
                             + " nor an importable class path such as 'torch.nn.Threshold'")
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise ValueError(f"{where}: {name!r} is not a torch.nn.Module subclass")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: rule for {name!r} must be one of {', '.join(RULE_NAMES)} "
                             f"or an import path 'pkg.module:function', got {value!r}")
        rule = RULE_NAMES.get(value.strip().lower())
        if rule is None:
            if ':' not in value and '.' not in value:
                raise ValueError(f"{where}: rule {value!r} for {name!r} is not one of "
                                 f"{', '.join(RULE_NAMES)} (or an import path 'pkg.module:function')")
            rule = _import_attr(value.strip(), where)
            if not callable(rule):
                raise ValueError(f"{where}: rule {value!r} for {name!r} cannot be imported as a function "
                                 "rule(module, grad_input, grad_output)")
        out[cls] = rule
    return out
