#!/usr/bin/env python3
"""Re-code the payload of .gimg files with another payload coding, losslessly, and report
what it changes in bits per Gaussian.

    python tools/recode.py FILE.gimg [FILE.gimg ...] [--coding 2] [--out DIR] [--json OUT]

Each file is parsed, its quantized integers are coded again with ``--coding`` (1: version
1.0's coding; 2: the derived contexts of version 1.1), the result is parsed back and must
hold the same integers, scales and offsets (the tool stops otherwise). The new file is
written to DIR/<same name> with ``--out``; ICC and EXIF chunks are kept. Prints, per file
and as a mean, the bits per Gaussian before and after and each stream's change, whether
the new file is byte for byte the input (re-coding with the file's own coding must give
the file back when the encoder's search is unchanged), and the time the coding took. The
file keeps its render convention (spec §7): a file of convention 2 needs a 1.2 decoder
whatever its payload coding; ``--binary32-grid`` writes a grid of attribute mode 2 (1.5) in
mode 0 for older decoders.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from gipp_codec.format import parse_gimg, write_gimg
from gipp_codec.format.container import ATTRIBUTES
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.imageio import atomic_write_bytes


def recode(data: bytes, coding: int, binary32_grid: bool = False) -> tuple[bytes, dict]:
    """(the file re-coded with payload coding ``coding``, bit figures before and after).
    The file keeps its attribute mode (a binary16 grid, mode 2 of format 1.5, stays one), except
    that ``binary32_grid`` writes mode 0, the same grid, for decoders older than 1.5."""
    before = parse_gimg(data)
    g = before.gaussians
    if not isinstance(g, QuantizedGaussians):
        raise SystemExit("a float32 file has no entropy-coded payload to re-code")
    if g.correlation:  # payload coding 3 codes as 2 and only it can say that b is a correlation
        raise SystemExit("a file of payload coding 3 (b as a correlation) can only be coded with coding 3")
    t0 = time.perf_counter()
    out = write_gimg(g, before.metadata, payload_coding=coding,
                     render_convention=int(before.header["render_convention"]), base=before.base,  # rendered as before
                     compact=int(before.header["attribute_mode"]) == 2 and not binary32_grid)
    seconds = time.perf_counter() - t0
    after = parse_gimg(out)
    same = (np.array_equal(after.gaussians.q, g.q) and np.array_equal(after.gaussians.scales, g.scales)
            and np.array_equal(after.gaussians.offsets, g.offsets))
    if not same:
        raise SystemExit("re-coded file does not hold the same Gaussians")
    n = max(1, g.count)
    row = {"gaussians": g.count, "coding_before": int(before.header["payload_coding"]), "coding_after": coding,
           "bits_per_gaussian_before": before.bits["total_bits"] / n, "bits_per_gaussian_after": after.bits["total_bits"] / n,
           "streams_before": {a: before.bits["attributes"][a] / n for a in ATTRIBUTES},
           "streams_after": {a: after.bits["attributes"][a] / n for a in ATTRIBUTES},
           "contexts_after": {a: s.get("context_source") for a, s in after.bits.get("streams", {}).items()},
           "identical": out == bytes(data), "seconds": seconds}
    return out, row


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--coding", type=int, default=2, choices=(1, 2), help="payload coding to re-code with (default 2)")
    ap.add_argument("--out", type=Path, default=None, help="write the re-coded files to this folder")
    ap.add_argument("--binary32-grid", action="store_true",
                    help="write the grid as binary32 (attribute mode 0) even where binary16 holds it, for "
                         "decoders older than 1.5")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in args.files:
        data, row = recode(path.read_bytes(), args.coding, args.binary32_grid)
        row["file"] = str(path)
        rows.append(row)
        if args.out is not None:
            atomic_write_bytes(args.out / path.name, data)
        deltas = ", ".join(f"{a} {row['streams_after'][a] - row['streams_before'][a]:+.3f}" for a in ATTRIBUTES)
        print(f"{path.name}: N={row['gaussians']}, coding {row['coding_before']} -> {args.coding}: "
              f"{row['bits_per_gaussian_before']:.3f} -> {row['bits_per_gaussian_after']:.3f} bits/Gaussian ({deltas}); "
              f"{'byte-identical' if row['identical'] else 'differs'}, coded in {row['seconds']:.3f} s",
              flush=True)
    if len(rows) > 1:
        before = np.mean([r["bits_per_gaussian_before"] for r in rows])
        after = np.mean([r["bits_per_gaussian_after"] for r in rows])
        per = {a: np.mean([r["streams_after"][a] - r["streams_before"][a] for r in rows]) for a in ATTRIBUTES}
        print(f"mean over {len(rows)} files: {before:.3f} -> {after:.3f} bits/Gaussian ({after - before:+.3f}, "
              f"{100 * (after / before - 1):+.2f} %); per stream: " + ", ".join(f"{a} {v:+.3f}" for a, v in per.items()))
        times = [r["seconds"] for r in rows]
        print(f"{sum(r['identical'] for r in rows)} of {len(rows)} byte-identical to the input; coding time "
              f"median {np.median(times):.3f} s, total {sum(times):.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
