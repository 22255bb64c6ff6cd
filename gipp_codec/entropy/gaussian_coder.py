"""Entropy coding of quantized Gaussians (spec: "Entropy coding", payload codings 1 and 2).

Canonical order: Gaussians sorted by the Morton code M of their quantized position
(bit j of x -> bit 2j of M, bit j of y -> bit 2j+1), ties by (a, b, c, red, green, blue).
The set has no order, so coding M as non-negative gaps saves up to log2(N!) bits.

Streams, in STREAM_ORDER: positions (the Morton gaps), then a, c, b, green, red, blue.
Each non-position stream has a predictor (none, constant, previous Gaussian, or mapped
from another channel of the same Gaussian) and a context rule (thresholds on another,
already decoded channel; coding 2 also on the number of Gaussians in the cells around a
Gaussian's position, or on q_a + q_c); the residual is zigzag-folded and split into HybridUint
tokens (ANS-coded, one histogram per context) and raw bits. The encoder picks each
stream's configuration by measured cost; the decoder just reads it.

Payload = side_length u32 | ans_words u32 | side stream | ANS words (u32 LE) | raw stream.
"""

from dataclasses import dataclass, field

import constriction
import numpy as np

from gipp_codec.entropy import hybrid, token_kernels
from gipp_codec.entropy.bitio import MAX_UE_PREFIX, BitReader, BitWriter, se_length, ue_bits, ue_length
from gipp_codec.entropy.models import LOG_COUNTS, MAX_LEVEL, categorical, choose_levels, level_count, model_cost_bits
from gipp_codec.entropy.side_stream import read_side_stream
from gipp_codec.entropy.streams import (  # noqa: F401  (re-exported)
    CTX_AREA, CTX_CELLS, CTX_SOURCE_BITS, DENSE_CELLS_MAX, MAX_CONTEXTS, PRED_CHANNEL, PRED_CONST, PRED_NAMES,
    PRED_NONE, PRED_PREV, STREAM_ORDER, STREAM_POSITION, StreamConfig, context_feature, context_source_name,
    feature_limit, stream_name,
)
from gipp_codec.errors import PayloadError
from gipp_codec.format.constants import (
    CH_A, CH_B, CH_BLUE, CH_C, CH_GREEN, CH_RED, CH_X, CH_Y, CHANNEL_NAMES, PAYLOAD_CODING_ENTROPY_V2,
)

PAYLOAD_PREFIX = 8  # side_length u32 + ans_words u32

# (k, m) pairs the encoder tries; any k <= MAX_SPLIT, m <= min(k, MAX_MANTISSA) is valid.
_KM_GRID = tuple((k, m) for k in range(0, 11) for m in range(0, min(k, 4) + 1))
_KM_QUICK = ((2, 1), (4, 2), (4, 4))


@dataclass
class StreamBits:
    """Bit accounting of one stream."""

    raw: int = 0
    side: int = 0
    stream: StreamConfig | None = None  # the stream's configuration
    coded: list = field(default_factory=list)  # (counts, tokens) of each ANS-coded context

    @property
    def config(self) -> dict:
        """The stream's configuration, readable (k, m, predictor, context source, thresholds)."""
        return _describe(self.stream) if self.stream is not None else {}

    @property
    def tokens(self) -> float:
        """Information content (bits) of the ANS-coded tokens, computed when first asked for."""
        if not hasattr(self, "_token_bits"):
            self._token_bits = sum(model_cost_bits(counts, tokens) for counts, tokens in self.coded)
        return self._token_bits


# --------------------------------------------------------------------------------------
# Shared helpers (both sides)
# --------------------------------------------------------------------------------------

