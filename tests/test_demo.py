"""kipoi_tanger.tools.demo: the simulated regions of `demo --modisco` go through the model's own dataloader,
and (slow) modisco finds the planted GATA and E-box motifs in them."""
import os

import h5py
import numpy as np
import pytest

from kipoi_tanger.tools import demo


def test_simulated_regions_feed_the_models_dataloader(tmp_path):
    import kipoi_tanger
    model = demo.default_model()
    paths = demo.simulate_regions(model, str(tmp_path), n=4, seed=3)
    m = kipoi_tanger.load_model(model)
    X, _ = m.inputs({k: paths[k] for k in ("intervals_file", "fasta_file")})
    assert X.shape == (4, 4, 500)
    seqs = [ln.strip() for ln in open(paths["fasta_file"]) if not ln.startswith(">")]
    idx = X.numpy().argmax(axis=1)
    assert ["".join("ACGT"[j] for j in row) for row in idx] == seqs
    planted = [ln.split("\t") for ln in open(paths["planted"]).read().splitlines()]
    for name, start, end, motif, _, strand in planted:      # every planted motif is where the BED says
        i = int(name[3:])
        site = seqs[i][int(start):int(end)]
        want = {"gata": "GATAAG", "ebox": "CAGCTG", "control": "ACGTTC"}[motif]
        rc = want[::-1].translate(str.maketrans("ACGT", "TGCA"))
        assert site == (want if strand == "+" else rc)


def test_modisco_patterns_names_the_planted_motif(tmp_path):
    path = str(tmp_path / "m.h5")
    seq = np.zeros((12, 4), dtype=np.float32)
    core = "TTCTTATCAA"                                # CTTATC = GATAAG reverse-complemented
    seq[np.arange(10), ["ACGT".index(c) for c in core]] = 1
    contrib = seq * 0.01
    contrib[2:8] *= 100
    with h5py.File(path, "w") as f:
        g = f.create_group("pos_patterns/pattern_0")
        g["sequence"], g["contrib_scores"] = seq, contrib
        g["seqlets/n_seqlets"] = np.array([42])
    assert demo.modisco_patterns(path, {"gata": "GATAAG", "ebox": "CAGCTG"}) == [
        "pos pattern_0: 42 seqlets, core CTTATC = gata (GATAAG)"]


@pytest.mark.slow
def test_demo_modisco_finds_the_planted_motifs(tmp_path, capsys):
    if demo._modisco_executable() is None:
        pytest.skip("modisco-lite is not installed")
    paths = demo.demo(str(tmp_path / "out"), modisco=True, n_shuffles=2)
    out = capsys.readouterr().out
    assert os.path.isfile(paths["modisco_results"])
    assert "= ebox (CAGCTG)" in out and "= gata (GATAAG)" in out, out[-2000:]
