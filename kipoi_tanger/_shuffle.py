"""The uniform dinucleotide shuffle walk behind ``ersatz.dinucleotide_shuffle``
(numpy and numba; no torch, so a process can compile or load the walk alone).

Shuffles of a window that keep its first character and the count of every
dinucleotide are the Eulerian trails of its dinucleotide multigraph that start
at the first character. They are sampled **uniformly** with the
Altschul–Erickson / Kandel et al. construction behind uShuffle:

1. a trail that starts at the first character is fixed by the order in which
   it leaves every character. The *last* exits of the characters other than
   the final one form an arborescence rooted at the final character, and every
   arborescence plus every order of the remaining exits gives exactly one
   sequence;
2. so draw the arborescence with probability proportional to the product of
   its edges' multiplicities (all of them are enumerated: there are few with
   at most 5 characters; Wilson's algorithm beyond), put every character's
   other exits in a uniformly random order (by sorting random keys) and walk.

The walk is a loop over positions over a group of ``N * n`` walks; the group's
exit lists and characters live in caller-provided scratch (the output bytes)
until they are expanded to one-hot, so memory stays at the output plus a few
MiB. The loop is compiled with numba (cached on disk) by default; the numpy
loop gives the same shuffles and is used when numba is missing or fails, or
when ``KIPOI_TANGER_NUMBA=0``.
"""
import functools
import itertools
import math
import os
import sys
import warnings

import numpy

# Chunk buffers (sort keys) hold about this many bytes.
_CHUNK_BYTES = 4 << 20
# Walks advanced together (whole sequences): bounds the per-walk scratch.
_GROUP_WALKS = 4096
# Enumerate arborescences up to this many characters (6^5 candidate parent maps).
_MAX_ENUMERATED = 6
_LITTLE = sys.byteorder == 'little'


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


def _fallback_stream(bitgens, seeds, s):
    # A second, independent stream of sequence s (created on first use).
    key = ('fallback', s)
    if key not in bitgens:
        bitgens[key] = numpy.random.PCG64(seeds[s] % (1 << 64)).jumped()
    return bitgens[key]


def log_n_shuffles(counts, roots):
    """Natural log of the number of distinct shuffles of each window.

    By the BEST theorem, with ``t`` the multiplicity-weighted number of
    arborescences rooted at the final character ``r`` (matrix-tree theorem),
    ``d_v`` the exits of character ``v`` and ``m_uv`` the dinucleotide counts,
    there are ``t * d_r! * prod_{v != r, d_v > 0} (d_v - 1)! / prod m_uv!``
    distinct sequences. ``counts`` is ``(N, K, K)``, ``roots`` ``(N,)``.
    """
    N, K, _ = counts.shape
    out_degree = counts.sum(axis=2)
    lap = -counts.astype(numpy.float64)
    diag = numpy.arange(K)
    lap[:, diag, diag] = 0.0  # self-loops are never a last exit
    lap[:, diag, diag] = -lap.sum(axis=2)
    absent = out_degree == 0
    lap[:, diag, diag] += absent  # an absent character contributes a factor 1
    rows = numpy.arange(N)
    lap[rows, roots, :] = 0.0
    lap[rows, roots, roots] = 1.0  # det = the minor without the root's row and column
    sign, logdet = numpy.linalg.slogdet(lap)
    top = int(max(out_degree.max(initial=0), counts.max(initial=0))) + 1
    lfact = numpy.concatenate([[0.0], numpy.cumsum(numpy.log(numpy.arange(1, top + 1)))])
    log_count = logdet + lfact[out_degree[rows, roots]]
    deg = numpy.where(absent, 1, out_degree)
    deg[rows, roots] = 1
    log_count += lfact[deg - 1].sum(axis=1) - lfact[counts].sum(axis=(1, 2))
    return numpy.where(sign > 0, log_count, -numpy.inf)


def single_shuffle(counts, roots):
    """Boolean ``(N,)``: windows with exactly one possible shuffle (themselves)."""
    return log_n_shuffles(counts, roots) < 0.5 * math.log(2.0)


