"""Kernel backends behind one small interface, the `Ops` protocol of protocol.py.

Every hot operation of the model goes through an `Ops` object:

    ops = get_ops("numpy" | "numba" | "cupy" | "auto")
    params = ops.prepare(params)          # once, at load: same names, backend arrays
    y = ops.linear(x, w, b, activation)   # [..., In] x [Out, In] -> [..., Out]

`reference.py` is the readable definition of each op; the other backends
compute the same thing faster. This package knows nothing of minidistil.
"""

import importlib.util
import os
import warnings

from .protocol import Ops
from .reference import ACTIVATIONS  # name -> reference function: every activation name the ops accept

__all__ = ["ACTIVATIONS", "BACKENDS", "Ops", "get_ops", "numba_kernels_ready", "resolve_threads"]

BACKEND_ENV = "MINIDISTIL_BACKEND"
THREADS_ENV = "MINIDISTIL_THREADS"
BACKENDS = ("numpy", "numba", "cupy")


_WARNED_CAPS = set()  # (asked, cores) already warned about: the warning is said once per process


def available_cores():
    """The CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks on this OS
        return os.cpu_count() or 1


def resolve_threads(threads=None):
    """The thread count to use: `threads`, else $MINIDISTIL_THREADS, else None (all cores).

    More than available_cores() is capped to it, with a warning: extra threads only wait for each
    other (`minidistil embed` of 100 lines on 2 busy cores: 8 threads took 4.8-8.6x as long as 2, 3 runs).
    """
    source = "threads"
    if threads is None:
        threads = os.environ.get(THREADS_ENV) or None
        source = f"${THREADS_ENV}"
        if threads is None:
            return None
    try:
        n = int(threads)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a positive integer, got {threads!r}") from None
    if n < 1 or isinstance(threads, bool) or (isinstance(threads, float) and threads != n):
        raise ValueError(f"{source} must be a positive integer, got {threads!r}")
    cores = available_cores()
    if n > cores:
        if (n, cores) not in _WARNED_CAPS:
            _WARNED_CAPS.add((n, cores))
            warnings.warn(f"{source}={n} is more than the {cores} cores this process may use: using {cores} "
                          "(more threads than cores only wait for each other)", RuntimeWarning, stacklevel=3)
        n = cores
    return n


def get_ops(backend=None, threads=None) -> Ops:
    """Return the Ops object for `backend`.

    backend: "numpy" (reference), "numba" (CPU), "cupy" (NVIDIA GPU) or "auto";
    None reads $MINIDISTIL_BACKEND and falls back to "auto".
    "auto" picks numba when it imports, else numpy (never the GPU).
    threads: CPU threads for BLAS and Numba; None reads $MINIDISTIL_THREADS,
    and without it every core is used. BLAS threads are process-wide.
    """
    threads = resolve_threads(threads)
    if backend is None:
        backend = os.environ.get(BACKEND_ENV, "auto") or "auto"
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    backend = backend.lower()
    if backend == "auto":
        # Only a missing numba means "fall back": an error inside the numba backend must surface.
        if importlib.util.find_spec("numba") is None:
            warnings.warn("numba is not installed: using the (slower) numpy backend", RuntimeWarning, stacklevel=2)
            backend = "numpy"
        else:
            backend = "numba"
    if backend == "numpy":
        from .reference import NumpyOps

        return NumpyOps(threads=threads)
    if backend == "numba":
        from .cpu import NumbaOps

        return NumbaOps(threads=threads)
    if backend == "cupy":
        from .gpu import CupyOps

        return CupyOps()
    raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)} or 'auto'")


def numba_kernels_ready(quantize=None, compile_in_background=False):
    """Whether the numba backend's kernels for `quantize` (None or "int8") are compiled and cached here.

    True: a numba model loads them (or there is no writable cache, so nothing is gained by waiting);
    False: its first model would compile them first (~30 s, kernels/warmup.py), and with
    compile_in_background=True a detached process has started doing that; None: numba is not installed.
    """
    if importlib.util.find_spec("numba") is None:
        return None
    from . import cpu, warmup

    cache_dir, kinds = cpu._cache_dir(), warmup.kernel_sets(quantize)
    if cache_dir is None or not warmup.missing(cache_dir, kinds):
        return True
    if compile_in_background:
        warmup.compile_in_background(cache_dir, kinds)
    return False
