"""tools/bench/bench.py's engine processes: each peer starts from the environment the bench was started with."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench", sys.argv[1])
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
from minidistil.kernels import cpu  # what writing the checkpoint imports: it sets OpenMP's and OpenBLAS's waits
env = bench.thread_env(2)
print(" ".join(f"{name}={env.get(name)}" for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT",
                                                      "OMP_NUM_THREADS")))
"""


def test_the_peers_do_not_inherit_the_waits_minidistil_sets_for_itself():
    settings = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")
    env = {k: v for k, v in os.environ.items() if k not in settings}
    out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "tools" / "bench" / "bench.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["OMP_WAIT_POLICY=None", "GOMP_SPINCOUNT=None", "OPENBLAS_THREAD_TIMEOUT=None", "OMP_NUM_THREADS=2"]


def test_the_numba_worker_reports_the_tiles_its_products_ran_with(tmp_path):
    """What bench.md's "Whole tiles" line comes from: the kernel sets' tilings of the loaded model
    (here forced by $MINIDISTIL_TILING to this CPU's last candidate, so that the expected value does not
    depend on what its calibration chose)."""
    import json

    from minidistil import DistilBertModel
    from minidistil.kernels import calibration, gemm
    from minidistil.modeling.config import DistilBertConfig

    config = DistilBertConfig(dim=16, n_heads=2, hidden_dim=32, n_layers=1)  # the worker's ids reach 30000
    DistilBertModel(config, backend="numpy").save_pretrained(tmp_path)
    forced = calibration.name(gemm.TILINGS[-1])
    for quantize, engine in ((None, "numba"), ("int8", "numba-int8")):
        command = [sys.executable, str(ROOT / "tools" / "bench" / "bench_worker.py"), engine, "--model", str(tmp_path)]
        worker = subprocess.run(command, cwd=ROOT, env={**os.environ, "MINIDISTIL_TILING": forced}, input="quit\n",
                                capture_output=True, text=True, timeout=600, check=True)
        ready = json.loads(worker.stdout.splitlines()[0])
        assert ready["tilings"] == {"float32": forced, **({"int8": forced} if quantize else {})}, ready


def _tool(name):
    """The module of tools/bench/<name>.py (tools/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stats(round_ms):
    return {"median_ms": sorted(round_ms)[len(round_ms) // 2], "min_ms": min(round_ms), "max_ms": max(round_ms),
            "seq_per_s": 1.0, "round_ms": round_ms, "peak_rss_mib": 1.0}


def test_the_int8_table_gives_the_per_round_ratios_as_the_float32_one_does():
    """A round where the machine slowed every engine moves the medians; the per-round ratio cancels it."""
    bench = _tool("bench")
    results = {"numba": _stats([10.0, 10.0, 30.0]), "numba-int8": _stats([2.0, 6.0, 9.0]),
               "onnxruntime-int8": _stats([2.0, 3.0, 10.0])}
    data = {"date": "today", "machine": {"cpu": "cpu", "cores": 2, "flags": "", "numba_target": "t", "blas": "b"},
            "loadavg": "0", "versions": "v", "engines": list(results), "command": "bench",
            "rows": [{"shape": "1x8", "threads": 2, "gemm_floor_ms": 1.0, "results": results}],
            "sgemm_gflops": {}, "corpus": [], "cold_start": {}}
    row = next(line for line in bench.report(data).splitlines() if line.startswith("| 1x8 | 2 | 6.0"))
    # medians 6 / 3 = 2.00; per round 2/2, 6/3, 9/10 -> median 1.00; against numba fp32 0.60 and (0.2, 0.6, 0.3) -> 0.30
    assert "| 2.00 (1.00) | 0.60 (0.30) |" in row, row


def test_the_onnx_export_names_what_the_reference_environment_lacks(tmp_path):
    """Without onnx torch.onnx.export fails deep inside torch; the worker names every package it lacks instead
    (the test environment has onnx, not torch or onnxruntime)."""
    import importlib.util

    import pytest

    worker = ROOT / "tools" / "bench" / "bench_worker.py"
    missing = [name for name in _tool("bench_worker").EXPORT_NEEDS if importlib.util.find_spec(name) is None]
    if not missing:
        pytest.skip("this environment has torch, transformers, onnx and onnxruntime: the export would run")
    done = subprocess.run([sys.executable, str(worker), "export", "--model", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert f"lacks {', '.join(missing)};" in done.stderr and "Traceback" not in done.stderr


def test_the_avx2_emulation_turns_off_every_newer_family_and_what_the_host_lacks():
    import llvmlite.binding as llvm

    module = _tool("avx2_env")
    newer = {"avx512f": True, "avx512vnni": True, "avx10.1-512": True, "evex512": True, "avxvnni": True,
             "amx-int8": True}  # what CPUs after AVX2 add, as LLVM names it
    host = {**dict(llvm.get_host_cpu_features()), "avx2": True, "fma": True, "sse4a": False, **newer}
    flags = dict((flag[1:], flag[0]) for flag in module.emulated_features(host).split(","))
    assert flags.keys() == host.keys()
    assert all(flags[name] == "-" for name in newer) and flags["sse4a"] == "-"
    assert {name for name, sign in flags.items() if sign == "+"} == {
        name for name, on in host.items() if on and not name.startswith(module.NEWER_FAMILIES)}
    assert flags["avx2"] == flags["fma"] == "+"


def test_the_avx2_emulation_refuses_a_cpu_without_avx2():
    import pytest

    with pytest.raises(SystemExit, match="lacks avx2, fma"):
        _tool("avx2_env").emulated_features({"avx": True, "sse4.2": True})


EMULATED_CHILD = r"""
import numpy as np
from numba import njit
from threadpoolctl import threadpool_info
from minidistil.kernels import isa

