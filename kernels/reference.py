"""The reference backend: every op the model needs, in plain NumPy (float32).

This file is the specification the fast backends are tested against, so it
favours the obvious formula over speed. Shapes, in the model's legend:
    B batch, S sequence (query) length, T key length (= S in self-attention),
    D model dim, H heads, Dh head dim (D / H), F FFN dim, V vocab;
    a linear maps [..., In] to [..., Out].
"""

from typing import NamedTuple

import numpy as np

from .protocol import Ops

FLOAT32_MIN = np.finfo(np.float32).min  # masked scores: the reference fills with this, not -inf


def erf(x):
    """Error function, evaluated in float64, returned as x.dtype.

    NumPy has no erf. This is the Chebyshev-fitted erfc of Numerical Recipes
    (fractional error < 1.2e-7 on erfc), so erf = 1 - erfc has absolute error
    < 1.2e-7: enough for GELU, where the erf term is multiplied by x / 2.

    >>> float(erf(np.float32(0.5)))  # 0.5204998778...
    0.5204998...
    """
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    erfc = t * np.exp(-z * z + poly)
    return (np.sign(x) * (1.0 - erfc)).astype(x.dtype)


def gelu(x):
    """Exact GELU, x * Phi(x) with the erf form: the reference's "gelu".

    Not the tanh approximation (that one is "gelu_new"); mixing them up
    shifts hidden states by ~1e-3, far outside the 1e-4 tolerance.
    """
    return (x * 0.5 * (1.0 + erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)


def gelu_new(x):
    """GELU's tanh approximation (GPT-2's "gelu_new")."""
    inner = np.float32(np.sqrt(2.0 / np.pi)) * (x + np.float32(0.044715) * x ** 3)
    return (np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))).astype(np.float32)


def relu(x):
    return np.maximum(x, np.float32(0.0))


def silu(x):
    """x * sigmoid(x), also called swish."""
    # For x < -88, exp(-x) overflows to inf and x / inf = -0: the right limit, so the warning is noise.
    with np.errstate(over="ignore"):
        return (x / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_new, "relu": relu, "silu": silu, "swish": silu}

# The number each activation has in the fast kernels: cpu.py's branches and bias_act.cu's ACT_* defines.
ACT_NONE = 0  # no activation (bias only)
ACT_CODES = {"gelu": 1, "gelu_new": 2, "relu": 3, "silu": 4, "swish": 4}


def activation_code(name, optional=False):
    """The kernels' code for the activation called `name`; None means none where `optional`, else it is an error."""
    if name is None and optional:
        return ACT_NONE
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}")
    return ACT_CODES[name]


def activation(x, name):
    """Apply the activation called `name` (a key of ACTIVATIONS) element-wise."""
    activation_code(name)  # a clear error for an unknown name
    return ACTIVATIONS[name](x)


def linear(x, weight, bias=None, activation_name=None):
    """y = act(x @ weightᵀ + bias). Weights are stored [out, in], as in the checkpoint."""
    # One 2-D GEMM over all rows: NumPy's 3-D @ loops over the batch and is ~3x slower.
    rows = x.reshape(-1, x.shape[-1])  # [..., In] -> [N, In]
    y = (rows @ weight.T).reshape(*x.shape[:-1], weight.shape[0])  # [N, In] @ [In, Out] -> [..., Out]
    if bias is not None:
        y = y + bias  # [..., Out]
    if activation_name is not None:
        y = activation(y, activation_name)
    return y


def softmax(x, axis=-1):
    """Numerically stable softmax: subtract the row max before exp."""
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def attention_probs(q, k, key_mask, scale):
    """Masked, scaled attention probabilities.

    q [B, H, S, Dh], k [B, H, T, Dh], key_mask [B, T] (1 = attend, 0 = padding) -> [B, H, S, T].
    q is scaled before the product, as the reference does. Masked scores are
    set to the most negative float32, not -inf, so a fully masked row becomes
    a uniform distribution (all scores equal) instead of NaN.
    """
    scores = (q * np.float32(scale)) @ k.transpose(0, 1, 3, 2)  # [B, H, S, Dh] @ [B, H, Dh, T] -> [B, H, S, T]
    masked = (key_mask == 0)[:, None, None, :]  # [B, 1, 1, T]
    scores = np.where(masked, FLOAT32_MIN, scores)
    return softmax(scores, axis=-1).astype(np.float32)


def attention_context(probs, v):
    """Weighted sum of values: [B, H, S, T] @ [B, H, T, Dh] -> [B, H, S, Dh]."""
    return probs @ v


def attention(q, k, v, key_mask, scale):
    """Attention output without the probabilities: attention_context(attention_probs(...), v).

    For callers that need neither the probabilities nor a head mask; a fast
    backend can then avoid storing the (B, H, S, T) probabilities.
    """
    return attention_context(attention_probs(q, k, key_mask, scale), v)


