"""Matrix products with weights packed once, at load: float32, and int8 with int32 sums.

    packed = pack_float32(w)                  # w [Out, In] as stored in the checkpoint
    packed = pack_int8(values, scales)        # reference.quantize_matrix(w): int8 [Out, In], scale per row
    packed = pack_float32(w, arena)           # the panels in an Arena: a model's weights in one allocation
    matmul(x, packed, bias, out, tasks, act)  # out = act(x @ wᵀ + bias), x [N, In] float32
                                              # (int8: x quantized per row first, reference.quantize_rows)

Why pack. BLAS (OpenBLAS here) copies the weight into its kernel's layout on
every call; with few rows that copy costs as much as the product (a 128-row
product with a 768 x 3072 weight, 1 thread: OpenBLAS 66-73 GFLOP/s, this
code 83 on the same panels). Packing once moves that cost to the load, and
the bias is added for free: the accumulators start from it. The activation
runs on each block of the output right after its tiles, while the block is
in cache, so a linear makes one pass over its output (FFN1 + GELU at 4092
rows, 2 threads, median per-round ratio to OpenBLAS + a GELU pass: 0.95,
0.96, 0.94 over three runs, against 0.98, 0.95, 0.93 with the activation as
a pass of its own: no measurable difference in time; fused into the tile's
store instead it saved ~1.5% of a 32 x 128 pass and cost seconds of compile
time per kernel variant).

Layouts (PANEL = columns of one register tile, isa-derived: 16 with AVX2):

    float32   panels [P, In, PANEL]          panel p holds output rows p*PANEL ... p*PANEL+PANEL-1,
                                             column by column: one vector load per k
    int8      panels [P, InG / G, PANEL, G]  G = K_GROUP consecutive k of each output row side by
                                             side, InG = In rounded up to a multiple of IN_MULTIPLE: with
                                             AVX-512 VNNI G = 4, the signed operand of vpdpbusd (and, 16
                                             columns of it, of AMX's tdpbusd); else G = 2, the operand of
                                             pmaddwd (int16 pairs), sign-extended in the kernel

P = ceil(Out / PANEL); the rows past Out are zero, and so are the padding columns.
Memory: float32 panels take the weight's own size (+ padding to a multiple of
PANEL rows), a second copy beside the checkpoint's memory-mapped arrays; int8
panels a quarter of it (with In padded to a multiple of IN_MULTIPLE: 64 with VNNI, which
DistilBERT's sizes are already), plus three numbers per output row (its scale, the term
a quantized input row's center multiplies: reference.dequantize, and where its
int32 sum starts).

int8 activations. Each row of x is quantized at run time (reference.quantize_rows)
and stored as the tiles read it, one 4-byte word per K_GROUP inner indices:
int16 values with pairs, unsigned bytes q + 128 with the byte dot product
(vpdpbusd multiplies unsigned by signed bytes; the q of an activation row are
signed). The sum over k of (q + 128) w is the spec's sum plus 128 sum_k w, so
each column's sum starts from -128 sum_k w (PackedMatrix.sum_starts): the same
int32s either way. Why: vpdpbusd does 64 multiply-adds per instruction, 4 per
32-bit lane, against vpdpwssd's 32 and vpmaddwd's 32 (+ a vpaddd), and reads the
weight bytes as they are stored (no vpmovsxbw).

Tiles. A tile is TILE_ROWS rows x PANEL columns, its accumulators in
registers for the whole inner dimension (simd.py). Its shape comes from the
vector unit (isa.py): two vectors of columns and as many rows as the
remaining registers hold (registers - 2 weight vectors - 1 broadcast) / 2:
6 x 16 with AVX2's 16 registers, 14 x 32 with AVX-512's 32 (on AVX2, three
vectors x 4 rows, fewer broadcasts per FMA, took 3-8% longer on one thread,
96-384 rows of the FFN and 768 x 768 products; four vectors x 3 rows spill
registers and took twice as long). The inner
dimension is not blocked (the whole In per tile: reloading the partial sums
per k-block cost more than the panel's L1 misses, measured 128-384 rows).
That is the TALL tiling. With 32 registers there is a second, WIDE: 6 rows
by two panels side by side (4 vectors), fewer loads of x per FMA; which of the
two runs is timed on each machine (calibration.py, the numbers at TILINGS). On
CPUs with AMX, int8 products of AMX_FROM_ROWS rows or more can run on AMX's tile
registers instead (_matmul_amx, simd.amx_tile: the same panels, x unpacked),
also timed (with_amx).

x is packed too, per block of rows (~ROW_BLOCK_BYTES of x), the rows of a
whole tile (R = the tiling's rows) side by side, so a tile reads one stream
instead of R:

    x block [m, In]  ->  [m / R, In, R]      (TALL_EDGE_ROWS, then EDGE_ROWS, for the last rows % R)

Why: with In = 3072 a row is 3 x 4 KiB, so the six rows a tile reads map to
the same L1 set and the prefetchers follow six streams. The FFN's second
linear (4092 x 3072 @ 3072 x 768, 2 threads, median of 14 per-round ratios to
OpenBLAS) went from 1.09x OpenBLAS's time to 0.97-1.01x, its first
(In = 768) from 0.99x to 0.88-0.95x (tools/bench/bench_kernels.py linears).
The copy is not free (all of that x:
10 ms on one thread, the product 110 ms on two), so each row is packed by
one thread only where there are enough rows: with rows for at least one
block per thread, threads split the rows (each packs only its own); with
fewer, they split the panels (each thread streams its own share of the
weight, which is what a few rows wait on) and each packs the few rows. The
last panel's rows past Out go through a scratch tile, so the tile kernels
(one per shape of TILE_SHAPES) serve every shape of weight.
"""

