"""Which whole tile the packed products use on this machine (gemm.TILINGS, gemm.INT8_TILINGS): timed
once, at first use.

    tiling, ratios = choose(int8=False)             # the fastest candidate, and each one's time ratios to TALL
    tiling = from_environment(int8=False)           # $MINIDISTIL_TILING ("tall" / "wide" / "amx"), else None

Why time it: the faster tile may depend on the core, not only on its instruction set. An Intel Xeon
with AVX-512 and AMX (two 512-bit FMA units per core) ran a 32 x 128 DistilBERT pass in 0.92x the
time with the wide tile (gemm.py has the other shapes); an AMD Zen 4, with the same 32 registers
but 512-bit FMAs split into two 256-bit halves, has not been measured with it. The results are
the same bit for bit either way, so a close call costs at most the difference, never a number.

How: the candidates (TALL, WIDE where there are 32 vector registers, and for int8 AMX where the
CPU and the OS offer it) run the same products in turn, ROUNDS rounds, and each gets the geometric
mean over the products of its median per-round time ratio to TALL; the lowest wins if it is below
1, else TALL. AMX's products took 0.1-0.2x TALL's time on that Xeon (int8 does not wait on a close
call there). The
products are a transformer FFN's two weights (768 -> 3072, 3072 -> 768) at 1024 rows, where the
tile's own rate counts. Fewer rows do not tell the two apart on that Xeon: at 128 rows the ratios
were 0.87-1.02 from run to run, at 1024 rows 0.89 and 0.98 each time; at 8 rows single calls
ranged over 0.5-2x (a thread pool's wake-up). 0.7 s in all there (int8: 0.3 s). warmup.py runs this right
after compiling a kernel set and records the choice and the ratios in its stamp. A machine busy
with other work while it times (the CLI's background compile runs beside a command on numpy) can
tip a close call either way; $MINIDISTIL_TILING overrides the stamp (benchmarks, A/B comparisons),
and deleting the stamp times again.
"""

import math
import os
import statistics
import time

import numba
import numpy as np

from . import gemm, isa
from .reference import quantize_matrix

ROUNDS = 7
PRODUCTS = ((1024, 768, 3072), (1024, 3072, 768))  # (rows, In, Out)
ENVIRONMENT = "MINIDISTIL_TILING"
NAMES = {"tall": gemm.TALL, "wide": gemm.WIDE, "amx": gemm.AMX}


def name(tiling):
    """ "tall", "wide" or "amx": how the environment variable and the stamps spell a Tiling."""
    return next(key for key, value in NAMES.items() if value == tiling)


def candidates(int8):
    """The tilings an int8 or a float32 kernel set chooses from on this machine."""
    return gemm.INT8_TILINGS if int8 else gemm.TILINGS


def from_environment(int8=False):
    """The Tiling $MINIDISTIL_TILING names for the int8 or the float32 kernel set, or None when it is
    unset or empty, or names a candidate of the other set only ("amx": int8 only; float32 then keeps
    its stamp's). ValueError for a name that is a candidate of neither on this CPU ("wide" with 16
    vector registers, "amx" without AMX)."""
    value = os.environ.get(ENVIRONMENT, "").strip().lower()
    if not value:
        return None
    offered = [name(tiling) for tiling in candidates(True) + candidates(False)]
    if value not in offered:
        raise ValueError(f"${ENVIRONMENT}: expected one of {', '.join(dict.fromkeys(offered))} on this CPU "
                         f"({isa.describe()}; amx: int8 only, where the CPU and the OS offer it), got {value!r}")
    return NAMES[value] if NAMES[value] in candidates(int8) else None


def choose(int8, tasks=None):
    """(the fastest tiling, {name: {"In->Out": its median per-round time ratio to TALL's}} for every other
    candidate) for float32 or int8 products on `tasks` threads (None: all of Numba's, whatever the
    calling thread was set to: the choice is kept for every later process of this machine, whatever
    threads each asks for).

    Where TALL is the only candidate (16 vector registers and no AMX), TALL, untimed, and no ratios.
    """
    if candidates(int8) == (gemm.TALL,):
        return gemm.TALL, {}
    tasks = numba.config.NUMBA_NUM_THREADS if tasks is None else tasks
    saved = numba.get_num_threads()
    numba.set_num_threads(min(tasks, numba.config.NUMBA_NUM_THREADS))
    try:
        return _timed(int8, tasks)
    finally:
        numba.set_num_threads(saved)


def _timed(int8, tasks):
    rng = np.random.default_rng(0)
    tilings = candidates(int8)
    ratios = {name(tiling): {} for tiling in tilings if tiling != gemm.TALL}
    for rows, in_features, out_features in PRODUCTS:
        weight = rng.standard_normal((out_features, in_features)).astype(np.float32)
        packed = gemm.pack_int8(*quantize_matrix(weight)) if int8 else gemm.pack_float32(weight)
        x = rng.standard_normal((rows, in_features)).astype(np.float32)
        bias, out = np.zeros(out_features, np.float32), np.empty((rows, out_features), np.float32)
        times = {tiling: [] for tiling in tilings}
        for round_ in range(ROUNDS + 1):  # round 0 warms the caches and the thread pool, and is not counted
            for tiling in tilings if round_ % 2 else tilings[::-1]:
                start = time.perf_counter()
                gemm.matmul(x, packed, bias, out, tasks, tiling=tiling)
                if round_:
                    times[tiling].append(time.perf_counter() - start)
        for tiling in tilings[1:]:
            ratios[name(tiling)][f"{in_features}->{out_features}"] = statistics.median(
                own / tall for own, tall in zip(times[tiling], times[gemm.TALL]))
    means = {NAMES[key]: math.prod(by_product.values()) ** (1 / len(by_product)) for key, by_product in ratios.items()}
    fastest = min(means, key=means.get)
    return fastest if means[fastest] < 1 else gemm.TALL, ratios
