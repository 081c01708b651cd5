"""The whole-tile choice (kernels/calibration.py): timed once per machine, kept in the warm-up's stamp,
overridable by $MINIDISTIL_TILING, and passed by the ops to every packed product."""

import json

import numpy as np
import pytest

pytest.importorskip("numba")
from minidistil.kernels import calibration, cpu, gemm, warmup  # noqa: E402
from minidistil.kernels.reference import quantize_matrix  # noqa: E402


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_the_choice_is_one_of_the_candidates_with_the_ratios_it_came_from(int8):
    import numba

    numba.set_num_threads(1)  # what a threads=1 model leaves on its thread: choose times on all, then puts it back
    try:
        tiling, ratios = calibration.choose(int8)
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    candidates = calibration.candidates(int8)
    assert tiling in candidates
    vector = gemm.WIDE if "wide" in ratios and np.prod(list(ratios["wide"].values())) < 1 else gemm.TALL
    expected_ratios = {"wide"} if gemm.WIDE in candidates else set()
    if gemm.with_amx(vector) in candidates:
        expected_ratios.add(calibration.name(gemm.with_amx(vector)))
    assert set(ratios) == expected_ratios
    for by_product in ratios.values():
        assert set(by_product) == {f"{i}->{o}" for _, i, o in calibration.PRODUCTS} and all(r > 0 for r in by_product.values())
    amx_ratios = ratios.get(calibration.name(gemm.with_amx(vector)))
    assert tiling == (gemm.with_amx(vector) if amx_ratios and np.prod(list(amx_ratios.values())) < 1 else vector)


# Each tiling's time per product on a stand-in clock, and what int8 must choose (float32 has no AMX and
# chooses the vector tiling alone): WIDE against TALL first, then AMX on top of the winner against it.
CLOCKS = [({"tall": 1.0, "wide": 2.0, "tall+amx": 0.5}, "tall+amx"),
          ({"tall": 1.0, "wide": 0.5, "wide+amx": 0.25}, "wide+amx"),
          ({"tall": 1.0, "wide": 0.5, "wide+amx": 0.75}, "wide"),
          ({"tall": 1.0, "wide": 2.0, "tall+amx": 3.0}, "tall")]


@pytest.mark.parametrize("clock, fastest", CLOCKS)
def test_the_faster_tiling_wins(monkeypatch, clock, fastest):
    """A stand-in clock and matmul: the chosen tiling, and each tiling timed ROUNDS + 1 times per product,
    only those the two steps need (AMX only on top of the vector tiling that won)."""
    monkeypatch.setattr(gemm, "TILINGS", (gemm.TALL, gemm.WIDE))
    monkeypatch.setattr(gemm, "INT8_TILINGS", (gemm.TALL, gemm.WIDE, gemm.with_amx(gemm.TALL), gemm.with_amx(gemm.WIDE)))
    monkeypatch.setattr(calibration, "PRODUCTS", ((20, 24, 40), (13, 40, 24)))
    now, calls = [0.0], []

    def matmul(x, packed, bias, out, tasks, tiling):
        now[0] += clock[calibration.name(tiling)]
        calls.append((x.shape[0], packed.shape, packed.scales is not None, calibration.name(tiling)))

    monkeypatch.setattr(gemm, "matmul", matmul)
    monkeypatch.setattr(calibration.time, "perf_counter", lambda: now[0])
    vector = "wide" if clock["wide"] < 1 else "tall"
    for int8 in (True, False):
        calls.clear()
        tiling, ratios = calibration.choose(int8, tasks=1)
        assert calibration.name(tiling) == (fastest if int8 else vector)
        expected = {"wide": clock["wide"]}
        if int8:
            expected[f"{vector}+amx"] = clock[f"{vector}+amx"] / clock[vector]
        assert ratios == {name: {"24->40": pytest.approx(r), "40->24": pytest.approx(r)} for name, r in expected.items()}
        for rows, shape in ((20, (40, 24)), (13, (24, 40))):
            counts = {"tall": 1, "wide": 1, f"{vector}+amx": int(int8)}
            counts[vector] += int(int8)  # timed again against itself with AMX
            for name, count in counts.items():
                assert calls.count((rows, shape, int8, name)) == count * (calibration.ROUNDS + 1), name


def test_one_candidate_is_not_timed(monkeypatch):
    monkeypatch.setattr(gemm, "TILINGS", (gemm.TALL,))
    monkeypatch.setattr(gemm, "INT8_TILINGS", (gemm.TALL,))
    monkeypatch.setattr(gemm, "matmul", None)  # would fail if called
    assert calibration.choose(int8=True, tasks=2) == (gemm.TALL, {})


