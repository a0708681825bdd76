"""workflows/: shard.smk (N shards + merge == one run) and composite.smk (per-model environments).

Snakemake is a test/extra dependency: these tests look for it in $SNAKEMAKE, next to the test
interpreter, then on PATH, and skip when it is missing.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from kipoi_model_dirs import make_model_dir, subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WF = os.path.join(REPO, "workflows")
COMP = os.path.join(REPO, "example_models", "composite")
EX = os.path.join(COMP, "example_files")


def snakemake_exe():
    for cand in (os.environ.get("SNAKEMAKE"), os.path.join(os.path.dirname(sys.executable), "snakemake"),
                 shutil.which("snakemake")):
        if cand and os.path.exists(cand):
            return cand
    pytest.skip("snakemake is not installed (pip install 'snakemake>=9,<9.6' 'jsonschema<4.18')")


def snakemake(snakefile, cfg, cwd, *args, config=None, timeout=300):
    path = os.path.join(str(cwd), "config.json")
    with open(path, "w") as fh:
        json.dump(cfg, fh)
    cmd = [snakemake_exe(), "-s", os.path.join(WF, snakefile), "--configfile", path, "--cores", "2"]
    cmd += list(args)
    if config:
        cmd += ["--config"] + [f"{k}={v}" for k, v in config.items()]
    home = os.environ["KIPOI_TANGER_TEST_HOME"]
    return subprocess.run(cmd, cwd=str(cwd), env=subprocess_env(home), capture_output=True, text=True,
                          timeout=timeout)


def h5_contents(path):
    data = {}
    with h5py.File(path) as f:
        f.visititems(lambda n, o: data.__setitem__(n, o[:]) if isinstance(o, h5py.Dataset) else None)
        attrs = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
    return data, attrs


def assert_same_file(a, b):
    da, aa = h5_contents(a)
    db, ab = h5_contents(b)
    assert list(da) == list(db)
    for k in da:
        assert da[k].dtype == db[k].dtype and da[k].shape == db[k].shape, k
        np.testing.assert_array_equal(da[k], db[k], err_msg=k)
    assert aa == ab


# ---------------------------------------------------------------------------
# shard.smk


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("models"), name="tiny", arch="TinyCNN", layout="LA",
                          n_regions=14, L=50)


def shard_config(model_dir, outdir, **over):
    cfg = {"model": model_dir, "example": True, "shards": 3, "outdir": str(outdir), "python": sys.executable,
           "runs": {"predict": {"op": "predict", "options": {"batch_size": 4, "keep_metadata": True}},
                    "attributions": {"op": "deeplift-shap",
                                     "options": {"batch_size": 4, "n_shuffles": 3, "random_state": 1,
                                                 "keep_metadata": True}}}}
    cfg.update(over)
    return cfg


def test_shard_workflow_equals_a_single_run(tmp_path, tiny_model):
    """N=3 shards + merge give the single-run file: every dataset, metadata order and attribute."""
    r = snakemake("shard.smk", shard_config(tiny_model, tmp_path / "out"), tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    from kipoi_tanger.run import run
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # snakemake runs each job with OMP_NUM_THREADS = its threads (1)
    try:
        run("predict", tiny_model, [str(tmp_path / "predict.h5")], example=True, batch_size=4,
            keep_metadata=True, verbose=False)
        run("deeplift-shap", tiny_model, [str(tmp_path / "attr.h5")], example=True, batch_size=4, n_shuffles=3,
            random_state=1, keep_metadata=True, verbose=False)
    finally:
        torch.set_num_threads(threads)
    assert_same_file(tmp_path / "out" / "predict.h5", tmp_path / "predict.h5")
    assert_same_file(tmp_path / "out" / "attributions.h5", tmp_path / "attr.h5")
    # three independent jobs, one contiguous block of batches each (14 regions, batches of 4)
    ranges = []
    for i in (1, 2, 3):
        with h5py.File(tmp_path / "out" / "shards" / f"attributions.{i}-of-3.h5") as f:
            assert f.attrs["shard"] == f"{i}/3"
            ranges.append(json.loads(f.attrs["shard_range"]))
    assert ranges == [[0, 4], [4, 8], [8, 14]]
    with h5py.File(tmp_path / "out" / "attributions.h5") as f:
        assert f["attributions"].shape == (14, 4, 50) and len(set(f["metadata/ranges/id"][:])) == 14


@pytest.mark.parametrize("over, message", [
    ({"runs": {"a": {"op": "deeplift-shap", "options": {"batch_size": 4}}}},
     "runs: a: deeplift-shap draws references; set options: random_state"),
    ({"runs": {"a": {"op": "predict", "options": {"shard": "1/2"}}}}, "runs: a: options: 'shard' is set by the workflow"),
    ({"model": "no/such/model"}, "model: no/such/model has no model.yaml"),
])
def test_shard_config_errors_are_clear(tmp_path, tiny_model, over, message):
    r = snakemake("shard.smk", shard_config(tiny_model, tmp_path / "out", **over), tmp_path, "-n")
    assert r.returncode != 0
    assert "shard.smk: " + message in r.stderr + r.stdout


def test_shard_workflow_multi_gpu_and_single_commands(tmp_path, tiny_model):
    """gpu_ids: every shard job asks for one GPU and runs under gpu_slot.py (dry run, no GPU needed)."""
    cfg = shard_config(tiny_model, tmp_path / "out", gpu_ids=[0, 1], shards=2)
    r = snakemake("shard.smk", cfg, tmp_path, "-n", "-p", "all", "single")
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert out.count("gpu_slot.py --gpus 0,1 --lock-dir") == 6       # 4 shard jobs + 2 single runs
    assert out.count("--shard 1/2") == 2 and out.count("--shard 2/2") == 2
    assert "gpu=1" in out
    assert "kipoi_tanger.cli merge" in out


def test_gpu_slot_never_gives_one_gpu_to_two_running_jobs(tmp_path):
    script = os.path.join(WF, "scripts", "gpu_slot.py")
    child = ("import os, sys, time; s = time.time(); time.sleep(1.0); "
             "open(sys.argv[1], 'w').write(f\"{os.environ['CUDA_VISIBLE_DEVICES']} {s} {time.time()}\")")
    procs = [subprocess.Popen([sys.executable, script, "--gpus", "3,5", "--lock-dir", str(tmp_path / "locks"),
                               "--poll", "0.1", "--", sys.executable, "-c", child, str(tmp_path / f"job{i}")],
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    jobs = []
    for i in range(3):
        gpu, start, end = (tmp_path / f"job{i}").read_text().split()
        jobs.append((gpu, float(start), float(end)))
    assert {g for g, _, _ in jobs} <= {"3", "5"}
    for a in range(3):
        for b in range(a + 1, 3):
            (ga, sa, ea), (gb, sb, eb) = jobs[a], jobs[b]
            if sa < eb and sb < ea:   # ran at the same time
                assert ga != gb
    r = subprocess.run([sys.executable, script, "--gpus", "0", "--lock-dir", str(tmp_path / "l2"), "--",
                        sys.executable, "-c", "import sys; sys.exit(3)"])
    assert r.returncode == 3     # the command's exit status is passed on


# ---------------------------------------------------------------------------
# composite.smk


def composite_config(outdir, **over):
    cfg = {"models": {"model2": {"model": os.path.join(COMP, "m12"),
                                 "dataloader_args": {"features_file": os.path.join(EX, "features1.tsv")}},
                      "model3": {"model": os.path.join(COMP, "m3"),
                                 "dataloader_args": {"features_file": os.path.join(EX, "features2.tsv")}}},
           "final": {"model": os.path.join(COMP, "from_predictions"), "name": "final"},
           "outdir": str(outdir), "envs_dir": str(outdir / "envs"), "python": sys.executable,
           "local_packages": {"kipoi_tanger": REPO}, "batch_size": 5}
    cfg.update(over)
    return cfg


def composite_by_hand():
    """The seed's graph with the sub-models' weights, in numpy: final = ensemble(m12(x1), m3(x2))."""
    def dense(name):
        sd = torch.load(os.path.join(COMP, name, "weights.pth"), weights_only=True)
        return sd["dense.weight"].numpy(), sd["dense.bias"].numpy()

    def table(name):
        return np.loadtxt(os.path.join(EX, name), skiprows=1, usecols=None, dtype=str)[:, 1:].astype(np.float32)
    x1, x2 = table("features1.tsv"), table("features2.tsv")
    (w1, b1), (w2, b2), (w3, b3) = dense("m1"), dense("m2"), dense("m3")
    model2 = np.concatenate([x1 @ w1.T + b1, x1], axis=1) @ w2.T + b2
    model3 = x2 @ w3.T + b3
    sd = torch.load(os.path.join(COMP, "from_predictions", "weights.pth"), weights_only=True)
    return model2, model3, np.concatenate([model2, model3], axis=1) @ sd["m4.dense.weight"].numpy().T + \
        sd["m4.dense.bias"].numpy()


def test_composite_workflow_shared_env_end_to_end(tmp_path):
    r = snakemake("composite.smk", composite_config(tmp_path / "out"), tmp_path, config={"shared_env": "true"})
    assert r.returncode == 0, r.stderr[-3000:]
    model2, model3, final = composite_by_hand()
    ids = [f"r{i:02d}" for i in range(12)]
    for name, expected in (("model2", model2), ("model3", model3), ("final", final)):
        with h5py.File(tmp_path / "out" / f"{name}.h5") as f:
            np.testing.assert_allclose(f["preds"][:], expected, rtol=1e-5, atol=1e-6, err_msg=name)
            assert [x.decode() for x in f["metadata/id"][:]] == ids
    assert not (tmp_path / "out" / "envs").exists()
    # the final model equals the merged-dataloader model (scenario 2) on the same regions
    from kipoi_tanger.run import run
    run("predict", os.path.join(COMP, "merged"), [str(tmp_path / "merged.h5")], device="cpu", verbose=False,
        dataloader_args={"features1_file": os.path.join(EX, "features1.tsv"),
                         "features2_file": os.path.join(EX, "features2.tsv")})
    with h5py.File(tmp_path / "merged.h5") as a, h5py.File(tmp_path / "out" / "final.h5") as b:
        np.testing.assert_allclose(a["preds"][:], b["preds"][:], rtol=1e-6, atol=1e-7)


def test_composite_workflow_one_env_per_model_commands(tmp_path):
    """Dry run of the per-model environments: venv + torch first + the model's pins + local wheel."""
    r = snakemake("composite.smk", composite_config(tmp_path / "out"), tmp_path, "-n", "-p")
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    envs = tmp_path / "out" / "envs"
    for name in ("model2", "model3", "final"):
        assert f"-m venv --clear {envs}/{name}" in out
        assert f"{envs}/{name}/bin/python -m pip install --quiet torch==2.13.0" in out
        assert f"{envs}/{name}/bin/python -m kipoi_tanger.cli predict" in out
    install = [line for line in out.splitlines() if "pip install" in line and "six==" in line]
    assert any(f"{envs}/model2/" in line and "six==1.16.0" in line for line in install)
    assert any(f"{envs}/model3/" in line and "six==1.17.0" in line for line in install)
    assert f"{envs}/wheels/kipoi_tanger-*.whl" in out            # never the index for kipoi_tanger
    assert f"pip wheel --quiet --no-deps --no-build-isolation -w {envs}/wheels {REPO}" in out
    assert out.index("torch==2.13.0") < out.index("kipoi_tanger-*.whl")


