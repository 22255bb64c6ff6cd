"""Build hook: compile the prebuilt decoder while gimg is installed.

Everything else about the package is declared in pyproject.toml. This file adds one
step to ``build_py``: after the sources are in place it runs what ``gimg
compile-decoder`` runs (``gipp_codec.prebuilt.build``), so that a fresh install decodes
from the command line without starting numba (BENCHMARKS.md §6). The step is best
effort: without a C compiler, or with ``GIMG_SKIP_PREBUILT=1`` in the environment, the
install goes on without it and decoding uses numba's JIT until ``gimg compile-decoder``
succeeds. pip shows the step's messages with ``-v``.
"""

import os
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SKIP_VARIABLE = "GIMG_SKIP_PREBUILT"


def _log(message: str) -> None:
    print(f"gimg: {message}", file=sys.stderr)


def build_prebuilt_decoder(package_root: Path, log=_log) -> Path | None:
    """Compile the prebuilt decoder of the ``gipp_codec`` sources under ``package_root``
    into their ``_prebuilt`` folder; returns the extension's path, or None when skipped
    or when it could not be built (the reason is logged, nothing is raised)."""
    if os.environ.get(SKIP_VARIABLE, "") not in ("", "0"):
        log(f"{SKIP_VARIABLE} is set; not compiling the prebuilt decoder")
        return None
    sys.path.insert(0, str(package_root))
    try:
        from gipp_codec import prebuilt

        path = prebuilt.build(package_root / "gipp_codec" / "_prebuilt", log=log)
        log(f"prebuilt decoder at {path}")
        return path
    except Exception as exc:  # noqa: BLE001 - any failure leaves the JIT, which always works
        log(f"the prebuilt decoder was not compiled ({exc}); decoding will use numba's JIT "
            "until `gimg compile-decoder` succeeds")
        return None
    finally:
        sys.path.remove(str(package_root))


class BuildPyWithDecoder(build_py):
    """``build_py`` that also compiles the decoder's kernels ahead of time."""

    def run(self):
        """Copy the sources as usual, then build the prebuilt decoder next to them:
        in the source tree for an editable install, in build_lib for a wheel."""
        super().run()
        build_prebuilt_decoder(ROOT if getattr(self, "editable_mode", False) else Path(self.build_lib))


class PlatformDistribution(Distribution):
    """A wheel that holds the prebuilt decoder is for one platform and Python."""

    def has_ext_modules(self):
        """Tag wheels for this platform, not py3-none-any (the prebuilt decoder is machine code)."""
        return True


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import the hook
    setup(cmdclass={"build_py": BuildPyWithDecoder}, distclass=PlatformDistribution)
