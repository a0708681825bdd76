"""predict overhead and apply_product memory, side by side with their anchors.

1. predict on the BPNet-like model (2114 bp, 64 filters, 8 dilated residual
   layers, tuple output) against a bare ``with torch.no_grad(): model(X[i:i+b])``
   loop and against tangermeme 1.6.0's predict. Runs are interleaved and the
   minimum of the repeats is reported, so background load hits all three alike.
2. apply_product(predict) peak memory as the product grows 10× and 100×, each
   case in a fresh subprocess (peak RSS above the post-warm-up baseline, minus
   the output tensor), for kipoi_tanger and tangermeme.
3. The perturbation ops with the default predict on the SmallCNN (200 bp):
   marginalize_annotations, ablate_annotations, space (kipoi_tanger shares
   forward passes between annotations/spacings, tangermeme calls predict for
   each) and ablate, against tangermeme 1.6.0, results checked to agree.

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


def perturbation_ops(quick):
    import warnings
    import torch
    from architectures import SmallCNN
    from kipoi_tanger.ablate import ablate, ablate_annotations
    from kipoi_tanger.marginalize import marginalize_annotations
    from kipoi_tanger.space import space
    from kipoi_tanger.utils import random_one_hot
    from tangermeme.ablate import ablate as tm_ablate
    from tangermeme.ablate import ablate_annotations as tm_ablate_annotations
    from tangermeme.marginalize import marginalize_annotations as tm_marginalize_annotations
    from tangermeme.space import space as tm_space

    torch.manual_seed(0)
    model = SmallCNN().eval()
    n_ann = 50 if quick else 200
    X = random_one_hot((50, 4, 200), random_state=0).float()
    X0 = random_one_hot((8, 4, 200), random_state=1).float()
    rng = torch.Generator().manual_seed(0)
    starts = torch.randint(0, 190, (n_ann,), generator=rng)
    ann = torch.stack([torch.randint(0, 50, (n_ann,), generator=rng), starts, starts + 10], 1)
    spacing = torch.arange(0, 40 if quick else 150).reshape(-1, 1)
    common = dict(batch_size=64, device='cpu')
    cases = {
        'marginalize_annotations': (
            lambda: marginalize_annotations(model, X, X0, ann, **common),
            lambda: tm_marginalize_annotations(model, X, X0, ann, **common)),
        'ablate_annotations': (
            lambda: ablate_annotations(model, X, ann, n=20, random_state=0, **common),
            lambda: tm_ablate_annotations(model, X, ann, n=20, random_state=0, **common)),
        'space': (lambda: space(model, X0, ['GATAAG', 'CACGTG'], spacing, **common),
                  lambda: tm_space(model, X0, ['GATAAG', 'CACGTG'], spacing, **common)),
        'ablate': (lambda: ablate(model, X, 90, 110, n=20, random_state=0, **common),
                   lambda: tm_ablate(model, X, 90, 110, n=20, random_state=0, **common)),
    }
    out = {}
    for name, (ours, theirs) in cases.items():
        times = {'kipoi_tanger': [], 'tangermeme': []}
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for r in range(2 if quick else 3):
                for impl, f in ([('kipoi_tanger', ours), ('tangermeme', theirs)][::1 - 2 * (r % 2)]):
                    t0 = time.perf_counter()
                    res = f()
                    times[impl].append(time.perf_counter() - t0)
                    if impl == 'kipoi_tanger':
                        a = res
                    else:
                        b = res
        diff = max(float((x - y).abs().max()) for x, y in zip(a, b))
        scale = max(float(y.abs().max()) for y in b)
        assert diff <= 1e-5 * max(scale, 1.0), (name, diff, scale)
        best = {k: min(v) for k, v in times.items()}
        out[name] = {'seconds_min': best, 'seconds_all': times, 'max_abs_diff': diff,
                     'scale': scale, 'speedup_vs_tangermeme': best['tangermeme'] /
                     best['kipoi_tanger']}
    return {'model': 'SmallCNN(200 bp, 3 outputs)', 'n_annotations': n_ann,
            'annotation_length': 10, 'X': [50, 4, 200], 'X0': [8, 4, 200],
            'n_spacings': len(spacing), 'n_shuffles': 20, 'batch_size': 64, 'cases': out}


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
        'perturbation_ops': perturbation_ops(quick),
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
    for name, c in result['perturbation_ops']['cases'].items():
        print(f"{name:24s} kipoi_tanger {c['seconds_min']['kipoi_tanger']:.2f}s, tangermeme "
              f"{c['seconds_min']['tangermeme']:.2f}s ({c['speedup_vs_tangermeme']:.1f}x), "
              f"max |diff| {c['max_abs_diff']:.1e}")
    print("wrote", path)


if __name__ == '__main__':
    main()
