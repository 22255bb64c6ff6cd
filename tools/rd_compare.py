#!/usr/bin/env python3
"""Per-image comparison of two codecs from a ``tools/bench_rd.py`` JSON.

    python tools/rd_compare.py RUN.json [RUN2.json ...] [--test gimg] [--anchor jpeg] [--anchor-run OTHER.json]

For every image and every rate point of the ``--test`` codec, the anchor's PSNR at the
test's achieved bpp, interpolated linearly in bpp along the anchor's points for that image
(clamped to its first/last point outside its range, which the table marks with "*").
Prints a markdown table: test PSNR / anchor PSNR (test bpp), and the difference, and the
mean difference per rate point. With ``--anchor-run`` the anchor's records come from
another run (for example the same codec at an earlier commit); say so when quoting it.
``--anchor-run`` may be given several times (for example one run per rate): the anchor's
records are then those of all of them together; several RUNs likewise pool the test's.

Per point, the summary line gives the mean, median, count above, and range of the
differences, and the standard error of their mean (their sample standard deviation over
the square root of their count; nan for one image). Then, per target rate of the test
codec, a line of means over the images compared (bpp, PSNR, MS-SSIM, Gaussians, bits per
Gaussian, and the range of each file's deviation from the target), the same for the
anchor's records at that target where it has any, the paired MS-SSIM difference (mean,
images above, lowest and highest, standard error of the mean) and the same on the BD-rate's
scale, -10 log10(1 - MS-SSIM) in dB (mean, images above, standard error), how many images have
the same file in both runs (equal bytes, PSNR and MS-SSIM), and, where both runs recorded it,
the paired mean encode time and its ratio.

An image where the test or the anchor has an infinite PSNR (an exact copy, such as a flat
image coded losslessly) is left out of every figure, as bench_rd.py's means leave it out,
and named.
"""

import argparse
import sys

import numpy as np
from rd_lib import image_sizes, load_run, ms_ssim_db
from tool_guard import guarded


def _label(r: dict):
    """A record's rate point label: its "point", else (records older than labels) its target
    bpp, else its bpp."""
    if "point" in r:
        return r["point"]
    if "target_bpp" in r:
        return r["target_bpp"]
    return f"{float(r['bpp']):.4g}"


def exact_copies(records: list, codec: str) -> dict:
    """image -> "CODEC at POINT" for the images where ``codec`` has a record with an infinite
    PSNR (an exact copy: a flat image coded losslessly), which no mean can hold."""
    out: dict = {}
    for r in records:
        if (r.get("codec") == codec and "error" not in r and r.get("psnr") is not None
                and float(r["psnr"]) == float("inf")):
            out.setdefault(r["image"], f"{codec} at {_label(r)}")
    return out


def curves(records: list, codec: str) -> dict:
    """image -> sorted [(bpp, psnr), ...] of one codec (records with an error are skipped)."""
    out: dict = {}
    for r in records:
        if r.get("codec") == codec and "error" not in r and r.get("psnr") is not None:
            out.setdefault(r["image"], []).append((float(r["bpp"]), float(r["psnr"])))
    return {k: sorted(v) for k, v in out.items()}


def points_of(records: list, codec: str) -> dict:
    """image -> {rate point label: (bpp, psnr)} of one codec (records with an error skipped)."""
    out: dict = {}
    for r in records:
        if r.get("codec") == codec and "error" not in r and r.get("psnr") is not None:
            out.setdefault(r["image"], {})[_label(r)] = (float(r["bpp"]), float(r["psnr"]))
    return out


def load_records(path: str) -> list:
    """The records of a bench_rd.py JSON; a one-line SystemExit "PATH: not a bench_rd.py JSON
    (WHY)" when it is not one (``rd_lib.load_run``: a list of records that are objects with a
    codec and an image, each field present of the right type; ``main`` also needs a bpp and a
    PSNR in every record without an error). A run that did not finish is read with a warning
    on stderr."""
    return load_run(path, "rd_compare", measured=())["records"]


def by_target(records: list, codec: str, images: list) -> dict:
    """target bpp -> {image: record} of one codec over ``images`` (records with a target only)."""
    out: dict = {}
    for r in records:
        if r.get("codec") == codec and "error" not in r and r.get("target_bpp") and r["image"] in images:
            out.setdefault(float(r["target_bpp"]), {})[r["image"]] = r
    return out


