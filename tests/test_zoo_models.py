"""Kipoi model dirs shaped like the real zoo's PyTorch models, with no tanger section (issue 11 §3, §4).

DeepSEA/variantEffects (Threshold ReLUs, ``(4, 1, L)``), DeepSEA/predict (reverse complement stacked
along the batch axis), DeepSEA/beluga (``alphabet: AGCT`` in the real kipoiseq ``SeqIntervalDl``'s
``default_args``) and Basset (``(4, L, 1)``), written by ``zoo_model_dirs.py``. Through the Python
``run()`` and the ``kipoi-tanger`` CLI: the alphabet, layout and length come from the dataloader's
arguments; predictions equal Kipoi's; attributions are complete within 1e-5 of the output scale, in
ACGT order, and equal to ``deep_lift_shap`` on the canonical sequences; marginalize inserts exactly
the motif asked for, in the model's own channel order; attributions that do not add up are refused
before anything is written, unless accepted on purpose; ``deeplift_rules`` declares what is missing.
"""
import os
import warnings

import h5py
import numpy as np
import pytest
import torch

import zoo_model_dirs as zm
from kipoi_model_dirs import run_cli
from kipoi_tanger.adapter import AdapterError, load, resolve_spec
from kipoi_tanger.adapter.errors import RunError
from kipoi_tanger.cli import format_info
from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.run import run
from kipoi_tanger.tools.export import export_modisco
from kipoi_tanger.tools.results import Results

NETS = ("deepsea", "deepsea_predict", "beluga", "basset")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo_models")
    return {name: zm.make_zoo_dir(root, name) for name in zm.SPECS}


def kipoi_net(d):
    """The torch module Kipoi itself loads for model dir ``d``."""
    import kipoi
    return kipoi.get_model(d, source="dir", with_dataloader=False).model.eval()


def read(path, *names):
    with h5py.File(path, "r") as f:
        return [f[n][:] for n in names]


def onehot(motif, alphabet):
    """(len(alphabet), len(motif)) one-hot of ``motif`` with channels in ``alphabet`` order."""
    return np.eye(len(alphabet), dtype=np.float32)[[alphabet.index(c) for c in motif]].T


# ---------------------------------------------------------------------------
# alphabet, layout and length from the dataloader


def test_alphabet_layout_and_length_come_from_the_dataloader(zoo):
    t = load(zoo["beluga"])
    s = t.spec
    assert (s.model_alphabet, s.alphabet, str(s.layout), s.length) == (tuple("AGCT"), tuple("ACGT"), "(A, 1, L)", 400)
    assert "alphabet='AGCT'" in s.provenance["alphabet"] and "default_dataloader: default_args" in s.provenance["alphabet"]
    assert "alphabet_axis=0, dummy_axis=1" in s.provenance["layout"] and "auto_resize_len=400" in s.provenance["length"]
    text = format_info(t.describe())
    assert "alphabet        AGCT (the model's one-hot order; ops and results files use ACGT)" in text
    assert "length          400" in text
    b = load(zoo["basset"])
    assert (str(b.spec.layout), b.spec.length, b.spec.model_alphabet) == ("(A, L, 1)", 200, tuple("ACGT"))
    assert "SeqIntervalDl's default" in b.spec.provenance["alphabet"]
    assert "outputs         preds\n" in format_info(b.describe())     # one unnamed output: Kipoi's 'preds'

    # --dataloader_args change the run's alphabet (and come back when not given)
    args = zm.dl_args(zoo["beluga"])
    w = t.wrap(canonical=True)                     # built before: follows the run's format too
    t.dataloader_args(dict(args, alphabet="ACGT"))
    assert t.spec.model_alphabet == tuple("ACGT") and "--dataloader_args" in t.spec.provenance["alphabet"]
    X = torch.eye(4)[None]                         # A, C, G, T at positions 0..3, plus a 396-bp tail of A
    X = torch.cat([X, torch.zeros(1, 4, 396)], dim=2)
    X[0, 0, 4:] = 1
    seen = []
    hook = t.module.register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        w(X)
    hook.remove()
    assert torch.equal(seen[0][0, :, 0, :4], torch.eye(4))     # ACGT now: channels as they come
    t.dataloader_args(args)
    assert t.spec.model_alphabet == tuple("AGCT")

    # conflicts between the dataloader, the schema and the section: one line each
    d = load(zoo["deepsea"])
    base = zm.dl_args(zoo["deepsea"])
    for extra, msg in (({"dummy_axis": 2}, r"^--dataloader_args: the dataloader yields one-hot sequences laid out "
                                           r"\(A, L, 1\) \(alphabet_axis=0 \(.*\); dummy_axis=2 \(--dataloader_args\)\), "
                                           r"but the schema shape of input 'seq' is \(4, 1, 200\)$"),
                       ({"auto_resize_len": 150}, r"^--dataloader_args: the dataloader yields sequences of length 150 "
                                                  r"\(auto_resize_len=150 \(--dataloader_args\)\), but the schema"),
                       ({"alphabet_axis": 0, "dummy_axis": 0}, r"^--dataloader_args: alphabet_axis and dummy_axis are "
                                                               r"both 0")):
        with pytest.raises(AdapterError, match=msg) as e:
            d.dataloader_args(dict(base, **extra))
        assert "\n" not in str(e.value)
    with pytest.raises(AdapterError, match=r"tanger: alphabet ACGT conflicts with the dataloader's one-hot order "
                                           r"AGCT \(alphabet='AGCT' \(.*model.yaml default_dataloader: default_args\)\)"):
        resolve_spec(t.kmodel.schema, {"alphabet": "ACGT"}, "model.yaml", loader=t.spec.loader)
    with pytest.raises(AdapterError, match=r"tanger: layout \(A, L\) conflicts with the dataloader's \(A, 1, L\)"):
        resolve_spec(t.kmodel.schema, {"layout": "(A, L)"}, "model.yaml", loader=t.spec.loader)


