"""kipoi_tanger.adapter: layouts, the tanger section, inference from the schema, wrappers."""
import os
from types import SimpleNamespace as NS

import pytest
import torch

from floatcmp import assert_close
from kipoi_model_dirs import dl_args, load_inputs, load_module, make_model_dir
from kipoi_tanger import ops
from kipoi_tanger.adapter import (AdapterError, Layout, infer_layout, load, parse_reduce, resolve_example,
                                  resolve_spec, tanger_section)

PROFILE_TARGETS = [{"name": "profile", "shape": "(1, 50)", "doc": "p"},
                   {"name": "counts", "shape": "(1,)", "doc": "c"}]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapter_models")
    return {
        "la": make_model_dir(root, "ad_la", arch="TinyCNN", layout="LA"),
        "al1": make_model_dir(root, "ad_al1", arch="BassetLike", layout="AL1"),
        "profile": make_model_dir(root, "ad_prof", arch="ProfileNet", layout="AL", targets=PROFILE_TARGETS),
        "reduce": make_model_dir(root, "ad_red", arch="ProfileNet", layout="AL", targets=PROFILE_TARGETS,
                                 tanger={"output": "profile", "reduce": "sum"}),
        "tokens": make_model_dir(root, "ad_tok", arch="TokenNet", layout="tokens",
                                 tanger={"layout": "(L)", "sequence_input": "seq", "ops": ["predict", "marginalize"]}),
        "nospecial": make_model_dir(root, "ad_nosp", arch="TinyCNN", layout="LA", special_type=False),
        "two": make_model_dir(root, "ad_two", arch="TwoInput", layout="LA", extra="cell"),
        "gru": make_model_dir(root, "ad_gru", arch="OneHotGRU", layout="AL"),
    }


# -- layouts -------------------------------------------------------------------

@pytest.mark.parametrize("text,axes", [("(A, L, 1)", ("A", "L", "1")), ("(L, A)", ("L", "A")),
                                       ("AL", ("A", "L")), ("1 A L", ("1", "A", "L")), ("(L)", ("L",))])
def test_layout_parse(text, axes):
    assert Layout.parse(text).axes == axes


@pytest.mark.parametrize("bad", ["(A, A, L)", "(A, 1)", "(L, X)", "", "(L, 1)", 5])
def test_layout_parse_rejects(bad):
    with pytest.raises(AdapterError, match="layout"):
        Layout.parse(bad)


@pytest.mark.parametrize("axes,shape", [(("A", "L", "1"), (7, 4, 30, 1)), (("L", "A"), (7, 30, 4)),
                                        (("1", "A", "L"), (7, 1, 4, 30)), (("L", "1", "A"), (7, 30, 1, 4))])
def test_layout_round_trip(axes, shape):
    lay = Layout(axes)
    X = torch.rand(7, 4, 30)
    x = lay.to_model(X)
    assert tuple(x.shape) == shape
    assert torch.equal(lay.from_model(x), X)
    # the model's A axis holds the alphabet: x indexed at letter c, position l is X[:, c, l]
    idx = [slice(None)] * x.ndim
    idx[axes.index("A") + 1], idx[axes.index("L") + 1] = 2, 17
    assert torch.equal(x[tuple(idx)].reshape(7), X[:, 2, 17])


def test_layout_tokens_round_trip():
    X = torch.nn.functional.one_hot(torch.randint(0, 4, (5, 12)), 4).permute(0, 2, 1).float()
    lay = Layout.parse("(L)")
    tok = lay.to_model(X)
    assert tok.shape == (5, 12) and tok.dtype == torch.long
    assert torch.equal(lay.from_model(tok), X)
    with pytest.raises(AdapterError, match="token values"):
        lay.from_model(torch.full((1, 3), 7))


@pytest.mark.parametrize("shape,axes", [((4, 600, 1), ("A", "L", "1")), ((None, 4), ("L", "A")),
                                        ((4, None), ("A", "L")), ((1000, 4), ("L", "A")), ((1, 4, 200), ("1", "A", "L"))])
