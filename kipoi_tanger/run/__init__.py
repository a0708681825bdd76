"""The run loop and its files (no Kipoi imports here: the adapter does that).

* :mod:`~kipoi_tanger.run.loop` — :func:`run`: an op object over a model's regions, into files;
  :class:`RunOptions`;
* :mod:`~kipoi_tanger.run.journal` — :class:`Journal`: committed batches of an unfinished run (resume);
* :mod:`~kipoi_tanger.run.outputs` — output paths and parents, ``--shard`` parsing and block ranges;
* :mod:`~kipoi_tanger.run.merge` — :func:`merge`: shard files into the single-run file;
* :mod:`~kipoi_tanger.run.h5io` — HDF5/TSV writing and reading in Kipoi's layout.
"""
from ..adapter.errors import RunError
from .journal import Journal
from .loop import RunOptions, check_device, run, sequence_dataset
from .merge import merge
from .result import RunResult

__all__ = ["run", "merge", "RunOptions", "RunResult", "RunError", "Journal", "check_device", "sequence_dataset"]
