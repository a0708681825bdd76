"""Sequence and tensor helpers mirroring ``tangermeme.utils`` (1.6.0).

``random_one_hot`` draws with the same numpy calls as tangermeme so that the
tensors of the seed tutorials reproduce exactly for a given ``random_state``.
Differences from tangermeme are deliberate and listed in the README ("Deliberate
differences from tangermeme 1.6.0"); the main ones: no ``PackedSequence``
(``return_packed=True`` is refused), and inputs that tangermeme would turn into
wrong numbers (a complement map that is not a permutation, out-of-range loci,
a chunk count that does not match ``lengths``) are refused.
"""
import math
import numbers
import random
import warnings
from typing import Optional, Sequence, Union

import numpy
import torch
from tqdm.auto import tqdm

from ._base import (ArgumentIndexError, ArgumentRuntimeError, ArgumentTypeError, check_int,
                    check_return_packed)

__all__ = ['TangermemeWarning', 'KipoiTangerWarning', 'validate_input', 'example_to_fasta_coords',
           'characters', 'one_hot_encode', 'reverse_complement', 'random_one_hot', 'chunk',
           'unchunk', 'pwm_consensus', 'extract_signal', 'set_seed', 'gc_content', 'entropy',
           'information_content']

DNA = ['A', 'C', 'G', 'T']


class TangermemeWarning(UserWarning):
    """Warnings from kipoi_tanger's ops, under tangermeme's name so that
    ``warnings.simplefilter('error', TangermemeWarning)`` works for both."""


KipoiTangerWarning = TangermemeWarning


def _random_state(random_state):
    if isinstance(random_state, numpy.random.RandomState):
        return random_state
    if random_state is not None and (isinstance(random_state, bool)
                                     or not isinstance(random_state, numbers.Integral)):
        raise ArgumentTypeError(f"random_state: expected an int, a numpy RandomState or None, "
                                f"got {type(random_state).__name__}")
    return numpy.random.RandomState(random_state)


def _torch_dtype(dtype, name='dtype'):
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(numpy.dtype(dtype)) if not isinstance(dtype, str) else dtype,
                       None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"{name}: unknown dtype {dtype!r}")
    return resolved


# --------------------------------------------------------------------------- validation

def _validate_input(X, name, shape=None, dtype=None, min_value=None, max_value=None, ohe=False,
                    ohe_dim=1, allow_N=False, only_warn=False):
    """Check ``X`` and return it unchanged; see :func:`validate_input`."""
    def fail(message):
        if only_warn:
            warnings.warn(message, TangermemeWarning, stacklevel=3)
        else:
            raise ValueError(message)

    if not isinstance(X, torch.Tensor):
        fail(f"{name}: must be a torch.Tensor, got {type(X).__name__}")
        return X  # only_warn: nothing else can be checked
    if shape is not None:
        shape = tuple(shape)
        if X.ndim != len(shape) or any(s != -1 and s != x for s, x in zip(shape, X.shape)):
            fail(f"{name}: has shape {tuple(X.shape)} but must have shape {shape} (-1: any size)")
    if dtype is not None and X.dtype != dtype:
        fail(f"{name}: has dtype {X.dtype} but must have dtype {dtype}")
    if X.numel() == 0:
        return X
    if min_value is not None or max_value is not None:
        if X.is_floating_point() and bool(torch.isnan(X).any()):
            fail(f"{name}: contains NaN, which is outside any value range")
        if min_value is not None and bool((X < min_value).any()):
            fail(f"{name}: cannot have a value below {min_value} (min is {X.min().item()})")
        if max_value is not None and bool((X > max_value).any()):
            fail(f"{name}: cannot have a value above {max_value} (max is {X.max().item()})")
    if ohe:
        if not bool(((X == 0) | (X == 1)).all()):
            fail(f"{name}: must be one-hot encoded (values 0 and 1 only)")
        total = X.sum(dim=ohe_dim)
        if allow_N and bool((total > 1).any()):
            fail(f"{name}: must be one-hot encoded along axis {ohe_dim}, with unknown characters "
                 "(N) as all-zero columns: some position has more than one 1")
        elif not allow_N and bool((total != 1).any()):
            fail(f"{name}: must be one-hot encoded along axis {ohe_dim} with exactly one 1 per "
                 "position (no unknown characters / all-zero columns)")
    return X


