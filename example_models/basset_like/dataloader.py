"""basset_like dataloader: the shared dataloaders/interval_onehot component under this model's defaults.

Kipoi 0.8.6 takes a dataloader's example files and argument defaults from its
own dataloader.yaml, and a model.yaml's dict-form ``default_dataloader``
accepts only importable dotted names, so this dir ships a dataloader.yaml
(with the (4, 200, 1) defaults and this model's examples) whose
``defined_as`` points here. The shared code is loaded by path, relative to
this file, as a private module instance: Kipoi attaches each yaml's
description to the class it loads, so two models must never share one class
object.
"""
import importlib.util
import os
import uuid

_SHARED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                        os.pardir, "dataloaders", "interval_onehot",
                                        "dataloader.py"))


def _load_shared():
    spec = importlib.util.spec_from_file_location(
        "_kipoi_tanger_interval_onehot_" + uuid.uuid4().hex, _SHARED)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class BassetLikeDl(_load_shared().IntervalOneHot):
    """``IntervalOneHot`` (see dataloaders/interval_onehot) with defaults
    ``seq_len=200, layout="(A, L, 1)"`` set by this dir's dataloader.yaml."""
