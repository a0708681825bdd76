"""In-silico saturation mutagenesis (ISM), with tangermeme 1.6.0's semantics.

``saturation_mutagenesis(model, X, ...)`` predicts every sequence with an
edit distance of one from each example within ``[start, end)`` and returns
either the raw predictions (``raw_outputs=True``:
``SaturationMutagenesisRawResult(y0, y_hat)``, ``y_hat`` shaped
``(N, A, end - start, *output_shape)``) or tangermeme's attribution: the
change in prediction, centred over the alphabet at each position, averaged
over the outputs (or ``target``), projected onto the observed bases unless
``hypothetical=True``.

Identity edits (the base already present) are not predicted: their
``y_hat`` is ``y0``, as in tangermeme. All-zero (N) columns get all ``A``
bases predicted.

The edited predictions come from one of two paths:

* **fast** (``fast=True``, the default): ``kipoi_tanger._fast_ism`` traces
  the model and recomputes only the positions each layer's receptive field
  lets an edit change (see that module). It is used when every traced op has
  a rule, the edit costs at most half a full forward's multiply-adds, and the
  dtype is the model's own float32/float64 (no autocast); then one batch of
  edits at both ends of the span of the first sequence is computed both ways
  and compared (within 1e-5 of the output scale for float32, 1e-10 for
  float64). Otherwise — or if they disagree, which is logged and warned —
  the job runs on full forwards.
* **full**: one forward pass per edited sequence, ``batch_size`` edits per
  pass.

Unlike tangermeme, the fast path is considered for any job size (tracing
takes milliseconds) and the attribution is accumulated batch by batch, so
``raw_outputs=False`` never holds ``y_hat`` in memory. Inputs must be one-hot
with optional all-zero columns; anything else is an error (tangermeme
truncates to int8 with a warning).

For an op object that streams regions: call this function once per batch of
regions (``raw_outputs=True`` to write ``y_hat``); the fast path's trace and
check cost a few milliseconds and one batch of full forwards per call.
"""
import logging
import numbers
import warnings
from typing import Callable, List, NamedTuple, Optional, Union

import torch
from tqdm.auto import tqdm

from ._base import (autocast, check_args, check_batch_size, check_X, model_on, model_param_dtype,
                    resolve_device, resolve_dtype, split_output, to_device)
from .predict import predict

__all__ = ['saturation_mutagenesis', 'SaturationMutagenesisRawResult']

log = logging.getLogger(__name__)

TensorOrList = Union[torch.Tensor, List[torch.Tensor]]

# reference activations kept per chunk of sequences on the fast path
_REF_BUDGET_BYTES = 256 * 2 ** 20
# sites (at each end of the first sequence's span, together) checked against full forwards
_CHECK_SITES = 8
# fast-path tolerance against full forwards, relative to the largest |output|
_TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


class SaturationMutagenesisRawResult(NamedTuple):
    """Predictions on the original sequences and on every single-base edit."""
    y0: TensorOrList
    y_hat: TensorOrList


def _check_one_hot(X):
    check_X(X)
    if X.ndim != 3:
        raise ValueError(f"X: expected one-hot sequences (N, A, L), got shape {tuple(X.shape)}")
    if X.is_floating_point() and not bool(((X == 0) | (X == 1)).all()):
        raise ValueError("X: expected a one-hot encoding (values 0 or 1), found other values")
    if not X.is_floating_point() and not bool(((X == 0) | (X == 1)).all()):
        raise ValueError("X: expected a one-hot encoding (values 0 or 1), found other values")
    if bool((X.sum(dim=1) > 1).any()):
        raise ValueError("X: expected a one-hot encoding, found a column with several ones")


def _span(start, end, L):
    if isinstance(start, bool) or isinstance(end, bool) or \
            not isinstance(start, numbers.Integral) or not isinstance(end, numbers.Integral):
        raise ValueError(f"start, end: expected integers, got {start!r}, {end!r}")
    start, end = int(start), int(end)
    e = L + 1 + end if end < 0 else end
    if not 0 <= start < e <= L:
        raise ValueError(f"start and end must satisfy 0 <= start < end <= length; got start={start}, "
                         f"end={e} for length {L}")
    return start, e


