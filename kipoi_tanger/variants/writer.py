"""Copy a VCF, adding one INFO field per score and output (cyvcf2).

Every input record is written once, in order; scored ALT alleles get their
values in ``Number=A`` Float fields declared in the header (``.`` for an
allele that was skipped), records with no scored allele are copied
unchanged. Field IDs are ``<prefix><score>_<output>`` made VCF-safe (see
:func:`info_id`). The output is bgzipped when its name ends in ``.gz``.

:func:`join_vcfs` joins the VCFs of consecutive record blocks (``--shard``
runs) into the file one run over every record writes.
"""
import gzip
import re
from typing import Dict, Iterable, List, Optional, Tuple

from .vcf import Variant, VariantError, _quiet_htslib

__all__ = ['VCFWriter', 'info_id', 'join_vcfs']


def info_id(score: str, output: str = '', prefix: str = 'KT_') -> str:
    """A valid INFO ID (``[A-Za-z_][0-9A-Za-z_.]*``) for a score of an output."""
    raw = f"{prefix}{score}" + (f"_{output}" if output != '' else '')
    s = re.sub(r'[^0-9A-Za-z_.]', '_', raw)
    return s if re.match(r'[A-Za-z_]', s) else '_' + s


def _fmt(x):
    if x is None or x != x:      # None or NaN
        return '.'
    return f"{x:.6g}"


class VCFWriter:
    """Stream scores into a copy of ``vcf_in``.

    Parameters
    ----------
    vcf_in : str
        The VCF the variants were read from.
    path : str
        Output ``.vcf`` or ``.vcf.gz``.
    fields : iterable of (id, description)
        The INFO fields to declare (``Number=A``, ``Type=Float``).
    records : (int, int or None), optional
        Copy only the records ``[start, stop)`` (0-based record indices, as
        :attr:`Variant.record`; stop None: to the end), e.g. one ``--shard``'s
        block. Default: every record.

    Use :meth:`write` for each scored variant in file order, then
    :meth:`close` (or a ``with`` block), which also copies the remaining
    records.
    """

    def __init__(self, vcf_in: str, path: str, fields: Iterable[Tuple[str, str]],
                 records: Optional[Tuple[int, Optional[int]]] = None):
        from cyvcf2 import VCF, Writer
        self.fields = [f for f, _ in fields]
        self._declared = set(self.fields)
        if len(self._declared) != len(self.fields):
            raise ValueError(f"fields: duplicate INFO IDs in {self.fields}")
        _quiet_htslib()
        self.vcf = VCF(vcf_in)
        self._declare_undefined(vcf_in)
        existing = {h['ID'] for h in self.vcf.header_iter() if h['HeaderType'] == 'INFO'}
        for fid, desc in fields:
            if fid in existing:
                raise ValueError(f"INFO field {fid} already exists in {vcf_in}; drop it from the input VCF first")
            self.vcf.add_info_to_header({'ID': fid, 'Number': 'A', 'Type': 'Float',
                                         'Description': desc.replace('"', "'")})
        self.out = Writer(path, self.vcf, mode='wz' if path.lower().endswith('.gz') else 'w')
        start, stop = records if records is not None else (0, None)
        self.start, self.stop = int(start), stop
        self.records = iter(self.vcf)
        self.index = -1          # index of self.current
        for _ in range(int(start)):      # records before the block are not copied
            if next(self.records, None) is None:
                break
            self.index += 1
        self.current = None
        self.values: Dict[int, Dict[str, float]] = {}     # ALT index -> {INFO ID: value} of self.current
        self.closed = False

    def _declare_undefined(self, vcf_in):
        """Declare the INFO and FORMAT tags the records use without a header line, as htslib does
        when it reads them (``Type=String``, ``Description="Dummy"``): htslib refuses to write a
        record read with an undeclared tag. The whole file is scanned, so every block (``--shard``)
        declares the same."""
        from cyvcf2 import VCF
        kinds = ('INFO', 'FORMAT')
        declared = {(h['HeaderType'], h['ID']) for h in self.vcf.header_iter() if h['HeaderType'] in kinds}
        scan = VCF(vcf_in, lazy=True)
        try:
            for _ in scan:
                pass
            for h in scan.header_iter():
                kind = h['HeaderType']
                if kind not in kinds or (kind, h['ID']) in declared:
                    continue
                d = h.info()
                add = self.vcf.add_info_to_header if kind == 'INFO' else self.vcf.add_format_to_header
                add({'ID': d['ID'], 'Number': d.get('Number', '.'), 'Type': d.get('Type', 'String'),
                     'Description': d.get('Description', 'Dummy').strip('"')})
                declared.add((kind, h['ID']))
        finally:
            scan.close()

    def _info(self, n_alt):
        """``ID=v[,v...];...`` of the current record's values, fields in declaration order."""
        per = [self.values.get(a) for a in range(n_alt)]
        parts = []
        if n_alt == 1:
            d = per[0]
            for f in self.fields:
                v = d.get(f)
                if v is not None:
                    parts.append(f"{f}={_fmt(float(v))}")
            return ';'.join(parts)
        for f in self.fields:
            vals = [None if d is None else d.get(f) for d in per]
            if any(v is not None for v in vals):
                parts.append(f + '=' + ','.join(_fmt(None if v is None else float(v)) for v in vals))
        return ';'.join(parts)

    def _flush(self):
        if self.current is None:
            return
        rec = self.current
        if self.values:
            info = self._info(max(1, len(rec.ALT)))
            if info:
                # one INFO column for the record, parsed once (setting fields one by one through
                # cyvcf2 costs ~10x more with hundreds of fields)
                cols = str(rec).rstrip('\n').split('\t')
                cols[7] = info if cols[7] in ('', '.') else f"{cols[7]};{info}"
                rec = self.out.variant_from_string('\t'.join(cols))
        self.out.write_record(rec)
        self.current, self.values = None, {}

    def _advance(self, record):
        if self.stop is not None and record >= self.stop:
            raise VariantError(f"VCF writer: record {record} is past the block's end (record {self.stop})")
        while self.index < record:
            self._flush()
            try:
                self.current = next(self.records)
            except StopIteration:
                raise VariantError(f"VCF writer: record {record} is past the end of the input") from None
            self.index += 1

    def write(self, variant: Variant, values: Dict[str, float]):
        """Set ``values`` (INFO ID → value) for ``variant``'s ALT allele."""
        if variant.record < max(self.index, self.start):
            if variant.record < self.start:
                raise VariantError(f"VCF writer: record {variant.record} is before the block's start "
                                   f"(record {self.start})")
            raise VariantError(f"VCF writer: variants must come in file order (record "
                               f"{variant.record} after {self.index})")
        self._advance(variant.record)
        undeclared = values.keys() - self._declared
        if undeclared:
            raise ValueError(f"VCF writer: INFO field {sorted(undeclared)[0]} was not declared")
        if not 0 <= variant.allele < max(1, len(self.current.ALT)):
            raise VariantError(f"VCF writer: record {variant.record} has no ALT {variant.allele}")
        self.values.setdefault(variant.allele, {}).update(values)

    def close(self):
        if self.closed:
            return
        self._flush()
        for rec in self.records:
            if self.stop is not None and self.index + 1 >= self.stop:
                break
            self.out.write_record(rec)
            self.index += 1
        self.out.close()
        self.vcf.close()
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.close()
        else:   # never leave a file that looks complete
            self.out.close()
            self.vcf.close()
            self.closed = True


