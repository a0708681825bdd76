"""Genome-browser tracks: per-base values placed at their regions' genomic
coordinates, written as bigWig (pyBigWig) or bedGraph.

Inputs are what kipoi_tanger's result files hold; only :func:`export_track`
(``kipoi-tanger export bigwig|bedgraph``) reads an HDF5 file. ``values`` is an ``(N, L)`` array (per-base attributions, ISM scores,
a profile prediction) or an ``(N, A, L)`` one reduced over the alphabet with
:func:`per_base`, and ``ranges`` the regions' metadata as Kipoi writes it
(``metadata/ranges/{chr, start, end, strand, id}``), see :func:`regions`.

Placement rules (shared with :mod:`kipoi_tanger.tools.seqlets`):

* Coordinates are 0-based, end exclusive, as in BED and Kipoi's ranges.
* Position ``i`` of a length-``L`` track of a ``+`` (or unstranded ``*``/``.``)
  region starting at ``start`` is the genomic base ``start + i``. A ``-``
  region's model input is the reverse complement of ``[start, end)`` (the
  convention of kipoiseq and of ``dataloaders/interval_onehot``), so its
  position ``i`` is the genomic base ``end - 1 - i``. Pass
  ``reverse_minus=False`` for data read without strand correction.
* ``anchor="exact"`` (default) requires ``L == end - start``;
  ``anchor="center"`` places a shorter track on the region's central ``L``
  bases, starting ``(end - start - L) // 2`` bases from the region's 5' end
  (``start`` on ``+``, ``end`` on ``-``): e.g. a BPNet-style profile head that
  predicts the central 1000 bp of a 2114-bp input.
* Where regions overlap, a base's value is the **mean** of the values that all
  regions covering it give it. Bases covered by no region are absent from the
  track (no value, not 0).
* A region on a chromosome missing from the chromosome sizes, or reaching
  past a chromosome's end (or below 0), is an error naming the file, unless
  ``out_of_bounds="clip"``, which drops the bases outside the chromosome.
* Output is sorted by chromosome name (byte order, as ``LC_ALL=C sort -k1,1``
  and bigWig's chromosome index) and then by position; values are written as
  float32 (bigWig's precision).
"""
import os
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Tuple, Union

import numpy

__all__ = ['Regions', 'regions', 'read_chrom_sizes', 'per_base', 'place', 'track_intervals',
           'write_bigwig', 'write_bedgraph', 'export_track', 'track_values']

_STRANDS = {'+': '+', '-': '-', '*': '.', '.': '.', '': '.'}


@dataclass(frozen=True)
class Regions:
    """Regions as numpy arrays: ``chrom`` (str), ``start``/``end`` (int64,
    0-based, end exclusive), ``strand`` (``+``, ``-`` or ``.``) and ``id`` (str)."""
    chrom: numpy.ndarray
    start: numpy.ndarray
    end: numpy.ndarray
    strand: numpy.ndarray
    id: numpy.ndarray

    def __len__(self):
        return len(self.chrom)

    def label(self, i: int) -> str:
        """``region i (id r03, chr1:850-1350 -)`` for error messages."""
        return (f"region {i} (id {self.id[i]}, {self.chrom[i]}:{self.start[i]}-{self.end[i]} "
                f"{self.strand[i]})")


def _strings(values):
    out = []
    for v in numpy.asarray(values, dtype=object).ravel():
        if isinstance(v, (bytes, numpy.bytes_)):
            v = v.decode()
        out.append(str(v))
    return numpy.asarray(out, dtype=str) if out else numpy.zeros(0, dtype=str)


