"""``space`` over a Kipoi model: :func:`kipoi_tanger.space.space` with an inner op
(predict or deeplift-shap), written as ``y_before`` ``(N, ...)`` and ``y_afters``
``(N, n_spacings, ...)`` (``y_before/<name>`` for several outputs).

The spacing table has one row per experiment and one column per gap between
consecutive motifs. On the command line each value of ``--spacing`` is a row
(``5`` for two motifs, ``5,10`` for three), or one ``.tsv``/``.npy`` file holds
the table; the table itself is recorded in the ``parameters`` attribute.
"""
import os

import numpy as np

from ..adapter.errors import one_line
from .base import OpError, Param, Perturbation, name_outputs

TABLE_SUFFIXES = (".tsv", ".txt", ".npy")


def _gaps(n_motifs):
    return f"{n_motifs - 1} gap{'s' if n_motifs > 2 else ''} between the {n_motifs} motifs"


def _is_file_spec(value):
    return isinstance(value, str) and (value.lower().endswith(TABLE_SUFFIXES) or os.path.isfile(value))


def _load_table(path, n_motifs):
    if not os.path.isfile(path):
        raise OpError(f"--spacing: {path}: no such file")
    npy = path.lower().endswith(".npy")
    try:
        if npy:
            arr = np.load(path, allow_pickle=False)
        else:
            arr = np.loadtxt(path, comments="#", ndmin=2, dtype=np.float64)
    except Exception as e:
        kind = "a readable .npy array" if npy else "a table of integers (tab-separated, one row per line)"
        raise OpError(f"--spacing: {path}: not {kind} ({one_line(e)})") from None
    return arr


def _parse_rows(values):
    rows = []
    for v in values:
        if isinstance(v, str):
            try:
                v = [int(x) for x in v.split(",")]
            except ValueError:
                raise OpError(f"--spacing: {v!r} is not a row of integer gaps (comma-separated, e.g. 5 or 5,10) "
                              "nor a .tsv/.npy file") from None
        rows.append(v)
    try:
        return np.asarray(rows)
    except (TypeError, ValueError):
        return np.asarray(rows, dtype=object)


def spacing_table(spacing, n_motifs: int) -> np.ndarray:
    """``--spacing`` (CLI strings, a file path, ints, rows, an array) → an int64 ``(S, n_motifs - 1)`` table.

    One error line naming ``--spacing`` (and the file) otherwise.
    """
    label = "--spacing"
    if spacing is None or (isinstance(spacing, (list, tuple)) and len(spacing) == 0):
        raise OpError(f"--spacing: give the {_gaps(n_motifs)}, e.g. --spacing 0 5 10 (one row per value) or a "
                      ".tsv/.npy table")
    if isinstance(spacing, (list, tuple)) and len(spacing) == 1 and _is_file_spec(spacing[0]):
        spacing = spacing[0]
    if _is_file_spec(spacing):
        arr, label = _load_table(spacing, n_motifs), f"--spacing: {spacing}"
    elif isinstance(spacing, str):
        arr = _parse_rows([spacing])
    elif isinstance(spacing, (list, tuple)):
        arr = _parse_rows(spacing)
    else:
        if hasattr(spacing, "detach"):
            spacing = spacing.detach().cpu().numpy()
        arr = np.asarray(spacing)
    if arr.ndim == 1 and n_motifs == 2 and arr.dtype != object:
        arr = arr[:, None]                     # two motifs: one gap per row
    if arr.dtype == object or arr.ndim != 2 or arr.shape[1] != n_motifs - 1:
        got = ("rows of different lengths" if arr.dtype == object else
               f"{arr.shape[1]} (a table of shape {arr.shape})" if arr.ndim == 2 else f"an array of shape {arr.shape}")
        raise OpError(f"{label}: expected {_gaps(n_motifs)} per row, got {got}")
    if arr.shape[0] == 0:
        raise OpError(f"{label}: expected at least one row of spacings")
    if not (np.issubdtype(arr.dtype, np.integer) or (np.issubdtype(arr.dtype, np.floating) and
                                                     np.isfinite(arr).all() and np.array_equal(arr, np.round(arr)))):
        bad = next((x for x in arr.ravel() if not (isinstance(x, (int, float, np.number)) and
                                                   np.isfinite(x) and float(x).is_integer())), arr.ravel()[0])
        raise OpError(f"{label}: expected integer gaps, got {bad}")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        r = int(np.argwhere(arr < 0)[0][0])
        raise OpError(f"{label}: row {r} has a negative gap ({', '.join(map(str, arr[r]))}); "
                      "expected non-negative integers")
    return arr


