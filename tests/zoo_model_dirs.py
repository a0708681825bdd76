"""Kipoi model dirs shaped like the real zoo's PyTorch models, written into a test's tmp dir.

The nets are those of ``zoo_architectures.py`` (scaled down, seeded weights); the
dirs follow the zoo's own model.yaml conventions (see
/work/shared/notes/kipoi-zoo-formats.md), with **no tanger section**:

* ``deepsea``: DeepSEA/variantEffects: ``type: pytorch``, ``args: {module_file:
  model_architecture.py, module_obj: model, weights: ...}``; kipoiseq's
  ``SeqIntervalDl`` with ``auto_resize_len``, ``alphabet_axis: 0``, ``dummy_axis: 1``
  (``(4, 1, L)``), a ``Threshold`` ReLU net that re-codes ACGT → AGCT inside.
* ``deepsea_predict``: DeepSEA/predict: the same loader, ``module_obj: predict_model``,
  the reverse complement stacked along the batch axis and the halves averaged.
* ``beluga``: DeepSEA/beluga: ``defined_as: kipoi.model.PyTorchModel``,
  ``module_class: Beluga``, ``module_file: model.py``, and ``alphabet: AGCT`` in
  the loader's ``default_args``: the model's channels are A, G, C, T.
* ``basset``: Basset: ``type: pytorch`` with ``module_obj``, ``dummy_axis: 2``
  (``(4, L, 1)``), BatchNorm with non-trivial statistics; its single output has
  no name.
* ``custom_act`` / ``functional_relu``: small ``(4, 1, L)`` nets with a custom
  activation module (``MyAct``: ``x * sigmoid(x)``, no built-in rule) or a
  ``torch.relu`` written in ``forward``.

Each dir has ``example_files/genome.fa`` and ``example_files/intervals.bed``
(BED3; :func:`dl_args`). The loader's own ``example:`` files are remote, so runs
pass ``dl_args`` rather than ``--example``.
"""
import os

import torch
import yaml

from kipoi_model_dirs import write_bed, write_genome
import zoo_architectures as za

HERE = os.path.dirname(os.path.abspath(__file__))
INFO = {"authors": [{"name": "kipoi_tanger tests"}], "doc": "zoo-shaped test fixture", "version": "0.1"}
SEQINTERVAL = "kipoiseq.dataloaders.SeqIntervalDl"

CUSTOM = '''

class MyAct(nn.Module):
    """x * sigmoid(x), written out: a nonlinearity no built-in DeepLIFT rule knows."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class FunctionalReLU(nn.Module):
    def __init__(self, length):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, (1, 7))
        self.dense = nn.Linear(6 * (length - 6), 3)

    def forward(self, x):
        return self.dense(torch.relu(self.conv(x)).flatten(1))


def custom_act(length):
    with _seeded(3):
        return _scale_up(nn.Sequential(nn.Conv2d(4, 6, (1, 7)), MyAct(), nn.MaxPool2d((1, 2), (1, 2)), _flat(),
                                       nn.Linear(6 * ((length - 6) // 2), 3)), 2.0)


def functional_relu(length):
    with _seeded(4):
        return _scale_up(FunctionalReLU(length), 2.0)
'''

# name -> (length, net builder source, model.yaml args, loader default_args, schema output)
SPECS = {
    "deepsea": (200, "model = deepsea_like(seed=0, length=200)",
                {"module_obj": "model"},
                {"auto_resize_len": 200, "alphabet_axis": 0, "dummy_axis": 1, "dtype": "np.float32"},
                {"name": "TFBS_DHS_probs", "shape": "(5,)", "doc": "probabilities",
                 "column_labels": [f"task{i}" for i in range(5)]}),
    "deepsea_predict": (200, "predict_model = deepsea_predict_like(seed=0, length=200)",
                        {"module_obj": "predict_model"},
                        {"auto_resize_len": 200, "alphabet_axis": 0, "dummy_axis": 1, "dtype": "np.float32"},
                        {"name": "TFBS_DHS_probs", "shape": "(5,)", "doc": "probabilities"}),
    "beluga": (400, None, {"module_class": "Beluga", "module_kwargs": {"length": 400}},
               {"auto_resize_len": 400, "alphabet_axis": 0, "dummy_axis": 1, "alphabet": "AGCT",
                "dtype": "np.float32"},
               {"name": "TFBS_DHS_probs", "shape": "(6,)", "doc": "probabilities"}),
    "basset": (200, "model = basset_like(seed=0, length=200)", {"module_obj": "model"},
               {"auto_resize_len": 200, "alphabet_axis": 0, "dummy_axis": 2, "dtype": "np.float32"},
               {"shape": "(4,)", "doc": "probabilities"}),
    "custom_act": (100, "model = custom_act(100)", {"module_obj": "model"},
                   {"auto_resize_len": 100, "alphabet_axis": 0, "dummy_axis": 1, "dtype": "np.float32"},
                   {"name": "scores", "shape": "(3,)", "doc": "scores"}),
    "functional_relu": (100, "model = functional_relu(100)", {"module_obj": "model"},
                        {"auto_resize_len": 100, "alphabet_axis": 0, "dummy_axis": 1, "dtype": "np.float32"},
                        {"name": "scores", "shape": "(3,)", "doc": "scores"}),
}
MODEL_ALPHABET = {"beluga": "AGCT"}


