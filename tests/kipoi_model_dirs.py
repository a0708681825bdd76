"""Build small Kipoi model dirs (FASTA + BED + dataloader + model + weights) in a test's tmp dir.

Every dir gets its own dataloader module name (``dl_<name>.py``): Kipoi's
``load_obj`` imports ``dataloader.SeqDataset`` through ``importlib`` first, so two
dirs that both ship ``dataloader.py`` would share the first one's class within
one process.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(REPO, ".venv", "bin")

MODELS = textwrap.dedent('''
    import torch


    class TinyCNN(torch.nn.Module):
        """(N, L, 4) one-hot -> (N, 2)."""
        def __init__(self, n_filters=8, seq_len=50):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, n_filters, 5, padding=2)
            self.relu = torch.nn.ReLU()
            self.pool = torch.nn.MaxPool1d(5)
            self.dense = torch.nn.Linear(n_filters * (seq_len // 5), 2)

        def forward(self, x):
            h = self.pool(self.relu(self.conv(x.permute(0, 2, 1))))
            return self.dense(h.flatten(1))


    class BassetLike(torch.nn.Module):
        """(N, 4, L, 1) one-hot -> (N, 3)."""
        def __init__(self, seq_len=50):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 6, 7, padding=3)
            self.relu = torch.nn.ReLU()
            self.dense = torch.nn.Linear(6 * seq_len, 3)

        def forward(self, x):
            return self.dense(self.relu(self.conv(x.squeeze(-1))).flatten(1))


    class ProfileNet(torch.nn.Module):
        """(N, 4, L) -> (profile (N, 1, L), counts (N, 1))."""
        def __init__(self, seq_len=50):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 6, 5, padding=2)
            self.relu = torch.nn.ReLU()
            self.head = torch.nn.Conv1d(6, 1, 3, padding=1)
            self.count = torch.nn.Linear(6, 1)

        def forward(self, x):
            h = self.relu(self.conv(x))
            return self.head(h), self.count(h.mean(dim=-1))


    class DictProfileNet(ProfileNet):
        """Same as ProfileNet with a dict output."""
        def forward(self, x):
            p, c = super().forward(x)
            return {"profile": p, "counts": c}


    class FlattenDense(torch.nn.Module):
        """The seeds' model: (N, 4, L) -> (N, 3), * beta + alpha."""
        def __init__(self, seq_len=50):
            super().__init__()
            self.dense = torch.nn.Linear(seq_len * 4, 3)

        def forward(self, X, alpha=0, beta=1):
            return self.dense(X.reshape(X.shape[0], -1)) * beta + alpha


    class TwoInput(torch.nn.Module):
        """dict inputs {seq: (N, L, 4), cell: (N, 3)} -> (N, 2)."""
        def __init__(self, seq_len=50):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 4, 5, padding=2)
            self.relu = torch.nn.ReLU()
            self.dense = torch.nn.Linear(4 * seq_len + 3, 2)

        def forward(self, seq, cell):
            h = self.relu(self.conv(seq.permute(0, 2, 1))).flatten(1)
            return self.dense(torch.cat([h, cell], dim=1))


    class TokenNet(torch.nn.Module):
        """(N, L) integer tokens -> (N, 2), through an embedding and a GRU."""
        def __init__(self, seq_len=50):
            super().__init__()
            self.emb = torch.nn.Embedding(4, 5)
            self.gru = torch.nn.GRU(5, 6, batch_first=True)
            self.dense = torch.nn.Linear(6, 2)

        def forward(self, tokens):
            h, _ = self.gru(self.emb(tokens))
            return self.dense(h[:, -1])


    class OneHotGRU(torch.nn.Module):
        """(N, 4, L) one-hot -> (N, 2), through a convolution and a GRU (no DeepLIFT rule)."""
        def __init__(self, seq_len=50):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 4, 3, padding=1)
            self.gru = torch.nn.GRU(4, 3, batch_first=True)
            self.dense = torch.nn.Linear(3, 2)

        def forward(self, x):
            h, _ = self.gru(self.conv(x).permute(0, 2, 1))
            return self.dense(h[:, -1])
