"""The torch-free decoder and the decode/info CLI."""

import json
import math
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from gipp_codec.decoder import decode, decode_file, decode_float, read_info, to_uint8
from gipp_codec.errors import FormatError, GimgError
from gipp_codec.format import write_gimg
from gipp_codec.format.synthetic import synthetic_float, synthetic_quantized
from gipp_codec.imageio import ImageMetadata

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
import reference_decoder as spec  # noqa: E402
from import_boundary import assert_loads_no_training  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gimg_bytes():
    return write_gimg(synthetic_quantized(300, 48, 32, seed=1))


@pytest.fixture()
def gimg_file(tmp_path, gimg_bytes):
    p = tmp_path / "in.gimg"
    p.write_bytes(gimg_bytes)
    return p


def _cli():
    from gipp_codec.cli import _register, cli

    _register()
    return cli


def test_decode_shapes_and_reference(gimg_bytes):
    img = decode(gimg_bytes)
    assert img.shape == (32, 48, 3) and img.dtype == np.uint8
    f = decode_float(gimg_bytes)
    assert f.shape == (32, 48, 3) and f.dtype == np.float32
    parsed = spec.parse(gimg_bytes)
    ref = spec.render_float64(parsed["rows"], 32, 48, parsed["convention"])
    assert parsed["convention"] == 2  # what write_gimg writes by default: the encoder's convention
    assert np.abs(f - ref).max() < 1e-3
    assert np.abs(img.astype(int) - spec.to_uint8(ref).astype(int)).max() <= 1


def test_decode_float_is_unclamped():
    g = synthetic_float(1, 9, 9)
    g.means[:] = 4.5
    g.covs[:] = [2.0, 0.0, 2.0]
    g.colors[:] = [3.0, -2.0, 0.5]
    peak = 1.0 - math.exp(-4.5)  # the weight at the centre in render convention 2
    f = decode_float(write_gimg(g))
    assert f[4, 4, 0] == pytest.approx(3.0 * peak, rel=1e-5) and f[4, 4, 1] == pytest.approx(-2.0 * peak, rel=1e-5)
    f1 = decode_float(write_gimg(g, render_convention=1))  # convention 1: exp(0) = 1 at the centre
    assert f1[4, 4, 0] == pytest.approx(3.0, rel=1e-5) and f1[4, 4, 1] == pytest.approx(-2.0, rel=1e-5)
    img = decode(write_gimg(g))
    assert list(img[4, 4, :2]) == [255, 0] and abs(int(img[4, 4, 2]) - round(0.5 * peak * 255)) <= 1


def test_to_uint8_is_the_spec_rule():
    """floor(clamp(v, 0, 1) * 255 + 0.5) in binary64 (spec §7), NaN to 0, on a fine sweep."""
    v = np.linspace(-0.5, 1.5, 4001, dtype=np.float32).reshape(-1, 1, 1) * np.ones((1, 1, 3), np.float32)
    v[0, 0, 1] = np.nan
    want = np.floor(np.clip(v.astype(np.float64), 0, 1) * 255 + 0.5)
    want[np.isnan(want)] = 0
    np.testing.assert_array_equal(to_uint8(v), want.astype(np.uint8))


def test_read_info(gimg_bytes):
    info = read_info(gimg_bytes)
    assert info["header"]["width"] == 48 and info["header"]["gaussian_count"] == 300
    assert set(info["bits"]["attributes"]) == {"position", "a", "b", "c", "red", "green", "blue"}
    assert info["bpp"] == pytest.approx(8 * len(gimg_bytes) / (48 * 32))


def test_info_says_which_files_decode_grey():
    vectors = sorted((Path(__file__).resolve().parents[1] / "conformance" / "valid").glob("*.gimg"))
    said = set()  # info's grey files decode grey; a colour file may decode grey by chance (1x1, clamped)
    for path in vectors:
        data = path.read_bytes()
        image = decode(data)  # [H, W, 3]
        grey = bool((image[:, :, 0] == image[:, :, 1]).all() and (image[:, :, 1] == image[:, :, 2]).all())
        if read_info(data)["grey"]:
            assert grey, path.name
            said.add(path.name)
    assert "grey_tied_64x48_n300.gimg" in said and len(said) < len(vectors) // 2
    # grey Gaussians over a base layer with colour: not grey
    from gipp_codec.decoder import decodes_grey
    from gipp_codec.format.container import parse_gimg

    parsed = parse_gimg((Path(__file__).resolve().parents[1] / "conformance" / "valid"
                         / "grey_tied_64x48_n300.gimg").read_bytes())
    assert parsed.base is not None and decodes_grey(parsed)
    parsed.base.samples[1, 2, 2] ^= 1
    assert not decodes_grey(parsed)


