"""The prebuilt decoder: the decode path's numba kernels compiled ahead of time.

``gimg compile-decoder`` (``build``; ``pip install`` runs it too, through setup.py)
compiles every kernel that the decoder calls from Python into one extension module with
numba's ahead-of-time compiler (``numba.pycc``; it needs a C compiler and Python's
headers once, at build time), for a generic CPU of the machine's architecture,
single-threaded. A process that loads it (``gipp_codec.jit.use_prebuilt``, done by
``gimg decode`` and ``gimg info``) decodes without importing numba; see
``gipp_codec.jit`` for why.

The build lands in ``$GIMG_PREBUILT_DIR``, else ``gipp_codec/_prebuilt`` next to this
file, with a manifest that names the Python implementation and a hash of the kernel
sources: ``load`` refuses a build whose manifest does not match (the process then uses
the JIT), so an edited kernel is never run stale.

Each exported kernel has one signature (below). Its entry point checks every array
argument's dtype, rank and layout before the call, because compiled code trusts them.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from gipp_codec import stop
from gipp_codec.errors import ConfigError

EXTENSION_NAME = "_gimg_decoder_kernels"
MANIFEST_NAME = "manifest.json"
FORMAT = 1  # bump when the manifest or the export rules change

# The kernels the decoder calls from Python ("module.function": (return type, argument
# types), in numba's signature notation); the kernels they call are compiled in with them.
# Arrays: "i8[::1]" C-contiguous, "u2[:, :]" any layout; scalars: i8, f8, b1.
KERNELS = {
    "gipp_codec.entropy.side_stream.read_side_kernel": (
        "i8", ("u1[::1]", "i8", "i8[::1]", "i8[::1]", "i8", "i8", "i8", "i8", "i8", "i8", "i8",
               "i8[:, ::1]", "i8[:, ::1]", "i8[:, ::1]", "i8[::1]", "i8[::1]")),
    "gipp_codec.entropy.token_kernels.contexts_and_sizes": (
        "void", ("i8[::1]", "i8[::1]", "i8[::1]", "i8[::1]")),
    "gipp_codec.entropy.token_kernels.finish_positions": (
        "i8", ("i4[::1]", "i8", "i8", "u1[::1]", "i8", "i8", "i8", "i8[::1]", "i8[::1]")),
    "gipp_codec.entropy.token_kernels.finish_column": (
        "i8", ("i4[::1]", "i8", "i8", "u1[::1]", "i8", "i8", "i8[::1]", "i8[::1]", "i8", "i8", "i8[::1]",
               "f8", "f8", "f8", "f8", "i8", "i8[::1]", "i8[::1]")),
    "gipp_codec.entropy.token_kernels.ans_tokens": (
        "i8", ("u4[::1]", "u8[::1]", "i8[::1]", "i8", "i4[::1]")),
    "gipp_codec.entropy.token_kernels.base_samples": (
        "i8", ("u1[::1]", "i8", "i8", "i8", "i8", "i8", "i8[:, :, ::1]", "i8[::1]")),
    "gipp_codec.entropy.token_kernels.stream_contexts": (
        "i8", ("i8", "i8", "i8[:, ::1]", "i8[::1]", "i8", "i8[::1]", "i8[::1]")),
    "gipp_codec.quant.dequant._dequantize_kernel": (
        "void", ("u2[:, :]", "f8[::1]", "f8[::1]", "f4[:, ::1]", "f4[:, ::1]", "f4[:, ::1]", "f8[:, ::1]")),
    "gipp_codec.render.numba_kernels.base_rows_kernel": (
        "void", ("f8[:, :, ::1]", "i8[::1]", "i8[::1]", "f8[::1]", "f4[:, :, ::1]")),
    "gipp_codec.render.numba_kernels.render_work_kernel": (
        "i8", ("f4[:, ::1]", "f4[:, ::1]", "i8", "i8")),
    "gipp_codec.render.numba_kernels._setup": (
        "void", ("f4[:, ::1]", "f4[:, ::1]", "f4[:, ::1]", "i8", "i8", "i8", "f8[:, ::1]", "i8[:, ::1]")),
    "gipp_codec.render.numba_kernels._bin": (
        "Tuple((i8[::1], i4[::1]))", ("i8[:, ::1]", "i8")),
    "gipp_codec.render.numba_kernels._forward_bands": (
        "void", ("f8[:, ::1]", "i8[:, ::1]", "f4[:, ::1]", "i8[::1]", "i4[::1]", "i8", "i8", "i8",
                 "u1[:, :, ::1]", "i8", "f4[:, :, ::1]", "f4", "f4[:, :, ::1]", "f8[::1]", "f4", "i8", "i8", "i8", "f8")),
}

_DTYPES = {"u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64, "i4": np.int32, "i8": np.int64,
           "f4": np.float32, "f8": np.float64}


def prebuilt_dir() -> Path:
    """Where the prebuilt decoder is built and looked for."""
    env = os.environ.get("GIMG_PREBUILT_DIR")
    return Path(env) if env else Path(__file__).resolve().parent / "_prebuilt"


def source_hash() -> str:
    """sha256 over the sources the build depends on: the kernel modules, the shim and
    this file (which holds the signatures)."""
    from gipp_codec.jit import KERNEL_MODULES

    root = Path(__file__).resolve().parent
    files = [root / (m.split(".", 1)[1].replace(".", "/") + ".py") for m in KERNEL_MODULES]
    files += [root / "jit.py", Path(__file__).resolve()]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _expected_manifest() -> dict:
    return {"format": FORMAT, "cache_tag": sys.implementation.cache_tag, "sources": source_hash()}


def _array_rule(spec: str):
    """(dtype, ndim, needs C order) of an array type such as "f4[:, ::1]"."""
    code, dims = spec.split("[", 1)
    return np.dtype(_DTYPES[code]), dims.count(":") - dims.count("::1"), dims.endswith("::1]")


def _checked(fn, name: str, args: tuple):
    """fn with every array argument's dtype, rank and layout checked first (TypeError)."""
    rules = [(i, _array_rule(a)) for i, a in enumerate(args) if "[" in a]
    nargs = len(args)

    def entry(*values):
        if len(values) != nargs:
            raise TypeError(f"prebuilt {name}: {len(values)} arguments, expected {nargs}")
        for i, (dtype, ndim, c_order) in rules:
            v = values[i]
            if not (isinstance(v, np.ndarray) and v.dtype == dtype and v.ndim == ndim
                    and (v.flags.c_contiguous or not c_order) and v.flags.writeable):
                got = f"{v.dtype}[{v.ndim}d]" if isinstance(v, np.ndarray) else type(v).__name__
                raise TypeError(f"prebuilt {name}: argument {i} is {got}, expected {args[i]} (writeable)")
        return fn(*values)

    entry.__name__ = name.rsplit(".", 1)[1]
    entry.__doc__ = f"Prebuilt {name} (argument types checked)."
    return entry


