#!/usr/bin/env python3
"""How many device operations, and host syncs, one training iteration of the CUDA code path
issues, counted on any machine.

On the GPU the encoder's iterations are bound by per-operation overhead, not by arithmetic
(BENCHMARKS.md §7): a float iteration took 4.54 ms on an H200 while its render kernels take a
fraction of that. What an iteration costs there therefore follows the number of operations
it launches and the host syncs that stall the queue. This tool counts both without a GPU:
it runs the trainer on CPU tensors with the 'cuda' renderer's Triton kernels under
``TRITON_INTERPRET=1``, with the CPU-only shortcuts switched off (numba Adam, the numba QAT
and rate kernels) and the CUDA-only ones on (the Triton kernels of Adam, the fake quantizer
and the quantizer's constraints),
so every branch taken is the one taken on CUDA, and counts what reaches torch's dispatcher
per iteration:

- ``ops``: aten operations that compute (views, reshapes and other aliasing operations are
  left out: on CUDA they launch nothing), plus Triton kernel launches;
- ``syncs``: operations that read a device value on the host (``item``, ``nonzero``,
  ``repeat_interleave`` without an output size, boolean-mask indexing, ...);
- the operations, most frequent first, with ``--top K``.

    python tools/gpu_op_count.py [--iterations 40] [--gaussians 60] [--top 25] [--json OUT] [--repo DIR]

``--repo DIR`` counts the ``gipp_codec`` of another checkout (say a worktree of an older
commit) with this tool.

Medians per phase (float iterations, QAT iterations) over the iterations run; the image is a
small synthetic one (the counts do not depend on its size, the kernels' work does).
"""

import argparse
import collections
import json
import os
import statistics
import sys
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported anywhere
REPO = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from tool_record import check_record_path, write_text_atomic  # noqa: E402

PROG = "gpu_op_count"

# aten operations that read a device value on the host (a sync on CUDA)
SYNC_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "is_nonzero",
            "equal", "allclose"}
# repeat_interleave syncs unless it is told its output size
SYNC_WITHOUT_SIZE = {"repeat_interleave"}
# aten operations that launch nothing on CUDA (metadata only), besides the view ops
NO_LAUNCH = {"empty", "empty_like", "empty_strided", "lift_fresh", "detach", "alias", "_to_copy_noop",
             "resize_", "set_", "_reshape_alias", "unsafe_view", "_unsafe_view", "as_strided",
             "new_empty", "new_empty_strided", "is_same_size", "sym_size", "sym_stride", "sym_numel",
             "sym_storage_offset", "size", "stride", "dim", "numel", "is_contiguous"}


class OpCounter(TorchDispatchMode):
    """Counts computing aten ops and host syncs, by name, since the last ``reset``; ops issued
    while ``paused`` (the interpreter's own copies around a Triton launch) are not counted."""

    def __init__(self):
        super().__init__()
        self.paused = False
        self.reset()

    def reset(self):
        self.ops = collections.Counter()
        self.syncs = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name in SYNC_OPS or (name in SYNC_WITHOUT_SIZE and kwargs.get("output_size") is None):
            self.syncs[name] += 1
        if name == "index" and any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                                   for i in (args[1] if len(args) > 1 else []) if i is not None):
            self.syncs["index (boolean mask)"] += 1
        if not (func.is_view or name in NO_LAUNCH or name in SYNC_OPS):
            self.ops[name] += 1
        return func(*args, **kwargs)


# modules whose Triton kernels the CUDA path launches (those a revision has)
KERNEL_MODULES = ("gipp_codec.render.cuda_triton", "gipp_codec.render.tiles_triton", "gipp_codec.fit.adam_triton",
                  "gipp_codec.quant.lsq_triton", "gipp_codec.fit.rate_triton")


def count_triton_launches(counter: OpCounter) -> None:
    """Wrap the CUDA path's Triton kernels so that each launch counts as one op (and the
    interpreter's work inside it as none)."""
    import importlib

    for module_name in KERNEL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in dir(module):
            kernel = getattr(module, name)
            if name.endswith("_kernel") and hasattr(kernel, "__getitem__"):  # launched kernels, not helpers
                setattr(module, name, _CountedKernel(kernel, name, counter))


class _CountedKernel:
    def __init__(self, kernel, name, counter):
        self.kernel, self.name, self.counter = kernel, name, counter

    def __getitem__(self, grid):
        launch = self.kernel[grid]

        def run(*args, **kwargs):
            self.counter.ops[f"triton:{self.name}"] += 1
            self.counter.paused = True
            try:
                return launch(*args, **kwargs)
            finally:
                self.counter.paused = False

        return run


