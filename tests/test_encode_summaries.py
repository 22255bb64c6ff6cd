"""``tools/encode_summaries.py``: ``gimg encode --json`` summaries as a bench_rd-style run."""

import json
import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import encode_summaries  # noqa: E402
from rd_lib import load_run  # noqa: E402


def _summary(tmp_path, name, args):
    """A real summary: a tiny encode's last stdout line, saved as NAME.json."""
    from gipp_codec.cli import _register, cli

    _register()
    rng = np.random.default_rng(1)
    png = tmp_path / f"{name}.png"
    Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(png)
    r = CliRunner().invoke(cli, ["encode", str(png), str(tmp_path / f"{name}.gimg"), "-i", "20", "--json", *args])
    assert r.exit_code == 0, r.output
    out = tmp_path / f"{name}_{len(args)}.json"
    out.write_text(r.stdout.strip().splitlines()[-1])
    return out, json.loads(out.read_text())


def test_summaries_become_records_that_rd_tools_read(tmp_path):
    a, sa = _summary(tmp_path, "one", ["--bpp", "2"])
    b, sb = _summary(tmp_path, "two", ["-n", "12"])
    run_path = tmp_path / "run.json"
    assert encode_summaries.main([str(a), str(b), "--out", str(run_path)]) == 0
    run = load_run(run_path)
    one, two = run["records"]
    assert one["image"] == "one" and one["point"] == "bpp=2" and one["bpp"] == sa["bpp"] and one["psnr"] == sa["psnr"]
    assert one["gaussians_final"] == sa["gaussians"] and one["encode_s"] == sa["seconds"]
    assert two["point"] == f"n={sb['gaussians']}" and two["target_bpp"] is None
    assert run["images"] == [{"name": "one", "width": 24, "height": 16}, {"name": "two", "width": 24, "height": 16}]


def test_bad_summaries_stop_the_tool_with_nothing_written(tmp_path, capsys):
    a, sa = _summary(tmp_path, "one", ["--bpp", "2"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({k: v for k, v in sa.items() if k != "psnr"}))
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps({**sa, "width": 48, "target_bpp": 1.0}))
    out = tmp_path / "run.json"
    for args, needle in (([a, a], "second summary of one at bpp=2"), ([bad], "no psnr"),
                         ([a, wide], "48x16 here and 24x16"), ([tmp_path / "none.json"], "cannot read")):
        with pytest.raises(SystemExit) as stop:
            encode_summaries.main([*map(str, args), "--out", str(out)])
        assert stop.value.code == 1 and needle in capsys.readouterr().err
        assert not out.exists()
