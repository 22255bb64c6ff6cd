#!/usr/bin/env python3
"""Would colour precision by Gaussian size pay? A what-if for a future payload coding.

    python tools/colour_precision_by_size.py FILE.gimg [FILE.gimg ...] --images DIR [--groups 4]
        [--search SWEEPS] [--json OUT]

Every Gaussian's colour has the header's depth. A colour error of one Gaussian spreads
over its footprint (the sum of its squared weights, proportional to sqrt(det) of its
covariance), so the colour of a broad Gaussian looks worth more bits than that of a
small one, and a coding that stored the set in groups, each at its own colour depth,
would need no per-Gaussian flag. Without retraining, the tool ranks the Gaussians by
sqrt(det), cuts them into ``--groups`` equal groups and measures, for each group:

- **one bit less**: the group's colour integers coarsened by one bit (q -> centre of
  the merged bin), the file rendered again with the decoder's dequantizer, renderer and
  base layer; the PSNR change, and the share of the file the group's payload saves
  when coded on its own at the coarser depth (gimg's coder, payload coding 2);
- **the headroom of more bits**: the group's colours replaced by continuous colours
  fitted for the fixed geometry (the encoder's normal equations and
  conjugate gradients, the other Gaussians and the base layer held as a background),
  i.e. infinite colour precision for the group. The decoder clamps to [0, 1], and the
  fit leans on it (renders past a bound where the image is near it), so plain least
  squares can end below the file: the colours come from Gauss-Newton steps on the
  clamped error (each the least squares over the pixels whose render is strictly inside
  (0, 1)), the best of them and the file's own. A local optimum, so the headroom is
  what continuous colours reach this way, not strictly the most a finer grid could
  approach.

And once for the file: the headroom with every colour continuous at once.

With ``--search SWEEPS``, both directions are also measured as the encoder would reach them
without retraining: the group's codes on the grid one bit coarser, at the file's depth, and
one bit finer (step / 2, the same offset, so it starts from the same colours) each go
through the encoder's code search (``search_codes``, that many sweeps, every channel of the
group's Gaussians, the others and the base layer held), with the rate term's weight the
encoder takes at the file's rate, the bits priced on the group's own codes. The changes are
taken against the search at the file's depth, and the bits come from the group's searched
codes, coded on their own.
The reference image of FILE is DIR/<name>.png, <name> the file name up to the first "_".
"""

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from gipp_codec.decoder import render_parsed, render_parsed_uint8
from gipp_codec.entropy.gaussian_coder import encode_attributes
from gipp_codec.format.base_layer import upsample
from gipp_codec.format.constants import CH_BLUE, CH_GREEN, CH_RED
from gipp_codec.fit.config import QATConfig
from gipp_codec.format.container import parse_gimg
from gipp_codec.format.model import FloatGaussians, QuantizedGaussians
from gipp_codec.imageio import load_image
from gipp_codec.quant.dequant import dequantize, dequantize_rows
from precision_cost import coarsen
from tool_record import check_record_path, write_text_atomic

PROG = "colour_precision_by_size"

COLOUR = (CH_RED, CH_GREEN, CH_BLUE)
CG_ITERATIONS = 60  # conjugate-gradient steps of the least-squares colours
GN_STEPS = 3  # Gauss-Newton steps on the clamped error


def squared_error(parsed, means, covs, colors, reference: np.ndarray) -> float:
    """Mean squared error (8-bit levels) of the file rendered with these float Gaussians
    (means [N, 2], covs [N, 3], colors [N, 3]) and the file's own base layer and convention."""
    h, w = reference.shape[:2]
    floats = FloatGaussians(w, h, means, covs, colors)
    out = render_parsed_uint8(dataclasses.replace(parsed, gaussians=floats))  # [H, W, 3] uint8
    return float(np.mean((out.astype(np.float64) - reference.astype(np.float64)) ** 2))


