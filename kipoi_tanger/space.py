"""Spacing experiments: apply a function after substituting several motifs
at each of a set of spacings.

Mirrors ``tangermeme.space`` (1.6.0): ``func`` (``predict`` by default) on the
backgrounds ``X`` and on ``multisubstitute(X, motifs, spacing_row, start)``
for every row of ``spacing``, returned as ``SpaceResult(y_before (N, ...),
y_afters (N, n_spacings, ...))``. Where :mod:`kipoi_tanger.marginalize` gives
the marginal effect of one motif, this shows how motifs interact with
distance.
"""
from typing import Any, Callable, Optional

import numpy
import torch
from tqdm.auto import tqdm

from ._base import (cat_outputs, check_batch_size, check_func_kwargs, reshape_rows,
                    stack_outputs, tile_args)
from .ersatz import _check_one_hot, _check_tensor, _motif_tensor, multisubstitute
from .predict import predict
from .results import SpaceResult

__all__ = ['space', 'SpaceResult']


def _spacing_rows(spacing, n_motifs):
    """``spacing`` as an int64 ``(S, n_motifs - 1)`` array, checked."""
    if isinstance(spacing, torch.Tensor):
        spacing = spacing.detach().cpu().numpy()
    try:
        S = numpy.asarray(spacing)
    except (TypeError, ValueError):
        raise ValueError(f"spacing: expected an (n_spacings, {n_motifs - 1}) integer array, got "
                         f"{type(spacing).__name__}")
    if S.ndim != 2 or S.shape[1] != n_motifs - 1:
        raise ValueError(f"spacing: expected shape (n_spacings, {n_motifs - 1}) (one column per "
                         f"gap between the {n_motifs} motifs), got {S.shape}")
    if S.shape[0] == 0:
        raise ValueError("spacing: expected at least one row of spacings (non-empty)")
    if S.size and not (numpy.issubdtype(S.dtype, numpy.integer)
                       or (numpy.issubdtype(S.dtype, numpy.floating)
                           and numpy.array_equal(S, numpy.round(S)))):
        raise ValueError(f"spacing: expected integer spacings, got {S.dtype} values such as "
                         f"{S.ravel()[0]!r}")
    S = S.astype(numpy.int64)
    if (S < 0).any():
        raise ValueError(f"spacing: cannot be negative, got {int(S.min())}")
    return S


def space(model: torch.nn.Module, X: torch.Tensor, motifs, spacing, start: Optional[int] = None,
          alphabet=['A', 'C', 'G', 'T'], func: Callable = predict,
          additional_func_kwargs: Optional[dict] = None, verbose: bool = False,
          **kwargs: Any) -> SpaceResult:
    """Apply ``func`` to ``X`` and to ``X`` with ``motifs`` at each spacing.

    Parameters
    ----------
    model : torch.nn.Module
        The model handed to ``func``.
    X : torch.Tensor, shape=(N, A, L)
        One-hot background sequences (N columns allowed).
    motifs : list of str or torch.Tensor
        As in :func:`~kipoi_tanger.ersatz.multisubstitute` (``N`` in a string
        keeps the background's base).
    spacing : array-like, shape=(n_spacings, len(motifs) - 1)
        One row per experiment; column j is the gap between motif j and
        j + 1. Non-negative integers (integral floats are accepted, others
        refused); must be 2-D.
    start : int or None, optional
        Position of the first motif; None centres each arrangement on the
        middle of the sequence. Default None.
    alphabet : list of str, optional
        Characters of axis 1. Default ACGT.
    func : callable, optional
        ``func(model, X, **kwargs, **additional_func_kwargs)``; default
        :func:`~kipoi_tanger.predict.predict`.
    additional_func_kwargs : dict or None, optional
        Keywords for ``func`` that collide with this function's parameters.
        Not modified. Default None.
    verbose : bool, optional
        Progress bar over spacings (not passed to ``func``). Default False.
    **kwargs
        Passed to ``func`` (``args``, ``batch_size``, ``device``, ...).

    Returns
    -------
    SpaceResult
        ``y_before`` ``(N, ...)`` and ``y_afters`` ``(N, n_spacings, ...)``
        (lists for multi-output models).

    Notes
    -----
    Every spacing is checked to fit before the first forward pass. With the
    default ``func=predict`` several spacings share forward passes (results
    equal tangermeme's up to float rounding); any other ``func`` is called
    once per spacing, as in tangermeme.
    """
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    if not isinstance(motifs, (list, tuple)) or len(motifs) == 0:
        raise ValueError("motifs: expected a non-empty list of motifs (strings or one-hot tensors)")
    encoded = [_motif_tensor(m, X, alphabet, ['N']) for m in motifs]
    S = _spacing_rows(spacing, len(motifs))
    L, width = X.shape[-1], sum(m.shape[-1] for m in encoded)
    worst = int(S.sum(axis=1).max()) + width
    if worst > L - (0 if start is None else start):
        raise ValueError(f"spacing: the motifs ({width} positions) with gaps up to "
                         f"{worst - width} span {worst} positions, more than fit in the sequences "
                         f"(L={L}" + (f", start={start})" if start is not None else ")"))
    extra = check_func_kwargs(func, additional_func_kwargs)

    def perturbed(row):
        return multisubstitute(X, encoded, row.tolist(), start=start, alphabet=alphabet)

    y_before = func(model, X, **kwargs, **extra)
    if func is not predict or extra:
        y_afters = [func(model, perturbed(row), **kwargs, **extra)
                    for row in tqdm(S, disable=not verbose, desc="space", unit="spacing")]
        return SpaceResult(y_before, stack_outputs(y_afters, dim=1))

    # Several spacings per forward pass: about batch_size sequences.
    group = max(1, check_batch_size(kwargs.get('batch_size', 32)) // len(X))
    outs = []
    with tqdm(total=len(S), disable=not verbose, desc="space", unit="spacing") as bar:
        for g0 in range(0, len(S), group):
            rows = S[g0:g0 + group]
            Xs = torch.cat([perturbed(row) for row in rows])
            outs.append(predict(model, Xs, **tile_args(kwargs, len(rows))))
            bar.update(len(rows))
    # (spacing, example) order -> (example, spacing)
    y = reshape_rows(cat_outputs(outs), (len(S), len(X)))
    y_afters = (y.transpose(0, 1).contiguous() if isinstance(y, torch.Tensor)
                else [t.transpose(0, 1).contiguous() for t in y])
    return SpaceResult(y_before, y_afters)
