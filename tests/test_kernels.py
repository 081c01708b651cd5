"""The kernel package: backend choice, thread control, the polynomial exp and GELU, and fixed cases of every op.

Hypothesis-generated comparisons of every Numba kernel with the NumPy
reference are in test_kernels_properties.py.
"""

import json
import math
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import minidistil.kernels as kernels
from minidistil.kernels import blas
from minidistil.kernels.reference import NumpyOps

numba = pytest.importorskip("numba")
from minidistil.kernels import cpu, fastmath, gemm, simd  # noqa: E402
from minidistil.kernels.cpu import NumbaOps  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOAT32_NORMAL_MIN = float(np.finfo(np.float32).tiny)


@numba.njit(error_model="numpy")
def _exp32(x, out):
    for i in range(x.size):
        out[i] = np.float32(fastmath.exp64(np.float64(x[i])))


@numba.njit(error_model="numpy", fastmath={"contract"})
def _exp32_float32(x, out):
    for i in range(x.size):
        out[i] = fastmath.exp32(x[i])


@numba.njit(error_model="numpy", fastmath={"contract"})
def _gelu32(x, out):
    for i in range(x.size):
        out[i] = fastmath.gelu32(x[i])


_GELU_IN_PLACE = simd.gelu_range(gemm.LANES)


@numba.njit(error_model="numpy")
def _gelu_in_place(x, offset, n):
    _GELU_IN_PLACE(x, offset, n)


def _gelus(x):
    """GELU of x both ways: the scalar intrinsic in a loop (LLVM vectorizes it) and the 16-lane range kernel."""
    scalar, vector = np.empty_like(x), x.copy()
    _gelu32(x, scalar)
    _gelu_in_place(vector, 0, x.size)
    return scalar, vector


def _relative_error(ours, exact):
    ok = exact != 0
    return float(np.max(np.abs(ours[ok].astype(np.float64) / exact[ok] - 1.0)))


# ---------------------------------------------------------------- fastmath


def test_exp_error_bound_on_a_dense_grid():
    # every float32 result in the normal range: from FLT_MIN (x ~ -87.34) to FLT_MAX (x ~ 88.72)
    lo, hi = math.log(FLOAT32_NORMAL_MIN), math.log(float(np.finfo(np.float32).max))
    x = np.linspace(lo, hi, 2_000_003).astype(np.float32)
    x = np.concatenate([x, np.float32([0.0, -0.0, 1e-30, -1e-30, 1e-7, -1e-7, 0.34657359, -0.34657359])])
    exact = np.exp(x.astype(np.float64))
    normal = (exact >= FLOAT32_NORMAL_MIN) & (exact <= float(np.finfo(np.float32).max))
    x, exact = x[normal], exact[normal]
    out = np.empty_like(x)
    _exp32(x, out)
    err = _relative_error(out, exact)
    assert err < fastmath.MAX_RELATIVE_ERROR, f"exp: max relative error {err:.3e}"
    assert np.all(np.isfinite(out))


def test_float32_exp_error_bound_on_a_dense_grid():
    lo, hi = math.log(FLOAT32_NORMAL_MIN), math.log(float(np.finfo(np.float32).max))
    x = np.concatenate([np.linspace(lo, hi, 2_000_003).astype(np.float32), np.float32([0.0, -0.0, 1e-30, -1e-7])])
    exact = np.exp(x.astype(np.float64))
    normal = (exact >= FLOAT32_NORMAL_MIN) & (exact <= float(np.finfo(np.float32).max))
    out = np.empty_like(x)
    _exp32_float32(x, out)
    err = _relative_error(out[normal], exact[normal])
    assert err < fastmath.EXP32_MAX_RELATIVE_ERROR, f"exp32: max relative error {err:.3e}"


def test_float32_exp_edges():
    x = np.float32([-np.inf, np.finfo(np.float32).min, -104.0, -87.4, 88.8, 1e30, np.inf, np.nan])
    out = np.empty_like(x)
    _exp32_float32(x, out)
    assert out[:4].tolist() == [0.0] * 4  # a masked score (the most negative float32) gives exactly 0
    assert np.all(np.isinf(out[4:7])) and np.isnan(out[7])


