"""``kipoi-tanger merge``: join the files of a ``--shard i/N`` run into exactly the single-run files.

``merge SHARD.h5... -o OUT.h5 [OUT.tsv] [OUT.vcf.gz] ...``: the shards are
given by their HDF5 files; every ``-o`` output is written as the single run
over all regions writes it, byte for byte:

* ``.h5``/``.hdf5``: the shards' rows, in shard order (:func:`merge`);
* any other output (a ``.tsv`` table, variant-effect's ``.vcf``/``.vcf.gz``)
  is joined from each shard's output of the same kind: a shard's HDF5 records
  its run's files (``shard_outputs``, paths relative to the HDF5), so each is
  found next to it, the k-th ``-o`` output of a kind from the k-th shard
  output of that kind (``.vcf`` and ``.vcf.gz`` are one kind: either is
  written from either). Tables: the header once, then every shard's rows
  (:func:`join_tsv`); the op's own kinds as the op joins them
  (:meth:`~kipoi_tanger.ops.Op.output_joiners`: variant-effect's VCF with its
  header once, bgzipped by htslib as the run's writer does);
* the files a run adds without being asked
  (:meth:`~kipoi_tanger.ops.Op.companion_files`: variant-effect's
  ``OUT.skipped.tsv`` next to the first output) are written too, when the
  shards recorded theirs.

Every shard, and every shard file an output needs, is checked before anything
is written (a missing one is one line naming it); the outputs appear only
once all are complete.
"""
import json
import os
import shutil
from typing import Callable, Dict, List, Optional, Sequence, Union

from ..adapter.errors import RunError, one_line
from . import h5io
from .outputs import (H5_SUFFIXES, SHARD_ATTRS, TABLE_SUFFIXES, check_parent, first_difference, make_parents,
                      parse_shard, remove_dirs, resolve_output, write_error)
from .result import RunResult

__all__ = ["merge", "join_tsv"]

#: attributes of a shard's HDF5 only (the merged file, as a single run's, has none of them)
_SHARD_ONLY = SHARD_ATTRS + ("shard_outputs",)


def join_tsv(sources: Sequence[str], path: str) -> None:
    """Join TSV files that each start with the same header line: the header once, then every file's
    rows in order, byte for byte. An empty file (a shard without rows) adds nothing."""
    header, first = None, None
    with open(path, "wb") as out:
        for src in sources:
            with open(src, "rb") as f:
                line = f.readline()
                if not line:
                    continue
                if header is None:
                    header, first = line, src
                    out.write(line)
                elif line != header:
                    raise RunError(f"merge: {src} has other columns than {first}")
                shutil.copyfileobj(f, out)


def _table_rows(path: str) -> int:
    """Data rows of a table a run wrote: its lines after the header (an empty file has none)."""
    with open(path, "rb") as f:
        return max(0, sum(1 for _ in f) - 1)


def _kind(name: str, suffixes: Sequence[str]) -> Optional[str]:
    """The output kind of a file name: its longest known suffix, without a ``.gz``."""
    low = name.lower()
    for suffix in sorted(suffixes, key=len, reverse=True):
        if low.endswith(suffix):
            return suffix[:-3] if suffix.endswith(".gz") else suffix
    return None


def _op_class(name):
    from ..ops import REGISTRY, get
    return get(name) if name in REGISTRY else None


def _recorded_outputs(attrs) -> Optional[List[str]]:
    value = attrs.get("shard_outputs")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return [str(v) for v in value] if isinstance(value, list) else None


