"""The decoder's side-stream reader (spec: "Stream configuration", "Histograms").

The side stream holds, for each stream in STREAM_ORDER, its configuration (predictor,
context thresholds, token parameters k and m) followed by one histogram per context. It
does not depend on anything decoded from the ANS or raw streams, so one numba pass reads
all of it before any token is decoded: ``read_side_stream`` returns every stream's
``StreamConfig`` and histogram counts, or raises the PayloadError that names what is wrong.
Torch-free.
"""

import numpy as np

from gipp_codec.entropy import hybrid
from gipp_codec.entropy.bitio import MAX_UE_PREFIX, BitReader
from gipp_codec.entropy.models import MAX_LEVEL
from gipp_codec.entropy.streams import (
    CTX_AREA, CTX_CELLS, CTX_SOURCE_BITS, MAX_CONTEXTS, PRED_CHANNEL, PRED_CONST, STREAM_ORDER, STREAM_POSITION,
    StreamConfig, stream_name,
)
from gipp_codec.entropy.token_kernels import ALL_ZERO, BAD_LEVEL, OVERRUN, TOO_LONG, histogram_counts
from gipp_codec.errors import PayloadError
from gipp_codec.jit import njit

# Error codes of the kernel; err [4] (int64) holds the details named in the comment.
E_OVERRUN = 1  # bit position, bits needed, bits left
E_UE_LONG = 2  # bit position just past the longest allowed prefix
E_CONST = 3  # stream, constant, largest allowed
E_PRED_SOURCE = 4  # stream, source channel
E_THRESHOLD_COUNT = 5  # stream, count
E_CONTEXT_SOURCE = 6  # stream, source channel
E_THRESHOLD = 7  # stream, threshold, largest allowed
E_TOKEN_PARAMS = 8  # stream, k, m
E_TOKEN_COUNT = 9  # stream, tokens, largest allowed
E_LEVEL = 10  # stream, level
E_ALL_ZERO = 11  # stream, tokens
E_HIST_LONG = 12  # stream, bit position of the histogram's levels
E_HIST_OVERRUN = 13  # stream, bit position of the histogram's levels
E_CELL_SHIFT = 14  # stream, g, largest allowed

# Columns of the per-stream configuration table cfg [streams, 9] (int64).
C_PRED, C_PARAM, C_SOURCE, C_THRESHOLDS, C_K, C_M, C_SIDE_START, C_SIDE_END, C_CTX_PARAM = range(9)

_OPTS = dict(cache=True, nogil=True, boundscheck=False)


@njit(**_OPTS)
def _u(data, size, pos, nbits, err):
    """(value, new position) of nbits (<= 32) bits at pos; new position -1 on overrun."""
    if pos + nbits > size:
        err[0] = E_OVERRUN
        err[1] = pos
        err[2] = nbits
        err[3] = size - pos
        return 0, -1
    value = 0
    for p in range(pos, pos + nbits):
        value = (value << 1) | ((data[p >> 3] >> (7 - (p & 7))) & 1)
    return value, pos + nbits


@njit(**_OPTS)
def _ue(data, size, pos, max_prefix, err):
    """(value, new position) of an unsigned exp-Golomb code at pos; new position -1 on error."""
    limit = min(size, pos + max_prefix + 1)
    one = -1
    for p in range(pos, limit):
        if (data[p >> 3] >> (7 - (p & 7))) & 1:
            one = p
            break
    if one < 0:
        if pos + max_prefix + 1 <= size:
            err[0] = E_UE_LONG
            err[1] = pos + max_prefix + 1
        else:
            err[0] = E_OVERRUN
            err[1] = pos
            err[2] = size - pos + 1
            err[3] = size - pos
        return 0, -1
    value, pos = _u(data, size, one, one - pos + 1, err)
    return value - 1, pos


@njit(**_OPTS)
def _max_token(k, m, u_max):
    """hybrid.max_token: the largest token values 0..u_max produce."""
    if u_max < (1 << k):
        return u_max
    n = 0
    while (u_max >> (n + 1)) > 0:
        n += 1
    return (1 << k) + (n - k) * (1 << m) + ((1 << m) - 1)


@njit(**_OPTS)
def _fail(err, code, a, b, c):
    err[0] = code
    err[1] = a
    err[2] = b
    err[3] = c
    return -1


