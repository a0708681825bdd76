"""The start-up hook's pkg_resources stand-in: what Kipoi 0.8.6 calls, lent only to Kipoi's imports and
only where no real pkg_resources exists (setuptools >= 81). The wheel test runs the real `kipoi` CLI in
a venv without setuptools (tests/test_wheel.py)."""
import importlib.metadata
import importlib.util
import os

import pytest

from kipoi_tanger import _kipoi_hook
from kipoi_tanger import _pkg_resources as shim


def test_the_calls_kipoi_makes():
    import kipoi
    # kipoi/__main__.py asks for the file next to a plain module (kipoi.config stands in for it here:
    # importing kipoi.__main__ would load the stand-in into this process where setuptools lacks one)
    conf = shim.resource_filename("kipoi.config", "logging.conf")
    assert conf == os.path.join(os.path.dirname(kipoi.__file__), "logging.conf") and os.path.isfile(conf)
    assert shim.resource_filename("kipoi", "logging.conf") == conf                     # a package
    assert shim.get_distribution("kipoi").version == importlib.metadata.version("kipoi")    # kipoi_conda.utils
    assert shim.get_distribution("kipoi-utils>=0.7").project_name.lower().replace("_", "-") == "kipoi-utils"
    with pytest.raises(shim.DistributionNotFound):
        shim.get_distribution("surely-not-installed-kipoi-tanger-x")
    assert shim.parse_version("0.8.6") > shim.parse_version("0.8.5") >= shim.parse_version("0.8.5")
    with pytest.raises(AttributeError, match="pkg_resources.iter_entry_points: kipoi_tanger lends Kipoi a minimal"):
        shim.iter_entry_points
    shim.fixup_namespace_packages("/somewhere")      # what pytest's monkeypatch.syspath_prepend calls


def _import_from(module_name, finder):
    """What `import pkg_resources` in a module called module_name asks the finder."""
    g = {"__name__": module_name, "finder": finder}
    exec("spec = finder.find_spec('pkg_resources')", g)
    return g["spec"]


def test_lent_only_to_kipoi_and_only_when_missing(monkeypatch):
    finder = _kipoi_hook.KipoiPatchFinder()
    monkeypatch.setattr(finder, "_find_elsewhere", lambda *a: None)       # as under setuptools >= 81
    for other in ("numpy", "kipoi_tanger.cli", "__main__"):
        assert _import_from(other, finder) is None
    assert "pkg_resources" in finder.pending                                # still waiting for Kipoi
    spec = _import_from("kipoi_conda.utils", finder)
    assert spec.name == "pkg_resources" and spec.origin == shim.__file__
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.KIPOI_TANGER_SHIM and module.__name__ == "pkg_resources"
    assert "pkg_resources" not in finder.pending

    real = _kipoi_hook.KipoiPatchFinder()                                  # setuptools < 81: the real one
    sentinel = object()
    monkeypatch.setattr(real, "_find_elsewhere", lambda *a: sentinel)
    assert _import_from("numpy", real) is sentinel and "pkg_resources" not in real.pending
