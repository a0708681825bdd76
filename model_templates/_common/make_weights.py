"""Write seeded initial weights for this model: a placeholder until you train it.

    python make_weights.py [--seed 0]

Builds the torch module that model.yaml describes (``args: module_file,
module_class, module_kwargs``) right after ``torch.manual_seed(SEED)`` and
saves its ``state_dict`` as CPU tensors to the file named by ``args:
weights`` (``weights.pth``). The same seed gives the same tensors.

After training, save your weights the same way::

    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, "weights.pth")

then run ``make_expect.py`` so that test.expect.h5 matches them.
"""
import argparse
import hashlib
import importlib.util
import os
import uuid

import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def build(model_dir=HERE):
    """The module model.yaml describes (fresh initialisation) and the weights path."""
    with open(os.path.join(model_dir, "model.yaml")) as fh:
        args = yaml.safe_load(fh)["args"]
    path = os.path.join(model_dir, args["module_file"])
    # a private module name: other model dirs also have a model.py
    spec = importlib.util.spec_from_file_location("_model_" + uuid.uuid4().hex, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    kwargs = args.get("module_kwargs") or {}
    if isinstance(kwargs, str):
        kwargs = yaml.safe_load(kwargs) or {}
    return getattr(mod, args["module_class"])(**kwargs), os.path.join(model_dir, args["weights"])


def main(argv=None):
    p = argparse.ArgumentParser(description="Write seeded initial weights (a placeholder until trained).")
    p.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    p.add_argument("--model_dir", default=HERE, help="model dir (default: this script's dir)")
    a = p.parse_args(argv)
    # fork_rng: leave the caller's global torch RNG as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(a.seed)
        net, path = build(a.model_dir)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, path)
    n = sum(v.numel() for v in net.state_dict().values())
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    print("wrote {} ({} parameters, seed {}, sha256 {}...)".format(path, n, a.seed, digest))
    return path


if __name__ == "__main__":
    main()
