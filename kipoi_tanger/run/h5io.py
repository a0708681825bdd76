"""HDF5 and TSV output in Kipoi's layout, with run attributes.

Files are readable by ``kipoi.readers.HDF5Reader``: one dataset per leaf, axis 0
= regions, nested names joined with ``/``:

* ``preds`` (a tensor output), ``preds/<i>`` (tuple/list outputs) or
  ``preds/<name>`` (dict outputs), as ``kipoi predict`` writes them;
* ``metadata/ranges/{chr,start,end,id,strand}`` (``--keep_metadata``) and
  ``inputs`` (``--keep_inputs``), also as Kipoi writes them;
* ``attributions`` ``(N, A, L)``, ``references`` ``(N, K, A, L)``,
  ``convergence_deltas`` ``(N,)`` (deeplift-shap);
* ``y_before``/``y_after`` (marginalize); product outputs keep the product
  axes right after N.

Root attributes describe the run (``kipoi_tanger_version``, ``op``, ``model``,
``source``, ``parameters`` as JSON (every op parameter that affects the
results), ``layout``, ``alphabet``, ``sequence_input`` and ``sequence_dataset``
(its name in the schema and the dataset holding it, e.g. ``inputs/0``), ...);
read them with :func:`read_attrs`.

Writing is deterministic: datasets are created in sorted order with a fixed
chunk shape and without timestamps, then filled dataset by dataset in
chunk-aligned blocks. The same rows therefore give the same bytes whether they
come from one run, a resumed run or merged shards.
"""
import json
from typing import Dict, Iterable, Iterator, Optional, Tuple

import numpy as np

JSON_ATTRS = ("parameters", "alphabet", "dataloader_args", "output_names", "spec", "shard_range", "reduce",
              "column_labels", "dataloader_defaults", "model_alphabet", "conversion_check", "dataloader_classes")
CHUNK_BYTES = 1 << 20
BLOCK_BYTES = 32 << 20
MAX_CHUNK_ROWS = 8192


def _is_str(dtype):
    return dtype.kind in ("U", "S", "O")


def flatten(tree, prefix: str = "") -> Dict[str, np.ndarray]:
    """Nested dicts/lists of arrays → ``{'a/b/0': array}`` (Kipoi's naming)."""
    out = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}{k}/"))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}{i}/"))
    else:
        if hasattr(tree, "to_dict") and type(tree).__name__ == "GenomicRanges":
            return flatten(tree.to_dict(), prefix)
        arr = np.asarray(tree)
        if arr.dtype == object:
            arr = arr.astype(str)
        out[prefix[:-1]] = arr
    return out


def unflatten(flat: Dict[str, np.ndarray]) -> dict:
    """Inverse of :func:`flatten` for dict nesting (list levels stay dicts of '0', '1'...)."""
    out = {}
    for key, v in flat.items():
        parts = key.split("/")
        d = out
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v
    return out


def row_spec(arr) -> Tuple[str, Tuple[int, ...]]:
    """``(dtype string, row shape)`` of a batch array; strings become ``'str'``."""
    arr = np.asarray(arr)
    dt = "str" if _is_str(arr.dtype) else arr.dtype.str
    return dt, tuple(int(s) for s in arr.shape[1:])


def _row_bytes(dtype, row_shape):
    itemsize = 16 if dtype == "str" else np.dtype(dtype).itemsize
    return max(1, itemsize * int(np.prod(row_shape, dtype=np.int64)))


def _pow2_floor(x):
    return 1 << (max(1, int(x)).bit_length() - 1)


