"""The seam between ops and a Kipoi model: a torch module ``f(X, *args)`` that
calls the model's own module the way Kipoi does.

Ops work on tangermeme's canonical one-hot ``(N, A, L)``; the wrapper maps
``X`` to the model's layout (:class:`~kipoi_tanger.adapter.layout.Layout`),
fills the model's other inputs from ``args``, calls the module with an array,
a list or keyword arguments as Kipoi would, and, for attributions, selects
one output and applies the declared reduction. How the model is called lives
here and in :meth:`KipoiTarget.wrap` only; op objects never touch the
module itself.

The module is the model's torch module, its checked torch conversion, or, for
models of other frameworks, a :class:`~kipoi_tanger.adapter.backends.PredictOnBatch`
shim (:mod:`~kipoi_tanger.adapter.backends`): inputs then reach the model with
the dataloader's dtypes again (``restores_input_dtypes``), whatever the op
cast them to.
"""
_CACHE = {}


def is_int_dtype(dtype) -> bool:
    """True for integer torch dtypes (tokens, indices), which ops must not feed as floats."""
    import torch
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def adapted_module_class():
    """The torch module class (built on first use, so that importing the adapter does not import torch)."""
    if "cls" in _CACHE:
        return _CACHE["cls"]
    import torch

    class AdaptedModule(torch.nn.Module):
        """Call a Kipoi model's torch module the way Kipoi does, from op inputs.

        ``forward(X, *args)``: ``X`` is the canonical ``(N, A, L)`` one-hot
        sequence (``canonical=True``) or the model's own sequence/first input;
        ``args`` fill ``arg_keys`` in order. The result is the model's output
        (dict outputs become a list in schema order), or, when ``output`` is set,
        the selected output with ``reduce`` applied, shaped ``(N, n_targets)``.
        """

        def __init__(self, module, spec, x_key, arg_keys, canonical, arg_dtypes=None, x_dtype=None,
                     select=False, reduce=None, output=None, keyword_extras=()):
            super().__init__()
            self.module = module
            self._spec = spec
            self._x_key = x_key
            self._arg_keys = list(arg_keys)
            self._canonical = canonical
            self._arg_dtypes = list(arg_dtypes or [None] * len(self._arg_keys))
            self._x_dtype = x_dtype
            self._select = select
            self._reduce = reduce
            self._output = output
            self._keyword_extras = set(keyword_extras)
            # a predict_on_batch shim takes the dataloader's dtypes (floats too)
            self._restore_all = bool(getattr(module, "restores_input_dtypes", False))

        def _restore(self, t, dtype, what="input"):
            # ops cast every input to the compute dtype; integer inputs (tokens,
            # indices) must reach the model as integers again
            if self._restore_all:
                return self.module.restore_input(t, dtype, what)
            if dtype is not None and is_int_dtype(dtype) and t.dtype != dtype:
                return t.round().to(dtype)
            return t

        def forward(self, X, *args):
            spec = self._spec
            if len(args) != len(self._arg_keys):
                raise ValueError(f"expected {len(self._arg_keys)} extra inputs "
                                 f"({', '.join(map(str, self._arg_keys))}), got {len(args)}")
            if self._canonical:
                if spec.layout.tokens and bool((X.sum(dim=1) == 0).any()):
                    raise ValueError("sequence input: all-zero (N) columns cannot be mapped to integer tokens")
                x = spec.layout.to_model(X)
                if self._restore_all and not spec.layout.tokens:
                    x = self._restore(x, self._x_dtype, self._x_key)
            else:
                x = self._restore(X, self._x_dtype, self._x_key)
            values = {self._x_key: x}
            for k, a, dt in zip(self._arg_keys, args, self._arg_dtypes):
                values[k] = self._restore(a, dt, k)
            y = self._call(values)
            if isinstance(y, dict):
                order = [k for k in spec.target_keys if k in y] or list(y)
                y = [y[k] for k in order] if not self._select else y
            if self._select:
                y = self._pick(y)
                if self._reduce is not None:
                    dims = sorted({(a % (y.ndim - 1)) + 1 for a in self._reduce["axis"]})
                    y = y.sum(dim=dims) if self._reduce["op"] == "sum" else y.mean(dim=dims)
                if y.ndim == 1:
                    y = y.unsqueeze(1)
            elif isinstance(y, tuple):
                y = list(y)
            return y

        def _pick(self, y):
            out = self._output
            if out is None:
                if isinstance(y, torch.Tensor):
                    return y
                raise ValueError("the model returns several outputs; choose one with --output "
                                 "or postprocessing: tanger: output")
            if isinstance(y, dict):
                return y[out] if out in y else list(y.values())[self._spec.target_keys.index(out)]
            if isinstance(y, (list, tuple)):
                i = out if isinstance(out, int) else self._spec.target_keys.index(out)
                return y[i]
            if isinstance(out, int) and out in (0, -1):
                return y
            raise ValueError(f"output {out!r}: the model returned a single tensor")

        def _call(self, values):
            spec = self._spec
            keys = spec.input_keys
            missing = [spec.input_names[i] for i, k in enumerate(keys) if k not in values]
            if missing:
                raise ValueError(f"model input(s) {', '.join(missing)} are not provided")
            extras = [k for k in values if k not in keys]
            pos_extra = [values[k] for k in extras if k not in self._keyword_extras]
            kw_extra = {k: values[k] for k in extras if k in self._keyword_extras}
            if spec.call == "dict":
                kw = {k: values[k] for k in keys}
                kw.update({k: values[k] for k in extras})
                return self.module(**kw)
            if spec.call == "list":
                return self.module(*[values[k] for k in keys], *pos_extra, **kw_extra)
            return self.module(values[keys[0]], *pos_extra, **kw_extra)

    _CACHE["cls"] = AdaptedModule
    return AdaptedModule
