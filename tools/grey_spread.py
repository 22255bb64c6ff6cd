#!/usr/bin/env python3
"""How grey the decoded images of .gimg files are, and what their red and blue streams cost.

    python tools/grey_spread.py FILE.gimg [FILE.gimg ...] [--json OUT]

For each file: decodes it with the standalone decoder and prints the largest difference
between red and green and between blue and green in 8-bit levels, the share of pixels
whose three channels are not equal, and the bits per Gaussian of the red, green and blue
streams (``read_info``). Meant for files encoded from grey images (``tools/gray_images.py``),
whose decode should be exactly grey with red and blue free; a colour file shows its colour.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.decoder import decode, read_info  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "grey_spread"


def spread(data: bytes) -> dict:
    """The grey spread of one file's decode and its colour streams' bits per Gaussian."""
    image = decode(data).astype(np.int16)  # [H, W, 3]
    info = read_info(data)
    n = max(1, info["bits"]["gaussians"])
    attrs = info["bits"]["attributes"]
    return {
        "max_red_minus_green": int(np.abs(image[..., 0] - image[..., 1]).max()),
        "max_blue_minus_green": int(np.abs(image[..., 2] - image[..., 1]).max()),
        "share_not_grey": float(np.mean((image[..., 0] != image[..., 1]) | (image[..., 2] != image[..., 1]))),
        "bits_per_gaussian": {c: attrs[c] / n for c in ("red", "green", "blue")},
        "gaussians": info["bits"]["gaussians"],
    }


def main(argv=None) -> int:
    """Print one line per file (and write the JSON); returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json, args.files)
    rows = {}
    for path in args.files:
        r = rows[str(path)] = spread(path.read_bytes())
        b = r["bits_per_gaussian"]
        print(f"{path.name}: |R-G| max {r['max_red_minus_green']}, |B-G| max {r['max_blue_minus_green']}, "
              f"{100 * r['share_not_grey']:.1f} % of pixels not grey; bits per Gaussian red {b['red']:.2f}, "
              f"green {b['green']:.2f}, blue {b['blue']:.2f} ({r['gaussians']} Gaussians)")
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("grey_spread", main))
