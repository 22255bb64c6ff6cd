#!/usr/bin/env python3
"""Registers and stack of the Triton code-search kernel compiled for sm_90, without a GPU.

    python tools/triton_resources.py [--pixels 64,128] [--warps 4,8] [--json OUT]

Compiles ``code_search_triton._sweep_phase_kernel`` ahead of time for an H100/H200 (sm_90)
with each PIXELS (the block's pixels per step) and each num_warps, and prints the resource
usage that the cuobjdump bundled with triton reads from the cubin: registers a thread,
stack frame (a spill needs one), shared and local memory. A kernel whose block does not
fit the 255 registers a thread spills to the stack, which costs memory traffic on every
step; this shows it on any machine, before a GPU is lent.
"""

import argparse
import os
import subprocess
import sys
import tempfile

from tool_record import check_record_path, write_record


def resource_usage(pixels: int, warps: int, correlation: bool = False) -> str:
    """cuobjdump's resource-usage line for the kernel at ``pixels`` and ``warps`` (with
    ``correlation``, its form for b's codes as payload coding 3's correlation)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from gipp_codec.fit import code_search_triton as cst

    consts = {**cst.AOT_TABLES, "SLOTS": cst.SLOTS, "PIXELS": pixels, "CORR": bool(correlation)}
    src = ASTSource(fn=cst._sweep_phase_kernel, signature={**cst.AOT_SIGNATURE, **{k: "constexpr" for k in consts}},
                    constexprs=consts)
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                              options={"num_warps": warps, "enable_fp_fusion": False})
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        out = subprocess.run([tool, "-res-usage", f.name], capture_output=True, text=True, check=True)
    return next(line.strip() for line in out.stdout.splitlines() if "REG:" in line)


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pixels", default="64,128", help="comma-separated PIXELS values")
    ap.add_argument("--warps", default="4,8", help="comma-separated num_warps values")
    ap.add_argument("--correlation", action="store_true", help="the kernel's form for b coded as the correlation")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    check_record_path("triton_resources", args.json, [])  # before any work
    try:
        pixels = [int(v) for v in args.pixels.split(",")]
        warps = [int(v) for v in args.warps.split(",")]
    except ValueError:
        raise SystemExit("--pixels and --warps take comma-separated integers") from None
    try:
        import triton  # noqa: F401
    except ImportError:
        raise SystemExit("triton is not installed") from None
    results = []
    for p in pixels:
        for w in warps:
            try:
                usage = resource_usage(p, w, args.correlation)
            except Exception as exc:  # noqa: BLE001 (a tool: one line and a non-zero exit)
                raise SystemExit(f"PIXELS {p}, num_warps {w}: {exc}") from None
            print(f"PIXELS {p:4d}, num_warps {w}: {usage}")
            results.append({"pixels": p, "num_warps": w, "correlation": args.correlation, "usage": usage})
    if args.json:
        write_record(args.json, results)
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("triton_resources", main))
