"""Sequence edits and shuffles mirroring ``tangermeme.ersatz`` (1.6.0):
``substitute``, ``multisubstitute``, ``insert``, ``delete``, ``randomize``,
``shuffle``, ``dinucleotide_shuffle`` and ``local_dinucleotide_shuffle``.

One-hot ``(N, A, L)`` in; edits return ``(N, A, L')`` and shuffles
``(N, n, A, L)``, with the dtype and device of ``X``. All-zero columns are
unknown characters (N): edits keep them where they do not write.

:func:`dinucleotide_shuffle` differs from tangermeme on purpose: it samples
**uniformly** among all sequences with the same dinucleotide counts and the
same first character (tangermeme keeps each character's last successor
fixed and reaches only part of them, its issue #27). The walk lives in
:mod:`kipoi_tanger._shuffle` (compiled with numba, cached on disk; the numpy
loop gives the same shuffles).
"""
import numbers
import warnings
from typing import Optional, Sequence, Union

import numpy
import torch

from . import _shuffle
from ._base import (ArgumentIndexError, ArgumentRuntimeError, ArgumentTypeError, check_int,
                    check_return_packed)

__all__ = ['insert', 'substitute', 'multisubstitute', 'delete', 'randomize', 'shuffle',
           'dinucleotide_shuffle', 'local_dinucleotide_shuffle']

# Validation chunks hold about this many bytes.
_CHUNK_BYTES = 4 << 20
DNA = ['A', 'C', 'G', 'T']


def _check_tensor(X, name='X'):
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor of shape (N, A, L), got "
                         f"{type(X).__name__}")
    if X.ndim != 3:
        raise ValueError(f"{name}: expected shape (N, A, L), got {tuple(X.shape)}")
    if 0 in X.shape:
        raise ValueError(f"{name}: expected a non-empty (N, A, L) tensor, got shape "
                         f"{tuple(X.shape)}")
    if X.dtype.is_complex:
        raise ValueError(f"{name}: expected a one-hot tensor, got dtype {X.dtype}")
    if X.device.type == 'meta':
        raise ValueError(f"{name}: is a meta tensor (a shape without values); pass a tensor that "
                         "holds data")


_NOT_ONE_HOT = "must be one-hot encoded along axis 1 (values 0/1, at most one 1 per position)"


def _uint8_chunk(X, name):
    """A CPU uint8 numpy view/copy of a chunk whose values are all 0 or 1."""
    X = X.detach().cpu()
    if X.dtype in (torch.bool, torch.uint8, torch.int8):
        U = X.view(torch.uint8).numpy()
        if (U > 1).any():  # int8 -1 reads as 255
            raise ValueError(f"{name}: {_NOT_ONE_HOT}")
        return U
    if not bool(((X == 0) | (X == 1)).all()):
        raise ValueError(f"{name}: {_NOT_ONE_HOT}")
    return X.to(torch.uint8).numpy()