def regions(ranges, n: Optional[int] = None, name: str = 'ranges') -> Regions:
    """Validate region metadata into :class:`Regions`.

    Parameters
    ----------
    ranges : Regions, mapping or pandas.DataFrame
        Columns ``chr`` (or ``chrom``), ``start``, ``end``, and optionally
        ``strand`` (``+``, ``-``, ``*`` or ``.``; default ``.``) and ``id``
        (default the row number), e.g. the ``metadata/ranges`` group of a
        results file read into a dict. Byte strings (h5py) are decoded.
    n : int, optional
        The number of regions the values have; a different count is an error.
    name : str, optional
        What to call ``ranges`` in error messages.

    Returns
    -------
    Regions
    """
    if isinstance(ranges, Regions):
        out = ranges
    else:
        cols = {k: ranges[k] for k in ranges.keys()}
        chrom = cols.get('chr', cols.get('chrom'))
        missing = [k for k, v in (('chr', chrom), ('start', cols.get('start')),
                                  ('end', cols.get('end'))) if v is None]
        if missing:
            raise ValueError(f"{name}: missing field(s) {', '.join(missing)}; expected chr, start, "
                             f"end and optionally strand, id (Kipoi's metadata/ranges)")
        chrom = _strings(chrom)
        try:
            start = numpy.asarray(cols['start']).astype(numpy.int64).ravel()
            end = numpy.asarray(cols['end']).astype(numpy.int64).ravel()
        except (TypeError, ValueError):
            raise ValueError(f"{name}: start and end must be integers") from None
        k = len(chrom)
        strand = (_strings(cols['strand']) if cols.get('strand') is not None
                  else numpy.full(k, '.'))
        ids = (_strings(cols['id']) if cols.get('id') is not None
               else numpy.arange(k).astype(str))
        for field, arr in (('start', start), ('end', end), ('strand', strand), ('id', ids)):
            if len(arr) != k:
                raise ValueError(f"{name}: {field} has {len(arr)} entries but chr has {k}")
        bad = [s for s in numpy.unique(strand) if s not in _STRANDS]
        if bad:
            raise ValueError(f"{name}: strand {str(bad[0])!r} is not one of '+', '-', '*', '.'")
        strand = numpy.asarray([_STRANDS[s] for s in strand], dtype='<U1')
        out = Regions(chrom, start, end, strand, ids)
        wrong = numpy.flatnonzero(out.end <= out.start)
        if len(wrong):
            raise ValueError(f"{name}: {out.label(wrong[0])} has end <= start")
    if n is not None and len(out) != n:
        raise ValueError(f"{name}: {len(out)} regions, but the values have {n} rows")
    return out


