"""Seqlet calling: ``recursive_seqlets``, with tangermeme 1.6.0's semantics.

A seqlet is a short span of high attribution. :func:`recursive_seqlets`
follows ``tangermeme.seqlet.recursive_seqlets`` (1.6.0): same signature,
defaults, calls, p-values, order and return types, including the control-based
choice of threshold (``X_control``, ``target_fdr``, ``return_fdr``). The steps:

1. Bin every attribution of ``X`` into ``n_bins`` integer bins of width
   ``(max - min) / (n_bins - 1)`` starting at the minimum (values outside that
   range, e.g. in ``X_control``, go to the end bins).
2. Null: positions are independent draws from the histogram of all bins, so
   the bin sum of a span of length ``k`` has the ``k``-fold convolution of the
   histogram as its distribution; ``rcdfs[k, s] = P(S_k >= s)``.
3. Each span ``[j, j + k)`` with ``min_seqlet_len <= k <= max_seqlet_len``
   gets the p-value ``rcdfs[k, bin sum]``.
4. A span is a seqlet when every span inside it of length at least
   ``min_seqlet_len`` (its "triangle") has a p-value below ``threshold`` and
   none of its positions is in a seqlet called before. Lengths are visited from
   the longest to the shortest; within a length, spans in increasing order of
   the largest p-value over their prefixes, ties by start.

The result is a DataFrame ``example_idx, start, end, attribution, p-value``
sorted by p-value (ties keep the calling order: example, then longer spans
first). The p-value ranks seqlets; it is not an error rate (see the docstring).

Where tangermeme returns nothing or fails inside numba on bad input, this
module raises a one-line ``ValueError`` instead: attributions that are not 2-D
or hold NaN/inf (tangermeme silently calls no seqlet), ``min_seqlet_len < 1``
or above ``max_seqlet_len``, ``n_bins < 2``, negative ``additional_flanks``,
non-integer lengths, and a NaN or negative ``target_fdr``.
"""
import numbers
import warnings
from typing import NamedTuple, Optional, Union

import numba
import numpy
import pandas
import torch

__all__ = ['recursive_seqlets', 'RecursiveSeqletsResult', 'FDR_THRESHOLDS']

# The thresholds tried with X_control: 0.1 down to 1e-30, four per decade.
FDR_THRESHOLDS = 10.0 ** (-numpy.arange(4, 121) / 4)

_COLUMNS = ['example_idx', 'start', 'end', 'attribution', 'p-value']


class RecursiveSeqletsResult(NamedTuple):
    """``recursive_seqlets(..., return_fdr=True)``: the seqlets and the estimated
    false discovery rate at every threshold tried."""
    seqlets: pandas.DataFrame
    fdr: pandas.DataFrame


def _attributions(X, name):
    """``X`` as a finite, non-empty, 2-D float32 or float64 array, or a one-line
    error. float32 stays float32 because tangermeme bins in the input's precision
    (``x - min`` in float32), which decides the bins of values near an edge;
    other dtypes (float16, bfloat16, integers) become float64."""
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu()
        X = X.numpy() if X.dtype in (torch.float32, torch.float64) else X.double().numpy()
    try:
        X = numpy.asarray(X)
        if X.dtype not in (numpy.float32, numpy.float64):
            X = X.astype(numpy.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"recursive_seqlets: {name} must be a numeric (N, L) tensor or array "
                         f"of projected attributions ({e})") from None
    if X.ndim != 2:
        raise ValueError(f"recursive_seqlets: {name} must have shape (N, L) (projected "
                         f"attributions, e.g. attributions summed over the alphabet); got shape "
                         f"{X.shape}")
    if X.size == 0:
        raise ValueError(f"recursive_seqlets requires {name} to be non-empty; got {name} with "
                         f"shape {X.shape}.")
    bad = ~numpy.isfinite(X)
    if bad.any():
        i, j = numpy.argwhere(bad)[0]
        raise ValueError(f"recursive_seqlets: {name} holds {int(bad.sum())} NaN/inf value(s), "
                         f"the first at example {i}, position {j}")
    return numpy.ascontiguousarray(X)