@njit(**_OPTS)
def read_side_kernel(data, size, channel_bits, channels, max_contexts, max_split, max_mantissa, max_prefix,
                     max_level, source_bits, n, cfg, thr, hist_start, counts, err):
    """Read every stream's configuration and histograms from bit 0 of data (uint8, ``size``
    bits). channels [S]: the streams' channels in STREAM_ORDER (-1 = positions);
    channel_bits [8]; source_bits: width of the context-source field (3 in coding 1, where
    only channels are sources; 4 in coding 2, which adds CTX_CELLS and CTX_AREA); n: the
    Gaussian count. Fills cfg [S, 9] (columns C_*), thr [S, max_contexts - 1], hist_start
    [S, max_contexts + 1] (offsets into counts of each context's histogram) and counts
    (int64, at least size + S * max_contexts long). Returns the end position, or -1 with err
    [4] = (code, details)."""
    pos = 0
    used = 0
    decoded = np.zeros(8, np.bool_)
    decoded[0] = True  # channels 0 and 1 (x, y): the position stream comes first
    decoded[1] = True
    for s in range(channels.shape[0]):
        ch = channels[s]
        cfg[s, C_SIDE_START] = pos
        pred = 0
        nthr = 0
        source = -1
        if ch >= 0:
            max_q = (1 << channel_bits[ch]) - 1
            pred, pos = _u(data, size, pos, 2, err)
            if pos < 0:
                return -1
            param = 0
            if pred == 1:
                param, pos = _ue(data, size, pos, max_prefix, err)
                if pos < 0:
                    return -1
                if param > max_q:
                    return _fail(err, E_CONST, s, param, max_q)
            elif pred == 3:
                param, pos = _u(data, size, pos, 3, err)
                if pos < 0:
                    return -1
                if param < 2 or not decoded[param]:
                    return _fail(err, E_PRED_SOURCE, s, param, 0)
            cfg[s, C_PARAM] = param
            nthr, pos = _ue(data, size, pos, max_prefix, err)
            if pos < 0:
                return -1
            if nthr > max_contexts - 1:
                return _fail(err, E_THRESHOLD_COUNT, s, nthr, 0)
            if nthr:
                source, pos = _u(data, size, pos, source_bits, err)
                if pos < 0:
                    return -1
                if source == CTX_CELLS:  # needs the positions only, which come first
                    g, pos = _u(data, size, pos, 4, err)
                    if pos < 0:
                        return -1
                    if g > channel_bits[0]:
                        return _fail(err, E_CELL_SHIFT, s, g, channel_bits[0])
                    cfg[s, C_CTX_PARAM] = g
                    limit = n + 1
                elif source == CTX_AREA:  # q_a + q_c
                    if not (decoded[2] and decoded[4]):
                        return _fail(err, E_CONTEXT_SOURCE, s, source, 0)
                    limit = 2 * ((1 << channel_bits[2]) - 1) + 1
                elif source > CTX_AREA or not decoded[source]:
                    return _fail(err, E_CONTEXT_SOURCE, s, source, 0)
                else:
                    limit = 1 << channel_bits[source]
                prev = -1
                for t in range(nthr):
                    step, pos = _ue(data, size, pos, max_prefix, err)
                    if pos < 0:
                        return -1
                    prev = prev + 1 + step
                    if prev >= limit:
                        return _fail(err, E_THRESHOLD, s, prev, limit - 1)
                    thr[s, t] = prev
        k, pos = _u(data, size, pos, 4, err)
        if pos < 0:
            return -1
        m, pos = _u(data, size, pos, 4, err)
        if pos < 0:
            return -1
        if k > max_split or m > min(k, max_mantissa):
            return _fail(err, E_TOKEN_PARAMS, s, k, m)
        cfg[s, C_PRED] = pred
        cfg[s, C_SOURCE] = source
        cfg[s, C_THRESHOLDS] = nthr
        cfg[s, C_K] = k
        cfg[s, C_M] = m
        if ch < 0:
            u_max = (1 << (2 * channel_bits[0])) - 1
        else:
            u_max = max_q if pred == 0 else 2 * max_q
        max_tokens = _max_token(k, m, u_max) + 1
        for c in range(nthr + 1):
            hist_start[s, c] = used
            ntok, pos = _ue(data, size, pos, max_prefix, err)
            if pos < 0:
                return -1
            ntok += 1
            if ntok > max_tokens:
                return _fail(err, E_TOKEN_COUNT, s, ntok, max_tokens)
            if ntok == 1:
                counts[used] = 0
            else:
                out = counts[used:used + ntok]
                end = histogram_counts(data, size, pos, ntok, max_prefix, max_level, out)
                if end == BAD_LEVEL:
                    return _fail(err, E_LEVEL, s, out[0], 0)
                if end == ALL_ZERO:
                    return _fail(err, E_ALL_ZERO, s, ntok, 0)
                if end == TOO_LONG:
                    return _fail(err, E_HIST_LONG, s, pos, 0)
                if end == OVERRUN:
                    return _fail(err, E_HIST_OVERRUN, s, pos, 0)
                pos = end
            used += ntok
        hist_start[s, nthr + 1] = used
        cfg[s, C_SIDE_END] = pos
        if ch >= 0:
            decoded[ch] = True
    return pos