def test_exp_edges():
    x = np.float32([-np.inf, -1e30, -800.0, -104.0, -90.0, 89.0, 100.0, 1e30, np.inf, np.nan])
    out = np.empty_like(x)
    _exp32(x, out)
    tiny = np.exp(x[:5].astype(np.float64)).astype(np.float32)  # 0 or a subnormal in float32
    np.testing.assert_allclose(out[:5], tiny, rtol=0, atol=2 * 2.0**-149)
    assert np.all(np.isinf(out[5:9])) and np.all(out[5:9] > 0)
    assert np.isnan(out[9])


def test_gelu_error_bound_on_a_dense_grid():
    """|ours - exact GELU| <= GELU32_MAX_ABS_ERROR * max(1, |x|), both ways, on every piece of its erf and
    both sides of each seam (|x| / sqrt 2 = 1 and 3.92); the reference's own GELU is within 1.1e-7 there."""
    seams = np.float32([1.0, 3.92]) * np.float32(math.sqrt(2))
    x = np.concatenate([
        np.linspace(-12.0, 12.0, 2_000_001),
        np.geomspace(1e-30, 1.0, 20_001),
        -np.geomspace(1e-30, 1.0, 20_001),
        *((np.float32(seam * sign).view(np.int32) + np.arange(-32, 33, dtype=np.int32)).view(np.float32)
          for seam in seams for sign in (1, -1)),  # the 65 floats around each seam
        [0.0, 20.0, 100.0, 1e30, -20.0, -100.0, -1e30],
    ]).astype(np.float32)
    exact = x.astype(np.float64) * 0.5 * (1.0 + np.array([math.erf(v / math.sqrt(2)) for v in x.astype(np.float64)]))
    for ours in _gelus(x):
        err = np.abs(ours - exact) / np.maximum(1.0, np.abs(x.astype(np.float64)))
        assert err.max() <= fastmath.GELU32_MAX_ABS_ERROR, f"gelu: {err.max():.3e} at x = {x[err.argmax()]}"
    assert np.all(_gelus(x)[0][x >= 8] == x[x >= 8])  # erf = 1 exactly: GELU(x) = x for large x


def test_gelu_edges_and_both_ways_the_same_bits():
    scalar, vector = _gelus(np.float32([np.inf, -np.inf, np.nan, 0.0, -0.0]))
    assert scalar[0] == np.inf and np.isnan(scalar[1]) and np.isnan(scalar[2])  # -inf * 0, as the reference
    assert scalar[3] == 0 and scalar[4] == 0
    rng = np.random.default_rng(5)
    for n in (1, 15, 16, 17, 100):  # whole vectors and the scalar tail
        x = (rng.standard_normal(n) * 4).astype(np.float32)
        scalar, vector = _gelus(x)
        assert np.array_equal(scalar, vector), n
    x = rng.standard_normal(40).astype(np.float32)
    part = x.copy()
    _gelu_in_place(part, 3, 21)  # only [3, 24)
    assert np.array_equal(part[3:24], _gelus(x[3:24])[0]) and np.array_equal(part[:3], x[:3])
    assert np.array_equal(part[24:], x[24:])


def test_maxnum_vectorizable_max_ignores_nan():
    @numba.njit
    def row_max(row):
        m = row[0]
        for t in range(1, row.shape[0]):
            m = fastmath.maxnum(m, row[t])
        return m

    assert row_max(np.float32([1.0, -3.0, 7.5, 2.0])) == 7.5
    assert row_max(np.float32([1.0, np.nan, 3.0])) == 3.0
    assert row_max(np.float32([np.finfo(np.float32).min] * 3)) == np.finfo(np.float32).min


