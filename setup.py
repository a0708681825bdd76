"""Build hook: install ``kipoi_tanger-kipoi.pth`` into site-packages.

Everything else lives in setup.cfg. The .pth file makes the real ``kipoi``
executable see the plugin (``kipoi tanger ...``, ``kipoi list_plugins``) and
fixes ``kipoi predict -o x.h5`` on numpy 2; see kipoi_tanger/_kipoi_hook.py for
why an import hook is needed. Kipoi has no plugin discovery, so there is no
declarative way to do this.

The file must land at the root of the wheel (= site-packages):
* ``pip install .``: ``build_py`` writes it to the root of ``build_lib``, which
  becomes the wheel's root.
* ``pip install -e .`` (PEP 660): setuptools' ``editable_wheel`` does not ship
  ``build_lib``; it installs into an unpacked wheel directory that it points the
  ``install`` command's ``install_lib`` at, so we write the file there.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH_NAME = "kipoi_tanger-kipoi.pth"
# One line: .pth lines that start with "import" are executed at start-up. A
# missing or broken package must never break the interpreter, hence the try.
PTH_LINE = ("import sys; exec('try:\\n from kipoi_tanger._kipoi_hook import install\\n"
            "except Exception:\\n pass\\nelse:\\n install()')\n")


class build_py_with_pth(build_py):
    """build_py that also emits the start-up hook .pth file."""

    def _pth_targets(self):
        targets = [os.path.join(self.build_lib, PTH_NAME)]
        if getattr(self, "editable_mode", False):
            install = self.distribution.get_command_obj("install")
            if getattr(install, "install_lib", None):
                targets.append(os.path.join(install.install_lib, PTH_NAME))
        return targets

    def run(self):
        super().run()
        for target in self._pth_targets():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as fh:
                fh.write(PTH_LINE)

    def get_outputs(self, include_bytecode=1):
        return list(super().get_outputs(include_bytecode)) + [os.path.join(self.build_lib, PTH_NAME)]


setup(cmdclass={"build_py": build_py_with_pth})
