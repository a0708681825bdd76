"""Plots of ``kipoi-tanger`` results: attribution sequence logos and
marginalization before/after distributions.

Both read the HDF5 files the runner writes (Kipoi's layout, one dataset per
leaf, axis 0 = regions):

* ``attributions`` ``(N, A, L)``, projected (``X * hypothetical``) unless the
  run used ``--hypothetical`` (root/parameter attribute ``hypothetical``); an
  optional separate ``hypothetical`` ``(N, A, L)`` dataset;
* ``inputs`` (``--keep_inputs``) in the model's layout, turned into canonical
  one-hot ``(N, A, L)`` with the ``layout`` attribute (or, for plain Kipoi
  files, by matching the attributions' shape);
* ``metadata/ranges/{chr,start,end,id,strand}`` for titles and ``--regions``;
* ``y_before``/``y_after`` (or groups of them, one dataset per output) for
  marginalization, product axes right after the region axis.

Letters are drawn with logomaker's glyphs on matplotlib (Agg, no display).
``kipoi-tanger plot ...`` is registered with :func:`register_commands`;
``python -m kipoi_tanger.plot plot attributions OUT.h5 -o DIR`` runs the same
command without the main CLI.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

DNA = ("A", "C", "G", "T")
DEFAULT_TOP = 10
FORMATS = ("png", "svg")
# Glyphs lower than this fraction of the tallest one are invisible (well under
# a pixel) but cost as much to build as visible ones, so they are skipped.
MIN_GLYPH_FRACTION = 1e-3
MAX_PANELS = 24


class ResultsError(ValueError):
    """A results file cannot be used as asked (one line, names the file)."""


# ---------------------------------------------------------------------------
# reading results files

def _decode(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


class Results:
    """Read-only view of one ``kipoi-tanger`` HDF5 file.

    Only attributes, names and the (small) region metadata are read up
    front; arrays are read on demand, for the rows asked.

    Parameters
    ----------
    path : str
        An HDF5 file written by ``kipoi-tanger`` (or ``kipoi predict``).
    """

    def __init__(self, path):
        import h5py
        self.path = str(path)
        if not os.path.exists(self.path):
            raise ResultsError(f"{self.path}: no such file")
        if not os.path.isfile(self.path) or not h5py.is_hdf5(self.path):
            raise ResultsError(f"{self.path}: not an HDF5 file")
        self.shapes, self.dtypes = {}, {}
        with h5py.File(self.path, "r") as f:
            self.attrs = {k: _decode(v) for k, v in f.attrs.items()}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    self.shapes[name] = tuple(obj.shape)
                    self.dtypes[name] = "str" if h5py.check_string_dtype(obj.dtype) else obj.dtype.str

            f.visititems(visit)
            self.ranges = None
            keys = ("chr", "start", "end", "id", "strand")
            if all(f"metadata/ranges/{k}" in self.shapes for k in ("chr", "start", "end")):
                self.ranges = {}
                for k in keys:
                    name = f"metadata/ranges/{k}"
                    if name in self.shapes:
                        d = f[name]
                        self.ranges[k] = (np.asarray(d.asstr()[:], dtype=str)
                                          if self.dtypes[name] == "str" else d[:])
        params = self.attrs.get("parameters")
        self.parameters = params if isinstance(params, dict) else {}
        alphabet = self.attrs.get("alphabet")
        self.alphabet = tuple(alphabet) if isinstance(alphabet, (list, tuple, str)) and alphabet else DNA
        lengths = {s[0] for s in self.shapes.values() if s}
        self.n = (len(self.ranges["chr"]) if self.ranges
                  else self.shapes["attributions"][0] if "attributions" in self.shapes
                  else (max(lengths) if lengths else 0))
        if self.ranges is not None and "id" in self.ranges:
            self.ids = np.asarray([str(i) for i in self.ranges["id"]])
        else:
            self.ids = np.asarray([str(i) for i in range(self.n)])

    # -- metadata ---------------------------------------------------------

    @property
    def op(self):
        return self.attrs.get("op")

    def title(self, i):
        """``chr:start-end strand, id`` of region ``i`` (row index)."""
        if self.ranges is None:
            return f"region {self.ids[i]}"
        r = self.ranges
        strand = str(r["strand"][i]) if "strand" in r else "*"
        return f"{r['chr'][i]}:{int(r['start'][i])}-{int(r['end'][i])} {strand}, {self.ids[i]}"

    def rows_for_ids(self, ids):
        """Row indices of region ids (the first row of a duplicated id)."""
        first = {}
        for row, rid in enumerate(self.ids):
            first.setdefault(rid, row)
        rows = []
        for rid in ids:
            if str(rid) not in first:
                sample = ", ".join(list(first)[:3])
                raise ResultsError(f"--regions: unknown region id {rid!r} in {self.path} "
                                   f"(ids look like: {sample})")
            rows.append(first[str(rid)])
        return rows

    # -- arrays -----------------------------------------------------------

    def _read(self, name, rows=None):
        import h5py
        with h5py.File(self.path, "r") as f:
            d = f[name]
            if rows is None:
                return d[:]
            rows = np.asarray(rows, dtype=np.int64)
            # h5py wants increasing, unique indices
            uniq, inverse = np.unique(rows, return_inverse=True)
            return d[uniq][inverse]

    @property
    def has_attributions(self):
        return "attributions" in self.shapes

    def require_attributions(self):
        if not self.has_attributions:
            op = f" (op: {self.op})" if self.op else ""
            raise ResultsError(f"{self.path}: no 'attributions' dataset{op}; "
                               "expected the output of kipoi-tanger deeplift-shap")
        shape = self.shapes["attributions"]
        if len(shape) != 3:
            extra = " (product outputs with axes between N and A are not plotted)" if len(shape) > 3 else ""
            raise ResultsError(f"{self.path}: 'attributions' has shape {shape}, expected (N, A, L){extra}")
        return shape

    @property
    def attributions_are_hypothetical(self):
        """True when ``attributions`` holds hypothetical (unmasked) scores."""
        if "hypothetical" in self.shapes:
            return False
        for src in (self.attrs, self.parameters):
            if "hypothetical" in src:
                return _truthy(src["hypothetical"])
        return False

    def attributions(self, rows=None):
        self.require_attributions()
        return self._read("attributions", rows).astype(np.float32, copy=False)

    def hypothetical(self, rows=None):
        """Hypothetical attributions ``(n, A, L)``, or None if the file has none."""
        if "hypothetical" in self.shapes:
            return self._read("hypothetical", rows).astype(np.float32, copy=False)
        if self.attributions_are_hypothetical:
            return self.attributions(rows)
        return None

    def _inputs_name(self):
        """The dataset holding the sequence input: ``inputs``, ``inputs/<sequence_input>``
        or, for list inputs written as ``inputs/0``, ``inputs/1``..., the one
        shaped like the sequence."""
        seq = self.attrs.get("sequence_input")
        for name in ["inputs"] + ([f"inputs/{seq}"] if seq not in (None, "") else []):
            if name in self.shapes:
                return name
        candidates = sorted(n for n in self.shapes if n.startswith("inputs/"))
        if seq not in (None, ""):
            named = [n for n in candidates if n.endswith(f"/{seq}")]
            if named:
                return named[0]
        if len(candidates) == 1:
            return candidates[0]
        fits = [n for n in candidates if self._fits_sequence(self.shapes[n][1:])]
        return fits[0] if fits else None

    def _fits_sequence(self, row):
        if "attributions" not in self.shapes or len(self.shapes["attributions"]) != 3:
            return False
        A, L = self.shapes["attributions"][1:]
        layout = self.attrs.get("layout")
        if layout:
            import torch
            from .adapter import Layout
            try:
                lay = Layout.parse(layout)
            except ValueError:
                return False
            want = (L,) if lay.tokens else tuple(lay.to_model(torch.zeros(1, A, L)).shape[1:])
            return tuple(row) == want
        core = tuple(s for s in row if s != 1)
        return core in ((A, L), (L, A), (L,))

    @property
    def has_sequences(self):
        return self._inputs_name() is not None

    def sequences(self, rows=None):
        """Canonical one-hot ``(n, A, L)`` float32 from ``inputs``, or None."""
        name = self._inputs_name()
        if name is None:
            return None
        x = self._read(name, rows)
        return self._canonical(x, name)

    def _canonical(self, x, name):
        A = len(self.alphabet)
        layout = self.attrs.get("layout")
        if layout:
            from .adapter import Layout
            try:
                out = Layout.parse(layout).from_model(x, A)
            except Exception as e:
                raise ResultsError(f"{self.path}: cannot read '{name}' {x.shape[1:]} with layout "
                                   f"{layout!r}: {e}") from None
            return out.numpy().astype(np.float32, copy=False)
        # A plain Kipoi file: match the attributions' (A, L) after dropping
        # size-1 axes; integer tokens become one-hot.
        target = self.shapes.get("attributions", (None, A, None))[1:]
        core = x.reshape((x.shape[0],) + tuple(s for s in x.shape[1:] if s != 1))
        if core.ndim == 2 and np.issubdtype(core.dtype, np.integer):
            return np.eye(A, dtype=np.float32)[core].transpose(0, 2, 1)
        if core.ndim == 3:
            a, b = core.shape[1:]
            if a == A and (target[1] in (None, b)):
                return core.astype(np.float32, copy=False)
            if b == A and (target[1] in (None, a)):
                return core.transpose(0, 2, 1).astype(np.float32)
        raise ResultsError(f"{self.path}: '{name}' has shape {x.shape[1:]} per region, which is not "
                           f"one-hot (A={A}, L) or (L, A), and the file records no layout")

    def projected(self, rows=None):
        """Attributions to draw: projected onto the observed bases when the
        file holds hypothetical ones and the sequences are known."""
        hyp_only = "hypothetical" not in self.shapes and self.attributions_are_hypothetical
        a = self.attributions(rows)
        if hyp_only:
            x = self.sequences(rows)
            if x is not None:
                a = a * x
        return a

    def scores(self, block=256):
        """Per-region total ``|attribution|`` (projected where possible)."""
        self.require_attributions()
        out = np.empty(self.n, dtype=np.float64)
        for s in range(0, self.n, block):
            rows = np.arange(s, min(self.n, s + block))
            out[rows] = np.abs(self.projected(rows)).sum(axis=(1, 2))
        return out

    def convergence_deltas(self):
        if "convergence_deltas" not in self.shapes:
            return None
        return self._read("convergence_deltas").astype(np.float64)

    def marginalize_pairs(self):
        """``[(label, before name, after name)]`` for every marginalized output."""
        pairs = []
        for before, after in (("y_before", "y_after"), ("before", "after")):
            if before in self.shapes and after in self.shapes:
                pairs.append(("output", before, after))
            for name in sorted(self.shapes):
                if name.startswith(before + "/"):
                    suffix = name[len(before) + 1:]
                    if f"{after}/{suffix}" in self.shapes:
                        pairs.append((f"output {suffix}", name, f"{after}/{suffix}"))
            if pairs:
                break
        return pairs

    @property
    def marginalized_attributions(self):
        """True when ``y_before``/``y_after`` hold attributions (``--op deeplift-shap``)."""
        inner = self.parameters.get("marginalize_op") if self.op == "product" else None
        inner = inner or self.parameters.get("inner_op")
        return inner == "deeplift-shap"

    def marginalize_values(self, before, after):
        """``(before, after, quantity)`` arrays to compare; attributions
        ``(N, ..., A, L)`` are summed over ``(A, L)`` per region."""
        b, a = self._read(before).astype(np.float64), self._read(after).astype(np.float64)
        if self.marginalized_attributions and b.ndim >= 3:
            return b.sum(axis=(-2, -1)), a.sum(axis=(-2, -1)), "total attribution"
        if b.ndim >= 3 and b.shape[-1] > MAX_PANELS:
            # a profile output (N, ..., L): one panel per track, not per position
            return b.mean(axis=-1), a.mean(axis=-1), f"prediction (mean over {b.shape[-1]} positions)"
        return b, a, "prediction"


# ---------------------------------------------------------------------------
# logos

def parse_window(window, length):
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


def plot_logo(attr, ax=None, start=0, alphabet=DNA, title=None, ylabel="attribution"):
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
        _, ax = plt.subplots(figsize=_logo_size(L))
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


def _logo_size(L):
    return (float(np.clip(1.5 + 0.12 * L, 6, 50)), 2.4)


def _safe(name):
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return s[:80] or "region"


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


def select_regions(res, regions=None, top=None):
    """Rows to plot: the given region ids, else the ``top`` regions by total
    ``|attribution|`` (default 10), best first."""
    if regions:
        return res.rows_for_ids(regions)
    top = DEFAULT_TOP if top is None else top
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ResultsError(f"--top: expected a positive integer, got {top!r}")
    scores = res.scores()
    return [int(i) for i in np.argsort(-scores, kind="stable")[:top]]


def plot_attributions(path, out_dir, regions=None, top=None, window=None, formats=FORMATS, dpi=100):
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
        name = _safe(res.ids[row])
        if name in used:
            name = f"{name}_{row}"
        used.add(name)
        fig, ax = plt.subplots(figsize=_logo_size(end - start))
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


def marginalize_figure(before, after, title="", quantity="prediction"):
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


def plot_marginalize(path, out_dir, formats=FORMATS, dpi=100):
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


# ---------------------------------------------------------------------------
# command line

def configure(p):
    """Arguments of ``kipoi-tanger plot`` (subcommands ``attributions`` and
    ``marginalize``) on the parser ``p``."""
    sub = p.add_subparsers(dest="plot_command", metavar="{attributions,marginalize}")
    sub.required = True
    a = sub.add_parser("attributions", help="sequence logos of deeplift-shap attributions",
                       description="One logo per region: letter heights = attributions "
                                   "(positive up, negative down), titled chr:start-end strand, id.")
    a.add_argument("h5", metavar="OUT.h5", help="kipoi-tanger deeplift-shap output")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--regions", nargs="+", metavar="ID", help="region ids (metadata/ranges/id)")
    g.add_argument("--top", type=int, metavar="K",
                   help=f"the K regions with the largest total |attribution| (default {DEFAULT_TOP})")
    a.add_argument("--window", metavar="START:END", help="positions to draw (0-based, END exclusive)")
    a.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    a.add_argument("--format", nargs="+", default=list(FORMATS), choices=FORMATS)
    a.add_argument("--dpi", type=int, default=100)
    a.set_defaults(plot_func=run_attributions)
    m = sub.add_parser("marginalize", help="before/after distributions of marginalize outputs",
                       description="Histograms of predictions before and after inserting the motif, "
                                   "per output (and product axis).")
    m.add_argument("h5", metavar="OUT.h5", help="kipoi-tanger marginalize output")
    m.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    m.add_argument("--format", nargs="+", default=list(FORMATS), choices=FORMATS)
    m.add_argument("--dpi", type=int, default=100)
    m.set_defaults(plot_func=run_marginalize)


def run(args):
    return args.plot_func(args)


def register_commands(register):
    """Add ``plot`` to the ``kipoi-tanger`` command registry
    (:func:`kipoi_tanger.cli.register_command`)."""
    register("plot", "attribution logos or marginalization before/after distributions (PNG, SVG)",
             configure, run)


def run_attributions(args):
    paths = plot_attributions(args.h5, args.output, regions=args.regions, top=args.top,
                              window=args.window, formats=args.format, dpi=args.dpi)
    for path in paths:
        print(path)
    return 0


def run_marginalize(args):
    for path in plot_marginalize(args.h5, args.output, formats=args.format, dpi=args.dpi):
        print(path)
    return 0


def standalone_main(register_commands, argv=None, prog="kipoi-tanger"):
    """``python -m kipoi_tanger.<module> COMMAND ...`` without the main CLI:
    a parser with only that module's commands. Bad input → one line on
    stderr, exit status 2."""
    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def register(name, help, configure, handler):
        p = sub.add_parser(name, help=help, description=help)
        configure(p)
        p.set_defaults(_handler=handler)

    register_commands(register)
    args = parser.parse_args(argv)
    try:
        return int(args._handler(args) or 0)
    except (ValueError, OSError, KeyError) as e:
        msg = " ".join(str(e).split()) if str(e) else type(e).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2


def main(argv=None):
    return standalone_main(register_commands, argv)


if __name__ == "__main__":
    sys.exit(main())
