"""kipoi_tanger.tools.plot: reading results files, logo geometry, PNG/SVG output,
marginalize plots and the `kipoi-tanger plot` command's errors."""
import json
import os

import h5py
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from kipoi_tanger import cli  # noqa: E402
from kipoi_tanger.tools.plot import (MIN_GLYPH_FRACTION, Results, ResultsError, _panels, logo_size,  # noqa: E402
                                     parse_window, plot_attributions, plot_logo, plot_marginalize, select_regions)
from results_files import MOTIF, MOTIF_AT, write_dls, write_marginalize  # noqa: E402


@pytest.fixture
def dls(tmp_path):
    path = str(tmp_path / "dls.h5")
    return path, write_dls(path)


def check_png(path, min_w=200, min_h=80):
    img = mpimg.imread(path)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, (w, h)
    rgb = img[..., :3]
    assert rgb.std() > 0.01                       # not a blank canvas
    assert (rgb.min(axis=-1) < 0.5).mean() > 0.002  # some ink


def check_svg(path):
    text = open(path).read()
    assert "<svg" in text and "</svg>" in text
    assert os.path.getsize(path) > 5000
    return text


# ---------------------------------------------------------------------------
# reading

@pytest.mark.parametrize("layout,write_layout", [("(L, A)", True), ("(A, L)", True), ("(A, L, 1)", True),
                                                 ("(L)", True), (None, False)])
def test_sequences_canonical_from_any_layout(tmp_path, layout, write_layout):
    path = str(tmp_path / "x.h5")
    d = write_dls(path, layout=layout, write_layout=write_layout, hypothetical=True)
    res = Results(path)
    np.testing.assert_array_equal(res.sequences(), d["X"])
    np.testing.assert_array_equal(res.sequences([4, 1]), d["X"][[4, 1]])
    assert res.attributions_are_hypothetical
    np.testing.assert_allclose(res.projected(), d["hyp"] * d["X"])
    np.testing.assert_allclose(res.hypothetical(), d["hyp"])


def test_separate_hypothetical_dataset(tmp_path):
    path = str(tmp_path / "x.h5")
    d = write_dls(path, separate_hypothetical=True)
    res = Results(path)
    assert not res.attributions_are_hypothetical
    np.testing.assert_allclose(res.projected(), d["attr"])
    np.testing.assert_allclose(res.hypothetical([2]), d["hyp"][[2]])


def test_list_inputs_found_by_shape(tmp_path):
    # the runner writes list inputs as inputs/0, inputs/1...; sequence_input names the model input
    path = str(tmp_path / "x.h5")
    d = write_dls(path, inputs=False, layout="(A, L)")
    with h5py.File(path, "a") as f:
        f["inputs/0"] = np.ones((6, 1), np.float32)
        f["inputs/1"] = d["X"]
        f["inputs/2"] = np.ones((6, 3), np.float32)
    np.testing.assert_array_equal(Results(path).sequences(), d["X"])


def test_metadata_titles_and_ids(dls):
    res = Results(dls[0])
    assert res.n == 6
    assert res.title(1) == "chr1:100-140 -, r1"
    assert res.rows_for_ids(["r3", "r0"]) == [3, 0]
    with pytest.raises(ResultsError, match="unknown region id 'r9'"):
        res.rows_for_ids(["r9"])


def test_without_metadata_ids_are_rows(tmp_path):
    path = str(tmp_path / "x.h5")
    write_dls(path, ranges=False)
    res = Results(path)
    assert list(res.ids) == [str(i) for i in range(6)]
    assert res.title(2) == "region 2"


def test_top_regions_by_total_abs_attribution(dls):
    path, d = dls
    res = Results(path)
    expected = np.argsort(-np.abs(d["attr"]).sum(axis=(1, 2)))[:3]
    assert select_regions(res, top=3) == list(expected) == [5, 4, 3]
    assert select_regions(res, regions=["r2"]) == [2]
    with pytest.raises(ResultsError, match="--top"):
        select_regions(res, top=0)


@pytest.mark.parametrize("window,expected", [(None, (0, 40)), ("10:30", (10, 30)), (":5", (0, 5)),
                                             ("35:", (35, 40)), ((0, 40), (0, 40))])
