#!/usr/bin/env python3
"""Time parts of an encode old way against new way, interleaved, on a coded file's set.

    python tools/part_speed.py FILE.gimg IMAGE.png [FILE.gimg IMAGE.png ...]
        [--repeats 15] [--cuda] [--json OUT]

Whole encodes on these shared machines vary by 20 % from run to run; a part timed both ways
in turns, in one process, on the same input, gives a steadier ratio. Parts:
- ``sweep``: one sweep of the code search from the file's codes against the image, rate
  weighed as the encoder does (``code_search.bit_price`` at 0.5): the serial kernel
  ``_sweep`` in the search's order (the search before commit 8eda463) against
  ``tiled_sweep`` (since then groups in parallel on all threads: of rows, and since commit
  2eeb400 of square tiles);
- ``sweep_cuda`` (with ``--cuda``): the same sweep by ``tiled_sweep`` on the CPU's cores
  against ``code_search_triton.tiled_sweep_triton`` on the GPU (fortieth session);
- ``rate``: one QAT iteration's rate term on the file's Gaussians (a quantizer at the file's
  depths, ranges from the set's min and max): the torch form ``attribute_bits`` and
  autograd's backward (before commit f7086d8) against the kernel ``add_rate_gradients``.
Each repeat runs both ways on fresh copies; prints each way's median and new / old.
Threads as in an encode (``fit.threads``: torch on one, numba on every core).
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gipp_codec.decoder import parse_gimg
from gipp_codec.fit import code_search as cs
from gipp_codec.fit.rate_proxy import RATE_CHANNELS, add_rate_gradients, attribute_bits
from gipp_codec.imageio import load_image
from gipp_codec.quant.dequant import dequantize_rows
from gipp_codec.quant.lsq import LSQPlus
from gipp_codec.render import numba_kernels
from tool_record import check_record_path, write_text_atomic

PROG = "part_speed"


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _sweep_state(gimg: Path, png: Path):
    """What one sweep from a coded file's codes takes: (codes [N, 8] int64, s, o [8], top [8],
    order [N], render [H, W, 3] float64 unclamped, target [H, W, 3] float32, cost, mu), the
    rate weighed as the encoder does (``code_search.bit_price`` at 0.5)."""
    parsed = parse_gimg(gimg.read_bytes())
    if parsed.header["render_convention"] != numba_kernels.ENCODER_CONVENTION:
        raise SystemExit(f"{gimg}: render convention {parsed.header['render_convention']}; the code search "
                         f"works in convention {numba_kernels.ENCODER_CONVENTION}")
    g = parsed.gaussians
    target = np.ascontiguousarray(load_image(png)[0].astype(np.float32) / np.float32(255.0))  # [H, W, 3]
    rows = dequantize_rows(g.q, g.scales, g.offsets, g.correlation)  # [N, 8]
    pp = numba_kernels.prepare(rows[:, 0:2], rows[:, 2:5], rows[:, 5:8], g.height, g.width)
    render = numba_kernels.forward_prepared(pp).astype(np.float64)  # [H, W, 3] unclamped
    codes = g.q.astype(np.int64)
    s, o = g.scales.astype(np.float64), g.offsets.astype(np.float64)
    bits = g.bits.per_channel()
    top = np.array([(1 << int(b)) - 1 for b in bits], np.int64)
    cost = cs.code_bits(codes, bits, RATE_CHANNELS)
    mu = cs.bit_price(0.5, float(np.sum((np.clip(render, 0.0, 1.0) - target) ** 2)), g.height * g.width)
    return codes, s, o, top, cs.visit_order(rows), render, target, cost, mu


def sweep_ways(gimg: Path, png: Path):
    """(old, new) callables that each run one sweep on fresh copies of the file's codes."""
    codes, s, o, top, order, render, target, cost, mu = _sweep_state(gimg, png)

    def way(kernel):
        return lambda: kernel(codes.copy(), s, o, top, order, render.copy(), target, cost, mu)

    link = cs.no_links(cost.shape[1])

    def serial():
        return cs._sweep(codes.copy(), s, o, top, order, render.copy(), target, cost, link, mu)

    return serial, way(cs.tiled_sweep)


