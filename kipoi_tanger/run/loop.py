"""Stream a model's regions through an op object into HDF5/TSV files: :func:`run`.

:func:`run` loads the model (:mod:`kipoi_tanger.adapter`), builds the op
(:mod:`kipoi_tanger.ops`), iterates the op's batch source (the model's Kipoi
dataloader) batch by batch and hands every batch to the op; each batch's
results are committed to a *journal* next to the first output
(``OUT.h5.partial/``, :mod:`~kipoi_tanger.run.journal`) and the outputs are
assembled from the journal at the end, then renamed into place. Hence:

* memory is bounded by one batch (plus one HDF5 chunk), whatever the number
  of regions;
* an output file exists only once complete; an interrupted run (even
  ``kill -9``) leaves only ``OUT.h5.partial/``, and ``resume=True`` continues
  from the last committed batch and ends with the same file as an
  uninterrupted run;
* ``shard=(i, N)`` processes the i-th of N contiguous blocks of regions (block
  edges fall on batch edges, so every batch is the batch a single run would
  see) and :func:`~kipoi_tanger.run.merge.merge` joins the shard files into
  exactly the single-run files (a shard's HDF5 records its run's files,
  ``shard_outputs``, relative to itself, so merge finds its TSV, VCF and
  companion files);
* an op that brings its own regions (``Op.own_regions``: variant-effect) is
  refused the dataloader options in one line;
* bad input is refused before anything is written: the outputs' paths are
  resolved once, ``--device`` is checked, and the first batch is read and
  checked against the model's schema (:mod:`~kipoi_tanger.adapter.schema_check`)
  before any output, parent directory or journal is created; a second run on
  the same output is refused while the first holds its journal's lock; a full
  disk is one line naming the file (the committed batches are kept for
  ``--resume``).

The loop knows no op by name: what to compute, which files an op may write,
whether batches can be grouped, what is recorded, all come from the op object.

Batches are loaded one ahead in a background thread when ``num_workers=0``
(``KIPOI_TANGER_PREFETCH=0`` turns that off; environment switches are read
once per run). Seeds: an op with a ``random_state`` parameter gets one drawn
once per run when none is given, recorded in the file's ``parameters`` and
reused on resume.
"""
import dataclasses
import hashlib
import json
import os
import signal
import sys
import time
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .. import __version__
from ..adapter.errors import RunError, one_line, suggest
from . import h5io
from .journal import JOURNAL_FORMAT, Journal
from .outputs import (TABLE_SUFFIXES, check_outputs, first_difference, make_parents, parse_shard, remove_dirs,
                      resolve_output, shard_range, write_error)
from .result import RunResult

__all__ = ["run", "RunOptions", "check_device", "sequence_dataset", "GROUP_REGIONS", "GROUP_BYTES", "KILL_ENV",
           "PREFETCH_ENV"]

KILL_ENV = "KIPOI_TANGER_KILL_AFTER_BATCHES"   # testing hook: SIGKILL self after k committed batches
PREFETCH_ENV = "KIPOI_TANGER_PREFETCH"         # "0": load batches in the loop's own thread
GROUP_REGIONS = 1024      # groupable ops: regions per op call and commit
GROUP_BYTES = 16 << 20    # ... and at most this many bytes of inputs
FIRST_BATCH_ATTRS = ("conversion_check",)   # measured on a run's first batch (kept for --resume)


