"""Faster start-up of the decoder in short-lived processes (the ``gimg`` CLI).

``decoder_process`` first switches the process to the prebuilt decoder kernels when they
are built (``gimg compile-decoder``; see ``gipp_codec.jit``): then numba is never
imported. Otherwise the kernels come from numba's JIT cache, with the following help.

Importing numba and loading its first cached kernel probe SciPy (a version check, and
a BLAS probe that imports ``scipy.linalg``): about 0.3–0.5 s of a cold ``gimg decode``.
gimg's kernels use no BLAS. ``without_scipy`` hides SciPy from the import system while
numba loads, so numba records "no BLAS" and moves on. Only the CLI uses it: the process
is ours, and afterwards numba's own ``np.dot`` and similar fall back to plain loops in
that process. If SciPy is already imported, nothing is hidden.
"""

import importlib.abc
import sys
from contextlib import contextmanager


class _HideScipy(importlib.abc.MetaPathFinder):
    """A meta-path finder that makes ``scipy`` and its submodules unimportable."""

    def find_spec(self, fullname, path, target=None):  # noqa: D401 - importlib API
        if fullname == "scipy" or fullname.startswith("scipy."):
            raise ImportError(f"{fullname} hidden while gimg loads its kernels")
        return None


@contextmanager
def decoder_process():
    """Within the block, the decoder runs on the prebuilt kernels if they are built and
    current, else on numba's with SciPy hidden (``without_scipy``). Enter it before
    anything imports the decoder."""
    from gipp_codec import jit

    jit.use_prebuilt()
    with without_scipy():
        yield


@contextmanager
def without_scipy():
    """Within the block, ``import scipy...`` fails (unless SciPy was imported before)."""
    if "scipy" in sys.modules:
        yield
        return
    finder = _HideScipy()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
