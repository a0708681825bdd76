"""kipoi_tanger.tools.zoo: `kipoi-tanger init` (model_templates/) and `kipoi-tanger test`.

A freshly generated model passes the real `kipoi test` (subprocess, throwaway
HOME from conftest, run from the directory its expect path is relative to) and
`kipoi-tanger test` untouched; `kipoi-tanger test` passes on the zoo's
motif_cnn and flatten_dense, and fails, with a clear line, on broken tanger
sections, predictions that no longer match the expect file, and a model whose
DeepLIFT attributions do not add up.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from kipoi_tanger.tools import zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
KIPOI = os.path.join(BIN, "kipoi")
KT = os.path.join(BIN, "kipoi-tanger")


def _tree_digest(d):
    h = hashlib.sha256()
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            h.update(os.path.relpath(p, d).encode())
            with open(p, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def _statuses(report):
    return {c.name: c.status for c in report.checks}


def _detail(report, name):
    return next(c.detail for c in report.checks if c.name == name)


def _edit_yaml(path, fn):
    with open(path) as fh:
        d = yaml.safe_load(fh)
    fn(d)
    with open(path, "w") as fh:
        yaml.safe_dump(d, fh, sort_keys=False)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def generated(zoo_dir):
    """`init my_model -o ZOO` run from the repository (ZOO is outside the working dir)."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        res = zoo.init("my_model", output_dir=zoo_dir, dataloader="shared")
    finally:
        os.chdir(cwd)
    return res


def _sibling(generated, name):
    """A copy next to the generated model (same depth: the shared-loader path stays valid)."""
    dst = os.path.join(os.path.dirname(generated.model_dir), name)
    shutil.copytree(generated.model_dir, dst)
    return dst


# ---------------------------------------------------------------------------
# init


