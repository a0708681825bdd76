"""The hook machinery behind :func:`kipoi_tanger.deep_lift_shap`.

How a chunk of (example, reference) pairs is attributed
-------------------------------------------------------
**Shared forward** (ordinary models, the fast path). One forward pass runs the
chunk's distinct examples (``m`` rows) followed by one reference row per pair.
Running both in the same call keeps their activations bitwise comparable, so
a difference that is exactly zero stays exactly zero whatever the batch
composition. The forward hook of every module that has a rule computes the
per-pair DeepLIFT multiplier from the example activations (broadcast over the
rows of that example's pairs, never copied) and the reference activations,
and replaces the module's output with an identical tensor whose backward
applies that multiplier (:class:`_RuleFn`). Only the reference rows are
back-propagated: linear layers have the same gradient for both halves of
tangermeme's doubled batch, and every rule here gives both halves the same
multiplier, so the gradient at the reference input is the multiplier
tangermeme reads off the example half. This needs every ruled module to see
the batch's rows in the order they were fed in (``_deeplift_check`` verifies
it on the first batch).

**Separate forwards** (models that mix the batch axis, e.g. DeepSEA/predict's
``cat([x, rc(x)], 0)`` followed by an average of the halves). A first pass
runs the examples, repeated once per pair, and records the input and output
of every call of every ruled module; a second pass runs the references, whose
rows align with the first pass's whatever the model does with the batch axis.
The hooks pair the k-th call of each module across the two passes (same
shapes required, same number of calls required) and apply the rules row by
row; only the second pass is back-propagated. Anything that cannot be paired
raises :class:`PairingError`: attributions are never written from a
mis-paired batch.
"""
import torch

from ._deeplift_rules import (_MaxPoolState, _logsoftmax_grad, _logsoftmax_terms, _pool_indices,
                              _rescale_ratio, _softmax_dim, _softmax_grad, _softmax_terms, _wide,
                              linear_rule, logsoftmax_rule, maxpool_rule, rescale_rule, ruled_modules,
                              softmax_rule)


class PairingError(ValueError):
    """A ruled module's example and reference activations cannot be paired."""


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
    """Gradient for the full batch: nothing flows back into the ``m`` example rows."""
    if m == 0:
        return grad
    return torch.cat([grad.new_zeros((m,) + tuple(grad.shape[1:])), grad])


class _Softmax:
    def __init__(self, out, terms, dim, sign, m):
        self.out, self.terms, self.dim, self.sign, self.m = out, terms, dim, sign, m

    def backward(self, g):
        return (_pad_rows(_softmax_grad(g[self.m:], *self.terms, self.dim, self.sign), self.m),)


class _LogSoftmax:
    def __init__(self, out, terms, dim, m):
        self.out, self.terms, self.dim, self.m = out, terms, dim, m

    def backward(self, g):
        return (_pad_rows(_logsoftmax_grad(g[self.m:], *self.terms, self.dim), self.m),)


class _MaxPool:
    def __init__(self, out, st, m):
        self.out, self.st, self.m = out, st, m

    def backward(self, g):
        return (_pad_rows(self.st.backward(g[self.m:]), self.m),)


class _UserRule:
    """Runs a tangermeme-signature rule on the doubled batch of one module:
    one example row per pair, then the reference rows.

    ``ex_inputs[i]`` is the per-pair example version of input ``i`` (None for
    inputs that are not batch-aligned, passed unchanged); ``ref_inputs`` the
    reference rows; ``m`` the example rows at the top of the live batch.
    """

    def __init__(self, module, rule, out, ex_out, ex_inputs, ref_inputs, m, grad_mask):
        self.module, self.rule, self.out = module, rule, out
        # Copies: the model may modify these tensors in place after the hook.
        self.ref_out = out[m:].clone()
        self.ex_out = ex_out.clone()
        self.ex_inputs = [t.clone() if isinstance(t, torch.Tensor) else t for t in ex_inputs]
        self.ref_inputs = [t.clone() if isinstance(t, torch.Tensor) else t for t in ref_inputs]
        self.m, self.grad_mask = m, grad_mask

    def backward(self, g):
        m = self.m
        # Only reference rows carry gradient; the example half of tangermeme's
        # doubled batch receives the same upstream gradient.
        g2 = torch.cat([g[m:], g[m:]])
        both = [torch.cat([x, r]) if x is not None else r for x, r in zip(self.ex_inputs, self.ref_inputs)]
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
        module.output = torch.cat([self.ex_out, self.ref_out])
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


def not_one_tensor(caller, name, module, output):
    """The error for a ruled module that does not return one tensor."""
    return (f"{caller}: module '{name or '<model>'}' ({type(module).__name__}) has a DeepLIFT rule but returns "
            f"a {type(output).__name__}; rules apply to modules returning one tensor: wrap it (e.g. return "
            "output[0]) and register the rule for the wrapper")


