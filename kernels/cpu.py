"""The Numba backend: the ops of reference.py, fused and parallel on the CPU.

Matrix products with weights run on the weights `prepare` packed (gemm.py:
register tiles sized from the CPU's vector unit, float32 or int8); everything
element-wise or row-wise after them is one parallel Numba pass:

    linear        act(packed x @ Wᵀ + bias) into a reused buffer (gemm.matmul); a weight
                  prepare() did not pack goes to BLAS, then bias and activation in place
    attention     per (batch, head): q·kᵀ, scale, mask, softmax and p·v in one kernel,
                  the products on gemm's register tiles (with Dh = 64 they are too
                  small for BLAS to pay: per-head sgemm calls were 1.5x slower than
                  the kernel before this one, measured in the model)
    layernorm     residual add + mean + variance + scale/shift in one pass per row
    activations   exact-erf GELU and friends through the polynomials of fastmath.py

Threading. Numba's OpenMP threads spin after each parallel region by default,
and on a machine with as many threads as cores that spinning steals the cores
from the next BLAS call (measured on 2 cores: a 128x768x3072 GEMM followed by a
trivial parallel kernel, 8.0 ms instead of 3.6 ms; at 8 rows, 8.0 instead of
0.8 ms: `python tools/bench/bench_kernels.py spin`). So this module asks OpenMP to
sleep soon (OMP_WAIT_POLICY=PASSIVE, unless the user set it) before the
runtime starts, and prefers the OpenMP threading layer; TBB and the workqueue
layer are the fallbacks. Sleeping at once makes every parallel region wake the
pool, and a wake-up costs ~20 us on one machine (2-core AMD EPYC, Zen 3) but
~60 us on another (Zen 4, in the same kind of VM; the workqueue layer ~120):
a 1 x 8 pass runs ~60 regions. So libgomp spins GOMP_SPINCOUNT = 10,000 rounds
first (unless the user set it): ~0.3 ms on Zen 4, enough to span the Python
between two kernels of a pass. Its price is paid by a BLAS call right after a
kernel (a weight prepare() did not pack: adapters), which waits out the spin:
~0.3 ms at 8 rows, nothing measurable at 128 (README, "Threads that spin"). Zen 4, 2 threads, the same model in alternating processes,
two runs: 1 x 8 float32 16.9-27.6 -> 12.8-15.5 ms, int8 10.6-16.3 -> 4.9-5.6,
1 x 128 77.7-106.1 -> 69.8-70.9 (median of 15-40 passes); a region after
200 us of serial work 77 -> 2 us. The settings only take effect if no OpenMP
runtime has started in this process yet. OpenBLAS's own
threads spin after each call as well, slowing the Numba kernel that follows
(measured when the products still went to BLAS: GELU after the FFN GEMM):
blas.sleep_when_idle() makes them sleep at once too.

q, k, v are head-split views of the linear outputs; the attention kernels read
them as the (B, S, H, Dh) arrays they view (_sequence_major), copy one head at
a time into contiguous scratch, and write their output in (B, S, H, Dh) order,
so that merging the heads again is a free reshape.
Kernels compute in float32, with float64 where a sum or a polynomial needs it.
"""

