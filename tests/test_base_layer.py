"""The base layer (format 1.3, spec "BASE chunk"): coding, upsampling, container, decoder, encoder."""

import math

import numpy as np
import pytest

from gipp_codec import errors
from gipp_codec.decoder import decode, decode_float, read_info, render_parsed_uint8
from gipp_codec.encoder import encode_with_report
from gipp_codec.fit.config import FitConfig, QATConfig
from gipp_codec.format import build_container, parse_gimg, write_gimg
from gipp_codec.format import constants as K
from gipp_codec.format.base_layer import (
    BaseLayer, base_from_image, decode_base_payload, encode_base_payload, grid_shape, upsample,
)
from gipp_codec.format.synthetic import synthetic_quantized
from gipp_codec.render.convention import to_uint8


def _random_base(width, height, f, bits, seed=0):
    gh, gw = grid_shape(width, height, f)
    rng = np.random.default_rng(seed)
    return BaseLayer(f, bits, rng.integers(0, 1 << bits, (gh, gw, 3)).astype(np.uint8))


@pytest.mark.parametrize("width,height,f,bits", [(1, 1, 3, 8), (7, 3, 3, 1), (100, 37, 4, 6), (513, 257, 6, 5)])
def test_payload_round_trip(width, height, f, bits):
    base = _random_base(width, height, f, bits, seed=width)
    payload = encode_base_payload(base)
    back = decode_base_payload(payload, width, height)
    assert (back.factor_log2, back.bits) == (f, bits)
    assert np.array_equal(back.samples, base.samples)


def test_smooth_grids_code_small():
    """A smooth grid's residuals from the MED prediction are small: far fewer bits than raw samples."""
    y, x = np.mgrid[0:8, 0:12]
    ramp = np.stack([x * 4, y * 5, x + y], axis=-1).astype(np.uint8)  # [8, 12, 3], within 6 bits
    payload = encode_base_payload(BaseLayer(6, 6, ramp))
    assert 8 * (len(payload) - 3) < 0.5 * 6 * ramp.size
    assert np.array_equal(decode_base_payload(payload, 768, 512).samples, ramp)


def test_block_means_of_an_image():
    img = np.zeros((20, 30, 3), np.uint8)
    img[:, 16:] = 255  # the right half of the blocks (F = 16) white
    base = base_from_image(img, 4, 8)
    assert base.samples.shape == (2, 2, 3)
    assert np.all(base.samples[:, 0] == 0)
    assert np.all(base.samples[:, 1] == 255)  # a block cut by the edge averages the pixels it holds


def _upsample_by_formula(base, width, height):
    """The spec's two passes, pixel by pixel, in Python floats (binary64)."""
    v = base.values()
    gh, gw = v.shape[:2]
    f = base.factor

    def axis(p, n):
        u = (p + 0.5) / f - 0.5
        i0 = math.floor(u)
        t = u - i0
        if i0 < 0 or i0 >= n - 1:
            i0, t = min(max(i0, 0), n - 1), 0.0
        return i0, min(i0 + 1, n - 1), t

    out = np.zeros((height, width, 3), np.float32)
    for x in range(width):
        j0, j1, t = axis(x, gw)
        h = np.float32((1.0 - t) * v[:, j0] + t * v[:, j1])  # [gh, 3]
        for yy in range(height):
            i0, i1, s = axis(yy, gh)
            out[yy, x] = np.float32((1.0 - s) * h[i0].astype(np.float64) + s * h[i1].astype(np.float64))
    return out


def test_upsampling_follows_the_spec():
    base = _random_base(37, 21, 3, 6, seed=3)  # a 3x5 grid, the last blocks cut by the edges
    up = upsample(base, 37, 21)
    assert up.dtype == np.float32 and up.shape == (21, 37, 3)
    assert np.array_equal(up, _upsample_by_formula(base, 37, 21))
    const = BaseLayer(4, 5, np.full((3, 4, 3), 17, np.uint8))
    assert np.all(upsample(const, 50, 40) == np.float32(17 / 31))
    v = base.values()
    assert up.min() >= np.float32(v.min()) and up.max() <= np.float32(v.max())


def test_container_with_a_base_is_version_1_3_and_decodes_with_it():
    g = synthetic_quantized(60, 40, 24, seed=4)
    base = _random_base(40, 24, 3, 6, seed=4)
    plain, with_base = write_gimg(g), write_gimg(g, base=base)
    assert plain[9] == 2 and with_base[9] == 3
    parsed = parse_gimg(with_base)
    assert np.array_equal(parsed.base.samples, base.samples)
    assert parsed.bits["base"] == 8 * len(encode_base_payload(base))
    assert parsed.bits["total_bits"] == 8 * len(with_base)
    # the decoder adds the base before clamping, in the uint8 kernel as in the float path
    expected = decode_float(plain) + upsample(base, 40, 24)
    assert np.array_equal(decode_float(with_base), expected)
    assert np.array_equal(decode(with_base), to_uint8(expected))
    assert np.array_equal(render_parsed_uint8(parsed), to_uint8(expected))