def test_the_environment_names_a_tiling(monkeypatch):
    monkeypatch.delenv(calibration.ENVIRONMENT, raising=False)
    assert calibration.from_environment() is None
    for value, expected in ((" Tall ", gemm.TALL), ("", None)):
        monkeypatch.setenv(calibration.ENVIRONMENT, value)
        assert calibration.from_environment() == expected
    monkeypatch.setenv(calibration.ENVIRONMENT, "fastest")
    with pytest.raises(ValueError, match=r"\$MINIDISTIL_TILING: expected one of tall(, wide)?(, tall\+amx, wide\+amx)? "
                                         r"on this CPU .* got 'fastest'"):
        calibration.from_environment()


@pytest.mark.parametrize("candidates", [(gemm.TALL, gemm.WIDE), (gemm.TALL,)], ids=["32 registers", "16 registers"])
def test_wide_is_accepted_only_where_it_is_a_candidate(monkeypatch, candidates):
    monkeypatch.setattr(gemm, "TILINGS", candidates)
    monkeypatch.setattr(gemm, "INT8_TILINGS", candidates)
    monkeypatch.setenv(calibration.ENVIRONMENT, "wide")
    if gemm.WIDE in candidates:
        assert calibration.from_environment() == gemm.WIDE
    else:
        with pytest.raises(ValueError, match=r"expected one of tall on this CPU \(.*\), got 'wide'"):
            calibration.from_environment()


@pytest.mark.parametrize("amx", [True, False], ids=["AMX", "no AMX"])
def test_amx_is_accepted_only_where_it_is_a_candidate_and_only_for_int8(monkeypatch, amx):
    """$MINIDISTIL_TILING=wide+amx: int8 on WIDE with AMX, float32 on WIDE; without AMX it is an error, as
    any name that is no candidate."""
    monkeypatch.setattr(gemm, "TILINGS", (gemm.TALL, gemm.WIDE))
    monkeypatch.setattr(gemm, "INT8_TILINGS", gemm.TILINGS + ((gemm.with_amx(gemm.TALL), gemm.with_amx(gemm.WIDE)) if amx else ()))
    monkeypatch.setenv(calibration.ENVIRONMENT, "wide+amx")
    if amx:
        assert calibration.from_environment(int8=True) == gemm.with_amx(gemm.WIDE)
        assert calibration.from_environment() == gemm.WIDE
    else:
        with pytest.raises(ValueError, match=r"expected one of tall, wide on this CPU \(.*\+amx where the CPU and the OS "
                                             r"offer AMX, for int8\), got 'wide\+amx'"):
            calibration.from_environment(int8=True)


def test_a_bad_environment_fails_at_load_before_any_compile(monkeypatch):
    monkeypatch.setenv(calibration.ENVIRONMENT, "diagonal")
    monkeypatch.setattr(warmup, "ensure_compiled", None)  # would fail if reached
    with pytest.raises(ValueError, match=r"\$MINIDISTIL_TILING: .* got 'diagonal'"):
        cpu.NumbaOps(threads=1).prepare({"w": np.ones((4, 3), np.float32)}, ["w"])


@pytest.mark.parametrize("int8, amx", [(False, True), (True, False), (True, True)],
                         ids=["float32", "int8 without AMX", "int8 with AMX"])
def test_matmul_takes_only_its_tilings(monkeypatch, int8, amx):
    """TALL and WIDE always (WIDE also with 16 registers: a test's way into the two-panel loop), AMX for int8
    where isa.amx_int8() says the CPU and the OS offer it; anything else is a named error."""
    monkeypatch.setattr(gemm, "INT8_TILINGS", gemm.TILINGS + ((gemm.with_amx(gemm.TALL), gemm.with_amx(gemm.WIDE)) if amx else ()))
    weight = np.ones((4, 3), np.float32)
    packed = gemm.pack_int8(*quantize_matrix(weight)) if int8 else gemm.pack_float32(weight)
    offered = r"gemm.TALL \(\d+, 1, False\), gemm.WIDE \(\d+, 2, False\)"
    if int8 and amx:
        offered += r", gemm.with_amx\(TALL\) \(\d+, 1, True\), gemm.with_amx\(WIDE\) \(\d+, 2, True\)"
    foreign = [gemm.Tiling(8, 1)] + ([] if int8 and amx else [gemm.with_amx(gemm.TALL)])
    for tiling in foreign:
        with pytest.raises(ValueError, match=rf"tiling of an? (int8|float32) product: expected one of {offered} "
                                             rf"\(with_amx: int8, where isa.amx_int8\(\): INT8_TILINGS\), got Tiling\("):
            gemm.matmul(np.ones((2, 3), np.float32), packed, np.zeros(4, np.float32), np.empty((2, 4), np.float32), 1,
                        tiling=tiling)