def validate_input(X: torch.Tensor, name: str = 'input', shape: Optional[tuple] = None,
                   dtype: Optional[torch.dtype] = None, min_value: Optional[float] = None,
                   max_value: Optional[float] = None, ohe: bool = False, ohe_dim: int = 1,
                   allow_N: bool = False, only_warn: bool = False) -> torch.Tensor:
    """Check a tensor's type, shape, dtype, value range and one-hot encoding.

    The checks tangermeme's ops apply to their inputs, for your own tensors.

    Parameters
    ----------
    X : torch.Tensor
        The tensor to check. Anything else fails the first check (with
        ``only_warn``: one warning, and no further checks).
    name : str, optional
        Used in the messages. Default ``'input'``.
    shape : tuple of int or None, optional
        Required shape; -1 matches any size on that axis. Default None.
    dtype : torch.dtype or None, optional
        Required dtype. Default None.
    min_value, max_value : float or None, optional
        Inclusive bounds on the values; NaN fails either. Default None.
    ohe : bool, optional
        Require values 0/1 summing to 1 along ``ohe_dim``. Default False.
    ohe_dim : int, optional
        The alphabet axis for ``ohe``. Default 1.
    allow_N : bool, optional
        With ``ohe``, also accept all-zero positions (unknown characters).
        Default False.
    only_warn : bool, optional
        Emit a :class:`TangermemeWarning` for each failed check instead of
        raising a ValueError. Default False.

    Returns
    -------
    torch.Tensor
        ``X``, unchanged.
    """
    return _validate_input(X, name, shape=shape, dtype=dtype, min_value=min_value,
                           max_value=max_value, ohe=ohe, ohe_dim=ohe_dim, allow_N=allow_N,
                           only_warn=only_warn)


# --------------------------------------------------------------------------- encoding

def random_one_hot(shape: tuple, probs=None, dtype: Union[str, torch.dtype] = 'int8',
                   random_state=None, return_packed: bool = False) -> torch.Tensor:
    """Random one-hot sequences ``(N, A, L)``.

    For each sequence ``i`` the characters are drawn with
    ``RandomState(random_state).choice(A, size=L, p=probs_i)``, which is the
    draw order tangermeme uses, so a seed gives the same tensor in both.

    Parameters
    ----------
    shape : tuple of three ints
        ``(N, A, L)``; a tuple (or ``torch.Size``), as in tangermeme.
    probs : array-like or None, optional
        None for uniform; a length-A vector or a ``(1, A)`` matrix shared by
        all sequences; or an ``(N, A)`` matrix of per-sequence probabilities.
        Each row must be non-negative and sum to 1. Default None.
    dtype : str or torch.dtype, optional
        Output dtype. Default ``'int8'``.
    random_state : int, numpy.random.RandomState or None, optional
        Seed or generator. Default None.
    return_packed : bool, optional
        Must be False: kipoi_tanger has no PackedSequence.

    Returns
    -------
    torch.Tensor, shape=(N, A, L)
    """
    check_return_packed(return_packed)
    if not isinstance(shape, tuple) or len(shape) != 3:
        raise ValueError(f"shape: expected a tuple (N, A, L) of three ints, got {shape!r}")
    n, a, length = (check_int(s, 'shape', low=0) for s in shape)
    if probs is not None:
        probs = numpy.asarray(probs.cpu() if isinstance(probs, torch.Tensor) else probs,
                              dtype=float)
        if probs.ndim == 2 and probs.shape[0] == 1:
            probs = probs[0]
        if probs.ndim == 1:
            probs = numpy.broadcast_to(probs, (n, a))
        if probs.shape != (n, a):
            raise ValueError(f"probs: expected shape ({a},), (1, {a}) or ({n}, {a}), got "
                             f"{probs.shape}")
        if (probs < 0).any() or not numpy.allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-6):
            raise ValueError("probs: every row must be non-negative and sum to 1")
    rs = _random_state(random_state)
    idx = numpy.empty((n, length), dtype=numpy.int64)
    for i in range(n):
        idx[i] = rs.choice(a, size=length, p=None if probs is None else probs[i])
    X = torch.zeros(n, a, length, dtype=_torch_dtype(dtype))
    X.scatter_(1, torch.from_numpy(idx).unsqueeze(1), 1)
    return X


