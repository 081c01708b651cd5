"""The CuPy backend: the ops of reference.py on an NVIDIA GPU.

Weights are uploaded once by `prepare` and stay on the device. Matrix products
go straight to cuBLAS in float32 (`gemmEx` / `gemmStridedBatchedEx`, so a
transposed weight or key matrix needs no copy and the attention scale rides in
the product's alpha); the row-wise and element-wise work is done by the CUDA C
kernels in this folder:

    bias_act.cu    y = act(x + bias)            (gelu = exact erf, gelu_new, relu, silu)
    softmax.cu     masked softmax of attention scores, in place
    layernorm.cu   LayerNorm(x + residual)

Inputs may be NumPy or CuPy arrays; outputs are CuPy arrays on the current
device (`to_numpy` brings one back). TensorFloat-32 is off unless asked for,
with `CupyOps(tf32=True)` or MINIDISTIL_TF32=1: the compute type is passed to
cuBLAS on every call, so CuPy's own CUPY_TF32 switch has no effect here
(NVIDIA_TF32_OVERRIDE=0 still forces TF32 off everywhere).
"""

import functools
import math
import os
from pathlib import Path

import numpy as np

from .protocol import Ops
from .reference import ACT_NONE, activation_code, check_quantize, matrix_names

KERNEL_DIR = Path(__file__).resolve().parent
# Each CUDA source and the kernels gpu.py launches from it.
KERNEL_SOURCES = {
    "bias_act.cu": ("bias_act_f32",),
    "softmax.cu": ("masked_softmax_f32",),
    "layernorm.cu": ("add_layernorm_f32",),
}
TF32_ENV = "MINIDISTIL_TF32"
INSTALL_HINT = "pip install minidistil[gpu]"

ELEMENTWISE_THREADS = 256
ELEMENTWISE_MAX_BLOCKS = 65535  # bias_act_f32 loops over the rest (grid-stride)
WARPS_PER_BLOCK = 4  # softmax and layernorm: one warp per row
MAX_ELEMENTS = 2**31 - 1  # the kernels index with 32-bit integers

# cuBLAS operation codes (cublasOperation_t).
OP_N, OP_T = 0, 1


class BackendUnavailableError(ImportError, RuntimeError):
    """A backend was asked for but cannot run here: its package or its device is missing.

    An ImportError, so that code falling back on a missing backend catches it
    (get_ops("auto") does, for numba), and a RuntimeError for callers that
    treat it as a failure at run time.
    """


