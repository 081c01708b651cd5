"""The CuPy backend (kernels/gpu.py and kernels/*.cu) against the NumPy reference.

Every op test runs twice:
- "emulated": on any machine with g++. kernels/gpu.py runs unchanged on
  tests/gpu_emulation.py's stand-in for cupy: the real CUDA C kernels are
  compiled for the CPU and cuBLAS is computed from its column-major
  arguments, so launch shapes, argument types, pointer arithmetic and kernel
  logic are all exercised;
- "gpu": the real thing, skipped with the reason when cupy or a CUDA device is missing.
The whole model on the cupy backend is checked by the golden tests
(tests/test_model_golden.py), which skip "cupy" the same way.
"""

import math
import re
import sys
import types

import numpy as np
import pytest

import gpu_emulation as emu
from minidistil.kernels import Ops, get_ops, gpu, reference

REF = reference.NumpyOps()
SOURCES = {name: (gpu.KERNEL_DIR / name).read_text(encoding="utf-8") for name in gpu.KERNEL_SOURCES}


# -- backends under test --------------------------------------------------------------


@pytest.fixture(scope="session")
def fake_cupy(request, tmp_path_factory):
    if emu.COMPILER is None:
        pytest.skip("g++ not found: the CUDA kernels cannot be emulated on this machine")
    cache = getattr(request.config, "cache", None)  # keeps the compiled kernels between runs
    return emu.FakeCupy(str(cache.mkdir("cuda-emulator") if cache else tmp_path_factory.mktemp("cuda-emulator")))


@pytest.fixture(scope="session")
def real_gpu_ops():
    """CupyOps on the real device, or the reason there is none."""
    try:
        return gpu.CupyOps(tf32=False)
    except gpu.BackendUnavailableError as exc:
        return str(exc)


@pytest.fixture(params=["emulated", "gpu"])
def ops(request, monkeypatch):
    if request.param == "gpu":
        real = request.getfixturevalue("real_gpu_ops")
        if isinstance(real, str):
            pytest.skip(f"no GPU here: {real}")
        real.tf32 = False
        return real
    fake = request.getfixturevalue("fake_cupy")
    monkeypatch.setattr(gpu, "_import_cupy", lambda: fake)
    monkeypatch.delenv(gpu.TF32_ENV, raising=False)
    return gpu.CupyOps()


def host(ops, y):
    assert isinstance(y, ops.cp.ndarray), f"expected a device array, got {type(y)}"
    return ops.to_numpy(y)


def assert_f32_close(got, want, rtol=2e-5, atol=2e-6):
    """Equal up to float32 rounding: relative, with an absolute floor scaled to the largest value."""
    assert got.shape == want.shape and got.dtype == np.float32
    floor = atol * max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=floor)


def rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# -- each op against the reference ---------------------------------------------------

LINEAR_SHAPES = [((1, 1, 8), 5), ((2, 7, 24), 40), ((3, 33), 17), ((1, 1, 1), 1), ((4, 65), 130)]


@pytest.mark.parametrize("activation", [None, "gelu", "gelu_new", "relu", "silu", "swish"])
@pytest.mark.parametrize("shape,out_features", LINEAR_SHAPES)
def test_linear_matches_reference(ops, shape, out_features, activation):
    rng = np.random.default_rng(sum(shape) * 31 + out_features)
    x, w, b = rand(rng, *shape, scale=2.0), rand(rng, out_features, shape[-1]), rand(rng, out_features)
    assert_f32_close(host(ops, ops.linear(x, w, b, activation)), REF.linear(x, w, b, activation))
    assert_f32_close(host(ops, ops.linear(x, w, None, activation)), REF.linear(x, w, None, activation))


@pytest.mark.parametrize("name", sorted(reference.ACTIVATIONS))
def test_activation_matches_reference_and_leaves_its_input(ops, name, monkeypatch):
    rng = np.random.default_rng(7)
    x = rand(rng, 3, 1000, scale=4.0)
    x[0, :8] = [0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 88.0, -88.0]
    monkeypatch.setattr(gpu, "ELEMENTWISE_MAX_BLOCKS", 2)  # fewer threads than elements: the grid-stride loop
    device_x = ops.asarray(x)
    assert_f32_close(host(ops, ops.activation(device_x, name)), REF.activation(x, name))
    np.testing.assert_array_equal(host(ops, device_x), x)


ATTENTION_SHAPES = [  # batch, heads, queries, keys, head_dim
    (1, 1, 1, 1, 4),
    (2, 3, 5, 5, 8),
    (2, 2, 17, 33, 16),  # keys over one warp
    (1, 12, 4, 70, 64),  # official head_dim, keys over two warps
    (3, 1, 1, 9, 3),
]


