"""Comparing float results that come from different computations.

CPU kernels round differently on other CPUs (AVX2, AVX-512, AMX; MKL and
oneDNN pick kernels by CPU and by batch shape) and for other batch shapes, so
results computed with other batchings, other memory layouts or by another
code path agree only to float precision. Such comparisons take a relative
tolerance *and* an absolute one scaled to the values (an ``rtol`` alone fails
on values near 0). Bitwise equality stays where the code guarantees the same
computation: resume, shards + merge, ``num_workers`` on the same batches, the
same call twice.
"""
import numpy as np

__all__ = ["assert_close", "close", "scale_of"]


def _np(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def scale_of(x) -> float:
    """The largest finite ``|x|`` (1.0 for an empty or all-zero array)."""
    a = np.abs(_np(x).astype(np.float64))
    a = a[np.isfinite(a)]
    s = float(a.max()) if a.size else 0.0
    return s if s > 0 else 1.0


def close(actual, expected, rtol: float = 1e-5, atol_rel: float = 1e-5, scale=None) -> bool:
    """True when ``actual`` and ``expected`` agree to ``rtol`` plus ``atol_rel`` times the values' scale.

    ``scale`` defaults to the largest ``|expected|``: the output scale, so values
    near 0 are compared to the precision of the large ones they were computed with.
    """
    e = _np(expected)
    atol = atol_rel * (scale_of(e) if scale is None else scale)
    return bool(np.allclose(_np(actual), e, rtol=rtol, atol=atol))


def assert_close(actual, expected, rtol: float = 1e-5, atol_rel: float = 1e-5, scale=None, err_msg: str = ""):
    """``np.testing.assert_allclose`` with ``atol = atol_rel * scale`` (see :func:`close`)."""
    e = _np(expected)
    atol = atol_rel * (scale_of(e) if scale is None else scale)
    np.testing.assert_allclose(_np(actual), e, rtol=rtol, atol=atol, err_msg=err_msg)