def test_parse_window(window, expected):
    assert parse_window(window, 40) == expected


@pytest.mark.parametrize("window", ["5", "30:10", "0:41", "-1:5", "a:b", "7:7"])
def test_parse_window_rejects(window):
    with pytest.raises(ResultsError, match="--window"):
        parse_window(window, 40)


# ---------------------------------------------------------------------------
# logos

def test_logo_glyph_geometry():
    a = np.zeros((4, 5))
    a[0, 0] = 1.0            # A up
    a[2, 1] = -0.5           # G down
    a[:, 3] = [0.3, -0.2, 0.1, 1e-4]   # stacked; T too small to draw
    ax = plot_logo(a, start=10)
    boxes = [(p.get_path().get_extents(), p.get_facecolor()[:3]) for p in ax.patches]
    assert len(boxes) == 5
    by_x = {}
    for e, color in boxes:
        by_x.setdefault(round((e.x0 + e.x1) / 2), []).append((round(e.y0, 6), round(e.y1, 6), color))
    assert sorted(by_x) == [10, 11, 13]                # positions offset by start
    assert by_x[10] == [(0.0, 1.0, (0.0, 0.5, 0.0))]  # classic colours: A green
    assert by_x[11] == [(-0.5, 0.0, (1.0, 0.65, 0.0))]  # G orange, below zero
    # big on top: G 0..0.1, A 0.1..0.4 above zero; C down to -0.2
    assert sorted(by_x[13]) == [(-0.2, 0.0, (0.0, 0.0, 1.0)), (0.0, 0.1, (1.0, 0.65, 0.0)),
                                (0.1, 0.4, (0.0, 0.5, 0.0))]
    lo, hi = ax.get_ylim()
    assert lo < -0.5 and hi > 1.0
    assert ax.get_xlim() == (9.5, 14.5)
    assert 1e-4 < MIN_GLYPH_FRACTION * 1.0
    plt.close(ax.figure)


def test_logo_rejects_bad_shape():
    with pytest.raises(ValueError, match="attr"):
        plot_logo(np.zeros((5, 3)))


def test_plot_attributions_top_png_svg(dls, tmp_path):
    path, _ = dls
    out = tmp_path / "logos"
    written = plot_attributions(path, str(out), top=2)
    assert [os.path.basename(p) for p in written] == ["logo_r5.png", "logo_r5.svg", "logo_r4.png", "logo_r4.svg"]
    for p in written:
        if p.endswith(".png"):
            check_png(p, min_w=400)
        else:
            check_svg(p)


def test_plot_attributions_regions_window_titles(dls, tmp_path):
    path, _ = dls
    with matplotlib.rc_context({"svg.fonttype": "none"}):    # keep text as text to read the titles
        written = plot_attributions(path, str(tmp_path), regions=["r1", "r3"], window="10:30", formats=["svg"])
    assert [os.path.basename(p) for p in written] == ["logo_r1.svg", "logo_r3.svg"]
    text = check_svg(written[0])
    assert "chr1:100-140 -, r1 [10:30]" in text
    assert "chr1:300-340 -, r3 [10:30]" in open(written[1]).read()


def test_plot_attributions_draws_the_motif(dls):
    # the planted motif's bases are the tallest glyphs of the projected logo
    path, d = dls
    res = Results(path)
    a = res.projected([5])[0]
    ax = plot_logo(a)
    tall = sorted(ax.patches, key=lambda p: -p.get_path().get_extents().height)[:len(MOTIF)]
    xs = sorted(round((p.get_path().get_extents().x0 + p.get_path().get_extents().x1) / 2) for p in tall)
    assert xs == list(range(MOTIF_AT, MOTIF_AT + len(MOTIF)))
    plt.close(ax.figure)


def test_plot_attributions_hypothetical_without_inputs_draws_all_letters(tmp_path):
    path = str(tmp_path / "x.h5")
    write_dls(path, hypothetical=True, inputs=False, n=2, length=24)
    out = plot_attributions(path, str(tmp_path / "o"), top=1, formats=["png"])
    check_png(out[0])


