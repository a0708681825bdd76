"""``kipoi-tanger test``: Kipoi's own ``kipoi test`` plus kipoi_tanger's checks of a model.

The op checks go through the op registry and the op objects
(:mod:`kipoi_tanger.ops`): every registered op the model's tanger section
declares is run on the dataloader's example files with
:func:`kipoi_tanger.run.run`, its parameters validated by the op's own
declarations. Ops with an invariant worth checking have a check here
(:data:`OP_CHECKS`: predict equals ``test.expect.h5``, DeepLIFT deltas are
small, marginalize's "before" equals predict, product's own-row entries equal
predict); any other op gets the default check: it runs and writes finite
numbers.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, NamedTuple, Optional

from ...adapter.errors import one_line
from .data import ZooError

__all__ = ["test", "Check", "TestReport", "kipoi_executable", "resolve_expect", "OP_CHECKS"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


def _model_dir(model, source):
    """The model's directory, for any Kipoi source (None when Kipoi cannot say)."""
    if source == "dir":
        return os.path.abspath(model)
    try:
        from ...adapter.target import import_kipoi
        return import_kipoi().config.get_source(source).get_model_dir(model)
    except Exception:
        return None


def _expect_setting(model_dir):
    """``(test: expect:, precision_decimal)`` of a model dir's model.yaml."""
    from ...adapter.section import read_model_yaml
    raw = (read_model_yaml(model_dir) or {}) if model_dir else {}
    t = raw.get("test") if isinstance(raw, dict) else None
    if not isinstance(t, dict):
        return None, 7
    return t.get("expect"), t.get("precision_decimal", 7)


def resolve_expect(model_dir: Optional[str], expect) -> Optional[str]:
    """The file a relative ``test: expect:`` path names, from any working directory.

    Kipoi resolves it against the working directory; the zoo writes it relative
    to the directory that holds the zoo (``example_models/NAME/test.expect.h5``)
    and ``kipoi-tanger init`` relative to its ``test_root``. So: the working
    directory first (as Kipoi), then the model dir and each of its parents.
    Returns None for remote (``{url, md5}``) or unresolvable values.
    """
    if not isinstance(expect, str) or not expect:
        return None
    if os.path.isabs(expect):
        return expect if os.path.isfile(expect) else None
    here = os.path.abspath(expect)
    if os.path.isfile(here):
        return here
    d = model_dir
    while d:
        if os.path.isfile(os.path.join(d, expect)):
            return os.path.join(d, expect)
        parent = os.path.dirname(d)
        d = parent if parent != d else None
    return None


def _check_kipoi(model, source, batch_size, timeout):
    exe = kipoi_executable()
    if exe is None:
        return "FAIL", "the kipoi executable is not installed in this environment (pip install kipoi)"
    expect, _ = _expect_setting(_model_dir(model, source))
    cmd = [exe, "test", model, "--source", source, "--batch_size", str(batch_size)]
    found, note = resolve_expect(_model_dir(model, source), expect), ""
    if found is not None and found != os.path.abspath(expect):
        # Kipoi would look for it under the working directory: hand it the file
        cmd += ["--expect", found]
        note = f" (test: expect {expect} resolved to {found}; plain `kipoi test` resolves it against the cwd)"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
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
        pick = "Model predictions don't match the expected predictions in " + str(found or expect)
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


