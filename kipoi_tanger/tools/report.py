"""One static, self-contained HTML page summarising a ``kipoi-tanger`` run.

The page holds the run's model, op and parameters, the datasets, the number
of regions, convergence-delta statistics (deeplift-shap), the top regions'
attribution logos (deeplift-shap), before/after distributions (marginalize)
and prediction summaries. Images are PNGs embedded as ``data:`` URIs and the
style sheet is inline, so the file opens in a browser with no network and
can be mailed or archived as one file.
"""
import base64
import html
import io
import os
from typing import Tuple

import numpy as np

from .plot import logo_size, marginalize_figure, plot_logo, select_regions
from .results import Results, ResultsError

DEFAULT_TOP = 5
LOGO_WIDTH = 100     # positions per logo; longer sequences show their strongest window
MAX_COLUMNS = 10     # prediction columns summarised per dataset

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
.warn{color:#a40}
"""


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


def _run_section(res):
    keys = [("model", "model"), ("source", "source"), ("op", "op"),
            ("version", "kipoi_tanger_version"), ("layout", "layout"),
            ("sequence input", "sequence_input"), ("output", "output"),
            ("alphabet", "alphabet")]
    rows = [(label, res.attrs[k]) for label, k in keys if k in res.attrs]
    rows = [(label, "".join(v) if label == "alphabet" and all(len(str(c)) == 1 for c in v) else v)
            for label, v in rows]
    rows.insert(min(3, len(rows)), ("regions", res.n))
    shown = {k for _, k in keys} | {"parameters"}
    rows += [(k, v) for k, v in sorted(res.attrs.items()) if k not in shown]
    parts = ["<h2>Run</h2>", _table(rows)]
    if res.parameters:
        parts += ["<h2>Parameters</h2>", _table(sorted(res.parameters.items()), ["parameter", "value"])]
    ds = [(name, "(" + ", ".join(map(str, res.shapes[name])) + ")", res.dtypes[name])
          for name in sorted(res.shapes)]
    parts += ["<h2>Datasets</h2>", _table(ds, ["dataset", "shape", "dtype"])]
    return parts


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
    note = (f'<p class="warn">{above} deltas exceed the threshold: an operation in the model may '
            "lack a DeepLIFT rule.</p>" if above else "")
    return ["<h2>Convergence deltas</h2>", _table(rows, num_cols=(1,)), note,
            _img(_png(fig, dpi), "convergence delta histogram")]


def _logos_section(res, top, width, dpi):
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
             f"<p class=muted>Letter heights are {kind}: positive up, negative down."
             + (f" Sequences longer than {width} bp show their strongest {width}-bp window." if L > width else "")
             + "</p>",
             _table(table, ["rank", "id", "region", "sum |attribution|"], num_cols=(0, 3))]
    alphabet = res.alphabet if len(res.alphabet) == A else tuple("ACGT"[:A])
    for k, (row, a) in enumerate(zip(rows, attrs)):
        s, e = strongest_window(a, width)
        fig, ax = plt.subplots(figsize=logo_size(e - s))
        title = res.title(row) + (f" [{s}:{e}]" if (s, e) != (0, L) else "")
        plot_logo(a[:, s:e], ax=ax, start=s, alphabet=alphabet, title=title)
        parts.append(_img(_png(fig, dpi), f"attribution logo of {res.ids[row]}",
                          f"#{k + 1}: {title}"))
    return parts


def _marginalize_section(res, dpi):
    pairs = res.marginalize_pairs()
    if not pairs:
        return []
    motif = res.parameters.get("motif")
    parts = ["<h2>Marginalization" + (f": <code>{_e(motif)}</code>" if motif else "") + "</h2>"]
    for label, before, after in pairs:
        b, a, quantity = res.marginalize_values(before, after)
        rows = []
        flat_b, flat_a = b.reshape(len(b), -1), a.reshape(len(a), -1)
        for j in range(min(MAX_COLUMNS, flat_b.shape[1])):
            idx = np.unravel_index(j, b.shape[1:]) if b.ndim > 1 else ()
            rows.append((label + (f" {list(map(int, idx))}" if idx else ""), flat_b[:, j].mean(),
                         flat_a[:, j].mean(), (flat_a[:, j] - flat_b[:, j]).mean()))
        parts.append(_table(rows, ["output [index]", "mean before", "mean after", "mean Δ"],
                            num_cols=(1, 2, 3)))
        fig = marginalize_figure(b, a, title=f"{label}: {quantity} before vs after", quantity=quantity)
        parts.append(_img(_png(fig, dpi), f"marginalize {label}", f"{before} vs {after}"))
    return parts


def _preds_section(res):
    names = [n for n in sorted(res.shapes) if n == "preds" or n.startswith("preds/")]
    if not names:
        return []
    rows = []
    for name in names:
        if res.dtypes[name] == "str":
            continue
        y = res._read(name).astype(np.float64)
        flat = y.reshape(len(y), -1)
        for j in range(min(MAX_COLUMNS, flat.shape[1])):
            c = flat[:, j]
            rows.append((name, j, c.mean(), c.std(), c.min(), c.max()))
        if flat.shape[1] > MAX_COLUMNS:
            rows.append((name, f"... {flat.shape[1] - MAX_COLUMNS} more", "", "", "", ""))
    return ["<h2>Predictions</h2>", _table(rows, ["dataset", "column", "mean", "sd", "min", "max"],
                                           num_cols=(2, 3, 4, 5))]


def build_report(path: str, top: int = DEFAULT_TOP, logo_width: int = LOGO_WIDTH, dpi: int = 90) -> str:
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
    name = os.path.basename(res.path)
    op = res.op or "results"
    body = [f"<h1>kipoi-tanger {_e(op)} report</h1>",
            f"<p class=muted>{_e(name)} · {res.n} regions"
            + (f" · model {_e(res.attrs['model'])}" if "model" in res.attrs else "") + "</p>"]
    body += _run_section(res)
    body += _deltas_section(res, dpi)
    if top:
        body += _logos_section(res, top, int(logo_width), dpi)
    body += _marginalize_section(res, dpi)
    body += _preds_section(res)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>kipoi-tanger report: {_e(name)}</title><style>{_CSS}</style></head>\n<body>\n"
            + "\n".join(p for p in body if p) + "\n</body></html>\n")


def write_report(path: str, output: str, top: int = DEFAULT_TOP, logo_width: int = LOGO_WIDTH, dpi: int = 90) -> str:
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

    Returns
    -------
    str
        ``output``.
    """
    page = build_report(path, top=top, logo_width=logo_width, dpi=dpi)
    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    with open(output, "w", encoding="utf-8") as fh:
        fh.write(page)
    return output
