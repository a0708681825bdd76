"""`make demo`: run kipoi_tanger's ops on shipped example data and say where
the outputs are. ``python -m kipoi_tanger.demo --out DIR``."""
import argparse
import os

import torch

from .predict import predict, predict_cross
from .product import apply_product
from .utils import random_one_hot


class _FlattenDense(torch.nn.Module):
    def __init__(self, length=10):
        super().__init__()
        self.dense = torch.nn.Linear(length * 4, 3)

    def forward(self, X, alpha=0, beta=1):
        return self.dense(X.reshape(X.shape[0], -1)) * beta + alpha


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--out', default='demo_output')
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    X = random_one_hot((5, 4, 10), random_state=0).float()
    model = _FlattenDense()
    alpha, beta = torch.randn(3, 1), torch.randn(2, 1)
    results = {
        'predict': predict(model, X, batch_size=2),
        'predict_cross': predict_cross(model, X, args=(alpha, beta[:1].expand(3, 1))),
        'apply_product': apply_product(predict, model, X, args=(alpha, beta)),
    }
    for name, value in results.items():
        path = os.path.join(args.out, f'{name}.pt')
        torch.save(value, path)
        print(f"{name:14s} {tuple(value.shape)} -> {path}")
    print(f"outputs in {os.path.abspath(args.out)}")


if __name__ == '__main__':
    main()
