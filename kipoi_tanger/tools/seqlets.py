"""Seqlets named by motif, in genomic coordinates: TOMTOM naming, placement on
the genome, BED and TSV writers.

The seqlets themselves come from :func:`kipoi_tanger.seqlet.recursive_seqlets`
(a DataFrame ``example_idx, start, end, attribution, p-value`` in positions of
the model input). This module adds, without reading any results file:

* :func:`name_seqlets`: each seqlet's query matrix (its attributions, or its
  one-hot sequence as ``tangermeme.annotate.annotate_seqlets`` uses) is compared
  with every motif of a MEME file by memelite's TOMTOM (``memelite.tomtom``,
  from tangermeme's author). The best match is kept with its p-value, a
  q-value, and its orientation (``motif_strand``: ``+`` when the seqlet reads
  as the motif, ``-`` when it reads as its reverse complement, ``.`` for a
  motif equal to its own reverse complement, e.g. the E-box CAGCTG). The
  q-value is Benjamini–Hochberg over that seqlet's p-values against all motifs
  of the file. ``named`` is True when it is at most ``max_qvalue``.
* :func:`genomic_seqlets`: chromosome coordinates from the regions' metadata
  with the rule of :mod:`kipoi_tanger.tools.tracks` (a ``-`` region's input is
  the reverse complement of ``[start, end)``, so input span ``[s, e)`` is the
  genomic ``[end - e, end - s)``, and the motif's strand flips).
* :func:`write_bed` (BED6, sorted; extra columns on request) and
  :func:`write_tsv` (every column, ranked by seqlet p-value).
* :func:`results_seqlets` and :func:`write_seqlets`: the whole chain on a
  ``kipoi-tanger deeplift-shap`` results file (``kipoi-tanger seqlets``).

TOMTOM p-values use the target motifs' columns as background, so they depend
on the motif file; memelite warns below 25 motifs. Match against a real
database (JASPAR, HOCOMOCO) for real data.
"""
import math
import os
import re
from typing import Optional, Sequence

import numpy
import pandas

from kipoi_tanger.tools.tracks import _numpy, place, regions

__all__ = ['read_motifs', 'seqlet_queries', 'name_seqlets', 'genomic_seqlets', 'write_bed',
           'write_tsv', 'results_seqlets', 'write_seqlets', 'check_outputs', 'BED_COLUMNS',
           'TSV_COLUMNS', 'SUFFIXES']

BED_COLUMNS = ['chrom', 'chrom_start', 'chrom_end', 'name', 'score', 'strand']
# The TSV's leading columns, in this order; any other column follows.
TSV_COLUMNS = BED_COLUMNS + ['region_id', 'example_idx', 'start', 'end', 'attribution', 'p-value',
                             'motif', 'motif_pvalue', 'motif_qvalue', 'motif_strand', 'named']
_CHUNK = 2048  # seqlets per TOMTOM call: bounds the (seqlets x motifs) matrices
# recursive_seqlets' parameter names -> the names results_seqlets and `kipoi-tanger seqlets` take
_OPTION_NAMES = (("min_seqlet_len", "min_len"), ("max_seqlet_len", "max_len"), ("additional_flanks", "flanks"),
                 ("threshold", "threshold"), ("n_bins", "n_bins"))


