"""Activation functions by the names adapter and head configs use.

The reference library resolves `non_linearity` / `activation_function` with
`str.lower()` and then the transformers activation table (`ACT2FN`), except
"leakyrelu", which it maps to leaky ReLU itself; None means no activation.
Names the kernels know (relu, gelu, gelu_new, silu, swish) go through the
backend's `ops.activation`; the rest are written here with NumPy ufuncs,
which also work on CuPy arrays.
"""

import numpy as np

from ..kernels import ACTIVATIONS as KERNEL_ACTIVATIONS
from ..kernels.reference import gelu_new
from .errors import AdapterError


def _f32(x, like):
    return x.astype(like.dtype, copy=False)


def _sigmoid(x):
    return _f32(1.0 / (1.0 + np.exp(-x)), x)


def _gelu_fast(x):
    return _f32(np.float32(0.5) * x * (np.float32(1.0) + np.tanh(x * np.float32(0.7978845608) * (np.float32(1.0) + np.float32(0.044715) * x * x))), x)


def _quick_gelu(x):
    return _f32(x * _sigmoid(np.float32(1.702) * x), x)


def _mish(x):
    return _f32(x * np.tanh(np.logaddexp(np.float32(0.0), x)), x)


def _leaky_relu(x):
    return _f32(np.where(x >= 0, x, np.float32(0.01) * x), x)


# name -> function of one array, for the names ops.activation does not cover
EXTRA_ACTIVATIONS = {
    "tanh": lambda x: np.tanh(x),
    "sigmoid": _sigmoid,
    "leakyrelu": _leaky_relu,
    "leaky_relu": _leaky_relu,
    "linear": lambda x: x,
    "relu6": lambda x: np.clip(x, np.float32(0.0), np.float32(6.0)),
    "relu2": lambda x: np.square(np.maximum(x, np.float32(0.0))),
    # transformers' names for the tanh approximation that the kernels call gelu_new
    "gelu_pytorch_tanh": gelu_new,
    "gelu_python_tanh": gelu_new,
    "gelu_fast": _gelu_fast,
    "quick_gelu": _quick_gelu,
    "mish": _mish,
}
ALIASES = {"gelu_python": "gelu"}  # the same function under another name
SUPPORTED = tuple(KERNEL_ACTIVATIONS) + tuple(EXTRA_ACTIVATIONS) + ("gelu_python", "gelu_10")


def normalise_activation(name, what):
    """The canonical activation name for `name` (None stays None), or AdapterError naming `what`."""
    if not name:
        return None
    if not isinstance(name, str):
        raise AdapterError(f"{what}: activation must be a string or null, got {name!r}")
    key = name.lower()
    key = ALIASES.get(key, key)
    if key in KERNEL_ACTIVATIONS or key in EXTRA_ACTIVATIONS or key == "gelu_10":
        return key
    raise AdapterError(
        f"{what}: unsupported activation {name!r}; supported: {', '.join(sorted(set(SUPPORTED)))}"
    )


def apply_activation(ops, x, name):
    """act(x) for a name returned by normalise_activation."""
    if name is None:
        return x
    if name in KERNEL_ACTIVATIONS:
        return ops.activation(x, name)
    if name == "gelu_10":
        return np.clip(ops.activation(x, "gelu"), np.float32(-10.0), np.float32(10.0))
    return EXTRA_ACTIVATIONS[name](x)