def _one_hot_chunks(X, name, allow_N):
    """Validate a one-hot ``(N, A, L)`` tensor a bounded group of sequences at
    a time; yields ``(s0, U, total)``: the group's first index, its uint8
    values and its column sums (0 marks an N column)."""
    N, A, L = X.shape
    step = max(1, _CHUNK_BYTES // (A * L * max(X.element_size(), 2)))
    for s0 in range(0, N, step):
        U = _uint8_chunk(X[s0:s0 + step], name)
        total = U.sum(axis=1, dtype=numpy.uint8 if A < 256 else numpy.int64)
        if (total > 1).any():
            raise ValueError(f"{name}: {_NOT_ONE_HOT}")
        if not allow_N and (total == 0).any():
            i, j = (int(v) for v in numpy.argwhere(total == 0)[0])
            raise ValueError(f"{name}: position {j} of sequence {s0 + i} is all-zero (N); pass "
                             "allow_N=True to shuffle N as a character of its own")
        yield s0, U, total


def _check_one_hot(X, name='X', allow_N=True):
    for _ in _one_hot_chunks(X, name, allow_N):
        pass


def _window_codes(X, start, end, allow_N):
    """Validate ``X`` and return the characters of ``[start, end)`` as uint8
    ``(N, R)``, with ``A`` for N."""
    N, A, L = X.shape
    codes = numpy.empty((N, end - start), dtype=numpy.uint8)
    for s0, U, total in _one_hot_chunks(X, 'X', allow_N):
        c = codes[s0:s0 + len(U)]
        c[:] = 0
        for a in range(1, A):
            c += U[:, a, start:end] * numpy.uint8(a)
        if allow_N:
            c[total[:, start:end] == 0] = A
    return codes


def _motif_tensor(motif, X, alphabet, ignore, allow_N=True):
    """A one-hot ``(1 or N, A, m)`` motif on X's device and dtype; all-zero
    columns (``ignore`` characters) only where ``allow_N``."""
    if len(alphabet) != X.shape[1]:
        raise ValueError(f"alphabet: has {len(alphabet)} characters but X has {X.shape[1]} rows "
                         "on axis 1")
    if isinstance(motif, str):
        from .utils import one_hot_encode
        if len(motif) == 0:
            raise ValueError("motif: expected a non-empty string")
        return one_hot_encode(motif, alphabet=alphabet, ignore=ignore if allow_N else [],
                              dtype=X.dtype)[None].to(X.device)
    if not isinstance(motif, torch.Tensor):
        raise ValueError(f"motif: expected a str or a one-hot torch.Tensor, got "
                         f"{type(motif).__name__}")
    if motif.ndim == 2:
        motif = motif[None]
    if motif.ndim != 3 or motif.shape[1] != X.shape[1] or motif.shape[2] == 0:
        raise ValueError(f"motif: expected shape (1 or {X.shape[0]}, {X.shape[1]}, m), got "
                         f"{tuple(motif.shape)}")
    if motif.shape[0] not in (1, X.shape[0]):  # tangermeme: a RuntimeError from torch
        raise ArgumentRuntimeError(f"motif: has shape {tuple(motif.shape)}, a batch of "
                                   f"{motif.shape[0]} for {X.shape[0]} sequences; expected 1 (one "
                                   f"motif for all) or {X.shape[0]} (one each)")
    if motif.device != X.device:
        raise ValueError(f"motif: must be on the same device as X; got motif on {motif.device} "
                         f"and X on {X.device}")
    for _, _, total in _one_hot_chunks(motif, 'motif', True):
        if not allow_N and (total == 0).any():
            raise ValueError("motif: must be one-hot encoded with no all-zero (N) columns")
    return motif


def _write_motif(Y, motif, start):
    """Write ``motif`` into ``Y`` (in place) from ``start``; its all-zero
    columns keep the base of ``Y``."""
    window = Y[:, :, start:start + motif.shape[-1]]
    keep = (motif != 0).any(dim=1, keepdim=True)
    window.copy_(torch.where(keep, motif.to(Y.dtype), window))


def substitute(X: torch.Tensor, motif: Union[str, torch.Tensor], start: Optional[int] = None,
               alphabet: Sequence[str] = DNA, ignore: Sequence[str] = ['N'],
               return_packed: Optional[bool] = None) -> torch.Tensor:
    """Substitute a motif into every sequence at one position.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences; all-zero (N) columns are allowed and kept where the
        motif does not cover them.
    motif : str or torch.Tensor
        A string encoded with ``alphabet`` (characters in ``ignore`` keep the
        original base), or a one-hot tensor ``(1, A, m)`` applied to every
        sequence or ``(N, A, m)`` applied one-to-one (another batch size raises
        a RuntimeError-compatible error); its all-zero columns keep the base.
    start : int or None, optional
        First position of the motif. None centres it: ``L // 2 - m // 2``.
        An explicit start must satisfy ``0 <= start <= L - m``; a non-integer
        raises an IndexError-compatible error, as in tangermeme. Default None.
    alphabet : list of str, optional
        Characters of axis 1. Default ACGT.
    ignore : list of str, optional
        Characters of a string motif that keep the original base. Default ``['N']``.
    return_packed : None or False, optional
        kipoi_tanger has no PackedSequence; True raises.

    Returns
    -------
    torch.Tensor, shape=(N, A, L)
        A copy of ``X`` (same dtype and device) with the motif substituted.
    """
    check_return_packed(return_packed)
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    motif = _motif_tensor(motif, X, alphabet, ignore)
    m, L = motif.shape[-1], X.shape[-1]
    if m > L:
        raise ValueError(f"motif: length {m} is longer than the sequences ({L})")
    if start is None:
        start = L // 2 - m // 2
    start = check_int(start, 'start', 0, L - m, error=ArgumentIndexError,
                      what=f"L={L}, motif length {m}")
    Y = X.clone()
    _write_motif(Y, motif, start)
    return Y


def _spacings(spacing, n_motifs):
    if isinstance(spacing, (torch.Tensor, numpy.ndarray)) and spacing.ndim <= 1:
        spacing = spacing.tolist()
    if isinstance(spacing, bool) or not isinstance(spacing, (numbers.Integral, list, tuple)):
        raise ValueError(f"spacing: expected an int or a list of ints, got {spacing!r}")
    if isinstance(spacing, numbers.Integral):
        spacing = [spacing] * max(n_motifs - 1, 0)
    if len(spacing) != n_motifs - 1:
        raise ValueError(f"spacing: {n_motifs} motifs need {n_motifs - 1} spacings, got "
                         f"{len(spacing)}")
    return [check_int(s, f'spacing[{i}]', low=0) for i, s in enumerate(spacing)]


def multisubstitute(X: torch.Tensor, motifs: Sequence[Union[str, torch.Tensor]],
                    spacing: Union[int, Sequence[int]], start: Optional[int] = None,
                    alphabet: Sequence[str] = DNA, ignore: Sequence[str] = ['N'],
                    return_packed: Optional[bool] = None) -> torch.Tensor:
    """Substitute several motifs with given gaps between them.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences (N columns allowed).
    motifs : list of str or torch.Tensor
        As ``motif`` in :func:`substitute`, in order of position.
    spacing : int or list of int
        The gap after motif i before motif i + 1 (``len(motifs) - 1`` of
        them), or one int for all gaps. Non-negative.
    start : int or None, optional
        Position of the first motif. None centres the whole arrangement:
        ``L // 2 - total // 2`` with ``total`` the motif lengths plus the gaps.
        Default None.
    alphabet, ignore, return_packed
        As in :func:`substitute`.

    Returns
    -------
    torch.Tensor, shape=(N, A, L)
        A copy of ``X`` with every motif substituted.
    """
    check_return_packed(return_packed)
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    if not isinstance(motifs, (list, tuple)):
        raise ValueError(f"motifs: expected a list of motifs, got {type(motifs).__name__}")
    gaps = _spacings(spacing, len(motifs))  # an empty list: 0 motifs need -1 spacings
    tensors = [_motif_tensor(m, X, alphabet, ignore) for m in motifs]
    L = X.shape[-1]
    total = sum(t.shape[-1] for t in tensors) + sum(gaps)
    if total > L:
        raise ValueError(f"motifs and spacing: span {total} positions, longer than the sequences "
                         f"({L})")
    if start is None:
        start = L // 2 - total // 2
    start = check_int(start, 'start', 0, L - total, error=ArgumentIndexError,
                      what=f"L={L}, the motifs and gaps span {total}")
    Y = X.clone()
    for t, gap in zip(tensors, gaps + [0]):
        _write_motif(Y, t, start)
        start += t.shape[-1] + gap
    return Y


def insert(X: torch.Tensor, motif: Union[str, torch.Tensor], start: Optional[int] = None,
           alphabet: Sequence[str] = DNA, return_packed: Optional[bool] = None) -> torch.Tensor:
    """Insert a motif into every sequence, which grows by its length.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences (N columns allowed and carried over).
    motif : str or torch.Tensor
        A string of ``alphabet`` characters (N raises: nothing to keep), or a
        one-hot tensor ``(1, A, m)`` or ``(N, A, m)`` without all-zero columns.
    start : int or None, optional
        The motif's first position in the result: ``X[..., :start]``, the
        motif, then ``X[..., start:]``. None inserts at ``L // 2``. Any of
        ``0 .. L`` (``L`` appends; tangermeme refuses it). Default None.
    alphabet : list of str, optional
        Characters of axis 1. Default ACGT.
    return_packed : None or False, optional
        kipoi_tanger has no PackedSequence; True raises.

    Returns
    -------
    torch.Tensor, shape=(N, A, L + m)
        Same dtype and device as ``X``.
    """
    check_return_packed(return_packed)
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    motif = _motif_tensor(motif, X, alphabet, [], allow_N=False)
    L = X.shape[-1]
    start = L // 2 if start is None else check_int(start, 'start', 0, L, error=ArgumentTypeError,
                                                    what=f"L={L}")
    motif = motif.to(X.dtype).expand(X.shape[0], -1, -1)
    return torch.cat([X[:, :, :start], motif, X[:, :, start:]], dim=-1)


