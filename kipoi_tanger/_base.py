"""Conventions shared by every op: device and dtype resolution, autocast,
model-state restoration and argument validation.

Every op in kipoi_tanger goes through these helpers so that ``device=None``,
``dtype=None`` and the restoration of the model's device and train/eval state
behave the same way everywhere.
"""
import contextlib

import torch


def resolve_device(device=None):
    """Return a ``torch.device``: ``None`` means CUDA when available, else CPU."""
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    return torch.device(device)


def resolve_dtype(model, dtype=None):
    """Return the compute dtype: ``None`` means the dtype of the model's first
    floating parameter (float32 for a parameter-free model); a string is looked
    up on ``torch`` (``'bfloat16'`` → ``torch.bfloat16``)."""
    if dtype is None:
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"dtype: unknown torch dtype {dtype!r}")
        return resolved
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype: expected a torch.dtype, a string or None, got {dtype!r}")
    return dtype


def model_param_dtype(model):
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def autocast(device, dtype, model=None):
    """Autocast only where torch supports it and it changes something: on CPU
    for bfloat16/float16, on CUDA for any non-float32 float dtype."""
    native = model_param_dtype(model) if model is not None else torch.float32
    if dtype == native or not dtype.is_floating_point:
        return contextlib.nullcontext()
    if device.type == 'cpu' and dtype in (torch.bfloat16, torch.float16):
        return torch.autocast(device_type='cpu', dtype=dtype)
    if device.type == 'cuda' and dtype != torch.float32:
        return torch.autocast(device_type='cuda', dtype=dtype)
    return contextlib.nullcontext()


def _model_device(model):
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return None


@contextlib.contextmanager
def model_on(model, device):
    """Move ``model`` to ``device`` in eval mode; restore its device and the
    train/eval flag of every submodule on exit, also when an exception is raised."""
    training = {m: m.training for m in model.modules()}
    original = _model_device(model)
    try:
        model.to(device)
        model.eval()
        yield model
    finally:
        if original is not None:
            model.to(original)
        for m, flag in training.items():
            m.training = flag


def to_device(t, device, dtype):
    """Move a batch to the device, then cast (narrow ints travel small)."""
    t = t.to(device, non_blocking=True)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    return t


def check_X(X, name='X'):
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(X).__name__}")
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"{name}: must contain at least one example (got shape {tuple(X.shape)})")


def check_args(X, args, aligned=True):
    """Validate ``args``: a tuple/list of tensors. With ``aligned`` each must
    have ``len(X)`` rows (predict); otherwise they must share one length
    (predict_cross, apply_pairwise)."""
    if args is None:
        return None
    if isinstance(args, torch.Tensor):
        args = (args,)
    if not isinstance(args, (tuple, list)):
        raise ValueError(f"args: expected a tuple or list of tensors, got {type(args).__name__}")
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            raise ValueError(f"args[{i}]: expected a torch.Tensor, got {type(a).__name__}")
        if a.ndim == 0:
            raise ValueError(f"args[{i}]: must have a batch axis (got a 0-d tensor)")
        if aligned and a.shape[0] != X.shape[0]:
            raise ValueError(f"args[{i}]: has {a.shape[0]} rows but X has {X.shape[0]}; "
                             "every arg must have one row per example")
    if not aligned:
        if len(args) == 0:
            raise ValueError("args: at least one tensor is required")
        n = args[0].shape[0]
        if n == 0:
            raise ValueError("args[0]: must contain at least one element")
        for i, a in enumerate(args):
            if a.shape[0] != n:
                raise ValueError(f"args[{i}]: has {a.shape[0]} rows but args[0] has {n}; "
                                 "paired args must all have the same length")
    return tuple(args)


def check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    return batch_size


def split_output(y):
    """Classify a model output: ('tensor', y) or ('list', [tensors]); anything
    else is an error that says what is accepted."""
    if isinstance(y, torch.Tensor):
        return 'tensor', y
    if isinstance(y, (tuple, list)) and len(y) > 0 and all(isinstance(v, torch.Tensor) for v in y):
        return 'list', list(y)
    raise ValueError("Cannot interpret output from model: expected a tensor or a tuple/list of "
                     f"tensors, got {type(y).__name__}"
                     + (" containing non-tensors" if isinstance(y, (tuple, list)) else ""))
