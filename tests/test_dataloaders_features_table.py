"""dataloaders/features_table: TSV id + numeric columns -> float vectors, targets, metadata id."""
import gzip
import os

import numpy as np
import pytest

from dataloaders.features_table.dataloader import FeaturesTable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(path, text, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wt") as fh:
        fh.write(text)
    return str(path)


TABLE = "id\ta\tb\tc\ty\nx1\t1\t2.5\t-3\t0\nx2\t4\t5\t6e-1\t1\nx3\tnan\t0\t1\t1\n"


@pytest.mark.parametrize("gz", [False, True])
def test_reads_columns_targets_and_ids(tmp_path, gz):
    p = write(tmp_path / ("t.tsv.gz" if gz else "t.tsv"), TABLE, gz)
    ds = FeaturesTable(p, columns="c,a", target_columns=["y"])
    assert len(ds) == 3
    b = ds.load_batch([2, 0])
    np.testing.assert_array_equal(b["inputs"][1], np.array([-3, 1], dtype=np.float32))
    assert np.isnan(b["inputs"][0, 1])
    assert b["inputs"].dtype == np.float32
    np.testing.assert_array_equal(b["targets"], [[1], [0]])
    assert list(b["metadata"]["id"]) == ["x3", "x1"]
    s = ds[1]
    assert s["metadata"]["id"] == "x2" and isinstance(s["metadata"]["id"], str)
    np.testing.assert_allclose(s["inputs"], [0.6, 4], rtol=1e-6)


def test_default_columns_exclude_id_and_targets(tmp_path):
    ds = FeaturesTable(write(tmp_path / "t.tsv", TABLE), target_columns="y", dtype="float64")
    assert ds.columns == ["a", "b", "c"] and ds.x.dtype == np.float64
    assert FeaturesTable(write(tmp_path / "u.tsv", TABLE)).columns == ["a", "b", "c", "y"]


def test_batch_iter_equals_kipoi_collate(tmp_path):
    from kipoi_utils.data_utils import numpy_collate
    ds = FeaturesTable(write(tmp_path / "t.tsv", TABLE), target_columns="y")
    batches = list(ds.batch_iter(batch_size=2))
    assert [len(b["inputs"]) for b in batches] == [2, 1]
    ref = numpy_collate([ds[i] for i in range(2)])
    np.testing.assert_array_equal(batches[0]["inputs"], ref["inputs"])
    np.testing.assert_array_equal(batches[0]["targets"], ref["targets"])
    assert list(batches[0]["metadata"]["id"]) == list(ref["metadata"]["id"])


def test_no_id_column_uses_row_numbers(tmp_path):
    ds = FeaturesTable(write(tmp_path / "t.tsv", "a\tb\n1\t2\n3\t4\n"))
    assert list(ds.ids) == ["0", "1"]


def test_kipoi_loads_the_component():
    import kipoi
    Dl = kipoi.get_dataloader_factory(os.path.join(REPO, "dataloaders", "features_table"), source="dir")
    ds = Dl.init_example()
    assert len(ds) == 4 and ds[0]["metadata"]["id"] == "r0"


@pytest.mark.parametrize("text, kwargs, match", [
    ("id\ta\nx\t1\nx\t2\n", {}, r"line 3: id 'x' repeats line 2"),
    ("id\ta\nx\tfoo\n", {}, r"line 2: column 'a': 'foo' is not a number"),
    ("id\ta\nx\t\n", {}, r"line 2: column 'a': '' is not a number"),
    ("id\ta\nx\t1\t2\n", {}, r"line 2: expected 2 tab-separated columns, got 3"),
    ("id\ta\nx\t1\n", {"columns": "b"}, r"no column 'b' in the header"),
    ("id\ta\nx\t1\n", {"columns": "a", "target_columns": "a"}, r"both list 'a'"),
    ("id\ta\n", {}, r"no data rows"),
    ("", {}, r"empty file"),
    ("id\n x\n", {}, r"no feature columns"),
    ("id\ta\nx\t1\n", {"dtype": "U3"}, r"dtype: expected a numeric dtype"),
])
def test_bad_input_is_one_clear_line(tmp_path, text, kwargs, match):
    p = write(tmp_path / "bad.tsv", text)
    with pytest.raises(ValueError, match=match) as e:
        FeaturesTable(p, **kwargs)
    assert "\n" not in str(e.value)
    if "dtype" not in kwargs and "columns" not in kwargs and "target_columns" not in kwargs:
        assert "bad.tsv" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="features_file .*nope.tsv: file not found"):
        FeaturesTable(str(tmp_path / "nope.tsv"))
