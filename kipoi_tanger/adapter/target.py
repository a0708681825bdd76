"""Loading a Kipoi model for kipoi_tanger: :func:`load` → :class:`KipoiTarget`.

A target holds the Kipoi model, its torch module, what the tanger section and
the schema say (:class:`~kipoi_tanger.adapter.section.TangerSpec`) and the
dataloader class. It answers the questions ops ask of a model: can this op
run (:meth:`KipoiTarget.require`), which output and target to explain, which
dataloader arguments are valid; and it builds the wrapper through which every
op calls the model (:meth:`KipoiTarget.wrap`).

The sequence's alphabet, layout and length also follow the dataloader's
arguments (:mod:`~kipoi_tanger.adapter.loader_format`): those of model.yaml at
load, then those of the run (:meth:`KipoiTarget.dataloader_args` re-resolves
the spec when ``--dataloader_args`` changes them). DeepLIFT rules declared
under ``postprocessing: tanger: deeplift_rules`` are resolved against the
loaded model (:attr:`KipoiTarget.deeplift_rules`).
"""
import copy
import os
import re
from typing import Optional

import numpy as np

from .errors import AdapterError, one_line, suggest
from .layout import format_shape
from .loader_format import loader_format
from .section import (match_key, read_model_yaml, reduced_shape, resolve_spec, schema_entries, squeeze_trailing,
                      tanger_section)
from .wrapper import adapted_module_class

__all__ = ["KipoiTarget", "load", "find_torch_module", "resolve_example", "import_kipoi",
           "kipoi_predict_example"]


def _resolve_example_path(value, base):
    if not value or os.path.isabs(value):
        return value
    whole = os.path.join(base, value)
    if os.path.exists(whole):
        return os.path.abspath(whole)
    if "," in value:
        parts = [p.strip() for p in value.split(",")]
        if all(parts) and all(os.path.exists(os.path.join(base, p)) for p in parts):
            return ",".join(os.path.abspath(os.path.join(base, p)) for p in parts)
    return value


def resolve_example(value, base: Optional[str]):
    """An ``example:`` value with its relative paths made absolute against ``base``.

    ``kipoi test`` changes into the dataloader's dir before using the examples;
    we keep the working directory, so every relative path that exists under
    ``base`` is made absolute. A comma-separated string (``a.h5,b.h5``) is
    split only when every part exists under ``base``; strings that are not
    paths there (names, regions, numbers) are left alone. Lists and dicts are
    resolved element by element.

    Parameters
    ----------
    value : object
        The example value (str, list, dict or anything else).
    base : str or None
        The dataloader's source dir; None leaves ``value`` unchanged.

    Returns
    -------
    object
        ``value`` with the paths resolved.
    """
    if base is None:
        return value
    if isinstance(value, str):
        return _resolve_example_path(value, base)
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_example(v, base) for v in value)
    if isinstance(value, dict):
        return {k: resolve_example(v, base) for k, v in value.items()}
    return value


def import_kipoi():
    """``import kipoi`` with the numpy-2 shim applied to its HDF5 writer."""
    import kipoi  # noqa: F401
    from .compat import patch_kipoi_writers
    patch_kipoi_writers()
    return kipoi


