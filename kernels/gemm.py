"""Matrix products with weights packed once, at load: float32, and int8 with int32 sums.

    packed = pack_float32(w)                  # w [Out, In] as stored in the checkpoint
    packed = pack_int8(values, scales)        # reference.quantize_matrix(w): int8 [Out, In], scale per row
    matmul(x, packed, bias, out, tasks)       # out = x @ wᵀ + bias, x [N, In] float32
                                              # (int8: x quantized per row first, reference.quantize_rows)

Why pack. BLAS (OpenBLAS here) copies the weight into its kernel's layout on
every call; with few rows that copy costs as much as the product (a 128-row
product with a 768 x 3072 weight, 1 thread: OpenBLAS 66-73 GFLOP/s, this
code 83 on the same panels). Packing once moves that cost to the load, and
the bias is added for free: the accumulators start from it. (An activation
fused into the tile's store was measured too: it saved ~1.5% of a 32 x 128
pass and cost seconds of compile time, once per kernel variant; cpu.py runs
it as a pass of its own.)

Layouts (PANEL = columns of one register tile, isa-derived: 16 with AVX2):

    float32   panels [P, In, PANEL]          panel p holds output rows p*PANEL ... p*PANEL+PANEL-1,
                                             column by column: one vector load per k
    int8      panels [P, In2 / 2, PANEL, 2]  two consecutive k of each output row side by side,
                                             In2 = In rounded up to even: the operand of pmaddwd
                                             (int16 pairs), sign-extended from int8 in the kernel

P = ceil(Out / PANEL); the rows past Out are zero, and so is the padding column.
Memory: float32 panels take the weight's own size (+ padding to a multiple of
PANEL rows), a second copy beside the checkpoint's memory-mapped arrays; int8
panels a quarter of it, plus two float32 per output row (its scale, and the
term a quantized input row's center multiplies: reference.dequantize).

Tiles. A tile is TILE_ROWS rows x PANEL columns, its accumulators in
registers for the whole inner dimension (simd.py). Its shape comes from the
vector unit (isa.py): two vectors of columns and as many rows as the
remaining registers hold (registers - 2 weight vectors - 1 broadcast) / 2:
6 x 16 with AVX2's 16 registers, 14 x 32 with AVX-512's 32. The inner
dimension is not blocked (the whole In per tile: reloading the partial sums
per k-block cost more than the panel's L1 misses, measured 128-384 rows);
rows are blocked so that one block of x is ~1 MiB (it is re-read per panel).
Threads split the panels (each thread streams its own share of the weight).
The last rows (fewer than TILE_ROWS) and the last panel's rows past Out go
through a zero-padded copy, so one tile kernel serves every shape.
"""

from typing import NamedTuple, Optional

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from . import isa, simd
from .jit import CONTRACT, SERIAL_WORK, parallel_and_serial
from .reference import QuantizedMatrix

ROW_BLOCK_BYTES = 1 << 20  # rows of x per block: about this many bytes of x (see the module docstring)
ALIGN = 64  # bytes: packed panels start on a cache line


def tile_shape(unit=None):
    """(rows, vectors, lanes) of a register tile on this vector unit (see the module docstring)."""
    unit = unit or isa.vector_unit()
    vectors = 2
    return (unit.registers - vectors - 1) // vectors, vectors, unit.lanes


TILE_ROWS, TILE_VECTORS, LANES = tile_shape()
PANEL = TILE_VECTORS * LANES  # output rows per panel = columns of a tile
EDGE_ROWS = 2  # the last rows % TILE_ROWS go through tiles of this many rows (see the module docstring)
_F32_TILE, _F32_EDGE = (simd.fma_tile(rows, TILE_VECTORS, LANES) for rows in (TILE_ROWS, EDGE_ROWS))
FLOAT32_TILE = _F32_TILE  # for other kernels made of small products (cpu.py's attention)
_I8_TILE, _I8_EDGE = (simd.madd_tile(rows, TILE_VECTORS, LANES) for rows in (TILE_ROWS, EDGE_ROWS))


