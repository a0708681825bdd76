"""Measure keras_motif: what it predicts, its conversion to torch, and DeepLIFT/SHAP on the conversion.

    python evaluate.py            # writes report.json next to this script and prints it

1. Predictions on ``N_EVAL`` simulated windows of uniform random DNA (seed 3; chance motif
   occurrences left in, so labels are "the window holds an exact site"): AUROC and accuracy at 0.5
   of P(GATA) and P(E-box).
2. The Keras model converted to torch (``kipoi_tanger.frameworks.keras_to_torch``): the largest
   difference from Keras on those windows.
3. DeepLIFT/SHAP (``kipoi_tanger.deep_lift_shap``, 20 dinucleotide shuffles, random_state 0) on the
   converted model, on ``N_ATTR`` clean windows per motif with that motif planted: in how many do
   the 6 bases with the largest attribution make up exactly the planted site, and the share of the
   attribution that falls on it.
4. Time per window (one CPU thread; indicative only) of Keras ``predict_on_batch`` and of the
   converted torch module.
"""
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
N_EVAL, N_ATTR, N_SHUFFLES = 1000, 40, 20


def _local(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"keras_motif_{name}", os.path.join(HERE, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def auroc(score, label):
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    s = score[order]
    i = 0
    while i < len(s):                       # average ranks of ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = label.astype(bool)
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def load(model_dir=HERE):
    import kipoi
    return kipoi.get_model(model_dir, source="dir", with_dataloader=False)


def attribution_localisation(net, motif, target, n=N_ATTR, seed=5, n_shuffles=N_SHUFFLES):
    """DeepLIFT/SHAP on ``n`` clean windows with ``motif`` planted ('gata' or 'ebox')."""
    import torch
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    sim = _local("simulate")
    kinds = ("gata", "gata_minus") if motif == "gata" else ("ebox",)
    rng = np.random.default_rng(seed)
    seqs, sites = [], []
    for i in range(n):
        s, planted = sim.plant(sim.background(rng, sim.SEQ_LEN), rng, kinds[i % len(kinds)])
        seqs.append(s)
        sites.append(planted[0][1])
    X = torch.from_numpy(sim.one_hot(seqs)).transpose(1, 2).contiguous()       # (N, 4, L)

    class KerasLayout(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x.transpose(1, 2))

    attr = deep_lift_shap(KerasLayout(net), X, target=target, n_shuffles=n_shuffles, random_state=0,
                          device="cpu").sum(1).numpy()                          # (N, L)
    exact, share = 0, []
    for a, start in zip(attr, sites):
        top = set(np.argsort(-a)[:6].tolist())
        exact += top == set(range(start, start + 6))
        share.append(a[start:start + 6].sum() / np.abs(a).sum())
    return {"windows": n, "top6_exactly_the_site": int(exact), "mean_share_on_site": float(np.mean(share))}


def evaluate(n_eval=N_EVAL, n_attr=N_ATTR, timing=True):
    import torch
    from kipoi_tanger.frameworks.keras_to_torch import check_conversion
    sim = _local("simulate")
    model = load()
    seqs, labels, _ = sim.dataset(n_eval, seed=3, clean=False)
    X = sim.one_hot(seqs)
    y = np.concatenate([model.predict_on_batch(X[i:i + 100]) for i in range(0, len(X), 100)])
    report = {"n_eval": n_eval, "prevalence": {"gata": float(labels[:, 0].mean()), "ebox": float(labels[:, 1].mean())}}
    for j, name in enumerate(("gata", "ebox")):
        report[name] = {"auroc": auroc(y[:, j], labels[:, j]),
                        "accuracy_at_0.5": float(((y[:, j] > 0.5) == labels[:, j]).mean())}
    net = model.to_torch(X[:100])
    check = check_conversion(model.model, net, X)
    report["conversion"] = {"max_abs_diff": check.max_abs_diff, "max_rel_diff": check.max_rel_diff,
                            "ok": check.ok, "windows": check.n_examples}
    report["deeplift_shap"] = {"gata": attribution_localisation(net, "gata", 0, n_attr),
                               "ebox": attribution_localisation(net, "ebox", 1, n_attr, seed=6)}
    if timing:
        torch.set_num_threads(1)
        t = time.perf_counter()
        for i in range(0, len(X), 100):
            model.predict_on_batch(X[i:i + 100])
        keras_s = time.perf_counter() - t
        Xt = torch.from_numpy(X)
        t = time.perf_counter()
        with torch.no_grad():
            for i in range(0, len(X), 100):
                net(Xt[i:i + 100])
        torch_s = time.perf_counter() - t
        report["ms_per_window"] = {"keras_predict_on_batch": 1e3 * keras_s / len(X),
                                   "converted_torch": 1e3 * torch_s / len(X)}
    return report


if __name__ == "__main__":
    rep = evaluate()
    with open(os.path.join(HERE, "report.json"), "w") as fh:
        json.dump(rep, fh, indent=2)
        fh.write("\n")
    json.dump(rep, sys.stdout, indent=2)
    print()
