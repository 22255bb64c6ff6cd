"""Payload coding 3 (format 1.4): channel b holds the correlation rho and b = rho sqrt(a c)."""

import math
import os
import sys

import numpy as np
import pytest

from gipp_codec.decoder import decode, read_info
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


def test_recode_keeps_coding_3_and_refuses_the_codings_that_cannot_carry_it():
    from recode import recode

    data = write_gimg(_correlation_gaussians())
    with pytest.raises(SystemExit, match="cannot be re-coded with coding 2"):
        recode(data, 2)
    for coding in (None, 3):  # the file's own kind: coding 3, the same bytes
        out, row = recode(data, coding)
        assert out == data and row["coding_after"] == 3 and row["identical"]
    mode0, _ = recode(data, None, binary32_grid=True)  # for decoders older than 1.5
    assert parse_gimg(mode0).header["attribute_mode"] == 0
    assert np.array_equal(parse_gimg(mode0).gaussians.q, parse_gimg(data).gaussians.q)
    with pytest.raises(SystemExit, match="coding 3 is for files whose b is a correlation"):
        recode(write_gimg(synthetic_quantized(40, 32, 24, seed=1)), 3)


# --- the encoder's side (QATConfig.covariance_form = "correlation") ------------------------

def _render_rows(rows, width, height):  # [H, W, 3] float32, unclamped
    import torch

    from gipp_codec.render import get_renderer

    parts = (torch.from_numpy(np.ascontiguousarray(rows[:, i:j])) for i, j in ((0, 2), (2, 5), (5, 8)))
    with torch.no_grad():
        return get_renderer("cpu", torch.device("cpu"))(*parts, height, width).numpy()


def test_the_quantizer_reproduces_the_decoder_and_keeps_rho_inside_its_reach():
    import torch

    from gipp_codec.quant.lsq import CORRELATION_REACH, LSQPlus, dequantize_reference

    f = synthetic_correlation(300, 48, 32, BitDepths(12, 7, 6), seed=5, reach=0.95)
    rows = torch.from_numpy(dequantize_rows(f.q, f.scales, f.offsets, correlation=True))  # [N, 8] float32
    rows[:7, 3] = torch.sqrt(rows[:7, 2] * rows[:7, 4]) * 0.99999  # nearly degenerate: |rho| past the reach
    quant = LSQPlus((12, 12, 7, 7, 7, 6, 6, 6), psd_safe=True, correlation=True)
    assert not quant.psd_safe and quant._fused(rows)  # no PSD shifts; the CPU kernels serve it
    quant.init_minmax(rows)
    scales, offsets = quant.export()
    lo, hi = float(offsets[3]), float(offsets[3]) + 127 * float(scales[3])
    assert -CORRELATION_REACH - 1e-6 <= lo and hi <= CORRELATION_REACH + 1e-6
    k = -lo / float(scales[3])
    assert abs(k - round(k)) < 1e-4  # rho = 0 lies on the grid
    out = quant(rows).detach().numpy()
    q = quant.quantize(rows)
    expected = dequantize_reference(q, scales, offsets, correlation=True)
    assert np.array_equal(out, expected)
    assert np.array_equal(quant.forward_composed(rows).detach().numpy(), expected)  # the torch definition too
    assert np.array_equal(expected, dequantize_rows(q, scales, offsets, correlation=True))
    b, a, c = out[:, 3].astype(np.float64), out[:, 2].astype(np.float64), out[:, 4].astype(np.float64)
    assert np.all(b * b < a * c)  # every covariance valid


