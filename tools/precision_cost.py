#!/usr/bin/env python3
"""What does each attribute group's precision buy? PSNR lost by dropping bits from a
finished file, without retraining.

    python tools/precision_cost.py FILE.gimg [FILE.gimg ...] --images DIR [--drop 1,2,3] [--json OUT]

For every file (its reference image is DIR/<name>.png, <name> being the file name up to
the first "_"), and for each group (positions x,y; the log-variances a,c; the
off-diagonal b; a,b,c together; the colours), the integers are coarsened by k bits
(q -> q >> k, scale * 2**k, the offset moved to the centre of the merged bins) and the
file's Gaussians are rendered again with the decoder's own dequantizer and renderer.
Prints the PSNR change against the file as written, and the bits per Gaussian the
coarser integers take with gimg's coder (payload coding 2 since format 1.1). QAT at the coarser depth
would recover part of the loss, so the PSNR change is an upper bound on the cost.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gipp_codec.entropy.gaussian_coder import encode_attributes
from gipp_codec.format.constants import CH_A, CH_B, CH_BLUE, CH_C, CH_GREEN, CH_RED, CH_X, CH_Y
from gipp_codec.format.container import parse_gimg
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.imageio import load_image
from gipp_codec.metrics import psnr
from gipp_codec.quant.dequant import dequantize
from gipp_codec.render.numba_kernels import forward_uint8
from tool_record import check_record_path, write_text_atomic

PROG = "precision_cost"

GROUPS = {"x,y": (CH_X, CH_Y), "a,c": (CH_A, CH_C), "b": (CH_B,), "a,b,c": (CH_A, CH_B, CH_C),
          "colour": (CH_RED, CH_GREEN, CH_BLUE)}


def coarsen(g: QuantizedGaussians, channels, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """(q [N, 8], scales [8], offsets [8], per-channel bits [8]) with ``channels`` k bits coarser."""
    q = g.q.astype(np.int64).copy()
    s = g.scales.astype(np.float64).copy()
    o = g.offsets.astype(np.float64).copy()
    bits = list(g.bits.per_channel())
    for j in channels:
        q[:, j] >>= k
        o[j] += s[j] * ((1 << k) - 1) / 2.0  # centre of the 2**k merged grid values
        s[j] *= 1 << k
        bits[j] = max(1, bits[j] - k)
    return q, s.astype(np.float32), o.astype(np.float32), bits


def render_psnr(g: QuantizedGaussians, q, scales, offsets, reference: np.ndarray, convention: int) -> float:
    """PSNR of the decoder's render (in render ``convention``) of (q, scales, offsets) against
    reference uint8 [H, W, 3]."""
    h, w = reference.shape[:2]
    gg = QuantizedGaussians(g.width, g.height, g.bits, q, scales, offsets, g.correlation)
    means, covs, colors = dequantize(gg)
    return psnr(forward_uint8(means, covs, colors, h, w, convention), reference)


def payload_bits_per_gaussian(q, bits, scales, offsets) -> float:
    """Bits per Gaussian of the coded payload (payload coding 2) for q [N, 8] at per-channel depths ``bits``."""
    payload, _, _ = encode_attributes(q, tuple(bits), scales, offsets)
    return 8 * len(payload) / max(1, q.shape[0])


def study(path: Path, images: Path, drops: list[int]) -> dict:
    """The PSNR change and payload bits per Gaussian of every (group, k) for one file."""
    parsed = parse_gimg(path.read_bytes())
    g = parsed.gaussians
    if not isinstance(g, QuantizedGaussians):
        raise SystemExit(f"{path}: a float32 file has no quantization to coarsen")
    reference, _ = load_image(images / (path.name.split("_")[0] + ".png"))
    base_q, base_s, base_o, base_bits = coarsen(g, (), 0)
    convention = int(parsed.header["render_convention"])
    if parsed.base is not None:
        raise SystemExit(f"{path}: a file with a base layer; this tool measures the Gaussians alone")
    base = render_psnr(g, base_q, base_s, base_o, reference, convention)
    out = {"file": str(path), "gaussians": int(g.q.shape[0]), "psnr": base,
           "bits_per_gaussian": payload_bits_per_gaussian(base_q, base_bits, base_s, base_o), "cases": []}
    for name, channels in GROUPS.items():
        for k in drops:
            q, s, o, bits = coarsen(g, channels, k)
            out["cases"].append({"group": name, "drop": k, "delta_psnr": render_psnr(g, q, s, o, reference, convention) - base,
                                 "bits_per_gaussian": payload_bits_per_gaussian(q, bits, s, o)})
    return out


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--images", type=Path, required=True, help="folder of the reference PNGs")
    ap.add_argument("--drop", default="1,2,3", help="bits to drop, comma list")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    references = [args.images / (p.name.split("_")[0] + ".png") for p in args.files]  # the images it reads
    check_record_path(PROG, args.json, [*args.files, *references])
    drops = [int(v) for v in args.drop.split(",")]
    rows = []
    for path in args.files:
        r = study(path, args.images, drops)
        rows.append(r)
        print(f"{path.name}: N={r['gaussians']}, {r['psnr']:.3f} dB, payload {r['bits_per_gaussian']:.2f} bits/Gaussian")
        for c in r["cases"]:
            print(f"  -{c['drop']} bit on {c['group']:7s}: {c['delta_psnr']:+.3f} dB, "
                  f"payload {c['bits_per_gaussian']:.2f} bits/Gaussian "
                  f"({c['bits_per_gaussian'] - r['bits_per_gaussian']:+.2f})", flush=True)
    print("\nMean over files: PSNR change (dB) / payload bits per Gaussian saved\n")
    print("| group | " + " | ".join(f"-{k} bit" for k in drops) + " |")
    print("|---|" + "---|" * len(drops))
    for name in GROUPS:
        cells = []
        for k in drops:
            sel = [(c, r) for r in rows for c in r["cases"] if c["group"] == name and c["drop"] == k]
            dp = np.mean([c["delta_psnr"] for c, _ in sel])
            db = np.mean([r["bits_per_gaussian"] - c["bits_per_gaussian"] for c, r in sel])
            cells.append(f"{dp:+.3f} / {db:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("precision_cost", main))