class _Full:
    """Edits by full forward passes."""

    def __init__(self, model, func):
        self.model, self.func = model, func

    def reference(self, X, args):
        self.X, self.args = X, args

    def edits(self, site_seq, site_pos, ref_base, alt, K):
        seq = site_seq.repeat_interleave(K)
        pos = site_pos.repeat_interleave(K)
        Xm = self.X.index_select(0, seq)
        rows = torch.arange(len(seq), device=Xm.device)
        Xm[rows, :, pos] = 0
        Xm[rows, alt, pos] = 1
        y = self.model(Xm, *[a.index_select(0, seq) for a in self.args])
        if self.func is not None:
            y = self.func(y)
        kind, y = split_output(y)
        return [y] if kind == 'tensor' else list(y)


def _agree(fast, full, dtype):
    """Largest |fast - full| relative to the largest |full| over every output
    (inf when the structure or the non-finite entries differ)."""
    if len(fast) != len(full):
        return float('inf')
    worst = 0.0
    for a, b in zip(fast, full):
        if a.shape != b.shape:
            return float('inf')
        fa, fb = torch.isfinite(a), torch.isfinite(b)
        if not torch.equal(fa, fb) or not torch.equal(a[~fa], b[~fb]):
            return float('inf')
        if fb.any():
            scale = float(b[fb].abs().max())
            err = float((a[fa] - b[fb]).abs().max())
            worst = max(worst, err / scale if scale > 0 else (0.0 if err == 0 else float('inf')))
    return worst


class _Sites:
    """Every (sequence, position) of the span, grouped by how many edits they
    take: A - 1 where a base is present, A at all-zero columns."""

    def __init__(self, X, start, end):
        N, A, _ = X.shape
        cols = X[:, :, start:end]
        self.ref = torch.where(cols.sum(dim=1) > 0, cols.argmax(dim=1), torch.full((), -1)).long()
        self.A = A
        eye = torch.arange(A)
        self.alt_table = torch.stack([eye[eye != r] for r in range(A)]) if A > 1 else None

    def group(self, n0, n1, with_base):
        sel = (self.ref[n0:n1] >= 0) if with_base else (self.ref[n0:n1] < 0)
        seq, pos = torch.nonzero(sel, as_tuple=True)
        ref = self.ref[n0:n1][seq, pos]
        if with_base:
            alt = self.alt_table[ref]
        else:
            alt = torch.arange(self.A).expand(len(seq), self.A)
        return seq, pos, ref, alt


