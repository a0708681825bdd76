"""The plugin's own ``postprocessing: tanger:`` section of model.yaml, and
what kipoi_tanger knows about a model (:class:`TangerSpec`).

Kipoi 0.8.6 drops unknown model.yaml keys silently, so the section is read
from the raw yaml (:func:`read_model_yaml`, :func:`tanger_section`) and
combined with the model's schema (:func:`resolve_spec`). Every key is
optional::

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
        deeplift_rules:              # DeepLIFT rules by class name (rescale, maxpool,
          model.MyAct: rescale       # softmax, logsoftmax, linear or pkg.mod:function)
          model.Lambda: linear

Declared values win; what the section leaves out is taken from the dataloader's
arguments where their meaning is known (kipoiseq's ``SeqIntervalDl``:
``alphabet``, ``alphabet_axis``, ``dummy_axis``, ``auto_resize_len``; the
shared ``interval_onehot``: ``layout``, ``seq_len``; see
:mod:`~kipoi_tanger.adapter.loader_format`), then inferred from the schema
(``special_type: DNASeq``, an axis of size 4). The section, the dataloader and
the schema must agree: a conflict is one error line. What cannot be inferred
is recorded in ``TangerSpec.problems`` and stops only the ops that need it.

**Channel order.** ``TangerSpec.model_alphabet`` is the order of the model's
one-hot channels (or token values); ``TangerSpec.alphabet`` is the order ops
see and results files use, A, C, G, T for any ordering of those letters
(:func:`~kipoi_tanger.adapter.layout.canonical_alphabet`). The layout maps
between the two (:meth:`~kipoi_tanger.adapter.layout.Layout.with_alphabet`).
"""
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence, Tuple

from .errors import AdapterError, suggest
from .layout import DNA, Layout, canonical_alphabet, format_shape, infer_layout

__all__ = ["SECTION_KEYS", "REDUCE_OPS", "DNA", "NO_SEQUENCE", "TangerSpec", "read_model_yaml", "tanger_section",
           "parse_reduce", "resolve_spec", "schema_entries", "match_key", "special_type", "squeeze_trailing",
           "check_axes", "reduced_shape", "registered_ops"]

SECTION_KEYS = ("sequence_input", "layout", "alphabet", "output", "reduce", "extra_inputs", "ops", "deeplift_rules")
REDUCE_OPS = ("sum", "mean")
NO_SEQUENCE = "no input has special_type DNASeq, or an alphabet axis besides a length axis"


def registered_ops() -> Tuple[str, ...]:
    """Names of the ops kipoi_tanger runs (the registry in :mod:`kipoi_tanger.ops`).

    The section's ``ops:`` key is checked against them and defaults to all of
    them. The only reference from the plumbing up to the op objects, made
    lazily: the registry imports nothing heavy.
    """
    from ..ops import names
    return names()


def read_model_yaml(source_dir: str, model_name: Optional[str] = None, source=None) -> Optional[dict]:
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


def tanger_section(raw_yaml: Optional[dict], where: str = "model.yaml") -> dict:
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
            raise AdapterError(f"{where}: postprocessing: tanger: unknown key {k!r}{suggest(k, SECTION_KEYS)}; "
                               f"expected one of {', '.join(SECTION_KEYS)}")
    return dict(sec)


def parse_reduce(value, where: str = "postprocessing: tanger: reduce") -> Optional[dict]:
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
    layout: Layout = None                  # axes, and the channel order between alphabet and model_alphabet
    alphabet: tuple = DNA                  # the order ops and results files use (ACGT for DNA)
    model_alphabet: tuple = DNA            # the order of the model's one-hot channels / token values
    length: Optional[int] = None           # sequence length (schema or dataloader), None when not fixed
    output: object = None                  # None (single output), int or str
    output_shape: tuple = None
    reduce: dict = None
    extra_inputs: list = field(default_factory=list)
    ops: tuple = ()                        # the ops the model supports (default: all registered)
    target_call: str = "array"             # 'array' | 'list' | 'dict' (schema targets)
    target_keys: list = field(default_factory=list)
    target_names: list = field(default_factory=list)
    column_labels: list = field(default_factory=list)
    deeplift_rules: Optional[dict] = None  # {class name: rule name} as declared (see rules_from_names)
    loader: object = None                  # LoaderFormat of the dataloader, None when unknown
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
    def sequence_length(self) -> Optional[int]:
        """L from the schema shape of the sequence input or the dataloader's arguments (None when not fixed)."""
        return self.length

    @property
    def prediction_names(self) -> Optional[list]:
        """Dataset names of dict outputs (``preds/<name>``); None for arrays and lists (``preds/<i>``)."""
        if self.target_call == "dict" and self.target_keys:
            return [str(k) for k in self.target_keys]
        return None

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
            "model_alphabet": list(self.model_alphabet),
            "length": self.length,
            "output": self.output_name,
            "reduce": None if self.reduce is None else {"op": self.reduce["op"], "axis": list(self.reduce["axis"])},
            "extra_inputs": list(self.extra_inputs),
            "ops": list(self.ops),
            "deeplift_rules": None if self.deeplift_rules is None else dict(self.deeplift_rules),
            "inputs": [{"name": n, "shape": None if s is None else format_shape(s)}
                       for n, s in zip(self.input_names, self.input_shapes)],
            "targets": list(self.target_names),
            "provenance": dict(self.provenance),
            "problems": dict(self.problems),
        }


