"""kipoi_tanger.tools.report: one self-contained HTML page per results file; the
real `kipoi-tanger deeplift-shap` output through plot/report/export; the page
in headless Chromium (slow)."""
import base64
import io
import json
import os
import re
import shutil
import subprocess

import h5py
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402

from kipoi_tanger import cli  # noqa: E402
from kipoi_tanger.tools.report import build_report, strongest_window, write_report  # noqa: E402
from results_files import MOTIF_AT, write_dls, write_marginalize  # noqa: E402

DATA_PNG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def embedded_pngs(html):
    """``[(alt, image array)]`` of every embedded PNG (each must decode)."""
    out = []
    for alt, b64 in DATA_PNG.findall(html):
        img = mpimg.imread(io.BytesIO(base64.b64decode(b64)), format="png")
        assert img.shape[0] > 50 and img.shape[1] > 200 and img[..., :3].std() > 0.01
        out.append((alt, img))
    return out


def assert_self_contained(html):
    assert not re.search(r"https?://", html), "the report must not reference the network"
    for attr in re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html):
        assert attr.startswith("data:"), attr
    assert "<script" not in html.lower() and "@import" not in html and "<link" not in html.lower()


def test_report_deeplift_shap(tmp_path):
    h5 = str(tmp_path / "dls.h5")
    write_dls(h5)
    out = write_report(h5, str(tmp_path / "sub" / "report.html"))
    html = open(out, encoding="utf-8").read()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert_self_contained(html)
    pngs = embedded_pngs(html)
    # the convergence-delta histogram and the 5 top regions' logos, best first
    assert [alt for alt, _ in pngs] == ["convergence delta histogram"] + [
        f"attribution logo of r{i}" for i in (5, 4, 3, 2, 1)]
    for text in ("deeplift-shap", "toy_model", "6 regions", "n_shuffles", "random_state",
                 "chr1:500-540 -, r5", "Convergence deltas", "attributions", "(6, 4, 40)"):
        assert text in html, text
    deltas = np.abs(h5py.File(h5, "r")["convergence_deltas"][:])
    assert f"{deltas.max():.4g}" in html and f"{np.median(deltas):.4g}" in html
    assert "above warning_threshold 0.001" in html


def test_report_top_and_no_deltas(tmp_path):
    h5 = str(tmp_path / "dls.h5")
    write_dls(h5, deltas=False)
    html = build_report(h5, top=2)
    assert "Convergence deltas" not in html
    assert [alt for alt, _ in embedded_pngs(html)] == ["attribution logo of r5", "attribution logo of r4"]
    assert embedded_pngs(build_report(h5, top=0)) == []


def test_strongest_window():
    a = np.zeros((4, 300))
    a[1, 200:206] = 1.0
    a[0, 10] = 0.5
    s, e = strongest_window(a, 100)
    assert e - s == 100 and s <= 200 and e >= 206
    assert strongest_window(a[:, :50], 100) == (0, 50)


def test_report_long_sequences_show_the_motif_window(tmp_path):
    h5 = str(tmp_path / "long.h5")
    write_dls(h5, n=2, length=400)
    html = build_report(h5, top=1, logo_width=60)
    m = re.search(r"chr1:100-500 -, r1 \[(\d+):(\d+)\]", html)
    assert m, "the logo caption names the window"
    s, e = int(m.group(1)), int(m.group(2))
    assert e - s == 60 and s <= MOTIF_AT and e >= MOTIF_AT + 6


def test_report_marginalize(tmp_path):
    h5 = str(tmp_path / "m.h5")
    write_marginalize(h5)
    html = build_report(h5)
    assert_self_contained(html)
    assert [alt for alt, _ in embedded_pngs(html)] == ["marginalize output 0", "marginalize output 1"]
    assert "GATAAG" in html and "Marginalization" in html
    # mean Δ of the tables: +1 for output 0, -0.5 for output 1; every region up, then down
    rows = re.findall(r'<td class="num">(-?[0-9.e+-]+)</td><td>(\d+) of 50</td></tr>', html)
    assert [float(x) for x, _ in rows] == pytest.approx([1.0, 1.0] + [-0.5] * 6, abs=1e-5)
    assert [int(up) for _, up in rows] == [50, 50] + [0] * 6


