#!/usr/bin/env python3
"""What the base layer costs: the BASE chunk of each image at the encoder's default rule.

    python tools/base_layer_bits.py IMAGE.png [IMAGE.png ...] [--bpp 0.15,0.5] [--json OUT]

For each image: the block side the default ``QATConfig`` picks for its size, the grid, the
chunk's payload bits (``format.base_layer.encode_base_payload``: Rice-coded MED residuals)
and its whole size in the file (payload + the 12 bytes of chunk overhead), and that size
as a share of a file at each ``--bpp`` rate. Prints a markdown table and the means.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.fit.config import QATConfig  # noqa: E402
from gipp_codec.format.base_layer import base_from_image, encode_base_payload  # noqa: E402
from gipp_codec.format.constants import CHUNK_OVERHEAD  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "base_layer_bits"


def base_cost(path: str, rates: list[float]) -> dict:
    """The base layer's cost for one image (see the module docstring)."""
    image, _ = load_image(path)
    h, w = image.shape[:2]
    qat = QATConfig()
    f = qat.base_factor_log2(w, h)
    base = base_from_image(image, f, qat.base_bits)
    payload_bits = 8 * len(encode_base_payload(base))
    chunk_bits = payload_bits + 8 * CHUNK_OVERHEAD
    return {"image": Path(path).name, "width": w, "height": h, "factor": 1 << f,
            "grid": list(base.samples.shape[:2]), "sample_bits": qat.base_bits, "payload_bits": payload_bits,
            "chunk_bits": chunk_bits, "share": {str(r): chunk_bits / (r * w * h) for r in rates}}


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="+")
    ap.add_argument("--bpp", default="0.15,0.25,0.5,1.0,2", help="rates for the share column (comma list)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json, args.images)
    rates = [float(r) for r in args.bpp.split(",")]
    rows = [base_cost(p, rates) for p in args.images]
    print("| image | F | grid | payload bits | chunk bits | " + " | ".join(f"share at {r} bpp" for r in rates) + " |")
    print("|---|---|---|---|---|" + "---|" * len(rates))
    for r in rows:
        shares = " | ".join(f"{100 * r['share'][str(x)]:.2f} %" for x in rates)
        print(f"| {r['image']} | {r['factor']} | {r['grid'][1]}x{r['grid'][0]} | {r['payload_bits']} | "
              f"{r['chunk_bits']} | {shares} |")
    mean = np.mean([r["chunk_bits"] for r in rows])
    shares = ", ".join(f"{100 * np.mean([r['share'][str(x)] for r in rows]):.2f} % at {x} bpp" for x in rates)
    print(f"\nmean chunk {mean:.0f} bits ({np.mean([r['payload_bits'] for r in rows]):.0f} payload); "
          f"mean share of the file: {shares}")
    if args.json:
        write_text_atomic(args.json, json.dumps({"argv": sys.argv[1:], "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("base_layer_bits", main))
