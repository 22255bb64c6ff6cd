#!/usr/bin/env python3
"""Check a .gimg decoder against the conformance vectors of manifest.json.

    python conformance/run.py                                  # our CLI: gimg decode {input} {output}
    python conformance/run.py --decoder "mydec {input} {output}"
    python conformance/run.py --decoder "python conformance/reference_decoder.py {input} {output}"
    python conformance/run.py --in-process --check-attributes  # our library, no subprocesses

Valid vectors: the decoder must exit 0 and write a PNG within the vector's tolerance
(max absolute and RMS error in 8-bit levels) of the expected image. Invalid vectors: it
must exit non-zero and leave no output file. ``--check-attributes`` also checks, with
gipp_codec's parser, the SHA-256 of the decoded integers of valid vectors and the error
class of invalid ones. Exit status: 0 if everything passed, 1 otherwise.
"""

import argparse
import fnmatch
import io
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 300


def _load_png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int64)


def _run_command(template: str, inp: Path, out: Path) -> tuple[int, str]:
    args = [a.replace("{input}", str(inp)).replace("{output}", str(out)) for a in shlex.split(template)]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {TIMEOUT_S} s"
    except OSError as exc:
        return -2, f"cannot run decoder: {exc}"
    return proc.returncode, (proc.stderr.strip().splitlines() or [""])[-1]


def _run_in_process(inp: Path, out: Path) -> tuple[int, str]:
    from gipp_codec.decoder import decode_file
    from gipp_codec.errors import GimgError

    try:
        decode_file(inp, out)
    except GimgError as exc:
        return 2, str(exc)
    return 0, ""


def _check_attributes(entry: dict, data: bytes) -> str | None:
    """None if our parser agrees with the manifest, else a message."""
    from gipp_codec import errors
    from gipp_codec.format import parse_gimg

    sys.path.insert(0, str(HERE))
    from generate import attributes_sha256

    if "error" in entry:
        try:
            parse_gimg(data)
        except errors.FormatError as exc:
            if type(exc).__name__ != entry["error"]:
                return f"raised {type(exc).__name__} ({exc}), expected {entry['error']}"
            return None
        return f"parsed without error, expected {entry['error']}"
    sha = attributes_sha256(parse_gimg(data))
    return None if sha == entry["attributes_sha256"] else f"attribute sha256 {sha} != {entry['attributes_sha256']}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the .gimg conformance suite against a decoder.")
    ap.add_argument("--decoder", default=f"{shlex.quote(sys.executable)} -m gipp_codec decode {{input}} {{output}}",
                    help="command template with {input} and {output} (default: our CLI)")
    ap.add_argument("--in-process", action="store_true", help="use gipp_codec.decoder directly (fast, no subprocess)")
    ap.add_argument("--check-attributes", action="store_true",
                    help="also check integer SHA-256s and error classes with gipp_codec's parser")
    ap.add_argument("--only", default="*", help="fnmatch pattern of vector names to run")
    ap.add_argument("--manifest", default=str(HERE / "manifest.json"))
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    manifest_path = Path(args.manifest)
    root = manifest_path.parent
    manifest = json.loads(manifest_path.read_text())
    failures, count = [], 0
    with tempfile.TemporaryDirectory(prefix="gimg-conformance-") as tmp:
        for kind in ("valid", "invalid"):
            for entry in manifest[kind]:
                name = entry["name"]
                if not fnmatch.fnmatch(name, args.only):
                    continue
                count += 1
                inp = root / entry["input"]
                data_before = inp.read_bytes()
                out = Path(tmp) / f"{name}.png"
                if args.in_process:
                    rc, msg = _run_in_process(inp, out)
                else:
                    rc, msg = _run_command(args.decoder, inp, out)
                problem = None
                if kind == "valid":
                    if rc != 0:
                        problem = f"exit status {rc}: {msg}"
                    elif not out.exists():
                        problem = "no output file"
                    else:
                        got = _load_png(out.read_bytes())
                        want = _load_png((root / entry["expected"]).read_bytes())
                        if got.shape != want.shape:
                            problem = f"output shape {got.shape}, expected {want.shape}"
                        else:
                            diff = np.abs(got - want)
                            mx, rms = int(diff.max(initial=0)), float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0
                            if mx > entry["max_abs"] or rms > entry["rms"]:
                                problem = f"max abs {mx} (limit {entry['max_abs']}), rms {rms:.4f} (limit {entry['rms']})"
                            elif args.verbose:
                                print(f"  {name}: max abs {mx}, rms {rms:.4f}")
                else:
                    if rc == 0:
                        problem = "accepted an invalid file (exit status 0)"
                    elif rc < 0:
                        problem = msg
                    elif out.exists():
                        problem = "left an output file behind"
                if problem is None and args.check_attributes:
                    problem = _check_attributes(entry, data_before)
                if problem is None and inp.read_bytes() != data_before:
                    problem = "the input file was modified"
                if out.exists():
                    out.unlink()
                status = "ok  " if problem is None else "FAIL"
                if problem is not None or args.verbose:
                    print(f"{status} {kind:7s} {name}" + (f": {problem}" if problem else ""))
                if problem is not None:
                    failures.append(name)
    print(f"{count - len(failures)}/{count} conformance vectors passed")
    return 1 if failures or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
