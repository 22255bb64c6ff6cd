"""``tools/encode_scaling.py``: encode time and memory on mosaics of images."""

import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from encode_scaling import landscape_images, main, mosaic  # noqa: E402


def _folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    Image.fromarray(rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)).save(tmp_path / "im2b_portrait.png")
    return tmp_path


def test_mosaic_lays_the_same_size_images_side_by_side(tmp_path):
    paths = landscape_images(_folder(tmp_path))
    assert [p.name for p in paths] == [f"im{i}.png" for i in range(5)]  # the portrait one left out
    m = mosaic(paths, 2)
    assert m.shape == (24, 32, 3) and m.dtype == np.uint8
    tiles = [np.asarray(Image.open(p)) for p in paths[:4]]
    assert np.array_equal(m[:12, :16], tiles[0]) and np.array_equal(m[:12, 16:], tiles[1])
    assert np.array_equal(m[12:, :16], tiles[2]) and np.array_equal(m[12:, 16:], tiles[3])


def test_one_size_is_encoded_and_measured(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    folder = _folder(tmp_path / "in")
    out = tmp_path / "r.json"
    assert main(["--images", str(folder), "--tiles", "1", "--iterations", "5", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert (row["width"], row["height"], row["tiles"]) == (16, 12, 1)
    # (a 16 x 12 tile at 0.5 bpp fits no useful Gaussian: the encoder may write the base layer alone)
    assert row["gaussians"] >= 0 and row["seconds"] > 0 and row["peak_rss_mib"] > 10 and row["psnr"] > 5
    assert row["process_seconds"] >= row["seconds"]
    assert "| 1x1 | 16x12 |" in capsys.readouterr().out


def test_more_tiles_than_images_is_an_error(tmp_path):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["--images", str(_folder(tmp_path)), "--tiles", "3"])  # 9 images needed, 5 there
    assert exc.value.code == 2
