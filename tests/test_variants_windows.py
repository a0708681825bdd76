"""variants.vcf + variants.windows: records split per ALT with their line numbers,
hand-computed windows for SNVs, MNVs, deletions and insertions on both
strands (odd and even lengths), windows equal to tangermeme's
deletion/insertion effects, every bad record kind skipped with a reason,
strict mode, batches and the skipped-records TSV."""
import gzip
import os

import numpy
import pytest
import torch
from tangermeme.variant_effect import deletion_effect as tm_deletion_effect
from tangermeme.variant_effect import insertion_effect as tm_insertion_effect

from kipoi_tanger.utils import characters, one_hot_encode, reverse_complement
from kipoi_tanger.variants import (REASONS, Skipped, VariantError, Window, batches, read_vcf,
                                   variant_windows, window_span, write_skipped_tsv)

CHR1 = 'AACCGGTTACGTTGCAACGGTACCATGGCATTACGGATCC'   # 40 bp; index = 0-based position
CHR2 = 'acgtnNRYacgtACGTACGTACGTAACCGG'             # soft-masked, N and IUPAC codes

HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=40>
##contig=<ID=chr2,length=30>
##INFO=<ID=DP,Number=1,Type=Integer,Description="depth">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""
RECORDS = [
    ('chr1', 20, 'snv1', 'G', 'A,T'),        # line 6, multi-allelic
    ('chr1', 9, 'del1', 'AC', 'A'),          # line 7
    ('chr1', 15, 'ins1', 'C', 'CAG'),        # line 8
    ('chr1', 25, 'mnv1', 'AT', 'GC'),        # line 9
    ('chr1', 22, 'badref', 'G', 'C'),        # line 10: the FASTA has A
    ('chr3', 5, 'nochrom', 'A', 'C'),        # line 11
    ('chr1', 30, 'sym', 'A', '<DEL>'),       # line 12
    ('chr1', 2, 'edge', 'A', 'C'),           # line 13: window before the start
    ('chr1', 31, 'star', 'T', '*'),          # line 14
    ('chr1', 38, 'nearend', 'T', 'C'),       # line 15: window past the end
    ('chr1', 36, 'iupac', 'G', 'R'),         # line 16
    ('chr1', 33, 'same', 'A', 'A'),          # line 17
]


def write_inputs(tmp_path, records=RECORDS, gz=False):
    fa = tmp_path / 'genome.fa'
    fa.write_text(f">chr1\n{CHR1[:25]}\n{CHR1[25:]}\n>chr2\n{CHR2}\n")
    text = HEADER + ''.join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\tDP={k}\n"
                            for k, (c, p, i, r, a) in enumerate(records))
    vcf = tmp_path / ('in.vcf.gz' if gz else 'in.vcf')
    if gz:
        with gzip.open(vcf, 'wt') as f:
            f.write(text)
    else:
        vcf.write_text(text)
    return str(vcf), str(fa)


def s(codes):
    return ''.join('ACGTN'[c] for c in codes)


def windows_by_id(vcf, fa, length, strand='+'):
    out = {}
    for w in variant_windows(read_vcf(vcf), fa, length, strand=strand):
        if isinstance(w, Window):
            out[(w.variant.id, w.variant.alt)] = w
    return out


@pytest.mark.parametrize('gz', [False, True])
def test_read_vcf_splits_alleles_and_numbers_lines(tmp_path, gz):
    vcf, _ = write_inputs(tmp_path, gz=gz)
    vs = list(read_vcf(vcf))
    assert len(vs) == len(RECORDS) + 1
    assert [(v.id, v.alt, v.record, v.allele, v.line) for v in vs[:3]] == [
        ('snv1', 'A', 0, 0, 6), ('snv1', 'T', 0, 1, 6), ('del1', 'A', 1, 0, 7)]
    assert vs[-1].line == 17 and vs[-1].pos == 33
    with pytest.raises(VariantError, match='no such VCF'):
        list(read_vcf(str(tmp_path / 'missing.vcf')))


