"""Register-tile kernels of the packed matrix products, written as LLVM vector code, the int8 one
also on AMX's tile registers (amx_tile: inline assembly), and three row kernels at the end: the int8
path's row ranges (row_range), GELU in place (gelu_range) and a sum in a fixed order (row_sum).

A tile is `rows` rows of x times `vectors` vector registers' worth of columns
of a packed weight panel, or of `panels` consecutive panels (gemm.py describes
the layouts and why its edge tiles take two), accumulated over the whole inner
dimension in registers:

    float32 (fma_tile)       acc[i][j] += broadcast(x[i, k]) * w[k, j-th vector]        one FMA per 8/16 products
    int8    (madd_tile)      acc[i][j] += pmaddwd(broadcast(x[i, 2k:2k+2]), w[2k:2k+2, j-th vector])
                             (int16 pairs multiplied and added in pairs into int32: exact), or with
                             AVX-512 VNNI acc[i][j] = vpdpbusd(acc[i][j], broadcast(x[i, 4k:4k+4] + 128), w[4k:4k+4, ...])
                             (unsigned x signed bytes summed in fours into int32: exact too)

Why not plain Numba loops: a tile is only fast if its rows x vectors
accumulators stay in registers for the whole loop, and neither Numba arrays
(heap memory) nor LLVM's auto-vectorizer (it vectorizes one loop, and keeps
accumulators in memory across the loop over k) give that. Here each
accumulator is an SSA vector value (an alloca that LLVM promotes), so the
loop body is exactly: `vectors` loads of the weight, `rows` broadcasts of x,
rows x vectors multiply-adds. The tile shape comes from isa.vector_unit() (see
gemm.tile_shape). `llvm.fmuladd` fuses where the CPU has FMA and is a multiply
and an add where it has not; the int8 pair product is written in portable IR
(sign-extend, multiply, add even and odd lanes), which LLVM's x86 back end
turns into one vpmaddwd (with VNNI, it and the sum into one vpdpwssd); the byte
dot product has no portable form LLVM matches, so it is the x86 intrinsic,
compiled only where isa.byte_dot_product() says the target has it (both checked
in the tests: `tests/test_kernels_int8.py`).

Each factory returns a Numba intrinsic, usable only inside @njit code. Offsets
and strides are in elements of the arrays passed; arrays must be C-contiguous.
"""

import llvmlite.binding as llvm
import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .fastmath import gelu_ir

# The weight is read PREFETCH_BYTES ahead of use: with few rows of x a tile streams its panel
# from memory, faster than the hardware prefetcher alone fetches it (1 thread, 8 rows, the 36
# weights of DistilBERT, 170 MB: 23.5-25.9 ms against 26.4-31.4 without, three runs each).
# Every cache line of a k-step is prefetched: a float32 k-step of an AVX-512 panel is two lines,
# and one prefetch per k-step left every other line to the hardware (2-core AMD EPYC, Zen 4,
# AVX-512; the 36 products, 2 threads, both kinds in one process alternating, median of 30
# per-round ratios, two runs: 1 row 0.92x / 0.90x the time, 8 rows 0.91x / 0.94x, 128 rows
# 0.91x / 0.96x; 4096 bytes ahead instead of 2048: 0.99-1.02x). With AVX2 a float32 k-step is one line.
PREFETCH_BYTES = 2048
# A tile also prefetches its output lines, for writing, before its loop over k: its stores at the end
# then find them in cache instead of each waiting on a read for ownership (rows a whole output row
# apart: 12 KiB for FFN1, so each on a page of its own). Measured on a 2-core Intel Xeon with AVX-512
# (2 FMA units, AMX; old and new kernels in alternating processes, 6 rounds): whole passes at 32 x 128
# 0.94x the time in float32, 0.85x in int8; 1 x 8 and 1 x 128 unchanged (1.00x, 0.99x). One linear at
# 4092 rows, one thread, against OpenBLAS: 768 -> 768 1.13-1.14x -> 1.07-1.08x, FFN1 1.16x -> 1.10-1.13x.
CACHE_LINE = 64
I32 = ir.IntType(32)
I64 = ir.IntType(64)


def _data(context, builder, array_type, array):
    """The pointer to element 0 of a Numba array argument."""
    return context.make_array(array_type)(context, builder, array).data


