"""numba kernel of the encoder's stream-configuration search: the exact bit cost of coding
a stream under each candidate HybridUint split (k, m), all contexts in one pass.

The encoder tries a few hundred (predictor, context rule, k, m) combinations per stream
and file, and the rate control codes the set 18 times in an encode; costing each
combination with numpy (tokenize, bincount, levels, fixed-point model) took most of a
1000-iteration encode (BENCHMARKS.md §8: 27.2 of 44.4 s under cProfile). This kernel
computes the same number as ``gaussian_coder._context_cost`` summed over contexts:

    tokens' information content under the fixed-point model of their levels
    + raw bits + the histogram's side bits (ue(size - 1), then se() of the level steps)

with the same integer steps and binary64 arithmetic; only the order of the final float
additions differs (about 1e-15 relative on Kodak files; tests/test_entropy.py allows
1e-12). Encoder only: the decoder never imports it.
"""

import math

import numpy as np

from gipp_codec.jit import njit

_OPTS = dict(cache=True, nogil=True, boundscheck=False)

PRECISION = 24  # models.PRECISION (tests/test_entropy.py checks they agree)


@njit(**_OPTS)
def _ue_length(v):
    """Bit length of ue(v), v >= 0: 2 * (floor(log2(v + 1)) + 1) - 1."""
    v1 = v + 1
    nb = 0
    while v1:
        nb += 1
        v1 >>= 1
    return 2 * nb - 1


@njit(**_OPTS)
def _se_length(v):
    return _ue_length(2 * v - 1 if v > 0 else -2 * v)


@njit(**_OPTS)
def _token(u, k, m):
    """HybridUint (token, raw bit count) of u (hybrid.tokenize, one value)."""
    if u < (np.uint64(1) << np.uint64(k)):
        return np.int64(u), 0
    n = 0  # floor(log2 u)
    v = u >> np.uint64(1)
    while v:
        n += 1
        v >>= np.uint64(1)
    top = np.int64((u >> np.uint64(n - m)) & np.uint64((1 << m) - 1))
    return (1 << k) + ((n - k) << m) + top, n - m


@njit(**_OPTS)
def _level(h, log_counts):
    """models.choose_levels of one histogram entry h >= 1: the level e (1..MAX_LEVEL) whose
    COUNT is nearest in log to 2h, the first on a tie."""
    target = math.log(2.0 * h)
    best = 0
    best_d = abs(target - log_counts[0])
    for e in range(1, log_counts.shape[0]):
        d = abs(target - log_counts[e])
        if d < best_d:
            best, best_d = e, d
    return best + 1


@njit(**_OPTS)
def _count_of_level(e):
    """models.level_count of one level: 0 for e = 0, else (2 + (h & 1)) << (h >> 1), h = e - 1."""
    if e == 0:
        return 0
    h = e - 1
    return (2 + (h & 1)) << (h >> 1)


@njit(**_OPTS)
def _context_bits(hist, size, log_counts, levels):
    """Token information content plus histogram side bits of one context's histogram
    hist [size] (size >= 1, at least one token); levels [>= size] is scratch."""
    side = _ue_length(size - 1)
    if size < 2:
        return 0.0, side
    total = 0.0
    prev = 0
    for t in range(size):
        e = _level(hist[t], log_counts) if hist[t] > 0 else 0
        levels[t] = e
        side += _se_length(e - prev)
        prev = e
        total += _count_of_level(e)  # exact: integer counts below 2**53
    return _token_bits(hist, levels, size, total), side


@njit(**_OPTS)
def _token_bits(hist, levels, size, total):
    """Information content of the tokens counted in hist [size] under the fixed-point model
    of the counts of levels [size], whose sum is ``total`` (> 0)."""
    scale = float((1 << PRECISION) - size) / total
    bits = 0.0
    cum = 0.0
    left = 0  # trunc(C_t * scale) + t
    for t in range(size):
        cum_next = cum + _count_of_level(levels[t])
        right = (1 << PRECISION) if t == size - 1 else np.int64(math.trunc(cum_next * scale)) + t + 1
        if hist[t] > 0:
            bits += hist[t] * (PRECISION - math.log2(right - left))
        left = right
        cum = cum_next
    return bits