# ---------------------------------------------------------------------------
# marginalize

def test_panels_product_axes():
    b = np.zeros((5, 3, 2))
    panels = _panels(b, b + 1)
    assert [p[0] for p in panels] == ["p0=0, target 0", "p0=0, target 1", "p0=1, target 0",
                                      "p0=1, target 1", "p0=2, target 0", "p0=2, target 1"]
    np.testing.assert_array_equal(panels[3][2], np.ones(5))
    assert [p[0] for p in _panels(np.zeros((5, 2)), np.zeros((5, 2)))] == ["target 0", "target 1"]
    with pytest.raises(ResultsError, match="differ"):
        _panels(np.zeros((5, 2)), np.zeros((5, 3)))


def test_plot_marginalize_per_output(tmp_path):
    path = str(tmp_path / "m.h5")
    write_marginalize(path)
    written = plot_marginalize(path, str(tmp_path / "o"))
    assert [os.path.basename(p) for p in written] == ["marginalize_0.png", "marginalize_0.svg",
                                                      "marginalize_1.png", "marginalize_1.svg"]
    check_png(written[0], min_w=300)
    check_png(written[2], min_w=800)      # 6 panels (3 product x 2 targets) in a grid
    check_svg(written[1])


def test_marginalize_of_attributions_compares_totals(tmp_path):
    path = str(tmp_path / "m.h5")
    write_marginalize(path, inner_op="deeplift-shap", n=10, length=8)
    res = Results(path)
    (label, b_name, a_name), = res.marginalize_pairs()
    b, a, quantity = res.marginalize_values(b_name, a_name)
    assert quantity == "total attribution" and b.shape == (10,)
    np.testing.assert_allclose(a - b, 0.05 * 4 * 8, rtol=1e-4)
    written = plot_marginalize(path, str(tmp_path / "o"), formats=["png"])
    assert [os.path.basename(p) for p in written] == ["marginalize.png"]


# ---------------------------------------------------------------------------
# command line

def run_cli(argv, capsys):
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_plot_attributions(dls, tmp_path, capsys):
    path, _ = dls
    rc, out, err = run_cli(["plot", "attributions", path, "--top", "1", "--window", "5:35",
                            "-o", str(tmp_path / "o"), "--format", "png"], capsys)
    assert rc == 0, err
    assert out.split() == [str(tmp_path / "o" / "logo_r5.png")]
    check_png(out.split()[0])


def test_cli_plot_marginalize(tmp_path, capsys):
    path = str(tmp_path / "m.h5")
    write_marginalize(path)
    rc, out, err = run_cli(["plot", "marginalize", path, "-o", str(tmp_path / "o")], capsys)
    assert rc == 0, err
    assert len(out.split()) == 4


@pytest.mark.parametrize("case", ["missing", "not_h5", "no_attributions", "unknown_id", "bad_window",
                                  "marginalize_on_dls", "regions_and_top"])
def test_cli_errors_one_line_exit_2(dls, tmp_path, capsys, case):
    path, _ = dls
    mpath = str(tmp_path / "m.h5")
    write_marginalize(mpath)
    txt = tmp_path / "x.h5"
    txt.write_text("not hdf5")
    o = str(tmp_path / "o")
    argv, expect = {
        "missing": (["plot", "attributions", str(tmp_path / "nope.h5"), "-o", o], "no such file"),
        "not_h5": (["plot", "attributions", str(txt), "-o", o], "not an HDF5 file"),
        "no_attributions": (["plot", "attributions", mpath, "-o", o], "no 'attributions' dataset"),
        "unknown_id": (["plot", "attributions", path, "--regions", "r1", "zz", "-o", o], "unknown region id 'zz'"),
        "bad_window": (["plot", "attributions", path, "--window", "20:10", "-o", o], "--window"),
        "marginalize_on_dls": (["plot", "marginalize", path, "-o", o], "no 'y_before'/'y_after'"),
        "regions_and_top": (["plot", "attributions", path, "--regions", "r1", "--top", "2", "-o", o],
                            "not allowed with"),
    }[case]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kipoi-tanger"), err
    assert expect in lines[0]
    assert not os.path.exists(os.path.join(o, "logo_r1.png"))