def delete(X: torch.Tensor, start: int, end: int,
           return_packed: Optional[bool] = None) -> torch.Tensor:
    """Delete positions ``[start, end)`` from every sequence.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences (N columns allowed; those kept are carried over).
    start, end : int
        ``0 <= start < end <= L``; deleting all L positions raises.

    Returns
    -------
    torch.Tensor, shape=(N, A, L - (end - start))
    """
    check_return_packed(return_packed)
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    L = X.shape[-1]
    start, end = _edit_window(start, end, L)
    if end - start == L:
        raise ValueError(f"start/end: deleting [{start}, {end}) would leave nothing of the "
                         f"sequences (L={L})")
    return torch.cat([X[:, :, :start], X[:, :, end:]], dim=-1)


def _edit_window(start, end, L):
    start = check_int(start, 'start', 0, L - 1, error=ArgumentTypeError, what=f"L={L}")
    end = check_int(end, 'end', start + 1, L, error=ArgumentTypeError,
                    what=f"after start={start}, at most L={L}")
    return start, end


def randomize(X: torch.Tensor, start: int, end: int, probs=[[0.25, 0.25, 0.25, 0.25]],
              n: int = 1, random_state=None,
              return_packed: Optional[bool] = None) -> torch.Tensor:
    """Replace positions ``[start, end)`` with random characters, ``n`` times.

    Draws exactly as tangermeme does: for each of the n draws, for each
    sequence i, ``RandomState(random_state).choice(A, size=end - start,
    p=probs_i)``, so a seed gives tangermeme's sequences.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences (N columns outside the window are kept).
    start, end : int
        The window, ``0 <= start < end <= L`` (no negative end).
    probs : array-like, shape=(1, A) or (N, A), optional
        Character probabilities, shared or per sequence; every row
        non-negative and summing to 1 within 1e-6 (then renormalised).
        Default uniform over ACGT.
    n : int, optional
        Draws per sequence. Default 1.
    random_state : int, numpy.random.RandomState or None, optional
        Seed or generator. Default None.
    return_packed : None or False, optional
        kipoi_tanger has no PackedSequence; True raises.

    Returns
    -------
    torch.Tensor, shape=(N, n, A, L)
        Same dtype and device as ``X``.
    """
    from .utils import _random_state
    check_return_packed(return_packed)
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    N, A, L = X.shape
    start, end = _edit_window(start, end, L)
    n = _check_n(n)
    p = numpy.asarray(probs.cpu() if isinstance(probs, torch.Tensor) else probs, dtype=float)
    if p.ndim != 2 or p.shape[0] not in (1, N) or p.shape[1] != A:
        raise ValueError(f"probs: expected shape (1, {A}) or ({N}, {A}), got {p.shape}")
    if (p < 0).any() or not numpy.allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-6):
        raise ValueError("probs: every row must be non-negative and sum to 1")
    p = numpy.broadcast_to(p / p.sum(axis=1, keepdims=True), (N, A))
    rs = _random_state(random_state)
    idx = numpy.empty((N, n, end - start), dtype=numpy.int64)
    for i in range(n):
        for j in range(N):
            idx[j, i] = rs.choice(A, size=end - start, p=p[j])
    out = X.unsqueeze(1).repeat(1, n, 1, 1)
    window = torch.zeros(N, n, A, end - start, dtype=X.dtype, device=X.device)
    window.scatter_(2, torch.from_numpy(idx).to(X.device).unsqueeze(2), 1)
    out[..., start:end] = window
    return out


