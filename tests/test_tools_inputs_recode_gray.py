"""Bad input to ``tools/recode.py``, ``tools/gray_images.py`` and ``tools/synthetic_images.py``:
one line on stderr and a non-zero exit, never a traceback, an input overwritten or a partial
output; and good input gives what it gave before."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import gray_images  # noqa: E402
import recode  # noqa: E402
import synthetic_images  # noqa: E402

from gipp_codec.format import parse_gimg  # noqa: E402
from gipp_codec.format.container import write_gimg  # noqa: E402
from gipp_codec.format.synthetic import synthetic_quantized  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402

CORRELATION = ROOT / "conformance" / "valid" / "correlation_odd_7x3.gimg"


def _gimg(seed: int = 1, coding: int = 2) -> bytes:
    return write_gimg(synthetic_quantized(60, 32, 24, seed=seed), payload_coding=coding)


def _png(path: Path, seed: int = 0, size=(32, 24)) -> Path:
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path, format="PNG" if path.suffix != ".tif" else "TIFF")
    return path


def _error_line(capsys, prog: str, *names) -> str:
    """The one line on stderr, checked to be ``PROG: error: ...`` naming ``names``."""
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith(f"{prog}: error: ") and "Traceback" not in err, err
    for name in names:
        assert str(name) in err, err
    return err


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- tools/recode.py --------------------------------------------------------------------------

def test_recode_refuses_out_at_the_inputs_own_folder_and_json_on_an_input(tmp_path, capsys):
    src = tmp_path / "a.gimg"
    src.write_bytes(_gimg(coding=1))
    before = src.read_bytes()
    for argv in ([str(src), "--out", str(tmp_path)], [str(src), "--json", str(src)]):
        with pytest.raises(SystemExit) as exc:
            recode.main(argv)
        assert exc.value.code == 2
        _error_line(capsys, "recode", src)
        assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gimg"]


def test_recode_refuses_two_inputs_of_one_name_with_out(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a, b = tmp_path / "x" / "f.gimg", tmp_path / "y" / "f.gimg"
    a.write_bytes(_gimg(1, 1))
    b.write_bytes(_gimg(2, 1))
    with pytest.raises(SystemExit) as exc:
        recode.main([str(a), str(b), "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    _error_line(capsys, "recode", a, b)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["missing", "folder", "png", "truncated", "empty"])
def test_recode_names_a_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, kind):
    good = tmp_path / "good.gimg"
    good.write_bytes(_gimg(coding=1))
    bad = tmp_path / f"bad_{kind}.gimg"
    if kind == "folder":
        bad.mkdir()
    elif kind == "png":
        _png(bad)
    elif kind == "truncated":
        bad.write_bytes(_gimg(coding=1)[:100])
    elif kind == "empty":
        bad.write_bytes(b"")
    out, report = tmp_path / "out", tmp_path / "report.json"
    assert recode.main([str(good), str(bad), "--out", str(out), "--json", str(report)]) == 1
    _error_line(capsys, "recode", bad)
    assert not out.exists() and not report.exists()


def test_recode_refuses_a_coding_that_cannot_carry_a_correlation_naming_the_file_and_writes_nothing(tmp_path):
    good = tmp_path / "good.gimg"
    good.write_bytes(_gimg(coding=1))
    corr = tmp_path / "corr.gimg"
    corr.write_bytes(CORRELATION.read_bytes())
    assert parse_gimg(corr.read_bytes()).header["payload_coding"] == 3
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        recode.main([str(good), str(corr), "--coding", "2", "--out", str(out)])
    msg = exc.value.code  # a message: exit status 1
    assert isinstance(msg, str) and msg.startswith("recode: error: ")
    assert "\n" not in msg and str(corr) in msg and "coding 2" in msg and "kept at coding 3" in msg
    assert not out.exists()


def test_recode_keeps_a_coding_3_file_at_coding_3_through_the_command_line(tmp_path):
    corr = tmp_path / "corr.gimg"
    corr.write_bytes(CORRELATION.read_bytes())
    run = subprocess.run([sys.executable, "tools/recode.py", str(corr), "--out", str(tmp_path / "out")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "coding 3 -> 3" in run.stdout
    # the same integers and grid at coding 3; no larger (the vector predates the encoder's
    # search of the histograms' levels, which codes it in fewer bits)
    before, after = corr.read_bytes(), (tmp_path / "out" / "corr.gimg").read_bytes()
    a, b = parse_gimg(before), parse_gimg(after)
    assert b.header["payload_coding"] == 3 and len(after) <= len(before)
    assert np.array_equal(a.gaussians.q, b.gaussians.q) and np.array_equal(a.header["scales"], b.header["scales"])
    refused = subprocess.run([sys.executable, "tools/recode.py", str(corr), "--coding", "1"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1 and str(corr) in refused.stderr
    assert "Traceback" not in refused.stderr


def test_recode_refuses_an_out_that_is_a_file(tmp_path, capsys):
    src = tmp_path / "a.gimg"
    src.write_bytes(_gimg(coding=1))
    taken = tmp_path / "taken"
    taken.write_bytes(b"keep")
    for out in (taken, taken / "below"):
        with pytest.raises(SystemExit) as exc:
            recode.main([str(src), "--out", str(out)])
        assert exc.value.code == 2
        _error_line(capsys, "recode", out)
    assert taken.read_bytes() == b"keep"


@pytest.mark.parametrize("where", ["missing_folder", "folder"])
def test_recode_checks_json_before_any_work(tmp_path, capsys, where, monkeypatch):
    src = tmp_path / "a.gimg"
    src.write_bytes(_gimg(coding=1))
    report = tmp_path / "nope" / "r.json" if where == "missing_folder" else tmp_path
    called = []
    monkeypatch.setattr(recode, "recode", lambda *a, **k: called.append(a))
    with pytest.raises(SystemExit) as exc:
        recode.main([str(src), "--out", str(tmp_path / "out"), "--json", str(report)])
    assert exc.value.code == 2
    _error_line(capsys, "recode", report)
    assert not called and not (tmp_path / "out").exists()


def test_recode_good_input_unchanged(tmp_path, capsys):
    """Two files re-coded to coding 2 (the writer's bytes) with a report; --json inside the --out
    folder that is still to be made works as before."""
    g1, g2 = (synthetic_quantized(60, 32, 24, seed=s) for s in (1, 2))
    for i, g in enumerate((g1, g2)):
        (tmp_path / f"f{i}.gimg").write_bytes(write_gimg(g, payload_coding=1))
    out = tmp_path / "out"
    assert recode.main([str(tmp_path / "f0.gimg"), str(tmp_path / "f1.gimg"), "--out", str(out),
                        "--json", str(out / "r.json")]) == 0
    assert (out / "f0.gimg").read_bytes() == write_gimg(g1, payload_coding=2)
    assert (out / "f1.gimg").read_bytes() == write_gimg(g2, payload_coding=2)
    assert "mean over 2 files" in capsys.readouterr().out and (out / "r.json").stat().st_size > 0


# --- tools/gray_images.py ---------------------------------------------------------------------

def test_gray_refuses_out_dir_equal_to_src_dir(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    before = _tree(src)
    for out in (src, src / "."):
        with pytest.raises(SystemExit) as exc:
            gray_images.main([str(src), str(out)])
        assert exc.value.code == 2
        _error_line(capsys, "gray_images")
        assert _tree(src) == before


def test_gray_refuses_an_output_that_is_an_input(tmp_path, capsys):
    """OUT_DIR a subfolder of SRC_DIR whose image the pattern matches as an input."""
    src = tmp_path / "src"
    (src / "g").mkdir(parents=True)
    _png(src / "g" / "a.png")
    before = _tree(src)
    with pytest.raises(SystemExit) as exc:
        gray_images.main([str(src), str(src / "g"), "--pattern", "g/*.png"])
    assert exc.value.code == 2
    _error_line(capsys, "gray_images", src / "g" / "a.png")
    assert _tree(src) == before


def test_gray_names_a_non_image_and_writes_nothing(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    (src / "b.png").write_bytes(b"not an image at all")
    _png(src / "c.png", 1)
    assert gray_images.main([str(src), str(tmp_path / "out")]) == 1
    _error_line(capsys, "gray_images", src / "b.png")
    assert not (tmp_path / "out").exists()


def test_gray_refuses_two_inputs_of_one_stem(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    Image.open(_png(tmp_path / "x.png", 1)).save(src / "a.tif")
    with pytest.raises(SystemExit) as exc:
        gray_images.main([str(src), str(tmp_path / "out"), "--pattern", "*"])
    assert exc.value.code == 2
    _error_line(capsys, "gray_images", src / "a.png", src / "a.tif")
    assert not (tmp_path / "out").exists()


def test_gray_missing_src_says_not_a_folder(tmp_path, capsys):
    assert gray_images.main([str(tmp_path / "nope"), str(tmp_path / "out")]) == 1
    err = _error_line(capsys, "gray_images", tmp_path / "nope")
    assert "not a folder" in err and "no *.png" not in err


@pytest.mark.parametrize("pattern", ["", "/abs/*", "a**b/*.png"])
def test_gray_bad_pattern_is_one_line(tmp_path, capsys, pattern):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    with pytest.raises(SystemExit) as exc:
        gray_images.main([str(src), str(tmp_path / "out"), "--pattern", pattern])
    assert exc.value.code == 2
    _error_line(capsys, "gray_images", "--pattern")
    assert not (tmp_path / "out").exists()


def test_gray_out_dir_that_is_a_file(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    taken = tmp_path / "taken"
    taken.write_bytes(b"keep")
    with pytest.raises(SystemExit) as exc:
        gray_images.main([str(src), str(taken)])
    assert exc.value.code == 2
    _error_line(capsys, "gray_images", taken)
    assert taken.read_bytes() == b"keep"


def test_gray_sixteen_bit_grey_is_read_as_gimg_reads_it(tmp_path, capsys):
    """A 16-bit grey PNG (Pillow mode I;16) gives the 8-bit grey gimg would encode, not {0, 255}."""
    src = tmp_path / "src"
    src.mkdir()
    levels = np.linspace(0, 65535, 32 * 24).reshape(24, 32).astype(np.uint16)
    Image.fromarray(levels).save(src / "g16.png")
    with Image.open(src / "g16.png") as im:
        assert im.mode.startswith("I")
    assert gray_images.main([str(src), str(tmp_path / "out")]) == 0
    grey = np.asarray(Image.open(tmp_path / "out" / "g16.png"))
    assert np.array_equal(grey, load_image(src / "g16.png")[0][..., 0]) and len(np.unique(grey)) > 200


def test_gray_good_input_unchanged(tmp_path, capsys):
    """An 8-bit RGB PNG gives what Pillow's convert("RGB").convert("L").save wrote before."""
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    assert gray_images.main([str(src), str(tmp_path / "out")]) == 0
    with Image.open(src / "a.png") as im:
        buf = io.BytesIO()
        im.convert("RGB").convert("L").save(buf, format="PNG")
    assert (tmp_path / "out" / "a.png").read_bytes() == buf.getvalue()
    assert capsys.readouterr().out == f"1 grayscale images in {tmp_path / 'out'}\n"


def test_gray_through_the_command_line_leaves_the_originals(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _png(src / "a.png")
    before = _tree(src)
    run = subprocess.run([sys.executable, "tools/gray_images.py", str(src), str(src)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert _tree(src) == before


# --- tools/synthetic_images.py ----------------------------------------------------------------

def test_synthetic_refuses_an_empty_out_dir(tmp_path):
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "synthetic_images.py"), ""], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("synthetic_images: error: ")
    assert os.listdir(tmp_path) == []


def test_synthetic_out_dir_that_is_a_file(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_bytes(b"keep")
    for out in (taken, taken / "below"):
        with pytest.raises(SystemExit) as exc:
            synthetic_images.main([str(out)])
        assert exc.value.code == 2
        _error_line(capsys, "synthetic_images", out)
    assert taken.read_bytes() == b"keep"
