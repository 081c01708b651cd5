"""The activations as one scalar function for Numba kernels: `activate(v, code)`.

Called inside a loop with a loop-invariant code, LLVM unswitches the loop (one
copy per activation) and vectorizes each copy: measured on 128 x 3072, GELU
0.86 ms against 0.84 for a hand-written loop per activation, ReLU and bias
alone 0.04 ms either way. Codes are reference.ACT_CODES; GELU is fastmath.gelu32 (float32), the
exp the vectorizable polynomial of fastmath.py in float64. Where the rows are contiguous,
simd.gelu_range applies the same GELU 16 lanes wide (gemm.py's epilogue).
"""

import numpy as np
from numba import njit

from .fastmath import exp64, gelu32
from .reference import ACT_CODES

# Numba freezes globals into the kernels it caches, and its cache checks only the calling file for
# changes: after changing a code in reference.py (or anything here), delete kernels/__pycache__.
ACT_GELU, ACT_GELU_NEW, ACT_RELU, ACT_SILU = (ACT_CODES[name] for name in ("gelu", "gelu_new", "relu", "silu"))

_SQRT_2_OVER_PI = 0.7978845608028654


@njit(inline="always", fastmath={"contract"}, error_model="numpy", cache=True)
def activate(v, act):
    """act(v) for a float32 v; any other code (ACT_NONE) returns v."""
    if act == ACT_GELU:  # x * Phi(x), exact erf form
        return gelu32(v)
    if act == ACT_GELU_NEW:  # 0.5 x (1 + tanh(t)) = x * sigmoid(2t), t = sqrt(2/pi) (x + 0.044715 x^3)
        w = np.float64(v)
        t = _SQRT_2_OVER_PI * (w + 0.044715 * w * w * w)
        return np.float32(w / (1.0 + exp64(-2.0 * t)))
    if act == ACT_RELU:
        return v if v > 0 or v != v else np.float32(0.0)
    if act == ACT_SILU:
        w = np.float64(v)
        return np.float32(w / (1.0 + exp64(-w)))
    return v
