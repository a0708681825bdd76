"""Write the composite examples' weights, data and expect files (deterministic).

    .venv/bin/python example_models/composite/make_models.py [--skip-train] [--skip-expect]

1. Sub-model weights ``m1..m4/weights.pth``: ``Dense(n_in, n_out)`` initialised
   right after ``torch.manual_seed(k)`` for m<k> (the seed's models are
   untrained dummies too).
2. The composites built *from* those weights: ``m12/weights.pth`` (m1 -> m2)
   and ``stitched/weights.pth`` (m1..m4), via ``nets.load_submodels``.
3. Tables (4 decimals): ``example_files/features1.tsv`` (input1, 12 regions),
   ``features2.tsv`` (input2), ``labels.tsv``; m2's and m4's own example
   inputs computed from the example (``m2_inputs.tsv`` = cat(m1(input1),
   input1), ``m4_inputs.tsv`` = cat(m2, m3)); and training/validation sets
   ``data/{train,valid}_{features1,features2,labels}.tsv`` (512 / 128
   regions). Labels come from a fixed random linear "teacher" on (model2,
   model3) plus noise (sd 0.05), so training the ensemble has a known answer.
4. ``merged/train.py`` trains the ensembling model on merged-dataloader
   batches and writes ``merged/weights.pth`` (copied to
   ``from_predictions/weights.pth``).
5. ``from_predictions/example_files/model{2,3}.h5``: ``kipoi-tanger predict``
   of m12 and m3 on the example tables (what workflows/composite.smk makes).
6. ``*/test.expect.h5`` with ``kipoi test DIR --source dir -o ...``.
"""
import argparse
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import nets  # noqa: E402

SUBMODELS = ("m1", "m2", "m3", "m4")
MODEL_DIRS = ("m1", "m2", "m3", "m4", "m12", "stitched", "merged", "from_predictions")
N_EXAMPLE, N_TRAIN, N_VALID = 12, 512, 128
NOISE_SD = 0.05


def write_table(path, ids, columns, values):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="\n") as fh:
        fh.write("\t".join(["id"] + list(columns)) + "\n")
        for rid, row in zip(ids, values):
            fh.write("\t".join([rid] + ["{:.4f}".format(float(v)) for v in row]) + "\n")


def read_table(path):
    """``(ids, float32 array)`` as dataloaders/features_table reads it."""
    with open(path) as fh:
        fh.readline()
        rows = [line.rstrip("\n").split("\t") for line in fh if line.strip()]
    return [r[0] for r in rows], np.array([[float(v) for v in r[1:]] for r in rows]).astype(np.float32)


def load_dense(name):
    net = nets.Dense(*nets.SHAPES[name])
    net.load_state_dict(torch.load(os.path.join(HERE, name, "weights.pth"), weights_only=True))
    return net.eval()


def teacher():
    g = torch.Generator().manual_seed(1234)
    return torch.randn(7, generator=g), torch.randn(1, generator=g)


def make_weights():
    for k, name in enumerate(SUBMODELS, 1):
        torch.manual_seed(k)
        net = nets.Dense(*nets.SHAPES[name])
        os.makedirs(os.path.join(HERE, name), exist_ok=True)
        torch.save({n: v.cpu() for n, v in net.state_dict().items()}, os.path.join(HERE, name, "weights.pth"))
    paths = {n: os.path.join(HERE, n, "weights.pth") for n in SUBMODELS}
    chain = nets.load_submodels(nets.Chain12(), {"m1": paths["m1"], "m2": paths["m2"]})
    torch.save(chain.state_dict(), os.path.join(HERE, "m12", "weights.pth"))
    stitched = nets.load_submodels(nets.Stitched(), paths)
    torch.save(stitched.state_dict(), os.path.join(HERE, "stitched", "weights.pth"))


