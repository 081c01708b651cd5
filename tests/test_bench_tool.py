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
