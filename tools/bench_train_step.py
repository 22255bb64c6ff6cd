#!/usr/bin/env python3
"""Time one CPU training step (render + MSE gradient + backward) two ways, interleaved.

    python tools/bench_train_step.py FILE.gimg IMAGE.png [FILE.gimg IMAGE.png ...]
        [--repeats 40] [--json OUT]

The scene is a coded file's Gaussians (dequantized), the target its source image, torch
on one thread as in a CPU fit (``fit.threads``). Both ways leave the same gradients in
the leaves (checked here, bit for bit):
- ``autograd``: ``render_cpu`` then ``image.backward(2 (image - target) / numel)`` (the
  generic path of ``render.mse_step``, and the trainer's step before it);
- ``fused``: ``render.mse_step(render_cpu, target)``, the loss gradient written by the
  forward kernel, from its band buffers, straight into the backward's planar buffer.
Prints the median time of each per file and the ratio fused / autograd.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from gipp_codec.decoder import gaussians_as_floats, parse_gimg
from gipp_codec.imageio import load_image
from gipp_codec.render import mse_step
from gipp_codec.render.cpu import render_cpu
from tool_record import check_record_path, write_text_atomic

PROG = "bench_train_step"


def _leaves(means, covs, colors):
    return [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (means, covs, colors)]


def bench(gimg: Path, png: Path, repeats: int) -> dict:
    """Median seconds of each way on one scene, and the gradient check."""
    means, covs, colors = gaussians_as_floats(parse_gimg(gimg.read_bytes()))
    target = torch.from_numpy(load_image(png)[0].astype("float32") / 255.0)
    fused = mse_step(render_cpu, target)  # prepares the target once, as the trainer does
    # mse_step's generic path (autograd through render_cpu) is taken for any other callable
    autograd = mse_step(lambda *args: render_cpu(*args), target)
    ways = {"autograd": lambda leaves: autograd(*leaves), "fused": lambda leaves: fused(*leaves)}
    grads = {}
    for name, step in ways.items():  # warm-up, and the gradients each way leaves
        leaves = _leaves(means, covs, colors)
        step(leaves)
        grads[name] = [t.grad.clone() for t in leaves]
    same = all(torch.equal(a, b) for a, b in zip(grads["autograd"], grads["fused"]))
    times = {name: [] for name in ways}
    leaves = _leaves(means, covs, colors)
    for _ in range(repeats):
        for name, step in ways.items():
            for t in leaves:
                t.grad = None
            t0 = time.perf_counter()
            step(leaves)
            times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(v) for name, v in times.items()}
    return {"file": str(gimg), "gaussians": int(means.shape[0]), "same_gradients": same,
            "autograd_ms": 1e3 * med["autograd"], "fused_ms": 1e3 * med["fused"],
            "ratio": med["fused"] / med["autograd"]}


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", help="FILE.gimg IMAGE.png pairs")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if len(args.pairs) % 2:
        ap.error("give FILE.gimg IMAGE.png pairs")
    check_record_path(PROG, args.json, args.pairs)
    torch.set_num_threads(1)
    rows = []
    for gimg, png in zip(args.pairs[0::2], args.pairs[1::2]):
        row = bench(Path(gimg), Path(png), args.repeats)
        rows.append(row)
        print(f"{Path(gimg).name}: N={row['gaussians']}, autograd {row['autograd_ms']:.2f} ms, fused "
              f"{row['fused_ms']:.2f} ms, fused / autograd {row['ratio']:.2f}, "
              f"gradients {'identical' if row['same_gradients'] else 'DIFFER'}", flush=True)
    if len(rows) > 1:
        print(f"median ratio {statistics.median(r['ratio'] for r in rows):.2f}")
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0 if all(r["same_gradients"] for r in rows) else 1


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("bench_train_step", main))
