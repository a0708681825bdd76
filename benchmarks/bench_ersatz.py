"""dinucleotide_shuffle side by side with tangermeme 1.6.0.

1. Speed: 1000 x 2114 bp x 20 shuffles, int8 -> int8 and float32 -> float32,
   for tangermeme (numba kernel, warmed up first so its compile is not timed),
   kipoi_tanger's default compiled walk (numba) and its numpy fallback (same
   shuffles). Runs are interleaved; the minimum of the repeats is reported
   (background load hits all alike), with process CPU time next to wall time.
2. Small calls as deep_lift_shap makes them: 32 x 2114 bp, n=1, one seed per row.
3. Peak memory, each case in a fresh subprocess: peak RSS above the baseline
   taken after a warm-up call (sampled from /proc every millisecond, and
   ru_maxrss as a cross-check), against the size of the output tensor.
4. Uniformity: distinct shuffles of ACCCACGATGATG in 2000 draws (27 exist).
5. Cold start, as a CLI run pays it: the first call in a fresh process with an
   empty numba cache (NUMBA_CACHE_DIR: compile) and again with that cache
   filled (load), for kipoi_tanger and tangermeme (imports not counted).
6. local_dinucleotide_shuffle (200 x 2114 bp, 20 shuffles, 512-bp bins).

Before timing, 3 GiB is touched once and freed: on a VM the first touch of
guest memory can cost seconds per GiB (host faults), which would land on
whichever implementation happens to allocate it first.

Usage: python benchmarks/bench_ersatz.py [--quick]
Writes benchmarks/results/ersatz.json.
"""
import json
import os
import platform
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))


sys.path.insert(0, HERE)
from _measure import RSSSampler  # noqa: E402

rss_mib = RSSSampler.now


def implementations():
    """name -> callable(X, n, random_state)."""
    from tangermeme.ersatz import dinucleotide_shuffle as tm_shuffle
    from kipoi_tanger import _shuffle, ersatz

    def ours(compiled):
        def run(X, n, random_state):
            saved = _shuffle.kernel
            _shuffle.kernel = _shuffle._numba_walk if compiled else (lambda: None)
            try:
                return ersatz.dinucleotide_shuffle(X, n=n, random_state=random_state)
            finally:
                _shuffle.kernel = saved
        return run

    impls = {'tangermeme': lambda X, n, random_state: tm_shuffle(X, n=n,
                                                                   random_state=random_state),
             'kipoi_tanger_numpy': ours(False)}
    if _shuffle._numba_walk() is not None:
        impls['kipoi_tanger_numba'] = ours(True)
    return impls


def check_shuffles(X, Y):
    """Dinucleotide counts and ends preserved (on a subset, for speed)."""
    import torch
    X, Y = X[:20].long(), Y[:20].long()
    cx, cy = X.argmax(1), Y.argmax(2)
    pair_x = torch.nn.functional.one_hot(cx[:, :-1] * 4 + cx[:, 1:], 16).sum(1)
    pair_y = torch.nn.functional.one_hot(cy[..., :-1] * 4 + cy[..., 1:], 16).sum(2)
    assert torch.equal(pair_y, pair_x[:, None].expand_as(pair_y))
    assert torch.equal(cy[..., 0], cx[:, None, 0].expand_as(cy[..., 0]))
    assert torch.equal(cy[..., -1], cx[:, None, -1].expand_as(cy[..., -1]))
    assert (Y.sum(2) == 1).all()


def speed(n_seq, length, n, repeats):
    import torch
    from kipoi_tanger.utils import random_one_hot
    impls = implementations()
    X8 = random_one_hot((n_seq, 4, length), random_state=0)
    cases = {}
    for dtype in (torch.int8, torch.float32):
        X = X8.to(dtype)
        for f in impls.values():  # warm-up: numba compiles/loads, first-call costs
            f(X[:4], 2, 0)
        wall = {k: [] for k in impls}
        cpu = {k: [] for k in impls}
        for _ in range(repeats):
            for name, f in impls.items():
                t0, c0 = time.perf_counter(), time.process_time()
                Y = f(X, n, 0)
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
                assert Y.shape == (n_seq, n, 4, length) and Y.dtype == dtype
                check_shuffles(X, Y)
                del Y
        best = {k: min(v) for k, v in wall.items()}
        best_cpu = {k: min(v) for k, v in cpu.items()}
        cases[str(dtype).replace('torch.', '')] = {
            'seconds_min': best, 'cpu_seconds_min': best_cpu,
            'seconds_all': wall, 'cpu_seconds_all': cpu,
            'speedup_vs_tangermeme': {k: best['tangermeme'] / best[k] for k in impls
                                      if k != 'tangermeme'},
            'cpu_speedup_vs_tangermeme': {k: best_cpu['tangermeme'] / best_cpu[k]
                                          for k in impls if k != 'tangermeme'},
        }
    return {'n_sequences': n_seq, 'length': length, 'n_shuffles': n, 'repeats': repeats,
            'cases': cases}


