"""Marginalization: apply a function before and after substituting a motif.

Mirrors ``tangermeme.marginalize`` (1.6.0). :func:`marginalize` makes two full
calls of ``func`` (``predict`` by default), one on ``X`` and one on
``substitute(X, motif, start)``, returned as ``PerturbationResult(y_before,
y_after)``. Any keyword that ``func`` takes passes through, so it nests inside
``apply_pairwise``/``apply_product`` (which call it with ``args=``,
``batch_size=``, ``device=``, ``verbose=``) and runs ``deep_lift_shap`` with
``func=deep_lift_shap``. :func:`marginalize_annotations` substitutes each
annotated stretch of ``X`` into the backgrounds ``X0`` in turn.
"""
from typing import Any, Callable, Optional

import torch

from ._base import check_batch_size, check_func_kwargs, split_rows, stack_outputs, tile_args
from .ersatz import _check_one_hot, _check_tensor, substitute
from .predict import predict
from .results import PerturbationAnnotationsResult, PerturbationResult

__all__ = ['marginalize', 'marginalize_annotations', 'PerturbationResult',
           'PerturbationAnnotationsResult']


def marginalize(model: torch.nn.Module, X: torch.Tensor, motif, start: Optional[int] = None,
                alphabet=['A', 'C', 'G', 'T'], func: Callable = predict,
                additional_func_kwargs: Optional[dict] = None,
                **kwargs: Any) -> PerturbationResult:
    """Apply ``func`` to ``X`` before and after substituting ``motif`` into it.

    Parameters
    ----------
    model : torch.nn.Module
        The model handed to ``func``.
    X : torch.Tensor, shape=(N, A, L)
        One-hot background sequences (all-zero N columns are allowed).
    motif : str or torch.Tensor
        A string encoded with ``alphabet`` where ``N`` keeps the original base,
        or a one-hot tensor ``(1, A, m)`` (same motif for every sequence) or
        ``(N, A, m)`` (one per sequence), all-zero columns keeping the base.
    start : int or None, optional
        Motif start; None centres it at ``L // 2 - m // 2``. Default None.
    alphabet : list of str, optional
        One character per row of ``X``; its length must equal ``A``.
        Default ACGT.
    func : callable, optional
        ``func(model, X, **kwargs, **additional_func_kwargs)``; default
        :func:`kipoi_tanger.predict.predict`. ``deep_lift_shap`` works too.
    additional_func_kwargs : dict or None, optional
        Keywords for ``func`` whose names collide with this function's own
        parameters (or with ``apply_pairwise``'s, e.g. ``{'func': deep_lift_shap}``
        there). A key also given in ``kwargs`` raises ``TypeError``. It is
        not modified. Default None.
    **kwargs
        Passed to ``func`` unchanged (``args``, ``batch_size``, ``device``,
        ``dtype``, ``verbose``, ...). As in tangermeme, a non-sequence ``args``
        raises a TypeError (from ``predict``).

    Returns
    -------
    PerturbationResult
        ``(y_before, y_after)``: ``func``'s output on ``X`` and on the
        substituted sequences (lists for multi-output models).
    """
    _check_tensor(X)
    if len(alphabet) != X.shape[1]:
        raise ValueError(f"alphabet: has {len(alphabet)} characters but X has {X.shape[1]} rows "
                         "on axis 1")
    extra = check_func_kwargs(func, additional_func_kwargs)
    X_perturb = substitute(X, motif, start=start, alphabet=alphabet)  # validates X and motif
    y_before = func(model, X, **kwargs, **extra)
    y_after = func(model, X_perturb, **kwargs, **extra)
    return PerturbationResult(y_before, y_after)


def _check_annotations(annotations, X, name='annotations'):
    """``(n, 3)`` int64 rows ``(example, start, end)`` that are spans of ``X``."""
    if isinstance(annotations, torch.Tensor):
        A = annotations.detach().cpu()
    else:
        try:
            A = torch.as_tensor(annotations)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name}: expected an (n, 3) integer tensor of (example, start, end) "
                             f"rows, got {type(annotations).__name__}")
    if A.ndim != 2 or A.shape[1] != 3:
        raise ValueError(f"{name}: expected shape (n, 3) of (example, start, end) rows, got "
                         f"{tuple(A.shape)}")
    if A.is_floating_point() or A.dtype == torch.bool or A.is_complex():
        raise ValueError(f"{name}: expected integer (example, start, end) rows, got {A.dtype}")
    if A.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one annotation (a non-empty (n, 3) tensor)")
    A = A.long()
    e, s, t = A.unbind(1)
    bad = (e < 0) | (e >= X.shape[0]) | (s < 0) | (t <= s) | (t > X.shape[-1])
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0])
        raise ValueError(f"{name}: row {i} {tuple(A[i].tolist())} is not a non-empty span of an "
                         f"example (0 <= example < {X.shape[0]}, 0 <= start < end <= "
                         f"{X.shape[-1]})")
    return A


