"""``tools/decode_memory.py``: the decoder's peak memory on files of many identical Gaussians."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from decode_memory import identical_gaussians_file, main  # noqa: E402

from gipp_codec import decode, read_info  # noqa: E402


def test_a_bomb_file_is_tiny_and_decodes_to_one_dot():
    small, large = identical_gaussians_file(9, 7, 1), identical_gaussians_file(9, 7, 50_000)
    assert len(large) < 400 and len(large) - len(small) < 64  # 50 000 Gaussians cost almost nothing
    assert read_info(large)["header"]["gaussian_count"] == 50_000
    image = decode(large)
    assert image.shape == (7, 9, 3)
    # 50 000 dots of 1/50 000 of (0.5, 0.25, 0.75) each add up to that colour at the centre only
    assert np.abs(image[3, 4].astype(int) - [127, 63, 190]).max() <= 2 and image[0, 0].max() == 0
    assert np.array_equal(decode(small)[0], np.zeros((9, 3), np.uint8))


def test_the_command_reports_memory_that_grows_with_the_count(tmp_path):
    out = tmp_path / "memory.json"
    assert main(["--sizes", "16x8", "--counts", "1,400000", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [(r["width"], r["height"], r["gaussians"], r["exit"]) for r in rows] == [(16, 8, 1, 0), (16, 8, 400_000, 0)]
    assert all(r["png_bytes"] > 0 and r["seconds"] > 0 for r in rows)
    assert rows[1]["peak_rss_mib"] > rows[0]["peak_rss_mib"] + 20  # 400 000 Gaussians' arrays are held at once


def test_a_region_of_the_largest_image_is_decoded_in_little_memory(tmp_path):
    """``--crop``: a 64 x 64 region at the centre of a 16384 x 16384 file (the format's largest
    image, whose whole decode holds about 1.9 GiB here) holds only the Gaussians and the region."""
    out = tmp_path / "memory.json"
    assert main(["--sizes", "16384x16384,40x30", "--counts", "1", "--base", "--crop", "64x64", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["crop"] for r in rows] == [[8160, 8160, 64, 64], [0, 0, 40, 30]] and all(r["exit"] == 0 for r in rows)
    assert rows[0]["peak_rss_mib"] < 400, rows[0]


def test_a_base_layer_alone_decodes_to_its_colour():
    """``--base`` files: a base layer (samples 32, 16, 48 of 63) with no Gaussians, or under one."""
    alone = identical_gaussians_file(40, 24, 0, base=True)
    assert read_info(alone)["header"]["gaussian_count"] == 0 and read_info(alone)["base"]["factor"] == 8
    assert np.all(decode(alone) == np.round(np.array([32, 16, 48]) / 63 * 255).astype(np.uint8))
    over = decode(identical_gaussians_file(40, 24, 1, base=True))
    assert np.all(over[12, 20] > decode(alone)[12, 20])  # the dot adds to the base at the centre
    assert not read_info(alone)["grey"]  # written as RGB, the larger output
