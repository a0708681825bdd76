"""seqlet: recursive_seqlets parity with tangermeme 1.6.0 (random and planted
attribution tracks, float32 and float64, every parameter, the control-based
threshold), output order and types, flanks, and one-line errors."""
import warnings

import numpy
import pandas
import pytest
import torch
from tangermeme import seqlet as tm

from kipoi_tanger.seqlet import FDR_THRESHOLDS, RecursiveSeqletsResult, recursive_seqlets

COLUMNS = ['example_idx', 'start', 'end', 'attribution', 'p-value']


def planted(seed, n=6, length=300, dtype=numpy.float32, scale=0.02, rounded=False):
    """Laplace background with a few high-attribution spans per row (projected
    attributions look like this), optionally rounded to force ties."""
    rng = numpy.random.default_rng(seed)
    X = rng.laplace(size=(n, length)) * scale
    for i in range(n):
        for _ in range(rng.integers(0, 4)):
            j, w = rng.integers(0, length - 12), rng.integers(4, 12)
            X[i, j:j + w] += rng.uniform(2, 8) * scale
    if rounded:
        X = numpy.round(X / scale, 1) * scale
    return X.astype(dtype)


def canonical(df):
    """Rows in a fixed order: tangermeme sorts by p-value with an unstable sort,
    so the order of tied p-values is the only thing that may differ."""
    return df.sort_values(['p-value', 'example_idx', 'start'], kind='stable').reset_index(drop=True)


def assert_same_seqlets(ours, theirs, X):
    assert list(ours.columns) == COLUMNS == list(theirs.columns)
    assert list(ours.dtypes) == list(theirs.dtypes)
    a, b = canonical(ours), canonical(theirs)
    assert len(a) == len(b)
    numpy.testing.assert_array_equal(a[COLUMNS[:3]].to_numpy(), b[COLUMNS[:3]].to_numpy())
    # the null and the p-value lookups are the same sums in the same order
    numpy.testing.assert_allclose(a['p-value'], b['p-value'], rtol=1e-12, atol=0)
    # tangermeme sums attributions in another order: allow rounding at the scale of |X|
    scale = float(numpy.abs(numpy.asarray(X, dtype=numpy.float64)).sum(1).max())
    numpy.testing.assert_allclose(a['attribution'], b['attribution'], rtol=1e-9, atol=1e-12 * scale)
    # ranked by p-value
    assert (numpy.diff(ours['p-value'].to_numpy()) >= 0).all()


CASES = [
    dict(),
    dict(threshold=0.05, additional_flanks=3),
    dict(threshold=1e-4, min_seqlet_len=6, max_seqlet_len=15),
    dict(threshold=0.1, min_seqlet_len=1, max_seqlet_len=8, n_bins=50),
    dict(threshold=1.0, min_seqlet_len=3, max_seqlet_len=10, n_bins=7),
    dict(threshold=0.01, min_seqlet_len=2, max_seqlet_len=40, n_bins=2),
]


# tangermeme's seqlet loops are compiled without a disk cache: every process pays some
# seconds per input dtype, so float32 (what attributions are) runs by default and float64
# with the slow tests.
@pytest.mark.parametrize('case', range(len(CASES)))
@pytest.mark.parametrize('dtype', [numpy.float32,
                                   pytest.param(numpy.float64, marks=pytest.mark.slow)])
def test_parity_with_tangermeme_on_planted_tracks(case, dtype):
    kwargs = CASES[case]
    for seed, rounded in ((case, False), (100 + case, True)):
        X = planted(seed, dtype=dtype, rounded=rounded)
        ours = recursive_seqlets(torch.from_numpy(X), **kwargs)
        theirs = tm.recursive_seqlets(torch.from_numpy(X), **kwargs)
        assert_same_seqlets(ours, theirs, X)
        assert len(ours) > 0


