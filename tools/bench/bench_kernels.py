"""Micro-benchmarks behind the choices in kernels/cpu.py (the model-level table is tools/bench/bench.py).

    python tools/bench/bench_kernels.py spin        # OpenMP spin-wait vs the next BLAS call, per threading setup,
                                              # and OpenBLAS's spin-wait vs the next Numba kernel (and the
                                              # CPU time its threads burn while the process is idle)
    python tools/bench/bench_kernels.py pause       # parallel regions after the process idled 0-200 ms, per
                                              # OpenMP setting (on cloud VMs they slow down: README)
    python tools/bench/bench_kernels.py gemm        # the packed matmul (float32, int8) vs OpenBLAS, by number of rows
    python tools/bench/bench_kernels.py linears     # each kind of linear at 4092 rows vs OpenBLAS, per-round ratios
    python tools/bench/bench_kernels.py ops         # each op, numba vs the NumPy reference, batch 32 x 128 and 1 x 128
    python tools/bench/bench_kernels.py all

Every figure is the median of repeated runs (min in brackets), wall clock,
with --threads threads (default 2) for both BLAS and Numba. gemm and linears
run the whole tiles a model runs with on this machine (model_tilings) and name
them in their headers.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def timed(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, min(times) * 1e3


def fmt(t):
    return f"{t[0]:.3f} ({t[1]:.3f})"


# ---------------------------------------------------------------- spin


SPIN_CHILD = r"""
import os, sys, time, statistics
import numpy as np
if sys.argv[2] == "shipped":  # before Numba starts OpenMP: what importing the backend sets, as a model gets it
    from minidistil.kernels import cpu  # noqa: F401
import numba
from numba import njit, prange
from minidistil.kernels import blas

threads = int(sys.argv[1])
numba.set_num_threads(threads)
blas.set_threads(threads)


@njit(parallel=True)
def touch(y):  # a trivial parallel kernel: its cost is launching and leaving the parallel region
    for i in prange(y.shape[0]):
        y[i, 0] += 1.0


def timed(fn, n=60):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3, min(ts) * 1e3


def woken(gap_s=200e-6, n=200):  # a parallel region after `gap_s` of work in this thread: the pool's wake-up
    small = np.zeros((threads, 1))  # (measured before any GEMM: OpenBLAS's spinning threads keep cores awake)
    touch(small)
    times = []
    for _ in range(n):
        end = time.perf_counter() + gap_s
        while time.perf_counter() < end:
            pass
        t = time.perf_counter(); touch(small); times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


wake_us = woken()
rng = np.random.default_rng(0)
rows = []
for m in (8, 128):
    x = rng.standard_normal((m, 768), dtype=np.float32)
    w = rng.standard_normal((3072, 768), dtype=np.float32)
    y = np.empty((m, 3072), np.float32)
    touch(y)
    gemm = timed(lambda: np.matmul(x, w.T, out=y))
    both = timed(lambda: (np.matmul(x, w.T, out=y), touch(y)))
    rows.append(f"M={m}: GEMM {gemm[0]:.2f} ms, GEMM + parallel kernel {both[0]:.2f} ms")
waits = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                                                         "OPENBLAS_THREAD_TIMEOUT"))
print(f"layer={numba.threading_layer()} ({waits}): " + "; ".join(rows)
      + f"; a parallel region 200 us after the last {wake_us:.0f} us")
"""


BLAS_SPIN_CHILD = r"""
import sys, time, statistics
import numpy as np
from minidistil.kernels import cpu  # as shipped: sets OPENBLAS_THREAD_TIMEOUT=4 unless the environment has one

ops = cpu.NumbaOps(threads=int(sys.argv[1]))
rng = np.random.default_rng(0)
x = rng.standard_normal((128, 768), dtype=np.float32)
w = rng.standard_normal((3072, 768), dtype=np.float32)
w2 = rng.standard_normal((768, 3072), dtype=np.float32)
y, z = np.empty((128, 3072), np.float32), np.empty((128, 768), np.float32)
b, b2 = np.zeros(3072, np.float32), np.zeros(768, np.float32)
ops._parallel(w.size)


def timed(fn, n=40):
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def idle_burn(n=10):  # CPU time the process uses while it sleeps 200 ms right after a GEMM: the spinning
    burnt = []        # (CPU time, so it holds on a loaded machine, where the wall-clock figures above wobble)
    for _ in range(n):
        np.matmul(x, w.T, out=y)
        start = time.process_time(); time.sleep(0.2); burnt.append(time.process_time() - start)
    return statistics.median(burnt) * 1e3


