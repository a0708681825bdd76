"""Dependencies earn their place: every install_requires entry is imported by the shipped code, and every
third-party import of the shipped code is declared (install_requires or an extra).

The shipped code is the package and what its wheel carries and runs (kipoi_tanger/, the shared
dataloaders/, the model templates); imports are read with ``ast`` and mapped to distributions with
``importlib.metadata.packages_distributions``.
"""
import ast
import configparser
import importlib.metadata
import os
import re
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCANNED = ("kipoi_tanger", "dataloaders", "model_templates")
#: declared but not imported, and why (also said in setup.cfg and README)
UNIMPORTED_OK = {"six": "Kipoi's dependency `related` imports six without declaring it"}
#: imported but not declared, and why
UNDECLARED_OK = {"keras": "probed inside a try by frameworks/keras.py; it comes with tensorflow (frameworks extra)"}


def _requirements():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    lines = lambda v: [Requirement(x.strip()) for x in v.splitlines() if x.strip() and not x.strip().startswith("#")]
    install = lines(cfg["options"]["install_requires"])
    extras = {k: lines(v) for k, v in cfg["options.extras_require"].items()}
    return install, extras


def _imports():
    """``{top-level module: [files importing it]}`` of the scanned code (absolute imports only)."""
    found = {}
    for top in SCANNED:
        for d, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [x for x in dirs if x != "__pycache__" and not x.startswith(".")]
            for f in files:
                if not f.endswith((".py", ".py.tmpl")):
                    continue
                path = os.path.join(d, f)
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
                if f.endswith(".tmpl"):       # a template: its {{ placeholders }} as plain names
                    text = re.sub(r"\{\{\s*\w+\s*\}\}", "T", text)
                tree = ast.parse(text, path)
                for node in ast.walk(tree):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
                    for name in names:
                        found.setdefault(name.split(".")[0], []).append(os.path.relpath(path, REPO))
    return found


def _third_party(imports):
    local = {"kipoi_tanger", "dataloaders", "dataloader", "_shared", "model", "__future__"}
    return {m: f for m, f in imports.items() if m not in sys.stdlib_module_names and m not in local}


def test_every_requirement_is_imported():
    install, _ = _requirements()
    dists = importlib.metadata.packages_distributions()
    imported = {canonicalize_name(d) for m in _third_party(_imports()) for d in dists.get(m, [])}
    unused = [str(r) for r in install
              if canonicalize_name(r.name) not in imported and r.name not in UNIMPORTED_OK]
    assert not unused, f"install_requires entries that nothing in {', '.join(SCANNED)} imports: {unused}"


def test_every_import_is_declared():
    install, extras = _requirements()
    declared = {canonicalize_name(r.name) for r in install + [r for rs in extras.values() for r in rs]}
    dists = importlib.metadata.packages_distributions()
    missing = {}
    for module, files in sorted(_third_party(_imports()).items()):
        if module in UNDECLARED_OK:
            continue
        names = {canonicalize_name(d) for d in dists.get(module, [])}
        if not names & declared:
            missing[module] = (sorted(names) or ["not installed"], sorted(set(files))[:3])
    assert not missing, f"imports whose distribution setup.cfg does not declare: {missing}"


def test_the_unimported_requirement_is_still_needed():
    """six stays only while Kipoi's stack imports it undeclared."""
    import related
    src = os.path.dirname(related.__file__)
    uses = [f for f in os.listdir(src) if f.endswith(".py") and "import six" in open(os.path.join(src, f)).read()
            or f.endswith(".py") and "from six " in open(os.path.join(src, f)).read()]
    requires = importlib.metadata.requires("related") or []
    assert uses and not [r for r in requires if canonicalize_name(Requirement(r).name) == "six"]
