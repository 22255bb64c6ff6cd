"""Decoding a region of a file (``decode(crop=)``, ``gimg decode --crop``): rendered alone,
its pixels are the whole decode's, bit for bit; with ``scale``/``size`` it is resized."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gipp_codec.decoder import decode
from gipp_codec.errors import ConfigError
from gipp_codec.render import numba_kernels as nk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_boundary import assert_loads_no_training  # noqa: E402

VALID = Path(__file__).resolve().parents[1] / "conformance" / "valid"
# both render conventions, the base layer (varying across the image), the float32 mode,
# the correlation form, odd sizes, no Gaussians
VECTORS = ("base_kodak_768x512_n5000", "correlation_base_kodak_768x512_n5000", "kodak_768x512_n5000",
           "odd_513x257_n3000", "base_odd_513x257_n3000", "float32_mode", "taper_float32_mode",
           "base_zero_gaussians", "grey_tied_64x48_n300", "bits_16_16_16", "odd_7x3", "tiny_1x1")


def _vector(name: str) -> bytes:
    path = VALID / f"{name}.gimg"
    if not path.exists():  # the names above are the suite's; a renamed vector must fail here, not skip
        raise AssertionError(f"conformance vector {name} is missing")
    return path.read_bytes()


def _regions(width: int, height: int, rng) -> list:
    """Random regions, the corners, a row, a column, a pixel and the whole image."""
    out = [(0, 0, width, height), (0, 0, 1, 1), (width - 1, height - 1, 1, 1), (0, height // 2, width, 1),
           (width // 2, 0, 1, height), (width - min(width, 40), 0, min(width, 40), min(height, 40))]
    for _ in range(8):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        out.append((x, y, int(rng.integers(1, width - x + 1)), int(rng.integers(1, height - y + 1))))
    return out


@pytest.mark.parametrize("name", VECTORS)
def test_a_region_is_the_whole_decode_s_pixels_bit_for_bit(name):
    data = _vector(name)
    whole = decode(data)  # [H, W, 3]
    height, width = whole.shape[:2]
    for x, y, w, h in _regions(width, height, np.random.default_rng(len(name))):
        region = decode(data, crop=(x, y, w, h))
        assert region.shape == (h, w, 3)
        assert np.array_equal(region, whole[y:y + h, x:x + w]), (name, (x, y, w, h))


def test_the_kernel_s_window_equals_the_image_in_float32_too():
    """Random Gaussians, many straddling the image's and the windows' edges: the float render
    of a window is the whole render's, every bit (the row offsets are measured from the
    image's column box, not the window's edge)."""
    rng = np.random.default_rng(1)
    height, width, n = 61, 83, 300
    means = (rng.random((n, 2)) * [width + 20, height + 20] - 10).astype(np.float32)
    axes = rng.normal(size=(n, 2, 2)) * 2.0
    cov = axes @ axes.transpose(0, 2, 1) + 0.05 * np.eye(2)
    covs = np.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]], 1).astype(np.float32)
    colors = (rng.random((n, 3)) * 0.5).astype(np.float32)
    whole = nk.forward(means, covs, colors, height, width, 2)  # [H, W, 3] float32
    for x, y, w, h in _regions(width, height, rng):
        window = nk.forward_prepared(nk.prepare(means, covs, colors, h, w, 2, window=(x, y, width)))
        assert np.array_equal(window.view(np.uint32), whole[y:y + h, x:x + w].view(np.uint32)), (x, y, w, h)


def test_the_gaussians_left_out_of_a_region_draw_nothing_in_it():
    """``region.reaching`` picks a superset of what the kernel draws in a region: the
    Gaussians it leaves out, rendered alone in that window, give exactly zero there (thin,
    rotated and huge ones straddling the edges, invalid and non-finite ones)."""
    from gipp_codec.render.region import gaussian_bounds, reaching

    rng = np.random.default_rng(7)
    height, width, n = 70, 90, 400
    means = (rng.random((n, 2)) * [width + 40, height + 40] - 20).astype(np.float32)
    scales = np.exp(rng.uniform(-2.0, 3.0, size=(n, 2)))  # standard deviations 0.14 to 20 pixels
    angle = rng.uniform(0, np.pi, n)
    rot = np.stack([np.stack([np.cos(angle), -np.sin(angle)], -1), np.stack([np.sin(angle), np.cos(angle)], -1)], 1)
    cov = rot @ (scales[:, :, None] ** 2 * np.eye(2)) @ rot.transpose(0, 2, 1)
    covs = np.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]], 1).astype(np.float32)
    covs[:5] = [[1.0, 2.0, 1.0], [-1.0, 0.0, 1.0], [np.nan, 0.0, 1.0], [1.0, 0.0, 0.0], [4.0, 0.0, 4.0]]
    means[4] = [np.inf, 3.0]
    colors = (rng.random((n, 3)) + 0.1).astype(np.float32)
    bounds = gaussian_bounds(means, covs)
    picked_total = 0
    for x, y, w, h in _regions(width, height, rng):
        picked = reaching(bounds, x, y, w, h)
        assert np.all(np.diff(picked) > 0) and not np.isin(picked, [1, 2, 4]).any()  # a < 0, a NaN, mx inf
        left = np.setdiff1d(np.arange(n), picked)
        rest = nk.forward_prepared(nk.prepare(means[left], covs[left], colors[left], h, w, 2, window=(x, y, width)))
        assert not rest.any(), (x, y, w, h)
        picked_total += picked.size
    assert picked_total < 0.8 * n * len(_regions(width, height, rng))  # it does leave Gaussians out


def test_a_window_must_lie_in_the_image_and_has_no_backward():
    one = (np.zeros((1, 2), np.float32), np.ones((1, 3), np.float32), np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="does not lie in an image"):
        nk.prepare(*one, 4, 5, window=(3, 0, 7))
    with pytest.raises(TypeError):
        nk.prepare(*one, 4, 5, window=(1.7, 0, 7))
    pp = nk.prepare(*one, 4, 5, window=(1, 2, 9))
    with pytest.raises(ValueError, match="forward_prepared only"):
        nk.backward_prepared(pp, np.zeros((4, 5, 3), np.float32))


def test_a_region_at_another_size_samples_the_region():
    """A region enlarged three times: its pixel (3i + 1, 3j + 1) is sampled at the centre of
    the file's pixel (x + i, y + j), so it matches the whole decode there (up to a float32
    rounding of the moved means), base layer included; and it is the region of the whole
    image's enlargement."""
    data = _vector("base_kodak_768x512_n5000")
    whole = decode(data).astype(int)
    x, y, w, h = 301, 77, 50, 40
    big = decode(data, crop=(x, y, w, h), scale=3)
    assert big.shape == (3 * h, 3 * w, 3)
    assert np.abs(big[1::3, 1::3].astype(int) - whole[y:y + h, x:x + w]).max() <= 1
    whole_big = decode(data, scale=3)
    assert np.abs(big.astype(int) - whole_big[3 * y:3 * (y + h), 3 * x:3 * (x + w)]).max() <= 1
    half = decode(data, crop=(x, y, w, h), scale=0.5).astype(int)  # a reduction averages the region
    means = whole[y:y + h, x:x + w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    assert half.shape == (h // 2, w // 2, 3) and np.abs(half - means).max() <= 1
    assert decode(data, crop=(x, y, w, h), size=(17, 90)).shape == (90, 17, 3)


@pytest.mark.parametrize("crop, message", [
    ((0, 0, 769, 1), "reaches past the file's 768x512 image"),
    ((700, 500, 69, 13), "reaches past"),
    ((-1, 0, 5, 5), "at least 0"),
    ((0, 0, 0, 5), "at least 1"),
    ((0, 0, 5), "four integers"),
    ((0, 0, 5.0, 5), "four integers"),
    ((0, True, 5, 5), "four integers"),
    ("0,0,5,5", "four integers"),
])
def test_bad_regions_are_config_errors(crop, message):
    with pytest.raises(ConfigError, match=message):
        decode(_vector("base_kodak_768x512_n5000"), crop=crop)


def test_decode_file_takes_numpy_integers_and_reports_python_ints(tmp_path):
    from gipp_codec.decoder import decode_file

    facts = decode_file(VALID / "odd_7x3.gimg", tmp_path / "o.png", crop=np.array([1, 1, 2, 2]))
    assert json.loads(json.dumps(facts))["crop"] == [1, 1, 2, 2]
    with pytest.raises(ConfigError, match="reaches past the file's 7x3 image"):
        decode_file(VALID / "odd_7x3.gimg", tmp_path / "p.png", crop=(2 ** 62, 0, 1, 1))
    assert not (tmp_path / "p.png").exists()


def test_the_crop_path_loads_no_training_code():
    assert_loads_no_training("""
        from gipp_codec.decoder import decode
        data = open("conformance/valid/base_kodak_768x512_n5000.gimg", "rb").read()
        assert decode(data, crop=(10, 20, 30, 40)).shape == (40, 30, 3)
        assert decode(data, crop=(10, 20, 30, 40), scale=2).shape == (80, 60, 3)
    """)


def _cli():
    from gipp_codec.cli import _register, cli

    _register()
    return cli


def test_cli_crop(tmp_path):
    src = VALID / "base_odd_513x257_n3000.gimg"
    out = tmp_path / "out.png"
    runner = CliRunner()
    res = runner.invoke(_cli(), ["decode", str(src), str(out), "--crop", "100, 50,64,32", "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.output.strip().splitlines()[-1])
    assert facts["crop"] == [100, 50, 64, 32] and (facts["decoded_width"], facts["decoded_height"]) == (64, 32)
    assert (facts["width"], facts["height"]) == (513, 257)
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), decode(src.read_bytes())[50:82, 100:164])
    res = runner.invoke(_cli(), ["decode", str(src), str(out), "--crop", "100,50,64,32", "--scale", "2"])
    assert res.exit_code == 0 and "128x64 from the region 64x32 at 100,50 of 513x257" in res.output, res.output
    with Image.open(out) as im:
        assert im.size == (128, 64)


@pytest.mark.parametrize("args, message", [
    (["--crop", "1,2,3"], "--crop must be X,Y,WIDTH,HEIGHT"),
    (["--crop", "-1,0,2,2"], "--crop must be X,Y,WIDTH,HEIGHT"),
    (["--crop", "a,b,c,d"], "--crop must be X,Y,WIDTH,HEIGHT"),
    (["--crop", "0,0,0,2"], "at least 1"),
    (["--crop", "500,0,14,2"], "reaches past the file's 513x257 image"),
    (["--crop", "0,0,2,2", "--scale", "0"], "scale must be a positive number"),
])
def test_cli_bad_crops_are_one_line_and_write_nothing(tmp_path, args, message):
    out = tmp_path / "out.png"
    res = CliRunner().invoke(_cli(), ["decode", str(VALID / "base_odd_513x257_n3000.gimg"), str(out), *args])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output
    assert res.output.count("\n") == 1
    assert not out.exists()


def test_a_file_opened_once_renders_as_decode_does():
    """``open_gimg``: every render is the matching ``decode`` call's image, its facts the file's."""
    from gipp_codec import open_gimg, read_info
    from gipp_codec.errors import GimgError

    data = _vector("base_odd_513x257_n3000")
    opened = open_gimg(data)
    assert (opened.width, opened.height, opened.gaussians) == (513, 257, 3000)
    assert opened.info() == read_info(data)
    for kw in ({}, {"crop": (100, 50, 64, 32)}, {"crop": (100, 50, 64, 32), "scale": 2}, {"size": (100, 60)},
               {"crop": (500, 250, 13, 7), "size": (5, 20)}):
        assert np.array_equal(opened.render(**kw), decode(data, **kw)), kw
    assert opened.output_size((1, 2, 30, 40), 0.5) == (15, 20)
    with pytest.raises(ConfigError, match="reaches past"):
        opened.render(crop=(0, 0, 514, 1))
    with pytest.raises(GimgError):
        open_gimg(data[:100])


def test_the_crop_decode_tool(tmp_path):
    """``tools/crop_decode.py`` on a conformance vector: every figure is there and positive,
    and every region it timed matched the whole decode."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    import crop_decode

    out = tmp_path / "r.json"
    assert crop_decode.main([str(VALID / "base_odd_513x257_n3000.png"), str(VALID / "base_odd_513x257_n3000.gimg"),
                             "--sides", "16", "300", "--regions", "2", "--repeats", "1", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert row["regions_checked"] == 4 and row["regions_mismatched"] == 0
    figures = ["whole_ms", "parse_ms", "webp_ms"] + [f"{k}{s}_ms" for k in ("crop", "opened") for s in (16, 300)]
    assert all(np.isfinite(row[k]) and row[k] > 0 for k in figures), row
    assert crop_decode.random_regions(513, 257, 300, 3, np.random.default_rng(0))[0][2:] == (300, 257)
