"""``gimg decode`` and ``gimg info`` (and, later, ``gimg encode``).

Thin click wrappers over ``gipp_codec.decode``. With ``--json`` the last stdout line is
one JSON object. Outputs are written atomically (temp file + rename); the input is
never overwritten; on failure no output file is left behind.
"""

import json

import click

# ======================================================================================
# ENCODE: the lead adds the ``encode`` command here (``gimg encode IN.png OUT.gimg``).
# It must write through ``gipp_codec.imageio.atomic_write_bytes`` and refuse to
# overwrite its input (``check_distinct_paths``). Keep training imports inside the
# command function so that ``gimg decode`` / ``gimg info`` never import torch.
# ======================================================================================


def _emit_json(obj: dict) -> None:
    click.echo(json.dumps(obj, sort_keys=True))


@click.command("decode")
@click.argument("input_path", metavar="IN.gimg", type=click.Path(dir_okay=False))
@click.argument("output_path", metavar="OUT.png", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last stdout line).")
def decode(input_path, output_path, as_json):
    """Decode IN.gimg to the PNG image OUT.png."""
    from gipp_codec.decode import decode_file

    facts = decode_file(input_path, output_path)
    if as_json:
        _emit_json(facts)
    else:
        click.echo(
            f"{facts['output']}: {facts['width']}x{facts['height']}, {facts['gaussians']} Gaussians, "
            f"{facts['bytes']} bytes, {facts['bpp']:.4f} bpp"
        )


def _format_info(info: dict) -> str:
    h = info["header"]
    b = info["bits"]
    lines = [f"gimg version {info['version']}"]
    for name, value in h.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v:.6g}" for k, v in value.items())
        lines.append(f"  {name}: {value}")
    n = b["gaussians"]
    lines.append(f"  total: {b['total_bits']} bits, {info['bpp']:.4f} bpp"
                 + (f", {b['bits_per_gaussian']:.2f} bits/Gaussian" if n else ""))
    for name, bits in b["attributes"].items():
        per = f" ({bits / n:.2f} per Gaussian)" if n else ""
        lines.append(f"  {name:>8}: {bits:12.1f} bits{per}")
    lines.append(f"  coding overhead: {b['coding_overhead']:.1f} bits, container: {b['container']} bits, "
                 f"metadata: {b['metadata']} bits")
    if info["skipped_chunks"]:
        lines.append(f"  skipped ancillary chunks: {', '.join(info['skipped_chunks'])}")
    return "\n".join(lines)


@click.command("info")
@click.argument("input_path", metavar="IN.gimg", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last stdout line).")
def info(input_path, as_json):
    """Show the header fields and the bits spent per attribute of IN.gimg."""
    from gipp_codec.decode import read_info, read_input_file

    facts = read_info(read_input_file(input_path))
    if as_json:
        _emit_json({"input": str(input_path), **facts})
    else:
        click.echo(_format_info(facts))
