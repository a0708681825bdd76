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
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from ..adapter.section import DNA

__all__ = ["Results", "ResultsError", "Placement", "MAX_PANELS"]

# marginalize outputs with more positions than this are summarised per track
MAX_PANELS = 24

# Dataloaders whose minus-strand handling is known, by a part of the recorded `dataloader`
# attribute: (name, what use_strand defaults to; None where the model's yaml may change it and
# the file does not record the effective value). Both name the argument use_strand, meaning
# "reverse-complement minus-strand regions".
_STRAND_LOADERS = (("interval_onehot", ("the shipped interval_onehot", True)),
                   ("IntervalOneHot", ("the shipped interval_onehot", True)),
                   ("SeqIntervalDl", ("kipoiseq's SeqIntervalDl", None)))


class ResultsError(ValueError):
    """A results file cannot be used as asked (one line, names the file)."""


def check_output_file(path: str, option: str = "-o/--output") -> str:
    """Refuse an output path that names a directory (``out/``, or an existing dir): one error line."""
    if not path or path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise ResultsError(f"{option}: {path!r} is a directory; expected a file name")
    return path


def write_atomically(output: str, write) -> str:
    """``write(tmp)`` into a temporary file next to ``output``, renamed to ``output`` when complete.

    Parent dirs are created; on any error the temporary file and the dirs created
    for it are removed, so a failed export leaves nothing behind.
    """
    from ..run.outputs import make_parents, remove_dirs
    check_output_file(output)
    created = make_parents([output])
    tmp = os.path.join(os.path.dirname(os.path.abspath(output)), f".{os.path.basename(output)}.partial")
    try:
        write(tmp)
        os.replace(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        remove_dirs(created)
        raise
    return output


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


class Placement(NamedTuple):
    """Input positions on the genome: position ``j`` is the base ``start + j``, or
    ``start + length - 1 - j`` when ``reversed`` (a reverse-complemented ``-`` region)."""
    chrom: str
    start: int
    length: int
    reversed: bool

    def base(self, j):
        """The genomic base (0-based) of input position ``j`` (an int or an array)."""
        return self.start + self.length - 1 - j if self.reversed else self.start + j

    def span(self, j0: int, j1: int) -> Tuple[int, int]:
        """The genomic ``[start, end)`` of input positions ``[j0, j1)``."""
        if self.reversed:
            return self.start + self.length - j1, self.start + self.length - j0
        return self.start + j0, self.start + j1


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

    # -- names of outputs and columns ---------------------------------------

    @property
    def output_names(self) -> list:
        """The model's output names in schema order (``output_names`` attribute; [] when not recorded)."""
        names = self.attrs.get("output_names")
        return [str(n) for n in names] if isinstance(names, (list, tuple)) else []

    def output_name(self, dataset: str) -> str:
        """The model output a dataset holds, by the schema's name: ``preds/0`` of a model whose
        outputs are ``[profile, counts]`` is ``profile``, ``y_after/counts`` is ``counts``,
        ``preds`` of a single named output its name. Unknown: the dataset's last part."""
        group, _, key = dataset.partition("/")
        names = self.output_names
        if not key:
            return names[0] if len(names) == 1 else group
        if key in names:
            return key
        if key.isdigit() and int(key) < len(names):
            return names[int(key)]
        return key

    def column_labels(self, dataset: str) -> Optional[list]:
        """The schema's ``column_labels`` of the output a dataset holds (Kipoi's
        ``targets.column_labels``, recorded in the ``column_labels`` attribute as
        ``{output name: [labels]}``), or None."""
        labels = self.attrs.get("column_labels")
        if not isinstance(labels, dict):
            return None
        found = labels.get(self.output_name(dataset))
        return [str(x) for x in found] if isinstance(found, (list, tuple)) and found else None

    def column_names(self, dataset: str, n: int) -> List[str]:
        """Names of the ``n`` columns of a dataset's first output axis: its column labels when
        there are ``n`` of them, else ``0 .. n-1``."""
        labels = self.column_labels(dataset)
        if labels is not None and len(labels) == n:
            return list(labels)
        return [str(j) for j in range(n)]

    @property
    def explained(self) -> Optional[str]:
        """The explained output and target of an attribution run (``counts``, ``probs: task1``), or None."""
        if "explained_output" not in self.attrs and "target" not in self.attrs:
            return None
        out = self.attrs.get("explained_output")
        names = self.output_names
        if out in (None, ""):
            name = names[0] if len(names) == 1 else "the model's output"
        else:
            out = str(out)
            name = names[int(out)] if out.isdigit() and int(out) < len(names) and out not in names else out
        target = self.attrs.get("target", self.parameters.get("target"))
        label = self.attrs.get("target_label")
        if label not in (None, ""):
            return f"{name}: {label}"
        labels = (self.attrs.get("column_labels") or {}).get(name) if isinstance(
            self.attrs.get("column_labels"), dict) else None
        if isinstance(target, int) and labels and 0 <= target < len(labels):
            return f"{name}: {labels[target]}"
        return name if not target else f"{name}, target {target}"

    # -- strand -------------------------------------------------------------

    @property
    def has_minus_strand(self) -> bool:
        return self.ranges is not None and "strand" in self.ranges and \
            any(str(s) == "-" for s in self.ranges["strand"])

    def minus_strand_rule(self) -> Tuple[Optional[bool], str]:
        """Whether the dataloader reverse-complemented minus-strand regions: ``(True | False | None,
        why)``, from the recorded dataloader (its ``dataloader`` and ``dataloader_classes``
        attributes: a subclass of a known loader counts as that loader) and its arguments
        (``dataloader_args`` over ``dataloader_defaults``); see :func:`reverse_minus`."""
        dl = str(self.attrs.get("dataloader") or "")
        classes = self.attrs.get("dataloader_classes")
        if isinstance(classes, (list, tuple)):       # a model's subclass of a known loader reads as it does
            dl = " ".join([dl] + [str(c) for c in classes])
        args = {}
        for key in ("dataloader_defaults", "dataloader_args"):
            if isinstance(self.attrs.get(key), dict):
                args.update(self.attrs[key])
        known = next((v for k, v in _STRAND_LOADERS if k in dl), None)
        if known is None:
            return None, f"dataloader {dl or '(not recorded)'}: its strand handling is not known"
        name, default = known
        if "use_strand" in args:
            value = _truthy(args["use_strand"])
            return value, f"{name} with use_strand={value}"
        if default is None:
            return None, (f"{name}: use_strand is not recorded (its default is False, but the model's "
                          "dataloader defaults may change it)")
        return default, f"{name} (use_strand defaults to {default})"

    def reverse_minus(self, strand: Optional[str] = None) -> bool:
        """True when a ``-`` region's input is the reverse complement of its genomic span.

        Parameters
        ----------
        strand : {None, 'rc', 'forward'}
            What the user says (``--strand``). Without it the rule comes from the
            file: the dataloader's recorded ``use_strand`` argument, else the
            default of a known loader (the shipped ``interval_onehot``: True).
            When neither says and a ``-`` region exists, it is an error asking
            for ``--strand``; a ``--strand`` that contradicts the file is one too.
        """
        if strand not in (None, "rc", "forward"):
            raise ResultsError(f"--strand: expected rc or forward, got {strand!r}")
        rule, why = self.minus_strand_rule()
        if strand is not None:
            want = strand == "rc"
            if rule is not None and rule != want:
                raise ResultsError(f"--strand {strand}: {self.path} was read by {why}, which "
                                   f"{'reverse-complements' if rule else 'does not reverse-complement'} "
                                   "minus-strand regions; drop --strand")
            return want
        if rule is None:
            if not self.has_minus_strand:
                return True
            raise ResultsError(f"{self.path}: has minus-strand regions and {why}; pass --strand rc if "
                               "the dataloader reverse-complemented them, --strand forward if not")
        return rule

    def placement(self, row: int, length: int, strand: Optional[str] = None) -> Optional["Placement"]:
        """Where the ``length`` input positions of region ``row`` lie on the genome, or None.

        The input covers the region (``length == end - start``) or its central
        ``length`` bases; a ``-`` region's input is reversed when the dataloader
        reverse-complemented it (:meth:`reverse_minus`; ``strand`` as there). None
        without metadata, for an input longer than its region, and for a ``-``
        region whose strand handling the file does not tell (and ``strand`` is None).
        """
        if self.ranges is None:
            return None
        r = self.ranges
        s, e = int(r["start"][row]), int(r["end"][row])
        if not 0 < length <= e - s:
            return None
        off = (e - s - length) // 2
        rev = False
        if "strand" in r and str(r["strand"][row]) == "-":
            rev = self.reverse_minus(strand) if strand is not None else self.minus_strand_rule()[0]
            if rev is None:
                return None
        return Placement(str(r["chr"][row]), e - off - length if rev else s + off, int(length), bool(rev))

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
        """``[(label, before name, after name)]`` for every output compared before/after.

        marginalize (``y_before``/``y_after``, same shapes), ablate (``y_after``
        ``(N, n_shuffles, ...)``) and space (``y_afters`` ``(N, n_spacings, ...)``);
        labels are the outputs' names (:meth:`output_name`) in the model's order,
        ``output`` for a single unnamed output.
        """
        pairs = []
        for before, after in (("y_before", "y_after"), ("y_before", "y_afters"), ("before", "after")):
            if before in self.shapes and after in self.shapes:
                pairs.append((self._pair_label(before), before, after))
            for name in self.output_datasets(before):
                suffix = name[len(before) + 1:]
                if f"{after}/{suffix}" in self.shapes:
                    pairs.append((self._pair_label(name), name, f"{after}/{suffix}"))
            if pairs:
                break
        return pairs

    def output_datasets(self, group: str) -> List[str]:
        """The datasets ``group/<key>`` in the model's output order (``output_names``), others after by name."""
        names = [n for n in self.shapes if n.startswith(group + "/") and "/" not in n[len(group) + 1:]]
        order = self.output_names

        def key(n):
            k = n[len(group) + 1:]
            if k in order:
                return (0, order.index(k), "")
            if k.isdigit():
                return (0 if int(k) < len(order) else 1, int(k), "")
            return (2, 0, k)
        return sorted(names, key=key)

    def _pair_label(self, dataset):
        if "/" not in dataset:
            names = self.output_names
            return names[0] if len(names) == 1 and names[0] != "preds" else "output"
        name = self.output_name(dataset)
        return name if self.output_names else f"output {name}"

    def effect_kind(self, before: str, after: str) -> str:
        """``marginalize`` (same shapes), ``ablate`` (``y_after`` with a shuffle axis) or
        ``space`` (``y_afters`` with a spacing axis)."""
        b, a = self.shapes[before], self.shapes[after]
        if len(a) == len(b) + 1 and a[:1] == b[:1] and a[2:] == b[1:]:
            return "space" if after.split("/")[0] == "y_afters" else "ablate"
        return "marginalize"

    def spacing_labels(self, n: int) -> List[str]:
        """Labels of a space file's ``n`` spacings (``10``, or ``5,10`` for three motifs)."""
        table = self.parameters.get("spacing")
        if isinstance(table, (list, tuple)) and len(table) == n:
            return [",".join(str(v) for v in (row if isinstance(row, (list, tuple)) else [row])) for row in table]
        return [str(j) for j in range(n)]

    @property
    def marginalized_attributions(self):
        """True when ``y_before``/``y_after`` hold attributions (``--op deeplift-shap``)."""
        inner = self.parameters.get("marginalize_op") if self.op == "product" else None
        inner = inner or self.parameters.get("inner_op")
        return inner == "deeplift-shap"

    def marginalize_values(self, before, after):
        """``(before, after, quantity)`` arrays to compare.

        Attributions ``(N, ..., A, L)`` are summed over ``(A, L)`` per region; a
        profile output (more than :data:`MAX_PANELS` positions) is averaged over
        its positions. ablate's ``y_after`` is averaged over its shuffles; space's
        ``y_afters`` keeps its spacing axis (``after`` is ``(N, n_spacings, ...)``).
        """
        kind = self.effect_kind(before, after)
        b, a = self._read(before).astype(np.float64), self._read(after).astype(np.float64)
        note = ""
        if kind == "ablate":
            note = f", after: mean over {a.shape[1]} shuffles"
            a = a.mean(axis=1)
        if self.marginalized_attributions and b.ndim >= 3:
            return b.sum(axis=(-2, -1)), a.sum(axis=(-2, -1)), "total attribution" + note
        if b.ndim >= 3 and b.shape[-1] > MAX_PANELS:
            # a profile output (N, ..., L): one panel per track, not per position
            return (b.mean(axis=-1), a.mean(axis=-1),
                    f"prediction (mean over {b.shape[-1]} positions){note}")
        return b, a, "prediction" + note
