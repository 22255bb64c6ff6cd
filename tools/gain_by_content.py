#!/usr/bin/env python3
"""Which images gain from a change, by their content.

    python tools/gain_by_content.py --test RUN.json [RUN2.json ...] --anchor-run BASE.json [BASE2.json ...] \
        --images DIR [--codec gimg] [--window 9] [--flat-below 0.001]

Pairs the ``--codec`` records of the test runs with the anchor runs' by image and target
rate (``tools/bench_rd.py`` JSONs; several files pool, after one flag or with the flag
repeated, for example the two halves of Kodak), and prints per image the PSNR and MS-SSIM
change beside two statistics of the image's texture, computed from the PNG in ``--images``
as RGB in [0, 1]:

- flat share: the fraction of pixels whose local variance, in a ``--window`` square box
  summed over the three channels (``gipp_codec.fit.prune.local_variance``, the map the
  recycling ranks by), is below ``--flat-below``;
- median log10 of that local variance.

Then, per rate, Spearman's rank correlation of each statistic with the PSNR change (ties
share their mean rank): near +1 the flat images gain and the textured lose, near 0 the
content does not tell. Twenty-four images give a rank correlation a standard error of about
0.2, so only values well past ±0.4 say much.
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gipp_codec.fit.prune import local_variance  # noqa: E402
from gipp_codec.errors import InputImageError  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from rd_compare import by_target, load_records  # noqa: E402


def pooled_records(paths: list[str], codec: str) -> dict:
    """(image, target bpp) -> record of ``codec`` from the bench_rd JSONs at ``paths``
    (``rd_compare.by_target``: records with an error or no target skipped); a one-line
    SystemExit when a file is not such a JSON."""
    records = [r for path in paths for r in load_records(path)]
    images = {r.get("image") for r in records}
    return {(image, rate): r for rate, per_image in by_target(records, codec, images).items()
            for image, r in per_image.items()}


def texture_stats(rgb: np.ndarray, window: int, flat_below: float) -> tuple[float, float]:
    """(flat share, median log10 local variance) of an RGB image ``rgb`` [H, W, 3] uint8."""
    target = torch.from_numpy(rgb.astype(np.float32) / 255.0)  # [H, W, 3]
    var = local_variance(target, window).numpy()  # [H, W]
    return float((var < flat_below).mean()), float(np.median(np.log10(var + 1e-12)))


def ranks(x: np.ndarray) -> np.ndarray:  # [n] float
    """Ranks 0..n-1 of ``x`` [n], tied values sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x), dtype=np.float64)
    r[order] = np.arange(len(x), dtype=np.float64)
    for v in np.unique(x):
        tie = x == v
        r[tie] = r[tie].mean()
    return r


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` [n]; nan when either is constant."""
    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def _finite(v) -> bool:
    """Whether a record's PSNR is a finite number (an exact copy's is "inf" or infinite)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--test", nargs="+", action="extend", required=True, help="bench_rd JSONs of the change")
    p.add_argument("--anchor-run", nargs="+", action="extend", required=True, help="bench_rd JSONs to compare against")
    p.add_argument("--images", required=True, help="folder of the images, IMAGE.png for each record's image")
    p.add_argument("--codec", default="gimg")
    p.add_argument("--window", type=int, default=9, help="local variance box side, odd (default 9)")
    p.add_argument("--flat-below", type=float, default=1e-3, help="local variance below which a pixel is flat")
    a = p.parse_args(argv)
    if a.window < 1 or a.window % 2 == 0:
        p.error("--window must be an odd number >= 1")
    test, base = pooled_records(a.test, a.codec), pooled_records(a.anchor_run, a.codec)
    pairs = sorted(k for k in test if k in base)
    if not pairs:
        print("error: no image and rate in both the test and the anchor runs", file=sys.stderr)
        return 2
    stats = {}
    for image in sorted({k[0] for k in pairs}):
        try:
            rgb, _ = load_image(Path(a.images) / f"{image}.png")
        except InputImageError as exc:  # load_image's one error for a missing or unreadable image
            print(f"error: {image}: {exc}", file=sys.stderr)
            return 2
        stats[image] = texture_stats(rgb, a.window, a.flat_below)
    for rate in sorted({k[1] for k in pairs}):
        rows = [k for k in pairs if k[1] == rate]
        print(f"\n{a.codec} at {rate} bpp: {len(rows)} images\n")
        print("| image | flat share | median log10 variance | Δ PSNR (dB) | Δ MS-SSIM |")
        print("|---|---|---|---|---|")
        dp, flat, med = [], [], []
        exact = [k for k in rows if not all(_finite(r["psnr"]) for r in (test[k], base[k]))]
        if exact:
            print(f"Left out, infinite PSNR (an exact copy): {', '.join(k[0] for k in exact)}\n")
        for key in sorted((k for k in rows if k not in exact), key=lambda k: stats[k[0]][0]):
            t, b = test[key], base[key]
            d = t["psnr"] - b["psnr"]
            ds = (t.get("ms_ssim") or float("nan")) - (b.get("ms_ssim") or float("nan"))
            f, m = stats[key[0]]
            dp.append(d)
            flat.append(f)
            med.append(m)
            print(f"| {key[0]} | {f:.3f} | {m:.2f} | {d:+.3f} | {ds:+.5f} |")
        print(f"\nmean Δ PSNR {np.mean(dp):+.3f} dB; Spearman with the flat share {spearman(flat, dp):+.2f}, "
              f"with the median log10 variance {spearman(med, dp):+.2f}")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("gain_by_content", main))
