"""A minimal ``pkg_resources`` for Kipoi, where setuptools (>= 81) no longer ships one.

Kipoi 0.8.6 imports ``pkg_resources`` in two places, and nothing else of it:

* ``kipoi/__main__.py``: ``pkg_resources.resource_filename(__name__, "logging.conf")``
  (every ``kipoi`` command);
* ``kipoi_conda/utils.py``: ``get_distribution(name).version``,
  ``DistributionNotFound`` and ``parse_version`` (the dependency check of
  ``kipoi test``/``kipoi predict``).

The start-up hook (:mod:`kipoi_tanger._kipoi_hook`) loads this file as
``pkg_resources`` only when no real one can be imported and only for an
import made by a Kipoi module, so kipoi_tanger does not need to pin
``setuptools<81``. It implements those calls with :mod:`importlib.metadata`
and :mod:`packaging` (plus a no-op ``fixup_namespace_packages``, which
pytest calls on any loaded ``pkg_resources``); any other name raises an
``AttributeError`` that says so.
"""
import importlib
import importlib.metadata
import os
import sys

__all__ = ["DistributionNotFound", "get_distribution", "parse_version", "resource_filename",
           "fixup_namespace_packages"]

#: marks this module as kipoi_tanger's stand-in (tests and the hook look for it)
KIPOI_TANGER_SHIM = True


class ResolutionError(Exception):
    """Base of the errors below, as in pkg_resources."""


class DistributionNotFound(ResolutionError):
    """No installed distribution has the requested name."""


class Distribution:
    """What ``get_distribution`` returns: ``project_name``, ``key`` and ``version``."""

    def __init__(self, dist: importlib.metadata.Distribution):
        self._dist = dist
        self.project_name = dist.metadata["Name"]
        self.key = self.project_name.lower()
        self.version = dist.version

    def __repr__(self):
        return f"{self.project_name} {self.version}"


def get_distribution(dist: str) -> Distribution:
    """The installed distribution ``dist`` (a name, optionally with a version specifier, which is ignored)."""
    from packaging.requirements import InvalidRequirement, Requirement
    name = str(dist)
    try:
        name = Requirement(name).name
    except InvalidRequirement:
        pass
    try:
        return Distribution(importlib.metadata.distribution(name))
    except importlib.metadata.PackageNotFoundError:
        raise DistributionNotFound(f"The '{name}' distribution was not found and is required by the "
                                   "application") from None


def parse_version(v: str):
    """``packaging.version.Version(v)``, as pkg_resources' own."""
    from packaging.version import Version
    return Version(v)


def resource_filename(package_or_requirement: str, resource_name: str) -> str:
    """The file ``resource_name`` next to module ``package_or_requirement`` (a package's directory, or
    the directory holding a plain module), as pkg_resources gives it for modules on the file system."""
    module = sys.modules.get(package_or_requirement) or importlib.import_module(package_or_requirement)
    paths = getattr(module, "__path__", None)
    base = list(paths)[0] if paths else os.path.dirname(module.__file__)
    return os.path.join(base, *resource_name.split("/"))


def fixup_namespace_packages(path_item: str, parent=None) -> None:
    """No-op: this stand-in declares no namespace packages. (pytest's ``monkeypatch.syspath_prepend``
    calls it whenever a ``pkg_resources`` module is loaded.)"""


def __getattr__(name):
    raise AttributeError(f"pkg_resources.{name}: kipoi_tanger lends Kipoi a minimal pkg_resources (setuptools "
                         ">= 81 has none) without this name; pip install 'setuptools<81' for the full one")