def test_a_base_alone():
    g = synthetic_quantized(0, 20, 10, seed=1)
    base = _random_base(20, 10, 3, 4, seed=1)
    assert np.array_equal(decode(write_gimg(g, base=base)), to_uint8(upsample(base, 20, 10)))


def test_base_chunk_errors():
    g = synthetic_quantized(10, 16, 16, seed=2)
    base = _random_base(16, 16, 3, 6, seed=2)
    with pytest.raises(errors.ConfigError, match="base grid"):
        write_gimg(g, base=_random_base(17, 16, 3, 6))
    with pytest.raises(errors.ConfigError, match="MAX_BASE_CELLS"):
        write_gimg(synthetic_quantized(0, 4096, 4096, seed=3), base=BaseLayer(3, 6, np.zeros((512, 512, 3), np.uint8)))
    data = write_gimg(g, base=base)
    chunks = []
    pos = K.PREAMBLE_SIZE
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "little")
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += K.CHUNK_OVERHEAD + length
    assert [t for t, _ in chunks] == [b"HEAD", b"BASE", b"GAUS", b"DONE"]
    head, bchunk, gaus, done = chunks
    with pytest.raises(errors.ChunkError, match="before them"):
        parse_gimg(build_container([head, gaus, bchunk, done], minor=3))
    with pytest.raises(errors.ChunkError, match="at most one"):
        parse_gimg(build_container([head, bchunk, bchunk, gaus, done], minor=3))
    payload = bchunk[1]
    for bad, match in ((bytes([2]) + payload[1:], "factor_log2"), (payload[:1] + bytes([9]) + payload[2:], "sample_bits"),
                       (payload[:2] + bytes([8]) + payload[3:], "rice_k"), (payload[:2], "at least 3"),
                       (payload + b"\xff", "unused bits"), (bytes([3, 1, 0, 0b01000000, 0, 0]), "outside 0..1"),
                       (bytes([3, 6, 0]) + bytes(25) + b"\xff", "Rice prefix")):
        with pytest.raises(errors.FormatError, match=match):
            parse_gimg(build_container([head, (b"BASE", bad), gaus, done], minor=3))


@pytest.mark.parametrize("payload,message", [
    # 2-bit samples, k = 1: "10", "010", then the third code's prefix runs off the byte
    (bytes([3, 2, 1, 0x90]), "BASE stream overrun at byte 103: need 4 more bits, 3 left"),
    # 1-bit samples, k = 1: "010" twice, then "01" and the stream ends before the raw bit
    (bytes([3, 1, 1, 0x49]), "BASE stream overrun at byte 104: need 1 more bits, 0 left"),
    (bytes([3, 1, 1, 0x48]), "BASE stream: a Rice prefix longer than 1 at byte 103"),
    (bytes([3, 1, 0, 0b01000000]), r"BASE sample \(0, 0, 0\) decodes to 2, outside 0..1"),
])
def test_base_sample_errors_name_the_place(payload, message):
    """Each way the samples' bits can be wrong, on a 1 x 1 grid at payload offset 100: the
    error and the byte it names (the spec's reading order: prefix, one bit, k bits)."""
    with pytest.raises(errors.PayloadError, match=f"^{message}$"):
        decode_base_payload(payload, 8, 8, 100)


def test_the_rule_for_the_block_side():
    q = QATConfig(base_samples_across=10)
    assert q.base_factor_log2(768, 512) == 6  # Kodak: 12 x 8 samples
    assert q.base_factor_log2(256, 256) == 5
    assert q.base_factor_log2(1, 1) == 3 and q.base_factor_log2(65535, 65535) == 10
    assert QATConfig(base_samples_across=None).base_factor_log2(768, 512) is None
    # with a budget the grid takes at most base_max_share of it at 5 bits a sample
    assert q.base_factor_log2(768, 512, 0.1 * 768 * 512) == 6  # Kodak keeps 64 down to 0.1 bpp
    assert q.base_factor_log2(768, 512, 0.05 * 768 * 512) == 7
    assert q.base_factor_log2(64, 72, 0.5 * 64 * 72) == 5  # 2 x 3 blocks: 90 bits of 2304
    assert q.base_factor_log2(1, 1, 0.5) is None  # no grid fits: no base
    many = QATConfig(base_samples_across=4000)  # the grid stays within MAX_BASE_CELLS
    assert many.base_factor_log2(4096, 4096) == 4  # F = 8 would be 512 x 512 blocks, F = 16 is 256 x 256
    for bad in (0, -1.0, float("nan"), True, "10"):
        with pytest.raises(errors.ConfigError, match="base_samples_across"):
            FitConfig().with_qat(base_samples_across=bad).validate()
        with pytest.raises(errors.ConfigError, match="base_samples_across_high_rate"):
            FitConfig().with_qat(base_samples_across_high_rate=bad).validate()