def _at(builder, pointer, offset, element_type=None):
    """&pointer[offset], as a pointer to element_type (pointer's own type when None)."""
    address = builder.gep(pointer, [offset])
    return address if element_type is None else builder.bitcast(address, element_type.as_pointer())


def _load(builder, pointer, offset, vector_type, align):
    return builder.load(_at(builder, pointer, offset, vector_type), align=align)


def _store(builder, value, pointer, offset, align):
    builder.store(value, _at(builder, pointer, offset, value.type), align=align)


def _splat(builder, scalar, lanes):
    """<lanes x T> with every lane = scalar."""
    vector_type = ir.VectorType(scalar.type, lanes)
    one = builder.insert_element(ir.Constant(vector_type, ir.Undefined), scalar, I32(0))
    return builder.shuffle_vector(one, ir.Constant(vector_type, ir.Undefined), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def _fmuladd(builder, a, b, c):
    """a * b + c, element-wise, fused where the target has FMA."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(a.type, [a.type] * 3),
                                        f"llvm.fmuladd.v{a.type.count}f32")
    return builder.call(fn, [a, b, c])


def _pair_products(builder, a, b):
    """<2n x i16> a, b -> <n x i32>: a[2l] b[2l] + a[2l+1] b[2l+1] (pmaddwd on x86), exact."""
    n = a.type.count // 2
    wide = ir.VectorType(I32, 2 * n)
    product = builder.mul(builder.sext(a, wide), builder.sext(b, wide))
    undef = ir.Constant(wide, ir.Undefined)
    even = builder.shuffle_vector(product, undef, ir.Constant(ir.VectorType(I32, n), list(range(0, 2 * n, 2))))
    odd = builder.shuffle_vector(product, undef, ir.Constant(ir.VectorType(I32, n), list(range(1, 2 * n, 2))))
    return builder.add(even, odd)


def _prefetch(builder, pointer, offset, write=False):
    """Start loading the cache line of &pointer[offset], for writing when `write` (prefetchw on x86, where the
    CPU has it); no effect on results, never faults."""
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, I32, I32, I32]),
                                        "llvm.prefetch.p0i8")
    builder.call(fn, [builder.bitcast(_at(builder, pointer, offset), i8p), I32(int(write)), I32(3), I32(1)])


def _prefetch_rows(builder, pointer, offset, stride, rows, row_bytes, itemsize):
    """Prefetch for writing each cache line of `rows` rows of `row_bytes` from &pointer[offset], `stride` elements apart."""
    for i in range(rows):
        row = builder.add(offset, builder.mul(I64(i), stride))
        for line in range(0, row_bytes, CACHE_LINE):
            _prefetch(builder, pointer, builder.add(row, I64(line // itemsize)), write=True)


def _prefetch_ahead(builder, pointer, offset, step_bytes, itemsize):
    """Prefetch the `step_bytes` of a k-step PREFETCH_BYTES ahead of &pointer[offset]: each cache line of it."""
    for line in range(0, max(step_bytes, CACHE_LINE), CACHE_LINE):
        _prefetch(builder, pointer, builder.add(offset, I64((PREFETCH_BYTES + line) // itemsize)))


def _accumulators(builder, vector_type, rows, vectors):
    return [[cgutils.alloca_once(builder, vector_type) for _ in range(vectors)] for _ in range(rows)]


def _panel_starts(builder, w_off, depth, step, panels):
    """The offsets in w of `panels` consecutive packed panels from w_off, each `depth` k-steps of `step` elements."""
    size = builder.mul(depth, I64(step))
    return [builder.add(w_off, builder.mul(I64(q), size)) for q in range(panels)]


def fma_tile(rows, vectors, lanes, panels=1):
    """A float32 tile kernel of `rows` x (panels * vectors * lanes):

        tile(x, x_off, x_stride, x_step, w, w_off, bias, col_off, out, out_off, out_stride, depth)

    out[i, q width + j] = bias[col_off + q width + j]
                          + sum_k x[x_off + i x_stride + k x_step] * w[w_off + (q depth + k) width + j]
    for i < rows, q < panels, j < width = vectors * lanes, k < depth, summed in that order of k
    from the bias, whatever the tile's shape: w is `panels` consecutive packed panels (depth,
    width), x rows of a matrix (x_step 1) or rows packed side by side (x_stride 1, x_step rows:
    gemm.py).
    """
    width = vectors * lanes

    @intrinsic
    def tile(typingctx, x, x_off, x_stride, x_step, w, w_off, bias, col_off, out, out_off, out_stride, depth):
        sig = types.void(x, x_off, x_stride, x_step, w, w_off, bias, col_off, out, out_off, out_stride, depth)

        def codegen(context, builder, signature, args):
            x, x_off, x_stride, x_step, w, w_off, bias, col_off, out, out_off, out_stride, depth = args
            xt, _, _, _, wt, _, bt, _, ot, _, _, _ = signature.args
            xp, wp, bp, op = (_data(context, builder, t, a) for t, a in ((xt, x), (wt, w), (bt, bias), (ot, out)))
            vec = ir.VectorType(ir.FloatType(), lanes)
            starts = _panel_starts(builder, w_off, depth, width, panels)
            columns = panels * vectors  # vector j of a row: columns j lanes ... of the output, in panel j // vectors
            acc = _accumulators(builder, vec, rows, columns)
            for j in range(columns):  # start from the bias: no pass over the output afterwards
                b = _load(builder, bp, builder.add(col_off, I64(j * lanes)), vec, 4)
                for i in range(rows):
                    builder.store(b, acc[i][j])
            x_rows = [builder.add(x_off, builder.mul(I64(i), x_stride)) for i in range(rows)]
            _prefetch_rows(builder, op, out_off, out_stride, rows, 4 * columns * lanes, 4)  # (PREFETCH_BYTES above)
            with cgutils.for_range(builder, depth) as loop:
                k = loop.index
                w_k = [builder.add(start, builder.mul(k, I64(width))) for start in starts]
                for w_qk in w_k:
                    _prefetch_ahead(builder, wp, w_qk, 4 * width, 4)
                wv = [_load(builder, wp, builder.add(w_k[j // vectors], I64(j % vectors * lanes)), vec, 4)
                      for j in range(columns)]
                x_k = builder.mul(k, x_step)
                for i in range(rows):
                    xv = _splat(builder, builder.load(_at(builder, xp, builder.add(x_rows[i], x_k))), lanes)
                    for j in range(columns):
                        builder.store(_fmuladd(builder, xv, wv[j], builder.load(acc[i][j])), acc[i][j])
            for i in range(rows):
                row = builder.add(out_off, builder.mul(I64(i), out_stride))
                for j in range(columns):
                    _store(builder, builder.load(acc[i][j]), op, builder.add(row, I64(j * lanes)), 4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _byte_dots(builder, acc, x_words, w_words):
    """acc + (the four unsigned bytes of each int32 lane of x_words) . (the four signed bytes of w_words'),
    <16 x i32> each: one vpdpbusd (AVX-512 VNNI), exact (no intermediate saturation)."""
    vec = acc.type
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), "llvm.x86.avx512.vpdpbusd.512")
    return builder.call(fn, [acc, x_words, w_words])


def _dequantize_store(builder, sums, ap, row_off, swp, cwp, bp, col_off, op, out_off, out_stride):
    """out[out_off + i out_stride + j-th vector] = float32(sums[i][j]) * (scale_i * w_scale[col])
    + (center_i * w_center[col] + bias[col]), col = col_off + the vector's columns, (scale_i, center_i)
    = x_affine[row_off + i] (ap: its pointer): the int8 tiles' way out, one formula for all of them
    (madd_tile's, amx_tile's), so a row's result does not depend on the tile it went through."""
    lanes = sums[0][0].type.count
    vec = ir.VectorType(ir.FloatType(), lanes)
    affine = [[_splat(builder, builder.load(_at(builder, ap, builder.add(builder.add(row_off, row_off),
                                                                           I64(2 * i + part)))), lanes)
               for part in (0, 1)] for i in range(len(sums))]  # (scale, center) of each row, broadcast
    for j in range(len(sums[0])):
        col = builder.add(col_off, I64(j * lanes))
        w_scale_j, w_center_j, bias_j = (_load(builder, p, col, vec, 4) for p in (swp, cwp, bp))
        for i, (x_scale_i, x_center_i) in enumerate(affine):
            value = builder.sitofp(sums[i][j], vec)
            shift = _fmuladd(builder, x_center_i, w_center_j, bias_j)
            y = _fmuladd(builder, value, builder.fmul(x_scale_i, w_scale_j), shift)
            _store(builder, y, op, builder.add(builder.add(out_off, builder.mul(I64(i), out_stride)), I64(j * lanes)), 4)


def madd_tile(rows, vectors, lanes, panels=1, group=2):
    """An int8 tile kernel of `rows` x (panels * vectors * lanes), exact int32 sums, dequantized on the way out:

        tile(xq, x_off, x_stride, x_step, x_affine, row_off, wq, w_off, w_scale, w_center, w_start, bias, col_off,
             out, out_off, out_stride, steps)

    xq holds `group` consecutive inner indices of a row in each 4-byte word, and the tile reads it
    as int32 words: group 2, int16 pairs of int8 values (pair products, pmaddwd); group 4, unsigned
    bytes q + 128 (the byte dot product, vpdpbusd, 16 lanes only: isa.byte_dot_product). wq is int8
    packed as (steps, width, group): `group` consecutive k of one column side by side; with several
    panels, column j of the tile is column j % width of the (j // width)-th panel after w_off.

    sum[i, j] = w_start[col_off + j] + sum over steps k of xq[x_off + i x_stride + k x_step] . wq[..k, j, :]
    (w_start is -128 sum_k w[j, k] with group 4, which takes the + 128 back out, and 0 with group 2), then
    out[out_off + i out_stride + j] = float32(sum[i, j]) * (scale_i * w_scale[col_off + j])
                                      + (center_i * w_center[col_off + j] + bias[col_off + j])
    with (scale_i, center_i) = x_affine[row_off + i] (reference.dequantize is the formula).
    """
    if group not in (2, 4) or (group == 4 and lanes != 16):
        raise ValueError(f"int8 tiles take pairs, or quads with 16 lanes; got group {group}, {lanes} lanes")
    width = vectors * lanes

    @intrinsic
    def tile(typingctx, xq, x_off, x_stride, x_step, x_affine, row_off, wq, w_off, w_scale, w_center, w_start, bias,
             col_off, out, out_off, out_stride, steps):
        sig = types.void(xq, x_off, x_stride, x_step, x_affine, row_off, wq, w_off, w_scale, w_center, w_start, bias,
                         col_off, out, out_off, out_stride, steps)

        def codegen(context, builder, signature, args):
            (xq, x_off, x_stride, x_step, x_affine, row_off, wq, w_off, w_scale, w_center, w_start, bias, col_off,
             out, out_off, out_stride, steps) = args
            t = signature.args
            xp, ap, wp, swp, cwp, zp, bp, op = (_data(context, builder, t[n], args[n]) for n in (0, 4, 6, 8, 9, 10, 11, 13))
            acc_type = ir.VectorType(I32, lanes)
            pair_type = ir.VectorType(ir.IntType(16), 2 * lanes)
            starts = _panel_starts(builder, w_off, steps, group * width, panels)
            columns = panels * vectors  # as in fma_tile
            acc = _accumulators(builder, acc_type, rows, columns)
            for j in range(columns):
                start = _load(builder, zp, builder.add(col_off, I64(j * lanes)), acc_type, 4)
                for i in range(rows):
                    builder.store(start, acc[i][j])
            x_rows = [builder.add(x_off, builder.mul(I64(i), x_stride)) for i in range(rows)]
            _prefetch_rows(builder, op, out_off, out_stride, rows, 4 * columns * lanes, 4)  # as fma_tile
            with cgutils.for_range(builder, steps) as loop:
                k = loop.index
                w_k = [builder.add(start, builder.mul(k, I64(group * width))) for start in starts]
                for w_qk in w_k:
                    _prefetch_ahead(builder, wp, w_qk, group * width, 1)
                w_at = [builder.add(w_k[j // vectors], I64(group * (j % vectors) * lanes)) for j in range(columns)]
                if group == 4:  # each int32 lane: the four k of one column
                    wv = [_load(builder, wp, at, acc_type, 1) for at in w_at]
                else:  # each pair of int16 lanes: the two k of one column, widened from int8
                    wv = [builder.sext(_load(builder, wp, at, ir.VectorType(ir.IntType(8), 2 * lanes), 1), pair_type)
                          for at in w_at]
                x_k = builder.mul(k, x_step)
                for i in range(rows):
                    # the 4 bytes of x[i] at step k (its `group` inner indices) as one int32, in every lane
                    xv = _splat(builder, builder.load(_at(builder, xp, builder.add(x_rows[i], x_k), I32), align=4), lanes)
                    for j in range(columns):
                        a = builder.load(acc[i][j])
                        if group == 4:
                            a = _byte_dots(builder, a, xv, wv[j])
                        else:
                            a = builder.add(a, _pair_products(builder, builder.bitcast(xv, pair_type), wv[j]))
                        builder.store(a, acc[i][j])
            sums = [[builder.load(acc[i][j]) for j in range(columns)] for i in range(rows)]
            _dequantize_store(builder, sums, ap, row_off, swp, cwp, bp, col_off, op, out_off, out_stride)
            return context.get_dummy_value()

        return sig, codegen

    return tile


# ---------------------------------------------------------------- AMX

# AMX's tile registers are 8 matrices of 16 rows x 64 bytes; tdpbusd adds to an int32 tile C [16, 16]
# the products of a tile of unsigned bytes A [16 rows, 64 k] and one of signed bytes B [16 k-quads,
# 16 columns x 4 k], each int32 the sum of 64 byte products: exact, as vpdpbusd's (1024 multiply-adds
# per instruction instead of 64). B is exactly a 16-column half of an int8 panel with the byte dot
# product's layout ([steps, 32, 4]: gemm.py), read 16 k-steps at a time with a stride of 128 bytes, and
# A is 16 rows of the quantized x as they are stored: neither is copied. Registers here: sums
# tmm0-tmm3, x tmm4-tmm5, weights tmm6-tmm7.
AMX_ROWS = 16
AMX_ROW_BYTES = 64
llvm.initialize_native_asmparser()  # LLVM parses inline assembly with it; Numba initializes only the code generator
_X_TILES, _W_TILES = (4, 5), (6, 7)


def _sum_tile(a, half):
    return 2 * a + half


def _asm(builder, text, operands=()):
    """One instruction as inline assembly ($0, $1: the operands, in registers). Side effects and a memory
    clobber: LLVM neither drops nor reorders them (it knows nothing of the tile registers)."""
    constraints = ",".join(["r"] * len(operands) + ["~{memory}"])
    fn_type = ir.FunctionType(ir.VoidType(), [operand.type for operand in operands])
    builder.call(ir.InlineAsm(fn_type, text, constraints, side_effect=True), list(operands))


def _byte_pointer(builder, pointer, offset):
    return builder.gep(builder.bitcast(pointer, ir.IntType(8).as_pointer()), [offset])


def amx_configure():
    """amx_start(): load the tile configuration this module's tiles use (palette 1: every register 16 rows
    x 64 bytes) into the calling thread's tile state: once per thread before its first tile, since the
    configuration is per thread; amx_finish() after the last."""

    @intrinsic
    def amx_start(typingctx):
        def codegen(context, builder, signature, args):
            config = bytearray(64)  # the 64-byte operand of ldtilecfg: palette, then colsb[16] (u16), rows[16] (u8)
            config[0] = 1
            for register in range(8):
                config[16 + 2 * register] = AMX_ROW_BYTES
                config[48 + register] = AMX_ROWS
            slot = cgutils.alloca_once(builder, ir.ArrayType(ir.IntType(8), 64))
            builder.store(ir.Constant(slot.type.pointee, config), slot)
            _asm(builder, "ldtilecfg ($0)", [builder.bitcast(slot, ir.IntType(8).as_pointer())])
            return context.get_dummy_value()

        return types.void(), codegen

    @intrinsic
    def amx_finish(typingctx):
        def codegen(context, builder, signature, args):
            _asm(builder, "tilerelease")  # the thread's tile state back to its initial state
            return context.get_dummy_value()

        return types.void(), codegen

    return amx_start, amx_finish


def amx_tile(x_tiles):
    """An int8 tile kernel on AMX of 16 x_tiles rows x one panel of 32 columns (x_tiles 1 or 2), exact
    int32 sums, dequantized on the way out:

        tile(xq, x_off, x_stride, x_affine, row_off, wq, w_off, w_scale, w_center, w_start, bias, col_off,
             out, out_off, out_stride, steps, sums, stored_rows)

    xq holds rows of unsigned bytes q + 128 (x_off and x_stride in bytes), wq one packed int8 panel
    [steps, 32, 4] from w_off, steps a multiple of 16 (a tile's 64 k); the configuration of
    amx_configure must be loaded. sums is int32 scratch [32, 32], where the tiles' sums leave the tile
    registers. Only the first stored_rows rows go to out: the tile's rows past a product's last are
    padding (stored to scratch and copied, they had cost a 1 x 8 pass with every product on AMX 16% of
    its time). The result is madd_tile's with group 4, bit for bit: the same int32 sums, plus w_start,
    dequantized by the same instructions (_dequantize_store).
    """
    rows = AMX_ROWS * x_tiles
    half = AMX_ROWS  # columns of a weight tile: half a panel

    @intrinsic
    def tile(typingctx, xq, x_off, x_stride, x_affine, row_off, wq, w_off, w_scale, w_center, w_start, bias, col_off,
             out, out_off, out_stride, steps, sums, stored_rows):
        sig = types.void(xq, x_off, x_stride, x_affine, row_off, wq, w_off, w_scale, w_center, w_start, bias, col_off,
                         out, out_off, out_stride, steps, sums, stored_rows)

        def codegen(context, builder, signature, args):
            (xq, x_off, x_stride, x_affine, row_off, wq, w_off, w_scale, w_center, w_start, bias, col_off,
             out, out_off, out_stride, steps, sums, stored_rows) = args
            t = signature.args
            xp, ap, wp, swp, cwp, zp, bp, op, sp = (_data(context, builder, t[n], args[n])
                                                     for n in (0, 3, 5, 7, 8, 9, 10, 12, 16))
            panel_row = I64(4 * 2 * half)  # bytes of a k-step of the panel: 32 columns x 4 k
            for a in range(x_tiles):
                for h in range(2):
                    _asm(builder, f"tilezero %tmm{_sum_tile(a, h)}")
            with cgutils.for_range(builder, builder.udiv(steps, I64(AMX_ROWS))) as loop:
                k_bytes = builder.mul(loop.index, I64(AMX_ROW_BYTES))
                for a in range(x_tiles):
                    start = builder.add(builder.add(x_off, builder.mul(I64(a * AMX_ROWS), x_stride)), k_bytes)
                    _asm(builder, f"tileloadd ($0,$1,1), %tmm{_X_TILES[a]}", [_byte_pointer(builder, xp, start), x_stride])
                w_k = builder.add(w_off, builder.mul(loop.index, builder.mul(I64(AMX_ROWS), panel_row)))
                for h in range(2):
                    start = builder.add(w_k, I64(4 * half * h))
                    _asm(builder, f"tileloadd ($0,$1,1), %tmm{_W_TILES[h]}", [_byte_pointer(builder, wp, start), panel_row])
                for a in range(x_tiles):
                    for h in range(2):
                        _asm(builder, f"tdpbusd %tmm{_W_TILES[h]}, %tmm{_X_TILES[a]}, %tmm{_sum_tile(a, h)}")
            sum_row = I64(4 * 2 * half)  # bytes of a row of sums: 32 int32
            for a in range(x_tiles):
                for h in range(2):
                    start = I64(4 * (a * AMX_ROWS * 2 * half + h * half))
                    _asm(builder, f"tilestored %tmm{_sum_tile(a, h)}, ($0,$1,1)", [_byte_pointer(builder, sp, start), sum_row])
            acc_type = ir.VectorType(I32, half)
            starts = [_load(builder, zp, builder.add(col_off, I64(h * half)), acc_type, 4) for h in range(2)]
            for i in range(rows):
                with builder.if_then(builder.icmp_signed("<", I64(i), stored_rows)):
                    totals = [builder.add(_load(builder, sp, I64(i * 2 * half + h * half), acc_type, 4), starts[h])
                              for h in range(2)]
                    _dequantize_store(builder, [totals], ap, builder.add(row_off, I64(i)), swp, cwp, bp, col_off, op,
                                      builder.add(out_off, builder.mul(I64(i), out_stride)), out_stride)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _run_kernel(return_type, emit):
    """A Numba intrinsic kernel(x, offset, n) on the float32 run x[offset : offset + n], x C-contiguous:
    emit(context, builder, return_type, xp, offset, n) writes its body (xp: the pointer to x[0]) and returns
    its value, None for a kernel that returns nothing. Any other dtype is a typing error at the call."""

    @intrinsic
    def kernel(typingctx, x, offset, n):
        if getattr(x, "dtype", None) != types.float32:
            return None

        def codegen(context, builder, signature, args):
            x, offset, n = args
            xp = _data(context, builder, signature.args[0], x)
            value = emit(context, builder, signature.return_type, xp, offset, n)
            return context.get_dummy_value() if value is None else value

        return return_type(x, offset, n), codegen

    return kernel


def row_range(lanes):
    """A kernel for the range of a float32 row, in vectors of `lanes`:

        range_of(x, offset, n) -> (hi, lo, finite)

    hi and lo are the max and min of x[offset : offset + n] (n >= 1), finite whether all of them
    are (no inf, no NaN). Exact: max and min have one result in any order (the order only picks
    between -0.0 and +0.0, which compare equal). The comparisons pass NaNs over, so hi and lo
    mean something only where finite. Why a kernel: Numba's max and min are a compare and a
    select, which LLVM vectorizes only under fast-math flags Numba does not put on the select
    (as a scalar loop: ~2.5 cycles a float, two thirds of the time quantizing a row took).
    """

    def emit(context, builder, return_type, xp, offset, n):
        f32, bit = ir.FloatType(), ir.IntType(1)
        vec, bits = ir.VectorType(f32, lanes), ir.VectorType(bit, lanes)
        fabs = {t: cgutils.get_or_insert_function(builder.module, ir.FunctionType(t, [t]), name)
                for t, name in ((vec, f"llvm.fabs.v{lanes}f32"), (f32, "llvm.fabs.f32"))}

        def below_infinity(value):  # |value| < inf: false for inf and NaN
            infinity = ir.Constant(value.type, [float("inf")] * lanes if value.type == vec else float("inf"))
            return builder.fcmp_ordered("<", builder.call(fabs[value.type], [value]), infinity)

        def fold(slots, value, finite):  # the (hi, lo, finite) in slots, updated with a value (vector or scalar)
            hi, lo, all_finite = (builder.load(slot) for slot in slots)
            builder.store(builder.select(builder.fcmp_ordered(">", value, hi), value, hi), slots[0])
            builder.store(builder.select(builder.fcmp_ordered("<", value, lo), value, lo), slots[1])
            builder.store(builder.and_(all_finite, finite), slots[2])

        first = builder.load(_at(builder, xp, offset))
        vector_slots = [cgutils.alloca_once(builder, t) for t in (vec, vec, bits)]
        for slot, value in zip(vector_slots, (_splat(builder, first, lanes), _splat(builder, first, lanes),
                                              ir.Constant(bits, [1] * lanes))):
            builder.store(value, slot)
        chunks = builder.udiv(n, I64(lanes))
        with cgutils.for_range(builder, chunks) as loop:
            v = _load(builder, xp, builder.add(offset, builder.mul(loop.index, I64(lanes))), vec, 4)
            fold(vector_slots, v, below_infinity(v))
        hi_v, lo_v, finite_v = (builder.load(slot) for slot in vector_slots)
        slots = [cgutils.alloca_once(builder, t) for t in (f32, f32, bit)]
        for slot, value in zip(slots, (first, first, ir.Constant(bit, 1))):
            builder.store(value, slot)
        for lane in range(lanes):  # the vectors' lanes into one hi, lo and finite
            fold(slots, builder.extract_element(hi_v, I32(lane)), builder.extract_element(finite_v, I32(lane)))
            fold(slots, builder.extract_element(lo_v, I32(lane)), ir.Constant(bit, 1))
        done = builder.mul(chunks, I64(lanes))
        with cgutils.for_range(builder, builder.sub(n, done)) as loop:  # the last n % lanes floats
            value = builder.load(_at(builder, xp, builder.add(offset, builder.add(done, loop.index))))
            fold(slots, value, below_infinity(value))
        return context.make_tuple(builder, return_type, [builder.load(slot) for slot in slots])

    return _run_kernel(types.Tuple((types.float32, types.float32, types.boolean)), emit)


def gelu_range(lanes):
    """GELU in place over a float32 run, in vectors of `lanes`:

        gelu_in_place(x, offset, n)    x[offset : offset + n] = gelu(itself)   (x C-contiguous)

    The formula is fastmath.gelu_ir, the one activate.py's scalar GELU uses, so the results are the same
    bits. Why a kernel: LLVM vectorizes a loop of the scalar one 8 lanes wide on AVX-512 (its cost model
    prefers 256-bit vectors for float32 there); `lanes` vectors take 16. Measured on the Xeon, one
    thread, 128 x 3072 values: see gemm._activate.
    """

    def emit(context, builder, return_type, xp, offset, n):
        vec = ir.VectorType(ir.FloatType(), lanes)
        chunks = builder.udiv(n, I64(lanes))
        with cgutils.for_range(builder, chunks) as loop:
            at = builder.add(offset, builder.mul(loop.index, I64(lanes)))
            _store(builder, gelu_ir(builder, _load(builder, xp, at, vec, 4)), xp, at, 4)
        done = builder.add(offset, builder.mul(chunks, I64(lanes)))
        with cgutils.for_range(builder, builder.sub(n, builder.mul(chunks, I64(lanes)))) as loop:  # n % lanes
            element = _at(builder, xp, builder.add(done, loop.index))
            builder.store(gelu_ir(builder, builder.load(element)), element)

    return _run_kernel(types.void, emit)


SUM_LANES, SUM_VECTOR = 16, 8  # row_sum's partial sums, in vectors of 8: the same on every machine


def row_sum():
    """A kernel for the sum of a float32 run whose order does not depend on the run's length:

        sum_of(x, offset, n) -> float32      x[offset] + ... + x[offset + n - 1]

    Element t goes into partial sum t % SUM_LANES (vectors of SUM_VECTOR lanes), the last n % SUM_LANES
    through masked loads that read zeros past the end, and the partial sums are then added in a fixed
    tree (the second vector onto the first, then halves: 4 + 4, 2 + 2, 1 + 1). So zeros appended to a
    run leave its sum the same bits: the softmax's masked keys (exp gives exactly 0), which is what makes
    a text's attention independent of the padding its batch gives it. (The reassociating loop before it
    split a row into vectors and a scalar tail by its length: a QA score differed by 1.4e-6 between a
    text alone and in a batch of two.) Why vectors of 8 even with AVX-512: the softmax has just stored
    the row 8 lanes at a time, and a 16-lane load across two such stores waits for them to reach the
    cache instead of being forwarded (softmax of 128 x 128 scores, one thread: 16.0 us against 10.7).
    """

    def emit(context, builder, return_type, xp, offset, n):
        vec = ir.VectorType(ir.FloatType(), SUM_VECTOR)
        zeros = ir.Constant(vec, [0.0] * SUM_VECTOR)
        parts = SUM_LANES // SUM_VECTOR
        totals = [cgutils.alloca_once(builder, vec) for _ in range(parts)]
        for total in totals:
            builder.store(zeros, total)
        chunks = builder.udiv(n, I64(SUM_LANES))
        with cgutils.for_range(builder, chunks) as loop:
            at = builder.add(offset, builder.mul(loop.index, I64(SUM_LANES)))
            for j, total in enumerate(totals):
                value = _load(builder, xp, builder.add(at, I64(j * SUM_VECTOR)), vec, 4)
                builder.store(builder.fadd(builder.load(total), value), total)
        done = builder.mul(chunks, I64(SUM_LANES))
        left = builder.trunc(builder.sub(n, done), I32)  # < SUM_LANES
        bits = ir.VectorType(ir.IntType(1), SUM_VECTOR)
        masked_load = builder.module.declare_intrinsic(
            f"llvm.masked.load.v{SUM_VECTOR}f32.p0v{SUM_VECTOR}f32",
            fnty=ir.FunctionType(vec, [vec.as_pointer(), I32, bits, vec]))
        for j, total in enumerate(totals):  # the tail: lanes past n read as zeros (and are never touched)
            lane_ids = ir.Constant(ir.VectorType(I32, SUM_VECTOR), [j * SUM_VECTOR + lane for lane in range(SUM_VECTOR)])
            mask = builder.icmp_signed("<", lane_ids, _splat(builder, left, SUM_VECTOR))
            pointer = _at(builder, xp, builder.add(builder.add(offset, done), I64(j * SUM_VECTOR)), vec)
            value = builder.call(masked_load, [pointer, I32(4), mask, zeros])
            builder.store(builder.fadd(builder.load(total), value), total)
        value = builder.load(totals[0])
        for total in totals[1:]:
            value = builder.fadd(value, builder.load(total))
        width = SUM_VECTOR
        while width > 1:  # the upper half onto the lower, in a fixed order
            width //= 2
            half_type = ir.VectorType(I32, width)
            lower = builder.shuffle_vector(value, value, ir.Constant(half_type, list(range(width))))
            upper = builder.shuffle_vector(value, value, ir.Constant(half_type, list(range(width, 2 * width))))
            value = builder.fadd(lower, upper)
        return builder.extract_element(value, I32(0))

    return _run_kernel(types.float32, emit)
