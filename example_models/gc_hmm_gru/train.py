"""Train the gc_hmm_gru model and report it next to the HMM's own posterior decoding.

    .venv/bin/python example_models/gc_hmm_gru/simulate.py   # data (already checked in)
    .venv/bin/python example_models/gc_hmm_gru/train.py      # ~2-5 min on one CPU core

Writes ``weights.pth`` (a CPU state_dict) and ``report.json`` next to this
script and prints the README table. Seeded, CPU, one thread and
``torch.use_deterministic_algorithms(True)``: a re-run gives the same bytes
(the sha256 of weights.pth is in report.json and README.md).

Per-base accuracy on the 200 held-out sequences is reported for

* the trained bidirectional GRU (argmax of its log-probabilities),
* HMM posterior decoding (argmax of the exact forward-backward posterior,
  hmm.py) -- the Bayes-optimal per-base decoder, the ceiling,
* each base on its own (GC -> H, AT -> L): the no-context baseline,
* seed 002's original setup (unidirectional GRU, 10 hidden units, embedding
  width 4, lr 0.02, batch 1, 5 epochs on 50 training sequences).
"""
import argparse
import gzip
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hmm  # noqa: E402
from model import GCStateGRU  # noqa: E402

SEED = 0
MODEL_KWARGS = dict(n_tokens=4, embed_size=8, hidden_size=32, n_layers=1, bidirectional=True,
                    n_states=2)
EPOCHS = 4
BATCH_SIZE = 50
LR = 5e-3
CLIP = 1.0
SEED_SETUP = dict(model=dict(n_tokens=4, embed_size=4, hidden_size=10, n_layers=1,
                             bidirectional=False, n_states=2),
                  n_train=50, epochs=5, batch_size=1, lr=0.02)


def read_tsv(path):
    """TSV (dna, hidden_state columns; optionally gzipped) -> tokens, states (N, L) int64."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        i_dna, i_hid = header.index("dna"), header.index("hidden_state")
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    x = np.stack([hmm.encode(r[i_dna], hmm.NUCLEOTIDES) for r in rows])
    s = np.stack([hmm.encode(r[i_hid], hmm.STATES) for r in rows])
    return x, s


def setup_determinism(seed):
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # other thread counts change float summation order
    torch.use_deterministic_algorithms(True)


def fit(net, x, s, epochs, batch_size, lr, clip, seed, log=print):
    """Adam on the per-base NLL; shuffles with a seeded torch.Generator."""
    x, s = torch.from_numpy(x), torch.from_numpy(s)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    net.train()
    for epoch in range(epochs):
        t0, total, n = time.time(), 0.0, 0
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            out = net(x[idx])
            loss = torch.nn.functional.nll_loss(out.reshape(-1, out.shape[-1]),
                                                s[idx].reshape(-1))
            opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
        sched.step()
        losses.append(total / n)
        log("epoch {}/{}: train NLL {:.4f} ({:.1f} s)".format(epoch + 1, epochs, losses[-1],
                                                             time.time() - t0))
    net.eval()
    return losses


@torch.no_grad()
def gru_logprobs(net, x, batch_size=100):
    net.eval()
    return torch.cat([net(torch.from_numpy(x[i:i + batch_size]))
                      for i in range(0, len(x), batch_size)]).numpy()


def sha256(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def markdown_table(report):
    acc = report["accuracy"]
    rows = [("HMM posterior decoding (forward-backward argmax; the optimum)", acc["hmm_posterior"]),
            ("gc_hmm_gru (bidirectional GRU, shipped weights)", acc["gru"]),
            ("seed 002 setup (unidirectional GRU-10, 50 seqs x 5 epochs, batch 1)",
             acc["seed_setup"]),
            ("each base alone (GC -> H, AT -> L)", acc["single_base"])]
    lines = ["| decoder | per-base accuracy, held-out ({} x {} bp) |".format(
        *report["test_shape"]), "|---|---|"]
    lines += ["| {} | {:.2f}% |".format(name, 100 * a) for name, a in rows]
    lines.append("\nGRU - posterior decoding: {:+.2f} points; mean per-base |P_GRU(H) - "
                 "P_HMM(H)| = {:.4f}.".format(100 * (acc["gru"] - acc["hmm_posterior"]),
                                              report["mean_abs_prob_diff_vs_posterior"]))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=HERE, help="where to write weights.pth and report.json")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--skip-seed-setup", action="store_true",
                   help="do not train seed 002's original setup")
    a = p.parse_args(argv)
    t_start = time.time()
    x_train, s_train = read_tsv(os.path.join(HERE, "data", "train.tsv.gz"))
    x_test, s_test = read_tsv(os.path.join(HERE, "data", "test.tsv.gz"))

    setup_determinism(SEED)
    net = GCStateGRU(**MODEL_KWARGS)
    losses = fit(net, x_train, s_train, a.epochs, BATCH_SIZE, LR, CLIP, SEED)
    train_s = time.time() - t_start
    weights = os.path.join(a.out, "weights.pth")
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, weights)

    lp_gru = gru_logprobs(net, x_test)
    lp_hmm, _ = hmm.posterior(x_test)
    acc = {"gru": float((lp_gru.argmax(-1) == s_test).mean()),
           "hmm_posterior": float((lp_hmm.argmax(-1) == s_test).mean()),
           "single_base": float((np.isin(x_test, [0, 3]).astype(int) == s_test).mean())}

    if not a.skip_seed_setup:
        setup_determinism(SEED)
        cfg = SEED_SETUP
        seed_net = GCStateGRU(**cfg["model"])
        fit(seed_net, x_train[:cfg["n_train"]], s_train[:cfg["n_train"]], cfg["epochs"],
            cfg["batch_size"], cfg["lr"], 0.0, SEED, log=lambda m: print("seed setup " + m))
        acc["seed_setup"] = float((gru_logprobs(seed_net, x_test).argmax(-1) == s_test).mean())
    else:
        acc["seed_setup"] = float("nan")

    report = {
        "accuracy": acc,
        "gru_minus_posterior_points": 100 * (acc["gru"] - acc["hmm_posterior"]),
        "mean_abs_prob_diff_vs_posterior": float(
            np.abs(np.exp(lp_gru[..., 0]) - np.exp(lp_hmm[..., 0])).mean()),
        "test_shape": list(x_test.shape),
        "train_shape": list(x_train.shape),
        "hmm": {k: np.asarray(v).tolist() for k, v in hmm.PARAMS._asdict().items()},
        "model_kwargs": MODEL_KWARGS,
        "training": {"seed": SEED, "epochs": a.epochs, "batch_size": BATCH_SIZE, "lr": LR,
                     "schedule": "cosine", "grad_clip": CLIP, "optimizer": "Adam",
                     "threads": 1, "train_nll_per_epoch": losses,
                     "train_seconds": round(train_s, 1)},
        "seed_setup": SEED_SETUP,
        "weights_sha256": sha256(weights),
        "versions": {"torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    with open(os.path.join(a.out, "report.json"), "w") as fh:
        json.dump(report, fh, indent=2)
        fh.write("\n")
    print(markdown_table(report))
    print("weights.pth sha256 {}; total {:.0f} s".format(report["weights_sha256"],
                                                        time.time() - t_start))


if __name__ == "__main__":
    main()
