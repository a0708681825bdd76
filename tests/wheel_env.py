"""Build kipoi_tanger's wheel and install it into a fresh venv that reuses this venv's packages.

Used by tests/test_wheel.py (and by hand: ``python tests/wheel_env.py DIR`` builds into DIR and prints
the venv's python). The fresh venv has no pip and no setuptools of its own; this environment's
site-packages are made visible through one ``.pth`` path line to a directory of symlinks that leaves
out kipoi_tanger itself (the editable install), every ``.pth`` file, and setuptools with its
``pkg_resources`` (so the start-up hook's stand-in is what Kipoi gets, as under setuptools >= 81).
Nothing is downloaded: the wheel is installed with ``--no-deps --no-index``.
"""
import atexit
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "CHANGELOG.md", "kipoi_tanger",
           "example_models", "model_templates", "dataloaders", "workflows")
HIDDEN = ("kipoi_tanger", "__editable__", "setuptools", "pkg_resources", "_distutils_hack")


def build_wheel(out_dir: str) -> str:
    """Copy the source tree (working copy, caches left out) and build the wheel from it; returns its path."""
    src = os.path.join(out_dir, "src")
    os.makedirs(src)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.partial", "downloaded")
    for name in SOURCES:
        path = os.path.join(REPO, name)
        if os.path.isdir(path):
            shutil.copytree(path, os.path.join(src, name), ignore=ignore)
        elif os.path.isfile(path):
            shutil.copy2(path, os.path.join(src, name))
    dist = os.path.join(out_dir, "dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", dist, src], check=True, capture_output=True, text=True)
    (wheel,) = glob.glob(os.path.join(dist, "kipoi_tanger-*.whl"))
    return wheel


def overlay_site_packages(dst: str, hidden=HIDDEN) -> str:
    """A directory of symlinks to this venv's site-packages entries, less ``hidden`` ones and ``.pth`` files."""
    site = sysconfig.get_paths()["purelib"]
    os.makedirs(dst)
    for name in sorted(os.listdir(site)):
        if name.endswith(".pth") or name.startswith(hidden) or name == "__pycache__":
            continue
        os.symlink(os.path.join(site, name), os.path.join(dst, name))
    return dst


def make_venv(root: str, wheel: str) -> str:
    """A venv under ``root`` with the wheel installed and this venv's packages visible; returns its bin dir."""
    venv = os.path.join(root, "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    py = os.path.join(venv, "bin", "python")
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    overlay = overlay_site_packages(os.path.join(root, "overlay"))
    with open(os.path.join(site, "_reuse_test_venv.pth"), "w") as fh:
        fh.write(overlay + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "--quiet", "--no-deps", "--no-index",
                    "--no-compile", wheel], check=True, capture_output=True, text=True)
    # what `pip install kipoi` would have put there: the kipoi console script
    kipoi = os.path.join(venv, "bin", "kipoi")
    with open(kipoi, "w") as fh:
        fh.write(f"#!{py}\nimport sys\nfrom kipoi.__main__ import main\nif __name__ == '__main__':\n"
                 "    sys.exit(main())\n")
    os.chmod(kipoi, 0o755)
    return os.path.join(venv, "bin")


_SESSION = {}


def session_venv() -> dict:
    """The wheel and its venv, built once per process (tests/test_wheel.py and tests/test_readme.py share them).

    Returns ``{'wheel': path, 'bin': venv bin dir, 'root': tmp dir}``; removed at exit.
    """
    if "bin" not in _SESSION:
        root = tempfile.mkdtemp(prefix="kipoi-tanger-wheel-")
        atexit.register(shutil.rmtree, root, True)
        _SESSION["root"] = root
        _SESSION["wheel"] = build_wheel(os.path.join(root, "build"))
        _SESSION["bin"] = make_venv(root, _SESSION["wheel"])
    return dict(_SESSION)


def user_env(bin_dir: str, home: str) -> dict:
    """The environment of a user of that venv: its bin dir first on PATH, a throwaway HOME."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HOME=home, PATH=f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", KIPOI_TANGER_TEST_HOME=home)
    return env


if __name__ == "__main__":
    root = os.path.abspath(sys.argv[1])
    print(os.path.join(make_venv(root, build_wheel(root)), "python"))
