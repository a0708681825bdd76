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
from .results import MAX_PANELS, Results, ResultsError

__all__ = ["plot_logo", "plot_attributions", "plot_marginalize", "marginalize_figure", "parse_window",
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
              ylabel: str = "attribution"):
    """Draw one attribution logo: letter heights = scores, positive up,
    negative down (flipped), stacked big-on-top like logomaker's ``Logo``.

    Parameters
    ----------
    attr : array-like, shape (A, L)
        Scores per character and position (a torch tensor works too).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on (a new figure otherwise).
    start : int, default 0
        Position of the first column (x-axis labels).
    alphabet : sequence of str, default ACGT
    title, ylabel : str, optional

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
    ax.set_xlabel("position")
    if title:
        ax.set_title(title, fontsize=10)
    return ax


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
    for fmt in formats:
        path = f"{base}.{fmt}"
        # layout is fixed with tight_layout beforehand: bbox_inches="tight"
        # would draw every figure twice
        fig.savefig(path, dpi=dpi, metadata={"Date": None} if fmt == "svg" else None)
        paths.append(path)
    return paths


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
                      window: Optional[str] = None, formats: Sequence[str] = FORMATS, dpi: int = 100) -> List[str]:
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
    res = Results(path)
    if regions and top is not None:
        raise ResultsError("--regions and --top: give one or the other")
    _, A, L = res.require_attributions()
    start, end = parse_window(window, L)
    rows = select_regions(res, regions, top)
    attrs = res.projected(rows)[:, :, start:end]
    os.makedirs(out_dir, exist_ok=True)
    written, used = [], set()
    for rank, (row, a) in enumerate(zip(rows, attrs)):
        name = file_stem(res.ids[row])
        if name.lower() in used:      # the same id twice (or ids differing in case only: macOS, Windows)
            name = f"{name}_row{row}"
        used.add(name.lower())
        fig, ax = plt.subplots(figsize=logo_size(end - start))
        title = res.title(row) + (f" [{start}:{end}]" if (start, end) != (0, L) else "")
        plot_logo(a, ax=ax, start=start, alphabet=res.alphabet[:A] if len(res.alphabet) >= A else DNA,
                  title=title)
        fig.tight_layout()
        written += _save(fig, os.path.join(out_dir, f"logo_{name}"), formats, dpi)
        plt.close(fig)
    return written


# ---------------------------------------------------------------------------
# marginalization

def _panels(before, after):
    """Split ``(N, ...)`` arrays into per-column pairs with labels: product
    axes first, the last axis is the output's targets."""
    before = np.asarray(before, dtype=np.float64)
    after = np.asarray(after, dtype=np.float64)
    if before.shape != after.shape:
        raise ResultsError(f"before/after shapes differ: {before.shape} vs {after.shape}")
    rest = before.shape[1:]
    if not rest:
        return [("", before, after)]
    out = []
    for idx in np.ndindex(*rest):
        if len(rest) == 1:
            label = f"target {idx[0]}"
        else:
            label = ", ".join(f"p{k}={v}" for k, v in enumerate(idx[:-1])) + f", target {idx[-1]}"
        out.append((label, before[(slice(None),) + idx], after[(slice(None),) + idx]))
    return out


def marginalize_figure(before: np.ndarray, after: np.ndarray, title: str = "", quantity: str = "prediction"):
    """Overlaid before/after histograms, one panel per column (at most
    ``MAX_PANELS``); returns the matplotlib figure."""
    import matplotlib.pyplot as plt
    panels = _panels(before, after)
    shown = panels[:MAX_PANELS]
    ncol = min(4, len(shown))
    nrow = -(-len(shown) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.8 * nrow), squeeze=False)
    for ax in axes.ravel()[len(shown):]:
        ax.set_visible(False)
    for ax, (label, b, a) in zip(axes.ravel(), shown):
        finite = np.concatenate([b, a])
        finite = finite[np.isfinite(finite)]
        lo, hi = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 31)
        ax.hist(b[np.isfinite(b)], bins=bins, alpha=0.55, color="0.45", label="before")
        ax.hist(a[np.isfinite(a)], bins=bins, alpha=0.55, color="tab:red", label="after")
        delta = float(np.nanmean(a - b)) if len(a) else float("nan")
        ax.set_title(f"{label} (mean Δ {delta:+.3g})".strip(), fontsize=9)
        ax.set_xlabel(quantity)
        ax.set_ylabel("regions")
        ax.legend(fontsize=7, frameon=False)
    more = f" (first {MAX_PANELS} of {len(panels)} panels)" if len(panels) > MAX_PANELS else ""
    fig.suptitle(f"{title}{more}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_marginalize(path: str, out_dir: str, formats: Sequence[str] = FORMATS, dpi: int = 100) -> List[str]:
    """Write before/after distribution plots of a marginalize results file,
    one figure per output (``marginalize[_<output>].png/.svg``).

    Returns
    -------
    list of str
        The written files.
    """
    import matplotlib
    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    formats = _check_formats(formats)
    res = Results(path)
    pairs = res.marginalize_pairs()
    if not pairs:
        op = f" (op: {res.op})" if res.op else ""
        raise ResultsError(f"{res.path}: no 'y_before'/'y_after' datasets{op}; "
                           "expected the output of kipoi-tanger marginalize")
    os.makedirs(out_dir, exist_ok=True)
    motif = res.parameters.get("motif")
    written = []
    for label, before, after in pairs:
        title = f"marginalize {motif} · {label}" if motif else f"marginalize · {label}"
        b, a, quantity = res.marginalize_values(before, after)
        fig = marginalize_figure(b, a, title=title, quantity=quantity)
        suffix = "" if label == "output" else "_" + _safe(label.split(" ", 1)[1])
        written += _save(fig, os.path.join(out_dir, f"marginalize{suffix}"), formats, dpi)
        plt.close(fig)
    return written