def one_hot_encode(sequence: str, alphabet: Sequence[str] = DNA, dtype=torch.int8,
                   ignore: Sequence[str] = ['N'], desc=None, verbose: bool = False, n_jobs: int = 1,
                   return_packed: bool = False) -> torch.Tensor:
    """One-hot encode a string into ``(len(alphabet), len(sequence))``.

    Characters in ``ignore`` become all-zero columns. Any other character not
    in the alphabet (including lowercase when the alphabet is uppercase) raises
    a ValueError naming it and its position.

    Parameters
    ----------
    sequence : str
        The sequence; anything else raises a TypeError (as in tangermeme).
    alphabet : list of str, optional
        One ASCII character per row. Default ``['A', 'C', 'G', 'T']``.
    dtype : torch.dtype or str, optional
        Output dtype. Default ``torch.int8``.
    ignore : list of str, optional
        Characters encoded as all-zero columns. Default ``['N']``.
    desc, verbose, n_jobs
        Accepted for tangermeme compatibility; encoding is vectorised and the
        result does not depend on them.
    return_packed : bool, optional
        Must be False: kipoi_tanger has no PackedSequence.

    Returns
    -------
    torch.Tensor, shape=(len(alphabet), len(sequence))
    """
    check_return_packed(return_packed)
    if not isinstance(sequence, str):
        raise ArgumentTypeError(f"sequence: expected a str, got {type(sequence).__name__}")
    for what, chars in (('alphabet', alphabet), ('ignore', ignore)):
        for c in chars:
            if not isinstance(c, str) or len(c) != 1 or ord(c) > 127:
                raise ValueError(f"{what}: every character must be a single ASCII character, got "
                                 f"{c!r}")
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
    X = torch.zeros(len(alphabet), len(sequence), dtype=_torch_dtype(dtype))
    keep = numpy.flatnonzero(codes >= 0)
    X[torch.from_numpy(codes[keep]), torch.from_numpy(keep)] = 1
    return X


def characters(pwm, alphabet: Sequence[str] = DNA, force: bool = False,
               allow_N: bool = False) -> str:
    """The string of the argmax character of each column of ``pwm``.

    Parameters
    ----------
    pwm : torch.Tensor or numpy.ndarray, shape=(A, L) or (1, A, L)
        A one-hot encoding or any numeric matrix (a leading axis of size 1
        is squeezed, as in tangermeme).
    alphabet : list of str, optional
        One character per row. Default ACGT.
    force : bool, optional
        At a tie (all-zero columns included) take the first maximum.
        Default False.
    allow_N : bool, optional
        Write ``'N'`` at a tie (takes precedence over ``force``). Default False.

    Returns
    -------
    str
        One character per column. A tie raises a ValueError unless
        ``allow_N`` or ``force``.
    """
    if isinstance(pwm, numpy.ndarray):
        pwm = torch.from_numpy(pwm)
    if not isinstance(pwm, torch.Tensor):
        raise ValueError(f"pwm: expected a torch.Tensor or numpy array, got {type(pwm).__name__}")
    if pwm.ndim == 3 and pwm.shape[0] == 1:
        pwm = pwm[0]
    if pwm.ndim != 2:
        raise ValueError(f"pwm: expected shape (A, L) or (1, A, L), got {tuple(pwm.shape)}; "
                         "convert a batch one sequence at a time")
    if pwm.shape[0] != len(alphabet):
        raise ValueError(f"pwm: has {pwm.shape[0]} rows but the alphabet has {len(alphabet)}")
    pwm = pwm.detach().cpu()
    top = pwm.max(dim=0)
    n_max = (pwm == top.values.unsqueeze(0)).sum(dim=0)
    chars = numpy.array(list(alphabet))[top.indices.numpy()]
    tie = n_max > 1
    if bool(tie.any()):
        if allow_N:
            chars = numpy.where(tie.numpy(), 'N', chars)
        elif not force:
            i = int(torch.nonzero(tie)[0])
            raise ValueError(f"pwm: column {i} has no unique maximum; pass allow_N=True to "
                             "write 'N' or force=True to take the first")
    return ''.join(chars.tolist())


