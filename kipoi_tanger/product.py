"""Apply any predict-like function over products of inputs without
materialising the product.

``apply_pairwise`` crosses ``X`` with index-paired ``args`` (X-major);
``apply_product`` takes the full cartesian product of ``X`` and every arg (last
arg fastest). Both mirror ``tangermeme.product`` (1.6.0) but build each batch by
index arithmetic and gather, write results straight into preallocated output
tensors, and keep the model on the device for the whole run.
"""
import math
from typing import Any, Callable, List, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm

from ._base import (ArgumentTypeError, check_args, check_batch_size, check_X, model_on,
                    resolve_device)


class _Leaf:
    """Preallocated destination for one output tensor of ``func``."""

    __slots__ = ('out',)

    def __init__(self):
        self.out = None

    def write(self, start, y, total, rows):
        if not isinstance(y, torch.Tensor):
            raise ValueError("Cannot interpret output from func: expected tensors or "
                             f"(nested) tuples/lists of tensors, got {type(y).__name__}")
        if y.ndim == 0 or y.shape[0] != rows:
            raise ValueError(f"func returned shape {tuple(y.shape)} for a batch of {rows} "
                             f"examples; expected {rows} rows, one per example")
        y = y.detach().cpu()
        if self.out is None:
            self.out = torch.empty((total, *y.shape[1:]), dtype=y.dtype)
        elif y.shape[1:] != self.out.shape[1:]:
            raise ValueError(f"func returned shape {tuple(y.shape[1:])} per example after "
                             f"{tuple(self.out.shape[1:])} in an earlier batch")
        self.out[start:start + len(y)] = y


def _structure(y):
    """Mirror func's output: a _Leaf per tensor inside (nested) tuples/lists."""
    if isinstance(y, (tuple, list)):
        return type(y), [_structure(v) for v in y]
    return _Leaf()


def _write(struct, y, start, total, rows):
    if isinstance(struct, _Leaf):
        struct.write(start, y, total, rows)
        return
    _, children = struct
    if not isinstance(y, (tuple, list)) or len(y) != len(children):
        raise ValueError("Cannot interpret output from func: its structure changed between batches")
    for child, v in zip(children, y):
        _write(child, v, start, total, rows)


def _finish(struct, lead):
    if isinstance(struct, _Leaf):
        return struct.out.reshape(*lead, *struct.out.shape[1:])
    # Any tuple or list (marginalize's PerturbationResult too) becomes a list,
    # as in tangermeme: unpack it (y_before, y_after = ...) rather than use fields.
    _, children = struct
    return [_finish(c, lead) for c in children]


def _apply(func, model, X, args, lead, index_of, batch_size, device,
           additional_func_kwargs, verbose, kwargs, desc):
    total = math.prod(lead)
    device = resolve_device(device)
    extra = dict(additional_func_kwargs or {})
    struct = None
    with model_on(model, device):
        with tqdm(total=total, disable=not verbose, desc=desc, unit="example") as bar:
            for start in range(0, total, batch_size):
                idx = torch.arange(start, min(start + batch_size, total))
                x_idx, arg_idx = index_of(idx)
                X_ = X[x_idx]
                args_ = [a[i] for a, i in zip(args, arg_idx)]
                y = func(model, X_, args=args_, batch_size=batch_size, device=str(device),
                         verbose=False, **extra, **kwargs)
                if struct is None:
                    struct = _structure(y)
                _write(struct, y, start, total, len(idx))
                bar.update(len(idx))
    return _finish(struct, lead)


def _validate(X, args, batch_size, paired):
    check_X(X)
    if args is None:  # tangermeme: TypeError
        raise ArgumentTypeError("args: required (a tuple of tensors to cross with X)")
    if paired:
        args = check_args(X, args, aligned=False)
    else:
        if isinstance(args, torch.Tensor):
            args = (args,)
        if not isinstance(args, (tuple, list)):
            raise ArgumentTypeError(f"args: expected a non-empty tuple or list of tensors, got "
                                    f"{type(args).__name__}")
        if len(args) == 0:
            raise ValueError("args: expected a non-empty tuple or list of tensors")
        for i, a in enumerate(args):
            if not isinstance(a, torch.Tensor):
                raise ArgumentTypeError(f"args[{i}]: expected a torch.Tensor, got "
                                        f"{type(a).__name__}")
            if a.ndim == 0:
                raise ValueError(f"args[{i}]: expected a torch.Tensor with a leading axis")
            if a.shape[0] == 0:
                raise ValueError(f"args[{i}]: must contain at least one element")
        args = tuple(args)
    return args, check_batch_size(batch_size)


