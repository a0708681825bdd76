"""gc_hmm_gru dataloader: the shared dataloaders/sequence_table component with this model's examples.

Kipoi 0.8.6 takes a dataloader's example files and argument defaults from its
own dataloader.yaml, and a model.yaml's dict-form ``default_dataloader``
accepts only importable dotted names, so this dir ships a dataloader.yaml
(this model's example file; targets off by default) whose ``defined_as``
points here. The shared code is loaded by path, relative to this file, as a
private module instance: Kipoi attaches each yaml's description to the class
it loads, so two models must never share one class object.
"""
import importlib.util
import os
import uuid

_SHARED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                        os.pardir, "dataloaders", "sequence_table",
                                        "dataloader.py"))


def _load_shared():
    spec = importlib.util.spec_from_file_location(
        "_kipoi_tanger_sequence_table_" + uuid.uuid4().hex, _SHARED)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class GCHMMSequences(_load_shared().SequenceTable):
    """``SequenceTable`` (see dataloaders/sequence_table): DNA -> int64
    tokens (A=0, C=1, G=2, T=3); ``ignore_targets`` defaults to true here."""