def test_report_predictions_and_escaping(tmp_path):
    h5 = str(tmp_path / "p.h5")
    with h5py.File(h5, "w") as f:
        f["preds"] = np.arange(12, dtype=np.float32).reshape(6, 2)
        f.attrs["op"] = "predict"
        f.attrs["model"] = "<b>m&m</b>"
        f.attrs["parameters"] = json.dumps({"batch_size": 32})
    html = build_report(h5)
    assert "&lt;b&gt;m&amp;m&lt;/b&gt;" in html and "<b>m&m" not in html
    assert "Predictions" in html and "<td class=\"num\">5</td>" in html     # mean of column 0: 0,2..10
    assert embedded_pngs(html) == []


def test_cli_report_and_errors(tmp_path, capsys):
    h5 = str(tmp_path / "dls.h5")
    write_dls(h5)
    out = str(tmp_path / "r.html")
    assert cli.main(["report", h5, "-o", out, "--top", "1"]) == 0
    assert capsys.readouterr().out.strip() == out
    assert len(embedded_pngs(open(out).read())) == 2
    for argv, expect in ((["report", str(tmp_path / "nope.h5"), "-o", out], "no such file"),
                         (["report", h5, "-o", out, "--top", "-1"], "--top"),
                         (["report", h5, "-o", out, "--logo-width", "0"], "--logo-width")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expect in err[0], err


def test_report_run_table_is_what_a_user_set(tmp_path):
    h5 = str(tmp_path / "m.h5")
    write_marginalize(h5)
    with h5py.File(h5, "a") as f:
        f.attrs["parameters"] = json.dumps({"motif": "GATAAG", "start": None, "inner_op": "predict", "output": None,
                                            "batch_size": 32, "keep_metadata": True, "dtype": None, "target": 0})
        f.attrs["explained_output"] = ""
        f.attrs["reduce"] = "null"
        f.attrs["sequence_dataset"] = ""
        f.attrs["dataloader_args"] = json.dumps({"intervals_file": "r.bed", "fasta_file": "g.fa"})
    html = build_report(h5)
    run_table, rest = html.split("<h2>Run</h2>", 1)[1].split("<details>", 1)
    assert "<td>op</td><td>marginalize: predictions before and after inserting a motif</td>" in run_table
    assert "<td>motif</td><td>GATAAG</td>" in run_table and "<td>start (input position)</td><td>centred</td>" in run_table
    assert "<td>dataloader arguments</td><td>fasta_file=g.fa; intervals_file=r.bed</td>" in run_table
    for internal in ("explained_output", "reduce", "sequence_dataset", "batch_size", "keep_metadata", "dtype",
                     "null", "inner_op"):
        assert internal not in run_table, internal
    # every recorded attribute is still there, folded
    details = rest.split("</details>", 1)[0]
    for key in ("explained_output", "sequence_dataset", "parameters.batch_size"):
        assert f"<td>{key}</td>" in details


def test_report_explains_convergence_deltas(tmp_path):
    h5 = str(tmp_path / "dls.h5")
    write_dls(h5)
    html = build_report(h5, top=0)
    assert re.search(r"convergence delta is how far its attributions are from adding up to what they explain: "
                     r"their sum minus the change of the explained output", html)


def test_report_predictions_by_output_name_and_column_label(tmp_path):
    h5 = str(tmp_path / "p.h5")
    with h5py.File(h5, "w") as f:
        f["preds/0"] = np.arange(4 * 50, dtype=np.float32).reshape(4, 1, 50)
        f["preds/1"] = np.arange(12, dtype=np.float32).reshape(4, 3)
        f.attrs["op"] = "predict"
        f.attrs["output_names"] = json.dumps(["profile", "probs"])
        f.attrs["column_labels"] = json.dumps({"probs": ["CTCF", "GATA1", "TAL1"]})
    html = build_report(h5)
    preds = html.split("<h2>Predictions</h2>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td class=\"num\">([^<]*)</td>", preds)
    assert rows == [("profile", "0 (mean over 50 positions)", "99.5"), ("probs", "CTCF", "4.5"),
                    ("probs", "GATA1", "5.5"), ("probs", "TAL1", "6.5")]
    assert "<td>preds/1</td><td>output probs: CTCF, GATA1, TAL1</td>" in html


def test_report_of_ablate_and_space_files(tmp_path):
    rng = np.random.default_rng(0)
    for op, after, n in (("ablate", "y_after", 5), ("space", "y_afters", 3)):
        h5 = str(tmp_path / f"{op}.h5")
        with h5py.File(h5, "w") as f:
            f["y_before/0"] = rng.normal(size=(10, 2))
            f[f"{after}/0"] = f["y_before/0"][:][:, None] + np.arange(n)[None, :, None]
            f.attrs["op"] = op
            f.attrs["output_names"] = json.dumps(["probs"])
            f.attrs["parameters"] = json.dumps({"inner_op": "predict", "start": 10, "end": 30, "n": n,
                                                "motifs": ["GATAAG", "CAGCTG"], "spacing": [[0], [5], [10]]})
        html = build_report(h5)
        assert_self_contained(html)
        assert [alt for alt, _ in embedded_pngs(html)] == ["marginalize probs"]
        if op == "ablate":
            assert "<h2>Ablation: input positions 10-30 shuffled</h2>" in html
            # after = the mean over the 5 shuffles: +2 for every region
            rows = re.findall(r'<td class="num">(-?[0-9.e+-]+)</td><td>(\d+) of 10</td></tr>', html)
            assert [float(x) for x, _ in rows] == pytest.approx([2.0, 2.0]) and [u for _, u in rows] == ["10", "10"]
        else:
            assert "<h2>Spacing: <code>GATAAG</code> + <code>CAGCTG</code></h2>" in html
            rows = re.findall(r'<tr><td>([^<]*)</td><td>([^<]*)</td><td class="num">([^<]*)</td></tr>', html)
            # the mean change at each gap, per output column
            assert rows == [(f"probs · {col}", gap, delta) for col in "01"
                            for gap, delta in (("0", "0"), ("5", "1"), ("10", "2"))]


def test_report_seqlets_named_by_motifs(tmp_path, capsys):
    h5 = str(tmp_path / "dls.h5")
    write_dls(h5)
    meme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example_models",
                        "motif_cnn", "motifs.meme")
    out = str(tmp_path / "r.html")
    assert cli.main(["report", h5, "-o", out, "--motifs", meme, "--strand", "rc"]) == 0
    html = open(out).read()
    assert "Seqlets named by motif" in html and "GATA GATAAG <b>4</b>" in html
    # the planted GATAAG at input positions 15-21, on the genome; r5 is on the minus strand
    assert re.search(r"<td>r5</td><td>chr1:(\d+)-(\d+)</td><td>-</td><td>GATA GATAAG</td>", html)
    s, e = map(int, re.search(r"<td>r5</td><td>chr1:(\d+)-(\d+)</td>", html).groups())
    assert s <= 540 - 21 and e >= 540 - 15
    # without --strand the file does not say how minus-strand regions were read: input positions
    html = build_report(h5, motifs=meme, top=0)
    assert "<td>r5</td><td>input 13-23</td>" in html and "pass --strand rc or forward" in html
    for argv, msg in ((["report", h5, "-o", out, "--motifs", str(tmp_path / "nope.meme")], "file not found"),
                      (["report", str(tmp_path / "m.h5"), "-o", out, "--motifs", meme], "no such file")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err


# ---------------------------------------------------------------------------
# the real runner's output

@pytest.fixture(scope="module")
def runner_output(tmp_path_factory):
    from kipoi_model_dirs import dl_args, make_model_dir, run_cli
    root = tmp_path_factory.mktemp("runner")
    home = root / "home"
    home.mkdir()
    mdir = make_model_dir(root, name="tiny", arch="TinyCNN", layout="LA", n_regions=8, L=50)
    out = str(root / "dls.h5")
    r = run_cli(["deeplift-shap", mdir, "--dataloader_args", json.dumps(dl_args(mdir)), "-o", out,
                 "--keep_inputs", "--keep_metadata", "--hypothetical", "--n_shuffles", "3",
                 "--random_state", "0", "-q"], cwd=root, home=home)
    assert r.returncode == 0, r.stderr
    return out


def test_runner_output_plot_report_export(runner_output, tmp_path, capsys):
    with h5py.File(runner_output, "r") as f:
        hyp = f["attributions"][:]
        X = f["inputs"][:].transpose(0, 2, 1)          # the model's (L, 4) layout
        ids = f["metadata/ranges/id"].asstr()[:]
    top = int(np.argmax(np.abs(hyp * X).sum(axis=(1, 2))))
    assert cli.main(["plot", "attributions", runner_output, "--top", "1", "-o", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / f"logo_{ids[top]}.{e}") for e in ("png", "svg")]
    report = str(tmp_path / "report.html")
    assert cli.main(["report", runner_output, "-o", report, "--top", "3"]) == 0
    html = open(report).read()
    assert_self_contained(html)
    alts = [alt for alt, _ in embedded_pngs(html)]
    assert alts[0] == "convergence delta histogram" and alts[1] == f"attribution logo of {ids[top]}"
    assert len(alts) == 4 and "tiny" in html and "hypothetical" in html
    assert cli.main(["export", "modisco", runner_output, "-o", str(tmp_path / "m")]) == 0
    with np.load(str(tmp_path / "m_ohe.npz")) as z:
        np.testing.assert_array_equal(z["arr_0"], X)
    with np.load(str(tmp_path / "m_shap.npz")) as z:
        np.testing.assert_array_equal(z["arr_0"], hyp)


# ---------------------------------------------------------------------------
# headless browser

def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_report_renders_logos_in_headless_chromium(tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium (apt-get install -y chromium)")
    h5 = str(tmp_path / "dls.h5")
    write_dls(h5)
    report = write_report(h5, str(tmp_path / "report.html"), top=3)
    shot = str(tmp_path / "shot.png")
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--hide-scrollbars", "--window-size=1200,2600", f"--screenshot={shot}",
                        "file://" + os.path.abspath(report)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=str(tmp_path)))
    assert r.returncode == 0 and os.path.exists(shot), r.stderr[-2000:]
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (2600, 1200)
    assert (img.min(axis=-1) < 0.5).mean() > 0.01       # text, tables and logos, not a blank page

    # logomaker's classic colours, all on screen; the planted GATAAG's tall
    # A and G glyphs dominate
    def pixels(rgb):
        return int((np.abs(img - np.array(rgb)).max(axis=-1) < 0.12).sum())

    counts = {name: pixels(rgb) for name, rgb in
              {"A": (0, 0.5, 0), "C": (0, 0, 1), "G": (1, 0.65, 0), "T": (1, 0, 0)}.items()}
    assert min(counts.values()) > 50, counts
    assert counts["A"] > 5 * counts["C"] and counts["G"] > 5 * counts["C"], counts