def test_fitted_coefficients_are_the_ones_in_use():
    """fastmath.py holds the output of tools/goldens/fit_fastmath.py; refitting gives the same numbers."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "goldens"))
    try:
        import fit_fastmath
    finally:
        sys.path.pop(0)
    np.testing.assert_allclose(fit_fastmath.exp_coefficients(), fastmath.EXP_COEFFS, rtol=1e-9, atol=1e-15)
    small, tail = fit_fastmath.erf32_coefficients()
    np.testing.assert_allclose(small, fastmath.ERF32_SMALL, rtol=1e-6, atol=0)
    np.testing.assert_allclose(tail, fastmath.ERF32_TAIL, rtol=1e-6, atol=0)
    assert (fit_fastmath.ERF32_SPLIT, fit_fastmath.ERF32_CENTER, fit_fastmath.ERF32_ONE_FROM) == (
        fastmath.ERF32_SPLIT, fastmath.ERF32_CENTER, fastmath.ERF32_ONE_FROM)


# ---------------------------------------------------------------- backend choice and threads


def test_auto_picks_numba_when_installed(monkeypatch):
    monkeypatch.delenv(kernels.BACKEND_ENV, raising=False)
    monkeypatch.delenv(kernels.THREADS_ENV, raising=False)
    assert kernels.get_ops().name == "numba"
    assert kernels.get_ops("auto").name == "numba"
    assert kernels.get_ops("NumPy").name == "numpy"


def test_backend_from_environment(monkeypatch):
    monkeypatch.setenv(kernels.BACKEND_ENV, "numpy")
    assert kernels.get_ops().name == "numpy"
    assert kernels.get_ops("numba").name == "numba"  # an explicit argument wins


def test_auto_falls_back_to_numpy_without_numba():
    code = (
        "import sys; sys.modules['numba'] = None\n"  # makes `import numba` raise ImportError
        "from minidistil import kernels; print(kernels.get_ops('auto').name)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
    assert "numba is not installed" in out.stderr


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown backend"):
        kernels.get_ops("fortran")


def test_threads_argument_and_environment(monkeypatch):
    monkeypatch.setattr(kernels, "available_cores", lambda: 4)  # above it, counts are capped (test_threads_cap.py)
    monkeypatch.delenv(kernels.THREADS_ENV, raising=False)
    assert kernels.resolve_threads(None) is None
    assert kernels.resolve_threads(3) == 3
    monkeypatch.setenv(kernels.THREADS_ENV, "2")
    assert kernels.resolve_threads(None) == 2
    assert kernels.resolve_threads(1) == 1  # the argument wins
    for bad in (0, -1, 1.5, "two", True):
        with pytest.raises(ValueError, match="positive integer"):
            kernels.resolve_threads(bad)
    monkeypatch.setenv(kernels.THREADS_ENV, "many")
    with pytest.raises(ValueError, match=kernels.THREADS_ENV):
        kernels.get_ops("numpy")


def test_threads_reach_numba_and_blas():
    before = blas.get_threads()
    try:
        ops = NumbaOps(threads=1)
        ops.layernorm(np.ones((2, 3), np.float32), np.ones(3, np.float32), np.zeros(3, np.float32), 1e-12)
        assert numba.get_num_threads() == 1
        if before is not None:  # NumPy's BLAS is OpenBLAS: its thread count is set too
            assert blas.get_threads() == 1
            NumpyOps(threads=2)
            assert blas.get_threads() == min(2, os.cpu_count())
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        if before is not None:
            blas.set_threads(before)


def test_blas_threads_follow_the_latest_backend_from_any_thread():
    """BLAS threads are process-wide: the backend built last sets them, whichever thread builds it
    (threadpoolctl >= 3.8 on its own ignores all but the first thread that set a pthreads OpenBLAS)."""
    before = blas.get_threads()
    if before is None:
        pytest.skip("threadpoolctl finds no BLAS in this process")
    try:
        blas.set_threads(1)
        builder = threading.Thread(target=NumpyOps, kwargs={"threads": 2})
        builder.start()
        builder.join()
        assert blas.get_threads() == min(2, os.cpu_count())
        blas.set_threads(1)
        assert blas.get_threads() == 1
    finally:
        blas.set_threads(before)


def test_openmp_threads_spin_briefly_then_sleep():
    """Importing the Numba backend asks OpenMP to sleep after a short spin (see kernels/cpu.py), unless the user chose."""
    code = (
        "import os, numpy as np\n"
        "from minidistil.kernels.cpu import NumbaOps\n"
        "NumbaOps().activation(np.ones((4, 4), np.float32), 'relu')\n"
        "import numba; print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'], numba.threading_layer())"
    )
    names = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NUMBA_THREADING_LAYER")
    env = {k: v for k, v in os.environ.items() if k not in names}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    policy, rounds, layer = out.stdout.split()
    assert (policy, rounds) == ("PASSIVE", str(cpu.OMP_SPIN_ROUNDS))
    assert layer in ("omp", "tbb", "workqueue")
    env.update(OMP_WAIT_POLICY="ACTIVE", GOMP_SPINCOUNT="0")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[:2] == ["ACTIVE", "0"]


def test_openblas_threads_sleep_instead_of_spinning():
    """Importing the Numba backend shortens OpenBLAS's idle spin (see kernels/blas.py), unless the user chose."""
    code = (
        "import ctypes, numpy as np\n"
        "from minidistil.kernels import blas, cpu\n"
        "libs = [lib.dynlib for lib in blas._blas_libraries() if lib.internal_api == 'openblas']\n"
        "if not libs: print('no-openblas'); raise SystemExit\n"
        "libs[0].openblas_thread_timeout.restype = ctypes.c_uint\n"
        "a = np.arange(12.0, dtype=np.float32).reshape(3, 4)\n"
        "assert np.array_equal(a @ a.T, a.astype(np.float64) @ a.T.astype(np.float64))  # BLAS still works\n"
        "print(libs[0].openblas_thread_timeout())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    if out.stdout.strip() == "no-openblas":
        pytest.skip("NumPy's BLAS is not OpenBLAS here")
    assert out.stdout.strip() == "4"
    env["OPENBLAS_THREAD_TIMEOUT"] = "20"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "20"


# ---------------------------------------------------------------- parallel and serial variants

THREAD_IDS_KERNEL = """
import numba
from numba import prange
from minidistil.kernels.jit import parallel_and_serial


@parallel_and_serial(set())
def thread_ids(out):
    for i in prange(out.shape[0]):
        out[i] = numba.get_thread_id()
"""

THREAD_IDS_RUN = """
import numpy as np
import thread_ids_kernel as m
for variant in ("parallel", "serial"):
    out = np.zeros(64, np.int64)
    getattr(m.thread_ids, variant)(out)
    print(variant, len(set(out.tolist())), sum(getattr(m.thread_ids, variant).stats.cache_hits.values()))
"""


def test_serial_variant_stays_serial_through_numbas_cache(tmp_path):
    """Both variants of one kernel are cached, each as itself: Numba keys its cache by function
    name, not by parallel=, so two variants under one name would load each other's code."""
    (tmp_path / "thread_ids_kernel.py").write_text(THREAD_IDS_KERNEL)
    # workqueue: built into every Numba, and it always hands each of the 2 threads part of the loop
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_NUM_THREADS": "2",
           "NUMBA_THREADING_LAYER": "workqueue", "PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT])}
    runs = []
    for _ in range(2):  # the first compiles and saves, the second loads from the cache
        out = subprocess.run([sys.executable, "-c", THREAD_IDS_RUN], env=env, cwd=ROOT, capture_output=True,
                             text=True, check=True)
        runs.append({variant: (int(threads), int(hits)) for variant, threads, hits in map(str.split, out.stdout.splitlines())})
    assert runs[0] == {"parallel": (2, 0), "serial": (1, 0)}
    assert runs[1] == {"parallel": (2, 1), "serial": (1, 1)}


# ---------------------------------------------------------------- fixed cases of each op

REF, FAST = NumpyOps(), NumbaOps()


def _qkv(rng, batch, heads, seq, head_dim, keys=None):
    """q, k, v as the model makes them: head-split views of (B, S, H*Dh) linear outputs."""
    keys = seq if keys is None else keys

    def split(s):
        return rng.standard_normal((batch, s, heads * head_dim), dtype=np.float32).reshape(
            batch, s, heads, head_dim).transpose(0, 2, 1, 3)

    return split(seq), split(keys), split(keys)


def test_fully_masked_rows_are_uniform_as_in_the_reference():
    rng = np.random.default_rng(0)
    q, k, v = _qkv(rng, 2, 3, 5, 8)
    mask = np.array([[0, 0, 0, 0, 0], [1, 1, 0, 1, 0]], dtype=np.int32)
    probs = FAST.attention_probs(q, k, mask, 0.35)
    np.testing.assert_allclose(probs[0], 0.2, rtol=1e-6)
    np.testing.assert_allclose(probs, REF.attention_probs(q, k, mask, 0.35), rtol=1e-5, atol=1e-7)
    assert np.all(probs[1][..., [2, 4]] == 0)
    ctx = FAST.attention(q, k, v, mask, 0.35)
    np.testing.assert_allclose(ctx[0], np.broadcast_to(v[0].mean(axis=1, keepdims=True), ctx[0].shape), atol=1e-6)


def test_fused_attention_equals_probs_then_context():
    rng = np.random.default_rng(1)
    q, k, v = _qkv(rng, 2, 4, 9, 16)
    mask = np.ones((2, 9), np.int32)
    mask[1, 6:] = 0
    probs = FAST.attention_probs(q, k, mask, 0.25)
    np.testing.assert_array_equal(FAST.attention(q, k, v, mask, 0.25), FAST.attention_context(probs, v))
    np.testing.assert_array_equal(REF.attention(q, k, v, mask, 0.25), REF.attention_context(REF.attention_probs(q, k, mask, 0.25), v))


def test_a_texts_attention_does_not_depend_on_the_padding_around_it():
    """Keys padded on (masked, with any values) leave a sequence's attention the same bits: its softmax sums in an
    order that does not depend on the row's length (simd.row_sum), masked keys add exact zeros, and the context
    product adds 0 * v. What the batcher's promise needs: a text alone and in a batch of longer ones agree."""
    rng = np.random.default_rng(7)
    for keys, padded in ((5, 6), (9, 40), (16, 17), (33, 128), (100, 131)):
        q, k, v = _qkv(rng, 1, 3, keys, 32)
        alone = FAST.attention(q, k, v, np.ones((1, keys), np.int32), 0.2)
        qp, kp, vp = _qkv(rng, 2, 3, padded, 32)
        for big, small in ((qp, q), (kp, k), (vp, v)):
            big[0, :, :keys] = small[0]
        mask = np.ones((2, padded), np.int32)
        mask[0, keys:] = 0
        together = FAST.attention(qp, kp, vp, mask, 0.2)
        assert np.array_equal(together[0, :, :keys], alone[0]), (keys, padded)
        probs = FAST.attention_probs(qp, kp, mask, 0.2)
        assert np.array_equal(probs[0, :, :keys, :keys], FAST.attention_probs(q, k, np.ones((1, keys)), 0.2)[0])


_ROW_SUM = simd.row_sum()


@numba.njit(error_model="numpy")
def _row_sum(x, offset, n):
    return _ROW_SUM(x, offset, n)


def test_row_sum_has_one_order_whatever_the_length():
    """Element t into partial sum t % 16, partial sums added 8 + 8, then halves: the same float32 steps by hand;
    zeros after the run leave the bits as they are; only [offset, offset + n) is read."""
    rng = np.random.default_rng(8)
    for n in (1, 7, 8, 15, 16, 17, 31, 100, 256):
        x = (rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)).astype(np.float32)
        partial = np.zeros(simd.SUM_LANES, np.float32)
        for t in range(n):
            partial[t % simd.SUM_LANES] += x[t]
        value = partial[:simd.SUM_VECTOR] + partial[simd.SUM_VECTOR:]
        while value.size > 1:
            value = value[: value.size // 2] + value[value.size // 2:]
        assert _row_sum(x, 0, n) == value[0], n
        padded = np.concatenate([np.float32([np.nan] * 3), x, np.zeros(rng.integers(1, 40), np.float32), np.float32([np.nan])])
        assert _row_sum(padded, 3, padded.size - 4) == value[0], n  # zeros appended; the NaNs around are never read


def test_context_merges_heads_for_free():
    """The context comes back as a (B, H, S, Dh) view of a (B, S, H, Dh) buffer: merging heads is a reshape."""
    rng = np.random.default_rng(2)
    q, k, v = _qkv(rng, 2, 3, 4, 8)
    ctx = FAST.attention(q, k, v, np.ones((2, 4), np.int32), 0.3)
    merged = ctx.transpose(0, 2, 1, 3).reshape(2, 4, 24)
    assert np.shares_memory(merged, ctx)


def test_nan_propagates_like_the_reference():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6), dtype=np.float32)
    x[1, 2] = np.nan
    gamma, beta = np.ones(6, np.float32), np.zeros(6, np.float32)
    for name in ("gelu", "gelu_new", "relu", "silu"):
        np.testing.assert_array_equal(np.isnan(FAST.activation(x, name)), np.isnan(REF.activation(x, name)))
    np.testing.assert_array_equal(np.isnan(FAST.layernorm(x, gamma, beta, 1e-12)), np.isnan(REF.layernorm(x, gamma, beta, 1e-12)))
    q, k, v = _qkv(rng, 1, 2, 3, 4)
    q = q.copy()
    q[0, 0, 1, 2] = np.nan
    mask = np.ones((1, 3), np.int32)
    np.testing.assert_array_equal(np.isnan(FAST.attention_probs(q, k, mask, 1.0)), np.isnan(REF.attention_probs(q, k, mask, 1.0)))


