"""Code shared by the dataloader components: batching, argument checks, layouts, DNA.

Every component (``<component>/dataloader.py``) loads this file **by path**:
Kipoi execs a component by path (``dataloader.py::Class``, or ``defined_as:
dataloader.Class`` with the component directory on ``sys.path``), so there is
no package to import it from. A component looks for ``_shared.py`` next to its
own ``dataloader.py`` first (a component copied alone together with this file)
and then in its parent directory (``dataloaders/``), so the tree works wherever
it is copied. It needs only numpy and kipoi.

Contents
--------
* ``BatchedDataset``: a ``kipoi.data.Dataset`` whose ``batch_iter`` builds
  whole batches with the subclass's ``load_batch(idx)`` (several times faster
  than Kipoi's per-sample ``__getitem__`` + ``numpy_collate``, same arrays),
  in worker processes when ``num_workers > 0``.
* ``attach_description``: a plain import of a component carries its yaml.
* Argument coercion (``as_int``, ``as_bool``, ``as_dtype``, ``comma_list``):
  ``--dataloader_args k=v`` hands over strings.
* Layouts in the grammar of model.yaml's ``postprocessing: tanger: layout``.
* ``DNA`` and ``byte_codes`` (a 256-entry byte lookup table).
* Nested-dict batch helpers (``tree_map``, ``tree_row``, ``tree_concat``).
"""
import gzip
import os
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
from kipoi.data import Dataset

__all__ = ["DNA", "ID_PATHS", "BatchedDataset", "Batches", "attach_description", "as_int", "as_bool",
           "as_dtype", "comma_list", "one_line", "open_text", "byte_codes", "parse_layout",
           "format_layout", "layout_shape", "tree_map", "tree_row", "tree_concat"]

DNA = "ACGT"
INVALID = 255  # byte_codes' code for a byte outside the alphabet
# Where region ids live in a batch's metadata: interval loaders, then tables.
ID_PATHS = (("ranges", "id"), ("id",))


# ---------------------------------------------------------------------------
# arguments

def one_line(e: BaseException) -> str:
    """An exception's message on one line (its type name if it has none)."""
    return " ".join(str(e).split()) or type(e).__name__


def as_int(value: Any, name: str, minimum: int, allow_none: bool = False) -> Optional[int]:
    """An integer argument, also from its string form (``k=v`` dataloader args).

    Raises
    ------
    ValueError
        One line naming the argument when ``value`` is not an integer >= ``minimum``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ValueError("{} must be an integer >= {}{}, got {!r}".format(
            name, minimum, " or None" if allow_none else "", value))
    return int(value)


def as_bool(value: Any, name: str) -> bool:
    """A boolean argument, also spelled ``"true"``/``"false"``/``"1"``/``"0"``."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError("{} must be true or false, got {!r}".format(name, value))


