#!/usr/bin/env python3
"""What the code search (gipp_codec.fit.code_search) gains on finished files, by sweep count.

    python tools/code_search_gain.py FILE.gimg IMAGE.png [FILE.gimg IMAGE.png ...]
        [--sweeps 1,3,5,8,15] [--json OUT]

For each file and each sweep count: the PSNR of the searched codes' decoded image against
the file's own, the search's time, the moves of its last sweep, and the size of the file
re-written with the searched codes against the original's (the same scales and offsets;
the search does not model the rate). Each count is a separate search from the file's codes.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.decoder import decode, gaussians_as_floats  # noqa: E402
from gipp_codec.fit.code_search import search_codes  # noqa: E402
from gipp_codec.format.base_layer import upsample  # noqa: E402
from gipp_codec.format.container import parse_gimg, write_gimg  # noqa: E402
from gipp_codec.format.model import QuantizedGaussians  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from gipp_codec.metrics import psnr  # noqa: E402
from gipp_codec.render.numba_kernels import ENCODER_CONVENTION, forward  # noqa: E402


def gains(gimg_path: str, image_path: str, sweep_counts: list[int]) -> list[dict]:
    """One row per sweep count for one file (see the module docstring)."""
    data = Path(gimg_path).read_bytes()
    parsed = parse_gimg(data)
    if parsed.header["render_convention"] != ENCODER_CONVENTION:
        raise SystemExit(f"{gimg_path}: render convention {parsed.header['render_convention']}; the code search "
                         f"works in convention {ENCODER_CONVENTION}")
    g = parsed.gaussians
    arr, _ = load_image(image_path)  # uint8 [H, W, 3]
    target = arr.astype(np.float32) / np.float32(255.0)
    render = forward(*gaussians_as_floats(parsed), g.height, g.width)  # [H, W, 3] float32
    if parsed.base is not None:  # the search sees the image as decoded: the base under the Gaussians
        render = render + upsample(parsed.base, g.width, g.height)
    base = psnr(decode(data), arr)
    bits = g.bits.per_channel()
    search_codes(g.q[:1], g.scales, g.offsets, bits, render, target, 1)  # compile outside the timing
    rows = []
    for sweeps in sweep_counts:
        start = time.perf_counter()
        q, report = search_codes(g.q, g.scales, g.offsets, bits, render, target, sweeps)
        seconds = time.perf_counter() - start
        out = write_gimg(QuantizedGaussians(g.width, g.height, g.bits, q, g.scales, g.offsets, g.correlation), base=parsed.base)
        rows.append({"file": gimg_path, "gaussians": int(g.q.shape[0]), "sweeps": sweeps,
                     "psnr_file": base, "psnr_gain": psnr(decode(out), arr) - base, "seconds": seconds,
                     "last_sweep_moves": report.moves[-1], "size_ratio": len(out) / len(data)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs", nargs="+", help="FILE.gimg IMAGE.png pairs")
    ap.add_argument("--sweeps", default="1,3,5,8,15", help="comma-separated sweep counts")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give FILE.gimg IMAGE.png pairs")
    counts = [int(x) for x in args.sweeps.split(",")]
    print("| file | N | sweeps | PSNR gain (dB) | seconds | moves in the last sweep | file size |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for gimg_path, image_path in zip(args.pairs[::2], args.pairs[1::2]):
        for r in gains(gimg_path, image_path, counts):
            rows.append(r)
            print(f"| {Path(gimg_path).name} | {r['gaussians']} | {r['sweeps']} | +{r['psnr_gain']:.3f} | "
                  f"{r['seconds']:.2f} | {r['last_sweep_moves']} | {r['size_ratio']:.4f}x |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
