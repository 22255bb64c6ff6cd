"""``tools/position_precision_by_scale.py``: coarser positions for some Gaussians, without retraining."""

import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from position_precision_by_scale import (RULES, SENSITIVITY_RULES, drops_by_sensitivity, main,  # noqa: E402
                                         position_sensitivity, render_psnr)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_color_refit import _image  # noqa: E402  (the colour refit's test image)

from gipp_codec import decode, encode  # noqa: E402
from gipp_codec.format.container import parse_gimg  # noqa: E402
from gipp_codec.metrics import psnr  # noqa: E402


def _file(tmp_path):
    """A small encoded file with a base layer, its reference PNG beside it."""
    img = _image()
    Image.fromarray(img).save(tmp_path / "tiny.png")
    data = encode(img, gaussians=40, iterations=120, device="cpu")
    (tmp_path / "tiny_test.gimg").write_bytes(data)
    return img, data


def test_render_is_the_decoders_and_the_least_sensitive_are_coarsened_first(tmp_path):
    """Unchanged integers render to the decoder's own output (base layer included); a
    sensitivity rule coarsens its fraction of the set, and only Gaussians no more sensitive
    than any it leaves alone."""
    img, data = _file(tmp_path)
    parsed = parse_gimg(data)
    assert parsed.base is not None
    assert render_psnr(parsed, parsed.gaussians.q, img) == psnr(decode(data), img)
    g = parsed.gaussians
    score = position_sensitivity(g)  # [N]
    assert np.all(score >= 0.0)
    drop = drops_by_sensitivity(g, ((0.5, 1),))
    n = g.q.shape[0]
    assert np.sum(drop == 1) == round(0.5 * n) and set(np.unique(drop)) <= {0, 1}
    assert score[drop == 1].max() <= score[drop == 0].min()
    two = drops_by_sensitivity(g, ((0.25, 2), (0.5, 1)))
    assert np.sum(two == 2) == round(0.25 * n) and np.sum(two == 1) == round(0.5 * n) - round(0.25 * n)
    assert score[two == 2].max() <= score[two == 1].min()


def test_every_rule_reported(tmp_path, capsys):
    """The JSON holds each rule once with a finite PSNR change; the rule that coarsens 75 %
    of the set costs PSNR; the table lists every rule."""
    _file(tmp_path)
    out = tmp_path / "r.json"
    assert main([str(tmp_path / "tiny_test.gimg"), "--images", str(tmp_path), "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    names = [r["rule"] for r in row["rules"]]
    assert names == [*RULES, *SENSITIVITY_RULES]
    by_name = {r["rule"]: r for r in row["rules"]}
    assert all(np.isfinite(r["delta_psnr"]) and np.isfinite(r["delta_position_bits"]) for r in row["rules"])
    most = by_name["d1, least sensitive 75 %"]
    assert abs(most["coarser_fraction"] - 0.75) < 1.0 / row["gaussians"] and most["delta_psnr"] < 0.0
    table = capsys.readouterr().out
    assert all(f"| {name} |" in table for name in names)
