"""Contributor tooling for the model zoo: ``kipoi-tanger init`` and ``kipoi-tanger test``.

:func:`init` renders a template from the top-level ``model_templates/``
directory into a new Kipoi model dir, writes seeded initial weights and the
``test.expect.h5`` file, so the fresh model passes ``kipoi test`` and
``kipoi-tanger test`` untouched. :func:`test` runs the real ``kipoi test``
and then kipoi_tanger's own checks (the ``postprocessing: tanger:`` section
parses, every declared op runs on the example files, DeepLIFT/SHAP
attributions add up).

Templates
---------
A template is a directory holding ``template.yaml`` (description, the
dataloader component, typed variables with defaults) and the model files.
Files ending in ``.tmpl`` are rendered (``{{ name }}`` placeholders; an
unknown name is an error) and lose the suffix; every other file is copied
byte for byte. ``model_templates/_common/`` (``make_weights.py``,
``make_expect.py``) is added to every template that does not ship its own
copy. See ``model_templates/README.md``.

Kipoi resolves ``test: expect:`` against the *working directory*, not the
model dir. :func:`init` therefore writes it relative to ``test_root``: the
directory ``init`` ran from when the new model lies inside it (so
``kipoi-tanger init my_model -o example_models`` at the repository root gives
``example_models/my_model/test.expect.h5``, the zoo convention), else the
output directory. ``kipoi test MODEL_PATH --source dir`` passes from there.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

TEMPLATES_ENV = "KIPOI_TANGER_TEMPLATES"
DEFAULT_TEMPLATE = "pytorch_onehot"
COMMON = "_common"
EXPECT_FILE = "test.expect.h5"
DATALOADER_MODES = ("shared", "copy")

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_MODEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_LABEL = re.compile(r"[A-Za-z0-9_.:+-]+")
_VAR_TYPES = ("int", "str", "list")
_DERIVED = ("name", "class_name", "seed", "expect_path", "model_path", "test_root_hint", "kipoi_tanger_version",
            "dataloader_defined_as", "dataloader_note")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ZooError(ValueError):
    """Bad input to ``init``/``test`` (one line; the CLI exits with status 2)."""


# ---------------------------------------------------------------------------
# locating templates and shared dataloaders


def _package_dir():
    return os.path.dirname(os.path.abspath(__file__))


def _checkout_dir():
    """The source checkout holding the package (editable install), or None."""
    root = os.path.dirname(_package_dir())
    return root if os.path.isdir(os.path.join(root, "model_templates")) else None


def _share_dir():
    """Where a wheel's ``data_files`` would put templates and dataloaders."""
    return os.path.join(sys.prefix, "share", "kipoi_tanger")


def templates_dir():
    """The directory holding the templates.

    Looked up in order: ``$KIPOI_TANGER_TEMPLATES``; ``model_templates/``
    inside the installed package (package data); ``model_templates/`` next to
    the package (a source checkout / editable install);
    ``<sys.prefix>/share/kipoi_tanger/model_templates`` (wheel data files).

    Raises
    ------
    ZooError
        When none exists.
    """
    env = os.environ.get(TEMPLATES_ENV)
    if env:
        if not os.path.isdir(env):
            raise ZooError(f"${TEMPLATES_ENV}: {env} is not a directory")
        return os.path.abspath(env)
    for d in (os.path.join(_package_dir(), "model_templates"),
              os.path.join(os.path.dirname(_package_dir()), "model_templates"),
              os.path.join(_share_dir(), "model_templates")):
        if os.path.isdir(d):
            return d
    raise ZooError(f"model templates not found (looked for model_templates/ in and next to {_package_dir()} and "
                   f"in {_share_dir()}); use a source checkout of kipoi_tanger (pip install -e .) or set "
                   f"${TEMPLATES_ENV}")


def list_templates():
    """``{name: one-line description}`` of the available templates."""
    root = templates_dir()
    out = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, "template.yaml")
        if not name.startswith(("_", ".")) and os.path.isfile(path):
            try:
                out[name] = " ".join(str(_read_yaml(path).get("description", "")).split())
            except ZooError as e:
                out[name] = f"(broken: {e})"
    return out


def shared_dataloader(component):
    """Path of ``dataloaders/<component>/dataloader.py`` (source checkout, else wheel data files)."""
    paths = [os.path.join(root, "dataloaders", component, "dataloader.py")
             for root in (os.path.dirname(_package_dir()), _share_dir())]
    for path in paths:
        if os.path.isfile(path):
            return path
    raise ZooError(f"shared dataloader component {component!r} not found ({' or '.join(paths)}); "
                   "kipoi-tanger init needs a source checkout of kipoi_tanger (pip install -e .)")


