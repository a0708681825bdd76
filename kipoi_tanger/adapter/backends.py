"""How a loaded Kipoi model is called by ops, whatever its framework.

Every op calls the model through one torch module (the wrapper of
:mod:`~kipoi_tanger.adapter.wrapper`), and this module decides what that
torch module runs (:func:`make_backend` → :class:`Backend`):

* **PyTorch** models (``kipoi.model.PyTorchModel``, ``kipoi_tanger.TorchModel``):
  their own ``torch.nn.Module``, for every op.
* **Every other model** (``keras``, ``tensorflow``/``tensorflow2``,
  ``sklearn``, ``custom`` and ``defined_as`` classes): forward-only ops
  (predict, marginalize, product, ISM...) run through :class:`PredictOnBatch`,
  a ``torch.nn.Module`` whose forward hands the batch to the model object's
  own ``predict_on_batch`` as numpy arrays in the model's own structure
  (array, list or dict, as Kipoi does), with the dataloader's dtypes, and
  returns its outputs as tensors. It runs on the CPU in the current
  environment; other devices, and half-precision dtypes, are refused in one
  line.
* **Keras models built from standard layers** additionally get graph ops
  (DeepLIFT/SHAP): the Keras model is converted to torch
  (:func:`~kipoi_tanger.frameworks.keras_to_torch.keras_to_torch`) when a
  graph op is asked for, and the converted module runs inside
  :class:`CheckedConversion`, which compares it with the Keras model on the
  first batch it sees and refuses above tolerance. Other frameworks, and
  Keras models with a layer the converter cannot vouch for, refuse graph ops
  in one line naming the framework (or the layer and its class).

A custom class that wraps a torch or Keras model but overrides
``predict_on_batch`` is called through its ``predict_on_batch`` (what Kipoi
runs): its inner model may not be what it predicts with.
"""
import contextlib
import math
from typing import Any, Optional

import numpy as np

from .errors import AdapterError, one_line

__all__ = ["Backend", "make_backend", "predict_on_batch_module", "checked_conversion_module", "framework_of",
           "CHECK_RTOL", "CHECK_ATOL", "CHECK_ROWS"]

#: tolerance of the first-batch check of a Keras → torch conversion (per output:
#: ``max|torch - keras| <= CHECK_ATOL + CHECK_RTOL * max|keras|``)
CHECK_RTOL, CHECK_ATOL = 1e-5, 1e-6
#: rows of the first batch the conversion is checked on (at most)
CHECK_ROWS = 256

_TORCH_LOADERS = ("kipoi.model.PyTorchModel", "kipoi.model.OldPyTorchModel",
                  "kipoi_tanger.adapter.kipoi_model.TorchModel")
_PUBLIC = {"kipoi_tanger.adapter.kipoi_model.TorchModel": "kipoi_tanger.TorchModel",
           "kipoi_tanger.frameworks.keras.KerasModel": "kipoi_tanger.KerasModel",
           "kipoi_tanger.frameworks.sklearn.SklearnModel": "kipoi_tanger.SklearnModel",
           "kipoi_tanger.frameworks.tensorflow.TensorFlowModel": "kipoi_tanger.TensorFlowModel"}


def _class_path(cls) -> str:
    path = f"{cls.__module__}.{cls.__qualname__}"
    return _PUBLIC.get(path, path)


def _defining_class(kmodel, method="predict_on_batch") -> Optional[type]:
    """The class in ``type(kmodel).__mro__`` that defines ``method``."""
    for cls in type(kmodel).__mro__:
        if method in vars(cls):
            return cls
    return None


def _version(module_name: str) -> str:
    import importlib
    try:
        return str(getattr(importlib.import_module(module_name), "__version__", "?"))
    except Exception:
        return "?"