def read_motifs(path, alphabet_size: int = 4) -> dict:
    """Read a MEME motif file into ``{name: (A, width) float64 PWM}``.

    The name is the rest of the ``MOTIF`` line (``"MA0035.4 Gata1"``), as
    ``memelite.io.read_meme`` gives it. Errors name the file: missing, no
    motif, repeated names (a dict would silently keep one), a matrix with a
    different alphabet size, negative or non-finite entries, or a column that
    does not sum to 1 within 0.01.
    """
    from memelite.io import read_meme
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"motifs {path}: file not found")
    try:
        motifs = read_meme(path)
    except Exception as e:  # memelite raises whatever its parsing hits
        raise ValueError(f"motifs {path}: not a readable MEME motif file ({type(e).__name__}: "
                         f"{e})") from None
    with open(path) as fh:
        n_lines = sum(1 for line in fh if re.match(r'MOTIF\s', line))
    if not motifs:
        raise ValueError(f"motifs {path}: no motifs (expected MEME format with 'MOTIF' entries "
                         f"and 'letter-probability matrix' lines)")
    if n_lines != len(motifs):
        raise ValueError(f"motifs {path}: {n_lines} MOTIF lines but {len(motifs)} distinct names; "
                         f"motif names must be unique")
    out = {}
    for name, pwm in motifs.items():
        pwm = numpy.asarray(pwm, dtype=numpy.float64)
        if pwm.ndim != 2 or pwm.shape[0] != alphabet_size or pwm.shape[1] == 0:
            raise ValueError(f"motifs {path}: motif {name!r} has shape {pwm.shape}; expected "
                             f"({alphabet_size}, width)")
        if not numpy.isfinite(pwm).all() or (pwm < 0).any():
            raise ValueError(f"motifs {path}: motif {name!r} has negative or non-finite entries")
        sums = pwm.sum(0)
        off = numpy.flatnonzero(numpy.abs(sums - 1) > 0.01)
        if len(off):
            raise ValueError(f"motifs {path}: motif {name!r} row {off[0] + 1} of its matrix sums "
                             f"to {sums[off[0]]:.4g}, not 1 (letter-probability matrices only)")
        out[name] = pwm
    return out


def _motifs(motifs):
    if isinstance(motifs, (str, os.PathLike)):
        return read_motifs(motifs)
    if not motifs:
        raise ValueError("motifs: empty")
    return {str(k): numpy.asarray(_numpy(v, k), dtype=numpy.float64) for k, v in motifs.items()}


def seqlet_queries(seqlets: pandas.DataFrame, X=None, attributions=None,
                   query: str = 'attribution') -> list:
    """The ``(A, end - start)`` matrix of each seqlet that TOMTOM compares with motifs.

    Parameters
    ----------
    seqlets : pandas.DataFrame
        Columns ``example_idx``, ``start``, ``end`` (input positions).
    X : array-like, shape=(N, A, L), optional
        One-hot sequences (``query="onehot"``).
    attributions : array-like, shape=(N, A, L), optional
        Attributions (``query="attribution"``): projected ones give each base's
        attribution in the observed character's row, hypothetical ones a full
        matrix. Each is scaled so that its largest column's absolute sum is 1;
        flanks with little attribution weigh little in the match.
    query : {"attribution", "onehot"}

    Returns
    -------
    list of numpy.ndarray
    """
    if query not in ('attribution', 'onehot'):
        raise ValueError(f"query must be 'attribution' or 'onehot'; got {query!r}")
    what = 'attributions' if query == 'attribution' else 'X'
    src = attributions if query == 'attribution' else X
    if src is None:
        raise ValueError(f"query={query!r} needs {what}")
    src = _numpy(src, query)
    if src.ndim != 3:
        raise ValueError(f"{what} must have shape (N, A, L); got {src.shape}")
    ex, st, en = (seqlets[c].to_numpy(dtype=numpy.int64) for c in ('example_idx', 'start', 'end'))
    if len(ex) and (ex.min() < 0 or ex.max() >= src.shape[0] or st.min() < 0
                    or en.max() > src.shape[2] or (en <= st).any()):
        raise ValueError(f"seqlets: example_idx/start/end outside the {src.shape} sequences")
    out = [numpy.asarray(src[i, :, s:e], dtype=numpy.float64) for i, s, e in zip(ex, st, en)]
    if query == 'attribution':
        # TOMTOM bins scores on a PWM's scale: attributions of ~0.01 would all fall in a few
        # bins, so scale each query to a largest column absolute sum of 1 (p-values then do
        # not depend on the attributions' units).
        out = [q / s if (s := numpy.abs(q).sum(0).max()) > 0 else q for q in out]
    return out


def _bh(p):
    """Benjamini–Hochberg q-values of each row of ``p`` (NaN-free rows)."""
    m = p.shape[1]
    order = numpy.argsort(p, axis=1, kind='stable')
    ranked = numpy.take_along_axis(p, order, 1) * m / numpy.arange(1, m + 1)
    q = numpy.minimum.accumulate(ranked[:, ::-1], axis=1)[:, ::-1]
    out = numpy.empty_like(q)
    numpy.put_along_axis(out, order, numpy.minimum(q, 1.0), 1)
    return out


def _check_max_qvalue(max_qvalue):
    if isinstance(max_qvalue, bool) or not isinstance(max_qvalue, (int, float, numpy.integer, numpy.floating)) \
            or not 0 < max_qvalue <= 1:
        raise ValueError(f"--max_qvalue: expected a q-value in (0, 1], got {max_qvalue!r}")


