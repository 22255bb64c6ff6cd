"""``-`` as a path on the command line: standard input for an input, standard output for an
output (``gipp_codec.stdio``). Each test runs ``python -m gipp_codec`` in a subprocess with
real pipes, files and pseudo-terminals."""

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gipp_codec.format import write_gimg
from gipp_codec.format.synthetic import synthetic_quantized

REPO = Path(__file__).resolve().parents[1]
TINY_ENCODE = ["-n", "12", "-i", "30"]


def gimg(*args, stdin=None, stdout=subprocess.PIPE, cwd=None) -> subprocess.CompletedProcess:
    """Run ``gimg ARGS`` (bytes on stdout and stderr)."""
    return subprocess.run([sys.executable, "-m", "gipp_codec", *map(str, args)], stdin=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, cwd=cwd, timeout=300)


@pytest.fixture()
def files(tmp_path):
    """A folder with a small PNG (image.png) and a .gimg file (in.gimg)."""
    y, x = np.mgrid[0:24, 0:32]
    rgb = np.stack([x * 7, y * 9, (x + y) * 4], axis=2).astype(np.uint8)  # [24, 32, 3]
    Image.fromarray(rgb).save(tmp_path / "image.png")
    (tmp_path / "in.gimg").write_bytes(write_gimg(synthetic_quantized(60, 32, 24, seed=3)))
    return tmp_path


def test_decode_to_stdout_writes_the_png_a_file_output_gets(files):
    to_file = gimg("decode", files / "in.gimg", files / "out.png")
    piped = gimg("decode", files / "in.gimg", "-", cwd=files)
    assert to_file.returncode == 0 and piped.returncode == 0, piped.stderr
    assert piped.stdout == (files / "out.png").read_bytes()
    assert piped.stderr.decode().startswith("standard output: 32x24, 60 Gaussians")
    assert not (files / "-").exists()


def test_decode_and_info_read_stdin(files):
    with open(files / "in.gimg", "rb") as fh:
        piped = gimg("decode", "-", "-", stdin=fh)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == gimg("decode", files / "in.gimg", "-").stdout
    with open(files / "in.gimg", "rb") as fh:
        info = gimg("info", "-", "--json", stdin=fh)
    assert info.returncode == 0, info.stderr
    expected = json.loads(gimg("info", files / "in.gimg", "--json").stdout.decode().splitlines()[-1])
    got = json.loads(info.stdout.decode().splitlines()[-1])
    assert got["input"] == "-" and {**got, "input": None} == {**expected, "input": None}


def test_encode_from_stdin_to_stdout_writes_the_file_a_path_gets(files):
    gimg("encode", files / "image.png", files / "ref.gimg", *TINY_ENCODE)
    with open(files / "image.png", "rb") as fh:
        piped = gimg("encode", "-", "-", *TINY_ENCODE, stdin=fh)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == (files / "ref.gimg").read_bytes()  # the CPU encode is deterministic
    assert piped.stderr.decode().startswith("standard output: 32x24")


def test_json_with_an_output_on_stdout_is_refused_before_any_work(files):
    for args in (["encode", files / "image.png", "-", "--json", *TINY_ENCODE],
                 ["decode", files / "in.gimg", "-", "--json"],
                 ["fit", files / "image.png", "-n", "5", "-i", "5", "--out", "-", "--json"]):
        r = gimg(*args)
        assert r.returncode == 2 and r.stdout == b"", args
        assert r.stderr.decode().startswith("gimg: error: --json prints to standard output"), r.stderr
    r = gimg("fit", files / "image.png", "-n", "5", "-i", "5", "--out", "-", "--preview", "-")
    assert r.returncode == 2 and b"cannot both write to standard output" in r.stderr


def test_fit_keeps_its_representation_on_stdout(files):
    with open(files / "image.png", "rb") as fh:
        r = gimg("fit", "-", "-n", "8", "-i", "10", "--out", "-", stdin=fh)
    assert r.returncode == 0, r.stderr
    (files / "kept.gimg").write_bytes(r.stdout)
    assert gimg("decode", files / "kept.gimg", files / "kept.png").returncode == 0
    assert b"float32 representation written to standard output" in r.stderr


