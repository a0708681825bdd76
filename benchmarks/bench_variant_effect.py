"""Variant scoring, side by side with a tangermeme 1.6.0 pipeline.

Both score the same SNVs (random positions of a random 2 Mb chromosome,
REF from the FASTA) with ``diff`` on the Basset-like model of ``bench_ism.py``
(600 bp windows, the SNV at index L // 2), in two scenarios: one ALT at each
site, and all three ALTs of each site in one multi-allelic record (an
all-possible-SNVs VCF):

* ``kipoi_tanger``: ``read_vcf`` → ``variant_windows`` → ``batches`` (64) →
  ``VariantScorer`` (streamed; the alternative windows through the fast ISM
  engine);
* ``kipoi_tanger_cli``: the command line, ``kipoi-tanger variant-effect MODEL_DIR
  --vcf ... --fasta ... -o out.h5`` (``cli.main`` in the measured process, so
  Python's start-up is not counted; the model dir holds the same network):
  model loading, the VCF's record count, the journal, the HDF5 file and the
  skipped-records TSV included;
* ``tangermeme``: ``tangermeme.io.read_vcf`` (pandas), pyfaidx windows,
  ``one_hot_encode``, one row of ``X`` per ALT (as its docs say to score
  several ALTs of a site), then ``substitution_effect`` (batch 64) on all of
  them and ``y_after - y_before``.

Each runs in a fresh subprocess (warm-up on 16 variants first), repeats
interleaved; the scores are compared (max |diff| / max |y_before|). Memory:
kipoi_tanger's pipeline and command line are run again at growing VCF sizes
with a light model (one conv layer and a mean; the pipeline's memory does not
depend on the model) and their peak RSS above the start is reported per size;
it must stay flat. tangermeme's pipeline holds every window in memory, so it is only run
at the throughput size.

Usage: python benchmarks/bench_variant_effect.py [--quick] [--n N] [--memory-sizes 10000 100000 1000000]
       [--repeats R] [--threads T]
       (defaults: N=2000, memory sizes 10000 100000, 2 repeats; --quick: N=200, sizes 2000 10000, 1 repeat)
Writes benchmarks/results/variant_effect.json.
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
sys.path.insert(0, os.path.join(HERE, '..'))
from _measure import RSSSampler  # noqa: E402

L = 600
GENOME = 2_000_000
BATCH = 64
IMPLS = ('kipoi_tanger', 'kipoi_tanger_cli', 'tangermeme')

MODEL_PY = """import sys
sys.path.insert(0, {here!r})
sys.path.insert(0, {tests!r})
{make}
"""
MAKE = {'basset': "from bench_ism import make_model\nmodel = make_model('basset')",
        'light': "from bench_variant_effect import light_model\nmodel = light_model()"}


def write_model_dir(d, model_name):
    """A Kipoi model dir (type: pytorch, module_obj + weights) holding the benchmark's network, with a
    stub dataloader (variant-effect cuts its own windows); returns its path."""
    import torch
    import yaml
    md = os.path.join(d, f'kipoi_{model_name}')
    if os.path.isdir(md):
        return md
    os.makedirs(md)
    with open(os.path.join(md, 'model.py'), 'w') as f:
        f.write(MODEL_PY.format(here=HERE, tests=os.path.join(HERE, '..', 'tests'), make=MAKE[model_name]))
    if model_name == 'basset':
        from bench_ism import make_model
        net, n_out = make_model('basset'), 164
    else:
        net, n_out = light_model(), 2
    torch.save(net.state_dict(), os.path.join(md, 'weights.pth'))
    with open(os.path.join(md, 'dataloader.py'), 'w') as f:
        f.write("import numpy as np\nfrom kipoi.data import Dataset\n\n\nclass Dl(Dataset):\n"
                "    def __init__(self, n=1):\n        self.n = n\n\n    def __len__(self):\n"
                "        return self.n\n\n    def __getitem__(self, i):\n"
                f"        return {{'inputs': np.zeros((4, {L}), dtype=np.float32)}}\n")
    seq = {'name': 'seq', 'shape': f'(4, {L})', 'special_type': 'DNASeq', 'doc': 'one-hot DNA'}
    info = {'authors': [{'name': 'kipoi_tanger benchmarks'}], 'doc': 'benchmark network'}
    with open(os.path.join(md, 'model.yaml'), 'w') as f:
        yaml.safe_dump({'type': 'pytorch', 'args': {'module_file': 'model.py', 'module_obj': 'model',
                                                    'weights': 'weights.pth'},
                        'default_dataloader': '.', 'info': info, 'dependencies': {'conda': ['pytorch']},
                        'schema': {'inputs': seq, 'targets': {'name': 'probs', 'shape': f'({n_out},)',
                                                              'doc': 'outputs'}}}, f)
    with open(os.path.join(md, 'dataloader.yaml'), 'w') as f:
        yaml.safe_dump({'type': 'Dataset', 'defined_as': 'dataloader.Dl',
                        'args': {'n': {'doc': 'regions', 'optional': True}}, 'info': info,
                        'output_schema': {'inputs': seq}}, f)
    return md


def head_vcf(vcf, n):
    """The first n records of a VCF, as a new file next to it (the command line's warm-up)."""
    path = f'{vcf}.head{n}.vcf'
    with open(vcf) as f, open(path, 'w') as o:
        k = 0
        for line in f:
            if not line.startswith('#'):
                k += 1
                if k > n:
                    break
            o.write(line)
    return path


def cli(model_dir, vcf, fa, limit=None, keep=True):
    """``kipoi-tanger variant-effect`` (cli.main in this process) into an HDF5 file, read back."""
    import h5py
    import numpy
    from kipoi_tanger import cli as kt_cli
    v = head_vcf(vcf, limit) if limit else vcf
    out = f'{v}.kt.h5'
    rc = kt_cli.main(['variant-effect', model_dir, '--vcf', v, '--fasta', fa, '--batch_size', str(BATCH),
                      '--device', 'cpu', '-o', out, '-q', '--overwrite'])
    if rc != 0:
        raise RuntimeError(f'kipoi-tanger variant-effect exited with {rc}')
    with h5py.File(out, 'r') as f:
        n = len(f['diff'])
        diff = f['diff'][:].astype('float32') if keep else numpy.array([float(f['diff'][:1].sum())])
    return diff, n


def make_genome(d):
    import numpy
    rs = numpy.random.RandomState(0)
    g = ''.join(rs.choice(list('ACGT'), GENOME))
    with open(os.path.join(d, 'g.fa'), 'w') as f:
        f.write('>chr1\n' + '\n'.join(g[i:i + 60] for i in range(0, GENOME, 60)) + '\n')
    return g


def make_vcf(d, g, n, name, alts_per_site=1):
    """n SNVs: one ALT at each of n random sites, or all three ALTs of n // 3
    sites (one multi-allelic record each, as in an all-possible-SNVs VCF).
    Sites repeat beyond ~2M variants."""
    import numpy
    rs = numpy.random.RandomState(n)
    pool = numpy.arange(L, GENOME - L)
    n_sites = n // alts_per_site
    pos = numpy.sort(rs.choice(pool, n_sites, replace=n_sites > len(pool)))
    path = os.path.join(d, name)
    with open(path, 'w') as f:
        f.write(f'##fileformat=VCFv4.2\n##contig=<ID=chr1,length={GENOME}>\n'
                '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                '#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n')
        for k, p in enumerate(pos):
            r = g[p - 1]
            if alts_per_site == 3:
                a = ','.join(b for b in 'ACGT' if b != r)
            else:
                a = 'ACGT'[('ACGT'.index(r) + 1 + k % 3) % 4]
            f.write(f'chr1\t{p}\tv{k}\t{r}\t{a}\t.\t.\t.\tGT\t0/1\n')
    return path


def light_model():
    import torch
    from torch import nn
    torch.manual_seed(0)

    class Light(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(4, 8, 15, padding=7)
            self.lin = nn.Linear(8, 2)

        def forward(self, x):
            return torch.sigmoid(self.lin(torch.relu(self.conv(x)).mean(dim=2)))
    return Light().eval()


def ours(model, vcf, fa, limit=None, keep=True):
    """The streamed pipeline; ``keep=False`` drops each batch's scores once
    summed (what a writer streaming them to disk would hold)."""
    import itertools

    import numpy
    from kipoi_tanger.variants import VariantScorer, batches, read_vcf, variant_windows
    scorer = VariantScorer(model, scores=['diff'], batch_size=BATCH, device='cpu')
    vs = read_vcf(vcf) if not limit else itertools.islice(read_vcf(vcf), limit)
    out, n, total = [], 0, 0.0
    for b in batches(variant_windows(vs, fa, L), BATCH):
        r = scorer(b)
        n += len(r.variants)
        if keep:
            out.append(r.scores[0]['diff'].astype('float32'))
        else:
            total += float(r.scores[0]['diff'].sum())
    return (numpy.concatenate(out) if out else numpy.array([total])), n


def tangermeme_pipeline(model, vcf, fa, limit=None):
    import pyfaidx
    import torch
    from tangermeme.io import read_vcf
    from tangermeme.utils import one_hot_encode
    from tangermeme.variant_effect import substitution_effect
    df = read_vcf(vcf)
    if limit:
        df = df.iloc[:limit]
    genome = pyfaidx.Fasta(fa)
    X, subs = [], []
    for c, p, alts in zip(df['CHROM'], df['POS'], df['ALT']):
        s0 = int(p) - 1 - L // 2
        x = one_hot_encode(str(genome[c][s0:s0 + L]).upper())
        for a in alts.split(','):   # one row of X per ALT, as substitution_effect's docs say
            subs.append((len(X), L // 2, 'ACGT'.index(a)))
            X.append(x)
    y = substitution_effect(model, torch.stack(X).float(), torch.tensor(subs), batch_size=BATCH,
                            device='cpu')
    return (y.y_after - y.y_before).numpy(), len(X), float(y.y_before.abs().max())


def child(impl, vcf, fa, out, threads, model_name):
    import numpy
    import torch
    if threads:
        torch.set_num_threads(threads)
    from bench_ism import make_model
    model = make_model('basset') if model_name == 'basset' else light_model()
    if impl == 'kipoi_tanger':
        def f(m, v, a, limit=None):
            return ours(m, v, a, limit, keep=model_name == 'basset')
    elif impl == 'kipoi_tanger_cli':
        model_dir = write_model_dir(os.path.dirname(os.path.abspath(vcf)), model_name)

        def f(m, v, a, limit=None):
            return cli(model_dir, v, a, limit, keep=model_name == 'basset')
    else:
        f = tangermeme_pipeline
    f(model, vcf, fa, limit=16)                      # warm-up
    before = RSSSampler.now()
    with RSSSampler() as rss:
        wall, cpu = time.perf_counter(), time.process_time()
        res = f(model, vcf, fa)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if out:
        numpy.save(out, res[0])
    print(json.dumps({'impl': impl, 'n': res[1], 'wall_s': wall, 'cpu_s': cpu,
                      'peak_rss_above_start_mib': rss.peak - before,
                      'scale': res[2] if len(res) > 2 else None,
                      'threads': torch.get_num_threads()}), flush=True)


def run_child(args):
    cmd = [sys.executable, os.path.abspath(__file__)] + [str(a) for a in args]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--quick', action='store_true')
    p.add_argument('--n', type=int, default=None, help='variants for the throughput comparison')
    p.add_argument('--memory-sizes', type=int, nargs='+', default=None)
    p.add_argument('--repeats', type=int, default=None)
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--child', nargs=4)
    p.add_argument('--out', default='')
    a = p.parse_args()
    if a.child:
        impl, vcf, fa, model_name = a.child
        return child(impl, vcf, fa, a.out, a.threads, model_name)

    import numpy
    import torch
    n = a.n or (200 if a.quick else 2000)
    sizes = a.memory_sizes or ([2000, 10000] if a.quick else [10000, 100000])
    repeats = a.repeats or (1 if a.quick else 2)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        g = make_genome(d)
        fa = os.path.join(d, 'g.fa')
        scenarios = {}
        for scen, per_site in (('one_alt_per_site', 1), ('all_three_alts_per_site', 3)):
            vcf = make_vcf(d, g, n, f'{scen}.vcf', per_site)
            runs = {k: [] for k in IMPLS}
            for r in range(repeats):
                for impl in (IMPLS if r % 2 == 0 else IMPLS[::-1]):
                    out = os.path.join(d, f'{scen}_{impl}.npy') if r == 0 else ''
                    res = run_child(['--child', impl, vcf, fa, 'basset', '--out', out, '--threads',
                                     a.threads])
                    res['loadavg_1min_after'] = os.getloadavg()[0]
                    runs[impl].append(res)
                    print(f"{scen:24s} {impl:16s} n={res['n']} wall {res['wall_s']:7.2f} s "
                          f"({res['n'] / res['wall_s']:.1f} variants/s)  peak "
                          f"+{res['peak_rss_above_start_mib']:.0f} MiB", flush=True)
            a_theirs = numpy.load(os.path.join(d, f'{scen}_tangermeme.npy'))
            parity = {}
            for impl in IMPLS[:2]:
                a_ours = numpy.load(os.path.join(d, f'{scen}_{impl}.npy'))
                parity[impl] = float(numpy.abs(a_ours - a_theirs).max() / runs['tangermeme'][0]['scale'])
            scenarios[scen] = (runs, parity, int(a_theirs.size))
        memory = []
        for size in sizes:
            v = make_vcf(d, g, size, f'mem{size}.vcf')
            for impl in IMPLS[:2]:
                res = run_child(['--child', impl, v, fa, 'light', '--threads', a.threads])
                memory.append({'impl': impl, 'n_variants': res['n'], 'wall_s': round(res['wall_s'], 2),
                               'variants_per_s': round(res['n'] / res['wall_s'], 1),
                               'peak_rss_above_start_mib': round(res['peak_rss_above_start_mib'], 1)})
                print(f"memory  {impl:16s} n={size}: peak +{res['peak_rss_above_start_mib']:.1f} MiB, "
                      f"{res['n'] / res['wall_s']:.0f} variants/s (light model)", flush=True)
            for f in os.listdir(d):
                if f.startswith(f'mem{size}.vcf'):
                    os.remove(os.path.join(d, f))
    out = {}
    for scen, (runs, parity, n_compared) in scenarios.items():
        summary = {}
        for impl in IMPLS:
            walls = [x['wall_s'] for x in runs[impl]]
            summary[impl] = {'wall_s_min': round(min(walls), 3), 'wall_s_all': [round(w, 3) for w in walls],
                             'cpu_s_min': round(min(x['cpu_s'] for x in runs[impl]), 3),
                             'variants_per_s': round(runs[impl][0]['n'] / min(walls), 1),
                             'peak_rss_above_start_mib': round(max(x['peak_rss_above_start_mib']
                                                                   for x in runs[impl]), 1),
                             'loadavg_1min_after_each': [round(x['loadavg_1min_after'], 2)
                                                         for x in runs[impl]]}
        out[scen] = {'results': summary,
                     'variants_per_s_vs_tangermeme': round(summary['tangermeme']['wall_s_min']
                                                           / summary['kipoi_tanger']['wall_s_min'], 2),
                     'cli_variants_per_s_vs_tangermeme': round(summary['tangermeme']['wall_s_min']
                                                               / summary['kipoi_tanger_cli']['wall_s_min'], 2),
                     'parity_max_abs_diff_over_scale': parity['kipoi_tanger'],
                     'cli_parity_max_abs_diff_over_scale': parity['kipoi_tanger_cli'],
                     'n_scores_compared': n_compared}
    result = {
        'benchmark': 'variant_effect', 'model': 'Basset-like (bench_ism.py), 600 bp, 164 outputs',
        'n_variants': n, 'batch_size': BATCH, 'repeats': repeats,
        'scenarios': out,
        'memory_scaling_light_model': memory,
        'targets': {'variants_per_s_vs_tangermeme': 3.0, 'max_abs_diff_over_scale': 1e-5,
                    'memory': 'flat from 10k to 1M variants'},
        'host': {'machine': platform.machine(), 'cpus': os.cpu_count(), 'python': platform.python_version(),
                 'torch': torch.__version__, 'torch_threads': a.threads or torch.get_num_threads(),
                 'loadavg_before': load_before, 'loadavg_after': os.getloadavg()},
    }
    os.makedirs(os.path.join(HERE, 'results'), exist_ok=True)
    path = os.path.join(HERE, 'results', 'variant_effect.json')
    with open(path, 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: {'library': (v['variants_per_s_vs_tangermeme'], v['parity_max_abs_diff_over_scale']),
                          'cli': (v['cli_variants_per_s_vs_tangermeme'], v['cli_parity_max_abs_diff_over_scale'])}
                      for k, v in out.items()}))
    print('wrote', path)


if __name__ == '__main__':
    main()
