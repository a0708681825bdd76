"""Tests of dataloaders/sequence_table (TSV/FASTA -> integer DNA tokens)."""
import gzip
import importlib.util
import os
import textwrap

import numpy as np
import pytest
from cli_helpers import one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DL_DIR = os.path.join(ROOT, "dataloaders", "sequence_table")

_spec = importlib.util.spec_from_file_location("_sequence_table_under_test",
                                               os.path.join(DL_DIR, "dataloader.py"))
mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mod)
SequenceTable = mod.SequenceTable


def seed_encode(symbols, alphabet):
    # seed 002's encode_seq: the index of each symbol in the alphabet
    return np.array([alphabet.index(s) for s in symbols])


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_tsv_with_labels_matches_seed_encoding(tmp_path):
    # the seed's rnn_toy_training.tsv layout (pandas index column included)
    f = write(tmp_path / "t.tsv", """\
        \tdna\thidden_state
        0\tTGGTCGTATT\tLLLLLLLHHL
        1\tGCACGGTGGA\tHHHHHHHHHH
        """)
    ds = SequenceTable(f)
    assert len(ds) == 2 and ds.seq_len == 10
    for i, (dna, hid) in enumerate([("TGGTCGTATT", "LLLLLLLHHL"), ("GCACGGTGGA", "HHHHHHHHHH")]):
        item = ds[i]
        assert item["inputs"].dtype == np.int64 and item["targets"].dtype == np.int64
        np.testing.assert_array_equal(item["inputs"], seed_encode(dna, "ACGT"))
        np.testing.assert_array_equal(item["targets"], seed_encode(hid, "HL"))
        assert item["metadata"]["id"] == str(i)


def test_tsv_ids_lowercase_and_no_labels(tmp_path):
    f = write(tmp_path / "t.tsv", """\
        id\tdna
        a\tacgT
        b\tTTGG
        """)
    ds = SequenceTable(f)
    assert "targets" not in ds[0]
    np.testing.assert_array_equal(ds[0]["inputs"], [0, 1, 2, 3])
    b = next(ds.batch_iter(batch_size=2))
    assert set(b) == {"inputs", "metadata"} and b["metadata"]["id"].tolist() == ["a", "b"]


def test_fasta_records(tmp_path):
    f = write(tmp_path / "s.fa", """\
        >r1 first record
        ACGT
        ac
        >r2
        GGGGTT
        """)
    ds = SequenceTable(f)
    assert ds.ids.tolist() == ["r1", "r2"]
    np.testing.assert_array_equal(ds[0]["inputs"], [0, 1, 2, 3, 0, 1])
    np.testing.assert_array_equal(ds[1]["inputs"], [2, 2, 2, 2, 3, 3])
    assert "targets" not in ds[1]


def test_gzipped_input_and_ignore_targets(tmp_path):
    f = str(tmp_path / "t.tsv.gz")
    with gzip.open(f, "wt") as fh:
        fh.write("dna\thidden_state\nACGT\tHLHL\n")
    ds = SequenceTable(f, ignore_targets=True)
    assert "targets" not in ds[0] and "targets" not in next(ds.batch_iter())
    np.testing.assert_array_equal(SequenceTable(f)[0]["targets"], [0, 1, 0, 1])


@pytest.mark.parametrize("text,parts", [
    ("id\tdna\nx\tACGN\n", ["record 'x' (line 2)", "DNA character 'N' at position 3", "A, C, G, T"]),
    ("dna\thidden_state\nACGT\tHHHH\nACGT\tHHXH\n",
     ["record '1' (line 3)", "hidden_state character 'X' at position 2", "H, L"]),
    ("dna\thidden_state\nACGT\tHHH\n", ["record '0' (line 2)", "hidden_state has length 3"]),
    ("id\tdna\na\tACGT\nb\tACG\n", ["record 'b' (line 3)", "length 3", "first record 'a' (line 2"]),
    ("sequence\tlabel\nACGT\tHHHH\n", ["line 1", "'dna' column"]),
    ("id\tdna\tx\na\tACGT\n", ["line 2", "expected 3", "got 2"]),
    ("id\tdna\na\t\n", ["record 'a' (line 2)", "empty dna"]),
    (">r1\nACGT\n>r2\nACGÜ\n", ["record 'r2' (line 3)", "'Ü' at position 3"]),
    (">r1\nACGT\n>\nACGT\n", ["line 3", "without a name"]),
    (">r1\n>r2\nACGT\n", ["record 'r1' (line 1)", "empty sequence"]),
    ("\n\n", ["no records"]),
])
def test_bad_inputs_name_file_record_and_position(tmp_path, text, parts):
    f = tmp_path / "bad.txt"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as e:
        SequenceTable(str(f))
    one_line_error(e, str(f), *parts)


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(ValueError) as e:
        SequenceTable(str(tmp_path / "nope.tsv"))
    one_line_error(e, "sequences_file", str(tmp_path / "nope.tsv"), "not found")
    f = write(tmp_path / "t.tsv", "dna\nACGT\n")
    with pytest.raises(ValueError) as e:
        SequenceTable(f, ignore_targets="sometimes")
    one_line_error(e, "ignore_targets")


