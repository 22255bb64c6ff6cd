"""Gaussians from anywhere into a .gimg file (``gipp_codec.pack``, ``gimg pack``)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gipp_codec.decoder import decode
from gipp_codec.errors import ConfigError, GimgError
from gipp_codec.export import npz_bytes, read_gaussians
from gipp_codec.format import write_gimg
from gipp_codec.format.base_layer import base_from_image
from gipp_codec.format.model import BitDepths
from gipp_codec.format.synthetic import synthetic_correlation, synthetic_float, synthetic_quantized
from gipp_codec.pack import pack_gaussians, read_npz
from import_boundary import assert_loads_no_training  # pytest puts tests/ on sys.path
from spec_decode import reference_decode, reference_psnr  # the spec's reference decoder (pytest puts tests/ on sys.path)

REPO = Path(__file__).resolve().parents[1]
W, H = 40, 24


def _cli():
    from gipp_codec.cli import _register, cli

    _register()
    return cli


def _arrays(data: bytes) -> dict:
    """What ``gimg export`` writes for ``data``, read back as ``gimg pack`` reads it."""
    return read_npz(npz_bytes(read_gaussians(data)))


@pytest.fixture(scope="module")
def files():
    rng = np.random.default_rng(11)
    image = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    return {
        "base": write_gimg(synthetic_quantized(90, W, H, BitDepths(11, 7, 6), seed=12), base=base_from_image(image, 3, 6)),
        "correlation": write_gimg(synthetic_correlation(90, W, H, seed=13), payload_coding=3),
        "convention1": write_gimg(synthetic_quantized(60, W, H, seed=14), render_convention=1),
        "float32": write_gimg(synthetic_float(70, W, H, seed=15)),
    }


@pytest.mark.parametrize("kind", ["base", "correlation", "convention1"])
def test_an_export_packs_back_to_the_same_file(files, kind):
    """A quantized file's export, packed, is the same file byte for byte (its own codes)."""
    assert pack_gaussians(_arrays(files[kind])) == files[kind]


def test_a_float32_export_packs_back_with_float32(files):
    assert pack_gaussians(_arrays(files["float32"]), float32=True) == files["float32"]


def test_foreign_gaussians_quantized_between_their_ranges(files):
    """Float Gaussians without codes are quantized min/max (b as the correlation): every one
    stays valid, the decode is close to the float render, and fewer bits make a smaller file."""
    arrays = {k: v for k, v in _arrays(files["float32"]).items()}
    exact = reference_decode(files["float32"])  # [H, W, 3] the float file's image, by the spec's decoder
    fine, coarse = pack_gaussians(arrays), pack_gaussians(arrays, bits=(10, 6, 5))
    assert read_gaussians(fine).valid.all() and read_gaussians(coarse).valid.all()
    assert reference_psnr(fine, exact) > 40.0  # 6-bit colours set most of the loss
    assert reference_psnr(fine, exact) > reference_psnr(coarse, exact) and len(coarse) < len(fine) < len(files["float32"])
    assert read_gaussians(fine).bits == (12, 10, 6) and read_gaussians(fine).correlation


def test_dropped_codes_quantize_at_the_inputs_own_bits(files):
    """An export whose codes were dropped (to edit its floats) is quantized at its own
    ``bits``; ``bits=`` overrides them, and without either the paper's 12/10/6 is used."""
    arrays = _arrays(files["base"])  # a file at 11/7/6
    del arrays["codes"]
    assert read_gaussians(pack_gaussians(arrays)).bits == (11, 7, 6)
    assert read_gaussians(pack_gaussians(arrays, bits=(10, 6, 5))).bits == (10, 6, 5)
    del arrays["bits"]
    assert read_gaussians(pack_gaussians(arrays)).bits == (12, 10, 6)
    arrays["bits"] = np.array([0, 7, 6])
    with pytest.raises(ConfigError, match="bit depth position=0 is invalid"):
        pack_gaussians(arrays)
    for unused in (np.array([0, 7, 6]), np.array([1.5, 2.5, 3.5]), np.arange(40)):  # a bits array not used ...
        arrays["bits"] = unused  # ... with float32 or bits= is ignored, as any other array
        assert read_gaussians(pack_gaussians(arrays, float32=True)).bits is None
        assert read_gaussians(pack_gaussians(arrays, bits=(10, 6, 5))).bits == (10, 6, 5)


