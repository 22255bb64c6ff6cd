"""``tools/tool_guard.py``: a tool's bad input is one line and a non-zero exit, and no output
is written over an input."""

import os
import subprocess
import sys

import pytest

TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")
sys.path.insert(0, TOOLS)
from tool_guard import clobbering, guarded, refuse_clobbering  # noqa: E402

from gipp_codec.errors import TruncatedError  # noqa: E402


def test_guarded_turns_gimg_and_os_errors_into_one_line(capsys, tmp_path):
    def bad_file(argv):
        raise TruncatedError("file ends at byte 9,\ninside the version")

    def missing(argv):
        open(tmp_path / "nothing.gimg", "rb")

    assert guarded("t", bad_file, []) == 1
    assert capsys.readouterr().err == "t: error: file ends at byte 9, inside the version\n"
    assert guarded("t", missing, []) == 1
    assert capsys.readouterr().err == f"t: error: No such file or directory: {tmp_path / 'nothing.gimg'}\n"
    assert guarded("t", lambda: 3) == 3  # a main that takes no argv
    with pytest.raises(ZeroDivisionError):  # a bug is not dressed up as bad input
        guarded("t", lambda argv: 1 / 0, [])


def test_refuse_clobbering_sees_the_same_file_under_another_name(tmp_path, capsys):
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    os.symlink(image, tmp_path / "link.png")
    with pytest.raises(SystemExit) as stop:
        refuse_clobbering("t", [tmp_path / "link.png"], [image])
    assert stop.value.code == 2 and capsys.readouterr().err.startswith("t: error: the output ")
    assert "is the input" in clobbering([tmp_path / "sub" / ".." / "a.png"], [image])
    assert "two outputs are the same file" in clobbering([tmp_path / "o.json", tmp_path / "./o.json"], [image])
    assert clobbering([tmp_path / "o.json", None, ""], [image]) is None
    refuse_clobbering("t", [tmp_path / "o.json"], [image])  # distinct: nothing raised


@pytest.mark.parametrize("tool, args", [
    ("base_layer_bits.py", ["{missing}.png"]),
    ("crop_decode.py", ["{missing}.png", "{missing}.gimg"]),
    ("cold_start.py", ["{missing}.gimg"]),
])
def test_a_missing_input_is_one_line_and_exit_1(tmp_path, tool, args):
    missing = str(tmp_path / "missing")
    run = subprocess.run([sys.executable, os.path.join(TOOLS, tool)] + [a.format(missing=missing) for a in args],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{tool[:-3]}: error: ") and "missing" in last
