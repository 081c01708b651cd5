"""The whole-tile choice (kernels/calibration.py): timed once per machine, kept in the warm-up's stamp,
overridable by $MINIDISTIL_TILING, and passed by the ops to every packed product."""

import json

import numpy as np
import pytest

pytest.importorskip("numba")
from minidistil.kernels import calibration, cpu, gemm, warmup  # noqa: E402
from minidistil.kernels.reference import quantize_matrix  # noqa: E402


def test_the_choice_is_one_of_the_candidates_with_the_ratios_it_came_from():
    import numba

    numba.set_num_threads(1)  # what a threads=1 model leaves on its thread: choose times on all, then puts it back
    try:
        tiling, ratios = calibration.choose(int8=False)
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert tiling in gemm.TILINGS
    if gemm.WIDE not in gemm.TILINGS:
        assert ratios == {}
    else:
        assert set(ratios) == {f"{i}->{o}" for _, i, o in calibration.PRODUCTS} and all(r > 0 for r in ratios.values())
        assert (tiling == gemm.WIDE) == (np.prod(list(ratios.values())) < 1)


@pytest.mark.parametrize("slower", ["tall", "wide"])
def test_the_faster_tiling_wins(monkeypatch, slower):
    """A stand-in clock that makes one tiling's products take twice as long: the other is chosen, for float32
    and int8, from the products' real matmul calls."""
    monkeypatch.setattr(gemm, "TILINGS", (gemm.TALL, gemm.WIDE))
    monkeypatch.setattr(calibration, "PRODUCTS", ((20, 24, 40), (13, 40, 24)))
    now, calls = [0.0], []
    real_matmul = gemm.matmul

    def matmul(x, packed, bias, out, tasks, tiling):
        now[0] += 2.0 if calibration.name(tiling) == slower else 1.0
        calls.append((x.shape[0], packed.shape, calibration.name(tiling)))
        return real_matmul(x, packed, bias, out, tasks, tiling=tiling)

    monkeypatch.setattr(gemm, "matmul", matmul)
    monkeypatch.setattr(calibration.time, "perf_counter", lambda: now[0])
    for int8 in (False, True):
        calls.clear()
        tiling, ratios = calibration.choose(int8, tasks=1)
        assert calibration.name(tiling) != slower
        assert ratios == {"24->40": 2.0 if slower == "wide" else 0.5, "40->24": 2.0 if slower == "wide" else 0.5}
        for product in ((20, (40, 24)), (13, (24, 40))):  # each product, each tiling, ROUNDS + 1 times
            for name in ("tall", "wide"):
                assert calls.count((*product, name)) == calibration.ROUNDS + 1


def test_one_candidate_is_not_timed(monkeypatch):
    monkeypatch.setattr(gemm, "TILINGS", (gemm.TALL,))
    monkeypatch.setattr(gemm, "matmul", None)  # would fail if called
    assert calibration.choose(int8=True, tasks=2) == (gemm.TALL, {})


def test_the_environment_names_a_tiling(monkeypatch):
    monkeypatch.delenv(calibration.ENVIRONMENT, raising=False)
    assert calibration.from_environment() is None
    for value, expected in ((" Tall ", gemm.TALL), ("", None)):
        monkeypatch.setenv(calibration.ENVIRONMENT, value)
        assert calibration.from_environment() == expected
    monkeypatch.setenv(calibration.ENVIRONMENT, "fastest")
    with pytest.raises(ValueError, match=r"\$MINIDISTIL_TILING: expected one of tall(, wide)? on this CPU .*"
                                         r"got 'fastest'"):
        calibration.from_environment()


@pytest.mark.parametrize("candidates", [(gemm.TALL, gemm.WIDE), (gemm.TALL,)], ids=["32 registers", "16 registers"])
def test_wide_is_accepted_only_where_it_is_a_candidate(monkeypatch, candidates):
    monkeypatch.setattr(gemm, "TILINGS", candidates)
    monkeypatch.setenv(calibration.ENVIRONMENT, "wide")
    if gemm.WIDE in candidates:
        assert calibration.from_environment() == gemm.WIDE
    else:
        with pytest.raises(ValueError, match=r"expected one of tall on this CPU \(.*\), got 'wide'"):
            calibration.from_environment()


def test_a_bad_environment_fails_at_load_before_any_compile(monkeypatch):
    monkeypatch.setenv(calibration.ENVIRONMENT, "diagonal")
    monkeypatch.setattr(warmup, "ensure_compiled", None)  # would fail if reached
    with pytest.raises(ValueError, match=r"\$MINIDISTIL_TILING: .* got 'diagonal'"):
        cpu.NumbaOps(threads=1).prepare({"w": np.ones((4, 3), np.float32)}, ["w"])


def test_matmul_takes_only_its_two_tilings():
    packed = gemm.pack_float32(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"tiling: expected gemm.TALL \(\d+, 1\) or gemm.WIDE \(\d+, 2\), got"):
        gemm.matmul(np.ones((2, 3), np.float32), packed, np.zeros(4, np.float32), np.empty((2, 4), np.float32), 1,
                    tiling=gemm.Tiling(8, 1))


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
    warmup.stamp_path(tmp_path, "int8").write_text(json.dumps({"tiling": "wide"}))
    assert warmup.tiling(tmp_path, "int8") == gemm.WIDE and warmup.missing(tmp_path, [None, "int8"]) == [None]
    monkeypatch.setenv(calibration.ENVIRONMENT, "tall")
    assert warmup.tiling(tmp_path, "int8") == gemm.TALL
    assert timed_here == []


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
    monkeypatch.setattr(gemm, "matmul", lambda *args: seen.append(args[-1]) or real_matmul(*args))
    x = rng.standard_normal((2 * gemm.TILE_ROWS + 3, 24)).astype(np.float32)  # whole tiles of either tiling
    ops.tilings = {None: gemm.WIDE, "int8": gemm.TALL}
    wide = ops.linear(x, gemm.pack_float32(weight))
    ops.linear(x, gemm.pack_int8(*quantize_matrix(weight)))
    ops.tilings = {}
    tall = ops.linear(x, gemm.pack_float32(weight))
    assert seen == [gemm.WIDE, gemm.TALL, gemm.TALL]
    assert np.array_equal(wide, tall)
