"""What quantization does to a fit at the moment QAT starts, by LSQ+ initialisation.

Runs the encoder's fit (the float phase of a rate-controlled encode at --bpp with
--iterations) up to the start of QAT, then, on the float Gaussians the rate hook sees,
reports the PSNR of the render with every channel quantized and with one group at a time
(positions, covariance, colours), for the "minmax" and "render" initialisations, plus
the colour and b quantization steps, how many Gaussians quantization makes invalid, and
how long each initialisation takes.

    python tools/qat_start_study.py kodim15.png --bpp 0.5 --iterations 50000 [--json out.json]
"""

import argparse
import json
import sys
import time

import numpy as np
import torch

from gipp_codec import encoder
from gipp_codec.format.model import BitDepths
from gipp_codec.imageio import load_image
from gipp_codec.metrics import psnr
from gipp_codec.quant.dequant import dequantize_rows
from gipp_codec.quant.lsq import LSQPlus, split_attributes
from gipp_codec.render.convention import to_uint8, valid_mask
from gipp_codec.render.numba_kernels import forward
from tool_record import check_record_path, write_text_atomic

PROG = "qat_start_study"

GROUPS = {"positions": [0, 1], "covariance": [2, 3, 4], "colours": [5, 6, 7]}


class _Stop(Exception):
    """Raised by the hook once it has the rows: the fit need not go on."""


def float_rows_at_qat_start(image: np.ndarray, bpp: float, iterations: int, seed: int) -> torch.Tensor:
    """The float rows [N, 8] the encoder's rate hook receives for this encode."""
    h, w = image.shape[:2]
    got = {}

    def hook(rows, quant):
        got["rows"] = rows.detach().clone()
        raise _Stop

    n = encoder.predict_gaussians(bpp * h * w, BitDepths())
    try:
        encoder._encode_once(image, n, iterations, BitDepths(), seed, "cpu", None, None, None, hook, None)
    except _Stop:
        return got["rows"]
    raise RuntimeError("the fit ended without entering QAT")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image")
    p.add_argument("--bpp", type=float, default=0.5)
    p.add_argument("--iterations", type=int, default=50000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here too")
    args = p.parse_args(argv)
    check_record_path(PROG, args.json, [args.image])

    image = load_image(args.image)[0]
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    rows = float_rows_at_qat_start(image, args.bpp, args.iterations, args.seed)  # [N, 8]
    fit_s = time.perf_counter() - t0
    target = image.astype(np.float32) / 255.0

    def render_psnr(r: np.ndarray) -> tuple[float, int]:
        m, c, col = split_attributes(np.asarray(r, np.float32))
        keep = valid_mask(c)
        img = forward(*(np.ascontiguousarray(a[keep]) for a in (m, c, col)), h, w)
        return psnr(to_uint8(np.asarray(img)), image), int((~keep).sum())

    def rendered_error(r: torch.Tensor) -> float:
        m, c, col = split_attributes(r.detach().numpy().astype(np.float32))
        img = np.asarray(forward(np.ascontiguousarray(m), np.ascontiguousarray(c), np.ascontiguousarray(col), h, w))
        return float(np.mean((np.clip(img, 0.0, 1.0) - target) ** 2))

    float_rows = rows.numpy().astype(np.float32)
    result = {"image": args.image, "bpp": args.bpp, "iterations": args.iterations, "gaussians": int(rows.shape[0]),
              "float_psnr": render_psnr(float_rows)[0], "fit_seconds": fit_s, "inits": {}}
    for init in ("minmax", "render"):
        quant = LSQPlus(BitDepths().per_channel())
        t_init = time.perf_counter()
        quant.init_minmax(rows) if init == "minmax" else quant.init_render(rows, rendered_error)
        init_s = time.perf_counter() - t_init
        scales, offsets = quant.export()
        deq = dequantize_rows(quant.quantize(rows), scales, offsets)  # [N, 8]
        all_psnr, invalid = render_psnr(deq)
        entry = {"init_seconds": init_s, "psnr_all_quantized": all_psnr, "invalid": invalid, "step_b": float(scales[3]),
                 "steps_colour": [float(v) for v in scales[5:8]], "psnr_one_group": {}}
        for name, cols in GROUPS.items():
            mix = float_rows.copy()
            mix[:, cols] = deq[:, cols]
            entry["psnr_one_group"][name] = render_psnr(mix)[0]
        result["inits"][init] = entry

    print(f"{args.image}: {result['gaussians']} Gaussians at QAT start of a {args.iterations}-iteration "
          f"fit for {args.bpp} bpp; float render {result['float_psnr']:.2f} dB")
    print("| init | all quantized dB | only positions | only covariance | only colours | invalid | b step "
          "| colour steps | init s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for init, e in result["inits"].items():
        g = e["psnr_one_group"]
        print(f"| {init} | {e['psnr_all_quantized']:.2f} | {g['positions']:.2f} | {g['covariance']:.2f} "
              f"| {g['colours']:.2f} | {e['invalid']} | {e['step_b']:.3f} | "
              + " / ".join(f"{v:.3f}" for v in e["steps_colour"]) + f" | {e['init_seconds']:.2f} |")
    if args.json:
        write_text_atomic(args.json, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("qat_start_study", main))
