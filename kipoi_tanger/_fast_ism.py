"""Fast single-base edits: recompute only what an edit can change.

``FastISM`` traces ``func(model(x, *args))`` with ``torch.fx`` and
re-evaluates the traced graph on *changes* (see ``_fast_ism_ops`` for the
values and the rule of every op):

* the edit enters as a one-base change ``onehot(alt) - onehot(ref)``, so the
  first convolution is a convolution of that delta over the ``k`` outputs it
  reaches, and every later convolution runs only over the window of
  positions its input window can reach (cropped recomputation, layer by
  layer; the window grows by the receptive field of each layer, not by the
  whole model's at once);
* a non-linearity reads the reference activations of its window once per
  site and the three alternative bases of a site share it;
* a dense layer after the local stack multiplies only the touched columns;
  a mean or sum over the length adds the window's change to the reference;
* anything without a rule (attention, recurrence, custom autograd or
  modules that are not plain ``torch.nn`` layers, dense layers or
  reductions over the batch, in-place tricks fx cannot see, forward hooks)
  raises ``Unsupported`` and the caller falls back to full forward passes.

The reference pass runs the same traced graph on the unedited sequences and
keeps the activations the edit passes read. The caller
(``saturation_mutagenesis``) checks the first batch against full forwards.
"""
import operator
from typing import NamedTuple

import torch
import torch.fx as fx
import torch.nn.functional as F

from ._fast_ism_ops import Batched, Dense, FlatLocal, Local, Rules, Static, SwappedLocal, Unsupported, to_dense

__all__ = ['FastISM', 'Unsupported', 'explain']

# fraction of a full forward's multiply-adds above which the fast path is not worth it
MAX_COST_RATIO = 0.5
# jobs below this many multiply-adds on full forwards are not worth tracing
MIN_FAST_JOB_MACS = 1e9


class _Root(torch.nn.Module):
    """``func(model(x, *args))`` as one module, so that fx traces both."""

    def __init__(self, model, func):
        super().__init__()
        self.model = model
        self.func = func

    def forward(self, x, args):
        y = self.model(x, *args)
        return y if self.func is None else self.func(y)


def _check_hooks(model):
    m = torch.nn.modules.module
    if m._global_forward_hooks or m._global_forward_pre_hooks:
        raise Unsupported("global forward hooks are registered (fx does not see them)")
    for name, mod in model.named_modules():
        if mod._forward_hooks or mod._forward_pre_hooks:
            raise Unsupported(f"module {name or type(mod).__name__} has forward hooks "
                              "(fx does not see them)")


_INPLACE_FUNCS = {operator.iadd, operator.isub, operator.imul, operator.itruediv}


def _inplace(node, modules):
    if node.op == 'call_module':
        return bool(getattr(modules[node.target], 'inplace', False))
    name = node.target if node.op == 'call_method' else getattr(node.target, '__name__', '')
    return (node.op in ('call_method', 'call_function') and
            (node.kwargs.get('inplace') is True or node.target in _INPLACE_FUNCS or
             (isinstance(name, str) and name.endswith('_') and not name.endswith('__'))))


def _full_macs(node, modules, out, n):
    """Multiply-adds of one example through a convolution or dense layer."""
    if not isinstance(out, torch.Tensor) or n == 0:
        return 0
    w = None
    if node.op == 'call_module' and isinstance(modules[node.target], (torch.nn.Conv1d, torch.nn.Conv2d,
                                                                      torch.nn.Linear)):
        w = modules[node.target].weight
    if w is None:
        return 0
    return out.numel() // n * (w[0].numel())


class _Meta(NamedTuple):
    shape: torch.Size
    ndim: int
    dtype: torch.dtype
    device: torch.device
    is_cuda: bool


