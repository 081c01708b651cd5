"""What the CPU that Numba compiles for offers: its vector width, register count and byte dot product.

The packed matrix kernels (gemm.py) size their register tiles from these two
numbers instead of from constants tuned on one machine:

    AVX-512     16 float32 lanes, 32 vector registers
    AVX / AVX2   8 lanes, 16 registers
    SSE, NEON    4 lanes, 16 (x86) or 32 (Arm) registers

The int8 products take the byte dot product (vpdpbusd: 64 unsigned x signed
byte products summed in fours into int32 per instruction) where the target has
AVX-512 VNNI, and int16 pair products (vpmaddwd) elsewhere (gemm.py). Where the
CPU also has AMX (Intel Sapphire Rapids and later) and the operating system
lets this process use its tile registers, they are a third way (amx_int8).

The features are the ones Numba's code generator uses: $NUMBA_CPU_FEATURES
when set (e.g. "-avx512f,..." to emulate an older CPU), else the host's, as
LLVM reports them. Numba's on-disk cache keys every kernel by the same CPU
name and features, so a cache made on another kind of CPU is never loaded.
"""

import ctypes
import functools
import platform
import sys
from typing import NamedTuple

import llvmlite.binding as llvm
import numba

# Instruction-set extensions a benchmark reports (LLVM's names).
REPORTED_FEATURES = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vnni", "avxvnni", "amx-int8")


class VectorUnit(NamedTuple):
    lanes: int  # float32 (or int32) elements per vector register
    registers: int  # vector registers the compiler can allocate


@functools.lru_cache(maxsize=None)
def cpu_name():
    """The CPU Numba compiles for: $NUMBA_CPU_NAME, else the host's (LLVM's name, e.g. "znver3")."""
    return numba.config.CPU_NAME or llvm.get_host_cpu_name()


@functools.lru_cache(maxsize=None)
def features():
    """The set of enabled target features Numba compiles with (LLVM names: "avx2", "avx512f", ...)."""
    flat = numba.config.CPU_FEATURES
    if flat is None:
        flat = llvm.get_host_cpu_features().flatten()
    return frozenset(f[1:] for f in flat.split(",") if f.startswith("+"))


@functools.lru_cache(maxsize=None)
def vector_unit():
    """The VectorUnit of the compile target (see the module docstring)."""
    enabled = features()
    if "avx512f" in enabled:
        return VectorUnit(lanes=16, registers=32)
    if "avx" in enabled:
        return VectorUnit(lanes=8, registers=16)
    arm = platform.machine().lower() in ("arm64", "aarch64")
    return VectorUnit(lanes=4, registers=32 if arm else 16)


@functools.lru_cache(maxsize=None)
def byte_dot_product():
    """Whether the int8 tiles can use AVX-512 VNNI's vpdpbusd on 512-bit vectors (simd.madd_tile).

    Only with the 16-lane unit: the 256-bit form needs AVX512-VL or AVX-VNNI (Alder Lake, Zen 5 and
    later), which take the pair products instead: the same integers, half the products per instruction.
    """
    return vector_unit().lanes == 16 and "avx512vnni" in features()


# Linux makes a process ask before it uses AMX's 8 KiB of tile registers (the kernel then saves them
# on each context switch): arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), Linux 5.16 and later.
_SYS_ARCH_PRCTL = 158  # x86-64
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18


@functools.lru_cache(maxsize=None)
def amx_int8():
    """Whether the int8 products can run on AMX tiles (simd.amx_tile): the compile target has AMX-INT8
    (with the byte dot product's layout, which the tiles read as it is), the CPU it runs on too, and
    the operating system grants this process the tile registers (asked here, once: Linux only)."""
    wanted = {"amx-tile", "amx-int8"}
    if not (sys.platform == "linux" and platform.machine() == "x86_64" and byte_dot_product()
            and wanted <= features()):
        return False
    host = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    if not wanted <= host:
        return False
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype, syscall.argtypes = ctypes.c_long, [ctypes.c_long, ctypes.c_long, ctypes.c_long]
    return syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0


def describe():
    """A one-line summary for benchmarks and bug reports: CPU name, vector unit, reported features."""
    unit = vector_unit()
    flags = [name for name in REPORTED_FEATURES if name in features()]
    return f"{cpu_name()}, {unit.lanes} float32 lanes x {unit.registers} registers, features: {' '.join(flags) or 'none'}"
