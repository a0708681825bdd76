"""DeepLIFT/SHAP attributions with tangermeme 1.6.0 semantics, never silently wrong.

:func:`deep_lift_shap` averages DeepLIFT multipliers over several references
per example (dinucleotide shuffles by default) and projects them onto the
one-hot alphabet (:func:`hypothetical_attributions`).

Before any work, the model is checked on a few rows of the first batch
(:mod:`kipoi_tanger._deeplift_check`): every operation on the path from ``X``
to the output must either sit in a module with a DeepLIFT rule (every
elementwise activation of ``torch.nn``, max-pooling, softmax, log-softmax, or
a rule you declare) or be affine (convolutions, linear layers, eval-mode
BatchNorm, reshapes, indexing, concatenation, sums, ...). A nonlinearity
without a rule, as a module or written in a ``forward`` (``torch.relu``,
``x * y`` of two activations, ``exp``, ...), is refused by name. Declare
rules with ``additional_nonlinear_ops`` (``{cls: rule or rule name}``) or by
name with :func:`rules_from_names`.

Examples and references normally share one forward pass (the rules live in
:mod:`kipoi_tanger._deeplift_session`): each distinct example of a chunk runs
once and its activations are shared by its references, and only the
reference rows are back-propagated, so a pair costs about one forward plus one
backward row. Models that mix the batch axis (DeepSEA/predict's
reverse-complement stacking) are detected and run with examples and
references in separate, row-aligned passes. Branches that cannot reach the
output (the profile head of a count-only wrapper) are skipped when a
``torch.fx`` trace of the model, with them removed, gives bitwise the same
output as the model on the first batch (``prune=False`` turns this off).

:func:`explain_check` runs the check and the first batch and reports the
convergence deltas and the suspects, for callers (the CLI) that refuse to
write attributions that do not add up. :func:`captum_deep_lift_shap` runs
captum's ``DeepLiftShap`` one example at a time, as a cross-check.
"""
import numbers
import warnings
from typing import Callable, Dict, Mapping, NamedTuple, Optional, Sequence, Union

import torch

from ._base import (autocast, check_args, check_batch_size, check_X, model_on, resolve_device,
                    resolve_dtype)
from .results import AttributionReferencesResult
from ._deeplift_check import checked_plan, diagnosis
from ._deeplift_prune import cached_prune, prune_dead_branches, same_outputs  # noqa: F401
from ._deeplift_rules import (BUILTIN_RULES, ELEMENTWISE, build_rules, linear_rule,  # noqa: F401
                              logsoftmax_rule, maxpool_rule, rescale_rule, softmax_rule)
from ._deeplift_rules import rules_from_names as _rules_from_names
from ._deeplift_session import PairingError, Session

__all__ = ['deep_lift_shap', 'hypothetical_attributions', 'captum_deep_lift_shap',
           '_captum_deep_lift_shap', 'AttributionReferencesResult', 'dinucleotide_shuffle',
           'explain_check', 'ExplainCheck', 'rules_from_names', 'PairingError',
           'rescale_rule', 'maxpool_rule', 'softmax_rule', 'logsoftmax_rule', 'linear_rule']


class _IndexValueError(IndexError, ValueError):
    """tangermeme raises IndexError here; a ValueError too, for callers that treat it as bad input."""


class _RuntimeValueError(RuntimeError, ValueError):
    """tangermeme raises RuntimeError here; a ValueError too, for callers that treat it as bad input."""


def dinucleotide_shuffle(X, start=0, end=-1, n=20, random_state=None, allow_N=False, verbose=False):
    """Default reference generator: :func:`kipoi_tanger.ersatz.dinucleotide_shuffle`.

    Imported at call time so this module does not depend on import order.
    """
    from .ersatz import dinucleotide_shuffle as shuffle
    return shuffle(X, start=start, end=end, n=n, random_state=random_state, allow_N=allow_N,
                   verbose=verbose)


