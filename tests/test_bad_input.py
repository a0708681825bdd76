"""Bad input that used to escape (issue 10 §2): each is one line on stderr, exit status 2, no
traceback and nothing half-written; and what a run leaves on disk stays sound (locks, fsync'ed
journal commits, a full disk)."""
import json
import os
import shutil
import stat

import numpy as np
import pytest
import yaml

from h5compare import file_bytes_equal
from kipoi_model_dirs import dl_args, make_model_dir, run_cli
from kipoi_tanger.adapter import AdapterError
from kipoi_tanger.run import RunError, RunOptions, h5io, journal as journal_mod, run
from kipoi_tanger.run.journal import Journal
from cli_helpers import interrupt_after_commits, main_in as _main, one_line as _one_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(REPO, "example_models")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    d = {"la": make_model_dir(root, "bi_la", arch="TinyCNN", layout="LA"),
         "al": make_model_dir(root, "bi_al", arch="TinyCNN", layout="AL")}
    # the dataloader gives (50, 4) but the schema says (4, 50): the axes in another order
    d["swapped"] = _with_schema(make_model_dir(root, "bi_sw", arch="TinyCNN", layout="LA"), "(4, 50)")
    # a (4, 60) schema whose dataloader gives 50 bp
    d["longer"] = _with_schema(make_model_dir(root, "bi_lo", arch="TinyCNN", layout="AL"), "(4, 60)")
    # a schema that allows any length, and a model that does not
    d["any_len"] = _with_schema(make_model_dir(root, "bi_any", arch="TinyCNN", layout="LA"), "(None, 4)")
    return root, d


def _with_schema(d, shape):
    path = os.path.join(d, "model.yaml")
    with open(path) as fh:
        y = yaml.safe_load(fh)
    y["schema"]["inputs"]["shape"] = shape
    with open(path, "w") as fh:
        yaml.safe_dump(y, fh, sort_keys=False)
    return d


def _nothing_written(where, keep=()):
    left = sorted(p for p in os.listdir(where) if p not in keep)
    assert left == [], left


def _dla(d, **extra):
    return json.dumps(dict(dl_args(d), **extra))


# ---------------------------------------------------------------------------
# the first batch against the model's schema, before any output is created

@pytest.mark.parametrize("key,extra,expect", [
    ("swapped", {}, "input 'seq' has shape (50, 4) per example, but the model's schema expects (4, 50) (the same "
                    "axes in another order: check the dataloader's layout)"),
    ("longer", {}, "input 'seq' has shape (4, 50) per example, but the model's schema expects (4, 60)"),
    ("la", {"seq_len": 30}, "input 'seq' has shape (30, 4) per example, but the model's schema expects (50, 4)"),
])
def test_first_batch_checked_against_the_schema(dirs, capsys, tmp_path, key, extra, expect):
    _, d = dirs
    for op, more in (("predict", ["x.tsv"]), ("deeplift-shap", []), ("marginalize", ["--motif", "GATA"])):
        rc, _, err = _main([op, d[key], "--dataloader_args", _dla(d[key], **extra), "-o", "sub/x.h5", *more],
                           capsys, tmp_path)
        assert rc == 2
        line = _one_line(err)
        assert expect in line and "dataloader dl_bi_" in line, line
        _nothing_written(tmp_path)        # no output, no journal, no sub/ made for it
    with pytest.raises(AdapterError, match=r"expects"):
        run("predict", d[key], str(tmp_path / "y.h5"), dataloader_args=dict(dl_args(d[key]), **extra), verbose=False)
    _nothing_written(tmp_path)


def test_schema_wildcard_and_a_model_that_refuses_the_data(dirs, capsys, tmp_path):
    """(None, 4) takes any length; the model's own refusal of 30 bp is one line naming the shapes."""
    _, d = dirs
    rc, _, err = _main(["predict", d["any_len"], "--dataloader_args", _dla(d["any_len"]), "-o", "ok.h5", "-q"],
                       capsys, tmp_path)
    assert rc == 0, err
    rc, _, err = _main(["predict", d["any_len"], "--dataloader_args", _dla(d["any_len"], seq_len=30), "-o", "x.h5"],
                       capsys, tmp_path)
    assert rc == 2
    line = _one_line(err)
    assert "failed on the first batch (RuntimeError: " in line and "the dataloader gave seq (30, 4)" in line
    _nothing_written(tmp_path, keep=("ok.h5",))


