"""Seeded random parameters with the checkpoint's names.

Used for fresh task heads (`from_pretrained(..., fresh_head=True)`), for
models built from a bare config, and by the golden tests, which regenerate
the official-size checkpoint from a seed instead of storing 260 MB of weights.

Every tensor draws from its own generator, seeded by (seed, crc32(name)), so
a tensor's values depend only on the seed, its name and its shape: adding a
head or a layer never changes the other tensors, and the encoder of a
DistilBertForMaskedLM equals the encoder of a DistilBertModel with the same seed.

Names and shapes are those of checkpoints/schema.py (the bare layout).
"""

import zlib

import numpy as np

from ..checkpoints import schema

# The config.json key that marks a head as random weights nobody trained (`minidistil init` writes it,
# with the head's schema.HEADS name as value); from_pretrained warns when it loads such a head.
UNTRAINED_HEAD_KEY = "minidistil_untrained_head"


def sinusoidal_position_embeddings(n_pos, dim):
    """The reference's fixed table: angle = pos / 10000^(2*(j//2)/dim), sin on even columns, cos on odd.

    Computed in float64, stored float32, as the reference does.
    """
    pos = np.arange(n_pos, dtype=np.float64)[:, None]  # (n_pos, 1)
    j = np.arange(dim)  # (dim,)
    angle = pos / np.power(10000.0, 2 * (j // 2) / dim)  # (n_pos, dim)
    table = np.empty((n_pos, dim), dtype=np.float32)  # (n_pos, dim)
    table[:, 0::2] = np.sin(angle[:, 0::2])
    table[:, 1::2] = np.cos(angle[:, 1::2])
    return table


def _is_norm(name):
    return "LayerNorm" in name or "layer_norm" in name


def _draw(name, shape, seed, std, perturb):
    """One tensor, from a generator seeded by (seed, crc32(name))."""
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
    is_bias = name.endswith(".bias")
    if _is_norm(name):
        if not perturb:
            return np.full(shape, 0.0 if is_bias else 1.0, dtype=np.float32)
        base = np.float32(0.0 if is_bias else 1.0)
        return base + np.float32(0.1) * rng.standard_normal(shape, dtype=np.float32)
    if is_bias and not perturb:
        return np.zeros(shape, dtype=np.float32)
    values = rng.standard_normal(shape, dtype=np.float32)  # (*shape)
    values *= np.float32(std)
    return values


def random_params(config, seed=0, head=None, *, std=None, perturb=False, encoder=True):
    """Seeded random float32 parameters for `config`, bare names.

    head: None (encoder only) or one of schema.HEADS; only that head's tensors are added.
    std: standard deviation of weight matrices and embeddings (default config.initializer_range,
         the reference's init: normal(0, std) weights, zero biases, LayerNorm 1 and 0).
    perturb: also randomise biases (normal(0, std)) and LayerNorms (1 + 0.1·N, 0.1·N), so that
         tests see every tensor; the golden tests use this.
    encoder: False gives the head's tensors only (e.g. a fresh head for a loaded encoder).

    Sinusoidal configs get the fixed sinusoidal table as position embeddings.
    """
    if std is None:
        std = getattr(config, "initializer_range", 0.02)
    shapes = schema.encoder_shapes(config) if encoder else {}
    shapes.update(schema.head_shapes(config, head))  # a tied projector is no tensor of its own
    params = {}
    for name, shape in shapes.items():
        if name == schema.POSITION_EMBEDDINGS and getattr(config, "sinusoidal_pos_embds", False):
            params[name] = sinusoidal_position_embeddings(config.max_position_embeddings, config.dim)
        else:
            params[name] = _draw(name, shape, seed, std, perturb)
    return params