@pytest.mark.parametrize("mask_dtype", [np.int64, np.bool_, np.float32])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES)
def test_attention_matches_reference(ops, shape, mask_dtype):
    batch, heads, queries, keys, head_dim = shape
    rng = np.random.default_rng(sum(shape))
    q, k, v = rand(rng, batch, heads, queries, head_dim, scale=3.0), rand(rng, batch, heads, keys, head_dim), \
        rand(rng, batch, heads, keys, head_dim)
    mask = np.ones((batch, keys), dtype=mask_dtype)
    mask[0, keys // 2 + 1:] = 0  # padding
    if batch > 1:
        mask[-1] = 0  # a fully masked row: uniform, never NaN
    for scale in (1.0 / math.sqrt(head_dim), 0.3):
        want = REF.attention_probs(q, k, mask, scale)
        probs = ops.attention_probs(q, k, mask, scale)
        assert_f32_close(host(ops, probs), want, rtol=1e-4, atol=1e-6)
        assert_f32_close(host(ops, ops.attention_context(probs, v)), REF.attention_context(want, v), rtol=1e-4)
    if batch > 1:
        np.testing.assert_allclose(host(ops, probs)[-1], 1.0 / keys, rtol=1e-6)


def test_attention_with_huge_scores_stays_finite(ops):
    rng = np.random.default_rng(3)
    q, k = rand(rng, 1, 2, 6, 8, scale=1e3), rand(rng, 1, 2, 40, 8, scale=1e3)
    mask = np.ones((1, 40), dtype=np.int64)
    mask[0, 35:] = 0
    got = host(ops, ops.attention_probs(q, k, mask, 0.125))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, REF.attention_probs(q, k, mask, 0.125), atol=1e-5)


@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("shape,eps,offset", [((1, 1), 1e-12, 0.0), ((2, 5, 7), 1e-12, 0.0), ((3, 33), 1e-5, 0.0),
                                              ((4, 96), 1e-12, 100.0), ((2, 768), 1e-12, 0.0)])
def test_layernorm_matches_reference(ops, shape, eps, offset, with_residual):
    rng = np.random.default_rng(sum(shape))
    cols = shape[-1]
    x, gamma, beta = rand(rng, *shape) + np.float32(offset), rand(rng, cols), rand(rng, cols)
    residual = rand(rng, *shape) if with_residual else None
    want = REF.layernorm(x, gamma, beta, eps, residual)
    assert_f32_close(host(ops, ops.layernorm(x, gamma, beta, eps, residual)), want, rtol=1e-4, atol=1e-5)


# -- the backend's interface -------------------------------------------------------


def test_is_an_ops_that_keeps_outputs_on_the_device(ops):
    """The class's members and signatures are checked in test_kernels_protocol.py; this is the live object."""
    assert isinstance(ops, Ops) and ops.name == "cupy" and ops.keeps_outputs_on_device is True


def test_prepare_uploads_float32_contiguous_weights_once(ops):
    weights = {"a.weight": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)), "a.bias": [1, 2, 3]}
    prepared = ops.prepare(weights)
    assert list(prepared) == list(weights)
    for name, value in prepared.items():
        assert isinstance(value, ops.cp.ndarray) and value.dtype == np.float32 and value.flags.c_contiguous
        np.testing.assert_array_equal(ops.to_numpy(value), np.asarray(weights[name], dtype=np.float32))
    assert ops.prepare(prepared)["a.weight"] is prepared["a.weight"]  # already on the device: no new copy


def test_numpy_and_device_inputs_give_the_same_result(ops):
    rng = np.random.default_rng(11)
    x, w, b = rand(rng, 2, 3, 8), rand(rng, 6, 8), rand(rng, 6)
    from_host = host(ops, ops.linear(x, w, b, "gelu"))
    from_device = host(ops, ops.linear(ops.asarray(x), *ops.prepare({"w": w, "b": b}).values(), "gelu"))
    np.testing.assert_allclose(from_host, from_device, rtol=1e-6, atol=1e-7)
    assert isinstance(ops.to_numpy(ops.asarray(x)), np.ndarray)


