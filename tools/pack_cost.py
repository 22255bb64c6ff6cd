#!/usr/bin/env python3
"""What gimg's codec buys over a float fit quantized afterwards (``gimg pack``'s min/max).

    python tools/pack_cost.py IMAGE.png [IMAGE.png ...] [--bpp 0.5] [--bits 12,10,6 ...]
                              [--iterations 5000] [--json OUT]

Each image is encoded by gimg at ``--bpp`` (a base layer, quantization-aware training with a
rate term, the code search). Then the same number of Gaussians is fitted as floats by
``fit_image`` (the representation engine alone: no base layer, no quantization, the same
iterations), and those floats are packed by ``pack_gaussians`` at each of ``--bits``
(uniform min/max quantization, no training: what ``gimg pack`` does to another program's
Gaussians). Reported per image: bytes, bpp and PSNR against the image of gimg's file, of the
float fit (no file) and of each packed file, with the change in bytes and PSNR against gimg's
file.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gipp_codec.decoder import decode
from gipp_codec.encoder import encode_with_report
from gipp_codec.fit.api import fit_image
from gipp_codec.metrics import psnr
from gipp_codec.pack import pack_gaussians
from gipp_codec.render.convention import ENCODER_CONVENTION
from tool_record import check_record_path, write_record


def study(path: Path, bpp: float, depths: list[tuple], iterations: int) -> list[dict]:
    """gimg's file of one image and its Gaussians packed at each of ``depths``."""
    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB"))  # [H, W, 3]
    data, report = encode_with_report(image, bpp=bpp, iterations=iterations)
    fit = fit_image(image, gaussians=report.gaussians, iterations=iterations)
    floats = {"width": np.int64(image.shape[1]), "height": np.int64(image.shape[0]), "means": fit.means,
              "covs": fit.covs, "colors": fit.colors, "render_convention": np.int64(ENCODER_CONVENTION)}
    pixels = image.shape[0] * image.shape[1]
    rows = [{"image": path.name, "how": "gimg encode", "bits": "/".join(map(str, report.bits)), "bytes": len(data),
             "bpp": 8 * len(data) / pixels, "psnr": psnr(decode(data), image)},
            {"image": path.name, "how": "float fit", "bits": "float", "bytes": None, "bpp": None, "psnr": fit.psnr}]
    for d in depths:
        packed = pack_gaussians(floats, bits=d)
        rows.append({"image": path.name, "how": "pack (min/max)", "bits": "/".join(map(str, d)), "bytes": len(packed),
                     "bpp": 8 * len(packed) / pixels, "psnr": psnr(decode(packed), image)})
    for r in rows:
        r["delta_bytes_pct"] = None if r["bytes"] is None else 100 * (r["bytes"] / rows[0]["bytes"] - 1)
        r["delta_psnr"] = r["psnr"] - rows[0]["psnr"]
    return rows


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--bits", nargs="+", default=["12,10,6"], help="depths to pack at, each P,V,C")
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    check_record_path("pack_cost", args.json, args.images)  # before any work
    try:
        depths = [tuple(int(v) for v in b.split(",")) for b in args.bits]
    except ValueError:
        ap.error("--bits takes P,V,C triples")
    if any(len(d) != 3 for d in depths):
        ap.error("--bits takes P,V,C triples")
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        ap.error(f"no such image: {', '.join(missing)}")
    rows = []
    print("| image | how | depths | bytes | bpp | PSNR | bytes against gimg's file | PSNR against gimg's file |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.images:
        for r in study(path, args.bpp, depths, args.iterations):
            rows.append(r)
            size = ("no file | – | – " if r["bytes"] is None else
                    f"{r['bytes']} | {r['bpp']:.4f} | {r['delta_bytes_pct']:+.1f} % ")
            cells = size.split(" | ")
            print(f"| {r['image']} | {r['how']} | {r['bits']} | {cells[0]} | {cells[1]} | {r['psnr']:.2f} | "
                  f"{cells[2].strip()} | {r['delta_psnr']:+.2f} dB |", flush=True)
    print()
    for d in depths:
        group = [r for r in rows if r["how"] == "pack (min/max)" and r["bits"] == "/".join(map(str, d))]
        print(f"packed at {'/'.join(map(str, d))}, {len(group)} images: bytes {np.mean([r['delta_bytes_pct'] for r in group]):+.1f} % "
              f"and PSNR {np.mean([r['delta_psnr'] for r in group]):+.2f} dB against gimg's own files (mean)")
    if args.json:
        write_record(args.json, rows)
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("pack_cost", main))
