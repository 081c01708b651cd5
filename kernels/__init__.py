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

__all__ = ["ACTIVATIONS", "BACKENDS", "Ops", "get_ops", "resolve_threads"]

BACKEND_ENV = "MINIDISTIL_BACKEND"
THREADS_ENV = "MINIDISTIL_THREADS"
BACKENDS = ("numpy", "numba", "cupy")


def resolve_threads(threads=None):
    """The thread count to use: `threads`, else $MINIDISTIL_THREADS, else None (all cores)."""
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