def test_standalone_module_entry(dls, tmp_path, capsys):
    from kipoi_tanger.cli import main
    path, _ = dls
    assert main(["plot", "attributions", path, "--regions", "r0", "-o", str(tmp_path), "--format", "png"]) == 0
    assert main(["plot", "attributions", path, "--regions", "nope", "-o", str(tmp_path)]) == 2
    assert "unknown region id" in capsys.readouterr().err


def test_parameters_attribute_is_json(dls):
    res = Results(dls[0])
    assert res.parameters["n_shuffles"] == 20
    assert res.alphabet == ("A", "C", "G", "T")
    assert json.loads(h5py.File(dls[0], "r").attrs["parameters"])["target"] == 0


def test_marginalize_profile_outputs_get_one_panel_per_track(tmp_path):
    # the runner writes y_before/<output> in the output's shape; a profile (N, 1, 50)
    # is summarised per track instead of drawing 50 position panels
    path = str(tmp_path / "m.h5")
    rng = np.random.default_rng(0)
    before = rng.normal(size=(8, 1, 50))
    with h5py.File(path, "w") as f:
        f["y_before/profile"] = before
        f["y_after/profile"] = before + 2.0
        f["y_before/counts"] = before[:, :, 0]
        f["y_after/counts"] = before[:, :, 0] + 1.0
        f.attrs["op"] = "marginalize"
        f.attrs["parameters"] = json.dumps({"motif": "GATAAG", "inner_op": "predict"})
    res = Results(path)
    pairs = res.marginalize_pairs()
    assert [p[0] for p in pairs] == ["output counts", "output profile"]
    b, a, quantity = res.marginalize_values(*pairs[1][1:])
    assert b.shape == (8, 1) and quantity == "prediction (mean over 50 positions)"
    np.testing.assert_allclose(a - b, 2.0)
    b, a, quantity = res.marginalize_values(*pairs[0][1:])
    assert b.shape == (8, 1) and quantity == "prediction"


def test_logo_file_names_are_distinct_and_stable_per_region_id(dls, tmp_path):
    """Ids that make the same safe name (a/b, a_b), ids differing in case only, a repeated id and a
    long id each get their own file, and a region gets the same file whichever others are plotted."""
    path, _ = dls
    ids = ["a/b", "a_b", "A_B", "r3", "r3", "x" * 90]
    with h5py.File(path, "a") as f:
        del f["metadata/ranges/id"]
        f["metadata/ranges/id"] = np.array(ids, dtype=object)
    out = str(tmp_path / "all")
    written = plot_attributions(path, out, top=6, formats=["png"])
    names = [os.path.basename(p) for p in written]
    assert len(set(n.lower() for n in names)) == 6 and sorted(os.listdir(out)) == sorted(names)
    # a/b is told apart by a hash of its id; a_b and A_B (one file on macOS) by the row of the later one
    assert any(n.startswith("logo_a_b_") and "row" not in n for n in names)
    assert {"logo_a_b.png", "logo_A_B_row2.png"} <= set(names) or {"logo_A_B.png", "logo_a_b_row1.png"} <= set(names)
    # one at a time, into one directory: nothing overwrites anything
    one = str(tmp_path / "one")
    alone = [os.path.basename(plot_attributions(path, one, regions=[rid], formats=["png"])[0])
             for rid in ("a/b", "a_b", "x" * 90)]
    assert len(set(alone)) == 3 and sorted(os.listdir(one)) == sorted(alone)
    assert alone[1] == "logo_a_b.png" and alone[0].startswith("logo_a_b_") and alone[0] in names
    assert len(alone[2]) < 100 and alone[2] in names


# ---------------------------------------------------------------------------
# genomic coordinates, output names, paired views, ablate and space (issue 16)

def _interval_onehot(path):
    with h5py.File(path, "a") as f:
        f.attrs["dataloader"] = "../../dataloaders/interval_onehot/dataloader.py::IntervalOneHot"


