#!/usr/bin/env python3
"""Bits per Gaussian, per attribute, of .gimg files (and the mean over them).

    python tools/bits_report.py out/*.gimg [--json]

For quantized files it also prints the order-0 entropy of the decoded integers (an
ideal per-channel static coder with free histograms, in the files' own order) so the
gain of canonical ordering, prediction and contexts is visible, plus each stream's
chosen predictor/context configuration, and the order-0 entropy of red and blue as
residuals from green's prediction (the coder's CHANNEL predictor, spec §5.9): what QAT's
rate term prices them at with ``QATConfig.rate_color_residuals``; and the order-0 entropy
of b and green within the quartile contexts of the Gaussian's size q_a + q_c (the coder's
usual contexts for them); and the share of the files that the streams' side information
(their transmitted histograms and configurations) takes.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gipp_codec.entropy.gaussian_coder import channel_prediction
from gipp_codec.errors import GimgError
from gipp_codec.format import parse_gimg

ATTRS = ("position", "a", "b", "c", "red", "green", "blue")


def _entropy(values: np.ndarray) -> float:
    """Order-0 entropy (bits per value) of integers [N]."""
    _, counts = np.unique(np.asarray(values, np.int64), return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def residual_bits(q: np.ndarray, bits: tuple, scales, offsets) -> dict:
    """Order-0 entropy (bits per Gaussian) of red and blue of q [N, 8] less their prediction
    from green (``channel_prediction``, the coder's CHANNEL predictor)."""
    q = np.asarray(q, np.int64)
    return {name: _entropy(q[:, j] - channel_prediction(q[:, 6], 6, j, scales, offsets, (1 << bits[j]) - 1))
            for j, name in ((5, "red"), (7, "blue"))}


def size_context_bits(q: np.ndarray, bits: tuple) -> dict:
    """Entropy (bits per Gaussian) of b and green of q [N, 8] within the contexts of the
    Gaussian's size q_a + q_c split at its quartiles, as the coder's candidates split them
    (``gaussian_coder._threshold_candidates``): the sum over contexts of each context's share
    times its order-0 entropy."""
    from gipp_codec.entropy.gaussian_coder import _threshold_candidates

    q = np.asarray(q, np.int64)
    size = q[:, 2] + q[:, 4]  # [N]
    thresholds = (_threshold_candidates(size, 2 * ((1 << bits[2]) - 1), (4,)) or [()])[0]
    ctx = np.searchsorted(np.asarray(thresholds, np.int64), size, side="right")
    return {name: sum(_entropy(q[ctx == c, j]) * float(np.mean(ctx == c)) for c in np.unique(ctx))
            for j, name in ((3, "b"), (6, "green"))}


def order0_bits(q: np.ndarray) -> dict:
    """Order-0 entropy (bits per Gaussian) of each attribute of q [N, 8]; position = x + y."""
    h = _entropy
    cols = {name: h(q[:, j]) for j, name in enumerate(("x", "y", "a", "b", "c", "red", "green", "blue"))}
    out = {"position": cols.pop("x") + cols.pop("y"), **cols}
    out["total"] = sum(out.values())
    return out


def report(path: Path) -> dict:
    parsed = parse_gimg(path.read_bytes())
    b = parsed.bits
    n = b["gaussians"]
    row = {"file": str(path), "gaussians": n, "bpp": parsed.info()["bpp"], "bytes": b["total_bits"] // 8}
    if n:
        row["per_gaussian"] = {a: b["attributes"][a] / n for a in ATTRS}
        row["per_gaussian"]["overhead"] = (b["coding_overhead"] + b["container"] + b["metadata"]) / n
        row["per_gaussian"]["total"] = b["total_bits"] / n
        if hasattr(parsed.gaussians, "q"):
            g = parsed.gaussians
            row["order0_per_gaussian"] = order0_bits(np.asarray(g.q))
            row["residual0_per_gaussian"] = residual_bits(g.q, g.bits.per_channel(), g.scales, g.offsets)
            row["size_context0_per_gaussian"] = size_context_bits(g.q, g.bits.per_channel())
        row["streams"] = b.get("streams", {})
        # the streams' side information (histograms and configurations), inside the columns above
        row["side_bits"] = float(sum(st.get("side", 0) for st in row["streams"].values()))
        row["side_share"] = row["side_bits"] / b["total_bits"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = ap.parse_args(argv)
    rows = []
    for f in args.files:
        try:
            rows.append(report(Path(f)))
        except (GimgError, OSError) as exc:
            print(f"{f}: error: {exc}", file=sys.stderr)
            return 2
    keys = ATTRS + ("overhead", "total")
    with_n = [r for r in rows if r["gaussians"]]
    mean = {k: float(np.mean([r["per_gaussian"][k] for r in with_n])) for k in keys} if with_n else {}
    o0 = [r["order0_per_gaussian"] for r in with_n if "order0_per_gaussian" in r]
    mean_o0 = {k: float(np.mean([r[k] for r in o0])) for k in o0[0]} if o0 else {}
    res = [r["residual0_per_gaussian"] for r in with_n if "residual0_per_gaussian" in r]
    mean_res = {k: float(np.mean([r[k] for r in res])) for k in res[0]} if res else {}
    sized = [r["size_context0_per_gaussian"] for r in with_n if "size_context0_per_gaussian" in r]
    mean_sized = {k: float(np.mean([r[k] for r in sized])) for k in sized[0]} if sized else {}
    if args.json:
        print(json.dumps({"files": rows, "mean_per_gaussian": mean, "mean_order0_per_gaussian": mean_o0,
                          "mean_residual0_per_gaussian": mean_res, "mean_size_context0_per_gaussian": mean_sized}))
        return 0
    print(f"{'file':40s} {'N':>7s} {'bpp':>7s} " + " ".join(f"{k:>8s}" for k in keys))
    for r in rows:
        if not r["gaussians"]:
            print(f"{Path(r['file']).name:40s} {0:7d} {r['bpp']:7.4f}")
            continue
        pg = r["per_gaussian"]
        print(f"{Path(r['file']).name:40s} {r['gaussians']:7d} {r['bpp']:7.4f} " + " ".join(f"{pg[k]:8.3f}" for k in keys))
        if args.files and len(args.files) == 1:
            for name, cfg in r["streams"].items():
                print(f"    {name:8s} {cfg}")
    if mean:
        print(f"{'mean bits/Gaussian':40s} {'':7s} {'':7s} " + " ".join(f"{mean[k]:8.3f}" for k in keys))
    if mean_o0:
        print(f"{'order-0 entropy (no headers), same data':40s} {'':7s} {'':7s} "
              + " ".join(f"{mean_o0.get(k, 0.0):8.3f}" for k in ATTRS) + f" {'':8s} {mean_o0['total']:8.3f}")
    if mean_res:
        print("order-0 entropy of red and blue less green's prediction: "
              + ", ".join(f"{k} {v:.3f}" for k, v in mean_res.items()))
    if mean_sized:
        print("order-0 entropy of b and green within the quartile contexts of q_a + q_c: "
              + ", ".join(f"{k} {v:.3f}" for k, v in mean_sized.items()))
    sided = [r for r in with_n if "side_bits" in r]
    if sided:
        print(f"side information (the streams' histograms and configurations, inside the columns above): mean "
              f"{np.mean([r['side_bits'] / r['gaussians'] for r in sided]):.3f} bits/Gaussian, "
              f"{100 * np.mean([r['side_share'] for r in sided]):.2f} % of a file "
              f"(range {100 * min(r['side_share'] for r in sided):.2f} to {100 * max(r['side_share'] for r in sided):.2f} %)")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("bits_report", main))
