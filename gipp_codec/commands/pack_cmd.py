"""``gimg pack``: Gaussians from an .npz (another program's, or ``gimg export``'s) into a
.gimg file. A thin click wrapper over ``gipp_codec.pack``."""

import click

from gipp_codec.commands.codec_cmd import parse_bits
from gipp_codec.commands.json_line import emit_json, summary_to_stderr
from gipp_codec.stdio import display_name, echo_line


@click.command("pack")
@click.argument("input_path", metavar="IN.npz", type=click.Path(readable=False))
@click.argument("output_path", metavar="OUT.gimg", type=click.Path(readable=False))
@click.option("--bits", default=None, metavar="P,V,C",
              help="Quantize at these depths (position, covariance, colour) between each channel's minimum "
                   "and maximum [default: the input's own codes if it has them, else its own bits array, "
                   "else 12,10,6].")
@click.option("--float32", "float32", is_flag=True, help="Store the float32 values losslessly instead.")
@click.option("--render-convention", type=click.Choice(["1", "2"]), default=None,
              help="How the Gaussians are to be rendered (spec §7): 2 tapers each to 0 at its 3-sigma edge, "
                   "1 cuts it off there [default: the input's, else 2].")
@click.option("--image", "image_path", default=None, metavar="REF.png",
              help="Also report the PSNR of the written file's decode against this image.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last stdout line).")
def pack(input_path, output_path, bits, float32, render_convention, image_path, as_json):
    """Write the Gaussians in IN.npz (arrays width, height, means [N,2], covs [N,3] as (a, b, c)
    in pixels^2, colors [N,3]; optionally a base layer and a quantized file's codes, as
    `gimg export` writes them) to OUT.gimg, so that their size is a real file's. Without
    --float32, float values are quantized without the training gimg encode does: on four Kodak
    images a float fit packed at gimg's depths (11,7,6) lost 1.1 to 4.6 dB against gimg's own
    files of about its size; at the default 12,10,6, 0.8 to 3.9 dB at about 30 % more bytes
    (README, "pack")."""
    from gipp_codec.decoder import decode, read_input_bytes
    from gipp_codec.imageio import atomic_write_bytes, check_distinct_paths, check_output_path, load_image
    from gipp_codec.metrics import psnr
    from gipp_codec.output_format import check_gimg_output_name
    from gipp_codec.pack import MAX_NPZ_BYTES, bits_summary, pack_gaussians, read_npz

    depths = parse_bits(bits)
    to_stderr = summary_to_stderr(as_json, "OUT.gimg", output_path)
    check_distinct_paths(input_path, output_path)
    check_output_path(output_path)
    check_gimg_output_name(output_path)
    reference = None if image_path is None else load_image(image_path)[0]  # [H, W, 3] uint8
    arrays = read_npz(read_input_bytes(input_path, "an .npz file", max_bytes=MAX_NPZ_BYTES))
    data = pack_gaussians(arrays, depths, float32, None if render_convention is None else int(render_convention))
    facts = {"input": str(input_path), "output": str(output_path), **bits_summary(data), "psnr": None}
    if reference is not None:
        decoded = decode(data)
        if decoded.shape != reference.shape:
            from gipp_codec.errors import ConfigError

            raise ConfigError(f"--image is {reference.shape[1]}x{reference.shape[0]}, the Gaussians' image "
                              f"{decoded.shape[1]}x{decoded.shape[0]}")
        facts["psnr"] = psnr(decoded, reference)
    atomic_write_bytes(output_path, data)
    if as_json:
        emit_json(facts)
        return
    per = "" if facts["bits_per_gaussian"] is None else f", {facts['bits_per_gaussian']:.1f} bits/Gaussian"
    quality = "" if facts["psnr"] is None else f", PSNR {facts['psnr']:.2f} dB against {image_path}"
    echo_line(f"{display_name(output_path, output=True)}: {facts['width']}x{facts['height']}, {facts['gaussians']} "
              f"Gaussians ({facts['mode']}), {facts['bytes']} bytes, {facts['bpp']:.4f} bpp{per}{quality}",
              err=to_stderr)