def test_motif_cnn_layout_and_sequence_length(capsys, tmp_path):
    """The issue's cases on the shipped model: the dataloader's layout "(L, A)" and seq_len=300."""
    m = os.path.join(ZOO, "motif_cnn")
    ex = os.path.join(m, "example_files")
    base = {"intervals_file": os.path.join(ex, "regions.bed"), "fasta_file": os.path.join(ex, "genome.fa")}
    for extra, words in (({"layout": "(L, A)"}, ("layout", "(L, A)")), ({"seq_len": 300}, ("300", "(4, 500)"))):
        rc, _, err = _main(["predict", m, "--dataloader_args", json.dumps(dict(base, **extra)), "-o", "o/x.h5"],
                           capsys, tmp_path)
        assert rc == 2
        line = _one_line(err)
        assert all(w in line for w in words), line
        _nothing_written(tmp_path)


# ---------------------------------------------------------------------------
# --device

@pytest.mark.parametrize("device,expect", [
    ("gpu0", "--device: 'gpu0' is not a torch device; expected cpu, cuda, cuda:N or mps"),
    ("cuda:7", "--device cuda:7: "),
    ("meta", "--device meta: expected cpu, cuda, cuda:N or mps"),
])
def test_bad_device_is_one_line(dirs, capsys, tmp_path, device, expect):
    import torch
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    _, d = dirs
    rc, _, err = _main(["predict", d["la"], "--example", "--device", device, "-o", "x.h5"], capsys, tmp_path)
    assert rc == 2 and expect in _one_line(err)
    _nothing_written(tmp_path)
    with pytest.raises(RunError, match="--device"):
        RunOptions(device=device).check()
    RunOptions(device="cpu").check()


# ---------------------------------------------------------------------------
# product --args rows

def test_product_args_rows_must_have_the_input_shape(capsys, tmp_path):
    fd = os.path.join(ZOO, "flatten_dense")
    np.save(tmp_path / "flat.npy", np.arange(3, dtype=np.float32))             # 1-D: scalars, not (1,) rows
    np.save(tmp_path / "wide.npy", np.ones((3, 2), dtype=np.float32))
    np.save(tmp_path / "ok.npy", np.ones((3, 1), dtype=np.float32))
    for bad, shape in (("flat.npy", "(3,)"), ("wide.npy", "(3, 2)")):
        for args in ([bad, "ok.npy"], ["alpha=ok.npy", f"beta={bad}"]):
            rc, _, err = _main(["product", fd, "--example", "--args", *args, "-o", "p.h5"], capsys, tmp_path)
            assert rc == 2
            line = _one_line(err)
            assert f"--args: {bad}: rows shaped" in line and f"(array {shape})" in line, line
            assert "shaped (1,) per example: expected an array of shape (k, 1)" in line, line
            assert ("reshape(-1, 1)" in line) == (bad == "flat.npy")
    assert sorted(os.listdir(tmp_path)) == ["flat.npy", "ok.npy", "wide.npy"]
    rc, _, err = _main(["product", fd, "--example", "--args", "ok.npy", "ok.npy", "-o", "p.h5", "-q"], capsys,
                       tmp_path)
    assert rc == 0, err
    assert h5io.load(str(tmp_path / "p.h5"))["preds"].shape == (5, 3, 3, 3)


# ---------------------------------------------------------------------------
# output paths

