"""The two-state GC HMM of the gc_hmm_gru model: parameters and exact posterior decoding.

States: 0 = ``H`` (high GC), 1 = ``L`` (low GC) -- the order of seed 002.
Tokens: 0..3 = A, C, G, T (seed 002's ``encode_seq``).

``posterior`` runs the forward-backward algorithm in log space (numpy,
vectorised over sequences). Its argmax is the per-base Bayes-optimal decoder:
no model can have a higher expected per-base accuracy on data drawn from this
HMM, which is why train.py reports the GRU next to it.
"""
from typing import NamedTuple

import numpy as np

STATES = "HL"
NUCLEOTIDES = "ACGT"


class HMMParams(NamedTuple):
    """Parameters of a discrete HMM (probabilities, not logs).

    start : (S,) initial state distribution.
    trans : (S, S) ``trans[i, j] = P(state_t+1 = j | state_t = i)``.
    emit : (S, V) ``emit[i, v] = P(token v | state i)``.
    """
    start: np.ndarray
    trans: np.ndarray
    emit: np.ndarray


# Stay 0.9 gives state runs of mean length 10 bp; the emission contrast
# (0.8 vs 0.2 GC) makes one base weak evidence (calling each base from itself
# alone is 80% accurate), so a decoder must pool context on both sides to
# reach the optimum (~88%, see README) -- learnable but not trivial.
PARAMS = HMMParams(
    start=np.array([0.5, 0.5]),  # the stationary distribution of a symmetric chain
    trans=np.array([[0.9, 0.1],
                    [0.1, 0.9]]),
    emit=np.array([[0.1, 0.4, 0.4, 0.1],    # H: A C G T
                   [0.4, 0.1, 0.1, 0.4]]),  # L
)


def _check_params(params):
    start, trans, emit = (np.asarray(p, dtype=np.float64) for p in params)
    S = start.shape[0]
    if start.ndim != 1 or trans.shape != (S, S) or emit.ndim != 2 or emit.shape[0] != S:
        raise ValueError("params: expected start (S,), trans (S, S), emit (S, V), got shapes "
                         "{}, {}, {}".format(start.shape, trans.shape, emit.shape))
    for name, p in (("start", start), ("trans", trans), ("emit", emit)):
        if (p < 0).any() or not np.allclose(p.sum(-1), 1.0):
            raise ValueError("params.{}: rows must be probability distributions".format(name))
    return HMMParams(start, trans, emit)


def _logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def posterior(tokens, params=PARAMS):
    """Exact per-base state posteriors by forward-backward (log space).

    Parameters
    ----------
    tokens : array-like of int, shape=(N, L) or (L,)
        Observed tokens in ``range(V)`` (0..3 = A, C, G, T).
    params : HMMParams, optional
        HMM parameters. Default :data:`PARAMS`.

    Returns
    -------
    log_post : numpy.ndarray, shape=(N, L, S) (or (L, S) for 1-d input)
        ``log P(state_l = s | tokens)``; rows are normalised.
    log_lik : numpy.ndarray, shape=(N,) (or scalar)
        ``log P(tokens)``.
    """
    start, trans, emit = _check_params(params)
    x = np.asarray(tokens)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2 or x.shape[1] == 0 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError("tokens: expected a non-empty integer array (N, L) or (L,), got dtype "
                         "{} shape {}".format(x.dtype, x.shape))
    if x.size and (x.min() < 0 or x.max() >= emit.shape[1]):
        raise ValueError("tokens: values must lie in [0, {}), got [{}, {}]".format(
            emit.shape[1], x.min(), x.max()))
    with np.errstate(divide="ignore"):
        ls, lt, le = np.log(start), np.log(trans), np.log(emit)
    N, L = x.shape
    obs = le[:, x].transpose(1, 2, 0)  # (N, L, S): log P(x_l | s)
    fwd = np.empty((N, L, len(start)))
    bwd = np.empty_like(fwd)
    fwd[:, 0] = ls + obs[:, 0]
    for t in range(1, L):
        fwd[:, t] = _logsumexp(fwd[:, t - 1, :, None] + lt, axis=1) + obs[:, t]
    bwd[:, -1] = 0.0
    for t in range(L - 2, -1, -1):
        bwd[:, t] = _logsumexp(lt + (obs[:, t + 1] + bwd[:, t + 1])[:, None, :], axis=2)
    log_lik = _logsumexp(fwd[:, -1], axis=1)
    log_post = fwd + bwd - log_lik[:, None, None]
    if single:
        return log_post[0], log_lik[0]
    return log_post, log_lik


def sample(n, length, params=PARAMS, random_state=0):
    """Draw ``n`` sequences of ``length`` tokens and their hidden states.

    Uses ``numpy.random.RandomState`` (whose streams numpy keeps stable across
    versions) so a seed always gives the same data.

    Returns
    -------
    tokens, states : numpy.ndarray of int64, shape=(n, length)
    """
    start, trans, emit = _check_params(params)
    rs = random_state if isinstance(random_state, np.random.RandomState) \
        else np.random.RandomState(random_state)
    if n < 1 or length < 1:
        raise ValueError("n and length must be >= 1, got {} and {}".format(n, length))
    u_state = rs.random_sample((n, length))
    u_emit = rs.random_sample((n, length))
    states = np.empty((n, length), dtype=np.int64)
    states[:, 0] = np.searchsorted(np.cumsum(start), u_state[:, 0], side="right")
    ctrans = np.cumsum(trans, axis=1)
    for t in range(1, length):
        c = ctrans[states[:, t - 1]]
        states[:, t] = (u_state[:, t, None] >= c).sum(1)
    cemit = np.cumsum(emit, axis=1)[states]  # (n, length, V)
    tokens = (u_emit[..., None] >= cemit).sum(-1).astype(np.int64)
    # Guard against cumsum rounding just below 1.
    np.minimum(states, len(start) - 1, out=states)
    np.minimum(tokens, emit.shape[1] - 1, out=tokens)
    return tokens, states


def encode(text, alphabet):
    """String -> int64 codes in ``alphabet`` order (error names the first bad character)."""
    table = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(alphabet):
        table[ord(c)] = table[ord(c.lower())] = i
    codes = table[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    if (codes < 0).any():
        bad = text[int(np.argmax(codes < 0))]
        raise ValueError("unexpected character {!r}: expected one of {}".format(bad, alphabet))
    return codes


def decode(codes, alphabet):
    """int codes -> string."""
    return "".join(alphabet[int(c)] for c in codes)
