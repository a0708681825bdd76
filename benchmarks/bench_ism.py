"""In-silico saturation mutagenesis, side by side with tangermeme 1.6.0.

Two models, raw outputs (``y_hat`` for every edit), batch_size 32:

* ``basset``: a Basset-like CNN (600 bp; conv 300×19, 200×11, 200×7 with eval
  BatchNorm, ReLU and max pools 3/4/4; dense 1000, 1000, 164; sigmoid),
  full ISM (1 800 edits per sequence);
* ``bpnet``: ``CountsOnly(BPNetLike())`` (2114 bp, 64 filters, 8 dilated
  residual layers), the 200 bp window at the centre (600 edits per sequence).

Implementations, each timed in a fresh subprocess (one small warm-up call
first), repeats interleaved:

* ``kipoi_tanger``: ``saturation_mutagenesis`` (fast path);
* ``tangermeme_fast``: tangermeme's ``fast=True`` — the job is sized so its
  fastISM engages (it does only for jobs of more than 30 s at the full-forward
  rate; ``engaged`` in the JSON says whether it did);
* ``tangermeme_full``: tangermeme's ``fast=False``, which is also the parity
  reference (max |y_hat - reference| / max |reference|).

The *floor* is the time the multiply-adds of recomputing only the receptive
fields an edit touches (layer by layer, dense layers over the touched
columns only; counted by kipoi_tanger's engine) take at the multiply-add rate
of plain full forward passes on this machine; ``x_floor`` is each
implementation's time over it. Peak memory is the peak current RSS during
the call minus the RSS before it.

Usage: python benchmarks/bench_ism.py [--quick] [--models basset bpnet] [--n N] [--repeats R]
       [--threads T]   (defaults: N=4 sequences per model, 2 repeats; --quick: N=1, 1 repeat,
       tangermeme's fast path will not engage)
Writes benchmarks/results/ism.json.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'tests'))
sys.path.insert(0, os.path.join(HERE, '..'))
from _measure import RSSSampler  # noqa: E402

IMPLS = ('kipoi_tanger', 'tangermeme_fast', 'tangermeme_full')
BATCH_SIZE = 32
MODELS = {
    'basset': {'length': 600, 'start': 0, 'end': -1},
    'bpnet': {'length': 2114, 'start': 957, 'end': 1157},
}


def make_model(name):
    import torch
    from torch import nn
    if name == 'bpnet':
        from architectures import BPNetLike, CountsOnly
        torch.manual_seed(0)
        return CountsOnly(BPNetLike()).eval()

    class Basset(nn.Module):
        def __init__(self, length=600, n_out=164):
            super().__init__()

            def block(ci, co, k, p):
                return [nn.Conv1d(ci, co, k, padding=k // 2), nn.BatchNorm1d(co), nn.ReLU(),
                        nn.MaxPool1d(p)]
            self.features = nn.Sequential(*block(4, 300, 19, 3), *block(300, 200, 11, 4),
                                          *block(200, 200, 7, 4))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(200 * (length // 48), 1000), nn.ReLU(),
                                      nn.Dropout(0.3), nn.Linear(1000, 1000), nn.ReLU(), nn.Dropout(0.3),
                                      nn.Linear(1000, n_out), nn.Sigmoid())

        def forward(self, x):
            return self.head(self.features(x))
    torch.manual_seed(0)
    m = Basset()
    g = torch.Generator().manual_seed(0)
    for mod in m.modules():   # trained-looking BatchNorm statistics
        if isinstance(mod, nn.BatchNorm1d):
            mod.running_mean.copy_(torch.rand(mod.running_mean.shape, generator=g) - 0.5)
            mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
    return m.eval()


def child(model_name, impl, n, out, threads):
    import warnings
    import torch
    if threads:
        torch.set_num_threads(threads)
    from kipoi_tanger.utils import random_one_hot
    cfg = MODELS[model_name]
    model = make_model(model_name)
    X = random_one_hot((n, 4, cfg['length']), random_state=0)
    engaged = None
    if impl == 'kipoi_tanger':
        from kipoi_tanger.saturation_mutagenesis import saturation_mutagenesis as f
        kw = {}
    else:
        import tangermeme.saturation_mutagenesis as tsm
        f = tsm.saturation_mutagenesis
        kw = {'fast': impl == 'tangermeme_fast'}
        engaged = [0]
        Orig = tsm._FastISM

        class Counting(Orig):
            def __init__(self, *a, **k):
                engaged[0] += 1
                super().__init__(*a, **k)
        tsm._FastISM = Counting
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        mid = cfg['length'] // 2
        f(model, X[:1], start=mid, end=mid + 2, raw_outputs=True, batch_size=BATCH_SIZE, device='cpu', **kw)
        if engaged:
            engaged[0] = 0
        del caught[:]
        before = RSSSampler.now()
        with RSSSampler() as rss:
            wall, cpu = time.perf_counter(), time.process_time()
            res = f(model, X, start=cfg['start'], end=cfg['end'], raw_outputs=True, batch_size=BATCH_SIZE,
                    device='cpu', **kw)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if out:
        torch.save(res.y_hat, out)
    print(json.dumps({'impl': impl, 'model': model_name, 'n': n, 'wall_s': wall, 'cpu_s': cpu,
                      'peak_rss_above_start_mib': rss.peak - before,
                      'engaged': None if engaged is None else engaged[0] > 0,
                      'warnings': sorted({str(w.message)[:160] for w in caught}),
                      'threads': torch.get_num_threads()}), flush=True)


def floor_child(model_name, n, threads):
    """Multiply-adds of the touched receptive fields per edit, and the
    multiply-add rate of full forwards (batches of 32) on this machine."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    from kipoi_tanger._fast_ism import FastISM
    from kipoi_tanger.utils import random_one_hot
    cfg = MODELS[model_name]
    model = make_model(model_name)
    X = random_one_hot((1, 4, cfg['length']), random_state=0).float()
    L = cfg['length']
    with torch.no_grad():
        eng = FastISM(model, None, 0)
        eng.reference(X, [])
        z = torch.zeros(1, dtype=torch.long)
        ref = int(X[0, :, L // 2].argmax())
        alts = torch.tensor([a for a in range(4) if a != ref])
        _, macs = eng.edits(z, z + L // 2, z + ref, alts, 3)
        Xb = X.repeat(BATCH_SIZE, 1, 1)
        model(Xb)
        t = time.perf_counter()
        for _ in range(3):
            model(Xb)
        per_seq = (time.perf_counter() - t) / (3 * BATCH_SIZE)
    print(json.dumps({'floor_macs_per_edit': macs / 3, 'full_macs_per_seq': eng.full_macs,
                      'full_forward_s_per_seq': per_seq}), flush=True)


def run_child(args):
    cmd = [sys.executable, os.path.abspath(__file__)] + [str(a) for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--quick', action='store_true', help='N=1, one repeat')
    p.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    p.add_argument('--n', type=int, default=None)
    p.add_argument('--repeats', type=int, default=None)
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    p.add_argument('--child', nargs=2)
    p.add_argument('--floor')
    p.add_argument('--out', default='')
    a = p.parse_args()
    if a.child:
        return child(a.child[0], a.child[1], a.n, a.out, a.threads)
    if a.floor:
        return floor_child(a.floor, a.n, a.threads)

    import torch
    n = a.n or (1 if a.quick else 4)
    repeats = a.repeats or (1 if a.quick else 2)
    load_before = os.getloadavg()
    results = {}
    for model_name in a.models:
        cfg = MODELS[model_name]
        width = (cfg['length'] if cfg['end'] == -1 else cfg['end']) - cfg['start']
        n_edits = n * width * 3
        runs = {k: [] for k in IMPLS}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(repeats):
                order = IMPLS[r % len(IMPLS):] + IMPLS[:r % len(IMPLS)]
                for impl in order:
                    out = os.path.join(tmp, f'{impl}.pt') if r == 0 else ''
                    res = run_child(['--child', model_name, impl, '--n', n, '--out', out,
                                     '--threads', a.threads])
                    res['loadavg_1min_after'] = os.getloadavg()[0]
                    runs[impl].append(res)
                    print(f"{model_name:6s} {impl:16s} N={n} wall {res['wall_s']:7.2f} s  cpu "
                          f"{res['cpu_s']:7.2f} s  peak +{res['peak_rss_above_start_mib']:.0f} MiB"
                          + (f"  fast engaged: {res['engaged']}" if res['engaged'] is not None else ''),
                          flush=True)
            floor = run_child(['--floor', model_name, '--n', 1, '--threads', a.threads])
            ys = {k: torch.load(os.path.join(tmp, f'{k}.pt')) for k in IMPLS}
        ref = ys['tangermeme_full']
        scale = ref.abs().max().item()
        mac_rate = floor['full_macs_per_seq'] / floor['full_forward_s_per_seq']
        floor_s = n_edits * floor['floor_macs_per_edit'] / mac_rate
        summary = {}
        for impl in IMPLS:
            walls = [x['wall_s'] for x in runs[impl]]
            summary[impl] = {
                'wall_s_min': round(min(walls), 3), 'wall_s_all': [round(w, 3) for w in walls],
                'cpu_s_min': round(min(x['cpu_s'] for x in runs[impl]), 3),
                'edits_per_s': round(n_edits / min(walls), 1),
                'x_floor': round(min(walls) / floor_s, 2),
                'peak_rss_above_start_mib': round(max(x['peak_rss_above_start_mib'] for x in runs[impl]), 1),
                'max_abs_diff_over_scale': (ys[impl] - ref).abs().max().item() / scale,
                'loadavg_1min_after_each': [round(x['loadavg_1min_after'], 2) for x in runs[impl]],
            }
            if runs[impl][0]['engaged'] is not None:
                summary[impl]['fast_engaged'] = all(x['engaged'] for x in runs[impl])
            summary[impl]['warnings'] = sorted({w for x in runs[impl] for w in x['warnings']})
        ours = summary['kipoi_tanger']['wall_s_min']
        best = min(summary['tangermeme_fast']['wall_s_min'], summary['tangermeme_full']['wall_s_min'])
        results[model_name] = {
            'model': model_name, 'length': cfg['length'], 'edited_span': width, 'n_sequences': n,
            'n_edits': n_edits, 'batch_size': BATCH_SIZE,
            'floor': {'macs_per_edit': floor['floor_macs_per_edit'],
                      'full_forward_macs_per_seq': floor['full_macs_per_seq'],
                      'macs_fraction_of_full_forward': round(floor['floor_macs_per_edit']
                                                             / floor['full_macs_per_seq'], 4),
                      'full_forward_macs_per_s': round(mac_rate), 'floor_s': round(floor_s, 3)},
            'results': summary,
            'ratios': {'vs_tangermeme_best': round(best / ours, 2),
                       'vs_tangermeme_fast': round(summary['tangermeme_fast']['wall_s_min'] / ours, 2),
                       'vs_tangermeme_full': round(summary['tangermeme_full']['wall_s_min'] / ours, 2)},
        }
        print(json.dumps(results[model_name]['ratios']), flush=True)
    result = {
        'benchmark': 'ism', 'repeats': repeats,
        'targets': {'vs_tangermeme_best': 2.0, 'max_abs_diff_over_scale': 1e-5},
        'host': {'machine': platform.machine(), 'cpus': os.cpu_count(), 'python': platform.python_version(),
                 'torch': torch.__version__, 'torch_threads': a.threads or torch.get_num_threads(),
                 'loadavg_before': load_before, 'loadavg_after': os.getloadavg()},
        'models': results,
    }
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    path = os.path.join(HERE, 'results', 'ism.json')
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
    print('wrote', path)


if __name__ == '__main__':
    main()