def psnr_of(mse: float) -> float:
    """PSNR (dB) of a mean squared error in 8-bit levels."""
    return float("inf") if mse <= 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def continuous_colours(parsed, means, covs, colors, rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """colors [N, 3] with the Gaussians ``rows`` given continuous colours that bring the
    clamped render closer to the image for the fixed geometry, the other Gaussians' render
    and the base layer held as a background: Gauss-Newton on the clamped squared error
    (each step the least squares over the pixels whose render lies strictly inside (0, 1),
    where the clamp passes changes on), the best of the file's colours and GN_STEPS steps."""
    import torch

    from gipp_codec.fit.color_refit import _cg, normal_equations
    from gipp_codec.render.cpu import render_cpu

    h, w = reference.shape[:2]
    others = np.setdiff1d(np.arange(means.shape[0]), rows)

    def tensors(idx):  # (means, covs, colors) of the rows idx as tensors
        return tuple(torch.from_numpy(np.ascontiguousarray(x[idx])) for x in (means, covs, colors))

    with torch.no_grad():
        background = render_cpu(*tensors(others), h, w).float()  # [H, W, 3]
    if parsed.base is not None:
        background = background + torch.from_numpy(upsample(parsed.base, w, h))
    image = torch.from_numpy(reference.astype(np.float32) / 255.0)  # [H, W, 3]
    m, c, x = tensors(rows)

    def render(cols):  # the decoder's float render with these group colours: [H, W, 3]
        with torch.no_grad():
            return render_cpu(m, c, cols, h, w).float() + background

    v = render(x)
    best, best_error = x, float(torch.sum((v.clamp(0.0, 1.0) - image) ** 2))
    for _ in range(GN_STEPS):
        mask = ((v > 0.0) & (v < 1.0)).float()
        apply_normal, rhs = normal_equations(render_cpu, m, c, image - background, mask)
        x = _cg(apply_normal, rhs, x, torch.ones_like(rhs), CG_ITERATIONS)
        v = render(x)
        error = float(torch.sum((v.clamp(0.0, 1.0) - image) ** 2))
        if error < best_error:
            best, best_error = x, error
    out = colors.copy()
    out[rows] = best.numpy()
    return out


def group_at_depth(g: QuantizedGaussians, rows: np.ndarray, delta: int):
    """(q [M, 8], scales [8], offsets [8], bits [8]) of the Gaussians ``rows`` with their colour
    grid ``delta`` (-1, 0 or +1) bits from the file's: one bit coarser as ``coarsen`` makes it
    (the merged bins' centres), one bit finer with step / 2 from the same offset (q -> 2 q,
    the same colours)."""
    sub = QuantizedGaussians(g.width, g.height, g.bits, g.q[rows], g.scales, g.offsets, g.correlation)
    if delta < 0:
        return coarsen(sub, COLOUR, -delta)
    q = sub.q.astype(np.int64).copy()
    s, o, bits = sub.scales.astype(np.float64).copy(), sub.offsets.astype(np.float64).copy(), list(sub.bits.per_channel())
    for j in COLOUR:
        q[:, j] <<= delta
        s[j] /= 1 << delta
        bits[j] += delta
    return q, s.astype(np.float32), o.astype(np.float32), bits


def with_group(means, covs, colors, rows: np.ndarray, q, scales, offsets, correlation: bool = False):
    """Copies of (means [N, 2], covs [N, 3], colors [N, 3]) with the Gaussians ``rows`` dequantized
    from the integers q [M, 8] with these scales and offsets [8] (``correlation``: payload
    coding 3's b)."""
    values = dequantize_rows(q, scales, offsets, correlation)  # [M, 8]
    m2, c2, k2 = means.copy(), covs.copy(), colors.copy()
    m2[rows], c2[rows], k2[rows] = values[:, 0:2], values[:, 2:5], values[:, 5:8]
    return m2, c2, k2


def payload_bits(q, scales, offsets, bits) -> int:
    """Bits of the payload of q [M, 8] coded on its own (gimg's coder) at per-channel depths ``bits``."""
    payload, _, _ = encode_attributes(q, tuple(bits), scales, offsets)
    return 8 * len(payload)


def searched_arm(parsed, g: QuantizedGaussians, rows: np.ndarray, means, covs, colors, reference: np.ndarray,
                 delta: int, sweeps: int, rate_weight: float) -> tuple[float, int]:
    """(mean squared error, payload bits of the group coded on its own) after the encoder's code
    search (``search_codes``, every channel of the group's Gaussians, the others and the base
    layer held; the rate priced as the encoder prices it at ``rate_weight``, from the group's
    own codes) from the group's codes on the grid ``delta`` bits from the file's."""
    from gipp_codec.fit.code_search import search_codes
    from gipp_codec.fit.rate_proxy import RATE_CHANNEL_SETS

    h, w = reference.shape[:2]
    q, s, o, bits = group_at_depth(g, rows, delta)
    start = with_group(means, covs, colors, rows, q, s, o, g.correlation)
    render = render_parsed(dataclasses.replace(parsed, gaussians=FloatGaussians(w, h, *start)))  # [H, W, 3]
    target = reference.astype(np.float32) / np.float32(255.0)
    qat = QATConfig()
    codes, _ = search_codes(q, s, o, tuple(bits), render, target, sweeps, rate_weight=rate_weight,
                            rate_channels=tuple(RATE_CHANNEL_SETS[qat.rate_channels]), residuals=qat.rate_color_residuals)
    return squared_error(parsed, *with_group(means, covs, colors, rows, codes, s, o, g.correlation), reference), \
        payload_bits(codes, s, o, bits)


def study(path: Path, images: Path, groups: int, search_sweeps: int = 0) -> dict:
    """One colour bit less, and continuous colours, group by group, for one file."""
    data = path.read_bytes()
    parsed = parse_gimg(data)
    g = parsed.gaussians
    if not isinstance(g, QuantizedGaussians):
        raise SystemExit(f"{path}: a float32 file has no quantization to study")
    if int(parsed.header["render_convention"]) != 2:
        raise SystemExit(f"{path}: render convention {parsed.header['render_convention']}; the least squares "
                         "render in the encoder's convention 2")
    reference, _ = load_image(images / (path.name.split("_")[0] + ".png"))
    means, covs, colors = dequantize(g)  # [N, 2], [N, 3], [N, 3]
    det = covs[:, 0].astype(np.float64) * covs[:, 2] - covs[:, 1].astype(np.float64) ** 2  # [N]
    order = np.argsort(np.sqrt(np.maximum(det, 0.0)), kind="stable")  # small to broad
    mse0 = squared_error(parsed, means, covs, colors, reference)
    everything = np.arange(g.count)
    mse_all = squared_error(parsed, means, covs, continuous_colours(parsed, means, covs, colors, everything, reference),
                            reference)
    file_bits = 8 * len(data)
    weight = QATConfig().rate_weight_at(file_bits / (g.width * g.height))  # the encoder's at the file's rate
    out = {"file": str(path), "gaussians": int(g.count), "colour_bits": int(g.bits.per_channel()[CH_GREEN]),
           "bytes": len(data), "psnr": psnr_of(mse0), "headroom_all": psnr_of(mse_all) - psnr_of(mse0), "groups": []}
    for k, rows in enumerate(np.array_split(order, groups)):
        coarse = group_at_depth(g, rows, -1)
        mse_coarse = squared_error(parsed, *with_group(means, covs, colors, rows, *coarse[:3], g.correlation), reference)
        mse_cont = squared_error(parsed, means, covs, continuous_colours(parsed, means, covs, colors, rows, reference),
                                 reference)
        share = 100.0 * (payload_bits(*group_at_depth(g, rows, 0)) - payload_bits(*coarse)) / file_bits  # % of the file
        d_drop = psnr_of(mse_coarse) - psnr_of(mse0)
        out["groups"].append({"group": k, "sqrt_det_median": float(np.median(np.sqrt(np.maximum(det[rows], 0.0)))),
                              "delta_psnr_drop": d_drop, "file_pct_saved": share,
                              "db_per_pct_drop": -d_drop / share if share > 0 else float("nan"),
                              "headroom": psnr_of(mse_cont) - psnr_of(mse0)})
        if search_sweeps:
            arms = {d: searched_arm(parsed, g, rows, means, covs, colors, reference, d, search_sweeps, weight)
                    for d in (0, -1, 1)}
            (e0, b0), (ec, bc), (ef, bf) = arms[0], arms[-1], arms[1]
            out["groups"][-1].update({
                "psnr_searched": psnr_of(e0),
                "delta_psnr_drop_searched": psnr_of(ec) - psnr_of(e0), "file_pct_saved_searched": 100.0 * (b0 - bc) / file_bits,
                "delta_psnr_add_searched": psnr_of(ef) - psnr_of(e0), "file_pct_spent_searched": 100.0 * (bf - b0) / file_bits})
    return out


def group_means(rows: list, k: int) -> dict:
    """Each figure of group ``k``, averaged over the files' studies ``rows``."""
    cs = [r["groups"][k] for r in rows]
    return {key: float(np.mean([c[key] for c in cs])) for key in cs[0] if key != "group"}


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--images", type=Path, required=True, help="folder of the reference PNGs")
    ap.add_argument("--groups", type=int, default=4, help="equal groups by size (default 4)")
    ap.add_argument("--search", type=int, default=0, metavar="SWEEPS",
                    help="also measure one bit less and one more after the code search (this many sweeps; 0: not)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.groups < 1:
        ap.error("--groups must be at least 1")
    references = [args.images / (p.name.split("_")[0] + ".png") for p in args.files]  # the images it reads
    check_record_path(PROG, args.json, [*args.files, *references])
    rows = []
    for path in args.files:
        r = study(path, args.images, args.groups, args.search)
        rows.append(r)
        print(f"{path.name}: N={r['gaussians']}, colours {r['colour_bits']} bits, {r['psnr']:.3f} dB, "
              f"{r['bytes']} bytes; every colour continuous {r['headroom_all']:+.3f} dB", flush=True)
        for c in r["groups"]:
            print(f"  group {c['group']} (median sqrt(det) {c['sqrt_det_median']:.2f} px^2): one bit less "
                  f"{c['delta_psnr_drop']:+.3f} dB for {c['file_pct_saved']:.2f} % of the file "
                  f"({c['db_per_pct_drop']:.3f} dB per %); continuous colours {c['headroom']:+.3f} dB", flush=True)
            if args.search:
                print(f"    searched: one bit less {c['delta_psnr_drop_searched']:+.3f} dB for "
                      f"{c['file_pct_saved_searched']:.2f} % saved; one bit more {c['delta_psnr_add_searched']:+.3f} dB "
                      f"for {c['file_pct_spent_searched']:.2f} % spent", flush=True)
    print(f"\nMean over {len(rows)} files (group 0 the smallest Gaussians); every colour continuous: "
          f"{np.mean([r['headroom_all'] for r in rows]):+.3f} dB\n")
    print("| group | median sqrt(det) (px²) | one bit less: PSNR | file saved | dB per % | continuous colours: PSNR |")
    print("|---|---|---|---|---|---|")
    for k in range(args.groups):
        mean = group_means(rows, k)
        print(f"| {k} | {mean['sqrt_det_median']:.2f} | {mean['delta_psnr_drop']:+.3f} dB | "
              f"{mean['file_pct_saved']:.2f} % | {mean['db_per_pct_drop']:.3f} | {mean['headroom']:+.3f} dB |")
    if args.search:
        print(f"\nAfter the code search ({args.search} sweeps, the encoder's rate term), against the group searched at "
              "the file's depth:\n")
        print("| group | one bit less: PSNR | file saved | dB per % | one bit more: PSNR | file spent | dB per % |")
        print("|---|---|---|---|---|---|---|")
        for k in range(args.groups):
            mean = group_means(rows, k)
            saved, spent = mean["file_pct_saved_searched"], mean["file_pct_spent_searched"]
            print(f"| {k} | {mean['delta_psnr_drop_searched']:+.3f} dB | {saved:.2f} % | "
                  f"{-mean['delta_psnr_drop_searched'] / saved:.3f} | {mean['delta_psnr_add_searched']:+.3f} dB | "
                  f"{spent:.2f} % | {mean['delta_psnr_add_searched'] / spent:.3f} |")
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("colour_precision_by_size", main))
