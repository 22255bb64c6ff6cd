#!/usr/bin/env python3
"""Decoding at another size than the file's (``decode(data, scale=...)``), measured.

    python tools/scaled_decode.py IMAGE.png [IMAGE.png ...] [--factor 2] [--bpp 1.0 ...]
                                  [--iterations 5000] [--repeats 5] [--json OUT]
    python tools/scaled_decode.py IMAGE.png [...] --reduce [--factors 2 4 8] [--bpp 0.5 ...]

Enlargements (the default): gimg's Gaussians sampled on a finer grid against the usual
interpolators on the decoded image, both measured against the true larger image.
Each image is shrunk F times (Pillow's box reduction, so the original is what a camera of
F times the resolution would have seen), the small image is encoded at each rate, and the
file is brought back to the original's size in two ways: ``decode(data, scale=F)`` (the
Gaussians sampled on the finer grid, ``render.rescale``) and the conforming decode enlarged
by Pillow's bilinear, bicubic and Lanczos filters. The PSNR of each against the original is
reported, with, as a ceiling, the small image itself enlarged by Lanczos (no coding loss).
Times: the in-process ``decode(data, scale=F)`` against ``decode(data)`` followed by the
Lanczos enlargement, warm, medians of ``--repeats`` alternated runs.

Reductions (``--reduce``): why ``decode`` reduces by averaging the file's render. Each image
is encoded at each rate at its own size, and reduced F times three ways, each against the
original's box reduction: ``decode(data, scale=1/F)`` (the render at the file's size,
box-filtered), the Gaussians sampled on the coarser grid after a convolution with a Gaussian
of the box's variance (1 - s^2) / 12 output pixels^2 (colour scaled to keep each one's
integral), and the same without that filter. Also the share of the file's Gaussians whose
narrow axis has sigma under half a pixel.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gipp_codec.decoder import decode
from gipp_codec.encoder import encode_with_report
from gipp_codec.metrics import psnr
from tool_record import check_record_path, write_record

FILTERS = (("bilinear", Image.Resampling.BILINEAR), ("bicubic", Image.Resampling.BICUBIC),
           ("lanczos", Image.Resampling.LANCZOS))


def enlarge(image: np.ndarray, width: int, height: int, resample) -> np.ndarray:
    """uint8 [h, w, 3] enlarged by Pillow to uint8 [height, width, 3]."""
    return np.asarray(Image.fromarray(image).resize((width, height), resample))


def timed_pair(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of two callables, run alternately ``repeats`` times after one warm-up each."""
    first(), second()
    a, b = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        first()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        second()
        b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def study(path: Path, factor: int, bpp: float, iterations: int, repeats: int) -> dict:
    """One image at one rate: the PSNRs and times of the module docstring."""
    with Image.open(path) as im:
        original = np.asarray(im.convert("RGB"))  # [H, W, 3]
    height, width = original.shape[0] // factor * factor, original.shape[1] // factor * factor
    original = original[:height, :width]
    small = np.asarray(Image.fromarray(original).reduce(factor))  # [H / F, W / F, 3]
    data, report = encode_with_report(small, bpp=bpp, iterations=iterations)
    native = decode(data)
    row = {"image": path.name, "factor": factor, "target_bpp": bpp, "bpp": report.bpp, "psnr_small": report.psnr,
           "gaussians": report.gaussians, "psnr_gimg": psnr(decode(data, scale=factor), original)}
    for name, resample in FILTERS:
        row[f"psnr_{name}"] = psnr(enlarge(native, width, height, resample), original)
    row["psnr_lanczos_uncoded"] = psnr(enlarge(small, width, height, Image.Resampling.LANCZOS), original)
    t_gimg, t_lanczos = timed_pair(lambda: decode(data, scale=factor),
                                   lambda: enlarge(decode(data), width, height, Image.Resampling.LANCZOS), repeats)
    row.update(seconds_gimg=t_gimg, seconds_decode_lanczos=t_lanczos)
    return row