def test_terminals_are_refused_for_binary_data(files):
    primary, secondary = pty.openpty()
    try:
        for args, where in ((["decode", files / "in.gimg", "-"], "out"),
                            (["encode", files / "image.png", "-", *TINY_ENCODE], "out"),
                            (["info", "-"], "in"),
                            (["encode", "-", files / "new.gimg", *TINY_ENCODE], "in")):
            r = gimg(*args, **({"stdout": secondary} if where == "out" else {"stdin": secondary}))
            assert r.returncode == 2, (args, r.stderr)
            line = r.stderr.decode()
            assert line.count("\n") == 1 and line.startswith(
                f"gimg: error: standard {'output' if where == 'out' else 'input'} is a terminal"), line
        assert not (files / "new.gimg").exists()
    finally:
        os.close(primary)
        os.close(secondary)


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(files):
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the write fails with EPIPE
    try:
        r = gimg("decode", files / "in.gimg", "-", stdout=write_end)
    finally:
        os.close(write_end)
    assert r.returncode == 141 and r.stderr == b"", r.stderr


def test_empty_stdin_is_a_one_line_error(files):
    for args in (["encode", "-", files / "x.gimg", *TINY_ENCODE], ["decode", "-", files / "x.png"]):
        r = gimg(*args, stdin=subprocess.DEVNULL)
        assert r.returncode == 2 and r.stderr.decode().count("\n") == 1, r.stderr
    assert not (files / "x.gimg").exists() and not (files / "x.png").exists()


