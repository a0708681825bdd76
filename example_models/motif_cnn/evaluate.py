"""Evaluate the trained MotifCNN with kipoi_tanger's own ops -> report.json["evaluation"].

    python evaluate.py            # after train.py; adds "evaluation" to report.json

1. Attribution AUROC: DeepLIFT/SHAP (``kipoi_tanger.deep_lift_shap``, 20
   dinucleotide-shuffled references) of the count output on held-out planted
   sequences (simulation seed 3). Each position of the output window gets the
   attribution of its observed base; positives are the bases of GATA and
   E-box occurrences, negatives every other position (control motifs
   included). Also: GATA-only, E-box-only, and control vs background (should
   be ~0.5: the control motif has no effect).
2. Marginalization (``kipoi_tanger.marginalize``): each motif substituted at
   the centre of clean background sequences (seed 4); mean change of the
   predicted log count, next to the simulation's true effect. The interaction
   is ``delta(GATA..E-box pair) - delta(GATA) - delta(E-box)``.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import simulate  # noqa: E402
from model import CountsOnly, MotifCNN  # noqa: E402
from train import MODEL_KWARGS  # noqa: E402

TEST_SEED, BACKGROUND_SEED = 3, 4
EFFECT_MOTIFS = ("gata", "ebox")
# name -> motif string ("N" keeps the background base) and a short description.
PAIR_GAP = 14        # bases between GATAAG and CAGCTG: centres 20 bp apart (< PAIR_DISTANCE)
FAR_GAP = 94         # centres 100 bp apart: no cooperation
MARGINALIZE = {
    "gata": "GATAAG",
    "gata_revcomp": "CTTATC",
    "ebox": "CAGCTG",
    "control": "ACGTTC",
    "gata_ebox_pair": "GATAAG" + "N" * PAIR_GAP + "CAGCTG",
    "gata_ebox_far": "GATAAG" + "N" * FAR_GAP + "CAGCTG",
}


def load_model(weights=os.path.join(HERE, "weights.pth")):
    """The trained MotifCNN (CPU, eval mode)."""
    model = MotifCNN(**MODEL_KWARGS)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()


def motif_mask(occurrences, length, names):
    """Boolean ``(N, length)``: True at the bases of occurrences of ``names``."""
    mask = np.zeros((len(occurrences), length), dtype=bool)
    for i, occ in enumerate(occurrences):
        for name, start, _ in occ:
            if name in names:
                mask[i, start:start + simulate.MOTIF_LEN] = True
    return mask


def auroc(scores, labels):
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auroc: labels need both positives and negatives")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def attributions(model, X, n_shuffles=20, random_state=0, batch_size=64):
    """DeepLIFT/SHAP of the count output, ``(N, 4, L)``."""
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    return deep_lift_shap(CountsOnly(model), X, target=0, batch_size=batch_size,
                          n_shuffles=n_shuffles, random_state=random_state, device="cpu")


def attribution_aurocs(attr, occurrences):
    """AUROCs over the output window; ``attr`` is ``(N, 4, L)``."""
    L = attr.shape[-1]
    lo, hi = (L - simulate.OUT_LEN) // 2, (L + simulate.OUT_LEN) // 2
    score = attr.sum(1).numpy()[:, lo:hi]
    masks = {k: motif_mask(occurrences, L, k)[:, lo:hi] for k in ("gata", "ebox", "control")}
    effect = masks["gata"] | masks["ebox"]
    background = ~(effect | masks["control"])
    out = {"planted_effect_motifs_vs_rest": auroc(score, effect),
           "planted_effect_motifs_vs_rest_abs": auroc(np.abs(score), effect)}
    for k in ("gata", "ebox", "control"):
        keep = masks[k] | background
        out[k + "_vs_background"] = auroc(score[keep], masks[k][keep])
    out["n_positive_bases"] = int(effect.sum())
    out["n_negative_bases"] = int((~effect).sum())
    return out


def marginal_effects(model, X, motifs=MARGINALIZE, batch_size=64):
    """Mean predicted log-count change and true change for each motif at the centre."""
    from kipoi_tanger.marginalize import marginalize
    seqs = ["".join(simulate.ALPHABET[i] for i in x.argmax(0)) for x in X.numpy()]
    base_truth = np.array([simulate.truth(s)[0] for s in seqs])
    L = X.shape[-1]
    out = {}
    for name, motif in motifs.items():
        before, after = marginalize(model, X, motif, batch_size=batch_size, device="cpu")
        delta = (after[1] - before[1])[:, 0].numpy()
        start = L // 2 - len(motif) // 2
        true = []
        for s in seqs:
            m = "".join(b if c == "N" else c for b, c in zip(s[start:start + len(motif)], motif))
            true.append(simulate.truth(s[:start] + m + s[start + len(motif):])[0])
        true = np.array(true) - base_truth
        out[name] = {"motif": motif, "mean_delta_counts": float(delta.mean()),
                     "sd_delta_counts": float(delta.std()), "true_delta_log_rate": float(true.mean())}
    out["interaction"] = {
        "mean_delta_counts": out["gata_ebox_pair"]["mean_delta_counts"]
        - out["gata"]["mean_delta_counts"] - out["ebox"]["mean_delta_counts"],
        "true_delta_log_rate": simulate.INTERACTION}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n_test", type=int, default=200)
    p.add_argument("--n_background", type=int, default=200)
    p.add_argument("--n_shuffles", type=int, default=20)
    p.add_argument("--random_state", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--weights", default=os.path.join(HERE, "weights.pth"))
    p.add_argument("--report", default=os.path.join(HERE, "report.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    model = load_model(args.weights)
    test = simulate.simulate_dataset(args.n_test, TEST_SEED)
    t0 = time.time()
    attr = attributions(model, torch.from_numpy(test["X"]), args.n_shuffles, args.random_state)
    t_attr = time.time() - t0
    aurocs = attribution_aurocs(attr, test["occurrences"])
    background = simulate.simulate_dataset(args.n_background, BACKGROUND_SEED, motifs=False)
    t0 = time.time()
    effects = marginal_effects(model, torch.from_numpy(background["X"]))
    t_marg = time.time() - t0

    with open(args.report) as fh:
        report = json.load(fh)
    report["evaluation"] = {
        "attribution_auroc": aurocs, "marginalization": effects,
        "settings": {k: v for k, v in vars(args).items() if k not in ("weights", "report")},
        "seeds": {"test": TEST_SEED, "background": BACKGROUND_SEED},
        "time_s": {"deep_lift_shap": round(t_attr, 1), "marginalize": round(t_marg, 1)},
    }
    with open(args.report, "w") as fh:
        json.dump(report, fh, indent=1)
    print(json.dumps(report["evaluation"], indent=1))


if __name__ == "__main__":
    main()
