"""``gimg fit``: JSON on the last line, preview output, one-line errors with exit status 2."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from gipp_codec.cli import _register, cli
from gipp_codec.metrics import psnr




@pytest.fixture(scope="module")
def runner():
    _register()
    return CliRunner()


@pytest.fixture
def tiny_png(tmp_path):
    yy, xx = np.mgrid[0:16, 0:24]
    img = np.stack([(xx * 10) % 256, (yy * 15) % 256, ((xx + yy) * 7) % 256], -1).astype(np.uint8)
    path = tmp_path / "tiny.png"
    Image.fromarray(img).save(path)
    return path


def _run(runner, args):
    return runner.invoke(cli, args, catch_exceptions=False)


def test_fit_json_last_line(runner, tiny_png, tmp_path):
    preview = tmp_path / "prev.png"
    res = _run(runner, ["fit", str(tiny_png), "--gaussians", "20", "--iterations", "15", "--backend",
                        "reference", "--device", "cpu", "--preview", str(preview), "--json"])
    assert res.exit_code == 0, res.output
    last = res.stdout.strip().splitlines()[-1]
    data = json.loads(last)
    for key in ("psnr", "ms_ssim", "gaussians", "iterations", "seconds"):
        assert key in data
    assert data["iterations"] == 15 and 1 <= data["gaussians"] <= 20
    assert data["ms_ssim"] is None  # 16 px is too small for MS-SSIM
    with Image.open(preview) as im:
        assert im.size == (24, 16) and im.mode == "RGB"
        shown = np.asarray(im)
    with Image.open(tiny_png) as im:
        source = np.asarray(im.convert("RGB"))
    assert data["psnr"] == pytest.approx(psnr(shown, source), abs=0.01)  # the reported PSNR is the preview's


def test_fit_human_summary(runner, tiny_png):
    res = _run(runner, ["fit", str(tiny_png), "-n", "10", "-i", "5", "--backend", "reference"])
    assert res.exit_code == 0, res.output
    assert "PSNR" in res.stdout and "Gaussians" in res.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args,needle",
    [
        (["fit", "{missing}", "-n", "5"], "no such file"),
        (["fit", "{png}", "-n", "0"], "--gaussians must be >= 1"),
        (["fit", "{png}", "-n", "-3"], "--gaussians must be >= 1"),
        (["fit", "{png}", "-n", "5", "-i", "0"], "--iterations must be >= 1"),
        (["fit", "{png}", "-n", "100000"], "too large"),
        (["fit", "{text}", "-n", "5"], "not a readable image"),
        (["fit", "{png}", "-n", "5", "--seed", "99999999999999999999"], "--seed must be"),
        (["fit", "{png}", "-n", "5", "--preview", "{same}", "--out", "{same}"], "same file"),
        (["fit", "{png}", "-n", "5", "--preview", "{prev}", "--out", "{nodir}"], "does not exist"),
    ],
)
def test_fit_errors_are_one_line(runner, tiny_png, tmp_path, args, needle):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    subst = {"{missing}": str(tmp_path / "missing.png"), "{png}": str(tiny_png), "{text}": str(text),
             "{same}": str(tmp_path / "same.out"), "{prev}": str(tmp_path / "prev.png"),
             "{nodir}": str(tmp_path / "no_dir" / "o.gimg")}
    args = [subst.get(a, a) for a in args] + ["--backend", "reference"]
    res = runner.invoke(cli, args)
    assert not (tmp_path / "same.out").exists() and not (tmp_path / "prev.png").exists()  # checked before the fit
    assert res.exit_code == 2
    err_lines = res.stderr.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith("gimg: error: ") and needle in err_lines[0]
    assert "Traceback" not in res.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fit_cuda_without_cuda_is_a_clear_error(runner, tiny_png):
    res = runner.invoke(cli, ["fit", str(tiny_png), "-n", "5", "--device", "cuda"])
    assert res.exit_code == 2 and "CUDA is not available" in res.stderr


def test_fit_json_says_grey_and_what_out_wrote(runner, tmp_path):
    """``grey`` as encode reports it (one colour per Gaussian), and with --out the file's
    bytes and bpp."""
    grey = np.repeat(np.mgrid[0:16, 0:24][1][..., None] * 10, 3, axis=2).astype(np.uint8)
    src = tmp_path / "grey.png"
    Image.fromarray(grey).save(src)
    out = tmp_path / "g.gimg"
    res = _run(runner, ["fit", str(src), "-n", "8", "-i", "10", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["grey"] is True and data["bytes"] == out.stat().st_size
    assert data["bpp"] == pytest.approx(8 * out.stat().st_size / (16 * 24))
    res = _run(runner, ["fit", str(src), "-n", "8", "-i", "5", "--json"])
    assert "bytes" not in json.loads(res.stdout.strip().splitlines()[-1])
