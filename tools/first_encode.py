#!/usr/bin/env python3
"""What the first ``gimg encode`` after an install costs: the same encode in a fresh process
with an empty numba cache (every kernel is JIT-compiled, as on a first run) and then again
with the cache it filled, side by side.

    python tools/first_encode.py [IMAGE] [--gaussians 1500] [--iterations 1500] [--repeats 3] [--json OUT]

Defaults to the README's sample encode. Each repeat points NUMBA_CACHE_DIR at a new empty
folder, runs the CLI encode (cold), then the same command again (warm), timing each whole
process. Prints each pair, the medians, their ratio and difference (the compile time), and
whether the two files are identical (they must be: compiling does not change the result).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tool_record import check_record_path, write_text_atomic

PROG = "first_encode"
REPO = Path(__file__).resolve().parents[1]


def timed_encode(image: Path, out: Path, gaussians: int, iterations: int, cache_dir: str) -> float:
    """Wall seconds of one ``python -m gipp_codec encode`` process with numba's cache in
    ``cache_dir``; raises if the encode fails."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "gipp_codec", "encode", str(image), str(out), "--gaussians",
                        str(gaussians), "--iterations", str(iterations), "--json"],
                       env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"first_encode: the encode failed (exit {r.returncode}): {r.stderr.strip()}")
    return seconds


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path, nargs="?", default=REPO / "examples" / "kodim23_crop256.png")
    ap.add_argument("--gaussians", type=int, default=1500)
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not args.image.is_file():
        ap.error(f"no such image: {args.image}")
    check_record_path(PROG, args.json, [args.image])
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            cache = Path(tmp) / f"cache{k}"
            cache.mkdir()
            cold_file, warm_file = Path(tmp) / f"cold{k}.gimg", Path(tmp) / f"warm{k}.gimg"
            cold = timed_encode(args.image, cold_file, args.gaussians, args.iterations, str(cache))
            warm = timed_encode(args.image, warm_file, args.gaussians, args.iterations, str(cache))
            same = cold_file.read_bytes() == warm_file.read_bytes()
            pairs.append({"cold_s": cold, "warm_s": warm, "same_file": same})
            print(f"repeat {k + 1}: empty cache {cold:.1f} s, filled cache {warm:.1f} s, "
                  f"files {'identical' if same else 'DIFFERENT'}", flush=True)
    cold = statistics.median(p["cold_s"] for p in pairs)
    warm = statistics.median(p["warm_s"] for p in pairs)
    print(f"median: first encode {cold:.1f} s, later encodes {warm:.1f} s "
          f"({cold / warm:.1f}x; compiling the kernels about {cold - warm:.0f} s)")
    if args.json:
        write_text_atomic(args.json, json.dumps({
            "image": str(args.image), "gaussians": args.gaussians, "iterations": args.iterations,
            "pairs": pairs, "median_cold_s": cold, "median_warm_s": warm}, indent=1))
    return 0 if all(p["same_file"] for p in pairs) else 1


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("first_encode", main))
