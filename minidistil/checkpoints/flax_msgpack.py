"""flax_model.msgpack: the parameters transformers' Flax classes write (`flax.serialization.to_bytes`).

The file is one msgpack map of nested maps, the model's parameter tree
({"distilbert": {"transformer": {"layer": {"0": {"attention": {"q_lin": {"kernel": ...}}}}}}}),
whose leaves are arrays written as msgpack extension type 1, exactly as flax.serialization's
`_ndarray_to_bytes` makes them: the ext payload is itself msgpack, the triple

    [shape (list of ints), dtype name (bytes, e.g. b"float32", b"bfloat16"), C-order data (bin)]

Only that is read. Other extension types (flax's 2 = complex scalar and 3 = NumPy scalar, or any
other code), leaves that are not arrays, map keys that are not strings, dtypes other than plain
numbers, and a data length that does not match shape x dtype are refused. Flax splits arrays above
1 GiB into "__msgpack_chunked_array__" maps; DistilBERT's largest tensor is far below that, and such
a map is refused with a message saying so. Nothing in the file is executed: msgpack decodes plain
data, and the payloads become NumPy arrays by `np.frombuffer`. Needs msgpack:
`pip install "minidistil[flax]"`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import CheckpointError
from ..extras import import_extra
from .framework_names import schema_tensor
from .safetensors_io import bf16_to_f32

FLAX_WEIGHTS_NAME = "flax_model.msgpack"
NDARRAY_EXT = 1  # flax.serialization._MsgpackExtType.ndarray
# dtype names flax writes (numpy's dtype.name) -> the NumPy dtype of the stored bytes (little-endian)
DTYPES = {
    name: np.dtype(code)
    for name, code in {
        "float64": "<f8", "float32": "<f4", "float16": "<f2", "bfloat16": "<u2",
        "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1",
        "uint64": "<u8", "uint32": "<u4", "uint16": "<u2", "uint8": "u1",
    }.items()
}
CHUNKED = "__msgpack_chunked_array__"
MAX_DEPTH = 32  # transformers' trees nest 7 deep


def read_flax_msgpack(path, *, float_dtype=np.float32) -> dict[str, np.ndarray]:
    """Every array of a flax_model.msgpack, renamed into schema.py's names (kernels transposed).

    float tensors become `float_dtype` (None keeps the stored dtype; bfloat16 then becomes float32).
    """
    path = Path(path)
    msgpack = import_extra("msgpack", "flax", f"reading {path.name} (Flax weights)")
    tree = _unpack(msgpack, path.read_bytes(), path)
    if not isinstance(tree, dict):
        raise CheckpointError(f"{path}: the top level is a {type(tree).__name__}, expected a map of parameters")
    state = {}
    for parts, array in _leaves(tree, [], path):
        if array.dtype.kind == "f" and float_dtype is not None:
            array = array.astype(float_dtype, copy=False)
        name, array = schema_tensor(parts, array, f"{path}: {'/'.join(parts)}")
        state[name] = array
    return state


def _unpack(msgpack, data: bytes, path):
    def ext_hook(code, payload):
        if code != NDARRAY_EXT:
            raise CheckpointError(f"{path}: msgpack extension type {code} is not read (flax arrays are type {NDARRAY_EXT})")
        return _ndarray(msgpack, payload, path)

    try:
        # strict_map_key: keys must be str/bytes; limits default to the input's size (no blow-up).
        return msgpack.unpackb(data, ext_hook=ext_hook, raw=False, strict_map_key=True, use_list=True)
    except CheckpointError:
        raise
    except (ValueError, TypeError, msgpack.UnpackException) as exc:  # truncated, extra data, bad bytes
        raise CheckpointError(f"{path}: not a valid msgpack file ({type(exc).__name__}: {exc})") from None


def _ndarray(msgpack, payload: bytes, path) -> np.ndarray:
    """One array from flax's ext payload: msgpack [shape, dtype name, data]."""
    try:
        triple = msgpack.unpackb(payload, raw=True, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CheckpointError(f"{path}: an array payload is not valid msgpack ({exc})") from None
    if not (isinstance(triple, list) and len(triple) == 3):
        raise CheckpointError(f"{path}: an array payload is not [shape, dtype, data]")
    shape, dtype_name, data = triple
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise CheckpointError(f"{path}: an array has shape {shape!r}, expected a list of non-negative ints")
    name = dtype_name.decode("ascii", errors="replace") if isinstance(dtype_name, bytes) else repr(dtype_name)
    if name not in DTYPES:
        raise CheckpointError(f"{path}: an array has dtype {name!r}; only {', '.join(DTYPES)} are read")
    stored = DTYPES[name]
    if not isinstance(data, bytes) or len(data) != int(np.prod(shape, dtype=np.int64)) * stored.itemsize:
        got = len(data) if isinstance(data, bytes) else type(data).__name__
        raise CheckpointError(f"{path}: an array of shape {tuple(shape)} {name} needs "
                              f"{int(np.prod(shape, dtype=np.int64)) * stored.itemsize} bytes, got {got}")
    array = np.frombuffer(data, dtype=stored).reshape(shape)
    return bf16_to_f32(array) if name == "bfloat16" else array


def _leaves(tree: dict, prefix: list[str], path):
    """(path parts, array) of every leaf, in file order; anything but maps and arrays is refused."""
    if len(prefix) > MAX_DEPTH:
        raise CheckpointError(f"{path}: maps nest deeper than {MAX_DEPTH} levels: not a parameter tree")
    if CHUNKED in tree:
        raise CheckpointError(f"{path}: {'/'.join(prefix)} is an array flax split into chunks (over 1 GiB); not read")
    for key, value in tree.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: key {key!r} under {'/'.join(prefix) or 'the top level'} is not a string")
        if isinstance(value, dict):
            yield from _leaves(value, prefix + [key], path)
        elif isinstance(value, np.ndarray):
            yield prefix + [key], value
        else:
            where = "/".join(prefix + [key])
            raise CheckpointError(f"{path}: {where} is a {type(value).__name__}, expected an array or a map")