def rules_from_names(declarations: Mapping[str, str], model: Optional[torch.nn.Module] = None,
                     module_file: Optional[str] = None, where: str = 'rules') -> Dict[type, Callable]:
    """Turn ``{class name: rule name}`` into an ``additional_nonlinear_ops`` dict.

    E.g. ``{"model.MyAct": "rescale", "model.Lambda": "linear"}``: keys name
    classes relative to the model (``Lambda``, ``<module file stem>.Lambda``)
    or as import paths (``torch.nn.Threshold``, ``pkg.mod:Cls``); values are
    ``rescale``, ``maxpool``, ``softmax``, ``logsoftmax``, ``linear`` or an
    import path ``pkg.mod:rule_function``. See
    :func:`kipoi_tanger._deeplift_rules.rules_from_names` for the full grammar.

    Parameters
    ----------
    declarations : mapping of str to str
        The declarations (e.g. read from model.yaml).
    model : torch.nn.Module, optional
        The loaded model, whose classes the names are resolved against.
    module_file : str, optional
        The model's Python file (its stem is accepted as a class prefix).
    where : str, default 'rules'
        The name of the declarations in error messages.

    Returns
    -------
    dict
        ``{class: rule}`` for ``deep_lift_shap(additional_nonlinear_ops=...)``.
    """
    return _rules_from_names(declarations, model=model, module_file=module_file, where=where)


def _is_dinucleotide_shuffle(f):
    if f is dinucleotide_shuffle:
        return True
    return (getattr(f, '__module__', None) == 'kipoi_tanger.ersatz'
            and getattr(f, '__name__', None) == 'dinucleotide_shuffle')


def _check_one_hot(T, name, dim, allow_N, only_warn=False):
    if not (T.dtype.is_floating_point or T.dtype in (torch.int8, torch.uint8, torch.int16,
                                                      torch.int32, torch.int64, torch.bool)):
        raise ValueError(f"{name}: expected a one-hot tensor, got dtype {T.dtype}")
    problems = []
    if not bool(((T == 0) | (T == 1)).all()):
        problems.append(f"{name}: must be one-hot encoded (only 0 and 1 values)")
    s = T.sum(dim=dim)
    bad = (s > 1) if allow_N else (s != 1)
    if bool(bad.any()):
        what = "at most one 1" if allow_N else "exactly one 1 (no N / all-zero columns)"
        problems.append(f"{name}: every position must have {what} along the alphabet axis")
    for p in problems:
        if not only_warn:
            raise ValueError(p)
        warnings.warn(p + " (only_warn=True: continuing)", UserWarning, stacklevel=4)


def _check_random_state(random_state):
    if random_state is None:
        return None
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise ValueError(f"random_state: expected an int or None, got {type(random_state).__name__}")
    return int(random_state)


def _squeeze_output(y, caller):
    if isinstance(y, (tuple, list)):
        raise ValueError(
            f"{caller}: the model returned a {type(y).__name__} of {len(y)} outputs, but it must return "
            "one (batch, n_targets) tensor; wrap it in a module whose forward returns a single output, "
            "e.g. only the counts head (lambda out: out[1])")
    if not isinstance(y, torch.Tensor):
        raise ValueError(f"{caller}: the model returned {type(y).__name__}; it must return a "
                         "(batch, n_targets) tensor")
    if y.ndim == 1:
        raise ValueError(f"{caller}: the model returned shape {tuple(y.shape)}; it must return "
                         "(batch, n_targets): wrap it so forward returns y.unsqueeze(1)")
    if y.ndim > 2:
        if y.shape[2:].numel() != 1:
            raise ValueError(
                f"{caller}: the model returned shape {tuple(y.shape[1:])} per example, but it must "
                "return (batch, n_targets) (trailing size-1 axes are allowed); wrap the model so it "
                "returns one value per target, e.g. sum the profile over positions "
                "(y.sum(dim=-1)) or return the counts head only")
        y = y.reshape(y.shape[0], y.shape[1])
    return y


def _check_target(target, n_targets):
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise _IndexValueError(f"target: expected an int indexing the model's outputs, got {target!r}")
    if not -n_targets <= target < n_targets:
        raise _IndexValueError(f"target: {target} is out of range for a model with {n_targets} outputs")
    return int(target)


