#!/usr/bin/env python3
"""Check a .gimg decoder against the conformance vectors of manifest.json.

    python conformance/run.py                                  # our CLI: gimg decode {input} {output}
    python conformance/run.py --decoder "mydec {input} {output}"
    python conformance/run.py --decoder "python conformance/reference_decoder.py {input} {output}"
    python conformance/run.py --in-process --check-attributes  # our library, no subprocesses

Valid vectors: the decoder must exit 0 and write, as a regular file with no other name, a
whole PNG (every chunk's CRC right, IEND the last bytes of the file) of 8-bit samples (grey, RGB or palette with
its indices inside its PLTE, with no transparent pixel, whether by an alpha channel or a tRNS
chunk) within the vector's tolerance (max absolute and RMS error in 8-bit levels) of the
expected image. Invalid vectors: it must exit non-zero (not killed by a signal) and leave
nothing at the output path. Each vector is handed to the decoder as a copy in a temporary
folder, so a decoder that writes to its input cannot damage the suite; a decoder that
changes, removes or replaces its input fails that vector. A decoder runs with standard
input from /dev/null, in a process group of its own that is killed when it times out or
exits (children that left the group with setsid are beyond its reach), with the size of
any file it writes, its standard error included, limited (``output_limit``). Every file it
leaves is read without following links and only if it is a regular file, so a link, a
FIFO or a device fails the vector instead of stopping the run. ``--check-attributes`` also
checks, with gipp_codec's parser, the SHA-256 of the decoded integers of valid vectors and
the error class of invalid ones. ``--json FILE`` writes every vector's result.

Exit status: 0 if every vector passed, 1 if any failed, 2 for a bad command line or
manifest, 130 / 143 / 129 when stopped by SIGINT / SIGTERM / SIGHUP (the decoder's process
group killed and the temporary folder removed first).
"""

import argparse
import fnmatch
import io
import json
import numbers
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 300
STDERR_KEEP = 64 * 1024  # bytes of a decoder's stderr read back for its last line
LAST_LINE_CHARS = 200  # of that line, quoted in a FAIL line
OPAQUE_MODES = {"LA": "L", "RGBA": "RGB", "PA": "P"}  # modes with alpha -> the mode without it
EIGHT_BIT_MODES = {"L", "RGB", "P"}
MIN_OUTPUT_LIMIT = 64 << 20  # bytes
MAX_VECTOR_BYTES = 1 << 29  # the most a .gimg file within the spec's limits takes (gipp_codec.decoder)


class UsageError(Exception):
    """A bad command line or manifest: reported in one line, exit status 2."""


class Stopped(BaseException):
    """SIGTERM or SIGHUP reached the runner (raised from its handler, so that cleanup runs; a
    BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def output_limit(width: int, height: int) -> int:
    """The most bytes a decoder may write to one file on a width x height vector: 64 MiB, or
    16 bytes a pixel (an uncompressed 16-bit RGBA image twice over) where that is more."""
    return max(MIN_OUTPUT_LIMIT, 16 * int(width) * int(height))


def read_regular(path: Path, limit: int, one_link: bool = False) -> tuple[bytes | None, str | None]:
    """(the bytes of ``path``, None) if it is a regular file of at most ``limit`` bytes (and,
    with ``one_link``, no other name: not a hard link to another file), else (None, what it
    is instead); never follows a symbolic link and never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:  # ELOOP: a symbolic link
        return None, "a symbolic link" if os.path.islink(path) else f"unreadable ({exc.strerror or exc})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        if one_link and info.st_nlink != 1:
            return None, "a hard link to another file"
        if info.st_size > limit:
            return None, f"larger than {limit} bytes"
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
        return (data, None) if len(data) <= limit else (None, f"larger than {limit} bytes")
    finally:
        os.close(fd)


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
            why = ": it wrote a file past the size limit" if name == "SIGXFSZ" else (
                f": {self.last_line}" if self.last_line else "")
            return f"killed by signal {self.signal} ({name}){why}"
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


