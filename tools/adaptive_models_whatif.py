"""What adaptive token models would save, a what-if on finished .gimg files.

Payload codings 1 to 3 send one histogram per stream and context (spec §5.6) and code the
tokens with the static model it gives. An adaptive model sends nothing: both sides start
each context's counts at ``init`` for every token below the context's largest (whose
count, ``ntok``, would still be sent), add ``inc`` to a token's count after coding it, and
halve every count (rounding up) when their total passes ``limit`` (0: never). This tool
takes each file's own tokens, contexts and (k, m), and prices every context both ways:

    static   = the tokens' information content under the file's model + the histogram's
               level steps (the side bits §5.6 spends beyond ntok)
    adaptive = the tokens' ideal information content under the adaptive counts
    chosen   = min(static, adaptive) + 1 bit a context (a flag saying which)

and prints, per file, the chosen total against the static one as a share of the file.
The stream configurations (predictor, contexts, k, m) are the file's, chosen for static
models, so this understates what an encoder searching with adaptive prices would find;
the ideal adaptive cost leaves out a coder's fixed-point rounding (below 1e-5 of it at
24-bit precision). Nothing is written.

    python tools/adaptive_models_whatif.py FILE.gimg ... [--init 1 --inc 4 --limit 8192] [--json OUT]
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gipp_codec.entropy.bitio import se_length  # noqa: E402
from gipp_codec.entropy.models import choose_levels, model_cost_bits  # noqa: E402
from gipp_codec.errors import GimgError  # noqa: E402
from gipp_codec.format.container import parse_gimg  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "adaptive_models_whatif"


def adaptive_bits(tokens: np.ndarray, ntok: int, init: int, inc: int, limit: int) -> float:
    """Ideal information content (bits) of tokens [M] (each below ntok) under adaptive counts
    (module docstring)."""
    counts = np.full(ntok, float(init))  # [ntok]
    total = float(init) * ntok
    bits = 0.0
    for t in tokens.tolist():
        bits -= math.log2(counts[t] / total)
        counts[t] += inc
        total += inc
        if limit and total > limit:
            counts = np.floor((counts + 1.0) / 2.0)
            total = float(counts.sum())
    return bits


def static_bits(counts: np.ndarray, tokens: np.ndarray) -> float:
    """The file's static cost of one context: tokens under its model [ntok] + the level steps."""
    levels = choose_levels(np.bincount(tokens, minlength=counts.size))
    return model_cost_bits(counts, tokens) + float(se_length(np.diff(levels, prepend=0)).sum())


def file_whatif(data: bytes, init: int, inc: int, limit: int) -> dict:
    """Per-file totals (bits): static, chosen, adaptive-only, and the contexts that chose adaptive."""
    parsed = parse_gimg(data)
    streams = parsed.accounting_inputs[2]
    if not streams:
        raise GimgError("not an entropy-coded file (float32 attribute mode, or no Gaussians)")
    static = chosen = adaptive_only = 0.0
    contexts = picked = 0
    for name, sb in streams.items():
        if name.startswith("_"):
            continue
        for counts, tokens in sb.coded:  # contexts with two or more tokens (one-token ones cost nothing here)
            s = static_bits(counts, tokens)
            a = adaptive_bits(np.asarray(tokens, np.int64), counts.size, init, inc, limit)
            static += s
            adaptive_only += a
            chosen += min(s, a) + 1.0
            contexts += 1
            picked += a < s
    file_bits = 8 * len(data)
    return {"gaussians": int(parsed.header["gaussian_count"]), "file_bits": file_bits, "static": round(static, 1),
            "chosen": round(chosen, 1), "adaptive_only": round(adaptive_only, 1), "contexts": contexts,
            "adaptive_contexts": int(picked), "change_percent": round(100.0 * (chosen - static) / file_bits, 3)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path, metavar="FILE.gimg")
    ap.add_argument("--init", type=int, default=1, help="each token's starting count [default: 1]")
    ap.add_argument("--inc", type=int, default=4, help="added to a token's count once coded [default: 4]")
    ap.add_argument("--limit", type=int, default=8192, help="halve the counts past this total, 0 never [default: 8192]")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    if args.init < 1 or args.inc < 1 or args.limit < 0:
        ap.error("--init and --inc must be at least 1, --limit at least 0")
    check_record_path(PROG, args.json, args.files)
    rows = []
    print(f"init {args.init}, inc {args.inc}, limit {args.limit}")
    print(f"{'file':32s} {'N':>6s} {'file bits':>10s} {'static':>10s} {'chosen':>10s} {'adaptive':>9s} {'change':>8s}")
    for path in args.files:
        try:
            row = file_whatif(path.read_bytes(), args.init, args.inc, args.limit)
        except (OSError, GimgError) as exc:
            print(f"adaptive_models_whatif: {path}: {exc}", file=sys.stderr)
            return 1
        rows.append({"file": str(path), **row})
        print(f"{path.name:32s} {row['gaussians']:6d} {row['file_bits']:10d} {row['static']:10.1f} {row['chosen']:10.1f} "
              f"{row['adaptive_contexts']:4d}/{row['contexts']:<4d} {row['change_percent']:+7.2f}%")
    total_file = sum(r["file_bits"] for r in rows)
    change = sum(r["chosen"] - r["static"] for r in rows)
    mean_share = sum(r["change_percent"] for r in rows) / len(rows)
    print(f"all {len(rows)} files: {change:+.1f} bits, {100.0 * change / total_file:+.2f} % of their bits "
          f"(mean of the files' changes {mean_share:+.2f} %)")
    if args.json:
        write_text_atomic(args.json, json.dumps({"init": args.init, "inc": args.inc, "limit": args.limit, "rows": rows},
                                                indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("adaptive_models_whatif", main))