def test_linear_keeps_leading_shape_and_accepts_no_bias():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5), dtype=np.float32)
    w = rng.standard_normal((7, 5), dtype=np.float32)
    y = FAST.linear(x, w)
    assert y.shape == (2, 3, 7) and y.dtype == np.float32
    np.testing.assert_allclose(y, REF.linear(x, w), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(FAST.linear(x[0, 0], w, None, "gelu"), REF.linear(x[0, 0], w, None, "gelu"), rtol=1e-5, atol=1e-6)


def test_unknown_activation_is_an_error():
    with pytest.raises(ValueError, match="unknown activation"):
        FAST.activation(np.ones(3, np.float32), "tanh")
    with pytest.raises(ValueError, match="unknown activation"):
        FAST.linear(np.ones((1, 3), np.float32), np.ones((2, 3), np.float32), None, "softplus")


def test_layernorm_broadcast_residual():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 6), dtype=np.float32)
    pos = rng.standard_normal((1, 4, 6), dtype=np.float32)
    gamma, beta = rng.standard_normal(6, dtype=np.float32), rng.standard_normal(6, dtype=np.float32)
    np.testing.assert_allclose(FAST.layernorm(x, gamma, beta, 1e-12, residual=pos),
                               REF.layernorm(x, gamma, beta, 1e-12, residual=pos), rtol=1e-5, atol=1e-5)


