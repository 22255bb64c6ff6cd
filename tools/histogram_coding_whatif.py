"""What cheaper ways of choosing or sending the token histograms would save, a what-if on
finished .gimg files.

Payload codings 1 to 3 send one histogram per stream and context (spec §5.6): ``ntok`` and
then every token's level as a signed exp-Golomb step from the one before. On a 192 x 128
image those levels are 4-9 % of the file (BENCHMARKS.md §5, "What the streams' side
information costs"). This tool takes each file's own tokens, contexts and (k, m) and prices
every context four ways, ``ntok`` left out of all (each would still send it):

    static     = the tokens' information content under the file's model + the level steps
    relevelled = the same with the levels searched for the lowest price (below): an
                 encoder-only change, every decoder reads such a file
    strided    = the best of strides s in 1, 2, 4, 8: levels sent only at tokens 0, s, 2s, ...
                 and the last one, the others interpolated, e_(p0+j) = e0 + floor(((e1 - e0)
                 * 2j + d) / 2d) between knots p0 and p1 = p0 + d (rounded linear in the level,
                 so geometric in the count); the knots' steps + the tokens under the
                 interpolated model, the knot levels searched, + 2 bits a context for s
                 (s = 1 is the relevelled price + 2): a format change
    shared     = the cheaper of the context's own histogram (static) and the model of an
                 earlier context of the file with as many tokens, named by its distance back
                 (ue), + 1 bit a context (a flag saying which): a format change

The search starts from the file's levels (s = 1) or from the level of the mean count around
each knot (s > 1) and moves one level by +-1 while that lowers the price (at most four
sweeps), so its prices are what an encoder could reach, not bounds. At stride 1, on a file
written with the counts' nearest levels (before the seventy-second session), this is the
search the encoder itself now runs (``cost_kernels.priced_levels``), here in a general
form for knots. Prints, per file, each
way's total change against the static one as a share of the file. Nothing is written.

    python tools/histogram_coding_whatif.py FILE.gimg ... [--json OUT]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.entropy.bitio import se_length, ue_bits  # noqa: E402
from gipp_codec.entropy.models import MAX_LEVEL, choose_levels, level_count, model_cost_bits  # noqa: E402
from gipp_codec.errors import GimgError  # noqa: E402
from gipp_codec.format.container import parse_gimg  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "histogram_coding_whatif"
STRIDES = (1, 2, 4, 8)
STRIDE_CODE_BITS = 2  # which of the four strides
_LEVEL_COUNTS = level_count(np.arange(MAX_LEVEL + 1))  # [48]: COUNT(e)


def step_bits(levels: np.ndarray) -> int:
    """Bits of the signed exp-Golomb steps that send ``levels`` [n] (the first from 0)."""
    return int(se_length(np.diff(np.asarray(levels, np.int64), prepend=0)).sum())


def levels_of_counts(counts: np.ndarray) -> np.ndarray:
    """The transmitted level e of each of a model's integer counts [n] (COUNT(e) = count)."""
    idx = np.searchsorted(_LEVEL_COUNTS[1:], counts) + 1  # COUNT is increasing from e = 1
    return np.where(np.asarray(counts) == 0, 0, idx).astype(np.int64)


def knots(ntok: int, stride: int) -> np.ndarray:
    """Token indices whose levels a stride sends: 0, s, 2s, ... and the last one, ntok - 1."""
    pos = list(range(0, ntok, stride))
    if pos[-1] != ntok - 1:
        pos.append(ntok - 1)
    return np.array(pos, np.int64)


def interpolated_levels(knot_pos: np.ndarray, knot_levels: np.ndarray) -> np.ndarray:
    """Levels of every token [knot_pos[-1] + 1] from the knots' (module docstring's rule)."""
    out = np.empty(int(knot_pos[-1]) + 1, np.int64)
    for a in range(len(knot_pos) - 1):
        p0, p1 = int(knot_pos[a]), int(knot_pos[a + 1])
        e0, e1, d = int(knot_levels[a]), int(knot_levels[a + 1]), p1 - p0
        j = np.arange(d, dtype=np.int64)
        out[p0:p1] = e0 + ((e1 - e0) * 2 * j + d) // (2 * d)
    out[-1] = knot_levels[-1]
    return out


def searched_price(start: np.ndarray, pos: np.ndarray, tokens: np.ndarray) -> float:
    """The lowest price found (the knots' steps + the tokens under the interpolated model)
    from knot levels ``start`` at token indices ``pos`` (``knots``), moving one level by +-1
    at a time (at most four sweeps; module docstring)."""
    def price(lv):
        model = level_count(interpolated_levels(pos, lv))
        if not model.any():
            return np.inf
        return step_bits(lv) + model_cost_bits(model, tokens)

    lv = np.asarray(start, np.int64).copy()
    best = price(lv)
    for _ in range(4):
        moved = False
        for i in range(lv.size):
            for step in (-1, 1):
                trial = lv.copy()
                trial[i] = min(max(trial[i] + step, 0), MAX_LEVEL)
                cost = price(trial)
                if cost < best - 1e-9:
                    best, lv, moved = cost, trial, True
        if not moved:
            break
    return best