def _as_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"recursive_seqlets: {name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"recursive_seqlets: {name} must be at least {minimum}; got {value}")
    return int(value)


def _null_tables(X, max_seqlet_len, n_bins):
    """``(xmin, bin_width, rcdfs)`` for the attributions ``X``, or None when all
    its values are equal (no span can stand out: no seqlets). ``xmin`` keeps
    X's dtype; ``rcdfs[k, s] = P(S_k >= s)``."""
    xmin, xmax = X.min(), X.max()
    if xmin == xmax:
        return None
    bin_width = float(xmax - xmin) / (n_bins - 1)
    bins = _bins(X.ravel(), xmin, bin_width, n_bins)
    pdf = numpy.bincount(bins, minlength=n_bins) / bins.size
    rcdfs = numpy.zeros((max_seqlet_len + 1, max_seqlet_len * n_bins + 1))
    dist = numpy.ones(1)
    for k in range(1, max_seqlet_len + 1):
        dist = _convolve(dist, pdf)
        # Tail sums from the far end keep tiny p-values accurate (1 - cdf would not).
        rcdfs[k, :dist.size] = numpy.cumsum(dist[::-1])[::-1]
    return xmin, bin_width, rcdfs


def _bins(x, xmin, bin_width, n_bins):
    """The bin of each value; values outside the bins' range go to the end bins.
    ``x - xmin`` is taken in the inputs' precision, the division in float64."""
    q = numpy.asarray(x - xmin, dtype=numpy.float64) / bin_width
    return numpy.clip(numpy.floor(q), 0, n_bins - 1).astype(numpy.int64)


def _frame(example_idx, start, end, attribution, pvalue):
    order = numpy.argsort(pvalue, kind='stable')
    return pandas.DataFrame({
        'example_idx': numpy.asarray(example_idx, dtype=numpy.int64)[order],
        'start': numpy.asarray(start, dtype=numpy.int64)[order],
        'end': numpy.asarray(end, dtype=numpy.int64)[order],
        'attribution': numpy.asarray(attribution, dtype=numpy.float64)[order],
        'p-value': numpy.asarray(pvalue, dtype=numpy.float64)[order],
    }, columns=_COLUMNS)


def _call(X, tables, threshold, min_len, max_len, flanks, n_bins):
    """The seqlets of ``X`` at ``threshold`` as a DataFrame."""
    if tables is None or not threshold > 0:
        return _frame([], [], [], [], [])
    xmin, bin_width, rcdfs = tables
    B = _bins(X, xmin, bin_width, n_bins)
    fields = _decode(X, B, rcdfs, float(threshold), min_len, max_len, flanks)
    return _frame(*fields)


def _count(X, tables, thresholds, min_len, max_len, n_bins):
    """The number of seqlets called on ``X`` at each of ``thresholds`` (largest first)."""
    if tables is None:
        return numpy.zeros(len(thresholds), dtype=numpy.int64)
    xmin, bin_width, rcdfs = tables
    B = _bins(X, xmin, bin_width, n_bins)
    return _count_seqlets(B, rcdfs, numpy.asarray(thresholds, dtype=numpy.float64), min_len,
                          max_len)


