"""Sequence edits and shuffles: ``substitute``, ``shuffle``, ``dinucleotide_shuffle``.

Shapes and argument semantics follow ``tangermeme.ersatz`` (1.6.0): one-hot
``(N, A, L)`` in, ``(N, A, L)`` (substitute) or ``(N, n, A, L)`` (shuffles)
out, with the dtype and device of ``X``.

:func:`dinucleotide_shuffle` differs from tangermeme on purpose: it samples
**uniformly** among all sequences that have the same dinucleotide counts and
the same first character (tangermeme keeps each character's last successor
fixed, so it reaches only part of them; its issue #27). It uses the
Altschul–Erickson / Kandel et al. construction behind uShuffle:

1. a walk through the window's dinucleotides that starts at its first
   character is fixed by the order in which it leaves every character. The
   *last* exits of the characters other than the final one form an
   arborescence rooted at the final character, and every arborescence plus
   every order of the remaining exits gives exactly one sequence;
2. so draw the arborescence with probability proportional to the product of
   its edges' multiplicities (all of them are enumerated: there are few with
   at most 5 characters), put every character's other exits in a uniformly
   random order (by sorting random keys) and walk.

The walk is a loop over positions, vectorised over a group of ``N * n``
walks; the group's exit lists and characters live in its own output bytes
until they are expanded to one-hot, so memory stays at the output plus a few
MiB of buffers. When numba is importable the same walk runs as a compiled
loop over the same sorted keys (identical shuffles, several times faster);
``KIPOI_TANGER_NUMBA=0`` turns that off.
"""
import functools
import itertools
import numbers
import os
import sys
import warnings

import numpy
import torch

__all__ = ['substitute', 'shuffle', 'dinucleotide_shuffle']

# Chunk buffers (sort keys, one-hot staging) hold about this many bytes.
_CHUNK_BYTES = 4 << 20
# Walks advanced together (whole sequences): bounds the per-walk scratch.
_GROUP_WALKS = 4096
# Enumerate arborescences up to this many characters (6^5 candidate parent maps).
_MAX_ENUMERATED = 6
_LITTLE = sys.byteorder == 'little'
# Positions (walks x window) from which a call loads numba for the walk.
_NUMBA_MIN_WORK = 8 << 20


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


def _motif_tensor(motif, X, alphabet, ignore):
    if isinstance(motif, str):
        from .utils import one_hot_encode
        if len(motif) == 0:
            raise ValueError("motif: expected a non-empty string")
        if len(alphabet) != X.shape[1]:
            raise ValueError(f"alphabet: has {len(alphabet)} characters but X has {X.shape[1]} "
                             "rows on axis 1")
        return one_hot_encode(motif, alphabet=alphabet, ignore=ignore, dtype=X.dtype)[None] \
            .to(X.device)
    if not isinstance(motif, torch.Tensor):
        raise ValueError(f"motif: expected a str or a one-hot torch.Tensor, got "
                         f"{type(motif).__name__}")
    if motif.ndim == 2:
        motif = motif[None]
    if motif.ndim != 3 or motif.shape[1] != X.shape[1] or motif.shape[0] not in (1, X.shape[0]) \
            or motif.shape[2] == 0:
        raise ValueError(f"motif: expected shape (1 or {X.shape[0]}, {X.shape[1]}, m), got "
                         f"{tuple(motif.shape)}")
    if motif.device != X.device:
        raise ValueError(f"motif: must be on the same device as X; got motif on {motif.device} "
                         f"and X on {X.device}")
    _check_one_hot(motif, 'motif', allow_N=True)
    return motif