_COMPLEMENT = {'A': 'T', 'C': 'G', 'G': 'C', 'T': 'A'}


def _check_complement_map(complement_map):
    if not isinstance(complement_map, dict) or not complement_map:
        raise ValueError("complement_map: expected a non-empty dict from each character to its "
                         "complement")
    keys = list(complement_map)
    if sorted(map(str, complement_map.values())) != sorted(map(str, keys)):
        raise ValueError(f"complement_map: must map the characters {keys} onto themselves one to "
                         f"one (a permutation), got {complement_map}")
    return keys


def reverse_complement(seq, complement_map: dict = _COMPLEMENT, allow_N: bool = True):
    """Reverse complement of a string or of one-hot encoded sequences.

    Parameters
    ----------
    seq : str or torch.Tensor, shape=(A, L) or (N, A, L)
        A string, or a one-hot encoding (PWMs too) whose rows are ordered as
        the keys of ``complement_map``. Batches are a kipoi_tanger extension
        (tangermeme takes one ``(A, L)`` sequence).
    complement_map : dict, optional
        Each character's complement; it must be a permutation of its keys.
        Strings are not upper-cased: a character that is not a key raises a
        ValueError. Default ``{'A': 'T', 'C': 'G', 'G': 'C', 'T': 'A'}``.
    allow_N : bool, optional
        Let ``'N'`` through a string unchanged even when it is not a key
        (tensors keep all-zero columns regardless). Default True.

    Returns
    -------
    str or torch.Tensor
        The same type and shape as ``seq``.
    """
    keys = _check_complement_map(complement_map)
    if isinstance(seq, torch.Tensor):
        if seq.ndim not in (2, 3):
            raise ValueError(f"seq: a one-hot tensor must be (A, L) or (N, A, L), got shape "
                             f"{tuple(seq.shape)}")
        if seq.shape[-2] != len(keys):
            raise ValueError(f"seq: has {seq.shape[-2]} characters on its alphabet axis but "
                             f"complement_map has {len(keys)} keys ({keys})")
        order = [keys.index(complement_map[k]) for k in keys]
        return torch.flip(seq, dims=(-1,))[..., order, :]
    if not isinstance(seq, str):
        raise ArgumentTypeError(f"seq: expected a str or a tensor, got {type(seq).__name__}")
    out = []
    for i, c in enumerate(reversed(seq)):
        if c in complement_map:
            out.append(complement_map[c])
        elif allow_N and c == 'N':
            out.append('N')
        else:
            raise ValueError(f"seq: {c!r} at position {len(seq) - 1 - i} is not in the complement "
                             f"map {keys}" + ("" if allow_N or c != 'N' else " (allow_N=False)"))
    return ''.join(out)


def pwm_consensus(X) -> torch.Tensor:
    """The consensus of a PWM as a one-hot matrix.

    Parameters
    ----------
    X : torch.Tensor or numpy.ndarray, shape=(A, L)
        Probabilities (or any scores) of each character at each position.

    Returns
    -------
    torch.Tensor, shape=(A, L)
        1 at the argmax of every column (the first at ties), 0 elsewhere; an
        all-zero column stays all zero. Same dtype as ``X``.
    """
    if isinstance(X, numpy.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"X: expected a torch.Tensor or numpy array, got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"X: expected a PWM of shape (A, L), got {tuple(X.shape)}")
    Y = torch.zeros_like(X)
    if X.numel():
        Y.scatter_(0, X.argmax(dim=0, keepdim=True), 1)
        Y[:, (X == 0).all(dim=0)] = 0
    return Y


# --------------------------------------------------------------------------- chunks

def _chunk_starts(length, size, stride):
    return range(0, length - size + 1, stride)


def chunk(X, size: int = 1024, overlap: int = 0) -> torch.Tensor:
    """Tile variable-length sequences with fixed-length, overlapping blocks.

    Parameters
    ----------
    X : list of torch.Tensor, each (A, L_i)
        One-hot (or any) sequences with a common first axis.
    size : int, optional
        Block length. Default 1024.
    overlap : int, optional
        Positions shared by adjacent blocks of a sequence (the stride is
        ``size - overlap``). Default 0.

    Returns
    -------
    torch.Tensor, shape=(n_blocks, A, size)
        The blocks of every sequence in order, sequence after sequence. A
        sequence's last, shorter remainder is left out (as in tangermeme);
        a sequence shorter than ``size`` raises (it would give no block).
    """
    if not isinstance(X, (list, tuple)):
        raise ValueError(f"X: expected a list of (A, L) tensors, got {type(X).__name__}")
    if len(X) == 0:
        raise ValueError("X: expected a non-empty list of (A, L) tensors")
    size = check_int(size, 'size', low=1)
    overlap = check_int(overlap, 'overlap', low=0)
    if overlap >= size:
        raise ArgumentRuntimeError(f"overlap: must be smaller than size ({size}), got {overlap}")
    stride = size - overlap
    blocks = []
    for i, x in enumerate(X):
        if not isinstance(x, torch.Tensor) or x.ndim != 2:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"X[{i}]: expected an (A, L) tensor, got {got}")
        if x.shape[0] != X[0].shape[0]:
            raise ValueError(f"X[{i}]: has {x.shape[0]} rows but X[0] has {X[0].shape[0]}")
        if x.shape[1] < size:
            raise ArgumentRuntimeError(f"X[{i}]: has length {x.shape[1]}, shorter than one block "
                                       f"(size={size})")
        blocks.append(x.unfold(1, size, stride).permute(1, 0, 2))
    return torch.cat(blocks)