def test_workspace_reuses_only_what_nobody_holds():
    ws = cpu.Workspace()
    a = ws.empty((3, 4))
    assert ws.empty((3, 4)) is not a  # `a` is held here
    a_id = id(a)
    view = a[1:]
    del a
    assert id(ws.empty((3, 4))) != a_id  # a view still refers to it
    del view
    b = ws.empty((3, 4))
    assert id(b) == a_id  # now free: handed out again
    assert ws.empty((5,)).shape == (5,) and ws.empty((5,)).dtype == np.float32


def test_results_survive_later_calls():
    """A result the caller keeps is never reused as the output of a later call."""
    rng = np.random.default_rng(6)
    ops = NumbaOps()
    x = rng.standard_normal((4, 8), dtype=np.float32)
    gamma, beta = np.ones(8, np.float32), np.zeros(8, np.float32)
    first = ops.layernorm(x, gamma, beta, 1e-12)
    kept = first.copy()
    for _ in range(3):
        ops.layernorm(2 * x + 1, gamma, beta, 1e-12, residual=x)
    np.testing.assert_array_equal(first, kept)


# ---------------------------------------------------------------- one compile, on the first run

FIRST_RUN = r"""
import sys, tempfile, numpy as np, numba
from minidistil import DistilBertForMaskedLM
from minidistil.modeling.config import DistilBertConfig
from minidistil.kernels import activate, calibration, cpu, fastmath, gemm, jit

def compiled():
    count = 0
    for module in (activate, cpu, fastmath, gemm):
        for value in vars(module).values():
            for d in (value.parallel, value.serial) if isinstance(value, jit.Kernel) else (value,):
                count += len(getattr(d, "overloads", ()))
    return count

config = DistilBertConfig(vocab_size=50, dim=16, n_heads=2, hidden_dim=32, n_layers=2, max_position_embeddings=40)
with tempfile.TemporaryDirectory() as saved:  # loaded as users load a model: memory-mapped, read-only tensors
    DistilBertForMaskedLM(config, backend="numpy").save_pretrained(saved)
    model = DistilBertForMaskedLM.from_pretrained(saved, backend="numba", quantize=sys.argv[1] or None)
    before = compiled()
    ids = np.random.default_rng(0).integers(0, 50, (3, 33))
    for serial_work in (0, 1 << 62):  # every op through the pool, then every op in the calling thread
        model.ops.serial_work = serial_work
        for rows in (1, 3):
            model(input_ids=ids[:rows], attention_mask=np.ones((rows, 33)))
    print(before, compiled(), *(f"{kind or 'float32'}:{calibration.name(t)}" for kind, t in model.ops.tilings.items()))
"""