gemm = timed(lambda: np.matmul(x, w.T, out=y))
kernel = timed(lambda: cpu._bias_act.parallel(y, b, 1))  # the GELU pass a BLAS linear is followed by
both = timed(lambda: (np.matmul(x, w.T, out=y), cpu._bias_act.parallel(y, b, 1)))
print(f"GEMM {gemm:.2f} ms + GELU pass {kernel:.2f} ms = {gemm + kernel:.2f}; one after the other {both:.2f} ms; "
      f"CPU burnt in 200 ms idle after a GEMM {idle_burn():.1f} ms")
"""


def spin(threads):
    print(f"## OpenMP spin-wait vs BLAS ({threads} threads): GEMM (M x 768) @ (768 x 3072), then a trivial "
          "Numba parallel kernel, repeated; medians")
    starting_env = dict(os.environ)  # another table may import cpu.py, which sets OpenMP's and OpenBLAS's waits here
    omp, waits = "NUMBA_THREADING_LAYER", ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")
    setups = [  # label, variables set, whether the child imports the backend first (which sets the rest)
        ("omp, OMP_WAIT_POLICY unset (libgomp spins ~300,000 rounds)", {omp: "omp"}, False),
        ("omp, OMP_WAIT_POLICY=PASSIVE alone (no spin)", {omp: "omp", "OMP_WAIT_POLICY": "PASSIVE"}, False),
        ("omp, as kernels/cpu.py sets the waits (the shipped default)", {omp: "omp"}, True),
        ("workqueue", {omp: "workqueue"}, False),
    ]
    for label, extra, shipped in setups:
        env = {k: v for k, v in starting_env.items() if k not in waits}
        env.update(extra)
        res = subprocess.run([sys.executable, "-c", SPIN_CHILD, str(threads), "shipped" if shipped else "bare"],
                             env=env, cwd=ROOT, capture_output=True, text=True)
        print(f"- {label}: {res.stdout.strip() or res.stderr.strip().splitlines()[-1]}")
    print(f"## OpenBLAS spin-wait vs the next Numba kernel ({threads} threads): GEMM (128 x 768) @ (768 x 3072), "
          "then the GELU pass over its output (a linear whose weight is not packed)")
    for label, timeout in (("OpenBLAS default (OPENBLAS_THREAD_TIMEOUT=28: spins ~0.1 s)", "28"),
                           ("as kernels/cpu.py sets it (OPENBLAS_THREAD_TIMEOUT=4)", None)):
        env = {k: v for k, v in starting_env.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
        if timeout:
            env["OPENBLAS_THREAD_TIMEOUT"] = timeout
        res = subprocess.run([sys.executable, "-c", BLAS_SPIN_CHILD, str(threads)], env=env, cwd=ROOT,
                             capture_output=True, text=True)
        print(f"- {label}: {res.stdout.strip() or res.stderr.strip().splitlines()[-1]}")


# ---------------------------------------------------------------- pause

PAUSE_CHILD = r"""
import statistics, sys, time
import numpy as np
from minidistil.kernels import cpu

ops = cpu.NumbaOps(threads=int(sys.argv[1]))
ops._parallel(1 << 40)  # sets this thread's Numba threads
x = np.ones((ops._threads(), 1))
cpu._bias_act.parallel(x, np.zeros(1), 0)
cells = []
for gap_ms in (0, 1, 10, 50, 200):
    runs = []
    for _ in range(8):
        time.sleep(gap_ms / 1e3)
        times = []
        for _ in range(60):  # a 1 x 8 pass runs ~60 regions
            start = time.perf_counter()
            cpu._bias_act.parallel(x, np.zeros(1), 0)
            times.append(time.perf_counter() - start)
        runs.append(times)
    by_region = np.median(np.array(runs), axis=0) * 1e6
    cells.append(f"{gap_ms} ms: first {by_region[0]:.0f} us, later {np.median(by_region[1:]):.1f} us, "
                 f"60 regions {by_region.sum() / 1e3:.2f} ms")