# ---------------------------------------------------------------------------
# predictions


def test_predictions_equal_kipoi(zoo, tmp_path):
    import kipoi
    for name in NETS:
        d = zoo[name]
        out = str(tmp_path / f"{name}.h5")
        run("predict", d, out, dataloader_args=zm.dl_args(d), batch_size=4, verbose=False)
        ours, = read(out, "preds")
        theirs = kipoi.get_model(d, source="dir").pipeline.predict(zm.dl_args(d), batch_size=4)
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
    # the real `kipoi predict` on the AGCT model
    d = zoo["beluga"]
    a = zm.dl_args(d)
    r = run_cli(["predict", d, "--source", "dir", "--batch_size", "4", "--dataloader_args",
                 f"intervals_file={a['intervals_file']}", f"fasta_file={a['fasta_file']}", "-o",
                 str(tmp_path / "kipoi.h5")], tmp_path, tmp_path / "home", exe="kipoi")
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_array_equal(read(str(tmp_path / "beluga.h5"), "preds")[0],
                                  read(str(tmp_path / "kipoi.h5"), "preds")[0])


# ---------------------------------------------------------------------------
# attributions


@pytest.mark.parametrize("name", NETS)
def test_attributions_are_complete_in_acgt_order(zoo, tmp_path, name):
    d = zoo[name]
    out = str(tmp_path / "a.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)          # no convergence warning either
        run("deeplift-shap", d, out, dataloader_args=zm.dl_args(d), n_shuffles=3, random_state=0, batch_size=4,
            keep_inputs=True, return_references=True, target=1, verbose=False)
    attr, refs, inputs, deltas = read(out, "attributions", "references", "inputs", "convergence_deltas")
    X = zm.to_acgt(inputs, name)
    R = torch.from_numpy(refs).float()
    # references are dinucleotide shuffles of the sequence in the same (ACGT) channel order
    assert torch.equal(R.sum(dim=3), X.sum(dim=2).unsqueeze(1).expand(-1, 3, -1))
    view = zm.ACGTView(kipoi_net(d), name)
    with torch.no_grad():
        fx = view(X)[:, 1]
        fr = view(R.flatten(0, 1)).reshape(len(X), 3, -1)[..., 1]
    scale = max(fx.abs().max().item(), fr.abs().max().item())
    diff = fx - fr.mean(dim=1)
    assert diff.abs().max().item() > 1e-3 * scale             # the completeness check has something to check
    gap = (torch.from_numpy(attr).sum(dim=(1, 2)) - diff).abs().max().item()
    assert gap <= 1e-5 * scale, (gap, scale)
    assert np.abs(deltas).max() <= 1e-5 * scale
    ours = deep_lift_shap(view, X, references=R, target=1, batch_size=4, device="cpu")
    err = np.abs(ours.numpy() - attr).max() / np.abs(attr).max()
    assert err <= 1e-5, err


def test_results_tools_read_inputs_in_the_files_channel_order(zoo, tmp_path):
    """Logos, the report and the modisco export see the sequences in the attributions' (ACGT) order."""
    d = zoo["beluga"]
    out = str(tmp_path / "b.h5")
    run("deeplift-shap", d, out, dataloader_args=zm.dl_args(d), n_shuffles=2, random_state=0, batch_size=4,
        keep_inputs=True, verbose=False)
    with h5py.File(out, "r+") as f:               # as the run records it (see the test below)
        f.attrs["model_alphabet"] = '["A", "G", "C", "T"]'
        inputs = f["inputs"][:]
    res = Results(out)
    assert res.alphabet == tuple("ACGT") and res.model_alphabet == tuple("AGCT")
    X = zm.to_acgt(inputs, "beluga").numpy()
    np.testing.assert_array_equal(res.sequences(), X)
    with pytest.warns(RuntimeWarning, match="not hypothetical"):
        ex = export_modisco(out, str(tmp_path / "m" / "run"))
    ohe = np.load(ex["ohe"])["arr_0"]
    shap = np.load(ex["shap"])["arr_0"]
    np.testing.assert_array_equal(ohe, X)
    assert np.all(shap[ohe == 0] == 0) and np.any(shap[ohe == 1] != 0)    # projected on the observed bases


def test_files_record_the_models_alphabet(zoo, tmp_path):
    d = zoo["beluga"]
    out = str(tmp_path / "p.h5")
    run("predict", d, out, dataloader_args=zm.dl_args(d), batch_size=4, keep_inputs=True, verbose=False)
    res = Results(out)
    assert (res.alphabet, res.model_alphabet) == (tuple("ACGT"), tuple("AGCT"))
    np.testing.assert_array_equal(res.sequences(), zm.to_acgt(read(out, "inputs")[0], "beluga").numpy())


# ---------------------------------------------------------------------------
# marginalize


@pytest.mark.parametrize("name, extra", [("beluga", {}), ("deepsea", {"alphabet": "AGCT"})])
def test_marginalize_inserts_the_motif_asked_for(zoo, tmp_path, name, extra):
    """GATAAG reaches the model as GATAAG in its own channel order: the loader's (beluga's AGCT), or
    the one a run's --dataloader_args set."""
    d = zoo[name]
    t = load(d)
    seen = []
    hook = t.module.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()))
    out, start = str(tmp_path / "m.h5"), 50
    try:
        run("marginalize", t, out, dataloader_args=dict(zm.dl_args(d), **extra), motif="GATAAG", start=start,
            batch_size=4, keep_inputs=True, verbose=False)
    finally:
        hook.remove()
    model_alphabet = extra.get("alphabet", zm.MODEL_ALPHABET.get(name, "ACGT"))
    assert t.spec.model_alphabet == tuple(model_alphabet)
    before, after, inputs = read(out, "y_before", "y_after", "inputs")
    motif = onehot("GATAAG", model_alphabet)
    # the model saw exactly the motif, in its channel order, in every "after" row
    inserted = [x for x in seen if np.array_equal(x[:, :, 0, start:start + 6].numpy(), np.broadcast_to(motif, (len(x),) + motif.shape))]
    assert sum(len(x) for x in inserted) == len(inputs)
    # and the effect is the model's on the sequences with the motif written in by hand
    x = inputs.copy()
    x[:, :, 0, start:start + 6] = motif
    net = kipoi_net(d)
    with torch.no_grad():
        want_after = net(torch.from_numpy(x)).numpy()
        want_before = net(torch.from_numpy(inputs)).numpy()
    np.testing.assert_allclose(after, want_after, rtol=0, atol=1e-6)
    np.testing.assert_allclose(before, want_before, rtol=0, atol=1e-6)
    assert np.abs(after - before).max() > 1e-4