@pytest.mark.parametrize("quantize", ["", "int8"])
def test_the_first_model_compiles_every_kernel_of_the_forward_pass_once(tmp_path, quantize):
    """One notice, one compile: later forward passes, of any batch size and on either variant of each
    kernel, compile nothing more; a later process finds the stamp and says nothing."""
    env = {**{k: v for k, v in os.environ.items() if k != "MINIDISTIL_TILING"}, "NUMBA_CACHE_DIR": str(tmp_path),
           "NUMBA_NUM_THREADS": "2"}  # the model runs the stamp's tiling, not one a developer forced
    runs = [subprocess.run([sys.executable, "-c", FIRST_RUN, quantize], env=env, cwd=ROOT, capture_output=True,
                           text=True, check=True) for _ in range(2)]
    first, second = runs
    assert first.stderr.count("compiling kernels once") == 1, first.stderr
    before, after, *tilings = first.stdout.split()
    assert before == after, f"{int(after) - int(before)} kernel variants compiled after the warm-up"
    assert "compiling kernels once" not in second.stderr
    stamps = sorted(tmp_path.rglob("minidistil-*.stamp"))
    assert len(stamps) == (2 if quantize else 1)
    # each stamp records the tile calibration.py chose, the one the model's products then ran with
    records = {stamp.name.split("-")[1]: json.loads(stamp.read_text()) for stamp in stamps}
    assert sorted(tilings) == sorted(f"{kind}:{record['tiling']}" for kind, record in records.items())
    assert second.stdout.split()[2:] == tilings


