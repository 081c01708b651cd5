"""The Numba backend: the ops of reference.py, fused and parallel on the CPU.

Matrix products with weights go to BLAS (NumPy's matmul); everything
element-wise or row-wise after them is one parallel Numba pass:

    linear        BLAS x @ Wᵀ into a reused buffer, then bias + activation in place;
                  for few rows, a Numba kernel that streams the weights instead
    attention     per (batch, head): q·kᵀ, scale, mask, softmax and p·v in one kernel,
                  two query rows at a time (with Dh = 64 the products are too small
                  for BLAS to pay: per-head sgemm calls were 1.5x slower, measured
                  in the model with the threads below set as they are)
    layernorm     residual add + mean + variance + scale/shift in one pass per row
    activations   exact-erf GELU and friends through the polynomials of fastmath.py

Threading. Numba's OpenMP threads spin after each parallel region by default,
and on a machine with as many threads as cores that spinning steals the cores
from the next BLAS call (measured on 2 cores: a 128x768x3072 GEMM followed by a
trivial parallel kernel, 8.0 ms instead of 3.6 ms; at 8 rows, 8.0 instead of
0.8 ms: `python tools/bench/bench_kernels.py spin`). So this module asks OpenMP to
sleep at once (OMP_WAIT_POLICY=PASSIVE, unless the user set it) before the
runtime starts, and prefers the OpenMP threading layer, whose wake-up costs
~20 us; TBB and the workqueue layer are the fallbacks. The setting only takes
effect if no OpenMP runtime has started in this process yet. OpenBLAS's own
threads spin after each call as well, slowing the Numba kernel that follows
(GELU after the FFN GEMM, the small-batch matmul after an attention product):
blas.sleep_when_idle() makes them sleep at once too.

q, k, v are head-split views of the linear outputs; the attention kernels copy
one head at a time into contiguous scratch, and write their output in
(B, S, H, Dh) order, so that merging the heads again is a free reshape.
Kernels compute in float32, with float64 where a sum or a polynomial needs it.
"""

import math
import os
import sys
import threading
import types
from typing import Callable, NamedTuple

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by libgomp / libomp when it loads

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from . import blas  # noqa: E402
from .fastmath import erf64, exp64, maxnum, prefetch  # noqa: E402
from .protocol import Ops  # noqa: E402
from .reference import ACT_CODES, ACT_NONE, FLOAT32_MIN, activation_code  # noqa: E402

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
blas.sleep_when_idle()  # the same problem the other way round: OpenBLAS's threads spin after each call

# Fast-math subsets. Kernels never assume "no NaN / no inf": masked scores are
# the most negative float, and NaN inputs must stay NaN as in the reference.
CONTRACT = {"contract"}  # a*b+c may become one FMA (one rounding instead of two)
REDUCE = {"contract", "reassoc"}  # sums may be reordered, so that they vectorize

# Numba freezes globals into the kernels it caches, and its cache checks only this file for
# changes: after changing a code in reference.py (or anything in fastmath.py), delete kernels/__pycache__.
ACT_GELU, ACT_GELU_NEW, ACT_RELU, ACT_SILU = (ACT_CODES[name] for name in ("gelu", "gelu_new", "relu", "silu"))

SERIAL_WORK = 1 << 15  # kernels with less work than this (elements or multiply-adds) run in the calling thread

_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654


class Kernel(NamedTuple):
    """One kernel compiled twice from one Python function.

    `parallel` runs its prange loop on Numba's thread pool; `serial` runs the
    same loop as a plain range in the calling thread, for small inputs, where
    waking the pool (~10-20 us) costs more than the work.
    """

    parallel: Callable
    serial: Callable


def parallel_and_serial(fastmath):
    """Decorator: compile `fn` into a Kernel (parallel and serial), with these fast-math flags."""

    def compile_twice(fn):
        # The serial copy needs a name of its own: Numba's cache names its files after the
        # function and its line, not the compile flags, so under one name the serial kernel
        # loaded the parallel one from the cache (seen with numba.get_thread_id in its loop).
        serial = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                    fn.__closure__)
        serial.__qualname__ = fn.__qualname__ + "_serial"
        options = dict(fastmath=fastmath, error_model="numpy", cache=True)
        return Kernel(njit(parallel=True, **options)(fn), njit(**options)(serial))

    return compile_twice


# ---------------------------------------------------------------- element-wise


