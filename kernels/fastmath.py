"""Vectorizable exp and erf for Numba kernels.

Numba here has no SVML, so `math.exp` / `math.erf` in a loop become one libm
call per element and block vectorization. These are short polynomials,
evaluated in float64 so that LLVM vectorizes them (8 lanes of AVX-512) and
their own rounding stays far below float32 resolution:

    exp(x) = 2**n * P(r),  n = round(x / ln 2),  r = x - n ln 2,  |r| <= ln 2 / 2
    erf(x) = x * Q(x*x) for |x| <= 4,  sign(x) beyond (erf(4) = 1 - 1.5e-8 is 1.0 in float32)

Error bound, relative, for a float32 argument and a float32 result:
    fit error (exp 2.6e-9, erf 2.5e-9, printed by tools/goldens/fit_fastmath.py)
    + final rounding to float32 (2**-24 = 5.96e-8)  <  7e-8, well under 2e-7.
tests/test_kernels.py checks the bound against math.exp / math.erf on dense grids.
"""

import math

import llvmlite.ir
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

# Coefficients, lowest degree first, from `python tools/goldens/fit_fastmath.py`
# (interpolation at Chebyshev nodes, converted to monomials).
EXP_COEFFS = (0.9999999999595485, 1.0000000377274472, 0.5000000107749288, 0.16666415477239985,
              0.041666218274701405, 0.008375128890027748, 0.0013948580801952533)  # fit error 2.59e-09
ERF_COEFFS = (1.1283791661821796, -0.37612635107242176, 0.11283765362526696, -0.02686544488482917,
              0.005222916049677969, -0.0008538815328386991, 0.00011998431311787514, -1.468515895531102e-05,
              1.5715111114144933e-06, -1.4610460045615858e-07, 1.1615712339691579e-08, -7.716014949861526e-10,
              4.160724899273628e-11, -1.7585283989053239e-12, 5.5664295617632874e-14, -1.2340565356520115e-15,
              1.7019186569786008e-17, -1.0956072826447544e-19)  # fit error 2.50e-09
ERF_CUTOFF = 4.0
MAX_RELATIVE_ERROR = 7e-8  # for float32 results (normal range): fit error + rounding, see above

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_EXP_LO = -708.0  # exp(-708) ~ 3e-308 is still a normal float64; anything this small is 0.0 in float32
_EXP_HI = 709.0   # beyond float32 range (88.7) anyway: the cast to float32 gives inf

(E0, E1, E2, E3, E4, E5, E6) = EXP_COEFFS
(G0, G1, G2, G3, G4, G5, G6) = (np.float32(c) for c in EXP_COEFFS)  # exp32: the same fit, in float32
_EXP32_LO = np.float32(-87.33654)  # ln(FLT_MIN): below it the result is not a normal float32
_EXP32_HI = np.float32(88.72284)  # ln(FLT_MAX) rounded up: above it the float32 result is inf
_LOG2E32 = np.float32(_LOG2E)
_LN2_HI32 = np.float32(0.693145751953125)  # ln 2 to 16 bits: n * _LN2_HI32 is exact for |n| <= 256
_LN2_LO32 = np.float32(_LN2 - 0.693145751953125)
EXP32_MAX_RELATIVE_ERROR = 1.5e-7  # measured 8.9e-8 (1.5 ulp) on a dense grid of the normal range (tests/test_kernels.py)
(F0, F1, F2, F3, F4, F5, F6, F7, F8, F9, F10, F11, F12, F13, F14, F15, F16, F17) = ERF_COEFFS


def _reinterpret(int_type, float_type, llvm_float):
    """An intrinsic that reinterprets an `int_type` bit pattern as a `float_type` (an LLVM bitcast, which vectorizes)."""

    @intrinsic
    def bits_as_float(typingctx, bits):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvm_float)

        return float_type(int_type), codegen

    return bits_as_float


_int32_bits_as_float32 = _reinterpret(types.int32, types.float32, llvmlite.ir.FloatType())
_int64_bits_as_float64 = _reinterpret(types.int64, types.float64, llvmlite.ir.DoubleType())


