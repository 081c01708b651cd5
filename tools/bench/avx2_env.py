"""The environment that emulates an AVX2 machine (no AVX-512) for minidistil on a newer x86 CPU.

    eval "$(python tools/bench/avx2_env.py)"       # then any bench or test in this shell runs as on AVX2
    python tools/bench/bench.py --threads 2 ...   # its header says: "Numba compiles for: haswell, 8 float32
                                                  # lanes x 16 registers, ...; BLAS ... core type Haswell"

It prints three exports:

    NUMBA_CPU_NAME=haswell      what Numba compiles for (and keys its cache by: kernels/isa.py)
    NUMBA_CPU_FEATURES=...      every feature LLVM knows on this host, "+" or "-": "-" for the AVX-512, AVX10,
                                AVX-VNNI and AMX families and for whatever the host lacks (emulated_features)
    OPENBLAS_CORETYPE=Haswell   OpenBLAS's AVX2 kernels, for the numba-blas and numpy engines

Why all three: the CPU name alone still lets LLVM use every host feature Numba passes on, and Numba
passes the host's features unless told otherwise; without OPENBLAS_CORETYPE, plain BLAS would run its
AVX-512 kernels against our AVX2 ones. What it does not emulate: PyTorch and ONNX Runtime pick their own
kernels (AVX-512, AMX) whatever this says, so ratios to them compare our AVX2 code with their newer code.
The README says which of its columns are emulated.
"""

import shlex
import sys

# LLVM feature names of the families an AVX2 machine does not have (prefixes).
NEWER_FAMILIES = ("avx512", "avx10", "avxvnni", "amx", "evex512")


def emulated_features(host):
    """NUMBA_CPU_FEATURES for an AVX2 machine, from the host's {LLVM feature: enabled}.

    >>> emulated_features({"avx2": True, "fma": True, "avx512f": True, "amx-int8": True, "sse4a": False})
    '-amx-int8,+avx2,-avx512f,+fma,-sse4a'
    """
    missing = [f for f in ("avx2", "fma") if not host.get(f)]
    if missing:
        raise SystemExit(f"avx2_env: this CPU lacks {', '.join(missing)}; an AVX2 machine cannot be emulated on it")
    return ",".join(("+" if on and not name.startswith(NEWER_FAMILIES) else "-") + name
                    for name, on in sorted(host.items()))


def environment(host):
    """The three variables (module docstring) for the host's {LLVM feature: enabled}."""
    return {"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": emulated_features(host), "OPENBLAS_CORETYPE": "Haswell"}


def main():
    import llvmlite.binding as llvm

    for name, value in environment(dict(llvm.get_host_cpu_features())).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
