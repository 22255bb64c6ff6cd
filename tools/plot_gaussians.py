#!/usr/bin/env python3
"""Draw a file's Gaussians as ellipses over its decoded image (a figure for papers and reports).

    python tools/plot_gaussians.py FILE.gimg OUT.png [--sigma 1] [--every 1] [--width-in 8] [--no-image]
                                   [--crop X,Y,W,H [--zoom 4]]

Each valid Gaussian becomes the ellipse where its Mahalanobis distance is ``--sigma`` (1: one
standard deviation; 3: the render's cut-off), outlined in its colour's luminance contrast
(white on dark Gaussians, black on light ones) over the decoded image, or on grey with
``--no-image``. ``--every K`` draws one Gaussian in K, for dense files. ``--crop X,Y,W,H``
shows only that region of the file's image (pixels from column X, row Y), with the Gaussians
that reach it, over the region decoded ``--zoom`` times larger (the Gaussians sampled on the
finer grid: ``decode(data, crop=..., scale=...)``), for close-ups. Needs matplotlib
(``pip install -e '.[bench]'``).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from gipp_codec.decoder import decode, read_input_file
from gipp_codec.errors import GimgError
from gipp_codec.export import read_gaussians
from gipp_codec.render.region import crop_box, gaussian_bounds, reaching
from tool_guard import figure_format
from tool_record import check_record_path

PROG = "plot_gaussians"


def draw(data: bytes, out: Path, sigma: float = 1.0, every: int = 1, width_in: float = 8.0,
         image: bool = True, crop=None, zoom: float = 4.0) -> int:
    """Write the figure for .gimg ``data`` to ``out`` (of the region ``crop`` (x, y, w, h),
    decoded ``zoom`` times larger, when given); returns how many ellipses it drew."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import EllipseCollection

    gs = read_gaussians(data)
    x, y, w, h = (0, 0, gs.width, gs.height) if crop is None else crop_box(gs.width, gs.height, crop)
    keep = np.flatnonzero(gs.valid)  # [M]
    if crop is not None:
        keep = np.intersect1d(keep, reaching(gaussian_bounds(gs.means, gs.covs), x, y, w, h))
        pixels = decode(data, crop=(x, y, w, h), scale=zoom) if image else None
    else:
        pixels = decode(data) if image else None
    keep = keep[::every]
    major, minor, angle = (v[keep] for v in gs.axes())
    fig, ax = plt.subplots(figsize=(width_in, width_in * h / w), dpi=150)
    ax.imshow(np.full((h, w, 3), 128, np.uint8) if pixels is None else pixels,
              extent=(x, x + w, y + h, y), interpolation="nearest")
    luminance = gs.colors[keep] @ np.array([0.299, 0.587, 0.114], np.float32)  # [M]
    edge = np.where(luminance[:, None] < 0, [1.0, 1.0, 1.0, 0.7], [0.0, 0.0, 0.0, 0.7])  # [M, 4]
    ax.add_collection(EllipseCollection(2 * sigma * major, 2 * sigma * minor, angle, units="xy",
                                        offsets=gs.means[keep], offset_transform=ax.transData,
                                        facecolors="none", edgecolors=edge, linewidths=0.4))
    ax.set_xlim(x, x + w)
    ax.set_ylim(y + h, y)
    ax.set_axis_off()
    where = "" if crop is None else f" reaching the region {x},{y},{w},{h}"
    ax.set_title(f"{keep.size} of {gs.means.shape[0]} Gaussians{where}, {sigma:g} sigma", fontsize=8)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return int(keep.size)


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--sigma", type=float, default=1.0, help="the ellipses' Mahalanobis radius (default 1)")
    ap.add_argument("--every", type=int, default=1, help="draw one Gaussian in K (default 1: all)")
    ap.add_argument("--width-in", type=float, default=8.0, help="the figure's width in inches (default 8)")
    ap.add_argument("--no-image", action="store_true", help="draw on grey instead of the decoded image")
    ap.add_argument("--crop", default=None, metavar="X,Y,W,H", help="only this region of the image, zoomed")
    ap.add_argument("--zoom", type=float, default=4.0, help="with --crop: decode the region this many times larger")
    args = ap.parse_args(argv)
    try:  # the output, before anything is decoded: refused in one line, exit status 2
        args.format = figure_format(PROG, args.out, "OUT.png")
        check_record_path(PROG, args.out, [args.file], option="OUT.png", holds_json=False)
    except SystemExit as refused:
        return refused.code
    if not (args.sigma > 0 and args.every >= 1 and args.width_in > 0 and 0 < args.zoom <= 64):
        ap.error("--sigma and --width-in must be positive, --every at least 1 and --zoom in (0, 64]")
    crop = None
    if args.crop is not None:
        try:
            crop = tuple(int(v) for v in args.crop.split(","))
        except ValueError:
            ap.error(f"--crop must be X,Y,W,H, not {args.crop!r}")
    try:
        n = draw(read_input_file(args.file), args.out, args.sigma, args.every, args.width_in, not args.no_image,
                 crop, args.zoom)
    except (GimgError, OSError, ValueError) as exc:  # a bad file; an output matplotlib cannot write
        print(f"plot_gaussians.py: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {n} ellipses")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("plot_gaussians", main))
