"""``gimg encode``, ``gimg decode`` and ``gimg info``.

Thin click wrappers over ``gipp_codec.encoder`` and ``gipp_codec.decoder``. With ``--json`` the last stdout line is
one JSON object. Outputs are written atomically (temp file + rename); the input is
never overwritten; on failure no output file is left behind.
"""

import contextlib
import re
import sys

import click

from gipp_codec.commands.json_line import emit_json, summary_to_stderr
from gipp_codec.errors import ConfigError
from gipp_codec.imageio import DEFAULT_PNG_LEVEL
from gipp_codec.stdio import display_name
from gipp_codec.stdio import echo_line


# --bpp's budget holds the input's ICC profile and EXIF (the file carries them): above this
# share of it the encoder says so before it starts, and names --strip-metadata
METADATA_WARN_SHARE = 0.1


def _metadata_bytes(meta) -> tuple[int, str]:
    """(bytes of the ICC profile and EXIF block the file will carry, their chunks' 12 bytes each
    included; what they are, for a message: "ICC profile", "EXIF" or both)."""
    held = [(name, b) for name, b in (("ICC profile", meta.icc_profile), ("EXIF", meta.exif)) if b]
    return sum(len(b) + 12 for _, b in held), " and ".join(name for name, _ in held)


def _missed_rate_reason(report, bpp: float, metadata: tuple[int, str] = (0, "")) -> str:
    """Why an encode's file missed its --bpp target, for the warning."""
    if report.bpp > bpp and report.gaussians <= 1:
        extra = f", the input's {metadata[1]} ({metadata[0]} bytes; --strip-metadata)" if metadata[0] else ""
        return (f"a {report.width}x{report.height} file cannot be smaller than its header{extra} and "
                + ("its base layer" if report.base_only else "one Gaussian"))
    if report.bpp > bpp:
        return "the trim to the budget stopped short"
    if report.base_only:
        return "the base layer alone decodes better than the Gaussians a full budget holds"
    return "long fits can leave part of the budget unused"


def _warn_if_rate_missed(report, bpp: float | None, metadata: tuple[int, str]) -> None:
    """The warning that a file is more than ``BPP_PROMISE`` from its --bpp target, with why."""
    from gipp_codec.encoder import BPP_PROMISE

    if bpp is not None and abs(report.bpp / bpp - 1.0) > BPP_PROMISE:
        click.echo(f"gimg: warning: {report.bpp:.4f} bpp is {100 * (report.bpp / bpp - 1.0):+.1f} % from the "
                   f"target {bpp} (more than {100 * BPP_PROMISE:.0f} %; {_missed_rate_reason(report, bpp, metadata)})",
                   err=True)


def _one_colour_rate(report, bpp: float | None, asked: bool) -> str:
    """How a one-colour image's file (the smallest file for it) stands against what was asked:
    over a --bpp target it cannot go below, or the rate or count left unspent."""
    from gipp_codec.encoder import BPP_PROMISE

    if bpp is not None and report.bpp > bpp * (1.0 + BPP_PROMISE):
        return (f"; at {report.bytes} bytes ({report.bpp:.4f} bpp, {100 * (report.bpp / bpp - 1.0):+.1f} % from the "
                f"target {bpp}) it is over the target, which no file of this image can meet")
    return " and the rate or count asked for is not spent" if asked else ""


@click.command("encode")
@click.argument("input_path", metavar="IN.png", type=click.Path(readable=False))
@click.argument("output_path", metavar="OUT.gimg", type=click.Path(readable=False))
@click.option("--gaussians", "-n", type=int, default=None,
              help="Number of Gaussians N (at most: those that leave the image or collapse are dropped).")
@click.option("--bpp", type=float, default=None,
              help="Target bits per pixel, up to 64 (instead of --gaussians) [default: 0.5 when neither is given].")
@click.option("--iterations", "-i", type=int, default=None, help="Optimisation steps (default: the config's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed, 0 to 2^32 - 1 (deterministic on CPU).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--bits", default=None,
              help="Bit depths position,covariance,colour [default: P,7,5 below 0.25 bpp, P,7,6 from "
                   "0.25 bpp up, P the fewest bits, at most 12, whose position step is 1/23 of the "
                   "Gaussians' spacing or less, 1/16 from 0.013 Gaussians per pixel (on a 768x512 image 10 "
                   "below 0.15 bpp, 11 from 0.15 to 1.0 bpp, 12 at 1.5 and 2 bpp); 12,10,6 with --paper].")
