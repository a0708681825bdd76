"""What a model declares, checked against what it gets.

* :func:`check_section` — when a model is loaded, for every op: the parts of
  the ``postprocessing: tanger:`` section that the schema alone cannot vouch
  for (``extra_inputs`` name schema inputs or parameters of the module's
  ``forward``);
* :func:`check_batch` — the first batch of a run against the model's schema
  (``None`` is a wildcard), before any output is created: every input's
  per-example shape, and the sequence input against the layout and alphabet;
* :func:`check_outputs` — the model's first predictions against the schema's
  targets (their column labels and the names files give them rest on it).

Both raise one :class:`~kipoi_tanger.adapter.errors.AdapterError` line naming
the input, what is expected and what was found.
"""
import inspect
from typing import Mapping, Optional, Sequence

import numpy as np

from .errors import AdapterError, suggest
from .layout import format_shape

__all__ = ["check_section", "check_batch", "check_outputs", "shape_fits", "forward_parameters"]


def shape_fits(actual: Sequence[int], expected: Optional[Sequence]) -> bool:
    """True when ``actual`` has ``expected``'s rank and sizes (``None`` in ``expected``: any size)."""
    if expected is None:
        return True
    return len(actual) == len(expected) and all(e is None or int(e) == int(a) for a, e in zip(actual, expected))


def forward_parameters(module) -> Optional[list]:
    """Names ``module.forward`` takes by keyword, or None when it takes any (``**kwargs``) or cannot be read."""
    fwd = getattr(module, "forward", None)
    if fwd is None:
        return None
    try:
        sig = inspect.signature(fwd)
    except (TypeError, ValueError):
        return None
    names = []
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.append(p.name)
    return names


def check_section(module, spec, where: str = "model.yaml") -> None:
    """Check the section's ``extra_inputs`` against the schema and the module.

    Each must be an input of the schema other than the sequence, or a
    parameter of ``module.forward`` (passed by keyword); none may repeat.

    Parameters
    ----------
    module : torch.nn.Module or object
        The model's module (its ``forward`` signature is read).
    spec : TangerSpec
        The resolved section + schema.
    where : str
        The model.yaml, for the error line.

    Raises
    ------
    AdapterError
    """
    w = f"{where}: postprocessing: tanger: extra_inputs"
    extra = list(spec.extra_inputs or [])
    seen = set()
    params = forward_parameters(module) if any(n not in spec.input_names for n in extra) else None
    for name in extra:
        if name in seen:
            raise AdapterError(f"{w}: {name!r} is listed twice")
        seen.add(name)
        if spec.sequence_input is not None and name == spec.sequence_name:
            raise AdapterError(f"{w}: {name!r} is the sequence input; extra_inputs lists the other inputs "
                               "(those product's --args replace)")
        if name in spec.input_names or name in [str(k) for k in spec.input_keys]:
            continue
        if params is None:
            continue      # forward(**kwargs) (or unreadable): any name may be right
        if name not in params:
            schema = [n for n in spec.input_names if n != spec.sequence_name]
            known = schema + [p for p in params[1:] if p not in schema]
            label = f"{type(module).__name__}.forward"
            raise AdapterError(
                f"{w}: {name!r} is neither an input of the schema nor a parameter of {label}"
                f"{suggest(name, known)}; expected any of "
                f"{', '.join(known) or 'none (the model takes no other input)'}")


def _where(target) -> str:
    name = getattr(target, "dataloader_name", None) or getattr(getattr(target, "Dl", None), "__name__", None)
    return f"dataloader {name}" if name else "dataloader"


