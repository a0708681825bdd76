"""Stream a Kipoi dataloader through a kipoi_tanger op into HDF5/TSV files.

:func:`run` loads the model (:mod:`kipoi_tanger.adapter`), iterates the
dataloader batch by batch and hands every batch to the op; each batch's
results are committed to a *journal* next to the first output
(``OUT.h5.partial/``, one ``.npz`` per batch, each written to a temporary name
and renamed) and the outputs are assembled from the journal at the end, then
renamed into place. Hence:

* memory is bounded by one batch (plus one HDF5 chunk), whatever the number
  of regions;
* an output file exists only once complete; an interrupted run (even
  ``kill -9``) leaves only ``OUT.h5.partial/``, and ``resume=True`` continues
  from the last committed batch and ends with the same file as an
  uninterrupted run;
* ``shard=(i, N)`` processes the i-th of N contiguous blocks of regions (block
  edges fall on batch edges, so every batch is the batch a single run would
  see) and :func:`merge` joins the shard files into exactly the single-run file.

Batches are loaded one ahead in a background thread when ``num_workers=0``
(``KIPOI_TANGER_PREFETCH=0`` turns that off).

Seeds: deeplift-shap uses tangermeme's contract ("reference k of every example
is drawn with seed ``random_state + k``"), so references depend on the region
only, never on its batch or shard. Without ``random_state`` a seed is drawn
once per run, recorded in the file's ``parameters`` and reused on resume.
"""
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import sys
import threading
import time
from typing import NamedTuple

import numpy as np

from . import __version__
from . import h5io
from .adapter import OPS, _one_line

TABLE_SUFFIXES = (".tsv",)
H5_SUFFIXES = (".h5", ".hdf5")
SHARD_ATTRS = ("shard", "shard_range", "units_total")
KILL_ENV = "KIPOI_TANGER_KILL_AFTER_BATCHES"   # testing hook: SIGKILL self after k committed batches
GROUP_REGIONS = 1024      # predict-like ops: regions per op call and commit
GROUP_BYTES = 16 << 20    # ... and at most this many bytes of inputs


class RunResult(NamedTuple):
    """What :func:`run` produced."""
    outputs: list
    n_regions: int
    n_batches: int
    resumed_units: int


class RunError(ValueError):
    """A run cannot start or continue as asked (one line)."""


# ---------------------------------------------------------------------------
# arguments


def parse_shard(shard):
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


def _check_outputs(outputs, table_ok):
    if not outputs:
        raise RunError("-o/--output: give at least one output file (.h5, .hdf5 or .tsv)")
    if isinstance(outputs, str):
        outputs = [outputs]
    seen = set()
    for o in outputs:
        low = o.lower()
        if not low.endswith(H5_SUFFIXES + TABLE_SUFFIXES):
            raise RunError(f"-o/--output: {o}: unknown file type; expected .h5, .hdf5 or .tsv")
        if low.endswith(TABLE_SUFFIXES) and not table_ok:
            raise RunError(f"-o/--output: {o}: a .tsv holds tables (predictions); this op writes arrays, use .h5")
        _check_parent(o)
        if os.path.abspath(o) in seen:
            raise RunError(f"-o/--output: {o} is given twice")
        seen.add(os.path.abspath(o))
    return list(outputs)


def _check_parent(path):
    """Refuse an output whose missing parent dirs cannot be created (a file in the way)."""
    d = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(d):
        d = os.path.dirname(d)
    if not os.path.isdir(d):
        raise RunError(f"-o/--output: {path}: {d} is not a directory")


def _make_parents(paths):
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
                _remove_dirs(created)
                raise RunError(f"-o/--output: {p}: cannot create directory {m} ({e.strerror})") from None
            created.append(m)
    return created


def _remove_dirs(created):
    """Remove the dirs :func:`_make_parents` created if they are still empty (a run that left nothing)."""
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            pass


