"""Batched, memory-efficient predictions from any PyTorch model.

``predict`` mirrors ``tangermeme.predict.predict`` (1.6.0); ``predict_cross``
keeps the behaviour documented in the predict tutorial (tangermeme removed it
in 0.2.0): predictions for every example of ``X`` crossed with every element
of the (index-paired) ``args``.
"""
from typing import Callable, List, Optional, Sequence, Union

import torch
from tqdm.auto import tqdm

from ._base import (autocast, check_args, check_batch_size, check_X, model_on,
                    resolve_device, resolve_dtype, split_output, to_device)


def _append(outputs, y, rows):
    """Accumulate one batch's output, checking that its kind does not change
    and that every tensor has one row per example of the batch."""
    kind, y = split_output(y)
    for i, t in enumerate([y] if kind == 'tensor' else y):
        if t.ndim == 0 or t.shape[0] != rows:
            what = "the model's output" if kind == 'tensor' else f"output {i} of the model"
            raise ValueError(f"Cannot interpret output from model: {what} (after func) has shape "
                             f"{tuple(t.shape)} for a batch of {rows} examples; expected {rows} "
                             "rows, one per example")
    if outputs is None:
        return kind, ([y.cpu()] if kind == 'tensor' else [[t.cpu()] for t in y])
    prev_kind, acc = outputs
    if kind != prev_kind or (kind == 'list' and len(y) != len(acc)):
        raise ValueError("Cannot interpret output from model: its structure changed between batches")
    if kind == 'tensor':
        acc.append(y.cpu())
    else:
        for a, t in zip(acc, y):
            a.append(t.cpu())
    return outputs


def _concatenate(outputs):
    kind, acc = outputs
    if kind == 'tensor':
        return acc[0] if len(acc) == 1 else torch.cat(acc)
    return [a[0] if len(a) == 1 else torch.cat(a) for a in acc]


def predict(model: torch.nn.Module, X: torch.Tensor, args: Optional[Sequence[torch.Tensor]] = None,
            func: Optional[Callable] = None, batch_size: int = 32,
            dtype: Union[str, torch.dtype, None] = None,
            device: Union[str, torch.device, None] = None,
            verbose: bool = False) -> Union[torch.Tensor, List[torch.Tensor]]:
    """Make batched predictions for ``X`` (and aligned extra inputs) with ``model``.

    Batches ``X[s:e]`` (and ``a[s:e]`` for every ``a`` in ``args``) are moved to
    ``device``, cast to ``dtype`` and passed as ``model(X_, *args_)`` under
    ``torch.no_grad()``; outputs are moved back to the CPU and concatenated.

    Parameters
    ----------
    model : torch.nn.Module
        Any module; multi-input models receive ``args`` positionally after ``X``.
    X : torch.Tensor, shape=(N, ...)
        Inputs, usually one-hot sequences ``(N, A, L)``. Narrow integer dtypes
        (int8) are moved to the device first and cast there.
    args : tuple of torch.Tensor or None, optional
        Extra inputs, each with ``N`` rows (aligned with ``X``). Cast to ``dtype``
        like ``X``. Anything but a tuple/list of tensors raises a TypeError (a
        ValueError too), as in tangermeme. Default None.
    func : callable or None, optional
        Applied to each batch's raw output (on the device) before it is moved to
        the CPU, e.g. to select one output of a multi-output model. Default None.
    batch_size : int, optional
        Examples per forward pass. Default 32.
    dtype : torch.dtype, str or None, optional
        Compute dtype. None uses the model's parameter dtype. bfloat16/float16
        run under autocast where torch supports it. Default None.
    device : str, torch.device or None, optional
        None picks CUDA when available, else CPU. Default None.
    verbose : bool, optional
        Show a tqdm progress bar over batches. Default False.

    Returns
    -------
    torch.Tensor or list of torch.Tensor
        ``(N, ...)`` for a tensor output; a list with one ``(N, ...)`` tensor per
        output for models returning a tuple or list.

    Notes
    -----
    The model is put in eval mode on ``device`` for the call; its device and
    train/eval state are restored afterwards, also when an exception is raised.
    """
    check_X(X)
    args = check_args(X, args, aligned=True) or ()
    batch_size = min(check_batch_size(batch_size), len(X))
    device = resolve_device(device)
    dtype = resolve_dtype(model, dtype)

    outputs = None
    with model_on(model, device), torch.no_grad(), autocast(device, dtype, model):
        for start in tqdm(range(0, len(X), batch_size), disable=not verbose,
                          desc="predict", unit="batch"):
            end = start + batch_size
            X_ = to_device(X[start:end], device, dtype)
            args_ = [to_device(a[start:end], device, dtype) for a in args]
            y = model(X_, *args_)
            if func is not None:
                y = func(y)
            outputs = _append(outputs, y, len(X_))
    return _concatenate(outputs)


def predict_cross(model: torch.nn.Module, X: torch.Tensor, args: Sequence[torch.Tensor],
                  batch_size: int = 32, dtype: Union[str, torch.dtype, None] = None,
                  device: Union[str, torch.device, None] = None,
                  verbose: bool = False) -> Union[torch.Tensor, List[torch.Tensor]]:
    """Predict every example of ``X`` against every element of ``args``.

    The tensors in ``args`` are paired with each other index-wise (they must all
    have the same length M, which need not equal ``len(X)``); pairs are
    enumerated X-major. Batches of pairs are built on the fly and discarded, so
    the ``N × M`` cross is never held in memory.

    Parameters
    ----------
    model : torch.nn.Module
        Model taking ``model(X, *args)``.
    X : torch.Tensor, shape=(N, ...)
        Inputs, usually one-hot sequences.
    args : tuple of torch.Tensor
        Extra inputs, each ``(M, ...)``.
    batch_size : int, optional
        (example, arg) pairs per forward pass. Default 32.
    dtype : torch.dtype, str or None, optional
        Compute dtype, as in :func:`predict`. Default None.
    device : str, torch.device or None, optional
        None picks CUDA when available, else CPU. Default None.
    verbose : bool, optional
        Show a progress bar over examples. Default False.

    Returns
    -------
    torch.Tensor or list of torch.Tensor
        ``(N, M, *output_shape)`` (a list of such tensors for tuple outputs).
    """
    from .product import apply_pairwise

    return apply_pairwise(predict, model, X, args, batch_size=batch_size, device=device,
                          verbose=verbose, additional_func_kwargs={'dtype': dtype})
