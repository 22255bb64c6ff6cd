"""Decoded images in the format the output's extension names (``gipp_codec.output_format``)."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from gipp_codec.decoder import decode, decode_file
from gipp_codec.errors import ConfigError, GimgWarning
from gipp_codec.format import write_gimg
from gipp_codec.format.synthetic import synthetic_quantized
from gipp_codec.imageio import ImageMetadata, load_image, save_image
from gipp_codec.output_format import output_format

ICC = b"an-icc-profile" * 8


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "kept"  # ImageDescription
    return exif.tobytes()


@pytest.fixture(scope="module")
def gimg_bytes():
    parsed = synthetic_quantized(80, 40, 24, seed=5)
    return write_gimg(parsed)


@pytest.mark.parametrize("name, fmt", [("x.png", "PNG"), ("x.PPM", "PPM"), ("x.pnm", "PPM"), ("x.pgm", "PPM"),
                                       ("x.bmp", "BMP"),
                                       ("x.tif", "TIFF"), ("x.TIFF", "TIFF"), ("x", "PNG"), ("x.out", "PNG"),
                                       ("-", "PNG")])
def test_the_extension_names_the_format(name, fmt):
    assert output_format(name) == fmt


@pytest.mark.parametrize("name", ["x.jpg", "x.JPEG", "x.webp", "x.gif", "x.avif", "x.jxl", "x.gimg", "x.pbm"])
def test_lossy_palette_and_gimg_extensions_are_refused(name):
    with pytest.raises(ConfigError, match="name a .png file"):
        output_format(name)


@pytest.mark.parametrize("suffix, fmt", [(".png", "PNG"), (".ppm", "PPM"), (".bmp", "BMP"), (".tiff", "TIFF")])
def test_decode_file_writes_the_exact_pixels_in_each_format(tmp_path, gimg_bytes, suffix, fmt):
    src = tmp_path / "in.gimg"
    src.write_bytes(gimg_bytes)
    out = tmp_path / f"out{suffix}"
    decode_file(src, out)
    with Image.open(out) as im:
        assert im.format == fmt
    assert np.array_equal(load_image(out)[0], decode(gimg_bytes))


def test_png_and_tiff_keep_the_metadata_ppm_and_bmp_warn(tmp_path):
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)  # [4, 5, 3]
    meta = ImageMetadata(icc_profile=ICC, exif=_exif())
    for suffix in (".png", ".tif"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning where nothing is left out
            save_image(tmp_path / f"m{suffix}", image, meta)
        _, back = load_image(tmp_path / f"m{suffix}")
        assert back.icc_profile == ICC
        with Image.open(tmp_path / f"m{suffix}") as im:
            assert im.getexif().get(0x010E) == "kept"
    for suffix in (".ppm", ".bmp"):
        with pytest.warns(GimgWarning, match="cannot carry the image's ICC profile and EXIF block"):
            save_image(tmp_path / f"m{suffix}", image, meta)
        assert np.array_equal(load_image(tmp_path / f"m{suffix}")[0], image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to leave out: no warning
        save_image(tmp_path / "plain.bmp", image)


@pytest.mark.parametrize("exif", [b"\x00\x01garbage-not-tiff-header" * 2,
                                  b"MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x0e"])  # not TIFF; truncated
def test_a_damaged_exif_block_is_left_out_of_a_tiff_with_one_warning(tmp_path, exif):
    """A carried EXIF block is the input's, unchecked: one Pillow cannot write into a TIFF (or
    warns on) is left out with one GimgWarning, and the TIFF holds the exact pixels; a PNG
    carries it as it is. From the command line: exit 0 and one ``gimg: warning:`` line."""
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)  # [4, 5, 3]
    meta = ImageMetadata(exif=exif)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        save_image(tmp_path / "m.tif", image, meta)
    assert [type(w.message) for w in caught] == [GimgWarning] and "cannot write the image's EXIF block" in str(caught[0].message)
    assert np.array_equal(load_image(tmp_path / "m.tif")[0], image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_image(tmp_path / "m.png", image, meta)
    gimg = tmp_path / "e.gimg"
    gimg.write_bytes(write_gimg(synthetic_quantized(20, 5, 4, seed=2), meta))
    res = subprocess.run([sys.executable, "-m", "gipp_codec", "decode", str(gimg), str(tmp_path / "d.tif")],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gimg: warning:") and "EXIF" in lines[0]


def test_the_cli_refuses_a_lossy_extension_before_decoding_and_writes_nothing(tmp_path, gimg_bytes):
    src = tmp_path / "in.gimg"
    src.write_bytes(gimg_bytes)
    for args in (["decode", str(src), str(tmp_path / "out.jpg")],
                 ["fit", str(tmp_path / "none.png"), "-n", "5", "--preview", str(tmp_path / "p.webp")]):
        r = subprocess.run([sys.executable, "-m", "gipp_codec", *args], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "writes decoded images losslessly as PNG, PPM, BMP or TIFF" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.gimg"]