def _load_npy(spec, i):
    name, path = None, spec
    if isinstance(spec, str) and "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
    if isinstance(path, np.ndarray):
        return name, path
    if not os.path.exists(path):
        raise RunError(f"--args: {path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise RunError(f"--args: {path}: not a readable .npy array ({_one_line(e)})") from None
    if arr.ndim == 0 or len(arr) == 0:
        raise RunError(f"--args: {path}: needs at least one row (shape {arr.shape})")
    return name, arr


# ---------------------------------------------------------------------------
# journal


class Journal:
    """Committed batches of an unfinished run, in ``<first output>.partial/``.

    One file per commit, ``b<k>_u<units>_r<rows>.npk``: a small JSON header
    naming the arrays, then each array in ``.npy`` format. Files are written
    under a temporary name and renamed, so a kill leaves whole commits only.
    """

    MAGIC = b"KTJ1"

    def __init__(self, path):
        self.path = path
        self.batches = []          # (file, units, rows)
        self.meta = None
        self._specs = None

    @property
    def units(self):
        return sum(b[1] for b in self.batches)

    @property
    def rows(self):
        return sum(b[2] for b in self.batches)

    def exists(self):
        return os.path.isdir(self.path)

    def create(self, meta):
        os.makedirs(self.path)
        self.meta = meta
        self._write_json("run.json", meta)

    def _write_json(self, name, obj):
        tmp = os.path.join(self.path, f".tmp-{name}")
        with open(tmp, "w") as fh:
            json.dump(obj, fh, sort_keys=True, indent=1)
        os.replace(tmp, os.path.join(self.path, name))

    def load(self):
        try:
            with open(os.path.join(self.path, "run.json")) as fh:
                self.meta = json.load(fh)
        except (OSError, ValueError):
            raise RunError(f"--resume: {self.path} is not a kipoi-tanger run journal (no readable run.json); "
                           "remove it or pass --overwrite") from None
        files = []
        for f in os.listdir(self.path):
            if f.startswith(".tmp-"):
                os.remove(os.path.join(self.path, f))   # a write the kill interrupted
                continue
            m = re.fullmatch(r"b(\d{8})_u(\d+)_r(\d+)\.npk", f)
            if m:
                files.append((int(m.group(1)), f, int(m.group(2)), int(m.group(3))))
        files.sort()
        if [k for k, *_ in files] != list(range(len(files))):
            raise RunError(f"--resume: {self.path} misses committed batches; remove it or pass --overwrite")
        self.batches = [(f, u, r) for _, f, u, r in files]
        return self.meta

    def commit(self, flat, units, rows):
        k = len(self.batches)
        name = f"b{k:08d}_u{units}_r{rows}.npk"
        tmp = os.path.join(self.path, f".tmp-{name}")
        keys = list(flat)
        header = json.dumps(keys).encode()
        with open(tmp, "wb") as fh:
            fh.write(self.MAGIC + len(header).to_bytes(4, "little") + header)
            for k_ in keys:
                np.lib.format.write_array(fh, np.ascontiguousarray(flat[k_]), allow_pickle=False)
        os.replace(tmp, os.path.join(self.path, name))
        self.batches.append((name, units, rows))
        if self._specs is None and rows:
            self._specs = {k_: h5io.row_spec(v) for k_, v in flat.items()}

    def _read(self, fname):
        with open(os.path.join(self.path, fname), "rb") as fh:
            if fh.read(4) != self.MAGIC:
                raise RunError(f"--resume: {fname} in {self.path} is not a journal file; pass --overwrite")
            n = int.from_bytes(fh.read(4), "little")
            keys = json.loads(fh.read(n))
            return {k: np.lib.format.read_array(fh, allow_pickle=False) for k in keys}

    def specs(self):
        if self._specs is None:
            for f, _, rows in self.batches:
                if rows:
                    self._specs = {k: h5io.row_spec(v) for k, v in self._read(f).items()}
                    break
        return self._specs or {}

    def read_batches(self):
        for f, _, rows in self.batches:
            if rows:
                yield self._read(f)

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


# ---------------------------------------------------------------------------
# dataloader iteration


def _slice(tree, s, e):
    if isinstance(tree, dict):
        return {k: _slice(v, s, e) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_slice(v, s, e) for v in tree]
    if isinstance(tree, tuple):
        return tuple(_slice(v, s, e) for v in tree)
    return tree[s:e]


def _n_rows(batch):
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


def _iteration_mode(dl):
    import kipoi.data as kd
    if isinstance(dl, (kd.Dataset, kd.PreloadedDataset)):
        return "samples"
    if isinstance(dl, kd.BatchDataset):
        return "batches"
    return "stream"


def _batches(dl, mode, batch_size, num_workers, start, stop):
    """Yield ``(batch, units)`` for units ``start..stop`` (stop None = to the end)."""
    from kipoi_utils.data_utils import numpy_collate, numpy_collate_concat
    if mode in ("samples", "batches"):
        import torch.utils.data as tud
        indices = range(start, stop)
        if mode == "samples":
            loader = tud.DataLoader(_Subset(dl, indices), batch_size=batch_size, shuffle=False,
                                    collate_fn=numpy_collate, num_workers=num_workers)
            k = start
            for b in loader:
                n = _n_rows(b)
                k += n
                yield b, n
        else:
            loader = tud.DataLoader(_Subset(dl, indices), batch_size=1, shuffle=False,
                                    collate_fn=numpy_collate_concat, num_workers=num_workers)
            for b in loader:
                yield b, 1
        return
    # stream: no random access; skip rows already done
    skipped = 0
    kwargs = {"batch_size": batch_size}
    if num_workers:
        kwargs["num_workers"] = num_workers
    for b in dl.batch_iter(**kwargs):
        n = _n_rows(b)
        if skipped + n <= start:
            skipped += n
            continue
        if skipped < start:
            b = _slice(b, start - skipped, n)
            n -= start - skipped
            skipped = start
        yield b, n


def _prefetch(iterator, depth=2):
    """Run ``iterator`` in a background thread so loading overlaps compute."""
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


# ---------------------------------------------------------------------------
# ops on one batch


def _np(t):
    import torch
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def _name_outputs(prefix, y, names=None):
    """A tensor → ``{prefix: arr}``; a list → ``{prefix/<name or i>: arr}``."""
    if isinstance(y, (list, tuple)):
        out = {}
        for i, t in enumerate(y):
            key = names[i] if names and i < len(names) and names[i] is not None else str(i)
            out[f"{prefix}/{key}"] = _np(t)
        return out
    return {prefix: _np(y)}


class _OpRunner:
    """Holds the wrapped modules and parameters; computes one batch at a time."""

    def __init__(self, target, op, params, device, dtype, batch_size, product_args):
        self.target, self.op, self.p = target, op, params
        self.device, self.dtype, self.batch_size = device, dtype, batch_size
        self.product_args = product_args      # [(key, tensor)]
        self.on_forward = None                # called with the rows of every predict-like forward pass
        self._wrappers = {}
        spec = target.spec
        self.pred_names = None
        if spec.target_call == "array" or not spec.target_keys:
            self.pred_names = None
        elif spec.target_call == "dict":
            self.pred_names = [str(k) for k in spec.target_keys]

    def _common(self):
        kw = {"batch_size": self.batch_size, "device": self.device}
        if self.dtype is not None:
            kw["dtype"] = self.dtype
        return kw

    def _dls_kwargs(self):
        p = self.p
        return {"target": p["target"], "n_shuffles": p["n_shuffles"], "hypothetical": p["hypothetical"],
                "random_state": p["random_state"], "warning_threshold": p["warning_threshold"]}

    def _wrap(self, key, **kw):
        if key not in self._wrappers:
            w = self.target.wrap(**kw)
            if key in ("predict", "canonical"):    # predict-like only: explain wrappers get traced
                w.register_forward_hook(self._forwarded)
            self._wrappers[key] = w
        return self._wrappers[key]

    def _forwarded(self, module, inputs, output):
        if self.on_forward is not None and inputs:
            self.on_forward(int(inputs[0].shape[0]))

    def __call__(self, items):
        import torch
        t, spec, op = self.target, self.target.spec, self.op
        seq = spec.sequence_input
        if op == "predict":
            x_key = seq if seq is not None else spec.input_keys[0]
            arg_keys = [k for k in spec.input_keys if k != x_key]
            X = torch.from_numpy(np.ascontiguousarray(items[x_key]))
            args = [torch.from_numpy(np.ascontiguousarray(items[k])) for k in arg_keys]
            w = self._wrap("predict", canonical=False, arg_keys=arg_keys, x_dtype=X.dtype,
                           arg_dtypes=[a.dtype for a in args])
            from .predict import predict
            y = predict(w, X, args=args or None, **self._common())
            return _name_outputs("preds", y, self.pred_names)

        X = t.canonical(items[seq])
        other = [k for k in spec.input_keys if k != seq]
        if op == "deeplift-shap":
            args = [torch.from_numpy(np.ascontiguousarray(items[k])) for k in other]
            w = self._wrap("explain", canonical=True, arg_keys=other, select=True, output=self.p["output"],
                           arg_dtypes=[a.dtype for a in args])
            from .deep_lift_shap import deep_lift_shap
            res = deep_lift_shap(w, X, args=args or None, return_references=True, verbose=False,
                                 **self._dls_kwargs(), **self._common())
            attr, refs = res[0], res[1]
            out = {"attributions": _np(attr)}
            if self.p["return_references"]:
                out["references"] = _np(refs).astype(np.int8)
            out["convergence_deltas"] = self._deltas(w, X, args, attr, refs)
            return out

        if op == "marginalize":
            from .marginalize import marginalize
            args = [torch.from_numpy(np.ascontiguousarray(items[k])) for k in other]
            inner = self.p["inner_op"]
            if inner == "deeplift-shap":
                from .deep_lift_shap import deep_lift_shap
                w = self._wrap("explain", canonical=True, arg_keys=other, select=True, output=self.p["output"],
                               arg_dtypes=[a.dtype for a in args])
                kw = dict(self._dls_kwargs(), **self._common())
                res = marginalize(w, X, self.p["motif"], start=self.p["start"], alphabet=list(spec.alphabet),
                                  func=deep_lift_shap, args=args or None, **kw)
            else:
                from .predict import predict
                w = self._wrap("canonical", canonical=True, arg_keys=other, arg_dtypes=[a.dtype for a in args])
                res = marginalize(w, X, self.p["motif"], start=self.p["start"], alphabet=list(spec.alphabet),
                                  func=predict, args=args or None, **self._common())
            before, after = res[0], res[1]
            names = self.pred_names if inner == "predict" else None
            out = _name_outputs("y_before", before, names)
            out.update(_name_outputs("y_after", after, names))
            return out

        if op == "product":
            from .product import apply_pairwise, apply_product
            apply = apply_pairwise if self.p["pairwise"] else apply_product
            arg_keys = [k for k, _ in self.product_args]
            pargs = [a for _, a in self.product_args]
            inner = self.p["inner_op"]
            kwords = tuple(k for k in arg_keys if isinstance(k, str) and spec.call != "dict"
                           and k in self.p["keyword_args"])
            extra = {} if self.dtype is None else {"dtype": self.dtype}
            if inner == "predict":
                from .predict import predict
                x_key = seq if seq is not None else spec.input_keys[0]
                Xr = torch.from_numpy(np.ascontiguousarray(items[x_key]))
                w = self._wrap("product-predict", canonical=False, arg_keys=arg_keys, x_dtype=Xr.dtype,
                               arg_dtypes=[a.dtype for a in pargs], keyword_extras=kwords)
                y = apply(predict, w, Xr, pargs, batch_size=self.batch_size, device=self.device,
                          additional_func_kwargs=extra, verbose=False)
                return _name_outputs("preds", y, self.pred_names)
            if inner == "deeplift-shap":
                from .deep_lift_shap import deep_lift_shap
                w = self._wrap("product-explain", canonical=True, arg_keys=arg_keys, select=True,
                               output=self.p["output"], arg_dtypes=[a.dtype for a in pargs], keyword_extras=kwords)
                y = apply(deep_lift_shap, w, X, pargs, batch_size=self.batch_size, device=self.device,
                          additional_func_kwargs=dict(extra, **self._dls_kwargs()), verbose=False)
                return {"attributions": _np(y)}
            from .marginalize import marginalize
            mk = {"motif": self.p["motif"], "start": self.p["start"], "alphabet": list(spec.alphabet)}
            if self.p["marginalize_op"] == "deeplift-shap":
                from .deep_lift_shap import deep_lift_shap
                w = self._wrap("product-explain", canonical=True, arg_keys=arg_keys, select=True,
                               output=self.p["output"], arg_dtypes=[a.dtype for a in pargs], keyword_extras=kwords)
                afk = dict(extra, func=deep_lift_shap, **self._dls_kwargs())
                names = None
            else:
                from .predict import predict
                w = self._wrap("product-canonical", canonical=True, arg_keys=arg_keys,
                               arg_dtypes=[a.dtype for a in pargs], keyword_extras=kwords)
                afk = dict(extra, func=predict)
                names = self.pred_names
            before, after = apply(marginalize, w, X, pargs, batch_size=self.batch_size, device=self.device,
                                  additional_func_kwargs=afk, verbose=False, **mk)
            out = _name_outputs("y_before", before, names)
            out.update(_name_outputs("y_after", after, names))
            return out
        raise RunError(f"unknown op {op!r}")

    def _deltas(self, w, X, args, attr, refs):
        """Per-region completeness gap: sum(attr) - (f(x) - mean_k f(ref_k)) for the target."""
        import torch
        from .predict import predict
        B, K = refs.shape[0], refs.shape[1]
        Xall = torch.cat([X.to(refs.dtype), refs.reshape(B * K, *refs.shape[2:])])
        aall = [torch.cat([a, a.repeat_interleave(K, dim=0)]) for a in args]
        y = predict(w, Xall, args=aall or None, **self._common()).float()
        y = y.reshape(y.shape[0], -1)[:, self.p["target"]]
        fx, fr = y[:B], y[B:].reshape(B, K).mean(dim=1)
        obs = attr * X if self.p["hypothetical"] else attr
        return _np(obs.float().sum(dim=(1, 2)) - (fx - fr))


# ---------------------------------------------------------------------------
# run


def _resolve_params(target, op, p):
    """Validate op parameters against the model; return the canonical parameter dict."""
    spec = target.spec
    inner = p.get("inner_op") or "predict"
    params = {"batch_size": p["batch_size"], "dtype": None if p["dtype"] is None else str(p["dtype"]),
              "keep_metadata": bool(p["keep_metadata"]), "keep_inputs": bool(p["keep_inputs"])}
    explain = op == "deeplift-shap" or (op in ("marginalize", "product") and inner == "deeplift-shap") or \
        (op == "product" and inner == "marginalize" and p.get("marginalize_op") == "deeplift-shap")
    if op == "marginalize" and inner not in ("predict", "deeplift-shap"):
        raise RunError(f"--op: marginalize runs predict or deeplift-shap, got {inner!r}")
    if op == "product" and inner not in ("predict", "deeplift-shap", "marginalize"):
        raise RunError(f"--op: product runs predict, deeplift-shap or marginalize, got {inner!r}")
    target.require(op, explain=explain, output=p.get("output"))
    if op in ("marginalize", "product") and inner != "predict":
        target.require("deeplift-shap" if inner == "deeplift-shap" else inner, explain=explain,
                       output=p.get("output"))
    if explain:
        out = target.resolve_output(p.get("output"))
        params["output"] = out
        params["target"] = target.resolve_target(p.get("target"), p.get("output"))
        n = p.get("n_shuffles", 20)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise RunError(f"--n_shuffles: expected a positive integer, got {n!r}")
        params["n_shuffles"] = n
        rs = p.get("random_state")
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, int) or rs < 0):
            raise RunError(f"--random_state: expected a non-negative integer, got {rs!r}")
        params["random_state"] = rs
        params["hypothetical"] = bool(p.get("hypothetical"))
        params["return_references"] = bool(p.get("return_references")) and op == "deeplift-shap"
        wt = p.get("warning_threshold", 0.001)
        if isinstance(wt, bool) or not isinstance(wt, (int, float)) or not wt >= 0:
            raise RunError(f"--warning_threshold: expected a non-negative number, got {wt!r}")
        params["warning_threshold"] = float(wt)
    else:
        params["output"] = None
        params["target"] = 0
    if op in ("marginalize", "product"):
        params["inner_op"] = inner
    if op == "marginalize" or (op == "product" and inner == "marginalize"):
        motif = p.get("motif")
        if not motif or not isinstance(motif, str):
            raise RunError("--motif: give the motif to insert, e.g. --motif GATAAG")
        bad = sorted({c for c in motif if c not in spec.alphabet and c != "N"})
        if bad:
            raise RunError(f"--motif: {motif!r} has characters {''.join(bad)!r} outside the alphabet "
                           f"{''.join(spec.alphabet)} (N keeps the original base)")
        params["motif"] = motif
        start = p.get("start")
        if start is not None and (isinstance(start, bool) or not isinstance(start, int) or start < 0):
            raise RunError(f"--start: expected a non-negative integer position, got {start!r}")
        L = _sequence_length(spec)
        if L is not None and len(motif) > L:
            raise RunError(f"--motif: {len(motif)} characters do not fit sequences of length {L}")
        if L is not None and start is not None and start > L - len(motif):
            raise RunError(f"--start: {start} puts the {len(motif)}-character motif past the end of sequences of "
                           f"length {L}; expected 0 to {L - len(motif)}")
        params["start"] = start
        if op == "product":
            params["marginalize_op"] = p.get("marginalize_op") or "predict"
    if op == "product":
        params["pairwise"] = bool(p.get("pairwise"))
    return params


