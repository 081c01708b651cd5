"""Read a PyTorch `pytorch_model.bin` state dict without torch and without running pickle code.

A `.bin` written by `torch.save` (torch >= 1.6) is a zip archive:

    <prefix>/data.pkl      a pickle of the state dict; tensors refer to storages by key
    <prefix>/data/<key>    the raw bytes of each storage (stored uncompressed)
    <prefix>/byteorder     "little" or "big" (absent in old files: little)

The pickle describes each tensor as a call such as

    torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks)

where `storage` comes from `persistent_load(("storage", torch.FloatStorage, key, location, numel))`.

Safety. Unpickling can call any importable function, which is why loading an
untrusted `.bin` with `pickle`/`torch.load` is code execution. Here the only way
a pickle can name a Python object is through `find_class` (opcodes GLOBAL,
STACK_GLOBAL, INST, OBJ and the EXT* extension registry all go through it), and
`_RestrictedUnpickler.find_class` answers only for the handful of names a state
dict needs, returning minidistil's own inert stand-ins (never the torch or
Python objects of those names); anything else raises `CheckpointError` naming
the global. REDUCE, NEWOBJ and BUILD can therefore only call or update what
find_class or persistent_load returned: `collections.OrderedDict` (an immutable
built-in type whose instances are plain data), or the stand-ins defined below,
which build NumPy views of the storages and refuse `__setstate__` (BUILD) and
attribute assignment, so a pickle cannot tamper with them either. Protocol 5
out-of-band buffers are not provided, so NEXT_BUFFER fails too. No torch code
is imported and no code from the file runs.

Storages are memory-mapped from the zip when stored uncompressed (torch always
does), so float32 tensors are views, not copies; float16/bfloat16/float64 are
upcast to float32.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from .safetensors_io import bf16_to_f32

# torch storage class name -> (NumPy dtype as stored, kind); kind "bf16" needs widening.
STORAGE_TYPES = {
    "FloatStorage": ("<f4", "float"),
    "DoubleStorage": ("<f8", "float"),
    "HalfStorage": ("<f2", "float"),
    "BFloat16Storage": ("<u2", "bf16"),
    "LongStorage": ("<i8", "int"),
    "IntStorage": ("<i4", "int"),
    "ShortStorage": ("<i2", "int"),
    "CharStorage": ("i1", "int"),
    "ByteStorage": ("u1", "int"),
    "BoolStorage": ("?", "int"),
    "UntypedStorage": ("u1", "bytes"),
}
# torch dtype name -> (NumPy dtype as stored, kind), for _rebuild_tensor_v3.
TORCH_DTYPES = {
    "float32": ("<f4", "float"),
    "float64": ("<f8", "float"),
    "float16": ("<f2", "float"),
    "bfloat16": ("<u2", "bf16"),
    "int64": ("<i8", "int"),
    "int32": ("<i4", "int"),
    "int16": ("<i2", "int"),
    "int8": ("i1", "int"),
    "uint8": ("u1", "int"),
    "uint16": ("<u2", "int"),
    "uint32": ("<u4", "int"),
    "uint64": ("<u8", "int"),
    "bool": ("?", "int"),
}


class _Inert:
    """Base of every object a pickle can reach here: no BUILD, no attribute writes."""

    __slots__ = ()

    def __setstate__(self, state):
        raise CheckpointError(f"pickle tried to update the state of {self!r} (BUILD): not a state dict")

    def __setattr__(self, name, value):
        raise CheckpointError(f"pickle tried to set attribute {name!r} on {self!r}: not a state dict")

    def _init(self, **fields):
        for key, value in fields.items():
            object.__setattr__(self, key, value)


class _StorageType(_Inert):
    __slots__ = ("name", "dtype", "kind")

    def __init__(self, name, dtype, kind):
        self._init(name=name, dtype=np.dtype(dtype), kind=kind)

    def __repr__(self):
        return f"torch.{self.name}"


class _DType(_StorageType):
    __slots__ = ()


class _TypeMarker(_Inert):
    """Stand-in for torch.Tensor / torch.nn.Parameter as the `new_type` of _rebuild_from_type_v2."""

    __slots__ = ("name",)

    def __init__(self, name):
        self._init(name=name)

    def __repr__(self):
        return self.name


class _Storage(_Inert):
    """A storage record of the archive, with the dtype the pickle declared for it."""

    __slots__ = ("key", "dtype", "kind", "numel", "array")

    def __init__(self, key, dtype, kind, numel, array):
        self._init(key=key, dtype=dtype, kind=kind, numel=numel, array=array)

    def __repr__(self):
        return f"storage {self.key!r}"


class _TensorRef(_Inert):
    """A tensor: a strided window on a storage, materialised after unpickling."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype", "kind")

    def __init__(self, storage, offset, size, stride, dtype, kind):
        self._init(storage=storage, offset=offset, size=size, stride=stride, dtype=dtype, kind=kind)

    def __repr__(self):
        return f"tensor of shape {tuple(self.size)}"


