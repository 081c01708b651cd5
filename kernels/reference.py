"""The reference backend: every op the model needs, in plain NumPy (float32).

This file is the specification the fast backends are tested against, so it
favours the obvious formula over speed. Shapes, in the model's legend:
    B batch, S sequence (query) length, T key length (= S in self-attention),
    D model dim, H heads, Dh head dim (D / H), F FFN dim, V vocab;
    a linear maps [..., In] to [..., Out].
"""

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


class NumpyOps(Ops):
    """The reference backend as an Ops object. Arrays stay NumPy float32 throughout."""

    name = "numpy"
    keeps_outputs_on_device = False

    def __init__(self, threads=None):
        self.threads = threads
        if threads is not None:
            from . import blas

            blas.set_threads(threads)  # matmul is the only threaded part of this backend

    def prepare(self, params):
        """Weights as the other ops expect them: here, float32 NumPy arrays, names unchanged."""
        return {name: np.asarray(value, dtype=np.float32) for name, value in params.items()}

    def asarray(self, x):
        """An input (NumPy or nested lists) as this backend's array type."""
        return np.asarray(x)

    def to_numpy(self, x):
        return np.asarray(x)

    def linear(self, x, weight, bias=None, activation=None):
        return linear(x, weight, bias, activation)

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
