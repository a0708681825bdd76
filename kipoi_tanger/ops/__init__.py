"""Op objects, one file each, and their registry (one line per op).

A new op is one file here, a subclass of :class:`~kipoi_tanger.ops.base.Op`,
plus one line in :data:`REGISTRY`; the run loop, the CLI (one subcommand per
op, options from its declared parameters), the tanger section's ``ops:`` and
``kipoi-tanger test`` pick it up from there. The registry's order is the
CLI's and ``kipoi-tanger test``'s. Op modules are imported on first use.
"""
import importlib
from typing import Dict, Tuple, Type

from .base import Op, OpError, Param, RunContext

__all__ = ["REGISTRY", "Op", "OpError", "Param", "RunContext", "get", "names", "build", "classes"]

#: op name -> "module:Class" (".module" under kipoi_tanger.ops, or an absolute module path)
REGISTRY: Dict[str, str] = {
    "predict": ".predict:Predict",
    "deeplift-shap": ".deeplift_shap:DeepLiftShap",
    "marginalize": ".marginalize:Marginalize",
    "product": ".product:Product",
    "ablate": ".ablate:Ablate",
    "space": ".space:Space",
    "ism": ".ism:Ism",
    "variant-effect": ".variant_effect:VariantEffect",
}


def names() -> Tuple[str, ...]:
    """The registered op names, in registry order."""
    return tuple(REGISTRY)


def get(name: str) -> Type[Op]:
    """The op class registered as ``name``; one error line (with a suggestion) otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        from ..adapter.errors import suggest
        raise OpError(f"unknown op {name!r}{suggest(name, REGISTRY)}; expected one of {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    op = getattr(importlib.import_module(module, package=__name__), cls)
    if op.name != name:
        raise RuntimeError(f"ops registry: {name!r} points at {REGISTRY[name]}, whose name is {op.name!r}")
    return op


def classes() -> Tuple[Type[Op], ...]:
    """Every registered op class, in registry order."""
    return tuple(get(n) for n in REGISTRY)


def build(name: str, params: dict) -> Op:
    """The op ``name`` (with its inner ops) from flat parameters, as the CLI gives them."""
    return get(name).from_params(params)
