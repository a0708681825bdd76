"""``kipoi_tanger.SklearnModel``: the zoo's ``type: sklearn`` models, refusing foreign pickles.

Kipoi 0.8.6's ``kipoi.model.SklearnModel`` unpickles ``args.pkl_file`` with
joblib whatever scikit-learn version wrote it. scikit-learn then only warns
(``InconsistentVersionWarning``: "Trying to unpickle estimator ... from
version X when using version Y ... might lead to breaking code or invalid
results"), and the predictions may be silently wrong. This class takes the
same ``args``::

    type: sklearn                     # or defined_as: kipoi_tanger.SklearnModel
    args:
      pkl_file: model.pkl             # joblib/pickle dump of a fitted estimator
      predict_method: predict_proba   # predict (default), predict_proba or predict_log_proba

and refuses, in one line naming the file and both versions, a pickle written
by another scikit-learn version: re-save the model with this version (or
install the one it names). With the start-up hook (:mod:`kipoi_tanger._kipoi_hook`)
``type: sklearn`` and ``defined_as: kipoi.model.SklearnModel`` use it, so
plain ``kipoi predict`` refuses such pickles too. Other differences from
Kipoi's class: bad ``args`` are one line naming the field (Kipoi asserts),
and a missing scikit-learn is one line naming the package to install.

scikit-learn is imported when a model is loaded, never when this module is.
"""
import os
import re
import warnings
from typing import Any, Optional

from kipoi.model import BaseModel

from . import FrameworkNotInstalled

__all__ = ["SklearnModel", "load_sklearn_model", "VersionMismatchError", "use_in_kipoi", "PREDICT_METHODS"]

PREDICT_METHODS = ("predict", "predict_proba", "predict_log_proba")

# scikit-learn < 1.3 warned with a plain UserWarning of this form
_OLD_WARNING = re.compile(r"Trying to unpickle estimator (\w+) from version (\S+) when using version (\S+)")


class VersionMismatchError(ValueError):
    """A pickled estimator was written by another scikit-learn version (one line).

    Attributes
    ----------
    path, estimator, pickled_version, current_version : str
    """

    def __init__(self, path: str, estimator: str, pickled_version: str, current_version: str):
        self.path, self.estimator = path, estimator
        self.pickled_version, self.current_version = pickled_version, current_version
        super().__init__(
            f"model.yaml args.pkl_file: {path} holds a {estimator} pickled by scikit-learn {pickled_version}, "
            f"but this is scikit-learn {current_version}; an estimator unpickled across versions may predict "
            f"wrongly without an error, so it is refused: refit and save it with scikit-learn {current_version}, or "
            f"pip install scikit-learn=={pickled_version}")


def _one_line(e, limit=300):
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _mismatch(caught, path):
    """The first version-mismatch warning among ``caught``, as a VersionMismatchError (or None)."""
    try:
        from sklearn.exceptions import InconsistentVersionWarning
    except ImportError:                         # scikit-learn < 1.3
        InconsistentVersionWarning = ()
    for w in caught:
        msg = w.message
        if InconsistentVersionWarning and isinstance(msg, InconsistentVersionWarning):
            return VersionMismatchError(path, msg.estimator_name, str(msg.original_sklearn_version),
                                        str(msg.current_sklearn_version))
        m = _OLD_WARNING.search(str(msg))
        if m:
            return VersionMismatchError(path, m.group(1), m.group(2), m.group(3))
    return None