''')

DATALOADER = textwrap.dedent('''
    import numpy as np
    from kipoi.data import Dataset
    from kipoi.metadata import GenomicRanges

    LAYOUT = {layout!r}
    EXTRA = {extra!r}
    LUT = np.zeros((256, 4), dtype=np.float32)
    for i, c in enumerate("ACGT"):
        LUT[ord(c), i] = 1
        LUT[ord(c.lower()), i] = 1


    def read_fasta(path):
        seqs, name = {{}}, None
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line.startswith(">"):
                    name = line[1:].split()[0]
                    seqs[name] = []
                elif name is not None:
                    seqs[name].append(line)
        return {{k: "".join(v) for k, v in seqs.items()}}


    class SeqDataset(Dataset):
        def __init__(self, intervals_file, fasta_file, seq_len={L}):
            self.genome = read_fasta(fasta_file)
            self.intervals = []
            with open(intervals_file) as fh:
                for line in fh:
                    if line.strip():
                        c, s, e = line.split()[:3]
                        self.intervals.append((c, int(s), int(e)))
            self.seq_len = seq_len

        def __len__(self):
            return len(self.intervals)

        def __getitem__(self, i):
            c, s, e = self.intervals[i]
            seq = self.genome[c][s:s + self.seq_len]
            x = LUT[np.frombuffer(seq.encode(), dtype=np.uint8)]          # (L, 4)
            if LAYOUT == "LA":
                inp = x
            elif LAYOUT == "AL":
                inp = x.T.copy()
            elif LAYOUT == "AL1":
                inp = x.T.copy()[:, :, None]
            elif LAYOUT == "tokens":
                inp = x.argmax(axis=1).astype(np.int64)
            else:
                raise ValueError(LAYOUT)
            if EXTRA == "cell":
                inp = {{"seq": inp, "cell": np.array([i % 3 == 0, i % 3 == 1, 0.5], dtype=np.float32)}}
            ranges = GenomicRanges(chr=c, start=s, end=e, id="r%d" % i, strand="+")
            return {{"inputs": inp, "metadata": {{"ranges": ranges}}}}