class _Ctx:
    """What the op rules see of one edit batch."""

    def __init__(self, eng, site_seq, K):
        self.eng, self.modules = eng, eng.modules
        self.site_seq, self.K = site_seq, K
        self.n_edits = len(site_seq) * K
        self.seq_of_edit = site_seq.repeat_interleave(K) if K > 1 else site_seq
        self.macs = 0
        self.dying = set()

    def per_edit(self, t):
        return t.repeat_interleave(self.K, 0) if self.K > 1 else t

    def consumable(self, t):
        """Whether the running op may overwrite ``t``: its only holder is an
        input that dies with this op."""
        return t.untyped_storage().data_ptr() in self.dying

    def count(self, macs):
        self.macs += int(macs)

    def ref_of_node(self, node):
        return self.eng.ref_value(node)

    def meta(self, v):
        """Shape, ndim, dtype and device of a value's (or node's) reference,
        without keeping the reference itself alive."""
        node = v if isinstance(v, fx.Node) else getattr(v, 'node', None)
        if node is None or node not in self.eng.metas:
            raise Unsupported("an input-dependent value that is not a tensor")
        return self.eng.metas[node]

    def ref_rows(self, node):
        return self.ref_of_node(node).index_select(0, self.seq_of_edit)

    def ref_len(self, node):
        return self.meta(node).shape[2]

    def ref_windows(self, node, start, width):
        return self.eng.windows(node, self.site_seq, start, width)

    def linear_window(self, loc, weight):
        """Δ of a dense layer over a flattened Local: only the columns of the
        window's positions (grouped by window start; per-site starts differ
        only at the sequence ends and with strided layers)."""
        P, K = len(self.site_seq), self.K
        H = weight.shape[0]
        C, W, L = loc.delta.shape[1], loc.width, loc.length
        w3 = weight.view(H, C, L)
        # pad the weight's length axis so every window slice exists (positions
        # outside [0, L) carry a zero delta anyway)
        lo = max(0, -int(loc.start.min()))
        hi = max(0, int(loc.start.max()) + W - L)
        if lo or hi:
            w3 = F.pad(w3, (lo, hi))
        out = loc.delta.new_empty(P * K, H)
        d = loc.delta.reshape(P, K, C * W)
        starts = loc.start.tolist()
        i = 0
        while i < P:
            j = i
            while j + 1 < P and starts[j + 1] == starts[i]:
                j += 1
            s = starts[i] + lo
            wk = w3[:, :, s:s + W].reshape(H, C * W)
            out.view(P, K, H)[i:j + 1] = d[i:j + 1] @ wk.T
            i = j + 1
        self.count(P * K * C * W * H)
        return out


