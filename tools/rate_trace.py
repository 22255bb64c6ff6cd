"""Trace the rate control through one encode pass: what each rate-hook call saw and asked
for, the number of Gaussians through QAT, and the file that came out.

One pass of ``gimg encode --bpp`` (the fit, QAT and the final trim; no second pass), with
the QAT initialisation and the mid-QAT sizing selectable, so that the rate control can be
compared with and without them:

    python tools/rate_trace.py kodim15.png --bpp 0.5 --iterations 50000 --init minmax --resize-frac 0
    python tools/rate_trace.py kodim15.png --bpp 0.5 --iterations 50000 [--json trace.json]
"""

import argparse
import json
import sys

from gipp_codec import encoder
from gipp_codec.decoder import read_info
from gipp_codec.fit.config import FitConfig
from gipp_codec.format.model import BitDepths
from gipp_codec.imageio import load_image
from gipp_codec.output_format import is_gray
from tool_record import check_record_path, write_text_atomic

PROG = "rate_trace"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--bpp", type=float, default=0.5)
    p.add_argument("--iterations", type=int, default=50000)
    p.add_argument("--init", choices=("render", "minmax", "mse"), default=FitConfig().qat.init)
    p.add_argument("--resize-frac", type=float, default=FitConfig().qat.resize_frac)
    p.add_argument("--bits", default=None, metavar="P,V,C",
                   help="bit depths position,covariance,colour (default: the encoder's)")
    p.add_argument("--every", type=int, default=1000, help="record N every this many iterations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--covariance-form", choices=("b", "correlation"), default=None,
                   help="how b is coded (default: what the encoder's rule gives at this rate and image)")
    p.add_argument("--json", help="write the trace here too")
    args = p.parse_args(argv)
    check_record_path(PROG, args.json, [args.image])

    image = load_image(args.image)[0]
    h, w = image.shape[:2]
    cfg = FitConfig().with_qat(init=args.init, resize_frac=args.resize_frac)
    form = args.covariance_form or cfg.qat.covariance_form_at(args.bpp, is_gray(image))
    cfg = cfg.with_qat(covariance_form=form)
    if args.bits is None:
        bits = encoder.default_depths(cfg.qat, None, args.bpp, w, h)
    else:
        bits = BitDepths(*(int(v) for v in args.bits.split(",")))
    budget = args.bpp * h * w
    sizing = encoder.size_to_budget(budget, bits, w, h, None, cfg.qat.hook_margin)
    calls, counts, seen = [], [], {"t": 0}

    def hook(rows, quant):
        n_want = sizing(rows, quant)
        per = encoder.measured_file_bits(rows, quant, bits, w, h, None)[1]
        calls.append({"after_iteration": seen["t"], "gaussians": int(rows.shape[0]), "wanted": int(n_want),
                      "bits_per_gaussian": per})
        print(f"rate hook after iteration {seen['t']}: {rows.shape[0]} Gaussians at {per:.2f} bits each "
              f"-> {n_want}", flush=True)
        return n_want

    def progress(t, total, info):
        seen["t"] = t
        if t % args.every == 0:
            counts.append((t, info["phase"], info["gaussians"]))

    n0 = encoder.predict_gaussians(budget, bits)
    data, qreport = encoder._encode_once(image, n0, args.iterations, bits, args.seed, "cpu", cfg, None, progress,
                                         hook, budget)
    info = read_info(data)
    n_final = int(info["header"]["gaussian_count"])
    result = {
        "image": args.image, "target_bpp": args.bpp, "covariance_form": form, "bits": [bits.position, bits.covariance, bits.color], "iterations": args.iterations, "init": args.init,
        "resize_frac": args.resize_frac, "hook_calls": calls, "gaussians_every": counts,
        "final_gaussians": n_final, "final_bpp": 8 * len(data) / (h * w),
        "final_bits_per_gaussian": 8 * len(data) / max(1, n_final), "psnr": qreport.psnr,
    }
    print("| iteration | phase | Gaussians |")
    print("|---|---|---|")
    for t, phase, n in counts:
        print(f"| {t} | {phase} | {n} |")
    off = 100 * (result["final_bpp"] / args.bpp - 1)
    print(f"file: {n_final} Gaussians, {result['final_bits_per_gaussian']:.2f} bits each, "
          f"{result['final_bpp']:.4f} bpp ({off:+.1f} % of the target), PSNR {qreport.psnr:.2f} dB (one pass)")
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("rate_trace", main))
