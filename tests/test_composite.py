"""Composite models (seed 004): stitched, merged dataloader, per-environment predictions.

Every scenario's prediction is checked against the same graph computed by
hand from the sub-models m1..m4 (each loaded as its own Kipoi model), and the
merged dataloader's alignment checks and plan errors are exercised.
"""
import json
import os
import shutil
import sys

import h5py
import numpy as np
import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMP = os.path.join(REPO, "example_models", "composite")
EX = os.path.join(COMP, "example_files")
DATA = os.path.join(COMP, "data")
sys.path.insert(0, COMP)
import nets  # noqa: E402
from floatcmp import assert_close  # noqa: E402

EXAMPLE = {"features1_file": os.path.join(EX, "features1.tsv"),
           "features2_file": os.path.join(EX, "features2.tsv")}
MODEL_DIRS = ("m1", "m2", "m3", "m4", "m12", "stitched", "merged", "from_predictions")


@pytest.fixture(scope="module")
def kipoi_models():
    import kipoi
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = kipoi.get_model(os.path.join(COMP, name), source="dir")
        return cache[name]
    return get


def table(name):
    from dataloaders.features_table.dataloader import FeaturesTable
    t = FeaturesTable(os.path.join(EX, name) if not os.path.isabs(name) else name)
    return list(t.ids), t.x


def by_hand(get, x1, x2):
    """The seed's graph evaluated with the four sub-models, one Kipoi model each."""
    m1 = get("m1").predict_on_batch(x1)
    model2 = get("m2").predict_on_batch(np.concatenate([m1, x1], axis=1))
    model3 = get("m3").predict_on_batch(x2)
    return model2, model3, get("m4").predict_on_batch(np.concatenate([model2, model3], axis=1))


def ensemble_by_hand(model2, model3):
    sd = torch.load(os.path.join(COMP, "merged", "weights.pth"), weights_only=True)
    w, b = sd["m4.dense.weight"].numpy(), sd["m4.dense.bias"].numpy()
    return np.concatenate([model2, model3], axis=1) @ w.T + b


def collect(batches):
    from kipoi_utils.data_utils import numpy_collate_concat
    return numpy_collate_concat(list(batches))


# ---------------------------------------------------------------------------
# scenario 1: stitched


def test_stitched_weights_are_the_submodels_weights(kipoi_models):
    stitched = kipoi_models("stitched").model
    for name in nets.SHAPES:
        sub = kipoi_models(name).model
        for k, v in sub.state_dict().items():
            assert torch.equal(getattr(stitched, name).state_dict()[k], v), (name, k)


def test_stitched_equals_submodels_by_hand(kipoi_models):
    ids1, x1 = table("features1.tsv")
    ids2, x2 = table("features2.tsv")
    assert ids1 == ids2
    *_, expected = by_hand(kipoi_models, x1, x2)
    m = kipoi_models("stitched")
    dl = m.default_dataloader(**EXAMPLE)
    batches = list(dl.batch_iter(batch_size=5))
    got = np.concatenate([m.predict_on_batch(b["inputs"]) for b in batches])
    assert_close(got, expected)
    b = collect(batches)
    np.testing.assert_array_equal(b["inputs"]["input1"], x1)
    np.testing.assert_array_equal(b["inputs"]["input2"], x2)
    assert list(b["metadata"]["id"]) == ids1 and "targets" not in b


