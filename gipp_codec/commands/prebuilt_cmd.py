"""``gimg compile-decoder``: build the prebuilt decoder kernels (``gipp_codec.prebuilt``)."""

import json
import time

import click

from gipp_codec.stdio import echo_line


@click.command("compile-decoder")
@click.option("--check", is_flag=True, help="Only report whether a current prebuilt decoder exists (exit 1 if not).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last stdout line).")
def compile_decoder(check, as_json):
    """Compile the decoder's kernels ahead of time (needs a C compiler and Python headers; a few seconds).

    Afterwards `gimg decode` and `gimg info` start without numba: a cold decode takes a
    fraction of a second instead of about one. The build goes to $GIMG_PREBUILT_DIR, else
    to gipp_codec/_prebuilt; it is used only while it matches the kernel sources and this
    Python, and is simply rebuilt by running this command again. `pip install` runs the
    same build (best effort), so this is needed only after editing the kernels, after
    switching Python, or when the install could not compile.
    """
    from gipp_codec import prebuilt

    if check:
        usable, why = prebuilt.check()
        facts = {"prebuilt": usable, "status": why, "directory": str(prebuilt.prebuilt_dir())}
        echo_line(json.dumps(facts, sort_keys=True) if as_json else f"prebuilt decoder: {why}")
        raise SystemExit(0 if usable else 1)
    start = time.perf_counter()
    path = prebuilt.build(log=(lambda msg: click.echo(msg, err=True)))
    facts = {"path": str(path), "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - start, 1),
             "kernels": len(prebuilt.KERNELS)}
    if as_json:
        echo_line(json.dumps(facts, sort_keys=True))
    else:
        echo_line(f"{path}: {facts['kernels']} kernels, {facts['bytes']} bytes, {facts['seconds']} s")