def test_parity_on_random_tracks_of_many_shapes():
    rng = numpy.random.default_rng(7)
    for _ in range(12):
        n, length = int(rng.integers(1, 8)), int(rng.integers(3, 120))
        X = (rng.normal(size=(n, length)) ** int(rng.integers(1, 4))).astype(numpy.float32)
        kwargs = dict(threshold=float(rng.choice([0.01, 0.1, 1.0])),
                      min_seqlet_len=int(rng.integers(1, 6)),
                      max_seqlet_len=int(rng.integers(6, 30)),
                      additional_flanks=int(rng.integers(0, 3)))
        assert_same_seqlets(recursive_seqlets(X, **kwargs), tm.recursive_seqlets(X, **kwargs), X)


def test_seqlets_cover_the_planted_spans_and_nothing_else():
    rng = numpy.random.default_rng(3)
    X = rng.laplace(size=(4, 400)) * 0.01
    spans = [(0, 50, 58), (1, 200, 210), (2, 10, 16), (3, 390, 400)]
    for i, s, e in spans:
        X[i, s:e] += 0.08
    out = recursive_seqlets(X, threshold=1e-6)
    assert len(out) == len(spans)
    for i, s, e in spans:
        (row,) = out[out.example_idx == i].itertuples()
        # the seqlet is the planted span, give or take a background base at each end
        assert abs(row.start - s) <= 1 and abs(row.end - e) <= 1
        numpy.testing.assert_allclose(row.attribution, X[i, row.start:row.end].sum(), rtol=1e-12)


def test_ties_keep_the_calling_order_and_flanks_are_clipped():
    X = numpy.tile(planted(5, n=1, length=200, dtype=numpy.float64), (3, 1))
    X[:, 0:6] += 0.3   # a seqlet at the very start, to see the flank clipped at 0
    out = recursive_seqlets(X, additional_flanks=4)
    # three identical rows: identical seqlets with equal p-values, in example order
    for _, group in out.groupby(['start', 'end']):
        assert group['example_idx'].tolist() == [0, 1, 2]
        assert group['p-value'].nunique() == 1
    plain = recursive_seqlets(X)
    assert len(plain) == len(out)
    numpy.testing.assert_array_equal(numpy.maximum(plain.start - 4, 0), out.start)
    numpy.testing.assert_array_equal(numpy.minimum(plain.end + 4, 200), out.end)
    assert out.start.min() == 0
    for r in out.itertuples():
        numpy.testing.assert_allclose(r.attribution, X[r.example_idx, r.start:r.end].sum(),
                                      rtol=1e-12)


def test_control_threshold_parity_and_result_type():
    X = planted(11, n=8, length=250)
    rng = numpy.random.default_rng(12)
    C = (rng.laplace(size=(20, 200)) * 0.02).astype(numpy.float32)
    for target in (0.1, 0.2, 0.5):
        ours = recursive_seqlets(X, X_control=C, target_fdr=target, return_fdr=True)
        theirs = tm.recursive_seqlets(X, X_control=C, target_fdr=target, return_fdr=True)
        assert isinstance(ours, RecursiveSeqletsResult)
        seqlets, fdr = ours   # positional unpacking, as tangermeme's NamedTuple
        pandas.testing.assert_frame_equal(fdr, theirs.fdr)
        assert_same_seqlets(seqlets, theirs.seqlets, X)
        numpy.testing.assert_array_equal(fdr.threshold, FDR_THRESHOLDS)
        # the estimate, recomputed from the counts
        expected = (fdr.n_control_seqlets + 1) * (X.size / C.size) / fdr.n_seqlets
        numpy.testing.assert_allclose(fdr.fdr, expected.where(fdr.n_seqlets > 0), rtol=1e-12)
        # the seqlets are those called at the largest threshold reaching the target
        chosen = fdr.threshold[fdr.fdr <= target].iloc[0]
        assert_same_seqlets(seqlets, recursive_seqlets(X, threshold=chosen), X)
    # without return_fdr: the frame only
    only = recursive_seqlets(X, X_control=C, target_fdr=0.2)
    assert isinstance(only, pandas.DataFrame)


