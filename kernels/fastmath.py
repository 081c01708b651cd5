"""Vectorizable exp, and GELU's erf, for Numba kernels.

Numba here has no SVML, so `math.exp` / `math.erf` in a loop become one libm
call per element and block vectorization. These are short polynomials, which
LLVM vectorizes:

    exp(x) = 2**n * P(r),  n = round(x / ln 2),  r = x - n ln 2,  |r| <= ln 2 / 2
             in float64 (exp64: its own rounding far below float32 resolution) or float32 (exp32)
    erf(z) = z * S(z*z)                  for |z| < 1
    erfc(|z|) = T(|z| - 2.5)             for 1 <= |z| < 3.92, erf = sign(z) (1 - erfc)
    erf(z) = sign(z)                     beyond (erf(3.92) = 1 - 2.9e-8 is 1.0 in float32)
             in float32, as GELU's (gelu32: LLVM IR, so that a loop of it runs 16 lanes wide)

exp64's error bound, relative, for a float32 argument and a float32 result:
    fit error (2.6e-9, printed by tools/goldens/fit_fastmath.py)
    + final rounding to float32 (2**-24 = 5.96e-8)  <  7e-8, well under 2e-7.
erf's, absolute: 1.1e-7 (the float32 evaluation's rounding included; the reference's own erf is
within 1.2e-7). tests/test_kernels.py checks the bounds against math.exp / math.erf on dense grids.
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
# GELU's erf in float32, the same script: z * S(z*z) below ERF32_SPLIT, erfc = T(|z| - ERF32_CENTER) up to
# ERF32_ONE_FROM. Why two pieces: one polynomial in z*z over all of [0, 3.92] has terms up to ~1e3 that
# cancel to a result below 1, which float32 cannot carry (the float64 polynomial it replaces, degree 17,
# ran 8 lanes wide: GELU took ~1 ns a value on one core of the Xeon, 19% of a 4096 x 384 -> 1536 linear).
ERF32_SMALL = (1.1283791065216064, -0.37612348794937134, 0.11280364543199539, -0.026716385036706924,
               0.004923277534544468, -0.0005654105916619301)  # absolute error in float32 1.12e-07
ERF32_TAIL = (0.00040693109622225165, -0.002178095979616046, 0.005446658935397863, -0.008353054523468018,
              0.008615349419414997, -0.00610381830483675, 0.0028179690707474947, -0.0005696474108844995,
              -0.0002861793909687549, 0.000278505525784567, -6.208816193975508e-05, -2.0963019778719172e-05,
              9.166920790448785e-06)  # absolute error in float32 8.09e-08
ERF32_SPLIT, ERF32_CENTER, ERF32_ONE_FROM = 1.0, 2.5, 3.92
GELU32_MAX_ABS_ERROR = 1.5e-7  # per unit of max(1, |x|): erf's 1.1e-7 times |x| / 2, plus the roundings

_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_SQRT_HALF = 0.7071067811865476
_EXP_LO = -708.0  # exp(-708) ~ 3e-308 is still a normal float64; anything this small is 0.0 in float32
_EXP_HI = 709.0   # beyond float32 range (88.7) anyway: the cast to float32 gives inf

(E0, E1, E2, E3, E4, E5, E6) = EXP_COEFFS
MAX_RELATIVE_ERROR = 7e-8  # exp64's, for float32 results (normal range): fit error + rounding, see above
(G0, G1, G2, G3, G4, G5, G6) = (np.float32(c) for c in EXP_COEFFS)  # exp32: the same fit, in float32
_EXP32_LO = np.float32(-87.33654)  # ln(FLT_MIN): below it the result is not a normal float32
_EXP32_HI = np.float32(88.72284)  # ln(FLT_MAX) rounded up: above it the float32 result is inf
_LOG2E32 = np.float32(_LOG2E)
_LN2_HI32 = np.float32(0.693145751953125)  # ln 2 to 16 bits: n * _LN2_HI32 is exact for |n| <= 256
_LN2_LO32 = np.float32(_LN2 - 0.693145751953125)
EXP32_MAX_RELATIVE_ERROR = 1.5e-7  # measured 8.9e-8 (1.5 ulp) on a dense grid of the normal range (tests/test_kernels.py)


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


def gelu_ir(builder, x):
    """LLVM IR for GELU of x, a float32 or a vector of them: x / 2 * (1 + erf(x / sqrt 2)), erf as above.

    1 + erf is formed per piece (1 + z S, 2 - T, T), which leaves T's values, not 1 - T's rounding, where x
    is negative. Every operation is element-wise and carries no fast-math flag, so a lane's result is the
    same bits in any vector width or as a scalar. NaN propagates; +inf gives inf, -inf NaN (-inf * 0), as
    the reference does.
    """
    ty = x.type
    lanes = getattr(ty, "count", None)

    def const(value):
        return llvmlite.ir.Constant(ty, [float(np.float32(value))] * lanes if lanes else float(np.float32(value)))

    def call(name, *args):
        fn_type = llvmlite.ir.FunctionType(ty, [ty] * len(args))
        fn = builder.module.declare_intrinsic(f"llvm.{name}." + (f"v{lanes}f32" if lanes else "f32"), fnty=fn_type)
        return builder.call(fn, args)

    def horner(coefficients, t):
        acc = const(coefficients[-1])
        for c in coefficients[-2::-1]:
            acc = call("fmuladd", acc, t, const(c))
        return acc

    z = builder.fmul(x, const(_SQRT_HALF))
    a = call("fabs", z)
    small = call("fmuladd", z, horner(ERF32_SMALL, builder.fmul(z, z)), const(1.0))
    tail = horner(ERF32_TAIL, builder.fsub(a, const(ERF32_CENTER)))  # erfc(|z|)
    positive = builder.fcmp_ordered(">", z, const(0.0))
    tail = builder.select(positive, builder.fsub(const(2.0), tail), tail)
    tail = builder.select(builder.fcmp_ordered("<", a, const(ERF32_ONE_FROM)), tail,
                          builder.select(positive, const(2.0), const(0.0)))
    one_plus_erf = builder.select(builder.fcmp_ordered("<", a, const(ERF32_SPLIT)), small, tail)
    gelu = builder.fmul(builder.fmul(x, const(0.5)), one_plus_erf)
    return builder.select(builder.fcmp_unordered("uno", x, x), x, gelu)


@intrinsic
def gelu32(typingctx, x):
    """GELU of one float32 (gelu_ir): a loop of it vectorizes at LLVM's preferred width."""
    if x != types.float32:
        return None
    return types.float32(types.float32), lambda context, builder, signature, args: gelu_ir(builder, args[0])
