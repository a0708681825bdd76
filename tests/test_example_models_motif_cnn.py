"""example_models/motif_cnn: the shipped BPNet-style model loads through Kipoi,
predicts on its example files, passes `kipoi test` from the repository root,
and has learned the simulation (attributions peak at planted motifs,
marginalizing GATAAG raises the count, the control motif does nothing).

Training is not re-run here except in the slow reproducibility test.
"""
import hashlib
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(REPO, "example_models", "motif_cnn")
KIPOI = os.path.join(REPO, ".venv", "bin", "kipoi")


def _load_scripts():
    """Import the model dir's scripts without leaking them: other model dirs also
    ship simulate.py / model.py / train.py, which must not shadow these (or be
    shadowed by them) in sys.modules or sys.path."""
    names = ("simulate", "model", "train", "evaluate")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    path = list(sys.path)
    sys.path.insert(0, MODEL_DIR)
    try:
        return importlib.import_module("simulate"), importlib.import_module("evaluate")
    finally:
        sys.path[:] = path
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


simulate, evaluate = _load_scripts()


@pytest.fixture(scope="module")
def net():
    return evaluate.load_model()


@pytest.fixture(scope="module")
def report():
    with open(os.path.join(MODEL_DIR, "report.json")) as fh:
        return json.load(fh)


def _example_regions():
    rows = []
    with open(os.path.join(MODEL_DIR, "example_files", "regions.bed")) as fh:
        for line in fh:
            chrom, start, end, name, _, strand = line.split()
            rows.append((chrom, int(start), int(end), name, strand))
    return rows


def _read_fasta(path):
    seqs, name = {}, None
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line.startswith(">"):
                name = line[1:].split()[0]
                seqs[name] = []
            else:
                seqs[name].append(line)
    return {k: "".join(v) for k, v in seqs.items()}


