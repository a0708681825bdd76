"""End-to-end ``kipoi-tanger predict`` vs ``kipoi predict`` on the same model and data.

Both command lines run as subprocesses, alternately, on the same Kipoi model
dir (written here into a temporary directory: FASTA + BED, a per-region
pyfaidx dataloader like most zoo models, a PyTorch model with a state_dict)
and write the same HDF5 file. We record wall time (median of the repeats,
start-up included) and each process's peak RSS (``wait4``), and check that
both files hold identical predictions. CPU time (user + sys of the process)
is recorded too: on a shared machine it is steadier than wall time.

Two models:

* ``basset``: a Basset-sized conv net (3 conv + BN + max-pool blocks, two dense
  layers, 164 outputs) on ``(4, 600, 1)`` inputs: compute-bound;
* ``deepbind``: a DeepBind-sized conv net on ``(101, 4)`` inputs: the
  per-region dataloader and per-batch overheads dominate.

A third column runs ``kipoi-tanger predict --threads 1`` (torch's intra-op
threads spin and lose badly on a busy 2-core CPU).

Run: ``.venv/bin/python benchmarks/bench_kipoi_predict.py [--quick]``
→ ``benchmarks/results/kipoi_predict.json``.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
RESULTS = os.path.join(REPO, "benchmarks", "results", "kipoi_predict.json")

ARCH = textwrap.dedent('''
    import torch


    class Basset(torch.nn.Module):
        def __init__(self, seq_len=600, n_tasks=164):
            super().__init__()
            def block(i, o, k, p):
                return torch.nn.Sequential(torch.nn.Conv1d(i, o, k, padding=k // 2), torch.nn.BatchNorm1d(o),
                                           torch.nn.ReLU(), torch.nn.MaxPool1d(p))
            self.b1, self.b2, self.b3 = block(4, 300, 19, 3), block(300, 200, 11, 4), block(200, 200, 7, 4)
            self.fc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(200 * (seq_len // 48), 1000),
                                          torch.nn.ReLU(), torch.nn.Linear(1000, n_tasks), torch.nn.Sigmoid())

        def forward(self, x):
            return self.fc(self.b3(self.b2(self.b1(x.squeeze(-1)))))


    class DeepBind(torch.nn.Module):
        """DeepBind-sized: conv 4->16 (k24), ReLU, global max, dense 32 -> n_tasks."""
        def __init__(self, seq_len=101, n_tasks=1):
            super().__init__()
            self.conv = torch.nn.Conv1d(4, 16, 24)
            self.relu = torch.nn.ReLU()
            self.fc = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, n_tasks))

        def forward(self, x):
            return self.fc(self.relu(self.conv(x.transpose(1, 2))).amax(dim=-1))
''')

DATALOADER = textwrap.dedent('''
    import numpy as np
    import pyfaidx
    from kipoi.data import Dataset
    from kipoi.metadata import GenomicRanges

    LUT = np.zeros((256, 4), dtype=np.float32)
    for i, c in enumerate("ACGT"):
        LUT[ord(c), i] = LUT[ord(c.lower()), i] = 1


    class SeqDataset(Dataset):
        """BED intervals centred and resized to seq_len, one-hot from an indexed FASTA."""
        def __init__(self, intervals_file, fasta_file, seq_len=600, layout="AL1"):
            self.intervals = [l.split()[:3] for l in open(intervals_file) if l.strip()]
            self.fasta = pyfaidx.Fasta(fasta_file, as_raw=True, sequence_always_upper=True)
            self.seq_len, self.layout = int(seq_len), layout

        def __len__(self):
            return len(self.intervals)

        def __getitem__(self, i):
            c, s, e = self.intervals[i]
            mid = (int(s) + int(e)) // 2
            s = mid - self.seq_len // 2
            seq = self.fasta[c][s:s + self.seq_len]
            x = LUT[np.frombuffer(seq.encode(), dtype=np.uint8)]
            x = x.T[:, :, None].copy() if self.layout == "AL1" else x
            return {"inputs": x, "metadata": {"ranges": GenomicRanges(chr=c, start=s, end=s + self.seq_len,
                                                                      id=str(i), strand="*")}}
''')

CONFIGS = {
    "basset": {"arch": "Basset", "seq_len": 600, "layout": "AL1", "shape": "(4, 600, 1)", "n_tasks": 164},
    "deepbind": {"arch": "DeepBind", "seq_len": 101, "layout": "LA", "shape": "(101, 4)", "n_tasks": 1},
}


def write_model(root, name, cfg, n_regions, seed=0):
    import torch
    import yaml
    d = os.path.join(root, name)
    os.makedirs(d)
    with open(os.path.join(d, "arch.py"), "w") as fh:
        fh.write(ARCH)
    with open(os.path.join(d, f"dl_{name}.py"), "w") as fh:
        fh.write(DATALOADER)
    ns = {}
    exec(ARCH, ns)
    torch.manual_seed(seed)
    net = ns[cfg["arch"]](seq_len=cfg["seq_len"], n_tasks=cfg["n_tasks"])
    with torch.no_grad():    # non-trivial BN statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, os.path.join(d, "weights.pth"))
    n_params = sum(p.numel() for p in net.parameters())
    seq = {"name": "seq", "shape": cfg["shape"], "special_type": "DNASeq", "doc": "one-hot",
           "associated_metadata": "ranges"}
    model = {"defined_as": "kipoi.model.PyTorchModel",
             "args": {"module_file": "arch.py", "module_class": cfg["arch"],
                      "module_kwargs": {"seq_len": cfg["seq_len"], "n_tasks": cfg["n_tasks"]},
                      "weights": "weights.pth", "auto_use_cuda": False},
             "default_dataloader": ".",
             "info": {"authors": [{"name": "bench"}], "doc": f"{name} benchmark model"},
             "dependencies": {"conda": ["pytorch"]},
             "schema": {"inputs": seq, "targets": {"name": "preds", "shape": f"({cfg['n_tasks']},)", "doc": "p"}}}
    dl = {"type": "Dataset", "defined_as": f"dl_{name}.SeqDataset",
          "args": {"intervals_file": {"doc": "bed"}, "fasta_file": {"doc": "fasta"},
                   "seq_len": {"doc": "length", "optional": True}, "layout": {"doc": "layout", "optional": True}},
          "info": {"authors": [{"name": "bench"}], "doc": "pyfaidx loader"},
          "output_schema": {"inputs": seq, "metadata": {"ranges": {"type": "GenomicRanges", "doc": "r"}}}}
    for fname, obj in (("model.yaml", model), ("dataloader.yaml", dl)):
        with open(os.path.join(d, fname), "w") as fh:
            yaml.safe_dump(obj, fh, sort_keys=False)
    rs = np.random.RandomState(seed + 1)
    bed = os.path.join(root, f"{name}.bed")
    with open(bed, "w") as fh:
        for i in range(n_regions):
            s = int(rs.randint(2000, 1_000_000 - 2000))
            fh.write(f"chr{i % 2 + 1}\t{s}\t{s + 200}\n")
    return d, bed, n_params


def write_genome(path, seed=0):
    rs = np.random.RandomState(seed)
    with open(path, "w") as fh:
        for c in (1, 2):
            s = "".join(rs.choice(list("ACGT"), 1_000_000))
            fh.write(f">chr{c}\n")
            for i in range(0, len(s), 60):
                fh.write(s[i:i + 60] + "\n")


def timed(cmd, cwd, env):
    """Run ``cmd``; return (wall s, CPU s (user+sys), peak RSS MiB, returncode, stderr tail)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, p.returncode, err[-2000:]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n_basset", type=int, default=384)
    ap.add_argument("--n_deepbind", type=int, default=8192)
    ap.add_argument("--quick", action="store_true", help="1 repeat, small N (smoke test)")
    ap.add_argument("--out", default=RESULTS)
    a = ap.parse_args(argv)
    if a.quick:
        a.repeats, a.n_basset, a.n_deepbind = 1, 128, 2048

    root = tempfile.mkdtemp(prefix="bench-kipoi-predict-")
    home = os.path.join(root, "home")
    os.makedirs(home)
    env = dict(os.environ, HOME=home, PYTHONWARNINGS="ignore")
    results = {"benchmark": "kipoi_predict", "description": __doc__.strip().splitlines()[0],
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "python": platform.python_version()},
               "load_average_start": os.getloadavg(), "configs": {}}
    try:
        import torch
        import h5py
        results["machine"]["torch"] = torch.__version__
        results["machine"]["torch_threads"] = torch.get_num_threads()
        fasta = os.path.join(root, "genome.fa")
        write_genome(fasta)
        import pyfaidx
        pyfaidx.Faidx(fasta)     # index once, outside the timings
        for name, n in (("basset", a.n_basset), ("deepbind", a.n_deepbind)):
            cfg = CONFIGS[name]
            d, bed, n_params = write_model(root, name, cfg, n)
            dla = json.dumps({"intervals_file": bed, "fasta_file": fasta, "seq_len": cfg["seq_len"],
                              "layout": cfg["layout"]})
            tools = ("kipoi", "kipoi_tanger", "kipoi_tanger_threads1")
            runs = {t: [] for t in tools}
            cpu = {t: [] for t in tools}
            rss = {t: [] for t in tools}
            for r in range(a.repeats):
                for tool in (tools if r % 2 == 0 else tools[::-1]):
                    out = os.path.join(root, f"{name}-{tool}.h5")
                    if os.path.exists(out):
                        os.remove(out)
                    if tool == "kipoi":
                        cmd = [os.path.join(BIN, "kipoi"), "predict", d, "--source", "dir",
                               "--dataloader_args", dla, "-o", out]
                    else:
                        cmd = [os.path.join(BIN, "kipoi-tanger"), "predict", d, "--dataloader_args", dla,
                               "-o", out, "-q", "--device", "cpu"]
                        if tool.endswith("threads1"):
                            cmd += ["--threads", "1"]
                    wall, cpus, peak, rc, err = timed(cmd, root, env)
                    if rc != 0:
                        raise SystemExit(f"{tool} failed ({rc}):\n{err}")
                    runs[tool].append(round(wall, 3))
                    cpu[tool].append(round(cpus, 3))
                    rss[tool].append(round(peak, 1))
                    print(f"{name:8s} {tool:22s} run {r + 1}: wall {wall:7.2f} s  CPU {cpus:7.2f} s  "
                          f"peak RSS {peak:7.1f} MiB  (load {os.getloadavg()[0]:.1f})", flush=True)
            with h5py.File(os.path.join(root, f"{name}-kipoi.h5")) as fk, \
                    h5py.File(os.path.join(root, f"{name}-kipoi_tanger.h5")) as ft:
                pk, pt = fk["preds"][:], ft["preds"][:]
            med = {k: statistics.median(v) for k, v in runs.items()}
            med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
            results["configs"][name] = {
                "n_regions": n, "seq_len": cfg["seq_len"], "input_shape": cfg["shape"], "n_params": n_params,
                "batch_size": 32, "wall_s": runs, "median_wall_s": med, "cpu_s": cpu, "median_cpu_s": med_cpu,
                "speedup_median_cpu": round(med_cpu["kipoi"] / med_cpu["kipoi_tanger"], 3),
                "speedup_median": round(med["kipoi"] / med["kipoi_tanger"], 3),
                "speedup_median_threads1": round(med["kipoi"] / med["kipoi_tanger_threads1"], 3),
                "regions_per_s": {k: round(n / v, 1) for k, v in med.items()},
                "peak_rss_mib": {k: max(v) for k, v in rss.items()},
                "preds_identical": bool(np.array_equal(pk, pt)),
                "preds_max_abs_diff": float(np.abs(pk - pt).max()),
            }
            print(f"{name}: kipoi {med['kipoi']:.2f} s, kipoi-tanger {med['kipoi_tanger']:.2f} s "
                  f"({results['configs'][name]['speedup_median']:.2f}x), with --threads 1 "
                  f"{med['kipoi_tanger_threads1']:.2f} s ({results['configs'][name]['speedup_median_threads1']:.2f}x); "
                  f"identical preds: {results['configs'][name]['preds_identical']}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["load_average_end"] = os.getloadavg()
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump(results, fh, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
