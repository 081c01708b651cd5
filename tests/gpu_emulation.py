"""A stand-in for cupy that runs kernels/gpu.py on the CPU, for machines without a GPU.

`FakeCupy` offers the part of cupy that kernels/gpu.py uses:
- arrays are NumPy arrays (`FakeArray`) with cupy's `.data.ptr`; every one is
  allocated between guard bytes that are checked after each kernel and each
  matrix product, so a write out of bounds fails the test; new float arrays
  start as NaN, so an element a kernel forgot to write shows;
- `RawModule` compiles the CUDA source it is given with g++ against
  tests/cuda_host_emulator.hpp and runs each kernel there; a launch checks
  its arguments against the kernel's C signature the way the GPU would need
  them (an array for each pointer, a NumPy scalar of the exact C type for
  each value), and its grid and block against CUDA's limits;
- `cuda.cublas` computes gemmEx / gemmStridedBatchedEx from the raw pointers
  and the column-major arguments, as cuBLAS defines them, and records the
  compute type asked for.

What this cannot tell: cupy's and cuBLAS's real behaviour, the GPU's
arithmetic, speed. Those wait for tests/test_gpu.py on a machine with a GPU.
"""

import ctypes
import hashlib
import re
import shutil
import subprocess
import tempfile
import types
import weakref
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
HEADER = HERE / "cuda_host_emulator.hpp"
COMPILER = shutil.which("g++")

# C parameter types the kernels use -> what a launch must pass for them.
POINTER_DTYPES = {"float*": (np.float32,), "unsigned char*": (np.uint8, np.bool_), "int*": (np.int32,)}
SCALAR_DTYPES = {"float": np.float32, "int": np.int32, "unsigned int": np.uint32, "long long": np.int64}
CTYPES = {"float": ctypes.c_float, "int": ctypes.c_int, "unsigned int": ctypes.c_uint, "long long": ctypes.c_longlong}

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)

GUARD = 64  # guard bytes on each side of every fake device allocation
CANARY = 0xA5


def kernel_signatures(source):
    """{kernel name: [(C type, parameter name), ...]} of every extern "C" __global__ function in a CUDA source."""
    signatures = {}
    for name, params in _KERNEL.findall(source):
        parsed = []
        for param in params.split(","):
            words = param.replace("*", " * ").replace("__restrict__", " ").split()
            words = [w for w in words if w != "const"]
            ctype = " ".join(words[:-1]).replace(" *", "*")
            parsed.append((ctype, words[-1]))
        signatures[name] = parsed
    return signatures


class FakeArray(np.ndarray):
    """A NumPy array that answers cupy's `.data.ptr`."""

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)

    def __array_finalize__(self, obj):
        # A buffer that a NumPy operation made for a FakeArray is a device array in cupy's world too.
        owner = self
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
        if id(owner) not in ALLOCATIONS:
            ALLOCATIONS.add(owner, owner.ctypes.data, owner.nbytes)


