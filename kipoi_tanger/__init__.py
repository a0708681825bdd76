"""kipoi_tanger: tangermeme-style analyses (predict, products, DeepLIFT/SHAP,
marginalization, dinucleotide shuffles) for any Kipoi model.

The ops live in modules named like tangermeme's (``kipoi_tanger.predict``,
``kipoi_tanger.deep_lift_shap``, ...) and take a torch module on one-hot
``(N, A, L)`` sequences; :func:`load_model` makes one of a Kipoi model.
Importing this package imports neither torch nor Kipoi.
"""
from typing import Any, Iterator, NamedTuple, Optional, Tuple

__version__ = "0.1.0"
__all__ = ["load_model", "KipoiModel", "__version__"]


class KipoiModel(NamedTuple):
    """A Kipoi model ready for kipoi_tanger's ops (what :func:`load_model` returns).

    Attributes
    ----------
    model : torch.nn.Module
        ``model(X, *args)``: ``X`` is one-hot DNA in tangermeme's ``(N, A, L)``
        layout (mapped to the model's own layout inside), ``args`` are the
        model's other inputs in schema order (none for most models). Returns
        the model's output: a tensor, or a list of tensors in schema order.
        Pass it to ``predict``, ``marginalize``, ``apply_product``...
    dataloader : type
        The model's Kipoi dataloader class; ``dataloader(**kwargs)`` reads
        regions (see :meth:`inputs`, which does it for you).
    target : kipoi_tanger.adapter.KipoiTarget
        The loaded model with what its ``postprocessing: tanger:`` section and
        schema say (sequence input, layout, output to explain, ...).
    """
    model: Any
    dataloader: Any
    target: Any

    def explained(self, output=None):
        """The model as ``f(X, *args) -> (N, n_targets)``: one output, reduced as the tanger section
        declares; what ``deep_lift_shap`` explains.

        Parameters
        ----------
        output : str or int, optional
            Output name or index; default: the section's ``output:`` (or the
            only output).
        """
        return self.target.wrap(canonical=True, arg_keys=self.arg_keys, select=True, output=output)

    @property
    def deeplift_rules(self) -> Optional[dict]:
        """The rules model.yaml declares under ``postprocessing: tanger: deeplift_rules``, as
        ``deep_lift_shap(..., additional_nonlinear_ops=m.deeplift_rules)`` takes them (None: none)."""
        return self.target.deeplift_rules

    @property
    def arg_keys(self) -> list:
        """Schema keys of the model's inputs other than the sequence, in the order ``args`` fill them."""
        spec = self.target.spec
        return [k for k in spec.input_keys if k != spec.sequence_input]

    def batches(self, dataloader_args: Optional[dict] = None, batch_size: int = 32) -> Iterator[Tuple[Any, tuple]]:
        """``(X, args)`` batches from the model's dataloader: ``X`` float ``(N, A, L)``, ``args`` a tuple
        of tensors (the model's other inputs, schema order).

        Parameters
        ----------
        dataloader_args : dict, optional
            Dataloader keyword arguments (checked against its declared
            arguments); default: the dataloader's own example files.
        batch_size : int, default 32
        """
        import numpy as np
        import torch
        t = self.target
        kwargs = t.dataloader_args(None, example=True) if dataloader_args is None else t.dataloader_args(
            dict(dataloader_args))
        for batch in t.make_dataloader(kwargs).batch_iter(batch_size=batch_size):
            items = t.input_items(batch["inputs"])
            X = t.canonical(items[t.spec.sequence_input])
            yield X, tuple(torch.from_numpy(np.ascontiguousarray(items[k])) for k in self.arg_keys)

    def inputs(self, dataloader_args: Optional[dict] = None, n: Optional[int] = None) -> Tuple[Any, tuple]:
        """All regions (or the first ``n``) as one ``(X, args)`` pair, like :meth:`batches`."""
        import numbers

        import torch
        if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
            raise ValueError(f"n: expected a positive integer (the first n regions) or None (all), got {n!r}")
        Xs, argss, total = [], [], 0
        for X, args in self.batches(dataloader_args, batch_size=32 if n is None else min(32, max(1, n))):
            Xs.append(X)
            argss.append(args)
            total += len(X)
            if n is not None and total >= n:
                break
        if not Xs:
            raise ValueError(f"model {self.target.name}: the dataloader gave no regions")
        X = torch.cat(Xs)[:n]
        args = tuple(torch.cat([a[i] for a in argss])[:n] for i in range(len(self.arg_keys)))
        return X, args


def load_model(model: str, source: str = "dir", dataloader: Optional[str] = None) -> KipoiModel:
    """Load a Kipoi model as a torch module on tangermeme's ``(N, A, L)`` one-hot, plus its dataloader.

    The Python bridge from any Kipoi model (``model.yaml`` + ``dataloader.yaml``)
    to kipoi_tanger's ops: the returned ``model`` maps ``X`` to the model's own
    input layout, fills its other inputs from ``args`` and calls it as Kipoi
    does, so ``predict(m.model, X)``, ``marginalize(m.model, X, "GATAAG")`` and
    ``deep_lift_shap(m.explained(), X)`` work as in tangermeme.

    Parameters
    ----------
    model : str
        A model dir (``source='dir'``, relative to the working directory or
        absolute), or a model name in a configured Kipoi source.
    source : str, default 'dir'
        ``'dir'`` or a Kipoi source name from ``~/.kipoi/config.yaml`` (e.g.
        the example zoo: see ``kipoi-tanger zoo``).
    dataloader : str, optional
        Another dataloader: a dataloader dir or an importable ``module.Class``.

    Returns
    -------
    KipoiModel
        ``(model, dataloader, target)``; see :class:`KipoiModel` (also
        :meth:`KipoiModel.inputs` for the example regions as tensors).

    Raises
    ------
    ValueError
        (:class:`kipoi_tanger.adapter.AdapterError`) for a missing model,
        a malformed yaml or tanger section, a framework that is not installed,
        or a model whose sequence input or layout cannot be determined; one
        line. Non-PyTorch models load too; their ``model`` calls the Kipoi
        model's ``predict_on_batch`` (forward passes only, on the CPU).
    """
    from .adapter.errors import AdapterError
    from .adapter.target import load
    t = load(model, source=source, dataloader=dataloader)
    for key in ("sequence_input", "layout"):
        if key in t.spec.problems:
            raise AdapterError(f"model {model}: no (N, A, L) view of it: {t.spec.problems[key]}")
    m = KipoiModel(None, t.Dl, t)
    return m._replace(model=t.wrap(canonical=True, arg_keys=m.arg_keys))


def __getattr__(name):
    # Kipoi imports `kipoi_tanger.TorchModel` from model.yaml's `defined_as`;
    # keep the import lazy so `import kipoi_tanger` stays light.
    if name == "TorchModel":
        from .adapter.kipoi_model import TorchModel
        return TorchModel
    if name == "KerasModel":   # defined_as: kipoi_tanger.KerasModel (TensorFlow loads on use)
        from .frameworks.keras import KerasModel
        return KerasModel
    if name == "SklearnModel":   # defined_as: kipoi_tanger.SklearnModel (scikit-learn loads on use)
        from .frameworks.sklearn import SklearnModel
        return SklearnModel
    if name == "TensorFlowModel":   # defined_as: kipoi_tanger.TensorFlowModel (TF1 checkpoints)
        from .frameworks.tensorflow import TensorFlowModel
        return TensorFlowModel
    raise AttributeError(f"module 'kipoi_tanger' has no attribute {name!r}")
