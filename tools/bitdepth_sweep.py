#!/usr/bin/env python3
"""Which bit depths (position, covariance, colour) give the best quality at a given rate?

    python tools/bitdepth_sweep.py IMAGE.png [IMAGE.png ...] --bpp 0.15,0.5
        [--depths 12/10/6,12/8/5,11/9/6] [--iterations 2000] [--downscale 2] [--json out.json]

Encodes every image at every target bpp with every bit-depth triple through gimg's own
rate control (``encode_with_report(bpp=...)``), so a cheaper triple buys more Gaussians
for the same budget, and prints the mean achieved bpp and PSNR of the decoded files per
(bpp, depths), with the difference to the first triple. Images can be box-downscaled to
keep the sweep short (N scales with the pixel count through the bpp target).
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_represent import downscale  # noqa: E402

from gipp_codec.encoder import encode_with_report  # noqa: E402
from gipp_codec.format.model import BitDepths  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "bitdepth_sweep"


def parse_depths(text: str) -> list[BitDepths]:
    """'12/10/6,12/8/5' -> [BitDepths(12, 10, 6), BitDepths(12, 8, 5)]."""
    out = []
    for item in text.split(","):
        parts = [int(v) for v in item.strip().split("/")]
        if len(parts) != 3:
            raise SystemExit(f"{item!r}: expected POSITION/COVARIANCE/COLOUR, e.g. 12/10/6")
        out.append(BitDepths(*parts))
    return out


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--bpp", default="0.15,0.5")
    ap.add_argument("--depths", default="12/10/6,12/8/5,11/9/6,12/9/5")
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json, args.images)
    targets = [float(b) for b in args.bpp.split(",")]
    depths = parse_depths(args.depths)
    images = [(Path(p).stem, downscale(load_image(p)[0], args.downscale)) for p in args.images]

    rows = []
    for name, img in images:
        for bpp in targets:
            for d in depths:
                _, rep = encode_with_report(img, bpp=bpp, iterations=args.iterations, bits=d, seed=args.seed)
                rows.append({"image": name, "target_bpp": bpp, "depths": f"{d.position}/{d.covariance}/{d.color}",
                             "bpp": rep.bpp, "psnr": rep.psnr, "gaussians": rep.gaussians,
                             "bits_per_gaussian": rep.bits_per_gaussian, "passes": rep.passes})
                print(f"{name} {img.shape[1]}x{img.shape[0]} target {bpp:g} depths {rows[-1]['depths']}: "
                      f"{rep.bpp:.4f} bpp, {rep.psnr:.2f} dB, N={rep.gaussians}, "
                      f"{rep.bits_per_gaussian:.1f} bits/Gaussian", flush=True)
                if args.json:
                    write_text_atomic(args.json, json.dumps(rows, indent=1))

    print(f"\nMean over {len(images)} image(s), {args.iterations} iterations, downscale {args.downscale}:\n")
    print("| target bpp | depths | mean bpp | mean N | bits/Gaussian | mean PSNR (dB) | Δ vs first |")
    print("|---|---|---|---|---|---|---|")
    for bpp in targets:
        base = None
        for d in depths:
            key = f"{d.position}/{d.covariance}/{d.color}"
            sel = [r for r in rows if r["target_bpp"] == bpp and r["depths"] == key]
            p = statistics.fmean(r["psnr"] for r in sel)
            base = p if base is None else base
            print(f"| {bpp:g} | {key} | {statistics.fmean(r['bpp'] for r in sel):.4f} | "
                  f"{statistics.fmean(r['gaussians'] for r in sel):.0f} | "
                  f"{statistics.fmean(r['bits_per_gaussian'] for r in sel):.1f} | {p:.2f} | {p - base:+.2f} |")
    return 0 if all(np.isfinite(r["psnr"]) for r in rows) else 1


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("bitdepth_sweep", main))
