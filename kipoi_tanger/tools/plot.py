"""Plots of ``kipoi-tanger`` results: attribution sequence logos and
marginalization before/after distributions (PNG, SVG).

Both read result files through :class:`~kipoi_tanger.tools.results.Results`
(the file layout is described there). Letters are drawn with logomaker's
glyphs on matplotlib (Agg, no display). ``kipoi-tanger plot ...`` (see
:mod:`kipoi_tanger.cli`) calls :func:`plot_attributions` and
:func:`plot_marginalize`.
"""
import os
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..adapter.section import DNA
from .results import MAX_PANELS, Placement, Results, ResultsError

__all__ = ["plot_logo", "plot_attributions", "plot_marginalize", "marginalize_figure", "spacing_figure",
           "logo_title", "parse_window",
           "select_regions", "logo_size", "DEFAULT_TOP", "FORMATS", "MIN_GLYPH_FRACTION", "Results", "ResultsError"]

DEFAULT_TOP = 10
FORMATS = ("png", "svg")
# Glyphs lower than this fraction of the tallest one are invisible (well under
# a pixel) but cost as much to build as visible ones, so they are skipped.
MIN_GLYPH_FRACTION = 1e-3


# ---------------------------------------------------------------------------
# logos

def parse_window(window: Optional[str], length: int) -> Tuple[int, int]:
    """``'START:END'`` (either may be empty) → ``(start, end)`` within ``[0, length]``."""
    if window is None:
        return 0, length
    if isinstance(window, (tuple, list)) and len(window) == 2:
        start, end = window
    else:
        m = re.fullmatch(r"\s*(-?\d*)\s*:\s*(-?\d*)\s*", str(window))
        if not m:
            raise ResultsError(f"--window: expected START:END, got {window!r}")
        start = int(m.group(1)) if m.group(1) else 0
        end = int(m.group(2)) if m.group(2) else length
    if not (0 <= start < end <= length):
        raise ResultsError(f"--window: expected 0 <= START < END <= {length}, got {start}:{end}")
    return int(start), int(end)


def _colors(alphabet):
    from logomaker.src.colors import get_color_dict
    try:
        return get_color_dict("classic", "".join(alphabet))
    except Exception:
        return get_color_dict("dimgray", "".join(alphabet))


