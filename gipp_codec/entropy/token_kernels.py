"""numba kernels of the decoder's bit-level loops (spec: "Bit streams", "Tokens").

Signed exp-Golomb runs (histograms), HybridUint tokens plus their raw bits, and the
per-stream finishing steps (Morton gaps to positions; context order to file order and
undoing the predictors), each fused into a single pass so that decoding a file costs a
few microseconds per stream instead of a few hundred numpy calls. Torch-free. Errors are
returned as negative positions and turned into PayloadError by the caller.
"""

import numpy as np

from gipp_codec.format.constants import CH_A, CH_C, CH_X, CH_Y, CTX_AREA, CTX_CELLS
from gipp_codec.jit import njit

OVERRUN = -1  # the stream ended inside a code
TOO_LONG = -2  # an exp-Golomb prefix longer than MAX_UE_PREFIX zero bits
BAD_LEVEL = -3  # a histogram level outside 0..max_level
ALL_ZERO = -4  # a histogram whose levels are all 0

_OPTS = dict(cache=True, nogil=True, boundscheck=False)


@njit(**_OPTS)
def _read(data, pos, nbits):
    """nbits (0..33: exp-Golomb codes reach 33) bits MSB first starting at bit pos of data
    (uint8 [B], followed by at least 8 bytes of padding: BitReader.array); no bounds check.
    Loads the 8 bytes from byte pos >> 3 as one big-endian word (a constant-length loop,
    unrolled) and shifts: pos & 7 + nbits <= 40 of its 64 bits are used."""
    first = pos >> 3
    word = np.uint64(0)
    for b in range(8):
        word = (word << np.uint64(8)) | np.uint64(data[first + b])
    word = word << np.uint64(pos & 7)
    # two shifts, each below 64: one shift by 64 - nbits would be undefined for nbits = 0
    return (word >> np.uint64(1)) >> np.uint64(63 - nbits)


@njit(**_OPTS)
def _zeros_before_one(data, size, pos, max_prefix):
    """(z, position of the one bit) for the z zero bits from bit ``pos`` of a stream of
    ``size`` bits up to the first one bit; z is OVERRUN if the stream ends first and
    TOO_LONG once more than ``max_prefix`` zeros are read."""
    zeros = 0
    while True:
        if pos >= size:
            return OVERRUN, pos
        if (data[pos >> 3] >> (7 - (pos & 7))) & 1:
            return zeros, pos
        zeros += 1
        pos += 1
        if zeros > max_prefix:
            return TOO_LONG, pos


@njit(**_OPTS)
def se_run(data, size, pos, count, max_prefix, out):
    """Read ``count`` signed exp-Golomb values into out [count] (int64) from bit ``pos`` of
    a stream of ``size`` bits; returns the new position, OVERRUN or TOO_LONG."""
    for i in range(count):
        zeros, pos = _zeros_before_one(data, size, pos, max_prefix)
        if zeros < 0:
            return zeros
        if pos + zeros + 1 > size:
            return OVERRUN
        v = np.int64(_read(data, pos, zeros + 1)) - 1
        pos += zeros + 1
        out[i] = (v + 1) >> 1 if v & 1 else -(v >> 1)
    return pos


@njit(**_OPTS)
def tokens_to_values(tokens, k, m, data, size, pos, out):
    """HybridUint tokens [M] plus their raw bits read from bit ``pos`` (stream of ``size``
    bits) -> values out [M] (uint64); returns the new position or OVERRUN."""
    for i in range(tokens.shape[0]):
        t = np.int64(tokens[i])
        if t < (1 << k):
            out[i] = np.uint64(t)
            continue
        rel = t - (1 << k)
        n = k + (rel >> m)
        top = rel & ((1 << m) - 1)
        nraw = n - m
        if pos + nraw > size:
            return OVERRUN
        out[i] = (np.uint64((1 << m) + top) << np.uint64(nraw)) | _read(data, pos, nraw)
        pos += nraw
    return pos