def marginalize_annotations(model: torch.nn.Module, X: torch.Tensor, X0: torch.Tensor,
                            annotations, **kwargs: Any) -> PerturbationAnnotationsResult:
    """Marginalize every annotated stretch of ``X`` into the backgrounds ``X0``.

    For annotation ``(i, s, e)`` the stretch ``X[i, :, s:e]`` is substituted
    into every sequence of ``X0`` by :func:`marginalize` (at ``start``, by
    default in the middle; its own position in ``X`` is not used), one
    annotation at a time.

    Parameters
    ----------
    model : torch.nn.Module
        The model handed to ``func``.
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences the annotations refer to.
    X0 : torch.Tensor, shape=(N0, A, L0)
        One-hot backgrounds the stretches are substituted into.
    annotations : torch.Tensor, shape=(n, 3)
        Integer rows ``(example index, start, end)``, ``end`` exclusive. Each
        must be a non-empty span of an example of ``X`` (tangermeme silently
        clips or skips the others).
    **kwargs
        Passed to :func:`marginalize`: ``start``, ``alphabet``, ``func``,
        ``additional_func_kwargs`` and ``func``'s own keywords (``args``
        aligned with ``X0``, ``batch_size``, ``device``, ...).

    Returns
    -------
    PerturbationAnnotationsResult
        ``(y_befores, y_afters)``, each ``(n, N0, ...)`` (lists for
        multi-output models).

    Notes
    -----
    With the default ``func=predict``, ``y_before`` is computed once (it does
    not depend on the annotation) and the substituted backgrounds of several
    annotations share forward passes, so the result equals tangermeme's up to
    float rounding; any other ``func`` is called twice per annotation, as in
    tangermeme.
    """
    _check_tensor(X)
    _check_tensor(X0, 'X0')
    _check_one_hot(X, 'X', allow_N=True)
    if X.shape[1] != X0.shape[1]:
        raise ValueError(f"X0: has {X0.shape[1]} characters on axis 1 but X has {X.shape[1]}")
    A = _check_annotations(annotations, X)
    motifs = [X[i:i + 1, :, s:e] for i, s, e in A.tolist()]
    func = kwargs.get('func', predict)
    if func is not predict or kwargs.get('additional_func_kwargs'):
        results = [marginalize(model, X0, m, **kwargs) for m in motifs]
        return PerturbationAnnotationsResult(stack_outputs([r.y_before for r in results]),
                                             stack_outputs([r.y_after for r in results]))

    rest = {k: v for k, v in kwargs.items() if k not in ('start', 'alphabet', 'func',
                                                         'additional_func_kwargs')}
    start, alphabet = kwargs.get('start'), kwargs.get('alphabet', ['A', 'C', 'G', 'T'])
    L0, longest = X0.shape[-1], int((A[:, 2] - A[:, 1]).max())
    if longest > L0 - (0 if start is None else start):
        raise ValueError(f"annotations: a stretch of {longest} positions does not fit in X0 "
                         f"(length {L0}" + (f", start={start})" if start is not None else ")"))
    y0 = predict(model, X0, **rest)
    # Several annotations per forward pass: about batch_size substituted backgrounds.
    group = max(1, check_batch_size(rest.get('batch_size', 32)) // len(X0))
    afters = []
    for g0 in range(0, len(motifs), group):
        Xs = torch.cat([substitute(X0, m, start=start, alphabet=alphabet)
                        for m in motifs[g0:g0 + group]])
        y = predict(model, Xs, **tile_args(rest, len(Xs) // len(X0)))
        afters.extend(split_rows(y, len(X0)))
    return PerturbationAnnotationsResult(stack_outputs([y0] * len(motifs)), stack_outputs(afters))
