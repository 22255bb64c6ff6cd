"""Input conversions and refusals of gipp_codec.imageio, and the metrics module."""

import io
import math
import os
import stat

import numpy as np
import pytest
from PIL import Image

from gipp_codec.errors import GimgError, InputImageError
from gipp_codec.imageio import (
    ImageMetadata,
    atomic_write_bytes,
    check_distinct_paths,
    check_output_path,
    decode_image_bytes,
    encode_png,
    load_image,
    save_image,
)
from gipp_codec.metrics import ms_ssim, psnr


def _png_bytes(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", **kw)
    return buf.getvalue()


def test_rgb_roundtrip_exact(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    save_image(tmp_path / "a.png", arr)
    back, meta = load_image(tmp_path / "a.png")
    assert back.dtype == np.uint8 and back.shape == (7, 5, 3)
    assert np.array_equal(back, arr)
    assert meta.icc_profile is None


def test_grayscale_replicated():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb, _ = decode_image_bytes(_png_bytes(Image.fromarray(gray, mode="L")))
    assert rgb.shape == (3, 4, 3)
    for ch in range(3):
        assert np.array_equal(rgb[:, :, ch], gray)


def test_16bit_gray_rounded_to_8bit():
    im = Image.new("I;16", (4, 1))
    for x, v in enumerate([0, 257 * 10, 65535, 257 * 100 + 128]):
        im.putpixel((x, 0), v)
    rgb, _ = decode_image_bytes(_png_bytes(im))
    assert rgb[0, :, 0].tolist() == [0, 10, 255, 100]


def test_palette_expanded():
    im = Image.new("P", (4, 2))
    im.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    im.putpixel((1, 0), 1)
    rgb, _ = decode_image_bytes(_png_bytes(im))
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[0, 1].tolist() == [0, 255, 0]


def test_opaque_rgba_accepted_transparent_refused():
    arr = np.full((3, 3, 4), 255, dtype=np.uint8)
    rgb, _ = decode_image_bytes(_png_bytes(Image.fromarray(arr, mode="RGBA")))
    assert rgb.shape == (3, 3, 3)
    arr[1, 1, 3] = 10
    with pytest.raises(InputImageError, match="transparent"):
        decode_image_bytes(_png_bytes(Image.fromarray(arr, mode="RGBA")))


def _keyed_png(arr: np.ndarray, key) -> bytes:
    return _png_bytes(Image.fromarray(arr), transparency=key)


def test_a_used_colour_key_is_refused_an_unused_one_is_not():
    """PNG's colour key (tRNS on a grey or RGB image) makes the pixels of one colour
    transparent: refused as RGBA's transparent pixels are, unless no pixel has that colour."""
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)  # [4, 5, 3], distinct triples
    with pytest.raises(InputImageError, match="transparent pixels .a colour key."):
        decode_image_bytes(_keyed_png(rgb, tuple(int(v) for v in rgb[2, 3])))
    assert np.array_equal(decode_image_bytes(_keyed_png(rgb, (255, 254, 253)))[0], rgb)
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)  # [4, 5]
    with pytest.raises(InputImageError, match="transparent"):
        decode_image_bytes(_keyed_png(grey, 7))
    assert np.array_equal(decode_image_bytes(_keyed_png(grey, 200))[0][..., 0], grey)


def _png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes, trns: bytes) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit RGB), ``rows`` the filtered scanlines."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tRNS", trns)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_colour_keys_of_low_bit_grey_and_16_bit_rgb():
    """Pillow scales 1-, 2- and 4-bit grey to 0..255 but not the key, and keeps only the high
    byte of 16-bit RGB: a 2-bit grey pixel at the key is transparent; a 16-bit RGB pixel at
    the key is too, and one whose high bytes differ from the key's is not."""
    grey2 = _png(4, 1, 2, 0, bytes([0, 0b00011011]), bytes([0, 3]))  # levels 0, 1, 2, 3; key 3
    with pytest.raises(InputImageError, match="transparent"):
        decode_image_bytes(grey2)
    opaque2 = _png(4, 1, 2, 0, bytes([0, 0b00011010]), bytes([0, 3]))  # levels 0, 1, 2, 2
    assert decode_image_bytes(opaque2)[0][0, :, 0].tolist() == [0, 85, 170, 170]
    key = bytes([0x12, 0x34, 0x56, 0x78, 0x9A, 0xBC])
    with pytest.raises(InputImageError, match="transparent"):
        decode_image_bytes(_png(1, 1, 16, 2, b"\x00" + key, key))
    other = bytes([0x00, 0x34, 0x56, 0x78, 0x9A, 0xBC])  # red's high byte differs
    assert decode_image_bytes(_png(1, 1, 16, 2, b"\x00" + other, key))[0][0, 0].tolist() == [0x00, 0x56, 0x9A]


