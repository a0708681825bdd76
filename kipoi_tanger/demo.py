"""`make demo`: the main kipoi_tanger job on shipped example files.

Runs the shipped ``example_models/motif_cnn`` Kipoi model (BPNet-style CNN with
planted GATA/E-box motifs) over its example FASTA + BED through Kipoi's own
dataloader, streaming into HDF5 files in Kipoi's layout:

1. predictions (``preds/profile``, ``preds/counts``, region metadata) + a TSV,
2. DeepLIFT/SHAP attributions of the count output (20 dinucleotide shuffles),
3. marginalization of the GATA motif ``GATAAG``,
4. attribution logos and a self-contained HTML report.

``python -m kipoi_tanger.demo --out DIR [--model DIR]``
"""
import argparse
import os
import sys
import time


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='demo_output', help="output directory")
    parser.add_argument('--model', default=os.path.join(_repo_root(), 'example_models', 'motif_cnn'),
                        help="Kipoi model dir (default: the shipped motif_cnn)")
    parser.add_argument('--n_shuffles', type=int, default=20)
    args = parser.parse_args(argv)

    from . import runner
    from .plot import plot_attributions
    from .report import write_report

    if not os.path.isdir(args.model):
        print(f"kipoi-tanger demo: error: model dir {args.model} not found "
              "(run from a source checkout)", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    out = {
        'predictions': os.path.join(args.out, 'predictions.h5'),
        'predictions_tsv': os.path.join(args.out, 'predictions.tsv'),
        'attributions': os.path.join(args.out, 'attributions.h5'),
        'marginalize': os.path.join(args.out, 'marginalize_GATAAG.h5'),
        'logos': os.path.join(args.out, 'logos'),
        'report': os.path.join(args.out, 'report.html'),
    }
    common = dict(example=True, keep_metadata=True, overwrite=True, verbose=True)

    t0 = time.perf_counter()
    print(f"[1/4] predict        {args.model} on its example FASTA/BED", flush=True)
    runner.run('predict', args.model, [out['predictions'], out['predictions_tsv']], **common)
    print(f"[2/4] deeplift-shap  counts output, {args.n_shuffles} dinucleotide shuffles", flush=True)
    runner.run('deeplift-shap', args.model, [out['attributions']], keep_inputs=True,
               n_shuffles=args.n_shuffles, random_state=0, **common)
    print("[3/4] marginalize    GATAAG in the middle of every region", flush=True)
    runner.run('marginalize', args.model, [out['marginalize']], motif='GATAAG', **common)
    print("[4/4] logos + report", flush=True)
    plot_attributions(out['attributions'], out['logos'], top=3)
    write_report(out['attributions'], out['report'])

    print(f"\ndone in {time.perf_counter() - t0:.0f} s; outputs:")
    for name, path in out.items():
        print(f"  {name:16s} {os.path.abspath(path)}")
    print(f"\nopen the report: {os.path.abspath(out['report'])}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