def name_seqlets(seqlets: pandas.DataFrame, motifs, X=None, attributions=None,
                 query: str = 'attribution', max_qvalue: float = 0.05, n_jobs: int = 1,
                 **tomtom_kwargs) -> pandas.DataFrame:
    """Name each seqlet by its best TOMTOM match among ``motifs``.

    Parameters
    ----------
    seqlets : pandas.DataFrame
        From :func:`kipoi_tanger.seqlet.recursive_seqlets` (``example_idx``,
        ``start``, ``end``, any other columns are kept).
    motifs : str or dict
        A MEME file (:func:`read_motifs`) or ``{name: (A, width) PWM}``.
    X, attributions, query
        The seqlets' query matrices (:func:`seqlet_queries`).
    max_qvalue : float, optional
        A seqlet is ``named`` when its best match's q-value is at most this.
        Default 0.05.
    n_jobs : int, optional
        TOMTOM threads (memelite: -1 means all). Default 1.
    **tomtom_kwargs
        Passed to ``memelite.tomtom`` (e.g. ``n_score_bins``).

    Returns
    -------
    pandas.DataFrame
        A copy of ``seqlets`` with ``motif`` (best match's name), ``motif_idx``
        (its index in the file), ``motif_pvalue``, ``motif_qvalue`` (see the
        module docstring), ``motif_strand`` (``+``, ``-`` or ``.``, relative to
        the model input) and ``named``. A seqlet whose query is all zeros gets
        no match (empty name, NaN p-value).
    """
    from memelite import tomtom
    _check_max_qvalue(max_qvalue)
    motifs = _motifs(motifs)
    names = list(motifs)
    pwms = [motifs[k] for k in names]
    palindrome = numpy.array([p.shape == p[::-1, ::-1].shape and numpy.allclose(p, p[::-1, ::-1])
                              for p in pwms])
    queries = seqlet_queries(seqlets, X, attributions, query)
    n = len(queries)
    best = numpy.full(n, -1, dtype=numpy.int64)
    pval = numpy.full(n, numpy.nan)
    qval = numpy.full(n, numpy.nan)
    strand = numpy.full(n, '', dtype='<U1')
    usable = numpy.flatnonzero([numpy.any(q != 0) for q in queries])
    for c in range(0, len(usable), _CHUNK):
        idx = usable[c:c + _CHUNK]
        p, _, _, _, st = tomtom([queries[i] for i in idx], pwms, n_jobs=n_jobs, **tomtom_kwargs)
        p = numpy.asarray(p, dtype=numpy.float64)
        j = numpy.argmin(p, axis=1)  # first best on ties: the earlier motif in the file
        rows = numpy.arange(len(idx))
        best[idx], pval[idx] = j, p[rows, j]
        qval[idx] = _bh(p)[rows, j]
        rc = numpy.asarray(st)[rows, j] == 1
        strand[idx] = numpy.where(palindrome[j], '.', numpy.where(rc, '-', '+'))
    out = seqlets.copy()
    out['motif'] = numpy.asarray([names[j] if j >= 0 else '' for j in best], dtype=str)
    out['motif_idx'] = best
    out['motif_pvalue'] = pval
    out['motif_qvalue'] = qval
    out['motif_strand'] = strand
    out['named'] = (best >= 0) & (qval <= max_qvalue)
    return out


