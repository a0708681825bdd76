"""Variant-centred reference and alternative windows of a fixed length.

Alleles are first trimmed of the bases they share (the leading VCF padding
base of indels, then any common suffix), giving ``r`` reference and ``a``
alternative bases starting at 0-based ``p``. With ``m = max(r, a)`` and the
model's input length ``L``, the longer allele starts at window index

    ``c = L // 2 - m // 2``

(tangermeme's centring of ``substitute``/``marginalize``; for odd ``L`` this
is also kipoi-veff2's ``Interval.resize``, for even ``L`` it is one base to
the right of it). The length stays ``L`` following tangermeme's
``deletion_effect``/``insertion_effect`` with ``left=False``: the extra
bases a deletion needs and the surplus an insertion makes are on the right.

``strand='+'`` (the model reads the forward strand)

* SNV/MNV (``r == a``): genome ``[p - c, p - c + L)``; the alt window
  substitutes ``[c, c + r)``.
* deletion (``r > a``): genome ``[p - c, p - c + L + r - a)``; ref is its
  first ``L`` bases (deleted bases at ``[c, c + r)``), alt removes them and
  has exactly ``L`` bases.
* insertion (``r < a``): genome ``[p - c, p - c + L)``; the alt allele goes
  at ``[c, c + a)`` and the window is cut back to its first ``L`` bases.

``strand='-'`` (the model reads the reverse complement): the same recipe in
reverse-complement coordinates, i.e. mirrored in the genome: the allele
starts at index ``c`` of the *reverse-complemented* window, the genome span
is ``[p + r + c - L - max(0, r - a), p + r + c)`` (extra bases on the genome's
left, which is the right of what the model sees) and both windows are
returned reverse-complemented. For odd ``L`` and an SNV both strands use the
same genome span.

Bad records are never turned into windows; each is reported once as a
:class:`Skipped` with a reason: ``ref_mismatch`` (the REF differs from the
FASTA; the VCF line is named), ``chrom_missing``, ``symbolic_allele``
(``<DEL>``, ``*``, ``.``, breakends), ``bad_allele`` (characters other than
ACGTN), ``ref_equals_alt``, ``off_chromosome`` (the window runs past an
end of the chromosome) and ``allele_too_long`` (``c < 0``: the longer allele
cannot be centred in the window). ``strict=True`` raises
:class:`VariantError` with one line instead. FASTA bases other than ACGT
(N, IUPAC codes, after upper-casing soft-masked ones) become all-zero
columns. An index (``.fai``) older than the FASTA is rebuilt.
"""
import csv
from typing import Iterable, Iterator, List, NamedTuple, Union

import numpy
import torch

from .vcf import Variant, VariantError

__all__ = ['Window', 'Skipped', 'VariantBatch', 'REASONS', 'window_span', 'variant_windows',
           'batches', 'write_skipped_tsv', 'reverse_complement_codes']

REASONS = {
    'ref_mismatch': "REF differs from the FASTA",
    'chrom_missing': "chromosome not in the FASTA",
    'symbolic_allele': "symbolic or missing ALT allele",
    'bad_allele': "allele with characters other than ACGTN",
    'ref_equals_alt': "ALT equals REF",
    'off_chromosome': "window runs off the chromosome",
    'allele_too_long': "allele longer than the window",
}

_CODES = numpy.full(256, 4, dtype=numpy.uint8)   # 4: N (all-zero column)
for _i, _c in enumerate('ACGT'):
    _CODES[ord(_c)] = _CODES[ord(_c.lower())] = _i
_COMPLEMENT = numpy.array([3, 2, 1, 0, 4], dtype=numpy.uint8)
_ALLELE_OK = set('ACGTN')


class Window(NamedTuple):
    """The two windows of one variant, as base codes (0-3 = ACGT, 4 = N).

    ``span`` is the 0-based, half-open genome interval fetched; ``allele``
    the index where the (longer) allele starts in the returned windows
    (which are reverse-complemented for ``strand='-'``).
    """
    variant: Variant
    kind: str
    span: tuple
    allele: int
    ref: numpy.ndarray
    alt: numpy.ndarray


class Skipped(NamedTuple):
    """A variant that got no windows, with the reason (a key of REASONS)."""
    variant: Variant
    reason: str
    detail: str


class VariantBatch(NamedTuple):
    """Windows one-hot encoded ``(B, 4, L)`` (int8), their variants, and the
    records skipped since the previous batch."""
    variants: List[Variant]
    ref: torch.Tensor
    alt: torch.Tensor
    windows: List[Window]
    skipped: List[Skipped]


def reverse_complement_codes(codes):
    return _COMPLEMENT[codes[..., ::-1]]