@intrinsic
def maxnum(typingctx, a, b):
    """max(a, b) as LLVM's maxnum (a NaN operand is ignored): unlike Python's max, a loop of it vectorizes."""
    sig = a(a, a)

    def codegen(context, builder, signature, args):
        ty = args[0].type
        fn = builder.module.declare_intrinsic("llvm.maxnum", [ty], llvmlite.ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def prefetch(typingctx, array, flat_index):
    """Hint the CPU to start loading array.flat[flat_index] (a C-contiguous array) into cache; no effect on results."""
    sig = types.void(array, flat_index)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), llvmlite.ir.IntType(8).as_pointer())
        i32 = llvmlite.ir.IntType(32)
        fnty = llvmlite.ir.FunctionType(llvmlite.ir.VoidType(), [address.type, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", fnty=fnty)
        builder.call(fn, [address, i32(0), i32(3), i32(1)])  # read, high locality, data cache
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", error_model="numpy", cache=True)
def exp64(x):
    """exp of a float64 whose result is meant for float32 (relative error < 3e-9 before rounding).

    NaN propagates; -inf gives 0; +inf and anything past 709 give a huge
    finite value or inf, which is inf once cast to float32.
    """
    y = min(max(x, _EXP_LO), _EXP_HI)
    n = math.floor(y * _LOG2E + 0.5)  # nearest integer to y / ln2
    r = y - n * _LN2
    p = E0 + r * (E1 + r * (E2 + r * (E3 + r * (E4 + r * (E5 + r * E6)))))
    scale = _int64_bits_as_float64((types.int64(n) + 1023) << 52)  # 2**n, n in [-1022, 1023]
    out = p * scale
    return out if x == x else x


@njit(inline="always", error_model="numpy", cache=True)
def exp32(x):
    """exp of a float32 in float32 arithmetic: 8 lanes per AVX2 vector instead of exp64's 4.

    For the softmax, where the result is float32 anyway: the same range reduction and polynomial
    as exp64 (n ln 2 split into a short high part, exact in float32, and a low part), evaluated
    in float32. Relative error below EXP32_MAX_RELATIVE_ERROR on normal results; results below
    FLT_MIN (x < -87.3365) are 0, above FLT_MAX inf; NaN propagates.
    """
    y = min(max(x, _EXP32_LO), _EXP32_HI)
    n = np.floor(y * _LOG2E32 + np.float32(0.5))  # float32, and int32 below: both convert in vector registers
    r = (y - n * _LN2_HI32) - n * _LN2_LO32
    p = G0 + r * (G1 + r * (G2 + r * (G3 + r * (G4 + r * (G5 + r * G6)))))
    k = np.int32(n)  # in [-126, 128]: 2**k in two factors, each a normal float32
    half = k >> 1
    out = p * _int32_bits_as_float32((half + 127) << 23) * _int32_bits_as_float32((k - half + 127) << 23)
    if x < _EXP32_LO:
        return np.float32(0.0)
    return out if x == x else x


@njit(inline="always", error_model="numpy", cache=True)
def erf64(x):
    """erf of a float64 whose result is meant for float32 (relative error < 3e-9 before rounding)."""
    z = min(max(x, -ERF_CUTOFF), ERF_CUTOFF)
    u = z * z
    # Estrin's scheme: the same polynomial as Horner's rule, but a dependency
    # chain of 6 steps instead of 17, so the vectorized loop is not latency-bound.
    u2 = u * u
    u4 = u2 * u2
    u8 = u4 * u4
    a0 = (F0 + F1 * u) + (F2 + F3 * u) * u2
    a1 = (F4 + F5 * u) + (F6 + F7 * u) * u2
    a2 = (F8 + F9 * u) + (F10 + F11 * u) * u2
    a3 = (F12 + F13 * u) + (F14 + F15 * u) * u2
    q = (a0 + a1 * u4) + (a2 + a3 * u4) * u8 + (F16 + F17 * u) * (u8 * u8)
    if x >= ERF_CUTOFF:
        return 1.0
    if x <= -ERF_CUTOFF:
        return -1.0
    return z * q if x == x else x