def _chunk_references(references, X, e, k, K, start, end, random_state, given):
    """The (B, A, L) references of pairs start..end (example e, reference k)."""
    if given:
        if references.is_contiguous():
            return references.view(-1, *references.shape[2:])[start:end]
        return references[e, k]
    Xe = X.index_select(0, e)
    if random_state is None:
        # The callable draws its own seeds (numpy's global RNG for the shuffles).
        refs = references(Xe, n=1)
    elif _is_dinucleotide_shuffle(references):
        refs = references(Xe, n=1, random_state=[random_state + int(kk) for kk in k])
    else:
        refs = torch.cat([references(Xe[i:i + 1], n=1, random_state=random_state + int(kk))
                          for i, kk in enumerate(k)])
    if not isinstance(refs, torch.Tensor) or refs.ndim != 4 or refs.shape[0] != len(Xe) \
            or refs.shape[2:] != X.shape[1:]:
        raise ValueError("references: the callable must return a (n_examples, n, A, L) tensor, got "
                         f"{tuple(refs.shape) if isinstance(refs, torch.Tensor) else type(refs).__name__}")
    return refs[:, 0]


def _cast_arg(a, device, dtype):
    a = a.to(device)
    return a.to(dtype) if a.is_floating_point() and a.dtype != dtype else a


def deep_lift_shap(model: torch.nn.Module, X: torch.Tensor, args: Optional[Sequence[torch.Tensor]] = None,
                   target: int = 0, batch_size: int = 32,
                   references: Union[Callable, torch.Tensor] = dinucleotide_shuffle, n_shuffles: int = 20,
                   return_references: bool = False, hypothetical: bool = False,
                   warning_threshold: float = 0.001, additional_nonlinear_ops: Optional[dict] = None,
                   print_convergence_deltas: bool = False, raw_outputs: bool = False,
                   only_warn: bool = False, dtype: Union[str, torch.dtype, None] = None,
                   device: Union[str, torch.device, None] = None, random_state: Optional[int] = None,
                   verbose: bool = False,
                   prune: bool = True) -> Union[torch.Tensor, AttributionReferencesResult]:
    """DeepLIFT/SHAP attributions for one-hot sequences (tangermeme 1.6.0 semantics).

    The ``N * n_shuffles`` (example, reference) pairs are enumerated
    example-major and processed ``batch_size`` pairs at a time; the result
    does not depend on ``batch_size``. Before any work the model is checked on
    a few rows of the first batch; a nonlinearity without a DeepLIFT rule is
    refused by name (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        Returns a ``(batch, n_targets)`` tensor (trailing size-1 axes are
        squeezed). Every nonlinear operation on the path from ``X`` to the
        output must sit in a module with a rule (``additional_nonlinear_ops``).
    X : torch.Tensor, shape (N, A, L)
        One-hot sequences (no all-zero columns); any dtype, cast per batch.
    args : tuple of torch.Tensor, optional
        Extra model inputs with ``N`` rows; passed unchanged (no references)
        to the reference rows. Floating-point args are cast to ``dtype``.
    target : int, default 0
        Index of the output (axis 1) to explain; out of range raises IndexError.
    batch_size : int, default 32
        Number of (example, reference) pairs per forward/backward pass; it
        bounds memory and may be smaller than ``n_shuffles``.
    references : callable or torch.Tensor, default dinucleotide_shuffle
        A ``(N, n_shuffles, A, L)`` one-hot tensor (all-zero columns allowed),
        or ``f(X, n=1, random_state=...) -> (len(X), 1, A, L)``.
    n_shuffles : int, default 20
        References per example when ``references`` is callable (at least 1;
        0 raises RuntimeError, as in tangermeme).
    return_references : bool, default False
        Also return the references, as ``AttributionReferencesResult``.
    hypothetical : bool, default False
        Return the hypothetical attributions of every character instead of
        masking them with ``X``.
    warning_threshold : float, default 0.001
        A ``RuntimeWarning`` is issued if any pair's convergence delta
        ``|(f(x) - f(ref)) - sum((x - ref) * multipliers)|`` exceeds it.
    additional_nonlinear_ops : dict, optional
        ``{module class: rule}`` adding or overriding rules. A rule is a
        callable with tangermeme's signature ``rule(module, grad_input,
        grad_output) -> tuple`` (``module.input``/``module.output`` hold the
        example half stacked on the reference half) or one of the names
        ``'rescale'``, ``'maxpool'``, ``'softmax'``, ``'logsoftmax'``,
        ``'linear'`` (the module is affine: not refused, nothing inside it
        checked). :func:`rules_from_names` builds this dict from class names.
    print_convergence_deltas : bool, default False
        Print each batch's convergence deltas.
    raw_outputs : bool, default False
        Return the raw multipliers ``(N, n_shuffles, A, L)`` instead.
    only_warn : bool, default False
        Downgrade the one-hot checks of ``X`` and ``references`` to warnings
        (shape errors still raise), as tangermeme does.
    dtype : torch.dtype or str, optional
        Compute dtype (default: the model's); autocast where supported.
    device : str or torch.device, optional
        Default: CUDA if available, else CPU. The model's device and
        train/eval state are restored afterwards, also on error.
    random_state : int, optional
        Reference ``k`` of every example is drawn with seed
        ``random_state + k``, so results do not depend on ``batch_size``.
        None: fresh seeds from numpy's global RNG (torch's RNG is not used).
    verbose : bool, default False
        Show a progress bar over pairs.
    prune : bool, default True
        Skip branches that cannot reach the output (checked to give bitwise
        the same output on the first batch); False always runs the model as is.

    Returns
    -------
    torch.Tensor or AttributionReferencesResult
        ``(N, A, L)`` attributions (``(N, n_shuffles, A, L)`` multipliers with
        ``raw_outputs``), on the CPU in the compute dtype; with
        ``return_references`` a NamedTuple ``(attributions, references)``.

    Raises
    ------
    ValueError
        Bad input, or a module/operation without a DeepLIFT rule (named), or
        a model whose examples and references cannot be paired.

    Notes
    -----
    Differences from tangermeme: nonlinearities without a rule are refused
    instead of treated as linear; every elementwise ``torch.nn`` activation
    has the rescale rule; models that stack the batch axis (reverse-complement
    averaging) are paired correctly; the rules see the example and its own
    references, never rows of another example. The model runs in eval mode.
    """
    caller = 'deep_lift_shap'
    result, refs_out, deltas, diffs, plan = _attribute(
        model, X, args, target, batch_size, references, n_shuffles, return_references, hypothetical,
        additional_nonlinear_ops, print_convergence_deltas, raw_outputs, only_warn, dtype, device,
        random_state, verbose, prune, caller)
    _warn_deltas(deltas, diffs, warning_threshold, caller, plan)
    if return_references:
        return AttributionReferencesResult(result, refs_out)
    return result


