"""The safetensors format, read and written by hand.

Layout of a file:

    8 bytes   N, little-endian unsigned: the length of the header
    N bytes   header: a JSON object {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
              plus an optional "__metadata__": {str: str}; padded with spaces
    rest      the data region; each tensor's bytes are data[begin:end], little-endian, row-major

Reading maps the file into memory (`np.memmap`) and returns views into it, so
float32 weights are never copied: the peak memory of a load is about the file
size, paid lazily by the OS as pages are touched. float16 and bfloat16 tensors
are upcast to float32 (a copy: the model computes in float32).

Every field of the header is checked before any tensor is touched, and a
malformed file raises `CheckpointError` naming the file and the fault.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import CheckpointError, shown
from ..jsonfiles import MAX_JSON_BYTES, parse_json
from .tensor_checks import checked_shape

# safetensors dtype name -> NumPy dtype as stored (little-endian). BF16 has no NumPy
# dtype: it is read as uint16 and widened (see _bf16_to_f32).
STORED_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
# NumPy dtype -> safetensors name, for writing.
_WRITE_NAMES = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint64"): "U64",
    np.dtype("uint32"): "U32",
    np.dtype("uint16"): "U16",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}
# The safetensors library allows 100 MB; a header takes ~100 bytes per tensor, so 16 MiB is room for
# 160,000 tensors, and parsing it costs at most ~400 MB (see jsonfiles.MAX_JSON_BYTES) instead of ~2.5 GB.
MAX_HEADER_BYTES = MAX_JSON_BYTES


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) -> float32: bfloat16 is the top half of a float32."""
    return (raw.astype(np.uint32) << np.uint32(16)).view(np.float32)


def upcast(array: np.ndarray, stored: str, float_dtype=np.float32) -> np.ndarray:
    """Convert a stored float tensor to `float_dtype` (no copy when it already is)."""
    if stored == "BF16":
        array = bf16_to_f32(array)
    if float_dtype is None:
        return array
    return array if array.dtype == float_dtype else array.astype(float_dtype)


def read_header(path: str | os.PathLike) -> tuple[dict[str, dict[str, Any]], dict[str, str], int]:
    """Parse and validate the header: (tensors, metadata, data_start).

    `tensors` maps each name to {"dtype", "shape" (tuple), "data_offsets" (begin, end)}
    with offsets relative to the data region, which starts at byte `data_start`.
    """
    path = Path(path)
    name = path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise CheckpointError(f"{name}: file is {size} bytes, too short for the 8-byte header length")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > size - 8:
                raise CheckpointError(
                    f"{name}: header length {header_len} runs past the end of the file ({size} bytes): truncated or not a safetensors file"
                )
            if header_len > MAX_HEADER_BYTES:
                raise CheckpointError(f"{name}: header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit")
            raw = f.read(header_len)
    except OSError as exc:
        raise CheckpointError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    try:
        header = parse_json(raw, CheckpointError, f"{name}: header", object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as exc:
        raise CheckpointError(f"{name}: header has the key {shown(exc.args[0])} twice") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: header must be a JSON object, got {type(header).__name__}")

    data_start = 8 + header_len
    data_len = size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise CheckpointError(f"{name}: __metadata__ must be an object of strings to strings")

    tensors: dict[str, dict[str, Any]] = {}
    for key, info in header.items():
        where = f"{name}: tensor {shown(key)}"
        if not isinstance(info, dict):
            raise CheckpointError(f"{where}: entry must be an object, got {type(info).__name__}")
        dtype = info.get("dtype")
        if not isinstance(dtype, str) or dtype not in STORED_DTYPES:
            raise CheckpointError(f"{where}: dtype {shown(dtype)} is not supported (known: {', '.join(STORED_DTYPES)})")
        shape = checked_shape(info.get("shape"), where)
        offsets = info.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise CheckpointError(f"{where}: data_offsets must be [begin, end] integers, got {shown(offsets)}")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise CheckpointError(f"{where}: data_offsets {shown(offsets)} are not an increasing pair of non-negative integers")
        if end > data_len:
            raise CheckpointError(
                f"{where}: data_offsets {shown(offsets)} run past the data region ({data_len} bytes): file truncated?"
            )
        nbytes = _prod(shape) * STORED_DTYPES[dtype].itemsize
        if end - begin != nbytes:
            raise CheckpointError(
                f"{where}: data_offsets [{begin}, {end}] hold {end - begin} bytes but shape {list(shape)} of {dtype} needs {nbytes}"
            )
        tensors[key] = {"dtype": dtype, "shape": shape, "data_offsets": (begin, end)}

    spans = sorted((info["data_offsets"], key) for key, info in tensors.items() if info["data_offsets"][1] > info["data_offsets"][0])
    for (prev, prev_key), (cur, cur_key) in zip(spans, spans[1:]):
        if cur[0] < prev[1]:
            raise CheckpointError(
                f"{name}: tensors {prev_key!r} {list(prev)} and {cur_key!r} {list(cur)} overlap in the data region"
            )
    return tensors, metadata, data_start


def read_safetensors(
    path: str | os.PathLike, *, float_dtype=np.float32, names=None
) -> dict[str, np.ndarray]:
    """Load every tensor (or only `names`) of a safetensors file.

    float32 tensors (and every integer tensor) come back as read-only views of
    a memory map of the file; F16/BF16/F64 tensors are converted to
    `float_dtype` (None keeps the stored dtype; BF16 then becomes float32).
    """
    path = Path(path)
    tensors, _, data_start = read_header(path)
    if names is not None:
        missing = sorted(set(names) - set(tensors))
        if missing:
            raise CheckpointError(f"{path.name}: no tensor named {', '.join(map(repr, missing))}")
        tensors = {k: tensors[k] for k in names}
    size = path.stat().st_size
    mapped = np.memmap(path, dtype=np.uint8, mode="r") if size > 0 else np.zeros(0, np.uint8)
    out = {}
    for key, info in tensors.items():
        begin, end = info["data_offsets"]
        stored = STORED_DTYPES[info["dtype"]]
        raw = mapped[data_start + begin : data_start + end]
        array = raw.view(stored).reshape(info["shape"]) if end > begin else np.zeros(info["shape"], stored)
        if info["dtype"] in FLOAT_DTYPES:
            array = upcast(array, info["dtype"], float_dtype)
        out[key] = array
    return out


def write_safetensors(
    path: str | os.PathLike, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write `tensors` (NumPy arrays) as a safetensors file, streaming one tensor at a time.

    Tensors are laid out in name order; the header is padded with spaces to a
    multiple of 8 bytes, as the safetensors library does, so every tensor
    starts aligned. Written to a temporary file and renamed into place.
    """
    path = Path(path)
    entries = {}
    offset = 0
    arrays = {}
    for key in sorted(tensors):
        array = np.asarray(tensors[key])
        dtype = _WRITE_NAMES.get(array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype)
        if dtype is None:
            raise CheckpointError(f"{path.name}: tensor {key!r} has dtype {array.dtype}, which safetensors cannot store")
        arrays[key] = array
        nbytes = array.size * array.dtype.itemsize
        entries[key] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    header.update(entries)
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for key, array in arrays.items():
                little = array.astype(array.dtype.newbyteorder("<"), copy=False)
                f.write(np.ascontiguousarray(little).reshape(-1).view(np.uint8).data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


class _DuplicateKey(Exception):
    pass


def _no_duplicate_keys(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
