"""The progress bar of long commands: drawn on stderr only when stderr is a terminal."""

import sys

import click


def progress_bar(total: int, label: str = "fitting"):
    """Return (callback, bar): a click progress bar on a terminal stderr, else (None, None).

    ``callback(iteration, total, info)`` matches the trainer's progress protocol; ``info``
    carries the phase, the current Gaussian count and, sometimes, the PSNR.
    """
    if not sys.stderr.isatty():
        return None, None
    bar = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True,
                            item_show_func=lambda info: info)
    state = {"done": 0}

    def callback(iteration, total_, info):
        step = iteration - state["done"]
        state["done"] = iteration
        p = info.get("psnr")
        bar.update(step, f"{info['phase']} N={info['gaussians']}" + (f" {p:.2f} dB" if p is not None else ""))

    return callback, bar
