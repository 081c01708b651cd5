"""int8 kernels: kernels/reference.py defines them (the spec); the Numba kernels give exactly its integers.

Exact means equal, not close: the quantized activations (values and scales) and the int32 sums.
The sums are compared through the tile's float32 output with every scale 1 and no bias, which is
float32(sum) itself, exact while |sum| < 2**24 (here In <= 1024, so |sum| <= 1024 * 127 * 127).
The dequantized float32 outputs are then held to the rounding of the last multiply-add.
"""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from minidistil.kernels import reference as R

pytest.importorskip("numba")
from minidistil.kernels import cpu, gemm, isa, simd  # noqa: E402

EPS = float(np.finfo(np.float32).eps)
NO_AMX = "AMX needs a CPU with AMX-INT8 and the OS's permission for its tile registers (isa.amx_int8); not here"
AMX = gemm.with_amx(gemm.TALL)
INT8_TILINGS = [pytest.param(gemm.TALL, id="tall"), pytest.param(gemm.WIDE, id="wide"),
                pytest.param(AMX, id="amx", marks=pytest.mark.skipif(not isa.amx_int8(), reason=NO_AMX))]
SHAPES = [  # (rows, In, Out): whole tiles, edge tiles (odd rows), partial panels, odd In, one column
    (1, 1, 1), (2, 3, 5), (5, 31, 16), (6, 64, 17), (7, 33, 40), (8, 40, 64), (11, 17, 33), (13, 768, 33),
    (64, 130, 48), (97, 1024, 3)]


def _ints(rng, shape):
    return rng.integers(-127, 128, size=shape).astype(np.int8)


def _stored_values(xq):
    """The int8 values q of activations stored as the tiles read them (q + gemm.X_OFFSET in gemm.X_DTYPE)."""
    return xq.astype(np.int16) - gemm.X_OFFSET


