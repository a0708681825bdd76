"""``kipoi-tanger`` command line (also ``kipoi tanger ...``), thin over :mod:`kipoi_tanger.runner`.

Commands: ``predict``, ``deeplift-shap``, ``marginalize``, ``product`` (stream a
Kipoi model's dataloader through an op into HDF5/TSV), ``info`` (what the model
declares and what was inferred) and ``merge`` (join ``--shard`` outputs).

Other modules add commands with :func:`register_command`; they are found
through the ``kipoi_tanger.commands`` entry-point group or
:data:`COMMAND_MODULES` (each module exposes ``register_commands(register)``).

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

# Modules that register further commands (later issues: plot, report, export, init, test).
COMMAND_MODULES = ("kipoi_tanger.plot", "kipoi_tanger.report", "kipoi_tanger.export", "kipoi_tanger.zoo")

_REGISTRY = {}     # name -> (help, configure, handler)
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
# shared arguments


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


def add_run_arguments(p, output_alias=True):
    names = ["-o", "--outputs"] + (["--output"] if output_alias else [])
    p.add_argument(*names, dest="outputs", nargs="+", required=True, metavar="FILE",
                   help="output files: .h5/.hdf5 (Kipoi's HDF5 layout) and, for tables, .tsv")
    p.add_argument("--batch_size", type=int, default=32, help="regions per batch (default 32)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--dtype", default=None, help="compute dtype, e.g. bfloat16 (default: the model's)")
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


def add_explain_arguments(p):
    p.add_argument("--output", dest="model_output", default=None, metavar="NAME|INDEX",
                   help="model output to explain (default: postprocessing: tanger: output, or inferred)")
    p.add_argument("--target", default=None, help="target (index or column label) of that output (default 0)")
    p.add_argument("--n_shuffles", type=int, default=20, help="dinucleotide-shuffled references per region")
    p.add_argument("--random_state", type=int, default=None,
                   help="seed of the references (default: drawn once and recorded in the file)")
    p.add_argument("--hypothetical", action="store_true", help="write hypothetical attributions")
    p.add_argument("--warning_threshold", type=float, default=0.001,
                   help="warn when a convergence delta exceeds this (default 0.001)")


def add_motif_arguments(p, required=True):
    p.add_argument("--motif", required=required, default=None, help="motif to insert, e.g. GATAAG (N keeps the base)")
    p.add_argument("--start", type=int, default=None, help="insert position (default: centred)")


def _run_kwargs(a):
    from kipoi_utils.utils import parse_json_file_str_or_arglist
    dl_args = None
    if a.dataloader_args:
        try:
            dl_args = parse_json_file_str_or_arglist(a.dataloader_args)
        except Exception as e:
            raise CLIError(f"--dataloader_args: {e}") from None
        if not isinstance(dl_args, dict):
            raise CLIError(f"--dataloader_args: expected a JSON object or key=value pairs, got {dl_args!r}")
    if a.threads is not None:
        if a.threads < 1:
            raise CLIError(f"--threads: expected a positive integer, got {a.threads}")
        import torch
        torch.set_num_threads(a.threads)
    return dict(source=a.source, dataloader=a.dataloader, dataloader_source=a.dataloader_source,
                dataloader_args=dl_args, example=a.example, batch_size=a.batch_size, device=a.device,
                dtype=a.dtype, num_workers=a.num_workers, keep_metadata=a.keep_metadata,
                keep_inputs=a.keep_inputs, resume=a.resume, overwrite=a.overwrite, shard=a.shard,
                verbose=not a.quiet)


def _explain_kwargs(a):
    return dict(output=a.model_output, target=a.target, n_shuffles=a.n_shuffles, random_state=a.random_state,
                hypothetical=a.hypothetical, warning_threshold=a.warning_threshold)


def _report(res, quiet):
    if not quiet:
        extra = f", resumed after {res.resumed_units}" if res.resumed_units else ""
        print(f"{PROG}: wrote {', '.join(res.outputs)} ({res.n_regions} regions{extra})", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# built-in commands


def _cfg_predict(p):
    add_model_arguments(p)
    add_run_arguments(p)


def _run_predict(a):
    from .runner import run
    return _report(run("predict", a.model, a.outputs, **_run_kwargs(a)), a.quiet)


def _cfg_dls(p):
    add_model_arguments(p)
    add_run_arguments(p, output_alias=False)
    add_explain_arguments(p)
    p.add_argument("--return_references", action="store_true", help="also write the references (N, K, A, L)")


def _run_dls(a):
    from .runner import run
    return _report(run("deeplift-shap", a.model, a.outputs, return_references=a.return_references,
                       **_explain_kwargs(a), **_run_kwargs(a)), a.quiet)


def _cfg_marginalize(p):
    add_model_arguments(p)
    add_run_arguments(p, output_alias=False)
    add_motif_arguments(p)
    p.add_argument("--op", dest="inner_op", default="predict", choices=["predict", "deeplift-shap"],
                   help="what to compute before and after inserting the motif (default predict)")
    add_explain_arguments(p)


def _run_marginalize(a):
    from .runner import run
    return _report(run("marginalize", a.model, a.outputs, motif=a.motif, start=a.start, inner_op=a.inner_op,
                       **_explain_kwargs(a), **_run_kwargs(a)), a.quiet)


def _cfg_product(p):
    add_model_arguments(p)
    add_run_arguments(p, output_alias=False)
    p.add_argument("--args", nargs="+", required=True, metavar="NPY",
                   help="extra model inputs as .npy files (or NAME=file.npy), crossed with the sequences")
    p.add_argument("--pairwise", action="store_true", help="pair the --args files row by row (apply_pairwise)")
    p.add_argument("--op", dest="inner_op", default="predict", choices=["predict", "deeplift-shap", "marginalize"],
                   help="op run on every (sequence, args) combination (default predict)")
    add_motif_arguments(p, required=False)
    p.add_argument("--marginalize_op", default="predict", choices=["predict", "deeplift-shap"],
                   help="with --op marginalize: what to compute before/after (default predict)")
    add_explain_arguments(p)


def _run_product(a):
    from .runner import run
    return _report(run("product", a.model, a.outputs, args=a.args, pairwise=a.pairwise, inner_op=a.inner_op,
                       motif=a.motif, start=a.start, marginalize_op=a.marginalize_op,
                       **_explain_kwargs(a), **_run_kwargs(a)), a.quiet)


def _cfg_info(p):
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON")


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
        line("alphabet", "".join(d["alphabet"]), "alphabet"),
        f"outputs         {', '.join(d['targets']) or '-'}",
        line("explain output", "unknown" if d["output"] is None and "output" in d.get("problems", {})
             else (d["output"] if d["output"] is not None else "the model's output"), "output"),
        line("reduce", json.dumps(d["reduce"]) if d["reduce"] else "none", "reduce"),
        line("extra inputs", ", ".join(d["extra_inputs"]) or "none", "extra_inputs"),
        line("ops", ", ".join(d["ops"]), "ops"),
    ]
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
    from .adapter import load
    t = load(a.model, source=a.source, dataloader=a.dataloader, dataloader_source=a.dataloader_source)
    d = t.describe()
    print(json.dumps(d, indent=2, default=str) if a.json else format_info(d))
    return 0


def _cfg_merge(p):
    p.add_argument("shards", nargs="+", metavar="SHARD.h5", help="the shard files (any order)")
    p.add_argument("-o", "--output", dest="outputs", nargs=1, required=True, metavar="OUT.h5", help="merged file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true")


def _run_merge(a):
    from .runner import merge
    return _report(merge(a.shards, a.outputs[0], overwrite=a.overwrite), a.quiet)


register_command("predict", "predictions of the model on the dataloader's regions", _cfg_predict, _run_predict)
register_command("deeplift-shap", "DeepLIFT/SHAP attributions (N, A, L)", _cfg_dls, _run_dls)
register_command("marginalize", "predictions/attributions before and after inserting a motif",
                 _cfg_marginalize, _run_marginalize)
register_command("product", "an op on every sequence crossed with extra inputs from .npy files",
                 _cfg_product, _run_product)
register_command("info", "what the model declares and what kipoi-tanger inferred", _cfg_info, _run_info)
register_command("merge", "join --shard outputs into the single-run file", _cfg_merge, _run_merge)


def _load_plugins():
    global _loaded_plugins
    if _loaded_plugins:
        return
    _loaded_plugins = True
    import importlib
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_commands(register_command)
    try:
        from importlib.metadata import entry_points
        for ep in entry_points(group="kipoi_tanger.commands"):
            ep.load()(register_command)
    except Exception as e:   # a broken third-party command must not break the CLI
        print(f"{PROG}: warning: could not load command plugins: {e}", file=sys.stderr)


def build_parser(prog=PROG):
    """The full argparse parser (subcommands from the registry)."""
    from . import __version__
    _load_plugins()
    parser = _Parser(prog=prog, allow_abbrev=False,
                     description="tangermeme-style ops for any Kipoi model, streamed into HDF5.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (help_, configure, handler) in _REGISTRY.items():
        p = sub.add_parser(name, help=help_, description=help_, allow_abbrev=False)
        configure(p)
        p.set_defaults(_handler=handler)
    return parser


def _quiet_kipoi_logs():
    import logging
    for name in ("kipoi", "kipoi_utils", "kipoi_conda"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv=None, prog=PROG):
    """Entry point of ``kipoi-tanger``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
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
        return 2


def cli_main(command, raw_args):
    """Kipoi plugin entry: ``kipoi tanger <command> ...`` → ``cli_main('tanger', [...])``."""
    sys.exit(main(raw_args, prog=f"kipoi {command}"))


def _console():
    sys.exit(main())


if __name__ == "__main__":
    _console()
