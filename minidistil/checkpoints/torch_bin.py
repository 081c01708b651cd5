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

Memory. What a load costs is bounded by the file, whatever the file says:
- the pickle is walked opcode by opcode (`pickletools.genops`, which runs
  nothing) before it is unpickled: CPython's unpickler sizes its memo table by
  the largest index a PUT names, so a 10-byte pickle could ask for 64 GiB;
- a storage stored uncompressed (torch always writes them so) is memory-mapped,
  after its CRC-32 is checked against the archive's (61 ms for the 91 MB of
  all-MiniLM-L6-v2 on an AMD EPYC, which also brings the file into the page
  cache); a compressed one (a
  re-zipped archive) is inflated once, in 1 MiB pieces, into a buffer of its
  declared size, and refused when it would grow more than MAX_INFLATE_RATIO
  times its compressed size (weights barely compress; only crafted runs of equal
  bytes grow more);
- every conversion (float16/bfloat16/float64 to float32, big- to
  little-endian) is made once per storage, and every tensor is a view of its
  storage, transposed and offset ones included: a thousand views of one storage
  cost one storage;
- tensors may overlap (a tied projector shares the embeddings' storage), but
  together they may hold at most SHARING_FACTOR times the storages' bytes, so
  that a model built from them (which copies each weight) stays near the file's
  size.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import pickletools
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, shown
from .safetensors_io import bf16_to_f32
from .tensor_checks import checked_shape

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
# A state dict's pickle takes ~100 bytes per tensor (a DistilBERT's is 30 kB); 16 MiB is 160,000 tensors.
MAX_PICKLE_BYTES = 16 * 1024 * 1024
# How much a compressed storage may grow when inflated. float32 weights barely deflate (all-MiniLM-L6-v2
# re-zipped: 1.09x; its only records above 32x are a 4 kB and a 1.5 kB buffer), sparse ones a few
# times; deflate's own limit is ~1032x, reached by runs of equal bytes. INFLATE_SLACK lets small
# buffers through.
MAX_INFLATE_RATIO = 32
INFLATE_SLACK = 1 << 20
INFLATE_CHUNK = 1 << 20  # bytes inflated at a time
# Tensors may share storage (torch.save keeps a tied projector as a view of the embeddings: 1.35x for
# distilbert-base-uncased's MLM); together they may hold at most this many times the storages' bytes.
SHARING_FACTOR = 2
SHARING_SLACK = 1 << 20  # bytes: lets tiny files share freely
# What zipfile raises on a corrupt archive besides BadZipFile (a bad deflate stream, a truncated member,
# an unknown compression method or an encrypted member, header fields out of range).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OverflowError,
               struct.error, ValueError, OSError)


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
    """A storage record of the archive: its bytes (`raw`, uint8) and the dtype the pickle declared for it."""

    __slots__ = ("key", "dtype", "kind", "numel", "raw")

    def __init__(self, key, dtype, kind, numel, raw):
        self._init(key=key, dtype=dtype, kind=kind, numel=numel, raw=raw)

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
        raise CheckpointError(f"tensor size {shown(size)} and stride {shown(stride)} must be tuples of one length")
    size = checked_shape(size, "tensor")
    if not all(_is_int(v) and v >= 0 for v in (storage_offset, *stride)):
        raise CheckpointError(f"tensor offset {shown(storage_offset)} and stride {shown(stride)} must be non-negative integers")
    count = _numel(size)
    if count > max(storage.numel, 1):
        # Only an expanded (stride-0) view can have more elements than its storage; a state
        # dict has no reason to hold one, and materialising it could take unbounded memory.
        raise CheckpointError(
            f"tensor of size {size} has {count} elements, more than {storage!r} holds ({storage.numel})"
        )
    if count:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= storage.numel:
            raise CheckpointError(
                f"tensor of size {size}, stride {shown(tuple(stride))}, offset {shown(storage_offset)} reaches element "
                f"{shown(last)} of {storage!r}, which has {storage.numel}"
            )
    return size


def _rebuild_tensor(storage, storage_offset, size, stride):
    size = _check_tensor_args(storage, storage_offset, size, stride)
    return _TensorRef(storage, storage_offset, size, tuple(stride), storage.dtype, storage.kind)