def _attribute(model, X, args, target, batch_size, references, n_shuffles, return_references, hypothetical,
               additional_nonlinear_ops, print_convergence_deltas, raw_outputs, only_warn, dtype, device,
               random_state, verbose, prune, caller, max_pairs=None):
    """deep_lift_shap without the final warnings: (result, references, deltas, |output diffs|, plan).

    ``max_pairs``: stop after that many pairs (explain_check's first batch).
    """
    check_X(X)
    if X.ndim != 3:
        raise ValueError(f"X: expected shape (N, A, L), got {tuple(X.shape)}")
    _check_one_hot(X, 'X', dim=1, allow_N=False, only_warn=only_warn)
    args = check_args(X, args, surplus_rows=True)  # rows past len(X) unused, as in tangermeme
    batch_size = check_batch_size(batch_size)
    random_state = _check_random_state(random_state)
    N, A, L = X.shape

    given = isinstance(references, torch.Tensor)
    if given:
        if references.ndim != 4 or references.shape[0] != N or references.shape[2:] != X.shape[1:]:
            raise ValueError(f"references: expected shape ({N}, n_shuffles, {A}, {L}), got "
                             f"{tuple(references.shape)}")
        if references.shape[1] == 0:
            raise _RuntimeValueError(f"references: must be non-empty: at least one reference per example "
                                     f"is needed, got shape {tuple(references.shape)}")
        _check_one_hot(references, 'references', dim=2, allow_N=True, only_warn=only_warn)
        K = references.shape[1]
    elif callable(references):
        if isinstance(n_shuffles, bool) or not isinstance(n_shuffles, numbers.Integral):
            raise ValueError(f"n_shuffles: expected a positive int, got {n_shuffles!r}")
        if n_shuffles < 1:
            raise _RuntimeValueError(f"n_shuffles: expected a positive int (at least one reference per "
                                     f"example), got {n_shuffles!r}")
        K = int(n_shuffles)
    else:
        raise ValueError("references: expected a callable or a (N, n_shuffles, A, L) tensor, got "
                         f"{type(references).__name__}")

    rules = build_rules(additional_nonlinear_ops)
    device = resolve_device(device)
    dtype = resolve_dtype(model, dtype)
    n_pairs = N * K

    if raw_outputs:
        result = torch.empty(N, K, A, L, dtype=dtype)
    else:
        result = torch.empty(N, A, L, dtype=dtype)
        pending = torch.empty(K, A, L, dtype=dtype)
    refs_out = torch.empty(N, K, A, L, dtype=dtype) if return_references else None
    deltas, diffs = [], []
    plan = None

    progress = session = None
    if verbose:
        from tqdm import tqdm
        progress = tqdm(total=n_pairs, desc=caller)

    try:
        with model_on(model, device):
            session = Session(model, rules, caller)  # refuses REFUSED modules by name
            for start in range(0, n_pairs if max_pairs is None else min(n_pairs, max_pairs), batch_size):
                end = min(start + batch_size, n_pairs)
                p = torch.arange(start, end)
                e, k = p // K, p % K
                e0, e1 = int(e[0]), int(e[-1]) + 1
                groups = [(max(start, j * K) - start, min(end, (j + 1) * K) - start, j - e0)
                          for j in range(e0, e1)]
                eidx = (e - e0).to(device)

                refs = _chunk_references(references, X, e, k, K, start, end, random_state, given)
                Xx = X[e0:e1].to(device).to(dtype)
                ax = tuple(_cast_arg(a[e0:e1], device, dtype) for a in args) if args else ()
                R = refs.to(device).to(dtype)

                if start == 0:
                    plan = checked_plan(model, session.entries, rules, Xx, R, ax, groups, caller, device, dtype,
                                        lambda: autocast(device, dtype, model))
                    session.dep = plan.dep
                    session.__enter__()
                    forward = _pruned_forward(model, session, Xx, ax, device, dtype) if prune else model

                m = e1 - e0
                R.requires_grad_(True)
                if plan.mode == 'shared':
                    # One pass over the distinct examples followed by one row per
                    # pair; the hooks apply the rules and only the reference rows
                    # are back-propagated.
                    ar = tuple(torch.cat([a, a.index_select(0, eidx)]) for a in ax)
                    session.shared(m, groups, eidx)
                    with torch.enable_grad(), autocast(device, dtype, model):
                        y = _squeeze_output(forward(torch.cat([Xx, R]), *ar), caller)
                        if start == 0:
                            target = _check_target(target, y.shape[1])
                        y = y[:, target]
                        yx, yr = y[:m].index_select(0, eidx), y[m:]
                        mult = torch.autograd.grad(yr.sum(), R, allow_unused=True)[0] \
                            if yr.requires_grad else None
                else:
                    # Examples (one row per pair) and references in separate,
                    # row-aligned passes; the hooks pair the k-th call of each module.
                    ae = tuple(a.index_select(0, eidx) for a in ax)
                    session.record()
                    with torch.no_grad(), autocast(device, dtype, model):
                        yx = _squeeze_output(forward(Xx.index_select(0, eidx), *ae), caller)
                        if start == 0:
                            target = _check_target(target, yx.shape[1])
                        yx = yx[:, target]
                    session.replay()
                    with torch.enable_grad(), autocast(device, dtype, model):
                        yr = _squeeze_output(forward(R, *ae), caller)[:, target]
                        mult = torch.autograd.grad(yr.sum(), R, allow_unused=True)[0] \
                            if yr.requires_grad else None
                    session.finish()
                session.done()
                if mult is None:
                    mult = torch.zeros_like(R)
                R = R.detach()
                out_diff = yx.detach() - yr.detach()
                in_diff = ((Xx.index_select(0, eidx) - R) * mult).sum(dim=(1, 2))
                delta = (out_diff - in_diff).abs()
                deltas.append(delta.float().cpu())
                diffs.append(out_diff.float().abs().cpu())
                if print_convergence_deltas:
                    print(delta)

                if return_references:
                    refs_out.view(n_pairs, A, L)[start:end] = R.cpu()
                if raw_outputs:
                    result.view(n_pairs, A, L)[start:end] = mult.cpu()
                else:
                    hyp = (mult - (R * mult).sum(dim=1, keepdim=True)).cpu()
                    for s, t, j in groups:
                        k0, k1 = int(k[s]), int(k[t - 1]) + 1
                        if k0 == 0 and k1 == K:
                            attr = hyp[s:t].mean(dim=0)
                        else:
                            pending[k0:k1] = hyp[s:t]
                            if k1 < K:
                                continue
                            attr = pending.mean(dim=0)
                        if not hypothetical:
                            attr *= X[e0 + j].cpu()
                        result[e0 + j] = attr
                if progress is not None:
                    progress.update(end - start)
    finally:
        if session is not None:
            session.__exit__(None, None, None)
        if progress is not None:
            progress.close()
    return result, refs_out, torch.cat(deltas), torch.cat(diffs), plan


