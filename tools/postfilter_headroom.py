#!/usr/bin/env python3
"""What a transmitted linear post-filter (a Wiener filter, as in video codecs' adaptive loop
filters) would gain on finished files, what its coefficients would cost, and what applying
it would add to the decode time. A what-if: the format has no such filter.

    python tools/postfilter_headroom.py FILE.gimg IMAGE.png [FILE.gimg IMAGE.png ...] [--json OUT]

For each file the decoder's float render is clamped to [0, 1] (the filter's input, as a
decoder would apply it before rounding) and, per filter shape, the coefficients minimising
the squared error against the image are solved by least squares on the file's own image,
rounded to ``--frac-bits`` fractional bits (as a file would carry them), applied, and the
8-bit result scored. The shapes, each point-symmetric (zero phase) with a constant term:

- ``shared5``: one 5 x 5 filter for all three channels (14 numbers);
- ``chan5``: a 5 x 5 filter per channel (42 numbers);
- ``chan7``: a 7 x 7 filter per channel (78 numbers);
- ``class4_chan5``: a 5 x 5 filter per channel for each of four classes of local activity
  (the decoded luma gradient's quartiles, as an adaptive loop filter classifies; 168 numbers).

The cost is counted at ``--coef-bits`` bits a number, as a share of the file's size. The
time is a numba kernel applying ``chan5`` to the image, against the in-process warm decode
of the same file (median of ``--repeats``).
"""

import argparse
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.decoder import decode, decode_float  # noqa: E402
from gipp_codec.imageio import load_image  # noqa: E402
from rd_lib import time_call  # noqa: E402
from tool_record import check_record_path, write_record  # noqa: E402


def symmetric_offsets(radius: int) -> list[tuple[int, int]]:
    """The (dy, dx) taps of a point-symmetric square filter of ``radius``: the centre first,
    then one of each pair (d, -d)."""
    offsets = [(0, 0)]
    for dy in range(0, radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy, dx) != (0, 0) and (dy > 0 or dx > 0):
                offsets.append((dy, dx))
    return offsets


def tap_features(plane: np.ndarray, offsets: list[tuple[int, int]]) -> np.ndarray:
    """Features [H*W, len(offsets) + 1] float64 of one plane [H, W]: per tap the sum of the
    pair of edge-padded neighbours (the centre once), then a constant 1."""
    h, w = plane.shape
    r = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    padded = np.pad(plane, r, mode="edge")
    columns = []
    for dy, dx in offsets:
        near = padded[r + dy:r + dy + h, r + dx:r + dx + w]
        columns.append(near if (dy, dx) == (0, 0) else near + padded[r - dy:r - dy + h, r - dx:r - dx + w])
    columns.append(np.ones((h, w)))
    return np.stack([c.ravel() for c in columns], 1)


def solve_rounded(features: np.ndarray, target: np.ndarray, frac_bits: int) -> np.ndarray:
    """Least-squares coefficients [F] of features [P, F] for target [P], rounded to a grid of
    2^-frac_bits."""
    coef, *_ = np.linalg.lstsq(features, target, rcond=None)
    step = 2.0 ** -frac_bits
    return np.round(coef / step) * step


def psnr_8bit(values: np.ndarray, image: np.ndarray) -> float:
    """PSNR (dB) of float values [H, W, 3] in [0, 1] units, rounded as the decoder rounds,
    against image [H, W, 3] uint8."""
    levels = np.floor(np.clip(values, 0.0, 1.0) * 255.0 + 0.5)
    return float(10.0 * np.log10(255.0 ** 2 / np.mean((levels - image.astype(np.float64)) ** 2)))


def activity_classes(render: np.ndarray) -> np.ndarray:
    """Class [H*W] in 0..3 of each pixel: the quartile of the luma's gradient magnitude
    (|vertical| + |horizontal| central differences) of render [H, W, 3]."""
    luma = render.mean(axis=2)
    grad = np.zeros_like(luma)
    grad[1:-1, 1:-1] = np.abs(luma[2:, 1:-1] - luma[:-2, 1:-1]) + np.abs(luma[1:-1, 2:] - luma[1:-1, :-2])
    return np.digitize(grad, np.quantile(grad, [0.25, 0.5, 0.75])).ravel()


