"""What a model's dataloader says about the sequence it yields: alphabet, layout, length.

Most zoo models get their one-hot from kipoiseq's ``SeqIntervalDl``, configured
by arguments rather than by the schema: DeepSEA/beluga's ``default_args`` pass
``alphabet: AGCT`` (the channel order is not always ACGT), ``alphabet_axis: 0``
and ``dummy_axis: 1`` (``(4, 1, L)``), ``auto_resize_len: 2000``.
:func:`loader_format` reads those arguments for the dataloaders whose meaning
is known:

* kipoiseq's ``SeqIntervalDl`` (and subclasses): ``alphabet`` (default
  ``ACGT``), ``alphabet_axis`` (1), ``dummy_axis`` (None), ``auto_resize_len``
  (None: the BED widths), ``dtype``; the layout follows kipoiseq's rule
  (:func:`~kipoi_tanger.adapter.layout.kipoiseq_layout`);
* kipoi_tanger's ``interval_onehot`` (``IntervalOneHot``): ``layout`` (spelled
  like the tanger section, default ``"(A, L)"``), ``seq_len``, ``dtype``;
  always ``A, C, G, T``.

Each value comes from, first match wins: the run's own arguments
(``--dataloader_args`` or the example files), model.yaml's
``default_dataloader: default_args``, the dataloader.yaml ``default:``, the
class's own default; :attr:`LoaderFormat.provenance` says which. Other
dataloaders say nothing (None). :func:`~kipoi_tanger.adapter.section.resolve_spec`
combines this with the tanger section and the schema and refuses conflicts.
"""
import inspect
from dataclasses import dataclass, field
from typing import Mapping, Optional, Tuple

from .errors import AdapterError
from .layout import DNA, Layout, kipoiseq_layout

__all__ = ["LoaderFormat", "loader_format", "loader_kind", "KIPOISEQ", "INTERVAL_ONEHOT"]

KIPOISEQ = "kipoiseq.dataloaders.SeqIntervalDl"
INTERVAL_ONEHOT = "interval_onehot"
_ARGS = {KIPOISEQ: ("alphabet", "alphabet_axis", "dummy_axis", "auto_resize_len", "dtype"),
         INTERVAL_ONEHOT: ("layout", "seq_len", "dtype")}
_SHORT = {KIPOISEQ: "SeqIntervalDl", INTERVAL_ONEHOT: "interval_onehot"}


@dataclass
class LoaderFormat:
    """The sequence a known dataloader yields, as its arguments configure it.

    Attributes
    ----------
    kind : str
        :data:`KIPOISEQ` or :data:`INTERVAL_ONEHOT`.
    alphabet : tuple of str
        The one-hot channel order.
    layout : Layout
        Axes of one example (no channel order attached).
    length : int or None
        Sequence length (None: the BED widths, not fixed by an argument).
    dtype : object
        The ``dtype`` argument (None: the loader's default).
    provenance : dict
        ``{'alphabet'|'layout'|'length': "alphabet='AGCT' (model.yaml default_dataloader.default_args)"}``.
    run_args : tuple of str
        The arguments this run sets (``--dataloader_args``/example files) that change the format.
    run_label : str
        How to name the run's arguments in messages (``--dataloader_args``).
    """
    kind: str
    alphabet: Tuple[str, ...] = DNA
    layout: Optional[Layout] = None
    length: Optional[int] = None
    dtype: object = None
    provenance: dict = field(default_factory=dict)
    run_args: tuple = ()
    run_label: str = "--dataloader_args"


def loader_kind(Dl) -> Optional[str]:
    """:data:`KIPOISEQ`, :data:`INTERVAL_ONEHOT` or None for a dataloader class (or function)."""
    for cls in getattr(Dl, "__mro__", ()):
        module = getattr(cls, "__module__", "") or ""
        if cls.__name__ == "SeqIntervalDl" and module.startswith("kipoiseq"):
            return KIPOISEQ
        if cls.__name__ == "IntervalOneHot":
            return INTERVAL_ONEHOT
    return None


def _signature_defaults(Dl) -> dict:
    try:
        sig = inspect.signature(Dl.__init__ if inspect.isclass(Dl) else Dl)
    except (TypeError, ValueError):
        return {}
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def _yaml_default(Dl, k):
    """The dataloader.yaml ``default:`` of argument ``k``, or a sentinel when it gives none."""
    arg = (getattr(Dl, "args", None) or {}).get(k)
    d = getattr(arg, "default", None)
    if d is None or type(d).__name__ == "UNSPECIFIED":
        return _NONE
    return d


_NONE = object()