def _pruned_forward(model, session, Xx, ax, device, dtype):
    """The model without branches that cannot reach its output, if that is
    provably the same function (traced, and bitwise equal on ``Xx``)."""
    pruned = cached_prune(model, len(ax), [m for _, m, _ in session.entries])
    if pruned is None:
        return model
    with torch.no_grad(), autocast(device, dtype, model):
        try:
            y = pruned(Xx, *ax)
        except Exception:
            return model
        if same_outputs(y, model(Xx, *ax)):
            return pruned
    return model


def _delta_stats(deltas, diffs):
    finite = torch.isfinite(deltas)
    worst = deltas[finite].max().item() if bool(finite.any()) else float('nan')
    mean_diff = diffs.mean().clamp_min(1e-12)
    relative = (deltas[finite].mean() / mean_diff).item() if bool(finite.any()) else float('inf')
    return finite, worst, relative


def _warn_deltas(deltas, diffs, warning_threshold, caller, plan=None):
    finite, worst, relative = _delta_stats(deltas, diffs)
    high = ~finite | (deltas > warning_threshold)
    if bool(high.any()):
        warnings.warn(f"{caller}: convergence deltas too high: {int(high.sum())} of {len(deltas)} "
                      f"example-reference pairs exceed warning_threshold={warning_threshold:g} "
                      f"(max {worst:.3g}{', some non-finite' if not bool(finite.all()) else ''}); "
                      f"suspects: {diagnosis(plan)}", RuntimeWarning, stacklevel=3)
    if relative > 0.01:
        warnings.warn(f"{caller}: convergence deltas are {relative:.1%} of the output differences: some part "
                      "of the model has no DeepLIFT rule that fits it and is being treated as linear; "
                      f"suspects: {diagnosis(plan)}", RuntimeWarning, stacklevel=3)


