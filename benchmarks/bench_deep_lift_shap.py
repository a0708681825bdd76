"""deep_lift_shap throughput and memory, side by side with tangermeme 1.6.0 and captum.

BPNet-like model (2114 bp, 64 filters, 8 dilated residual layers, CountsOnly
wrapper), N examples x 20 references, batch_size 32 pairs, one fixed
references tensor shared by all three implementations:

* kipoi_tanger.deep_lift_shap.deep_lift_shap
* tangermeme.deep_lift_shap.deep_lift_shap
* captum DeepLiftShap, one example (20 references) per call, through
  tangermeme's ``_captum_deep_lift_shap`` (hypothetical projection, x mask)
* kipoi_tanger again with dead-branch pruning switched off
  (``deep_lift_shap(..., prune=False)``): the profile head then runs
  on every row as in the other two, which is the figure for models whose every
  module reaches the output

Every timed call runs in a fresh subprocess (one warm-up call on 1 example x 2
references first; kipoi_tanger's first-batch model check, cached per model, is
cleared so the timed call pays for it), repeats are interleaved across implementations so that
background load hits all alike; the minimum over repeats (the run least
disturbed by other processes) drives the ratios, medians are reported too. Peak memory is
the peak *current* RSS during the timed call minus the RSS just before it
(sampled every millisecond from /proc). A run of kipoi_tanger on N/4 examples
shows that peak memory does not grow with N x n_shuffles. Attributions are
compared with tangermeme's (max |diff| / max |tangermeme|).

Usage: python benchmarks/bench_deep_lift_shap.py [--quick] [--n N] [--repeats R] [--threads T]
(defaults: N=32, 3 repeats; --quick: N=2, 1 repeat)
Writes benchmarks/results/deep_lift_shap.json.
"""
import argparse
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
sys.path.insert(0, os.path.join(HERE, '..', 'tests'))
sys.path.insert(0, os.path.join(HERE, '..'))

N_SHUFFLES = 20
BATCH_SIZE = 32
IMPLS = ('kipoi_tanger', 'tangermeme', 'captum', 'kipoi_tanger_no_pruning')




def make_inputs(workdir, n):
    import torch
    from architectures import BPNetLike, CountsOnly
    from tangermeme.ersatz import dinucleotide_shuffle
    from tangermeme.utils import random_one_hot

    torch.manual_seed(0)
    model = CountsOnly(BPNetLike())
    X = random_one_hot((n, 4, 2114), random_state=0).float()
    refs = dinucleotide_shuffle(X, n=N_SHUFFLES, random_state=1).float()
    path = os.path.join(workdir, 'inputs.pt')
    torch.save({'state': model.state_dict(), 'X': X, 'refs': refs}, path)
    return path


def child(impl, inputs, n, out, threads):
    """One timed call in this (fresh) process; prints a JSON line."""
    import warnings
    import torch
    if threads:
        torch.set_num_threads(threads)
    from architectures import BPNetLike, CountsOnly
    d = torch.load(inputs)
    model = CountsOnly(BPNetLike())
    model.load_state_dict(d['state'])
    X, refs = d['X'][:n], d['refs'][:n]
    extra = {}
    if impl.startswith('kipoi_tanger'):
        from kipoi_tanger.deep_lift_shap import deep_lift_shap as f
        # Without pruning the profile head runs on every row, as in the other two.
        extra = {'prune': impl == 'kipoi_tanger'}
    elif impl == 'tangermeme':
        from tangermeme.deep_lift_shap import deep_lift_shap as f
    else:
        from tangermeme.deep_lift_shap import _captum_deep_lift_shap as f
    kw = dict(device='cpu', batch_size=BATCH_SIZE, **extra)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # captum's hook notice
        f(model, X[:1], references=refs[:1, :2], **kw)
        if impl.startswith('kipoi_tanger'):
            # The timed call pays for kipoi_tanger's first-batch model check too (cached per model).
            from kipoi_tanger import _deeplift_check
            _deeplift_check._PLANS.clear()
        before = RSSSampler.now()
        with RSSSampler() as rss:
            wall, cpu = time.perf_counter(), time.process_time()
            attr = f(model, X, references=refs, **kw)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if out:
        torch.save(attr, out)
    print(json.dumps({'impl': impl, 'n': n, 'wall_s': wall, 'cpu_s': cpu,
                      'peak_rss_above_start_mib': rss.peak - before, 'rss_start_mib': before,
                      'threads': torch.get_num_threads()}), flush=True)


