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

Importing this package (or its modules) never imports TensorFlow: it is
imported when a Keras model is loaded.
"""


class FrameworkNotInstalled(ImportError):
    """A model's framework is missing; the message names what to install.

    ``str(error)`` is one line suitable for a CLI error, e.g.
    ``"Keras model: ... is not installed; pip install tf-keras"``.
    """

    def __init__(self, message: str, package: str):
        super().__init__(message)
        self.package = package


__all__ = ["FrameworkNotInstalled"]
