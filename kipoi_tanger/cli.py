"""``kipoi-tanger`` command line (also ``kipoi tanger ...``): all of kipoi_tanger's argparse.

Commands:

* one per registered op (:mod:`kipoi_tanger.ops`: ``predict``, ``deeplift-shap``,
  ``marginalize``, ``product``...), built from the op's declared parameters:
  stream a Kipoi model's dataloader through the op into HDF5/TSV
  (:func:`kipoi_tanger.run.run`);
* ``info`` (what the model declares and what was inferred), ``merge`` (join
  ``--shard`` outputs);
* the tools: ``plot``, ``report``, ``seqlets``, ``export``, ``init``, ``test``, ``zoo``, ``demo``.

Third-party packages add commands through the ``kipoi_tanger.commands``
entry-point group (a callable ``f(register)``; see :func:`register_command`).

Bad input (missing or malformed yaml fields, missing files, dataloader
argument typos, unknown ops, an existing output...) prints one line
``kipoi-tanger: error: ...`` on stderr and exits with status 2.

This module also follows Kipoi's plugin protocol (``cli_main``,
``ModelParser``, ``DataloaderParser``); see :mod:`kipoi_tanger._kipoi_hook`
for how the real ``kipoi`` executable learns about it. Keep imports here light:
``kipoi`` imports this module at start-up for every command.
"""
import argparse
import json
import os
import sys

PROG = "kipoi-tanger"

# Kipoi plugin protocol: the yaml parsers were dropped in Kipoi 0.7.
ModelParser = None
DataloaderParser = None

_REGISTRY = {}     # name -> (help, configure, handler): commands besides the ops
_loaded_plugins = False


class CLIError(Exception):
    """Raised for bad command-line input; printed as one line, exit status 2."""


def register_command(name, help, configure, handler):
    """Add a subcommand.

    Parameters
    ----------
    name : str
        The subcommand (``kipoi-tanger NAME ...``).
    help : str
        One-line description shown by ``kipoi-tanger -h``.
    configure : callable
        ``configure(parser)`` adds the arguments (an ``argparse.ArgumentParser``).
    handler : callable
        ``handler(args) -> int`` runs the command; raise ``ValueError`` (or
        :class:`CLIError`) for bad input: it becomes one error line and exit 2.
    """
    _REGISTRY[name] = (help, configure, handler)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``kipoi-tanger: error: ...``, exit 2)."""

    def error(self, message):
        import difflib
        import re
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2))
            close = difflib.get_close_matches(m.group(1), choices, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        raise CLIError(message)


# ---------------------------------------------------------------------------
# op commands, from the op registry


def add_model_arguments(p, dataloader=True):
    """MODEL, --source and the dataloader options, as Kipoi's CLI has them."""
    p.add_argument("model", metavar="MODEL", help="model name; with --source dir (default) a path to the model dir")
    p.add_argument("--source", default="dir",
                   help="Kipoi model source (default: dir, i.e. MODEL is a directory); others come from "
                        "~/.kipoi/config.yaml")
    if dataloader:
        p.add_argument("--dataloader", default=None,
                       help="dataloader to use instead of the model's default: a dataloader dir or module.Class")
        p.add_argument("--dataloader_source", default=None,
                       help="source of --dataloader (default: dir for a directory, else py)")
        p.add_argument("--dataloader_args", nargs="+", default=None, metavar="ARGS",
                       help="dataloader keyword arguments: a JSON string, a JSON file, or key=value pairs")
        p.add_argument("--example", action="store_true",
                       help="run on the dataloader's own example files instead of --dataloader_args")


