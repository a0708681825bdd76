"""``kipoi_tanger.TorchModel``: a Kipoi model class for PyTorch modules.

Use it in model.yaml as ``defined_as: kipoi_tanger.TorchModel`` with the same
``args`` as ``kipoi.model.PyTorchModel``. Compared with Kipoi's class it loads
the weights with ``weights_only=True`` and ``map_location`` (GPU-saved weights
load on CPU-only hosts), predicts under ``torch.no_grad()`` (Kipoi builds an
autograd graph for every batch), and lets the model.yaml (or the environment
variable ``KIPOI_TANGER_DEVICE``) pick the device. It works with plain
``kipoi predict`` / ``kipoi test`` and with every ``kipoi-tanger`` op.
"""
import os

import numpy as np
from kipoi.model import BaseModel


def _load_module_file(path):
    from kipoi_utils.utils import load_module
    if not os.path.exists(path):
        raise FileNotFoundError(f"module_file: {path} does not exist")
    return load_module(path)


def build_module(module_class=None, module_kwargs=None, module_obj=None, module_file=None):
    """Instantiate the torch module described by PyTorchModel-style args."""
    import yaml
    from kipoi_utils.utils import load_obj

    if (module_obj is None) == (module_class is None):
        raise ValueError("model.yaml args: give exactly one of module_class and module_obj")
    name = module_class if module_class is not None else module_obj
    if module_file is not None:
        mod = _load_module_file(module_file)
        if not hasattr(mod, name):
            raise ValueError(f"model.yaml args: {module_file} defines no {name!r}")
        obj = getattr(mod, name)
    else:
        obj = load_obj(name)
    if module_class is None:
        return obj
    kwargs = module_kwargs or {}
    if isinstance(kwargs, str):
        kwargs = yaml.safe_load(kwargs) or {}
    if not isinstance(kwargs, dict):
        raise ValueError(f"model.yaml args: module_kwargs must be a mapping, got {type(kwargs).__name__}")
    return obj(**kwargs)


class TorchModel(BaseModel):
    """Kipoi model wrapping a ``torch.nn.Module`` with a state_dict on disk.

    Parameters
    ----------
    weights : str
        Path to a ``state_dict`` saved with ``torch.save`` (loaded with
        ``weights_only=True``; the model dir is the working directory).
    module_class : str, optional
        Name of the module class in ``module_file`` (or a dotted import path).
    module_kwargs : dict or str, optional
        Keyword arguments for ``module_class`` (a mapping or a YAML string).
    module_obj : str, optional
        Name of a module *instance* in ``module_file`` instead of a class.
    module_file : str, optional
        Python file defining ``module_class``/``module_obj``.
    device : str, optional
        ``auto`` (default: CUDA when available, else CPU), ``cpu``, ``cuda``,
        ``cuda:1``... ``KIPOI_TANGER_DEVICE`` overrides it.
    strict : bool, default True
        Passed to ``load_state_dict``.
    """

    MODEL_PACKAGE = "torch"   # Kipoi checks that dependencies mention it ("pytorch" matches)

    def __init__(self, weights, module_class=None, module_kwargs=None, module_obj=None, module_file=None,
                 device="auto", strict=True):
        import torch
        from .._base import resolve_device

        device = os.environ.get("KIPOI_TANGER_DEVICE") or device
        self.device = resolve_device(None if device in (None, "auto") else device)
        self.model = build_module(module_class, module_kwargs, module_obj, module_file)
        if not isinstance(self.model, torch.nn.Module):
            raise ValueError(f"model.yaml args: {module_class or module_obj} is not a torch.nn.Module")
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        self.model.load_state_dict(state, strict=strict)
        self.model.to(self.device)
        self.model.eval()

    def _to_torch(self, x):
        import torch
        if isinstance(x, np.ndarray):
            if any(s < 0 for s in x.strides):
                x = x.copy()
            return torch.from_numpy(x).to(self.device)
        if isinstance(x, dict):
            return {k: self._to_torch(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [self._to_torch(v) for v in x]
        raise ValueError(f"inputs: expected a numpy array, or a list or dict of them, got {type(x).__name__}")

    @staticmethod
    def _to_numpy(y):
        import torch
        if isinstance(y, torch.Tensor):
            return y.detach().cpu().numpy()
        if isinstance(y, dict):
            return {k: TorchModel._to_numpy(v) for k, v in y.items()}
        if isinstance(y, (list, tuple)):
            return [TorchModel._to_numpy(v) for v in y]
        raise ValueError(f"model output: expected a tensor, or a list/tuple/dict of tensors, got {type(y).__name__}")

    def predict_on_batch(self, x):
        """Predict one batch the way Kipoi maps inputs: array → ``model(x)``,
        list → ``model(*x)``, dict → ``model(**x)``; under ``torch.no_grad()``."""
        import torch
        t = self._to_torch(x)
        with torch.no_grad():
            if isinstance(t, dict):
                y = self.model(**t)
            elif isinstance(t, list):
                y = self.model(*t)
            else:
                y = self.model(t)
        return self._to_numpy(y)
