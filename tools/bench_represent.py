#!/usr/bin/env python
"""Representation benchmark: fit images with N Gaussians and report quality and speed.

    python tools/bench_represent.py datasets/kodak --gaussians 5000,10000 --iterations 5000 \
        --out-json bench.json --out-md bench.md [--paper] [--limit 3] [--downscale 2] [--history]

Per image and N: PSNR (of the 8-bit render), MS-SSIM, iterations, fit seconds, ms per
iteration, forward-only render time (median of 5 renders of the fitted state, no autograd),
best iteration, and peak memory. Peak memory is the process's peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, KiB on Linux, so it is the peak SO FAR in
this process, non-decreasing over the run) plus ``torch.cuda.max_memory_allocated`` for
the fit when it runs on CUDA. With ``--history`` the PSNR-vs-iteration curve of every fit is
stored, and the JSON gets ``iterations_to_target``: per N, the first evaluated iteration at
which the MEAN PSNR over images (clamped float render) reaches ``--target`` dB.

Output is flushed after each line and the JSON is rewritten after every image, so a long
background run can be followed and interrupted without losing finished results.
"""

import argparse
import json
import math
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.fit.api import fit_image, resolve_device  # noqa: E402
from gipp_codec.fit.config import FitConfig  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from gipp_codec.render import get_renderer  # noqa: E402

PROG = "bench_represent"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}


def log(msg: str) -> None:
    print(msg, flush=True)


def list_images(inputs: list[str], limit: int | None) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(p)
    return files[:limit] if limit else files


def downscale(img: np.ndarray, factor: int) -> np.ndarray:
    """Box-filter downscale by an integer factor (crops to a multiple of it)."""
    if factor <= 1:
        return img
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    x = img[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))
    return np.floor(x + 0.5).astype(np.uint8)


def forward_ms(res, height: int, width: int, device, repeats: int = 5) -> float:
    render = get_renderer("auto", device)
    m, c, col = (torch.from_numpy(x).to(device) for x in (res.means, res.covs, res.colors))
    times = []
    with torch.no_grad():
        render(m, c, col, height, width)  # warm-up (JIT / caches)
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            render(m, c, col, height, width)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times)


