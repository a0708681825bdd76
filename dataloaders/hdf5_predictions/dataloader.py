"""HDF5 predictions dataloader: stored predictions of other models as inputs.

A self-contained Kipoi dataloader component (numpy + h5py + kipoi only): it
reads one or more HDF5 files written by ``kipoi predict -o x.h5
--keep_metadata`` or ``kipoi-tanger predict`` and yields their predictions as
named model inputs, so that a downstream model can consume the outputs of
upstream models that ran in other environments (composite models).

File layout read (the one ``kipoi.writers.HDF5BatchWriter`` writes): ``preds``
is a dataset ``(N, ...)`` or a group of them (``preds/a``, ``preds/b/0``, ...;
a group becomes a nested dict); region ids are ``metadata/ranges/id`` (or
``metadata/id``); axis 0 is the sample axis everywhere.

Decisions
---------
* Alignment is checked, not repaired: every file must hold the same ids in
  the same order as the first file; otherwise the error names the file, the
  first mismatching row and both ids (or both row counts). Ids are compared
  in chunks, so memory does not grow with the number of rows.
* Metadata is the first file's whole ``metadata`` group (so ``ranges`` for
  interval loaders, ``id`` for sequence tables); strings come back as ``str``.
* In-order iteration reads blocks of rows (up to 16 MB) with one h5py slice
  per dataset and slices batches from them; shuffled or per-sample access
  reads per batch. The chunk cache holds one chunk of every dataset, so
  each chunk is decompressed once when reading in order.
"""
import os

import h5py
import numpy as np
from kipoi.data import Dataset

__all__ = ["HDF5Predictions"]

_ID_KEYS = ("metadata/ranges/id", "metadata/id")
_ALIGN_CHUNK = 1 << 16
_BLOCK_BYTES = 16 << 20


def _split(value, name):
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [os.fspath(v).strip() if not isinstance(v, str) else v.strip() for v in value]
    else:
        raise TypeError("{} must be a comma-separated string or a list, got {!r}".format(
            name, value))
    if not items or any(not v for v in items):
        raise ValueError("{} must list non-empty entries, got {!r}".format(name, value))
    return items


def _default_name(path):
    base = os.path.basename(path)
    for ext in (".hdf5", ".h5"):
        if base.lower().endswith(ext):
            return base[:-len(ext)]
    return base


def _strings(arr):
    """Decoded str array for string datasets; other arrays unchanged."""
    if arr.dtype.kind not in "OS":
        return arr
    try:  # vectorised ASCII decode; non-ASCII ids take the slow path below
        return arr.astype("S").astype("U")
    except (UnicodeError, TypeError, ValueError):
        pass
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()],
                    dtype=str).reshape(arr.shape)


class _Source:
    """One HDF5 file: the datasets under ``root`` and the ids, opened lazily."""

    def __init__(self, path, arg, roots, with_metadata):
        self.path = os.path.abspath(os.fspath(path))
        self.arg = arg
        if not os.path.isfile(self.path):
            raise ValueError("{} {}: file not found".format(arg, self.path))
        if not h5py.is_hdf5(self.path):
            raise ValueError("{} {}: not an HDF5 file".format(arg, self.path))
        with h5py.File(self.path, "r") as f:
            root = next((r for r in roots if r in f), None)
            if root is None:
                raise ValueError("{} {}: no {} dataset or group (top-level keys: {})".format(
                    arg, self.path, " or ".join(repr(r) for r in roots), sorted(f.keys())))
            self.id_key = next((k for k in _ID_KEYS if k in f and isinstance(f[k], h5py.Dataset)),
                               None)
            if self.id_key is None:
                raise ValueError("{} {}: no region ids ({}); write it with --keep_metadata"
                                 .format(arg, self.path, " or ".join(_ID_KEYS)))
            self.n = f[self.id_key].shape[0]
            self.root = root
            self.leaves = self._leaves(f, root)
            self.meta = self._leaves(f, "metadata") if with_metadata else []
            chunk = 0
            for key, _ in self.leaves + self.meta + [(self.id_key, None)]:
                ds = f[key]
                if ds.ndim == 0 or ds.shape[0] != self.n:
                    raise ValueError("{} {}: {} has {} rows but {} has {}".format(
                        arg, self.path, key, ds.shape[0] if ds.ndim else 0, self.id_key, self.n))
                if ds.chunks:
                    chunk = max(chunk, int(np.prod(ds.chunks)) * ds.dtype.itemsize)
        # One chunk per dataset stays cached: sequential batches inflate each chunk once.
        self.cache = int(min(max(chunk * 1.25 + (1 << 20), 1 << 20), 1 << 29))
        with h5py.File(self.path, "r") as f:
            # vlen strings count as 64 bytes once decoded
            self.row_bytes = sum(int(np.prod(f[k].shape[1:])) * (64 if f[k].dtype.kind == "O"
                                                                  else f[k].dtype.itemsize)
                                 for k, _ in self.leaves + self.meta)
        self._file = self._pid = None
        self._ds = {}

    @staticmethod
    def _leaves(f, root):
        obj = f[root]
        if isinstance(obj, h5py.Dataset):
            return [(root, ())]
        out = []
        obj.visititems(lambda name, o: out.append((root + "/" + name, tuple(name.split("/"))))
                       if isinstance(o, h5py.Dataset) else None)
        return out

    def _get(self, key):
        if self._file is None or self._pid != os.getpid():
            # h5py handles must not cross a fork: reopen in each worker.
            self._file = h5py.File(self.path, "r", rdcc_nbytes=self.cache, rdcc_nslots=10007)
            self._pid = os.getpid()
            self._ds = {}
        ds = self._ds.get(key)
        if ds is None:  # keep datasets open, their chunk caches live with them
            ds = self._ds[key] = self._file[key]
        return ds

    def read(self, key, sel):
        return _strings(self._get(key)[sel])

    def tree(self, leaves, sel):
        if len(leaves) == 1 and leaves[0][1] == ():
            return self.read(leaves[0][0], sel)
        out = {}
        for key, parts in leaves:
            d = out
            for p in parts[:-1]:
                d = d.setdefault(p, {})
            d[parts[-1]] = self.read(key, sel)
        return out

    def ids(self, start, stop):
        return self.read(self.id_key, slice(start, stop))

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"], state["_ds"] = None, {}
        return state