def filtered(render: np.ndarray, target: np.ndarray, shape: str, frac_bits: int) -> tuple[np.ndarray, int]:
    """(render [H, W, 3] filtered by the least-squares filter ``shape``, the count of numbers
    the filter takes) for target [H, W, 3] in [0, 1] units."""
    h, w, _ = render.shape
    radius = 3 if shape == "chan7" else 2
    offsets = symmetric_offsets(radius)
    feats = [tap_features(render[..., c], offsets) for c in range(3)]  # 3 x [H*W, F]
    out = np.empty_like(render)
    if shape == "shared5":
        coef = solve_rounded(np.concatenate(feats, 0), target.transpose(2, 0, 1).ravel(), frac_bits)
        for c in range(3):
            out[..., c] = (feats[c] @ coef).reshape(h, w)
        return out, coef.size
    if shape == "class4_chan5":
        classes = activity_classes(render)
        count = 0
        for c in range(3):
            plane, goal = np.empty(h * w), target[..., c].ravel()
            for k in range(4):
                rows = classes == k
                coef = solve_rounded(feats[c][rows], goal[rows], frac_bits)
                plane[rows] = feats[c][rows] @ coef
                count += coef.size
            out[..., c] = plane.reshape(h, w)
        return out, count
    count = 0
    for c in range(3):
        coef = solve_rounded(feats[c], target[..., c].ravel(), frac_bits)
        out[..., c] = (feats[c] @ coef).reshape(h, w)
        count += coef.size
    return out, count


@numba.njit(parallel=True, cache=True)
def _apply5(render, coef):  # render [H, W, 3] float32, coef [3, 14] float32 -> [H, W, 3]
    h, w, _ = render.shape
    out = np.empty_like(render)
    for j in numba.prange(h):
        for i in range(w):
            for c in range(3):
                acc = coef[c, 13] + coef[c, 0] * render[j, i, c]
                t = 1
                for dy in range(0, 3):
                    for dx in range(-2, 3):
                        if dy == 0 and dx <= 0:
                            continue
                        ja, ia = min(max(j + dy, 0), h - 1), min(max(i + dx, 0), w - 1)
                        jb, ib = min(max(j - dy, 0), h - 1), min(max(i - dx, 0), w - 1)
                        acc += coef[c, t] * (render[ja, ia, c] + render[jb, ib, c])
                        t += 1
                out[j, i, c] = acc
    return out


def measure(gimg_path: str, image_path: str, frac_bits: int, coef_bits: int, repeats: int) -> dict:
    """One file's PSNR gains (dB) and costs (share of the file) per shape, and the times."""
    data = Path(gimg_path).read_bytes()
    image, _ = load_image(image_path)  # uint8 [H, W, 3]
    render = np.clip(decode_float(data).astype(np.float64), 0.0, 1.0)  # [H, W, 3]
    target = image.astype(np.float64) / 255.0
    base = psnr_8bit(render, image)
    row = {"file": gimg_path, "bpp": len(data) * 8 / (image.shape[0] * image.shape[1]), "psnr": base}
    for shape in ("shared5", "chan5", "chan7", "class4_chan5"):
        out, count = filtered(render, target, shape, frac_bits)
        row[shape] = {"gain_db": psnr_8bit(out, image) - base, "numbers": count,
                      "rate_share": count * coef_bits / 8.0 / len(data)}
    render32 = render.astype(np.float32)
    coef = np.zeros((3, 14), np.float32)
    coef[:, 0] = 1.0
    row["decode_s"] = time_call(lambda: decode(data), repeats, warmup=1)[1]  # median seconds
    row["filter_s"] = time_call(lambda: _apply5(render32, coef), repeats, warmup=1)[1]
    return row


def main(argv=None) -> None:
    """Parse FILE IMAGE pairs, print one line per file and the means, write the record."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pairs", nargs="+", help="FILE.gimg IMAGE.png, repeated")
    ap.add_argument("--frac-bits", type=int, default=10, help="fractional bits of each coefficient")
    ap.add_argument("--coef-bits", type=int, default=12, help="bits a coefficient would take in a file")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    check_record_path("postfilter_headroom", args.json, args.pairs)  # before any work
    if len(args.pairs) % 2:
        ap.error("give FILE.gimg IMAGE.png pairs")
    rows = []
    for gimg_path, image_path in zip(args.pairs[::2], args.pairs[1::2]):
        row = measure(gimg_path, image_path, args.frac_bits, args.coef_bits, args.repeats)
        rows.append(row)
        cells = " ".join(f"{s} {row[s]['gain_db']:+.3f} dB / {100 * row[s]['rate_share']:.2f} %"
                         for s in ("shared5", "chan5", "chan7", "class4_chan5"))
        print(f"{Path(gimg_path).name}: {row['bpp']:.4f} bpp, {row['psnr']:.3f} dB; {cells}; "
              f"decode {1e3 * row['decode_s']:.1f} ms, chan5 filter {1e3 * row['filter_s']:.1f} ms", flush=True)
    for s in ("shared5", "chan5", "chan7", "class4_chan5"):
        gains = [r[s]["gain_db"] for r in rows]
        shares = [r[s]["rate_share"] for r in rows]
        print(f"mean {s}: {np.mean(gains):+.3f} dB (min {min(gains):+.3f}), {100 * np.mean(shares):.2f} % of the file")
    ratio = [r["filter_s"] / r["decode_s"] for r in rows]
    print(f"chan5 filter time / decode time: mean {np.mean(ratio):.2f} (max {max(ratio):.2f})")
    if args.json:
        write_record(args.json, rows)


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("postfilter_headroom", main))
