"""The Numba backend: the ops of reference.py, fused and parallel on the CPU.

Matrix products with weights go to BLAS (NumPy's matmul); everything
element-wise or row-wise after them is one parallel Numba pass:

    linear        BLAS x @ Wᵀ into a reused buffer, then bias + activation in place
    attention     per (batch, head): q·kᵀ, scale, mask, softmax and p·v in one kernel
                  (head dim 64 is too small for BLAS to pay: NumPy's batched
                  matmul reaches ~35 GFLOP/s there)
    layernorm     residual add + mean + variance + scale/shift in one pass per row
    activations   exact-erf GELU and friends through the polynomials of fastmath.py

Threading. Numba's OpenMP threads spin after each parallel region by default,
and on a machine with as many threads as cores that spinning steals the cores
from the next BLAS call (measured on 2 cores: 128x768x3072 GEMM + a trivial
parallel kernel, 7.5 ms instead of 3.7 ms). So this module asks OpenMP to
sleep at once (OMP_WAIT_POLICY=PASSIVE, unless the user set it) before the
runtime starts, and prefers the OpenMP threading layer, whose wake-up costs
~20 us; TBB and the workqueue layer are the fallbacks. The setting only takes
effect if no OpenMP runtime has started in this process yet.

The kernels accept strided views (q, k, v are head-split views of the linear
outputs; no copies are made) and compute in float32, with float64 where a sum
or a polynomial needs it.
"""

import math
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by libgomp / libomp when it loads

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from . import blas  # noqa: E402
from .fastmath import erf64, exp64, maxnum  # noqa: E402
from .reference import ACTIVATIONS, FLOAT32_MIN  # noqa: E402

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

# Fast-math subsets. Kernels never assume "no NaN / no inf": masked scores are
# the most negative float, and NaN inputs must stay NaN as in the reference.
CONTRACT = {"contract"}  # a*b+c may become one FMA (one rounding instead of two)
REDUCE = {"contract", "reassoc"}  # sums may be reordered, so that they vectorize

ACT_NONE, ACT_GELU, ACT_GELU_NEW, ACT_RELU, ACT_SILU = 0, 1, 2, 3, 4
ACT_CODES = {None: ACT_NONE, "gelu": ACT_GELU, "gelu_new": ACT_GELU_NEW, "relu": ACT_RELU,
             "silu": ACT_SILU, "swish": ACT_SILU}

_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654
COLUMN_BLOCK = 2048  # element-wise work is split into (row, column block) tasks


# ---------------------------------------------------------------- element-wise


@njit(inline="always", fastmath=CONTRACT, error_model="numpy", cache=True)
def _row_bias_act(x, bias, out, i, j0, j1, act):
    """out[i, j0:j1] = act(x[i, j0:j1] + bias[j0:j1]). One loop per activation, so each vectorizes."""
    if act == ACT_GELU:  # x * Phi(x), exact erf form
        for j in range(j0, j1):
            v = np.float64(x[i, j] + bias[j])
            out[i, j] = np.float32(v * 0.5 * (1.0 + erf64(v * _SQRT_HALF)))
    elif act == ACT_GELU_NEW:  # 0.5 x (1 + tanh(t)) = x * sigmoid(2t), t = sqrt(2/pi) (x + 0.044715 x^3)
        for j in range(j0, j1):
            v = np.float64(x[i, j] + bias[j])
            t = _SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)
            out[i, j] = np.float32(v / (1.0 + exp64(-2.0 * t)))
    elif act == ACT_RELU:
        for j in range(j0, j1):
            v = x[i, j] + bias[j]
            out[i, j] = v if v > 0 or v != v else np.float32(0.0)
    elif act == ACT_SILU:
        for j in range(j0, j1):
            v = np.float64(x[i, j] + bias[j])
            out[i, j] = np.float32(v / (1.0 + exp64(-v)))
    else:
        for j in range(j0, j1):
            out[i, j] = x[i, j] + bias[j]


@njit(parallel=True, fastmath=CONTRACT, error_model="numpy", cache=True)
def _bias_act(x, bias, out, act):
    """out = act(x + bias) for 2-D x, out (out may be x) and bias (N,)."""
    rows, cols = x.shape
    blocks = (cols + COLUMN_BLOCK - 1) // COLUMN_BLOCK
    for task in prange(rows * blocks):
        i = task // blocks
        j0 = (task % blocks) * COLUMN_BLOCK
        _row_bias_act(x, bias, out, i, j0, min(j0 + COLUMN_BLOCK, cols), act)


# ---------------------------------------------------------------- layernorm


@njit(parallel=True, fastmath=REDUCE, error_model="numpy", cache=True)
def _layernorm(x, residual, gamma, beta, eps, out):
    """out = LayerNorm(x + residual) over the last axis of 2-D arrays; residual may be None."""
    rows, n = x.shape
    for i in prange(rows):
        total = 0.0
        for j in range(n):
            v = x[i, j] + residual[i, j] if residual is not None else x[i, j]
            out[i, j] = v
            total += v
        mean = total / n
        sq = 0.0
        for j in range(n):
            d = out[i, j] - mean
            sq += d * d
        inv = 1.0 / math.sqrt(sq / n + eps)
        m32 = np.float32(mean)
        inv32 = np.float32(inv)
        for j in range(n):
            out[i, j] = (out[i, j] - m32) * inv32 * gamma[j] + beta[j]


