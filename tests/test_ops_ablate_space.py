"""kipoi_tanger.ops.ablate / ops.space: `kipoi-tanger ablate` and `kipoi-tanger space` over Kipoi models.

The Python ops (kipoi_tanger.ablate.ablate, kipoi_tanger.space.space, run on the torch module and the
sequences the dataloader gave) are the oracle of run() and the CLI, on a small torch model dir and on
example_models/motif_cnn (two outputs). Dinucleotide shuffles are seeded seed + region index: the same
shuffles at any batch size, and shards + merge / resume give the single run's file byte for byte.
Bad input is one line, exit 2, nothing written.
"""
import importlib.util
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
import yaml

from h5compare import file_bytes_equal
from cli_helpers import main_in
from kipoi_model_dirs import REPO, dl_args, load_module, make_model_dir, run_cli
from kipoi_tanger import ops
from kipoi_tanger.ablate import ablate
from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.ersatz import dinucleotide_shuffle, shuffle
from kipoi_tanger.ops.base import Op, OpError
from kipoi_tanger.run import RunError, h5io, merge, run
from kipoi_tanger.space import space

N, L = 40, 50
MOTIF_CNN = os.path.join(REPO, "example_models", "motif_cnn")


class Canon(torch.nn.Module):
    """The oracle's model: canonical (N, A, L) one-hot -> TinyCNN's (N, L, A)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, X):
        return self.net(X.permute(0, 2, 1))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate_space")
    d = make_model_dir(root, "as_la", arch="TinyCNN", layout="LA",
                       tanger={"ops": ["predict", "deeplift-shap", "ablate", "space"]})
    # motif_cnn with ablate and space declared (the zoo's section lists only predict, deeplift-shap,
    # marginalize); its dataloader.yaml loads ../../dataloaders/interval_onehot, so keep that depth
    mc = root / "zoo" / "example_models" / "motif_cnn"
    shutil.copytree(MOTIF_CNN, mc, ignore=shutil.ignore_patterns("test.expect.h5", "__pycache__"))
    os.symlink(os.path.join(REPO, "dataloaders"), root / "zoo" / "dataloaders")
    with open(mc / "model.yaml") as fh:
        m = yaml.safe_load(fh)
    m["postprocessing"]["tanger"]["ops"] = ["predict", "deeplift-shap", "ablate", "space"]
    m.pop("test", None)
    with open(mc / "model.yaml", "w") as fh:
        yaml.safe_dump(m, fh, sort_keys=False)
    with open(mc / "example_files" / "regions.bed") as fh:     # 6 regions, both strands
        (mc / "six.bed").write_text("".join(fh.readlines()[:6]))
    mc_args = {"intervals_file": str(mc / "six.bed"), "fasta_file": str(mc / "example_files" / "genome.fa")}
    return {"root": root, "la": d, "net": Canon(load_module(d, "TinyCNN", seq_len=L)), "mc": str(mc),
            "mc_args": mc_args}


def _inputs(path):
    """The sequences a run wrote with keep_inputs, as the oracle's canonical (N, A, L) tensor."""
    return torch.as_tensor(h5io.load(path)["inputs"])


def _X_la(path):
    return _inputs(path).permute(0, 2, 1).contiguous()


def _close(got, want):
    want = want.detach().numpy()
    scale = max(1.0, float(np.abs(want).max()))
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6 * scale), float(np.abs(got - want).max())


def _dinuc(X, **kw):
    return dinucleotide_shuffle(X, allow_N=True, **kw)


def _main(argv, capsys, cwd):
    rc, _, err = main_in(argv, capsys, cwd)
    return rc, err


# -- declarations -------------------------------------------------------------------------------

