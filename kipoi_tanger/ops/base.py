"""Op objects: how one op runs over a Kipoi model, batch by batch.

An op object pairs one of the tangermeme-mirroring functions (``predict``,
``deep_lift_shap``, ``marginalize``, ``apply_product``...) with what a run
over a Kipoi model needs to know about it:

* its parameters, declared as :class:`Param` (name, kind, default, help,
  choices): the CLI turns them into options, :func:`kipoi_tanger.run.run` and
  ``kipoi-tanger test`` validate through them;
* their checks against the model (:meth:`Op.check`) and what is recorded in
  the output's ``parameters`` attribute (:meth:`Op.record`);
* how it sees the model (:attr:`Op.view`: the model's own inputs, canonical
  ``(N, A, L)`` one-hot, or one explained output) and whether it needs a
  torch graph (DeepLIFT) or only forward passes (:attr:`Op.needs_graph`);
* its per-batch call ``op(items) -> {dataset: ndarray}``;
* whether it writes tables (``.tsv``), whether consecutive batches can be
  grouped into one call, where its regions come from (:meth:`Op.batch_source`,
  the model's dataloader by default; :attr:`Op.own_regions` for an op that
  brings its own, such as variant-effect's VCF + FASTA windows: the CLI then
  offers no dataloader options and ``run()`` refuses them);
* the companion files a run writes without being asked
  (:meth:`Op.companion_files`) and how ``merge`` joins the shards' files of
  the op's own output kinds (:meth:`Op.output_joiners`).

Ops nest like tangermeme's ``func=``: an op with :attr:`Op.inner_ops` holds
an inner op (``Marginalize(inner=DeepLiftShap())``) and calls its
:meth:`Op.function`. The run loop drives any op through this interface only.
"""
import dataclasses
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from ..adapter.errors import RunError

__all__ = ["Param", "Op", "Perturbation", "OpError", "RunContext", "to_numpy", "name_outputs", "DATALOADER_OPTIONS"]

VIEWS = ("raw", "canonical", "explain")
#: the run options (CLI option: run() keyword) that choose and feed the model's dataloader
DATALOADER_OPTIONS = {"--dataloader": "dataloader", "--dataloader_source": "dataloader_source",
                      "--dataloader_args": "dataloader_args", "--example": "example", "--num_workers": "num_workers"}


class OpError(RunError):
    """An op's parameters do not fit (one line naming the option)."""


@dataclasses.dataclass(frozen=True)
class Param:
    """A declared op parameter.

    Parameters
    ----------
    name : str
        Keyword in the Python API and key in the ``parameters`` attribute.
    default : object
        Value when not given.
    help : str
        One line for ``--help``.
    kind : {'int', 'float', 'flag', 'str', 'list', 'any'}
        How the CLI parses it and how it is validated (``any``: the op checks it).
    minimum : number, optional
        Smallest accepted value (int/float).
    choices : tuple, optional
        Accepted values.
    flags : tuple of str, optional
        CLI option strings (default ``--<name>``).
    required : bool
        Required on the command line when the op runs on its own.
    metavar, expect : str, optional
        CLI metavar; what the error line says is expected.
    top_only : bool
        Not offered when the op runs nested in another (e.g. deeplift-shap's
        ``return_references``); it then keeps its default.
    record : bool
        Recorded under its name in the ``parameters`` attribute.
    """
    name: str
    default: Any = None
    help: str = ""
    kind: str = "str"
    minimum: Optional[float] = None
    choices: Optional[tuple] = None
    flags: tuple = ()
    required: bool = False
    metavar: Optional[str] = None
    expect: Optional[str] = None
    top_only: bool = False
    record: bool = True

    @property
    def option(self) -> str:
        """The CLI option that error lines name (``--n_shuffles``)."""
        return self.flags[0] if self.flags else f"--{self.name}"

    def _expected(self) -> str:
        if self.expect:
            return self.expect
        if self.kind == "int":
            return {1: "a positive integer", 0: "a non-negative integer"}.get(self.minimum, "an integer")
        if self.kind == "float":
            return "a non-negative number" if self.minimum == 0 else "a number"
        return {"str": "a string", "list": "a list"}.get(self.kind, "a value")

    def validate(self, value):
        """Check ``value`` (None passes when the default is None); return it normalised."""
        if value is None and self.default is None:
            return None
        bad = OpError(f"{self.option}: expected {self._expected()}, got {value!r}")
        if self.kind == "flag":
            return bool(value)
        if self.choices is not None and value not in self.choices:
            raise OpError(f"{self.option}: expected one of {', '.join(map(str, self.choices))}, got {value!r}")
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                    (self.minimum is not None and value < self.minimum):
                raise bad
            return int(value)
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or \
                    (self.minimum is not None and not value >= self.minimum):
                raise bad
            return float(value)
        if self.kind == "str" and not isinstance(value, str):
            raise bad
        if self.kind == "list" and not isinstance(value, (list, tuple)):
            raise bad
        return value


