"""kipoi_tanger.tools.export: tfmodisco-lite inputs (`modisco motifs -s ohe.npz -a shap.npz`)."""
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from kipoi_tanger import cli
from kipoi_tanger.tools.export import export_modisco, modisco_window
from kipoi_tanger.tools.results import ResultsError
from results_files import MOTIF, write_dls, write_marginalize

VENV_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "bin")


def load_arr0(path):
    with np.load(path) as z:
        assert z.files == ["arr_0"]          # np.savez(path, array): what `modisco motifs` reads
        return z["arr_0"]


@pytest.mark.parametrize("layout", ["(L, A)", "(A, L, 1)", "(L)"])
def test_export_hypothetical_layout_and_keys(tmp_path, layout):
    h5 = str(tmp_path / "dls.h5")
    d = write_dls(h5, layout=layout, hypothetical=True)
    out = export_modisco(h5, str(tmp_path / "run"))
    assert out["ohe"] == str(tmp_path / "run_ohe.npz") and out["shap"] == str(tmp_path / "run_shap.npz")
    ohe, shap = load_arr0(out["ohe"]), load_arr0(out["shap"])
    assert ohe.shape == shap.shape == (6, 4, 40)       # (N, 4, L), not (N, L, 4)
    assert ohe.dtype == shap.dtype == np.float32
    np.testing.assert_array_equal(ohe, d["X"])
    np.testing.assert_allclose(shap, d["hyp"])
    assert out["hypothetical"] and out["n"] == 6 and out["length"] == 40 and out["window"] == 40
    assert "-w 40" in out["command"] and out["ohe"] in out["command"]


def test_export_separate_hypothetical_dataset_and_bed(tmp_path):
    h5 = str(tmp_path / "dls.h5")
    d = write_dls(h5, separate_hypothetical=True)
    out = export_modisco(h5, str(tmp_path / "sub") + "/")
    assert out["ohe"] == str(tmp_path / "sub" / "ohe.npz")
    np.testing.assert_allclose(load_arr0(out["shap"]), d["hyp"])
    lines = [ln.split("\t") for ln in open(out["bed"]).read().splitlines()]
    assert len(lines) == 6
    assert lines[1] == ["chr1", "100", "140", "r1", "0", "-"]
    assert lines[4] == ["chr1", "400", "440", "r4", "0", "+"]


def test_export_projected_attributions_warns(tmp_path):
    h5 = str(tmp_path / "dls.h5")
    d = write_dls(h5, ranges=False)
    with pytest.warns(RuntimeWarning, match="not hypothetical"):
        out = export_modisco(h5, str(tmp_path / "p"))
    np.testing.assert_allclose(load_arr0(out["shap"]), d["attr"])
    assert out["bed"] is None and not out["hypothetical"]