class ExplainCheck(NamedTuple):
    """What :func:`explain_check` found on the first batch."""
    ok: bool                    # every delta finite and <= warning_threshold
    mode: str                   # 'shared' or 'separate' forward passes
    max_delta: float            # largest convergence delta
    relative: float             # mean delta / mean |f(x) - f(ref)|
    deltas: torch.Tensor        # (n_pairs,) convergence deltas of the first batch
    output_diffs: torch.Tensor  # (n_pairs,) |f(x) - f(ref)|
    suspects: str               # modules/operations to suspect, named
    message: str                # one line for an error message or a log


def explain_check(model: torch.nn.Module, X: torch.Tensor, args: Optional[Sequence[torch.Tensor]] = None,
                  target: int = 0, batch_size: int = 32,
                  references: Union[Callable, torch.Tensor] = dinucleotide_shuffle, n_shuffles: int = 20,
                  warning_threshold: float = 0.001, additional_nonlinear_ops: Optional[dict] = None,
                  dtype: Union[str, torch.dtype, None] = None, device: Union[str, torch.device, None] = None,
                  random_state: Optional[int] = None, prune: bool = True) -> ExplainCheck:
    """Check a model and run DeepLIFT/SHAP on the first batch only, without warnings.

    Meant for callers that must not write attributions that do not add up
    (the CLI): call it on the first batch of the real run with the same
    arguments; it raises what :func:`deep_lift_shap` would raise (a module
    without a rule, named; a model that cannot be paired) and otherwise
    reports the first ``batch_size`` pairs' convergence deltas.

    Parameters
    ----------
    model, X, args, target, batch_size, references, n_shuffles : see deep_lift_shap
    additional_nonlinear_ops, dtype, device, random_state, prune : see deep_lift_shap
        As for :func:`deep_lift_shap`; only the first ``batch_size`` pairs are
        attributed (``references`` may be the full ``(N, n_shuffles, A, L)``
        tensor).
    warning_threshold : float, default 0.001
        ``ok`` is False when a delta exceeds it or is not finite.

    Returns
    -------
    ExplainCheck
        ``ok``, the pairing ``mode``, ``max_delta``, ``relative`` (mean delta
        over mean output difference), the ``deltas`` and ``output_diffs`` of
        every pair, ``suspects`` (modules declared linear or given user rules,
        operations found affine on this batch only, things the check could not
        follow) and a one-line ``message``.

    Raises
    ------
    ValueError
        As :func:`deep_lift_shap`.
    """
    caller = 'deep_lift_shap'
    check_X(X)
    K = references.shape[1] if isinstance(references, torch.Tensor) and references.ndim == 4 else n_shuffles
    n_ex = X.shape[0]
    if isinstance(K, numbers.Integral) and not isinstance(K, bool) and K >= 1:
        n_ex = min(X.shape[0], -(-check_batch_size(batch_size) // int(K)))
    sub = lambda t: t[:n_ex] if isinstance(t, torch.Tensor) and t.ndim and t.shape[0] == X.shape[0] else t  # noqa: E731
    args_sub = check_args(X, args, surplus_rows=True)
    args_sub = tuple(sub(a) for a in args_sub) if args_sub else None
    _, _, deltas, diffs, plan = _attribute(
        model, X[:n_ex], args_sub, target, batch_size, sub(references), n_shuffles, False, False,
        additional_nonlinear_ops, False, True, False, dtype, device, random_state, False, prune, caller,
        max_pairs=batch_size)
    finite, worst, relative = _delta_stats(deltas, diffs)
    ok = bool(finite.all()) and worst <= warning_threshold
    suspects = diagnosis(plan)
    if ok:
        message = (f"{caller}: first batch of {len(deltas)} pairs adds up: max convergence delta {worst:.2g} "
                   f"<= {warning_threshold:g} ({plan.mode} forward passes)")
    else:
        message = (f"{caller}: the attributions do not add up on the first batch: max convergence delta "
                   f"{worst:.3g} > {warning_threshold:g}"
                   f"{' (some non-finite)' if not bool(finite.all()) else ''}, {relative:.1%} of the output "
                   f"differences; suspects: {suspects}")
    return ExplainCheck(ok, plan.mode, worst, relative, deltas, diffs, suspects, message)


def hypothetical_attributions(multipliers, X, references):
    """Project multipliers onto every character of a one-hot alphabet.

    For each pair, the hypothetical contribution of character ``c`` at
    position ``l`` is ``sum_a (onehot_c - ref)[a, l] * mult[a, l]``, i.e.
    ``mult[c, l] - sum_a ref[a, l] * mult[a, l]``: the effect of placing
    ``c`` there instead of the reference column.

    Parameters
    ----------
    multipliers, X, references : tuple of one torch.Tensor, shape (n, A, L)
        One-element tuples (captum's ``custom_attribution_func`` convention).
        ``X`` only sets the result dtype and device.

    Returns
    -------
    tuple of one torch.Tensor, shape (n, A, L)
    """
    for name, val in (('multipliers', multipliers), ('X', X), ('references', references)):
        if not isinstance(val, tuple) or len(val) != 1:
            raise ValueError(f"hypothetical_attributions: {name} must be a one-element tuple")
        if not isinstance(val[0], torch.Tensor):
            raise ValueError(f"hypothetical_attributions: {name}[0] must be a torch.Tensor")
        if val[0].shape != multipliers[0].shape:
            raise ValueError(f"hypothetical_attributions: {name}[0] has shape {tuple(val[0].shape)}, "
                             f"expected {tuple(multipliers[0].shape)} like multipliers[0]")
    m, r = multipliers[0], references[0]
    out = m - (r * m).sum(dim=1, keepdim=True)
    dtype = X[0].dtype if X[0].is_floating_point() else out.dtype
    return (out.to(device=X[0].device, dtype=dtype),)


def captum_deep_lift_shap(model, X, args=None, target=0, batch_size=32, references=dinucleotide_shuffle,
                          n_shuffles=20, return_references=False, hypothetical=False, device=None,
                          random_state=None, verbose=False):
    """DeepLIFT/SHAP through captum's ``DeepLiftShap``, one example at a time (a cross-check).

    Same reference contract as :func:`deep_lift_shap`, except that a callable
    is called once per example as ``references(x, n=n_shuffles,
    random_state=random_state)``, so with a seed the references differ from
    ``deep_lift_shap``'s: compare the two with an explicit references tensor.
    ``batch_size`` is ignored. captum is an optional dependency; its max-pool
    rule differs from this package's (it misses completeness on pooling
    models). The model's device and train/eval state are restored.

    Returns
    -------
    torch.Tensor or AttributionReferencesResult
        ``(N, A, L)`` attributions on the CPU (and the ``(N, n_shuffles, A, L)``
        references with ``return_references``).
    """
    try:
        from captum.attr import DeepLiftShap
    except ImportError as err:
        raise ImportError("captum_deep_lift_shap requires captum, which is not installed; "
                          "install it with `pip install captum`") from err
    check_X(X)
    if X.ndim != 3:
        raise ValueError(f"X: expected shape (N, A, L), got {tuple(X.shape)}")
    args = check_args(X, args)
    random_state = _check_random_state(random_state)
    given = isinstance(references, torch.Tensor)
    if given and (references.ndim != 4 or references.shape[0] != X.shape[0]
                  or references.shape[2:] != X.shape[1:]):
        raise ValueError(f"references: expected shape ({X.shape[0]}, n_shuffles, {X.shape[1]}, "
                         f"{X.shape[2]}), got {tuple(references.shape)}")
    if not given and not callable(references):
        raise ValueError("references: expected a callable or a (N, n_shuffles, A, L) tensor, got "
                         f"{type(references).__name__}")
    device = resolve_device(device)
    dtype = resolve_dtype(model)

    attributions, refs_out = [], []
    iterator = range(len(X))
    if verbose:
        from tqdm import tqdm
        iterator = tqdm(iterator, desc='captum_deep_lift_shap')
    with model_on(model, device):
        explainer = DeepLiftShap(model)
        for i in iterator:
            x = X[i:i + 1].to(device).to(dtype)
            a = None if args is None else tuple(_cast_arg(t[i:i + 1], device, dtype) for t in args)
            if given:
                r = references[i]
            else:
                r = references(X[i:i + 1], n=n_shuffles, random_state=random_state)[0]
            r = r.to(device).to(dtype)
            attr = explainer.attribute(x, r, target=target, additional_forward_args=a,
                                       custom_attribution_func=hypothetical_attributions)
            if not hypothetical:
                attr = attr * x
            attributions.append(attr.detach().cpu())
            if return_references:
                refs_out.append(r.unsqueeze(0).cpu())
    attributions = torch.cat(attributions)
    if return_references:
        return AttributionReferencesResult(attributions, torch.cat(refs_out))
    return attributions


# tangermeme's name for the captum path.
_captum_deep_lift_shap = captum_deep_lift_shap