class FastISM:
    """A traced model, ready to evaluate single-base edits of sequences.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode on ``device`` (the caller's ``model_on``).
    func : callable or None
        Applied to the model's output (traced with it).
    n_args : int
        Number of extra inputs passed after the sequence.

    Raises
    ------
    Unsupported
        When the model cannot be traced or has forward hooks. Ops without a
        rule are found when edits are first evaluated.
    """

    def __init__(self, model, func, n_args):
        _check_hooks(model)
        root = _Root(model, func)
        try:
            gm = fx.symbolic_trace(root, concrete_args={'args': (fx.PH,) * n_args})
        except Exception as e:  # any tracing failure means: not provably local
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise Unsupported(f"torch.fx cannot trace the model ({type(e).__name__}: {msg[:200]})")
        gm.graph.eliminate_dead_code()   # e.g. a profile head that func drops
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.nodes = list(gm.graph.nodes)
        ph = [n for n in self.nodes if n.op == 'placeholder']
        if len(ph) != 1 + n_args:
            raise Unsupported("the traced model does not take the sequence and the extra inputs")
        self.x_node, self.arg_nodes = ph[0], ph[1:]
        self.output_node = next(n for n in self.nodes if n.op == 'output')
        self.var, self.batched = {self.x_node}, set(self.arg_nodes)
        for n in self.nodes:
            if n.op in ('call_module', 'call_function', 'call_method'):
                ins = n.all_input_nodes
                if any(i in self.var for i in ins):
                    self.var.add(n)
                elif any(i in self.batched for i in ins):
                    self.batched.add(n)
        self.var_order = [n for n in self.nodes if n in self.var and n is not self.x_node]
        index = {n: i for i, n in enumerate(self.nodes)}
        self.last_use = {n: max([index[u] for u in n.users] or [index[n]]) for n in self.nodes}
        self.keep = None          # nodes whose reference values edit passes read (None: all)
        self.touched = set()
        self.ref, self._padded, self.metas = {}, {}, {}
        self.full_macs = 0
        self.kinds = {}

    # -- reference pass ---------------------------------------------------------
    def reference(self, X, args):
        """Run the traced graph on the unedited sequences ``X`` (on the device,
        in the compute dtype) and keep what later edit passes read."""
        env, macs, n = {}, 0, len(X)
        ai = 0
        for i, node in enumerate(self.nodes):
            if node.op == 'placeholder':
                if node is self.x_node:
                    env[node] = X
                else:
                    env[node] = args[ai]
                    ai += 1
            elif node.op == 'get_attr':
                obj = self.gm
                for part in node.target.split('.'):
                    obj = getattr(obj, part)
                env[node] = obj
            elif node.op == 'output':
                continue
            else:
                a = fx.node.map_arg(node.args, lambda m: env[m])
                kw = fx.node.map_arg(node.kwargs, lambda m: env[m])
                if _inplace(node, self.modules):  # keep the reference input intact
                    a = fx.node.map_aggregate(a, lambda v: v.clone() if isinstance(v, torch.Tensor) else v)
                env[node] = self._call(node, a, kw)
                macs += _full_macs(node, self.modules, env[node], n)
            if isinstance(env.get(node), torch.Tensor):
                t = env[node]
                self.metas[node] = _Meta(t.shape, t.ndim, t.dtype, t.device, t.is_cuda)
            if self.keep is not None:
                for m in node.all_input_nodes:
                    if self.last_use[m] <= i and m not in self.keep and m in env:
                        del env[m]
        self.ref, self._padded = env, {}
        self.full_macs = macs

    def _call(self, node, a, kw):
        if node.op == 'call_module':
            return self.modules[node.target](*a, **kw)
        if node.op == 'call_function':
            return node.target(*a, **kw)
        return getattr(a[0], node.target)(*a[1:], **kw)

    def ref_value(self, node):
        self.touched.add(node)
        try:
            return self.ref[node]
        except KeyError:
            raise Unsupported(f"no reference value for {node.name}") from None

    def windows(self, node, site_seq, start, width):
        """Reference values of ``node`` on per-site windows: (P, C, W)."""
        ref = self.ref_value(node)
        ref = ref.reshape(ref.shape[:3])
        pad, padded = self._padded.get(node, (0, None))
        if padded is None or pad < width:
            pad = width
            padded = F.pad(ref, (pad, pad))
            self._padded[node] = (pad, padded)
        idx = start + pad
        if int(idx.min()) < 0 or int(idx.max()) + width > padded.shape[2]:
            raise Unsupported(f"window of {node.name} outside the sequence")
        return padded.unfold(2, width, 1)[site_seq, :, idx]

    # -- edit pass ---------------------------------------------------------------
    def edits(self, site_seq, site_pos, ref_base, alt, K, record=False):
        """Outputs of ``func(model(.))`` for edits of the sequences of the last
        :meth:`reference` call.

        Parameters
        ----------
        site_seq, site_pos : torch.LongTensor, shape=(P,)
            Sequence (index into the reference batch) and position of each site.
        ref_base : torch.LongTensor, shape=(P,)
            The base at each site (-1 for an all-zero N column).
        alt : torch.LongTensor, shape=(P * K,)
            The new base of each edit, ``K`` consecutive edits per site.
        K : int
            Edits per site.

        Returns
        -------
        (list of torch.Tensor, int)
            One ``(P * K, ...)`` tensor per output leaf, and the multiply-adds
            of convolutions and dense layers spent on the batch.
        """
        X = self.ref[self.x_node]
        B = len(site_seq) * K
        delta = torch.zeros(B, X.shape[1], 1, dtype=X.dtype, device=X.device)
        rows = torch.arange(B, device=X.device)
        delta[rows, alt, 0] = 1
        rb = ref_base.repeat_interleave(K) if K > 1 else ref_base
        has = rb >= 0
        delta[rows[has], rb[has], 0] -= 1
        return self.edits_delta(site_seq, site_pos, delta, K, record)

    def edits_delta(self, site_seq, site_pos, delta, K=1, record=False):
        """Like :meth:`edits` for any change of the one-hot input: ``delta``
        ``(P * K, A, W)`` is added to columns ``[site_pos, site_pos + W)`` of
        each site's sequence (e.g. an MNV's alt minus ref columns)."""
        X = self.ref[self.x_node]
        L = X.shape[2]
        ctx = _Ctx(self, site_seq, K)
        rules = Rules(ctx)
        vals = {self.x_node: Local(delta, site_pos, L, 0, self.x_node)}
        index = {n: i for i, n in enumerate(self.nodes)}

        def value(m):
            if m in self.var:
                return vals[m]
            if m in self.batched:
                return Batched(m)
            return Static(self.ref_value(m))
        holders = {}                     # storage -> number of live values on it

        def storage(v):
            t = v.delta if isinstance(v, Local) else v.local.delta if isinstance(v, (FlatLocal, SwappedLocal)) else \
                v.value if isinstance(v, Dense) else None
            return t.untyped_storage().data_ptr() if isinstance(t, torch.Tensor) else None

        def hold(v, k):
            s = storage(v)
            if s is not None:
                holders[s] = holders.get(s, 0) + k
        hold(vals[self.x_node], 1)
        for node in self.var_order:
            a = fx.node.map_arg(node.args, value)
            kw = fx.node.map_arg(node.kwargs, value)
            i = index[node]
            uses = [m for m in node.all_input_nodes]
            counts = {}
            fx.node.map_arg((node.args, node.kwargs), lambda m: counts.__setitem__(m, counts.get(m, 0) + 1))
            ctx.dying = {storage(vals[m]) for m in uses
                         if m in vals and self.last_use[m] <= i and counts.get(m) == 1
                         and storage(vals[m]) is not None and holders.get(storage(vals[m])) == 1}
            vals[node] = rules.run(node, a, kw)
            ctx.dying = set()
            hold(vals[node], 1)
            if record:
                v = vals[node]
                self.kinds[node.name] = type(v).__name__ + (f"[W={v.width}]" if isinstance(v, Local) else '')
            for m in uses:
                if m in vals and self.last_use[m] <= i:
                    hold(vals.pop(m), -1)
        out = self.output_node.args[0]
        leaves = []

        def leaf(m):
            v = value(m) if isinstance(m, fx.Node) else m
            if isinstance(v, Static):
                raise Unsupported("an output that does not depend on the inputs")
            t = to_dense(ctx, v)
            leaves.append(t)
            return t
        fx.node.map_aggregate(out, lambda m: leaf(m) if isinstance(m, fx.Node) else m)
        if not isinstance(out, (fx.Node, tuple, list)) or (isinstance(out, (tuple, list)) and not all(
                isinstance(m, fx.Node) for m in out)):
            raise Unsupported("the model's output is not a tensor or a flat tuple/list of tensors")
        return leaves, ctx.macs

    def output_leaves(self):
        """The output nodes, in the order of the model's output tuple."""
        out = self.output_node.args[0]
        leaves = [out] if isinstance(out, fx.Node) else list(out)
        if not all(isinstance(n, fx.Node) for n in leaves):
            raise Unsupported("the model's output is not a tensor or a flat tuple/list of tensors")
        return leaves

    def learn_keep(self):
        """After a first edit pass, keep only the reference values edits read."""
        self.keep = set(self.touched) | {n for n in self.nodes if n not in self.var and
                                         n not in self.batched} | {self.x_node}

    def cost_ratio(self, macs, n_edits):
        """Multiply-adds per edit of the fast path over those of a full forward."""
        return (macs / max(n_edits, 1)) / max(self.full_macs, 1)


