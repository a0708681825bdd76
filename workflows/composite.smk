# Composite model whose sub-models cannot share one environment (seed 004, scenario 3).
#
#   snakemake -s workflows/composite.smk --configfile workflows/config/composite.yaml --cores 2
#   snakemake ... --config shared_env=true     # CI: one existing environment for every model
#
# 1. env:     one virtual environment per model (venv + pip, not conda): the local torch wheel first
#             (`torch` in the config; an unpinned torch would pull a multi-GB CUDA build), then the
#             model's and its dataloader's `dependencies: pip:` entries; names listed under
#             `local_packages` (kipoi_tanger) come from wheels built from local source trees.
# 2. predict: `kipoi-tanger predict MODEL --keep_metadata` of every sub-model, in its own
#             environment, into OUTDIR/<name>.h5.
# 3. final:   the ensembling model, whose dataloader (dataloaders/hdf5_predictions) reads those files
#             as inputs named after the models, aligned by region id, into OUTDIR/<final name>.h5.
import json
import os
import shlex
import sys

import yaml


def fail(msg):
    raise ValueError(f"composite.smk: {msg}")


if not config:
    fail("no configuration; pass --configfile (see workflows/config/composite.yaml)")
for key in config:
    if key not in ("models", "final", "outdir", "envs_dir", "shared_env", "python", "torch", "local_packages",
                   "pip_args", "batch_size"):
        fail(f"unknown config key {key!r}")
OUT = str(config.get("outdir", "workflows/results/composite"))
ENVS = str(config.get("envs_dir", "workflows/envs"))
SHARED = bool(config.get("shared_env", False))
PY = str(config.get("python") or sys.executable)
TORCH = str(config.get("torch", "torch==2.13.0"))
LOCAL = {str(k).lower().replace("-", "_"): str(v) for k, v in (config.get("local_packages") or {}).items()}
PIP_ARGS = [str(a) for a in (config.get("pip_args") or [])]
BATCH = int(config.get("batch_size", 32))


def read_yaml(path, what):
    try:
        with open(path) as fh:
            return yaml.safe_load(fh) or {}
    except OSError as e:
        fail(f"{what}: cannot read {path} ({e.strerror})")


def model_dir(value, what):
    d = str(value)
    if not os.path.isfile(os.path.join(d, "model.yaml")):
        fail(f"{what}: {d} has no model.yaml (relative paths are relative to {os.getcwd()})")
    return d


def pip_requirements(d, what):
    """`dependencies: pip:` of the model and of its default dataloader, in order, without repeats."""
    m = read_yaml(os.path.join(d, "model.yaml"), what)
    reqs = list(((m.get("dependencies") or {}).get("pip")) or [])
    dl = m.get("default_dataloader", ".")
    if isinstance(dl, str) and ":" not in dl:
        path = os.path.join(d, dl, "dataloader.yaml")
        if os.path.isfile(path):
            reqs += list(((read_yaml(path, what).get("dependencies") or {}).get("pip")) or [])
    out = []
    for r in map(str, reqs):
        if r not in out:
            out.append(r)
    return out


def dist_name(req):
    for sep in "<>=!~;[ @":
        req = req.split(sep, 1)[0]
    return req.strip().lower().replace("-", "_")


MODELS = config.get("models")
if not isinstance(MODELS, dict) or not MODELS:
    fail("models: expected {name: {model: DIR, dataloader_args: {...}}} (or {predictions: FILE.h5})")
FINAL = config.get("final")
if not isinstance(FINAL, dict) or "model" not in FINAL:
    fail("final: expected {model: DIR, name: NAME, dataloader_args: {...}}")
FINAL_NAME = str(FINAL.get("name", "final"))
if FINAL_NAME in MODELS:
    fail(f"final: name {FINAL_NAME!r} is also a sub-model name")

SPECS = {}        # environment name -> model dir
PREDICTIONS = {}  # input name -> prediction file
for name, spec in MODELS.items():
    name = str(name)
    if not name.replace("_", "").isalnum():
        fail(f"models: {name!r}: names become input names and file names; use letters, digits and _")
    spec = spec or {}
    if "predictions" in spec:  # made elsewhere: used as is
        PREDICTIONS[name] = str(spec["predictions"])
        continue
    SPECS[name] = model_dir(spec.get("model"), f"models: {name}: model")
    PREDICTIONS[name] = f"{OUT}/{name}.h5"