def test_sigterm_ends_an_encode_with_one_line_and_no_file_left(files):
    """``kill`` (SIGTERM) unwinds like Ctrl-C: exit 143, one line, and neither the output nor
    a temporary file in its folder."""
    import signal
    import time

    out = files / "killed.gimg"
    proc = subprocess.Popen([sys.executable, "-m", "gipp_codec", "encode", str(files / "image.png"), str(out),
                             "-n", "40", "-i", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(6)  # well into the fit
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert stderr.decode() == "gimg: terminated\n" and stdout == b""
    assert sorted(p.name for p in files.iterdir()) == ["image.png", "in.gimg"]


@pytest.mark.parametrize("stop, code, line", [("terminated", 143, "gimg: terminated\n"),
                                               ("interrupted", 130, "gimg: interrupted\n")])
def test_a_signal_wrapped_by_an_extension_still_ends_with_one_line(stop, code, line):
    """A signal's exception raised inside a C extension's call (CI saw SIGTERM land in a numba
    dispatcher) comes back as "SystemError: ... returned a result with an exception set"
    caused by it: the CLI still exits as for the bare signal, with one line, no traceback."""
    from click.testing import CliRunner

    from gipp_codec.cli import Terminated, _GimgGroup

    group = _GimgGroup(name="gimg")

    @group.command()
    def work():
        try:
            raise Terminated() if stop == "terminated" else KeyboardInterrupt()
        except (Terminated, KeyboardInterrupt) as signal_exc:
            raise SystemError("<dispatcher> returned a result with an exception set") from signal_exc

    @group.command()
    def broken():
        raise SystemError("an unrelated fault")

    r = CliRunner().invoke(group, ["work"])
    assert r.exit_code == code and r.stderr == line and r.stdout == ""
    r = CliRunner().invoke(group, ["broken"])
    assert isinstance(r.exception, SystemError)  # a real fault is not disguised as a signal


def test_a_terminal_sees_the_bar_prepare_then_count_down(files):
    """On a terminal stderr the encode's bar says it is preparing until the fit's first report
    (a first run compiles the kernels then), then shows the phase, N and the time left; the
    file is written as without a terminal."""
    import threading

    primary, secondary = pty.openpty()
    chunks = []

    def read_all():
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # the terminal's last writer closed it
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    try:
        r = subprocess.run([sys.executable, "-m", "gipp_codec", "encode", str(files / "image.png"),
                            str(files / "bar.gimg"), "-n", "12", "-i", "5000"],  # > 0.5 s of steps
                           stdout=subprocess.PIPE, stderr=secondary, timeout=300)
    finally:
        os.close(secondary)
        reader.join(timeout=10)
        os.close(primary)
    shown = b"".join(chunks).decode(errors="replace")
    assert r.returncode == 0, shown
    assert "encoding" in shown and "preparing (a first run compiles kernels)" in shown
    assert shown.index("preparing") < shown.index("float N=")
    assert " left" in shown and "qat N=" in shown
    assert (files / "bar.gimg").stat().st_size > 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [("info", "in.gimg"), ("info", "in.gimg", "--json"),
                                  ("encode", "image.png", "out.gimg", *TINY_ENCODE)])
def test_a_summary_standard_output_cannot_take_is_one_line_and_exit_2(files, args):
    """A full disk under standard output (``/dev/full``): the same one line as for a file
    written to ``-``, not a traceback."""
    with open("/dev/full", "wb") as full:
        r = gimg(*(files / a if a.endswith((".gimg", ".png")) else a for a in args), stdout=full)
    assert r.returncode == 2
    assert r.stderr.decode() == "gimg: error: standard output: cannot write (No space left on device)\n"


def test_a_closed_standard_output_is_named_closed(files):
    """``>&-``: the output ``-`` is refused as closed, not as a terminal."""
    r = subprocess.run(["sh", "-c", f'"{sys.executable}" -m gipp_codec decode "{files / "in.gimg"}" - >&-'],
                       stderr=subprocess.PIPE, timeout=300)
    assert r.returncode == 2 and b"standard output is closed" in r.stderr


def test_options_and_names_found_wrong_by_a_robustness_audit(files):
    """One ``gimg: error:`` line and exit 2 each: a file name holding a newline (escaped, so
    the message stays one line), a folder or an empty name as the input, --no-base with the
    correlation form (format 1.2 against 1.4), a Gaussian count past 2^64, and a
    NUMBA_NUM_THREADS numba would fail on or ignore."""
    cases = [
        (("decode", files / "miss\ning.gimg", files / "o.png"), "miss\\ning.gimg: no such file"),
        (("decode", files / "nel\x85line\u2028.gimg", files / "o.png"), "nel\\x85line\\u2028.gimg: no such file"),
        (("info", files), "is a directory, expected a .gimg file"),
        (("info", ""), "an empty file name"),
        (("encode", files / "image.png", files / "o.gimg", "--no-base", "--covariance-form", "correlation"),
         "--no-base writes a file that decoders of format 1.2 read"),
        (("encode", files / "image.png", files / "o.gimg", "--gaussians", str(2 ** 64)), "is too large"),
    ]
    for args, needle in cases:
        r = gimg(*args)
        lines = r.stderr.decode().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("gimg: error:"), r.stderr
        assert needle in lines[0], lines[0]
    for value in ("0", "abc"):
        r = subprocess.run([sys.executable, "-c", "from gipp_codec._entry import main; main()", "info",
                            str(files / "in.gimg")], env={**os.environ, "NUMBA_NUM_THREADS": value},
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 2 and r.stderr == (f"gimg: error: NUMBA_NUM_THREADS must be a whole number of "
                                                  f"threads, 1 or more, got '{value}'\n")
    assert sorted(p.name for p in files.iterdir()) == ["image.png", "in.gimg"]


def test_an_error_with_stderr_closed_still_exits_2(files):
    """``2>&-``: the message cannot be shown, the status still says what happened."""
    r = subprocess.run(["sh", "-c", f'"{sys.executable}" -m gipp_codec info "{files / "missing.gimg"}" 2>&-'],
                       stdout=subprocess.PIPE, timeout=300)
    assert r.returncode == 2
