#!/usr/bin/env python3
"""What the code search (gipp_codec.fit.code_search) gains on finished files, by sweep count
and rate weight.

    python tools/code_search_gain.py FILE.gimg IMAGE.png [FILE.gimg IMAGE.png ...]
        [--sweeps 1,3,5,8,15] [--rate-weights 0] [--json OUT]

For each file, each rate weight w and each sweep count: the PSNR of the searched codes'
decoded image against the file's own, the search's time, the moves of its last sweep, the
size of the file re-written with the searched codes against the original's (the same scales
and offsets), and the PSNR gained per bpp added. With w = 0 the search ignores the rate;
with w > 0 it weighs the bits of every channel as the encoder's search does (red and blue
as residuals from green, ``QATConfig.rate_weight`` w; the encoder's default is 0.5 up to
0.5 bpp and 0.5 * 0.5 / bpp above). A w under the encoder's spends bits on precision: the
PSNR per bpp says whether that is as good a use of them as the RD curve's own slope. Each
count is a separate search from the file's codes.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.decoder import decode, decodes_grey, gaussians_as_floats  # noqa: E402
from gipp_codec.fit.code_search import search_codes  # noqa: E402
from gipp_codec.fit.gray import priced_channels  # noqa: E402
from gipp_codec.fit.rate_proxy import RATE_CHANNEL_SETS  # noqa: E402
from gipp_codec.format.base_layer import upsample  # noqa: E402
from gipp_codec.format.container import parse_gimg, write_gimg  # noqa: E402
from gipp_codec.format.model import QuantizedGaussians  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from gipp_codec.metrics import psnr  # noqa: E402
from gipp_codec.render.numba_kernels import ENCODER_CONVENTION, forward  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "code_search_gain"


def gains(gimg_path: str, image_path: str, sweep_counts: list[int], rate_weights: tuple = (0.0,)) -> list[dict]:
    """One row per (rate weight, sweep count) for one file (see the module docstring)."""
    data = Path(gimg_path).read_bytes()
    parsed = parse_gimg(data)
    if parsed.header["render_convention"] != ENCODER_CONVENTION:
        raise SystemExit(f"{gimg_path}: render convention {parsed.header['render_convention']}; the code search "
                         f"works in convention {ENCODER_CONVENTION}")
    if decodes_grey(parsed):
        raise SystemExit(f"{gimg_path}: a grey file; the encoder's search ties red and blue to green there, "
                         "which this tool does not")
    g = parsed.gaussians
    arr, _ = load_image(image_path)  # uint8 [H, W, 3]
    target = arr.astype(np.float32) / np.float32(255.0)
    render = forward(*gaussians_as_floats(parsed), g.height, g.width)  # [H, W, 3] float32
    if parsed.base is not None:  # the search sees the image as decoded: the base under the Gaussians
        render = render + upsample(parsed.base, g.width, g.height)
    base = psnr(decode(data), arr)
    pixels = g.width * g.height
    bits = g.bits.per_channel()
    corr = g.correlation
    search_codes(g.q[:1], g.scales, g.offsets, bits, render, target, 1, correlation=corr)  # compile outside the timing
    channels = priced_channels(RATE_CHANNEL_SETS["all"], False)
    rows = []
    for weight in rate_weights:
        rate = {} if weight <= 0 else {"rate_weight": weight, "rate_channels": channels, "residuals": True}
        for sweeps in sweep_counts:
            start = time.perf_counter()
            q, report = search_codes(g.q, g.scales, g.offsets, bits, render, target, sweeps, correlation=corr, **rate)
            seconds = time.perf_counter() - start
            out = write_gimg(QuantizedGaussians(g.width, g.height, g.bits, q, g.scales, g.offsets, corr),
                             parsed.metadata, base=parsed.base)
            gain, added = psnr(decode(out), arr) - base, 8 * (len(out) - len(data)) / pixels
            rows.append({"file": gimg_path, "gaussians": int(g.q.shape[0]), "rate_weight": weight,
                         "sweeps": sweeps, "psnr_file": base, "bpp_file": 8 * len(data) / pixels,
                         "psnr_gain": gain, "bpp_added": added, "db_per_bpp": gain / added if added > 0 else None,
                         "seconds": seconds, "last_sweep_moves": report.moves[-1],
                         "size_ratio": len(out) / len(data)})
    return rows


def main(argv=None) -> int:
    """Entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pairs", nargs="+", help="FILE.gimg IMAGE.png pairs")
    ap.add_argument("--sweeps", default="1,3,5,8,15", help="comma-separated sweep counts")
    ap.add_argument("--rate-weights", default="0", help="comma-separated rate weights (0: the rate ignored)")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    if len(args.pairs) % 2:
        ap.error("give FILE.gimg IMAGE.png pairs")
    check_record_path(PROG, args.json, args.pairs)
    counts = [int(x) for x in args.sweeps.split(",")]
    weights = tuple(float(x) for x in args.rate_weights.split(","))
    print("| file | N | rate weight | sweeps | PSNR gain (dB) | bpp added | dB per bpp | seconds "
          "| moves in the last sweep | file size |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for gimg_path, image_path in zip(args.pairs[::2], args.pairs[1::2]):
        for r in gains(gimg_path, image_path, counts, weights):
            rows.append(r)
            slope = "" if r["db_per_bpp"] is None else f"{r['db_per_bpp']:.2f}"
            print(f"| {Path(gimg_path).name} | {r['gaussians']} | {r['rate_weight']:g} | {r['sweeps']} | "
                  f"{r['psnr_gain']:+.3f} | {r['bpp_added']:+.4f} | {slope} | {r['seconds']:.2f} | "
                  f"{r['last_sweep_moves']} | {r['size_ratio']:.4f}x |", flush=True)
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("code_search_gain", main))