def test_stitched_with_kipoi_tanger_predict(tmp_path, kipoi_models):
    from kipoi_tanger.run import run
    out = str(tmp_path / "s.h5")
    run("predict", os.path.join(COMP, "stitched"), [out], dataloader_args=EXAMPLE, keep_metadata=True,
        batch_size=4, device="cpu", verbose=False)
    *_, expected = by_hand(kipoi_models, table("features1.tsv")[1], table("features2.tsv")[1])
    with h5py.File(out) as f:
        assert_close(f["preds"][:], expected)
        assert [i.decode() for i in f["metadata/id"][:]] == table("features1.tsv")[0]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_freeze_submodels_then_a_training_step_leaves_them_unchanged(kipoi_models, optimizer):
    net = nets.Stitched()
    net.load_state_dict(kipoi_models("stitched").model.state_dict())
    frozen = nets.freeze(net, ["m1", "m3"])
    assert frozen == ["m1.dense.weight", "m1.dense.bias", "m3.dense.weight", "m3.dense.bias"]
    Dl = kipoi_models("stitched").default_dataloader
    b = next(Dl(targets_file=os.path.join(EX, "labels.tsv"), **EXAMPLE).batch_iter(batch_size=12))
    assert b["targets"].shape == (12, 1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1) if optimizer == "sgd" else torch.optim.Adam(params, lr=0.1)
    net.train()
    loss = torch.nn.functional.mse_loss(net(**{k: torch.from_numpy(v) for k, v in b["inputs"].items()}),
                                        torch.from_numpy(b["targets"]))
    loss.backward()
    opt.step()
    for k, v in net.state_dict().items():
        changed = not torch.equal(v, before[k])
        assert changed == (k.split(".")[0] in ("m2", "m4")), k
    nets.freeze(net, "m1", frozen=False)
    assert all(p.requires_grad for p in net.m1.parameters())
    assert not any(p.requires_grad for p in net.m3.parameters())
    with pytest.raises(ValueError, match="names: Stitched has no sub-model 'm9'"):
        nets.freeze(net, ["m9"])


def test_finetune_script_keeps_frozen_submodels(tmp_path, kipoi_models):
    sys.path.insert(0, os.path.join(COMP, "stitched"))
    import finetune
    log = finetune.main(["--freeze", "m1", "m3", "--epochs", "1", "--out", str(tmp_path)])
    assert log["frozen"][0] == "m1.dense.weight"
    new = torch.load(tmp_path / "weights.pth", weights_only=True)
    old = kipoi_models("stitched").model.state_dict()
    for k, v in new.items():
        assert torch.equal(v, old[k]) == (k.split(".")[0] in ("m1", "m3")), k


def test_load_submodels_names_unknown_children():
    with pytest.raises(ValueError, match="weights: Chain12 has no sub-model 'm3'"):
        nets.load_submodels(nets.Chain12(), {"m3": {}})


# ---------------------------------------------------------------------------
# scenario 2: merged dataloader


def test_merged_equals_submodels_by_hand(kipoi_models):
    ids, x1 = table("features1.tsv")
    model2, model3, _ = by_hand(kipoi_models, x1, table("features2.tsv")[1])
    m = kipoi_models("merged")
    dl = m.default_dataloader(targets_file=os.path.join(EX, "labels.tsv"), **EXAMPLE)
    b = collect(dl.batch_iter(batch_size=5))
    assert_close(b["inputs"]["model2"], model2)
    assert_close(b["inputs"]["model3"], model3)
    np.testing.assert_array_equal(b["targets"], table("labels.tsv")[1])
    assert list(b["metadata"]["id"]) == ids
    got = m.predict_on_batch(b["inputs"])
    assert_close(got, ensemble_by_hand(model2, model3))


def test_merged_rows_do_not_depend_on_batching(kipoi_models):
    Dl = kipoi_models("merged").default_dataloader
    dl = Dl(**EXAMPLE)
    whole = collect(dl.batch_iter(batch_size=32))
    for bs in (1, 5, 7):
        part = collect(dl.batch_iter(batch_size=bs))
        for k in ("model2", "model3"):
            np.testing.assert_array_equal(part["inputs"][k], whole["inputs"][k])
    from kipoi_utils.data_utils import numpy_collate
    samples = numpy_collate([dl[i] for i in range(len(dl))])
    np.testing.assert_array_equal(samples["inputs"]["model2"], whole["inputs"]["model2"])
    assert list(samples["metadata"]["id"]) == list(whole["metadata"]["id"])
    # blocks of 5 rows straddle batches of 4: the same values, computed in other calls
    small = collect(Dl(block_size="5", **EXAMPLE).batch_iter(batch_size=4))
    assert_close(small["inputs"]["model3"], whole["inputs"]["model3"])
    assert list(small["metadata"]["id"]) == list(whole["metadata"]["id"])


