#!/usr/bin/env python3
"""Decode the .gimg files a bench_rd run kept (``--gimg-keep``) on this machine and check
that each decodes to the PSNR its record reports: files written on one machine (say the
GPU one) must read back the same anywhere.

    python tools/verify_files.py RUN.json [RUN.json ...] --files DIR --images DIR [--tolerance 0.01]

``--files``: the folder holding the kept files (matched to a record by the file name its
record gives); ``--images``: the source images (``<record image>.png``), shrunk as the run
shrank them (its ``--downscale``). Prints one line per file and a summary; exits 1 when any
file is missing, fails to decode, or is off by more than ``--tolerance`` dB, else 0.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    ap.add_argument("runs", nargs="+", type=Path, help="bench_rd JSON records")
    ap.add_argument("--files", type=Path, required=True, help="folder of the kept .gimg files")
    ap.add_argument("--images", type=Path, required=True, help="folder of the source images")
    ap.add_argument("--tolerance", type=float, default=0.01, help="dB")
    args = ap.parse_args(argv)

    from bench_rd import load_rgb
    from gipp_codec.decoder import decode
    from gipp_codec.errors import GimgError
    from gipp_codec.metrics import psnr

    checked, bad = 0, 0
    worst = 0.0
    for run in args.runs:
        data = json.loads(run.read_text())
        downscale = int(data.get("meta", {}).get("downscale", 1) or 1)
        for rec in data["records"]:
            if not rec.get("codec", "").startswith("gimg") or rec.get("error") or "file" not in rec:
                continue
            path = args.files / Path(rec["file"]).name
            label = f"{rec['image']} {rec['point']}"
            checked += 1
            try:
                decoded = decode(path.read_bytes())  # [H, W, 3] uint8
            except (OSError, GimgError) as exc:
                print(f"{label}: cannot decode {path}: {exc}")
                bad += 1
                continue
            image = load_rgb(args.images / f"{rec['image']}.png", downscale)  # [H, W, 3] uint8, as the run saw it
            here = psnr(np.asarray(decoded), image)
            diff = here - rec["psnr"]
            worst = max(worst, abs(diff))
            ok = abs(diff) <= args.tolerance and len(path.read_bytes()) == rec["bytes"]
            bad += not ok
            print(f"{label}: {rec['bytes']} bytes, PSNR here {here:.4f} dB, recorded {rec['psnr']:.4f} "
                  f"({diff:+.4f}){'' if ok else '  MISMATCH'}")
    print(f"{checked} files decoded here, {bad} off; largest PSNR difference {worst:.4f} dB "
          f"(tolerance {args.tolerance} dB)")
    return 1 if bad or not checked else 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("verify_files", main))