def test_infer_layout(shape, axes):
    lay, why = infer_layout(shape)
    assert why is None and lay.axes == axes


@pytest.mark.parametrize("shape", [(4, 4), (100,), (3, 100), (4, 100, 7), None])
def test_infer_layout_ambiguous(shape):
    lay, why = infer_layout(shape)
    assert lay is None and why


# -- the tanger section ----------------------------------------------------------

def test_tanger_section_read_and_validated():
    assert tanger_section({}) == {}
    assert tanger_section({"postprocessing": {"other": 1}}) == {}
    assert tanger_section({"postprocessing": {"tanger": {"layout": "(L, A)"}}}) == {"layout": "(L, A)"}
    with pytest.raises(AdapterError, match="unknown key 'layuot'.*did you mean 'layout'"):
        tanger_section({"postprocessing": {"tanger": {"layuot": "(L, A)"}}})
    with pytest.raises(AdapterError, match="expected a mapping"):
        tanger_section({"postprocessing": {"tanger": ["layout"]}})


def test_parse_reduce():
    assert parse_reduce("sum") == {"op": "sum", "axis": (-1,)}
    assert parse_reduce({"op": "mean", "axis": [0, 1]}) == {"op": "mean", "axis": (0, 1)}
    assert parse_reduce(None) is None
    for bad in ["max", {"op": "sum", "axis": "x"}, {"op": "sum", "axes": 1}, 3]:
        with pytest.raises(AdapterError, match="reduce"):
            parse_reduce(bad)


def test_inferred_spec(dirs):
    t = load(dirs["al1"])
    d = t.describe()
    assert d["sequence_input"] == "seq" and d["layout"] == "(A, L, 1)"
    assert d["provenance"]["layout"].startswith("inferred from the schema shape (4, 50, 1)")
    assert d["provenance"]["sequence_input"].startswith("inferred")
    assert d["ops"] == list(ops.names())      # no section: every registered op
    t = load(dirs["profile"])
    assert t.spec.output_name == "counts" and t.spec.provenance["output"].startswith("inferred")
    # no special_type: still found as the only input with an axis of size 4
    t = load(dirs["nospecial"])
    assert t.spec.sequence_name == "seq" and str(t.spec.layout) == "(L, A)"
    t = load(dirs["two"])
    assert t.spec.call == "dict" and t.spec.sequence_name == "seq"


def test_declared_spec(dirs):
    t = load(dirs["reduce"])
    assert t.spec.output_name == "profile" and t.spec.reduce == {"op": "sum", "axis": (-1,)}
    assert t.spec.provenance["output"] == "declared"
    t = load(dirs["tokens"])
    assert t.spec.layout.tokens and t.spec.ops == ("predict", "marginalize")


def _schema(inputs):
    return NS(inputs={k: NS(shape=sh, special_type=None, name=k) for k, sh in inputs.items()},
              targets=NS(shape=(1,), name="y"))


@pytest.mark.parametrize("inputs,seq", [
    ({"model2": (3,), "model3": (4,)}, None),          # composite/merged: (4,) is a feature vector
    ({"x": (4,)}, None),
    ({"feat": (4,), "seq": (100, 4)}, "seq"),
    ({"seq": (4, None, 1)}, "seq"),
])
def test_sequence_input_needs_a_length_axis(inputs, seq):
    spec = resolve_spec(_schema(inputs), {})
    assert spec.sequence_name == seq
    assert spec.no_sequence_input == (seq is None)
    if seq is None:
        assert "no sequence input" in spec.problems["sequence_input"] and spec.layout is None


def test_no_sequence_input_real_model():
    """composite/merged: model2 (3,), model3 (4,) are predictions, not sequences; only predict can run."""
    from kipoi_model_dirs import REPO
    t = load(os.path.join(REPO, "example_models", "composite", "merged"))
    assert t.spec.sequence_input is None and t.describe()["no_sequence_input"]
    t.require("predict")
    t.spec.ops = ("predict", "marginalize")
    with pytest.raises(AdapterError, match="marginalize needs the sequence input: the model has no sequence input"):
        t.require("marginalize")