def apply_pairwise(func: Callable, model: torch.nn.Module, X: torch.Tensor,
                   args: Sequence[torch.Tensor], batch_size: int = 32,
                   device: Union[str, torch.device, None] = None,
                   additional_func_kwargs: Optional[dict] = None, verbose: bool = False,
                   **kwargs: Any) -> Union[torch.Tensor, List]:
    """Apply ``func`` to every example of ``X`` paired with every element of ``args``.

    The tensors in ``args`` belong together index-wise (e.g. a cell's state
    vector and its read depth), so the examples are ``(X_i, a_j, b_j)`` for all
    ``i, j``, enumerated X-major. Each batch is gathered on the fly, so the
    product is never materialised.

    Parameters
    ----------
    func : callable
        A predict-like function ``func(model, X, args=..., batch_size=...,
        device=..., verbose=..., **kwargs)``: ``predict``, ``deep_lift_shap``,
        ``marginalize``, or your own.
    model : torch.nn.Module
        The model passed to ``func``.
    X : torch.Tensor, shape=(N, ...)
        Sequences (or any first input).
    args : tuple of torch.Tensor
        Extra inputs of a common length M.
    batch_size : int, optional
        Product examples per call of ``func`` (also passed on as its
        ``batch_size``). Default 32.
    device : str, torch.device or None, optional
        None picks CUDA when available, else CPU. Default None.
    additional_func_kwargs : dict or None, optional
        Keyword arguments for ``func`` whose names collide with this function's
        own (e.g. ``{'func': deep_lift_shap}`` for ``marginalize``). Default None.
    verbose : bool, optional
        Progress bar over product examples; ``func`` always runs quietly.
    **kwargs
        Passed straight to ``func`` (e.g. ``motif="TGA"``, ``start=0``).

    Returns
    -------
    torch.Tensor or list
        ``(N, M, *func_shape)``. When ``func`` returns a tuple/list of tensors
        (a NamedTuple such as marginalize's ``PerturbationResult`` included), a
        ``list`` of such tensors, as in tangermeme; nested structures become
        nested lists.
    """
    args, batch_size = _validate(X, args, batch_size, paired=True)
    n_args = args[0].shape[0]

    def index_of(idx):
        a = idx % n_args
        return idx // n_args, [a] * len(args)

    return _apply(func, model, X, args, [len(X), n_args], index_of, batch_size, device,
                  additional_func_kwargs, verbose, kwargs, "apply_pairwise")


def apply_product(func: Callable, model: torch.nn.Module, X: torch.Tensor,
                  args: Sequence[torch.Tensor], batch_size: int = 32,
                  device: Union[str, torch.device, None] = None,
                  additional_func_kwargs: Optional[dict] = None, verbose: bool = False,
                  **kwargs: Any) -> Union[torch.Tensor, List]:
    """Apply ``func`` to the full cartesian product of ``X`` and every arg.

    Examples are ``(X_i, a_j, b_k, ...)`` for all ``i, j, k``, with the last arg
    changing fastest. Arguments are as in :func:`apply_pairwise`, except that
    the args may have different lengths.

    Returns
    -------
    torch.Tensor or list
        ``(N, len(args[0]), len(args[1]), ..., *func_shape)`` (a list of such
        tensors for tuple/list outputs).
    """
    args, batch_size = _validate(X, args, batch_size, paired=False)
    sizes = [a.shape[0] for a in args]
    lead = [len(X)] + sizes

    def index_of(idx):
        rest = idx
        arg_idx = []
        for s in reversed(sizes):
            arg_idx.append(rest % s)
            rest = rest // s
        return rest, arg_idx[::-1]

    return _apply(func, model, X, args, lead, index_of, batch_size, device,
                  additional_func_kwargs, verbose, kwargs, "apply_product")
