"""Fit the polynomial coefficients used by kernels/fastmath.py and print them.

Numba on this machine has no SVML, so math.exp / math.erf in a loop call libm
one element at a time and do not vectorize. kernels/fastmath.py instead
evaluates short polynomials in float64 (8 lanes of AVX-512), which LLVM
vectorizes; the float64 evaluation keeps the polynomial's own rounding far
below float32 resolution, so the error of a float32 result is the fit error
(printed here) plus the final rounding to float32 (2**-24 ~ 5.96e-8).

    exp(x) = 2**n * P(r),  n = round(x / ln 2),  r = x - n ln 2,  |r| <= ln2 / 2
    erf(x) = x * Q(x*x)    for |x| <= 4;  sign(x) for |x| > 4
             (erf(4) = 1 - 1.5e-8 already rounds to 1.0 in float32)

Coefficients come from interpolation at Chebyshev nodes (close to minimax),
converted to plain monomials for Horner's rule. Run:

    python tools/goldens/fit_fastmath.py
"""

import math

import numpy as np
from numpy.polynomial import polynomial as P

EXP_DEGREE = 6
ERF_DEGREE = 17  # in u = x*x, so x * Q(u) is an odd polynomial of degree 35
ERF_CUTOFF = 4.0


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


def erf_coefficients():
    def erf_over_x(u):
        x = math.sqrt(u)
        return 2 / math.sqrt(math.pi) if x == 0 else math.erf(x) / x

    return fit(erf_over_x, 0.0, ERF_CUTOFF**2, ERF_DEGREE)


def main():
    exp_c = exp_coefficients()
    erf_c = erf_coefficients()
    # Fit error of the float64 evaluation (before rounding to float32).
    half = math.log(2) / 2
    r = np.linspace(-half, half, 200_001)
    exp_err = np.max(np.abs(horner(exp_c, r) / np.exp(r) - 1))
    x = np.linspace(1e-8, ERF_CUTOFF, 400_001)
    erf_err = np.max(np.abs(x * horner(erf_c, x * x) / np.array([math.erf(v) for v in x]) - 1))
    print(f"EXP_COEFFS = ({', '.join(repr(float(c)) for c in exp_c)})  # fit error {exp_err:.2e}")
    print(f"ERF_COEFFS = ({', '.join(repr(float(c)) for c in erf_c)})  # fit error {erf_err:.2e}")


if __name__ == "__main__":
    main()
