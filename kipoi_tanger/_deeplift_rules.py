"""DeepLIFT rules and the hook machinery behind :func:`kipoi_tanger.deep_lift_shap`.

How a chunk of (example, reference) pairs is attributed
-------------------------------------------------------
One forward pass runs the chunk's distinct examples (``m`` rows) followed by
one reference row per pair. Running both in the same call keeps their
activations bitwise comparable, so a difference that is exactly zero stays
exactly zero whatever the batch composition. The forward hook of every module
that has a rule computes the per-pair DeepLIFT multiplier from the example
activations (broadcast over the rows of that example's pairs, never copied)
and the reference activations, and replaces the module's output with an
identical tensor whose backward applies that multiplier (:class:`_RuleFn`),
instead of a backward hook and cloned activations. Only the reference rows
are back-propagated: linear layers have the same gradient for both halves of
tangermeme's doubled batch, and every rule here gives both halves the same
multiplier, so the gradient at the reference input is the multiplier
tangermeme reads off the example half.

Rules have tangermeme's signature ``rule(module, grad_input, grad_output) ->
tuple`` (``module.input``/``module.output`` hold the example half stacked on
the reference half). The built-ins below are recognised by identity and run
on the fast path; any other callable runs on a compatible, slower path that
materialises the doubled batch for that module only.
"""
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


def _pool_fn(module):
    if isinstance(module, torch.nn.MaxPool1d):
        return F.max_pool1d
    if isinstance(module, torch.nn.MaxPool2d):
        return F.max_pool2d
    raise ValueError(f"maxpool_rule: module {type(module).__name__} is neither MaxPool1d nor MaxPool2d")


def _pool_indices(module, inp):
    return _pool_fn(module)(inp, module.kernel_size, module.stride, module.padding,
                            module.dilation, module.ceil_mode, True)[1]


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
    dim = module.dim
    if dim is None:  # torch's legacy implicit choice
        dim = 0 if ndim in (0, 1, 3) else 1
    if dim < 0:
        dim += ndim
    if dim == 0:
        raise ValueError("softmax_rule: Softmax over the batch axis (dim=0) has no DeepLIFT rule; "
                         "examples and references are stacked along that axis")
    return dim


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


def _softmax_grad(g, dy, ma, mv, rec, dim):
    g = _wide(g)
    return (g * dy + ma * (g * mv * rec).sum(dim, keepdim=True)).to(g.dtype)


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
    """DeepLIFT rule for MaxPool1d/MaxPool2d (overlapping and dilated windows included)."""
    x, r = module.input.chunk(2)
    xo, ro = module.output.chunk(2)
    st = _MaxPoolState(_pool_indices(module, x), _pool_indices(module, r), _wide(x - r),
                       _wide(xo - ro), x.shape)
    g = grad_output[0].chunk(2)[0]
    half = st.backward(g)
    return (torch.cat([half, half]).to(grad_input[0].dtype),)


def softmax_rule(module, grad_input, grad_output):
    """DeepLIFT rule for Softmax over any non-batch axis."""
    x, r = module.input.chunk(2)
    dim = _softmax_dim(module, x.ndim)
    terms = _softmax_terms(x, r, dim)
    gx, gr = grad_output[0].chunk(2)
    return (torch.cat([_softmax_grad(gx, *terms, dim), _softmax_grad(gr, *terms, dim)]),)


_RESCALED = (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.RReLU, torch.nn.LeakyReLU, torch.nn.PReLU,
             torch.nn.ELU, torch.nn.SELU, torch.nn.CELU, torch.nn.GELU, torch.nn.SiLU, torch.nn.Mish,
             torch.nn.Sigmoid, torch.nn.Tanh, torch.nn.Softplus, torch.nn.Softshrink,
             torch.nn.LogSigmoid)