def layernorm(x, gamma, beta, eps, residual=None):
    """LayerNorm over the last axis ([..., D]), of x + residual when a residual is given.

    Biased variance (divide by n), eps inside the square root, as torch does.
    """
    if residual is not None:
        x = x + residual
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + np.float32(eps)) * gamma + beta).astype(np.float32)


# ---------------------------------------------------------------- int8 (opt-in: prepare(..., quantize="int8"))
#
# Weights are quantized once, symmetric per output row. Activations are quantized at run time,
# per row and asymmetric: around the row's midpoint, as ONNX Runtime's quantize_dynamic
# quantizes them around a zero point (it does so per tensor). Asymmetric because many inputs
# are lopsided: GELU's outputs lie in [-0.17, max], and a symmetric range would leave half the
# steps unused (on all-MiniLM-L6-v2 the worst sentence of tests/test_quantize.py went from
# cosine 0.9901 with float32 to 0.9956, the median from 0.9974 to 0.9989). Products are int8 x
# int8 summed exactly in int32, then scaled back to float32:
#
#     x[i, k] ~ center[i] + scale[i] q[i, k]        W[n, k] = w_scale[n] w[n, k]
#     (x Wᵀ)[i, n] ~ scale[i] w_scale[n] sum_k q[i, k] w[n, k] + center[i] w_scale[n] sum_k w[n, k]
#
# Everything else (layernorm, softmax, GELU, attention) stays float32. Values are in
# [-127, 127]: -128 is never used, which keeps every range symmetric around its center.

INT8_MAX = 127


class QuantizedMatrix(NamedTuple):
    """A matrix [Out, In] as int8 values and one float32 scale per row: row r = values[r] * scales[r]."""

    values: np.ndarray  # int8 [Out, In]
    scales: np.ndarray  # float32 [Out]

    @property
    def shape(self):
        return self.values.shape

    @property
    def nbytes(self):
        return self.values.nbytes + self.scales.nbytes

    def rows(self, ids):
        """float32 rows `ids`, dequantized (an embedding lookup): ids [...] -> [..., In]."""
        return self.values[ids].astype(np.float32) * self.scales[ids][..., None]

    def center_weights(self):
        """float32 [Out]: scales * (sum of each row's values), what a quantized input row's center multiplies."""
        return self.scales * self.values.sum(axis=1, dtype=np.int64).astype(np.float32)


SMALLEST_SCALE = np.finfo(np.float32).tiny  # 2**-126, float32's smallest normal: from it up, 1 / scale is finite


def _steps(x, center, half):
    """x [N, In] as int8 values around center [N] in steps of half / 127 [N]: (values, scales).

    All float32: scale = half / 127, values = rint((x - center) * (1 / scale)), round half to even,
    clipped to [-127, 127]. Wherever half / 127 is 0 or subnormal (a constant row, or a range so
    small that 1 / scale would be huge or inf) the scale is 1: every value is then 0,
    the row its center, off by at most half. A row whose center or half is not finite (it holds
    inf or NaN) gets values 0 and scale NaN, so that it comes out NaN.
    """
    finite = np.isfinite(center) & np.isfinite(half)
    step = (half / np.float32(INT8_MAX)).astype(np.float32)
    scale = np.where(step >= SMALLEST_SCALE, step, np.float32(1.0)).astype(np.float32)
    inverse = (np.float32(1.0) / np.where(finite, scale, np.float32(1.0))).astype(np.float32)
    shifted = (x - np.where(finite, center, np.float32(0.0))[:, None]).astype(np.float32)
    values = np.clip(np.rint(shifted * inverse[:, None]), -INT8_MAX, INT8_MAX)
    values = np.where(finite[:, None], values, 0).astype(np.int8)
    return values, np.where(finite, scale, np.float32(np.nan)).astype(np.float32)


def quantize_symmetric(x):
    """Each row of x [N, In] as int8 values and a float32 scale [N]: x ~ values * scale, scale = max|row| / 127."""
    x = np.asarray(x, dtype=np.float32)
    half = np.max(np.abs(x), axis=-1, initial=np.float32(0.0))  # [N]; NaN if the row has one
    return _steps(x, np.zeros(len(x), np.float32), half)


def quantize_rows(x):
    """Each row of x [N, In] (activations) as (int8 values, float32 scales [N], float32 centers [N]):
    x ~ center + values * scale, around the midpoint of the row's range.

    center = hi / 2 + lo / 2 and half = hi / 2 - lo / 2 for the row's max hi and min lo, in float32
    (halves first: no overflow); then as _steps. The fast kernels must give exactly these integers
    and scales (tests/test_kernels_int8.py).
    """
    x = np.asarray(x, dtype=np.float32)
    hi, lo = np.max(x, axis=-1), np.min(x, axis=-1)  # [N]; NaN if the row has one
    half_of = np.float32(0.5)
    center = (hi * half_of + lo * half_of).astype(np.float32)
    half = (hi * half_of - lo * half_of).astype(np.float32)
    values, scales = _steps(x, center, half)
    return values, scales, np.where(np.isfinite(scales), center, np.float32(np.nan)).astype(np.float32)


