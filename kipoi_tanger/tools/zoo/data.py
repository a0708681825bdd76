"""Where kipoi_tanger's shipped files lie: the example zoo, model templates, shared dataloaders, workflows.

The four top-level directories of the source tree (``example_models/``,
``model_templates/``, ``dataloaders/``, ``workflows/``) travel inside the
package: building a wheel copies them to ``kipoi_tanger/_data/`` (see
``setup.py``), so a plain ``pip install`` has them. An editable install
(``pip install -e .``) has no ``_data/`` and finds them next to the package, in
the checkout. :func:`data_dir` looks in that order; ``kipoi-tanger zoo``
prints the result, with the line that makes the example zoo a local Kipoi
source; ``kipoi-tanger zoo --add_source`` adds it to Kipoi's config
(:func:`add_kipoi_source`).
"""
import os
from typing import Dict, Optional

__all__ = ["ZooError", "DATA_DIRS", "ZOO_SOURCE", "package_dir", "data_dir", "data_dirs", "kipoi_source_config",
           "add_kipoi_source"]

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


def add_kipoi_source(name: str = ZOO_SOURCE, config_path: Optional[str] = None) -> str:
    """Make the example zoo a local Kipoi source called ``name`` in Kipoi's config file.

    Reads ``~/.kipoi/config.yaml`` (created when missing), sets
    ``model_sources: NAME: {type: local, local_path: <example_models>}`` and
    keeps every other source and key (the file is rewritten as plain YAML, as
    Kipoi writes it). Replaces an earlier entry of the same name.

    Parameters
    ----------
    name : str, default 'tanger_zoo'
        The source name (``dir`` is Kipoi's own and refused).
    config_path : str, optional
        Default: ``~/.kipoi/config.yaml``.

    Returns
    -------
    str
        The config file written.
    """
    import yaml
    if not isinstance(name, str) or not name.strip() or name == "dir" or any(c in name for c in ":/ \t"):
        raise ZooError(f"--add_source: expected a source name other than 'dir' (no ':', '/' or spaces), got {name!r}")
    path = config_path or os.path.join(os.path.expanduser("~"), ".kipoi", "config.yaml")
    config = {}
    if os.path.exists(path):
        try:
            with open(path) as fh:
                config = yaml.safe_load(fh) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ZooError(f"{path}: cannot read the Kipoi config ({' '.join(str(e).split())})") from None
        if not isinstance(config, dict) or not isinstance(config.get("model_sources", {}), dict):
            raise ZooError(f"{path}: expected a mapping with a model_sources: mapping")
    sources = config.setdefault("model_sources", {})
    sources[name] = {"type": "local", "local_path": data_dir("example_models")}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        yaml.safe_dump(config, fh, default_flow_style=False, sort_keys=False)
    os.replace(tmp, path)
    return path
