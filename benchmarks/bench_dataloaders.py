"""Dataloader throughput and memory, side by side with their anchors.

1. dataloaders/interval_onehot against kipoiseq's ``SeqIntervalDl`` (the
   loader most zoo models use): 10k BED6 intervals of 1 kb (half on the minus
   strand) on a synthetic 10 Mb genome, ``batch_iter(batch_size=32)`` over the
   whole dataset. Both produce (L, 4) float32 one-hot with strand handling;
   the outputs are checked to be identical. IntervalOneHot's default (4, L)
   layout is timed too, and (L, 4) with an exclusion list of 200 regions
   (``exclude``, ~2% of the genome as ENCODE's hg38 list; construction then
   runs ``bedtools intersect`` through pybedtools). Runs are interleaved in one process and the minimum
   of the repeats is reported (background load hits every loader alike);
   construction time is reported apart and in the end-to-end figure.
2. dataloaders/hdf5_predictions against kipoi's own ``HDF5Reader.batch_iter``
   on a 10k-row file written by kipoi's ``HDF5BatchWriter``.
3. Peak memory: each case runs again in a fresh subprocess that samples its
   RSS from /proc; reported is the peak above the RSS after imports.

Usage: .venv/bin/python benchmarks/bench_dataloaders.py [--quick]
Needs kipoiseq (``pip install kipoiseq``; the bench extra) and the bedtools
program (``make bedtools``). Writes
benchmarks/results/dataloaders.json.
"""
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _measure import RSSSampler  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BATCH = 32


def _setup_env():
    # kipoi reads/creates ~/.kipoi at import: keep it in a throwaway HOME.
    if "KIPOI_BENCH_HOME" not in os.environ:
        os.environ["KIPOI_BENCH_HOME"] = tempfile.mkdtemp(prefix="kipoi-bench-home-")
    os.environ["HOME"] = os.environ["KIPOI_BENCH_HOME"]
    import numpy as np
    if not hasattr(np, "string_"):  # numpy 2: aliases kipoi's HDF5 writer uses
        np.string_ = np.bytes_
    if not hasattr(np, "unicode_"):
        np.unicode_ = np.str_


