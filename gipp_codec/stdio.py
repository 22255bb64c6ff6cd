"""The path ``-``: an input read from standard input, an output written to standard output.

Shared by the readers and writers of ``imageio`` (and so by the decoder: numpy-free and
torch-free). Binary data is never read from or written to a terminal: such a stream is
refused with a one-line ``GimgError`` before any work is done. A file that is really named
``-`` is reached as ``./-``.
"""

import io
import os
import sys

from gipp_codec.errors import GimgError

STDIO_PATH = "-"


def is_stdio(path) -> bool:
    """Whether ``path`` (str or os.PathLike) names standard input or output (``-``)."""
    return os.fspath(path) == STDIO_PATH


def one_line(text: str) -> str:
    """``text`` with its unprintable characters (a newline in a file name, C1 controls, line
    and paragraph separators) written as escapes, so that a message stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def display_name(path, output: bool = False) -> str:
    """How messages and summaries name ``path``: "standard input" / "standard output" for
    ``-``, else the path with its control characters escaped (``one_line``)."""
    if is_stdio(path):
        return "standard output" if output else "standard input"
    return one_line(os.fsdecode(os.fspath(path)))


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


def read_stdin(kind: str, error: type[GimgError] = GimgError, max_bytes: int | None = None) -> bytes:
    """All of standard input's bytes; ``error`` when it is a terminal, cannot be read, or
    holds more than ``max_bytes`` (None: no limit; at most max_bytes + 1 are read, so an
    endless stream ends in an error, not in exhausted memory). ``kind`` names what was
    expected, e.g. "an image file"."""
    if sys.stdin is None or _is_terminal(sys.stdin):
        raise error(f"standard input is a terminal; pipe {kind} into it, or name a file")
    try:
        data = sys.stdin.buffer.read(-1 if max_bytes is None else max_bytes + 1)
    except (OSError, ValueError) as exc:
        raise error(f"standard input: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise error(f"standard input: more than {max_bytes} bytes, the most gimg reads of {kind}")
    return data


def check_stdout() -> None:
    """A GimgError unless standard output can take binary data (it is open and not a terminal)."""
    if sys.stdout is None or _closed(sys.stdout):
        raise GimgError("standard output is closed; redirect it to a file or a pipe, or name an output file")
    if _is_terminal(sys.stdout):
        raise GimgError("standard output is a terminal; redirect it to a file or a pipe, or name an output file")


def _closed(stream) -> bool:
    """Whether ``stream`` or the file descriptor under it is closed (a shell's ``>&-``). A
    stream with no descriptor (an in-memory one: click's test runner, a notebook) is open
    unless it says it is closed."""
    if getattr(stream, "closed", False):
        return True
    try:
        fd = stream.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


def silence_stdout() -> None:
    """Point standard output at the null device, so that Python's flush at exit does not
    report a write that already failed (a closed pipe, a full disk) a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass


def tell(line: str) -> None:
    """Write one line on stderr; a closed or broken stderr (``2>&-``) is not an error of its
    own: the exit status still says what happened."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass


def echo_line(text: str, err: bool = False) -> None:
    """``click.echo(text, err=err)``; a failed write to standard output (a full disk, a closed
    stream) is a GimgError, and a reader that closed the pipe early raises BrokenPipeError (the
    command line exits quietly, as for ``write_stdout``)."""
    import click

    if err:
        click.echo(text, err=True)
        return
    try:
        click.echo(text)
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:
        silence_stdout()
        raise GimgError(f"standard output: cannot write ({getattr(exc, 'strerror', None) or exc})") from None


def write_stdout(data: bytes) -> None:
    """Write ``data`` to standard output and flush it. A reader that closed the pipe early
    raises BrokenPipeError (the command line exits quietly, as a program killed by SIGPIPE
    would); any other failure is a GimgError."""
    check_stdout()
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:
        raise GimgError(f"standard output: cannot write ({getattr(exc, 'strerror', None) or exc})") from None
