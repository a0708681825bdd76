"""Kipoi adapter: the only module that knows about Kipoi objects.

It loads a Kipoi model (a model dir with ``--source dir`` or a model of any
configured source), finds its torch module, reads the plugin's own
``postprocessing: tanger:`` section from the raw model.yaml (Kipoi 0.8.6 drops
unknown keys silently) and, where the section is silent, infers the sequence
input, its layout and the output to explain from the schema. It then wraps the
torch module so that ops can run on tangermeme's canonical one-hot ``(N, A, L)``
layout, whatever layout the model takes.

The ``tanger`` section (every key optional)::

    postprocessing:
      tanger:
        sequence_input: seq          # input name (or index) holding the sequence
        layout: "(A, L, 1)"          # axes after the batch axis: A alphabet, L length,
                                     # 1 a dummy axis; "(L)" = integer tokens
        alphabet: [A, C, G, T]
        output: counts               # output (name or index) to explain
        reduce: {op: sum, axis: -1}  # profile -> (batch, n_targets); or just `sum`/`mean`
        extra_inputs: [alpha, beta]  # forward() inputs the dataloader does not
                                     # provide (product --args)
        ops: [predict, deeplift-shap, marginalize, product]
"""
import difflib
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

OPS = ("predict", "deeplift-shap", "marginalize", "product")
SECTION_KEYS = ("sequence_input", "layout", "alphabet", "output", "reduce", "extra_inputs", "ops")
REDUCE_OPS = ("sum", "mean")
DNA = ("A", "C", "G", "T")
NO_SEQUENCE = "no input has special_type DNASeq, or an alphabet axis besides a length axis"


class AdapterError(ValueError):
    """A model, its yaml or its dataloader cannot be used as asked (one line)."""


def _suggest(word, choices):
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------
# layouts

class Layout:
    """How one example of the model's sequence input is laid out.

    ``axes`` names every non-batch axis: ``'A'`` (alphabet), ``'L'`` (length),
    ``'1'`` (a size-1 dummy axis). ``('L',)`` means integer tokens (index into
    the alphabet) rather than one-hot.

    Parameters
    ----------
    axes : sequence of str
        E.g. ``('L', 'A')`` for ``(L, 4)`` inputs, ``('A', 'L', '1')`` for Basset's
        ``(4, 600, 1)``.
    """

    def __init__(self, axes):
        axes = tuple(str(a).upper() for a in axes)
        if any(a not in ("A", "L", "1") for a in axes):
            raise AdapterError(f"layout: axes must be A, L or 1, got {axes}")
        if axes.count("L") != 1 or axes.count("A") > 1:
            raise AdapterError(f"layout: needs exactly one L axis and at most one A axis, got {axes}")
        self.axes = axes
        self.tokens = "A" not in axes
        if self.tokens and len(axes) != 1:
            raise AdapterError(f"layout: integer tokens take the form (L), got {axes}")
        # position of every canonical axis in the model's layout (batch = 0)
        names = self._named(axes)
        self._canon = ["A", "L"] + [n for n in names if n.startswith("1")]
        self._to_model = [0] + [1 + self._canon.index(n) for n in names] if not self.tokens else None
        self._from_model = ([0] + [1 + names.index(n) for n in self._canon]) if not self.tokens else None
        self._n_dummy = axes.count("1")

    @staticmethod
    def _named(axes):
        out, k = [], 0
        for a in axes:
            if a == "1":
                out.append(f"1{k}")
                k += 1
            else:
                out.append(a)
        return out

    @classmethod
    def parse(cls, value):
        """Parse ``"(A, L, 1)"``, ``"A L 1"``, ``"AL1"`` or a list of axis names."""
        if isinstance(value, (list, tuple)):
            return cls([str(v) for v in value])
        if not isinstance(value, str):
            raise AdapterError(f"layout: expected a string such as \"(L, A)\", got {value!r}")
        s = value.strip().strip("()[]").replace(",", " ")
        parts = s.split()
        if len(parts) == 1 and len(parts[0]) > 1:
            parts = list(parts[0])
        if not parts:
            raise AdapterError(f"layout: empty layout {value!r}; expected e.g. \"(L, A)\"")
        return cls(parts)

    def __str__(self):
        return "(" + ", ".join(self.axes) + ")"

    def __eq__(self, other):
        return isinstance(other, Layout) and other.axes == self.axes

    def to_model(self, X):
        """Canonical ``(N, A, L)`` one-hot → the model's layout."""
        if self.tokens:
            return X.argmax(dim=1)
        t = X
        for _ in range(self._n_dummy):
            t = t.unsqueeze(-1)
        return t.permute(*self._to_model)

    def from_model(self, x, alphabet_size=4):
        """The model's layout → canonical ``(N, A, L)`` (one-hot for tokens)."""
        import torch
        if self.tokens:
            x = torch.as_tensor(x).long()
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= alphabet_size):
                raise AdapterError(f"sequence input: token values must lie in [0, {alphabet_size}) to "
                                   f"map onto the alphabet, got [{int(x.min())}, {int(x.max())}]")
            return torch.nn.functional.one_hot(x, alphabet_size).permute(0, 2, 1).float()
        x = torch.as_tensor(x)
        t = x.permute(*self._from_model)
        return t.reshape(t.shape[0], t.shape[1], t.shape[2])

    def length_axis(self):
        return self.axes.index("L")