def _import_cupy():
    """The cupy module, once a CUDA device is known to be there."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend 'cupy' needs the cupy package ({INSTALL_HINT}): {exc}"
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, a driver too old for this cupy, no device
        raise BackendUnavailableError(f"backend 'cupy': no usable CUDA device found ({exc})") from exc
    if count == 0:
        raise BackendUnavailableError("backend 'cupy': no CUDA device found")
    return cupy


@functools.lru_cache(maxsize=None)
def _compile_kernels(cp):
    """Every kernel of KERNEL_SOURCES by name, compiled once per process (NVRTC, cached on disk by cupy).

    Compiled here rather than at first use so that a broken source fails loudly
    when the backend is created.
    """
    kernels = {}
    for filename, names in KERNEL_SOURCES.items():
        module = cp.RawModule(code=(KERNEL_DIR / filename).read_text(encoding="utf-8"))
        for name in names:
            kernels[name] = module.get_function(name)
    return kernels


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def gemm_plan(rows, inner, cols, right_transposed):
    """cuBLAS arguments for the row-major product C[rows, cols] = L[rows, inner] @ R.

    R is stored [inner, cols], or [cols, inner] and used transposed
    (`right_transposed`: a Linear weight, or the keys of attention). cuBLAS is
    column-major and sees each row-major buffer as its transpose, so it is
    asked for Cᵀ = Rᵀ·Lᵀ: its A is R and its B is L.
    Returns (transa, transb, m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c),
    the strides being the element distance between consecutive batch matrices.
    """
    transa = OP_T if right_transposed else OP_N
    lda = inner if right_transposed else cols
    return transa, OP_N, cols, rows, inner, lda, inner, cols, inner * cols, rows * inner, rows * cols


def elementwise_launch(n):
    """(grid, block) for bias_act_f32 over n elements."""
    blocks = min(max(1, -(-n // ELEMENTWISE_THREADS)), ELEMENTWISE_MAX_BLOCKS)
    return (blocks,), (ELEMENTWISE_THREADS,)


def rows_launch(rows):
    """(grid, block) for the one-warp-per-row kernels (softmax, layernorm)."""
    return (max(1, -(-rows // WARPS_PER_BLOCK)),), (32 * WARPS_PER_BLOCK,)


class CupyOps(Ops):
    """The ops of NumpyOps, computed on the current CUDA device with CuPy.

    tf32: allow TensorFloat-32 in the matrix products (faster, ~1e-3 relative
    error: outside the golden tolerance); None reads $MINIDISTIL_TF32, default off.
    """

    name = "cupy"
    keeps_outputs_on_device = True  # models return CuPy arrays unless asked for NumPy (return_numpy=True)
    quantize_modes = ()  # no int8 kernels on the GPU

    def __init__(self, threads=None, tf32=None):
        self.threads = threads  # accepted for get_ops' sake; the GPU needs no thread count
        self.cp = _import_cupy()
        self.tf32 = _env_flag(TF32_ENV) if tf32 is None else bool(tf32)
        self._kernels = _compile_kernels(self.cp)

    # -- arrays -------------------------------------------------------------------

    def prepare(self, params, matrices=(), quantize=None):
        """Every weight uploaded once as a contiguous float32 device array; names unchanged.

        Matrices stay plain arrays (cuBLAS reads the checkpoint layout as it is); there are no int8 kernels here.
        """
        check_quantize(quantize)
        if quantize is not None:
            raise ValueError(f"backend 'cupy' has no {quantize} kernels (quantize_modes is empty)")
        prepared = {name: self._f32(value) for name, value in params.items()}
        matrix_names(prepared, matrices)
        return prepared

    def asarray(self, x):
        """An input (NumPy, CuPy or nested lists) as a CuPy array on the current device."""
        return self.cp.asarray(x)

    def to_numpy(self, x):
        """A result as a NumPy array (a device-to-host copy for a CuPy array)."""
        return self.cp.asnumpy(x)

    def _f32(self, x):
        return self.cp.ascontiguousarray(self.cp.asarray(x, dtype=self.cp.float32))

    # -- ops --------------------------------------------------------------------------

    def linear(self, x, weight, bias=None, activation=None):
        """act(x @ weightᵀ + bias): one cuBLAS product, then bias and activation fused in one kernel."""
        act = activation_code(activation, optional=True)  # bias_act.cu's ACT_* code
        x, weight = self._f32(x), self._f32(weight)
        inner = x.shape[-1]
        out_features = weight.shape[0]
        if weight.shape != (out_features, inner):
            raise ValueError(f"linear: weight {weight.shape} does not fit input {x.shape} (weights are [out, in])")
        y = self.cp.empty(x.shape[:-1] + (out_features,), dtype=self.cp.float32)
        self._matmul(x, weight, y, math.prod(x.shape[:-1]), inner, out_features, right_transposed=True)
        if bias is not None or act != ACT_NONE:
            self._bias_act(y, None if bias is None else self._f32(bias), y, act)
        return y

    def embed(self, table, ids):
        return self.cp.asarray(table)[self.cp.asarray(ids)]

    def activation(self, x, name):
        code = activation_code(name)
        x = self._f32(x)
        y = self.cp.empty_like(x)
        self._bias_act(x, None, y, code)
        return y

    def attention_probs(self, q, k, key_mask, scale):
        """softmax(mask(q·scale @ kᵀ)): q [B, H, S, Dh], k [B, H, T, Dh], key_mask [B, T] -> [B, H, S, T]."""
        q, k = self._f32(q), self._f32(k)
        batch, heads, queries, head_dim = q.shape
        keys = k.shape[2]
        if k.shape != (batch, heads, keys, head_dim):
            raise ValueError(f"attention_probs: keys {k.shape} do not fit queries {q.shape}")
        mask = self.cp.asarray(key_mask)
        if mask.shape != (batch, keys):
            raise ValueError(f"attention_probs: key_mask {mask.shape} should be (batch, keys) = {(batch, keys)}")
        if mask.dtype != self.cp.bool_:
            mask = mask != 0
        mask = self.cp.ascontiguousarray(mask)  # bool: one byte per key, read as unsigned char
        scores = self.cp.empty((batch, heads, queries, keys), dtype=self.cp.float32)
        # The reference scales q before the product; scaling the product (alpha) is the
        # same up to float32 rounding, and exact for a power-of-two scale (1/8 for Dh = 64).
        self._matmul(q, k, scores, queries, head_dim, keys, right_transposed=True, batch=batch * heads, alpha=scale)
        rows = batch * heads * queries
        if rows and keys:
            self._launch("masked_softmax_f32", rows_launch(rows),
                         scores, mask, np.int32(rows), np.int32(keys), np.int32(heads * queries))
        return scores

    def attention(self, q, k, v, key_mask, scale):
        """attention_context(attention_probs(...), v): the probabilities are a temporary here."""
        return self.attention_context(self.attention_probs(q, k, key_mask, scale), v)

    def attention_context(self, probs, v):
        """probs [B, H, S, T] @ v [B, H, T, Dh] -> [B, H, S, Dh]."""
        probs, v = self._f32(probs), self._f32(v)
        batch, heads, queries, keys = probs.shape
        head_dim = v.shape[-1]
        if v.shape != (batch, heads, keys, head_dim):
            raise ValueError(f"attention_context: values {v.shape} do not fit probabilities {probs.shape}")
        out = self.cp.empty((batch, heads, queries, head_dim), dtype=self.cp.float32)
        self._matmul(probs, v, out, queries, keys, head_dim, right_transposed=False, batch=batch * heads)
        return out

    def layernorm(self, x, gamma, beta, eps, residual=None):
        """LayerNorm over the last axis of x [..., D] (+ residual), in one kernel."""
        x, gamma, beta = self._f32(x), self._f32(gamma), self._f32(beta)
        cols = x.shape[-1]
        if gamma.shape != (cols,) or beta.shape != (cols,):
            raise ValueError(f"layernorm: gamma {gamma.shape} / beta {beta.shape} do not fit input {x.shape}")
        if residual is not None:
            residual = self._f32(residual)
            if residual.shape != x.shape:
                raise ValueError(f"layernorm: residual {residual.shape} does not match input {x.shape}")
        out = self.cp.empty_like(x)
        rows = x.size // cols if cols else 0
        if rows:
            self._launch("add_layernorm_f32", rows_launch(rows),
                         x, x if residual is None else residual, gamma, beta, out,
                         np.int32(rows), np.int32(cols), np.float32(eps), np.int32(residual is not None))
        return out

    # -- plumbing ---------------------------------------------------------------------

    def _launch(self, name, launch, *args):
        grid, block = launch
        self._kernels[name](grid, block, args)

    @staticmethod
    def _check_size(n):
        if n > MAX_ELEMENTS:
            raise ValueError(f"cupy backend: {n} elements is more than its kernels index ({MAX_ELEMENTS})")

    def _bias_act(self, x, bias, y, act):
        """y = act(x + bias), bias broadcast over rows; x and y may be the same array."""
        n = x.size
        if n == 0:
            return
        self._check_size(n)
        cols = x.shape[-1]
        if bias is not None and bias.shape != (cols,):
            raise ValueError(f"bias {bias.shape} does not fit output {x.shape}")
        self._launch("bias_act_f32", elementwise_launch(n),
                     x, x if bias is None else bias, y,
                     np.uint32(n), np.uint32(cols), np.int32(act), np.int32(bias is not None))

    def _matmul(self, left, right, out, rows, inner, cols, right_transposed, batch=1, alpha=1.0):
        """out = alpha · left @ right (or rightᵀ), batch times over contiguous float32 matrices."""
        if out.size == 0:
            return
        if inner == 0:
            out.fill(0)
            return
        cp = self.cp
        cublas = cp.cuda.cublas
        transa, transb, m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c = gemm_plan(
            rows, inner, cols, right_transposed)
        f32 = cp.cuda.runtime.CUDA_R_32F
        compute = cublas.CUBLAS_COMPUTE_32F_FAST_TF32 if self.tf32 else cublas.CUBLAS_COMPUTE_32F
        # alpha and beta are read from host memory during the call.
        alpha = np.array(alpha, dtype=np.float32)
        beta = np.zeros((), dtype=np.float32)
        handle = cp.cuda.get_cublas_handle()
        if batch == 1:
            cublas.gemmEx(handle, transa, transb, m, n, k, alpha.ctypes.data,
                          right.data.ptr, f32, lda, left.data.ptr, f32, ldb,
                          beta.ctypes.data, out.data.ptr, f32, ldc,
                          compute, cublas.CUBLAS_GEMM_DEFAULT)
        else:
            cublas.gemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha.ctypes.data,
                                        right.data.ptr, f32, lda, stride_a, left.data.ptr, f32, ldb, stride_b,
                                        beta.ctypes.data, out.data.ptr, f32, ldc, stride_c,
                                        batch, compute, cublas.CUBLAS_GEMM_DEFAULT)
