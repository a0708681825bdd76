"""keras_motif's dataloader: kipoiseq's SeqIntervalDl (the Keras zoo's dataloader) with this
model's defaults, so that the model dir carries its own example files.

Kipoi 0.8.6 takes example files from the dataloader's yaml, and the dict form of
``default_dataloader`` (``defined_as: kipoiseq.dataloaders.SeqIntervalDl``, as the zoo's DeepBind
models use it) would take kipoiseq's, which are downloaded. dataloader.yaml loads this class by
path (``dataloader.py::KerasMotifDl``), which imports a fresh module each time, so no other
model's ``dataloader`` module can shadow it.
"""
from copy import deepcopy

import numpy as np
from kipoiseq.dataloaders import SeqIntervalDl


class KerasMotifDl(SeqIntervalDl):
    """BED6 + FASTA -> one-hot (200, 4) in ACGT order, float32; minus-strand windows are
    reverse-complemented; BED columns after the 6th are ignored."""

    def __init__(self, intervals_file, fasta_file, auto_resize_len=200, use_strand=True, num_chr_fasta=False):
        super().__init__(intervals_file, fasta_file, num_chr_fasta=num_chr_fasta,
                         auto_resize_len=auto_resize_len, use_strand=use_strand, ignore_targets=True,
                         dtype=np.float32)

    @classmethod
    def get_output_schema(cls):
        # SeqIntervalDl derives it from its own signature's defaults; ours is dataloader.yaml's.
        return deepcopy(cls.output_schema)
