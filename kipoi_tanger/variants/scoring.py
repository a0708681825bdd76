"""Predictions and scores for batches of variant windows.

``VariantScorer(model, scores=...)`` is called once per
:class:`~kipoi_tanger.variants.windows.VariantBatch` and returns the
reference and alternative predictions of every output and the requested
scores. It puts the model in eval mode on the device for the call and
restores its device and train/eval state afterwards (also on error).

For substitutions (SNVs, MNVs) the alternative window differs from the
reference in a few columns, so with ``fast=True`` their alternative
predictions come from the fast ISM engine (``kipoi_tanger._fast_ism``:
the reference pass is the model's forward on the reference windows, the
alternative recomputes only what the changed columns reach). The engine is
used only for models it can prove local, at most half a forward's cost per
variant, in the model's own float32/float64; the first batch with
substitutions is checked against full forwards (reference and alternative,
within 1e-5 of the output scale for float32) and the scorer falls back to
full forwards, with a warning, if they disagree. Indels always run full
forwards. ``rc=True`` also predicts the reverse-complemented windows and
averages the scores (kipoi-veff's ``rc_merging='mean'``).
"""
import logging
import warnings
from typing import Dict, List, NamedTuple

import torch

from .._base import (autocast, check_batch_size, model_on, model_param_dtype, resolve_device,
                     resolve_dtype, split_output, to_device)
from .scores import check_score_names, compute_scores

__all__ = ['VariantScorer', 'ScoredBatch']

log = logging.getLogger(__name__)

_SUBSTITUTION = ('snv', 'mnv')
# reference activations are held for this many windows at a time on the fast path
_REF_CHUNK = 32
# substitutions checked against full forwards before the fast path is trusted
_CHECK = 8


class ScoredBatch(NamedTuple):
    """``ref``/``alt``: one ``(B, ...)`` tensor per model output (CPU);
    ``scores``: per output, a dict score name → float64 array ``(B, ...)``."""
    variants: list
    ref: List[torch.Tensor]
    alt: List[torch.Tensor]
    scores: List[Dict[str, object]]
    skipped: list


