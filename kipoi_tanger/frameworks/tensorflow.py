"""``TensorFlowModel``: the zoo's ``type: tensorflow`` (TF1 checkpoint) models, without a process-wide switch.

Kipoi 0.8.6's ``kipoi.model.TensorFlowModel`` restores a ``tf.compat.v1``
checkpoint (``tf.train.Saver`` files: ``.meta`` graph, ``.index``, ``.data``)
into a private graph and session, and calls its ``input_nodes`` /
``target_nodes`` through ``Session.run``. Under TensorFlow 2 it first calls
``tf.compat.v1.disable_v2_behavior()``, which is process-wide: afterwards
eager execution is off for the whole process, so a TensorFlow 2 SavedModel
(``kipoi.model.TensorFlow2Model``) loaded later in the same process fails
(``'SymbolicTensor' object has no attribute 'numpy'``) and tf-keras switches
to its v1 engine. The switch is not needed: the graph and its session are
private, and importing a meta graph and running a session work in eager
TensorFlow 2 inside ``graph.as_default()``.

This class is Kipoi's (a subclass: same ``args``, same ``predict_on_batch``,
same feed-dict handling, same gradient and activation helpers for
kipoi-interpret) without that switch::

    type: tensorflow              # or defined_as: kipoi_tanger.frameworks.tensorflow.TensorFlowModel
    args:
      input_nodes: inputs         # str, list or dict of graph node names (as the schema's inputs)
      target_nodes: preds         # str, list or dict
      checkpoint_path: model_files/model.tf        # the Saver prefix, or {meta, index, data} files
      const_feed_dict_pkl: model_files/const_feed_dict.pkl   # optional {node name: value} fed every call

With the start-up hook (:mod:`kipoi_tanger._kipoi_hook`) ``type: tensorflow``
and ``defined_as: kipoi.model.TensorFlowModel`` use it, so plain ``kipoi
predict`` on such a model leaves the process in TensorFlow 2 mode too
(Kipoi's own class stays reachable as ``TensorFlowModel.kipoi_original``).
Other differences: TensorFlow's start-up notices are hidden (as for Keras
models), and bad ``args`` (a missing checkpoint file, a node name not in the
graph, a constant feed that is not a dict) are one line naming the field,
where Kipoi raises TensorFlow's own multi-line errors.

TensorFlow is imported when a model is loaded, never when this module is.
"""
import os
from collections.abc import Mapping
from typing import Any, Optional

import kipoi.model as _kipoi_model

from . import FrameworkNotInstalled

__all__ = ["TensorFlowModel", "import_tensorflow", "use_in_kipoi"]

# Kipoi's own class (also when this module is imported after the hook replaced it)
_KipoiTensorFlowModel = getattr(_kipoi_model.TensorFlowModel, "kipoi_original", None) or _kipoi_model.TensorFlowModel


def _one_line(e, limit=300):
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def import_tensorflow() -> Any:
    """``tensorflow``, imported quietly (its C++ start-up notices dropped, as for Keras models).

    Raises
    ------
    FrameworkNotInstalled
        TensorFlow is not installed; the message names the package.
    """
    from .keras import _init_devices, _quiet_native_stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _quiet_native_stderr():
            import tensorflow as tf
            _init_devices()
    except ImportError:
        raise FrameworkNotInstalled("TensorFlow model: Python module 'tensorflow' is not installed; "
                                    "pip install tensorflow-cpu", "tensorflow-cpu") from None
    try:
        tf.get_logger().setLevel("ERROR")
    except Exception:
        pass
    return tf


def _node_names(field: str, nodes) -> None:
    ok = (isinstance(nodes, str) or (isinstance(nodes, list) and nodes and all(isinstance(n, str) for n in nodes))
          or (isinstance(nodes, dict) and nodes and all(isinstance(n, str) for n in nodes.values())))
    if not ok:
        raise ValueError(f"model.yaml args.{field}: expected a graph node name, or a non-empty list or dict of "
                         f"them, got {nodes!r}")


def _checkpoint_prefix(checkpoint_path) -> str:
    """The Saver prefix of ``args.checkpoint_path`` (a prefix, or Kipoi's ``{meta, index, data}`` files)."""
    if isinstance(checkpoint_path, Mapping):
        files = dict(checkpoint_path)
        if set(files) != {"meta", "index", "data"} or not all(isinstance(v, str) for v in files.values()):
            raise ValueError("model.yaml args.checkpoint_path: expected the checkpoint prefix, or the local files "
                             f"{{meta, index, data}}, got {checkpoint_path!r}")
        prefix = files["meta"][:-len(".meta")] if files["meta"].endswith(".meta") else None
        if (prefix is None or files["index"] != prefix + ".index"
                or not (files["data"].startswith(prefix + ".data-") and files["data"] != prefix + ".data-")):
            raise ValueError("model.yaml args.checkpoint_path: meta, index and data must be PREFIX.meta, PREFIX.index "
                             f"and PREFIX.data-00000-of-00001, got {checkpoint_path!r}")
        checkpoint_path = prefix
    if not isinstance(checkpoint_path, (str, os.PathLike)):
        raise ValueError("model.yaml args.checkpoint_path: expected the checkpoint prefix (a path), got "
                         f"{type(checkpoint_path).__name__}")
    prefix = os.fspath(checkpoint_path)
    for ext in (".meta", ".index"):
        if not os.path.isfile(prefix + ext):
            raise FileNotFoundError(f"model.yaml args.checkpoint_path: {prefix}{ext} does not exist (expected the "
                                    "files tf.train.Saver().save(sess, PREFIX) writes: PREFIX.meta, PREFIX.index, "
                                    "PREFIX.data-*)")
    return prefix