def genomic_seqlets(seqlets: pandas.DataFrame, ranges, length: int, anchor: str = 'exact',
                    reverse_minus: bool = True) -> pandas.DataFrame:
    """Place seqlets on the genome.

    Parameters
    ----------
    seqlets : pandas.DataFrame
        ``example_idx``, ``start``, ``end`` in positions of the model input
        (optionally named by :func:`name_seqlets`).
    ranges : mapping, DataFrame or Regions
        Metadata of the N regions (``chr``, ``start``, ``end``, ``strand``,
        ``id``; :func:`kipoi_tanger.tools.tracks.regions`).
    length : int
        The input length L the seqlets' positions refer to.
    anchor, reverse_minus
        As in :func:`kipoi_tanger.tools.tracks.place`.

    Returns
    -------
    pandas.DataFrame
        A copy with ``chrom``, ``chrom_start``, ``chrom_end`` (0-based, end
        exclusive), ``strand`` (the named motif's genomic strand: its
        ``motif_strand``, flipped on ``-`` regions; ``.`` when unnamed or
        palindromic) and ``region_id``.
    """
    regs = regions(ranges)
    ex = seqlets['example_idx'].to_numpy(dtype=numpy.int64)
    if len(ex) and (ex.min() < 0 or ex.max() >= len(regs)):
        raise ValueError(f"seqlets: example_idx up to {ex.max()} but ranges has {len(regs)} "
                         f"regions")
    st, en = (seqlets[c].to_numpy(dtype=numpy.int64) for c in ('start', 'end'))
    if len(st) and (st.min() < 0 or en.max() > length):
        raise ValueError(f"seqlets: start/end outside the input length {length}")
    gs, ge = numpy.zeros(len(ex), numpy.int64), numpy.zeros(len(ex), numpy.int64)
    flip = numpy.zeros(len(ex), bool)
    placed = {}
    for r, i in enumerate(ex.tolist()):
        if i not in placed:
            placed[i] = place(regs, i, length, anchor, reverse_minus)
        g0, rev = placed[i]
        flip[r] = rev
        if rev:
            gs[r], ge[r] = g0 + length - en[r], g0 + length - st[r]
        else:
            gs[r], ge[r] = g0 + st[r], g0 + en[r]
    out = seqlets.copy()
    out['chrom'] = regs.chrom[ex] if len(ex) else numpy.zeros(0, dtype=str)
    out['chrom_start'], out['chrom_end'] = gs, ge
    if 'motif_strand' in out and 'named' in out:
        ms = out['motif_strand'].to_numpy(dtype=str)
        swapped = numpy.where(ms == '+', '-', numpy.where(ms == '-', '+', ms))
        strand = numpy.where(flip, swapped, ms)
        out['strand'] = numpy.where(out['named'].to_numpy(dtype=bool) & (strand != ''), strand, '.')
    else:
        out['strand'] = '.'
    out['region_id'] = regs.id[ex] if len(ex) else numpy.zeros(0, dtype=str)
    return out


def _bed_frame(seqlets):
    missing = [c for c in ('chrom', 'chrom_start', 'chrom_end') if c not in seqlets]
    if missing:
        raise ValueError(f"seqlets: no genomic coordinates ({', '.join(missing)}); place them "
                         f"with genomic_seqlets first")
    df = seqlets.copy()
    named = (df['named'].to_numpy(dtype=bool) if 'named' in df
             else numpy.zeros(len(df), dtype=bool))
    names = numpy.where(named, df['motif'].astype(str), '.') if 'motif' in df else ['.'] * len(df)
    df['name'] = [re.sub(r'\s+', '_', s) for s in names]
    # a strand only for a named, non-palindromic motif
    df['strand'] = numpy.where(named, df['strand'], '.') if 'strand' in df else '.'
    # BED score 0-1000: -10 log10 of the seqlet's p-value (as MACS scores peaks)
    p = df['p-value'].to_numpy(dtype=numpy.float64) if 'p-value' in df else numpy.ones(len(df))
    df['score'] = [min(1000, round(-10 * math.log10(x))) if 0 < x < 1 else (1000 if x == 0 else 0)
                   for x in p]
    return df


def write_bed(seqlets: pandas.DataFrame, path, extra_columns: bool = False,
              columns: Optional[Sequence[str]] = None) -> str:
    """Write genomic seqlets as BED6, sorted by chromosome (byte order) and start.

    Columns: chrom, start, end, name (the motif, spaces as ``_``, when
    ``named``; ``.`` otherwise), score (``min(1000, round(-10 log10 p))`` of the
    seqlet's p-value), strand (:func:`genomic_seqlets`). With ``extra_columns``
    (or an explicit ``columns`` list) further columns follow after a ``#``
    header line: readable by bedtools and pandas, but genome browsers read
    columns 7-8 as thickStart/thickEnd, so upload the plain BED6 to a browser.

    Returns
    -------
    str
        ``path``.
    """
    df = _bed_frame(seqlets)
    extra = list(columns) if columns is not None else (
        [c for c in TSV_COLUMNS[6:] if c in df] if extra_columns else [])
    df = df.assign(_c=[c.encode() for c in df['chrom'].astype(str)]).sort_values(
        ['_c', 'chrom_start', 'chrom_end'], kind='stable')
    path = os.fspath(path)
    with open(path, 'w') as fh:
        if extra:
            fh.write('#' + '\t'.join(BED_COLUMNS + extra) + '\n')
        df[BED_COLUMNS + extra].to_csv(fh, sep='\t', header=False, index=False,
                                       float_format='%.6g')
    return path


