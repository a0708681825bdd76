"""Iterating a Kipoi dataloader batch by batch: everything that touches ``kipoi.data``.

A run sees a dataloader through a :class:`DataloaderSource`: its iteration
mode, how many *units* it has (regions for a ``Dataset``, batches for a
``BatchDataset``, unknown for an iterator), and ``batches(start, stop)``,
which yields ``(batch, units)`` from any unit on, so a resumed run or a shard
starts where it should. Batches are Kipoi batches: ``{"inputs": ...,
"metadata": ..., "targets": ...}`` of numpy arrays.

Also here: grouping consecutive batches into one (fewer op calls and journal
commits for predict-like ops) and a background thread that loads the next
batch while the current one is computed.
"""
import queue
import threading
from typing import Iterator, Optional, Protocol, Tuple

from .errors import AdapterError, one_line

__all__ = ["BatchSource", "DataloaderSource", "iteration_mode", "batches", "n_rows", "slice_batch", "grouped",
           "prefetch", "concat_batches", "first_batch", "named_errors", "loader_error"]

Batch = dict


def slice_batch(tree, s: int, e: int):
    """Rows ``s:e`` of every array of a nested batch."""
    if isinstance(tree, dict):
        return {k: slice_batch(v, s, e) for k, v in tree.items()}
    if isinstance(tree, list):
        return [slice_batch(v, s, e) for v in tree]
    if isinstance(tree, tuple):
        return tuple(slice_batch(v, s, e) for v in tree)
    return tree[s:e]


def n_rows(batch: Batch) -> int:
    """Regions in a batch (the length of its first input array)."""
    inputs = batch["inputs"]
    while isinstance(inputs, (dict, list, tuple)):
        inputs = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs[0]
    return len(inputs)


class _Subset:
    def __init__(self, dl, indices):
        self.dl, self.indices = dl, indices

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dl[self.indices[i]]


def iteration_mode(dl) -> str:
    """``'samples'`` (a Kipoi Dataset: one region per item), ``'batches'``
    (a BatchDataset: one batch per item) or ``'stream'`` (iterators: no random access)."""
    import kipoi.data as kd
    if isinstance(dl, (kd.Dataset, kd.PreloadedDataset)):
        return "samples"
    if isinstance(dl, kd.BatchDataset):
        return "batches"
    return "stream"


def batches(dl, mode: str, batch_size: int, num_workers: int, start: int, stop: Optional[int]
            ) -> Iterator[Tuple[Batch, int]]:
    """Yield ``(batch, units)`` for units ``start..stop`` (stop None = to the end).

    A stream has no random access: the rows before ``start`` are read and
    skipped, cutting a batch where ``start`` falls inside it.
    """
    from kipoi_utils.data_utils import numpy_collate, numpy_collate_concat
    if mode in ("samples", "batches"):
        import torch.utils.data as tud
        indices = range(start, stop)
        if mode == "samples":
            loader = tud.DataLoader(_Subset(dl, indices), batch_size=batch_size, shuffle=False,
                                    collate_fn=numpy_collate, num_workers=num_workers)
            for b in loader:
                yield b, n_rows(b)
        else:
            loader = tud.DataLoader(_Subset(dl, indices), batch_size=1, shuffle=False,
                                    collate_fn=numpy_collate_concat, num_workers=num_workers)
            for b in loader:
                yield b, 1
        return
    skipped = 0
    kwargs = {"batch_size": batch_size}
    if num_workers:
        kwargs["num_workers"] = num_workers
    for b in dl.batch_iter(**kwargs):
        n = n_rows(b)
        if skipped + n <= start:
            skipped += n
            continue
        if skipped < start:
            b = slice_batch(b, start - skipped, n)
            n -= start - skipped
            skipped = start
        yield b, n


