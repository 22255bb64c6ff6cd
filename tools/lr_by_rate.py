#!/usr/bin/env python3
"""The position/covariance learning rate a ``--bpp`` encode trains with, by rate, and its
start and growth settings.

    python tools/lr_by_rate.py [--width 768] [--height 512] [--bpp 0.15,0.25,0.5,0.75,1,1.5,2]
        [--density-ref R]

For each rate: the default bit depths (``encoder.default_depths``: the position depth
follows the Gaussians' spacing), the N the position rule takes (the rate model's at
``QATConfig.depths_at``, with ``bits_position``) and its mean spacing in steps of the
chosen position depth (the rule wants at least ``position_steps_per_spacing``, from
``position_dense_from`` Gaussians per pixel ``position_steps_per_spacing_dense``), the N the rate model guesses first
(``encoder.predict_gaussians`` at those depths, the N the fit aims at), its density N / pixels, the spacing
factor sqrt(ref / density) without the floor, and the lr ``trainer.geometry_lr_scale``
gives the fit (``FitConfig().lr_means`` times it; ``lr_covs`` is the same at the defaults),
then the share of N the fit starts with (``FitConfig.init_fraction_at``) and its growth's
peak radius (``FitConfig.grow_peak_radius_at``) and the colour it gives new Gaussians
(``FitConfig.new_color_at``: "residual", a share ``new_color_gain`` of the residual, below
``new_color_until``) and the error map its growth takes pixels from
(``FitConfig.grow_error_at``: "matched" below ``grow_error_until``, with its kernel's σ in
pixels once the set is full, ``densify.matched_variance`` at N), which take their dense values from
``init_dense_from`` up to (not including) ``init_dense_until`` Gaussians per pixel (the
start ``init_fraction_denser`` from ``init_denser_from`` up), and below ``init_dense_from``
the sparse start (``init_fraction_sparse``) and a radius from the Gaussians' spacing
(``grow_peak_radius_per_spacing``), and at the bottom of the dense range
``grow_peak_radius_lower_dense`` (up to ``grow_peak_radius_lower_until``), and the share of
the run after which the lr halves
(``FitConfig.lr_halve_every_frac_at``: ``lr_halve_every_frac_dense`` from ``init_dense_from``
Gaussians per pixel up, with no upper bound), and the base layer's block side in pixels
(``QATConfig.base_factor_log2`` at the rate and its budget: ``base_samples_across_high_rate``
from ``high_rate_bpp`` up; "none" without a base layer).
``--density-ref`` replaces the default ``FitConfig.lr_density_ref``.
"""

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.encoder import default_depths, predict_gaussians  # noqa: E402
from gipp_codec.fit.config import FitConfig  # noqa: E402
from gipp_codec.fit.densify import matched_variance  # noqa: E402
from gipp_codec.fit.trainer import geometry_lr_scale  # noqa: E402
from gipp_codec.format.model import BitDepths  # noqa: E402


def growth_map(cfg: FitConfig, n: int, height: int, width: int) -> str:
    """The growth error map of a fit of ``n`` Gaussians, "matched" with its kernel's σ (px)."""
    how = cfg.grow_error_at(n, height * width)
    if how != "matched":
        return how
    return f"matched (σ {math.sqrt(matched_variance(height, width, n, cfg)):.2f})"


def main(argv=None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--bpp", default="0.15,0.25,0.5,0.75,1,1.5,2", help="comma list of rates")
    p.add_argument("--density-ref", type=float, default=None, help="instead of FitConfig's default")
    args = p.parse_args(argv)
    cfg = FitConfig()
    if args.density_ref is not None:
        cfg = cfg.replace(lr_density_ref=args.density_ref)
    ref = cfg.lr_density_ref
    pixels = args.width * args.height
    print(f"{args.width}x{args.height}, lr_density_ref {ref}, lr_means {cfg.lr_means}")
    print("| bpp | depths | N the position rule uses | spacing / position step | N guessed | density "
          "| sqrt(ref / density) | lr | N0 / N | peak radius | new colour | growth error | lr halved every "
          "| base block px |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for bpp in (float(b) for b in args.bpp.split(",")):
        bits = default_depths(cfg.qat, None, bpp, args.width, args.height)
        # the rule's N: the rate model's at depths_at (bits_position), as default_depths takes it
        n_rule = predict_gaussians(bpp * pixels, BitDepths(*cfg.qat.depths_at(bpp)))
        steps = math.sqrt(pixels / n_rule) / (max(args.width, args.height) / 2 ** bits.position)
        n = predict_gaussians(bpp * pixels, bits)
        raw = math.sqrt(ref / (n / pixels)) if ref is not None else 1.0
        lr = cfg.lr_means * geometry_lr_scale(n, args.height, args.width, cfg)
        f = cfg.qat.base_factor_log2(args.width, args.height, bpp * pixels, bpp)
        block = "none" if f is None else str(1 << f)
        print(f"| {bpp:g} | {bits.position}/{bits.covariance}/{bits.color} | {n_rule} | {steps:.2f} | {n} "
              f"| {n / pixels:.5f} | {raw:.5f} | {lr:.5f} | {cfg.init_fraction_at(n, pixels):g} "
              f"| {cfg.grow_peak_radius_at(n, pixels)} | {cfg.new_color_at(n, pixels)} "
              f"| {growth_map(cfg, n, args.height, args.width)} "
              f"| {cfg.lr_halve_every_frac_at(n, pixels):g} | {block} |")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("lr_by_rate", main))
