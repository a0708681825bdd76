"""Conventions shared by every op: device and dtype resolution, autocast,
model-state restoration and argument validation.

Every op in kipoi_tanger goes through these helpers so that ``device=None``,
``dtype=None`` and the restoration of the model's device and train/eval state
behave the same way everywhere.
"""
import contextlib
import inspect
import numbers
import warnings

import torch


# Errors for bad arguments. Each is a ValueError (kipoi_tanger's contract for
# bad input) and also the type tangermeme 1.6.0 raises in the same situation,
# so code written for either keeps catching them.
class ArgumentTypeError(ValueError, TypeError):
    """A bad argument where tangermeme raises TypeError (e.g. ``args=5``)."""


class ArgumentIndexError(ValueError, IndexError):
    """A bad argument where tangermeme raises IndexError (e.g. a float ``start``)."""


class ArgumentRuntimeError(ValueError, RuntimeError):
    """A bad argument where tangermeme raises RuntimeError (e.g. ``n=0``)."""


def resolve_device(device=None):
    """Return a ``torch.device``: ``None`` means CUDA when available, else CPU."""
    if device is None:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"device: {device!r} is not a usable torch device (e.g. 'cpu', 'cuda', "
                         f"'cuda:1'): {reason}") from None
    if resolved.type == 'cuda' and (not torch.cuda.is_available() or (
            resolved.index is not None and resolved.index >= torch.cuda.device_count())):
        raise ValueError(f"device: {str(resolved)!r} requested but this machine has "
                         f"{torch.cuda.device_count() if torch.cuda.is_available() else 'no'} "
                         "CUDA device(s); pass device='cpu' or None (CUDA when available)")
    return resolved


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
            raise ValueError(f"dtype: unknown torch dtype {dtype!r} (e.g. float32, bfloat16)")
        dtype = resolved
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype: expected a torch.dtype, a string or None, got {dtype!r}")
    native = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if dtype.is_floating_point and native is not None and dtype != native and \
            dtype not in (torch.float16, torch.bfloat16):
        # inputs of another float width than the weights fail inside the first layer; autocast
        # (the way a dtype other than the model's runs) exists only for float16 and bfloat16
        raise ValueError(f"dtype: {str(dtype).replace('torch.', '')} differs from the model's "
                         f"{str(native).replace('torch.', '')} parameters; use the model's own dtype, "
                         "float16 or bfloat16")
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
    if original is not None and original.type == 'meta' and torch.device(device).type != 'meta':
        raise ValueError("model: its parameters are on the meta device (no values); load or "
                         "materialize its weights (e.g. to_empty + load_state_dict) first")
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
    if X.device.type == 'meta':
        raise ValueError(f"{name}: is a meta tensor (a shape without values); pass a tensor "
                         "that holds data")


def check_args(X, args, aligned=True, surplus_rows=False):
    """Validate ``args``: a tuple/list of tensors. With ``aligned`` each must
    have ``len(X)`` rows (predict); otherwise they must share one length
    (predict_cross, apply_pairwise).

    ``surplus_rows=True`` (with ``aligned``) accepts args with more rows than
    ``X`` and keeps rows ``0 .. len(X) - 1``, row i going with example i, as
    tangermeme's ``deep_lift_shap`` does; a ``TangermemeWarning`` names the
    rows left out. Fewer rows than ``X`` is always an error.
    """
    if args is None:
        return None
    if isinstance(args, torch.Tensor):
        args = (args,)
    if not isinstance(args, (tuple, list)):
        raise ArgumentTypeError(f"args: expected a tuple or list of tensors, got "
                                f"{type(args).__name__}")
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            raise ArgumentTypeError(f"args[{i}]: expected a torch.Tensor, got {type(a).__name__}")
        if a.ndim == 0:
            raise ValueError(f"args[{i}]: must have a batch axis (got a 0-d tensor)")
        if aligned and a.shape[0] != X.shape[0] and not (surplus_rows and a.shape[0] > X.shape[0]):
            raise ValueError(f"args[{i}]: has {a.shape[0]} rows but X has {X.shape[0]}; "
                             "every arg must have one row per example")
    if aligned and surplus_rows and any(a.shape[0] > X.shape[0] for a in args):
        from .utils import TangermemeWarning
        n = X.shape[0]
        extra = ', '.join(f"args[{i}] rows {n}..{a.shape[0] - 1}" for i, a in enumerate(args)
                          if a.shape[0] > n)
        warnings.warn(f"args: X has {n} examples, so row i of each arg goes with example i and "
                      f"{extra} are not used", TangermemeWarning, stacklevel=3)
        args = [a[:n] for a in args]
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
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or \
            batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    return int(batch_size)