def test_hand_computed_windows_plus_strand(tmp_path):
    vcf, fa = write_inputs(tmp_path)
    w = windows_by_id(vcf, fa, 9)
    snv = w[('snv1', 'A')]
    assert (snv.kind, snv.span, snv.allele) == ('snv', (15, 24), 4)
    assert (s(snv.ref), s(snv.alt)) == ('AACGGTACC', 'AACGATACC')
    assert s(w[('snv1', 'T')].alt) == 'AACGTTACC'
    d = w[('del1', 'A')]      # C at 9 deleted; one extra base on the right
    assert (d.kind, d.span, s(d.ref), s(d.alt)) == ('deletion', (5, 15), 'GTTACGTTG', 'GTTAGTTGC')
    i = w[('ins1', 'CAG')]    # AG before 15, centred at L//2 - 1, cut back on the right
    assert (i.kind, i.span, i.allele) == ('insertion', (12, 21), 3)
    assert (s(i.ref), s(i.alt)) == ('TGCAACGGT', 'TGCAGAACG')
    m = w[('mnv1', 'GC')]
    assert (m.kind, m.span, s(m.ref), s(m.alt)) == ('mnv', (21, 30), 'ACCATGGCA', 'ACCGCGGCA')


def test_hand_computed_windows_minus_strand(tmp_path):
    vcf, fa = write_inputs(tmp_path)
    w = windows_by_id(vcf, fa, 9, strand='-')
    snv = w[('snv1', 'A')]    # odd L: the same genome span, reverse-complemented
    assert (snv.span, s(snv.ref), s(snv.alt)) == ((15, 24), 'GGTACCGTT', 'GGTATCGTT')
    d = w[('del1', 'A')]      # the extra base is on the genome's left
    assert (d.span, s(d.ref), s(d.alt)) == ((4, 14), 'CAACGTAAC', 'CAACTAACC')
    i = w[('ins1', 'CAG')]    # rc(AG) = CT at index 3 of what the model sees
    assert (i.span, s(i.ref), s(i.alt)) == ((9, 18), 'GTTGCAACG', 'GTTCTGCAA')
    even = windows_by_id(vcf, fa, 8, strand='-')[('snv1', 'A')]
    assert (even.span, s(even.ref)) == ((16, 24), 'GGTACCGT')        # G at 19 → C at index 4
    plus = windows_by_id(vcf, fa, 8)[('snv1', 'A')]
    assert (plus.span, s(plus.ref)) == ((15, 23), 'AACGGTAC')        # G at index 4
    for L in (8, 9):   # '-' windows are the reverse complement of the span's last L bases
        for wm in windows_by_id(vcf, fa, L, strand='-').values():
            g = CHR1[wm.span[0]:wm.span[1]][-L:]
            assert s(wm.ref) == reverse_complement(g)


def test_window_span_is_centred_like_tangermeme():
    for L in (9, 10, 1000):
        for r, a in ((1, 1), (3, 3), (2, 0), (0, 5), (3, 1)):
            start, end, off, c = window_span(100, r, a, L)
            assert c == L // 2 - max(r, a) // 2 and off == c and end - start == L + max(0, r - a)


@pytest.mark.parametrize('strand', ['+', '-'])
def test_indel_windows_equal_tangermeme_effects(tmp_path, strand):
    """Deletions are tangermeme's deletion_effect, insertions its insertion_effect
    (left=False), applied to the fetched span in the orientation the model reads."""
    rs = numpy.random.RandomState(0)
    genome = ''.join(rs.choice(list('ACGT'), 300))
    (tmp_path / 'g.fa').write_text(f">c\n{genome}\n")
    recs = []
    for k in range(12):
        pos = 100 + 10 * k
        if k % 2:
            n = 1 + k % 4
            recs.append(('c', pos, f'd{k}', genome[pos - 1:pos + n], genome[pos - 1]))
        else:
            ins = ''.join(rs.choice(list('ACGT'), 1 + k % 5))
            recs.append(('c', pos, f'i{k}', genome[pos - 1], genome[pos - 1] + ins))
    text = "##fileformat=VCFv4.2\n##contig=<ID=c,length=300>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    text += ''.join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\n" for c, p, i, r, a in recs)
    (tmp_path / 'v.vcf').write_text(text)

    class Identity(torch.nn.Module):
        def forward(self, X):
            return X.float()
    L = 21
    for w in variant_windows(read_vcf(str(tmp_path / 'v.vcf')), str(tmp_path / 'g.fa'), L, strand=strand):
        assert isinstance(w, Window), w
        g = genome[w.span[0]:w.span[1]]
        X = one_hot_encode(g).unsqueeze(0)
        if strand == '-':
            X = reverse_complement(X)
        if w.kind == 'deletion':
            n = len(w.variant.ref) - 1
            rows = torch.tensor([[0, w.allele + j] for j in range(n)])
            y = tm_deletion_effect(Identity(), X, rows)
        else:
            ins = w.variant.alt[1:]
            if strand == '-':
                ins = ''.join({'A': 'T', 'C': 'G', 'G': 'C', 'T': 'A'}[b] for b in reversed(ins))
            rows = torch.tensor([[0, w.allele, 'ACGT'.index(b)] for b in reversed(ins)])
            y = tm_insertion_effect(Identity(), X, rows)
        assert characters(y.y_before[0]) == s(w.ref)
        assert characters(y.y_after[0]) == s(w.alt)


