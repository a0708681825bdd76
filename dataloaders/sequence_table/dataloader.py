"""Sequence-table dataloader: TSV or FASTA records -> integer DNA tokens.

A Kipoi dataloader component (numpy + kipoi only) for token
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
* Batching and argument checks come from ``../_shared.py``, loaded by path.
"""
import csv
import importlib.util
import os
import sys

import numpy as np


def _load_shared():
    """``dataloaders/_shared.py`` loaded by path (Kipoi execs this file by path, so
    there is no package to import from): next to this file, else one directory up."""
    src = os.path.abspath(globals().get("__file__") or _load_shared.__code__.co_filename)
    folders = [os.path.dirname(src), os.path.dirname(os.path.dirname(src))]
    path = next((p for p in (os.path.join(d, "_shared.py") for d in folders) if os.path.isfile(p)), None)
    if path is None:
        raise ImportError("{}: the dataloaders' shared module _shared.py is neither in {} nor in {}; copy "
                          "dataloaders/_shared.py next to this file".format(src, *folders))
    name = "_tanger_dataloaders_shared_{:x}".format(abs(hash(path)))
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


_shared = _load_shared()
__all__ = ["SequenceTable"]

STATES = "HL"
_DNA_CODE = _shared.byte_codes(_shared.DNA)
_STATE_CODE = _shared.byte_codes(STATES)


class SequenceTable(_shared.BatchedDataset):
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
        self.ignore_targets = _shared.as_bool(ignore_targets, "ignore_targets")
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
            self.tokens[k] = self._encode(dna, _DNA_CODE, where, "DNA", ", ".join(_shared.DNA))
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
            bad = np.flatnonzero(codes == _shared.INVALID)
            if not len(bad):
                return codes
            pos = int(bad[0])
        else:
            pos = next(i for i, ch in enumerate(text) if ord(ch) > 127)
        raise ValueError("{}: unknown {} character {!r} at position {} (0-based); expected {} "
                         "(any case)".format(where, what, text[pos], pos, allowed))

    # ------------------------------------------------------------------
    def _read(self):
        with _shared.open_text(self.sequences_file) as fh:
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
        with _shared.open_text(path) as fh:
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
        with _shared.open_text(path) as fh:
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


_shared.attach_description(SequenceTable, globals().get("__file__"))
