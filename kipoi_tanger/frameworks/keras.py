"""``kipoi_tanger.KerasModel``: the Kipoi zoo's Keras 2 models in a current environment.

Kipoi 0.8.6's ``kipoi.model.KerasModel`` loads ``type: keras`` models through
``keras.models.model_from_json``. Since TensorFlow 2.16, ``keras`` is Keras 3,
which cannot read the zoo's Keras 2 architecture JSON (``TypeError: Could not
locate class 'Sequential'``), so about 1,730 zoo models (DeepBind,
pwm_HOCOMOCO, rbp_eclip, CpGenie...) no longer load. The Keras 2 API lives on
as the ``tf-keras`` package (``import tf_keras``), which reads those files.

This class takes the same ``args`` as Kipoi's::

    type: keras                       # or defined_as: kipoi_tanger.KerasModel
    args:
      arch: model.json                # Keras 2 `model.to_json()`; omit for a whole-model HDF5
      weights: weights.h5             # `save_weights` HDF5, or the whole model (`model.save`)
      custom_objects: custom_keras_objects.py   # defines OBJECTS = {name: object}
      backend: tensorflow
      image_dim_ordering: tf

``defined_as: kipoi_tanger.KerasModel`` works with plain Kipoi; with the
start-up hook (:mod:`kipoi_tanger._kipoi_hook`) ``type: keras`` and
``defined_as: kipoi.model.KerasModel`` use it too, so ``kipoi predict`` and
``kipoi test`` work again on those models.

Differences from Kipoi's class: the Keras 2 API comes from ``tf_keras`` (or
from ``keras`` when that is Keras 2); a whole-model HDF5 is loaded without
compiling it (inference needs no optimizer); a ``custom_objects`` file that
does not exist is an error (Kipoi ignored it); Lambda layers load (a model
directory is trusted code for Kipoi anyway: it imports its Python files); the
gradient/activation helpers of Kipoi's class (kipoi-interpret) are not
provided; and bad input gives one line naming the file or field.

TensorFlow is imported when a model is loaded, never when this module is.
"""
import contextlib
import importlib
import inspect
import os
import re
import sys
import tempfile
from typing import Any, Optional, Union

from kipoi.model import BaseModel

from . import FrameworkNotInstalled

__all__ = ["KerasModel", "import_keras", "load_keras_model", "use_in_kipoi"]

_KERAS = None


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide what TensorFlow's C++ runtime prints while it starts.

    TensorFlow 2.21 logs through absl before ``TF_CPP_MIN_LOG_LEVEL`` is read
    (oneDNN and CUDA notices), so the file descriptor itself is redirected for
    the duration of the import; Python errors still surface as exceptions.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
            os.dup2(saved, 2)
            os.close(saved)


def _one_line(e, limit=300):
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _keras2_fallback():
    """``keras`` when the installed one is Keras 2 (TensorFlow < 2.16), else None."""
    try:
        import keras
    except Exception:
        return None
    return keras if str(getattr(keras, "__version__", "")).startswith("2.") else None


def _init_devices():
    """Enumerate devices now, while stderr is quiet (CUDA probing logs errors on CPU-only hosts)."""
    try:
        import tensorflow as tf
        tf.config.list_physical_devices()
    except Exception:
        pass


def import_keras() -> Any:
    """The Keras 2 API module (``tf_keras``, or ``keras`` when it is Keras 2).

    Imports TensorFlow quietly on first use (its C++ start-up notices are
    dropped, ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 and TensorFlow's Python
    logger to ERROR).

    Raises
    ------
    FrameworkNotInstalled
        When neither is importable; the message names the package to install.
    """
    global _KERAS
    if _KERAS is not None:
        return _KERAS
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = None
    try:
        with _quiet_native_stderr():
            import tf_keras as keras
            _init_devices()
    except ImportError as e:
        with _quiet_native_stderr():
            keras = _keras2_fallback()
            if keras is not None:
                _init_devices()
        if keras is None:
            if (getattr(e, "name", None) or "").split(".")[0] == "tensorflow":
                raise FrameworkNotInstalled(
                    "Keras model: TensorFlow is not installed; pip install tensorflow-cpu tf-keras",
                    "tf-keras") from None
            raise FrameworkNotInstalled(
                "Keras model: the Keras 2 API is not installed (TensorFlow >= 2.16 ships Keras 3, "
                "which cannot read the Kipoi zoo's Keras 2 files); pip install tf-keras", "tf-keras") from None
    except Exception as e:  # e.g. tf-keras built for another TensorFlow
        raise FrameworkNotInstalled(
            f"Keras model: importing tf_keras failed ({type(e).__name__}: {_one_line(e)}); "
            "pip install a tf-keras matching your TensorFlow (same minor version)", "tf-keras") from None
    try:
        import tensorflow as tf
        tf.get_logger().setLevel("ERROR")
    except Exception:
        pass
    _KERAS = keras
    return keras


