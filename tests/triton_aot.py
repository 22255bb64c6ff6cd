"""Ahead-of-time compilation of Triton kernels for an H100/H200 (sm_90) without a GPU, for
the tests: the interpreter runs a kernel's maths but not Triton's compiler, which is stricter."""

import os

import pytest


def compile_sm90(kernel, signature: dict, constexprs: dict, options: dict):
    """``triton.compile`` of ``kernel`` for sm_90 (bundled ptxas); skips the calling test where
    triton is missing, runs in interpreter mode, or has another ahead-of-time API."""
    triton = pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("this process runs triton in interpreter mode")
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError as exc:
        pytest.skip(f"triton's ahead-of-time API differs in this version: {exc}")
    try:
        src = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    except (TypeError, AttributeError) as exc:
        pytest.skip(f"triton's ASTSource API differs in this version: {exc}")
    compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)
    assert compiled.asm["cubin"], kernel
    return compiled


def run_interpreted(test_file: str) -> dict:
    """Run ``python test_file --interpret-worker`` with ``TRITON_INTERPRET=1`` (Triton's
    interpreter is fixed when triton is imported, so it needs its own process) and return
    the JSON object its last stdout line holds; skips where triton is missing."""
    import json
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, os.path.abspath(test_file), "--interpret-worker"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