@njit(**_OPTS)
def histogram_counts(data, size, pos, ntok, max_prefix, max_level, counts):
    """Read a histogram's ``ntok`` level deltas (se codes) from bit ``pos`` and write each
    token's integer count COUNT(e) into counts [ntok] (int64): 0 for e = 0, else
    (2 + (h & 1)) << (h >> 1) with h = e - 1 (spec: "Histograms"). Returns the new position,
    or OVERRUN, TOO_LONG, BAD_LEVEL (counts[0] then holds the level) or ALL_ZERO."""
    pos = se_run(data, size, pos, ntok, max_prefix, counts)  # deltas, in place
    if pos < 0:
        return pos
    level = 0
    nonzero = False
    for i in range(ntok):
        level += counts[i]
        if level < 0 or level > max_level:
            counts[0] = level
            return BAD_LEVEL
        if level == 0:
            counts[i] = 0
        else:
            nonzero = True
            h = level - 1
            counts[i] = (2 + (h & 1)) << (h >> 1)
    if not nonzero:
        return ALL_ZERO
    return pos


OUT_OF_RANGE = -5  # a decoded attribute outside 0..max_q
BAD_MORTON = -6  # a Morton code above the largest the position bits allow


@njit(**_OPTS)
def finish_positions(tokens, k, m, data, size, pos, u_max, qx, qy):
    """Position stream: tokens [N] plus raw bits -> Morton gaps -> running sum -> qx, qy [N]
    (int64). Returns the new raw position, OVERRUN or BAD_MORTON."""
    gaps = np.empty(tokens.shape[0], np.uint64)
    pos = tokens_to_values(tokens, k, m, data, size, pos, gaps)
    if pos < 0:
        return pos
    code = np.uint64(0)
    limit = np.uint64(u_max)
    for i in range(gaps.shape[0]):
        if gaps[i] > limit - code:
            return BAD_MORTON
        code += gaps[i]
        qx[i] = _even_bits(code)
        qy[i] = _even_bits(code >> np.uint64(1))
    return pos


