#!/usr/bin/env python
"""How large the gradients are that the fit's Adam divides by, against its epsilon.

    python tools/adam_gradient_scale.py /work/shared/datasets/kodak/kodim15.png \
        --gaussians 3900 --iterations 5000 --every 1000 [--crop 384x256] [--json out.json]

The loss is the mean squared error over H*W*3 values, so its gradients shrink with the
pixel count. Adam's step is lr * m / (sqrt(v) + eps): where sqrt(v) (the running RMS
gradient) is not well above eps, eps shrinks the step. This prints, at every ``--every``
iterations of a default encode's fit (``fit_and_quantize``, the encoder's own fit, at a
fixed Gaussian count), the 10th / 50th / 90th percentile over Gaussians of sqrt(v) for the
positions, the covariance entries and the colours, and the share of entries whose sqrt(v)
is below the configured eps and below 100 * eps. It observes RowAdam's state after each
step (the wrapper only reads); the fit runs as the encoder runs it.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.fit import trainer  # noqa: E402
from gipp_codec.fit.api import fit_and_quantize  # noqa: E402
from gipp_codec.fit.config import FitConfig  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "adam_gradient_scale"

GROUPS = ("positions", "covariance", "colours")


def main(argv=None) -> None:
    """Fit one image with the default config, reporting Adam's RMS-gradient scale."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--gaussians", type=int, default=3900)
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--every", type=int, default=1000, help="report every K iterations")
    p.add_argument("--crop", default=None, help="WxH crop from the top left (default: the whole image)")
    p.add_argument("--adam-eps", type=float, default=None, help="FitConfig.adam_eps (default: the default's)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    check_record_path(PROG, args.json, [args.image])

    img, _ = load_image(args.image)  # [H, W, 3] uint8
    if args.crop:
        w, h = (int(v) for v in args.crop.lower().split("x"))
        img = np.ascontiguousarray(img[:h, :w])
    cfg = FitConfig() if args.adam_eps is None else FitConfig().replace(adam_eps=args.adam_eps)
    eps = cfg.adam_eps
    rows = []
    step = trainer.RowAdam.step

    def observed_step(self):  # RowAdam's own step, then a read of its second moments
        step(self)
        t = int(self.steps.max())
        if t % args.every == 0:
            row = {"iteration": t, "gaussians": int(self.steps.shape[0])}
            for name, v in zip(GROUPS, self.v):
                rms = np.sqrt(v.detach().cpu().numpy().ravel().astype(np.float64))  # [N * k]
                p10, p50, p90 = np.percentile(rms, [10, 50, 90])
                row[name] = {"p10": p10, "p50": p50, "p90": p90, "below_eps": float(np.mean(rms < eps)),
                             "below_100eps": float(np.mean(rms < 100 * eps))}
            rows.append(row)
            print(f"it {t:6d}  N {row['gaussians']:5d}  " + "  ".join(
                f"{g}: p10 {row[g]['p10']:.1e} p50 {row[g]['p50']:.1e} p90 {row[g]['p90']:.1e} "
                f"<eps {100 * row[g]['below_eps']:.0f}% <100eps {100 * row[g]['below_100eps']:.0f}%"
                for g in GROUPS), flush=True)

    trainer.RowAdam.step = observed_step
    try:
        fit_and_quantize(img, args.gaussians, args.iterations, config=cfg, device="cpu")
    finally:
        trainer.RowAdam.step = step
    print(f"image {img.shape[1]}x{img.shape[0]}, values {img.size}, adam_eps {eps:g}")
    if args.json:
        write_text_atomic(args.json, json.dumps({"image": args.image, "crop": args.crop, "adam_eps": eps,
                                                 "values": int(img.size), "rows": rows}, indent=1))


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("adam_gradient_scale", main))