''')

SHAPES = {"LA": "({L}, 4)", "AL": "(4, {L})", "AL1": "(4, {L}, 1)", "tokens": "({L},)"}


def write_genome(path, n_chrom=2, length=4000, seed=0):
    rs = np.random.RandomState(seed)
    with open(path, "w") as fh:
        for c in range(n_chrom):
            s = "".join(rs.choice(list("ACGT"), length))
            fh.write(f">chr{c + 1}\n")
            for i in range(0, length, 60):
                fh.write(s[i:i + 60] + "\n")


def write_bed(path, n, L, n_chrom=2, length=4000, seed=1):
    rs = np.random.RandomState(seed)
    with open(path, "w") as fh:
        for i in range(n):
            s = int(rs.randint(0, length - L))
            fh.write(f"chr{i % n_chrom + 1}\t{s}\t{s + L}\n")


def make_model_dir(root, name="m", arch="TinyCNN", layout="LA", n_regions=40, L=50, tanger=None,
                   defined_as="kipoi.model.PyTorchModel", targets=None, extra=None, special_type=True,
                   module_kwargs=None, seed=0, use_type_pytorch=False):
    """Write a complete Kipoi model dir; return its path.

    ``layout``: LA (L, 4), AL (4, L), AL1 (4, L, 1) or tokens (L,).
    ``targets``: the schema ``targets`` mapping (default: one (2,) output).
    ``tanger``: the ``postprocessing: tanger`` section (None: no section).
    """
    import torch
    d = os.path.join(str(root), name)
    os.makedirs(os.path.join(d, "example_files"), exist_ok=True)
    write_genome(os.path.join(d, "example_files", "genome.fa"))
    write_bed(os.path.join(d, "example_files", "intervals.bed"), n_regions, L)
    with open(os.path.join(d, f"arch_{name}.py"), "w") as fh:
        fh.write(MODELS)
    dl_mod = f"dl_{name}"
    with open(os.path.join(d, f"{dl_mod}.py"), "w") as fh:
        fh.write(DATALOADER.format(layout=layout, extra=extra, L=L))

    ns = {}
    exec(compile(MODELS, f"arch_{name}.py", "exec"), ns)
    torch.manual_seed(seed)
    kwargs = dict(module_kwargs or {"seq_len": L})
    net = ns[arch](**kwargs)
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, os.path.join(d, "weights.pth"))

    seq_schema = {"name": "seq", "shape": SHAPES[layout].format(L=L), "doc": "sequence",
                  "associated_metadata": "ranges"}
    if special_type and layout != "tokens":
        seq_schema["special_type"] = "DNASeq"
    if extra == "cell":
        inputs = {"seq": seq_schema, "cell": {"shape": "(3,)", "doc": "cell features"}}
    else:
        inputs = seq_schema
    if targets is None:
        n_out = {"BassetLike": 3, "FlattenDense": 3}.get(arch, 2)
        targets = {"name": "probs", "shape": f"({n_out},)", "doc": "outputs",
                   "column_labels": [f"task{i}" for i in range(n_out)]}
    if use_type_pytorch:
        model_yaml = {"type": "pytorch", "args": {"module_file": f"arch_{name}.py", "module_class": arch,
                                                   "module_kwargs": kwargs, "weights": "weights.pth",
                                                   "auto_use_cuda": False}}
    else:
        args = {"module_file": f"arch_{name}.py", "module_class": arch, "module_kwargs": kwargs,
                "weights": "weights.pth"}
        if defined_as == "kipoi.model.PyTorchModel":
            args["auto_use_cuda"] = False
        else:
            args["device"] = "cpu"
        model_yaml = {"defined_as": defined_as, "args": args}
    model_yaml.update({
        "default_dataloader": ".",
        "info": {"authors": [{"name": "Test"}], "doc": f"test model {arch}"},
        "dependencies": {"conda": ["python=3.11", "pytorch"], "pip": ["kipoi"]},
        "schema": {"inputs": inputs, "targets": targets},
    })
    if tanger is not None:
        model_yaml["postprocessing"] = {"tanger": tanger}
    with open(os.path.join(d, "model.yaml"), "w") as fh:
        yaml.safe_dump(model_yaml, fh, sort_keys=False)
    dl_yaml = {
        "type": "Dataset",
        "defined_as": f"{dl_mod}.SeqDataset",
        "args": {"intervals_file": {"doc": "bed3", "example": "example_files/intervals.bed"},
                 "fasta_file": {"doc": "fasta", "example": "example_files/genome.fa"},
                 "seq_len": {"doc": "length", "optional": True}},
        "info": {"authors": [{"name": "Test"}], "doc": "FASTA + BED one-hot loader"},
        "output_schema": {"inputs": inputs,
                          "metadata": {"ranges": {"type": "GenomicRanges", "doc": "ranges"}}},
    }
    with open(os.path.join(d, "dataloader.yaml"), "w") as fh:
        yaml.safe_dump(dl_yaml, fh, sort_keys=False)
    return d


def dl_args(model_dir):
    return {"intervals_file": os.path.join(model_dir, "example_files", "intervals.bed"),
            "fasta_file": os.path.join(model_dir, "example_files", "genome.fa")}


def load_inputs(model_dir):
    """All inputs/metadata of a model dir's example data, as its dataloader yields them."""
    import importlib.util
    name = os.path.basename(model_dir)
    spec = importlib.util.spec_from_file_location(f"_direct_dl_{name}", os.path.join(model_dir, f"dl_{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from kipoi_utils.data_utils import numpy_collate
    ds = mod.SeqDataset(**dl_args(model_dir))
    return numpy_collate([ds[i] for i in range(len(ds))])


def load_module(model_dir, arch, **kwargs):
    """The torch module of a model dir with its weights, built directly (no Kipoi)."""
    import importlib.util
    import torch
    name = os.path.basename(model_dir)
    spec = importlib.util.spec_from_file_location(f"_direct_arch_{name}", os.path.join(model_dir, f"arch_{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    net = getattr(mod, arch)(**kwargs)
    net.load_state_dict(torch.load(os.path.join(model_dir, "weights.pth"), weights_only=True))
    return net.eval()


def subprocess_env(home):
    env = dict(os.environ)
    env["HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("KIPOI_TANGER_KILL_AFTER_BATCHES", None)
    return env


def run_cli(args, cwd, home, exe="kipoi-tanger", env_extra=None, timeout=300):
    """Run a console script of the venv (kipoi-tanger or kipoi); return CompletedProcess."""
    env = subprocess_env(home)
    env.update(env_extra or {})
    path = os.path.join(VENV_BIN, exe)
    cmd = [path] + list(args) if os.path.exists(path) else [sys.executable, "-m", "kipoi_tanger.cli"] + list(args)
    return subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)