def as_dtype(value: Any, name: str = "dtype", kinds: str = "biuf") -> np.dtype:
    """A numeric numpy dtype (``kinds``: numpy kind letters allowed)."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in kinds:
        raise ValueError("{}: expected a numeric dtype such as 'float32', 'float16', 'int8'{}, got {!r}"
                         .format(name, ", 'bool'" if "b" in kinds else "", value))
    return dtype


def comma_list(value: Any, name: str, unique: bool = False) -> list:
    """Entries of a comma-separated string or a list (paths allowed); ``""`` gives ``[]``.

    Raises
    ------
    TypeError
        ``value`` is neither a string nor a list/tuple.
    ValueError
        An entry is empty, or (``unique``) listed twice.
    """
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")] if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = [(os.fspath(v) if isinstance(v, os.PathLike) else str(v)).strip() for v in value]
    else:
        raise TypeError("{} must be a comma-separated string or a list, got {!r}".format(name, value))
    if any(not v for v in items):
        raise ValueError("{} must list non-empty entries, got {!r}".format(name, value))
    if unique:
        dup = sorted({v for v in items if items.count(v) > 1})
        if dup:
            raise ValueError("{}: {!r} is listed twice".format(name, dup[0]))
    return items


def open_text(path: str):
    """Open a text file, gzip-compressed or not (detected from its first bytes).

    Line endings are returned untranslated (``newline=""``: ``\\r\\n`` files and
    the csv module both work); callers strip them.
    """
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", newline="") if gz else open(path, newline="")


def byte_codes(alphabet: str, blank: str = "") -> np.ndarray:
    """A 256-entry byte -> code table: ``alphabet[i]`` (any case) -> ``i``,
    ``blank`` characters (any case) -> ``len(alphabet)``, any other byte -> 255."""
    table = np.full(256, INVALID, dtype=np.uint8)
    for code, chars in list(enumerate(alphabet)) + [(len(alphabet), c) for c in blank]:
        for ch in chars:
            table[ord(ch)] = table[ord(ch.lower())] = code
    return table


# ---------------------------------------------------------------------------
# layouts: the grammar of model.yaml's postprocessing: tanger: layout

LAYOUT_EXAMPLES = ('"(A, L)" (tangermeme\'s (4, L)), "(L, A)" (kipoiseq\'s (L, 4)), '
                   '"(A, L, 1)" (Basset\'s (4, L, 1))')


def _layout_parts(layout):
    if isinstance(layout, (list, tuple)):
        return [str(a).strip() for a in layout]
    text = layout.strip().strip("()[]").replace(",", " ")
    parts = text.split()
    return list(parts[0]) if len(parts) == 1 and len(parts[0]) > 1 else parts  # "AL1"


def _layout_ok(axes):
    return (bool(axes) and all(a in ("A", "L", "1") for a in axes) and axes.count("A") == 1
            and axes.count("L") == 1)


def parse_layout(layout: Any) -> tuple:
    """Axes of one one-hot sample (no batch axis), spelled as the tanger section's ``layout``.

    Parameters
    ----------
    layout : str or sequence of str
        Axes ``A`` (the alphabet, size 4), ``L`` (the sequence) and ``1``
        (size-1 axes), exactly one ``A`` and one ``L``, separated by commas
        or spaces, optionally in brackets, any case: ``"(A, L)"``,
        ``"(L, A)"``, ``"(A, L, 1)"``, ``"A L"``, ``"AL1"``.

    Returns
    -------
    tuple of str
        E.g. ``("A", "L", "1")``.

    Raises
    ------
    ValueError
        One line; the retired spelling with ``4`` for the alphabet (``"4,L"``)
        gets the new spelling of the same layout.
    """
    if not isinstance(layout, (str, list, tuple)):
        raise TypeError("layout must be a string such as {}, got {!r}".format(LAYOUT_EXAMPLES, layout))
    axes = tuple(p.upper() for p in _layout_parts(layout))
    old = tuple("A" if a == "4" else a for a in axes)
    if "4" in axes and _layout_ok(old):
        raise ValueError("layout {!r} is the old spelling; write \"{}\" (axes A, L and 1, as in "
                         "model.yaml's postprocessing: tanger: layout)".format(layout, format_layout(old)))
    if not _layout_ok(axes):
        raise ValueError("layout {!r} is not valid: expected one A (alphabet) axis, one L (sequence) "
                         "axis and optional 1 axes, separated by commas, e.g. {}".format(
                             layout, LAYOUT_EXAMPLES))
    return axes


def format_layout(axes: Sequence[str]) -> str:
    """``("A", "L")`` -> ``"(A, L)"``, the tanger section's spelling."""
    return "(" + ", ".join(axes) + ")"


def layout_shape(axes: Sequence[str], seq_len: Optional[int], alphabet_size: int = 4) -> tuple:
    """The shape of one sample: ``A`` -> ``alphabet_size``, ``L`` -> ``seq_len``, ``1`` -> 1."""
    return tuple({"A": alphabet_size, "L": seq_len, "1": 1}[a] for a in axes)


# ---------------------------------------------------------------------------
# batches as nested dicts/lists of arrays

def tree_map(fn: Callable, tree: Any) -> Any:
    """``fn`` applied to every array of a nested dict/list."""
    if isinstance(tree, dict):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [tree_map(fn, v) for v in tree]
    return fn(tree)


def tree_row(tree: Any, j: int) -> Any:
    """Row ``j`` of a batch, i.e. one sample (numpy strings become ``str``)."""
    def row(v):
        v = v[j]
        return str(v) if isinstance(v, np.str_) else v
    return tree_map(row, tree)


