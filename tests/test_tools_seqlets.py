"""tools.seqlets on the demo model: DeepLIFT/SHAP of example_models/motif_cnn on
its example regions, seqlets, TOMTOM names from the shipped motifs.meme, placed
on the genome and checked against the planted motifs (planted.bed); parity of
the one-hot naming with tangermeme.annotate.annotate_seqlets; q-values against
scipy; the strand rule; BED/TSV files read back; one-line errors."""
import importlib
import os
import sys
import warnings

import numpy
import pandas
import pytest
import torch
from scipy.stats import false_discovery_control

from kipoi_tanger.deep_lift_shap import deep_lift_shap
from kipoi_tanger.seqlet import recursive_seqlets
from kipoi_tanger.tools.seqlets import (genomic_seqlets, name_seqlets, read_motifs,
                                        seqlet_queries, write_bed, write_tsv)
from kipoi_tanger.utils import one_hot_encode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(REPO, 'example_models', 'motif_cnn')
EXAMPLE = os.path.join(MODEL_DIR, 'example_files')
MEME = os.path.join(MODEL_DIR, 'motifs.meme')
COMP = str.maketrans('ACGT', 'TGCA')


def _load(names=('simulate', 'model', 'train', 'evaluate')):
    """The model dir's scripts, without leaving them in sys.modules / sys.path
    (other zoo models ship modules with the same names)."""
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    path = list(sys.path)
    sys.path.insert(0, MODEL_DIR)
    try:
        return importlib.import_module('evaluate'), importlib.import_module('model'), \
            importlib.import_module('make_motifs')
    finally:
        sys.path[:] = path
        for n in names + ('make_motifs',):
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def _bed(path):
    return pandas.read_csv(path, sep='\t', header=None,
                           names=['chr', 'start', 'end', 'name', 'score', 'strand'])


@pytest.fixture(scope='module')
def demo():
    """Attributions of the count output on the 32 example regions, one-hot as the
    interval_onehot dataloader does (minus-strand regions reverse-complemented)."""
    evaluate, model, _ = _load()
    genome, name = {}, None
    for line in open(os.path.join(EXAMPLE, 'genome.fa')):
        if line.startswith('>'):
            name = line[1:].split()[0]
            genome[name] = []
        else:
            genome[name].append(line.strip())
    genome = {k: ''.join(v) for k, v in genome.items()}
    regions = _bed(os.path.join(EXAMPLE, 'regions.bed'))
    seqs = [genome[c][s:e] if st == '+' else genome[c][s:e].translate(COMP)[::-1]
            for c, s, e, st in zip(regions.chr, regions.start, regions.end, regions.strand)]
    X = torch.stack([one_hot_encode(s) for s in seqs]).float()
    net = model.CountsOnly(evaluate.load_model())
    attr = deep_lift_shap(net, X, n_shuffles=10, random_state=0)
    ranges = {'chr': regions.chr.to_numpy(), 'start': regions.start.to_numpy(),
              'end': regions.end.to_numpy(), 'strand': regions.strand.to_numpy(),
              'id': regions.name.to_numpy()}
    seqlets = recursive_seqlets(attr.sum(1))
    return X, attr, ranges, seqlets


@pytest.mark.parametrize('query', ['attribution', 'onehot'])
def test_planted_motifs_come_out_named_where_they_were_planted(demo, query):
    X, attr, ranges, seqlets = demo
    named = name_seqlets(seqlets, MEME, X=X, attributions=attr, query=query)
    placed = genomic_seqlets(named, ranges, length=X.shape[-1])
    planted = _bed(os.path.join(EXAMPLE, 'planted.bed'))
    effect = planted[planted.name != 'control']
    assert len(effect) == 36
    expected_name = {'gata': 'GATA GATAAG', 'ebox': 'Ebox CAGCTG'}
    for p in effect.itertuples():
        hits = placed[(placed.chrom == p.chr) & (placed.chrom_start < p.end)
                      & (placed.chrom_end > p.start)]
        assert len(hits) == 1, (p, hits)
        (h,) = hits.itertuples()
        # the seqlet holds the whole planted 6-mer, named after it, on its strand
        assert h.chrom_start <= p.start and h.chrom_end >= p.end
        assert h.chrom_end - h.chrom_start <= 14
        assert h.named and h.motif == expected_name[p.name] and h.motif_qvalue <= 0.05
        assert h.strand == (p.strand if p.name == 'gata' else '.')   # the E-box is a palindrome
    # every seqlet is one of those: none on control motifs or in motif-free regions
    assert len(placed) == 36 and placed.named.all()


def test_onehot_naming_matches_tangermeme_annotate_seqlets(demo):
    from tangermeme.annotate import annotate_seqlets
    X, attr, ranges, seqlets = demo
    ours = name_seqlets(seqlets, MEME, X=X, query='onehot')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        idx, pvals = annotate_seqlets(X, seqlets, MEME, n_jobs=1)
    numpy.testing.assert_array_equal(ours.motif_idx.to_numpy(), idx[:, 0].numpy())
    numpy.testing.assert_allclose(ours.motif_pvalue.to_numpy(), pvals[:, 0].numpy(), rtol=1e-12)