class Space(Perturbation):
    """The inner op's results before and after placing several motifs at each row of spacings."""

    name = "space"
    help = "predictions/attributions before and after placing motifs at a set of spacings"
    params = (
        Param("motifs", None, "motifs to place in order, e.g. GATAAG CACGTG (N keeps the base)", kind="list",
              required=True, metavar="MOTIF"),
        Param("spacing", None, "gaps between consecutive motifs, one row per value (5, or 5,10 for three motifs), "
              "or a .tsv/.npy table of shape (n_spacings, n_motifs - 1)", kind="list", required=True,
              metavar="GAPS|FILE"),
        Param("start", None, "position of the first motif (default: each arrangement centred)", kind="int",
              minimum=0, expect="a non-negative integer position"),
    )
    inner_help = "what to compute before and after placing the motifs (default predict)"

    @property
    def n_variants(self) -> int:
        return len(self.values["spacing"]) if isinstance(self.values["spacing"], list) else 1

    @property
    def groupable(self) -> bool:
        return False    # space groups its arrangements itself: grouped batches would change forward batches

    def check(self, target) -> None:
        spec = target.spec
        motifs = self.values["motifs"]
        if isinstance(motifs, str):
            motifs = [motifs]
        if not isinstance(motifs, (list, tuple)) or len(motifs) < 2:
            raise OpError("--motifs: space places two motifs or more, e.g. --motifs GATAAG CACGTG "
                          "(one motif: use marginalize)")
        letters = "".join(spec.alphabet)
        for m in motifs:
            if not isinstance(m, str) or not m:
                raise OpError(f"--motifs: expected motifs as strings over {letters} (N keeps the base), got {m!r}")
            bad = sorted({c for c in m if c not in spec.alphabet and c != "N"})
            if bad:
                raise OpError(f"--motifs: {m!r} has characters {''.join(bad)!r} outside the alphabet {letters} "
                              "(N keeps the original base)")
        self.values["motifs"] = list(motifs)
        table = spacing_table(self.values["spacing"], len(motifs))
        self.values["spacing"] = table.tolist()
        super().check(target)
        start, L = self.values["start"], spec.sequence_length
        if L is None:
            return
        width = sum(len(m) for m in motifs)
        room = L - (start or 0)
        spans = width + table.sum(axis=1)
        if width > room:
            raise OpError(f"--start: {start} leaves {room} positions of sequences of length {L}, fewer than the "
                          f"{width} of the motifs; expected at most {L - width}")
        if (spans > room).any():
            r = int(np.argmax(spans > room))
            where = f"from --start {start}" if start is not None else "centred"
            raise OpError(f"--spacing: row {r} (gaps {', '.join(map(str, table[r]))}) places the motifs over "
                          f"{int(spans[r])} positions, but sequences of length {L} have {room} ({where}); "
                          f"expected gaps summing to at most {room - width}")

    def function(self):
        from ..space import space
        func, kwargs = self.inner.function()
        return space, dict(motifs=self.values["motifs"], spacing=np.asarray(self.values["spacing"], dtype=np.int64),
                           start=self.values["start"], alphabet=list(self._ctx.target.spec.alphabet), func=func,
                           additional_func_kwargs=kwargs)

    def name_outputs(self, y):
        names = self.inner.result_names()
        out = name_outputs("y_before", y[0], names)
        out.update(name_outputs("y_afters", y[1], names))
        return out
