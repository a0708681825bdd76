"""HDF5 predictions dataloader: stored predictions of other models as inputs.

A Kipoi dataloader component (numpy + h5py + kipoi only): it
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
* Batching and argument checks come from ``../_shared.py``, loaded by path.
"""
import importlib.util
import os
import sys

import h5py
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
__all__ = ["HDF5Predictions"]

_ID_KEYS = tuple("metadata/" + "/".join(p) for p in _shared.ID_PATHS)
_ALIGN_CHUNK = 1 << 16
_BLOCK_BYTES = 16 << 20


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
    return tree if inverse is None else _shared.tree_map(lambda v: v[inverse], tree)


class HDF5Predictions(_shared.BatchedDataset):
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
        else:
            paths = _shared.comma_list(files, "files")
            names = _shared.comma_list(names, "names") if names is not None else \
                [_default_name(p) for p in paths]
        if not paths:
            raise ValueError("files must name at least one HDF5 file, got {!r}".format(files))
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

    def ordered_batches(self, batch_size, stop):
        """In-order batches cut from blocks of up to ``_BLOCK_BYTES``: one h5py read
        per dataset and block, not per batch (per-read overhead dominates small
        batches)."""
        row_bytes = max(1, sum(src.row_bytes for src in self.all_sources()))
        per_block = max(1, _BLOCK_BYTES // row_bytes // batch_size) * batch_size
        for a in range(0, stop, per_block):
            b = min(a + per_block, stop)
            block = self.load_batch(np.arange(a, b))
            for i in range(0, b - a, batch_size):
                yield _shared.tree_map(lambda v: v[i:i + batch_size], block)


_shared.attach_description(HDF5Predictions, globals().get("__file__"))
