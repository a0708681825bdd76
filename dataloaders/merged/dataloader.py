"""Merged dataloader: other zoo models and their dataloaders packed into one loader.

A reusable Kipoi dataloader component (numpy + kipoi; torch only through the
models it loads) for composite models (seed 004, "composing models"): it
instantiates the default dataloaders of other Kipoi models (or dataloader
dirs), runs them batch by batch on the same regions, feeds their batches
through other Kipoi models (``predict_on_batch``), and yields chosen
predictions and inputs as the named inputs of a final model, with the
targets of one of them and the metadata of the first. With only dataloaders
and no models it merges several raw-file loaders into one (the stitched
model of scenario 1 takes ``input1`` from one loader and ``input2`` from
another).

What to load and how to wire it is a *plan* (YAML/JSON file or dict)::

    dataloaders:                 # sub-dataloaders, in this order
      dl1: {model: ../m1}        # the default dataloader of a model dir
      dl3: {model: ../m3, args: {columns: "a,b"}}     # fixed kwargs
      labels: {dataloader: ../../dataloaders/features_table, optional: true}
    models:                      # evaluated in order on every batch
      model1: {model: ../m1, input: dl1}
      model2: {model: ../m2, input: [model1, dl1]}    # a list is concatenated (last axis)
      model3: {model: ../m3, input: dl3}
    inputs: [model2, model3]     # or {name: ref}, or one ref
    targets: labels/inputs       # optional
    metadata: dl1                # optional; default the first dataloader
    args:                        # this loader's own kwargs -> sub-dataloader kwargs
      features1_file: dl1.features_file
      targets_file: labels.features_file

A *ref* is a node name with an optional ``/``-path: a dataloader node gives
its batch ``inputs`` (``dl/targets``, ``dl/metadata/...``, ``dl/inputs/key``
or ``dl/key`` select other parts), a model node its predictions (``m/key``
selects one output of a dict/list). Relative paths in the plan (model and
dataloader dirs, and string ``args`` that name an existing file) are
relative to the plan file.

Decisions
---------
* Alignment is checked, not repaired: every sub-dataloader must have the
  same length and yield the same region ids (``metadata/ranges/id`` or
  ``metadata/id``) in the same order; the first disagreement is an error
  naming both dataloaders, their models, the row and both ids. A loader
  without ids must say ``align: false`` in the plan.
* Sub-dataloaders must be random-access Kipoi ``Dataset``s (every loader of
  this repository and kipoiseq's are): the merged loader is itself a
  ``Dataset``, so ``kipoi-tanger --shard`` can split it.
* Rows are computed in fixed blocks of ``block_size`` rows (one
  ``predict_on_batch`` per model and block), whatever the caller's batch
  size, so a region's values do not depend on how the caller batches or
  shards; per-sample access (``__getitem__``) keeps the last block cached.
  Shuffled iteration computes each (random) batch directly.
* Batching comes from ``../_shared.py``, loaded by path.
"""
import contextlib
import importlib.util
import os
import sys

import numpy as np
from kipoi.data import Dataset


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
_one_line = _shared.one_line

__all__ = ["MergedDataloader", "load_plan"]

_FIELDS = ("inputs", "targets", "metadata")


class PlanError(ValueError):
    """The plan or the merged dataloader's arguments are malformed (one line)."""


def load_plan(plan):
    """Read a plan file (YAML or JSON) or take a dict; return ``(dict, base_dir)``."""
    if isinstance(plan, dict):
        return dict(plan), os.getcwd()
    if not isinstance(plan, (str, os.PathLike)):
        raise PlanError("plan must be a path to a YAML/JSON plan file or a dict, got {!r}".format(plan))
    path = os.path.abspath(os.fspath(plan))
    if not os.path.isfile(path):
        raise PlanError("plan {}: file not found".format(path))
    import yaml
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as e:
        raise PlanError("plan {}: not valid YAML/JSON ({})".format(path, _one_line(e))) from None
    if not isinstance(data, dict):
        raise PlanError("plan {}: expected a mapping with 'dataloaders', 'models', 'inputs'".format(path))
    return data, os.path.dirname(path)