def test_qvalues_are_benjamini_hochberg_over_the_motif_file(demo):
    from memelite import tomtom
    X, attr, _, seqlets = demo
    motifs = read_motifs(MEME)
    named = name_seqlets(seqlets, motifs, X=X, attributions=attr)
    queries = seqlet_queries(seqlets, attributions=attr)
    # the queries are the seqlets' attributions, scaled to a largest column sum of 1
    for q, s in zip(queries, seqlets.itertuples()):
        raw = attr[s.example_idx, :, s.start:s.end].numpy()
        numpy.testing.assert_allclose(q, raw / numpy.abs(raw).sum(0).max(), rtol=1e-6)
    p = tomtom(queries, list(motifs.values()), n_jobs=1)[0]
    best = p.argmin(1)
    numpy.testing.assert_array_equal(named.motif_idx, best)
    q = numpy.array([false_discovery_control(row, method='bh') for row in p])
    numpy.testing.assert_allclose(named.motif_qvalue, q[numpy.arange(len(p)), best], rtol=1e-12)
    # units do not matter: the same result from attributions scaled by a power of two
    # (exact in floating point; TOMTOM's score bins make p-values sensitive to the last bit)
    again = name_seqlets(seqlets, motifs, attributions=attr * 1024)
    pandas.testing.assert_frame_equal(again, named)


def test_genomic_coordinates_and_strand_rule():
    seqlets = pandas.DataFrame({'example_idx': [0, 1, 1, 2], 'start': [2, 2, 0, 5],
                                'end': [6, 6, 3, 10], 'p-value': [1e-5, 1e-3, 0.5, 1e-120],
                                'motif': ['M a', 'M a', 'P', 'M a'],
                                'motif_strand': ['+', '+', '.', '-'],
                                'named': [True, True, True, False]})
    ranges = {'chr': ['chr2', 'chr1', 'chr1'], 'start': [100, 200, 300],
              'end': [110, 210, 312], 'strand': ['+', '-', '-'], 'id': ['a', 'b', 'c']}
    with pytest.raises(ValueError, match='region 2 .* is 12 bp wide but the values have 10'):
        genomic_seqlets(seqlets, ranges, length=10)
    ranges['end'][2] = 310
    out = genomic_seqlets(seqlets, ranges, length=10)
    # + region: start + s; - region: [end - e, end - s) and the motif's strand flips
    assert out[['chrom', 'chrom_start', 'chrom_end', 'strand', 'region_id']].values.tolist() == [
        ['chr2', 102, 106, '+', 'a'], ['chr1', 204, 208, '-', 'b'],
        ['chr1', 207, 210, '.', 'b'], ['chr1', 300, 305, '.', 'c']]
    centred = genomic_seqlets(seqlets.iloc[:2], ranges, length=6, anchor='center')
    assert centred.chrom_start.tolist() == [104, 202]
    with pytest.raises(ValueError, match='example_idx up to 2 but ranges has 2 regions'):
        genomic_seqlets(seqlets, {k: v[:2] for k, v in ranges.items()}, length=10)
    with pytest.raises(ValueError, match='start/end outside the input length 8'):
        genomic_seqlets(seqlets, ranges, length=8)


def test_bed_and_tsv_files(tmp_path, demo):
    X, attr, ranges, seqlets = demo
    placed = genomic_seqlets(name_seqlets(seqlets, MEME, attributions=attr), ranges, 500)
    placed.loc[3, 'named'] = False          # an unnamed seqlet: '.' name and strand
    bed = _bed(write_bed(placed, tmp_path / 's.bed'))
    assert len(bed) == len(placed)
    keys = list(zip(bed.chr.map(str.encode), bed.start))
    assert keys == sorted(keys)
    by_pos = placed.set_index(['chrom', 'chrom_start'])
    for r in bed.itertuples():
        src = by_pos.loc[(r.chr, r.start)]
        assert r.end == src.chrom_end
        assert r.name == (src.motif.replace(' ', '_') if src.named else '.')
        assert r.strand == (src.strand if src.named else '.')
        assert r.score == min(1000, round(-10 * numpy.log10(src['p-value'])))
    assert set(bed.name) == {'GATA_GATAAG', 'Ebox_CAGCTG', '.'}
    extra = pandas.read_csv(write_bed(placed, tmp_path / 'x.bed', extra_columns=True), sep='\t')
    assert list(extra.columns[:7]) == ['#chrom', 'chrom_start', 'chrom_end', 'name', 'score',
                                       'strand', 'region_id']
    tsv = pandas.read_csv(write_tsv(placed, tmp_path / 's.tsv'), sep='\t')
    assert list(tsv.columns[:6]) == ['chrom', 'chrom_start', 'chrom_end', 'name', 'score', 'strand']
    assert len(tsv) == len(placed)
    numpy.testing.assert_array_equal(tsv['p-value'].to_numpy(), numpy.sort(tsv['p-value']))
    numpy.testing.assert_allclose(tsv.attribution, placed.attribution, rtol=1e-5)
    numpy.testing.assert_array_equal(tsv.start, placed.start)
    with pytest.raises(ValueError, match='no genomic coordinates .* genomic_seqlets first'):
        write_bed(seqlets, tmp_path / 'y.bed')


