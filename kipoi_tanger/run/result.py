"""What a run or a merge produced."""
from typing import List, NamedTuple

__all__ = ["RunResult"]


class RunResult(NamedTuple):
    """What :func:`~kipoi_tanger.run.run` (or :func:`~kipoi_tanger.run.merge`) produced."""
    outputs: List[str]
    n_regions: int
    n_batches: int
    resumed_units: int