def test_composite_workflow_missing_prediction_file(tmp_path):
    cfg = composite_config(tmp_path / "out")
    cfg["models"]["model3"] = {"predictions": str(tmp_path / "elsewhere" / "m3.h5")}
    r = snakemake("composite.smk", cfg, tmp_path, "-n", config={"shared_env": "true"})
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "MissingInputException" in out and str(tmp_path / "elsewhere" / "m3.h5") in out


@pytest.mark.parametrize("over, message", [
    ({"models": {"model2": {"model": "/no/such/dir"}}}, "models: model2: model: /no/such/dir has no model.yaml"),
    ({"local_packages": {}}, "local_packages: map kipoi_tanger to its source tree"),
])
def test_composite_config_errors_are_clear(tmp_path, over, message):
    r = snakemake("composite.smk", composite_config(tmp_path / "out", **over), tmp_path, "-n")
    assert r.returncode != 0
    assert "composite.smk: " + message in r.stdout + r.stderr


@pytest.mark.slow
def test_composite_workflow_builds_one_env_per_model(tmp_path):
    """Real per-model venvs (network for PyPI packages; several minutes)."""
    r = snakemake("composite.smk", composite_config(tmp_path / "out"), tmp_path, timeout=3000)
    assert r.returncode == 0, r.stderr[-3000:]
    envs = tmp_path / "out" / "envs"
    six = {}
    for name in ("model2", "model3", "final"):
        freeze = (envs / name / ".kipoi-tanger-env").read_text().splitlines()
        assert "torch==2.13.0+cpu" in freeze or "torch==2.13.0" in freeze
        assert any(line.startswith("kipoi_tanger") or line.startswith("kipoi-tanger") for line in freeze)
        six[name] = next(line for line in freeze if line.lower().startswith("six=="))
    assert six["model2"] == "six==1.16.0" and six["model3"] == "six==1.17.0"
    _, _, final = composite_by_hand()
    with h5py.File(tmp_path / "out" / "final.h5") as f:
        np.testing.assert_allclose(f["preds"][:], final, rtol=1e-5, atol=1e-6)
