"""Checking what callers pass to a model, before the forward pass sees it.

Every check raises ValueError saying what is wrong and what was expected; the forward pass
(transformer.py) can then assume host NumPy arrays of the right dtypes and shapes.

    >>> ids, mask, head_mask, embeds = check_inputs(config, input_ids=[[101, 2023, 102]])
    >>> mask
    array([[ True,  True,  True]])
"""

import math

import numpy as np


def as_rectangular_array(value, name):
    """np.asarray(value), or a ValueError saying so when `value` has rows of different lengths.

    NumPy refuses ragged nested lists with a message about "inhomogeneous" shapes that does not say
    what to do; token id lists of different lengths are the usual cause, and padding is the cure.
    """
    try:
        return np.asarray(value)
    except ValueError as exc:
        raise ValueError(f"rows of {name} must have equal length; pad them") from exc


def check_inputs(config, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None):
    """Validate and normalise the caller's inputs (host NumPy), or raise ValueError saying what is wrong.

    Returns (input_ids int64 (B, S) or None, attention_mask bool (B, S), head_mask float32
    (L, H) or None, inputs_embeds float32 (B, S, D) or None).
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    if input_ids is not None:
        input_ids = as_rectangular_array(input_ids, "input_ids")
        if input_ids.dtype == np.bool_ or not np.issubdtype(input_ids.dtype, np.integer):
            raise ValueError(f"input_ids must be integers, got dtype {input_ids.dtype}")
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got shape {input_ids.shape}")
        if input_ids.size and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
            bad = input_ids[(input_ids < 0) | (input_ids >= config.vocab_size)]
            raise ValueError(
                f"input_ids contains id {int(bad.flat[0])}, outside the vocabulary [0, {config.vocab_size})"
            )
        input_ids = input_ids.astype(np.int64, copy=False)
        shape = input_ids.shape
    else:
        inputs_embeds = np.asarray(inputs_embeds)
        if not np.issubdtype(inputs_embeds.dtype, np.floating):
            raise ValueError(f"inputs_embeds must be floating point, got dtype {inputs_embeds.dtype}")
        if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != config.dim:
            raise ValueError(
                f"inputs_embeds must have shape (batch, seq_len, {config.dim}), got shape {inputs_embeds.shape}"
            )
        inputs_embeds = inputs_embeds.astype(np.float32, copy=False)
        shape = inputs_embeds.shape[:2]
    batch, seq_len = shape
    if batch == 0 or seq_len == 0:
        raise ValueError(f"empty input: batch {batch}, seq_len {seq_len}")
    if seq_len > config.max_position_embeddings:
        raise ValueError(
            f"sequence length {seq_len} is longer than max_position_embeddings {config.max_position_embeddings}"
        )

    if attention_mask is None:
        attention_mask = np.ones(shape, dtype=np.bool_)
    else:
        attention_mask = as_rectangular_array(attention_mask, "attention_mask")
        if attention_mask.shape != tuple(shape):
            raise ValueError(
                f"attention_mask has shape {attention_mask.shape}, but the input has shape {tuple(shape)}"
            )
        if not (attention_mask.dtype == np.bool_ or np.issubdtype(attention_mask.dtype, np.number)):
            raise ValueError(f"attention_mask must be 0/1 numbers or booleans, got dtype {attention_mask.dtype}")
        if not np.isin(attention_mask, (0, 1)).all():
            raise ValueError("attention_mask must contain only 0 (padding) and 1 (attend)")
        attention_mask = np.ascontiguousarray(attention_mask != 0)  # bool once, so no layer converts it again

    if head_mask is not None:
        head_mask = np.asarray(head_mask)
        if not (head_mask.dtype == np.bool_ or np.issubdtype(head_mask.dtype, np.number)):
            raise ValueError(f"head_mask must be numbers, got dtype {head_mask.dtype}")
        head_mask = head_mask.astype(np.float32)
        if not np.isfinite(head_mask).all():
            # A NaN or inf weight would silently turn every hidden state into NaN.
            raise ValueError("head_mask must hold finite numbers (1 keeps a head, 0 masks it), got NaN or inf")
        heads = (config.n_heads,)
        if head_mask.shape == heads:
            head_mask = np.broadcast_to(head_mask, (config.n_layers, config.n_heads))  # (L, H)
        elif head_mask.shape != (config.n_layers, config.n_heads):
            raise ValueError(
                f"head_mask must have shape ({config.n_heads},) or ({config.n_layers}, {config.n_heads}), "
                f"got {head_mask.shape}"
            )
    return input_ids, attention_mask, head_mask, inputs_embeds


def check_token_types(token_type_ids, input_ids=None, inputs_embeds=None):
    """token_type_ids are accepted and ignored (DistilBERT has no segment embeddings), so that a BERT
    tokenizer's output goes straight in; they must still have the input's shape (else a caller's bug)."""
    if token_type_ids is None:
        return
    shape = np.shape(as_rectangular_array(token_type_ids, "token_type_ids"))
    expected = np.shape(input_ids) if input_ids is not None else np.shape(inputs_embeds)[:-1]
    if shape != expected:
        raise ValueError(f"token_type_ids has shape {shape}, but the input has shape {expected}")


def flatten_choices(input_ids, attention_mask, inputs_embeds):
    """Multiple-choice inputs (B, C, S) [or embeds (B, C, S, D)] as (B·C, S) rows, and (B, C)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    if input_ids is not None:
        input_ids = as_rectangular_array(input_ids, "input_ids")
        if input_ids.ndim != 3:
            raise ValueError(f"input_ids must have shape (batch, num_choices, seq_len), got shape {input_ids.shape}")
        batch, choices, seq_len = input_ids.shape
        input_ids = input_ids.reshape(batch * choices, seq_len)  # (B·C, S)
    else:
        inputs_embeds = np.asarray(inputs_embeds)
        if inputs_embeds.ndim != 4:
            raise ValueError(
                f"inputs_embeds must have shape (batch, num_choices, seq_len, dim), got shape {inputs_embeds.shape}"
            )
        batch, choices, seq_len = inputs_embeds.shape[:3]
        inputs_embeds = inputs_embeds.reshape(batch * choices, seq_len, inputs_embeds.shape[-1])  # (B·C, S, D)
    if attention_mask is not None:
        attention_mask = as_rectangular_array(attention_mask, "attention_mask")
        if attention_mask.shape != (batch, choices, seq_len):
            raise ValueError(
                f"attention_mask has shape {attention_mask.shape}, but the input has shape {(batch, choices, seq_len)}"
            )
        attention_mask = attention_mask.reshape(batch * choices, seq_len)  # (B·C, S)
    return input_ids, attention_mask, inputs_embeds, (batch, choices)


def label_array(labels, name="labels"):
    """labels as an array of numbers, or a ValueError for ragged rows or label names."""
    labels = as_rectangular_array(labels, name)
    if labels.dtype.kind in "USO":  # str, bytes or objects: most often label names instead of ids
        raise ValueError(
            f"{name} must be numbers (class ids, or float targets), got dtype {labels.dtype}; "
            f"map label names to ids with config.label2id"
        )
    return labels


def int_labels(labels, shape, name="labels"):
    """Integer class labels of the given shape (-100 = ignore), or a ValueError."""
    labels = label_array(labels, name)
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integer class ids (-100 to ignore), got dtype {labels.dtype}")
    if labels.size != math.prod(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {labels.shape}")
    return labels.reshape(shape)