def _limit_files(limit: int):
    """A preexec function that caps the size of any file the child writes (RLIMIT_FSIZE)."""
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def run_decoder(args: list[str], inp: Path, out: Path, timeout_s: float, limit: int) -> DecoderRun:
    """Run the decoder command (arguments with {input}/{output}) on one vector, each file it
    writes held to ``limit`` bytes; its standard error goes to an unnamed temporary file that
    it cannot replace."""
    argv = [a.replace("{input}", str(inp)).replace("{output}", str(out)) for a in args]
    result = DecoderRun()
    posix = hasattr(os, "killpg")
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=posix, preexec_fn=_limit_files(limit) if posix else None)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            result.start_error = str(exc)
            return result
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            result.timed_out = True
        finally:
            _kill_group(proc)  # also stray children of a decoder that has exited, or of a stopped run
            proc.wait()
        err.seek(max(0, os.fstat(err.fileno()).st_size - STDERR_KEEP))
        lines = err.read().decode("utf-8", "replace").strip().splitlines()
    if not result.timed_out:
        if proc.returncode < 0:
            result.signal = -proc.returncode
        else:
            result.returncode = proc.returncode
    last = lines[-1].strip() if lines else ""
    result.last_line = last if len(last) <= LAST_LINE_CHARS else last[:LAST_LINE_CHARS] + "..."
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


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> bit depths the suite takes (8-bit samples; a palette's indices may be narrower)
PNG_DEPTHS = {0: (8,), 2: (8,), 3: (1, 2, 4, 8), 4: (8,), 6: (8,)}


def png_structure(data: bytes) -> tuple[str | None, int]:
    """(what is wrong with a PNG's structure for the suite, or None; its PLTE's entries): every
    chunk's CRC, IHDR first and IEND last, 8-bit samples (spec §7), a PLTE where a palette
    is needed."""
    if not data.startswith(PNG_SIGNATURE):
        return None, 0  # not a PNG at all: load_output names the format
    pos, first, depth, colour_type, entries = len(PNG_SIGNATURE), True, 0, 0, 0
    while True:
        if pos + 12 > len(data):
            return "output is a PNG without an IEND chunk (truncated)", entries
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if length > len(data) or end > len(data):
            return f"output is a PNG whose {kind.decode('latin-1')!r} chunk runs past the end", entries
        body = data[pos + 8:pos + 8 + length]
        if zlib.crc32(kind + body) != int.from_bytes(data[end - 4:end], "big"):
            return f"output is a PNG with a bad CRC in its {kind.decode('latin-1')} chunk", entries
        if first:
            if kind != b"IHDR" or length != 13:
                return "output is a PNG that does not start with IHDR", entries
            depth, colour_type, first = body[8], body[9], False
            if depth not in PNG_DEPTHS.get(colour_type, ()):
                return (f"output is a PNG of {depth}-bit samples (colour type {colour_type}); the suite "
                        "compares 8-bit samples (spec §7)"), entries
        elif kind == b"PLTE":
            entries = length // 3
        elif kind == b"IEND":
            if end != len(data):
                return f"output is a PNG with {len(data) - end} bytes after its IEND chunk", entries
            break
        pos = end
    if colour_type == 3 and entries == 0:
        return "output is a palette PNG without a PLTE chunk", entries
    return None, entries


def load_output(path: Path, width: int, height: int) -> tuple[np.ndarray | None, str | None]:
    """The decoder's output as int64 RGB [H, W, 3], or (None, why it is not acceptable). It
    must be a regular file within ``output_limit``; its size is checked before any pixel is
    read, and any transparency (an alpha channel, or a tRNS chunk on grey, RGB or palette)
    must be fully opaque."""
    data, what = read_regular(path, output_limit(width, height), one_link=True)
    if data is None:
        return None, "no output file" if what == "missing" else f"the output is {what}"
    problem, entries = png_structure(data)
    if problem:
        return None, problem
    try:
        with Image.open(io.BytesIO(data)) as im:
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
            if mode in ("P", "PA"):
                used = int(np.asarray(im.getchannel(0) if mode == "PA" else im).max(initial=0))
                if used >= entries:
                    return None, f"output is a palette PNG using index {used} of a {entries}-entry palette"
            if mode in OPAQUE_MODES or "transparency" in im.info:
                alpha = np.asarray(im.convert("RGBA").getchannel("A"))
                if alpha.size and int(alpha.min()) != 255:
                    return None, "output has transparent pixels"
            return np.asarray(im.convert("RGB"), dtype=np.int64), None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        return None, f"output is not a readable PNG ({exc})"


def _expected_image(root: Path, entry: dict) -> np.ndarray:
    """The vector's expected image, int64 RGB [H, W, 3]; a UsageError when it is missing or
    not of the manifest's size."""
    path = root / entry["expected"]
    try:
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"), dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the expected image {path}: {exc}") from None
    if image.shape[:2] != (entry["height"], entry["width"]):
        raise UsageError(f"the expected image {path} is {image.shape[1]}x{image.shape[0]}, the manifest says "
                         f"{entry['width']}x{entry['height']}")
    return image


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
        if os.path.lexists(out):
            return "left an output file behind", measured
        return None, measured
    if broken:
        return broken, measured
    if run.returncode != 0:
        return f"exit status {run.returncode}" + (f": {run.last_line}" if run.last_line else ""), measured
    want = _expected_image(root, entry)  # a manifest error before a judgement of the decoder
    got, why = load_output(out, entry["width"], entry["height"])
    if why:
        return why, measured
    diff = np.abs(got - want)
    mx = int(diff.max(initial=0))
    rms = float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0
    measured = {"max_abs": mx, "rms": round(rms, 6)}
    if mx > entry["max_abs"] or rms > entry["rms"]:
        return f"max abs {mx} (limit {entry['max_abs']}), rms {rms:.4f} (limit {entry['rms']})", measured
    return None, measured


def _is_text(v) -> bool:
    return isinstance(v, str) and v != "" and "\0" not in v