@njit(inline="always", fastmath=CONTRACT, error_model="numpy", cache=True)
def _row_bias_act(x, bias, out, i, act):
    """out[i] = act(x[i] + bias). One loop per activation, so that each vectorizes."""
    cols = x.shape[1]
    if act == ACT_GELU:  # x * Phi(x), exact erf form
        for j in range(cols):
            v = np.float64(x[i, j] + bias[j])
            out[i, j] = np.float32(v * 0.5 * (1.0 + erf64(v * _SQRT_HALF)))
    elif act == ACT_GELU_NEW:  # 0.5 x (1 + tanh(t)) = x * sigmoid(2t), t = sqrt(2/pi) (x + 0.044715 x^3)
        for j in range(cols):
            v = np.float64(x[i, j] + bias[j])
            t = _SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)
            out[i, j] = np.float32(v / (1.0 + exp64(-2.0 * t)))
    elif act == ACT_RELU:
        for j in range(cols):
            v = x[i, j] + bias[j]
            out[i, j] = v if v > 0 or v != v else np.float32(0.0)
    elif act == ACT_SILU:
        for j in range(cols):
            v = np.float64(x[i, j] + bias[j])
            out[i, j] = np.float32(v / (1.0 + exp64(-v)))
    else:
        for j in range(cols):
            out[i, j] = x[i, j] + bias[j]


@parallel_and_serial(CONTRACT)
def _bias_act(y, bias, act):
    """y = act(y + bias) in place, for y (N, Out) and bias (Out,).

    In place through one array argument on purpose: given the same array as
    input and output, LLVM's overlap check fails and it runs the scalar loop
    (GELU 4x slower). Rows are the parallel tasks (splitting them into column
    blocks as well kept the loops from vectorizing).
    """
    for i in prange(y.shape[0]):
        _row_bias_act(y, bias, y, i, act)


@parallel_and_serial(CONTRACT)
def _activation(x, out, act):
    """out = act(x) for 2-D x and out of one shape (distinct arrays)."""
    zero = np.zeros(x.shape[1], np.float32)
    for i in prange(x.shape[0]):
        _row_bias_act(x, zero, out, i, act)


# ---------------------------------------------------------------- small-batch matmul

SMALL_M_MAX = 128  # linear() uses _matmul_small up to this many rows, BLAS above (crossover ~200 here)
SMALL_N_BLOCK = 24  # weight rows per parallel task


@njit(parallel=True, fastmath=REDUCE, error_model="numpy", cache=True)
def _matmul_small(x, w, bias, out):
    """out = x @ wᵀ + bias for few rows: x (M, In) with M % 4 == 0, w (Out, In) as stored in the checkpoint.

    OpenBLAS packs (copies) the whole weight on every call, which dominates
    when x has few rows: at M = 8 its sgemm reaches a fraction of its peak.
    Here each weight row is read once per 4 rows of x, straight from the
    checkpoint layout: 4 x 4 dot products share their loads, and each is a
    vectorized sum over In (its summation order differs from BLAS, within
    float32 rounding). Weights stream from memory: touching the start of
    the next 4 rows while computing these starts the hardware prefetcher
    early (measured at 8 rows, 2 threads: 9.0 ms instead of 10.4 per pass
    over the 6 layers' weights).
    """
    rows, inner = x.shape
    cols = w.shape[0]
    blocks = (cols + SMALL_N_BLOCK - 1) // SMALL_N_BLOCK
    for blk in prange(blocks):
        n0 = blk * SMALL_N_BLOCK
        n1 = min(n0 + SMALL_N_BLOCK, cols)
        for m in range(0, rows, 4):
            n = n0
            while n + 4 <= n1:
                if m == 0:
                    for r in range(n + 4, min(n + 8, cols)):
                        prefetch(w, r * inner)  # the first two cache lines of each of the next 4 rows
                        prefetch(w, r * inner + 16)
                a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = np.float32(0.0)
                a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = np.float32(0.0)
                for k in range(inner):
                    x0, x1, x2, x3 = x[m, k], x[m + 1, k], x[m + 2, k], x[m + 3, k]
                    w0, w1, w2, w3 = w[n, k], w[n + 1, k], w[n + 2, k], w[n + 3, k]
                    a00 += x0 * w0
                    a01 += x0 * w1
                    a02 += x0 * w2
                    a03 += x0 * w3
                    a10 += x1 * w0
                    a11 += x1 * w1
                    a12 += x1 * w2
                    a13 += x1 * w3
                    a20 += x2 * w0
                    a21 += x2 * w1
                    a22 += x2 * w2
                    a23 += x2 * w3
                    a30 += x3 * w0
                    a31 += x3 * w1
                    a32 += x3 * w2
                    a33 += x3 * w3
                b0, b1, b2, b3 = bias[n], bias[n + 1], bias[n + 2], bias[n + 3]
                out[m, n], out[m, n + 1], out[m, n + 2], out[m, n + 3] = a00 + b0, a01 + b1, a02 + b2, a03 + b3
                out[m + 1, n], out[m + 1, n + 1], out[m + 1, n + 2], out[m + 1, n + 3] = a10 + b0, a11 + b1, a12 + b2, a13 + b3
                out[m + 2, n], out[m + 2, n + 1], out[m + 2, n + 2], out[m + 2, n + 3] = a20 + b0, a21 + b1, a22 + b2, a23 + b3
                out[m + 3, n], out[m + 3, n + 1], out[m + 3, n + 2], out[m + 3, n + 3] = a30 + b0, a31 + b1, a32 + b2, a33 + b3
                n += 4
            while n < n1:  # the last 1-3 weight rows
                a0 = a1 = a2 = a3 = np.float32(0.0)
                for k in range(inner):
                    wk = w[n, k]
                    a0 += x[m, k] * wk
                    a1 += x[m + 1, k] * wk
                    a2 += x[m + 2, k] * wk
                    a3 += x[m + 3, k] * wk
                out[m, n], out[m + 1, n], out[m + 2, n], out[m + 3, n] = a0 + bias[n], a1 + bias[n], a2 + bias[n], a3 + bias[n]
                n += 1