class VariantScorer:
    """Score batches of variant windows with a PyTorch model.

    Parameters
    ----------
    model : torch.nn.Module
        Takes one-hot ``(B, 4, L)`` windows.
    scores : sequence of str, optional
        kipoi-veff2 scores (see :mod:`kipoi_tanger.variants.scores`).
        Default ``('diff',)``.
    rc : bool, optional
        Average the scores over the windows and their reverse complements.
        Default False.
    func : callable or None, optional
        Applied to the model's output of every batch (e.g. to pick outputs).
    output_names : list of str or None, optional
        Names of the outputs, for messages.
    batch_size : int, optional
        Windows per forward pass. Default 32.
    device, dtype : optional
        As in every op (None: CUDA if available / the model's dtype).
    fast : bool, optional
        Use the fast ISM engine for substitutions when it can vouch for them.
        Default True.
    unbounded : {'error', 'warn'}, optional
        Logit scores on predictions outside [0, 1]. Default 'error'.
    """

    def __init__(self, model, scores=('diff',), rc=False, func=None, output_names=None,
                 batch_size=32, device=None, dtype=None, fast=True, unbounded='error'):
        self.model, self.func = model, func
        self.names = check_score_names(scores)
        self.rc = bool(rc)
        self.output_names = output_names
        self.batch_size = check_batch_size(batch_size)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(model, dtype)
        self.unbounded = unbounded
        self.fast = bool(fast)
        self.engine = None        # FastISM once built and checked
        self.checked = False      # the fast path was checked (or refused)

    # -- forwards ----------------------------------------------------------------
    def _forward(self, X):
        outs = None
        for s in range(0, len(X), self.batch_size):
            y = self.model(to_device(X[s:s + self.batch_size], self.device, self.dtype))
            if self.func is not None:
                y = self.func(y)
            kind, y = split_output(y)
            y = [y] if kind == 'tensor' else list(y)
            if outs is None:
                outs = [[t.cpu()] for t in y]
            else:
                for acc, t in zip(outs, y):
                    acc.append(t.cpu())
        return [torch.cat(a) for a in outs]

    def _fast_pair(self, Xu, X_alt, inv, sub):
        """Reference predictions of the distinct reference windows ``Xu`` (the
        engine's reference pass) and alternative predictions of the
        substitutions ``sub`` (bool, B; ``inv`` maps each variant to its
        reference window): ``(ref, [(indices, alt outputs)], multiply-adds)``."""
        eng = self.engine
        ref_out, alt_out, macs = [], [], 0
        for s in range(0, len(Xu), _REF_CHUNK):
            xr = to_device(Xu[s:s + _REF_CHUNK], self.device, self.dtype)
            eng.reference(xr, [])
            ref_out.append([eng.ref_value(n).cpu() for n in eng.output_leaves()])
            idx = torch.nonzero(sub & (inv >= s) & (inv < s + len(xr))).flatten()
            if not len(idx):
                continue
            site = (inv[idx] - s).to(xr.device)
            d = to_device(X_alt[idx], self.device, self.dtype) - xr[site]
            cols = (d != 0).any(dim=1)                        # the changed columns
            first = cols.float().argmax(dim=1)
            last = cols.shape[1] - 1 - cols.flip(1).float().argmax(dim=1)
            W = int((last - first).clamp(min=0).max()) + 1
            pos = first.clamp(max=d.shape[2] - W)
            ar = torch.arange(W, device=d.device)
            delta = d.gather(2, (pos[:, None] + ar).unsqueeze(1).expand(-1, d.shape[1], -1))
            ys, m = eng.edits_delta(site, pos, delta)
            macs += m
            alt_out.append((idx, [y.cpu() for y in ys]))
        return [torch.cat(parts) for parts in zip(*ref_out)], alt_out, macs

    def _check_fast(self, X_ref, X_alt, sub):
        """Build the engine and check it on up to _CHECK substitutions of
        this batch against full forwards; None when it cannot vouch."""
        from .. import _fast_ism
        from ..saturation_mutagenesis import _TOLERANCE, _agree
        if self.dtype != model_param_dtype(self.model) or self.dtype not in _TOLERANCE:
            log.info("variant scoring: full forwards (the fast path runs only in the model's own "
                     "float32/float64, got %s)", self.dtype)
            return None
        sel = torch.nonzero(sub).flatten()[:_CHECK]
        Xr, Xa = X_ref[sel], X_alt[sel]
        try:
            self.engine = _fast_ism.FastISM(self.model, self.func, 0)
            ref_fast, alt_fast, macs = self._fast_pair(Xr, Xa, torch.arange(len(sel)),
                                                       torch.ones(len(sel), dtype=torch.bool))
        except _fast_ism.Unsupported as e:
            log.info("variant scoring: full forwards (the model is not provably local: %s)", e)
            return None
        except Exception as e:  # an engine limitation: fall back rather than fail the job
            msg = (f"variant scoring: the fast path failed on the check batch ({type(e).__name__}: {e}); "
                   "continuing with full forwards")
            log.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            return None
        ratio = macs / len(sel) / max(self.engine.full_macs, 1)
        if ratio > _fast_ism.MAX_COST_RATIO:
            log.info("variant scoring: full forwards (an alternative window would cost %.0f%% of a "
                     "full forward's multiply-adds)", 100 * ratio)
            return None
        err = max(_agree(ref_fast, self._forward(Xr), self.dtype),
                  _agree(alt_fast[0][1], self._forward(Xa), self.dtype))
        if not err <= _TOLERANCE[self.dtype]:
            msg = (f"variant scoring: the fast path disagrees with full forwards (max |difference| "
                   f"{err:.3g} of the output scale); continuing with full forwards")
            log.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            return None
        log.info("variant scoring: fast path for substitutions (%.1f%% of a full forward's "
                 "multiply-adds per variant)", 100 * ratio)
        self.engine.learn_keep()    # later reference passes keep only what edits read
        return self.engine

    def _predict(self, X_ref, X_alt, kinds, keys):
        # variants sharing a reference window (the ALTs of one site) predict it once
        first, inv, rows = {}, [], []
        for i, k in enumerate(keys):
            u = first.get(k)
            if u is None:
                u = first[k] = len(rows)
                rows.append(i)
            inv.append(u)
        inv = torch.tensor(inv)
        Xu = X_ref if len(rows) == len(keys) else X_ref[torch.tensor(rows)]
        sub = torch.tensor([k in _SUBSTITUTION for k in kinds], dtype=torch.bool)
        if self.fast and not self.checked and bool(sub.any()):
            self.checked = True
            if self._check_fast(X_ref, X_alt, sub) is None:
                self.engine = None
        if self.engine is None or not bool(sub.any()):
            return [r[inv] for r in self._forward(Xu)], self._forward(X_alt)
        ref_u, alt_parts, _ = self._fast_pair(Xu, X_alt, inv, sub)
        ref = [r[inv] for r in ref_u]
        alt = [torch.empty_like(t) for t in ref]
        for idx, ys in alt_parts:
            for a, y in zip(alt, ys):
                a[idx] = y.to(a.dtype)
        rest = torch.nonzero(~sub).flatten()
        if len(rest):
            for a, y in zip(alt, self._forward(X_alt[rest])):
                a[rest] = y.to(a.dtype)
        return ref, alt

    def __call__(self, batch) -> ScoredBatch:
        """Predictions and scores of one VariantBatch."""
        if not batch.variants:
            return ScoredBatch([], [], [], [], list(batch.skipped))
        kinds = [w.kind for w in batch.windows]
        keys = [(w.variant.chrom, w.span) for w in batch.windows]
        with model_on(self.model, self.device), torch.no_grad(), \
                autocast(self.device, self.dtype, self.model):
            ref, alt = self._predict(batch.ref, batch.alt, kinds, keys)
            if self.rc:
                ref_rc, alt_rc = self._predict(batch.ref.flip(1, 2), batch.alt.flip(1, 2), kinds, keys)
        scores = []
        for o, (r, a) in enumerate(zip(ref, alt)):
            name = self.output_names[o] if self.output_names else (str(o) if len(ref) > 1 else None)
            scores.append(compute_scores(r, a, self.names, ref_rc[o] if self.rc else None,
                                         alt_rc[o] if self.rc else None, self.unbounded, name))
            if self.rc:
                ref[o], alt[o] = (r + ref_rc[o]) / 2, (a + alt_rc[o]) / 2
        return ScoredBatch(list(batch.variants), ref, alt, scores, list(batch.skipped))