def _read_yaml(path):
    import yaml
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as e:
        raise ZooError(f"{path}: cannot read YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ZooError(f"{path}: expected a mapping at the top level")
    return data


# ---------------------------------------------------------------------------
# templates


class Template:
    """A model template: ``template.yaml`` plus files (see the module docstring).

    Parameters
    ----------
    path : str
        The template directory.
    """

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(self.path.rstrip(os.sep))
        meta_path = os.path.join(self.path, "template.yaml")
        meta = _read_yaml(meta_path)
        self.description = " ".join(str(meta.get("description", "")).split())
        dl = meta.get("dataloader") or {}
        if not isinstance(dl, dict) or not isinstance(dl.get("component"), str) or \
                not isinstance(dl.get("class"), str):
            raise ZooError(f"{meta_path}: dataloader: expected {{component: NAME, class: CLASS}}")
        self.dataloader_component, self.dataloader_class = dl["component"], dl["class"]
        variables = meta.get("variables") or {}
        if not isinstance(variables, dict):
            raise ZooError(f"{meta_path}: variables: expected a mapping name -> {{type, default, doc}}")
        self.variables = {}
        for k, v in variables.items():
            if not isinstance(v, dict) or v.get("type") not in _VAR_TYPES or "default" not in v:
                raise ZooError(f"{meta_path}: variables: {k}: expected {{type: int|str|list, default: ..., doc: ...}}")
            lists = [x for x, y in variables.items() if isinstance(y, dict) and y.get("type") == "list"]
            if k in _DERIVED or k in [f"n_{x}" for x in lists]:
                raise ZooError(f"{meta_path}: variables: {k!r} is reserved (set by init)")
            self.variables[k] = dict(v)
            self.variables[k]["default"] = self.coerce(k, v["default"], where=meta_path)

    @classmethod
    def find(cls, template):
        """A template by name (in :func:`templates_dir`) or by directory path."""
        if not isinstance(template, str) or not template:
            raise ZooError(f"--template: expected a template name or directory, got {template!r}")
        if os.sep in template or "/" in template or os.path.isdir(template) and \
                os.path.isfile(os.path.join(template, "template.yaml")):
            if not os.path.isfile(os.path.join(template, "template.yaml")):
                raise ZooError(f"--template: {template} has no template.yaml")
            return cls(template)
        available = list_templates()
        if template not in available:
            from .adapter import _suggest
            raise ZooError(f"--template: unknown template {template!r}{_suggest(template, available)}; "
                           f"available: {', '.join(available) or 'none'}")
        return cls(os.path.join(templates_dir(), template))

    def coerce(self, name, value, where="--set"):
        """Validate and convert one variable value (strings from the command line included)."""
        spec = self.variables.get(name)
        if spec is None:
            from .adapter import _suggest
            raise ZooError(f"{where}: template {self.name} has no variable {name!r}{_suggest(name, self.variables)}; "
                           f"expected one of {', '.join(self.variables) or 'none'}")
        kind = spec["type"]
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, str)) or \
                    not re.fullmatch(r"\s*-?\d+\s*", str(value)):
                raise ZooError(f"{where}: {name}: expected an integer, got {value!r}")
            value = int(value)
            lo = spec.get("min")
            if lo is not None and value < lo:
                raise ZooError(f"{where}: {name}: expected an integer >= {lo}, got {value}")
            return value
        if kind == "list":
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not items:
                raise ZooError(f"{where}: {name}: expected a non-empty comma-separated list, got {value!r}")
            items = [str(i).strip() for i in items]
            bad = [i for i in items if not _LABEL.fullmatch(i)]
            if bad:
                raise ZooError(f"{where}: {name}: {bad[0]!r} is not a valid label (letters, digits, _ . : + -)")
            if len(set(items)) != len(items):
                raise ZooError(f"{where}: {name}: labels must be distinct, got {items}")
            return items
        value = str(value)
        if not value.strip() or any(c in value for c in '"\\\n\r') or "{{" in value or "}}" in value:
            raise ZooError(f"{where}: {name}: expected a non-empty one-line string without quotes, backslashes "
                           f"or braces, got {value!r}")
        return value

    def resolve(self, params=None):
        """Defaults overridden by ``params`` (name -> value); lists also give ``n_<name>``."""
        values = {k: v["default"] for k, v in self.variables.items()}
        for k, v in (params or {}).items():
            values[k] = self.coerce(k, v)
        return values

    def files(self):
        """``[(source path, relative output path, render?)]``: this template's files, then ``_common``'s."""
        out, seen = [], set()
        roots = [self.path]
        common = os.path.join(os.path.dirname(self.path), COMMON)
        if os.path.isdir(common) and common != self.path:
            roots.append(common)
        for root in roots:
            for d, dirs, files in os.walk(root):
                dirs[:] = sorted(x for x in dirs if x != "__pycache__" and not x.startswith("."))
                for f in sorted(files):
                    if root == self.path and d == root and f == "template.yaml":
                        continue
                    if f.endswith((".pyc", ".pyo")):
                        continue
                    src = os.path.join(d, f)
                    rel = os.path.relpath(src, root)
                    render = rel.endswith(".tmpl")
                    if render:
                        rel = rel[:-len(".tmpl")]
                    if rel not in seen:
                        seen.add(rel)
                        out.append((src, rel, render))
        return out


def render(text, variables, where="template"):
    """Replace every ``{{ name }}`` in ``text``; an unknown name raises :class:`ZooError`."""
    def sub(m):
        k = m.group(1)
        if k not in variables:
            raise ZooError(f"{where}: unknown placeholder {{{{ {k} }}}}; known: {', '.join(sorted(variables))}")
        v = variables[k]
        return json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return _PLACEHOLDER.sub(sub, text)


def _class_name(name):
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", name) if p]
    cls = "".join(p[:1].upper() + p[1:] for p in parts)
    return cls if cls.isidentifier() else "Model" + cls


def _posix(path):
    return path.replace(os.sep, "/")


def _is_within(path, root):
    try:
        return os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) == os.path.abspath(root)
    except ValueError:   # different drives
        return False