def test_decode_file_carries_metadata(tmp_path):
    meta = ImageMetadata(icc_profile=None, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00")
    src = tmp_path / "m.gimg"
    src.write_bytes(write_gimg(synthetic_quantized(20, 16, 16), meta))
    out = tmp_path / "m.png"
    decode_file(src, out)
    with Image.open(out) as im:
        assert im.info.get("exif") == meta.exif


def test_import_boundary_parse_only():
    assert_loads_no_training("""
        import gipp_codec.decoder
        from gipp_codec.format import parse_gimg, write_gimg
        from gipp_codec.format.synthetic import synthetic_quantized
        parse_gimg(write_gimg(synthetic_quantized(10, 8, 8)))
    """)


def test_import_boundary_full_decode(gimg_file):
    """Decoding a file (parse + dequantize + numba render) must not load torch nor the trainer."""
    assert_loads_no_training(f"""
        import gipp_codec.decoder as d
        img = d.decode(open({str(gimg_file)!r}, "rb").read())
        assert img.shape == (32, 48, 3)
    """)


def test_cli_decode_and_info_json(gimg_file, tmp_path):
    cli = _cli()
    out = tmp_path / "out.png"
    r = CliRunner().invoke(cli, ["decode", str(gimg_file), str(out), "--json"])
    assert r.exit_code == 0, r.output
    facts = json.loads(r.output.strip().splitlines()[-1])
    assert facts["width"] == 48 and out.exists()
    with Image.open(out) as im:
        assert im.size == (48, 32) and im.mode == "RGB"
    r = CliRunner().invoke(cli, ["info", str(gimg_file), "--json"])
    assert r.exit_code == 0
    info = json.loads(r.output.strip().splitlines()[-1])
    assert info["header"]["bits_color"] == 6 and "position" in info["bits"]["attributes"]
    r = CliRunner().invoke(cli, ["info", str(gimg_file)])
    assert r.exit_code == 0 and "bits_position: 12" in r.output


def test_cli_decode_on_the_jit_hints_at_compile_decoder_only_on_a_terminal(gimg_file, tmp_path, monkeypatch):
    """A person at a terminal decoding without a prebuilt decoder is told, in one line on
    stderr, why and which command gives a faster start; scripts (no terminal) and --json
    are not."""
    from gipp_codec.commands import codec_cmd

    monkeypatch.setenv("GIMG_PREBUILT_DIR", str(tmp_path / "no_build"))
    cli = _cli()
    out = tmp_path / "out.png"
    r = CliRunner().invoke(cli, ["decode", str(gimg_file), str(out)])
    assert r.exit_code == 0 and r.stderr == ""
    monkeypatch.setattr(codec_cmd, "_stderr_is_terminal", lambda: True)
    r = CliRunner().invoke(cli, ["decode", str(gimg_file), str(out)])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 0 and len(lines) == 1
    assert lines[0].startswith("gimg: note:") and "not built" in lines[0] and "gimg compile-decoder" in lines[0]
    r = CliRunner().invoke(cli, ["decode", str(gimg_file), str(out), "--json"])
    assert r.exit_code == 0 and r.stderr == ""


@pytest.mark.parametrize("content", [b"", b"hello", b"\x89GIM\r\n\x1a\n\x01\x00"])
def test_cli_bad_input_one_line_error_no_output(tmp_path, content):
    bad = tmp_path / "bad.gimg"
    bad.write_bytes(content)
    out = tmp_path / "out.png"
    r = subprocess.run([sys.executable, "-m", "gipp_codec", "decode", str(bad), str(out)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gimg: error:") and "Traceback" not in r.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [bad]  # no temporary file left either
    assert bad.read_bytes() == content
    r = subprocess.run([sys.executable, "-m", "gipp_codec", "info", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and r.stderr.startswith("gimg: error:")


def test_a_damaged_file_is_named_in_its_error(gimg_file, tmp_path):
    """decode, info and export name the file a FormatError is about (a script decoding many
    learns which one is bad); decode_file raises the same subclass with the name."""
    from gipp_codec.errors import TruncatedError

    bad = tmp_path / "cut here.gimg"
    bad.write_bytes(gimg_file.read_bytes()[:-20])
    for args in (["decode", str(bad), str(tmp_path / "o.png")], ["info", str(bad)],
                 ["export", str(bad), str(tmp_path / "o.npz")]):
        r = CliRunner().invoke(_cli(), args)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1, (args, r.output)
        assert lines[0].startswith(f"gimg: error: {bad}: "), lines[0]
    r = CliRunner().invoke(_cli(), ["info", "-"], input=bad.read_bytes())
    assert r.exit_code == 2 and r.stderr.startswith("gimg: error: standard input: "), r.stderr
    with pytest.raises(TruncatedError, match=f"^{bad}: "):
        decode_file(bad, tmp_path / "o.png")
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("o")]  # no output, no temporary file


def test_cli_refuses_to_overwrite_input_and_missing_files(gimg_file, tmp_path):
    cli = _cli()
    before = gimg_file.read_bytes()
    r = CliRunner().invoke(cli, ["decode", str(gimg_file), str(gimg_file)])
    assert r.exit_code == 2 and gimg_file.read_bytes() == before
    r = CliRunner().invoke(cli, ["decode", str(tmp_path / "missing.gimg"), str(tmp_path / "o.png")])
    assert r.exit_code == 2 and not (tmp_path / "o.png").exists()
    r = CliRunner().invoke(cli, ["decode", str(gimg_file), str(tmp_path / "no_dir" / "o.png")])
    assert r.exit_code == 2


def test_decode_file_failure_leaves_existing_output_untouched(tmp_path):
    bad = tmp_path / "bad.gimg"
    bad.write_bytes(b"\x89GIM\r\n\x1a\n\x02\x00")
    out = tmp_path / "out.png"
    out.write_bytes(b"previous")
    with pytest.raises(FormatError):
        decode_file(bad, out)
    assert out.read_bytes() == b"previous"
    with pytest.raises(GimgError):
        decode_file(tmp_path / "nope.gimg", out)


def test_uint8_render_equals_rounded_float_render():
    from gipp_codec.render import numba_kernels as nk

    rng = np.random.default_rng(3)
    n, h, w = 400, 37, 53
    means = (rng.random((n, 2)) * [w, h]).astype(np.float32)
    covs = np.stack([rng.uniform(0.3, 20, n), rng.uniform(-1, 1, n), rng.uniform(0.3, 20, n)], 1).astype(np.float32)
    colors = rng.uniform(-0.3, 0.6, (n, 3)).astype(np.float32)
    f = nk.forward(means, covs, colors, h, w)
    u8 = nk.forward_uint8(means, covs, colors, h, w)
    assert u8.dtype == np.uint8 and (f < 0).any() and (f > 1).any()  # clamping is exercised
    np.testing.assert_array_equal(u8, to_uint8(f))


def test_to_uint8_is_exact_at_half_levels():
    # values whose exact v*255 + 0.5 lies just below an integer: float32 arithmetic would round up
    k = np.arange(1, 255, dtype=np.float64)
    v = np.nextafter(((k - 0.5) / 255.0).astype(np.float32), np.float32(0))  # [254] float32
    exact = np.floor(v.astype(np.float64) * 255.0 + 0.5)
    img = np.repeat(v[:, None, None], 3, axis=2).reshape(-1, 1, 3)
    assert np.array_equal(to_uint8(img)[:, 0, 0], exact.astype(np.uint8))
    assert not np.isnan(to_uint8(np.full((1, 1, 3), np.nan, np.float32))).any()


def test_cli_decode_png_level(gimg_file, tmp_path):
    small, big = tmp_path / "s.png", tmp_path / "b.png"
    for path, level in ((small, "9"), (big, "0")):
        r = subprocess.run([sys.executable, "-m", "gipp_codec", "decode", "--png-level", level, str(gimg_file), str(path)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert small.stat().st_size < big.stat().st_size
    with Image.open(small) as a, Image.open(big) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_without_scipy_hides_it_only_inside_the_block():
    code = textwrap.dedent("""
        import importlib.util, sys
        from gipp_codec.commands.quick_start import without_scipy
        if importlib.util.find_spec("scipy") is None:
            sys.exit(0)  # nothing to hide on this machine
        with without_scipy():
            try:
                import scipy.linalg
                sys.exit("scipy imported inside the block")
            except ImportError:
                pass
            from gipp_codec.decoder import decode
            from gipp_codec.format import write_gimg
            from gipp_codec.format.synthetic import synthetic_quantized
            decode(write_gimg(synthetic_quantized(10, 8, 8)))
        import scipy.linalg  # usable again afterwards
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
def test_cli_decode_never_replaces_a_pipe(gimg_file, tmp_path):
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    r = CliRunner().invoke(_cli(), ["decode", str(gimg_file), str(fifo)])
    assert r.exit_code == 2 and "not a regular file" in r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("not_bytes", [5, "file.gimg", None, 1.5, object()])
def test_decode_takes_bytes_only(not_bytes):
    """An int would otherwise become that many zero bytes (``bytes(5)``), a str a TypeError
    deep inside. The error is a TypeError and, like every error gimg raises on purpose, a
    GimgError."""
    from gipp_codec import ArgumentTypeError, GimgError, read_gaussians

    for call in (decode, read_info, read_gaussians):
        with pytest.raises(TypeError, match="bytes of a .gimg file") as caught:
            call(not_bytes)
        assert isinstance(caught.value, GimgError) and isinstance(caught.value, ArgumentTypeError)


def test_a_path_given_for_bytes_says_to_read_the_file():
    from pathlib import Path

    from gipp_codec import open_gimg

    for path in ("file.gimg", Path("file.gimg")):
        with pytest.raises(TypeError, match=r"got a path .*open\(path, 'rb'\)\.read\(\)"):
            open_gimg(path)


def test_info_reports_the_render_work_against_its_limit(gimg_bytes):
    from gipp_codec.decoder import gaussians_as_floats
    from gipp_codec.format import parse_gimg
    from gipp_codec.render.convention import render_work

    parsed = parse_gimg(gimg_bytes)
    means, covs, _ = gaussians_as_floats(parsed)
    h, w = parsed.header["height"], parsed.header["width"]
    work = read_info(gimg_bytes)["render_work"]
    assert work["pixels"] == render_work(means, covs, w, h) > 0
    assert work["limit"] == (1 << 30) + 256 * w * h


def test_decode_auto_without_a_possible_gpu_is_the_cpu_path(tmp_path, monkeypatch):
    """``--device auto`` where no CUDA device can exist takes the CPU's start (prebuilt
    kernels, no torch import to find out), not the GPU path's."""
    import json as _json

    from click.testing import CliRunner

    from gipp_codec import gpu_decode
    from gipp_codec.cli import _register, cli
    from gipp_codec.commands import codec_cmd
    from gipp_codec.format import write_gimg
    from gipp_codec.format.synthetic import synthetic_quantized

    _register()
    src = tmp_path / "in.gimg"
    src.write_bytes(write_gimg(synthetic_quantized(40, 32, 24, seed=2)))
    monkeypatch.setattr(codec_cmd, "_cuda_may_exist", lambda: False)

    def no_gpu_lookup(device):
        raise AssertionError("auto looked for a GPU")

    monkeypatch.setattr(gpu_decode, "resolve_decode_device", no_gpu_lookup)
    res = CliRunner().invoke(cli, ["decode", str(src), str(tmp_path / "o.png"), "--device", "auto", "--json"])
    assert res.exit_code == 0, res.output
    assert _json.loads(res.output.strip().splitlines()[-1])["device"] == "cpu"


def test_a_decode_dequantizes_once_and_a_parse_never_serves_stale_floats(gimg_bytes, monkeypatch):
    """``decode`` renders the floats its parse's render-work check computed (one
    dequantization per decode); ``parse_gimg_with_floats`` gives the floats of the codes as
    parsed, and ``gaussians_as_floats`` computes them afresh, so a caller that changes the
    parsed codes gets floats of its codes."""
    import gipp_codec.quant.dequant as dq
    from gipp_codec.decoder import gaussians_as_floats
    from gipp_codec.format.container import parse_gimg, parse_gimg_with_floats

    expected = decode(gimg_bytes)
    calls = []
    real = dq.dequantize
    monkeypatch.setattr(dq, "dequantize", lambda g: calls.append(1) or real(g))
    np.testing.assert_array_equal(decode(gimg_bytes), expected)
    assert len(calls) == 1
    monkeypatch.undo()

    parsed, floats = parse_gimg_with_floats(gimg_bytes)
    for a, b in zip(floats, gaussians_as_floats(parsed)):
        np.testing.assert_array_equal(a, b)
    parsed.gaussians.q[0, 0] = (parsed.gaussians.q[0, 0] + 1) % 2  # another x code for the first Gaussian
    means, _, _ = gaussians_as_floats(parsed)
    assert means[0, 0] != floats[0][0, 0]
    np.testing.assert_array_equal(means[1:], floats[0][1:])
    np.testing.assert_array_equal(gaussians_as_floats(parse_gimg(gimg_bytes))[0], floats[0])


def test_a_float_mode_file_decodes_from_its_own_floats():
    """A float32-mode file's floats are its stored attributes, unchanged by the parse."""
    from gipp_codec.format.container import parse_gimg_with_floats

    data = (REPO / "conformance" / "valid" / "float32_mode.gimg").read_bytes()
    parsed, floats = parse_gimg_with_floats(data)
    g = parsed.gaussians
    assert floats[0] is g.means and floats[1] is g.covs and floats[2] is g.colors
    expected = np.asarray(Image.open(REPO / "conformance" / "valid" / "float32_mode.png").convert("RGB"))
    assert np.abs(decode(data).astype(int) - expected.astype(int)).max() <= 1