class _SafeCallable(_Inert):
    """What find_class returns for an allowed function: ours, under the torch name."""

    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        self._init(name=name, fn=fn)

    def __call__(self, *args):
        return self.fn(*args)

    def __repr__(self):
        return self.name


def _check_tensor_args(storage, storage_offset, size, stride):
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"tensor storage must come from the archive, got {type(storage).__name__}")
    if not (isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list)) and len(size) == len(stride)):
        raise CheckpointError(f"tensor size {size!r} and stride {stride!r} must be tuples of one length")
    if not all(_is_int(v) and v >= 0 for v in (storage_offset, *size, *stride)):
        raise CheckpointError(f"tensor offset {storage_offset!r}, size {size!r}, stride {stride!r} must be non-negative integers")
    count = 1
    for n in size:
        count *= n
    if count > max(storage.numel, 1):
        # Only an expanded (stride-0) view can have more elements than its storage; a state
        # dict has no reason to hold one, and materialising it could take unbounded memory.
        raise CheckpointError(
            f"tensor of size {tuple(size)} has {count} elements, more than {storage!r} holds ({storage.numel})"
        )
    if all(size):
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            raise CheckpointError(
                f"tensor of size {tuple(size)}, stride {tuple(stride)}, offset {storage_offset} reaches element {last} "
                f"of {storage!r}, which has {storage.numel}"
            )


def _rebuild_tensor(storage, storage_offset, size, stride):
    _check_tensor_args(storage, storage_offset, size, stride)
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride), storage.dtype, storage.kind)


def _check_metadata(metadata):
    if metadata:
        raise CheckpointError(f"tensor metadata {metadata!r} (conjugate/negative views) is not supported")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    _check_metadata(metadata)
    if isinstance(storage, _Storage) and storage.kind == "bytes":
        raise CheckpointError("an untyped storage needs _rebuild_tensor_v3 with a dtype")
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    _check_metadata(metadata)
    if not isinstance(dtype, _DType):
        raise CheckpointError(f"tensor dtype must be a torch dtype, got {dtype!r}")
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"tensor storage must come from the archive, got {type(storage).__name__}")
    # An untyped storage counts bytes; reinterpret it with the tensor's dtype.
    if storage.array is not None:
        nbytes = storage.array.size * storage.array.dtype.itemsize
        if nbytes % dtype.dtype.itemsize:
            raise CheckpointError(f"{storage!r} holds {nbytes} bytes, not a whole number of {dtype.name} elements")
        array = storage.array.view(np.uint8).view(dtype.dtype)
        storage = _Storage(storage.key, dtype.dtype, dtype.kind, array.size, array)
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, _TensorRef):
        raise CheckpointError(f"a parameter must wrap a tensor, got {type(data).__name__}")
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    if not (isinstance(func, _SafeCallable) and func.fn in _REBUILDERS):
        raise CheckpointError(f"_rebuild_from_type_v2 may only call a tensor rebuild function, got {func!r}")
    if not isinstance(new_type, _TypeMarker):
        raise CheckpointError(f"_rebuild_from_type_v2 may only build torch.Tensor or Parameter, got {new_type!r}")
    if not isinstance(args, tuple):
        raise CheckpointError("_rebuild_from_type_v2 arguments must be a tuple")
    return func(*args)


