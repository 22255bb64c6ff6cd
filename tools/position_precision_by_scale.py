#!/usr/bin/env python3
"""Would some Gaussians do with coarser positions? A what-if for a future payload coding.

    python tools/position_precision_by_scale.py FILE.gimg [FILE.gimg ...] --images DIR [--json OUT]

Coding v1 codes every position at the header's depth. A coding that split the set into
groups, each sorted and gap-coded at its own position depth, would need no per-Gaussian
flag (the set has no order, so the groups are just written one after the other). This
tool estimates what that would buy, without retraining: the Gaussians a rule picks get d
fewer position bits (q -> centre of its 2^d-wide bin). Two kinds of rule:

- by scale: each Gaussian whose smaller standard deviation sqrt(lambda_min) of the
  dequantized covariance is at least T pixels (T1 -> d = 1, T2 -> d = 2, ...);
- by sensitivity: the fraction f of the Gaussians whose render moves least when their
  position does. A shift delta of a Gaussian with colour k and covariance S changes the
  render by |k|^2 (pi / 2) sqrt(det S) delta' S^-1 delta in squared error; over a uniform
  quantization error of variance v per axis that is |k|^2 (pi / 2) v (s_max / s_min +
  s_min / s_max), so the score is |k|^2 (s_max / s_min + s_min / s_max). The encoder
  alone applies a rule (it writes the groups one after the other), so a decoder never
  needs to rank anything.

For each rule it prints the PSNR change of the decoder's render (base layer included)
against the file as written, and the change in position bits per Gaussian, each group's
Morton gaps costed with the coder's cost model (one context, best (k, m)).
The reference image of FILE is DIR/<name>.png, <name> the file name up to the first "_".
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from context_headroom import cost_per_gaussian
from gipp_codec.entropy.gaussian_coder import morton_encode
from gipp_codec.format.constants import CH_X, CH_Y
from gipp_codec.decoder import render_parsed_uint8
from gipp_codec.format.container import ParsedGimg, parse_gimg
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.imageio import load_image
from gipp_codec.metrics import psnr
from gipp_codec.quant.dequant import dequantize
from tool_record import check_record_path, write_text_atomic

PROG = "position_precision_by_scale"

# by scale: rule name -> ((sigma_min threshold in pixels, position bits dropped), ...), ascending
RULES = {
    "d1 from 2 px": ((2.0, 1),),
    "d1 from 4 px": ((4.0, 1),),
    "d2 from 4 px": ((4.0, 2),),
    "d2 from 8 px": ((8.0, 2),),
    "d3 from 8 px": ((8.0, 3),),
    "d1/d2/d3 from 3/6/12 px": ((3.0, 1), (6.0, 2), (12.0, 3)),
}
# by sensitivity: rule name -> ((fraction of the set, position bits dropped), ...), the
# least sensitive fraction first (the first fraction gets the most bits dropped)
SENSITIVITY_RULES = {
    "d1, least sensitive 25 %": ((0.25, 1),),
    "d1, least sensitive 50 %": ((0.50, 1),),
    "d1, least sensitive 75 %": ((0.75, 1),),
    "d2, least sensitive 25 %": ((0.25, 2),),
    "d2 / d1, least sensitive 25 / 50 %": ((0.25, 2), (0.50, 1)),
}


def gap_bits(qx: np.ndarray, qy: np.ndarray) -> float:
    """Bits to code the positions qx, qy [M] as sorted Morton gaps (the coder's cost model)."""
    if qx.size == 0:
        return 0.0
    m = np.sort(morton_encode(qx, qy))
    gaps = np.diff(m, prepend=np.uint64(0))  # [M]
    return cost_per_gaussian(gaps, np.zeros(qx.size, np.int64)) * qx.size


def _eigenvalues(g: QuantizedGaussians) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lambda_min [N], lambda_max [N], colours [N, 3]) of the dequantized Gaussians, float64."""
    _, covs, colors = dequantize(g)
    cv = np.asarray(covs, np.float64).reshape(g.q.shape[0], -1)  # [N, 3] = a, b, c
    a, b, c = cv[:, 0], cv[:, 1], cv[:, 2]
    root = np.sqrt(0.25 * (a - c) ** 2 + b * b)
    return 0.5 * (a + c) - root, 0.5 * (a + c) + root, np.asarray(colors, np.float64).reshape(-1, 3)


def sigma_min(g: QuantizedGaussians) -> np.ndarray:
    """Smaller standard deviation [N] (pixels) of each dequantized covariance."""
    lam_min, _, _ = _eigenvalues(g)
    return np.sqrt(np.maximum(lam_min, 0.0))


def position_sensitivity(g: QuantizedGaussians) -> np.ndarray:
    """|colour|^2 (s_max / s_min + s_min / s_max) [N]: how much the render moves (squared
    error, up to a common factor) when the Gaussian's position moves (module docstring)."""
    lam_min, lam_max, colors = _eigenvalues(g)
    ratio = np.sqrt(np.maximum(lam_max, 1e-300) / np.maximum(lam_min, 1e-300))
    return np.sum(colors * colors, axis=1) * (ratio + 1.0 / ratio)