def test_declared_parameters_and_tree():
    assert {"ablate", "space"} <= set(ops.names())
    ab = {p.name: p for p in ops.get("ablate").cli_params()}
    assert ab["start"].required and ab["end"].required and not ab["n"].required and ab["n"].default == 20
    assert ab["shuffle"].choices == ("shuffle", "dinucleotide") and ab["shuffle"].default == "shuffle"
    assert ab["inner_op"].choices == ("predict", "deeplift-shap") and "return_references" not in ab
    sp = {p.name: p for p in ops.get("space").cli_params()}
    assert sp["motifs"].required and sp["spacing"].required and not sp["start"].required
    op = ops.build("ablate", {"start": 1, "end": 9, "n": 4})
    assert op.view == "canonical" and op.groupable and op.writes_tables and op.forward_passes == 5
    op = ops.build("ablate", {"start": 1, "end": 9, "inner_op": "deeplift-shap"})
    assert op.view == "explain" and not op.groupable and not op.writes_tables and op.uses_random_state
    op = ops.build("space", {"motifs": ["GATA", "TT"], "spacing": ["0", "2"]})
    assert op.view == "canonical" and not op.groupable and op.writes_tables and not op.uses_random_state
    with pytest.raises(OpError, match="--op: space runs predict or deeplift-shap, got 'marginalize'"):
        ops.build("space", {"inner_op": "marginalize"})


# -- ablate ---------------------------------------------------------------------------------------

def _spy_shuffles(monkeypatch):
    """Record every batch of shuffles the ablate op draws (and the seeds it passes)."""
    import kipoi_tanger.ops.ablate as ablate_op
    real, seen = ablate_op.shuffle_function, []

    def shuffle_function(name):
        fn = real(name)

        def recorded(X, **kw):
            Y = fn(X, **kw)
            seen.append((kw["random_state"], Y.clone()))
            return Y
        return recorded

    monkeypatch.setattr(ablate_op, "shuffle_function", shuffle_function)
    return seen


@pytest.mark.parametrize("kind", ["dinucleotide", "shuffle"])
def test_ablate_equals_python_op_at_any_batch_size(work, tmp_path, monkeypatch, capsys, kind):
    d, net = work["la"], work["net"]
    seen = _spy_shuffles(monkeypatch)
    kw = dict(dataloader_args=dl_args(d), start=10, end=-11, n=3, shuffle=kind, random_state=5, verbose=False)
    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    run("ablate", d, a, batch_size=8, group_regions=8, keep_inputs=True, **kw)      # 5 calls of 8 regions
    shuffles_8 = seen[:]
    seen.clear()
    run("ablate", d, b, batch_size=16, **kw)                                        # one call of 40
    assert len(shuffles_8) == 5 and len(seen) == 1
    cat = torch.cat([y for _, y in shuffles_8])
    assert torch.equal(cat, seen[0][1])                 # the batch size does not change the shuffles
    X = _X_la(a)
    fn = _dinuc if kind == "dinucleotide" else shuffle
    assert torch.equal(cat, fn(X, start=10, end=-11, n=3, random_state=5))
    if kind == "dinucleotide":
        assert [s for s, _ in shuffles_8][1] == list(range(13, 21))        # seed + region index
    else:
        assert all(s == 5 for s, _ in shuffles_8)
    assert not torch.equal(cat[:, 0], cat[:, 1])
    assert torch.equal(cat[..., :10], X[:, None, :, :10].expand_as(cat[..., :10]))          # outside the window
    want = ablate(net, X, 10, -11, n=3, shuffle_fn=fn, random_state=5, batch_size=8, device="cpu")
    got = h5io.load(a)
    _close(got["y_before"], want.y_before)
    _close(got["y_after"], want.y_after)
    _close(h5io.load(b)["y_after"], want.y_after)
    p = h5io.read_attrs(a)["parameters"]
    assert {k: p[k] for k in ("inner_op", "start", "end", "n", "shuffle", "random_state")} == \
        {"inner_op": "predict", "start": 10, "end": -11, "n": 3, "shuffle": kind, "random_state": 5}
    # the CLI writes the run() file
    c = str(tmp_path / "c.h5")
    rc, err = _main(["ablate", d, "--dataloader_args", json.dumps(dl_args(d)), "--start", "10", "--end", "-11",
                     "--n", "3", "--shuffle", kind, "--random_state", "5", "--batch_size", "16", "-o", c, "-q"],
                    capsys, tmp_path)
    assert rc == 0, err
    assert file_bytes_equal(b, c)