class KipoiTarget:
    """A loaded Kipoi model ready for kipoi_tanger ops.

    Attributes
    ----------
    kmodel : kipoi.model.BaseModel
        The Kipoi model object.
    module : torch.nn.Module
        What forward-only ops call: its torch module, or, for models of other
        frameworks, a shim around its own ``predict_on_batch``
        (:mod:`~kipoi_tanger.adapter.backends`).
    backend : Backend
        How the model is called (framework, graph ops, the Keras conversion).
    spec : TangerSpec
        Declared/inferred sequence input, layout, output, reduction, ops.
    Dl : type
        The dataloader class (the model's default or the ``dataloader`` override).
    """

    def __init__(self, name, source, kmodel, module, spec, Dl, dataloader_name=None, backend=None):
        self.name = name
        self.source = source
        self.kmodel = kmodel
        self.module = module
        if backend is None:
            from .backends import make_backend
            backend = make_backend(kmodel if module is None else module, name, spec.call)
        self.backend = backend
        self.spec = spec
        self.Dl = Dl
        self.dataloader_name = dataloader_name

    # -- ops support -------------------------------------------------------

    def require(self, op: str, explain: bool = False, output=None) -> None:
        """Raise AdapterError unless ``op`` can run; ``explain``: needs a (N, T) output."""
        spec = self.spec
        if op not in spec.ops:
            why = ""
            if op == "deeplift-shap":
                refusal = self._rule_refusal()
                why = f"; {refusal}" if refusal else ""
            raise AdapterError(f"model {self.name}: op {op!r} is not supported (postprocessing: tanger: ops "
                               f"declares {', '.join(spec.ops)}){why}")
        if op == "predict" and not explain:
            return
        for key in ("sequence_input", "layout"):
            if key in spec.problems:
                raise AdapterError(f"model {self.name}: {op} needs the sequence input: {spec.problems[key]}")
        if explain:
            # the op's own refusal, before any data is loaded (same rules as deep_lift_shap)
            refusal = self._rule_refusal()
            if refusal:
                raise AdapterError(f"model {self.name}: {refusal}")
            if spec.layout.tokens:
                raise AdapterError(f"model {self.name}: DeepLIFT/SHAP needs a one-hot sequence input, but "
                                   f"{spec.sequence_name!r} takes integer tokens (layout {spec.layout})")
            out = self.resolve_output(output)
            shape = self.output_shape(out)
            red = reduced_shape(shape, spec.reduce)
            if red is not None and len(squeeze_trailing(red)) > 1:
                name = self._output_label(out)
                raise AdapterError(
                    f"model {self.name}: output {name} has shape {format_shape(shape)} per example; DeepLIFT/SHAP "
                    "explains a (n_targets,) output: declare a reduction, e.g. reduce: {op: sum, axis: -1}, "
                    "under postprocessing: tanger")

    def require_graph(self, op: str) -> None:
        """Raise AdapterError unless graph op ``op`` (DeepLIFT/SHAP) can run on this model: a torch
        model, or a Keras model converted to torch (see :mod:`~kipoi_tanger.adapter.backends`)."""
        self.backend.require_graph(op, rules=self.deeplift_rules if self.backend.framework == "keras" else None)

    def file_attrs(self, op=None) -> dict:
        """HDF5 attributes on how the model was run: ``framework`` and, after a graph op
        on a converted Keras model, its first-batch ``conversion_check``; ``model_alphabet``,
        the model's one-hot order (the file's ``(N, A, L)`` datasets follow ``alphabet``,
        the ``inputs`` the model's order)."""
        uses_graph = op is not None and any(o.needs_graph for o in op.walk())
        out = dict(self.backend.file_attrs(uses_graph))
        out["model_alphabet"] = list(self.spec.model_alphabet)
        return out

    # -- DeepLIFT rules and the dataloader's format ---------------------------

    def configure(self, raw_yaml: Optional[dict], where: str) -> "KipoiTarget":
        """Resolve the spec with what the dataloader's arguments say (model.yaml's and the
        dataloader's defaults) and validate the declared DeepLIFT rules; returns self.

        Parameters
        ----------
        raw_yaml : dict or None
            The raw model.yaml (:func:`~kipoi_tanger.adapter.section.read_model_yaml`).
        where : str
            How to name model.yaml in messages.
        """
        self._yaml, self._where = raw_yaml, where
        self._section = tanger_section(raw_yaml, where)
        self.spec = resolve_spec(self.kmodel.schema, self._section, where,
                                 loader=loader_format(self.Dl, raw_yaml, where=where))
        self._base_spec = copy.copy(self.spec)
        self._rules = None
        if self.spec.deeplift_rules is not None:
            self.deeplift_rules         # noqa: B018 (bad declarations are load errors)
        return self

    @property
    def deeplift_rules(self) -> Optional[dict]:
        """``{class: rule}`` from ``postprocessing: tanger: deeplift_rules`` for ``deep_lift_shap``'s
        ``additional_nonlinear_ops`` (None when the section declares none)."""
        decl = self.spec.deeplift_rules
        if decl is None:
            return None
        if getattr(self, "_rules", None) is None:
            from ..deep_lift_shap import rules_from_names
            raw = getattr(self, "_yaml", None) or {}
            args = raw.get("args") if isinstance(raw, dict) else None
            module_file = args.get("module_file") if isinstance(args, dict) else None
            where = f"{getattr(self, '_where', 'model.yaml')}: postprocessing: tanger: deeplift_rules"
            try:
                self._rules = rules_from_names(decl, model=self.module,
                                               module_file=module_file if isinstance(module_file, str) else None,
                                               where=where)
            except (ValueError, TypeError) as e:
                raise AdapterError(one_line(e)) from None
        return self._rules

    def _rule_refusal(self) -> Optional[str]:
        """Why DeepLIFT/SHAP refuses the model before any data is seen (a module of a class with no
        sound rule, e.g. a GRU, and none declared), or None."""
        from .._deeplift_rules import build_rules, ruled_modules
        try:
            ruled_modules(self.module, build_rules(self.deeplift_rules), "deep_lift_shap")
        except ValueError as e:
            return (f"{one_line(e)}; or declare a rule for its class under postprocessing: tanger: "
                    "deeplift_rules ({class: rule name or pkg.mod:function})")
        return None

    def _apply_run_args(self, kwargs: dict, label: str) -> None:
        """Re-resolve the spec when this run's dataloader arguments change the sequence's format.

        The spec is updated in place, so wrappers built earlier (``load_model``'s
        ``model``) map sequences the way the dataloader now yields them.
        """
        base = getattr(self, "_base_spec", None)
        if base is None or base.loader is None:
            return
        fmt = loader_format(self.Dl, self._yaml, run_kwargs=kwargs, where=self._where, run_label=label)
        new = base if fmt is None or not fmt.run_args else \
            resolve_spec(self.kmodel.schema, self._section, self._where, loader=fmt)
        vars(self.spec).update(vars(new))

    def _output_label(self, out):
        if out is None:
            return repr(self.spec.target_names[0]) if self.spec.target_names else "'preds'"
        if out in self.spec.target_keys:
            return repr(self.spec.target_names[self.spec.target_keys.index(out)])
        return repr(out)

    def resolve_output(self, output=None):
        """``--output NAME|INDEX`` (or the declared/inferred one) → output key."""
        spec = self.spec
        if output is None:
            if "output" in spec.problems:
                raise AdapterError(f"model {self.name}: {spec.problems['output']}")
            return spec.output
        if isinstance(output, str) and re.fullmatch(r"-?\d+", output):
            output = int(output)
        if not spec.target_keys:
            raise AdapterError(f"--output: model {self.name} declares no targets in its schema")
        if spec.target_call == "array":
            if output in (0, -1, spec.target_names[0]):
                return None
            raise AdapterError(f"--output: model {self.name} has a single output ({spec.target_names[0]!r}); "
                               f"got {output!r}")
        return match_key(output, spec.target_keys, spec.target_names, "output", "--output")

    def output_shape(self, out) -> Optional[tuple]:
        """Per-example schema shape of output ``out`` (None when the schema gives none)."""
        call, keys, names, schemas = schema_entries(getattr(self.kmodel.schema, "targets", None))
        if not keys:
            return None
        i = keys.index(out) if out in keys else 0
        s = schemas[i]
        return tuple(s.shape) if getattr(s, "shape", None) is not None else None

    def resolve_target(self, target, output=None) -> int:
        """``--target`` as an index or a column label of the explained output."""
        if target is None:
            return 0
        if isinstance(target, int):
            return target
        if re.fullmatch(r"-?\d+", str(target)):
            return int(target)
        out = self.resolve_output(output)
        call, keys, names, schemas = schema_entries(getattr(self.kmodel.schema, "targets", None))
        labels = []
        if keys:
            i = keys.index(out) if out in keys else 0
            labels = list(getattr(schemas[i], "column_labels", []) or [])
        if target in labels:
            return labels.index(target)
        raise AdapterError(f"--target: {target!r} is neither an index nor a column label of the output"
                           + (f"{suggest(target, labels)}; labels are {', '.join(labels[:10])}"
                              + ("..." if len(labels) > 10 else "") if labels else " (it has no column_labels)"))

    # -- wrappers ----------------------------------------------------------

    def wrap(self, canonical: bool, arg_keys=(), select: bool = False, output=None, x_dtype=None, arg_dtypes=None,
             keyword_extras=()):
        """A torch module ``f(X, *args)`` for ops: how every op calls the model.

        Parameters
        ----------
        canonical : bool
            ``X`` is canonical ``(N, A, L)`` one-hot (mapped to the model's
            layout), else the model's own sequence (or first) input.
        arg_keys : sequence
            Schema keys (or extra keyword names) that ``args`` fill, in order.
        select : bool
            Return only ``output`` (reduced, ``(N, n_targets)``): what DeepLIFT explains.
        output : str or int, optional
            ``--output`` (name or index); None = the declared/inferred one.
        x_dtype, arg_dtypes : torch.dtype, optional
            The inputs' dtypes in the batch: integer inputs are restored after
            ops cast everything to the compute dtype.
        keyword_extras : sequence of str
            Extra inputs passed by keyword rather than position.

        Returns
        -------
        torch.nn.Module
            See :func:`~kipoi_tanger.adapter.wrapper.adapted_module_class`.
        """
        cls = adapted_module_class()
        spec = self.spec
        x_key = spec.sequence_input if canonical else (spec.sequence_input if spec.sequence_input is not None
                                                       else spec.input_keys[0])
        out = self.resolve_output(output) if select else None
        module = self.backend.module_for(graph=select)   # DeepLIFT needs a torch graph (the checked conversion)
        return cls(module, spec, x_key, arg_keys, canonical, arg_dtypes=arg_dtypes, x_dtype=x_dtype,
                   select=select, reduce=spec.reduce if select else None, output=out,
                   keyword_extras=keyword_extras)

    def input_items(self, inputs) -> dict:
        """A batch's ``inputs`` (array, list or dict) as ``{key: ndarray}`` in schema order."""
        spec = self.spec
        if spec.call == "dict":
            if not isinstance(inputs, dict):
                raise AdapterError(f"dataloader: expected inputs as a dict with keys {', '.join(spec.input_names)}, "
                                   f"got {type(inputs).__name__}")
            missing = [k for k in spec.input_keys if k not in inputs]
            if missing:
                raise AdapterError(f"dataloader: inputs lack {', '.join(map(str, missing))} required by the model")
            return {k: inputs[k] for k in spec.input_keys}
        if spec.call == "list":
            if not isinstance(inputs, (list, tuple)) or len(inputs) != len(spec.input_keys):
                raise AdapterError(f"dataloader: expected inputs as a list of {len(spec.input_keys)} arrays, "
                                   f"got {type(inputs).__name__}")
            return {k: inputs[k] for k in spec.input_keys}
        if isinstance(inputs, dict) and len(inputs) == 1:
            inputs = next(iter(inputs.values()))
        if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
            inputs = inputs[0]
        return {spec.input_keys[0]: inputs}

    def canonical(self, x):
        """The model-layout sequence batch ``x`` → canonical float ``(N, A, L)``."""
        import torch
        x = torch.as_tensor(np.ascontiguousarray(x))
        return self.spec.layout.from_model(x, len(self.spec.alphabet))

    # -- dataloader --------------------------------------------------------

    def dataloader_args(self, parsed: Optional[dict] = None, example: bool = False) -> dict:
        """Validate dataloader kwargs against ``Dl.args`` (typos and missing args are errors)."""
        Dl = self.Dl
        args = dict(Dl.args or {})
        if example:
            if parsed:
                raise AdapterError("--example runs on the dataloader's own example files; drop --dataloader_args")
            try:
                kw = Dl.download_example(os.path.join(Dl.source_dir or os.getcwd(), "downloaded", "example_files"),
                                         absolute_path=True)
            except Exception as e:
                raise AdapterError(f"--example: cannot get the dataloader's example files: {one_line(e)}") from None
            out = {k: resolve_example(v, Dl.source_dir) for k, v in kw.items()}
            missing = [k for k, a in args.items() if not a.optional and k not in out]
            if missing:
                raise AdapterError(f"--example: the dataloader gives no example for required argument(s) "
                                   f"{', '.join(missing)}")
            self._apply_run_args(_differing(Dl, out), "the dataloader's example: arguments")
            return out
        parsed = dict(parsed or {})
        for k in parsed:
            if k not in args:
                raise AdapterError(f"--dataloader_args: unknown argument {k!r}{suggest(k, args)}; the dataloader "
                                   f"takes {', '.join(args) or 'no arguments'}")
        missing = [k for k, a in args.items() if not a.optional and k not in parsed]
        if missing:
            raise AdapterError(f"--dataloader_args: missing required argument(s) {', '.join(missing)} "
                               "(or pass --example to use the dataloader's example files)")
        self._apply_run_args(parsed, "--dataloader_args")
        return parsed

    def make_dataloader(self, kwargs: dict):
        """Instantiate the dataloader; any failure becomes one AdapterError line."""
        try:
            return self.Dl(**kwargs)
        except AdapterError:
            raise
        except Exception as e:
            raise AdapterError(f"dataloader {self.dataloader_name or self.Dl.__name__}: {type(e).__name__}: "
                               f"{one_line(e)}") from None

    def describe(self) -> dict:
        """A dict saying what was declared and what was inferred (``kipoi-tanger info``)."""
        d = self.spec.to_dict()
        d["model"] = self.name
        d["source"] = self.source
        d["kipoi_type"] = getattr(self.kmodel, "type", None)
        b = self.backend
        d["module"] = type(self.module if b.torch_native else getattr(self.kmodel, "model", self.kmodel)).__name__
        d["framework"] = b.framework
        d["framework_detail"] = b.detail
        from ..ops import classes
        d["ops_available"] = b.availability(classes())
        d["dataloader"] = self.dataloader_name or getattr(self.Dl, "defined_as", None)
        d["dataloader_type"] = getattr(self.Dl, "type", None)
        d["dataloader_args"] = {k: {"optional": bool(a.optional),
                                    "doc": a.doc if isinstance(a.doc, str) else ""}
                                for k, a in (self.Dl.args or {}).items()}
        return d


