"""What every tool in tools/ owes its user on bad input: a one-line error and a non-zero exit,
never a traceback, and never an output written over one of its inputs.

- ``refuse_clobbering(prog, outputs, inputs)``: before any work, exit 2 with one line when an
  output path is one of the inputs, or two outputs are the same file (``clobbering`` says
  what, for a tool that reports its own usage errors).
- ``fail`` and ``check_out_folder``: the one-line refusals those checks share;
  ``figure_format``: a figure's name must end in a suffix matplotlib writes.
- ``guarded(prog, main, argv)``: run a tool's ``main``; a gimg error (a file that is not a
  .gimg, an image it cannot read, ...) or an OS error (a missing file, a folder given as a
  file, a full disk) becomes ``PROG: error: MESSAGE`` on stderr and exit status 1.
"""

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path



def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file or folder (or would, once created)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return a.resolve() == b.resolve()


def clobbering(outputs: Iterable, inputs: Iterable) -> str | None:
    """What is wrong if an output (None and empty entries skipped) is an input, or two
    outputs are the same file; None when nothing is."""
    outs = [Path(p) for p in outputs if p is not None and str(p) != ""]
    ins = [Path(p) for p in inputs if p is not None and str(p) != ""]
    for out in outs:
        for inp in ins:
            if same_file(out, inp):
                return f"the output {out} is the input {inp}; it would be overwritten"
    for i, a in enumerate(outs):
        for b in outs[i + 1:]:
            if same_file(a, b):
                return f"two outputs are the same file ({a} and {b})"
    return None


def refuse_clobbering(prog: str, outputs: Iterable, inputs: Iterable) -> None:
    """Exit 2 with ``PROG: error: ...`` on stderr if ``clobbering`` finds something wrong."""
    problem = clobbering(outputs, inputs)
    if problem:
        print(f"{prog}: error: {problem}", file=sys.stderr)
        raise SystemExit(2)


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
    except Exception as exc:  # gipp_codec imported only now: a tool may first put another tree on the path
        from gipp_codec.errors import GimgError

        if not isinstance(exc, (GimgError, OSError)):
            raise
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 1


def fail(prog: str, message: str, status: int = 2):
    """Stop with ``PROG: error: MESSAGE`` (on one line) on stderr and exit status ``status``."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(status)


def check_out_folder(prog: str, out: Path, what: str) -> None:
    """Refuse (exit 2) an output folder ``out`` (named ``what`` in the message) that exists and
    is not a folder, or that could not be created because a part of its path is a file."""
    if out.exists() and not out.is_dir():
        fail(prog, f"{what} {out}: exists and is not a folder")
    ancestor = out
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        fail(prog, f"{what} {out}: cannot be created, {ancestor} is not a folder")


def figure_problem(path, option: str) -> str | None:
    """What is wrong with naming an output figure ``path`` (a suffix matplotlib cannot write,
    which it would otherwise replace by .png or refuse after the work), or None."""
    from matplotlib.figure import Figure

    kinds = Figure().canvas.get_supported_filetypes()  # {"png": "Portable Network Graphics", ...}
    if Path(path).suffix.lower().lstrip(".") in kinds:
        return None
    return (f"{option} {path}: name the figure with a suffix matplotlib writes "
            f"({', '.join('.' + k for k in sorted(kinds))})")


def figure_format(prog: str, path, option: str) -> str:
    """The matplotlib format of an output figure named ``path`` (its suffix: png, pdf, svg, ...);
    exit 2 with one line when ``figure_problem`` finds one."""
    problem = figure_problem(path, option)
    if problem:
        fail(prog, problem)
    return Path(path).suffix.lower().lstrip(".")
