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
"""
import os
import warnings

import numpy as np

from .results import Results, ResultsError

DEFAULT_WINDOW = 400


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
        'window': W, 'hypothetical': bool, 'command': str}``.
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
    out.update(n=n, length=L, window=w, hypothetical=hypothetical,
               command=(f"modisco motifs -s {out['ohe']} -a {out['shap']} -n 2000 -w {w} "
                        f"-o {base}modisco_results.h5"))
    return out