def _with_section(tmp_path, name, tanger, **kw):
    return make_model_dir(tmp_path, name, tanger=tanger, **kw)


@pytest.mark.parametrize("tanger,match", [
    ({"layout": "(A, L)"}, "layout .* puts the alphabet on an axis of size 50"),
    ({"layout": "(A, L, 1)"}, "has 3 axes but the schema shape"),
    ({"sequence_input": "sequence"}, "sequence_input 'sequence' is not in the schema"),
    ({"output": 3}, "output index 3 is out of range"),
    ({"ops": ["predict", "deeplift"]}, "unknown op 'deeplift'.*did you mean 'deeplift-shap'"),
    ({"alphabet": "AC GT"}, "alphabet"),
    ({"reduce": {"op": "sum", "axis": 2}}, "axis 2 is out of range"),
])
def test_bad_sections(tmp_path, tanger, match):
    d = _with_section(tmp_path, "bad", tanger)
    with pytest.raises(AdapterError, match=match):
        load(d)


def test_malformed_yaml_is_one_line(tmp_path):
    d = make_model_dir(tmp_path, "broken")
    with open(f"{d}/model.yaml", "a") as fh:
        fh.write("schema: [unclosed\n")
    with pytest.raises(AdapterError) as e:
        load(d)
    assert "\n" not in str(e.value) and "broken" in str(e.value)


def test_missing_model_dir(tmp_path):
    with pytest.raises(AdapterError, match="no such directory"):
        load(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match="has no model.yaml"):
        load(str(tmp_path / "empty"))


# -- wrappers against direct computation ---------------------------------------------

@pytest.mark.parametrize("key,arch", [("la", "TinyCNN"), ("al1", "BassetLike")])
def test_canonical_wrapper_matches_module(dirs, key, arch):
    """(L, 4) and (4, L, 1) inputs: the canonical (N, A, L) wrapper gives the model's own output."""
    t = load(dirs[key])
    raw = load_inputs(dirs[key])["inputs"]
    X = t.canonical(raw)
    assert X.shape == (40, 4, 50)
    # canonical one-hot equals the raw input read along its alphabet axis
    flat = torch.as_tensor(raw).reshape(40, *[s for s in raw.shape[1:] if s != 1])
    expect = flat if key == "al1" else flat.permute(0, 2, 1)
    assert torch.equal(X, expect)
    net = load_module(dirs[key], arch, seq_len=50)
    with torch.no_grad():
        direct = net(torch.as_tensor(raw))
        wrapped = t.wrap(canonical=True)(X)
        explained = t.wrap(canonical=True, select=True)(X)
    # the wrapper hands the module a permuted view: other memory layouts may take other kernels
    assert_close(wrapped, direct, rtol=1e-6, atol_rel=1e-6)
    assert_close(explained, direct, rtol=1e-6, atol_rel=1e-6)


def test_explain_wrapper_selects_and_reduces(dirs):
    t = load(dirs["reduce"])
    raw = torch.as_tensor(load_inputs(dirs["reduce"])["inputs"])
    net = load_module(dirs["reduce"], "ProfileNet", seq_len=50)
    with torch.no_grad():
        prof, counts = net(raw)
        y = t.wrap(canonical=True, select=True)(t.canonical(raw.numpy()))
        y_counts = t.wrap(canonical=True, select=True, output="counts")(t.canonical(raw.numpy()))
    assert torch.allclose(y, prof.sum(-1), atol=1e-6) and y.shape == (40, 1)
    assert_close(y_counts, counts, rtol=1e-6, atol_rel=1e-6)


