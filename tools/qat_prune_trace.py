"""What QAT's pruning removes, and why: one ``--bpp`` encode with every pruning step during
QAT logged by cause (covariance no longer positive definite after quantization, or
off screen) and, for the non-positive-definite ones, their median sqrt(a*c) and |b| as
dequantized (b's grid step is set by the largest Gaussians).

    python tools/qat_prune_trace.py kodim15.png --bpp 0.5 --iterations 4000 [--psd-safe | --no-psd-safe] [--adam-eps E] [--json out.json]
"""

import argparse
import json
import sys

import torch

import gipp_codec.fit.trainer as trainer
from gipp_codec import encoder
from gipp_codec.fit.config import FitConfig
from gipp_codec.fit.prune import onscreen_mask
from gipp_codec.imageio import load_image
from gipp_codec.render.convention import valid_mask
from tool_record import check_record_path, write_text_atomic

PROG = "qat_prune_trace"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--bpp", type=float, default=0.5)
    p.add_argument("--iterations", type=int, default=4000)
    p.add_argument("--psd-safe", action=argparse.BooleanOptionalAction, default=None,
                   help="QATConfig.psd_safe on or off (default: the default's)")
    p.add_argument("--adam-eps", type=float, default=None, help="FitConfig.adam_eps (default: the default's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the trace here too")
    args = p.parse_args(argv)
    check_record_path(PROG, args.json, [args.image])

    image = load_image(args.image)[0]
    h, w = image.shape[:2]
    cfg = FitConfig()
    if args.psd_safe is not None:
        cfg = cfg.with_qat(psd_safe=args.psd_safe)
    if args.adam_eps is not None:
        cfg = cfg.replace(adam_eps=args.adam_eps)
    state = {"t": 0, "phase": "float"}
    steps = []
    plain_keep_mask = trainer.keep_mask

    def traced_keep_mask(means, covs, height, width, offscreen):  # the trainer's rule, logged
        keep = plain_keep_mask(means, covs, height, width, offscreen)
        if state["phase"] == "qat" and not bool(keep.all()):
            psd = valid_mask(covs)
            rec = {"after_iteration": state["t"], "gaussians": int(keep.numel()), "removed": int((~keep).sum()),
                   "not_positive_definite": int((~psd).sum()),
                   "off_screen": int((psd & ~onscreen_mask(means, covs, height, width)).sum())}
            bad = ~psd & (covs[:, 0] > 0) & (covs[:, 2] > 0)
            if bool(bad.any()):
                rec["median_sqrt_ac"] = float(torch.sqrt(covs[bad, 0] * covs[bad, 2]).median())
                rec["median_abs_b"] = float(covs[bad, 1].abs().median())
            steps.append(rec)
            print(rec, flush=True)
        return keep

    def progress(t, total, info):
        state["t"], state["phase"] = t, info["phase"]

    trainer.keep_mask = traced_keep_mask
    try:
        data, report = encoder.encode_with_report(image, bpp=args.bpp, iterations=args.iterations,
                                                  seed=args.seed, config=cfg, progress=progress)
    finally:
        trainer.keep_mask = plain_keep_mask
    summary = {"image": args.image, "bpp_target": args.bpp, "iterations": args.iterations,
               "psd_safe": cfg.qat.psd_safe, "removed_in_qat": sum(s["removed"] for s in steps),
               "not_positive_definite": sum(s["not_positive_definite"] for s in steps),
               "off_screen": sum(s["off_screen"] for s in steps),
               "bpp": len(data) * 8 / (h * w), "psnr": report.psnr, "gaussians": report.gaussians}
    print(json.dumps(summary))
    if args.json:
        record = {"summary": summary, "steps": steps, "argv": sys.argv[1:] if argv is None else list(argv)}
        write_text_atomic(args.json, json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("qat_prune_trace", main))
