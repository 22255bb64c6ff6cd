"""The ``gimg`` command line: a thin click layer over the library.

Commands live in ``gipp_codec.commands.*`` (one module per concern) and are
registered here. Every ``GimgError`` becomes a one-line ``gimg: error: ...`` on
stderr and exit status 2; Ctrl-C exits 130 and SIGTERM 143, each after one line and
without leaving a temporary file; a pipe closed by the reader of an output on
stdout exits 141 quietly, as a program killed by SIGPIPE would. No traceback reaches the user for
anything they can cause.
"""

import signal
import sys
import threading
import warnings

import click

from gipp_codec import stop
from gipp_codec.errors import GimgError, GimgWarning
from gipp_codec.stdio import one_line, silence_stdout, tell
from gipp_codec.stop import Terminated

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # what a shell reports for a program killed by SIGPIPE (128 + 13)
EXIT_TERMINATED = 143  # 128 + SIGTERM, as for a program the signal killed


def _raise_terminated(signum, frame):
    stop.record(Terminated)  # in case a ctypes callback swallows the exception (``gipp_codec.stop``)
    raise Terminated()


def _raise_interrupted(signum, frame):
    stop.record(KeyboardInterrupt)
    raise KeyboardInterrupt


def _unraisable(info) -> None:
    """``sys.unraisablehook`` for the CLI: a stop swallowed by a ctypes callback is not shown
    (``gipp_codec.stop`` raises it again at the next check); anything else is, as Python would."""
    if info.exc_type is not None and issubclass(info.exc_type, (KeyboardInterrupt, Terminated)):
        return
    sys.__unraisablehook__(info)


class _GimgGroup(click.Group):
    """A click group that turns gimg errors into one-line messages."""

    def invoke(self, ctx):  # noqa: D401 - click API
        try:
            result = super().invoke(ctx)
            stop.check()  # a Ctrl-C a ctypes callback swallowed after the last check: not a success
            return result
        except GimgError as exc:
            tell(f"gimg: error: {one_line(str(exc))}")
            sys.exit(EXIT_USER_ERROR)
        except MemoryError:
            tell("gimg: error: out of memory")
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            stop.clear()
            tell("gimg: interrupted")
            sys.exit(130)
        except Terminated:
            stop.clear()
            tell("gimg: terminated")
            sys.exit(EXIT_TERMINATED)
        except BrokenPipeError:  # the reader of an output on stdout ('-') stopped reading
            silence_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except Exception as exc:
            # A signal's exception raised while a C extension (a numba dispatcher, torch) was
            # running can come back wrapped, e.g. as "SystemError: ... returned a result with
            # an exception set" whose cause is the Terminated or KeyboardInterrupt.
            signal_exc = _stop_in_chain(exc)
            if signal_exc is not None:
                stop.clear()
            if isinstance(signal_exc, Terminated):
                tell("gimg: terminated")
                sys.exit(EXIT_TERMINATED)
            if isinstance(signal_exc, KeyboardInterrupt):
                tell("gimg: interrupted")
                sys.exit(130)
            raise


def _stop_in_chain(exc: BaseException) -> BaseException | None:
    """The Terminated or KeyboardInterrupt among ``exc``'s causes and contexts, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (Terminated, KeyboardInterrupt)):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


@click.group(cls=_GimgGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gimg", prog_name="gimg")
def cli():
    """gimg: an image codec built on GaussianImage++ (2D Gaussian splatting)."""


def _register() -> None:
    """Attach every command module's commands to the group."""
    from gipp_codec.commands import REGISTERED

    for command in REGISTERED():
        cli.add_command(command)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for the CLI: a GimgWarning is one ``gimg: warning: ...`` line;
    any other warning is shown as Python shows it."""
    if issubclass(category, GimgWarning):
        click.echo(f"gimg: warning: {one_line(str(message))}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main() -> None:
    """Console-script entry point."""
    saved = (warnings.showwarning, sys.unraisablehook)
    warnings.showwarning = _show_warning
    sys.unraisablehook = _unraisable
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated),
                    signal.SIGINT: signal.signal(signal.SIGINT, _raise_interrupted)}
    try:
        _register()
        cli(prog_name="gimg")
    finally:  # a caller that goes on after the command (a test, a notebook) gets its own hooks back
        warnings.showwarning, sys.unraisablehook = saved
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        stop.clear()