# ---------------------------------------------------------------- attention


@njit(inline="always", error_model="numpy", cache=True)
def _copy_head(src, b, h, dst, transpose):
    """dst = src[b, h] (or its transpose): a contiguous copy of one head of a strided (B, H, S, Dh) view."""
    for s in range(src.shape[2]):
        for d in range(src.shape[3]):
            if transpose:
                dst[d, s] = src[b, h, s, d]
            else:
                dst[s, d] = src[b, h, s, d]


@njit(inline="always", error_model="numpy", cache=True)
def _row_max(row):
    """The largest element, NaNs ignored (a NaN still makes the softmax row NaN, through exp and the sum)."""
    m = row[0]
    for t in range(1, row.shape[0]):
        m = maxnum(m, row[t])
    return m


@njit(fastmath=REDUCE, error_model="numpy", cache=True)
def _row_sum(row):
    total = np.float32(0.0)
    for t in range(row.shape[0]):
        total += row[t]
    return total


@njit(inline="always", fastmath=CONTRACT, error_model="numpy", cache=True)
def _softmax_row(q, kt, key_mask, scale, qs, row):
    """row = softmax(mask(q * scale @ kt)) for one query q (Dh,), keys kt (Dh, T), key_mask (T,)."""
    head_dim, keys = kt.shape
    for d in range(head_dim):
        qs[d] = q[d] * scale  # scaled before the product, as the reference does
    for t in range(keys):
        row[t] = 0.0
    d4 = head_dim - head_dim % 4
    for d in range(0, d4, 4):  # four rank-1 updates per pass over the row: 4 FMAs per store
        a0, a1, a2, a3 = qs[d], qs[d + 1], qs[d + 2], qs[d + 3]
        for t in range(keys):
            row[t] += a0 * kt[d, t] + a1 * kt[d + 1, t] + a2 * kt[d + 2, t] + a3 * kt[d + 3, t]
    for d in range(d4, head_dim):
        a = qs[d]
        for t in range(keys):
            row[t] += a * kt[d, t]
    for t in range(keys):
        if key_mask[t] == 0:
            row[t] = FLOAT32_MIN  # not -inf: a fully masked row becomes uniform, as in the reference
    m = _row_max(row)
    for t in range(keys):
        row[t] = np.float32(exp64(np.float64(row[t] - m)))  # the difference in float32, as the reference
    inv = np.float32(1.0) / _row_sum(row)
    for t in range(keys):
        row[t] *= inv


@njit(inline="always", fastmath=CONTRACT, error_model="numpy", cache=True)
def _weighted_sum_row(p, vh, acc, out):
    """out = p @ vh for probabilities p (T,), values vh (T, Dh); acc (Dh,) is contiguous scratch."""
    keys, head_dim = vh.shape
    for d in range(head_dim):
        acc[d] = 0.0
    t4 = keys - keys % 4
    for t in range(0, t4, 4):
        p0, p1, p2, p3 = p[t], p[t + 1], p[t + 2], p[t + 3]
        for d in range(head_dim):
            acc[d] += p0 * vh[t, d] + p1 * vh[t + 1, d] + p2 * vh[t + 2, d] + p3 * vh[t + 3, d]
    for t in range(t4, keys):
        pt = p[t]
        for d in range(head_dim):
            acc[d] += pt * vh[t, d]
    for d in range(head_dim):
        out[d] = acc[d]


@njit(parallel=True, fastmath=CONTRACT, error_model="numpy", cache=True)
def _attention_probs(q, k, key_mask, scale, probs):
    """probs[b, h] = softmax(mask(q[b, h] * scale @ k[b, h]ᵀ))."""
    batch, heads, queries, head_dim = q.shape
    keys = k.shape[2]
    for bh in prange(batch * heads):
        b, h = bh // heads, bh % heads
        qh = np.empty((queries, head_dim), np.float32)
        kt = np.empty((head_dim, keys), np.float32)
        qs = np.empty(head_dim, np.float32)
        _copy_head(q, b, h, qh, False)
        _copy_head(k, b, h, kt, True)
        for i in range(queries):
            _softmax_row(qh[i], kt, key_mask[b], scale, qs, probs[b, h, i])


@njit(parallel=True, fastmath=CONTRACT, error_model="numpy", cache=True)
def _attention_context(probs, v, out):
    """out[b, h] = probs[b, h] @ v[b, h]."""
    batch, heads, queries, keys = probs.shape
    head_dim = v.shape[3]
    for bh in prange(batch * heads):
        b, h = bh // heads, bh % heads
        vh = np.empty((keys, head_dim), np.float32)
        acc = np.empty(head_dim, np.float32)
        _copy_head(v, b, h, vh, False)
        for i in range(queries):
            _weighted_sum_row(probs[b, h, i], vh, acc, out[b, h, i])