class _Allocations:
    """Every fake device buffer, for bounds checks; those made by FakeCupy have guard bytes around them."""

    def __init__(self):
        self._live = weakref.WeakValueDictionary()  # id -> the object owning the buffer
        self._spans = {}  # id -> (address, nbytes, guarded: the owner is raw bytes with CANARY around the array)

    def __contains__(self, key):
        return key in self._live

    def add(self, owner, address, nbytes, guarded=False):
        key = id(owner)
        self._live[key] = owner
        self._spans[key] = (address, nbytes, guarded)
        weakref.finalize(owner, self._spans.pop, key, None)

    def new(self, shape, dtype, fill=None):
        """A C-contiguous FakeArray between guard bytes (filled with CANARY)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        raw = np.full(nbytes + 2 * GUARD + dtype.itemsize, CANARY, dtype=np.uint8)
        start = GUARD + (-(raw.ctypes.data + GUARD) % dtype.itemsize)  # aligned
        self.add(raw, raw.ctypes.data + start, nbytes, guarded=True)
        body = raw[start:start + nbytes].view(dtype).reshape(shape).view(FakeArray)
        if fill is not None:
            body[...] = fill
        return body

    def check_guards(self, where):
        for key, owner in list(self._live.items()):
            address, nbytes, guarded = self._spans.get(key, (0, 0, False))
            if guarded:
                start = address - owner.ctypes.data
                if (owner[:start] != CANARY).any() or (owner[start + nbytes:] != CANARY).any():
                    raise AssertionError(f"{where} wrote outside an array of {nbytes} bytes")

    def check_span(self, address, nbytes, what):
        """Raise unless [address, address + nbytes) lies inside one live buffer."""
        for key in list(self._live.keys()):
            begin, size, _ = self._spans.get(key, (0, 0, False))
            if begin <= address and address + nbytes <= begin + size:
                return
        raise AssertionError(f"{what}: {nbytes} bytes at {address:#x} are not inside any device array")


ALLOCATIONS = _Allocations()


def _build(source, workdir):
    """Compile one CUDA source plus a host launcher per kernel into a shared library."""
    signatures = kernel_signatures(source)
    launchers = []
    for name, params in signatures.items():
        decl = ", ".join(f"{ctype} {pname}" for ctype, pname in params)
        names = ", ".join(pname for _, pname in params)
        launchers.append(
            f'extern "C" int emu_{name}(unsigned gx, unsigned gy, unsigned gz, '
            f"unsigned bx, unsigned by, unsigned bz, {decl}) {{\n"
            f"    return emu::launch(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, [=]() {{ {name}({names}); }});\n}}\n"
        )
    text = f'#include "{HEADER}"\n#line 1 "kernel.cu"\n{source}\n' + "".join(launchers)
    digest = hashlib.sha256((text + HEADER.read_text()).encode()).hexdigest()[:16]
    library = Path(workdir) / f"kernels_{digest}.so"
    if not library.exists():
        cpp = library.with_suffix(".cpp")
        cpp.write_text(text)
        result = subprocess.run(
            [COMPILER, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-o", str(library), str(cpp)],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"g++ could not build the emulated kernels:\n{result.stderr}")
    return ctypes.CDLL(str(library)), signatures


class _EmulatedKernel:
    def __init__(self, fake, library, name, params):
        self.fake, self.name, self.params = fake, name, params
        self.function = getattr(library, f"emu_{name}")
        self.function.restype = ctypes.c_int
        self.function.argtypes = [ctypes.c_uint] * 6 + [
            ctypes.c_void_p if ctype.endswith("*") else CTYPES[ctype] for ctype, _ in params]

    def __call__(self, grid, block, args):
        assert isinstance(args, tuple), f"{self.name}: cupy wants the kernel arguments as a tuple"
        assert len(args) == len(self.params), f"{self.name}: {len(args)} arguments for {len(self.params)} parameters"
        grid3 = tuple(grid) + (1,) * (3 - len(grid))
        block3 = tuple(block) + (1,) * (3 - len(block))
        assert all(isinstance(v, int) and v >= 1 for v in grid3 + block3), (self.name, grid, block)
        assert grid3[0] < 2**31 and grid3[1] < 65536 and grid3[2] < 65536, f"{self.name}: grid {grid} over CUDA's limits"
        assert np.prod(block3) <= 1024 and block3[2] <= 64, f"{self.name}: block {block} over CUDA's limits"
        converted = []
        for (ctype, pname), arg in zip(self.params, args):
            if ctype.endswith("*"):
                assert isinstance(arg, FakeArray), f"{self.name}({pname}): a device array is needed, got {type(arg)}"
                assert arg.dtype.type in POINTER_DTYPES[ctype], f"{self.name}({pname}): {ctype} given {arg.dtype}"
                assert arg.flags.c_contiguous, f"{self.name}({pname}): not contiguous"
                converted.append(arg.ctypes.data)
            else:
                expected = SCALAR_DTYPES[ctype]
                assert isinstance(arg, np.generic) and arg.dtype == expected, (
                    f"{self.name}({pname}): {ctype} needs a numpy {np.dtype(expected).name}, got {arg!r} ({type(arg)})")
                converted.append(arg.item())
        self.fake.launches.append((self.name, grid3, block3))
        status = self.function(*grid3, *block3, *converted)
        assert status == 0, f"{self.name}: {status} warp shuffles ran with lanes missing (or a bad block shape)"
        self.fake.allocations.check_guards(self.name)


class _FakeCublas:
    """gemmEx and gemmStridedBatchedEx computed from pointers, as cuBLAS (column-major) defines them."""

    CUBLAS_OP_N, CUBLAS_OP_T = 0, 1
    CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32 = 68, 77
    CUBLAS_GEMM_DEFAULT = -1
    HANDLE = 0x1234

    def __init__(self, fake):
        self.fake = fake
        self.compute_types = []

    def _matrices(self, ptr, rows, cols, ld, batch, stride, what):
        """The column-major rows x cols matrices at ptr (element (i, j) at i + j*ld), batch of them."""
        assert ld >= max(1, rows), f"{what}: leading dimension {ld} < {rows} rows"
        count = (batch - 1) * stride + (cols - 1) * ld + rows
        self.fake.allocations.check_span(ptr, count * 4, what)
        flat = np.ctypeslib.as_array((ctypes.c_float * count).from_address(ptr))
        return np.lib.stride_tricks.as_strided(flat, shape=(batch, rows, cols), strides=(stride * 4, 4, ld * 4))

    def gemmStridedBatchedEx(self, handle, transa, transb, m, n, k, alpha, A, Atype, lda, strideA,
                             B, Btype, ldb, strideB, beta, C, Ctype, ldc, strideC, batchCount, computeType, algo):
        assert handle == self.HANDLE
        assert Atype == Btype == Ctype == FakeCupy.cuda_r_32f, "float32 operands"
        assert computeType in (self.CUBLAS_COMPUTE_32F, self.CUBLAS_COMPUTE_32F_FAST_TF32), computeType
        assert algo == self.CUBLAS_GEMM_DEFAULT
        assert transa in (0, 1) and transb in (0, 1) and min(m, n, k, batchCount) >= 1
        self.compute_types.append(computeType)
        a = self._matrices(A, *((m, k) if transa == 0 else (k, m)), lda, batchCount, strideA, "gemm A")
        b = self._matrices(B, *((k, n) if transb == 0 else (n, k)), ldb, batchCount, strideB, "gemm B")
        c = self._matrices(C, m, n, ldc, batchCount, strideC, "gemm C")
        op_a = a if transa == 0 else a.transpose(0, 2, 1)
        op_b = b if transb == 0 else b.transpose(0, 2, 1)
        alpha = ctypes.c_float.from_address(alpha).value
        beta = ctypes.c_float.from_address(beta).value
        product = alpha * (op_a.astype(np.float64) @ op_b.astype(np.float64))
        c[...] = product if beta == 0 else product + beta * c  # beta 0: C is not read (it may hold NaN)
        self.fake.allocations.check_guards("gemm")

    def gemmEx(self, handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb,
               beta, C, Ctype, ldc, computeType, algo):
        self.gemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B, Btype, ldb, 0,
                                  beta, C, Ctype, ldc, 0, 1, computeType, algo)


class FakeCupy:
    """The slice of the cupy module that kernels/gpu.py uses, on the CPU."""

    cuda_r_32f = 0
    float32 = np.float32
    bool_ = np.bool_
    ndarray = FakeArray

    def __init__(self, workdir=None):
        if COMPILER is None:
            raise RuntimeError("g++ is needed to emulate the CUDA kernels")
        self.workdir = workdir or tempfile.mkdtemp(prefix="minidistil-cuda-emu-")
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        self.allocations = ALLOCATIONS
        self.launches = []
        cublas = _FakeCublas(self)
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, CUDA_R_32F=self.cuda_r_32f),
            cublas=cublas,
            get_cublas_handle=lambda: cublas.HANDLE,
        )

    # arrays
    def empty(self, shape, dtype=np.float32):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        return self.allocations.new(shape, dtype, np.nan if np.dtype(dtype).kind == "f" else None)

    def empty_like(self, a):
        return self.empty(a.shape, a.dtype)

    def asarray(self, x, dtype=None):
        if isinstance(x, FakeArray) and (dtype is None or x.dtype == dtype):
            return x
        host = np.asarray(x, dtype=dtype)
        out = self.allocations.new(host.shape, host.dtype)
        out[...] = host
        return out

    def ascontiguousarray(self, x, dtype=None):
        x = self.asarray(x, dtype)
        if x.flags.c_contiguous:
            return x
        out = self.allocations.new(x.shape, x.dtype)
        out[...] = x
        return out

    @staticmethod
    def asnumpy(x):
        return np.array(x, copy=True).view(np.ndarray)

    # kernels
    def RawModule(self, code, options=()):
        library, signatures = _build(code, self.workdir)
        fake = self

        class Module:
            @staticmethod
            def get_function(name):
                if name not in signatures:
                    raise AttributeError(f"no kernel {name!r} in the module")
                return _EmulatedKernel(fake, library, name, signatures[name])

        return Module()