def test_raw_wrapper_restores_integer_inputs(dirs):
    """predict casts inputs to float; token models still get integers."""
    from kipoi_tanger.predict import predict
    t = load(dirs["tokens"])
    tok = torch.as_tensor(load_inputs(dirs["tokens"])["inputs"])
    net = load_module(dirs["tokens"], "TokenNet", seq_len=50)
    w = t.wrap(canonical=False, x_dtype=tok.dtype)
    with torch.no_grad():
        # batches of 16 against the whole batch: CPU kernels round by batch shape (and CPU)
        y = predict(w, tok, batch_size=16, device="cpu")
        assert_close(y, net(tok))
        # canonical one-hot -> tokens as well (the whole batch both times: the same computation)
        assert torch.equal(t.wrap(canonical=True)(t.canonical(tok.numpy())), net(tok))


def test_require(dirs):
    t = load(dirs["profile"])
    t.require("deeplift-shap", explain=True)                 # counts inferred
    with pytest.raises(AdapterError, match=r"output 'profile' has shape \(1, 50\).*reduce"):
        t.require("deeplift-shap", explain=True, output="profile")
    t = load(dirs["tokens"])
    with pytest.raises(AdapterError, match=r"op 'deeplift-shap' is not supported \(postprocessing: tanger: ops "
                       r"declares predict, marginalize\); deep_lift_shap: module 'gru' \(GRU\) has no DeepLIFT "
                       "rule.*declare a rule for its class under postprocessing: tanger: deeplift_rules"):
        t.require("deeplift-shap", explain=True)
    t.require("marginalize")
    t = load(dirs["la"])
    assert t.resolve_target("task1") == 1 and t.resolve_target("2") == 2
    with pytest.raises(AdapterError, match="did you mean 'task1'"):
        t.resolve_target("tsk1")


def test_require_refuses_modules_without_rule(dirs):
    """No ops declared, but a GRU: deep_lift_shap's own refusal, naming the module, before any data is read."""
    t = load(dirs["gru"])
    with pytest.raises(AdapterError) as e:
        t.require("deeplift-shap", explain=True)
    msg = str(e.value)
    assert "deep_lift_shap: module 'gru' (GRU) has no DeepLIFT rule" in msg and "\n" not in msg
    t.require("marginalize")          # predict-based marginalize is fine
    t.require("predict")


def test_declared_deeplift_rules(tmp_path):
    """postprocessing: tanger: deeplift_rules resolves class names against the loaded model; a declared
    rule lifts the up-front refusal of its class; a bad declaration is one line at load."""
    d = make_model_dir(tmp_path, "ad_gru_rule", arch="OneHotGRU", layout="AL",
                       tanger={"deeplift_rules": {"torch.nn.GRU": "linear", "arch_ad_gru_rule.OneHotGRU": "linear"}})
    t = load(d)
    rules = t.deeplift_rules
    assert rules[torch.nn.GRU].__name__ == "linear_rule" and type(t.module) in rules
    t.require("deeplift-shap", explain=True)               # declared: not refused up front
    assert t.describe()["deeplift_rules"] == {"torch.nn.GRU": "linear", "arch_ad_gru_rule.OneHotGRU": "linear"}
    for decl, msg in (({"NoSuchAct": "rescale"}, r"deeplift_rules: 'NoSuchAct' is neither a class of the model"),
                      ({"torch.nn.GRU": "relu"}, r"deeplift_rules.*'relu'"),
                      (["torch.nn.GRU"], r"deeplift_rules: expected a mapping \{class name: rule name\}")):
        bad = make_model_dir(tmp_path, f"ad_bad_rule{len(msg)}", arch="OneHotGRU", layout="AL",
                             tanger={"deeplift_rules": decl})
        with pytest.raises(AdapterError, match=msg) as e:
            load(bad)
        assert "\n" not in str(e.value)


