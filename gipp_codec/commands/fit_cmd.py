"""``gimg fit IN.png --gaussians N``: fit a Gaussian representation and report its quality.

Prints a human summary, or with ``--json`` one JSON object on the last line of stdout.
A progress bar is drawn on stderr only when stderr is a terminal.
"""

import os

import click

from gipp_codec.commands.json_line import emit_json, summary_to_stderr
from gipp_codec.errors import ConfigError
from gipp_codec.stdio import echo_line


@click.command("fit")
@click.argument("image", type=click.Path(readable=False, path_type=str))
@click.option("--gaussians", "-n", type=int, required=True, help="Number of Gaussians (N max).")
@click.option("--iterations", "-i", type=int, default=None, help="Optimisation steps (default: the config's).")
@click.option("--preview", type=click.Path(readable=False, path_type=str), default=None,
              help="Write the rendered image here: PNG, or PPM/BMP/TIFF by the extension.")
@click.option("--out", "out_path", type=click.Path(readable=False, path_type=str), default=None,
              help="Keep the representation as a lossless float32 .gimg file (gimg decode re-renders it).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed, 0 to 2^32 - 1 (deterministic on CPU).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--paper", is_flag=True, help="Use the paper's settings (FitConfig.paper()) instead of ours.")
@click.option("--backend", type=click.Choice(["auto", "reference", "cpu"]), default="auto", hidden=True,
              help="Renderer backend (testing aid).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on the last line of stdout.")
def fit(image, gaussians, iterations, preview, out_path, seed, device, paper, backend, as_json):
    """Fit N 2D Gaussians to IMAGE and report PSNR / MS-SSIM. IMAGE may be - (standard input),
    and one of --preview and --out - (standard output)."""
    from gipp_codec.fit.api import fit_image
    from gipp_codec.fit.config import FitConfig
    from gipp_codec.commands.progress import progress_bar
    from gipp_codec.commands.run_options import check_run_options
    from gipp_codec.imageio import check_distinct_paths, check_output_path, load_image, save_image
    from gipp_codec.output_format import check_gimg_output_name, output_format
    from gipp_codec.stdio import display_name, is_stdio

    if gaussians is not None and gaussians <= 0:
        raise ConfigError(f"--gaussians must be >= 1, got {gaussians}")
    check_run_options(iterations, seed)
    if preview is not None and out_path is not None and is_stdio(preview) and is_stdio(out_path):
        raise ConfigError("--preview and --out cannot both write to standard output ('-')")
    to_stderr = summary_to_stderr(as_json, "--preview or --out", preview, out_path)
    targets = []
    for output in (preview, out_path):
        if output is not None:
            check_distinct_paths(image, output)
            targets.append(check_output_path(output))  # before the fit, not after it
    if preview is not None:
        output_format(preview)  # a lossy extension is refused before the fit
    if out_path is not None:
        check_gimg_output_name(out_path)
    if len(targets) == 2 and os.path.abspath(targets[0]) == os.path.abspath(targets[1]):
        raise ConfigError(f"--preview and --out name the same file {out_path}")
    arr, meta = load_image(image)
    config = FitConfig.paper() if paper else FitConfig()
    total = iterations if iterations is not None else config.iterations
    callback, bar = progress_bar(total, "fitting")
    if bar is not None:
        with bar:
            result = fit_image(arr, gaussians, iterations, seed=seed, device=device, config=config,
                               progress=callback, backend=backend)
    else:
        result = fit_image(arr, gaussians, iterations, seed=seed, device=device, config=config,
                           backend=backend)
    if preview is not None:
        save_image(preview, result.image, meta)
    written = None
    if out_path is not None:
        from gipp_codec.encoder import float_file
        from gipp_codec.imageio import atomic_write_bytes

        written = float_file(result, arr.shape[1], arr.shape[0], meta)
        atomic_write_bytes(out_path, written)
    from gipp_codec.output_format import is_gray

    summary = result.summary()
    summary.update({"image": image, "width": int(arr.shape[1]), "height": int(arr.shape[0]),
                    "ms_per_iteration": 1000.0 * result.seconds / max(1, result.iterations),
                    "config": "paper" if paper else "default", "seed": seed,
                    "grey": bool(is_gray(arr))})  # fitted with one colour per Gaussian, as encode's "grey"
    if preview is not None:
        summary["preview"] = preview
    if out_path is not None:
        summary.update({"out": out_path, "bytes": len(written), "bpp": 8 * len(written) / (arr.shape[0] * arr.shape[1])})
    if as_json:
        emit_json(summary)
        return
    ms = "n/a (image too small)" if result.ms_ssim is None else f"{result.ms_ssim:.4f}"
    echo_line(f"{display_name(image)}: {arr.shape[1]}x{arr.shape[0]}, {result.gaussians} Gaussians, "
              f"{result.iterations} iterations in {result.seconds:.1f} s "
              f"({summary['ms_per_iteration']:.1f} ms/iteration, {result.device})", err=to_stderr)
    echo_line(f"PSNR {result.psnr:.2f} dB, MS-SSIM {ms} (best state at iteration {result.best_iteration})",
              err=to_stderr)
    if preview is not None:
        echo_line(f"preview written to {display_name(preview, output=True)}", err=to_stderr)
    if out_path is not None:
        echo_line(f"float32 representation written to {display_name(out_path, output=True)}", err=to_stderr)