# ---------------------------------------------------------------- layernorm


@njit(inline="always", error_model="numpy", cache=True)
def _layernorm_row(x, residual, gamma, beta, eps, out, i):
    """out[i] = LayerNorm(x[i] + residual[i]); residual may be None. Mean and variance in float64."""
    n = x.shape[1]
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
    m32 = np.float32(mean)
    inv32 = np.float32(1.0 / math.sqrt(sq / n + eps))
    for j in range(n):
        out[i, j] = (out[i, j] - m32) * inv32 * gamma[j] + beta[j]


@parallel_and_serial(REDUCE)
def _layernorm(x, residual, gamma, beta, eps, out):
    """out = LayerNorm(x + residual) over the last axis of 2-D arrays (N, D)."""
    for i in prange(x.shape[0]):
        _layernorm_row(x, residual, gamma, beta, eps, out, i)


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


@njit(fastmath=REDUCE, error_model="numpy", cache=True)
def _row_sum(row):
    total = np.float32(0.0)
    for t in range(row.shape[0]):
        total += row[t]
    return total


@njit(inline="always", fastmath=CONTRACT, error_model="numpy", cache=True)
def _scores(qh, i0, i1, kt, scale, qs, row0, row1):
    """row0, row1 = (qh[i0] * scale) @ kt, (qh[i1] * scale) @ kt: two queries share every load of the keys.

    i1 may equal i0 (an odd last row): both rows then get the same values.
    The query is scaled before the product, as the reference does.
    """
    head_dim, keys = kt.shape
    for d in range(head_dim):
        qs[0, d] = qh[i0, d] * scale
        qs[1, d] = qh[i1, d] * scale
    for t in range(keys):
        row0[t] = 0.0
        row1[t] = 0.0
    d4 = head_dim - head_dim % 4
    for d in range(0, d4, 4):  # 4 rank-1 updates per pass over the rows: 8 FMAs per 4 key loads
        a0, a1, a2, a3 = qs[0, d], qs[0, d + 1], qs[0, d + 2], qs[0, d + 3]
        b0, b1, b2, b3 = qs[1, d], qs[1, d + 1], qs[1, d + 2], qs[1, d + 3]
        for t in range(keys):
            k0, k1, k2, k3 = kt[d, t], kt[d + 1, t], kt[d + 2, t], kt[d + 3, t]
            row0[t] += a0 * k0 + a1 * k1 + a2 * k2 + a3 * k3
            row1[t] += b0 * k0 + b1 * k1 + b2 * k2 + b3 * k3
    for d in range(d4, head_dim):
        a, b = qs[0, d], qs[1, d]
        for t in range(keys):
            row0[t] += a * kt[d, t]
            row1[t] += b * kt[d, t]