def infer_layout(shape, alphabet_size=4):
    """Infer a :class:`Layout` from a schema shape (batch axis excluded).

    Returns ``(layout, None)`` or ``(None, reason)``.
    """
    if shape is None:
        return None, "the schema gives no shape"
    shape = tuple(shape)
    four = [i for i, s in enumerate(shape) if s == alphabet_size]
    if len(four) != 1:
        return None, (f"shape {_fmt_shape(shape)} has {'no' if not four else 'several'} axes of "
                      f"size {alphabet_size}")
    axes = []
    for i, s in enumerate(shape):
        if i == four[0]:
            axes.append("A")
        elif s == 1:
            axes.append("1")
        else:
            axes.append("L")
    if axes.count("L") != 1:
        return None, f"shape {_fmt_shape(shape)} has no single length axis"
    return Layout(axes), None


def _fmt_shape(shape):
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


# ---------------------------------------------------------------------------
# the tanger section

def read_model_yaml(source_dir, model_name=None, source=None):
    """The raw model.yaml of a model as a dict (rendered for model groups), or None."""
    import yaml
    for fname in ("model.yaml", "model.yml"):
        path = os.path.join(source_dir, fname)
        if os.path.exists(path):
            try:
                with open(path) as fh:
                    return yaml.safe_load(fh) or {}
            except yaml.YAMLError as e:
                raise AdapterError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    # a member of a model group: render the group's template like Kipoi does
    local = getattr(source, "local_source", source)
    if local is not None and model_name is not None and hasattr(local, "get_group_name"):
        try:
            from kipoi.sources import LocalComponentGroup
            from kipoi_utils.utils import relative_path
            k = local.get_group_name(os.path.normpath(model_name), "model")
            grp = LocalComponentGroup.load(os.path.join(local.local_path, k), "model")
            rendered = grp.template.render(**grp.get_model_row(relative_path(os.path.normpath(model_name), k)))
            return yaml.safe_load(rendered) or {}
        except Exception:
            return None
    return None


