"""tools.tracks: per-base values at genomic coordinates, written to bigWig and
bedGraph and read back position by position (overlaps averaged, minus-strand
regions reversed, central windows, sorted output), chromosome sizes from
chrom-sizes files and FASTA indexes, and one-line errors."""
import os

import numpy
import pyBigWig
import pytest
import torch

from kipoi_tanger.tools.tracks import (per_base, read_chrom_sizes, regions, track_intervals,
                                       write_bedgraph, write_bigwig)
from kipoi_tanger.utils import one_hot_encode

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, 'example_models', 'motif_cnn', 'example_files')
SIZES = {'chr1': 100, 'chr2': 60, 'chr10': 80}


def expected_track(values, ranges, anchor='exact'):
    """Brute force: {(chrom, pos): mean of every value placed on that base}."""
    acc = {}
    L = values.shape[1]
    for v, c, s, e, st in zip(values, ranges['chr'], ranges['start'], ranges['end'],
                              ranges['strand']):
        off = 0 if anchor == 'exact' else (e - s - L) // 2
        for j in range(L):
            pos = e - 1 - off - j if st == '-' else s + off + j
            acc.setdefault((c, pos), []).append(float(v[j]))
    return {k: numpy.mean(v) for k, v in acc.items()}


def read_bigwig(path, sizes):
    bw = pyBigWig.open(path)
    try:
        assert bw.chroms() == sizes
        return {c: numpy.array(bw.values(c, 0, n), dtype=numpy.float64) for c, n in sizes.items()}
    finally:
        bw.close()


def read_bedgraph(path, sizes):
    lines = [ln.split('\t') for ln in open(path).read().splitlines() if not ln.startswith('track')]
    tracks = {c: numpy.full(n, numpy.nan) for c, n in sizes.items()}
    for c, s, e, v in lines:
        assert numpy.isnan(tracks[c][int(s):int(e)]).all(), 'intervals overlap'
        tracks[c][int(s):int(e)] = float(v)
    keys = [(c.encode(), int(s)) for c, s, _, _ in lines]
    assert keys == sorted(keys), 'bedGraph not sorted (LC_ALL=C sort -k1,1 -k2,2n)'
    return tracks, lines


def assert_matches(tracks, expected, sizes):
    for c, n in sizes.items():
        want = numpy.array([expected.get((c, p), numpy.nan) for p in range(n)])
        numpy.testing.assert_array_equal(numpy.isnan(tracks[c]), numpy.isnan(want), err_msg=c)
        # bigWig and the bedGraph writer keep float32
        numpy.testing.assert_allclose(tracks[c][~numpy.isnan(want)],
                                      want[~numpy.isnan(want)].astype(numpy.float32),
                                      rtol=1e-6, atol=0, err_msg=c)


@pytest.fixture
def layout():
    """Overlapping regions (two chains, mixed strands), an adjacent one, chromosomes
    given out of byte order, and a lone region on chr10."""
    rng = numpy.random.default_rng(0)
    ranges = {'chr': numpy.array([b'chr2', b'chr1', b'chr1', b'chr1', b'chr10', b'chr1']),
              'start': numpy.array([10, 5, 15, 25, 60, 60]),
              'end': numpy.array([30, 25, 35, 45, 80, 80]),
              'strand': numpy.array([b'-', b'+', b'-', b'*', b'+', b'-']),
              'id': numpy.array([b'a', b'b', b'c', b'd', b'e', b'f'])}
    values = rng.normal(size=(6, 20))
    values[5, :3] = values[5, 3]     # a run of equal values for the bedGraph merge
    str_ranges = {k: [x.decode() for x in v] if v.dtype.kind == 'S' else v
                  for k, v in ranges.items()}
    return values, ranges, expected_track(values, str_ranges)


def test_bigwig_round_trip_with_overlaps_and_strands(tmp_path, layout):
    values, ranges, expected = layout
    path = write_bigwig(tmp_path / 'x.bw', values, ranges, SIZES)
    assert_matches(read_bigwig(path, SIZES), expected, SIZES)
    # chr1 5-45 is one chain of three overlapping regions: 15-25 and 25-35 are means of two
    assert numpy.isclose(expected[('chr1', 20)],
                         (values[1, 15] + values[2, 35 - 1 - 20]) / 2)


