"""kipoi-tanger CLI: in-process and as subprocesses, the real `kipoi` executable
(`kipoi tanger`, `kipoi list_plugins`, `kipoi predict` on numpy 2), bad input."""
import json
import os

import numpy as np
import pandas as pd
import pytest
from kipoi.readers import HDF5Reader

from kipoi_model_dirs import REPO, dl_args, make_model_dir, run_cli
from h5compare import file_bytes_equal
from kipoi_tanger import cli
from kipoi_tanger.run import h5io, run
from cli_helpers import main_in as _main

N = 40


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    dirs = {
        "la": make_model_dir(root, "cl_la", arch="TinyCNN", layout="LA"),
        "fd": make_model_dir(root, "cl_fd", arch="FlattenDense", layout="AL", tanger={"extra_inputs": ["alpha", "beta"]}),
        "prof": make_model_dir(root, "cl_prof", arch="ProfileNet", layout="AL",
                               targets=[{"name": "profile", "shape": "(1, 50)", "doc": "p"},
                                        {"name": "counts", "shape": "(1,)", "doc": "c"}]),
        "tok": make_model_dir(root, "cl_tok", arch="TokenNet", layout="tokens",
                              tanger={"layout": "(L)", "sequence_input": "seq", "ops": ["predict", "marginalize"]}),
        "tm": make_model_dir(root, "cl_tm", arch="TinyCNN", layout="LA", defined_as="kipoi_tanger.TorchModel"),
        "gru": make_model_dir(root, "cl_gru", arch="OneHotGRU", layout="AL"),
        "gc_hmm_gru": os.path.join(REPO, "example_models", "gc_hmm_gru"),
    }
    np.save(root / "alpha.npy", np.arange(3, dtype=np.float32)[:, None])
    np.save(root / "beta.npy", np.array([[1.0], [2.0]], dtype=np.float32))
    home = root / "home"
    home.mkdir()
    return root, dirs, home


def _dla(d):
    """--dataloader_args with paths relative to the model dir's parent (the cwd of the CLI runs)."""
    name = os.path.basename(d)
    return json.dumps({"intervals_file": f"{name}/example_files/intervals.bed",
                       "fasta_file": f"{name}/example_files/genome.fa"})


def _one_error_line(stderr, prog="kipoi-tanger"):
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{prog}: error: ") and "Traceback" not in stderr
    return lines[0]


# -- subprocesses: real executables ------------------------------------------------

def test_predict_cli_equals_kipoi_predict(work):
    """`kipoi-tanger predict` writes what `kipoi predict` writes (the numpy-2 shim makes the latter work)."""
    root, dirs, home = work
    name = os.path.basename(dirs["la"])
    p = run_cli(["predict", name, "--dataloader_args", _dla(dirs["la"]), "-o", "t.h5", "t.tsv", "-m", "-k"],
                root, home)
    assert p.returncode == 0, p.stderr
    k = run_cli(["predict", name, "--source", "dir", "--dataloader_args", _dla(dirs["la"]), "-o", "k.h5", "k.tsv",
                 "-m", "-k"], root, home, exe="kipoi")
    assert k.returncode == 0, k.stderr
    a = HDF5Reader.load(str(root / "t.h5"), unflatten=False)
    b = HDF5Reader.load(str(root / "k.h5"), unflatten=False)
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
    # the same table as Kipoi's, in the model's order instead of sorted as text: regions first
    # (chr, start, end, id, strand), preds/2 before preds/10, columns named by the schema's labels
    t, k = (pd.read_csv(root / f, sep="\t") for f in ("t.tsv", "k.tsv"))
    (name, labels), = h5io.read_attrs(str(root / "t.h5"))["column_labels"].items()
    assert labels == [f"task{i}" for i in range(len(labels))]
    named = {f"preds/{i}": f"preds/{label}" for i, label in enumerate(labels)}
    assert sorted(t.columns) == sorted(named.get(c, c) for c in k.columns)
    pd.testing.assert_frame_equal(t[[named.get(c, c) for c in k.columns]].set_axis(k.columns, axis=1), k)
    ranges = [f"metadata/ranges/{c}" for c in ("chr", "start", "end", "id", "strand")]
    assert list(t.columns[:5]) == ranges
    preds = [c for c in t.columns if c.startswith("preds")]
    assert preds == sorted(preds, key=lambda c: [int(x) if x.isdigit() else x for x in c.split("/")])