@pytest.fixture
def timed_here(monkeypatch):
    """Calls of calibration.choose from warmup.tiling (each answers TALL), with its per-process memo cleared."""
    calls = []
    monkeypatch.setattr(calibration, "choose", lambda int8: calls.append(int8) or (gemm.TALL, {}))
    monkeypatch.delenv(calibration.ENVIRONMENT, raising=False)
    warmup._timed_here.cache_clear()
    yield calls
    warmup._timed_here.cache_clear()


def test_the_stamp_keeps_the_choice_and_the_environment_overrides_it(tmp_path, monkeypatch, timed_here):
    monkeypatch.setattr(gemm, "TILINGS", (gemm.TALL, gemm.WIDE))  # "wide" a candidate on any CPU
    monkeypatch.setattr(gemm, "INT8_TILINGS", (gemm.TALL, gemm.WIDE))
    warmup.stamp_path(tmp_path, "int8").write_text(json.dumps({"tiling": "wide"}))
    assert warmup.tiling(tmp_path, "int8") == gemm.WIDE and warmup.missing(tmp_path, [None, "int8"]) == [None]
    monkeypatch.setenv(calibration.ENVIRONMENT, "tall")
    assert warmup.tiling(tmp_path, "int8") == gemm.TALL
    assert timed_here == []


def test_a_stamp_naming_a_tiling_this_process_cannot_run_counts_as_missing(tmp_path, monkeypatch, timed_here):
    """AMX in the stamp, but the OS refuses the tile registers now: timed again, never run on AMX."""
    monkeypatch.setattr(gemm, "INT8_TILINGS", gemm.TILINGS)
    warmup.stamp_path(tmp_path, "int8").write_text(json.dumps({"tiling": "wide+amx"}))
    assert warmup.missing(tmp_path, ["int8"]) == ["int8"]
    assert warmup.tiling(tmp_path, "int8") == gemm.TALL and timed_here == [True]


@pytest.mark.parametrize("stamp", [None, "", "compiled in 3 s\n", json.dumps({"tiling": "diagonal"}), "[]"])
def test_without_a_readable_stamp_the_choice_is_timed_once_per_process(tmp_path, timed_here, stamp):
    """(A cache that could be written gets a new stamp instead: such a stamp counts as missing.)"""
    if stamp is not None:
        warmup.stamp_path(tmp_path, None).write_text(stamp)
    assert warmup.missing(tmp_path, [None]) == [None]
    for _ in range(2):
        assert warmup.tiling(tmp_path, None) == gemm.TALL
    assert warmup.tiling(None, None) == gemm.TALL  # no cache directory at all
    assert timed_here == [False]


def test_the_ops_pass_their_kernel_sets_tiling_to_each_product(monkeypatch):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((gemm.PANEL + 3, 24)).astype(np.float32)
    ops = cpu.NumbaOps(threads=2)
    seen = []
    real_matmul = gemm.matmul
    monkeypatch.setattr(gemm, "matmul", lambda *args: seen.append(args[6]) or real_matmul(*args))
    x = rng.standard_normal((2 * gemm.TILE_ROWS + 3, 24)).astype(np.float32)  # whole tiles of either tiling
    ops.tilings = {None: gemm.WIDE, "int8": gemm.TALL}
    wide = ops.linear(x, gemm.pack_float32(weight))
    ops.linear(x, gemm.pack_int8(*quantize_matrix(weight)))
    ops.tilings = {}
    tall = ops.linear(x, gemm.pack_float32(weight))
    assert seen == [gemm.WIDE, gemm.TALL, gemm.TALL]
    assert np.array_equal(wide, tall)


@pytest.mark.parametrize("rows", [15, 16, 31, 3 * gemm.AMX_ROWS + 5])
def test_with_amx_only_products_of_a_whole_amx_tile_register_of_rows_or_more_go_to_amx(monkeypatch, rows):
    """From 16 rows (one tile register of rows), as measured in gemm.py; fewer stay on the vector tiles. A
    stand-in AMX kernel, so that this runs on any CPU."""
    monkeypatch.setattr(gemm, "INT8_TILINGS", gemm.TILINGS + (gemm.with_amx(gemm.TALL),))
    calls = []
    from minidistil.kernels.jit import Kernel

    monkeypatch.setattr(gemm, "_matmul_amx", Kernel(lambda *args: calls.append(args[0].shape),
                                                    lambda *args: calls.append(args[0].shape)))
    packed = gemm.pack_int8(*quantize_matrix(np.ones((40, 64), np.float32)))
    x = np.ones((rows, 64), np.float32)
    gemm.matmul(x, packed, np.zeros(40, np.float32), np.empty((rows, 40), np.float32), 2, tiling=gemm.with_amx(gemm.TALL))
    padded = -(-rows // gemm.simd.AMX_ROWS) * gemm.simd.AMX_ROWS  # the quantized rows AMX reads: whole tile registers
    assert calls == ([(padded, 64)] if rows >= 16 else [])
