"""Micro-benchmark of the Triton ('cuda') renderer on a CUDA GPU.

Scenes have fitted sizes: 3-sigma radius (3*sqrt(lambda_max)) log-normal with mean
``--radius`` px (19 px, as measured on fitted Kodak models), anisotropy ratio
lambda_min/lambda_max ~ U(0.1, 1), uniform rotation, means uniform over the image.
Timings use CUDA events; the median over ``--repeats`` runs after ``--warmup`` is reported:

- bin:       tile binning alone, as the renderer does it (Triton kernels and torch's sort;
             includes its one host sync); bin_torch: the torch reference form, for comparison
- fwd:       render (binning + forward kernel), no autograd: the decoder's render
- fwd+bwd:   render + backward with a random incoming gradient: a training step's renderer
- decode:    fwd plus clamp, 8-bit rounding and the copy to host memory
- img/s:     1000 / fwd, the render-only decode throughput

Usage: python tools/bench_gpu.py [--n 5000 10000] [--json] [--sweep] [--no-check]
"""

import argparse
import json
import math
import statistics
import sys


_DEFAULT_WARPS = 8


def make_scene(n: int, height: int, width: int, mean_radius: float, log_sigma: float, seed: int, device):
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    # log-normal radius with the requested mean: E[exp(N(mu, s^2))] = exp(mu + s^2 / 2)
    mu = math.log(mean_radius) - 0.5 * log_sigma**2
    radius = torch.exp(mu + log_sigma * torch.randn(n, generator=gen))  # 3*sqrt(lambda_max)
    lam_max = (radius / 3.0) ** 2
    lam_min = lam_max * (0.1 + 0.9 * torch.rand(n, generator=gen))
    th = math.pi * torch.rand(n, generator=gen)
    ct, st = torch.cos(th), torch.sin(th)
    covs = torch.stack([ct * ct * lam_max + st * st * lam_min, ct * st * (lam_max - lam_min),
                        st * st * lam_max + ct * ct * lam_min], 1)
    means = torch.rand(n, 2, generator=gen) * torch.tensor([float(width), float(height)])
    colors = 0.5 * torch.randn(n, 3, generator=gen)
    return means.to(device), covs.to(device), colors.to(device)


def median_ms(fn, warmup: int, repeats: int) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def rel_err(a, b) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp(min=1e-30))


def bench_one(n, args, block=None, bwd_block=None, num_warps=None, check=False) -> dict:
    import torch

    from gipp_codec.render import cuda_triton
    from gipp_codec.render.tiles import bin_gaussians
    from gipp_codec.render.tiles_triton import bin_gaussians_triton

    cuda_triton.NUM_WARPS = num_warps if num_warps is not None else _DEFAULT_WARPS
    kw = {}
    if block is not None:
        kw["block"] = block
    if bwd_block is not None:
        kw["bwd_block"] = bwd_block
    h, w = args.height, args.width
    means, covs, colors = make_scene(n, h, w, args.radius, args.log_sigma, args.seed, "cuda")
    grad_out = torch.randn(h, w, 3, device="cuda")
    leaves = [t.clone().requires_grad_() for t in (means, covs, colors)]
    render = cuda_triton.render_cuda

    def fwd():
        with torch.no_grad():
            return render(means, covs, colors, h, w, **kw)

    def fwd_bwd():
        out = render(*leaves, h, w, **kw)
        return torch.autograd.grad(out, leaves, grad_out)

    def decode():
        with torch.no_grad():
            img = render(means, covs, colors, h, w, **kw)
            return torch.floor(img.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu()

    bins = bin_gaussians_triton(means, covs, h, w)
    per_tile = (bins.tile_offsets[1:] - bins.tile_offsets[:-1]).long()
    row = {
        "n": n, "height": h, "width": w,
        "block": kw.get("block", cuda_triton.BLOCK_G), "bwd_block": kw.get("bwd_block", cuda_triton.BWD_BLOCK_G),
        "num_warps": cuda_triton.NUM_WARPS,
        "pairs": int(bins.gauss_ids.numel()), "max_per_tile": int(per_tile.max()),
        "bin_ms": median_ms(lambda: bin_gaussians_triton(means, covs, h, w), args.warmup, args.repeats),
        "bin_torch_ms": median_ms(lambda: bin_gaussians(means, covs, h, w), args.warmup, args.repeats),
        "fwd_ms": median_ms(fwd, args.warmup, args.repeats),
        "fwd_bwd_ms": median_ms(fwd_bwd, args.warmup, args.repeats),
        "decode_ms": median_ms(decode, args.warmup, args.repeats),
    }
    row["images_per_s"] = 1000.0 / row["fwd_ms"]
    if check:
        from gipp_codec.render.reference import render_reference

        ref_leaves = [t.clone().requires_grad_() for t in (means, covs, colors)]
        ref = render_reference(*ref_leaves, h, w)
        ref_grads = torch.autograd.grad(ref, ref_leaves, grad_out)
        out = render(*leaves, h, w, **kw)
        grads = torch.autograd.grad(out, leaves, grad_out)
        row["err_out"] = rel_err(out.detach(), ref.detach())
        for name, g, rg in zip(("means", "covs", "colors"), grads, ref_grads):
            row[f"err_{name}"] = rel_err(g, rg)
    return row


def markdown(rows) -> str:
    cols = ["n", "block", "bwd_block", "num_warps", "pairs", "max_per_tile", "bin_ms", "bin_torch_ms", "fwd_ms",
            "fwd_bwd_ms", "decode_ms", "images_per_s"]
    cols += [c for c in ("err_out", "err_means", "err_covs", "err_colors") if c in rows[0]]
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[5000, 10000], help="Gaussian counts")
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--radius", type=float, default=19.0, help="mean 3-sigma radius, px")
    p.add_argument("--log-sigma", type=float, default=0.5, help="std of log radius")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sweep", action="store_true", help="also try block sizes and warp counts")
    p.add_argument("--no-check", dest="check", action="store_false", help="skip the parity check")
    p.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    args = p.parse_args(argv)

    try:
        import torch
    except ImportError:
        print("bench_gpu: torch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device is available; this benchmark times the Triton kernels "
              "on a GPU only (the CPU interpreter path is for tests, not speed)", file=sys.stderr)
        return 2
    try:
        import triton
    except ImportError:
        print("bench_gpu: triton is not installed (pip install triton)", file=sys.stderr)
        return 2

    configs = [(None, None, None)]
    if args.sweep:
        configs += [(b, bb, nw) for nw in (4, 8) for b in (16, 32, 64) for bb in (16, 32)]
    global _DEFAULT_WARPS
    from gipp_codec.render import cuda_triton

    _DEFAULT_WARPS = cuda_triton.NUM_WARPS
    rows = []
    for n in args.n:
        for i, (block, bwd_block, nw) in enumerate(configs):
            # The parity check against the dense reference runs once per n (default config).
            rows.append(bench_one(n, args, block, bwd_block, nw, check=args.check and i == 0))
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
    else:
        print(f"{meta['device']}, torch {meta['torch']}, triton {meta['triton']}, "
              f"{args.width}x{args.height}, median of {args.repeats}\n")
        print(markdown(rows))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("bench_gpu", main))
