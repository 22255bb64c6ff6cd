"""``RowAdam``'s step on CUDA in one Triton launch (the three parameter tensors at once).

The torch form of the step (``RowAdam.step_composed``) is about 38 small operations; on a GPU
their launch overhead, not their arithmetic, is what an iteration pays (BENCHMARKS.md §7).
This kernel does the same step, one lane per Gaussian row: the row's step count advances, its
bias corrections follow (b ** s as exp2(s * log2 b)), and each parameter's moments and values
are updated in place. It agrees with the torch form to float32 rounding (a test), like the CPU
kernels of ``adam_kernels`` do.
"""

import math

import torch
import triton
import triton.language as tl

ROWS_PER_PROGRAM = 256


@triton.jit
def _update(p_ptr, g_ptr, m_ptr, v_ptr, rows, live, bc1, bc2, lr, b1, b2, eps, WIDTH: tl.constexpr):
    """Adam on the WIDTH columns of ``rows`` of one parameter [N, WIDTH], in place."""
    for j in tl.static_range(WIDTH):
        at = rows * WIDTH + j
        g = tl.load(g_ptr + at, mask=live, other=0.0)
        m = tl.load(m_ptr + at, mask=live, other=0.0) * b1 + g * (1.0 - b1)
        v = tl.load(v_ptr + at, mask=live, other=0.0) * b2 + (g * g) * (1.0 - b2)
        p = tl.load(p_ptr + at, mask=live, other=0.0)
        step = lr * tl.div_rn(m, bc1) / (tl.sqrt_rn(tl.div_rn(v, bc2)) + eps)
        tl.store(m_ptr + at, m, mask=live)
        tl.store(v_ptr + at, v, mask=live)
        tl.store(p_ptr + at, p - step, mask=live)


@triton.jit
def _row_adam_kernel(
    steps_ptr,  # [N] float32, each row's step count (advanced here)
    p0, g0, m0, v0, p1, g1, m1, v1, p2, g2, m2, v2,  # three parameters [N, W_k] and their state
    n, lr0, lr1, lr2, b1, b2, log2_b1, log2_b2, eps, warmup,
    W0: tl.constexpr, W1: tl.constexpr, W2: tl.constexpr, WARMUP: tl.constexpr, BLOCK: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = rows < n
    s = tl.load(steps_ptr + rows, mask=live, other=0.0) + 1.0
    tl.store(steps_ptr + rows, s, mask=live)
    bc1 = 1.0 - tl.exp2(s * log2_b1)
    if WARMUP:
        bc1 = tl.div_rn(bc1, tl.minimum(tl.div_rn(s, warmup), 1.0))
    bc2 = 1.0 - tl.exp2(s * log2_b2)
    _update(p0, g0, m0, v0, rows, live, bc1, bc2, lr0, b1, b2, eps, W0)
    _update(p1, g1, m1, v1, rows, live, bc1, bc2, lr1, b1, b2, eps, W1)
    _update(p2, g2, m2, v2, rows, live, bc1, bc2, lr2, b1, b2, eps, W2)


def fits(steps: torch.Tensor, params: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor]) -> bool:
    """Whether ``row_adam_step`` serves this state: three float32 contiguous parameters with
    gradients, on one device, and contiguous moments."""
    tensors = [steps, *params, *m, *v]
    return (len(params) == 3 and all(p.grad is not None and p.grad.dtype == torch.float32 for p in params)
            and all(t.dtype == torch.float32 and t.is_contiguous() and t.device == steps.device for t in tensors))


def row_adam_step(steps: torch.Tensor, params: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor],
                  lrs: list[float], b1: float, b2: float, eps: float, warmup: int) -> None:
    """One Adam step of the rows of ``params`` (means [N, 2], covs [N, 3], colors [N, 3]) with
    per-row step counts ``steps`` [N, 1], in place (``RowAdam.step_composed``'s step)."""
    n = int(steps.shape[0])
    if n == 0:
        return
    grads = [p.grad.contiguous() for p in params]
    args = []
    for p, g, mm, vv in zip(params, grads, m, v):
        args += [p.detach(), g, mm, vv]
    _row_adam_kernel[(triton.cdiv(n, ROWS_PER_PROGRAM),)](
        steps, *args, n, float(lrs[0]), float(lrs[1]), float(lrs[2]), float(b1), float(b2),
        math.log2(b1), math.log2(b2), float(eps), float(max(warmup, 1)),
        W0=int(params[0].shape[1]), W1=int(params[1].shape[1]), W2=int(params[2].shape[1]),
        WARMUP=warmup > 0, BLOCK=ROWS_PER_PROGRAM, num_warps=4, enable_fp_fusion=False,
    )