def test_render_convention_from_the_input_or_the_caller(files):
    arrays = _arrays(files["convention1"])
    assert read_gaussians(pack_gaussians(arrays)).render_convention == 1
    assert read_gaussians(pack_gaussians(arrays, render_convention=2)).render_convention == 2
    del arrays["render_convention"]
    assert read_gaussians(pack_gaussians(arrays)).render_convention == 2


def test_invalid_gaussians_only_in_float32(files):
    arrays = _arrays(files["float32"])
    arrays["covs"] = arrays["covs"].copy()
    arrays["covs"][3] = [1.0, 2.0, 1.0]  # a c < b^2
    with pytest.raises(ConfigError, match="1 of 70 Gaussians is not valid .* number 3"):
        pack_gaussians(arrays)
    assert read_gaussians(pack_gaussians(arrays, float32=True)).valid.sum() == 69


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("means"), "need an array 'means'"),
    (lambda a: a.pop("width"), "need 'width'"),
    (lambda a: a.update(width=np.float64(40.0)), "'width' must be one integer"),
    (lambda a: a.update(covs=a["covs"][:, :2]), "array 'covs' must be real numbers of shape"),
    (lambda a: a.update(covs=a["covs"].astype(np.complex64)), "array 'covs' must be real numbers"),
    (lambda a: a.update(means=a["means"].astype("timedelta64[s]")), "array 'means' must be real numbers"),
    (lambda a: a.update(width=np.timedelta64(40, "s")), "'width' must be one integer"),
    (lambda a: a.update(base=np.full((3, 5, 3), 200, np.uint8), base_block=np.int64(8)), "within \\[0, 1\\]"),
    (lambda a: a.update(base=np.full((3, 5, 3), "x"), base_block=np.int64(8)), "'base' must be real numbers"),
    (lambda a: a.update(width=np.int64(-256), base=np.zeros((3, 5, 3)), base_block=np.int64(8)),
     "-256x24 image is outside the format's limits"),
    (lambda a: a.update(colors=a["colors"][:5]), "hold 70, 70 and 5 Gaussians"),
    (lambda a: a.update(means=np.full((70, 2), np.nan)), "not finite"),
    (lambda a: a.update(means=np.full((70, 2), 1e39)), "not finite"),
    (lambda a: a.update(render_convention=np.int64(7)), "render_convention 7 unknown"),
    (lambda a: a.update(base=np.zeros((3, 5, 3)), base_block=np.int64(12)), "base_block 12 must be a power of two"),
    (lambda a: a.update(base=np.zeros((2, 2, 3)), base_block=np.int64(8)), "'base' must be real numbers .* of shape"),
    (lambda a: a.update(width=np.int64(70000)), "70000x24 image is outside the format's limits"),
])
def test_malformed_arrays_are_config_errors(files, change, message):
    arrays = _arrays(files["float32"])
    change(arrays)
    with pytest.raises(ConfigError, match=message):
        pack_gaussians(arrays, float32=True)


def test_bits_and_float32_together_are_refused(files):
    with pytest.raises(ConfigError, match="not both"):
        pack_gaussians(_arrays(files["float32"]), bits=(12, 10, 6), float32=True)
    with pytest.raises(ConfigError, match="bit depth"):
        pack_gaussians(_arrays(files["float32"]), bits=(12, 10, 0))


@pytest.mark.parametrize("content, message", [
    (b"x,y\n1,2\n", "not a NumPy .npz file"),
    (b"PK\x03\x04broken", "not a NumPy .npz file of arrays"),
])
def test_not_an_npz(content, message):
    with pytest.raises(GimgError, match=message):
        read_npz(content)