def test_init_writes_a_complete_model_dir(generated, zoo_dir):
    d = generated.model_dir
    assert d == os.path.join(zoo_dir, "my_model")
    # outside the working directory: the expect path is relative to -o DIR
    assert generated.test_root == zoo_dir
    assert (generated.model_path, generated.expect_path) == ("my_model", "my_model/test.expect.h5")
    for f in ("model.yaml", "model.py", "dataloader.yaml", "weights.pth", "test.expect.h5", "README.md",
              "make_weights.py", "make_expect.py", "make_example_files.py", "example_files/genome.fa",
              "example_files/genome.fa.fai", "example_files/intervals.bed"):
        assert f in generated.files and os.path.isfile(os.path.join(d, f)), f
    assert not [f for f in os.listdir(d) if f.endswith(".tmpl") or f == "__pycache__"]
    assert not [f for f in os.listdir(zoo_dir) if f.startswith(".")]      # no staging dir left
    with open(os.path.join(d, "model.yaml")) as fh:
        text = fh.read()
    assert "{{" not in text
    m = yaml.safe_load(text)
    assert m["args"]["module_class"] == "MyModel"
    assert m["test"]["expect"] == "my_model/test.expect.h5"
    assert m["schema"]["targets"]["column_labels"] == ["task0", "task1"]
    assert m["postprocessing"]["tanger"]["ops"] == ["predict", "deeplift-shap", "marginalize"]
    with open(os.path.join(d, "dataloader.yaml")) as fh:
        dl = yaml.safe_load(fh)
    target = os.path.normpath(os.path.join(d, dl["defined_as"].split("::")[0]))
    assert target == os.path.join(REPO, "dataloaders", "interval_onehot", "dataloader.py")
    # seeded: the weights are make_weights' initialisation with seed 0
    state = torch.load(os.path.join(d, "weights.pth"), weights_only=True)
    assert state["dense.weight"].shape == (2, 16 * (200 // 4))


def test_generated_model_passes_kipoi_test(generated):
    r = subprocess.run([KIPOI, "test", generated.model_path, "--source", "dir"], cwd=generated.test_root,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "All predictions match" in r.stderr + r.stdout


def test_generated_model_passes_kipoi_tanger_test_untouched(generated):
    before = _tree_digest(generated.model_dir)
    r = subprocess.run([KT, "test", generated.model_path, "--n_shuffles", "2"], cwd=generated.test_root,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "kipoi-tanger test my_model"
    names = ("kipoi test", "tanger section", "predict", "deeplift-shap", "marginalize", "product", "ablate",
             "space")
    rows = {n: next(l for l in lines if l.startswith(f"  {n} ")) for n in names}
    status = {n: rows[n].split(n, 1)[1].split()[0] for n in names}
    assert status == {"kipoi test": "PASS", "tanger section": "PASS", "predict": "PASS",
                      "deeplift-shap": "PASS", "marginalize": "PASS", "product": "SKIP",
                      "ablate": "SKIP", "space": "SKIP"}
    assert "equal to test.expect.h5 to 5 decimals" in rows["predict"]
    delta = float(re.search(r"convergence delta\| (\S+)", rows["deeplift-shap"]).group(1))
    assert delta < 1e-3
    # skipped: product, ablate, space, ism, variant-effect
    assert r.stdout.splitlines()[-1] == "PASSED: 5 passed, 0 failed, 5 skipped"
    assert _tree_digest(generated.model_dir) == before     # the checks write nothing into the model dir


def test_init_refuses_an_existing_dir(generated, zoo_dir):
    before = _tree_digest(generated.model_dir)
    r = subprocess.run([KT, "init", "my_model", "-o", zoo_dir], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kipoi-tanger: error: ")
    assert "exists" in lines[0] and "--overwrite" in lines[0]
    assert _tree_digest(generated.model_dir) == before


def test_init_overwrite_replaces_template_files_keeps_others(tmp_path):
    params = {"seq_len": "64", "tasks": "a,b,c", "n_filters": 4}
    res = zoo.init("m", output_dir=str(tmp_path), params=params, seed=3)
    d = res.model_dir
    with open(os.path.join(d, "model.yaml")) as fh:
        m = yaml.safe_load(fh)
    assert m["schema"]["inputs"]["shape"] == "(4, 64)"
    assert m["schema"]["targets"]["shape"] == "(3,)"
    assert m["schema"]["targets"]["column_labels"] == ["a", "b", "c"]
    assert m["args"]["module_kwargs"] == {"seq_len": 64, "n_tasks": 3, "n_filters": 4, "kernel_size": 11}
    w1 = torch.load(os.path.join(d, "weights.pth"), weights_only=True)
    assert w1["dense.weight"].shape == (3, 4 * 16)
    with open(os.path.join(d, "notes.txt"), "w") as fh:
        fh.write("mine")
    with open(os.path.join(d, "model.py"), "a") as fh:
        fh.write("\n# edited\n")
    zoo.init("m", output_dir=str(tmp_path), params=params, seed=3, overwrite=True)
    assert open(os.path.join(d, "notes.txt")).read() == "mine"
    assert "# edited" not in open(os.path.join(d, "model.py")).read()
    w2 = torch.load(os.path.join(d, "weights.pth"), weights_only=True)
    assert w1.keys() == w2.keys() and all(torch.equal(w1[k], w2[k]) for k in w1)
    zoo.init("m", output_dir=str(tmp_path), params=params, seed=4, overwrite=True)
    w3 = torch.load(os.path.join(d, "weights.pth"), weights_only=True)
    assert not torch.equal(w1["dense.weight"], w3["dense.weight"])


def test_init_relative_to_cwd_and_copied_dataloader_is_self_contained(tmp_path, monkeypatch):
    import kipoi
    from kipoi.readers import HDF5Reader
    monkeypatch.chdir(tmp_path)
    res = zoo.init("m", output_dir="zoo", dataloader="copy")
    # inside the working directory: expect path relative to it (the zoo convention)
    assert res.test_root == str(tmp_path)
    assert (res.model_path, res.expect_path) == ("zoo/m", "zoo/m/test.expect.h5")
    with open(os.path.join(res.model_dir, "dataloader.yaml")) as fh:
        assert yaml.safe_load(fh)["defined_as"] == "interval_onehot.py::IntervalOneHot"
    # move it far from the checkout: it still loads and reproduces its expect file
    moved = tmp_path / "elsewhere" / "deeper" / "m"
    shutil.move(res.model_dir, moved)
    km = kipoi.get_model(str(moved), source="dir")
    preds = km.pipeline.predict_example(batch_size=3)
    want = HDF5Reader.load(str(moved / "test.expect.h5"))
    np.testing.assert_allclose(preds, want["preds"], rtol=1e-5, atol=1e-6)
    assert want["inputs"].shape == (8, 4, 200)


def test_tokens_template_passes_kipoi_tanger_test(tmp_path):
    import kipoi
    from kipoi.readers import HDF5Reader
    res = zoo.init("tok", template="pytorch_tokens", output_dir=str(tmp_path), params={"seq_len": 40})
    with open(os.path.join(res.model_dir, "model.yaml")) as fh:
        assert yaml.safe_load(fh)["postprocessing"]["tanger"]["layout"] == "(L)"
    # what `kipoi test` does (its subprocess run is covered on the default template above)
    km = kipoi.get_model(res.model_dir, source="dir")
    want = HDF5Reader.load(os.path.join(res.model_dir, "test.expect.h5"))
    assert want["inputs"].shape == (8, 40) and want["preds"].shape == (8, 40, 2)
    np.testing.assert_allclose(km.predict_on_batch(want["inputs"]), want["preds"], rtol=1e-5, atol=1e-6)
    rep = zoo.test(res.model_dir, kipoi_test=False)
    assert rep.passed, rep.format()
    assert _statuses(rep) == {"kipoi test": "SKIP", "tanger section": "PASS", "predict": "PASS",
                              "deeplift-shap": "SKIP", "marginalize": "PASS", "product": "SKIP",
                              "ablate": "SKIP", "space": "SKIP", "ism": "SKIP", "variant-effect": "SKIP"}
    assert "layout (L)" in _detail(rep, "tanger section")


def test_init_bad_input(tmp_path):
    with pytest.raises(zoo.ZooError, match="NAME: expected a letter"):
        zoo.init("1model", output_dir=str(tmp_path))
    with pytest.raises(zoo.ZooError, match=r"unknown template 'pytorch_onehto'.*did you mean 'pytorch_onehot'"):
        zoo.init("m", template="pytorch_onehto", output_dir=str(tmp_path))
    with pytest.raises(zoo.ZooError, match=r"seq_len: expected an integer >= 8, got 4"):
        zoo.init("m", output_dir=str(tmp_path), params={"seq_len": "4"})
    with pytest.raises(zoo.ZooError, match=r"seq_len: expected an integer, got 'abc'"):
        zoo.init("m", output_dir=str(tmp_path), params={"seq_len": "abc"})
    with pytest.raises(zoo.ZooError, match=r"no variable 'seqlen'.*did you mean 'seq_len'"):
        zoo.init("m", output_dir=str(tmp_path), params={"seqlen": 5})
    with pytest.raises(zoo.ZooError, match=r"tasks: 'a b' is not a valid label"):
        zoo.init("m", output_dir=str(tmp_path), params={"tasks": "a b,c"})
    with pytest.raises(zoo.ZooError, match="--dataloader: expected one of auto, shared, copy"):
        zoo.init("m", output_dir=str(tmp_path), dataloader="vendor")
    assert os.listdir(tmp_path) == []


def test_render_placeholders():
    assert zoo.render("a {{ x }} b {{y}} {{ l }}", {"x": 1, "y": "z", "l": ["p", "q"]}) == 'a 1 b z ["p", "q"]'
    with pytest.raises(zoo.ZooError, match=r"f.tmpl: unknown placeholder \{\{ nope \}\}"):
        zoo.render("{{ nope }}", {"x": 1}, where="f.tmpl")


def test_custom_templates_dir_and_failed_init_leaves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "templates"
    shutil.copytree(os.path.join(REPO, "model_templates", "pytorch_onehot"), root / "broken")
    shutil.copytree(os.path.join(REPO, "model_templates", "_common"), root / "_common")
    with open(root / "broken" / "model.py.tmpl", "a") as fh:
        fh.write("# {{ no_such_variable }}\n")
    monkeypatch.setenv(zoo.TEMPLATES_ENV, str(root))
    assert list(zoo.list_templates()) == ["broken"]
    out = tmp_path / "out"
    with pytest.raises(zoo.ZooError, match=r"model.py.tmpl: unknown placeholder \{\{ no_such_variable \}\}"):
        zoo.init("m", template="broken", output_dir=str(out))
    assert os.listdir(out) == []
    monkeypatch.setenv(zoo.TEMPLATES_ENV, str(tmp_path / "missing"))
    with pytest.raises(zoo.ZooError, match="KIPOI_TANGER_TEMPLATES: .* is not a directory"):
        zoo.list_templates()


# ---------------------------------------------------------------------------
# test on the zoo


def test_kipoi_tanger_test_passes_on_motif_cnn(tmp_path, monkeypatch):
    # run from elsewhere: the zoo's expect path (relative to the repository root) is
    # found from the model dir's parents and handed to kipoi test, and the detail says so
    monkeypatch.chdir(tmp_path)
    rep = zoo.test(os.path.join(REPO, "example_models", "motif_cnn"), n_shuffles=2)
    assert rep.passed, rep.format()
    assert _statuses(rep) == {"kipoi test": "PASS", "tanger section": "PASS", "predict": "PASS",
                              "deeplift-shap": "PASS", "marginalize": "PASS", "product": "SKIP",
                              "ablate": "PASS", "space": "PASS", "ism": "PASS", "variant-effect": "SKIP"}
    assert f"resolved to {REPO}/example_models/motif_cnn/test.expect.h5" in _detail(rep, "kipoi test")
    assert "output 'counts'" in _detail(rep, "tanger section")
    assert "32 regions" in _detail(rep, "predict")
    assert float(re.search(r"delta\| (\S+)", _detail(rep, "deeplift-shap")).group(1)) < 1e-3
    # the planted-motif model reacts to an inserted GATA motif
    effect = float(_detail(rep, "marginalize").rsplit(" ", 1)[1])
    assert effect > 0.1


def test_resolve_expect_from_any_directory(tmp_path, monkeypatch):
    from kipoi_tanger.tools.zoo.checks import resolve_expect
    model = os.path.join(REPO, "example_models", "motif_cnn")
    want = os.path.join(model, "test.expect.h5")
    monkeypatch.chdir(tmp_path)
    assert resolve_expect(model, "example_models/motif_cnn/test.expect.h5") == want     # a parent of the model
    assert resolve_expect(model, "test.expect.h5") == want                               # the model dir itself
    assert resolve_expect(model, want) == want
    (tmp_path / "test.expect.h5").write_bytes(b"")
    assert resolve_expect(model, "test.expect.h5") == str(tmp_path / "test.expect.h5")  # the cwd first, as Kipoi
    assert resolve_expect(model, "nope.h5") is None
    assert resolve_expect(model, {"url": "x", "md5": "y"}) is None


def test_product_check_on_flatten_dense(monkeypatch):
    monkeypatch.chdir(REPO)
    rep = zoo.test("example_models/flatten_dense", kipoi_test=False)
    assert rep.passed, rep.format()
    assert _statuses(rep)["product"] == "PASS"
    assert "alpha, beta x 2 rows each: shape (5, 2, 2, 3)" in _detail(rep, "product")


def test_every_op_check_on_basset_like_without_a_section(monkeypatch):
    """basset_like declares no ops, so every registered op is checked: ablate and space run and their
    y_before equals predict; variant-effect needs a VCF (SKIP)."""
    monkeypatch.chdir(REPO)
    rep = zoo.test("example_models/basset_like", kipoi_test=False, n_shuffles=2)
    st = _statuses(rep)
    assert rep.passed, rep.format()
    assert st["ablate"] == "PASS" and "y_before equals predict" in _detail(rep, "ablate")
    assert st["space"] == "PASS" and "y_before equals predict" in _detail(rep, "space")
    assert st["variant-effect"] == "SKIP"


# ---------------------------------------------------------------------------
# failures


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update(ops=["predict", "deeplift-shp"]),
     "ops: unknown op 'deeplift-shp' (did you mean 'deeplift-shap'?)"),
    (lambda t: t.update(layout="(L, A)"),
     "layout (L, A) puts the alphabet on an axis of size 200 in (4, 200), but the alphabet has 4 letters"),
    (lambda t: t.update(output="logits"), "output 'logits' is not in the schema"),
])
def test_broken_tanger_section_fails(generated, edit, message):
    d = _sibling(generated, "broken_" + hashlib.sha1(message.encode()).hexdigest()[:8])
    _edit_yaml(os.path.join(d, "model.yaml"), lambda m: edit(m["postprocessing"]["tanger"]))
    rep = zoo.test(d, kipoi_test=False)
    assert not rep.passed
    assert _statuses(rep) == {"kipoi test": "SKIP", "tanger section": "FAIL", "predict": "SKIP",
                              "deeplift-shap": "SKIP", "marginalize": "SKIP", "product": "SKIP",
                              "ablate": "SKIP", "space": "SKIP", "ism": "SKIP", "variant-effect": "SKIP"}
    assert message in _detail(rep, "tanger section")
    assert "postprocessing: tanger" in _detail(rep, "tanger section")


def test_broken_section_cli_exit_1(generated):
    d = _sibling(generated, "broken_cli")
    _edit_yaml(os.path.join(d, "model.yaml"), lambda m: m["postprocessing"]["tanger"].update(ops=["explain"]))
    r = subprocess.run([KT, "test", d, "--skip_kipoi_test"], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    row = next(l for l in r.stdout.splitlines() if l.strip().startswith("tanger section"))
    assert "FAIL" in row and "unknown op 'explain'" in row
    assert r.stdout.splitlines()[-1].startswith("FAILED: 0 passed, 1 failed")


def test_stale_expect_file_fails_kipoi_test_and_predict(generated):
    d = _sibling(generated, "reseeded")
    zoo.run_script(d, "make_weights.py", ["--seed", "1", "--model_dir", d])
    rep = zoo.test(d)
    assert not rep.passed
    st = _statuses(rep)
    assert (st["kipoi test"], st["tanger section"], st["predict"]) == ("FAIL", "PASS", "FAIL")
    assert "Model predictions don't match" in _detail(rep, "kipoi test")
    assert "kipoi-tanger predict differs from test.expect.h5" in _detail(rep, "predict")


def test_functional_relu_fails_the_deeplift_check_by_name(generated):
    d = _sibling(generated, "functional_relu")
    path = os.path.join(d, "model.py")
    src = open(path).read()
    assert "self.relu(self.conv(X))" in src
    with open(path, "w") as fh:
        fh.write(src.replace("self.relu(self.conv(X))", "torch.relu(self.conv(X))"))
    rep = zoo.test(d, kipoi_test=False, n_shuffles=2)
    st = _statuses(rep)
    assert (st["predict"], st["deeplift-shap"], st["marginalize"]) == ("PASS", "FAIL", "PASS")
    detail = _detail(rep, "deeplift-shap")
    # deep_lift_shap refuses the unruled nonlinearity by name before any attribution is computed
    assert "computes torch.relu, which is nonlinear" in detail and "model.MyModel" in detail


def test_test_bad_input(tmp_path, generated):
    with pytest.raises(zoo.ZooError, match="no such directory"):
        zoo.test(str(tmp_path / "nope"))
    with pytest.raises(zoo.ZooError, match="has no model.yaml"):
        zoo.test(str(tmp_path))
    with pytest.raises(zoo.ZooError, match="--n_shuffles: expected a positive integer, got 0"):
        zoo.test(generated.model_dir, n_shuffles=0)
    with pytest.raises(ValueError, match="batch_size: expected a positive integer"):
        zoo.test(generated.model_dir, batch_size=0)
    with pytest.raises(ValueError, match="--device"):
        zoo.test(generated.model_dir, device="gpu0")
    r = subprocess.run([KT, "test", str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_templates_not_found_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(zoo.TEMPLATES_ENV, raising=False)
    monkeypatch.setattr(zoo.data, "package_dir", lambda: str(tmp_path / "site" / "kipoi_tanger"))
    with pytest.raises(zoo.ZooError, match=r"model templates not found: model_templates/ not found \(looked in "
                                           r".*site/kipoi_tanger/_data/model_templates and .*reinstall.*"
                                           r"\$KIPOI_TANGER_TEMPLATES"):
        zoo.init("m", output_dir=str(tmp_path / "out"))
    with pytest.raises(zoo.ZooError, match="shared dataloader component 'interval_onehot' not found"):
        zoo.shared_dataloader("interval_onehot")
    assert not (tmp_path / "out").exists()


def test_shipped_dirs_come_from_package_data_before_the_checkout(tmp_path, monkeypatch):
    """A wheel's kipoi_tanger/_data/ wins; without it (editable install) the checkout's dirs are used."""
    assert zoo.data_dirs() == {d: os.path.join(REPO, d) for d in zoo.DATA_DIRS}
    pkg = tmp_path / "site" / "kipoi_tanger"
    for d in zoo.DATA_DIRS:
        (pkg / "_data" / d).mkdir(parents=True)
    monkeypatch.setattr(zoo.data, "package_dir", lambda: str(pkg))
    assert zoo.data_dir("workflows") == str(pkg / "_data" / "workflows")
    assert zoo.kipoi_source_config("z") == f"model_sources: {{z: {{type: local, local_path: {pkg}/_data/example_models}}}}"
    with pytest.raises(zoo.ZooError, match="unknown shipped directory 'nope'"):
        zoo.data_dir("nope")


def test_init_auto_copies_the_loader_outside_the_data_tree(tmp_path, monkeypatch):
    """dataloader='auto' (the default): a model dir outside the tree holding dataloaders/ is self-contained;
    inside it (the zoo convention) the shipped component is loaded by relative path."""
    monkeypatch.chdir(tmp_path)
    res = zoo.init("m", output_dir="out", seed=1)
    assert res.dataloader == "copy"
    with open(os.path.join(res.model_dir, "dataloader.yaml")) as fh:
        assert yaml.safe_load(fh)["defined_as"] == "interval_onehot.py::IntervalOneHot"
    assert os.path.isfile(os.path.join(res.model_dir, "_shared.py"))
    assert "note:" not in zoo.next_steps(res)
    inside = tmp_path / "data"
    shutil.copytree(os.path.join(REPO, "dataloaders"), inside / "dataloaders")
    monkeypatch.setattr(zoo.templates, "data_dir",
                        lambda name: str(inside / name) if name == "dataloaders" else os.path.join(REPO, name))
    res = zoo.init("m2", output_dir=str(inside / "example_models"), seed=1)
    assert res.dataloader == "shared"
    with open(os.path.join(res.model_dir, "dataloader.yaml")) as fh:
        assert yaml.safe_load(fh)["defined_as"] == "../../dataloaders/interval_onehot/dataloader.py::IntervalOneHot"


def test_zoo_command_prints_the_shipped_dirs(capsys):
    from kipoi_tanger import cli
    assert cli.main(["zoo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["example_models", os.path.join(REPO, "example_models")]
    assert out[-1] == f"model_sources: {{tanger_zoo: {{type: local, local_path: {REPO}/example_models}}}}"
    assert cli.main(["zoo", "--path", "dataloaders"]) == 0
    assert capsys.readouterr().out == os.path.join(REPO, "dataloaders") + "\n"


def test_add_source_keeps_the_other_sources(tmp_path, monkeypatch, capsys):
    from kipoi_tanger import cli
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / ".kipoi" / "config.yaml"
    assert cli.main(["zoo", "--add_source"]) == 0                      # created when missing
    assert yaml.safe_load(config.read_text()) == {
        "model_sources": {"tanger_zoo": {"type": "local", "local_path": os.path.join(REPO, "example_models")}}}
    config.write_text("model_sources:\n  kipoi: {type: git-lfs, remote_url: u, local_path: p}\n"
                      "  tanger_zoo: {type: local, local_path: /old}\nenv_db_path: /x/envs.json\n")
    assert cli.main(["zoo", "--add_source"]) == 0 and cli.main(["zoo", "--add_source", "z2"]) == 0
    d = yaml.safe_load(config.read_text())
    assert list(d["model_sources"]) == ["kipoi", "tanger_zoo", "z2"] and d["env_db_path"] == "/x/envs.json"
    assert d["model_sources"]["tanger_zoo"]["local_path"] == os.path.join(REPO, "example_models")
    assert d["model_sources"]["kipoi"] == {"type": "git-lfs", "remote_url": "u", "local_path": "p"}
    capsys.readouterr()
    assert cli.main(["zoo", "--add_source", "dir"]) == 2
    assert "expected a source name other than 'dir'" in capsys.readouterr().err
    config.write_text("model_sources: [\n")
    assert cli.main(["zoo", "--add_source"]) == 2
    assert "cannot read the Kipoi config" in capsys.readouterr().err
