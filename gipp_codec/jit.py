"""How the decoder's kernels become machine code: numba's JIT, or the prebuilt decoder.

The kernel modules of the decode path (``entropy.token_kernels``, ``entropy.side_stream``,
``quant.dequant``, ``render.numba_kernels``) take ``njit``, ``prange``,
``set_parallel_chunksize`` and ``host_vector_lanes`` from here instead of from numba.

- By default these are numba's: every kernel is JIT-compiled (and cached) on first use.
- A process that calls ``use_prebuilt()`` before it imports any of those modules gets the
  kernels that ``gimg compile-decoder`` compiled ahead of time (``gipp_codec.prebuilt``)
  and never imports numba. Starting numba and loading its cached kernels costs about
  0.6 s per process, most of a cold ``gimg decode``. The prebuilt render is single-threaded,
  which is immaterial next to that start-up.

In prebuilt mode the module-level functions that the prebuilt decoder does not export
stay plain Python functions: the process must only decode. The CLI's ``decode`` and
``info`` commands are such processes; the library API always uses the JIT.
"""

from __future__ import annotations

import sys

_PREBUILT = None  # gipp_codec.prebuilt.Prebuilt once use_prebuilt() succeeded

# the modules whose kernels the prebuilt decoder replaces (they import this one)
KERNEL_MODULES = (
    "gipp_codec.entropy.token_kernels",
    "gipp_codec.entropy.side_stream",
    "gipp_codec.quant.dequant",
    "gipp_codec.render.numba_kernels",
)


def use_prebuilt() -> bool:
    """Switch this process to the prebuilt decoder kernels if they are built and current
    (see ``gipp_codec.prebuilt.load``); returns whether it did. Must run before any kernel
    module is imported: afterwards, or when nothing usable is built, the process stays on
    the JIT and this returns False."""
    global _PREBUILT
    if _PREBUILT is not None:
        return True
    if any(name in sys.modules for name in KERNEL_MODULES):
        return False
    from gipp_codec import prebuilt

    _PREBUILT = prebuilt.load()
    return _PREBUILT is not None


def prebuilt_in_use() -> bool:
    """Whether this process decodes with the prebuilt kernels."""
    return _PREBUILT is not None


def njit(**options):
    """Decorator: ``numba.njit(**options)``, or in prebuilt mode the function's prebuilt
    (argument-checked) entry point, or the plain function when it is not exported."""

    def decorate(fn):
        if _PREBUILT is not None:
            return _PREBUILT.entry_point(fn)
        import numba

        return numba.njit(**options)(fn)

    return decorate


def host_vector_lanes() -> int:
    """float32 lanes of one SIMD vector of the machine code in use: 16 with AVX-512, else 8
    (numba compiles, and caches, for the host CPU); in prebuilt mode the build's value."""
    if _PREBUILT is not None:
        return _PREBUILT.lanes
    import llvmlite.binding as llvm_binding

    return 16 if llvm_binding.get_host_cpu_features().get("avx512f", False) else 8


def _no_chunksize(n: int) -> int:
    """set_parallel_chunksize of the single-threaded prebuilt kernels: nothing to schedule."""
    return 0


def __getattr__(name: str):
    # numba's prange and set_parallel_chunksize, resolved when a kernel module imports them
    if name == "prange":
        if _PREBUILT is not None:
            return range
        import numba

        return numba.prange
    if name == "set_parallel_chunksize":
        if _PREBUILT is not None:
            return _no_chunksize
        import numba

        return numba.set_parallel_chunksize
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
