"""A cold and a warm numba cache give the same numbers.

With fastmath's reassoc, numba's fresh compile of the training backward
(``render.numba_kernels._backward_gauss``) and the copy it later loaded from its cache
rounded differently on a Zen 4, so an encode run with an empty cache wrote other files than
the same encode with a warm one (BENCHMARKS.md §4, "A cold numba cache writes other files").
Here the backward runs in two fresh processes sharing an empty cache directory: the first
compiles (and fills the cache), the second loads; their gradients must agree bit for bit.
"""

import hashlib
import os
import subprocess
import sys

import numpy as np

_WORKER = """
import hashlib, numpy as np
from gipp_codec.render import numba_kernels as nk
rng = np.random.default_rng(7)
n, h, w = 300, 48, 64
means = (rng.random((n, 2)) * [w, h]).astype(np.float32)
a = np.exp(rng.normal(1.0, 1.0, n)); c = np.exp(rng.normal(1.0, 1.0, n))
b = (rng.random(n) - 0.5) * np.sqrt(a * c)
covs = np.stack([a, b, c], 1).astype(np.float32)
colors = rng.normal(0.2, 0.3, (n, 3)).astype(np.float32)
grad = rng.normal(0.0, 1.0, (h, w, 3)).astype(np.float32)
parts = nk.backward(means, covs, colors, h, w, grad)
print(hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes() for p in parts)).hexdigest())
"""


def test_the_backward_computes_the_same_gradients_from_a_cold_and_a_warm_cache(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_DISABLE_JIT="0")
    runs = [subprocess.run([sys.executable, "-c", _WORKER], env=env, capture_output=True, text=True, timeout=600)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    cold, warm = (r.stdout.strip().splitlines()[-1] for r in runs)
    assert any(f.name.startswith("numba_kernels._backward_gauss") for f in (tmp_path / "cache").rglob("*"))
    assert len(cold) == 64 and cold == warm