def small_calls(repeats):
    from kipoi_tanger.utils import random_one_hot
    impls = implementations()
    X = random_one_hot((32, 4, 2114), random_state=1)
    seeds = [7] * 32
    out = {}
    for name, f in impls.items():
        f(X, 1, seeds)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            f(X, 1, seeds)
            times.append(time.perf_counter() - t0)
        out[name] = min(times)
    return {'shape': [32, 4, 2114], 'n_shuffles': 1, 'random_state': 'one seed per row',
            'seconds_min': out}


def _memory_worker(impl, n_seq, length, n, dtype_name):
    import gc
    import torch
    from kipoi_tanger.utils import random_one_hot
    f = implementations()[impl]
    X = random_one_hot((n_seq, 4, length), random_state=0).to(getattr(torch, dtype_name))
    f(X[:4], 2, 0)
    gc.collect()
    base = rss_mib()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with RSSSampler() as sampler:
        Y = f(X, n, 0)
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out_mib = Y.numel() * Y.element_size() / 2 ** 20
    peak = sampler.peak - base
    print(json.dumps({
        'impl': impl, 'dtype': dtype_name, 'output_mib': out_mib,
        'peak_above_baseline_mib': peak, 'peak_over_output': peak / out_mib,
        'maxrss_above_baseline_mib': maxrss_after - base if maxrss_after > maxrss_before else None,
    }))


def memory(n_seq, length, n):
    rows = []
    for impl in implementations():
        for dtype in ('int8', 'float32'):
            res = subprocess.check_output(
                [sys.executable, __file__, '--memory-worker', impl, str(n_seq), str(length), str(n),
                 dtype], text=True)
            rows.append(json.loads(res.strip().splitlines()[-1]))
    return rows


def uniformity(draws=2000):
    import collections
    import torch
    from tangermeme.ersatz import dinucleotide_shuffle as tm_shuffle
    from kipoi_tanger.ersatz import dinucleotide_shuffle
    from kipoi_tanger.utils import one_hot_encode
    X = one_hot_encode('ACCCACGATGATG')[None]
    out = {}
    for name, f in (('tangermeme', tm_shuffle), ('kipoi_tanger', dinucleotide_shuffle)):
        Y = f(X, n=draws, random_state=0)[0].argmax(1)
        counts = collections.Counter(tuple(y.tolist()) for y in Y)
        out[name] = {'distinct': len(counts), 'min_count': min(counts.values()),
                     'max_count': max(counts.values())}
    return {'sequence': 'ACCCACGATGATG', 'possible': 27, 'draws': draws, 'results': out}


_COLD = r"""
import json, sys, time
import torch
from kipoi_tanger.utils import random_one_hot
t0 = time.perf_counter()
import numba  # both import it; timed apart so the first call is compile/load only
import_numba = time.perf_counter() - t0
X = random_one_hot((32, 4, 2114), random_state=0)
if sys.argv[1] == 'tangermeme':
    from tangermeme.ersatz import dinucleotide_shuffle
else:
    from kipoi_tanger.ersatz import dinucleotide_shuffle
t0 = time.perf_counter()
dinucleotide_shuffle(X, n=1, random_state=0)
first = time.perf_counter() - t0
t0 = time.perf_counter()
dinucleotide_shuffle(X, n=1, random_state=1)
print(json.dumps({'import_numba_s': import_numba, 'first_call_s': first,
                  'second_call_s': time.perf_counter() - t0}))
"""


def cold_start():
    """First call in a fresh process: empty numba cache (compile), then filled (load)."""
    import tempfile
    out = {}
    for impl in ('kipoi_tanger', 'tangermeme'):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            runs = []
            for _ in range(2):  # compile, then load from the cache
                res = subprocess.check_output([sys.executable, '-c', _COLD, impl], env=env,
                                              text=True, cwd=os.path.join(HERE, '..'))
                runs.append(json.loads(res.strip().splitlines()[-1]))
        out[impl] = {'empty_cache': runs[0], 'filled_cache': runs[1]}
    return {'shape': [32, 4, 2114], 'n_shuffles': 1, 'results': out}


