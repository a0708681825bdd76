"""Make the real ``kipoi`` executable know about kipoi_tanger.

Why an import hook: Kipoi 0.8.6 has no plugin discovery. ``kipoi.plugin.PLUGINS``
is a hard-coded list (only ``kipoi_interpret``), and ``kipoi.__main__`` builds
its command table from that list *at import time*, so an installed
``kipoi_tanger`` is neither reachable as ``kipoi tanger`` nor listed by
``kipoi list_plugins``. Kipoi is no longer maintained, so an upstream fix will
not come. The package therefore installs a one-line ``.pth`` file into
site-packages that calls :func:`install` at interpreter start-up.

:func:`install` only puts a tiny meta-path finder in front of ``sys.meta_path``.
It does nothing until one of three Kipoi modules is imported:

* ``kipoi.plugin``: append kipoi_tanger to ``PLUGINS`` (so ``kipoi tanger ...``
  dispatches to :func:`kipoi_tanger.cli.cli_main` and ``kipoi list_plugins``
  lists it);
* ``kipoi.writers``: apply the numpy-2 shim (:mod:`kipoi_tanger.adapter.compat`), so
  plain ``kipoi predict ... -o out.h5`` works on numpy 2;
* ``kipoi.model``: make ``type: keras`` and ``defined_as: kipoi.model.KerasModel``
  use :class:`kipoi_tanger.KerasModel` (the Keras 2 API through ``tf-keras``),
  since Kipoi's own class cannot read the zoo's Keras 2 files under
  TensorFlow >= 2.16 (Keras 3); and ``type: sklearn`` / ``kipoi.model.SklearnModel``
  use :class:`kipoi_tanger.SklearnModel`, which refuses a pickle written by
  another scikit-learn version instead of warning; and ``type: tensorflow`` /
  ``kipoi.model.TensorFlowModel`` use
  :class:`kipoi_tanger.frameworks.tensorflow.TensorFlowModel`, Kipoi's class
  without its process-wide ``tf.compat.v1.disable_v2_behavior()`` (which
  breaks TensorFlow 2 models loaded later in the same process).

It also lends Kipoi a ``pkg_resources`` (:mod:`kipoi_tanger._pkg_resources`,
built on ``importlib.metadata``) when ``import pkg_resources`` comes from a
Kipoi module (``kipoi``, ``kipoi_conda``, ``kipoi_utils``) and no real one can
be imported: setuptools >= 81 no longer ships it, and ``kipoi/__main__.py``
imports it for every command. Where setuptools still has it, the real one is
used; imports from any other package are left alone.

For every other import the finder returns ``None`` after one dict lookup, and it
removes itself once all three modules are patched and ``pkg_resources`` is
resolved, so start-up cost is
negligible and processes that never import Kipoi are unaffected. Set
``KIPOI_TANGER_NO_HOOK=1`` to disable it.

Nothing here may ever raise: :func:`install` runs at every interpreter start
(outside the ``.pth`` line's ``try``), and the finder sits in front of every
import. A failure disables the hook (or one patch, reported in one line when
that Kipoi module is imported) and never breaks Python or Kipoi.
"""
import sys

PLUGIN_ENTRY = {
    "plugin": "kipoi_tanger",
    "url": "https://github.com/kipoi/kipoi_tanger",
    "cli": True,
    "description": "tangermeme-style ops (predict, DeepLIFT/SHAP, marginalize, products) into HDF5",
}


def _patch_plugin(module):
    if not any(p.get("plugin") == "kipoi_tanger" for p in module.PLUGINS):
        module.PLUGINS.append(dict(PLUGIN_ENTRY))
    original = module.load_plugin
    if getattr(original, "_kipoi_tanger", False):
        return

    def load_plugin(plugin):
        # Kipoi reads cli_main/ModelParser/DataloaderParser from the plugin
        # module; ours live in kipoi_tanger.cli so that `import kipoi_tanger`
        # stays light.
        if plugin == "kipoi_tanger":
            import importlib
            return importlib.import_module("kipoi_tanger.cli")
        return original(plugin)

    load_plugin._kipoi_tanger = True
    module.load_plugin = load_plugin


# model classes kipoi_tanger gives Kipoi (each module has use_in_kipoi(kipoi.model))
MODEL_LOADERS = ("kipoi_tanger.frameworks.keras", "kipoi_tanger.frameworks.sklearn",
                 "kipoi_tanger.frameworks.tensorflow")


def _patch_model(module):
    import importlib
    failed = []
    for name in MODEL_LOADERS:
        loader = sys.modules.get(name)
        if loader is not None and not hasattr(loader, "use_in_kipoi"):
            # kipoi.model is being imported by that loader module itself (before
            # its class exists): the module finishes the job when defined.
            loader.__dict__["_use_in_kipoi_when_defined"] = True
            continue
        try:
            importlib.import_module(name).use_in_kipoi(module)
        except Exception as e:      # the other loaders still apply; one line in the end
            failed.append(f"{name.rsplit('.', 1)[-1]}: {type(e).__name__}: {e}")
    if failed:
        raise RuntimeError("; ".join(failed))