def read_chrom_sizes(path: Union[str, os.PathLike]) -> dict:
    """Chromosome lengths from a chrom-sizes file, a FASTA index or a FASTA.

    Parameters
    ----------
    path : str
        A chrom-sizes file (``name<TAB>length`` per line, as UCSC's
        ``fetchChromSizes`` writes), a ``.fai`` index (first two columns used),
        or an indexed FASTA (its ``PATH.fai`` is read; it is not created).

    Returns
    -------
    dict
        ``{chromosome: length}`` in the file's order.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"chrom sizes {path}: file not found")
    with open(path, 'rb') as fh:
        head = fh.read(1)
    if head == b'>':
        fai = path + '.fai'
        if not os.path.isfile(fai):
            raise ValueError(f"chrom sizes {path}: a FASTA without an index ({fai} not found); "
                             f"create it with 'samtools faidx {path}' or pass a chrom-sizes file")
        path = fai
    sizes = {}
    with open(path) as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip() or line.startswith('#'):
                continue
            f = line.rstrip('\n\r').split('\t')
            if len(f) < 2:
                f = line.split()
            try:
                name, length = f[0], int(f[1])
            except (IndexError, ValueError):
                raise ValueError(f"chrom sizes {path} line {n}: expected 'name<TAB>length'; got "
                                 f"{line.rstrip()[:60]!r}") from None
            if length <= 0:
                raise ValueError(f"chrom sizes {path} line {n}: length of {name} must be > 0")
            if name in sizes:
                raise ValueError(f"chrom sizes {path} line {n}: chromosome {name} listed twice")
            sizes[name] = length
    if not sizes:
        raise ValueError(f"chrom sizes {path}: no chromosomes")
    return sizes


def _sizes(chrom_sizes):
    """``(dict, description)`` from a path or a mapping."""
    if isinstance(chrom_sizes, Mapping):
        return {str(k): int(v) for k, v in chrom_sizes.items()}, 'chrom_sizes'
    return read_chrom_sizes(chrom_sizes), f"chrom sizes {os.fspath(chrom_sizes)}"


def per_base(values, X=None, how: str = 'sum') -> numpy.ndarray:
    """Reduce ``(N, A, L)`` values to one value per base, ``(N, L)``.

    Parameters
    ----------
    values : array-like, shape=(N, A, L) or (N, L)
        Attributions, ISM scores or any per-base, per-character values; an
        ``(N, L)`` array is returned as it is (``how="observed"`` excepted).
    X : array-like, shape=(N, A, L), optional
        One-hot sequences, for ``how="observed"``.
    how : {"sum", "observed", "mean"}
        ``sum`` over the alphabet (for projected attributions, where only the
        observed base is non-zero, this is the observed base's value);
        ``observed``: the value of the observed base (``(values * X).sum(1)``,
        e.g. for hypothetical attributions); ``mean`` over the alphabet (e.g.
        the mean effect of the substitutions at a base in ISM).

    Returns
    -------
    numpy.ndarray, shape=(N, L), float64
    """
    values = _numpy(values, 'values')
    if how not in ('sum', 'observed', 'mean'):
        raise ValueError(f"per_base: how must be 'sum', 'observed' or 'mean'; got {how!r}")
    if values.ndim == 2 and how != 'observed':
        return values.astype(numpy.float64)
    if values.ndim != 3:
        raise ValueError(f"per_base: values must have shape (N, A, L) or (N, L); got "
                         f"{values.shape}")
    if how == 'sum':
        return values.sum(1, dtype=numpy.float64)
    if how == 'mean':
        return values.mean(1, dtype=numpy.float64)
    if X is None:
        raise ValueError("per_base: how='observed' needs the one-hot sequences X")
    X = _numpy(X, 'X')
    if X.shape != values.shape:
        raise ValueError(f"per_base: X has shape {X.shape} but values have {values.shape}")
    return (values.astype(numpy.float64) * X).sum(1)


def _numpy(a, name):
    if hasattr(a, 'detach'):
        a = a.detach().cpu()
        a = a.float().numpy() if str(a.dtype) == 'torch.bfloat16' else a.numpy()
    return numpy.asarray(a)


def place(regs: Regions, i: int, length: int, anchor: str = 'exact',
          reverse_minus: bool = True) -> Tuple[int, bool]:
    """Where a length-``length`` track of region ``i`` lies on the genome.

    Returns ``(genomic start, reversed)``: the track covers
    ``[start, start + length)``, and when ``reversed`` its position ``j`` is the
    genomic base ``start + length - 1 - j``. See the module docstring for the rule.
    """
    width = int(regs.end[i] - regs.start[i])
    if anchor == 'exact':
        if length != width:
            raise ValueError(f"{regs.label(i)} is {width} bp wide but the values have {length} "
                             f"positions; pass anchor='center' if they cover its central "
                             f"{length} bp")
        off = 0
    elif anchor == 'center':
        if length > width:
            raise ValueError(f"{regs.label(i)} is {width} bp wide, shorter than the values "
                             f"({length} positions)")
        off = (width - length) // 2
    else:
        raise ValueError(f"anchor must be 'exact' or 'center'; got {anchor!r}")
    rev = bool(reverse_minus and regs.strand[i] == '-')
    start = int(regs.end[i]) - off - length if rev else int(regs.start[i]) + off
    return start, rev


def track_intervals(values, ranges, chrom_sizes=None, anchor: str = 'exact',
                    out_of_bounds: str = 'error', reverse_minus: bool = True
                    ) -> Iterator[Tuple[str, int, numpy.ndarray]]:
    """Per-base values on the genome, overlaps averaged, in sorted order.

    Parameters
    ----------
    values : array-like, shape=(N, L)
        One value per position of each region's track (see :func:`per_base`).
    ranges : mapping, DataFrame or Regions
        The N regions (:func:`regions`).
    chrom_sizes : str or mapping, optional
        Chromosome lengths (:func:`read_chrom_sizes`); without them, regions
        are not checked against chromosome ends.
    anchor, reverse_minus
        Placement of each track on its region (:func:`place`).
    out_of_bounds : {"error", "clip"}
        What to do with bases outside a chromosome.

    Yields
    ------
    (chrom, start, values)
        Runs of consecutive covered bases: ``values[j]`` is the (mean) value of
        base ``start + j``. Chromosomes in byte order, runs by position.
    """
    vals = _numpy(values, 'values')
    if vals.ndim != 2:
        raise ValueError(f"values must have shape (N, L); got {vals.shape} (reduce (N, A, L) "
                         f"with per_base)")
    vals = vals.astype(numpy.float64)
    bad = ~numpy.isfinite(vals)
    if bad.any():
        i, j = numpy.argwhere(bad)[0]
        raise ValueError(f"values: {int(bad.sum())} NaN/inf value(s), the first in row {i} at "
                         f"position {j}")
    regs = regions(ranges, n=len(vals))
    if out_of_bounds not in ('error', 'clip'):
        raise ValueError(f"out_of_bounds must be 'error' or 'clip'; got {out_of_bounds!r}")
    sizes, where = _sizes(chrom_sizes) if chrom_sizes is not None else (None, None)
    L = vals.shape[1]
    by_chrom = {}
    for i in range(len(regs)):
        start, rev = place(regs, i, L, anchor, reverse_minus)
        lo, hi = start, start + L
        c = str(regs.chrom[i])
        if sizes is not None:
            if c not in sizes:
                some = ', '.join(list(sizes)[:3]) + (', ...' if len(sizes) > 3 else '')
                raise ValueError(f"{where}: has no chromosome {c!r} for {regs.label(i)} (it has "
                                 f"{some})")
            if lo < 0 or hi > sizes[c]:
                if out_of_bounds == 'error':
                    raise ValueError(f"{where}: {regs.label(i)} places bases {lo}-{hi} past the "
                                     f"end of {c} (length {sizes[c]}); pass out_of_bounds='clip' "
                                     f"to drop them")
                lo, hi = max(lo, 0), min(hi, sizes[c])
                if hi <= lo:
                    continue
        elif lo < 0:
            if out_of_bounds == 'error':
                raise ValueError(f"{regs.label(i)} places bases below position 0")
            lo = 0
        by_chrom.setdefault(c, []).append((lo, hi, start, rev, i))
    for c in sorted(by_chrom, key=lambda s: s.encode()):
        items = sorted(by_chrom[c])
        k = 0
        while k < len(items):
            # a cluster: regions that overlap one another, directly or through others
            c_lo, c_hi, m = items[k][0], items[k][1], k + 1
            while m < len(items) and items[m][0] < c_hi:
                c_hi = max(c_hi, items[m][1])
                m += 1
            total = numpy.zeros(c_hi - c_lo)
            count = numpy.zeros(c_hi - c_lo, dtype=numpy.int64)
            for lo, hi, start, rev, i in items[k:m]:
                row = vals[i, ::-1] if rev else vals[i]
                total[lo - c_lo:hi - c_lo] += row[lo - start:hi - start]
                count[lo - c_lo:hi - c_lo] += 1
            # adjacent, non-overlapping regions stay separate clusters; every base here is covered
            yield c, c_lo, total / count
            k = m


def write_bigwig(path, values, ranges, chrom_sizes, anchor: str = 'exact',
                 out_of_bounds: str = 'error', reverse_minus: bool = True) -> str:
    """Write per-base values to a bigWig file with pyBigWig.

    The header lists every chromosome of ``chrom_sizes`` (byte order); entries
    are fixed-step runs of span 1. Overlapping regions are averaged (see the
    module docstring). Parameters as in :func:`track_intervals`.

    Returns
    -------
    str
        ``path``.
    """
    import pyBigWig
    sizes, _ = _sizes(chrom_sizes)
    # checked against chrom_sizes itself, so that errors name its file
    runs = list(track_intervals(values, ranges, chrom_sizes, anchor, out_of_bounds, reverse_minus))
    path = os.fspath(path)
    bw = pyBigWig.open(path, 'w')
    if bw is None:
        raise ValueError(f"bigwig {path}: cannot be created")
    try:
        bw.addHeader([(c, sizes[c]) for c in sorted(sizes, key=lambda s: s.encode())])
        for c, start, v in runs:
            bw.addEntries(c, int(start), values=v.astype(numpy.float64), span=1, step=1)
    finally:
        bw.close()
    return path


def write_bedgraph(path, values, ranges, chrom_sizes=None, anchor: str = 'exact',
                   out_of_bounds: str = 'error', reverse_minus: bool = True,
                   track_line: Optional[str] = None) -> str:
    """Write per-base values to a bedGraph file (``chrom start end value``).

    Consecutive bases with the same float32 value are merged into one line;
    values are written with 9 significant digits (float32 round-trips).
    ``track_line`` (e.g. ``'track type=bedGraph name=attr'``) is written first
    when given. Parameters as in :func:`track_intervals`.

    Returns
    -------
    str
        ``path``.
    """
    runs = track_intervals(values, ranges, chrom_sizes, anchor, out_of_bounds, reverse_minus)
    path = os.fspath(path)
    with open(path, 'w') as fh:
        if track_line:
            fh.write(track_line.rstrip('\n') + '\n')
        for c, start, v in runs:
            v = v.astype(numpy.float32)
            cut = numpy.flatnonzero(v[1:] != v[:-1]) + 1
            lo = numpy.concatenate([[0], cut])
            hi = numpy.concatenate([cut, [len(v)]])
            fh.writelines(f"{c}\t{start + a}\t{start + b}\t{v[a]:.9g}\n"
                          for a, b in zip(lo.tolist(), hi.tolist()))
    return path


# ---------------------------------------------------------------------------
# from a results file

#: block size (bytes) of the ISM predictions read at a time
_ISM_BLOCK_BYTES = 64 << 20


def _task(res, dataset, n, task, what):
    """The column ``task`` (index or column label) of ``n`` columns; 0 when ``n == 1`` and none is given."""
    from .results import ResultsError
    names = res.column_names(dataset, n)
    if task is None:
        if n != 1:
            raise ResultsError(f"--values {what}: {n} columns ({', '.join(names[:5])}{'...' if n > 5 else ''}); "
                               f"choose one with --task")
        return 0, names
    if str(task) in names:
        return names.index(str(task)), names
    if str(task).isdigit() and int(task) < n:
        return int(task), names
    raise ResultsError(f"--task {task}: expected an index below {n} or one of {', '.join(names[:10])}")


def _ism_values(res, values, reduce, task):
    """Per-base ISM effects of a ``kipoi-tanger ism`` file: ``ism`` ``(N, A, W, *output)`` minus
    ``y0`` ``(N, *output)``, one output column (``--task``), reduced over the alphabet: ``mean``
    (default; the sequence's own base counts as no change, so this is (A - 1) / A of the mean
    change of the substitutions) or ``sum`` (the total change of the substitutions). Positions
    ``[ism_start, ism_start + W)`` of the input (the ``ism_start`` attribute)."""
    import h5py
    from .results import ResultsError
    cands = sorted(d for d in res.shapes if d == 'ism' or d.startswith('ism/'))
    if not cands:
        raise ResultsError(f"{res.path}: --values {values}: no 'ism' dataset (op: {res.op}); expected the "
                           f"output of kipoi-tanger ism")
    if values == 'ism':
        if len(cands) > 1:
            raise ResultsError(f"{res.path}: --values ism: {len(cands)} outputs; choose one with --values "
                               f"ism/<output> ({', '.join(res.output_name(d) for d in cands)})")
        name = cands[0]
    else:
        name = next((d for d in cands if d == values or res.output_name(d) == values[4:]), None)
        if name is None:
            raise ResultsError(f"{res.path}: --values {values}: no such output; the file has "
                               f"{', '.join(res.output_name(d) for d in cands)}")
    y0 = 'y0' + name[3:]
    shape = res.shapes[name]
    if y0 not in res.shapes or len(shape) < 3 or res.shapes[y0] != shape[:1] + shape[3:]:
        raise ResultsError(f"{res.path}: '{name}' {shape} and '{y0}' {res.shapes.get(y0)} are not the ism op's "
                           f"(N, A, W, *output) and (N, *output)")
    out_shape = tuple(k for k in shape[3:] if k != 1)
    if len(out_shape) > 1:
        raise ResultsError(f"{res.path}: --values {values}: the output has shape {shape[3:]} per region: one "
                           f"value per base needs one column; run ism with --output on a (tasks,) output, or "
                           f"with --reduce")
    n_cols = out_shape[0] if out_shape else 1
    chosen = res.parameters.get('model_output')
    output = f'ism/{chosen}' if name == 'ism' and chosen is not None else name   # --output: plain 'ism'
    t, names = _task(res, output, n_cols, task, values)
    reduce = reduce or 'mean'
    if reduce not in ('mean', 'sum'):
        raise ResultsError(f"--reduce {reduce}: for ISM, mean or sum over the alphabet (the sequence's own base "
                           f"is its unchanged prediction)")
    N, A, W = shape[:3]
    step = max(1, _ISM_BLOCK_BYTES // max(1, A * W * int(numpy.prod(shape[3:])) * 4))
    out = numpy.empty((N, W), dtype=numpy.float64)
    with h5py.File(res.path, 'r') as f:
        for s in range(0, N, step):
            e = min(N, s + step)
            ism = f[name][s:e].reshape(e - s, A, W, -1)[..., t].astype(numpy.float64)
            base = f[y0][s:e].reshape(e - s, -1)[:, t].astype(numpy.float64)
            delta = ism - base[:, None, None]
            out[s:e] = delta.mean(axis=1) if reduce == 'mean' else delta.sum(axis=1)
    start = res.attrs.get('ism_start', res.parameters.get('start')) or 0
    col = f", {names[t]}" if n_cols > 1 else ""
    return out, int(start), f"ISM {res.output_name(output)}{col}: {reduce} change over {''.join(res.alphabet)}", \
        False


def _reduce_scores(res, name, rows, how, hypothetical):
    from .results import ResultsError
    v = res._read(name, rows).astype(numpy.float32, copy=False)
    if v.ndim == 2:
        return v.astype(numpy.float64)
    if how == 'observed':
        x = res.sequences(rows)
        if x is None:
            raise ResultsError(f"{res.path}: --reduce observed needs the sequences (inputs); rerun with "
                               f"--keep_inputs")
        if x.shape != v.shape:
            raise ResultsError(f"{res.path}: inputs give one-hot {x.shape[1:]} per region, '{name}' "
                               f"{v.shape[1:]}")
        return per_base(v, x, 'observed')
    return per_base(v, how=how)


def track_values(results, values: str = 'attributions', reduce: Optional[str] = None,
                 task=None, block: int = 1024):
    """Per-base values of a results file, ``(N, W)`` float64, and where they start in the input.

    Parameters
    ----------
    results : str or Results
    values : str
        ``attributions`` (deeplift-shap), ``ism`` or ``ism/<output>`` (the
        ``kipoi-tanger ism`` predictions: :func:`_ism_values`) or
        ``preds/<output>`` (a profile output, by its schema name or its dataset
        key, e.g. ``preds/profile`` or ``preds/0``).
    reduce : {None, 'sum', 'observed', 'mean'}
        How ``(N, A, L)`` attributions become one value per base
        (:func:`per_base`). Default: ``sum`` for projected scores (the observed
        base's value), ``observed`` for hypothetical ones (reads ``inputs``).
        ``sum`` of hypothetical scores (no base's score) is refused. For ISM:
        ``mean`` (default) or ``sum`` of the changes over the alphabet.
    task : int or str, optional
        The column (index or column label) of a profile output ``(N, T, L)``
        or of an ISM output ``(T,)``; needed when ``T > 1``.

    Returns
    -------
    (numpy.ndarray, int, str, bool)
        The values, the input position of their first column (an ISM window's
        start, else 0), a description (``attributions, sum over ACGT``), and
        whether they are an ``(N, L)`` output, whose columns may be targets
        rather than bases.
    """
    from .results import Results, ResultsError
    res = results if isinstance(results, Results) else Results(results)
    if values == 'ism' or values.startswith('ism/'):
        return _ism_values(res, values, reduce, task)
    if values == 'attributions':
        n, A, L = res.require_attributions()
        name, hyp = 'attributions', res.attributions_are_hypothetical
        shape = res.shapes[name]
        if reduce is None:
            reduce = 'observed' if hyp else 'sum'
        if reduce not in ('sum', 'observed', 'mean'):
            raise ResultsError(f"--reduce: expected sum, observed or mean, got {reduce!r}")
        if reduce == 'sum' and hyp:
            raise ResultsError(f"{res.path}: '{name}' holds hypothetical scores (every base at every position): "
                               f"their sum is no base's score; use --reduce observed (the sequence's bases, "
                               f"reads inputs) or --reduce mean")
        out = numpy.empty((n, L), dtype=numpy.float64)
        for s in range(0, n, block):
            rows = numpy.arange(s, min(n, s + block))
            out[rows] = _reduce_scores(res, name, rows, reduce, hyp)
        alphabet = ''.join(res.alphabet)
        how = {'sum': f'sum over {alphabet}', 'observed': 'the sequence\'s base', 'mean': f'mean over {alphabet}'}
        return out, 0, f"{name}, {how[reduce]}", False
    if values == 'preds' or values.startswith('preds/'):
        key = values[6:]
        cands = [d for d in res.shapes if d == 'preds' or d.startswith('preds/')]
        name = next((d for d in cands if d == values), None) or next(
            (d for d in cands if key and res.output_name(d) == key), None)
        if name is None:
            raise ResultsError(f"{res.path}: --values {values}: no such output; the file has "
                               f"{', '.join(res.output_name(d) for d in sorted(cands)) or 'no preds'}")
        shape = res.shapes[name]
        if reduce is not None:
            raise ResultsError("--reduce: only for attributions and ism (a profile output has one value per base)")
        label = res.output_name(name)
        if len(shape) == 3:
            t, names = _task(res, name, shape[1], task, values)
            out = numpy.empty((shape[0], shape[2]), dtype=numpy.float64)
            for s in range(0, shape[0], block):
                rows = numpy.arange(s, min(shape[0], s + block))
                out[rows] = res._read(name, rows)[:, t]
            return out, 0, f"{label}, track {names[t]}", False
        if len(shape) != 2 or task not in (None, 0, '0'):
            raise ResultsError(f"{res.path}: --values {values}: '{name}' has shape {shape}; expected a profile "
                               f"(N, L) or (N, tracks, L)" + (" (--task is for (N, tracks, L))" if len(shape) == 2
                                                                else ""))
        return res._read(name).astype(numpy.float64), 0, label, True
    raise ResultsError(f"--values: expected attributions, ism[/<output>] or preds/<output>, got {values!r}")


def _window_ranges(res, start, width, reverse_minus):
    """The regions cut to the input positions ``[start, start + width)`` (exact placement)."""
    r = regions(res.ranges)
    rev = (r.strand == '-') & bool(reverse_minus)
    new_s = numpy.where(rev, r.end - start - width, r.start + start)
    return Regions(r.chrom, new_s, new_s + width, r.strand, r.id)


# suffixes of binary or compressed files: a plain-text bedGraph must not be named like one
_NOT_BEDGRAPH = ('.bw', '.bigwig', '.bb', '.bigbed', '.gz', '.bgz', '.bz2', '.xz', '.zip', '.h5', '.hdf5',
                 '.npy', '.npz')


def export_track(path: str, output: str, chrom_sizes, fmt: Optional[str] = None, values: str = 'attributions',
                 reduce: Optional[str] = None, task=None, anchor: Optional[str] = None,
                 out_of_bounds: str = 'error', strand: Optional[str] = None,
                 track_line: Optional[str] = None) -> dict:
    """Write per-base values of a results file as a bigWig or bedGraph track.

    Parameters
    ----------
    path : str
        HDF5 results with region metadata (``--keep_metadata``).
    output : str
        The track file; written under a temporary name and renamed when complete.
    chrom_sizes : str
        A chrom-sizes file, a ``.fai`` index or an indexed FASTA (:func:`read_chrom_sizes`).
    fmt : {'bigwig', 'bedgraph'}, optional
        Default from the suffix (``.bw``/``.bigwig``, else bedGraph).
    values, reduce, task
        What to write (:func:`track_values`).
    anchor : {'exact', 'center'}, optional
        Default ``exact``, ``center`` for ``preds/...`` (a profile head covers the
        central bases of the input).
    out_of_bounds, strand
        Bases past a chromosome end (:func:`track_intervals`); whether minus-strand
        regions were reverse-complemented (:meth:`Results.reverse_minus`).
    track_line : str, optional
        bedGraph only: a first ``track ...`` line.

    Returns
    -------
    dict
        ``{'output', 'format', 'values' (description), 'regions', 'reverse_minus'}``.
    """
    from .results import Results, ResultsError, check_output_file, write_atomically
    check_output_file(output)
    res = Results(path)
    bigwig_suffix = output.lower().endswith(('.bw', '.bigwig'))
    fmt = fmt or ('bigwig' if bigwig_suffix else 'bedgraph')
    if fmt not in ('bigwig', 'bedgraph'):
        raise ResultsError(f"format: expected bigwig or bedgraph, got {fmt!r}")
    if fmt == 'bigwig' and not bigwig_suffix:
        raise ResultsError(f"-o/--output: {output}: a bigWig track is named .bw or .bigwig")
    if fmt == 'bedgraph' and output.lower().endswith(_NOT_BEDGRAPH):
        raise ResultsError(f"-o/--output: {output}: a bedGraph track is plain text (e.g. .bedGraph or .bg), "
                           f"not {os.path.splitext(output)[1]}")
    if res.ranges is None:
        raise ResultsError(f"{res.path}: no metadata/ranges (chr, start, end): the values have no genomic "
                           f"coordinates; rerun with --keep_metadata")
    if track_line is not None and fmt != 'bedgraph':
        raise ResultsError("--track_line: bedGraph only")
    sizes, _ = _sizes(chrom_sizes)
    reverse = res.reverse_minus(strand)
    vals, start, what, columns = track_values(res, values, reduce, task)
    if anchor is None and columns:
        widths = sorted(set((res.ranges['end'] - res.ranges['start']).tolist()))
        if widths != [vals.shape[1]]:
            raise ResultsError(f"{res.path}: --values {values} has {vals.shape[1]} value(s) per region, not one "
                               f"per base of its {'/'.join(map(str, widths[:3]))}-bp regions: separate targets "
                               f"make no track; if they are a profile of the regions' central bases, pass "
                               f"--anchor center")
    anchor = anchor or ('center' if values.startswith('preds') else 'exact')
    ranges = res.ranges
    if start:       # an ISM window [start, start + W) of the input
        ranges = _window_ranges(res, start, vals.shape[1], reverse)

    def write(tmp):
        try:
            if fmt == 'bigwig':
                write_bigwig(tmp, vals, ranges, chrom_sizes, anchor, out_of_bounds, reverse)
            else:
                write_bedgraph(tmp, vals, ranges, chrom_sizes, anchor, out_of_bounds, reverse, track_line)
        except ValueError as e:
            raise ResultsError(f"{res.path}: {e}".replace("pass anchor='center'", "pass --anchor center")
                               .replace("pass out_of_bounds='clip'", "pass --out_of_bounds clip")) from None
    write_atomically(output, write)
    return {'output': output, 'format': fmt, 'values': what, 'regions': len(vals), 'reverse_minus': reverse,
            'chromosomes': len(sizes)}
