"""The ``gimg`` console script: the CLI, with Ctrl-C handled from the first import on.

``gipp_codec.cli`` turns Ctrl-C into ``gimg: interrupted`` and exit status 130 once click
runs; an interrupt while the CLI and its commands are still being imported (the first
few tenths of a second) would otherwise print a traceback.
"""

import os
import sys

EXIT_INTERRUPTED = 130
EXIT_USER_ERROR = 2


def _thread_count_problem() -> str | None:
    """What is wrong with ``NUMBA_NUM_THREADS`` (README: the kernels' thread count), or None.
    numba reads it on import and fails with a traceback on 0 or less, and warns over several
    lines and ignores it when it is not a number."""
    value = os.environ.get("NUMBA_NUM_THREADS")
    if value is None:
        return None
    try:
        ok = int(value) >= 1
    except ValueError:
        ok = False
    return None if ok else f"NUMBA_NUM_THREADS must be a whole number of threads, 1 or more, got {value!r}"


def main() -> None:
    """Import and run the CLI; Ctrl-C at any point is one line on stderr and exit 130."""
    from gipp_codec.stdio import tell  # os and sys only: still nothing heavy before the CLI's imports

    problem = _thread_count_problem()
    if problem is not None:
        tell(f"gimg: error: {problem}")
        sys.exit(EXIT_USER_ERROR)
    try:
        from gipp_codec.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        tell("gimg: interrupted")
        sys.exit(EXIT_INTERRUPTED)
