"""TensorFlow (Keras) and Flax parameter paths -> the names of schema.py.

    tf_model.h5          distilbert/transformer/layer_._0/attention/q_lin/kernel:0   (model scope dropped)
    flax_model.msgpack   distilbert/transformer/layer/0/attention/q_lin/kernel
    both become          distilbert.transformer.layer.0.attention.q_lin.weight        (the kernel transposed)

Both frameworks store a dense layer's kernel as [in, out] (y = x @ kernel) where PyTorch's Linear
keeps [out, in] (y = x @ weight.T), so kernels are transposed; every other tensor keeps its layout.
The leaf names differ by framework (Keras LayerNormalization: gamma / beta, Flax LayerNorm: scale /
bias, Keras Embedding: embeddings, Flax Embed: embedding); the module paths are the same as
PyTorch's, except that Keras writes layer i as `layer_._i`.

    >>> name, array = schema_tensor(["vocab_transform", "kernel"], np.zeros((2, 3), np.float32), "f")
    >>> name, array.shape
    ('vocab_transform.weight', (3, 2))
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import CheckpointError

# framework leaf name -> (PyTorch leaf name, transpose?)
LEAVES = {
    "kernel": ("weight", True),  # Keras Dense / Flax nn.Dense: [in, out]
    "bias": ("bias", False),
    "gamma": ("weight", False),  # Keras LayerNormalization
    "beta": ("bias", False),
    "scale": ("weight", False),  # Flax nn.LayerNorm
    "embeddings": ("weight", False),  # Keras Embedding (DistilBERT's position embeddings in TF)
    "embedding": ("weight", False),  # Flax nn.Embed
    "weight": ("weight", False),  # transformers' TF word embeddings (a plain add_weight)
}
KERAS_LAYER = re.compile(r"^layer_\._(\d+)$")  # Keras's name for list element i of `layer`
PART = re.compile(r"^[A-Za-z0-9_]+$")


def module_path(parts: list[str], source) -> list[str]:
    """Module path components in PyTorch's spelling (`layer_._3` -> `layer`, `3`); odd names refused."""
    out = []
    for part in parts:
        match = KERAS_LAYER.match(part)
        if match:
            out += ["layer", match.group(1)]
        elif PART.match(part):
            out.append(part)
        else:
            raise CheckpointError(f"{source}: parameter path {'/'.join(parts)!r} has an unexpected component {part!r}")
    return out


def schema_tensor(parts: list[str], array: np.ndarray, source) -> tuple[str, np.ndarray]:
    """(schema name, array in PyTorch's layout) of a framework parameter at path `parts`.

    The name still carries the task classes' "distilbert." prefix when the file has it;
    schema.bare_names strips it like it does for PyTorch files.
    """
    if not parts:
        raise CheckpointError(f"{source}: a tensor without a name")
    *modules, leaf = parts
    if leaf not in LEAVES:
        raise CheckpointError(
            f"{source}: tensor {'/'.join(parts)!r} has leaf name {leaf!r}, not a DistilBERT parameter "
            f"(expected one of {', '.join(LEAVES)})"
        )
    torch_leaf, transpose = LEAVES[leaf]
    if transpose:
        if array.ndim != 2:
            raise CheckpointError(f"{source}: kernel {'/'.join(parts)!r} has shape {array.shape}, expected 2 dimensions")
        array = np.ascontiguousarray(array.T)  # [in, out] -> [out, in]
    return ".".join(module_path(modules, source) + [torch_leaf]), array
