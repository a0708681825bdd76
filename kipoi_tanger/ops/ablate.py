"""``ablate`` over a Kipoi model: :func:`kipoi_tanger.ablate.ablate` with an inner op
(predict or deeplift-shap), written as ``y_before`` ``(N, ...)`` and ``y_after``
``(N, n, ...)`` (``y_before/<name>`` for several outputs).

Seeds. ``--shuffle shuffle`` (tangermeme's default) draws ``n`` permutations
from ``random_state`` and applies them to every sequence, so every batch gets
the same ones. ``--shuffle dinucleotide`` with an int seed ``s`` shuffles
sequence ``i`` *of a call* with ``s + i``; the op passes ``s + g`` for the
region's index ``g`` in the dataloader, so the file equals the Python op
called on all regions at once, whatever the batch size, shards or resume.
"""
import functools
import re
from typing import Optional

import numpy as np

from .base import OpError, Param, Perturbation, name_outputs

#: the batch (and per-batch items) key holding each region's index in the dataloader
REGION_INDEX = "_kipoi_tanger_region_index"

SHUFFLES = ("shuffle", "dinucleotide")


def shuffle_function(name: str):
    """The ``shuffle_fn`` of ``--shuffle name`` (the dinucleotide shuffle keeps N as a character)."""
    from .. import ersatz
    if name == "dinucleotide":
        return functools.partial(ersatz.dinucleotide_shuffle, allow_N=True)
    return ersatz.shuffle


class IndexedSource:
    """A batch source whose batches carry each region's index in the dataloader
    (``batch[REGION_INDEX]``, also in :meth:`items`), for seeds that depend on the
    region only. Wraps the model's :class:`~kipoi_tanger.adapter.dataloading.DataloaderSource`.
    """

    def __init__(self, source):
        self.source = source
        self.units_total = source.units_total
        self.unit = source.unit
        self.fixed_batches = source.fixed_batches

    def no_random_access(self) -> Optional[str]:
        return self.source.no_random_access()

    def shard_step(self, batch_size: int) -> int:
        return self.source.shard_step(batch_size)

    def items(self, batch) -> dict:
        items = dict(self.source.items(batch))
        items[REGION_INDEX] = batch[REGION_INDEX]
        return items

    def _rows_before(self, batch_size, start):
        """Regions before unit ``start`` (units are regions, except for a BatchDataset)."""
        if start == 0 or getattr(self.source, "mode", "samples") != "batches":
            return start
        from ..adapter.dataloading import n_rows
        return sum(n_rows(b) for b, _ in self.source.batches(batch_size, 0, 0, start))

    def batches(self, batch_size: int, num_workers: int, start: int, stop: Optional[int]):
        from ..adapter.dataloading import n_rows
        first = self._rows_before(batch_size, start)
        for batch, units in self.source.batches(batch_size, num_workers, start, stop):
            rows = n_rows(batch)
            batch = dict(batch)
            batch[REGION_INDEX] = np.arange(first, first + rows, dtype=np.int64)
            first += rows
            yield batch, units


class Ablate(Perturbation):
    """The inner op's results before and after shuffling positions ``[start, end)`` of every region."""

    name = "ablate"
    help = "predictions/attributions before and after shuffling a window of every region"
    params = (
        Param("start", None, "first position of the shuffled window", kind="int", minimum=0, required=True,
              expect="a non-negative integer position"),
        Param("end", None, "end of the window (exclusive); negative counts from L + 1 (-1 = L)", kind="int",
              required=True, expect="an integer position"),
        Param("n", 20, "shuffles per region (default 20)", kind="int", minimum=1),
        Param("shuffle", "shuffle", "shuffle: one permutation per shuffle, shared by all regions (tangermeme's "
              "default); dinucleotide: dinucleotide-preserving shuffles per region", choices=SHUFFLES),
        Param("random_state", None, "seed of the shuffles (default: drawn once and recorded in the file)",
              kind="int", minimum=0),
    )
    inner_help = "what to compute before and after shuffling the window (default predict)"

    @property
    def n_variants(self) -> int:
        return self.values["n"]          # the region's n shuffles (y_after is region-major)

    def check(self, target) -> None:
        for p in ("start", "end"):
            if self.values[p] is None:
                raise OpError(f"--{p}: ablate needs the shuffled window, e.g. --start 100 --end 120")
        super().check(target)
        start, end, L = self.values["start"], self.values["end"], target.spec.sequence_length
        if L is None:
            return                              # checked on every batch by ablate itself
        stop = L + 1 + end if end < 0 else end
        if start >= L:
            raise OpError(f"--start: {start} is past the end of sequences of length {L}; expected 0 to {L - 1}")
        if not start < stop <= L:
            given = f"{end} (= {stop})" if end < 0 else f"{end}"
            raise OpError(f"--end: {given} does not close a window after --start {start} in sequences of length "
                          f"{L}; expected {start + 1} to {L}, or {start - L} to -1 counting from L + 1")
        if self.values["shuffle"] == "dinucleotide" and self.values["n"] > 1 and stop - start < 4:
            raise OpError(f"--start/--end: the {stop - start}-position window [{start}, {stop}) has exactly one "
                          "dinucleotide shuffle (itself, its ends are kept); widen it to 4 positions or more, "
                          "or use --shuffle shuffle or --n 1")

    def function(self):
        from ..ablate import ablate
        func, kwargs = self.inner.function()
        v = self.values
        # the inner op's keywords (deeplift-shap's random_state included) go through
        # additional_func_kwargs: ablate's own random_state seeds the shuffles
        return ablate, dict(start=v["start"], end=v["end"], n=v["n"], shuffle_fn=shuffle_function(v["shuffle"]),
                            random_state=v["random_state"], func=func, additional_func_kwargs=kwargs)

    def batch_source(self, target, dataloader_args):
        return IndexedSource(super().batch_source(target, dataloader_args))

    def compute(self, items):
        ctx = self._ctx
        X, args, keys = ctx.inputs(items, canonical=True)
        w = ctx.wrap(self.view, keys, x_dtype=X.dtype, arg_dtypes=[a.dtype for a in args],
                     output=self.explained_output())
        func, kwargs = self.function()
        seed = kwargs["random_state"]
        index = items.get(REGION_INDEX)
        if index is None:                       # called outside a run: the batch is regions 0..B-1
            index = np.arange(len(X))
        if self.values["shuffle"] == "dinucleotide" and seed is not None:
            kwargs["random_state"] = [seed + int(g) for g in index]
        try:
            y = func(w, X, args=args or None, **kwargs, **ctx.common(self.chunk()))
        except ValueError as e:
            raise self._region_error(e, index) from None
        return self.name_outputs(y)

    def _region_error(self, e, index):
        """A dinucleotide window with a single shuffle: name the region, not its place in the batch."""
        m = re.search(r"identical sequences: sequence (\d+) (has exactly one dinucleotide shuffle[^;]*)", str(e))
        if not m or int(m.group(1)) >= len(index):
            return e
        return OpError(f"--shuffle dinucleotide: region {int(index[int(m.group(1))])} {m.group(2)}; "
                       "use --n 1 or --shuffle shuffle")

    def name_outputs(self, y):
        names = self.inner.result_names()
        out = name_outputs("y_before", y[0], names)
        out.update(name_outputs("y_after", y[1], names))
        return out
