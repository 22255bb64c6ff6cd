"""Entropy coding: the spec's ANS arithmetic vs constriction, tokens, round trips, robustness, gains."""

import sys
import time
from pathlib import Path

import constriction
import numpy as np
import pytest

from gipp_codec.entropy import hybrid, token_kernels
from gipp_codec.entropy.bitio import MAX_UE_PREFIX, READ_PAD, BitReader, BitWriter, se_length, ue_length
from gipp_codec.entropy.gaussian_coder import (
    canonical_order,
    decode_attributes,
    encode_attributes,
    channel_prediction,
    zigzag,
    morton_encode,
)
from gipp_codec.entropy.models import categorical, fixed_point_freqs, level_count
from gipp_codec.errors import PayloadError
from gipp_codec.format.model import BitDepths
from gipp_codec.format.synthetic import synthetic_quantized

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
import reference_decoder as spec  # noqa: E402  (the decoder written from the spec alone)


def _spec_encode(symbols, levels):
    """The spec's ANS *encoder* (section 5.7), in plain integers."""
    left, freq = spec.model(levels)
    head, bulk = 0, []
    for s in reversed(symbols):
        if (head >> 40) >= freq[s]:
            bulk.append(head & 0xFFFFFFFF)
            head >>= 32
        head = ((head // freq[s]) << 24) | (head % freq[s] + left[s])
    lo, hi = head & 0xFFFFFFFF, head >> 32
    return bulk + ([lo, hi] if hi else [lo] if lo else [])


def test_spec_ans_is_bit_exact_with_constriction():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 80))
        levels = list(rng.integers(0, 30, n) * (rng.random(n) < 0.8))
        levels[int(rng.integers(n))] = int(rng.integers(1, 48))
        symbols = rng.integers(0, n, int(rng.integers(0, 400))).astype(np.int32)
        coder = constriction.stream.stack.AnsCoder()
        coder.encode_reverse(symbols, categorical(level_count(np.array(levels))))
        words = [int(w) for w in coder.get_compressed()]
        assert words == _spec_encode(list(symbols), levels)
        ans = spec.Ans(words)
        left, freq = spec.model(levels)
        assert [ans.decode(left, freq) for _ in symbols] == list(symbols)
        assert ans.empty()


def test_ans_kernel_decodes_what_constriction_encodes_across_models():
    """token_kernels.ans_tokens (the decoder's ANS) against constriction's encoder: several
    models in one stream (the state carried between calls), 2 to 300 tokens a model with
    unused tokens and levels up to 47, runs of 0 to 3000 symbols; every symbol back and the
    stream empty at the end, as the spec's decoder requires."""
    from gipp_codec.entropy.gaussian_coder import _ans_state

    rng = np.random.default_rng(1)
    for trial in range(60):
        parts = []
        for _ in range(int(rng.integers(1, 8))):
            n = int(rng.integers(2, 300))
            levels = rng.integers(0, 48, n) * (rng.random(n) < 0.7)
            levels[int(rng.integers(n))] = int(rng.integers(1, 48))
            counts = level_count(levels)  # int64 [n]
            p = counts / counts.sum()
            parts.append((counts, rng.choice(n, int(rng.integers(0, 3000)), p=p).astype(np.int32)))
        coder = constriction.stream.stack.AnsCoder()
        for counts, symbols in reversed(parts):
            coder.encode_reverse(symbols, categorical(counts))
        words = np.ascontiguousarray(coder.get_compressed(), dtype=np.uint32)
        state = _ans_state(words, 0)
        for counts, symbols in parts:
            out = np.empty(symbols.size, np.int32)
            assert token_kernels.ans_tokens(words, state, np.ascontiguousarray(counts), symbols.size, out) == symbols.size
            assert np.array_equal(out, symbols), trial
        assert state[0] == 0 and state[1] == 0


def test_ans_state_refuses_a_last_word_of_zero():
    from gipp_codec.entropy.gaussian_coder import _ans_state

    with pytest.raises(PayloadError, match="at byte 7 is invalid.*never ends in a zero word"):
        _ans_state(np.array([5, 0], np.uint32), 7)
    assert _ans_state(np.zeros(0, np.uint32), 0).tolist() == [0, 0]
    assert _ans_state(np.array([3], np.uint32), 0).tolist() == [3, 0]
    assert _ans_state(np.array([1, 2, 3], np.uint32), 0).tolist() == [(3 << 32) | 2, 1]


def test_fixed_point_freqs_match_spec():
    rng = np.random.default_rng(1)
    for _ in range(100):
        levels = rng.integers(0, 48, int(rng.integers(2, 300)))
        levels[0] = 5
        left, freq = fixed_point_freqs(level_count(levels))
        l2, f2 = spec.model(list(levels))
        assert list(left) == l2 and list(freq) == f2
        assert freq.min() >= 1 and freq.sum() == 1 << 24


