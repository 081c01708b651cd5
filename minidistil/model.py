"""DistilBERT's forward pass: small pure functions of (params, ops, arrays).

Read top to bottom: embeddings -> attention -> ffn -> block -> encoder.
Shapes: B batch, S sequence length, D model dim (config.dim), H heads,
Dh head dim (D / H), F hidden dim of the FFN (config.hidden_dim), V vocab.

`params` maps checkpoint names (bare layout: `embeddings.*`, `transformer.layer.N.*`)
to arrays prepared by `ops.prepare`. Every array operation that costs anything goes
through `ops` (kernels.get_ops); this module never imports numba or cupy. There is
no dropout: this is inference, the reference in eval mode.

Optional `hooks` (adapters, LoRA) see the six linears and the two residual + LayerNorm
steps of every layer:
    hooks.project(layer, name, x, y) -> y'
        after each linear, name in LINEAR_NAMES ("q_lin", "k_lin", "v_lin", "out_lin",
        "lin1", "lin2"); x is the linear's input, y its output (for lin1 before the
        activation, which is then applied to y').
    hooks.residual(layer, name, hidden, residual, norm) -> out
        replaces `norm(hidden, residual)` = LayerNorm(hidden + residual), name in
        RESIDUAL_NAMES ("sa_layer_norm", "output_layer_norm"); `norm(x, residual=None)`
        is that layer's own LayerNorm, for the hook to call where it needs it.
A hooks object may define either method or both; missing ones are the identity.
"""

import math

import numpy as np

LAYER_NORM_EPS = 1e-12  # fixed in the reference, not a config field
LINEAR_NAMES = ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2")
RESIDUAL_NAMES = ("sa_layer_norm", "output_layer_norm")

WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
POSITION_EMBEDDINGS = "embeddings.position_embeddings.weight"


# ---------------------------------------------------------------- input checks


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


# ---------------------------------------------------------------- the layers


def embeddings(params, ops, input_ids=None, inputs_embeds=None):
    """Word (or given) embeddings + positions 0..S-1, then LayerNorm. No token types in DistilBERT."""
    if inputs_embeds is None:
        inputs_embeds = params[WORD_EMBEDDINGS][input_ids]  # (V, D)[B, S] -> (B, S, D)
    seq_len = inputs_embeds.shape[1]
    positions = params[POSITION_EMBEDDINGS][:seq_len]  # (S, D): positions ignore padding
    x = inputs_embeds + positions[None]  # (B, S, D)
    return ops.layernorm(
        x, params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"], LAYER_NORM_EPS
    )  # (B, S, D)


def _project(params, ops, prefix, name, x, layer, hooks, activation=None):
    """One linear (prefix + name), with the hook after it when there is one."""
    weight, bias = params[prefix + name + ".weight"], params[prefix + name + ".bias"]
    project = getattr(hooks, "project", None)
    if project is None:
        return ops.linear(x, weight, bias, activation=activation)  # (..., out)
    y = ops.linear(x, weight, bias)  # (..., out)
    y = project(layer, name, x, y)  # (..., out)
    return y if activation is None else ops.activation(y, activation)


def _add_norm(params, ops, prefix, name, hidden, residual, layer, hooks):
    """LayerNorm(hidden + residual), or what the hook puts in its place."""
    gamma, beta = params[prefix + name + ".weight"], params[prefix + name + ".bias"]

    def norm(x, residual=None):
        return ops.layernorm(x, gamma, beta, LAYER_NORM_EPS, residual=residual)

    hook = getattr(hooks, "residual", None)
    if hook is None:
        return norm(hidden, residual)  # (B, S, D)
    return hook(layer, name, hidden, residual, norm)  # (B, S, D)


