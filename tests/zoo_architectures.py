"""Torch nets shaped like the real Kipoi zoo's PyTorch models, with their own seeded weights.

The zoo's weights live on Zenodo; these reproduce the *architectures* and
their conventions (see ../shared/notes/kipoi-zoo-formats.md), scaled down by
default so tests stay fast. Every builder takes ``seed`` and draws its weights
from a private generator state (the global torch RNG is left as it was).

* ``deepsea_like``: DeepSEA/variantEffects, converted from Lua Torch: input
  ``(N, 4, 1, L)``, a ``ReCodeAlphabet`` module re-ordering ACGT → AGCT inside
  the network, ``nn.Threshold(0, 1e-6)`` as ReLU, ``Lambda`` reshape modules
  (an ``nn.Sequential`` subclass with no children applying a Python
  function), ``nn.Sequential(Lambda(...), nn.Linear(...))`` pairs, Sigmoid.
* ``deepsea_predict_like``: DeepSEA/predict: the same net wrapped so that the
  reverse complement of every sequence is stacked along the **batch** axis
  (``ConcatenateRC``: ``torch.cat([x, rc(x)], 0)``) and the two halves of the
  output are averaged (``AverageRC``).
* ``beluga_like``: DeepSEA/beluga: ``(N, 4, 1, L)``, six Conv2d ``(1, 8)`` with
  ``nn.ReLU``, two MaxPool2d, ``Lambda`` flatten, Linear-ReLU-Linear, Sigmoid,
  in a ``Beluga`` module holding an ``nn.Sequential``.
* ``basset_like``: Basset: ``(N, 4, L, 1)``, Conv2d ``(k, 1)`` + BatchNorm2d
  (with non-trivial running statistics) + ReLU + MaxPool2d three times,
  ``Lambda`` flatten, Linear + BatchNorm1d + ReLU + Dropout twice, Linear,
  Sigmoid.
* ``Canonical(model, layout)``: takes tangermeme's ``(N, 4, L)`` and feeds the
  model its own layout (what the kipoi_tanger adapter does for a Kipoi model).

Sizes: ``full=True`` gives the zoo's real sizes (1000/2000/600 bp; large).
"""
import contextlib

import torch
from torch import nn


class LambdaBase(nn.Sequential):
    """As in the converted Lua Torch models: a Sequential holding a function."""

    def __init__(self, fn, *args):
        super().__init__(*args)
        self.lambda_func = fn

    def forward_prepare(self, input):
        output = []
        for module in self._modules.values():
            output.append(module(input))
        return output if output else input


class Lambda(LambdaBase):
    def forward(self, input):
        return self.lambda_func(self.forward_prepare(input))


class ReCodeAlphabet(nn.Module):
    """Swap ACGT to AGCT (DeepSEA's input re-coding), on ``(N, 4, 1, L)``."""

    def forward(self, input):
        input_reordered = [input[:, i, ...] for i in [0, 2, 1, 3]]
        return torch.stack(input_reordered, dim=1)


class ConcatenateRC(nn.Module):
    """Stack each sequence's reverse complement after the batch: ``(2N, 4, 1, L)``."""

    def forward(self, input):
        invert_dims = [1, 3]
        input_bkup = input
        for idim in invert_dims:
            idxs = [i for i in range(input.size(idim) - 1, -1, -1)]
            input = input.index_select(idim, torch.tensor(idxs, dtype=torch.long, device=input.device))
        return torch.cat([input_bkup, input], 0)


class AverageRC(nn.Module):
    """Average the forward and reverse-complement halves of the batch."""

    def forward(self, input):
        input = input[:int(input.size(0) / 2)] / 2 + input[int(input.size(0) / 2):] / 2
        return input


def _flat():
    return Lambda(lambda x: x.view(x.size(0), -1))


def _linear(n_in, n_out):
    return nn.Sequential(Lambda(lambda x: x.view(1, -1) if 1 == len(x.size()) else x), nn.Linear(n_in, n_out))