import mmap
from typing import NamedTuple, Optional

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from . import isa, simd
from .activate import ACT_GELU, activate
from .jit import CONTRACT, SERIAL_WORK, parallel_and_serial
from .reference import ACT_NONE, SMALLEST_SCALE, QuantizedMatrix

ROW_BLOCK_BYTES = 1 << 20  # rows of x per block: about this many bytes of x (see the module docstring)
ALIGN = 64  # bytes: packed panels start on a cache line


def tile_shape(unit=None):
    """(rows, vectors, lanes) of a register tile on this vector unit (see the module docstring)."""
    unit = unit or isa.vector_unit()
    vectors = 2
    return (unit.registers - vectors - 1) // vectors, vectors, unit.lanes


TILE_ROWS, TILE_VECTORS, LANES = tile_shape()
PANEL = TILE_VECTORS * LANES  # output rows per panel = columns of a tile
# The last rows % (a whole tile's rows) go through edge tiles two panels wide (the last panel of an odd count
# alone): as many TALL_EDGE_ROWS-row tiles as fit, then EDGE_ROWS-row ones for the rest. A 2-row
# tile of one panel has 4 accumulators, too few to hide the FMA latency (x86 cores need 8-10 in
# flight: 4-5 cycles x 2 units); 2 rows x 4 vectors have 8 (one thread, a 128 x 3072 weight in L2:
# 4.6 -> 3.4 cycles per panel and k; 2 rows alone 0.73x the time, 8 rows 0.86x, 10-11 rows
# 0.77-0.80x). Each output still sums from its bias over k in order, so a row's result does not
# depend on the tile it lands in, nor on the rows around it.
# Tall edge tiles keep half the registers as accumulators: 4 rows x 4 vectors with AVX-512's 32, and
# with 16 registers the 2-row tile itself (4 rows would spill). Few rows are edge rows only, and a
# tile reads its panels once per tile: 8 rows as two 4-row tiles instead of four 2-row ones (2-core
# AMD EPYC, Zen 4, AVX-512; the 36 products, both kernels alternating in one process, 40 rounds):
# 0.83x the time at 8 rows, 0.81x at 12; 6-row tiles (all 32 registers) 0.96x at 8, 0.79x at 12.
# The EDGE_ROWS tiles remain for what is left, so that the 2 edge rows of 128 are not padded to 4
# (a 4-row tile for them took 1.015x the time at 128 rows). As built, old and new kernels in
# alternating processes, three runs: 8 rows 0.68-0.80x float32, 0.78-1.01x int8; 12 rows 0.72-0.78x.
EDGE_ROWS = 2
TALL_EDGE_ROWS = max(EDGE_ROWS, isa.vector_unit().registers // 2 // (2 * TILE_VECTORS))


class Tiling(NamedTuple):
    """The whole tiles of a product: `rows` rows of x by `panels` panels (1 or 2) of the weight in vector
    registers; with `amx` (int8 only), products of AMX_FROM_ROWS rows or more run on AMX tiles instead."""

    rows: int
    panels: int
    amx: bool = False


# The whole tiles to choose from. TALL: one panel, TILE_ROWS rows (tile_shape). WIDE: two panels and
# as many rows as the registers then hold (6 with AVX-512's 32 registers): fewer loads of x per FMA,
# more of the weight. On a 2-core Intel Xeon with AVX-512 (2 FMA units, AMX) WIDE took 0.96x the
# time of a DistilBERT pass at 1 x 8, 0.92x at 1 x 128 and at 32 x 128 in float32, 0.95x / 0.93x /
# 0.90x in int8 (the two forced by $MINIDISTIL_TILING in alternating processes, 4 rounds). Whether
# that holds on cores with other FMA and load units (Zen 4 splits a 512-bit FMA in two) is not known
# here, so calibration.py times both on each machine, once, and the ops pass the winner to matmul.
# With 16 registers WIDE is only 2 rows, the edge tile itself: not a candidate there (TILINGS),
# though matmul still runs it (a test's way to reach the two-panel loop on any machine). Its tiles
# lengthen each kernel set's one compile by ~2 s (the Xeon: float32 13.1 -> 14.8 s, int8 8.1 ->
# 10.1 s). (Four vectors in one panel of 64 columns instead of two panels gave the same rate at
# many rows but took 1.14-1.23x the time at 1 x 8.) A row's result is the same whichever tile it
# lands in.
TALL = Tiling(TILE_ROWS, 1)
WIDE = Tiling((isa.vector_unit().registers - 2 * TILE_VECTORS - 1) // (2 * TILE_VECTORS), 2)
TILINGS = (TALL, WIDE) if WIDE.rows > TALL_EDGE_ROWS else (TALL,)
# Where the CPU has AMX (isa.amx_int8), int8 has a second choice on top of the vector tiling: AMX
# tiles of AMX_ROWS rows x one panel for every product of AMX_FROM_ROWS rows or more (simd.amx_tile:
# 1024 multiply-adds per instruction against vpdpbusd's 64; the same integers, the same outputs bit
# for bit). AMX_FROM_ROWS is one tile register of rows, the fewest that AMX multiplies without
# padding. Fewer rows stay on the vector tiles: padded to 16 they are bound by streaming the weight,
# which both do alike, and AMX pays for its unit's wake-up after a pause. On a 2-core Intel Xeon
# (int8 passes, alternating processes, back to back): every product on AMX against WIDE, 1 x 8
# 0.89-1.09x over three runs (1.47x with 50 ms of idling before each pass), 1 x 128 0.78x, 32 x 128
# 0.78x; AMX from 16 rows instead of 32, three runs: 1 x 16 0.84-0.88x, 1 x 24 0.84-0.90x (with
# 50 ms of idling 1.14-1.33x, in passes 4-8 times as long as back to back: the pause effect, README).
AMX_ROWS = 2 * simd.AMX_ROWS
AMX_FROM_ROWS = simd.AMX_ROWS


def with_amx(tiling):
    """`tiling` with AMX for the products of AMX_FROM_ROWS rows or more."""
    return tiling._replace(amx=True)


INT8_TILINGS = TILINGS + (tuple(with_amx(tiling) for tiling in TILINGS) if isa.amx_int8() else ())
FLOAT32_TILE = simd.fma_tile(TILE_ROWS, TILE_VECTORS, LANES)  # for kernels of small products (cpu.py's attention)
# Inner indices per 4-byte word of a quantized row, and what an activation's q is stored as (module docstring).
K_GROUP = 4 if isa.byte_dot_product() else 2
# int8 rows are padded to a multiple of IN_MULTIPLE inner indices: K_GROUP, and with the byte dot
# product a whole AMX tile row (64), so that any weight packed for it can run on AMX too (no
# DistilBERT or MiniLM size needs padding: 384, 768, 1536, 3072).
IN_MULTIPLE = simd.AMX_ROW_BYTES if K_GROUP == 4 else K_GROUP
X_DTYPE, X_OFFSET = (np.dtype(np.uint8), 128) if K_GROUP == 4 else (np.dtype(np.int16), 0)


# Every (rows, panels) a tile of matmul can have: whole tiles of TALL and of WIDE (its rows also
# over the last panel of an odd count alone), then edge tiles of one panel or two.
TILE_SHAPES = ((TILE_ROWS, 1), (WIDE.rows, 2), (WIDE.rows, 1),
               (TALL_EDGE_ROWS, 1), (TALL_EDGE_ROWS, 2), (EDGE_ROWS, 1), (EDGE_ROWS, 2))


def _tile_runner(make):
    """A Numba function run(shape, args) calling, with args, the tile make(*shape) for each shape of
    TILE_SHAPES (where two shapes coincide, as WIDE's and the edge tiles' with 16 registers, the
    first). Written out, not built as a chain of one function per shape: the chain took ~1.5 s
    longer to compile per kernel set."""
    ((tall_shape, tall), (wide_shape, wide), (wide_alone_shape, wide_alone), (tall_edge_shape, tall_edge),
     (tall_edge_pair_shape, tall_edge_pair), (edge_shape, edge), (edge_pair_shape, edge_pair)) = \
        ((shape, make(*shape)) for shape in TILE_SHAPES)

    def run(shape, args):
        if shape == tall_shape:
            tall(*args)
        elif shape == wide_shape:
            wide(*args)
        elif shape == wide_alone_shape:
            wide_alone(*args)
        elif shape == tall_edge_shape:
            tall_edge(*args)
        elif shape == tall_edge_pair_shape:
            tall_edge_pair(*args)
        elif shape == edge_shape:
            edge(*args)
        elif shape == edge_pair_shape:
            edge_pair(*args)
        # no other shape reaches here: matmul takes TALL or WIDE only

    return njit(run)


_RUN_F32 = _tile_runner(lambda rows, panels: simd.fma_tile(rows, TILE_VECTORS, LANES, panels))
_RUN_I8 = _tile_runner(lambda rows, panels: simd.madd_tile(rows, TILE_VECTORS, LANES, panels, K_GROUP))


class PackedMatrix(NamedTuple):
    """A weight [Out, In] in panel layout (float32 or int8), as `matmul` takes it."""

    panels: np.ndarray  # float32 [P, In, PANEL] or int8 [P, InG / K_GROUP, PANEL, K_GROUP]
    scales: Optional[np.ndarray]  # int8: float32 [P * PANEL], each output row's scale (0 past Out); else None
    center_weights: Optional[np.ndarray]  # int8: float32 [P * PANEL], QuantizedMatrix.center_weights padded
    sum_starts: Optional[np.ndarray]  # int8: int32 [P * PANEL], -X_OFFSET * the sum of each output row's values
    shape: tuple  # (Out, In)

    @property
    def dtype(self):
        return self.panels.dtype

    @property
    def nbytes(self):
        return self.panels.nbytes + sum(a.nbytes for a in (self.scales, self.center_weights, self.sum_starts)
                                        if a is not None)

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
    size = _nbytes(shape, dtype)
    raw = np.zeros(size + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start : start + size].view(dtype).reshape(shape)


def _huge_page_zeros(nbytes):
    """nbytes zero bytes starting on a page boundary, advised to the OS for huge pages where it takes
    such advice (Linux: transparent huge pages in `madvise` or `always` mode)."""
    if nbytes == 0 or not hasattr(mmap, "MADV_HUGEPAGE"):
        return _aligned_zeros((nbytes,), np.uint8)
    # MAP_PRIVATE: mmap's default mapping is shared memory, which follows a huge-page setting of its own
    # (/sys/kernel/mm/transparent_hugepage/shmem_enabled, off by default).
    memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        memory.madvise(mmap.MADV_HUGEPAGE)
    except OSError:  # a kernel built without huge pages: ordinary pages, same contents
        pass
    return np.frombuffer(memory, np.uint8)


class Arena:
    """Zeroed, ALIGN-aligned arrays carved one after another from one allocation: a model's packed weights.

    Why: a pass over few rows streams every weight from memory once, and on 4 KiB pages that is a
    TLB miss per page. One allocation advised for huge pages (2 MiB on x86) holds them all; numpy
    asks for huge pages only for allocations of 4 MiB and more, which a 768 x 768 float32 panel set
    (2.4 MB) and every int8 one of DistilBERT are not. The 36 int8 products of a DistilBERT pass
    (2-core AMD EPYC, Zen 3, AVX2 + FMA; 2 threads; the same panels in the arena or one array each,
    alternating in one process, 150 rounds): 1 row 0.95x, 8 rows 0.96x the time (advised against
    huge pages instead: 1.02x, 1.02x).
    """

    def __init__(self, nbytes):
        self.buffer = _huge_page_zeros(nbytes)
        self.used = 0

    @classmethod
    def for_matrices(cls, shapes, int8=False):
        """An arena just large enough for weights of these [Out, In] shapes, packed as int8 or float32."""
        return cls(sum(_aligned_size(*_panels_layout(shape, int8)) for shape in shapes))

    def zeros(self, shape, dtype):
        dtype = np.dtype(dtype)
        size, start = _nbytes(shape, dtype), self.used
        if start + size > self.buffer.size:
            raise ValueError(f"arena of {self.buffer.size} bytes: no room for {shape} {dtype} at byte {start}")
        self.used = start + _aligned_size(shape, dtype)
        return self.buffer[start : start + size].view(dtype).reshape(shape)


def _nbytes(shape, dtype):
    return int(np.prod(shape)) * np.dtype(dtype).itemsize


def _aligned_size(shape, dtype):
    """Bytes an array takes in an Arena: its own, rounded up to ALIGN."""
    return -(-_nbytes(shape, dtype) // ALIGN) * ALIGN


def _panels_layout(shape, int8):
    """(shape, dtype) of the panels of a weight [Out, In] packed as int8 or float32 (module docstring)."""
    out_features, in_features = shape
    count = -(-out_features // PANEL)
    if int8:
        return (count, -(-in_features // IN_MULTIPLE) * IN_MULTIPLE // K_GROUP, PANEL, K_GROUP), np.dtype(np.int8)
    return (count, in_features, PANEL), np.dtype(np.float32)


def _panel_zeros(shape, int8, arena):
    layout = _panels_layout(shape, int8)
    return _aligned_zeros(*layout) if arena is None else arena.zeros(*layout)


def _padded(vector, size):
    out = np.zeros(size, np.float32)
    out[: len(vector)] = vector
    return out


def pack_float32(weight, arena=None):
    """weight [Out, In] float32 -> PackedMatrix with panels [P, In, PANEL] (in `arena` when given)."""
    weight = np.asarray(weight, dtype=np.float32)
    panels = _panel_zeros(weight.shape, False, arena)
    count, in_features = panels.shape[:2]
    padded = np.zeros((count * PANEL, in_features), np.float32)
    padded[: weight.shape[0]] = weight
    panels[...] = padded.reshape(count, PANEL, in_features).transpose(0, 2, 1)
    return PackedMatrix(panels, None, None, None, weight.shape)


def pack_int8(values, scales, arena=None):
    """A reference.QuantizedMatrix (int8 values [Out, In], float32 scales [Out]) -> PackedMatrix
    [P, InG / K_GROUP, PANEL, K_GROUP] (the panels in `arena` when given)."""
    matrix = QuantizedMatrix(np.asarray(values, dtype=np.int8), np.asarray(scales, dtype=np.float32))
    out_features, in_features = matrix.shape
    if (127 + X_OFFSET) * 127 * in_features >= 2**31:  # the largest |int32 sum| a tile can reach
        raise ValueError(f"int8 products sum at most {(2**31 - 1) // ((127 + X_OFFSET) * 127)} inputs in int32, "
                         f"got a weight of In = {in_features}")
    panels = _panel_zeros(matrix.shape, True, arena)
    count, steps = panels.shape[:2]
    padded = np.zeros((count * PANEL, K_GROUP * steps), np.int8)
    padded[:out_features, :in_features] = matrix.values
    panels[...] = padded.reshape(count, PANEL, steps, K_GROUP).transpose(0, 2, 1, 3)
    sum_starts = np.int32(-X_OFFSET) * padded.sum(axis=1, dtype=np.int32)  # int32 [P * PANEL]
    return PackedMatrix(panels, _padded(matrix.scales, count * PANEL), _padded(matrix.center_weights(), count * PANEL),
                        sum_starts, (out_features, in_features))


def row_block(in_features, itemsize, tile_rows=TILE_ROWS):
    """Rows of x per block: ~ROW_BLOCK_BYTES of x, a whole number of tiles of tile_rows rows."""
    rows = ROW_BLOCK_BYTES // (in_features * itemsize)
    return max(tile_rows, rows - rows % tile_rows)


# ---------------------------------------------------------------- kernels


def _tile(rows, panel_count, x, x_off, x_stride, x_step, x_affine, row_off, panels, p, w_scale, w_center, w_start, bias,
          c0, out, out_off, out_stride):
    """One register tile from panel p: `rows` rows by panel_count panels from p, a shape of TILE_SHAPES;
    float32 when x_affine is None, else int8.

    Only callable from Numba code: the overload below picks the kernel by the type of x_affine when
    the caller is compiled, so a float32 matmul contains no int8 code and the other way round.
    """
    raise NotImplementedError("_tile is compiled into Numba kernels only")


@overload(_tile)
def _tile_for_types(rows, panel_count, x, x_off, x_stride, x_step, x_affine, row_off, panels, p, w_scale, w_center,
                    w_start, bias, c0, out, out_off, out_stride):
    if isinstance(x_affine, types.NoneType):
        def float32_tile(rows, panel_count, x, x_off, x_stride, x_step, x_affine, row_off, panels, p, w_scale, w_center,
                         w_start, bias, c0, out, out_off, out_stride):
            depth = panels.shape[1]
            _RUN_F32((rows, panel_count),
                     (x, x_off, x_stride, x_step, panels, p * depth * PANEL, bias, c0, out, out_off, out_stride, depth))

        return float32_tile

    def int8_tile(rows, panel_count, x, x_off, x_stride, x_step, x_affine, row_off, panels, p, w_scale, w_center,
                  w_start, bias, c0, out, out_off, out_stride):
        steps = panels.shape[1]
        _RUN_I8((rows, panel_count),
                (x, x_off, x_stride, x_step, x_affine, row_off, panels, p * steps * K_GROUP * PANEL, w_scale, w_center,
                 w_start, bias, c0, out, out_off, out_stride, steps))

    return int8_tile


def _row_packer(group):
    """A kernel packing rows of x side by side, `group` rows at a time (a constant: LLVM unrolls over it):

        pack(x, start, stop, packed, at): packed[at + (g * depth + k) * group + r] = x[start + g * group + r, k]

    depth = x.shape[1]; e.g. rows a, b, group 2 -> a0 b0 a1 b1 a2 b2 ...; rows past `stop` (up
    to a whole group) are zero. Returns the index just past the last group written. (With the
    group a run-time argument of one kernel the same copy took 1.7x as long: 4092 x 3072, 16.9
    vs 10.1 ms; hence one kernel per group, which _rows_packer picks from.)
    The whole groups index with unsigned integers: a signed index gets Numba's wrap-around for
    negative values, which kept LLVM from vectorizing the copy (126 rows, one thread: In = 768
    55 -> 21 us, In = 3072 274 -> 76 us; each of a 1 x 128 pass's products waited for it).
    """
    size = np.uint64(group)

    @njit(cache=True)
    def pack(x, start, stop, packed, at):
        depth = x.shape[1]
        groups = -(-(stop - start) // group)
        for g in range(groups):
            base = at + g * group * depth
            first = start + g * group
            if first + group <= stop:
                rows, out = x[first : first + group], packed[base : base + group * depth]
                for k in range(np.uint64(depth)):
                    for r in range(size):
                        out[k * size + r] = rows[r, k]
            else:
                packed[base : base + group * depth] = 0
                for k in range(depth):
                    for r in range(stop - first):
                        packed[base + k * group + r] = x[first + r, k]
        return at + groups * group * depth

    return pack


def _rows_packer():
    """A Numba function pack_rows(group, x, start, stop, packed, at): _row_packer(group)'s kernel, for the
    heights of TILE_SHAPES (TILE_ROWS, WIDE.rows, TALL_EDGE_ROWS, EDGE_ROWS; the first where two coincide)."""
    tall, wide, tall_edge, edge = (_row_packer(rows) for rows in (TILE_ROWS, WIDE.rows, TALL_EDGE_ROWS, EDGE_ROWS))

    def pack_rows(group, x, start, stop, packed, at):
        if group == TILE_ROWS:
            return tall(x, start, stop, packed, at)
        if group == WIDE.rows:
            return wide(x, start, stop, packed, at)
        if group == TALL_EDGE_ROWS:
            return tall_edge(x, start, stop, packed, at)
        return edge(x, start, stop, packed, at)  # EDGE_ROWS: matmul takes TALL or WIDE only

    return njit(pack_rows)


_pack_rows = _rows_packer()


@njit(cache=True)
def _padded_rows(x, start):
    """x[start:] zero-padded to TILE_ROWS rows: the (scale, center) of the edge rows, which the int8 tiles read."""
    edge = np.zeros((TILE_ROWS, x.shape[1]), x.dtype)
    for i in range(start, x.shape[0]):  # loops, not slices: slice assignment compiles Numba's broadcasting checks
        for j in range(x.shape[1]):
            edge[i - start, j] = x[i, j]
    return edge


def _tile_operands(x, x_affine, edge_start):
    """(x as the 4-byte words a tile reads one at a time, the edge rows' x_affine zero-padded to TILE_ROWS rows).

    float32: (x itself, None). int8: (x [N, InG] of X_DTYPE seen as int32 words, x_affine[edge_start:] padded).
    """
    raise NotImplementedError("_tile_operands is compiled into Numba kernels only")


@overload(_tile_operands)
def _tile_operands_for_types(x, x_affine, edge_start):
    if isinstance(x_affine, types.NoneType):
        return lambda x, x_affine, edge_start: (x, None)
    return lambda x, x_affine, edge_start: (x.view(np.int32), _padded_rows(x_affine, edge_start))


@parallel_and_serial(CONTRACT)
def _matmul(x, x_affine, panels, w_scale, w_center, w_start, bias, act, out, tasks, rows_per_block, tile_rows,
            tile_panels):
    """out = act(x @ wᵀ + bias), out [N, Out] float32, C-contiguous arrays throughout.

    float32: x [N, In], panels [P, In, PANEL]; x_affine, w_scale, w_center, w_start None.
    int8: x X_DTYPE [N, InG] (from _quantize_rows), x_affine [N, 2] (scale, center of each row),
    panels int8 [P, InG / K_GROUP, PANEL, K_GROUP], w_scale, w_center and w_start [P * PANEL]
    (PackedMatrix); the tile dequantizes as it stores.
    Whole tiles are tile_rows x tile_panels (a Tiling). Tasks take whole tiles of rows when each
    gets at least rows_per_block of them, else a share of the panels (module docstring); rows in
    blocks of rows_per_block (whole tiles), each block packed side by side first (_row_packer).
    The panels go in pairs (the last of an odd count alone): each pair's whole tiles, then, with
    the last block, its edge rows (the last rows % tile_rows, in groups of TALL_EDGE_ROWS and then
    EDGE_ROWS) while the pair is still in cache. A second pass over the panels for them streams the
    weights from memory twice (a DistilBERT 1 x 8 pass, 2 threads, 3 runs each: 15.2-16.4 ms with
    the second pass, 13.9-14.9 ms without).
    """
    whole_rows = x.shape[0] - x.shape[0] % tile_rows
    words, edge_affine = _tile_operands(x, x_affine, whole_rows)
    rows, stride = words.shape
    edge_rows = rows - whole_rows
    tall_rows = edge_rows - edge_rows % TALL_EDGE_ROWS  # the edge rows in tall edge tiles
    cols = out.shape[1]
    count = panels.shape[0]
    padded_bias = np.zeros(count * PANEL, np.float32)
    for j in range(bias.shape[0]):
        padded_bias[j] = bias[j]
    split_rows = whole_rows >= tasks * rows_per_block  # else each task takes a share of the panels
    for task in prange(tasks):
        if split_rows:  # tasks own whole tiles of rows and pack only those
            tiles = whole_rows // tile_rows
            r0, r1 = tiles * task // tasks * tile_rows, tiles * (task + 1) // tasks * tile_rows
            first, last = 0, count
        else:
            r0, r1 = 0, whole_rows
            first, last = count * task // tasks, count * (task + 1) // tasks
        blocks = max(1, -(-(r1 - r0) // rows_per_block))  # one (empty) block when there are only edge rows
        # TILE_ROWS bounds both tilings' rows (WIDE's are fewer): the edge rows and any tile in scratch
        packed = np.empty((min(rows_per_block, r1 - r0) + TILE_ROWS + EDGE_ROWS) * stride, words.dtype)
        scratch = np.empty((TILE_ROWS, 2 * PANEL), np.float32)  # a tile that does not fit in `out`
        for block in range(blocks):
            m0, m1 = r0 + block * rows_per_block, min(r0 + (block + 1) * rows_per_block, r1)
            edge_at = _pack_rows(tile_rows, words, m0, m1, packed, 0)
            with_edge = block == blocks - 1 and r1 == whole_rows
            if with_edge:
                short_at = _pack_rows(TALL_EDGE_ROWS, words, whole_rows, whole_rows + tall_rows, packed, edge_at)
                _pack_rows(EDGE_ROWS, words, whole_rows + tall_rows, rows, packed, short_at)
            for q in range(first, last, 2):
                pair = min(2, last - q)
                for p in range(q, q + pair, tile_panels):  # whole tiles: over each panel of the pair, or both
                    tile_count = min(tile_panels, q + pair - p)
                    c0 = p * PANEL
                    width = min(tile_count * PANEL, cols - c0)
                    direct = width == tile_count * PANEL
                    for i in range(m0, m1, tile_rows):
                        dst, dst_off, dst_stride = (out, i * cols + c0, cols) if direct else (scratch, 0, 2 * PANEL)
                        _tile(tile_rows, tile_count, packed, (i - m0) * stride, 1, tile_rows, x_affine, i, panels, p,
                              w_scale, w_center, w_start, padded_bias, c0, dst, dst_off, dst_stride)
                        if not direct:
                            _copy_tile(scratch, out, i, tile_rows, c0, width)
                e = 0
                while with_edge and e < edge_rows:
                    height = TALL_EDGE_ROWS if e < tall_rows else EDGE_ROWS
                    _tile(height, pair, packed, edge_at + e * stride, 1, height, edge_affine, e, panels, q,
                          w_scale, w_center, w_start, padded_bias, q * PANEL, scratch, 0, 2 * PANEL)
                    _copy_tile(scratch, out, whole_rows + e, min(height, edge_rows - e), q * PANEL,
                               min(pair * PANEL, cols - q * PANEL))
                    e += height
            if act != ACT_NONE:  # this task's part of the block, while it is still in cache
                _activate(out, m0, rows if with_edge else m1, first * PANEL, min(last * PANEL, cols), act)


_AMX_START, _AMX_FINISH = simd.amx_configure()
_AMX_HALF, _AMX_WHOLE = simd.amx_tile(1), simd.amx_tile(2)  # AMX_ROWS / 2 rows, AMX_ROWS rows


@njit
def _amx_tile(x_tiles, args):
    """simd.amx_tile(x_tiles)(*args), x_tiles 1 or 2."""
    if x_tiles == 2:
        _AMX_WHOLE(*args)
    else:
        _AMX_HALF(*args)


@parallel_and_serial(CONTRACT)
def _matmul_amx(xq, x_affine, panels, w_scale, w_center, w_start, bias, act, out, tasks, rows_per_block):
    """out = act(x @ wᵀ + bias) on AMX tiles: _matmul's int8 operands, xq uint8 [N', InG] and
    x_affine [N', 2] with N' = N rounded up to a multiple of simd.AMX_ROWS (quantize_rows), InG a
    multiple of simd.AMX_ROW_BYTES (IN_MULTIPLE).

    Tiles are AMX_ROWS x one panel, each task's last possibly half as high. Tasks split the rows where each
    gets rows_per_block of them, else the panels (as in _matmul), and each task runs one tile of rows
    across all its panels, then the next: those rows of x stay in L1 while the panels stream past. (The
    bigger blocks of _matmul made AMX wait on x coming from L2: 2-core Intel Xeon, 2 threads, each
    product against the WIDE tiles; 1024 rows, 768 -> 3072 and 3072 -> 768: 0.84x and 0.57x the time
    with blocks of 1 MiB of x, 0.63x and 0.57x with one tile of rows; 4096 rows: 1.05x and 0.69x, 0.70x
    and 0.62x.) x is not packed: a tile register loads 16 rows at any stride. The tile configuration
    is per thread, so each task loads it (ldtilecfg) and releases it at its end.
    """
    rows, cols = out.shape
    padded_rows = xq.shape[0]
    count, steps = panels.shape[0], panels.shape[1]
    panel_size = steps * K_GROUP * PANEL
    padded_bias = np.zeros(count * PANEL, np.float32)
    for j in range(bias.shape[0]):
        padded_bias[j] = bias[j]
    split_rows = padded_rows >= tasks * rows_per_block
    for task in prange(tasks):
        if split_rows:
            tiles = padded_rows // simd.AMX_ROWS
            r0, r1 = tiles * task // tasks * simd.AMX_ROWS, tiles * (task + 1) // tasks * simd.AMX_ROWS
            first, last = 0, count
        else:
            r0, r1 = 0, padded_rows
            first, last = count * task // tasks, count * (task + 1) // tasks
        sums = np.empty((AMX_ROWS, PANEL), np.int32)
        scratch = np.empty((AMX_ROWS, PANEL), np.float32)  # the tiles of the last panel, when it is partial
        _AMX_START()
        for i in range(r0, r1, AMX_ROWS):
            height = min(AMX_ROWS, r1 - i)
            for p in range(first, last):
                c0 = p * PANEL
                width = min(PANEL, cols - c0)
                stored = max(0, min(height, rows - i))  # the rest are padding rows
                direct = width == PANEL
                dst, dst_off, dst_stride = (out, i * cols + c0, cols) if direct else (scratch, 0, PANEL)
                _amx_tile(height // simd.AMX_ROWS,
                          (xq, i * xq.shape[1], xq.shape[1], x_affine, i, panels, p * panel_size, w_scale,
                           w_center, w_start, padded_bias, c0, dst, dst_off, dst_stride, steps, sums, stored))
                if not direct:
                    _copy_tile(scratch, out, i, stored, c0, width)
            if act != ACT_NONE and i < rows:
                _activate(out, i, min(i + height, rows), first * PANEL, min(last * PANEL, cols), act)
        _AMX_FINISH()


_GELU_IN_PLACE = simd.gelu_range(LANES)


@njit(error_model="numpy", fastmath=CONTRACT, cache=True)
def _activate(out, i0, i1, c0, c1, act):
    """out[i0:i1, c0:c1] = act(itself), in place (activate.py), out C-contiguous.

    GELU, the only costly one, through simd.gelu_range: 16 lanes instead of LLVM's 8 (128 x 3072 on one
    thread of the Xeon: 160-171 us, against 340-346 for the float64 erf it replaced; whole passes of
    DistilBERT at 32 x 128 ~0.985x the time, int8 ~0.96x, the MiniLM corpus 0.96-0.99x).
    The others through a view of each row: indexed out[i, j], the loop did not vectorize (GELU on
    336 x 3072: 7.0 ms, against 2.0 through the view).
    """
    if act == ACT_GELU:
        for i in range(i0, i1):
            _GELU_IN_PLACE(out, i * out.shape[1] + c0, c1 - c0)
        return
    for i in range(i0, i1):
        row = out[i, c0:c1]
        for j in range(row.shape[0]):
            row[j] = activate(row[j], act)


@njit(error_model="numpy", cache=True)
def _copy_tile(scratch, out, i, height, c0, width):
    """out[i:i+height, c0:c0+width] = the valid part of a tile computed into scratch."""
    for r in range(height):
        for j in range(width):
            out[i + r, c0 + j] = scratch[r, j]


_ROW_RANGE = simd.row_range(LANES)


@parallel_and_serial(set())
def _quantize_rows(x, xq, affine):
    """Each row of x [N, In] to int8 values q, stored as q + X_OFFSET in xq X_DTYPE [N, InG] (the padding
    as q = 0), and its (scale, center) [N, 2].

    reference.quantize_rows is the specification, and this must give the very same integers: plain
    float32 arithmetic, no fast-math (max, min, a halving, a subtraction, one multiply and rint
    have one correct result each). The range of each row comes from a vector kernel
    (simd.row_range), and the values through a view of the row with the finite test outside the
    loop, so that both loops vectorize (one thread: 4096 x 768 4.0 -> 1.2 ms, 4096 x 3072 13.8 -> 7.0 ms).
    Each value is clamped as an int32 after rint, not as a float before the conversion: the same
    integers (finite rows only, |value| <= ~2 * 127 with the center's rounding: far inside int32), and
    the loop half as long (the Xeon, one
    thread, 128 x 768: 18.8 -> 9.9 us; the whole kernel 36.6 -> 25.9 us).
    """
    cols = x.shape[1]  # xq and affine may have more rows (quantize_rows): they are left as they are
    half_of, limit, smallest = np.float32(0.5), np.float32(127.0), np.float32(SMALLEST_SCALE)
    low, high, offset = np.int32(-127), np.int32(127), np.int32(X_OFFSET)
    for i in prange(x.shape[0]):
        hi, lo, finite = _ROW_RANGE(x, i * cols, cols)
        center = hi * half_of + lo * half_of
        half = hi * half_of - lo * half_of
        step = half / limit
        scale = step if step >= smallest else np.float32(1.0)
        inverse = np.float32(1.0) / scale
        row, values = x[i], xq[i]
        if finite:
            for j in range(cols):
                values[j] = min(max(np.int32(np.rint((row[j] - center) * inverse)), low), high) + offset
        for j in range(cols if finite else 0, values.shape[0]):  # the padding; all of a row with inf or NaN
            values[j] = X_OFFSET
        affine[i, 0] = scale if finite else np.float32(np.nan)
        affine[i, 1] = center if finite else np.float32(np.nan)


# ---------------------------------------------------------------- entry point


def quantize_rows(x, in_padded, parallel, rows_multiple=1):
    """x [N, In] float32 -> (X_DTYPE [N', in_padded]: each int8 value q as q + X_OFFSET, float32 [N', 2] (scale,
    center) per row); in_padded a multiple of K_GROUP, N' = N rounded up to a multiple of rows_multiple
    (the rows past N: q = 0, scale and center 0).

    The values, scales and centers of reference.quantize_rows.
    """
    rows = x.shape[0]
    padded_rows = -(-rows // rows_multiple) * rows_multiple
    xq = np.empty((padded_rows, in_padded), X_DTYPE)
    affine = np.zeros((padded_rows, 2), np.float32)
    xq[rows:] = X_OFFSET
    (_quantize_rows.parallel if parallel else _quantize_rows.serial)(x, xq, affine)
    return xq, affine


def _foreign_tiling(tiling, int8):
    """The error message for a tiling matmul does not take."""
    accepted = {"TALL": TALL, "WIDE": WIDE}
    if int8 and with_amx(TALL) in INT8_TILINGS:
        accepted.update({f"with_amx({name})": with_amx(value) for name, value in list(accepted.items())})
    expected = ", ".join(f"gemm.{name} {tuple(value)}" for name, value in accepted.items())
    return (f"tiling of {'an int8' if int8 else 'a float32'} product: expected one of {expected} "
            f"(with_amx: int8, where isa.amx_int8(): INT8_TILINGS), got {tiling!r}")


def matmul(x, packed, bias, out, tasks, act=ACT_NONE, tiling=TALL, serial_work=SERIAL_WORK):
    """out = act(x @ wᵀ + bias) for the matrix w in `packed`; x [N, In] float32 C-contiguous, out [N, Out].

    tasks: threads to split the work over (1: this thread only). act: a reference.ACT_CODES value.
    tiling: the whole tiles' shape, TALL or WIDE, and for int8 either with_amx where the CPU has AMX
    (calibration.py picks the fastest here); the results are the same bit for bit. int8 quantizes x
    per row first, on the tasks' threads from serial_work values (the ops' threshold: NumbaOps.serial_work).
    """
    int8 = packed.scales is not None
    # (WIDE even with 16 registers: a test's way into the two-panel loop)
    if tiling not in (TALL, WIDE) and not (int8 and tiling in INT8_TILINGS and tiling.amx):
        raise ValueError(_foreign_tiling(tiling, int8))
    on_amx = tiling.amx and x.shape[0] >= AMX_FROM_ROWS
    tasks = max(1, min(int(tasks), packed.panels.shape[0]))
    x_affine = None
    if int8:
        # serial_work: by default SERIAL_WORK (~43 x 768), the other row-wise kernels' threshold; two threads are
        # faster from ~32 x 768 (the Xeon, 768 and 3072 columns, the pool awake as within a pass: 128 x 768 16.4
        # against 25.9 us, 32 x 768 6.3 against 6.8, 8 x 768 3.6 against 2.0).
        x, x_affine = quantize_rows(x, packed.panels.shape[1] * K_GROUP, tasks > 1 and x.size >= serial_work,
                                    simd.AMX_ROWS if on_amx else 1)
    if on_amx:
        kernel = _matmul_amx.parallel if tasks > 1 else _matmul_amx.serial
        kernel(x, x_affine, packed.panels, packed.scales, packed.center_weights, packed.sum_starts, bias, act, out,
               tasks, row_block(x.shape[1], x.itemsize, AMX_ROWS))
        return out
    kernel = _matmul.parallel if tasks > 1 else _matmul.serial
    kernel(x, x_affine, packed.panels, packed.scales, packed.center_weights, packed.sum_starts, bias, act, out, tasks,
           row_block(x.shape[1], x.itemsize, tiling.rows), tiling.rows, tiling.panels)
    return out