@click.option("--paper", is_flag=True, help="Use the paper's training settings instead of ours.")
@click.option("--no-base", is_flag=True,
              help="Write a file that decoders of format 1.2 read: no base layer (format 1.3's BASE chunk), "
                   "b coded as itself (not 1.4's correlation) and the grid in binary32 (not 1.5's binary16).")
@click.option("--covariance-form", type=click.Choice(["auto", "b", "correlation"]), default=None,
              help="How the off-diagonal covariance is coded: b itself, or the correlation b / sqrt(ac) "
                   "(format 1.4's payload coding 3, which decoders of 1.3 cannot read); auto: b below "
                   "0.5 bpp and on grey images, the correlation from 0.5 bpp up [default: auto; b with --paper "
                   "or --no-base].")
@click.option("--strip-metadata", is_flag=True,
              help="Leave the input's ICC profile and EXIF out of the file (by default they are carried "
                   "into it and the decoded image, and count towards --bpp's budget).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last stdout line).")
def encode(input_path, output_path, gaussians, bpp, iterations, seed, device, bits, paper, no_base, covariance_form,
           strip_metadata, as_json):
    """Encode the image IN.png to OUT.gimg at N Gaussians or a target bpp (default 0.5 bpp).
    Either may be - for standard input or output."""
    from gipp_codec.commands.progress import progress_bar
    from gipp_codec.commands.run_options import check_run_options
    from gipp_codec.encoder import MAX_BPP, encode_with_report, resolve_rate
    from gipp_codec.fit.config import FitConfig
    from gipp_codec.imageio import (ImageMetadata, atomic_write_bytes, check_distinct_paths, check_output_path,
                                    load_image)
    from gipp_codec.output_format import check_gimg_output_name

    asked = gaussians is not None or bpp is not None  # a rate or a count given, rather than the default
    gaussians, bpp = resolve_rate(gaussians, bpp, ("--gaussians N", "--bpp B"))
    if no_base and covariance_form == "correlation":
        raise ConfigError("--no-base writes a file that decoders of format 1.2 read, and --covariance-form "
                          "correlation needs format 1.4: give one of them")
    if gaussians is not None and gaussians <= 0:
        raise ConfigError(f"--gaussians must be >= 1, got {gaussians}")
    check_run_options(iterations, seed)
    if bpp is not None and not 0 < bpp <= MAX_BPP:
        raise ConfigError(f"--bpp must be a number in (0, {MAX_BPP:g}], got {bpp}")
    depths = parse_bits(bits)
    to_stderr = summary_to_stderr(as_json, "OUT.gimg", output_path)
    check_distinct_paths(input_path, output_path)
    check_output_path(output_path)  # before minutes of fitting
    check_gimg_output_name(output_path)
    image, meta = load_image(input_path)
    if strip_metadata:
        meta = ImageMetadata()
    metadata = _metadata_bytes(meta)
    meta_bytes = metadata[0]
    if bpp is not None and meta_bytes > METADATA_WARN_SHARE * bpp * image.shape[0] * image.shape[1] / 8:
        click.echo(f"gimg: warning: carrying the input's {metadata[1]} costs {meta_bytes} bytes, "
                   f"{100 * meta_bytes / (bpp * image.shape[0] * image.shape[1] / 8):.0f} % of the {bpp:g} bpp budget, "
                   f"which the Gaussians do without; --strip-metadata leaves {'them' if ' and ' in metadata[1] else 'it'} "
                   "out", err=True)
    config = FitConfig.paper() if paper else FitConfig()
    if no_base:
        config = config.with_qat(base_samples_across=None, covariance_form="b", compact_grid=False)
    if covariance_form is not None and not no_base:  # with --no-base, auto (and b) mean b: a 1.2 file
        config = config.with_qat(covariance_form=covariance_form)
    total = iterations if iterations is not None else config.iterations
    callback, bar = progress_bar(total, "encoding")
    kwargs = dict(gaussians=gaussians, bpp=bpp, iterations=iterations, seed=seed, device=device,
                  bits=depths, config=config, metadata=meta)
    if bar is not None:
        with bar:
            data, report = encode_with_report(image, progress=callback, **kwargs)
    else:
        data, report = encode_with_report(image, **kwargs)
    atomic_write_bytes(output_path, data)
    if report.base_only and report.psnr == float("inf"):
        click.echo("gimg: the image is one colour: its base layer alone decodes to it exactly, so the file "
                   "holds no Gaussians" + _one_colour_rate(report, bpp, asked), err=True)
    else:
        if report.base_only:
            click.echo(f"gimg: the base layer alone (block colours, no Gaussians) decodes better "
                       f"({report.psnr:.2f} dB) than the Gaussians that fit in the file, so the file is that", err=True)
        _warn_if_rate_missed(report, bpp, metadata)
    summary = {"input": str(input_path), "output": str(output_path), **report.summary()}

    if as_json:
        emit_json(summary)
        return
    ms = "n/a (image too small)" if report.ms_ssim is None else f"{report.ms_ssim:.4f}"
    per_gaussian = "" if report.bits_per_gaussian is None else f"{report.bits_per_gaussian:.1f} bits/Gaussian, "
    echo_line(f"{display_name(output_path, output=True)}: {report.width}x{report.height}, {report.gaussians} "
              f"Gaussians, {report.bytes} bytes, {report.bpp:.4f} bpp ({per_gaussian}"
              f"depths {'/'.join(str(b) for b in report.bits)}{', grey' if report.grey else ''})", err=to_stderr)
    echo_line(f"PSNR {report.psnr:.2f} dB, MS-SSIM {ms}, {report.seconds:.1f} s on {report.device}", err=to_stderr)


