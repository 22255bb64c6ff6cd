#!/usr/bin/env python3
"""Where one encode spends its time: a cProfile of ``encode_with_report`` summed into parts.

    python tools/encode_profile.py IMAGE.png [--bpp 0.5] [--iterations 1000] [--phases]
        [--cpu-search] [--json OUT]

Runs one untimed tiny encode first (numba's kernels loaded from its cache), then the
encode under cProfile, and prints the wall time and the cumulative time of each part:
the training loop, growth and recycling inside it (the Gaussians added at the error's
peaks; those dropped, and within that the removal-cost pricing of the default ranking),
the render kernels inside it (forward, backward, and for older
revisions the image gradient's planar copy (before 95d0b76) or the planar loss gradient
(95d0b76 to f936cd4); since f936cd4 the forward kernel writes the loss gradient itself, so
it is inside the forward's time), and the entropy coder's work (every coding of the set:
the search and the writing), the code search after QAT (all its sweeps; on CUDA, since the
fortieth session, the Triton search's, unless ``--cpu-search``), QAT's rate term
(the CPU kernel since f7086d8; before it the torch form, whose backward pass through
autograd's engine is not inside its time), and the trainer's MSE of a render in torch
(before f7086d8 also on every QAT iteration, for the rate term), and every pass of
autograd's engine (on the CPU before f7086d8: the rate term's backward). Parts that were not called are left out of the printout
(the JSON keeps them, with 0 calls). cProfile slows
Python-heavy code more than the kernels, so the parts are for finding where the time
goes, not timings of record; compare revisions with ``tools/encode_ab.py``.

``--phases`` runs the encode once more without cProfile and prints the median wall time
of one iteration in each training phase (float, QAT), from the trainer's progress calls.
"""

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

import numpy as np

from gipp_codec.encoder import encode_with_report
from gipp_codec.fit.config import FitConfig
from gipp_codec.imageio import load_image
from tool_record import check_record_path, write_text_atomic

PROG = "encode_profile"

# part -> (file suffix, function name) whose cumulative time it is
PARTS = {
    "training loop": ("fit/trainer.py", "train"),
    "render forward kernel": ("render/numba_kernels.py", "_forward_bands"),
    "render backward kernel": ("render/numba_kernels.py", "_backward_gauss"),
    "gradient planar copy": ("render/numba_kernels.py", "_planar_grad"),  # before 95d0b76
    "loss gradient, planar": ("render/numba_kernels.py", "_planar_residual"),  # 95d0b76 to f936cd4
    "entropy coding (all codings)": ("entropy/gaussian_coder.py", "encode_attributes"),
    "coding search": ("entropy/gaussian_coder.py", "_choose_config"),
    "code search after QAT (all sweeps)": ("fit/code_search.py", "search_codes"),
    "code search after QAT, Triton (all sweeps)": ("fit/code_search_triton.py", "search_codes_triton"),  # CUDA
    "rate term, CPU kernel": ("fit/rate_proxy.py", "add_rate_gradients"),  # since f7086d8
    "LSQ+ training step (kernels)": ("quant/lsq.py", "training_step"),
    "QAT's fake quantizer, autograd form": ("quant/lsq.py", "forward_composed"),
    "rate term, torch form": ("fit/rate_proxy.py", "attribute_bits"),  # its backward is not inside
    "MSE of a render (torch)": ("fit/trainer.py", "_mse"),
    "autograd's backward (all calls)": ("~", "<method 'run_backward' of 'torch._C._EngineBase' objects>"),
    "growth: Gaussians added at the error": ("fit/trainer.py", "add_at_errors"),
    "recycling: Gaussians dropped": ("fit/trainer.py", "drop_least_important"),  # since dba23a0
    "recycling: removal-cost pricing": ("fit/prune.py", "removal_importance"),  # since 18b479a
}


def iteration_times(image: np.ndarray, bpp: float, iterations: int, config=None) -> dict:
    """{phase: {"iterations", "median_ms"}} of one encode: the time between the trainer's
    consecutive progress calls, by the phase of the later one (a rate-hook iteration and
    the first of each phase are included; the median is robust to them)."""
    stamps = []  # (perf_counter, phase)
    encode_with_report(image, bpp=bpp, iterations=iterations, config=config,
                       progress=lambda t, total, info: stamps.append((time.perf_counter(), info["phase"])))
    out = {}
    for phase in ("float", "qat"):
        dts = [b[0] - a[0] for a, b in zip(stamps, stamps[1:]) if b[1] == phase]
        if dts:
            out[phase] = {"iterations": len(dts), "median_ms": 1e3 * float(np.median(dts))}
    return out


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--phases", action="store_true", help="also time one iteration per phase, unprofiled")
    ap.add_argument("--json", default=None)
    ap.add_argument("--cpu-search", action="store_true",
                    help="run the code search after QAT on the CPU even where CUDA serves (QATConfig.code_search_on_gpu off)")
    ap.add_argument("--covariance-form", choices=("auto", "b", "correlation"), default=None,
                    help="QATConfig.covariance_form (default: the config's)")
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json, [args.image])
    config = FitConfig().with_qat(code_search_on_gpu=not args.cpu_search)
    if args.covariance_form is not None:
        config = config.with_qat(covariance_form=args.covariance_form)
    image = load_image(args.image)[0]
    encode_with_report(image[:32, :32], gaussians=20, iterations=5, config=config)  # load the kernels
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    encode_with_report(image, bpp=args.bpp, iterations=args.iterations, config=config)
    prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    parts = {}
    for part, (suffix, name) in PARTS.items():
        hits = [(v[1], v[3]) for (f, _, fn), v in stats.items() if fn == name and f.endswith(suffix)]
        parts[part] = {"calls": int(sum(c for c, _ in hits)), "seconds": float(sum(s for _, s in hits))}
    print(f"{args.image.name}, {args.bpp} bpp, {args.iterations} iterations: {wall:.1f} s under cProfile")
    for part, v in parts.items():
        if v["calls"]:
            print(f"  {part:30s} {v['seconds']:7.2f} s  ({v['calls']} calls)")
    phases = iteration_times(image, args.bpp, args.iterations, config) if args.phases else {}
    for phase, v in phases.items():
        print(f"  one {phase} iteration (no cProfile): median {v['median_ms']:.2f} ms over {v['iterations']}")
    if args.json:
        record = {"image": str(args.image), "bpp": args.bpp, "iterations": args.iterations,
                  "covariance_form": config.qat.covariance_form, "wall_seconds": wall, "parts": parts, "phases": phases}
        write_text_atomic(args.json, json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    np.seterr(all="ignore")
    sys.exit(guarded("encode_profile", main))