class TensorFlowModel(_KipoiTensorFlowModel):
    """Kipoi's ``TensorFlowModel`` without ``disable_v2_behavior()`` (see the module docstring).

    Parameters
    ----------
    input_nodes, target_nodes : str, list of str or dict of str
        Graph node names; a list or dict takes (returns) the inputs (outputs)
        as a list or dict, as in Kipoi.
    checkpoint_path : str or dict
        The ``tf.train.Saver`` prefix (``PREFIX.meta``, ``PREFIX.index``,
        ``PREFIX.data-*``), or ``{meta, index, data}`` local file paths.
    const_feed_dict_pkl : str, optional
        A pickle of ``{node name: value}`` fed with every batch (e.g. a
        dropout rate or an ``is_training`` flag the dataloader does not give).

    Attributes
    ----------
    graph, sess
        The model's private ``tf.Graph`` and ``tf.compat.v1.Session``.
    framework : str
        ``"tensorflow"``.
    """

    MODEL_PACKAGE = "tensorflow"
    framework = "tensorflow"

    def __init__(self, input_nodes, target_nodes, checkpoint_path, const_feed_dict_pkl: Optional[str] = None):
        _node_names("input_nodes", input_nodes)
        _node_names("target_nodes", target_nodes)
        prefix = _checkpoint_prefix(checkpoint_path)
        if const_feed_dict_pkl is not None and not (isinstance(const_feed_dict_pkl, (str, os.PathLike))
                                                    and os.path.isfile(const_feed_dict_pkl)):
            raise FileNotFoundError(f"model.yaml args.const_feed_dict_pkl: {const_feed_dict_pkl} does not exist")
        tf = import_tensorflow()
        v1 = tf.compat.v1
        self.input_nodes = input_nodes
        self.target_nodes = target_nodes
        self.checkpoint_path = prefix
        self.graph = tf.Graph()
        self.sess = v1.Session(graph=self.graph)
        with self.graph.as_default():
            try:
                saver = v1.train.import_meta_graph(prefix + ".meta")
            except Exception as e:
                raise ValueError(f"model.yaml args.checkpoint_path: cannot import the graph in {prefix}.meta "
                                 f"({type(e).__name__}: {_one_line(e)})") from None
            if saver is None:
                raise ValueError(f"model.yaml args.checkpoint_path: {prefix}.meta holds no variables to restore")
            try:
                saver.restore(self.sess, prefix)
            except Exception as e:
                raise ValueError(f"model.yaml args.checkpoint_path: cannot restore the variables of {prefix} "
                                 f"({type(e).__name__}: {_one_line(e)})") from None
        self.input_ops = self._outputs("input_nodes", input_nodes)
        self.target_ops = self._outputs("target_nodes", target_nodes)
        self.const_feed_dict_pkl = const_feed_dict_pkl
        self.const_feed_dict = {}
        if const_feed_dict_pkl is not None:
            from kipoi_utils.utils import read_pickle
            try:
                feed = read_pickle(const_feed_dict_pkl)
            except Exception as e:
                raise ValueError(f"model.yaml args.const_feed_dict_pkl: cannot unpickle {const_feed_dict_pkl} "
                                 f"({type(e).__name__}: {_one_line(e)})") from None
            if not isinstance(feed, dict) or not all(isinstance(k, str) for k in feed):
                raise ValueError(f"model.yaml args.const_feed_dict_pkl: {const_feed_dict_pkl} must hold a dict "
                                 f"{{node name: value}}, got {type(feed).__name__}")
            self.const_feed_dict = {self._op("const_feed_dict_pkl", k).outputs[0]: v for k, v in feed.items()}

    def _op(self, field, name):
        try:
            return self.graph.get_operation_by_name(name)
        except (KeyError, ValueError) as e:
            raise ValueError(f"model.yaml args.{field}: no node {name!r} in the graph of {self.checkpoint_path}.meta "
                             f"({_one_line(e)})") from None

    def _outputs(self, field, nodes):
        if isinstance(nodes, dict):
            return {k: self._op(field, v).outputs[0] for k, v in nodes.items()}
        if isinstance(nodes, list):
            return [self._op(field, v).outputs[0] for v in nodes]
        return self._op(field, nodes).outputs[0]

    def input_grad(self, *args, **kwargs):
        """Kipoi's ``input_grad``, building its gradient ops in the model's own graph."""
        with self.graph.as_default():
            return super().input_grad(*args, **kwargs)

    def predict_activation_on_batch(self, *args, **kwargs):
        """Kipoi's ``predict_activation_on_batch``, in the model's own graph."""
        with self.graph.as_default():
            return super().predict_activation_on_batch(*args, **kwargs)


def use_in_kipoi(kipoi_model: Any = None) -> None:
    """Make Kipoi's ``type: tensorflow`` and ``kipoi.model.TensorFlowModel`` this class.

    The start-up hook calls it when ``kipoi.model`` is imported (Kipoi's own
    class stays reachable as ``TensorFlowModel.kipoi_original``). Idempotent.
    """
    if kipoi_model is None:
        import kipoi.model as kipoi_model
    original = getattr(kipoi_model, "TensorFlowModel", None)
    if original is TensorFlowModel:
        return
    TensorFlowModel.kipoi_original = original
    kipoi_model.AVAILABLE_MODELS["tensorflow"] = TensorFlowModel
    kipoi_model.TensorFlowModel = TensorFlowModel


# kipoi.model was first imported by this module (above) while the start-up hook was active.
if globals().pop("_use_in_kipoi_when_defined", False):
    use_in_kipoi()