_REBUILDERS = {_rebuild_tensor, _rebuild_tensor_v2, _rebuild_tensor_v3, _rebuild_parameter}


def _safe_globals():
    """(module, name) -> inert stand-in: everything a torch state dict pickle may name."""
    table = {("collections", "OrderedDict"): collections.OrderedDict}
    for module, name, fn in [
        ("torch._utils", "_rebuild_tensor", _rebuild_tensor),
        ("torch._utils", "_rebuild_tensor_v2", _rebuild_tensor_v2),
        ("torch._utils", "_rebuild_tensor_v3", _rebuild_tensor_v3),
        ("torch._utils", "_rebuild_parameter", _rebuild_parameter),
        ("torch._utils", "_rebuild_parameter_with_state", _rebuild_parameter),
        ("torch._tensor", "_rebuild_from_type_v2", _rebuild_from_type_v2),
    ]:
        table[(module, name)] = _SafeCallable(f"{module}.{name}", fn)
    for name, (dtype, kind) in STORAGE_TYPES.items():
        table[("torch", name)] = _StorageType(name, dtype, kind)
    for name, (dtype, kind) in TORCH_DTYPES.items():
        table[("torch", name)] = _DType(name, dtype, kind)
    table[("torch", "Tensor")] = _TypeMarker("torch.Tensor")
    table[("torch.nn.parameter", "Parameter")] = _TypeMarker("torch.nn.parameter.Parameter")
    return table


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source, load_storage):
        super().__init__(file)
        self._source = source
        self._load_storage = load_storage
        self._globals = _safe_globals()  # fresh stand-ins per file
        self._storages = {}

    def find_class(self, module, name):
        try:
            return self._globals[(module, name)]
        except (KeyError, TypeError):
            raise CheckpointError(f"{self._source}: pickle global {module}.{name} is not allowed") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self._source}: unexpected persistent id {pid!r}: not a torch storage reference")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or isinstance(storage_type, _DType):
            raise CheckpointError(f"{self._source}: storage type {storage_type!r} is not a torch storage class")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise CheckpointError(f"{self._source}: malformed storage reference {pid!r}")
        cached = self._storages.get(key)
        if cached is None:
            array = self._load_storage(key, storage_type, numel)
            cached = _Storage(key, storage_type.dtype, storage_type.kind, numel, array)
            self._storages[key] = cached
        elif cached.dtype != storage_type.dtype:
            raise CheckpointError(f"{self._source}: storage {key!r} is declared with two dtypes")
        return cached


LEGACY_MESSAGE = (
    "is a legacy (non-zip) torch checkpoint, written by torch < 1.6 or with "
    "_use_new_zipfile_serialization=False; minidistil reads only the zip format: "
    "re-save it with a recent torch (torch.save(torch.load(path), path)) or convert it to safetensors"
)


def read_torch_bin(path: str | os.PathLike, *, float_dtype=np.float32) -> dict[str, np.ndarray]:
    """Load a torch zip checkpoint holding a flat state dict {name: tensor}.

    Float tensors come back as `float_dtype` (None keeps float16/float64 as
    stored; bfloat16 always becomes float32); float32 storages stored
    uncompressed are memory-mapped views. Raises CheckpointError for a
    non-zip (legacy) file, a pickle naming any global outside the allow-list,
    or anything that is not a dict of tensors.
    """
    path = Path(path)
    source = path.name
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    if not zipfile.is_zipfile(path):
        if magic[:1] == b"\x80" or magic[:2] == b"\x1f\x8b" or magic[:4] == b"\x00\x00\x00\x00":
            raise CheckpointError(f"{source} {LEGACY_MESSAGE}")
        raise CheckpointError(f"{source}: not a torch checkpoint (expected a zip archive, got bytes {magic!r})")
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_archive(zf, path, source, float_dtype)
    except zipfile.BadZipFile as exc:
        raise CheckpointError(f"{source}: corrupt zip archive: {exc}") from exc