def prefetch(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a background thread so loading overlaps compute.

    Exceptions of the loader are raised in the consumer; closing the
    generator stops the thread.
    """
    q = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def worker():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:   # re-raised in the consumer
            q.put(e)

    t = threading.Thread(target=worker, daemon=True, name="kipoi-tanger-prefetch")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def concat_batches(group: list) -> Batch:
    """Concatenate Kipoi batches along the region axis (one batch is returned as is)."""
    if len(group) == 1:
        return group[0]
    from kipoi_utils.data_utils import numpy_collate_concat
    return numpy_collate_concat(group)


def _nbytes(tree):
    if isinstance(tree, dict):
        return sum(_nbytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(_nbytes(v) for v in tree)
    return getattr(tree, "nbytes", 0)


def grouped(it: Iterator[Tuple[Batch, int]], limit: int, max_bytes: int) -> Iterator[Tuple[Batch, int]]:
    """Concatenate consecutive batches up to ``limit`` rows / ``max_bytes`` of inputs (0: no grouping)."""
    if not limit:
        yield from it
        return
    group, units, rows, size = [], 0, 0, 0
    for batch, u in it:
        group.append(batch)
        units += u
        rows += n_rows(batch)
        size += _nbytes(batch.get("inputs"))
        if rows >= limit or size >= max_bytes:
            yield concat_batches(group), units
            group, units, rows, size = [], 0, 0, 0
    if group:
        yield concat_batches(group), units


def loader_error(e: BaseException) -> str:
    """``Type: message`` of an exception a dataloader raised, in one line (for an error
    re-raised from a DataLoader worker process: the original exception's last line)."""
    msg = str(e)
    if msg.startswith("Caught ") and "Original Traceback" in msg:
        last = [line.strip() for line in msg.splitlines() if line.strip()][-1]
        head, sep, rest = last.partition(": ")
        if sep and " " not in head:
            return f"{head.rsplit('.', 1)[-1]}: {rest}"
        return f"{type(e).__name__}: {last}"
    return f"{type(e).__name__}: {one_line(e)}"


def named_errors(it: Iterator, label: str) -> Iterator:
    """Yield from ``it``; an exception the dataloader raises while loading becomes one
    :class:`AdapterError` line naming ``label`` (the original is chained for debugging)."""
    try:
        yield from it
    except AdapterError:
        raise
    except Exception as e:
        raise AdapterError(f"{label}: {loader_error(e)}") from e


class BatchSource(Protocol):
    """What the run loop needs from the regions of a run (an op may bring its own, see
    :meth:`kipoi_tanger.ops.base.Op.batch_source`; :class:`DataloaderSource` is the default).

    Batches are Kipoi-shaped dicts: ``{"inputs": ..., "metadata": ...}``; ``inputs`` and
    ``metadata`` are written with ``--keep_inputs``/``--keep_metadata``.
    """
    units_total: Optional[int]   # None: no random access (no shards, resume skips rows)
    unit: str                    # progress bar unit
    fixed_batches: bool          # every batch but the last has batch_size rows (batches may be grouped)

    def no_random_access(self) -> Optional[str]: ...

    def shard_step(self, batch_size: int) -> int: ...

    def items(self, batch: Batch) -> dict: ...

    def batches(self, batch_size: int, num_workers: int, start: int, stop: Optional[int]
                ) -> Iterator[Tuple[Batch, int]]: ...


class DataloaderSource:
    """The regions of a run: a model's Kipoi dataloader, instantiated with validated arguments.

    Parameters
    ----------
    target : KipoiTarget
        The loaded model (its ``Dl`` is instantiated).
    kwargs : dict
        Dataloader keyword arguments, already checked by
        :meth:`KipoiTarget.dataloader_args`.

    Attributes
    ----------
    mode : str
        See :func:`iteration_mode`.
    units_total : int or None
        Units (regions, or batches of a BatchDataset); None for a stream.
    unit : str
        ``'region'`` or ``'batch'`` (progress bar unit).
    """

    def __init__(self, target, kwargs: dict):
        self.target = target
        self.dl = target.make_dataloader(kwargs)
        self.mode = iteration_mode(self.dl)
        self.units_total = len(self.dl) if self.mode != "stream" else None
        self.unit = "region" if self.mode != "batches" else "batch"
        # every unit but the last holds batch_size regions: shard edges fall on batch edges
        self.fixed_batches = self.mode == "samples"

    def no_random_access(self) -> Optional[str]:
        """Why this source cannot be sharded, or None when it can."""
        if self.mode != "stream":
            return None
        return (f"the dataloader ({type(self.dl).__name__}) has no random access (it is a "
                f"{getattr(self.target.Dl, 'type', 'stream')}); sharding needs a Dataset or BatchDataset")

    def shard_step(self, batch_size: int) -> int:
        """Units per dataloader batch (block edges of shards are multiples of it)."""
        return batch_size if self.mode == "samples" else 1

    def items(self, batch: Batch) -> dict:
        """A batch's model inputs as ``{schema key: array}`` (what an op's per-batch call takes)."""
        return self.target.input_items(batch["inputs"])

    def batches(self, batch_size: int, num_workers: int, start: int, stop: Optional[int]
                ) -> Iterator[Tuple[Batch, int]]:
        """``(batch, units)`` for units ``start..stop``, see :func:`batches`; what the dataloader
        raises while loading is one :class:`AdapterError` line naming it."""
        label = f"dataloader {self.target.dataloader_name or self.target.Dl.__name__}"
        return named_errors(batches(self.dl, self.mode, batch_size, num_workers, start, stop), label)


def first_batch(target, kwargs: dict, batch_size: int) -> Batch:
    """The first batch of ``batch_size`` regions of the model's dataloader (for checks)."""
    dl = target.make_dataloader(kwargs)
    try:
        return next(iter(dl.batch_iter(batch_size=batch_size)))
    except StopIteration:
        raise AdapterError("dataloader: no regions (the dataloader is empty)") from None