def unchunk(X, lengths=None, overlap: int = 0) -> list:
    """Join per-block results of :func:`chunk` back into one tensor per sequence.

    Adjacent blocks share ``overlap`` positions; each shared stretch is split
    between them, the first ``overlap // 2`` positions going to the earlier
    block. The remainder :func:`chunk` left out is not reconstructed.

    Parameters
    ----------
    X : torch.Tensor, numpy.ndarray or list of tensors, shape=(n_blocks, ..., size)
        Results of at least three axes, the last being position.
    lengths : sequence of int
        The original length of every sequence (required).
    overlap : int, optional
        As given to :func:`chunk`. Default 0.

    Returns
    -------
    list of torch.Tensor
        One ``(..., covered_length_i)`` tensor per sequence.
    """
    if lengths is None:
        raise ValueError("lengths: required (the original length of every chunked sequence)")
    if isinstance(X, (list, tuple)):
        X = torch.stack([torch.as_tensor(x) for x in X]) if len(X) else torch.empty(0)
    elif isinstance(X, numpy.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor):
        raise ValueError(f"X: expected a tensor, numpy array or list, got {type(X).__name__}")
    if X.ndim < 3:
        raise ValueError(f"X: expected at least three axes (blocks, ..., size), got shape "
                         f"{tuple(X.shape)}")
    if isinstance(lengths, (torch.Tensor, numpy.ndarray)):
        lengths = lengths.tolist()
    lengths = [check_int(v, f'lengths[{i}]', low=0) for i, v in enumerate(lengths)]
    size = X.shape[-1]
    overlap = check_int(overlap, 'overlap', low=0)
    if overlap >= size:
        raise ArgumentRuntimeError(f"overlap: must be smaller than the block size ({size}), got "
                                   f"{overlap}")
    stride = size - overlap
    counts = [len(_chunk_starts(n, size, stride)) for n in lengths]
    if sum(counts) != X.shape[0] or 0 in counts:
        raise ValueError(f"X: has {X.shape[0]} blocks but lengths {lengths} with size {size} and "
                         f"overlap {overlap} give {counts} per sequence")
    head, tail = overlap // 2 + stride, overlap // 2  # keep [:head] first, [tail:] last
    out, k = [], 0
    for c in counts:
        blocks = X[k:k + c]
        if c == 1:
            out.append(blocks[0].clone())
        else:
            parts = [blocks[0, ..., :head]] + [blocks[j, ..., tail:head] for j in range(1, c - 1)]
            out.append(torch.cat(parts + [blocks[c - 1, ..., tail:]], dim=-1))
        k += c
    return out


# --------------------------------------------------------------------------- coordinates

