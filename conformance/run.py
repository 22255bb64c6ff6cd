#!/usr/bin/env python3
"""Check a .gimg decoder against the conformance vectors of manifest.json.

    python conformance/run.py                                  # our CLI: gimg decode {input} {output}
    python conformance/run.py --decoder "mydec {input} {output}"
    python conformance/run.py --decoder "python conformance/reference_decoder.py {input} {output}"
    python conformance/run.py --in-process --check-attributes  # our library, no subprocesses

Valid vectors: the decoder must exit 0 and write a PNG of 8-bit samples (grey, RGB,
palette, or with an alpha channel that is fully opaque) within the vector's tolerance (max
absolute and RMS error in 8-bit levels) of the expected image. Invalid vectors: it must
exit non-zero (not killed by a signal) and leave no output file. Each vector is handed to
the decoder as a copy in a temporary folder, so a decoder that writes to its input cannot
damage the suite; a decoder that changes or removes its input fails that vector. A decoder
runs with standard input closed, in a process group of its own that is killed when it
times out or exits (stray children included). ``--check-attributes`` also checks, with
gipp_codec's parser, the SHA-256 of the decoded integers of valid vectors and the error
class of invalid ones. ``--json FILE`` writes every vector's result.

Exit status: 0 if every vector passed, 1 if any failed, 2 for a bad command line or
manifest, 130 when interrupted.
"""

import argparse
import fnmatch
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 300
STDERR_KEEP = 64 * 1024  # bytes of a decoder's stderr read back for its last line
OPAQUE_MODES = {"LA": "L", "RGBA": "RGB", "PA": "P"}  # modes with alpha -> the mode without it
EIGHT_BIT_MODES = {"L", "RGB", "P"}


class UsageError(Exception):
    """A bad command line or manifest: reported in one line, exit status 2."""


@dataclass
class DecoderRun:
    """What one decoder run did: its exit status, the signal that killed it, whether it
    timed out or could not start, and the last line of its standard error."""

    returncode: int | None = None
    signal: int | None = None
    timed_out: bool = False
    start_error: str = ""
    last_line: str = ""

    def failure(self) -> str | None:
        """Why the run counts as broken whatever the vector (None when it ended by itself)."""
        if self.start_error:
            return f"cannot run the decoder: {self.start_error}"  # _run_suite stops on it at once
        if self.timed_out:
            return "timed out"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = "unknown signal"
            return f"killed by signal {self.signal} ({name})" + (f": {self.last_line}" if self.last_line else "")
        return None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the decoder's process group (the decoder and anything it started)."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    else:  # pragma: no cover - not POSIX
        proc.kill()


def _last_line(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - STDERR_KEEP))
        lines = f.read().decode("utf-8", "replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def parse_template(template: str) -> list[str]:
    """Split a decoder command template into arguments; it must name {input} and {output}."""
    try:
        args = shlex.split(template)
    except ValueError as exc:
        raise UsageError(f"--decoder: cannot split the command ({exc})") from None
    joined = " ".join(args)
    missing = [k for k in ("{input}", "{output}") if k not in joined]
    if not args or missing:
        raise UsageError(f"--decoder must name {' and '.join(missing) or 'a command'}: {template!r}")
    return args


def run_decoder(args: list[str], inp: Path, out: Path, timeout_s: float, work: Path) -> DecoderRun:
    """Run the decoder command (arguments with {input}/{output}) on one vector."""
    argv = [a.replace("{input}", str(inp)).replace("{output}", str(out)) for a in args]
    err_path = work / "stderr.txt"
    result = DecoderRun()
    with open(err_path, "wb") as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=hasattr(os, "killpg"))
        except (OSError, ValueError) as exc:
            result.start_error = str(exc)
            return result
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            result.timed_out = True
        finally:
            _kill_group(proc)  # also stray children of a decoder that has exited
            proc.wait()
    if not result.timed_out:
        if proc.returncode < 0:
            result.signal = -proc.returncode
        else:
            result.returncode = proc.returncode
    result.last_line = _last_line(err_path)
    return result


def run_in_process(inp: Path, out: Path) -> DecoderRun:
    """Decode with gipp_codec's library (exit status 2 for its errors, 1 for anything else)."""
    from gipp_codec.decoder import decode_file
    from gipp_codec.errors import GimgError

    try:
        decode_file(inp, out)
    except GimgError as exc:
        return DecoderRun(returncode=2, last_line=str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug in our decoder is a failed vector, not a crashed suite
        return DecoderRun(returncode=1, last_line=f"{type(exc).__name__}: {exc}")
    return DecoderRun(returncode=0)


def load_output(path: Path, width: int, height: int) -> tuple[np.ndarray | None, str | None]:
    """The decoder's output as int64 RGB [H, W, 3], or (None, why it is not acceptable). The
    size is checked before any pixel is read."""
    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                return None, f"output is not a PNG ({im.format or 'unknown format'})"
            if im.size != (width, height):
                return None, f"output is {im.size[0]}x{im.size[1]}, expected {width}x{height}"
            if getattr(im, "n_frames", 1) != 1:
                return None, "output is an animated PNG"
            mode = im.mode
            if mode not in EIGHT_BIT_MODES and mode not in OPAQUE_MODES:
                return None, f"output has PNG mode {mode}; the suite compares 8-bit samples (spec §7)"
            im.load()
            if mode in OPAQUE_MODES:
                alpha = np.asarray(im.getchannel("A"))
                if alpha.size and int(alpha.min()) != 255:
                    return None, "output has transparent pixels"
            return np.asarray(im.convert("RGB"), dtype=np.int64), None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        return None, f"output is not a readable PNG ({exc})"


def _expected_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.int64)
    except OSError as exc:
        raise UsageError(f"cannot read the expected image {path}: {exc}") from None