@pytest.mark.parametrize("k,m", [(0, 0), (1, 1), (3, 2), (4, 4), (8, 0), (12, 4)])
def test_hybrid_tokens_roundtrip(k, m):
    rng = np.random.default_rng(k * 10 + m)
    u = np.concatenate([np.arange(300), rng.integers(0, 2**33, 500), [2**32 - 1, 2**33 - 2]]).astype(np.uint64)
    tokens, raw, nbits = hybrid.tokenize(u, k, m)
    w = BitWriter()
    w.many(raw, nbits)
    reader = BitReader(w.getvalue(), "test")  # its array carries the readers' padding
    back = np.empty(u.size, np.uint64)
    assert token_kernels.tokens_to_values(tokens.astype(np.int32), k, m, reader.array, reader.nbits, 0, back) \
        == nbits.sum()
    assert np.array_equal(back, u)
    assert tokens.max() <= hybrid.max_token(k, m, int(u.max()))
    assert np.all(raw < (np.uint64(1) << nbits.astype(np.uint64)))


def test_bitio_roundtrip():
    rng = np.random.default_rng(2)
    w = BitWriter()
    vals = rng.integers(0, 2**31, 50)
    svals = rng.integers(-1000, 1000, 50)
    for v, s in zip(vals, svals):
        w.ue(int(v))
        w.se(int(s))
        w.u(int(v) & 0x1F, 5)
    nb = rng.integers(0, 33, 100)
    many = (rng.integers(0, 2**32, 100, dtype=np.uint64) & ((np.uint64(1) << nb.astype(np.uint64)) - np.uint64(1)))
    w.many(many, nb)
    assert w.nbits == int(ue_length(vals).sum() + se_length(svals).sum() + 5 * 50 + nb.sum())
    r = BitReader(w.getvalue(), "test")
    for v, s in zip(vals, svals):
        assert r.ue() == v and r.se() == s and r.u(5) == int(v) & 0x1F
    assert [r.u(int(b)) for b in nb] == many.tolist()
    r.finish()
    with pytest.raises(PayloadError):
        r.u(9)


def _token_stream(values: np.ndarray, k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """HybridUint tokens [M] (int32) of values and their raw bits as a uint8 stream (with
    the zero padding BitReader.array gives the readers: 8 * (data.size - READ_PAD) bits long)."""
    tokens, raw, nbits = hybrid.tokenize(values.astype(np.uint64), k, m)
    w = BitWriter()
    w.many(raw, nbits)
    return tokens.astype(np.int32), BitReader(w.getvalue(), "test").array


def test_bit_read_kernel_matches_the_bit_string():
    """token_kernels' 64-bit-load reader returns any 0..33 bits at any position, the last
    bits of a stream included (the reader's padding is never part of a value)."""
    rng = np.random.default_rng(7)
    stream = rng.integers(0, 256, 37, dtype=np.uint8).tobytes()
    text = "".join(f"{b:08b}" for b in stream)
    data = BitReader(stream, "test").array
    cases = [(pos, n) for n in (0, 1, 32, 33) for pos in (0, 7, len(text) - n)]
    cases += [(int(rng.integers(0, len(text) - n + 1)), n) for n in rng.integers(0, 34, 3000).tolist()]
    for pos, n in cases:
        assert int(token_kernels._read(data, pos, n)) == (int(text[pos:pos + n], 2) if n else 0), (pos, n)


def test_finish_positions_inverts_morton_gaps():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 2**12, 1000), rng.integers(0, 2**12, 1000)
    m = np.sort(morton_encode(x, y))
    assert int(morton_encode(np.array([1]), np.array([0]))[0]) == 1
    assert int(morton_encode(np.array([0]), np.array([1]))[0]) == 2
    tokens, data = _token_stream(np.diff(m, prepend=np.uint64(0)), 4, 1)
    qx, qy = np.empty(m.size, np.int64), np.empty(m.size, np.int64)
    pos = token_kernels.finish_positions(tokens, 4, 1, data, 8 * (data.size - READ_PAD), 0, 2**24 - 1, qx, qy)
    assert pos >= 0
    assert np.array_equal(morton_encode(qx, qy), m)
    # a code above the largest the position bits allow is refused
    assert token_kernels.finish_positions(tokens, 4, 1, data, 8 * (data.size - READ_PAD), 0, int(m[-1]) - 1, qx, qy) \
        == token_kernels.BAD_MORTON