def substitute(X, motif, start=None, alphabet=['A', 'C', 'G', 'T'], ignore=['N']):
    """Substitute a motif into every sequence at one position.

    Parameters
    ----------
    X : torch.Tensor, shape=(N, A, L)
        One-hot sequences; all-zero (N) columns are allowed and kept where the
        motif does not cover them.
    motif : str or torch.Tensor
        A string encoded with ``alphabet`` (characters in ``ignore`` keep the
        original base), or a one-hot tensor ``(1, A, m)`` applied to every
        sequence or ``(N, A, m)`` applied one-to-one; its all-zero columns keep
        the original base.
    start : int or None, optional
        First position of the motif. None centres it: ``L // 2 - m // 2``.
        An explicit start must satisfy ``0 <= start <= L - m``. Default None.
    alphabet : list of str, optional
        Characters of axis 1, used for a string motif. Default ACGT.
    ignore : list of str, optional
        Characters of a string motif that keep the original base. Default ``['N']``.

    Returns
    -------
    torch.Tensor, shape=(N, A, L)
        A copy of ``X`` (same dtype and device) with the motif substituted.
    """
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    motif = _motif_tensor(motif, X, alphabet, ignore)
    m, L = motif.shape[-1], X.shape[-1]
    if m > L:
        raise ValueError(f"motif: length {m} is longer than the sequences ({L})")
    if start is None:
        start = L // 2 - m // 2
    elif isinstance(start, bool) or not isinstance(start, numbers.Integral) \
            or not 0 <= start <= L - m:
        raise ValueError(f"start: expected an int in [0, {L - m}] (L={L}, motif length {m}), "
                         f"got {start!r}")
    start = int(start)
    Y = X.clone()
    window = Y[:, :, start:start + m]
    keep = (motif != 0).any(dim=1, keepdim=True)
    window.copy_(torch.where(keep, motif.to(X.dtype), window))
    return Y


def _resolve_window(start, end, L):
    for name, v in (('start', start), ('end', end)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"{name}: expected an int, got {v!r}")
    start, end = int(start), int(end)
    if end < 0:
        end = L + 1 + end
    if not 0 <= start < end <= L:
        raise ValueError(f"start/end: need 0 <= start < end <= L (end=-1 means L); got "
                         f"start={start}, end={end} for L={L}")
    return start, end


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    return int(n)


