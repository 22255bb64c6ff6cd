#!/usr/bin/env python3
"""Per-image comparison of two codecs from a ``tools/bench_rd.py`` JSON.

    python tools/rd_compare.py RUN.json [--test gimg] [--anchor jpeg] [--anchor-run OTHER.json]

For every image and every rate point of the ``--test`` codec, the anchor's PSNR at the
test's achieved bpp, interpolated linearly in bpp along the anchor's points for that image
(clamped to its first/last point outside its range, which the table marks with "*").
Prints a markdown table: test PSNR / anchor PSNR (test bpp), and the difference, and the
mean difference per rate point. With ``--anchor-run`` the anchor's records come from
another run (for example the same codec at an earlier commit); say so when quoting it.
``--anchor-run`` may be given several times (for example one run per rate): the anchor's
records are then those of all of them together.
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


def load_records(path: str) -> list:
    """The records of a bench_rd.py JSON; a one-line SystemExit when it is not one."""
    try:
        return json.loads(Path(path).read_text())["records"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: not a bench_rd.py JSON ({exc})") from None


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--test", default="gimg")
    ap.add_argument("--anchor", default="jpeg")
    ap.add_argument("--anchor-run", action="append", default=None,
                    help="take the anchor's records from this run instead (repeatable: their records together)")
    args = ap.parse_args(argv)
    records = load_records(args.run)
    anchor_records = [r for path in args.anchor_run for r in load_records(path)] if args.anchor_run else records
    test, anchor = curves(records, args.test), curves(anchor_records, args.anchor)
    images = [im for im in test if im in anchor]
    if not images:
        raise SystemExit(f"no image has both {args.test} and {args.anchor} records")
    width = max(len(test[im]) for im in images)
    print(f"| image | " + " | ".join(f"point {i + 1}: {args.test} / {args.anchor} (bpp), Δ" for i in range(width)) + " |")
    print("|---|" + "---|" * width)
    deltas: dict = {}  # point index -> [delta, ...]
    for im in images:
        ab, ap_ = zip(*anchor[im])
        cells = []
        for i, (bpp, p) in enumerate(test[im]):
            a = float(np.interp(bpp, ab, ap_))
            mark = "*" if bpp < ab[0] or bpp > ab[-1] else ""
            cells.append(f"{p:.2f} / {a:.2f}{mark} ({bpp:.3f}), {p - a:+.2f}")
            deltas.setdefault(i, []).append(p - a)
        print(f"| {im} | " + " | ".join(cells) + " |")
    summary = []
    for i, d in sorted(deltas.items()):
        d = np.asarray(d)
        summary.append(f"point {i + 1}: mean {d.mean():+.2f} dB, {int((d > 0).sum())} of {d.size} above "
                       f"(range {d.min():+.2f} to {d.max():+.2f})")
    print("\n" + "; ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