@pytest.mark.parametrize("pred", [0, 1, 2, 3])
def test_finish_column_matches_the_numpy_definition(pred):
    """The fused kernel (ungroup by context, undo the predictor) equals the spec's steps
    written with numpy, and refuses values outside 0..max_q."""
    rng = np.random.default_rng(pred)
    n, max_q = 500, 1023
    col = rng.integers(0, max_q + 1, n)
    src = rng.integers(0, 64, n)  # the predictor's source channel (6-bit)
    ctx_src = rng.integers(0, max_q + 1, n)
    scales = np.array([0.03, 0.0075], np.float32)
    offsets = np.array([-1.4, -2.3], np.float32)
    if pred == 0:
        u = col.astype(np.uint64)
    elif pred == 1:
        u = zigzag(col - 500)
    elif pred == 2:
        u = zigzag(np.diff(col, prepend=0))
    else:
        u = zigzag(col - channel_prediction(src, 0, 1, scales, offsets, max_q))
    thresholds = np.array([300, 700], np.int64)
    ctx = np.searchsorted(thresholds, ctx_src, side="right")
    sizes = np.bincount(ctx, minlength=3)
    grouped = u[np.argsort(ctx, kind="stable")]  # context by context, each in file order
    tokens, data = _token_stream(grouped, 4, 2)
    args = (tokens, 4, 2, data, 8 * (data.size - READ_PAD), 0, ctx, sizes, pred, 500, src,
            float(scales[0]), float(offsets[0]), float(offsets[1]), float(scales[1]))
    out, bad = np.empty(n, np.int64), np.zeros(2, np.int64)
    assert token_kernels.finish_column(*args, max_q, out, bad) >= 0
    assert np.array_equal(out, col)
    assert token_kernels.finish_column(*args, int(col.max()) - 1, out, bad) == token_kernels.OUT_OF_RANGE
    assert bad[1] > col.max() - 1 or bad[1] < 0
    # one context: tokens in file order, ctx never read
    tokens1, data1 = _token_stream(u, 4, 2)
    out1 = np.empty(n, np.int64)
    assert token_kernels.finish_column(tokens1, 4, 2, data1, 8 * (data1.size - READ_PAD), 0, np.zeros(0, np.int64),
                                       np.array([n], np.int64), *args[8:], max_q, out1, bad) >= 0
    assert np.array_equal(out1, col)


def _roundtrip(g, coding=2):
    bits = g.bits.per_channel()
    payload, q_canon, _ = encode_attributes(g.q, bits, g.scales, g.offsets, coding=coding)
    q, _ = decode_attributes(payload, g.count, bits, g.scales, g.offsets, coding=coding)
    np.testing.assert_array_equal(q, q_canon)
    q0 = np.asarray(g.q, np.int64)
    np.testing.assert_array_equal(q_canon, q0[canonical_order(q0)])
    return payload


@pytest.mark.parametrize("coding", [1, 2])
@pytest.mark.parametrize("bits", [BitDepths(), BitDepths(1, 1, 1), BitDepths(16, 16, 16), BitDepths(16, 2, 9)])
def test_attributes_roundtrip(bits, coding):
    for n in (1, 2, 17, 700):
        _roundtrip(synthetic_quantized(n, 97, 61, bits, seed=n), coding)


def test_coding_2_uses_its_context_sources_and_is_smaller():
    """On a set whose sizes follow its local density and whose b follows a + c (as fitted
    sets do), coding 2 picks its derived context sources and codes fewer bits than coding 1;
    a coding-1 payload read as coding 2 (or the reverse) does not pass for the same set."""
    from gipp_codec.entropy.streams import CTX_AREA, CTX_CELLS

    g = synthetic_quantized(3000, 513, 257, seed=4)
    bits = g.bits.per_channel()
    p1 = _roundtrip(g, 1)
    p2, _, report = encode_attributes(g.q, bits, g.scales, g.offsets, coding=2)
    assert len(p2) < len(p1)
    sources = {report[name].config.get("context_source") for name in ("a", "c", "b", "green", "red", "blue")}
    assert any(str(s).startswith("cells") for s in sources) and "a+c" in sources
    assert CTX_CELLS == 8 and CTX_AREA == 9  # the spec's numbers
    for data, coding in ((p1, 2), (p2, 1)):
        try:
            q, _ = decode_attributes(data, g.count, bits, g.scales, g.offsets, coding=coding)
        except PayloadError:
            continue
        assert not np.array_equal(q, decode_attributes(p2, g.count, bits, g.scales, g.offsets)[0])


def _numpy_config_cost(cfg, u, ctx, km_grid):
    """The encoder's search cost by its numpy definition: _context_cost summed over contexts."""
    from gipp_codec.entropy.gaussian_coder import _context_cost

    best = (np.inf, (cfg.k, cfg.m))
    for k, m in km_grid:
        total = sum(_context_cost(u[ctx == c], k, m)[0] for c in range(cfg.contexts))
        if total < best[0]:
            best = (total, (k, m))
    return best