@njit(**_OPTS)
def _even_bits(v):
    """Bits 0, 2, 4, ... 62 of v (uint64) packed into bits 0..31 (int64): the x half of a
    Morton code. Each step halves the spread, moving pairs, nibbles, bytes, then words."""
    v = v & np.uint64(0x5555555555555555)
    v = (v | (v >> np.uint64(1))) & np.uint64(0x3333333333333333)
    v = (v | (v >> np.uint64(2))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    v = (v | (v >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    v = (v | (v >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    v = (v | (v >> np.uint64(16))) & np.uint64(0x00000000FFFFFFFF)
    return np.int64(v)


@njit(**_OPTS)
def finish_column(tokens, k, m, data, size, pos, ctx, sizes, pred, const, src, s_src, o_src, o_dst, s_dst,
                  max_q, out, bad):
    """Attribute stream: tokens [N] (context by context, each in file order) plus their raw
    bits -> values -> file order (ctx [N], sizes [C]; ctx unused when C = 1) -> undo the
    predictor -> out [N] (int64). pred 0 none, 1 constant ``const``, 2 previous Gaussian,
    3 channel mapping of src [N] (binary64 arithmetic in the spec's order, round half to
    even, clamp). Returns the new raw position, OVERRUN or OUT_OF_RANGE (bad [2] (int64)
    then holds the Gaussian's index and its decoded value)."""
    n = tokens.shape[0]
    grouped = np.empty(n, np.uint64)
    pos = tokens_to_values(tokens, k, m, data, size, pos, grouped)
    if pos < 0:
        return pos
    cursor = np.empty(sizes.shape[0], np.int64)
    acc = 0
    for c in range(sizes.shape[0]):
        cursor[c] = acc
        acc += sizes[c]
    prev = np.int64(0)
    one = sizes.shape[0] == 1  # a single context: ctx may be empty
    for i in range(n):
        c = 0 if one else ctx[i]
        u = np.int64(grouped[cursor[c]])
        cursor[c] += 1
        if pred == 0:
            v = u
        else:
            r = -((u + 1) >> 1) if u & 1 else u >> 1  # unzigzag
            if pred == 1:
                v = const + r
            elif pred == 2:
                v = prev + r
            else:
                p = np.float64(src[i]) * s_src
                p = p + o_src
                p = p - o_dst
                p = p / s_dst
                p = np.rint(p)
                p = min(max(p, 0.0), np.float64(max_q))
                v = np.int64(p) + r
        if v < 0 or v > max_q:
            bad[0] = i
            bad[1] = v
            return OUT_OF_RANGE
        out[i] = v
        prev = v
    return pos


@njit(**_OPTS)
def contexts_and_sizes(src, thresholds, ctx, sizes):
    """Context of each Gaussian, the number of thresholds t [T] (ascending) with src [N] >= t,
    into ctx [N], and the count of each context into sizes [T + 1] (both int64)."""
    sizes[:] = 0
    nthr = thresholds.shape[0]
    for i in range(src.shape[0]):
        v = src[i]
        c = 0
        for t in range(nthr):  # no early exit: a sum, not a branch the data decides
            c += v >= thresholds[t]
        ctx[i] = c
        sizes[c] += 1


@njit(**_OPTS)
def cell_counts_dense(cx, cy, width, out):
    """Coding 2's CTX_CELLS feature with a dense table: cx, cy [N] (int64) are the cells
    (position >> g) shifted by +1 so that a one-cell margin surrounds them; width: the
    table's row length (max cx + 2); out [N] (int64) gets, per Gaussian, the Gaussians in
    the 3x3 cells around its own. The table has (max cy + 2) * width entries."""
    n = cx.shape[0]
    height = 0
    for i in range(n):
        height = max(height, cy[i] + 2)
    grid = np.zeros(height * width, np.int64)
    for i in range(n):
        grid[cy[i] * width + cx[i]] += 1
    for i in range(n):
        base = cy[i] * width + cx[i]
        total = 0
        for dy in (-width, 0, width):
            row = base + dy
            total += grid[row - 1] + grid[row] + grid[row + 1]
        out[i] = total


NEEDS_SPARSE_CELLS = 1  # stream_contexts: the cells table would exceed its bound


@njit(**_OPTS)
def stream_contexts(source, param, q, thresholds, dense_max, ctx, sizes):
    """One stream's contexts from the channels decoded so far, q [8, N] (int64, channel-
    major), in one call: each Gaussian's feature (channel ``source``; CTX_AREA: q_a + q_c;
    CTX_CELLS with cell shift g = ``param``: ``cell_counts_dense`` on the cells, as
    ``streams.cell_counts`` computes it), then ``contexts_and_sizes`` into ctx [N] and
    sizes [T + 1]. Returns 0, or NEEDS_SPARSE_CELLS, having written nothing, when the cells
    table would have more than max(dense_max, 4 N) entries (the caller then uses
    streams.cell_counts' sorting path)."""
    n = q.shape[1]
    if source == CTX_CELLS:
        cx = (q[CH_X] >> param) + 1  # [N], one empty cell of margin below
        cy = (q[CH_Y] >> param) + 1  # [N]
        width = (cx.max() + 2) if n else 2
        if width * ((cy.max() + 2) if n else 2) > max(dense_max, 4 * n):
            return NEEDS_SPARSE_CELLS
        feature = np.zeros(n, np.int64)
        cell_counts_dense(cx, cy, width, feature)
    elif source == CTX_AREA:
        feature = q[CH_A] + q[CH_C]
    else:
        feature = q[source]
    contexts_and_sizes(feature, thresholds, ctx, sizes)
    return 0


@njit(**_OPTS)
def med_prediction(s, i, j, half):
    """The BASE chunk's MED prediction of sample (i, j) of one channel s [gh, gw] (int64) from
    the samples before it in coding order: ``half`` at (0, 0), the left one on the first
    row, the one above in the first column, else the median of left, above and
    left + above - above-left (spec: "BASE chunk"). The encoder and the decoder share it."""
    if i == 0 and j == 0:
        return half
    if i == 0:
        return s[i, j - 1]
    if j == 0:
        return s[i - 1, j]
    a, b, c = s[i, j - 1], s[i - 1, j], s[i - 1, j - 1]
    if c >= max(a, b):
        return min(a, b)
    if c <= min(a, b):
        return max(a, b)
    return a + b - c


@njit(**_OPTS)
def base_samples(data, size, pos, k, max_prefix, levels, out, info):
    """The BASE chunk's samples (spec: "BASE chunk"): for each channel, row by row, a Rice
    code (z zero bits before a one bit, z <= ``max_prefix``, then k bits: u = (z << k) | r)
    of the zigzag-folded residual from the MED prediction of the samples already decoded;
    into out [3, gh, gw] (int64) from bit ``pos`` of a stream of ``size`` bits. Returns the
    new position or an error: OVERRUN (info = bit position of the read, bits needed),
    TOO_LONG (info[0] = the code's bit position) or OUT_OF_RANGE (info = flat index into
    out, the value), a sample outside 0..``levels``."""
    gh, gw = out.shape[1], out.shape[2]
    half = (levels + 1) >> 1
    for ch in range(3):
        s = out[ch]
        for i in range(gh):
            for j in range(gw):
                start = pos
                zeros, pos = _zeros_before_one(data, size, pos, max_prefix)
                if zeros < 0:
                    info[0] = start
                    info[1] = size - start + 1
                    return zeros
                pos += 1
                if pos + k > size:
                    info[0] = pos
                    info[1] = k
                    return OVERRUN
                u = (zeros << k) | np.int64(_read(data, pos, k))
                pos += k
                value = med_prediction(s, i, j, half) + ((u + 1) >> 1 if u & 1 else -(u >> 1))
                if value < 0 or value > levels:
                    info[0] = (ch * gh + i) * gw + j
                    info[1] = value
                    return OUT_OF_RANGE
                s[i, j] = value
    return pos


# The ANS decoder (spec "ANS stream"): a 64-bit head, 32-bit words taken from the end of the
# word array, 24-bit probabilities. The head and the count of words not yet taken live in
# ``state`` (uint64 [2]) between calls, one call per (stream, context).
ANS_PRECISION = 24
_ANS_TABLE_SHIFT = 14  # the symbol search starts from a table of 2^(24 - 14) = 1024 buckets


@njit(**_OPTS)
def ans_tokens(words, state, counts, size, out):
    """Decode ``size`` tokens into ``out`` (int32 [>= size]) with the fixed-point model of
    ``counts`` (int64 [n], n >= 2, sum > 0; ``models.fixed_point_freqs``: scale =
    (2^24 - n) / sum in binary64, left[i] = trunc(C_i * scale) + i) from the ANS words
    (uint32 [W]) and ``state`` (uint64 [2]: the head, the words not yet taken), which it
    updates. Returns the number of tokens decoded (``size``)."""
    n = counts.shape[0]
    total = 0.0
    for i in range(n):
        total += np.float64(counts[i])
    scale = np.float64((1 << ANS_PRECISION) - n) / total
    left = np.empty(n + 1, np.uint64)  # [n + 1], strictly increasing: every freq >= 1
    cum = 0
    for i in range(n):
        left[i] = np.uint64(np.int64(np.float64(cum) * scale) + i)
        cum += counts[i]
    left[n] = np.uint64(1 << ANS_PRECISION)
    buckets = 1 << (ANS_PRECISION - _ANS_TABLE_SHIFT)
    start = np.empty(buckets, np.int64)  # [buckets]: the token whose interval holds the bucket's first quantile
    s = 0
    for b in range(buckets):
        q = np.uint64(b << _ANS_TABLE_SHIFT)
        while left[s + 1] <= q:
            s += 1
        start[b] = s
    head = state[0]
    rest = np.int64(state[1])
    mask = np.uint64((1 << ANS_PRECISION) - 1)
    for t in range(size):
        quantile = head & mask
        s = start[np.int64(quantile >> np.uint64(_ANS_TABLE_SHIFT))]
        while left[s + 1] <= quantile:
            s += 1
        head = (left[s + 1] - left[s]) * (head >> np.uint64(ANS_PRECISION)) + quantile - left[s]
        if head < np.uint64(1 << 32) and rest > 0:
            rest -= 1
            head = (head << np.uint64(32)) | np.uint64(words[rest])
        out[t] = s
    state[0] = head
    state[1] = np.uint64(rest)
    return size
