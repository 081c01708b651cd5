"""Fit the polynomial coefficients used by kernels/fastmath.py and print them.

Numba on this machine has no SVML, so math.exp / math.erf in a loop call libm
one element at a time and do not vectorize. kernels/fastmath.py instead
evaluates short polynomials instead, which LLVM vectorizes:

    exp(x) = 2**n * P(r),  n = round(x / ln 2),  r = x - n ln 2,  |r| <= ln2 / 2
    erf(z) = z * S(z*z)                          for |z| < ERF32_SPLIT
    erfc(|z|) = T(|z| - ERF32_CENTER)            for ERF32_SPLIT <= |z| < ERF32_ONE_FROM
    erf(z) = sign(z)                             beyond (erf(3.92) = 1 - 2.9e-8 rounds to 1.0 in float32)

exp in float64 or in float32, erf in float32 (16 lanes of AVX-512). Why erf in two pieces: one
polynomial in z*z over all of [0, 3.92] has terms up to ~1e3 that cancel to a result below 1, which
float32 cannot carry; split at 1, each piece's terms stay below 1. The exp error printed is the fit's
(float64 evaluation); the erf errors are of the float32 evaluation with fused multiply-adds, rounding
included, on a dense grid.

Coefficients come from interpolation at Chebyshev nodes (close to minimax),
converted to plain monomials for Horner's rule. Run:

    python tools/goldens/fit_fastmath.py
"""

import math

import numpy as np
from numpy.polynomial import polynomial as P

EXP_DEGREE = 6
ERF32_SPLIT = 1.0
ERF32_CENTER = 2.5  # exact in float32; the tail's variable t = |z| - 2.5 lies in [-1.5, 1.42]
ERF32_ONE_FROM = 3.92
ERF32_SMALL_DEGREE = 5  # in z*z: the fewest degrees that reach the float32 rounding floor (~1.1e-7 absolute)
ERF32_TAIL_DEGREE = 12  # 11: 4.8e-7


def chebyshev_nodes(lo, hi, n):
    k = np.arange(n)
    return lo + (hi - lo) * (np.cos(np.pi * (k + 0.5) / n) + 1) / 2


def fit(fn, lo, hi, degree):
    """Monomial coefficients c[0..degree] (lowest first) interpolating fn at Chebyshev nodes."""
    x = chebyshev_nodes(lo, hi, 4 * degree + 4)
    y = np.array([fn(v) for v in x])
    return P.Polynomial.fit(x, y, degree).convert().coef


def horner(coef, x):
    acc = np.zeros_like(x) + coef[-1]
    for c in coef[-2::-1]:
        acc = acc * x + c
    return acc


def exp_coefficients():
    half = math.log(2) / 2
    return fit(math.exp, -half, half, EXP_DEGREE)


def erf32_coefficients():
    """(S, T) of the module docstring, as float32: the numbers the kernel multiplies by."""
    def erf_over_z(u):
        z = math.sqrt(u)
        return 2 / math.sqrt(math.pi) if z == 0 else math.erf(z) / z

    small = fit(erf_over_z, 0.0, ERF32_SPLIT**2, ERF32_SMALL_DEGREE)
    tail = fit(lambda t: math.erfc(t + ERF32_CENTER), ERF32_SPLIT - ERF32_CENTER, ERF32_ONE_FROM - ERF32_CENTER,
               ERF32_TAIL_DEGREE)
    return small.astype(np.float32), tail.astype(np.float32)


def horner_fma32(coef, x):
    """Horner's rule in float32 with a fused multiply-add at each step (exact in float64, then rounded once)."""
    acc = np.full(x.shape, coef[-1], np.float32)
    for c in coef[-2::-1]:
        acc = (acc.astype(np.float64) * x + np.float64(c)).astype(np.float32)
    return acc


def erf32_errors():
    """The largest absolute error of each erf piece in float32, over 2M points of [0, 3.92]."""
    small, tail = erf32_coefficients()
    z = np.linspace(0.0, ERF32_ONE_FROM, 2_000_001).astype(np.float32)
    exact = np.array([math.erf(v) for v in z.astype(np.float64)])
    lo = z < ERF32_SPLIT
    small_erf = (z[lo].astype(np.float64) * horner_fma32(small, z[lo] * z[lo])).astype(np.float32)
    tail_erf = np.float32(1) - horner_fma32(tail, z[~lo] - np.float32(ERF32_CENTER))
    return float(np.abs(small_erf - exact[lo]).max()), float(np.abs(tail_erf - exact[~lo]).max())


def main():
    exp_c = exp_coefficients()
    # Fit error of the float64 evaluation (before rounding to float32).
    half = math.log(2) / 2
    r = np.linspace(-half, half, 200_001)
    exp_err = np.max(np.abs(horner(exp_c, r) / np.exp(r) - 1))
    print(f"EXP_COEFFS = ({', '.join(repr(float(c)) for c in exp_c)})  # fit error {exp_err:.2e}")
    (small, tail), (small_err, tail_err) = erf32_coefficients(), erf32_errors()
    print(f"ERF32_SMALL = ({', '.join(repr(float(c)) for c in small)})  # absolute error in float32 {small_err:.2e}")
    print(f"ERF32_TAIL = ({', '.join(repr(float(c)) for c in tail)})  # absolute error in float32 {tail_err:.2e}")


if __name__ == "__main__":
    main()