@dataclasses.dataclass
class RunOptions:
    """How to run an op (everything that is not an op parameter).

    Attributes
    ----------
    source, dataloader, dataloader_source : str
        Kipoi model source (default ``dir``) and an optional dataloader override.
    dataloader_args : dict or None
        Dataloader keyword arguments; unknown or missing ones are errors.
    example : bool
        Use the dataloader's own ``example:`` files instead.
    batch_size : int
        Regions per dataloader batch, and per forward pass of the model.
    device, dtype
        As in every op (None = auto / the model's dtype).
    num_workers : int
        Dataloader worker processes; with 0 a background thread loads the
        next batch while the current one is computed.
    keep_metadata, keep_inputs : bool
        Also write ``metadata/...`` and ``inputs`` (and ``targets``) like ``kipoi predict -m -k``.
    resume, overwrite : bool
        Continue an interrupted run from its journal / replace existing outputs.
    shard : str or (int, int), optional
        ``"i/N"``: process only the i-th (1-based) of N contiguous blocks.
    verbose : bool
        Progress bar on stderr.
    group_regions : int
        Groupable ops (predict, marginalize with predict) call the op and commit
        to the journal once per this many regions (whole batches; at most 16 MiB
        of inputs); other ops once per batch. A kill loses at most one group.
    """
    source: str = "dir"
    dataloader: Optional[str] = None
    dataloader_source: Optional[str] = None
    dataloader_args: Optional[dict] = None
    example: bool = False
    batch_size: int = 32
    device: Optional[str] = None
    dtype: Any = None
    num_workers: int = 0
    keep_metadata: bool = False
    keep_inputs: bool = False
    resume: bool = False
    overwrite: bool = False
    shard: Union[None, str, Tuple[int, int]] = None
    verbose: bool = True
    group_regions: int = GROUP_REGIONS

    def check(self) -> "RunOptions":
        """Validate the numeric options (``batch_size`` is checked here, once)."""
        from .._base import check_batch_size
        check_batch_size(self.batch_size)
        g = self.group_regions
        if isinstance(g, bool) or not isinstance(g, int) or g < 1:
            raise RunError(f"group_regions: expected a positive integer, got {g!r}")
        w = self.num_workers
        if isinstance(w, bool) or not isinstance(w, int) or w < 0:
            raise RunError(f"--num_workers: expected a non-negative integer, got {w!r}")
        check_device(self.device)
        return self


