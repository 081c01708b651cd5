"""Which whole tile the packed products use on this machine (gemm.TILINGS, gemm.INT8_TILINGS): timed
once, at first use.

    tiling, ratios = choose(int8=False)       # the fastest candidate, and the time ratios it was chosen by
    tiling = from_environment(int8=False)     # $MINIDISTIL_TILING (tall, wide, tall+amx, wide+amx), else None

Why time it: the faster tile may depend on the core, not only on its instruction set. An Intel Xeon
with AVX-512 and AMX (two 512-bit FMA units per core) ran a 32 x 128 DistilBERT pass in 0.92x the
time with the wide tile (gemm.py has the other shapes); an AMD Zen 4, with the same 32 registers
but 512-bit FMAs split into two 256-bit halves, has not been measured with it. The results are
the same bit for bit either way, so a close call costs at most the difference, never a number.

How: first the vector tilings (TALL, and WIDE where there are 32 vector registers) run the same
products in turn, ROUNDS rounds, and WIDE wins when the geometric mean over the products of its
median per-round time ratio to TALL is below 1. Then, for int8 where the CPU and the OS offer AMX,
the winner with AMX (gemm.with_amx) against the winner alone, the same way. The products are a
transformer FFN's two weights (768 -> 3072, 3072 -> 768) at 1024 rows, where the tile's own rate
counts (AMX takes only products of gemm.AMX_FROM_ROWS rows or more anyway). Fewer rows do not tell TALL
and WIDE apart on that Xeon: at 128 rows the ratios were 0.87-1.02 from run to run, at 1024 rows
0.89 and 0.98 each time; at 8 rows single calls ranged over 0.5-2x (a thread pool's wake-up). 0.7 s
in all there (int8: 0.6 s, AMX 0.46x and 0.55x the tall tile's time). warmup.py runs this right after
compiling a kernel set and records the choice and the ratios in its stamp. A machine busy with
other work while it times (the CLI's background compile runs beside a command on numpy) can tip a
close call either way; $MINIDISTIL_TILING overrides the stamp (benchmarks, A/B comparisons), and
deleting the stamp times again.
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
NAMES = {"tall": gemm.TALL, "wide": gemm.WIDE, "tall+amx": gemm.with_amx(gemm.TALL), "wide+amx": gemm.with_amx(gemm.WIDE)}


def name(tiling):
    """ "tall", "wide", "tall+amx" or "wide+amx": how the environment variable and the stamps spell a Tiling."""
    return next(key for key, value in NAMES.items() if value == tiling)


def candidates(int8):
    """The tilings an int8 or a float32 kernel set chooses from on this machine."""
    return gemm.INT8_TILINGS if int8 else gemm.TILINGS


def from_environment(int8=False):
    """The Tiling $MINIDISTIL_TILING names for the int8 or the float32 kernel set, or None when it is
    unset or empty: "wide+amx" is WIDE with AMX for int8 and WIDE for float32. ValueError for a name
    that is no candidate on this CPU ("wide" with 16 vector registers, "+amx" without AMX)."""
    value = os.environ.get(ENVIRONMENT, "").strip().lower()
    if not value:
        return None
    offered = [name(tiling) for tiling in candidates(True)]  # the int8 candidates include the float32 ones
    if value not in offered:
        raise ValueError(f"${ENVIRONMENT}: expected one of {', '.join(offered)} on this CPU ({isa.describe()}; "
                         f"+amx where the CPU and the OS offer AMX, for int8), got {value!r}")
    return NAMES[value] if int8 else NAMES[value]._replace(amx=False)


def choose(int8, tasks=None):
    """(the fastest tiling, {name: {"In->Out": its median per-round time ratio}}) for float32 or int8
    products on `tasks` threads (None: all of Numba's, whatever the calling thread was set to: the
    choice is kept for every later process of this machine, whatever threads each asks for). The
    ratios: "wide" to TALL, "tall+amx" or "wide+amx" to the vector tiling it adds AMX to.

    Where TALL is the only candidate (16 vector registers and no AMX), TALL, untimed, and no ratios.
    """
    if candidates(int8) == (gemm.TALL,):
        return gemm.TALL, {}
    tasks = numba.config.NUMBA_NUM_THREADS if tasks is None else tasks
    saved = numba.get_num_threads()
    numba.set_num_threads(min(tasks, numba.config.NUMBA_NUM_THREADS))
    try:
        chosen, ratios = _faster(int8, tasks, gemm.TILINGS) if len(gemm.TILINGS) > 1 else (gemm.TALL, {})
        if gemm.with_amx(chosen) in candidates(int8):
            chosen, amx_ratios = _faster(int8, tasks, (chosen, gemm.with_amx(chosen)))
            ratios.update(amx_ratios)
        return chosen, ratios
    finally:
        numba.set_num_threads(saved)


def _faster(int8, tasks, tilings):
    """(tilings[1] if the geometric mean of its ratios to tilings[0] is below 1, else tilings[0];
    {name(tilings[1]): {"In->Out": the median per-round time ratio}})."""
    rng = np.random.default_rng(0)
    ratios = {}
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
        ratios[f"{in_features}->{out_features}"] = statistics.median(
            other / first for other, first in zip(times[tilings[1]], times[tilings[0]]))
    faster = math.prod(ratios.values()) ** (1 / len(ratios)) < 1
    return tilings[1] if faster else tilings[0], {name(tilings[1]): ratios}
