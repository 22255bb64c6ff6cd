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

Everything is checked before a worktree is made (``check_inputs``): both revisions, every
file (it must exist and parse as a .gimg file), ``--rounds`` and ``--calls`` (at least 1),
and ``--json`` (writable, not one of the files). Bad input is one ``decode_ab: error:`` line
and a non-zero exit; so is a worker that fails to start. Progress goes to stderr.
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
PROG = "decode_ab"
sys.path.insert(0, str(ROOT / "tools"))

from tool_guard import fail, guarded, one_line  # noqa: E402
from revisions import add_worktrees, remove_worktrees, resolve_revisions  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402


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


def check_inputs(args) -> dict:
    """Everything checkable before a worktree is made (module docstring); exits with one line
    on bad input, else returns the short commit of each revision {"a": ..., "b": ...}."""
    from gipp_codec.decoder import read_input_file
    from gipp_codec.errors import FormatError, GimgError
    from gipp_codec.format.container import parse_gimg

    for name, value in (("--rounds", args.rounds), ("--calls", args.calls)):
        if value < 1:
            fail(PROG, f"{name} {value}: must be at least 1")
    for f in args.files:
        try:
            parse_gimg(read_input_file(f))
        except FormatError as exc:
            fail(PROG, f"{f}: not a valid .gimg file ({one_line(exc)})", 1)
        except GimgError as exc:  # missing, a folder, unreadable
            fail(PROG, one_line(exc), 1)
    check_record_path(PROG, args.json, args.files)
    commits = resolve_revisions(PROG, {"a": args.a, "b": args.b})
    return commits


def _last_line(text: str) -> str:
    """The last non-empty line of ``text`` (a worker's stderr: the message of its error)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def start_worker(tree: Path, files: list[Path], err_file) -> tuple[subprocess.Popen, dict]:
    """A worker process on the code of ``tree`` (its stderr to ``err_file``, a file open for
    reading and writing); returns it and its greeting (module path, output digests). A
    worker that fails before its greeting is one line and exit 1."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(tree / ".numba_cache")}
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, json.dumps([str(f) for f in files])], env=env,
                            cwd=tree, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err_file, text=True)
    line = proc.stdout.readline()
    try:
        greeting = json.loads(line)
    except json.JSONDecodeError:
        proc.wait()
        err_file.seek(0)
        fail(PROG, f"the worker for {tree.name} failed to start (exit {proc.returncode}): {_last_line(err_file.read())}",
              1)
    if not Path(greeting["module"]).resolve().is_relative_to(tree.resolve()):
        fail(PROG, f"the worker for {tree} imported {greeting['module']}, not that tree's code", 1)
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
    commits = check_inputs(args)
    files = [f.resolve() for f in args.files]
    times = {(k, s): [[] for _ in files] for k in ("a", "b") for s in ("decode", "parse")}
    with tempfile.TemporaryDirectory() as tmp:
        trees, workers, greetings = {}, {}, {}
        errs = {k: tempfile.TemporaryFile("w+") for k in ("a", "b")}
        try:
            add_worktrees(PROG, Path(tmp), {"a": args.a, "b": args.b}, trees)
            for k in ("a", "b"):
                workers[k], greetings[k] = start_worker(trees[k], files, errs[k])
            print(f"{PROG}: workers ready; {args.rounds} rounds", file=sys.stderr, flush=True)
            for r in range(args.rounds):
                for k in (("a", "b") if r % 2 == 0 else ("b", "a")):
                    workers[k].stdin.write(f"{args.calls}\n")
                    workers[k].stdin.flush()
                    line = workers[k].stdout.readline()
                    try:
                        answer = json.loads(line)
                    except json.JSONDecodeError:
                        workers[k].wait()
                        errs[k].seek(0)
                        fail(PROG, f"the worker for {k} failed in round {r + 1} (exit {workers[k].returncode}): "
                              f"{_last_line(errs[k].read())}", 1)
                    for i, t in enumerate(answer):
                        for s in ("decode", "parse"):
                            times[(k, s)][i].append(t[s])
                if (r + 1) % 10 == 0 or r + 1 == args.rounds:
                    print(f"{PROG}: round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        finally:
            for proc in workers.values():
                try:
                    proc.stdin.close()
                except OSError:  # a worker that died: its pipe is broken
                    pass
                proc.wait()
            for err in errs.values():
                err.close()
            remove_worktrees(trees)
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
        write_text_atomic(args.json, json.dumps({"a": args.a, "b": args.b, "commits": commits, "rounds": args.rounds,
                                               "calls": args.calls, "rows": rows}, indent=1))
    return 0 if all(r["same_pixels"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(guarded(PROG, main))
