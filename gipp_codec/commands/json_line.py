"""The one JSON line a ``--json`` command prints last on stdout."""

import json
import math

import click

from gipp_codec.errors import ConfigError
from gipp_codec.stdio import echo_line


def _finite(value):
    """``value`` with every non-finite float (an infinite PSNR of an exact copy) made None:
    strict JSON has no Infinity or NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def emit_json(obj: dict) -> None:
    """Print ``obj`` as one line of strict JSON (sorted keys; non-finite numbers as null)."""
    echo_line(json.dumps(_finite(obj), sort_keys=True, allow_nan=False))


def summary_to_stderr(as_json: bool, option: str, *outputs) -> bool:
    """Whether a command's human summary goes to stderr: when one of ``outputs`` (paths, or
    None) is ``-``, standard output carries that file. ``--json`` prints to standard output
    too, so with such an output it is a ConfigError (raised before any work; ``option`` names
    the output in the message)."""
    from gipp_codec.stdio import is_stdio

    to_stdout = any(o is not None and is_stdio(o) for o in outputs)
    if to_stdout and as_json:
        raise ConfigError(f"--json prints to standard output, which {option} '-' already takes; "
                          "name an output file to get both")
    return to_stdout