def test_merged_shuffled_batches_cover_every_region_once(kipoi_models):
    dl = kipoi_models("merged").default_dataloader(targets_file=os.path.join(EX, "labels.tsv"), **EXAMPLE)
    whole = collect(dl.batch_iter(batch_size=32))
    np.random.seed(3)
    shuffled = collect(dl.batch_iter(batch_size=5, shuffle=True))
    order = [list(whole["metadata"]["id"]).index(i) for i in shuffled["metadata"]["id"]]
    assert sorted(order) == list(range(12)) and order != list(range(12))
    assert_close(shuffled["inputs"]["model2"], whole["inputs"]["model2"][order])
    np.testing.assert_array_equal(shuffled["targets"], whole["targets"][order])


def test_merged_with_kipoi_tanger_predict_and_shards(tmp_path, kipoi_models):
    from kipoi_tanger.run import merge, run
    model = os.path.join(COMP, "merged")
    single = str(tmp_path / "single.h5")
    run("predict", model, [single], dataloader_args=EXAMPLE, keep_metadata=True, batch_size=3,
        device="cpu", verbose=False)
    shards = []
    for i in (1, 2, 3):
        shards.append(str(tmp_path / f"s{i}.h5"))
        run("predict", model, [shards[-1]], dataloader_args=EXAMPLE, keep_metadata=True, batch_size=3,
            shard=(i, 3), device="cpu", verbose=False)
    merge(shards, str(tmp_path / "merged.h5"))
    model2, model3, _ = by_hand(kipoi_models, table("features1.tsv")[1], table("features2.tsv")[1])
    with h5py.File(single) as a, h5py.File(tmp_path / "merged.h5") as b:
        assert_close(a["preds"][:], ensemble_by_hand(model2, model3))
        np.testing.assert_array_equal(a["preds"][:], b["preds"][:])
        np.testing.assert_array_equal(a["metadata/id"][:], b["metadata/id"][:])


def write_table(path, ids, x):
    with open(path, "w") as fh:
        fh.write("id\t" + "\t".join(f"c{i}" for i in range(x.shape[1])) + "\n")
        for i, row in zip(ids, x):
            fh.write(i + "\t" + "\t".join(repr(float(v)) for v in row) + "\n")
    return str(path)


def test_misaligned_sub_dataloaders_name_both_models_and_ids(tmp_path, kipoi_models):
    ids, x2 = table("features2.tsv")
    swapped = ids[:]
    swapped[4], swapped[5] = swapped[5], swapped[4]
    bad = write_table(tmp_path / "f2.tsv", swapped, x2)
    Dl = kipoi_models("merged").default_dataloader
    dl = Dl(features1_file=EXAMPLE["features1_file"], features2_file=bad)
    with pytest.raises(ValueError) as e:
        list(dl.batch_iter(batch_size=32))
    msg = str(e.value)
    assert "regions disagree at row 4" in msg and "'dl1'" in msg and "'dl3'" in msg
    assert "model ../m1" in msg and "model ../m3" in msg and "'r04'" in msg and "'r05'" in msg
    assert "\n" not in msg
    with pytest.raises(ValueError, match="regions disagree at row 4"):
        dl[4]
    # the rows before the first bad block are fine
    assert Dl(features1_file=EXAMPLE["features1_file"], features2_file=bad, block_size="4")[3]["metadata"]["id"] == "r03"


def test_sub_dataloaders_of_different_lengths(tmp_path, kipoi_models):
    ids, x2 = table("features2.tsv")
    short = write_table(tmp_path / "f2.tsv", ids[:10], x2[:10])
    Dl = kipoi_models("merged").default_dataloader
    with pytest.raises(ValueError, match=r"'dl3' \(the default dataloader of model \.\./m3\) has 10 regions but "
                                         r"'dl1' \(the default dataloader of model \.\./m1\) has 12; regions differ "
                                         r"from row 10 \(id 'r10' only in 'dl1'\)"):
        Dl(features1_file=EXAMPLE["features1_file"], features2_file=short)


def test_misaligned_targets_file(tmp_path, kipoi_models):
    ids, y = table("labels.tsv")
    bad = write_table(tmp_path / "labels.tsv", ids[::-1], y)
    dl = kipoi_models("merged").default_dataloader(targets_file=bad, **EXAMPLE)
    with pytest.raises(ValueError, match=r"row 0: 'dl1' .* has id 'r00' but 'labels' \(dataloader "
                                         r"\.\./\.\./\.\./dataloaders/features_table\) has 'r11'"):
        next(dl.batch_iter())


