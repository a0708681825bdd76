"""``kipoi-tanger demo`` (``make demo``): the main kipoi_tanger job on shipped example files.

Runs the shipped ``example_models/motif_cnn`` Kipoi model (BPNet-style CNN with
planted GATA/E-box motifs) over its example FASTA + BED through Kipoi's own
dataloader, streaming into HDF5 files in Kipoi's layout:

1. predictions (``preds/profile``, ``preds/counts``, region metadata) + a TSV,
2. hypothetical DeepLIFT/SHAP attributions of the count output (20 dinucleotide shuffles),
3. marginalization of the GATA motif ``GATAAG``,
4. seqlets of the attributions named by the model's ``motifs.meme`` (TOMTOM: the
   planted GATA and E-box motifs come out named) as BED + TSV, the per-base
   attributions as a bigWig track, attribution logos in genomic coordinates and a
   self-contained HTML report listing the named seqlets,
5. tfmodisco-lite inputs. The 32 example regions are too few for modisco to
   find the motifs, and the export says so.

``--modisco`` adds motif discovery on enough data: 300 sequences simulated
with the model's own ``simulate.py`` (seed 11), hypothetical attributions
with 10 shuffles, then ``modisco motifs`` (when modisco-lite is installed)
and each pattern's core named against the planted motifs. Measured: the
E-box (CAGCTG, 242 seqlets) and GATA (CTTATC = GATAAG's reverse complement,
164 seqlets) patterns.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import time
import uuid
import warnings
from typing import Dict, List, Optional

__all__ = ["demo", "default_model", "simulate_regions", "modisco_patterns", "MODISCO_REGIONS"]

MODISCO_REGIONS, MODISCO_SEED, MODISCO_SHUFFLES = 300, 11, 10


def default_model() -> str:
    """The shipped ``example_models/motif_cnn`` (in the installed package or the source checkout)."""
    from .zoo.data import data_dir
    return os.path.join(data_dir("example_models"), "motif_cnn")


def _simulate_module(model):
    path = os.path.join(model, "simulate.py")
    if not os.path.isfile(path):
        raise ValueError(f"demo --modisco: {path} not found (the model dir must be example_models/motif_cnn)")
    spec = importlib.util.spec_from_file_location("_kipoi_tanger_demo_simulate_" + uuid.uuid4().hex, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def simulate_regions(model: str, out_dir: str, n: int = MODISCO_REGIONS, seed: int = MODISCO_SEED) -> Dict[str, str]:
    """Simulated motif_cnn sequences as a FASTA (one record per sequence) + BED for the model's dataloader.

    Returns ``{'fasta_file': ..., 'intervals_file': ..., 'planted': ...}`` (the
    first two are the dataloader's arguments; ``planted`` is a BED of the planted motifs).
    """
    sim = _simulate_module(model)
    data = sim.simulate_dataset(n, seed)
    os.makedirs(out_dir, exist_ok=True)
    paths = {"fasta_file": os.path.join(out_dir, "simulated.fa"),
             "intervals_file": os.path.join(out_dir, "simulated.bed"),
             "planted": os.path.join(out_dir, "planted.bed")}
    with open(paths["fasta_file"], "w") as fa, open(paths["intervals_file"], "w") as bed, \
            open(paths["planted"], "w") as planted:
        for i, (seq, occ) in enumerate(zip(data["seqs"], data["occurrences"])):
            name = f"sim{i:04d}"
            fa.write(f">{name}\n{seq}\n")
            bed.write(f"{name}\t0\t{len(seq)}\t{name}\t0\t+\n")
            for motif, start, strand in occ:
                planted.write(f"{name}\t{start}\t{start + len(sim.MOTIFS[motif])}\t{motif}\t0\t{strand}\n")
    return paths


def modisco_patterns(path: str, motifs: Dict[str, str]) -> List[str]:
    """One line per pattern of a ``modisco motifs`` result: seqlets, its core k-mer, and the motif it is."""
    import h5py
    import numpy as np
    comp = str.maketrans("ACGT", "TGCA")
    lines = []
    with h5py.File(path, "r") as f:
        for group in ("pos_patterns", "neg_patterns"):
            for name in f.get(group, {}):
                p = f[f"{group}/{name}"]
                seq, contrib = p["sequence"][:], p["contrib_scores"][:]
                k = len(next(iter(motifs.values())))
                strength = np.convolve(np.abs(contrib).sum(axis=1), np.ones(k), mode="valid")
                s = int(np.argmax(strength))
                core = "".join("ACGT"[j] for j in seq[s:s + k].argmax(axis=1))
                hit = next((m for m, q in motifs.items() if core in (q, q.translate(comp)[::-1])), None)
                n = int(np.ravel(p["seqlets/n_seqlets"][()])[0])
                lines.append(f"{group[:3]} {name}: {n} seqlets, core {core}"
                             + (f" = {hit} ({motifs[hit]})" if hit else " (no planted motif)"))
    return lines


def _modisco_executable():
    here = os.path.join(os.path.dirname(sys.executable), "modisco")
    return here if os.path.isfile(here) else shutil.which("modisco")


def _export(attributions, prefix):
    from .export import export_modisco
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        res = export_modisco(attributions, prefix)
    for w in caught:
        print(f"      warning: {w.message}", flush=True)
    return res


def _seqlets_and_track(paths, motifs):
    """Seqlets (BED + TSV, named by ``motifs``) and a bigWig of the per-base attributions (chromosome
    sizes from the index of the FASTA the dataloader read)."""
    from .results import Results
    from .seqlets import results_seqlets, write_seqlets
    from .tracks import export_track
    df = results_seqlets(paths['attributions'], motifs=motifs)
    write_seqlets(df, [paths['seqlets_bed'], paths['seqlets_tsv']])
    if motifs is not None:
        counts = df.loc[df['named'], 'motif'].value_counts()
        print(f"      {len(df)} seqlets; named: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none")
              + f"; unnamed {int((~df['named']).sum())}", flush=True)
    fasta = (Results(paths['attributions']).attrs.get('dataloader_args') or {}).get('fasta_file')
    if fasta and os.path.isfile(str(fasta) + '.fai'):
        export_track(paths['attributions'], paths['attributions_bigwig'], fasta)
    else:
        paths.pop('attributions_bigwig')


def demo(out: str = "demo_output", model: Optional[str] = None, n_shuffles: int = 20,
         modisco: bool = False) -> Dict[str, str]:
    """Run the demo into ``out``; returns ``{name: path}`` of what it wrote (progress on stdout).

    Parameters
    ----------
    out : str, default 'demo_output'
    model : str, optional
        Model dir (default: the shipped ``example_models/motif_cnn``).
    n_shuffles : int, default 20
        References per region of the attributions of the example regions.
    modisco : bool, default False
        Also simulate 300 regions, attribute them and run ``modisco motifs``
        (see the module docstring).

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
        'seqlets_bed': os.path.join(out, 'seqlets.bed'),
        'seqlets_tsv': os.path.join(out, 'seqlets.tsv'),
        'attributions_bigwig': os.path.join(out, 'attributions.bw'),
        'logos': os.path.join(out, 'logos'),
        'report': os.path.join(out, 'report.html'),
    }
    common = dict(keep_metadata=True, overwrite=True, verbose=True)
    steps = 7 if modisco else 5

    t0 = time.perf_counter()
    print(f"[1/{steps}] predict        {model} on its example FASTA/BED", flush=True)
    run('predict', model, [paths['predictions'], paths['predictions_tsv']], example=True, **common)
    print(f"[2/{steps}] deeplift-shap  counts output, {n_shuffles} dinucleotide shuffles, hypothetical", flush=True)
    run('deeplift-shap', model, [paths['attributions']], example=True, keep_inputs=True, n_shuffles=n_shuffles,
        random_state=0, hypothetical=True, **common)
    print(f"[3/{steps}] marginalize    GATAAG in the middle of every region", flush=True)
    run('marginalize', model, [paths['marginalize']], example=True, motif='GATAAG', **common)
    motifs = os.path.join(model, 'motifs.meme')
    motifs = motifs if os.path.isfile(motifs) else None
    print(f"[4/{steps}] seqlets{' named by ' + os.path.basename(motifs) if motifs else ''}, bigWig track, "
          "logos + report", flush=True)
    _seqlets_and_track(paths, motifs)
    plot_attributions(paths['attributions'], paths['logos'], top=3)
    write_report(paths['attributions'], paths['report'], motifs=motifs)
    print(f"[5/{steps}] modisco inputs (32 example regions: too few to find motifs"
          f"{'' if modisco else '; kipoi-tanger demo --modisco runs motif discovery on 300'})", flush=True)
    ex = _export(paths['attributions'], os.path.join(out, 'modisco', ''))
    paths.update(modisco_ohe=ex['ohe'], modisco_shap=ex['shap'])

    if modisco:
        sim_dir = os.path.join(out, 'simulated')
        print(f"[6/{steps}] deeplift-shap  {MODISCO_REGIONS} simulated sequences (simulate.py, seed {MODISCO_SEED}), "
              f"{MODISCO_SHUFFLES} shuffles, hypothetical", flush=True)
        sim = simulate_regions(model, sim_dir)
        paths['simulated_attributions'] = os.path.join(sim_dir, 'attributions.h5')
        run('deeplift-shap', model, [paths['simulated_attributions']],
            dataloader_args={k: sim[k] for k in ('intervals_file', 'fasta_file')}, keep_inputs=True,
            n_shuffles=MODISCO_SHUFFLES, random_state=0, hypothetical=True, batch_size=64, **common)
        ex = _export(paths['simulated_attributions'], os.path.join(sim_dir, ''))
        results = os.path.join(sim_dir, 'modisco_results.h5')
        args = ["motifs", "-s", ex['ohe'], "-a", ex['shap'], "-n", "2000", "-w", str(ex['window']), "-o", results]
        exe = _modisco_executable()
        if exe is None:
            print(f"[7/{steps}] modisco-lite is not installed (pip install modisco-lite); then run:\n      "
                  f"modisco {' '.join(args)}", flush=True)
        else:
            print(f"[7/{steps}] modisco {' '.join(args)}", flush=True)
            r = subprocess.run([exe] + args, capture_output=True, text=True)
            if r.returncode != 0:
                raise ValueError(f"demo: modisco motifs failed ({r.returncode}): "
                                 f"{' '.join((r.stderr or r.stdout).split()[-40:])}")
            paths['modisco_results'] = results
            motifs = dict(_simulate_module(model).MOTIFS)
            for line in modisco_patterns(results, motifs) or ["no patterns"]:
                print(f"      {line}", flush=True)

    print(f"\ndone in {time.perf_counter() - t0:.0f} s; outputs:")
    for name, path in paths.items():
        print(f"  {name:22s} {os.path.abspath(path)}")
    print(f"\nopen the report: {os.path.abspath(paths['report'])}")
    return paths