def make_tables():
    rng = np.random.default_rng(4)
    m1, m2, m3, m4 = (load_dense(n) for n in SUBMODELS)
    w, b = teacher()
    sets = {"example": ("r{:02d}", N_EXAMPLE, os.path.join(HERE, "example_files"), ""),
            "train": ("t{:04d}", N_TRAIN, os.path.join(HERE, "data"), "train_"),
            "valid": ("v{:03d}", N_VALID, os.path.join(HERE, "data"), "valid_")}
    for key, (fmt, n, folder, prefix) in sets.items():
        ids = [fmt.format(i) for i in range(n)]
        write_table(os.path.join(folder, prefix + "features1.tsv"), ids, ["f1_{}".format(i) for i in range(3)],
                    rng.normal(size=(n, 3)))
        write_table(os.path.join(folder, prefix + "features2.tsv"), ids, ["f2_{}".format(i) for i in range(6)],
                    rng.normal(size=(n, 6)))
        _, x1 = read_table(os.path.join(folder, prefix + "features1.tsv"))
        _, x2 = read_table(os.path.join(folder, prefix + "features2.tsv"))
        with torch.no_grad():
            x1, x2 = torch.from_numpy(x1), torch.from_numpy(x2)
            h1 = m1(x1)
            in2 = torch.cat([h1, x1], dim=-1)
            model2, model3 = m2(in2), m3(x2)
            in4 = torch.cat([model2, model3], dim=-1)
            y = in4 @ w + b + NOISE_SD * torch.from_numpy(rng.normal(size=n)).float()
        write_table(os.path.join(folder, prefix + "labels.tsv"), ids, ["y"], y[:, None].numpy())
        if key == "example":
            write_table(os.path.join(folder, "m2_inputs.tsv"), ids,
                        ["m1_{}".format(i) for i in range(4)] + ["f1_{}".format(i) for i in range(3)], in2.numpy())
            write_table(os.path.join(folder, "m4_inputs.tsv"), ids,
                        ["model2_{}".format(i) for i in range(3)] + ["model3_{}".format(i) for i in range(4)],
                        in4.numpy())


def make_prediction_files():
    sys.path.insert(0, REPO)
    from kipoi_tanger.run import run
    rel = os.path.relpath(HERE, REPO)
    ex = os.path.join(rel, "from_predictions", "example_files")
    cwd = os.getcwd()
    os.chdir(REPO)   # relative paths in the files' attributes, not this checkout's
    try:
        os.makedirs(ex, exist_ok=True)
        for model, out, table in (("m12", "model2.h5", "features1.tsv"), ("m3", "model3.h5", "features2.tsv")):
            run("predict", os.path.join(rel, model), [os.path.join(ex, out)], keep_metadata=True, overwrite=True,
                dataloader_args={"features_file": os.path.join(rel, "example_files", table)}, device="cpu",
                verbose=False)
    finally:
        os.chdir(cwd)


def make_expect():
    kipoi = os.path.join(os.path.dirname(sys.executable), "kipoi")
    for d in MODEL_DIRS:
        rel = os.path.relpath(os.path.join(HERE, d), REPO)
        out = os.path.join(rel, "test.expect.h5")
        if os.path.exists(os.path.join(REPO, out)):
            os.remove(os.path.join(REPO, out))
        subprocess.run([kipoi, "test", rel, "--source", "dir", "-o", out], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
        print("wrote", out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--skip-train", action="store_true", help="keep merged/weights.pth as it is")
    p.add_argument("--skip-expect", action="store_true", help="do not rewrite the test.expect.h5 files")
    a = p.parse_args(argv)
    make_weights()
    make_tables()
    if not a.skip_train:
        sys.path.insert(0, os.path.join(HERE, "merged"))
        import train
        train.main([])
    shutil.copyfile(os.path.join(HERE, "merged", "weights.pth"),
                    os.path.join(HERE, "from_predictions", "weights.pth"))
    make_prediction_files()
    if not a.skip_expect:
        make_expect()


if __name__ == "__main__":
    main()
