"""Features-table dataloader: a TSV of numeric columns -> float vectors.

A self-contained Kipoi dataloader component (numpy + kipoi only) for models
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
"""
import csv
import gzip
import os

import numpy as np
from kipoi.data import Dataset

__all__ = ["FeaturesTable"]


def _open_text(path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", newline="") if gz else open(path, newline="")


def _names(value, arg):
    """Column names from a comma-separated string or a list (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        raise TypeError("{} must be a comma-separated string or a list of column names, got {!r}"
                        .format(arg, value))
    if any(not v for v in items):
        raise ValueError("{} must list non-empty column names, got {!r}".format(arg, value))
    dup = sorted({v for v in items if items.count(v) > 1})
    if dup:
        raise ValueError("{}: column {!r} is listed twice".format(arg, dup[0]))
    return items


class FeaturesTable(Dataset):
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
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError("dtype: {!r} is not a numpy dtype".format(dtype)) from None
        if self.dtype.kind not in "fiu":
            raise ValueError("dtype: expected a numeric dtype such as float32, got {!r}".format(dtype))
        want = _names(columns, "columns")
        targets = _names(target_columns, "target_columns") or []
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
        with _open_text(path) as fh:
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

    def __getitem__(self, index):
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError("index {} out of range for {} rows".format(index, len(self)))
        out = {"inputs": self.x[i], "metadata": {"id": str(self.ids[i])}}
        if self.y is not None:
            out["targets"] = self.y[i]
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
    """Attach the sibling dataloader.yaml to ``cls`` at import time (see
    dataloaders/README.md: a plain import then works as a Kipoi dataloader)."""
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


_attach_description(FeaturesTable)