@njit(**_OPTS)
def _levels_price(hist, levels, size):
    """Bits of one context sent with levels [size]: its tokens' information content (hist
    [size]) under the fixed-point model of the levels' counts, plus the se() bits of the
    level steps (the ue(size - 1) that every choice pays left out); inf when every level is 0."""
    side = 0
    prev = 0
    total = 0.0
    for t in range(size):
        side += _se_length(levels[t] - prev)
        prev = levels[t]
        total += _count_of_level(levels[t])
    if total == 0.0:
        return np.inf
    return _token_bits(hist, levels, size, total) + side


@njit(**_OPTS)
def priced_levels(hist, log_counts, max_level, sweeps, levels):
    """The levels [size] a context's histogram hist [size] (size >= 1) is sent with, into
    levels: first each count's nearest level (``_level``, 0 for a count of 0: what
    ``models.choose_levels`` gives), then, in up to ``sweeps`` sweeps over the tokens, each
    level moved by -1 or +1 (within 0..max_level) whenever that lowers ``_levels_price``,
    the bits the histogram and the tokens cost together. A level step costs 1 bit when it
    is 0 and more otherwise, so a run of counts that differ by a level or two is often
    cheaper sent flat. Returns the price."""
    size = hist.shape[0]
    for t in range(size):
        levels[t] = _level(hist[t], log_counts) if hist[t] > 0 else 0
    if size < 2:
        return 0.0
    best = _levels_price(hist, levels, size)
    for _ in range(sweeps):
        moved = False
        for i in range(size):
            e = levels[i]
            for step in (-1, 1):
                f = e + step
                if f < 0 or f > max_level:
                    continue
                levels[i] = f
                price = _levels_price(hist, levels, size)
                if price < best - 1e-9:
                    best = price
                    moved = True
                    break
                levels[i] = e
        if not moved:
            break
    return best


@njit(**_OPTS)
def split_costs(u, ctx, contexts, ks, ms, log_counts, out):
    """out[g] = bits to code u [M] (uint64) split by ctx [M] (0..contexts - 1) into
    ``contexts`` histograms, with HybridUint split (ks[g], ms[g]): for each context, the
    tokens' information content + raw bits + histogram side bits; an empty context costs
    ue(0) = 1 bit. log_counts [MAX_LEVEL] = log(COUNT(e)) for e = 1..MAX_LEVEL."""
    n = u.shape[0]
    tokens = np.empty(n, np.int64)
    max_token = np.empty(contexts, np.int64)
    members = np.empty(contexts, np.int64)
    raw = np.empty(contexts, np.int64)
    start = np.empty(contexts + 1, np.int64)
    levels = np.empty(0, np.int64)
    for g in range(ks.shape[0]):
        k, m = ks[g], ms[g]
        max_token[:] = -1
        members[:] = 0
        raw[:] = 0
        for i in range(n):
            t, nb = _token(u[i], k, m)
            tokens[i] = t
            c = ctx[i]
            members[c] += 1
            raw[c] += nb
            if t > max_token[c]:
                max_token[c] = t
        start[0] = 0
        for c in range(contexts):
            start[c + 1] = start[c] + max_token[c] + 1
        hist = np.zeros(start[contexts], np.int64)
        for i in range(n):
            hist[start[ctx[i]] + tokens[i]] += 1
        if levels.shape[0] < start[contexts]:
            levels = np.empty(start[contexts], np.int64)
        cost = 0.0
        for c in range(contexts):
            if members[c] == 0:
                cost += 1.0
                continue
            size = max_token[c] + 1
            bits, side = _context_bits(hist[start[c]:start[c + 1]], size, log_counts, levels)
            cost += bits + float(raw[c]) + side
        out[g] = cost