def _sequence_length(spec):
    """L from the schema shape of the sequence input (None when not fixed)."""
    if spec.layout is None or spec.sequence_input not in spec.input_keys:
        return None
    shape = spec.input_shapes[spec.input_keys.index(spec.sequence_input)]
    if shape is None or len(shape) != len(spec.layout.axes):
        return None
    return shape[spec.layout.length_axis()]


def _product_args(target, specs, pairwise):
    """``--args`` files → ``[(input key, tensor)]`` and the names passed by keyword."""
    import torch
    spec = target.spec
    if not specs:
        raise RunError("--args: product needs at least one .npy file of extra inputs")
    loaded = [_load_npy(s, i) for i, s in enumerate(specs)]
    candidates = list(spec.extra_inputs) or [k for k in spec.input_keys if k != spec.sequence_input]
    if spec.call == "dict" and not spec.extra_inputs:
        candidates = [k for k in spec.input_keys if k != spec.sequence_input]
    out, keyword = [], []
    names_given = [n for n, _ in loaded if n is not None]
    if names_given and len(names_given) != len(loaded):
        raise RunError("--args: give every file as NAME=path or none of them")
    if not names_given:
        if len(loaded) > len(candidates):
            raise RunError(f"--args: {len(loaded)} files but the model has {len(candidates)} extra input(s) "
                           f"({', '.join(map(str, candidates)) or 'none'}); declare them with "
                           "postprocessing: tanger: extra_inputs")
        keys = candidates[:len(loaded)]
    else:
        keys = []
        for n in names_given:
            if n not in candidates and n not in spec.input_names:
                raise RunError(f"--args: {n!r} is not an extra input of the model; expected one of "
                               f"{', '.join(map(str, candidates))}")
            keys.append(n)
            keyword.append(n)
    provided = set(keys)
    uncovered = [spec.input_names[i] for i, k in enumerate(spec.input_keys)
                 if k != spec.sequence_input and k not in provided and spec.input_names[i] not in provided]
    if uncovered:
        raise RunError(f"--args: model input(s) {', '.join(uncovered)} come from the dataloader; product crosses "
                       "sequences with --args only, so pass a .npy for each of them")
    lens = [len(a) for _, a in loaded]
    if pairwise and len(set(lens)) > 1:
        raise RunError(f"--args: --pairwise pairs the files row by row, but their lengths differ ({lens})")
    # a declared extra input that is also a schema input (provided by the dataloader
    # otherwise) takes that input's place in the call; the others are extra arguments
    schema_key = {n: k for n, k in zip(spec.input_names, spec.input_keys)}
    keys = [schema_key.get(k, k) if isinstance(k, str) else k for k in keys]
    keyword = [k for k in keyword if k not in schema_key]
    for (_, a), k in zip(loaded, keys):
        out.append((k, torch.from_numpy(np.ascontiguousarray(a))))
    return out, keyword


