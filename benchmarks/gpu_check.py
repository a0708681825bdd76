"""``make gpu-check``: CUDA throughput and CPU parity in under five minutes.

Not part of ``make bench`` (its name does not start with ``bench_``) and never
run in CI: it needs a CUDA device. For predict (BPNet-like, 2114 bp, tuple
output) and deep_lift_shap (the same model's counts head, 20 references per
example) it reports sequences per second on the CPU and on CUDA (TF32 off, and
TF32 on, torch's cuDNN default) and the largest difference from the CPU result
relative to its scale. Writes benchmarks/results/gpu_check.json.

Usage: python benchmarks/gpu_check.py [--n N]
"""
import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests'))
sys.path.insert(0, os.path.join(HERE, '..'))


def _timed(fn, sync):
    fn()          # warm-up: cuDNN autotuning, allocator
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def main(argv=None):
    import torch
    from architectures import BPNetLike, CountsOnly
    from kipoi_tanger.deep_lift_shap import deep_lift_shap
    from kipoi_tanger.ersatz import dinucleotide_shuffle
    from kipoi_tanger.predict import predict
    from kipoi_tanger.utils import random_one_hot

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=256, help="sequences for predict (deep_lift_shap uses n/8)")
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device; nothing to measure", file=sys.stderr)
        return 2

    torch.manual_seed(0)
    model = BPNetLike()
    X = random_one_hot((a.n, 4, 2114), random_state=0).float()
    nd = max(1, a.n // 8)
    refs = dinucleotide_shuffle(X[:nd], n=20, random_state=0)
    counts = CountsOnly(model)

    def cpu_sync():
        pass

    def rel(x, ref):
        return float((x - ref).abs().max() / ref.abs().max().clamp_min(1e-12))

    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "host": platform.node(),
           "n_predict": a.n, "n_deep_lift_shap": nd, "n_shuffles": 20}
    y_cpu, t_cpu = _timed(lambda: predict(model, X[:64], batch_size=64, device='cpu')[1], cpu_sync)
    res["predict_cpu_seq_per_s"] = 64 / t_cpu
    a_cpu, td_cpu = _timed(lambda: deep_lift_shap(counts, X[:2], references=refs[:2], batch_size=40,
                                                   device='cpu'), cpu_sync)
    res["deep_lift_shap_cpu_seq_per_s"] = 2 / td_cpu
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
        key = "tf32" if tf32 else "fp32"
        y, t = _timed(lambda: predict(model, X, batch_size=128, device='cuda')[1], torch.cuda.synchronize)
        res[f"predict_cuda_{key}_seq_per_s"] = a.n / t
        res[f"predict_cuda_{key}_max_rel_diff"] = rel(y[:64], y_cpu)
        torch.cuda.reset_peak_memory_stats()
        att, t = _timed(lambda: deep_lift_shap(counts, X[:nd], references=refs, batch_size=160, device='cuda'),
                        torch.cuda.synchronize)
        res[f"deep_lift_shap_cuda_{key}_seq_per_s"] = nd / t
        res[f"deep_lift_shap_cuda_{key}_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
        res[f"deep_lift_shap_cuda_{key}_max_rel_diff"] = rel(att[:2], a_cpu)
    res["predict_speedup_fp32"] = res["predict_cuda_fp32_seq_per_s"] / res["predict_cpu_seq_per_s"]
    res["deep_lift_shap_speedup_fp32"] = res["deep_lift_shap_cuda_fp32_seq_per_s"] / res["deep_lift_shap_cpu_seq_per_s"]
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    with open(os.path.join(HERE, 'results', 'gpu_check.json'), 'w') as fh:
        json.dump(res, fh, indent=1, sort_keys=True)
    for k in sorted(res):
        print(f"{k:40s} {res[k]}")
    ok = res["predict_cuda_fp32_max_rel_diff"] < 1e-5 and res["deep_lift_shap_cuda_fp32_max_rel_diff"] < 1e-5
    print("parity with CPU (TF32 off, 1e-5 of scale):", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
