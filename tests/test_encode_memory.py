"""The memory model of an encode and the warning before one starts (``gipp_codec.encode_memory``)."""

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from gipp_codec import encode_memory
from gipp_codec.encoder import encode_with_report
from gipp_codec.errors import GimgWarning
from gipp_codec.fit.api import fit_image

RECORD = Path(__file__).resolve().parents[1] / "benchmarks" / "encode_scaling_kodak_mosaics_05_session49_cpu.json"


def test_the_model_is_the_least_squares_line_through_the_measured_encodes():
    rows = json.loads(RECORD.read_text())["rows"]
    assert len(rows) >= 3
    mp = np.array([row["width"] * row["height"] / 1e6 for row in rows])  # [R]
    gib = np.array([row["peak_rss_mib"] / 1024 for row in rows])  # [R]
    base, slope = np.linalg.lstsq(np.stack([np.ones_like(mp), mp], 1), gib, rcond=None)[0]
    assert encode_memory.BASE_GIB == pytest.approx(base, abs=0.005)
    assert encode_memory.GIB_PER_MEGAPIXEL == pytest.approx(slope, abs=0.0005)
    for row in rows:
        measured = row["peak_rss_mib"] / 1024
        assert encode_memory.expected_gib(row["width"], row["height"]) == pytest.approx(measured, rel=0.12), row


def test_available_memory_is_read_from_meminfo(tmp_path):
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       25165824 kB\nMemFree:         1048576 kB\nMemAvailable:    3145728 kB\n")
    assert encode_memory.available_gib(str(info)) == pytest.approx(3.0)
    info.write_text("MemTotal: 1 kB\n")
    assert encode_memory.available_gib(str(info)) is None
    assert encode_memory.available_gib(str(tmp_path / "missing")) is None
    here = encode_memory.available_gib()  # this machine's: Linux's /proc/meminfo, or none elsewhere
    assert (here > 0) if os.path.exists("/proc/meminfo") else (here is None)


def _image():
    return np.random.default_rng(0).integers(0, 256, size=(16, 24, 3), dtype=np.uint8)  # [16, 24, 3]


def test_an_encode_or_fit_larger_than_free_memory_is_warned_of_and_still_runs(monkeypatch):
    monkeypatch.setattr(encode_memory, "available_gib", lambda: 0.25)
    with pytest.warns(GimgWarning, match=r"encoding a 24x16 image takes about 0\.5 GiB .* more than the 0\.2 GiB"):
        data, _ = encode_with_report(_image(), gaussians=4, iterations=3)
    assert len(data) > 0
    with pytest.warns(GimgWarning, match="fitting a 24x16 image"):
        fit_image(_image(), 4, 3)


def test_no_warning_where_memory_suffices_or_is_unknown(monkeypatch):
    for free in (64.0, None):
        monkeypatch.setattr(encode_memory, "available_gib", lambda free=free: free)
        with warnings.catch_warnings():
            warnings.simplefilter("error", GimgWarning)
            encode_with_report(_image(), gaussians=4, iterations=3)
