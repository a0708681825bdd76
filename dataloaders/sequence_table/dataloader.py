"""Sequence-table dataloader: TSV or FASTA records -> integer DNA tokens.

A self-contained Kipoi dataloader component (numpy + kipoi only) for token
models such as the GC-state GRU of seed 002: DNA ``A, C, G, T`` (any case)
-> ``0, 1, 2, 3`` as int64 ``(L,)``, optional per-base hidden-state labels
``H, L`` (any case) -> ``0, 1`` as int64 targets ``(L,)``, metadata ``id``.

Decisions
---------
* Batches are stacked, so every record must have the same length: the file
  is read and validated once at construction, and the first record whose
  length differs from the first record's is an error naming both. There is
  no padding: the token alphabet has no pad symbol a model would understand.
* Anything outside the alphabet (including ``N``) is an error naming the
  file, record, line and 0-based position.
* Format is detected from the content: a first non-blank line starting with
  ``>`` means FASTA (no labels), anything else a TSV with a header row that
  has a ``dna`` column and optionally ``hidden_state`` and ``id`` (other
  columns, e.g. a pandas index column, are ignored). Either may be gzipped.
"""
import csv
import gzip
import os

import numpy as np
from kipoi.data import Dataset

__all__ = ["SequenceTable"]

DNA = "ACGT"
STATES = "HL"


def _table(alphabet):
    t = np.full(256, 255, dtype=np.uint8)
    for i, ch in enumerate(alphabet):
        t[ord(ch)] = t[ord(ch.lower())] = i
    return t


_DNA_CODE = _table(DNA)
_STATE_CODE = _table(STATES)


def _as_bool(value, name):
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError("{} must be true or false, got {!r}".format(name, value))


