#!/usr/bin/env python
"""Convergence sweep: which FitConfig changes reach a given PSNR in fewer iterations.

    python tools/convergence_sweep.py --images kodim01,kodim08,kodim23 --downscale 2 \
        --density 5000 --budgets 1000,3000 --variants paper,lr_pos,cosine,default --out sweep.json

Measured (2 threads shared, numba cpu backend; see the lead's BENCHMARKS.md): at 384x256,
N=1250, mean over kodim01/08/23, budget 1000: paper 19.22 dB, lr_means=lr_covs=0.5 26.84 dB;
budget 3000: paper 23.45 dB, 0.5/0.5 27.72 dB.

Images are box-downscaled by ``--downscale`` and N is scaled to keep the paper's density
(``--density`` Gaussians per 768x512 image), so the runs are cheap but have the same
Gaussians-per-pixel as a full Kodak fit. Every variant is a set of FitConfig overrides on
top of ``FitConfig.paper()`` (``default`` = our ``FitConfig()``). Each (variant, budget) is a
full run with schedules scaled to that budget; the mean PSNR (8-bit render) over images
is printed and written to JSON after every run.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.fit.api import fit_and_quantize, fit_image  # noqa: E402
from gipp_codec.fit.config import FitConfig, QATConfig  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from tools.bench_represent import downscale  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "convergence_sweep"

# overrides applied to FitConfig.paper()
VARIANTS = {
    "paper": {},
    "lr_pos": {"lr_means": 0.05},
    "lr_pos_cov": {"lr_means": 0.05, "lr_covs": 0.05},
    "lr_all_hi": {"lr_means": 0.05, "lr_covs": 0.05, "lr_colors": 0.05},
    "cosine": {"lr_schedule": "cosine", "lr_final_frac": 0.1},
    "grow_dense": {"grow_every_frac": 0.02, "grow_stop_frac": 0.6, "grow_k": None, "grow_k_frac": 0.05},
    "grow_error_cov": {"new_cov": "error_scale"},
    "offscreen": {"prune_offscreen": True},
    "pos_cos": {"lr_means": 0.05, "lr_covs": 0.05, "lr_schedule": "cosine", "lr_final_frac": 0.1},
    "pos_cos_dense": {"lr_means": 0.05, "lr_covs": 0.05, "lr_schedule": "cosine", "lr_final_frac": 0.1,
                      "grow_every_frac": 0.02, "grow_stop_frac": 0.6, "grow_k": None, "grow_k_frac": 0.05},
}


def _overrides(d: dict) -> dict:
    if isinstance(d.get("qat"), dict):
        d = dict(d, qat=QATConfig(**d["qat"]))
    return d


def config_for(name: str) -> FitConfig:
    """"paper", "default", a VARIANTS key, "{json}" (on paper) or "default+{json}"."""
    if name == "default":
        return FitConfig()
    if name.startswith("default+"):
        return FitConfig().replace(**_overrides(json.loads(name[len("default+"):])))
    if name.startswith("{"):
        return FitConfig.paper().replace(**_overrides(json.loads(name)))
    return FitConfig.paper().replace(**VARIANTS[name])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default=str(Path(__file__).resolve().parents[1] / "datasets" / "kodak"))
    ap.add_argument("--images", default="kodim01,kodim08,kodim23")
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--density", type=int, default=5000, help="N for a full 768x512 image")
    ap.add_argument("--budgets", default="1000,3000")
    ap.add_argument("--variants", default="paper,default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch/numba threads")
    ap.add_argument("--qat", action="store_true", help="run fit_and_quantize; report the decoded PSNR")
    ap.add_argument("--out", default="convergence_sweep.json")
    args = ap.parse_args(argv)
    dataset = Path(args.dataset)
    if not dataset.is_dir():
        dataset = Path("/work/shared/datasets/kodak")
    check_record_path(PROG, args.out, [dataset / f"{name}.png" for name in args.images.split(",")], option="--out")
    if args.threads:
        torch.set_num_threads(args.threads)
        import numba
        numba.set_num_threads(args.threads)

    images = {}
    for name in args.images.split(","):
        img, _ = load_image(dataset / f"{name}.png")
        images[name] = downscale(img, args.downscale)
    budgets = [int(b) for b in args.budgets.split(",")]
    variants = args.variants.split(";") if ";" in args.variants else args.variants.split(",")
    results = []
    for budget in budgets:
        for var in variants:
            cfg = config_for(var)
            psnrs, secs, extra = [], [], []
            for name, img in images.items():
                n = max(1, round(args.density * img.shape[0] * img.shape[1] / (768 * 512)))
                t = time.perf_counter()
                if args.qat:
                    _, _, _, rep = fit_and_quantize(img, n, budget, seed=args.seed, device="cpu", config=cfg)
                    row = {"psnr": rep.psnr, "psnr_float_warmup": rep.psnr_float_warmup,
                           "gaussians": rep.gaussians, "qat_start": rep.qat_start}
                    extra.append(rep.psnr_float_warmup)
                else:
                    res = fit_image(img, n, budget, seed=args.seed, device="cpu", config=cfg)
                    row = {"psnr": res.psnr, "gaussians": res.gaussians, "best_iteration": res.best_iteration}
                secs.append(time.perf_counter() - t)
                psnrs.append(row["psnr"])
                results.append({"variant": var, "budget": budget, "image": name, "n": n,
                                "seconds": secs[-1], **row})
                write_text_atomic(args.out, json.dumps(results, indent=1))
            print(f"budget {budget:6d} {var:40s} mean {statistics.fmean(psnrs):6.2f} dB  "
                  f"[{' '.join(f'{p:.2f}' for p in psnrs)}]  {statistics.fmean(secs):.1f} s/img"
                  + (f"  (float warm-up mean {statistics.fmean(extra):.2f} dB)" if extra else ""), flush=True)
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("convergence_sweep", main))