def _text_lines(path):
    """The lines of a VCF or (b)gzipped VCF, as bytes."""
    with open(path, 'rb') as f:
        gz = f.read(2) == b'\x1f\x8b'
    return gzip.open(path, 'rb') if gz else open(path, 'rb')


def _split(path) -> Tuple[bytes, bool]:
    """``(header bytes, has records)`` of a VCF."""
    header = []
    with _text_lines(path) as f:
        for line in f:
            if not line.startswith(b'#'):
                return b''.join(header), True
            header.append(line)
    return b''.join(header), False


def join_vcfs(sources: List[str], path: str) -> None:
    """Join VCFs written by :class:`VCFWriter` for consecutive record blocks into one.

    The header once (the sources' headers must be equal, a source without
    records aside), then every record of every source, in order. A ``.gz``
    ``path`` is written by htslib's bgzip writer record by record, as
    :class:`VCFWriter` writes it, so the file has the bytes one writer over
    all records gives; a plain ``.vcf`` is the header and the records' text.
    The sources may be plain or bgzipped either way.

    Raises
    ------
    VariantError
        Sources with different headers, or one that is not a VCF (one line).
    """
    if not sources:
        raise VariantError("join_vcfs: no VCF files to join")
    parts = []
    for src in sources:
        try:
            parts.append(_split(src))
        except (OSError, EOFError) as e:
            raise VariantError(f"{src}: not a readable VCF ({e})") from None
    filled = [(src, h) for src, (h, has) in zip(sources, parts) if has]
    template, header = filled[0] if filled else (sources[0], parts[0][0])
    if not header.startswith(b'##fileformat=VCF'):
        raise VariantError(f"{template}: not a VCF (no ##fileformat header)")
    for src, h in filled[1:]:
        if h != header:
            raise VariantError(f"{src} has another VCF header than {template} (INFO fields or input VCF); "
                               "its shard is not of the same run")

    def records():
        for src, (_, has) in zip(sources, parts):
            if not has:
                continue
            with _text_lines(src) as f:
                for line in f:
                    if not line.startswith(b'#'):
                        yield line

    if not path.lower().endswith('.gz'):
        with open(path, 'wb') as out:
            out.write(header)
            for line in records():
                out.write(line)
        return
    from cyvcf2 import VCF, Writer
    _quiet_htslib()
    tmpl = VCF(template)
    try:
        w = Writer(path, tmpl, mode='wz')
        try:
            for line in records():
                w.write_record(w.variant_from_string(line.decode().rstrip('\n')))
        finally:
            w.close()
    finally:
        tmpl.close()
