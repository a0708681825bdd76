"""``type: tensorflow`` (TF1 checkpoint) Kipoi models through kipoi_tanger (frameworks/tensorflow.py).

The fixture (tests/zoo_fixtures.py ``make_tf1_dir``) is shaped like the zoo's TensorFlow models: a
``tf.compat.v1`` Saver checkpoint given as ``{meta, index, data}``, ``input_nodes``/``target_nodes``,
and a ``const_feed_dict_pkl`` the graph cannot run without; a DeepBind-like graph on ``(N, 101, 4)``
over kipoiseq's SeqIntervalDl. Its checkpoint is written, and the graph run on the oracle windows
(encoded here from the FASTA with pyfaidx), in TF1 mode in the writer's own subprocess: the TF
graph's own output. Everything that loads the model runs in one more subprocess (TensorFlow is
imported once), so no TensorFlow state, and no ``disable_v2_behavior()`` of Kipoi's own class,
reaches the test process.
"""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

import zoo_fixtures as zf
from kipoi_model_dirs import subprocess_env

if importlib.util.find_spec("tensorflow") is None:          # not imported here: see the docstring
    pytest.skip("TensorFlow is not installed (pip install kipoi_tanger[frameworks])", allow_module_level=True)

L = 101

SCRIPT = textwrap.dedent('''
    import contextlib, io, json, os, shutil, sys
    import numpy as np
    import yaml
    d, tmp = sys.argv[1], sys.argv[2]
    dl_args = json.dumps({"intervals_file": os.path.join(d, "example_files", "intervals.bed"),
                          "fasta_file": os.path.join(d, "example_files", "genome.fa")})
    from kipoi_tanger.cli import main
    res = {}

    def cli(name, args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(args)
        res[name] = {"rc": rc, "out": out.getvalue(), "err": err.getvalue()}

    cli("info", ["info", d])
    cli("info_json", ["info", d, "--json"])
    cli("predict", ["predict", d, "--dataloader_args", dl_args, "--batch_size", "6", "-q", "-o",
                    os.path.join(tmp, "p.h5")])
    cli("marginalize", ["marginalize", d, "--dataloader_args", dl_args, "--motif", "GATAAG", "--batch_size", "7",
                        "-q", "-o", os.path.join(tmp, "m.h5")])
    cli("deeplift", ["deeplift-shap", d, "--dataloader_args", dl_args, "-q", "-o", os.path.join(tmp, "d.h5")])
    # bad args: one line naming the field
    bad = os.path.join(tmp, "bad_node")
    shutil.copytree(d, bad)
    spec = yaml.safe_load(open(os.path.join(bad, "model.yaml")))
    spec["args"]["target_nodes"] = "no_such_node"
    yaml.safe_dump(spec, open(os.path.join(bad, "model.yaml"), "w"))
    cli("bad_node", ["predict", bad, "--example", "-q", "-o", os.path.join(tmp, "bad.h5")])
    os.remove(os.path.join(bad, "model_files", "model.tf.index"))
    cli("bad_ckpt", ["predict", bad, "--example", "-q", "-o", os.path.join(tmp, "bad.h5")])

    import kipoi
    import tensorflow as tf
    from kipoi_tanger.frameworks.tensorflow import TensorFlowModel
    res["hooked"] = (kipoi.model.AVAILABLE_MODELS["tensorflow"] is TensorFlowModel
                     and kipoi.model.TensorFlowModel is TensorFlowModel)
    m = kipoi.get_model(d, source="dir")
    x = m.default_dataloader(**json.loads(dl_args)).load_all()["inputs"]
    ours = np.concatenate([m.predict_on_batch(x[i:i + 6]) for i in range(0, len(x), 6)])
    res["eager_after_load"] = tf.executing_eagerly()      # no process-wide disable_v2_behavior()
    # Kipoi's own class (it disables TF2 behaviour for the rest of this process: last)
    os.chdir(d)
    k = TensorFlowModel.kipoi_original("inputs", "preds", "model_files/model.tf", "model_files/const_feed_dict.pkl")
    theirs = np.concatenate([k.predict_on_batch(x[i:i + 6]) for i in range(0, len(x), 6)])
    np.save(os.path.join(tmp, "ours.npy"), ours)
    np.save(os.path.join(tmp, "kipoi_own.npy"), theirs)
    print("RESULT " + json.dumps(res))
''')