def morton_encode(qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Interleave 16-bit x and y into a 32-bit Morton code (x in the even bits), uint64."""
    def spread(v):
        v = np.asarray(v, dtype=np.uint64) & np.uint64(0xFFFF)
        v = (v | (v << np.uint64(8))) & np.uint64(0x00FF00FF)
        v = (v | (v << np.uint64(4))) & np.uint64(0x0F0F0F0F)
        v = (v | (v << np.uint64(2))) & np.uint64(0x33333333)
        v = (v | (v << np.uint64(1))) & np.uint64(0x55555555)
        return v
    return spread(qx) | (spread(qy) << np.uint64(1))


def canonical_order(q: np.ndarray) -> np.ndarray:
    """Permutation [N] putting q [N, 8] in canonical order (Morton, then a, b, c, red, green, blue)."""
    q = np.asarray(q, dtype=np.int64)
    m = morton_encode(q[:, CH_X], q[:, CH_Y])
    keys = tuple(q[:, j] for j in (CH_BLUE, CH_GREEN, CH_RED, CH_C, CH_B, CH_A)) + (m,)
    return np.lexsort(keys)


def zigzag(r: np.ndarray) -> np.ndarray:
    """Signed residuals [N] to unsigned: 0, -1, 1, -2, 2 ... map to 0, 1, 2, 3, 4 ... (uint64)."""
    r = np.asarray(r, dtype=np.int64)
    return np.where(r >= 0, 2 * r, -2 * r - 1).astype(np.uint64)


def channel_prediction(q_src: np.ndarray, src: int, dst: int, scales, offsets, max_q: int) -> np.ndarray:
    """PRED_CHANNEL: clamp(round_half_even(((q_src*s_src + o_src) - o_dst) / s_dst), 0, max_q)."""
    s = np.asarray(scales, dtype=np.float32).astype(np.float64)
    o = np.asarray(offsets, dtype=np.float32).astype(np.float64)
    v = np.asarray(q_src, dtype=np.float64) * s[src]
    v = v + o[src]
    v = v - o[dst]
    v = v / s[dst]
    return np.clip(np.rint(v), 0, max_q).astype(np.int64)


def contexts_of(q_src: np.ndarray, thresholds) -> np.ndarray:
    """Context = number of thresholds t with q_src >= t."""
    if not thresholds:
        return np.zeros(q_src.shape[0], dtype=np.int64)
    return np.searchsorted(np.asarray(thresholds, dtype=np.int64), q_src, side="right")


def _u_max(cfg: StreamConfig, bits: tuple) -> int:
    if cfg.channel == STREAM_POSITION:
        return (1 << (2 * bits[CH_X])) - 1
    max_q = (1 << bits[cfg.channel]) - 1
    return max_q if cfg.pred == PRED_NONE else 2 * max_q


def _stream_values(cfg: StreamConfig, q: np.ndarray, bits, scales, offsets) -> np.ndarray:
    """The non-negative integers u [N] a (non-position) stream codes, given the full q [N, 8]."""
    col = q[:, cfg.channel]
    if cfg.pred == PRED_NONE:
        return col.astype(np.uint64)
    if cfg.pred == PRED_CONST:
        return zigzag(col - cfg.pred_param)
    if cfg.pred == PRED_PREV:
        return zigzag(np.diff(col, prepend=0))
    pred = channel_prediction(q[:, cfg.pred_param], cfg.pred_param, cfg.channel, scales, offsets,
                              (1 << bits[cfg.channel]) - 1)
    return zigzag(col - pred)


# --------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------

def _histogram_side_bits(levels: np.ndarray) -> int:
    bits = int(ue_length([levels.size - 1])[0])
    if levels.size >= 2:
        bits += int(se_length(np.diff(levels, prepend=0)).sum())
    return bits


def _context_cost(u: np.ndarray, k: int, m: int) -> tuple[float, np.ndarray]:
    """Bits (tokens + raw + histogram) to code u [M] in one context; returns (bits, levels)."""
    if u.size == 0:
        return float(ue_length([0])[0]), np.zeros(1, np.int64)
    tokens, _, nbits = hybrid.tokenize(u, k, m)
    hist = np.bincount(tokens)
    levels = choose_levels(hist)
    counts = level_count(levels)
    bits = model_cost_bits(counts, tokens) + float(nbits.sum()) + _histogram_side_bits(levels)
    return bits, levels


def _config_cost(cfg: StreamConfig, u: np.ndarray, ctx: np.ndarray, km_grid) -> tuple[float, tuple]:
    """(bits, (k, m)) of the cheapest split in km_grid (the first on a tie) for u [N] split
    by ctx [N] into cfg.contexts histograms: the sum over contexts of ``_context_cost``,
    computed by one kernel call (``cost_kernels.split_costs``)."""
    from gipp_codec.entropy.cost_kernels import split_costs  # encoder only: keeps numba off the decode path

    ks = np.array([k for k, _ in km_grid], np.int64)
    ms = np.array([m for _, m in km_grid], np.int64)
    costs = np.empty(len(km_grid), np.float64)  # [grid]
    split_costs(np.ascontiguousarray(u, dtype=np.uint64), np.ascontiguousarray(ctx, dtype=np.int64),
                int(cfg.contexts), ks, ms, LOG_COUNTS, costs)
    best = (np.inf, (cfg.k, cfg.m))
    for (k, m), total in zip(km_grid, costs.tolist()):
        if total < best[0]:
            best = (total, (k, m))
    return best


def _threshold_candidates(q_src: np.ndarray, max_q: int, parts_list=(2, 4)) -> list[tuple]:
    out = []
    for parts in parts_list:
        t = np.unique(np.quantile(q_src, np.arange(1, parts) / parts, method="higher").astype(np.int64))
        t = tuple(int(v) for v in t if 0 < v <= max_q)
        if t and t not in out:
            out.append(t)
    return out


def _cell_shifts(bits_position: int) -> tuple:
    """The cell sizes 2^g (position units) coding 2's encoder tries: about 1/256, 1/128 and
    1/64 of the position range."""
    return tuple(sorted({g for g in (bits_position - 8, bits_position - 7, bits_position - 6) if g >= 0}))


# Whether the encoder's search also tries x and y as context sources. The format allows them
# (spec §5.5), but on fitted images they never paid, so the search leaves them out; the
# conformance generator turns this on to write a vector that uses them.
POSITION_CONTEXTS = False


def _context_candidates(q: np.ndarray, done: list, bits, derived: bool) -> list[tuple]:
    """(source, param, thresholds, feature [N]) of the context rules the encoder tries: on
    the decoded channels (x and y only with ``POSITION_CONTEXTS``), or (``derived``, coding 2)
    on the derived context features."""
    if not derived:
        skip = () if POSITION_CONTEXTS else (CH_X, CH_Y)
        sources, parts = [(j, 0) for j in done if j not in skip], (2, 4)
    else:
        sources, parts = [(CTX_CELLS, g) for g in _cell_shifts(bits[CH_X])], (2, 3, 4)
        if CH_A in done and CH_C in done:
            sources.append((CTX_AREA, 0))
    out = []
    for src, param in sources:
        feature = context_feature(src, param, lambda ch: q[:, ch])  # [N]
        limit = feature_limit(src, bits, q.shape[0])
        out += [(src, param, t, feature) for t in _threshold_candidates(feature, limit, parts)]
    return out


def _choose_config(channel: int, q: np.ndarray, done: list, bits, scales, offsets, coding: int) -> StreamConfig:
    """Pick predictor, contexts and (k, m) of a stream by measured cost: every predictor with
    every channel context (coding 1's search), then, in coding 2, the derived contexts with
    the best predictor found."""
    col = q[:, channel]
    preds = [(PRED_NONE, 0), (PRED_CONST, int(np.median(col)) if col.size else 0), (PRED_PREV, 0)]
    preds += [(PRED_CHANNEL, j) for j in done if j not in (CH_X, CH_Y)]
    stages = [(preds, [(-1, 0, (), None)] + _context_candidates(q, done, bits, derived=False))]
    if coding >= PAYLOAD_CODING_ENTROPY_V2:
        stages.append((None, _context_candidates(q, done, bits, derived=True)))
    best_cost, best = np.inf, None
    for stage_preds, ctxs in stages:
        if stage_preds is None:  # the derived contexts: only with the best predictor so far
            stage_preds = [(best[0].pred, best[0].pred_param)]
        for pred, param in stage_preds:
            u = _stream_values(StreamConfig(channel, pred, param), q, bits, scales, offsets)
            for src, cparam, thr, feature in ctxs:
                cfg = StreamConfig(channel, pred, param, src, cparam, thr)
                ctx = np.zeros(col.size, np.int64) if feature is None else contexts_of(feature, thr)
                grid = _KM_QUICK + (((bits[channel], 0),) if pred == PRED_NONE and bits[channel] <= hybrid.MAX_SPLIT else ())
                cost, (k, m) = _config_cost(cfg, u, ctx, grid)
                cost += _config_side_bits(cfg, coding)
                if cost < best_cost:
                    best_cost, best = cost, (StreamConfig(channel, pred, param, src, cparam, thr, k, m), ctx)
    cfg, ctx = best
    u = _stream_values(cfg, q, bits, scales, offsets)
    grid = tuple((k, m) for k, m in _KM_GRID if hybrid.max_token(k, m, _u_max(cfg, bits)) < 1 << 16)
    _, (cfg.k, cfg.m) = _config_cost(cfg, u, ctx, grid + ((cfg.k, cfg.m),))
    return cfg


def _config_side_bits(cfg: StreamConfig, coding: int) -> int:
    """Side-stream bits of the configuration ``_write_config`` writes (k and m included)."""
    bits = 2 + 8  # pred + k + m
    if cfg.pred == PRED_CONST:
        bits += ue_bits(cfg.pred_param)
    elif cfg.pred == PRED_CHANNEL:
        bits += 3
    bits += ue_bits(len(cfg.thresholds))
    if cfg.thresholds:
        bits += CTX_SOURCE_BITS[coding] + (4 if cfg.ctx_source == CTX_CELLS else 0)
        prev = -1
        for t in cfg.thresholds:
            bits += ue_bits(t - prev - 1)
            prev = t
    return bits


def _write_config(w: BitWriter, cfg: StreamConfig, coding: int) -> None:
    if cfg.channel != STREAM_POSITION:
        w.u(cfg.pred, 2)
        if cfg.pred == PRED_CONST:
            w.ue(cfg.pred_param)
        elif cfg.pred == PRED_CHANNEL:
            w.u(cfg.pred_param, 3)
        w.ue(len(cfg.thresholds))
        if cfg.thresholds:
            w.u(cfg.ctx_source, CTX_SOURCE_BITS[coding])
            if cfg.ctx_source == CTX_CELLS:
                w.u(cfg.ctx_param, 4)
            prev = -1
            for t in cfg.thresholds:
                w.ue(t - prev - 1)
                prev = t
    w.u(cfg.k, 4)
    w.u(cfg.m, 4)


LEVEL_SWEEPS = 4  # sweeps of the levels' search (cost_kernels.priced_levels)


def _sent_levels(hist: np.ndarray) -> np.ndarray:
    """The levels int64 [ntok] a context's token histogram hist [ntok] is sent with: those
    of ``choose_levels`` searched for a lower price of histogram and tokens together
    (``cost_kernels.priced_levels``; about 0.2 % of a Kodak file, BENCHMARKS.md §5)."""
    from gipp_codec.entropy.cost_kernels import priced_levels  # encoder only: keeps numba off the decode path

    levels = np.empty(hist.size, np.int64)  # [ntok]
    priced_levels(np.ascontiguousarray(hist, dtype=np.int64), LOG_COUNTS, MAX_LEVEL, LEVEL_SWEEPS, levels)
    return levels


def _write_histogram(w: BitWriter, levels: np.ndarray) -> None:
    w.ue(levels.size - 1)
    if levels.size >= 2:
        prev = 0
        for e in levels:
            w.se(int(e) - prev)
            prev = int(e)


def encode_attributes(q: np.ndarray, bits: tuple, scales, offsets,
                      coding: int = PAYLOAD_CODING_ENTROPY_V2, priced_levels: bool = True) -> tuple[bytes, np.ndarray, dict]:
    """Code q [N, 8] (any order) with payload coding ``coding`` (1 or 2) -> (payload bytes,
    q in canonical order, per-stream StreamBits). The histograms' levels are searched for
    the lowest price (``_sent_levels``), or with ``priced_levels=False`` the counts' nearest
    (``choose_levels``: the encoder's rate hook prices the files it sizes the set by so, so
    that its choices of N stay those it made before the search existed)."""
    if coding not in CTX_SOURCE_BITS:
        raise ValueError(f"payload coding {coding!r} unknown")
    q = np.asarray(q, dtype=np.int64)
    q = q[canonical_order(q)]
    n = q.shape[0]
    side, raw = BitWriter(), BitWriter()
    batches = []  # (tokens int32, counts) in decoding order
    report = {}
    done: list[int] = [CH_X, CH_Y]
    for channel in STREAM_ORDER:
        sb = StreamBits()
        side0, raw0 = side.nbits, raw.nbits
        if channel == STREAM_POSITION:
            morton = morton_encode(q[:, CH_X], q[:, CH_Y])
            u = np.diff(morton, prepend=np.uint64(0)) if n else morton
            cfg = StreamConfig(STREAM_POSITION)
            grid = tuple((k, m) for k, m in _KM_GRID if hybrid.max_token(k, m, _u_max(cfg, bits)) < 1 << 16)
            _, (cfg.k, cfg.m) = _config_cost(cfg, u, np.zeros(n, np.int64), grid)
            ctx = np.zeros(n, np.int64)
        else:
            cfg = _choose_config(channel, q, done, bits, scales, offsets, coding)
            u = _stream_values(cfg, q, bits, scales, offsets)
            ctx = (contexts_of(context_feature(cfg.ctx_source, cfg.ctx_param, lambda ch: q[:, ch]), cfg.thresholds)
                   if cfg.thresholds else np.zeros(n, np.int64))
            done.append(channel)
        _write_config(side, cfg, coding)
        per_ctx = []
        for c in range(cfg.contexts):
            tokens, raw_vals, nbits = hybrid.tokenize(u[ctx == c], cfg.k, cfg.m)
            hist = np.bincount(tokens)  # [ntok]
            levels = ((_sent_levels(hist) if priced_levels else choose_levels(hist)) if tokens.size
                      else np.zeros(1, np.int64))
            _write_histogram(side, levels)
            per_ctx.append((tokens, raw_vals, nbits, level_count(levels)))
        for tokens, raw_vals, nbits, counts in per_ctx:
            batches.append((tokens, counts))
            raw.many(raw_vals, nbits)
            sb.coded.append((counts, tokens))
        sb.side = side.nbits - side0
        sb.raw = raw.nbits - raw0
        sb.stream = cfg
        report["position" if channel == STREAM_POSITION else CHANNEL_NAMES[channel]] = sb
    ans = constriction.stream.stack.AnsCoder()
    for tokens, counts in reversed(batches):
        if counts.size >= 2 and tokens.size:
            ans.encode_reverse(np.ascontiguousarray(tokens, dtype=np.int32), categorical(counts))
    words = np.asarray(ans.get_compressed(), dtype=np.uint32)
    side_bytes = side.getvalue()
    payload = (
        np.array([len(side_bytes), words.size], dtype="<u4").tobytes()
        + side_bytes + words.astype("<u4").tobytes() + raw.getvalue()
    )
    report["_ans_words"] = int(words.size)
    return payload, q, report


def _describe(cfg: StreamConfig) -> dict:
    d = {"k": cfg.k, "m": cfg.m}
    if cfg.channel != STREAM_POSITION:
        d["predictor"] = PRED_NAMES[cfg.pred]
        if cfg.pred == PRED_CONST:
            d["constant"] = cfg.pred_param
        if cfg.pred == PRED_CHANNEL:
            d["source"] = CHANNEL_NAMES[cfg.pred_param]
        if cfg.thresholds:
            d["context_source"] = context_source_name(cfg.ctx_source, cfg.ctx_param)
            d["thresholds"] = list(cfg.thresholds)
    return d


# --------------------------------------------------------------------------------------
# Decoder
# --------------------------------------------------------------------------------------

_NO_CONTEXTS = np.zeros(0, np.int64)


def _stream_contexts(cfg: StreamConfig, qt: np.ndarray, n: int, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """(ctx [N], sizes [contexts]) (int64) of a stream with thresholds, from the channels
    decoded so far, qt [8, N] (channel-major). A context's sources are decoded before the
    stream and never change afterwards, so streams with the same source, parameter and
    thresholds (often a and c, or red and blue) share one computation through ``cache``."""
    key = (cfg.ctx_source, cfg.ctx_param, cfg.thresholds)
    found = cache.get(key)
    if found is not None:
        return found
    ctx = np.empty(n, np.int64)  # [N]
    sizes = np.empty(cfg.contexts, np.int64)  # [contexts]
    thresholds = np.array(cfg.thresholds, np.int64)
    if token_kernels.stream_contexts(cfg.ctx_source, cfg.ctx_param, qt, thresholds, DENSE_CELLS_MAX,
                                     ctx, sizes):  # a cells table above the bound: sort instead
        feature = context_feature(cfg.ctx_source, cfg.ctx_param, qt.__getitem__)  # [N]
        token_kernels.contexts_and_sizes(feature, thresholds, ctx, sizes)
    cache[key] = (ctx, sizes)
    return ctx, sizes


def _ans_state(words: np.ndarray, offset: int) -> np.ndarray:
    """The ANS decoder's starting state (uint64 [2]: the head, the words not yet taken) for
    the words uint32 [W] of a stream at byte ``offset``: the last word, then the one before
    it, make the head (spec "ANS stream"). A last word of zero is a PayloadError."""
    rest = words.shape[0]
    state = np.zeros(2, np.uint64)
    if rest:
        if words[-1] == 0:
            raise PayloadError(f"ANS stream at byte {offset} is invalid: Invalid compressed data: ANS compressed "
                               f"data never ends in a zero word.")  # constriction's words, as the vectors record
        head = int(words[-1])
        rest -= 1
        if rest:
            head = (head << 32) | int(words[rest - 1])
            rest -= 1
        state[0], state[1] = head, rest
    return state


def decode_attributes(payload: bytes, n: int, bits: tuple, scales, offsets, base_offset: int = 0,
                      coding: int = PAYLOAD_CODING_ENTROPY_V2):
    """Payload (payload coding ``coding``, 1 or 2) -> (q int64 [N, 8] in file (canonical)
    order, per-stream StreamBits)."""
    if len(payload) < PAYLOAD_PREFIX:
        raise PayloadError(f"Gaussian payload of {len(payload)} bytes is shorter than its {PAYLOAD_PREFIX}-byte prefix")
    side_len, n_words = (int(v) for v in np.frombuffer(payload[:8], dtype="<u4"))
    ans_start = PAYLOAD_PREFIX + side_len
    raw_start = ans_start + 4 * n_words
    if raw_start > len(payload):
        raise PayloadError(
            f"Gaussian payload declares {side_len} side bytes and {n_words} ANS words "
            f"({raw_start} bytes) but has only {len(payload)} bytes"
        )
    side = BitReader(payload[PAYLOAD_PREFIX:ans_start], "side", base_offset + PAYLOAD_PREFIX)
    raw = BitReader(payload[raw_start:], "raw", base_offset + raw_start)
    words = np.frombuffer(payload[ans_start:raw_start], dtype="<u4").astype(np.uint32)  # [W], a writeable copy
    ans = _ans_state(words, base_offset + ans_start)  # uint64 [2]: the head, the words not yet taken
    qt = np.zeros((8, n), dtype=np.int64)  # channel-major while decoding: contiguous columns
    report = {}
    context_cache = {}  # (source, param, thresholds) -> (ctx, sizes): streams may share contexts
    for cfg, hists, side_bits in read_side_stream(side, bits, n, coding):
        channel = cfg.channel
        name = stream_name(channel)
        sb = StreamBits()
        raw0 = raw.pos
        if cfg.thresholds:
            ctx, sizes = _stream_contexts(cfg, qt, n, context_cache)
        else:  # one context: the kernels never read ctx
            ctx, sizes = _NO_CONTEXTS, np.array([n], np.int64)
        token_parts = []  # Gaussians of context 0, then of context 1, ... each in file order
        for size, counts in zip(sizes.tolist(), hists):
            if counts.size >= 2 and size:
                tokens = np.empty(size, np.int32)  # [size]
                token_kernels.ans_tokens(words, ans, counts, size, tokens)
                sb.coded.append((counts, tokens))
            else:
                tokens = np.zeros(size, dtype=np.int32)
            token_parts.append(tokens)
        # raw bits follow the tokens in the same order: context by context
        tokens = np.concatenate(token_parts) if len(token_parts) > 1 else token_parts[0]
        if channel == STREAM_POSITION:
            pos = token_kernels.finish_positions(tokens, cfg.k, cfg.m, raw.array, raw.nbits, raw.pos,
                                                 _u_max(cfg, bits), qt[CH_X], qt[CH_Y])
        else:
            src = cfg.pred_param if cfg.pred == PRED_CHANNEL else channel
            bad = np.zeros(2, np.int64)
            pos = token_kernels.finish_column(
                tokens, cfg.k, cfg.m, raw.array, raw.nbits, raw.pos, ctx, sizes, cfg.pred, cfg.pred_param,
                qt[src], float(np.float32(scales[src])), float(np.float32(offsets[src])),
                float(np.float32(offsets[channel])), float(np.float32(scales[channel])),
                (1 << bits[channel]) - 1, qt[channel], bad)
        if pos == token_kernels.OVERRUN:
            raise PayloadError(f"raw stream overrun in stream {name} (byte {raw.base_offset + raw.pos // 8})")
        if pos == token_kernels.BAD_MORTON:
            raise PayloadError(f"position stream: a Morton code exceeds {_u_max(cfg, bits)}")
        if pos == token_kernels.OUT_OF_RANGE:
            raise PayloadError(f"stream {name}: Gaussian {bad[0]} decodes to {bad[1]}, "
                               f"expected 0..{(1 << bits[channel]) - 1}")
        raw.pos = pos
        sb.side = side_bits
        sb.raw = raw.pos - raw0
        sb.stream = cfg
        report[name] = sb
    side.finish()
    raw.finish()
    if ans[0] != 0 or ans[1] != 0:
        raise PayloadError(f"ANS stream at byte {base_offset + ans_start}: data left over after the last symbol")
    report["_ans_words"] = int(n_words)
    return qt.T, report
