"""One-hot helpers mirroring ``tangermeme.utils`` (1.6.0).

``random_one_hot`` draws with the same numpy calls as tangermeme so that the
tensors of the seed tutorials reproduce exactly for a given ``random_state``.
"""
import numpy
import torch

DNA = ['A', 'C', 'G', 'T']


def _random_state(random_state):
    if isinstance(random_state, numpy.random.RandomState):
        return random_state
    return numpy.random.RandomState(random_state)


def random_one_hot(shape, probs=None, dtype='int8', random_state=None):
    """Random one-hot sequences ``(N, A, L)``.

    For each sequence ``i`` the characters are drawn with
    ``RandomState(random_state).choice(A, size=L, p=probs_i)``, which is the
    draw order tangermeme uses, so a seed gives the same tensor in both.

    Parameters
    ----------
    shape : tuple of three ints
        ``(N, A, L)``.
    probs : array-like or None, optional
        None for uniform; a length-A vector shared by all sequences; or an
        ``(N, A)`` matrix of per-sequence probabilities. Default None.
    dtype : str or torch.dtype, optional
        Output dtype. Default ``'int8'``.
    random_state : int, numpy.random.RandomState or None, optional
        Seed or generator. Default None.

    Returns
    -------
    torch.Tensor, shape=(N, A, L)
    """
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 3:
        raise ValueError(f"shape: expected a 3-tuple (N, A, L), got {shape!r}")
    n, a, length = (int(s) for s in shape)
    if probs is not None:
        probs = numpy.asarray(probs, dtype=float)
        if probs.ndim == 1:
            probs = numpy.broadcast_to(probs, (n, a))
        if probs.shape != (n, a):
            raise ValueError(f"probs: expected shape ({a},) or ({n}, {a}), got {probs.shape}")
    rs = _random_state(random_state)
    idx = numpy.empty((n, length), dtype=numpy.int64)
    for i in range(n):
        idx[i] = rs.choice(a, size=length, p=None if probs is None else probs[i])
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    X = torch.zeros(n, a, length, dtype=dtype)
    X.scatter_(1, torch.from_numpy(idx).unsqueeze(1), 1)
    return X


def one_hot_encode(sequence, alphabet=DNA, dtype=torch.int8, ignore=['N'], desc=None,
                   verbose=False):
    """One-hot encode a string into ``(len(alphabet), len(sequence))``.

    Characters in ``ignore`` become all-zero columns. Any other character not
    in the alphabet (including lowercase when the alphabet is uppercase) raises
    a ValueError naming it and its position.

    Parameters
    ----------
    sequence : str
        The sequence.
    alphabet : list of str, optional
        One character per row. Default ``['A', 'C', 'G', 'T']``.
    dtype : torch.dtype, optional
        Output dtype. Default ``torch.int8``.
    ignore : list of str, optional
        Characters encoded as all-zero columns. Default ``['N']``.
    desc, verbose
        Accepted for tangermeme compatibility; encoding is vectorised.

    Returns
    -------
    torch.Tensor, shape=(len(alphabet), len(sequence))
    """
    if not isinstance(sequence, str):
        raise ValueError(f"sequence: expected a str, got {type(sequence).__name__}")
    for c in alphabet:
        if c in ignore:
            raise ValueError(f"alphabet: character {c!r} is also in ignore")
    try:
        raw = numpy.frombuffer(sequence.encode('ascii'), dtype=numpy.uint8)
    except UnicodeEncodeError:
        bad = next(i for i, c in enumerate(sequence) if ord(c) > 127)
        raise ValueError(f"sequence: non-ASCII character {sequence[bad]!r} at position {bad}")
    table = numpy.full(256, -2, dtype=numpy.int64)
    for c in ignore:
        table[ord(c)] = -1
    for j, c in enumerate(alphabet):
        table[ord(c)] = j
    codes = table[raw]
    bad = numpy.flatnonzero(codes == -2)
    if len(bad):
        i = int(bad[0])
        raise ValueError(f"sequence: character {sequence[i]!r} at position {i} is neither in "
                         f"the alphabet {list(alphabet)} nor in ignore {list(ignore)}")
    X = torch.zeros(len(alphabet), len(sequence), dtype=dtype)
    keep = numpy.flatnonzero(codes >= 0)
    X[torch.from_numpy(codes[keep]), torch.from_numpy(keep)] = 1
    return X


def characters(pwm, alphabet=DNA, force=False, allow_N=False):
    """The string of the argmax character of each column of ``pwm`` ``(A, L)``.

    Ties (including all-zero columns) raise a ValueError unless
    ``allow_N=True`` (they become ``'N'``) or ``force=True`` (the first maximum
    wins).
    """
    if not isinstance(pwm, torch.Tensor) or pwm.ndim != 2:
        raise ValueError("pwm: expected a 2-d tensor (A, L)")
    if pwm.shape[0] != len(alphabet):
        raise ValueError(f"pwm: has {pwm.shape[0]} rows but the alphabet has {len(alphabet)}")
    top = pwm.max(dim=0)
    n_max = (pwm == top.values.unsqueeze(0)).sum(dim=0)
    chars = numpy.array(list(alphabet))[top.indices.numpy()]
    if not force and bool((n_max > 1).any()):
        if not allow_N:
            i = int(torch.nonzero(n_max > 1)[0])
            raise ValueError(f"pwm: column {i} has no unique maximum; pass allow_N=True to "
                             "write 'N' or force=True to take the first")
        chars = numpy.where(n_max.numpy() > 1, 'N', chars)
    return ''.join(chars.tolist())


_COMPLEMENT = {'A': 'T', 'C': 'G', 'G': 'C', 'T': 'A', 'N': 'N',
               'a': 't', 'c': 'g', 'g': 'c', 't': 'a', 'n': 'n'}


def reverse_complement(seq, complement_map=_COMPLEMENT, allow_N=True):
    """Reverse complement of a string, or of a one-hot tensor (``(A, L)`` or
    ``(N, A, L)``, alphabet ordered so that reversing it complements, as ACGT)."""
    if isinstance(seq, torch.Tensor):
        if seq.ndim < 2:
            raise ValueError("seq: a one-hot tensor must be (A, L) or (N, A, L)")
        return torch.flip(seq, dims=(-2, -1))
    if not isinstance(seq, str):
        raise ValueError(f"seq: expected a str or a tensor, got {type(seq).__name__}")
    out = []
    for i, c in enumerate(reversed(seq)):
        if c not in complement_map or (not allow_N and c in 'Nn'):
            raise ValueError(f"seq: cannot complement {c!r} at position {len(seq) - 1 - i}")
        out.append(complement_map[c])
    return ''.join(out)
