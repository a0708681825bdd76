# Scale-out: split a kipoi-tanger run into N shards, run them as independent jobs, merge them.
#
#   snakemake -s workflows/shard.smk --configfile workflows/config/shard.yaml --cores 4
#   snakemake -s workflows/shard.smk --configfile ... --cores 4 single   # unsharded reference runs
#
# Every shard job runs `kipoi-tanger OP MODEL ... --shard i/N -o shards/RUN.i-of-N.h5`, a
# contiguous block of regions on batch boundaries, so each batch is the one a single run sees;
# `kipoi-tanger merge` then joins the shards into RUN.h5, a file identical to a single-process run
# (same values, same metadata order, same attributes). Jobs need no shared state, so they run
# locally (--cores), on a cluster through an executor plugin (--executor slurm) or one per GPU
# (gpu_ids). See workflows/README.md.
import json
import os
import shlex
import sys

OPS = ("predict", "deeplift-shap", "marginalize", "product")
# flags the workflow sets itself; options may not override them
RESERVED = {"shard", "o", "output", "outputs", "overwrite", "resume", "source", "dataloader_args",
            "example", "q", "quiet"}


def fail(msg):
    raise ValueError(f"shard.smk: {msg}")


if not config:
    fail("no configuration; pass --configfile (see workflows/config/shard.yaml)")
for key in config:
    if key not in ("model", "source", "dataloader_args", "example", "shards", "op", "options", "runs",
                   "outdir", "python", "gpu", "gpu_ids", "threads"):
        fail(f"unknown config key {key!r}")
if not config.get("model"):
    fail("config 'model' is required (a model dir with source dir, or a model name of 'source')")
MODEL = str(config["model"])
SOURCE = str(config.get("source", "dir"))
if SOURCE == "dir" and not os.path.isfile(os.path.join(MODEL, "model.yaml")):
    fail(f"model: {MODEL} has no model.yaml (relative paths are relative to the working directory "
         f"{os.getcwd()})")
N = config.get("shards", 1)
if isinstance(N, bool) or not isinstance(N, int) or N < 1:
    fail(f"shards: expected a positive integer, got {N!r}")
DL_ARGS = config.get("dataloader_args")
if DL_ARGS is not None and not isinstance(DL_ARGS, dict):
    fail(f"dataloader_args: expected a mapping of dataloader arguments, got {DL_ARGS!r}")
EXAMPLE = bool(config.get("example", False))
if EXAMPLE and DL_ARGS:
    fail("example: true runs on the dataloader's example files; drop dataloader_args")
if not EXAMPLE and DL_ARGS is None:
    fail("give dataloader_args (or example: true)")
OUT = str(config.get("outdir", "workflows/results/shard"))
PY = str(config.get("python") or sys.executable)
GPU_IDS = [str(g) for g in (config.get("gpu_ids") or [])]
GPU = 1 if (config.get("gpu") or GPU_IDS) else 0
THREADS = int(config.get("threads", 1))

if "runs" in config:
    if not isinstance(config["runs"], dict) or not config["runs"]:
        fail("runs: expected a mapping {name: {op: OP, options: {...}}}")
    if "op" in config or "options" in config:
        fail("give either op/options (one run) or runs (several), not both")
    RUNS = {str(k): v or {} for k, v in config["runs"].items()}
else:
    RUNS = {str(config.get("op", "predict")): {"op": config.get("op", "predict"),
                                               "options": config.get("options") or {}}}


def flags(run, options):
    """kipoi-tanger options {name: value} -> command-line flags."""
    out = []
    for k, v in options.items():
        k = str(k).lstrip("-")
        if k in RESERVED:
            fail(f"runs: {run}: options: {k!r} is set by the workflow")
        if v is None or v is False:
            continue
        if v is True:
            out.append(f"--{k}")
        elif isinstance(v, (list, tuple)):
            out += [f"--{k}"] + [str(x) for x in v]
        else:
            out += [f"--{k}", str(v)]
    return out


COMMANDS = {}
for run, spec in RUNS.items():
    if not run.replace("-", "").replace("_", "").isalnum():
        fail(f"runs: {run!r}: use letters, digits, - and _ in run names")
    bad = set(spec) - {"op", "options"}
    if bad:
        fail(f"runs: {run}: unknown key {sorted(bad)[0]!r} (expected op, options)")
    op = spec.get("op", "predict")
    if op not in OPS:
        fail(f"runs: {run}: op {op!r} is not one of {', '.join(OPS)}")
    opts = spec.get("options") or {}
    if not isinstance(opts, dict):
        fail(f"runs: {run}: options must be a mapping of kipoi-tanger options, e.g. {{batch_size: 64}}")
    # explaining ops draw shuffled references: every shard must draw them from the same seed
    explain = op == "deeplift-shap" or opts.get("op") == "deeplift-shap" or \
        opts.get("marginalize_op") == "deeplift-shap"
    if explain and opts.get("random_state") is None:
        fail(f"runs: {run}: {op} draws references; set options: random_state so that every shard draws "
             "the same ones")
    cmd = [PY, "-m", "kipoi_tanger.cli", op, MODEL, "--source", SOURCE, "--overwrite", "--quiet"]
    cmd += ["--example"] if EXAMPLE else ["--dataloader_args", json.dumps(DL_ARGS, sort_keys=True)]
    COMMANDS[run] = cmd + flags(run, opts)

wildcard_constraints:
    run="|".join(map(str, RUNS)) or "none",
    i=r"\d+",


def shard_file(run, i):
    return f"{OUT}/shards/{run}.{i}-of-{N}.h5"


def on_gpu(cmd):
    if GPU_IDS:  # local multi-GPU node: hold one free GPU of gpu_ids for the whole job
        cmd = [PY, os.path.join(workflow.basedir, "scripts", "gpu_slot.py"), "--gpus", ",".join(GPU_IDS),
               "--lock-dir", os.path.abspath(f"{OUT}/.gpu-locks"), "--"] + cmd
    return shlex.join(cmd)


def shard_command(wildcards, output):
    return on_gpu(COMMANDS[wildcards.run] + ["--shard", f"{wildcards.i}/{N}", "-o", str(output)])


rule all:
    input:
        [f"{OUT}/{run}.h5" for run in RUNS],


rule single:
    """Target: every run in one process, OUTDIR/single/RUN.h5 (`snakemake ... single`)."""
    input:
        [f"{OUT}/single/{run}.h5" for run in RUNS],


rule shard:
    output:
        OUT + "/shards/{run}.{i}-of-" + str(N) + ".h5",
    params:
        cmd=shard_command,
    threads: THREADS
    resources:
        gpu=GPU,
    shell:
        "{params.cmd}"


rule single_run:
    """The same run in one process (a reference to compare with)."""
    output:
        OUT + "/single/{run}.h5",
    params:
        cmd=lambda wc, output: on_gpu(COMMANDS[wc.run] + ["-o", str(output)]),
    threads: THREADS
    resources:
        gpu=GPU,
    shell:
        "{params.cmd}"


rule merge:
    input:
        lambda wc: [shard_file(wc.run, i) for i in range(1, N + 1)],
    output:
        OUT + "/{run}.h5",
    params:
        py=PY,
    shell:
        "{params.py:q} -m kipoi_tanger.cli merge {input:q} -o {output:q} --overwrite --quiet"
