"""The .pth start-up hook (kipoi_tanger/_kipoi_hook.py) never raises and stays quiet, and
TensorFlow is only ever imported when a Keras model is loaded."""
import os
import subprocess
import sys
import textwrap

from kipoi_tanger import _kipoi_hook as hook

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, tmp_path, env_extra=None, pythonpath=None):
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("KIPOI_TANGER_NO_HOOK", None)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=300)


def test_python_start_is_silent_and_the_hook_is_active(tmp_path):
    p = _python("pass", tmp_path)
    assert p.returncode == 0 and p.stderr == "" and p.stdout == ""
    p = _python("import sys; print(any(type(f).__name__ == 'KipoiPatchFinder' for f in sys.meta_path))",
                tmp_path)
    assert p.stdout.strip() == "True", "the .pth start-up hook is not installed in this environment"


def test_broken_kipoi_gives_one_line_per_patch_and_no_traceback(tmp_path):
    """A Kipoi whose modules lack what the patches expect: imports still succeed."""
    fake = tmp_path / "site"
    (fake / "kipoi").mkdir(parents=True)
    for name in ("__init__", "plugin", "model", "writers"):
        (fake / "kipoi" / f"{name}.py").write_text("X = 1\n")
    p = _python("""
        import kipoi.plugin, kipoi.model, kipoi.writers
        print('imported')
    """, tmp_path, pythonpath=fake)
    assert p.returncode == 0 and p.stdout.strip() == "imported", p.stderr
    assert "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert lines and all(line.startswith("kipoi_tanger: could not patch kipoi.") for line in lines), lines
    assert {line.split()[4].rstrip(":") for line in lines} == {"kipoi.plugin", "kipoi.model"}
    # and a start-up with that Kipoi is silent
    assert _python("pass", tmp_path, pythonpath=fake).stderr == ""


def test_missing_kipoi_is_silent(tmp_path):
    fake = tmp_path / "site"
    (fake / "kipoi").mkdir(parents=True)
    (fake / "kipoi" / "__init__.py").write_text("raise ImportError('No module named kipoi (simulated)')\n")
    p = _python("import kipoi_tanger, kipoi_tanger.frameworks", tmp_path, pythonpath=fake)
    assert p.returncode == 0 and p.stderr == ""


def test_install_never_raises(tmp_path):
    """install() sits outside the .pth line's try: a failure inside must not escape."""
    p = _python("""
        import sys
        from kipoi_tanger import _kipoi_hook as hook
        sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != 'KipoiPatchFinder']

        class Exploding(list):
            def insert(self, *a):
                raise RuntimeError('boom')
        sys.meta_path = Exploding(sys.meta_path)
        print(hook.install())
        sys.modules['kipoi.plugin'] = object()     # an 'already imported' module the patch cannot handle
        sys.meta_path = list(sys.meta_path)
        print(type(hook.install()).__name__)
    """, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["None", "KipoiPatchFinder"]
    assert "Traceback" not in p.stderr
    assert p.stderr.startswith("kipoi_tanger: could not patch")
    assert _python("from kipoi_tanger._kipoi_hook import install; print(install())", tmp_path,
                   env_extra={"KIPOI_TANGER_NO_HOOK": "1"}).stdout.strip() == "None"


def test_failing_patch_and_failing_finder(tmp_path, capsys, monkeypatch):
    """In-process: a patch that raises, and another finder that raises, never break an import."""
    (tmp_path / "kt_hook_target.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    finder = hook.KipoiPatchFinder()
    finder.pending = {"kt_hook_target": lambda m: 1 / 0}

    class Broken:
        def find_spec(self, *a, **k):
            raise RuntimeError("broken finder")
    sys.meta_path.insert(0, finder)
    try:
        import kt_hook_target
        assert kt_hook_target.VALUE == 42
        assert finder.find_spec("kt_other") is None
        finder.pending = {"kt_hook_target2": lambda m: None}
        sys.meta_path.insert(1, Broken())
        assert finder.find_spec("kt_hook_target2") is None         # swallowed, import machinery goes on
    finally:
        sys.meta_path[:] = [f for f in sys.meta_path if f is not finder and not isinstance(f, Broken)]
        sys.modules.pop("kt_hook_target", None)
    err = capsys.readouterr().err
    assert err.strip() == "kipoi_tanger: could not patch kt_hook_target: ZeroDivisionError: division by zero"


def test_tensorflow_stays_unimported(tmp_path):
    """Importing kipoi_tanger (and its Keras and TensorFlow modules) or running a torch model never
    imports TensorFlow; the patched kipoi.model hands `type: keras` to kipoi_tanger.KerasModel and
    `type: tensorflow` to kipoi_tanger's TensorFlowModel."""
    p = _python(f"""
        import sys
        import kipoi_tanger, kipoi, kipoi.model
        import kipoi_tanger.frameworks.keras, kipoi_tanger.frameworks.keras_to_torch
        assert kipoi.model.AVAILABLE_MODELS['keras'] is kipoi_tanger.KerasModel
        assert kipoi.model.KerasModel is kipoi_tanger.KerasModel
        import kipoi_tanger.frameworks.tensorflow as ktf
        assert kipoi.model.AVAILABLE_MODELS['tensorflow'] is kipoi.model.TensorFlowModel is ktf.TensorFlowModel
        assert ktf.TensorFlowModel.kipoi_original.__module__ == 'kipoi.model'
        import numpy as np, torch
        from kipoi_tanger.predict import predict
        net = torch.nn.Sequential(torch.nn.Conv1d(4, 2, 3), torch.nn.ReLU())
        predict(net, torch.zeros(2, 4, 10), device='cpu')
        m = kipoi.get_model({os.path.join(REPO, 'example_models', 'motif_cnn')!r}, source='dir',
                            with_dataloader=False)
        m.predict_on_batch(np.zeros((2, 4, 500), np.float32))
        print(sorted(n for n in ('tensorflow', 'tf_keras', 'keras') if n in sys.modules))
    """, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == "[]"
