#!/usr/bin/env python3
"""What one row of a Gaussian costs the forward render kernel, against one block of columns.

    python tools/render_row_cost.py [--gaussians 4000] [--repeats 60] [--json OUT]

The forward kernel (``render.numba_kernels``) walks each Gaussian's rows and, on each row,
its column box in blocks of LANES columns (one SIMD vector each). This tool renders
synthetic 768x512 scenes whose Gaussians all have the same shape, so that every row
covers the same number of blocks (1, 5, 9 and 17, from the horizontal standard
deviation), times ``forward_prepared(uint8=True)`` (median of ``--repeats`` calls), counts
the rows and blocks the kernel visits, and fits

    time = fixed + rows * per_row + blocks * per_block

by least squares. Costs are given in thread-nanoseconds (wall time times numba's thread
count), so they do not depend on how many cores share the work. ``per_row`` is what a row
costs beyond its blocks: the row's constants, the loop set-up and exit.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "render_row_cost"

HEIGHT, WIDTH = 512, 768
SHAPES = [(0.6, 10.0), (0.6, 20.0), (6.0, 10.0), (12.0, 10.0), (24.0, 10.0)]  # (std x, std y) in pixels


def scene(n: int, std_x: float, std_y: float, rng):
    """means [n, 2], covs [n, 3], colors [n, 3] float32: n axis-aligned Gaussians of one shape."""
    means = np.stack([rng.uniform(20, WIDTH - 20, n), rng.uniform(20, HEIGHT - 20, n)], 1).astype(np.float32)
    covs = np.tile(np.array([[std_x ** 2, 0.0, std_y ** 2]], np.float32), (n, 1))
    colors = rng.uniform(0.0, 0.1, (n, 3)).astype(np.float32)
    return means, covs, colors


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gaussians", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json)
    import numba

    from gipp_codec.render import numba_kernels as nk

    threads = numba.get_num_threads()
    rng = np.random.default_rng(0)
    rows_out = []
    for std_x, std_y in SHAPES:
        pp = nk.prepare(*scene(args.gaussians, std_x, std_y, rng), HEIGHT, WIDTH)
        rows = blocks = 0
        for k in range(args.gaussians):
            _, _, nblk = nk._column_box(pp.par, k, WIDTH, 0, WIDTH)
            r = max(int(pp.rows[k, 1] - pp.rows[k, 0] + 1), 0)
            rows += r
            blocks += r * nblk
        for _ in range(5):
            nk.forward_prepared(pp, uint8=True)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            nk.forward_prepared(pp, uint8=True)
            times.append(time.perf_counter() - t0)
        ms = float(np.median(times)) * 1e3
        rows_out.append({"std_x": std_x, "std_y": std_y, "rows": rows, "blocks": blocks, "ms": ms})
        print(f"std {std_x:5.1f} x {std_y:5.1f} px: {rows:7d} rows, {blocks / max(rows, 1):5.1f} blocks per row, "
              f"{ms:6.2f} ms", flush=True)
    a = np.array([[1.0, r["rows"], r["blocks"]] for r in rows_out])
    y = np.array([r["ms"] * 1e6 * threads for r in rows_out])  # thread-nanoseconds
    (fixed, per_row, per_block), *_ = np.linalg.lstsq(a, y, rcond=None)
    print(f"fit ({threads} numba threads, LANES = {nk.LANES}): per row {per_row:.1f} ns, per block of "
          f"{nk.LANES} columns {per_block:.1f} ns, fixed {fixed / 1e6:.2f} thread-ms per render")
    if args.json:
        record = {"gaussians": args.gaussians, "repeats": args.repeats, "threads": threads, "lanes": nk.LANES,
                  "scenes": rows_out, "fit_thread_ns": {"fixed": fixed, "per_row": per_row, "per_block": per_block}}
        write_text_atomic(args.json, json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("render_row_cost", main))
