#!/usr/bin/env python3
"""A/B the whole in-process decode (``gipp_codec.decoder.decode``) of two git revisions.

    python tools/decode_ab.py FILE.gimg [FILE.gimg ...] --a REV [--b REV] [--rounds 40]
        [--calls 5] [--json OUT]

Checks out both revisions as temporary worktrees and starts one worker process per
revision, each importing that tree's ``gipp_codec`` (its own numba cache) and decoding
every file once untimed. Then, round by round, each worker in turn (the order alternating
between rounds) decodes each file ``--calls`` times back to back and reports the median of
those calls, so that both revisions see the same machine load. Prints per file the
median over the rounds of each revision's time (ms), the ratio b / a, and parse time
(``parse_gimg``: parsing, entropy decoding; no render) measured the same way; and checks
that both revisions decode every file to the same pixels. The JSON record names the
commit each revision was.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The worker: reads one JSON command per line on stdin, answers one JSON line on stdout.
_WORKER = r"""
import hashlib, json, statistics, sys, time
import gipp_codec
from gipp_codec.decoder import decode
from gipp_codec.format.container import parse_gimg
files = [open(p, "rb").read() for p in json.loads(sys.argv[1])]
digests = [hashlib.sha256(decode(d).tobytes()).hexdigest() for d in files]  # compiles and warms
print(json.dumps({"module": gipp_codec.__file__, "digests": digests}), flush=True)
for line in sys.stdin:
    calls = int(line)
    out = []
    for d in files:
        times = {}
        for name, fn in (("decode", decode), ("parse", parse_gimg)):
            ts = []
            for _ in range(calls):
                t = time.perf_counter()
                fn(d)
                ts.append(time.perf_counter() - t)
            times[name] = statistics.median(ts)
        out.append(times)
    print(json.dumps(out), flush=True)
"""


def start_worker(tree: Path, files: list[Path]) -> tuple[subprocess.Popen, dict]:
    """A worker process on the code of ``tree``; returns it and its greeting (module path,
    output digests)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(tree / ".numba_cache")}
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps([str(f) for f in files])], env=env,
                            cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    greeting = json.loads(proc.stdout.readline())
    if not Path(greeting["module"]).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the worker for {tree} imported {greeting['module']}, not that tree's code")
    return proc, greeting


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--a", required=True, help="baseline revision")
    ap.add_argument("--b", default="HEAD", help="revision to compare (default HEAD)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--calls", type=int, default=5, help="decodes per file and round (their median is kept)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    files = [f.resolve() for f in args.files]
    commits = {k: subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout.strip() for k, rev in (("a", args.a), ("b", args.b))}
    times = {(k, s): [[] for _ in files] for k in ("a", "b") for s in ("decode", "parse")}
    with tempfile.TemporaryDirectory() as tmp:
        trees, workers, greetings = {}, {}, {}
        for k, rev in (("a", args.a), ("b", args.b)):
            trees[k] = Path(tmp) / k
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(trees[k]), rev], cwd=ROOT, check=True)
        try:
            for k in ("a", "b"):
                workers[k], greetings[k] = start_worker(trees[k], files)
            for r in range(args.rounds):
                for k in (("a", "b") if r % 2 == 0 else ("b", "a")):
                    workers[k].stdin.write(f"{args.calls}\n")
                    workers[k].stdin.flush()
                    for i, t in enumerate(json.loads(workers[k].stdout.readline())):
                        for s in ("decode", "parse"):
                            times[(k, s)][i].append(t[s])
        finally:
            for proc in workers.values():
                proc.stdin.close()
                proc.wait()
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    rows = []
    for i, f in enumerate(files):
        med = {f"{s}_{k}_ms": 1000 * statistics.median(times[(k, s)][i]) for k in ("a", "b") for s in ("decode", "parse")}
        rows.append({"file": str(f), **med, "decode_ratio": med["decode_b_ms"] / med["decode_a_ms"],
                     "parse_ratio": med["parse_b_ms"] / med["parse_a_ms"],
                     "same_pixels": greetings["a"]["digests"][i] == greetings["b"]["digests"][i]})
    print(f"a = {args.a} ({commits['a']}), b = {args.b} ({commits['b']}); medians over {args.rounds} rounds "
          f"of the median of {args.calls} calls")
    print("| file | decode a / b ms | b / a | parse a / b ms | b / a | same pixels |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {Path(r['file']).name} | {r['decode_a_ms']:.2f} / {r['decode_b_ms']:.2f} | {r['decode_ratio']:.3f} "
              f"| {r['parse_a_ms']:.2f} / {r['parse_b_ms']:.2f} | {r['parse_ratio']:.3f} | {r['same_pixels']} |")
    if len(rows) > 1:
        print(f"| median | | {statistics.median(r['decode_ratio'] for r in rows):.3f} | "
              f"| {statistics.median(r['parse_ratio'] for r in rows):.3f} | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"a": args.a, "b": args.b, "commits": commits, "rounds": args.rounds,
                                               "calls": args.calls, "rows": rows}, indent=1))
    return 0 if all(r["same_pixels"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
