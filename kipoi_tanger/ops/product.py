"""``product`` over a Kipoi model: :func:`kipoi_tanger.product.apply_product` (or
``apply_pairwise``) of an inner op over every region crossed with extra model
inputs from ``.npy`` files; the product axes follow the region axis."""
import hashlib
import os

import numpy as np

from ..adapter.errors import one_line
from .base import Op, OpError, Param


def load_npy(spec):
    """``path``, ``NAME=path`` or an array → ``(name or None, array)``; one error line per bad file."""
    name, path = None, spec
    if isinstance(spec, str) and "=" in spec and not os.path.exists(spec):
        name, path = spec.split("=", 1)
    if isinstance(path, np.ndarray):
        return name, path
    if not os.path.exists(path):
        raise OpError(f"--args: {path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise OpError(f"--args: {path}: not a readable .npy array ({one_line(e)})") from None
    if arr.ndim == 0 or len(arr) == 0:
        raise OpError(f"--args: {path}: needs at least one row (shape {arr.shape})")
    if arr.dtype.kind not in "biuf":
        raise OpError(f"--args: {path}: holds {arr.dtype} values; expected numbers (bool, integer or float)")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise OpError(f"--args: {path}: holds {int((~np.isfinite(arr)).sum())} NaN/inf value(s), the first at "
                      f"index {tuple(int(i) for i in bad)}; the model's outputs for them would be meaningless")
    return name, arr


def _label(spec, i):
    """How an ``--args`` entry is named in error lines: its file, or ``<array i>``."""
    if isinstance(spec, str):
        return spec.split("=", 1)[1] if "=" in spec and not os.path.exists(spec) else spec
    return f"<array {i}>"


def _check_rows(spec, key, arr, label):
    """Refuse an ``--args`` array whose rows do not have the schema shape of the input they replace."""
    from ..adapter.layout import format_shape
    from ..adapter.schema_check import shape_fits
    if key not in spec.input_keys:
        return          # a forward() keyword the schema does not describe
    i = spec.input_keys.index(key)
    expected = spec.input_shapes[i]
    row = tuple(int(d) for d in arr.shape[1:])
    if expected is None or shape_fits(row, expected):
        return
    example = ", ".join("n" if d is None else str(d) for d in expected)
    fix = " (a 1-D file holds scalars: save it as a.reshape(-1, 1))" if arr.ndim == 1 and \
        tuple(expected) in ((1,), (None,)) else ""
    raise OpError(f"--args: {label}: rows shaped {format_shape(row)} (array {format_shape(arr.shape)}), but they "
                  f"replace input {spec.input_names[i]!r}, shaped {format_shape(expected)} per example: expected an "
                  f"array of shape (k, {example}){fix}")


class Product(Op):
    """An inner op on every region crossed with extra inputs (tangermeme's apply_product/apply_pairwise).

    Each ``--args`` file replaces one model input that is not the sequence
    (``NAME=file.npy`` names it; else they fill the declared ``extra_inputs``,
    or the other schema inputs, in order). Its rows have the shape of that
    input for one example.
    """

    name = "product"
    help = "an op on every sequence crossed with extra inputs from .npy files"
    params = (
        Param("args", None, "extra model inputs as .npy files (or NAME=file.npy), crossed with the sequences",
              kind="list", required=True, metavar="NPY", record=False),
        Param("pairwise", False, "pair the --args files row by row (apply_pairwise)", kind="flag"),
    )
    inner_ops = ("predict", "deeplift-shap", "marginalize")
    default_inner = "predict"
    inner_help = "op run on every (sequence, args) combination (default predict)"
    identity_only = ("keyword_args",)

    @property
    def view(self) -> str:
        return self.inner.view

    @property
    def writes_tables(self) -> bool:
        return self.inner.writes_tables

    def chunk(self) -> int:
        return self.inner.chunk()

    def check(self, target) -> None:
        super().check(target)
        self.resolved["args"], self.resolved["keyword"] = self._product_args(target, self.values["args"],
                                                                             self.values["pairwise"])

    def record(self, into: dict) -> None:
        super().record(into)
        loaded, args = self.resolved["args"], self.values["args"]
        into["keyword_args"] = self.resolved["keyword"]
        into["args"] = [a if isinstance(a, str) else f"<array {i}>" for i, a in enumerate(args)]
        into["args_shapes"] = [list(t.shape) for _, t in loaded]
        # the arrays' contents, not just their paths, decide the results
        into["args_sha256"] = [hashlib.sha256(str(t.dtype).encode() + t.numpy().tobytes()).hexdigest()
                               for _, t in loaded]

    @staticmethod
    def _product_args(target, specs, pairwise):
        """``--args`` files → ``[(input key, tensor)]`` and the names passed by keyword."""
        import torch
        spec = target.spec
        if not specs:
            raise OpError("--args: product needs at least one .npy file of extra inputs")
        loaded = [load_npy(s) for s in specs]
        candidates = list(spec.extra_inputs) or [k for k in spec.input_keys if k != spec.sequence_input]
        if spec.call == "dict" and not spec.extra_inputs:
            candidates = [k for k in spec.input_keys if k != spec.sequence_input]
        keyword = []
        names_given = [n for n, _ in loaded if n is not None]
        if names_given and len(names_given) != len(loaded):
            raise OpError("--args: give every file as NAME=path or none of them")
        if not names_given:
            if len(loaded) > len(candidates):
                raise OpError(f"--args: {len(loaded)} files but the model has {len(candidates)} extra input(s) "
                              f"({', '.join(map(str, candidates)) or 'none'}); declare them with "
                              "postprocessing: tanger: extra_inputs")
            keys = candidates[:len(loaded)]
        else:
            keys = []
            for n in names_given:
                if n not in candidates and n not in spec.input_names:
                    raise OpError(f"--args: {n!r} is not an extra input of the model; expected one of "
                                  f"{', '.join(map(str, candidates))}")
                keys.append(n)
                keyword.append(n)
        provided = set(keys)
        uncovered = [spec.input_names[i] for i, k in enumerate(spec.input_keys)
                     if k != spec.sequence_input and k not in provided and spec.input_names[i] not in provided]
        if uncovered:
            raise OpError(f"--args: model input(s) {', '.join(uncovered)} come from the dataloader; product "
                          "crosses sequences with --args only, so pass a .npy for each of them")
        lens = [len(a) for _, a in loaded]
        if pairwise and len(set(lens)) > 1:
            raise OpError(f"--args: --pairwise pairs the files row by row, but their lengths differ ({lens})")
        # a declared extra input that is also a schema input (provided by the dataloader
        # otherwise) takes that input's place in the call; the others are extra arguments
        schema_key = {n: k for n, k in zip(spec.input_names, spec.input_keys)}
        keys = [schema_key.get(k, k) if isinstance(k, str) else k for k in keys]
        keyword = [k for k in keyword if k not in schema_key]
        for spec_i, ((_, a), k) in enumerate(zip(loaded, keys)):
            _check_rows(spec, k, a, _label(specs[spec_i], spec_i))
        out = [(k, torch.from_numpy(np.ascontiguousarray(a))) for (_, a), k in zip(loaded, keys)]
        return out, keyword

    def compute(self, items):
        import torch
        from ..product import apply_pairwise, apply_product
        ctx = self._ctx
        spec = ctx.target.spec
        keys = [k for k, _ in self.resolved["args"]]
        pargs = [a for _, a in self.resolved["args"]]
        kwords = tuple(k for k in keys if isinstance(k, str) and spec.call != "dict" and k in self.resolved["keyword"])
        if self.view == "raw":
            x_key = spec.sequence_input if spec.sequence_input is not None else spec.input_keys[0]
            X = torch.from_numpy(np.ascontiguousarray(items[x_key]))
        else:
            X = ctx.target.canonical(items[spec.sequence_input])
        w = ctx.wrap(self.view, keys, x_dtype=X.dtype, arg_dtypes=[a.dtype for a in pargs], keyword_extras=kwords,
                     output=self.explained_output())
        func, kwargs = self.inner.function()
        extra = {} if ctx.dtype is None else {"dtype": ctx.dtype}
        apply = apply_pairwise if self.values["pairwise"] else apply_product
        y = apply(func, w, X, pargs, batch_size=self.chunk(), device=ctx.device,
                  additional_func_kwargs=dict(extra, **kwargs), verbose=False)
        return self.inner.name_outputs(y)
