"""``tools/code_search_gain.py``: the code search on finished files, by sweep count and rate weight."""

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from code_search_gain import main  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_color_refit import _image  # noqa: E402  (the colour refit's test image)

from gipp_codec import encode  # noqa: E402


def test_a_lower_rate_weight_spends_more_bits(tmp_path, capsys):
    """One row per (weight, sweeps); the search that ignores the rate writes a larger file
    than one that weighs it heavily, and reports the PSNR per bpp it bought."""
    y, x = np.mgrid[0:64, 0:96].astype(np.float64)
    img = np.stack([128 + 100 * np.sin(x / 5) * np.cos(y / 7), 128 + 90 * np.cos(x / 9 + y / 4),
                    np.where((x - 48) ** 2 + (y - 32) ** 2 < 400, 220, 40)], axis=2)
    img = np.clip(img, 0, 255).astype(np.uint8)  # [64, 96, 3]
    Image.fromarray(img).save(tmp_path / "small.png")
    (tmp_path / "small.gimg").write_bytes(encode(img, gaussians=300, iterations=150, device="cpu"))
    out = tmp_path / "rows.json"
    assert main([str(tmp_path / "small.gimg"), str(tmp_path / "small.png"), "--sweeps", "1,3",
                 "--rate-weights", "0,5", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["rate_weight"], r["sweeps"]) for r in rows] == [(0.0, 1), (0.0, 3), (5.0, 1), (5.0, 3)]
    free, priced = rows[1], rows[3]
    assert free["bpp_added"] > priced["bpp_added"] and priced["bpp_added"] < 0  # weighed heavily: bits saved
    assert free["psnr_gain"] > priced["psnr_gain"]
    for r in rows:
        assert (r["db_per_bpp"] is None) == (r["bpp_added"] <= 0)
    assert f"| small.gimg | {rows[0]['gaussians']} | 5 | 3 |" in capsys.readouterr().out


def test_a_grey_file_is_refused(tmp_path):
    grey = _image()[..., :1].repeat(3, axis=2)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    (tmp_path / "grey.gimg").write_bytes(encode(grey, gaussians=20, iterations=40, device="cpu"))
    with pytest.raises(SystemExit, match="grey file"):
        main([str(tmp_path / "grey.gimg"), str(tmp_path / "grey.png"), "--sweeps", "1"])