@contextlib.contextmanager
def _seeded(seed):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _scale_up(model, gain):
    """Larger weights so small nets have output differences well above rounding."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(gain)
    return model


def deepsea_body(length=200, channels=(8, 12, 16), hidden=24, n_outputs=5):
    c1, c2, c3 = channels
    n = length - 7
    n = (n - 4) // 4 + 1
    n = n - 7
    n = (n - 4) // 4 + 1
    n = n - 7
    if n < 1:
        raise ValueError(f"deepsea_body: length {length} is too short")
    return nn.Sequential(
        nn.Conv2d(4, c1, (1, 8), (1, 1)),
        nn.Threshold(0, 1e-06),
        nn.MaxPool2d((1, 4), (1, 4)),
        nn.Dropout(0.2),
        nn.Conv2d(c1, c2, (1, 8), (1, 1)),
        nn.Threshold(0, 1e-06),
        nn.MaxPool2d((1, 4), (1, 4)),
        nn.Dropout(0.2),
        nn.Conv2d(c2, c3, (1, 8), (1, 1)),
        nn.Threshold(0, 1e-06),
        nn.Dropout(0.5),
        _flat(),
        _linear(c3 * n, hidden),
        nn.Threshold(0, 1e-06),
        _linear(hidden, n_outputs),
        nn.Sigmoid(),
    )


def deepsea_like(seed=0, length=200, full=False, gain=2.0):
    """DeepSEA/variantEffects-like: ``(N, 4, 1, L)`` → ``(N, n_outputs)``."""
    kw = dict(length=1000, channels=(320, 480, 960), hidden=925, n_outputs=919) if full else dict(length=length)
    with _seeded(seed):
        return _scale_up(nn.Sequential(ReCodeAlphabet(), deepsea_body(**kw)), 1.0 if full else gain)


def deepsea_predict_like(seed=0, length=200, full=False, gain=2.0):
    """DeepSEA/predict-like: reverse complement stacked on the batch axis, halves averaged."""
    kw = dict(length=1000, channels=(320, 480, 960), hidden=925, n_outputs=919) if full else dict(length=length)
    with _seeded(seed):
        body = _scale_up(deepsea_body(**kw), 1.0 if full else gain)
    return nn.Sequential(ReCodeAlphabet(), ConcatenateRC(), body, AverageRC())


class Beluga(nn.Module):
    def __init__(self, length=400, channels=(8, 8, 12, 12, 16, 16), hidden=24, n_outputs=6):
        super().__init__()
        c = channels
        n = length - 14
        n = (n - 4) // 4 + 1
        n = n - 14
        n = (n - 4) // 4 + 1
        n = n - 14
        if n < 1:
            raise ValueError(f"Beluga: length {length} is too short")
        self.model = nn.Sequential(
            nn.Sequential(
                nn.Conv2d(4, c[0], (1, 8)), nn.ReLU(),
                nn.Conv2d(c[0], c[1], (1, 8)), nn.ReLU(),
                nn.Dropout(0.2),
                nn.MaxPool2d((1, 4), (1, 4)),
                nn.Conv2d(c[1], c[2], (1, 8)), nn.ReLU(),
                nn.Conv2d(c[2], c[3], (1, 8)), nn.ReLU(),
                nn.Dropout(0.2),
                nn.MaxPool2d((1, 4), (1, 4)),
                nn.Conv2d(c[3], c[4], (1, 8)), nn.ReLU(),
                nn.Conv2d(c[4], c[5], (1, 8)), nn.ReLU(),
            ),
            nn.Sequential(
                nn.Dropout(0.5),
                _flat(),
                _linear(c[5] * n, hidden),
                nn.ReLU(),
                _linear(hidden, n_outputs),
            ),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.model(x)


def beluga_like(seed=0, length=400, full=False, gain=2.0):
    """DeepSEA/beluga-like: ``(N, 4, 1, L)`` → ``(N, n_outputs)`` (its dataloader gives AGCT order)."""
    kw = dict(length=2000, channels=(320, 320, 480, 480, 640, 640), hidden=2003, n_outputs=2002) if full \
        else dict(length=length)
    with _seeded(seed):
        return _scale_up(Beluga(**kw), 1.0 if full else gain)


def basset_like(seed=0, length=200, full=False, gain=2.0):
    """Basset-like: ``(N, 4, L, 1)`` → ``(N, n_outputs)``, BatchNorm with non-trivial statistics."""
    if full:
        length, c, hidden, n_out = 600, (300, 200, 200), 1000, 164
    else:
        c, hidden, n_out = (8, 8, 8), 16, 4
    n = length - 18
    n = (n - 3) // 3 + 1
    n = n - 10
    n = (n - 4) // 4 + 1
    n = n - 6
    n = (n - 4) // 4 + 1
    if n < 1:
        raise ValueError(f"basset_like: length {length} is too short")
    with _seeded(seed):
        model = nn.Sequential(
            nn.Conv2d(4, c[0], (19, 1)), nn.BatchNorm2d(c[0]), nn.ReLU(), nn.MaxPool2d((3, 1), (3, 1)),
            nn.Conv2d(c[0], c[1], (11, 1)), nn.BatchNorm2d(c[1]), nn.ReLU(), nn.MaxPool2d((4, 1), (4, 1)),
            nn.Conv2d(c[1], c[2], (7, 1)), nn.BatchNorm2d(c[2]), nn.ReLU(), nn.MaxPool2d((4, 1), (4, 1)),
            _flat(),
            _linear(c[2] * n, hidden), nn.BatchNorm1d(hidden, 1e-05, 0.1, True), nn.ReLU(), nn.Dropout(0.3),
            _linear(hidden, hidden), nn.BatchNorm1d(hidden, 1e-05, 0.1, True), nn.ReLU(), nn.Dropout(0.3),
            _linear(hidden, n_out),
            nn.Sigmoid(),
        )
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    m.running_mean.uniform_(-0.2, 0.2)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.1, 0.1)
        _scale_up(model, 1.0 if full else gain)
    return model.eval()


class Canonical(nn.Module):
    """tangermeme's ``(N, 4, L)`` → the model's layout: ``'(4, 1, L)'`` or ``'(4, L, 1)'``."""

    def __init__(self, model, layout):
        super().__init__()
        if layout not in ('(4, 1, L)', '(4, L, 1)', '(4, L)'):
            raise ValueError(f"Canonical: unknown layout {layout!r}")
        self.model = model
        self.layout = layout

    def forward(self, X):
        if self.layout == '(4, 1, L)':
            X = X.unsqueeze(2)
        elif self.layout == '(4, L, 1)':
            X = X.unsqueeze(-1)
        return self.model(X)


LAYOUTS = {'deepsea_like': '(4, 1, L)', 'deepsea_predict_like': '(4, 1, L)', 'beluga_like': '(4, 1, L)',
           'basset_like': '(4, L, 1)'}
BUILDERS = {'deepsea_like': deepsea_like, 'deepsea_predict_like': deepsea_predict_like,
            'beluga_like': beluga_like, 'basset_like': basset_like}


def canonical(name, **kw):
    """One of the nets above wrapped to take ``(N, 4, L)``, in eval mode."""
    return Canonical(BUILDERS[name](**kw), LAYOUTS[name]).eval()