def check_device(device) -> None:
    """Refuse, in one line, a ``--device`` torch cannot use here (None = auto passes).

    Parameters
    ----------
    device : str, torch.device or None
        ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises
    ------
    RunError
        Not a device string (``gpu0``), or a device this machine lacks
        (``cuda:7`` without CUDA or with fewer GPUs, ``mps`` off macOS).
    """
    if device is None:
        return
    import torch
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise RunError(f"--device: {device!r} is not a torch device; expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cpu":
        return
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise RunError(f"--device {device}: CUDA is not available ({why}); use --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise RunError(f"--device {device}: {n} CUDA device(s) visible (cuda:0 to cuda:{n - 1})")
        return
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise RunError(f"--device {device}: MPS (Apple GPU) is not available here; use --device cpu")
        return
    raise RunError(f"--device {device}: expected cpu, cuda, cuda:N or mps, got a {dev.type!r} device")


OPTION_NAMES = tuple(f.name for f in dataclasses.fields(RunOptions))


@dataclasses.dataclass(frozen=True)
class _Switches:
    """Environment switches, read once when a run starts."""
    kill_after: int
    prefetch: bool

    @classmethod
    def from_env(cls) -> "_Switches":
        return cls(int(os.environ.get(KILL_ENV, "0") or 0), os.environ.get(PREFETCH_ENV, "1") != "0")


def _fingerprint(d):
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def _input_files(dl_kwargs) -> dict:
    """``{argument: [size, mtime_ns]}`` of the dataloader arguments that name existing files."""
    out = {}
    for k, v in sorted((dl_kwargs or {}).items()):
        if isinstance(v, str) and v:
            try:
                st = os.stat(v)
            except (OSError, ValueError):
                continue
            if not os.path.isdir(v):
                out[k] = [int(st.st_size), int(st.st_mtime_ns)]
    return out


def _build_op(op, params):
    from ..ops import Op, build, get
    if isinstance(op, Op):
        if params:
            raise RunError(f"{op.name}: give parameters to the op object or to run(), not both "
                           f"(got {', '.join(sorted(params))})")
        return op
    cls = get(op)
    allowed = [p.name for p in cls.cli_params()]
    for k in params:
        if k not in allowed:
            raise RunError(f"run: unknown parameter {k!r}{suggest(k, allowed + list(OPTION_NAMES))}; {cls.name} "
                           f"takes {', '.join(allowed) or 'none'} besides the run options")
    return build(op, params)


def run(op, model, outputs: Union[str, Sequence[str]], params: Optional[Mapping] = None,
        options: Optional[RunOptions] = None, **kwargs) -> RunResult:
    """Run an op over a Kipoi model's regions and write ``outputs``.

    Parameters
    ----------
    op : str or Op
        A registered op name (``'predict'``, ``'deeplift-shap'``,
        ``'marginalize'``, ``'product'``...) or an op object such as
        ``Marginalize(inner=DeepLiftShap(n_shuffles=2), motif="GATA")``.
    model : str or KipoiTarget
        Model name/dir (loaded with :func:`kipoi_tanger.adapter.load`) or an
        already loaded target.
    outputs : str or list of str
        ``.h5``/``.hdf5`` files (any op) and ``.tsv`` files (ops that write
        tables: predict, and marginalize/product running predict).
    params : dict, optional
        Op parameters by name (see ``kipoi_tanger.ops.get(op).cli_params()``),
        flat as on the command line: e.g. ``{'motif': 'GATA', 'inner_op':
        'deeplift-shap', 'n_shuffles': 2}``.
    options : RunOptions, optional
        Run options (source, dataloader args, batch size, device, outputs
        handling...); see :class:`RunOptions`.
    **kwargs
        Run options and op parameters by keyword (each name is one or the other).

    Returns
    -------
    RunResult
    """
    op_params = dict(params or {})
    opt_kwargs = dataclasses.asdict(options) if options is not None else {}
    for k, v in kwargs.items():
        if k in OPTION_NAMES:
            opt_kwargs[k] = v
        elif k in op_params:
            raise RunError(f"run: {k!r} is given twice (in params and as a keyword)")
        else:
            op_params[k] = v
    if isinstance(op, str):
        from ..ops import get
        get(op)          # an unknown op is the first error
    opts = RunOptions(**opt_kwargs).check()
    switches = _Switches.from_env()
    op = _build_op(op, op_params)
    if op.own_regions:       # an op with its own regions (variant-effect) never reads the dataloader
        from ..ops.base import DATALOADER_OPTIONS, OpError
        given = [k for k in DATALOADER_OPTIONS.values() if getattr(opts, k)]
        if given:
            raise OpError(op.regions_refusal(given))
    # the op may add companion files (variant-effect: OUT.skipped.tsv), handled like the outputs
    outputs = op.output_files(check_outputs(outputs, op.writes_tables, op.extra_outputs))
    shard = parse_shard(opts.shard)

    # every output's path is resolved once, before any work (`out/sub/../x.h5` with out/sub missing)
    paths = [resolve_output(o) for o in outputs]
    journal = Journal(paths[0] + ".partial", output=outputs[0])
    try:
        return _run(op, model, outputs, paths, journal, opts, switches, shard)
    finally:
        journal.unlock()


def _run(op, model, outputs, paths, journal, opts, switches, shard):
    from ..adapter.target import KipoiTarget, load

    # refuse before loading anything heavy
    existing = [o for o, p in zip(outputs, paths) if os.path.exists(p)]
    if journal.exists():
        journal.lock()          # a running run holds it: one line, whatever the flags
        if not opts.resume and not opts.overwrite:
            raise RunError(f"{journal.path} is left by an interrupted run: pass --resume to continue it or "
                           "--overwrite to start over")
    if existing and not opts.overwrite and not (opts.resume and journal.exists()):
        raise RunError(f"{existing[0]} exists; pass --overwrite to replace it")

    tgt = model if isinstance(model, KipoiTarget) else load(model, source=opts.source, dataloader=opts.dataloader,
                                                           dataloader_source=opts.dataloader_source)
    # the run's dataloader arguments first: they may set the alphabet, layout or length the op checks against
    dl_kwargs = op.dataloader_args(tgt, opts.dataloader_args, opts.example)
    op.resolve(tgt)
    params = {"batch_size": opts.batch_size, "dtype": None if opts.dtype is None else str(opts.dtype),
              "keep_metadata": bool(opts.keep_metadata), "keep_inputs": bool(opts.keep_inputs)}
    params.update(op.parameters())

    identity = {"op": op.name, "model": tgt.name, "source": tgt.source, "dataloader": tgt.dataloader_name,
                "dataloader_args": dl_kwargs, "parameters": params, "shard": shard,
                "outputs": [os.path.basename(o) for o in outputs], "version": __version__,
                # the input files' size and mtime: --resume refuses a BED or FASTA changed since the kill
                "dataloader_files": _input_files(dl_kwargs)}
    fp = _fingerprint(identity)

    seeded = op.uses_random_state
    resuming = opts.resume and journal.exists()
    if resuming:
        meta = journal.load()
        if meta.get("fingerprint") != fp:
            if journal.format < JOURNAL_FORMAT:
                raise RunError(f"--resume: {journal.path} was journaled by an older kipoi-tanger (journal format "
                               f"{journal.format}) with settings this version does not match; rerun with "
                               "--overwrite")
            diff = first_difference(meta.get("identity", {}), json.loads(json.dumps(identity, default=str)))
            if diff.startswith("dataloader_files."):
                key = diff.split(":")[0][len("dataloader_files."):]
                raise RunError(f"--resume: {key} {dl_kwargs.get(key)} changed (size or modification time) since the "
                               f"interrupted run in {journal.path} read it; its committed batches came from the old "
                               "file: pass --overwrite to start over")
            raise RunError(f"--resume: the interrupted run in {journal.path} used different settings ({diff}); "
                           "repeat its exact command, or pass --overwrite to start over")
        if seeded:
            params["random_state"] = meta.get("random_state", params["random_state"])
    elif seeded and params["random_state"] is None:
        params["random_state"] = int(np.random.randint(0, 2**31 - 1))
    if seeded:
        op.set_random_state(params["random_state"])

    # the regions, and their first batch checked against the model, before any output is created
    batches = _Batches(tgt, op, dl_kwargs, shard, opts, switches, journal.units if resuming else 0)
    try:
        if not resuming:
            if opts.overwrite and journal.exists():
                journal.remove()
            created = make_parents(paths)    # missing parent dirs, like most tools; removed if nothing is left
            journal.create({"fingerprint": fp, "identity": json.loads(json.dumps(identity, default=str)),
                            "random_state": params.get("random_state")})
        else:
            created = make_parents(paths)
        try:
            return _execute(tgt, op, params, outputs, paths, journal, batches, shard, opts, switches, identity)
        except BaseException:
            if not journal.batches:
                journal.remove()    # nothing to resume: do not leave a stale journal behind
                remove_dirs(created)
            raise
    finally:
        batches.close()


class _Batches:
    """The run's batch source and its batch iterator, with the first batch read and checked.

    The first batch is read when the run starts, before any output or journal
    exists: it is checked against the model's schema (every input's shape,
    ``None`` a wildcard; the sequence against the layout and alphabet), so a
    dataloader that does not fit the model is one error line and nothing is
    written. An empty dataloader is refused there too.
    """

    def __init__(self, tgt, op, dl_kwargs, shard, opts, switches, resumed):
        from ..adapter.dataloading import prefetch
        from ..adapter.schema_check import check_batch
        self.source = source = op.batch_source(tgt, dl_kwargs)
        self.units_total = source.units_total
        self.start, self.stop = 0, self.units_total
        if shard is not None:
            reason = source.no_random_access()
            if reason:
                raise RunError(f"--shard: {reason}")
            self.start, self.stop = shard_range(shard, self.units_total, source.shard_step(opts.batch_size))
        if self.units_total is not None and self.units_total == 0:
            raise RunError("dataloader: no regions to process (the dataloader is empty)")
        self.resumed = resumed
        self.it, self._started = None, False
        self._source_it = it = source.batches(opts.batch_size, opts.num_workers, self.start + resumed, self.stop)
        try:
            first = next(it, None)
            if first is None and shard is None and resumed == 0:
                raise RunError("dataloader: no regions to process (the dataloader yielded nothing)")
            if first is not None:
                check_batch(tgt, source.items(first[0]))
        except BaseException:
            self.close()
            raise
        self.it = self._chain(first, it)
        if opts.num_workers == 0 and switches.prefetch:
            self.it = prefetch(self.it)

    def _chain(self, first, it):
        self._started = True
        if first is not None:
            yield first
        yield from it

    def close(self):
        """Stop the iteration (the loading thread stops at once); safe to call twice."""
        if self.it is not None:
            self.it.close()
        if not self._started and hasattr(self._source_it, "close"):
            self._source_it.close()     # never handed to the loop (or its thread): close it here


class _Progress:
    """The run's progress bar, advanced as results are produced.

    It appears once the first commit succeeded (bad input found in the first
    batch then prints one clean error line); what was done before is added
    then, with the bar's clock set back to the start of the loop, so the rate
    counts the first batch's real time.
    """

    def __init__(self, enabled, **tqdm_kwargs):
        self.enabled, self.kw = enabled, tqdm_kwargs
        self.bar, self.pending, self.t0 = None, 0, time.time()

    def update(self, n):
        if n <= 0 or not self.enabled:
            return
        if self.bar is None:
            self.pending += n
        else:
            self.bar.update(n)

    def show(self):
        if self.bar is not None or not self.enabled:
            return
        from tqdm.auto import tqdm
        self.bar = tqdm(**self.kw)
        self.bar.start_t = self.bar.last_print_t = self.t0
        n, self.pending = self.pending, 0
        self.update(n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _execute(tgt, op, params, outputs, paths, journal, batches, shard, opts, switches, identity):
    from ..adapter.dataloading import grouped, n_rows
    from ..ops import RunContext
    batch_size = opts.batch_size
    source, it = batches.source, batches.it
    units_total, start, stop, resumed = batches.units_total, batches.start, batches.stop, batches.resumed
    ctx = RunContext(tgt, batch_size, device=opts.device, dtype=opts.dtype)
    op.bind(ctx)
    total = None if stop is None else stop - start
    committed_here = 0
    progress = _Progress(opts.verbose, total=total, initial=resumed, unit=source.unit, desc=op.name,
                         file=sys.stderr, dynamic_ncols=True)
    # groupable ops run several dataloader batches per op call and commit: fewer
    # per-call and per-commit costs. Only where every batch but the last has
    # batch_size rows, so the forward passes see the rows batch-by-batch calls would.
    groupable = source.fixed_batches and op.groupable
    limit = max(batch_size, (opts.group_regions // batch_size) * batch_size) if groupable else 0
    # within a group, the bar follows the model's forward batches (marginalize
    # runs every region twice: before and after inserting the motif)
    passes = op.forward_passes
    group = {"rows": 0, "forwarded": 0, "shown": 0}

    def forwarded(n):
        group["forwarded"] += n
        done = min(group["rows"], group["forwarded"] // passes)
        progress.update(done - group["shown"])
        group["shown"] = done

    if groupable:
        ctx.on_forward = forwarded
    groups = grouped(it, limit, GROUP_BYTES)
    try:
        for batch, units in groups:
            rows = n_rows(batch)
            group.update(rows=rows, forwarded=0, shown=0)
            items = source.items(batch)
            try:
                flat = op(items)
            except RuntimeError as e:
                if committed_here:
                    raise
                # the model itself refuses what the dataloader gives (the schema allowed it)
                raise RunError(f"model {tgt.name}: {op.name} failed on the first batch ({type(e).__name__}: "
                               f"{one_line(e)}); the dataloader gave {_shapes(tgt, items)}") from e
            if opts.keep_metadata and "metadata" in batch:
                flat.update(h5io.flatten({"metadata": batch["metadata"]}))
            if opts.keep_inputs:
                flat.update(h5io.flatten({"inputs": batch["inputs"]}))
                if "targets" in batch and batch["targets"] is not None:
                    flat.update(h5io.flatten({"targets": batch["targets"]}))
            _check_rows(flat, rows, journal)
            journal.commit(flat, units, rows)
            committed_here += 1
            if len(journal.batches) == 1:
                # what the run measured on its first batch (a converted model's conversion check) is
                # kept for --resume, so a resumed run writes the attributes an uninterrupted one would
                first = {k: v for k, v in tgt.file_attrs(op).items() if k in FIRST_BATCH_ATTRS}
                if first:
                    journal.update_meta(first_batch_attrs=first)
            progress.update(units - group["shown"])
            progress.show()
            if switches.kill_after and committed_here >= switches.kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
    finally:
        progress.close()
        groups.close()      # stops the loading thread at once when the loop ends early
        batches.close()

    rows_total = journal.rows
    if rows_total == 0 and shard is None:
        raise RunError("dataloader: no regions to process (the dataloader yielded nothing)")
    attrs = _attrs(tgt, op, params, identity, rows_total, journal.specs())
    attrs.update((journal.meta or {}).get("first_batch_attrs") or {})
    if shard is not None:
        attrs["shard"] = f"{shard[0]}/{shard[1]}"
        attrs["shard_range"] = [start, stop]
        attrs["units_total"] = units_total
    _assemble(journal, outputs, paths, attrs, rows_total, op.extra_outputs)
    journal.remove()
    return RunResult(list(outputs), rows_total, len(journal.batches), resumed)


def _shapes(tgt, items) -> str:
    """``seq (4, 300), alpha (1,)``: one example's shape of every model input of a batch."""
    from ..adapter.layout import format_shape
    spec = tgt.spec
    parts = []
    for name, key in zip(spec.input_names, spec.input_keys):
        shape = getattr(items.get(key), "shape", None)
        if shape is not None:
            parts.append(f"{name} {format_shape(tuple(shape[1:]))}")
    return ", ".join(parts) or "no inputs"


def _check_rows(flat, rows, journal):
    specs = journal.specs()
    for k, v in flat.items():
        if len(v) != rows:
            raise RunError(f"{k}: the op returned {len(v)} rows for a batch of {rows} regions")
        if specs:
            if k not in specs:
                raise RunError(f"{k}: appeared in a later batch only; every batch must give the same outputs")
            if h5io.row_spec(v)[1] != specs[k][1]:
                raise RunError(f"{k}: rows shaped {h5io.row_spec(v)[1]} in this batch but {specs[k][1]} before; "
                               "every batch must give the same per-region shape")
    if specs and set(specs) != set(flat):
        missing = sorted(set(specs) - set(flat))
        raise RunError(f"{missing[0]}: missing from a later batch; every batch must give the same outputs")


def sequence_dataset(spec, names) -> str:
    """The dataset key of the sequence input among the file's ``names`` ('' when not written).

    ``inputs`` for a single-array model (or its only ``inputs/...`` dataset, when
    the dataloader wraps it in a list or dict), ``inputs/<i>`` for list inputs,
    ``inputs/<name>`` for dict inputs.
    """
    if spec.sequence_input is None:
        return ""
    if spec.call == "array":
        if "inputs" in names:
            return "inputs"
        found = [n for n in names if n.startswith("inputs/")]
        return found[0] if len(found) == 1 else ""
    key = f"inputs/{spec.sequence_input}"
    return key if key in names else ""


def _attrs(tgt, op, params, identity, n_rows, specs):
    spec = tgt.spec
    hidden = {k for o in op.walk() for k in o.identity_only}
    attrs = {
        "kipoi_tanger_version": __version__,
        "op": op.name,
        "model": tgt.name,
        "source": tgt.source,
        "dataloader": tgt.dataloader_name or "",
        "dataloader_args": identity["dataloader_args"],
        "parameters": {k: v for k, v in params.items() if k not in hidden},
        "n_regions": int(n_rows),
        "sequence_input": spec.sequence_name or "",
        "sequence_dataset": sequence_dataset(spec, specs),
        "layout": "" if spec.layout is None else str(spec.layout),
        "alphabet": list(spec.alphabet),
        "output_names": list(spec.target_names),
    }
    # framework, model_alphabet (the model's one-hot order; datasets follow `alphabet`) and, after a graph
    # op on a converted Keras model, its first-batch conversion check
    attrs.update(tgt.file_attrs(op))
    labels = _column_labels(tgt)
    if labels:
        attrs["column_labels"] = labels
    defaults = _dataloader_defaults(tgt)
    if defaults:
        attrs["dataloader_defaults"] = defaults
    bases = _dataloader_classes(tgt)
    if bases:
        attrs["dataloader_classes"] = bases
    if params.get("output") is not None or op.explains:
        out = params.get("output")
        attrs["explained_output"] = "" if out is None else str(out)
        labels = spec.column_labels if out == spec.output else []
        attrs["target"] = int(params.get("target", 0))
        attrs["reduce"] = spec.reduce and {"op": spec.reduce["op"], "axis": list(spec.reduce["axis"])}
        if labels and 0 <= attrs["target"] < len(labels):
            attrs["target_label"] = labels[attrs["target"]]
    return attrs


def _column_labels(tgt) -> dict:
    """``{output name: labels}`` of the model outputs whose schema names their columns (Kipoi's
    ``targets.column_labels``: a list, or a labels file Kipoi has read)."""
    from ..adapter.section import schema_entries
    try:
        _, _, names, schemas = schema_entries(getattr(tgt.kmodel.schema, "targets", None), unnamed="preds")
    except Exception:        # a target without a Kipoi schema
        return {}
    out = {}
    for name, schema in zip(names, schemas):
        labels = [str(x) for x in (getattr(schema, "column_labels", None) or [])]
        if labels:
            out[str(name)] = labels
    return out


def _dataloader_defaults(tgt) -> dict:
    """The dataloader's keyword defaults as the run used them (after the model's yaml overrides, e.g.
    ``use_strand``), JSON-safe scalars only: with ``dataloader_args`` they say how regions were read."""
    import inspect
    try:
        params = inspect.signature(tgt.Dl).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty
            and (p.default is None or isinstance(p.default, (bool, int, float, str)))}


def _dataloader_classes(tgt) -> list:
    """The dataloader's class and its base classes by name: a model's subclass of a shipped loader
    (basset_like's BassetLikeDl of IntervalOneHot) reads regions as that loader does."""
    import inspect
    try:
        return [c.__name__ for c in inspect.getmro(tgt.Dl) if c is not object]
    except (AttributeError, TypeError):
        return []


def _assemble(journal, outputs, paths, attrs, n_rows, extra_writers):
    specs = journal.specs()
    jdir = os.path.dirname(journal.path)
    tmp_paths = []
    done = False
    try:
        for i, (out, path) in enumerate(zip(outputs, paths)):
            ext = os.path.splitext(path)[1]
            d = os.path.dirname(path)
            # a rename is atomic within one filesystem only: build each file in its own dir
            tmp = os.path.join(journal.path, f"assembled-{i}{ext}") if d == jdir else \
                os.path.join(d, f".{os.path.basename(path)}.assembling-{os.getpid()}{ext}")   # runs sharing an output
            tmp_paths.append((tmp, path))
            low = path.lower()
            custom = next((w for suffix, w in extra_writers.items() if low.endswith(suffix)), None)
            try:
                if custom is not None:
                    custom(tmp, journal.read_batches(), attrs)
                elif low.endswith(TABLE_SUFFIXES):
                    h5io.write_tsv(tmp, journal.read_batches(), attrs.get("output_names") or (),
                                   attrs.get("column_labels"))
                else:
                    h5_attrs = attrs
                    if "shard" in attrs:    # a shard's HDF5 names its run's files, for `merge` to find them
                        h5_attrs = dict(attrs, shard_outputs=[os.path.relpath(p, d) for p in paths])
                    h5io.write_h5(tmp, specs, n_rows, h5_attrs, journal.read_batches())
            except (OSError, RuntimeError) as e:
                err = write_error(e, out, "rerun the same command with --resume (every batch is kept)")
                if err is not None:
                    raise err from None
                raise
        for tmp, path in tmp_paths:
            os.replace(tmp, path)
        done = True
    finally:
        if not done:        # a half-written file takes space and is no use: the journal rebuilds it
            for tmp, _ in tmp_paths:
                try:
                    os.remove(tmp)
                except OSError:
                    pass
