#!/usr/bin/env python3
"""What would half-precision scales and offsets cost? A what-if for a compact header.

    python tools/header_precision.py FILE.gimg [FILE.gimg ...] --images DIR [--downscale F] [--json OUT]

The `HEAD` chunk holds each channel's LSQ+ scale and offset as f32: 64 of its 83 bytes.
Stored as f16 they would take 32. This tool rounds a file's 8 scales and 8 offsets to the
nearest f16, moves every Gaussian to the nearest code of the new grid (each channel's value
q * scale + offset, spec §6, re-rounded to the new scale and offset and clipped to the
codes), writes the file again (same base layer, same coding) and decodes it: the PSNR
change against the file as written, and the change in bytes (the payload's, since the
header's size does not change here; the 32 bytes a f16 header would save are reported
beside it). No retraining and no code search, so the PSNR change is an upper bound on the
cost; QAT that trains on f16-representable scales would have none.
The reference image of FILE is DIR/<name>.png, <name> the file name up to the first "_",
shrunk F times as ``bench_rd.py --downscale F`` shrinks it.
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from bench_rd import load_rgb
from gipp_codec.decoder import decode
from gipp_codec.format.container import parse_gimg, write_gimg
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.metrics import psnr
from tool_record import check_record_path, write_text_atomic

PROG = "header_precision"

F16_HEADER_SAVING = 32  # bytes: 16 values of 4 bytes as 2


def half_grid(g: QuantizedGaussians) -> QuantizedGaussians:
    """``g`` on the grid of its scales and offsets rounded to f16: each code moved to the
    nearest code of the new grid, clipped to 0 .. 2^B - 1 (q [N, 8])."""
    s = np.asarray(g.scales, np.float32).astype(np.float64)  # [8]
    o = np.asarray(g.offsets, np.float32).astype(np.float64)  # [8]
    s16 = s.astype(np.float16).astype(np.float64)
    o16 = o.astype(np.float16).astype(np.float64)
    if np.any(s16 <= 0) or not np.all(np.isfinite(s16)) or not np.all(np.isfinite(o16)):
        raise SystemExit("a scale or offset has no usable f16 value")
    top = np.array([(1 << b) - 1 for b in g.bits.per_channel()], np.float64)  # [8]
    values = g.q.astype(np.float64) * s + o  # [N, 8], each channel in its coding domain
    q = np.clip(np.rint((values - o16) / s16), 0, top).astype(g.q.dtype)  # [N, 8]
    return dataclasses.replace(g, q=q, scales=s16.astype(np.float32), offsets=o16.astype(np.float32))


def study(path: Path, images: Path, downscale: int = 1) -> dict:
    """PSNR and size of one file as written and on the f16 grid."""
    data = path.read_bytes()
    parsed = parse_gimg(data)
    g = parsed.gaussians
    if not isinstance(g, QuantizedGaussians):
        raise SystemExit(f"{path}: a float32 file has no scales or offsets")
    reference = load_rgb(images / (path.name.split("_")[0] + ".png"), downscale)  # [H, W, 3] uint8
    convention = int(parsed.header["render_convention"])
    again = write_gimg(half_grid(g), parsed.metadata, render_convention=convention, base=parsed.base)
    before, after = psnr(decode(data), reference), psnr(decode(again), reference)
    return {"file": str(path), "gaussians": int(g.q.shape[0]), "bytes": len(data), "psnr": before,
            "delta_psnr": after - before, "delta_bytes": len(again) - len(data),
            "header_saving_share": F16_HEADER_SAVING / len(data)}


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--images", type=Path, required=True, help="folder of the reference PNGs")
    ap.add_argument("--downscale", type=int, default=1, metavar="F", help="the run's --downscale")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    references = [args.images / (p.name.split("_")[0] + ".png") for p in args.files]  # the images it reads
    check_record_path(PROG, args.json, [*args.files, *references])
    rows = []
    print("| file | N | bytes | PSNR | PSNR change on the f16 grid | payload bytes change | 32 bytes as a share |")
    print("|---|---|---|---|---|---|---|")
    for path in args.files:
        r = study(path, args.images, args.downscale)
        rows.append(r)
        print(f"| {path.name} | {r['gaussians']} | {r['bytes']} | {r['psnr']:.3f} | {r['delta_psnr']:+.4f} dB | "
              f"{r['delta_bytes']:+d} | {100 * r['header_saving_share']:.2f} % |", flush=True)
    print(f"\nmean over {len(rows)} files: PSNR change {np.mean([r['delta_psnr'] for r in rows]):+.4f} dB "
          f"(from {min(r['delta_psnr'] for r in rows):+.4f} to {max(r['delta_psnr'] for r in rows):+.4f}), "
          f"payload bytes {np.mean([r['delta_bytes'] for r in rows]):+.1f}, "
          f"32 bytes = {100 * np.mean([r['header_saving_share'] for r in rows]):.2f} % of a file")
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("header_precision", main))