def quantize_matrix(weight, name="matrix", rows_per_chunk=4096):
    """A weight [Out, In] (or an embedding table [V, D]) as a QuantizedMatrix, symmetric, one scale per row.

    In chunks of rows, so that the float temporaries stay small (a vocabulary table at once would
    briefly need several float32 copies of itself).
    """
    weight = np.asarray(weight)
    values = np.empty(weight.shape, np.int8)
    scales = np.empty(weight.shape[0], np.float32)
    for start in range(0, weight.shape[0], rows_per_chunk):
        stop = start + rows_per_chunk
        values[start:stop], scales[start:stop] = quantize_symmetric(weight[start:stop])
    if not np.isfinite(scales).all():
        bad = int(np.count_nonzero(~np.isfinite(scales)))
        raise ValueError(f"cannot quantize {name}: {bad} of its {len(scales)} rows hold inf or NaN")
    return QuantizedMatrix(values, scales)


def int8_products(xq, wq):
    """int32 [N, Out] = xq [N, In] @ wq [Out, In]ᵀ, exact.

    Computed in float64 through BLAS: every partial sum is an integer below 2**53
    (|sum| <= 127 * 127 * In), so float64 holds it exactly whatever the order of the sum.
    """
    return (xq.astype(np.float64) @ wq.astype(np.float64).T).astype(np.int32)


def dequantize(sums, x_scale, x_center, weight, bias=None):
    """float32 [N, Out] from the int32 sums: sums * (x_scale w_scale) + x_center center_weights (+ bias)."""
    y = sums.astype(np.float32) * (x_scale[:, None] * weight.scales[None, :])
    y = y + x_center[:, None] * weight.center_weights()[None, :]
    return y if bias is None else y + bias


def linear_int8(x, weight, bias=None, activation_name=None):
    """act(x @ Wᵀ + bias) with W a QuantizedMatrix: x quantized per row, int32 sums, scaled back to float32."""
    rows = x.reshape(-1, x.shape[-1])  # [N, In]
    xq, x_scale, x_center = quantize_rows(rows)
    y = dequantize(int8_products(xq, weight.values), x_scale, x_center, weight, bias)  # [N, Out]
    y = y.reshape(*x.shape[:-1], weight.shape[0])
    return y if activation_name is None else activation(y, activation_name)


QUANTIZE_MODES = ("int8",)


def check_quantize(quantize):
    """None (float32) or a name of QUANTIZE_MODES; anything else is a ValueError."""
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be None or one of {', '.join(map(repr, QUANTIZE_MODES))}, got {quantize!r}")


def matrix_names(params, matrices):
    """The names of `matrices` (prepare's argument), each checked to be a 2-D tensor of params."""
    names = list(matrices)
    for name in names:
        if name not in params:
            raise ValueError(f"matrix {name!r} is not among the parameters")
        if np.ndim(params[name]) != 2:
            raise ValueError(f"matrix {name!r} has shape {np.shape(params[name])}, expected [Out, In]")
    return names


class NumpyOps(Ops):
    """The reference backend as an Ops object. Arrays stay NumPy float32 throughout."""

    name = "numpy"
    keeps_outputs_on_device = False
    quantize_modes = QUANTIZE_MODES

    def __init__(self, threads=None):
        self.threads = threads
        if threads is not None:
            from . import blas

            blas.set_threads(threads)  # matmul is the only threaded part of this backend

    def prepare(self, params, matrices=(), quantize=None):
        """Weights as the other ops expect them: float32 NumPy arrays, names unchanged; with
        quantize="int8" each name in `matrices` becomes a QuantizedMatrix."""
        check_quantize(quantize)
        prepared = {name: np.asarray(value, dtype=np.float32) for name, value in params.items()}
        for name in matrix_names(prepared, matrices):
            if quantize == "int8":
                prepared[name] = quantize_matrix(prepared[name], repr(name))
        return prepared

    def asarray(self, x):
        """An input (NumPy or nested lists) as this backend's array type."""
        return np.asarray(x)

    def to_numpy(self, x):
        return np.asarray(x)

    def linear(self, x, weight, bias=None, activation=None):
        if isinstance(weight, QuantizedMatrix):
            return linear_int8(x, weight, bias, activation)
        return linear(x, weight, bias, activation)

    def embed(self, table, ids):
        return table.rows(ids) if isinstance(table, QuantizedMatrix) else table[ids]

    def activation(self, x, name):
        return activation(x, name)

    def attention_probs(self, q, k, key_mask, scale):
        return attention_probs(q, k, key_mask, scale)

    def attention_context(self, probs, v):
        return attention_context(probs, v)

    def attention(self, q, k, v, key_mask, scale):
        return attention(q, k, v, key_mask, scale)

    def layernorm(self, x, gamma, beta, eps, residual=None):
        return layernorm(x, gamma, beta, eps, residual)
