"""Output files and shards: what ``-o`` may name, where it lies (resolved once),
its parent directories, writes that fail for a full disk, ``--shard i/N`` and
the block of regions each shard covers."""
import errno
import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from ..adapter.errors import RunError

__all__ = ["TABLE_SUFFIXES", "H5_SUFFIXES", "SHARD_ATTRS", "parse_shard", "shard_range", "check_outputs",
           "check_parent", "make_parents", "remove_dirs", "first_difference", "resolve_output", "is_disk_full",
           "write_error"]

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# how libraries word a full disk when the errno does not reach Python: h5py's HDF5 error stack,
# numpy's tofile (a short write)
_DISK_FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded|errno = (28|122)\b|"
                             r"\d+ requested and \d+ written")

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


def resolve_output(path: str) -> str:
    """The absolute path an output will be written to, resolved once before any work.

    Its directory is resolved like the kernel would (symbolic links followed,
    ``..`` after a missing directory dropped: ``out/sub/../x.h5`` is
    ``out/x.h5``); the file name is kept, so an output that is a link is
    replaced, not its target.
    """
    path = os.fspath(path)
    d, name = os.path.split(os.path.abspath(path))
    return os.path.join(os.path.realpath(d), name)


def is_disk_full(e: BaseException) -> bool:
    """True when ``e`` says the disk (or the user's quota) is full."""
    if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
        return True
    return isinstance(e, (OSError, RuntimeError)) and bool(_DISK_FULL_TEXT.search(str(e)))


def write_error(e: BaseException, path: str, then: str = "") -> Optional[RunError]:
    """One :class:`RunError` line for a failed write of ``path`` when the disk is full (None otherwise).

    Parameters
    ----------
    e : BaseException
        What the write raised.
    path : str
        The file (or journal) being written, as the user knows it.
    then : str
        What to do once space is freed (e.g. ``"rerun with --resume"``).
    """
    if not is_disk_full(e):
        return None
    quota = isinstance(e, OSError) and e.errno == errno.EDQUOT or "quota" in str(e).lower()
    what = "the disk quota is exceeded" if quota else "the disk is full (no space left on device)"
    return RunError(f"{path}: cannot write: {what}" + (f"; free space, then {then}" if then else ""))


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
        if resolve_output(o) in seen:
            raise RunError(f"-o/--output: {o} is given twice")
        seen.add(resolve_output(o))
    return list(outputs)


def check_parent(path: str) -> None:
    """Refuse an output whose missing parent dirs cannot be created (a file in the way)."""
    d = os.path.dirname(resolve_output(path))
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