def write_tsv(seqlets: pandas.DataFrame, path) -> str:
    """Write seqlets with all their columns as a TSV with a header, in the
    frame's order (ranked by seqlet p-value as called). Genomic columns and the
    BED name/score come first when the seqlets have genomic coordinates.

    Returns
    -------
    str
        ``path``.
    """
    df = _bed_frame(seqlets) if 'chrom' in seqlets else seqlets
    cols = [c for c in TSV_COLUMNS if c in df] + [c for c in df if c not in TSV_COLUMNS]
    path = os.fspath(path)
    df[cols].to_csv(path, sep='\t', index=False, float_format='%.6g')
    return path


# ---------------------------------------------------------------------------
# from a results file

SUFFIXES = ('.bed', '.tsv')


def check_outputs(outputs: Sequence[str], has_ranges: bool, path: str = 'the results file') -> list:
    """The output paths, checked before anything is computed: ``.bed`` and ``.tsv``
    files only, not twice, a BED only when the regions' genomic coordinates are known."""
    outputs = [os.fspath(o) for o in outputs]
    if not outputs:
        raise ValueError("-o: give an output file (.bed and/or .tsv)")
    for o in outputs:
        if not o.lower().endswith(SUFFIXES):
            raise ValueError(f"-o {o}: expected a .bed or .tsv file")
    if len({os.path.abspath(o) for o in outputs}) < len(outputs):
        raise ValueError(f"-o: the same file twice ({' '.join(outputs)})")
    beds = [o for o in outputs if o.lower().endswith('.bed')]
    if beds and not has_ranges:
        raise ValueError(f"-o {beds[0]}: {path} has no metadata/ranges (chr, start, end), so seqlets have no "
                         f"genomic coordinates; rerun with --keep_metadata, or write a .tsv only")
    return outputs


def _per_position(res, block):
    """Projected attributions summed over the alphabet, ``(N, L)`` float32, read ``block`` rows at a time."""
    n, _, L = res.require_attributions()
    if res.attributions_are_hypothetical and 'hypothetical' not in res.shapes and not res.has_sequences:
        raise ValueError(f"{res.path}: the attributions are hypothetical and the file has no inputs to "
                         f"project them onto the sequence; rerun with --keep_inputs")
    X = numpy.empty((n, L), dtype=numpy.float32)
    for s in range(0, n, block):
        rows = numpy.arange(s, min(n, s + block))
        X[rows] = res.projected(rows).sum(axis=1)
    return X