def example_to_fasta_coords(example_df, loci_df, window: Optional[int] = None,
                            one_indexed: bool = False):
    """Map spans on extracted windows back to coordinates in the FASTA.

    Parameters
    ----------
    example_df : pandas.DataFrame
        First three columns: example index (row of ``loci_df``), start and
        end within that example; further columns are kept.
    loci_df : pandas.DataFrame
        First three columns: chrom, start, end of the loci the examples were
        extracted from.
    window : int or None, optional
        If given, each locus is replaced by a window of this length centred
        on its middle (``(start + end) // 2 - window // 2``), as when fixed
        windows were extracted around peaks. Default None.
    one_indexed : bool, optional
        ``example_df`` starts at 1 rather than 0. Default False.

    Returns
    -------
    pandas.DataFrame
        ``example_df`` with its first three columns replaced by chrom, start
        and end in ``loci_df``'s coordinate system (and named as there).
    """
    import pandas

    for name, df in (('example_df', example_df), ('loci_df', loci_df)):
        if not isinstance(df, pandas.DataFrame) or df.shape[1] < 3:
            raise ValueError(f"{name}: expected a DataFrame with at least three columns")
    if window is not None:
        window = check_int(window, 'window', low=0)
    idx = example_df.iloc[:, 0].to_numpy()
    if len(idx) and (not numpy.issubdtype(idx.dtype, numpy.integer) or idx.min() < 0
                     or idx.max() >= len(loci_df)):
        raise ArgumentIndexError(f"example_df: the first column must hold row indices of "
                                 f"loci_df (0 to {len(loci_df) - 1})")
    chrom = loci_df.iloc[idx, 0].to_numpy()
    start = loci_df.iloc[idx, 1].to_numpy().astype(numpy.int64)
    if window is not None:
        end = loci_df.iloc[idx, 2].to_numpy().astype(numpy.int64)
        start = (start + end) // 2 - window // 2
    shift = 1 if one_indexed else 0
    out = example_df.copy()
    names = list(loci_df.columns[:3])
    out = out.rename(columns=dict(zip(example_df.columns[:3], names)))
    out[names[0]] = chrom
    out[names[1]] = start + example_df.iloc[:, 1].to_numpy() - shift
    out[names[2]] = start + example_df.iloc[:, 2].to_numpy() - shift
    return out


def extract_signal(loci, X, verbose: bool = False) -> torch.Tensor:
    """Sum a signal over spans of examples.

    Parameters
    ----------
    loci : pandas.DataFrame
        First three columns: example index, start (inclusive) and end
        (exclusive) on that example. Spans may overlap; an empty span sums
        to 0. A span outside the example raises a ValueError.
    X : torch.Tensor or numpy.ndarray, shape=(N, n_signals, L)
        E.g. attributions or coverage tracks.
    verbose : bool, optional
        Progress bar over loci. Default False.

    Returns
    -------
    torch.Tensor, shape=(n_loci, n_signals)
        The sums; X's dtype for floating X, int64 for integer X (no overflow).
    """
    import pandas

    if isinstance(X, numpy.ndarray):
        X = torch.from_numpy(X)
    if not isinstance(X, torch.Tensor) or X.ndim != 3:
        raise ValueError("X: expected a (N, n_signals, L) tensor or numpy array, got "
                         f"{tuple(X.shape) if hasattr(X, 'shape') else type(X).__name__}")
    if not isinstance(loci, pandas.DataFrame) or loci.shape[1] < 3:
        raise ValueError("loci: expected a DataFrame whose first three columns are example index, "
                         "start and end")
    cols = [loci.iloc[:, j].to_numpy() for j in range(3)]
    for j, c in enumerate(cols):
        if len(c) and not numpy.issubdtype(c.dtype, numpy.integer):
            raise ValueError(f"loci: column {j} ({loci.columns[j]!r}) must hold integers, got "
                             f"{c.dtype}")
    e, s, t = (c.astype(numpy.int64) for c in cols)
    bad = (e < 0) | (e >= X.shape[0]) | (s < 0) | (t < s) | (t > X.shape[-1])
    if bad.any():
        i = int(numpy.flatnonzero(bad)[0])
        raise ValueError(f"loci: row {i} ({e[i]}, {s[i]}, {t[i]}) is not a span of an example "
                         f"(0 <= example < {X.shape[0]}, 0 <= start <= end <= {X.shape[-1]})")
    dtype = X.dtype if X.is_floating_point() else torch.int64
    # Cumulative sums (float64 / int64) make every span two lookups.
    wide = torch.float64 if X.is_floating_point() else torch.int64
    cum = torch.zeros(X.shape[0], X.shape[1], X.shape[2] + 1, dtype=wide)
    torch.cumsum(X.detach().cpu().to(wide), dim=-1, out=cum[..., 1:])
    out = torch.empty(len(e), X.shape[1], dtype=dtype)
    step = 65536
    for i0 in tqdm(range(0, len(e), step), disable=not verbose, desc="extract_signal"):
        ei, si, ti = (torch.from_numpy(v[i0:i0 + step]) for v in (e, s, t))
        out[i0:i0 + step] = (cum[ei, :, ti] - cum[ei, :, si]).to(dtype)
    return out


