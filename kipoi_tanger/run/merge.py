"""``kipoi-tanger merge``: join the files of a ``--shard i/N`` run into exactly the single-run file."""
import os
from typing import Sequence

from ..adapter.errors import RunError, one_line
from . import h5io
from .outputs import (H5_SUFFIXES, SHARD_ATTRS, check_parent, first_difference, make_parents, parse_shard,
                      remove_dirs, resolve_output, write_error)
from .result import RunResult

__all__ = ["merge"]


def merge(shards: Sequence[str], output: str, overwrite: bool = False) -> RunResult:
    """Join shard files (``run(..., shard=(i, N))``) into the single-run file.

    Every shard 1..N must be given exactly once (in any order) and all must
    come from the same command apart from ``--shard``.

    Parameters
    ----------
    shards : list of str
        Shard HDF5 files.
    output : str
        The merged file (``.h5``/``.hdf5``); refused if it exists unless ``overwrite``.
    """
    if not shards:
        raise RunError("merge: give the shard files to join")
    if not output.lower().endswith(H5_SUFFIXES):
        raise RunError(f"-o/--output: {output}: merge writes HDF5 (.h5 or .hdf5)")
    path = resolve_output(output)     # once, before any work
    if os.path.exists(path) and not overwrite:
        raise RunError(f"{output} exists; pass --overwrite to replace it")
    check_parent(output)
    d = os.path.dirname(path)
    infos = []
    for s in shards:
        if not os.path.exists(s):
            raise RunError(f"merge: {s}: no such file")
        try:
            attrs = h5io.read_attrs(s)
            specs, n = h5io.dataset_specs(s)
        except Exception as e:
            raise RunError(f"merge: {s}: not a readable HDF5 file ({one_line(e)})") from None
        if "shard" not in attrs:
            raise RunError(f"merge: {s} is not a shard (it was not written with --shard)")
        i, N = parse_shard(attrs["shard"])
        infos.append((i, N, s, attrs, specs, n))
    Ns = {N for _, N, *_ in infos}
    if len(Ns) != 1:
        raise RunError(f"merge: the shards come from different splits (N = {sorted(Ns)})")
    N = Ns.pop()
    got = sorted(i for i, *_ in infos)
    if got != list(range(1, N + 1)):
        missing = sorted(set(range(1, N + 1)) - set(got))
        dup = sorted({i for i in got if got.count(i) > 1})
        what = f"missing {', '.join(f'{i}/{N}' for i in missing)}" if missing else \
            f"{', '.join(f'{i}/{N}' for i in dup)} given twice"
        raise RunError(f"merge: need each of the {N} shards exactly once ({what})")
    infos.sort()
    # an empty shard has no datasets to name: its sequence_dataset comes from the others
    filled = next((x[3] for x in infos if x[5] > 0), infos[0][3])
    # attributes measured on a run's first batch (a converted model's conversion check): shard 1's first
    # batch is the single run's, so its value is the merged file's; the others' may differ
    first_batch = ("conversion_check",)
    ignored = SHARD_ATTRS + ("n_regions",) + first_batch

    def settings(attrs, n):
        out = {k: v for k, v in attrs.items() if k not in ignored}
        if n == 0 and "sequence_dataset" in filled:
            out["sequence_dataset"] = filled["sequence_dataset"]
        return out

    base = settings(infos[0][3], infos[0][5])
    for i, _, s, attrs, specs, n in infos[1:]:
        other = settings(attrs, n)
        if other != base:
            diff = first_difference(base, other)
            raise RunError(f"merge: {s} was run with other settings than {infos[0][2]} ({diff})")
    ranges = [x[3]["shard_range"] for x in infos]
    for (a0, a1), (b0, b1) in zip(ranges, ranges[1:]):
        if a1 != b0:
            raise RunError("merge: the shards do not cover contiguous region blocks")
    specs_all = [sp for *_, sp, n in infos if n > 0]
    if not specs_all:
        raise RunError("merge: every shard is empty")
    specs = specs_all[0]
    for (i, _, s, _, sp, n) in infos:
        if n > 0 and sp != specs:
            raise RunError(f"merge: {s} holds other datasets or shapes than the first shard")
    n_rows = sum(n for *_, n in infos)
    attrs = dict(base)
    attrs.update({k: infos[0][3][k] for k in first_batch if k in infos[0][3]})
    attrs["n_regions"] = n_rows

    def blocks():
        for (_, _, s, _, _, n) in infos:
            if n:
                yield from h5io.iter_blocks(s)

    created = make_parents([path])
    tmp = os.path.join(d, f".{os.path.basename(path)}.merging-{os.getpid()}")
    try:
        h5io.write_h5(tmp, specs, n_rows, attrs, blocks())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        remove_dirs(created)
        err = write_error(e, output, "merge again") if isinstance(e, (OSError, RuntimeError)) else None
        if err is not None:
            raise err from None
        raise
    return RunResult([output], n_rows, 0, 0)
