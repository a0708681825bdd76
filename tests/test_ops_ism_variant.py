"""kipoi_tanger.ops.ism / ops.variant_effect: `kipoi-tanger ism` and `kipoi-tanger variant-effect`
over Kipoi models (issue 13 §2).

Oracles: the Python ops (saturation_mutagenesis on the sequences the dataloader gave; VariantScorer
on variant_windows of the same VCF and FASTA), windows computed by hand from the genome string,
the VCF read back with cyvcf2 (and bcftools where installed). Shards + merge and resume give the
single run's files byte for byte. Bad input is one line, exit 2, nothing written.
"""
import json
import logging
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
import yaml

from h5compare import file_bytes_equal
from kipoi_model_dirs import REPO, dl_args, make_model_dir, run_cli
from kipoi_tanger import cli
from kipoi_tanger.adapter.target import load
from kipoi_tanger.ops.base import Op, OpError
from kipoi_tanger.run import h5io, merge, run
from kipoi_tanger.saturation_mutagenesis import saturation_mutagenesis
from kipoi_tanger.variants import VariantScorer, batches, read_vcf, variant_windows

BASSET = os.path.join(REPO, "example_models", "basset_like")
MOTIF_CNN = os.path.join(REPO, "example_models", "motif_cnn")
L_BASSET = 200


# -- inputs ----------------------------------------------------------------------------------------

def _genome(seed=1):
    rs = np.random.RandomState(seed)
    return {"chr1": "".join(rs.choice(list("ACGT"), 3000)), "chr2": "".join(rs.choice(list("ACGT"), 2000))}


def _other(b):
    return "ACGT"[("ACGT".index(b) + 1) % 4]