def test_split_cost_kernel_matches_the_numpy_definition():
    """cost_kernels.split_costs gives _context_cost's bits summed over contexts, for every
    (k, m) of the encoder's grid: small and large values (Morton gaps reach 2**24), one
    value, all zeros, and an empty context."""
    from gipp_codec.entropy import cost_kernels, models
    from gipp_codec.entropy.gaussian_coder import _KM_GRID, _context_cost

    assert cost_kernels.PRECISION == models.PRECISION
    rng = np.random.default_rng(7)
    cases = [
        (rng.geometric(0.05, 900) - 1, rng.integers(0, 3, 900)),
        (rng.integers(0, 1 << 24, 400), rng.integers(0, 2, 400)),
        (np.zeros(50, np.int64), np.zeros(50, np.int64)),
        (np.array([5]), np.array([0])),
        (rng.integers(0, 64, 300), np.where(rng.random(300) < 0.5, 0, 2)),  # context 1 empty
    ]
    ks = np.array([k for k, _ in _KM_GRID], np.int64)
    ms = np.array([m for _, m in _KM_GRID], np.int64)
    for u, ctx in cases:
        u, ctx = u.astype(np.uint64), ctx.astype(np.int64)
        contexts = 3 if ctx.max() == 2 else int(ctx.max()) + 1
        got = np.empty(ks.size)
        cost_kernels.split_costs(u, ctx, contexts, ks, ms, models.LOG_COUNTS, got)
        want = [sum(_context_cost(u[ctx == c], int(k), int(m))[0] for c in range(contexts)) for k, m in _KM_GRID]
        np.testing.assert_allclose(got, want, rtol=1e-12)


def _sent_price(hist: np.ndarray, levels: np.ndarray) -> float:
    """The numpy statement of what a context costs with these levels: its tokens under
    their fixed-point model plus the level steps' se() bits."""
    tokens = np.repeat(np.arange(hist.size), hist)
    from gipp_codec.entropy.models import model_cost_bits

    return model_cost_bits(level_count(levels), tokens) + float(se_length(np.diff(levels, prepend=0)).sum())


def test_the_sent_levels_never_cost_more_than_the_nearest_ones():
    """The encoder's histogram levels (``_sent_levels``) start from ``choose_levels`` and
    move only to lower the price of histogram and tokens together, the price the kernel
    reports being the numpy statement's; a histogram of levels one apart that alternate is
    sent flatter, for fewer bits."""
    from gipp_codec.entropy import cost_kernels, models
    from gipp_codec.entropy.gaussian_coder import LEVEL_SWEEPS, _sent_levels

    rng = np.random.default_rng(3)
    hists = [np.bincount(np.minimum(rng.geometric(p, n) - 1, 90)) for p, n in ((0.08, 3000), (0.3, 40), (0.02, 500))]
    hists.append(np.array([0, 7, 0, 0, 1]))
    hists.append(np.array([48, 0] * 5 + [48]))
    for hist in hists:
        nearest = models.choose_levels(hist)
        sent = _sent_levels(hist)
        assert sent.shape == hist.shape and sent.min() >= 0 and sent.max() <= models.MAX_LEVEL and sent.any()
        assert _sent_price(hist, sent) <= _sent_price(hist, nearest) + 1e-9
        levels = np.empty(hist.size, np.int64)
        price = cost_kernels.priced_levels(hist.astype(np.int64), models.LOG_COUNTS, models.MAX_LEVEL, LEVEL_SWEEPS,
                                           levels)
        assert np.array_equal(levels, sent) and abs(price - _sent_price(hist, sent)) < 1e-6
    # counts 64, 44, 64, 44, 64 (levels 11, 10, 11, 10, 11): each step of +-1 costs 3 bits, a flat run 1
    zigzag_hist = np.array([32, 22, 32, 22, 32])
    nearest, sent = models.choose_levels(zigzag_hist), _sent_levels(zigzag_hist)
    assert not np.array_equal(sent, nearest) and _sent_price(zigzag_hist, sent) < _sent_price(zigzag_hist, nearest) - 1


def test_stream_search_with_the_kernel_writes_what_the_numpy_costs_write(monkeypatch):
    """The encoder's search on the kernel's costs picks the configurations the numpy
    definition picks: the same payload, byte for byte."""
    import gipp_codec.entropy.gaussian_coder as gc

    g = synthetic_quantized(400, 97, 61, seed=11)
    bits = g.bits.per_channel()
    fast = encode_attributes(g.q, bits, g.scales, g.offsets)[0]
    monkeypatch.setattr(gc, "_config_cost", _numpy_config_cost)
    assert encode_attributes(g.q, bits, g.scales, g.offsets)[0] == fast