def _check_aligned(ref, other):
    if other.n != ref.n:
        i = min(ref.n, other.n)
        longer = ref if ref.n > other.n else other
        raise ValueError("{} {}: {} rows but {} has {}; regions differ from row {} (id {!r} in {})"
                         .format(other.arg, other.path, other.n, ref.path, ref.n, i,
                                 str(longer.ids(i, i + 1)[0]), longer.path))
    for a in range(0, ref.n, _ALIGN_CHUNK):
        b = min(a + _ALIGN_CHUNK, ref.n)
        x, y = ref.ids(a, b), other.ids(a, b)
        bad = np.flatnonzero(x != y)
        if len(bad):
            i = int(bad[0])
            raise ValueError("{} {}: region id {!r} at row {} differs from {!r} in {}; files must "
                             "hold the same regions in the same order".format(
                                 other.arg, other.path, str(y[i]), a + i, str(x[i]), ref.path))


def _selection(idx):
    """h5py selection for sorted-or-not indices, and the reorder to apply."""
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx) and (len(idx) == 1 or (np.diff(idx) == 1).all()):
        return slice(int(idx[0]), int(idx[-1]) + 1), None
    uniq, inverse = np.unique(idx, return_inverse=True)
    return uniq, inverse


def _take(tree, inverse):
    if isinstance(tree, dict):
        return {k: _take(v, inverse) for k, v in tree.items()}
    return tree if inverse is None else tree[inverse]