def test_output_path_resolved_once_before_any_work(dirs, capsys, tmp_path):
    """`-o out/sub/../dd.h5` with out/sub missing is out/dd.h5 (it used to compute everything, then
    fail at the rename and leave a finished .partial/ behind)."""
    _, d = dirs
    rc, _, err = _main(["predict", d["la"], "--example", "-o", "out/sub/../dd.h5", "out/sub/../dd.tsv", "-q"],
                       capsys, tmp_path)
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == ["dd.h5", "dd.tsv"]
    # the same through a link: the link's target directory
    os.makedirs(tmp_path / "real")
    os.symlink(tmp_path / "real", tmp_path / "link")
    run("predict", d["la"], str(tmp_path / "link" / "x.h5"), example=True, verbose=False)
    assert os.listdir(tmp_path / "real") == ["x.h5"]
    # and merge
    for i in (1, 2):
        run("predict", d["la"], str(tmp_path / f"s{i}.h5"), example=True, shard=(i, 2), verbose=False)
    rc, _, err = _main(["merge", "s1.h5", "s2.h5", "-o", "m/sub/../merged.h5", "-q"], capsys, tmp_path)
    assert rc == 0, err
    assert os.listdir(tmp_path / "m") == ["merged.h5"]


# ---------------------------------------------------------------------------
# the tanger section against the schema, when the model is loaded, for every op

def _copy_model(src, dst, **tanger):
    shutil.copytree(src, dst)
    path = os.path.join(dst, "model.yaml")
    with open(path) as fh:
        y = yaml.safe_load(fh)
    y.setdefault("postprocessing", {}).setdefault("tanger", {}).update(tanger)
    with open(path, "w") as fh:
        yaml.safe_dump(y, fh, sort_keys=False)
    return dst


@pytest.mark.parametrize("extra,expect", [
    (["nope"], "extra_inputs: 'nope' is neither an input of the schema nor a parameter of TinyCNN.forward"),
    (["seq"], "extra_inputs: 'seq' is the sequence input"),
])
def test_section_extra_inputs_checked_for_every_op(dirs, capsys, tmp_path, extra, expect):
    root, d = dirs
    m = _copy_model(d["la"], str(tmp_path / "m"), extra_inputs=extra)
    for argv in (["predict", m, "--example", "-o", "x.h5"], ["info", m]):
        rc, _, err = _main(argv, capsys, tmp_path)
        assert rc == 2
        line = _one_line(err)
        assert "model.yaml: postprocessing: tanger: " + expect in line, line
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_section_extra_inputs_forward_parameters_and_repeats(tmp_path):
    from kipoi_tanger.adapter.schema_check import check_section
    from kipoi_tanger.adapter.section import resolve_spec
    from types import SimpleNamespace as NS

    class Fwd:
        def forward(self, X, alpha=0, beta=1):
            return X

    class Kw:
        def forward(self, X, **kwargs):
            return X

    schema = NS(inputs=NS(name="seq", shape=(4, 10), special_type="DNASeq"), targets=NS(name="y", shape=(3,)))
    spec = resolve_spec(schema, {"extra_inputs": ["alpha", "beta"]}, "m.yaml", known_ops=("predict",))
    check_section(Fwd(), spec)                  # forward() keywords the schema does not list
    spec.extra_inputs = ["alpah", "beta"]
    with pytest.raises(AdapterError, match=r"'alpah' is neither .* Fwd.forward \(did you mean 'alpha'\?\); expected "
                                           r"any of alpha, beta"):
        check_section(Fwd(), spec)
    check_section(Kw(), spec)                   # forward(**kwargs) takes any name
    spec.extra_inputs = ["alpha", "alpha"]
    with pytest.raises(AdapterError, match="'alpha' is listed twice"):
        check_section(Fwd(), spec)


# ---------------------------------------------------------------------------
# a full disk