@functools.lru_cache(maxsize=None)
def _numba_walk():
    """The walk compiled with numba (None when numba is missing or fails): the
    same shuffles as the numpy loop, several times faster.

    ``walk(rows, off, first, K, mask, check_ties, out, ties)`` reads each sorted
    row (``& mask`` gives the destination); with ``check_ties`` a row whose
    adjacent keys tie is flagged in ``ties`` and not walked.

    The machine code is cached on disk (``cache=True``): next to this file, or
    where ``NUMBA_CACHE_DIR`` points, or in the user's cache directory when the
    package directory is read-only. When no location is writable the walk is
    compiled once per process instead.
    """
    try:
        import numba
    except Exception:  # not installed, or a broken llvmlite
        return None

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

    try:
        compiled = numba.njit(cache=True, nogil=True)(walk)
    except Exception:  # no writable cache location: compile in memory
        compiled = numba.njit(nogil=True)(walk)
    try:  # compile (or load) the common signature now, so a failure falls back cleanly
        compiled(numpy.zeros((1, 2), numpy.uint32), numpy.zeros((1, 2), numpy.int64),
                 numpy.zeros(1, numpy.uint8), 2, numpy.uint32(3), True,
                 numpy.zeros((1, 3), numpy.uint8), numpy.zeros(1, numpy.bool_))
    except Exception as e:
        warnings.warn(f"numba could not compile the dinucleotide shuffle walk ({e}); using the "
                      "numpy walk (the same shuffles, slower)", RuntimeWarning, stacklevel=2)
        return None
    return compiled


def kernel():
    """The compiled walk, or None for the numpy loop (numba missing or failing,
    or ``KIPOI_TANGER_NUMBA=0``)."""
    if os.environ.get('KIPOI_TANGER_NUMBA', '1') == '0':
        return None
    return _numba_walk()


class Sampler:
    """Uniform dinucleotide shuffles of the windows ``codes`` ``(N, R)`` (uint8
    character codes; ``K`` characters, codes below ``2 ** nbits``).

    Every sequence draws from its own PCG64 stream seeded with ``seeds[i]``:
    first its trees, then its keys, so a sequence's shuffles do not depend on
    the rest of the batch.
    """

    def __init__(self, codes, n, seeds, K, nbits):
        self.codes, self.n, self.seeds, self.K, self.nbits = codes, n, seeds, K, nbits
        self.bitgens = {s: numpy.random.PCG64(seed % (1 << 64)) for s, seed in enumerate(seeds)}
        self.stats = _pair_stats(codes, K)
        self.roots = codes[:, -1].astype(numpy.int64)
        self.parents = _draw_trees(self.stats[0], self.roots, n, self.bitgens, K)

    def single(self):
        """Boolean ``(N,)``: windows whose only shuffle is themselves."""
        return single_shuffle(self.stats[0], self.roots)

    def groups(self, scratch):
        """Yield ``(s0, s1, chars)`` per group of whole sequences: ``chars`` is
        ``(W, R)`` uint8, the characters of the group's ``W = (s1 - s0) * n``
        walks, walk-major. ``scratch(s0, s1, nbytes)`` returns a writable uint8
        buffer of at least ``nbytes`` for the group (reused after each yield)."""
        codes, n = self.codes, self.n
        N, R = codes.shape
        group = max(1, _GROUP_WALKS // n)
        cw = numpy.empty((min(group, N) * n, R), dtype=numpy.uint8)
        walker = kernel()
        for s0 in range(0, N, group):
            s1 = min(N, s0 + group)
            w0, w1 = s0 * n, s1 * n
            W = w1 - w0
            region = scratch(s0, s1, W * (2 * R - 1))
            exits = region[:W * (R - 1)].reshape(W, R - 1)
            walk = region[W * (R - 1):W * (2 * R - 1)].reshape(R, W)
            sub = {s - s0: self.bitgens[s] for s in range(s0, s1)}
            stats = (self.stats[0][s0:s1], self.stats[1][s0:s1])
            _dinucleotide_walks(codes[s0:s1], n, sub, self.seeds[s0:s1], self.parents[w0:w1],
                                stats, self.K, self.nbits, exits, walk, cw, walker)
            yield s0, s1, cw[:W]
