#!/usr/bin/env python3
"""A/B ``gimg encode`` between two git revisions, interleaved run by run.

    python tools/encode_ab.py IMAGE.png --a REV [--b REV] [--bpp 0.5] [--iterations 1500]
        [--rounds 2] [--a-args "ARGS"] [--b-args "ARGS"] [--json OUT]

Checks out both revisions as temporary worktrees, and runs
``python -m gipp_codec encode IMAGE OUT --bpp B --iterations K --json`` with each tree first
on PYTHONPATH (each with its own numba cache, warmed by one untimed encode; ``--a-args`` and
``--b-args`` add options to each side's ``encode``, so that one revision can be timed
against itself with other settings), alternating
a, b, a, b, ... so that both see the same machine load. Reports each run's time as the
encoder measured it (``seconds``), the whole process's wall time (``process_seconds``:
interpreter start and imports too), PSNR, bpp, N and the start of the file's sha256, the
ratio of the medians b / a, and whether every run wrote the same file. The JSON record
names the commit each revision was.

Everything is checked before a worktree is made (``check_inputs``): ``--rounds`` and
``--iterations`` (at least 1), ``--bpp`` (in (0, 64]), ``--a-args`` / ``--b-args`` (they
must split as shell words), the image (it must load with ``gipp_codec.imageio.load_image``),
``--json`` (writable, not the image) and both revisions. Bad input is one line and a
non-zero exit; an encode that fails later prints only its ``gimg: error:`` line.
"""

import argparse
import hashlib
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROG = "encode_ab"
sys.path.insert(0, str(ROOT / "tools"))

from tool_guard import fail, guarded, one_line  # noqa: E402
from revisions import add_worktrees, remove_worktrees, resolve_revisions  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402


def error_line(stderr: str) -> str:
    """The one line to show of a failed encode's stderr: its last ``gimg: error:`` line (or
    ``gimg encode: error:``, argparse's form), else its last line that is not the worker's
    own ``MODULE`` line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("MODULE ")]
    errors = [line for line in lines if re.match(r"gimg( [\w-]+)?: error: ", line)]
    return (errors or lines or ["the encode failed with no message"])[-1]


def encode_once(tree: Path, image: Path, out: Path, bpp: float, iterations: int, extra: tuple = ()) -> dict:
    """One encode with the code of ``tree`` (``extra``: more ``gimg encode`` options); the
    encoder's JSON facts plus the module path used."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(tree / ".numba_cache")}
    cmd = [sys.executable, "-c", "import gipp_codec, runpy, sys; print('MODULE', gipp_codec.__file__, file=sys.stderr);"
           "sys.argv = ['gimg'] + sys.argv[1:]; runpy.run_module('gipp_codec', run_name='__main__')",
           "encode", str(image), str(out), "--bpp", str(bpp), "--iterations", str(iterations), "--json", *extra]
    start = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
    process_seconds = time.perf_counter() - start
    if run.returncode != 0:
        print(error_line(run.stderr), file=sys.stderr)
        raise SystemExit(1)
    module = next(line.split(" ", 1)[1] for line in run.stderr.splitlines() if line.startswith("MODULE "))
    if not Path(module).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"the encode with {tree} imported {module}, not that tree's code")
    facts = json.loads(run.stdout.strip().splitlines()[-1])
    return {**{k: facts[k] for k in ("seconds", "psnr", "bpp", "gaussians")}, "process_seconds": process_seconds,
            "sha256": hashlib.sha256(out.read_bytes()).hexdigest()[:16]}


def check_inputs(args) -> tuple[dict, dict]:
    """Everything checkable before a worktree is made (module docstring); exits with one line
    on bad input, else returns ({"a": a's extra encode options, "b": ...}, {"a": a's short
    commit, "b": ...})."""
    from gipp_codec.encoder import MAX_BPP
    from gipp_codec.errors import GimgError
    from gipp_codec.imageio import load_image

    for name, value in (("--rounds", args.rounds), ("--iterations", args.iterations)):
        if value < 1:
            fail(PROG, f"{name} {value}: must be at least 1")
    if not 0 < args.bpp <= MAX_BPP:  # NaN fails too
        fail(PROG, f"--bpp {args.bpp:g}: must be more than 0 and at most {MAX_BPP:g}")
    extra = {}
    for k, text in (("a", args.a_args), ("b", args.b_args)):
        try:
            extra[k] = tuple(shlex.split(text))
        except ValueError as exc:
            fail(PROG, f"--{k}-args {text!r}: {exc}")
    if not args.image.exists():
        raise SystemExit(f"{args.image}: no such image file")
    try:
        load_image(args.image)
    except GimgError as exc:
        fail(PROG, one_line(exc), 1)
    check_record_path(PROG, args.json, [args.image])
    commits = resolve_revisions(PROG, {"a": args.a, "b": args.b})
    return extra, commits


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", type=Path)
    ap.add_argument("--a", required=True, help="baseline revision")
    ap.add_argument("--b", default="HEAD", help="revision to compare (default HEAD)")
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--iterations", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--a-args", default="", help="more gimg encode options for a, one string")
    ap.add_argument("--b-args", default="", help="more gimg encode options for b, one string")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    extra, commits = check_inputs(args)
    image = args.image.resolve()
    runs = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        try:
            add_worktrees(PROG, Path(tmp), {"a": args.a, "b": args.b}, trees)
            print(f"{PROG}: warming a and b up (one untimed encode each)", file=sys.stderr, flush=True)
            for k in ("a", "b"):  # warm numba's caches, untimed
                encode_once(trees[k], image, Path(tmp) / f"warm_{k}.gimg", args.bpp, min(args.iterations, 200),
                            extra[k])
            for r in range(args.rounds):
                for k in ("a", "b"):
                    facts = encode_once(trees[k], image, Path(tmp) / f"{k}_{r}.gimg", args.bpp, args.iterations,
                                        extra[k])
                    runs[k].append(facts)
                    print(f"round {r + 1} {k} ({args.a if k == 'a' else args.b}): {facts['seconds']:.1f} s "
                          f"(process {facts['process_seconds']:.1f} s), {facts['psnr']:.2f} dB, "
                          f"{facts['bpp']:.4f} bpp, N = {facts['gaussians']}, sha256 {facts['sha256']}", flush=True)
        finally:
            remove_worktrees(trees)
    med = {k: statistics.median(r["seconds"] for r in runs[k]) for k in runs}
    med_process = {k: statistics.median(r["process_seconds"] for r in runs[k]) for k in runs}
    same_file = len({r["sha256"] for k in runs for r in runs[k]}) == 1
    print(f"median seconds: a {med['a']:.2f}, b {med['b']:.2f}; b / a = {med['b'] / med['a']:.2f}")
    print(f"median process seconds: a {med_process['a']:.2f}, b {med_process['b']:.2f}; "
          f"b / a = {med_process['b'] / med_process['a']:.2f}")
    print("files: " + ("all runs wrote the same file" if same_file else "the runs wrote different files"))
    if args.json:
        record = {"image": str(args.image), "a": args.a, "b": args.b, "commits": commits,
                  "a_args": list(extra["a"]), "b_args": list(extra["b"]), "bpp": args.bpp,
                  "iterations": args.iterations, "runs": runs, "median_seconds": med, "ratio": med["b"] / med["a"],
                  "median_process_seconds": med_process, "process_ratio": med_process["b"] / med_process["a"],
                  "same_file": same_file}
        write_text_atomic(args.json, json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(guarded(PROG, main))
