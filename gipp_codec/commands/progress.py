"""The progress bar of long commands: drawn on stderr only when stderr is a terminal.

The time left is estimated from the steps since the fit's first report, not since the
command started: the set-up before it (loading the image, placing the Gaussians and, on
the first run after an install, compiling the kernels) would otherwise inflate it many
times over.
"""

import sys
import time

import click

PREPARING = "preparing (a first run compiles kernels)"  # a first run after an install: the numba JIT
BAR_WIDTH = 20  # so that label, bar, percentage and the longest text fit 80 columns
MIN_ELAPSED_FOR_ETA = 0.5  # seconds of steps measured before the time left is shown


def format_time_left(seconds: float) -> str:
    """``seconds`` as ``m:ss`` (or ``h:mm:ss`` from an hour)."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class StepClock:
    """The time left of a fit, from its rate since the first report of the current pass.

    ``observe(iteration, now)`` takes each report; an iteration lower than the last one
    starts a new pass (the encoder's second pass to hit a rate) and restarts the clock.
    """

    def __init__(self, total: int):
        self.total = total
        self.passes = 0
        self.last = None  # the last iteration reported
        self.start = None  # (iteration, time) of the current pass's first report
        self.now = None  # the time of the last report

    def observe(self, iteration: int, now: float) -> int:
        """Record a report; return the steps done since the previous one (for the bar)."""
        if self.last is None or iteration < self.last:
            self.passes += 1
            self.start = (iteration, now)
            step = iteration if self.last is None else iteration - self.last
        else:
            step = iteration - self.last
        self.last = iteration
        self.now = now
        return step

    def seconds_left(self) -> float | None:
        """Estimated seconds to the last iteration, or None before MIN_ELAPSED_FOR_ETA of steps."""
        if self.start is None:
            return None
        i0, t0 = self.start
        done, elapsed = self.last - i0, self.now - t0
        if done <= 0 or elapsed < MIN_ELAPSED_FOR_ETA:
            return None
        return elapsed / done * (self.total - self.last)


def progress_bar(total: int, label: str = "fitting"):
    """Return (callback, bar): a click progress bar on a terminal stderr, else (None, None).

    ``callback(iteration, total, info)`` matches the trainer's progress protocol; ``info``
    carries the phase, the current Gaussian count and, sometimes, the PSNR. Until the
    first report the bar says that it is preparing.
    """
    if not sys.stderr.isatty():
        return None, None
    bar = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=False, width=BAR_WIDTH,
                            item_show_func=lambda info: info)
    bar.update(0, PREPARING)  # shown until the fit's first report
    clock = StepClock(total)

    def callback(iteration, total_, info):
        step = clock.observe(iteration, time.monotonic())
        p = info.get("psnr")
        text = f"{info['phase']} N={info['gaussians']}" + (f" {p:.2f} dB" if p is not None else "")
        if clock.passes > 1:
            text = f"pass {clock.passes} {text}"
        left = clock.seconds_left()
        if left is not None:
            text += f" {format_time_left(left)} left"
        bar.update(step, text)

    return callback, bar