def _require_file(field, path):
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"model.yaml args.{field}: expected a file path, got {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model.yaml args.{field}: {path} does not exist")


def load_custom_objects(path: Optional[str]) -> dict:
    """The ``OBJECTS`` dict of a zoo ``custom_objects`` Python file.

    Parameters
    ----------
    path : str or None
        The file (e.g. ``custom_keras_objects.py`` with ``OBJECTS = {"tf": tf}``);
        None gives ``{}``.

    Returns
    -------
    dict
        A copy of ``OBJECTS``.

    Raises
    ------
    FileNotFoundError, ValueError
        One line naming ``args.custom_objects``: missing file, failing import,
        or no dict ``OBJECTS``.
    """
    if path is None:
        return {}
    _require_file("custom_objects", path)
    from kipoi_utils.utils import load_module
    try:
        mod = load_module(path)
    except Exception as e:
        raise ValueError(f"model.yaml args.custom_objects: importing {path} failed "
                         f"({type(e).__name__}: {_one_line(e)})") from None
    objects = getattr(mod, "OBJECTS", None)
    if not isinstance(objects, dict):
        raise ValueError(f"model.yaml args.custom_objects: {path} must define a dict "
                         "OBJECTS = {name: object}")
    return dict(objects)


@contextlib.contextmanager
def _lambda_layers_allowed(keras):
    """Let Keras deserialise Lambda layers for this load only (tf-keras' safe mode
    refuses their Python code; a Kipoi model dir is trusted code anyway)."""
    try:
        lib = importlib.import_module(keras.__name__ + ".src.saving.serialization_lib")
        scope = lib.SafeModeScope(False)
    except Exception:
        scope = contextlib.nullcontext()
    with scope:
        yield


_UNKNOWN_CLASS = re.compile(r"(?:Could not locate class|Unknown (?:layer|object|activation)(?: type)?:?)\s*'?([\w.]+)'?")


def _load_error(e, field, path):
    msg = str(e)
    m = _UNKNOWN_CLASS.search(msg)
    if m:
        return ValueError(f"model.yaml args.{field}: {path} uses Keras class {m.group(1)!r}, which is neither "
                          "a Keras 2 built-in nor in the custom_objects file's OBJECTS")
    if "marshal" in msg or "bad marshal" in msg or "code()" in msg or "unknown opcode" in msg:
        return ValueError(f"model.yaml args.{field}: {path} holds a Lambda layer whose Python code was saved "
                          f"by another Python version and cannot be loaded here ({_one_line(e, 120)})")
    return ValueError(f"model.yaml args.{field}: could not load {path} with the Keras 2 API "
                      f"({type(e).__name__}: {_one_line(e)})")


def load_keras_model(weights: str, arch: Optional[str] = None,
                     custom_objects: Union[str, dict, None] = None) -> Any:
    """Load a Kipoi zoo Keras model with the Keras 2 API.

    Parameters
    ----------
    weights : str
        HDF5 weights (``save_weights``) when ``arch`` is given, else a
        whole-model HDF5 (``model.save``), loaded without compiling.
    arch : str, optional
        Architecture JSON (``model.to_json()``, any Keras 2 version).
    custom_objects : str or dict, optional
        A Python file defining ``OBJECTS = {name: object}`` (the zoo's
        ``custom_keras_objects.py``), or the dict itself.

    Returns
    -------
    tf_keras.Model

    Raises
    ------
    FrameworkNotInstalled
        When the Keras 2 API is not installed.
    FileNotFoundError, ValueError
        One line naming the ``args`` field and file.
    """
    keras = import_keras()
    objects = custom_objects if isinstance(custom_objects, dict) else load_custom_objects(custom_objects)
    _require_file("weights", weights)
    if arch is not None:
        _require_file("arch", arch)
    field, path = ("arch", arch) if arch is not None else ("weights", weights)
    try:
        with _lambda_layers_allowed(keras):
            if arch is None:
                kwargs = {"custom_objects": objects, "compile": False}
                if "safe_mode" in inspect.signature(keras.models.load_model).parameters:
                    kwargs["safe_mode"] = False
                return keras.models.load_model(weights, **kwargs)
            with open(arch, encoding="utf-8") as fh:
                text = fh.read()
            model = keras.models.model_from_json(text, custom_objects=objects)
    except (FrameworkNotInstalled, FileNotFoundError):
        raise
    except Exception as e:
        raise _load_error(e, field, path) from None
    try:
        model.load_weights(weights)
    except Exception as e:
        raise ValueError(f"model.yaml args.weights: {weights} does not fit the architecture in {arch} "
                         f"({type(e).__name__}: {_one_line(e)})") from None
    return model


