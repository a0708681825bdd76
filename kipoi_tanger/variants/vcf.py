"""VCF/VCF.gz records as single-ALT variants, streamed with cyvcf2."""
import gzip
from typing import Iterator, NamedTuple, Optional

__all__ = ['Variant', 'read_vcf', 'count_records', 'VariantError']


class VariantError(ValueError):
    """A bad VCF record in strict mode, or an unreadable VCF."""


class Variant(NamedTuple):
    """One ALT allele of a VCF record.

    ``pos`` is the VCF POS (1-based) and ``ref``/``alt`` are the alleles as
    written (upper-cased); ``record`` is the 0-based index of the record in
    the file, ``allele`` the 0-based index of this ALT in the record (a
    multi-allelic record gives one Variant per ALT) and ``line`` the record's
    1-based line number in the (decompressed) file.
    """
    chrom: str
    pos: int
    id: str
    ref: str
    alt: str
    record: int
    allele: int
    line: int


def _header_lines(path):
    """Number of header lines (``#...``) at the top of a VCF or VCF.gz."""
    with open(path, 'rb') as f:
        gz = f.read(2) == b'\x1f\x8b'
    n = 0
    with (gzip.open(path, 'rb') if gz else open(path, 'rb')) as f:
        for line in f:
            if not line.startswith(b'#'):
                break
            n += 1
    return n


_QUIET = []


def _quiet_htslib():
    """Errors only from the htslib inside cyvcf2: its warnings (e.g. a contig missing from the
    header, once per read of the file) would repeat on stderr; such records are read as usual
    and skipped with a reason when they cannot be scored."""
    if _QUIET:
        return
    _QUIET.append(True)
    try:
        import ctypes
        import cyvcf2.cyvcf2 as ext
        ctypes.CDLL(ext.__file__).hts_set_log_level(1)      # HTS_LOG_ERROR
    except Exception:   # pragma: no cover - another build of cyvcf2: keep its warnings
        pass


def _open(path):
    try:
        from cyvcf2 import VCF
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise VariantError("reading VCF files needs cyvcf2 (pip install cyvcf2)") from e
    _quiet_htslib()
    import os
    if not os.path.isfile(path):
        raise VariantError(f"{path}: no such VCF file")
    try:
        return VCF(path, lazy=True)
    except (OSError, Exception) as e:
        raise VariantError(f"{path}: not a readable VCF ({e})") from None


def count_records(path: str) -> int:
    """The number of records (data lines) of a VCF or VCF.gz.

    Raises
    ------
    VariantError
        A missing or unreadable file, or a record cyvcf2 cannot parse.
    """
    vcf = _open(path)
    n = 0
    try:
        for _ in vcf:
            n += 1
    except Exception as e:
        raise VariantError(f"{path}: record {n + 1} cannot be read ({type(e).__name__}: {e})") from None
    finally:
        vcf.close()
    return n


def read_vcf(path: str, region: Optional[str] = None) -> Iterator[Variant]:
    """Iterate over the ALT alleles of a VCF or VCF.gz, in file order.

    Parameters
    ----------
    path : str
        A ``.vcf`` or (b)gzipped ``.vcf.gz`` file.
    region : str or None, optional
        ``chrom:start-end`` to read only that region (needs a ``.tbi``/``.csi``
        index; line numbers are then those of the records within the region's
        stream, not of the file). Default None.

    Yields
    ------
    Variant
        One per ALT allele; a record without ALT (``.``) yields one Variant
        with ``alt='.'``, which the window stage skips as a symbolic allele.
    """
    vcf = _open(path)
    first = _header_lines(path) + 1
    records = vcf(region) if region else vcf
    try:
        for i, rec in enumerate(records):
            ref = rec.REF.upper()
            alts = rec.ALT or ['.']
            vid = rec.ID or '.'
            for j, alt in enumerate(alts):
                yield Variant(rec.CHROM, rec.POS, vid, ref, alt.upper(), i, j, first + i)
    finally:
        vcf.close()
