"""Features-table dataloader: a TSV of numeric columns -> float vectors.

A Kipoi dataloader component (numpy + kipoi only) for models
whose inputs are per-region feature vectors rather than sequences, such as
the small dense sub-models of the composite examples (seed 004): one row per
region, an ``id`` column, numeric feature columns -> ``inputs`` ``(k,)``,
optional numeric target columns -> ``targets`` ``(t,)``, metadata ``id``.

Decisions
---------
* The whole table is read and validated once at construction (tables of
  per-region features are small next to sequences); batches are slices of
  in-memory arrays.
* Ids must be unique: composite models align several tables by id, and a
  repeated id would make that ambiguous. Without an ``id`` column the id is
  the 0-based row number.
* A cell that is empty or not a number is an error naming the file, line,
  column and value; ``nan``/``inf`` spelled out are accepted as numbers.
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
__all__ = ["FeaturesTable"]


class FeaturesTable(_shared.BatchedDataset):
    """Numeric feature vectors (and optional targets) from a TSV table.

    Parameters
    ----------
    features_file : str
        TSV with a header row, optionally gzipped. An ``id`` column is
        optional (default: the 0-based row number); ids must be unique.
    columns : str or list of str, optional
        Feature columns, in this order (comma-separated or a list). Default:
        every column except ``id`` and the target columns, in file order.
    target_columns : str or list of str, optional
        Columns returned as ``targets`` (float32). Default: no targets.
    dtype : str, optional
        numpy dtype of the features (default ``float32``).
    """

    def __init__(self, features_file, columns=None, target_columns=None, dtype="float32"):
        self.features_file = os.path.abspath(os.fspath(features_file))
        path = self.features_file
        if not os.path.isfile(path):
            raise ValueError("features_file {}: file not found".format(path))
        self.dtype = _shared.as_dtype(dtype, kinds="fiu")
        want = None if columns is None else _shared.comma_list(columns, "columns", unique=True)
        targets = [] if target_columns is None else \
            _shared.comma_list(target_columns, "target_columns", unique=True)
        header, hline, rows = self._read(path)
        missing = [c for c in (want or []) + targets if c not in header]
        if missing:
            raise ValueError("features_file {}: line {}: no column {!r} in the header (columns: {})"
                             .format(path, hline, missing[0], ", ".join(header)))
        if want is None:
            want = [c for c in header if c != "id" and c not in targets]
        if not want:
            raise ValueError("features_file {}: no feature columns (header: {})".format(
                path, ", ".join(header)))
        both = [c for c in want if c in targets]
        if both:
            raise ValueError("columns and target_columns both list {!r}".format(both[0]))
        self.columns, self.target_columns = want, targets
        col = {c: header.index(c) for c in header}
        ids, x, y = [], [], []
        seen = {}
        for line, row in rows:
            rid = row[col["id"]].strip() if "id" in col else str(len(ids))
            if rid in seen:
                raise ValueError("features_file {}: line {}: id {!r} repeats line {}; ids must be "
                                 "unique".format(path, line, rid, seen[rid]))
            seen[rid] = line
            ids.append(rid)
            x.append([self._number(row[col[c]], path, line, c) for c in want])
            y.append([self._number(row[col[c]], path, line, c) for c in targets])
        if not ids:
            raise ValueError("features_file {}: no data rows below the header".format(path))
        self.ids = np.asarray(ids, dtype=str)
        self.x = np.asarray(x, dtype=np.float64).astype(self.dtype)
        self.y = np.asarray(y, dtype=np.float32) if targets else None

    @staticmethod
    def _read(path):
        with _shared.open_text(path) as fh:
            reader = csv.reader(fh, delimiter="\t")
            header, hline = None, 0
            for header in reader:
                hline = reader.line_num
                if any(c.strip() for c in header) and not header[0].lstrip().startswith("#"):
                    break
            else:
                header = None
            if not header:
                raise ValueError("features_file {}: empty file (expected a TSV header row)".format(
                    path))
            header = [c.strip() for c in header]
            if any(not c for c in header) or len(set(header)) != len(header):
                raise ValueError("features_file {}: line {}: header columns must be non-empty and "
                                 "distinct, got {}".format(path, hline, header))
            rows = []
            for row in reader:
                if not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
                    continue
                if len(row) != len(header):
                    raise ValueError("features_file {}: line {}: expected {} tab-separated columns, "
                                     "got {}".format(path, reader.line_num, len(header), len(row)))
                rows.append((reader.line_num, row))
        return header, hline, rows

    @staticmethod
    def _number(text, path, line, column):
        try:
            return float(text)
        except ValueError:
            raise ValueError("features_file {}: line {}: column {!r}: {!r} is not a number".format(
                path, line, column, text)) from None

    # ------------------------------------------------------------------
    def __len__(self):
        return len(self.ids)

    def load_batch(self, idx):
        """Rows ``idx`` as one collated batch (what kipoi's ``numpy_collate``
        makes of the per-sample items)."""
        idx = np.asarray(idx, dtype=np.int64)
        out = {"inputs": self.x[idx], "metadata": {"id": self.ids[idx]}}
        if self.y is not None:
            out["targets"] = self.y[idx]
        return out


_shared.attach_description(FeaturesTable, globals().get("__file__"))
