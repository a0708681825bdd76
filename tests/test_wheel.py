"""Everything from a wheel: `pip install .` (not editable) has what every command needs.

The wheel is built once per session from the working tree and installed with --no-deps into a fresh
venv that sees this venv's packages but neither kipoi_tanger's checkout nor setuptools/pkg_resources
(tests/wheel_env.py): the real `kipoi` CLI then runs on the start-up hook's pkg_resources stand-in, as
under setuptools >= 81. Every command runs from a directory outside the checkout.
"""
import os
import subprocess
import sys
import types
import zipfile

import pytest
import yaml

import wheel_env

pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(wheel_env.REPO, "setup.py")),
                                reason="needs the source tree")


@pytest.fixture(scope="module")
def wheel():
    return wheel_env.session_venv()["wheel"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    bin_dir = wheel_env.session_venv()["bin"]
    work, home = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("home")
    env = wheel_env.user_env(bin_dir, str(home))

    def run(*cmd, check=True):
        r = subprocess.run(list(cmd), cwd=str(work), env=env, capture_output=True, text=True, timeout=600)
        if check:
            assert r.returncode == 0, f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r

    run.work, run.home, run.bin = work, home, bin_dir
    return run


def test_the_wheel_carries_the_data_dirs_and_the_hook(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for f in ("model_templates/pytorch_onehot/template.yaml", "model_templates/_common/make_weights.py",
              "dataloaders/_shared.py", "dataloaders/interval_onehot/dataloader.py",
              "example_models/motif_cnn/weights.pth", "example_models/motif_cnn/test.expect.h5",
              "workflows/shard.smk", "workflows/README.md"):
        assert f"kipoi_tanger/_data/{f}" in names, f
    assert "kipoi_tanger-kipoi.pth" in names and "kipoi_tanger/_pkg_resources.py" in names
    with zipfile.ZipFile(wheel) as z:
        pth = z.read("kipoi_tanger-kipoi.pth").decode()
    assert pth.startswith("import ") and pth.count("\n") == 1
    # a hook whose install() raises must not break interpreter start-up
    broken = types.ModuleType("kipoi_tanger._kipoi_hook")
    broken.install = lambda: 1 / 0
    saved = sys.modules.get("kipoi_tanger._kipoi_hook")
    sys.modules["kipoi_tanger._kipoi_hook"] = broken
    try:
        exec(pth, {})
    finally:
        if saved is None:
            sys.modules.pop("kipoi_tanger._kipoi_hook", None)
        else:
            sys.modules["kipoi_tanger._kipoi_hook"] = saved
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/downloaded/" in n]
    requires = [ln.split(":", 1)[1].strip() for ln in meta.splitlines() if ln.startswith("Requires-Dist:")]
    assert not [r for r in requires if r.startswith("setuptools")], requires


def test_init_then_kipoi_test_and_kipoi_tanger_test(venv):
    r = venv("kipoi-tanger", "init", "my_model", "-o", ".")
    assert "kipoi test my_model --source dir" in r.stdout
    d = venv.work / "my_model"
    assert (d / "_shared.py").is_file()           # self-contained: a copy of the shipped loader
    assert yaml.safe_load((d / "dataloader.yaml").read_text())["defined_as"] == "interval_onehot.py::IntervalOneHot"
    r = venv("kipoi", "test", "my_model", "--source", "dir")
    assert "All predictions match" in r.stdout + r.stderr
    r = venv("kipoi-tanger", "test", "my_model", "--skip_kipoi_test")     # kipoi test ran just above
    last = r.stdout.splitlines()[-1]
    assert last.startswith("PASSED: ") and ", 0 failed" in last, r.stdout


def test_demo_and_the_zoo_as_a_kipoi_source(venv):
    r = venv("kipoi-tanger", "zoo")
    site_zoo = next(ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("example_models"))
    assert site_zoo.startswith(str(venv.bin.rsplit("/", 1)[0])) and site_zoo.endswith("kipoi_tanger/_data/example_models")
    venv("kipoi-tanger", "zoo", "--add_source")
    r = venv("kipoi", "ls", "--source", "tanger_zoo")
    assert {"motif_cnn", "flatten_dense", "basset_like"} <= set(r.stdout.split())
    assert "pkg_resources is deprecated" not in r.stderr        # Kipoi ran on the stand-in
    r = venv("python", "-c", "import pkg_resources", check=False)
    assert r.returncode == 1 and "No module named 'pkg_resources'" in r.stderr   # lent to Kipoi only
    r = venv("kipoi-tanger", "demo", "--out", "demo", "--n_shuffles", "2")
    for f in ("predictions.h5", "attributions.h5", "marginalize_GATAAG.h5", "report.html"):
        assert (venv.work / "demo" / f).is_file(), f
