"""Micro-benchmark of the renderer backends at fitted Gaussian sizes.

Scene (768x512 by default): N Gaussians with uniformly random centres; the 3-sigma
bounding radius 3*sqrt(lambda_max) is log-normal with mean 19 px (the mean radius of
fitted Gaussians late in a run, DESIGN.md section 5) and log-std 0.5 (so ~5-95% of
radii lie in 9-38 px); the minor/major sigma ratio is log-normal around 0.5 (log-std
0.4, clipped to [0.05, 1]); the rotation is uniform; colours ~ N(0, 1).

Measured per backend: one forward (no grad) and one forward+backward through torch
autograd (``loss = (img * g).sum(); loss.backward()``), median and p10/p90 over
``--repeats`` after warm-up; for ``cpu`` also the raw numba kernels (numpy in, numpy
out). ``reference`` is dense O(N*H*W): it is timed only with ``--reference`` and a
single repeat (it takes seconds per call at these sizes).

Each cell also gives "cpu": the median process CPU time per call (all threads), a
load-robust proxy when other processes share the cores (it includes idle-spinning
OpenMP threads: compare OMP_WAIT_POLICY=PASSIVE, --torch-threads 1).

    python tools/bench_render.py --sizes 5000,10000 --repeats 20 --json out.json
    OMP_WAIT_POLICY=PASSIVE python tools/bench_render.py --sizes 10000 --torch-threads 1
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

import gipp_codec  # noqa: F401,E402  (sets OMP_WAIT_POLICY=PASSIVE before torch loads, as in gimg)
import torch  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "bench_render"


def fitted_scene(n, height, width, seed=0, mean_radius=19.0, log_std=0.5):
    rng = np.random.default_rng(seed)
    means = np.stack([rng.uniform(0, width, n), rng.uniform(0, height, n)], 1)
    radius = rng.lognormal(math.log(mean_radius) - 0.5 * log_std**2, log_std, n)
    ratio = np.clip(rng.lognormal(math.log(0.5), 0.4, n), 0.05, 1.0)
    s1 = radius / 3.0
    s2 = s1 * ratio
    th = rng.uniform(0.0, math.pi, n)
    co, si = np.cos(th), np.sin(th)
    a = co**2 * s1**2 + si**2 * s2**2
    c = si**2 * s1**2 + co**2 * s2**2
    b = co * si * (s1**2 - s2**2)
    covs = np.stack([a, b, c], 1)
    colors = rng.normal(0.0, 1.0, (n, 3))
    f32 = lambda x: np.ascontiguousarray(x, np.float32)  # noqa: E731
    return f32(means), f32(covs), f32(colors)


def timeit(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    cs = []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
        cs.append((time.process_time() - c0) * 1e3)
    ts = np.asarray(ts)
    return {
        "median_ms": float(np.median(ts)),
        "cpu_median_ms": float(np.median(cs)),
        "p10_ms": float(np.percentile(ts, 10)),
        "p90_ms": float(np.percentile(ts, 90)),
        "repeats": int(repeats),
    }


def bench_backend(render, means, covs, colors, height, width, repeats, warmup):
    m = torch.from_numpy(means).requires_grad_(True)
    c = torch.from_numpy(covs).requires_grad_(True)
    col = torch.from_numpy(colors).requires_grad_(True)
    g = torch.randn(height, width, 3, generator=torch.Generator().manual_seed(1))

    def fwd():
        with torch.no_grad():
            render(m, c, col, height, width)

    def fwd_bwd():
        m.grad = c.grad = col.grad = None
        img = render(m, c, col, height, width)
        loss = (img * g).sum()
        loss.backward()

    return {"forward": timeit(fwd, repeats, warmup), "fwd_bwd": timeit(fwd_bwd, repeats, warmup)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5000,10000", help="comma-separated Gaussian counts")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--reference", action="store_true", help="also time the dense torch reference (slow: 1 repeat)")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch.set_num_threads before timing (default 1, as gimg's CPU fitting uses)")
    ap.add_argument("--numba-threads", type=int, default=None, help="numba.set_num_threads before timing")
    ap.add_argument("--json", default=None, help="write the results to this path")
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json, [])

    import numba

    from gipp_codec.render import numba_kernels as nk
    from gipp_codec.render.convention import bounding_radius
    from gipp_codec.render.cpu import render_cpu
    from gipp_codec.render.reference import render_reference

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    if args.numba_threads:
        numba.set_num_threads(args.numba_threads)

    t0 = time.perf_counter()
    tiny = fitted_scene(4, 8, 8)
    nk.forward(*tiny, 8, 8)
    nk.backward(*tiny, 8, 8, np.ones((8, 8, 3), np.float32))
    load_s = time.perf_counter() - t0
    layer = numba.threading_layer()

    h, w = args.height, args.width
    info = {
        "image": f"{w}x{h}",
        "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
        "numba_threading_layer": layer,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "kernel_load_or_compile_s": round(load_s, 3),
        "loadavg_before": os.getloadavg(),
        "results": [],
    }
    rows = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        means, covs, colors = fitted_scene(n, h, w)
        det = covs[:, 0].astype(np.float64) * covs[:, 2] - covs[:, 1].astype(np.float64) ** 2
        scene = {
            "n": n,
            "mean_radius_px": float(bounding_radius(covs.astype(np.float64)).mean()),
            "mean_ellipse_area_px": float((9 * math.pi * np.sqrt(det)).mean()),
        }
        g = np.random.default_rng(1).normal(size=(h, w, 3)).astype(np.float32)
        raw_f = timeit(lambda: nk.forward(means, covs, colors, h, w), args.repeats, args.warmup)
        raw_b = timeit(lambda: nk.backward(means, covs, colors, h, w, g), args.repeats, args.warmup)
        res = bench_backend(render_cpu, means, covs, colors, h, w, args.repeats, args.warmup)
        entry = dict(scene, backend="cpu", raw_forward=raw_f, raw_backward=raw_b, **res)
        info["results"].append(entry)
        rows.append(entry)
        if args.reference:
            ref = bench_backend(render_reference, means, covs, colors, h, w, 1, 0)
            entry_r = dict(scene, backend="reference", **ref)
            info["results"].append(entry_r)
            rows.append(entry_r)
    info["loadavg_after"] = os.getloadavg()

    fmt = lambda d: f"{d['median_ms']:.2f} ({d['p10_ms']:.2f}-{d['p90_ms']:.2f}) cpu {d['cpu_median_ms']:.1f}"  # noqa: E731
    print(
        f"image {info['image']}, numba threads {info['numba_threads']} ({info['numba_threading_layer']}), torch threads "
        f"{info['torch_threads']}, kernel load/compile {info['kernel_load_or_compile_s']} s, "
        f"load avg before {tuple(round(x, 2) for x in info['loadavg_before'])}"
    )
    print()
    print("wall ms median (p10-p90), then 'cpu': median process CPU time per call (all threads, ms)")
    print("| backend | N | mean 3σ radius px | mean ellipse px | forward ms median (p10-p90) "
          "| fwd+bwd ms median (p10-p90) | raw numba fwd ms | raw numba bwd ms |")
    print("|---|---|---|---|---|---|---|---|")
    for e in rows:
        raw_f = fmt(e["raw_forward"]) if "raw_forward" in e else "-"
        raw_b = fmt(e["raw_backward"]) if "raw_backward" in e else "-"
        print(f"| {e['backend']} | {e['n']} | {e['mean_radius_px']:.1f} | {e['mean_ellipse_area_px']:.0f} "
              f"| {fmt(e['forward'])} | {fmt(e['fwd_bwd'])} | {raw_f} | {raw_b} |")
    if not args.reference:
        print("\nreference (dense torch, O(N*H*W)) not timed: seconds per call at this size; pass --reference.")
    if args.json:
        write_text_atomic(args.json, json.dumps(info, indent=2))


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("bench_render", main))