# --------------------------------------------------------------------------- statistics

def set_seed(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and CUDA) global generators.

    Ops that take ``random_state`` use it instead when it is given.
    """
    seed = check_int(seed, 'seed')
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def _check_profile(X, name='X'):
    if not isinstance(X, torch.Tensor) or X.ndim != 3:
        raise ValueError(f"{name}: expected a (N, A, L) tensor, got "
                         f"{tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__}; "
                         "pass a single PWM as X[None]")
    if X.is_floating_point() and bool(torch.isnan(X).any()):
        raise ValueError(f"{name}: contains NaN")
    if bool((X < 0).any()):
        raise ValueError(f"{name}: must be non-negative (probabilities, counts or one-hot)")


def gc_content(X: torch.Tensor, alphabet: Sequence[str] = DNA) -> torch.Tensor:
    """Fraction of G or C among the known positions of each sequence.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences; all-zero (N) positions count in neither the
        numerator nor the denominator.
    alphabet : list of str, optional
        Characters of axis 1; must contain G and C. Default ACGT.

    Returns
    -------
    torch.Tensor, shape=(N,)
        float32 in [0, 1]; 0 for a sequence with no known position.
    """
    if not isinstance(X, torch.Tensor) or X.ndim != 3 or X.shape[1] != len(alphabet):
        raise ValueError(f"X: expected a one-hot (N, {len(alphabet)}, L) tensor, got "
                         f"{tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__}")
    if 'G' not in alphabet or 'C' not in alphabet:
        raise ValueError(f"alphabet: {list(alphabet)} does not contain both G and C")
    _validate_input(X, 'X', ohe=True, allow_N=True)
    Xf = X.float()
    gc = Xf[:, alphabet.index('G')].sum(-1) + Xf[:, alphabet.index('C')].sum(-1)
    known = Xf.sum(dim=(1, 2))
    return torch.where(known > 0, gc / known.clamp(min=1), torch.zeros_like(gc))


def entropy(X: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Shannon entropy in bits of every position.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        PWMs, counts or one-hot encodings (non-negative); each column is
        normalised to sum to 1 first.
    eps : float, optional
        Added inside the logarithm. Default 1e-9.

    Returns
    -------
    torch.Tensor, shape=(N, L)
        Floating point (float32 for integer X); 0 for all-zero columns.
    """
    _check_profile(X)
    Xf = X if X.is_floating_point() else X.float()
    total = Xf.sum(dim=1, keepdim=True)
    p = Xf / torch.where(total > 0, total, torch.ones_like(total))
    return -(p * torch.log2(p + eps)).sum(dim=1)


def information_content(X: torch.Tensor, alphabet_size: Optional[int] = None,
                        eps: float = 1e-9) -> torch.Tensor:
    """Information content in bits of every position: ``log2(A) - entropy``.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        As for :func:`entropy`.
    alphabet_size : int or None, optional
        ``A`` of the maximum entropy; None uses ``X.shape[1]``. Default None.
    eps : float, optional
        As for :func:`entropy`. Default 1e-9.

    Returns
    -------
    torch.Tensor, shape=(N, L)
        0 for all-zero columns (unknown positions carry no information).
    """
    H = entropy(X, eps=eps)
    A = X.shape[1] if alphabet_size is None else check_int(alphabet_size, 'alphabet_size', low=1)
    ic = math.log2(A) - H
    return torch.where(X.sum(dim=1) > 0, ic, torch.zeros_like(ic))
