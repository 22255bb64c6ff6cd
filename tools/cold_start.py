#!/usr/bin/env python3
"""Where a cold ``gimg decode`` spends its time: one fresh interpreter per repeat, with
numba's JIT and with the prebuilt decoder (``gimg compile-decoder``) side by side.

    python tools/cold_start.py FILE.gimg [--repeats 5] [--json OUT]

Each repeat starts, for each mode, a new Python process that enters the CLI's decoder
set-up (``quick_start.decoder_process``) and times, in order: importing the decoder
(numpy, our modules, and numba in JIT mode), the first call of a kernel (a tiny
``contexts_and_sizes``: in JIT mode numba sets up its compiler and LLVM on first use,
before it loads any cached machine code), decoding FILE to pixels, and writing the PNG;
then runs the ``gimg decode`` CLI once in the same mode. JIT mode is forced by pointing
GIMG_PREBUILT_DIR at an empty folder; the prebuilt mode needs a current build (else only
JIT mode runs). Prints the median of each step, of the whole, and of the CLI.
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

PROG = "cold_start"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from gipp_codec.commands.quick_start import decoder_process
with decoder_process():
    import numpy as np
    from gipp_codec import decoder, jit
    from gipp_codec.entropy import token_kernels
    t1 = time.perf_counter()
    token_kernels.contexts_and_sizes(np.arange(4, dtype=np.int64), np.array([2], np.int64),
                                     np.empty(4, np.int64), np.empty(2, np.int64))
    t2 = time.perf_counter()
    data = open(sys.argv[1], "rb").read()
    image = decoder.decode(data)
    t3 = time.perf_counter()
from gipp_codec.imageio import save_image
save_image(sys.argv[2], image)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first_kernel": t2 - t1, "decode": t3 - t2, "png": t4 - t3, "total": t4 - t0,
                  "prebuilt": jit.prebuilt_in_use(), "numba_imported": "numba" in sys.modules}))
"""


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be 1 or more, got {args.repeats}")
    check_record_path(PROG, args.json, [args.file])
    from gipp_codec import decoder, prebuilt

    decoder.decode(args.file.read_bytes())  # a file that does not decode stops here, in one line

    usable, why = prebuilt.status()
    modes = ["jit", "prebuilt"] if usable else ["jit"]
    if not usable:
        print(f"prebuilt decoder {why}: timing JIT mode only", file=sys.stderr)
    steps = {m: [] for m in modes}
    cli = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.png")
        empty = Path(tmp) / "no_prebuilt"
        empty.mkdir()
        env = {"jit": {**os.environ, "GIMG_PREBUILT_DIR": str(empty)}, "prebuilt": dict(os.environ)}
        for _ in range(args.repeats):
            for m in modes:  # interleaved, so that load changes hit both modes alike
                run = subprocess.run([sys.executable, "-c", CHILD, str(args.file), out], capture_output=True,
                                     text=True, check=True, env=env[m])
                step = json.loads(run.stdout.strip().splitlines()[-1])
                if step["prebuilt"] != (m == "prebuilt"):
                    raise SystemExit(f"mode {m}: the child decoded with prebuilt={step['prebuilt']}")
                steps[m].append(step)
                t = time.perf_counter()
                subprocess.run(["gimg", "decode", str(args.file), out], capture_output=True, check=True, env=env[m])
                cli[m].append(time.perf_counter() - t)
    medians = {}
    for m in modes:
        medians[m] = {k: statistics.median(s[k] for s in steps[m]) for k in ("import", "first_kernel", "decode",
                                                                             "png", "total")}
        medians[m]["cli"] = statistics.median(cli[m])
    print(f"{args.file}: medians of {args.repeats} fresh processes per mode (s)")
    print("  step          " + "".join(f"{m:>10s}" for m in modes))
    for k in medians["jit"]:
        print(f"  {k:13s} " + "".join(f"{medians[m][k]:10.3f}" for m in modes))
    if args.json:
        write_text_atomic(args.json, json.dumps({"file": str(args.file), "repeats": steps, "cli": cli,
                                                 "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("cold_start", main))