def _root_hint(rel, root):
    if rel == ".":
        return "inside the model directory"
    if not rel.startswith(".."):
        return f"the directory that holds {rel.split('/')[0]}/"
    return root


# ---------------------------------------------------------------------------
# init


class InitResult(NamedTuple):
    """What :func:`init` wrote."""
    model_dir: str          # absolute path of the new model dir
    files: list             # paths written, relative to model_dir
    test_root: str          # run `kipoi test` from here ...
    model_path: str         # ... as `kipoi test <model_path> --source dir`
    expect_path: str        # model.yaml's test: expect: (relative to test_root)


def write_expect(model_dir, batch_size=32, path=None):
    """Write Kipoi's ``test.expect.h5`` for a model dir (what ``kipoi test -o`` writes).

    Runs Kipoi's own ``pipeline.predict_example`` on the dataloader's example
    files in this process (with the numpy-2 shim for Kipoi's HDF5 writer) and
    moves the file into place, replacing an existing one.

    Parameters
    ----------
    model_dir : str
        The model directory.
    batch_size : int, default 32
    path : str, optional
        Output file (default ``MODEL_DIR/test.expect.h5``).

    Returns
    -------
    str
        The path written.
    """
    from .adapter import _import_kipoi, _one_line
    from ._base import check_batch_size
    check_batch_size(batch_size)
    model_dir = os.path.abspath(model_dir)
    path = os.path.abspath(path or os.path.join(model_dir, EXPECT_FILE))
    kipoi = _import_kipoi()
    tmp_dir = tempfile.mkdtemp(prefix=".expect-", dir=os.path.dirname(path))
    tmp = os.path.join(tmp_dir, EXPECT_FILE)
    try:
        try:
            import contextlib
            import io
            m = kipoi.get_model(model_dir, source="dir")
            with contextlib.redirect_stderr(io.StringIO()):   # Kipoi's tqdm bar
                m.pipeline.predict_example(batch_size=batch_size, output_file=tmp)
        except Exception as e:
            raise ZooError(f"{model_dir}: cannot write {os.path.basename(path)}: {type(e).__name__}: "
                           f"{_one_line(e)}") from None
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def _run_script(model_dir, fname, argv):
    """Run a generated script's ``main(argv)`` in this process (its stdout is dropped)."""
    import contextlib
    import importlib.util
    import io
    import uuid
    script = os.path.join(model_dir, fname)
    # a private module name: never clobber (or reuse) another model's script module
    spec = importlib.util.spec_from_file_location("_kipoi_tanger_init_" + uuid.uuid4().hex, script)
    mod = importlib.util.module_from_spec(spec)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            spec.loader.exec_module(mod)
            mod.main(list(argv))
    except SystemExit as e:
        raise ZooError(f"{fname} exited with status {e.code}") from None
    except ZooError:
        raise
    except Exception as e:
        from .adapter import _one_line
        raise ZooError(f"{fname} failed: {type(e).__name__}: {_one_line(e)}") from None


