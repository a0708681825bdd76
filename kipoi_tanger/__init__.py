"""kipoi_tanger: tangermeme-style analyses (predict, products, DeepLIFT/SHAP,
marginalization, dinucleotide shuffles) for any Kipoi model."""
__version__ = "0.1.0"


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
    raise AttributeError(f"module 'kipoi_tanger' has no attribute {name!r}")
