"""tools/gpu_kernel_profile.py: where a training iteration's time goes, by torch's profiler.

Without CUDA the tool profiles the host's operations only; this runs it so on a tiny image
and checks it profiles one window in each training phase and writes what it prints."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_profiles_a_float_and_a_qat_window(tmp_path):
    y, x = np.mgrid[0:40, 0:56]
    img = np.stack([128 + 90 * np.sin(x / 5.0), 128 + 90 * np.cos(y / 4.0), (x * 7 + y * 3) % 256], -1)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(tmp_path / "tiny.png")
    out = tmp_path / "profile.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_kernel_profile.py"), str(tmp_path / "tiny.png"),
                           "--bpp", "2", "--iterations", "100", "--window", "5", "--device", "cpu", "--top", "5",
                           "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert set(res["phases"]) == {"float", "qat"} and res["device"] == "cpu"
    for phase in res["phases"].values():
        assert phase["iterations"] == 5 and phase["wall_ms_per_iteration"] > 0
        assert phase["host"] and all(r["us_per_iteration"] > 0 for r in phase["host"])
        assert phase["device"] == [] and phase["device_us_per_iteration"] == 0
    assert "float: 5 iterations profiled" in proc.stdout and "qat: 5 iterations profiled" in proc.stdout