def test_real_kipoi_executable_plugin(work):
    """`kipoi list_plugins` lists kipoi_tanger; `kipoi tanger predict` == `kipoi-tanger predict`."""
    root, dirs, home = work
    p = run_cli(["list_plugins"], root, home, exe="kipoi")
    assert p.returncode == 0, p.stderr
    row = [l for l in p.stdout.splitlines() if "kipoi_tanger" in l]
    assert row and "True" in row[0]
    name = os.path.basename(dirs["la"])
    p = run_cli(["tanger", "deeplift-shap", name, "--example", "-o", "kt.h5", "--random_state", "2",
                 "--n_shuffles", "2", "-q"], root, home, exe="kipoi")
    assert p.returncode == 0, p.stderr
    api = str(root / "api.h5")
    run("deeplift-shap", dirs["la"], api, example=True, random_state=2, n_shuffles=2, verbose=False)
    a, b = h5io.load(str(root / "kt.h5")), h5io.load(api)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_kill9_and_resume_via_cli(work, capsys):
    """kill -9 of the CLI process, then `--resume` gives the uninterrupted run's file."""
    root, dirs, home = work
    name = os.path.basename(dirs["la"])
    args = ["deeplift-shap", name, "--dataloader_args", _dla(dirs["la"]), "-o", "r.h5", "--n_shuffles", "2",
            "--random_state", "9", "--batch_size", "8", "-m", "-q"]
    p = run_cli(args, root, home, env_extra={"KIPOI_TANGER_KILL_AFTER_BATCHES": "3"})
    assert p.returncode == -9
    assert not (root / "r.h5").exists() and (root / "r.h5.partial").is_dir()
    rc, _, err = _main(args, capsys, root)
    assert rc == 2 and "--resume" in _one_error_line(err)
    rc, _, err = _main(args + ["--resume"], capsys, root)
    assert rc == 0, err
    rc, _, err = _main(args[:5] + ["full.h5"] + args[6:], capsys, root)
    assert rc == 0, err
    assert file_bytes_equal(str(root / "full.h5"), str(root / "r.h5"))


def test_bad_input_subprocess(work):
    """The console script itself: one error line, exit status 2, nothing written."""
    root, dirs, home = work
    args = ["deeplift-shap", "cl_prof", "--example", "--output", "profile", "-o", "x.h5"]
    p = run_cli(args, root, home)
    assert p.returncode == 2
    _one_error_line(p.stderr)
    assert not (root / "x.h5").exists() and not (root / "x.h5.partial").exists()


def test_torchmodel_with_kipoi_test(work):
    """defined_as: kipoi_tanger.TorchModel works with plain `kipoi test`."""
    root, dirs, home = work
    p = run_cli(["test", os.path.basename(dirs["tm"]), "--source", "dir", "-o", "tm_test.h5"], root, home, exe="kipoi")
    assert p.returncode == 0, p.stderr
    with HDF5Reader(str(root / "tm_test.h5")) as r:
        assert r.load_all()["preds"].shape == (N, 2)


# -- in process: every command -------------------------------------------------------

def test_commands_in_process_equal_api(work, capsys, tmp_path):
    root, dirs, home = work
    d = dirs["fd"]
    dla = json.dumps(dl_args(d))
    cases = [
        (["deeplift-shap", d, "--dataloader_args", dla, "--random_state", "4", "--n_shuffles", "2",
          "--target", "task2", "--hypothetical", "--return_references", "--warning_threshold", "0.5"],
         dict(op="deeplift-shap", random_state=4, n_shuffles=2, target="task2", hypothetical=True,
              return_references=True, warning_threshold=0.5)),
        (["marginalize", d, "--dataloader_args", dla, "--motif", "GANAAG", "--start", "3"],
         dict(op="marginalize", motif="GANAAG", start=3)),
        (["product", d, "--dataloader_args", dla, "--args", str(root / "alpha.npy"), str(root / "beta.npy"),
          "--op", "marginalize", "--motif", "TTT"],
         dict(op="product", args=[str(root / "alpha.npy"), str(root / "beta.npy")], inner_op="marginalize",
              motif="TTT")),
    ]
    for i, (argv, kw) in enumerate(cases):
        out_cli, out_api = str(tmp_path / f"c{i}.h5"), str(tmp_path / f"a{i}.h5")
        rc, _, err = _main(argv + ["-o", out_cli, "-q"], capsys, tmp_path)
        assert rc == 0, err
        op = kw.pop("op")
        run(op, d, out_api, dataloader_args=dl_args(d), verbose=False, **kw)
        assert file_bytes_equal(out_cli, out_api), argv[0]
    assert h5io.load(str(tmp_path / "c0.h5"))["references"].shape == (N, 2, 4, 50)
    assert h5io.read_attrs(str(tmp_path / "c0.h5"))["target_label"] == "task2"
    assert h5io.read_attrs(str(tmp_path / "c0.h5"))["parameters"]["warning_threshold"] == 0.5
    assert h5io.load(str(tmp_path / "c2.h5"))["y_after"].shape == (N, 3, 2, 3)