class KerasModel(BaseModel):
    """Kipoi model for the zoo's Keras 2 models, loaded with ``tf-keras``.

    Parameters
    ----------
    weights : str
        HDF5 weights, or the whole model when ``arch`` is None.
    arch : str, optional
        Architecture JSON.
    custom_objects : str, optional
        Python file defining ``OBJECTS = {name: object}``.
    backend : str, optional
        ``tensorflow`` (or None); other Keras 2 backends (theano, cntk) are gone.
    image_dim_ordering : str, optional
        ``tf`` (channels last, or None); ``th`` is refused, as by Kipoi.

    Attributes
    ----------
    model : tf_keras.Model
        The loaded Keras model.
    framework : str
        ``"keras"``.
    """

    MODEL_PACKAGE = "keras"   # Kipoi checks the yaml's dependencies mention it ("tf-keras" does)
    framework = "keras"

    def __init__(self, weights: str, arch: Optional[str] = None, custom_objects: Union[str, dict, None] = None,
                 backend: Optional[str] = None, image_dim_ordering: Optional[str] = None):
        if backend not in (None, "tensorflow"):
            raise ValueError(f"model.yaml args.backend: {backend!r} is not available; Keras 2 models run on "
                             "the tensorflow backend (tf-keras)")
        if image_dim_ordering not in (None, "tf"):
            raise ValueError(f"model.yaml args.image_dim_ordering: {image_dim_ordering!r} is not supported; "
                             "only 'tf' (channels last)")
        self.weights = weights
        self.arch = arch
        self.backend = backend
        self.image_dim_ordering = image_dim_ordering
        import_keras()              # first, quietly: custom_objects files import tensorflow themselves
        self.custom_objects = load_custom_objects(custom_objects) if not isinstance(custom_objects, dict) \
            else dict(custom_objects)
        self.model = load_keras_model(weights, arch, self.custom_objects)

    def predict_on_batch(self, x):
        """Predict one batch as Kipoi does: ``model.predict_on_batch(x)`` (an
        array, or a list/dict of arrays for multi-input models); numpy out."""
        return self.model.predict_on_batch(x)

    def to_torch(self, x: Any = None, rtol: float = 1e-5, atol: float = 1e-6):
        """The model as an equivalent ``torch.nn.Module`` (same input layout).

        See :func:`kipoi_tanger.frameworks.keras_to_torch.keras_to_torch`; with
        ``x`` (a batch of inputs) the conversion is checked on it and refused
        above ``atol + rtol * max|y|``.
        """
        from .keras_to_torch import keras_to_torch
        return keras_to_torch(self.model, x, rtol=rtol, atol=atol)


def use_in_kipoi(kipoi_model: Any = None) -> None:
    """Make Kipoi's ``type: keras`` and ``kipoi.model.KerasModel`` this class.

    The start-up hook calls it when ``kipoi.model`` is imported (Kipoi's own
    class stays reachable as ``KerasModel.kipoi_original``). Idempotent.
    """
    if kipoi_model is None:
        import kipoi.model as kipoi_model
    original = getattr(kipoi_model, "KerasModel", None)
    if original is KerasModel:
        return
    KerasModel.kipoi_original = original
    kipoi_model.AVAILABLE_MODELS["keras"] = KerasModel
    kipoi_model.KerasModel = KerasModel


# kipoi.model was first imported by this module (above) while the start-up hook was active.
if globals().pop("_use_in_kipoi_when_defined", False):
    use_in_kipoi()