def architecture_source() -> str:
    with open(os.path.join(HERE, "zoo_architectures.py")) as fh:
        return fh.read() + CUSTOM


def build(name):
    """The dir's net, built here exactly as its model file builds it (eval mode)."""
    ns = {}
    exec(compile(architecture_source(), "model_architecture.py", "exec"), ns)
    L, src = SPECS[name][:2]
    if src is None:
        return ns["beluga_like"](seed=0, length=L).eval()
    exec(src, ns)
    return ns[src.split(" = ")[0]].eval()


def dl_args(d):
    return {"intervals_file": os.path.join(d, "example_files", "intervals.bed"),
            "fasta_file": os.path.join(d, "example_files", "genome.fa")}


def make_zoo_dir(root, name, deeplift_rules=None, n_regions=12):
    """Write zoo-shaped model dir ``name`` (a key of :data:`SPECS`) under ``root``; return its path.

    ``deeplift_rules``: a ``postprocessing: tanger: deeplift_rules`` mapping (the only
    section key these fixtures ever use; None: no section at all).
    """
    L, src, args, default_args, target = SPECS[name]
    d = os.path.join(str(root), name)
    os.makedirs(os.path.join(d, "example_files"), exist_ok=True)
    write_genome(os.path.join(d, "example_files", "genome.fa"), n_chrom=2, length=3000, seed=5)
    write_bed(os.path.join(d, "example_files", "intervals.bed"), n_regions, L, n_chrom=2, length=3000, seed=6)
    module_file = "model.py" if src is None else "model_architecture.py"
    with open(os.path.join(d, module_file), "w") as fh:
        fh.write(architecture_source() + ("" if src is None else f"\n\n{src}\n"))
    torch.save({k: v.detach().cpu() for k, v in build(name).state_dict().items()}, os.path.join(d, "weights.pth"))
    if src is None:      # beluga: the zoo's PyTorchModel spelling
        model = {"defined_as": "kipoi.model.PyTorchModel",
                 "args": dict(args, module_file=module_file, weights="weights.pth", auto_use_cuda=False)}
    else:
        model = {"type": "pytorch", "args": dict(args, module_file=module_file, weights="weights.pth")}
    model.update({
        "info": INFO,
        "default_dataloader": {"defined_as": SEQINTERVAL, "default_args": dict(default_args)},
        "dependencies": {"conda": ["python=3.11", "pytorch"], "pip": ["kipoiseq"]},
        "schema": {"inputs": {"name": "seq", "special_type": "DNASeq",
                              "shape": "(4, 1, {L})".format(L=L) if default_args.get("dummy_axis") == 1
                              else "(4, {L}, 1)".format(L=L), "doc": "one-hot DNA",
                              "associated_metadata": "ranges"},
                   "targets": target},
    })
    if deeplift_rules is not None:
        model["postprocessing"] = {"tanger": {"deeplift_rules": dict(deeplift_rules)}}
    with open(os.path.join(d, "model.yaml"), "w") as fh:
        yaml.safe_dump(model, fh, sort_keys=False)
    return d


def set_rules(d, deeplift_rules):
    """Rewrite ``d``'s tanger section to ``{deeplift_rules: ...}`` (None removes the section)."""
    path = os.path.join(d, "model.yaml")
    with open(path) as fh:
        model = yaml.safe_load(fh)
    model.pop("postprocessing", None)
    if deeplift_rules is not None:
        model["postprocessing"] = {"tanger": {"deeplift_rules": dict(deeplift_rules)}}
    with open(path, "w") as fh:
        yaml.safe_dump(model, fh, sort_keys=False)


class ACGTView(torch.nn.Module):
    """tangermeme's ``(N, 4, L)`` in A, C, G, T order → the dir's model: its own channel order and layout
    (written out here, independently of kipoi_tanger's Layout)."""

    def __init__(self, net, name):
        super().__init__()
        self.net = net
        alphabet = MODEL_ALPHABET.get(name, "ACGT")
        self.index = ["ACGT".index(c) for c in alphabet]    # model channel j holds canonical channel index[j]
        self.dummy = SPECS[name][3].get("dummy_axis")

    def forward(self, X):
        x = X[:, self.index]
        x = x.unsqueeze(2) if self.dummy == 1 else x.unsqueeze(-1)
        return self.net(x)


def to_acgt(x, name):
    """A batch of the dir's model inputs (its layout and channel order) → ``(N, 4, L)`` ACGT float."""
    x = torch.as_tensor(x).float()
    x = x[:, :, 0, :] if SPECS[name][3].get("dummy_axis") == 1 else x[..., 0]
    alphabet = MODEL_ALPHABET.get(name, "ACGT")
    return x[:, [alphabet.index(c) for c in "ACGT"]]
