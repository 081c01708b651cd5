"""The Numba backend: the ops of reference.py, fused and parallel on the CPU.

Matrix products with weights run on the weights `prepare` packed (gemm.py:
register tiles sized from the CPU's vector unit, float32 or int8); everything
element-wise or row-wise after them is one parallel Numba pass:

    linear        packed x @ Wᵀ + bias into a reused buffer (gemm.matmul), then the
                  activation in place; a weight prepare() did not pack goes to BLAS
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
(measured when the products still went to BLAS: GELU after the FFN GEMM):
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

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by libgomp / libomp when it loads

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from . import blas, gemm, warmup  # noqa: E402
from .activate import activate  # noqa: E402
from .fastmath import exp64, maxnum  # noqa: E402
from .jit import CONTRACT, REDUCE, SERIAL_WORK, parallel_and_serial  # noqa: E402
from .protocol import Ops  # noqa: E402
from .reference import (ACT_NONE, FLOAT32_MIN, QUANTIZE_MODES, activation_code, check_quantize,  # noqa: E402
                        matrix_names, quantize_matrix)

if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]
blas.sleep_when_idle()  # the same problem the other way round: OpenBLAS's threads spin after each call


# ---------------------------------------------------------------- element-wise


@parallel_and_serial(CONTRACT)
def _bias_act(y, bias, act):
    """y = act(y + bias) in place, for y (N, Out) and bias (Out,).

    In place through one array argument on purpose: given the same array as
    input and output, LLVM's overlap check fails and it runs the scalar loop
    (GELU 4x slower). Rows are the parallel tasks (splitting them into column
    blocks as well kept the loops from vectorizing).
    """
    for i in prange(y.shape[0]):
        for j in range(y.shape[1]):
            y[i, j] = activate(y[i, j] + bias[j], act)


@parallel_and_serial(CONTRACT)
def _activation(x, out, act):
    """out = act(x) for 2-D x and out of one shape (distinct arrays)."""
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = activate(x[i, j], act)


# ---------------------------------------------------------------- layernorm


@njit(error_model="numpy", cache=True)
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


@njit(error_model="numpy", cache=True)
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


@njit(fastmath=CONTRACT, error_model="numpy", cache=True)
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


@njit(fastmath=CONTRACT, error_model="numpy", cache=True)
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


@njit(fastmath=CONTRACT, error_model="numpy", cache=True)
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


@njit(error_model="numpy", cache=True)
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


@njit(error_model="numpy", cache=True)
def _context_head(probs, v, out, b, h):
    """out[b, h] = probs[b, h] @ v[b, h]."""
    queries, keys, head_dim = probs.shape[2], probs.shape[3], v.shape[3]
    vh = np.empty((keys, head_dim), np.float32)
    acc = np.empty((2, head_dim), np.float32)
    _copy_head(v, b, h, vh, False)
    for i in range(0, queries, 2):
        j = min(i + 1, queries - 1)
        _weighted_sum(probs[b, h, i], probs[b, h, j], vh, acc, out[b, h, i], out[b, h, j])


@njit(error_model="numpy", cache=True)
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




def _cache_dir():
    """The directory Numba caches these kernels in (beside this file, or $NUMBA_CACHE_DIR), or None."""
    cache = getattr(gemm._matmul.parallel, "_cache", None)
    return getattr(cache, "_cache_path", None)


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
    quantize_modes = QUANTIZE_MODES

    def __init__(self, threads=None):
        self.threads = threads
        if threads is not None:
            blas.set_threads(threads)
        self.workspace = Workspace() if hasattr(sys, "getrefcount") else None
        self.serial_work = SERIAL_WORK

    def _threads(self):
        return numba.config.NUMBA_NUM_THREADS if self.threads is None else min(self.threads, numba.config.NUMBA_NUM_THREADS)

    def _parallel(self, work):
        """Set this thread's Numba thread count, and say whether a kernel doing `work` should use the pool.

        numba.set_num_threads holds per calling thread, hence the check on every op.
        Waking the sleeping pool costs ~10-20 us, more than a tiny kernel's work.
        """
        n = self._threads()
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

    def prepare(self, params, matrices=(), quantize=None):
        """Weights as float32 C-contiguous NumPy arrays, names unchanged (no copy when they already are);
        each name in `matrices` packed for gemm.matmul, as int8 with quantize="int8".

        The first time this machine prepares a model, every kernel of the forward pass is compiled
        first (warmup.py: one notice on stderr, then never again)."""
        check_quantize(quantize)
        if matrices:
            for kernel_set in (None,) if quantize is None else (None, quantize):
                warmup.ensure_compiled(self, _cache_dir(), kernel_set)
        prepared = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}
        for name in matrix_names(prepared, matrices):
            if quantize == "int8":
                prepared[name] = gemm.pack_int8(*quantize_matrix(prepared[name], repr(name)))
            else:
                prepared[name] = gemm.pack_float32(prepared[name])
        return prepared

    def asarray(self, x):
        return np.asarray(x)

    def to_numpy(self, x):
        return np.asarray(x)

    def linear(self, x, weight, bias=None, activation=None):
        act = activation_code(activation, optional=True)
        x = _f32(x)
        x2 = np.ascontiguousarray(_rows(x))  # (N, In)
        rows, cols = x2.shape[0], weight.shape[0]
        bias = _f32(bias) if bias is not None else np.zeros(cols, np.float32)  # (Out,)
        y = self._empty((rows, cols))  # (N, Out)
        if isinstance(weight, gemm.PackedMatrix):
            threads = self._threads() if self._parallel(rows * x2.shape[1] * cols) else 1
            gemm.matmul(x2, weight, bias, y, threads)  # bias added by the kernel
            if act != ACT_NONE:
                self._run(_bias_act, y.size, y, np.zeros(cols, np.float32), act)  # in place, one array: vectorizes
        else:  # a weight prepare() did not pack (adapters, callers of ops.linear): BLAS
            np.matmul(x2, np.asarray(weight, dtype=np.float32).T, out=y)  # (N, In) @ (In, Out) -> (N, Out)
            self._run(_bias_act, y.size, y, bias, act)
        return y.reshape(x.shape[:-1] + (cols,))

    def embed(self, table, ids):
        return table.rows(ids) if isinstance(table, gemm.PackedMatrix) else np.asarray(table)[ids]

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
