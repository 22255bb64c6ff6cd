#!/usr/bin/env python3
"""How many bits per Gaussian would neighbour contexts save? (a what-if for a future
payload coding; codings 1 and 2 use channels of the same Gaussian and, in coding 2, the
crowding of the cells around it and a + c as contexts)

    python tools/context_headroom.py FILE.gimg [FILE.gimg ...]

For each file, with the coder's own cost model (HybridUint tokens, transmitted
histograms, raw bits; ``gaussian_coder._context_cost``) and the best (k, m) per case:
- position gaps: one context vs contexts from the mean log2 of the previous 4 gaps;
- a, c and green (predictor "none"): one context vs contexts from the previous
  Gaussian's value in Morton order, and from log2 of the Gaussian's own Morton gap
  (averaged with the previous one).
- a, c and green also from the 2D spacing of the decoded positions: the distance to the
  4th nearest neighbour (a and c), and the number of Gaussians in the 3x3 block of square
  cells (side 2^g position units, g = 4, 5, 6) around the Gaussian's cell, an integer a
  decoder gets from one histogram of the decoded positions;
- b (zigzag residual from its median): one context, the contexts coding v1 can use
  (c in 4 classes), and contexts from a + c (log of the area, which bounds |b|) in 8 or
  16 classes; and b coded inside the interval that a*c > b*b leaves it once a and c are
  decoded (its relative place in K equal bins, ideal cost -log2 p(bin) + log2(values in
  the bin), plus 8 bits per transmitted bin count; an estimate, not the coder's cost
  model).
Every saving is counted against what the file's own coding spent on that stream (its
chosen predictor and contexts, side information included).
Contexts are quantile splits into 2 to 16 classes (the thresholds would be transmitted;
their few bits are ignored here). Prints bits per Gaussian per case and the mean saving,
twice: over every case, and over the cases a batch decoder could adopt as they
are ("batch" cases: contexts computable from already decoded streams with integer
arithmetic, so each context's symbols can still be decoded together). The previous-value
and last-4-gaps contexts depend on the stream being decoded (symbol-by-symbol decoding),
and the PD interval needs exp() to agree bit for bit between decoders, so they are not.
"""

import argparse
import sys

import numpy as np

from gipp_codec.entropy import gaussian_coder as gc
from gipp_codec.entropy.streams import cell_counts
from gipp_codec.format.constants import CH_A, CH_B, CH_C, CH_GREEN, CH_X, CH_Y
from gipp_codec.format.container import parse_gimg

GRID = tuple((k, m) for k, m in gc._KM_GRID if k <= 10)


def cost_per_gaussian(u: np.ndarray, ctx: np.ndarray) -> float:
    """Bits per value to code u [N] split by ctx [N] (ints from 0), best (k, m) for all contexts."""
    classes = int(ctx.max()) + 1
    best = min(sum(gc._context_cost(u[ctx == c], k, m)[0] for c in range(classes)) for k, m in GRID)
    return best / u.size


def quantile_classes(v: np.ndarray, parts: int) -> np.ndarray:
    """Context class [N] of each value: which of ``parts`` quantile bins it falls in."""
    thr = np.unique(np.quantile(v, np.arange(1, parts) / parts))
    return np.searchsorted(thr, v, side="right")


def spacing(qx: np.ndarray, qy: np.ndarray, k: int = 4) -> np.ndarray:
    """Distance [N] (position units) from each Gaussian to its k-th nearest neighbour."""
    xy = np.stack([qx, qy], axis=1).astype(np.float64)  # [N, 2]
    out = np.empty(xy.shape[0])
    for s in range(0, xy.shape[0], 512):
        d2 = ((xy[s:s + 512, None, :] - xy[None, :, :]) ** 2).sum(-1)  # [chunk, N]
        out[s:s + 512] = np.sqrt(np.partition(d2, k, axis=1)[:, k])  # column 0 is the point itself
    return out


# cases a decoder can use without decoding symbol by symbol and with integer arithmetic only
BATCH_CASES = ("one context", "c x4", "Morton gap x2", "Morton gap x4", "cell count",
               "a + c x8", "a + c x16")


def is_batch(case: str) -> bool:
    """True for the cases a batch decoder could adopt as they are (see the docstring)."""
    return case.startswith(BATCH_CASES)