def attention(params, ops, prefix, x, key_mask, n_heads, head_mask=None, layer=0, hooks=None, keep_probs=True):
    """Multi-head self-attention. Returns (output (B, S, D), probabilities (B, H, S, S) or None).

    key_mask: (B, S), 1 = attend, 0 = padding. head_mask: (H,) multiplies the
    probabilities; the returned probabilities are taken after that multiply.
    keep_probs=False lets the backend fuse the whole step and never store the
    probabilities (at batch 32 x 128 they are 25 MB a layer); a head_mask then
    scales each head's context, which equals scaling its probabilities.
    """
    batch, seq_len, dim = x.shape
    head_dim = dim // n_heads
    p = prefix + "attention."

    def split_heads(t):
        return t.reshape(batch, seq_len, n_heads, head_dim).transpose(0, 2, 1, 3)  # (B, S, D) -> (B, H, S, Dh)

    q = split_heads(_project(params, ops, p, "q_lin", x, layer, hooks))  # (B, H, S, Dh)
    k = split_heads(_project(params, ops, p, "k_lin", x, layer, hooks))  # (B, H, S, Dh)
    v = split_heads(_project(params, ops, p, "v_lin", x, layer, hooks))  # (B, H, S, Dh)
    scale = 1.0 / math.sqrt(head_dim)
    if keep_probs:
        probs = ops.attention_probs(q, k, key_mask, scale)  # (B, H, S, S)
        if head_mask is not None:
            probs = probs * head_mask[None, :, None, None]  # (B, H, S, S) * (1, H, 1, 1)
        context = ops.attention_context(probs, v)  # (B, H, S, Dh)
    else:
        probs = None
        context = ops.attention(q, k, v, key_mask, scale)  # (B, H, S, Dh)
        if head_mask is not None:
            context = context * head_mask[None, :, None, None]  # (B, H, S, Dh) * (1, H, 1, 1)
    del q, k, v  # their buffers can be reused by the next linears
    context = context.transpose(0, 2, 1, 3).reshape(batch, seq_len, dim)  # (B, S, D)
    out = _project(params, ops, p, "out_lin", context, layer, hooks)  # (B, S, D)
    return out, probs


def ffn(params, ops, prefix, x, activation, layer=0, hooks=None):
    """Position-wise feed-forward: lin2(act(lin1(x)))."""
    p = prefix + "ffn."
    h = _project(params, ops, p, "lin1", x, layer, hooks, activation=activation)  # (B, S, F)
    return _project(params, ops, p, "lin2", h, layer, hooks)  # (B, S, D)


def block(params, ops, config, layer, x, key_mask, head_mask=None, hooks=None, keep_probs=True):
    """One post-LN transformer layer. Returns (output (B, S, D), attention probabilities (B, H, S, S) or None)."""
    prefix = f"transformer.layer.{layer}."
    attn, probs = attention(
        params, ops, prefix, x, key_mask, config.n_heads, head_mask, layer, hooks, keep_probs
    )  # (B, S, D)
    h = _add_norm(params, ops, prefix, "sa_layer_norm", attn, x, layer, hooks)  # LN(attn + x): (B, S, D)
    f = ffn(params, ops, prefix, h, config.activation, layer, hooks)  # (B, S, D)
    out = _add_norm(params, ops, prefix, "output_layer_norm", f, h, layer, hooks)  # LN(f + h): (B, S, D)
    return out, probs


def encoder(
    params,
    ops,
    config,
    input_ids=None,
    attention_mask=None,
    head_mask=None,
    inputs_embeds=None,
    output_hidden_states=False,
    output_attentions=False,
    hooks=None,
):
    """The whole DistilBERT encoder on validated host inputs (see check_inputs).

    Returns (last_hidden_state (B, S, D), hidden_states, attentions) as backend arrays;
    hidden_states is a tuple of L+1 (embeddings first) or None, attentions a tuple of
    L arrays (B, H, S, S) or None.
    """
    ids = None if input_ids is None else ops.asarray(input_ids)  # (B, S)
    embeds = None if inputs_embeds is None else ops.asarray(inputs_embeds)  # (B, S, D)
    key_mask = ops.asarray(attention_mask)  # (B, S)
    masks = None if head_mask is None else ops.asarray(np.ascontiguousarray(head_mask))  # (L, H)

    x = embeddings(params, ops, ids, embeds)  # (B, S, D)
    hidden_states = [x] if output_hidden_states else None
    attentions = [] if output_attentions else None
    for layer in range(config.n_layers):
        layer_mask = None if masks is None else masks[layer]  # (H,)
        x, probs = block(params, ops, config, layer, x, key_mask, layer_mask, hooks, output_attentions)  # (B, S, D)
        if output_hidden_states:
            hidden_states.append(x)
        if output_attentions:
            attentions.append(probs)
    return (
        x,
        None if hidden_states is None else tuple(hidden_states),
        None if attentions is None else tuple(attentions),
    )
