"""Review of the run ops and tools as a new user meets them: bad input is one line on stderr, exit
status 2, nothing left behind; nothing silently wrong (product --args, --resume after an input file
changed, seqlets --max_qvalue, KipoiModel.inputs(n)); `kipoi tanger` errors are one line."""
import os
import shutil
import warnings

import numpy as np
import pytest

from kipoi_model_dirs import dl_args, make_model_dir, run_cli
from kipoi_tanger import _kipoi_hook
from results_files import write_dls, write_marginalize
from cli_helpers import interrupt_after_commits, main_in as _main, one_line as _one_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(REPO, "example_models")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A deeplift-shap and a marginalize results file, and chrom sizes that fit them."""
    root = tmp_path_factory.mktemp("review_results")
    attr, marg = str(root / "attr.h5"), str(root / "marg.h5")
    write_dls(attr, n=6, length=40)
    write_marginalize(marg, n=10)
    sizes = root / "genome.sizes"
    sizes.write_text("chr1\t10000\n")
    short = root / "short.sizes"
    short.write_text("chr1\t300\n")              # regions 3.. run past its end
    return {"attr": attr, "marg": marg, "sizes": str(sizes), "short": str(short)}


# ---------------------------------------------------------------------------
# product --args: values that are not numbers, or not finite

@pytest.mark.parametrize("values,expect", [
    (np.array([["a"], ["b"]]), "holds <U1 values; expected numbers (bool, integer or float)"),
    (np.array([[np.nan], [1.0]], dtype="float32"), "holds 1 NaN/inf value(s), the first at index (0, 0)"),
    (np.array([[1.0], [np.inf]]), "holds 1 NaN/inf value(s), the first at index (1, 0)"),
])
def test_product_args_must_be_finite_numbers(capsys, tmp_path, values, expect):
    np.save(tmp_path / "alpha.npy", values)
    np.save(tmp_path / "beta.npy", np.array([[1.0], [2.0]], dtype="float32"))
    rc, _, err = _main(["product", os.path.join(ZOO, "flatten_dense"), "--example", "--args", "alpha.npy",
                        "beta.npy", "-o", "p.h5", "-q"], capsys, tmp_path)
    assert rc == 2
    line = _one_line(err)
    assert f"--args: alpha.npy: {expect}" in line, line
    assert sorted(os.listdir(tmp_path)) == ["alpha.npy", "beta.npy"]


# ---------------------------------------------------------------------------
# export bigwig/bedgraph, report, plot: output names, and nothing left behind

def test_export_track_leaves_no_directory_when_it_fails(results, capsys, tmp_path):
    rc, _, err = _main(["export", "bigwig", results["attr"], "--chrom_sizes", results["short"],
                        "--strand", "rc", "-o", "new/deeper/a.bw"], capsys, tmp_path)
    assert rc == 2
    assert "past the end of chr1" in _one_line(err)
    assert os.listdir(tmp_path) == []             # the dirs made for the output are gone again


@pytest.mark.parametrize("fmt,out,expect", [
    ("bigwig", "a.txt", "-o/--output: a.txt: a bigWig track is named .bw or .bigwig"),
    ("bedgraph", "a.bw", "-o/--output: a.bw: a bedGraph track is plain text (e.g. .bedGraph or .bg), not .bw"),
    ("bedgraph", "a.bedGraph.gz", "a bedGraph track is plain text (e.g. .bedGraph or .bg), not .gz"),
    ("bigwig", "adir", "-o/--output: 'adir' is a directory; expected a file name"),
    ("bedgraph", "adir/", "-o/--output: 'adir/' is a directory; expected a file name"),
])
def test_export_track_output_name_must_fit_the_format(results, capsys, tmp_path, fmt, out, expect):
    (tmp_path / "adir").mkdir()
    rc, _, err = _main(["export", fmt, results["attr"], "--chrom_sizes", results["sizes"], "-o", out],
                       capsys, tmp_path)
    assert rc == 2
    assert expect in _one_line(err)
    assert os.listdir(tmp_path) == ["adir"] and os.listdir(tmp_path / "adir") == []


def test_export_track_still_writes_into_new_dirs(results, capsys, tmp_path):
    for fmt, out in (("bigwig", "t/a.BW"), ("bedgraph", "t/a.bedGraph"), ("bedgraph", "t/a.bg")):
        rc, _, err = _main(["export", fmt, results["attr"], "--chrom_sizes", results["sizes"], "--strand", "rc",
                            "-o", out], capsys, tmp_path)
        assert rc == 0, err
    assert sorted(os.listdir(tmp_path / "t")) == ["a.BW", "a.bedGraph", "a.bg"]


@pytest.mark.parametrize("out", ["adir", "adir/"])
def test_report_to_a_directory_is_one_line_and_leaves_nothing(results, capsys, tmp_path, out):
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "adir").mkdir()
    rc, _, err = _main(["report", results["attr"], "--top", "1", "-o", out], capsys, tmp_path / "w")
    assert rc == 2
    assert f"-o/--output: {out!r} is a directory; expected a file name" in _one_line(err)
    assert os.listdir(tmp_path) == ["w"]           # no '..partial' next to the working dir
    assert os.listdir(tmp_path / "w") == ["adir"] and os.listdir(tmp_path / "w" / "adir") == []


@pytest.mark.parametrize("argv,expect", [
    (["plot", "marginalize", "MARG", "--dpi", "0", "-o", "plots/"], "--dpi: expected a positive number, got 0"),
    (["plot", "attributions", "ATTR", "--dpi", "-5", "-o", "plots"], "--dpi: expected a positive number, got -5"),
    (["plot", "attributions", "ATTR", "-o", "afile"],
     "-o/--output: afile exists and is not a directory; expected an output directory"),
])
def test_plot_refuses_before_creating_its_directory(results, capsys, tmp_path, argv, expect):
    (tmp_path / "afile").write_text("x")
    argv = [results["marg"] if a == "MARG" else results["attr"] if a == "ATTR" else a for a in argv]
    rc, _, err = _main(argv, capsys, tmp_path)
    assert rc == 2
    assert expect in _one_line(err)
    assert os.listdir(tmp_path) == ["afile"]


def test_plot_failing_midway_removes_what_it_wrote(results, tmp_path, monkeypatch):
    from kipoi_tanger.tools import plot
    calls = []
    real_save = plot._save

    def save_then_fail(fig, base, formats, dpi):
        calls.append(base)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_save(fig, base, formats, dpi)

    monkeypatch.setattr(plot, "_save", save_then_fail)
    with pytest.raises(OSError, match="disk full"):
        plot.plot_attributions(results["attr"], str(tmp_path / "logos"), top=3)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# seqlets --max_qvalue

@pytest.mark.parametrize("q", ["-1", "0", "5"])
def test_seqlets_max_qvalue_is_a_q_value(results, capsys, tmp_path, q):
    meme = os.path.join(ZOO, "motif_cnn", "motifs.meme")
    rc, _, err = _main(["seqlets", results["attr"], "--motifs", meme, "--max_qvalue", q, "-o", "s.tsv"],
                       capsys, tmp_path)
    assert rc == 2
    assert f"--max_qvalue: expected a q-value in (0, 1], got {float(q)!r}" in _one_line(err)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# --resume when an input file changed since the kill

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("review_model"), "rv_la", arch="TinyCNN", layout="LA")


def test_resume_refuses_an_input_file_changed_since_the_kill(tiny, capsys, tmp_path, monkeypatch):
    args = dl_args(tiny)
    bed = tmp_path / "regions.bed"
    shutil.copy(args["intervals_file"], bed)
    argv = ["deeplift-shap", tiny, "--dataloader_args", f"intervals_file={bed}", f"fasta_file={args['fasta_file']}",
            "--n_shuffles", "1", "--random_state", "0", "--batch_size", "8", "-o", "x.h5", "-q"]
    restore_commits = interrupt_after_commits(monkeypatch, 2)   # the run stops after two commits
    rc, _, _ = _main(argv, capsys, tmp_path)
    assert rc == 130
    restore_commits()
    lines = bed.read_text().splitlines(keepends=True)
    bed.write_text("".join(lines[:10]))       # fewer regions than the 16 already committed
    rc, _, err = _main(argv + ["--resume"], capsys, tmp_path)
    assert rc == 2
    line = _one_line(err)
    assert f"--resume: intervals_file {bed} changed (size or modification time)" in line and "--overwrite" in line
    assert not (tmp_path / "x.h5").exists()
    rc, _, err = _main(argv + ["--overwrite"], capsys, tmp_path)
    assert rc == 0, err
    import h5py
    with h5py.File(tmp_path / "x.h5") as f:
        assert f["attributions"].shape[0] == 10


def test_resume_with_unchanged_files_is_still_byte_identical(tiny, capsys, tmp_path, monkeypatch):
    argv = ["deeplift-shap", tiny, "--example", "--n_shuffles", "1", "--random_state", "0", "--batch_size", "8",
            "-q", "-o"]
    restore_commits = interrupt_after_commits(monkeypatch, 2)   # the run stops after two commits
    assert _main(argv + ["x.h5"], capsys, tmp_path)[0] == 130
    restore_commits()
    rc, _, err = _main(argv + ["x.h5", "--resume"], capsys, tmp_path)
    assert rc == 0, err
    os.mkdir(tmp_path / "ref")
    assert _main(argv + ["ref/x.h5"], capsys, tmp_path)[0] == 0
    assert (tmp_path / "x.h5").read_bytes() == (tmp_path / "ref" / "x.h5").read_bytes()


# ---------------------------------------------------------------------------
# Python API: KipoiModel.inputs(n)

@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_inputs_n_must_be_positive(tiny, n):
    import kipoi_tanger
    m = kipoi_tanger.load_model(tiny)
    with pytest.raises(ValueError, match="n: expected a positive integer"):
        m.inputs(n=n)
    assert m.inputs(n=np.int64(3))[0].shape[0] == 3


# ---------------------------------------------------------------------------
# `kipoi tanger`: no pkg_resources deprecation warning before the error line

class _WarningLoader:
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        warnings.warn("pkg_resources is deprecated as an API. See https://setuptools.pypa.io/", UserWarning)
        module.LOADED = True


def _spec():
    import importlib.util
    return importlib.util.spec_from_loader("pkg_resources", _WarningLoader())


def test_real_pkg_resources_imported_by_kipoi_is_quiet(monkeypatch):
    import importlib.util
    for importer, quiet in (("kipoi.__main__", True), ("numpy", False)):
        finder = _kipoi_hook.KipoiPatchFinder()
        monkeypatch.setattr(finder, "_find_elsewhere", lambda *a: _spec())     # setuptools < 81
        g = {"__name__": importer, "finder": finder}
        exec("spec = finder.find_spec('pkg_resources')", g)
        module = importlib.util.module_from_spec(g["spec"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            g["spec"].loader.exec_module(module)
        assert module.LOADED
        assert [str(w.message)[:30] for w in caught] == ([] if quiet else ["pkg_resources is deprecated as"])


def test_kipoi_tanger_error_is_one_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = run_cli(["tanger", "predict", str(tmp_path / "nope"), "-o", "x.h5"], tmp_path, str(home), exe="kipoi")
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr, prog="kipoi tanger")
    assert "no such directory" in line
    assert sorted(os.listdir(tmp_path)) == ["home"]


# ---------------------------------------------------------------------------
# merge: a shard's table must hold a row per region of the shard

def test_merge_refuses_a_truncated_shard_table(tiny, capsys, tmp_path):
    for i in (1, 2):
        rc, _, err = _main(["predict", tiny, "--example", "--batch_size", "8", "--shard", f"{i}/2", "-q",
                            "-o", f"s{i}.h5", f"s{i}.tsv"], capsys, tmp_path)
        assert rc == 0, err
    rc, _, err = _main(["merge", "s1.h5", "s2.h5", "-o", "m.h5", "m.tsv"], capsys, tmp_path)
    assert rc == 0, err
    n = len((tmp_path / "m.tsv").read_text().splitlines()) - 1
    rows = (tmp_path / "s2.tsv").read_text().splitlines(keepends=True)
    (tmp_path / "s2.tsv").write_text("".join(rows[:3]))
    rc, _, err = _main(["merge", "s1.h5", "s2.h5", "-o", "m2.h5", "m2.tsv"], capsys, tmp_path)
    assert rc == 2
    line = _one_line(err)
    assert f"the .tsv file of shard s2.h5, has 2 rows but the shard holds {len(rows) - 1} regions" in line, line
    assert not (tmp_path / "m2.h5").exists() and not (tmp_path / "m2.tsv").exists()
    assert n == 40


# ---------------------------------------------------------------------------
# --dtype, --dataloader_args and --dataloader_source checked before the model runs

@pytest.mark.parametrize("extra,expect", [
    (["--dtype", "int7"], "--dtype: expected a floating torch dtype (float32, float64, float16, bfloat16), got 'int7'"),
    (["--dtype", "float63"], "--dtype: expected a floating torch dtype"),
    (["--dtype", "float64"], "dtype: float64 differs from the model's float32 parameters; use the model's own "
                             "dtype, float16 or bfloat16"),
    (["--dataloader_args", "[1, 2]"], "--dataloader_args: expected a JSON object or key=value pairs, got '[1, 2]'"),
    (["--dataloader_args", "3"], "--dataloader_args: expected a JSON object"),
    (["--example", "--dataloader_source", "dir"], "--dataloader_source dir: given without --dataloader"),
])
def test_run_options_refused_in_one_line(tiny, capsys, tmp_path, extra, expect):
    argv = ["predict", tiny, "-o", "p.h5", "-q"] + (extra if "--example" in extra or "--dataloader_args" in extra
                                                      else extra + ["--example"])
    rc, _, err = _main(argv, capsys, tmp_path)
    assert rc == 2
    assert expect in _one_line(err)
    assert os.listdir(tmp_path) == []


def test_resolve_dtype_refuses_another_float_width():
    import torch
    from kipoi_tanger._base import resolve_dtype
    from kipoi_tanger.predict import predict
    m = torch.nn.Conv1d(4, 2, 3)
    assert resolve_dtype(m, "bfloat16") == torch.bfloat16 and resolve_dtype(m, None) == torch.float32
    with pytest.raises(ValueError, match="dtype: float64 differs from the model's float32 parameters"):
        predict(m, torch.zeros(2, 4, 10), dtype=torch.float64)
    assert resolve_dtype(m.double(), "float64") == torch.float64
    assert resolve_dtype(torch.nn.Identity(), "float64") == torch.float64   # no parameters: no clash


# ---------------------------------------------------------------------------
# the model's outputs against the schema's targets

@pytest.mark.parametrize("shape,ok", [("(2,)", True), ("(1, 2)", True), ("(None,)", True), ("(3,)", False),
                                      ("(2, 2)", False)])
def test_outputs_checked_against_the_schema(tmp_path, capsys, shape, ok):
    d = make_model_dir(tmp_path / "m", "rv_t", arch="TinyCNN", layout="LA",
                       targets={"name": "probs", "shape": shape, "doc": "outputs"})
    rc, _, err = _main(["predict", d, "--example", "-o", "p.h5", "-q"], capsys, tmp_path)
    if ok:
        assert rc == 0, err
        return
    assert rc == 2
    line = _one_line(err)
    assert f"model.yaml schema: targets: probs: declares shape {shape} per example, but the model outputs (2,)" in line
    assert not (tmp_path / "p.h5").exists() and not (tmp_path / "p.h5.partial").exists()


@pytest.mark.parametrize("option,value,expect", [
    ("--min_len", "0", "--min_len: must be at least 1; got 0"),
    ("--flanks", "-1", "--flanks: must be at least 0; got -1"),
    ("--n_bins", "0", "--n_bins: must be at least 2; got 0"),
])
def test_seqlets_errors_name_the_command_options(results, capsys, tmp_path, option, value, expect):
    rc, _, err = _main(["seqlets", results["attr"], "-o", "s.bed", "--strand", "rc", option, value], capsys, tmp_path)
    assert rc == 2
    assert expect in _one_line(err)
    assert os.listdir(tmp_path) == []