BUILTIN_RULES = {cls: rescale_rule for cls in _RESCALED}
BUILTIN_RULES.update({torch.nn.MaxPool1d: maxpool_rule, torch.nn.MaxPool2d: maxpool_rule,
                      torch.nn.Softmax: softmax_rule})

# Modules that mix positions or inputs multiplicatively, for which treating
# them as linear would give silently wrong attributions.
REFUSED = (torch.nn.RNNBase, torch.nn.RNNCellBase, torch.nn.MultiheadAttention,
           torch.nn.Transformer, torch.nn.TransformerEncoder, torch.nn.TransformerDecoder,
           torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer, torch.nn.Bilinear)


def build_rules(additional_nonlinear_ops=None):
    """The rule table: built-ins updated with ``additional_nonlinear_ops``."""
    rules = dict(BUILTIN_RULES)
    if additional_nonlinear_ops is None:
        return rules
    if not isinstance(additional_nonlinear_ops, dict):
        raise TypeError("additional_nonlinear_ops: expected a dict {module class: "
                        f"rule(module, grad_input, grad_output)}}, got {type(additional_nonlinear_ops).__name__}")
    for cls, rule in additional_nonlinear_ops.items():
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise TypeError(f"additional_nonlinear_ops: key {cls!r} is not a torch.nn.Module subclass")
        if not callable(rule):
            raise TypeError(f"additional_nonlinear_ops: rule for {cls.__name__} is not callable "
                            f"(got {type(rule).__name__})")
    rules.update(additional_nonlinear_ops)
    return rules


def lookup_rule(rules, cls):
    for base in cls.__mro__:
        if base in rules:
            return rules[base]
    return None


