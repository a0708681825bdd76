"""``ism`` over a Kipoi model: in-silico saturation mutagenesis of every region,
:func:`kipoi_tanger.saturation_mutagenesis.saturation_mutagenesis` with
``raw_outputs=True`` called once per batch of regions.

Datasets (one per model output, ``y0/<name>`` and ``ism/<name>``, for several
outputs, Kipoi's naming as in ``preds``):

* ``y0`` ``(N, *output_shape)``: the predictions on the regions themselves;
* ``ism`` ``(N, A, W, *output_shape)``: the prediction with base ``a``
  (alphabet order, the file's ``alphabet`` attribute: A, C, G, T for DNA
  whatever the model's own channel order) at position ``start + w`` of the
  region, every other base unchanged. Entries of the base already present are
  the region's own prediction (``y0``), as in tangermeme; at an N (all-zero)
  column every base is predicted.

The window ``[start, end)`` (``--window START:END``, 0-based, END exclusive;
default the whole sequence) is recorded in ``parameters`` and, with the axes,
as root attributes: ``ism_start``, ``ism_end`` and ``ism_axes``
(``"region, base, position, output axes"``).

``--output NAME|INDEX`` mutagenizes one output only, ``--reduce`` also applies
the model's declared reduction (``postprocessing: tanger: reduce``) to it (a
profile summed over its length, say). Output picking and reduction are applied
inside the traced model, so the fast ISM path (only the positions an edit can
reach are recomputed; checked against full forwards on every batch, see
:mod:`kipoi_tanger.saturation_mutagenesis`) skips what is not asked for. Models
that are not torch modules (Keras, scikit-learn, custom ``predict_on_batch``)
run on full forward passes.

Memory: one batch's ``ism`` is held while it is computed, ``batch_size x A x W
x output size`` values (32 regions x 4 bases x 1000 positions x a 1000-long
profile is 0.5 GB in float32); narrow the window, pick an output or lower
``--batch_size`` for profile models.
"""
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

from .base import Op, OpError, Param, name_outputs, to_numpy

ISM_AXES = "region, base, position, output axes"


def parse_window(value, length: Optional[int]) -> Tuple[int, Optional[int]]:
    """``--window START:END`` (or a ``(start, end)`` pair) → ``(start, end)``.

    ``END`` may be left out (``100:``: to the end of the sequence; None when
    the length is not known yet). ``None`` is the whole sequence.

    Raises
    ------
    OpError
        One line naming ``--window`` and what is expected.
    """
    want = ("START:END with 0 <= START < END" + (f" <= {length}" if length is not None else "") +
            " (0-based, END exclusive)")
    if value is None:
        return 0, length
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d*)\s*", value)
        if not m:
            raise OpError(f"--window: expected {want}, got {value!r}")
        start, end = int(m.group(1)), (int(m.group(2)) if m.group(2) else None)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and \
            all(v is None or (isinstance(v, (int, np.integer)) and not isinstance(v, bool)) for v in value):
        start, end = (int(value[0]) if value[0] is not None else 0), (None if value[1] is None else int(value[1]))
    else:
        raise OpError(f"--window: expected {want}, got {value!r}")
    if end is None:
        end = length
    if start < 0 or (end is not None and not start < end) or \
            (length is not None and (end is None or end > length)):
        raise OpError(f"--window: {start}:{'' if end is None else end} is not a window of sequences of length "
                      f"{length if length is not None else 'L'}; expected {want}")
    return start, end


class OutputSelection:
    """Which model outputs an op computes, and the traceable ``func`` that picks and reduces them.

    Parameters
    ----------
    target : KipoiTarget
    output : str or int, optional
        ``--output``: one output (name or index); None = every output.
    reduce : bool
        Apply the model's declared reduction (``postprocessing: tanger: reduce``)
        to the chosen output (the declared/inferred one when ``output`` is None).

    Attributes
    ----------
    key : object
        The chosen output's schema key (None: every output, or the only one).
    names : list of str or None
        Dataset names of several outputs (``<prefix>/<name>``; None: ``/<i>``).
    labels : list of str
        Display names of the outputs the func returns (for VCF fields, messages).
    """

    def __init__(self, target, output=None, reduce: bool = False):
        from ..adapter.errors import AdapterError
        spec = target.spec
        self.target, self.reduce = target, None
        self.index: Optional[int] = None
        self.key = None
        self.single = False
        if output is None and not reduce:
            self.names = spec.prediction_names
            self.labels = [str(n) for n in spec.target_names] or ["preds"]
            return
        try:
            key = target.resolve_output(output)
        except AdapterError as e:
            msg = str(e)
            raise OpError(msg if msg.startswith("--output:") else f"--output: {msg}") from None
        self.key, self.single = key, True
        if key is not None and spec.target_call != "array":
            self.index = spec.target_keys.index(key)
        self.names = None
        name = spec.target_names[spec.target_keys.index(key)] if key in spec.target_keys else \
            (spec.target_names[0] if spec.target_names else "preds")
        self.labels = [str(name)]
        if reduce:
            if spec.reduce is None:
                raise OpError("--reduce: the model declares no reduction (postprocessing: tanger: reduce, e.g. "
                              "{op: sum, axis: -1})")
            self.reduce = {"op": spec.reduce["op"], "axis": list(spec.reduce["axis"])}
        self.rank = None
        shape = target.output_shape(key) if spec.target_keys else None
        if shape is not None:
            self.rank = len(shape)
        self._checked_rank = False

    @property
    def all_outputs(self) -> bool:
        return not self.single

    def record(self) -> dict:
        """What is recorded in ``parameters``: the chosen output's key and the reduction."""
        return {"model_output": self.key if self.single else None, "reduce": self.reduce}

    def _dims(self, rank: int) -> List[int]:
        for a in self.reduce["axis"]:
            if not -rank <= a < rank:
                raise OpError(f"--reduce: axis {a} of the declared reduction is out of range for output "
                              f"{self.labels[0]!r} of rank {rank}")
        return sorted({(a % rank) + 1 for a in self.reduce["axis"]})

    def func(self, model=None, X=None, args=()):
        """The func applied to the model's output (None when it returns every output as it is).

        With a reduction and an output rank the schema does not give, ``model``
        is run on one row of ``X`` to learn it.
        """
        if not self.single:
            return None
        index = self.index
        if self.reduce is None:
            if index is None:
                return None
            return lambda y: y[index] if isinstance(y, (list, tuple)) else y
        if self.rank is None and model is not None:
            import torch
            from .._base import model_param_dtype
            dt = model_param_dtype(model)
            with torch.no_grad():
                y = model(X[:1].to(dt), *[a[:1].to(dt) for a in args])
            y = y[index] if index is not None and isinstance(y, (list, tuple)) else y
            self.rank = y.ndim - 1
        if self.rank is None:
            raise OpError("--reduce: the output's shape is not in the schema; it is learned from the first batch")
        dims = self._dims(self.rank)
        op = self.reduce["op"]

        def pick(y):
            if index is not None and isinstance(y, (list, tuple)):
                y = y[index]
            return y.sum(dim=dims) if op == "sum" else y.mean(dim=dims)

        return pick