class Prebuilt:
    """A loaded prebuilt decoder: ``entry_point(fn)`` maps a kernel function to its
    checked prebuilt entry point (or returns fn itself when it is not exported)."""

    def __init__(self, module, manifest: dict):
        self.module = module
        self.lanes = int(manifest["lanes"])
        self._entries = {
            key: _checked(getattr(module, _symbol(key)), key, args) for key, (_, args) in KERNELS.items()
        }

    def entry_point(self, fn):
        """The prebuilt entry point of kernel fn, or fn when it is not exported."""
        return self._entries.get(f"{fn.__module__}.{fn.__name__}", fn)


def _symbol(key: str) -> str:
    module, name = key.rsplit(".", 1)
    return f"{module.rsplit('.', 1)[1]}__{name}"


def status(directory: Path | None = None) -> tuple[bool, str]:
    """(usable, why): whether ``directory`` holds a prebuilt decoder for these sources."""
    directory = prebuilt_dir() if directory is None else directory
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text())
    except FileNotFoundError:
        return False, f"not built (no {directory / MANIFEST_NAME}); run `gimg compile-decoder`"
    except (OSError, ValueError) as exc:
        return False, f"unreadable manifest {directory / MANIFEST_NAME}: {exc}"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("file"), str):
        return False, f"malformed manifest {directory / MANIFEST_NAME}; run `gimg compile-decoder` again"
    expected = _expected_manifest()
    what = {"format": "another version of gimg", "cache_tag": "another Python", "sources": "other kernel sources"}
    for key, value in expected.items():
        if manifest.get(key) != value:
            return False, f"stale: built for {what[key]} ({directory}); run `gimg compile-decoder` again"
    if not (directory / manifest["file"]).is_file():
        return False, f"manifest names {manifest.get('file')!r}, which is missing from {directory}"
    return True, f"current ({directory / manifest['file']})"


