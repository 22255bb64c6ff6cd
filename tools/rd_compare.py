#!/usr/bin/env python3
"""Per-image comparison of two codecs from a ``tools/bench_rd.py`` JSON.

    python tools/rd_compare.py RUN.json [--test gimg] [--anchor jpeg]

For every image and every rate point of the ``--test`` codec, the anchor's PSNR at the
test's achieved bpp, interpolated linearly in bpp along the anchor's points for that image
(clamped to its first/last point outside its range, which the table marks with "*").
Prints a markdown table: test PSNR / anchor PSNR (test bpp), and the difference.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def curves(records: list, codec: str) -> dict:
    """image -> sorted [(bpp, psnr), ...] of one codec (records with an error are skipped)."""
    out: dict = {}
    for r in records:
        if r.get("codec") == codec and "error" not in r and r.get("psnr") is not None:
            out.setdefault(r["image"], []).append((float(r["bpp"]), float(r["psnr"])))
    return {k: sorted(v) for k, v in out.items()}


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--test", default="gimg")
    ap.add_argument("--anchor", default="jpeg")
    args = ap.parse_args(argv)
    try:
        records = json.loads(Path(args.run).read_text())["records"]
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"{args.run}: not a bench_rd.py JSON ({exc})") from None
    test, anchor = curves(records, args.test), curves(records, args.anchor)
    images = [im for im in test if im in anchor]
    if not images:
        raise SystemExit(f"no image has both {args.test} and {args.anchor} records")
    width = max(len(test[im]) for im in images)
    print(f"| image | " + " | ".join(f"point {i + 1}: {args.test} / {args.anchor} (bpp), Δ" for i in range(width)) + " |")
    print("|---|" + "---|" * width)
    for im in images:
        ab, ap_ = zip(*anchor[im])
        cells = []
        for bpp, p in test[im]:
            a = float(np.interp(bpp, ab, ap_))
            mark = "*" if bpp < ab[0] or bpp > ab[-1] else ""
            cells.append(f"{p:.2f} / {a:.2f}{mark} ({bpp:.3f}), {p - a:+.2f}")
        print(f"| {im} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