def _padded_inner(inner):
    return -(-inner // gemm.IN_MULTIPLE) * gemm.IN_MULTIPLE


# ---------------------------------------------------------------- the spec itself


def test_quantize_symmetric_by_hand():
    x = np.array([[0, 0, 0], [1, -2, 0.5], [127, 0.5, 1.5], [127, 2.5, -2.5]], np.float32)
    values, scales = R.quantize_symmetric(x)
    assert values.dtype == np.int8 and scales.dtype == np.float32
    assert values.tolist() == [[0, 0, 0], [64, -127, 32], [127, 0, 2], [127, 2, -2]]  # ties to even
    assert scales.tolist() == [1.0, np.float32(2 / 127), 1.0, 1.0]  # an all-zero row gets scale 1


def test_quantize_rows_by_hand():
    """Activations: around the midpoint of each row's range, so a lopsided row uses all 255 steps."""
    x = np.array([[1, -2, 0.5], [3, 3, 3], [-127, 127, 0.5]], np.float32)
    values, scales, centers = R.quantize_rows(x)
    assert values.tolist() == [[127, -127, 85], [0, 0, 0], [-127, 127, 0]]
    assert scales.tolist() == [np.float32(1.5) / np.float32(127), 1.0, 1.0]
    assert centers.tolist() == [-0.5, 3.0, 0.0]  # a constant row is its center exactly


def test_a_range_whose_step_underflows_gets_scale_1():
    """half / 127 below float32's smallest normal would make 1 / scale huge or inf (0 * inf = NaN values):
    the spec and the numba kernel give such a row scale 1, from the threshold down."""
    tiny = np.float32(1e-39)  # subnormal: tiny / 127 is not a normal float32
    x = np.array([[0, tiny, -tiny], [1e-30, -1e-30, 0]], np.float32)
    values, scales, centers = R.quantize_rows(x)
    assert values[0].tolist() == [0, 0, 0] and scales[0] == 1.0 and centers[0] == 0.0
    assert values[1].tolist() == [127, -127, 0] and scales[1] == np.float32(1e-30) / np.float32(127)
    values, scales = R.quantize_symmetric(x)
    assert values[0].tolist() == [0, 0, 0] and scales[0] == 1.0
    # rows of half = 127 * the smallest normal and one float either side: steps at the threshold and across it
    at = np.float32(127) * R.SMALLEST_SCALE
    halves = [np.nextafter(at, np.float32(0)), at, np.nextafter(at, np.float32(1))]
    edge = np.array([[h, -h, h / 2] for h in halves], np.float32)
    values, scales, centers = R.quantize_rows(edge)
    assert scales[0] == 1.0 and values[0].tolist() == [0, 0, 0]
    assert scales[1] == R.SMALLEST_SCALE and values[1].tolist() == [127, -127, 64]
    for rows in (x, edge):
        values, scales, centers = R.quantize_rows(rows)
        for parallel in (False, True):
            xq, affine = gemm.quantize_rows(rows, _padded_inner(rows.shape[1]), parallel)
            assert np.array_equal(_stored_values(xq[:, :3]), values), f"parallel={parallel}"
            assert np.array_equal(affine[:, 0], scales) and np.array_equal(affine[:, 1], centers), f"parallel={parallel}"


def test_quantize_rows_non_finite_rows_become_nan():
    values, scales, centers = R.quantize_rows(np.array([[np.nan, 1, 2], [np.inf, 1, 0], [1, 2, 3]], np.float32))
    assert values[:2].tolist() == [[0, 0, 0], [0, 0, 0]] and np.isnan(scales[:2]).all() and np.isnan(centers[:2]).all()
    assert np.isfinite(scales[2]) and np.isfinite(centers[2])
    assert np.isnan(R.linear_int8(np.array([[np.nan, 1.0]], np.float32), R.quantize_matrix(np.eye(2, dtype=np.float32)))).all()


def test_quantize_matrix_refuses_non_finite_weights_naming_them():
    w = np.ones((3, 4), np.float32)
    w[1, 2] = np.inf
    with pytest.raises(ValueError, match="cannot quantize 'q.weight': 1 of its 3 rows hold inf or NaN"):
        R.quantize_matrix(w, "'q.weight'")


def test_quantize_matrix_in_chunks_equals_at_once():
    w = np.random.default_rng(0).standard_normal((37, 9)).astype(np.float32)
    whole = R.quantize_matrix(w, rows_per_chunk=1000)
    chunked = R.quantize_matrix(w, rows_per_chunk=5)
    assert np.array_equal(whole.values, chunked.values) and np.array_equal(whole.scales, chunked.scales)


def test_int8_products_are_exact_in_float64():
    rng = np.random.default_rng(1)
    xq, wq = np.full((2, 3072), 127, np.int8), np.full((4, 3072), -127, np.int8)  # the largest |sum| In = 3072 allows
    assert R.int8_products(xq, wq).tolist() == [[-127 * 127 * 3072] * 4] * 2
    xq, wq = _ints(rng, (5, 300)), _ints(rng, (7, 300))
    assert np.array_equal(R.int8_products(xq, wq), xq.astype(np.int64) @ wq.astype(np.int64).T)


def test_linear_int8_is_close_to_float32():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((8, 256)).astype(np.float32) + 3, rng.standard_normal((32, 256)).astype(np.float32)
    exact, ours = x @ w.T, R.linear_int8(x, R.quantize_matrix(w))
    # each operand is off by at most half a step (max|row| / 254): relative error ~ 2 * 0.5 / 127 per product
    assert np.abs(ours - exact).max() <= 0.02 * np.abs(x).max() * np.abs(w).max() * np.sqrt(256)


# ---------------------------------------------------------------- numba == spec, exactly


@pytest.mark.parametrize("magnitude", [1e-44, 1e-39, 1e-36, 1e-30, 1e-3, 1.0, 1e3, 1e30])
def test_numba_quantizes_rows_exactly_as_the_spec(magnitude):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((50, 77)) * magnitude).astype(np.float32)
    x[3] = 0
    x[4, 5] = np.nan
    x[5, 0] = -np.inf
    x[6] = np.round(x[6] / np.abs(x[6]).max() * 127 * 2) / 2 * np.abs(x[6]).max() / 127  # many exact ties
    x[7] = np.abs(x[7])  # lopsided rows
    x[8] = -np.abs(x[8]) - magnitude
    values, scales, centers = R.quantize_rows(x)
    for parallel in (False, True):
        xq, affine = gemm.quantize_rows(x, 80, parallel)
        assert xq.dtype == gemm.X_DTYPE
        assert np.array_equal(_stored_values(xq[:, :77]), values) and not _stored_values(xq[:, 77:]).any(), f"parallel={parallel}"
        assert np.array_equal(affine[:, 0], scales, equal_nan=True), f"parallel={parallel}"
        assert np.array_equal(affine[:, 1], centers, equal_nan=True), f"parallel={parallel}"