def framework_of(kmodel) -> tuple:
    """``(framework, detail)`` of a loaded Kipoi model.

    ``framework`` is ``pytorch``, ``keras``, ``sklearn``, ``tensorflow``,
    ``tensorflow2`` or ``custom``: the framework of the class whose
    ``predict_on_batch`` Kipoi calls. ``detail`` adds versions and the loader
    class, e.g. ``keras (tf-keras 2.21.0 / TensorFlow 2.21.0, loader kipoi_tanger.KerasModel)``.
    """
    cls = _defining_class(kmodel) or type(kmodel)
    path = f"{cls.__module__}.{cls.__qualname__}"
    loader = _class_path(type(kmodel))
    name = cls.__name__
    if any(f"{c.__module__}.{c.__qualname__}" == "torch.nn.modules.module.Module" for c in type(kmodel).__mro__):
        return "pytorch", f"pytorch (torch {_version('torch')}, module {loader})"
    if path in _TORCH_LOADERS:
        return "pytorch", f"pytorch (torch {_version('torch')}, loader {loader})"
    if name == "KerasModel" and cls.__module__ in ("kipoi.model", "kipoi_tanger.frameworks.keras"):
        inner = getattr(kmodel, "model", None)
        package = type(inner).__module__.split(".")[0] if inner is not None else "keras"
        label = {"tf_keras": "tf-keras"}.get(package, package)
        return "keras", (f"keras ({label} {_version(package)} / TensorFlow {_version('tensorflow')}, "
                         f"loader {loader})")
    if name == "SklearnModel" and cls.__module__ in ("kipoi.model", "kipoi_tanger.frameworks.sklearn"):
        est = getattr(kmodel, "model", None)
        what = f", {type(est).__name__}.{getattr(kmodel, 'predict_method', 'predict')}" if est is not None else ""
        return "sklearn", f"sklearn (scikit-learn {_version('sklearn')}{what}, loader {loader})"
    if name == "TensorFlow2Model" and cls.__module__ == "kipoi.model":
        return "tensorflow2", f"tensorflow2 (TensorFlow {_version('tensorflow')} SavedModel, loader {loader})"
    if name == "TensorFlowModel" and cls.__module__ in ("kipoi.model", "kipoi_tanger.frameworks.tensorflow"):
        return "tensorflow", (f"tensorflow (TensorFlow {_version('tensorflow')}, tf.compat.v1 checkpoint, "
                              f"loader {loader})")
    return "custom", f"custom ({loader})"


# -- the predict_on_batch shim ------------------------------------------------------------------

_CLASSES = {}


def _is_proxy(t) -> bool:
    import torch
    return isinstance(t, torch.fx.Proxy)