def test_unreachable_target_warns_and_returns_no_seqlets():
    X = planted(11, n=8, length=250)
    C = planted(12, n=8, length=250)   # a "control" full of signal: high estimates
    with pytest.warns(UserWarning, match=r'target_fdr=0\.001: the lowest estimate is'):
        out = recursive_seqlets(X, X_control=C, target_fdr=0.001)
    assert len(out) == 0 and list(out.columns) == COLUMNS
    with pytest.warns(UserWarning, match='no seqlets are called on X at any threshold'):
        res = recursive_seqlets(numpy.ones((2, 30)), X_control=C, return_fdr=True)
    assert res.fdr.n_seqlets.eq(0).all() and res.fdr.fdr.isna().all()


def test_no_seqlets_for_constant_input_or_nonpositive_threshold():
    for out in (recursive_seqlets(numpy.full((2, 40), 0.5)),
                recursive_seqlets(planted(1), threshold=0),
                recursive_seqlets(planted(1), threshold=-1),
                recursive_seqlets(numpy.random.default_rng(0).normal(size=(2, 3)))):
        assert len(out) == 0
        assert list(out.columns) == COLUMNS
        assert list(out.dtypes) == ['int64', 'int64', 'int64', 'float64', 'float64']


def test_other_dtypes_are_read_as_float64():
    X = planted(2, dtype=numpy.float64)
    ref = recursive_seqlets(X)
    pandas.testing.assert_frame_equal(recursive_seqlets(torch.from_numpy(X)), ref)
    ints = numpy.round(X * 1000).astype(numpy.int32)
    pandas.testing.assert_frame_equal(recursive_seqlets(torch.from_numpy(ints)),
                                      recursive_seqlets(ints.astype(numpy.float64)))
    half = torch.from_numpy(X).half()   # tangermeme refuses float16
    assert_same_seqlets(recursive_seqlets(half), recursive_seqlets(half.double()), X)


@pytest.mark.parametrize('kwargs, match', [
    (dict(X=numpy.zeros(10)), r'X must have shape \(N, L\)'),
    (dict(X=numpy.zeros((2, 4, 10))), r'X must have shape \(N, L\)'),
    (dict(X=numpy.zeros((0, 10))), 'requires X to be non-empty'),
    (dict(X=numpy.where(numpy.arange(10) == 3, numpy.nan, 1.0)[None]),
     'X holds 1 NaN/inf value.*example 0, position 3'),
    (dict(threshold=1.5), 'threshold must be a p-value of at most 1; got 1.5'),
    (dict(threshold=float('nan')), 'threshold must be a p-value of at most 1; got nan'),
    (dict(min_seqlet_len=0), 'min_seqlet_len must be at least 1; got 0'),
    (dict(min_seqlet_len=8, max_seqlet_len=5), 'max_seqlet_len must be at least 8; got 5'),
    (dict(max_seqlet_len=5.0), 'max_seqlet_len must be an integer; got 5.0'),
    (dict(n_bins=1), 'n_bins must be at least 2; got 1'),
    (dict(additional_flanks=-1), 'additional_flanks must be at least 0; got -1'),
    (dict(return_fdr=True), 'return_fdr=True requires X_control'),
    (dict(X_control=numpy.zeros(5)), r'X_control must have shape \(N, L\)'),
    (dict(X_control=numpy.ones((2, 5)), target_fdr=float('nan')), 'target_fdr must be a number'),
])
def test_bad_input_is_one_clear_error(kwargs, match):
    kwargs = dict(kwargs)
    X = kwargs.pop('X', planted(0, n=2, length=50))
    with pytest.raises(ValueError, match=match) as info:
        recursive_seqlets(X, **kwargs)
    assert '\n' not in str(info.value)


def test_signature_and_defaults_match_tangermeme():
    import inspect
    ours = inspect.signature(recursive_seqlets).parameters
    theirs = inspect.signature(tm.recursive_seqlets).parameters
    assert list(ours) == list(theirs)
    assert [p.default for p in ours.values()] == [p.default for p in theirs.values()]
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # a plain call warns about nothing
        recursive_seqlets(planted(0))
