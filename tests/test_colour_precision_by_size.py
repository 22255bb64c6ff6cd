"""``tools/colour_precision_by_size.py``: colour precision by Gaussian size, without retraining."""

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from colour_precision_by_size import continuous_colours, group_at_depth, main, psnr_of, squared_error  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_color_refit import _image  # noqa: E402  (the colour refit's test image)

from gipp_codec import encode  # noqa: E402


def test_groups_by_size_cost_and_headroom(tmp_path, capsys):
    """On a small encoded file: the groups run from small to broad Gaussians, one colour bit
    less saves part of the file and costs PSNR, and the JSON and the table hold it all."""
    img = _image()
    Image.fromarray(img).save(tmp_path / "tiny.png")
    (tmp_path / "tiny_test.gimg").write_bytes(encode(img, gaussians=40, iterations=120, device="cpu"))
    out = tmp_path / "r.json"
    assert main([str(tmp_path / "tiny_test.gimg"), "--images", str(tmp_path), "--groups", "2",
                 "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    assert row["gaussians"] == 40 and len(row["groups"]) == 2
    small, broad = row["groups"]
    assert small["sqrt_det_median"] < broad["sqrt_det_median"]
    for g in (small, broad):
        assert 0.0 < g["file_pct_saved"] < 100.0 and g["delta_psnr_drop"] < 0.0
    assert all(np.isfinite([row["headroom_all"], small["headroom"], broad["headroom"]]))
    assert "| 1 |" in capsys.readouterr().out


def test_continuous_colours_recover_an_image_the_geometry_can_draw():
    """The image is the file's own decoded render; from colours halved, Gauss-Newton on the
    clamped error comes back to it (the 8-bit rounding aside), for all Gaussians at once
    and for half of them with the others held as the background."""
    from gipp_codec.decoder import render_parsed_uint8
    from gipp_codec.format.container import parse_gimg
    from gipp_codec.quant.dequant import dequantize

    parsed = parse_gimg(encode(_image(), gaussians=40, iterations=120, device="cpu"))
    reference = render_parsed_uint8(parsed)  # [H, W, 3]
    means, covs, colors = dequantize(parsed.gaussians)
    for rows in (np.arange(40), np.arange(0, 40, 2)):
        start = colors.copy()
        start[rows] *= 0.5
        before = psnr_of(squared_error(parsed, means, covs, start, reference))
        after = psnr_of(squared_error(parsed, means, covs,
                                      continuous_colours(parsed, means, covs, start, rows, reference), reference))
        assert before < 25.0 and after > 45.0, (before, after)


def test_the_finer_grid_holds_the_same_colours_and_the_search_runs(tmp_path):
    """One bit finer (step / 2, q -> 2 q) dequantizes to exactly the file's colours; with
    ``--search`` each group has its searched arms, the finer one costing bits."""
    from gipp_codec.format.container import parse_gimg
    from gipp_codec.quant.dequant import dequantize_rows

    img = _image()
    data = encode(img, gaussians=40, iterations=120, device="cpu")
    g = parse_gimg(data).gaussians
    rows = np.arange(0, 40, 3)
    q, s, o, bits = group_at_depth(g, rows, 1)
    assert bits[5:] == [b + 1 for b in g.bits.per_channel()[5:]] and q[:, 5:].max() < 1 << bits[5]
    assert np.array_equal(dequantize_rows(q, s, o), dequantize_rows(g.q[rows], g.scales, g.offsets))
    Image.fromarray(img).save(tmp_path / "tiny.png")
    (tmp_path / "tiny_s.gimg").write_bytes(data)
    out = tmp_path / "r.json"
    assert main([str(tmp_path / "tiny_s.gimg"), "--images", str(tmp_path), "--groups", "2", "--search", "4",
                 "--json", str(out)]) == 0
    for grp in json.loads(out.read_text())[0]["groups"]:
        assert grp["file_pct_spent_searched"] > 0.0 and grp["file_pct_saved_searched"] > 0.0
        assert np.isfinite([grp["delta_psnr_drop_searched"], grp["delta_psnr_add_searched"]]).all()


def test_a_float_file_is_refused(tmp_path):
    from gipp_codec.encoder import encode_float

    img = _image(8, 8)
    Image.fromarray(img).save(tmp_path / "f.png")
    data, _ = encode_float(img, 6, iterations=5, device="cpu")
    (tmp_path / "f_x.gimg").write_bytes(data)
    with pytest.raises(SystemExit, match="float32 file"):
        main([str(tmp_path / "f_x.gimg"), "--images", str(tmp_path)])