def test_bedgraph_round_trip_sorted_and_merged(tmp_path, layout):
    values, ranges, expected = layout
    path = write_bedgraph(tmp_path / 'x.bedGraph', values, ranges, SIZES,
                          track_line='track type=bedGraph name=attr')
    assert open(path).readline() == 'track type=bedGraph name=attr\n'
    tracks, lines = read_bedgraph(path, SIZES)
    assert_matches(tracks, expected, SIZES)
    # chr1 < chr10 < chr2 in byte order; region f's four equal values are one line
    assert [ln[0] for ln in lines] == sorted((ln[0] for ln in lines), key=str.encode)
    assert ['chr1', '76', '80'] == lines[[ln[:3] for ln in lines].index(['chr1', '76', '80'])][:3]
    # no chrom sizes: the same file, unchecked
    assert open(write_bedgraph(tmp_path / 'y.bedGraph', values, ranges)).read() == \
        open(path).read().split('\n', 1)[1]


def test_central_window_of_a_profile(tmp_path):
    ranges = {'chr': ['chr1', 'chr1'], 'start': [0, 50], 'end': [50, 100], 'strand': ['+', '-']}
    values = numpy.arange(2 * 30, dtype=float).reshape(2, 30)
    with pytest.raises(ValueError, match=r"50 bp wide but the values have 30 positions; pass "
                                         r"anchor='center'"):
        write_bigwig(tmp_path / 'x.bw', values, ranges, SIZES)
    path = write_bigwig(tmp_path / 'x.bw', values, ranges, SIZES, anchor='center')
    tracks = read_bigwig(path, SIZES)
    assert_matches(tracks, expected_track(values, ranges, anchor='center'), SIZES)
    # + region: bases 10-40 hold 0..29; - region: bases 60-90 hold 59 (at 60) down to 30
    assert tracks['chr1'][10] == 0 and tracks['chr1'][39] == 29
    assert tracks['chr1'][89] == 30 and tracks['chr1'][60] == 59
    assert numpy.isnan(tracks['chr1'][:10]).all() and numpy.isnan(tracks['chr1'][40:60]).all()


def test_strand_rule_against_the_genome(tmp_path):
    """One-hot the example regions as the interval_onehot dataloader does (minus strand
    reverse-complemented); the 'G' row placed on the genome must be G on + regions
    and C on - regions, base for base."""
    genome, name = {}, None
    for line in open(os.path.join(EXAMPLE, 'genome.fa')):
        if line.startswith('>'):
            name = line[1:].split()[0]
            genome[name] = []
        else:
            genome[name].append(line.strip())
    genome = {k: ''.join(v) for k, v in genome.items()}
    bed = [ln.split() for ln in open(os.path.join(EXAMPLE, 'regions.bed'))][:12]
    comp = str.maketrans('ACGT', 'TGCA')
    seqs = [genome[c][int(s):int(e)] for c, s, e, _, _, _ in bed]
    seqs = [s if b[5] == '+' else s.translate(comp)[::-1] for s, b in zip(seqs, bed)]
    X = torch.stack([one_hot_encode(s) for s in seqs])
    ranges = {'chr': [b[0] for b in bed], 'start': [int(b[1]) for b in bed],
              'end': [int(b[2]) for b in bed], 'strand': [b[5] for b in bed],
              'id': [b[3] for b in bed]}
    fai = os.path.join(EXAMPLE, 'genome.fa')
    path = write_bigwig(tmp_path / 'g.bw', X[:, 2], ranges, fai)
    bw = pyBigWig.open(path)
    for c, s, e, _, _, st in bed:
        got = numpy.array(bw.values(c, int(s), int(e)))
        want = numpy.array([b == ('G' if st == '+' else 'C') for b in genome[c][int(s):int(e)]])
        numpy.testing.assert_array_equal(got, want)
    bw.close()


def test_per_base_reductions():
    X = torch.stack([one_hot_encode('ACGTA'), one_hot_encode('GGCAT')]).float()
    hyp = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    numpy.testing.assert_allclose(per_base(hyp, X, 'observed'), (hyp * X).sum(1).numpy())
    numpy.testing.assert_allclose(per_base(hyp, how='sum'), hyp.sum(1).numpy())
    numpy.testing.assert_allclose(per_base(hyp.numpy(), how='mean'), hyp.mean(1).numpy())
    # projected attributions: the sum over the alphabet is the observed base's value
    numpy.testing.assert_allclose(per_base(hyp * X), per_base(hyp, X, 'observed'))
    flat = numpy.ones((2, 5))
    assert per_base(flat) is not flat and (per_base(flat) == flat).all()
    with pytest.raises(ValueError, match="how='observed' needs the one-hot sequences X"):
        per_base(hyp, how='observed')
    with pytest.raises(ValueError, match=r'X has shape \(2, 4, 4\) but values have'):
        per_base(hyp, X[..., :4], 'observed')
    with pytest.raises(ValueError, match="how must be 'sum', 'observed' or 'mean'"):
        per_base(hyp, how='max')


