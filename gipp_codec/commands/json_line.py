"""The one JSON line a ``--json`` command prints last on stdout."""

import json
import math

import click


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
    click.echo(json.dumps(_finite(obj), sort_keys=True, allow_nan=False))
