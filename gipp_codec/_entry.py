"""The ``gimg`` console script: the CLI, with Ctrl-C handled from the first import on.

``gipp_codec.cli`` turns Ctrl-C into ``gimg: interrupted`` and exit status 130 once click
runs; an interrupt while the CLI and its commands are still being imported (the first
few tenths of a second) would otherwise print a traceback.
"""

import sys

EXIT_INTERRUPTED = 130


def main() -> None:
    """Import and run the CLI; Ctrl-C at any point is one line on stderr and exit 130."""
    try:
        from gipp_codec.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        sys.stderr.write("gimg: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
