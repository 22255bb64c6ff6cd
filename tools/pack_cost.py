#!/usr/bin/env python3
"""What gimg's training for the grid buys over quantizing the same Gaussians without it.

    python tools/pack_cost.py IMAGE.png [IMAGE.png ...] [--bpp 0.5] [--bits 12,10,6 ...]
                              [--iterations 5000] [--json OUT]

Each image is encoded by gimg at ``--bpp`` (quantization-aware training and the code search
fit the Gaussians to their grid). The file's Gaussians, as floats (``read_gaussians``), are
then packed again by ``pack_gaussians`` at each of ``--bits`` (uniform min/max quantization,
no training: what ``gimg pack`` does to another program's Gaussians), keeping the base layer.
Reported per file: bytes, bpp and PSNR against the image, and the packed file's change in
bytes and PSNR against gimg's own.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from gipp_codec.decoder import decode
from gipp_codec.encoder import encode_with_report
from gipp_codec.export import npz_bytes, read_gaussians
from gipp_codec.metrics import psnr
from gipp_codec.pack import pack_gaussians, read_npz
from tool_record import write_record


def study(path: Path, bpp: float, depths: list[tuple], iterations: int) -> list[dict]:
    """gimg's file of one image and its Gaussians packed at each of ``depths``."""
    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB"))  # [H, W, 3]
    data, report = encode_with_report(image, bpp=bpp, iterations=iterations)
    arrays = read_npz(npz_bytes(read_gaussians(data)))
    floats = {k: v for k, v in arrays.items() if k not in ("codes", "scales", "offsets", "bits", "correlation")}
    pixels = image.shape[0] * image.shape[1]
    rows = [{"image": path.name, "how": "gimg encode", "bits": "/".join(map(str, report.bits)), "bytes": len(data),
             "bpp": 8 * len(data) / pixels, "psnr": psnr(decode(data), image)}]
    for d in depths:
        packed = pack_gaussians(floats, bits=d)
        rows.append({"image": path.name, "how": "pack (min/max)", "bits": "/".join(map(str, d)), "bytes": len(packed),
                     "bpp": 8 * len(packed) / pixels, "psnr": psnr(decode(packed), image)})
    for r in rows:
        r["delta_bytes_pct"] = 100 * (r["bytes"] / rows[0]["bytes"] - 1)
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
    print("| image | how | depths | bytes | bpp | PSNR | bytes against gimg's | PSNR against gimg's |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.images:
        for r in study(path, args.bpp, depths, args.iterations):
            rows.append(r)
            print(f"| {r['image']} | {r['how']} | {r['bits']} | {r['bytes']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
                  f"{r['delta_bytes_pct']:+.1f} % | {r['delta_psnr']:+.2f} dB |", flush=True)
    print()
    for d in depths:
        group = [r for r in rows if r["how"] != "gimg encode" and r["bits"] == "/".join(map(str, d))]
        print(f"packed at {'/'.join(map(str, d))}, {len(group)} images: bytes {np.mean([r['delta_bytes_pct'] for r in group]):+.1f} % "
              f"and PSNR {np.mean([r['delta_psnr'] for r in group]):+.2f} dB against gimg's own files (mean)")
    if args.json:
        write_record(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
