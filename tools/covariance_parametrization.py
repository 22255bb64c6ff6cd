#!/usr/bin/env python3
"""Screen: quantize the off-diagonal covariance as b itself (the format's way) or as the
correlation rho = b / sqrt(a c), on a float fit, at several bit depths.

    python tools/covariance_parametrization.py kodim01.png [...] --gaussians 5000 \
        --iterations 3000 [--bits-b 5 6 7] [--bits-rho 4 5 6 7] [--json OUT]

For each image: a float fit (``fit_image``), then log a and log c on a 7-bit grid (the
encoder's covariance depth; each range the best of a few clipping quantiles by render
error), and the off-diagonal in one of two ways:

- ``b``: a uniform grid of b holding 0, each Gaussian's rounded b moved towards 0 where
  it would leave a c - b^2 <= 0 (the encoder's ``psd_safe`` rule);
- ``rho``: a uniform grid of rho in [-r, r] (r < 1, so every Gaussian stays valid)
  holding 0, b = rho sqrt(a c) with the dequantized a and c: the step of b then scales
  with the Gaussian's size.

Positions (11 bits) and colours (6 bits) are quantized on min-max grids only to give the
coder its contexts; the render uses their float values, so the PSNR drop is the
covariance's alone. The b stream's bits are the real coder's (``encode_attributes``,
payload coding 2, which chooses its predictor and contexts per stream). Each grid's
clipping range is the best of a few quantiles by render PSNR. No QAT follows, so this
measures first-order headroom only.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.entropy.gaussian_coder import encode_attributes  # noqa: E402
from gipp_codec.fit.api import fit_image  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from gipp_codec.metrics import psnr  # noqa: E402
from gipp_codec.render.convention import to_uint8  # noqa: E402
from gipp_codec.render.cpu import render_cpu  # noqa: E402
from tool_record import check_record_path, write_record  # noqa: E402

LOG_BITS = 7
POSITION_BITS = 11
COLOR_BITS = 6
CLIP_QUANTILES = (0.0, 0.001, 0.005, 0.02)


def _render_psnr(arr: np.ndarray, means, covs, colors) -> float:
    """PSNR of the 8-bit render of float32 means [N, 2], covs [N, 3], colors [N, 3]."""
    h, w = arr.shape[:2]
    out = render_cpu(torch.from_numpy(means), torch.from_numpy(np.ascontiguousarray(covs, np.float32)),
                     torch.from_numpy(colors), h, w)
    return psnr(to_uint8(out.numpy()), arr)


def _minmax_codes(v: np.ndarray, bits: int) -> np.ndarray:
    """Integers [N] of v [N] on a min-max grid of 2^bits levels."""
    lo, hi = float(v.min()), float(v.max())
    s = max((hi - lo) / ((1 << bits) - 1), 1e-12)
    return np.clip(np.round((v - lo) / s), 0, (1 << bits) - 1).astype(np.int64)


def _grid(lo: float, hi: float, bits: int, zero: bool):
    """(step, offset) of a uniform 2^bits-level grid over [lo, hi]; with ``zero`` the offset
    is a whole number of steps below 0 so that 0 lies on the grid."""
    qmax = (1 << bits) - 1
    s = max((hi - lo) / qmax, 1e-12)
    o = -np.round(-lo / s) * s if zero and lo < 0 < hi else lo
    return s, o


def _quantize(v: np.ndarray, s: float, o: float, bits: int) -> np.ndarray:
    """Codes [N] of v [N] on the grid (s, o), clamped to 0..2^bits - 1."""
    return np.clip(np.round((v - o) / s), 0, (1 << bits) - 1).astype(np.int64)


def _log_variances(covs: np.ndarray, arr, means, colors):
    """(codes [N, 2], dequantized a and c [N, 2]) of log a and log c on 7-bit grids, each
    clipping range the best of CLIP_QUANTILES by render PSNR (b kept float)."""
    t = np.log(covs[:, [0, 2]].astype(np.float64))  # [N, 2]
    best = None
    for p in CLIP_QUANTILES:
        lo, hi = np.quantile(t, p, axis=0), np.quantile(t, 1 - p, axis=0)
        grids = [_grid(lo[k], hi[k], LOG_BITS, False) for k in range(2)]  # (step, offset) of log a, log c
        codes = np.stack([_quantize(t[:, k], *grids[k], LOG_BITS) for k in range(2)], 1)  # [N, 2]
        ac = np.exp(codes * np.array([g[0] for g in grids]) + np.array([g[1] for g in grids]))  # [N, 2]
        covq = np.stack([ac[:, 0], covs[:, 1], ac[:, 1]], 1)
        valid = covq[:, 0] * covq[:, 2] > covq[:, 1] ** 2
        covq[~valid, 1] = 0.0
        score = _render_psnr(arr, means, covq.astype(np.float32), colors)
        if best is None or score > best[0]:
            best = (score, codes, ac)
    return best[1], best[2]


def _b_arm(b: np.ndarray, ac: np.ndarray, bits: int, quantile: float):
    """(codes [N], dequantized b [N]) of b on a zero-holding grid, psd-safe rounding."""
    s, o = _grid(np.quantile(b, quantile), np.quantile(b, 1 - quantile), bits, True)
    q = _quantize(b, s, o, bits)
    zero = int(np.round(-o / s))
    bq = q * s + o
    bad = ac[:, 0] * ac[:, 1] <= bq * bq
    while bad.any():  # step towards the zero code until valid (0 always is)
        q[bad] += np.sign(zero - q[bad])
        bq = q * s + o
        bad = ac[:, 0] * ac[:, 1] <= bq * bq
    return q, bq


def _rho_arm(b: np.ndarray, a_float: np.ndarray, c_float: np.ndarray, ac: np.ndarray, bits: int, quantile: float):
    """(codes [N], dequantized b [N]) of rho = b / sqrt(a c) (float a, c) on a zero-holding
    grid over [-r, r], r = the (1 - quantile) quantile of |rho| capped at 0.999;
    b = rho sqrt(a c) with the dequantized a and c."""
    rho = b / np.sqrt(a_float * c_float)
    r = min(float(np.quantile(np.abs(rho), 1 - quantile)), 0.999)
    s, o = _grid(-r, r, bits, True)
    q = _quantize(rho, s, o, bits)
    rq = np.clip(q * s + o, -0.999, 0.999)
    return q, rq * np.sqrt(ac[:, 0] * ac[:, 1])


def screen_image(path: str, gaussians: int, iterations: int, bits_b, bits_rho, seed: int) -> dict:
    """Fit one image in float and measure every arm: a dict of the float PSNR and, per arm,
    the PSNR and the b stream's bits per Gaussian."""
    arr, _ = load_image(path)
    t0 = time.perf_counter()
    fit = fit_image(arr, gaussians, iterations=iterations, seed=seed)
    means, covs, colors = fit.means, fit.covs.astype(np.float64), fit.colors
    n = means.shape[0]
    codes_ac, ac = _log_variances(covs, arr, means, colors)
    q = np.zeros((n, 8), np.int64)
    q[:, 0] = _minmax_codes(means[:, 0], POSITION_BITS)
    q[:, 1] = _minmax_codes(means[:, 1], POSITION_BITS)
    q[:, 2], q[:, 4] = codes_ac[:, 0], codes_ac[:, 1]
    for k in range(3):
        q[:, 5 + k] = _minmax_codes(colors[:, k], COLOR_BITS)
    bits_tuple = (POSITION_BITS, POSITION_BITS, LOG_BITS, LOG_BITS, LOG_BITS, COLOR_BITS, COLOR_BITS, COLOR_BITS)
    # the coder reads scales and offsets only for its CHANNEL predictor; unit grids keep it honest
    scales, offsets = np.ones(8, np.float32), np.zeros(8, np.float32)
    out = {"image": path, "gaussians": n, "psnr_float": fit.psnr,
           "psnr_b_float": _render_psnr(arr, means, np.stack([ac[:, 0], covs[:, 1], ac[:, 1]], 1).astype(np.float32),
                                        colors),
           "arms": []}
    arms = [("b", k) for k in bits_b] + [("rho", k) for k in bits_rho]
    for kind, bits in arms:
        best = None
        for quantile in CLIP_QUANTILES:
            if kind == "b":
                qb, bq = _b_arm(covs[:, 1], ac, bits, quantile)
            else:
                qb, bq = _rho_arm(covs[:, 1], covs[:, 0], covs[:, 2], ac, bits, quantile)
            covq = np.stack([ac[:, 0], bq, ac[:, 1]], 1).astype(np.float32)
            score = _render_psnr(arr, means, covq, colors)
            if best is None or score > best[0]:
                best = (score, qb, quantile)
        q[:, 3] = best[1]
        bt = list(bits_tuple)
        bt[3] = bits
        _, _, report = encode_attributes(q, tuple(bt), scales, offsets)
        sb = report["b"]
        b_bits = (sb.tokens + sb.raw + sb.side) / n
        out["arms"].append({"kind": kind, "bits": bits, "psnr": best[0], "b_bits_per_gaussian": b_bits,
                            "clip_quantile": best[2], "config": sb.config})
        print(f"  {path} {kind:>3} {bits} bits: PSNR {best[0]:.3f} dB, b stream {b_bits:.2f} bits/Gaussian",
              file=sys.stderr, flush=True)
    out["seconds"] = time.perf_counter() - t0
    return out


def main(argv=None) -> int:
    """Run the screen on the images and print one line per arm (and JSON if asked)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--gaussians", type=int, default=5000)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--bits-b", type=int, nargs="*", default=[5, 6, 7])
    ap.add_argument("--bits-rho", type=int, nargs="*", default=[4, 5, 6, 7])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    check_record_path("covariance_parametrization", args.json, args.images)  # before any work
    results = []
    for path in args.images:
        r = screen_image(path, args.gaussians, args.iterations, args.bits_b, args.bits_rho, args.seed)
        results.append(r)
        print(f"{path}: N {r['gaussians']}, float PSNR {r['psnr_float']:.3f} dB, "
              f"a/c at {LOG_BITS} bits with float b {r['psnr_b_float']:.3f} dB")
        for a in r["arms"]:
            print(f"  {a['kind']:>3} {a['bits']} bits: PSNR {a['psnr']:.3f} dB "
                  f"(Δ {a['psnr'] - r['psnr_b_float']:+.3f}), b stream {a['b_bits_per_gaussian']:.2f} bits/Gaussian")
    if args.json:
        write_record(args.json, results)
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("covariance_parametrization", main))