@click.command("decode")
@click.argument("input_path", metavar="IN.gimg", type=click.Path(readable=False))
@click.argument("output_path", metavar="OUT.png", type=click.Path(readable=False))
@click.option("--png-level", type=click.IntRange(0, 9), default=DEFAULT_PNG_LEVEL, show_default=True,
              help="zlib compression level of a PNG output (9: smallest, slowest).")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
              help="Where to render: the CPU; CUDA (the Triton renderer: needs CUDA and triton, and loads "
                   "torch, a slower start); auto: CUDA where there is one.")
@click.option("--crop", "crop_text", default=None, metavar="X,Y,W,H",
              help="Decode only the W x H region whose top-left pixel is column X, row Y of the file's "
                   "image (from 0), rendered alone: its pixels are the whole decode's. --scale and --size "
                   "then apply to the region.")
@click.option("--scale", type=float, default=None, metavar="F",
              help="Decode at the file's (or the --crop region's) size times F (0.25: a quarter of each "
                   "side, 2: twice): the "
                   "Gaussians sampled on the finer grid where it grows, the render averaged over each "
                   "output pixel where it shrinks. Not with --size.")
@click.option("--size", "size_text", default=None, metavar="WxH",
              help="Decode at W x H pixels instead of the file's (or the --crop region's) size (any aspect). "
                   "Not with --scale.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last stdout line).")
def decode(input_path, output_path, png_level, device, crop_text, scale, size_text, as_json):
    """Decode IN.gimg to the image OUT.png: PNG, or PPM, BMP or TIFF by the extension (.ppm, .pnm,
    .bmp, .tif, .tiff). Either may be - for standard input or output (PNG)."""
    from gipp_codec.commands.quick_start import decoder_process

    to_stderr = summary_to_stderr(as_json, "OUT.png", output_path)
    if device == "auto" and not _cuda_may_exist():  # auto is the CPU's fast start where no GPU can be
        device = "cpu"

    # a short-lived process on the CPU: prebuilt kernels, or numba without SciPy
    with decoder_process() if device == "cpu" else contextlib.nullcontext():
        from gipp_codec import jit
        from gipp_codec.decoder import decode_file

        facts = decode_file(input_path, output_path, png_level, device, scale=scale, size=_parse_size(size_text),
                            crop=_parse_crop(crop_text))
        facts["kernels"] = ("triton" if facts["device"] != "cpu" else
                            "prebuilt" if jit.prebuilt_in_use() else "jit")
    if as_json:
        emit_json(facts)
    else:
        resized = (facts["decoded_width"], facts["decoded_height"]) != (facts["width"], facts["height"])
        region = "" if facts["crop"] is None else "the region {}x{} at {},{} of ".format(*facts["crop"][2:],
                                                                                        *facts["crop"][:2])
        echo_line(
            f"{display_name(output_path, output=True)}: "
            + (f"{facts['decoded_width']}x{facts['decoded_height']} from " if resized or region else "")
            + f"{region}{facts['width']}x{facts['height']}, "
            f"{facts['gaussians']} Gaussians, {facts['bytes']} bytes, {facts['bpp']:.4f} bpp"
            + (", grey (one channel)" if facts["grey"] else ""), err=to_stderr
        )
        if facts["kernels"] == "jit" and _stderr_is_terminal():
            _prebuilt_hint()


def parse_bits(text: str | None) -> tuple[int, int, int] | None:
    """``--bits`` "P,V,C" -> (P, V, C); a ConfigError for anything else."""
    if text is None:
        return None
    try:
        depths = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--bits must be three integers like 12,7,6, got {text!r}") from None
    if len(depths) != 3:
        raise ConfigError(f"--bits must be three integers like 12,7,6, got {text!r}")
    return depths


