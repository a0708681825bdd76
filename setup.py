"""Build hooks: ship the top-level data dirs inside the package, and install the start-up hook.

Everything else lives in setup.cfg.

Package data. ``example_models/``, ``model_templates/``, ``dataloaders/`` (with
``_shared.py``) and ``workflows/`` stay at the top of the source tree, where
the zoo's relative paths expect them. ``build_py`` copies them into
``kipoi_tanger/_data/`` of the build, so a wheel (``pip install .``) carries
them and ``kipoi-tanger init``/``test``/``demo``/``zoo`` work without a
checkout (``kipoi_tanger/tools/zoo/data.py`` looks there first). An editable
install (``pip install -e .``) copies nothing: the package finds them next to
itself in the checkout. Caches and build litter (``__pycache__``, Kipoi's
``downloaded/``, hidden files, ``*.partial``) are left out.

Start-up hook. ``kipoi_tanger-kipoi.pth`` at the root of site-packages makes
the real ``kipoi`` executable see the plugin (``kipoi tanger ...``, ``kipoi
list_plugins``), fixes ``kipoi predict -o x.h5`` on numpy 2, hands ``type:
keras`` to ``kipoi_tanger.KerasModel`` and lends Kipoi a ``pkg_resources``
where setuptools no longer has one; see kipoi_tanger/_kipoi_hook.py for why an
import hook is needed. Kipoi has no plugin discovery, so there is no
declarative way to do this. The file must land at the root of the wheel
(= site-packages):

* ``pip install .``: ``build_py`` writes it to the root of ``build_lib``, which
  becomes the wheel's root.
* ``pip install -e .`` (PEP 660): setuptools' ``editable_wheel`` does not ship
  ``build_lib``; it installs into an unpacked wheel directory that it points the
  ``install`` command's ``install_lib`` at, so we write the file there.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PTH_NAME = "kipoi_tanger-kipoi.pth"
# One line: .pth lines that start with "import" are executed at start-up. A
# missing or broken package must never break the interpreter, hence the try
# around the import and the call.
PTH_LINE = ("import sys; exec('try:\\n from kipoi_tanger._kipoi_hook import install\\n install()\\n"
            "except Exception:\\n pass')\n")
DATA_DIRS = ("example_models", "model_templates", "dataloaders", "workflows")
DATA_TARGET = os.path.join("kipoi_tanger", "_data")
_SKIP_DIRS = {"__pycache__", "downloaded"}   # caches: Python's, Kipoi's example downloads
_SKIP_SUFFIXES = (".pyc", ".pyo", ".partial", ".tmp")


def data_files(root=HERE):
    """``[(source path, path relative to root)]`` of the files shipped from the data dirs."""
    out = []
    for name in DATA_DIRS:
        top = os.path.join(root, name)
        for d, dirs, files in os.walk(top):
            dirs[:] = sorted(x for x in dirs if x not in _SKIP_DIRS and not x.startswith(".")
                             and not x.endswith(_SKIP_SUFFIXES))
            for f in sorted(files):
                if f.startswith(".") or f.endswith(_SKIP_SUFFIXES):
                    continue
                src = os.path.join(d, f)
                out.append((src, os.path.relpath(src, root)))
    return out


class build_py_with_data(build_py):
    """build_py that also copies the data dirs into the package and emits the start-up hook .pth file."""

    def _pth_targets(self):
        targets = [os.path.join(self.build_lib, PTH_NAME)]
        if getattr(self, "editable_mode", False):
            install = self.distribution.get_command_obj("install")
            if getattr(install, "install_lib", None):
                targets.append(os.path.join(install.install_lib, PTH_NAME))
        return targets

    def _data_targets(self):
        if getattr(self, "editable_mode", False):
            return []      # an editable install finds the dirs in the checkout
        return [(src, os.path.join(self.build_lib, DATA_TARGET, rel)) for src, rel in data_files()]

    def run(self):
        super().run()
        for target in self._pth_targets():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as fh:
                fh.write(PTH_LINE)
        stale = os.path.join(self.build_lib, DATA_TARGET)
        if os.path.isdir(stale):
            shutil.rmtree(stale)       # a file removed from the tree must not linger in a reused build dir
        for src, dst in self._data_targets():
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)

    def get_outputs(self, include_bytecode=1):
        return (list(super().get_outputs(include_bytecode)) + [os.path.join(self.build_lib, PTH_NAME)]
                + [dst for _, dst in self._data_targets()])


setup(cmdclass={"build_py": build_py_with_data})