@pytest.fixture
def plan(tmp_path):
    def write(**over):
        p = {"dataloaders": {"dl1": {"model": os.path.join(COMP, "m1"),
                                     "args": {"features_file": EXAMPLE["features1_file"]}}},
             "models": {"model1": {"model": os.path.join(COMP, "m1"), "input": "dl1"}},
             "inputs": ["model1"]}
        p.update(over)
        path = tmp_path / "plan.yaml"
        path.write_text(json.dumps(p))
        return str(path)
    return write


def test_plan_with_dict_inputs_paths_and_relative_args(tmp_path, kipoi_models):
    from dataloaders.merged.dataloader import MergedDataloader
    shutil.copy(EXAMPLE["features1_file"], tmp_path / "f1.tsv")
    p = tmp_path / "plan.yaml"
    p.write_text(
        "dataloaders:\n"
        f"  a: {{model: {os.path.relpath(os.path.join(COMP, 'm1'), tmp_path)}, args: {{features_file: f1.tsv}}}}\n"
        "models:\n"
        f"  one: {{model: {os.path.join(COMP, 'm1')}, input: a/inputs}}\n"
        "inputs: {x: one, raw: a, id: a/metadata/id}\n")
    b = MergedDataloader(str(p)).load_batch(np.arange(12))
    x1 = table("features1.tsv")[1]
    assert_close(b["inputs"]["x"], kipoi_models("m1").predict_on_batch(x1))
    np.testing.assert_array_equal(b["inputs"]["raw"], x1)
    assert list(b["inputs"]["id"]) == table("features1.tsv")[0]


@pytest.mark.parametrize("over, kwargs, match", [
    ({}, {"nope": 1}, r"unknown argument 'nope'; the plan's args are none"),
    ({"args": {"f": "dl9.features_file"}}, {"f": "x"}, r"args: f: 'dl9.features_file' is not 'dataloader.kwarg'"),
    ({"dataloaders": {"dl1": {"model": os.path.join(COMP, "m1")}}}, {},
     r"dataloader 'dl1' \(the default dataloader of model .*m1\) needs features_file; pass it"),
    ({"dataloaders": {"dl1": {"model": os.path.join(COMP, "m1"), "args": {"features_fil": "x"}}}}, {},
     r"dataloader 'dl1' .* unknown argument 'features_fil'; it takes features_file, columns"),
    ({"models": {"model1": {"model": os.path.join(COMP, "m1"), "input": "dl2"}}}, {},
     r"models: model1: input: 'dl2' is neither a dataloader nor an earlier model; known: dl1"),
    ({"inputs": ["model9"]}, {}, r"inputs.model9: 'model9' is neither a dataloader nor an earlier model; known: dl1, model1"),
    ({"dataloaders": {"dl1": {"model": "/no/such/dir"}}}, {}, r"model /no/such/dir: no such directory"),
    ({"dataloaders": {"dl1": {"model": "x", "dataloader": "y"}}}, {}, r"give exactly one of 'model'"),
    ({"extra": 1}, {}, r"unknown key 'extra'"),
    ({"metadata": "model1"}, {}, r"metadata: 'model1' is not a loaded dataloader"),
    ({}, {"dataloader_args": {"dl7": {}}}, r"dataloader_args: 'dl7' is not a dataloader of the plan"),
    ({}, {"block_size": "0"}, r"block_size: expected a positive integer"),
])
def test_plan_errors_are_one_clear_line(plan, over, kwargs, match):
    from dataloaders.merged.dataloader import MergedDataloader
    with pytest.raises(ValueError, match=match) as e:
        MergedDataloader(plan(**over), **kwargs)
    assert "\n" not in str(e.value)


def test_bad_refs_fail_at_the_first_batch(plan):
    from dataloaders.merged.dataloader import MergedDataloader
    dl = MergedDataloader(plan(inputs={"a": "model1/x"}))
    with pytest.raises(ValueError, match=r"'model1/x': no 'x' in model1 \(it has no parts: it is an array\)"):
        dl[0]
    # a dataloader without targets gives its inputs as targets (a labels table)
    b = MergedDataloader(plan(targets="dl1")).load_batch([0, 1])
    np.testing.assert_array_equal(b["targets"], table("features1.tsv")[1][:2])
    dl = MergedDataloader(plan(targets="dl1/targets"))
    with pytest.raises(ValueError, match=r"dataloader 'dl1' .* yields no targets"):
        dl[0]
    dl = MergedDataloader(plan(models={"model1": {"model": os.path.join(COMP, "m2"), "input": "dl1"}}))
    with pytest.raises(ValueError, match=r"model 'model1' \(model .*m2\) failed on its input \(12, 3\)"):
        dl.load_batch(np.arange(12))