def recursive_seqlets(X: Union[torch.Tensor, numpy.ndarray], threshold: float = 0.01,
                      min_seqlet_len: int = 4, max_seqlet_len: int = 25,
                      additional_flanks: int = 0, n_bins: int = 1000,
                      X_control: Optional[Union[torch.Tensor, numpy.ndarray]] = None,
                      target_fdr: float = 0.1, return_fdr: bool = False
                      ) -> Union[pandas.DataFrame, RecursiveSeqletsResult]:
    """Call seqlets with the recursive seqlet algorithm (tangermeme 1.6.0).

    Only *positive* seqlets are called. For negative ones, run on ``-X`` (and
    ``-X_control``), negate the returned attribution sums and drop those that
    overlap a positive seqlet.

    Each attribution is binned into one of ``n_bins`` bins, and the null
    distribution of the bin sum of a span of each length treats positions as
    independent draws from the histogram of all bins of ``X``. A span's p-value
    is the chance of a sum at least as large. A seqlet is a span all of whose
    inner spans of length ``min_seqlet_len`` or more (the triangle below it in
    the (start, length) matrix) have a p-value below ``threshold``; seqlets do
    not overlap, and longer ones are called first.

    The p-values rank spans; they are not error rates. Attributions are
    correlated along the sequence, the null is built from ``X`` itself (signal
    included) and a span's p-value depends on the other examples in ``X``, so
    ``threshold=0.01`` does not mean 1% false calls. To call at a target false
    discovery rate, pass control attributions as ``X_control`` (e.g. of
    dinucleotide shuffles of the sequences, computed the same way): seqlets are
    then called on both at each of :data:`FDR_THRESHOLDS` (0.1 to 1e-30, four
    per decade), with ``X``'s bins and null; the estimated false discovery rate
    at a threshold is ``(n_control + 1) * (X.size / X_control.size) / n_X``
    (NaN where ``n_X`` is 0), and seqlets are called at the largest threshold
    whose estimate is at or below ``target_fdr``. If none is, a warning gives
    the lowest estimate and no seqlets are returned.

    Parameters
    ----------
    X : torch.Tensor or numpy.ndarray, shape=(N, L)
        Projected attributions: the attribution of the observed base at each
        position (e.g. ``(attributions * X_onehot).sum(1)``).
    threshold : float, optional
        p-value cutoff for every span in a seqlet's triangle; at most 1; at 0
        or below no seqlets are called. Ignored with ``X_control``. Default 0.01.
    min_seqlet_len : int, optional
        Shortest seqlet, and shortest span checked inside one. Default 4.
    max_seqlet_len : int, optional
        Longest seqlet. Default 25.
    additional_flanks : int, optional
        Positions added on each side of each called seqlet (clipped to the
        sequence); does not change which seqlets are called, so flanked seqlets
        may overlap. The attribution sum covers the flanked span. Default 0.
    n_bins : int, optional
        Number of bins of the null distributions. Default 1000.
    X_control : torch.Tensor or numpy.ndarray or None, optional
        Projected control attributions, ``(M, L')``; sets the threshold to reach
        ``target_fdr`` as described above. Default None.
    target_fdr : float, optional
        Estimated false discovery rate to call at with ``X_control``. Default 0.1.
    return_fdr : bool, optional
        Also return the estimate at every threshold (needs ``X_control``).
        Default False.

    Returns
    -------
    seqlets : pandas.DataFrame
        Columns ``example_idx, start, end`` (int64, 0-based, end exclusive),
        ``attribution`` (sum of ``X`` over the seqlet) and ``p-value`` (of the
        span itself, not of its triangle), sorted by p-value; tied p-values keep
        the calling order (example, then longer spans first), where tangermeme's
        unstable sort leaves them in an unspecified order.
    RecursiveSeqletsResult
        With ``return_fdr=True``: ``(seqlets, fdr)``, where ``fdr`` has one row
        per threshold, largest first: ``threshold``, ``n_seqlets``,
        ``n_control_seqlets``, ``fdr``.
    """
    X = _attributions(X, 'X')
    min_len = _as_int(min_seqlet_len, 'min_seqlet_len', 1)
    max_len = _as_int(max_seqlet_len, 'max_seqlet_len', min_len)
    flanks = _as_int(additional_flanks, 'additional_flanks', 0)
    n_bins = _as_int(n_bins, 'n_bins', 2)

    if X_control is None:
        if return_fdr:
            raise ValueError("recursive_seqlets: return_fdr=True requires X_control, the control "
                             "attributions that the false discovery rate is estimated from.")
        threshold = float(threshold)
        if not threshold <= 1:
            raise ValueError(f"recursive_seqlets: threshold must be a p-value of at most 1; got "
                             f"{threshold}.")
        return _call(X, _null_tables(X, max_len, n_bins), threshold, min_len, max_len, flanks,
                     n_bins)

    C = _attributions(X_control, 'X_control')
    target_fdr = float(target_fdr)
    if not target_fdr >= 0:
        raise ValueError(f"recursive_seqlets: target_fdr must be a number >= 0; got {target_fdr}")
    tables = _null_tables(X, max_len, n_bins)
    n_x = _count(X, tables, FDR_THRESHOLDS, min_len, max_len, n_bins)
    n_c = _count(C, tables, FDR_THRESHOLDS, min_len, max_len, n_bins)
    with numpy.errstate(divide='ignore', invalid='ignore'):
        fdr = numpy.where(n_x > 0, (n_c + 1) * (X.size / C.size) / n_x, numpy.nan)
    fdr_frame = pandas.DataFrame({'threshold': FDR_THRESHOLDS.copy(), 'n_seqlets': n_x,
                                  'n_control_seqlets': n_c, 'fdr': fdr})
    passing = numpy.flatnonzero(fdr <= target_fdr)
    if len(passing):
        seqlets = _call(X, tables, FDR_THRESHOLDS[passing[0]], min_len, max_len, flanks, n_bins)
    else:
        if numpy.isnan(fdr).all():
            why = "no seqlets are called on X at any threshold"
        else:
            best = int(numpy.nanargmin(fdr))
            why = (f"the lowest estimate is {fdr[best]:.3f}, at a threshold of "
                   f"{FDR_THRESHOLDS[best]:.1e} with {n_x[best]} seqlets")
        warnings.warn(f"recursive_seqlets: no threshold reaches an estimated false discovery rate "
                      f"at or below target_fdr={target_fdr:g}: {why}. No seqlets are returned; "
                      f"pass a higher target_fdr, and return_fdr=True to see the estimate at "
                      f"every threshold.", UserWarning, stacklevel=2)
        seqlets = _frame([], [], [], [], [])
    return RecursiveSeqletsResult(seqlets, fdr_frame) if return_fdr else seqlets