def _int(value, name, where, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AdapterError(f"{where}: {name}: expected a positive integer{' or null' if allow_none else ''}, "
                           f"got {value!r}")
    return value


def _axis(value, name, where):
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise AdapterError(f"{where}: {name}: expected 0, 1 or 2{' or null' if name == 'dummy_axis' else ''}, "
                           f"got {value!r}")
    return value


def _alphabet(value, where):
    letters = list(value) if isinstance(value, (str, list, tuple)) else None
    if not letters or len(letters) < 2 or not all(isinstance(c, str) and len(c) == 1 and not c.isspace()
                                                  for c in letters) or len(set(letters)) != len(letters):
        raise AdapterError(f"{where}: alphabet: expected distinct single letters such as ACGT or [A, G, C, T], "
                           f"got {value!r}")
    return tuple(letters)


def loader_format(Dl, raw_yaml: Optional[dict] = None, run_kwargs: Optional[Mapping] = None,
                  where: str = "model.yaml", run_label: str = "--dataloader_args") -> Optional[LoaderFormat]:
    """What dataloader ``Dl``, called with ``run_kwargs``, yields; None for a dataloader of unknown meaning.

    Parameters
    ----------
    Dl : type
        The dataloader class as Kipoi returns it (default arguments of model.yaml
        and dataloader.yaml already applied to its signature).
    raw_yaml : dict, optional
        The raw model.yaml (to tell ``default_dataloader: default_args`` apart
        from the dataloader's own defaults).
    run_kwargs : mapping, optional
        The arguments of this run (``--dataloader_args`` or the example files).
    where : str
        How to name model.yaml in provenance and errors.
    run_label : str
        How to name ``run_kwargs`` in provenance and errors.

    Returns
    -------
    LoaderFormat or None

    Raises
    ------
    AdapterError
        One line naming the argument (and where it was set) when a value is not
        what the dataloader takes.
    """
    kind = loader_kind(Dl)
    if kind is None:
        return None
    run_kwargs = dict(run_kwargs or {})
    defaults = _signature_defaults(Dl)
    dd = (raw_yaml or {}).get("default_dataloader") if isinstance(raw_yaml, dict) else None
    yaml_args = dd.get("default_args") if isinstance(dd, dict) else None
    yaml_args = yaml_args if isinstance(yaml_args, dict) else {}

    def get(k):
        """(value, where it was set)."""
        if k in run_kwargs:
            return run_kwargs[k], run_label
        if k in yaml_args:
            return yaml_args[k], f"{where} default_dataloader: default_args"
        d = _yaml_default(Dl, k)
        if d is not _NONE:
            return d, "the dataloader.yaml default"
        return defaults.get(k), f"{_SHORT[kind]}'s default"

    def note(*names):
        """``a=0, b=1 (where)``: values grouped by where they were set."""
        groups = {}
        for k in names:
            v, src = get(k)
            groups.setdefault(src, []).append(f"{k}={v!r}")
        return "; ".join(f"{', '.join(vals)} ({src})" for src, vals in groups.items())

    fmt = LoaderFormat(kind=kind, run_label=run_label)
    fmt.run_args = tuple(k for k in _ARGS[kind] if k in run_kwargs and k != "dtype")
    if kind == KIPOISEQ:
        a, src = get("alphabet")
        fmt.alphabet = _alphabet(a if a is not None else "ACGT", f"{src}")
        fmt.provenance["alphabet"] = note("alphabet")
        (aa, asrc), (da, dsrc) = get("alphabet_axis"), get("dummy_axis")
        aa = _axis(aa if aa is not None else 1, "alphabet_axis", asrc)
        da = _axis(da, "dummy_axis", dsrc)
        fmt.layout = kipoiseq_layout(aa, da, where=asrc if asrc == dsrc else f"{asrc} / {dsrc}")
        fmt.provenance["layout"] = note("alphabet_axis", "dummy_axis")
        n, nsrc = get("auto_resize_len")
        fmt.length = _int(n, "auto_resize_len", nsrc)
        fmt.provenance["length"] = note("auto_resize_len")
    else:
        fmt.alphabet = DNA
        fmt.provenance["alphabet"] = "interval_onehot encodes A, C, G, T"
        lay, lsrc = get("layout")
        try:
            fmt.layout = Layout.parse(lay if lay is not None else "(A, L)")
        except AdapterError as e:
            raise AdapterError(f"{lsrc}: {e}") from None
        if fmt.layout.tokens:
            raise AdapterError(f"{lsrc}: layout {fmt.layout} has no alphabet axis; interval_onehot writes one-hot")
        fmt.provenance["layout"] = note("layout")
        n, nsrc = get("seq_len")
        fmt.length = _int(n, "seq_len", nsrc)
        fmt.provenance["length"] = note("seq_len")
    fmt.dtype = get("dtype")[0]
    return fmt
