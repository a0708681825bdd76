"""Variant effect scores with kipoi-veff2's names and definitions.

From kipoi-veff2's ``kipoi_veff2/scores.py`` (github.com/kipoi/kipoi-veff2),
with ``ref``/``alt`` the model's predictions for the two windows:

* ``diff``           = ``alt - ref``
* ``logit``          = ``log(alt / (1 - alt)) - log(ref / (1 - ref))``
* ``logit_ref``      = ``log(ref / (1 - ref))``
* ``logit_alt``      = ``log(alt / (1 - alt))``
* ``deepsea_effect`` = ``|logit| * |diff|``
* ``ref``, ``alt``   = the predictions themselves

Each is applied elementwise to every output. kipoi-veff2 only warns when a
logit-type score meets predictions outside ``[0, 1]`` and returns NaNs; here
that is an error unless ``unbounded='warn'`` (then NaN/inf as numpy gives
them, with a warning). Computed in float64.

Reverse-complement averaging follows kipoi-veff's ``rc_merging='mean'``
("Reverse-complement-averaging, where applicable, is performed after score
calculation"): each score is computed on the forward and on the
reverse-complement predictions and the two are averaged.
"""
import warnings
from typing import Dict, Iterable, Optional

import numpy

__all__ = ['SCORES', 'compute_scores', 'check_score_names']


def _logit(p):
    with numpy.errstate(divide='ignore', invalid='ignore'):
        return numpy.log(p / (1 - p))


SCORES = {
    'diff': lambda ref, alt: alt - ref,
    'logit': lambda ref, alt: _logit(alt) - _logit(ref),
    'logit_ref': lambda ref, alt: _logit(ref),
    'logit_alt': lambda ref, alt: _logit(alt),
    'deepsea_effect': lambda ref, alt: numpy.abs(_logit(alt) - _logit(ref)) * numpy.abs(alt - ref),
    'ref': lambda ref, alt: ref,
    'alt': lambda ref, alt: alt,
}
_BOUNDED = {'logit', 'logit_ref', 'logit_alt', 'deepsea_effect'}


def check_score_names(names: Iterable[str]):
    """The score names as a list; an unknown name is one ValueError listing the known ones."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"scores: at least one is needed, from {', '.join(SCORES)}")
    for n in names:
        if n not in SCORES:
            raise ValueError(f"scores: unknown score {n!r}; expected one of {', '.join(SCORES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"scores: {names} names a score twice")
    return names


def _as_numpy(x):
    if hasattr(x, 'detach'):
        x = x.detach().cpu().double().numpy()
    return numpy.asarray(x, dtype=numpy.float64)


def _one(names, ref, alt, unbounded, what):
    if _BOUNDED & set(names):
        for vals, which in ((ref, 'ref'), (alt, 'alt')):
            finite = vals[numpy.isfinite(vals)]
            if finite.size and (finite.min() < 0 or finite.max() > 1):
                msg = (f"scores {sorted(_BOUNDED & set(names))}: {what}{which} predictions outside [0, 1] "
                       f"(min {finite.min():.4g}, max {finite.max():.4g}); logit scores need "
                       "probabilities")
                if unbounded != 'warn':
                    raise ValueError(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=4)
    with numpy.errstate(divide='ignore', invalid='ignore'):
        return {n: SCORES[n](ref, alt) for n in names}


def compute_scores(ref, alt, names=('diff',), ref_rc=None, alt_rc=None, unbounded: str = 'error',
                   output: Optional[str] = None) -> Dict[str, numpy.ndarray]:
    """Scores of one output's predictions.

    Parameters
    ----------
    ref, alt : array-like or torch.Tensor, shape=(B, ...)
        Predictions for the reference and alternative windows.
    names : sequence of str, optional
        Scores to compute (keys of ``SCORES``). Default ``('diff',)``.
    ref_rc, alt_rc : array-like or None, optional
        Predictions for the reverse-complemented windows; when given, every
        score is the mean of the forward and reverse-complement scores.
    unbounded : {'error', 'warn'}, optional
        What a logit-type score does with predictions outside [0, 1].
        Default 'error'.
    output : str or None, optional
        The output's name, for messages.

    Returns
    -------
    dict of str to numpy.ndarray (float64, shape of ``ref``)
    """
    names = check_score_names(names)
    if unbounded not in ('error', 'warn'):
        raise ValueError(f"unbounded: expected 'error' or 'warn', got {unbounded!r}")
    what = f"output {output!r}: " if output is not None else ''
    ref, alt = _as_numpy(ref), _as_numpy(alt)
    if ref.shape != alt.shape:
        raise ValueError(f"ref and alt predictions differ in shape: {ref.shape} vs {alt.shape}")
    out = _one(names, ref, alt, unbounded, what)
    if (ref_rc is None) != (alt_rc is None):
        raise ValueError("ref_rc and alt_rc: give both or neither")
    if ref_rc is not None:
        rc = _one(names, _as_numpy(ref_rc), _as_numpy(alt_rc), unbounded, what + 'reverse-complement ')
        out = {n: (out[n] + rc[n]) / 2 for n in names}
    return out
