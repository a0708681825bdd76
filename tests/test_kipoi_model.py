"""kipoi_tanger.TorchModel, the numpy-2 shim for Kipoi's writers and the start-up import hook."""
import importlib
import os
import sys

import numpy as np
import pytest
import torch

from kipoi_model_dirs import load_inputs, load_module, make_model_dir


@pytest.fixture(scope="module")
def tm_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("tm"), "km_tm", arch="ProfileNet", layout="AL",
                          defined_as="kipoi_tanger.TorchModel",
                          targets=[{"name": "profile", "shape": "(1, 50)", "doc": "p"},
                                   {"name": "counts", "shape": "(1,)", "doc": "c"}])


def test_torchmodel_via_kipoi_get_model(tm_dir):
    import kipoi
    import kipoi_tanger
    m = kipoi.get_model(tm_dir, source="dir")
    assert isinstance(m, kipoi_tanger.TorchModel) and m.device == torch.device("cpu")
    x = load_inputs(tm_dir)["inputs"]
    prof, counts = m.predict_on_batch(x)
    net = load_module(tm_dir, "ProfileNet", seq_len=50)
    with torch.no_grad():
        p2, c2 = net(torch.as_tensor(x))
    assert isinstance(prof, np.ndarray) and np.array_equal(prof, p2.numpy()) and np.array_equal(counts, c2.numpy())
    # the pipeline (kipoi's own predict loop) works on it too
    preds = m.pipeline.predict_example(batch_size=16)
    # batches of 16 against the whole batch: equal to float precision (CPU kernels round by batch shape)
    np.testing.assert_allclose(preds[1], c2.numpy(), rtol=1e-5, atol=1e-5 * float(np.abs(c2.numpy()).max()))


def test_torchmodel_predicts_without_autograd(tm_dir):
    from kipoi_tanger.adapter.kipoi_model import TorchModel
    cwd = os.getcwd()
    os.chdir(tm_dir)
    try:
        m = TorchModel("weights.pth", module_class="ProfileNet", module_file="arch_km_tm.py",
                       module_kwargs="{seq_len: 50}", device="cpu")
    finally:
        os.chdir(cwd)
    seen = []
    m.model.register_forward_hook(lambda mod, i, o: seen.append(torch.is_grad_enabled()))
    m.predict_on_batch(load_inputs(tm_dir)["inputs"][:4])
    assert seen == [False]
    # dict and list inputs map to keyword / positional arguments like Kipoi's PyTorchModel
    x = load_inputs(tm_dir)["inputs"][:3]
    assert np.array_equal(m.predict_on_batch({"x": x})[1], m.predict_on_batch([x])[1])


def test_torchmodel_weights_only_and_errors(tm_dir, tmp_path, monkeypatch):
    from kipoi_tanger.adapter.kipoi_model import TorchModel
    net = load_module(tm_dir, "ProfileNet", seq_len=50)
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pth")   # a pickled module, not a state_dict
    monkeypatch.chdir(tm_dir)
    with pytest.raises(Exception, match="[Ww]eights only load failed|weights_only"):
        TorchModel(str(tmp_path / "whole.pth"), module_class="ProfileNet", module_file="arch_km_tm.py",
                   module_kwargs={"seq_len": 50}, device="cpu")
    # {"state_dict": ...} checkpoints load too
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "ckpt.pth")
    m = TorchModel(str(tmp_path / "ckpt.pth"), module_class="ProfileNet", module_file="arch_km_tm.py",
                   module_kwargs={"seq_len": 50}, device="cpu")
    assert torch.equal(m.model.count.weight, net.count.weight)
    with pytest.raises(ValueError, match="exactly one of module_class and module_obj"):
        TorchModel("weights.pth", module_file="arch_km_tm.py")
    with pytest.raises(ValueError, match="defines no 'Nope'"):
        TorchModel("weights.pth", module_class="Nope", module_file="arch_km_tm.py")
    monkeypatch.setenv("KIPOI_TANGER_DEVICE", "meta")
    m = TorchModel("weights.pth", module_class="ProfileNet", module_file="arch_km_tm.py",
                   module_kwargs={"seq_len": 50}, device="cpu")
    assert m.device == torch.device("meta")


def test_numpy2_shim_for_kipoi_writer(tmp_path):
    """kipoi's HDF5BatchWriter uses np.string_; the shim scopes the alias to kipoi.writers."""
    import kipoi.writers
    from kipoi.readers import HDF5Reader
    from kipoi_tanger.adapter.compat import _NumpyWithAliases, missing_aliases, patch_kipoi_writers
    assert patch_kipoi_writers()
    if missing_aliases(np):
        assert isinstance(kipoi.writers.np, _NumpyWithAliases)
        assert kipoi.writers.np.string_ is np.bytes_ and kipoi.writers.np.unicode_ is np.str_
        assert "string_" not in np.__dict__                 # the real numpy is untouched
    assert kipoi.writers.np.float32 is np.float32
    batch = {"preds": np.arange(6, dtype=np.float32).reshape(3, 2),
             "metadata": {"id": np.array(["a", "b", "c"])}}
    kipoi.writers.HDF5BatchWriter.dump(str(tmp_path / "x.h5"), batch)
    got = HDF5Reader.load(str(tmp_path / "x.h5"))
    assert np.array_equal(got["preds"], batch["preds"]) and list(got["metadata"]["id"]) == ["a", "b", "c"]


def test_import_hook_patches_on_import(tmp_path, monkeypatch):
    """The meta-path finder patches a module when (and only when) it is imported."""
    from kipoi_tanger._kipoi_hook import KipoiPatchFinder, _patch_plugin
    pkg = tmp_path / "fakekipoi"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text("PLUGINS = [{'plugin': 'kipoi_interpret'}]\n"
                                   "def load_plugin(p):\n    import importlib\n    return importlib.import_module(p)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = KipoiPatchFinder()
    finder.pending = {"fakekipoi.plugin": _patch_plugin}
    sys.meta_path.insert(0, finder)
    try:
        mod = importlib.import_module("fakekipoi.plugin")
        assert [p["plugin"] for p in mod.PLUGINS] == ["kipoi_interpret", "kipoi_tanger"]
        assert mod.load_plugin("kipoi_tanger").cli_main.__module__ == "kipoi_tanger.cli"
        assert mod.load_plugin("json") is importlib.import_module("json")
        assert finder not in sys.meta_path                   # removed itself once done
        assert mod.__spec__.loader.get_source("fakekipoi.plugin").startswith("PLUGINS")
    finally:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        sys.modules.pop("fakekipoi.plugin", None)
        sys.modules.pop("fakekipoi", None)


def test_pth_file_is_installed():
    """The editable/regular install put the start-up hook next to the packages."""
    import site
    import sysconfig
    dirs = set(site.getsitepackages()) | {sysconfig.get_paths()["purelib"]}
    found = [os.path.join(d, "kipoi_tanger-kipoi.pth") for d in dirs
             if os.path.exists(os.path.join(d, "kipoi_tanger-kipoi.pth"))]
    assert found, "run `pip install -e .` so setup.py installs kipoi_tanger-kipoi.pth"
    line = open(found[0]).read()
    assert line.startswith("import ") and "kipoi_tanger._kipoi_hook" in line
    import kipoi.plugin
    assert any(p["plugin"] == "kipoi_tanger" for p in kipoi.plugin.PLUGINS)
