"""Adam over a few whole tensors (the LSQ+ quantizer's scales and offsets), without
``torch.optim``.

The first torch optimizer a process constructs imports ``torch._dynamo`` (its methods are
wrapped to keep the compiler out), which takes seconds on a CPU machine and would be paid
by every encode (BENCHMARKS.md §8). The update here is torch's single-tensor Adam without
weight decay or amsgrad, operation for operation, so a run takes the same steps as with
``torch.optim.Adam`` on the CPU (tests/test_fit.py compares them) and the encoder writes
the same files as before. ``trainer.RowAdam`` (per-row step counts for the Gaussians) is
not used here: its float32 formula rounds differently from torch's, which would move every
encode's quantizer, and hence its file, by float rounding.
"""

from __future__ import annotations

import torch


class TensorAdam:
    """Adam with one learning rate (``lr``, settable between steps) for a list of tensors."""

    def __init__(self, params: list[torch.Tensor], lr: float, betas=(0.9, 0.999), eps=1e-8):
        self.params = list(params)
        self.lr = float(lr)
        self.b1, self.b2 = betas
        self.eps = eps
        self.steps = [0] * len(self.params)  # per tensor, as torch counts: only steps it took
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (set it to None)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of every parameter that has a gradient."""
        for i, (p, m, v) in enumerate(zip(self.params, self.m, self.v)):
            g = p.grad
            if g is None:
                continue
            self.steps[i] += 1
            bc1 = 1 - self.b1 ** self.steps[i]
            bc2_sqrt = (1 - self.b2 ** self.steps[i]) ** 0.5
            m.lerp_(g, 1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
            p.addcdiv_(m, denom, value=-(self.lr / bc1))