def filtered_reduction(data: bytes, factor: int, antialias: bool) -> np.ndarray:
    """uint8 [H / F, W / F, 3]: the file's Gaussians sampled directly on the grid F times
    coarser, with (``antialias``) or without the box-variance filter; the alternative that
    ``render.rescale`` measured and did not take."""
    from gipp_codec.decoder import _render_uint8, gaussians_as_floats
    from gipp_codec.format.container import parse_gimg
    from gipp_codec.render.rescale import block_sides, rescale_gaussians

    parsed = parse_gimg(data)
    w, h = int(parsed.header["width"]), int(parsed.header["height"])
    s = 1.0 / factor
    means, covs, colors = rescale_gaussians(*gaussians_as_floats(parsed), s, s)  # [M, 2], [M, 3], [M, 3]
    if antialias:
        c = covs.astype(np.float64)
        det = c[:, 0] * c[:, 2] - c[:, 1] ** 2
        c[:, 0] += (1 - s * s) / 12
        c[:, 2] += (1 - s * s) / 12
        colors = (colors * np.sqrt(det / (c[:, 0] * c[:, 2] - c[:, 1] ** 2))[:, None]).astype(np.float32)
        covs = c.astype(np.float32)
    factors = None if parsed.base is None else block_sides(parsed.base.factor, s, s)
    return _render_uint8(parsed, "cpu", (means, covs, colors), (w // factor, h // factor), factors)


def narrow_share(data: bytes, sigma: float = 0.5) -> float:
    """Share of a file's valid Gaussians whose narrow axis has a standard deviation under ``sigma`` px."""
    from gipp_codec.decoder import gaussians_as_floats
    from gipp_codec.format.container import parse_gimg
    from gipp_codec.render.rescale import valid_mask

    _, covs, _ = gaussians_as_floats(parse_gimg(data))
    c = covs[valid_mask(covs)].astype(np.float64)  # [M, 3]
    half_trace = (c[:, 0] + c[:, 2]) / 2
    smallest = half_trace - np.sqrt(np.maximum(half_trace ** 2 - (c[:, 0] * c[:, 2] - c[:, 1] ** 2), 0))
    return float(np.mean(smallest < sigma * sigma)) if c.size else 0.0


def study_reduction(path: Path, factors: list[int], bpp: float, iterations: int) -> list[dict]:
    """One image at one rate, reduced by each factor: the PSNRs of the module docstring."""
    with Image.open(path) as im:
        original = np.asarray(im.convert("RGB"))  # [H, W, 3]
    data, report = encode_with_report(original, bpp=bpp, iterations=iterations)
    share = narrow_share(data)
    rows = []
    for f in factors:
        h, w = original.shape[0] // f * f, original.shape[1] // f * f
        if (h, w) != original.shape[:2]:
            raise SystemExit(f"{path.name}: {original.shape[1]}x{original.shape[0]} is not a multiple of {f}")
        reference = np.asarray(Image.fromarray(original).reduce(f))
        rows.append({"image": path.name, "target_bpp": bpp, "bpp": report.bpp, "psnr_file": report.psnr,
                     "factor": f, "narrow_share": share,
                     "psnr_box_of_render": psnr(decode(data, scale=1 / f), reference),
                     "psnr_filtered_gaussians": psnr(filtered_reduction(data, f, True), reference),
                     "psnr_sampled_gaussians": psnr(filtered_reduction(data, f, False), reference)})
    return rows


def reduce_main(args) -> int:
    """``--reduce``: the table and means of the reductions."""
    rows = []
    print("| image | bpp | factor | box of the render | Gaussians, filtered | Gaussians, sampled | "
          "narrow share |")
    print("|---|---|---|---|---|---|---|")
    for bpp in args.bpp:
        for path in args.images:
            for r in study_reduction(path, args.factors, bpp, args.iterations):
                rows.append(r)
                print(f"| {r['image']} | {r['bpp']:.3f} | 1/{r['factor']} | {r['psnr_box_of_render']:.2f} | "
                      f"{r['psnr_filtered_gaussians']:.2f} | {r['psnr_sampled_gaussians']:.2f} | "
                      f"{100 * r['narrow_share']:.0f} % |", flush=True)
    print()
    for bpp in args.bpp:
        for f in args.factors:
            group = [r for r in rows if r["target_bpp"] == bpp and r["factor"] == f]
            m = {k: np.mean([r[k] for r in group]) for k in ("psnr_box_of_render", "psnr_filtered_gaussians",
                                                              "psnr_sampled_gaussians", "narrow_share")}
            print(f"{bpp} bpp, 1/{f}, {len(group)} images: mean PSNR box of the render {m['psnr_box_of_render']:.2f}, "
                  f"Gaussians filtered {m['psnr_filtered_gaussians']:.2f}, sampled {m['psnr_sampled_gaussians']:.2f} "
                  f"dB; Gaussians under 0.5 px across {100 * m['narrow_share']:.0f} %")
    if args.json:
        write_record(args.json, rows)
    return 0


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--factor", type=int, default=2, help="shrink, then enlarge, by this (default 2)")
    ap.add_argument("--reduce", action="store_true", help="measure reductions instead (module docstring)")
    ap.add_argument("--factors", type=int, nargs="+", default=[2, 4, 8], help="--reduce: the reduction factors")
    ap.add_argument("--bpp", type=float, nargs="+", default=[1.0], help="rates of the small image's files")
    ap.add_argument("--iterations", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    check_record_path("scaled_decode", args.json, args.images)  # before any work
    if args.factor < 2:
        ap.error("--factor must be 2 or more")
    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        ap.error(f"no such image: {', '.join(missing)}")
    if args.reduce:
        if any(f < 2 for f in args.factors):
            ap.error("--factors must be 2 or more")
        return reduce_main(args)
    rows = []
    print("| image | bpp | PSNR small | gimg x F | bilinear | bicubic | Lanczos | gimg - Lanczos | Lanczos, uncoded "
          "| time gimg / (decode + Lanczos) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for bpp in args.bpp:
        for path in args.images:
            r = study(path, args.factor, bpp, args.iterations, args.repeats)
            rows.append(r)
            print(f"| {r['image']} | {r['bpp']:.3f} | {r['psnr_small']:.2f} | {r['psnr_gimg']:.2f} | "
                  f"{r['psnr_bilinear']:.2f} | {r['psnr_bicubic']:.2f} | {r['psnr_lanczos']:.2f} | "
                  f"{r['psnr_gimg'] - r['psnr_lanczos']:+.2f} | {r['psnr_lanczos_uncoded']:.2f} | "
                  f"{r['seconds_gimg'] / r['seconds_decode_lanczos']:.2f} |", flush=True)
    print()
    for bpp in args.bpp:
        group = [r for r in rows if r["target_bpp"] == bpp]
        deltas = [r["psnr_gimg"] - r["psnr_lanczos"] for r in group]
        ratios = [r["seconds_gimg"] / r["seconds_decode_lanczos"] for r in group]
        means = {k: np.mean([r[k] for r in group]) for k in ("psnr_gimg", "psnr_bilinear", "psnr_bicubic",
                                                              "psnr_lanczos", "psnr_lanczos_uncoded")}
        print(f"{bpp} bpp, {len(group)} images, x{args.factor}: mean PSNR gimg {means['psnr_gimg']:.2f}, bilinear "
              f"{means['psnr_bilinear']:.2f}, bicubic {means['psnr_bicubic']:.2f}, Lanczos {means['psnr_lanczos']:.2f} "
              f"dB (uncoded {means['psnr_lanczos_uncoded']:.2f}); gimg - Lanczos {np.mean(deltas):+.2f} dB "
              f"({min(deltas):+.2f} to {max(deltas):+.2f}, ahead on {sum(d > 0 for d in deltas)} of {len(group)}); "
              f"time gimg / (decode + Lanczos) median {statistics.median(ratios):.2f}")
    if args.json:
        write_record(args.json, rows)
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("scaled_decode", main))