def results_seqlets(results, motifs=None, query: str = 'attribution', threshold: float = 0.01,
                    min_len: int = 4, max_len: int = 25, flanks: int = 0, n_bins: int = 1000,
                    max_qvalue: float = 0.05, strand: Optional[str] = None, anchor: str = 'exact',
                    genomic: bool = True, block: int = 1024) -> pandas.DataFrame:
    """Seqlets of a deeplift-shap results file, named by motif and placed on the genome.

    Reads ``attributions`` (projected onto the sequence, :meth:`Results.projected`),
    sums them over the alphabet and calls seqlets with
    :func:`kipoi_tanger.seqlet.recursive_seqlets` (positive seqlets only, as
    tangermeme); names them with :func:`name_seqlets` when ``motifs`` is given
    (``query="onehot"`` reads the sequences, ``inputs``); places them with
    :func:`genomic_seqlets` when the file has region metadata.

    Parameters
    ----------
    results : str or Results
        A ``kipoi-tanger deeplift-shap`` HDF5 file.
    motifs : str or dict, optional
        A MEME motif file (or ``{name: PWM}``).
    query, max_qvalue
        As in :func:`name_seqlets`.
    threshold, min_len, max_len, flanks, n_bins
        ``recursive_seqlets``' ``threshold``, ``min_seqlet_len``,
        ``max_seqlet_len``, ``additional_flanks`` and ``n_bins``.
    strand : {None, 'rc', 'forward'}
        Whether the dataloader reverse-complemented minus-strand regions, when
        the file does not tell (:meth:`Results.reverse_minus`).
    anchor : {'exact', 'center'}
        The input covers its region exactly, or its central bases.
    genomic : bool, default True
        Place the seqlets on the genome (when the file has region metadata).
    block : int, default 1024
        Regions read at a time.

    Returns
    -------
    pandas.DataFrame
        ``example_idx`` (row of the file), ``start``, ``end`` (input positions),
        ``attribution``, ``p-value``, ``region_id``; the :func:`name_seqlets`
        columns with ``motifs``; ``chrom``, ``chrom_start``, ``chrom_end``,
        ``strand`` when placed. Ranked by p-value, as called.
    """
    from ..seqlet import recursive_seqlets
    from .results import Results
    res = results if isinstance(results, Results) else Results(results)
    n, A, L = res.require_attributions()
    if query not in ('attribution', 'onehot'):
        raise ValueError(f"--query: expected attribution or onehot, got {query!r}")
    _check_max_qvalue(max_qvalue)
    if query == 'onehot' and motifs is not None and not res.has_sequences:
        raise ValueError(f"--query onehot: {res.path} has no inputs (the sequences); rerun with "
                         f"--keep_inputs or use --query attribution")
    if motifs is not None and not isinstance(motifs, dict):
        motifs = read_motifs(motifs, alphabet_size=A)
    reverse = res.reverse_minus(strand) if genomic and res.ranges is not None else True
    X = _per_position(res, block)
    try:
        calls = recursive_seqlets(X, threshold=threshold, min_seqlet_len=min_len, max_seqlet_len=max_len,
                                  additional_flanks=flanks, n_bins=n_bins)
    except ValueError as e:     # named as this command takes them, not as recursive_seqlets does
        msg = str(e)
        for api, ours in _OPTION_NAMES:
            msg = msg.replace(f"recursive_seqlets: {api} ", f"--{ours}: ")
        raise ValueError(msg) from None
    del X
    calls = calls.reset_index(drop=True)
    if motifs is not None:
        parts = []
        ex = calls['example_idx'].to_numpy()
        for s in range(0, n, block):
            sel = numpy.flatnonzero((ex >= s) & (ex < s + block))
            if not len(sel):
                continue
            rows = numpy.arange(s, min(n, s + block))
            sub = calls.iloc[sel].assign(example_idx=ex[sel] - s)
            kw = ({'X': res.sequences(rows)} if query == 'onehot' else {'attributions': res.projected(rows)})
            named = name_seqlets(sub, motifs, query=query, max_qvalue=max_qvalue, **kw)
            parts.append(named.assign(example_idx=ex[sel]))
        if parts:
            calls = pandas.concat(parts).sort_index()
        else:
            calls = name_seqlets(calls, motifs, attributions=numpy.zeros((0, A, L)), max_qvalue=max_qvalue)
    if genomic and res.ranges is not None:
        try:
            calls = genomic_seqlets(calls, res.ranges, L, anchor=anchor, reverse_minus=reverse)
        except ValueError as e:
            raise ValueError(f"{res.path}: {e}".replace("pass anchor='center'", "pass --anchor center")) from None
    else:
        calls['region_id'] = res.ids[calls['example_idx'].to_numpy(dtype=numpy.int64)] if len(calls) else \
            numpy.zeros(0, dtype=str)
    return calls.reset_index(drop=True)


def write_seqlets(seqlets: pandas.DataFrame, outputs: Sequence[str], bed_extra: bool = False) -> list:
    """Write seqlets to ``.bed`` (:func:`write_bed`) and ``.tsv`` (:func:`write_tsv`) files.

    Every file is written next to its destination under a temporary name and
    renamed once all are complete: an error leaves no partial output.

    Returns
    -------
    list of str
        ``outputs``.
    """
    outputs = check_outputs(outputs, 'chrom' in seqlets)
    tmps = []
    try:
        for o in outputs:
            parent = os.path.dirname(os.path.abspath(o))
            os.makedirs(parent, exist_ok=True)
            tmp = os.path.join(parent, f".{os.path.basename(o)}.partial")
            tmps.append(tmp)
            if o.lower().endswith('.bed'):
                write_bed(seqlets, tmp, extra_columns=bed_extra)
            else:
                write_tsv(seqlets, tmp)
        for tmp, o in zip(tmps, outputs):
            os.replace(tmp, o)
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
    return outputs
