"""utils: seed-compatible random_one_hot and the one-hot helpers, against tangermeme."""
import numpy
import pytest
import torch
import tangermeme.utils as tm

from kipoi_tanger.utils import characters, one_hot_encode, random_one_hot, reverse_complement


@pytest.mark.parametrize("shape", [(5, 4, 10), (3, 4, 1000), (2, 20, 7)])
@pytest.mark.parametrize("seed", [0, 1, 123])
def test_random_one_hot_matches_tangermeme(shape, seed):
    assert torch.equal(random_one_hot(shape, random_state=seed),
                       tm.random_one_hot(shape, random_state=seed))


def test_random_one_hot_probs_and_dtype():
    probs = numpy.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])
    ours = random_one_hot((2, 4, 500), probs=probs, random_state=4, dtype=torch.float32)
    assert torch.equal(ours, tm.random_one_hot((2, 4, 500), probs=probs, random_state=4).float())
    assert ours.dtype == torch.float32 and torch.equal(ours.sum(dim=1), torch.ones(2, 500))
    assert ours[0, 0].mean() > 0.6 and ours[1, 3].mean() > 0.6
    shared = random_one_hot((3, 4, 50), probs=[0.25] * 4, random_state=1)
    assert torch.equal(shared, tm.random_one_hot((3, 4, 50), probs=[0.25] * 4, random_state=1))


def test_random_one_hot_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        random_one_hot((4, 10))


@pytest.mark.parametrize("seq", ["ACGT", "NNACGTNTTGCA", "A" * 50, "GATTACA"])
def test_one_hot_encode_matches_tangermeme(seq):
    assert torch.equal(one_hot_encode(seq), tm.one_hot_encode(seq))


def test_one_hot_encode_errors_and_options():
    with pytest.raises(ValueError, match=r"'a' at position 2"):
        one_hot_encode("ACaT")
    with pytest.raises(ValueError, match="also in ignore"):
        one_hot_encode("ACGT", alphabet=['A', 'C', 'G', 'N'])
    X = one_hot_encode("ACGU", alphabet=['A', 'C', 'G', 'U'], dtype=torch.float32)
    assert X.dtype == torch.float32 and torch.equal(X, torch.eye(4))


def test_characters_roundtrip_and_ties():
    seq = "ACGTTGCA"
    assert characters(one_hot_encode(seq)) == seq
    X = one_hot_encode("ANG")
    with pytest.raises(ValueError, match="column 1"):
        characters(X)
    assert characters(X, allow_N=True) == "ANG"
    assert characters(X, force=True) == "AAG"
    pwm = torch.tensor([[0.1, 0.9], [0.5, 0.05], [0.2, 0.0], [0.2, 0.05]])
    assert characters(pwm) == tm.characters(pwm) == "CA"


def test_reverse_complement():
    assert reverse_complement("AACGTN") == "NACGTT"
    X = one_hot_encode("AACGT")
    assert characters(reverse_complement(X)) == "ACGTT"
    batch = random_one_hot((3, 4, 20), random_state=0)
    rc = reverse_complement(batch)  # batches too, a superset of tangermeme's (A, L)
    for i in range(3):
        assert torch.equal(rc[i], tm.reverse_complement(batch[i]))
    with pytest.raises(ValueError, match="position"):
        reverse_complement("ACXT")


# --------------------------------------------------------------------------- API parity

import warnings  # noqa: E402

import pandas  # noqa: E402

from kipoi_tanger import utils  # noqa: E402
from kipoi_tanger.utils import (TangermemeWarning, chunk, entropy, example_to_fasta_coords,  # noqa: E402
                                extract_signal, gc_content, information_content, pwm_consensus,
                                set_seed, unchunk, validate_input)
from tm_parity import assert_raises_like, assert_same_api  # noqa: E402


def test_public_api_matches_tangermeme():
    assert_same_api(tm, utils,
                    # Deliberate omission: kipoi_tanger streams batches from Kipoi dataloaders,
                    # so sequences are never held genome-wide; return_packed=True is refused.
                    omitted={'PackedSequence'},
                    # tangermeme's one_hot_encode swallows unknown keywords (**kwargs); ours
                    # refuses them, so a misspelt keyword is not silently ignored.
                    signature_differences={'one_hot_encode'})
    assert issubclass(TangermemeWarning, UserWarning) and utils.KipoiTangerWarning is TangermemeWarning


