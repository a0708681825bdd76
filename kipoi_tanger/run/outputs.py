"""Output files and shards: what ``-o`` may name, their parent directories,
``--shard i/N`` and the block of regions each shard covers."""
import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from ..adapter.errors import RunError

__all__ = ["TABLE_SUFFIXES", "H5_SUFFIXES", "SHARD_ATTRS", "parse_shard", "shard_range", "check_outputs",
           "check_parent", "make_parents", "remove_dirs", "first_difference"]

TABLE_SUFFIXES = (".tsv",)
H5_SUFFIXES = (".h5", ".hdf5")
SHARD_ATTRS = ("shard", "shard_range", "units_total")


def parse_shard(shard: Union[None, str, Tuple[int, int]]) -> Optional[Tuple[int, int]]:
    """``"2/4"`` or ``(2, 4)`` → ``(2, 4)``; shards are numbered 1..N."""
    if shard is None:
        return None
    if isinstance(shard, str):
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", shard)
        if not m:
            raise RunError(f"--shard: expected i/N such as 1/4, got {shard!r}")
        shard = (int(m.group(1)), int(m.group(2)))
    i, n = shard
    if n < 1 or not 1 <= i <= n:
        raise RunError(f"--shard: i/N needs 1 <= i <= N (shards are numbered from 1), got {i}/{n}")
    return int(i), int(n)


def shard_range(shard: Tuple[int, int], units_total: int, step: int) -> Tuple[int, int]:
    """Units ``[start, stop)`` of shard ``(i, N)``: contiguous blocks whose edges fall on
    multiples of ``step`` (a dataloader batch), so every batch is the one a single run sees."""
    i, n = shard
    n_steps = -(-units_total // step)
    start = min(units_total, ((i - 1) * n_steps // n) * step)
    stop = min(units_total, (i * n_steps // n) * step)
    return start, stop


def check_outputs(outputs: Union[str, Sequence[str]], table_ok: bool, extra_suffixes: Iterable[str] = ()
                  ) -> List[str]:
    """Validate ``-o`` files: known suffixes, tables only for table ops, no duplicates,
    parents that can be created. Returns the outputs as a list."""
    if not outputs:
        raise RunError("-o/--output: give at least one output file (.h5, .hdf5 or .tsv)")
    if isinstance(outputs, str):
        outputs = [outputs]
    known = H5_SUFFIXES + TABLE_SUFFIXES + tuple(extra_suffixes)
    seen = set()
    for o in outputs:
        low = o.lower()
        if not low.endswith(known):
            raise RunError(f"-o/--output: {o}: unknown file type; expected "
                           f"{', '.join(known[:-1])} or {known[-1]}")
        if low.endswith(TABLE_SUFFIXES) and not table_ok:
            raise RunError(f"-o/--output: {o}: a .tsv holds tables (predictions); this op writes arrays, use .h5")
        check_parent(o)
        if os.path.abspath(o) in seen:
            raise RunError(f"-o/--output: {o} is given twice")
        seen.add(os.path.abspath(o))
    return list(outputs)


def check_parent(path: str) -> None:
    """Refuse an output whose missing parent dirs cannot be created (a file in the way)."""
    d = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(d):
        d = os.path.dirname(d)
    if not os.path.isdir(d):
        raise RunError(f"-o/--output: {path}: {d} is not a directory")


def make_parents(paths: Iterable[str]) -> List[str]:
    """Create the missing parent dirs of ``paths``; return the dirs created (outermost first)."""
    created = []
    for p in paths:
        d = os.path.dirname(os.path.abspath(p))
        missing = []
        while not os.path.isdir(d):
            missing.append(d)
            d = os.path.dirname(d)
        for m in reversed(missing):
            try:
                os.mkdir(m)
            except FileExistsError:     # made meanwhile (a parallel shard)
                continue
            except OSError as e:
                remove_dirs(created)
                raise RunError(f"-o/--output: {p}: cannot create directory {m} ({e.strerror})") from None
            created.append(m)
    return created


def remove_dirs(created: Sequence[str]) -> None:
    """Remove the dirs :func:`make_parents` created if they are still empty (a run that left nothing)."""
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            pass


def first_difference(a, b, path: str = "") -> str:
    """The first setting that differs between two nested dicts, as ``key.sub: old then, new now``."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{path}{k}.")
        return "nothing"
    return f"{path.rstrip('.')}: {a!r} then, {b!r} now"
