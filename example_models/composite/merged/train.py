"""Train the ensembling model of scenario 2 on merged-dataloader batches (seeded).

    .venv/bin/python example_models/composite/merged/train.py [--epochs 40] [--out DIR]

The seed's recipe: the merged dataloader (this model's default dataloader,
dataloaders/merged with plan.yaml) runs m1 -> m2 and m3 on the raw tables
batch by batch and yields ``{"inputs": {"model2", "model3"}, "targets"}``;
the ensembling model (``nets.Ensemble``, Dense(7 -> 1)) is fitted to the
targets with MSE. Data: ``../data/{train,valid}_{features1,features2,
labels}.tsv`` (labels from a fixed linear teacher on (model2, model3) plus
noise with sd 0.05, ../make_models.py). Writes ``weights.pth`` (CPU
state_dict) and ``train_log.json`` (losses per epoch) into ``--out``.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")
sys.path.insert(0, os.path.dirname(HERE))
import nets  # noqa: E402


def dataloader(split):
    """The model's default (merged) dataloader on ``data/<split>_*.tsv``."""
    import kipoi
    Dl = kipoi.get_dataloader_factory(HERE, source="dir")   # default_dataloader: .
    files = {k: os.path.join(DATA, "{}_{}.tsv".format(split, v))
             for k, v in (("features1_file", "features1"), ("features2_file", "features2"),
                          ("targets_file", "labels"))}
    return Dl(**files)


def batches(dl, batch_size, shuffle):
    out = []
    for b in dl.batch_iter(batch_size=batch_size, shuffle=shuffle):
        out.append(({k: torch.from_numpy(v) for k, v in b["inputs"].items()}, torch.from_numpy(b["targets"])))
    return out


def mse(net, data):
    with torch.no_grad():
        num = sum(float(((net(**x) - y) ** 2).sum()) for x, y in data)
    return num / sum(len(y) for _, y in data)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=HERE, help="where to write weights.pth and train_log.json")
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)   # the dataloader's shuffle draws from numpy's global RNG
    train_dl, valid = dataloader("train"), batches(dataloader("valid"), 128, False)
    net = nets.Ensemble()
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    log = {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "seed": a.seed,
           "valid_mse_init": mse(net, valid), "train_mse": [], "valid_mse": []}
    for _ in range(a.epochs):
        total, n = 0.0, 0
        for x, y in batches(train_dl, a.batch_size, True):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(**x), y)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(y), n + len(y)
        log["train_mse"].append(total / n)
        log["valid_mse"].append(mse(net, valid))
    log["noise_variance"] = 0.05 ** 2
    os.makedirs(a.out, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, os.path.join(a.out, "weights.pth"))
    with open(os.path.join(a.out, "train_log.json"), "w") as fh:
        json.dump(log, fh, indent=1)
    print("valid MSE {:.4f} -> {:.5f} (noise variance {:.4f})".format(
        log["valid_mse_init"], log["valid_mse"][-1], log["noise_variance"]))
    return log


if __name__ == "__main__":
    main()