def _differing(Dl, kwargs: dict) -> dict:
    """The arguments of ``kwargs`` that differ from ``Dl``'s effective defaults (Kipoi copies
    ``default_args`` into the ``example:`` values, which then change nothing)."""
    import inspect
    try:
        params = inspect.signature(Dl.__init__ if inspect.isclass(Dl) else Dl).parameters
    except (TypeError, ValueError):
        return dict(kwargs)
    def same(a, b):
        try:
            return bool(a == b)
        except Exception:       # arrays, odd types: count as different
            return False

    return {k: v for k, v in kwargs.items() if k not in params or not same(params[k].default, v)}


def find_torch_module(kmodel, name: str):
    """The torch module a loaded Kipoi model predicts with, or one AdapterError line naming its framework.

    Only PyTorch models have one (``kipoi.model.PyTorchModel``,
    ``kipoi_tanger.TorchModel``, or a model that is a ``torch.nn.Module``); a
    class that overrides ``predict_on_batch`` may not predict with its inner
    module. :func:`load` serves every other model through its own
    ``predict_on_batch`` (:mod:`~kipoi_tanger.adapter.backends`).
    """
    from .backends import framework_of, make_backend
    backend = make_backend(kmodel, name)
    if backend.torch_native:
        return backend.module
    raise AdapterError(f"model {name}: not a PyTorch model but {framework_of(kmodel)[1]}; it runs through its own "
                       "predict_on_batch (kipoi_tanger.adapter.load)")