# ---------------------------------------------------------------------------
# refusals, the accept flag and declared rules


def test_cli_refuses_a_functional_relu_before_writing(zoo, tmp_path, capsys):
    """kipoi-tanger's own entry point (in this process: the subprocess plumbing is test_cli's)."""
    from kipoi_tanger.cli import main
    d = zoo["functional_relu"]
    a = zm.dl_args(d)
    out = tmp_path / "out" / "x.h5"
    rc = main(["deeplift-shap", d, "--dataloader_args", f"intervals_file={a['intervals_file']}",
               f"fasta_file={a['fasta_file']}", "--n_shuffles", "2", "-q", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kipoi-tanger: error: deep_lift_shap: module")
    assert "computes torch.relu, which is nonlinear" in lines[0] and "postprocessing: tanger: deeplift_rules" in lines[0]
    assert not (tmp_path / "out").exists()


def test_declared_rules_and_the_accept_flag(zoo, tmp_path):
    d = zoo["custom_act"]
    args = zm.dl_args(d)
    kw = dict(dataloader_args=args, n_shuffles=3, random_state=0, batch_size=4, verbose=False)
    out = str(tmp_path / "c.h5")
    # MyAct has no rule: refused by name, nothing written
    with pytest.raises(AdapterError, match=r"\(model_architecture\.MyAct\) computes torch\.sigmoid.*"
                                           r"postprocessing: tanger: deeplift_rules"):
        run("deeplift-shap", d, out, **kw)
    # declared as the elementwise nonlinearity it is: complete, and equal to deep_lift_shap given that rule
    zm.set_rules(d, {"model_architecture.MyAct": "rescale"})
    try:
        run("deeplift-shap", d, out, keep_inputs=True, return_references=True, **kw)
        attr, refs, inputs = read(out, "attributions", "references", "inputs")
        net = kipoi_net(d)
        view, X, R = zm.ACGTView(net, "custom_act"), zm.to_acgt(inputs, "custom_act"), torch.from_numpy(refs).float()
        with torch.no_grad():
            fx, fr = view(X)[:, 0], view(R.flatten(0, 1)).reshape(len(X), 3, -1)[..., 0]
        scale = max(fx.abs().max().item(), fr.abs().max().item())
        gap = (torch.from_numpy(attr).sum(dim=(1, 2)) - (fx - fr.mean(1))).abs().max().item()
        assert gap <= 1e-5 * scale, (gap, scale)
        ours = deep_lift_shap(view, X, references=R, batch_size=4, device="cpu",
                              additional_nonlinear_ops={type(net[1]): "rescale"})
        assert np.abs(ours.numpy() - attr).max() <= 1e-5 * np.abs(attr).max()
        # the Python bridge hands the declared rules to deep_lift_shap as they are
        import kipoi_tanger
        m = kipoi_tanger.load_model(d)
        assert [c.__name__ for c in m.deeplift_rules] == ["MyAct"]
        py = deep_lift_shap(m.explained(), X, references=R, batch_size=4, device="cpu",
                            additional_nonlinear_ops=m.deeplift_rules)
        assert np.abs(py.numpy() - attr).max() <= 1e-5 * np.abs(attr).max()

        # declared linear (wrong): the first batch does not add up, so nothing is written ...
        zm.set_rules(d, {"model_architecture.MyAct": "linear"})
        bad = str(tmp_path / "bad.h5")
        with pytest.raises(RunError, match=r"do not add up on the first batch.*suspects: modules treated as linear "
                                           r"or given a user rule: '.*' \(model_architecture\.MyAct, declared linear\); "
                                           r"nothing written: pass --accept_large_deltas"):
            run("deeplift-shap", d, bad, **kw)
        assert not os.path.exists(bad) and not os.path.exists(bad + ".partial")
        with pytest.raises(RunError, match="do not add up on the first batch"):    # nested in marginalize too
            run("marginalize", d, bad, motif="GATA", inner_op="deeplift-shap", **kw)
        assert not os.path.exists(bad) and not os.path.exists(bad + ".partial")
        # ... unless accepted on purpose, which the file records
        with pytest.warns(RuntimeWarning, match="convergence deltas"):      # deep_lift_shap's own warning
            run("deeplift-shap", d, bad, accept_large_deltas=True, **kw)
        from kipoi_tanger.run import h5io
        assert h5io.read_attrs(bad)["parameters"]["accept_large_deltas"] is True
        assert np.abs(read(bad, "convergence_deltas")[0]).max() > 1e-3
    finally:
        zm.set_rules(d, None)



def test_load_sequences_reads_inputs_in_the_files_channel_order(zoo, tmp_path):
    """run.h5io.load_sequences maps an AGCT model's kept inputs to the file's ACGT order."""
    from kipoi_tanger.run import h5io
    d = zoo["beluga"]
    out = str(tmp_path / "p.h5")
    run("predict", d, out, dataloader_args=zm.dl_args(d), batch_size=4, keep_inputs=True, verbose=False)
    np.testing.assert_array_equal(h5io.load_sequences(out).numpy(),
                                  zm.to_acgt(read(out, "inputs")[0], "beluga").numpy())