@pytest.mark.slow
def test_report_seqlets_and_before_after_in_headless_chromium(tmp_path):
    """The named seqlets' table and shaded logos, and a before/after page, as a browser shows them."""
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium (apt-get install -y chromium)")
    meme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example_models",
                        "motif_cnn", "motifs.meme")
    h5 = str(tmp_path / "dls.h5")
    write_dls(h5)
    pages = {"seqlets": write_report(h5, str(tmp_path / "s.html"), top=2, motifs=meme, strand="rc")}
    m = str(tmp_path / "m.h5")
    write_marginalize(m)
    pages["marginalize"] = write_report(m, str(tmp_path / "m.html"))
    for name, page in pages.items():
        shot = str(tmp_path / f"{name}.png")
        r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--disable-background-networking", "--disable-component-update", "--disable-sync",
                            f"--user-data-dir={tmp_path / ('profile_' + name)}", "--hide-scrollbars",
                            "--window-size=1200,2400", f"--screenshot={shot}", "file://" + os.path.abspath(page)],
                           capture_output=True, text=True, timeout=120, env=dict(os.environ, HOME=str(tmp_path)))
        assert r.returncode == 0 and os.path.exists(shot), r.stderr[-2000:]
        img = mpimg.imread(shot)[..., :3]
        assert (img.min(axis=-1) < 0.5).mean() > 0.01

        def pixels(rgb):
            return int((np.abs(img - np.array(rgb)).max(axis=-1) < 0.03).sum())

        if name == "seqlets":
            assert pixels((1.0, 0xf2 / 255, 0xa8 / 255)) > 2000          # the seqlets' shading on the logos
        else:
            red = (img[..., 0] > 0.75) & (img[..., 1] < 0.6) & (img[..., 2] < 0.6)
            assert red.sum() > 2000                     # the "after" histograms and the paired views' points