def _need_dev_full():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full (the kernel's always-full device) on this system")


def test_disk_full_while_committing_names_the_journal(dirs, capsys, tmp_path, monkeypatch):
    _need_dev_full()
    _, d = dirs
    monkeypatch.setattr(journal_mod, "_open_for_write", lambda path: open("/dev/full", "wb"))
    rc, _, err = _main(["predict", d["la"], "--example", "-o", "x.h5"], capsys, tmp_path)
    assert rc == 2
    line = _one_line(err)
    assert line.endswith("x.h5.partial: cannot write: the disk is full (no space left on device); free space, "
                         "then run it again"), line
    _nothing_written(tmp_path)


def test_disk_full_while_assembling_names_the_output_and_resumes(dirs, capsys, tmp_path, monkeypatch):
    """h5py's own ENOSPC (written to /dev/full): one line naming the output; no half-written file;
    every batch kept, so --resume after freeing space gives the uninterrupted run's file."""
    _need_dev_full()
    _, d = dirs
    args = ["deeplift-shap", d["la"], "--example", "--n_shuffles", "2", "--random_state", "1", "--batch_size", "16",
            "-q"]
    real = h5io.write_h5
    monkeypatch.setattr(h5io, "write_h5", lambda path, *a, **k: real("/dev/full", *a, **k))
    rc, _, err = _main(args + ["-o", "a.h5"], capsys, tmp_path)
    assert rc == 2
    line = _one_line(err)
    assert "a.h5: cannot write: the disk is full (no space left on device); free space, then rerun the same " \
           "command with --resume" in line, line
    assert sorted(os.listdir(tmp_path)) == ["a.h5.partial"]
    assert sorted(f for f in os.listdir(tmp_path / "a.h5.partial") if f.endswith(".npk")) == \
        ["b00000000_u16_r16.npk", "b00000001_u16_r16.npk", "b00000002_u8_r8.npk"]
    monkeypatch.setattr(h5io, "write_h5", real)
    rc, _, err = _main(args + ["-o", "a.h5", "--resume"], capsys, tmp_path)
    assert rc == 0, err
    rc, _, err = _main(args + ["-o", "b.h5"], capsys, tmp_path)
    assert rc == 0, err
    assert file_bytes_equal(str(tmp_path / "a.h5"), str(tmp_path / "b.h5"))


def test_disk_full_detection():
    import errno
    from kipoi_tanger.run.outputs import is_disk_full, write_error
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError("12800 requested and 11222 written"))          # numpy's tofile
    assert is_disk_full(OSError("Can't write data (file write failed: ..., errno = 28, error message = 'No "
                                "space left on device', ...)"))               # h5py, no errno
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert write_error(OSError(errno.EACCES, "Permission denied"), "x.h5") is None
    assert "disk quota is exceeded" in str(write_error(OSError(errno.EDQUOT, "Disk quota exceeded"), "x.h5"))


# ---------------------------------------------------------------------------
# a missing FASTA through kipoiseq: no third-party noise after the error line

def test_missing_fasta_through_kipoiseq_has_no_destructor_noise(dirs, tmp_path):
    _, d = dirs
    bed = tmp_path / "r.bed"
    with open(os.path.join(d["la"], "example_files", "intervals.bed")) as fh:
        bed.write_text("".join("\t".join(line.split()[:3]) + "\n" for line in fh.readlines()[:4]))
    p = run_cli(["predict", d["la"], "--dataloader", "kipoiseq.dataloaders.SeqIntervalDl", "--dataloader_args",
                 json.dumps({"intervals_file": str(bed), "fasta_file": str(tmp_path / "missing.fa"),
                             "auto_resize_len": 50}), "-o", "x.h5"], tmp_path, tmp_path / "home")
    assert p.returncode == 2, p.stderr
    line = _one_line(p.stderr)
    assert "dataloader kipoiseq.dataloaders.SeqIntervalDl: FastaNotFoundError: " in line and "missing.fa" in line
    assert "Exception ignored" not in p.stderr
    assert sorted(set(os.listdir(tmp_path)) - {"home"}) == ["r.bed"]


def test_dataloader_errors_while_loading_are_one_line(dirs, capsys, tmp_path):
    """A dataloader that fails in __getitem__ (here: a chromosome the FASTA lacks), in the loop's thread
    and in worker processes: one line naming the dataloader and the original error."""
    _, d = dirs
    bed = tmp_path / "r.bed"
    bed.write_text("chrNope\t0\t50\n")
    for workers in ("0", "1"):
        rc, _, err = _main(["predict", d["la"], "--dataloader_args", _dla(d["la"], intervals_file=str(bed)), "-n",
                            workers, "-o", "x.h5"], capsys, tmp_path)
        assert rc == 2
        assert "dataloader dl_bi_la.SeqDataset: KeyError: " in _one_line(err)
    assert os.listdir(tmp_path) == ["r.bed"]