def test_chrom_sizes_from_files(tmp_path):
    fai = os.path.join(EXAMPLE, 'genome.fa.fai')
    sizes = {'chr1': 8000, 'chr2': 8000, 'chr3': 7300}
    assert read_chrom_sizes(fai) == sizes
    assert read_chrom_sizes(os.path.join(EXAMPLE, 'genome.fa')) == sizes
    p = tmp_path / 'hg.chrom.sizes'
    p.write_text('chr1\t248956422\nchrM\t16569\n\n')
    assert read_chrom_sizes(p) == {'chr1': 248956422, 'chrM': 16569}
    fa = tmp_path / 'x.fa'
    fa.write_text('>chr1\nACGT\n')
    cases = [(fa, r"x\.fa: a FASTA without an index \(.*x\.fa\.fai not found\); create it with "
                  r"'samtools faidx"),
             (tmp_path / 'none.sizes', r'none\.sizes: file not found')]
    for text, match in (('chr1\tlots\n', r"bad\.sizes line 1: expected 'name<TAB>length'"),
                        ('chr1\t10\nchr1\t10\n',
                         r'bad\.sizes line 2: chromosome chr1 listed twice'),
                        ('chr1\t0\n', r'bad\.sizes line 1: length of chr1 must be > 0'),
                        ('\n', r'bad\.sizes: no chromosomes')):
        bad = tmp_path / 'bad.sizes'
        bad.write_text(text)
        with pytest.raises(ValueError, match=match):
            read_chrom_sizes(bad)
    for path, match in cases:
        with pytest.raises(ValueError, match=match):
            read_chrom_sizes(path)


def test_regions_past_chromosome_ends_and_unknown_chromosomes(tmp_path):
    sizes = tmp_path / 'g.sizes'
    sizes.write_text('chr1\t100\n')
    values = numpy.ones((2, 20))
    past = {'chr': ['chr1', 'chr1'], 'start': [0, 90], 'end': [20, 110], 'id': ['ok', 'r9']}
    with pytest.raises(ValueError, match=r"chrom sizes .*g\.sizes: region 1 \(id r9, "
                                         r"chr1:90-110 \.\) places bases 90-110 past the end of "
                                         r"chr1 \(length 100\)"):
        write_bigwig(tmp_path / 'x.bw', values, past, sizes)
    values[1] = numpy.arange(20)
    path = write_bigwig(tmp_path / 'x.bw', values, past, sizes, out_of_bounds='clip')
    got = read_bigwig(path, {'chr1': 100})['chr1']
    numpy.testing.assert_array_equal(got[90:], numpy.arange(10))
    below = {'chr': ['chr1'], 'start': [-5], 'end': [15]}
    with pytest.raises(ValueError, match='places bases -5-15 past the end'):
        write_bedgraph(tmp_path / 'x.bg', values[:1], below, sizes)
    with pytest.raises(ValueError, match='places bases below position 0'):
        write_bedgraph(tmp_path / 'x.bg', values[:1], below)
    other = {'chr': ['chrX'], 'start': [0], 'end': [20]}
    with pytest.raises(ValueError, match=r"g\.sizes: has no chromosome 'chrX' for region 0 "
                                         r"\(id 0, chrX:0-20 \.\) \(it has chr1\)"):
        write_bedgraph(tmp_path / 'x.bg', values[:1], other, sizes)


