"""ersatz: substitute / shuffle parity with tangermeme 1.6.0, and the uniform
dinucleotide shuffle (invariants, seeds, uniformity, errors)."""
import collections
import warnings

import numpy
import pytest
import torch
from scipy.stats import chisquare
from tangermeme import ersatz as tm

from kipoi_tanger import _shuffle, ersatz
from kipoi_tanger.ersatz import dinucleotide_shuffle, shuffle, substitute
from kipoi_tanger.utils import one_hot_encode, random_one_hot

ALPHABET = 'ACGT'


def encode(*seqs, dtype=torch.int8):
    return torch.stack([one_hot_encode(s, dtype=dtype) for s in seqs])


def decode(x, alphabet=ALPHABET + 'N'):
    """(A, L) one-hot → string, 'N' for all-zero columns."""
    x = torch.as_tensor(x).float()
    idx = torch.where(x.sum(0) == 0, x.shape[0], x.argmax(0))
    return ''.join(alphabet[i] for i in idx.tolist())


def codes_of(X):
    """(..., A, L) one-hot → (..., L) int codes with A for all-zero columns."""
    X = X.float()
    return torch.where(X.sum(-2) == 0, X.shape[-2], X.argmax(-2))


def dinuc_counts(codes, K):
    """(..., L) codes → (..., K*K) dinucleotide counts."""
    pair = codes[..., :-1] * K + codes[..., 1:]
    return torch.nn.functional.one_hot(pair, K * K).sum(-2)


def eulerian_sequences(s):
    """Every string with the same first character and dinucleotide counts as s."""
    counts = collections.Counter(s[i:i + 2] for i in range(len(s) - 1))
    out = []

    def walk(prefix):
        if len(prefix) == len(s):
            out.append(prefix)
            return
        for pair in sorted(counts):
            if pair[0] == prefix[-1] and counts[pair] > 0:
                counts[pair] -= 1
                walk(prefix + pair[1])
                counts[pair] += 1

    walk(s[0])
    return out


def assert_dinuc_shuffles(X, Y, start=0, end=None, allow_N=False):
    """Y = shuffles of X: one-hot, same ends and dinucleotide counts in the
    window, untouched outside it."""
    N, n, A, L = Y.shape
    end = L if end is None else end
    assert Y.dtype == X.dtype and Y.device == X.device
    col = Y.float().sum(2)
    assert ((col == 1) | ((col == 0) & allow_N)).all()
    assert ((Y == 0) | (Y == 1)).all()
    assert torch.equal(Y[..., :start], X[:, None, :, :start].expand(-1, n, -1, -1))
    assert torch.equal(Y[..., end:], X[:, None, :, end:].expand(-1, n, -1, -1))
    cx = codes_of(X[..., start:end])
    cy = codes_of(Y[..., start:end])
    K = A + 1
    assert torch.equal(dinuc_counts(cy, K), dinuc_counts(cx, K)[:, None].expand(-1, n, -1))
    assert torch.equal(cy[..., 0], cx[:, None, 0].expand(-1, n))
    assert torch.equal(cy[..., -1], cx[:, None, -1].expand(-1, n))


# --------------------------------------------------------------------------- substitute

@pytest.mark.parametrize('dtype', [torch.int8, torch.float32])
@pytest.mark.parametrize('motif,start', [('TGA', None), ('TGA', 0), ('GANNTC', None),
                                         ('GANNTC', 3), ('A', 9), ('ACGTACGTAC', 0)])
def test_substitute_matches_tangermeme_for_string_motifs(dtype, motif, start):
    X = random_one_hot((6, 4, 10), random_state=1).to(dtype)
    X[2, :, 4] = 0  # an N column in X is kept where the motif leaves it
    ours = substitute(X, motif, start=start)
    theirs = tm.substitute(X, motif, start=start)
    assert ours.dtype == dtype
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, X) or motif == decode(X[0])[start:start + len(motif)]


def test_substitute_tensor_motifs_broadcast_and_one_to_one():
    X = random_one_hot((5, 4, 30), random_state=2).float()
    one = encode('GATANNAG').float()
    per = random_one_hot((5, 4, 7), random_state=3).float()
    per[1, :, 2] = 0  # keep the original base at that column of sequence 1
    for motif, start in [(one, None), (one, 22), (per, None), (per, 0)]:
        assert torch.equal(substitute(X, motif, start=start), tm.substitute(X, motif, start=start))
    assert torch.equal(substitute(X, one[0]), substitute(X, one))  # (A, m) is accepted
    assert torch.equal(X, random_one_hot((5, 4, 30), random_state=2).float())  # not modified