def test_ue_bits_matches_ue_length_and_the_writer():
    from gipp_codec.entropy.bitio import ue_bits

    values = list(range(0, 1100)) + [(1 << 20) - 2, (1 << 20) - 1, 1 << 20, (1 << 40) + 3]
    assert [ue_bits(v) for v in values] == ue_length(values).tolist()
    for v in values[:40]:
        w = BitWriter()
        w.ue(v)
        assert w.nbits == ue_bits(v)


def test_config_side_bits_count_what_write_config_writes():
    from gipp_codec.entropy.gaussian_coder import (
        PRED_CHANNEL, PRED_CONST, PRED_NONE, PRED_PREV, StreamConfig, _config_side_bits, _write_config,
    )
    from gipp_codec.entropy.streams import CTX_AREA, CTX_CELLS
    from gipp_codec.format.constants import CH_A, CH_B, CH_C

    configs = [
        StreamConfig(CH_A, PRED_NONE, 0, k=4, m=2),
        StreamConfig(CH_C, PRED_CONST, 300, k=2, m=1),
        StreamConfig(CH_C, PRED_CHANNEL, CH_A, CH_A, 0, (5, 90, 700), 4, 4),
        StreamConfig(CH_B, PRED_PREV, 0, CTX_CELLS, 5, (1, 2), 3, 0),
        StreamConfig(CH_B, PRED_CONST, 0, CTX_AREA, 0, (0, 1000), 10, 4),
    ]
    for coding in (1, 2):
        for cfg in configs:
            if coding == 1 and cfg.ctx_source in (CTX_CELLS, CTX_AREA):
                continue
            w = BitWriter()
            _write_config(w, cfg, coding)
            assert _config_side_bits(cfg, coding) == w.nbits, (cfg, coding)


def test_roundtrip_duplicates_and_extremes():
    g = synthetic_quantized(64, 32, 32, seed=4)
    g.q[:] = g.q[0]  # all identical
    _roundtrip(g)
    g2 = synthetic_quantized(64, 32, 32, BitDepths(16, 16, 16), seed=5)
    g2.q[::2] = 0
    g2.q[1::2] = 65535
    _roundtrip(g2)


def test_corrupt_payloads_raise_payload_error_quickly():
    g = synthetic_quantized(200, 64, 48, seed=6)
    bits = g.bits.per_channel()
    payload, _, _ = encode_attributes(g.q, bits, g.scales, g.offsets)
    rng = np.random.default_rng(7)
    candidates = [bytes(rng.integers(0, 256, int(rng.integers(0, 600)), dtype=np.uint8)) for _ in range(100)]
    for _ in range(300):
        b = bytearray(payload)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(8, len(b)))] ^= 1 << int(rng.integers(0, 8))
        candidates.append(bytes(b))
    candidates += [payload[:k] for k in range(0, len(payload), 7)]
    for i, data in enumerate(candidates):
        t = time.perf_counter()
        try:
            q, _ = decode_attributes(data, g.count, bits, g.scales, g.offsets, coding=1 + i % 2)
        except PayloadError:
            pass
        else:  # a rare undetected corruption must still yield in-range integers
            assert q.min() >= 0 and all(q[:, j].max() < (1 << b) for j, b in enumerate(bits))
        assert time.perf_counter() - t < 2.0


def test_coder_beats_order0_on_synthetic_data():
    g = synthetic_quantized(5000, 768, 512, seed=8)
    payload = _roundtrip(g)
    coded = 8 * len(payload) / g.count
    q = np.asarray(g.q, np.int64)
    order0 = 0.0
    for j in range(8):
        p = np.bincount(q[:, j]) / g.count
        p = p[p > 0]
        order0 -= float((p * np.log2(p)).sum())
    assert coded < 52.0
    assert coded < order0 - 8.0  # canonical order + prediction pay off, headers included


def test_se_run_kernel_matches_single_reads_and_rejects_bad_codes():
    rng = np.random.default_rng(5)
    svals = rng.integers(-3000, 3000, 300)
    w = BitWriter()
    for s in svals:
        w.se(int(s))
    data = BitReader(w.getvalue(), "t").array
    out = np.empty(301, np.int64)
    assert token_kernels.se_run(data, w.nbits, 0, 300, MAX_UE_PREFIX, out) == w.nbits
    assert out[:300].tolist() == [int(s) for s in svals]
    r = BitReader(w.getvalue(), "t")
    assert [r.se() for _ in range(300)] == out[:300].tolist()
    # one value more than the stream holds; 40 zero bits (no valid exp-Golomb code)
    assert token_kernels.se_run(data, 8 * (data.size - READ_PAD), 0, 301, MAX_UE_PREFIX, out) == token_kernels.OVERRUN
    zeros = BitReader(bytes(5) + b"\xff", "t").array
    assert token_kernels.se_run(zeros, 48, 0, 1, MAX_UE_PREFIX, out) == token_kernels.TOO_LONG


