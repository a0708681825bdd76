"""Effects of substitutions, deletions and insertions, with tangermeme 1.6.0's semantics.

Each function builds the edited sequences and calls ``func`` (``predict`` by
default; ``deep_lift_shap`` and any predict-like function work too) before
and after, returning ``PerturbationResult(y_before, y_after)``:

* ``substitution_effect(model, X, substitutions)``: rows ``(example,
  position, base)`` overwrite one column each.
* ``deletion_effect(model, X, deletions, left=False)``: ``X`` carries
  ``max_deletions`` extra columns; ``y_before`` sees ``X`` trimmed by that
  many columns on the right (on the left with ``left=True``), ``y_after``
  the sequence with its rows ``(example, position)`` removed, trimmed to the
  same length on the same side.
* ``insertion_effect(model, X, insertions, left=False)``: rows ``(example,
  position, base)`` insert a base before ``position`` (of the original
  sequence); several rows at one position are inserted in reverse of the
  order given (the last row given ends up first), so ``S`` goes in as rows
  ``S[-1], ..., S[0]``; the result is trimmed back to ``L`` on the right
  (left with ``left=True``).

Differences from tangermeme, where it would be silently wrong: indices out
of range and negative positions raise a ``ValueError`` naming the row
(tangermeme raises IndexError or wraps a negative position around to the
end), and duplicate deletion rows raise (tangermeme deletes the position
once). Duplicate substitution rows raise in both.
"""
from typing import Callable, Optional

import numpy
import torch

from .ersatz import _check_one_hot, _check_tensor
from .predict import predict
from .results import PerturbationResult

__all__ = ['substitution_effect', 'deletion_effect', 'insertion_effect', 'PerturbationResult']


def _rows(edits, name, width, X, alphabet_column):
    """``edits`` as an int64 (M, width) tensor with every index in range."""
    if isinstance(edits, numpy.ndarray):
        edits = torch.from_numpy(edits)
    if not isinstance(edits, torch.Tensor):
        raise ValueError(f"{name}: expected a tensor or numpy array of shape (M, {width}), got "
                         f"{type(edits).__name__}")
    if edits.is_floating_point() or edits.is_complex() or edits.dtype == torch.bool:
        raise ValueError(f"{name}: expected integer indices, got dtype {edits.dtype}")
    if edits.ndim != 2 or edits.shape[1] != width:
        raise ValueError(f"{name}: expected shape (M, {width}), got {tuple(edits.shape)}")
    edits = edits.long().cpu()
    N, A, L = X.shape
    limits = [(N, 'example index'), (L, 'position')] + ([(A, 'alphabet index')] if alphabet_column else [])
    for col, (hi, what) in enumerate(limits):
        bad = torch.nonzero((edits[:, col] < 0) | (edits[:, col] >= hi)).flatten()
        if len(bad):
            r = int(bad[0])
            raise ValueError(f"{name}: row {r} {edits[r].tolist()} has {what} {int(edits[r, col])}, "
                             f"expected 0 <= {what} < {hi}")
    return edits


def _duplicates(edits, name):
    key = edits[:, 0] * (int(edits[:, 1].max()) + 1) + edits[:, 1] if len(edits) else edits[:, 0]
    uniq, counts = torch.unique(key, return_counts=True)
    if bool((counts > 1).any()):
        k = int(uniq[counts > 1][0])
        r = int(torch.nonzero(key == k)[0])
        raise ValueError(f"{name}: more than one row for (example, position) = "
                         f"{tuple(edits[r, :2].tolist())}; each position can be edited once "
                         "(replicate the example to score several alleles)")


def _call(func, model, X, args, kwargs, extra):
    if not callable(func):
        raise ValueError(f"func: expected a callable such as predict, got {type(func).__name__}")
    if extra is not None and not isinstance(extra, dict):
        raise ValueError("additional_func_kwargs: expected a dict or None, got "
                         f"{type(extra).__name__}")
    return func(model, X, args=args, **kwargs, **dict(extra or {}))


def substitution_effect(model: torch.nn.Module, X: torch.Tensor, substitutions, args: Optional[tuple] = None,
                        func: Callable = predict, additional_func_kwargs: Optional[dict] = None,
                        **kwargs) -> PerturbationResult:
    """Apply ``func`` before and after overwriting single positions.

    Parameters
    ----------
    model : torch.nn.Module
        Passed to ``func``.
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences (all-zero N columns allowed).
    substitutions : torch.Tensor or numpy.ndarray, shape=(M, 3)
        Rows ``(example, position, alphabet index)``; all rows of an example
        are applied together, at most one per (example, position).
    args : tuple of torch.Tensor or None, optional
        Extra model inputs, passed to ``func`` as ``args=``. Default None.
    func : callable, optional
        ``func(model, X, args=args, **kwargs, **additional_func_kwargs)``.
        Default :func:`kipoi_tanger.predict.predict`.
    additional_func_kwargs : dict or None, optional
        Keywords for ``func`` whose names collide with this function's.
    **kwargs
        Passed to ``func`` (``batch_size``, ``device``, ``dtype``, ``verbose``...).

    Returns
    -------
    PerturbationResult
        ``(y_before, y_after)``.
    """
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    subs = _rows(substitutions, 'substitutions', 3, X, True)
    _duplicates(subs, 'substitutions')
    X_after = X.clone()
    i, p, c = subs[:, 0], subs[:, 1], subs[:, 2]
    X_after[i, :, p] = 0
    X_after[i, c, p] = 1
    return PerturbationResult(_call(func, model, X, args, kwargs, additional_func_kwargs),
                              _call(func, model, X_after, args, kwargs, additional_func_kwargs))


