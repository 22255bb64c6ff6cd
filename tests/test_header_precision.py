"""``tools/header_precision.py``: the cost of half-precision scales and offsets, without retraining."""

import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from header_precision import half_grid, main  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_color_refit import _image  # noqa: E402  (the colour refit's test image)

from gipp_codec import encode  # noqa: E402
from gipp_codec.format.container import parse_gimg  # noqa: E402


def test_the_half_grid_holds_f16_values_and_the_nearest_codes(tmp_path, capsys):
    """Scales and offsets become f16-representable; every code is the nearest on the new grid
    to its old value and within the channel's codes; the tool reports every file."""
    img = _image()
    Image.fromarray(img).save(tmp_path / "tiny.png")
    data = encode(img, gaussians=40, iterations=60, device="cpu")
    (tmp_path / "tiny_test.gimg").write_bytes(data)
    g = parse_gimg(data).gaussians
    h = half_grid(g)
    assert np.array_equal(h.scales.astype(np.float16).astype(np.float32), h.scales)
    assert np.array_equal(h.offsets.astype(np.float16).astype(np.float32), h.offsets)
    old = g.q.astype(np.float64) * g.scales.astype(np.float64) + g.offsets.astype(np.float64)  # [N, 8]
    new = h.q.astype(np.float64) * h.scales.astype(np.float64) + h.offsets.astype(np.float64)
    top = np.array([(1 << b) - 1 for b in g.bits.per_channel()])
    inside = (h.q > 0) & (h.q < top)  # not clipped: within half a new step of the old value
    assert np.all(np.abs(new - old)[inside] <= 0.5 * h.scales.astype(np.float64)[np.nonzero(inside)[1]] + 1e-9)
    out = tmp_path / "r.json"
    assert main([str(tmp_path / "tiny_test.gimg"), "--images", str(tmp_path), "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["bytes"] == len(data) and np.isfinite(row["delta_psnr"])
    assert row["header_saving_share"] == 32 / len(data)
    assert "| tiny_test.gimg |" in capsys.readouterr().out