def test_info_and_merge(work, capsys, tmp_path):
    root, dirs, home = work
    rc, out, err = _main(["info", dirs["prof"]], capsys, tmp_path)
    assert rc == 0, err
    assert "(A, L)   [inferred from the schema shape (4, 50)]" in out
    assert "counts   [inferred: the only output shaped (n_targets,)" in out
    rc, out, _ = _main(["info", dirs["tok"], "--json"], capsys, tmp_path)
    info = json.loads(out)
    assert info["layout"] == "(L)" and info["provenance"]["layout"] == "declared"
    assert info["ops"] == ["predict", "marginalize"]
    d = dirs["la"]
    for i in (1, 2):
        rc, _, err = _main(["predict", d, "--example", "-o", f"s{i}.h5", "--shard", f"{i}/2", "-m", "-q"], capsys,
                           tmp_path)
        assert rc == 0, err
    rc, _, err = _main(["merge", "s2.h5", "s1.h5", "-o", "merged.h5", "-q"], capsys, tmp_path)
    assert rc == 0, err
    rc, _, err = _main(["predict", d, "--example", "-o", "single.h5", "-m", "-q"], capsys, tmp_path)
    assert file_bytes_equal(str(tmp_path / "single.h5"), str(tmp_path / "merged.h5"))
    rc, _, err = _main(["merge", "s2.h5", "-o", "m2.h5"], capsys, tmp_path)
    assert rc == 2 and "missing 1/2" in _one_error_line(err)


BAD = [
    (["predict", "missing_dir", "--example", "-o", "x.h5"], "no such directory"),
    (["predict", "{la}", "--dataloader_args", "intervals_file=a.bed", "fasta_fle=b.fa", "-o", "x.h5"],
     "unknown argument 'fasta_fle' (did you mean 'fasta_file'?)"),
    (["predict", "{la}", "--dataloader_args", "intervals_file=missing.bed", "fasta_file=missing.fa", "-o", "x.h5"],
     "FileNotFoundError"),
    (["predict", "{la}", "-o", "x.h5"], "missing required argument(s) intervals_file, fasta_file"),
    (["predict", "{la}", "--dataloader_args", "{not json", "-o", "x.h5"], "--dataloader_args"),
    (["predcit", "{la}", "--example", "-o", "x.h5"], "did you mean 'predict'?"),
    (["predict", "{la}", "--example", "-o", "x.csv"], "unknown file type"),
    (["deeplift-shap", "{la}", "--example", "-o", "x.tsv"], "a .tsv holds tables"),
    (["deeplift-shap", "{prof}", "--example", "--output", "profile", "-o", "x.h5"],
     "declare a reduction, e.g. reduce: {op: sum, axis: -1}"),
    (["deeplift-shap", "{tok}", "--example", "-o", "x.h5"],
     "op 'deeplift-shap' is not supported (postprocessing: tanger: ops declares predict, marginalize); "
     "deep_lift_shap: module 'gru' (GRU) has no DeepLIFT rule"),
    (["deeplift-shap", "{gc_hmm_gru}", "--example", "-o", "x.h5"],
     "op 'deeplift-shap' is not supported (postprocessing: tanger: ops declares predict, marginalize); "
     "deep_lift_shap: module 'gru' (GRU) has no DeepLIFT rule"),
    (["deeplift-shap", "{gru}", "--example", "-o", "x.h5"], "deep_lift_shap: module 'gru' (GRU) has no DeepLIFT rule"),
    (["marginalize", "{gru}", "--example", "--motif", "GATA", "--op", "deeplift-shap", "-o", "x.h5"],
     "deep_lift_shap: module 'gru' (GRU) has no DeepLIFT rule"),
    (["deeplift-shap", "{la}", "--example", "--warning_threshold", "-1", "-o", "x.h5"], "--warning_threshold"),
    (["deeplift-shap", "{la}", "--example", "--target", "nosuch", "-o", "x.h5"], "--target: 'nosuch'"),
    (["deeplift-shap", "{la}", "--example", "--n_shuffles", "0", "-o", "x.h5"], "--n_shuffles"),
    (["marginalize", "{la}", "--example", "--motif", "GAXX", "-o", "x.h5"], "outside the alphabet"),
    (["marginalize", "{la}", "--example", "--motif", "GATA", "--start", "49", "-o", "x.h5"], "--start: 49 puts the 4-character motif past the end"),
    (["product", "{fd}", "--example", "--args", "nope.npy", "-o", "x.h5"], "--args: nope.npy: no such file"),
    (["predict", "{la}", "--example", "--shard", "3/2", "-o", "x.h5"], "--shard"),
    (["predict", "{la}", "--example", "--source", "nosuch", "-o", "x.h5"], "--source nosuch"),
    (["predict", "{la}", "--example", "--dataloader", "no.such.Loader", "-o", "x.h5"], "--dataloader no.such.Loader"),
    (["predict", "{la}", "--example", "-o", "exists.h5"], "exists.h5 exists; pass --overwrite"),
    (["predict", "{la}", "--example", "-o", "exists.h5/sub/x.h5"], "exists.h5 is not a directory"),
    (["predict", "{la}", "--example", "-o", "x.h5", "--batch_size", "x"], "--batch_size"),
    (["merge", "nothere.h5", "-o", "x.h5"], "nothere.h5: no such file"),
]


