"""Entropy coding: the spec's ANS arithmetic vs constriction, tokens, round trips, robustness, gains."""

import sys
import time
from pathlib import Path

import constriction
import numpy as np
import pytest

from gipp_codec.entropy import hybrid
from gipp_codec.entropy.bitio import BitReader, BitWriter, se_length, ue_length
from gipp_codec.entropy.gaussian_coder import (
    canonical_order,
    decode_attributes,
    encode_attributes,
    morton_decode,
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
    assert np.array_equal(hybrid.raw_bit_counts(tokens, k, m), nbits)
    assert np.array_equal(hybrid.detokenize(tokens, raw, k, m), u)
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
    assert np.array_equal(r.many(nb), many)
    r.finish()
    with pytest.raises(PayloadError):
        r.u(9)


def test_morton_roundtrip_and_order():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 2**16, 1000), rng.integers(0, 2**16, 1000)
    m = morton_encode(x, y)
    dx, dy = morton_decode(m)
    assert np.array_equal(dx, x) and np.array_equal(dy, y)
    assert int(morton_encode(np.array([1]), np.array([0]))[0]) == 1
    assert int(morton_encode(np.array([0]), np.array([1]))[0]) == 2


def _roundtrip(g):
    bits = g.bits.per_channel()
    payload, q_canon, _ = encode_attributes(g.q, bits, g.scales, g.offsets)
    q, _ = decode_attributes(payload, g.count, bits, g.scales, g.offsets)
    np.testing.assert_array_equal(q, q_canon)
    q0 = np.asarray(g.q, np.int64)
    np.testing.assert_array_equal(q_canon, q0[canonical_order(q0)])
    return payload


@pytest.mark.parametrize("bits", [BitDepths(), BitDepths(1, 1, 1), BitDepths(16, 16, 16), BitDepths(16, 2, 9)])
def test_attributes_roundtrip(bits):
    for n in (1, 2, 17, 700):
        _roundtrip(synthetic_quantized(n, 97, 61, bits, seed=n))


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
    for data in candidates:
        t = time.perf_counter()
        try:
            q, _ = decode_attributes(data, g.count, bits, g.scales, g.offsets)
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


def test_bitreader_se_run_matches_single_reads_and_rejects_bad_codes():
    rng = np.random.default_rng(5)
    svals = rng.integers(-3000, 3000, 300)
    w = BitWriter()
    for s in svals:
        w.se(int(s))
    data = w.getvalue()
    assert BitReader(data, "t").se_run(300) == [int(s) for s in svals]
    r = BitReader(data, "t")
    with pytest.raises(PayloadError):  # one value more than the stream holds
        r.se_run(301)
    with pytest.raises(PayloadError, match="too long"):  # 40 zero bits: no valid exp-Golomb code
        BitReader(bytes(5) + b"\xff", "t").se_run(1)


def test_bitreader_many_at_stream_end():
    w = BitWriter()
    w.u(5, 3)
    w.many(np.array([1, 0, 3]), np.array([1, 0, 2]))
    r = BitReader(w.getvalue(), "t")
    assert r.u(3) == 5
    assert r.many(np.array([1, 0, 2])).tolist() == [1, 0, 3]
    assert r.many(np.array([0, 0])).tolist() == [0, 0]  # zero-width reads at the very end
    with pytest.raises(PayloadError):
        r.many(np.array([8]))


def _histogram_bits(levels):
    w = BitWriter()
    w.ue(len(levels) - 1)
    prev = 0
    for e in levels:
        w.se(int(e) - prev)
        prev = int(e)
    return w.getvalue()


def test_histogram_reader_counts_and_errors():
    from gipp_codec.entropy.gaussian_coder import _read_histogram
    from gipp_codec.entropy.models import MAX_LEVEL

    levels = [0, 3, 1, 47, 0, 12]
    counts = _read_histogram(BitReader(_histogram_bits(levels), "side"), 64, "a")
    assert counts.tolist() == level_count(np.array(levels)).tolist()
    for bad, match in (([2, MAX_LEVEL + 1, 0], "outside"), ([3, -4], "outside"), ([0, 0, 0], "all counts zero")):
        with pytest.raises(PayloadError, match=match):
            _read_histogram(BitReader(_histogram_bits(bad), "side"), 64, "a")
    with pytest.raises(PayloadError, match="at most"):
        _read_histogram(BitReader(_histogram_bits(levels), "side"), 5, "a")
    with pytest.raises(PayloadError, match="overrun"):
        _read_histogram(BitReader(_histogram_bits(levels)[:2], "side"), 64, "a")