def strided_bits(counts: np.ndarray, tokens: np.ndarray, stride: int) -> float:
    """The searched price of one context sent at ``stride`` (module docstring), without the
    stride code; at stride 1 the relevelled price, never above the static one."""
    pos = knots(counts.size, stride)
    if stride == 1:
        return searched_price(levels_of_counts(counts), pos, tokens)
    hist = np.bincount(tokens, minlength=counts.size).astype(np.float64)  # [ntok]
    half = stride // 2
    start = np.array([choose_levels(np.array([hist[max(0, p - half):p + half + 1].mean()]))[0] for p in pos], np.int64)
    return searched_price(start, pos, tokens)


def static_bits(counts: np.ndarray, tokens: np.ndarray) -> float:
    """The file's own price of one context: the tokens under its model + its level steps."""
    return model_cost_bits(counts, tokens) + step_bits(levels_of_counts(counts))


def file_whatif(data: bytes) -> dict:
    """Per-file totals (bits): static, strided (each context's best stride), shared."""
    parsed = parse_gimg(data)
    streams = parsed.accounting_inputs[2]
    if not streams:
        raise GimgError("not an entropy-coded file (float32 attribute mode, or no Gaussians)")
    contexts = [(counts, np.asarray(tokens, np.int64)) for name, sb in streams.items() if not name.startswith("_")
                for counts, tokens in sb.coded]  # contexts with two or more tokens, in coding order
    static = relevelled = strided = shared = 0.0
    strides_used = {s: 0 for s in STRIDES}
    shared_used = 0
    for j, (counts, tokens) in enumerate(contexts):
        prices = {s: strided_bits(counts, tokens, s) for s in STRIDES}
        own = static_bits(counts, tokens)
        static += own
        relevelled += prices[1]
        best_stride = min(STRIDES, key=prices.__getitem__)
        strides_used[best_stride] += 1
        strided += prices[best_stride] + STRIDE_CODE_BITS
        borrowed = min((model_cost_bits(contexts[i][0], tokens) + ue_bits(j - i - 1)
                        for i in range(j) if contexts[i][0].size == counts.size), default=np.inf)
        shared += min(own, borrowed) + 1.0
        shared_used += borrowed < own
    file_bits = 8 * len(data)
    return {"gaussians": int(parsed.header["gaussian_count"]), "file_bits": file_bits, "contexts": len(contexts),
            "static": round(static, 1), "relevelled": round(relevelled, 1), "strided": round(strided, 1),
            "shared": round(shared, 1), "strides_used": {str(s): n for s, n in strides_used.items()},
            "shared_contexts": int(shared_used),
            "relevelled_change_percent": round(100.0 * (relevelled - static) / file_bits, 3),
            "strided_change_percent": round(100.0 * (strided - static) / file_bits, 3),
            "shared_change_percent": round(100.0 * (shared - static) / file_bits, 3)}


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, metavar="FILE.gimg")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json, args.files)
    rows = []
    print(f"{'file':24s} {'N':>6s} {'file bits':>10s} {'ctx':>4s} {'static':>9s} {'relevelled':>10s} {'change':>8s} "
          f"{'strided':>9s} {'change':>8s} {'strides 1/2/4/8':>16s} {'shared':>9s} {'change':>8s}")
    for path in args.files:
        try:
            row = file_whatif(path.read_bytes())
        except (OSError, GimgError) as exc:
            print(f"{PROG}: {path}: {exc}", file=sys.stderr)
            return 1
        rows.append({"file": str(path), **row})
        used = "/".join(str(row["strides_used"][str(s)]) for s in STRIDES)
        print(f"{path.name:24s} {row['gaussians']:6d} {row['file_bits']:10d} {row['contexts']:4d} {row['static']:9.1f} "
              f"{row['relevelled']:10.1f} {row['relevelled_change_percent']:+7.2f}% "
              f"{row['strided']:9.1f} {row['strided_change_percent']:+7.2f}% {used:>16s} {row['shared']:9.1f} "
              f"{row['shared_change_percent']:+7.2f}%")
    total_file = sum(r["file_bits"] for r in rows)
    for way in ("relevelled", "strided", "shared"):
        change = sum(r[way] - r["static"] for r in rows)
        mean_share = sum(r[f"{way}_change_percent"] for r in rows) / len(rows)
        print(f"all {len(rows)} files, {way}: {change:+.1f} bits, {100.0 * change / total_file:+.2f} % of their bits "
              f"(mean of the files' changes {mean_share:+.2f} %)")
    if args.json:
        write_text_atomic(args.json, json.dumps({"strides": list(STRIDES), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded(PROG, main))