# Compiled loops (numba, cached on disk: the first call in a fresh environment compiles
# them for some seconds). Module-level functions, because numba cannot reuse the cache of
# closures that call other compiled closures.

@numba.njit(cache=True, nogil=True)
def _convolve(dist, pdf):
    """``numpy.convolve(dist, pdf)``, with each output entry summed over
    ``dist``'s index in increasing order: tangermeme's order, so p-values,
    and the ties between them, come out bit for bit alike. The inner loop
    writes a contiguous run of outputs, so it vectorises."""
    nb = pdf.shape[0]
    out = numpy.zeros(dist.shape[0] + nb - 1)
    for i in range(dist.shape[0]):
        d = dist[i]
        for b in range(nb):
            out[i + b] += d * pdf[b]
    return out


@numba.njit(cache=True, nogil=True)
def _prepare(b, rcdfs, lo, hi, t_max, p, P, T, cand_j, cand_n):
    """Fill P (largest p-value over each span's prefixes) and T (largest
    p-value in each span's triangle) for one row of bins ``b``, and list,
    per length, the starts whose triangle is below ``t_max`` in visiting
    order: by P, ties by start. ``p`` receives the spans' own p-values."""
    L = b.shape[0]
    cs = numpy.zeros(L + 1, numpy.int64)
    for j in range(L):
        cs[j + 1] = cs[j] + b[j]
    for k in range(lo, min(hi, L) + 1):
        for j in range(L - k + 1):
            p[k, j] = rcdfs[k, cs[j + k] - cs[j]]
            if k == lo:
                P[k, j] = p[k, j]
                T[k, j] = p[k, j]
            else:
                P[k, j] = max(P[k - 1, j], p[k, j])
                T[k, j] = max(P[k, j], T[k - 1, j + 1])
    for k in range(lo, hi + 1):
        m = 0
        if k <= L:
            for j in range(L - k + 1):
                if T[k, j] < t_max:
                    cand_j[k, m] = j
                    m += 1
        cand_n[k] = m
        if m > 1:
            # the starts are in increasing order, so a stable sort by P breaks ties by start
            order = numpy.argsort(P[k, cand_j[k, :m]], kind='mergesort')
            cand_j[k, :m] = cand_j[k, :m][order]


