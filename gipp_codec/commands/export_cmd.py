"""``gimg export``: a file's Gaussians as arrays (NumPy .npz) or a table (.csv). A thin click
wrapper over ``gipp_codec.export``."""

import click

from gipp_codec.commands.json_line import emit_json, summary_to_stderr
from gipp_codec.errors import ConfigError
from gipp_codec.stdio import display_name, echo_line, is_stdio


@click.command("export")
@click.argument("input_path", metavar="IN.gimg", type=click.Path(readable=False))
@click.argument("output_path", metavar="OUT.npz|OUT.csv", type=click.Path(readable=False))
@click.option("--format", "fmt", type=click.Choice(["npz", "csv"]), default=None,
              help="The output's format: by default its extension's; needed for - (standard output) or "
                   "another extension; a .npz or .csv name must agree with it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last stdout line).")
def export(input_path, output_path, fmt, as_json):
    """Write the Gaussians of IN.gimg, as the decoder renders them, to OUT: .npz holds
    everything (means, covariances, colours, the base layer, and a quantized file's integer
    codes, scales, offsets and bit depths); .csv one row per Gaussian (position, covariance,
    colour, the axes' standard deviations and angle). Colours are what each Gaussian adds
    over the base layer, so they may be negative."""
    from gipp_codec.commands.quick_start import decoder_process
    from gipp_codec.imageio import atomic_write_bytes, check_distinct_paths, check_output_path

    to_stderr = summary_to_stderr(as_json, "OUT", output_path)
    if fmt is None and is_stdio(output_path):
        raise ConfigError("--format npz or csv is needed to write to standard output")
    with decoder_process():  # a short-lived process: prebuilt kernels, or numba without SciPy
        from gipp_codec.decoder import naming_file, read_input_file
        from gipp_codec.export import csv_bytes, export_format, npz_bytes, read_gaussians

        named = None if is_stdio(output_path) else export_format(output_path, strict=fmt is None)
        if fmt and named and named != fmt:
            raise ConfigError(f"--format {fmt} contradicts the name {output_path}")
        fmt = fmt or named
        check_distinct_paths(input_path, output_path)
        check_output_path(output_path)
        data = read_input_file(input_path)
        with naming_file(input_path):
            gs = read_gaussians(data)
    atomic_write_bytes(output_path, npz_bytes(gs) if fmt == "npz" else csv_bytes(gs))
    facts = {"input": str(input_path), "output": str(output_path), "format": fmt,
             "render_convention": gs.render_convention, "gaussians": int(gs.means.shape[0]),
             "valid": int(gs.valid.sum()), "width": gs.width, "height": gs.height,
             "base_grid": None if gs.base is None else [int(gs.base.shape[0]), int(gs.base.shape[1])],
             "base_block": gs.base_block, "quantized": gs.codes is not None}
    if as_json:
        emit_json(facts)
        return
    base = ("no base layer" if gs.base is None else
            f"base layer {gs.base.shape[1]}x{gs.base.shape[0]} of {gs.base_block}-pixel blocks"
            + (" (not in a .csv: use .npz)" if fmt == "csv" else ""))
    echo_line(f"{display_name(output_path, output=True)}: {facts['gaussians']} Gaussians "
              f"({facts['valid']} render) of a {gs.width}x{gs.height} image, {base}", err=to_stderr)
