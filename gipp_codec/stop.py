"""A stop the user asked for (Ctrl-C, SIGTERM) that must not be lost.

The command line's signal handlers raise KeyboardInterrupt or ``Terminated`` in the main
thread. When the signal arrives while a ctypes callback runs (numba's compiler calls back
into Python while it compiles a kernel), CPython reports that exception as "ignored" and the
work goes on. So the handlers also ``record`` the stop here, and the points that commit
work (each training step, writing an output file) call ``check``, which raises it again.
Without a handler (the Python API) nothing is ever recorded and ``check`` costs one read.
"""

import threading


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM (``kill``, a job scheduler's stop), so that the
    work unwinds as for Ctrl-C: no temporary file is left behind, one line says why."""


_pending: type[BaseException] | None = None  # the stop recorded and not yet raised by ``check``
_lock = threading.Lock()  # so that of two threads checking at once only one raises a stop


def record(kind: type[BaseException]) -> None:
    """Remember that a stop of ``kind`` (KeyboardInterrupt or Terminated) was asked for."""
    global _pending
    _pending = kind


def clear() -> None:
    """Forget a recorded stop (once its exception has been handled)."""
    global _pending
    _pending = None


def check() -> None:
    """Raise the stop recorded by ``record``, if any (once: it is cleared as it is raised)."""
    global _pending
    if _pending is None:  # the common case: one read, no lock
        return
    with _lock:
        kind, _pending = _pending, None
    if kind is not None:
        raise kind()


def is_stop(exc: BaseException) -> bool:
    """Whether ``exc`` is a stop the user asked for."""
    return isinstance(exc, (KeyboardInterrupt, Terminated))