def test_substitute_start_default_is_centred():
    X = encode('A' * 200)
    Y = substitute(X, 'CCCCCC')
    assert decode(Y[0]).index('C') == 97  # L // 2 - m // 2
    Y = substitute(encode('A' * 10), 'TGA')
    assert decode(Y[0]) == 'AAAATGAAAA'


@pytest.mark.parametrize('kwargs,match', [
    (dict(motif='ACGTACGTACG'), 'longer'),
    (dict(motif='TGA', start=8), 'start'),
    (dict(motif='TGA', start=-1), 'start'),
    (dict(motif='TGA', start=1.5), 'start'),
    (dict(motif='TGX'), 'TGX|X'),
    (dict(motif='tga'), 't'),
    (dict(motif=''), 'motif'),
    (dict(motif=torch.ones(1, 4, 3)), 'one-hot'),
    (dict(motif=torch.zeros(2, 4, 3)), 'shape'),
    (dict(motif=torch.zeros(1, 5, 3)), 'shape'),
    (dict(motif=[1, 2]), 'motif'),
    (dict(motif='TGA', alphabet=['A', 'C', 'G']), 'alphabet'),
])
def test_substitute_bad_input(kwargs, match):
    X = random_one_hot((3, 4, 10), random_state=0)
    with pytest.raises(ValueError, match=match):
        substitute(X, **kwargs)


def test_substitute_rejects_non_one_hot_X():
    X = random_one_hot((3, 4, 10), random_state=0).float()
    X[0, :, 0] = 0.25
    with pytest.raises(ValueError, match='X: must be one-hot'):
        substitute(X, 'TGA')
    with pytest.raises(ValueError, match='X'):
        substitute(X[0], 'TGA')


# --------------------------------------------------------------------------- shuffle

@pytest.mark.parametrize('start,end,n', [(0, -1, 1), (0, -1, 4), (5, 25, 3), (10, -3, 2)])
def test_shuffle_matches_tangermeme(start, end, n):
    X = random_one_hot((4, 4, 40), random_state=5)
    X[1, :, 12] = 0
    ours = shuffle(X, start=start, end=end, n=n, random_state=7)
    theirs = tm.shuffle(X, start=start, end=end, n=n, random_state=7)
    assert ours.shape == (4, n, 4, 40) and ours.dtype == X.dtype
    assert torch.equal(ours, theirs)
    end_ = 40 + 1 + end if end < 0 else end
    # the window keeps its composition, the rest is untouched
    assert torch.equal(ours[..., start:end_].sum(-1), X[:, None, :, start:end_].sum(-1).expand_as(
        ours[..., 0]))
    assert torch.equal(ours[..., end_:], X[:, None, :, end_:].expand(-1, n, -1, -1))


def test_shuffle_random_state_forms():
    X = random_one_hot((2, 4, 50), random_state=5).float()
    a = shuffle(X, n=3, random_state=numpy.random.RandomState(3))
    assert torch.equal(a, shuffle(X, n=3, random_state=3))
    b = shuffle(X, n=2)  # None: a fresh RandomState, as in tangermeme
    assert torch.equal(b.sum(-1), X[:, None].sum(-1).expand_as(b[..., 0]))


@pytest.mark.parametrize('kwargs', [dict(n=0), dict(start=5, end=5), dict(start=-1),
                                    dict(end=51), dict(random_state='a'), dict(n=1.0)])
def test_shuffle_bad_input(kwargs):
    with pytest.raises(ValueError):
        shuffle(random_one_hot((2, 4, 50), random_state=5), **kwargs)


# --------------------------------------------------------------------------- dinucleotide shuffle

@pytest.mark.parametrize('dtype', [torch.int8, torch.float32, torch.float64, torch.bool,
                                   torch.bfloat16])
def test_dinucleotide_shuffle_invariants(dtype):
    X = random_one_hot((7, 4, 150), random_state=0).to(dtype)
    Y = dinucleotide_shuffle(X, n=6, random_state=3)
    assert Y.shape == (7, 6, 4, 150)
    assert_dinuc_shuffles(X, Y)
    assert not torch.equal(Y[:, 0], X)


def test_dinucleotide_shuffle_long_sequences_and_groups(monkeypatch):
    # Small groups and key chunks so that several of each are used.
    monkeypatch.setattr(_shuffle, '_GROUP_WALKS', 7)
    monkeypatch.setattr(_shuffle, '_CHUNK_BYTES', 3000)
    monkeypatch.setattr(ersatz, '_CHUNK_BYTES', 3000)
    X = random_one_hot((5, 4, 2114), random_state=1)
    Y = dinucleotide_shuffle(X, n=4, random_state=0)
    assert_dinuc_shuffles(X, Y)
    monkeypatch.undo()
    assert torch.equal(Y, dinucleotide_shuffle(X, n=4, random_state=0))


