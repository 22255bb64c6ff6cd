"""Decoding at another size than the file's (``decode(scale=, size=)``, ``gimg decode --scale/--size``)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gipp_codec.decoder import decode
from gipp_codec.errors import ConfigError
from gipp_codec.format import write_gimg
from gipp_codec.format.base_layer import base_from_image
from gipp_codec.format.model import FloatGaussians
from gipp_codec.format.synthetic import synthetic_quantized
from gipp_codec.render.rescale import output_size

W, H = 48, 32


@pytest.fixture(scope="module")
def with_base():
    """A 48 x 32 file with Gaussians and a base layer of 8-pixel blocks (a 6 x 4 grid)."""
    rng = np.random.default_rng(3)
    image = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    return write_gimg(synthetic_quantized(200, W, H, seed=4), base=base_from_image(image, 3, 6))


def _cli():
    from gipp_codec.cli import _register, cli

    _register()
    return cli


def test_the_file_size_is_the_conforming_decode(with_base):
    native = decode(with_base)
    assert np.array_equal(decode(with_base, scale=1), native)
    assert np.array_equal(decode(with_base, size=(W, H)), native)


def test_an_enlargement_by_three_samples_the_file_pixels_at_their_centres(with_base):
    """At 3x, output pixel (3i + 1, 3j + 1) is sampled at the file's pixel centre (i + 0.5,
    j + 0.5): the same value as the conforming decode there (up to a float32 rounding), which
    checks the mapping of the means, the covariances and the base layer at once."""
    native = decode(with_base).astype(int)
    big = decode(with_base, scale=3)
    assert big.shape == (3 * H, 3 * W, 3)
    assert np.abs(big[1::3, 1::3].astype(int) - native).max() <= 1
    # the pixels in between are not copies: the Gaussians are sampled, not the pixels repeated
    assert np.abs(big[0::3, 0::3].astype(int) - native).mean() > 1


def test_a_reduction_averages_the_conforming_decode(with_base):
    """Half the size: each output pixel is the mean of its 2 x 2 file pixels (within the
    rounding of the 8-bit levels)."""
    native = decode(with_base).astype(np.float64)
    half = decode(with_base, scale=0.5).astype(int)
    means = native.reshape(H // 2, 2, W // 2, 2, 3).mean(axis=(1, 3))
    assert half.shape == (H // 2, W // 2, 3)
    assert np.abs(half - means).max() <= 1


def test_each_axis_on_its_own(with_base):
    """Twice as wide and half as tall: the columns sampled at 2x, then row pairs averaged."""
    out = decode(with_base, size=(2 * W, H // 2)).astype(int)
    wide = decode(with_base, size=(2 * W, H)).astype(np.float64)
    assert out.shape == (H // 2, 2 * W, 3)
    assert np.abs(out - wide.reshape(H // 2, 2, 2 * W, 3).mean(axis=1)).max() <= 1


def test_a_grey_file_stays_grey_at_any_size():
    g = synthetic_quantized(50, 16, 12, seed=2)
    g.q[:, 5] = g.q[:, 6]
    g.q[:, 7] = g.q[:, 6]
    g.scales[5] = g.scales[7] = g.scales[6]
    g.offsets[5] = g.offsets[7] = g.offsets[6]
    data = write_gimg(g)
    for kw in ({"scale": 2.5}, {"scale": 0.3}):
        img = decode(data, **kw)
        assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 2], img[..., 1])


@pytest.mark.parametrize("kw, message", [
    ({"scale": 0}, "scale must be a positive number"),
    ({"scale": -1.0}, "scale must be a positive number"),
    ({"scale": float("nan")}, "scale must be a positive number"),
    ({"scale": True}, "scale must be a positive number"),
    ({"scale": "2"}, "scale must be a positive number"),
    ({"scale": 1e300}, "far over the format's limits"),
    ({"scale": 2000}, "96000x64000 is over the format's limits"),
    ({"size": (0, 5)}, "both sides must be at least 1"),
    ({"size": (70000, 1)}, "over the format's limits"),
    ({"size": (20000, 20000)}, "over the format's limits"),
    ({"size": "48x32"}, "size must be two integers"),
    ({"size": "12"}, "size must be two integers"),
    ({"size": (4.5, 3)}, "size must be two integers"),
    ({"scale": 2, "size": (4, 4)}, "a scale or a size, not both"),
])
def test_bad_sizes_are_config_errors(with_base, kw, message):
    with pytest.raises(ConfigError, match=message):
        decode(with_base, **kw)


def test_the_smallest_scale_gives_one_pixel(with_base):
    assert output_size(W, H, scale=1e-9) == (1, 1)
    assert decode(with_base, scale=1e-9).shape == (1, 1, 3)


def test_sides_are_rounded_halves_up():
    assert output_size(5, 3, scale=0.5) == (3, 2)
    assert output_size(7, 3, scale=2.5) == (18, 8)


def test_a_render_grid_past_the_pixel_limit_is_refused():
    """An axis enlarged while the other is reduced: a 1 x 65535 file at 65535 x 1 would be
    rendered on 65535 x 65535 pixels first; refused before any allocation."""
    g = FloatGaussians(1, 65535, means=np.array([[0.5, 100.0]], np.float32),
                       covs=np.array([[4.0, 0.0, 4.0]], np.float32), colors=np.full((1, 3), 0.5, np.float32))
    data = write_gimg(g)
    with pytest.raises(ConfigError, match="rendered on 65535x65535 pixels first"):
        decode(data, size=(65535, 1))
    assert decode(data, size=(2, 4096)).shape == (4096, 2, 3)  # both within the limit


def test_an_enlargement_past_the_render_work_limit_is_refused():
    """400 Gaussians each covering a 64 x 64 image are cheap there, but at 4096 x 4096 they
    would take 400 x 2^24 pixel visits, over that size's MAX_RENDER_WORK: refused before
    rendering."""
    n = 400
    g = FloatGaussians(64, 64, means=np.full((n, 2), 32.0, np.float32),
                       covs=np.tile(np.array([[400.0, 0.0, 400.0]], np.float32), (n, 1)),
                       colors=np.full((n, 3), 0.001, np.float32))
    data = write_gimg(g)
    assert decode(data).shape == (64, 64, 3)
    with pytest.raises(ConfigError, match="render work"):
        decode(data, size=(4096, 4096))


def test_cli_scale_and_size(tmp_path, with_base):
    src = tmp_path / "in.gimg"
    src.write_bytes(with_base)
    out = tmp_path / "out.png"
    runner = CliRunner()
    res = runner.invoke(_cli(), ["decode", str(src), str(out), "--scale", "2", "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.output.strip().splitlines()[-1])
    assert (facts["width"], facts["height"]) == (W, H)
    assert (facts["decoded_width"], facts["decoded_height"]) == (2 * W, 2 * H)
    with Image.open(out) as im:
        assert im.size == (2 * W, 2 * H)
    res = runner.invoke(_cli(), ["decode", str(src), str(out), "--size", "30x20"])
    assert res.exit_code == 0 and "30x20 from 48x32" in res.output
    with Image.open(out) as im:
        assert im.size == (30, 20)


@pytest.mark.parametrize("args, message", [
    (["--size", "30"], "--size must be WIDTHxHEIGHT"),
    (["--size", "3x²"], "--size must be WIDTHxHEIGHT"),
    (["--scale", "0"], "scale must be a positive number"),
    (["--scale", "2", "--size", "3x3"], "a scale or a size, not both"),
])
def test_cli_bad_sizes_are_one_line_and_write_nothing(tmp_path, with_base, args, message):
    src = tmp_path / "in.gimg"
    src.write_bytes(with_base)
    out = tmp_path / "out.png"
    res = CliRunner().invoke(_cli(), ["decode", str(src), str(out), *args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    assert not out.exists()


def test_the_scaled_decode_tool(tmp_path):
    """``tools/scaled_decode.py`` on a small image: every figure it reports is there and finite,
    and gimg's enlargement lands near the interpolators' (a misplaced grid would not)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import scaled_decode

    y, x = np.mgrid[0:48, 0:64]
    image = np.stack([128 + 100 * np.sin(x / 6.0), 128 + 100 * np.cos(y / 5.0), 2 * x + y], -1)
    src = tmp_path / "img.png"
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(src)
    out = tmp_path / "r.json"
    assert scaled_decode.main([str(src), "--bpp", "2.0", "--iterations", "80", "--repeats", "1",
                               "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    figures = ("psnr_gimg", "psnr_bilinear", "psnr_bicubic", "psnr_lanczos", "psnr_lanczos_uncoded",
               "seconds_gimg", "seconds_decode_lanczos")
    assert all(np.isfinite(row[k]) and row[k] > 0 for k in figures), row
    assert abs(row["psnr_gimg"] - row["psnr_lanczos"]) < 3.0, row
