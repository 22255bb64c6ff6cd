"""``gipp_codec.stop``: a Ctrl-C or SIGTERM that a ctypes callback swallowed still stops the work."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from gipp_codec import stop
from gipp_codec.imageio import atomic_write_bytes
from gipp_codec.stop import Terminated


@pytest.fixture(autouse=True)
def _nothing_pending():
    stop.check()  # raises nothing in a clean state
    yield
    stop._pending = None


@pytest.mark.parametrize("kind", [KeyboardInterrupt, Terminated])
def test_a_recorded_stop_is_raised_once_before_any_output(tmp_path, kind):
    """A recorded stop is raised by the next write, which leaves nothing behind; the one after
    it writes."""
    stop.record(kind)
    with pytest.raises(kind):
        atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert os.listdir(tmp_path) == []
    atomic_write_bytes(tmp_path / "out.bin", b"data")
    assert (tmp_path / "out.bin").read_bytes() == b"data"


def test_a_recorded_stop_ends_a_fit_at_its_next_step():
    """The trainer checks for a recorded stop at each step."""
    from gipp_codec.fit.api import fit_image

    img = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    stop.record(KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        fit_image(img, 10, iterations=50, device="cpu")


_SWALLOWED = textwrap.dedent("""
    import ctypes, signal, sys
    import gipp_codec.encoder as encoder
    from gipp_codec.cli import main

    real = encoder.encode_with_report

    def encode_after_a_swallowed_signal(*args, **kwargs):
        # the signal's handler runs inside a ctypes callback, as when numba compiles a
        # kernel: CPython reports the exception as ignored and returns here
        callback = ctypes.CFUNCTYPE(None)(lambda: signal.raise_signal(signal.{signal}))
        callback()
        return real(*args, **kwargs)

    encoder.encode_with_report = encode_after_a_swallowed_signal
    sys.argv = ["gimg", "encode", sys.argv[1], sys.argv[2], "-n", "10", "-i", "30"]
    main()
""")


@pytest.mark.parametrize("signal_name, code, line", [("SIGINT", 130, "gimg: interrupted"),
                                                     ("SIGTERM", 143, "gimg: terminated")])
def test_the_cli_stops_after_a_signal_a_ctypes_callback_swallowed(tmp_path, signal_name, code, line):
    """One line, the signal's exit status, no output file and no "Exception ignored" report."""
    png, out = tmp_path / "in.png", tmp_path / "out.gimg"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(png)
    script = tmp_path / "run.py"
    script.write_text(_SWALLOWED.format(signal=signal_name))
    res = subprocess.run([sys.executable, str(script), str(png), str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == code, res.stderr
    assert res.stderr.strip() == line
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["in.png", "run.py"]


def test_main_gives_back_the_callers_hooks_and_leaves_no_stop_pending(monkeypatch):
    """After ``cli.main`` returns (here by SystemExit), a process that goes on has its own
    SIGINT handler, unraisable hook and warning display again, and no stop is pending."""
    import signal
    import warnings

    from gipp_codec import cli

    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), sys.unraisablehook,
              warnings.showwarning)
    monkeypatch.setattr(sys, "argv", ["gimg", "--version"])
    with pytest.raises(SystemExit):
        cli.main()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), sys.unraisablehook,
            warnings.showwarning) == before
    stop.check()  # nothing pending


_SWALLOWED_IN_INFO = textwrap.dedent("""
    import ctypes, signal, sys
    import gipp_codec.decoder as decoder
    from gipp_codec.cli import main

    real = decoder.read_info

    def info_after_a_swallowed_signal(data):
        ctypes.CFUNCTYPE(None)(lambda: signal.raise_signal(signal.SIGINT))()
        return real(data)

    decoder.read_info = info_after_a_swallowed_signal
    sys.argv = ["gimg", "info", sys.argv[1]]
    main()
""")


def test_a_command_that_writes_no_file_still_ends_as_interrupted(tmp_path):
    """``info`` has no training step and no output write: the check after the command is the
    one that turns the swallowed Ctrl-C into exit 130 rather than a success."""
    from gipp_codec.format import write_gimg
    from gipp_codec.format.synthetic import synthetic_quantized

    gimg = tmp_path / "in.gimg"
    gimg.write_bytes(write_gimg(synthetic_quantized(10, 16, 12, seed=1)))
    script = tmp_path / "run.py"
    script.write_text(_SWALLOWED_IN_INFO)
    res = subprocess.run([sys.executable, str(script), str(gimg)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 130, res.stderr
    assert res.stderr.strip() == "gimg: interrupted"
