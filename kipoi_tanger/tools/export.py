"""Export deeplift-shap results for tfmodisco-lite.

``modisco motifs -s PREFIX_ohe.npz -a PREFIX_shap.npz -n 2000 -w W -o out.h5``
reads each ``.npz`` file's ``arr_0`` member (what ``np.savez(path, array)``
writes) as an array of shape ``(N, 4, L)``, cuts the central ``W`` positions
(``L//2 - W//2 : L//2 + W//2``, ``W`` must be even and at most ``L``; default
400) and transposes to ``(N, W, 4)`` itself. ``-s`` is the one-hot sequence,
``-a`` the *hypothetical* attributions (a score for every base at every
position: modisco projects them onto the sequence for seqlet calling and
compares the hypothetical ones when clustering).

``export_modisco`` writes those two files (float32, zip-deflated) and, when the
results file has region metadata, ``PREFIX_regions.bed`` with the regions in
the same order.

modisco drops a metacluster (the positive or the negative seqlets) that has no
more than ``min_metacluster_size`` (100) seqlets, so on too few regions it
finds 0 patterns and says nothing. ``export_modisco`` counts the seqlets the
printed command would call (:func:`count_seqlets`, with modisco-lite's own
seqlet caller and the ``modisco motifs`` defaults, when modisco-lite is
installed; else an upper bound from the number of regions) and warns when
neither sign has enough.
"""
import math
import os
import warnings
from typing import Optional, Tuple

import numpy as np

from .results import Results, ResultsError

DEFAULT_WINDOW = 400
#: modisco's ``min_metacluster_size``: a sign with no more seqlets than this gives no patterns
MIN_METACLUSTER_SIZE = 100
# the seqlet calling of `modisco motifs` (modisco-lite's CLI defaults)
_SLIDING, _FLANK, _TARGET_FDR = 20, 5, 0.05


def count_seqlets(ohe: np.ndarray, hyp: np.ndarray, window: int) -> Optional[Tuple[int, int]]:
    """``(positive, negative)`` seqlets ``modisco motifs -w window`` would call, or None without modisco-lite.

    Runs modisco-lite's own seqlet caller on the central ``window``
    positions of ``ohe * hyp`` with the ``modisco motifs`` defaults (core 20,
    flank 5, FDR 0.05) and splits the seqlets by the sign threshold as
    ``TFMoDISco`` does. Its errors (it fails on very few or very short
    regions, as ``modisco motifs`` then does) propagate.

    Parameters
    ----------
    ohe, hyp : ndarray
        ``(N, 4, L)`` one-hot sequences and hypothetical attributions.
    window : int
        Even, at most ``L`` (see :func:`modisco_window`).
    """
    try:
        from modiscolite import extract_seqlets
    except ImportError:
        return None
    L = ohe.shape[2]
    start = L // 2 - window // 2
    contrib = (ohe[:, :, start:start + window] * hyp[:, :, start:start + window]).sum(axis=1).astype(np.float32)
    if not np.isfinite(contrib).all() or not contrib.any():
        return 0, 0
    coords, threshold = extract_seqlets.extract_seqlets(
        attribution_scores=contrib, window_size=_SLIDING, flank=_FLANK, suppress=int(0.5 * _SLIDING) + _FLANK,
        target_fdr=_TARGET_FDR, min_passing_windows_frac=0.03, max_passing_windows_frac=0.2,
        weak_threshold_for_counting_sign=0.8)
    pos = neg = 0
    for c in coords:
        f = int(0.5 * ((c.end - c.start) - _SLIDING))
        attr = float(contrib[c.example_idx, c.start + f:c.end - f].sum())
        pos += attr > threshold
        neg += attr < -threshold
    return int(pos), int(neg)


def _seqlet_warning(path, n, window, counts):
    """The warning about too few seqlets for modisco, or None."""
    hint = ("run deeplift-shap on more regions (on example_models/motif_cnn, 300 regions give the GATA and "
            "E-box motifs: kipoi-tanger demo --modisco)")
    if counts is None:
        # seqlet centres lie more than `suppress` apart: an upper bound per region
        bound = n * math.ceil(window / (int(0.5 * _SLIDING) + _FLANK + 1))
        if bound > MIN_METACLUSTER_SIZE:
            return None
        return (f"{path}: modisco motifs will find no patterns: at most {bound} seqlets fit in {n} regions of "
                f"{window} bp, and modisco needs more than {MIN_METACLUSTER_SIZE} of one sign (its "
                f"min_metacluster_size); {hint}")
    found = f"{counts[0]} positive and {counts[1]} negative seqlets in {n} regions"
    if max(counts) <= MIN_METACLUSTER_SIZE:
        return (f"{path}: modisco motifs will find no patterns: {found}, and modisco needs more than "
                f"{MIN_METACLUSTER_SIZE} of one sign (its min_metacluster_size); {hint}")
    if max(counts) < 2 * MIN_METACLUSTER_SIZE:
        return (f"{path}: modisco motifs may find few or no patterns: only {found} (it drops a sign with "
                f"{MIN_METACLUSTER_SIZE} or fewer, and patterns of fewer than 20); {hint}")
    return None