def test_cli_pack_with_a_reference_image(files, tmp_path):
    (tmp_path / "g.npz").write_bytes(npz_bytes(read_gaussians(files["base"])))
    image = decode(files["base"]).copy()
    image[0, 0] ^= 0x40  # a reference that differs from the decode, so the PSNR is finite
    Image.fromarray(image).save(tmp_path / "ref.png")
    out = tmp_path / "out.gimg"
    res = CliRunner().invoke(_cli(), ["pack", str(tmp_path / "g.npz"), str(out), "--image", str(tmp_path / "ref.png"),
                                      "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.output.strip().splitlines()[-1])
    assert out.read_bytes() == files["base"] and facts["bytes"] == len(files["base"]) and facts["mode"] == "quantized"
    assert facts["psnr"] == pytest.approx(reference_psnr(files["base"], image), abs=0.01)


@pytest.mark.parametrize("args, message", [
    (["--bits", "12,10"], "--bits must be three integers"),
    (["--image", str(REPO / "examples" / "kodim23_crop256.png")], "--image is 256x256"),
    (["--bits", "12,10,6", "--float32"], "not both"),
])
def test_cli_pack_refusals_write_nothing(files, tmp_path, args, message):
    (tmp_path / "g.npz").write_bytes(npz_bytes(read_gaussians(files["base"])))
    out = tmp_path / "out.gimg"
    res = CliRunner().invoke(_cli(), ["pack", str(tmp_path / "g.npz"), str(out), *args])
    assert res.exit_code == 2 and message in res.output and not out.exists()


def test_pack_loads_neither_torch_nor_the_trainer(files, tmp_path):
    src = tmp_path / "g.npz"
    src.write_bytes(npz_bytes(read_gaussians(files["correlation"])))
    assert_loads_no_training(f"""
        from gipp_codec.pack import pack_gaussians, read_npz
        pack_gaussians(read_npz(open({str(src)!r}, "rb").read()), bits=(12, 8, 6))
    """)


def test_the_pack_cost_tool(tmp_path):
    """``tools/pack_cost.py`` on a small image: gimg's file, a float fit of as many Gaussians,
    and that fit packed at two depths; the coarser packing is the smaller file and loses."""
    sys.path.insert(0, str(REPO / "tools"))
    import pack_cost

    y, x = np.mgrid[0:32, 0:48]
    image = np.stack([128 + 90 * np.sin(x / 5.0), 128 + 90 * np.cos(y / 4.0), 3 * x + 2 * y], -1)
    src = tmp_path / "img.png"
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(src)
    out = tmp_path / "r.json"
    # 150 iterations: at 60 the float fit of as many Gaussians as gimg's file kept could end
    # near 20 dB, where the two packings' order is noise
    assert pack_cost.main([str(src), "--bpp", "2.0", "--iterations", "150", "--bits", "12,10,6", "10,6,5",
                           "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["how"] for r in rows] == ["gimg encode", "float fit", "pack (min/max)", "pack (min/max)"]
    assert rows[3]["bytes"] < rows[2]["bytes"] and rows[3]["psnr"] < rows[2]["psnr"] <= rows[1]["psnr"] + 0.5
    assert all(r["psnr"] > 30 for r in rows)


def test_an_npz_whose_arrays_inflate_past_the_limit_is_refused_unread(monkeypatch):
    """A small .npz can declare huge arrays (a zip bomb): the declared sizes are checked
    before anything is inflated."""
    import io
    import zipfile

    from gipp_codec import pack

    monkeypatch.setattr(pack, "MAX_NPZ_BYTES", 1 << 20)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("means.npy", bytes(2 << 20))  # 2 MiB of zeros, a few kB deflated
    assert len(buf.getvalue()) < 20_000
    with pytest.raises(GimgError, match="would take 2097152 bytes inflated"):
        read_npz(buf.getvalue())


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(means=a["means"] + 20), "do not dequantize to the means"),  # edited floats
    # a flipped flag makes b's grid a correlation's beyond +-1 here (else it would not dequantize to covs)
    (lambda a: a.update(correlation=np.bool_(not bool(a.get("correlation", False)))), "were the arrays edited"),
    (lambda a: a.update(codes=a["codes"][:10]), "codes hold 10 Gaussians and means 90"),
    (lambda a: a.update(bits=np.array(["a", "7", "5"])), "'bits' must be integers"),
    (lambda a: a.update(bits=np.array([9.7, 7.2, 5.9])), "'bits' must be integers"),
    (lambda a: a.update(correlation=np.array([True, False])), "'correlation' must be one boolean"),
    (lambda a: a.update(scales=np.full(8, "x")), "'scales' must be real numbers"),
    (lambda a: a.update(scales=np.zeros(8)), "scales must be positive"),
])
def test_kept_codes_must_match_their_arrays(files, change, message):
    """An export's codes are kept only as they are: edited arrays, a flipped correlation flag
    or malformed codes are refused, never written silently."""
    arrays = _arrays(files["base"])
    change(arrays)
    with pytest.raises(ConfigError, match=message):
        pack_gaussians(arrays)


def test_correlations_near_one_stay_valid():
    """|rho| within float32 rounding of 1: every packed Gaussian still renders."""
    rng = np.random.default_rng(3)
    n = 200
    a = np.exp(rng.uniform(-2, 4, n))
    c = np.exp(rng.uniform(-2, 4, n))
    rho = np.sign(rng.uniform(-1, 1, n)) * (1 - rng.uniform(0, 1e-6, n))
    covs = np.stack([a, rho * np.sqrt(a * c), c], 1).astype(np.float32)
    from gipp_codec.render.rescale import valid_mask

    ok = valid_mask(covs)  # valid in float32 to start with, as an input must be
    assert ok.sum() > n // 4
    arrays = {"width": np.int64(64), "height": np.int64(64), "means": rng.uniform(0, 64, (n, 2))[ok], "covs": covs[ok],
              "colors": rng.uniform(-0.2, 0.2, (n, 3))[ok]}
    for depths in ((12, 10, 6), (12, 7, 6), (10, 5, 5)):
        assert read_gaussians(pack_gaussians(arrays, bits=depths)).valid.all(), depths
    one_ulp = np.float32(np.nextafter(np.float32(1), np.float32(0)))  # rho one float32 step below 1
    needle = {"width": np.int64(8), "height": np.int64(8), "means": np.array([[3.0, 3.0], [5.0, 5.0]]),
              "covs": np.array([[1, one_ulp, 1], [2, -0.5, 1]], np.float32), "colors": np.ones((2, 3))}
    assert valid_mask(needle["covs"]).all()
    assert read_gaussians(pack_gaussians(needle)).valid.all()


def test_values_at_the_format_limits(files):
    """Positions at +-2^20 pack (the grid's float32 ends kept inside); variances beyond the
    log-variance limit are refused in a quantized file and kept by float32."""
    edge = {"width": np.int64(8), "height": np.int64(8), "means": np.array([[-2.0 ** 20, 0.0], [2.0 ** 20, 4.0]]),
            "covs": np.array([[1.0, 0.0, 1.0], [2.0, 0.5, 1.0]]), "colors": np.ones((2, 3)) * 0.5}
    g = read_gaussians(pack_gaussians(edge))
    assert np.abs(g.means[:, 0]).max() <= 2.0 ** 20 and g.valid.all()
    with pytest.raises(ConfigError, match="a position beyond"):
        pack_gaussians(dict(edge, means=np.array([[3e6, 2.0], [4.0, 4.0]])))
    with pytest.raises(ConfigError, match="a colour beyond"):
        pack_gaussians(dict(edge, colors=np.full((2, 3), 1e5)))
    tiny = dict(edge, means=np.array([[2.0, 2.0], [4.0, 4.0]]), covs=np.array([[1e-14, 0.0, 1.0], [1.0, 0.0, 1.0]]))
    with pytest.raises(ConfigError, match="log-variance limit"):
        pack_gaussians(tiny)
    assert read_gaussians(pack_gaussians(tiny, float32=True)).covs[0, 0] == np.float32(1e-14)


def test_render_work_over_the_limit_is_refused_by_the_api():
    """Large Gaussians whose render work passes MAX_RENDER_WORK are refused before writing,
    not written as a file no decoder accepts."""
    n = 400
    arrays = {"width": np.int64(4096), "height": np.int64(4096), "means": np.full((n, 2), 2048.0),
              "covs": np.tile([[1e7, 0.0, 1e7]], (n, 1)), "colors": np.full((n, 3), 1e-3)}
    with pytest.raises(ConfigError, match="render work"):
        pack_gaussians(arrays, float32=True)


def test_render_convention_zero_and_unknown_are_refused(files):
    with pytest.raises(ConfigError, match="render_convention 0 unknown"):
        pack_gaussians(_arrays(files["base"]), render_convention=0)


@pytest.mark.parametrize("kind", ["base", "correlation", "convention1"])
def test_a_gaussian_set_itself_packs_back(files, kind):
    """``pack_gaussians(read_gaussians(data))``: the GaussianSet is taken as its fields, its
    None fields (no base layer) as absent."""
    assert pack_gaussians(read_gaussians(files[kind])) == files[kind]
    assert pack_gaussians(read_gaussians(files["float32"]), float32=True) == files["float32"]
    with pytest.raises(ConfigError, match="expected a mapping of arrays"):
        pack_gaussians(None)


@pytest.mark.parametrize("bits", [(12, 10), (8,), (), (12.5, 10, 6), "abc", (True, 1, 1)])
def test_bits_must_be_three_whole_depths(files, bits):
    with pytest.raises(ConfigError, match="bits must be three depths"):
        pack_gaussians(_arrays(files["base"]), bits=bits)


def test_zips_python_cannot_read_are_one_line_errors(files, tmp_path):
    """An encrypted member, an unknown compression method or a damaged deflate stream is a
    GimgError (zipfile raises RuntimeError, NotImplementedError and zlib.error for them); a
    .gimg given as the .npz says to export it first."""
    import io
    import zipfile

    good = npz_bytes(read_gaussians(files["base"]))
    raw = bytearray(good)
    with zipfile.ZipFile(io.BytesIO(good)) as z:
        first = z.infolist()[0]
    central = raw.index(b"PK\x01\x02")  # the first member's central directory entry
    encrypted = bytearray(raw)
    encrypted[first.header_offset + 6] |= 1  # general purpose flags: encrypted, in both headers
    encrypted[central + 8] |= 1
    method = bytearray(raw)
    method[first.header_offset + 8] = 99  # compression method 99, in both headers
    method[central + 10] = 99
    squeezed = io.BytesIO()
    with zipfile.ZipFile(squeezed, "w", zipfile.ZIP_DEFLATED) as z:
        for name, value in np.load(io.BytesIO(good)).items():
            buf = io.BytesIO()
            np.save(buf, value)
            z.writestr(name + ".npy", buf.getvalue())
    damaged = bytearray(squeezed.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(damaged))) as z:
        info = max(z.infolist(), key=lambda i: i.compress_size)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged[start:start + 8] = b"\xff" * 8
    for data in (bytes(encrypted), bytes(method), bytes(damaged)):
        with pytest.raises(GimgError):
            read_npz(data)
    with pytest.raises(GimgError, match="gimg export"):
        read_npz(files["base"])


def test_pack_refuses_an_output_named_like_its_input(files, tmp_path):
    from gipp_codec.cli import _register, cli

    _register()
    src = tmp_path / "g.npz"
    src.write_bytes(npz_bytes(read_gaussians(files["base"])))
    res = CliRunner().invoke(cli, ["pack", str(src), str(tmp_path / "out.npz")])
    assert res.exit_code == 2 and "NumPy archive's name" in res.output and not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("bits, what", [((16, 16, 16), "do not make a valid grid"), ((5, 5, 4), "do not fit the bits")])
def test_edited_bits_beside_kept_codes_say_the_arrays_were_edited(files, bits, what):
    arrays = _arrays(files["base"])
    arrays["bits"] = np.array(bits)
    with pytest.raises(ConfigError, match=f"{what}.*were the arrays edited"):
        pack_gaussians(arrays)