@pytest.mark.parametrize("n", [1, gemm.LANES - 1, gemm.LANES, 3 * gemm.LANES + 5])
def test_the_row_range_kernel_is_max_min_and_isfinite(n):
    """simd.row_range: max, min and all-finite of a row, with an inf or NaN in the vector part, the
    lanes' fold or the tail (n % lanes), and rows of zeros of both signs."""
    import numba

    @numba.njit
    def ranges(x):
        out = np.empty((x.shape[0], 3), np.float32)
        for i in range(x.shape[0]):
            out[i, 0], out[i, 1], finite = gemm._ROW_RANGE(x, i * x.shape[1], x.shape[1])
            out[i, 2] = finite
        return out

    rng = np.random.default_rng(n)
    rows = [(rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30)).astype(np.float32) for _ in range(6)]
    rows += [np.zeros(n, np.float32), -np.zeros(n, np.float32), np.full(n, 3.5, np.float32)]
    for position in {0, n // 2, n - 1}:
        for bad in (np.inf, -np.inf, np.nan):
            row = rng.standard_normal(n).astype(np.float32)
            row[position] = bad
            rows.append(row)
    x = np.stack(rows)
    out = ranges(x)
    finite = np.isfinite(x).all(axis=1)
    assert np.array_equal(out[:, 2].astype(bool), finite)
    assert np.array_equal(out[finite, 0], x[finite].max(axis=1)) and np.array_equal(out[finite, 1], x[finite].min(axis=1))


@pytest.mark.parametrize("rows, inner, cols", SHAPES)
@pytest.mark.parametrize("variant", ["serial", "parallel"])
@pytest.mark.parametrize("tiling", INT8_TILINGS)
def test_numba_int8_sums_equal_the_spec_exactly(rows, inner, cols, variant, tiling):
    rng = np.random.default_rng(rows * 1000 + cols)
    xi, wi = _ints(rng, (rows, inner)), _ints(rng, (cols, inner))
    packed = gemm.pack_int8(wi, np.ones(cols, np.float32))
    padded_rows = -(-rows // simd.AMX_ROWS) * simd.AMX_ROWS if tiling.amx else rows  # AMX loads 16 rows at a time
    xq = np.full((padded_rows, _padded_inner(inner)), gemm.X_OFFSET, gemm.X_DTYPE)
    xq[:rows, :inner] = xi.astype(np.int16) + gemm.X_OFFSET
    out = np.full((rows, cols), np.nan, np.float32)
    tasks = 1 if variant == "serial" else 2
    unit = np.tile(np.array([1, 0], np.float32), (padded_rows, 1))  # scale 1, center 0: out = float32(sum)
    block = gemm.AMX_ROWS if tiling.amx else tiling.rows  # blocks of one tile of rows: every block boundary crossed
    operands = (xq, unit, packed.panels, packed.scales, packed.center_weights, packed.sum_starts,
                np.zeros(cols, np.float32), 0, out, tasks, block)
    if tiling.amx:
        getattr(gemm._matmul_amx, variant)(*operands)
    else:
        getattr(gemm._matmul, variant)(*operands, tiling.rows, tiling.panels)
    assert np.array_equal(out.astype(np.int64), R.int8_products(xi, wi).astype(np.int64))


@pytest.mark.parametrize("rows, inner, cols", SHAPES)
@pytest.mark.parametrize("tasks", [1, 2])
@pytest.mark.parametrize("tiling", INT8_TILINGS)
def test_numba_int8_linear_equals_the_spec(rows, inner, cols, tasks, tiling):
    rng = np.random.default_rng(rows + inner + cols)
    x = rng.standard_normal((rows, inner)).astype(np.float32) + 0.5
    w = rng.standard_normal((cols, inner)).astype(np.float32)
    bias = rng.standard_normal(cols).astype(np.float32)
    quantized = R.quantize_matrix(w)
    ref = R.linear_int8(x, quantized, bias)
    out = gemm.matmul(x, gemm.pack_int8(*quantized), bias, np.empty((rows, cols), np.float32), tasks, tiling=tiling)
    # same integers, scales and centers; only the order and fusing of the last two multiply-adds differ
    xq, x_scale, x_center = R.quantize_rows(x)
    terms = (np.abs(R.int8_products(xq, quantized.values) * (x_scale[:, None] * quantized.scales[None, :]))
             + np.abs(x_center[:, None] * quantized.center_weights()[None, :]) + np.abs(bias))
    assert np.all(np.abs(out - ref) <= 3 * EPS * terms + 1e-37)


def test_numba_ops_int8_linear_and_embed_equal_numpy_ops():
    rng = np.random.default_rng(4)
    params = {"w": rng.standard_normal((40, 24)).astype(np.float32), "b": rng.standard_normal(40).astype(np.float32)}
    fast = cpu.NumbaOps().prepare(params, matrices=["w"], quantize="int8")
    ref = R.NumpyOps().prepare(params, matrices=["w"], quantize="int8")
    assert isinstance(fast["w"], gemm.PackedMatrix) and fast["w"].dtype == np.int8
    assert isinstance(ref["w"], R.QuantizedMatrix) and ref["w"].values.dtype == np.int8
    x = rng.standard_normal((3, 5, 24)).astype(np.float32)
    ours = cpu.NumbaOps().linear(x, fast["w"], fast["b"], "gelu")
    theirs = R.NumpyOps().linear(x, ref["w"], ref["b"], "gelu")
    assert ours.shape == (3, 5, 40) and np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
    ids = np.array([[0, 39, 17], [16, 15, 1]])
    assert np.array_equal(cpu.NumbaOps().embed(fast["w"], ids), R.NumpyOps().embed(ref["w"], ids))


def test_int8_matrices_take_a_quarter_of_float32():
    w = np.random.default_rng(5).standard_normal((3072, 768)).astype(np.float32)
    assert gemm.pack_int8(*R.quantize_matrix(w)).nbytes <= 0.26 * w.nbytes
    assert R.quantize_matrix(w).nbytes <= 0.26 * w.nbytes


@pytest.mark.parametrize("ops", [R.NumpyOps(), cpu.NumbaOps()], ids=["numpy", "numba"])
def test_prepare_refuses_bad_requests(ops):
    params = {"w": np.ones((2, 3), np.float32), "b": np.ones(2, np.float32)}
    with pytest.raises(ValueError, match="quantize must be None or one of 'int8', got 'int4'"):
        ops.prepare(params, matrices=["w"], quantize="int4")
    with pytest.raises(ValueError, match="matrix 'x' is not among the parameters"):
        ops.prepare(params, matrices=["x"])
    with pytest.raises(ValueError, match=r"matrix 'b' has shape \(2,\), expected \[Out, In\]"):
        ops.prepare(params, matrices=["b"])
    params["w"][0, 0] = np.nan
    with pytest.raises(ValueError, match="cannot quantize 'w'"):
        ops.prepare(params, matrices=["w"], quantize="int8")


# ---------------------------------------------------------------- float32 packing, and the code LLVM makes


def test_float32_packing_round_trips_and_linear_matches():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((37, 19)).astype(np.float32)
    packed = gemm.pack_float32(w)
    assert packed.panels.ctypes.data % gemm.ALIGN == 0
    assert packed.panels.shape == (-(-37 // gemm.PANEL), 19, gemm.PANEL)
    ids = np.arange(37).reshape(1, 37)
    assert np.array_equal(packed.rows(ids)[0], w)
    x = rng.standard_normal((gemm.TILE_ROWS * 3 + 1, 19)).astype(np.float32)
    for tasks in (1, 2):
        out = gemm.matmul(x, packed, np.zeros(37, np.float32), np.empty((len(x), 37), np.float32), tasks)
        assert np.abs(out - x @ w.T).max() <= 32 * EPS * (np.abs(x) @ np.abs(w).T).max()


@pytest.mark.parametrize("quantize", [None, "int8"])
def test_prepare_packs_every_matrix_into_one_arena_with_the_same_results(quantize):
    rng = np.random.default_rng(12)
    shapes = {"a": (37, 19), "b": (16, 64), "c": (5, 3)}  # odd In, a whole panel, less than one panel
    params = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    prepared = cpu.NumbaOps().prepare(params, matrices=list(shapes), quantize=quantize)
    buffers = {id(_allocation(prepared[name].panels)) for name in shapes}
    assert len(buffers) == 1, "one allocation for all the panels"
    for name, w in params.items():
        alone = gemm.pack_int8(*R.quantize_matrix(w)) if quantize else gemm.pack_float32(w)
        packed = prepared[name]
        assert packed.panels.ctypes.data % gemm.ALIGN == 0
        assert packed.shape == alone.shape and np.array_equal(packed.panels, alone.panels), name
        x = rng.standard_normal((gemm.TILE_ROWS + 1, w.shape[1])).astype(np.float32)
        bias = np.zeros(w.shape[0], np.float32)
        ours, theirs = (gemm.matmul(x, m, bias, np.empty((len(x), w.shape[0]), np.float32), 2) for m in (packed, alone))
        assert np.array_equal(ours, theirs), name


def test_an_arena_refuses_what_it_has_no_room_for():
    arena = gemm.Arena.for_matrices([(gemm.PANEL, 8)])  # one panel: 8 x PANEL float32
    gemm.pack_float32(np.ones((gemm.PANEL, 8), np.float32), arena)
    full = 8 * gemm.PANEL * 4
    with pytest.raises(ValueError, match=rf"arena of {full} bytes: no room for \(1, 1, {gemm.PANEL}\) float32 at byte {full}"):
        gemm.pack_float32(np.ones((1, 1), np.float32), arena)


def _allocation(array):
    """The object that owns an array's memory (the end of its chain of bases)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array.base if array.base is not None else array


def test_row_blocks_do_not_change_results(monkeypatch):
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((50, 40)).astype(np.float32), rng.standard_normal((20, 40)).astype(np.float32)
    packed = gemm.pack_float32(w)
    one_block = gemm.matmul(x, packed, np.zeros(20, np.float32), np.empty((50, 20), np.float32), 2)
    monkeypatch.setattr(gemm, "ROW_BLOCK_BYTES", 1)  # a block per tile of rows
    assert gemm.row_block(40, 4) == gemm.TILE_ROWS
    many = gemm.matmul(x, packed, np.zeros(20, np.float32), np.empty((50, 20), np.float32), 2)
    assert np.array_equal(one_block, many)


@pytest.mark.parametrize("rows", [gemm.TILE_ROWS * 5 + 3, gemm.TILE_ROWS * 4, gemm.EDGE_ROWS + 1])
@pytest.mark.parametrize("tasks", [1, 2, 3])
@pytest.mark.parametrize("tiling", [gemm.TALL, gemm.WIDE], ids=["tall", "wide"])
def test_rows_split_between_tasks_and_the_fused_activation(monkeypatch, rows, tasks, tiling):
    """Tasks split rows (enough rows for a block each) or panels (fewer): the same numbers either way,
    and the activation applied in the kernel is the activation pass (cpu._bias_act) bit for bit."""
    from minidistil.kernels.reference import ACT_CODES

    rng = np.random.default_rng(rows * 10 + tasks)
    x, w = rng.standard_normal((rows, 40)).astype(np.float32), rng.standard_normal((3 * gemm.PANEL + 5, 40)).astype(np.float32)
    bias = rng.standard_normal(len(w)).astype(np.float32)
    packed = gemm.pack_float32(w)

    def product(act=0):
        return gemm.matmul(x, packed, bias, np.full((rows, len(w)), np.nan, np.float32), tasks, act, tiling)

    panels_split = product()  # one block of rows: tasks split the panels
    monkeypatch.setattr(gemm, "ROW_BLOCK_BYTES", 1)  # a block per tile of rows: tasks split the rows
    rows_split = product()
    assert np.array_equal(panels_split, rows_split)
    assert np.abs(rows_split - (x @ w.T + bias)).max() <= 64 * EPS * (np.abs(x) @ np.abs(w).T + np.abs(bias)).max()
    for name in ("gelu", "relu", "silu"):
        expected = rows_split.copy()
        cpu._bias_act.serial(expected, np.zeros(len(w), np.float32), ACT_CODES[name])
        assert np.array_equal(product(ACT_CODES[name]), expected), name
        monkeypatch.setattr(gemm, "ROW_BLOCK_BYTES", 1 << 20)
        assert np.array_equal(product(ACT_CODES[name]), expected), name
        monkeypatch.setattr(gemm, "ROW_BLOCK_BYTES", 1)


@pytest.mark.parametrize("quantize", [False, True], ids=["float32", "int8"])
@pytest.mark.parametrize("out_features", [2 * gemm.PANEL + 5, 4 * gemm.PANEL])  # an odd and an even count of panels
def test_a_rows_result_does_not_depend_on_the_rows_around_it(quantize, out_features):
    """Whole tiles of either tiling, edge tiles of one panel or two, rows or panels split between
    threads: each row comes out bit for bit as it does alone, so a text's output does not depend on
    its batch (what the server's batcher and the CLI's batches promise), nor on the tile the
    calibration chose."""
    rng = np.random.default_rng(out_features + quantize)
    w = rng.standard_normal((out_features, 37)).astype(np.float32)
    bias = rng.standard_normal(out_features).astype(np.float32)
    packed = gemm.pack_int8(*R.quantize_matrix(w)) if quantize else gemm.pack_float32(w)
    x = rng.standard_normal((max(3 * gemm.TILE_ROWS + gemm.EDGE_ROWS, gemm.AMX_ROWS + 1) + 1, 37)).astype(np.float32)
    alone = np.concatenate([gemm.matmul(row[None], packed, bias, np.empty((1, out_features), np.float32), 1)
                            for row in x])
    tilings = (gemm.TALL, gemm.WIDE) + ((AMX,) if quantize and isa.amx_int8() else ())
    for rows in range(1, len(x) + 1):
        for tasks, tiling in itertools.product((1, 2), tilings):
            together = gemm.matmul(x[:rows], packed, bias, np.empty((rows, out_features), np.float32), tasks,
                                   tiling=tiling)
            assert np.array_equal(together, alone[:rows]), (rows, tasks, tiling)


def test_tile_shape_follows_the_vector_unit():
    assert gemm.tile_shape(isa.VectorUnit(lanes=8, registers=16)) == (6, 2, 8)  # AVX2: 12 accumulators + 3
    assert gemm.tile_shape(isa.VectorUnit(lanes=16, registers=32)) == (14, 2, 16)  # AVX-512: 28 + 3
    rows, vectors, lanes = gemm.tile_shape()
    registers = isa.vector_unit().registers
    assert rows * vectors + vectors + 1 <= registers
    # the wide tile: two panels, as many rows as the rest of the registers hold; a candidate only if
    # taller than the tall edge tile (with 32 registers: 6 rows x 4 vectors, 24 accumulators + 5)
    wide_vectors = 2 * vectors
    used = lambda rows: rows * wide_vectors + wide_vectors + 1  # noqa: E731  accumulators, weights, a broadcast
    assert used(gemm.WIDE.rows) <= registers < used(gemm.WIDE.rows + 1)
    assert gemm.TILINGS == ((gemm.TALL, gemm.WIDE) if registers == 32 else (gemm.TALL,))


def _tile_asm(kernel, *arrays):
    """The machine code of a fresh (uncached) function around one tile kernel."""
    import numba

    if len(arrays) == 4:
        fn = numba.njit(lambda x, w, b, out: kernel(x, 0, x.shape[1], 1, w, 0, b, 0, out, 0, out.shape[1], x.shape[1]))
    else:
        fn = numba.njit(lambda x, a, w, s, z, out: kernel(x, 0, x.shape[1], 1, a, 0, w, 0, s, s, z, s, 0, out, 0,
                                                          out.shape[1], x.shape[1]))
    fn(*arrays)
    return "\n".join(fn.inspect_asm().values())


@pytest.mark.skipif("avx2" not in isa.features(), reason="the instruction check is for x86 with AVX2")
def test_tiles_compile_to_fma_and_the_int8_dot_products():
    rows, width = gemm.TILE_ROWS, gemm.PANEL
    x = np.ones((rows, 8), np.float32)
    out = np.empty((rows, width), np.float32)
    asm = _tile_asm(gemm.FLOAT32_TILE, x, np.ones(8 * width, np.float32), np.zeros(width, np.float32), out)
    assert "vfmadd" in asm
    float32_asm = asm
    int8_tile = simd.madd_tile(rows, gemm.TILE_VECTORS, gemm.LANES, group=gemm.K_GROUP)  # matmul's whole int8 tile
    asm = _tile_asm(int8_tile, np.ones((rows, 8), np.int32), np.ones((rows, 2), np.float32),
                    np.ones(8 * gemm.K_GROUP * width, np.int8), np.zeros(width, np.float32), np.zeros(width, np.int32), out)
    # both tiles prefetch each cache line of their float32 output for writing, once, before the loop over k
    if "prfchw" in isa.features():
        lines = rows * width * 4 // simd.CACHE_LINE
        assert float32_asm.count("prefetchw") == lines and asm.count("prefetchw") == lines
    # AVX-512 VNNI: the byte dot product; else the pair product (with VNNI, it and the sum are one vpdpwssd);
    # never a 32-bit multiply per lane
    if isa.byte_dot_product():
        product = "vpdpbusd"
    else:
        product = "vpdpwssd" if isa.features() & {"avx512vnni", "avxvnni"} else "vpmaddwd"
    assert product in asm and "vpmulld" not in asm
    # the wide whole tile (two panels) is FMAs too, and prefetches its own output lines
    rows, width = gemm.WIDE.rows, 2 * gemm.PANEL
    wide_asm = _tile_asm(simd.fma_tile(rows, gemm.TILE_VECTORS, gemm.LANES, 2), np.ones((rows, 8), np.float32),
                         np.ones(8 * width, np.float32), np.zeros(width, np.float32), np.empty((rows, width), np.float32))
    assert "vfmadd" in wide_asm
    if "prfchw" in isa.features():
        assert wide_asm.count("prefetchw") == rows * width * 4 // simd.CACHE_LINE


@pytest.mark.skipif(not isa.amx_int8(), reason=NO_AMX)
@pytest.mark.parametrize("tasks", [1, 2, 3])
@pytest.mark.parametrize("row_block_bytes", [1, 1 << 20], ids=["tasks split rows", "tasks split panels"])
def test_amx_products_are_the_vector_tiles_bit_for_bit(monkeypatch, tasks, row_block_bytes):
    """Whole and half tiles of rows (and the padding rows past the last, never stored), partial last
    panels, inner sizes that are not a multiple of a tile row, the fused activation: AMX's outputs are
    TALL's, which the tests above hold to the spec. (Products of fewer than gemm.AMX_FROM_ROWS rows do not
    reach AMX through matmul; test_numba_int8_sums_equal_the_spec_exactly runs them on it.)"""
    from minidistil.kernels.reference import ACT_CODES

    monkeypatch.setattr(gemm, "ROW_BLOCK_BYTES", row_block_bytes)
    rng = np.random.default_rng(tasks)
    for rows, inner, cols in ((16, 768, 64), (20, 100, 70), (32, 5, 3), (33, 64, 32), (40, 100, 70), (47, 768, 64),
                              (64, 130, 97), (96, 64, 33),
                              (100, 64, 97)):  # (tasks split the rows three ways only with 3 panels or more)
        x = rng.standard_normal((rows, inner)).astype(np.float32) + 0.3
        w = rng.standard_normal((cols, inner)).astype(np.float32)
        bias = rng.standard_normal(cols).astype(np.float32)
        packed = gemm.pack_int8(*R.quantize_matrix(w))
        for act in (0, ACT_CODES["gelu"]):
            tall, amx = (gemm.matmul(x, packed, bias, np.full((rows, cols), np.nan, np.float32), tasks, act, tiling)
                         for tiling in (gemm.TALL, AMX))
            assert np.array_equal(tall, amx), (rows, inner, cols, act)


@pytest.mark.skipif(not isa.amx_int8(), reason=NO_AMX)
def test_the_amx_tile_is_tile_instructions():
    """A task's way through AMX: load the tile configuration, multiply bytes on tiles, release them (a fresh,
    uncached function around them: Numba shows no machine code of cached ones)."""
    import numba

    start, finish = simd.amx_configure()
    tile = simd.amx_tile(2)

    @numba.njit
    def one_tile(xq, affine, w, s, z, out, sums):
        start()
        tile(xq, 0, xq.shape[1], affine, 0, w, 0, s, s, z, s, 0, out, 0, out.shape[1], w.shape[0] // 128, sums, 32)
        finish()

    rows, cols, steps = 2 * simd.AMX_ROWS, gemm.PANEL, 16
    xq, out = np.full((rows, 4 * steps), 129, np.uint8), np.empty((rows, cols), np.float32)
    ones = np.ones(cols, np.float32)
    starts = np.full(cols, -gemm.X_OFFSET * 4 * steps, np.int32)  # q = 1 stored as 129, all weights 1 (pack_int8's sum_starts)
    one_tile(xq, np.ones((rows, 2), np.float32), np.ones(steps * 4 * cols, np.int8), ones, starts, out,
             np.empty((rows, cols), np.int32))
    assert np.array_equal(out, np.full((rows, cols), 4 * steps + 2, np.float32))  # 64 x (1 x 1) + center 1 x 1 + bias 1
    asm = "\n".join(one_tile.inspect_asm().values())
    for instruction in ("ldtilecfg", "tilezero", "tileloadd", "tdpbusd", "tilestored", "tilerelease"):
        assert instruction in asm, instruction


OTHER_UNIT = r"""
import sys
import numpy as np
from minidistil.kernels import isa

lanes, registers = map(int, sys.argv[1:3])
isa.vector_unit = lambda: isa.VectorUnit(lanes=lanes, registers=registers)  # before gemm sizes its tiles
isa.byte_dot_product = lambda: sys.argv[3] == "bytes"
from minidistil.kernels import gemm, reference as R

assert (gemm.TILE_ROWS, gemm.PANEL) == ((registers - 3) // 2, 2 * lanes), (gemm.TILE_ROWS, gemm.PANEL)
assert gemm.K_GROUP == (4 if sys.argv[3] == "bytes" else 2)
eps = float(np.finfo(np.float32).eps)
rng = np.random.default_rng(0)
for rows in (1, 2, gemm.TILE_ROWS - 1, gemm.TILE_ROWS, gemm.TILE_ROWS + 1, 2 * gemm.TILE_ROWS + 3, gemm.AMX_ROWS + 5):
    for inner, cols in ((7, 5), (64, gemm.PANEL + 1), (33, 2 * gemm.PANEL)):
        x, w = rng.standard_normal((rows, inner), dtype=np.float32), rng.standard_normal((cols, inner), dtype=np.float32)
        b = rng.standard_normal(cols, dtype=np.float32)
        for tasks in (1, 2):
            out = gemm.matmul(x, gemm.pack_float32(w), b, np.empty((rows, cols), np.float32), tasks)
            assert np.abs(out - (x @ w.T + b)).max() <= 32 * eps * (np.abs(x) @ np.abs(w).T + np.abs(b)).max()
            quantized = R.quantize_matrix(w)
            out = gemm.matmul(x, gemm.pack_int8(*quantized), b, np.empty((rows, cols), np.float32), tasks)
            xq = gemm.quantize_rows(x, -(-inner // gemm.K_GROUP) * gemm.K_GROUP, tasks > 1)[0][:, :inner]
            assert np.array_equal(xq.astype(np.int16) - gemm.X_OFFSET, R.quantize_rows(x)[0])
            xq, x_scale, x_center = R.quantize_rows(x)  # the same bound as test_numba_int8_linear_equals_the_spec
            terms = (np.abs(R.int8_products(xq, quantized.values) * (x_scale[:, None] * quantized.scales[None, :]))
                     + np.abs(x_center[:, None] * quantized.center_weights()[None, :]) + np.abs(b))
            assert np.all(np.abs(out - R.linear_int8(x, quantized, b)) <= 3 * eps * terms + 1e-37)
            for packed in (gemm.pack_float32(w), gemm.pack_int8(*quantized)):  # each row as it comes out alone
                together = gemm.matmul(x, packed, b, np.empty((rows, cols), np.float32), tasks)
                for i in (0, rows - 1):
                    alone = gemm.matmul(x[i : i + 1], packed, b, np.empty((1, cols), np.float32), 1)
                    assert np.array_equal(together[i], alone[0]), (rows, inner, cols, tasks, i)
                wide = gemm.matmul(x, packed, b, np.empty((rows, cols), np.float32), tasks, tiling=gemm.WIDE)
                assert np.array_equal(wide, together), (rows, inner, cols, tasks)
                if packed.scales is not None and gemm.with_amx(gemm.TALL) in gemm.INT8_TILINGS:
                    amx = gemm.matmul(x, packed, b, np.empty((rows, cols), np.float32), tasks, tiling=gemm.with_amx(gemm.TALL))
                    assert np.array_equal(amx, together), (rows, inner, cols, tasks)
print("ok", gemm.TILE_ROWS, gemm.PANEL, gemm.K_GROUP)
"""


@pytest.mark.parametrize("lanes, registers, int8_product", [(16, 32, "pairs"), (16, 32, "bytes"), (8, 16, "pairs"),
                                                            (4, 16, "pairs")])
def test_every_vector_units_tiles_give_the_specs_results(tmp_path, lanes, registers, int8_product):
    """The tile shapes of AVX-512 (14 x 32), AVX2 (6 x 16) and SSE (6 x 8), whatever this CPU is: LLVM
    splits or joins the vectors, so each shape's edge rows, partial panels and thread splits are
    checked here, not only on a machine of that kind (its own cache directory: the tile size is
    compiled into the kernels, and Numba's cache does not know it). The int8 pair products run
    anywhere; the byte dot product (vpdpbusd) is an instruction only AVX-512 VNNI has."""
    if int8_product == "bytes" and "avx512vnni" not in isa.features():
        pytest.skip("the byte dot product (vpdpbusd) needs AVX-512 VNNI, which this CPU lacks")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "NUMBA_NUM_THREADS": "2"}
    run = subprocess.run([sys.executable, "-c", OTHER_UNIT, str(lanes), str(registers), int8_product], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.startswith("ok"), run.stderr[-3000:]


def test_int8_packing_refuses_an_inner_dimension_whose_sums_overflow_int32():
    with pytest.raises(ValueError, match=r"int8 products sum at most \d+ inputs in int32, got a weight of In = 140000"):
        gemm.pack_int8(np.zeros((1, 140_000), np.int8), np.ones(1, np.float32))
