"""``tools/encode_ab.py`` refuses bad arguments with one line, before any worktree or encode."""

import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[1] / "tools" / "encode_ab.py"
IMAGE = Path(__file__).resolve().parents[1] / "examples" / "kodim23_crop256.png"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120)


def test_an_unknown_revision_is_a_one_line_error():
    r = _run(str(IMAGE), "--a", "0000000deadbeef", "--rounds", "1")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "encode_ab: error: --a 0000000deadbeef: not a revision of this repository"


def test_a_missing_image_is_a_one_line_error(tmp_path):
    r = _run(str(tmp_path / "none.png"), "--a", "HEAD")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "no such image file" in r.stderr