def headroom(path: str) -> dict:
    """Bits per Gaussian with and without neighbour contexts, per stream, for one file."""
    parsed = parse_gimg(open(path, "rb").read())
    q = parsed.gaussians.q.astype(np.int64)  # [N, 8], Morton order
    n = q.shape[0]
    morton = gc.morton_encode(q[:, CH_X], q[:, CH_Y])
    gaps = np.diff(morton, prepend=np.uint64(0))  # [N]
    lg = np.log2(gaps.astype(np.float64) + 1.0)
    prev4 = np.convolve(np.r_[np.repeat(lg[0], 4), lg], np.ones(4) / 4, mode="valid")[:n]  # mean of 4 before
    own_prev_gap = (lg + np.r_[lg[0], lg[:-1]]) / 2
    one = np.zeros(n, np.int64)
    space = spacing(q[:, CH_X], q[:, CH_Y])
    out = {"file": path, "gaussians": n, "streams": {},
           "coded": {name: bits / n for name, bits in parsed.bits["attributes"].items()}}
    base = cost_per_gaussian(gaps, one)
    out["streams"]["position"] = {"one context": base,
                                  **{f"last-4-gaps x{p}": cost_per_gaussian(gaps, quantile_classes(prev4, p))
                                     for p in (2, 4)}}
    for ch, name in ((CH_A, "a"), (CH_C, "c"), (CH_GREEN, "green")):
        col = q[:, ch]
        prev = np.r_[col[0], col[:-1]]
        u = col.astype(np.uint64)
        row = {"one context": cost_per_gaussian(u, one)}
        for p in (2, 4):
            row[f"previous value x{p}"] = cost_per_gaussian(u, quantile_classes(prev, p))
            row[f"Morton gap x{p}"] = cost_per_gaussian(u, quantile_classes(own_prev_gap, p))
        if ch in (CH_A, CH_C):
            row["2D spacing x4"] = cost_per_gaussian(u, quantile_classes(np.log(space + 1.0), 4))
        for g in (4, 5, 6):
            cells = cell_counts(q[:, CH_X], q[:, CH_Y], g)
            for p in (3, 4):
                row[f"cell count g{g} x{p}"] = cost_per_gaussian(u, quantile_classes(cells, p))
        out["streams"][name] = row
    ub = gc.zigzag(q[:, CH_B] - int(np.median(q[:, CH_B])))
    area = q[:, CH_A] + q[:, CH_C]
    g = parsed.gaussians
    out["streams"]["b"] = {"one context": cost_per_gaussian(ub, one),
                           "c x4": cost_per_gaussian(ub, quantile_classes(q[:, CH_C], 4)),
                           **{f"a + c x{p}": cost_per_gaussian(ub, quantile_classes(area, p)) for p in (8, 16)},
                           **{f"PD interval x{k}": pd_interval_cost(q, g.scales, g.offsets, g.bits.covariance, k)
                              for k in (8, 16)}}
    return out


def pd_interval_cost(q: np.ndarray, scales, offsets, bits_b: int, bins: int) -> float:
    """Estimated bits per Gaussian for b [N] coded inside the grid interval [lo, hi] where the
    dequantized a*c > b*b holds (known to a decoder once a and c are decoded): the relative
    place (q_b - lo + 0.5) / (hi - lo + 1) in ``bins`` equal bins with transmitted counts
    (8 bits each), then uniform within the bin."""
    s = np.asarray(scales, np.float32).astype(np.float64)
    o = np.asarray(offsets, np.float32).astype(np.float64)
    log_ac = q[:, CH_A] * s[CH_A] + o[CH_A] + q[:, CH_C] * s[CH_C] + o[CH_C]
    bound = np.exp(0.5 * log_ac)  # sqrt(a*c)
    top = (1 << bits_b) - 1
    lo = np.clip(np.ceil((-bound - o[CH_B]) / s[CH_B]), 0, top)
    hi = np.clip(np.floor((bound - o[CH_B]) / s[CH_B]), lo, top)
    qb = np.clip(q[:, CH_B], lo, hi)  # a stored b outside (never, for a valid file) is charged as its end
    width = hi - lo + 1
    place = np.minimum(((qb - lo + 0.5) / width * bins).astype(np.int64), bins - 1)
    p = np.bincount(place, minlength=bins) / q.shape[0]
    in_bin = np.maximum(np.floor((place + 1) * width / bins) - np.floor(place * width / bins), 1)
    return float(np.mean(-np.log2(p[place]) + np.log2(in_bin)) + 8 * bins / q.shape[0])


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    savings, batch_savings = [], []
    for path in args.files:
        res = headroom(path)
        print(f"{path}: N = {res['gaussians']}")
        total = batch_total = 0.0
        for name, row in res["streams"].items():
            base = res["coded"][name]  # what the file's own coding spent on this stream
            best_case, best = min(((k, v) for k, v in row.items()), key=lambda kv: kv[1])
            batch_case, batch_best = min(((k, v) for k, v in row.items() if is_batch(k)), key=lambda kv: kv[1])
            total += max(0.0, base - best)  # a revision keeps the file coding's own options
            batch_total += max(0.0, base - batch_best)
            cells = ", ".join(f"{k} {v:.3f}" for k, v in row.items())
            print(f"  {name:8s} as coded {base:.3f}, {cells}  -> best saves {base - best:.3f} ({best_case}); "
                  f"batch {base - batch_best:.3f} ({batch_case})")
        print(f"  total saving {total:.3f} bits per Gaussian, batch cases only {batch_total:.3f}")
        savings.append(total)
        batch_savings.append(batch_total)
    if len(savings) > 1:
        print(f"mean saving over {len(savings)} files: {np.mean(savings):.3f} bits per Gaussian, "
              f"batch cases only {np.mean(batch_savings):.3f}")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("context_headroom", main))
