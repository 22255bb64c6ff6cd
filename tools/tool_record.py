"""The JSON record a measuring tool writes with ``--json``: the command line that ran it and
its results, so that a figure in BENCHMARKS.md names the exact command it came from.

- ``check_record_path(prog, path, inputs)``: before any work, exit 2 with one line when an
  output path cannot be written (a folder, a missing folder, a folder without write
  permission), is one of the inputs or, for JSON, is an existing file that is not JSON.
- ``write_text_atomic(path, text)``: ``path`` holds ``text`` whole, or is left as it was
  (written to a temporary file in the same folder, then renamed over it).
- ``write_record(path, results)``: the record, written that way.
"""

import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path


def check_record_path(prog: str, path, inputs: Iterable = (), option: str = "--json", holds_json: bool = True) -> None:
    """Exit 2 with one ``PROG: error:`` line if ``path`` (None: nothing to check), the
    output of ``option``, is a folder, is in a folder that does not exist or cannot be
    written, is one of ``inputs`` or, for a JSON output (``holds_json``), is an existing
    file that is not JSON (which ``write_text_atomic`` would refuse at the end of the run)."""
    if path is None:
        return
    out = Path(path)

    def refuse(message: str) -> None:
        print(f"{prog}: error: {option} {path}: {message}", file=sys.stderr)
        raise SystemExit(2)

    if str(path) == "":
        refuse("an empty file name")
    if out.is_dir():
        refuse("is a folder; give a file name")
    folder = out.parent
    if not folder.is_dir():
        refuse(f"the folder {folder} does not exist" if not folder.exists() else f"{folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        refuse(f"the folder {folder} cannot be written")
    if out.exists() and not os.access(out, os.W_OK):
        refuse("cannot be written")
    from tool_guard import refuse_clobbering

    refuse_clobbering(prog, [out], inputs)  # first: "the output is the input" says more
    if holds_json and not holds_json_or_nothing(out):
        refuse("holds something else than a tool's JSON; not overwritten")


def holds_json_or_nothing(path: Path) -> bool:
    """Whether ``path`` is not an existing file, or is one that holds JSON."""
    if not path.is_file():
        return True
    try:
        json.loads(path.read_bytes())
    except (ValueError, OSError):
        return False
    return True


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (``gipp_codec.imageio.atomic_write_bytes``:
    a temporary file in the same folder renamed over it; an existing file keeps its
    permissions), and never over a file that holds something else than a tool's JSON (an
    input named by mistake): that is a GimgError, and the file is left as it was."""
    from gipp_codec.errors import GimgError
    from gipp_codec.imageio import atomic_write_bytes

    target = Path(path)
    if not holds_json_or_nothing(target):
        raise GimgError(f"{path}: holds something else than a tool's JSON; not overwritten")
    atomic_write_bytes(target, text.encode())


def write_record(path: str, results: list) -> None:
    """Write {"command": the tool's command line, "results": results} to ``path`` (atomically:
    ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps({"command": " ".join(sys.argv), "results": results}, indent=1))
