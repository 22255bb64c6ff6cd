"""Grayscale input: red and blue tied to green in the fit, a grey decode, a grey PNG out."""

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gipp_codec.cli import _register, cli
from gipp_codec.decoder import decode, read_info
from gipp_codec.encoder import encode, encode_with_report
from gipp_codec.errors import GimgWarning, InputImageError
from gipp_codec.fit.api import fit_image
from gipp_codec.fit.gray import is_gray, priced_channels, tie_codes, tie_grid
from gipp_codec.output_format import encode_image, icc_color_space

_register()


def _gray(h=40, w=48) -> np.ndarray:
    """A grey test image [h, w, 3] with three equal channels: waves and an edge."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    v = 0.5 + 0.3 * np.sin(x / 6.0) * np.cos(y / 5.0) + np.where(x + 2 * y > w, 0.15, -0.15)
    v8 = np.clip(v * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(v8[:, :, None], 3, axis=2)


def _icc(space: bytes) -> bytes:
    """A stand-in ICC profile: 128 header bytes with the data colour space at 16-19."""
    head = bytearray(128)
    head[16:20] = space
    return bytes(head)


def test_is_gray_and_the_ties():
    g = _gray(6, 7)
    assert is_gray(g)
    c = g.copy()
    c[3, 4, 2] ^= 1
    assert not is_gray(c)
    q = np.arange(16, dtype=np.uint16).reshape(2, 8)  # [2, 8]
    tied = tie_codes(q)
    assert np.array_equal(tied[:, 5], q[:, 6]) and np.array_equal(tied[:, 7], q[:, 6])
    assert np.array_equal(tied[:, :5], q[:, :5]) and q[0, 5] == 5  # a copy: q unchanged
    s, o = tie_grid(np.arange(8, dtype=np.float32), -np.arange(8, dtype=np.float32))
    assert (s[5], s[7], o[5], o[7]) == (6, 6, -6, -6)
    assert priced_channels((2, 3, 4, 5, 6, 7), True) == (2, 3, 4, 6)
    assert priced_channels((2, 3, 4, 5, 6, 7), False) == (2, 3, 4, 5, 6, 7)


@pytest.fixture(scope="module")
def gray_encoded():
    img = _gray()
    data, report = encode_with_report(img, gaussians=60, iterations=300, seed=2)
    return img, data, report


def test_a_gray_image_decodes_exactly_gray(gray_encoded):
    img, data, report = gray_encoded
    out = decode(data)  # [H, W, 3]
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 2], out[..., 1])
    assert report.psnr > 24.0  # it learned the image, not a flat grey
    assert report.grey and report.summary()["grey"] is True


def test_red_and_blue_cost_no_bits_per_gaussian(gray_encoded):
    _, data, report = gray_encoded
    bits = read_info(data)["bits"]["attributes"]
    assert bits["green"] > 2 * report.gaussians  # green codes the colours
    # red and blue: only their stream configuration and one-token histograms
    assert bits["red"] < 32 and bits["blue"] < 32


def test_a_colour_image_keeps_its_channels_apart():
    img = _gray().copy()
    img[..., 0] = 255 - img[..., 0]  # red inverted: not grey
    data, report = encode_with_report(img, gaussians=60, iterations=120, seed=2)
    assert not report.grey
    out = decode(data).astype(int)
    assert np.corrcoef(out[..., 0].ravel(), out[..., 1].ravel())[0, 1] < -0.5
    assert read_info(data)["bits"]["attributes"]["red"] > 60


def test_a_float_fit_of_a_gray_image_has_gray_colours():
    res = fit_image(_gray(), 40, iterations=60, seed=1)
    assert np.array_equal(res.colors[:, 0], res.colors[:, 1]) and np.array_equal(res.colors[:, 2], res.colors[:, 1])


def test_a_gray_image_is_written_with_one_channel():
    g = _gray(5, 6)
    with Image.open(io.BytesIO(encode_image(g))) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), g[..., 0])
    with Image.open(io.BytesIO(encode_image(g, icc_profile=_icc(b"GRAY")))) as im:
        assert im.mode == "L" and im.info.get("icc_profile")
    with Image.open(io.BytesIO(encode_image(g, icc_profile=_icc(b"RGB ")))) as im:
        assert im.mode == "RGB"  # an RGB profile keeps three channels
    c = g.copy()
    c[0, 0, 1] += 1
    with Image.open(io.BytesIO(encode_image(c))) as im:
        assert im.mode == "RGB"
    with pytest.warns(GimgWarning, match="profile is for grey images but the decoded image has colour"):
        data = encode_image(c, icc_profile=_icc(b"GRAY"))
    with Image.open(io.BytesIO(data)) as im:  # colour pixels: the grey profile left out
        assert im.mode == "RGB" and "icc_profile" not in im.info
    assert icc_color_space(_icc(b"GRAY")) == b"GRAY" and icc_color_space(None) is None
    assert icc_color_space(b"short") is None


def test_the_cli_round_trip_of_a_gray_png_gives_a_gray_png(tmp_path):
    src, mid, out = tmp_path / "g.png", tmp_path / "g.gimg", tmp_path / "back.png"
    Image.fromarray(_gray()[..., 0], mode="L").save(src)
    res = CliRunner().invoke(cli, ["encode", str(src), str(mid), "-n", "40", "-i", "150"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["decode", str(mid), str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["grey"] is True
    with Image.open(out) as im:
        assert im.mode == "L" and im.size == (48, 40)
        assert np.array_equal(np.asarray(im), decode(mid.read_bytes())[..., 0])


def test_grey_spread_tool_on_the_conformance_vectors():
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tools"))
    import grey_spread

    grey = grey_spread.spread((root / "conformance/valid/grey_tied_64x48_n300.gimg").read_bytes())
    assert grey["max_red_minus_green"] == grey["max_blue_minus_green"] == 0 and grey["share_not_grey"] == 0.0
    assert grey["bits_per_gaussian"]["red"] < 0.1 < grey["bits_per_gaussian"]["green"]
    colour = grey_spread.spread((root / "conformance/valid/small_64x48_n300.gimg").read_bytes())
    assert colour["max_red_minus_green"] > 0 and colour["share_not_grey"] > 0.1


def test_the_api_takes_a_grey_array_of_one_channel():
    img = _gray(12, 10)  # [12, 10, 3]
    three = encode(img, gaussians=20, iterations=30, seed=1)
    assert encode(img[:, :, 1], gaussians=20, iterations=30, seed=1) == three  # [12, 10]
    assert encode(img[:, :, 1:2], gaussians=20, iterations=30, seed=1) == three  # [12, 10, 1]
    assert np.array_equal(decode(three)[:, :, 0], decode(three)[:, :, 2])
    fitted = fit_image(img[:, :, 0], 20, iterations=10, seed=1)
    assert np.array_equal(fitted.colors, fit_image(img, 20, iterations=10, seed=1).colors)  # [N, 3]
    for bad in (img[:, :, :2], np.dstack([img, img[:, :, :1]]), img.astype(np.float32), img[:0], img[:, :0, 0],
                img[0, 0], np.zeros((2, 2, 1, 1), np.uint8)):
        with pytest.raises(InputImageError, match=r"\[H, W\]"):
            encode(bad, gaussians=4, iterations=2)
        with pytest.raises(InputImageError, match=r"\[H, W\]"):
            fit_image(bad, 4, iterations=2)
