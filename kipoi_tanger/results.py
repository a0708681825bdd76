"""Result types shared by the ops, with tangermeme 1.6.0's names and fields.

``PerturbationResult`` is returned by ``marginalize``, ``ablate`` and the
``variant_effect`` functions, ``PerturbationAnnotationsResult`` by their
``*_annotations`` variants, ``SpaceResult`` by ``space`` (tangermeme defines
it in ``tangermeme.space``; ``kipoi_tanger.space`` re-exports it) and
``AttributionReferencesResult`` by ``deep_lift_shap(..., return_references=True)``.
They are NamedTuples, so
``y_before, y_after = marginalize(...)`` and ``result.y_before`` both work.
"""
from typing import List, NamedTuple, Union

import torch

TensorOrList = Union[torch.Tensor, List[torch.Tensor]]

__all__ = ['PerturbationResult', 'PerturbationAnnotationsResult', 'SpaceResult',
           'AttributionReferencesResult']


class PerturbationResult(NamedTuple):
    """An op's output before and after a perturbation of the sequences."""
    y_before: TensorOrList
    y_after: TensorOrList


class PerturbationAnnotationsResult(NamedTuple):
    """Per-annotation perturbation results, one entry per annotation along axis 0."""
    y_befores: TensorOrList
    y_afters: TensorOrList


class SpaceResult(NamedTuple):
    """An op's output on the backgrounds and after substituting the motifs at
    each spacing; ``y_afters`` stacks the spacings along axis 1."""
    y_before: TensorOrList
    y_afters: TensorOrList


class AttributionReferencesResult(NamedTuple):
    """Attributions (or raw multipliers) and the references they were computed against."""
    attributions: torch.Tensor
    references: torch.Tensor
