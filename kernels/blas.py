"""Thread count and idle policy of the BLAS behind NumPy's matmul, without threadpoolctl.

NumPy wheels bundle OpenBLAS under a prefixed name (libscipy_openblas64_*.so
exporting `scipy_openblas_set_num_threads64_`); distribution builds link a
plain libopenblas. Both are found among the libraries this process has
loaded and called through ctypes. Where neither is found (MKL, Accelerate),
`set_threads` returns False and the count is whatever the library read from
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS at start-up.

OpenBLAS's worker threads busy-wait for 2**28 cycles (~0.1 s) after each
call before they sleep. Between two BLAS calls that spinning takes a core
from whatever runs next: on 2 cores, a Numba kernel right after a GEMM ran
at half speed (128-row GEMM then the small-batch matmul kernel: 10.7 ms
instead of 7.4). `sleep_when_idle` sets the shortest timeout OpenBLAS has
(OPENBLAS_THREAD_TIMEOUT=4, i.e. 16 cycles) and restarts its threads so that
they read it; waking them then costs microseconds per call.
"""

import ctypes
import glob
import os

import numpy as np

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GETTERS = tuple(name.replace("set_num", "get_num") for name in _SETTERS)

_api = None  # (setter, getter) once looked up; (None, None) when there is no OpenBLAS
_lib = None  # the OpenBLAS library (ctypes.CDLL) found by _lookup
TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"


def _candidate_paths():
    """Loaded shared objects whose name says OpenBLAS, then NumPy's bundled ones on disk."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:  # not Linux
        pass
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    paths += sorted(glob.glob(os.path.join(libs, "*openblas*")))
    return paths


def _lookup():
    global _api, _lib
    if _api is None:
        _api = (None, None)
        for path in _candidate_paths():
            try:
                lib = ctypes.CDLL(path)  # already loaded by NumPy: this only returns a handle
            except OSError:
                continue
            setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
            getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
            if setter is not None:
                setter.restype = None
                setter.argtypes = [ctypes.c_int]
                if getter is not None:
                    getter.restype = ctypes.c_int
                    getter.argtypes = []
                _api, _lib = (setter, getter), lib
                break
    return _api


def set_threads(n):
    """Use n threads in BLAS calls from now on (process-wide). False when the BLAS is not OpenBLAS."""
    setter, _ = _lookup()
    if setter is None:
        return False
    setter(int(n))
    return True


def get_threads():
    """BLAS threads now in use, or None when unknown."""
    _, getter = _lookup()
    return None if getter is None else int(getter())


def sleep_when_idle():
    """Make OpenBLAS's idle threads sleep at once instead of spinning (see the module docstring).

    Leaves a timeout the user chose in $OPENBLAS_THREAD_TIMEOUT alone. Restarts
    OpenBLAS's thread pool, so call it when no other thread is inside a BLAS call
    (kernels/cpu.py does, once, at import). Returns True when the setting took effect.
    """
    _lookup()
    if _lib is None or TIMEOUT_ENV in os.environ:
        return False
    try:
        read_env, shutdown = _lib.openblas_read_env, _lib.blas_thread_shutdown_
    except AttributeError:  # not an OpenBLAS with these entry points
        return False
    os.environ[TIMEOUT_ENV] = "4"  # 2**4 cycles, the minimum OpenBLAS accepts
    read_env()  # OpenBLAS caches its environment at load: read it again
    shutdown()  # the next BLAS call starts the threads again, with the new timeout
    return True