def _resolve_window(start, end, L):
    start = check_int(start, 'start', error=ArgumentTypeError)
    end = check_int(end, 'end', error=ArgumentTypeError)
    if end < 0:
        end = L + 1 + end
    if not 0 <= start < end <= L:
        raise ValueError(f"start/end: need 0 <= start < end <= L (end=-1 means L); got "
                         f"start={start}, end={end} for L={L}")
    return start, end


def _check_n(n):
    # tangermeme: TypeError for a float n, RuntimeError for n = 0.
    n = check_int(n, 'n', error=ArgumentTypeError)
    if n < 1:
        raise ArgumentRuntimeError(f"n: expected a positive int, got {n}")
    return n


def shuffle(X: torch.Tensor, start: int = 0, end: int = -1, n: int = 1, random_state=None,
            return_packed: Optional[bool] = None) -> torch.Tensor:
    """Mononucleotide shuffle of positions ``[start, end)``.

    As in tangermeme, shuffle ``i`` draws one permutation with
    ``numpy.random.RandomState(random_state).shuffle`` and applies it to every
    sequence, so an int seed gives tangermeme's shuffles.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences (all-zero columns allowed; they move with the shuffle).
    start, end : int, optional
        The shuffled window; a negative ``end`` counts from ``L + 1`` (so the
        default -1 is ``L``). Default: the whole sequence.
    n : int, optional
        Number of shuffles (>= 1). Default 1.
    random_state : int, numpy.random.RandomState or None, optional
        Seed or generator. Default None.
    return_packed : None or False, optional
        kipoi_tanger has no PackedSequence; True raises.

    Returns
    -------
    torch.Tensor, shape=(N, n, A, L)
        Same dtype and device as ``X``.
    """
    from .utils import _random_state
    check_return_packed(return_packed)
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    start, end = _resolve_window(start, end, X.shape[-1])
    n = _check_n(n)
    rs = _random_state(random_state)
    out = X.unsqueeze(1).repeat(1, n, 1, 1)
    for i in range(n):
        idx = numpy.arange(end - start)
        rs.shuffle(idx)
        out[:, i, :, start:end] = X[:, :, start:end][:, :, torch.from_numpy(idx).to(X.device)]
    return out