def _check_metadata(metadata):
    if metadata:
        raise CheckpointError(f"tensor metadata {shown(metadata)} (conjugate/negative views) is not supported")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    _check_metadata(metadata)
    if isinstance(storage, _Storage) and storage.kind == "bytes":
        raise CheckpointError("an untyped storage needs _rebuild_tensor_v3 with a dtype")
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    _check_metadata(metadata)
    if not isinstance(dtype, _DType):
        raise CheckpointError(f"tensor dtype must be a torch dtype, got {shown(dtype)}")
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"tensor storage must come from the archive, got {type(storage).__name__}")
    # An untyped storage counts bytes; reinterpret them with the tensor's dtype.
    nbytes = storage.raw.size
    if nbytes % dtype.dtype.itemsize:
        raise CheckpointError(f"{storage!r} holds {nbytes} bytes, not a whole number of {dtype.name} elements")
    storage = _Storage(storage.key, dtype.dtype, dtype.kind, nbytes // dtype.dtype.itemsize, storage.raw)
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
        self._load_storage = load_storage  # (key, dtype, numel) -> the record's bytes, uint8
        self._globals = _safe_globals()  # fresh stand-ins per file
        self.storages = {}  # key -> _Storage, each record read once

    def find_class(self, module, name):
        try:
            return self._globals[(module, name)]
        except (KeyError, TypeError):
            raise CheckpointError(f"{self._source}: pickle global {str(module)[:100]}.{str(name)[:100]} is not allowed") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self._source}: unexpected persistent id {shown(pid)}: not a torch storage reference")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType) or isinstance(storage_type, _DType):
            raise CheckpointError(f"{self._source}: storage type {shown(storage_type)} is not a torch storage class")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise CheckpointError(f"{self._source}: malformed storage reference {shown(pid)}")
        cached = self.storages.get(key)
        if cached is None:
            raw = self._load_storage(key, storage_type, numel)
            cached = _Storage(key, storage_type.dtype, storage_type.kind, numel, raw)
            self.storages[key] = cached
        elif cached.dtype != storage_type.dtype:
            raise CheckpointError(f"{self._source}: storage {shown(key)} is declared with two dtypes")
        return cached


LEGACY_MESSAGE = (
    "is a legacy (non-zip) torch checkpoint, written by torch < 1.6 or with "
    "_use_new_zipfile_serialization=False; minidistil reads only the zip format: "
    "re-save it with a recent torch (torch.save(torch.load(path), path)) or convert it to safetensors"
)


def read_torch_bin(path: str | os.PathLike, *, float_dtype=np.float32) -> dict[str, np.ndarray]:
    """Load a torch zip checkpoint holding a flat state dict {name: tensor}.

    Float tensors come back as `float_dtype` (None keeps float16/float64 as
    stored; bfloat16 always becomes float32). Every tensor is a read-only view
    of its storage; float32 storages stored uncompressed are memory-mapped, so
    nothing is copied. Raises CheckpointError for a non-zip (legacy) file, a
    corrupt archive, a pickle naming any global outside the allow-list, a
    file that would cost far more memory than its size (see the module's
    docstring), or anything that is not a dict of tensors.
    """
    path = Path(path)
    source = path.name
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    if not zipfile.is_zipfile(path):
        if magic[:4] == b"PK\x03\x04":
            raise CheckpointError(f"{source}: corrupt zip archive: truncated, or its central directory is damaged")
        if magic[:1] == b"\x80" or magic[:2] == b"\x1f\x8b" or magic[:4] == b"\x00\x00\x00\x00":
            raise CheckpointError(f"{source} {LEGACY_MESSAGE}")
        raise CheckpointError(f"{source}: not a torch checkpoint (expected a zip archive, got bytes {magic!r})")
    try:
        with zipfile.ZipFile(path) as zf:
            return _read_archive(zf, path, source, float_dtype)
    except CheckpointError:
        raise
    except _ZIP_ERRORS as exc:
        raise CheckpointError(f"{source}: corrupt zip archive: {type(exc).__name__}: {str(exc)[:200]}") from None