@njit(inline="always", fastmath=CONTRACT, error_model="numpy", cache=True)
def _masked_softmax(row, attend):
    """row = softmax(row where attend else the most negative float32), in place.

    Not -inf: a fully masked row becomes uniform, as in the reference.
    """
    for t in range(row.shape[0]):
        row[t] = row[t] if attend[t] != 0 else FLOAT32_MIN
    m = FLOAT32_MIN  # (starting from row[0] instead stops LLVM from vectorizing the loop)
    for t in range(row.shape[0]):  # a separate pass: fused with the masking it does not vectorize
        m = maxnum(m, row[t])  # NaNs ignored here, but a NaN score still makes its row NaN through exp and the sum
    for t in range(row.shape[0]):
        row[t] = np.float32(exp64(np.float64(row[t] - m)))  # the difference in float32, as the reference
    inv = np.float32(1.0) / _row_sum(row)
    for t in range(row.shape[0]):
        row[t] *= inv


@njit(inline="always", fastmath=CONTRACT, error_model="numpy", cache=True)
def _weighted_sum(p0, p1, vh, acc, out0, out1):
    """out0, out1 = p0 @ vh, p1 @ vh for probabilities p (T,) and values vh (T, Dh); acc (2, Dh) is scratch."""
    keys, head_dim = vh.shape
    for d in range(head_dim):
        acc[0, d] = 0.0
        acc[1, d] = 0.0
    t4 = keys - keys % 4
    for t in range(0, t4, 4):
        a0, a1, a2, a3 = p0[t], p0[t + 1], p0[t + 2], p0[t + 3]
        b0, b1, b2, b3 = p1[t], p1[t + 1], p1[t + 2], p1[t + 3]
        for d in range(head_dim):
            v0, v1, v2, v3 = vh[t, d], vh[t + 1, d], vh[t + 2, d], vh[t + 3, d]
            acc[0, d] += a0 * v0 + a1 * v1 + a2 * v2 + a3 * v3
            acc[1, d] += b0 * v0 + b1 * v1 + b2 * v2 + b3 * v3
    for t in range(t4, keys):
        a, b = p0[t], p1[t]
        for d in range(head_dim):
            acc[0, d] += a * vh[t, d]
            acc[1, d] += b * vh[t, d]
    for d in range(head_dim):
        out0[d] = acc[0, d]
        out1[d] = acc[1, d]


@njit(inline="always", error_model="numpy", cache=True)
def _probs_head(q, k, attend, scale, probs, b, h):
    """probs[b, h] = softmax(mask(q[b, h] * scale @ k[b, h]ᵀ))."""
    queries, head_dim, keys = q.shape[2], q.shape[3], k.shape[2]
    qh = np.empty((queries, head_dim), np.float32)
    kt = np.empty((head_dim, keys), np.float32)
    qs = np.empty((2, head_dim), np.float32)
    spare = np.empty(keys, np.float32)  # the second row of an odd last pair
    _copy_head(q, b, h, qh, False)
    _copy_head(k, b, h, kt, True)
    for i in range(0, queries, 2):
        j = min(i + 1, queries - 1)
        _scores(qh, i, j, kt, scale, qs, probs[b, h, i], probs[b, h, j] if j != i else spare)
        _masked_softmax(probs[b, h, i], attend[b])
        if j != i:
            _masked_softmax(probs[b, h, j], attend[b])


@njit(inline="always", error_model="numpy", cache=True)
def _context_head(probs, v, out, b, h):
    """out[b, h] = probs[b, h] @ v[b, h]."""
    queries, keys, head_dim = probs.shape[2], probs.shape[3], v.shape[3]
    vh = np.empty((keys, head_dim), np.float32)
    acc = np.empty((2, head_dim), np.float32)
    _copy_head(v, b, h, vh, False)
    for i in range(0, queries, 2):
        j = min(i + 1, queries - 1)
        _weighted_sum(probs[b, h, i], probs[b, h, j], vh, acc, out[b, h, i], out[b, h, j])