SPECS[FINAL_NAME] = model_dir(FINAL["model"], "final: model")
REQUIREMENTS = {name: pip_requirements(d, name) for name, d in SPECS.items()}
if not SHARED and "kipoi_tanger" not in LOCAL:
    fail("local_packages: map kipoi_tanger to its source tree (e.g. {kipoi_tanger: .}); it is not on PyPI")
for name, reqs in REQUIREMENTS.items():
    if not any(dist_name(r) == "kipoi_tanger" for r in reqs):
        REQUIREMENTS[name] = reqs + ["kipoi_tanger"]   # kipoi-tanger predict runs inside the env


def env_python(name):
    return PY if SHARED else f"{ENVS}/{name}/bin/python"


def env_marker(name):
    return [] if SHARED else [f"{ENVS}/{name}/.kipoi-tanger-env"]


def predict_command(name, model, dl_args, output):
    return shlex.join([env_python(name), "-m", "kipoi_tanger.cli", "predict", model, "--source", "dir",
                       "--dataloader_args", json.dumps(dl_args, sort_keys=True), "-o", output,
                       "--keep_metadata", "--batch_size", str(BATCH), "--overwrite", "--quiet"])


SUBMODELS = [n for n in SPECS if n != FINAL_NAME]

wildcard_constraints:
    name="|".join(SPECS),


rule all:
    input:
        f"{OUT}/{FINAL_NAME}.h5",


rule wheels:
    """Wheels of the local packages (kipoi_tanger is not on PyPI), built once for every env."""
    output:
        f"{ENVS}/wheels/.built",
    params:
        cmd=" && ".join([f"rm -f {shlex.quote(ENVS)}/wheels/*.whl"] + [
            shlex.join([PY, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "-w", f"{ENVS}/wheels", path]) for path in LOCAL.values()]),
    shell:
        "mkdir -p {ENVS:q}/wheels && {params.cmd} && touch {output:q}"


def install_command(wildcards):
    env = f"{ENVS}/{wildcards.name}"
    reqs, wheels = [], []
    for r in REQUIREMENTS[wildcards.name]:
        dist = dist_name(r)
        if dist in LOCAL:  # the wheel file itself: a same-named package on an index must never win
            wheels.append(shlex.quote(f"{ENVS}/wheels") + f"/{dist}-*.whl")
        else:
            reqs.append(r)
    pip = shlex.join([f"{env}/bin/python", "-m", "pip", "install", "--quiet"] + PIP_ARGS)
    return " && ".join([
        shlex.join([PY, "-m", "venv", "--clear", env]),
        f"{pip} {shlex.quote(TORCH)}",
        f"{pip} {' '.join(wheels)} {shlex.join(reqs)}",
    ])


rule env:
    """One venv per model from its (and its dataloader's) pip dependencies."""
    input:
        rules.wheels.output,
    output:
        f"{ENVS}/{{name}}/.kipoi-tanger-env",
    params:
        cmd=install_command,
        py=lambda wc: f"{ENVS}/{wc.name}/bin/python",
    shell:
        "{params.cmd} && {params.py:q} -m pip freeze > {output:q}"


rule predict:
    """Predictions of one sub-model, in its own environment."""
    wildcard_constraints:
        name="|".join(SUBMODELS) or "(?!)",
    input:
        lambda wc: env_marker(wc.name),
    output:
        f"{OUT}/{{name}}.h5",
    params:
        cmd=lambda wc, output: predict_command(wc.name, SPECS[wc.name],
                                               MODELS[wc.name].get("dataloader_args") or {}, str(output)),
    shell:
        "{params.cmd}"


rule final:
    """The ensembling model on the stored predictions (inputs named after the models)."""
    input:
        predictions=list(PREDICTIONS.values()),
        env=env_marker(FINAL_NAME),
    output:
        f"{OUT}/{FINAL_NAME}.h5",
    params:
        cmd=lambda wc, output: predict_command(
            FINAL_NAME, SPECS[FINAL_NAME],
            dict(FINAL.get("dataloader_args") or {}, files=PREDICTIONS), str(output)),
    shell:
        "{params.cmd}"