def predict_on_batch_module():
    """The :class:`PredictOnBatch` class (built on first use: importing this module imports no torch)."""
    if "pob" in _CLASSES:
        return _CLASSES["pob"]
    import torch

    class PredictOnBatch(torch.nn.Module):
        """A Kipoi model's own ``predict_on_batch`` as a torch module (forward passes only).

        ``forward(x)``, ``forward(*xs)`` or ``forward(**named)`` hands the
        model a numpy array, a list or a dict (``call``: the schema's
        ``array``/``list``/``dict``, as Kipoi does), under ``torch.no_grad()``,
        and returns its outputs as tensors (a list or dict of them for several
        outputs) on the inputs' device. Inputs reach the model with the
        dataloader's dtypes (the wrapper restores them through
        :meth:`restore_input`): ops cast batches to the module's dtype, which
        is float64 here (one float64 parameter of size 0) so that the cast
        loses nothing.

        Parameters
        ----------
        kmodel : kipoi.model.BaseModel
            The loaded model (anything with ``predict_on_batch``).
        call : {'array', 'list', 'dict'}
            How Kipoi passes the inputs.
        label : str
            How to name the model in errors (e.g. ``"model deepbind (keras)"``).
        """

        restores_input_dtypes = True

        def __init__(self, kmodel, call: str, label: str):
            super().__init__()
            object.__setattr__(self, "kmodel", kmodel)       # not a torch module: never moved, never hooked
            self.call = call
            self.label = label
            self.native = torch.nn.Parameter(torch.empty(0, dtype=torch.float64), requires_grad=False)

        def extra_repr(self):
            return f"{self.label}, call={self.call}"

        def _apply(self, fn, recurse=True):
            # .to(device) / .float() / .half() reach here: only the CPU, at the module's own precision
            try:
                probe = fn(torch.empty(0, dtype=torch.float64))
            except Exception as e:          # e.g. CUDA asked of a CPU-only torch
                raise AdapterError(f"device: {self.label} runs through its own predict_on_batch on the CPU, and "
                                   f"the device asked for is not available ({type(e).__name__}: {one_line(e)}); "
                                   "pass --device cpu (device='cpu')") from None
            if probe.device.type != "cpu":
                raise AdapterError(f"device {probe.device}: {self.label} runs through its own predict_on_batch "
                                   "on the CPU; pass --device cpu (device='cpu')")
            if probe.dtype != torch.float64:
                raise AdapterError(f"dtype {str(probe.dtype).replace('torch.', '')}: {self.label} runs through "
                                   "its own predict_on_batch on the dataloader's arrays; leave --dtype unset")
            return self

        def restore_input(self, t, dtype, what: str):
            """An op-supplied tensor with the dataloader's dtype ``dtype`` again.

            Ops cast batches to the compute dtype: float64 (this module's, lossless)
            or float32 (``--dtype float32``); anything else is refused.
            """
            if _is_proxy(t):
                raise TypeError(f"{self.label} runs through predict_on_batch, which torch.fx cannot trace")
            if t.is_floating_point() and t.dtype not in (torch.float64, torch.float32):
                raise AdapterError(f"dtype {str(t.dtype).replace('torch.', '')}: {self.label} runs through its "
                                   "own predict_on_batch on the dataloader's arrays; leave --dtype unset "
                                   "(or float32)")
            if dtype is None or t.dtype == dtype:
                return t
            if not dtype.is_floating_point and dtype != torch.bool and t.is_floating_point():
                return t.round().to(dtype)
            return t.to(dtype)

        @staticmethod
        def _numpy(t):
            if _is_proxy(t):
                raise TypeError("predict_on_batch cannot be traced by torch.fx")
            if isinstance(t, torch.Tensor):
                return t.detach().cpu().numpy()
            return t

        def _tensor(self, y, device):
            if isinstance(y, dict):
                return {k: self._tensor(v, device) for k, v in y.items()}
            if isinstance(y, (list, tuple)):
                return [self._tensor(v, device) for v in y]
            if isinstance(y, torch.Tensor):
                return y.detach().to(device)
            if hasattr(y, "numpy") and not isinstance(y, np.ndarray):      # e.g. a tf.Tensor
                y = y.numpy()
            a = np.asarray(y)
            if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
                raise AdapterError(f"{self.label}: predict_on_batch returned {type(y).__name__} of dtype "
                                   f"{a.dtype}; expected numeric arrays (or a list or dict of them)")
            if not a.flags.writeable or not a.flags.c_contiguous or any(s < 0 for s in a.strides):
                a = np.array(a, copy=True, order="C")
            return torch.from_numpy(a).to(device)

        def forward(self, *xs, **named):
            if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad
                                               for t in list(xs) + list(named.values())):
                raise AdapterError(f"{self.label} runs through its own predict_on_batch, which gives no "
                                   "gradients; DeepLIFT/SHAP and other gradient methods need a torch model")
            if named and xs:
                raise ValueError(f"{self.label}: inputs are passed either by position or by name, not both")
            if named:
                inputs = {k: self._numpy(v) for k, v in named.items()}
                first = next(iter(named.values()))
            elif self.call == "list" or len(xs) > 1:
                inputs = [self._numpy(v) for v in xs]
                first = xs[0]
            else:
                inputs = self._numpy(xs[0])
                first = xs[0]
            device = first.device if isinstance(first, torch.Tensor) else torch.device("cpu")
            with torch.no_grad():
                try:
                    y = self.kmodel.predict_on_batch(inputs)
                except (AdapterError, ImportError):
                    raise
                except Exception as e:
                    raise AdapterError(f"{self.label}: predict_on_batch raised {type(e).__name__}: "
                                       f"{one_line(e)}") from None
            return self._tensor(y, device)

    _CLASSES["pob"] = PredictOnBatch
    return PredictOnBatch