def _parse_size(text: str | None) -> tuple[int, int] | None:
    """``--size`` "WxH" -> (W, H); a ConfigError for anything else."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*([0-9]{1,12})\s*[xX]\s*([0-9]{1,12})\s*", text)
    if match is None:
        raise ConfigError(f"--size must be WIDTHxHEIGHT in pixels, such as 384x256, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def _parse_crop(text: str | None) -> tuple[int, int, int, int] | None:
    """``--crop`` "X,Y,W,H" -> (X, Y, W, H); a ConfigError for anything else (its bounds are
    checked against the file's size by the decoder)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*" + r"\s*,\s*".join([r"([0-9]{1,12})"] * 4) + r"\s*", text)
    if match is None:
        raise ConfigError(f"--crop must be X,Y,WIDTH,HEIGHT in the file's pixels, such as 128,64,256,256, "
                          f"not {text!r}")
    return tuple(int(v) for v in match.groups())


def _stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (hints are for people, not for scripts and logs)."""
    return sys.stderr.isatty()


def _prebuilt_hint() -> None:
    """One line on stderr: why this decode ran on numba's JIT, and the one-time command
    that makes later decodes start faster (README, ``compile-decoder``)."""
    from gipp_codec import prebuilt

    usable, why = prebuilt.check()
    if not usable:
        click.echo(f"gimg: note: decoded on numba's JIT; the prebuilt decoder is {why} "
                   f"(once, for a faster start of every later decode)", err=True)


def _cuda_may_exist() -> bool:
    """False when this machine cannot have a CUDA device (Linux without NVIDIA's device nodes
    or driver, WSL's /dev/dxg included; macOS), so that ``decode --device auto`` need not
    import torch to find out; True wherever it might (then torch decides)."""
    import os

    if sys.platform.startswith("linux"):
        return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/dxg", "/proc/driver/nvidia"))
    return sys.platform != "darwin"


def _format_info(info: dict) -> str:
    h = info["header"]
    b = info["bits"]
    lines = [f"gimg version {info['version']}"]
    for name, value in h.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v:.6g}" for k, v in value.items())
        elif name == "payload_coding" and value == 3:
            value = "3 (coding 2, b holds the correlation rho: b = rho * sqrt(a * c))"
        elif name == "attribute_mode" and value == "quantized16":
            value = "quantized16 (mode 2: the grid in binary16, offsets in steps; the scales and offsets below are exact)"
        lines.append(f"  {name}: {value}")
    n = b["gaussians"]
    lines.append(f"  total: {b['total_bits']} bits, {info['bpp']:.4f} bpp"
                 + (f", {b['bits_per_gaussian']:.2f} bits/Gaussian" if n else ""))
    for name, bits in b["attributes"].items():
        per = f" ({bits / n:.2f} per Gaussian)" if n else ""
        lines.append(f"  {name:>8}: {bits:12.1f} bits{per}")
    if info["base"] is not None:
        base = info["base"]
        lines.append(f"  base layer: {base['grid'][1]}x{base['grid'][0]} samples of {base['sample_bits']} bits "
                     f"(one per {base['factor']}x{base['factor']} block), {base['bits']} bits")
    lines.append(f"  coding overhead: {b['coding_overhead']:.1f} bits, container: {b['container']} bits, "
                 f"metadata: {b['metadata']} bits")
    work = info["render_work"]
    lines.append(f"  render work: {work['pixels']} pixels of bounding squares "
                 f"({work['pixels'] / work['limit']:.2%} of MAX_RENDER_WORK {work['limit']})")
    if info["skipped_chunks"]:
        lines.append(f"  skipped ancillary chunks: {', '.join(info['skipped_chunks'])}")
    if info["grey"]:
        lines.append("  grey: red and blue equal green everywhere; decodes exactly grey")
    return "\n".join(lines)


@click.command("info")
@click.argument("input_path", metavar="IN.gimg", type=click.Path(readable=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (last stdout line).")
def info(input_path, as_json):
    """Show the header fields and the bits spent per attribute of IN.gimg (- reads standard input)."""
    from gipp_codec.commands.quick_start import decoder_process

    with decoder_process():  # a short-lived process: prebuilt kernels, or numba without SciPy
        from gipp_codec.decoder import naming_file, read_info, read_input_file

        data = read_input_file(input_path)
        with naming_file(input_path):
            facts = read_info(data)
    if as_json:
        emit_json({"input": str(input_path), **facts})
    else:
        echo_line(_format_info(facts))
