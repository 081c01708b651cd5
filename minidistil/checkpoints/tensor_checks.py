"""Checks every weights reader applies to what a file says about its tensors.

    shape = checked_shape(info["shape"], "model.safetensors: tensor 'w'")   # a tuple NumPy can build
    check_finite(state, "model.safetensors")                                # no NaN / inf weight

A file from a stranger can describe shapes NumPy cannot make (more than 64 dimensions, an empty
tensor whose other dimensions multiply past 2^63 bytes) and weights that are NaN or infinite, which
make every output NaN without a word. Readers call `checked_shape` before building an array, and
the loader calls `check_finite` once a file is read (see loading.load_state_dict).
"""

from __future__ import annotations

import numpy as np

from ..errors import CheckpointError, shown

MAX_NDIM = 32  # NumPy 1's limit (NumPy 2 allows 64); weights have at most 4
# The product of a shape's non-zero dimensions. NumPy refuses an empty array whose other dimensions
# multiply past 2^63 bytes; no real tensor comes near 2^48 elements (1 PiB of float32).
MAX_ELEMENTS = 2**48
_FINITE_BLOCK = 1 << 20  # elements checked at a time: the scratch of np.isfinite stays at 1 MiB


def checked_shape(shape, where) -> tuple[int, ...]:
    """`shape` (a list or tuple from a file) as a tuple of ints NumPy can build an array of."""
    if not (isinstance(shape, (list, tuple)) and all(_is_int(d) and d >= 0 for d in shape)):
        raise CheckpointError(f"{where}: shape must be a list of non-negative integers, got {shown(shape)}")
    if len(shape) > MAX_NDIM:
        raise CheckpointError(f"{where}: shape has {len(shape)} dimensions, more than {MAX_NDIM}")
    extent = 1
    for d in shape:
        extent *= max(d, 1)
        if extent > MAX_ELEMENTS:
            raise CheckpointError(f"{where}: shape {shown(shape)} is absurdly large (more than 2^48 elements)")
    return tuple(shape)


def first_nonfinite(array: np.ndarray):
    """The index (a tuple) of the first NaN or infinite element of a float array, or None (non-floats: None).

    Scanned a block of rows at a time, so a tensor (or a strided view of one) is never copied whole.
    """
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return None
    if array.size <= _FINITE_BLOCK:
        bad = ~np.isfinite(array)
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), array.shape)) if bad.any() else None
    step = max(1, _FINITE_BLOCK // (array.size // array.shape[0]))  # rows per block (one when a row is large)
    for start in range(0, array.shape[0], step):
        block = array[start : start + step] if step > 1 or array.ndim == 1 else array[start]
        index = first_nonfinite(block)
        if index is not None:
            return (start + index[0], *index[1:]) if step > 1 or array.ndim == 1 else (start, *index)
    return None


def check_finite(state, source) -> None:
    """Refuse a state dict holding a NaN or infinite weight, naming the tensor and the element."""
    for name, array in state.items():
        index = first_nonfinite(np.asarray(array))
        if index is not None:
            value = np.asarray(array)[index]
            raise CheckpointError(
                f"{source}: tensor {name!r} holds {value} at index {list(index)}: non-finite weights make the "
                "outputs NaN (pass allow_nonfinite=True to load it anyway)"
            )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