def _raise(err: np.ndarray, reader: BitReader) -> None:
    """The PayloadError of the kernel's error record err [4]."""
    code, a, b, c = (int(v) for v in err)
    base = reader.base_offset
    if code == E_OVERRUN:
        raise PayloadError(f"side stream overrun at byte {base + a // 8}: need {b} more bits, {c} left")
    if code == E_UE_LONG:
        raise PayloadError(f"side stream: exp-Golomb code too long at byte {base + a // 8}")
    name = stream_name(STREAM_ORDER[a])
    messages = {
        E_CONST: f"stream {name}: constant predictor {b} exceeds {c}",
        E_PRED_SOURCE: f"stream {name}: predictor source channel {b} is not an earlier non-position stream",
        E_THRESHOLD_COUNT: f"stream {name}: {b} context thresholds, at most {MAX_CONTEXTS - 1} allowed",
        E_CONTEXT_SOURCE: (f"stream {name}: context source {b} (a+c) needs a and c decoded first" if b == CTX_AREA
                           else f"stream {name}: context source {b} is not a known context source" if b > CTX_AREA
                           else f"stream {name}: context source channel {b} is not decoded yet"),
        E_CELL_SHIFT: f"stream {name}: cell shift g={b} exceeds bits_position {c}",
        E_THRESHOLD: f"stream {name}: context threshold {b} exceeds {c}",
        E_TOKEN_PARAMS: f"stream {name}: token parameters k={b}, m={c} invalid "
                        f"(need k <= {hybrid.MAX_SPLIT}, m <= min(k, {hybrid.MAX_MANTISSA}))",
        E_TOKEN_COUNT: f"stream {name}: histogram of {b} tokens, at most {c} possible",
        E_LEVEL: f"stream {name}: histogram level {b} outside 0..{MAX_LEVEL}",
        E_ALL_ZERO: f"stream {name}: histogram of {b} tokens with all counts zero",
        E_HIST_LONG: f"side stream: exp-Golomb code too long in the histogram of stream {name} "
                     f"(byte {base + b // 8})",
        E_HIST_OVERRUN: f"side stream: stream overrun in the histogram of stream {name} (byte {base + b // 8})",
    }
    raise PayloadError(messages[code])


_CHANNELS = np.array([-1 if ch == STREAM_POSITION else ch for ch in STREAM_ORDER], np.int64)


def read_side_stream(reader: BitReader, channel_bits, n: int, coding: int) -> list[tuple[StreamConfig, list, int]]:
    """Every stream's (configuration, histogram counts [one int64 array per context], side
    bits it took), in STREAM_ORDER; leaves ``reader`` at the end of the last histogram.
    channel_bits: the 8 channels' bit depths; n: the Gaussian count; coding: the payload
    coding (1 or 2). Raises PayloadError on any invalid field."""
    streams = _CHANNELS.shape[0]
    cfg = np.zeros((streams, 9), np.int64)
    thr = np.zeros((streams, MAX_CONTEXTS - 1), np.int64)
    hist_start = np.zeros((streams, MAX_CONTEXTS + 1), np.int64)
    counts = np.empty(reader.nbits + streams * MAX_CONTEXTS, np.int64)  # each token's level takes >= 1 bit
    err = np.zeros(4, np.int64)
    end = read_side_kernel(reader.array, reader.nbits, np.asarray(channel_bits, np.int64), _CHANNELS,
                           MAX_CONTEXTS, hybrid.MAX_SPLIT, hybrid.MAX_MANTISSA, MAX_UE_PREFIX, MAX_LEVEL,
                           CTX_SOURCE_BITS[coding], int(n), cfg, thr, hist_start, counts, err)
    if end < 0:
        _raise(err, reader)
    reader.pos = int(end)
    out = []
    for s, channel in enumerate(STREAM_ORDER):
        row = cfg[s].tolist()
        config = StreamConfig(channel, k=row[C_K], m=row[C_M])
        if channel != STREAM_POSITION:
            config.pred = row[C_PRED]
            if config.pred in (PRED_CONST, PRED_CHANNEL):
                config.pred_param = row[C_PARAM]
            if row[C_THRESHOLDS]:
                config.ctx_source = row[C_SOURCE]
                config.ctx_param = row[C_CTX_PARAM]
                config.thresholds = tuple(thr[s, :row[C_THRESHOLDS]].tolist())
        starts = hist_start[s, :config.contexts + 1].tolist()
        hists = [counts[starts[c]:starts[c + 1]] for c in range(config.contexts)]
        out.append((config, hists, row[C_SIDE_END] - row[C_SIDE_START]))
    return out