def drops_by_scale(g: QuantizedGaussians, rule) -> np.ndarray:
    """Position bits dropped per Gaussian [N] by a rule of RULES."""
    sig = sigma_min(g)
    drop = np.zeros(g.q.shape[0], np.int64)
    for threshold, d in rule:
        drop[sig >= threshold] = d
    return drop


def drops_by_sensitivity(g: QuantizedGaussians, rule) -> np.ndarray:
    """Position bits dropped per Gaussian [N] by a rule of SENSITIVITY_RULES."""
    order = np.argsort(position_sensitivity(g), kind="stable")  # least sensitive first
    n = order.size
    drop = np.zeros(n, np.int64)
    start = 0
    for fraction, d in rule:
        end = int(round(fraction * n))
        drop[order[start:end]] = d
        start = max(start, end)
    return drop


def render_psnr(parsed: ParsedGimg, q: np.ndarray, reference: np.ndarray) -> float:
    """PSNR against reference uint8 [H, W, 3] of the decoder's render of ``parsed`` with
    its Gaussians' integers replaced by q [N, 8] (base layer and render convention kept)."""
    g = parsed.gaussians
    gg = QuantizedGaussians(g.width, g.height, g.bits, q, g.scales, g.offsets, g.correlation)
    return psnr(render_parsed_uint8(dataclasses.replace(parsed, gaussians=gg)), reference)


def study(path: Path, images: Path) -> dict:
    """PSNR change and position bits per Gaussian of every rule, for one file."""
    parsed = parse_gimg(path.read_bytes())
    g = parsed.gaussians
    if not isinstance(g, QuantizedGaussians):
        raise SystemExit(f"{path}: a float32 file has no quantized positions")
    reference, _ = load_image(images / (path.name.split("_")[0] + ".png"))
    q = g.q.astype(np.int64)  # [N, 8]
    n = q.shape[0]
    top = (1 << g.bits.position) - 1
    base_psnr = render_psnr(parsed, g.q, reference)
    base_bits = gap_bits(q[:, CH_X], q[:, CH_Y]) / n
    out = {"file": str(path), "gaussians": n, "psnr": base_psnr, "position_bits": base_bits, "rules": []}
    rules = [(name, drops_by_scale(g, rule)) for name, rule in RULES.items()]
    rules += [(name, drops_by_sensitivity(g, rule)) for name, rule in SENSITIVITY_RULES.items()]
    for name, drop in rules:
        q2, bits = q.copy(), 0.0
        for d in np.unique(drop):
            sel = drop == d
            cx, cy = q[sel, CH_X] >> d, q[sel, CH_Y] >> d
            bits += gap_bits(cx, cy)
            half = (1 << d) >> 1
            q2[sel, CH_X] = np.minimum((cx << d) + half, top)
            q2[sel, CH_Y] = np.minimum((cy << d) + half, top)
        out["rules"].append({"rule": name, "coarser_fraction": float(np.mean(drop > 0)),
                             "delta_psnr": render_psnr(parsed, q2.astype(g.q.dtype), reference) - base_psnr,
                             "delta_position_bits": bits / n - base_bits})
    return out


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--images", type=Path, required=True, help="folder of the reference PNGs")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    references = [args.images / (p.name.split("_")[0] + ".png") for p in args.files]  # the images it reads
    check_record_path(PROG, args.json, [*args.files, *references])
    rows = []
    for path in args.files:
        r = study(path, args.images)
        rows.append(r)
        print(f"{path.name}: N={r['gaussians']}, {r['psnr']:.3f} dB, positions {r['position_bits']:.3f} bits/Gaussian")
        for c in r["rules"]:
            print(f"  {c['rule']:24s} {100 * c['coarser_fraction']:5.1f} % coarser: {c['delta_psnr']:+.3f} dB, "
                  f"{c['delta_position_bits']:+.3f} bits/Gaussian", flush=True)
    print(f"\nMean over {len(rows)} files\n\n| rule | coarser | PSNR change dB | position bits/Gaussian | dB lost per bit saved |")
    print("|---|---|---|---|---|")
    for i, name in enumerate([*RULES, *SENSITIVITY_RULES]):
        frac = np.mean([r["rules"][i]["coarser_fraction"] for r in rows])
        dp = np.mean([r["rules"][i]["delta_psnr"] for r in rows])
        db = np.mean([r["rules"][i]["delta_position_bits"] for r in rows])
        ratio = f"{dp / db:.3f}" if db < 0 else "no saving"
        print(f"| {name} | {100 * frac:.0f} % | {dp:+.3f} | {db:+.3f} | {ratio} |")
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("position_precision_by_scale", main))
