"""Which whole tile the packed products use on this machine (gemm.TILINGS): timed once, at first use.

    tiling, seconds = choose(int8=False, tasks=2)   # gemm.TALL or gemm.WIDE, and what each took
    tiling = from_environment()                     # $MINIDISTIL_TILING ("tall" / "wide"), else None

Why time it: the faster tile depends on the core, not only on its instruction set. An Intel Xeon
with AVX-512 and AMX (two 512-bit FMA units per core) ran a 32 x 128 DistilBERT pass in 0.94x the
time with the wide tile (gemm.py has the other shapes); an AMD Zen 4, with the same 32 registers
but 512-bit FMAs split into two 256-bit halves, has not been measured with it. The results are
the same bit for bit either way, so a close call costs at most the difference, never a number.

How: each candidate runs the same products in turn, ROUNDS rounds alternating, and the one with
the lower sum of median times wins (the first, TALL, on a tie). The products are a transformer
FFN's first weight (768 -> 3072) at 8 rows, where the weight streams from memory, and at 192
rows, where the tile's own rate counts: ~0.1 s in all on that Xeon. warmup.py runs this right
after compiling a kernel set and records the choice in its stamp; $MINIDISTIL_TILING overrides
it (benchmarks, or a machine too busy to time).
"""

import os
import statistics
import time

import numpy as np

from . import gemm
from .reference import quantize_matrix

ROUNDS = 7
ROWS = (8, 192)
IN_FEATURES, OUT_FEATURES = 768, 3072
ENVIRONMENT = "MINIDISTIL_TILING"
NAMES = {"tall": gemm.TALL, "wide": gemm.WIDE}


def name(tiling):
    """ "tall" or "wide": how the environment variable and the stamps spell a Tiling."""
    return next(key for key, value in NAMES.items() if value == tiling)


def from_environment():
    """The Tiling $MINIDISTIL_TILING names, or None when it is unset or empty."""
    value = os.environ.get(ENVIRONMENT, "").strip().lower()
    if not value:
        return None
    if value not in NAMES:
        raise ValueError(f"${ENVIRONMENT}: expected one of {', '.join(NAMES)}, got {value!r}")
    return NAMES[value]


def choose(int8, tasks):
    """(the faster Tiling of gemm.TILINGS here, {name: summed median seconds}) for float32 or int8 products.

    With one candidate (16 vector registers: gemm.py) it is returned untimed, with no seconds.
    """
    if len(gemm.TILINGS) == 1:
        return gemm.TILINGS[0], {}
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((OUT_FEATURES, IN_FEATURES)).astype(np.float32)
    packed = gemm.pack_int8(*quantize_matrix(weight)) if int8 else gemm.pack_float32(weight)
    bias = np.zeros(OUT_FEATURES, np.float32)
    inputs = [(rng.standard_normal((rows, IN_FEATURES)).astype(np.float32), np.empty((rows, OUT_FEATURES), np.float32))
              for rows in ROWS]
    times = {(tiling, rows): [] for tiling in gemm.TILINGS for rows in ROWS}
    for round_ in range(ROUNDS + 1):  # round 0 warms the caches and the thread pool, and is not counted
        for tiling in gemm.TILINGS if round_ % 2 else gemm.TILINGS[::-1]:
            for rows, (x, out) in zip(ROWS, inputs):
                start = time.perf_counter()
                gemm.matmul(x, packed, bias, out, tasks, tiling=tiling)
                if round_:
                    times[tiling, rows].append(time.perf_counter() - start)
    seconds = {name(tiling): sum(statistics.median(times[tiling, rows]) for rows in ROWS) for tiling in gemm.TILINGS}
    return min(gemm.TILINGS, key=lambda tiling: seconds[name(tiling)]), seconds
