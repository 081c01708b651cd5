"""Compile every kernel a model's forward pass can call, once, the first time this machine runs them.

Numba compiles a kernel the first time it is called with new argument types, and caches the
machine code on disk. Left to itself, a first command compiled what it used, and later the first
run of another command, or of a bigger batch (which moves an op from the calling thread to the
thread pool: the other variant of its kernel), compiled again, several seconds each time.

`ensure_compiled(ops, quantize)` (called by NumbaOps.prepare) runs every op a forward pass uses
(linear on packed weights, the activation pass, layernorm with and without a residual, the
fused attention) on tiny arrays of the very types the model passes, each in its parallel and its
serial variant: one compile of everything, announced by one line on stderr. Then it times the
whole-tile shapes of the products (calibration.py). A stamp file beside Numba's cache records
that this machine (CPU name and features, Numba and llvmlite versions, the kernels' sources) has
them all, and which tile won; later processes skip both and load only the kernels they call
(`tiling` reads the stamp). int8 has its own set and stamp, compiled the first time a model asks for it.
The ops a forward pass only uses on request (attention probabilities, head masks, hooks) compile
when first asked for.

One process compiles per cache directory (a lock file beside the stamps); another that needs the
kernels meanwhile waits for it, then loads. `compile_in_background` runs the same compile in a
detached process (`python -m` this module): the CLI's first file or stdin command uses it and runs
on the numpy backend meanwhile, rather than waiting ~30 s.
"""

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import llvmlite
import numba
import numpy as np

from . import calibration, isa

KERNEL_DIR = Path(__file__).resolve().parent
# CPU seconds of the compile on the 2-core AMD EPYC (Zen 3) this was measured on, shared with other
# jobs (`python tools/bench/bench_startup.py`): what the notice announces.
ESTIMATE_S = {None: 30, "int8": 10}
NOTICE = "minidistil: compiling kernels once, ~{seconds} s (numba, cached in {where})\n"
BACKGROUND_NOTICE = ("minidistil: compiling kernels once, ~{seconds} s, in the background (numba, cached in "
                     "{where}); until then commands run on the numpy backend\n")
LOCK_NAME = "minidistil-compile.lock"


def _key(quantize):
    """What Numba's cache entries depend on, plus the kernel set: a change of any makes a new stamp."""
    sources = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in KERNEL_DIR.glob("*.py"))
    text = repr((numba.__version__, llvmlite.__version__, isa.cpu_name(), sorted(isa.features()), sources, quantize))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp_path(cache_dir, quantize):
    """The stamp of this kernel set in Numba's cache directory `cache_dir`."""
    return Path(cache_dir) / f"minidistil-{quantize or 'float32'}-{_key(quantize)}.stamp"


def kernel_sets(quantize):
    """The kernel sets a model with `quantize` runs: float32 (None) always, int8 besides when asked for."""
    return (None,) if quantize is None else (None, quantize)


def missing(cache_dir, kernel_sets):
    """The kernel sets of `kernel_sets` without a stamp in `cache_dir` that records a tiling (none yet, or
    one cut short or not of this version: compiled again, which then mostly loads from Numba's cache)."""
    return [kind for kind in kernel_sets if _recorded_tiling(stamp_path(cache_dir, kind), kind) is None]


def _recorded_tiling(stamp, kind):
    """The gemm.Tiling a stamp file of kernel set `kind` records, or None when it cannot be read as one of
    ours, or names a tiling this process cannot run (AMX, where the OS now refuses its registers)."""
    try:
        recorded = calibration.NAMES[json.loads(stamp.read_text())["tiling"]]
    except (OSError, ValueError, KeyError, TypeError):  # no file, not JSON, no "tiling", or not a known name
        return None
    return recorded if recorded in calibration.candidates(kind == "int8") else None