def _load(component, cls):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "_bench_" + component, os.path.join(ROOT, "dataloaders", component, "dataloader.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, cls)




# ----------------------------------------------------------------------------
# Data

def make_data(folder, n_intervals, width=1000, n_chroms=4, chrom_len=2_500_000, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    fa = os.path.join(folder, "genome.fa")
    with open(fa, "w") as f:
        for c in range(n_chroms):
            seq = rng.choice(np.frombuffer(b"ACGT", dtype=np.uint8), chrom_len)
            seq[rng.integers(0, chrom_len, chrom_len // 200)] = ord("N")
            f.write(">chr%d\n" % (c + 1))
            lines = seq[: chrom_len - chrom_len % 60].reshape(-1, 60)
            f.write("\n".join(row.tobytes().decode() for row in lines) + "\n")
            if chrom_len % 60:
                f.write(seq[chrom_len - chrom_len % 60:].tobytes().decode() + "\n")
    import pyfaidx
    pyfaidx.Faidx(fa).close()
    with open(os.path.join(folder, "exclude.bed"), "w") as f:
        for _ in range(200):  # ~1 kb regions, ~2% of the genome
            s = int(rng.integers(0, chrom_len - 2000))
            f.write("chr%d\t%d\t%d\n" % (rng.integers(1, n_chroms + 1), s, s + int(rng.integers(500, 1500))))
    bed = os.path.join(folder, "intervals.bed")
    with open(bed, "w") as f:
        for i in range(n_intervals):
            s = int(rng.integers(0, chrom_len - width))
            f.write("chr%d\t%d\t%d\tr%d\t0\t%s\n" % (rng.integers(1, n_chroms + 1), s, s + width, i,
                                                      "+-"[i % 2]))
    return fa, bed


def make_h5(folder, n):
    import numpy as np
    from kipoi.writers import HDF5BatchWriter
    rng = np.random.default_rng(1)
    path = os.path.join(folder, "preds.h5")
    if os.path.exists(path):
        os.remove(path)
    w = HDF5BatchWriter(path)
    for a in range(0, n, 1000):
        m = min(1000, n - a)
        w.batch_write({"preds": rng.standard_normal((m, 2)).astype(np.float32), "metadata": {"ranges": {
            "chr": np.array(["chr1"] * m), "start": np.arange(a, a + m) * 10,
            "end": np.arange(a, a + m) * 10 + 1000, "id": np.array(["r%d" % i for i in range(a, a + m)]),
            "strand": np.array(["+"] * m)}}})
    w.close()
    return path


# ----------------------------------------------------------------------------
# Cases: each returns (construct, iterate) callables

def case(name, fa, bed, h5):
    import numpy as np
    if name == "kipoiseq_SeqIntervalDl_L4":
        from kipoiseq.dataloaders import SeqIntervalDl
        make = lambda: SeqIntervalDl(bed, fa, auto_resize_len=1000, use_strand=True,  # noqa: E731
                                     ignore_targets=True, dtype=np.float32)
    elif name == "IntervalOneHot_L4":
        cls = _load("interval_onehot", "IntervalOneHot")
        make = lambda: cls(bed, fa, seq_len=1000, layout="(L, A)")  # noqa: E731
    elif name == "IntervalOneHot_L4_exclude":
        import warnings
        cls = _load("interval_onehot", "IntervalOneHot")
        excl = os.path.join(os.path.dirname(bed), "exclude.bed")

        def make():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the count of excluded intervals
                return cls(bed, fa, seq_len=1000, layout="(L, A)", exclude=excl)
    elif name == "IntervalOneHot_4L":
        cls = _load("interval_onehot", "IntervalOneHot")
        make = lambda: cls(bed, fa, seq_len=1000)  # noqa: E731
    elif name == "kipoi_HDF5Reader":
        from kipoi.readers import HDF5Reader

        def make():
            r = HDF5Reader(h5)
            r.open()
            return r
    elif name == "HDF5Predictions":
        cls = _load("hdf5_predictions", "HDF5Predictions")
        make = lambda: cls(h5, names="m")  # noqa: E731
    else:
        raise ValueError(name)

    def iterate(dl):
        n = 0
        for b in dl.batch_iter(batch_size=BATCH):
            x = b["inputs"] if "inputs" in b else b["preds"]
            n += len(x if not isinstance(x, dict) else next(iter(x.values())))
        return n
    return make, iterate


INTERVAL_CASES = ["kipoiseq_SeqIntervalDl_L4", "IntervalOneHot_L4", "IntervalOneHot_4L",
                  "IntervalOneHot_L4_exclude"]
H5_CASES = ["kipoi_HDF5Reader", "HDF5Predictions"]


def timings(fa, bed, h5, repeats):
    out = {}
    for group in (INTERVAL_CASES, H5_CASES):
        made = {name: case(name, fa, bed, h5) for name in group}
        for name, (make, iterate) in made.items():  # warm-up: imports, page cache
            iterate(make())
        best = {name: [float("inf"), float("inf"), 0] for name in group}
        for _ in range(repeats):
            for name, (make, iterate) in made.items():
                t0 = time.perf_counter()
                dl = make()
                t1 = time.perf_counter()
                n = iterate(dl)
                t2 = time.perf_counter()
                b = best[name]
                b[0], b[1], b[2] = min(b[0], t1 - t0), min(b[1], t2 - t1), n
        for name, (init_s, iter_s, n) in best.items():
            out[name] = {"n": n, "construct_s": round(init_s, 4), "iterate_s": round(iter_s, 4),
                         "throughput_per_s": round(n / iter_s, 1),
                         "end_to_end_per_s": round(n / (init_s + iter_s), 1)}
    return out


def parity(fa, bed):
    """Same one-hot at A/C/G/T, same ranges; N columns differ by design
    (kipoiseq writes 0.25 everywhere, tangermeme and we write zeros)."""
    import numpy as np
    from kipoiseq.dataloaders import SeqIntervalDl
    ours = _load("interval_onehot", "IntervalOneHot")(bed, fa, seq_len=1000, layout="(L, A)")
    theirs = SeqIntervalDl(bed, fa, auto_resize_len=1000, use_strand=True, ignore_targets=True,
                           dtype=np.float32)
    same, n_cols = True, 0
    for a, b in zip(ours.batch_iter(batch_size=256), theirs.batch_iter(batch_size=256)):
        x, y = a["inputs"], b["inputs"]
        n = (y == 0.25).all(axis=-1)
        n_cols += int(n.sum())
        same &= bool(np.array_equal(x[~n], y[~n]) and not x[n].any())
        for k in ("chr", "start", "end", "strand"):  # kipoiseq ids are row numbers
            same &= bool(np.array_equal(a["metadata"]["ranges"][k].astype(str),
                                        np.asarray(b["metadata"]["ranges"][k]).astype(str)))
    return {"identical_except_N": same, "N_columns": n_cols,
            "N_encoding": "IntervalOneHot 0 (tangermeme), kipoiseq 0.25"}


def memory_child(name, fa, bed, h5):
    make, iterate = case(name, fa, bed, h5)
    import numpy  # noqa: F401  (imports belong to the baseline)
    base = RSSSampler.now()
    with RSSSampler() as s:
        iterate(make())
    print(json.dumps({"baseline_mib": round(base, 1), "peak_above_baseline_mib": round(s.peak - base, 1)}))


def main():
    _setup_env()
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        memory_child(*sys.argv[2:6])
        return
    quick = "--quick" in sys.argv
    n, repeats = (2000, 1) if quick else (10000, 3)
    import numpy as np
    import kipoiseq
    with tempfile.TemporaryDirectory() as folder:
        fa, bed = make_data(folder, n)
        h5 = make_h5(folder, n)
        same = parity(fa, bed)
        t = timings(fa, bed, h5, repeats)
        mem = {}
        for name in INTERVAL_CASES + H5_CASES:
            out = subprocess.run([sys.executable, __file__, "--child", name, fa, bed, h5],
                                 capture_output=True, text=True, check=True)
            mem[name] = json.loads(out.stdout.strip().splitlines()[-1])
    for name in t:
        t[name].update(mem[name])
    k, o = t["kipoiseq_SeqIntervalDl_L4"], t["IntervalOneHot_L4"]
    result = {
        "benchmark": "dataloaders",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "numpy": np.__version__, "kipoiseq": kipoiseq.__version__,
                    "platform": platform.platform()},
        "setup": {"intervals": n, "width": 1000, "genome_mb": 10, "batch_size": BATCH,
                  "repeats": repeats, "timing": "min over interleaved repeats, one process",
                  "memory": "peak RSS above post-import baseline, fresh subprocess per case"},
        "interval_onehot_vs_kipoiseq": {
            "parity": same,
            "cases": {name: t[name] for name in INTERVAL_CASES},
            "throughput_ratio_L4": round(o["throughput_per_s"] / k["throughput_per_s"], 2),
            "throughput_ratio_4L": round(t["IntervalOneHot_4L"]["throughput_per_s"]
                                         / k["throughput_per_s"], 2),
            "end_to_end_ratio_L4": round(o["end_to_end_per_s"] / k["end_to_end_per_s"], 2),
            "exclude_construct_overhead_s": round(t["IntervalOneHot_L4_exclude"]["construct_s"]
                                                  - o["construct_s"], 4),
            "target_ratio": 5.0,
        },
        "hdf5_predictions_vs_kipoi_reader": {
            "cases": {name: t[name] for name in H5_CASES},
            "throughput_ratio": round(t["HDF5Predictions"]["throughput_per_s"]
                                      / t["kipoi_HDF5Reader"]["throughput_per_s"], 2),
        },
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "dataloaders.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    r = result["interval_onehot_vs_kipoiseq"]
    print("interval_onehot vs kipoiseq SeqIntervalDl ({} x 1 kb, batch {}): {:.0f}/s vs {:.0f}/s = {}x "
          "((A, L) layout {}x, end-to-end {}x), parity: {}".format(
              n, BATCH, o["throughput_per_s"], k["throughput_per_s"], r["throughput_ratio_L4"],
              r["throughput_ratio_4L"], r["end_to_end_ratio_L4"], same))
    e = t["IntervalOneHot_L4_exclude"]
    print("with exclude (200 regions): {} of {} intervals kept, construction {:.3f} s vs {:.3f} s".format(
        e["n"], n, e["construct_s"], o["construct_s"]))
    print("peak RSS above baseline: kipoiseq {} MiB, IntervalOneHot {} MiB".format(
        k["peak_above_baseline_mib"], o["peak_above_baseline_mib"]))
    h = result["hdf5_predictions_vs_kipoi_reader"]
    print("hdf5_predictions vs kipoi HDF5Reader: {:.0f}/s vs {:.0f}/s = {}x".format(
        t["HDF5Predictions"]["throughput_per_s"], t["kipoi_HDF5Reader"]["throughput_per_s"],
        h["throughput_ratio"]))
    print("wrote", path)


if __name__ == "__main__":
    main()