def merge(shards: Sequence[str], output: Union[str, Sequence[str]], overwrite: bool = False) -> RunResult:
    """Join the files of a shard run (``run(..., shard=(i, N))``) into the single run's files.

    Every shard 1..N must be given exactly once (in any order) and all must
    come from the same command apart from ``--shard`` (see the module
    docstring for which outputs are joined from what).

    Parameters
    ----------
    shards : list of str
        The shards' HDF5 files.
    output : str or list of str
        The merged files: ``.h5``/``.hdf5``, and any other output kind the
        shard runs wrote (``.tsv``, ``.vcf``/``.vcf.gz``...). Each is refused
        if it exists, unless ``overwrite``; companion files (``OUT.skipped.tsv``)
        are added as a single run adds them.

    Returns
    -------
    RunResult
        ``outputs``: every file written, companions included.
    """
    outputs = [output] if isinstance(output, (str, os.PathLike)) else list(output)
    outputs = [os.fspath(o) for o in outputs]
    if not shards:
        raise RunError("merge: give the shard files to join")
    if not outputs:
        raise RunError("-o/--output: give the merged file (.h5 or .hdf5) and any other outputs to join")
    # the shards' HDF5 files: read and checked first (they say which op, hence which output kinds)
    infos = []
    for s in shards:
        if not os.path.exists(s):
            raise RunError(f"merge: {s}: no such file")
        if not s.lower().endswith(H5_SUFFIXES):
            raise RunError(f"merge: {s}: give the shards' HDF5 files (.h5 or .hdf5); their other files are "
                           "found from the names each HDF5 records")
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
    infos.sort(key=lambda x: x[0])
    # an empty shard has no datasets to name: its sequence_dataset comes from the others
    filled = next((x[3] for x in infos if x[5] > 0), infos[0][3])
    # attributes measured on a run's first batch (a converted model's conversion check): shard 1's first
    # batch is the single run's, so its value is the merged file's; the others' may differ
    first_batch = ("conversion_check",)
    ignored = _SHARD_ONLY + ("n_regions",) + first_batch

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

    plan = _plan(outputs, infos, _op_class(infos[0][3].get("op")))
    paths = [resolve_output(o) for o, _ in plan]     # once, before any work
    for (out, _), path in zip(plan, paths):
        if os.path.exists(path) and not overwrite:
            raise RunError(f"{out} exists; pass --overwrite to replace it")
        check_parent(out)

    def blocks():
        for (_, _, s, _, _, n) in infos:
            if n:
                yield from h5io.iter_blocks(s)

    created = make_parents(paths)
    tmps = []
    done = False
    try:
        for k, ((out, join), path) in enumerate(zip(plan, paths)):
            low = path.lower()
            ext = ".vcf.gz" if low.endswith(".vcf.gz") else os.path.splitext(path)[1]
            tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.merging-{os.getpid()}-{k}{ext}")
            tmps.append(tmp)
            try:
                if join is None:
                    h5io.write_h5(tmp, specs, n_rows, attrs, blocks())
                else:
                    join[0](join[1], tmp)
            except (OSError, RuntimeError) as e:
                err = write_error(e, out, "merge again")
                if err is not None:
                    raise err from None
                if join is not None and isinstance(e, OSError):     # e.g. a truncated .vcf.gz
                    raise RunError(f"merge: {out}: cannot join the shards' files ({type(e).__name__}: "
                                   f"{one_line(e)})") from None
                raise
            except RunError:
                raise
            except ValueError as e:      # a shard file that cannot be joined (VariantError...)
                raise RunError(f"merge: {out}: {one_line(e)}") from None
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
        done = True
    finally:
        if not done:
            for tmp in tmps:
                if os.path.exists(tmp):
                    os.remove(tmp)
            remove_dirs(created)
    return RunResult([o for o, _ in plan], n_rows, 0, 0)


def _plan(outputs: List[str], infos, op_cls) -> List[tuple]:
    """``[(output, None | (join, shard files))]``: how each merged file is made (HDF5 from the shards' rows;
    other kinds joined from the shard files of the same kind), companion files added, everything checked."""
    joiners: Dict[str, Callable] = {s: join_tsv for s in TABLE_SUFFIXES}
    if op_cls is not None:
        joiners.update(op_cls.output_joiners())
    known = tuple(H5_SUFFIXES) + tuple(joiners)
    seen = set()
    for o in outputs:
        if _kind(o, known) is None:
            raise RunError(f"-o/--output: {o}: unknown file type; expected {', '.join(known[:-1])} or {known[-1]}")
        if resolve_output(o) in seen:
            raise RunError(f"-o/--output: {o} is given twice")
        seen.add(resolve_output(o))
        check_parent(o)
    recorded = [(s, _recorded_outputs(attrs)) for _, _, s, attrs, _, _ in infos]
    companions = op_cls.companion_files(outputs) if op_cls is not None else []
    if companions and any(r is None for _, r in recorded):
        companions = []     # shards of an older kipoi-tanger name no files: the HDF5 only, as then
    plan, taken = [], {}
    for o in list(outputs) + companions:
        kind = _kind(o, known)
        if kind in H5_SUFFIXES:
            plan.append((o, None))
            continue
        k = taken.get(kind, 0)
        taken[kind] = k + 1
        sources = []
        for s, rec in recorded:
            if rec is None:
                raise RunError(f"merge: {o}: {s} does not record its run's files (written by an older "
                               "kipoi-tanger); merge the HDF5 files alone")
            of_kind = [r for r in rec if _kind(r, known) == kind]
            if len(of_kind) <= k:
                have = ", ".join(rec) or "none"
                raise RunError(f"merge: {o}: shard {s} wrote no{' further' if k else ''} {kind} file to join "
                               f"(its files: {have})")
            path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(s)), of_kind[k]))
            if not os.path.isfile(path):
                raise RunError(f"merge: {o}: {path}, the {kind} file of shard {s}, is missing")
            sources.append(path)
        if kind in TABLE_SUFFIXES:       # one row per region: a truncated table would merge silently short
            for (s, _), path, info in zip(recorded, sources, infos):
                rows = _table_rows(path)
                if rows != info[5]:
                    raise RunError(f"merge: {o}: {path}, the {kind} file of shard {s}, has {rows} rows but the "
                                   f"shard holds {info[5]} regions (truncated, or from another run)")
        join = joiners[next(sfx for sfx in sorted(joiners, key=len, reverse=True) if o.lower().endswith(sfx))]
        plan.append((o, (join, sources)))
    return plan