@pytest.mark.parametrize("case", ["list_shape", "rc_lowercase", "ohe_list", "characters_batch",
                                  "chunk_overlap", "chunk_short", "unchunk_no_lengths",
                                  "pwm_consensus_3d", "gc_no_gc", "rc_N_refused"])
def test_errors_are_tangermemes_types(case):
    X = tm.random_one_hot((2, 4, 10), random_state=0)
    calls = {
        "list_shape": lambda m: m.random_one_hot([2, 4, 5]),
        "rc_lowercase": lambda m: m.reverse_complement('aCGT'),
        "ohe_list": lambda m: m.one_hot_encode(list('ACGT')),
        "characters_batch": lambda m: m.characters(X),
        "chunk_overlap": lambda m: m.chunk([X[0]], size=5, overlap=5),
        "chunk_short": lambda m: m.chunk([X[0]], size=11),
        "unchunk_no_lengths": lambda m: m.unchunk(torch.zeros(2, 1, 5)),
        "pwm_consensus_3d": lambda m: m.pwm_consensus(X.float()),
        "gc_no_gc": lambda m: m.gc_content(X, alphabet=['A', 'B', 'D', 'T']),
        "rc_N_refused": lambda m: m.reverse_complement('ACN', allow_N=False),
    }
    assert_raises_like(lambda: calls[case](tm), lambda: calls[case](utils))


def test_edge_cases_of_issue_15():
    x = one_hot_encode("ACGTTG")
    assert characters(x[None]) == tm.characters(x[None]) == "ACGTTG"  # (1, A, L) squeezes
    probs = numpy.array([[0.1, 0.2, 0.3, 0.4]])  # (1, A) broadcasts over the batch
    assert torch.equal(random_one_hot((4, 4, 30), probs=probs, random_state=2),
                       tm.random_one_hot((4, 4, 30), probs=probs, random_state=2))
    with pytest.raises(ValueError, match="tuple"):
        random_one_hot([0, 3, 2])
    with pytest.raises(ValueError, match="'a' at position 0"):
        reverse_complement('aCGT')
    with pytest.raises(ValueError, match="probs"):
        random_one_hot((2, 4, 5), probs=[[0.5, 0.5, 0.5, 0.5]])


def test_reverse_complement_custom_maps():
    rna = {'A': 'U', 'C': 'G', 'G': 'C', 'U': 'A'}
    assert reverse_complement('ACGUU', complement_map=rna) == \
        tm.reverse_complement('ACGUU', complement_map=rna) == 'AACGU'
    x = one_hot_encode('AACGT')
    swap = {'A': 'A', 'C': 'G', 'G': 'C', 'T': 'T'}  # complement G<->C only
    assert characters(reverse_complement(x, complement_map=swap)) == 'TCGAA'
    assert torch.equal(reverse_complement(x, complement_map=swap),
                       tm.reverse_complement(x, complement_map=swap))
    # Deliberate difference: maps that are not a permutation of their keys, or whose
    # keys do not match the alphabet axis, give wrong tensors in tangermeme; refused here.
    for bad in ({'A': 'T', 'C': 'T', 'G': 'C', 'T': 'A'}, {'A': 'T', 'T': 'A', 'C': 'C'},
                {'A': 'T', 'C': 'G', 'G': 'C', 'T': 'A', 'N': 'N'}):
        with pytest.raises(ValueError, match="complement_map|keys"):
            reverse_complement(x, complement_map=bad)
    # involution on strings and batches
    s = 'GATTACANNC'
    assert reverse_complement(reverse_complement(s)) == s
    batch = random_one_hot((3, 4, 25), random_state=1)
    assert torch.equal(reverse_complement(reverse_complement(batch)), batch)


def _validate_cases():
    X = tm.random_one_hot((3, 4, 10), random_state=0)
    Xn = X.clone()
    Xn[0, :, 3] = 0
    X2 = X.clone()
    X2[0, :, 3] = 1
    Xf = X.float()
    Xf[0, 0, 3] = 0.5
    return [
        (X, {}), (X, dict(shape=(-1, 4, 10))), (X, dict(shape=(-1, 4, 11))),
        (X, dict(shape=(-1, 4))), (X, dict(dtype=torch.int8)), (X, dict(dtype=torch.float32)),
        (X, dict(min_value=0)), (X, dict(min_value=1)), (X, dict(max_value=0.5)),
        (X, dict(ohe=True)), (Xn, dict(ohe=True)), (Xn, dict(ohe=True, allow_N=True)),
        (X2, dict(ohe=True, allow_N=True)), (Xf, dict(ohe=True)),
        (X.permute(0, 2, 1), dict(ohe=True, ohe_dim=2)), (X.permute(0, 2, 1), dict(ohe=True)),
        (X[:0], dict(ohe=True)), (X.bool(), dict(ohe=True)), (numpy.zeros((2, 2)), {}),
    ]