def run_child(impl, inputs, n, out, threads):
    cmd = [sys.executable, os.path.abspath(__file__), '--child', impl, '--inputs', inputs, '--n', str(n),
           '--out', out or '', '--threads', str(threads or 0)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{impl} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--quick', action='store_true', help='N=2, one repeat')
    p.add_argument('--n', type=int, default=None)
    p.add_argument('--repeats', type=int, default=None)
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    p.add_argument('--child')
    p.add_argument('--inputs')
    p.add_argument('--out')
    a = p.parse_args()
    if a.child:
        return child(a.child, a.inputs, a.n, a.out, a.threads)

    import torch
    n = a.n or (2 if a.quick else 32)
    repeats = a.repeats or (1 if a.quick else 3)
    load_before = os.getloadavg()
    runs = {k: [] for k in IMPLS}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_inputs(tmp, n)
        for r in range(repeats):
            for impl in IMPLS:
                out = os.path.join(tmp, f'{impl}.pt') if r == 0 else None
                res = run_child(impl, inputs, n, out, a.threads)
                res['loadavg_1min_after'] = os.getloadavg()[0]
                runs[impl].append(res)
                print(f"{impl:24s} N={n} wall {res['wall_s']:7.2f} s  cpu {res['cpu_s']:7.2f} s  "
                      f"peak +{res['peak_rss_above_start_mib']:.0f} MiB", flush=True)
        quarter = run_child('kipoi_tanger', inputs, max(1, n // 4), None, a.threads)
        attrs = {k: torch.load(os.path.join(tmp, f'{k}.pt')) for k in IMPLS}

    ref = attrs['tangermeme']
    scale = ref.abs().max().item()
    pairs = n * N_SHUFFLES
    summary = {}
    for impl in IMPLS:
        walls = [x['wall_s'] for x in runs[impl]]
        cpus = [x['cpu_s'] for x in runs[impl]]
        summary[impl] = {
            'wall_s_min': round(min(walls), 3), 'wall_s_median': round(median(walls), 3),
            'wall_s_all': [round(w, 3) for w in walls],
            'cpu_s_min': round(min(cpus), 3), 'cpu_s_all': [round(c, 3) for c in cpus],
            'loadavg_1min_after_each': [round(x['loadavg_1min_after'], 2) for x in runs[impl]],
            'pairs_per_s': round(pairs / min(walls), 2),
            'peak_rss_above_start_mib': round(max(x['peak_rss_above_start_mib'] for x in runs[impl]), 1),
            'max_abs_diff_over_tangermeme_scale': ((attrs[impl] - ref).abs().max().item() / scale),
        }
    ours = summary['kipoi_tanger']

    def ratio(impl, key):
        return round(summary[impl][key] / ours[key], 2)

    result = {
        'benchmark': 'deep_lift_shap',
        'model': 'CountsOnly(BPNetLike()): 2114 bp, 64 filters, 8 dilated residual layers',
        'n_examples': n, 'n_shuffles': N_SHUFFLES, 'batch_size': BATCH_SIZE, 'repeats': repeats,
        'torch_threads': runs['kipoi_tanger'][0]['threads'],
        'host': {'machine': platform.machine(), 'cpus': os.cpu_count(), 'python': platform.python_version(),
                 'torch': torch.__version__, 'loadavg_before': load_before, 'loadavg_after': os.getloadavg()},
        'results': summary,
        'ratios': {
            'throughput_vs_tangermeme': ratio('tangermeme', 'wall_s_min'),
            'throughput_vs_captum': ratio('captum', 'wall_s_min'),
            'throughput_vs_tangermeme_median_wall': ratio('tangermeme', 'wall_s_median'),
            'throughput_vs_captum_median_wall': ratio('captum', 'wall_s_median'),
            'throughput_vs_tangermeme_cpu_time': ratio('tangermeme', 'cpu_s_min'),
            'throughput_vs_captum_cpu_time': ratio('captum', 'cpu_s_min'),
            # The same without dead-branch pruning (models whose every module reaches the output).
            'no_pruning_throughput_vs_tangermeme': round(summary['tangermeme']['wall_s_min']
                                                         / summary['kipoi_tanger_no_pruning']['wall_s_min'], 2),
            'no_pruning_throughput_vs_captum': round(summary['captum']['wall_s_min']
                                                     / summary['kipoi_tanger_no_pruning']['wall_s_min'], 2),
            'no_pruning_throughput_vs_tangermeme_cpu_time': round(
                summary['tangermeme']['cpu_s_min'] / summary['kipoi_tanger_no_pruning']['cpu_s_min'], 2),
            'no_pruning_throughput_vs_captum_cpu_time': round(
                summary['captum']['cpu_s_min'] / summary['kipoi_tanger_no_pruning']['cpu_s_min'], 2),
            'peak_memory_vs_tangermeme': round(ours['peak_rss_above_start_mib']
                                               / max(summary['tangermeme']['peak_rss_above_start_mib'], 1e-9), 3),
        },
        'targets': {'vs_tangermeme': 2.0, 'vs_captum': 1.5, 'max_abs_diff_over_scale': 1e-5},
        'memory_scaling': {
            'kipoi_tanger_peak_rss_above_start_mib_at_n': round(ours['peak_rss_above_start_mib'], 1),
            'n_quarter': quarter['n'],
            'kipoi_tanger_peak_rss_above_start_mib_at_n_quarter': round(quarter['peak_rss_above_start_mib'], 1),
        },
    }
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    path = os.path.join(HERE, 'results', 'deep_lift_shap.json')
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result['ratios'], indent=2))
    print('max |diff| / scale:', {k: f"{v['max_abs_diff_over_tangermeme_scale']:.2e}" for k, v in summary.items()})
    print('wrote', path)


if __name__ == '__main__':
    main()