def _read_archive(zf: zipfile.ZipFile, path: Path, source: str, float_dtype) -> dict[str, np.ndarray]:
    names = zf.namelist()
    pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1 and n.split("/")[1] == "data.pkl"]
    if len(pickles) != 1:
        raise CheckpointError(f"{source}: expected one <prefix>/data.pkl in the archive, found {shown(pickles) if pickles else 'none'}")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = _read_small_record(zf, prefix + "byteorder", 16, source).decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{source}: unknown byte order {shown(byteorder)}")
    mapped = np.memmap(path, dtype=np.uint8, mode="r")

    def load_storage(key, storage_type, numel):
        record = f"{prefix}data/{key}"
        try:
            info = zf.getinfo(record)
        except KeyError:
            raise CheckpointError(f"{source}: storage {shown(key)} has no record {shown(record)} in the archive") from None
        nbytes = numel * storage_type.dtype.itemsize
        if info.file_size < nbytes:
            raise CheckpointError(
                f"{source}: storage {shown(key)} should hold {numel} {storage_type!r} elements ({nbytes} bytes) "
                f"but its record has {info.file_size} bytes"
            )
        if info.compress_type == zipfile.ZIP_STORED:
            return _mapped_record(zf, info, mapped, source)[:nbytes]
        return _inflated_record(zf, info, nbytes, source)

    data = _read_small_record(zf, pickles[0], MAX_PICKLE_BYTES, source)
    _scan_pickle(data, source)
    unpickler = _RestrictedUnpickler(io.BytesIO(data), source, load_storage)
    try:
        state = unpickler.load()
    except CheckpointError as exc:
        if str(exc).startswith(source):
            raise
        raise CheckpointError(f"{source}: {exc}") from None
    except Exception as exc:  # malformed pickle: truncated, bad opcode, wrong call arguments...
        raise CheckpointError(f"{source}: cannot unpickle the state dict: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: expected a state dict (a dict of tensors), got {type(state).__name__}")
    for name, value in state.items():
        if not isinstance(name, str):
            raise CheckpointError(f"{source}: state dict key {shown(name)} is not a string")
        if not isinstance(value, _TensorRef):
            raise CheckpointError(
                f"{source}: entry {shown(name)} is a {type(value).__name__}, not a tensor "
                "(a training checkpoint? save model.state_dict() instead)"
            )
    _check_sharing(state, unpickler.storages, source)
    convert = _StorageConverter(byteorder, float_dtype)
    return {name: _materialise(ref, convert) for name, ref in state.items()}


def _scan_pickle(data: bytes, source: str) -> None:
    """Walk the pickle's opcodes without running them; refuse one that is malformed or whose memo
    indices run ahead of its objects.

    CPython's unpickler grows its memo table to twice the largest index a PUT names: the 10 bytes
    `N r\xf0\xff\xff\xff .` would make it allocate (and zero) 64 GiB. A pickler numbers memo
    entries in order, so an index can never exceed the count of opcodes before it.
    """
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(data), 1):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= arg < count:
                raise CheckpointError(f"{source}: pickle opcode {count} stores memo entry {arg}, past any object made so far")
    except CheckpointError:
        raise
    except Exception as exc:  # genops: a bad opcode, an argument running past the end, a 5000-digit number...
        raise CheckpointError(f"{source}: cannot unpickle the state dict: {type(exc).__name__}: {str(exc)[:200]}") from None


def _check_sharing(state, storages, source) -> None:
    """Tensors may overlap, but not hold much more than the storages do (see SHARING_FACTOR)."""
    stored = sum(s.raw.size for s in storages.values())
    held = sum(_numel(ref.size) * ref.dtype.itemsize for ref in state.values())
    if held > SHARING_FACTOR * stored + SHARING_SLACK:
        raise CheckpointError(
            f"{source}: its {len(state)} tensors hold {held} bytes but its storages only {stored}: tensors that are "
            f"views of one storage this many times over (more than {SHARING_FACTOR}x) are not a model's weights"
        )