def use_cuda_branches() -> None:
    """Switch off the CPU-only shortcuts so that CPU tensors take the branches CUDA takes."""
    from gipp_codec.fit import trainer
    from gipp_codec.quant import lsq

    trainer._cpu_f32 = lambda t: False  # RowAdam: not the numba kernels
    lsq.LSQPlus._fused = lambda self, x: False  # forward() and quantize(): the torch forms CUDA runs
    trainer._rate_kernel_for = lambda params, quant: False  # the rate term: not the numba kernel
    # every Triton fast path (Adam, LSQ+'s training step and constraints) takes CPU tensors too:
    # through triton_path, or in a checkout from before it (--repo) through its own hooks
    try:
        from gipp_codec import triton_path

        triton_path.serves = lambda t: True
    except ImportError:
        pass
    for module, name in ((trainer, "_triton_rows"), (lsq, "_constrains_on_triton"), (lsq, "_fake_quant_on_triton")):
        if hasattr(module, name):
            setattr(module, name, lambda t: True)


def synthetic_image(h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth test image with an edge: [h, w, 3] uint8."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([0.5 + 0.4 * np.sin(x / 7.0), 0.5 + 0.4 * np.cos(y / 5.0),
                    np.where(x + y > (h + w) / 2, 0.8, 0.2)], axis=2)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)


def count(iterations: int, gaussians: int) -> dict:
    """Run the trainer (quantizing) and return per-phase medians and the op tallies."""
    from gipp_codec.fit.config import FitConfig
    from gipp_codec.fit.trainer import train
    from gipp_codec.render.cuda_triton import render_cuda

    use_cuda_branches()
    counter = OpCounter()
    count_triton_launches(counter)
    target = torch.from_numpy(synthetic_image().astype(np.float32) / 255.0)
    per_phase = collections.defaultdict(list)  # phase -> [(ops, syncs)]
    tallies = collections.defaultdict(collections.Counter)  # phase -> op name -> count
    sync_tallies = collections.defaultdict(collections.Counter)

    def progress(t, total, info):
        phase = info["phase"]
        per_phase[phase].append((sum(counter.ops.values()), sum(counter.syncs.values())))
        tallies[phase].update(counter.ops)
        sync_tallies[phase].update(counter.syncs)
        counter.reset()

    # no recycling: a run this short grows at every iteration (every round(0.025 * iterations),
    # at least 1), so each iteration would recycle, where a 5000-iteration run does so once
    # every 125; the per-iteration counts are of the iterations between growth steps
    cfg = FitConfig(grow_recycle_frac=0.0)
    with counter:
        train(target, gaussians, iterations, cfg, render_cuda, seed=0, quantize=True, progress=progress)
    out = {}
    for phase, rows in per_phase.items():
        rows = rows[1:] if len(rows) > 1 else rows  # the first iteration also sets things up
        n = len(rows)
        out[phase] = {
            "iterations": n,
            "ops_median": statistics.median(r[0] for r in rows),
            "syncs_median": statistics.median(r[1] for r in rows),
            "ops_per_iteration": {k: v / len(per_phase[phase]) for k, v in tallies[phase].most_common()},
            "syncs_per_iteration": {k: v / len(per_phase[phase]) for k, v in sync_tallies[phase].most_common()},
        }
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--gaussians", type=int, default=60)
    ap.add_argument("--top", type=int, default=25, help="list the K most frequent operations per phase")
    ap.add_argument("--json", default=None)
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose gipp_codec is counted")
    args = ap.parse_args(argv)
    check_record_path(PROG, args.json)
    sys.path.insert(0, str(args.repo.resolve()))
    result = count(args.iterations, args.gaussians)
    for phase, r in result.items():
        print(f"{phase}: median {r['ops_median']:g} operations and {r['syncs_median']:g} host syncs "
              f"per iteration (over {r['iterations']} iterations)")
        for name, per in list(r["ops_per_iteration"].items())[:args.top]:
            print(f"  {per:7.2f}  {name}")
        for name, per in r["syncs_per_iteration"].items():
            print(f"  sync {per:5.2f}  {name}")
    if args.json:
        import gipp_codec

        meta = {"argv": sys.argv[1:] if argv is None else argv, "gipp_codec": str(Path(gipp_codec.__file__).parent)}
        write_text_atomic(args.json, json.dumps({**meta, **result}, indent=1))
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("gpu_op_count", main))
