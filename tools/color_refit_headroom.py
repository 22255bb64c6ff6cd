#!/usr/bin/env python3
"""What the colour refit (gipp_codec.fit.color_refit) gains on finished files, and where the
rest of the continuous optimum goes.

    python tools/color_refit_headroom.py FILE.gimg IMAGE.png [FILE.gimg IMAGE.png ...]

For each file, with its positions and shapes fixed: the PSNR of its own colour codes; of
the continuous least-squares colours (``least_squares_colors``, 40 conjugate-gradient
steps); of those colours rounded to the file's colour grid at once (the refit with one
stage); and of the refit as the encoder runs it (staged rounding with re-solves).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.decoder import gaussians_as_floats  # noqa: E402
from gipp_codec.fit import color_refit  # noqa: E402
from gipp_codec.format.container import parse_gimg  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from gipp_codec.metrics import psnr  # noqa: E402
from gipp_codec.quant.dequant import dequantize_linear  # noqa: E402
from gipp_codec.render import get_renderer  # noqa: E402
from gipp_codec.render.convention import to_uint8  # noqa: E402


def headroom(gimg_path: str, image_path: str) -> dict:
    """PSNRs (dB) of one file's colours: file, continuous optimum, rounded once, refit."""
    parsed = parse_gimg(Path(gimg_path).read_bytes())
    g = parsed.gaussians
    arr, _ = load_image(image_path)  # uint8 [H, W, 3]
    h, w = arr.shape[:2]
    means, covs, colors = (torch.from_numpy(np.ascontiguousarray(a)) for a in gaussians_as_floats(parsed))
    target = torch.from_numpy(arr.astype(np.float32) / np.float32(255.0))
    renderer = get_renderer("cpu", torch.device("cpu"))
    scale, offset, codes = g.scales[5:8], g.offsets[5:8], g.q[:, 5:8].astype(np.int64)

    def psnr_of(c: torch.Tensor) -> float:
        with torch.no_grad():
            return psnr(to_uint8(renderer(means, covs, c, h, w).numpy()), arr)

    def psnr_of_codes(q: np.ndarray) -> float:
        return psnr_of(torch.from_numpy(dequantize_linear(q, scale, offset)))

    optimum = color_refit.least_squares_colors(renderer, means, covs, colors, target, iterations=40)
    stages = color_refit.STAGES
    try:
        color_refit.STAGES = (1.0,)
        rounded = color_refit.refit_color_codes(renderer, means, covs, codes, scale, offset, 64, target)
    finally:
        color_refit.STAGES = stages
    refit = color_refit.refit_color_codes(renderer, means, covs, codes, scale, offset, 64, target)
    return {"file": gimg_path, "psnr_file": psnr_of_codes(codes), "psnr_optimum": psnr_of(optimum),
            "psnr_rounded_once": psnr_of_codes(rounded), "psnr_refit": psnr_of_codes(refit)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs", nargs="+", help="FILE.gimg IMAGE.png pairs")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give FILE.gimg IMAGE.png pairs")
    print("| file | its codes | continuous optimum | optimum rounded once | refit (staged) |")
    print("|---|---|---|---|---|")
    for gimg_path, image_path in zip(args.pairs[::2], args.pairs[1::2]):
        r = headroom(gimg_path, image_path)
        base = r["psnr_file"]
        print(f"| {Path(gimg_path).name} | {base:.2f} | +{r['psnr_optimum'] - base:.2f} | "
              f"+{r['psnr_rounded_once'] - base:.2f} | +{r['psnr_refit'] - base:.2f} |")


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("color_refit_headroom", main))
