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