def _trim(ref, alt, pos):
    """Drop shared leading then trailing bases: (ref', alt', 0-based start)."""
    k = 0
    while k < min(len(ref), len(alt)) and ref[k] == alt[k]:
        k += 1
    ref, alt = ref[k:], alt[k:]
    j = 0
    while j < min(len(ref), len(alt)) and ref[-1 - j] == alt[-1 - j]:
        j += 1
    if j:
        ref, alt = ref[:len(ref) - j], alt[:len(alt) - j]
    return ref, alt, pos - 1 + k


def window_span(p, r, a, length, strand='+'):
    """Genome span and allele offset of a trimmed variant's windows.

    Parameters
    ----------
    p : int
        0-based start of the trimmed reference allele (for an insertion: the
        position the bases go before).
    r, a : int
        Lengths of the trimmed REF and ALT alleles.
    length : int
        The model's input length L.
    strand : {'+', '-'}
        Which strand the model reads.

    Returns
    -------
    (start, end, offset, c)
        The genome interval ``[start, end)`` to fetch, the offset of the
        allele within it (genome orientation) and ``c``, the allele's index
        in the windows the model sees.
    """
    c = length // 2 - max(r, a) // 2
    extra = max(0, r - a)
    if strand == '+':
        start = p - c
        return start, start + length + extra, c, c
    end = p + r + c
    start = end - length - extra
    return start, end, p - start, c


def _fasta_problem(path, e):
    """Why pyfaidx cannot open ``path``, for a one-line error (its own advice names its API)."""
    import os
    with open(path, 'rb') as f:
        gz = f.read(2) == b'\x1f\x8b'
    if gz and isinstance(e, ImportError):
        return ("a gzipped FASTA, which needs Biopython (pip install biopython) and bgzip compression; "
                "or decompress it")
    fai = path + '.fai'
    if isinstance(e, OSError) and 'writable' in str(e):
        what = f"its index {fai} is older than the FASTA" if os.path.exists(fai) else f"no index {fai}"
        return f"{what}, and it cannot be written there; copy the FASTA to a writable directory (indexed there)"
    return f"not a readable FASTA ({type(e).__name__}: {e})"


class _Fasta:
    """pyfaidx reads through a block cache (variants come sorted, windows overlap)."""

    def __init__(self, path, block=1 << 20):
        import pyfaidx
        try:
            # rebuild=True: an index older than the FASTA is rebuilt (pyfaidx would otherwise read the new
            # FASTA at the old offsets, with a warning only)
            self.fa = pyfaidx.Fasta(path, as_raw=True, sequence_always_upper=True, rebuild=True)
        except Exception as e:
            raise VariantError(f"{path}: {_fasta_problem(path, e)}") from None
        self.lengths = {k: len(v) for k, v in self.fa.items()}
        self.block, self.cache = block, (None, 0, 0, '')

    def fetch(self, chrom, start, end):
        c, s, e, seq = self.cache
        if c != chrom or start < s or end > e:
            s = max(0, start - 1024)
            e = min(self.lengths[chrom], max(end, s + self.block))
            seq = self.fa[chrom][s:e]
            self.cache = (chrom, s, e, seq)
        return seq[start - s:end - s]

    def close(self):
        self.fa.close()


def _kind(r, a):
    if r == a:
        return 'snv' if r == 1 else 'mnv'
    if a == 0:
        return 'deletion'
    if r == 0:
        return 'insertion'
    return 'complex'


def _codes(s):
    return _CODES[numpy.frombuffer(s.encode('ascii'), dtype=numpy.uint8)]


