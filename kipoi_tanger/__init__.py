"""kipoi_tanger: tangermeme-style analyses (predict, products, DeepLIFT/SHAP,
marginalization, dinucleotide shuffles) for any Kipoi model."""
__version__ = "0.1.0"


def __getattr__(name):
    # Kipoi imports `kipoi_tanger.TorchModel` from model.yaml's `defined_as`;
    # keep the import lazy so `import kipoi_tanger` stays light.
    if name == "TorchModel":
        from .kipoi_model import TorchModel
        return TorchModel
    raise AttributeError(f"module 'kipoi_tanger' has no attribute {name!r}")
