"""The first-batch check behind :func:`kipoi_tanger.deep_lift_shap`: is every
part of the model either ruled or affine, and can examples and references
share a forward pass?

1. **Linearity.** One forward pass of a few probe rows (examples and
   references of the first batch) runs under a ``TorchFunctionMode`` that sees
   every torch function, tensor method and operator, and forward hooks on
   every module that say which module is running. Every tensor that depends on
   the input ``X`` is tagged; the arguments (``args``), parameters and buffers
   are constants. Each operation on a tagged tensor outside a ruled module is
   classified: structural or additive (view, index, flip, cat, add, sum,
   mean, pad, avg-pool, ...), multiplicative with at most one tagged operand
   (mul by a constant, conv/linear with parameters, matmul, einsum),
   conditionally affine (eval-mode batch_norm with running statistics, dropout
   not in training, float casts), known nonlinear (relu, exp, softmax,
   layer_norm, comparisons, detach, ...), or unknown. An unknown operation is
   probed on its real arguments: f(½a + ½b) = ½f(a) + ½f(b) and
   f(¼a + ¾b) = ¼f(a) + ¾f(b) within float tolerance, along the segments from
   each example's activations to its reference's (another row's where the rows
   no longer pair up). A nonlinear operation taints its result and everything
   computed from it; if a taint reaches the model's output the model is
   refused before any work, naming the module whose forward holds it. A
   ruled module's output is clean (its rule handles it); modules declared
   linear (``linear_rule``) are trusted, not inspected.
2. **Pairing.** Two more forward passes run the probe rows in other orders (a
   transposition and a cycle, which generate all permutations), and a fourth
   all rows but the last. Every call of
   a ruled module on the path from ``X`` must see the batch's rows in the
   order fed in (its activations permute with the input) for the shared
   forward pass; otherwise (e.g. ``cat([x, rc(x)], 0)`` inside the model)
   examples and references run in separate forward passes. The model's output
   must permute with its input and not change when another row is dropped
   (each example's output depends on that example only), and every module
   must run the same number of times with the same shapes, or the model is
   refused.

The decision is cached per model (:func:`checked_plan`) while its modules, the
rules and the input shapes stay the same.
"""
import weakref
from typing import Dict, List, NamedTuple, Optional, Set

import torch
from torch.overrides import TorchFunctionMode

from ._deeplift_rules import BUILTIN_RULES, class_path, linear_rule, lookup_rule
from ._deeplift_session import not_one_tensor


class Finding(NamedTuple):
    """One operation the check could not vouch for."""
    module: str   # dotted path, '<model>' for the model itself
    cls: str      # class path of that module
    op: str       # e.g. 'torch.relu', 'Tensor.mul' ('' when the module itself is the problem)
    reason: str   # e.g. 'is nonlinear'

    def describe(self) -> str:
        return f"computes {self.op}, which {self.reason}," if self.op else self.reason


class Plan(NamedTuple):
    """What the check decided (see the module docstring)."""
    mode: str                       # 'shared' or 'separate'
    why: str                        # why separate passes are needed ('' for shared)
    dep: Dict[int, Set[int]]        # id(ruled module) -> its calls on the path from X
    declared: List[str]             # ruled by the user (declared linear or a user rule) and on the path
    probed: List[Finding]           # unknown operations found affine on the probe rows only
    notes: List[str]                # things the check could not follow


# ---------------------------------------------------------------------------
# Operation tables (names as torch reports them to __torch_function__).
# ---------------------------------------------------------------------------