def _fingerprint(d):
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def run(op, model, outputs, source="dir", dataloader=None, dataloader_source=None, dataloader_args=None,
        example=False, batch_size=32, device=None, dtype=None, num_workers=0, keep_metadata=False,
        keep_inputs=False, resume=False, overwrite=False, shard=None, verbose=True, output=None,
        target=None, n_shuffles=20, random_state=None, hypothetical=False, return_references=False,
        warning_threshold=0.001, motif=None, start=None, inner_op=None, marginalize_op=None, args=None,
        pairwise=False, group_regions=GROUP_REGIONS):
    """Run ``op`` over a Kipoi model's dataloader and write ``outputs``.

    Parameters
    ----------
    op : {'predict', 'deeplift-shap', 'marginalize', 'product'}
        The op to run on every batch.
    model : str or KipoiTarget
        Model name/dir (loaded with :func:`kipoi_tanger.adapter.load`) or an
        already loaded target.
    outputs : str or list of str
        ``.h5``/``.hdf5`` files (any op) and ``.tsv`` files (predict, and
        marginalize/product with the predict op).
    source, dataloader, dataloader_source : str
        Kipoi source (default ``dir``) and an optional dataloader override.
    dataloader_args : dict or None
        Dataloader keyword arguments; unknown or missing ones are errors.
    example : bool, default False
        Use the dataloader's own ``example:`` files instead.
    batch_size : int, default 32
        Regions per dataloader batch (and per forward pass / DeepLIFT pair chunk).
    device, dtype : optional
        As in every op (None = auto / the model's dtype).
    num_workers : int, default 0
        Dataloader worker processes; with 0 a background thread loads the
        next batch while the current one is computed.
    keep_metadata, keep_inputs : bool
        Also write ``metadata/...`` and ``inputs`` (and ``targets``) like
        ``kipoi predict -m -k``.
    resume, overwrite : bool
        Continue an interrupted run from its journal / replace existing outputs.
    shard : str or (int, int), optional
        ``"i/N"``: process only the i-th (1-based) of N contiguous blocks.
    verbose : bool, default True
        Progress bar on stderr.
    output, target, n_shuffles, random_state, hypothetical, return_references, warning_threshold
        deeplift-shap parameters (``output``: name or index of the model output
        to explain; ``target``: index or column label; ``warning_threshold``:
        convergence deltas above it raise a RuntimeWarning).
    motif, start
        marginalize parameters.
    inner_op : str, optional
        The op run by marginalize (predict/deeplift-shap) or product
        (predict/deeplift-shap/marginalize).
    marginalize_op : str, optional
        For product with ``inner_op='marginalize'``: predict or deeplift-shap.
    args : list, optional
        product: ``.npy`` paths (or ``NAME=path``, or arrays) of extra inputs.
    pairwise : bool, default False
        product: pair the ``args`` row by row instead of the cartesian product.
    group_regions : int, default 1024
        predict and marginalize (predict) call the op and commit to the journal
        once per this many regions (whole batches; at most 16 MiB of inputs);
        other ops once per batch. A kill loses at most one group.

    Returns
    -------
    RunResult
    """
    from .adapter import KipoiTarget, load
    from ._base import check_batch_size

    if op not in OPS:
        raise RunError(f"unknown op {op!r}{_suggest_op(op)}; expected one of {', '.join(OPS)}")
    check_batch_size(batch_size)
    if isinstance(group_regions, bool) or not isinstance(group_regions, int) or group_regions < 1:
        raise RunError(f"group_regions: expected a positive integer, got {group_regions!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise RunError(f"--num_workers: expected a non-negative integer, got {num_workers!r}")
    inner = inner_op or "predict"
    table_ok = op == "predict" or (op == "marginalize" and inner == "predict") or \
        (op == "product" and (inner == "predict" or (inner == "marginalize" and (marginalize_op or "predict") == "predict")))
    outputs = _check_outputs(outputs, table_ok)
    shard = parse_shard(shard)

    # refuse before loading anything heavy
    journal = Journal(os.path.abspath(outputs[0]) + ".partial")
    existing = [o for o in outputs if os.path.exists(o)]
    if journal.exists() and not resume and not overwrite:
        raise RunError(f"{journal.path} is left by an interrupted run: pass --resume to continue it or "
                       "--overwrite to start over")
    if existing and not overwrite and not (resume and journal.exists()):
        raise RunError(f"{existing[0]} exists; pass --overwrite to replace it")

    tgt = model if isinstance(model, KipoiTarget) else load(model, source=source, dataloader=dataloader,
                                                           dataloader_source=dataloader_source)
    p = dict(batch_size=batch_size, dtype=dtype, keep_metadata=keep_metadata, keep_inputs=keep_inputs,
             output=output, target=target, n_shuffles=n_shuffles, random_state=random_state,
             hypothetical=hypothetical, return_references=return_references,
             warning_threshold=warning_threshold, motif=motif, start=start,
             inner_op=inner_op, marginalize_op=marginalize_op, pairwise=pairwise)
    params = _resolve_params(tgt, op, p)
    product_args = None
    if op == "product":
        product_args, keyword = _product_args(tgt, args, params["pairwise"])
        params["keyword_args"] = keyword
        params["args"] = [a if isinstance(a, str) else f"<array {i}>" for i, a in enumerate(args)]
        params["args_shapes"] = [list(t.shape) for _, t in product_args]
        # the arrays' contents, not just their paths, decide the results
        params["args_sha256"] = [hashlib.sha256(str(t.dtype).encode() + t.numpy().tobytes()).hexdigest()
                                 for _, t in product_args]
    dl_kwargs = tgt.dataloader_args(dataloader_args, example=example)

    identity = {"op": op, "model": tgt.name, "source": tgt.source, "dataloader": tgt.dataloader_name,
                "dataloader_args": dl_kwargs, "parameters": params, "shard": shard,
                "outputs": [os.path.basename(o) for o in outputs], "version": __version__}
    fp = _fingerprint(identity)

    if overwrite and journal.exists() and not resume:
        journal.remove()
    if resume and journal.exists():
        meta = journal.load()
        if meta.get("fingerprint") != fp:
            diff = _first_difference(meta.get("identity", {}), json.loads(json.dumps(identity, default=str)))
            raise RunError(f"--resume: the interrupted run in {journal.path} used different settings ({diff}); "
                           "repeat its exact command, or pass --overwrite to start over")
        if "random_state" in params:
            params["random_state"] = meta.get("random_state", params["random_state"])
        created = _make_parents(outputs)
    else:
        if "random_state" in params and params["random_state"] is None:
            params["random_state"] = int(np.random.randint(0, 2**31 - 1))
        created = _make_parents(outputs)      # missing parent dirs, like most tools; removed if nothing is left
        journal.create({"fingerprint": fp, "identity": json.loads(json.dumps(identity, default=str)),
                        "random_state": params.get("random_state")})

    try:
        result = _execute(tgt, op, params, outputs, journal, dl_kwargs, shard, batch_size, device, dtype,
                          num_workers, product_args, verbose, identity, group_regions)
    except BaseException:
        if not journal.batches:
            journal.remove()    # nothing to resume: do not leave a stale journal behind
            _remove_dirs(created)
        raise
    return result


def _first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}{k}.")
        return "nothing"
    return f"{path.rstrip('.')}: {a!r} then, {b!r} now"


