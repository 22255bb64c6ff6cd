"""tools/covariance_parametrization.py: its grids and the two ways of quantizing b."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from covariance_parametrization import _b_arm, _grid, _rho_arm, main  # noqa: E402


def _covariances(n: int, seed: int = 0):
    """n random valid covariances: (a [n], b [n], c [n]) with |rho| up to 0.98."""
    rng = np.random.default_rng(seed)
    a = np.exp(rng.uniform(-1.0, 6.0, n))
    c = np.exp(rng.uniform(-1.0, 6.0, n))
    rho = rng.uniform(-0.98, 0.98, n)
    return a, rho * np.sqrt(a * c), c


def test_zero_holding_grid_puts_zero_on_the_grid():
    s, o = _grid(-3.7, 11.2, 7, True)
    k = -o / s
    assert abs(k - round(k)) < 1e-9 and 0 < round(k) < 127
    s2, o2 = _grid(-3.7, 11.2, 7, False)
    assert o2 == -3.7 and abs(s2 - s) < 1e-12


def test_b_arm_keeps_every_covariance_positive_definite():
    a, b, c = _covariances(4000)
    ac = np.stack([a, c], 1)
    q, bq = _b_arm(b, ac, 5, 0.0)  # a coarse grid: many small Gaussians need the PSD fix
    assert q.min() >= 0 and q.max() <= 31
    assert np.all(a * c - bq * bq > 0)
    s, o = _grid(b.min(), b.max(), 5, True)
    plain = np.clip(np.round((b - o) / s), 0, 31) * s + o
    assert np.any(a * c - plain * plain <= 0)  # plain rounding would have left some invalid


def test_rho_arm_scales_the_step_with_the_gaussian():
    a, b, c = _covariances(4000, seed=1)
    ac = np.stack([a, c], 1)
    q, bq = _rho_arm(b, a, c, ac, 6, 0.0)
    rho_q = bq / np.sqrt(a * c)
    assert np.all(np.abs(rho_q) < 1.0)
    # the error in rho is at most half a step of the grid over [-r, r], for small and large alike
    step = 2 * min(np.abs(b / np.sqrt(a * c)).max(), 0.999) / 63
    assert np.max(np.abs(rho_q - b / np.sqrt(a * c))) <= 0.5 * step + 1e-9


def test_main_runs_on_a_tiny_image(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(2)
    img = (np.clip(rng.normal(0.5, 0.2, (24, 32, 3)), 0, 1) * 255).astype(np.uint8)
    path = tmp_path / "tiny.png"
    Image.fromarray(img).save(path)
    out = tmp_path / "screen.json"
    assert main([str(path), "--gaussians", "40", "--iterations", "30", "--bits-b", "6", "--bits-rho", "6",
                 "--json", str(out)]) == 0
    record = json.load(open(out))
    arms = record["results"][0]["arms"]
    assert [(a["kind"], a["bits"]) for a in arms] == [("b", 6), ("rho", 6)]
    assert all(a["b_bits_per_gaussian"] > 0 and np.isfinite(a["psnr"]) for a in arms)
    assert "tiny.png" in capsys.readouterr().out