class PackedMatrix(NamedTuple):
    """A weight [Out, In] in panel layout (float32 or int8), as `matmul` takes it."""

    panels: np.ndarray  # float32 [P, In, PANEL] or int8 [P, In2 / 2, PANEL, 2]
    scales: Optional[np.ndarray]  # int8: float32 [P * PANEL], each output row's scale (0 past Out); else None
    center_weights: Optional[np.ndarray]  # int8: float32 [P * PANEL], QuantizedMatrix.center_weights padded
    shape: tuple  # (Out, In)

    @property
    def dtype(self):
        return self.panels.dtype

    @property
    def nbytes(self):
        return self.panels.nbytes + sum(a.nbytes for a in (self.scales, self.center_weights) if a is not None)

    def rows(self, ids):
        """float32 rows `ids` of the matrix (dequantized for int8): what an embedding lookup reads. ids [...] -> [..., In]."""
        ids = np.asarray(ids)
        panel, column = np.divmod(ids, PANEL)
        if self.scales is None:
            return self.panels[panel, :, column]  # [..., In]
        values = self.panels[panel, :, column, :].reshape(*ids.shape, -1)[..., : self.shape[1]]  # int8 [..., In]
        return values.astype(np.float32) * self.scales[ids][..., None]


def _aligned_zeros(shape, dtype):
    """np.zeros(shape, dtype) whose data starts on an ALIGN-byte boundary."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(size + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start : start + size].view(dtype).reshape(shape)


def _padded(vector, size):
    out = np.zeros(size, np.float32)
    out[: len(vector)] = vector
    return out


def pack_float32(weight):
    """weight [Out, In] float32 -> PackedMatrix with panels [P, In, PANEL]."""
    weight = np.asarray(weight, dtype=np.float32)
    out_features, in_features = weight.shape
    count = -(-out_features // PANEL)
    padded = np.zeros((count * PANEL, in_features), np.float32)
    padded[:out_features] = weight
    panels = _aligned_zeros((count, in_features, PANEL), np.float32)
    panels[...] = padded.reshape(count, PANEL, in_features).transpose(0, 2, 1)
    return PackedMatrix(panels, None, None, (out_features, in_features))


def pack_int8(values, scales):
    """A reference.QuantizedMatrix (int8 values [Out, In], float32 scales [Out]) -> PackedMatrix [P, In2/2, PANEL, 2]."""
    matrix = QuantizedMatrix(np.asarray(values, dtype=np.int8), np.asarray(scales, dtype=np.float32))
    out_features, in_features = matrix.shape
    count = -(-out_features // PANEL)
    in_even = in_features + in_features % 2
    padded = np.zeros((count * PANEL, in_even), np.int8)
    padded[:out_features, :in_features] = matrix.values
    panels = _aligned_zeros((count, in_even // 2, PANEL, 2), np.int8)
    panels[...] = padded.reshape(count, PANEL, in_even // 2, 2).transpose(0, 2, 1, 3)
    return PackedMatrix(panels, _padded(matrix.scales, count * PANEL), _padded(matrix.center_weights(), count * PANEL),
                        (out_features, in_features))


def row_block(in_features, itemsize):
    """Rows of x per block: ~ROW_BLOCK_BYTES of x, a whole number of tiles."""
    rows = ROW_BLOCK_BYTES // (in_features * itemsize)
    return max(TILE_ROWS, rows - rows % TILE_ROWS)


# ---------------------------------------------------------------- kernels


def _tile(edge, x, x_off, x_stride, x_affine, row_off, panels, p, w_scale, w_center, bias, c0, out, out_off,
          out_stride):
    """One register tile (TILE_ROWS rows, or EDGE_ROWS when `edge`) of panel p: float32 when x_affine is None, else int8.

    Only callable from Numba code: the overload below picks the kernel by the type of x_affine when
    the caller is compiled, so a float32 matmul contains no int8 code and the other way round.
    """
    raise NotImplementedError("_tile is compiled into Numba kernels only")


@overload(_tile)
def _tile_for_types(edge, x, x_off, x_stride, x_affine, row_off, panels, p, w_scale, w_center, bias, c0, out,
                    out_off, out_stride):
    if isinstance(x_affine, types.NoneType):
        def float32_tile(edge, x, x_off, x_stride, x_affine, row_off, panels, p, w_scale, w_center, bias, c0, out,
                         out_off, out_stride):
            depth = panels.shape[1]
            if edge:
                _F32_EDGE(x, x_off, x_stride, panels, p * depth * PANEL, bias, c0, out, out_off, out_stride, depth)
            else:
                _F32_TILE(x, x_off, x_stride, panels, p * depth * PANEL, bias, c0, out, out_off, out_stride, depth)

        return float32_tile

    def int8_tile(edge, x, x_off, x_stride, x_affine, row_off, panels, p, w_scale, w_center, bias, c0, out,
                  out_off, out_stride):
        pairs = panels.shape[1]
        offset = p * pairs * 2 * PANEL
        if edge:
            _I8_EDGE(x, x_off, x_stride, x_affine, row_off, panels, offset, w_scale, w_center, bias, c0, out, out_off,
                     out_stride, pairs)
        else:
            _I8_TILE(x, x_off, x_stride, x_affine, row_off, panels, offset, w_scale, w_center, bias, c0, out, out_off,
                     out_stride, pairs)

    return int8_tile


@njit(cache=True)
def _padded_rows(x, start):
    """x[start:] zero-padded to TILE_ROWS rows: what the edge tiles read."""
    edge = np.zeros((TILE_ROWS, x.shape[1]), x.dtype)
    for i in range(start, x.shape[0]):  # loops, not slices: slice assignment compiles Numba's broadcasting checks
        for j in range(x.shape[1]):
            edge[i - start, j] = x[i, j]
    return edge


def _edge_rows(x, x_affine, start):
    """(x[start:], x_affine[start:] or None) zero-padded to TILE_ROWS rows."""
    raise NotImplementedError("_edge_rows is compiled into Numba kernels only")


@overload(_edge_rows)
def _edge_rows_for_types(x, x_affine, start):
    if isinstance(x_affine, types.NoneType):
        return lambda x, x_affine, start: (_padded_rows(x, start), None)
    return lambda x, x_affine, start: (_padded_rows(x, start), _padded_rows(x_affine, start))


@parallel_and_serial(CONTRACT)
def _matmul(x, x_affine, panels, w_scale, w_center, bias, out, tasks, rows_per_block):
    """out = x @ wᵀ + bias, out [N, Out] float32, C-contiguous arrays throughout.

    float32: x [N, In], panels [P, In, PANEL]; x_affine, w_scale, w_center None.
    int8: x int16 [N, In2] (int8 values, from _quantize_rows), x_affine [N, 2] (scale, center of each
    row), panels int8 [P, In2 / 2, PANEL, 2], w_scale and w_center [P * PANEL] (PackedMatrix); the
    tile dequantizes as it stores.
    Each task takes a share of the panels; rows in blocks of rows_per_block (whole tiles); in the
    last block each panel also serves the last rows % TILE_ROWS, in EDGE_ROWS-row tiles of a
    zero-padded copy, right after the whole tiles: a second pass over the panels for them streams
    the weights from memory twice (a DistilBERT 1 x 8 pass, 2 threads, 3 runs each: 15.2-16.4 ms
    with the second pass, 13.9-14.9 ms without).
    """
    rows, stride = x.shape
    cols = out.shape[1]
    count = panels.shape[0]
    padded_bias = np.zeros(count * PANEL, np.float32)
    for j in range(cols):
        padded_bias[j] = bias[j]
    whole_rows = rows - rows % TILE_ROWS
    blocks = max(1, -(-whole_rows // rows_per_block))  # one (empty) block when there are only edge rows
    for task in prange(tasks):
        edge, edge_affine = _edge_rows(x, x_affine, whole_rows)
        scratch = np.empty((TILE_ROWS, PANEL), np.float32)  # a tile that does not fit in `out`
        first, last = count * task // tasks, count * (task + 1) // tasks
        for block in range(blocks):
            m0, m1 = block * rows_per_block, min((block + 1) * rows_per_block, whole_rows)
            for p in range(first, last):
                c0 = p * PANEL
                width = min(PANEL, cols - c0)
                direct = width == PANEL
                for i in range(m0, m1, TILE_ROWS):
                    dst, dst_off, dst_stride = (out, i * cols + c0, cols) if direct else (scratch, 0, PANEL)
                    _tile(False, x, i * stride, stride, x_affine, i, panels, p, w_scale, w_center, padded_bias, c0,
                          dst, dst_off, dst_stride)
                    if not direct:
                        _copy_tile(scratch, out, i, TILE_ROWS, c0, width)
                if block == blocks - 1:  # the edge rows while the panel is still in cache, not in a second pass
                    for e in range(0, rows - whole_rows, EDGE_ROWS):
                        _tile(True, edge, e * stride, stride, edge_affine, e, panels, p, w_scale, w_center,
                              padded_bias, c0, scratch, 0, PANEL)
                        _copy_tile(scratch, out, whole_rows + e, min(EDGE_ROWS, rows - whole_rows - e), c0, width)


@njit(error_model="numpy", cache=True)
def _copy_tile(scratch, out, i, height, c0, width):
    """out[i:i+height, c0:c0+width] = the valid part of a tile computed into scratch."""
    for r in range(height):
        for j in range(width):
            out[i + r, c0 + j] = scratch[r, j]


@parallel_and_serial(set())
def _quantize_rows(x, xq, affine):
    """Each row of x [N, In] to int8 values (stored as int16 [N, In2], zero-padded) and its (scale, center) [N, 2].

    reference.quantize_rows is the specification, and this must give the very same integers: plain
    float32 arithmetic, no fast-math (max, min, a halving, a subtraction, one multiply and rint
    have one correct result each).
    """
    cols = x.shape[1]
    half_of = np.float32(0.5)
    for i in prange(x.shape[0]):
        hi, lo = x[i, 0], x[i, 0]
        finite = True
        for j in range(cols):
            v = x[i, j]
            hi = max(hi, v)
            lo = min(lo, v)
            finite &= abs(v) < np.inf  # false for inf and NaN
        center = hi * half_of + lo * half_of
        half = hi * half_of - lo * half_of
        scale = half / np.float32(127.0) if half > 0 else np.float32(1.0)
        inverse = np.float32(1.0) / scale
        for j in range(cols):
            xq[i, j] = np.int16(min(max(np.rint((x[i, j] - center) * inverse), -127.0), 127.0)) if finite else 0
        for j in range(cols, xq.shape[1]):
            xq[i, j] = 0
        affine[i, 0] = scale if finite else np.float32(np.nan)
        affine[i, 1] = center if finite else np.float32(np.nan)


# ---------------------------------------------------------------- entry point


def quantize_rows(x, in_even, parallel):
    """x [N, In] float32 -> (int16 [N, in_even] holding int8 values, float32 [N, 2] (scale, center) per row).

    The values, scales and centers of reference.quantize_rows.
    """
    xq = np.empty((x.shape[0], in_even), np.int16)
    affine = np.empty((x.shape[0], 2), np.float32)
    (_quantize_rows.parallel if parallel else _quantize_rows.serial)(x, xq, affine)
    return xq, affine


def matmul(x, packed, bias, out, tasks):
    """out = x @ wᵀ + bias for the matrix w in `packed`; x [N, In] float32 C-contiguous, out [N, Out].

    tasks: threads to split the panels over (1: this thread only). int8 quantizes x per row first.
    """
    tasks = max(1, min(int(tasks), packed.panels.shape[0]))
    x_affine = None
    if packed.scales is not None:
        x, x_affine = quantize_rows(x, packed.panels.shape[1] * 2, tasks > 1 and x.size >= SERIAL_WORK)
    kernel = _matmul.parallel if tasks > 1 else _matmul.serial
    kernel(x, x_affine, packed.panels, packed.scales, packed.center_weights, bias, out, tasks,
           row_block(x.shape[1], x.itemsize))
    return out