def local_shuffle(n_seq, repeats):
    import torch
    from tangermeme.ersatz import local_dinucleotide_shuffle as tm_local
    from kipoi_tanger.ersatz import local_dinucleotide_shuffle
    from kipoi_tanger.utils import random_one_hot
    X = random_one_hot((n_seq, 4, 2114), random_state=2)
    impls = {'tangermeme': tm_local, 'kipoi_tanger': local_dinucleotide_shuffle}
    times = {k: [] for k in impls}
    import warnings
    for _ in range(repeats):
        for name, f in impls.items():
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                f(X[:4], n=2, bin_size=512, min_bin_size=256, random_state=0)
                t0 = time.perf_counter()
                Y = f(X, n=20, bin_size=512, min_bin_size=256, random_state=0)
                times[name].append(time.perf_counter() - t0)
            assert Y.shape == (n_seq, 20, 4, 2114)
            check_shuffles(X, Y)  # bins keep ends and dinucleotides: so does the sequence
            del Y
    best = {k: min(v) for k, v in times.items()}
    return {'shape': [n_seq, 4, 2114], 'n_shuffles': 20, 'bin_size': 512, 'min_bin_size': 256,
            'seconds_min': best, 'seconds_all': times,
            'speedup_vs_tangermeme': best['tangermeme'] / best['kipoi_tanger']}


def main():
    if '--memory-worker' in sys.argv:
        i = sys.argv.index('--memory-worker')
        impl, n_seq, length, n, dtype = sys.argv[i + 1:i + 6]
        _memory_worker(impl, int(n_seq), int(length), int(n), dtype)
        return
    quick = '--quick' in sys.argv
    import numpy
    import torch
    warm = numpy.ones(3 << 30, dtype=numpy.uint8)  # see the module docstring
    del warm
    n_seq = 200 if quick else 1000
    result = {
        'benchmark': 'ersatz.dinucleotide_shuffle',
        'machine': {'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
                    'load_average_at_start': os.getloadavg(),
                    'python': platform.python_version(), 'torch': torch.__version__,
                    'numpy': numpy.__version__},
        'speed': speed(n_seq, 2114, 20, repeats=2 if quick else 3),
        'small_calls': small_calls(repeats=3 if quick else 5),
        'memory': memory(n_seq, 2114, 20),
        'uniformity': uniformity(),
        'cold_start': cold_start(),
        'local_dinucleotide_shuffle': local_shuffle(50 if quick else 200, 2 if quick else 3),
    }
    result['speed']['default'] = 'kipoi_tanger_numba'  # the numpy walk is the fallback
    result['machine']['load_average_at_end'] = os.getloadavg()
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    path = os.path.join(HERE, 'results', 'ersatz.json')
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)

    sp = result['speed']
    for dtype, c in sp['cases'].items():
        line = ', '.join(f"{k} {v:.2f}s (cpu {c['cpu_seconds_min'][k]:.2f}s)"
                         for k, v in c['seconds_min'].items())
        ratios = ', '.join(f"{k} {v:.1f}x (cpu {c['cpu_speedup_vs_tangermeme'][k]:.1f}x)"
                           for k, v in c['speedup_vs_tangermeme'].items())
        print(f"dinucleotide_shuffle {sp['n_sequences']}x{sp['length']}x{sp['n_shuffles']} "
              f"{dtype}: {line}; speed-up {ratios}")
    print("small calls (32x2114, n=1, per-row seeds): " + ', '.join(
        f"{k} {v * 1e3:.1f} ms" for k, v in result['small_calls']['seconds_min'].items()))
    for r in result['memory']:
        print(f"peak memory {r['impl']:20s} {r['dtype']:8s}: {r['peak_above_baseline_mib']:.0f} MiB "
              f"= {r['peak_over_output']:.2f}x the {r['output_mib']:.0f} MiB output")
    u = result['uniformity']
    print(f"uniformity {u['sequence']} ({u['possible']} possible, {u['draws']} draws): " + ', '.join(
        f"{k} {v['distinct']} distinct" for k, v in u['results'].items()))
    for impl, c in result['cold_start']['results'].items():
        print(f"cold start {impl:12s}: first call {c['empty_cache']['first_call_s']:.2f}s with an "
              f"empty numba cache, {c['filled_cache']['first_call_s']:.2f}s with it filled "
              f"(then {c['filled_cache']['second_call_s'] * 1e3:.0f} ms a call)")
    ls = result['local_dinucleotide_shuffle']
    print(f"local_dinucleotide_shuffle {ls['shape'][0]}x2114x20: " + ', '.join(
        f"{k} {v:.2f}s" for k, v in ls['seconds_min'].items())
        + f"; speed-up {ls['speedup_vs_tangermeme']:.1f}x")
    print("wrote", path)


if __name__ == '__main__':
    main()