def test_training_script_reduces_the_loss_and_shipped_weights_are_trained(tmp_path, kipoi_models):
    sys.path.insert(0, os.path.join(COMP, "merged"))
    import train
    log = train.main(["--epochs", "2", "--out", str(tmp_path)])
    assert log["valid_mse"][-1] < log["valid_mse_init"] / 2
    sd = torch.load(tmp_path / "weights.pth", weights_only=True)
    nets.Ensemble().load_state_dict(sd)
    # the shipped weights: validation MSE near the label noise (sd 0.05)
    dl = kipoi_models("merged").default_dataloader(
        features1_file=os.path.join(DATA, "valid_features1.tsv"),
        features2_file=os.path.join(DATA, "valid_features2.tsv"),
        targets_file=os.path.join(DATA, "valid_labels.tsv"))
    b = collect(dl.batch_iter(batch_size=128))
    mse = float(((kipoi_models("merged").predict_on_batch(b["inputs"]) - b["targets"]) ** 2).mean())
    assert mse < 3 * 0.05 ** 2
    shipped = json.load(open(os.path.join(COMP, "merged", "train_log.json")))
    assert abs(shipped["valid_mse"][-1] - mse) < 1e-5


# ---------------------------------------------------------------------------
# scenario 3: predictions stored per model, ensembled from HDF5


def test_from_predictions_equals_submodels_by_hand(tmp_path, kipoi_models):
    from kipoi_tanger.run import run
    files = {}
    for name, model, table_file in (("model2", "m12", "features1.tsv"), ("model3", "m3", "features2.tsv")):
        files[name] = str(tmp_path / f"{model}.h5")
        run("predict", os.path.join(COMP, model), [files[name]], keep_metadata=True, device="cpu",
            dataloader_args={"features_file": os.path.join(EX, table_file)}, verbose=False)
    out = str(tmp_path / "final.h5")
    run("predict", os.path.join(COMP, "from_predictions"), [out], dataloader_args={"files": files},
        keep_metadata=True, device="cpu", verbose=False)
    model2, model3, _ = by_hand(kipoi_models, table("features1.tsv")[1], table("features2.tsv")[1])
    with h5py.File(files["model2"]) as f:
        assert_close(f["preds"][:], model2)
    with h5py.File(out) as f:
        assert_close(f["preds"][:], ensemble_by_hand(model2, model3))
        assert [i.decode() for i in f["metadata/id"][:]] == table("features1.tsv")[0]
    with open(os.path.join(COMP, "merged", "weights.pth"), "rb") as a, \
            open(os.path.join(COMP, "from_predictions", "weights.pth"), "rb") as b:
        assert a.read() == b.read()


def test_from_predictions_missing_file_is_a_clear_error(tmp_path):
    from kipoi_tanger.adapter import AdapterError
    from kipoi_tanger.run import run
    files = {"model2": os.path.join(COMP, "from_predictions", "example_files", "model2.h5"),
             "model3": str(tmp_path / "m3.h5")}
    with pytest.raises(AdapterError, match=r"files .*m3\.h5: file not found"):
        run("predict", os.path.join(COMP, "from_predictions"), [str(tmp_path / "o.h5")],
            dataloader_args={"files": files}, device="cpu", verbose=False)


# ---------------------------------------------------------------------------
# every zoo dir passes `kipoi test DIR --source dir` from the repository root


@pytest.mark.parametrize("name", MODEL_DIRS)
def test_kipoi_test_passes(name, monkeypatch, caplog):
    """In process (a subprocess per dir costs ~5 s of imports): a mismatch exits 1."""
    import logging
    from kipoi.cli.main import cli_test
    monkeypatch.chdir(REPO)
    caplog.set_level(logging.INFO, logger="kipoi")
    cli_test("test", [os.path.join("example_models", "composite", name), "--source", "dir"])
    assert "All predictions match" in caplog.text
    assert "is not listed in the dependencies" not in caplog.text