def _is_sha256(v) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def _is_count(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and 1 <= v <= 1 << 16


def _is_limit(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v < float("inf")


# (key, check, what it must be) of each entry of the manifest's two lists
MANIFEST_FIELDS = {
    "valid": (("name", _is_text, "a string"), ("input", _is_text, "a path"), ("expected", _is_text, "a path"),
              ("width", _is_count, "an integer from 1 to 65536"), ("height", _is_count, "an integer from 1 to 65536"),
              ("max_abs", _is_limit, "a number >= 0"), ("rms", _is_limit, "a number >= 0")),
    "invalid": (("name", _is_text, "a string"), ("input", _is_text, "a path")),
}
# what --check-attributes reads besides
ATTRIBUTE_FIELDS = {"valid": (("attributes_sha256", _is_sha256, "64 lower-case hex digits"),),
                    "invalid": (("error", _is_text, "an error class name"),)}


def check_report_path(path: Path) -> None:
    """Refuse a --json path before the run: a folder, a missing folder, an existing
    non-regular file (a FIFO, /dev/full) or a folder that cannot be written to."""
    if path.is_dir():
        raise UsageError(f"--json {path}: a folder, not a file")
    if not path.resolve().parent.is_dir():
        raise UsageError(f"--json {path}: no such folder")
    if os.path.lexists(path) and not (path.is_file() and not path.is_symlink()):
        raise UsageError(f"--json {path}: exists and is not a regular file")
    if not os.access(path.resolve().parent, os.W_OK):
        raise UsageError(f"--json {path}: its folder cannot be written to")


def load_manifest(path: Path, check_attributes: bool = False) -> dict:
    """The manifest, checked enough that the run cannot stop on a malformed entry (with
    ``check_attributes``, also the fields that check reads)."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"the manifest {path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise UsageError(f"the manifest {path} is not a JSON object")
    for kind, fields in MANIFEST_FIELDS.items():
        entries = manifest.get(kind)
        if not isinstance(entries, list):
            raise UsageError(f"the manifest {path} has no list {kind!r}")
        if check_attributes:
            fields = fields + ATTRIBUTE_FIELDS[kind]
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                raise UsageError(f"the manifest {path}: {kind} entry {i} is not an object")
            for key, ok, what in fields:
                if key not in e or not ok(e[key]):
                    raise UsageError(f"the manifest {path}: {kind} entry {i} ({e.get('name', '?')!r}) needs "
                                     f"{key!r}, {what}")
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
    previous = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, _raise_stopped)
        return _run_suite(args)
    except UsageError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
        return 130
    except Stopped as exc:
        print(f"run.py: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# Signals that stop a run like Ctrl-C does: the decoder's group is killed and the temporary
# folder removed on the way out (a job scheduler's stop, a closed terminal).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def _run_suite(args) -> int:
    if not args.timeout > 0:
        raise UsageError("--timeout must be a positive number of seconds")
    template = None if args.in_process else parse_template(args.decoder)
    if args.json:
        check_report_path(Path(args.json))
    manifest_path = Path(args.manifest)
    manifest = load_manifest(manifest_path, args.check_attributes)
    root = manifest_path.parent
    chosen = [(kind, e) for kind in ("valid", "invalid") for e in manifest[kind]
              if fnmatch.fnmatch(str(e["name"]), args.only)]
    if not chosen:
        raise UsageError(f"no vector's name matches --only {args.only!r}")
    results = []
    with tempfile.TemporaryDirectory(prefix="gimg-conformance-", ignore_cleanup_errors=True) as tmp:
        for kind, entry in chosen:
            name = str(entry["name"])
            data, what = read_regular(root / entry["input"], MAX_VECTOR_BYTES)
            if data is None:
                raise UsageError(f"cannot read vector {name}: {root / entry['input']} is {what}")
            try:  # the input and the output in folders of their own: their names cannot collide
                work = Path(tempfile.mkdtemp(dir=tmp))
                (work / "in").mkdir()
                (work / "out").mkdir()
                inp = work / "in" / Path(entry["input"]).name
                inp.write_bytes(data)
            except OSError as exc:
                raise UsageError(f"cannot prepare vector {name} in {tmp} (did the decoder remove or lock "
                                 f"that folder?): {exc.strerror or exc}") from None
            out = work / "out" / "output.png"
            limit = output_limit(entry.get("width", 1), entry.get("height", 1)) if kind == "valid" else MIN_OUTPUT_LIMIT
            run = run_in_process(inp, out) if template is None else run_decoder(template, inp, out, args.timeout, limit)
            if run.start_error:  # the same for every vector: a missing program, a bad path
                raise UsageError(f"cannot run the decoder: {run.start_error}")
            problem, measured = judge(kind, entry, run, out, root)
            if problem is None and args.check_attributes:
                problem = check_attributes(entry, data)
            if problem is None:
                now, what = read_regular(inp, len(data) + 1)
                if now is None:
                    problem = "the input file was removed" if what == "missing" else f"the input file is now {what}"
                elif now != data:
                    problem = "the input file was modified"
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
            tmp_report = Path(args.json).with_name(Path(args.json).name + ".tmp")
            tmp_report.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
            os.replace(tmp_report, args.json)
        except OSError as exc:
            raise UsageError(f"cannot write --json {args.json}: {exc.strerror or exc}") from None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