def check_int(value, name, low=None, high=None, error=ValueError, what=None):
    """``value`` as an int in ``[low, high]`` (None: unbounded). A non-integer
    (bools included) raises ``error`` (the type tangermeme raises there); a
    value out of range raises ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise error(f"{name}: expected an int, got {value!r}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = '-inf' if low is None else low
        hi = 'inf' if high is None else high
        raise ValueError(f"{name}: expected an int in [{lo}, {hi}]"
                         + (f" ({what})" if what else "") + f", got {value}")
    return value


def check_func_kwargs(func, additional_func_kwargs, name='func'):
    """Check ``func`` is callable and ``additional_func_kwargs`` a dict (or
    None); return a copy of the dict (callers never modify the user's)."""
    if not callable(func):
        raise ValueError(f"{name}: expected a callable such as predict or deep_lift_shap, got "
                         f"{type(func).__name__}")
    if additional_func_kwargs is not None and not isinstance(additional_func_kwargs, dict):
        raise ValueError("additional_func_kwargs: expected a dict or None, got "
                         f"{type(additional_func_kwargs).__name__}")
    return dict(additional_func_kwargs or {})


def takes_parameter(func, name):
    """Whether ``func`` has a parameter called ``name`` (``**kwargs`` does not
    count, as in tangermeme's forwarding of ``random_state``)."""
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def check_return_packed(return_packed):
    """kipoi_tanger has no PackedSequence: refuse ``return_packed=True``."""
    if return_packed:
        raise ValueError("return_packed: kipoi_tanger has no PackedSequence; pass None or False "
                         "(sequences stay one-hot tensors)")


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


def _map_outputs(y, f):
    """Apply ``f`` to every tensor of a func output (a tensor, or a list/tuple
    of tensors for multi-output models); lists come back as lists."""
    if isinstance(y, torch.Tensor):
        return f(y)
    if isinstance(y, (tuple, list)):
        return [_map_outputs(v, f) for v in y]
    raise ValueError(f"Cannot interpret output from func: expected tensors or lists of tensors, "
                     f"got {type(y).__name__}")


def reshape_rows(y, lead):
    """Reshape the leading axis of every tensor of ``y`` into ``lead``."""
    return _map_outputs(y, lambda t: t.reshape(*lead, *t.shape[1:]))


def split_rows(y, size):
    """Split ``y`` along axis 0 into pieces of ``size`` rows: a list of pieces,
    each a tensor or a list of tensors like ``y``."""
    if isinstance(y, torch.Tensor):
        return list(y.split(size))
    parts = [split_rows(v, size) for v in y]
    return [list(p) for p in zip(*parts)]


def stack_outputs(outputs, dim=0):
    """Stack per-call outputs (tensors, or lists of tensors for multi-output
    models) along a new axis ``dim``."""
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(outputs, dim=dim)
    if isinstance(first, (tuple, list)):
        return [stack_outputs([o[i] for o in outputs], dim) for i in range(len(first))]
    raise ValueError(f"Cannot interpret output from func: expected tensors or lists of tensors, "
                     f"got {type(first).__name__}")


def cat_outputs(outputs):
    """Concatenate func outputs (tensors or lists of tensors) along axis 0."""
    if isinstance(outputs[0], torch.Tensor):
        return torch.cat(outputs)
    return [cat_outputs([o[j] for o in outputs]) for j in range(len(outputs[0]))]


def tile_args(kwargs, times):
    """``kwargs`` with every tensor of ``kwargs['args']`` tiled ``times`` times
    along axis 0 (for inputs that are ``times`` copies of X, one after another)."""
    args = kwargs.get('args')
    if args is None or times == 1:
        return kwargs
    if isinstance(args, torch.Tensor):
        args = (args,)
    if not isinstance(args, (tuple, list)):
        return kwargs  # predict raises its TypeError
    return {**kwargs, 'args': [a.repeat(times, *[1] * (a.ndim - 1))
                               if isinstance(a, torch.Tensor) and a.ndim else a for a in args]}
