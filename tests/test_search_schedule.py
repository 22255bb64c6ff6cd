"""tools/search_schedule.py: how many threads the code search's schedule can keep busy."""

import subprocess
import sys
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))
from search_schedule import rows_schedule, speedup_bound  # noqa: E402

from gipp_codec.fit.code_search import tile_schedule  # noqa: E402


def _grid(cells=8, cell=20, side=9):
    """Boxes [cells^2, 4] (i0, i1, j0, j1) of one small box per cell of a square grid."""
    return np.array([(cell * cx + 2, cell * cx + 1 + side, cell * cy + 2, cell * cy + 1 + side)
                     for cy in range(cells) for cx in range(cells)], np.int64)


def test_the_bound_is_one_thread_exactly_and_never_above_the_thread_count():
    boxes = _grid()
    work = np.full(boxes.shape[0], 100.0)
    phases = tile_schedule(np.arange(boxes.shape[0]), boxes, 160, 160)
    assert speedup_bound(phases, work, 1) == 1.0
    for t in (2, 4, 8, 64):
        assert 1.0 <= speedup_bound(phases, work, t) <= t
    # one phase of four equal groups: four threads do it in a quarter of the time
    assert speedup_bound([[np.array([0]), np.array([1]), np.array([2]), np.array([3])]], work, 4) == 4.0
    # the busiest thread sets a phase's time: groups of 3 and 1 on two threads take 3
    assert speedup_bound([[np.array([0, 1, 2]), np.array([3])]], work, 2) == 4 / 3


def test_tiles_keep_more_threads_busy_than_rows_on_a_wide_grid():
    """Rows alone run one stripe per group; tiles run the cells of a stripe side by side."""
    boxes = _grid()
    order = np.arange(boxes.shape[0])
    work = np.full(boxes.shape[0], 100.0)
    rows = rows_schedule(order, boxes, 160)
    tiles = tile_schedule(order, boxes, 160, 160)
    for phases in (rows, tiles):  # every box once
        assert sorted(np.concatenate([g for p in phases for g in p]).tolist()) == order.tolist()
    assert max(len(p) for p in rows) <= 5  # 160 rows in stripes of 16, every other one
    assert speedup_bound(tiles, work, 16) > 2 * speedup_bound(rows, work, 16)


def test_the_command_reads_a_file_and_refuses_bad_arguments(tmp_path):
    from gipp_codec import encode

    y, x = np.mgrid[0:40, 0:64]
    img = np.clip(np.stack([128 + 90 * np.sin(x / 5.0), 128 + 90 * np.cos(y / 4.0), (x * 7) % 256], -1), 0, 255)
    path = tmp_path / "a.gimg"
    path.write_bytes(encode(img.astype(np.uint8), gaussians=40, iterations=40))
    tool = [sys.executable, str(TOOLS / "search_schedule.py")]
    r = subprocess.run(tool + [str(path), "--threads", "1,4", "--json", str(tmp_path / "out.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "rows:" in r.stdout and "tiles:" in r.stdout and "1 threads 1.0x" in r.stdout
    assert (tmp_path / "out.json").exists()
    for bad in (["--threads", "0"], ["--threads", "x"]):
        r = subprocess.run(tool + [str(path)] + bad, capture_output=True, text=True)
        assert r.returncode != 0 and "--threads" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.gimg").write_bytes(b"not a gimg file")
    r = subprocess.run(tool + [str(tmp_path / "bad.gimg")], capture_output=True, text=True)
    assert r.returncode != 0 and "bad.gimg" in r.stderr and "Traceback" not in r.stderr