def test_rhos_grid_holding_zero_stays_inside_its_reach():
    """A grid as wide as +-CORRELATION_REACH cannot always put 0 on itself inside that range
    (at 0.15 bpp three Kodak files' grids reached -1.0015 and the writer refused them): the
    step shrinks about 0 instead."""
    import torch

    from gipp_codec.quant.lsq import CORRELATION_REACH, LSQPlus

    quant = LSQPlus((12, 12, 7, 7, 7, 6, 6, 6), correlation=True)
    rng = np.random.default_rng(4)
    for _ in range(200):
        lo, hi = -CORRELATION_REACH + rng.uniform(0, 0.003), CORRELATION_REACH - rng.uniform(0, 0.003)
        with torch.no_grad():
            quant.scale[3], quant.offset[3] = (hi - lo) / 127, lo
        quant.constrain_()
        s, o = float(quant.scale.detach()[3]), float(quant.offset.detach()[3])
        top = float(np.float32(127 * s + o))
        assert -CORRELATION_REACH - 1e-6 <= o and top <= CORRELATION_REACH + 1e-6
        assert abs(-o / s - round(-o / s)) < 1e-3  # 0 still on the grid
    with torch.no_grad():  # a grid inside is left bit for bit as it is
        quant.scale[3], quant.offset[3] = 0.01, -0.6
    quant.constrain_()
    before = (float(quant.scale.detach()[3]), float(quant.offset.detach()[3]))
    quant._b_grid_inside_(CORRELATION_REACH)
    assert (float(quant.scale.detach()[3]), float(quant.offset.detach()[3])) == before
    assert abs(before[0] - 0.01) < 1e-8


def test_the_rate_terms_cpu_kernel_prices_rho_as_autograd_does():
    import torch

    from gipp_codec.fit.rate_proxy import add_rate_gradients, attribute_bits
    from gipp_codec.quant.lsq import LSQPlus

    f = synthetic_correlation(200, 40, 30, BitDepths(12, 7, 6), seed=6)
    rows = dequantize_rows(f.q, f.scales, f.offsets, correlation=True)  # [N, 8]
    # off the grid (on it, an ulp between libm's log and torch's may move a value to the next cell)
    rows = rows * (1.0 + 1e-3 * np.random.default_rng(6).standard_normal(rows.shape)).astype(np.float32)
    rows = torch.from_numpy(rows).requires_grad_(True)
    quant = LSQPlus((12, 12, 7, 7, 7, 6, 6, 6), correlation=True)
    quant.init_minmax(rows.detach())
    bits = attribute_bits(rows, quant, (2, 3, 4))
    bits.backward()
    assert torch.isfinite(rows.grad).all() and bool((rows.grad[:, 3] != 0).any())
    parts = [rows.detach()[:, 0:2].clone(), rows.detach()[:, 2:5].clone(), rows.detach()[:, 5:8].clone()]
    add_rate_gradients(parts, quant, (2, 3, 4), 1.0)
    torch.testing.assert_close(parts[1].grad, rows.grad[:, 2:5], rtol=1e-4, atol=1e-6)
    plain = LSQPlus((12, 12, 7, 7, 7, 6, 6, 6))  # pricing b itself gives another gradient of a
    plain.load_state_dict(quant.state_dict())
    other = [p.detach().clone() for p in parts]
    add_rate_gradients(other, plain, (2, 3, 4), 1.0)
    assert not torch.allclose(other[1].grad[:, 0], parts[1].grad[:, 0])


def test_the_code_search_dequantizes_and_books_rho_as_the_decoder():
    from gipp_codec.fit.code_search import _dequantize_row, removal_costs, search_codes

    g = synthetic_correlation(24, 20, 16, BitDepths(), seed=7)
    rows = dequantize_rows(g.q, g.scales, g.offsets, correlation=True)
    s = np.asarray(g.scales, np.float32).astype(np.float64)
    o = np.asarray(g.offsets, np.float32).astype(np.float64)
    out = np.empty(8)
    for k in range(g.count):
        _dequantize_row(g.q[k].astype(np.int64), s, o, out, True)
        assert np.array_equal(out.astype(np.float32), rows[k])
    target = np.clip(_render_rows(rows, 20, 16), 0.0, 1.0).astype(np.float32)
    rng = np.random.default_rng(7)
    top = (1 << np.array(g.bits.per_channel())) - 1
    start = np.clip(g.q.astype(np.int64) + rng.integers(-2, 3, g.q.shape), 0, top).astype(g.q.dtype)

    def error(q):
        image = _render_rows(dequantize_rows(q, g.scales, g.offsets, correlation=True), 20, 16)
        return float(np.sum((np.clip(image, 0.0, 1.0).astype(np.float64) - target) ** 2))

    render = _render_rows(dequantize_rows(start, g.scales, g.offsets, correlation=True), 20, 16)
    q, report = search_codes(start, g.scales, g.offsets, g.bits.per_channel(), render, target, 1, correlation=True)
    assert report.moves[0] > 0
    assert error(start) - error(q) == pytest.approx(report.gains[0], rel=1e-3, abs=1e-6)
    costs = removal_costs(start, g.scales, g.offsets, render, target, correlation=True)
    for k in (0, 5, 11):
        assert costs[k] == pytest.approx(error(np.delete(start, k, axis=0)) - error(start), rel=1e-3, abs=1e-7)