def test_modisco_reads_the_export(tmp_path):
    """Read the files exactly as `modisco motifs` does (its loader and window)."""
    mcli = pytest.importorskip("modiscolite.cli")
    from modiscolite.util import calculate_window_offsets
    h5 = str(tmp_path / "dls.h5")
    d = write_dls(h5, hypothetical=True, length=41)
    out = export_modisco(h5, str(tmp_path / "m"))
    from pathlib import Path
    seqs, attrs = mcli._load_input(Path(out["ohe"])), mcli._load_input(Path(out["shap"]))
    w = out["window"]
    assert w == 40
    start, end = calculate_window_offsets(seqs.shape[2] // 2, w)
    one_hot = seqs[:, :, start:end].transpose(0, 2, 1)
    hyp = attrs[:, :, start:end].transpose(0, 2, 1)
    assert one_hot.shape == (6, w, 4) and not one_hot.shape[1] < w   # the check modisco makes
    np.testing.assert_array_equal(one_hot.sum(axis=2), 1)
    np.testing.assert_allclose(hyp * one_hot, (d["hyp"] * d["X"])[:, :, start:end].transpose(0, 2, 1))


@pytest.mark.parametrize("length,expected", [(40, 40), (41, 40), (1000, 400), (401, 400), (399, 398), (2, 2)])
def test_modisco_window(length, expected):
    assert modisco_window(length) == expected


def test_export_errors(tmp_path):
    h5 = str(tmp_path / "noinputs.h5")
    write_dls(h5, inputs=False)
    with pytest.raises(ResultsError, match="--keep_inputs"):
        export_modisco(h5, str(tmp_path / "x"))
    m = str(tmp_path / "m.h5")
    write_marginalize(m)
    with pytest.raises(ResultsError, match="no 'attributions' dataset"):
        export_modisco(m, str(tmp_path / "x"))
    bad = str(tmp_path / "bad.h5")
    write_dls(bad, layout="(A, L)")
    with h5py.File(bad, "a") as f:
        x = f["inputs"][:]
        x[0, :, 3] = 0.25
        f["inputs"][...] = x
    with pytest.raises(ResultsError, match="not one-hot"):
        export_modisco(bad, str(tmp_path / "x"))
    assert not os.path.exists(str(tmp_path / "x_ohe.npz"))


def test_cli_export_modisco(tmp_path, capsys):
    h5 = str(tmp_path / "dls.h5")
    write_dls(h5, hypothetical=True)
    assert cli.main(["export", "modisco", h5, "-o", str(tmp_path / "e")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[:3] == [str(tmp_path / f"e_{k}") for k in ("ohe.npz", "shap.npz", "regions.bed")]
    assert "modisco motifs -s" in out
    # 6 regions of 40 bp: one warning line, that modisco can find nothing there
    assert len(err.splitlines()) == 1 and err.startswith(f"warning: {h5}: modisco motifs will fail or find no patterns")
    write_dls(h5, inputs=False)
    assert cli.main(["export", "modisco", h5, "-o", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--keep_inputs" in err[0]


def _planted_scores(n, L=200, rng=0, strength=4.0):
    """One-hot (n, 4, L) with hypothetical scores: noise plus a strong 8-bp bump at a random site per region."""
    rng = np.random.default_rng(rng)
    ohe = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, L))].transpose(0, 2, 1).copy()
    hyp = rng.normal(0, 0.05, (n, 4, L)).astype(np.float32)
    for i, p in enumerate(rng.integers(30, L - 38, n)):
        hyp[i, :, p:p + 8] += strength
    return ohe, hyp


def _write(path, ohe, hyp):
    with h5py.File(path, "w") as f:
        f["attributions"] = hyp
        f["inputs"] = ohe
        f.attrs["op"] = "deeplift-shap"
        f.attrs["layout"] = "(A, L)"
        f.attrs["parameters"] = '{"hypothetical": true}'


def test_seqlet_counts_decide_the_modisco_warning(tmp_path):
    """Too few seqlets of either sign: modisco drops both metaclusters (> 100 needed) -> a warning naming
    the counts; plenty: no warning."""
    pytest.importorskip("modiscolite")
    from kipoi_tanger.tools.export import count_seqlets
    few, many = str(tmp_path / "few.h5"), str(tmp_path / "many.h5")
    _write(few, *_planted_scores(20))
    _write(many, *_planted_scores(400))
    with pytest.warns(RuntimeWarning, match=r"modisco motifs will find no patterns: \d+ positive and \d+ "
                                            r"negative seqlets in 20 regions.*more than 100 of one sign"):
        out = export_modisco(few, str(tmp_path / "few"))
    assert max(out["seqlets"]) <= 100
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = export_modisco(many, str(tmp_path / "many"))
    assert out["seqlets"][0] >= 200 and out["seqlets"] == count_seqlets(*_planted_scores(400), 200)


def test_without_modisco_lite_the_warning_uses_a_bound(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_modisco(name, *args, **kwargs):
        if name.startswith("modiscolite"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_modisco)
    h5 = str(tmp_path / "dls.h5")
    _write(h5, *_planted_scores(5, L=100))
    with pytest.warns(RuntimeWarning, match="at most 35 seqlets fit in 5 regions of 100 bp"):
        out = export_modisco(h5, str(tmp_path / "e"))
    assert out["seqlets"] is None


# ---------------------------------------------------------------------------
# tfmodisco-lite on the attributions of a model with a planted motif

class PlantedMotif:
    """Conv1d filter = GATAAG (+1 match / -1 mismatch, bias -3) -> ReLU ->
    sum over positions: the output counts (near-)matches of the motif."""

    @staticmethod
    def build():
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv1d(4, 1, len(MOTIF))
                w = torch.full((1, 4, len(MOTIF)), -1.0)
                for j, c in enumerate(MOTIF):
                    w[0, "ACGT".index(c), j] = 1.0
                self.conv.weight.data.copy_(w)
                self.conv.bias.data.fill_(-3.0)
                self.relu = torch.nn.ReLU()

            def forward(self, X):
                return self.relu(self.conv(X)).sum(dim=-1)

        return Net().eval()


def _modisco_exe():
    exe = os.path.join(VENV_BIN, "modisco")
    return exe if os.path.exists(exe) else shutil.which("modisco")


@pytest.mark.slow
def test_modisco_motifs_finds_planted_motif(tmp_path):
    if _modisco_exe() is None:
        pytest.skip("modisco-lite is not installed (optional test dependency)")
    import torch
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    rng = np.random.default_rng(0)
    n, L = 200, 100
    idx = rng.integers(0, 4, (n, L))
    for i, p in enumerate(rng.integers(10, L - 16, n)):
        idx[i, p:p + len(MOTIF)] = ["ACGT".index(c) for c in MOTIF]
    X = torch.from_numpy(np.eye(4, dtype=np.float32)[idx].transpose(0, 2, 1).copy())
    hyp = deep_lift_shap(PlantedMotif.build(), X, hypothetical=True, n_shuffles=8, random_state=0,
                         device="cpu").numpy()
    h5 = str(tmp_path / "dls.h5")
    with h5py.File(h5, "w") as f:       # the runner's layout, inputs in the model's (L, A) layout
        f["attributions"] = hyp
        f["inputs"] = X.numpy().transpose(0, 2, 1)
        f.attrs["op"] = "deeplift-shap"
        f.attrs["layout"] = "(L, A)"
        f.attrs["parameters"] = '{"hypothetical": true}'
    assert cli.main(["export", "modisco", h5, "-o", str(tmp_path / "m")]) == 0
    res = str(tmp_path / "modisco.h5")
    r = subprocess.run([_modisco_exe(), "motifs", "-s", str(tmp_path / "m_ohe.npz"), "-a",
                        str(tmp_path / "m_shap.npz"), "-n", "500", "-w", str(modisco_window(L)), "-o", res],
                       capture_output=True, text=True, timeout=900, env=dict(os.environ, NUMBA_NUM_THREADS="2"))
    assert r.returncode == 0, r.stderr[-2000:]
    found = []
    with h5py.File(res, "r") as f:
        assert "pos_patterns" in f, list(f)
        for name in f["pos_patterns"]:
            contrib = f[f"pos_patterns/{name}/contrib_scores"][:]          # (W, 4)
            seq = f[f"pos_patterns/{name}/sequence"][:]
            k = len(MOTIF)
            strength = np.convolve(np.abs(contrib).sum(axis=1), np.ones(k), mode="valid")
            s = int(np.argmax(strength))
            found.append("".join("ACGT"[j] for j in seq[s:s + k].argmax(axis=1)))
    revcomp = MOTIF[::-1].translate(str.maketrans("ACGT", "TGCA"))
    assert MOTIF in found or revcomp in found, found