import math
import os
import sys
import threading

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by libgomp / libomp when it loads
OMP_SPIN_ROUNDS = 10_000
os.environ.setdefault("GOMP_SPINCOUNT", str(OMP_SPIN_ROUNDS))  # libgomp: spin this many rounds, then sleep

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from . import blas, calibration, gemm, simd, warmup  # noqa: E402
from .activate import activate  # noqa: E402
from .fastmath import exp32, maxnum  # noqa: E402
from .jit import CONTRACT, REDUCE, SERIAL_WORK, parallel_and_serial  # noqa: E402
from .protocol import Ops  # noqa: E402
from .reference import (FLOAT32_MIN, QUANTIZE_MODES, activation_code, check_quantize,  # noqa: E402
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
#
# Per (batch, head), both products on gemm's register tiles: kᵀ and v are packed into panels for
# the head (as gemm packs weights), the scaled queries padded to whole tiles of rows (zero rows:
# their scores are 0, their results dropped). Measured against the previous kernels (two query
# rows at a time, the products as vectorized loops, exp64 in the softmax), 1 thread, CPU time:
# 12 heads of 128 x 64 (DistilBERT 1 x 128) 1.63 -> 1.52 ms, 12 x 512 x 64 24.9 -> 19.8 ms,
# 32 x 12 heads of 200 x 32 (MiniLM, a batch of long texts) 102.9 -> 57.5 ms; the softmax is
# then ~40% of what is left, packing k and v ~5%.


_ROW_SUM = simd.row_sum()


@njit(error_model="numpy", cache=True)
def _row_sum(row):
    """row's sum in simd.row_sum's fixed order: the same bits whatever the padding after it (masked keys)."""
    return _ROW_SUM(row, 0, row.shape[0])


@njit(inline="always", fastmath=CONTRACT, error_model="numpy", cache=True)
def _masked_softmax(row, attend):
    """row = softmax(row where attend else the most negative float32), in place.

    Not -inf: a fully masked row becomes uniform, as in the reference. Inlined into its caller's row
    loop (with the same flags: the same results bit for bit): a call per row had cost a head's scores and
    softmax 39-46 -> 36 us at 128 tokens, a whole head 60-62 -> 56-58 us, 2.7 -> 2.4-2.5 at 8 tokens (the
    Xeon, one thread).
    """
    for t in range(row.shape[0]):
        row[t] = row[t] if attend[t] != 0 else FLOAT32_MIN
    m = FLOAT32_MIN  # (starting from row[0] instead stops LLVM from vectorizing the loop)
    for t in range(row.shape[0]):  # a separate pass: fused with the masking it does not vectorize
        m = maxnum(m, row[t])  # NaNs ignored here, but a NaN score still makes its row NaN through exp and the sum
    for t in range(row.shape[0]):
        row[t] = exp32(row[t] - m)  # float32 throughout, as the reference (fastmath.exp32: ~1.5 ulp, 3x exp64's speed)
    inv = np.float32(1.0) / _row_sum(row)
    for t in range(row.shape[0]):
        row[t] *= inv


@njit(fastmath=CONTRACT, error_model="numpy", cache=True)  # CONTRACT: _masked_softmax's own flags, inlined here
def _head_probs(q, k, attend, scale, b, h):
    """softmax(mask(q[b, :, h] * scale @ k[b, :, h]ᵀ)) as [rows, key_cols]: rows and keys padded to whole tiles
    and panels (the padding holds zeros or garbage: callers read [:S, :T])."""
    queries, head_dim, keys = q.shape[1], q.shape[3], k.shape[1]
    rows = queries + (-queries) % gemm.TILE_ROWS
    key_cols = keys + (-keys) % gemm.PANEL
    qs = np.zeros((rows, head_dim), np.float32)  # q * scale, as the reference scales before the product
    for s in range(queries):
        for d in range(head_dim):
            qs[s, d] = q[b, s, h, d] * scale
    kp = np.zeros((key_cols // gemm.PANEL, head_dim, gemm.PANEL), np.float32)  # kᵀ in panels of PANEL keys
    for t in range(keys):
        for d in range(head_dim):
            kp[t // gemm.PANEL, d, t % gemm.PANEL] = k[b, t, h, d]
    zeros = np.zeros(key_cols, np.float32)  # no bias
    probs = np.empty((rows, key_cols), np.float32)
    for i in range(0, rows, gemm.TILE_ROWS):
        for p in range(key_cols // gemm.PANEL):
            gemm.FLOAT32_TILE(qs, i * head_dim, head_dim, 1, kp, p * head_dim * gemm.PANEL, zeros, p * gemm.PANEL,
                              probs, i * key_cols + p * gemm.PANEL, key_cols, head_dim)
    for i in range(queries):
        _masked_softmax(probs[i, :keys], attend[b])
    return probs


@njit(error_model="numpy", cache=True)
def _head_context(probs, keys, v, out, b, h):
    """out[b, :, h] = probs[:S, :keys] @ v[b, :, h] for probs [rows, key_cols] as _head_probs returns them."""
    queries, head_dim = out.shape[1], out.shape[3]
    rows, key_cols = probs.shape
    dim_cols = head_dim + (-head_dim) % gemm.PANEL
    vp = np.zeros((dim_cols // gemm.PANEL, keys, gemm.PANEL), np.float32)  # v in panels of PANEL dims
    for t in range(keys):
        for d in range(head_dim):
            vp[d // gemm.PANEL, t, d % gemm.PANEL] = v[b, t, h, d]
    zeros = np.zeros(dim_cols, np.float32)
    context = np.empty((rows, dim_cols), np.float32)
    for i in range(0, rows, gemm.TILE_ROWS):
        for p in range(dim_cols // gemm.PANEL):
            gemm.FLOAT32_TILE(probs, i * key_cols, key_cols, 1, vp, p * keys * gemm.PANEL, zeros, 0,
                              context, i * dim_cols + p * gemm.PANEL, dim_cols, keys)
    for s in range(queries):
        for d in range(head_dim):
            out[b, s, h, d] = context[s, d]


@njit(error_model="numpy", cache=True)
def _probs_head(q, k, attend, scale, probs, b, h):
    """probs[b, h] = softmax(mask(q[b, :, h] * scale @ k[b, :, h]ᵀ))."""
    padded = _head_probs(q, k, attend, scale, b, h)
    for s in range(q.shape[1]):
        for t in range(k.shape[1]):
            probs[b, h, s, t] = padded[s, t]


@njit(error_model="numpy", cache=True)
def _context_head(probs, v, out, b, h):
    """out[b, :, h] = probs[b, h] @ v[b, :, h]."""
    queries, keys = probs.shape[2], probs.shape[3]
    padded = np.zeros((queries + (-queries) % gemm.TILE_ROWS, keys + (-keys) % gemm.PANEL), np.float32)
    for s in range(queries):
        for t in range(keys):
            padded[s, t] = probs[b, h, s, t]
    _head_context(padded, keys, v, out, b, h)


@njit(error_model="numpy", cache=True)
def _attention_head(q, k, v, attend, scale, out, b, h):
    """out[b, :, h] = softmax(mask(q[b, :, h] * scale @ k[b, :, h]ᵀ)) @ v[b, :, h], the probabilities kept for this
    head only."""
    _head_context(_head_probs(q, k, attend, scale, b, h), k.shape[1], v, out, b, h)


# One task per (batch, head). q, k, v and out are sequence-major, (B, S, H, Dh) C-contiguous (NumbaOps passes
# the linears' outputs as they are), probs (B, H, S, T).


@parallel_and_serial(CONTRACT)
def _attention_probs(q, k, attend, scale, probs):
    for bh in prange(q.shape[0] * q.shape[2]):
        _probs_head(q, k, attend, scale, probs, bh // q.shape[2], bh % q.shape[2])


@parallel_and_serial(CONTRACT)
def _attention_context(probs, v, out):
    for bh in prange(probs.shape[0] * probs.shape[1]):
        _context_head(probs, v, out, bh // probs.shape[1], bh % probs.shape[1])


@parallel_and_serial(CONTRACT)
def _attention(q, k, v, attend, scale, out):
    for bh in prange(q.shape[0] * q.shape[2]):
        _attention_head(q, k, v, attend, scale, out, bh // q.shape[2], bh % q.shape[2])


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


def _sequence_major(heads):
    """A (B, H, S, Dh) array as the (B, S, H, Dh) C-contiguous one the attention kernels index [b, s, h, d].

    The model's q, k and v are head-split views of the linears' (B, S, D) outputs: transposed back, they
    are that memory, no copy. Why not index the views: with strides known only at run time, the kernels'
    copies of a head did not vectorize (32 x 12 heads of 128 x 64, 2 threads: 19.5-26.4 ms a layer through
    the views, 16.0 now; DistilBERT passes at 32 x 128 0.93-0.99x the time, int8 0.90-0.98x; MiniLM's
    heads of 32 dims within the noise). A (B, H, S, Dh) C-contiguous array is copied.
    """
    return np.ascontiguousarray(_f32(heads).transpose(0, 2, 1, 3))


def _attend(key_mask):
    """The key mask as contiguous uint8, 1 = attend (any nonzero value attends, as in the reference).

    A contiguous bool mask (what the model passes) is reinterpreted without a copy.
    """
    mask = np.asarray(key_mask)
    if mask.dtype != np.bool_:
        mask = mask != 0
    return np.ascontiguousarray(mask).view(np.uint8)


def _writable_vector(value):
    """A read-only 1-D parameter (a bias or layernorm weight of a memory-mapped checkpoint) as a writable copy.

    Numba compiles a kernel again for read-only arrays (another type), and the warm-up, which runs
    writable ones, would not cover that: the first real model then compiled the matmul and
    layernorm kernels once more (~6 s). The vectors are small; the matrices are packed anyway.
    """
    return value.copy() if value.ndim == 1 and not value.flags.writeable else value


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
        self.tilings = {}  # kernel set (None: float32, "int8") -> gemm.Tiling, set by prepare (warmup.tiling)

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

    def prepare(self, params, matrices=(), quantize=None):
        """Weights as float32 C-contiguous NumPy arrays, names unchanged (no copy when they already are);
        each name in `matrices` packed for gemm.matmul, as int8 with quantize="int8", all in one
        gemm.Arena (on huge pages where the OS has them).

        The first time this machine prepares a model, every kernel of the forward pass is compiled
        first (warmup.py: one notice on stderr, then never again)."""
        check_quantize(quantize)
        if matrices:
            calibration.from_environment()  # a bad $MINIDISTIL_TILING fails here, not after the compile
            warmup.ensure_compiled(self, _cache_dir(), warmup.kernel_sets(quantize))
            for kind in warmup.kernel_sets(quantize):
                self.tilings[kind] = warmup.tiling(_cache_dir(), kind)
        prepared = {name: _writable_vector(np.ascontiguousarray(value, dtype=np.float32)) for name, value in params.items()}
        names = matrix_names(prepared, matrices)
        arena = gemm.Arena.for_matrices([prepared[name].shape for name in names], int8=quantize == "int8")
        for name in names:
            if quantize == "int8":
                prepared[name] = gemm.pack_int8(*quantize_matrix(prepared[name], repr(name)), arena)
            else:
                prepared[name] = gemm.pack_float32(prepared[name], arena)
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
            tiling = self.tilings.get(None if weight.scales is None else "int8", gemm.TALL)
            gemm.matmul(x2, weight, bias, y, threads, act, tiling, self.serial_work)  # bias, activation: by the kernel
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
        q, k = _sequence_major(q), _sequence_major(k)  # (B, S, H, Dh)
        batch, queries, heads, head_dim = q.shape
        probs = self._empty((batch, heads, queries, k.shape[1]))  # (B, H, S, T)
        self._run(_attention_probs, probs.size * head_dim, q, k, _attend(key_mask), np.float32(scale), probs)
        return probs

    def attention_context(self, probs, v):
        probs, v = _f32(probs), _sequence_major(v)
        batch, heads, queries, _ = probs.shape
        out = self._empty((batch, queries, heads, v.shape[3]))  # (B, S, H, Dh)
        self._run(_attention_context, probs.size * v.shape[3], probs, v, out)
        return out.transpose(0, 2, 1, 3)  # (B, H, S, Dh), stored so that merging the heads is a free reshape

    def attention(self, q, k, v, key_mask, scale):
        """attention_context(attention_probs(q, k, key_mask, scale), v), without storing the probabilities."""
        q, k, v = _sequence_major(q), _sequence_major(k), _sequence_major(v)  # (B, S, H, Dh)
        batch, queries, heads, head_dim = q.shape
        out = self._empty((batch, queries, heads, v.shape[3]))  # (B, S, H, Dh)
        self._run(_attention, 2 * q.size * k.shape[1], q, k, v, _attend(key_mask), np.float32(scale), out)
        return out.transpose(0, 2, 1, 3)  # (B, H, S, Dh), stored so that merging the heads is a free reshape

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
