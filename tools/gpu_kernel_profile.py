#!/usr/bin/env python3
"""Which kernels and operations a training iteration spends its time in, by torch's profiler.

    python tools/gpu_kernel_profile.py IMAGE.png [--bpp 0.5] [--iterations 1000]
        [--window 50] [--device auto|cpu|cuda] [--top 15] [--cpu-search] [--json OUT]

Runs one untimed tiny encode (kernels compiled and loaded), then one encode whose training
is profiled in two windows of ``--window`` iterations each: one in the float phase (from
40 % of the float iterations) and one in QAT (from its tenth iteration). For each window it
prints the wall time per iteration and the operations and kernels that took the most time,
per iteration: on CUDA the device time of each kernel (the Triton kernels by name) and the
host's own time of each operation, so that it shows whether an iteration waits for kernels
or for launches. ``tools/encode_profile.py --phases`` gives the phases' iteration times
without a profiler; this tool says where inside an iteration they go. Without CUDA it runs
with the CPU's events only (a dry run of the tool, or a CPU profile).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from gipp_codec.encoder import encode_with_report
from gipp_codec.fit.api import resolve_device
from gipp_codec.fit.config import FitConfig, QATConfig
from gipp_codec.imageio import load_image
from tool_record import check_record_path, write_text_atomic

PROG = "gpu_kernel_profile"


def _device_us(event) -> float:
    """An averaged event's own device time in microseconds (the name differs across torch versions)."""
    for name in ("self_device_time_total", "self_cuda_time_total"):
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def summarize(prof, iterations: int, top: int) -> dict:
    """{"device": [...], "host": [...]} of the ``top`` operations by time per iteration."""
    device, host = [], []
    for e in prof.key_averages():
        dev = _device_us(e)
        if dev > 0:
            device.append({"name": e.key, "us_per_iteration": dev / iterations, "calls_per_iteration": e.count / iterations})
        if e.self_cpu_time_total > 0:
            host.append({"name": e.key, "us_per_iteration": e.self_cpu_time_total / iterations,
                         "calls_per_iteration": e.count / iterations})
    device.sort(key=lambda r: -r["us_per_iteration"])
    host.sort(key=lambda r: -r["us_per_iteration"])
    return {"device_us_per_iteration": sum(r["us_per_iteration"] for r in device),
            "host_us_per_iteration": sum(r["us_per_iteration"] for r in host),
            "device": device[:top], "host": host[:top]}


class _Windows:
    """The trainer's progress callback: profiles ``window`` iterations of each phase."""

    def __init__(self, iterations: int, window: int, activities: list):
        qat_start = int(QATConfig().start_frac * iterations)  # where the default QAT begins
        self.starts = {"float": max(1, int(0.4 * qat_start)), "qat": None}
        self.window, self.activities = window, activities
        self.active = None  # (phase, profiler, first iteration, t0)
        self.done = {}

    def __call__(self, t: int, total: int, info: dict) -> None:
        phase = info["phase"]
        if phase == "qat" and self.starts["qat"] is None:
            self.starts["qat"] = t + 10
        if self.active is not None:
            ph, prof, first, t0 = self.active
            if t - first >= self.window or ph != phase:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                wall = time.perf_counter() - t0
                prof.stop()
                n = t - first
                self.done[ph] = {"iterations": n, "wall_ms_per_iteration": 1e3 * wall / max(n, 1), "prof": prof}
                self.active = None
        if self.active is None and phase not in self.done and self.starts.get(phase) == t:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            prof = profile(activities=self.activities)
            prof.start()
            self.active = (phase, prof, t, time.perf_counter())


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cpu-search", action="store_true",
                    help="run the code search after QAT on the CPU even where CUDA serves (QATConfig.code_search_on_gpu off)")
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json, [args.image])
    config = FitConfig().with_qat(code_search_on_gpu=not args.cpu_search)
    device = resolve_device(args.device)
    image = load_image(args.image)[0]
    encode_with_report(image[:32, :48], gaussians=20, iterations=20, device=device, config=config)  # compile, load
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    windows = _Windows(args.iterations, args.window, activities)
    encode_with_report(image, bpp=args.bpp, iterations=args.iterations, device=device, progress=windows,
                       config=config)
    out = {"image": str(args.image), "bpp": args.bpp, "iterations": args.iterations, "device": str(device),
           "torch": torch.__version__, "phases": {}}
    print(f"{args.image.name}, {args.bpp} bpp, {args.iterations} iterations on {device}")
    for phase, w in windows.done.items():
        summary = summarize(w.pop("prof"), w["iterations"], args.top)
        out["phases"][phase] = {**w, **summary}
        print(f"\n{phase}: {w['iterations']} iterations profiled, {w['wall_ms_per_iteration']:.3f} ms each "
              f"(under the profiler); device {summary['device_us_per_iteration']:.0f} us, "
              f"host {summary['host_us_per_iteration']:.0f} us per iteration")
        for kind in ("device", "host"):
            for r in summary[kind]:
                print(f"  {kind:6s} {r['us_per_iteration']:9.1f} us  x{r['calls_per_iteration']:5.2f}  {r['name'][:90]}")
    if args.json:
        write_text_atomic(args.json, json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    np.seterr(all="ignore")
    sys.exit(guarded("gpu_kernel_profile", main))