def test_palindromes_and_empty_queries():
    motifs = {'pal': numpy.eye(4)[[1, 0, 3, 2]].T * 0.97 + 0.0075,      # CATG, its own rc
              'gata': numpy.eye(4)[[2, 0, 3, 0]].T * 0.97 + 0.0075}
    X = torch.stack([one_hot_encode('TTCATGTT'), one_hot_encode('TTTATCTT'),
                     one_hot_encode('NNNNNNNN')]).float()
    seqlets = pandas.DataFrame({'example_idx': [0, 1, 2], 'start': [1, 1, 1], 'end': [7, 7, 7]})
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # memelite: fewer than 25 targets
        out = name_seqlets(seqlets, motifs, X=X, query='onehot')
    assert out.motif.tolist()[:2] == ['pal', 'gata']
    assert out.motif_strand.tolist() == ['.', '-', '']
    assert out.motif.tolist()[2] == '' and numpy.isnan(out.motif_pvalue[2]) and not out.named[2]


def test_read_motifs_checks_the_file(tmp_path):
    motifs = read_motifs(MEME)
    assert len(motifs) == 33 and list(motifs)[:3] == ['GATA GATAAG', 'Ebox CAGCTG',
                                                      'control ACGTTC']
    numpy.testing.assert_allclose(motifs['GATA GATAAG'].argmax(0), [2, 0, 3, 0, 0, 2])
    # the shipped file is what make_motifs.py writes
    _, _, make_motifs = _load()
    assert open(MEME).read() == make_motifs.meme_text(make_motifs.PLANTED + make_motifs.DECOYS)
    head = 'MEME version 4\n\nALPHABET= ACGT\n\n'
    good = 'letter-probability matrix: alength= 4 w= 2\n0.7 0.1 0.1 0.1\n0.1 0.1 0.1 0.7\n\n'
    for text, match in ((head, 'no motifs'),
                        (head + 'MOTIF a\n' + good + 'MOTIF a\n' + good,
                         '2 MOTIF lines but 1 distinct names'),
                        (head + 'MOTIF a\nletter-probability matrix: alength= 4 w= 1\n'
                         '0.5 0.1 0.1 0.1\n', "motif 'a' row 1 of its matrix sums to 0.8"),
                        (head + 'MOTIF a\nletter-probability matrix: alength= 4 w= 1\n'
                         '0.5 0.1 0.1\n', 'not a readable MEME motif file')):
        path = tmp_path / 'bad.meme'
        path.write_text(text)
        with pytest.raises(ValueError, match=match) as info:
            read_motifs(path)
        assert 'bad.meme' in str(info.value) and '\n' not in str(info.value)
    with pytest.raises(ValueError, match=r'none\.meme: file not found'):
        read_motifs(tmp_path / 'none.meme')
    with pytest.raises(ValueError, match=r"motif 'GATA GATAAG' has shape \(4, 6\); expected "
                                         r"\(5, width\)"):
        read_motifs(MEME, alphabet_size=5)


def test_query_errors(demo):
    X, attr, _, seqlets = demo
    with pytest.raises(ValueError, match="query='onehot' needs X"):
        seqlet_queries(seqlets, attributions=attr, query='onehot')
    with pytest.raises(ValueError, match="query must be 'attribution' or 'onehot'"):
        seqlet_queries(seqlets, X, attr, query='hyp')
    with pytest.raises(ValueError, match=r'attributions must have shape \(N, A, L\)'):
        seqlet_queries(seqlets, attributions=attr.sum(1))
    bad = seqlets.assign(end=seqlets.end + 1000)
    with pytest.raises(ValueError, match='outside the'):
        seqlet_queries(bad, attributions=attr)


def test_no_seqlets_give_empty_files(tmp_path):
    none = recursive_seqlets(numpy.ones((2, 20)))
    named = name_seqlets(none, MEME, attributions=numpy.ones((2, 4, 20)))
    placed = genomic_seqlets(named, {'chr': ['a', 'b'], 'start': [0, 5], 'end': [20, 25]}, 20)
    assert len(placed) == 0 and placed.motif.dtype.kind in 'OUT'
    assert open(write_bed(placed, tmp_path / 'e.bed')).read() == ''
    tsv = pandas.read_csv(write_tsv(placed, tmp_path / 'e.tsv'), sep='\t')
    assert len(tsv) == 0 and list(tsv.columns[:6]) == ['chrom', 'chrom_start', 'chrom_end',
                                                       'name', 'score', 'strand']