def deletion_effect(model: torch.nn.Module, X: torch.Tensor, deletions, left: bool = False,
                    args: Optional[tuple] = None, func: Callable = predict,
                    additional_func_kwargs: Optional[dict] = None, **kwargs) -> PerturbationResult:
    """Apply ``func`` before and after deleting positions.

    Parameters
    ----------
    model : torch.nn.Module
        Passed to ``func``.
    X : torch.Tensor, shape=(N, A, L + max_deletions)
        One-hot sequences, ``max_deletions`` (the most rows of any example)
        longer than the model's input.
    deletions : torch.Tensor or numpy.ndarray, shape=(M, 2)
        Rows ``(example, position)``, at most one per (example, position).
    left : bool, optional
        Trim the surplus on the left (keep the last ``L`` positions) instead
        of the right. Default False.
    args, func, additional_func_kwargs, **kwargs
        As in :func:`substitution_effect`.

    Returns
    -------
    PerturbationResult
        ``y_before`` on ``X`` trimmed to ``L`` columns on the same side,
        ``y_after`` on the sequences with the deletions, trimmed likewise.
    """
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    dels = _rows(deletions, 'deletions', 2, X, False)
    _duplicates(dels, 'deletions')
    N, A, Lx = X.shape
    counts = torch.bincount(dels[:, 0], minlength=N)
    n_max = int(counts.max()) if len(dels) else 0
    L = Lx - n_max
    if L < 1:
        raise ValueError(f"deletions: an example loses {n_max} of its {Lx} positions; nothing "
                         "would be left")
    keep = torch.ones(N, Lx, dtype=torch.bool)
    keep[dels[:, 0], dels[:, 1]] = False
    # per example: the kept positions, then its share of the trim on the chosen side
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)   # kept first, in order
    n_kept = (Lx - counts).unsqueeze(1)
    ar = torch.arange(L).unsqueeze(0)
    cols = order.gather(1, (n_kept - L + ar) if left else ar.expand(N, L))
    X_after = X.gather(2, cols.to(X.device).unsqueeze(1).expand(N, A, L))
    X_before = X[:, :, n_max:] if left else X[:, :, :L]
    return PerturbationResult(_call(func, model, X_before, args, kwargs, additional_func_kwargs),
                              _call(func, model, X_after, args, kwargs, additional_func_kwargs))


def insertion_effect(model: torch.nn.Module, X: torch.Tensor, insertions, left: bool = False,
                     args: Optional[tuple] = None, func: Callable = predict,
                     additional_func_kwargs: Optional[dict] = None, **kwargs) -> PerturbationResult:
    """Apply ``func`` before and after inserting bases.

    Parameters
    ----------
    model : torch.nn.Module
        Passed to ``func``.
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences.
    insertions : torch.Tensor or numpy.ndarray, shape=(M, 3)
        Rows ``(example, position, alphabet index)``: insert the base before
        ``position`` of the original sequence (``0 <= position < L``). Rows
        at one position go in reverse of the order given (insert ``S`` as
        ``S[-1], ..., S[0]``).
    left : bool, optional
        Trim the grown sequences on the left (keep the last ``L``) instead of
        the right. Default False.
    args, func, additional_func_kwargs, **kwargs
        As in :func:`substitution_effect`.

    Returns
    -------
    PerturbationResult
        ``y_before`` on ``X``, ``y_after`` on the sequences with the
        insertions, trimmed back to ``L``.
    """
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    ins = _rows(insertions, 'insertions', 3, X, True)
    N, A, L = X.shape
    X_after = X.clone()
    for k in torch.unique(ins[:, 0]).tolist():
        rows = ins[ins[:, 0] == k]
        # sort by position; within a position the last row given comes first
        order = sorted(range(len(rows)), key=lambda r: (int(rows[r, 1]), -r))
        pieces, prev = [], 0
        for r in order:
            p, c = int(rows[r, 1]), int(rows[r, 2])
            pieces.append(X[k, :, prev:p])
            col = torch.zeros(A, 1, dtype=X.dtype, device=X.device)
            col[c] = 1
            pieces.append(col)
            prev = p
        pieces.append(X[k, :, prev:])
        grown = torch.cat(pieces, dim=1)
        X_after[k] = grown[:, -L:] if left else grown[:, :L]
    return PerturbationResult(_call(func, model, X, args, kwargs, additional_func_kwargs),
                              _call(func, model, X_after, args, kwargs, additional_func_kwargs))
