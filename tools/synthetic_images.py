#!/usr/bin/env python3
"""Non-photographic test images, for measuring the codec beyond Kodak's photographs.

    python tools/synthetic_images.py OUT_DIR

Writes seven RGB PNGs to OUT_DIR (created if missing), the same bytes on every run with the
same Pillow (fixed seeds; the text is drawn with Pillow's built-in font, whose rendering
another Pillow or FreeType may change):

| file | content | why |
|---|---|---|
| flat_256x256.png | one colour | nothing to code: the rate a target asks for cannot be spent |
| gradient_256x256.png | smooth two-dimensional colour ramps | the base layer's case |
| shapes_384x256.png | hard-edged filled rectangles, ellipses and polygons | graphics: edges Gaussians draw badly |
| text_512x256.png | black text on white, four sizes | a screenshot or scan of text |
| zoneplate_256x256.png | a circular chirp cos(k r^2) | every frequency up to Nyquist |
| checker_256x256.png | a 4-pixel checkerboard of two colours | one repeated high frequency |
| noise_128x128.png | uniform random levels per channel | incompressible |

An empty OUT_DIR name, an OUT_DIR that is a file (or lies below one) and an image name that is
a folder there are refused with one line before anything is written; each image is written to
a temporary file and renamed into place.
"""

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gipp_codec.errors import GimgError
from gipp_codec.imageio import atomic_write_bytes, check_output_path
from tool_guard import check_out_folder, fail, guarded

PROG = "synthetic_images"


def flat(width: int = 256, height: int = 256) -> np.ndarray:
    """[H, W, 3] uint8 of one colour."""
    return np.broadcast_to(np.array([200, 120, 40], np.uint8), (height, width, 3)).copy()


def gradient(width: int = 256, height: int = 256) -> np.ndarray:
    """[H, W, 3] uint8 smooth ramps: red along x, green along y, blue along a diagonal bump."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / (width - 1), y / (height - 1)
    rgb = np.stack([40 + 180 * u, 30 + 200 * v, 128 + 100 * np.sin(np.pi * (u + v) / 2) - 50 * u * v], axis=-1)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def shapes(width: int = 384, height: int = 256, seed: int = 7) -> np.ndarray:
    """[H, W, 3] uint8: hard-edged shapes in random flat colours on a light background."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (width, height), (236, 232, 220))
    draw = ImageDraw.Draw(im)
    for i in range(24):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = (int(v) for v in rng.integers(0, (width - 40, height - 40)))
        w, h = (int(v) for v in rng.integers(16, 96, 2))
        box = (x0, y0, min(width - 1, x0 + w), min(height - 1, y0 + h))
        if i % 3 == 0:
            draw.rectangle(box, fill=colour)
        elif i % 3 == 1:
            draw.ellipse(box, fill=colour)
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=colour)
    return np.asarray(im, np.uint8).copy()


def text(width: int = 512, height: int = 256) -> np.ndarray:
    """[H, W, 3] uint8: black text in four sizes on white (Pillow's built-in font)."""
    im = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(im)
    y = 6
    for size in (12, 16, 24, 36):
        font = ImageFont.load_default(size=size)
        for line in ("Gaussians draw edges badly; text is all edges.", "0123456789 ABCDEFGHIJ klmnopqrst"):
            draw.text((8, y), line, fill=(0, 0, 0), font=font)
            y += int(size * 1.25)
    return np.asarray(im, np.uint8).copy()


def zoneplate(width: int = 256, height: int = 256) -> np.ndarray:
    """[H, W, 3] uint8 grey circular chirp 128 + 127 cos(pi r^2 / (2 R)), R the half-diagonal:
    its local frequency r / (2 R) cycles per pixel reaches Nyquist at the corners."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = (x - width / 2) ** 2 + (y - height / 2) ** 2
    r_max = np.hypot(width / 2, height / 2)
    grey = 128 + 127 * np.cos(np.pi * r2 / (2 * r_max))  # local frequency r / (2 r_max) cycles/pixel
    return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def checker(width: int = 256, height: int = 256, cell: int = 4) -> np.ndarray:
    """[H, W, 3] uint8 checkerboard of ``cell``-pixel squares in two colours."""
    y, x = np.mgrid[0:height, 0:width]
    on = ((x // cell + y // cell) % 2).astype(bool)
    out = np.empty((height, width, 3), np.uint8)
    out[on], out[~on] = (30, 60, 160), (240, 220, 90)
    return out


def noise(width: int = 128, height: int = 128, seed: int = 11) -> np.ndarray:
    """[H, W, 3] uint8 of independent uniform levels."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


IMAGES = {
    "flat_256x256.png": flat,
    "gradient_256x256.png": gradient,
    "shapes_384x256.png": shapes,
    "text_512x256.png": text,
    "zoneplate_256x256.png": zoneplate,
    "checker_256x256.png": checker,
    "noise_128x128.png": noise,
}


def _png(image: np.ndarray) -> bytes:
    """PNG bytes of uint8 [H, W, 3], as Pillow's ``save`` to a .png name writes them."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def main(argv=None) -> int:
    """Entry point: ``run`` with a GimgError or OSError made one line and exit status 1."""
    return guarded(PROG, run, argv)


def run(argv=None) -> int:
    """Write the images; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    args = ap.parse_args(argv)
    if args.out == "":
        fail(PROG, "OUT_DIR: an empty folder name (use . for the current folder)")
    out = Path(args.out)
    check_out_folder(PROG, out, "OUT_DIR")
    if out.is_dir():
        for name in IMAGES:  # an image name taken by a folder or a device: refused before any is written
            try:
                check_output_path(out / name)
            except GimgError as exc:
                fail(PROG, str(exc))
    pngs = {name: _png(make()) for name, make in IMAGES.items()}
    out.mkdir(parents=True, exist_ok=True)
    for name, data in pngs.items():
        atomic_write_bytes(out / name, data)
    print(f"{len(IMAGES)} images in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