def test_bad_arguments_raise_clear_errors(ops):
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="unknown activation 'tanh'"):
        ops.linear(x, np.zeros((3, 4), np.float32), activation="tanh")
    with pytest.raises(ValueError, match="unknown activation None"):
        ops.activation(x, None)
    with pytest.raises(ValueError, match="weights are \\[out, in\\]"):
        ops.linear(x, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="key_mask"):
        ops.attention_probs(np.zeros((1, 1, 2, 4), np.float32), np.zeros((1, 1, 3, 4), np.float32),
                            np.ones((1, 2)), 0.5)
    with pytest.raises(ValueError, match="residual"):
        ops.layernorm(x, np.ones(4, np.float32), np.zeros(4, np.float32), 1e-12, residual=np.zeros((3, 4)))


def test_tf32_is_off_unless_asked_for(fake_cupy, monkeypatch):
    monkeypatch.setattr(gpu, "_import_cupy", lambda: fake_cupy)
    cublas = fake_cupy.cuda.cublas
    x, w = np.ones((2, 4), np.float32), np.ones((3, 4), np.float32)
    monkeypatch.setenv("CUPY_TF32", "1")  # CuPy's own switch: not ours to follow
    monkeypatch.delenv(gpu.TF32_ENV, raising=False)
    for make, expected in [(lambda: gpu.CupyOps(), cublas.CUBLAS_COMPUTE_32F),
                           (lambda: gpu.CupyOps(tf32=True), cublas.CUBLAS_COMPUTE_32F_FAST_TF32)]:
        cublas.compute_types.clear()
        make().linear(x, w)
        assert cublas.compute_types == [expected]
    monkeypatch.setenv(gpu.TF32_ENV, "1")
    ops = gpu.CupyOps()
    cublas.compute_types.clear()
    ops.attention_probs(np.ones((1, 1, 2, 4), np.float32), np.ones((1, 1, 2, 4), np.float32), np.ones((1, 2)), 0.5)
    assert cublas.compute_types == [cublas.CUBLAS_COMPUTE_32F_FAST_TF32]
    assert gpu.CupyOps(tf32=False).tf32 is False


def test_tf32_changes_products_only_when_asked_for(real_gpu_ops):
    if isinstance(real_gpu_ops, str):
        pytest.skip(f"no GPU here: {real_gpu_ops}")
    rng = np.random.default_rng(5)
    x, w = rand(rng, 256, 4096), rand(rng, 512, 4096)
    exact = x.astype(np.float64) @ w.astype(np.float64).T
    errors = {}
    for tf32 in (False, True):
        real_gpu_ops.tf32 = tf32
        errors[tf32] = np.abs(real_gpu_ops.to_numpy(real_gpu_ops.linear(x, w)) - exact).max() / np.abs(exact).max()
    real_gpu_ops.tf32 = False
    assert errors[False] < 1e-5, errors
    assert errors[True] > 10 * errors[False], errors


# -- CPU-side checks of the GPU code: no compiler, no device --------------------------------


def test_every_launched_kernel_is_defined_in_its_source():
    for filename, names in gpu.KERNEL_SOURCES.items():
        defined = emu.kernel_signatures(SOURCES[filename])
        assert set(defined) == set(names), f"{filename} defines {sorted(defined)}, gpu.py launches {sorted(names)}"
    assert sorted(p.name for p in gpu.KERNEL_DIR.glob("*.cu")) == sorted(gpu.KERNEL_SOURCES)


def test_activation_codes_match_bias_act_cu():
    """The one table of activation codes (reference.py) is the one bias_act.cu (and cpu.py) branch on."""
    defines = dict(re.findall(r"#define ACT_(\w+) (\d+)", SOURCES["bias_act.cu"]))
    assert {n.lower(): int(c) for n, c in defines.items()} == {
        "none": reference.ACT_NONE, **{k: v for k, v in reference.ACT_CODES.items() if k != "swish"}}
    assert reference.ACT_CODES["swish"] == reference.ACT_CODES["silu"]
    assert set(reference.ACT_CODES) == set(reference.ACTIVATIONS)


def column_major_gemm(transa, transb, m, n, k, alpha, a, lda, sa, b, ldb, sb, c, ldc, sc, batch):
    """cuBLAS's gemm, by its definition, on flat buffers: C = alpha op(A) op(B), column-major."""
    for i in range(batch):
        op_a = np.array([[a[i * sa + (r + col * lda if transa == 0 else col + r * lda)] for col in range(k)]
                         for r in range(m)])
        op_b = np.array([[b[i * sb + (r + col * ldb if transb == 0 else col + r * ldb)] for col in range(n)]
                         for r in range(k)])
        product = alpha * op_a @ op_b
        for r in range(m):
            for col in range(n):
                c[i * sc + r + col * ldc] = product[r, col]


@pytest.mark.parametrize("rows,inner,cols,right_transposed,batch",
                         [(1, 1, 1, True, 1), (3, 5, 2, True, 1), (4, 3, 6, False, 1), (2, 7, 3, True, 4),
                          (5, 2, 4, False, 3)])