class _StorageConverter:
    """Each storage's array as the loader returns it (little-endian, floats as `float_dtype`), made once."""

    def __init__(self, byteorder, float_dtype):
        self.byteorder, self.float_dtype = byteorder, float_dtype
        self._done = {}  # (key, dtype) -> array

    def __call__(self, storage: _Storage) -> np.ndarray:
        done = self._done.get((storage.key, storage.dtype.str))
        if done is None:
            done = self._convert(storage)
            done.flags.writeable = False  # shared by every view of the storage
            self._done[(storage.key, storage.dtype.str)] = done
        return done

    def _convert(self, storage):
        stored = storage.dtype.newbyteorder(">") if self.byteorder == "big" else storage.dtype
        array = storage.raw[: storage.numel * stored.itemsize].view(stored)
        if self.byteorder == "big":
            array = array.astype(storage.dtype)
        if storage.kind == "bf16":
            array = bf16_to_f32(array)
        if storage.kind in ("float", "bf16") and self.float_dtype is not None and array.dtype != self.float_dtype:
            array = array.astype(self.float_dtype)
        return array


def _materialise(ref: _TensorRef, convert) -> np.ndarray:
    """The tensor as a read-only view of its converted storage (never a copy)."""
    storage = convert(ref.storage)  # (numel,)
    if not _numel(ref.size):
        return np.zeros(ref.size, storage.dtype)
    itemsize = storage.dtype.itemsize
    # A dimension of size 1 is never stepped over: its stride (any number in the file) does not matter.
    strides = tuple(0 if n == 1 else s * itemsize for n, s in zip(ref.size, ref.stride))
    return np.lib.stride_tricks.as_strided(storage[ref.offset :], shape=ref.size, strides=strides, writeable=False)


def _read_small_record(zf: zipfile.ZipFile, name: str, limit: int, source: str) -> bytes:
    """A whole record of at most `limit` bytes (zipfile checks its CRC-32 on the way)."""
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise CheckpointError(f"{source}: record {shown(name)} has {info.file_size} bytes, more than the {limit} expected")
    with zf.open(info) as f:
        return f.read(limit + 1)


def _mapped_record(zf: zipfile.ZipFile, info: zipfile.ZipInfo, mapped: np.ndarray, source: str) -> np.ndarray:
    """A stored (uncompressed) record's bytes, memory-mapped, once their CRC-32 matches the archive's."""
    start = _record_data_offset(zf, info, source)
    if start + info.file_size > mapped.size:
        raise CheckpointError(f"{source}: storage record {shown(info.filename)} runs past the end of the file")
    raw = mapped[start : start + info.file_size]
    if zlib.crc32(raw) != info.CRC:
        raise CheckpointError(f"{source}: storage record {shown(info.filename)} fails its CRC-32 check: the file is corrupt")
    return raw


def _inflated_record(zf: zipfile.ZipFile, info: zipfile.ZipInfo, nbytes: int, source: str) -> np.ndarray:
    """A compressed record inflated once, a piece at a time, into a buffer of the storage's size.

    zipfile stops at the record's declared size and checks the CRC-32 at its end.
    """
    if info.file_size != nbytes:
        raise CheckpointError(
            f"{source}: compressed storage record {shown(info.filename)} says it inflates to {info.file_size} bytes, "
            f"but its storage holds {nbytes}"
        )
    if nbytes > MAX_INFLATE_RATIO * info.compress_size + INFLATE_SLACK:
        raise CheckpointError(
            f"{source}: compressed storage record {shown(info.filename)} would inflate from {info.compress_size} to "
            f"{nbytes} bytes, more than {MAX_INFLATE_RATIO}x: weights do not compress like that"
        )
    out = np.empty(nbytes, np.uint8)
    filled = 0
    try:
        with zf.open(info) as f:
            while filled < nbytes:
                piece = f.read(min(INFLATE_CHUNK, nbytes - filled))
                if not piece:
                    raise CheckpointError(f"{source}: compressed storage record {shown(info.filename)} ends early")
                out[filled : filled + len(piece)] = np.frombuffer(piece, np.uint8)
                filled += len(piece)
            f.read(1)  # reaching the end is what makes zipfile compare the CRC-32
    except CheckpointError:
        raise
    except _ZIP_ERRORS as exc:
        raise CheckpointError(f"{source}: compressed storage record {shown(info.filename)} is corrupt: {exc}") from None
    return out


def _record_data_offset(zf: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> int:
    """Where a stored (uncompressed) record's bytes start: after its local file header."""
    fp = zf.fp
    fp.seek(info.header_offset)
    header = fp.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{source}: bad local header for record {shown(info.filename)}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _numel(size) -> int:
    count = 1
    for n in size:
        count *= n
    return count


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