def check_attributes(entry: dict, data: bytes) -> str | None:
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


def judge(kind: str, entry: dict, run: DecoderRun, out: Path, root: Path) -> tuple[str | None, dict]:
    """(problem or None, measured errors) of one decoder run on one vector."""
    measured = {}
    broken = run.failure()
    if kind == "invalid":
        if broken:
            return broken, measured
        if run.returncode == 0:
            return "accepted an invalid file (exit status 0)", measured
        if out.exists():
            return "left an output file behind", measured
        return None, measured
    if broken:
        return broken, measured
    if run.returncode != 0:
        return f"exit status {run.returncode}" + (f": {run.last_line}" if run.last_line else ""), measured
    if not out.exists():
        return "no output file", measured
    got, why = load_output(out, int(entry["width"]), int(entry["height"]))
    if why:
        return why, measured
    want = _expected_image(root / entry["expected"])
    diff = np.abs(got - want)
    mx = int(diff.max(initial=0))
    rms = float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0
    measured = {"max_abs": mx, "rms": round(rms, 6)}
    if mx > entry["max_abs"] or rms > entry["rms"]:
        return f"max abs {mx} (limit {entry['max_abs']}), rms {rms:.4f} (limit {entry['rms']})", measured
    return None, measured


def load_manifest(path: Path) -> dict:
    """The manifest, checked enough that the run cannot stop on a malformed entry."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"the manifest {path} is not valid JSON: {exc}") from None
    needs = {"valid": ("name", "input", "expected", "width", "height", "max_abs", "rms"),
             "invalid": ("name", "input")}
    if not isinstance(manifest, dict):
        raise UsageError(f"the manifest {path} is not a JSON object")
    for kind, keys in needs.items():
        entries = manifest.get(kind)
        if not isinstance(entries, list):
            raise UsageError(f"the manifest {path} has no list {kind!r}")
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or any(k not in e for k in keys):
                raise UsageError(f"the manifest {path}: {kind} entry {i} lacks one of {', '.join(keys)}")
    return manifest


def main(argv=None) -> int:
    """Run the suite; returns the exit status (0 passed, 1 failed, 2 usage, 130 interrupted)."""
    ap = argparse.ArgumentParser(description="Run the .gimg conformance suite against a decoder.")
    ap.add_argument("--decoder", default=f"{shlex.quote(sys.executable)} -m gipp_codec decode {{input}} {{output}}",
                    help="command template with {input} and {output} (default: our CLI)")
    ap.add_argument("--in-process", action="store_true", help="use gipp_codec.decoder directly (fast, no subprocess)")
    ap.add_argument("--check-attributes", action="store_true",
                    help="also check integer SHA-256s and error classes with gipp_codec's parser")
    ap.add_argument("--only", default="*", help="fnmatch pattern of vector names to run")
    ap.add_argument("--manifest", default=str(HERE / "manifest.json"))
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="S",
                    help=f"seconds a decoder may take on one vector (default {TIMEOUT_S})")
    ap.add_argument("--json", metavar="FILE", help="also write every vector's result to FILE as JSON")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    try:
        return _run_suite(args)
    except UsageError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
        return 130


def _run_suite(args) -> int:
    if not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    template = None if args.in_process else parse_template(args.decoder)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UsageError(f"--json {args.json}: no such folder")
    manifest_path = Path(args.manifest)
    manifest = load_manifest(manifest_path)
    root = manifest_path.parent
    chosen = [(kind, e) for kind in ("valid", "invalid") for e in manifest[kind]
              if fnmatch.fnmatch(str(e["name"]), args.only)]
    if not chosen:
        raise UsageError(f"no vector's name matches --only {args.only!r}")
    results = []
    with tempfile.TemporaryDirectory(prefix="gimg-conformance-") as tmp:
        for kind, entry in chosen:
            name = str(entry["name"])
            source = root / entry["input"]
            try:
                data = source.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read vector {name}: {exc.strerror or exc}") from None
            work = Path(tempfile.mkdtemp(dir=tmp))
            inp = work / Path(entry["input"]).name
            inp.write_bytes(data)
            out = work / "output.png"
            run = run_in_process(inp, out) if template is None else run_decoder(template, inp, out, args.timeout, work)
            if run.start_error:  # the same for every vector: a missing program, a bad path
                raise UsageError(f"cannot run the decoder: {run.start_error}")
            problem, measured = judge(kind, entry, run, out, root)
            if problem is None and args.check_attributes:
                problem = check_attributes(entry, data)
            if problem is None:
                try:
                    if inp.read_bytes() != data:
                        problem = "the input file was modified"
                except OSError:
                    problem = "the input file was removed"
            shutil.rmtree(work, ignore_errors=True)
            results.append({"name": name, "kind": kind, "passed": problem is None, "problem": problem, **measured})
            if problem is not None or args.verbose:
                status = "ok  " if problem is None else "FAIL"
                detail = f": {problem}" if problem else (
                    f": max abs {measured['max_abs']}, rms {measured['rms']:.4f}" if measured else "")
                print(f"{status} {kind:7s} {name}{detail}", flush=True)
    failed = sum(not r["passed"] for r in results)
    print(f"{len(results) - failed}/{len(results)} conformance vectors passed")
    if args.json:
        report = {"decoder": "in-process" if template is None else args.decoder, "passed": len(results) - failed,
                  "failed": failed, "vectors": results}
        try:
            Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write --json {args.json}: {exc.strerror or exc}") from None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