def test_icc_profile_carried(tmp_path):
    icc = b"fake-icc-profile-bytes" * 4
    arr = np.zeros((2, 2, 3), dtype=np.uint8)
    save_image(tmp_path / "icc.png", arr, ImageMetadata(icc_profile=icc))
    _, meta = load_image(tmp_path / "icc.png")
    assert meta.icc_profile == icc


@pytest.mark.parametrize(
    "content, message",
    [(b"", "empty"), (b"this is not an image at all", "not a readable image"), (b"\x89PNG\r\n\x1a\n\x00\x00", "not a readable image")],
)
def test_bad_bytes_refused(content, message):
    with pytest.raises(InputImageError, match=message):
        decode_image_bytes(content)


def test_truncated_png_refused():
    arr = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    data = encode_png(arr)
    with pytest.raises(InputImageError):
        decode_image_bytes(data[: len(data) // 2])


def test_missing_and_directory(tmp_path):
    with pytest.raises(InputImageError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(InputImageError, match="directory"):
        load_image(tmp_path)


def test_atomic_write_leaves_no_temp(tmp_path):
    atomic_write_bytes(tmp_path / "out.bin", b"abc")
    assert (tmp_path / "out.bin").read_bytes() == b"abc"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]
    with pytest.raises(GimgError, match="does not exist"):
        atomic_write_bytes(tmp_path / "missing_dir" / "x.bin", b"abc")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_gives_a_new_file_the_umask_mode(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"abc")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o640  # 0666 less 027, not mkstemp's 0600


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    out = tmp_path / "old.bin"
    out.write_bytes(b"x")
    out.chmod(0o604)
    atomic_write_bytes(out, b"abc")
    assert out.read_bytes() == b"abc"
    assert stat.S_IMODE(out.stat().st_mode) == 0o604


def test_refuse_output_over_input(tmp_path):
    p = tmp_path / "same.png"
    p.write_bytes(b"x")
    with pytest.raises(GimgError, match="overwrite"):
        check_distinct_paths(p, p)
    check_distinct_paths(p, tmp_path / "other.png")


def test_psnr_values():
    a = np.zeros((4, 4, 3), dtype=np.uint8)
    b = a.copy()
    assert psnr(a, b) == math.inf
    b[0, 0, 0] = 255  # mse = 1/48
    assert psnr(a, b) == pytest.approx(10 * math.log10(48.0))


def test_ms_ssim_small_image_none_and_identity():
    rng = np.random.default_rng(2)
    small = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    assert ms_ssim(small, small) is None
    big = rng.integers(0, 256, size=(176, 176, 3), dtype=np.uint8)
    assert ms_ssim(big, big) == pytest.approx(1.0, abs=1e-5)
    noisy = np.clip(big.astype(int) + rng.integers(-40, 41, size=big.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(big, noisy) < 0.99


def test_outputs_are_refused_before_any_work_when_they_cannot_be_files(tmp_path):
    """An empty path, a trailing separator, a folder or a missing folder: a GimgError from
    ``check_output_path``, and nothing written."""
    for bad, needle in (("", "empty"), (str(tmp_path / "new") + os.sep, "separator"),
                        (str(tmp_path), "folder"), (str(tmp_path / "no_dir" / "x.png"), "does not exist")):
        with pytest.raises(GimgError, match=needle):
            check_output_path(bad)
        with pytest.raises(GimgError, match=needle):
            atomic_write_bytes(bad, b"abc")
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
def test_a_pipe_or_a_device_is_never_replaced(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(GimgError, match="not a regular file"):
        atomic_write_bytes(fifo, b"abc")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if os.path.exists("/dev/null"):
        with pytest.raises(GimgError, match="not a regular file"):
            check_output_path("/dev/null")
    assert sorted(os.listdir(tmp_path)) == ["pipe.png"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
def test_an_output_link_is_written_through(tmp_path):
    target = tmp_path / "real.bin"
    target.write_bytes(b"old")
    link = tmp_path / "link.bin"
    os.symlink(target, link)
    atomic_write_bytes(link, b"new")
    assert os.path.islink(link) and target.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["link.bin", "real.bin"]


def test_a_long_output_name_fits_beside_its_temporary_file(tmp_path):
    out = tmp_path / ("b" * 236 + ".png")  # 240 characters, under the usual 255
    atomic_write_bytes(out, b"abc")
    assert out.read_bytes() == b"abc"
    assert os.listdir(tmp_path) == [out.name]


def test_a_failed_write_is_a_gimg_error_and_leaves_nothing(tmp_path, monkeypatch):
    def no_space(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_space)
    with pytest.raises(GimgError, match="cannot write .*No space left"):
        atomic_write_bytes(tmp_path / "out.bin", b"abc")
    assert os.listdir(tmp_path) == []


def test_unreadable_input_names_are_input_errors(tmp_path):
    with pytest.raises(InputImageError, match="cannot read"):
        load_image(tmp_path / ("a" * 300 + ".png"))  # over the file name limit


def test_animations_are_refused_not_cut_to_their_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputImageError, match="2 frames"):
        decode_image_bytes(buf.getvalue())
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF")
    assert decode_image_bytes(buf.getvalue())[0].shape == (8, 8, 3)


def test_a_large_declared_size_gives_no_pillow_warning():
    """Between Pillow's limit and twice it Pillow only warns; the size check is ours, and a
    warning would break the one-line error."""
    import struct
    import warnings
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 10000, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputImageError):
            decode_image_bytes(png)


@pytest.mark.parametrize("error", [TypeError("Missing dimensions"), KeyError(277), IndexError("tuple index"),
                                   __import__("struct").error("unpack requires a buffer of 4 bytes")])
def test_any_failure_of_pillows_decoders_is_an_input_error(monkeypatch, error):
    """Pillow's plugins raise many exception types on damaged bytes (a fuzzed TIFF gave a
    TypeError); each is a one-line InputImageError, never a traceback."""
    def broken_open(*args, **kwargs):
        raise error

    monkeypatch.setattr(Image, "open", broken_open)
    with pytest.raises(InputImageError, match=r"^x\.tif: cannot decode image \(.+\)$"):
        decode_image_bytes(b"II*\0", "x.tif")


def _tiff_with_an_overlong_tag_count() -> tuple[bytes, np.ndarray]:
    """An 8 x 8 TIFF whose first directory claims 21 * 256 more entries than it holds: Pillow
    warns (corrupt EXIF data) and still reads the pixels."""
    pixels = (np.arange(8 * 8 * 3).reshape(8, 8, 3) * 3 % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="TIFF")
    data = bytearray(buf.getvalue())
    assert data[:8] == b"II*\0\x08\0\0\0" and data[9] == 0  # the directory at byte 8, its count's high byte
    data[9] = 21
    return bytes(data), pixels


def test_pillows_warnings_come_back_as_one_gimg_warning_each():
    import warnings

    from gipp_codec.errors import GimgWarning

    data, pixels = _tiff_with_an_overlong_tag_count()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image, _ = decode_image_bytes(data, "odd.tif")
    assert np.array_equal(image, pixels)
    assert caught and all(w.category is GimgWarning for w in caught)
    messages = [str(w.message) for w in caught]
    assert len(set(messages)) == len(messages)
    assert messages[0].startswith("odd.tif: ") and "Corrupt EXIF" in messages[0]


def test_the_cli_prints_a_pillow_warning_as_one_line(tmp_path):
    import subprocess
    import sys

    data, _ = _tiff_with_an_overlong_tag_count()
    (tmp_path / "odd.tif").write_bytes(data)
    run = subprocess.run([sys.executable, "-m", "gipp_codec", "encode", str(tmp_path / "odd.tif"),
                          str(tmp_path / "odd.gimg"), "-n", "4", "-i", "10"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gimg: warning: ") and "Corrupt EXIF" in lines[0]
    assert (tmp_path / "odd.gimg").exists()


def test_sixteen_bit_grey_rounds_as_the_float_formula_in_integers():
    """floor(v / 257 + 0.5), clamped, for every 16-bit value and for 32-bit extremes, computed
    in blocks of rows (the block size is exercised by a width that does not divide it)."""
    from gipp_codec.imageio import _gray16_to_8

    def reference(a):
        return np.clip(np.floor(a.astype(np.float64) / 257.0 + 0.5), 0, 255).astype(np.uint8)

    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    assert np.array_equal(_gray16_to_8(every), reference(every))
    wide = np.random.default_rng(0).integers(-2**31, 2**31, (1500, 3001), dtype=np.int64).astype(np.int32)
    wide[0, :6] = [-(2**31), -1, 65535, 65536, 2**31 - 1, 128]
    assert np.array_equal(_gray16_to_8(wide), reference(wide))


def test_a_read_only_output_is_not_replaced(tmp_path):
    """The rename would replace a file without write permission (as root too): it is refused,
    and a writable one is still replaced."""
    from gipp_codec.imageio import check_output_path

    out = tmp_path / "ro.gimg"
    out.write_bytes(b"keep me")
    out.chmod(0o444)
    with pytest.raises(GimgError, match="read-only"):
        check_output_path(out)
    out.chmod(0o644)
    assert check_output_path(out) == out


def test_an_image_declaring_too_many_pixels_and_a_gimg_given_as_an_image_say_so():
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))
    with pytest.raises(InputImageError, match=r"image too large \(its header declares 10000000000 pixels"):
        decode_image_bytes(bomb, "bomb.png")
    with pytest.raises(InputImageError, match="is a .gimg file, not an image to encode"):
        decode_image_bytes(b"\x89GIM\r\n\x1a\n\x01\x05" + bytes(30), "x.gimg")