def _class_path(cls):
    if getattr(torch.nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def ruled_modules(model, rules, caller):
    """(name, module, rule) for every module with a rule, outermost first.

    Descendants of a ruled module are skipped (its rule replaces their
    gradients). A module with no sound linear treatment raises ValueError.
    """
    found = []

    def walk(module, name):
        rule = lookup_rule(rules, type(module))
        if rule is not None:
            found.append((name, module, rule))
            return
        if isinstance(module, REFUSED):
            cls = type(module)
            raise ValueError(
                f"{caller}: module '{name or '<model>'}' ({cls.__name__}) has no DeepLIFT rule; "
                f"register one with additional_nonlinear_ops={{{_class_path(cls)}: rule}} "
                "(rule(module, grad_input, grad_output) -> tuple) or use another attribution method")
        for child_name, child in module.named_children():
            walk(child, f"{name}.{child_name}" if name else child_name)

    walk(model, '')
    return found


# --------------------------------------------------------------------------
# Fast-path machinery.
# --------------------------------------------------------------------------

class _RuleFn(torch.autograd.Function):
    """Identity on a module's output whose backward is a DeepLIFT rule.

    ``state.out`` (the module's detached output) is returned as is, so the
    forward pass sees the same values; the module's own graph is dropped.
    """

    @staticmethod
    def forward(ctx, state, *inputs):
        ctx.state = state
        return state.out

    @staticmethod
    def backward(ctx, g):
        state, ctx.state = ctx.state, None  # free the multipliers early
        return (None,) + tuple(state.backward(g))


class _Rescale:
    def __init__(self, out, ratio):
        self.out, self.ratio = out, ratio

    def backward(self, g):
        # The ratio buffer is ours and used once: it becomes the gradient.
        grad = self.ratio.mul_(g)
        self.ratio = None
        return (grad.to(g.dtype),)


def _pad_rows(grad, m):
    """Gradient for the full batch: nothing flows back into the example rows."""
    return torch.cat([grad.new_zeros((m,) + tuple(grad.shape[1:])), grad])


class _Softmax:
    def __init__(self, out, terms, dim, m):
        self.out, self.terms, self.dim, self.m = out, terms, dim, m

    def backward(self, g):
        return (_pad_rows(_softmax_grad(g[self.m:], *self.terms, self.dim), self.m),)


class _MaxPool:
    def __init__(self, out, st, m):
        self.out, self.st, self.m = out, st, m

    def backward(self, g):
        return (_pad_rows(self.st.backward(g[self.m:]), self.m),)


class _UserRule:
    """Runs a tangermeme-signature rule on the doubled batch (example rows
    repeated per pair, then reference rows) of one module."""

    def __init__(self, module, rule, out, inputs, m, eidx, grad_mask):
        self.module, self.rule, self.out = module, rule, out
        # Copies: the model may modify these tensors in place after the hook.
        self.saved_out = out.clone()
        self.inputs = [t.clone() if isinstance(t, torch.Tensor) else t for t in inputs]
        self.m, self.eidx, self.grad_mask = m, eidx, grad_mask

    def _double(self, t):
        if isinstance(t, torch.Tensor) and t.shape[:1] == self.saved_out.shape[:1]:
            return torch.cat([t[:self.m].index_select(0, self.eidx), t[self.m:]])
        return t

    def backward(self, g):
        m = self.m
        # Only reference rows carry gradient; the example half of tangermeme's
        # doubled batch receives the same upstream gradient.
        g2 = torch.cat([g[m:], g[m:]])
        both = [self._double(t) for t in self.inputs]
        with torch.enable_grad():
            leaves = [b.detach().requires_grad_(k) if isinstance(b, torch.Tensor) else b
                      for b, k in zip(both, self.grad_mask)]
            out2 = self.module.forward(*leaves)
            wanted = [t for t, k in zip(leaves, self.grad_mask) if k]
            grads = torch.autograd.grad(out2, wanted, g2, allow_unused=True)
        it = iter(grads)
        grad_input = tuple(next(it) if k else None for k in self.grad_mask)
        module = self.module
        saved = {k: module.__dict__[k] for k in ('input', 'output') if k in module.__dict__}
        module.input = leaves[0].detach()
        module.output = self._double(self.saved_out)
        try:
            result = self.rule(module, grad_input, (g2,))
        finally:
            del module.input, module.output
            module.__dict__.update(saved)  # the module's own attributes of these names
        if isinstance(result, torch.Tensor):
            result = (result,)
        n = g.shape[0] - m
        out = []
        for r, k in zip(result, self.grad_mask):
            if k:
                out.append(None if r is None else _pad_rows(r[:n], m))
        return out


class Session:
    """Registers the DeepLIFT hooks on ``model`` for the duration of a ``with``.

    A batch holds ``m`` example rows followed by one reference row per pair;
    :meth:`batch` says which example each pair belongs to. Running examples
    and references in one call keeps their activations bitwise comparable
    (an exact zero difference stays exactly zero whatever the batch size).
    Hooks are removed and ``inplace`` flags restored on exit.
    """

    def __init__(self, model, rules, caller='deep_lift_shap'):
        self.caller = caller
        self.entries = ruled_modules(model, rules, caller)
        self.active = False
        self.handles = []
        self.inplace = []
        self.scratch = {}

    def __enter__(self):
        try:
            for name, module, rule in self.entries:
                # An in-place activation would overwrite the input the rule reads.
                if getattr(module, 'inplace', False) is True:
                    self.inplace.append(module)
                    module.inplace = False
                self.handles.append(module.register_forward_hook(self._make_hook(name, rule)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for h in self.handles:
            h.remove()
        for module in self.inplace:
            module.inplace = True
        self.handles, self.inplace = [], []
        self.active = False
        self.scratch = {}
        return False

    def _scratch(self, shape, dtype, device):
        """A reusable temporary: fresh large allocations cost page faults on every batch."""
        n = 1
        for d in shape:
            n *= d
        key = (dtype, device)
        buf = self.scratch.get(key)
        if buf is None or buf.numel() < n:
            buf = torch.empty(n, dtype=dtype, device=device)
            self.scratch[key] = buf
        return buf[:n].view(shape)

    def batch(self, m, groups, eidx):
        """Arm the hooks for one batch: ``groups`` lists ``(s, e, j)``: pair
        rows ``s:e`` (counted after the example rows) belong to example row ``j``;
        ``eidx`` maps each pair to its example row."""
        self.m, self.groups, self.eidx = m, groups, eidx
        self.n_rows = m + len(eidx)
        self.active = True

    def done(self):
        self.active = False
        self.groups = self.eidx = None

    def _make_hook(self, name, rule):
        def hook(module, inputs, output):
            if not self.active:
                return None
            if not isinstance(output, torch.Tensor):
                raise ValueError(
                    f"{self.caller}: module '{name or '<model>'}' ({type(module).__name__}) has a DeepLIFT "
                    f"rule but returns a {type(output).__name__}; rules apply to modules returning one "
                    "tensor: wrap it (e.g. return output[0]) and register the rule for the wrapper")
            if not (inputs and isinstance(inputs[0], torch.Tensor)):
                return None
            if inputs[0].shape[0] != self.n_rows or output.shape[0] != self.n_rows or \
                    not any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs):
                return None  # not on the path from X, or not batch-aligned: leave it alone
            return self._apply(module, rule, inputs, output)
        return hook

    def _apply(self, module, rule, inputs, output):
        m, groups = self.m, self.groups
        inp, out = inputs[0].detach(), output.detach()
        if rule is rescale_rule:
            xi, ri = _wide(inp[:m]), _wide(inp[m:])
            xo, ro = _wide(out[:m]), _wide(out[m:])
            # The derivative at the example is the fallback where |Δin| is tiny.
            if type(module) is torch.nn.ReLU:
                xd = (xi > 0).to(xi.dtype)
            else:
                with torch.enable_grad():
                    t = inputs[0][:m].detach().requires_grad_(True)
                    o = module.forward(t)
                    xd = _wide(torch.autograd.grad(o, t, torch.ones_like(o))[0])
            ratio = torch.empty((self.n_rows,) + tuple(ri.shape[1:]), dtype=ri.dtype, device=ri.device)
            ratio[:m].zero_()
            body = ratio[m:]
            dx = self._scratch(ri.shape, ri.dtype, ri.device)
            small = self._scratch(ri.shape, torch.bool, ri.device)
            for s, e, j in groups:
                _rescale_ratio(xi[j:j + 1], xo[j:j + 1], xd[j:j + 1], ri[s:e], ro[s:e], body[s:e],
                               dx[s:e], small[s:e])
            return _RuleFn.apply(_Rescale(out, ratio), inputs[0])
        if rule is maxpool_rule:
            idx = _pool_indices(module, inp)
            ri = inp[m:]
            dx = torch.empty_like(_wide(ri))
            dout = torch.empty_like(_wide(out[m:]))
            for s, e, j in groups:
                torch.sub(_wide(inp[j:j + 1]), _wide(ri[s:e]), out=dx[s:e])
                torch.sub(_wide(out[j:j + 1]), _wide(out[m + s:m + e]), out=dout[s:e])
            st = _MaxPoolState(idx[:m].index_select(0, self.eidx), idx[m:], dx, dout, ri.shape)
            return _RuleFn.apply(_MaxPool(out, st, m), inputs[0])
        if rule is softmax_rule:
            dim = _softmax_dim(module, inp.ndim)
            parts = [_softmax_terms(inp[j:j + 1], inp[m + s:m + e], dim) for s, e, j in groups]
            terms = tuple(torch.cat([p[t] for p in parts]) for t in range(4))
            return _RuleFn.apply(_Softmax(out, terms, dim, m), inputs[0])
        grad_mask = [isinstance(t, torch.Tensor) and t.requires_grad for t in inputs]
        detached = [t.detach() if isinstance(t, torch.Tensor) else t for t in inputs]
        state = _UserRule(module, rule, out, detached, m, self.eidx, grad_mask)
        return _RuleFn.apply(state, *[t for t, k in zip(inputs, grad_mask) if k])


# --------------------------------------------------------------------------
# Dead-branch pruning. A count-only wrapper around a profile model still runs
# the profile head on every row although nothing of it reaches the output.
# --------------------------------------------------------------------------

# Escape hatch (and benchmark switch): set False to always run the eager model.
PRUNE_DEAD_BRANCHES = True

_INPLACE_OPERATORS = {'iadd', 'isub', 'imul', 'itruediv', 'ifloordiv', 'imod', 'ipow', 'iand', 'ior',
                      'ixor', 'ilshift', 'irshift', 'imatmul', 'setitem', 'delitem'}


def _has_hooks(module):
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
                or getattr(module, '_backward_pre_hooks', None))


def _is_impure(node, root):
    """Whether a traced node may act beyond its return value (keep it and its inputs)."""
    if node.op in ('placeholder', 'output'):
        return True
    if node.op == 'call_module':
        mod = root.get_submodule(node.target)
        return (getattr(mod, '_is_impure', False) or getattr(mod, 'inplace', False) is True
                or _has_hooks(mod))
    if node.kwargs.get('out') is not None or node.kwargs.get('inplace') is True:
        return True
    if node.op == 'call_method':
        name = str(node.target)
        return name.endswith('_') or name.startswith('__set') or name.startswith('__del')
    if node.op == 'call_function':
        name = getattr(node.target, '__name__', '')
        if name.endswith('_') or (getattr(node.target, '__module__', None) in ('_operator', 'operator')
                                  and name in _INPLACE_OPERATORS):
            return True
        try:
            return node.is_impure()
        except Exception:
            return True
    return False


def prune_dead_branches(model, n_args, leaves):
    """``model(X, *args)`` without the modules whose results cannot reach its output.

    The forward is traced with ``torch.fx`` (ruled modules stay opaque, so
    their hooks still fire) and every node that neither feeds the output nor
    may have side effects is dropped. Returns a ``GraphModule`` sharing the
    model's modules, or None when nothing costly would be dropped, when the
    forward cannot be traced, or when hooks on traced-through modules would
    be lost. The caller must check the result against the eager model.
    """
    if not PRUNE_DEAD_BRANCHES:
        return None
    try:
        import torch.fx as fx
    except ImportError:  # pragma: no cover - fx ships with torch >= 1.8
        return None
    from torch.nn.modules import module as _module
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return None
    leaves = set(leaves)

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return m in leaves or super().is_leaf_module(m, qualname)

    names = ''.join(f', a{i}' for i in range(n_args))
    namespace = {}
    exec(f"def forward(self, X{names}):\n    return self.model(X{names})\n", namespace)
    call = type('_Call', (torch.nn.Module,), {'forward': namespace['forward']})()
    call.model = model
    tracer = Tracer()
    try:
        graph = tracer.trace(call)
    except Exception:
        return None
    root = call
    # Hooks on modules the tracer stepped into would not run in the graph.
    traced_into = [m for name, m in model.named_modules()
                   if m not in leaves and not tracer.is_leaf_module(m, name)]
    if any(_has_hooks(m) for m in traced_into):
        return None
    keep = set()
    for node in graph.nodes:
        if _is_impure(node, root):
            stack = [node]
            while stack:
                n = stack.pop()
                if n not in keep:
                    keep.add(n)
                    stack.extend(n.all_input_nodes)
    dead = [n for n in graph.nodes if n not in keep]
    if not any(n.op == 'call_module' for n in dead):
        return None
    for n in reversed(dead):
        graph.erase_node(n)
    return fx.GraphModule(root, graph, class_name='PrunedForward')


def same_outputs(a, b):
    """Bitwise equality of two model outputs (tensors or nested tuples/lists)."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_outputs(x, y) for x, y in zip(a, b))
    return False