def _mean(recs: list, key: str) -> float:
    values = [float(r[key]) for r in recs if r.get(key) is not None]
    return float(np.mean(values)) if values else float("nan")


def target_means(recs: list, target: float) -> str:
    """One line of means over the records ``recs`` of one codec at one target bpp."""
    dev = [100.0 * (float(r["bpp"]) / target - 1.0) for r in recs]
    return (f"{len(recs)} images, bpp {_mean(recs, 'bpp'):.4f} (files {min(dev):+.3f} % to {max(dev):+.3f} %), "
            f"PSNR {_mean(recs, 'psnr'):.3f}, MS-SSIM {_mean(recs, 'ms_ssim'):.4f}, "
            f"N {_mean(recs, 'gaussians_final'):.0f}, bits/Gaussian {_mean(recs, 'bits_per_gaussian'):.2f}")


def standard_error(values) -> float:
    """The standard error of the mean of ``values`` [n]: sample standard deviation / sqrt(n);
    nan for fewer than two."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")


def print_ms_ssim_db_difference(test_recs: dict, anchor_recs: dict, images: list) -> None:
    """The paired MS-SSIM difference on the BD-rate's scale, -10 log10(1 - MS-SSIM) (dB): a
    loss of 0.001 weighs more on an image at 0.995 than on one at 0.95, as in the BD-rate."""
    d = {}
    for im in images:
        t, a = ms_ssim_db(test_recs[im].get("ms_ssim")), ms_ssim_db(anchor_recs[im].get("ms_ssim"))
        if t is not None and a is not None:
            d[im] = t - a
    if d:
        print(f"MS-SSIM in dB (-10 log10(1 - MS-SSIM)), paired over {len(d)} images: mean "
              f"{np.mean(list(d.values())):+.3f} dB, {sum(v > 0 for v in d.values())} above, standard error "
              f"{standard_error(list(d.values())):.3f} dB")


def print_same_files(test_recs: dict, anchor_recs: dict, images: list) -> None:
    """How many of ``images`` have the same file in both runs, as far as the records tell:
    equal bytes, PSNR and MS-SSIM to every digit recorded (a code change meant to keep the
    files, or one that changes them only now and then); the others are named."""
    keys = ("bytes", "psnr", "ms_ssim")
    same = [im for im in images if all(test_recs[im].get(k) == anchor_recs[im].get(k) for k in keys)]
    others = [im for im in images if im not in same]
    print(f"Same file as the anchor's (bytes, PSNR and MS-SSIM equal): {len(same)} of {len(images)}"
          + (f"; not: {', '.join(others)}" if others else ""))


def print_target_means(records, anchor_records, test_codec, anchor_codec, images, other_run: bool = True) -> None:
    """The per-target mean lines of the test codec and, where it has the target, the anchor
    (named "(test)" and "(anchor)" when both are one codec; ``other_run``: the anchor's
    records come from another run)."""
    test_t, anchor_t = by_target(records, test_codec, images), by_target(anchor_records, anchor_codec, images)
    same_codec = test_codec == anchor_codec
    test_name = f"{test_codec} (test)" if same_codec else test_codec
    anchor_name = f"{anchor_codec} (anchor)" if same_codec else anchor_codec
    for target, recs in sorted(test_t.items()):
        print(f"\n{test_name} at {target:g} bpp: {target_means(list(recs.values()), target)}")
        if target in anchor_t:
            paired = [im for im in recs if im in anchor_t[target]]
            print(f"{anchor_name} at {target:g} bpp: "
                  f"{target_means([anchor_t[target][im] for im in paired], target)}")
            d = {im: float(recs[im]["ms_ssim"]) - float(anchor_t[target][im]["ms_ssim"]) for im in paired
                 if recs[im].get("ms_ssim") is not None and anchor_t[target][im].get("ms_ssim") is not None}
            if d:
                lo, hi = min(d, key=d.get), max(d, key=d.get)
                print(f"MS-SSIM difference, paired over {len(d)} images: mean {np.mean(list(d.values())):+.5f}, "
                      f"{sum(v > 0 for v in d.values())} above, from {d[lo]:+.4f} ({lo}) to {d[hi]:+.4f} ({hi}), "
                      f"standard error {standard_error(list(d.values())):.5f}")
                print_ms_ssim_db_difference(recs, anchor_t[target], paired)
            if same_codec or other_run:  # two codecs of one run never write the same file
                print_same_files(recs, anchor_t[target], paired)
            timed = [im for im in paired
                     if recs[im].get("encode_s") is not None and anchor_t[target][im].get("encode_s") is not None]
            if timed:
                new = float(np.mean([float(recs[im]["encode_s"]) for im in timed]))
                old = float(np.mean([float(anchor_t[target][im]["encode_s"]) for im in timed]))
                where = ("from different runs unless they shared the machine the same way" if other_run
                         else "one run")
                ratio = f"{new / old:.3f}x" if old > 0 else "ratio n/a"
                print(f"Encode time, paired over {len(timed)} images: mean {new:.1f} s against {old:.1f} s "
                      f"({ratio}; {where})")


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", nargs="+", help="bench_rd.py JSON(s) with the test codec (several: their records together)")
    ap.add_argument("--test", default="gimg")
    ap.add_argument("--anchor", default="jpeg")
    ap.add_argument("--anchor-run", action="append", default=None,
                    help="take the anchor's records from this run instead (repeatable: their records together)")
    args = ap.parse_args(argv)
    loaded: dict = {}  # path -> run, each file read (and checked) once
    for path in args.run + (args.anchor_run or []):
        if path not in loaded:
            loaded[path] = load_run(path, "rd_compare")
    image_sizes([(path, loaded[path]) for path in args.run + (args.anchor_run or [])])
    records = [r for path in args.run for r in loaded[path]["records"]]
    anchor_records = ([r for path in args.anchor_run for r in loaded[path]["records"]]
                      if args.anchor_run else records)
    test, anchor = points_of(records, args.test), curves(anchor_records, args.anchor)
    exact = {**exact_copies(anchor_records, args.anchor), **exact_copies(records, args.test)}
    if exact:
        print("Left out, infinite PSNR (an exact copy): " + "; ".join(f"{im} ({why})" for im, why in exact.items()))
        test = {im: v for im, v in test.items() if im not in exact}
        anchor = {im: v for im, v in anchor.items() if im not in exact}
    images = [im for im in test if im in anchor]
    if not images:
        raise SystemExit(f"no image has both {args.test} and {args.anchor} records"
                         + (" with a finite PSNR" if exact else ""))
    for codec, missing in ((args.anchor, [im for im in test if im not in anchor]),
                           (args.test, [im for im in anchor if im not in test])):
        if missing:
            print(f"Left out, no {codec} records: {', '.join(missing)}")
    # the test's rate points by label, in the order of their mean bpp
    labels = sorted({pt for im in images for pt in test[im]},
                    key=lambda pt: np.mean([test[im][pt][0] for im in images if pt in test[im]]))
    print(f"| image | " + " | ".join(f"point {i + 1}: {args.test} / {args.anchor} (bpp), Δ"
                                     for i in range(len(labels))) + " |")
    print("|---|" + "---|" * len(labels))
    deltas: dict = {}  # point index -> [delta, ...]
    clamped: dict = {}  # point index -> images outside the anchor's range
    for im in images:
        ab, ap_ = zip(*anchor[im])
        cells = []
        for i, label in enumerate(labels):
            if label not in test[im]:
                cells.append("–")
                continue
            bpp, p = test[im][label]
            a = float(np.interp(bpp, ab, ap_))
            outside = bpp < ab[0] or bpp > ab[-1]
            cells.append(f"{p:.2f} / {a:.2f}{'*' if outside else ''} ({bpp:.3f}), {p - a:+.2f}")
            deltas.setdefault(i, []).append(p - a)
            if outside:
                clamped.setdefault(i, []).append(im)
        print(f"| {im} | " + " | ".join(cells) + " |")
    summary = []
    for i, d in sorted(deltas.items()):
        d = np.asarray(d)
        note = (f"; {len(clamped[i])} of them outside the anchor's range, compared with its nearest "
                f"point (*: {', '.join(clamped[i])})" if i in clamped else "")
        summary.append(f"point {i + 1}: mean {d.mean():+.2f} dB, median {np.median(d):+.2f}, "
                       f"{int((d > 0).sum())} of {d.size} above (range {d.min():+.2f} to {d.max():+.2f}), "
                       f"standard error {standard_error(d):.3f} dB{note}")
    print("\n" + "; ".join(summary))
    print_target_means(records, anchor_records, args.test, args.anchor, images, bool(args.anchor_run))
    return 0


if __name__ == "__main__":
    sys.exit(guarded("rd_compare", main))
