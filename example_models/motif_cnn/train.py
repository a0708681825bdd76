"""Train MotifCNN on simulated data (seeded, CPU, deterministic) -> weights.pth + report.json.

    python train.py                    # the shipped weights (seed 0)
    python train.py --out /tmp/w.pth --report /tmp/r.json   # re-run and compare the sha256

Bit-for-bit reproducible for a given seed, thread count, torch and numpy
version: the data come from ``simulate.py`` with fixed seeds, torch runs with
``use_deterministic_algorithms(True)`` on a fixed number of CPU threads, and
minibatch order comes from a seeded ``torch.Generator``.

Loss (as BPNet): multinomial NLL of the observed reads under softmax(profile)
+ ``count_weight`` * MSE of the predicted vs observed ``log(1 + total reads)``.
"""
import argparse
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
import simulate  # noqa: E402
from model import MotifCNN  # noqa: E402

# Data seeds: evaluate.py uses 3 (held-out planted) and 4 (clean background).
TRAIN_SEED, VAL_SEED = 1, 2
MODEL_KWARGS = {"n_filters": 32, "n_layers": 5, "in_len": simulate.IN_LEN,
                "out_len": simulate.OUT_LEN, "conv_kernel": 21, "profile_kernel": 15}


def sha256_file(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def sha256_state(state):
    """Hash of the tensors themselves (names, shapes, dtypes, bytes), independent of
    how torch.save lays out the file."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k].detach().cpu().contiguous()
        h.update("{}:{}:{}".format(k, tuple(v.shape), v.dtype).encode())
        h.update(v.numpy().tobytes())
    return h.hexdigest()


def losses(model, X, reads, counts):
    profile, pred_counts = model(X)
    logp = torch.log_softmax(profile[:, 0], dim=-1)
    mnll = -(reads * logp).sum(-1)
    mse = (pred_counts[:, 0] - counts) ** 2
    return mnll, mse, profile, pred_counts


def pearson(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@torch.no_grad()
def evaluate_split(model, data, batch_size=250):
    model.eval()
    X, reads, counts = (torch.from_numpy(data[k]) for k in ("X", "reads", "counts"))
    mnll, mse, pc, prof_r = [], [], [], []
    rates = np.stack([simulate.truth(s)[1] for s in data["seqs"]])
    for s in range(0, len(X), batch_size):
        e = s + batch_size
        a, b, profile, pred = losses(model, X[s:e], reads[s:e], counts[s:e])
        mnll.append(a)
        mse.append(b)
        pc.append(pred[:, 0])
        p = torch.softmax(profile[:, 0], -1).numpy()
        prof_r += [pearson(p[i], rates[s + i]) for i in range(len(p))]
    pc = torch.cat(pc).numpy()
    return {"mnll": float(torch.cat(mnll).mean()), "count_mse": float(torch.cat(mse).mean()),
            "count_pearson_observed": pearson(pc, data["counts"]),
            "count_pearson_truth": pearson(pc, data["log_rate"]),
            "profile_pearson_truth_mean": float(np.mean(prof_r))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="torch seed (init + batch order)")
    p.add_argument("--n_train", type=int, default=8000)
    p.add_argument("--n_val", type=int, default=500)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--count_weight", type=float, default=50.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(HERE, "weights.pth"))
    p.add_argument("--report", default=os.path.join(HERE, "report.json"))
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    t0, c0 = time.time(), time.process_time()
    train = simulate.simulate_dataset(args.n_train, TRAIN_SEED)
    val = simulate.simulate_dataset(args.n_val, VAL_SEED)
    t_sim, c_sim = time.time() - t0, time.process_time() - c0

    model = MotifCNN(**MODEL_KWARGS)
    with torch.no_grad():
        # Start the count head at the mean log count: a summed window of 400
        # random features would otherwise start far off and dominate early steps.
        model.linear.weight.zero_()
        model.linear.bias.fill_(float(train["counts"].mean()))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * ((args.n_train + args.batch_size - 1) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps,
                                                pct_start=0.15)
    X, reads, counts = (torch.from_numpy(train[k]) for k in ("X", "reads", "counts"))
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    t1, c1 = time.time(), time.process_time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(X), generator=gen)
        tot = [0.0, 0.0]
        for s in range(0, len(X), args.batch_size):
            idx = order[s:s + args.batch_size]
            mnll, mse, _, _ = losses(model, X[idx], reads[idx], counts[idx])
            loss = mnll.mean() + args.count_weight * mse.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot[0] += float(mnll.detach().sum())
            tot[1] += float(mse.detach().sum())
        row = {"epoch": epoch + 1, "train_mnll": tot[0] / len(X), "train_count_mse": tot[1] / len(X)}
        row.update({"val_" + k: v for k, v in evaluate_split(model, val).items()})
        row["elapsed_s"] = round(time.time() - t1, 1)
        history.append(row)
        print(json.dumps(row), flush=True)
    t_train, c_train = time.time() - t1, time.process_time() - c1

    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, args.out)
    report = {
        "model_kwargs": MODEL_KWARGS,
        "simulation": {"motifs": simulate.MOTIFS, "effects": simulate.EFFECTS,
                       "interaction": simulate.INTERACTION, "pair_distance": simulate.PAIR_DISTANCE,
                       "base_reads": simulate.BASE_READS, "in_len": simulate.IN_LEN,
                       "out_len": simulate.OUT_LEN, "train_seed": TRAIN_SEED, "val_seed": VAL_SEED},
        "training": {k: v for k, v in vars(args).items() if k not in ("out", "report")},
        "history": history,
        "final_val": {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")},
        "weights_sha256": sha256_file(args.out),
        "state_dict_sha256": sha256_state(state),
        # Wall clock depends on how busy the machine is; CPU time (process_time) much less.
        "time_s": {"simulate_wall": round(t_sim, 1), "train_wall": round(t_train, 1),
                   "simulate_cpu": round(c_sim, 1), "train_cpu": round(c_train, 1)},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__},
    }
    with open(args.report, "w") as fh:
        json.dump(report, fh, indent=1)
    print("weights", args.out, report["weights_sha256"])


if __name__ == "__main__":
    main()