def check_batch(target, items: Mapping, where: Optional[str] = None) -> None:
    """Check one batch of model inputs (``{schema key: array}``) against the model's schema.

    Every input must be an array of ``N`` rows whose per-example shape fits the
    schema's (``None``: any size); the sequence input must also fit the layout
    (its rank, and ``len(alphabet)`` letters on the alphabet axis) and be numeric.

    Parameters
    ----------
    target : KipoiTarget
    items : mapping
        A batch's inputs by schema key (:meth:`KipoiTarget.input_items`).
    where : str, optional
        What produced the batch, for the error line (default: the dataloader).

    Raises
    ------
    AdapterError
        One line naming the input, the expected and the actual shape.
    """
    spec = target.spec
    where = where or _where(target)
    rows = None
    for i, key in enumerate(spec.input_keys):
        if key not in items:
            continue
        name = spec.input_names[i]
        arr = items[key]
        shape = getattr(arr, "shape", None)
        if shape is None:
            raise AdapterError(f"{where}: input {name!r} is a {type(arr).__name__}, expected an array of one row "
                               "per region")
        if len(shape) == 0:
            raise AdapterError(f"{where}: input {name!r} is a scalar, expected an array of one row per region")
        if rows is None:
            rows = shape[0]
        elif shape[0] != rows:
            raise AdapterError(f"{where}: input {name!r} has {shape[0]} rows but {spec.input_names[0]!r} has {rows}; "
                               "every input needs one row per region")
        per = tuple(int(s) for s in shape[1:])
        expected = spec.input_shapes[i] if i < len(spec.input_shapes) else None
        if not shape_fits(per, expected):
            hint = _hint(per, expected, key == spec.sequence_input)
            raise AdapterError(f"{where}: input {name!r} has shape {format_shape(per)} per example, but the model's "
                               f"schema expects {format_shape(expected)}{hint}")
        if key == spec.sequence_input and spec.layout is not None:
            _check_sequence(spec, name, arr, per, where)


def _hint(per, expected, is_sequence) -> str:
    if len(per) == len(expected) and sorted(map(str, per)) == sorted(map(str, expected)):
        return " (the same axes in another order: check the dataloader's layout)"
    if is_sequence and len(per) == len(expected):
        return " (check the dataloader's sequence length and layout)"
    return ""


def _check_sequence(spec, name, arr, per, where):
    layout = spec.layout
    dtype = getattr(arr, "dtype", None)
    if dtype is not None and not (np.issubdtype(np.dtype(str(dtype).replace("torch.", "")), np.number)
                                  or str(dtype).endswith("bool")):
        raise AdapterError(f"{where}: sequence input {name!r} has dtype {dtype}, expected numbers "
                           f"({'integer tokens' if layout.tokens else 'a one-hot array'})")
    if len(per) != len(layout.axes):
        raise AdapterError(f"{where}: sequence input {name!r} has shape {format_shape(per)} per example, but its "
                           f"layout {layout} has {len(layout.axes)} axes")
    if not layout.tokens:
        a = per[layout.axes.index("A")]
        if a != len(spec.alphabet):
            raise AdapterError(f"{where}: sequence input {name!r} has shape {format_shape(per)} per example: layout "
                               f"{layout} puts {a} letters on the alphabet axis, but the alphabet "
                               f"{''.join(spec.alphabet)} has {len(spec.alphabet)}")
    for j, ax in enumerate(layout.axes):
        if ax == "1" and per[j] != 1:
            raise AdapterError(f"{where}: sequence input {name!r} has shape {format_shape(per)} per example, but "
                               f"layout {layout} has a size-1 axis there")


def _squeezed(shape):
    return tuple(d for d in shape if d is None or int(d) != 1)


def check_outputs(target, y) -> None:
    """The per-example shape of each model output against its ``schema: targets:`` entry.

    ``y`` is a tensor/array or a list of them, in the schema's order. Size-1
    axes are ignored (``(N,)`` fits a declared ``(1,)``) and ``None`` is a
    wildcard; a different number of outputs than the schema declares is left
    to the code that names them.

    Raises
    ------
    AdapterError
        One line naming the output, the declared and the actual shape.
    """
    from .section import schema_entries
    call, keys, names, schemas = schema_entries(getattr(target.kmodel.schema, "targets", None), "preds")
    outs = list(y) if isinstance(y, (list, tuple)) else [y]
    if not schemas or len(outs) != len(schemas):
        return
    for name, schema, t in zip(names, schemas, outs):
        expected = getattr(schema, "shape", None)
        actual = tuple(int(d) for d in tuple(t.shape)[1:])
        if expected is None or shape_fits(actual, expected) or shape_fits(_squeezed(actual), _squeezed(expected)):
            continue
        raise AdapterError(f"model {target.name}: model.yaml schema: targets: {name}: declares shape {format_shape(tuple(expected))} "
                           f"per example, but the model outputs {format_shape(actual)}; fix the schema (column "
                           "labels and output names rest on it)")
