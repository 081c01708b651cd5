"""The `Ops` protocol: what every backend (reference.NumpyOps, cpu.NumbaOps, gpu.CupyOps) offers the model.

In a file of its own so that each backend can declare it (`class NumbaOps(Ops)`)
without importing the package's __init__, which imports the backends.

Shapes, in the model's legend: B batch, S sequence (query) length, T key
length (= S in self-attention), D model dim, H heads, Dh head dim (D / H),
F FFN dim, V vocab. A linear maps [..., In] to [..., Out]: D -> D, D -> F,
F -> D or D -> V in the model.
"""

from typing import Any, Collection, Mapping, Optional, Protocol, runtime_checkable

Array = Any  # a backend's array type: numpy.ndarray (numpy, numba) or cupy.ndarray (cupy)


@runtime_checkable
class Ops(Protocol):
    """What a backend offers the model: every array operation that costs anything.

    Arrays are float32 except masks and ids. Inputs may be NumPy arrays or this
    backend's own arrays (see `asarray`) and are never modified; results are
    this backend's arrays, and may be strided views (numba returns an attention
    context of shape [B, H, S, Dh] stored as [B, S, H, Dh], so that merging the
    heads again is a free reshape). Results agree with reference.NumpyOps within
    float32 rounding. An unknown activation name is a ValueError.
    """

    name: str
    """The backend's name as get_ops takes it: "numpy", "numba" or "cupy"."""

    keeps_outputs_on_device: bool
    """True when results live in device memory (cupy): callers then hand them back as
    they are unless asked for NumPy, instead of paying a device-to-host copy each."""

    quantize_modes: tuple
    """The values other than None that `prepare`'s quantize takes here: ("int8",) or ()."""

    def prepare(self, params: Mapping[str, Any], matrices: Collection[str] = (),
                quantize: Optional[str] = None) -> dict:
        """Weights once, at load: the same names in the same order, as float32 backend arrays
        (C-contiguous in numba and cupy; uploaded to the device by cupy). No copy of an array
        already in that form.

        matrices: names of weights [Out, In] that only reach `linear` (as its weight) and `embed`
        (as its table): the backend may keep those in a form of its own (numba packs them into
        its kernels' panel layout). quantize="int8" stores each of them as int8 with a float32
        scale per row, and `linear` then quantizes its input per row and sums in int32
        (reference.linear_int8 is the definition); a backend without int8 raises ValueError."""

    def asarray(self, x: Any) -> Array:
        """An input (ids [B, S], mask [B, S], embeddings [B, S, D], head mask; NumPy, nested lists
        or this backend's arrays) as this backend's array type, dtype unchanged."""

    def to_numpy(self, x: Array) -> Any:
        """A result as a NumPy array (a device-to-host copy for cupy)."""

    def linear(self, x: Array, weight: Any, bias: Optional[Array] = None,
               activation: Optional[str] = None) -> Array:
        """act(x @ weightᵀ + bias): x [..., In], weight [Out, In] as stored in the checkpoint (or
        what `prepare` made of a matrix), bias [Out] or None -> [..., Out]. activation is None or
        a key of ACTIVATIONS."""

    def embed(self, table: Any, ids: Array) -> Array:
        """Rows `ids` of an embedding table [V, D] (an array, or what `prepare` made of a matrix):
        ids [B, S] -> [B, S, D] float32."""

    def activation(self, x: Array, name: str) -> Array:
        """The activation called `name` (a key of ACTIVATIONS, not None), element-wise: same shape as x."""

    def attention_probs(self, q: Array, k: Array, key_mask: Array, scale: float) -> Array:
        """softmax(mask(q * scale @ kᵀ)) over the keys: q [B, H, S, Dh], k [B, H, T, Dh],
        key_mask [B, T] (nonzero / True = attend) -> [B, H, S, T].

        Masked scores are the most negative float32, not -inf: a fully masked row is uniform."""

    def attention_context(self, probs: Array, v: Array) -> Array:
        """probs [B, H, S, T] @ v [B, H, T, Dh] -> [B, H, S, Dh]."""

    def attention(self, q: Array, k: Array, v: Array, key_mask: Array, scale: float) -> Array:
        """attention_context(attention_probs(q, k, key_mask, scale), v) -> [B, H, S, Dh].

        For callers that need neither the probabilities nor a head mask: a backend
        may then never store the [B, H, S, T] probabilities."""

    def layernorm(self, x: Array, gamma: Array, beta: Array, eps: float,
                  residual: Optional[Array] = None) -> Array:
        """LayerNorm over the last axis of x + residual (residual None or shaped as x):
        x [..., D], gamma [D], beta [D] -> [..., D]. Biased variance, eps inside the square
        root, as torch; eps is the caller's (DistilBERT's is fixed by the model, not here)."""