@pytest.mark.parametrize('ranges, values, match', [
    ({'chr': ['chr1'], 'start': [0]}, numpy.ones((1, 5)), r'ranges: missing field\(s\) end'),
    ({'chr': ['chr1'], 'start': [0], 'end': [5, 6]}, numpy.ones((1, 5)),
     'ranges: end has 2 entries but chr has 1'),
    ({'chr': ['chr1'], 'start': [5], 'end': [5]}, numpy.ones((1, 5)), 'has end <= start'),
    ({'chr': ['chr1'], 'start': [0], 'end': [5], 'strand': ['x']}, numpy.ones((1, 5)),
     "strand 'x' is not one of"),
    ({'chr': ['chr1'], 'start': [0], 'end': [5]}, numpy.ones((2, 5)),
     'ranges: 1 regions, but the values have 2 rows'),
    ({'chr': ['chr1'], 'start': [0], 'end': [5]}, numpy.full((1, 5), numpy.nan),
     r'values: 5 NaN/inf value\(s\), the first in row 0 at position 0'),
    ({'chr': ['chr1'], 'start': [0], 'end': [5]}, numpy.ones((1, 4, 5)),
     r'values must have shape \(N, L\); got \(1, 4, 5\) \(reduce \(N, A, L\) with per_base\)'),
])
def test_bad_values_or_ranges_are_one_clear_error(tmp_path, ranges, values, match):
    with pytest.raises(ValueError, match=match) as info:
        write_bigwig(tmp_path / 'x.bw', values, ranges, SIZES)
    assert '\n' not in str(info.value)


def test_regions_reads_kipoi_metadata():
    regs = regions({'chr': numpy.array([b'chr1', b'chr2']), 'start': numpy.array([1, 2]),
                    'end': numpy.array([5, 6]), 'strand': numpy.array([b'-', b'*']),
                    'id': numpy.array([b'x', b'y'])}, n=2)
    assert regs.chrom.tolist() == ['chr1', 'chr2'] and regs.strand.tolist() == ['-', '.']
    assert regs.label(0) == 'region 0 (id x, chr1:1-5 -)'
    runs = list(track_intervals(numpy.array([[1., 2, 3, 4], [5, 6, 7, 8]]), regs))
    assert [(c, s, v.tolist()) for c, s, v in runs] == [('chr1', 1, [4, 3, 2, 1]),
                                                        ('chr2', 2, [5, 6, 7, 8])]


# ---------------------------------------------------------------------------
# results files: export_track and `kipoi-tanger export bigwig|bedgraph`

RANGES = {'chr': ['chr1', 'chr1', 'chr2', 'chr10'], 'start': [5, 15, 10, 40], 'end': [25, 35, 30, 60],
          'strand': ['+', '-', '-', '+'], 'id': ['a', 'b', 'c', 'd']}


def _results(path, datasets, ranges=RANGES, dataloader='dataloaders/interval_onehot/dataloader.py::IntervalOneHot',
             **attrs):
    import h5py
    import json
    with h5py.File(path, 'w') as f:
        for k, v in datasets.items():
            f[k] = v
        if ranges is not None:
            for k, v in ranges.items():
                f[f'metadata/ranges/{k}'] = (numpy.asarray(v, dtype=object) if isinstance(v[0], str)
                                             else numpy.asarray(v, dtype=numpy.int64))
        f.attrs['dataloader'] = dataloader
        f.attrs['layout'] = '(A, L)'
        f.attrs['alphabet'] = json.dumps(list('ACGT'))
        for k, v in attrs.items():
            f.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
    return str(path)


def _one_hot(n, L, seed=0):
    idx = numpy.random.default_rng(seed).integers(0, 4, (n, L))
    return numpy.eye(4, dtype=numpy.float32)[idx].transpose(0, 2, 1)


def _sizes_file(tmp_path):
    path = tmp_path / 'genome.sizes'
    path.write_text(''.join(f'{c}\t{n}\n' for c, n in SIZES.items()))
    return str(path)


