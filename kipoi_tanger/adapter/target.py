"""Loading a Kipoi model for kipoi_tanger: :func:`load` → :class:`KipoiTarget`.

A target holds the Kipoi model, its torch module, what the tanger section and
the schema say (:class:`~kipoi_tanger.adapter.section.TangerSpec`) and the
dataloader class. It answers the questions ops ask of a model: can this op
run (:meth:`KipoiTarget.require`), which output and target to explain, which
dataloader arguments are valid; and it builds the wrapper through which every
op calls the model (:meth:`KipoiTarget.wrap`).
"""
import os
import re
from typing import Optional

import numpy as np

from .errors import AdapterError, one_line, suggest
from .layout import format_shape
from .section import (match_key, read_model_yaml, reduced_shape, resolve_spec, schema_entries, squeeze_trailing,
                      tanger_section)
from .wrapper import adapted_module_class

__all__ = ["KipoiTarget", "load", "no_rule_module", "find_torch_module", "resolve_example", "import_kipoi",
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
        Its torch module.
    spec : TangerSpec
        Declared/inferred sequence input, layout, output, reduction, ops.
    Dl : type
        The dataloader class (the model's default or the ``dataloader`` override).
    """

    def __init__(self, name, source, kmodel, module, spec, Dl, dataloader_name=None):
        self.name = name
        self.source = source
        self.kmodel = kmodel
        self.module = module
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
                found = no_rule_module(self.module)
                if found is not None:
                    why = f"; its module contains {found[1]} ({found[0]!r}), and {found[2]}"
            raise AdapterError(f"model {self.name}: op {op!r} is not supported (postprocessing: tanger: ops "
                               f"declares {', '.join(spec.ops)}){why}")
        if op == "predict" and not explain:
            return
        for key in ("sequence_input", "layout"):
            if key in spec.problems:
                raise AdapterError(f"model {self.name}: {op} needs the sequence input: {spec.problems[key]}")
        if explain:
            # the op's own refusal, before any data is loaded (same rules as deep_lift_shap)
            from .._deeplift_rules import build_rules, ruled_modules
            try:
                ruled_modules(self.module, build_rules(), "deep_lift_shap")
            except ValueError as e:
                raise AdapterError(f"model {self.name}: {e}") from None
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
        return cls(self.module, spec, x_key, arg_keys, canonical, arg_dtypes=arg_dtypes, x_dtype=x_dtype,
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
        d["module"] = type(self.module).__name__
        d["dataloader"] = self.dataloader_name or getattr(self.Dl, "defined_as", None)
        d["dataloader_type"] = getattr(self.Dl, "type", None)
        d["dataloader_args"] = {k: {"optional": bool(a.optional),
                                    "doc": a.doc if isinstance(a.doc, str) else ""}
                                for k, a in (self.Dl.args or {}).items()}
        return d


def no_rule_module(module) -> Optional[tuple]:
    """The first submodule DeepLIFT/SHAP refuses (no rule, not linear), or None.

    Returns
    -------
    tuple or None
        ``(name, class label such as 'nn.GRU', reason)``.
    """
    import torch
    from .._deeplift_rules import REFUSED, build_rules, lookup_rule
    rules = build_rules()
    stack = [("", module)]
    while stack:
        name, m = stack.pop()
        if lookup_rule(rules, type(m)) is not None:
            continue      # a rule replaces its children's gradients
        if isinstance(m, REFUSED):
            cls = type(m)
            label = f"nn.{cls.__name__}" if getattr(torch.nn, cls.__name__, None) is cls else cls.__qualname__
            if isinstance(m, (torch.nn.RNNBase, torch.nn.RNNCellBase)):
                reason = "recurrent cells have no DeepLIFT rule"
            elif isinstance(m, torch.nn.Bilinear):
                reason = "bilinear layers have no DeepLIFT rule"
            else:
                reason = "attention has no DeepLIFT rule"
            return name or "<model>", label, reason
        stack.extend(reversed([(f"{name}.{n}" if name else n, c) for n, c in m.named_children()]))
    return None


def find_torch_module(kmodel, name: str):
    """The torch module of a loaded Kipoi model, or one AdapterError line naming what it is instead."""
    import torch
    m = getattr(kmodel, "model", None)
    if isinstance(m, torch.nn.Module):
        return m
    if isinstance(kmodel, torch.nn.Module):
        return kmodel
    raise AdapterError(f"model {name}: kipoi_tanger needs a PyTorch model, got a {getattr(kmodel, 'type', None) or type(kmodel).__name__} "
                       "model (defined_as kipoi.model.PyTorchModel or kipoi_tanger.TorchModel)")


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
    except Exception as e:
        raise AdapterError(f"model {model}: {type(e).__name__}: {one_line(e)}") from None
    module = find_torch_module(kmodel, model)
    raw = read_model_yaml(kmodel.source_dir, model, src)
    where = os.path.join(model, "model.yaml") if source == "dir" else f"{model} (source {source}) model.yaml"
    spec = resolve_spec(kmodel.schema, tanger_section(raw, where), where)

    dl_name = None
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
    return KipoiTarget(model, source, kmodel, module, spec, Dl, dl_name)


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
