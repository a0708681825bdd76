"""MotifCNN: a small BPNet-style profile + count model (torch).

Every non-linearity is its own ``nn.ReLU`` instance created in ``__init__`` so
that DeepLIFT's rescale rule reaches each of them (a functional ``torch.relu``
would silently be treated as linear).
"""
import torch


class MotifCNN(torch.nn.Module):
    """Conv1d(4->F, k21) + ReLU, ``n_layers`` dilated residual blocks
    ``h = h + ReLU(Conv1d(F->F, k3, dilation 2**i))``, then two heads on the
    central window (``trim = (in_len - out_len) // 2`` bp cut from each side):

    * profile: Conv1d(F->1, ``profile_kernel``) logits, ``(N, 1, L - 2*trim)``
      (softmax over positions gives the predicted read distribution);
    * counts: sum of ``h`` over the window -> Linear(F->1), ``(N, 1)``,
      the predicted ``log(1 + total reads)``. Sum rather than BPNet's mean:
      each motif instance adds a fixed log-count effect, whatever the window
      length, and the head does not have to learn a 1/L-scaled weight.

    Input: one-hot ``(N, 4, L)`` (``L = in_len`` for the shipped weights; other
    lengths > 2*trim also run).
    """

    def __init__(self, n_filters=32, n_layers=5, in_len=500, out_len=400, conv_kernel=21,
                 profile_kernel=15):
        super().__init__()
        self.iconv = torch.nn.Conv1d(4, n_filters, conv_kernel, padding=conv_kernel // 2)
        self.irelu = torch.nn.ReLU()
        self.rconvs = torch.nn.ModuleList([
            torch.nn.Conv1d(n_filters, n_filters, 3, padding=2 ** i, dilation=2 ** i)
            for i in range(1, n_layers + 1)])
        self.rrelus = torch.nn.ModuleList([torch.nn.ReLU() for _ in range(n_layers)])
        self.fconv = torch.nn.Conv1d(n_filters, 1, profile_kernel, padding=profile_kernel // 2)
        self.linear = torch.nn.Linear(n_filters, 1)
        self.trim = (in_len - out_len) // 2

    def forward(self, X):
        h = self.irelu(self.iconv(X))
        for conv, relu in zip(self.rconvs, self.rrelus):
            h = h + relu(conv(h))
        end = h.shape[-1] - self.trim
        profile = self.fconv(h)[:, :, self.trim:end]
        counts = self.linear(h[:, :, self.trim:end].sum(dim=2))
        return profile, counts


class CountsOnly(torch.nn.Module):
    """``(N, 1)`` counts of a MotifCNN: the output DeepLIFT explains."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, X):
        return self.model(X)[1]