@pytest.fixture(scope="module")
def tf1(tmp_path_factory):
    """The model dir, the TF graph's own outputs on its windows (and on them with GATAAG at the
    centre), and what the subprocess found."""
    root = tmp_path_factory.mktemp("tf1")

    def windows(d):                                   # pyfaidx, not the dataloader
        X = zf.one_hot(zf.read_regions(d, L))
        Xm = X.copy()
        Xm[:, L // 2 - 3:L // 2 + 3] = zf.one_hot(["GATAAG"])[0]
        return np.concatenate([X, Xm])
    probe_out = str(root / "graph_out.npy")
    d = zf.make_tf1_dir(root, L=L, probe=windows, probe_out=probe_out)
    graph_out = np.load(probe_out)
    tmp = root / "run"
    tmp.mkdir()
    p = subprocess.run([sys.executable, "-c", SCRIPT, d, str(tmp)], capture_output=True, text=True,
                       env=subprocess_env(os.environ["HOME"]), cwd=str(tmp), timeout=600)
    line = [s for s in p.stdout.splitlines() if s.startswith("RESULT ")]
    assert p.returncode == 0 and line, p.stdout[-2000:] + p.stderr[-4000:]
    res = json.loads(line[-1][len("RESULT "):])
    res["stderr"] = p.stderr
    n = len(graph_out) // 2
    return {"dir": d, "tmp": tmp, "y": graph_out[:n], "y_motif": graph_out[n:], "res": res}


def test_predict_and_marginalize_equal_the_tf_graphs_own_output(tf1):
    """kipoi-tanger predict / marginalize through the model's predict_on_batch give what the TF1 graph
    itself gives on the same windows (and with GATAAG at L // 2 - 3); Kipoi's own TensorFlowModel gives
    the same on the dataloader's batches, bit for bit."""
    res = tf1["res"]
    assert res["predict"]["rc"] == 0 and res["marginalize"]["rc"] == 0, (res["predict"], res["marginalize"])
    with h5py.File(tf1["tmp"] / "p.h5", "r") as f:
        preds = f["preds"][:]
        assert f.attrs["framework"].startswith("tensorflow (TensorFlow ")
    np.testing.assert_allclose(preds, tf1["y"], rtol=1e-5, atol=1e-6)
    assert preds.std() > 0.01                               # not a constant model
    with h5py.File(tf1["tmp"] / "m.h5", "r") as f:
        before, after = f["y_before"][:], f["y_after"][:]
    np.testing.assert_allclose(before, tf1["y"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after, tf1["y_motif"], rtol=1e-5, atol=1e-6)
    assert np.abs(after - before).max() > 1e-3
    ours, kipoi_own = np.load(tf1["tmp"] / "ours.npy"), np.load(tf1["tmp"] / "kipoi_own.npy")
    np.testing.assert_array_equal(ours, kipoi_own)
    np.testing.assert_array_equal(ours, preds)


def test_loader_is_kipois_without_the_process_wide_switch(tf1):
    """The hook gives Kipoi kipoi_tanger's TensorFlowModel for type: tensorflow; loading it leaves
    TensorFlow in eager (TF2) mode; TensorFlow's start-up notices stay hidden."""
    res = tf1["res"]
    assert res["hooked"] and res["eager_after_load"]
    for name in ("info", "predict", "marginalize"):
        assert res[name]["err"] == "", (name, res[name]["err"])
    assert "oneDNN" not in tf1["res"]["stderr"] and "disable_resource_variables" not in tf1["res"]["stderr"]


def test_info_names_the_framework_and_deeplift_is_refused_in_one_line(tf1):
    res = tf1["res"]
    assert res["info"]["rc"] == 0
    out = res["info"]["out"]
    assert "framework       tensorflow (TensorFlow " in out and "tf.compat.v1 checkpoint" in out
    assert "loader kipoi_tanger.TensorFlowModel)" in out
    assert "deeplift-shap: unavailable: tensorflow models have no torch graph" in out
    assert "predict, marginalize, product" in out and "forward passes through the model's own predict_on_batch" in out
    info = json.loads(res["info_json"]["out"])
    assert info["framework"] == "tensorflow"
    err = res["deeplift"]["err"]
    assert res["deeplift"]["rc"] == 2 and len(err.strip().splitlines()) == 1, err
    assert "deeplift-shap needs a torch graph, and this is a tensorflow (TensorFlow " in err
    assert "tensorflow models have no torch graph; forward-only ops" in err
    assert not os.path.exists(tf1["tmp"] / "d.h5") and not os.path.exists(tf1["tmp"] / "d.h5.partial")


def test_bad_args_are_one_line_naming_the_field(tf1):
    res = tf1["res"]
    for name, expect in (("bad_node", "model.yaml args.target_nodes: no node 'no_such_node' in the graph of "),
                         ("bad_ckpt", "model.yaml args.checkpoint_path: model_files/model.tf.index does not exist")):
        err = res[name]["err"]
        assert res[name]["rc"] == 2 and len(err.strip().splitlines()) == 1, (name, err)
        assert expect in err and "Traceback" not in err, err
    assert not os.path.exists(tf1["tmp"] / "bad.h5")