def add_run_arguments(p, output_alias=True, dataloader=True):
    """The run options every op command takes (``-o``, batch size, device, resume, shards...);
    ``dataloader=False``: without ``-n/--num_workers`` (an op that brings its own regions)."""
    names = ["-o", "--outputs"] + (["--output"] if output_alias else [])
    p.add_argument(*names, dest="outputs", nargs="+", required=True, metavar="FILE",
                   help="output files: .h5/.hdf5 (Kipoi's HDF5 layout) and, for tables, .tsv")
    p.add_argument("--batch_size", type=int, default=32,
                   help="regions per dataloader batch and per forward pass (default 32)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, help="compute dtype, e.g. bfloat16 (default: the model's)")
    if dataloader:
        p.add_argument("-n", "--num_workers", type=int, default=0,
                       help="dataloader worker processes (default 0: a background thread loads ahead)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice); 1 often wins on busy or shared CPUs")
    p.add_argument("-m", "--keep_metadata", action="store_true", help="also write metadata/... (region ranges)")
    p.add_argument("-k", "--keep_inputs", action="store_true", help="also write the model inputs (and targets)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT.partial/")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--shard", default=None, metavar="i/N",
                   help="process only block i of N (1-based); join the blocks with `merge`")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_param(p, param):
    """One declared op parameter (:class:`kipoi_tanger.ops.Param`) as an argparse option."""
    kw = {"dest": param.name, "default": param.default, "help": param.help}
    if param.kind == "flag":
        kw["action"] = "store_true"
        kw["default"] = bool(param.default)
    elif param.kind in ("int", "float"):
        kw["type"] = int if param.kind == "int" else float
    elif param.kind == "list":
        kw["nargs"] = "+"
    if param.choices is not None:
        kw["choices"] = list(param.choices)
    if param.metavar:
        kw["metavar"] = param.metavar
    if param.required:
        kw["required"] = True
    p.add_argument(*(param.flags or (param.option,)), **kw)


def _run_options(a):
    from .adapter.args import parse_dataloader_args
    if a.threads is not None:
        if a.threads < 1:
            raise CLIError(f"--threads: expected a positive integer, got {a.threads}")
        import torch
        torch.set_num_threads(a.threads)
    if a.dtype is not None:       # checked before the model loads
        import torch
        dt = getattr(torch, a.dtype, None)
        if not (isinstance(dt, torch.dtype) and dt.is_floating_point):
            raise CLIError(f"--dtype: expected a floating torch dtype (float32, float64, float16, bfloat16), "
                           f"got {a.dtype!r}")
    opts = dict(source=a.source, batch_size=a.batch_size, device=a.device, dtype=a.dtype,
                keep_metadata=a.keep_metadata, keep_inputs=a.keep_inputs, resume=a.resume, overwrite=a.overwrite,
                shard=a.shard, verbose=not a.quiet)
    if hasattr(a, "dataloader_args"):       # not for an op that brings its own regions
        opts.update(dataloader=a.dataloader, dataloader_source=a.dataloader_source,
                    dataloader_args=parse_dataloader_args(a.dataloader_args), example=a.example,
                    num_workers=a.num_workers)
    return opts


def _report(res, quiet):
    if not quiet:
        extra = f", resumed after {res.resumed_units}" if res.resumed_units else ""
        print(f"{PROG}: wrote {', '.join(res.outputs)} ({res.n_regions} regions{extra})", file=sys.stderr)
    return 0


def _op_command(cls):
    """``(configure, handler)`` of the subcommand that runs op class ``cls``."""
    params = cls.cli_params()

    def configure(p):
        # an op that brings its own regions (variant-effect: VCF + FASTA) offers no dataloader options
        add_model_arguments(p, dataloader=not cls.own_regions)
        # `--output` names an output file unless the op has a model-output parameter of that name
        add_run_arguments(p, output_alias=all(param.option != "--output" for param in params),
                          dataloader=not cls.own_regions)
        for param in params:
            add_param(p, param)

    def handler(a):
        from .run import run
        values = {param.name: getattr(a, param.name) for param in params}
        return _report(run(cls.name, a.model, a.outputs, params=values, **_run_options(a)), a.quiet)

    return configure, handler


# ---------------------------------------------------------------------------
# info and merge


def _cfg_info(p):
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON")


def _availability_lines(d):
    """``op availability`` lines: which of the model's ops run and how (or why not), grouped by
    reason; none for a torch model, on which every op runs."""
    avail = {op: why for op, why in (d.get("ops_available") or {}).items() if op in d["ops"]}
    if not avail or all(why == "available (torch module)" for why in avail.values()):
        return []
    groups = {}
    for op, why in avail.items():
        groups.setdefault(why, []).append(op)
    return [f"{'op availability' if i == 0 else '':<16}{', '.join(ops)}: {why}"
            for i, (why, ops) in enumerate(groups.items())]


def format_info(d):
    """``kipoi-tanger info`` text from :meth:`KipoiTarget.describe`."""
    prov = d.get("provenance", {})

    def line(label, value, key):
        note = prov.get(key)
        return f"{label:<16}{value}" + (f"   [{note}]" if note else "")

    ins = ", ".join(f"{i['name']} {i['shape']}" for i in d["inputs"]) or "-"
    no_seq = d.get("no_sequence_input", False)
    unknown = "none" if no_seq else "unknown"
    lines = [
        f"model           {d['model']} (source {d['source']}; Kipoi type {d['kipoi_type']}; module {d['module']})",
        f"dataloader      {d['dataloader']} ({d['dataloader_type']}); args: "
        + (", ".join(k + ("" if v["optional"] else "*") for k, v in d["dataloader_args"].items()) or "none")
        + "  (* required)",
        f"inputs          {ins}",
        line("sequence input", d["sequence_input"] or unknown, "sequence_input"),
        line("layout", d["layout"] or unknown, "layout"),
        line("length", d.get("length") or "any", "length"),
        line("alphabet", "".join(d.get("model_alphabet") or d["alphabet"])
             + ("" if list(d.get("model_alphabet") or d["alphabet"]) == list(d["alphabet"]) else
                f" (the model's one-hot order; ops and results files use {''.join(d['alphabet'])})"), "alphabet"),
        f"outputs         {', '.join(d['targets']) or '-'}",
        line("explain output", "unknown" if d["output"] is None and "output" in d.get("problems", {})
             else (d["output"] if d["output"] is not None else "the model's output"), "output"),
        line("reduce", json.dumps(d["reduce"]) if d["reduce"] else "none", "reduce"),
        line("extra inputs", ", ".join(d["extra_inputs"]) or "none", "extra_inputs"),
        line("ops", ", ".join(d["ops"]), "ops"),
    ]
    if d.get("framework_detail"):
        lines.insert(1, f"framework       {d['framework_detail']}")
    lines.extend(_availability_lines(d))
    if d.get("deeplift_rules"):
        lines.append(line("deeplift rules", ", ".join(f"{k}: {v}" for k, v in d["deeplift_rules"].items()),
                          "deeplift_rules"))
    for k, v in d.get("problems", {}).items():
        if no_seq and k in ("sequence_input", "layout"):
            need = [op for op in d["ops"] if op != "predict"]
            lines.append("note            the model has no sequence input: predict runs it on all its inputs"
                         + (f"; {', '.join(need)} need one (declare sequence_input and layout under "
                            "postprocessing: tanger)" if need else ""))
            continue
        lines.append(f"note            {k}: {v}")
    return "\n".join(lines)


def _run_info(a):
    from .adapter.target import load
    t = load(a.model, source=a.source, dataloader=a.dataloader, dataloader_source=a.dataloader_source)
    d = t.describe()
    print(json.dumps(d, indent=2, default=str) if a.json else format_info(d))
    return 0


def _cfg_merge(p):
    p.add_argument("shards", nargs="+", metavar="SHARD.h5", help="the shards' HDF5 files (any order)")
    p.add_argument("-o", "--output", dest="outputs", nargs="+", required=True, metavar="FILE",
                   help="merged files: OUT.h5, and any other kind the shard runs wrote (.tsv, .vcf, .vcf.gz), "
                        "joined from each shard's file of that kind (found next to its HDF5, which records "
                        "their names); variant-effect's OUT.skipped.tsv is added as a run adds it")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-q", "--quiet", action="store_true")


def _run_merge(a):
    from .run import merge
    return _report(merge(a.shards, a.outputs, overwrite=a.overwrite), a.quiet)


# ---------------------------------------------------------------------------
# tools: plot, report, export


def _cfg_plot(p):
    from .tools.plot import DEFAULT_TOP, FORMATS
    sub = p.add_subparsers(dest="plot_command", metavar="{attributions,marginalize}")
    sub.required = True
    a = sub.add_parser("attributions", help="sequence logos of deeplift-shap attributions",
                       description="One logo per region: letter heights = attributions "
                                   "(positive up, negative down), titled chr:start-end strand, id of what is "
                                   "shown, genomic positions on the x axis; a minus-strand region the "
                                   "dataloader reverse-complemented is drawn as the model read it, and says so.")
    a.add_argument("h5", metavar="OUT.h5", help="kipoi-tanger deeplift-shap output")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--regions", nargs="+", metavar="ID", help="region ids (metadata/ranges/id)")
    g.add_argument("--top", type=int, metavar="K",
                   help=f"the K regions with the largest total |attribution| (default {DEFAULT_TOP})")
    a.add_argument("--window", metavar="START:END", help="positions to draw (0-based, END exclusive)")
    a.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    a.add_argument("--format", nargs="+", default=list(FORMATS), choices=FORMATS)
    a.add_argument("--dpi", type=int, default=100)
    _strand_argument(a)
    m = sub.add_parser("marginalize", help="before/after of marginalize, ablate or space outputs",
                       description="Per model output (by its schema name): histograms before and after "
                                   "and each region's before vs after (marginalize; ablate: after = the "
                                   "mean over the shuffles), or each region's change per spacing (space).")
    m.add_argument("h5", metavar="OUT.h5", help="kipoi-tanger marginalize, ablate or space output")
    m.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    m.add_argument("--format", nargs="+", default=list(FORMATS), choices=FORMATS)
    m.add_argument("--dpi", type=int, default=100)


def _run_plot(a):
    from .tools.plot import plot_attributions, plot_marginalize
    if a.plot_command == "attributions":
        paths = plot_attributions(a.h5, a.output, regions=a.regions, top=a.top, window=a.window,
                                  formats=a.format, dpi=a.dpi, strand=a.strand)
    else:
        paths = plot_marginalize(a.h5, a.output, formats=a.format, dpi=a.dpi)
    for path in paths:
        print(path)
    return 0


def _cfg_report(p):
    from .tools.report import DEFAULT_TOP, LOGO_WIDTH
    p.add_argument("h5", metavar="OUT.h5", help="kipoi-tanger output")
    p.add_argument("-o", "--output", required=True, metavar="report.html")
    p.add_argument("--top", type=int, default=DEFAULT_TOP, metavar="K",
                   help=f"logos of the K regions with the largest total |attribution| (default {DEFAULT_TOP})")
    p.add_argument("--logo-width", type=int, default=LOGO_WIDTH, metavar="BP",
                   help=f"positions per logo (default {LOGO_WIDTH})")
    p.add_argument("--motifs", default=None, metavar="MOTIFS.meme",
                   help="name the top seqlets by their best TOMTOM match in this MEME motif file")
    _strand_argument(p)


def _run_report(a):
    from .tools.report import write_report
    print(write_report(a.h5, a.output, top=a.top, logo_width=a.logo_width, motifs=a.motifs, strand=a.strand))
    return 0


def _strand_argument(p):
    p.add_argument("--strand", choices=("rc", "forward"), default=None,
                   help="whether the dataloader reverse-complemented minus-strand regions (rc) or not "
                        "(forward); needed only when the file does not tell (its dataloader and use_strand)")


def _cfg_seqlets(p):
    p.add_argument("h5", metavar="OUT.h5", help="kipoi-tanger deeplift-shap output")
    p.add_argument("-o", "--output", dest="outputs", nargs="+", required=True, metavar="FILE",
                   help="seqlets.bed (BED6: motif name, score -10 log10 p, strand; needs --keep_metadata) "
                        "and/or seqlets.tsv (every column)")
    p.add_argument("--motifs", default=None, metavar="MOTIFS.meme",
                   help="MEME motif file: name each seqlet by its best TOMTOM match (memelite)")
    p.add_argument("--query", choices=("attribution", "onehot"), default="attribution",
                   help="what TOMTOM compares with the motifs: the seqlet's attributions (default) or its "
                        "one-hot sequence (needs --keep_inputs; tangermeme's annotate_seqlets)")
    p.add_argument("--threshold", type=float, default=0.01,
                   help="p-value cutoff of every span inside a seqlet (default 0.01)")
    p.add_argument("--min_len", type=int, default=4, help="shortest seqlet (default 4)")
    p.add_argument("--max_len", type=int, default=25, help="longest seqlet (default 25)")
    p.add_argument("--flanks", type=int, default=0, help="positions added on each side (default 0)")
    p.add_argument("--n_bins", type=int, default=1000, help="attribution bins of the null (default 1000)")
    p.add_argument("--max_qvalue", type=float, default=0.05,
                   help="a seqlet is named when its best match's q-value is at most this (default 0.05)")
    p.add_argument("--anchor", choices=("exact", "center"), default="exact",
                   help="the input covers its region exactly (default) or its central bases")
    p.add_argument("--bed_extra", action="store_true",
                   help="BED: add the other columns after a '#' header line (not for genome browsers)")
    _strand_argument(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")


def _run_seqlets(a):
    from .tools.results import Results
    from .tools.seqlets import check_outputs, results_seqlets, write_seqlets
    res = Results(a.h5)
    res.require_attributions()
    outputs = check_outputs(a.outputs, res.ranges is not None, res.path)
    df = results_seqlets(res, motifs=a.motifs, query=a.query, threshold=a.threshold, min_len=a.min_len,
                         max_len=a.max_len, flanks=a.flanks, n_bins=a.n_bins, max_qvalue=a.max_qvalue,
                         strand=a.strand, anchor=a.anchor)
    write_seqlets(df, outputs, bed_extra=a.bed_extra)
    for path in outputs:
        print(path)
    if not a.quiet:
        named = ""
        if "named" in df:
            counts = df.loc[df["named"], "motif"].value_counts()
            named = "; named: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "none") + \
                f", unnamed {int((~df['named']).sum())}"
        print(f"{PROG}: {len(df)} seqlets in {df['example_idx'].nunique() if len(df) else 0} of {res.n} "
              f"regions{named}", file=sys.stderr)
    return 0


def _cfg_export(p):
    sub = p.add_subparsers(dest="export_command", metavar="{modisco,bigwig,bedgraph}")
    sub.required = True
    for fmt, ext in (("bigwig", "out.bw"), ("bedgraph", "out.bedGraph")):
        t = sub.add_parser(fmt, help=f"per-base values at the regions' genomic coordinates as a {fmt} track",
                           description="Attributions (per base), ISM scores or a profile output placed on the "
                                       "genome from the regions' metadata (--keep_metadata); overlapping regions "
                                       "are averaged; a minus-strand region's values are reversed when the "
                                       "dataloader reverse-complemented it.")
        t.add_argument("h5", metavar="OUT.h5", help="kipoi-tanger output with metadata/ranges")
        t.add_argument("-o", "--output", required=True, metavar=ext.upper(), help=f"the track ({ext})")
        t.add_argument("--chrom_sizes", required=True, metavar="FILE",
                       help="chromosome sizes: a chrom-sizes file, a .fai index or an indexed FASTA")
        t.add_argument("--values", default="attributions", metavar="WHAT",
                       help="attributions (default), ism (the ism op's 'ism' dataset) or preds/<output> "
                            "(a profile output by name, e.g. preds/profile)")
        t.add_argument("--reduce", choices=("sum", "observed", "mean"), default=None,
                       help="attributions/ism per base: sum over the alphabet (default for projected scores), "
                            "observed = the sequence's base (default for hypothetical ones; reads inputs), mean")
        t.add_argument("--task", default=None, metavar="INDEX|LABEL",
                       help="the track of a (tasks, L) profile output")
        t.add_argument("--anchor", choices=("exact", "center"), default=None,
                       help="values cover the region exactly (default) or its central bases (default for "
                            "preds/<output>)")
        t.add_argument("--out_of_bounds", choices=("error", "clip"), default="error",
                       help="bases past a chromosome end: an error (default) or dropped")
        _strand_argument(t)
        if fmt == "bedgraph":
            t.add_argument("--track_line", nargs="?", const="", default=None, metavar="TEXT",
                           help="write a first 'track' line (default text: track type=bedGraph name=<file>)")
    m = sub.add_parser("modisco", help="one-hot sequences + hypothetical attributions for tfmodisco-lite",
                       description="Write PREFIX_ohe.npz and PREFIX_shap.npz ((N, 4, L) arrays under "
                                   "'arr_0') for `modisco motifs -s ... -a ...`, and PREFIX_regions.bed.")
    m.add_argument("h5", metavar="OUT.h5", help="kipoi-tanger deeplift-shap output (with --keep_inputs)")
    m.add_argument("-o", "--output", required=True, metavar="PREFIX", help="output prefix")


def _run_export(a):
    import warnings
    if a.export_command in ("bigwig", "bedgraph"):
        from .tools.tracks import export_track
        line = getattr(a, "track_line", None)
        if line == "":       # --track_line without a text
            line = f"track type=bedGraph name={os.path.basename(a.output).split('.')[0]}"
        out = export_track(a.h5, a.output, a.chrom_sizes, fmt=a.export_command, values=a.values, reduce=a.reduce,
                           task=a.task, anchor=a.anchor, out_of_bounds=a.out_of_bounds, strand=a.strand,
                           track_line=line)
        print(out["output"])
        print(f"# {out['values']} of {out['regions']} regions"
              + ("; minus-strand regions reversed" if out["reverse_minus"] else ""))
        return 0
    from .tools.export import export_modisco
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        out = export_modisco(a.h5, a.output)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    for key in ("ohe", "shap", "bed"):
        if out[key]:
            print(out[key])
    print(f"# {out['n']} regions of {out['length']} bp; run: {out['command']}")
    return 0


# ---------------------------------------------------------------------------
# tools: init, test (the model zoo), demo


def _cfg_init(p):
    from .tools.zoo import DATALOADER_MODES, DEFAULT_TEMPLATE, ZooError, list_templates
    try:
        listing = "; ".join(f"{k}: {v}" for k, v in list_templates().items())
    except ZooError as e:
        listing = str(e)
    p.add_argument("name", metavar="NAME", help="model name = name of the new directory")
    p.add_argument("--template", default=DEFAULT_TEMPLATE,
                   help=f"template name or directory (default {DEFAULT_TEMPLATE}). Available: {listing}")
    p.add_argument("-o", "--output_dir", default=".", metavar="DIR", help="where to create NAME/ (default .)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files the template writes in an existing NAME/ (others are kept)")
    p.add_argument("--set", dest="params", nargs="+", default=[], metavar="KEY=VALUE",
                   help="template variables, e.g. --set seq_len=500 tasks=CTCF,GATA1 (see the template's "
                        "template.yaml)")
    p.add_argument("--seed", type=int, default=0, help="torch seed of the initial weights (default 0)")
    p.add_argument("--test_root", default=None, metavar="DIR",
                   help="directory `kipoi test` will run from; test: expect: is written relative to it "
                        "(default: the working directory when NAME/ lies inside it, else -o DIR)")
    p.add_argument("--dataloader", default="auto", choices=DATALOADER_MODES,
                   help="shared: point at the shipped dataloaders/<component> by relative path; copy: copy the "
                        "loader into the model dir (self-contained); auto (default): shared inside the tree that "
                        "holds dataloaders/ (a checkout's example_models/), else copy")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def _run_init(a):
    from .tools.zoo import init, next_steps, parse_set
    res = init(a.name, template=a.template, output_dir=a.output_dir, overwrite=a.overwrite, seed=a.seed,
               params=parse_set(a.params), test_root=a.test_root, dataloader=a.dataloader)
    if not a.quiet:
        print(next_steps(res))
    return 0


def _cfg_test(p):
    p.add_argument("model", metavar="MODEL", help="model dir (--source dir, the default) or a model name")
    p.add_argument("--source", default="dir", help="Kipoi model source (default dir)")
    p.add_argument("--batch_size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--n_shuffles", type=int, default=4,
                   help="dinucleotide-shuffled references per region for the DeepLIFT/SHAP check (default 4)")
    p.add_argument("--max_delta", type=float, default=1e-3,
                   help="largest acceptable |convergence delta| of DeepLIFT/SHAP (default 1e-3)")
    p.add_argument("--motif", default=None, help="motif for the marginalize check (default: the alphabet, ACGT)")
    p.add_argument("--random_state", type=int, default=0, help="seed of the references (default 0)")
    p.add_argument("--args", nargs="+", default=None, metavar="NAME=NPY",
                   help="extra inputs for the product check (default: two rows of the example batch)")
    p.add_argument("--device", default=None, help="torch device of the op checks (default: cuda if available)")
    p.add_argument("--skip_kipoi_test", action="store_true", help="do not run `kipoi test`")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")


def _run_test(a):
    from .tools.zoo import test
    rep = test(a.model, source=a.source, batch_size=a.batch_size, n_shuffles=a.n_shuffles, motif=a.motif,
               max_delta=a.max_delta, random_state=a.random_state, kipoi_test=not a.skip_kipoi_test,
               args=a.args, device=a.device)
    if a.json:
        print(json.dumps({"model": rep.model, "passed": rep.passed, "checks": [c._asdict() for c in rep.checks]},
                         indent=2))
    else:
        print(rep.format())
    return 0 if rep.passed else 1


def _cfg_zoo(p):
    from .tools.zoo import DATA_DIRS, ZOO_SOURCE
    p.add_argument("--path", nargs="?", const="example_models", default=None, choices=DATA_DIRS,
                   help="print only the path of one shipped directory (default example_models)")
    p.add_argument("--add_source", nargs="?", const=ZOO_SOURCE, default=None, metavar="NAME",
                   help=f"make the example zoo the local Kipoi source NAME (default {ZOO_SOURCE}) in "
                        "~/.kipoi/config.yaml, keeping the other sources")


def _run_zoo(a):
    from .tools.zoo import ZOO_SOURCE, add_kipoi_source, data_dir, data_dirs, kipoi_source_config
    if a.path:
        print(data_dir(a.path))
        return 0
    if a.add_source:
        path = add_kipoi_source(a.add_source)
        print(f"{path}: model source {a.add_source!r} = {data_dir('example_models')} "
              f"(kipoi ls --source {a.add_source})")
        return 0
    for name, path in data_dirs().items():
        print(f"{name:16s} {path}")
    print("# the example zoo as a local Kipoi source (--add_source writes it to ~/.kipoi/config.yaml):")
    print(kipoi_source_config(ZOO_SOURCE))
    return 0


def _cfg_demo(p):
    p.add_argument("--out", default="demo_output", help="output directory (default demo_output)")
    p.add_argument("--model", default=None, help="Kipoi model dir (default: the shipped example_models/motif_cnn)")
    p.add_argument("--n_shuffles", type=int, default=20, help="references per region (default 20)")
    p.add_argument("--modisco", action="store_true",
                   help="also attribute 300 simulated sequences and run modisco motifs on them (minutes)")


def _run_demo(a):
    from .tools.demo import demo
    demo(a.out, model=a.model, n_shuffles=a.n_shuffles, modisco=a.modisco)
    return 0


_TOOLS = (
    ("info", "what the model declares and what kipoi-tanger inferred", _cfg_info, _run_info),
    ("merge", "join --shard outputs into the single run's files", _cfg_merge, _run_merge),
    ("plot", "attribution logos in genomic coordinates, or before/after plots of marginalize, ablate, space "
             "(PNG, SVG)", _cfg_plot, _run_plot),
    ("report", "self-contained HTML report of a results file (images embedded, no network)", _cfg_report,
     _run_report),
    ("seqlets", "seqlets of deeplift-shap attributions, named by motif (MEME file, TOMTOM), as BED/TSV", _cfg_seqlets,
     _run_seqlets),
    ("export", "export results for other tools (modisco: tfmodisco-lite inputs; bigwig, bedgraph: genome-browser "
               "tracks)", _cfg_export, _run_export),
    ("init", "create a new zoo model dir from a template (weights + expect file included)", _cfg_init, _run_init),
    ("zoo", "where the shipped example zoo, templates, dataloaders and workflows lie (+ a Kipoi source line)",
     _cfg_zoo, _run_zoo),
    ("test", "kipoi test plus kipoi-tanger's checks (tanger section, every declared op, DeepLIFT deltas)",
     _cfg_test, _run_test),
    ("demo", "the main job on the shipped example model: predict, deeplift-shap, marginalize, logos, report",
     _cfg_demo, _run_demo),
)
for _cmd in _TOOLS:
    register_command(*_cmd)


def _load_plugins():
    global _loaded_plugins
    if _loaded_plugins:
        return
    _loaded_plugins = True
    try:
        from importlib.metadata import entry_points
        for ep in entry_points(group="kipoi_tanger.commands"):
            ep.load()(register_command)
    except Exception as e:   # a broken third-party command must not break the CLI
        print(f"{PROG}: warning: could not load command plugins: {e}", file=sys.stderr)


def build_parser(prog=PROG):
    """The full argparse parser: one subcommand per registered op, then the other commands."""
    from . import __version__
    from .ops import classes
    _load_plugins()
    parser = _Parser(prog=prog, allow_abbrev=False,
                     description="tangermeme-style ops for any Kipoi model, streamed into HDF5.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    commands = {cls.name: (cls.help, *_op_command(cls)) for cls in classes()}
    commands.update((k, v) for k, v in _REGISTRY.items() if k not in commands)
    for name, (help_, configure, handler) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_, allow_abbrev=False)
        configure(p)
        p.set_defaults(_handler=handler)
    return parser


def _quiet_kipoi_logs():
    import logging
    for name in ("kipoi", "kipoi_utils", "kipoi_conda"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _silent_unraisable(unraisable):
    """After the error line: no third-party noise. A half-built object of a library (e.g.
    kipoiseq's FastaStringExtractor when its FASTA is missing) may fail in its destructor,
    which Python reports as 'Exception ignored in ...' with a traceback."""


def main(argv=None, prog=PROG):
    """Entry point of ``kipoi-tanger``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    status = _main(argv, prog)
    if status == 2:
        # after the error line, nothing more on stderr: destructors of what the error left
        # behind run now (and at exit) silently
        sys.unraisablehook = _silent_unraisable
        import gc
        gc.collect()
    return status


def _main(argv, prog):
    try:
        parser = build_parser(prog)
        if not argv:
            parser.print_help(sys.stderr)
            return 2
        a = parser.parse_args(argv)
        _quiet_kipoi_logs()
        return int(a._handler(a) or 0)
    except SystemExit as e:        # --help / --version
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; continue with --resume", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, OSError, KeyError, ImportError) as e:
        if os.environ.get("KIPOI_TANGER_DEBUG"):
            raise
        msg = " ".join(str(e).split()) if str(e) else type(e).__name__
        if isinstance(e, KeyError) and len(e.args) == 1:
            msg = f"missing key {e.args[0]!r}"
        if isinstance(e, OSError) and getattr(e, "filename", None) and e.filename not in msg:
            msg = f"{e.filename}: {msg}"
        print(f"{prog}: error: {msg}", file=sys.stderr)
        sys.unraisablehook = _silent_unraisable     # also while the error's frames are freed
        return 2


def cli_main(command, raw_args):
    """Kipoi plugin entry: ``kipoi tanger <command> ...`` → ``cli_main('tanger', [...])``."""
    sys.exit(main(raw_args, prog=f"kipoi {command}"))


def _console():
    sys.exit(main())


if __name__ == "__main__":
    _console()