@pytest.mark.parametrize('start,end', [(10, 90), (0, 50), (37, -1), (5, -6), (0, 3)])
def test_dinucleotide_shuffle_window(start, end):
    X = random_one_hot((4, 4, 100), random_state=2).float()
    Y = dinucleotide_shuffle(X, start=start, end=end, n=3, random_state=1) if end - start != 3 \
        else dinucleotide_shuffle(X, start=start, end=end, n=1, random_state=1)
    end_ = 100 + 1 + end if end < 0 else end
    assert_dinuc_shuffles(X, Y, start=start, end=end_)


def test_dinucleotide_shuffle_allow_N():
    X = random_one_hot((6, 4, 120), random_state=4)
    X[0, :, 10:14] = 0
    X[3, :, 0] = 0
    X[5, :, -1] = 0
    with pytest.raises(ValueError, match='allow_N'):
        dinucleotide_shuffle(X, n=2, random_state=0)
    Y = dinucleotide_shuffle(X, n=5, random_state=0, allow_N=True)
    assert_dinuc_shuffles(X, Y, allow_N=True)
    # sequences without N shuffle exactly as they do without allow_N
    Z = random_one_hot((3, 4, 120), random_state=5)
    assert torch.equal(dinucleotide_shuffle(Z, n=4, random_state=9, allow_N=True),
                       dinucleotide_shuffle(Z, n=4, random_state=9))


def test_dinucleotide_shuffle_is_deterministic_and_seeded_per_sequence():
    X = random_one_hot((5, 4, 80), random_state=6)
    a = dinucleotide_shuffle(X, n=4, random_state=12)
    assert torch.equal(a, dinucleotide_shuffle(X, n=4, random_state=12))
    assert not torch.equal(a, dinucleotide_shuffle(X, n=4, random_state=13))
    # int s: sequence i is shuffled with seed s + i, whatever else is in the batch
    for i in range(5):
        assert torch.equal(a[i], dinucleotide_shuffle(X[i:i + 1], n=4, random_state=12 + i)[0])
    # per-row seeds: [k] * N gives every sequence seed k (deep_lift_shap relies on this)
    b = dinucleotide_shuffle(X, n=1, random_state=[3] * 5)
    for i in range(5):
        assert torch.equal(b[i], dinucleotide_shuffle(X[i:i + 1], n=1, random_state=3)[0])
    c = dinucleotide_shuffle(X, n=2, random_state=numpy.array([4, 1, 1, 0, 8]))
    assert torch.equal(c[1], c[2]) or not torch.equal(X[1], X[2])
    assert torch.equal(c[3], dinucleotide_shuffle(X[3:4], n=2, random_state=torch.tensor([0]))[0])


def test_dinucleotide_shuffle_none_seed_uses_numpy_global_rng_not_torch():
    X = random_one_hot((3, 4, 60), random_state=6)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    numpy.random.seed(21)
    a = dinucleotide_shuffle(X, n=3)
    numpy.random.seed(21)
    b = dinucleotide_shuffle(X, n=3)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), before)
    assert not torch.equal(dinucleotide_shuffle(X, n=3), a)


def _chi_square_uniform(seq, draws=2000, seed=0, allow_N=False, **kwargs):
    expected = eulerian_sequences(seq)
    X = encode(seq)
    Y = dinucleotide_shuffle(X, n=draws, random_state=seed, allow_N=allow_N, **kwargs)
    seen = collections.Counter(decode(y) for y in Y[0])
    assert set(seen) == set(expected), set(seen) ^ set(expected)
    return len(expected), chisquare([seen[s] for s in expected]).pvalue


def test_dinucleotide_shuffle_is_uniform():
    """All 27 shuffles of ACCCACGATGATG appear equally often (tangermeme reaches 9)."""
    n_classes, p = _chi_square_uniform('ACCCACGATGATG')
    assert n_classes == 27
    assert p > 1e-3, p


@pytest.mark.parametrize('seq,allow_N', [('AACAGAAATTAC', False), ('GGATNNACGNTT', True),
                                         ('TTTTATTTTAATTTC', False)])
def test_dinucleotide_shuffle_is_uniform_other_sequences(seq, allow_N):
    n_classes, p = _chi_square_uniform(seq, draws=3000, seed=5, allow_N=allow_N)
    assert n_classes >= 40
    assert p > 1e-3, p