def _root_attrs_writer(extra):
    """A ``.h5`` writer (see :attr:`Op.extra_outputs`) that writes the file as the run loop
    does, with root attributes ``extra(attrs)`` added."""
    import itertools

    def write(path, batches, attrs):
        from ..run import h5io
        it = iter(batches)
        first = next(it, None)
        specs = {k: h5io.row_spec(v) for k, v in first.items()} if first is not None else {}
        attrs = dict(attrs, **extra(attrs))
        h5io.write_h5(path, specs, int(attrs["n_regions"]), attrs,
                      itertools.chain([first], it) if first is not None else iter(()))
    return write


def _ism_attrs(attrs):
    p = attrs.get("parameters") or {}
    return {"ism_axes": ISM_AXES, "ism_start": int(p.get("start", 0) or 0),
            "ism_end": -1 if p.get("end") is None else int(p["end"])}


class Ism(Op):
    """In-silico saturation mutagenesis: the model's predictions for every single-base substitution
    in a window of every region (``y0`` and ``ism``, see the module docstring)."""

    name = "ism"
    help = "in-silico saturation mutagenesis: predictions for every single-base substitution in a window"
    params = (
        Param("window", None, "positions to mutate, START:END (0-based, END exclusive; default: the whole "
              "sequence)", kind="any", metavar="START:END", record=False),
        Param("output", None, "mutagenize only this model output (name or index; default: every output)",
              kind="any", metavar="NAME|INDEX", record=False),
        Param("reduce", False, "apply the model's declared reduction (postprocessing: tanger: reduce) to --output",
              kind="flag", record=False),
    )
    extra_outputs = {".h5": _root_attrs_writer(_ism_attrs), ".hdf5": _root_attrs_writer(_ism_attrs)}

    @property
    def view(self) -> str:
        return "canonical"

    @property
    def forward_passes(self) -> int:
        return 1

    def check(self, target) -> None:
        super().check(target)
        spec = target.spec
        self.resolved["window"] = parse_window(self.values["window"], spec.sequence_length)
        self.selection = OutputSelection(target, self.values["output"], self.values["reduce"])
        self.resolved["func"] = None

    def record(self, into: dict) -> None:
        super().record(into)
        start, end = self.resolved["window"]
        into["start"], into["end"] = start, end
        into.update(self.selection.record())

    def result_names(self) -> Optional[list]:
        return self.selection.names

    def _window(self, L: int) -> Tuple[int, int]:
        start, end = self.resolved["window"]
        if end is None or end > L or start >= L:
            # a model whose length the schema does not fix: checked on every batch
            start, end = parse_window(self.values["window"], L)
        return start, end

    def _wrapper(self, keys, x_dtype, arg_dtypes):
        # built here rather than with RunContext.wrap: that one carries a forward hook (the
        # progress bar of grouped ops), which the fast ISM engine refuses to trace past
        cache = self.__dict__.setdefault("_wrappers", {})
        key = (tuple(keys), x_dtype, tuple(arg_dtypes))
        if key not in cache:
            cache[key] = self._ctx.target.wrap(canonical=True, arg_keys=keys, x_dtype=x_dtype,
                                               arg_dtypes=arg_dtypes)
        return cache[key]

    def compute(self, items) -> Dict[str, np.ndarray]:
        from ..saturation_mutagenesis import saturation_mutagenesis
        ctx = self._ctx
        X, args, keys = ctx.inputs(items, canonical=True)
        w = self._wrapper(keys, X.dtype, [a.dtype for a in args])
        if self.resolved.get("func") is None:
            self.resolved["func"] = (self.selection.func(w, X, args),)
        func = self.resolved["func"][0]
        start, end = self._window(X.shape[-1])
        res = saturation_mutagenesis(w, X, args=args or None, start=start, end=end, raw_outputs=True,
                                     func=func, **ctx.common())
        return self.name_outputs(res)

    def name_outputs(self, y) -> Dict[str, np.ndarray]:
        names = self.result_names()
        out = name_outputs("y0", y.y0, names)
        out.update(name_outputs("ism", y.y_hat, names))
        return {k: to_numpy(v) for k, v in out.items()}
