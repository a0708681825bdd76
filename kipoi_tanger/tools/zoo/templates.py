"""``kipoi-tanger init``: a new zoo model dir from a template.

:func:`init` renders a template from the shipped ``model_templates/``
(:func:`~kipoi_tanger.tools.zoo.data.data_dir`) into a new Kipoi model dir, writes seeded initial weights and the
``test.expect.h5`` file, so the fresh model passes ``kipoi test`` and
``kipoi-tanger test`` (:mod:`~kipoi_tanger.tools.zoo.checks`) untouched.

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
import tempfile
from typing import List, NamedTuple, Optional

from ...adapter.errors import one_line, suggest
from .data import ZooError, data_dir

__all__ = ["ZooError", "Template", "InitResult", "init", "render", "templates_dir", "list_templates",
           "shared_dataloader", "write_expect", "run_script", "is_within", "next_steps", "parse_set",
           "TEMPLATES_ENV", "DEFAULT_TEMPLATE", "EXPECT_FILE", "DATALOADER_MODES"]

TEMPLATES_ENV = "KIPOI_TANGER_TEMPLATES"
DEFAULT_TEMPLATE = "pytorch_onehot"
COMMON = "_common"
EXPECT_FILE = "test.expect.h5"
DATALOADER_MODES = ("auto", "shared", "copy")
SHARED_MODULE = "_shared.py"     # dataloaders/_shared.py: the module every shared component loads by path

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_MODEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_LABEL = re.compile(r"[A-Za-z0-9_.:+-]+")
_VAR_TYPES = ("int", "str", "list")
_DERIVED = ("name", "class_name", "seed", "expect_path", "model_path", "test_root_hint", "kipoi_tanger_version",
            "dataloader_defined_as", "dataloader_note")


# ---------------------------------------------------------------------------
# locating templates and shared dataloaders (shipped in the package: see .data)


def templates_dir() -> str:
    """The directory holding the templates: ``$KIPOI_TANGER_TEMPLATES``, else the shipped
    ``model_templates/`` (:func:`~kipoi_tanger.tools.zoo.data.data_dir`).

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
    try:
        return data_dir("model_templates")
    except ZooError as e:
        raise ZooError(f"model templates not found: {e}; or set ${TEMPLATES_ENV}") from None


def list_templates() -> dict:
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


