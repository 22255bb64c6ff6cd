"""The memory an encode or a fit is expected to take, and a warning before one starts on a
machine that has less free.

An encode that runs out of memory is killed by the system, often after minutes of work and
with no word from gimg. The model is the least-squares line through the peak resident
memory of the default encodes of Kodak mosaics at 0.5 bpp (BENCHMARKS.md §8,
``tools/encode_scaling.py``, ``benchmarks/encode_scaling_kodak_mosaics_05_session49_cpu.json``:
509, 918 and 1974 MiB at 0.39, 1.57 and 6.29 megapixels): 0.46 GiB plus 0.236 GiB per
megapixel, within 12 % of each (``tests/test_encode_memory.py`` checks both). Higher rates
keep more Gaussians, and each takes more memory, so the model is a floor there. Free memory is Linux's ``MemAvailable``;
where it cannot be read, nothing is checked.
"""

import warnings

from gipp_codec.errors import GimgWarning

BASE_GIB = 0.46
GIB_PER_MEGAPIXEL = 0.236
MEMINFO = "/proc/meminfo"


def expected_gib(width: int, height: int) -> float:
    """The peak resident memory (GiB) of a default encode of a width x height image (module docstring)."""
    return BASE_GIB + GIB_PER_MEGAPIXEL * width * height / 1e6


def available_gib(meminfo: str = MEMINFO) -> float | None:
    """The memory (GiB) the system can give new work without swapping (``MemAvailable`` of
    ``meminfo``), or None where that cannot be read."""
    try:
        with open(meminfo, encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    fields = line.split()
                    return int(fields[1]) * (1024 if fields[2:3] == ["kB"] else 1) / 2**30
    except (OSError, ValueError, IndexError, UnicodeDecodeError):
        return None
    return None


def warn_if_short(width: int, height: int, what: str = "encoding") -> None:
    """A GimgWarning when ``what`` (an encode or a fit) of a width x height image is expected
    to need more memory than the machine has free (``expected_gib``, ``available_gib``)."""
    free = available_gib()
    need = expected_gib(width, height)
    if free is not None and need > free:
        warnings.warn(f"{what} a {width}x{height} image takes about {need:.1f} GiB of memory (measured at 0.5 bpp, "
                      f"more at higher rates), more than the {free:.1f} GiB free here: the system may stop it "
                      f"part way; a smaller image or more free memory avoids that", GimgWarning, stacklevel=3)
