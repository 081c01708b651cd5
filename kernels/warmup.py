"""Compile every kernel a model's forward pass can call, once, the first time this machine runs them.

Numba compiles a kernel the first time it is called with new argument types, and caches the
machine code on disk. Left to itself, a first command compiled what it used, and later the first
run of another command, or of a bigger batch (which moves an op from the calling thread to the
thread pool: the other variant of its kernel), compiled again, several seconds each time.

`ensure_compiled(ops, quantize)` (called by NumbaOps.prepare) runs every op a forward pass uses
(linear on packed weights, the activation pass, layernorm with and without a residual, the
fused attention) on tiny arrays of the very types the model passes, each in its parallel and its
serial variant: one compile of everything, announced by one line on stderr. A stamp file beside
Numba's cache then records that this machine (CPU name and features, Numba and llvmlite
versions, the kernels' sources) has them all, and later processes skip this and load only the
kernels they call. int8 has its own set and stamp, compiled the first time a model asks for it.
The ops a forward pass only uses on request (attention probabilities, head masks, hooks) compile
when first asked for.
"""

import hashlib
import os
import sys
import time
from pathlib import Path

import llvmlite
import numba
import numpy as np

from . import isa

KERNEL_DIR = Path(__file__).resolve().parent
# CPU seconds of the compile on the 2-core AMD EPYC (Zen 3) this was measured on, shared with other
# jobs (`python tools/bench/bench_startup.py`): what the notice announces.
ESTIMATE_S = {None: 30, "int8": 10}
NOTICE = "minidistil: compiling kernels once, ~{seconds} s (numba, cached in {where})\n"


def _key(quantize):
    """What Numba's cache entries depend on, plus the kernel set: a change of any makes a new stamp."""
    sources = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in KERNEL_DIR.glob("*.py"))
    text = repr((numba.__version__, llvmlite.__version__, isa.cpu_name(), sorted(isa.features()), sources, quantize))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp_path(cache_dir, quantize):
    """The stamp of this kernel set in Numba's cache directory `cache_dir`."""
    return Path(cache_dir) / f"minidistil-{quantize or 'float32'}-{_key(quantize)}.stamp"


def ensure_compiled(ops, cache_dir, kernel_sets=(None,)):
    """Compile (or load) every kernel of the forward pass on `ops` (a NumbaOps), unless the stamps say it was.

    cache_dir: where Numba caches these kernels (None: no cache, nothing to do). kernel_sets: None
    (float32) and/or "int8". Returns the sets it compiled. A stamp is written only when the cache
    directory is writable: without one, every process would compile anyway.
    """
    if cache_dir is None:
        return []
    try:
        os.makedirs(cache_dir, exist_ok=True)  # Numba makes it on its first save; the stamp may come first
    except OSError:
        return []
    if not os.access(cache_dir, os.W_OK):
        return []
    missing = [kind for kind in kernel_sets if not stamp_path(cache_dir, kind).exists()]
    if missing:
        sys.stderr.write(NOTICE.format(seconds=sum(ESTIMATE_S[kind] for kind in missing), where=cache_dir))
        sys.stderr.flush()
    for kind in missing:
        start = time.perf_counter()
        exercise(ops, kind)
        stamp_path(cache_dir, kind).write_text(f"compiled in {time.perf_counter() - start:.1f} s\n")
    return missing


def exercise(ops, quantize=None):
    """Every op of a forward pass on tiny inputs of the model's types, serial and parallel variants."""
    from . import gemm
    from .reference import quantize_matrix

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((20, 8)).astype(np.float32)  # [Out, In]: a whole and a partial panel
    packed = gemm.pack_int8(*quantize_matrix(weight)) if quantize == "int8" else gemm.pack_float32(weight)
    gamma, beta = np.ones(8, np.float32), np.zeros(8, np.float32)
    saved = ops.serial_work, ops.threads
    ops.threads = None  # every core: the parallel variants run wherever a machine has more than one
    try:
        for serial_work in (0, 1 << 62):  # everything through the pool, then everything in this thread
            ops.serial_work = serial_work
            x = rng.standard_normal((2, 7, 8)).astype(np.float32)  # [B, S, D]: whole and edge tiles
            ops.linear(x, packed, rng.standard_normal(20).astype(np.float32), "gelu")
            if quantize is not None:
                continue
            h = ops.layernorm(x, gamma, beta, 1e-12)
            ops.layernorm(x, gamma, beta, 1e-12, residual=h)
            qkv = rng.standard_normal((2, 7, 3, 2, 4)).astype(np.float32)  # [B, S, 3, H, Dh], split as the model does
            q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
            ops.attention(q, k, v, np.ones((2, 7), bool), 0.5)
    finally:
        ops.serial_work, ops.threads = saved
