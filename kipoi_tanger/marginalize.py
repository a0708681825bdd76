"""Marginalization: apply a function before and after substituting a motif.

Mirrors ``tangermeme.marginalize.marginalize`` (1.6.0): two full calls of
``func`` (``predict`` by default), one on ``X`` and one on
``substitute(X, motif, start)``, returned as ``PerturbationResult(y_before,
y_after)``. Any keyword that ``func`` takes passes through, so it nests inside
``apply_pairwise``/``apply_product`` (which call it with ``args=``,
``batch_size=``, ``device=``, ``verbose=``) and runs ``deep_lift_shap`` with
``func=deep_lift_shap``.
"""
from .ersatz import _check_tensor, substitute
from .predict import predict
from .results import PerturbationResult

__all__ = ['marginalize', 'PerturbationResult']


def marginalize(model, X, motif, start=None, alphabet=['A', 'C', 'G', 'T'], func=predict,
                additional_func_kwargs=None, **kwargs):
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
        ``dtype``, ``verbose``, ...).

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
    if not callable(func):
        raise ValueError(f"func: expected a callable such as predict or deep_lift_shap, got "
                         f"{type(func).__name__}")
    if additional_func_kwargs is not None and not isinstance(additional_func_kwargs, dict):
        raise ValueError("additional_func_kwargs: expected a dict or None, got "
                         f"{type(additional_func_kwargs).__name__}")
    extra = dict(additional_func_kwargs or {})

    X_perturb = substitute(X, motif, start=start, alphabet=alphabet)  # validates X and motif
    y_before = func(model, X, **kwargs, **extra)
    y_after = func(model, X_perturb, **kwargs, **extra)
    return PerturbationResult(y_before, y_after)