def shuffle(X, start=0, end=-1, n=1, random_state=None):
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
        Number of shuffles. Default 1.
    random_state : int, numpy.random.RandomState or None, optional
        Seed or generator. Default None.

    Returns
    -------
    torch.Tensor, shape=(N, n, A, L)
        Same dtype and device as ``X``.
    """
    _check_tensor(X)
    _check_one_hot(X, 'X', allow_N=True)
    start, end = _resolve_window(start, end, X.shape[-1])
    n = _check_n(n)
    if isinstance(random_state, numpy.random.RandomState):
        rs = random_state
    elif random_state is None or (isinstance(random_state, numbers.Integral)
                                  and not isinstance(random_state, bool)):
        rs = numpy.random.RandomState(random_state)
    else:
        raise ValueError(f"random_state: expected an int, a numpy RandomState or None, got "
                         f"{type(random_state).__name__}")
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
    if isinstance(random_state, torch.Tensor):
        random_state = random_state.tolist()
    elif isinstance(random_state, numpy.ndarray):
        random_state = random_state.tolist()
    if isinstance(random_state, (list, tuple)) and len(random_state) == N and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in random_state):
        return [int(s) for s in random_state]
    raise ValueError(f"random_state: expected None, an int, or a sequence of {N} ints (one per "
                     f"sequence), got {random_state!r:.80}")


@functools.lru_cache(maxsize=None)
def _parent_maps(K):
    """Parent maps of rooted spanning forests, per root.

    Returns a list over roots ``r`` of int arrays ``(T, K)``: every map ``p``
    with ``p[r] == r`` and no cycle longer than one, in lexicographic order.
    ``p[v] == v`` marks a character that is absent (no exits); every other
    entry is ``v``'s last exit. Weights are zero for maps that are not an
    arborescence of the present characters, so all of them can be kept.
    """
    grid = numpy.array(list(itertools.product(range(K), repeat=K)), dtype=numpy.int64)
    # Following parents K times from every vertex must end on a fixed point.
    follow = numpy.tile(numpy.arange(K), (len(grid), 1))
    for _ in range(K):
        follow = numpy.take_along_axis(grid, follow, axis=1)
    acyclic = (numpy.take_along_axis(grid, follow, axis=1) == follow).all(axis=1)
    tables = []
    for r in range(K):
        keep = acyclic & (grid[:, r] == r)
        tables.append(numpy.ascontiguousarray(grid[keep]))
    return tables


def _wilson(Mx, root, K, u_iter):
    """One arborescence rooted at ``root`` by Wilson's algorithm (used only for
    alphabets too large to enumerate). ``Mx`` holds the exit counts with the
    diagonal zeroed; ``u_iter`` yields uniforms."""
    parent = numpy.arange(K)
    present = Mx.sum(axis=1) > 0
    in_tree = ~present
    in_tree[root] = True
    for v0 in range(K):
        v = v0
        while not in_tree[v]:
            row = Mx[v]
            parent[v] = min(int(numpy.searchsorted(numpy.cumsum(row), next(u_iter) * row.sum(),
                                                   side='right')), K - 1)
            v = parent[v]
        v = v0
        while not in_tree[v]:
            in_tree[v] = True
            v = parent[v]
    return parent


def _uniforms(bitgen, n):
    return (bitgen.random_raw(n) >> numpy.uint64(11)).astype(numpy.float64) * (1.0 / (1 << 53))


def _pair_stats(codes, K):
    """Dinucleotide counts ``(N, K, K)`` and the index of the first exit
    ``a -> b`` (0 where there is none) of each window, in bounded chunks."""
    N, R = codes.shape
    counts = numpy.zeros((N, K * K), dtype=numpy.int64)
    first = numpy.full((N, K * K), R, dtype=numpy.int64)
    step = max(1, _CHUNK_BYTES // (16 * max(R - 1, 1)))
    for s0 in range(0, N, step):
        s1 = min(N, s0 + step)
        c = codes[s0:s1]
        pair = c[:, :-1].astype(numpy.int32) * K + c[:, 1:]
        pair += (numpy.arange(s1 - s0, dtype=numpy.int32) * (K * K))[:, None]
        counts[s0:s1] = numpy.bincount(pair.ravel(), minlength=(s1 - s0) * K * K) \
            .reshape(s1 - s0, K * K)
        f = first[s0:s1].reshape(-1)
        numpy.minimum.at(f, pair.ravel(), numpy.tile(numpy.arange(R - 1), s1 - s0))
    first[first == R] = 0
    return counts.reshape(N, K, K), first.reshape(N, K, K)


def _draw_trees(counts, roots, n, bitgens, K):
    """Sample each walk's last-exit arborescence: ``(N * n, K)`` parents.

    A tree's probability is proportional to the product over characters of
    the multiplicity of its last exit, which makes the final sequences
    uniform. ``parent[v] == v`` for the root and for absent characters.
    """
    N = counts.shape[0]
    Mx = counts.astype(numpy.float64)
    out_degree = counts.sum(axis=2)
    diag = numpy.arange(K)
    # Self-loops are never last exits; an absent character (no exits) and the
    # root contribute a factor 1 through their self-parent.
    Mx[:, diag, diag] = out_degree == 0
    Mx[numpy.arange(N), roots, roots] = 1.0
    parents = numpy.empty((N, n, K), dtype=numpy.int64)
    if K <= _MAX_ENUMERATED:
        tables = _parent_maps(K)
        for r in numpy.unique(roots):
            F = tables[r]
            seqs = numpy.flatnonzero(roots == r)
            for j0 in range(0, len(seqs), 256):
                sj = seqs[j0:j0 + 256]
                w = numpy.ones((len(sj), len(F)))
                for v in range(K):
                    w *= Mx[sj, v][:, F[:, v]]
                cum = numpy.cumsum(w, axis=1)
                for j, s in enumerate(sj):
                    u = _uniforms(bitgens[s], n) * cum[j, -1]
                    idx = numpy.minimum(numpy.searchsorted(cum[j], u, side='right'), len(F) - 1)
                    parents[s] = F[idx]
    else:
        Mz = Mx.copy()
        Mz[:, diag, diag] = 0
        for s in range(N):
            u_iter = iter(lambda b=bitgens[s]: float(_uniforms(b, 1)[0]), None)
            for i in range(n):
                parents[s, i] = _wilson(Mz[s], int(roots[s]), K, u_iter)
    return parents.reshape(N * n, K)


def _draw_keys(bitgen, count, E, template, rmask, out):
    """Fill ``out`` (``count`` rows of ``E`` uint32 keys) from ``bitgen``. Each
    row takes whole 64-bit draws, so the stream does not depend on chunking."""
    half = (E + 1) // 2
    raw = bitgen.random_raw(count * half).view(numpy.uint32).reshape(count, 2 * half)
    numpy.bitwise_and(raw[:, :E], rmask, out=out)
    numpy.bitwise_or(out, template, out=out)


def _exact_row(bitgen, template, reserved, nbits):
    """One walk's sorted exit destinations from tie-free 64-bit keys: the rare
    fallback when two 32-bit keys of one character tie (a tie would be broken
    by the destination, not at random)."""
    E = len(template)
    top, rbits = 64 - nbits, 64 - 2 * nbits
    t64 = ((template >> numpy.uint32(32 - nbits)).astype(numpy.uint64) << numpy.uint64(top)) \
        | (template & numpy.uint32((1 << nbits) - 1)).astype(numpy.uint64)
    rmask = numpy.uint64(((1 << rbits) - 1) << nbits)
    while True:
        keys = (bitgen.random_raw(E) & rmask) | t64
        keys[reserved] |= rmask
        keys.sort()
        if not ((keys[1:] >> numpy.uint64(nbits)) == (keys[:-1] >> numpy.uint64(nbits))).any():
            return (keys & numpy.uint64((1 << nbits) - 1)).astype(numpy.uint8)


def _transpose_into(dst, src):
    """``dst[:] = src.T`` for 2-D uint8 arrays, in row blocks (a plain transposed
    copy of bytes is several times slower)."""
    for r0 in range(0, src.shape[0], 64):
        dst[:, r0:r0 + 64] = src[r0:r0 + 64].T


def _dinucleotide_walks(codes, n, bitgens, seeds, parents, stats, K, nbits, exits, walk, cw,
                        kernel):
    """Walk ``n`` uniform dinucleotide shuffles of each row of ``codes`` (S, R)
    into ``cw`` (S * n, >= R), walk-major.

    ``exits`` (S * n, R - 1) and ``walk`` (R, S * n) are scratch for the numpy
    walk (sorted exit lists, and the characters step-major); the compiled walk
    reads the sorted keys directly and needs neither. ``kernel`` is the
    compiled walk or None.
    """
    S, R = codes.shape
    W, E = S * n, R - 1
    counts, first_exit = stats
    out_degree = counts.sum(axis=2)
    first = numpy.repeat(codes[:, 0], n)
    if E == 0:
        cw[:W, 0] = first
        return
    # off[w, c]: where the exits of character c start in walk w's sorted row.
    off = numpy.zeros((S, K), dtype=numpy.int64)
    numpy.cumsum(out_degree[:, :-1], axis=1, out=off[:, 1:])
    off = numpy.repeat(off, n, axis=0)

    # Sort keys (uint32): source character | 26+ random bits | destination.
    # Sorting a row groups the exits by source and puts each group in a
    # uniformly random order; the reserved last exit gets all-one random bits
    # so it sorts last. A row where two keys of one group tie is redrawn with
    # 64-bit keys from a second stream of its sequence, so ties cannot bias it.
    top = numpy.uint32(32 - nbits)
    rmask = numpy.uint32(((1 << (32 - 2 * nbits)) - 1) << nbits)
    dmask = numpy.uint8((1 << nbits) - 1)
    roots = codes[:, -1]
    present = out_degree > 0
    present[numpy.arange(S), roots] = False
    chunk = max(1, _CHUNK_BYTES // (4 * E))
    keys = numpy.empty((min(chunk, W), E), dtype=numpy.uint32)
    ties = numpy.empty(min(chunk, W), dtype=numpy.bool_)
    for w0 in range(0, W, chunk):
        w1 = min(W, w0 + chunk)
        kb = keys[:w1 - w0]
        reserved = []
        for s in range(w0 // n, (w1 - 1) // n + 1):
            a, b = max(w0, s * n), min(w1, (s + 1) * n)
            template = (codes[s, :-1].astype(numpy.uint32) << top) | codes[s, 1:]
            dst = kb[a - w0:b - w0]
            _draw_keys(bitgens[s], b - a, E, template, rmask, dst)
            vs = numpy.flatnonzero(present[s])
            res = first_exit[s, vs[None, :], parents[a:b][:, vs]]
            dst[numpy.arange(b - a)[:, None], res] |= rmask
            reserved.append(res)
        kb.sort(axis=1)
        tie = ties[:w1 - w0]
        if kernel is not None:
            kernel(kb, off[w0:w1], first[w0:w1], K, numpy.uint32(dmask), True, cw[w0:w1, :R],
                   tie)
        else:
            low = kb.view(numpy.uint8)[:, ::4] if _LITTLE else kb
            numpy.bitwise_and(low, dmask, out=exits[w0:w1], casting='unsafe')
            numpy.any((kb[:, 1:] ^ kb[:, :-1]) <= dmask, axis=1, out=tie)
        if tie.any():
            reserved = numpy.concatenate(reserved)
            for j in numpy.flatnonzero(tie):
                w, s = w0 + j, (w0 + j) // n
                template = (codes[s, :-1].astype(numpy.uint32) << top) | codes[s, 1:]
                row = _exact_row(_fallback_stream(bitgens, seeds, s), template, reserved[j], nbits)
                if kernel is not None:
                    kernel(row[None], off[w:w + 1], first[w:w + 1], K, numpy.uint8(255), False,
                           cw[w:w + 1, :R], tie[j:j + 1])
                else:
                    exits[w] = row
    if kernel is not None:
        return

    # P[w * K + c]: flat index into ``exits`` of the next unused exit of c in walk w.
    P = (numpy.arange(W, dtype=numpy.int64)[:, None] * E + off).ravel()
    kbase = numpy.arange(W, dtype=numpy.int64) * K
    k = kbase + first
    p = numpy.empty(W, dtype=numpy.int64)
    flat = exits.reshape(-1)
    walk[0] = first
    for i in range(1, R):
        row = walk[i]
        numpy.take(P, k, out=p, mode='wrap')
        numpy.take(flat, p, out=row, mode='wrap')
        p += 1
        numpy.put(P, k, p, mode='wrap')
        numpy.add(kbase, row, out=k)
    _transpose_into(cw[:W, :R], walk)


def _compiled_walk(work):
    """The compiled walk for a call that walks ``work`` positions, or None for
    the numpy loop. Loading numba costs about a second, so small calls use it
    only once it is loaded."""
    if os.environ.get('KIPOI_TANGER_NUMBA', '1') == '0':
        return None
    if work < _NUMBA_MIN_WORK and not _numba_walk.cache_info().currsize:
        return None
    return _numba_walk()


@functools.lru_cache(maxsize=None)
def _numba_walk():
    """The walk as a compiled loop when numba is installed (None otherwise): the
    same shuffles as the numpy loop, several times faster.

    ``walk(rows, off, first, K, mask, check_ties, out, ties)`` reads each sorted
    row (``& mask`` gives the destination); with ``check_ties`` a row whose
    adjacent keys tie is flagged in ``ties`` and not walked.
    """
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=True, nogil=True)
    def walk(rows, off, first, K, mask, check_ties, out, ties):
        W, R = out.shape
        ptr = numpy.empty(K, numpy.int64)
        for w in range(W):
            row = rows[w]
            tie = False
            if check_ties:
                for i in range(1, R - 1):
                    if (row[i] ^ row[i - 1]) <= mask:
                        tie = True
                        break
            ties[w] = tie
            if tie:
                continue
            for c in range(K):
                ptr[c] = off[w, c]
            c = first[w]
            out[w, 0] = c
            for i in range(1, R):
                d = row[ptr[c]] & mask
                ptr[c] += 1
                out[w, i] = d
                c = d

    return walk


def _fallback_stream(bitgens, seeds, s):
    # A second, independent stream of sequence s (created on first use).
    key = ('fallback', s)
    if key not in bitgens:
        bitgens[key] = numpy.random.PCG64(seeds[s] % (1 << 64)).jumped()
    return bitgens[key]


def dinucleotide_shuffle(X, start=0, end=-1, n=20, random_state=None, allow_N=False,
                         verbose=False):
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
        Shuffles per sequence. Default 20.
    random_state : None, int or sequence of ints, optional
        An int ``s`` shuffles sequence ``i`` with seed ``s + i``; a sequence of
        ``N`` ints gives each sequence its own seed, so ``random_state=[k] * N``
        shuffles every sequence exactly as it would be shuffled alone with seed
        ``k``. None takes a base seed from numpy's global RNG (torch's RNG is
        never used). Default None.
    allow_N : bool, optional
        Accept all-zero (N) columns and shuffle N as a character of its own;
        otherwise they raise a ValueError. Sequences without N shuffle the same
        either way. Default False.
    verbose : bool, optional
        Warn when some position between the ends of a window is the same in
        all of its shuffles. Default False.

    Returns
    -------
    torch.Tensor, shape=(N, n, A, L)
        Same dtype and device as ``X``.

    Raises
    ------
    ValueError
        For bad input, or when ``n > 1`` and all shuffles of some sequence are
        identical (e.g. "ACGTACGT", which has only one dinucleotide shuffle).
    """
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

    # Every sequence draws from its own stream: first its trees, then its keys.
    bitgens = {s: numpy.random.PCG64(seed % (1 << 64)) for s, seed in enumerate(seeds)}
    stats = _pair_stats(codes, K)
    parents = _draw_trees(stats[0], codes[:, -1].astype(numpy.int64), n, bitgens, K)

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
    kernel = _compiled_walk(N * n * R)

    # Groups of whole sequences: their walks keep the exit lists and characters
    # in the group's own output bytes until the one-hot expansion.
    group = max(1, _GROUP_WALKS // n)
    Wg = min(group, N) * n
    cw = numpy.empty((Wg, R), dtype=numpy.uint8)  # walk-major characters
    one_byte = out_np is not None and out_np.dtype.itemsize == 1
    own = B >= 2 * R
    if not own:  # one character in a 1-byte dtype: no room in the output
        spare = numpy.empty(Wg * (2 * R - 1), dtype=numpy.uint8)
    conserved_any = False
    for s0 in range(0, N, group):
        s1 = min(N, s0 + group)
        w0, w1 = s0 * n, s1 * n
        W = w1 - w0
        region = raw[w0 * B:w1 * B] if own else spare
        exits = region[:W * (R - 1)].reshape(W, R - 1)
        walk = region[W * (R - 1):W * (2 * R - 1)].reshape(R, W)
        sub = {s - s0: bitgens[s] for s in range(s0, s1)}
        _dinucleotide_walks(codes[s0:s1], n, sub, seeds[s0:s1], parents[w0:w1],
                            (stats[0][s0:s1], stats[1][s0:s1]), K, nbits, exits, walk, cw,
                            kernel)
        c = cw[:W]

        if n > 1:
            # The ends never move, so identical interiors mean identical rows.
            rows = c.reshape(s1 - s0, n, R)
            if not (rows[:, 1:] != rows[:, :1]).any(axis=(1, 2)).all():
                raise ValueError("All dinucleotide shuffles yield identical sequences, "
                                 "potentially due to a lack of diversity in sequence (e.g. one "
                                 "with a single Eulerian path such as ACGTACGT)")
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
                      "shuffles.", UserWarning, stacklevel=2)
    return out.to(X.device) if X.device.type != 'cpu' else out