def load(model: str, source: str = "dir", dataloader: Optional[str] = None,
         dataloader_source: Optional[str] = None) -> KipoiTarget:
    """Load a Kipoi model and its dataloader for kipoi_tanger ops.

    Parameters
    ----------
    model : str
        Model name in ``source``; with ``source='dir'`` a path to the model dir
        (relative to the working directory, or absolute).
    source : str, default 'dir'
        A Kipoi source name (``dir`` or one configured in ~/.kipoi/config.yaml).
    dataloader : str or None
        Override the default dataloader: a dataloader dir (with ``source='dir'``
        or ``dataloader_source``) or an importable ``module.Class``.
    dataloader_source : str or None
        Source of ``dataloader``; default: ``dir`` when ``dataloader`` is an
        existing directory, else ``py`` (import path).

    Returns
    -------
    KipoiTarget
    """
    kipoi = import_kipoi()
    if source == "dir":
        path = model if os.path.isabs(model) else os.path.join(os.getcwd(), model)
        if not os.path.isdir(path):
            raise AdapterError(f"model {model}: no such directory (with --source dir, MODEL is a path to a "
                               "directory holding model.yaml)")
        if not any(os.path.exists(os.path.join(path, f)) for f in ("model.yaml", "model.yml")):
            raise AdapterError(f"model {model}: {path} has no model.yaml")
    try:
        src = kipoi.config.get_source(source)
    except Exception as e:
        raise AdapterError(f"--source {source}: {one_line(e)}") from None
    try:
        kmodel = kipoi.get_model(model, source=source, with_dataloader=dataloader is None)
    except AdapterError:
        raise
    except ImportError as e:
        from ..frameworks import framework_error
        err = framework_error(e, f"model {model}")
        msg = f"{type(e).__name__}: {one_line(e)}" if err is None else str(err)
        raise AdapterError(msg if msg.startswith(f"model {model}:") else f"model {model}: {msg}") from None
    except Exception as e:
        raise AdapterError(f"model {model}: {type(e).__name__}: {one_line(e)}") from None
    raw = read_model_yaml(kmodel.source_dir, model, src)
    where = os.path.join(model, "model.yaml") if source == "dir" else f"{model} (source {source}) model.yaml"
    spec = resolve_spec(kmodel.schema, tanger_section(raw, where), where)
    from .backends import make_backend
    backend = make_backend(kmodel, model, spec.call)

    dl_name = None
    if dataloader is None and dataloader_source is not None:
        raise AdapterError(f"--dataloader_source {dataloader_source}: given without --dataloader (the source "
                           "it names is where --dataloader is looked up)")
    if dataloader is None:
        Dl = kmodel.default_dataloader
        if Dl is None:
            raise AdapterError(f"model {model}: no default_dataloader; pass --dataloader")
        dl_name = getattr(Dl, "defined_as", None)
    else:
        dsrc = dataloader_source or ("dir" if os.path.isdir(dataloader) else "py")
        try:
            Dl = kipoi.get_dataloader_factory(dataloader, dsrc)
        except Exception as e:
            raise AdapterError(f"--dataloader {dataloader}: {type(e).__name__}: {one_line(e)}") from None
        dl_name = dataloader
    target = KipoiTarget(model, source, kmodel, backend.module, spec, Dl, dl_name, backend=backend).configure(raw, where)
    from .schema_check import check_section
    check_section(target.module, target.spec, where)     # for every op, predict included
    return target


def kipoi_predict_example(model_dir: str, output_file: str, batch_size: int = 32) -> None:
    """Run Kipoi's own ``pipeline.predict_example`` on a model dir's example files (what
    ``kipoi test -o`` writes), in this process, with the numpy-2 shim for Kipoi's HDF5 writer.

    Parameters
    ----------
    model_dir : str
    output_file : str
        The HDF5 file Kipoi writes.
    batch_size : int, default 32
    """
    import contextlib
    import io
    kipoi = import_kipoi()
    m = kipoi.get_model(model_dir, source="dir")
    with contextlib.redirect_stderr(io.StringIO()):   # Kipoi's tqdm bar
        m.pipeline.predict_example(batch_size=batch_size, output_file=output_file)
