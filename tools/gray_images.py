#!/usr/bin/env python3
"""Grayscale copies of a folder's images, for measuring the codec on single-channel input.

    python tools/gray_images.py SRC_DIR OUT_DIR [--pattern '*.png']

Each image is converted with Pillow's ``convert("L")`` (ITU-R 601-2 luma,
L = 0.299 R + 0.587 G + 0.114 B, rounded) and written as an 8-bit grayscale PNG of the
same name in OUT_DIR (created if missing). gimg reads such a PNG as three equal channels.
"""

import argparse
import sys
from pathlib import Path

from PIL import Image


def main(argv=None) -> int:
    """Write the grayscale copies; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--pattern", default="*.png")
    args = ap.parse_args(argv)
    paths = sorted(args.src.glob(args.pattern))
    if not paths:
        print(f"gray_images: no {args.pattern} in {args.src}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        with Image.open(path) as im:
            im.convert("RGB").convert("L").save(args.out / (path.stem + ".png"))
    print(f"{len(paths)} grayscale images in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