def test_fast_batches_equal_kipoi_collate(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["id\tdna\thidden_state"] + ["s{}\t{}\t{}".format(
        i, "".join(rng.choice(list("ACGT"), 12)), "".join(rng.choice(list("HL"), 12)))
        for i in range(11)]
    ds = SequenceTable(write(tmp_path / "t.tsv", "\n".join(rows) + "\n"))
    fast = list(ds.batch_iter(batch_size=4))
    slow = list(ds.batch_iter(batch_size=4, pin_memory=False))  # kipoi's per-sample path
    assert [len(b["inputs"]) for b in fast] == [4, 4, 3]
    for f, s in zip(fast, slow):
        for k in ("inputs", "targets"):
            np.testing.assert_array_equal(f[k], s[k])
            assert f[k].dtype == s[k].dtype == np.int64
        np.testing.assert_array_equal(f["metadata"]["id"], s["metadata"]["id"])
    np.random.seed(0)
    for b in ds.batch_iter(batch_size=3, shuffle=True):
        for x, i in zip(b["inputs"], b["metadata"]["id"]):
            np.testing.assert_array_equal(x, ds[int(i[1:])]["inputs"])


def test_kipoi_dataloader_factory_and_example():
    import kipoi
    Dl = kipoi.get_dataloader_factory(DL_DIR, source="dir")
    dl = Dl.init_example()
    b = next(dl.batch_iter(batch_size=4))
    assert b["inputs"].shape == (4, 60) and b["targets"].shape == (4, 60)
    assert b["metadata"]["id"].tolist() == ["seq0", "seq1", "seq2", "seq3"]
    assert Dl.get_output_schema().compatible_with_batch(b)
    fa = SequenceTable(os.path.join(DL_DIR, "example_files", "sequences.fa"))
    np.testing.assert_array_equal(fa.tokens, dl.tokens)


def test_plain_import_works_as_kipoi_dataloader(tmp_path, monkeypatch):
    # the module attaches its dataloader.yaml, so init_example works without kipoi's factory
    monkeypatch.chdir(tmp_path)
    assert SequenceTable.args is not None and "sequences_file" in SequenceTable.args
    assert len(SequenceTable.init_example()) == 10


GRU_PY = """
import torch


class TokenGRU(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(4, 3)
        self.gru = torch.nn.GRU(3, 5, batch_first=True)
        self.out = torch.nn.Linear(5, 2)

    def forward(self, x):
        h, _ = self.gru(self.embed(x))
        return torch.log_softmax(self.out(h), dim=-1)
"""


def test_token_model_predicts_example_through_relative_default_dataloader(tmp_path):
    import kipoi
    import torch
    d = tmp_path / "gru"
    d.mkdir()
    (d / "model.py").write_text(GRU_PY)
    ns = {}
    exec(GRU_PY, ns)
    torch.manual_seed(0)
    net = ns["TokenGRU"]().eval()
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, str(d / "weights.pth"))
    (d / "model.yaml").write_text(textwrap.dedent("""\
        defined_as: kipoi.model.PyTorchModel
        args: {{module_file: model.py, module_class: TokenGRU, weights: weights.pth, auto_use_cuda: false}}
        default_dataloader: {dl}
        info: {{authors: [{{name: test}}], doc: token GRU}}
        dependencies: {{pip: [pytorch]}}
        schema:
          inputs: {{name: tokens, shape: "(None,)", doc: tokens}}
          targets: {{shape: "(None, 2)", doc: per-base log-probabilities}}
        """).format(dl=os.path.relpath(DL_DIR, str(d))))
    m = kipoi.get_model(str(d), source="dir")
    preds = m.pipeline.predict_example(batch_size=4)
    assert preds.shape == (10, 60, 2)
    with torch.no_grad():
        ref = net(torch.from_numpy(m.default_dataloader.init_example().tokens.astype(np.int64)))
    np.testing.assert_allclose(preds, ref.numpy(), rtol=1e-5, atol=1e-6)