def _sequence_seeds(random_state, N):
    """One seed per sequence: ``s + i`` for an int ``s``, a base seed from
    numpy's global RNG for None (torch's RNG is never touched), or the given
    per-sequence ints."""
    if random_state is None:
        random_state = int(numpy.random.randint(0, 9999999))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        base = int(random_state)
        return [base + i for i in range(N)]
    if isinstance(random_state, (torch.Tensor, numpy.ndarray)):
        random_state = random_state.tolist()
    if isinstance(random_state, (list, tuple)) and len(random_state) == N and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in random_state):
        return [int(s) for s in random_state]
    raise ValueError(f"random_state: expected None, an int, or a sequence of {N} ints (one per "
                     f"sequence), got {random_state!r:.80}")


def dinucleotide_shuffle(X: torch.Tensor, start: int = 0, end: int = -1, n: int = 20,
                         random_state=None, verbose: bool = False, allow_N: bool = False,
                         return_packed: Optional[bool] = None,
                         n_jobs: int = 1) -> torch.Tensor:
    """Dinucleotide shuffles, sampled uniformly.

    Each shuffle of positions ``[start, end)`` keeps the first and last
    character and the count of every dinucleotide of the window, and is drawn
    uniformly among all such sequences (tangermeme's shuffle is not uniform,
    its issue #27). Outside the window the sequences are unchanged.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences, any dtype and device.
    start, end : int, optional
        The shuffled window; a negative ``end`` counts from ``L + 1`` (so the
        default -1 is ``L``). Default: the whole sequence.
    n : int, optional
        Shuffles per sequence (>= 1). Default 20.
    random_state : None, int or sequence of ints, optional
        An int ``s`` shuffles sequence ``i`` with seed ``s + i``; a sequence of
        ``N`` ints gives each sequence its own seed, so ``random_state=[k] * N``
        shuffles every sequence exactly as it would be shuffled alone with seed
        ``k``. None takes a base seed from numpy's global RNG (torch's RNG is
        never used). Default None.
    verbose : bool, optional
        Warn (:class:`~kipoi_tanger.utils.TangermemeWarning`) when some
        position between the ends of a window is the same in all of its
        shuffles. Default False.
    allow_N : bool, optional
        Accept all-zero (N) columns and shuffle N as a character of its own;
        otherwise they raise a ValueError. Sequences without N shuffle the same
        either way. Default False.
    return_packed : None or False, optional
        kipoi_tanger has no PackedSequence; True raises.
    n_jobs : int, optional
        Accepted for tangermeme compatibility; the walk runs on one thread and
        the shuffles never depend on it. Default 1.

    Returns
    -------
    torch.Tensor, shape=(N, n, A, L)
        Same dtype and device as ``X``.

    Raises
    ------
    ValueError
        For bad input, or when ``n > 1`` and a window has exactly one
        dinucleotide shuffle, itself (e.g. "ACGTACGT" or a window of two
        positions), decided by counting its shuffles, never by chance.
    """
    from .utils import TangermemeWarning
    check_return_packed(return_packed)
    _check_tensor(X)
    N, A, L = X.shape
    n = _check_n(n)
    start, end = _resolve_window(start, end, L)
    seeds = _sequence_seeds(random_state, N)
    if A > 254:
        raise ValueError(f"X: dinucleotide_shuffle supports at most 254 characters, got {A}")
    R = end - start
    K = A + 1 if allow_N else A
    nbits = int(A).bit_length()  # fits codes 0..A, so allow_N does not change the keys
    codes = _window_codes(X, start, end, allow_N)
    sampler = _shuffle.Sampler(codes, n, seeds, K, nbits)
    if n > 1:
        single = sampler.single()
        if single.any():
            raise ValueError("All dinucleotide shuffles yield identical sequences: sequence "
                             f"{int(numpy.flatnonzero(single)[0])} has exactly one dinucleotide "
                             "shuffle (itself) in positions [{}, {}), e.g. a repeat such as "
                             "ACGTACGT; pass n=1 or drop it".format(start, end))

    # numpy memory (transparent huge pages) viewed as the output tensor.
    itemsize = torch.empty((), dtype=X.dtype).element_size()
    raw = numpy.empty(N * n * A * L * itemsize, dtype=numpy.uint8)
    out = torch.from_numpy(raw).view(X.dtype).view(N, n, A, L)
    B = A * L * itemsize
    try:
        out_np = out.numpy()
    except TypeError:  # e.g. bfloat16: expand with torch instead
        out_np = None
    Xc = X.detach().cpu()
    Xn = Xc.numpy() if out_np is not None else None
    alphabet = numpy.arange(A, dtype=numpy.uint8)[None, :, None]
    one_byte = out_np is not None and out_np.dtype.itemsize == 1
    if B >= 2 * R:  # the walk's scratch fits in the group's own output bytes
        def scratch(s0, s1, nbytes):
            return raw[s0 * n * B:s1 * n * B]
    else:  # one character in a 1-byte dtype: no room in the output
        spare = numpy.empty(min(max(1, _shuffle._GROUP_WALKS // n), N) * n * (2 * R - 1),
                            dtype=numpy.uint8)

        def scratch(s0, s1, nbytes):
            return spare
    conserved_any = False
    for s0, s1, c in sampler.groups(scratch):
        if verbose and not conserved_any:
            interior = c.reshape(s1 - s0, n, R)[:, :, 1:-1]
            conserved_any = bool((interior == interior[:, :1]).all(axis=1).any())
        if out_np is not None:
            o = out_np[s0:s1]
            if one_byte:  # a 0/1 byte is a valid bool: no casting loop
                numpy.equal(c.reshape(s1 - s0, n, 1, R), alphabet[None],
                            out=o[..., start:end].view(numpy.bool_))
            else:
                numpy.equal(c.reshape(s1 - s0, n, 1, R), alphabet[None],
                            out=o[..., start:end], casting='unsafe')
            if start > 0:
                o[..., :start] = Xn[s0:s1, None, :, :start]
            if end < L:
                o[..., end:] = Xn[s0:s1, None, :, end:]
        else:
            o = out[s0:s1]
            ct = torch.from_numpy(c).view(s1 - s0, n, 1, R)
            o[..., start:end].copy_(ct == torch.from_numpy(alphabet)[None])
            if start > 0:
                o[..., :start] = Xc[s0:s1, None, :, :start]
            if end < L:
                o[..., end:] = Xc[s0:s1, None, :, end:]
    if conserved_any:
        warnings.warn("At least one position in dinucleotide shuffle is identical across all "
                      "shuffles.", TangermemeWarning, stacklevel=2)
    return out.to(X.device) if X.device.type != 'cpu' else out


def local_dinucleotide_shuffle(X: torch.Tensor, n: int = 20, bin_size: int = 1024,
                               min_bin_size: int = 512, random_state: Optional[int] = None,
                               verbose: bool = False,
                               return_packed: Optional[bool] = None) -> torch.Tensor:
    """Dinucleotide shuffles within consecutive bins, so that composition is
    kept locally as well as globally.

    For every shuffle the bin boundaries are redrawn: the first cut falls
    uniformly in ``[min_bin_size, bin_size]``, the next ones every
    ``bin_size`` positions, and a trailing bin shorter than ``min_bin_size``
    joins the one before it. Each bin is then shuffled once, uniformly
    (:func:`dinucleotide_shuffle`), so its first and last characters stay.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences, any alphabet, no N columns.
    n : int, optional
        Shuffles per sequence (>= 1). Default 20.
    bin_size : int, optional
        Spacing of the cuts; must be smaller than L. Default 1024.
    min_bin_size : int, optional
        Shortest bin, ``0 <= min_bin_size <= bin_size``. Default 512.
    random_state : int or None, optional
        Seeds the cuts and the shuffles; None draws a seed from numpy's
        global RNG. Default None.
    verbose : bool, optional
        Passed to the shuffle of every bin (a warning per bin). Default False.
    return_packed : None or False, optional
        kipoi_tanger has no PackedSequence; True raises.

    Returns
    -------
    torch.Tensor, shape=(N, n, A, L)
        Same dtype and device as ``X``. A
        :class:`~kipoi_tanger.utils.TangermemeWarning` says how many bins came
        back identical to the input, and how many of those had no other
        shuffle (a homopolymer, a short tandem repeat).
    """
    from .utils import TangermemeWarning
    check_return_packed(return_packed)
    _check_tensor(X)
    N, A, L = X.shape
    n = _check_n(n)
    bin_size = check_int(bin_size, 'bin_size', low=1)
    min_bin_size = check_int(min_bin_size, 'min_bin_size', low=0)
    if bin_size >= L:
        raise ValueError(f"bin_size: must be smaller than the sequence length ({L}), got "
                         f"{bin_size}; use dinucleotide_shuffle for sequences shorter than a bin")
    if min_bin_size > bin_size:
        raise ValueError(f"min_bin_size: must be <= bin_size ({bin_size}), got {min_bin_size}")
    if random_state is not None and (isinstance(random_state, bool)
                                     or not isinstance(random_state, numbers.Integral)):
        raise ArgumentTypeError(f"random_state: expected an int or None, got {random_state!r}")
    _check_one_hot(X, 'X', allow_N=False)
    seed = int(numpy.random.randint(0, 9999999)) if random_state is None else int(random_state)
    rs = numpy.random.RandomState(seed % (1 << 32))
    out = X.unsqueeze(1).repeat(1, n, 1, 1)
    n_bins = same = forced = 0
    for i in range(n):
        cuts = [0] + list(range(int(rs.randint(min_bin_size, bin_size + 1)), L, bin_size)) + [L]
        if len(cuts) > 2 and cuts[-1] - cuts[-2] < min_bin_size:
            del cuts[-2]
        for b0, b1 in zip(cuts[:-1], cuts[1:]):
            if b1 <= b0:
                continue
            seeds = rs.randint(0, 2 ** 31 - 1, size=N).tolist()
            window = X[:, :, b0:b1]
            Y = dinucleotide_shuffle(window, n=1, random_state=seeds, verbose=verbose)[:, 0]
            out[:, i, :, b0:b1] = Y
            codes = _window_codes(window, 0, b1 - b0, False)
            n_bins += N
            same += int((Y == window).flatten(1).all(dim=1).sum())
            forced += int(_shuffle.single_shuffle(_shuffle._pair_stats(codes, A)[0],
                                                  codes[:, -1].astype(numpy.int64)).sum())
    if same:
        warnings.warn(f"{same} of {n_bins} bins came back identical to the input and are not "
                      f"randomized in the returned sequences; {forced} of them have no other "
                      "dinucleotide shuffle (a homopolymer or short tandem repeat). Raising "
                      "bin_size merges such a region into a more diverse neighborhood.",
                      TangermemeWarning, stacklevel=2)
    return out