@njit(inline="always", error_model="numpy", cache=True)
def _attention_head(q, k, v, attend, scale, out, b, h):
    """out[b, h] = softmax(mask(q[b, h] * scale @ k[b, h]ᵀ)) @ v[b, h], the probabilities never stored."""
    queries, head_dim, keys = q.shape[2], q.shape[3], k.shape[2]
    qh = np.empty((queries, head_dim), np.float32)
    kt = np.empty((head_dim, keys), np.float32)
    vh = np.empty((keys, head_dim), np.float32)
    qs = np.empty((2, head_dim), np.float32)
    acc = np.empty((2, head_dim), np.float32)
    rows = np.empty((2, keys), np.float32)
    _copy_head(q, b, h, qh, False)
    _copy_head(k, b, h, kt, True)
    _copy_head(v, b, h, vh, False)
    for i in range(0, queries, 2):
        j = min(i + 1, queries - 1)
        _scores(qh, i, j, kt, scale, qs, rows[0], rows[1])
        _masked_softmax(rows[0], attend[b])
        _masked_softmax(rows[1], attend[b])
        _weighted_sum(rows[0], rows[1], vh, acc, out[b, h, i], out[b, h, j])


# One task per (batch, head).


@parallel_and_serial(CONTRACT)
def _attention_probs(q, k, attend, scale, probs):
    for bh in prange(q.shape[0] * q.shape[1]):
        _probs_head(q, k, attend, scale, probs, bh // q.shape[1], bh % q.shape[1])


@parallel_and_serial(CONTRACT)
def _attention_context(probs, v, out):
    for bh in prange(probs.shape[0] * probs.shape[1]):
        _context_head(probs, v, out, bh // probs.shape[1], bh % probs.shape[1])


@parallel_and_serial(CONTRACT)
def _attention(q, k, v, attend, scale, out):
    for bh in prange(q.shape[0] * q.shape[1]):
        _attention_head(q, k, v, attend, scale, out, bh // q.shape[1], bh % q.shape[1])


# ---------------------------------------------------------------- the Ops object


class Workspace:
    """Output arrays reused from call to call, so that a forward pass does not page-fault fresh memory.

    An array is handed out again only when nothing but this pool refers to it
    (sys.getrefcount): a result the caller still holds, a view of it, or a
    hidden state kept for output_hidden_states is never overwritten. Fresh
    allocations of tens of MB cost ~5 ms each in page faults here (batch 32 x
    128: 6 x 50 MB for the FFN alone), so reuse saves tens of ms per pass.
    At most PER_SHAPE arrays for each of the SHAPES most recent shapes are kept.
    """

    PER_SHAPE = 8
    SHAPES = 16

    def __init__(self):
        self._pool = {}  # shape -> [arrays], least recently used shape first
        self._lock = threading.Lock()

    def empty(self, shape):
        shape = tuple(int(n) for n in shape)
        with self._lock:
            arrays = self._pool.pop(shape, [])
            self._pool[shape] = arrays  # now the most recent
            for array in arrays:
                if sys.getrefcount(array) == 3:  # held only by the list, `array` and getrefcount's argument
                    return array
            array = np.empty(shape, np.float32)
            if len(arrays) < self.PER_SHAPE:
                arrays.append(array)
            while len(self._pool) > self.SHAPES:
                del self._pool[next(iter(self._pool))]
            return array

    def clear(self):
        with self._lock:
            self._pool.clear()




def _f32(x):
    x = np.asarray(x)
    return x if x.dtype == np.float32 else x.astype(np.float32)


def _attend(key_mask):
    """The key mask as contiguous uint8, 1 = attend (any nonzero value attends, as in the reference).

    A contiguous bool mask (what the model passes) is reinterpreted without a copy.
    """
    mask = np.asarray(key_mask)
    if mask.dtype != np.bool_:
        mask = mask != 0
    return np.ascontiguousarray(mask).view(np.uint8)


def _rows(x):
    """x as a 2-D (rows, last dim) array, a view when possible."""
    return x.reshape(-1, x.shape[-1])




class NumbaOps(Ops):
    """The Numba CPU backend. Same methods and results as reference.NumpyOps, within float32 rounding."""

    name = "numba"
    keeps_outputs_on_device = False

    def __init__(self, threads=None):
        self.threads = threads
        if threads is not None:
            blas.set_threads(threads)
        self.workspace = Workspace() if hasattr(sys, "getrefcount") else None
        self.serial_work = SERIAL_WORK

    def _parallel(self, work):
        """Set this thread's Numba thread count, and say whether a kernel doing `work` should use the pool.

        numba.set_num_threads holds per calling thread, hence the check on every op.
        Waking the sleeping pool costs ~10-20 us, more than a tiny kernel's work.
        """
        n = numba.config.NUMBA_NUM_THREADS if self.threads is None else min(self.threads, numba.config.NUMBA_NUM_THREADS)
        if numba.get_num_threads() != n:
            numba.set_num_threads(n)
        return n > 1 and work >= self.serial_work

    def _run(self, kernel, work, *args):
        """kernel(*args) on the thread pool, or in this thread when `work` is too little to pay for waking it."""
        (kernel.parallel if self._parallel(work) else kernel.serial)(*args)

    def _empty(self, shape):
        return np.empty(shape, np.float32) if self.workspace is None else self.workspace.empty(shape)

    def _heads_layout(self, batch, heads, seq, head_dim):
        """A (B, H, S, Dh) array stored as (B, S, H, Dh): merging the heads back is then a free reshape."""
        return self._empty((batch, seq, heads, head_dim)).transpose(0, 2, 1, 3)

    def prepare(self, params):
        """Weights as float32 C-contiguous NumPy arrays, names unchanged (no copy when they already are)."""
        return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}

    def asarray(self, x):
        return np.asarray(x)

    def to_numpy(self, x):
        return np.asarray(x)

    def linear(self, x, weight, bias=None, activation=None):
        act = activation_code(activation, optional=True)
        x = _f32(x)
        x2 = _rows(x)  # (N, In)
        rows, cols = x2.shape[0], weight.shape[0]
        weight = np.ascontiguousarray(weight, dtype=np.float32)  # (Out, In); prepare() made it so already
        bias = _f32(bias) if bias is not None else np.zeros(cols, np.float32)  # (Out,)
        if rows <= SMALL_M_MAX:
            padded = rows + (-rows) % 4  # the kernel takes rows 4 at a time
            if padded != rows or not x2.flags.c_contiguous:
                xp = np.zeros((padded, x2.shape[1]), np.float32)
                xp[:rows] = x2
                x2 = xp
            y = self._empty((padded, cols))  # (N + pad, Out)
            self._parallel(weight.size)
            _matmul_small(x2, weight, bias, y)  # bias added in the kernel
            if act != ACT_NONE:
                self._run(_bias_act, y.size, y, np.zeros(cols, np.float32), act)
            y = y[:rows]
        else:
            y = np.matmul(x2, weight.T, out=self._empty((rows, cols)))  # (N, In) @ (In, Out) -> (N, Out), BLAS
            self._run(_bias_act, y.size, y, bias, act)
        return y.reshape(x.shape[:-1] + (cols,))

    def activation(self, x, name):
        act = activation_code(name)
        x = _f32(x)
        out = self._empty(x.shape)
        if x.size:
            self._run(_activation, x.size, _rows(x), _rows(out), act)
        return out

    def attention_probs(self, q, k, key_mask, scale):
        q, k = _f32(q), _f32(k)
        batch, heads, queries, head_dim = q.shape
        probs = self._empty((batch, heads, queries, k.shape[2]))  # (B, H, S, T)
        self._run(_attention_probs, probs.size * head_dim, q, k, _attend(key_mask), np.float32(scale), probs)
        return probs

    def attention_context(self, probs, v):
        probs, v = _f32(probs), _f32(v)
        batch, heads, queries, _ = probs.shape
        out = self._heads_layout(batch, heads, queries, v.shape[3])  # (B, H, S, Dh)
        self._run(_attention_context, probs.size * v.shape[3], probs, v, out)
        return out

    def attention(self, q, k, v, key_mask, scale):
        """attention_context(attention_probs(q, k, key_mask, scale), v), without storing the probabilities."""
        q, k, v = _f32(q), _f32(k), _f32(v)
        batch, heads, queries, head_dim = q.shape
        out = self._heads_layout(batch, heads, queries, v.shape[3])  # (B, H, S, Dh)
        self._run(_attention, 2 * q.size * k.shape[2], q, k, v, _attend(key_mask), np.float32(scale), out)
        return out

    def layernorm(self, x, gamma, beta, eps, residual=None):
        x = _f32(x)
        if residual is not None:
            residual = _f32(residual)
            if residual.shape != x.shape:
                shape = np.broadcast_shapes(x.shape, residual.shape)
                x, residual = np.broadcast_to(x, shape), np.broadcast_to(residual, shape)
        out = self._empty(x.shape)
        if x.size:
            self._run(_layernorm, x.size, _rows(x), None if residual is None else _rows(residual), _f32(gamma),
                      _f32(beta), float(eps), _rows(out))
        return out