def test(model: str, source: str = "dir", batch_size: int = 32, n_shuffles: int = 4, motif: Optional[str] = None,
         max_delta: float = 1e-3, random_state: int = 0, kipoi_test: bool = True, args: Optional[list] = None,
         device: Optional[str] = None, timeout: float = 600) -> TestReport:
    """Kipoi's ``kipoi test`` plus kipoi_tanger's checks of a model.

    Checks, in order (each PASS, FAIL or SKIP with a one-line detail):

    1. ``kipoi test``: the real ``kipoi`` executable in a subprocess (a fresh
       process, as contributors and CI run it), from the working directory,
       for any source. A relative ``test: expect:`` that does not resolve
       there is looked up from the model dir and its parents
       (:func:`resolve_expect`) and handed to ``kipoi test --expect`` (the
       detail then says so), so the check passes from any directory.
    2. ``tanger section``: the model loads through the adapter and its
       ``postprocessing: tanger:`` section is valid (known keys and ops, a
       layout matching the schema, ...).
    3. ``predict``: runs on the example files; equal to ``test.expect.h5``
       (to its ``precision_decimal``) when the model has one.
    4. ``deeplift-shap``: runs with ``n_shuffles`` references (and the rules
       declared under ``deeplift_rules``); a model refused by name, or a first
       batch whose deltas exceed ``max_delta``, fails with the run's one line
       naming the suspects; every region's convergence delta (sum of
       attributions minus the output difference) is below ``max_delta``.
    5. ``marginalize``: inserting ``motif`` runs; its "before" predictions,
       made through the canonical one-hot layout, equal ``predict``'s.
    6. ``product``: crosses the sequences with two rows of every extra input
       (taken from the example batch, or ``args``); the entries that pair
       each region with its own row equal ``predict``'s.
    7. ``ism``: saturation mutagenesis of (at most) 8 central positions runs;
       its ``y0``, made through the canonical one-hot layout, equals
       ``predict``'s. ``variant-effect`` needs a VCF and a FASTA: SKIP.

    Op checks run for the registered ops the section declares (all by
    default); an op without a check of its own must run on the example
    files and write finite numbers.

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
    from ...ops import OpError, get, names
    registered = names()
    try:     # validated by the ops' own declarations
        dls = {p.name: p for p in get("deeplift-shap").params}
        n_shuffles = dls["n_shuffles"].validate(n_shuffles)
        random_state = dls["random_state"].validate(random_state)
    except OpError as e:
        raise ZooError(str(e)) from None
    if isinstance(max_delta, bool) or not isinstance(max_delta, (int, float)) or not max_delta > 0:
        raise ZooError(f"--max_delta: expected a positive number, got {max_delta!r}")
    from ..._base import check_batch_size    # imports torch: after the cheap checks
    check_batch_size(batch_size)
    if device is not None:
        from ...run import check_device
        check_device(device)
    checks = []

    def timed(name, fn):
        import warnings
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                status, detail = fn()
            except Exception as e:
                status, detail = "FAIL", (one_line(e) if isinstance(e, ValueError)
                                          else f"{type(e).__name__}: {one_line(e)}")
        if status == "FAIL" and "suspects:" not in detail:
            # deep_lift_shap's own diagnosis of a later batch names the suspects (a first batch
            # that does not add up is refused by the run with them already)
            hints = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
            hint = next((h for h in hints if "suspects: " in h), None)
            if hint:
                detail = f"{detail}; suspects: {hint.split('suspects: ', 1)[-1]}"
        checks.append(Check(name, status, _short(detail, 400), time.perf_counter() - t0))
        return status

    if kipoi_test:
        timed("kipoi test", lambda: _check_kipoi(model, source, batch_size, timeout))
    else:
        checks.append(Check("kipoi test", "SKIP", "not run (kipoi_test=False / --skip_kipoi_test)", 0.0))

    from ...adapter.target import load
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
    if not ok:
        for op in registered:
            checks.append(Check(op, "SKIP", "the model or its tanger section does not load", 0.0))
        return TestReport(model, checks, False)

    with tempfile.TemporaryDirectory(prefix="kipoi-tanger-test-") as tmp:
        ctx = _OpChecks(tgt, tmp, batch_size=batch_size, n_shuffles=n_shuffles, motif=motif,
                        max_delta=float(max_delta), random_state=random_state, args=args, device=device)
        for op in registered:
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
            timed(op, lambda: ctx.check(op))
    return TestReport(model, checks, not any(c.status == "FAIL" for c in checks))


test.__test__ = False   # not a pytest test when imported into a test module


class _OpChecks:
    """The op checks of :func:`test` (each returns ``(status, detail)``; see :data:`OP_CHECKS`)."""

    def __init__(self, target, tmp, batch_size, n_shuffles, motif, max_delta, random_state, args, device):
        self.t, self.tmp = target, tmp
        self.kw = dict(example=True, batch_size=batch_size, device=device, verbose=False)
        self.n_shuffles, self.motif, self.max_delta = n_shuffles, motif, max_delta
        self.random_state, self.args = random_state, args
        self.state = {}

    def _run(self, op, **kw):
        from ...run import run
        out = os.path.join(self.tmp, f"{op}.h5")
        run(op, self.t, [out], **self.kw, **kw)
        return out

    def check(self, op):
        """Run ``op``'s check (its own from :data:`OP_CHECKS`, else :meth:`default`)."""
        fn = OP_CHECKS.get(op)
        return fn(self) if fn is not None else self.default(op)

    def default(self, op):
        """Any op: it runs on the example files with its defaults and writes finite numbers."""
        out = self._run(op)
        d = _datasets(out)
        _all_finite(d)
        n = len(next(iter(d.values()))) if d else 0
        return "PASS", f"{n} regions, finite; wrote {', '.join(sorted(d))}"

    def skip_reason(self, op):
        spec = self.t.spec
        from ...ops import get
        backend = getattr(self.t, "backend", None)
        note = str(getattr(backend, "graph_note", "") or "")
        if get(op).needs_graph and spec.provenance.get("ops") != "declared" and note.startswith("unavailable"):
            return f"needs a torch graph: {note} (ops not declared: all by default)"
        if op not in OP_CHECKS:
            from ...ops import get
            needs = [p.option for p in get(op).params if p.required]
            if needs:
                return f"needs {', '.join(needs)}: no example value (no check of its own in kipoi-tanger test)"
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
        model_dir = _model_dir(self.t.name, self.t.source)
        expect, decimal = _expect_setting(model_dir)
        expect = resolve_expect(model_dir, expect)
        if expect is None:
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
        # the run itself refuses a first batch whose deltas exceed max_delta (naming the suspects)
        out = self._run("deeplift-shap", n_shuffles=self.n_shuffles, random_state=self.random_state,
                        warning_threshold=self.max_delta)
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
        if self.motif:
            return self.motif
        L = self.t.spec.sequence_length
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
        from ...adapter.dataloading import first_batch
        batch = first_batch(self.t, self.t.dataloader_args(example=True), batch_size=2)
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

    def ism(self):
        """ISM of (at most) 8 central positions: its ``y0`` equals predict's predictions."""
        L = self.t.spec.sequence_length
        W = min(8, L) if L else 4
        s = (L - W) // 2 if L else 0
        out = self._run("ism", window=f"{s}:{s + W}")
        d = _datasets(out)
        _all_finite(d)
        preds = self.state["preds"]
        worst = 0.0
        for k, v in preds.items():
            y0 = "y0" + k[len("preds"):]
            if y0 not in d or d[y0].shape != v.shape:
                return "FAIL", f"ism wrote {', '.join(sorted(d))}; expected {y0} shaped like predict's {k} {v.shape}"
            worst = max(worst, _maxdiff(d[y0], v))
        tol = 1e-4 * max(1.0, max(float(abs(v).max()) if v.size else 0.0 for v in preds.values()))
        if worst > tol:
            return "FAIL", (f"ism's y0 (through the canonical one-hot layout) differs from predict by up to "
                            f"{worst:.3g}: check postprocessing: tanger: layout/alphabet")
        shapes = ", ".join(f"{k} {d[k].shape}" for k in sorted(d) if k.startswith("ism"))
        return "PASS", f"window {s}:{s + W}: y0 equals predict (max |diff| {worst:.1e}); {shapes}"


    def _before_equals_predict(self, op, out, before="y_before"):
        """``before`` datasets of ``out`` equal predict's predictions (through the canonical layout)."""
        d = _datasets(out)
        _all_finite(d)
        preds = self.state["preds"]
        worst = 0.0
        for k, v in preds.items():
            b = before + k[len("preds"):]
            if b not in d or d[b].shape != v.shape:
                return None, f"{op} wrote {', '.join(sorted(d))}; expected {b} shaped like predict's {k} {v.shape}"
            worst = max(worst, _maxdiff(d[b], v))
        tol = 1e-4 * max(1.0, max(float(abs(v).max()) if v.size else 0.0 for v in preds.values()))
        if worst > tol:
            return None, (f"{op}'s {before} (through the canonical one-hot layout) differs from predict by up to "
                          f"{worst:.3g}: check postprocessing: tanger: layout/alphabet")
        return d, worst

    def ablate(self):
        """Two mono-shuffles of the whole sequence: ``y_before`` equals predict's predictions."""
        d, worst = self._before_equals_predict("ablate", self._run("ablate", start=0, end=-1, n=2,
                                                                   random_state=self.random_state))
        if d is None:
            return "FAIL", worst
        shapes = ", ".join(f"{k} {d[k].shape}" for k in sorted(d) if k.startswith("y_after"))
        return "PASS", f"start 0, end -1, n 2: y_before equals predict (max |diff| {worst:.1e}); {shapes}"

    def space(self):
        """The alphabet's first two letters as motifs, one spacing: ``y_before`` equals predict's."""
        motifs = list(self.t.spec.alphabet[:2])
        d, worst = self._before_equals_predict("space", self._run("space", motifs=motifs, spacing=[[1]]))
        if d is None:
            return "FAIL", worst
        return "PASS", f"motifs {' '.join(motifs)}, spacing 1: y_before equals predict (max |diff| {worst:.1e})"


#: op name -> its check in ``kipoi-tanger test`` (other ops get :meth:`_OpChecks.default`)
OP_CHECKS: Dict[str, Callable[[_OpChecks], tuple]] = {
    "predict": _OpChecks.predict,
    "deeplift-shap": _OpChecks.deeplift_shap,
    "marginalize": _OpChecks.marginalize,
    "product": _OpChecks.product,
    "ism": _OpChecks.ism,
    "ablate": _OpChecks.ablate,
    "space": _OpChecks.space,
}