def test_gemm_plan_computes_the_row_major_product(rows, inner, cols, right_transposed, batch):
    rng = np.random.default_rng(rows * 100 + inner * 10 + cols)
    left = rng.standard_normal((batch, rows, inner))
    right = rng.standard_normal((batch, cols, inner) if right_transposed else (batch, inner, cols))
    out = np.full(batch * rows * cols, np.nan)
    transa, transb, m, n, k, lda, ldb, ldc, sa, sb, sc = gpu.gemm_plan(rows, inner, cols, right_transposed)
    column_major_gemm(transa, transb, m, n, k, 0.5, right.ravel(), lda, sa, left.ravel(), ldb, sb, out, ldc, sc, batch)
    want = 0.5 * left @ (right.transpose(0, 2, 1) if right_transposed else right)
    np.testing.assert_allclose(out.reshape(batch, rows, cols), want, rtol=1e-12)


@pytest.mark.parametrize("count", [1, 31, 32, 33, 255, 256, 257, 10**6, 2**31 - 1])
def test_launch_shapes_cover_the_work_within_cuda_limits(count):
    (blocks,), (threads,) = gpu.rows_launch(count)
    warps = threads // 32
    assert threads % 32 == 0 and threads <= 1024 and blocks < 2**31
    assert blocks * warps >= count > (blocks - 1) * warps  # every row has a warp, no block is idle
    (blocks,), (threads,) = gpu.elementwise_launch(count)
    assert threads <= 1024 and 1 <= blocks <= gpu.ELEMENTWISE_MAX_BLOCKS
    assert blocks * threads >= count or blocks == gpu.ELEMENTWISE_MAX_BLOCKS  # the rest: grid-stride loop


# -- choosing the backend --------------------------------------------------------------


def test_cupy_backend_without_cupy_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(gpu.BackendUnavailableError, match=r"needs the cupy package \(pip install minidistil\[gpu\]\)"):
        get_ops("cupy")
    with pytest.raises(ImportError):
        get_ops("cupy")
    with pytest.raises(RuntimeError):
        get_ops("cupy")


@pytest.mark.parametrize("count", [RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected"), 0])
def test_cupy_backend_without_a_device_says_so(monkeypatch, count):
    def device_count():
        if isinstance(count, Exception):
            raise count
        return count

    no_device = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=device_count)))
    monkeypatch.setitem(sys.modules, "cupy", no_device)
    with pytest.raises(gpu.BackendUnavailableError, match="no (usable )?CUDA device found"):
        get_ops("cupy")


def test_auto_never_picks_the_gpu(monkeypatch, fake_cupy):
    monkeypatch.setattr(gpu, "_import_cupy", lambda: fake_cupy)  # a GPU "is there"
    monkeypatch.delenv("MINIDISTIL_BACKEND", raising=False)
    assert get_ops("auto").name != "cupy"
    assert get_ops("cupy").name == "cupy"


# -- the whole model ------------------------------------------------------------------


def test_whole_model_on_the_emulated_backend_equals_numpy(fake_cupy, monkeypatch):
    """model.py + CupyOps together (device arrays between ops, head_mask, every output), small config."""
    from minidistil import DistilBertConfig, DistilBertModel

    monkeypatch.setattr(gpu, "_import_cupy", lambda: fake_cupy)
    config = DistilBertConfig(vocab_size=60, max_position_embeddings=16, n_layers=2, n_heads=3, dim=24,
                              hidden_dim=40, activation="gelu")
    numpy_model = DistilBertModel(config, backend="numpy", seed=3)
    cupy_model = DistilBertModel(config, numpy_model.params, backend="cupy")
    assert cupy_model.ops.name == "cupy"
    ids = np.array([[5, 9, 13, 2, 7, 0, 0], [3, 3, 8, 1, 44, 59, 12]])
    mask = np.array([[1, 1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0]])  # padding, and a fully masked row
    kwargs = dict(input_ids=ids, attention_mask=mask, head_mask=np.array([1.0, 0.0, 0.5]),
                  output_hidden_states=True, output_attentions=True)
    want, got = numpy_model(**kwargs), cupy_model(**kwargs)
    assert_f32_close(got.last_hidden_state, want.last_hidden_state, rtol=1e-5, atol=1e-5)
    for name in ("hidden_states", "attentions"):
        assert len(got[name]) == len(want[name])
        for g, w in zip(got[name], want[name]):
            assert_f32_close(g, w, rtol=1e-5, atol=1e-5)
