"""How the Numba kernels are compiled: fast-math subsets and the parallel/serial pair.

Shared by cpu.py (element-wise, row-wise and attention kernels) and gemm.py
(the packed matrix products).
"""

import types
from typing import Callable, NamedTuple

from numba import njit

# Fast-math subsets. Kernels never assume "no NaN / no inf": masked scores are
# the most negative float, and NaN inputs must stay NaN as in the reference.
CONTRACT = {"contract"}  # a*b+c may become one FMA (one rounding instead of two)
REDUCE = {"contract", "reassoc"}  # sums may be reordered, so that they vectorize

SERIAL_WORK = 1 << 15  # kernels with less work than this (elements or multiply-adds) run in the calling thread


class Kernel(NamedTuple):
    """One kernel compiled twice from one Python function.

    `parallel` runs its prange loop on Numba's thread pool; `serial` runs the
    same loop as a plain range in the calling thread, for small inputs, where
    waking the pool (~10-20 us) costs more than the work.
    """

    parallel: Callable
    serial: Callable


def parallel_and_serial(fastmath):
    """Decorator: compile `fn` into a Kernel (parallel and serial), with these fast-math flags."""

    def compile_twice(fn):
        # The serial copy needs a name of its own: Numba's cache names its files after the
        # function and its line, not the compile flags, so under one name the serial kernel
        # loaded the parallel one from the cache (seen with numba.get_thread_id in its loop).
        serial = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                                    fn.__closure__)
        serial.__qualname__ = fn.__qualname__ + "_serial"
        options = dict(fastmath=fastmath, error_model="numpy", cache=True)
        return Kernel(njit(parallel=True, **options)(fn), njit(**options)(serial))

    return compile_twice
