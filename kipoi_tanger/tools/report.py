"""One static, self-contained HTML page summarising a ``kipoi-tanger`` run.

The page, top to bottom:

* **Run**: the model, the op and the settings a user chose (motif, shuffles,
  seed, dataloader arguments...), with the explained output by its schema
  name; every recorded attribute is in a folded table below it;
* **Convergence deltas** (deeplift-shap), explained in one sentence;
* **Seqlets** (deeplift-shap): the strongest seqlets
  (:func:`kipoi_tanger.tools.seqlets.results_seqlets`), in genomic
  coordinates, named by their best TOMTOM match when a MEME motif file is given;
* **Top regions' logos** in genomic coordinates (minus-strand regions say when
  they are shown reverse-complemented), seqlets shaded and named;
* **Before/after** per model output (marginalize, ablate, space), by name;
* **Predictions** by output name and column label (the schema's
  ``column_labels``), and the file's datasets.

Images are PNGs embedded as ``data:`` URIs and the style sheet is inline, so
the file opens in a browser with no network and can be mailed or archived as
one file.
"""
import base64
import html
import io
import os
from typing import Optional, Tuple

import numpy as np

from .plot import effect_figure, effect_title, logo_size, logo_title, plot_logo, select_regions
from .results import MAX_PANELS, Results, ResultsError

