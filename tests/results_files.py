"""Build small kipoi-tanger results files (HDF5, the runner's layout) with h5py
for the plot/report/export tests.

deeplift-shap files hold ``n`` regions of ``length`` bp; region ``i``'s scores
are scaled by ``i + 1`` so the top-K order is known (last rows first), and
GATAAG is planted at ``MOTIF_AT`` with large hypothetical scores on its bases.
"""
import json

import h5py
import numpy as np

MOTIF = "GATAAG"
MOTIF_AT = 15


def one_hot(idx, A=4):
    return np.eye(A, dtype=np.float32)[idx].transpose(0, 2, 1)


def _ranges(f, n, length):
    f["metadata/ranges/chr"] = np.array(["chr1"] * n, dtype=object)
    f["metadata/ranges/start"] = np.arange(n, dtype=np.int64) * 100
    f["metadata/ranges/end"] = np.arange(n, dtype=np.int64) * 100 + length
    f["metadata/ranges/id"] = np.array([f"r{i}" for i in range(n)], dtype=object)
    f["metadata/ranges/strand"] = np.array(["+" if i % 2 == 0 else "-" for i in range(n)], dtype=object)


def to_layout(X, layout):
    """Canonical one-hot (N, A, L) -> a model layout as the runner stores ``inputs``."""
    if layout in ("(A, L)",):
        return X
    if layout in ("(L, A)", None):
        return np.ascontiguousarray(X.transpose(0, 2, 1))
    if layout == "(A, L, 1)":
        return X[..., None]
    if layout == "(L)":
        return X.argmax(axis=1).astype(np.int64)
    raise ValueError(layout)


def write_dls(path, n=6, length=40, layout="(L, A)", hypothetical=False, separate_hypothetical=False,
              inputs=True, ranges=True, deltas=True, write_layout=True, seed=0):
    """A deeplift-shap results file; returns ``{'X', 'hyp', 'attr'}`` (canonical arrays).

    ``layout=None`` with ``write_layout=False`` mimics a plain Kipoi file
    (inputs ``(N, L, 4)``, no layout attribute)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 4, (n, length))
    idx[:, MOTIF_AT:MOTIF_AT + len(MOTIF)] = ["ACGT".index(c) for c in MOTIF]
    X = one_hot(idx)
    hyp = rng.normal(scale=0.05, size=(n, 4, length)).astype(np.float32)
    hyp[:, :, MOTIF_AT:MOTIF_AT + len(MOTIF)] += one_hot(idx[:, MOTIF_AT:MOTIF_AT + len(MOTIF)])
    hyp *= (np.arange(n, dtype=np.float32) + 1)[:, None, None]
    attr = hyp * X
    with h5py.File(path, "w") as f:
        f["attributions"] = hyp if (hypothetical and not separate_hypothetical) else attr
        if separate_hypothetical:
            f["hypothetical"] = hyp
        if inputs:
            f["inputs"] = to_layout(X, layout)
        if deltas:
            f["convergence_deltas"] = rng.uniform(-2e-4, 2e-4, n).astype(np.float32)
        if ranges:
            _ranges(f, n, length)
        f.attrs["op"] = "deeplift-shap"
        f.attrs["model"] = "toy_model"
        f.attrs["source"] = "dir"
        f.attrs["kipoi_tanger_version"] = "0.1.0"
        f.attrs["alphabet"] = json.dumps(list("ACGT"))
        if write_layout and layout is not None:
            f.attrs["layout"] = layout
        f.attrs["sequence_input"] = "seq"
        f.attrs["parameters"] = json.dumps({"hypothetical": bool(hypothetical), "n_shuffles": 20,
                                            "target": 0, "random_state": 0})
    return {"X": X, "hyp": hyp, "attr": attr}


def write_marginalize(path, n=50, inner_op="predict", seed=0, length=40):
    """A marginalize results file with two outputs: ``0`` (N, 2) and ``1``
    (N, 3, 2) (a product axis of 3); with ``inner_op='deeplift-shap'`` a
    single output of attributions (N, 4, L)."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        if inner_op == "deeplift-shap":
            f["y_before"] = rng.normal(size=(n, 4, length)).astype(np.float32) * 0.01
            f["y_after"] = f["y_before"][:] + 0.05
        else:
            f["y_before/0"] = rng.normal(size=(n, 2)).astype(np.float32)
            f["y_after/0"] = f["y_before/0"][:] + np.float32(1.0)
            f["y_before/1"] = rng.normal(size=(n, 3, 2)).astype(np.float32)
            f["y_after/1"] = f["y_before/1"][:] - np.float32(0.5)
        _ranges(f, n, length)
        f.attrs["op"] = "marginalize"
        f.attrs["model"] = "toy_model"
        f.attrs["parameters"] = json.dumps({"motif": MOTIF, "start": None, "inner_op": inner_op})