# -- the checked Keras -> torch conversion ---------------------------------------------------------

def checked_conversion_module():
    """The :class:`CheckedConversion` class (built on first use)."""
    if "checked" in _CLASSES:
        return _CLASSES["checked"]
    import copy

    import torch

    class CheckedConversion(torch.nn.Module):
        """A Keras model's torch conversion, checked against Keras on the first rows it runs.

        ``net`` (the converted :class:`~kipoi_tanger.frameworks.keras_to_torch.KerasGraph`,
        in the Keras layout) is a registered submodule, so ops move it, put it
        in eval mode and hook its layers (DeepLIFT's rules). Its forward calls
        with real tensors are checked until :data:`CHECK_ROWS` rows have been
        (the first batch: DeepLIFT's probe rows, then its examples and
        references): those rows run through the Keras model and through a
        private, hook-free copy of ``net`` (on the CPU, in float32, with
        autograd, autocast and torch function modes off, so an op's
        instrumentation never sees them). Any call above ``atol + rtol *
        max|keras|`` is refused (a
        :class:`~kipoi_tanger.frameworks.keras_to_torch.ConversionMismatchError`
        naming the model), and so is a ``torch.fx`` trace before the first
        check: nothing unchecked ever runs. :attr:`check` sums the checks up.
        """

        def __init__(self, keras_model, net, label: str, rtol: float = CHECK_RTOL, atol: float = CHECK_ATOL):
            super().__init__()
            self.net = net
            object.__setattr__(self, "_keras", keras_model)
            object.__setattr__(self, "_twin", copy.deepcopy(net).eval())
            self.label = label
            self.rtol, self.atol = rtol, atol
            self.checks = []
            self.rows_checked = 0

        def extra_repr(self):
            return f"{self.label}, rtol={self.rtol:g}, atol={self.atol:g}"

        @property
        def check(self):
            """The checks so far as one ConversionCheck (worst difference, its tolerance; None before any)."""
            if not self.checks:
                return None
            from ..frameworks.keras_to_torch import ConversionCheck
            worst = max(self.checks, key=lambda c: (c.max_abs_diff / c.tolerance) if c.tolerance > 0
                        else float("inf"))
            return ConversionCheck(max(c.max_abs_diff for c in self.checks), max(c.max_rel_diff for c in self.checks),
                                   max(c.scale for c in self.checks), worst.tolerance,
                                   all(c.ok for c in self.checks), sum(c.n_examples for c in self.checks))

        def _verify(self, xs, named, n):
            from ..frameworks.keras_to_torch import ConversionMismatchError, check_conversion

            def rows(t):
                return t.detach()[:n].to("cpu", torch.float32)

            if named:
                batch = {k: rows(v) for k, v in named.items()}
            else:
                batch = [rows(v) for v in xs]
                batch = batch[0] if len(batch) == 1 else batch
            with contextlib.ExitStack() as stack:
                stack.enter_context(torch._C.DisableTorchFunction())
                stack.enter_context(torch.no_grad())
                stack.enter_context(torch.autocast("cpu", enabled=False))
                check = check_conversion(self._keras, self._twin, batch, rtol=self.rtol, atol=self.atol)
            self.checks.append(check)
            self.rows_checked += check.n_examples
            if not check.ok:
                what = (f"max |diff| {check.max_abs_diff:.3g} > tolerance {check.tolerance:.3g} "
                        f"(max |y| {check.scale:.3g})")
                if math.isnan(check.max_abs_diff):
                    what = "the Keras model returns no finite output to compare with"
                elif math.isinf(check.max_abs_diff):
                    what = "their non-finite outputs (NaN/inf) differ"
                raise ConversionMismatchError(f"{self.label}: its torch conversion differs from the Keras model on "
                                              f"{check.n_examples} rows of the first batch: {what}; refusing to "
                                              "use it (forward-only ops still work)")

        def forward(self, *xs, **named):
            if self.rows_checked < CHECK_ROWS:
                tensors = list(xs) + list(named.values())
                if any(_is_proxy(t) for t in tensors):
                    if not self.checks:
                        raise TypeError(f"{self.label}: the conversion is checked on a first real batch before "
                                        "it can be traced")
                elif tensors and isinstance(tensors[0], torch.Tensor) and len(tensors[0]):
                    self._verify(xs, named, CHECK_ROWS - self.rows_checked)
            if named:
                return self.net(named)
            return self.net(*xs)

    _CLASSES["checked"] = CheckedConversion
    return CheckedConversion