@pytest.mark.parametrize("argv,match", BAD, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_one_line_exit_2(work, capsys, tmp_path, argv, match):
    root, dirs, home = work
    (tmp_path / "exists.h5").write_bytes(b"keep")
    argv = [dirs[a[1:-1]] if a[:1] == "{" and a[1:-1] in dirs else a for a in argv]
    rc, out, err = _main(argv, capsys, tmp_path)
    assert rc == 2
    line = _one_error_line(err)
    assert match in line
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["exists.h5"], left
    assert (tmp_path / "exists.h5").read_bytes() == b"keep"


def test_example_paths_and_new_output_dirs(capsys, tmp_path):
    """The reported case: composite/from_predictions --example (a comma-separated list of example files,
    relative to the dataloader dir) from another directory, into output dirs that do not exist yet;
    predictions equal the model's test.expect.h5 (made by `kipoi test`, which cds into the dataloader dir)."""
    import h5py
    model = os.path.join(REPO, "example_models", "composite", "from_predictions")
    rc, _, err = _main(["predict", model, "--example", "-o", "new/sub/y.h5", "-q"], capsys, tmp_path)
    assert rc == 0, err
    with h5py.File(os.path.join(model, "test.expect.h5"), "r") as f:
        expect = f["preds"][:]
    got = h5io.load(str(tmp_path / "new" / "sub" / "y.h5"))["preds"]
    assert got.shape == expect.shape == (12, 1) and np.allclose(got, expect, atol=1e-5)
    rc, _, err = _main(["predict", model, "--example", "-o", "new/sub/y.h5"], capsys, tmp_path)
    assert rc == 2 and "exists; pass --overwrite" in _one_error_line(err)


def test_info_without_sequence_input(capsys, tmp_path):
    """composite/merged: inputs model2 (3,) and model3 (4,) are predictions; info says there is no
    sequence input (model3's (4,) is not taken for one) and that predict runs on all inputs."""
    rc, out, err = _main(["info", os.path.join(REPO, "example_models", "composite", "merged")], capsys, tmp_path)
    assert rc == 0, err
    lines = out.splitlines()
    assert any(l.startswith("sequence input  none") for l in lines), out
    assert any(l.startswith("layout          none") for l in lines), out
    assert "note            the model has no sequence input: predict runs it on all its inputs" in lines
    assert "model3" not in next(l for l in lines if l.startswith("sequence input"))


def test_register_command_extends_the_cli(capsys, tmp_path):
    seen = {}

    def configure(p):
        p.add_argument("value")

    def handler(a):
        seen["value"] = a.value
        return 0

    cli.register_command("echo-test", "test command", configure, handler)
    try:
        rc, _, _ = _main(["echo-test", "42"], capsys, tmp_path)
        assert rc == 0 and seen == {"value": "42"}
    finally:
        cli._REGISTRY.pop("echo-test")


def test_kipoi_plugin_protocol():
    assert callable(cli.cli_main) and cli.ModelParser is None and cli.DataloaderParser is None
    with pytest.raises(SystemExit) as e:
        cli.cli_main("tanger", ["--version"])
    assert e.value.code == 0