def plot_logo(attr: np.ndarray, ax=None, start: int = 0, alphabet: Sequence[str] = DNA, title: Optional[str] = None,
              ylabel: str = "attribution", placement: Optional[Placement] = None):
    """Draw one attribution logo: letter heights = scores, positive up,
    negative down (flipped), stacked big-on-top like logomaker's ``Logo``.

    Parameters
    ----------
    attr : array-like, shape (A, L)
        Scores per character and position (a torch tensor works too).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (a new figure otherwise).
    start : int, default 0
        Input position of the first column (x-axis labels).
    alphabet : sequence of str, default ACGT
    title, ylabel : str, optional
    placement : Placement, optional
        Where the input positions lie on the genome
        (:meth:`Results.placement`): the x axis then shows genomic positions
        (0-based, as in BED), decreasing from left to right on a
        reverse-complemented minus-strand region, and says so.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import logomaker
    import matplotlib.pyplot as plt
    attr = np.asarray(attr.detach().cpu() if hasattr(attr, "detach") else attr, dtype=np.float64)
    if attr.ndim != 2 or attr.shape[0] != len(alphabet):
        raise ValueError(f"attr: expected shape ({len(alphabet)}, L), got {attr.shape}")
    A, L = attr.shape
    if ax is None:
        _, ax = plt.subplots(figsize=logo_size(L))
    colors = _colors(alphabet)
    pos = np.where(attr > 0, attr, 0).sum(axis=0)
    neg = np.where(attr < 0, attr, 0).sum(axis=0)
    span = max(float(pos.max(initial=0)), float(-neg.min(initial=0)))
    cutoff = span * MIN_GLYPH_FRACTION
    # logomaker.Logo builds a glyph for every cell, zeros included; building
    # only the visible ones is 3-4x faster for projected attributions.
    for p in np.flatnonzero(np.abs(attr).max(axis=0) > cutoff):
        up, down = 0.0, 0.0
        for j in np.argsort(np.abs(attr[:, p])):
            v = attr[j, p]
            if abs(v) <= cutoff:
                continue
            c = alphabet[j]
            if v > 0:
                floor, ceiling, up = up, up + v, up + v
            else:
                floor, ceiling, down = down + v, down, down + v
            logomaker.Glyph(start + int(p), c, floor=floor, ceiling=ceiling, ax=ax,
                            color=colors.get(c, "gray"), flip=v < 0)
    ax.set_xlim(start - 0.5, start + L - 0.5)
    lo, hi = float(neg.min(initial=0)), float(pos.max(initial=0))
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax.set_ylim(lo - pad if lo < 0 else 0, hi + pad)
    ax.axhline(0, color="black", linewidth=0.5, zorder=0)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("input position")
    if placement is not None:
        from matplotlib.ticker import FuncFormatter, MaxNLocator
        ax.xaxis.set_major_locator(MaxNLocator(nbins=max(3, min(10, L // 8)), integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(placement.base(int(round(x)))):,}"))
        ax.set_xlabel(_wrap(f"{placement.chrom} position (0-based)" + (
            "; minus strand, reverse-complemented as the model read it: positions decrease"
            if placement.reversed else ""), ax.figure.get_figwidth() * 0.85))
    if title:
        ax.set_title(_wrap(title, ax.figure.get_figwidth() * 0.85), fontsize=10)
    return ax


def _wrap(text: str, width_in: float, fontsize: float = 10) -> str:
    """``text`` broken into lines that fit ``width_in`` inches at ``fontsize`` (so titles are never cut off;
    a word longer than a line is broken too)."""
    import textwrap
    chars = max(16, int(width_in * 72 / (0.62 * fontsize)))
    return "\n".join(textwrap.wrap(str(text), chars)) or str(text)


def logo_title(res: Results, row: int, start: int, end: int, length: int,
               placement: Optional[Placement] = None) -> str:
    """Title of a logo of input positions ``[start, end)`` of region ``row``:
    ``chr:start-end strand, id`` of what is shown (the window's genomic span),
    the region when only a window is shown, and whether a minus-strand region is
    shown reverse-complemented."""
    window = (start, end) != (0, length)
    if placement is None:
        title = res.title(row) + (f" [{start}:{end}]" if window else "")
        if res.ranges is not None and "strand" in res.ranges and str(res.ranges["strand"][row]) == "-":
            title += " (input positions: the file does not say whether the dataloader reverse-complemented it)"
        return title
    gs, ge = placement.span(start, end)
    strand = str(res.ranges["strand"][row]) if "strand" in res.ranges else "*"
    title = f"{placement.chrom}:{gs}-{ge} {strand}, {res.ids[row]}"
    if window:
        title += f" [{start}:{end}] of {res.title(row).rsplit(', ', 1)[0]}"
    if placement.reversed:
        title += ", shown reverse-complemented"
    return title


def logo_size(L: int) -> Tuple[float, float]:
    """Figure size (inches) of a logo of ``L`` positions."""
    return (float(np.clip(1.5 + 0.12 * L, 6, 50)), 2.4)


def _safe(name):
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return s[:80] or "region"


def file_stem(region_id) -> str:
    """A file name for a region id, distinct for distinct ids and the same in every call.

    An id that is already a safe file name (letters, digits, ``._-``, at most 80
    characters) is kept; any other is made safe and followed by a short hash of
    the id, so ``a/b`` (``a_b_<hash>``) and ``a_b`` never share a file.
    """
    rid = str(region_id)
    safe = _safe(rid)
    if safe == rid:
        return safe
    import hashlib
    return f"{safe}_{hashlib.sha1(rid.encode()).hexdigest()[:8]}"


def _save(fig, base, formats, dpi):
    paths = []
    if len(formats) > 1 and fig.get_layout_engine() is not None:
        # lay the figure out once (constrained layout would run again for every format)
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
    for fmt in formats:
        path = f"{base}.{fmt}"
        # layout is fixed with tight_layout beforehand: bbox_inches="tight"
        # would draw every figure twice
        fig.savefig(path, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    return paths


def _check_dpi(dpi):
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float, np.integer, np.floating)) or not dpi > 0:
        raise ResultsError(f"--dpi: expected a positive number, got {dpi!r}")
    return dpi


def _out_dir(out_dir):
    """Create the output directory; return the dirs created (removed again if plotting fails)."""
    from ..run.outputs import make_parents
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ResultsError(f"-o/--output: {out_dir} exists and is not a directory; expected an output directory")
    return make_parents([os.path.join(out_dir, "x")])


def _write_figures(out_dir, figures, formats, dpi) -> List[str]:
    """Save each ``(figure, file stem)`` of ``figures`` into ``out_dir`` in every format and
    close it; the written paths. On any error (drawing or saving) the figures opened meanwhile are
    closed and the files written and directories created are removed."""
    import matplotlib.pyplot as plt
    from ..run.outputs import remove_dirs
    open_before = set(plt.get_fignums())
    created = _out_dir(out_dir)
    written = []
    try:
        for fig, stem in figures:
            base = os.path.join(out_dir, stem)
            written += [f"{base}.{fmt}" for fmt in formats]
            _save(fig, base, formats, dpi)
            plt.close(fig)
    except BaseException:
        for num in set(plt.get_fignums()) - open_before:
            plt.close(num)
        for path in written:
            if os.path.exists(path):
                os.remove(path)
        remove_dirs(created)
        raise
    return written


def _check_formats(formats):
    formats = tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if not formats or bad:
        raise ResultsError(f"--format: expected some of {', '.join(FORMATS)}, got {', '.join(map(str, bad)) or 'none'}")
    return formats


def select_regions(res: Results, regions: Optional[Sequence[str]] = None, top: Optional[int] = None) -> List[int]:
    """Rows to plot: the given region ids, else the ``top`` regions by total
    ``|attribution|`` (default 10), best first."""
    if regions:
        return res.rows_for_ids(regions)
    top = DEFAULT_TOP if top is None else top
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ResultsError(f"--top: expected a positive integer, got {top!r}")
    scores = res.scores()
    return [int(i) for i in np.argsort(-scores, kind="stable")[:top]]


def plot_attributions(path: str, out_dir: str, regions: Optional[Sequence[str]] = None, top: Optional[int] = None,
                      window: Optional[str] = None, formats: Sequence[str] = FORMATS, dpi: int = 100,
                      strand: Optional[str] = None) -> List[str]:
    """Write one logo per selected region of a deeplift-shap results file.

    Parameters
    ----------
    path : str
        HDF5 results file with ``attributions``.
    out_dir : str
        Output directory (created).
    regions : list of str, optional
        Region ids (``metadata/ranges/id``; row numbers when the file has no
        metadata). Mutually exclusive with ``top``.
    top : int, optional
        Plot the ``top`` regions with the largest total |attribution|
        (default 10 when ``regions`` is not given).
    window : str or (int, int), optional
        ``'START:END'`` positions (0-based, end exclusive) to draw.
    formats : sequence of {'png', 'svg'}
    dpi : int, default 100
    strand : {None, 'rc', 'forward'}
        Whether the dataloader reverse-complemented minus-strand regions, when
        the file does not tell (:meth:`Results.reverse_minus`). Logos are drawn
        as the model read the sequence, with genomic positions on the x axis.

    Returns
    -------
    list of str
        The written files, in plotting order (PNG then SVG per region).
    """
    import matplotlib
    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    formats = _check_formats(formats)
    _check_dpi(dpi)
    res = Results(path)
    if regions and top is not None:
        raise ResultsError("--regions and --top: give one or the other")
    _, A, L = res.require_attributions()
    start, end = parse_window(window, L)
    if strand is not None:
        res.reverse_minus(strand)          # a contradiction is an error before anything is drawn
    rows = select_regions(res, regions, top)
    attrs = res.projected(rows)[:, :, start:end]

    def figures():
        used = set()
        for row, a in zip(rows, attrs):
            name = file_stem(res.ids[row])
            if name.lower() in used:      # the same id twice (or ids differing in case only: macOS, Windows)
                name = f"{name}_row{row}"
            used.add(name.lower())
            fig, ax = plt.subplots(figsize=logo_size(end - start))
            placement = res.placement(row, L, strand)
            plot_logo(a, ax=ax, start=start, alphabet=res.alphabet[:A] if len(res.alphabet) >= A else DNA,
                      title=logo_title(res, row, start, end, L, placement), placement=placement)
            fig.tight_layout()
            yield fig, f"logo_{name}"
    return _write_figures(out_dir, figures(), formats, dpi)


# ---------------------------------------------------------------------------
# marginalization

def _panels(before, after, names: Optional[Sequence[str]] = None, name: str = ""):
    """Split ``(N, ...)`` arrays into per-column pairs with labels: product
    axes first, the last axis is the output's columns (``names``: their labels,
    e.g. the schema's column labels; ``name``: the output's name)."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    if before.shape != after.shape:
        raise ResultsError(f"before/after shapes differ: {before.shape} vs {after.shape}")
    rest = before.shape[1:]
    if not rest:
        return [(name, before, after)]
    names = list(names) if names is not None and len(names) == rest[-1] else None
    out = []
    for idx in np.ndindex(*rest):
        if names is not None:
            col = names[idx[-1]] if rest[-1] > 1 or not name else ""
        else:
            col = f"target {idx[-1]}" if rest[-1] > 1 or not name else ""
        label = ", ".join([name] * bool(name) + [f"p{k}={v}" for k, v in enumerate(idx[:-1])]
                          + [col] * bool(col))
        out.append((label, before[(slice(None),) + idx], after[(slice(None),) + idx]))
    return out