def schema_entries(node, unnamed: str = "inputs"):
    """(call, keys, names, schemas) of a Kipoi nested schema (ArraySchema, list or dict).

    A single array without a ``name`` is called ``unnamed`` (``inputs`` for
    inputs, ``preds`` for targets: the names Kipoi's files give them).
    """
    if node is None:
        return "array", [], [], []
    if isinstance(node, dict):
        keys = list(node.keys())
        return "dict", keys, [str(k) for k in keys], [node[k] for k in keys]
    if isinstance(node, (list, tuple)):
        return "list", list(range(len(node))), [getattr(s, "name", None) or str(i) for i, s in enumerate(node)], list(node)
    # a single array: key 0 (never None, which means "unknown")
    return "array", [0], [getattr(node, "name", None) or unnamed], [node]


def special_type(schema):
    st = getattr(schema, "special_type", None)
    return getattr(st, "value", st)


def match_key(value, keys, names, what, where):
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
    raise AdapterError(f"{where}: {what} {value!r} is not in the schema{suggest(value, names)}; "
                       f"expected one of {', '.join(map(str, names))}")


def _fits(layout: Layout, shape, A: int) -> bool:
    """True when a schema shape (``None`` = any size) can hold one example in ``layout``."""
    if shape is None:
        return True
    if len(shape) != len(layout.axes):
        return False
    want = {"A": A, "1": 1}
    return all(s is None or a not in want or s == want[a] for a, s in zip(layout.axes, shape))


def _letters(alphabet) -> str:
    return "".join(alphabet) if all(len(c) == 1 for c in alphabet) else str(list(alphabet))