# ---------------------------------------------------------------------------
# two runs on one output

def test_second_run_on_one_output_is_told_another_run_writes_it(dirs, capsys, tmp_path):
    _, d = dirs
    out = tmp_path / "x.h5"
    busy = Journal(str(out) + ".partial")
    busy.create({"fingerprint": "another run"})          # holds the lock, as a running run does
    try:
        for flags in ([], ["--resume"], ["--overwrite"]):
            rc, _, err = _main(["predict", d["la"], "--example", "-o", "x.h5", *flags], capsys, tmp_path)
            assert rc == 2
            line = _one_line(err)
            assert "x.h5: another kipoi-tanger run is writing this output" in line and "Errno" not in line, line
        # two runs starting together: the journal directory appears whole, for one of them only
        with pytest.raises(RunError, match="another kipoi-tanger run is writing this output"):
            Journal(str(out) + ".partial").create({"fingerprint": "a third"})
        assert json.load(open(out.with_suffix(".h5.partial") / "run.json"))["fingerprint"] == "another run"
    finally:
        busy.unlock()
    # once that run is gone (killed: the kernel drops its lock), its journal is an interrupted run's
    rc, _, err = _main(["predict", d["la"], "--example", "-o", "x.h5"], capsys, tmp_path)
    assert rc == 2 and "is left by an interrupted run: pass --resume" in _one_line(err)
    rc, _, err = _main(["predict", d["la"], "--example", "-o", "x.h5", "--overwrite", "-q"], capsys, tmp_path)
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ["x.h5"]


# ---------------------------------------------------------------------------
# journal commits survive a power loss; --resume refuses a cut commit

def test_journal_commits_are_synced_before_and_after_the_rename(tmp_path, monkeypatch):
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name synced file descriptors")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(("fsync", kind, os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(src), os.fspath(dst)))
        return real_replace(src, dst)

    j = Journal(str(tmp_path / "x.h5.partial"))
    j.create({"fingerprint": "f"})
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    j.commit({"preds": np.ones((3, 2), dtype=np.float32)}, 3, 3)
    tmp, name = os.path.join(j.path, ".tmp-b00000000_u3_r3.npk"), os.path.join(j.path, "b00000000_u3_r3.npk")
    assert events == [("fsync", "file", tmp), ("replace", tmp, name), ("fsync", "dir", j.path)], events
    j.unlock()


@pytest.mark.parametrize("cut", ["empty", "truncated", "header_only"])
def test_resume_refuses_an_empty_or_truncated_commit(dirs, capsys, tmp_path, monkeypatch, cut):
    _, d = dirs
    args = ["deeplift-shap", d["la"], "--example", "--n_shuffles", "1", "--random_state", "0", "--batch_size", "8",
            "-o", "x.h5", "-q"]
    restore_commits = interrupt_after_commits(monkeypatch, 2)   # the run stops after two commits
    rc, _, _ = _main(args, capsys, tmp_path)
    assert rc == 130
    restore_commits()
    chunk = tmp_path / "x.h5.partial" / "b00000001_u8_r8.npk"
    data = chunk.read_bytes()
    chunk.write_bytes({"empty": b"", "truncated": data[:-7], "header_only": data[:40]}[cut])
    rc, _, err = _main(args + ["--resume"], capsys, tmp_path)
    assert rc == 2
    line = _one_line(err)
    assert "b00000001_u8_r8.npk is empty or truncated" in line and "--overwrite" in line, line
    assert not (tmp_path / "x.h5").exists()
    chunk.write_bytes(data)                    # whole again: the run continues
    rc, _, err = _main(args + ["--resume"], capsys, tmp_path)
    assert rc == 0, err
    assert os.listdir(tmp_path) == ["x.h5"]