_STRUCTURAL = frozenset("""
view view_as reshape reshape_as permute transpose transpose_ t t_ swapaxes swapdims movedim moveaxis
flip fliplr flipud rot90 roll squeeze squeeze_ unsqueeze unsqueeze_ expand expand_as broadcast_to
broadcast_tensors repeat repeat_interleave tile contiguous clone narrow narrow_copy select select_scatter
slice_scatter split split_with_sizes tensor_split hsplit vsplit dsplit chunk unsafe_chunk unsafe_split
unbind flatten unflatten ravel cat concat concatenate stack hstack vstack dstack column_stack row_stack
atleast_1d atleast_2d atleast_3d __getitem__ __setitem__ index_select gather take take_along_dim
masked_select diagonal diag diag_embed diagflat tril triu tril_ triu_ as_strided unfold fold
pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle pad constant_pad_nd embedding copy_
masked_fill masked_fill_ index_fill index_fill_ where index_put index_put_ scatter scatter_ scatter_add
scatter_add_ index_add index_add_ index_copy index_copy_ masked_scatter masked_scatter_ put put_ fill_
zero_ add add_ __add__ __radd__ __iadd__ sub sub_ subtract __sub__ __rsub__ __isub__ rsub neg neg_
negative __neg__ __pos__ positive sum mean nansum nanmean cumsum cumsum_ trace diff float double half
bfloat16 cpu cuda requires_grad_ avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d
adaptive_avg_pool2d adaptive_avg_pool3d interpolate upsample upsample_nearest upsample_bilinear
GET:T GET:mT GET:H GET:mH
""".split())

# Linear in each operand: at most one may depend on X. Value: the positions
# (or keywords) of additive operands, which may depend on X as well.
_MULTILINEAR = {name: () for name in """
mul mul_ multiply __mul__ __rmul__ __imul__ matmul __matmul__ __rmatmul__ mm bmm mv dot vdot inner outer
ger kron tensordot einsum chain_matmul multi_dot cross bilinear
""".split()}
_MULTILINEAR.update({name: (2, 'bias') for name in """
conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d conv_tbc convolution linear
""".split()})
_MULTILINEAR.update({name: (0, 'input', 'self') for name in "addmm addbmm baddbmm addmv addr addcmul addcmul_".split()})

_DIVISION = frozenset("div div_ divide true_divide true_divide_ __truediv__ __itruediv__ __div__ __idiv__".split())
_DROPOUT = frozenset("dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout".split())
_CASTS = frozenset("to type type_as _to_copy".split())
_POWERS = frozenset("pow pow_ __pow__ __ipow__ float_power".split())
_RANDOM = frozenset("""
rand randn randint rand_like randn_like randint_like randperm bernoulli bernoulli_ normal normal_ uniform_
exponential_ geometric_ cauchy_ log_normal_ random_ multinomial poisson
""".split())
_ESCAPES = frozenset("item tolist numpy __float__ __int__ __index__ __complex__ __array__".split())
# Results that depend only on a tensor's shape, dtype or device: constants.
_SHAPE_ONLY = frozenset("zeros_like ones_like empty_like full_like new_zeros new_ones new_empty new_full".split())
_DETACH = frozenset("detach detach_ GET:data".split())
_INPLACE_DUNDER = frozenset("__setitem__ __iadd__ __isub__ __imul__ __itruediv__ __idiv__ __ipow__".split())
# Nonlinear for sure: named without probing.
_NONLINEAR = frozenset("""
relu relu_ relu6 elu elu_ selu selu_ celu celu_ gelu silu mish sigmoid sigmoid_ tanh tanh_ softplus
softshrink hardshrink tanhshrink softsign hardtanh hardtanh_ hardsigmoid hardswish leaky_relu leaky_relu_
prelu rrelu rrelu_ threshold threshold_ _threshold logsigmoid log_sigmoid glu softmax log_softmax _softmax
softmin gumbel_softmax exp exp_ exp2 expm1 log log_ log2 log10 log1p sqrt rsqrt square abs abs_ __abs__
sign sgn clamp clamp_ clip clip_ clamp_min clamp_max maximum minimum fmax fmin max min amax amin argmax
argmin max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices
adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d lp_pool1d lp_pool2d layer_norm group_norm
rms_norm local_response_norm normalize norm std var std_mean var_mean prod cumprod logsumexp
logcumsumexp sort topk median kthvalue round floor ceil trunc frac reciprocal __rdiv__ __rtruediv__
__rpow__ sin cos tan erf erfc erfinv atan asin acos sinh cosh asinh acosh atanh gt lt ge le eq ne
greater less greater_equal less_equal equal not_equal __gt__ __lt__ __ge__ __le__ __eq__ __ne__
logical_and logical_or logical_not logical_xor isnan isinf isfinite nan_to_num long int short byte char
bool fmod remainder floor_divide __floordiv__ __mod__ cosine_similarity pairwise_distance cdist
""".split())