def modisco_window(length: int, window: int = DEFAULT_WINDOW) -> int:
    """The largest valid ``modisco motifs -w`` for sequences of ``length``:
    even and at most ``length`` (modisco cuts ``W//2`` either side of ``L//2``)."""
    w = min(int(window), int(length))
    return w - (w % 2)


def export_modisco(path: str, prefix: str, block: int = 1024) -> dict:
    """Write tfmodisco-lite inputs from a deeplift-shap results file.

    Parameters
    ----------
    path : str
        HDF5 results with ``attributions`` and the sequences (``inputs``,
        from ``--keep_inputs``).
    prefix : str
        Output prefix: ``PREFIX_ohe.npz``, ``PREFIX_shap.npz`` (and
        ``PREFIX_regions.bed``). A prefix ending in ``/`` writes
        ``ohe.npz``/``shap.npz``/``regions.bed`` into that directory.
    block : int, default 1024
        Regions read at a time.

    Returns
    -------
    dict
        ``{'ohe': path, 'shap': path, 'bed': path or None, 'n': N, 'length': L,
        'window': W, 'hypothetical': bool, 'seqlets': (positive, negative) or
        None without modisco-lite, 'command': str}``.

    Warns (``RuntimeWarning``) when the attributions are not hypothetical, and
    when too few seqlets exist for modisco to find any pattern.
    """
    res = Results(path)
    n, A, L = res.require_attributions()
    if A != 4:
        raise ResultsError(f"{res.path}: attributions have {A} characters per position; "
                           "tfmodisco-lite needs DNA (4)")
    if not res.has_sequences:
        raise ResultsError(f"{res.path}: no 'inputs' dataset; rerun kipoi-tanger deeplift-shap "
                           "with --keep_inputs (modisco needs the one-hot sequences)")
    hypothetical = "hypothetical" in res.shapes or res.attributions_are_hypothetical
    ohe = np.empty((n, A, L), dtype=np.float32)
    shap = np.empty((n, A, L), dtype=np.float32)
    for s in range(0, n, block):
        rows = np.arange(s, min(n, s + block))
        x = res.sequences(rows)
        if x.shape[1:] != (A, L):
            raise ResultsError(f"{res.path}: inputs give one-hot {x.shape[1:]} per region, "
                               f"attributions {(A, L)}")
        if not np.isin(x, (0, 1)).all() or (x.sum(axis=1) > 1).any():
            raise ResultsError(f"{res.path}: inputs are not one-hot (values must be 0/1, at most "
                               "one 1 per position)")
        ohe[rows] = x
        h = res.hypothetical(rows)
        shap[rows] = h if h is not None else res.attributions(rows)

    if not hypothetical:
        warnings.warn(f"{res.path}: attributions are not hypothetical (projected onto the "
                      "sequence); motif clustering works better with --hypothetical",
                      RuntimeWarning, stacklevel=2)

    if prefix.endswith(("/", os.sep)) or os.path.isdir(prefix):
        os.makedirs(prefix, exist_ok=True)
        base = os.path.join(prefix, "")
    else:
        parent = os.path.dirname(prefix)
        if parent:
            os.makedirs(parent, exist_ok=True)
        base = prefix + "_"
    out = {"ohe": base + "ohe.npz", "shap": base + "shap.npz", "bed": None}
    np.savez_compressed(out["ohe"], ohe)
    np.savez_compressed(out["shap"], shap)
    if res.ranges is not None:
        out["bed"] = base + "regions.bed"
        r = res.ranges
        strand = r.get("strand", np.full(n, "."))
        with open(out["bed"], "w") as fh:
            for i in range(n):
                s = str(strand[i]) if str(strand[i]) in ("+", "-") else "."
                fh.write(f"{r['chr'][i]}\t{int(r['start'][i])}\t{int(r['end'][i])}\t{res.ids[i]}\t0\t{s}\n")
    w = modisco_window(L)
    try:
        counts = count_seqlets(ohe, shap, w) if w >= _SLIDING + 2 * _FLANK else (0, 0)
        msg = _seqlet_warning(res.path, n, w, counts)
    except Exception as e:       # modisco's own seqlet caller fails on these scores: so will `modisco motifs`
        counts = (0, 0)
        msg = (f"{res.path}: modisco motifs will fail or find no patterns: its seqlet caller raises "
               f"{type(e).__name__}: {' '.join(str(e).split())[:120]} on {n} regions of {w} bp; run deeplift-shap "
               "on more (and longer) regions")
    if msg:
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    out.update(n=n, length=L, window=w, hypothetical=hypothetical, seqlets=counts,
               command=(f"modisco motifs -s {out['ohe']} -a {out['shap']} -n 2000 -w {w} "
                        f"-o {base}modisco_results.h5"))
    return out