def explain(model, X, args=None, func=None, device='cpu'):
    """Whether the fast ISM path applies to ``model`` and why (for tests and
    debugging): a dict with ``fast`` (bool), ``reason``, ``cost_ratio`` and
    the value kind of every traced node for one site of ``X[0]``."""
    from ._base import model_on
    args = tuple(args or ())
    with model_on(model, device), torch.no_grad():
        try:
            eng = FastISM(model, func, len(args))
            x = X[:1].to(device, model_dtype(model))
            eng.reference(x, [a[:1].to(device, x.dtype) for a in args])
            L = x.shape[2]
            ref = int(x[0, :, L // 2].argmax()) if float(x[0, :, L // 2].sum()) == 1 else -1
            alts = [a for a in range(x.shape[1]) if a != ref]
            z = torch.zeros(1, dtype=torch.long, device=device)
            _, macs = eng.edits(z, z + L // 2, z + ref, torch.tensor(alts, device=device), len(alts),
                                record=True)
            ratio = eng.cost_ratio(macs, len(alts))
            ok = ratio <= MAX_COST_RATIO
            reason = 'local' if ok else (f"an edit would cost {ratio:.0%} of a full forward's "
                                         "multiply-adds")
            return {'fast': ok, 'reason': reason, 'cost_ratio': ratio, 'kinds': dict(eng.kinds)}
        except Unsupported as e:
            return {'fast': False, 'reason': str(e), 'cost_ratio': None, 'kinds': {}}


def model_dtype(model):
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32
