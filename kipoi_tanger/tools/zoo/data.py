"""Where kipoi_tanger's shipped files lie: the example zoo, model templates, shared dataloaders, workflows.

The four top-level directories of the source tree (``example_models/``,
``model_templates/``, ``dataloaders/``, ``workflows/``) travel inside the
package: building a wheel copies them to ``kipoi_tanger/_data/`` (see
``setup.py``), so a plain ``pip install`` has them. An editable install
(``pip install -e .``) has no ``_data/`` and finds them next to the package, in
the checkout. :func:`data_dir` looks in that order; ``kipoi-tanger zoo``
prints the result, with the line that makes the example zoo a local Kipoi
source.
"""
import os
from typing import Dict, Optional

__all__ = ["ZooError", "DATA_DIRS", "ZOO_SOURCE", "package_dir", "data_dir", "data_dirs", "kipoi_source_config"]

#: the shipped directories, as named in the source tree
DATA_DIRS = ("example_models", "model_templates", "dataloaders", "workflows")
#: the package-data directory a wheel carries them in
PACKAGE_DATA = "_data"
#: the Kipoi source name README and ``kipoi-tanger zoo`` use for the example zoo
ZOO_SOURCE = "tanger_zoo"


class ZooError(ValueError):
    """Bad input to ``init``/``test``/``zoo``, or missing shipped files (one line; the CLI exits with status 2)."""


def package_dir() -> str:
    """The imported ``kipoi_tanger`` package directory."""
    import kipoi_tanger
    return os.path.dirname(os.path.abspath(kipoi_tanger.__file__))


def _roots():
    pkg = package_dir()
    return [os.path.join(pkg, PACKAGE_DATA), os.path.dirname(pkg)]


def data_dir(name: str) -> str:
    """The absolute path of one shipped directory.

    Parameters
    ----------
    name : {'example_models', 'model_templates', 'dataloaders', 'workflows'}

    Returns
    -------
    str
        ``kipoi_tanger/_data/NAME`` of an installed wheel, else ``NAME/`` of the
        source checkout holding the package.

    Raises
    ------
    ZooError
        For an unknown name, or when neither exists (one line saying where it looked).
    """
    if name not in DATA_DIRS:
        raise ZooError(f"unknown shipped directory {name!r}; expected one of {', '.join(DATA_DIRS)}")
    looked = []
    for root in _roots():
        d = os.path.join(root, name)
        if os.path.isdir(d):
            return d
        looked.append(d)
    raise ZooError(f"{name}/ not found (looked in {' and '.join(looked)}): this kipoi_tanger installation is "
                   "incomplete; reinstall it (pip install kipoi_tanger, or pip install -e . in a checkout)")


def data_dirs() -> Dict[str, str]:
    """``{name: path}`` of every shipped directory (see :func:`data_dir`)."""
    return {name: data_dir(name) for name in DATA_DIRS}


def kipoi_source_config(name: str = ZOO_SOURCE) -> str:
    """The ``~/.kipoi/config.yaml`` line that makes the example zoo a local Kipoi source called ``name``.

    ``kipoi ls --source NAME``, ``kipoi test MODEL --source NAME`` and
    ``kipoi-tanger ... MODEL --source NAME`` then find the shipped models.
    """
    return f"model_sources: {{{name}: {{type: local, local_path: {data_dir('example_models')}}}}}"
