"""Comparing kipoi-tanger output files in tests (resume, shards + merge, CLI vs API)."""
import os

import numpy as np

from kipoi_tanger.run import h5io


def same_content(path_a, path_b):
    """True if two HDF5 files hold the same datasets (names, dtypes, values) and attributes."""
    sa, na = h5io.dataset_specs(path_a)
    sb, nb = h5io.dataset_specs(path_b)
    if sa != sb or na != nb or h5io.read_attrs(path_a) != h5io.read_attrs(path_b):
        return False
    a, b = h5io.load(path_a), h5io.load(path_b)
    return all(np.array_equal(a[k], b[k]) for k in a)


def file_bytes_equal(path_a, path_b):
    """True if two files are byte for byte identical."""
    if os.path.getsize(path_a) != os.path.getsize(path_b):
        return False
    with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
        return fa.read() == fb.read()
