"""The seed tutorials' FlattenDense model (tangermeme predict/product tutorials), unchanged."""
import torch


class FlattenDense(torch.nn.Module):
    """Flatten a one-hot ``(N, 4, length)`` batch, dense to 3 outputs, then ``* beta + alpha``.

    ``alpha`` (additive) and ``beta`` (multiplicative) are the extra inputs of
    the seeds' product tutorial; Kipoi passes them positionally, as
    ``forward(seq, alpha, beta)``, because the schema's inputs are a list.
    Shapes ``(N, 1)`` or ``(N, 3)`` broadcast against the ``(N, 3)`` output.
    """

    def __init__(self, length=10):
        super(FlattenDense, self).__init__()
        self.dense = torch.nn.Linear(length * 4, 3)

    def forward(self, X, alpha=0, beta=1):
        X = X.reshape(X.shape[0], -1)
        return self.dense(X) * beta + alpha