def test_logo_axis_shows_genomic_positions_and_says_reverse_complemented(dls):
    from kipoi_tanger.tools.plot import logo_title
    path, data = dls
    _interval_onehot(path)
    res = Results(path)
    # row 4: chr1:400-440 +; row 5: chr1:500-540 -, reverse-complemented by the dataloader
    for row, first, last in ((4, "400", "439"), (5, "539", "500")):
        p = res.placement(row, 40)
        fig, ax = plt.subplots()
        plot_logo(data["attr"][row][:, 5:35], ax=ax, start=5, placement=p)
        fmt = ax.xaxis.get_major_formatter()
        assert fmt(5) == str(p.base(5)) and fmt(0) == first and fmt(39) == last
        assert ax.get_xlabel().startswith("chr1 position (0-based)")
        assert ("reverse-complemented" in ax.get_xlabel()) == (row == 5)
        plt.close(fig)
    assert logo_title(res, 4, 5, 35, 40, res.placement(4, 40)) == "chr1:405-435 +, r4 [5:35] of chr1:400-440 +"
    assert logo_title(res, 5, 0, 40, 40, res.placement(5, 40)) == "chr1:500-540 -, r5, shown reverse-complemented"
    # the file does not say how the dataloader read minus-strand regions: input positions, said so
    with h5py.File(path, "a") as f:
        del f.attrs["dataloader"]
    plain = Results(path)
    assert plain.placement(5, 40) is None
    assert "input positions" in logo_title(plain, 5, 0, 40, 40, None)


