"""Ablation: apply a function before and after shuffling a region away.

Mirrors ``tangermeme.ablate`` (1.6.0). :func:`ablate` shuffles positions
``[start, end)`` of every sequence ``n`` times with ``shuffle_fn`` and applies
``func`` (``predict`` by default) to the originals and to the shuffles:
``PerturbationResult(y_before (N, ...), y_after (N, n, ...))``.
:func:`ablate_annotations` ablates each annotated stretch on its own.
The conceptual opposite of :mod:`kipoi_tanger.marginalize`: remove a driver
of signal instead of adding one to a background.
"""
from typing import Any, Callable, Optional

import torch

from ._base import (cat_outputs, check_args, check_batch_size, check_func_kwargs, reshape_rows,
                    stack_outputs, takes_parameter)
from .ersatz import _check_n, _check_one_hot, _check_tensor, _resolve_window, shuffle
from .marginalize import _check_annotations
from .predict import predict
from .results import PerturbationAnnotationsResult, PerturbationResult

__all__ = ['ablate', 'ablate_annotations']


def _shuffled(X, start, end, n, shuffle_fn, random_state):
    """``shuffle_fn``'s ``(N, n, A, L)`` shuffles of ``X``, checked."""
    Y = shuffle_fn(X, start=start, end=end, n=n, random_state=random_state)
    if not isinstance(Y, torch.Tensor) or tuple(Y.shape) != (X.shape[0], n, *X.shape[1:]):
        got = tuple(Y.shape) if isinstance(Y, torch.Tensor) else type(Y).__name__
        raise ValueError(f"shuffle_fn: must return a ({X.shape[0]}, n={n}, {X.shape[1]}, "
                         f"{X.shape[2]}) tensor of shuffles, got {got}")
    return Y


def _check_window(X, start, end):
    # A negative end counts from L + 1 as in ersatz.shuffle; shuffle_fn gets it as given.
    _resolve_window(start, end, X.shape[-1])


def ablate(model: torch.nn.Module, X: torch.Tensor, start: int, end: int, n: int = 20,
           shuffle_fn: Callable = shuffle, args=None, random_state=None,
           func: Callable = predict, additional_func_kwargs: Optional[dict] = None,
           **kwargs: Any) -> PerturbationResult:
    """Apply ``func`` before and after shuffling positions ``[start, end)``.

    Parameters
    ----------
    model : torch.nn.Module
        The model handed to ``func``.
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences (N columns allowed if ``shuffle_fn`` allows them).
    start, end : int
        The ablated window, ``0 <= start < end <= L``; a negative ``end``
        counts from ``L + 1`` as in :func:`~kipoi_tanger.ersatz.shuffle`.
    n : int, optional
        Shuffles per sequence. Default 20.
    shuffle_fn : callable, optional
        Called as ``shuffle_fn(X, start=, end=, n=, random_state=)`` and
        returning ``(N, n, A, L)``: :func:`~kipoi_tanger.ersatz.shuffle`
        (default), :func:`~kipoi_tanger.ersatz.dinucleotide_shuffle`,
        :func:`~kipoi_tanger.ersatz.randomize`-like functions of your own.
    args : tuple of torch.Tensor or None, optional
        Extra model inputs with one row per example; each row is repeated for
        the example's ``n`` shuffles. Always passed to ``func`` as ``args=``.
        Default None.
    random_state : int, numpy.random.RandomState or None, optional
        Seeds the shuffles; also passed to ``func`` when ``func`` has a
        parameter of that name and ``additional_func_kwargs`` does not set
        one (e.g. ``deep_lift_shap``'s references). Default None.
    func : callable, optional
        ``func(model, X, args=..., **kwargs, **additional_func_kwargs)``;
        default :func:`~kipoi_tanger.predict.predict`.
    additional_func_kwargs : dict or None, optional
        Keywords for ``func`` that collide with this function's parameters.
        Not modified. Default None.
    **kwargs
        Passed to ``func`` (``batch_size``, ``device``, ``dtype``, ...).

    Returns
    -------
    PerturbationResult
        ``y_before`` ``(N, ...)`` and ``y_after`` ``(N, n, ...)`` (lists for
        multi-output models).
    """
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    _check_window(X, start, end)
    n = _check_n(n)
    args = check_args(X, args)
    extra = check_func_kwargs(func, additional_func_kwargs)
    if takes_parameter(func, 'random_state') and 'random_state' not in extra:
        extra['random_state'] = random_state

    X_shuffled = _shuffled(X, start, end, n, shuffle_fn, random_state)
    y_before = func(model, X, args=args, **kwargs, **extra)
    args_after = None if args is None else [a.repeat_interleave(n, dim=0) for a in args]
    y_after = func(model, X_shuffled.reshape(-1, *X.shape[1:]), args=args_after, **kwargs,
                   **extra)
    return PerturbationResult(y_before, reshape_rows(y_after, (X.shape[0], n)))


