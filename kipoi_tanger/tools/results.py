"""Reading kipoi-tanger result files: :class:`Results`, a read-only view of one HDF5 file.

Used by the tools that look at results (plots, the report, exports). It reads
the files the run loop writes (Kipoi's layout, one dataset per leaf, axis 0 =
regions) and plain ``kipoi predict`` files:

* ``attributions`` ``(N, A, L)``, projected (``X * hypothetical``) unless the
  run used ``--hypothetical`` (root/parameter attribute ``hypothetical``); an
  optional separate ``hypothetical`` ``(N, A, L)`` dataset;
* ``inputs`` (``--keep_inputs``) in the model's layout and one-hot order,
  turned into canonical one-hot ``(N, A, L)`` with the ``layout`` and
  ``model_alphabet`` attributes (or, for plain Kipoi files, by matching the
  attributions' shape);

Channel order: every ``(N, A, L)`` dataset (attributions, references,
hypothetical attributions) follows the file's ``alphabet`` attribute, A, C, G,
T for DNA whatever the model's own one-hot order (``model_alphabet``, e.g.
DeepSEA/beluga's AGCT); :meth:`Results.sequences` returns the inputs in that
same order, so logos, the report and the modisco export line up.
* ``metadata/ranges/{chr,start,end,id,strand}`` for titles and region ids;
* ``y_before``/``y_after`` (or groups of them, one dataset per output) for
  marginalization, product axes right after the region axis.
"""
import json
import os

import numpy as np

from ..adapter.section import DNA

__all__ = ["Results", "ResultsError", "MAX_PANELS"]

# marginalize outputs with more positions than this are summarised per track
MAX_PANELS = 24


class ResultsError(ValueError):
    """A results file cannot be used as asked (one line, names the file)."""


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
        model_alphabet = self.attrs.get("model_alphabet")
        self.model_alphabet = tuple(model_alphabet) if isinstance(model_alphabet, (list, tuple, str)) and \
            sorted(model_alphabet) == sorted(self.alphabet) else self.alphabet
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
            from ..adapter.layout import Layout
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
            from ..adapter.layout import Layout
            try:
                lay = Layout.parse(layout)
                # the inputs follow the model's one-hot order, the file's datasets the alphabet's
                lay = Layout(lay.axes, order=[self.model_alphabet.index(c) for c in self.alphabet])
                out = lay.from_model(x, A)
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