# -- the backend ---------------------------------------------------------------------------------

class Backend:
    """How ops call a loaded Kipoi model (see the module docstring).

    Parameters
    ----------
    kmodel : kipoi.model.BaseModel
    name : str
        The model's name (for messages).
    call : {'array', 'list', 'dict'}
        How the schema's inputs are passed.

    Attributes
    ----------
    framework : str
        ``pytorch``, ``keras``, ``sklearn``, ``tensorflow``, ``tensorflow2`` or ``custom``.
    detail : str
        Framework, versions and loader class (``kipoi-tanger info``, the files' ``framework`` attribute).
    module : torch.nn.Module
        What forward-only ops call: the torch module, or a :class:`PredictOnBatch`.
    torch_native : bool
        The model is a torch module (every op runs on it, on any device).
    """

    def __init__(self, kmodel, name: str, call: str = "array"):
        import torch
        self.kmodel = kmodel
        self.name = name
        self.framework, self.detail = framework_of(kmodel)
        self._graph = None
        self._graph_error = None
        self._converted = False
        self._checked = None         # the CheckedConversion of the latest graph-op wrapper
        own = _defining_class(kmodel)
        own_path = f"{own.__module__}.{own.__qualname__}" if own is not None else ""
        inner = getattr(kmodel, "model", None)
        if isinstance(kmodel, torch.nn.Module):
            self.module = kmodel
        elif isinstance(inner, torch.nn.Module) and own_path in _TORCH_LOADERS:
            self.module = inner
        else:
            self.module = None
        self.torch_native = self.module is not None
        if self.torch_native:
            self._graph, self._converted = self.module, True
            return
        if not callable(getattr(kmodel, "predict_on_batch", None)):
            raise AdapterError(f"model {name}: a {type(kmodel).__name__} object has no predict_on_batch")
        self.label = f"model {name} ({self.framework})"
        self.module = predict_on_batch_module()(kmodel, call, self.label)
        if self.framework != "keras":          # only Keras models are converted
            self._converted = True
            self._graph_error = f"{self.framework} models have no torch graph"
            if isinstance(inner, torch.nn.Module):
                self._graph_error = (f"{_class_path(type(kmodel))} overrides predict_on_batch, so its torch "
                                     "module may not be what it predicts with")

    # -- graph ops (DeepLIFT/SHAP) ------------------------------------------------------------------

    @property
    def graph(self):
        """The torch module graph ops run on (the torch model, or a Keras model's conversion,
        made on first use), or None when there is none."""
        if not self._converted:
            self._converted = True
            self._graph = self._convert()
        return self._graph

    def _convert(self):
        from ..frameworks.keras_to_torch import UnsupportedLayerError, keras_to_torch
        keras_model = self.kmodel.model
        try:
            net = keras_to_torch(keras_model)
        except UnsupportedLayerError as e:
            msg = str(e)
            head = f"cannot convert Keras model {keras_model.name!r} to torch: "
            if msg.startswith(head):
                msg = msg[len(head):]
            msg = msg.split(" (no faithful torch equivalent;")[0]
            self._graph_error = f"{msg} has no faithful torch equivalent"
            return None
        except Exception as e:      # a Keras model the converter does not understand at all
            self._graph_error = f"its conversion to torch failed ({type(e).__name__}: {one_line(e)})"
            return None
        return net

    @property
    def graph_note(self) -> str:
        """Why graph ops can or cannot run (``kipoi-tanger info``)."""
        if self.torch_native:
            return "available (torch module)"
        if self.graph is not None:
            return "available (converted to torch, checked on the first batch)"
        return f"unavailable: {self._graph_error}"

    def require_graph(self, op: str, rules=None) -> None:
        """Refuse ``op`` (a graph op such as deeplift-shap) in one line unless it can run soundly.

        ``rules``: declared DeepLIFT rules (``additional_nonlinear_ops``) the
        converted module is checked with.
        """
        if self.graph is not None:
            if not self.torch_native:
                from .._deeplift_rules import build_rules, ruled_modules
                try:
                    ruled_modules(self.graph, build_rules(rules), "deep_lift_shap")
                except ValueError as e:
                    raise AdapterError(f"model {self.name}: {e}") from None
            return
        hint = "; forward-only ops (predict, marginalize, product...) still work"
        if self.framework == "keras":
            raise AdapterError(f"model {self.name}: {op} needs a torch graph, and this Keras model cannot be "
                               f"converted: {self._graph_error}{hint}")
        raise AdapterError(f"model {self.name}: {op} needs a torch graph, and this is a {self.detail} model: "
                           f"{self._graph_error}{hint}")

    def module_for(self, graph: bool):
        """The torch module to wrap: the graph (if any) for ``graph=True``, else :attr:`module`.

        A Keras conversion comes in a fresh :class:`CheckedConversion` each time
        (one per run), so that every run checks it on its own first batch.
        """
        if not graph or self.graph is None:
            return self.module
        if self.torch_native:
            return self.graph
        self._checked = checked_conversion_module()(self.kmodel.model, self.graph, f"model {self.name} (keras)")
        return self._checked

    def availability(self, ops) -> dict:
        """``{op name: 'available (...)' or 'unavailable: ...'}`` for op classes ``ops``."""
        out = {}
        for op in ops:
            if getattr(op, "needs_graph", False):
                out[op.name] = self.graph_note
            elif self.torch_native:
                out[op.name] = "available (torch module)"
            else:
                out[op.name] = "available (forward passes through the model's own predict_on_batch)"
        return out

    @property
    def conversion_check(self) -> Optional[dict]:
        """The first-batch check of the latest graph-op run on a Keras conversion (None before, and
        for other models): max |diff|, max relative diff, tolerance, rtol, atol, rows, ok."""
        checked = self._checked
        check = checked.check if checked is not None else None
        if check is None:
            return None
        return {"max_abs_diff": float(check.max_abs_diff), "max_rel_diff": float(check.max_rel_diff),
                "tolerance": float(check.tolerance), "rtol": float(checked.rtol), "atol": float(checked.atol),
                "n_examples": int(check.n_examples), "ok": bool(check.ok)}

    def file_attrs(self, uses_graph: bool = False) -> dict:
        """HDF5 attributes describing how the model was run.

        ``framework`` (:attr:`detail`), and for a graph op on a converted Keras
        model ``conversion_check`` (max |diff|, tolerance, rtol, atol, rows).
        """
        attrs = {"framework": self.detail}
        if uses_graph and not self.torch_native:
            check = self.conversion_check
            if check is not None:
                attrs["conversion_check"] = check
        return attrs


def make_backend(kmodel: Any, name: str, call: str = "array") -> Backend:
    """The :class:`Backend` of a loaded Kipoi model (see the module docstring)."""
    return Backend(kmodel, name, call)
