#!/usr/bin/env python3
"""The render kernels' exp polynomial: a minimax fit of exp(v) on [-9/64, 9/64], relative error.

    python tools/fit_exp_polynomial.py [--degree 4] [--iterations 200] [--taylor]

``gipp_codec/render/numba_kernels.py`` evaluates a Gaussian's weight as
``exp(-m2/2) = exp(-9/4) * exp(v)**16`` with ``v = 9/64 - m2/32`` (m2 in [0, 9], so v in
[-9/64, 9/64]) and exp(v) a polynomial. This tool derives that polynomial's coefficients:
Lawson's algorithm (iteratively reweighted least squares whose weights converge to the
minimax solution) on 4001 Chebyshev points, minimising the largest relative error
|p(v) / exp(v) - 1|. It prints the coefficients (lowest power first) rounded to float32, as
the kernel stores them, and the largest relative error of exp(v) and of exp(v)**16, both in
exact (binary64) arithmetic with the float32 coefficients and as the kernel evaluates them
(binary32 Horner steps and squarings). ``--taylor`` reports the same for the degree-D
Taylor polynomial instead (the kernels used degree 5 before 2026-11-30). It also prints the polynomial's smallest value over
v in [-64, 9/64] (m2 up to 2052): the kernels evaluate it, then square it four times, on
every lane of a Gaussian's box, also outside the ellipse, where the result is discarded; a
value near zero there would make that 16th power subnormal, which x86 multiplies slowly.
"""

import argparse
import math
import sys

import numpy as np

HALF_RANGE = 9.0 / 64.0  # |v| <= 9/64


def lawson_fit(degree: int, iterations: int, points: int = 4001) -> np.ndarray:
    """Coefficients [degree + 1] (lowest power first, float64) of the polynomial nearest to
    exp on [-HALF_RANGE, HALF_RANGE] in the largest relative error."""
    v = HALF_RANGE * np.cos(np.pi * (np.arange(points) + 0.5) / points)  # [P] Chebyshev points
    f = np.exp(v)
    basis = np.vander(v, degree + 1, increasing=True) / f[:, None]  # [P, D+1]: relative residual rows
    weights = np.full(points, 1.0 / points)
    coef = np.zeros(degree + 1)
    for _ in range(iterations):
        sw = np.sqrt(weights)[:, None]
        coef = np.linalg.lstsq(basis * sw, np.ones(points) * sw[:, 0], rcond=None)[0]
        err = np.abs(basis @ coef - 1.0)
        weights = weights * err
        weights /= weights.sum()
    return coef


def errors(coef32: np.ndarray) -> dict:
    """Largest relative errors of float32 coefficients coef32 over a fine grid of v."""
    v64 = np.linspace(-HALF_RANGE, HALF_RANGE, 400001)
    p64 = np.polynomial.polynomial.polyval(v64, coef32.astype(np.float64))
    v32 = v64.astype(np.float32)
    p32 = np.full_like(v32, coef32[-1])
    for c in coef32[-2::-1]:
        p32 = p32 * v32 + c  # binary32 Horner step, as the kernel (which may fuse it)
    q32 = p32
    for _ in range(4):
        q32 = q32 * q32
    exact16 = np.exp(16.0 * v32.astype(np.float64))
    return {
        "exp(v), binary64": float(np.abs(p64 / np.exp(v64) - 1.0).max()),
        "exp(v)**16, binary64": float(np.abs(p64 ** 16 / np.exp(16.0 * v64) - 1.0).max()),
        "exp(v)**16, binary32 (as the kernel)": float(np.abs(q32.astype(np.float64) / exact16 - 1.0).max()),
    }


def main(argv=None) -> int:
    """Entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--degree", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--taylor", action="store_true", help="the Taylor polynomial instead of the fit")
    args = ap.parse_args(argv)
    if args.taylor:
        coef32 = np.array([1.0 / math.factorial(n) for n in range(args.degree + 1)], np.float32)
    else:
        coef32 = lawson_fit(args.degree, args.iterations).astype(np.float32)
    kind = "Taylor polynomial" if args.taylor else "minimax fit"
    print(f"degree {args.degree} {kind} on [-9/64, 9/64], coefficients (lowest power first, float32):")
    print("(" + ", ".join(repr(float(c)) for c in coef32) + ")")
    for name, value in errors(coef32).items():
        print(f"largest relative error of {name}: {value:.2e}")
    v = np.linspace(-64.0, HALF_RANGE, 2_000_001)
    print(f"smallest value over v in [-64, 9/64]: {np.polynomial.polynomial.polyval(v, coef32.astype(np.float64)).min():.4f}")
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("fit_exp_polynomial", main))