def _either(names):
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def to_numpy(t) -> np.ndarray:
    """A tensor (bfloat16 widened to float32) or array-like → numpy array."""
    import torch
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def name_outputs(prefix: str, y, names: Optional[List[str]] = None) -> Dict[str, np.ndarray]:
    """A tensor → ``{prefix: arr}``; a list → ``{prefix/<name or i>: arr}`` (Kipoi's naming)."""
    if isinstance(y, (list, tuple)):
        out = {}
        for i, t in enumerate(y):
            key = names[i] if names and i < len(names) and names[i] is not None else str(i)
            out[f"{prefix}/{key}"] = to_numpy(t)
        return out
    return {prefix: to_numpy(y)}


class RunContext:
    """What a bound op needs at run time: the model, the batch size, device and dtype.

    It builds (and caches) the model wrappers ops call, through
    :meth:`KipoiTarget.wrap`: the one seam where the model is called.

    Parameters
    ----------
    target : KipoiTarget
    batch_size : int
        Regions per dataloader batch and per forward pass.
    device, dtype : optional
        As every op takes them (None = auto / the model's dtype).
    """

    def __init__(self, target, batch_size: int, device=None, dtype=None):
        if device is None and not getattr(getattr(target, "backend", None), "torch_native", True):
            device = "cpu"      # predict_on_batch models run where their framework runs: auto is not CUDA
        self.target, self.batch_size, self.device, self.dtype = target, batch_size, device, dtype
        self.on_forward: Optional[Callable[[int], None]] = None   # rows of every forward batch (progress)
        self._wrappers = {}

    def common(self, batch_size: Optional[int] = None) -> dict:
        """``batch_size``, ``device`` (and ``dtype`` when set): the keywords every op takes."""
        kw = {"batch_size": batch_size or self.batch_size, "device": self.device}
        if self.dtype is not None:
            kw["dtype"] = self.dtype
        return kw

    def inputs(self, items: Mapping, canonical: bool):
        """``(X, args, arg_keys)`` of one batch: the sequence (canonical one-hot, or the model's
        own sequence/first input) and the model's other inputs, in schema order."""
        import torch
        spec = self.target.spec
        if canonical:
            x_key = spec.sequence_input
            X = self.target.canonical(items[x_key])
        else:
            x_key = spec.sequence_input if spec.sequence_input is not None else spec.input_keys[0]
            X = torch.from_numpy(np.ascontiguousarray(items[x_key]))
        keys = [k for k in spec.input_keys if k != x_key]
        return X, [torch.from_numpy(np.ascontiguousarray(items[k])) for k in keys], keys

    def wrap(self, view: str, arg_keys, x_dtype=None, arg_dtypes=None, keyword_extras=(), output=None):
        """The model as ``f(X, *args)`` for ``view`` (see :attr:`Op.view`), built once per run."""
        key = (view, tuple(arg_keys), tuple(keyword_extras), output)
        if key not in self._wrappers:
            w = self.target.wrap(canonical=view != "raw", arg_keys=arg_keys, select=view == "explain",
                                 output=output, x_dtype=x_dtype, arg_dtypes=arg_dtypes,
                                 keyword_extras=keyword_extras)
            if view != "explain":      # forward-only: count rows for the progress bar (explain wrappers get traced)
                w.register_forward_hook(self._forwarded)
            self._wrappers[key] = w
        return self._wrappers[key]

    def _forwarded(self, module, inputs, output):
        if self.on_forward is not None and inputs:
            self.on_forward(int(inputs[0].shape[0]))