def test_plot_attributions_strand_option(dls, tmp_path, capsys):
    path, _ = dls
    out = str(tmp_path / "o")
    assert cli.main(["plot", "attributions", path, "--regions", "r5", "--strand", "rc", "-o", out,
                     "--format", "png"]) == 0
    check_png(capsys.readouterr().out.split()[0])
    _interval_onehot(path)
    assert cli.main(["plot", "attributions", path, "--regions", "r5", "--strand", "forward", "-o", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reverse-complements minus-strand regions; drop --strand" in err[0]


def _named_marginalize(path, n=12):
    rng = np.random.default_rng(0)
    before = rng.normal(size=(n, 3))
    with h5py.File(path, "w") as f:
        f["y_before/0"] = rng.normal(size=(n, 1, 60))
        f["y_after/0"] = f["y_before/0"][:] + 1.0
        f["y_before/1"] = before
        f["y_after/1"] = before + np.array([1.0, -1.0, 0.5])
        f.attrs["op"] = "marginalize"
        f.attrs["output_names"] = json.dumps(["profile", "probs"])
        f.attrs["column_labels"] = json.dumps({"probs": ["CTCF", "GATA1", "TAL1"]})
        f.attrs["parameters"] = json.dumps({"motif": "GATAAG", "inner_op": "predict", "start": None})
    return before


def test_marginalize_plots_use_output_names_and_a_paired_view(tmp_path):
    from kipoi_tanger.tools.plot import effect_figure
    path = str(tmp_path / "m.h5")
    before = _named_marginalize(path)
    written = plot_marginalize(path, str(tmp_path / "o"), formats=["png"])
    assert [os.path.basename(p) for p in written] == ["marginalize_profile.png", "marginalize_probs.png"]
    check_png(written[1], min_w=800)
    res = Results(path)
    fig = effect_figure(res, "probs", "y_before/1", "y_after/1", "marginalize GATAAG · probs")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 6                           # histogram + paired view per column
    titles = [ax.get_title().replace("\n", " ") for ax in axes]
    assert titles[0].startswith("probs, CTCF: mean Δ +1") and titles[1] == "probs, CTCF: per region: 12 of 12 up"
    assert titles[3] == "probs, GATA1: per region: 0 of 12 up"
    # the paired view: each region's before (x) against after (y)
    np.testing.assert_allclose(axes[3].collections[0].get_offsets(),
                               np.stack([before[:, 1], before[:, 1] - 1.0], axis=1))
    plt.close(fig)


def test_long_titles_are_wrapped_inside_the_figure(tmp_path):
    from kipoi_tanger.tools.plot import marginalize_figure
    b = np.random.default_rng(0).normal(size=(10, 1))
    title = "t 0: prediction (mean over 400 positions) before vs after, with a very long model output name"
    fig = marginalize_figure(b, b + 1, title=title, quantity="prediction (mean over 400 positions)",
                             name="a_rather_long_output_name_of_a_zoo_model")
    fig.canvas.draw()
    box = fig.bbox
    texts = [fig._suptitle] + [t for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)]
    for t in texts:
        ext = t.get_window_extent()
        assert ext.x0 >= box.x0 - 1 and ext.x1 <= box.x1 + 1 and ext.y1 <= box.y1 + 1, t.get_text()
    assert fig._suptitle.get_text().replace("\n", " ") == title
    plt.close(fig)
    # a logo of a short window with a long title (a minus-strand window of a long region id)
    fig, ax = plt.subplots(figsize=logo_size(12))
    plot_logo(np.eye(4)[:, [0, 1, 2, 3] * 3], ax=ax, title="chr12:100000123-100000135 -, " + "region_" * 12
              + " [500:512] of chr12:100000000-100001000 -, shown reverse-complemented")
    fig.tight_layout()
    fig.canvas.draw()
    ext = ax.title.get_window_extent()
    assert ext.x0 >= -1 and ext.x1 <= fig.bbox.x1 + 1 and ext.y1 <= fig.bbox.y1 + 1
    plt.close(fig)
    # the x axis of a short reverse-complemented window says so on lines that fit
    from kipoi_tanger.tools.results import Placement
    fig, ax = plt.subplots(figsize=logo_size(40))
    plot_logo(np.eye(4)[:, [0, 1, 2, 3] * 10], ax=ax, placement=Placement("chr1", 500, 40, True))
    fig.tight_layout()
    fig.canvas.draw()
    ext = ax.xaxis.label.get_window_extent()
    assert ext.x0 >= -1 and ext.x1 <= fig.bbox.x1 + 1 and ext.y0 >= -1
    assert "reverse-complemented" in ax.get_xlabel()
    plt.close(fig)


def test_ablate_and_space_files_plot(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for op, after, n in (("ablate", "y_after", 4), ("space", "y_afters", 3)):
        path = str(tmp_path / f"{op}.h5")
        with h5py.File(path, "w") as f:
            f["y_before/0"] = rng.normal(size=(8, 1, 50))
            f[f"{after}/0"] = rng.normal(size=(8, n, 1, 50))
            f["y_before/1"] = rng.normal(size=(8, 1))
            f[f"{after}/1"] = rng.normal(size=(8, n, 1))
            f.attrs["op"] = op
            f.attrs["output_names"] = json.dumps(["profile", "counts"])
            f.attrs["parameters"] = json.dumps({"inner_op": "predict", "start": 10, "end": 30, "n": n,
                                                "shuffle": "dinucleotide", "motifs": ["GATAAG", "CAGCTG"],
                                                "spacing": [[0], [5], [10]]})
        rc = cli.main(["plot", "marginalize", path, "-o", str(tmp_path / op), "--format", "png"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert [os.path.basename(p) for p in out.split()] == ["marginalize_profile.png", "marginalize_counts.png"]
        for p in out.split():
            check_png(p, min_w=300)
    from kipoi_tanger.tools.plot import effect_figure, effect_title
    res = Results(str(tmp_path / "space.h5"))
    assert effect_title(res, "counts", "y_before/1", "y_afters/1") == "space GATAAG + CAGCTG · counts"
    fig = effect_figure(res, "counts", "y_before/1", "y_afters/1", "")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "5", "10"]
    b, a, _ = res.marginalize_values("y_before/1", "y_afters/1")
    mean, = [line for line in ax.lines if line.get_label() == "mean"]
    np.testing.assert_allclose(mean.get_ydata(), (a - b[:, None])[..., 0].mean(axis=0))
    plt.close(fig)
    res = Results(str(tmp_path / "ablate.h5"))
    assert effect_title(res, "counts", "y_before/1", "y_after/1") == \
        "ablate input positions 10-30 (4 dinucleotide shuffles) · counts"