def test_raw_bits_at_stream_end():
    """Tokens whose raw bits end exactly at the stream's end decode; one bit more overruns."""
    w = BitWriter()
    w.u(5, 3)
    tokens, raw, nbits = hybrid.tokenize(np.array([1, 0, 7, 6], np.uint64), 1, 0)  # raw bits 0, 0, 2, 2
    w.many(raw, nbits)
    data = BitReader(w.getvalue(), "t").array
    out = np.empty(4, np.uint64)
    size = 3 + int(nbits.sum())
    assert token_kernels.tokens_to_values(tokens.astype(np.int32), 1, 0, data, size, 3, out) == size
    assert out.tolist() == [1, 0, 7, 6]
    assert token_kernels.tokens_to_values(tokens.astype(np.int32), 1, 0, data, size - 1, 3, out) \
        == token_kernels.OVERRUN


def _side_stream_of(a_levels, a_config=None, coding=1):
    """A side stream (payload coding ``coding``) for the 7 streams: each with the default
    configuration and a single-token histogram, except stream a (configuration ``a_config``,
    histogram levels ``a_levels`` for each of its contexts)."""
    from gipp_codec.entropy.gaussian_coder import _write_config
    from gipp_codec.entropy.streams import STREAM_ORDER, StreamConfig

    w = BitWriter()
    for channel in STREAM_ORDER:
        cfg = a_config if (channel == 2 and a_config is not None) else StreamConfig(channel)
        _write_config(w, cfg, coding)
        levels = a_levels if channel == 2 else [0]
        for _ in range(cfg.contexts):
            w.ue(len(levels) - 1)
            if len(levels) >= 2:
                prev = 0
                for e in levels:
                    w.se(int(e) - prev)
                    prev = int(e)
    return w.getvalue()


@pytest.mark.parametrize("coding", [1, 2])
def test_side_stream_reader_configs_counts_and_errors(coding):
    from gipp_codec.entropy.models import MAX_LEVEL
    from gipp_codec.entropy.side_stream import read_side_stream as read_n
    from gipp_codec.entropy.streams import PRED_CONST, StreamConfig

    def read_side_stream(reader, bits):
        return read_n(reader, bits, 100, coding)

    def _side_stream(a_levels, a_config=None):
        return _side_stream_of(a_levels, a_config, coding)

    bits = (12, 12, 10, 10, 10, 6, 6, 6)
    levels = [0, 3, 1, 47, 0, 12]
    streams = read_side_stream(BitReader(_side_stream(levels), "side"), bits)
    assert [cfg.channel for cfg, _, _ in streams] == [-1, 2, 4, 3, 6, 5, 7]
    cfg_a, hists_a, _ = streams[1]
    assert (cfg_a.k, cfg_a.m, cfg_a.thresholds) == (4, 1, ())
    assert [h.tolist() for h in hists_a] == [level_count(np.array(levels)).tolist()]
    assert [h.tolist() for h in streams[2][1]] == [[0]]
    cfg = StreamConfig(2, pred=PRED_CONST, pred_param=700, ctx_source=0, thresholds=(5, 900), k=3, m=2)
    cfg_a, hists_a, side_bits = read_side_stream(BitReader(_side_stream(levels, cfg), "side"), bits)[1]
    assert (cfg_a.pred, cfg_a.pred_param, cfg_a.ctx_source, cfg_a.thresholds, cfg_a.k, cfg_a.m) \
        == (PRED_CONST, 700, 0, (5, 900), 3, 2)
    assert len(hists_a) == 3 and side_bits > 0
    for bad, match in (([2, MAX_LEVEL + 1, 0], "outside"), ([3, -4], "outside"), ([0, 0, 0], "all counts zero"),
                       (list(range(1, 30)), "29 tokens, at most 28 possible")):
        with pytest.raises(PayloadError, match=f"stream a: .*{match}"):
            read_side_stream(BitReader(_side_stream(bad), "side"), bits)
    for cfg, match in ((StreamConfig(2, pred=PRED_CONST, pred_param=1024), "constant predictor 1024 exceeds 1023"),
                       (StreamConfig(2, pred=3, pred_param=4), "source channel 4 is not an earlier"),
                       (StreamConfig(2, ctx_source=4, thresholds=(1,)), "context source channel 4"),
                       (StreamConfig(2, ctx_source=1, thresholds=(4096,)), "threshold 4096 exceeds 4095"),
                       (StreamConfig(2, k=5, m=5), "k=5, m=5 invalid")):
        with pytest.raises(PayloadError, match=match):
            read_side_stream(BitReader(_side_stream(levels, cfg), "side"), bits)
    with pytest.raises(PayloadError, match="side stream overrun"):
        read_side_stream(BitReader(_side_stream(levels)[:2], "side"), bits)


