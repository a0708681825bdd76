"""Torch modules of the composite-model examples (seed 004, "composing models").

The four sub-models are plain dense layers wired as in the seed::

    m1: input1 (3,)                      -> (4,)
    m2: cat(m1(input1), input1) (7,)     -> (3,)
    m3: input2 (6,)                      -> (4,)
    m4: cat(m2(...), m3(input2)) (7,)    -> (1,)

:class:`Chain12` is m1 -> m2 as one module (input1 -> m2's output),
:class:`Stitched` is the whole graph (scenario 1), :class:`Ensemble` is the
m4-like final model of scenarios 2 and 3 with named inputs ``model2`` (3,)
and ``model3`` (4,). Every module stores its sub-models under the names
``m1`` ... ``m4``, so a sub-model's state_dict loads into the composite with
:func:`load_submodels` and a composite can be fine-tuned with parts frozen
(:func:`freeze`).
"""
import torch
from torch import nn

__all__ = ["Dense", "Chain12", "Stitched", "Ensemble", "SHAPES", "freeze", "load_submodels"]

# (in, out) of the seed's four sub-models
SHAPES = {"m1": (3, 4), "m2": (7, 3), "m3": (6, 4), "m4": (7, 1)}


class Dense(nn.Module):
    """One linear layer ``(N, n_in) -> (N, n_out)``: each of m1..m4."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.dense(x)


class Chain12(nn.Module):
    """m1 -> m2: ``input1 (N, 3) -> m2(cat(m1(input1), input1)) (N, 3)``."""

    def __init__(self):
        super().__init__()
        self.m1 = Dense(*SHAPES["m1"])
        self.m2 = Dense(*SHAPES["m2"])

    def forward(self, input1):
        return self.m2(torch.cat([self.m1(input1), input1], dim=-1))


class Stitched(nn.Module):
    """m1..m4 stitched into one model: ``(input1 (N, 3), input2 (N, 6)) -> (N, 1)``."""

    def __init__(self):
        super().__init__()
        for name, shape in SHAPES.items():
            self.add_module(name, Dense(*shape))

    def forward(self, input1, input2):
        model2 = self.m2(torch.cat([self.m1(input1), input1], dim=-1))
        model3 = self.m3(input2)
        return self.m4(torch.cat([model2, model3], dim=-1))


class Ensemble(nn.Module):
    """The final ensembling model: ``(model2 (N, 3), model3 (N, 4)) -> (N, 1)``."""

    def __init__(self):
        super().__init__()
        self.m4 = Dense(*SHAPES["m4"])

    def forward(self, model2, model3):
        return self.m4(torch.cat([model2, model3], dim=-1))


def load_submodels(module, weights):
    """Load sub-model state_dicts into the same-named children of ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        A composite (:class:`Chain12`, :class:`Stitched`, :class:`Ensemble`).
    weights : dict
        ``{child name: state_dict or path to a saved state_dict}``.

    Returns
    -------
    torch.nn.Module
        ``module``, with the weights loaded (strictly).
    """
    children = dict(module.named_children())
    for name, state in weights.items():
        if name not in children:
            raise ValueError("weights: {} has no sub-model {!r} (it has {})".format(
                type(module).__name__, name, ", ".join(children)))
        if not isinstance(state, dict):
            state = torch.load(state, map_location="cpu", weights_only=True)
        children[name].load_state_dict(state)
    return module


def freeze(module, names, frozen=True):
    """Freeze (or unfreeze) sub-models for fine-tuning.

    Sets ``requires_grad`` of every parameter of the named children to
    ``not frozen``; an optimizer then leaves them unchanged (plain SGD, and
    Adam too since their ``.grad`` stays None).

    Parameters
    ----------
    module : torch.nn.Module
        The composite model.
    names : str or list of str
        Children to freeze, e.g. ``["m1", "m3"]``.
    frozen : bool, default True
        False unfreezes them.

    Returns
    -------
    list of str
        The names of the parameters whose flag was set.
    """
    if isinstance(names, str):
        names = [names]
    children = dict(module.named_children())
    unknown = [n for n in names if n not in children]
    if unknown:
        raise ValueError("names: {} has no sub-model {!r} (it has {})".format(
            type(module).__name__, unknown[0], ", ".join(children)))
    done = []
    for n in names:
        for pname, p in children[n].named_parameters():
            p.requires_grad_(not frozen)
            done.append("{}.{}".format(n, pname))
    return done