def tree_concat(trees: Sequence[Any]) -> Any:
    """Batches of one structure concatenated along the first axis."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: tree_concat([t[k] for t in trees]) for k in first}
    if isinstance(first, (list, tuple)):
        return [tree_concat([t[i] for t in trees]) for i in range(len(first))]
    return np.concatenate([np.asarray(t) for t in trees])


# ---------------------------------------------------------------------------
# batching

class BatchedDataset(Dataset):
    """A Kipoi ``Dataset`` that builds whole batches.

    Subclasses define ``__len__`` and ``load_batch(idx)``, which returns the
    collated batch of samples ``idx`` (what Kipoi's ``numpy_collate`` makes of
    the per-sample items). ``__getitem__`` is row 0 of ``load_batch([i])``;
    ``ordered_batches`` may be overridden to read in-order batches in larger
    blocks.
    """

    def load_batch(self, idx: np.ndarray) -> dict:
        """The collated batch of samples ``idx``."""
        raise NotImplementedError

    def ordered_batches(self, batch_size: int, stop: int) -> Iterator[dict]:
        """In-order batches of rows ``0 .. stop - 1`` (the last one may be short)."""
        for a in range(0, stop, batch_size):
            yield self.load_batch(np.arange(a, min(a + batch_size, stop)))

    def _index(self, index) -> int:
        i, n = int(index), len(self)
        if not -n <= i < n:
            raise IndexError("index {} out of range for {} samples".format(index, n))
        return i % n

    def __getitem__(self, index):
        return tree_row(self.load_batch(np.array([self._index(index)])), 0)

    def _batch_iterable(self, batch_size=32, shuffle=False, num_workers=0, drop_last=False, **kwargs):
        if kwargs:  # torch DataLoader options we do not mirror: Kipoi's generic per-sample path
            return super()._batch_iterable(batch_size=batch_size, shuffle=shuffle,
                                           num_workers=num_workers, drop_last=drop_last, **kwargs)
        return Batches(self, batch_size, shuffle, num_workers, drop_last)

    def batch_iter(self, batch_size=32, shuffle=False, num_workers=0, drop_last=False, **kwargs):
        """Iterate over collated batches (see ``kipoi.data.Dataset.batch_iter``)."""
        return iter(self._batch_iterable(batch_size=batch_size, shuffle=shuffle,
                                         num_workers=num_workers, drop_last=drop_last, **kwargs))


class Batches:
    """Re-iterable batches of a ``BatchedDataset``.

    In order without workers: ``ds.ordered_batches``. Shuffled: ``load_batch``
    on a ``np.random.permutation``. With ``num_workers > 0``: each batch is
    built by ``load_batch`` in a worker process (datasets reopen their files
    after a fork), in the same order.
    """

    def __init__(self, ds: BatchedDataset, batch_size, shuffle, num_workers, drop_last):
        self.ds = ds
        self.batch_size = as_int(batch_size, "batch_size", 1)
        self.num_workers = as_int(num_workers, "num_workers", 0)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)

    def _stop(self):
        n = len(self.ds)
        return n - n % self.batch_size if self.drop_last else n

    def __len__(self):
        return -(-self._stop() // self.batch_size)

    def __iter__(self):
        bs, stop = self.batch_size, self._stop()
        if not self.shuffle and not self.num_workers:
            return iter(self.ds.ordered_batches(bs, stop))
        order = np.random.permutation(len(self.ds)) if self.shuffle else np.arange(len(self.ds))
        chunks = [order[a:a + bs] for a in range(0, stop, bs)]
        if not self.num_workers:
            return (self.ds.load_batch(c) for c in chunks)
        from kipoi_utils.external.torch.data import DataLoader
        return iter(DataLoader(_BatchView(self.ds, chunks), batch_size=1, shuffle=False,
                               num_workers=self.num_workers, collate_fn=_unwrap))


class _BatchView:
    """Batch ``j`` as item ``j``, for a torch DataLoader with ``batch_size=1``."""

    def __init__(self, ds, chunks):
        self.ds, self.chunks = ds, chunks

    def __len__(self):
        return len(self.chunks)

    def __getitem__(self, j):
        return self.ds.load_batch(self.chunks[j])


def _unwrap(items):
    return items[0]


def attach_description(cls: type, module_file: Optional[str]) -> type:
    """Attach the ``dataloader.yaml`` next to ``module_file`` to ``cls``.

    Kipoi does this itself when it loads a component by path (and then the
    module has no ``__file__``: pass ``globals().get("__file__")``); doing it on
    a plain import too makes the class work as a Kipoi dataloader
    (``init_example``, ``get_output_schema``, ``kipoi predict --dataloader
    dataloaders.<component>.dataloader.<Class>`` with the repository root on
    ``PYTHONPATH``).
    """
    if cls.args is not None or module_file is None:
        return cls
    folder = os.path.dirname(os.path.abspath(module_file))
    path = os.path.join(folder, "dataloader.yaml")
    if not os.path.exists(path):
        return cls
    from kipoi.specs import DataLoaderDescription
    from kipoi_utils import cd
    with cd(folder):
        cls._add_description_factory(DataLoaderDescription.load(path))
    cls.source_dir = folder
    return cls