def test_side_stream_reader_coding_2_context_sources():
    """Coding 2's derived context sources: cells (with its shift g) and a+c are read back;
    a shift above bits_position, a+c before c is decoded, an unknown source and a cells
    threshold above N are rejected."""
    from gipp_codec.entropy.side_stream import read_side_stream
    from gipp_codec.entropy.streams import CTX_AREA, CTX_CELLS, StreamConfig

    bits = (12, 12, 10, 10, 10, 6, 6, 6)
    levels = [0, 3, 1, 47, 0, 12]
    cfg = StreamConfig(2, ctx_source=CTX_CELLS, ctx_param=5, thresholds=(2, 100))
    got = read_side_stream(BitReader(_side_stream_of(levels, cfg, 2), "side"), bits, 100, 2)[1][0]
    assert (got.ctx_source, got.ctx_param, got.thresholds) == (CTX_CELLS, 5, (2, 100))
    for cfg, match in ((StreamConfig(2, ctx_source=CTX_CELLS, ctx_param=13, thresholds=(1,)),
                        "cell shift g=13 exceeds bits_position 12"),
                       (StreamConfig(2, ctx_source=CTX_CELLS, ctx_param=4, thresholds=(101,)), "threshold 101 exceeds 100"),
                       (StreamConfig(2, ctx_source=CTX_AREA, thresholds=(7,)), "needs a and c decoded first"),
                       (StreamConfig(2, ctx_source=12, thresholds=(7,)), "not a known context source")):
        with pytest.raises(PayloadError, match=match):
            read_side_stream(BitReader(_side_stream_of(levels, cfg, 2), "side"), bits, 100, 2)


def test_decoder_kernels_agree_with_the_encoder_rules():
    """The numba copies of two encoder-side rules give the same answers: the context rule
    (contexts_of) and the largest token of a stream (hybrid.max_token)."""
    from gipp_codec.entropy import hybrid, token_kernels
    from gipp_codec.entropy.gaussian_coder import contexts_of
    from gipp_codec.entropy.side_stream import _max_token

    rng = np.random.default_rng(11)
    src = rng.integers(0, 1024, 2000).astype(np.int64)
    for thresholds in ((1,), (300, 500, 700), tuple(range(5, 1000, 70))):
        ctx = np.empty(src.size, np.int64)
        sizes = np.empty(len(thresholds) + 1, np.int64)
        token_kernels.contexts_and_sizes(src, np.array(thresholds, np.int64), ctx, sizes)
        want = contexts_of(src, thresholds)
        assert ctx.tolist() == want.tolist()
        assert sizes.tolist() == np.bincount(want, minlength=len(thresholds) + 1).tolist()
    for k in range(0, hybrid.MAX_SPLIT + 1):
        for m in range(0, min(k, hybrid.MAX_MANTISSA) + 1):
            for u_max in (0, 1, 63, 1023, 2046, (1 << 24) - 1, (1 << 32) - 1):
                assert _max_token(k, m, u_max) == hybrid.max_token(k, m, u_max)


