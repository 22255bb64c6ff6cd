"""numba kernels of the decoder's bit-level loops (spec: "Bit streams", "Tokens").

The same procedures as ``bitio.BitReader.se_run`` and ``hybrid.detokenize`` with
``BitReader.many``, fused into single passes so that decoding a file costs a few
microseconds per stream instead of a few hundred numpy calls. Torch-free. Errors are
returned as negative positions and turned into PayloadError by the caller.
"""

import numpy as np
from numba import njit

OVERRUN = -1  # the stream ended inside a code
TOO_LONG = -2  # an exp-Golomb prefix longer than MAX_UE_PREFIX zero bits
BAD_LEVEL = -3  # a histogram level outside 0..max_level
ALL_ZERO = -4  # a histogram whose levels are all 0

_OPTS = dict(cache=True, nogil=True, boundscheck=False)


@njit(**_OPTS)
def _read(data, pos, nbits):
    """nbits (0..32) bits MSB first starting at bit pos of data (uint8 [B]); no bounds check.
    Loads the (at most 5) bytes that hold them, then shifts and masks."""
    if nbits == 0:
        return np.uint64(0)
    first = pos >> 3
    last = (pos + nbits - 1) >> 3
    value = np.uint64(0)
    for b in range(first, last + 1):
        value = (value << np.uint64(8)) | np.uint64(data[b])
    tail = (last + 1) * 8 - (pos + nbits)
    return (value >> np.uint64(tail)) & ((np.uint64(1) << np.uint64(nbits)) - np.uint64(1))


@njit(**_OPTS)
def se_run(data, size, pos, count, max_prefix, out):
    """Read ``count`` signed exp-Golomb values into out [count] (int64) from bit ``pos`` of
    a stream of ``size`` bits; returns the new position, OVERRUN or TOO_LONG."""
    for i in range(count):
        zeros = 0
        while True:
            if pos >= size:
                return OVERRUN
            if (data[pos >> 3] >> (7 - (pos & 7))) & 1:
                break
            zeros += 1
            pos += 1
            if zeros > max_prefix:
                return TOO_LONG
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