def test_a_finer_base_from_the_high_rate():
    """base_samples_across_high_rate replaces base_samples_across from high_rate_bpp up (not
    below it, nor at an unknown rate, nor without a base layer), for --bpp and for the rate
    the model gives N Gaussians."""
    q = QATConfig(base_samples_across=10, base_samples_across_high_rate=20, high_rate_bpp=2.0)
    assert [q.base_samples_across_at(b) for b in (None, 1.99, 2.0, 8.0)] == [10, 10, 20, 20]
    assert q.base_factor_log2(768, 512, bpp=1.99) == 6 and q.base_factor_log2(768, 512, bpp=2.0) == 5  # 64 / 32 px
    assert q.base_factor_log2(768, 512, 2.0 * 768 * 512, 2.0) == 5  # 24 x 16 samples: 0.7 % of the budget
    assert QATConfig(base_samples_across=None, base_samples_across_high_rate=20).base_factor_log2(768, 512, bpp=3) \
        is None
    assert QATConfig(base_samples_across_high_rate=None).base_samples_across_at(8.0) == QATConfig().base_samples_across
    # the default: 64-pixel blocks on Kodak below 1.5 bpp, 32 from 1.5 bpp (measured, BENCHMARKS.md §4)
    rates = (0.15, 1.0, 1.49, 1.5, 2.0, 3.0)
    assert [QATConfig().base_factor_log2(768, 512, b * 768 * 512, b) for b in rates] == [6, 6, 6, 5, 5, 5]
    image = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    finer = FitConfig().with_qat(base_samples_across=10, base_samples_across_high_rate=20)
    factors = {}
    for label, kwargs in (("1.4 bpp", dict(bpp=1.4)), ("1.5 bpp", dict(bpp=1.5)), ("N", dict(gaussians=3500))):
        data, _ = encode_with_report(image, iterations=4, config=finer, **kwargs)
        factors[label] = read_info(data)["base"]["factor"]
    assert factors == {"1.4 bpp": 32, "1.5 bpp": 16, "N": 16}  # 3500 Gaussians on 256 x 256: above 1.5 bpp
    with pytest.raises(errors.ConfigError, match="base_bits"):
        FitConfig().with_qat(base_bits=9).validate()
    with pytest.raises(errors.ConfigError, match="base_max_share"):
        FitConfig().with_qat(base_max_share=0.0).validate()


def test_encoder_fits_the_gaussians_over_the_base():
    """With a base layer the file carries it, the encoder's own PSNR is the decoded file's,
    and a smooth image gains from it at the same rate."""
    y, x = np.mgrid[0:48, 0:64]
    img = np.stack([x * 3, y * 4, 120 + 0 * x], axis=-1).astype(np.float64)
    img += 40 * np.sin(x / 3.0)[..., None] * (y > 24)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    # (coding 3 would make it 1.4, the binary16 grid 1.5)
    cfg = FitConfig().with_qat(base_samples_across=4, covariance_form="b", compact_grid=False)
    data, report = encode_with_report(img, gaussians=40, iterations=150, config=cfg)
    parsed = parse_gimg(data)
    assert parsed.base is not None and parsed.base.factor == 16 and data[9] == 3
    assert abs(report.psnr_encoder - report.psnr) < 0.01
    plain_data, plain = encode_with_report(img, gaussians=40, iterations=150,
                                           config=cfg.with_qat(base_samples_across=None))
    assert parse_gimg(plain_data).base is None and plain_data[9] == 2
    assert report.psnr > plain.psnr


def test_the_default_encoder_writes_a_base_and_paper_does_not():
    img = (np.random.default_rng(0).random((40, 48, 3)) * 255).astype(np.uint8)
    default, _ = encode_with_report(img, gaussians=20, iterations=20)
    assert parse_gimg(default).base is not None
    paper, _ = encode_with_report(img, gaussians=20, iterations=20, config=FitConfig.paper())
    assert parse_gimg(paper).base is None


def test_cli_no_base_and_info(tmp_path):
    import json

    from click.testing import CliRunner
    from PIL import Image

    from gipp_codec.cli import _register, cli

    _register()
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(1).random((24, 32, 3)) * 255).astype(np.uint8)).save(src)
    runner = CliRunner()
    for flags, has_base in (([], True), (["--no-base"], False)):
        out = tmp_path / f"out{len(flags)}.gimg"
        res = runner.invoke(cli, ["encode", str(src), str(out), "-n", "10", "-i", "10", *flags])
        assert res.exit_code == 0, res.output
        assert (parse_gimg(out.read_bytes()).base is not None) == has_base
        # 10 Gaussians on 32 x 24 are above 0.5 bpp: coding 3 (1.4) and the binary16 grid (1.5) by
        # default; --no-base writes 1.2
        assert parse_gimg(out.read_bytes()).version == ((1, 5) if has_base else (1, 2))
        res = runner.invoke(cli, ["info", str(out), "--json"])
        base = json.loads(res.output.strip().splitlines()[-1])["base"]
        assert (base is not None) == has_base
        if has_base:
            assert base["factor"] == 8 and base["grid"] == [3, 4] and base["sample_bits"] == 6
            text = runner.invoke(cli, ["info", str(out)]).output
            assert "base layer: 4x3 samples of 6 bits (one per 8x8 block)" in text
