"""Fine-tune the stitched model with some sub-models frozen (seeded).

    .venv/bin/python example_models/composite/stitched/finetune.py --freeze m1 m3 --out /tmp/ft

The seed's recipe for scenario 1: merge the dataloaders of m1 and m3 (this
model's default dataloader, with ``targets_file``) and train the stitched
network for a new task, with the sub-models that should keep their weights
frozen (``nets.freeze``: ``requires_grad = False``, the Keras
``trainable = False``). Data: ``../data/train_*.tsv``. Writes
``weights.pth`` and ``finetune_log.json`` into ``--out`` (never over the
shipped weights unless asked to).
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--freeze", nargs="*", default=["m1", "m2", "m3"],
                   help="sub-models to keep fixed (default m1 m2 m3: only m4 learns)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="directory for weights.pth and finetune_log.json")
    a = p.parse_args(argv)
    import kipoi
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    model = kipoi.get_model(HERE, source="dir")
    net = nets.Stitched()
    net.load_state_dict({k: v.cpu() for k, v in model.model.state_dict().items()})
    frozen = nets.freeze(net, a.freeze)
    dl = model.default_dataloader(features1_file=os.path.join(DATA, "train_features1.tsv"),
                                  features2_file=os.path.join(DATA, "train_features2.tsv"),
                                  targets_file=os.path.join(DATA, "train_labels.tsv"))
    opt = torch.optim.Adam([q for q in net.parameters() if q.requires_grad], lr=a.lr)
    net.train()
    losses = []
    for _ in range(a.epochs):
        total, n = 0.0, 0
        for b in dl.batch_iter(batch_size=a.batch_size, shuffle=True):
            x = {k: torch.from_numpy(v) for k, v in b["inputs"].items()}
            y = torch.from_numpy(b["targets"])
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(**x), y)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(y), n + len(y)
        losses.append(total / n)
    os.makedirs(a.out, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, os.path.join(a.out, "weights.pth"))
    log = {"frozen": frozen, "epochs": a.epochs, "lr": a.lr, "seed": a.seed, "train_mse": losses}
    with open(os.path.join(a.out, "finetune_log.json"), "w") as fh:
        json.dump(log, fh, indent=1)
    print("frozen {}; train MSE {:.4f} -> {:.4f}".format(", ".join(a.freeze) or "nothing", losses[0], losses[-1]))
    return log


if __name__ == "__main__":
    main()