def test_export_attributions_read_back(tmp_path, capsys):
    from kipoi_tanger import cli
    X = _one_hot(4, 20)
    hyp = numpy.random.default_rng(1).normal(size=(4, 4, 20)).astype(numpy.float32)
    sizes = _sizes_file(tmp_path)
    # projected attributions: the sum over the alphabet is the observed base's value
    proj = _results(tmp_path / 'p.h5', {'attributions': hyp * X, 'inputs': X}, op='deeplift-shap')
    assert cli.main(['export', 'bigwig', proj, '--chrom_sizes', sizes, '-o', str(tmp_path / 'p.bw')]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [str(tmp_path / 'p.bw'), '# attributions, sum over ACGT of 4 regions; minus-strand regions reversed']
    expected = expected_track((hyp * X).sum(1), RANGES)
    assert_matches(read_bigwig(str(tmp_path / 'p.bw'), SIZES), expected, SIZES)
    # hypothetical attributions: the observed base by default (reads inputs); their sum is refused
    hpath = _results(tmp_path / 'h.h5', {'attributions': hyp, 'inputs': X}, op='deeplift-shap',
                     parameters={'hypothetical': True})
    assert cli.main(['export', 'bedgraph', hpath, '--chrom_sizes', sizes, '-o', str(tmp_path / 'h.bedGraph'),
                     '--track_line']) == 0
    capsys.readouterr()
    tracks, _ = read_bedgraph(str(tmp_path / 'h.bedGraph'), SIZES)
    assert open(tmp_path / 'h.bedGraph').readline() == 'track type=bedGraph name=h\n'
    assert_matches(tracks, expected, SIZES)
    assert cli.main(['export', 'bigwig', hpath, '--chrom_sizes', sizes, '-o', str(tmp_path / 'm.bw'),
                     '--reduce', 'mean']) == 0
    assert_matches(read_bigwig(str(tmp_path / 'm.bw'), SIZES), expected_track(hyp.astype(numpy.float64).mean(1), RANGES), SIZES)
    capsys.readouterr()
    assert cli.main(['export', 'bigwig', hpath, '--chrom_sizes', sizes, '-o', str(tmp_path / 's.bw'),
                     '--reduce', 'sum']) == 2
    assert 'hypothetical scores' in capsys.readouterr().err and not os.path.exists(tmp_path / 's.bw')


def test_export_strand_rule_from_the_file_or_the_user(tmp_path, capsys):
    from kipoi_tanger import cli
    X = _one_hot(4, 20)
    sizes = _sizes_file(tmp_path)
    path = _results(tmp_path / 'u.h5', {'attributions': X * 2.0}, dataloader='my.Loader')
    out = str(tmp_path / 'u.bw')
    assert cli.main(['export', 'bigwig', path, '--chrom_sizes', sizes, '-o', out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and '--strand rc' in err[0] and not os.path.exists(out)
    assert cli.main(['export', 'bigwig', path, '--chrom_sizes', sizes, '-o', out, '--strand', 'forward']) == 0
    forward = dict(RANGES, strand=['+'] * 4)
    assert_matches(read_bigwig(out, SIZES), expected_track((X * 2.0).sum(1), forward), SIZES)
    # a dataloader that recorded use_strand=False: not reversed, and --strand rc contradicts it
    path = _results(tmp_path / 'f.h5', {'attributions': X * 2.0}, dataloader_args={'use_strand': False})
    assert cli.main(['export', 'bedgraph', path, '--chrom_sizes', sizes, '-o', str(tmp_path / 'f.bg')]) == 0
    assert_matches(read_bedgraph(str(tmp_path / 'f.bg'), SIZES)[0], expected_track((X * 2.0).sum(1), forward),
                   SIZES)
    capsys.readouterr()
    assert cli.main(['export', 'bigwig', path, '--chrom_sizes', sizes, '-o', out, '--strand', 'rc']) == 2
    assert 'drop --strand' in capsys.readouterr().err


def test_export_profile_output_by_name_and_label(tmp_path, capsys):
    from kipoi_tanger import cli
    profile = numpy.random.default_rng(2).normal(size=(4, 2, 12)).astype(numpy.float32)
    sizes = _sizes_file(tmp_path)
    path = _results(tmp_path / 'p.h5', {'preds/0': profile, 'preds/1': profile[:, :, 0]},
                    output_names=['profile', 'counts'], column_labels={'profile': ['CTCF', 'GATA1']})
    out = str(tmp_path / 'g.bw')
    assert cli.main(['export', 'bigwig', path, '--chrom_sizes', sizes, '-o', out, '--values', 'preds/profile',
                     '--task', 'GATA1']) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith('# profile, track GATA1 of 4 regions')
    # a profile of the central 12 bases of the 20-bp regions
    assert_matches(read_bigwig(out, SIZES), expected_track(profile[:, 1], RANGES, anchor='center'), SIZES)
    for argv, msg in ((['--values', 'preds/profile'], '2 columns (CTCF, GATA1); choose one with --task'),
                      (['--values', 'preds/profile', '--task', 'TAL1'], 'one of CTCF, GATA1'),
                      (['--values', 'preds/counts'], 'separate targets make no track'),
                      (['--values', 'preds/nope'], 'no such output; the file has profile, counts'),
                      (['--values', 'preds/profile', '--task', '0', '--reduce', 'sum'], '--reduce: only for'),
                      (['--values', 'nonsense'], 'expected attributions, ism[/<output>] or preds/<output>')):
        assert cli.main(['export', 'bigwig', path, '--chrom_sizes', sizes, '-o', str(tmp_path / 'x.bw')]
                        + argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], (argv, err)
    assert not os.path.exists(tmp_path / 'x.bw')
    assert [f for f in os.listdir(tmp_path) if 'partial' in f] == []


def test_export_ism_scores(tmp_path, capsys):
    """The ism op's datasets: ism (N, A, W, *output) and y0 (N, *output), window from ism_start."""
    from kipoi_tanger import cli
    rng = numpy.random.default_rng(3)
    y0 = rng.normal(size=(4, 1)).astype(numpy.float32)
    ism = (y0[:, None, None, :] + rng.normal(size=(4, 4, 8, 1))).astype(numpy.float32)
    sizes = _sizes_file(tmp_path)
    path = _results(tmp_path / 'i.h5', {'ism': ism, 'y0': y0}, op='ism', ism_start=6, ism_end=14,
                    output_names=['counts'])
    out = str(tmp_path / 'i.bedGraph')
    assert cli.main(['export', 'bedgraph', path, '--chrom_sizes', sizes, '-o', out, '--values', 'ism']) == 0
    assert 'ISM counts: mean change over ACGT' in capsys.readouterr().out
    effect = (ism[..., 0].astype(numpy.float64) - y0[:, None, None, 0]).mean(axis=1)
    # the window [6, 14) of each 20-bp input: + regions start + 6, - regions end - 14
    window = dict(RANGES, start=[s + 6 if st == '+' else e - 14 for s, e, st in
                                 zip(RANGES['start'], RANGES['end'], RANGES['strand'])])
    window['end'] = [s + 8 for s in window['start']]
    assert_matches(read_bedgraph(out, SIZES)[0], expected_track(effect, window), SIZES)
    assert cli.main(['export', 'bedgraph', path, '--chrom_sizes', sizes, '-o', out, '--values', 'ism',
                     '--reduce', 'observed']) == 2
    assert "for ISM, mean or sum" in capsys.readouterr().err


def test_export_needs_region_metadata_and_known_chromosomes(tmp_path, capsys):
    from kipoi_tanger import cli
    X = _one_hot(4, 20)
    sizes = tmp_path / 'small.sizes'
    sizes.write_text('chr1\t100\n')
    for path, msg in ((_results(tmp_path / 'n.h5', {'attributions': X}, ranges=None), 'no metadata/ranges'),
                      (_results(tmp_path / 'r.h5', {'attributions': X}), f"chrom sizes {sizes}: has no chromosome "
                                                                          f"'chr2'")):
        assert cli.main(['export', 'bigwig', path, '--chrom_sizes', str(sizes), '-o', str(tmp_path / 'x.bw')]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err
    assert sorted(os.listdir(tmp_path)) == ['n.h5', 'r.h5', 'small.sizes']


def test_export_ism_of_the_ism_op(tmp_path, capsys):
    """kipoi-tanger ism on basset_like (three labelled tasks), then --values ism --task <label>:
    the file's layout as the ism op writes it."""
    import h5py
    from kipoi_tanger import cli
    model = os.path.join(REPO, 'example_models', 'basset_like')
    h5 = str(tmp_path / 'ism.h5')
    assert cli.main(['ism', model, '--example', '--window', '50:70', '-o', h5, '-m', '-q']) == 0
    fa = os.path.join(model, 'example_files', 'genome.fa')
    out = str(tmp_path / 'ism.bedGraph')
    assert cli.main(['export', 'bedgraph', h5, '--values', 'ism', '--task', 'task1', '--reduce', 'sum',
                     '--chrom_sizes', fa, '-o', out]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith('# ISM probs, task1: sum change over ACGT')
    with h5py.File(h5, 'r') as f:
        effect = (f['ism'][:, :, :, 1].astype(numpy.float64) - f['y0'][:, 1][:, None, None]).sum(axis=1)
        r = {k: f[f'metadata/ranges/{k}'][:] for k in ('chr', 'start', 'end', 'strand')}
    ranges = {k: [x.decode() if isinstance(x, bytes) else x for x in v] for k, v in r.items()}
    window = dict(ranges, start=[s + 50 if st != '-' else e - 70 for s, e, st in
                                 zip(ranges['start'], ranges['end'], ranges['strand'])])
    window['end'] = [s + 20 for s in window['start']]
    sizes = read_chrom_sizes(fa)
    assert_matches(read_bedgraph(out, sizes)[0], expected_track(effect, window), sizes)
