"""Which whole tile the packed products use on this machine (gemm.TILINGS): timed once, at first use.

    tiling, ratios = choose(int8=False)             # gemm.TALL or gemm.WIDE, and WIDE's time ratios
    tiling = from_environment()                     # $MINIDISTIL_TILING ("tall" / "wide"), else None

Why time it: the faster tile may depend on the core, not only on its instruction set. An Intel Xeon
with AVX-512 and AMX (two 512-bit FMA units per core) ran a 32 x 128 DistilBERT pass in 0.92x the
time with the wide tile (gemm.py has the other shapes); an AMD Zen 4, with the same 32 registers
but 512-bit FMAs split into two 256-bit halves, has not been measured with it. The results are
the same bit for bit either way, so a close call costs at most the difference, never a number.

How: TALL and WIDE run the same products in turn, ROUNDS rounds alternating, and WIDE wins when
the geometric mean over the products of its median per-round time ratio to TALL is below 1. The
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
NAMES = {"tall": gemm.TALL, "wide": gemm.WIDE}


def name(tiling):
    """ "tall" or "wide": how the environment variable and the stamps spell a Tiling."""
    return next(key for key, value in NAMES.items() if value == tiling)


def from_environment():
    """The Tiling $MINIDISTIL_TILING names, or None when it is unset or empty; ValueError for a name
    that is not a candidate on this CPU ("wide" with 16 vector registers: gemm.TILINGS)."""
    value = os.environ.get(ENVIRONMENT, "").strip().lower()
    if not value:
        return None
    candidates = [name(tiling) for tiling in gemm.TILINGS]
    if value not in candidates:
        raise ValueError(f"${ENVIRONMENT}: expected one of {', '.join(candidates)} on this CPU "
                         f"({isa.describe()}), got {value!r}")
    return NAMES[value]


def choose(int8, tasks=None):
    """(gemm.WIDE or gemm.TALL, {"In->Out": WIDE's median per-round time ratio to TALL's}) for float32 or int8
    products on `tasks` threads (None: all of Numba's, whatever the calling thread was set to: the
    choice is kept for every later process of this machine, whatever threads each asks for).

    Where WIDE is not a candidate (16 vector registers: gemm.TILINGS), TALL, untimed, and no ratios.
    """
    if gemm.WIDE not in gemm.TILINGS:
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
    ratios = {}
    for rows, in_features, out_features in PRODUCTS:
        weight = rng.standard_normal((out_features, in_features)).astype(np.float32)
        packed = gemm.pack_int8(*quantize_matrix(weight)) if int8 else gemm.pack_float32(weight)
        x = rng.standard_normal((rows, in_features)).astype(np.float32)
        bias, out = np.zeros(out_features, np.float32), np.empty((rows, out_features), np.float32)
        times = {gemm.TALL: [], gemm.WIDE: []}
        for round_ in range(ROUNDS + 1):  # round 0 warms the caches and the thread pool, and is not counted
            for tiling in (gemm.TALL, gemm.WIDE) if round_ % 2 else (gemm.WIDE, gemm.TALL):
                start = time.perf_counter()
                gemm.matmul(x, packed, bias, out, tasks, tiling=tiling)
                if round_:
                    times[tiling].append(time.perf_counter() - start)
        ratios[f"{in_features}->{out_features}"] = statistics.median(
            wide / tall for wide, tall in zip(times[gemm.WIDE], times[gemm.TALL]))
    faster = math.prod(ratios.values()) ** (1 / len(ratios)) < 1
    return gemm.WIDE if faster else gemm.TALL, ratios