def _open_text(path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", newline="") if gz else open(path, newline="")


class SequenceTable(Dataset):
    """Integer-encoded DNA (and optional per-base state labels) from a table.

    Parameters
    ----------
    sequences_file : str
        TSV with a header (``dna`` required; ``hidden_state`` and ``id``
        optional) or FASTA; optionally gzipped.
    ignore_targets : bool, optional
        Do not return ``targets`` even when labels are present (default
        False).
    """

    def __init__(self, sequences_file, ignore_targets=False):
        self.sequences_file = os.path.abspath(os.fspath(sequences_file))
        self.ignore_targets = _as_bool(ignore_targets, "ignore_targets")
        if not os.path.isfile(self.sequences_file):
            raise ValueError("sequences_file {}: file not found".format(self.sequences_file))
        records = self._read()  # [(id, line, dna, labels or None)]
        if not records:
            raise ValueError("sequences_file {}: no records".format(self.sequences_file))
        first_id, first_line, first_dna, _ = records[0]
        L = len(first_dna)
        self.ids = np.asarray([r[0] for r in records], dtype=str)
        self.tokens = np.empty((len(records), L), dtype=np.uint8)
        has_labels = records[0][3] is not None
        self.labels = np.empty((len(records), L), dtype=np.uint8) if has_labels else None
        for k, (rid, line, dna, labels) in enumerate(records):
            where = "sequences_file {}: record {!r} (line {})".format(self.sequences_file, rid, line)
            if len(dna) != L:
                raise ValueError("{}: length {} differs from the first record {!r} (line {}, length "
                                 "{}); all records must have one length".format(
                                     where, len(dna), first_id, first_line, L))
            self.tokens[k] = self._encode(dna, _DNA_CODE, where, "DNA", "A, C, G, T")
            if has_labels:
                if len(labels) != L:
                    raise ValueError("{}: hidden_state has length {} but dna has {}".format(
                        where, len(labels), L))
                self.labels[k] = self._encode(labels, _STATE_CODE, where, "hidden_state", "H, L")
        self.seq_len = L
        self.has_targets = has_labels and not self.ignore_targets

    @staticmethod
    def _encode(text, table, where, what, allowed):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raw = None
        if raw is not None:
            codes = np.take(table, np.frombuffer(raw, dtype=np.uint8))
            bad = np.flatnonzero(codes == 255)
            if not len(bad):
                return codes
            pos = int(bad[0])
        else:
            pos = next(i for i, ch in enumerate(text) if ord(ch) > 127)
        raise ValueError("{}: unknown {} character {!r} at position {} (0-based); expected {} "
                         "(any case)".format(where, what, text[pos], pos, allowed))

    # ------------------------------------------------------------------
    def _read(self):
        with _open_text(self.sequences_file) as fh:
            first = ""
            for first in fh:
                if first.strip():
                    break
        if not first.strip():
            return []
        if first.lstrip().startswith(">"):
            return self._read_fasta()
        return self._read_tsv()

    def _read_fasta(self):
        path = self.sequences_file
        records, name, line0, parts = [], None, None, []
        with _open_text(path) as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                if line.startswith(">"):
                    if name is not None:
                        records.append((name, line0, "".join(parts), None))
                    fields = line[1:].split()
                    if not fields:
                        raise ValueError("sequences_file {}: line {}: FASTA header without a "
                                         "name".format(path, n))
                    name, line0, parts = fields[0], n, []
                elif name is None:
                    raise ValueError("sequences_file {}: line {}: sequence before the first "
                                     "'>' header".format(path, n))
                else:
                    parts.append(line)
        if name is not None:
            records.append((name, line0, "".join(parts), None))
        for rid, line, dna, _ in records:
            if not dna:
                raise ValueError("sequences_file {}: record {!r} (line {}): empty sequence"
                                 .format(path, rid, line))
        return records

    def _read_tsv(self):
        path = self.sequences_file
        records = []
        with _open_text(path) as fh:
            rows = csv.reader(fh, delimiter="\t")
            header, hline = None, 0
            for header in rows:
                hline = rows.line_num
                if any(c.strip() for c in header):
                    break
            header = [c.strip() for c in (header or [])]
            if "dna" not in header:
                raise ValueError("sequences_file {}: line {}: TSV header needs a 'dna' column "
                                 "(optional 'hidden_state', 'id'), got {}".format(
                                     path, hline, header))
            col = {c: header.index(c) for c in ("dna", "hidden_state", "id") if c in header}
            for row in rows:
                n = rows.line_num
                if not any(c.strip() for c in row):
                    continue
                if len(row) < len(header):
                    raise ValueError("sequences_file {}: line {}: expected {} tab-separated "
                                     "columns, got {}".format(path, n, len(header), len(row)))
                rid = row[col["id"]].strip() if "id" in col else str(len(records))
                dna = row[col["dna"]].strip()
                if not dna:
                    raise ValueError("sequences_file {}: record {!r} (line {}): empty dna"
                                     .format(path, rid, n))
                labels = row[col["hidden_state"]].strip() if "hidden_state" in col else None
                records.append((rid, n, dna, labels))
        return records

    # ------------------------------------------------------------------
    def __len__(self):
        return len(self.ids)

    def load_batch(self, idx):
        """Load the records ``idx`` as one collated batch (what kipoi's
        ``numpy_collate`` makes of the per-sample items)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = {"inputs": self.tokens[idx].astype(np.int64),
               "metadata": {"id": self.ids[idx]}}
        if self.has_targets:
            out["targets"] = self.labels[idx].astype(np.int64)
        return out

    def __getitem__(self, index):
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError("index {} out of range for {} records".format(index, len(self)))
        out = {"inputs": self.tokens[i].astype(np.int64), "metadata": {"id": str(self.ids[i])}}
        if self.has_targets:
            out["targets"] = self.labels[i].astype(np.int64)
        return out

    def _batch_iterable(self, batch_size=32, shuffle=False, num_workers=0, drop_last=False,
                        **kwargs):
        # Everything is in memory already: slice batches instead of collating samples.
        if kwargs or num_workers:
            return super()._batch_iterable(batch_size=batch_size, shuffle=shuffle,
                                           num_workers=num_workers, drop_last=drop_last,
                                           **kwargs)
        return _Batches(self, int(batch_size), shuffle, drop_last)

    def batch_iter(self, batch_size=32, shuffle=False, num_workers=0, drop_last=False, **kwargs):
        """Iterate over collated batches (see ``kipoi.data.Dataset.batch_iter``)."""
        return iter(self._batch_iterable(batch_size=batch_size, shuffle=shuffle,
                                         num_workers=num_workers, drop_last=drop_last, **kwargs))


class _Batches:
    def __init__(self, ds, batch_size, shuffle, drop_last):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1, got {}".format(batch_size))
        self.ds, self.batch_size, self.shuffle, self.drop_last = ds, batch_size, shuffle, drop_last

    def __iter__(self):
        n = len(self.ds)
        order = np.random.permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        for i in range(0, stop, self.batch_size):
            yield self.ds.load_batch(order[i:i + self.batch_size])


def _attach_description(cls):
    """Attach the sibling dataloader.yaml to ``cls`` at import time.

    Kipoi does this itself when it loads the component by path; doing it here
    too makes a plain import work as a Kipoi dataloader (``init_example``,
    ``get_output_schema``, ``kipoi predict --dataloader
    dataloaders.<component>.dataloader.<Class>`` with the repo root on
    PYTHONPATH).
    """
    here = globals().get("__file__")  # unset when kipoi execs the file (`file.py::Class`)
    if cls.args is not None or here is None:
        return cls
    folder = os.path.dirname(os.path.abspath(here))
    path = os.path.join(folder, "dataloader.yaml")
    if not os.path.exists(path):
        return cls
    from kipoi.specs import DataLoaderDescription
    from kipoi_utils import cd
    with cd(folder):
        cls._add_description_factory(DataLoaderDescription.load(path))
    cls.source_dir = folder
    return cls


_attach_description(SequenceTable)