def test_ablate_shards_merge_and_resume_byte_identical(work, tmp_path, monkeypatch):
    d = work["la"]
    common = dict(dataloader_args=dl_args(d), batch_size=6, keep_metadata=True, verbose=False, start=5, end=45,
                  n=2, shuffle="dinucleotide", random_state=11)
    single = str(tmp_path / "single.h5")
    run("ablate", d, single, group_regions=12, **common)
    shards = []
    for i in (2, 3, 1):
        s = str(tmp_path / f"s{i}.h5")
        run("ablate", d, s, shard=f"{i}/3", group_regions=12, **common)
        shards.append(s)
    assert h5io.read_attrs(shards[0])["shard_range"][0] > 0
    merged = str(tmp_path / "merged.h5")
    merge(shards, merged)
    assert file_bytes_equal(single, merged)
    # deeplift-shap inside (one call per batch): equal to the Python op; resumed after 2 committed batches,
    # the single run's file
    dls = dict(common, inner_op="deeplift-shap", n_shuffles=2, keep_inputs=True)
    full, out = str(tmp_path / "full.h5"), str(tmp_path / "r.h5")
    run("ablate", d, full, **dls)
    want = ablate(work["net"], _X_la(full), 5, 45, n=2, shuffle_fn=_dinuc, random_state=11, func=deep_lift_shap,
                  additional_func_kwargs=dict(n_shuffles=2, random_state=11, target=0), batch_size=6, device="cpu")
    got = h5io.load(full)
    _close(got["y_before"], want.y_before)
    _close(got["y_after"], want.y_after)
    p = h5io.read_attrs(full)["parameters"]
    assert p["inner_op"] == "deeplift-shap" and p["n_shuffles"] == 2 and p["random_state"] == 11
    calls, original = [], Op.__call__

    def dying(self, items):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return original(self, items)

    monkeypatch.setattr(Op, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        run("ablate", d, out, **dls)
    monkeypatch.setattr(Op, "__call__", original)
    assert os.path.isdir(out + ".partial") and not os.path.exists(out)
    res = run("ablate", d, out, resume=True, **dls)
    assert res.resumed_units == 12
    assert file_bytes_equal(full, out)
    assert got["y_before"].shape == (N, 4, L) and got["y_after"].shape == (N, 2, 4, L)


def test_ablate_dinucleotide_names_the_region_with_one_shuffle(tmp_path):
    """A region whose window is a repeat has exactly one dinucleotide shuffle: the error names that region
    (its index in the dataloader), not its place in the batch. N (all-zero columns) in a window is shuffled
    as a character of its own."""
    d = make_model_dir(tmp_path, "as_rep", arch="TinyCNN", layout="LA", n_regions=16)
    with open(os.path.join(d, "example_files", "intervals.bed")) as fh:
        bed = [line.split() for line in fh]
    fa = os.path.join(d, "example_files", "genome.fa")
    with open(fa) as fh:
        lines = fh.read().split(">")[1:]
    seqs = {rec.split("\n", 1)[0]: rec.split("\n", 1)[1].replace("\n", "") for rec in lines}

    def put(region, offset, text):
        chrom, s = bed[region][0], int(bed[region][1]) + offset
        seqs[chrom] = seqs[chrom][:s] + text + seqs[chrom][s + len(text):]

    put(2, 18, "NN")
    put(13, 10, "ACGT" * 5)
    with open(fa, "w") as fh:
        for c, q in seqs.items():
            fh.write(f">{c}\n{q}\n")
    out = str(tmp_path / "x.h5")
    with pytest.raises(OpError, match=r"^--shuffle dinucleotide: region 13 has exactly one dinucleotide shuffle "
                                      r"\(itself\) in positions \[10, 30\).*; use --n 1 or --shuffle shuffle$"):
        run("ablate", d, out, dataloader_args=dl_args(d), batch_size=4, group_regions=4, start=10, end=30, n=2,
            shuffle="dinucleotide", random_state=0, verbose=False)
    from kipoi_tanger.run import Journal
    j = Journal(out + ".partial")
    j.load()
    assert j.units == 12            # regions 0-11 (region 2 with its N) are done; a resume would fail again


def test_region_index_of_batch_datasets_counts_rows():
    """Units of a BatchDataset are batches: a shard or resume starting at unit k starts at the rows before it."""
    from kipoi_tanger.ops.ablate import REGION_INDEX, IndexedSource

    class Batches:
        mode, units_total, unit, fixed_batches = "batches", 4, "batch", False
        sizes = [3, 5, 2, 4]

        def batches(self, batch_size, num_workers, start, stop):
            for k in range(start, self.units_total if stop is None else stop):
                yield {"inputs": np.zeros((self.sizes[k], 2))}, 1

        def items(self, batch):
            return {"seq": batch["inputs"]}

    src = IndexedSource(Batches())
    got = [b[REGION_INDEX].tolist() for b, _ in src.batches(8, 0, 2, None)]
    assert got == [[8, 9], [10, 11, 12, 13]]
    assert [b[REGION_INDEX].tolist() for b, _ in src.batches(8, 0, 0, 1)] == [[0, 1, 2]]
    b, _ = next(src.batches(8, 0, 1, 2))
    assert src.items(b)[REGION_INDEX].tolist() == [3, 4, 5, 6, 7] and "seq" in src.items(b)


# -- space ----------------------------------------------------------------------------------------

def test_space_equals_python_op_from_cli_rows_and_tables(work, tmp_path, capsys):
    d, net = work["la"], work["net"]
    dla = json.dumps(dl_args(d))
    np.savetxt(tmp_path / "gaps.tsv", np.array([[0], [3], [9]]), fmt="%d", delimiter="\t")
    np.save(tmp_path / "gaps.npy", np.array([0, 3, 9]))
    base = ["space", d, "--dataloader_args", dla, "--motifs", "GATAAG", "CANNTG", "--start", "4", "--batch_size",
            "8", "-q", "--spacing"]
    files = []
    for i, spacing in enumerate((["0", "3", "9"], [str(tmp_path / "gaps.tsv")], [str(tmp_path / "gaps.npy")])):
        files.append(str(tmp_path / f"c{i}.h5"))
        rc, err = _main(base + spacing + ["-o", files[-1]], capsys, tmp_path)
        assert rc == 0, err
    api = str(tmp_path / "api.h5")
    run("space", d, api, dataloader_args=dl_args(d), motifs=["GATAAG", "CANNTG"], spacing=[[0], [3], [9]], start=4,
        batch_size=8, verbose=False)
    assert all(file_bytes_equal(api, f) for f in files)
    p = h5io.read_attrs(api)["parameters"]
    assert p["spacing"] == [[0], [3], [9]] and p["motifs"] == ["GATAAG", "CANNTG"] and p["start"] == 4
    # the oracle, on the sequences the dataloader gave
    k = str(tmp_path / "k.h5")
    run("predict", d, k, dataloader_args=dl_args(d), keep_inputs=True, verbose=False)
    X = _X_la(k)
    want = space(net, X, ["GATAAG", "CANNTG"], np.array([[0], [3], [9]]), start=4, batch_size=8, device="cpu")
    got = h5io.load(api)
    assert got["y_afters"].shape == (N, 3, 2)
    _close(got["y_before"], want.y_before)
    _close(got["y_afters"], want.y_afters)
    # three motifs: one row per value, gaps comma-separated; centred arrangements
    three = str(tmp_path / "three.h5")
    rc, err = _main(["space", d, "--dataloader_args", dla, "--motifs", "GATA", "TT", "CAG", "--spacing", "0,0", "2,5",
                     "-o", three, "-q"], capsys, tmp_path)
    assert rc == 0, err
    want = space(net, X, ["GATA", "TT", "CAG"], [[0, 0], [2, 5]], device="cpu")
    _close(h5io.load(three)["y_afters"], want.y_afters)
    assert h5io.read_attrs(three)["parameters"]["spacing"] == [[0, 0], [2, 5]]


def test_space_deeplift_and_shards(work, tmp_path):
    d, net = work["la"], work["net"]
    kw = dict(dataloader_args=dl_args(d), motifs=["GATAAG", "CACGTG"], spacing=[2, 8], inner_op="deeplift-shap",
              n_shuffles=2, random_state=4, batch_size=8, keep_inputs=True, verbose=False)
    single = str(tmp_path / "single.h5")
    run("space", d, single, **kw)
    X = _X_la(single)
    want = space(net, X, ["GATAAG", "CACGTG"], [[2], [8]], func=deep_lift_shap,
                 additional_func_kwargs=dict(n_shuffles=2, random_state=4), batch_size=8, device="cpu")
    got = h5io.load(single)
    assert got["y_afters"].shape == (N, 2, 4, L)
    _close(got["y_before"], want.y_before)
    _close(got["y_afters"], want.y_afters)
    # shards + merge (one call per batch: space never groups batches)
    kw.update(inner_op="predict", batch_size=6)
    single = str(tmp_path / "single_predict.h5")
    run("space", d, single, **kw)
    shards = [str(tmp_path / f"s{i}.h5") for i in (1, 2)]
    for i, s in enumerate(shards, 1):
        run("space", d, s, shard=f"{i}/2", **kw)
    merged = str(tmp_path / "m.h5")
    merge(shards, merged)
    assert file_bytes_equal(single, merged)


# -- motif_cnn (two outputs) ------------------------------------------------------------------------

def _motif_cnn_module(mc):
    spec = importlib.util.spec_from_file_location("_motif_cnn_model_for_ablate", os.path.join(mc, "model.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with open(os.path.join(mc, "model.yaml")) as fh:
        kwargs = yaml.safe_load(fh)["args"]["module_kwargs"]
    net = mod.MotifCNN(**kwargs)
    net.load_state_dict(torch.load(os.path.join(mc, "weights.pth"), weights_only=True))
    return mod, net.eval()


def test_motif_cnn_ablate_and_space(work, tmp_path, capsys):
    mc, args = work["mc"], work["mc_args"]
    mod, net = _motif_cnn_module(mc)
    out = str(tmp_path / "ab.h5")
    run("ablate", mc, out, dataloader_args=args, start=200, end=300, n=2, shuffle="dinucleotide", random_state=1,
        batch_size=4, keep_inputs=True, verbose=False)
    got = h5io.load(out)
    # list outputs are named by index, as kipoi predict writes preds/0, preds/1
    assert sorted(k for k in got if k.startswith("y_")) == ["y_after/0", "y_after/1", "y_before/0", "y_before/1"]
    X = _inputs(out)
    assert X.shape == (6, 4, 500)
    want = ablate(net, X, 200, 300, n=2, shuffle_fn=_dinuc, random_state=1, batch_size=4, device="cpu")
    _close(got["y_before/0"], want.y_before[0])
    _close(got["y_before/1"], want.y_before[1])
    _close(got["y_after/0"], want.y_after[0])
    _close(got["y_after/1"], want.y_after[1])
    assert got["y_after/0"].shape == (6, 2, 1, 400)
    # space explaining the counts output (the section's output) with DeepLIFT/SHAP, through the CLI
    sp = str(tmp_path / "sp.h5")
    rc, err = _main(["space", mc, "--dataloader_args", json.dumps(args), "--motifs", "GATAAG", "CAGCTG", "--spacing",
                     "5", "30", "--start", "150", "--op", "deeplift-shap", "--n_shuffles", "2", "--random_state", "2",
                     "--batch_size", "6", "-o", sp, "-q"], capsys, tmp_path)
    assert rc == 0, err
    want = space(mod.CountsOnly(net), X, ["GATAAG", "CAGCTG"], [[5], [30]], start=150, func=deep_lift_shap,
                 additional_func_kwargs=dict(n_shuffles=2, random_state=2), batch_size=6, device="cpu")
    got = h5io.load(sp)
    _close(got["y_before"], want.y_before)
    _close(got["y_afters"], want.y_afters)
    a = h5io.read_attrs(sp)
    assert a["explained_output"] == "1" and a["parameters"]["spacing"] == [[5], [30]]


def test_ops_not_declared_and_kipoi_tanger_test(work, tmp_path, capsys):
    """A model whose section does not list ablate/space: refused in one line. A model that lists them:
    kipoi-tanger test runs their checks (y_before equals predict)."""
    # a copy of motif_cnn beside the zoo's (its dataloader.yaml loads ../../dataloaders/interval_onehot)
    mc = os.path.join(work["root"], "zoo", "example_models", "limited")
    shutil.copytree(MOTIF_CNN, mc, ignore=shutil.ignore_patterns("test.expect.h5", "__pycache__"))
    with open(os.path.join(mc, "model.yaml")) as fh:
        text = fh.read()
    with open(os.path.join(mc, "model.yaml"), "w") as fh:
        fh.write(re.sub(r"ops: \[[^]]*\]", "ops: [predict, deeplift-shap, marginalize]", text))
    rc, err = _main(["ablate", mc, "--example", "--start", "1", "--end", "9", "-o", "x.h5"], capsys, tmp_path)
    assert rc == 2 and err.strip() == (
        f"kipoi-tanger: error: model {mc}: op 'ablate' is not supported (postprocessing: tanger: ops "
        "declares predict, deeplift-shap, marginalize)")
    assert os.listdir(tmp_path) == []
    from kipoi_tanger.tools import zoo
    rep = zoo.test(work["la"], kipoi_test=False, n_shuffles=2)
    st = {c.name: (c.status, c.detail) for c in rep.checks}
    assert rep.passed and st["predict"][0] == "PASS" and st["marginalize"][0] == "SKIP"
    assert st["ablate"][0] == "PASS" and "y_before equals predict" in st["ablate"][1]
    assert st["space"][0] == "PASS" and "y_before equals predict" in st["space"][1]


def test_kipoi_tanger_ablate_through_the_kipoi_executable(work, tmp_path):
    d = work["la"]
    home = tmp_path / "home"
    home.mkdir()
    out = str(tmp_path / "k.h5")
    p = run_cli(["tanger", "ablate", d, "--example", "--start", "12", "--end", "40", "--n", "2", "--random_state", "7",
                 "--shuffle", "dinucleotide", "-o", out, "-q"], tmp_path, home, exe="kipoi")
    assert p.returncode == 0, p.stderr
    api = str(tmp_path / "api.h5")
    run("ablate", d, api, example=True, start=12, end=40, n=2, random_state=7, shuffle="dinucleotide", verbose=False)
    assert file_bytes_equal(out, api)


# -- bad input ------------------------------------------------------------------------------------

BAD = [
    (["ablate", "{la}", "--start", "50", "--end", "-1"], "--start: 50 is past the end of sequences of length 50"),
    (["ablate", "{la}", "--start", "10", "--end", "51"], "--end: 51 does not close a window after --start 10"),
    (["ablate", "{la}", "--start", "10", "--end", "10"], "expected 11 to 50, or -40 to -1 counting from L + 1"),
    (["ablate", "{la}", "--start", "10", "--end", "-45"], "--end: -45 (= 6) does not close a window"),
    (["ablate", "{la}", "--start", "-1", "--end", "9"], "--start: expected a non-negative integer position, got -1"),
    (["ablate", "{la}", "--start", "1", "--end", "9", "--n", "0"], "--n: expected a positive integer, got 0"),
    (["ablate", "{la}", "--start", "1"], "the following arguments are required: --end"),
    (["ablate", "{la}", "--start", "1", "--end", "4", "--shuffle", "dinucleotide"],
     "the 3-position window [1, 4) has exactly one dinucleotide shuffle"),
    (["ablate", "{la}", "--start", "1", "--end", "9", "--shuffle", "dinuc"], "argument --shuffle: invalid choice"),
    (["space", "{la}", "--motifs", "GATA", "CAXG", "--spacing", "1"],
     "--motifs: 'CAXG' has characters 'X' outside the alphabet ACGT (N keeps the original base)"),
    (["space", "{la}", "--motifs", "gata", "CAG", "--spacing", "1"], "--motifs: 'gata' has characters 'agt'"),
    (["space", "{la}", "--motifs", "GATA", "--spacing", "1"], "--motifs: space places two motifs or more"),
    (["space", "{la}", "--motifs", "GATAAG", "CACGTG", "--spacing", "0", "39"],
     "--spacing: row 1 (gaps 39) places the motifs over 51 positions, but sequences of length 50 have 50 (centred); "
     "expected gaps summing to at most 38"),
    (["space", "{la}", "--motifs", "GATAAG", "CACGTG", "--spacing", "5", "--start", "35"],
     "--spacing: row 0 (gaps 5) places the motifs over 17 positions, but sequences of length 50 have 15 (from "
     "--start 35)"),
    (["space", "{la}", "--motifs", "GATAAG", "CACGTG", "--spacing", "0", "--start", "45"],
     "--start: 45 leaves 5 positions of sequences of length 50, fewer than the 12 of the motifs"),
    (["space", "{la}", "--motifs", "GATA", "CAG", "--spacing", "1.5"], "--spacing: '1.5' is not a row of integer gaps"),
    (["space", "{la}", "--motifs", "GATA", "CAG", "--spacing", "-2"], "--spacing: row 0 has a negative gap (-2)"),
    (["space", "{la}", "--motifs", "GATA", "CAG", "TT", "--spacing", "1"],
     "--spacing: expected 2 gaps between the 3 motifs per row, got 1"),
    (["space", "{la}", "--motifs", "GATA", "CAG", "TT", "--spacing", "1,2", "3"],
     "--spacing: expected 2 gaps between the 3 motifs per row, got rows of different lengths"),
    (["space", "{la}", "--motifs", "GATA", "CAG", "--spacing", "nope.tsv"], "--spacing: nope.tsv: no such file"),
    (["space", "{la}", "--motifs", "GATA", "CAG", "--spacing", "{ragged}"], "ragged.tsv: not a table of integers"),
    (["space", "{la}", "--motifs", "GATA", "CAG", "--spacing", "{float}"], "float.npy: expected integer gaps, got"),
    (["space", "{la}", "--motifs", "GATA", "CAG"], "the following arguments are required: --spacing"),
]


@pytest.mark.parametrize("argv,match", BAD, ids=[f"{a[0]}-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_input_one_line_exit_2_nothing_written(work, tmp_path, capsys, argv, match):
    tables = work["root"] / "tables"
    tables.mkdir(exist_ok=True)
    (tables / "ragged.tsv").write_text("1\t2\n3\n")
    np.save(tables / "float.npy", np.array([1.0, 2.5]))
    sub = {"{la}": work["la"], "{ragged}": str(tables / "ragged.tsv"), "{float}": str(tables / "float.npy")}
    argv = [sub.get(a, a) for a in argv] + ["--example", "-o", "x.h5"]
    rc, err = _main(argv, capsys, tmp_path)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kipoi-tanger: error: ") and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    assert os.listdir(tmp_path) == []


def test_python_run_bad_input(work, tmp_path):
    d = work["la"]
    kw = dict(dataloader_args=dl_args(d), verbose=False)
    with pytest.raises(RunError, match="^--end: ablate needs the shuffled window, e.g. --start 100 --end 120$"):
        run("ablate", d, str(tmp_path / "x.h5"), start=3, **kw)
    with pytest.raises(RunError, match="^--spacing: give the 1 gap between the 2 motifs"):
        run("space", d, str(tmp_path / "x.h5"), motifs=["GATA", "CAG"], **kw)
    with pytest.raises(RunError, match=r"--spacing: expected 1 gap between the 2 motifs per row, got 2 \(a table"):
        run("space", d, str(tmp_path / "x.h5"), motifs=["GATA", "CAG"], spacing=np.zeros((3, 2), int), **kw)
    with pytest.raises(RunError, match="--n: expected a positive integer, got 0"):
        run("ablate", d, str(tmp_path / "x.h5"), start=3, end=9, n=0, **kw)
    assert os.listdir(tmp_path) == []
    # a tensor or an array of integral floats is a table too
    out = str(tmp_path / "ok.h5")
    run("space", d, out, motifs=["GATA", "CAG"], spacing=torch.tensor([[1.0], [4.0]]), **kw)
    assert h5io.read_attrs(out)["parameters"]["spacing"] == [[1], [4]]