def block_rows(specs: dict) -> int:
    """Rows written per block: a power of two, at most 8192, ~32 MiB over all datasets."""
    total = sum(_row_bytes(dt, row) for dt, row in specs.values()) or 1
    return min(8192, _pow2_floor(BLOCK_BYTES // total))


def chunk_rows(dtype: str, row_shape: tuple, n_rows: int, block: int) -> int:
    """Rows per HDF5 chunk: a power of two of about 1 MiB that divides ``block``
    (so block writes are chunk-aligned), at most ``n_rows``."""
    c = min(block, MAX_CHUNK_ROWS, _pow2_floor(CHUNK_BYTES // _row_bytes(dtype, row_shape)))
    return int(max(1, min(c, n_rows)))


def encode_attr(key: str, value):
    """An attribute value as stored: JSON for the keys in :data:`JSON_ATTRS` and for containers."""
    if key in JSON_ATTRS or isinstance(value, (dict, list, tuple)) or value is None:
        return json.dumps(value, sort_keys=True, default=str)
    return value


def decode_attr(key: str, value):
    """Inverse of :func:`encode_attr` (bytes and numpy scalars become Python values)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if key in JSON_ATTRS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def write_h5(path: str, specs: dict, n_rows: int, attrs: dict, blocks: Iterable[dict],
             compression: Optional[str] = "gzip") -> None:
    """Write a complete HDF5 file in one pass.

    Parameters
    ----------
    path : str
        Output file (created).
    specs : dict
        ``{dataset name: (dtype string or 'str', row shape)}``.
    n_rows : int
        Rows of every dataset.
    attrs : dict
        Root attributes (JSON-encoded where needed, see :data:`JSON_ATTRS`).
    blocks : iterable of dict
        ``{name: rows}`` for every dataset, consecutive row ranges of any
        size. They are re-cut into fixed blocks of :func:`block_rows` rows
        (a multiple of every chunk) and each block is written dataset by
        dataset in sorted order, so the file does not depend on how the rows
        were cut (one run, a resumed run or merged shards give the same bytes).
        Memory: one block (~32 MiB) plus one input block.
    """
    import h5py
    str_dt = h5py.string_dtype("utf-8")
    names = sorted(specs)
    G = block_rows(specs)
    with h5py.File(path, "w") as f:
        for k in sorted(attrs):
            f.attrs[k] = encode_attr(k, attrs[k])
        dsets = {}
        for name in names:
            dt, row = specs[name]
            dtype = str_dt if dt == "str" else np.dtype(dt)
            dsets[name] = f.create_dataset(name, shape=(n_rows,) + tuple(row), dtype=dtype,
                                           chunks=(chunk_rows(dt, row, max(n_rows, 1), G),) + tuple(row),
                                           compression=compression, track_times=False)
        pos, buf, nbuf = 0, [], 0

        def flush(data, n):
            nonlocal pos
            if pos + n > n_rows:
                raise ValueError(f"{names[0]}: more rows than the {n_rows} expected")
            for name in names:
                block = data[name][:n]
                if specs[name][0] == "str":
                    block = np.asarray(block).astype(str).astype(object)
                dsets[name][pos:pos + n] = block
            pos += n

        for block in blocks:
            missing = [n for n in names if n not in block]
            if missing:
                raise ValueError(f"{missing[0]}: missing from a block of rows")
            lens = {len(block[n]) for n in names}
            if len(lens) != 1:
                raise ValueError("every dataset must get the same number of rows per block")
            for name in names:
                if tuple(np.shape(block[name])[1:]) != tuple(specs[name][1]):
                    raise ValueError(f"{name}: rows shaped {tuple(np.shape(block[name])[1:])}, expected "
                                     f"{tuple(specs[name][1])} (every batch must give the same per-region shape)")
            buf.append(block)
            nbuf += lens.pop()
            while nbuf >= G:
                data = {n: (np.concatenate([b[n] for b in buf]) if len(buf) > 1 else np.asarray(buf[0][n]))
                        for n in names}
                flush(data, G)
                rest = nbuf - G
                buf = [{n: data[n][G:] for n in names}] if rest else []
                nbuf = rest
        if nbuf:
            data = {n: (np.concatenate([b[n] for b in buf]) if len(buf) > 1 else np.asarray(buf[0][n]))
                    for n in names}
            flush(data, nbuf)
        if pos != n_rows:
            raise ValueError(f"got {pos} rows, expected {n_rows}")


def read_attrs(path: str) -> dict:
    """Root attributes of a kipoi_tanger HDF5 file, JSON fields decoded."""
    import h5py
    with h5py.File(path, "r") as f:
        return {k: decode_attr(k, v) for k, v in f.attrs.items()}


def dataset_specs(path: str) -> Tuple[dict, int]:
    """``{name: (dtype string, row shape)}`` and the row count of an HDF5 file."""
    import h5py
    specs, n = {}, None

    def visit(name, obj):
        nonlocal n
        if isinstance(obj, h5py.Dataset):
            dt = "str" if h5py.check_string_dtype(obj.dtype) is not None else obj.dtype.str
            specs[name] = (dt, tuple(obj.shape[1:]))
            n = obj.shape[0] if n is None else n

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return specs, (n or 0)


def iter_blocks(path: str, step: Optional[int] = None) -> Iterator[Dict[str, np.ndarray]]:
    """Yield ``{name: rows}`` for all datasets of a file, ``step`` rows at a time."""
    import h5py
    specs, n = dataset_specs(path)
    step = step or block_rows(specs)
    with h5py.File(path, "r") as f:
        str_names = {k for k in specs if specs[k][0] == "str"}
        for s in range(0, n, step):
            yield {k: (np.asarray(f[k].asstr()[s:s + step], dtype=str) if k in str_names else f[k][s:s + step])
                   for k in specs}


def load(path: str, names: Optional[Iterable[str]] = None) -> Dict[str, np.ndarray]:
    """Load datasets into memory as ``{name: ndarray}`` (strings as ``str``)."""
    import h5py
    out = {}
    specs, _ = dataset_specs(path)
    with h5py.File(path, "r") as f:
        for name in specs:
            if names is not None and name not in names:
                continue
            d = f[name]
            out[name] = np.asarray(d.asstr()[:], dtype=str) if h5py.check_string_dtype(d.dtype) else d[:]
    return out


def load_sequences(path: str):
    """The sequence input of a file (``--keep_inputs``) as canonical ``(N, A, L)`` one-hot.

    Reads the dataset named by the ``sequence_dataset`` attribute (e.g.
    ``inputs/0`` for list inputs) and maps it with the ``layout`` and
    ``alphabet`` attributes. Files written before ``sequence_dataset`` was
    recorded fall back to ``inputs`` or ``inputs/<sequence_input>``.
    """
    from ..adapter.layout import Layout
    attrs = read_attrs(path)
    layout = attrs.get("layout")
    if not layout:
        raise ValueError(f"{path}: no layout attribute (not written by kipoi-tanger, or the layout was unknown)")
    specs, _ = dataset_specs(path)
    name = attrs.get("sequence_dataset") or None
    if name is not None and name not in specs:
        raise ValueError(f"{path}: the sequence_dataset attribute names {name!r}, which the file does not hold")
    if name is None and "sequence_dataset" not in attrs:
        seq = attrs.get("sequence_input")
        candidates = ["inputs"] + ([f"inputs/{seq}"] if seq else [])
        name = next((c for c in candidates if c in specs), None)
        if name is None and seq:
            name = next((n for n in specs if n.startswith("inputs/") and n.endswith(f"/{seq}")), None)
    if name is None:
        raise ValueError(f"{path}: no dataset holds the sequence input; run with --keep_inputs")
    x = load(path, [name])[name]
    alphabet = list(attrs.get("alphabet") or "ACGT")
    # `inputs` are in the model's one-hot order (`model_alphabet`, e.g. AGCT), the result in `alphabet`'s
    lay = Layout.parse(layout)
    if attrs.get("model_alphabet"):
        lay = lay.with_alphabet(attrs["model_alphabet"])
    return lay.from_model(x, len(alphabet))


def table_columns(flat: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Flat batch arrays → 1-D columns as Kipoi's ``flatten_batch`` names them: an
    ``(N,)`` array keeps its name, an ``(N, k, ...)`` array becomes ``name/0`` ...
    ``name/k-1`` (recursively, ``name/i/j`` for 3-D)."""
    cols = {}

    def add(name, arr):
        if arr.ndim <= 1:
            cols[name] = arr
        else:
            for i in range(arr.shape[1]):
                add(f"{name}/{i}", arr[:, i])

    for name, arr in flat.items():
        add(name, np.asarray(arr))
    return cols


_RANGES = ("chr", "start", "end", "id", "strand")


def _natural(name: str):
    """Sort key comparing the digit runs of a name as numbers (``preds/2`` before ``preds/10``)."""
    import re
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p]


def tsv_names(names: Iterable[str], output_names: Iterable[str] = (), column_labels: Optional[dict] = None
              ) -> Dict[str, Tuple[str, Optional[list]]]:
    """The TSV's datasets in column order, each with its column name prefix and the labels of its first axis.

    Order: the regions' ``metadata/ranges`` (chr, start, end, id, strand), other
    metadata, the outputs (``preds...``) in the model's output order, then the
    rest; digits compare as numbers. ``preds/<i>`` of a list output is named
    ``preds/<output name>``; the schema's ``column_labels`` (``{output name:
    [labels]}``) name the columns of an output's first axis (``preds/CTCF``
    instead of ``preds/0``).
    """
    names, outs = list(names), [str(n) for n in output_names]
    labels = column_labels or {}

    def output(name):
        key = name.partition("/")[2]
        if not key:
            return outs[0] if len(outs) == 1 else None
        if key in outs:
            return key
        return outs[int(key)] if key.isdigit() and int(key) < len(outs) else None

    def order(name):
        if name.startswith("metadata/ranges/") and name[16:] in _RANGES:
            return (0, _RANGES.index(name[16:]), [])
        if name.startswith("metadata/"):
            return (1, 0, _natural(name))
        if name == "preds" or name.startswith("preds/"):
            out = output(name)
            return (2, outs.index(out) if out in outs else len(outs), _natural(name))
        return (3, 0, _natural(name))

    result = {}
    for name in sorted(names, key=order):
        out = output(name) if name == "preds" or name.startswith("preds/") else None
        shown = name if name == "preds" or out is None else f"preds/{out}"
        result[name] = (shown, list(labels[out]) if out in labels else None)
    return result


def write_tsv(path: str, batches: Iterable[Dict[str, np.ndarray]], output_names: Iterable[str] = (),
              column_labels: Optional[dict] = None) -> None:
    """Write flat batches (``{name: array}``) as a table with a header: flattened
    ``a/b/0`` columns as Kipoi's ``TsvBatchWriter`` names them, in the model's
    order instead of sorted as text (:func:`tsv_names`: regions first, outputs
    in the model's order, ``preds/2`` before ``preds/10``), outputs named by the
    schema (``output_names``, ``column_labels`` as recorded in the HDF5 file)."""
    import pandas as pd
    first, plan = True, None
    for flat in batches:
        if plan is None:
            plan = tsv_names(flat, output_names, column_labels)
        cols = {}
        for name, (shown, labels) in plan.items():
            arr = np.asarray(flat[name])
            if labels is not None and arr.ndim >= 2 and arr.shape[1] == len(labels):
                for j, label in enumerate(labels):
                    cols.update(table_columns({f"{shown}/{label}": arr[:, j]}))
            else:
                cols.update(table_columns({shown: arr}))
        pd.DataFrame(cols).to_csv(path, sep="\t", index=False, header=first, mode="w" if first else "a")
        first = False
    if first:
        open(path, "w").close()
