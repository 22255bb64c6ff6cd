#!/usr/bin/env python3
"""Time the three forms of growth's matched error map on the CPU, on random residuals of
several image shapes and kernel variances:
- ``densify.matched_error``, the encoder's: the numba kernel ``fit.matched_kernels``;
- ``densify.matched_error_torch`` (the form on other devices, and the CPU's from commit
  8581f9b to the fifty-ninth session): one depthwise torch convolution per axis;
- the same blur channel by channel (one single-channel convolution per channel and axis,
  the form of commit 3ab459e).

    python tools/matched_error_speed.py [--repeats 10] [--seed 0] [--torch-threads T]

``--torch-threads 1`` times the torch forms as the encoder runs them on the CPU, where
torch keeps one intra-op thread while it fits (``fit.threads``); numba keeps all its threads.

Prints one row per shape and variance: the median milliseconds of each form, the ratios to
the depthwise form, whether the two torch forms give the same map bit for bit, and the
numba map's largest difference from the depthwise one relative to the map's largest value
(shapes of over a million pixels are timed over a fifth of the repeats).
Exits non-zero unless the torch forms are equal and the numba map is within 1e-5 of the
depthwise one everywhere (float32 rounding of a few sums). The default variances are the
kernel's at 0.15 / 0.25 / 0.5 / 0.75 bpp on a Kodak-sized image (``tools/lr_by_rate.py``) and
two outside that range.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numba
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.fit.densify import gaussian_taps, matched_error, matched_error_torch  # noqa: E402

SHAPES = ((512, 768), (768, 512), (2048, 3072), (37, 53), (3, 200))  # (H, W)
TOLERANCE = 1e-5  # numba against depthwise, relative to the map's largest value
VARIANCES = (1.04, 0.69, 0.39, 0.29, 0.11, 5.0)  # px^2


def per_channel_matched_error(render: torch.Tensor, target: torch.Tensor, variance: float) -> torch.Tensor:  # [H, W]
    """``matched_error`` with each channel blurred by its own single-channel convolutions."""
    kernel, radius = gaussian_taps(variance, render.device)  # [2r+1]
    r = (target - render).detach().float().permute(2, 0, 1)[:, None]  # [C, 1, H, W]
    r = torch.nn.functional.conv2d(r, kernel.view(1, 1, 1, -1), padding=(0, radius))
    r = torch.nn.functional.conv2d(r, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return r[:, 0].pow(2).sum(dim=0)


def median_ms(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main(argv=None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch's intra-op threads (default: torch's own, all cores)")
    args = p.parse_args(argv)
    if args.torch_threads is not None:
        numba.get_num_threads()  # start numba's pool first, as fit.threads does
        torch.set_num_threads(args.torch_threads)
    gen = torch.Generator().manual_seed(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numba {numba.get_num_threads()} threads")
    print("| H x W | variance | numba ms | depthwise ms | per channel ms | numba / depthwise | per channel / depthwise "
          "| torch forms equal | numba difference |")
    print("|---|---|---|---|---|---|---|---|---|")
    all_good = True
    for h, w in SHAPES:
        render = torch.rand(h, w, 3, generator=gen)
        target = torch.rand(h, w, 3, generator=gen)
        for v in VARIANCES:
            depthwise = matched_error_torch(render, target, v)
            equal = torch.equal(depthwise, per_channel_matched_error(render, target, v))
            difference = float((matched_error(render, target, v) - depthwise).abs().max() / depthwise.abs().max())
            all_good &= equal and difference <= TOLERANCE
            repeats = max(1, args.repeats // 5) if h * w > 10**6 else args.repeats
            fast = median_ms(lambda: matched_error(render, target, v), repeats)
            torch_ms = median_ms(lambda: matched_error_torch(render, target, v), repeats)
            slow = median_ms(lambda: per_channel_matched_error(render, target, v), repeats)
            print(f"| {h} x {w} | {v:g} | {fast:.2f} | {torch_ms:.2f} | {slow:.2f} | {fast / torch_ms:.2f} "
                  f"| {slow / torch_ms:.2f} | {equal} | {difference:.1e} |")
    return 0 if all_good else 1


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("matched_error_speed", main))