def _patch_writers(module):
    from kipoi_tanger.adapter.compat import patch_kipoi_writers
    patch_kipoi_writers(module)


def _apply(patch, module):
    """Run one patch; on failure say so in one line (never a traceback, never raise)."""
    try:
        patch(module)
    except Exception as e:  # never break Kipoi itself
        try:
            text = " ".join(str(e).split())[:200]
            sys.stderr.write(f"kipoi_tanger: could not patch {getattr(module, '__name__', module)}: "
                             f"{type(e).__name__}: {text}\n")
        except Exception:
            pass


class _PatchingLoader:
    """Run the real loader, then patch the fresh module."""

    def __init__(self, loader, patch):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _apply(self._patch, module)

    def __getattr__(self, name):
        # get_source/get_code/is_package etc. for inspect and tracebacks
        return getattr(self._loader, name)


class _QuietLoader(_PatchingLoader):
    """Run the real loader with setuptools' "pkg_resources is deprecated" warning silenced."""

    def __init__(self, loader):
        super().__init__(loader, None)

    def exec_module(self, module):
        import warnings
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            self._loader.exec_module(module)


_KIPOI_PACKAGES = ("kipoi", "kipoi_conda", "kipoi_utils")
_IMPORT_MACHINERY = ("importlib", "importlib._bootstrap", "importlib._bootstrap_external", __name__)


def _imported_by_kipoi():
    """True when the ``import`` being resolved is written in a Kipoi module (kipoi_tanger is not one)."""
    frame = sys._getframe(1)
    while frame is not None:
        g = frame.f_globals
        name = g.get("__name__")
        if name not in _IMPORT_MACHINERY:
            if name == "__main__":      # python -m kipoi
                name = getattr(g.get("__spec__"), "name", None) or name
            return isinstance(name, str) and name.split(".")[0] in _KIPOI_PACKAGES
        frame = frame.f_back
    return False


def _pkg_resources_spec():
    """The spec that loads :mod:`kipoi_tanger._pkg_resources` as ``pkg_resources``."""
    import importlib.util
    import os
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_pkg_resources.py")
    return importlib.util.spec_from_file_location("pkg_resources", path)


class KipoiPatchFinder:
    """Meta-path finder that patches ``kipoi.plugin``, ``kipoi.writers`` and ``kipoi.model`` on import,
    and lends Kipoi's modules a ``pkg_resources`` where none is installed."""

    PKG_RESOURCES = "pkg_resources"

    def __init__(self):
        self.pending = {"kipoi.plugin": _patch_plugin, "kipoi.writers": _patch_writers,
                        "kipoi.model": _patch_model, self.PKG_RESOURCES: None}

    def find_spec(self, fullname, path=None, target=None):
        try:
            if fullname not in self.pending:
                return None
            if fullname == self.PKG_RESOURCES:
                return self._pkg_resources(path, target)
            return self._find_and_wrap(fullname, path, target, self.pending[fullname])
        except Exception:
            return None  # let the normal import machinery handle it, unpatched

    def _find_elsewhere(self, fullname, path, target):
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None

    def _done(self, fullname):
        self.pending.pop(fullname, None)
        if not self.pending:
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass

    def _pkg_resources(self, path, target):
        spec = self._find_elsewhere(self.PKG_RESOURCES, path, target)
        if spec is not None:       # setuptools < 81: the real one, for everyone
            self._done(self.PKG_RESOURCES)
            if getattr(spec, "loader", None) is not None and _imported_by_kipoi():
                # imported by Kipoi (kipoi/__main__.py, every `kipoi` command): without its
                # deprecation warning, which would precede every `kipoi tanger` message on stderr
                spec.loader = _QuietLoader(spec.loader)
            return spec
        if not _imported_by_kipoi():
            return None            # other packages see no pkg_resources, as without the hook
        self._done(self.PKG_RESOURCES)
        return _pkg_resources_spec()

    def _find_and_wrap(self, fullname, path, target, patch):
        spec = self._find_elsewhere(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        self._done(fullname)
        spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


def install():
    """Install the finder (idempotent); patch at once what Kipoi already imported.

    Never raises: returns the finder, or None when disabled
    (``KIPOI_TANGER_NO_HOOK``) or when installing failed.
    """
    try:
        return _install()
    except Exception:
        return None


def _install():
    import os
    if os.environ.get("KIPOI_TANGER_NO_HOOK"):
        return None
    for finder in sys.meta_path:
        if isinstance(finder, KipoiPatchFinder) or type(finder).__name__ == "KipoiPatchFinder":
            return finder
    finder = KipoiPatchFinder()
    for name in list(finder.pending):
        module = sys.modules.get(name)
        if module is not None:
            patch = finder.pending.pop(name)
            if patch is not None:
                _apply(patch, module)
    if finder.pending:
        sys.meta_path.insert(0, finder)
    return finder
