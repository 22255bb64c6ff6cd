#!/usr/bin/env python3
"""Where a cold ``gimg decode`` spends its time: one fresh interpreter per repeat.

    python tools/cold_start.py FILE.gimg [--repeats 5] [--json OUT]

Each repeat starts a new Python process that times, in order: importing the decoder
(``gipp_codec.decoder``: numpy, numba and our modules), the first call of a cached numba
kernel (a tiny ``contexts_and_sizes``: numba sets up its compiler and LLVM on first use,
before it loads any cached machine code), decoding FILE to pixels (the remaining kernels
load from numba's cache), and writing the PNG. Prints the median of each step and of the
whole, and of the ``gimg decode`` CLI run the same number of times.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from gipp_codec import decoder
from gipp_codec.entropy import token_kernels
t1 = time.perf_counter()
token_kernels.contexts_and_sizes(np.arange(4, dtype=np.int64), np.array([2], np.int64),
                                 np.empty(4, np.int64), np.empty(2, np.int64))
t2 = time.perf_counter()
data = open(sys.argv[1], "rb").read()
image = decoder.decode(data)
t3 = time.perf_counter()
from gipp_codec.imageio import save_png
save_png(sys.argv[2], image)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first_kernel": t2 - t1, "decode": t3 - t2, "png": t4 - t3, "total": t4 - t0}))
"""


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    steps, cli = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.png")
        for _ in range(args.repeats):
            run = subprocess.run([sys.executable, "-c", CHILD, str(args.file), out], capture_output=True, text=True,
                                 check=True)
            steps.append(json.loads(run.stdout.strip().splitlines()[-1]))
            t = time.perf_counter()
            subprocess.run(["gimg", "decode", str(args.file), out], capture_output=True, check=True)
            cli.append(time.perf_counter() - t)
    medians = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
    medians["cli"] = statistics.median(cli)
    print(f"{args.file}: medians of {args.repeats} fresh processes (s)")
    for k, v in medians.items():
        print(f"  {k:13s} {v:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"file": str(args.file), "repeats": steps, "cli": cli,
                                               "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
