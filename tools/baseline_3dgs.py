"""The alpha-composited "3D GS" baseline of the paper's Table 1, via gsplat (CUDA only).

Fits N 3D Gaussians, seen by a fixed pinhole camera, to one image with the standard 3DGS
renderer: each Gaussian is projected to a 2D splat (plus gsplat's eps2d = 0.3 px^2 low-pass),
splats are depth-sorted and blended front to back, ``C = sum_i c_i a_i prod_{j<i} (1 - a_j)``
with ``a_i = min(0.999, o_i * exp(-m2_i / 2))``, on a black background. This is the
baseline our summation model (GaussianImage++) is compared with; it is not part of the codec.

Parametrisation: means in camera space (z = depth), log-scales, quaternions (gsplat
normalises them), opacity and colour logits (sigmoid). Loss: MSE. Adam, one learning rate
for all parameters with cosine decay to 10 %; the best PSNR seen (evaluated every
``--eval-every`` iterations) is reported, as for our own fits.

Usage: python tools/baseline_3dgs.py IMAGE [--n 10000] [--iters 30000] [--json]
Needs CUDA and gsplat >= 1.5 (pip install "gimg[gpu]"); gsplat compiles its CUDA code on
first use, which takes minutes.
"""

import argparse
import json
import math
import sys
import time


def fit(target, n: int, iters: int, lr: float, eval_every: int, seed: int) -> dict:
    """Fit n Gaussians to ``target`` [H, W, 3] float in [0, 1] on CUDA; return a report."""
    import torch
    from gsplat import rasterization

    device = target.device
    h, w = target.shape[:2]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    focal = 0.5 * w  # 90-degree horizontal field of view
    K = torch.tensor([[focal, 0.0, 0.5 * w], [0.0, focal, 0.5 * h], [0.0, 0.0, 1.0]], device=device)
    viewmat = torch.eye(4, device=device)  # camera frame = world frame, looking along +z
    # Initial Gaussians: uniform over the image, depths in [7.5, 8.5], isotropic with a
    # projected sigma that tiles the image about once, opacity 0.1, grey.
    depth = 7.5 + torch.rand(n, generator=gen)
    u = torch.rand(n, generator=gen) * w
    v = torch.rand(n, generator=gen) * h
    means = torch.stack([(u - 0.5 * w) * depth / focal, (v - 0.5 * h) * depth / focal, depth], 1)
    sigma_px = math.sqrt(h * w / (math.pi * n))
    log_scales = torch.log(sigma_px * depth / focal)[:, None].repeat(1, 3)
    quats = torch.randn(n, 4, generator=gen)
    params = {
        "means": means,
        "log_scales": log_scales,
        "quats": quats,
        "opacity_logits": torch.full((n,), math.log(0.1 / 0.9)),
        "color_logits": torch.zeros(n, 3),
    }
    params = {k: v.to(device).requires_grad_() for k, v in params.items()}
    opt = torch.optim.Adam(params.values(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(i, iters) / iters)))

    def render():
        colors, _alphas, _meta = rasterization(
            params["means"], params["quats"], torch.exp(params["log_scales"]),
            torch.sigmoid(params["opacity_logits"]), torch.sigmoid(params["color_logits"]),
            viewmat[None], K[None], w, h, packed=False,
        )
        return colors[0]  # [H, W, 3]

    best_psnr, best_iter = -math.inf, 0
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for it in range(1, iters + 1):
        loss = torch.mean((render() - target) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % eval_every == 0 or it == iters:
            with torch.no_grad():
                mse = torch.mean((render().clamp(0.0, 1.0) - target) ** 2).item()
            psnr = 10.0 * math.log10(1.0 / max(mse, 1e-12))
            if psnr > best_psnr:
                best_psnr, best_iter = psnr, it
    torch.cuda.synchronize()
    train_s = time.perf_counter() - t0

    # Render speed of the final model (median of 100 CUDA-event timings).
    times = []
    with torch.no_grad():
        for i in range(110):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            render()
            e.record()
            e.synchronize()
            if i >= 10:
                times.append(s.elapsed_time(e))
    render_ms = sorted(times)[len(times) // 2]
    return {"n": n, "iters": iters, "lr": lr, "height": h, "width": w, "best_psnr": best_psnr,
            "best_iter": best_iter, "train_s": train_s, "render_ms": render_ms,
            "fps": 1000.0 / render_ms}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image", help="input image (PNG etc.)")
    p.add_argument("--n", type=int, default=10000, help="number of Gaussians")
    p.add_argument("--iters", type=int, default=30000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("baseline_3dgs: needs a CUDA GPU (gsplat's rasterizer has no CPU path)", file=sys.stderr)
        return 2
    try:
        import gsplat
    except ImportError as exc:
        print(f"baseline_3dgs: gsplat >= 1.5 is needed (pip install 'gsplat>=1.5,<1.6' packaging): {exc}",
              file=sys.stderr)
        return 2

    from gipp_codec.imageio import load_image

    rgb8, _meta = load_image(args.image)  # [H, W, 3] uint8
    target = torch.from_numpy(rgb8).to("cuda", torch.float32) / 255.0
    report = fit(target, args.n, args.iters, args.lr, args.eval_every, args.seed)
    report.update(image=args.image, gsplat=gsplat.__version__)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"3DGS baseline (gsplat {report['gsplat']}) on {args.image}: N={report['n']}, "
              f"{report['iters']} iterations, best PSNR {report['best_psnr']:.2f} dB at iteration "
              f"{report['best_iter']}, train {report['train_s']:.0f} s, render "
              f"{report['render_ms']:.3f} ms ({report['fps']:.0f} FPS)")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("baseline_3dgs", main))