def _read_archive(zf: zipfile.ZipFile, path: Path, source: str, float_dtype) -> dict[str, np.ndarray]:
    names = zf.namelist()
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1 and n.split("/")[1] == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError(f"{source}: expected one <prefix>/data.pkl in the archive, found {pickles or 'none'}")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{source}: unknown byte order {byteorder!r}")
    mapped = np.memmap(path, dtype=np.uint8, mode="r")

    def load_storage(key, storage_type, numel):
        record = f"{prefix}data/{key}"
        try:
            info = zf.getinfo(record)
        except KeyError:
            raise CheckpointError(f"{source}: storage {key!r} has no record {record!r} in the archive") from None
        dtype = storage_type.dtype
        if byteorder == "big":
            dtype = dtype.newbyteorder(">")
        nbytes = numel * dtype.itemsize
        if info.file_size < nbytes:
            raise CheckpointError(
                f"{source}: storage {key!r} should hold {numel} {storage_type!r} elements ({nbytes} bytes) "
                f"but its record has {info.file_size} bytes"
            )
        if info.compress_type == zipfile.ZIP_STORED:
            start = _record_data_offset(zf, info, source)
            if start + info.file_size > mapped.size:
                raise CheckpointError(f"{source}: storage record {record!r} runs past the end of the file")
            raw = mapped[start : start + nbytes]
        else:
            raw = np.frombuffer(zf.read(record)[:nbytes], dtype=np.uint8)
        array = raw.view(dtype) if nbytes else np.zeros(0, dtype)
        if byteorder == "big":
            array = array.astype(dtype.newbyteorder("<"))
        return array

    unpickler = _RestrictedUnpickler(io.BytesIO(zf.read(pickles[0])), source, load_storage)
    try:
        state = unpickler.load()
    except CheckpointError as exc:
        if str(exc).startswith(source):
            raise
        raise CheckpointError(f"{source}: {exc}") from None
    except Exception as exc:  # malformed pickle: truncated, bad opcode, wrong call arguments...
        raise CheckpointError(f"{source}: cannot unpickle the state dict: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: expected a state dict (a dict of tensors), got {type(state).__name__}")
    out = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise CheckpointError(f"{source}: state dict key {name!r} is not a string")
        if not isinstance(value, _TensorRef):
            raise CheckpointError(
                f"{source}: entry {name!r} is a {type(value).__name__}, not a tensor "
                "(a training checkpoint? save model.state_dict() instead)"
            )
        out[name] = _materialise(value, float_dtype)
    return out


def _materialise(ref: _TensorRef, float_dtype) -> np.ndarray:
    storage = ref.storage.array
    itemsize = storage.dtype.itemsize
    if all(ref.size):
        array = np.lib.stride_tricks.as_strided(
            storage[ref.offset :],
            shape=ref.size,
            strides=tuple(s * itemsize for s in ref.stride),
            writeable=False,
        )
    else:
        array = np.zeros(ref.size, storage.dtype)
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)  # transposed or expanded views: copy once
    if ref.kind == "bf16":
        array = bf16_to_f32(array)
    if ref.kind in ("float", "bf16") and float_dtype is not None and array.dtype != float_dtype:
        array = array.astype(float_dtype)
    return array


def _record_data_offset(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> int:
    """Where a stored (uncompressed) record's bytes start: after its local file header."""
    fp = zf.fp
    fp.seek(info.header_offset)
    header = fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{source}: bad local header for record {info.filename!r}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
