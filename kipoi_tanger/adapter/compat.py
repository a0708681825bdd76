"""Compatibility shims for running Kipoi 0.8.6 on numpy 2.

Kipoi's ``HDF5BatchWriter`` and ``ZarrBatchWriter`` test dtypes against
``np.string_`` and ``np.unicode_``, which numpy 2 removed, so ``kipoi predict
-o out.h5`` fails after leaving a stub file. Kipoi is no longer maintained, so
we give its writer module a numpy that still has those names instead of
pinning numpy below 2. The shim is scoped: only ``kipoi.writers`` sees the
aliases; the global ``numpy`` module is left untouched.
"""
import sys
import types

import numpy

# numpy 2 names for the aliases numpy 1 had.
_REMOVED_ALIASES = {"string_": "bytes_", "unicode_": "str_"}


def missing_aliases(np=numpy):
    """Return the removed numpy aliases that ``np`` lacks (empty on numpy 1)."""
    missing = []
    for old in _REMOVED_ALIASES:
        try:
            getattr(np, old)
        except AttributeError:
            missing.append(old)
    return missing


class _NumpyWithAliases(types.ModuleType):
    """A stand-in for the numpy module that forwards every attribute to numpy
    and adds the aliases numpy 2 removed."""

    def __init__(self, np):
        super().__init__(np.__name__, np.__doc__)
        self.__dict__["_numpy"] = np
        for old, new in _REMOVED_ALIASES.items():
            if old in missing_aliases(np):
                self.__dict__[old] = getattr(np, new)

    def __getattr__(self, name):
        return getattr(self.__dict__["_numpy"], name)

    def __dir__(self):
        return sorted(set(dir(self.__dict__["_numpy"])) | set(_REMOVED_ALIASES))


def patch_kipoi_writers(module=None):
    """Give ``kipoi.writers`` (or ``module``) a numpy with ``string_``/``unicode_``.

    Idempotent, and a no-op on numpy 1 or when the module is not imported yet
    (pass the module explicitly from an import hook).

    Returns
    -------
    bool
        True if the module's ``np`` now resolves the removed aliases.
    """
    if module is None:
        module = sys.modules.get("kipoi.writers")
        if module is None:
            return False
    np = getattr(module, "np", None)
    if np is None or isinstance(np, _NumpyWithAliases):
        return np is not None
    if missing_aliases(np):
        module.np = _NumpyWithAliases(np)
    return True
