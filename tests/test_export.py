"""A file's Gaussians as arrays (``gipp_codec.export``, ``gimg export``)."""

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gipp_codec.decoder import decode
from gipp_codec.export import CSV_COLUMNS, read_gaussians
from gipp_codec.format import write_gimg
from gipp_codec.format.base_layer import base_from_image
from gipp_codec.format.synthetic import synthetic_correlation, synthetic_float, synthetic_quantized
from import_boundary import assert_loads_no_training  # pytest puts tests/ on sys.path

REPO = Path(__file__).resolve().parents[1]
W, H = 40, 24


def _cli():
    from gipp_codec.cli import _register, cli

    _register()
    return cli


@pytest.fixture(scope="module")
def files():
    """Small files of every kind: with a base layer, in the correlation form, in float32."""
    rng = np.random.default_rng(5)
    image = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    return {
        "base": write_gimg(synthetic_quantized(120, W, H, seed=6), base=base_from_image(image, 3, 6)),
        "correlation": write_gimg(synthetic_correlation(120, W, H, seed=7), payload_coding=3),
        "float32": write_gimg(synthetic_float(80, W, H, seed=8)),
        "convention1": write_gimg(synthetic_quantized(100, W, H, seed=9), render_convention=1),
    }


def _render_by_the_docstring(gs) -> np.ndarray:
    """uint8 [H, W, 3] from the exported arrays by the formula of ``gipp_codec.export``'s
    docstring, densely in binary64 (an implementation of its own)."""
    y, x = np.mgrid[0:gs.height, 0:gs.width] + 0.5  # [H, W] pixel centres
    out = np.zeros((gs.height, gs.width, 3))
    taper = np.exp(-4.5) if gs.render_convention == 2 else 0.0
    for (mx, my), (a, b, c), col, ok in zip(gs.means.astype(float), gs.covs.astype(float),
                                             gs.colors.astype(float), gs.valid):
        if not ok:
            continue
        dx, dy = x - mx, y - my
        m2 = (c * dx * dx - 2 * b * dx * dy + a * dy * dy) / (a * c - b * b)
        out += np.where(m2 <= 9, np.exp(-0.5 * m2) - taper, 0.0)[..., None] * col
    if gs.base is not None:
        gh, gw = gs.base.shape[:2]

        def axis(n, g):
            u = (np.arange(n) + 0.5) / gs.base_block - 0.5
            i0 = np.clip(np.floor(u), 0, g - 1).astype(int)
            t = np.where((u < 0) | (u >= g - 1), 0.0, u - np.floor(u))
            return i0, np.minimum(i0 + 1, g - 1), t

        r0, r1, s = axis(gs.height, gh)
        c0, c1, t = axis(gs.width, gw)
        rows = (1 - s)[:, None, None] * gs.base[r0] + s[:, None, None] * gs.base[r1]  # [H, gw, 3]
        out += (1 - t)[None, :, None] * rows[:, c0] + t[None, :, None] * rows[:, c1]
    return np.floor(np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("kind", ["base", "correlation", "float32", "convention1"])
def test_the_arrays_make_the_decoded_image(files, kind):
    gs = read_gaussians(files[kind])
    assert (gs.width, gs.height) == (W, H) and gs.render_convention == (1 if kind == "convention1" else 2)
    assert np.abs(_render_by_the_docstring(gs).astype(int) - decode(files[kind])).max() <= 1
    assert (gs.base is not None) == (kind == "base") and (gs.codes is None) == (kind == "float32")
    assert gs.correlation == (kind == "correlation")


def test_codes_scales_and_offsets_give_the_values(files):
    """Positions and colours are the codes times the scales plus the offsets (spec §6)."""
    gs = read_gaussians(files["base"])
    value = (gs.codes.astype(np.float64) * gs.scales.astype(np.float64) + gs.offsets.astype(np.float64)).astype(np.float32)
    assert np.array_equal(gs.means, value[:, :2]) and np.array_equal(gs.colors, value[:, 5:])
    assert np.allclose(gs.covs[:, [0, 2]], np.exp(value[:, [2, 4]].astype(np.float64)), rtol=1e-6)
    assert gs.bits == (12, 10, 6)


def test_the_axes_rebuild_the_covariances(files):
    gs = read_gaussians(files["correlation"])
    major, minor, angle = gs.axes()
    th = np.radians(angle)
    a = major ** 2 * np.cos(th) ** 2 + minor ** 2 * np.sin(th) ** 2
    b = (major ** 2 - minor ** 2) * np.sin(th) * np.cos(th)
    c = major ** 2 * np.sin(th) ** 2 + minor ** 2 * np.cos(th) ** 2
    assert np.allclose(np.stack([a, b, c], 1), gs.covs, rtol=1e-4, atol=1e-6)
    assert np.all(major >= minor) and np.all(np.abs(angle) <= 90)


def test_cli_npz_and_csv(files, tmp_path):
    src = tmp_path / "in.gimg"
    src.write_bytes(files["base"])
    gs = read_gaussians(files["base"])
    runner = CliRunner()
    res = runner.invoke(_cli(), ["export", str(src), str(tmp_path / "g.npz"), "--json"])
    assert res.exit_code == 0, res.output
    facts = json.loads(res.output.strip().splitlines()[-1])
    assert facts["gaussians"] == 120 and facts["base_grid"] == [3, 5] and facts["quantized"]
    with np.load(tmp_path / "g.npz") as npz:
        assert np.array_equal(npz["means"], gs.means) and np.array_equal(npz["codes"], gs.codes)
        assert np.array_equal(npz["base"], gs.base) and int(npz["base_block"]) == 8
    res = runner.invoke(_cli(), ["export", str(src), str(tmp_path / "g.csv")])
    assert res.exit_code == 0 and "not in a .csv" in res.output
    rows = list(csv.reader(io.StringIO((tmp_path / "g.csv").read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 121
    table = np.array([[float(v) for v in r[:8]] for r in rows[1:]])
    assert np.array_equal(table.astype(np.float32), np.hstack([gs.means, gs.covs, gs.colors]))
    res = runner.invoke(_cli(), ["export", str(src), "-", "--format", "csv"])
    assert res.exit_code == 0 and res.stdout_bytes.decode().startswith("x,y,cov_xx")


@pytest.mark.parametrize("args, message", [
    (["OUT.txt"], "written as .npz (everything) or .csv"),
    (["-"], "--format npz or csv is needed"),
])
def test_cli_export_refusals(files, tmp_path, args, message):
    src = tmp_path / "in.gimg"
    src.write_bytes(files["base"])
    out = [str(tmp_path / a) if a != "-" else a for a in args]
    res = CliRunner().invoke(_cli(), ["export", str(src), *out])
    assert res.exit_code == 2 and message in res.output
    assert not (tmp_path / "OUT.txt").exists()


def test_cli_export_of_an_invalid_file_writes_nothing(tmp_path):
    src = REPO / "conformance" / "invalid" / "bad_signature.gimg"
    out = tmp_path / "g.npz"
    res = CliRunner().invoke(_cli(), ["export", str(src), str(out)])
    assert res.exit_code == 2 and "not a .gimg file" in res.output and not out.exists()


def test_export_and_scaled_decode_load_neither_torch_nor_the_trainer(files, tmp_path):
    src = tmp_path / "in.gimg"
    src.write_bytes(files["base"])
    assert_loads_no_training(f"""
        import gipp_codec.decoder as d
        from gipp_codec.export import npz_bytes, read_gaussians
        data = open({str(src)!r}, "rb").read()
        npz_bytes(read_gaussians(data))
        assert d.decode(data, scale=2.5).shape == (60, 100, 3) and d.decode(data, scale=0.5).shape == (12, 20, 3)
    """)


def test_the_ellipse_figure_tool(files, tmp_path):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(REPO / "tools"))
    import plot_gaussians

    out = tmp_path / "e.png"
    src = tmp_path / "in.gimg"
    src.write_bytes(files["base"])
    assert plot_gaussians.main([str(src), str(out), "--every", "2"]) == 0
    from PIL import Image
    with Image.open(out) as im:
        assert im.size[0] > 100
    assert plot_gaussians.draw(files["base"], out) == int(read_gaussians(files["base"]).valid.sum())
    assert plot_gaussians.main([str(REPO / "conformance" / "invalid" / "bad_signature.gimg"), str(out)]) == 2
    # a close-up: only the Gaussians that reach the region, over the region decoded larger
    whole = plot_gaussians.draw(files["base"], out)
    assert 0 < plot_gaussians.draw(files["base"], out, crop=(10, 5, 12, 8), zoom=3) < whole
    assert plot_gaussians.main([str(src), str(out), "--crop", "10,5,12,8", "--zoom", "2"]) == 0
    assert plot_gaussians.main([str(src), str(out), "--crop", "10,5,400,8"]) == 2  # past the image
    assert plot_gaussians.main([str(src), str(out), "--crop", "10,5"]) == 2  # not four numbers
    with pytest.raises(SystemExit):
        plot_gaussians.main([str(src), str(out), "--crop", "a,b,c,d"])


def test_the_axes_of_a_very_elongated_gaussian():
    """The smaller standard deviation as det / major^2, not by a cancelling difference."""
    from gipp_codec.export import GaussianSet

    covs = np.array([[2.0 ** 40, 2.0 ** 20 - 0.0625, 1.0], [4.0, 0.0, 1.0], [1.0, 2.0, 1.0]], np.float32)
    gs = GaussianSet(8, 8, 2, np.zeros((3, 2), np.float32), covs, np.zeros((3, 3), np.float32),
                     None, 0, None, None, None, None)
    major, minor, _ = gs.axes()
    det = 2.0 ** 40 - (2.0 ** 20 - 0.0625) ** 2
    assert minor[0] == pytest.approx(np.sqrt(det / (2.0 ** 40 + 1)), rel=1e-9)
    assert (major[1], minor[1]) == (2.0, 1.0)
    assert np.isnan(major[2]) and np.isnan(minor[2])  # not a valid Gaussian


def test_cli_format_and_extension(files, tmp_path):
    src = tmp_path / "in.gimg"
    src.write_bytes(files["convention1"])
    runner = CliRunner()
    res = runner.invoke(_cli(), ["export", str(src), str(tmp_path / "g.npz"), "--format", "csv"])
    assert res.exit_code == 2 and "--format csv contradicts the name" in res.output
    assert not (tmp_path / "g.npz").exists()
    res = runner.invoke(_cli(), ["export", str(src), str(tmp_path / "g.txt"), "--format", "csv", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["render_convention"] == 1
    rows = list(csv.reader(io.StringIO((tmp_path / "g.txt").read_text())))
    assert rows[0][-1] == "render_convention" and {r[-1] for r in rows[1:]} == {"1"}


def test_the_ellipse_tool_refuses_an_output_it_cannot_write(files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    sys.path.insert(0, str(REPO / "tools"))
    import plot_gaussians

    src = tmp_path / "in.gimg"
    src.write_bytes(files["base"])
    assert plot_gaussians.main([str(src), str(tmp_path / "missing" / "e.png")]) == 2
    assert plot_gaussians.main([str(src), str(tmp_path / "e.notaformat")]) == 2
    assert "Traceback" not in capsys.readouterr().err
