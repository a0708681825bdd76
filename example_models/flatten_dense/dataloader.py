"""flatten_dense dataloader: the shared interval one-hot loader plus constant alpha/beta inputs.

The one-hot sequences come from ``dataloaders/interval_onehot`` (loaded by
path, relative to this file, so the model dir works from any working
directory); this wrapper only adds FlattenDense's extra inputs ``alpha`` and
``beta``, each as a ``(1,)`` float32 array per sample, and returns the
inputs as the list ``[seq, alpha, beta]`` that Kipoi's PyTorchModel passes
positionally to ``forward(X, alpha, beta)``.
"""
import importlib.util
import os
import uuid

import numpy as np
from kipoi.data import Dataset

_SHARED = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                        os.pardir, "dataloaders", "interval_onehot",
                                        "dataloader.py"))


def _load_shared():
    # a private module instance, so this model never shares a class object with another one
    spec = importlib.util.spec_from_file_location(
        "_kipoi_tanger_interval_onehot_" + uuid.uuid4().hex, _SHARED)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_IntervalOneHot = _load_shared().IntervalOneHot


def _scalar(value, name):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError("{} must be a number, got {!r}".format(name, value)) from None
    if not np.isfinite(v):
        raise ValueError("{} must be finite, got {!r}".format(name, value))
    return np.array([v], dtype=np.float32)


class FlattenDenseDl(Dataset):
    """10-bp BED intervals + FASTA -> ``[seq (4, 10), alpha (1,), beta (1,)]``.

    Parameters
    ----------
    intervals_file : str
        BED3+ intervals (resized around their centre to 10 bp).
    fasta_file : str
        Indexed reference FASTA.
    alpha : float, optional
        Additive constant given to every sample. Default 0.
    beta : float, optional
        Multiplicative factor given to every sample. Default 1.
    """

    SEQ_LEN = 10

    def __init__(self, intervals_file, fasta_file, alpha=0.0, beta=1.0):
        self.alpha = _scalar(alpha, "alpha")
        self.beta = _scalar(beta, "beta")
        self.seqs = _IntervalOneHot(intervals_file, fasta_file, seq_len=self.SEQ_LEN,
                                    layout="(A, L)", dtype="float32")

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, index):
        item = self.seqs[index]
        return {"inputs": [item["inputs"], self.alpha.copy(), self.beta.copy()],
                "metadata": item["metadata"]}
