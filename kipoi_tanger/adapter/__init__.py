"""Kipoi plumbing: the only code that imports ``kipoi`` / ``kipoi_utils``.

Modules (each importable on its own; Kipoi and torch are imported lazily):

* :mod:`~kipoi_tanger.adapter.errors` — :class:`AdapterError`, :func:`one_line`, :func:`suggest`;
* :mod:`~kipoi_tanger.adapter.layout` — :class:`Layout` (the single parser of ``"(A, L, 1)"``), :func:`infer_layout`;
* :mod:`~kipoi_tanger.adapter.loader_format` — what a known dataloader's arguments say about the sequence;
* :mod:`~kipoi_tanger.adapter.section` — the ``postprocessing: tanger:`` section, :class:`TangerSpec`,
  :func:`resolve_spec`;
* :mod:`~kipoi_tanger.adapter.target` — :func:`load` → :class:`KipoiTarget` (what an op may ask of a model);
* :mod:`~kipoi_tanger.adapter.wrapper` — the torch module through which every op calls the model;
* :mod:`~kipoi_tanger.adapter.backends` — how a model of any framework is called (torch modules directly,
  others through ``predict_on_batch``; Keras models converted to torch for graph ops, checked against Keras);
* :mod:`~kipoi_tanger.adapter.schema_check` — the first batch checked against the model's schema;
* :mod:`~kipoi_tanger.adapter.dataloading` — iterating Kipoi dataloaders (:class:`DataloaderSource`);
* :mod:`~kipoi_tanger.adapter.args` — ``--dataloader_args`` parsing;
* :mod:`~kipoi_tanger.adapter.kipoi_model` — ``kipoi_tanger.TorchModel`` for model.yaml's ``defined_as``;
* :mod:`~kipoi_tanger.adapter.compat` — the numpy-2 shim for Kipoi's HDF5 writer.
"""
from .errors import AdapterError, one_line, suggest
from .layout import Layout, format_shape, infer_layout
from .section import DNA, TangerSpec, parse_reduce, read_model_yaml, resolve_spec, tanger_section
from .target import KipoiTarget, load, resolve_example

__all__ = ["AdapterError", "one_line", "suggest", "Layout", "format_shape", "infer_layout", "DNA", "TangerSpec",
           "parse_reduce", "read_model_yaml", "resolve_spec", "tanger_section", "KipoiTarget", "load",
           "resolve_example"]
