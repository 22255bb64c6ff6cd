"""The JSON record a measuring tool writes with ``--json``: the command line that ran it and
its results, so that a figure in BENCHMARKS.md names the exact command it came from."""

import json
import sys


def write_record(path: str, results: list) -> None:
    """Write {"command": the tool's command line, "results": results} to ``path``."""
    with open(path, "w") as f:
        json.dump({"command": " ".join(sys.argv), "results": results}, f, indent=1)
