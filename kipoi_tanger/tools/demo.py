"""``kipoi-tanger demo`` (``make demo``): the main kipoi_tanger job on shipped example files.

Runs the shipped ``example_models/motif_cnn`` Kipoi model (BPNet-style CNN with
planted GATA/E-box motifs) over its example FASTA + BED through Kipoi's own
dataloader, streaming into HDF5 files in Kipoi's layout:

1. predictions (``preds/profile``, ``preds/counts``, region metadata) + a TSV,
2. DeepLIFT/SHAP attributions of the count output (20 dinucleotide shuffles),
3. marginalization of the GATA motif ``GATAAG``,
4. attribution logos and a self-contained HTML report.
"""
import os
import time
from typing import Dict, Optional

__all__ = ["demo", "default_model"]


def default_model() -> str:
    """The shipped ``example_models/motif_cnn`` (in the installed package or the source checkout)."""
    from .zoo.data import data_dir
    return os.path.join(data_dir("example_models"), "motif_cnn")


def demo(out: str = "demo_output", model: Optional[str] = None, n_shuffles: int = 20) -> Dict[str, str]:
    """Run the demo into ``out``; returns ``{name: path}`` of what it wrote (progress on stdout).

    Raises
    ------
    ValueError
        When the model dir does not exist (one line).
    """
    from ..run import run
    from .plot import plot_attributions
    from .report import write_report

    model = model or default_model()
    if not os.path.isdir(model):
        raise ValueError(f"demo: model dir {model} not found (pass --model DIR)")
    os.makedirs(out, exist_ok=True)
    paths = {
        'predictions': os.path.join(out, 'predictions.h5'),
        'predictions_tsv': os.path.join(out, 'predictions.tsv'),
        'attributions': os.path.join(out, 'attributions.h5'),
        'marginalize': os.path.join(out, 'marginalize_GATAAG.h5'),
        'logos': os.path.join(out, 'logos'),
        'report': os.path.join(out, 'report.html'),
    }
    common = dict(example=True, keep_metadata=True, overwrite=True, verbose=True)

    t0 = time.perf_counter()
    print(f"[1/4] predict        {model} on its example FASTA/BED", flush=True)
    run('predict', model, [paths['predictions'], paths['predictions_tsv']], **common)
    print(f"[2/4] deeplift-shap  counts output, {n_shuffles} dinucleotide shuffles", flush=True)
    run('deeplift-shap', model, [paths['attributions']], keep_inputs=True, n_shuffles=n_shuffles, random_state=0,
        **common)
    print("[3/4] marginalize    GATAAG in the middle of every region", flush=True)
    run('marginalize', model, [paths['marginalize']], motif='GATAAG', **common)
    print("[4/4] logos + report", flush=True)
    plot_attributions(paths['attributions'], paths['logos'], top=3)
    write_report(paths['attributions'], paths['report'])

    print(f"\ndone in {time.perf_counter() - t0:.0f} s; outputs:")
    for name, path in paths.items():
        print(f"  {name:16s} {os.path.abspath(path)}")
    print(f"\nopen the report: {os.path.abspath(paths['report'])}")
    return paths
