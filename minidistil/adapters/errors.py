"""The error the adapter code raises on purpose, and the tensor check that raises it."""

import numpy as np

from ..errors import AdapterError

__all__ = ["AdapterError", "check_placement", "checked_tensors"]


def checked_tensors(tensors, shapes, where, prefix=""):
    """The tensors named in `shapes` as contiguous float32 arrays, once each one is there with its shape.

    Raises AdapterError naming (with `prefix`, as in the file) what is missing, unexpected
    or mis-shaped; `where` says which adapter or head, and where in the model.
    """
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise AdapterError(f"{where}: missing tensor(s) {', '.join(prefix + m for m in missing)}")
    extra = sorted(set(tensors) - set(shapes))
    if extra:
        raise AdapterError(f"{where}: unexpected tensor(s) {', '.join(prefix + e for e in extra)} for this config")
    for key, shape in shapes.items():
        if tuple(tensors[key].shape) != tuple(shape):
            raise AdapterError(
                f"{where}: tensor {prefix}{key} has shape {tuple(tensors[key].shape)}, expected {tuple(shape)}"
            )
    return {key: np.ascontiguousarray(tensors[key], dtype=np.float32) for key in shapes}


def check_placement(expected, found, what):
    """Every (layer, place) the config expects has weights, and no others do.

    `what` starts the message, e.g. "model.bin: adapter 'x' has LoRA weights".
    """
    missing = [key for key in expected if key not in found]
    if missing:
        layer, place = missing[0]
        raise AdapterError(f"{what.replace(' has ', ' has no ', 1)} for layer {layer} {place}")
    extra = sorted(set(found) - set(expected))
    if extra:
        layer, place = extra[0]
        raise AdapterError(f"{what} for layer {layer} {place}, which its config does not place there")