def check(directory: Path | None = None) -> tuple[bool, str]:
    """(usable, why) as ``status``, and a build that ``status`` calls current is also loaded:
    a damaged library file is reported rather than passed as current."""
    directory = prebuilt_dir() if directory is None else directory
    usable, why = status(directory)
    if usable and load(directory) is None:
        return False, f"damaged: the build in {directory} does not load; run `gimg compile-decoder` again"
    return usable, why


def load(directory: Path | None = None) -> Prebuilt | None:
    """The prebuilt decoder in ``directory`` (default: ``prebuilt_dir()``) if it is built for
    these sources and this Python, else None. Never imports numba."""
    directory = prebuilt_dir() if directory is None else directory
    usable, _ = status(directory)
    if not usable:
        return None
    try:
        manifest = json.loads((directory / MANIFEST_NAME).read_text())
        path = directory / manifest["file"]
        loader = importlib.machinery.ExtensionFileLoader(EXTENSION_NAME, str(path))
        spec = importlib.util.spec_from_file_location(EXTENSION_NAME, str(path), loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        return Prebuilt(module, manifest)
    except Exception:  # noqa: BLE001 - any unusable build (damaged file, odd manifest): the JIT is always safe
        return None


def _trampoline(kernel, nargs: int):
    """A plain function that calls ``kernel`` (a numba dispatcher): exported in its place so
    that the kernel is compiled with its own options (fastmath and so on)."""
    names = ", ".join(f"a{i}" for i in range(nargs))
    namespace = {"kernel": kernel}
    exec(f"def entry({names}):\n    return kernel({names})\n", namespace)  # noqa: S102 - fixed template
    return namespace["entry"]


def build(directory: Path | None = None, log=print) -> Path:
    """Compile the decoder's kernels ahead of time into ``directory`` (default:
    ``prebuilt_dir()``); returns the extension's path. Raises ConfigError when this
    process already uses prebuilt kernels, when numba's AOT compiler or a C compiler is
    missing, or when the directory cannot be written. The previous build, if any, is
    replaced only once the new one is complete."""
    from gipp_codec import jit

    if jit.prebuilt_in_use():
        raise ConfigError("this process decodes with prebuilt kernels; build from a fresh process")
    directory = prebuilt_dir() if directory is None else Path(directory)
    try:
        import numba

        with warnings.catch_warnings():  # pycc is "pending deprecation"; without it, the JIT is used
            warnings.simplefilter("ignore")
            from numba.pycc import CC
    except ImportError as exc:
        raise ConfigError(f"cannot compile the decoder ahead of time: {exc}") from None
    import importlib

    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=directory))
    except OSError as exc:
        raise ConfigError(f"cannot write {directory}: {exc}; set GIMG_PREBUILT_DIR to a writable folder") from None
    try:
        try:
            cc = CC(EXTENSION_NAME)  # checks for a C compiler
            cc.output_dir = str(work)
            cc.verbose = False
            for key, (ret, args) in KERNELS.items():
                module_name, name = key.rsplit(".", 1)
                kernel = getattr(importlib.import_module(module_name), name)
                options = {k: v for k, v in kernel.targetoptions.items() if k not in ("parallel", "nopython")}
                if kernel.targetoptions.get("parallel"):
                    kernel = numba.njit(**options)(kernel.py_func)  # prange runs as range
                cc.export(_symbol(key), f"{ret}({', '.join(args)})")(_trampoline(kernel, len(args)))
            log(f"compiling {len(KERNELS)} decoder kernels ahead of time (a few seconds)")
            cc.compile()
        except Exception as exc:  # numba.pycc reports missing compilers and build failures in many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
            raise ConfigError("ahead-of-time compilation failed (it needs a C compiler and Python's headers): "
                              f"{first}") from None
        built = [p for p in work.iterdir() if p.name.startswith(EXTENSION_NAME)]
        if len(built) != 1:
            raise ConfigError(f"ahead-of-time compilation left {len(built)} extension files in {work}")
        from gipp_codec.render.numba_kernels import LANES  # the block width compiled in

        manifest = {**_expected_manifest(), "file": built[0].name, "lanes": LANES, "numba": numba.__version__}
        target = directory / built[0].name
        stop.check()  # a Ctrl-C swallowed while numba compiled: nothing is installed
        os.replace(built[0], target)
        tmp_manifest = work / MANIFEST_NAME
        tmp_manifest.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp_manifest, directory / MANIFEST_NAME)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if created and not any(directory.iterdir()):
            directory.rmdir()  # a failed first build leaves nothing behind