@numba.njit(cache=True, nogil=True)
def _visit(t, lo, hi, P, T, cand_j, cand_n, mask, out_j, out_k):
    """Call one row's seqlets at threshold ``t``; returns how many (in out_j/out_k)."""
    mask[:] = False
    n = 0
    for k in range(hi, lo - 1, -1):
        for c in range(cand_n[k]):
            j = cand_j[k, c]
            if P[k, j] >= t:
                break
            if T[k, j] >= t:
                continue
            free = True
            for q in range(j, j + k):
                if mask[q]:
                    free = False
                    break
            if free:
                mask[j:j + k] = True
                out_j[n] = j
                out_k[n] = k
                n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _decode(X, B, rcdfs, t, lo, hi, flanks):
    N, L = B.shape
    p = numpy.ones((hi + 1, L))
    P = numpy.ones((hi + 1, L))
    T = numpy.ones((hi + 1, L))
    cand_j = numpy.zeros((hi + 1, L), numpy.int64)
    cand_n = numpy.zeros(hi + 1, numpy.int64)
    mask = numpy.zeros(L, numpy.bool_)
    row_j = numpy.zeros(L, numpy.int64)
    row_k = numpy.zeros(L, numpy.int64)
    cap = 64
    ex = numpy.zeros(cap, numpy.int64)
    st = numpy.zeros(cap, numpy.int64)
    en = numpy.zeros(cap, numpy.int64)
    at = numpy.zeros(cap)
    pv = numpy.zeros(cap)
    n = 0
    for i in range(N):
        _prepare(B[i], rcdfs, lo, hi, t, p, P, T, cand_j, cand_n)
        m = _visit(t, lo, hi, P, T, cand_j, cand_n, mask, row_j, row_k)
        if n + m > cap:
            cap = max(2 * cap, n + m)
            ex2, st2, en2 = numpy.zeros(cap, numpy.int64), numpy.zeros(cap, numpy.int64), \
                numpy.zeros(cap, numpy.int64)
            at2, pv2 = numpy.zeros(cap), numpy.zeros(cap)
            ex2[:n], st2[:n], en2[:n], at2[:n], pv2[:n] = ex[:n], st[:n], en[:n], at[:n], pv[:n]
            ex, st, en, at, pv = ex2, st2, en2, at2, pv2
        for r in range(m):
            j, k = row_j[r], row_k[r]
            s, e = max(j - flanks, 0), min(j + k + flanks, L)
            total = 0.0
            for q in range(s, e):
                total += X[i, q]
            ex[n], st[n], en[n], at[n], pv[n] = i, s, e, total, p[k, j]
            n += 1
    return ex[:n], st[:n], en[:n], at[:n], pv[:n]


@numba.njit(cache=True, nogil=True)
def _count_seqlets(B, rcdfs, thresholds, lo, hi):
    N, L = B.shape
    p = numpy.ones((hi + 1, L))
    P = numpy.ones((hi + 1, L))
    T = numpy.ones((hi + 1, L))
    cand_j = numpy.zeros((hi + 1, L), numpy.int64)
    cand_n = numpy.zeros(hi + 1, numpy.int64)
    mask = numpy.zeros(L, numpy.bool_)
    row_j = numpy.zeros(L, numpy.int64)
    row_k = numpy.zeros(L, numpy.int64)
    counts = numpy.zeros(thresholds.shape[0], numpy.int64)
    for i in range(N):
        _prepare(B[i], rcdfs, lo, hi, thresholds[0], p, P, T, cand_j, cand_n)
        for ti in range(thresholds.shape[0]):
            m = _visit(thresholds[ti], lo, hi, P, T, cand_j, cand_n, mask, row_j, row_k)
            counts[ti] += m
            # Nothing called: no span's triangle is below this threshold, nor below a stricter one.
            if m == 0:
                break
    return counts
