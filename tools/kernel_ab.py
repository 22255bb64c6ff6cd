#!/usr/bin/env python3
"""A/B the numba render kernels of two git revisions, side by side in one process.

    python tools/kernel_ab.py FILE.gimg [FILE.gimg ...] --a REV --b REV [--repeats 60] [--json OUT]

Loads ``gipp_codec/render/numba_kernels.py`` as it is at each revision (``git show``) into
its own module (JIT-compiled in a private numba cache), takes the Gaussians of each file,
and times, interleaved round by round so that both see the same machine load:

- forward: ``prepare`` + ``forward_prepared(uint8=True)``, the decoder's render;
- backward: ``backward_prepared`` with a fixed random image gradient, the training step's
  second half;
- training forward: ``forward_residual_prepared(..., image=False)`` against a fixed random
  target, the training step's first half (which writes the loss gradient, and since
  f7086d8 also sums the squared error; revisions from f936cd4 on have it).

Prints the medians (ms) and the ratio b / a per file, and checks that the two revisions
agree: the largest difference of the 8-bit renders (levels) and of the gradients (relative
to the largest gradient).
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tool_record import check_record_path, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
KERNELS = "gipp_codec/render/numba_kernels.py"
PROG = "kernel_ab"


def load_revision(rev: str, tmp: Path):
    """The render kernel module of revision rev, imported from a temporary copy."""
    source = subprocess.run(["git", "show", f"{rev}:{KERNELS}"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    name = f"numba_kernels_{rev.replace('/', '_').replace('~', '_').replace('^', '_')}"
    path = tmp / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--a", required=True, help="baseline revision")
    ap.add_argument("--b", default="HEAD", help="revision to compare (default HEAD)")
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json, args.files)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NUMBA_CACHE_DIR"] = str(Path(tmp) / "numba_cache")  # before numba loads
        import numpy as np

        from gipp_codec.decoder import gaussians_as_floats
        from gipp_codec.format.container import parse_gimg

        mods = {"a": load_revision(args.a, Path(tmp)), "b": load_revision(args.b, Path(tmp))}
        rows = []
        for f in args.files:
            parsed = parse_gimg(f.read_bytes())
            h, w = int(parsed.header["height"]), int(parsed.header["width"])
            means, covs, colors = gaussians_as_floats(parsed)
            grad = np.random.default_rng(0).standard_normal((h, w, 3)).astype(np.float32)
            target = np.random.default_rng(1).random((3, h, w)).astype(np.float32)  # planar
            scale = 2.0 / (3 * h * w)
            out, grads = {}, {}
            for k, m in mods.items():  # compile and warm up
                out[k] = m.forward_prepared(m.prepare(means, covs, colors, h, w), uint8=True)
                grads[k] = m.backward_prepared(m.prepare(means, covs, colors, h, w), grad)
            for m in mods.values():
                m.forward_residual_prepared(m.prepare(means, covs, colors, h, w), target, scale, image=False)
            times = {(k, s): [] for k in mods for s in ("forward", "backward", "residual")}
            prepared = {k: m.prepare(means, covs, colors, h, w) for k, m in mods.items()}
            for _ in range(args.repeats):
                for k, m in mods.items():
                    t = time.perf_counter()
                    m.forward_prepared(m.prepare(means, covs, colors, h, w), uint8=True)
                    times[(k, "forward")].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    m.backward_prepared(prepared[k], grad)
                    times[(k, "backward")].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    m.forward_residual_prepared(prepared[k], target, scale, image=False)
                    times[(k, "residual")].append(time.perf_counter() - t)
            med = {f"{s}_{k}_ms": 1000 * statistics.median(v) for (k, s), v in times.items()}
            scale = max(float(np.abs(g).max()) for g in grads["a"]) or 1.0
            row = {
                "file": str(f), "gaussians": int(means.shape[0]), **med,
                "forward_ratio": med["forward_b_ms"] / med["forward_a_ms"],
                "backward_ratio": med["backward_b_ms"] / med["backward_a_ms"],
                "residual_ratio": med["residual_b_ms"] / med["residual_a_ms"],
                "render_max_level_diff": int(np.abs(out["a"].astype(np.int16) - out["b"]).max()),
                "render_values_differing": int(np.count_nonzero(out["a"] != out["b"])),
                "grad_max_rel_diff": max(float(np.abs(ga - gb).max()) for ga, gb in zip(grads["a"], grads["b"]))
                / scale,
            }
            rows.append(row)
    print(f"a = {args.a}, b = {args.b}; medians of {args.repeats} interleaved rounds")
    print("| file | N | forward a / b ms | b / a | backward a / b ms | b / a | render diff (max, values) "
          "| gradient max rel. diff | training forward a / b ms | b / a |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['file']).name} | {r['gaussians']} | {r['forward_a_ms']:.2f} / {r['forward_b_ms']:.2f} "
              f"| {r['forward_ratio']:.2f} | {r['backward_a_ms']:.2f} / {r['backward_b_ms']:.2f} "
              f"| {r['backward_ratio']:.2f} | {r['render_max_level_diff']}, {r['render_values_differing']} "
              f"| {r['grad_max_rel_diff']:.1e} | {r['residual_a_ms']:.2f} / {r['residual_b_ms']:.2f} "
              f"| {r['residual_ratio']:.2f} |")
    if len(rows) > 1:
        print(f"| median | | | {statistics.median(r['forward_ratio'] for r in rows):.2f} | "
              f"| {statistics.median(r['backward_ratio'] for r in rows):.2f} | | | "
              f"| {statistics.median(r['residual_ratio'] for r in rows):.2f} |")
    if args.json:
        write_text_atomic(args.json, json.dumps({"a": args.a, "b": args.b, "repeats": args.repeats, "rows": rows},
                                                indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("kernel_ab", main))