DEFAULT_TOP = 5
LOGO_WIDTH = 100     # positions per logo; longer sequences show their strongest window
MAX_COLUMNS = 10     # prediction columns summarised per dataset
TOP_SEQLETS = 15     # seqlets listed
MAX_QVALUE = 0.05    # a seqlet is named when its best match's q-value is at most this

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f4f4f4;padding:0 .2em}.muted{color:#777}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%;height:auto}
details{margin:.5em 0}summary{cursor:pointer;color:#555}
.warn{color:#a40}
"""

_OPS = {"predict": "predictions",
        "deeplift-shap": "DeepLIFT/SHAP attributions",
        "marginalize": "{what} before and after inserting a motif",
        "ablate": "{what} before and after shuffling a window",
        "space": "{what} before and after placing motifs at several spacings",
        "product": "an op over the product of extra inputs",
        "ism": "in-silico saturation mutagenesis"}

# parameters shown in the run table, with what a user calls them; others are shown by their key
_PARAM_LABELS = {
    "motif": "motif", "motifs": "motifs", "spacing": "spacings (gaps, bp)",
    "start": "start (input position)", "end": "end (input position)",
    "n_shuffles": "references per region (dinucleotide shuffles)", "n": "shuffles per region",
    "shuffle": "shuffle", "random_state": "seed", "hypothetical": "hypothetical attributions",
    "warning_threshold": "convergence-delta warning threshold", "accept_large_deltas": "large deltas accepted",
}
# how the run was computed, not what it computed (shown with every recorded attribute only)
_HIDDEN = {"batch_size", "dtype", "keep_inputs", "keep_metadata", "output", "target", "pair_batch_size",
           "return_references", "inner_op"}


def _e(value):
    return html.escape(str(value), quote=True)


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    if isinstance(v, (dict, list, tuple)):
        import json
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def _table(rows, header=None, num_cols=()):
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for j, v in enumerate(row):
            cls = ' class="num"' if j in num_cols else ""
            cells.append(f"<td{cls}>{_e(_fmt(v))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _png(fig, dpi):
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(uri, alt, caption=None):
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{_e(alt)}" src="{uri}">{cap}</figure>'


def strongest_window(attr: np.ndarray, width: int) -> Tuple[int, int]:
    """``(start, end)`` of the ``width``-position window with the largest
    total ``|attr|`` (``attr``: ``(A, L)``); the whole sequence if shorter."""
    L = attr.shape[-1]
    if L <= width:
        return 0, L
    col = np.abs(attr).sum(axis=0)
    csum = np.concatenate([[0.0], np.cumsum(col)])
    start = int(np.argmax(csum[width:] - csum[:-width]))
    return start, start + width


# ---------------------------------------------------------------------------
# run

def _param_rows(res):
    rows = []
    p = res.parameters
    for key in sorted(p, key=lambda k: (k not in _PARAM_LABELS, list(_PARAM_LABELS).index(k)
                                        if k in _PARAM_LABELS else 0, k)):
        v = p[key]
        if key in _HIDDEN:
            continue
        if key == "start" and v is None and res.op in ("marginalize", "space"):
            v = "centred"
        if v is None or v == "" or v == [] or (v is False and key != "hypothetical"):
            continue
        if isinstance(v, bool):
            v = "yes" if v else "no"
        if key == "spacing" and isinstance(v, list):
            v = ", ".join(",".join(map(str, r)) if isinstance(r, list) else str(r) for r in v)
        if key == "motifs" and isinstance(v, list):
            v = ", ".join(map(str, v))
        rows.append((_PARAM_LABELS.get(key, key.replace("_", " ")), v))
    return rows


def _run_section(res):
    a = res.attrs
    inner = res.parameters.get("inner_op")
    what = "attributions" if inner == "deeplift-shap" else "predictions"
    op = res.op or "results"
    desc = _OPS.get(op, "").format(what=what)
    rows = []
    if "model" in a:
        rows.append(("model", a["model"] + (f" (Kipoi source {a['source']})" if a.get("source") not in
                                            (None, "", "dir") else "")))
    rows.append(("op", f"{op}: {desc}" if desc else op))
    rows.append(("regions", res.n))
    if res.explained is not None:
        rows.append(("explained output", res.explained))
    if res.output_names:
        rows.append(("model outputs", ", ".join(res.output_names)))
    rows += _param_rows(res)
    dl_args = a.get("dataloader_args")
    if isinstance(dl_args, dict) and dl_args:
        rows.append(("dataloader arguments", "; ".join(f"{k}={_fmt(v)}" for k, v in sorted(dl_args.items()))))
    if a.get("kipoi_tanger_version"):
        rows.append(("kipoi-tanger", a["kipoi_tanger_version"]))
    recorded = [(k, v) for k, v in sorted(a.items()) if k != "parameters"]
    recorded += [(f"parameters.{k}", v) for k, v in sorted(res.parameters.items())]
    return ["<h2>Run</h2>", _table(rows),
            "<details><summary>Every recorded attribute</summary>" + _table(recorded, ["attribute", "value"])
            + "</details>"]


def _datasets_section(res):
    rows = []
    for name in sorted(res.shapes):
        holds = ""
        group = name.split("/")[0]
        if group in ("preds", "y_before", "y_after", "y_afters") and res.output_names:
            holds = f"output {res.output_name(name)}"
            labels = res.column_labels(name)
            if labels:
                holds += ": " + ", ".join(labels[:8]) + (" ..." if len(labels) > 8 else "")
        rows.append((name, holds, "(" + ", ".join(map(str, res.shapes[name])) + ")", res.dtypes[name]))
    if not any(r[1] for r in rows):
        return ["<h2>Datasets</h2>", _table([(r[0],) + r[2:] for r in rows], ["dataset", "shape", "dtype"])]
    return ["<h2>Datasets</h2>", _table(rows, ["dataset", "holds", "shape", "dtype"])]


# ---------------------------------------------------------------------------
# deeplift-shap

def _deltas_section(res, dpi):
    import matplotlib.pyplot as plt
    d = res.convergence_deltas()
    if d is None:
        return []
    d = np.abs(d.ravel())
    d = d[np.isfinite(d)]
    if d.size == 0:
        return ["<h2>Convergence deltas</h2><p class=muted>all values are missing</p>"]
    thr = float(res.parameters.get("warning_threshold", 0.001))
    above = int((d > thr).sum())
    rows = [("values", d.size), ("mean", d.mean()), ("median", np.median(d)),
            ("95th percentile", np.percentile(d, 95)), ("max", d.max()),
            (f"above warning_threshold {thr:g}", f"{above} ({100.0 * above / d.size:.3g}%)")]
    fig, ax = plt.subplots(figsize=(6, 2.4))
    ax.hist(np.log10(np.maximum(d, 1e-12)), bins=40, color="tab:blue")
    ax.axvline(np.log10(thr), color="tab:red", linestyle="--", label=f"threshold {thr:g}")
    ax.set_xlabel("log10 |convergence delta|")
    ax.set_ylabel("count")
    ax.legend(frameon=False, fontsize=8)
    out = f" ({res.explained})" if res.explained else ""
    explain = ("<p>A region's convergence delta is how far its attributions are from adding up to what they "
               f"explain: their sum minus the change of the explained output{_e(out)} from the references (the "
               "shuffled sequences) to the region. DeepLIFT/SHAP makes it zero up to rounding, so small values "
               "mean the attributions account for the prediction.</p>")
    note = (f'<p class="warn">{above} deltas exceed the threshold: an operation in the model may '
            "lack a DeepLIFT rule.</p>" if above else "")
    return ["<h2>Convergence deltas</h2>", explain, _table(rows, num_cols=(1,)), note,
            _img(_png(fig, dpi), "convergence delta histogram")]


def _seqlets(res, motifs, strand):
    """``(seqlets DataFrame or None, note)`` for the seqlet section and the logos."""
    from .seqlets import results_seqlets
    if not res.has_attributions or len(res.shapes["attributions"]) != 3 or res.n == 0:
        return None, ""
    if res.attributions_are_hypothetical and "hypothetical" not in res.shapes and not res.has_sequences:
        return None, "The attributions are hypothetical and the file has no inputs: no seqlets called."
    genomic, note = True, ""
    if res.ranges is not None and strand is None and res.has_minus_strand and res.minus_strand_rule()[0] is None:
        genomic = False
        note = (" Positions are input positions: the file does not say whether the dataloader "
                "reverse-complemented minus-strand regions (pass --strand rc or forward).")
    df = results_seqlets(res, motifs=motifs, strand=strand, genomic=genomic, max_qvalue=MAX_QVALUE)
    return df, note


def _seqlets_section(res, df, note, motifs):
    if df is None:
        return ["<h2>Seqlets</h2>", f"<p class=muted>{_e(note)}</p>"] if note else []
    named = "named" in df
    head = (f"{len(df)} seqlets (spans of high positive attribution, tangermeme's recursive_seqlets) in "
            f"{df['example_idx'].nunique() if len(df) else 0} of {res.n} regions.")
    if named:
        counts = df.loc[df["named"], "motif"].value_counts()
        found = ", ".join(f"{_e(k)} <b>{v}</b>" for k, v in counts.items()) or "none"
        head += (f" Named by their best TOMTOM match in <code>{_e(os.path.basename(str(motifs)))}</code> "
                 f"(q ≤ {MAX_QVALUE:g}): {found}; unnamed: {int((~df['named']).sum())}.")
    else:
        head += " Pass <code>--motifs FILE.meme</code> to name them by motif."
    parts = ["<h2>Seqlets" + (" named by motif" if named else "") + "</h2>", f"<p>{head}{_e(note)}</p>"]
    if not len(df):
        return parts
    if named and df["named"].any():
        rows = []
        for motif, g in df[df["named"]].groupby("motif", sort=False):
            best = g.sort_values("attribution", ascending=False, kind="stable").iloc[0]
            where = (f"{best['chrom']}:{best['chrom_start']}-{best['chrom_end']}" if "chrom" in g
                     else f"input {best['start']}-{best['end']}")
            rows.append((motif, len(g), g["example_idx"].nunique(), g["attribution"].mean(),
                         g["motif_qvalue"].min(), f"{best['region_id']} {where}"))
        rows.sort(key=lambda r: -r[1])
        parts.append(_table(rows, ["motif", "seqlets", "regions", "mean attribution", "best q-value",
                                   "strongest"], num_cols=(1, 2, 3, 4)))
    top = df.sort_values("attribution", ascending=False, kind="stable").head(TOP_SEQLETS)
    rows = []
    for k, d in enumerate(top.to_dict("records"), 1):
        where = (f"{d['chrom']}:{d['chrom_start']}-{d['chrom_end']}" if "chrom" in d
                 else f"input {d['start']}-{d['end']}")
        row = [k, d["region_id"], where]
        if named:
            row += [d["strand"] if "chrom" in d else d["motif_strand"],
                    d["motif"] if d["named"] else "–", d["motif_qvalue"]]
        row += [d["attribution"], d["p-value"]]
        rows.append(row)
    header = ["rank", "region", "location"] + (["strand", "motif", "motif q-value"] if named else []) + \
        ["attribution", "seqlet p-value"]
    nums = (0, len(header) - 2, len(header) - 1) + ((5,) if named else ())
    parts.append(f"<p class=muted>The {len(top)} with the largest total attribution:</p>")
    parts.append(_table(rows, header, num_cols=nums))
    return parts


def _logos_section(res, top, width, dpi, seqlets, strand):
    import matplotlib.pyplot as plt
    if not res.has_attributions:
        return []
    _, A, L = res.require_attributions()
    rows = select_regions(res, top=min(top, res.n)) if res.n else []
    if not rows:
        return []
    attrs = res.projected(rows)
    scores = np.abs(attrs).sum(axis=(1, 2))
    table = [(k + 1, res.ids[r], res.title(r).rsplit(", ", 1)[0] if res.ranges is not None else "",
              scores[k]) for k, r in enumerate(rows)]
    kind = ("projected hypothetical attributions" if res.attributions_are_hypothetical and res.has_sequences
            else "hypothetical attributions" if res.attributions_are_hypothetical else "attributions")
    parts = [f"<h2>Top {len(rows)} regions by total |attribution|</h2>",
             f"<p class=muted>Letter heights are {kind}: positive up, negative down. Sequences are shown as the "
             "model read them, with genomic positions (0-based) below."
             + (f" Sequences longer than {width} bp show their strongest {width}-bp window." if L > width else "")
             + (" Seqlets are shaded and named." if seqlets is not None and len(seqlets) else "") + "</p>",
             _table(table, ["rank", "id", "region", "sum |attribution|"], num_cols=(0, 3))]
    alphabet = res.alphabet if len(res.alphabet) == A else tuple("ACGT"[:A])
    for k, (row, a) in enumerate(zip(rows, attrs)):
        s, e = strongest_window(a, width)
        fig, ax = plt.subplots(figsize=logo_size(e - s))
        placement = res.placement(row, L, strand)
        title = logo_title(res, row, s, e, L, placement)
        plot_logo(a[:, s:e], ax=ax, start=s, alphabet=alphabet, title=title, placement=placement)
        if seqlets is not None and len(seqlets):
            _shade(ax, seqlets[seqlets["example_idx"] == row], s, e)
        parts.append(_img(_png(fig, dpi), f"attribution logo of {res.ids[row]}", f"#{k + 1}: {title}"))
    return parts


def _shade(ax, seqlets, s, e):
    """Shade the seqlets inside input positions ``[s, e)`` and write their motif names."""
    top = ax.get_ylim()[1]
    for d in seqlets.to_dict("records"):
        lo, hi = max(int(d["start"]), s), min(int(d["end"]), e)
        if hi <= lo:
            continue
        ax.axvspan(lo - 0.5, hi - 0.5, color="#fff2a8", zorder=-2, linewidth=0)
        if d.get("named"):
            ax.text((lo + hi - 1) / 2, top, str(d["motif"]), ha="center", va="top", fontsize=7, color="0.25")


# ---------------------------------------------------------------------------
# before/after, predictions

def _effects_section(res, dpi):
    pairs = res.marginalize_pairs()
    if not pairs:
        return []
    kind = res.effect_kind(*pairs[0][1:])
    p = res.parameters
    head = {"marginalize": "Marginalization" + (f": <code>{_e(p['motif'])}</code>" if p.get("motif") else ""),
            "ablate": "Ablation" + (f": input positions {_e(p.get('start'))}-{_e(p.get('end'))} shuffled"
                                    if "start" in p else ""),
            "space": "Spacing" + (": " + " + ".join(f"<code>{_e(m)}</code>" for m in p["motifs"])
                                  if p.get("motifs") else "")}[kind]
    parts = [f"<h2>{head}</h2>"]
    for label, before, after in pairs:
        b, a, quantity = res.marginalize_values(before, after)
        cols = b.shape[-1] if b.ndim > 1 else 1
        names = res.column_names(before, cols)
        name = "" if label == "output" else label
        flat_b = b.reshape(len(b), -1)
        rows = []
        if kind == "space":
            spacings = res.spacing_labels(a.shape[1])
            flat_a = a.reshape(len(a), a.shape[1], -1)
            for j in range(min(MAX_COLUMNS, flat_b.shape[1])):
                col = names[j % cols] if flat_b.shape[1] == cols else str(j)
                d = (flat_a[:, :, j] - flat_b[:, None, j]).mean(axis=0)
                for sp, dv in zip(spacings, d):
                    rows.append((" · ".join(x for x in (name, col if cols > 1 else "") if x) or "output", sp, dv))
            table = _table(rows, ["output", "gap (bp)", "mean Δ"], num_cols=(2,))
        else:
            flat_a = a.reshape(len(a), -1)
            for j in range(min(MAX_COLUMNS, flat_b.shape[1])):
                idx = np.unravel_index(j, b.shape[1:]) if b.ndim > 1 else ()
                col = names[idx[-1]] if idx and cols > 1 else ""
                prod = ", ".join(f"p{k}={v}" for k, v in enumerate(idx[:-1])) if len(idx) > 1 else ""
                what = " · ".join(x for x in (name or "output", prod, col) if x)
                bj, aj = flat_b[:, j], flat_a[:, j]
                rows.append((what, bj.mean(), aj.mean(), (aj - bj).mean(), f"{int((aj > bj).sum())} of {len(bj)}"))
            table = _table(rows, ["output", "mean before", "mean after", "mean Δ", "regions up"],
                           num_cols=(1, 2, 3))
        parts.append(f"<p class=muted>{_e(quantity[:1].upper() + quantity[1:])}.</p>")
        parts.append(table)
        fig = effect_figure(res, label, before, after, effect_title(res, label, before, after))
        parts.append(_img(_png(fig, dpi), f"marginalize {label}", f"{before} vs {after}"))
    return parts


def _preds_section(res):
    names = ([n for n in ("preds",) if n in res.shapes] + res.output_datasets("preds"))
    if not names:
        return []
    rows = []
    for name in names:
        if res.dtypes[name] == "str":
            continue
        y = res._read(name).astype(np.float64)
        label = res.output_name(name) if res.output_names else name
        note = ""
        if y.ndim >= 3 and y.shape[-1] > MAX_PANELS:
            note = f" (mean over {y.shape[-1]} positions)"
            y = y.mean(axis=-1)
        flat = y.reshape(len(y), -1)
        cols = res.column_names(name, y.shape[1]) if y.ndim > 1 else [""]
        for j in range(min(MAX_COLUMNS, flat.shape[1])):
            idx = np.unravel_index(j, y.shape[1:]) if y.ndim > 1 else ()
            col = "/".join([cols[idx[0]]] + [str(i) for i in idx[1:]]) if idx else ""
            c = flat[:, j]
            rows.append((label, col + note, c.mean(), c.std(), c.min(), c.max()))
        if flat.shape[1] > MAX_COLUMNS:
            rows.append((label, f"... {flat.shape[1] - MAX_COLUMNS} more", "", "", "", ""))
    return ["<h2>Predictions</h2>", _table(rows, ["output", "column", "mean", "sd", "min", "max"],
                                           num_cols=(2, 3, 4, 5))]


def build_report(path: str, top: int = DEFAULT_TOP, logo_width: int = LOGO_WIDTH, dpi: int = 90,
                 motifs: Optional[str] = None, strand: Optional[str] = None) -> str:
    """The report of a results file as an HTML string (see :func:`write_report`)."""
    import matplotlib
    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 0:
        raise ResultsError(f"--top: expected a non-negative integer, got {top!r}")
    if isinstance(logo_width, bool) or not isinstance(logo_width, (int, np.integer)) or logo_width < 1:
        raise ResultsError(f"--logo-width: expected a positive integer, got {logo_width!r}")
    res = Results(path)
    if not res.shapes:
        raise ResultsError(f"{res.path}: the file holds no datasets")
    if strand is not None:
        res.reverse_minus(strand)
    if motifs is not None:
        if not res.has_attributions:
            raise ResultsError(f"--motifs: {res.path} has no attributions to call seqlets on")
        from .seqlets import read_motifs
        motifs_arg, motifs = motifs, read_motifs(motifs, alphabet_size=res.require_attributions()[1])
    else:
        motifs_arg = None
    name = os.path.basename(res.path)
    op = res.op or "results"
    body = [f"<h1>kipoi-tanger {_e(op)} report</h1>",
            f"<p class=muted>{_e(name)} · {res.n} regions"
            + (f" · model {_e(res.attrs['model'])}" if "model" in res.attrs else "") + "</p>"]
    body += _run_section(res)
    body += _deltas_section(res, dpi)
    seqlets, note = _seqlets(res, motifs, strand)
    body += _seqlets_section(res, seqlets, note, motifs_arg)
    if top:
        body += _logos_section(res, top, int(logo_width), dpi, seqlets, strand)
    body += _effects_section(res, dpi)
    body += _preds_section(res)
    body += _datasets_section(res)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>kipoi-tanger report: {_e(name)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(p for p in body if p) + "\n</body></html>\n")


def write_report(path: str, output: str, top: int = DEFAULT_TOP, logo_width: int = LOGO_WIDTH, dpi: int = 90,
                 motifs: Optional[str] = None, strand: Optional[str] = None) -> str:
    """Write a self-contained HTML report of a ``kipoi-tanger`` results file.

    Parameters
    ----------
    path : str
        HDF5 results file (any op).
    output : str
        HTML file to write (its directory is created).
    top : int, default 5
        Number of regions whose logos are shown (deeplift-shap results);
        0 shows none.
    logo_width : int, default 100
        Positions per logo; longer sequences show the window with the largest
        total |attribution|.
    dpi : int, default 90
    motifs : str, optional
        A MEME motif file: the seqlets are named by their best TOMTOM match.
    strand : {None, 'rc', 'forward'}
        Whether the dataloader reverse-complemented minus-strand regions, when
        the file does not tell (:meth:`Results.reverse_minus`).

    Returns
    -------
    str
        ``output``.
    """
    from .results import check_output_file, write_atomically
    check_output_file(output)
    page = build_report(path, top=top, logo_width=logo_width, dpi=dpi, motifs=motifs, strand=strand)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(page)
    return write_atomically(output, write)
