"""Thread count and idle policy of the BLAS behind NumPy's matmul.

Thread counts go through threadpoolctl, which finds every BLAS loaded in this
process (OpenBLAS, including NumPy's prefixed scipy_openblas build, MKL, BLIS)
and sets each one's count. OpenMP's count is left alone: the Numba backend sets
its own (numba.set_num_threads), and other OpenMP users in the process are not
ours to limit.

OpenBLAS's worker threads busy-wait for 2**28 cycles (~0.1 s) after each
call before they sleep. Between two BLAS calls that spinning takes a core
from whatever runs next: on 2 cores, a Numba kernel right after a GEMM ran
at half speed (128-row GEMM then the small-batch matmul kernel: 10.7 ms
instead of 7.4). `sleep_when_idle` sets the shortest timeout OpenBLAS has
(OPENBLAS_THREAD_TIMEOUT=4, i.e. 16 cycles) and restarts its threads so that
they read it; waking them then costs microseconds per call. In the 200 ms
after a 128-row GEMM, 2 threads, its threads burnt 80-100 ms of CPU with
OpenBLAS's default and 0.1 ms with this (`python tools/bench/bench_kernels.py spin`).
threadpoolctl has no call for this (it sets thread counts only), so this part
talks to OpenBLAS itself, through the library handle threadpoolctl found.
"""

import functools
import os

import numpy as np  # noqa: F401  (loads NumPy's BLAS, so that threadpoolctl finds it)
from threadpoolctl import ThreadpoolController

TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"


@functools.lru_cache(maxsize=None)
def _blas_libraries():
    """threadpoolctl's controller of each BLAS loaded in this process, looked up once."""
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


def set_threads(n):
    """Use n threads in BLAS calls from now on (process-wide). False when no BLAS was found."""
    libraries = _blas_libraries()
    for library in libraries:
        # threadpoolctl >= 3.8 lets only the first thread that set a pthreads OpenBLAS set it
        # again; a model built in another thread must still get the count it asks for.
        release = getattr(library, "clear_controlling_thread", None)
        if release is not None:
            release(force=True)
        library.set_num_threads(int(n))
    return bool(libraries)


def get_threads():
    """BLAS threads now in use (the most of any BLAS loaded), or None when unknown."""
    counts = [library.num_threads for library in _blas_libraries()]
    counts = [count for count in counts if count is not None]
    return max(counts) if counts else None


def sleep_when_idle():
    """Make OpenBLAS's idle threads sleep at once instead of spinning (see the module docstring).

    Leaves a timeout the user chose in $OPENBLAS_THREAD_TIMEOUT alone. Restarts
    OpenBLAS's thread pool, so call it when no other thread is inside a BLAS call
    (kernels/cpu.py does, once, at import). Returns True when the setting took effect.
    """
    if TIMEOUT_ENV in os.environ:
        return False
    entry_points = []
    for library in _blas_libraries():
        if library.internal_api == "openblas":
            try:
                entry_points.append((library.dynlib.openblas_read_env, library.dynlib.blas_thread_shutdown_))
            except AttributeError:  # an OpenBLAS without these entry points
                pass
    if not entry_points:
        return False
    os.environ[TIMEOUT_ENV] = "4"  # 2**4 cycles, the minimum OpenBLAS accepts
    for read_env, shutdown in entry_points:
        read_env()  # OpenBLAS caches its environment at load: read it again
        shutdown()  # the next BLAS call starts the threads again, with the new timeout
    return True