def test_bad_records_are_skipped_with_reasons(tmp_path):
    vcf, fa = write_inputs(tmp_path)
    items = list(variant_windows(read_vcf(vcf), fa, 9))
    skipped = {i.variant.id: i for i in items if isinstance(i, Skipped)}
    assert {k: v.reason for k, v in skipped.items()} == {
        'badref': 'ref_mismatch', 'nochrom': 'chrom_missing', 'sym': 'symbolic_allele',
        'edge': 'off_chromosome', 'star': 'symbolic_allele', 'nearend': 'off_chromosome',
        'iupac': 'bad_allele', 'same': 'ref_equals_alt'}
    assert set(REASONS) - {'allele_too_long'} == {v.reason for v in skipped.values()}  # see test_review_variants
    assert 'the FASTA has A' in skipped['badref'].detail
    assert sum(isinstance(i, Window) for i in items) == 5
    # the skipped-records TSV
    n = write_skipped_tsv([skipped['badref'], skipped['sym']], str(tmp_path / 'skipped.tsv'))
    rows = (tmp_path / 'skipped.tsv').read_text().splitlines()
    assert n == 2 and rows[0].split('\t')[:2] == ['line', 'chrom']
    assert rows[1].split('\t')[:7] == ['10', 'chr1', '22', 'badref', 'G', 'C', 'ref_mismatch']


def test_strict_mode_raises_on_the_first_bad_record(tmp_path):
    vcf, fa = write_inputs(tmp_path)
    with pytest.raises(VariantError) as e:
        list(variant_windows(read_vcf(vcf), fa, 9, strict=True, source='in.vcf'))
    msg = str(e.value)
    assert '\n' not in msg and msg.startswith('in.vcf: line 10 (chr1:22 G>C): REF differs from the FASTA')


def test_soft_masked_and_iupac_fasta_bases(tmp_path):
    vcf, fa = write_inputs(tmp_path, records=[('chr2', 15, 'x', 'G', 'A')])
    (w,) = list(variant_windows(read_vcf(vcf), fa, 15))
    assert s(w.ref) == 'NACGTACGTACGTAC' and s(w.alt) == 'NACGTACATACGTAC'   # Y → N, acgt upper
    (w2,) = list(variant_windows(read_vcf(vcf), fa, 23))
    assert s(w2.ref).startswith('TNNNNACGT')                                 # n, N, R, Y → N


def test_batches_one_hot_and_carry_skipped(tmp_path):
    vcf, fa = write_inputs(tmp_path)
    bs = list(batches(variant_windows(read_vcf(vcf), fa, 9), batch_size=2))
    assert [len(b.variants) for b in bs] == [2, 2, 1]
    assert sum(len(b.skipped) for b in bs) == 8
    b = bs[0]
    assert b.ref.shape == (2, 4, 9) and b.ref.dtype == torch.int8
    assert characters(b.alt[0]) == 'AACGATACC'
    assert torch.equal(b.ref[0], one_hot_encode('AACGGTACC'))
    with pytest.raises(ValueError, match='batch_size'):
        list(batches([], batch_size=0))
    assert os.path.exists(fa + '.fai')
