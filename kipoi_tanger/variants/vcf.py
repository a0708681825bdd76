"""VCF/VCF.gz records as single-ALT variants, streamed with cyvcf2."""
import contextlib
import gzip
import os
import sys
import tempfile
from typing import Iterator, NamedTuple, Optional

__all__ = ['Variant', 'read_vcf', 'count_records', 'check_text', 'VariantError']


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


_COLUMNS = "CHROM POS ID REF ALT QUAL FILTER INFO"
_MAX_POS = 2 ** 31 - 2      # htslib's limit for VCF (and BCF) positions


def check_text(path) -> int:
    """Check the layout of a VCF or VCF.gz as text; the number of records.

    htslib (inside cyvcf2) reads some malformed lines as records whose fields
    crash the process when read (a line without tabs, an empty line), and
    explains others only on stderr. This pass names the line and what is
    expected instead: header lines, the ``#CHROM`` line, then records of at
    least 8 tab-separated columns with an integer POS.

    Raises
    ------
    VariantError
        One line naming the file, the line and what is expected.
    """
    import zlib
    if not os.path.isfile(path):
        raise VariantError(f"{path}: no such VCF file")
    with open(path, 'rb') as f:
        gz = f.read(2) == b'\x1f\x8b'
    n_line = records = 0
    chrom_line = False
    try:
        with (gzip.open(path, 'rb') if gz else open(path, 'rb')) as f:
            for n_line, line in enumerate(f, 1):
                line = line.rstrip(b'\r\n')
                if line.startswith(b'#'):
                    if records:
                        raise VariantError(f"{path}: line {n_line}: a header line (#...) among the records")
                    chrom_line = line.startswith(b'#CHROM')
                    continue
                if not chrom_line:
                    raise VariantError(f"{path}: line {n_line}: a record before the #CHROM header line; expected "
                                       f"##... header lines, then #{_COLUMNS.replace(' ', '<tab>')}, then records")
                if not line:
                    raise VariantError(f"{path}: line {n_line}: an empty line; expected a record of at least 8 "
                                       f"tab-separated columns ({_COLUMNS})")
                cols = line.split(b'\t', 8)
                if len(cols) < 8:
                    raise VariantError(f"{path}: line {n_line}: {len(cols)} tab-separated column(s); a record has "
                                       f"at least 8 ({_COLUMNS})")
                if not cols[1].isdigit():
                    raise VariantError(f"{path}: line {n_line}: POS {cols[1].decode(errors='replace')!r} is not a "
                                       "position (a non-negative integer)")
                if int(cols[1]) > _MAX_POS:     # cyvcf2 would wrap it around to another position
                    raise VariantError(f"{path}: line {n_line}: POS {int(cols[1])} is beyond the largest position "
                                       f"a VCF record can have here ({_MAX_POS})")
                records += 1
    except (OSError, EOFError, zlib.error) as e:
        raise VariantError(f"{path}: not a readable {'gzipped ' if gz else ''}VCF "
                           f"({type(e).__name__}: {e})") from None
    if n_line == 0:
        raise VariantError(f"{path}: an empty file; expected a VCF (##fileformat=VCFv4.x, ##... header lines, "
                           f"#{_COLUMNS.replace(' ', '<tab>')}, records)")
    if not chrom_line and not records:
        raise VariantError(f"{path}: no #CHROM header line; expected ##... header lines, then "
                           f"#{_COLUMNS.replace(' ', '<tab>')}, then records")
    return records


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


@contextlib.contextmanager
def _captured_stderr(into: list):
    """Catch what htslib writes to stderr (fd 2) while the block runs; its lines are appended to
    ``into`` on exit, for an error message to quote rather than a second line on the terminal."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):   # pragma: no cover - no fd 2 to redirect
        saved = None
    if saved is None:   # pragma: no cover
        yield into
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield into
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            into.extend(ln.strip() for ln in tmp.read().decode(errors='replace').splitlines() if ln.strip())


def _why(messages, e):
    """htslib's last error message (without its ``[E::function]`` tag), else the exception's text."""
    errors = [m.split('] ', 1)[-1] for m in messages if m.startswith('[E::')]
    return errors[-1] if errors else f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _open(path):
    try:
        from cyvcf2 import VCF
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise VariantError("reading VCF files needs cyvcf2 (pip install cyvcf2)") from e
    _quiet_htslib()
    if not os.path.isfile(path):
        raise VariantError(f"{path}: no such VCF file")
    messages = []
    try:
        with _captured_stderr(messages):
            return VCF(path, lazy=True)
    except Exception as e:
        raise VariantError(f"{path}: not a readable VCF ({_why(messages, e)})") from None


def count_records(path: str) -> int:
    """The number of records (data lines) of a VCF or VCF.gz.

    The file's layout is checked first (:func:`check_text`), then every
    record is parsed.

    Raises
    ------
    VariantError
        A missing or unreadable file, a malformed line or a record cyvcf2
        cannot parse (one line naming the VCF line).
    """
    expected = check_text(path)
    vcf = _open(path)
    n = 0
    messages = []
    try:
        with _captured_stderr(messages):
            for _ in vcf:
                n += 1
    except Exception as e:
        line = _header_lines(path) + 1 + n
        raise VariantError(f"{path}: line {line}: the record cannot be read ({_why(messages, e)})") from None
    finally:
        vcf.close()
    if n != expected:   # pragma: no cover - check_text and htslib disagree on what a record is
        raise VariantError(f"{path}: htslib reads {n} records, but the file has {expected} record lines")
    return n


def read_vcf(path: str, region: Optional[str] = None, check: bool = True) -> Iterator[Variant]:
    """Iterate over the ALT alleles of a VCF or VCF.gz, in file order.

    Parameters
    ----------
    path : str
        A ``.vcf`` or (b)gzipped ``.vcf.gz`` file.
    region : str or None, optional
        ``chrom:start-end`` to read only that region (needs a ``.tbi``/``.csi``
        index; line numbers are then those of the records within the region's
        stream, not of the file). Default None.
    check : bool, optional
        Check the file's layout (:func:`check_text`) before the first record
        is read; a malformed line is one :class:`VariantError` (htslib reads
        some as records whose fields crash the process). Default True.

    Yields
    ------
    Variant
        One per ALT allele; a record without ALT (``.``) yields one Variant
        with ``alt='.'``, which the window stage skips as a symbolic allele.
    """
    if check:
        check_text(path)
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