def load_sklearn_model(pkl_file: str) -> Any:
    """Unpickle a fitted estimator, refusing one written by another scikit-learn version.

    Parameters
    ----------
    pkl_file : str
        A joblib (or plain pickle) file.

    Returns
    -------
    object
        The estimator.

    Raises
    ------
    FrameworkNotInstalled
        scikit-learn (or joblib) is not installed; the message names the package.
    VersionMismatchError
        The pickle comes from another scikit-learn version.
    FileNotFoundError, ValueError
        One line naming ``args.pkl_file``.
    """
    if not isinstance(pkl_file, (str, os.PathLike)):
        raise ValueError(f"model.yaml args.pkl_file: expected a file path, got {type(pkl_file).__name__}")
    if not os.path.isfile(pkl_file):
        raise FileNotFoundError(f"model.yaml args.pkl_file: {pkl_file} does not exist")
    try:
        import sklearn  # noqa: F401
        import joblib
    except ImportError as e:
        name = (getattr(e, "name", None) or "sklearn").split(".")[0]
        package = {"sklearn": "scikit-learn"}.get(name, name)
        raise FrameworkNotInstalled(f"sklearn model: Python module {name!r} is not installed; pip install {package}",
                                    package) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est = joblib.load(pkl_file)
        except ImportError as e:
            raise FrameworkNotInstalled(
                f"model.yaml args.pkl_file: {pkl_file} needs Python module {getattr(e, 'name', None) or e!r}, "
                f"which is not installed; pip install {getattr(e, 'name', None) or 'it'}",
                getattr(e, "name", None) or "") from None
        except Exception as e:
            mismatch = _mismatch(caught, pkl_file)
            if mismatch is not None:     # a pickle from another version that does not even load
                raise mismatch from None
            raise ValueError(f"model.yaml args.pkl_file: cannot unpickle {pkl_file} "
                             f"({type(e).__name__}: {_one_line(e)})") from None
    mismatch = _mismatch(caught, pkl_file)
    if mismatch is not None:
        raise mismatch
    for w in caught:                     # anything else is shown as scikit-learn meant it
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return est


class SklearnModel(BaseModel):
    """Kipoi model for a pickled scikit-learn estimator (``type: sklearn``).

    Parameters
    ----------
    pkl_file : str
        The joblib/pickle file of a fitted estimator, written by the
        installed scikit-learn version (others are refused).
    predict_method : {'predict', 'predict_proba', 'predict_log_proba'}
        The estimator's method ``predict_on_batch`` calls.

    Attributes
    ----------
    model : object
        The estimator.
    framework : str
        ``"sklearn"``.
    """

    MODEL_PACKAGE = "scikit-learn"
    framework = "sklearn"

    def __init__(self, pkl_file: str, predict_method: str = "predict"):
        if predict_method not in PREDICT_METHODS:
            raise ValueError(f"model.yaml args.predict_method: expected one of {', '.join(PREDICT_METHODS)}, "
                             f"got {predict_method!r}")
        self.pkl_file = pkl_file
        self.predict_method = predict_method
        self.model = load_sklearn_model(pkl_file)
        if not callable(getattr(self.model, predict_method, None)):
            raise ValueError(f"model.yaml args.predict_method: the {type(self.model).__name__} in {pkl_file} has no "
                             f"{predict_method} method")

    def predict_on_batch(self, x):
        """``estimator.<predict_method>(x)``, as Kipoi calls it."""
        return getattr(self.model, self.predict_method)(x)


def use_in_kipoi(kipoi_model: Optional[Any] = None) -> None:
    """Make Kipoi's ``type: sklearn`` and ``kipoi.model.SklearnModel`` this class.

    The start-up hook calls it when ``kipoi.model`` is imported (Kipoi's own
    class stays reachable as ``SklearnModel.kipoi_original``). Idempotent.
    """
    if kipoi_model is None:
        import kipoi.model as kipoi_model
    original = getattr(kipoi_model, "SklearnModel", None)
    if original is SklearnModel:
        return
    SklearnModel.kipoi_original = original
    kipoi_model.AVAILABLE_MODELS["sklearn"] = SklearnModel
    kipoi_model.SklearnModel = SklearnModel


# kipoi.model was first imported by this module (above) while the start-up hook was active.
if globals().pop("_use_in_kipoi_when_defined", False):
    use_in_kipoi()