def _op_name(func):
    name = getattr(func, '__name__', None)
    if name == '__get__':
        return 'GET:' + getattr(getattr(func, '__self__', None), '__name__', '?')
    if name is None:
        return repr(func)
    if str(getattr(func, '__module__', '')).startswith('torch._ops'):
        return name.split('.')[0]  # OpOverload: 'relu.default'
    return name


def _op_label(func, name):
    if name.startswith('GET:'):
        return 'Tensor.' + name[4:]
    module = getattr(func, '__module__', None) or ''
    qual = getattr(func, '__qualname__', '') or ''
    if module in ('torch.nn.functional', 'torch._C._nn'):
        return f"torch.nn.functional.{name}"
    for sub in ('special', 'linalg', 'fft'):
        if module == f'torch._C._{sub}':
            return f"torch.{sub}.{name[len(sub) + 1:] if name.startswith(sub + '_') else name}"
    if module.startswith('torch._ops'):
        return f"torch.ops.aten.{name}"
    if qual.startswith('TensorBase.') or qual.startswith('Tensor.') or module is None or not module:
        return f"Tensor.{name}"
    return f"torch.{name}"


def _leaves(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _leaves(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _leaves(o)


def _map(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        out = [_map(o, fn) for o in obj]
        return type(obj)(out) if isinstance(obj, list) else tuple(out)
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    return obj


def _arg(args, kwargs, pos, key, default=None):
    if key in kwargs:
        return kwargs[key]
    return args[pos] if len(args) > pos else default


def _tolerance(dtype):
    return max(1e-5, 20 * torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0


class _Tracker(TorchFunctionMode):
    """Tags tensors that depend on X and records operations it cannot vouch for."""

    def __init__(self, model, entries, rules, caller):
        super().__init__()
        self.model, self.rules, self.caller = model, rules, caller
        self.ruled = {id(mod): (name, rule) for name, mod, rule in entries}
        self.tags = {}            # id -> (tensor, frozenset of Finding)
        self.aliases = {}         # id -> (t, activation): t = activation.data, same storage
        self.stack = []           # (name, module, opens an opaque frame, input origins or None)
        self.opaque = 0
        self.internal = 0
        self.calls = {}           # id(module) -> count
        self.dep = {}             # id(module) -> set of call indices on the path from X
        self.declared = {}
        self.probed = []
        self.notes = []
        self.names = {}
        self.handles = []
        self.findings_seen = []
        self.partner = None       # row -> the row it pairs with, for the affinity probe

    # -- tags ----------------------------------------------------------------

    def tag(self, t):
        entry = self.tags.get(id(t))
        return entry[1] if entry is not None and entry[0] is t else None

    def set_tag(self, t, origins):
        self.tags[id(t)] = (t, origins)
        base = getattr(t, '_base', None)  # an in-place change of a view changes its base
        if base is not None:
            old = self.tag(base)
            self.tags[id(base)] = (base, origins | (old or frozenset()))

    def merged(self, obj):
        """Union of the origins of the tagged tensors in ``obj``, or None if none is tagged."""
        out = None
        for t in _leaves(obj):
            o = self.tag(t)
            if o is not None:
                out = o if out is None else out | o
        return out

    # -- module hooks --------------------------------------------------------

    def install(self):
        for name, module in self.model.named_modules():
            self.names.setdefault(id(module), name)
            self.handles.append(module.register_forward_pre_hook(self._pre, with_kwargs=True))
            self.handles.append(module.register_forward_hook(self._post, with_kwargs=True))

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []

    def _where(self):
        for name, module, *_ in reversed(self.stack):
            return (name or '<model>'), class_path(type(module))
        return '<model>', class_path(type(self.model))

    def _pre(self, module, args, kwargs):
        self.internal += 1
        try:
            name = self.names.get(id(module), '?')
            opens, origins, k = False, None, None
            if id(module) in self.ruled:
                # Counted like the session's hooks count: every call.
                k = self.calls.get(id(module), 0)
                self.calls[id(module)] = k + 1
            if self.opaque == 0:
                if k is not None:
                    opens = True
                    origins = self.merged((args, kwargs))
                elif lookup_rule(self.rules, type(module)) is not None and self.merged((args, kwargs)) is not None:
                    # Its rule is not hooked: the instance sits inside a ruled module but runs
                    # outside it. Its output is tainted (the taint names it).
                    opens = True
                    origins = self.merged((args, kwargs)) | {self.finding(Finding(
                        name or '<model>', class_path(type(module)), '',
                        "has a rule but sits inside another ruled module and runs outside it, where its "
                        "rule cannot be applied (use separate instances)"))}
            if opens:
                self.opaque += 1
            self.stack.append((name, module, opens, origins, k))
        finally:
            self.internal -= 1

    def _post(self, module, args, kwargs, output):
        self.internal += 1
        try:
            name, _, opens, origins, k = self.stack.pop()
            if not opens:
                return None
            self.opaque -= 1
            if k is None:  # a ruled module the session cannot hook (see _pre)
                for t in _leaves(output):
                    self.set_tag(t, origins)
                return None
            if not isinstance(output, torch.Tensor):
                raise ValueError(not_one_tensor(self.caller, name, module, output))
            if origins is None:
                return None
            self.dep.setdefault(id(module), set()).add(k)
            rule = self.ruled[id(module)][1]
            if rule is linear_rule:
                self.declared[name] = f"'{name or '<model>'}' ({class_path(type(module))}, declared linear)"
            elif lookup_rule(BUILTIN_RULES, type(module)) is not rule:
                self.declared[name] = f"'{name or '<model>'}' ({class_path(type(module))}, user rule)"
            for t in _leaves(output):
                self.set_tag(t, origins)
            return None
        finally:
            self.internal -= 1

    # -- operations ----------------------------------------------------------

    def finding(self, f):
        self.findings_seen.append(f)
        return f

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.internal or self.opaque:
            return func(*args, **kwargs)
        name = _op_name(func)
        out = func(*args, **kwargs)
        self.internal += 1
        try:
            self._classify(func, name, args, kwargs, out)
        finally:
            self.internal -= 1
        return out

    def _classify(self, func, name, args, kwargs, out):
        origins = self.merged((args, kwargs))
        if name in _RANDOM:
            module, cls = self._where()
            f = self.finding(Finding(module, cls, _op_label(func, name), "draws random numbers"))
            origins = (origins or frozenset()) | {f}
        if origins is None or name in _SHAPE_ONLY:
            return
        outs = list(_leaves(out))
        inplace = (name in _INPLACE_DUNDER or (name.endswith('_') and not name.endswith('__'))
                   or kwargs.get('inplace') is True or kwargs.get('out') is not None)
        if not outs and not inplace:
            if name in _ESCAPES:
                module, cls = self._where()
                self.notes.append(f"'{module}' ({cls}) reads activation values into Python "
                                  f"({_op_label(func, name)}), which the check cannot follow")
            return
        reason = self._reason(func, name, args, kwargs, outs, origins)
        if reason is not None:
            module, cls = self._where()
            origins = origins | {self.finding(Finding(module, cls, _op_label(func, name), reason))}
        for t in outs:
            self.set_tag(t, origins)
        if name == 'GET:data' and args and isinstance(args[0], torch.Tensor):
            for t in outs:  # shares the activation's storage: an in-place change of it changes the activation
                self.aliases[id(t)] = (t, args[0])
        if inplace:
            target = kwargs.get('out') if kwargs.get('out') is not None else (args[0] if args else None)
            for t in _leaves(target):
                new = origins | (self.tag(t) or frozenset())
                self.set_tag(t, new)
                alias = self.aliases.get(id(t))
                if alias is not None and alias[0] is t:
                    self.set_tag(alias[1], new | (self.tag(alias[1]) or frozenset()))

    def _dep(self, t):
        return isinstance(t, torch.Tensor) and self.tag(t) is not None

    def _reason(self, func, name, args, kwargs, outs, origins):
        """None if the operation is affine in the tagged tensors, else why not."""
        if name in _STRUCTURAL:
            return None
        if name in _MULTILINEAR:
            additive = _MULTILINEAR[name]
            operands = [a for i, a in enumerate(args) if i not in additive]
            operands += [v for k, v in kwargs.items() if k not in additive]
            if sum(1 for t in _leaves(operands) if self._dep(t)) <= 1:
                return None
            return "multiplies two activations"
        if name in _DIVISION:
            if any(self._dep(t) for t in _leaves(_arg(args, kwargs, 1, 'other'))):
                return "divides by an activation"
            if kwargs.get('rounding_mode') is not None:
                return "rounds a division"
            return None
        if name == 'batch_norm':
            if _arg(args, kwargs, 5, 'training', False) or _arg(args, kwargs, 1, 'running_mean') is None:
                return "normalizes with batch statistics (training mode or no running statistics)"
            return None
        if name == 'instance_norm':
            if _arg(args, kwargs, 5, 'use_input_stats', True) or _arg(args, kwargs, 1, 'running_mean') is None:
                return "normalizes with per-example statistics"
            return None
        if name in _DROPOUT:
            p = _arg(args, kwargs, 1, 'p', 0.5)
            if _arg(args, kwargs, 2, 'training', True) and p:
                return "applies dropout in training mode (random)"
            return None
        if name in _CASTS:
            if all(t.is_floating_point() for t in outs):
                return None
            return f"casts an activation to {outs[0].dtype}"
        if name in _POWERS:
            exponent = _arg(args, kwargs, 1, 'exponent')
            if self._dep(_arg(args, kwargs, 0, 'input')) and not isinstance(exponent, torch.Tensor) \
                    and exponent == 1:
                return None
            return "raises an activation to a power"
        if name in _DETACH:
            return "detaches an activation, so no gradient flows through it"
        if name in _NONLINEAR:
            return "is nonlinear"
        if origins:
            return None  # not probed: its inputs are already tainted, and the taint names the cause
        if self._affine_probe(func, name, args, kwargs, outs):
            module, cls = self._where()
            self.probed.append(Finding(module, cls, _op_label(func, name), "affine on the first batch"))
            return None
        return "is not known to be affine and failed the affinity probe"

    def _affine_probe(self, func, name, args, kwargs, outs):
        """f(λa + (1-λ)b) = λf(a) + (1-λ)f(b) for λ = 1/2, 1/4, ``b`` another row's values."""
        if name.endswith('_') or not all(t.is_floating_point() for t in outs):
            return False
        dep = {id(t): t for t in _leaves((args, kwargs)) if self._dep(t)}
        if not all(t.is_floating_point() for t in dep.values()):
            return False

        def other(t):
            # Along the example-reference segments where rows still pair up, else another row.
            if t.ndim and self.partner is not None and t.shape[0] == len(self.partner):
                b = t.index_select(0, self.partner.to(t.device))
            else:
                b = t.roll(1, 0) if t.ndim and t.shape[0] > 1 else t.flip(-1) if t.ndim else -t
            return b if not torch.equal(b, t) else t * 0.5 - 1.0

        b_point = {k: other(t) for k, t in dep.items()}

        def call(lam):
            sub = (lambda t: (lam * t + (1 - lam) * b_point[id(t)]).to(t.dtype) if id(t) in dep else t)
            return list(_leaves(func(*_map(args, sub), **_map(kwargs, sub))))

        try:
            with torch.no_grad():
                fb, fm, fq = call(0.0), call(0.5), call(0.25)
        except Exception:
            return False
        if len(fb) != len(outs):
            return False
        for fa_, fb_, fm_, fq_ in zip(outs, fb, fm, fq):
            if fa_.shape != fb_.shape or fa_.shape != fm_.shape:
                return False
            fa_, fb_, fm_, fq_ = fa_.double(), fb_.double(), fm_.double(), fq_.double()
            scale = max(fa_.abs().max().item() if fa_.numel() else 0.0,
                        fb_.abs().max().item() if fb_.numel() else 0.0, 1e-30)
            tol = 10 * _tolerance(outs[0].dtype) * scale
            if (fm_ - 0.5 * (fa_ + fb_)).abs().max().item() > tol \
                    or (fq_ - (0.25 * fa_ + 0.75 * fb_)).abs().max().item() > tol:
                return False
        return True


def _refusal(caller, findings):
    f = findings[0]
    if not f.op:  # a ruled module in a place where its rule cannot be applied
        return f"{caller}: module '{f.module}' ({f.cls}) {f.reason}, so the attributions would be wrong"
    if f.cls.startswith('torch.nn.'):
        fix = (f"register a rule: additional_nonlinear_ops={{{f.cls}: rule}} "
               "(rule(module, grad_input, grad_output) -> tuple, or 'rescale'/'softmax'/'maxpool'/'linear')")
    else:
        fix = ("make each nonlinearity an nn.Module that has a rule (e.g. torch.nn.ReLU() created in __init__), "
               f"or declare one for the module: additional_nonlinear_ops={{{f.cls}: rule}} ('rescale' for an "
               "elementwise activation, 'linear' if the module is affine, or rule(module, grad_input, "
               f"grad_output)), by name: rules_from_names({{'{f.cls}': 'linear'}})")
    more = ''
    if len(findings) > 1:
        rest = [f"{g.op or g.reason} in '{g.module}' ({g.cls})" for g in findings[1:4]]
        more = f" (also: {'; '.join(rest)}{'; ...' if len(findings) > 4 else ''})"
    where = " in its forward" if f.op else ""
    return (f"{caller}: module '{f.module}' ({f.cls}) {f.describe()}{where}; no DeepLIFT rule covers it, so "
            f"the attributions would be wrong{more}; {fix}")


def _permute_rows(obj, perm):
    return _map(obj, lambda t: t.index_select(0, perm))


def _record_ruled(model, entries):
    """Forward hooks recording (input[0], output) of every call of every ruled module."""
    calls = {}
    handles = []

    def make(module):
        def hook(mod, inputs, output):
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            out = output if isinstance(output, torch.Tensor) else None
            calls.setdefault(module, []).append((first, out))
        return hook

    for _, module, _ in entries:
        handles.append(module.register_forward_hook(make(module)))
    return calls, handles


def _same_up_to(a, b, tol):
    if a is None or b is None:
        return a is None and b is None
    if a.shape != b.shape:
        return False
    a, b = a.double(), b.double()
    scale = max(a.abs().max().item() if a.numel() else 0.0, 1e-30)
    return (a - b).abs().max().item() <= tol * scale + 1e-30


def plan(model, entries, rules, rows, args, caller='deep_lift_shap', autocast_ctx=None, partner=None):
    """Check the model on the probe ``rows`` (``args`` aligned with them) and
    decide how to pair examples with references. ``partner[i]`` is the row that
    row ``i`` pairs with (its reference or its example): unknown operations are
    probed for affinity along those segments.

    Returns a :class:`Plan`; raises ValueError naming the module when a
    nonlinear operation without a rule reaches the output, or when the model
    cannot be paired at all.
    """
    import contextlib
    ctx = autocast_ctx or contextlib.nullcontext
    n = rows.shape[0]
    tracker = _Tracker(model, entries, rules, caller)
    tracker.partner = torch.tensor(partner) if partner is not None else None
    calls0, handles = _record_ruled(model, entries)
    tracker.install()
    try:
        with torch.no_grad(), ctx():
            with tracker:
                X = rows.clone()
                tracker.set_tag(X, frozenset())
                y = model(X, *args)
    finally:
        tracker.remove()
        for h in handles:
            h.remove()
    outs = list(_leaves(y))
    reached = tracker.merged(y)
    tracker.tags.clear()
    tracker.aliases.clear()
    if reached:
        order = {f: i for i, f in enumerate(tracker.findings_seen)}
        raise ValueError(_refusal(caller, sorted(reached, key=lambda f: order.get(f, 0))))
    notes = list(dict.fromkeys(tracker.notes))
    tol = _tolerance(rows.dtype if rows.is_floating_point() else torch.float32)
    if reached is None and outs:
        # Nothing the check followed reaches the output; if the output still differs between an
        # example and its reference (same args), X reaches it through code the check cannot see.
        if tracker.partner is not None:
            pr = tracker.partner
            for o in outs:
                if o.ndim and o.shape[0] == n and o.is_floating_point() and \
                        not _same_up_to(o, o.index_select(0, pr.to(o.device)), tol):
                    with torch.enable_grad(), ctx():
                        model(rows.clone().requires_grad_(True), *args)  # a model that refuses gradients says why
                    raise ValueError(
                        f"{caller}: the model's output depends on X through operations the check cannot "
                        "follow (e.g. a round trip through numpy, .item(), a C extension or compiled code), "
                        "so no DeepLIFT rule can be vouched for and the attributions would be wrong; keep "
                        "the computation from X to the output in torch operations and nn.Modules")
        notes.append("the output does not depend on X as far as the check can follow (an operation it "
                     "cannot see, e.g. a C extension?)")

    # Pairing: permute the rows with a transposition and a cycle.
    perms = [torch.tensor([1, 0] + list(range(2, n))), torch.roll(torch.arange(n), 1)]
    mode, why = 'shared', ''
    names = {mod: name for name, mod, _ in entries}
    for perm in perms:
        perm = perm.to(rows.device)
        calls, handles = _record_ruled(model, entries)
        try:
            with torch.no_grad(), ctx():
                yp = model(rows.index_select(0, perm), *_permute_rows(args, perm))
        finally:
            for h in handles:
                h.remove()
        for module in set(calls0) | set(calls):
            a, b = calls0.get(module, []), calls.get(module, [])
            label = f"'{names[module] or '<model>'}' ({type(module).__name__})"
            if len(a) != len(b) or any((x[0] is None) != (z[0] is None) or (x[0] is not None and (
                    x[0].shape != z[0].shape or x[1] is None or z[1] is None or x[1].shape != z[1].shape))
                    for x, z in zip(a, b)):
                raise ValueError(f"{caller}: module {label} runs a different number of times or on different "
                                 "shapes when the same examples come in another order; examples and references "
                                 "cannot be paired")
            for k in tracker.dep.get(id(module), ()):
                if mode == 'separate':
                    break
                (xa, oa), (xb, ob) = a[k], b[k]
                if xa.shape[0] != n or oa.shape[0] != n:
                    mode, why = 'separate', (f"module {label} sees {xa.shape[0]} rows for a batch of {n} "
                                             "(the model stacks or splits the batch axis)")
                elif not (_same_up_to(xa.index_select(0, perm), xb, tol)
                          and _same_up_to(oa.index_select(0, perm), ob, tol)):
                    mode, why = 'separate', f"module {label} sees the batch's rows reordered or mixed"
        for o, op in zip(outs, _leaves(yp)):
            if o.ndim == 0 or o.shape[0] != n:
                continue  # not one row per example: the output contract is checked later
            if not _same_up_to(o.index_select(0, perm), op, tol):
                raise ValueError(f"{caller}: the model's output for an example depends on the other examples "
                                 "in the batch (e.g. batch statistics, or a mean over the batch axis); "
                                 "attributions per example are not defined")
    # Row independence: the output of the first rows must not change when the last row is dropped.
    with torch.no_grad(), ctx():
        ys = model(rows[:n - 1], *_map(args, lambda t: t[:n - 1]))
    for o, os_ in zip(outs, _leaves(ys)):
        if o.ndim and o.shape[0] == n and not _same_up_to(o[:n - 1], os_, tol):
            raise ValueError(f"{caller}: the model's output for an example depends on the other examples "
                             "in the batch (e.g. batch statistics, or a mean over the batch axis); "
                             "attributions per example are not defined")
    return Plan(mode, why, tracker.dep, list(tracker.declared.values()), tracker.probed, notes)


def _probe_rows(Xx, R, ax, groups):
    """A few rows for the check: up to two examples and a reference of each (plus
    a third distinct row when needed: pairing needs at least three), their args,
    and each row's partner (an example's reference, a reference's example)."""
    ex = list(range(min(2, Xx.shape[0])))
    ref_rows, ref_ex = [], []
    for s, _, j in groups:
        if j in ex and len(ref_rows) < 2:
            ref_rows.append(s)
            ref_ex.append(j)
    rows = [Xx[ex], R[ref_rows]]
    a_rows = [[a[ex], a[ref_ex]] for a in ax]
    partner = [len(ex) + ref_ex.index(j) if j in ref_ex else j for j in ex] + ref_ex
    if len(ex) + len(ref_rows) < 3:
        rows.append(Xx[:1].roll(1, -1))
        for p in a_rows:
            p.append(p[0][:1])
        partner.append(len(partner))
    return torch.cat(rows), tuple(torch.cat(p) for p in a_rows), partner


# The first-batch check's decision per model, reused while nothing it depends
# on changes (the model's modules and their classes, the rules, the input
# shapes and dtypes), so repeated small calls (products, marginalize) stay cheap.
_PLANS = weakref.WeakKeyDictionary()


def _plan_key(model, rules, Xx, ax, device, dtype):
    modules = tuple((id(m), type(m), id(m.__dict__.get('forward'))) for m in model.modules())
    return (modules, tuple((id(c), id(r)) for c, r in rules.items()), tuple(Xx.shape[1:]),
            tuple((tuple(a.shape[1:]), a.dtype) for a in ax), str(device), dtype)


def checked_plan(model, entries, rules, Xx, R, ax, groups, caller, device, dtype, autocast_ctx):
    """:func:`plan` on probe rows of the first chunk (``Xx`` its distinct
    examples, ``R`` one reference per pair, ``groups`` as in deep_lift_shap),
    or the cached decision for this model."""
    key = _plan_key(model, rules, Xx, ax, device, dtype)
    try:
        cached = _PLANS.get(model)
    except TypeError:  # an unhashable or non-weakrefable model: no cache
        cached = None
    if cached is not None and cached[0] == key:
        return cached[1]
    rows, arows, partner = _probe_rows(Xx, R, ax, groups)
    decided = plan(model, entries, rules, rows, arows, caller, autocast_ctx, partner)
    try:
        _PLANS[model] = (key, decided)
    except TypeError:
        pass
    return decided


def diagnosis(plan_: Optional[Plan]) -> str:
    """What to suspect when convergence deltas are large, naming modules."""
    if plan_ is None:
        return "the model was not checked"
    parts = []
    if plan_.declared:
        parts.append("modules treated as linear or given a user rule: " + ", ".join(plan_.declared))
    if plan_.probed:
        parts.append("operations found affine on the first batch only: "
                     + ", ".join(f"{f.op} in '{f.module}' ({f.cls})" for f in plan_.probed[:5]))
    parts.extend(plan_.notes)
    if not parts:
        return ("every module the model ran on the path from X has a built-in rule or was verified affine; "
                "suspect precision (dtype), a custom autograd.Function, or values that differ between "
                "batches")
    return "; ".join(parts)