def test_resolve_example(tmp_path):
    """Example paths are relative to the dataloader dir, as `kipoi test` (which cds there) sees them."""
    base = tmp_path / "dl"
    (base / "ex").mkdir(parents=True)
    for f in ("a.h5", "b.h5"):
        (base / "ex" / f).write_text("x")
    a, b = str(base / "ex" / "a.h5"), str(base / "ex" / "b.h5")
    assert resolve_example("ex/a.h5", str(base)) == a
    assert resolve_example("ex/a.h5,ex/b.h5", str(base)) == f"{a},{b}"
    assert resolve_example("ex/a.h5, ex/b.h5", str(base)) == f"{a},{b}"
    assert resolve_example(["ex/a.h5", {"k": "ex/b.h5"}, 3], str(base)) == [a, {"k": b}, 3]
    # not every part is a file there: a plain string, left alone
    assert resolve_example("ex/a.h5,ex/c.h5", str(base)) == "ex/a.h5,ex/c.h5"
    assert resolve_example("chr1,chr2", str(base)) == "chr1,chr2"
    assert resolve_example("/abs/x.h5", str(base)) == "/abs/x.h5"
    assert resolve_example("ex/a.h5", None) == "ex/a.h5"


def test_example_comma_list_from_another_dir(monkeypatch, tmp_path):
    """hdf5_predictions: `example: example_files/model2.h5,example_files/model3.h5` works from any cwd."""
    from kipoi_model_dirs import REPO
    t = load(os.path.join(REPO, "example_models", "composite", "from_predictions"))
    monkeypatch.chdir(tmp_path)
    kw = t.dataloader_args(None, example=True)
    ex = os.path.join(REPO, "example_models", "composite", "from_predictions", "example_files")
    assert kw["files"] == f"{ex}/model2.h5,{ex}/model3.h5"
    assert len(t.make_dataloader(kw)) == 12


def test_dataloader_args_validation(dirs):
    t = load(dirs["la"])
    assert t.dataloader_args(dl_args(dirs["la"])) == dl_args(dirs["la"])
    with pytest.raises(AdapterError, match="unknown argument 'fasta'.*did you mean 'fasta_file'"):
        t.dataloader_args({"intervals_file": "x", "fasta": "y"})
    with pytest.raises(AdapterError, match="missing required argument.*fasta_file"):
        t.dataloader_args({"intervals_file": "x"})
    ex = t.dataloader_args(None, example=True)
    assert ex["fasta_file"] == f"{dirs['la']}/example_files/genome.fa"
    with pytest.raises(AdapterError, match="FileNotFoundError"):
        t.make_dataloader({"intervals_file": "/nonexistent.bed", "fasta_file": ex["fasta_file"]})


def test_dataloader_override(dirs):
    """--dataloader: a dataloader dir instead of the model's default."""
    t = load(dirs["la"], dataloader=dirs["la"])
    assert t.dataloader_name == dirs["la"] and t.Dl.__name__.endswith("SeqDataset")
    dl = t.make_dataloader(t.dataloader_args(dl_args(dirs["la"])))
    assert len(dl) == 40
    with pytest.raises(AdapterError, match="--dataloader /nonexistent"):
        load(dirs["la"], dataloader="/nonexistent", dataloader_source="dir")


def test_not_a_pytorch_model(tmp_path):
    d = tmp_path / "sk"
    d.mkdir()
    (d / "skmodel.py").write_text(
        "from kipoi.model import BaseModel\n"
        "class M(BaseModel):\n"
        "    def predict_on_batch(self, x):\n        return x\n")
    import yaml
    (d / "model.yaml").write_text(yaml.safe_dump({
        "defined_as": "skmodel.M", "args": {}, "info": {"authors": [{"name": "x"}], "doc": "d"},
        "schema": {"inputs": {"shape": "(4,)", "doc": "x"}, "targets": {"shape": "(4,)", "doc": "y"}}}))
    # loaded for forward-only ops (through predict_on_batch); graph ops are refused in one line
    t = load(str(d), dataloader="kipoi.data.Dataset")
    with pytest.raises(AdapterError, match=r"deeplift-shap needs a torch graph, and this is a custom \(skmodel.M\) "
                                           "model"):
        t.require_graph("deeplift-shap")