def shared_dataloader(component: str) -> str:
    """Path of the shipped ``dataloaders/<component>/dataloader.py``."""
    try:
        root = data_dir("dataloaders")
    except ZooError as e:
        raise ZooError(f"shared dataloader component {component!r} not found: {e}") from None
    path = os.path.join(root, component, "dataloader.py")
    if not os.path.isfile(path):
        raise ZooError(f"shared dataloader component {component!r} not found ({path})")
    return path


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
            raise ZooError(f"--template: unknown template {template!r}{suggest(template, available)}; "
                           f"available: {', '.join(available) or 'none'}")
        return cls(os.path.join(templates_dir(), template))

    def coerce(self, name, value, where="--set"):
        """Validate and convert one variable value (strings from the command line included)."""
        spec = self.variables.get(name)
        if spec is None:
            raise ZooError(f"{where}: template {self.name} has no variable {name!r}{suggest(name, self.variables)}; "
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


def render(text: str, variables: dict, where: str = "template") -> str:
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


def is_within(path: str, root: str) -> bool:
    """True when ``path`` lies inside ``root``."""
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
    dataloader: str = "shared"   # 'shared' (loads the shipped component by relative path) or 'copy'


def write_expect(model_dir: str, batch_size: int = 32, path: Optional[str] = None) -> str:
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
    from ..._base import check_batch_size
    from ...adapter.target import kipoi_predict_example
    check_batch_size(batch_size)
    model_dir = os.path.abspath(model_dir)
    path = os.path.abspath(path or os.path.join(model_dir, EXPECT_FILE))
    tmp_dir = tempfile.mkdtemp(prefix=".expect-", dir=os.path.dirname(path))
    tmp = os.path.join(tmp_dir, EXPECT_FILE)
    try:
        try:
            kipoi_predict_example(model_dir, tmp, batch_size=batch_size)
        except Exception as e:
            raise ZooError(f"{model_dir}: cannot write {os.path.basename(path)}: {type(e).__name__}: "
                           f"{one_line(e)}") from None
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


def run_script(model_dir: str, fname: str, argv: List[str]) -> None:
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
        raise ZooError(f"{fname} failed: {type(e).__name__}: {one_line(e)}") from None


def init(name: str, template: str = DEFAULT_TEMPLATE, output_dir: str = ".", overwrite: bool = False, seed: int = 0,
         params: Optional[dict] = None, test_root: Optional[str] = None, dataloader: str = "auto",
         batch_size: int = 32) -> "InitResult":
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
    dataloader : {'auto', 'shared', 'copy'}, default 'auto'
        'shared': the thin dataloader.yaml points at the shipped
        ``dataloaders/<component>`` by relative path (the zoo convention);
        'copy': copy that file (and ``dataloaders/_shared.py``, which it loads)
        into the model dir (a self-contained model dir, e.g. after a plain
        ``pip install``); 'auto': 'shared' when the model dir lies in the tree
        that holds ``dataloaders/`` (a checkout's ``example_models/``), else 'copy'.
    batch_size : int, default 32
        Batch size used to write the expect file.

    Returns
    -------
    InitResult
    """
    from ... import __version__
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
    if dataloader == "auto":
        dataloader = "shared" if is_within(model_dir, os.path.dirname(os.path.dirname(os.path.dirname(shared)))) \
            else "copy"

    if test_root is None:
        root = os.getcwd() if is_within(model_dir, os.getcwd()) else output_dir
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
            # the components load dataloaders/_shared.py by path: it travels with the copy
            common = os.path.join(os.path.dirname(os.path.dirname(shared)), SHARED_MODULE)
            if os.path.isfile(common):
                shutil.copyfile(common, os.path.join(staging, SHARED_MODULE))
        if os.path.isfile(os.path.join(staging, "make_example_files.py")):
            run_script(staging, "make_example_files.py", ["--model_dir", staging])
        if not os.path.isfile(os.path.join(staging, "make_weights.py")):
            raise ZooError(f"template {tpl.name} has no make_weights.py (model_templates/{COMMON}/ provides one)")
        run_script(staging, "make_weights.py", ["--seed", str(seed), "--model_dir", staging])
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
    return InitResult(model_dir, sorted(_posix(w) for w in written), root, rel, expect_path, dataloader)


def next_steps(res: InitResult) -> str:
    """What ``kipoi-tanger init`` prints after creating a model dir: how to check it."""
    cwd = os.getcwd()
    where = "here" if os.path.abspath(res.test_root) == cwd else res.test_root
    rel = os.path.relpath(res.model_dir, cwd)
    text = (f"created {rel}/ ({', '.join(res.files)})\n"
            f"check it, from {where}:\n"
            f"  kipoi test {res.model_path} --source dir\n"
            f"  kipoi-tanger test {res.model_path}\n"
            f"then read {os.path.join(rel, 'README.md')} to make it yours")
    if res.dataloader == "shared":
        root = os.path.dirname(data_dir("dataloaders"))
        if not is_within(res.model_dir, root):
            text += (f"\nnote: its dataloader.yaml loads the shared loader from {root}/dataloaders by relative "
                     "path; pass --dataloader copy for a self-contained model dir")
    return text


def parse_set(pairs: List[str]) -> dict:
    """``--set KEY=VALUE ...`` → ``{key: value}`` (values converted by the template)."""
    out = {}
    for s in pairs:
        if "=" not in s:
            raise ZooError(f"--set: expected KEY=VALUE, got {s!r}")
        k, v = s.split("=", 1)
        out[k.strip()] = v
    return out
