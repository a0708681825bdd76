"""variants.scoring.VariantScorer: predictions and scores equal full forwards on the
windows (fast path for SNVs/MNVs checked against them), rc averaging,
multi-output models, refusal of non-local models, state restoration, and
identical scores to a tangermeme pipeline (read_vcf, pyfaidx windows,
substitution_effect)."""
import logging

import numpy
import pyfaidx
import pytest
import torch
from tangermeme.io import read_vcf as tm_read_vcf
from tangermeme.utils import one_hot_encode as tm_one_hot_encode
from tangermeme.variant_effect import substitution_effect as tm_substitution_effect
from torch import nn

from kipoi_tanger.predict import predict
from kipoi_tanger.variants import VariantScorer, batches, compute_scores, read_vcf, variant_windows

L = 201
LOGGER = 'kipoi_tanger.variants.scoring'


pytestmark = pytest.mark.usefixtures('one_thread')     # tests/conftest.py


class TwoHeads(nn.Module):
    """Local conv stack, a sigmoid head over the flattened features and a
    per-position profile head."""

    def __init__(self, length=L):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 9, padding=4)
        self.p1 = nn.MaxPool1d(3)
        self.c2 = nn.Conv1d(8, 8, 5, padding=2)
        self.lin = nn.Linear(8 * (length // 3), 2)
        self.prof = nn.Conv1d(8, 1, 3, padding=1)

    def forward(self, x):
        h = self.p1(torch.relu(self.c1(x)))
        h = torch.relu(self.c2(h))
        return torch.sigmoid(self.lin(h.flatten(1))), self.prof(h)


class GRUModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 4, batch_first=True)
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return torch.sigmoid(self.lin(self.gru(x.transpose(1, 2))[0][:, -1]))


def make_inputs(tmp_path, n=40, seed=0, indels=True):
    rs = numpy.random.RandomState(seed)
    genome = ''.join(rs.choice(list('ACGT'), 3000))
    (tmp_path / 'g.fa').write_text(">chr1\n" + '\n'.join(genome[i:i + 60] for i in range(0, 3000, 60)) + "\n")
    rows = []
    for k, pos in enumerate(sorted(rs.choice(numpy.arange(200, 2800), n, replace=False))):
        ref = genome[pos - 1]
        if indels and k % 7 == 3:
            rows.append((pos, f'v{k}', genome[pos - 1:pos + 2], ref))                 # deletion
        elif indels and k % 7 == 5:
            rows.append((pos, f'v{k}', ref, ref + 'GA'))                              # insertion
        elif k % 7 == 6:
            rows.append((pos, f'v{k}', genome[pos - 1:pos + 1],
                         ''.join('ACGT'[('ACGT'.index(b) + 1) % 4] for b in genome[pos - 1:pos + 1])))
        else:
            alts = [b for b in 'ACGT' if b != ref]
            rows.append((pos, f'v{k}', ref, ','.join(alts[:1 + k % 2])))
    text = ("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=3000>\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n")
    text += ''.join(f"chr1\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\tGT\t0/1\n" for p, i, r, a in rows)
    (tmp_path / 'v.vcf').write_text(text)
    return str(tmp_path / 'v.vcf'), str(tmp_path / 'g.fa'), genome


def run(scorer, vcf, fa, batch_size=16, strand='+'):
    outs = [scorer(b) for b in batches(variant_windows(read_vcf(vcf), fa, L, strand=strand), batch_size)]

    def cat(xs):
        return torch.cat(xs) if isinstance(xs[0], torch.Tensor) else numpy.concatenate(xs)
    n_out = len(outs[0].ref)
    return ([cat([o.ref[i] for o in outs]) for i in range(n_out)],
            [cat([o.alt[i] for o in outs]) for i in range(n_out)],
            [{k: cat([o.scores[i][k] for o in outs]) for k in outs[0].scores[i]} for i in range(n_out)],
            [v for o in outs for v in o.variants])


def test_scores_equal_full_forwards_and_fast_path_is_used(tmp_path, caplog):
    torch.manual_seed(0)
    model = TwoHeads().eval()
    vcf, fa, _ = make_inputs(tmp_path)
    names = ['diff', 'logit', 'deepsea_effect']
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ref, alt, scores, variants = run(VariantScorer(model, scores=names, func=lambda y: y[0]), vcf, fa)
    assert any('fast path for substitutions' in r.getMessage() for r in caplog.records)
    wins = [w for w in variant_windows(read_vcf(vcf), fa, L)]
    assert [w.variant for w in wins] == variants and len(variants) > 40
    from kipoi_tanger.variants.windows import one_hot_codes
    Xr = one_hot_codes(numpy.stack([w.ref for w in wins])).float()
    Xa = one_hot_codes(numpy.stack([w.alt for w in wins])).float()
    yr, ya = predict(model, Xr)[0], predict(model, Xa)[0]
    scale = float(yr.abs().max())
    assert float((ref[0] - yr).abs().max()) <= 1e-5 * scale
    assert float((alt[0] - ya).abs().max()) <= 1e-5 * scale
    want = compute_scores(yr, ya, names)
    for n in names:
        assert numpy.allclose(scores[0][n], want[n], rtol=1e-4, atol=1e-5)


def test_multi_output_rc_and_minus_strand(tmp_path):
    torch.manual_seed(1)
    model = TwoHeads().eval()
    vcf, fa, _ = make_inputs(tmp_path, n=20, seed=1)
    for strand in ('+', '-'):
        ref, alt, scores, _ = run(VariantScorer(model, scores=['diff'], rc=True), vcf, fa, 8, strand)
        full = run(VariantScorer(model, scores=['diff'], rc=True, fast=False), vcf, fa, 8, strand)
        assert len(ref) == 2 and ref[1].shape[1:] == (1, L // 3)
        for o in range(2):
            s = float(full[0][o].abs().max())
            assert float((ref[o] - full[0][o]).abs().max()) <= 1e-5 * s
            assert numpy.allclose(scores[o]['diff'], full[2][o]['diff'], atol=1e-5 * s)
    # rc: the mean of the forward and reverse-complement scores
    fwd = run(VariantScorer(model, scores=['diff'], fast=False), vcf, fa)
    wins = list(variant_windows(read_vcf(vcf), fa, L))
    from kipoi_tanger.variants.windows import one_hot_codes
    Xr = one_hot_codes(numpy.stack([w.ref for w in wins])).float().flip(1, 2)
    Xa = one_hot_codes(numpy.stack([w.alt for w in wins])).float().flip(1, 2)
    rc_diff = (predict(model, Xa)[0] - predict(model, Xr)[0]).double().numpy()
    both = run(VariantScorer(model, scores=['diff'], rc=True, fast=False), vcf, fa)
    assert numpy.allclose(both[2][0]['diff'], (fwd[2][0]['diff'] + rc_diff) / 2, atol=1e-6)


def test_non_local_model_runs_full_forwards(tmp_path, caplog):
    torch.manual_seed(2)
    model = GRUModel().eval()
    vcf, fa, _ = make_inputs(tmp_path, n=10, seed=2, indels=False)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        ref, alt, scores, _ = run(VariantScorer(model, scores=['logit']), vcf, fa)
    assert any('not provably local' in r.getMessage() and 'GRU' in r.getMessage() for r in caplog.records)
    assert numpy.isfinite(scores[0]['logit']).all()


def test_restores_model_state(tmp_path):
    model = TwoHeads()
    model.train()
    vcf, fa, _ = make_inputs(tmp_path, n=8, seed=3)
    run(VariantScorer(model, func=lambda y: y[0]), vcf, fa)
    assert model.training and all(m.training for m in model.modules())


def test_identical_to_a_tangermeme_pipeline(tmp_path):
    """tangermeme's VCF reader, pyfaidx windows centred like ours (the SNV at
    L // 2), substitution_effect: the same diff scores for every SNV."""
    torch.manual_seed(4)
    model = TwoHeads().eval()
    vcf, fa, _ = make_inputs(tmp_path, n=30, seed=4, indels=False)
    df = tm_read_vcf(vcf)
    genome = pyfaidx.Fasta(fa)
    X, subs, keys = [], [], []
    for _, row in df.iterrows():
        for alt in row['ALT'].split(','):
            if len(row['REF']) != 1:
                continue
            start = row['POS'] - 1 - L // 2
            X.append(tm_one_hot_encode(str(genome[row['CHROM']][start:start + L]).upper()))
            subs.append([len(subs), L // 2, 'ACGT'.index(alt)])
            keys.append((row['POS'], alt))
    y = tm_substitution_effect(model, torch.stack(X).float(), torch.tensor(subs), func=predict,
                               batch_size=16, device='cpu')
    theirs = (y.y_after[0] - y.y_before[0]).double().numpy()
    ref, alt, scores, variants = run(VariantScorer(model, scores=['diff'], func=lambda y: y[0]), vcf, fa)
    ours = {(v.pos, v.alt): scores[0]['diff'][i] for i, v in enumerate(variants)}
    got = numpy.stack([ours[k] for k in keys])
    assert got.shape == theirs.shape and len(keys) > 30
    assert numpy.allclose(got, theirs, atol=1e-5 * float(y.y_before[0].abs().max()))


def test_disagreement_falls_back_to_full_forwards(tmp_path, monkeypatch):
    from kipoi_tanger import _fast_ism_ops
    torch.manual_seed(5)
    model = TwoHeads().eval()
    vcf, fa, _ = make_inputs(tmp_path, n=12, seed=5)
    real = _fast_ism_ops.conv_local

    def wrong(*a, **k):   # a broken rule must not reach the scores
        out = real(*a, **k)
        out.delta = out.delta * 1.05
        return out
    monkeypatch.setattr(_fast_ism_ops, 'conv_local', wrong)
    with pytest.warns(RuntimeWarning, match='disagrees'):
        ours = run(VariantScorer(model, scores=['diff'], func=lambda y: y[0]), vcf, fa)
    full = run(VariantScorer(model, scores=['diff'], func=lambda y: y[0], fast=False), vcf, fa)
    assert numpy.array_equal(ours[2][0]['diff'], full[2][0]['diff'])
