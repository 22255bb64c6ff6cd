#!/usr/bin/env python3
"""Re-code the payload of .gimg files with another payload coding, losslessly, and report
what it changes in bits per Gaussian.

    python tools/recode.py FILE.gimg [FILE.gimg ...] [--coding 1/2/3] [--binary32-grid] [--out DIR] [--json OUT]

Each file is parsed, its quantized integers are coded again with ``--coding`` (1: version
1.0's coding; 2: the derived contexts of version 1.1; 3: coding 2 for a b that is a
correlation, version 1.4), the result is parsed back and must
hold the same integers, scales and offsets (the tool stops otherwise). The new file is
written to DIR/<same name> with ``--out``; ICC and EXIF chunks are kept. Prints, per file
and as a mean, the bits per Gaussian before and after and each stream's change, whether
the new file is byte for byte the input (re-coding with the file's own coding must give
the file back when the encoder's search is unchanged), and the time the coding took. The
file keeps its render convention (spec §7): a file of convention 2 needs a 1.2 decoder
whatever its payload coding; ``--binary32-grid`` writes a grid of attribute mode 2 (1.5) in
mode 0 for older decoders.

A file of payload coding 3 (b as a correlation, what ``encode`` writes by default for colour
images from 0.5 bpp) is re-coded with coding 3, the only one that can say that b is a
correlation; ``--coding 1`` or ``2`` refuses it (naming the file), and ``--coding 3`` refuses
a file whose b is not a correlation. Without ``--coding`` each file keeps its kind: coding 2,
or 3 for a correlation. A float32 file (no entropy-coded payload) is refused.

Bad input never leaves a partial result: every file is read, parsed and re-coded in memory
before anything is written, and one that is missing, a folder, not a .gimg file, damaged, or
refused by ``--coding`` (above) stops the run with one line naming it (exit status 1) and
nothing written. An output
that would replace an input (``--out`` the input's own folder, ``--json`` naming an input), two
inputs of the same name with ``--out``, an ``--out`` that is a file and a ``--json`` that names a
folder, lies in a missing one or names an existing file that is not JSON are refused before any
work (exit status 2).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from gipp_codec.format import parse_gimg, write_gimg
from gipp_codec.format.container import ATTRIBUTES
from gipp_codec.format.model import QuantizedGaussians
from gipp_codec.errors import GimgError
from gipp_codec.imageio import atomic_write_bytes, check_output_path, read_input_bytes
from tool_guard import check_out_folder, fail, guarded, refuse_clobbering
from tool_record import holds_json_or_nothing

PROG = "recode"


def _refusal(name: str | None, text: str) -> SystemExit:
    """The SystemExit (status 1) that refuses a file: ``text``, with the tool's and the file's
    name before it when ``name`` is given."""
    return SystemExit(text if name is None else f"{PROG}: error: {name}: {text}")


def recode(data: bytes, coding: int | None, binary32_grid: bool = False, name: str | None = None) -> tuple[bytes, dict]:
    """(the file re-coded with payload coding ``coding`` (None: 2, or 3 for a file whose b is
    a correlation), bit figures before and after).
    The file keeps its attribute mode (a binary16 grid, mode 2 of format 1.5, stays one), except
    that ``binary32_grid`` writes mode 0, the same grid, for decoders older than 1.5. A float32
    file, or a coding that cannot carry the file's b, is refused with SystemExit (its message names ``name``,
    the file's name, when given); a file that does not parse raises the parser's GimgError."""
    before = parse_gimg(data)
    g = before.gaussians
    if not isinstance(g, QuantizedGaussians):
        raise _refusal(name, "a float32 file has no entropy-coded payload to re-code")
    if coding is None:  # coding 3 codes as 2 does, and only it can say that b is a correlation
        coding = 3 if g.correlation else 2
    if g.correlation and coding != 3:
        raise _refusal(name, f"a file of payload coding 3 (b as a correlation) cannot be re-coded with coding "
                             f"{coding}; it can only be kept at coding 3")
    if coding == 3 and not g.correlation:
        raise _refusal(name, "coding 3 is for files whose b is a correlation; this one's is not")
    t0 = time.perf_counter()
    out = write_gimg(g, before.metadata, payload_coding=coding,
                     render_convention=int(before.header["render_convention"]), base=before.base,  # rendered as before
                     compact=int(before.header["attribute_mode"]) == 2 and not binary32_grid)
    seconds = time.perf_counter() - t0
    after = parse_gimg(out)
    same = (np.array_equal(after.gaussians.q, g.q) and np.array_equal(after.gaussians.scales, g.scales)
            and np.array_equal(after.gaussians.offsets, g.offsets))
    if not same:
        raise _refusal(name, "re-coded file does not hold the same Gaussians")
    n = max(1, g.count)
    row = {"gaussians": g.count, "coding_before": int(before.header["payload_coding"]), "coding_after": coding,
           "bits_per_gaussian_before": before.bits["total_bits"] / n, "bits_per_gaussian_after": after.bits["total_bits"] / n,
           "streams_before": {a: before.bits["attributes"][a] / n for a in ATTRIBUTES},
           "streams_after": {a: after.bits["attributes"][a] / n for a in ATTRIBUTES},
           "contexts_after": {a: s.get("context_source") for a, s in after.bits.get("streams", {}).items()},
           "identical": out == bytes(data), "seconds": seconds}
    return out, row


def _check_json(path: str, out: Path | None) -> None:
    """Refuse (exit 2) a ``--json`` that names a folder, a device or a read-only file, or lies in
    a folder that does not exist (unless that folder is ``--out``, which will be created)."""
    if out is not None and not out.exists() and Path(path).parent.resolve() == out.resolve():
        if path.endswith(("/", os.sep)):
            fail(PROG, f"--json {path}: ends in a separator; name a file")
        return
    try:
        check_output_path(path)
    except GimgError as exc:
        fail(PROG, f"--json {exc}")
    if not holds_json_or_nothing(Path(path)):
        fail(PROG, f"--json {path}: holds something else than a tool's JSON; not overwritten")


def _read(path: Path) -> bytes:
    """The bytes of an input file (a GimgError naming it when it is missing, a folder, a device...)."""
    return read_input_bytes(f"./{path}" if os.fspath(path) == "-" else path, "a .gimg file")


def main(argv=None) -> int:
    """Entry point: ``run`` with a GimgError or OSError made one line and exit status 1."""
    return guarded(PROG, run, argv)


def run(argv=None) -> int:
    """Re-code the files; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--coding", type=int, default=None, choices=(1, 2, 3),
                    help="payload coding to re-code with [default: 2, or 3 for a file whose b is a correlation, "
                         "which only coding 3 can carry]")
    ap.add_argument("--out", default=None, help="write the re-coded files to this folder")
    ap.add_argument("--binary32-grid", action="store_true",
                    help="write the grid as binary32 (attribute mode 0) even where binary16 holds it, for "
                         "decoders older than 1.5")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.out is not None:
        if args.out == "":
            fail(PROG, "--out: an empty folder name")
        args.out = Path(args.out)
        check_out_folder(PROG, args.out, "--out")
        seen = {}
        for path in args.files:
            if path.name in seen:
                fail(PROG, f"{seen[path.name]} and {path} would both be written to {args.out / path.name}")
            seen[path.name] = path
    if args.json:
        _check_json(args.json, args.out)
    outputs = [args.out / path.name for path in args.files] if args.out is not None else []
    refuse_clobbering(PROG, outputs + [args.json], args.files)
    rows, recoded = [], []
    for path in args.files:  # everything in memory first: a bad file stops the run with nothing written
        data = _read(path)
        try:
            data, row = recode(data, args.coding, args.binary32_grid, name=str(path))
        except GimgError as exc:
            raise GimgError(f"{path}: {exc}") from None
        row["file"] = str(path)
        rows.append(row)
        recoded.append(data)
        deltas = ", ".join(f"{a} {row['streams_after'][a] - row['streams_before'][a]:+.3f}" for a in ATTRIBUTES)
        print(f"{path.name}: N={row['gaussians']}, coding {row['coding_before']} -> {row['coding_after']}: "
              f"{row['bits_per_gaussian_before']:.3f} -> {row['bits_per_gaussian_after']:.3f} bits/Gaussian ({deltas}); "
              f"{'byte-identical' if row['identical'] else 'differs'}, coded in {row['seconds']:.3f} s",
              flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for path, data in zip(args.files, recoded):
            atomic_write_bytes(args.out / path.name, data)
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
        atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
