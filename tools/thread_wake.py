#!/usr/bin/env python3
"""What starting one parallel region of numba's thread pool costs after the main thread has
worked alone for a while: the price every CPU render (one region per decode) pays on top of
its work.

    python tools/thread_wake.py [--gaps 0,0.05,0.5,4] [--repeats 200] [--json OUT]

In one process, with gimg's settings (``import gipp_codec`` first: OMP_WAIT_POLICY=PASSIVE
unless the environment sets it), for each gap G (milliseconds): ``--repeats`` times, the main
thread busy-waits G ms (one thread working, as during a decode's parse or another codec's
single-threaded decode), then one region (a ``prange`` over the pool's threads, with no work
in it) is timed. Prints the median and the 90th percentile per gap, in microseconds, with
the threading layer, the thread count and the wait policy. Compare settings by running it
with other environments, one process each (``OMP_WAIT_POLICY=ACTIVE python tools/thread_wake.py``).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tool_guard import fail, guarded  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "thread_wake"


def parse_gaps(text: str) -> list[float]:
    """``--gaps``: comma-separated milliseconds, each finite and >= 0 (one-line refusal otherwise)."""
    try:
        gaps = [float(v) for v in text.split(",")]
    except ValueError:
        fail(PROG, f"--gaps {text!r}: give milliseconds separated by commas, e.g. 0,0.5,4", 2)
    if not gaps or any(not (g >= 0.0 and g < 1e4) for g in gaps):
        fail(PROG, f"--gaps {text!r}: each gap must be between 0 and 10000 ms", 2)
    return gaps


def busy_wait(ms: float) -> None:
    """Keep the main thread busy (not asleep) for ``ms`` milliseconds."""
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gaps", default="0,0.05,0.5,4", help="main-thread busy gaps in ms (default 0,0.05,0.5,4)")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    gaps = parse_gaps(args.gaps)
    if args.repeats < 1:
        fail(PROG, f"--repeats {args.repeats}: give 1 or more", 2)
    check_record_path(PROG, args.json)

    import gipp_codec  # noqa: F401  (gimg's OMP_WAIT_POLICY default, before numba starts OpenMP)
    import numba
    import numpy as np

    @numba.njit(parallel=True, cache=False)
    def region(x):  # one prange iteration per thread, nothing to do in it
        total = 0.0
        for i in numba.prange(x.shape[0]):
            total += x[i]
        return total

    threads = numba.get_num_threads()
    x = np.ones(threads)
    region(x)  # compile and start the pool
    rows = []
    for gap in gaps:
        times = []
        for _ in range(args.repeats):
            busy_wait(gap)
            t0 = time.perf_counter()
            region(x)
            times.append(time.perf_counter() - t0)
        times.sort()
        rows.append({"gap_ms": gap, "median_us": 1e6 * statistics.median(times),
                     "p90_us": 1e6 * times[min(len(times) - 1, int(0.9 * len(times)))]})
    info = {"threading_layer": numba.threading_layer(), "threads": threads,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "repeats": args.repeats, "rows": rows}
    print(f"numba {info['threading_layer']} layer, {threads} threads, OMP_WAIT_POLICY={info['omp_wait_policy']}, "
          f"{args.repeats} regions per gap")
    print("\n| main thread busy before, ms | one region, median µs | 90th percentile µs |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['gap_ms']:g} | {r['median_us']:.1f} | {r['p90_us']:.1f} |")
    if args.json:
        write_text_atomic(Path(args.json), json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(guarded(PROG, main))