def progress_printer(name: str, every: int):
    """A fit progress callback printing one stderr line every ``every`` iterations (None if 0)."""
    if every <= 0:
        return None
    t0 = time.perf_counter()

    def report(it, total, info):
        if it % every == 0 or it == total:
            psnr = "n/a" if info["psnr"] is None else f"{info['psnr']:.2f} dB"
            print(f"  {name}: {it}/{total} ({info['phase']}), last PSNR {psnr}, N={info['gaussians']}, "
                  f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return report


def iterations_to_target(rows: list[dict], target: float) -> dict:
    """Per N, first iteration where the mean over images of the history PSNR reaches target."""
    out = {}
    for n in sorted({r["n"] for r in rows}):
        hists = [dict((it, p) for it, p, _ in r["history"]) for r in rows if r["n"] == n and r.get("history")]
        if not hists:
            continue
        common = sorted(set.intersection(*(set(h) for h in hists)))
        hit = next((it for it in common if statistics.fmean(h[it] for h in hists) >= target), None)
        out[str(n)] = hit
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"Representation benchmark: config={meta['config']}, iterations={meta['iterations']}, "
        f"device={meta['device']}, downscale={meta['downscale']}, seed={meta['seed']}",
        "",
        "| image | N | PSNR (dB) | MS-SSIM | iterations | fit (s) | ms/iter | forward (ms) | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = "n/a" if r["ms_ssim"] is None else f"{r['ms_ssim']:.4f}"
        lines.append(f"| {r['image']} | {r['n']} | {r['psnr']:.2f} | {ms} | {r['iterations']} | "
                     f"{r['seconds']:.1f} | {r['ms_per_iteration']:.1f} | {r['forward_ms']:.2f} | "
                     f"{r['peak_rss_mib']:.0f} |")
    for n in sorted({r["n"] for r in rows}):
        sel = [r for r in rows if r["n"] == n]
        mss = [r["ms_ssim"] for r in sel if r["ms_ssim"] is not None]
        ms_txt = f"{statistics.fmean(mss):.4f}" if mss else "n/a"
        lines.append(
            f"| **mean ({len(sel)} images)** | {n} | {statistics.fmean(r['psnr'] for r in sel):.2f} | {ms_txt} | "
            f"{sel[0]['iterations']} | {statistics.fmean(r['seconds'] for r in sel):.1f} | "
            f"{statistics.fmean(r['ms_per_iteration'] for r in sel):.1f} | "
            f"{statistics.fmean(r['forward_ms'] for r in sel):.2f} | {max(r['peak_rss_mib'] for r in sel):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="image files and/or folders")
    ap.add_argument("--gaussians", default="5000", help="comma-separated list of N")
    ap.add_argument("--iterations", type=int, default=None, help="default: the config's")
    ap.add_argument("--paper", action="store_true", help="FitConfig.paper() instead of FitConfig()")
    ap.add_argument("--limit", type=int, default=None, help="first L images only")
    ap.add_argument("--downscale", type=int, default=1, help="integer box downscale (N is NOT scaled)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--history", action="store_true", help="store PSNR-vs-iteration curves")
    ap.add_argument("--target", type=float, default=31.0, help="dB for iterations_to_target")
    ap.add_argument("--out-json", default="bench_represent.json")
    ap.add_argument("--out-md", default=None)
    ap.add_argument("--progress-every", type=int, default=0,
                    help="print iteration, PSNR and N to stderr every K iterations (long runs)")
    args = ap.parse_args(argv)
    from tool_guard import refuse_clobbering
    from tool_record import check_record_path, write_text_atomic

    inputs = list_images(args.inputs, None)
    check_record_path(PROG, args.out_json, inputs, option="--out-json")
    check_record_path(PROG, args.out_md, inputs, option="--out-md", holds_json=False)
    refuse_clobbering(PROG, [args.out_json, args.out_md], inputs)

    ns = [int(x) for x in args.gaussians.split(",") if x.strip()]
    cfg = FitConfig.paper() if args.paper else FitConfig()
    its = args.iterations if args.iterations is not None else cfg.iterations
    device = resolve_device(args.device)
    files = list_images(args.inputs, args.limit)
    meta = {"config": "paper" if args.paper else "default", "config_fields": cfg.to_dict(), "iterations": its,
            "device": str(device), "downscale": args.downscale, "seed": args.seed, "gaussians": ns,
            "torch_threads": torch.get_num_threads(),
            "peak_memory_note": "peak_rss_mib = process peak RSS so far (getrusage ru_maxrss); "
                                "cuda_peak_mib = torch.cuda.max_memory_allocated during the fit"}
    rows: list[dict] = []

    def flush_outputs():
        data = {"meta": meta, "results": rows}
        if args.history:
            data["iterations_to_target"] = {"target_db": args.target, **iterations_to_target(rows, args.target)}
        write_text_atomic(args.out_json, json.dumps(data, indent=1))
        if args.out_md and rows:
            Path(args.out_md).write_text(markdown(rows, meta))

    log(f"{len(files)} images x N={ns}, {its} iterations, config={meta['config']}, device={device}")
    for f in files:
        img, _ = load_image(f)
        img = downscale(img, args.downscale)
        h, w = img.shape[:2]
        for n in ns:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            res = fit_image(img, n, its, seed=args.seed, device=str(device), config=cfg,
                            progress=progress_printer(f.name, args.progress_every))
            row = {
                "image": f.name, "width": w, "height": h, "n": n, "gaussians": res.gaussians,
                "psnr": res.psnr, "ms_ssim": res.ms_ssim, "iterations": res.iterations,
                "best_iteration": res.best_iteration, "seconds": res.seconds,
                "ms_per_iteration": 1000.0 * res.seconds / res.iterations,
                "forward_ms": forward_ms(res, h, w, device),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            }
            if device.type == "cuda":
                row["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
            if args.history:
                row["history"] = res.history
            rows.append(row)
            ms = "n/a" if res.ms_ssim is None else f"{res.ms_ssim:.4f}"
            log(f"{f.name} {w}x{h} N={n}: {res.psnr:.2f} dB, MS-SSIM {ms}, {res.seconds:.1f} s "
                f"({row['ms_per_iteration']:.1f} ms/it), forward {row['forward_ms']:.2f} ms, N_final {res.gaussians}")
            flush_outputs()
    for n in ns:
        sel = [r for r in rows if r["n"] == n]
        if sel:
            log(f"mean N={n} over {len(sel)} images: {statistics.fmean(r['psnr'] for r in sel):.2f} dB, "
                f"{statistics.fmean(r['seconds'] for r in sel):.1f} s")
    flush_outputs()
    if args.history:
        log(f"iterations to mean >= {args.target} dB: {iterations_to_target(rows, args.target)}")
    return 0 if all(not math.isnan(r["psnr"]) for r in rows) else 1


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("bench_represent", main))