def _parse_mapping(value, arg):
    """A dict from a dict, a JSON/YAML string or a JSON/YAML file (None -> {})."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        import yaml
        text = value
        if os.path.isfile(value):
            with open(value) as fh:
                text = fh.read()
        try:
            out = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise PlanError("{}: not a JSON/YAML mapping ({})".format(arg, _one_line(e))) from None
        if isinstance(out, dict):
            return out
    raise PlanError("{}: expected a mapping {{dataloader name: {{kwarg: value}}}}, got {!r}".format(
        arg, value))


def _no_grad():
    torch = sys.modules.get("torch")  # only models that use torch have imported it
    return torch.no_grad() if torch is not None else contextlib.nullcontext()


def _ids(batch):
    meta = batch.get("metadata")
    for path in _shared.ID_PATHS:
        node = meta
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
        if node is not None:
            return np.asarray(node).astype(str).reshape(-1)
    return None


class _Node:
    def __init__(self, name, kind, origin):
        self.name, self.kind, self.origin = name, kind, origin


class MergedDataloader(_shared.BatchedDataset):
    """Sub-dataloaders and sub-models merged into the inputs of a final model.

    Parameters
    ----------
    plan : str or dict, optional
        Plan file (YAML/JSON; relative paths inside are relative to it) or a
        dict (relative to the working directory); see the module docstring.
        Default: ``plan.yaml`` next to the ``dataloader.yaml`` Kipoi loaded
        this loader from (a model dir's own plan).
    dataloader_args : dict or str, optional
        Per-sub-dataloader kwargs ``{name: {kwarg: value}}`` (a dict, a
        JSON/YAML string or file); they override the plan's ``args`` and the
        mapped keyword arguments.
    block_size : int, default 256
        Rows computed per sub-model call.
    **kwargs
        This loader's own arguments, routed to sub-dataloaders by the plan's
        ``args`` mapping (``name: dataloader.kwarg`` or a list of them).
    """

    def __init__(self, plan=None, dataloader_args=None, block_size=256, **kwargs):
        if plan is None:
            # the plan.yaml next to the dataloader.yaml that Kipoi loaded this class from
            folder = getattr(type(self), "source_dir", None)
            if not folder:
                raise PlanError("plan: no plan given and no dataloader.yaml dir to find plan.yaml in")
            plan = os.path.join(folder, "plan.yaml")
        self.plan, self.base_dir = load_plan(plan)
        where = "plan" if isinstance(plan, dict) else "plan {}".format(os.path.abspath(os.fspath(plan)))
        self._where = where
        try:
            self.block_size = int(block_size)
        except (TypeError, ValueError):
            raise PlanError("block_size: expected a positive integer, got {!r}".format(block_size)) from None
        if self.block_size < 1:
            raise PlanError("block_size: expected a positive integer, got {!r}".format(block_size))
        unknown = set(self.plan) - {"dataloaders", "models", "inputs", "targets", "metadata", "args"}
        if unknown:
            raise PlanError("{}: unknown key {!r}; expected dataloaders, models, inputs, targets, "
                            "metadata, args".format(where, sorted(unknown)[0]))
        self._kipoi_models = {}
        per_dl = self._route(kwargs, _parse_mapping(dataloader_args, "dataloader_args"))
        self._build_dataloaders(per_dl)
        self._build_models()
        self._build_outputs()
        self._check_lengths()
        self._cache = (None, None)

    # ------------------------------------------------------------------
    # plan

    def _path(self, value):
        p = os.path.expanduser(os.fspath(value))
        return p if os.path.isabs(p) else os.path.normpath(os.path.join(self.base_dir, p))

    def _route(self, kwargs, explicit):
        """Sub-dataloader kwargs from the plan's ``args`` mapping and ``dataloader_args``."""
        dls = self.plan.get("dataloaders")
        if not isinstance(dls, dict) or not dls:
            raise PlanError("{}: 'dataloaders' must map names to {{model: dir}} or {{dataloader: dir}}"
                            .format(self._where))
        mapping = self.plan.get("args") or {}
        if not isinstance(mapping, dict):
            raise PlanError("{}: 'args' must map argument names to 'dataloader.kwarg'".format(self._where))
        out = {name: {} for name in dls}
        for arg, value in kwargs.items():
            if arg not in mapping:
                raise PlanError("{}: unknown argument {!r}; the plan's args are {}".format(
                    self._where, arg, ", ".join(mapping) or "none"))
            if value is None:
                continue
            targets = mapping[arg] if isinstance(mapping[arg], list) else [mapping[arg]]
            for t in targets:
                dl, _, kw = str(t).partition(".")
                if dl not in out or not kw:
                    raise PlanError("{}: args: {}: {!r} is not 'dataloader.kwarg' with a dataloader of the "
                                    "plan ({})".format(self._where, arg, t, ", ".join(dls)))
                out[dl][kw] = value
        for dl, kw in explicit.items():
            if dl not in out:
                raise PlanError("dataloader_args: {!r} is not a dataloader of the plan ({})".format(
                    dl, ", ".join(dls)))
            if not isinstance(kw, dict):
                raise PlanError("dataloader_args: {}: expected a mapping of kwargs, got {!r}".format(dl, kw))
            out[dl].update(kw)
        return out

    def _kipoi_model(self, path, source):
        key = (path, source)
        if key not in self._kipoi_models:
            import kipoi
            if source == "dir" and not os.path.isdir(path):
                raise PlanError("{}: model {}: no such directory".format(self._where, path))
            try:
                self._kipoi_models[key] = kipoi.get_model(path, source=source)
            except Exception as e:
                raise PlanError("{}: model {}: {}: {}".format(self._where, path, type(e).__name__,
                                                              _one_line(e))) from None
        return self._kipoi_models[key]

    def _build_dataloaders(self, per_dl):
        import kipoi
        self.dataloaders = {}
        self._dl = {}
        for name, spec in self.plan["dataloaders"].items():
            if not isinstance(spec, dict) or ("model" in spec) == ("dataloader" in spec):
                raise PlanError("{}: dataloaders: {}: give exactly one of 'model' (use its default "
                                "dataloader) and 'dataloader' (a dataloader dir)".format(self._where, name))
            bad = set(spec) - {"model", "dataloader", "source", "args", "optional", "align"}
            if bad:
                raise PlanError("{}: dataloaders: {}: unknown key {!r}".format(self._where, name,
                                                                               sorted(bad)[0]))
            source = spec.get("source", "dir")
            if "model" in spec:
                path = self._path(spec["model"]) if source == "dir" else spec["model"]
                origin = "the default dataloader of model {}".format(spec["model"])
                Dl = self._kipoi_model(path, source).default_dataloader
                if Dl is None:
                    raise PlanError("{}: dataloaders: {}: model {} has no default_dataloader".format(
                        self._where, name, spec["model"]))
            else:
                path = self._path(spec["dataloader"]) if source == "dir" else spec["dataloader"]
                origin = "dataloader {}".format(spec["dataloader"])
                try:
                    Dl = kipoi.get_dataloader_factory(path, source)
                except Exception as e:
                    raise PlanError("{}: dataloaders: {}: {}: {}".format(
                        self._where, name, type(e).__name__, _one_line(e))) from None
            kw = {}
            for k, v in (spec.get("args") or {}).items():
                if isinstance(v, str) and not os.path.isabs(v) and os.path.exists(self._path(v)):
                    v = self._path(v)
                kw[k] = v
            kw.update(per_dl[name])
            declared = dict(Dl.args or {})
            for k in kw:
                if k not in declared:
                    raise PlanError("dataloader {!r} ({}): unknown argument {!r}; it takes {}".format(
                        name, origin, k, ", ".join(declared) or "no arguments"))
            missing = [k for k, a in declared.items() if not a.optional and k not in kw]
            if missing:
                if spec.get("optional"):
                    continue
                routes = [a for a, t in (self.plan.get("args") or {}).items()
                          if any(str(x) == "{}.{}".format(name, missing[0])
                                 for x in (t if isinstance(t, list) else [t]))]
                how = " (argument {})".format(routes[0]) if routes else ""
                raise PlanError("dataloader {!r} ({}) needs {}{}; pass it, or dataloader_args="
                                "{{{!r}: {{{!r}: ...}}}}".format(name, origin, ", ".join(missing), how,
                                                                name, missing[0]))
            try:
                dl = Dl(**kw)
            except Exception as e:
                raise ValueError("dataloader {!r} ({}): {}: {}".format(name, origin, type(e).__name__,
                                                                       _one_line(e))) from None
            if not isinstance(dl, Dataset):
                raise PlanError("dataloader {!r} ({}) is a {}; the merged dataloader needs random-access "
                                "Kipoi Dataset sub-dataloaders".format(name, origin, getattr(Dl, "type", None) or
                                                       type(dl).__name__))
            self.dataloaders[name] = dl
            self._dl[name] = _Node(name, "dataloader", origin)
            self._dl[name].align = bool(spec.get("align", True))
        if not self.dataloaders:
            raise PlanError("{}: every dataloader is optional and none got its arguments".format(self._where))

    def _check_ref(self, ref, known, what):
        if not isinstance(ref, str) or not ref:
            raise PlanError("{}: {}: a ref must be a node name (optionally with /path), got {!r}".format(
                self._where, what, ref))
        node = ref.split("/", 1)[0]
        if node not in known:
            skipped = node in (self.plan.get("dataloaders") or {})
            raise PlanError("{}: {}: {!r} {}; known: {}".format(
                self._where, what, node,
                "is an optional dataloader whose arguments were not given" if skipped
                else "is neither a dataloader nor an earlier model",
                ", ".join(known)))
        return ref

    def _refs(self, value, known, what):
        if isinstance(value, str):
            return self._check_ref(value, known, what)
        if isinstance(value, list) and value:
            return [self._check_ref(v, known, what) for v in value]
        if isinstance(value, dict) and value:
            return {str(k): self._check_ref(v, known, "{}.{}".format(what, k)) for k, v in value.items()}
        raise PlanError("{}: {}: expected a ref, a list of refs (concatenated) or a mapping {{name: ref}}, "
                        "got {!r}".format(self._where, what, value))

    def _build_models(self):
        models = self.plan.get("models") or {}
        if not isinstance(models, dict):
            raise PlanError("{}: 'models' must map names to {{model: dir, input: ref}}".format(self._where))
        self.models = {}
        self._models = []
        known = list(self.dataloaders)
        for name, spec in models.items():
            if name in self._dl or name in self.models:
                raise PlanError("{}: models: {!r} is already a node name".format(self._where, name))
            if not isinstance(spec, dict) or "model" not in spec or "input" not in spec:
                raise PlanError("{}: models: {}: expected {{model: dir, input: ref}}".format(self._where, name))
            source = spec.get("source", "dir")
            path = self._path(spec["model"]) if source == "dir" else spec["model"]
            refs = self._refs(spec["input"], known, "models: {}: input".format(name))
            kmodel = self._kipoi_model(path, source)
            self.models[name] = kmodel
            self._models.append((name, kmodel, refs, "model {}".format(spec["model"])))
            known.append(name)
        self._known = known

    def _build_outputs(self):
        if "inputs" not in self.plan:
            raise PlanError("{}: 'inputs' is required (refs of the final model's inputs)".format(self._where))
        inputs = self.plan["inputs"]
        if isinstance(inputs, list):
            inputs = {str(r).split("/")[-1]: r for r in inputs}
        self._inputs = self._refs(inputs, self._known, "inputs")
        t = self.plan.get("targets")
        self._targets = None
        skipped = set(self.plan["dataloaders"]) - set(self.dataloaders)
        # targets from an optional dataloader that was not given its arguments: no targets
        if t is not None and str(t).split("/", 1)[0] not in skipped:
            self._targets = self._check_ref(t, self._known, "targets")
        meta = self.plan.get("metadata", next(iter(self.dataloaders)))
        if meta not in self.dataloaders:
            raise PlanError("{}: metadata: {!r} is not a loaded dataloader ({})".format(
                self._where, meta, ", ".join(self.dataloaders)))
        self._meta = meta

    def _check_lengths(self):
        names = list(self.dataloaders)
        n0 = len(self.dataloaders[names[0]])
        for name in names[1:]:
            n = len(self.dataloaders[name])
            if n != n0:
                short, long_ = (names[0], name) if n0 < n else (name, names[0])
                i = min(n, n0)
                extra = _ids(self._fetch(long_, np.array([i])))
                raise ValueError("merged dataloader: {!r} ({}) has {} regions but {!r} ({}) has {}; regions "
                                 "differ from row {} (id {!r} only in {!r})".format(
                                     name, self._dl[name].origin, n, names[0], self._dl[names[0]].origin, n0,
                                     i, None if extra is None else str(extra[0]), long_))
        self._n = n0

    # ------------------------------------------------------------------
    # computing rows

    def _fetch(self, name, idx):
        dl = self.dataloaders[name]
        if hasattr(dl, "load_batch"):
            return dl.load_batch(idx)
        from kipoi_utils.data_utils import numpy_collate
        return numpy_collate([dl[int(i)] for i in idx])

    def _check_aligned(self, batches, idx):
        ref = None
        for name, batch in batches.items():
            if not self._dl[name].align:
                continue
            ids = _ids(batch)
            if ids is None:
                raise ValueError("merged dataloader: {!r} ({}) yields no region ids (metadata ranges/id or "
                                 "id) to check alignment; set align: false on it in the plan to trust its "
                                 "order".format(name, self._dl[name].origin))
            if ref is None:
                ref = (name, ids)
                continue
            bad = np.flatnonzero(ids != ref[1])
            if len(bad):
                j = int(bad[0])
                r = ref[0]
                raise ValueError("merged dataloader: regions disagree at row {}: {!r} ({}) has id {!r} but {!r} "
                                 "({}) has {!r}; the sub-dataloaders must yield the same regions in the same "
                                 "order".format(int(idx[j]), r, self._dl[r].origin, str(ref[1][j]), name,
                                                self._dl[name].origin, str(ids[j])))

    def _get(self, values, ref):
        node, *path = ref.split("/")
        if node in self.dataloaders:
            v = values[node]
            if path and path[0] in _FIELDS:
                field, path = path[0], path[1:]
            else:
                field = "inputs"
            if field not in v or v[field] is None:
                raise ValueError("merged dataloader: {!r}: dataloader {!r} ({}) yields no {}".format(
                    ref, node, self._dl[node].origin, field))
            v = v[field]
        else:
            v = values[node]
        for p in path:
            if isinstance(v, dict) and p in v:
                v = v[p]
            elif isinstance(v, (list, tuple)) and p.lstrip("-").isdigit() and -len(v) <= int(p) < len(v):
                v = v[int(p)]
            else:
                keys = list(v) if isinstance(v, dict) else (list(range(len(v))) if isinstance(v, (list, tuple))
                                                            else [])
                raise ValueError("merged dataloader: {!r}: no {!r} in {} (it has {})".format(
                    ref, p, node, ", ".join(map(str, keys)) or "no parts: it is an array"))
        return v

    def _model_input(self, values, refs):
        if isinstance(refs, str):
            return self._get(values, refs)
        if isinstance(refs, dict):
            return {k: self._get(values, r) for k, r in refs.items()}
        parts = [np.asarray(self._get(values, r)) for r in refs]
        for r, p in zip(refs, parts):
            if p.ndim < 1 or p.dtype.kind not in "biuf":
                raise ValueError("merged dataloader: {!r} is not a numeric array to concatenate".format(r))
        try:
            return np.concatenate(parts, axis=-1)
        except ValueError as e:
            raise ValueError("merged dataloader: cannot concatenate {} (shapes {}): {}".format(
                ", ".join(refs), ", ".join(str(p.shape) for p in parts), _one_line(e))) from None

    def compute(self, idx):
        """Run every sub-dataloader and sub-model on rows ``idx``; return one batch."""
        idx = np.asarray(idx, dtype=np.int64)
        values = {name: self._fetch(name, idx) for name in self.dataloaders}
        self._check_aligned(values, idx)
        for name, kmodel, refs, origin in self._models:
            x = self._model_input(values, refs)
            try:
                with _no_grad():
                    values[name] = kmodel.predict_on_batch(x)
            except Exception as e:
                shapes = _shared.tree_map(lambda a: tuple(np.shape(a)), x)
                raise ValueError("merged dataloader: model {!r} ({}) failed on its input {}: {}: {}".format(
                    name, origin, shapes, type(e).__name__, _one_line(e))) from None
        if isinstance(self._inputs, dict):
            inputs = {k: self._get(values, r) for k, r in self._inputs.items()}
        else:
            inputs = self._model_input(values, self._inputs)
        batch = {"inputs": inputs, "metadata": values[self._meta].get("metadata", {})}
        if self._targets is not None:
            node = self._targets.split("/", 1)[0]
            ref = self._targets
            if node in self.dataloaders and "/" not in ref:
                ref = ref + ("/targets" if values[node].get("targets") is not None else "/inputs")
            batch["targets"] = self._get(values, ref)
        return batch

    def _block(self, k):
        if self._cache[0] != k:
            a = k * self.block_size
            self._cache = (k, self.compute(np.arange(a, min(a + self.block_size, self._n))))
        return self._cache[1]

    def rows(self, start, stop):
        """Rows ``start:stop`` as one batch, computed in fixed blocks of ``block_size``."""
        start, stop = max(0, int(start)), min(self._n, int(stop))
        if stop <= start:
            raise IndexError("rows {}:{} out of range for {} rows".format(start, stop, self._n))
        bs, parts = self.block_size, []
        for k in range(start // bs, (stop - 1) // bs + 1):
            a = k * bs
            parts.append(_shared.tree_map(lambda v: v[max(start - a, 0):stop - a], self._block(k)))
        return parts[0] if len(parts) == 1 else _shared.tree_concat(parts)

    # ------------------------------------------------------------------
    # kipoi Dataset API

    def __len__(self):
        return self._n

    def __getitem__(self, index):
        i = self._index(index)
        return _shared.tree_row(self._block(i // self.block_size), i % self.block_size)

    def load_batch(self, idx):
        """Rows ``idx`` as one batch (contiguous runs come from the fixed blocks)."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) and (np.diff(idx) == 1).all():
            return self.rows(idx[0], idx[-1] + 1)
        return self.compute(idx)

    def ordered_batches(self, batch_size, stop):
        """In-order batches, cut from the fixed blocks."""
        return (self.rows(a, min(a + batch_size, stop)) for a in range(0, stop, batch_size))


_shared.attach_description(MergedDataloader, globals().get("__file__"))