@pytest.mark.parametrize("i", range(19))
def test_validate_input_agrees_with_tangermeme(i):
    X, kwargs = _validate_cases()[i]
    e_tm = e_kt = None
    try:
        tm.validate_input(X, 'seqs', **kwargs)
    except ValueError as e:
        e_tm = e
    try:
        out = validate_input(X, 'seqs', **kwargs)
    except ValueError as e:
        e_kt = e
    assert (e_tm is None) == (e_kt is None), (e_tm, e_kt)
    if e_kt is None:
        assert out is X
    else:
        assert str(e_kt).startswith('seqs')
        with pytest.warns(TangermemeWarning, match='seqs'):  # only_warn: warnings instead
            assert validate_input(X, 'seqs', only_warn=True, **kwargs) is X


def test_validate_input_nan_fails_a_range_check():
    # Deliberate difference: tangermeme lets NaN through min_value/max_value.
    X = torch.tensor([0.5, float('nan')])
    tm.validate_input(X, 'x', min_value=0)
    with pytest.raises(ValueError, match='NaN'):
        validate_input(X, 'x', min_value=0)


@pytest.mark.parametrize("lengths,size,overlap", [((23, 10), 5, 2), ((23, 10), 6, 3),
                                                  ((23, 10), 5, 0), ((20,), 5, 0), ((24,), 6, 4),
                                                  ((24, 11, 30), 6, 1), ((9, 12), 6, 5)])
def test_chunk_unchunk_match_tangermeme(lengths, size, overlap):
    X = [tm.random_one_hot((1, 4, n), random_state=n)[0] for n in lengths]
    ours = chunk(X, size=size, overlap=overlap)
    assert torch.equal(ours, tm.chunk(X, size=size, overlap=overlap))
    y = torch.randn(len(ours), 3, size)
    for a, b in zip(unchunk(y, lengths=list(lengths), overlap=overlap),
                    tm.unchunk(y, lengths=list(lengths), overlap=overlap)):
        assert torch.equal(a, b)
    # Round trip: unchunking the chunks themselves gives back the covered prefix.
    for x, back in zip(X, unchunk(ours, lengths=numpy.array(lengths), overlap=overlap)):
        assert torch.equal(back, x[:, :back.shape[-1]])
        assert back.shape[-1] > x.shape[-1] - size + overlap // 2 - 1


def test_unchunk_single_block_and_mismatched_counts():
    x = tm.random_one_hot((1, 4, 7), random_state=0)[0]
    blocks = chunk([x], size=6, overlap=2)
    # Deliberate difference: tangermeme drops both margins of a lone block (4 of 6
    # positions); its positions have no neighbour to give them to, so all are kept.
    assert tm.unchunk(blocks, lengths=[7], overlap=2)[0].shape[-1] == 4
    assert torch.equal(unchunk(blocks, lengths=[7], overlap=2)[0], x[:, :6])
    with pytest.raises(ValueError, match="blocks"):
        unchunk(blocks, lengths=[7, 12], overlap=2)  # tangermeme returns an empty tensor
    with pytest.raises(ValueError, match="blocks"):
        unchunk(torch.cat([blocks, blocks]), lengths=[7], overlap=2)  # tangermeme ignores one