class HDF5Predictions(Dataset):
    """Predictions stored in HDF5 files, yielded as named inputs.

    Parameters
    ----------
    files : str, list of str or dict
        HDF5 files: a comma-separated string (``"a.h5,b.h5"``), a list, or a
        dict ``{name: path}`` (convenient in ``--dataloader_args`` JSON).
    names : str or list of str, optional
        Input names, one per file (comma-separated or a list). Default: the
        dict keys, else the file names without ``.h5``/``.hdf5``.
    targets_file : str, optional
        HDF5 file, aligned by id like the others, whose ``targets`` (or, if
        absent, ``preds``) become the batch ``targets``.
    """

    def __init__(self, files, names=None, targets_file=None):
        if isinstance(files, dict):
            if names is not None:
                raise ValueError("names: give the names either as the keys of files or in "
                                 "names, not both")
            names, paths = [str(k) for k in files], [os.fspath(v) for v in files.values()]
            if not paths:
                raise ValueError("files must name at least one HDF5 file, got {}")
        else:
            paths = _split(files, "files")
            names = _split(names, "names") if names is not None else \
                [_default_name(p) for p in paths]
        if len(names) != len(paths):
            raise ValueError("names: {} names for {} files ({!r})".format(len(names), len(paths),
                                                                          names))
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError("names: {!r} used for more than one file; pass distinct names"
                             .format(dup[0]))
        bad = [n for n in names if not n or "/" in n]
        if bad:
            raise ValueError("names: {!r} is not a valid input name (non-empty, no '/')".format(
                bad[0]))
        self.names = names
        self.sources = [_Source(p, "files", ("preds",), with_metadata=(i == 0))
                        for i, p in enumerate(paths)]
        self.target = None if targets_file in (None, "") else \
            _Source(targets_file, "targets_file", ("targets", "preds"), with_metadata=False)
        ref = self.sources[0]
        for s in self.sources[1:] + ([self.target] if self.target else []):
            _check_aligned(ref, s)

    def __len__(self):
        return self.sources[0].n

    def all_sources(self):
        return self.sources + ([self.target] if self.target is not None else [])

    def load_batch(self, idx):
        """Load rows ``idx`` of every file as one collated batch."""
        idx = np.asarray(idx, dtype=np.int64)
        sel, inverse = _selection(idx)
        batch = {"inputs": {n: _take(s.tree(s.leaves, sel), inverse)
                            for n, s in zip(self.names, self.sources)}}
        if self.target is not None:
            batch["targets"] = _take(self.target.tree(self.target.leaves, sel), inverse)
        ref = self.sources[0]
        if ref.meta:
            batch["metadata"] = _take(ref.tree(ref.meta, sel), inverse)
        return batch

    def __getitem__(self, index):
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError("index {} out of range for {} rows".format(index, len(self)))
        return _first(self.load_batch([i % len(self)]))

    def _batch_iterable(self, batch_size=32, shuffle=False, num_workers=0, drop_last=False,
                        **kwargs):
        if kwargs:  # torch DataLoader options we do not mirror: use kipoi's generic path
            return super()._batch_iterable(batch_size=batch_size, shuffle=shuffle,
                                           num_workers=num_workers, drop_last=drop_last,
                                           **kwargs)
        return _Batches(self, batch_size, shuffle, num_workers, drop_last)

    def batch_iter(self, batch_size=32, shuffle=False, num_workers=0, drop_last=False, **kwargs):
        """Iterate over collated batches (see ``kipoi.data.Dataset.batch_iter``)."""
        return iter(self._batch_iterable(batch_size=batch_size, shuffle=shuffle,
                                         num_workers=num_workers, drop_last=drop_last, **kwargs))


def _first(tree):
    if isinstance(tree, dict):
        return {k: _first(v) for k, v in tree.items()}
    v = tree[0]
    return str(v) if isinstance(v, np.str_) else v


def _slice(tree, a, b):
    if isinstance(tree, dict):
        return {k: _slice(v, a, b) for k, v in tree.items()}
    return tree[a:b]


class _Batches:
    """Re-iterable batches of a dataset exposing ``load_batch(idx)``.

    In order, rows are read in blocks of up to ``_BLOCK_BYTES`` (one h5py
    read per dataset and block, not per batch: per-read overhead dominates
    small batches) and batches are sliced from the block.
    """

    def __init__(self, ds, batch_size, shuffle, num_workers, drop_last):
        if int(batch_size) < 1 or int(num_workers) < 0:
            raise ValueError("batch_size must be >= 1 and num_workers >= 0, got {} and {}".format(
                batch_size, num_workers))
        self.ds, self.batch_size = ds, int(batch_size)
        self.shuffle, self.num_workers, self.drop_last = shuffle, int(num_workers), drop_last

    def _chunks(self):
        n = len(self.ds)
        order = np.random.permutation(n) if self.shuffle else np.arange(n)
        stop = n - n % self.batch_size if self.drop_last else n
        return [order[i:i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def __iter__(self):
        if self.num_workers == 0 and not self.shuffle:
            return self._blocks()
        chunks = self._chunks()
        if self.num_workers == 0:
            return (self.ds.load_batch(c) for c in chunks)
        from kipoi_utils.external.torch.data import DataLoader
        return iter(DataLoader(_BatchView(self.ds, chunks), batch_size=1, shuffle=False,
                               num_workers=self.num_workers, collate_fn=_unwrap))


    def _blocks(self):
        n, bs = len(self.ds), self.batch_size
        stop = n - n % bs if self.drop_last else n
        row_bytes = max(1, sum(src.row_bytes for src in self.ds.all_sources()))
        per_block = max(1, _BLOCK_BYTES // row_bytes // bs) * bs
        for a in range(0, stop, per_block):
            b = min(a + per_block, stop)
            block = self.ds.load_batch(np.arange(a, b))
            for i in range(0, b - a, bs):
                yield _slice(block, i, i + bs)


class _BatchView:
    def __init__(self, ds, chunks):
        self.ds, self.chunks = ds, chunks

    def __len__(self):
        return len(self.chunks)

    def __getitem__(self, j):
        return self.ds.load_batch(self.chunks[j])


def _unwrap(items):
    return items[0]


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


_attach_description(HDF5Predictions)
