"""dataloaders/_shared.py: one copy of the batching code, loaded by path by every component.

A component must still work when it is copied alone together with _shared.py (next to it, or one
directory up as in the tree), through Kipoi's own loader; no code is copied between components; the
layout grammar is the tanger section's.
"""
import ast
import glob
import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATALOADERS = os.path.join(ROOT, "dataloaders")
COMPONENTS = ["interval_onehot", "sequence_table", "hdf5_predictions", "features_table", "merged"]


def _load_shared():
    spec = importlib.util.spec_from_file_location("_shared_under_test",
                                                  os.path.join(DATALOADERS, "_shared.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


shared = _load_shared()


def _batches(dl, **kw):
    return list(dl.batch_iter(batch_size=3, **kw))


def _assert_same_batches(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        flat_a, flat_b = [], []
        shared.tree_map(flat_a.append, a)
        shared.tree_map(flat_b.append, b)
        assert len(flat_a) == len(flat_b)
        for x, y in zip(flat_a, flat_b):
            np.testing.assert_array_equal(x, y)  # same computation on the same files


def _copy_component(name, dst, flat):
    """``dst/<name>/`` + ``dst/_shared.py`` (tree layout) or ``dst/<name>/_shared.py`` (flat)."""
    comp = os.path.join(dst, name)
    shutil.copytree(os.path.join(DATALOADERS, name), comp,
                    ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
    shutil.copyfile(os.path.join(DATALOADERS, "_shared.py"),
                    os.path.join(comp if flat else dst, "_shared.py"))
    if name == "merged":  # its example plan points into the repository by relative path
        plan = os.path.join(comp, "example_files", "plan.yaml")
        with open(plan) as fh:
            text = fh.read()
        with open(plan, "w") as fh:
            fh.write(text.replace("../../../example_models", os.path.join(ROOT, "example_models")))
    return comp


@pytest.mark.parametrize("flat", [False, True], ids=["tree", "flat"])
@pytest.mark.parametrize("name", COMPONENTS)
def test_component_copied_alone_with_the_shared_module(tmp_path, monkeypatch, name, flat):
    import kipoi
    want = _batches(kipoi.get_dataloader_factory(os.path.join(DATALOADERS, name), source="dir").init_example())
    comp = _copy_component(name, str(tmp_path / "elsewhere"), flat)
    monkeypatch.chdir(tmp_path)
    Dl = kipoi.get_dataloader_factory(comp, source="dir")
    # the base class comes from the copy's own _shared.py, not from the repository's
    base = [c for c in Dl.__mro__ if c.__name__ == "BatchedDataset"]
    assert base, Dl.__mro__
    expected = os.path.join(comp if flat else os.path.dirname(comp), "_shared.py")
    assert sys.modules[base[0].__module__].__file__ == expected
    _assert_same_batches(_batches(Dl.init_example()), want)


def test_component_without_the_shared_module_says_what_to_copy(tmp_path):
    import kipoi
    comp = str(tmp_path / "interval_onehot")
    shutil.copytree(os.path.join(DATALOADERS, "interval_onehot"), comp,
                    ignore=shutil.ignore_patterns("__pycache__"))
    with pytest.raises(Exception) as e:
        kipoi.get_dataloader_factory(comp, source="dir")
    msg = str(e.value)
    assert "\n" not in msg and "_shared.py is neither in {} nor in {}".format(comp, tmp_path) in msg
    assert os.path.join(comp, "dataloader.py") in msg and "copy dataloaders/_shared.py next to this file" in msg


def test_shared_module_is_loaded_once_per_path():
    paths = [m.__file__ for n, m in sys.modules.items() if n.startswith("_tanger_dataloaders_shared_")]
    assert len(paths) == len(set(paths))


def _defs(tree):
    """(name, ast dump) of every function and class, top level and in classes, except
    one-statement bodies such as ``return len(self.ids)``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            body = [n for n in node.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
            if len(body) > 1 or isinstance(node, ast.ClassDef):
                out.append((node.name, ast.dump(node)))
    return out


def test_no_code_is_copied_between_components():
    # the only stretch every component carries is the tiny by-path loader of _shared.py
    seen = {}
    for path in sorted(glob.glob(os.path.join(DATALOADERS, "*", "dataloader.py"))):
        with open(path) as fh:
            tree = ast.parse(fh.read())
        for name, dump in _defs(tree):
            if name == "_load_shared":
                continue
            assert dump not in seen, "{} in {} copies {}".format(name, path, seen[dump])
            seen[dump] = "{} in {}".format(name, path)
        names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        assert not names & {"_Batches", "_BatchView", "_unwrap", "_attach_description", "batch_iter",
                            "_batch_iterable", "_as_int", "_as_bool", "_open_text"}, path
    assert len(seen) > 40  # the walk really saw the components' code


def test_component_loaders_are_identical():
    # one by-path loader, the same text everywhere (a fix to it must reach every component)
    bodies = set()
    for name in COMPONENTS:
        with open(os.path.join(DATALOADERS, name, "dataloader.py")) as fh:
            tree = ast.parse(fh.read())
        fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_load_shared"]
        assert len(fn) == 1, name
        bodies.add(ast.dump(fn[0]))
    assert len(bodies) == 1


# ----------------------------------------------------------------------------
# layouts: the tanger section's grammar

SPELLINGS = ["(A, L)", "(L, A)", "(A, L, 1)", "(1, A, L)", "(L, 1, A)", "A, L", "A L 1", "AL1", "la",
             "[A, L]", " ( a , l ) ", ["L", "A"], ("A", "L", "1")]


@pytest.mark.parametrize("spelling", SPELLINGS, ids=str)
def test_layout_grammar_matches_the_tanger_section(spelling):
    from kipoi_tanger.adapter import Layout
    axes = shared.parse_layout(spelling)
    assert axes == Layout.parse(spelling).axes
    assert shared.format_layout(axes) == str(Layout.parse(spelling))
    assert shared.parse_layout(shared.format_layout(axes)) == axes  # round trip


@pytest.mark.parametrize("spelling,new", [("4,L", "(A, L)"), ("L,4", "(L, A)"), ("4,L,1", "(A, L, 1)"),
                                          ("(1, 4, L)", "(1, A, L)"), ("4L", "(A, L)")])
def test_old_spelling_shows_the_new_one(spelling, new):
    with pytest.raises(ValueError) as e:
        shared.parse_layout(spelling)
    msg = str(e.value)
    assert "\n" not in msg and "old spelling" in msg and '"{}"'.format(new) in msg
    assert shared.parse_layout(new)  # and the new one parses


@pytest.mark.parametrize("bad", ["(L)", "(A, A, L)", "(A, L, L)", "(A, X)", "", "()", "4,4,L", "(A, L, 2)"])
def test_invalid_layouts(bad):
    with pytest.raises(ValueError) as e:
        shared.parse_layout(bad)
    assert "\n" not in str(e.value) and repr(bad) in str(e.value)


def test_layout_shape():
    assert shared.layout_shape(("L", "1", "A"), 7) == (7, 1, 4)
    assert shared.layout_shape(shared.parse_layout("(A, L)"), None) == (4, None)


# ----------------------------------------------------------------------------
# batching

class _Rows(shared.BatchedDataset):
    def __init__(self, n):
        self.x = np.arange(n * 2).reshape(n, 2)
        self.calls = 0

    def __len__(self):
        return len(self.x)

    def load_batch(self, idx):
        self.calls += 1
        idx = np.asarray(idx)
        return {"inputs": self.x[idx], "metadata": {"id": np.array(["r%d" % i for i in idx])}}


@pytest.mark.parametrize("n,bs,drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                                             (2, 5, True)])
def test_batches_cover_rows_in_order(n, bs, drop_last):
    ds = _Rows(n)
    it = ds._batch_iterable(batch_size=bs, drop_last=drop_last)
    got = list(it)
    stop = n - n % bs if drop_last else n
    assert len(it) == len(got) == -(-stop // bs)
    assert [len(b["inputs"]) for b in got] == [min(bs, stop - a) for a in range(0, stop, bs)]
    rows = np.concatenate([b["inputs"] for b in got]) if got else np.zeros((0, 2))
    np.testing.assert_array_equal(rows, ds.x[:stop])
    assert ds[-1]["metadata"]["id"] == "r%d" % (n - 1) and isinstance(ds[0]["metadata"]["id"], str)
    with pytest.raises(IndexError):
        ds[n]


def test_batches_shuffled_and_in_workers():
    ds = _Rows(11)
    np.random.seed(3)
    shuffled = list(ds.batch_iter(batch_size=4, shuffle=True))
    ids = np.concatenate([b["metadata"]["id"] for b in shuffled])
    assert sorted(ids) == sorted("r%d" % i for i in range(11)) and list(ids) != sorted(ids)
    for b in shuffled:
        for x, i in zip(b["inputs"], b["metadata"]["id"]):
            np.testing.assert_array_equal(x, ds.x[int(i[1:])])
    _assert_same_batches(list(ds.batch_iter(batch_size=4, num_workers=2)), list(ds.batch_iter(batch_size=4)))


@pytest.mark.parametrize("kw,part", [(dict(batch_size=0), "batch_size"), (dict(batch_size="x"), "batch_size"),
                                     (dict(num_workers=-1), "num_workers")])
def test_batches_bad_arguments(kw, part):
    with pytest.raises(ValueError, match=part):
        list(_Rows(3).batch_iter(**kw))


def test_argument_helpers():
    assert shared.as_int("12", "n", 1) == 12 and shared.as_int(None, "n", 1, allow_none=True) is None
    assert shared.as_bool("TRUE", "b") is True and shared.as_bool(0 == 1, "b") is False
    assert shared.comma_list(" a, b ", "x") == ["a", "b"] and shared.comma_list("", "x") == []
    for bad, exc in [(True, ValueError), (0, ValueError), (2.0, ValueError)]:
        with pytest.raises(exc):
            shared.as_int(bad, "n", 1)
    with pytest.raises(ValueError, match="'a' is listed twice"):
        shared.comma_list("a,b,a", "cols", unique=True)
    with pytest.raises(ValueError, match="non-empty"):
        shared.comma_list("a,,b", "cols")
    table = shared.byte_codes("ACGT", blank="N")
    assert [table[ord(c)] for c in "AcgTnX"] == [0, 1, 2, 3, 4, shared.INVALID]