def test_entropy_information_content_gc_consensus_match_tangermeme():
    torch.manual_seed(0)
    P = torch.rand(3, 4, 9)
    P[0, :, 2] = 0
    P[1, :, 4] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    assert torch.allclose(entropy(P), tm.entropy(P), rtol=1e-6, atol=1e-7)
    assert torch.allclose(information_content(P), tm.information_content(P), rtol=1e-6, atol=1e-6)
    assert torch.allclose(information_content(P, alphabet_size=20),
                          tm.information_content(P, alphabet_size=20), rtol=1e-6, atol=1e-6)
    assert torch.allclose(entropy(P * 7), entropy(P), rtol=1e-5, atol=1e-6)  # renormalised
    assert entropy(P)[0, 2] == 0 and information_content(P)[0, 2] == 0  # unknown column
    assert torch.allclose(entropy(torch.full((1, 4, 3), 0.25)), torch.full((1, 3), 2.0))
    X = random_one_hot((4, 4, 50), random_state=3)
    assert torch.allclose(information_content(X), torch.full((4, 50), 2.0), atol=1e-6)
    for a in (P[0], P[1], X[0]):
        assert torch.equal(pwm_consensus(a), tm.pwm_consensus(a))
    assert torch.equal(pwm_consensus(X[0]), X[0]) and pwm_consensus(X[0]).dtype == torch.int8
    X[0, :, 5:9] = 0
    assert torch.equal(gc_content(X), tm.gc_content(X))
    assert torch.equal(gc_content(X, alphabet=['A', 'G', 'C', 'T']),
                       tm.gc_content(X, alphabet=['A', 'G', 'C', 'T']))
    expected = (X[:, 1:3].sum((1, 2)).float() / X.sum((1, 2)).float())
    assert torch.allclose(gc_content(X), expected)
    assert gc_content(torch.zeros(1, 4, 5, dtype=torch.int8)).item() == 0
    with pytest.raises(ValueError, match="X\\[None\\]"):
        entropy(P[0])  # tangermeme reads a 2-d PWM along the wrong axis
    with pytest.raises(ValueError, match="non-negative"):
        entropy(-P)  # tangermeme returns NaN


def test_extract_signal_matches_tangermeme_and_refuses_bad_spans():
    torch.manual_seed(1)
    S = torch.randn(3, 2, 40)
    loci = pandas.DataFrame({'example': [0, 2, 0, 1], 'start': [0, 5, 10, 39],
                             'end': [40, 9, 10, 40], 'name': list('abcd')})
    ours = extract_signal(loci, S)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours, tm.extract_signal(loci, S), rtol=1e-5, atol=1e-5)
    assert torch.equal(extract_signal(loci, S.int()), tm.extract_signal(loci, S.int()).long())
    assert torch.allclose(extract_signal(loci, S.numpy()), ours)  # numpy, as documented
    for row in ([3, 0, 4], [0, 38, 41], [0, 6, 5], [-1, 0, 2]):
        bad = pandas.DataFrame([row], columns=['e', 's', 't'])
        with pytest.raises(ValueError, match="row 0"):
            extract_signal(bad, S)  # tangermeme clips, returns 0, or raises IndexError


@pytest.mark.parametrize("kwargs", [{}, dict(window=20), dict(window=21), dict(one_indexed=True),
                                    dict(window=7, one_indexed=True)])
def test_example_to_fasta_coords_matches_tangermeme(kwargs):
    examples = pandas.DataFrame({'example_idx': [0, 1, 1], 'start': [2, 0, 5],
                                 'end': [6, 3, 9], 'score': [1.0, 2.0, 3.0]})
    loci = pandas.DataFrame({'chrom': ['chr1', 'chr2'], 'start': [100, 1001],
                             'end': [200, 1100], 'name': ['a', 'b']})
    ours = example_to_fasta_coords(examples, loci, **kwargs)
    pandas.testing.assert_frame_equal(ours, tm.example_to_fasta_coords(examples, loci, **kwargs))
    assert list(examples.columns) == ['example_idx', 'start', 'end', 'score']  # not modified
    bad = examples.assign(example_idx=[0, 1, 2])
    assert_raises_like(lambda: tm.example_to_fasta_coords(bad, loci, **kwargs),
                       lambda: example_to_fasta_coords(bad, loci, **kwargs), match="row indices")


def test_set_seed_seeds_every_generator():
    import random
    draws = []
    for _ in range(2):
        set_seed(7)
        draws.append((random.random(), numpy.random.rand(), torch.rand(1).item()))
    assert draws[0] == draws[1]
    tm.set_seed(7)
    assert (random.random(), numpy.random.rand(), torch.rand(1).item()) == draws[0]


def test_one_hot_helpers_refuse_return_packed():
    with pytest.raises(ValueError, match="PackedSequence"):
        one_hot_encode("ACGT", return_packed=True)
    with pytest.raises(ValueError, match="PackedSequence"):
        random_one_hot((1, 4, 5), return_packed=True)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert one_hot_encode("ACGT", n_jobs=4, return_packed=False).shape == (4, 4)
