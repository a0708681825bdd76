"""Small torch architectures shared by tests and benchmarks.

They mirror the models of the seed tutorials and of the tangermeme baseline in
../shared/notes/tangermeme-1.6.0.md (FlattenDense, SmallCNN, BPNetLike).
"""
import torch


class FlattenDense(torch.nn.Module):
    """The seeds' model: flatten, dense to 3 outputs, ``* beta + alpha``."""

    def __init__(self, length=10):
        super().__init__()
        self.dense = torch.nn.Linear(length * 4, 3)

    def forward(self, X, alpha=0, beta=1):
        X = X.reshape(X.shape[0], -1)
        return self.dense(X) * beta + alpha


class SmallCNN(torch.nn.Module):
    """Conv + ReLU + MaxPool twice, then dense layers; input (N, 4, 200)."""

    def __init__(self, length=200, n_outputs=3, pool=4, pool_stride=None):
        super().__init__()
        self.c1 = torch.nn.Conv1d(4, 64, 11, padding=5)
        self.r1 = torch.nn.ReLU()
        self.p1 = torch.nn.MaxPool1d(pool, stride=pool_stride)
        self.c2 = torch.nn.Conv1d(64, 64, 5, padding=2)
        self.r2 = torch.nn.ReLU()
        self.p2 = torch.nn.MaxPool1d(pool, stride=pool_stride)
        with torch.no_grad():
            n = self._features(torch.zeros(1, 4, length)).shape[1]
        self.l1 = torch.nn.Linear(n, 64)
        self.r3 = torch.nn.ReLU()
        self.l2 = torch.nn.Linear(64, n_outputs)

    def _features(self, X):
        h = self.p1(self.r1(self.c1(X)))
        h = self.p2(self.r2(self.c2(h)))
        return h.reshape(h.shape[0], -1)

    def forward(self, X):
        return self.l2(self.r3(self.l1(self._features(X))))


class BPNetLike(torch.nn.Module):
    """BPNet-like: Conv1d(4→F, k21) + ReLU, ``n_layers`` dilated residual blocks,
    a profile head (trimmed to ``out_len``) and a counts head.

    ``forward(X, alpha=0, beta=1)`` returns ``(profile (N,1,out_len), counts*beta+alpha (N,1))``.
    With the defaults (2114 bp in, 64 filters, 8 layers) it is the baseline model of the notes.
    """

    def __init__(self, n_filters=64, n_layers=8, in_len=2114, out_len=1000):
        super().__init__()
        self.iconv = torch.nn.Conv1d(4, n_filters, 21, padding=10)
        self.irelu = torch.nn.ReLU()
        self.rconvs = torch.nn.ModuleList([
            torch.nn.Conv1d(n_filters, n_filters, 3, padding=2 ** i, dilation=2 ** i)
            for i in range(1, n_layers + 1)])
        self.rrelus = torch.nn.ModuleList([torch.nn.ReLU() for _ in range(n_layers)])
        self.fconv = torch.nn.Conv1d(n_filters, 1, 75, padding=37)
        self.linear = torch.nn.Linear(n_filters, 1)
        self.trim = (in_len - out_len) // 2
        self.out_len = out_len

    def forward(self, X, alpha=0, beta=1):
        h = self.irelu(self.iconv(X))
        for conv, relu in zip(self.rconvs, self.rrelus):
            h = h + relu(conv(h))
        profile = self.fconv(h)[:, :, self.trim:self.trim + self.out_len]
        counts = self.linear(h.mean(dim=2)) * beta + alpha
        return profile, counts


class CountsOnly(torch.nn.Module):
    """Wrap a (profile, counts) model so DeepLIFT sees ``(N, n_targets)``."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, X, *args):
        return self.model(X, *args)[1]
