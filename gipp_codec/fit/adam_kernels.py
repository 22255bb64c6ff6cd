"""numba kernels of ``trainer.RowAdam``'s step on the CPU.

The torch form of the step (``RowAdam.step_composed``) is about twenty tensor operations on
[N, C] tensors per iteration, each a separate pass with its own dispatch, in every one of
an encode's iterations. Here each parameter tensor is updated in one pass, with the same
float32 formula (the whole-encode effect: BENCHMARKS.md §8):

    m = m * b1 + (1 - b1) * g
    v = v * b2 + (1 - b2) * g * g
    p = p - lr * (m / bc1) / (sqrt(v / bc2) + eps),   bc = 1 - beta ** step (per row)

(with a per-row warm-up of W steps, bc1 is further divided by min(1, step / W))

(torch may fuse a multiply-add where these kernels round twice, so the two forms agree to
float32 rounding, not bit for bit; tests/test_fit.py). Training code only.
"""

import numpy as np

from gipp_codec.jit import njit

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")  # no fastmath; IEEE division


@njit(**_OPTS)
def advance_steps(steps, b1, b2, bc1, bc2, warmup=0.0):
    """steps [N] float32 += 1; bc1, bc2 [N] float32 = 1 - b1 ** steps, 1 - b2 ** steps.
    With ``warmup`` W > 0, bc1 is also divided by min(1, steps / W), which scales a row's
    step by its age for its first W steps (a per-row lr warm-up; W = 0 leaves bc1 as it is).
    Rows added together share a step count, so a power is computed only where the count
    changes from the previous row's."""
    f1 = np.float32(b1)
    f2 = np.float32(b2)
    fw = np.float32(warmup)
    one = np.float32(1.0)
    last = np.float32(-1.0)
    r1 = one
    r2 = one
    for i in range(steps.shape[0]):
        s = steps[i] + one
        steps[i] = s
        if s != last:
            r1 = one - f1 ** s
            if s < fw:
                r1 = r1 * (fw / s)
            r2 = one - f2 ** s
            last = s
        bc1[i] = r1
        bc2[i] = r2


@njit(**_OPTS)
def adam_rows(p, g, m, v, bc1, bc2, lr, b1, b2, eps):
    """One Adam step of p [N, C] float32 with gradient g [N, C] and moments m, v [N, C], in
    place; bc1, bc2 [N] are each row's bias corrections (see advance_steps). Serial: the
    loop is short, and a parallel loop's thread start-up is a fixed cost of its own."""
    f1 = np.float32(b1)
    f2 = np.float32(b2)
    c1 = np.float32(1.0 - b1)
    c2 = np.float32(1.0 - b2)
    flr = np.float32(lr)
    feps = np.float32(eps)
    n, nc = p.shape
    for i in range(n):
        r1 = bc1[i]
        r2 = bc2[i]
        for j in range(nc):
            gg = g[i, j]
            mm = m[i, j] * f1 + c1 * gg
            vv = v[i, j] * f2 + c2 * gg * gg
            m[i, j] = mm
            v[i, j] = vv
            p[i, j] = p[i, j] - flr * (mm / r1) / (np.sqrt(vv / r2) + feps)