def _chunk_size(engine, n_done):
    held = sum(v.numel() * v.element_size() for n, v in engine.ref.items()
               if isinstance(v, torch.Tensor) and (n in engine.var or n in engine.batched))
    per_seq = 3 * held / max(n_done, 1)   # padded windows of non-linearity inputs
    return max(1, int(_REF_BUDGET_BYTES // max(per_seq, 1)))


def saturation_mutagenesis(model: torch.nn.Module, X: torch.Tensor, args: Optional[tuple] = None,
                           start: int = 0, end: int = -1, batch_size: int = 32,
                           target: Union[int, slice, None] = None, hypothetical: bool = False,
                           raw_outputs: bool = False, dtype=None, device=None, verbose: bool = False,
                           func: Optional[Callable] = None, fast: bool = True):
    """In-silico saturation mutagenesis of ``X[:, :, start:end]``.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(X_, *args_)``.
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences; all-zero (N) columns are allowed.
    args : tuple of torch.Tensor or None, optional
        Extra inputs with ``N`` rows; each edit gets its sequence's row.
        Default None.
    start, end : int, optional
        The span to edit, ``[start, end)``; a negative ``end`` means
        ``L + 1 + end`` (``-1`` = through the last base). Default 0, -1.
    batch_size : int, optional
        Edited sequences per forward pass (full path) or per fast pass.
        Default 32.
    target : int, slice or None, optional
        For attributions only: the outputs (axis 1 of the model's output) to
        average over; None averages over all. Default None.
    hypothetical : bool, optional
        Return the attribution of every base, not only the observed one.
        Default False.
    raw_outputs : bool, optional
        Return ``SaturationMutagenesisRawResult(y0, y_hat)`` instead of
        attributions (required for models with several outputs). Default False.
    dtype : torch.dtype, str or None, optional
        Compute dtype; None is the model's. Default None.
    device : str, torch.device or None, optional
        None picks CUDA when available, else CPU. Default None.
    verbose : bool, optional
        Progress bar over batches of edits. Default False.
    func : callable or None, optional
        Applied to every batch of predictions (original and edited) before
        anything else, e.g. to pick one output. Default None.
    fast : bool, optional
        Try the fast path (see the module docstring). Default True.

    Returns
    -------
    torch.Tensor, shape=(N, A, end - start)
        Attributions (``raw_outputs=False``).
    SaturationMutagenesisRawResult
        ``y0`` (``(N, *output_shape)`` or a list) and ``y_hat``
        (``(N, A, end - start, *output_shape)`` or a list), with
        ``raw_outputs=True``.
    """
    _check_one_hot(X)
    N, A, L = X.shape
    start, end = _span(start, end, L)
    args = check_args(X, args, aligned=True) or ()
    batch_size = check_batch_size(batch_size)
    device = resolve_device(device)
    dtype = resolve_dtype(model, dtype)

    y0 = predict(model, X, args=args, func=func, batch_size=batch_size, dtype=dtype, device=device)
    multi = isinstance(y0, list)
    if multi and not raw_outputs:
        raise ValueError("raw_outputs=True is required for models that return several output "
                         "tensors; the attribution averages over the outputs of a single tensor")
    y0s = y0 if multi else [y0]
    W = end - start
    sites = _Sites(X, start, end)
    if raw_outputs:
        y_hat = [torch.empty((N, A, W) + tuple(t.shape[1:]), dtype=t.dtype) for t in y0s]
        n, p = torch.nonzero(sites.ref >= 0, as_tuple=True)
        for yh, t in zip(y_hat, y0s):   # identity edits: the original prediction
            yh[n, sites.ref[n, p], p] = t[n]
    else:
        sel = y0 if target is None else y0[:, target]
        y0_sel = sel.reshape(N, -1)
        D = torch.zeros((N, A, W), dtype=y0.dtype)

    def write(seq, pos, alt, ys):
        seq = seq.repeat_interleave(alt.shape[1])
        pos = pos.repeat_interleave(alt.shape[1]) - start
        a = alt.reshape(-1)
        ys = [y.cpu() for y in ys]
        if raw_outputs:
            for yh, y in zip(y_hat, ys):
                yh[seq, a, pos] = y.to(yh.dtype)
        else:
            y = ys[0] if target is None else ys[0][:, target]
            D[seq, a, pos] = (y.reshape(len(y), -1).to(D.dtype) - y0_sel[seq]).mean(dim=1)

    n_sites = int((sites.ref >= 0).sum()) + int((sites.ref < 0).sum())
    with model_on(model, device), torch.no_grad(), autocast(device, dtype, model):
        full = _Full(model, func)
        engine = None
        if fast:
            n_edits = int((sites.ref >= 0).sum()) * (A - 1) + int((sites.ref < 0).sum()) * A
            engine = _try_fast(model, func, X, args, sites, start, device, dtype, batch_size, full,
                               n_edits)
        runner = engine or full
        chunk = 1 if engine is not None else N
        bar = tqdm(total=n_sites, disable=not verbose, desc="saturation_mutagenesis", unit="site")
        n0 = 0
        while n0 < N:
            n1 = min(N, n0 + chunk)
            Xc = to_device(X[n0:n1], device, dtype)
            ac = [to_device(a[n0:n1], device, dtype) for a in args]
            runner.reference(Xc, ac)
            for with_base in (True, False):
                seq, pos, ref, alt = sites.group(n0, n1, with_base)
                if len(seq) == 0:
                    continue
                K = alt.shape[1]
                step = max(1, batch_size // K)
                for i in range(0, len(seq), step):
                    s, p, r, a = seq[i:i + step], pos[i:i + step], ref[i:i + step], alt[i:i + step]
                    ys = _run(runner, s, p + start, r, a, device)
                    write(s + n0, p + start, a, ys)
                    bar.update(len(s))
            if engine is not None and n0 == 0:
                engine.learn_keep()
                chunk = min(N, _chunk_size(engine, n1 - n0))
            n0 = n1
        bar.close()

    if raw_outputs:
        return SaturationMutagenesisRawResult(y0, y_hat if multi else y_hat[0])
    D = D - D.mean(dim=1, keepdim=True)
    return D if hypothetical else D * X[:, :, start:end].to(D.dtype)


def _run(runner, seq, pos, ref, alt, device):
    out = runner.edits(seq.to(device), pos.to(device), ref.to(device), alt.reshape(-1).to(device),
                       alt.shape[1])
    return out[0] if isinstance(out, tuple) else out


def _try_fast(model, func, X, args, sites, start, device, dtype, batch_size, full, n_edits):
    """The fast engine, checked against full forwards on edits at both ends of
    the first sequence's span; None (full forwards) when it cannot vouch."""
    from ._fast_ism import MAX_COST_RATIO, MIN_FAST_JOB_MACS, FastISM, Unsupported

    if dtype != model_param_dtype(model) or dtype not in _TOLERANCE:
        log.info("saturation_mutagenesis: full forwards (the fast path runs only in the model's own "
                 "float32/float64, got %s)", dtype)
        return None
    try:
        engine = FastISM(model, func, len(args))
        X0 = to_device(X[:1], device, dtype)
        a0 = [to_device(a[:1], device, dtype) for a in args]
        engine.reference(X0, a0)
        full.reference(X0, a0)
        for with_base in (True, False):
            seq, pos, ref, alt = sites.group(0, 1, with_base)
            if len(seq):
                break
        K = alt.shape[1]
        half = max(1, min(_CHECK_SITES, batch_size // K) // 2)
        idx = sorted(set(range(min(half, len(seq)))) | set(range(max(0, len(seq) - half), len(seq))))
        idx = torch.tensor(idx)
        s, p, r, a = seq[idx], pos[idx] + start, ref[idx], alt[idx]
        fast_out, macs = engine.edits(s.to(device), p.to(device), r.to(device),
                                      a.reshape(-1).to(device), K)
    except Unsupported as e:
        log.info("saturation_mutagenesis: full forwards (the model is not provably local: %s)", e)
        return None
    except Exception as e:  # an engine limitation, not the user's: never fail the job for it
        msg = (f"saturation_mutagenesis: the fast path failed on the check batch ({type(e).__name__}: "
               f"{e}); continuing with full forwards")
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return None
    if n_edits * engine.full_macs < MIN_FAST_JOB_MACS:
        log.info("saturation_mutagenesis: full forwards (a small job: %d edits of %.3g "
                 "multiply-adds each)", n_edits, engine.full_macs)
        return None
    ratio = engine.cost_ratio(macs, len(idx) * K)
    if ratio > MAX_COST_RATIO:
        log.info("saturation_mutagenesis: full forwards (an edit would cost %.0f%% of a full "
                 "forward's multiply-adds)", 100 * ratio)
        return None
    full_out = _run(full, s, p, r, a, device)
    err = _agree(fast_out, full_out, dtype)
    if not err <= _TOLERANCE[dtype]:
        msg = (f"saturation_mutagenesis: the fast path disagrees with full forwards on the check "
               f"batch (max |difference| = {err:.3g} of the output scale, tolerance "
               f"{_TOLERANCE[dtype]:g}); continuing with full forwards")
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        return None
    log.info("saturation_mutagenesis: fast path (%.1f%% of a full forward's multiply-adds per edit, "
             "check batch within %.2g of the output scale)", 100 * ratio, err)
    return _FastRunner(engine)


class _FastRunner:
    def __init__(self, engine):
        self.engine = engine

    def reference(self, X, args):
        self.engine.reference(X, args)

    def edits(self, seq, pos, ref, alt, K):
        return self.engine.edits(seq, pos, ref, alt, K)[0]

    def learn_keep(self):
        self.engine.learn_keep()

    @property
    def ref(self):
        return self.engine.ref

    @property
    def var(self):
        return self.engine.var

    @property
    def batched(self):
        return self.engine.batched