@njit(parallel=True, fastmath=CONTRACT, error_model="numpy", cache=True)
def _attention(q, k, v, key_mask, scale, out):
    """out[b, h] = softmax(mask(q[b, h] * scale @ k[b, h]ᵀ)) @ v[b, h], the probabilities never stored."""
    batch, heads, queries, head_dim = q.shape
    keys = k.shape[2]
    for bh in prange(batch * heads):
        b, h = bh // heads, bh % heads
        qh = np.empty((queries, head_dim), np.float32)
        kt = np.empty((head_dim, keys), np.float32)
        vh = np.empty((keys, head_dim), np.float32)
        qs = np.empty(head_dim, np.float32)
        acc = np.empty(head_dim, np.float32)
        row = np.empty(keys, np.float32)
        _copy_head(q, b, h, qh, False)
        _copy_head(k, b, h, kt, True)
        _copy_head(v, b, h, vh, False)
        for i in range(queries):
            _softmax_row(qh[i], kt, key_mask[b], scale, qs, row)
            _weighted_sum_row(row, vh, acc, out[b, h, i])


# ---------------------------------------------------------------- the Ops object


def _f32(x):
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _rows(x):
    """x as a 2-D (rows, last dim) array, a view when possible."""
    return x.reshape(-1, x.shape[-1])


def _heads_layout(batch, heads, seq, head_dim):
    """A (B, H, S, Dh) array stored as (B, S, H, Dh): merging the heads back is then a free reshape."""
    return np.empty((batch, seq, heads, head_dim), np.float32).transpose(0, 2, 1, 3)


class NumbaOps:
    """The Numba CPU backend. Same methods and results as reference.NumpyOps, within float32 rounding."""

    name = "numba"

    def __init__(self, threads=None):
        self.threads = threads
        if threads is not None:
            blas.set_threads(threads)
        self._apply_threads()

    def _apply_threads(self):
        """numba.set_num_threads is per calling thread, so it is checked on every op (cheap)."""
        if self.threads is not None:
            n = min(self.threads, numba.config.NUMBA_NUM_THREADS)
            if numba.get_num_threads() != n:
                numba.set_num_threads(n)

    def prepare(self, params):
        """Weights as float32 C-contiguous NumPy arrays, names unchanged."""
        return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}

    def asarray(self, x):
        return np.asarray(x)

    def to_numpy(self, x):
        return np.asarray(x)

    def linear(self, x, weight, bias=None, activation=None):
        act = _activation_code(activation)
        self._apply_threads()
        x = _f32(x)
        y = np.matmul(_rows(x), weight.T)  # (M, E) @ (E, F) -> (M, F), BLAS
        if bias is not None or act != ACT_NONE:
            _bias_act(y, _f32(bias) if bias is not None else np.zeros(y.shape[1], np.float32), y, act)
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def activation(self, x, name):
        act = _activation_code(name, optional=False)
        self._apply_threads()
        x = _f32(x)
        out = np.empty(x.shape, np.float32)
        if x.size:
            _bias_act(_rows(x), np.zeros(x.shape[-1], np.float32), _rows(out), act)
        return out

    def attention_probs(self, q, k, key_mask, scale):
        self._apply_threads()
        q, k = _f32(q), _f32(k)
        batch, heads, queries, _ = q.shape
        probs = np.empty((batch, heads, queries, k.shape[2]), np.float32)
        _attention_probs(q, k, np.asarray(key_mask), np.float32(scale), probs)
        return probs

    def attention_context(self, probs, v):
        self._apply_threads()
        probs, v = _f32(probs), _f32(v)
        batch, heads, queries, _ = probs.shape
        out = _heads_layout(batch, heads, queries, v.shape[3])
        _attention_context(probs, v, out)
        return out

    def attention(self, q, k, v, key_mask, scale):
        """attention_context(attention_probs(q, k, key_mask, scale), v), without storing the probabilities."""
        self._apply_threads()
        q, k, v = _f32(q), _f32(k), _f32(v)
        batch, heads, queries, _ = q.shape
        out = _heads_layout(batch, heads, queries, v.shape[3])
        _attention(q, k, v, np.asarray(key_mask), np.float32(scale), out)
        return out

    def layernorm(self, x, gamma, beta, eps, residual=None):
        self._apply_threads()
        x = _f32(x)
        if residual is not None:
            residual = _f32(residual)
            if residual.shape != x.shape:
                shape = np.broadcast_shapes(x.shape, residual.shape)
                x, residual = np.broadcast_to(x, shape), np.broadcast_to(residual, shape)
        out = np.empty(x.shape, np.float32)
        if x.size:
            _layernorm(_rows(x), None if residual is None else _rows(residual), _f32(gamma), _f32(beta),
                       float(eps), _rows(out))
        return out


def _activation_code(name, optional=True):
    if name is None and optional:
        return ACT_NONE
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: expected one of {', '.join(ACTIVATIONS)}")
    return ACT_CODES[name]