class Op:
    """Base class of op objects (see the module docstring).

    Parameters
    ----------
    inner : Op, optional
        The op run inside this one (only for ops with :attr:`inner_ops`;
        default: :attr:`default_inner` with its defaults).
    **values
        Parameter values (see :attr:`params`).
    """

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    params: ClassVar[Tuple[Param, ...]] = ()
    inner_ops: ClassVar[Tuple[str, ...]] = ()     # ops this one can run as its func=
    default_inner: ClassVar[Optional[str]] = None
    inner_help: ClassVar[str] = ""
    needs_graph: ClassVar[bool] = False           # backpropagates through the model (DeepLIFT)
    explains: ClassVar[bool] = False              # always records the explained output in the file
    declare_when_nested: ClassVar[bool] = True    # a model's tanger ops must list it even when nested
    extra_outputs: ClassVar[Dict[str, Callable]] = {}   # output suffix -> writer(path, batches, attrs)
    identity_only: ClassVar[Tuple[str, ...]] = ()       # recorded keys that identify a run but stay out of files
    #: where the op's regions come from when it brings its own (:meth:`batch_source`; e.g. ``"--vcf and
    #: --fasta"``) and never reads the model's dataloader: the CLI then offers no dataloader options
    #: (:data:`DATALOADER_OPTIONS`) and ``run()`` refuses them. None: the model's dataloader.
    own_regions: ClassVar[Optional[str]] = None

    def __init__(self, inner: Optional["Op"] = None, **values):
        known = {p.name: p for p in self.params}
        unknown = [k for k in values if k not in known]
        if unknown:
            from ..adapter.errors import suggest
            raise OpError(f"{self.name}: unknown parameter {unknown[0]!r}{suggest(unknown[0], known)}; "
                          f"expected any of {', '.join(known) or 'none'}")
        self.values = {p.name: values.get(p.name, p.default) for p in self.params}
        if self.inner_ops:
            if inner is None:
                from . import get
                inner = get(self.default_inner)()
            if inner.name not in self.inner_ops:
                raise OpError(f"{self.inner_option(True)}: {self.name} runs {_either(self.inner_ops)}, "
                              f"got {inner.name!r}")
            inner.top = False
        elif inner is not None:
            raise OpError(f"{self.name} runs no inner op")
        self.inner = inner
        self.top = True
        self.resolved: Dict[str, Any] = {}
        self._ctx: Optional[RunContext] = None

    # -- declarations ------------------------------------------------------------------------

    @classmethod
    def inner_option(cls, top: bool) -> str:
        """The parameter naming the inner op: ``inner_op`` (``--op``) at the top, ``<name>_op`` nested."""
        return "inner_op" if top else f"{cls.name}_op"

    @classmethod
    def inner_param(cls, top: bool = True) -> Optional[Param]:
        """The declared choice of inner op (None for ops without one)."""
        if not cls.inner_ops:
            return None
        name = cls.inner_option(top)
        return Param(name, cls.default_inner, cls.inner_help if top else f"with --op {cls.name}: {cls.inner_help}",
                     choices=cls.inner_ops, flags=("--op",) if top else (f"--{name}",))

    @classmethod
    def cli_params(cls, top: bool = True) -> List[Param]:
        """Every parameter this op may take, its inner ops' included (first declaration wins).

        Nested parameters are never required on the command line: the op
        checks them when the inner op that needs them is chosen.
        """
        from . import get
        out, seen = [], set()

        def add(p, nested):
            if p.name in seen or (nested and p.top_only):
                return
            seen.add(p.name)
            out.append(dataclasses.replace(p, required=False) if nested or not top else p)

        for p in cls.params:
            add(p, not top)
        if cls.inner_ops:
            add(cls.inner_param(top), False)
            for name in cls.inner_ops:
                for p in get(name).cli_params(top=False):
                    add(p, True)
        return out

    @classmethod
    def from_params(cls, params: Mapping, top: bool = True) -> "Op":
        """Build the op (and its inner ops) from flat parameters, as the CLI and
        ``run(name, ..., **params)`` give them; values of ops not chosen are ignored."""
        from . import get
        own = {p.name: params[p.name] for p in cls.params if p.name in params and not (p.top_only and not top)}
        inner = None
        if cls.inner_ops:
            key = cls.inner_option(top)
            name = params.get(key) or cls.default_inner
            if name not in cls.inner_ops:
                raise OpError(f"{'--op' if top else '--' + key}: {cls.name} runs {_either(cls.inner_ops)}, "
                              f"got {name!r}")
            inner = get(name).from_params(params, top=False)
        return cls(inner=inner, **own)

    # -- the op tree ---------------------------------------------------------------------------

    def walk(self) -> Iterator["Op"]:
        """This op, then its inner op(s), outermost first."""
        op = self
        while op is not None:
            yield op
            op = op.inner

    @property
    def view(self) -> str:
        """How the op sees the model: ``'raw'`` (the model's own inputs), ``'canonical'``
        (``(N, A, L)`` one-hot sequences) or ``'explain'`` (canonical, one reduced output)."""
        return "raw"

    @property
    def writes_tables(self) -> bool:
        """True when the outputs are tables a ``.tsv`` can hold."""
        return False

    def output_files(self, outputs: List[str]) -> List[str]:
        """The files a run writes for the checked ``-o`` outputs: the outputs themselves, then the
        :meth:`companion_files` the op adds (variant-effect's ``OUT.skipped.tsv``). Each is refused when
        it exists (without ``--overwrite``), written by :attr:`extra_outputs` or as an ``.h5``/``.tsv``,
        and appears only once complete, like the outputs."""
        return list(outputs) + self.companion_files(outputs)

    @classmethod
    def companion_files(cls, outputs: List[str]) -> List[str]:
        """Files a run writes next to the ``-o`` outputs without being asked (none by default); ``merge``
        writes them for the merged outputs too."""
        return []

    @classmethod
    def output_joiners(cls) -> Dict[str, Callable]:
        """``{suffix: join(sources, path)}`` for the op's own output kinds (:attr:`extra_outputs`,
        :meth:`companion_files`): how ``merge`` joins the shards' files, in shard order, into the file a
        single run writes (``path`` keeps the output's suffix). ``.h5`` and ``.tsv`` tables are merge's own."""
        return {}

    @property
    def groupable(self) -> bool:
        """True when consecutive batches can be concatenated into one call (same forward batches)."""
        return False

    @property
    def forward_passes(self) -> int:
        """Forward passes per region (the progress bar counts a region once all are done)."""
        return 1

    def chunk(self) -> int:
        """Batch size of the calls this op makes (regions, or DeepLIFT pairs)."""
        return self._ctx.batch_size

    def explained_output(self):
        """The resolved output key explained by the op tree (None when nothing is explained)."""
        return next((op.resolved.get("output") for op in self.walk() if op.needs_graph), None)

    # -- checks against the model ----------------------------------------------------------------

    def resolve(self, target) -> None:
        """Check the op tree against the model: first that every op can run (outermost
        first), then each op's parameters (innermost first)."""
        ops = list(self.walk())
        explain = any(op.needs_graph for op in ops)
        output = next((op.values.get("output") for op in ops if op.needs_graph), None)
        if explain and hasattr(target, "require_graph"):
            # a model without a torch graph (sklearn, custom, an unconvertible Keras model) refuses first
            target.require_graph(next(op.name for op in ops if op.needs_graph))
        for op in ops:
            if op.top or op.declare_when_nested:
                target.require(op.name, explain=explain, output=output)
        for op in reversed(ops):
            op.check(target)

    def check(self, target) -> None:
        """Validate this op's own parameters (through :attr:`params`) against the model."""
        for p in self.params:
            if p.top_only and not self.top:
                self.values[p.name] = p.default
            else:
                self.values[p.name] = p.validate(self.values[p.name])

    def record(self, into: dict) -> None:
        """Add this op's parameters (every one that affects the results) to ``into``."""
        if self.inner is not None:
            into[self.inner_option(self.top)] = self.inner.name
        for p in self.params:
            if p.record:
                into[p.name] = self.values[p.name]

    def parameters(self) -> dict:
        """The ``parameters`` of the whole op tree (``output``/``target``: what is explained, None/0 if nothing)."""
        d = {"output": None, "target": 0}
        for op in self.walk():
            op.record(d)
        return d

    @property
    def uses_random_state(self) -> bool:
        return any("random_state" in op.values for op in self.walk())

    def set_random_state(self, seed: int) -> None:
        """Seed every op of the tree that draws random numbers (drawn once per run, reused on resume)."""
        for op in self.walk():
            if "random_state" in op.values:
                op.values["random_state"] = seed

    # -- running -------------------------------------------------------------------------------

    def dataloader_args(self, target, parsed: Optional[dict], example: bool) -> dict:
        """The validated arguments of this op's batch source (the model's dataloader by default;
        none for an op with :attr:`own_regions`)."""
        if self.own_regions:
            if parsed or example:
                raise OpError(self.regions_refusal(["--dataloader_args" if parsed else "--example"]))
            return {}
        return target.dataloader_args(parsed, example=example)

    @classmethod
    def regions_refusal(cls, options: List[str]) -> str:
        """The error line for dataloader ``options`` given to an op with :attr:`own_regions`."""
        return (f"{cls.name} reads its regions from {cls.own_regions}, not from the model's dataloader: drop "
                f"{', '.join(options)}")

    def batch_source(self, target, dataloader_args: dict):
        """Where the regions come from: the model's dataloader unless an op brings its own
        (a :class:`~kipoi_tanger.adapter.dataloading.BatchSource`)."""
        from ..adapter.dataloading import DataloaderSource
        return DataloaderSource(target, dataloader_args)

    def bind(self, ctx: RunContext) -> "Op":
        """Attach the run context to the op tree; returns self."""
        for op in self.walk():
            op._ctx = ctx
        return self

    def function(self) -> Tuple[Callable, dict]:
        """``(func, kwargs)``: the tangermeme-style function of this op and its keywords,
        for an outer op to call as its ``func=``."""
        raise NotImplementedError(f"{self.name} cannot run inside another op")

    def result_names(self) -> Optional[List[str]]:
        """Names of list outputs (``preds/<name>``), None for ``/<i>``."""
        return None

    def name_outputs(self, y) -> Dict[str, np.ndarray]:
        """The op function's result → ``{dataset: array}``."""
        raise NotImplementedError

    def compute(self, items: Mapping) -> Dict[str, np.ndarray]:
        """One batch: run :meth:`function` on the sequences with the model's other inputs as ``args``."""
        ctx = self._ctx
        X, args, keys = ctx.inputs(items, canonical=self.view != "raw")
        w = ctx.wrap(self.view, keys, x_dtype=X.dtype, arg_dtypes=[a.dtype for a in args],
                     output=self.explained_output())
        func, kwargs = self.function()
        y = func(w, X, args=args or None, **kwargs, **ctx.common(self.chunk()))
        return self.name_outputs(y)

    def __call__(self, items: Mapping) -> Dict[str, np.ndarray]:
        """The per-batch call: ``{input key: array}`` → ``{dataset: array with one row per region}``."""
        if self._ctx is None:
            raise RuntimeError(f"{self.name}: bind() the op to a run context first")
        return self.compute(items)

    def __repr__(self):
        inner = f"inner={self.inner!r}, " if self.inner is not None else ""
        vals = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"{type(self).__name__}({inner}{vals})"


class Perturbation(Op):
    """An op that runs an inner op (predict or deeplift-shap) on every region and on perturbed copies
    of it (marginalize, ablate, space): it sees the model as its inner op does, writes tables when
    the inner op does, and makes ``1 + n_variants`` inner calls per region."""

    inner_ops = ("predict", "deeplift-shap")
    default_inner = "predict"

    @property
    def n_variants(self) -> int:
        """Perturbed copies of each region (1: one motif inserted)."""
        return 1

    @property
    def view(self) -> str:
        return "explain" if self.inner.view == "explain" else "canonical"

    @property
    def writes_tables(self) -> bool:
        return self.inner.writes_tables

    @property
    def groupable(self) -> bool:
        # grouped batches give the inner op's forward passes the same rows (results are region-major)
        return self.inner.groupable

    @property
    def forward_passes(self) -> int:
        return (1 + self.n_variants) * self.inner.forward_passes

    def chunk(self) -> int:
        return self.inner.chunk()