def write_variants(d, G):
    """A FASTA and a VCF with every kind of record: SNVs, a multi-allelic site, an MNV, an insertion, a
    deletion, and every bad kind (REF mismatch, missing chromosome, <DEL>, off either chromosome end)."""
    with open(os.path.join(d, "g.fa"), "w") as fh:
        for c, s in G.items():
            fh.write(f">{c}\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n")

    def b(c, p, n=1):
        return G[c][p - 1:p - 1 + n]
    rows = [
        ("chr1", 500, "snv1", b("chr1", 500), _other(b("chr1", 500))),                        # line 5
        ("chr1", 700, "multi", b("chr1", 700), ",".join(x for x in "ACGT" if x != b("chr1", 700))),
        ("chr1", 900, "mnv", b("chr1", 900, 3), "".join(_other(x) for x in b("chr1", 900, 3))),
        ("chr1", 1100, "ins", b("chr1", 1100), b("chr1", 1100) + "GATTA"),
        ("chr1", 1300, "del", b("chr1", 1300, 4), b("chr1", 1300)),
        ("chr1", 1500, "badref", _other(b("chr1", 1500)), b("chr1", 1500)),                   # line 10
        ("chr9", 100, "nochr", "A", "C"),
        ("chr1", 1700, "sym", b("chr1", 1700), "<DEL>"),
        ("chr1", 20, "edge", b("chr1", 20), _other(b("chr1", 20))),
        ("chr2", 1990, "end", b("chr2", 1990), _other(b("chr2", 1990))),
        ("chr2", 1000, "snv2", b("chr2", 1000), _other(b("chr2", 1000))),                     # line 15
    ]
    with open(os.path.join(d, "v.vcf"), "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=3000>\n##contig=<ID=chr2,length=2000>\n"
                 "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for c, p, i, r, a in rows:
            fh.write(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\n")
    return os.path.join(d, "v.vcf"), os.path.join(d, "g.fa")


def hand_windows(G, chrom, pos, ref, alt, L):
    """Reference and alternative windows of one allele, as the module docstring of variants.windows
    describes them: trimmed alleles, the longer one starting at L // 2 - max(r, a) // 2, deletions
    filled from the right, insertions cut on the right."""
    k = 0
    while k < min(len(ref), len(alt)) and ref[k] == alt[k]:
        k += 1
    r_, a_, p0 = ref[k:], alt[k:], pos - 1 + k
    r, a = len(r_), len(a_)
    c = L // 2 - max(r, a) // 2
    s = p0 - c
    g = G[chrom]
    return s, g[s:s + L], (g[s:s + c] + a_ + g[s + c + r:s + L + r])[:L]


def decode(onehot):
    return "".join("ACGT"[int(i)] for i in np.argmax(onehot, axis=0))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("ism_variant")
    G = _genome()
    vcf, fa = write_variants(str(root), G)
    # a torch model with a profile and a counts output, a declared reduction and every op (no ops key)
    prof = make_model_dir(root, "iv_prof", arch="ProfileNet", layout="AL", n_regions=12, L=60,
                          targets=[{"name": "profile", "shape": "(1, 60)", "doc": "profile"},
                                   {"name": "counts", "shape": "(1,)", "doc": "counts"}],
                          tanger={"sequence_input": "seq", "layout": "(A, L)", "output": "counts",
                                  "reduce": {"op": "sum", "axis": -1}})
    la = make_model_dir(root, "iv_la", arch="TinyCNN", layout="LA", n_regions=6, L=200)
    # motif_cnn with ism and variant-effect declared (the zoo's section lists predict, deeplift-shap,
    # marginalize); its dataloader.yaml loads ../../dataloaders/interval_onehot, so keep that depth
    mc = root / "zoo" / "example_models" / "motif_cnn"
    shutil.copytree(MOTIF_CNN, mc, ignore=shutil.ignore_patterns("test.expect.h5", "__pycache__"))
    os.symlink(os.path.join(REPO, "dataloaders"), root / "zoo" / "dataloaders")
    with open(mc / "model.yaml") as fh:
        m = yaml.safe_load(fh)
    m["postprocessing"]["tanger"]["ops"] = ["predict", "ism", "variant-effect"]
    m.pop("test", None)
    with open(mc / "model.yaml", "w") as fh:
        yaml.safe_dump(m, fh, sort_keys=False)
    with open(mc / "example_files" / "regions.bed") as fh:
        rows = fh.readlines()[:4]
    with open(mc / "example_files" / "regions.bed", "w") as fh:
        fh.writelines(rows)
    return {"root": root, "G": G, "vcf": vcf, "fa": fa, "prof": prof, "la": la, "mc": str(mc),
            "basset": load(BASSET)}


def _main(argv, capsys):
    rc = cli.main(argv)
    return rc, capsys.readouterr().err


# -- ism ---------------------------------------------------------------------------------------------

def test_ism_run_and_cli_equal_the_python_op(work, tmp_path, capsys):
    """basset_like ((4, L, 1) layout, no tanger section): run() and the CLI equal saturation_mutagenesis
    on the dataloader's sequences; axes and window recorded; identity edits are y0."""
    import kipoi_tanger
    out = str(tmp_path / "ism.h5")
    res = run("ism", work["basset"], out, example=True, window="90:110", batch_size=4, verbose=False)
    assert res.n_regions == 10
    got = h5io.load(out)
    m = kipoi_tanger.load_model(BASSET)
    X, _ = m.inputs()
    want = saturation_mutagenesis(m.model, X, start=90, end=110, raw_outputs=True, fast=False)
    assert got["ism"].shape == (10, 4, 20, 3) and got["y0"].shape == (10, 3)
    np.testing.assert_allclose(got["y0"], want.y0.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["ism"], want.y_hat.numpy(), rtol=1e-5, atol=1e-6)
    base = X[:, :, 90:110].argmax(dim=1).numpy()
    n, p = np.meshgrid(np.arange(10), np.arange(20), indexing="ij")
    assert np.array_equal(got["ism"][n, base, p], np.broadcast_to(got["y0"][:, None], (10, 20, 3)))
    a = h5io.read_attrs(out)
    assert (a["op"], a["ism_start"], a["ism_end"], a["ism_axes"]) == ("ism", 90, 110, "region, base, position, "
                                                                      "output axes")
    assert a["parameters"]["start"] == 90 and a["parameters"]["end"] == 110 and a["alphabet"] == list("ACGT")
    cli_out = str(tmp_path / "cli.h5")
    rc, err = _main(["ism", BASSET, "--example", "--window", "90:110", "--batch_size", "4", "-o", cli_out, "-q"],
                    capsys)
    assert rc == 0, err
    assert file_bytes_equal(out, cli_out)
    rc, err = _main(["ism", BASSET, "--example", "--window", "110:90", "-o", str(tmp_path / "bad.h5")], capsys)
    assert rc == 2 and err.strip() == ("kipoi-tanger: error: --window: 110:90 is not a window of sequences of length "
                                       "200; expected START:END with 0 <= START < END <= 200 (0-based, END exclusive)")
    for bad, msg in (("5-9", "--window: expected START:END"), ("0:201", "--window: 0:201 is not a window")):
        with pytest.raises(OpError, match=msg):
            run("ism", work["basset"], str(tmp_path / "bad.h5"), example=True, window=bad, verbose=False)
    assert not os.path.exists(tmp_path / "bad.h5")


def test_ism_outputs_reduce_channels_last_and_zoo_check(work, tmp_path, caplog, monkeypatch):
    """Several outputs (ism/0, ism/1), --output, --reduce (the declared sum over the profile), a
    channels-last (L, 4) model on the fast path, and kipoi-tanger test's ism check."""
    import kipoi_tanger
    d = work["prof"]
    kw = dict(dataloader_args=dl_args(d), batch_size=4, verbose=False)
    m = kipoi_tanger.load_model(d)
    X, _ = m.inputs()
    want = saturation_mutagenesis(m.model, X, start=20, end=30, raw_outputs=True, fast=False)
    out = str(tmp_path / "all.h5")
    run("ism", d, out, window="20:30", **kw)
    got = h5io.load(out)
    assert got["ism/0"].shape == (12, 4, 10, 1, 60) and got["ism/1"].shape == (12, 4, 10, 1)
    for i in (0, 1):
        np.testing.assert_allclose(got[f"ism/{i}"], want.y_hat[i].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[f"y0/{i}"], want.y0[i].numpy(), rtol=1e-5, atol=1e-6)
    run("ism", d, str(tmp_path / "counts.h5"), window="20:30", output="counts", **kw)
    got = h5io.load(str(tmp_path / "counts.h5"))
    assert sorted(got) == ["ism", "y0"]
    np.testing.assert_allclose(got["ism"], want.y_hat[1].numpy(), rtol=1e-5, atol=1e-6)
    assert h5io.read_attrs(str(tmp_path / "counts.h5"))["parameters"]["model_output"] == 1
    run("ism", d, str(tmp_path / "red.h5"), window="20:30", output="profile", reduce=True, **kw)
    got = h5io.load(str(tmp_path / "red.h5"))
    np.testing.assert_allclose(got["ism"], want.y_hat[0].numpy().sum(-1), rtol=1e-5, atol=1e-5)
    assert h5io.read_attrs(str(tmp_path / "red.h5"))["parameters"]["reduce"] == {"op": "sum", "axis": [-1]}
    # a channels-last model: the layout adapter's permute does not stop the fast path
    la = work["la"]
    ml = kipoi_tanger.load_model(la)
    XL, _ = ml.inputs()
    caplog.set_level(logging.INFO, logger="kipoi_tanger.saturation_mutagenesis")
    monkeypatch.setattr("kipoi_tanger._fast_ism.MIN_FAST_JOB_MACS", 0)    # a small job: tried anyway
    run("ism", la, str(tmp_path / "la.h5"), dataloader_args=dl_args(la), batch_size=6, verbose=False)
    assert "saturation_mutagenesis: fast path" in caplog.text
    full = saturation_mutagenesis(ml.model, XL, raw_outputs=True, fast=False)
    got = h5io.load(str(tmp_path / "la.h5"))
    scale = float(np.abs(full.y_hat.numpy()).max())
    assert np.abs(got["ism"] - full.y_hat.numpy()).max() <= 1e-5 * scale
    # kipoi-tanger test: ism runs on 8 central positions and its y0 equals predict
    from kipoi_tanger.tools import zoo
    rep = zoo.test(d, kipoi_test=False, n_shuffles=2)
    st = {c.name: (c.status, c.detail) for c in rep.checks}
    assert st["ism"][0] == "PASS" and st["ism"][1].startswith("window 26:34: y0 equals predict"), rep.format()
    assert st["variant-effect"] == ("SKIP", "needs --vcf, --fasta: no example value (no check of its own in "
                                            "kipoi-tanger test)")


def test_ism_shards_merge_and_resume_are_byte_identical(work, tmp_path, monkeypatch):
    d = work["prof"]
    kw = dict(dataloader_args=dl_args(d), batch_size=4, window="10:16", verbose=False)
    single = str(tmp_path / "single.h5")
    run("ism", d, single, **kw)
    shards = [str(tmp_path / f"s{i}.h5") for i in (1, 2, 3)]
    for i, s in enumerate(shards, 1):
        run("ism", d, s, shard=f"{i}/3", **kw)
    merge(shards, str(tmp_path / "merged.h5"))
    assert file_bytes_equal(single, str(tmp_path / "merged.h5"))
    out = str(tmp_path / "resumed.h5")
    _interrupted("ism", d, out, monkeypatch, after=2, **kw)
    assert run("ism", d, out, resume=True, **kw).resumed_units == 8
    assert file_bytes_equal(single, out)


def _interrupted(op, d, out, monkeypatch, after=2, **kw):
    """A run that dies after `after` committed batches (in process): its journal stays."""
    calls = []
    original = Op.__call__

    def dying(self, items):
        if len(calls) == after:
            raise KeyboardInterrupt
        calls.append(1)
        return original(self, items)

    monkeypatch.setattr(Op, "__call__", dying)
    with pytest.raises(KeyboardInterrupt):
        run(op, d, out, **kw)
    monkeypatch.setattr(Op, "__call__", original)


# -- variant-effect ----------------------------------------------------------------------------------

SKIPPED = {"badref": ("ref_mismatch", 10), "nochr": ("chrom_missing", 11), "sym": ("symbolic_allele", 12),
           "edge": ("off_chromosome", 13), "end": ("off_chromosome", 14)}


def test_variant_effect_outputs_equal_the_python_ops(work, tmp_path):
    """basset_like: HDF5 (ref/alt/scores equal VariantScorer on the same windows; windows equal the
    hand-cut ones), TSV, VCF read back with cyvcf2 (and bcftools) and the skipped TSV."""
    import kipoi_tanger
    from cyvcf2 import VCF
    G, vcf, fa = work["G"], work["vcf"], work["fa"]
    outs = [str(tmp_path / n) for n in ("ve.h5", "ve.tsv", "ve.vcf.gz")]
    res = run("variant-effect", work["basset"], outs, vcf=vcf, fasta=fa, scores=["diff", "logit", "deepsea_effect"],
              batch_size=4, keep_inputs=True, verbose=False)
    assert res.outputs == outs + [str(tmp_path / "ve.skipped.tsv")]
    got = h5io.load(outs[0])
    ids = list(got["metadata/variants/id"])
    assert ids == ["snv1", "multi", "multi", "multi", "mnv", "ins", "del", "snv2"]
    assert list(got["metadata/variants/kind"]) == ["snv"] * 4 + ["mnv", "insertion", "deletion", "snv"]
    assert list(got["metadata/variants/allele"]) == [0, 0, 1, 2, 0, 0, 0, 0]
    assert list(got["metadata/variants/line"]) == [5, 6, 6, 6, 7, 8, 9, 15]
    # windows cut by hand from the genome string
    for i in range(len(ids)):
        c, p = got["metadata/variants/chrom"][i], int(got["metadata/variants/pos"][i])
        s, ref_w, alt_w = hand_windows(G, c, p, got["metadata/variants/ref"][i], got["metadata/variants/alt"][i],
                                       L_BASSET)
        assert (got["metadata/ranges/start"][i], got["metadata/ranges/end"][i]) == (s, s + L_BASSET)
        assert decode(got["inputs/ref"][i]) == ref_w and decode(got["inputs/alt"][i]) == alt_w, ids[i]
    # a model that reads the minus strand: the same genome interval, reverse-complemented
    run("variant-effect", work["basset"], str(tmp_path / "minus.h5"), vcf=vcf, fasta=fa, strand="-", batch_size=4,
        keep_inputs=True, verbose=False)
    minus = h5io.load(str(tmp_path / "minus.h5"))
    comp = str.maketrans("ACGT", "TGCA")
    # even L: the allele at index L // 2 of the reverse-complemented window is one base right of '+'
    assert int(minus["metadata/ranges/start"][0]) == 500 - 1 - (L_BASSET // 2 - 1)
    for i in (0, 4):                       # the SNV and the MNV
        s = int(minus["metadata/ranges/start"][i])
        c = minus["metadata/variants/chrom"][i]
        assert decode(minus["inputs/ref"][i]) == G[c][s:s + L_BASSET].translate(comp)[::-1]
        assert minus["metadata/ranges/strand"][i] == "-"
    # the Python ops on the same windows
    m = kipoi_tanger.load_model(BASSET)
    scorer = VariantScorer(m.model, scores=["diff", "logit", "deepsea_effect"], batch_size=4)
    parts = [scorer(b) for b in batches(variant_windows(read_vcf(vcf), fa, L_BASSET), 4)]
    for key, vals in (("ref", [p.ref[0] for p in parts]), ("alt", [p.alt[0] for p in parts])):
        np.testing.assert_allclose(got[key], torch.cat(vals).numpy(), rtol=1e-5, atol=1e-7)
    for s in ("diff", "logit", "deepsea_effect"):
        np.testing.assert_allclose(got[s], np.concatenate([p.scores[0][s] for p in parts]), rtol=1e-4, atol=1e-7)
    # TSV: the same rows, Kipoi's flattened columns
    import pandas as pd
    tsv = pd.read_csv(outs[1], sep="\t")
    assert len(tsv) == 8 and list(tsv["metadata/variants/id"]) == ids
    np.testing.assert_allclose(tsv["diff/2"], got["diff"][:, 2], rtol=1e-6)
    # VCF: every input record, in order, with the scores of its scored ALTs
    v = VCF(outs[2])
    info = {h["ID"]: h for h in v.header_iter() if h["HeaderType"] == "INFO"}
    fields = [f"KT_{s}_probs_task{j}" for s in ("diff", "logit", "deepsea_effect") for j in range(3)]
    assert sorted(info) == sorted(fields) and all(info[f]["Number"] == "A" for f in fields)
    recs = list(v)
    assert [r.ID for r in recs] == ["snv1", "multi", "mnv", "ins", "del", "badref", "nochr", "sym", "edge", "end",
                                    "snv2"]
    row = 0
    for r in recs:
        if r.ID in SKIPPED:
            assert all(r.INFO.get(f) is None for f in fields)
            continue
        vals = np.atleast_1d(np.asarray(r.INFO.get("KT_diff_probs_task1"), dtype=np.float64))
        n = len(r.ALT)
        np.testing.assert_allclose(vals, got["diff"][row:row + n, 1], rtol=1e-5, atol=1e-9)
        row += n
    assert row == 8
    # the skipped alleles, with the reason and the VCF line
    sk = pd.read_csv(str(tmp_path / "ve.skipped.tsv"), sep="\t")
    assert {r.id: (r.reason, r.line) for r in sk.itertuples()} == SKIPPED
    assert "REF " in sk.set_index("id").loc["badref", "detail"]
    if shutil.which("bcftools"):
        q = subprocess.run(["bcftools", "query", "-f", "%ID\\t%INFO/KT_diff_probs_task0\\n", outs[2]],
                           capture_output=True, text=True, check=True).stdout.splitlines()
        assert q[1].split("\t")[0] == "multi" and len(q[1].split("\t")[1].split(",")) == 3
        assert q[5] == "badref\t."


def test_variant_effect_shards_merge_and_resume(work, tmp_path, monkeypatch, capsys):
    """Units are VCF records: 3 shards + merge (HDF5, TSV, VCF.gz, VCF and the skipped TSV, through the
    Python API and the CLI) and a resumed run give the single run's files byte for byte; a shard's VCF and
    skipped TSV hold its block of records; a shard file that is missing is one line, nothing written."""
    import h5py
    kw = dict(vcf=work["vcf"], fasta=work["fa"], scores=["diff", "logit"], batch_size=2, verbose=False)
    t = work["basset"]
    names = ("o.h5", "o.tsv", "o.vcf.gz", "o.vcf", "o.skipped.tsv")
    single = tmp_path / "single"
    single.mkdir()
    run("variant-effect", t, [str(single / n) for n in names[:4]], **kw)
    shards = []
    for i in (1, 2, 3):
        sd = tmp_path / f"s{i}"
        sd.mkdir()
        run("variant-effect", t, [str(sd / n) for n in names[:4]], shard=f"{i}/3", **kw)
        shards.append(sd)
    assert h5io.read_attrs(str(shards[1] / "o.h5"))["shard_outputs"] == json.dumps(list(names))
    from cyvcf2 import VCF
    assert [[r.ID for r in VCF(str(sd / "o.vcf.gz"))] for sd in shards] == [
        ["snv1", "multi", "mnv", "ins"], ["del", "badref", "nochr", "sym"], ["edge", "end", "snv2"]]
    # every file of the single run, from the shards' files (the skipped TSV without being asked)
    h5s = [str(sd / "o.h5") for sd in shards]
    merged = tmp_path / "merged"
    res = merge(h5s[::-1], [str(merged / n) for n in names[:4]])
    assert res.outputs == [str(merged / n) for n in names]
    for n in names:
        assert file_bytes_equal(str(single / n), str(merged / n)), n
    assert "shard_outputs" not in h5io.read_attrs(str(merged / "o.h5"))
    # the CLI; a plain .vcf from the shards' .vcf.gz (the first VCF each shard wrote)
    cli_dir = tmp_path / "cli"
    rc, err = _main(["merge", *h5s, "-o", str(cli_dir / "x.h5"), str(cli_dir / "x.vcf"), "-q"], capsys)
    assert rc == 0, err
    assert sorted(os.listdir(cli_dir)) == ["x.h5", "x.skipped.tsv", "x.vcf"]
    for a, b in (("x.h5", "o.h5"), ("x.vcf", "o.vcf"), ("x.skipped.tsv", "o.skipped.tsv")):
        assert file_bytes_equal(str(cli_dir / a), str(single / b)), a
    # refusals: one line, nothing written
    bad = tmp_path / "bad"
    os.rename(shards[1] / "o.skipped.tsv", tmp_path / "away.tsv")
    rc, err = _main(["merge", *h5s, "-o", str(bad / "y.h5"), "-q"], capsys)
    assert rc == 2 and err.count("\n") == 1, err
    assert f"{shards[1] / 'o.skipped.tsv'}, the .skipped.tsv file of shard {h5s[1]}, is missing" in err
    os.rename(tmp_path / "away.tsv", shards[1] / "o.skipped.tsv")
    rc, err = _main(["merge", *h5s, "-o", str(bad / "y.h5"), str(bad / "y.bed"), "-q"], capsys)
    assert rc == 2 and "y.bed: unknown file type; expected .h5, .hdf5, .tsv, .skipped.tsv, .vcf.gz or .vcf" in err
    assert not bad.exists()
    # shards of an older kipoi-tanger (no shard_outputs): their HDF5 files alone
    old = []
    for i, h in enumerate(h5s):
        shutil.copy(h, tmp_path / f"old{i}.h5")
        with h5py.File(tmp_path / f"old{i}.h5", "r+") as f:
            del f.attrs["shard_outputs"]
        old.append(str(tmp_path / f"old{i}.h5"))
    rc, err = _main(["merge", *old, "-o", str(bad / "y.h5"), str(bad / "y.tsv"), "-q"], capsys)
    assert rc == 2 and "does not record its run's files (written by an older kipoi-tanger)" in err, err
    assert merge(old, str(bad / "y.h5")).outputs == [str(bad / "y.h5")]
    assert file_bytes_equal(str(single / "o.h5"), str(bad / "y.h5"))
    # resume
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    outs = [str(resumed / n) for n in names[:4]]
    _interrupted("variant-effect", t, outs, monkeypatch, after=2, **kw)
    assert run("variant-effect", t, outs, resume=True, **kw).resumed_units == 4
    for n in names:
        assert file_bytes_equal(str(single / n), str(resumed / n)), n


def test_variant_effect_has_no_dataloader_options(work, tmp_path, capsys):
    """variant-effect brings its own regions (Op.own_regions): its command has none of the dataloader
    options (each is an argparse error) while every other op keeps them all; run() refuses them in one line."""
    from kipoi_tanger import ops
    from kipoi_tanger.ops.base import DATALOADER_OPTIONS
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    dl_flags = set(DATALOADER_OPTIONS) | {"-n"}
    for name in ops.names():
        flags = set(sub[name]._option_string_actions)
        if name == "variant-effect":
            assert ops.get(name).own_regions and not flags & dl_flags, flags & dl_flags
        else:
            assert not ops.get(name).own_regions and dl_flags <= flags, (name, dl_flags - flags)
    base = ["variant-effect", BASSET, "--vcf", work["vcf"], "--fasta", work["fa"], "-o", str(tmp_path / "x.h5")]
    for extra in (["--example"], ["-n", "2"], ["--num_workers", "2"], ["--dataloader", "x"],
                  ["--dataloader_source", "dir"]):
        rc, err = _main(base + extra, capsys)
        assert rc == 2 and err.startswith("kipoi-tanger: error: unrecognized arguments: " + extra[0]), err
    for kw, shown in ((dict(num_workers=2), "num_workers"), (dict(dataloader_args={"a": 1}, example=True),
                                                             "dataloader_args, example"),
                      (dict(dataloader="x", dataloader_source="dir"), "dataloader, dataloader_source")):
        with pytest.raises(OpError) as e:
            run("variant-effect", work["basset"], str(tmp_path / "x.h5"), vcf=work["vcf"], fasta=work["fa"], **kw)
        assert str(e.value) == ("variant-effect reads its regions from --vcf and --fasta, not from the model's "
                                f"dataloader: drop {shown}")
    assert os.listdir(tmp_path) == []


def test_variant_effect_strict_and_bad_input(work, tmp_path, capsys):
    """--strict: the first bad record is one line naming the VCF line, before anything is written;
    other bad input is one line too (exit 2, nothing written)."""
    vcf, fa = work["vcf"], work["fa"]
    out = tmp_path / "out"
    base = ["variant-effect", BASSET, "--vcf", vcf, "--fasta", fa, "-q"]
    cases = [
        (["--strict", "-o", str(out / "s.h5")],
         f"{vcf}: line 10 (chr1:1500 "),
        (["-o", str(out / "x.h5"), "--scores", "diff", "logti"], "--scores: unknown score 'logti'"),
        (["-o", str(out / "x.h5"), "--dataloader_args", "a=1"], "unrecognized arguments: --dataloader_args a=1"),
        (["-o", str(out / "x.h5"), "--length", "300"], "--length: 300, but the model's input length is 200"),
        (["-o", str(out / "x.bed")], "-o/--output: " + str(out / "x.bed") + ": unknown file type; expected .h5, "
                                     ".hdf5, .tsv, .skipped.tsv, .vcf.gz or .vcf"),
    ]
    for extra, msg in cases:
        rc, err = _main(base + extra, capsys)
        assert rc == 2 and msg in err and err.count("\n") == 1, err
    rc, err = _main(["variant-effect", BASSET, "--vcf", str(tmp_path / "no.vcf"), "--fasta", fa, "-o",
                     str(out / "x.h5")], capsys)
    assert rc == 2 and err.strip() == f"kipoi-tanger: error: --vcf: {tmp_path / 'no.vcf'}: no such file"
    # a profile output cannot go into a VCF; logit scores need probabilities
    d = work["prof"]
    rc, err = _main(["variant-effect", d, "--vcf", vcf, "--fasta", fa, "-o", str(out / "p.vcf"), "-q"], capsys)
    assert rc == 2 and "output 'profile' has shape (1, 60) per variant; pick a scalar or 1-D output with --output" \
        in err and err.count("\n") == 1, err
    rc, err = _main(["variant-effect", d, "--vcf", vcf, "--fasta", fa, "--length", "60", "--scores", "logit",
                     "-o", str(out / "p.h5"), "-q"], capsys)
    assert rc == 2 and "logit scores need probabilities" in err and err.count("\n") == 1, err
    assert not out.exists() or os.listdir(out) == []
    # a VCF whose alleles all fail: one line, nothing written
    bad = tmp_path / "bad.vcf"
    bad.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n1\t500\tx\tA\tC\t.\t.\t.\n")
    rc, err = _main(["variant-effect", BASSET, "--vcf", str(bad), "--fasta", fa, "-o", str(out / "b.h5")], capsys)
    assert rc == 2 and err.strip() == (
        f"kipoi-tanger: error: --vcf: none of the alleles of {bad} could be scored; the first, line 3: chromosome "
        "not in the FASTA: '1' is not in the FASTA (it has 'chr1': the VCF and the FASTA name chromosomes "
        "differently)")
    assert not out.exists() or os.listdir(out) == []


def test_variant_effect_two_outputs_motif_cnn(work, tmp_path, capsys):
    """motif_cnn (profile and counts): every output in HDF5 (ref/0, ref/1, diff/1...), --output counts
    into a VCF (one field per score), --rc averages over both strands."""
    import kipoi_tanger
    d, vcf, fa = work["mc"], work["vcf"], work["fa"]
    out = str(tmp_path / "mc.h5")
    run("variant-effect", d, out, vcf=vcf, fasta=fa, batch_size=4, verbose=False)
    got = h5io.load(out)
    assert got["ref/0"].shape == (8, 1, 400) and got["diff/1"].shape == (8, 1)
    m = kipoi_tanger.load_model(d)
    parts = [VariantScorer(m.model, rc=True, batch_size=4)(b)
             for b in batches(variant_windows(read_vcf(vcf), fa, 500), 4)]
    outs = [str(tmp_path / "c.h5"), str(tmp_path / "c.vcf")]
    rc, err = _main(["variant-effect", d, "--vcf", vcf, "--fasta", fa, "--output", "counts", "--rc", "-o", *outs,
                     "-q"], capsys)
    assert rc == 0, err
    got = h5io.load(outs[0])
    np.testing.assert_allclose(got["diff"], np.concatenate([p.scores[1]["diff"] for p in parts]), rtol=1e-4,
                               atol=1e-6)
    from cyvcf2 import VCF
    v = VCF(outs[1])
    assert [h["ID"] for h in v.header_iter() if h["HeaderType"] == "INFO"] == ["KT_diff_counts"]
    assert sum(r.INFO.get("KT_diff_counts") is not None for r in v) == 6      # records with a scored ALT


def test_ism_and_variant_effect_on_a_predict_on_batch_model(tmp_path):
    """A custom model (defined_as, its own predict_on_batch, (50, 4) inputs): both ops run on full forwards
    through predict_on_batch and equal it on hand-made sequences."""
    from zoo_fixtures import example_dl_args, make_custom_dir
    d = make_custom_dir(tmp_path)
    import kipoi
    import kipoi_tanger
    km = kipoi.get_model(d, source="dir")
    out = str(tmp_path / "ism.h5")
    run("ism", d, out, dataloader_args=example_dl_args(d), window="20:23", batch_size=8, verbose=False)
    got = h5io.load(out)
    X, _ = kipoi_tanger.load_model(d).inputs(dataloader_args=example_dl_args(d))
    x = X[0].numpy().T.astype(np.float32)                    # (50, 4), the model's layout
    for p in (20, 22):
        for base in range(4):
            xm = x.copy()
            xm[p] = 0
            xm[p, base] = 1
            np.testing.assert_allclose(got["ism"][0, base, p - 20], km.predict_on_batch(xm[None])[0], rtol=1e-6)
    G = _genome(seed=3)
    vcf, fa = write_variants(str(tmp_path), G)
    run("variant-effect", d, str(tmp_path / "ve.h5"), vcf=vcf, fasta=fa, batch_size=4, keep_inputs=True,
        verbose=False)
    got = h5io.load(str(tmp_path / "ve.h5"))
    ref = km.predict_on_batch(got["inputs/ref"].transpose(0, 2, 1).astype(np.float32))
    alt = km.predict_on_batch(got["inputs/alt"].transpose(0, 2, 1).astype(np.float32))
    np.testing.assert_allclose(got["diff"], alt - ref, rtol=1e-6, atol=1e-9)
    assert len(got["diff"]) == 8


def test_kipoi_tanger_variant_effect_through_the_kipoi_executable(work, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    out = str(tmp_path / "k.h5")
    p = run_cli(["tanger", "variant-effect", BASSET, "--vcf", work["vcf"], "--fasta", work["fa"], "--batch_size",
                 "4", "-o", out, "-q"], tmp_path, home, exe="kipoi")
    assert p.returncode == 0, p.stderr
    api = str(tmp_path / "api.h5")
    run("variant-effect", work["basset"], api, vcf=work["vcf"], fasta=work["fa"], batch_size=4, verbose=False)
    assert file_bytes_equal(out, api)
    with open(str(tmp_path / "k.skipped.tsv")) as fh:
        assert len(fh.read().splitlines()) == 6