@contextlib.contextmanager
def _compile_lock(cache_dir, wait):
    """One compiling process per cache directory: yields True when this one holds the lock.

    wait=False yields False at once when another process holds it (a background compile that
    finds one running leaves it to finish).
    """
    with open(Path(cache_dir) / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _writable(cache_dir):
    try:
        os.makedirs(cache_dir, exist_ok=True)  # Numba makes it on its first save; the stamp may come first
    except OSError:
        return False
    return os.access(cache_dir, os.W_OK)


def ensure_compiled(ops, cache_dir, kernel_sets=(None,), wait=True):
    """Compile (or load) every kernel of the forward pass on `ops` (a NumbaOps), unless the stamps say it was.

    cache_dir: where Numba caches these kernels (None: no cache, nothing to do). kernel_sets: None
    (float32) and/or "int8". Returns the sets it compiled. A stamp is written only when the cache
    directory is writable: without one, every process would compile anyway. A process that finds
    another compiling waits for it (then finds the stamps), or with wait=False leaves at once.
    """
    if cache_dir is None or not missing(cache_dir, kernel_sets) or not _writable(cache_dir):
        return []
    with _compile_lock(cache_dir, wait) as holding:
        todo = missing(cache_dir, kernel_sets) if holding else []  # the other process may have done them
        if todo and wait:
            sys.stderr.write(NOTICE.format(seconds=sum(ESTIMATE_S[kind] for kind in todo), where=cache_dir))
            sys.stderr.flush()
        for kind in todo:
            start = time.perf_counter()
            exercise(ops, kind)
            compiled_s = time.perf_counter() - start
            tiling, ratios = calibration.choose(kind == "int8")
            record = {"compiled_s": round(compiled_s, 1), "tiling": calibration.name(tiling),
                      "time_ratios": {candidate: {product: round(ratio, 3) for product, ratio in by_product.items()}
                                      for candidate, by_product in ratios.items()}}
            _write_atomically(stamp_path(cache_dir, kind), json.dumps(record) + "\n")
        return todo


def _write_atomically(path, text):
    """path's contents = text, never seen half written (a process may read the stamp meanwhile)."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def tiling(cache_dir, kind):
    """The gemm.Tiling kernel set `kind` (None: float32, or "int8") runs with: $MINIDISTIL_TILING when
    set, else the one its stamp in `cache_dir` records, else (no cache directory, or one that cannot
    be written, so no stamp) timed in this process, once."""
    chosen = calibration.from_environment(kind == "int8")
    if chosen is not None:
        return chosen
    recorded = None if cache_dir is None else _recorded_tiling(stamp_path(cache_dir, kind), kind)
    return _timed_here(kind) if recorded is None else recorded


@functools.lru_cache(maxsize=None)
def _timed_here(kind):
    return calibration.choose(kind == "int8")[0]


def compile_in_background(cache_dir, kernel_sets):
    """Start compiling `kernel_sets` in a detached process (this module run as a script); returns at once.

    For one-shot commands that would rather run on the numpy backend now than wait for the
    compile: the next process finds the stamps. The notice says so, once per process.
    """
    if not _writable(cache_dir):
        return
    kinds = [kind or "float32" for kind in kernel_sets]
    sys.stderr.write(BACKGROUND_NOTICE.format(seconds=sum(ESTIMATE_S[kind] for kind in missing(cache_dir, kernel_sets)),
                                              where=cache_dir))
    sys.stderr.flush()
    subprocess.Popen([sys.executable, "-m", __name__, *kinds], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)  # not stopped by the caller's Ctrl-C


def exercise(ops, quantize=None):
    """Every op of a forward pass on tiny inputs of the model's types, serial and parallel variants."""
    from . import gemm
    from .reference import quantize_matrix

    rng = np.random.default_rng(0)
    # [Out, In]: a whole and a partial panel, so that the product splits over threads (a panel is 16
    # columns with AVX2, 32 with AVX-512: a fixed 20 was one panel there, and the parallel variant
    # compiled later, in the first model's pass)
    out_features = gemm.PANEL + 4
    weight = rng.standard_normal((out_features, 8)).astype(np.float32)
    packed = gemm.pack_int8(*quantize_matrix(weight)) if quantize == "int8" else gemm.pack_float32(weight)
    gamma, beta = np.ones(8, np.float32), np.zeros(8, np.float32)
    saved = ops.serial_work, ops.threads, dict(ops.tilings)
    ops.threads = None  # every core: the parallel variants run wherever a machine has more than one
    try:
        for serial_work in (0, 1 << 62):  # everything through the pool, then everything in this thread
            ops.serial_work = serial_work
            x = rng.standard_normal((2, 7, 8)).astype(np.float32)  # [B, S, D]: whole and edge tiles
            for tiling in calibration.candidates(quantize == "int8"):  # AMX's products are kernels of their own,
                ops.tilings[quantize] = tiling  # for products of AMX_FROM_ROWS rows or more
                rows = x if not tiling.amx else rng.standard_normal((1, gemm.AMX_ROWS + 3, 8)).astype(np.float32)
                ops.linear(rows, packed, rng.standard_normal(out_features).astype(np.float32), "gelu")
            if quantize is not None:
                continue
            h = ops.layernorm(x, gamma, beta, 1e-12)
            ops.layernorm(x, gamma, beta, 1e-12, residual=h)
            qkv = rng.standard_normal((2, 7, 3, 2, 4)).astype(np.float32)  # [B, S, 3, H, Dh], split as the model does
            q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
            ops.attention(q, k, v, np.ones((2, 7), bool), 0.5)
    finally:
        ops.serial_work, ops.threads, ops.tilings = saved


def main(kinds):
    """`python -m <this module> float32 int8`: what compile_in_background runs."""
    from .cpu import NumbaOps, _cache_dir

    ensure_compiled(NumbaOps(), _cache_dir(), [None if kind == "float32" else kind for kind in kinds], wait=False)


if __name__ == "__main__":
    main(sys.argv[1:])