print("; ".join(cells))
"""


def pause(threads):
    print(f"## Parallel regions after a pause ({threads} threads): 60 trivial regions in a row after sleeping 0-200 ms, "
          "median over 8 repeats per region")
    starting_env = {k: v for k, v in os.environ.items() if k not in ("OMP_PROC_BIND", "GOMP_SPINCOUNT")}
    for label, extra in (("as kernels/cpu.py sets OpenMP (the shipped default)", {}),
                         ("OMP_PROC_BIND=true (each thread pinned to a CPU, the calling one too)", {"OMP_PROC_BIND": "true"}),
                         ("GOMP_SPINCOUNT=100000 (ten times the shipped spin)", {"GOMP_SPINCOUNT": "100000"})):
        res = subprocess.run([sys.executable, "-c", PAUSE_CHILD, str(threads)], env={**starting_env, **extra},
                             cwd=ROOT, capture_output=True, text=True)
        print(f"- {label}: {res.stdout.strip() or res.stderr.strip().splitlines()[-1]}")


# ---------------------------------------------------------------- packed matmul


def model_tilings(ops, quantize="int8"):
    """{None: the float32 Tiling, and "int8": the int8 one with quantize="int8"} that a model's products run
    with on this machine: what ops.prepare sets (the calibration's stamp, or $MINIDISTIL_TILING), so that
    the tables below time the tiles a model runs, not gemm.matmul's default (TALL)."""
    import numpy as np

    ops.prepare({"w": np.zeros((1, 1), np.float32)}, matrices=("w",), quantize=quantize)
    return dict(ops.tilings)


def _tilings_line(tilings):
    """The tilings for a table's header: "float32 wide, int8 wide+amx"."""
    from minidistil.kernels import calibration

    return ", ".join(f"{'float32' if kind is None else kind} {calibration.name(t)}" for kind, t in tilings.items())


def gemm_table(threads):
    import numpy as np

    from minidistil.kernels import cpu, gemm
    from minidistil.kernels.reference import quantize_matrix

    ops = cpu.NumbaOps(threads=threads)
    ops._parallel(1 << 30)  # sets BLAS and Numba threads
    tilings = model_tilings(ops)
    rng = np.random.default_rng(0)
    # the six weights of each of 6 layers: 170 MB, streamed from memory as in the model
    shapes = [(768, 768)] * 4 + [(3072, 768), (768, 3072)]
    weights = [rng.standard_normal(s, dtype=np.float32) for _ in range(6) for s in shapes]
    packed = [gemm.pack_float32(w) for w in weights]
    quantized = [gemm.pack_int8(*quantize_matrix(w)) for w in weights]
    print(f"## The 36 linear weights of the encoder (no bias), {threads} threads, tiles {_tilings_line(tilings)}: "
          "ms per pass over all of them, median (min)")
    print("| rows M | OpenBLAS x @ W.T | packed float32 | speed-up | packed int8 | int8 ÷ float32 |")
    print("|---|---|---|---|---|---|")
    for m in (1, 8, 32, 128, 512, 4096):
        xs = {k: rng.standard_normal((m, k), dtype=np.float32) for k in (768, 3072)}
        outs = {n: np.empty((m, n), np.float32) for n in (768, 3072)}
        zeros = {n: np.zeros(n, np.float32) for n in (768, 3072)}

        def run(matrices):
            for w, p in zip(weights, matrices):
                if p is None:
                    np.matmul(xs[w.shape[1]], w.T, out=outs[w.shape[0]])
                else:
                    gemm.matmul(xs[w.shape[1]], p, zeros[w.shape[0]], outs[w.shape[0]], threads,
                                tiling=tilings[None if p.scales is None else "int8"], serial_work=ops.serial_work)

        n = 3 if m >= 512 else 10
        a, b, c = (timed(lambda: run(ms), n) for ms in ([None] * len(weights), packed, quantized))
        print(f"| {m} | {fmt(a)} | {fmt(b)} | {a[0] / b[0]:.2f} | {fmt(c)} | {c[0] / b[0]:.2f} |")


def linears_table(threads, rows=4092, rounds=14):
    """The encoder's three kinds of linear at `rows` rows: packed vs OpenBLAS, median of per-round ratios.

    Rounds alternate the two, so each ratio compares runs that met the same load (this machine's
    neighbours move single runs by tens of percent). The FFN's first linear is also timed with its
    GELU: applied by the packed kernel (per block, in cache) or as a pass after it; after BLAS, a pass.
    """
    import numpy as np

    from minidistil.kernels import cpu, gemm
    from minidistil.kernels.reference import ACT_CODES, ACT_NONE

    ops = cpu.NumbaOps(threads=threads)
    ops._parallel(1 << 30)  # sets BLAS and Numba threads
    tiling = model_tilings(ops, quantize=None)[None]
    gelu = ACT_CODES["gelu"]
    rng = np.random.default_rng(0)
    print(f"## One linear at {rows} rows, {threads} threads, tiles {_tilings_line({None: tiling})}: ms, median (min); "
          f"ratio = median over {rounds} rounds of packed ÷ OpenBLAS")
    print("| linear | OpenBLAS | packed | ratio |")
    print("|---|---|---|---|")
    cases = [  # name, (Out, In), activation applied in the packed kernel, activation as a pass after it
        ("768 -> 768", (768, 768), ACT_NONE, ACT_NONE),
        ("FFN1 768 -> 3072", (3072, 768), ACT_NONE, ACT_NONE),
        ("FFN1 + GELU in the kernel", (3072, 768), gelu, ACT_NONE),
        ("FFN1 + GELU as a pass", (3072, 768), ACT_NONE, gelu),
        ("FFN2 3072 -> 768", (768, 3072), ACT_NONE, ACT_NONE),
    ]
    for name, (out_features, in_features), fused, after in cases:
        w = rng.standard_normal((out_features, in_features), dtype=np.float32) * 0.03
        x = rng.standard_normal((rows, in_features), dtype=np.float32)
        bias = np.zeros(out_features, np.float32)
        packed, y = gemm.pack_float32(w), np.empty((rows, out_features), np.float32)
        blas_act = fused or after

        def blas():
            np.matmul(x, w.T, out=y)
            if blas_act != ACT_NONE:
                ops._run(cpu._bias_act, y.size, y, bias, blas_act)

        def ours():
            gemm.matmul(x, packed, bias, y, threads, fused, tiling)
            if after != ACT_NONE:
                ops._run(cpu._bias_act, y.size, y, bias, after)

        times = {blas: [], ours: []}
        for fn in times:
            fn()
        for _ in range(rounds):
            for fn, ts in times.items():
                start = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - start)
        ratio = statistics.median(a / b for a, b in zip(times[ours], times[blas]))
        cells = [fmt((statistics.median(ts) * 1e3, min(ts) * 1e3)) for ts in times.values()]
        print(f"| {name} | {cells[0]} | {cells[1]} | {ratio:.3f} |")


