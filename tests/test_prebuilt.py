"""The prebuilt decoder (gimg compile-decoder): built once per session into a temporary
folder, then decoding through it must run without numba, agree with the JIT decoder,
pass the conformance suite, and never be used when stale."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from gipp_codec import prebuilt
from gipp_codec.decoder import decode

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conformance"
MANIFEST = json.loads((CONF / "manifest.json").read_text())
# valid vectors with quantized Gaussians of several sizes and codings
VECTORS = [e for e in MANIFEST["valid"] if e["attribute_mode"] == "quantized" and e["gaussians"]]

_HAS_TOOLCHAIN = (shutil.which("cc") is not None or shutil.which("gcc") is not None) and \
    (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file()
pytestmark = pytest.mark.skipif(not _HAS_TOOLCHAIN,
                                reason="numba's ahead-of-time compiler needs a C compiler and Python's headers")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = tmp_path_factory.mktemp("prebuilt")
    path = prebuilt.build(directory, log=lambda msg: None)
    assert path.is_file() and path.parent == directory
    return directory


def _env(directory):
    return {**os.environ, "GIMG_PREBUILT_DIR": str(directory)}


_DECODE_WITHOUT_NUMBA = """
import sys
from gipp_codec import jit
assert jit.use_prebuilt(), "prebuilt decoder not used"
import numpy as np
from gipp_codec.decoder import decode
for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):
    data = open(src, "rb").read()
    whole = decode(data)
    np.save(dst, whole)
    h, w = whole.shape[:2]
    np.save(dst + ".crop.npy", decode(data, crop=(w // 4, h // 3, max(1, w // 2), max(1, h // 2))))
assert "numba" not in sys.modules and "llvmlite" not in sys.modules, "numba was imported"
"""


def test_prebuilt_decoder_agrees_with_the_jit_without_numba(built, tmp_path):
    args = []
    for e in VECTORS:
        args += [str(CONF / e["input"]), str(tmp_path / f"{e['name']}.npy")]
    r = subprocess.run([sys.executable, "-c", _DECODE_WITHOUT_NUMBA, *args], env=_env(built),
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    for e in VECTORS:
        ours = np.load(tmp_path / f"{e['name']}.npy")
        jit = decode((CONF / e["input"]).read_bytes())
        assert ours.shape == jit.shape and ours.dtype == np.uint8
        diff = np.abs(ours.astype(np.int16) - jit)
        # generic-CPU machine code may round a product-sum differently from the host's
        # fused multiply-adds: at most one level, on a tiny share of the values
        assert diff.max() <= 1 and np.count_nonzero(diff) <= max(3, 1e-3 * diff.size), e["name"]
        h, w = ours.shape[:2]  # a region is the same kernels' whole decode there, bit for bit
        region = ours[h // 3:h // 3 + max(1, h // 2), w // 4:w // 4 + max(1, w // 2)]
        assert np.array_equal(np.load(tmp_path / f"{e['name']}.npy.crop.npy"), region), e["name"]


def test_cli_with_the_prebuilt_decoder_passes_the_conformance_suite(built):
    r = subprocess.run([sys.executable, str(CONF / "run.py")], env=_env(built), capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    total = len(MANIFEST["valid"]) + len(MANIFEST["invalid"])
    assert f"{total}/{total} conformance vectors passed" in r.stdout


def test_a_stale_or_missing_build_is_not_used(built, tmp_path):
    assert prebuilt.status(built)[0]
    stale = tmp_path / "stale"
    shutil.copytree(built, stale)
    manifest = json.loads((stale / prebuilt.MANIFEST_NAME).read_text())
    manifest["sources"] = "0" * 64  # built from other kernel sources
    (stale / prebuilt.MANIFEST_NAME).write_text(json.dumps(manifest))
    usable, why = prebuilt.status(stale)
    assert not usable and "stale" in why
    assert prebuilt.load(stale) is None
    assert prebuilt.load(tmp_path / "nothing") is None
    damaged = tmp_path / "damaged"
    shutil.copytree(built, damaged)
    manifest = json.loads((damaged / prebuilt.MANIFEST_NAME).read_text())
    (damaged / manifest["file"]).write_bytes(b"\x7fELF truncated")
    assert prebuilt.status(damaged)[0] and prebuilt.load(damaged) is None  # current, but unloadable
    usable, why = prebuilt.check(damaged)
    assert not usable and "does not load" in why  # what --check reports
    r = subprocess.run([sys.executable, "-m", "gipp_codec", "compile-decoder", "--check"], env=_env(damaged),
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "damaged" in r.stdout
    assert prebuilt.check(built)[0]
    (damaged / prebuilt.MANIFEST_NAME).write_text("[1, 2]")
    assert not prebuilt.status(damaged)[0] and prebuilt.load(damaged) is None
    # the CLI still decodes (on the JIT) and --check says why the build is not used
    out = tmp_path / "o.png"
    for directory, kernels in ((stale, "jit"), (built, "prebuilt")):
        r = subprocess.run([sys.executable, "-m", "gipp_codec", "decode", str(CONF / VECTORS[0]["input"]), str(out),
                            "--json"], env=_env(directory), capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0 and out.is_file(), r.stderr
        assert json.loads(r.stdout.strip().splitlines()[-1])["kernels"] == kernels
    r = subprocess.run([sys.executable, "-m", "gipp_codec", "compile-decoder", "--check"], env=_env(stale),
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "stale" in r.stdout


def test_entry_points_refuse_arrays_of_the_wrong_type(built):
    from gipp_codec.entropy import token_kernels

    entry = prebuilt.load(built).entry_point(token_kernels.contexts_and_sizes.py_func)
    src, thr = np.array([0, 5, 9], np.int64), np.array([4], np.int64)
    ctx, sizes = np.empty(3, np.int64), np.empty(2, np.int64)
    entry(src, thr, ctx, sizes)
    assert ctx.tolist() == [0, 1, 1] and sizes.tolist() == [1, 2]
    with pytest.raises(TypeError, match="argument 0"):
        entry(src.astype(np.int32), thr, ctx, sizes)  # compiled code would misread it
    with pytest.raises(TypeError, match="argument 2"):
        entry(src, thr, np.empty((3, 2), np.int64)[:, 0], sizes)  # not contiguous
    with pytest.raises(TypeError, match="arguments"):
        entry(src, thr, ctx)


def test_use_prebuilt_refuses_once_kernels_are_jit_compiled():
    from gipp_codec import jit
    from gipp_codec.entropy import token_kernels  # noqa: F401  (imported: the JIT is bound)

    assert jit.use_prebuilt() is False and not jit.prebuilt_in_use()


def test_info_is_the_same_with_the_prebuilt_decoder(built, tmp_path):
    vector = str(CONF / max(VECTORS, key=lambda e: e["gaussians"])["input"])
    outputs = []
    for directory in (built, tmp_path):  # tmp_path holds no build: the JIT
        r = subprocess.run([sys.executable, "-m", "gipp_codec", "info", vector, "--json"], env=_env(directory),
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        outputs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    assert outputs[0] == outputs[1] and outputs[0]["bits"]["gaussians"] > 0


def test_without_a_c_compiler_the_build_fails_cleanly(tmp_path):
    """One line on stderr, a non-zero exit, and no folder left behind."""
    bindir = tmp_path / "bin"  # only Python on PATH: no cc, gcc or clang
    bindir.mkdir()
    (bindir / "python").symlink_to(os.path.realpath(sys.executable))
    target = tmp_path / "prebuilt"
    r = subprocess.run([str(bindir / "python"), "-m", "gipp_codec", "compile-decoder"], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PATH": str(bindir), "GIMG_PREBUILT_DIR": str(target)})
    assert r.returncode != 0
    assert r.stderr.startswith("gimg: error: ahead-of-time compilation failed") and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not target.exists()


def _setup_module():
    """setup.py loaded as a module (its setup() call runs only as __main__)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gimg_setup_hook", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_hook_builds_into_the_package_it_installs(monkeypatch, tmp_path):
    """pip's build step compiles the decoder into <package root>/gipp_codec/_prebuilt:
    the source tree for an editable install, build_lib for a wheel."""
    hook = _setup_module()
    monkeypatch.delenv(hook.SKIP_VARIABLE, raising=False)
    calls = []
    monkeypatch.setattr(prebuilt, "build", lambda directory, log: calls.append(directory) or directory / "x.so")
    messages, path_before = [], list(sys.path)
    assert hook.build_prebuilt_decoder(ROOT, log=messages.append) == ROOT / "gipp_codec" / "_prebuilt" / "x.so"
    assert calls == [ROOT / "gipp_codec" / "_prebuilt"] and "prebuilt decoder at" in messages[-1]
    assert sys.path == path_before  # the package root it put first on sys.path is taken off again


def test_install_hook_never_fails_the_install(monkeypatch):
    """Without a C compiler (or anything else going wrong) the install goes on, on the JIT;
    GIMG_SKIP_PREBUILT=1 skips the step."""
    from gipp_codec.errors import ConfigError

    hook = _setup_module()
    monkeypatch.delenv(hook.SKIP_VARIABLE, raising=False)

    def no_compiler(directory, log):
        raise ConfigError("ahead-of-time compilation failed (it needs a C compiler and Python's headers)")

    monkeypatch.setattr(prebuilt, "build", no_compiler)
    messages = []
    assert hook.build_prebuilt_decoder(ROOT, log=messages.append) is None
    assert "was not compiled" in messages[-1] and "gimg compile-decoder" in messages[-1]

    calls = []
    monkeypatch.setattr(prebuilt, "build", lambda directory, log: calls.append(directory))
    monkeypatch.setenv(hook.SKIP_VARIABLE, "1")
    assert hook.build_prebuilt_decoder(ROOT, log=messages.append) is None and calls == []
