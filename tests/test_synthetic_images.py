"""``tools/synthetic_images.py``: the non-photographic test images."""

import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from synthetic_images import IMAGES, main  # noqa: E402


def test_writes_each_image_the_same_on_every_run(tmp_path, capsys):
    """Two runs in one process (one Pillow) write the same bytes; each image is RGB uint8 of
    the size its name says."""
    assert main([str(tmp_path / "a")]) == 0 and main([str(tmp_path / "b")]) == 0
    assert f"{len(IMAGES)} images" in capsys.readouterr().out
    for name in IMAGES:
        first, second = (tmp_path / d / name for d in ("a", "b"))
        assert first.read_bytes() == second.read_bytes()
        with Image.open(first) as im:
            assert im.mode == "RGB"
            width, height = (int(v) for v in name.rsplit("_", 1)[1].removesuffix(".png").split("x"))
            assert im.size == (width, height)


def test_each_image_has_the_content_its_docstring_names():
    """flat has one colour, checker two, zoneplate is grey and spans the levels, text is
    mostly white with black strokes, noise has nearly every level in every channel."""
    assert len(np.unique(IMAGES["flat_256x256.png"]().reshape(-1, 3), axis=0)) == 1
    assert len(np.unique(IMAGES["checker_256x256.png"]().reshape(-1, 3), axis=0)) == 2
    zone = IMAGES["zoneplate_256x256.png"]()
    assert np.array_equal(zone[..., 0], zone[..., 1]) and zone.min() <= 2 and zone.max() >= 253
    text = IMAGES["text_512x256.png"]()
    assert 0.7 < np.mean(text == 255) < 0.99 and (text == 0).any()
    noise = IMAGES["noise_128x128.png"]()
    assert all(len(np.unique(noise[..., c])) > 250 for c in range(3))
    grad = IMAGES["gradient_256x256.png"]().astype(np.int64)
    assert np.abs(np.diff(grad, axis=0)).max() <= 3 and np.abs(np.diff(grad, axis=1)).max() <= 3