# ---------------------------------------------------------------- ops


def ops_table(threads):
    import numpy as np

    from minidistil.kernels.cpu import NumbaOps
    from minidistil.kernels.reference import NumpyOps

    fast, ref = NumbaOps(threads=threads), NumpyOps(threads=threads)
    rng = np.random.default_rng(0)
    print(f"## Each op, {threads} threads: ms, median (min)")
    print("| op | shape | NumPy reference | Numba | speed-up |")
    print("|---|---|---|---|---|")
    for batch, seq in ((32, 128), (1, 128)):
        rows = batch * seq
        x = rng.standard_normal((batch, seq, 768), dtype=np.float32)
        res = rng.standard_normal((batch, seq, 768), dtype=np.float32)
        g, b = np.ones(768, np.float32), np.zeros(768, np.float32)
        w1, b1 = rng.standard_normal((3072, 768), dtype=np.float32) * 0.02, np.zeros(3072, np.float32)
        h = rng.standard_normal((batch, seq, 3072), dtype=np.float32)
        qkv = rng.standard_normal((3, batch, seq, 12, 64), dtype=np.float32)
        q, k, v = (t.transpose(0, 2, 1, 3) for t in qkv)
        mask = np.ones((batch, seq), np.int64)
        probs = ref.attention_probs(q, k, mask, 0.125)
        n = 3 if batch > 1 else 20
        w1_fast = fast.prepare({"w": w1}, matrices=["w"])["w"]
        cases = [
            ("linear + GELU (768 -> 3072)", lambda o: o.linear(x, w1_fast if o is fast else w1, b1, "gelu")),
            ("GELU alone", lambda o: o.activation(h, "gelu")),
            ("attention_probs", lambda o: o.attention_probs(q, k, mask, 0.125)),
            ("attention_context", lambda o: o.attention_context(probs, v)),
            ("attention (fused)", lambda o: o.attention(q, k, v, mask, 0.125)),
            ("layernorm(x + residual)", lambda o: o.layernorm(x, g, b, 1e-12, residual=res)),
        ]
        for name, fn in cases:
            a, c = timed(lambda: fn(ref), n), timed(lambda: fn(fast), n)
            print(f"| {name} | {batch}x{seq} | {fmt(a)} | {fmt(c)} | {a[0] / c[0]:.1f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("spin", "pause", "gemm", "linears", "ops", "all"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.what in ("spin", "all"):
        spin(args.threads)
    if args.what in ("pause", "all"):
        pause(args.threads)
    if args.what in ("gemm", "all"):
        gemm_table(args.threads)
    if args.what in ("linears", "all"):
        linears_table(args.threads)
    if args.what in ("ops", "all"):
        ops_table(args.threads)


if __name__ == "__main__":
    main()
