"""predict overhead and apply_product memory, side by side with their anchors.

1. predict on the BPNet-like model (2114 bp, 64 filters, 8 dilated residual
   layers, tuple output) against a bare ``with torch.no_grad(): model(X[i:i+b])``
   loop and against tangermeme 1.6.0's predict. Runs are interleaved and the
   minimum of the repeats is reported, so background load hits all three alike.
2. apply_product(predict) peak memory as the product grows 10× and 100×, each
   case in a fresh subprocess (peak RSS above the post-warm-up baseline, minus
   the output tensor), for kipoi_tanger and tangermeme.

Usage: python benchmarks/bench_predict.py [--quick]
Writes benchmarks/results/predict.json.
"""
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests'))


sys.path.insert(0, HERE)
from _measure import RSSSampler  # noqa: E402


def predict_overhead(n, batch_size, repeats):
    import torch
    from architectures import BPNetLike
    from kipoi_tanger.predict import predict
    from kipoi_tanger.utils import random_one_hot
    from tangermeme.predict import predict as tm_predict

    torch.manual_seed(0)
    model = BPNetLike().eval()
    X = random_one_hot((n, 4, 2114), random_state=0).float()

    def bare():
        outs = []
        with torch.no_grad():
            for i in range(0, len(X), batch_size):
                outs.append(model(X[i:i + batch_size]))
        return [torch.cat([o[k] for o in outs]) for k in range(2)]

    impls = {
        'bare_loop': bare,
        'kipoi_tanger': lambda: predict(model, X, batch_size=batch_size, device='cpu'),
        'tangermeme': lambda: tm_predict(model, X, batch_size=batch_size, device='cpu'),
    }
    for f in impls.values():  # warm-up: every code path once, on a slice
        with torch.no_grad():
            model(X[:2])
    times = {k: [] for k in impls}
    results = {}
    names = list(impls)
    for r in range(repeats):
        # rotate the order each round so no implementation always runs first
        for name in names[r % len(names):] + names[:r % len(names)]:
            f = impls[name]
            t0 = time.perf_counter()
            results[name] = f()
            times[name].append(time.perf_counter() - t0)
    for name in impls:
        for a, b in zip(results[name], results['bare_loop']):
            assert torch.equal(a, b), name
    best = {k: min(v) for k, v in times.items()}
    return {
        'model': 'BPNetLike(2114 bp, 64 filters, 8 dilated residual layers), tuple output',
        'n': n, 'batch_size': batch_size, 'repeats': repeats,
        'seconds_min': best, 'seconds_all': times,
        'overhead_vs_bare_pct': {k: 100 * (best[k] / best['bare_loop'] - 1)
                                 for k in ('kipoi_tanger', 'tangermeme')},
        'speedup_vs_tangermeme': best['tangermeme'] / best['kipoi_tanger'],
        'outputs_identical': True,
    }


def _product_worker(impl, n, k, length, batch_size):
    """Run in a fresh process: peak RSS of one apply_product call."""
    import torch
    from architectures import FlattenDense
    from kipoi_tanger.utils import random_one_hot
    if impl == 'kipoi_tanger':
        from kipoi_tanger.predict import predict
        from kipoi_tanger.product import apply_product
    else:
        from tangermeme.predict import predict
        from tangermeme.product import apply_product
    torch.manual_seed(0)
    model = FlattenDense(length=length)
    X = random_one_hot((n, 4, length), random_state=0).float()
    alpha, beta = torch.randn(k, 1), torch.randn(1, 1)
    apply_product(predict, model, X[:2], args=(alpha[:2], beta), batch_size=batch_size,
                  device='cpu')
    import gc
    gc.collect()
    base = RSSSampler.now()
    with RSSSampler() as sampler:
        t0 = time.perf_counter()
        y = apply_product(predict, model, X, args=(alpha, beta), batch_size=batch_size,
                          device='cpu')
        seconds = time.perf_counter() - t0
    peak = sampler.peak
    out_mib = y.numel() * y.element_size() / 2 ** 20
    materialised_mib = n * k * 4 * length * 4 / 2 ** 20
    print(json.dumps({'impl': impl, 'n': n, 'k': k, 'product': n * k, 'seconds': seconds,
                      'peak_above_baseline_mib': peak - base, 'output_mib': out_mib,
                      'peak_beyond_output_mib': peak - base - out_mib,
                      'materialised_inputs_would_be_mib': materialised_mib}))


def product_memory(quick):
    n, length, batch_size = 100, 1000, 64
    ks = [1, 10] if quick else [1, 10, 100]
    rows = []
    for impl in ('kipoi_tanger', 'tangermeme'):
        for k in ks:
            out = subprocess.check_output(
                [sys.executable, __file__, '--product-worker', impl, str(n), str(k), str(length),
                 str(batch_size)], text=True)
            rows.append(json.loads(out.strip().splitlines()[-1]))
    return {'model': f'FlattenDense(length={length})', 'n': n, 'batch_size': batch_size,
            'cases': rows}


def main():
    if '--product-worker' in sys.argv:
        i = sys.argv.index('--product-worker')
        impl, n, k, length, bs = sys.argv[i + 1:i + 6]
        _product_worker(impl, int(n), int(k), int(length), int(bs))
        return
    quick = '--quick' in sys.argv
    import torch
    result = {
        'benchmark': 'predict',
        'machine': {'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
                    'python': platform.python_version(), 'torch': torch.__version__},
        'predict_overhead': predict_overhead(n=64 if quick else 256, batch_size=64,
                                             repeats=2 if quick else 6),
        'apply_product_memory': product_memory(quick),
    }
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    path = os.path.join(HERE, 'results', 'predict.json')
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
    po = result['predict_overhead']
    print(f"predict BPNetLike n={po['n']}: bare {po['seconds_min']['bare_loop']:.2f}s, "
          f"kipoi_tanger {po['seconds_min']['kipoi_tanger']:.2f}s "
          f"({po['overhead_vs_bare_pct']['kipoi_tanger']:+.2f}%), tangermeme "
          f"{po['seconds_min']['tangermeme']:.2f}s "
          f"({po['overhead_vs_bare_pct']['tangermeme']:+.2f}%)")
    for r in result['apply_product_memory']['cases']:
        print(f"apply_product {r['impl']:12s} product={r['product']:6d}: "
              f"{r['seconds']:.2f}s, peak beyond output {r['peak_beyond_output_mib']:.1f} MiB "
              f"(materialised inputs would be {r['materialised_inputs_would_be_mib']:.0f} MiB)")
    print("wrote", path)


if __name__ == '__main__':
    main()