def test_dinucleotide_shuffle_uniform_through_the_64_bit_fallback(monkeypatch):
    # Make every 32-bit key of a row tie: each row then comes from the 64-bit path.
    monkeypatch.setattr(_shuffle, '_draw_keys', lambda bitgen, count, E, template, rmask, out:
                        numpy.bitwise_or(numpy.zeros((count, E), numpy.uint32), template, out=out))
    n_classes, p = _chi_square_uniform('ACCCACGATGATG')
    assert n_classes == 27 and p > 1e-3, p


def test_dinucleotide_shuffle_large_alphabet_uses_wilson():
    seq = 'ABCDEFGABDFACEG'  # 64 shuffles
    alphabet = list('ABCDEFG')
    X = torch.stack([one_hot_encode(seq, alphabet=alphabet)])
    Y = dinucleotide_shuffle(X, n=1500, random_state=2)
    assert_dinuc_shuffles(X, Y)
    expected = eulerian_sequences(seq)
    seen = collections.Counter(decode(y, alphabet=alphabet) for y in Y[0])
    assert set(seen) == set(expected)
    assert chisquare([seen[s] for s in expected]).pvalue > 1e-3


def test_dinucleotide_shuffle_identical_shuffles_error():
    X = encode('ACGTACGT', 'ACCCACGATGATG'[:8])
    with pytest.raises(ValueError, match='All dinucleotide shuffles yield identical sequences'):
        dinucleotide_shuffle(X, n=3, random_state=0)
    with pytest.raises(ValueError, match='identical'):
        tm.dinucleotide_shuffle(X, n=3, random_state=0)  # the oracle agrees
    Y = dinucleotide_shuffle(X, n=1, random_state=0)  # one shuffle is fine
    assert decode(Y[0, 0]) == 'ACGTACGT'
    # a window of two positions has nothing to shuffle either (as in tangermeme)
    Z = random_one_hot((2, 4, 20), random_state=0)
    with pytest.raises(ValueError, match='identical'):
        dinucleotide_shuffle(Z, start=4, end=6, n=2, random_state=0)
    with pytest.raises(ValueError, match='identical'):
        tm.dinucleotide_shuffle(Z, start=4, end=6, n=2, random_state=0)


def test_dinucleotide_shuffle_verbose_warns_on_conserved_positions():
    X = encode('ACGTACGTTTGCA')
    with pytest.warns(UserWarning, match='identical across all'):
        dinucleotide_shuffle(X, n=1, random_state=0, verbose=True)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dinucleotide_shuffle(X, n=1, random_state=0)
        dinucleotide_shuffle(random_one_hot((2, 4, 300), random_state=0), n=20, random_state=0,
                             verbose=True)


