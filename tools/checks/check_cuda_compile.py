#!/usr/bin/env python3
"""Compile every CUDA source of kernels/ with nvcc, so that a broken kernel fails CI on a machine without a GPU.

    python tools/checks/check_cuda_compile.py [--arch 90] [--verbose] [FILE.cu ...]

Each file is compiled to PTX for compute_<arch> (`nvcc --ptx`, warnings are
errors) and the PTX is assembled for sm_<arch> with ptxas when it is there,
which also catches resource errors (registers, shared memory). The backend
itself compiles the same sources at run time with NVRTC (through cupy), which
has no system headers: a source with an #include fails here too.

Exit status: 0 all compiled; 1 a source failed (the compiler's message is
printed); 2 nvcc was not found. CI machines have nvcc, so a missing one is a
failure unless MINIDISTIL_SKIP_NVCC=1 is set, which turns it into a skip
(exit 0, saying so). $NVCC names the compiler to use; else nvcc on PATH, else
/usr/local/cuda/bin/nvcc.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KERNEL_DIR = ROOT / "kernels"
SKIP_ENV = "MINIDISTIL_SKIP_NVCC"


def find_nvcc():
    for candidate in (os.environ.get("NVCC"), shutil.which("nvcc"), "/usr/local/cuda/bin/nvcc"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def find_ptxas(nvcc):
    beside = Path(nvcc).with_name("ptxas")
    return str(beside) if beside.is_file() else shutil.which("ptxas")


def compile_source(source, nvcc, ptxas, arch, workdir, verbose=False):
    """Compile one .cu file; returns an error message, or None when it compiled."""
    text = source.read_text(encoding="utf-8")
    include = re.search(r"^\s*#\s*include\b.*$", text, re.M)
    if include:
        return (f"{source}: '{include.group(0).strip()}': NVRTC (cupy's compiler) has no system headers; "
                "keep sources self-contained")
    ptx = Path(workdir) / (source.stem + ".ptx")
    steps = [[nvcc, "--ptx", f"-arch=compute_{arch}", "-Werror", "all-warnings", "-o", str(ptx), str(source)]]
    if ptxas:
        steps.append([ptxas, f"-arch=sm_{arch}", "-v", "-o", os.devnull, str(ptx)])
    for command in steps:
        result = subprocess.run(command, capture_output=True, text=True)
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            return f"{source}: {Path(command[0]).name} failed (exit {result.returncode}):\n{output}"
        if verbose and output:
            print(f"{source.name}: {output}")
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="CUDA sources (default: every kernels/*.cu)")
    parser.add_argument("--arch", default="90", help="compute capability digits (default 90: H100/H200)")
    parser.add_argument("--verbose", action="store_true", help="print ptxas' register and memory use")
    args = parser.parse_args(argv)

    files = args.files or sorted(KERNEL_DIR.glob("*.cu"))
    if not files:
        print(f"check_cuda_compile: no CUDA sources in {KERNEL_DIR}", file=sys.stderr)
        return 1
    nvcc = find_nvcc()
    if nvcc is None:
        if os.environ.get(SKIP_ENV) == "1":
            print(f"check_cuda_compile: SKIPPED, nvcc not found ({SKIP_ENV}=1): {len(files)} CUDA sources not compiled")
            return 0
        print(f"check_cuda_compile: nvcc not found (set $NVCC, put it on PATH, or {SKIP_ENV}=1 to skip)",
              file=sys.stderr)
        return 2
    ptxas = find_ptxas(nvcc)

    failures = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="minidistil-nvcc-") as workdir, ThreadPoolExecutor() as pool:
        errors = pool.map(lambda source: compile_source(source, nvcc, ptxas, args.arch, workdir, args.verbose), files)
        for source, error in zip(files, errors):
            print(f"{'FAILED' if error else 'ok':6s} {source.name}")
            if error:
                failures.append(error)
    for error in failures:
        print(error, file=sys.stderr)
    target = f"compute_{args.arch} PTX" + (f" + sm_{args.arch} ptxas" if ptxas else " (ptxas not found)")
    print(f"check_cuda_compile: {len(files) - len(failures)} of {len(files)} sources compiled for {target} "
          f"with {nvcc} in {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