def _suggest_op(op):
    import difflib
    c = difflib.get_close_matches(str(op), OPS, n=1)
    return f" (did you mean {c[0]!r}?)" if c else ""


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


def _execute(tgt, op, params, outputs, journal, dl_kwargs, shard, batch_size, device, dtype, num_workers,
             product_args, verbose, identity, group_regions):
    dl = tgt.make_dataloader(dl_kwargs)
    mode = _iteration_mode(dl)
    units_total = len(dl) if mode != "stream" else None
    start, stop = 0, units_total
    if shard is not None:
        if mode == "stream":
            raise RunError(f"--shard: the dataloader ({type(dl).__name__}) has no random access (it is a "
                           f"{getattr(tgt.Dl, 'type', 'stream')}); sharding needs a Dataset or BatchDataset")
        i, n = shard
        # block edges on batch edges: every batch is the one a single run sees
        step = batch_size if mode == "samples" else 1
        n_steps = -(-units_total // step)
        start = min(units_total, ((i - 1) * n_steps // n) * step)
        stop = min(units_total, (i * n_steps // n) * step)
    if units_total is not None and units_total == 0:
        raise RunError("dataloader: no regions to process (the dataloader is empty)")

    resumed = journal.units
    runner = _OpRunner(tgt, op, params, device, dtype, batch_size, product_args)
    kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
    it = _batches(dl, mode, batch_size, num_workers, start + resumed, stop)
    if num_workers == 0 and os.environ.get("KIPOI_TANGER_PREFETCH", "1") != "0":
        it = _prefetch(it)
    total = None if stop is None else stop - start
    unit = "region" if mode != "batches" else "batch"
    committed_here = 0
    progress = _Progress(verbose, total=total, initial=resumed, unit=unit, desc=op, file=sys.stderr,
                         dynamic_ncols=True)
    # predict-like ops run several dataloader batches per op call and commit:
    # fewer per-call and per-commit costs. Only in "samples" mode, where every
    # batch but the last has batch_size rows, so the forward passes see the same
    # rows as batch-by-batch calls would.
    groupable = mode == "samples" and (op == "predict" or (op == "marginalize" and params.get("inner_op") == "predict"))
    limit = max(batch_size, (group_regions // batch_size) * batch_size) if groupable else 0
    # within a group, the bar follows the model's forward batches (marginalize
    # runs every region twice: before and after inserting the motif)
    passes = 2 if op == "marginalize" else 1
    group = {"rows": 0, "forwarded": 0, "shown": 0}

    def forwarded(n):
        group["forwarded"] += n
        done = min(group["rows"], group["forwarded"] // passes)
        progress.update(done - group["shown"])
        group["shown"] = done

    if groupable:
        runner.on_forward = forwarded
    try:
        for batch, units in _grouped(it, limit, GROUP_BYTES):
            rows = _n_rows(batch)
            group.update(rows=rows, forwarded=0, shown=0)
            items = tgt.input_items(batch["inputs"])
            flat = runner(items)
            if params["keep_metadata"] and "metadata" in batch:
                flat.update(h5io.flatten({"metadata": batch["metadata"]}))
            if params["keep_inputs"]:
                flat.update(h5io.flatten({"inputs": batch["inputs"]}))
                if "targets" in batch and batch["targets"] is not None:
                    flat.update(h5io.flatten({"targets": batch["targets"]}))
            _check_rows(flat, rows, journal)
            journal.commit(flat, units, rows)
            committed_here += 1
            progress.update(units - group["shown"])
            progress.show()
            if kill_after and committed_here >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
    finally:
        progress.close()

    n_rows = journal.rows
    if n_rows == 0 and shard is None:
        raise RunError("dataloader: no regions to process (the dataloader yielded nothing)")
    attrs = _attrs(tgt, op, params, identity, n_rows, journal.specs())
    if shard is not None:
        attrs["shard"] = f"{shard[0]}/{shard[1]}"
        attrs["shard_range"] = [start, stop]
        attrs["units_total"] = units_total
    _assemble(journal, outputs, attrs, n_rows)
    journal.remove()
    return RunResult(list(outputs), n_rows, len(journal.batches), resumed)


def _nbytes(tree):
    if isinstance(tree, dict):
        return sum(_nbytes(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(_nbytes(v) for v in tree)
    return getattr(tree, "nbytes", 0)


def _grouped(it, limit, max_bytes):
    """Concatenate consecutive batches up to ``limit`` rows / ``max_bytes`` (0: no grouping)."""
    if not limit:
        yield from it
        return
    from kipoi_utils.data_utils import numpy_collate_concat
    group, units, rows, size = [], 0, 0, 0
    for batch, u in it:
        group.append(batch)
        units += u
        rows += _n_rows(batch)
        size += _nbytes(batch.get("inputs"))
        if rows >= limit or size >= max_bytes:
            yield (group[0] if len(group) == 1 else numpy_collate_concat(group)), units
            group, units, rows, size = [], 0, 0, 0
    if group:
        yield (group[0] if len(group) == 1 else numpy_collate_concat(group)), units


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


def sequence_dataset(spec, names):
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
    parameters = {k: v for k, v in params.items() if k not in ("keyword_args",)}
    attrs = {
        "kipoi_tanger_version": __version__,
        "op": op,
        "model": tgt.name,
        "source": tgt.source,
        "dataloader": tgt.dataloader_name or "",
        "dataloader_args": identity["dataloader_args"],
        "parameters": parameters,
        "n_regions": int(n_rows),
        "sequence_input": spec.sequence_name or "",
        "sequence_dataset": sequence_dataset(spec, specs),
        "layout": "" if spec.layout is None else str(spec.layout),
        "alphabet": list(spec.alphabet),
        "output_names": list(spec.target_names),
    }
    if params.get("output") is not None or op == "deeplift-shap":
        out = params.get("output")
        attrs["explained_output"] = "" if out is None else str(out)
        labels = spec.column_labels if out == spec.output else []
        attrs["target"] = int(params.get("target", 0))
        attrs["reduce"] = spec.reduce and {"op": spec.reduce["op"], "axis": list(spec.reduce["axis"])}
        if labels and 0 <= attrs["target"] < len(labels):
            attrs["target_label"] = labels[attrs["target"]]
    return attrs


def _assemble(journal, outputs, attrs, n_rows):
    specs = journal.specs()
    jdir = os.path.dirname(journal.path)
    tmp_paths = []
    try:
        for i, out in enumerate(outputs):
            ext = os.path.splitext(out)[1]
            d = os.path.dirname(os.path.abspath(out))
            # a rename is atomic within one filesystem only: build each file in its own dir
            tmp = os.path.join(journal.path, f"assembled-{i}{ext}") if d == jdir else \
                os.path.join(d, f".{os.path.basename(out)}.assembling{ext}")
            tmp_paths.append((tmp, out))
            if out.lower().endswith(TABLE_SUFFIXES):
                h5io.write_tsv(tmp, journal.read_batches())
            else:
                h5io.write_h5(tmp, specs, n_rows, attrs, journal.read_batches())
        for tmp, out in tmp_paths:
            os.replace(tmp, out)
    finally:
        for tmp, _ in tmp_paths:
            if not tmp.startswith(journal.path + os.sep) and os.path.exists(tmp):
                os.remove(tmp)


# ---------------------------------------------------------------------------
# merge


def merge(shards, output, overwrite=False):
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
    if os.path.exists(output) and not overwrite:
        raise RunError(f"{output} exists; pass --overwrite to replace it")
    _check_parent(output)
    d = os.path.dirname(os.path.abspath(output))
    infos = []
    for s in shards:
        if not os.path.exists(s):
            raise RunError(f"merge: {s}: no such file")
        try:
            attrs = h5io.read_attrs(s)
            specs, n = h5io.dataset_specs(s)
        except Exception as e:
            raise RunError(f"merge: {s}: not a readable HDF5 file ({_one_line(e)})") from None
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
    ignored = SHARD_ATTRS + ("n_regions",)

    def settings(attrs, n):
        out = {k: v for k, v in attrs.items() if k not in ignored}
        if n == 0 and "sequence_dataset" in filled:
            out["sequence_dataset"] = filled["sequence_dataset"]
        return out

    base = settings(infos[0][3], infos[0][5])
    for i, _, s, attrs, specs, n in infos[1:]:
        other = settings(attrs, n)
        if other != base:
            diff = _first_difference(base, other)
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
    attrs["n_regions"] = n_rows

    def blocks():
        for (_, _, s, _, _, n) in infos:
            if n:
                yield from h5io.iter_blocks(s)

    created = _make_parents([output])
    tmp = os.path.join(d, f".{os.path.basename(output)}.merging-{os.getpid()}")
    try:
        h5io.write_h5(tmp, specs, n_rows, attrs, blocks())
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        _remove_dirs(created)
        raise
    return RunResult([output], n_rows, 0, 0)