def _first_tensor(inputs):
    return inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None


class Session:
    """Registers the DeepLIFT hooks on ``model`` for the duration of a ``with``.

    Arm it per batch with :meth:`shared` (one forward: ``m`` example rows, then
    one reference row per pair) or with :meth:`record` then :meth:`replay`
    (separate example and reference passes), and :meth:`done` after the
    backward pass. Hooks are removed and ``inplace`` flags restored on exit.

    Parameters
    ----------
    dep : dict, optional
        ``{id(module): set of call indices}`` of the calls that lie on the path
        from the input (from the first-batch check); other calls are left
        alone. Without it, every call on a gradient path must be pairable.
    """

    def __init__(self, model, rules, caller='deep_lift_shap', dep=None):
        self.caller = caller
        self.entries = ruled_modules(model, rules, caller)
        # Modules declared linear keep their plain gradient: nothing to hook.
        self.hooked = [(n, mod, r) for n, mod, r in self.entries if r is not linear_rule]
        self.dep = dep
        self.mode = None
        self.handles = []
        self.inplace = []
        self.scratch = {}
        self.counts = {}
        self.store = {}

    def __enter__(self):
        try:
            for name, module, rule in self.hooked:
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
        self.done()
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

    # -- arming ------------------------------------------------------------

    def shared(self, m, groups, eidx):
        """One shared forward: ``groups`` lists ``(s, e, j)``: pair rows ``s:e``
        (counted after the ``m`` example rows) belong to example row ``j``;
        ``eidx`` maps each pair to its example row."""
        self.mode = 'shared'
        self.m, self.eidx = m, eidx
        self.groups = [(s, e, slice(j, j + 1)) for s, e, j in groups]
        self.n_rows = m + len(eidx)
        self.counts = {}

    batch = shared  # older name

    def record(self):
        """First of two passes: the examples (one row per pair); activations are recorded."""
        self.mode = 'record'
        self.counts, self.store = {}, {}

    def replay(self):
        """Second pass: the references; the k-th call of each module pairs with the recorded one."""
        self.mode = 'replay'
        self.counts = {}

    def finish(self):
        """After the reference pass: every recorded call must have been paired."""
        for name, module, _ in self.hooked:
            want, got = len(self.store.get(module, ())), self.counts.get(module, 0)
            if want != got:
                raise PairingError(
                    f"{self.caller}: module '{name or '<model>'}' ({type(module).__name__}) ran {want} time(s) "
                    f"on the examples but {got} on the references; examples and references cannot be paired")

    def done(self):
        self.mode = None
        self.groups = self.eidx = None
        self.store, self.counts = {}, {}

    # -- hooks -------------------------------------------------------------

    def _make_hook(self, name, rule):
        def hook(module, inputs, output):
            try:
                return paired(module, inputs, output)
            except PairingError:
                raise
            except ValueError as e:  # a rule's own refusal (e.g. softmax over the batch axis)
                if str(e).startswith(self.caller):
                    raise
                raise ValueError(f"{self.caller}: module '{name or '<model>'}' ({type(module).__name__}): "
                                 f"{e}") from None

        def paired(module, inputs, output):
            mode = self.mode
            if mode is None:
                return None
            k = self.counts.get(module, 0)
            self.counts[module] = k + 1
            if not isinstance(output, torch.Tensor):
                raise ValueError(not_one_tensor(self.caller, name, module, output))
            if self.dep is not None and k not in self.dep.get(id(module), ()):
                if mode == 'record':
                    self.store.setdefault(module, []).append(None)
                return None  # not on the path from X: constant for both passes
            first = _first_tensor(inputs)
            if mode == 'record':
                rec = None
                if first is not None:
                    rec = ([t.detach() if isinstance(t, torch.Tensor) else t for t in inputs], output.detach())
                self.store.setdefault(module, []).append(rec)
                return None
            if first is None or not any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs):
                return None
            if mode == 'replay':
                recs = self.store.get(module, [])
                if k >= len(recs) or recs[k] is None:
                    raise PairingError(
                        f"{self.caller}: module '{name or '<model>'}' ({type(module).__name__}) ran more often "
                        "on the references than on the examples; examples and references cannot be paired")
                x_inputs, x_out = recs[k]
                if x_out.shape != output.shape or x_inputs[0].shape != first.shape:
                    raise PairingError(
                        f"{self.caller}: module '{name or '<model>'}' ({type(module).__name__}) saw shape "
                        f"{tuple(x_inputs[0].shape)} on the examples but {tuple(first.shape)} on the references; "
                        "examples and references cannot be paired")
                n = first.shape[0]
                return self._apply(module, rule, inputs, output, 0, [(0, n, slice(0, n))], None,
                                   x_inputs, x_out)
            if first.shape[0] != self.n_rows or output.shape[0] != self.n_rows:
                raise PairingError(
                    f"{self.caller}: module '{name or '<model>'}' ({type(module).__name__}) received "
                    f"{first.shape[0]} rows for a batch of {self.n_rows}; the model mixes the batch axis, so "
                    "examples and references cannot be paired in one forward pass")
            return self._apply(module, rule, inputs, output, self.m, self.groups, self.eidx)
        return hook

    def _apply(self, module, rule, inputs, output, m, groups, eidx, x_inputs=None, x_out=None):
        """Replace ``output`` by a tensor whose backward is ``rule``'s multiplier.

        Reference rows are ``inputs[0][m:]``; pair rows ``s:e`` of them pair with
        the example rows ``xs`` of ``x_inputs[0]`` (or of ``inputs[0][:m]``).
        """
        inp, out = inputs[0].detach(), output.detach()
        if x_inputs is None:
            xin, xout = inp[:m], out[:m]
        else:
            xin, xout = x_inputs[0], x_out
        rin, rout = inp[m:], out[m:]
        if rule is rescale_rule:
            xi, ri, xo, ro = _wide(xin), _wide(rin), _wide(xout), _wide(rout)
            # The derivative at the example is the fallback where |Δin| is tiny.
            if type(module) is torch.nn.ReLU:
                xd = (xi > 0).to(xi.dtype)
            else:
                with torch.enable_grad():
                    t = xin.detach().requires_grad_(True)
                    o = module.forward(t)
                    xd = _wide(torch.autograd.grad(o, t, torch.ones_like(o))[0])
            ratio = torch.empty((m + ri.shape[0],) + tuple(ri.shape[1:]), dtype=ri.dtype, device=ri.device)
            ratio[:m].zero_()
            body = ratio[m:]
            dx = self._scratch(ri.shape, ri.dtype, ri.device)
            small = self._scratch(ri.shape, torch.bool, ri.device)
            for s, e, xs in groups:
                _rescale_ratio(xi[xs], xo[xs], xd[xs], ri[s:e], ro[s:e], body[s:e], dx[s:e], small[s:e])
            return _RuleFn.apply(_Rescale(out, ratio), inputs[0])
        if rule is maxpool_rule:
            if x_inputs is None:
                idx = _pool_indices(module, inp)
                idx_x, idx_r = idx[:m].index_select(0, eidx), idx[m:]
            else:
                idx_x, idx_r = _pool_indices(module, xin), _pool_indices(module, rin)
            dx = torch.empty_like(_wide(rin))
            dout = torch.empty_like(_wide(rout))
            for s, e, xs in groups:
                torch.sub(_wide(xin[xs]), _wide(rin[s:e]), out=dx[s:e])
                torch.sub(_wide(xout[xs]), _wide(rout[s:e]), out=dout[s:e])
            st = _MaxPoolState(idx_x, idx_r, dx, dout, rin.shape)
            return _RuleFn.apply(_MaxPool(out, st, m), inputs[0])
        if rule is softmax_rule:
            dim, sign = _softmax_dim(module, inp.ndim)
            parts = [_softmax_terms(sign * xin[xs], sign * rin[s:e], dim) for s, e, xs in groups]
            terms = tuple(torch.cat([p[t] for p in parts]) for t in range(4))
            return _RuleFn.apply(_Softmax(out, terms, dim, sign, m), inputs[0])
        if rule is logsoftmax_rule:
            dim, _ = _softmax_dim(module, inp.ndim)
            parts = [_logsoftmax_terms(xin[xs], rin[s:e], dim) for s, e, xs in groups]
            terms = tuple(torch.cat([p[t] for p in parts]) for t in range(2))
            return _RuleFn.apply(_LogSoftmax(out, terms, dim, m), inputs[0])
        return self._user_rule(module, rule, inputs, out, m, eidx, x_inputs, x_out)

    def _user_rule(self, module, rule, inputs, out, m, eidx, x_inputs, x_out):
        grad_mask = [isinstance(t, torch.Tensor) and t.requires_grad for t in inputs]
        detached = [t.detach() if isinstance(t, torch.Tensor) else t for t in inputs]
        n_rows = out.shape[0]
        if x_inputs is None:
            def aligned(t):
                return isinstance(t, torch.Tensor) and t.shape[:1] == (n_rows,)
            ex = [t[:m].index_select(0, eidx) if aligned(t) else None for t in detached]
            ref = [t[m:] if aligned(t) else t for t in detached]
            ex_out = out[:m].index_select(0, eidx)
        else:
            ex = [x if isinstance(t, torch.Tensor) and isinstance(x, torch.Tensor) and x.shape == t.shape
                  else None for x, t in zip(x_inputs, detached)]
            ref = detached
            ex_out = x_out
        state = _UserRule(module, rule, out, ex_out, ex, ref, m, grad_mask)
        return _RuleFn.apply(state, *[t for t, k in zip(inputs, grad_mask) if k])