def cuda_sweep_ways(gimg: Path, png: Path, device: str = "cuda"):
    """(old, new): one sweep by the CPU's ``tiled_sweep`` (numba, every core) and by
    ``code_search_triton.tiled_sweep_triton`` on ``device`` (CUDA, waited for; the CPU only
    under Triton's interpreter), each on fresh copies."""
    from gipp_codec.fit.code_search_triton import tiled_sweep_triton

    codes, s, o, top, order, render, target, cost, mu = _sweep_state(gimg, png)
    dev = torch.device(device)
    codes_d, render_d, target_d = (torch.from_numpy(x).to(dev) for x in (codes, render, target))

    def old():
        cs.tiled_sweep(codes.copy(), s, o, top, order, render.copy(), target, cost, mu)

    def new():
        tiled_sweep_triton(codes_d.clone(), s, o, top, order, render_d.clone(), target_d, cost, mu)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return old, new


def rate_ways(gimg: Path):
    """(old, new) callables that each add one iteration's rate-term gradient to fresh leaves."""
    g = parse_gimg(gimg.read_bytes()).gaussians
    rows = torch.from_numpy(dequantize_rows(g.q, g.scales, g.offsets, g.correlation))  # [N, 8]
    quant = LSQPlus(tuple(g.bits.per_channel()), psd_safe=True)
    quant.init_minmax(rows)

    def leaves():
        parts = [p.clone().requires_grad_(True) for p in torch.split(rows, [2, 3, 3], dim=1)]
        for p in parts:
            p.grad = torch.zeros_like(p)
        return parts

    def old():
        parts = leaves()
        (attribute_bits(torch.cat(parts, dim=1), quant, RATE_CHANNELS) * 1e-6).backward()

    def new():
        add_rate_gradients(leaves(), quant, RATE_CHANNELS, 1e-6)

    return old, new


def bench(gimg: Path, png: Path, repeats: int, cuda: bool = False) -> dict:
    """Median seconds of each way of each part on one file (with ``cuda``, also ``sweep_cuda``)."""
    out = {}
    parts = [("sweep", sweep_ways(gimg, png)), ("rate", rate_ways(gimg))]
    if cuda:
        parts.append(("sweep_cuda", cuda_sweep_ways(gimg, png)))
    for part, (old, new) in parts:
        old(), new()  # compile / load kernels
        times = {"old": [], "new": []}
        for _ in range(repeats):
            times["old"].append(_timed(old))
            times["new"].append(_timed(new))
        med = {k: statistics.median(v) for k, v in times.items()}
        out[part] = {"old_s": med["old"], "new_s": med["new"], "new_over_old": med["new"] / med["old"],
                     "repeats": repeats}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pairs", nargs="+", help="FILE.gimg IMAGE.png pairs")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--cuda", action="store_true", help="also time the code search's sweep in Triton on CUDA")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if len(args.pairs) % 2:
        p.error("give FILE.gimg IMAGE.png pairs")
    check_record_path(PROG, args.json, args.pairs)
    if args.cuda and not torch.cuda.is_available():
        p.error("--cuda: no CUDA device here")
    from gipp_codec.fit.threads import cpu_fitting_threads

    results = {}
    with cpu_fitting_threads(torch.device("cpu")):
        for gimg, png in zip(args.pairs[::2], args.pairs[1::2]):
            r = bench(Path(gimg), Path(png), args.repeats, args.cuda)
            results[gimg] = r
            for part, v in r.items():
                print(f"{Path(gimg).name} {part}: old {1e3 * v['old_s']:.2f} ms, new {1e3 * v['new_s']:.2f} ms, "
                      f"new / old = {v['new_over_old']:.2f}")
    if args.json:
        write_text_atomic(args.json, json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("part_speed", main))
