"""A small Basset-style CNN on the (4, L, 1) input layout of the Kipoi zoo's Basset models."""
import torch


class BassetLike(torch.nn.Module):
    """Conv2d/BatchNorm/ReLU/MaxPool blocks on ``(N, 4, L, 1)``, two dense layers, sigmoid.

    Kipoi's Basset ports take one-hot DNA as ``(N, 4, 600, 1)`` (alphabet as
    the channel axis, a dummy trailing width axis) and use ``(k, 1)`` kernels;
    this model keeps that convention at a smaller size.

    Parameters
    ----------
    seq_len : int, optional
        Input length L. Default 200.
    n_tasks : int, optional
        Number of sigmoid outputs. Default 3.
    n_filters : tuple of two ints, optional
        Filters of the two conv blocks. Default (32, 32).
    """

    def __init__(self, seq_len=200, n_tasks=3, n_filters=(32, 32)):
        super().__init__()
        f1, f2 = n_filters
        self.conv1 = torch.nn.Conv2d(4, f1, (9, 1), padding=(4, 0))
        self.bn1 = torch.nn.BatchNorm2d(f1)
        self.relu1 = torch.nn.ReLU()
        self.pool1 = torch.nn.MaxPool2d((3, 1))
        self.conv2 = torch.nn.Conv2d(f1, f2, (5, 1), padding=(2, 0))
        self.bn2 = torch.nn.BatchNorm2d(f2)
        self.relu2 = torch.nn.ReLU()
        self.pool2 = torch.nn.MaxPool2d((4, 1))
        n = f2 * ((seq_len // 3) // 4)
        self.fc1 = torch.nn.Linear(n, 32)
        self.relu3 = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(32, n_tasks)
        self.sigmoid = torch.nn.Sigmoid()

    def forward(self, x):
        h = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        h = self.pool2(self.relu2(self.bn2(self.conv2(h))))
        h = self.relu3(self.fc1(h.reshape(h.shape[0], -1)))
        return self.sigmoid(self.fc2(h))
