"""Payload coding 3 (format 1.4): channel b holds the correlation rho and b = rho sqrt(a c)."""

import math
import os
import sys

import numpy as np
import pytest

from gipp_codec.decoder import decode
from gipp_codec.errors import ConfigError, HeaderError
from gipp_codec.format import constants as K
from gipp_codec.format import parse_gimg, write_gimg
from gipp_codec.format.container import build_container
from gipp_codec.format.header import header_from_gaussians, pack_header
from gipp_codec.format.model import BitDepths, FloatGaussians, QuantizedGaussians
from gipp_codec.format.synthetic import synthetic_correlation, synthetic_quantized
from gipp_codec.quant.dequant import dequantize, dequantize_rows

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))


def _correlation_gaussians(n=400, w=64, h=48, reach=0.95, seed=3, bits=BitDepths(12, 7, 6)):
    """Synthetic quantized Gaussians whose b channel holds rho on a grid over [-reach, reach]."""
    return synthetic_correlation(n, w, h, bits, seed, reach)


def test_round_trip_is_coding_3_at_minor_4():
    g = _correlation_gaussians()
    data = write_gimg(g, render_convention=2)
    assert data[9] == 4  # minor: the first version with payload coding 3
    parsed = parse_gimg(data)
    assert parsed.header["payload_coding"] == K.PAYLOAD_CODING_CORRELATION
    assert parsed.gaussians.correlation
    assert sorted(map(tuple, parsed.gaussians.q.tolist())) == sorted(map(tuple, g.q.tolist()))
    # a file without correlation keeps coding 2 and its minor
    plain = parse_gimg(write_gimg(synthetic_quantized(50, 32, 24, seed=1), render_convention=2))
    assert plain.header["payload_coding"] == 2 and not plain.gaussians.correlation


def test_dequantized_b_is_rho_times_the_root_of_a_c():
    parsed = parse_gimg(write_gimg(_correlation_gaussians(), render_convention=2))
    g = parsed.gaussians
    _, covs, _ = dequantize(g)  # [N, 3]
    rows = dequantize_rows(g.q, g.scales, g.offsets, correlation=True)  # [N, 8]
    assert np.array_equal(covs, rows[:, 2:5])
    # the spec's statement, one Gaussian at a time in Python's binary64
    s, o = g.scales.astype(np.float64), g.offsets.astype(np.float64)
    for i in range(0, g.count, 37):
        value = [float(np.float32(float(g.q[i, j]) * s[j] + o[j])) for j in range(8)]
        a = float(np.float32(math.exp(value[2])))
        c = float(np.float32(math.exp(value[4])))
        b = float(np.float32(value[3] * math.sqrt(a * c)))
        assert (covs[i, 0], covs[i, 1], covs[i, 2]) == (a, b, c)
        assert abs(b) < math.sqrt(a * c)  # |rho| < 1: every Gaussian stays valid
    # without the correlation flag the same integers mean b itself
    plain = dequantize_rows(g.q, g.scales, g.offsets)
    assert not np.array_equal(plain[:, 3], rows[:, 3])


def test_decode_equals_the_float_file_of_the_same_gaussians():
    data = write_gimg(_correlation_gaussians(), render_convention=2)
    means, covs, colors = dequantize(parse_gimg(data).gaussians)
    floats = write_gimg(FloatGaussians(64, 48, means, covs, colors), render_convention=2)
    assert np.array_equal(decode(data), decode(floats))


def test_writer_refuses_a_coding_that_cannot_carry_the_gaussians():
    with pytest.raises(ConfigError, match="coding 3"):
        write_gimg(_correlation_gaussians(), payload_coding=1)
    with pytest.raises(ConfigError, match="coding 3"):
        write_gimg(synthetic_quantized(20, 16, 16, seed=2), payload_coding=3)


def test_correlation_range_beyond_one_is_refused():
    with pytest.raises(ConfigError, match="correlation range"):
        write_gimg(_correlation_gaussians(reach=1.25))
    g = _correlation_gaussians(reach=1.0)  # the grid's ends are rho = +-1: allowed (such a Gaussian is invalid)
    parsed = parse_gimg(write_gimg(g))
    assert parsed.gaussians.correlation
    # a header with b's scale doubled: the range reaches past 1, a header error on reading
    head = header_from_gaussians(_correlation_gaussians())
    head["scales"] = head["scales"].copy()
    head["scales"][K.CH_B] *= 2
    chunks = [(K.CHUNK_HEAD, pack_header(head)), (K.CHUNK_GAUS, b""), (K.CHUNK_END, b"")]
    with pytest.raises(HeaderError, match="correlation range"):
        parse_gimg(build_container(chunks, minor=4))


def test_recode_refuses_coding_3():
    from recode import recode

    with pytest.raises(SystemExit, match="coding 3"):
        recode(write_gimg(_correlation_gaussians()), 2)