def ablate_annotations(model: torch.nn.Module, X: torch.Tensor, annotations,
                       **kwargs: Any) -> PerturbationAnnotationsResult:
    """Ablate every annotated stretch of ``X`` on its own.

    Annotation ``(i, s, e)`` is ``ablate(model, X[i:i+1], s, e, **kwargs)``.

    Parameters
    ----------
    model : torch.nn.Module
        The model handed to ``func``.
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences.
    annotations : torch.Tensor, shape=(n_annotations, 3)
        Integer rows ``(example index, start, end)``, ``end`` exclusive, each
        a non-empty span of an example.
    **kwargs
        Passed to :func:`ablate` (``n``, ``shuffle_fn``, ``random_state``,
        ``func``, ``args`` with one row per example of ``X``, ...).

    Returns
    -------
    PerturbationAnnotationsResult
        ``y_befores`` ``(n_annotations, 1, ...)`` and ``y_afters``
        ``(n_annotations, 1, n, ...)`` (lists for multi-output models).

    Notes
    -----
    The shuffles are drawn annotation by annotation, as in tangermeme, so a
    seed gives the same shuffles. With the default ``func=predict`` the
    forward passes of several annotations are shared (results equal up to
    float rounding); any other ``func`` is called twice per annotation.
    """
    _check_tensor(X)
    A = _check_annotations(annotations, X)
    args = check_args(X, kwargs.get('args'))
    func = kwargs.get('func', predict)
    if func is not predict or kwargs.get('additional_func_kwargs'):
        results = []
        for i, s, e in A.tolist():
            sub = dict(kwargs)
            if args is not None:
                sub['args'] = [a[i:i + 1] for a in args]
            results.append(ablate(model, X[i:i + 1], s, e, **sub))
        return PerturbationAnnotationsResult(stack_outputs([r.y_before for r in results]),
                                             stack_outputs([r.y_after for r in results]))

    n = _check_n(kwargs.get('n', 20))
    shuffle_fn = kwargs.get('shuffle_fn', shuffle)
    random_state = kwargs.get('random_state')
    rest = {k: v for k, v in kwargs.items()
            if k not in ('n', 'shuffle_fn', 'random_state', 'func', 'additional_func_kwargs',
                         'args')}
    _check_one_hot(X, 'X', allow_N=True)
    shuffled = []
    for i, s, e in A.tolist():  # in order: a RandomState advances as in tangermeme
        shuffled.append(_shuffled(X[i:i + 1], s, e, n, shuffle_fn, random_state)[0])
    idx = A[:, 0]
    y_before = predict(model, X[idx], args=None if args is None else [a[idx] for a in args],
                       **rest)
    # Several annotations per forward pass: about batch_size shuffles.
    group = max(1, check_batch_size(rest.get('batch_size', 32)) // n)
    afters = []
    for g0 in range(0, len(shuffled), group):
        gi = idx[g0:g0 + group].repeat_interleave(n)
        afters.append(predict(model, torch.cat(shuffled[g0:g0 + group]),
                              args=None if args is None else [a[gi] for a in args], **rest))
    return PerturbationAnnotationsResult(reshape_rows(y_before, (len(A), 1)),
                                         reshape_rows(cat_outputs(afters), (len(A), 1, n)))