def test_an_encode_in_the_correlation_form_writes_coding_3_and_reports_its_file():
    from gipp_codec.encoder import encode_with_report
    from gipp_codec.fit.config import FitConfig

    rng = np.random.default_rng(8)
    y, x = np.mgrid[0:40, 0:48]
    image = np.stack([np.sin(x / 5.0 + y / 9.0), np.cos(x / 7.0 - y / 4.0), np.sin((x + y) / 6.0)], -1)
    image = np.clip((image * 0.4 + 0.5) * 255 + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    cfg = FitConfig().with_qat(covariance_form="correlation")
    data, report = encode_with_report(image, bpp=2.0, iterations=120, config=cfg)
    parsed = parse_gimg(data)
    assert parsed.header["payload_coding"] == K.PAYLOAD_CODING_CORRELATION and parsed.gaussians.correlation
    from spec_decode import reference_psnr

    assert report.psnr == pytest.approx(reference_psnr(data, image), abs=0.01)  # the spec's reference decoder
    with pytest.raises(Exception, match="covariance_form"):
        FitConfig().with_qat(covariance_form="angle").validate()


def test_the_covariance_form_follows_the_rate_from_correlation_from_bpp():
    """``QATConfig.covariance_form`` "auto": from ``correlation_from_bpp`` up an encode codes b
    as the correlation (payload coding 3), below it (or with no such rate, at an unknown
    rate, or for a grey image) b itself; "b" and "correlation" hold at every rate and for
    grey images; the rate must be positive."""
    from gipp_codec.encoder import encode_with_report
    from gipp_codec.fit.config import FitConfig, QATConfig

    q = QATConfig(covariance_form="auto", correlation_from_bpp=2.0)
    assert [q.covariance_form_at(r) for r in (None, 1.0, 2.0, 3.0)] == ["b", "b", "correlation", "correlation"]
    assert QATConfig(covariance_form="auto", correlation_from_bpp=None).covariance_form_at(3.0) == "b"
    assert QATConfig(covariance_form="correlation", correlation_from_bpp=2.0).covariance_form_at(0.1) == "correlation"
    assert QATConfig(covariance_form="b", correlation_from_bpp=2.0).covariance_form_at(3.0) == "b"
    assert q.covariance_form_at(3.0, grey=True) == "b"  # "auto" codes b on grey images
    assert QATConfig(covariance_form="correlation").covariance_form_at(3.0, grey=True) == "correlation"
    with pytest.raises(ConfigError, match="correlation_from_bpp"):
        FitConfig().with_qat(correlation_from_bpp=0.0).validate()
    yy, xx = np.mgrid[0:40, 0:48]
    image = np.stack([128 + 90 * np.sin(xx / 5.0), 128 + 90 * np.cos(yy / 4.0), (xx * 5 + yy * 3) % 256], -1)
    image = np.clip(image, 0, 255).astype(np.uint8)
    cfg = FitConfig().with_qat(covariance_form="auto", correlation_from_bpp=2.0)
    codings = [read_info(encode_with_report(image, bpp=bpp, iterations=40, config=cfg)[0])["header"]["payload_coding"]
               for bpp in (1.0, 3.0)]
    assert codings == [2, 3]
    grey = np.repeat(image[:, :, 1:2], 3, axis=2)  # a grey image: b at every rate
    assert read_info(encode_with_report(grey, bpp=3.0, iterations=40, config=cfg)[0])["header"]["payload_coding"] == 2