def test_weights_match_the_recorded_hash(report):
    with open(os.path.join(MODEL_DIR, "weights.pth"), "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == report["weights_sha256"]
    state = torch.load(os.path.join(MODEL_DIR, "weights.pth"), weights_only=True)
    assert all(v.device.type == "cpu" for v in state.values())


def test_example_files_are_regenerated_exactly(tmp_path):
    simulate.write_example_files(str(tmp_path))
    for name in ("genome.fa", "genome.fa.fai", "regions.bed", "planted.bed"):
        with open(tmp_path / name, "rb") as a, open(os.path.join(MODEL_DIR, "example_files", name), "rb") as b:
            assert a.read() == b.read(), name


def test_simulation_ground_truth():
    data = simulate.simulate_dataset(40, seed=11)
    background = simulate.simulate_dataset(10, seed=12, motifs=False)
    assert all(not simulate.scan(s) for s in background["seqs"])
    assert np.allclose(background["log_rate"], np.log(simulate.BASE_READS))
    # Labels are a function of the sequence: every occurrence found by scanning was planted.
    for seq, occ in zip(data["seqs"], data["occurrences"]):
        assert simulate.truth(seq)[2] == occ
    seq = background["seqs"][0]
    start = simulate.IN_LEN // 2 - 3
    for name in ("gata", "ebox", "control"):
        planted = simulate.plant(seq, [(name, start, "+")])
        assert simulate.truth(planted)[0] - np.log(simulate.BASE_READS) == pytest.approx(simulate.EFFECTS[name])
    pair = simulate.plant(seq, [("gata", 220, "+"), ("ebox", 250, "+")])
    assert simulate.truth(pair)[0] - np.log(simulate.BASE_READS) == pytest.approx(
        simulate.EFFECTS["gata"] + simulate.EFFECTS["ebox"] + simulate.INTERACTION)
    far = simulate.plant(seq, [("gata", 150, "+"), ("ebox", 300, "+")])
    assert simulate.truth(far)[0] - np.log(simulate.BASE_READS) == pytest.approx(
        simulate.EFFECTS["gata"] + simulate.EFFECTS["ebox"])
    # Expected reads add up to the expected total.
    log_rate, rate, _ = simulate.truth(pair)
    assert rate.sum() == pytest.approx(np.exp(log_rate))


def test_kipoi_predicts_on_the_example_files(net):
    import kipoi  # HOME is a throwaway dir (conftest)
    kmodel = kipoi.get_model(MODEL_DIR, source="dir")
    dl = kmodel.default_dataloader.init_example()
    batch = dl.load_all()
    X = batch["inputs"]
    assert X.shape == (32, 4, 500) and X.dtype == np.float32
    profile, counts = kmodel.predict_on_batch(X)
    assert profile.shape == (32, 1, 400) and counts.shape == (32, 1)

    # Independent path: read the FASTA ourselves, reverse-complement minus-strand regions.
    genome = _read_fasta(os.path.join(MODEL_DIR, "example_files", "genome.fa"))
    regions = _example_regions()
    seqs = []
    for chrom, start, end, _, strand in regions:
        s = genome[chrom][start:end]
        seqs.append(simulate.reverse_complement(s) if strand == "-" else s)
    assert np.array_equal(X, simulate.one_hot(seqs))
    assert list(batch["metadata"]["ranges"]["id"]) == [r[3] for r in regions]
    with torch.no_grad():
        p_direct, c_direct = net(torch.from_numpy(X))
    assert np.allclose(profile, p_direct.numpy(), atol=1e-5)
    assert np.allclose(counts, c_direct.numpy(), atol=1e-5)

    # The learned effects show on the example regions (labels are in the BED names).
    by_label = {}
    for (_, _, _, name, _), c in zip(regions, counts[:, 0]):
        by_label.setdefault(name.split("_", 1)[1], []).append(c)
    mean = {k: float(np.mean(v)) for k, v in by_label.items()}
    assert mean["gata"] - mean["none"] == pytest.approx(simulate.EFFECTS["gata"], abs=0.2)
    assert mean["gata_minus"] - mean["none"] == pytest.approx(simulate.EFFECTS["gata"], abs=0.2)
    assert mean["ebox"] - mean["none"] == pytest.approx(simulate.EFFECTS["ebox"], abs=0.2)
    assert abs(mean["control"] - mean["none"]) < 0.1
    assert mean["gata_ebox_pair"] - mean["gata_ebox_far"] > 0.2   # cooperation needs proximity


def test_adapter_reads_the_tanger_section():
    from kipoi_tanger.adapter import load
    target = load(MODEL_DIR)
    spec = target.spec
    assert spec.sequence_name == "seq" and str(spec.layout) == "(A, L)"
    assert spec.output_name == "counts" and spec.reduce is None
    assert set(spec.ops) == {"predict", "deeplift-shap", "marginalize", "ablate", "space", "ism", "variant-effect"}
    target.require("deeplift-shap", explain=True)


def test_kipoi_test_passes_from_the_repository_root(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    r = subprocess.run([KIPOI, "test", "example_models/motif_cnn", "--source", "dir"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "All predictions match" in out, out[-3000:]


def test_attributions_peak_at_planted_motifs(net):
    # The first held-out sequences of evaluate.py (simulation seed 3), few shuffles.
    test = simulate.simulate_dataset(8, evaluate.TEST_SEED)
    attr = evaluate.attributions(net, torch.from_numpy(test["X"]), n_shuffles=4, random_state=0)
    assert attr.shape == (8, 4, 500)
    # DeepLIFT only scores the observed base.
    assert torch.all(attr[torch.from_numpy(test["X"]) == 0] == 0)
    aurocs = evaluate.attribution_aurocs(attr, test["occurrences"])
    assert aurocs["planted_effect_motifs_vs_rest"] >= 0.9
    score = attr.sum(1).numpy()
    effect = evaluate.motif_mask(test["occurrences"], 500, ("gata", "ebox"))
    control = evaluate.motif_mask(test["occurrences"], 500, ("control",))
    n_checked = 0
    for i in range(len(score)):
        if not effect[i].any():
            continue
        n_checked += 1
        top = int(np.argmax(score[i]))
        assert effect[i, max(top - 1, 0):top + 2].any(), (i, top, test["occurrences"][i])
        if control[i].any():
            assert np.abs(score[i][control[i]]).max() < 0.25 * score[i][effect[i]].max()
    assert n_checked >= 5


def test_marginalizing_gata_raises_counts_and_the_control_does_not(net):
    background = simulate.simulate_dataset(16, evaluate.BACKGROUND_SEED, motifs=False)
    X = torch.from_numpy(background["X"])
    motifs = {k: evaluate.MARGINALIZE[k] for k in ("gata", "ebox", "control", "gata_ebox_pair")}
    eff = evaluate.marginal_effects(net, X, motifs)
    assert eff["gata"]["mean_delta_counts"] == pytest.approx(simulate.EFFECTS["gata"], abs=0.15)
    assert eff["ebox"]["mean_delta_counts"] == pytest.approx(simulate.EFFECTS["ebox"], abs=0.15)
    assert abs(eff["control"]["mean_delta_counts"]) < 0.05
    assert eff["interaction"]["mean_delta_counts"] > 0.25

    # Every single background sequence goes up with GATAAG.
    from kipoi_tanger.marginalize import marginalize
    before, after = marginalize(net, X, "GATAAG", device="cpu")
    assert isinstance(before, list) and len(before) == 2
    assert before[0].shape == (16, 1, 400)
    assert torch.all(after[1] - before[1] > 0.5)


@pytest.mark.slow
def test_training_reproduces_the_shipped_weights(tmp_path, report):
    out = tmp_path / "weights.pth"
    r = subprocess.run([sys.executable, os.path.join(MODEL_DIR, "train.py"), "--out", str(out),
                        "--report", str(tmp_path / "report.json")], capture_output=True, text=True,
                       timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(tmp_path / "report.json") as fh:
        assert json.load(fh)["state_dict_sha256"] == report["state_dict_sha256"]
    # torch.save stores the file's base name in the archive: same name, same bytes.
    with open(out, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == report["weights_sha256"]