def _grid(n_panels, per_panel, max_cols):
    """``(rows, panels per row)`` of a grid of ``n_panels`` panels of ``per_panel`` axes each."""
    per_row = max(1, min(n_panels, max_cols // per_panel))
    return -(-n_panels // per_row), per_row


def _suptitle(fig, title, more=""):
    if title or more:
        fig.suptitle(_wrap(f"{title}{more}", fig.get_figwidth(), 10), fontsize=10)


def marginalize_figure(before: np.ndarray, after: np.ndarray, title: str = "", quantity: str = "prediction",
                       names: Optional[Sequence[str]] = None, name: str = "", after_label: str = "after"):
    """Before/after of every region, one pair of axes per column (at most ``MAX_PANELS``):
    overlaid histograms of the two distributions, and a paired view, each region's
    value before (x) against after (y) with the diagonal (no change).

    Parameters
    ----------
    before, after : numpy.ndarray, shape=(N, ...)
        Same shapes; product axes first, the output's columns last.
    title, quantity : str
        Figure title (wrapped to the figure's width) and the compared quantity.
    names : sequence of str, optional
        Labels of the output's columns (the schema's column labels).
    name : str
        The output's name, shown in every panel's title.
    after_label : str
        What "after" is (e.g. ``after (mean over 5 shuffles)``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    panels = _panels(before, after, names, name)
    shown = panels[:MAX_PANELS]
    nrow, per_row = _grid(len(shown), 2, 4)
    fig, axes = plt.subplots(nrow, 2 * per_row, figsize=(3.3 * 2 * per_row, 2.9 * nrow + 0.5), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel()[2 * len(shown):]:
        ax.set_visible(False)
    flat = axes.ravel()
    for k, (label, b, a) in enumerate(shown):
        hist_ax, pair_ax = flat[2 * k], flat[2 * k + 1]
        both = np.concatenate([b, a])
        both = both[np.isfinite(both)]
        lo, hi = (both.min(), both.max()) if both.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 31)
        hist_ax.hist(b[np.isfinite(b)], bins=bins, alpha=0.55, color="0.45", label="before", histtype="stepfilled")
        hist_ax.hist(a[np.isfinite(a)], bins=bins, alpha=0.55, color="tab:red", label=after_label,
                     histtype="stepfilled")
        delta = float(np.nanmean(a - b)) if len(a) else float("nan")
        head = f"{label}: " if label else ""
        hist_ax.set_title(_wrap(f"{head}mean Δ {delta:+.3g}", 2.5, 9), fontsize=9)
        hist_ax.set_xlabel(_wrap(quantity, 2.5, 10))
        hist_ax.set_ylabel("regions")
        hist_ax.legend(fontsize=7, frameon=False)
        ok = np.isfinite(b) & np.isfinite(a)
        pair_ax.scatter(b[ok], a[ok], s=9, color="tab:red", alpha=0.6, linewidths=0)
        pad = 0.04 * (hi - lo)
        pair_ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", linewidth=0.8, linestyle="--")
        pair_ax.set_xlim(lo - pad, hi + pad)
        pair_ax.set_ylim(lo - pad, hi + pad)
        up = int((a[ok] > b[ok]).sum())
        pair_ax.set_title(_wrap(f"{head}per region: {up} of {int(ok.sum())} up", 2.5, 9), fontsize=9)
        pair_ax.set_xlabel("before")
        pair_ax.set_ylabel(after_label)
    more = f" (first {MAX_PANELS} of {len(panels)} columns)" if len(panels) > MAX_PANELS else ""
    _suptitle(fig, title, more)
    return fig


def spacing_figure(before: np.ndarray, after: np.ndarray, spacings: Sequence[str], title: str = "",
                   quantity: str = "prediction", names: Optional[Sequence[str]] = None, name: str = ""):
    """The change (after - before) of every region at every spacing of a ``space``
    run: a box per spacing and the mean, one panel per column (at most ``MAX_PANELS``).

    Parameters
    ----------
    before : numpy.ndarray, shape=(N, ...)
    after : numpy.ndarray, shape=(N, n_spacings, ...)
    spacings : sequence of str
        Labels of the spacings (the gaps, ``5`` or ``5,10``).
    title, quantity, names, name
        As in :func:`marginalize_figure`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    if after.shape[:1] + after.shape[2:] != before.shape:
        raise ResultsError(f"before/after shapes do not match: {before.shape} vs {after.shape} "
                           "(expected after = (N, n_spacings, ...))")
    S = after.shape[1]
    delta = after - before[:, None]
    # (N, S, ...) -> panels of (N, S) per column
    moved = np.moveaxis(delta, 1, -1)
    panels = _panels(moved[..., 0], moved[..., 0], names, name) if S else []
    cols = [(label, moved[(slice(None),) + idx]) for (label, _, _), idx in
            zip(panels, np.ndindex(*moved.shape[1:-1]))]
    shown = cols[:MAX_PANELS]
    nrow, per_row = _grid(len(shown), 1, 3)
    width = max(3.6, 0.45 * S + 1.5)
    fig, axes = plt.subplots(nrow, per_row, figsize=(width * per_row, 3.0 * nrow + 0.5), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel()[len(shown):]:
        ax.set_visible(False)
    x = np.arange(S)
    for ax, (label, d) in zip(axes.ravel(), shown):
        keep = [col[np.isfinite(col)] for col in d.T]
        ax.boxplot(keep, positions=x, widths=0.6, showfliers=False, patch_artist=True,
                   boxprops=dict(facecolor="#f4c7c3", edgecolor="0.3"), medianprops=dict(color="0.2"))
        ax.plot(x, [k.mean() if k.size else np.nan for k in keep], "o-", color="tab:red", markersize=3,
                label="mean")
        ax.axhline(0, color="0.5", linewidth=0.8, linestyle="--")
        ax.set_xticks(x)
        ax.set_xticklabels(list(spacings), rotation=90 if S > 12 else 0, fontsize=8)
        ax.set_xlabel("gap between the motifs (bp)")
        ax.set_ylabel(_wrap(f"Δ {quantity}", 2.6, 9), fontsize=9)
        if label:
            ax.set_title(_wrap(label, width - 1, 9), fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    more = f" (first {MAX_PANELS} of {len(cols)} columns)" if len(cols) > MAX_PANELS else ""
    _suptitle(fig, title, more)
    return fig


def effect_figure(res: Results, label: str, before: str, after: str, title: str):
    """The figure of one before/after pair of a marginalize, ablate or space file."""
    kind = res.effect_kind(before, after)
    b, a, quantity = res.marginalize_values(before, after)
    n_cols = b.shape[-1] if b.ndim > 1 else 1
    names = res.column_names(before, n_cols) if res.column_labels(before) else None
    name = "" if label == "output" else label
    if kind == "space":
        return spacing_figure(b, a, res.spacing_labels(a.shape[1]), title=title, quantity=quantity,
                              names=names, name=name)
    after_label = f"after (mean of {res.shapes[after][1]} shuffles)" if kind == "ablate" else "after"
    quantity = quantity.split(", after:")[0]
    return marginalize_figure(b, a, title=title, quantity=quantity, names=names, name=name,
                              after_label=after_label)


def effect_title(res: Results, label: str, before: str, after: str) -> str:
    """``marginalize GATAAG: counts (prediction)``-style title of a before/after pair."""
    kind = res.effect_kind(before, after)
    p = res.parameters
    what = {"marginalize": f"marginalize {p.get('motif', '')}".rstrip(),
            "ablate": (f"ablate input positions {p.get('start')}-{p.get('end')} ({p.get('n', '')} "
                       + ("dinucleotide " if p.get("shuffle") == "dinucleotide" else "")
                       + "shuffles)" if "start" in p else "ablate"),
            "space": ("space " + " + ".join(map(str, p.get("motifs") or [])) if p.get("motifs") else "space")
            }[kind]
    return f"{what} · {label}"


def plot_marginalize(path: str, out_dir: str, formats: Sequence[str] = FORMATS, dpi: int = 100) -> List[str]:
    """Write before/after plots of a marginalize, ablate or space results file, one
    figure per model output (``marginalize[_<output>].png/.svg``), named by the
    outputs' schema names: distributions and a paired per-region view
    (marginalize, ablate: after = the mean over the shuffles), or the per-region
    change at each spacing (space).

    Returns
    -------
    list of str
        The written files.
    """
    import matplotlib
    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    formats = _check_formats(formats)
    _check_dpi(dpi)
    res = Results(path)
    pairs = res.marginalize_pairs()
    if not pairs:
        op = f" (op: {res.op})" if res.op else ""
        raise ResultsError(f"{res.path}: no 'y_before'/'y_after' datasets{op}; "
                           "expected the output of kipoi-tanger marginalize, ablate or space")
    figures = ((effect_figure(res, label, before, after, effect_title(res, label, before, after)),
                "marginalize" + ("" if "/" not in before else "_" + file_stem(res.output_name(before))))
               for label, before, after in pairs)
    return _write_figures(out_dir, figures, formats, dpi)