def resolve_spec(schema, section: dict, where: str = "model.yaml", known_ops: Optional[Sequence[str]] = None,
                 loader=None) -> "TangerSpec":
    """Combine the model schema, the ``tanger`` section and the dataloader's format into a :class:`TangerSpec`.

    Declared values win; missing ones come from the dataloader's arguments
    (``loader``), then from the schema (``special_type: DNASeq``, an axis of
    size 4); what cannot be inferred is recorded in ``problems`` and only stops
    the ops that need it. Conflicts between the three are one AdapterError line.

    Parameters
    ----------
    schema : kipoi.specs.ModelSchema
    section : dict
        The ``postprocessing: tanger:`` section (:func:`tanger_section`).
    where : str
        How to name model.yaml in messages.
    known_ops : sequence of str, optional
        Op names the ``ops:`` key may list (default: the registry).
    loader : LoaderFormat, optional
        What the dataloader yields (:func:`~kipoi_tanger.adapter.loader_format.loader_format`).

    Returns
    -------
    TangerSpec
    """
    w = f"{where}: postprocessing: tanger"
    call, keys, names, schemas = schema_entries(getattr(schema, "inputs", None))
    shapes = [tuple(s.shape) if getattr(s, "shape", None) is not None else None for s in schemas]
    spec = TangerSpec(call=call, input_keys=keys, input_names=names, input_shapes=shapes)
    prov, problems = spec.provenance, spec.problems
    if loader is not None and len(keys) > 1:
        loader = None          # a one-array dataloader for a several-input model: say nothing
    spec.loader = loader
    # a conflict set by this run's own dataloader arguments is reported under their name
    run_set = set(loader.run_args) if loader is not None else set()
    lw = {k: loader.run_label if run_set & set(args) else where
          for k, args in (("alphabet", ("alphabet",)), ("layout", ("alphabet_axis", "dummy_axis", "layout")),
                          ("length", ("auto_resize_len", "seq_len")))}

    # alphabet (the model's one-hot order)
    alphabet = section.get("alphabet")
    if alphabet is not None:
        if isinstance(alphabet, str):
            alphabet = list(alphabet)
        if not isinstance(alphabet, (list, tuple)) or len(alphabet) < 2 or \
                not all(isinstance(c, str) and len(c) == 1 and not c.isspace() for c in alphabet) or \
                len(set(alphabet)) != len(alphabet):
            raise AdapterError(f"{w}: alphabet: expected a list of distinct single characters, got {alphabet!r}")
        alphabet = tuple(alphabet)
        if loader is not None and alphabet != loader.alphabet:
            raise AdapterError(f"{lw['alphabet']}: postprocessing: tanger: alphabet {_letters(alphabet)} conflicts "
                               f"with the dataloader's one-hot order {_letters(loader.alphabet)} "
                               f"({loader.provenance['alphabet']})")
        spec.model_alphabet, prov["alphabet"] = alphabet, "declared"
    elif loader is not None:
        spec.model_alphabet, prov["alphabet"] = loader.alphabet, f"from the dataloader: {loader.provenance['alphabet']}"
    else:
        spec.model_alphabet, prov["alphabet"] = DNA, "default"
    spec.alphabet = canonical_alphabet(spec.model_alphabet)
    A = len(spec.model_alphabet)

    # sequence input
    if "sequence_input" in section:
        spec.sequence_input = match_key(section["sequence_input"], keys, names, "sequence_input", w)
        prov["sequence_input"] = "declared"
    else:
        dna = [k for k, s in zip(keys, schemas) if special_type(s) == "DNASeq"]
        # a sequence has a length axis besides the alphabet: a (4,) feature vector is not one
        four = [k for k, sh in zip(keys, shapes) if sh is not None and len(sh) >= 2 and A in sh]
        if len(dna) == 1:
            spec.sequence_input, prov["sequence_input"] = dna[0], "inferred: the only input with special_type DNASeq"
        elif len(keys) == 1 and (dna or four):
            spec.sequence_input, prov["sequence_input"] = keys[0], f"inferred: the only input (shape has an axis of size {A})"
        elif len(four) == 1:
            spec.sequence_input, prov["sequence_input"] = four[0], f"inferred: the only input with an axis of size {A}"
        elif len(keys) == 1 and loader is not None:
            spec.sequence_input = keys[0]
            prov["sequence_input"] = "inferred: the only input, the dataloader's one-hot sequence"
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
    dl_layout = loader.layout if loader is not None and spec.sequence_input is not None else None
    if "layout" in section:
        spec.layout = Layout.parse(section["layout"])
        prov["layout"] = "declared"
        if dl_layout is not None and dl_layout.axes != spec.layout.axes:
            raise AdapterError(f"{lw['layout']}: postprocessing: tanger: layout {spec.layout} conflicts with the "
                               f"dataloader's {dl_layout} ({loader.provenance['layout']})")
        if seq_shape is not None and len(seq_shape) != len(spec.layout.axes):
            raise AdapterError(f"{w}: layout {spec.layout} has {len(spec.layout.axes)} axes but the schema "
                               f"shape of {spec.sequence_name!r} is {format_shape(seq_shape)}")
        if seq_shape is not None and not spec.layout.tokens:
            a = seq_shape[spec.layout.axes.index("A")]
            if a is not None and a != A:
                raise AdapterError(f"{w}: layout {spec.layout} puts the alphabet on an axis of size {a} in "
                                   f"{format_shape(seq_shape)}, but the alphabet has {A} letters")
    elif dl_layout is not None:
        if not _fits(dl_layout, seq_shape, A):
            raise AdapterError(f"{lw['layout']}: the dataloader yields one-hot sequences laid out {dl_layout} "
                               f"({loader.provenance['layout']}), but the schema shape of input "
                               f"{spec.sequence_name!r} is {format_shape(seq_shape)}")
        spec.layout = dl_layout
        from_schema, _ = infer_layout(seq_shape, A)
        if from_schema is not None and from_schema.axes == dl_layout.axes:
            prov["layout"] = (f"inferred from the schema shape {format_shape(seq_shape)}; the dataloader agrees "
                              f"({loader.provenance['layout']})")
        else:
            prov["layout"] = f"from the dataloader: {loader.provenance['layout']}" + (
                f"; fits the schema shape {format_shape(seq_shape)}" if seq_shape is not None else "")
    elif spec.sequence_input is not None:
        layout, why = infer_layout(seq_shape, A)
        if layout is None:
            prov["layout"] = "unknown"
            problems["layout"] = (f"cannot infer the layout of input {spec.sequence_name!r}: {why}; declare "
                                  f"layout (e.g. \"(L, A)\") under postprocessing: tanger")
        else:
            spec.layout = layout
            prov["layout"] = f"inferred from the schema shape {format_shape(seq_shape)}"
    else:
        prov["layout"] = "no sequence input" if prov["sequence_input"] == NO_SEQUENCE else "unknown"
    if spec.layout is not None:
        spec.layout = spec.layout.with_alphabet(spec.model_alphabet)

    # length
    schema_len = None
    if spec.layout is not None and seq_shape is not None and len(seq_shape) == len(spec.layout.axes):
        schema_len = seq_shape[spec.layout.length_axis()]
    dl_len = loader.length if dl_layout is not None else None
    if schema_len is not None and dl_len is not None and schema_len != dl_len:
        raise AdapterError(f"{lw['length']}: the dataloader yields sequences of length {dl_len} "
                           f"({loader.provenance['length']}), but the schema shape of input {spec.sequence_name!r} "
                           f"is {format_shape(seq_shape)}")
    if schema_len is not None:
        spec.length = schema_len
        prov["length"] = f"the schema shape {format_shape(seq_shape)}" + (
            f"; the dataloader agrees ({loader.provenance['length']})" if dl_len is not None else "")
    elif dl_len is not None:
        spec.length, prov["length"] = dl_len, f"from the dataloader: {loader.provenance['length']}"
    elif spec.layout is not None:
        prov["length"] = "not fixed (the schema and the dataloader leave it open)"

    # DeepLIFT rules by class name (resolved against the loaded model by the target)
    rules = section.get("deeplift_rules")
    if rules is not None:
        if not isinstance(rules, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in rules.items()):
            raise AdapterError(f"{w}: deeplift_rules: expected a mapping {{class name: rule name}}, e.g. "
                               f"{{model.MyAct: rescale, model.Lambda: linear}}, got {rules!r}")
        spec.deeplift_rules = dict(rules)
        prov["deeplift_rules"] = "declared"

    # outputs
    tcall, tkeys, tnames, tschemas = schema_entries(getattr(schema, "targets", None), unnamed="preds")
    spec.target_call, spec.target_keys, spec.target_names = tcall, tkeys, tnames
    tshapes = [tuple(s.shape) if getattr(s, "shape", None) is not None else None for s in tschemas]
    if "output" in section:
        spec.output = match_key(section["output"], tkeys, tnames, "output", w)
        prov["output"] = "declared"
    elif tcall == "array" or not tkeys:
        spec.output = None
        prov["output"] = "the model's only output"
    else:
        flat = [k for k, sh in zip(tkeys, tshapes) if sh is not None and len(squeeze_trailing(sh)) <= 1]
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
            check_axes(spec.reduce["axis"], spec.output_shape, f"{w}: reduce")

    extra = section.get("extra_inputs", [])
    if isinstance(extra, str):
        extra = [extra]
    if not isinstance(extra, (list, tuple)) or not all(isinstance(e, str) for e in extra):
        raise AdapterError(f"{w}: extra_inputs: expected a list of input names, got {extra!r}")
    spec.extra_inputs = list(extra)
    if extra:
        prov["extra_inputs"] = "declared"

    known = tuple(known_ops) if known_ops is not None else registered_ops()
    ops = section.get("ops")
    if ops is None:
        spec.ops = known
        prov["ops"] = "default (all)"
    else:
        if isinstance(ops, str):
            ops = [ops]
        if not isinstance(ops, (list, tuple)):
            raise AdapterError(f"{w}: ops: expected a list such as [predict, marginalize], got {ops!r}")
        for op in ops:
            if op not in known:
                raise AdapterError(f"{w}: ops: unknown op {op!r}{suggest(op, known)}; expected any of {', '.join(known)}")
        spec.ops = tuple(ops)
        prov["ops"] = "declared"
    return spec


def squeeze_trailing(shape):
    shape = list(shape)
    while shape and shape[-1] == 1:
        shape.pop()
    return tuple(shape)


def check_axes(axes, shape, where):
    n = len(shape)
    for a in axes:
        if not -n <= a < n:
            raise AdapterError(f"{where}: axis {a} is out of range for an output shaped {format_shape(shape)} "
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


