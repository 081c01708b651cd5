"""CI's compile check of the CUDA sources (tools/checks/check_cuda_compile.py): no GPU needed, only nvcc."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "checks" / "check_cuda_compile.py"
_spec = importlib.util.spec_from_file_location("check_cuda_compile", TOOL)
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

NVCC = check.find_nvcc()
# CI machines have nvcc: there a missing one fails (as the tool does) unless MINIDISTIL_SKIP_NVCC=1.
MUST_COMPILE = os.environ.get("CI") == "true" and os.environ.get(check.SKIP_ENV) != "1"


@pytest.fixture
def nvcc():
    if NVCC is None:
        if MUST_COMPILE:
            pytest.fail(f"nvcc not found on a CI machine (set {check.SKIP_ENV}=1 to skip the CUDA compile check)")
        pytest.skip("nvcc not found: the CUDA sources cannot be compiled here")
    return NVCC


def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_every_cuda_source_compiles_for_hopper(nvcc):
    result = run_tool()
    sources = sorted(check.KERNEL_DIR.glob("*.cu"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(sources)} of {len(sources)} sources compiled for compute_90" in result.stdout


def test_a_broken_source_fails_with_the_compilers_message(nvcc, tmp_path):
    broken = tmp_path / "broken.cu"
    broken.write_text('extern "C" __global__ void k(float* y) { y[0] = not_declared; }\n')
    result = run_tool(broken)
    assert result.returncode == 1
    assert "FAILED broken.cu" in result.stdout
    assert '"not_declared" is undefined' in result.stderr


def test_a_source_with_an_include_is_refused_before_compiling(tmp_path):
    source = tmp_path / "with_include.cu"
    source.write_text('#include <cfloat>\nextern "C" __global__ void k(float* y) { y[0] = FLT_MAX; }\n')
    error = check.compile_source(source, "nvcc-not-needed", None, "90", str(tmp_path))
    assert "NVRTC" in error and "#include <cfloat>" in error


def test_missing_nvcc_fails_unless_told_to_skip(monkeypatch, capsys):
    monkeypatch.setattr(check, "find_nvcc", lambda: None)
    monkeypatch.delenv(check.SKIP_ENV, raising=False)
    assert check.main([]) == 2
    assert "nvcc not found" in capsys.readouterr().err
    monkeypatch.setenv(check.SKIP_ENV, "1")
    assert check.main([]) == 0
    assert "SKIPPED" in capsys.readouterr().out