@njit
def fused(a, b, c):
    for i in range(a.shape[0]):
        c[i] = a[i] * b[i] + c[i]

x = np.ones(1024, np.float32)
fused(x, x, x.copy())
asm = next(iter(fused.inspect_asm().values()))
print(isa.describe())
print(sorted(f for f in isa.features() if f.startswith(("avx512", "amx", "avxvnni"))))
print("zmm" in asm, "ymm" in asm)
print(sorted({i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"}))
"""


def test_under_the_avx2_emulation_numba_emits_ymm_code_only_and_openblas_runs_its_haswell_kernels():
    """The point of the emulation: Numba's code and OpenBLAS's kernels as on an AVX2 machine, whatever this CPU is."""
    import llvmlite.binding as llvm
    import pytest

    module = _tool("avx2_env")
    host = dict(llvm.get_host_cpu_features())
    if not (host.get("avx2") and host.get("fma")):
        pytest.skip("this CPU has no AVX2 + FMA: there is no AVX2 machine to emulate on it")
    env = {**os.environ, **module.environment(host)}
    lines = subprocess.run([sys.executable, "-c", EMULATED_CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300, check=True).stdout.splitlines()
    assert lines[0].startswith("haswell, 8 float32 lanes x 16 registers, features: avx avx2 fma"), lines
    assert lines[1:3] == ["[]", "False True"], lines
    assert lines[3] in ("['Haswell']", "[]"), lines  # every OpenBLAS loaded (NumPy's, SciPy's); [] where none is


def test_the_avx2_environment_prints_as_shell_exports():
    printed = subprocess.run([sys.executable, str(ROOT / "tools" / "bench" / "avx2_env.py")], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
    if printed.returncode:
        assert "an AVX2 machine cannot be emulated" in printed.stderr
        return
    names = [line.split("=", 1)[0] for line in printed.stdout.splitlines()]
    assert names == ["export NUMBA_CPU_NAME", "export NUMBA_CPU_FEATURES", "export OPENBLAS_CORETYPE"]


def test_the_kernel_tables_time_the_tiles_a_model_runs_with(monkeypatch):
    """bench_kernels.py's gemm and linears tables: the tilings ops.prepare gives a model (here forced by
    $MINIDISTIL_TILING to this CPU's last candidate), not gemm.matmul's default."""
    from minidistil.kernels import calibration, cpu, gemm

    monkeypatch.setenv(calibration.ENVIRONMENT, calibration.name(gemm.TILINGS[-1]))
    tilings = _tool("bench_kernels").model_tilings(cpu.NumbaOps(threads=1))
    assert tilings == {None: calibration.from_environment(False), "int8": calibration.from_environment(True)}
