"""``tools/bench_rd.py`` refuses bad outputs and options before any work: one line, exit 2,
no output written over an input and no folder made for a refused run."""

import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import bench_rd  # noqa: E402


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "img0.png"
    Image.fromarray((np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.mark.parametrize("extra, message", [
    (["--json", "{image}"], "is the input"),
    (["--plot", "{image}"], "is the input"),
    (["--markdown", "{image}"], "is the input"),
    (["--json", "{dir}/same.txt", "--markdown", "{dir}/same.txt"], "two outputs are the same file"),
    (["--plot", "{dir}/plot"], "name the figure with a suffix matplotlib writes"),
    (["--json", ""], "--json needs a file name"),
])
def test_outputs_that_would_overwrite_an_input_or_each_other_are_refused(image, capsys, extra, message):
    before = image.read_bytes()
    argv = [str(image), "--codecs", "jpeg", "--targets", "1", "-q"]
    argv += [a.format(image=image, dir=image.parent) for a in extra]
    assert bench_rd.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert image.read_bytes() == before and sorted(p.name for p in image.parent.iterdir()) == ["img0.png"]


def test_a_refused_run_makes_no_output_folder(image, capsys):
    out = image.parent / "new" / "sub" / "x.json"
    assert bench_rd.main([str(image.parent / "missing.png"), "--codecs", "jpeg", "--json", str(out), "-q"]) == 2
    assert "no such file" in capsys.readouterr().err and not (image.parent / "new").exists()


@pytest.mark.parametrize("extra, message", [
    (["--gimg-gaussians", "inf"], "whole numbers"),
    (["--gimg-gaussians", "1.5"], "whole numbers"),
    (["--gimg-bits", "40/40/40"], "position=40 is invalid"),
    (["--gimg-qat", "nosuch=1"], "expected FIELD=VALUE"),
])
def test_bad_gimg_options_are_usage_errors(image, capsys, extra, message):
    assert bench_rd.main([str(image), "--codecs", "gimg", "-q"] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
