#!/usr/bin/env python3
"""Does each .gimg file's position grid cover its image?

    python tools/position_grid.py out/*.gimg [--margin PX]

For every quantized file: the dequantized range of x and of y, [offset, offset + (2^B - 1)
* scale], against the image's [0, width] and [0, height]. A Gaussian whose centre lay past
the range was clamped onto its edge when quantized, so a range that stops inside the image
moves every Gaussian beyond it (kodim16 at 12/10/6 before the held position ranges of the
seventeenth session: y ended at 497.1 on 512 rows). Files short by more than ``--margin``
pixels (default 1) on any side are listed as "SHORT" and counted at the end.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from gipp_codec.errors import GimgError
from gipp_codec.format import QuantizedGaussians, parse_gimg


def grid_ranges(g: QuantizedGaussians) -> tuple[tuple[float, float], tuple[float, float]]:
    """((x_lo, x_hi), (y_lo, y_hi)) of a quantized set's position grid, in pixels."""
    qmax = float((1 << int(g.bits.position)) - 1)
    s, o = g.scales.astype(np.float64), g.offsets.astype(np.float64)
    return (o[0], o[0] + qmax * s[0]), (o[1], o[1] + qmax * s[1])


def shortfall(rng: tuple[float, float], extent: int) -> float:
    """Pixels of [0, extent] the range (lo, hi) leaves out (0 when it covers it)."""
    return max(0.0, rng[0]) + max(0.0, extent - rng[1])


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--margin", type=float, default=1.0, help="pixels a range may fall short before it is listed")
    args = ap.parse_args(argv)
    short = 0
    for path in args.files:
        try:
            g = parse_gimg(Path(path).read_bytes()).gaussians
        except (OSError, GimgError) as exc:
            raise SystemExit(f"{path}: {exc}") from None
        if not isinstance(g, QuantizedGaussians):
            print(f"{path}: float file, no grid")
            continue
        (x, y) = grid_ranges(g)
        worst = max(shortfall(x, g.width), shortfall(y, g.height))
        flag = "SHORT" if worst > args.margin else "ok"
        short += flag == "SHORT"
        print(f"{path}: {g.width}x{g.height}, x [{x[0]:.1f}, {x[1]:.1f}], y [{y[0]:.1f}, {y[1]:.1f}], "
              f"short by {worst:.1f} px: {flag}")
    print(f"{short} of {len(args.files)} files short by more than {args.margin:g} px")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("position_grid", main))
