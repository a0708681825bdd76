"""Kipoi models of frameworks other than PyTorch, in a current environment.

* :mod:`kipoi_tanger.frameworks.keras`: :class:`KerasModel`, a Kipoi model
  class that loads the zoo's ``type: keras`` models (architecture JSON +
  weights HDF5, or a whole-model HDF5, plus a ``custom_objects`` file) through
  the Keras 2 API (``tf-keras``), which TensorFlow >= 2.16 (Keras 3) no longer
  provides. The start-up hook (:mod:`kipoi_tanger._kipoi_hook`) gives it to
  plain Kipoi for ``type: keras`` and ``kipoi.model.KerasModel``.
* :mod:`kipoi_tanger.frameworks.keras_to_torch`: converts Keras 2 models built
  from standard layers into an equivalent ``torch.nn.Module`` (every torch op,
  DeepLIFT included), checked numerically against the Keras model.
* :mod:`kipoi_tanger.frameworks.sklearn`: :class:`SklearnModel`, Kipoi's
  ``type: sklearn`` class, refusing a pickle written by another scikit-learn
  version (scikit-learn only warns); the start-up hook gives it to plain Kipoi.
* :mod:`kipoi_tanger.frameworks.tensorflow`: :class:`TensorFlowModel`, Kipoi's
  ``type: tensorflow`` class (a ``tf.compat.v1`` checkpoint run in a private
  graph and session) without its process-wide ``disable_v2_behavior()``; the
  start-up hook gives it to plain Kipoi.

How kipoi_tanger's ops call models of every framework (their own
``predict_on_batch``, or the checked Keras conversion for DeepLIFT) lives in
:mod:`kipoi_tanger.adapter.backends`.

Importing this package (or its modules) never imports TensorFlow or
scikit-learn: they are imported when a model is loaded.
"""


class FrameworkNotInstalled(ImportError):
    """A model's framework is missing; the message names what to install.

    ``str(error)`` is one line suitable for a CLI error, e.g.
    ``"Keras model: ... is not installed; pip install tf-keras"``.
    """

    def __init__(self, message: str, package: str):
        super().__init__(message)
        self.package = package


# Python module -> the pip package that provides it, for the frameworks Kipoi models use.
PIP_PACKAGES = {
    "tf_keras": "tf-keras", "tensorflow": "tensorflow-cpu", "keras": "tf-keras", "sklearn": "scikit-learn",
    "joblib": "joblib", "torch": "torch", "kipoiseq": "kipoiseq", "xgboost": "xgboost", "lightgbm": "lightgbm",
}


def framework_error(exc: ImportError, what: str = "model"):
    """The one-line :class:`FrameworkNotInstalled` for an ImportError raised while loading a model.

    Parameters
    ----------
    exc : ImportError
        E.g. ``ModuleNotFoundError: No module named 'sklearn'`` from unpickling a
        ``type: sklearn`` model, or :class:`FrameworkNotInstalled` itself
        (returned unchanged).
    what : str
        How to name the model in the message (e.g. ``"sklearn model"``).

    Returns
    -------
    FrameworkNotInstalled or None
        None when the missing module is not known (``exc.name`` unset).
    """
    if isinstance(exc, FrameworkNotInstalled):
        return exc
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if not name:
        return None
    package = PIP_PACKAGES.get(name, name)
    return FrameworkNotInstalled(f"{what}: Python module {name!r} is not installed; pip install {package}",
                                 package)


__all__ = ["FrameworkNotInstalled", "framework_error", "PIP_PACKAGES"]
