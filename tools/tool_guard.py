"""What every tool in tools/ owes its user on bad input: a one-line error and a non-zero exit,
never a traceback, and never an output written over one of its inputs.

- ``refuse_clobbering(prog, outputs, inputs)``: before any work, exit 2 with one line when an
  output path is one of the inputs, or two outputs are the same file.
- ``guarded(prog, main, argv)``: run a tool's ``main``; a gimg error (a file that is not a
  .gimg, an image it cannot read, ...) or an OS error (a missing file, a folder given as a
  file, a full disk) becomes ``PROG: error: MESSAGE`` on stderr and exit status 1.
"""

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from gipp_codec.errors import GimgError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return a.resolve() == b.resolve()


def refuse_clobbering(prog: str, outputs: Iterable, inputs: Iterable) -> None:
    """Exit 2 with one line if an output (None entries skipped) is an input, or two outputs
    are the same file."""
    outs = [Path(p) for p in outputs if p is not None and str(p) != ""]
    ins = [Path(p) for p in inputs if p is not None and str(p) != ""]
    for out in outs:
        for inp in ins:
            if _same_file(out, inp):
                raise SystemExit(f"{prog}: error: the output {out} is the input {inp}; it would be overwritten")
    for i, a in enumerate(outs):
        for b in outs[i + 1:]:
            if _same_file(a, b):
                raise SystemExit(f"{prog}: error: two outputs are the same file ({a} and {b})")


def one_line(exc: BaseException) -> str:
    """The message of an exception on one line (an OSError names its file)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename is not None else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def guarded(prog: str, main: Callable, argv=None) -> int:
    """``main(argv)``'s exit status (``main()``'s without ``argv``); a GimgError or OSError
    it raises becomes one line on stderr and exit status 1."""
    try:
        return main() if argv is None else main(argv)
    except (GimgError, OSError) as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 1