@pytest.mark.parametrize('X,kwargs,match', [
    ([[1, 0]], {}, 'torch.Tensor'),
    (torch.zeros(4, 10), {}, 'shape'),
    (torch.zeros(0, 4, 10), {}, 'non-empty'),
    (torch.full((1, 4, 10), 0.25), {}, 'one-hot'),
    (torch.ones(1, 4, 10), {}, 'one-hot'),
    (-random_one_hot((1, 4, 10)), {}, 'one-hot'),
    (None, dict(n=0), 'n:'),
    (None, dict(n=2.0), 'n:'),
    (None, dict(start=8, end=4), 'start/end'),
    (None, dict(end=11), 'start/end'),
    (None, dict(start=-2), 'start/end'),
    (None, dict(random_state=1.5), 'random_state'),
    (None, dict(random_state=[1, 2]), 'random_state'),
    (None, dict(random_state=numpy.random.RandomState(0)), 'random_state'),
])
def test_dinucleotide_shuffle_bad_input(X, kwargs, match):
    X = random_one_hot((3, 4, 10), random_state=0) if X is None else X
    with pytest.raises(ValueError, match=match):
        dinucleotide_shuffle(X, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_dinucleotide_shuffle_keeps_cuda_device():
    X = random_one_hot((3, 4, 50), random_state=0).float().cuda()
    Y = dinucleotide_shuffle(X, n=2, random_state=0)
    assert Y.device == X.device
    assert torch.equal(Y.cpu(), dinucleotide_shuffle(X.cpu(), n=2, random_state=0))


def test_numpy_walk_invariants_and_uniformity(monkeypatch):
    """The pure numpy walk (the path without numba) on its own."""
    monkeypatch.setattr(_shuffle, 'kernel', lambda: None)
    X = random_one_hot((6, 4, 300), random_state=8)
    X[2, :, 5:9] = 0
    assert_dinuc_shuffles(X, dinucleotide_shuffle(X, n=5, random_state=1, allow_N=True),
                          allow_N=True)
    n_classes, p = _chi_square_uniform('ACCCACGATGATG')
    assert n_classes == 27 and p > 1e-3, p


@pytest.mark.skipif(_shuffle._numba_walk() is None, reason='numba is not installed')
@pytest.mark.parametrize('case', ['plain', 'window_N', 'ties', 'short'])
def test_compiled_walk_gives_the_numpy_shuffles(monkeypatch, case):
    X = random_one_hot((9, 4, 257), random_state=9)
    kwargs = dict(n=7, random_state=4)
    if case == 'window_N':
        X[1, :, 40:44] = 0
        kwargs.update(start=30, end=-20, allow_N=True)
    elif case == 'ties':  # every row through the 64-bit fallback
        monkeypatch.setattr(_shuffle, '_draw_keys', lambda b, count, E, template, rmask, out:
                            numpy.bitwise_or(numpy.zeros((count, E), numpy.uint32), template,
                                             out=out))
    elif case == 'short':
        X = X[:, :, :3]
        kwargs.update(n=1)
    monkeypatch.setattr(_shuffle, 'kernel', _shuffle._numba_walk)
    compiled = dinucleotide_shuffle(X, **kwargs)
    monkeypatch.setattr(_shuffle, 'kernel', lambda: None)
    assert torch.equal(compiled, dinucleotide_shuffle(X, **kwargs))


# --------------------------------------------------------------------------- API parity

from kipoi_tanger.ersatz import (delete, insert, local_dinucleotide_shuffle,  # noqa: E402
                                 multisubstitute, randomize)
from kipoi_tanger.utils import TangermemeWarning  # noqa: E402
from tm_parity import assert_raises_like, assert_same_api  # noqa: E402


def test_public_api_matches_tangermeme():
    assert_same_api(tm, ersatz)


@pytest.mark.parametrize('case', ['substitute_float_start', 'substitute_motif_batch',
                                  'substitute_start_past_end', 'shuffle_n0', 'shuffle_n_neg',
                                  'shuffle_n_float', 'shuffle_random_state_str', 'insert_float',
                                  'insert_motif_batch', 'insert_N', 'insert_past_end',
                                  'delete_float', 'delete_reversed', 'delete_past_end',
                                  'randomize_n0', 'randomize_probs_1d', 'randomize_probs_sum',
                                  'randomize_neg_end', 'multisubstitute_spacing_count',
                                  'multisubstitute_negative', 'multisubstitute_too_long',
                                  'dinucleotide_identical', 'local_bin_size', 'local_min_bin',
                                  'local_N'])
def test_errors_are_tangermemes_types(case):
    X = random_one_hot((3, 4, 10), random_state=0)
    XN = X.clone()
    XN[0, :, 4] = 0
    calls = {
        'substitute_float_start': lambda m: m.substitute(X, 'TGA', 6.5),
        'substitute_motif_batch': lambda m: m.substitute(X, random_one_hot((2, 4, 3)), 0),
        'substitute_start_past_end': lambda m: m.substitute(X, 'TGA', 8),
        'shuffle_n0': lambda m: m.shuffle(X, n=0),
        'shuffle_n_neg': lambda m: m.shuffle(X, n=-1),
        'shuffle_n_float': lambda m: m.shuffle(X, n=1.0),
        'shuffle_random_state_str': lambda m: m.shuffle(X, random_state='a'),
        'insert_float': lambda m: m.insert(X, 'GGT', start=4.5),
        'insert_motif_batch': lambda m: m.insert(X, random_one_hot((2, 4, 3)), start=2),
        'insert_N': lambda m: m.insert(X, 'GNT', start=2),
        'insert_past_end': lambda m: m.insert(X, 'GGT', start=11),
        'delete_float': lambda m: m.delete(X, 2.0, 5),
        'delete_reversed': lambda m: m.delete(X, 5, 2),
        'delete_past_end': lambda m: m.delete(X, 2, 12),
        'randomize_n0': lambda m: m.randomize(X, 2, 6, n=0, random_state=0),
        'randomize_probs_1d': lambda m: m.randomize(X, 2, 6, probs=[0.25] * 4),
        'randomize_probs_sum': lambda m: m.randomize(X, 2, 6, probs=[[0.5, 0, 0, 0]]),
        'randomize_neg_end': lambda m: m.randomize(X, 2, -1),
        'multisubstitute_spacing_count': lambda m: m.multisubstitute(X, ['GG', 'TT', 'CC'], [1]),
        'multisubstitute_negative': lambda m: m.multisubstitute(X, ['GG', 'TT'], -1, start=0),
        'multisubstitute_too_long': lambda m: m.multisubstitute(X, ['GGGG', 'TTTT'], 3, start=0),
        'dinucleotide_identical': lambda m: m.dinucleotide_shuffle(encode('ACGTACGT'), n=3),
        'local_bin_size': lambda m: m.local_dinucleotide_shuffle(X, bin_size=10),
        'local_min_bin': lambda m: m.local_dinucleotide_shuffle(X, bin_size=6, min_bin_size=8),
        'local_N': lambda m: m.local_dinucleotide_shuffle(XN, bin_size=6, min_bin_size=3),
    }
    assert_raises_like(lambda: calls[case](tm), lambda: calls[case](ersatz))


@pytest.mark.parametrize('dtype', [torch.int8, torch.float32])
@pytest.mark.parametrize('motif,start', [('GGT', None), ('GGT', 0), ('GGT', 4), ('ACGTAC', None)])
def test_insert_matches_tangermeme(dtype, motif, start):
    X = random_one_hot((4, 4, 9), random_state=1).to(dtype)
    X[1, :, 5] = 0  # N columns are carried over
    ours = insert(X, motif, start=start)
    assert ours.dtype == dtype and ours.shape == (4, 4, 9 + len(motif))
    assert torch.equal(ours, tm.insert(X, motif, start=start))
    s = 9 // 2 if start is None else start
    assert torch.equal(ours[..., :s], X[..., :s]) and torch.equal(ours[..., s + len(motif):],
                                                                 X[..., s:])
    assert torch.equal(delete(ours, s, s + len(motif)), X)  # delete undoes insert


def test_insert_tensor_motifs_and_append():
    X = random_one_hot((3, 4, 12), random_state=2)
    one = encode('TTGA')
    per = random_one_hot((3, 4, 2), random_state=3)
    for motif in (one, per):
        assert torch.equal(insert(X, motif, start=3), tm.insert(X, motif, start=3))
    # Deliberate difference: start=L appends (tangermeme refuses it).
    assert decode(insert(X, 'CC', start=12)[0]) == decode(X[0]) + 'CC'


@pytest.mark.parametrize('start,end', [(2, 5), (0, 3), (7, 10), (0, 9)])
def test_delete_matches_tangermeme(start, end):
    X = random_one_hot((3, 4, 10), random_state=4).float()
    X[0, :, 1] = 0
    ours = delete(X, start, end)
    assert torch.equal(ours, tm.delete(X, start, end)) and ours.shape[-1] == 10 - (end - start)
    with pytest.raises(ValueError, match='nothing'):
        delete(X, 0, 10)  # tangermeme: a RuntimeError from torch


@pytest.mark.parametrize('probs', [[[0.25] * 4], [[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.5, 0.5]],
                                   numpy.array([[0.1, 0.2, 0.3, 0.4]])])
@pytest.mark.parametrize('dtype', [torch.int8, torch.float32])
def test_randomize_matches_tangermeme_draws(probs, dtype):
    X = random_one_hot((2, 4, 30), random_state=5).to(dtype)
    X[1, :, 0] = 0
    for n in (1, 3):
        ours = randomize(X, 4, 20, probs=probs, n=n, random_state=8)
        assert ours.shape == (2, n, 4, 30) and ours.dtype == dtype
        assert torch.equal(ours, tm.randomize(X, 4, 20, probs=probs, n=n, random_state=8))
        assert torch.equal(ours[..., :4], X[:, None, :, :4].expand(-1, n, -1, -1))
        assert (ours[..., 4:20].sum(2) == 1).all()
    big = randomize(random_one_hot((2, 4, 4000), random_state=0), 0, 4000, probs=probs,
                    random_state=1)
    freq = big[:, 0].float().mean(-1)
    assert torch.allclose(freq, torch.tensor(probs, dtype=torch.float).expand(2, 4), atol=0.03)
    with pytest.raises(ValueError, match='probs'):
        randomize(X, 4, 20, probs=[[0.25] * 4] * 3)  # tangermeme accepts 3 rows for 2 sequences


@pytest.mark.parametrize('motifs,spacing,start', [
    (['GG', 'TT'], 2, None), (['GG', 'TT'], 2, 0), (['GG', 'TT', 'CC'], [1, 0], 0),
    (['GGG', 'TT'], 1, None), (['GG'], [], 0), (['GG'], 0, None), (['GANT', 'CA'], [3], 2),
])
def test_multisubstitute_matches_tangermeme(motifs, spacing, start):
    X = random_one_hot((3, 4, 12), random_state=6)
    X[2, :, 7] = 0
    ours = multisubstitute(X, motifs, spacing, start=start)
    assert torch.equal(ours, tm.multisubstitute(X, motifs, spacing, start=start))
    # the same as substituting the motifs one after another
    gaps = [spacing] * (len(motifs) - 1) if isinstance(spacing, int) else spacing
    total = sum(map(len, motifs)) + sum(gaps)
    pos = 12 // 2 - total // 2 if start is None else start
    Y = X
    for m, g in zip(motifs, gaps + [0]):
        Y = substitute(Y, m, start=pos)
        pos += len(m) + g
    assert torch.equal(ours, Y)


def test_multisubstitute_tensor_motifs_and_spacings():
    X = random_one_hot((2, 4, 20), random_state=7).float()
    motifs = [encode('GATA').float(), random_one_hot((2, 4, 3), random_state=1).float()]
    assert torch.equal(multisubstitute(X, motifs, [4]), tm.multisubstitute(X, motifs, [4]))
    # a 1-d tensor of spacings is accepted too (tangermeme needs a list)
    assert torch.equal(multisubstitute(X, motifs, torch.tensor([4])),
                       multisubstitute(X, motifs, [4]))


# --------------------------------------------------------------------------- number of shuffles

@pytest.mark.parametrize('seed', range(6))
def test_shuffle_count_formula_matches_enumeration(seed):
    rng = numpy.random.RandomState(seed)
    for _ in range(8):
        L = rng.randint(2, 11)
        seq = ''.join(rng.choice(list('ACGT'[:rng.randint(1, 5)]), size=L))
        codes = numpy.array([['ACGT'.index(c) for c in seq]], dtype=numpy.uint8)
        counts = _shuffle._pair_stats(codes, 4)[0]
        n_log = _shuffle.log_n_shuffles(counts, codes[:, -1].astype(numpy.int64))[0]
        assert round(float(numpy.exp(n_log))) == len(eulerian_sequences(seq)), seq


def test_identical_shuffles_error_is_decided_by_counting():
    # Deliberate difference: AATA has two dinucleotide shuffles (AATA, ATAA: AA, AT, TA
    # each once). tangermeme's walk reaches only AATA, so it raises; ours samples both.
    with pytest.raises(ValueError, match='identical'):
        tm.dinucleotide_shuffle(encode('AATA'), n=20, random_state=0)
    assert eulerian_sequences('AATA') == ['AATA', 'ATAA']
    Y = dinucleotide_shuffle(encode('AATA'), n=20, random_state=0)
    assert {decode(y) for y in Y[0]} == {'AATA', 'ATAA'}
    # Never raised by chance: two shuffles drawn from two options often coincide.
    for seed in range(40):
        dinucleotide_shuffle(encode('AATA'), n=2, random_state=seed)
    # Raised when a window truly has one shuffle, whichever sequence of the batch it is.
    for seqs in (('ACCCACGATGATG', 'AAAAAAA'[:13]), ('TTTTTTTT', 'ACGTTGCA'), ('GATCGATC',)):
        X = encode(*[s[:8].ljust(8, 'A') for s in seqs])
        with pytest.raises(ValueError, match='sequence'):
            dinucleotide_shuffle(X, n=2, random_state=0)


# --------------------------------------------------------------------------- local shuffle

def test_local_dinucleotide_shuffle_invariants():
    X = random_one_hot((3, 4, 200), random_state=11)
    Y = local_dinucleotide_shuffle(X, n=6, bin_size=48, min_bin_size=16, random_state=3)
    assert Y.shape == (3, 6, 4, 200) and Y.dtype == X.dtype
    # every bin keeps its ends and dinucleotides, so the whole sequence does too
    assert_dinuc_shuffles(X, Y)
    assert all(not torch.equal(Y[i, j], X[i]) for i in range(3) for j in range(6))
    assert torch.equal(Y, local_dinucleotide_shuffle(X, n=6, bin_size=48, min_bin_size=16,
                                                     random_state=3))
    assert not torch.equal(Y, local_dinucleotide_shuffle(X, n=6, bin_size=48, min_bin_size=16,
                                                         random_state=4))
    # composition is kept bin by bin: GC of each 48-bp stretch moves far less than under a
    # global shuffle of a sequence whose halves differ
    Z = torch.cat([random_one_hot((1, 4, 100), probs=[0.45, 0.05, 0.05, 0.45], random_state=1),
                   random_one_hot((1, 4, 100), probs=[0.05, 0.45, 0.45, 0.05], random_state=2)],
                  dim=-1)
    local = local_dinucleotide_shuffle(Z, n=20, bin_size=40, min_bin_size=20, random_state=0)
    whole = dinucleotide_shuffle(Z, n=20, random_state=0)
    gc_first_half = lambda S: S[0, :, 1:3, :100].float().sum((1, 2)).mean()  # noqa: E731
    assert abs(gc_first_half(local) - Z[0, 1:3, :100].sum()) < abs(
        gc_first_half(whole) - Z[0, 1:3, :100].sum())


def test_local_dinucleotide_shuffle_warns_about_unshufflable_bins():
    X = encode('A' * 40 + 'ACGTTGCAACGGTACCATGATTGCAGTCAGGCTAACGTAC')
    with pytest.warns(TangermemeWarning, match='no other dinucleotide shuffle'):
        local_dinucleotide_shuffle(X, n=3, bin_size=16, min_bin_size=8, random_state=0)
    assert_raises_like(
        lambda: tm.local_dinucleotide_shuffle(X, n=3, bin_size=16, min_bin_size=8,
                                              random_state=numpy.random.RandomState(0)),
        lambda: local_dinucleotide_shuffle(X, n=3, bin_size=16, min_bin_size=8,
                                           random_state=numpy.random.RandomState(0)),
        match='random_state')


# --------------------------------------------------------------------------- compiled walk

_CACHE_PROBE = r'''
import json, sys, numpy
{patch}
from kipoi_tanger import _shuffle
walk = _shuffle.kernel()
codes = numpy.random.RandomState(0).randint(0, 4, size=(5, 300)).astype(numpy.uint8)
s = _shuffle.Sampler(codes, 3, list(range(5)), 4, 3)
out = [c.copy() for _, _, c in s.groups(lambda s0, s1, n: numpy.empty(n, numpy.uint8))][0]
print(json.dumps({{'compiled': walk is not None, 'hits': sum(walk.stats.cache_hits.values())
                  if walk is not None else 0, 'digest': int(out.astype(numpy.int64).sum()
                  + (out[:, ::7] * numpy.arange(out.shape[0])[:, None]).sum())}}))
'''


def _run_probe(tmp_path, patch='', **env):
    import json
    import os
    import subprocess
    import sys
    full = dict(os.environ, HOME=str(tmp_path / 'home'), XDG_CACHE_HOME=str(tmp_path / 'xdg'),
                **env)
    if 'NUMBA_CACHE_DIR' not in env:
        full.pop('NUMBA_CACHE_DIR', None)
    r = subprocess.run([sys.executable, '-c', _CACHE_PROBE.format(patch=patch)], env=full,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_shuffle._numba_walk() is None, reason='numba is not installed')
def test_compiled_walk_is_cached_outside_a_read_only_package(tmp_path):
    """A non-editable install into a read-only site-packages: numba cannot write next to
    the module, so the machine code goes to the user's cache dir (here XDG_CACHE_HOME)
    and the second process loads it instead of compiling."""
    read_only = ("import numba.core.caching as c\n"
                 "def _ro(self): raise PermissionError('read-only site-packages')\n"
                 "c.InTreeCacheLocator.ensure_cache_path = _ro\n")
    first = _run_probe(tmp_path, read_only)
    second = _run_probe(tmp_path, read_only)
    assert first['compiled'] and second['compiled']
    assert second['hits'] >= 1 and first['digest'] == second['digest']
    assert any((tmp_path / 'xdg').rglob('*.nbi'))


@pytest.mark.skipif(_shuffle._numba_walk() is None, reason='numba is not installed')
def test_compiled_walk_without_any_writable_cache_dir(tmp_path):
    """Nowhere to cache: compiled in memory, no crash, the numpy walk's shuffles."""
    nowhere = ("import numba.core.caching as c\n"
               "def _ro(self): raise PermissionError('read-only')\n"
               "c._CacheLocator.ensure_cache_path = _ro\n"
               "c.InTreeCacheLocator.ensure_cache_path = _ro\n")
    in_memory = _run_probe(tmp_path, nowhere)
    assert in_memory['compiled'] and in_memory['hits'] == 0
    numpy_walk = _run_probe(tmp_path, '', KIPOI_TANGER_NUMBA='0')
    assert not numpy_walk['compiled'] and numpy_walk['digest'] == in_memory['digest']


def test_numpy_walk_is_used_when_numba_fails(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_numba(name, *args, **kwargs):
        if name == 'numba':
            raise ImportError('no numba here')
        return real_import(name, *args, **kwargs)

    X = random_one_hot((4, 4, 120), random_state=3)
    expected = dinucleotide_shuffle(X, n=3, random_state=1)
    monkeypatch.setattr(builtins, '__import__', no_numba)
    _shuffle._numba_walk.cache_clear()
    try:
        assert _shuffle.kernel() is None
        assert torch.equal(dinucleotide_shuffle(X, n=3, random_state=1), expected)
    finally:
        monkeypatch.undo()
        _shuffle._numba_walk.cache_clear()
    assert _shuffle.kernel() is not None or _shuffle._numba_walk() is None