def init(name, template=DEFAULT_TEMPLATE, output_dir=".", overwrite=False, seed=0, params=None, test_root=None,
         dataloader="shared", batch_size=32):
    """Create a new zoo model dir from a template (non-interactive).

    Renders the template into ``OUTPUT_DIR/NAME``, writes seeded initial
    weights (the template's ``make_weights.py``) and ``test.expect.h5``
    (:func:`write_expect`), so the model passes ``kipoi test`` and
    ``kipoi-tanger test`` as generated. Everything is built in a hidden
    sibling directory first and moved into place at the end, so a failure
    leaves nothing behind.

    Parameters
    ----------
    name : str
        Model name and directory name (a letter, then letters, digits, ``_ . -``).
    template : str, default 'pytorch_onehot'
        Template name (see :func:`list_templates`) or a template directory.
    output_dir : str, default '.'
        Where the model dir is created (made if missing).
    overwrite : bool, default False
        Replace the files the template writes in an existing model dir (other
        files there are left alone). Without it an existing dir is an error.
    seed : int, default 0
        Torch seed of the initial weights.
    params : dict, optional
        Template variables (e.g. ``{'seq_len': 500, 'tasks': ['a', 'b']}``);
        strings are converted as on the command line (``--set seq_len=500``).
    test_root : str, optional
        Directory ``kipoi test`` will run from; ``test: expect:`` is written
        relative to it. Default: the working directory when the model dir lies
        inside it, else ``output_dir``.
    dataloader : {'shared', 'copy'}, default 'shared'
        'shared': the thin dataloader.yaml points at ``dataloaders/<component>``
        of this checkout by relative path (the zoo convention); 'copy': copy
        that file into the model dir (a self-contained model dir).
    batch_size : int, default 32
        Batch size used to write the expect file.

    Returns
    -------
    InitResult
    """
    from . import __version__
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name):
        raise ZooError(f"NAME: expected a letter followed by letters, digits, '_', '.' or '-', got {name!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ZooError(f"--seed: expected a non-negative integer, got {seed!r}")
    if dataloader not in DATALOADER_MODES:
        raise ZooError(f"--dataloader: expected one of {', '.join(DATALOADER_MODES)}, got {dataloader!r}")
    tpl = Template.find(template)
    values = tpl.resolve(params)
    output_dir = os.path.abspath(output_dir)
    model_dir = os.path.join(output_dir, name)
    if os.path.lexists(model_dir):
        if not os.path.isdir(model_dir):
            raise ZooError(f"{model_dir} exists and is not a directory")
        if not overwrite:
            raise ZooError(f"{model_dir} exists; pass --overwrite to replace the files the template writes")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ZooError(f"-o/--output_dir: {output_dir} is not a directory")
    shared = shared_dataloader(tpl.dataloader_component)

    if test_root is None:
        root = os.getcwd() if _is_within(model_dir, os.getcwd()) else output_dir
    else:
        root = os.path.abspath(test_root)
        if not os.path.isdir(root):
            raise ZooError(f"--test_root: {test_root} is not a directory")
    rel = _posix(os.path.relpath(model_dir, root))
    expect_path = EXPECT_FILE if rel == "." else f"{rel}/{EXPECT_FILE}"

    if dataloader == "shared":
        try:
            dl_path = _posix(os.path.relpath(shared, model_dir))
        except ValueError:   # another drive
            dl_path = _posix(shared)
        dl_note = f"dataloaders/{tpl.dataloader_component}, loaded by relative path"
    else:
        dl_path = f"{tpl.dataloader_component}.py"
        dl_note = f"a copy of dataloaders/{tpl.dataloader_component}/dataloader.py"
    values.update({
        "name": name, "class_name": _class_name(name), "seed": seed, "expect_path": expect_path,
        "model_path": rel, "test_root_hint": _root_hint(rel, root), "kipoi_tanger_version": __version__,
        "dataloader_defined_as": f"{dl_path}::{tpl.dataloader_class}", "dataloader_note": dl_note,
    })
    for k, v in list(values.items()):
        if isinstance(v, list):
            values[f"n_{k}"] = len(v)

    os.makedirs(output_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.init-", dir=output_dir)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)   # mkdtemp's 0700 would survive the final rename
    try:
        for src, relpath, do_render in tpl.files():
            dst = os.path.join(staging, relpath)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if do_render:
                with open(src, encoding="utf-8") as fh:
                    text = render(fh.read(), values, where=os.path.relpath(src, os.path.dirname(tpl.path)))
                with open(dst, "w", encoding="utf-8", newline="\n") as fh:
                    fh.write(text)
            else:
                shutil.copyfile(src, dst)
        if dataloader == "copy":
            shutil.copyfile(shared, os.path.join(staging, dl_path))
        if os.path.isfile(os.path.join(staging, "make_example_files.py")):
            _run_script(staging, "make_example_files.py", ["--model_dir", staging])
        if not os.path.isfile(os.path.join(staging, "make_weights.py")):
            raise ZooError(f"template {tpl.name} has no make_weights.py (model_templates/{COMMON}/ provides one)")
        _run_script(staging, "make_weights.py", ["--seed", str(seed), "--model_dir", staging])
        write_expect(staging, batch_size=batch_size)
        written = []
        for d, dirs, files in os.walk(staging):
            for x in [x for x in dirs if x == "__pycache__"]:
                shutil.rmtree(os.path.join(d, x), ignore_errors=True)
            dirs[:] = [x for x in dirs if x != "__pycache__"]
            written += [os.path.relpath(os.path.join(d, f), staging) for f in files]
        if not os.path.exists(model_dir):
            os.rename(staging, model_dir)
        else:
            for relpath in written:
                dst = os.path.join(model_dir, relpath)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.replace(os.path.join(staging, relpath), dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return InitResult(model_dir, sorted(_posix(w) for w in written), root, rel, expect_path)


# ---------------------------------------------------------------------------
# test


class Check(NamedTuple):
    """One row of :func:`test`'s table."""
    name: str
    status: str        # 'PASS' | 'FAIL' | 'SKIP'
    detail: str
    seconds: float


class TestReport(NamedTuple):
    """What :func:`test` found; ``passed`` is True when no check failed."""
    model: str
    checks: list
    passed: bool

    def format(self):
        """The per-check table ``kipoi-tanger test`` prints."""
        w = max([len(c.name) for c in self.checks] + [5])
        lines = [f"kipoi-tanger test {self.model}",
                 f"  {'check':<{w}}  result  {'time':>6}  detail"]
        for c in self.checks:
            t = f"{c.seconds:5.1f}s" if c.status != "SKIP" else "     -"
            lines.append(f"  {c.name:<{w}}  {c.status:<6}  {t}  {c.detail}")
        n = {s: sum(c.status == s for c in self.checks) for s in ("PASS", "FAIL", "SKIP")}
        lines.append(f"{'PASSED' if self.passed else 'FAILED'}: {n['PASS']} passed, {n['FAIL']} failed, "
                     f"{n['SKIP']} skipped")
        return "\n".join(lines)


def _short(msg, n=300):
    msg = " ".join(_ANSI.sub("", str(msg)).split())
    return msg if len(msg) <= n else msg[:n - 3] + "..."


def kipoi_executable():
    """The ``kipoi`` console script of this Python environment (or on PATH), or None."""
    here = os.path.join(os.path.dirname(sys.executable), "kipoi")
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    return shutil.which("kipoi")


def _expect_setting(model_dir):
    from .adapter import read_model_yaml
    raw = read_model_yaml(model_dir) or {}
    t = raw.get("test") if isinstance(raw, dict) else None
    if not isinstance(t, dict):
        return None, 7
    return t.get("expect"), t.get("precision_decimal", 7)


def _kipoi_run_dir(model_dir, expect):
    """Where ``kipoi test`` must run for ``test: expect:`` to resolve, and a note when it is not the cwd."""
    cwd = os.getcwd()
    if not isinstance(expect, str) or os.path.isabs(expect) or os.path.exists(os.path.join(cwd, expect)):
        return cwd, ""
    d = model_dir
    while True:
        if os.path.exists(os.path.join(d, expect)):
            return d, f" (test: expect is relative to {d}: run plain `kipoi test` from there)"
        parent = os.path.dirname(d)
        if parent == d:
            return cwd, ""
        d = parent


def _check_kipoi(model, source, batch_size, timeout):
    exe = kipoi_executable()
    if exe is None:
        return "FAIL", "the kipoi executable is not installed in this environment (pip install kipoi)"
    expect, _ = (None, 7)
    run_dir, note, arg = os.getcwd(), "", model
    if source == "dir":
        model_dir = os.path.abspath(model)
        expect, _ = _expect_setting(model_dir)
        run_dir, note = _kipoi_run_dir(model_dir, expect)
        arg = model_dir if run_dir != os.getcwd() else model
    cmd = [exe, "test", arg, "--source", source, "--batch_size", str(batch_size)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        r = subprocess.run(cmd, cwd=run_dir, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "FAIL", f"`kipoi test` did not finish within {timeout} s"
    out = _ANSI.sub("", (r.stdout or "") + "\n" + (r.stderr or ""))
    if r.returncode == 0:
        if "All predictions match" in out:
            return "PASS", f"predictions match {expect}{note}"
        return "PASS", "ran on the example files; no test: expect: in model.yaml, so predictions were not compared"
    lines = [l.strip() for l in out.splitlines() if l.strip() and "it/s]" not in l and "s/it]" not in l]
    pick = next((l for l in reversed(lines) if "don't match" in l), None) or \
        next((l for l in reversed(lines) if re.search(r"(Error|Exception)\b", l)), None) or \
        (lines[-1] if lines else f"exit status {r.returncode}")
    if "don't match" in pick:
        pick = "Model predictions don't match the expected predictions in " + str(expect)
    return "FAIL", _short(f"`kipoi test` exited with {r.returncode}: {pick}{note}")


def _datasets(path, prefix=None):
    import h5py
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and (prefix is None or name == prefix or name.startswith(prefix + "/")):
                out[name] = obj[()]
        f.visititems(visit)
    return out


def _maxdiff(a, b):
    import numpy as np
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max()) if a.size else 0.0


def _all_finite(arrays):
    import numpy as np
    bad = [k for k, v in arrays.items() if np.issubdtype(np.asarray(v).dtype, np.floating)
           and not np.isfinite(v).all()]
    if bad:
        raise AssertionError(f"{bad[0]} has NaN or infinite values")


def test(model, source="dir", batch_size=32, n_shuffles=4, motif=None, max_delta=1e-3, random_state=0,
         kipoi_test=True, args=None, device=None, timeout=600):
    """Kipoi's ``kipoi test`` plus kipoi_tanger's checks of a model.

    Checks, in order (each PASS, FAIL or SKIP with a one-line detail):

    1. ``kipoi test``: the real ``kipoi`` executable in a subprocess (a fresh
       process, as contributors and CI run it). For ``--source dir`` it runs
       from the working directory, or from the nearest parent of the model
       dir where ``test: expect:`` resolves (the detail then says so).
    2. ``tanger section``: the model loads through the adapter and its
       ``postprocessing: tanger:`` section is valid (known keys and ops, a
       layout matching the schema, ...).
    3. ``predict``: runs on the example files; equal to ``test.expect.h5``
       (to its ``precision_decimal``) when the model has one.
    4. ``deeplift-shap``: runs with ``n_shuffles`` references; every region's
       convergence delta (sum of attributions minus the output difference)
       is below ``max_delta``.
    5. ``marginalize``: inserting ``motif`` runs; its "before" predictions,
       made through the canonical one-hot layout, equal ``predict``'s.
    6. ``product``: crosses the sequences with two rows of every extra input
       (taken from the example batch, or ``args``); the entries that pair
       each region with its own row equal ``predict``'s.

    Op checks run only for the ops the section declares (all by default).

    Parameters
    ----------
    model : str
        Model dir (``source='dir'``) or a model name of ``source``.
    source : str, default 'dir'
    batch_size : int, default 32
    n_shuffles : int, default 4
        References per region for the DeepLIFT/SHAP check.
    motif : str, optional
        Motif for the marginalize check (default: the alphabet, e.g. ``ACGT``,
        cut to the sequence length).
    max_delta : float, default 1e-3
        Largest acceptable absolute convergence delta.
    random_state : int, default 0
        Seed of the references.
    kipoi_test : bool, default True
        Run ``kipoi test`` (False: report it as skipped).
    args : list of str, optional
        ``NAME=file.npy`` extra inputs for the product check (default: two rows
        of the example batch).
    device : str, optional
        Torch device of the op checks (default: cuda if available, else cpu).
    timeout : float, default 600
        Seconds allowed for ``kipoi test``.

    Returns
    -------
    TestReport
    """
    if not isinstance(model, str) or not model:
        raise ZooError(f"MODEL: expected a model dir or name, got {model!r}")
    if source == "dir":
        if not os.path.isdir(model):
            raise ZooError(f"model {model}: no such directory (with --source dir, MODEL is a path to a "
                           "directory holding model.yaml)")
        if not any(os.path.isfile(os.path.join(model, f)) for f in ("model.yaml", "model.yml")):
            raise ZooError(f"model {model}: {os.path.abspath(model)} has no model.yaml")
    if isinstance(n_shuffles, bool) or not isinstance(n_shuffles, int) or n_shuffles < 1:
        raise ZooError(f"--n_shuffles: expected a positive integer, got {n_shuffles!r}")
    if isinstance(max_delta, bool) or not isinstance(max_delta, (int, float)) or not max_delta > 0:
        raise ZooError(f"--max_delta: expected a positive number, got {max_delta!r}")
    from ._base import check_batch_size    # imports torch: after the cheap checks
    check_batch_size(batch_size)
    checks = []

    def timed(name, fn):
        import warnings
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                status, detail = fn()
            except Exception as e:
                from .adapter import _one_line
                status, detail = "FAIL", (_one_line(e) if isinstance(e, ValueError)
                                          else f"{type(e).__name__}: {_one_line(e)}")
        if status == "FAIL":
            # the ops' own diagnosis (e.g. "treated as linear") says why, where there is one
            hints = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
            hint = next((h for h in hints if "treated as linear" in h or "no DeepLIFT rule" in h), None)
            if hint:
                detail = f"{detail}; {hint.split(': ', 1)[-1]}"
            elif name == "deeplift-shap" and "do not add up" in detail:
                detail += " (a functional non-linearity in forward()? create each one as a module in __init__)"
        checks.append(Check(name, status, _short(detail, 400), time.perf_counter() - t0))
        return status

    if kipoi_test:
        timed("kipoi test", lambda: _check_kipoi(model, source, batch_size, timeout))
    else:
        checks.append(Check("kipoi test", "SKIP", "not run (kipoi_test=False / --skip_kipoi_test)", 0.0))

    from .adapter import load
    state = {}

    def section():
        state["target"] = tgt = load(model, source=source)
        spec = tgt.spec
        prov = spec.provenance
        parts = [f"ops {', '.join(spec.ops)} ({prov.get('ops', '')})"]
        if spec.sequence_name is not None:
            parts.append(f"sequence input {spec.sequence_name!r} layout {spec.layout or 'unknown'}")
        if spec.output_name is not None:
            parts.append(f"output {spec.output_name!r}")
        if spec.extra_inputs:
            parts.append(f"extra inputs {', '.join(spec.extra_inputs)}")
        if spec.problems:
            parts.append("notes: " + "; ".join(spec.problems.values()))
        return "PASS", "; ".join(parts)

    ok = timed("tanger section", section) == "PASS"
    tgt = state.get("target")
    names = ("predict", "deeplift-shap", "marginalize", "product")
    if not ok:
        for op in names:
            checks.append(Check(op, "SKIP", "the model or its tanger section does not load", 0.0))
        return TestReport(model, checks, False)

    with tempfile.TemporaryDirectory(prefix="kipoi-tanger-test-") as tmp:
        ctx = _OpChecks(tgt, tmp, batch_size=batch_size, n_shuffles=n_shuffles, motif=motif,
                        max_delta=float(max_delta), random_state=random_state, args=args, device=device)
        for op in names:
            if op not in tgt.spec.ops:
                checks.append(Check(op, "SKIP", "not declared (postprocessing: tanger: ops)", 0.0))
                continue
            if op != "predict" and "preds" not in ctx.state:
                checks.append(Check(op, "SKIP", "needs the predict check to pass first", 0.0))
                continue
            skip = ctx.skip_reason(op)
            if skip:
                checks.append(Check(op, "SKIP", skip, 0.0))
                continue
            timed(op, getattr(ctx, op.replace("-", "_")))
    return TestReport(model, checks, not any(c.status == "FAIL" for c in checks))


test.__test__ = False   # not a pytest test when imported into a test module


class _OpChecks:
    """The op checks of :func:`test` (each returns ``(status, detail)``)."""

    def __init__(self, target, tmp, batch_size, n_shuffles, motif, max_delta, random_state, args, device):
        self.t, self.tmp = target, tmp
        self.kw = dict(example=True, batch_size=batch_size, device=device, verbose=False)
        self.n_shuffles, self.motif, self.max_delta = n_shuffles, motif, max_delta
        self.random_state, self.args = random_state, args
        self.state = {}

    def _run(self, op, **kw):
        from .runner import run
        out = os.path.join(self.tmp, f"{op}.h5")
        run(op, self.t, [out], **self.kw, **kw)
        return out

    def skip_reason(self, op):
        spec = self.t.spec
        if op == "product" and not self.args:
            cands = self._product_candidates()
            if not cands:
                if spec.provenance.get("ops") == "declared":
                    return None   # declared without extra inputs: let it fail with the runner's message
                return "the model has no extra inputs (ops not declared: all by default)"
            missing = [c for c in cands if c not in spec.input_names and c not in spec.input_keys]
            if missing:
                return (f"extra input {missing[0]!r} is not a schema input, so the example batch has no values "
                        "for it; pass --args NAME=file.npy")
        return None

    def _product_candidates(self):
        spec = self.t.spec
        return list(spec.extra_inputs) or [n for k, n in zip(spec.input_keys, spec.input_names)
                                           if k != spec.sequence_input]

    def predict(self):
        import numpy as np
        out = self._run("predict")
        preds = _datasets(out, "preds")
        _all_finite(preds)
        self.state["preds"] = preds
        n = len(next(iter(preds.values())))
        self.state["n"] = n
        expect, decimal = (None, 7)
        if self.t.source == "dir":
            model_dir = os.path.abspath(self.t.name)
            expect, decimal = _expect_setting(model_dir)
            if isinstance(expect, str):
                run_dir, _ = _kipoi_run_dir(model_dir, expect)
                expect = os.path.join(run_dir, expect)
        if not (isinstance(expect, str) and os.path.isfile(expect)):
            return "PASS", f"{n} regions, finite (no local test.expect file to compare with)"
        want = _datasets(expect, "preds")
        if sorted(want) != sorted(preds):
            return "FAIL", (f"outputs {', '.join(sorted(preds))} differ from the expect file's "
                            f"{', '.join(sorted(want))}")
        tol = 1.5 * 10.0 ** (-int(decimal))
        worst = max(_maxdiff(preds[k], want[k]) if np.shape(preds[k]) == np.shape(want[k]) else float("inf")
                    for k in preds)
        if worst >= tol:
            return "FAIL", (f"kipoi-tanger predict differs from {os.path.basename(expect)} by up to {worst:.3g} "
                            f"(precision_decimal {decimal})")
        return "PASS", f"{n} regions; equal to {os.path.basename(expect)} to {decimal} decimals (max |diff| {worst:.1e})"

    def deeplift_shap(self):
        import numpy as np
        out = self._run("deeplift-shap", n_shuffles=self.n_shuffles, random_state=self.random_state)
        d = _datasets(out)
        _all_finite({"attributions": d["attributions"]})
        deltas = np.abs(np.asarray(d["convergence_deltas"], dtype=np.float64))
        worst = float(deltas.max()) if deltas.size else 0.0
        msg = (f"max |convergence delta| {worst:.1e} {'<' if worst < self.max_delta else '>='} {self.max_delta:g} "
               f"({len(deltas)} regions x {self.n_shuffles} shuffles)")
        if not worst < self.max_delta:
            i = int(deltas.argmax())
            return "FAIL", (msg + f"; worst region {i}: the attributions do not add up to the output difference")
        return "PASS", msg

    def _motif(self):
        from .runner import _sequence_length
        if self.motif:
            return self.motif
        L = _sequence_length(self.t.spec)
        m = "".join(self.t.spec.alphabet)
        return m[:L] if L else m

    def marginalize(self):
        motif = self._motif()
        out = self._run("marginalize", motif=motif)
        d = _datasets(out)
        _all_finite(d)
        preds = self.state["preds"]
        worst, effect = 0.0, 0.0
        for k, v in preds.items():
            b, a = "y_before" + k[len("preds"):], "y_after" + k[len("preds"):]
            if b not in d or a not in d:
                return "FAIL", f"marginalize wrote {', '.join(sorted(d))}; expected {b} and {a}"
            if d[b].shape != v.shape:
                return "FAIL", f"{b} has shape {d[b].shape}, predict's {k} {v.shape}"
            worst = max(worst, _maxdiff(d[b], v))
            effect = max(effect, _maxdiff(d[a], d[b]))
        tol = 1e-4 * max(1.0, max(float(abs(v).max()) if v.size else 0.0 for v in preds.values()))
        if worst > tol:
            return "FAIL", (f"predictions through the canonical (A, L) one-hot layout differ from predict by up to "
                            f"{worst:.3g}: check postprocessing: tanger: layout/alphabet")
        return "PASS", (f"motif {motif}: 'before' equals predict (max |diff| {worst:.1e}); "
                        f"max |after - before| {effect:.3g}")

    def product(self):
        import numpy as np
        spec = self.t.spec
        if self.args:
            out = self._run("product", args=list(self.args))
            d = _datasets(out, "preds")
            _all_finite(d)
            shapes = ", ".join(f"{k} {v.shape}" for k, v in d.items())
            return "PASS", f"--args {' '.join(self.args)}: {shapes}"
        cands = self._product_candidates()
        if not cands:
            return "FAIL", ("postprocessing: tanger: ops declares product, but the model has no extra inputs "
                            "(declare them with extra_inputs, or drop product from ops)")
        dl = self.t.make_dataloader(self.t.dataloader_args(example=True))
        batch = next(iter(dl.batch_iter(batch_size=2)))
        items = self.t.input_items(batch["inputs"])
        files, rows = [], None
        for name in cands:
            key = spec.input_keys[spec.input_names.index(name)] if name in spec.input_names else name
            arr = np.asarray(items[key])[:2]
            rows = len(arr) if rows is None else min(rows, len(arr))
            path = os.path.join(self.tmp, f"arg_{len(files)}.npy")
            np.save(path, arr)
            files.append(f"{name}={path}")
        out = self._run("product", args=files)
        d = _datasets(out, "preds")
        _all_finite(d)
        preds = self.state["preds"]
        k = len(cands)
        worst = 0.0
        for key, v in preds.items():
            if key not in d:
                return "FAIL", f"product wrote {', '.join(sorted(d))}; expected {key}"
            p = d[key]
            if p.shape[:1 + k] != (v.shape[0],) + (rows,) * k:
                return "FAIL", f"{key} has shape {p.shape}; expected ({v.shape[0]}, {', '.join([str(rows)] * k)}, ...)"
            for i in range(min(rows, len(v))):
                worst = max(worst, _maxdiff(p[(i,) + (i,) * k], v[i]))
        tol = 1e-4 * max(1.0, max(float(abs(v).max()) if v.size else 0.0 for v in preds.values()))
        if worst > tol:
            return "FAIL", f"product entries pairing each region with its own inputs differ from predict by {worst:.3g}"
        return "PASS", (f"{', '.join(cands)} x {rows} rows each: shape {next(iter(d.values())).shape}; "
                        f"own-row entries equal predict (max |diff| {worst:.1e})")


# ---------------------------------------------------------------------------
# command line


def _cfg_init(p):
    try:
        avail = list_templates()
        listing = "; ".join(f"{k}: {v}" for k, v in avail.items())
    except ZooError as e:
        listing = str(e)
    p.add_argument("name", metavar="NAME", help="model name = name of the new directory")
    p.add_argument("--template", default=DEFAULT_TEMPLATE,
                   help=f"template name or directory (default {DEFAULT_TEMPLATE}). Available: {listing}")
    p.add_argument("-o", "--output_dir", default=".", metavar="DIR", help="where to create NAME/ (default .)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files the template writes in an existing NAME/ (others are kept)")
    p.add_argument("--set", dest="params", nargs="+", default=[], metavar="KEY=VALUE",
                   help="template variables, e.g. --set seq_len=500 tasks=CTCF,GATA1 (see the template's "
                        "template.yaml)")
    p.add_argument("--seed", type=int, default=0, help="torch seed of the initial weights (default 0)")
    p.add_argument("--test_root", default=None, metavar="DIR",
                   help="directory `kipoi test` will run from; test: expect: is written relative to it "
                        "(default: the working directory when NAME/ lies inside it, else -o DIR)")
    p.add_argument("--dataloader", default="shared", choices=DATALOADER_MODES,
                   help="shared: point at dataloaders/<component> of this checkout by relative path (default); "
                        "copy: copy the loader into the model dir")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def _parse_params(pairs):
    out = {}
    for s in pairs:
        if "=" not in s:
            raise ZooError(f"--set: expected KEY=VALUE, got {s!r}")
        k, v = s.split("=", 1)
        out[k.strip()] = v
    return out


def _run_init(a):
    res = init(a.name, template=a.template, output_dir=a.output_dir, overwrite=a.overwrite, seed=a.seed,
               params=_parse_params(a.params), test_root=a.test_root, dataloader=a.dataloader)
    if not a.quiet:
        cwd = os.getcwd()
        where = "here" if os.path.abspath(res.test_root) == cwd else res.test_root
        rel = os.path.relpath(res.model_dir, cwd)
        print(f"created {rel}/ ({', '.join(res.files)})\n"
              f"check it, from {where}:\n"
              f"  kipoi test {res.model_path} --source dir\n"
              f"  kipoi-tanger test {res.model_path}\n"
              f"then read {os.path.join(rel, 'README.md')} to make it yours")
        checkout = _checkout_dir()
        if a.dataloader == "shared" and checkout and not _is_within(res.model_dir, checkout):
            print(f"note: its dataloader.yaml loads the shared loader from {checkout}/dataloaders by relative "
                  "path; pass --dataloader copy for a self-contained model dir")
    return 0


def _cfg_test(p):
    p.add_argument("model", metavar="MODEL", help="model dir (--source dir, the default) or a model name")
    p.add_argument("--source", default="dir", help="Kipoi model source (default dir)")
    p.add_argument("--batch_size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--n_shuffles", type=int, default=4,
                   help="dinucleotide-shuffled references per region for the DeepLIFT/SHAP check (default 4)")
    p.add_argument("--max_delta", type=float, default=1e-3,
                   help="largest acceptable |convergence delta| of DeepLIFT/SHAP (default 1e-3)")
    p.add_argument("--motif", default=None, help="motif for the marginalize check (default: the alphabet, ACGT)")
    p.add_argument("--random_state", type=int, default=0, help="seed of the references (default 0)")
    p.add_argument("--args", nargs="+", default=None, metavar="NAME=NPY",
                   help="extra inputs for the product check (default: two rows of the example batch)")
    p.add_argument("--device", default=None, help="torch device of the op checks (default: cuda if available)")
    p.add_argument("--skip_kipoi_test", action="store_true", help="do not run `kipoi test`")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")


def _run_test(a):
    rep = test(a.model, source=a.source, batch_size=a.batch_size, n_shuffles=a.n_shuffles, motif=a.motif,
               max_delta=a.max_delta, random_state=a.random_state, kipoi_test=not a.skip_kipoi_test,
               args=a.args, device=a.device)
    if a.json:
        print(json.dumps({"model": rep.model, "passed": rep.passed, "checks": [c._asdict() for c in rep.checks]},
                         indent=2))
    else:
        print(rep.format())
    return 0 if rep.passed else 1


def register_commands(register):
    """Add ``init`` and ``test`` to the ``kipoi-tanger`` command line."""
    register("init", "create a new zoo model dir from a template (weights + expect file included)",
             _cfg_init, _run_init)
    register("test", "kipoi test plus kipoi-tanger's checks (tanger section, every declared op, DeepLIFT deltas)",
             _cfg_test, _run_test)