def test_the_first_batch_command_compiles_in_the_background_and_runs_on_numpy_meanwhile(tmp_path):
    """`minidistil embed --input` with an empty Numba cache: one notice, an answer at once (numpy), a
    detached compile that leaves the stamp; the next command finds it, says nothing, and runs on numba
    with the same results."""
    from pipeline_models import build_model_dir

    model = build_model_dir("base", tmp_path / "model")
    lines = tmp_path / "in.txt"
    lines.write_text("A man is eating food.\nThe girl is carrying a baby.\n")
    cache = tmp_path / "cache"
    env = {k: v for k, v in os.environ.items() if k != "MINIDISTIL_BACKEND"}
    env.update(NUMBA_CACHE_DIR=str(cache), NUMBA_NUM_THREADS="2")
    command = [sys.executable, "-m", "minidistil.cli", "embed", "--model", str(model), "--input", str(lines), "--json"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("in the background") == 1, first.stderr
    deadline = time.monotonic() + 600  # the compile itself: ~30 s of CPU on the 2-core dev machine
    while not list(cache.rglob("minidistil-float32-*.stamp")):
        assert time.monotonic() < deadline, "the background compile left no stamp"
        time.sleep(0.5)
    ready = subprocess.run([sys.executable, "-c", "from minidistil.kernels import numba_kernels_ready as r; print(r())"],
                           env=env, capture_output=True, text=True, check=True)
    assert ready.stdout.strip() == "True"
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "compiling kernels" not in second.stderr, second.stderr
    def vectors(run):  # one JSON line per input line
        return np.array([json.loads(line)["output"] for line in run.stdout.splitlines()], dtype=np.float64)

    assert vectors(first).shape[0] == 2
    np.testing.assert_allclose(vectors(second), vectors(first), atol=1e-5)