def tanger_section(raw_yaml, where="model.yaml"):
    """Return the ``postprocessing: tanger:`` dict (``{}`` when absent); validate its keys."""
    if not raw_yaml:
        return {}
    post = raw_yaml.get("postprocessing")
    if post is None:
        return {}
    if not isinstance(post, dict):
        raise AdapterError(f"{where}: postprocessing: expected a mapping, got {type(post).__name__}")
    sec = post.get("tanger")
    if sec is None:
        return {}
    if not isinstance(sec, dict):
        raise AdapterError(f"{where}: postprocessing: tanger: expected a mapping, got {type(sec).__name__}")
    for k in sec:
        if k not in SECTION_KEYS:
            raise AdapterError(f"{where}: postprocessing: tanger: unknown key {k!r}{_suggest(k, SECTION_KEYS)}; "
                               f"expected one of {', '.join(SECTION_KEYS)}")
    return dict(sec)


def parse_reduce(value, where="postprocessing: tanger: reduce"):
    """``sum`` / ``mean`` / ``{op: sum, axis: -1}`` → ``{'op': ..., 'axis': (..,)}`` or None."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"op": value}
    if not isinstance(value, dict):
        raise AdapterError(f"{where}: expected 'sum', 'mean' or {{op: sum, axis: -1}}, got {value!r}")
    unknown = set(value) - {"op", "axis"}
    if unknown:
        raise AdapterError(f"{where}: unknown key {sorted(unknown)[0]!r}; expected op and axis")
    op = value.get("op")
    if op not in REDUCE_OPS:
        raise AdapterError(f"{where}: op must be one of {', '.join(REDUCE_OPS)}, got {op!r}")
    axis = value.get("axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    if not axes or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise AdapterError(f"{where}: axis must be an integer or a list of integers "
                           f"(axes of one example, batch axis excluded), got {axis!r}")
    return {"op": op, "axis": tuple(axes)}


@dataclass
class TangerSpec:
    """What kipoi_tanger knows about a model, and where each piece came from."""
    call: str                              # 'array' | 'list' | 'dict': how Kipoi calls the module
    input_keys: list                       # schema inputs: None (array), indices (list) or names (dict)
    input_names: list                      # display names of the schema inputs
    input_shapes: list
    sequence_input: object = None          # key into input_keys, or None when unknown
    layout: Layout = None
    alphabet: tuple = DNA
    output: object = None                  # None (single output), int or str
    output_shape: tuple = None
    reduce: dict = None
    extra_inputs: list = field(default_factory=list)
    ops: tuple = OPS
    target_call: str = "array"             # 'array' | 'list' | 'dict' (schema targets)
    target_keys: list = field(default_factory=list)
    target_names: list = field(default_factory=list)
    column_labels: list = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)   # op-blocking reasons, e.g. {'layout': '...'}

    @property
    def sequence_name(self):
        if self.sequence_input is None:
            return None
        return self.input_names[self.input_keys.index(self.sequence_input)]

    @property
    def no_sequence_input(self):
        """True when no input looks like a sequence at all (not merely ambiguous)."""
        return self.provenance.get("sequence_input") == NO_SEQUENCE

    @property
    def output_name(self):
        if self.output is None:
            return None
        return self.target_names[self.target_keys.index(self.output)] if self.output in self.target_keys \
            else str(self.output)

    def to_dict(self):
        return {
            "sequence_input": self.sequence_name,
            "no_sequence_input": self.no_sequence_input,
            "layout": None if self.layout is None else str(self.layout),
            "alphabet": list(self.alphabet),
            "output": self.output_name,
            "reduce": None if self.reduce is None else {"op": self.reduce["op"], "axis": list(self.reduce["axis"])},
            "extra_inputs": list(self.extra_inputs),
            "ops": list(self.ops),
            "inputs": [{"name": n, "shape": None if s is None else _fmt_shape(s)}
                       for n, s in zip(self.input_names, self.input_shapes)],
            "targets": list(self.target_names),
            "provenance": dict(self.provenance),
            "problems": dict(self.problems),
        }


def _schema_entries(node):
    """(call, keys, names, schemas) of a Kipoi nested schema (ArraySchema, list or dict)."""
    if node is None:
        return "array", [], [], []
    if isinstance(node, dict):
        keys = list(node.keys())
        return "dict", keys, [str(k) for k in keys], [node[k] for k in keys]
    if isinstance(node, (list, tuple)):
        return "list", list(range(len(node))), [getattr(s, "name", None) or str(i) for i, s in enumerate(node)], list(node)
    # a single array: key 0 (never None, which means "unknown")
    return "array", [0], [getattr(node, "name", None) or "inputs"], [node]


def _special_type(schema):
    st = getattr(schema, "special_type", None)
    return getattr(st, "value", st)


def _match_key(value, keys, names, what, where):
    """Resolve a declared name/index against schema keys."""
    if isinstance(value, bool):
        raise AdapterError(f"{where}: {what} must be a name or an index, got {value!r}")
    if isinstance(value, int):
        if not -len(keys) <= value < len(keys):
            raise AdapterError(f"{where}: {what} index {value} is out of range for {len(keys)} entries")
        return keys[value]
    if value in names:
        return keys[names.index(value)]
    if value in keys:
        return value
    raise AdapterError(f"{where}: {what} {value!r} is not in the schema{_suggest(value, names)}; "
                       f"expected one of {', '.join(map(str, names))}")


def resolve_spec(schema, section, where="model.yaml"):
    """Combine the model schema and the ``tanger`` section into a :class:`TangerSpec`.

    Declared values win; missing ones are inferred from the schema
    (``special_type: DNASeq``, an axis of size 4); what cannot be inferred is
    recorded in ``problems`` and only stops the ops that need it.
    """
    w = f"{where}: postprocessing: tanger"
    call, keys, names, schemas = _schema_entries(getattr(schema, "inputs", None))
    shapes = [tuple(s.shape) if getattr(s, "shape", None) is not None else None for s in schemas]
    spec = TangerSpec(call=call, input_keys=keys, input_names=names, input_shapes=shapes)
    prov, problems = spec.provenance, spec.problems

    # alphabet
    alphabet = section.get("alphabet")
    if alphabet is None:
        spec.alphabet, prov["alphabet"] = DNA, "default"
    else:
        if isinstance(alphabet, str):
            alphabet = list(alphabet)
        if not isinstance(alphabet, (list, tuple)) or len(alphabet) < 2 or \
                not all(isinstance(c, str) and len(c) == 1 and not c.isspace() for c in alphabet) or \
                len(set(alphabet)) != len(alphabet):
            raise AdapterError(f"{w}: alphabet: expected a list of distinct single characters, got {alphabet!r}")
        spec.alphabet, prov["alphabet"] = tuple(alphabet), "declared"
    A = len(spec.alphabet)

    # sequence input
    if "sequence_input" in section:
        spec.sequence_input = _match_key(section["sequence_input"], keys, names, "sequence_input", w)
        prov["sequence_input"] = "declared"
    else:
        dna = [k for k, s in zip(keys, schemas) if _special_type(s) == "DNASeq"]
        # a sequence has a length axis besides the alphabet: a (4,) feature vector is not one
        four = [k for k, sh in zip(keys, shapes) if sh is not None and len(sh) >= 2 and A in sh]
        if len(dna) == 1:
            spec.sequence_input, prov["sequence_input"] = dna[0], "inferred: the only input with special_type DNASeq"
        elif len(keys) == 1 and (dna or four):
            spec.sequence_input, prov["sequence_input"] = keys[0], f"inferred: the only input (shape has an axis of size {A})"
        elif len(four) == 1:
            spec.sequence_input, prov["sequence_input"] = four[0], f"inferred: the only input with an axis of size {A}"
        elif not dna and not four:
            prov["sequence_input"] = NO_SEQUENCE
            problems["sequence_input"] = (f"the model has no sequence input (no input has special_type DNASeq, "
                                          f"or two or more axes one of which has size {A}); declare "
                                          f"sequence_input and layout under postprocessing: tanger")
        else:
            prov["sequence_input"] = "unknown"
            problems["sequence_input"] = (f"cannot tell which input is the sequence ({len(dna)} DNASeq inputs, "
                                          f"{len(four)} with an axis of size {A}); declare sequence_input under "
                                          f"postprocessing: tanger")

    # layout
    seq_shape = shapes[keys.index(spec.sequence_input)] if spec.sequence_input in keys else None
    if "layout" in section:
        spec.layout = Layout.parse(section["layout"])
        prov["layout"] = "declared"
        if seq_shape is not None and len(seq_shape) != len(spec.layout.axes):
            raise AdapterError(f"{w}: layout {spec.layout} has {len(spec.layout.axes)} axes but the schema "
                               f"shape of {spec.sequence_name!r} is {_fmt_shape(seq_shape)}")
        if seq_shape is not None and not spec.layout.tokens:
            a = seq_shape[spec.layout.axes.index("A")]
            if a is not None and a != A:
                raise AdapterError(f"{w}: layout {spec.layout} puts the alphabet on an axis of size {a} in "
                                   f"{_fmt_shape(seq_shape)}, but the alphabet has {A} letters")
    elif spec.sequence_input is not None:
        layout, why = infer_layout(seq_shape, A)
        if layout is None:
            prov["layout"] = "unknown"
            problems["layout"] = (f"cannot infer the layout of input {spec.sequence_name!r}: {why}; declare "
                                  f"layout (e.g. \"(L, A)\") under postprocessing: tanger")
        else:
            spec.layout = layout
            prov["layout"] = f"inferred from the schema shape {_fmt_shape(seq_shape)}"
    else:
        prov["layout"] = "no sequence input" if prov["sequence_input"] == NO_SEQUENCE else "unknown"

    # outputs
    tcall, tkeys, tnames, tschemas = _schema_entries(getattr(schema, "targets", None))
    spec.target_call, spec.target_keys, spec.target_names = tcall, tkeys, tnames
    tshapes = [tuple(s.shape) if getattr(s, "shape", None) is not None else None for s in tschemas]
    if "output" in section:
        spec.output = _match_key(section["output"], tkeys, tnames, "output", w)
        prov["output"] = "declared"
    elif tcall == "array" or not tkeys:
        spec.output = None
        prov["output"] = "the model's only output"
    else:
        flat = [k for k, sh in zip(tkeys, tshapes) if sh is not None and len(_squeeze_trailing(sh)) <= 1]
        if len(flat) == 1:
            spec.output = flat[0]
            prov["output"] = f"inferred: the only output shaped (n_targets,) ({tnames[tkeys.index(flat[0])]!r})"
        else:
            prov["output"] = "unknown"
            problems["output"] = (f"the model has {len(tkeys)} outputs ({', '.join(tnames)}); declare which one "
                                  f"to explain with output under postprocessing: tanger (or pass --output)")
    if spec.output is not None or tcall == "array":
        i = tkeys.index(spec.output) if spec.output in tkeys else 0
        spec.output_shape = tshapes[i] if tshapes else None
        labels = list(getattr(tschemas[i], "column_labels", []) or []) if tschemas else []
        spec.column_labels = labels

    spec.reduce = parse_reduce(section.get("reduce"), f"{w}: reduce")
    if spec.reduce is not None:
        prov["reduce"] = "declared"
        if spec.output_shape is not None:
            _check_axes(spec.reduce["axis"], spec.output_shape, f"{w}: reduce")

    extra = section.get("extra_inputs", [])
    if isinstance(extra, str):
        extra = [extra]
    if not isinstance(extra, (list, tuple)) or not all(isinstance(e, str) for e in extra):
        raise AdapterError(f"{w}: extra_inputs: expected a list of input names, got {extra!r}")
    spec.extra_inputs = list(extra)
    if extra:
        prov["extra_inputs"] = "declared"

    ops = section.get("ops")
    if ops is None:
        spec.ops = OPS
        prov["ops"] = "default (all)"
    else:
        if isinstance(ops, str):
            ops = [ops]
        if not isinstance(ops, (list, tuple)):
            raise AdapterError(f"{w}: ops: expected a list such as [predict, marginalize], got {ops!r}")
        for op in ops:
            if op not in OPS:
                raise AdapterError(f"{w}: ops: unknown op {op!r}{_suggest(op, OPS)}; expected any of {', '.join(OPS)}")
        spec.ops = tuple(ops)
        prov["ops"] = "declared"
    return spec


def _squeeze_trailing(shape):
    shape = list(shape)
    while shape and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


def _check_axes(axes, shape, where):
    n = len(shape)
    for a in axes:
        if not -n <= a < n:
            raise AdapterError(f"{where}: axis {a} is out of range for an output shaped {_fmt_shape(shape)} "
                               "(axes count from 0 after the batch axis)")


def reduced_shape(shape, reduce):
    """Per-example shape after ``reduce`` (None stays None)."""
    if shape is None:
        return None
    if reduce is None:
        return tuple(shape)
    n = len(shape)
    drop = {a % n for a in reduce["axis"]}
    return tuple(s for i, s in enumerate(shape) if i not in drop)


# ---------------------------------------------------------------------------
# the torch wrapper


def _is_int_dtype(dtype):
    import torch
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def _adapted_module_class():
    import torch

    class _Adapted(torch.nn.Module):
        """Call a Kipoi model's torch module the way Kipoi does, from op inputs.

        ``forward(X, *args)``: ``X`` is the canonical ``(N, A, L)`` one-hot
        sequence (``canonical=True``) or the model's own sequence/first input;
        ``args`` fill ``arg_keys`` in order. The result is the model's output
        (dict outputs become a list in schema order), or, when ``output`` is set,
        the selected output with ``reduce`` applied, shaped ``(N, n_targets)``.
        """

        def __init__(self, module, spec, x_key, arg_keys, canonical, arg_dtypes=None, x_dtype=None,
                     select=False, reduce=None, output=None, keyword_extras=()):
            super().__init__()
            self.module = module
            self._spec = spec
            self._x_key = x_key
            self._arg_keys = list(arg_keys)
            self._canonical = canonical
            self._arg_dtypes = list(arg_dtypes or [None] * len(self._arg_keys))
            self._x_dtype = x_dtype
            self._select = select
            self._reduce = reduce
            self._output = output
            self._keyword_extras = set(keyword_extras)

        def _restore(self, t, dtype):
            # ops cast every input to the compute dtype; integer inputs (tokens,
            # indices) must reach the model as integers again
            if dtype is not None and _is_int_dtype(dtype) and t.dtype != dtype:
                return t.round().to(dtype)
            return t

        def forward(self, X, *args):
            spec = self._spec
            if len(args) != len(self._arg_keys):
                raise ValueError(f"expected {len(self._arg_keys)} extra inputs "
                                 f"({', '.join(map(str, self._arg_keys))}), got {len(args)}")
            if self._canonical:
                if spec.layout.tokens and bool((X.sum(dim=1) == 0).any()):
                    raise ValueError("sequence input: all-zero (N) columns cannot be mapped to integer tokens")
                x = spec.layout.to_model(X)
            else:
                x = self._restore(X, self._x_dtype)
            values = {self._x_key: x}
            for k, a, dt in zip(self._arg_keys, args, self._arg_dtypes):
                values[k] = self._restore(a, dt)
            y = self._call(values)
            if isinstance(y, dict):
                order = [k for k in spec.target_keys if k in y] or list(y)
                y = [y[k] for k in order] if not self._select else y
            if self._select:
                y = self._pick(y)
                if self._reduce is not None:
                    dims = sorted({(a % (y.ndim - 1)) + 1 for a in self._reduce["axis"]})
                    y = y.sum(dim=dims) if self._reduce["op"] == "sum" else y.mean(dim=dims)
                if y.ndim == 1:
                    y = y.unsqueeze(1)
            elif isinstance(y, tuple):
                y = list(y)
            return y

        def _pick(self, y):
            out = self._output
            if out is None:
                if isinstance(y, torch.Tensor):
                    return y
                raise ValueError("the model returns several outputs; choose one with --output "
                                 "or postprocessing: tanger: output")
            if isinstance(y, dict):
                return y[out] if out in y else list(y.values())[self._spec.target_keys.index(out)]
            if isinstance(y, (list, tuple)):
                i = out if isinstance(out, int) else self._spec.target_keys.index(out)
                return y[i]
            if isinstance(out, int) and out in (0, -1):
                return y
            raise ValueError(f"output {out!r}: the model returned a single tensor")

        def _call(self, values):
            spec = self._spec
            keys = spec.input_keys
            missing = [spec.input_names[i] for i, k in enumerate(keys) if k not in values]
            if missing:
                raise ValueError(f"model input(s) {', '.join(missing)} are not provided")
            extras = [k for k in values if k not in keys]
            pos_extra = [values[k] for k in extras if k not in self._keyword_extras]
            kw_extra = {k: values[k] for k in extras if k in self._keyword_extras}
            if spec.call == "dict":
                kw = {k: values[k] for k in keys}
                kw.update({k: values[k] for k in extras})
                return self.module(**kw)
            if spec.call == "list":
                return self.module(*[values[k] for k in keys], *pos_extra, **kw_extra)
            return self.module(values[keys[0]], *pos_extra, **kw_extra)

    return _Adapted


# ---------------------------------------------------------------------------
# loading


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


def resolve_example(value, base):
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


def _one_line(e):
    msg = str(e).strip()
    if isinstance(e, KeyError) and len(e.args) == 1:
        msg = f"missing key {e.args[0]!r}"
    first = msg.splitlines()[0] if msg else type(e).__name__
    lines = [l.strip() for l in msg.splitlines() if l.strip()]
    # Kipoi wraps yaml errors as "Unable to load file X into class Y.\nError: \n<reason>"
    if len(lines) > 1 and first.startswith("Unable to load file"):
        reason = lines[-1]
        return f"{first.rstrip('.')}: {reason}"
    return first


def _import_kipoi():
    import kipoi  # noqa: F401
    from ._compat import patch_kipoi_writers
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

    def require(self, op, explain=False, output=None):
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
            from ._deeplift_rules import build_rules, ruled_modules
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
            if red is not None and len(_squeeze_trailing(red)) > 1:
                name = self._output_label(out)
                raise AdapterError(
                    f"model {self.name}: output {name} has shape {_fmt_shape(shape)} per example; DeepLIFT/SHAP "
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
        return _match_key(output, spec.target_keys, spec.target_names, "output", "--output")

    def output_shape(self, out):
        spec = self.spec
        call, keys, names, schemas = _schema_entries(getattr(self.kmodel.schema, "targets", None))
        if not keys:
            return None
        i = keys.index(out) if out in keys else 0
        s = schemas[i]
        return tuple(s.shape) if getattr(s, "shape", None) is not None else None

    def resolve_target(self, target, output=None):
        """``--target`` as an index or a column label of the explained output."""
        if target is None:
            return 0
        if isinstance(target, int):
            return target
        if re.fullmatch(r"-?\d+", str(target)):
            return int(target)
        out = self.resolve_output(output)
        call, keys, names, schemas = _schema_entries(getattr(self.kmodel.schema, "targets", None))
        labels = []
        if keys:
            i = keys.index(out) if out in keys else 0
            labels = list(getattr(schemas[i], "column_labels", []) or [])
        if target in labels:
            return labels.index(target)
        raise AdapterError(f"--target: {target!r} is neither an index nor a column label of the output"
                           + (f"{_suggest(target, labels)}; labels are {', '.join(labels[:10])}"
                              + ("..." if len(labels) > 10 else "") if labels else " (it has no column_labels)"))

    # -- wrappers ----------------------------------------------------------

    def wrap(self, canonical, arg_keys=(), select=False, output=None, x_dtype=None, arg_dtypes=None,
             keyword_extras=()):
        """A torch module ``f(X, *args)`` for ops (see :func:`_adapted_module_class`)."""
        cls = _adapted_module_class()
        spec = self.spec
        x_key = spec.sequence_input if canonical else (spec.sequence_input if spec.sequence_input is not None
                                                       else spec.input_keys[0])
        out = self.resolve_output(output) if select else None
        return cls(self.module, spec, x_key, arg_keys, canonical, arg_dtypes=arg_dtypes, x_dtype=x_dtype,
                   select=select, reduce=spec.reduce if select else None, output=out,
                   keyword_extras=keyword_extras)

    def input_items(self, inputs):
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

    def dataloader_args(self, parsed=None, example=False):
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
                raise AdapterError(f"--example: cannot get the dataloader's example files: {_one_line(e)}") from None
            out = {k: resolve_example(v, Dl.source_dir) for k, v in kw.items()}
            missing = [k for k, a in args.items() if not a.optional and k not in out]
            if missing:
                raise AdapterError(f"--example: the dataloader gives no example for required argument(s) "
                                   f"{', '.join(missing)}")
            return out
        parsed = dict(parsed or {})
        for k in parsed:
            if k not in args:
                raise AdapterError(f"--dataloader_args: unknown argument {k!r}{_suggest(k, args)}; the dataloader "
                                   f"takes {', '.join(args) or 'no arguments'}")
        missing = [k for k, a in args.items() if not a.optional and k not in parsed]
        if missing:
            raise AdapterError(f"--dataloader_args: missing required argument(s) {', '.join(missing)} "
                               "(or pass --example to use the dataloader's example files)")
        return parsed

    def make_dataloader(self, kwargs):
        """Instantiate the dataloader; any failure becomes one AdapterError line."""
        try:
            return self.Dl(**kwargs)
        except AdapterError:
            raise
        except Exception as e:
            raise AdapterError(f"dataloader {self.dataloader_name or self.Dl.__name__}: {type(e).__name__}: "
                               f"{_one_line(e)}") from None

    def describe(self):
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


def no_rule_module(module):
    """The first submodule DeepLIFT/SHAP refuses (no rule, not linear), or None.

    Returns
    -------
    tuple or None
        ``(name, class label such as 'nn.GRU', reason)``.
    """
    import torch
    from ._deeplift_rules import REFUSED, build_rules, lookup_rule
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


def _find_torch_module(kmodel, name):
    import torch
    m = getattr(kmodel, "model", None)
    if isinstance(m, torch.nn.Module):
        return m
    if isinstance(kmodel, torch.nn.Module):
        return kmodel
    raise AdapterError(f"model {name}: kipoi_tanger needs a PyTorch model, got a {getattr(kmodel, 'type', None) or type(kmodel).__name__} "
                       "model (defined_as kipoi.model.PyTorchModel or kipoi_tanger.TorchModel)")


def load(model, source="dir", dataloader=None, dataloader_source=None):
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
    kipoi = _import_kipoi()
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
        raise AdapterError(f"--source {source}: {_one_line(e)}") from None
    try:
        kmodel = kipoi.get_model(model, source=source, with_dataloader=dataloader is None)
    except AdapterError:
        raise
    except Exception as e:
        raise AdapterError(f"model {model}: {type(e).__name__}: {_one_line(e)}") from None
    module = _find_torch_module(kmodel, model)
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
            raise AdapterError(f"--dataloader {dataloader}: {type(e).__name__}: {_one_line(e)}") from None
        dl_name = dataloader
    return KipoiTarget(model, source, kmodel, module, spec, Dl, dl_name)


def describe_json(target):
    """``kipoi-tanger info`` as a JSON string."""
    return json.dumps(target.describe(), indent=2, default=str)
