"""Dead-branch pruning for :func:`kipoi_tanger.deep_lift_shap`.

A count-only wrapper around a profile model still runs the profile head on
every row although nothing of it reaches the output. ``prune_dead_branches``
traces the model with ``torch.fx`` (ruled modules opaque) and drops what cannot
reach the output; the caller uses the result only when it gives bitwise the
same output as the eager model (``same_outputs``). ``deep_lift_shap(...,
prune=False)`` always runs the eager model. :func:`cached_prune` keeps the
traced result per model while its modules and hooks stay the same, so repeated
calls do not trace again.
"""
import weakref

import torch

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


_CACHE = weakref.WeakKeyDictionary()


def _key(model, n_args, leaves):
    from torch.nn.modules import module as _module
    mods = tuple((id(m), type(m), id(m.__dict__.get('forward')), len(m._forward_hooks), len(m._forward_pre_hooks),
                  len(m._backward_hooks), len(getattr(m, '_backward_pre_hooks', None) or ()))
                 for m in model.modules())
    return (n_args, tuple(id(m) for m in leaves), mods,
            bool(_module._global_forward_hooks or _module._global_forward_pre_hooks))


def cached_prune(model, n_args, leaves):
    """:func:`prune_dead_branches`, traced once per model (and again when its
    modules or hooks change). The caller still checks the result."""
    leaves = list(leaves)
    key = _key(model, n_args, leaves)
    try:
        hit = _CACHE.get(model)
    except TypeError:
        hit = None
    if hit is not None and hit[0] == key:
        return hit[1]
    pruned = prune_dead_branches(model, n_args, leaves)
    try:
        _CACHE[model] = (key, pruned)
    except TypeError:
        pass
    return pruned