def test_stream_contexts_kernel_matches_feature_then_thresholds():
    """The decoder's fused kernel gives the contexts of context_feature + contexts_and_sizes
    for every kind of source, and hands over (writing nothing) when the cells table would
    exceed its bound."""
    from gipp_codec.entropy.streams import CTX_AREA, CTX_CELLS, context_feature

    rng = np.random.default_rng(11)
    for n, bits in ((700, 12), (1, 12), (300, 16)):
        q = rng.integers(0, 1 << bits, (8, n)).astype(np.int64)  # channel-major, as decoded
        q[0, : n // 2] = q[0, 0]  # a crowded column
        for source, param in ((2, 0), (5, 0), (CTX_AREA, 0), (CTX_CELLS, 4), (CTX_CELLS, 9), (CTX_CELLS, bits)):
            feature = context_feature(source, param, q.__getitem__)
            thresholds = np.unique(rng.choice(feature, 3))
            want_ctx, want_sizes = np.empty(n, np.int64), np.empty(thresholds.size + 1, np.int64)
            token_kernels.contexts_and_sizes(feature, thresholds, want_ctx, want_sizes)
            ctx, sizes = np.full(n, -7, np.int64), np.full(thresholds.size + 1, -7, np.int64)
            if token_kernels.stream_contexts(source, param, q, thresholds, 1 << 20, ctx, sizes):
                assert source == CTX_CELLS and (ctx == -7).all() and (sizes == -7).all()
                continue
            np.testing.assert_array_equal(ctx, want_ctx)
            np.testing.assert_array_equal(sizes, want_sizes)
    # a table above max(dense_max, 4 N): nothing written, the caller sorts instead
    q = rng.integers(0, 1 << 12, (8, 50)).astype(np.int64)
    ctx, sizes = np.full(50, -7, np.int64), np.full(2, -7, np.int64)
    assert token_kernels.stream_contexts(CTX_CELLS, 2, q, np.array([3], np.int64), 0, ctx, sizes) \
        == token_kernels.NEEDS_SPARSE_CELLS
    assert (ctx == -7).all() and (sizes == -7).all()


def test_streams_sharing_a_context_source_decode_with_their_own_thresholds(monkeypatch):
    """The decoder computes a stream's contexts once per (source, parameter, thresholds):
    streams with the same source but other thresholds get their own contexts, streams with
    all three equal share them, and every stream still decodes to the encoder's values."""
    from gipp_codec.entropy import gaussian_coder as gc
    from gipp_codec.format.constants import CH_A, CH_BLUE, CH_C, CH_GREEN, CH_RED, CTX_CELLS

    forced = {CH_A: (CTX_CELLS, 3, (2,)), CH_C: (CTX_CELLS, 3, (1, 4)),  # same cells, other thresholds
              CH_RED: (CH_GREEN, 0, (20, 40)), CH_BLUE: (CH_GREEN, 0, (20, 40))}  # on green, same thresholds
    choose = gc._choose_config

    def choose_forced(channel, *args):
        cfg = choose(channel, *args)
        if channel in forced:
            cfg.ctx_source, cfg.ctx_param, cfg.thresholds = forced[channel]
        return cfg

    monkeypatch.setattr(gc, "_choose_config", choose_forced)
    g = synthetic_quantized(2000, 513, 257, seed=9)
    bits = g.bits.per_channel()
    payload, q_canon, report = encode_attributes(g.q, bits, g.scales, g.offsets, coding=2)
    assert [report[name].config["thresholds"] for name in ("a", "c", "red", "blue")] == [[2], [1, 4], [20, 40], [20, 40]]
    computed = []
    fused = token_kernels.stream_contexts
    monkeypatch.setattr(token_kernels, "stream_contexts", lambda *a: computed.append(a[0]) or fused(*a))
    q, _ = decode_attributes(payload, g.count, bits, g.scales, g.offsets, coding=2)
    np.testing.assert_array_equal(q, q_canon)
    assert computed.count(CTX_CELLS) == 2 and computed.count(CH_GREEN) == 1


def test_decoder_sorts_cells_when_the_table_would_be_too_large(monkeypatch):
    """The decoder's fallback for a cells table above its bound gives the same Gaussians."""
    from gipp_codec.entropy.streams import CTX_CELLS

    g = synthetic_quantized(3000, 513, 257, seed=4)
    bits = g.bits.per_channel()
    payload, q_canon, report = encode_attributes(g.q, bits, g.scales, g.offsets, coding=2)
    assert any(str(report[c].config.get("context_source")).startswith("cells") for c in ("a", "c", "b"))
    fused = token_kernels.stream_contexts
    calls = []

    def refuse_cells(source, *args):
        calls.append(source)
        return token_kernels.NEEDS_SPARSE_CELLS if source == CTX_CELLS else fused(source, *args)

    monkeypatch.setattr(token_kernels, "stream_contexts", refuse_cells)
    q, _ = decode_attributes(payload, g.count, bits, g.scales, g.offsets, coding=2)
    assert CTX_CELLS in calls
    np.testing.assert_array_equal(q, q_canon)


def test_cell_counts_match_a_brute_force_count_on_both_paths(monkeypatch):
    """CTX_CELLS: the dense-table kernel and the sorting path (used when the table would be
    large, e.g. g = 0 at 16-bit positions) both count the Gaussians in the 3x3 cells."""
    import gipp_codec.entropy.streams as streams

    rng = np.random.default_rng(3)
    for bits, g, n in ((12, 5, 500), (12, 0, 300), (16, 0, 200), (16, 9, 200), (3, 0, 40), (12, 12, 5), (8, 2, 1)):
        qx = rng.integers(0, 1 << bits, n)
        qy = rng.integers(0, 1 << bits, n)
        qx[: n // 2] = (qx[0] + rng.integers(0, 3 << g, n // 2)) % (1 << bits)  # a crowded strip
        cx, cy = qx >> g, qy >> g
        brute = ((np.abs(cx[:, None] - cx[None, :]) <= 1) & (np.abs(cy[:, None] - cy[None, :]) <= 1)).sum(1)
        np.testing.assert_array_equal(streams.cell_counts(qx, qy, g), brute)
        with monkeypatch.context() as m:
            m.setattr(streams, "DENSE_CELLS_MAX", 0)  # force the sorting path where 4 N allows it
            if (int(cx.max()) + 3) * (int(cy.max()) + 3) > 4 * n:
                np.testing.assert_array_equal(streams.cell_counts(qx, qy, g), brute)