def variant_windows(variants: Iterable[Variant], fasta: str, length: int, strand: str = '+',
                    strict: bool = False, source: str = 'VCF') -> Iterator[Union[Window, Skipped]]:
    """Windows for each variant, or a :class:`Skipped` record saying why not.

    Parameters
    ----------
    variants : iterable of Variant
        E.g. :func:`read_vcf`.
    fasta : str
        Indexed (or indexable) FASTA of the reference genome.
    length : int
        The model's input length.
    strand : {'+', '-'}, optional
        The strand the model reads (see the module docstring). Default '+'.
    strict : bool, optional
        Raise :class:`VariantError` on the first bad record. Default False.
    source : str, optional
        The VCF's name, for messages. Default 'VCF'.

    Yields
    ------
    Window or Skipped
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length: expected a positive integer, got {length!r}")
    if strand not in ('+', '-'):
        raise ValueError(f"strand: expected '+' or '-', got {strand!r}")
    fa = _Fasta(fasta)
    try:
        for v in variants:
            out = _one(v, fa, length, strand)
            if isinstance(out, Skipped) and strict:
                raise VariantError(f"{source}: line {v.line} ({v.chrom}:{v.pos} {v.ref}>{v.alt}): "
                                   f"{REASONS[out.reason]}: {out.detail}")
            yield out
    finally:
        fa.close()


def _one(v, fa, length, strand):
    alt = v.alt
    if alt in ('.', '*', '') or alt.startswith('<') or '[' in alt or ']' in alt:
        return Skipped(v, 'symbolic_allele', f"ALT {alt!r} names no sequence")
    for allele, what in ((v.ref, 'REF'), (alt, 'ALT')):
        if not allele or not set(allele) <= _ALLELE_OK:
            return Skipped(v, 'bad_allele', f"{what} {allele!r} is not made of ACGTN")
    if v.chrom not in fa.lengths:
        other = 'chr' + v.chrom if not v.chrom.startswith('chr') else v.chrom[3:]
        hint = f" (it has {other!r}: the VCF and the FASTA name chromosomes differently)" \
            if other in fa.lengths else ''
        return Skipped(v, 'chrom_missing', f"{v.chrom!r} is not in the FASTA{hint}")
    n = fa.lengths[v.chrom]
    s0 = v.pos - 1
    if s0 < 0:
        return Skipped(v, 'ref_mismatch', f"POS {v.pos} is before the first base of {v.chrom} (POS 1)")
    if s0 + len(v.ref) > n:
        return Skipped(v, 'ref_mismatch', f"REF at {v.pos} runs past the end of {v.chrom} (length {n})")
    genome = fa.fetch(v.chrom, s0, s0 + len(v.ref))
    if genome != v.ref:
        return Skipped(v, 'ref_mismatch', f"REF {v.ref} but the FASTA has {genome} at {v.chrom}:{v.pos}")
    ref, alt, p = _trim(v.ref, alt, v.pos)
    r, a = len(ref), len(alt)
    if r == 0 and a == 0:
        return Skipped(v, 'ref_equals_alt', f"ALT {v.alt} equals REF {v.ref}")
    start, end, off, c = window_span(p, r, a, length, strand)
    if c < 0:
        return Skipped(v, 'allele_too_long', f"{'REF' if r >= a else 'ALT'} allele of {max(r, a)} bases (after "
                       f"trimming shared bases) does not fit a window of {length} centred on it")
    if start < 0 or end > n:
        return Skipped(v, 'off_chromosome', f"window {v.chrom}:{start}-{end} (0-based) outside "
                       f"[0, {n})")
    g = _codes(fa.fetch(v.chrom, start, end))
    alt_g = numpy.concatenate([g[:off], _codes(alt), g[off + r:]])
    if strand == '+':
        ref_w, alt_w = g[:length], alt_g[:length]
    else:
        ref_w = reverse_complement_codes(g[len(g) - length:])
        alt_w = reverse_complement_codes(alt_g[len(alt_g) - length:])
    return Window(v, _kind(r, a), (start, end), c, ref_w, alt_w)


def one_hot_codes(codes, dtype=torch.int8):
    """Base codes ``(B, L)`` → one-hot ``(B, 4, L)``, N (4) as all-zero columns."""
    codes = torch.as_tensor(numpy.ascontiguousarray(codes)).long()
    X = torch.zeros(codes.shape[0], 5, codes.shape[1], dtype=dtype)
    X.scatter_(1, codes.unsqueeze(1), 1)
    return X[:, :4]


def batches(items: Iterable[Union[Window, Skipped]], batch_size: int = 32) -> Iterator[VariantBatch]:
    """Group windows into one-hot batches of ``batch_size`` variants; each
    batch also carries the records skipped since the previous one (a final
    batch may hold skipped records only)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    wins, skipped = [], []
    for it in items:
        if isinstance(it, Skipped):
            skipped.append(it)
            continue
        wins.append(it)
        if len(wins) == batch_size:
            yield _batch(wins, skipped)
            wins, skipped = [], []
    if wins or skipped:
        yield _batch(wins, skipped)


def _batch(wins, skipped):
    if wins:
        ref = one_hot_codes(numpy.stack([w.ref for w in wins]))
        alt = one_hot_codes(numpy.stack([w.alt for w in wins]))
    else:
        ref = alt = torch.zeros(0, 4, 0, dtype=torch.int8)
    return VariantBatch([w.variant for w in wins], ref, alt, wins, skipped)


SKIPPED_COLUMNS = ['line', 'chrom', 'pos', 'id', 'ref', 'alt', 'reason', 'detail']


def write_skipped_tsv(skipped: Iterable[Skipped], out, header: bool = True) -> int:
    """Write skipped records as TSV rows (``SKIPPED_COLUMNS``) to a path or an
    open text file; returns the number written."""
    close = isinstance(out, str)
    f = open(out, 'w', newline='') if close else out
    try:
        w = csv.writer(f, delimiter='\t', lineterminator='\n')
        if header:
            w.writerow(SKIPPED_COLUMNS)
        n = 0
        for s in skipped:
            v = s.variant
            w.writerow([v.line, v.chrom, v.pos, v.id, v.ref, v.alt, s.reason, s.detail])
            n += 1
        return n
    finally:
        if close:
            f.close()
